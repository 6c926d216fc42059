// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings form, one row per setting the table shows (settingDeclarations()): an editor
// that fits the setting's kind (a spin box within the declared bounds for a count; a number and
// a unit for a duration or a size, DurationEdit and SizeEdit; a line edit for addresses and
// URLs), each checked as typed by the command line's own rules, with the reason next to a bad
// value, and the table's help text under it. Apply is offered
// only when all are good; Revert goes back to the configuration in force, Restore defaults
// fills in the table's defaults (applied with Apply like any edit). Open data folder shows the
// proxy's data folder in the file manager. The API key is write-only: the page shows where the
// key lives and its last four characters.

#include "settings/config.h"
#include "ui/settingscontroller.h"

#include <QMap>
#include <QWidget>

#include <functional>

class QCheckBox;
class QFrame;
class QGridLayout;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QUrl;

namespace llmproxy {

class AccessSettings;
class PricesSettings;
class ConnectionTestRow;
class QuantityEdit;
class StartAtLoginCheckBox;

class SettingsPage final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SettingsPage)
public:
    explicit SettingsPage(QWidget *parent = nullptr);

    // Fills the form from the configuration in force (discarding edits).
    void setConfig(const Config &config);
    // The form's values over the last setConfig(); only meaningful when isValid().
    Config editedConfig() const;
    bool isValid() const;
    // Whether the form differs from the configuration in force (or a key was typed). Values are
    // compared, not texts: a grace period of 0 equals "off", 4000 ms equals 4 s.
    bool hasChanges() const;
    // The "Access" group: allowed origins and hosts (applied with the rest), proxy tokens.
    AccessSettings *access() const { return m_access; }
    ConnectionTestRow *connectionTest() const { return m_connectionTest; }
    // The "Prices" group: the price table and the user's overrides (saved by itself).
    PricesSettings *prices() const { return m_prices; }
    StartAtLoginCheckBox *startAtLogin() const { return m_startAtLogin; }

    // Opens a URL for Open data folder (QDesktopServices::openUrl unless replaced; tests
    // replace it to see the URL instead of launching a file manager).
    using UrlOpener = std::function<bool(const QUrl &)>;
    void setUrlOpener(UrlOpener opener) { m_openUrl = std::move(opener); }

public Q_SLOTS:
    void setKeyState(const llmproxy::KeyState &state);
    // From the core: why the listen address could not be bound (empty: it could).
    void setListenError(const QString &error);
    void offerFileFallback(const QString &reason);
    void setNotificationsEnabled(bool enabled);
    void showMessage(const QString &text, bool isError);
    // The table's defaults into the form (not applied until Apply; Revert undoes it).
    void restoreDefaults();
    void openDataFolder();

Q_SIGNALS:
    void applyRequested(const llmproxy::Config &edited);
    void apiKeyEntered(const QByteArray &key);
    void forgetKeyRequested();
    void keepKeyInFileRequested();
    void notificationsToggled(bool enabled);

private:
    // One editor is set: a spin box for a count, a number and unit for a duration or a size, a
    // line edit otherwise.
    struct Field {
        QLineEdit *edit = nullptr;
        QSpinBox *spin = nullptr;
        QuantityEdit *quantity = nullptr;
        QLabel *error = nullptr;
    };
    void addField(QGridLayout *grid, int row, const SettingDeclaration &decl);
    static QString fieldText(const Field &field);
    static void setFieldText(const Field &field, const QString &text);
    void setFields(const Config &config);
    void validate();
    void apply();

    Config m_base;
    QMap<Setting, Field> m_fields;
    QString m_listenCoreError;
    QLineEdit *m_key = nullptr;
    QLabel *m_keyStatus = nullptr;
    QPushButton *m_forgetKey = nullptr;
    QFrame *m_fallback = nullptr;
    QLabel *m_fallbackText = nullptr;
    AccessSettings *m_access = nullptr;
    PricesSettings *m_prices = nullptr;
    ConnectionTestRow *m_connectionTest = nullptr;
    StartAtLoginCheckBox *m_startAtLogin = nullptr;
    QCheckBox *m_notifications = nullptr;
    QPushButton *m_apply = nullptr;
    QPushButton *m_revert = nullptr;
    QPushButton *m_defaults = nullptr;
    QLabel *m_dataDir = nullptr;
    UrlOpener m_openUrl;
    QLabel *m_message = nullptr;
    bool m_environmentKey = false;
};

} // namespace llmproxy
