// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings form. Every value is checked as it is typed, by the command line's own rules
// (applySetting), with the reason next to a bad value; Apply is offered only when all are good.
// The API key is write-only: the page shows where the key lives and its last four characters.

#include "settings/config.h"
#include "ui/settingscontroller.h"

#include <QMap>
#include <QWidget>

class QCheckBox;
class QFrame;
class QGridLayout;
class QLabel;
class QLineEdit;
class QPushButton;

namespace llmproxy {

class AccessSettings;
class ConnectionTestRow;
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
    // compared, not texts: an empty grace period equals "off", "4000ms" equals "4s".
    bool hasChanges() const;
    // The "Access" group: allowed origins and hosts (applied with the rest), proxy tokens.
    AccessSettings *access() const { return m_access; }
    ConnectionTestRow *connectionTest() const { return m_connectionTest; }
    StartAtLoginCheckBox *startAtLogin() const { return m_startAtLogin; }

public Q_SLOTS:
    void setKeyState(const llmproxy::KeyState &state);
    // From the core: why the listen address could not be bound (empty: it could).
    void setListenError(const QString &error);
    void offerFileFallback(const QString &reason);
    void setNotificationsEnabled(bool enabled);
    void showMessage(const QString &text, bool isError);

Q_SIGNALS:
    void applyRequested(const llmproxy::Config &edited);
    void apiKeyEntered(const QByteArray &key);
    void forgetKeyRequested();
    void keepKeyInFileRequested();
    void notificationsToggled(bool enabled);

private:
    struct Field {
        QLineEdit *edit = nullptr;
        QLabel *error = nullptr;
    };
    void addField(QGridLayout *grid, int row, const SettingDeclaration &decl);
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
    ConnectionTestRow *m_connectionTest = nullptr;
    StartAtLoginCheckBox *m_startAtLogin = nullptr;
    QCheckBox *m_notifications = nullptr;
    QPushButton *m_apply = nullptr;
    QPushButton *m_revert = nullptr;
    QLabel *m_message = nullptr;
    bool m_environmentKey = false;
};

} // namespace llmproxy
