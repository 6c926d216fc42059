// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Between the settings page (and the command line's result) and the places settings live: the
// settings file (SettingsStore), the keychain (KeyStore) and the running core (configChanged →
// ProxyService::applyConfig). No widget code: headless mode uses it to get the stored key.

#include "settings/config.h"

#include <QByteArray>
#include <QObject>
#include <QSet>
#include <QString>

#include <optional>

namespace llmproxy {

class KeyStore;
class ProviderKeys;
class SettingsStore;

// Where the key in use comes from, for display. Never the key itself.
struct KeyState {
    enum class Source {
        None,        // no key: clients' own keys are used
        Keychain,    // the system keychain
        File,        // the settings file (owner only)
        Session,     // entered, in use, not saved (the keychain failed, the file was not chosen)
        Environment, // OPENAI_API_KEY overrides whatever is stored
    };
    Source source = Source::None;
    QByteArray hint; // "…abcd" or empty
    QString problem; // why the stored key could not be read, if it could not
};

class SettingsController final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SettingsController)
public:
    // `effective`: the configuration in force (stored settings, then the command line).
    // `environmentKey`: OPENAI_API_KEY (overrides any stored key; empty if unset).
    SettingsController(SettingsStore *store, KeyStore *keys, const Config &effective,
                       const QByteArray &environmentKey, QObject *parent = nullptr);

    const Config &config() const { return m_config; }
    KeyState keyState() const { return m_keyState; }
    bool notificationsEnabled() const;
    int chartSpan() const;
    // Whether the first-run panel is done with (dismissed, or a client was served), as saved.
    bool firstRunDone() const;
    QString settingsFile() const;
    // Where proxy tokens are read and written: Config.tokensFile, else defaultTokensFile().
    QString tokensFile() const;

    // At start: fetch the stored key (from the keychain when it is kept there), then the
    // other providers' keys kept in the keychain, then ready(). config() then carries the keys.
    // Always asynchronous.
    void loadKey();

    // Where a configured provider's key comes from (the environment, the keychain, the settings
    // file, this session only, or none); "openai" is keyState(). Never the key itself.
    KeyState providerKeyState(const QByteArray &provider) const;
    ProviderKeys *providerKeys() const { return m_providerKeys; }

public Q_SLOTS:
    // The page's values: the settings that differ from config() are saved and applied.
    void applySettings(const llmproxy::Config &edited);
    // A new key: into the keychain; if that fails, it is used for this session and the file
    // is offered (fileFallbackOffered).
    void setApiKey(const QByteArray &key);
    // The user accepts keeping the offered key in the settings file (mode 0600).
    void keepKeyInFile();
    void forgetApiKey();
    // The providers, routes, default provider, model routes and queue limits of `edited` (the
    // rest is ignored), checked by the command line's rules: saved, and applied by the core to
    // new requests (batches already out keep their provider) through configChanged().
    void applyProviders(const llmproxy::Config &edited);
    // A provider's key, kept in the system keychain, or in the settings file (0600) when
    // `inFile`. When the keychain fails the key is used for this session and message() says
    // why.
    void setProviderKey(const QByteArray &provider, const QByteArray &key, bool inFile);
    void forgetProviderKey(const QByteArray &provider);
    void setNotificationsEnabled(bool enabled);
    void setChartSpan(int span);
    void setFirstRunDone();
    // Proxy tokens: written to tokensFile() at once (0600, atomically) and applied to the core.
    // A new token is announced once (proxyTokenGenerated), to be shown and copied.
    void generateProxyToken(const QString &name);
    void removeProxyToken(const QString &name);

Q_SIGNALS:
    void ready();
    void configChanged(const llmproxy::Config &config);
    void keyStateChanged(const llmproxy::KeyState &state);
    // A provider's key state changed (providerKeyState()).
    void providerKeysChanged();
    void fileFallbackOffered(const QString &reason);
    void message(const QString &text, bool isError);
    void notificationsChanged(bool enabled);
    void proxyTokenGenerated(const QString &name, const QByteArray &token);
    void proxyTokenFailed(const QString &reason);

private:
    void setKeyState(KeyState::Source source, const QByteArray &key, const QString &problem = {});
    void useKey(const QByteArray &key); // into config() and the core (unless the env overrides)
    void onKeychainRead(const QByteArray &key);
    void onKeychainWritten();
    void onKeychainRemoved();
    std::optional<QList<ProxyToken>> currentTokens(); // nullopt: proxyTokenFailed said why
    bool writeTokens(const QList<ProxyToken> &tokens);
    void loadProviderKeys(); // at start, after the OpenAI key: then ready()
    void useProviderKey(const QByteArray &provider, const QByteArray &key);

    SettingsStore *m_store;
    KeyStore *m_keys;
    Config m_config;
    QByteArray m_environmentKey;
    QByteArray m_pendingKey; // entered, waiting for the keychain or the user's choice
    KeyState m_keyState;
    bool m_loading = false;
    ProviderKeys *m_providerKeys = nullptr;
    QSet<QByteArray> m_sessionProviderKeys; // in use, not kept (the keychain failed)
    QHash<QByteArray, QString> m_providerKeyProblems;
};

} // namespace llmproxy
