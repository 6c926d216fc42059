// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The Providers page (issue 12, routing): the configured providers as a table (name, profile,
// URL, where the key comes from), an editor to add or change one (profile chooser that fills in
// the profile's URL, a key field that echoes nothing, where to keep the key), the route rules
// (pattern → provider), the default provider, and per model how it is answered (--model-route:
// batch, flex, flex-then-batch, relay) and its provider's queue limit (--queue-limit). Every entry
// is checked as typed by the command line's own parser (parseProviderSpec, parseRouteRule,
// configuredProviders), with the reason next to the field. Apply hands the edited lists to the
// controller (applyRequested) and the typed keys one by one (keyEntered); keys are never kept in
// the page once applied, and the table shows only where a key is and its last four characters. Test
// connection asks the selected provider for its model list, as edited (before Apply too), with the
// key it would use.

#include "settings/config.h"
#include "ui/settingscontroller.h"

#include <QHash>
#include <QWidget>

class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QTableWidget;

namespace llmproxy {

class ConnectionTestRow;

class ProvidersSettings final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProvidersSettings)
public:
    enum Column { NameColumn, ProfileColumn, UrlColumn, KeyColumn, ColumnCount };

    explicit ProvidersSettings(QWidget *parent = nullptr);

    // The configuration in force: its providers, routes, default, model routes and queue
    // limits (discarding edits).
    void setConfig(const Config &config);
    // The configuration in force with the edited providers, routes, default, model routes and
    // queue limits.
    Config editedConfig() const;
    bool hasChanges() const;
    // Why the edited lists cannot be applied (empty: they can).
    QString problem() const;
    ConnectionTestRow *connectionTest() const { return m_connectionTest; }

public Q_SLOTS:
    // Where each provider's key comes from, by name (SettingsController::providerKeyState()).
    void setKeyStates(const QHash<QByteArray, llmproxy::KeyState> &states);
    void showMessage(const QString &text, bool isError);
    // The editor, empty, for a new provider / filled with the selected one.
    void addProvider();
    void editSelected();
    void removeSelected();
    // The editor's provider into the edited list (checked first); false with the reason shown
    // next to the field when it is refused.
    bool saveEditedProvider();
    bool addRoute();
    // The pattern and route / tokens typed under the Models lists into them (checked by the
    // command line's parser; a second rule for the same pattern is refused); false with the
    // reason under the list when refused.
    bool addModelRoute();
    bool addQueueLimit();
    void apply();

Q_SIGNALS:
    void applyRequested(const llmproxy::Config &edited);
    // A key typed for `provider`, to keep in the keychain, or in the settings file if `inFile`.
    void keyEntered(const QByteArray &provider, const QByteArray &key, bool inFile);
    void forgetKeyRequested(const QByteArray &provider);
    // Test connection for `provider` as edited: the edited provider lines and the key typed for
    // it and not applied yet (empty: the one it has). The owner answers with
    // connectionTest()->checkTarget().
    void connectionCheckRequested(const QByteArray &provider, const QList<QByteArray> &providers,
                                  const QByteArray &enteredKey);

private:
    struct PendingKey {
        QByteArray key;
        bool inFile = false;
    };
    void refresh();
    void validate();
    void openEditor(int index); // -1: a new provider
    void closeEditor();
    void profileChosen();
    QList<QByteArray> providerNames() const; // "openai" first, then the edited providers
    QString keyText(const QByteArray &name) const;
    QByteArray selectedName() const;
    void requestConnectionCheck();

    Config m_base;
    QList<ProviderSpec> m_specs;
    QList<QByteArray> m_routes;
    QByteArray m_default;
    QList<QByteArray> m_modelRoutes;
    QList<QByteArray> m_queueLimits;
    QHash<QByteArray, PendingKey> m_pendingKeys;
    QList<QByteArray> m_removedKeys; // providers removed: their stored keys go on Apply
    QHash<QByteArray, KeyState> m_keyStates;
    int m_editing = -2; // -2: editor closed, -1: adding, else the index in m_specs
    QString m_lastDefaultUrl;

    QTableWidget *m_table = nullptr;
    QPushButton *m_add = nullptr;
    QPushButton *m_edit = nullptr;
    QPushButton *m_remove = nullptr;
    ConnectionTestRow *m_connectionTest = nullptr;
    QWidget *m_editor = nullptr;
    QLineEdit *m_name = nullptr;
    QLabel *m_nameError = nullptr;
    QComboBox *m_profile = nullptr;
    QLineEdit *m_url = nullptr;
    QLabel *m_urlError = nullptr;
    QLineEdit *m_keyEnvironment = nullptr;
    QLabel *m_keyEnvironmentError = nullptr;
    QLineEdit *m_key = nullptr;
    QComboBox *m_keyLocation = nullptr;
    QPushButton *m_save = nullptr;
    QListWidget *m_routeList = nullptr;
    QLineEdit *m_routePattern = nullptr;
    QComboBox *m_routeProvider = nullptr;
    QLabel *m_routeError = nullptr;
    QPushButton *m_removeRoute = nullptr;
    QComboBox *m_defaultProvider = nullptr;
    QListWidget *m_modelRouteList = nullptr;
    QLineEdit *m_modelRoutePattern = nullptr;
    QComboBox *m_modelRoute = nullptr;
    QLabel *m_modelRouteError = nullptr;
    QPushButton *m_removeModelRoute = nullptr;
    QListWidget *m_queueLimitList = nullptr;
    QLineEdit *m_queueLimitPattern = nullptr;
    QLineEdit *m_queueLimitTokens = nullptr;
    QLabel *m_queueLimitError = nullptr;
    QPushButton *m_removeQueueLimit = nullptr;
    QLabel *m_problem = nullptr;
    QLabel *m_message = nullptr;
    QPushButton *m_apply = nullptr;
    QPushButton *m_revert = nullptr;
};

} // namespace llmproxy
