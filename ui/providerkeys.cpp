// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/providerkeys.h"

#include "ui/keystore.h"
#include "ui/uilogging.h"

namespace llmproxy {

ProviderKeys::ProviderKeys(SettingsStore *store, const QString &service, QObject *parent)
    : QObject(parent)
    , m_store(store)
    , m_keys(new KeyStore(service, this)) {
    connect(m_keys, &KeyStore::readFinished, this, &ProviderKeys::onRead);
    connect(m_keys, &KeyStore::written, this, &ProviderKeys::onWritten);
    connect(m_keys, &KeyStore::removed, this, &ProviderKeys::onRemoved);
    connect(m_keys, &KeyStore::failed, this,
            [this](KeyStore::Operation, const QString &reason) { onFailed(reason); });
}

ProviderKeys::~ProviderKeys() = default;

void ProviderKeys::load() {
    m_loaded.clear();
    m_problems.clear();
    m_readsLeft = 0;
    for (const QByteArray &provider : m_store->providersWithStoredKeys()) {
        if (m_store->providerKeyLocation(provider) == KeyLocation::Keychain) {
            ++m_readsLeft;
            enqueue({Operation::Kind::Read, provider, QByteArray()});
        }
    }
    if (m_readsLeft == 0) {
        QMetaObject::invokeMethod(
            this, [this] { Q_EMIT loaded(m_loaded, m_problems); }, Qt::QueuedConnection);
    }
}

void ProviderKeys::store(const QByteArray &provider, const QByteArray &key, KeyLocation location) {
    const QByteArray trimmed = key.trimmed();
    if (trimmed.isEmpty())
        return;
    if (location == KeyLocation::File) {
        const bool wasInKeychain = m_store->providerKeyLocation(provider) == KeyLocation::Keychain;
        if (!m_store->storeProviderKeyInFile(provider, trimmed)) {
            const QString reason = m_store->error();
            QMetaObject::invokeMethod(
                this,
                [this, provider, trimmed, reason] {
                    Q_EMIT storeFailed(provider, trimmed, reason);
                },
                Qt::QueuedConnection);
            return;
        }
        if (wasInKeychain)
            enqueue({Operation::Kind::Remove, provider, QByteArray()}); // the old copy
        QMetaObject::invokeMethod(
            this,
            [this, provider, trimmed] { Q_EMIT stored(provider, trimmed, KeyLocation::File); },
            Qt::QueuedConnection);
        return;
    }
    enqueue({Operation::Kind::Write, provider, trimmed});
}

void ProviderKeys::forget(const QByteArray &provider) {
    const KeyLocation location = m_store->providerKeyLocation(provider);
    if (!m_store->setProviderKeyLocation(provider, KeyLocation::None)) {
        const QString reason = m_store->error();
        QMetaObject::invokeMethod(
            this, [this, provider, reason] { Q_EMIT failed(provider, reason); },
            Qt::QueuedConnection);
        return;
    }
    if (location == KeyLocation::Keychain) {
        enqueue({Operation::Kind::Remove, provider, QByteArray()});
        return;
    }
    QMetaObject::invokeMethod(
        this, [this, provider] { Q_EMIT forgotten(provider); }, Qt::QueuedConnection);
}

void ProviderKeys::enqueue(Operation operation) {
    m_queue.append(std::move(operation));
    if (!m_running)
        next();
}

void ProviderKeys::next() {
    if (m_queue.isEmpty()) {
        m_running = false;
        return;
    }
    m_running = true;
    m_current = m_queue.takeFirst();
    m_keys->setEntry(KeyStore::providerKeyEntry(m_current.provider));
    switch (m_current.kind) {
    case Operation::Kind::Read:
        m_keys->read();
        return;
    case Operation::Kind::Write:
        m_keys->write(m_current.key);
        return;
    case Operation::Kind::Remove:
        m_keys->remove();
        return;
    }
}

void ProviderKeys::onRead(const QByteArray &key) {
    if (key.isEmpty()) {
        m_problems.append(ProviderKeys::tr("The keychain has no key for provider %1 any more")
                              .arg(QString::fromLatin1(m_current.provider)));
    } else {
        m_loaded.insert(m_current.provider, key);
    }
    finishLoadStep();
    next();
}

void ProviderKeys::onWritten() {
    const Operation done = m_current;
    if (!m_store->setProviderKeyLocation(done.provider, KeyLocation::Keychain)) {
        Q_EMIT failed(done.provider, m_store->error());
    } else {
        Q_EMIT stored(done.provider, done.key, KeyLocation::Keychain);
    }
    next();
}

void ProviderKeys::onRemoved() {
    // A key moved to the file leaves its keychain copy behind: only a forgotten key says so.
    if (m_store->providerKeyLocation(m_current.provider) == KeyLocation::None)
        Q_EMIT forgotten(m_current.provider);
    next();
}

void ProviderKeys::onFailed(const QString &reason) {
    const Operation done = m_current;
    switch (done.kind) {
    case Operation::Kind::Read:
        qCWarning(lcUi).noquote() << "provider" << done.provider
                                  << "key not read from the keychain";
        m_problems.append(
            ProviderKeys::tr("Provider %1: %2").arg(QString::fromLatin1(done.provider), reason));
        finishLoadStep();
        break;
    case Operation::Kind::Write:
        Q_EMIT storeFailed(done.provider, done.key, reason);
        break;
    case Operation::Kind::Remove:
        Q_EMIT failed(done.provider, reason);
        break;
    }
    next();
}

void ProviderKeys::finishLoadStep() {
    if (m_current.kind != Operation::Kind::Read || m_readsLeft <= 0)
        return;
    if (--m_readsLeft == 0)
        Q_EMIT loaded(m_loaded, m_problems);
}

} // namespace llmproxy
