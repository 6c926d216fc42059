// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The keys of the providers other than "openai" (routing), one entry per provider name, kept
// as the OpenAI key is: in the system keychain (KeyStore, entry "provider-<name>-api-key") or,
// when the user chooses it, in the settings file (mode 0600, SettingsStore). Keychain
// operations run one after the other on a KeyStore of its own, so they never mix with the
// OpenAI key's. Keys are never logged and never part of a message.

#include "settings/settingsstore.h"

#include <QByteArray>
#include <QHash>
#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>

namespace llmproxy {

class KeyStore;

class ProviderKeys final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProviderKeys)
public:
    // `service`: the keychain service (the OpenAI key's KeyStore::service()).
    ProviderKeys(SettingsStore *store, const QString &service, QObject *parent = nullptr);
    ~ProviderKeys() override;

    KeyStore *keyStore() const { return m_keys; }

    // Reads every key kept in the keychain, then loaded() (always asynchronous). Keys kept in
    // the settings file come with SettingsStore::load() already.
    void load();
    // Keeps `key` for `provider` in the keychain or the settings file (`location`), replacing
    // what was kept for it before: stored(), or storeFailed() with the reason.
    void store(const QByteArray &provider, const QByteArray &key, KeyLocation location);
    // Forgets what is kept for `provider` (keychain and file): forgotten(), or failed().
    void forget(const QByteArray &provider);

Q_SIGNALS:
    void loaded(const QHash<QByteArray, QByteArray> &keys, const QStringList &problems);
    void stored(const QByteArray &provider, const QByteArray &key, llmproxy::KeyLocation location);
    void storeFailed(const QByteArray &provider, const QByteArray &key, const QString &reason);
    void forgotten(const QByteArray &provider);
    void failed(const QByteArray &provider, const QString &reason);

private:
    struct Operation {
        enum class Kind { Read, Write, Remove };
        Kind kind = Kind::Read;
        QByteArray provider;
        QByteArray key;
    };
    void enqueue(Operation operation);
    void next();
    void onRead(const QByteArray &key);
    void onWritten();
    void onRemoved();
    void onFailed(const QString &reason);
    void finishLoadStep();

    SettingsStore *m_store;
    KeyStore *m_keys;
    QList<Operation> m_queue;
    bool m_running = false;
    Operation m_current;
    // While load() runs: the reads left, what they found, what went wrong.
    int m_readsLeft = 0;
    QHash<QByteArray, QByteArray> m_loaded;
    QStringList m_problems;
};

} // namespace llmproxy
