// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/keystore.h"

#include "ui/uilogging.h"

#ifndef LLMPROXY_NO_KEYCHAIN
#include <qt6keychain/keychain.h>
#endif

namespace llmproxy {

QString KeyStore::providerKeyEntry(const QByteArray &provider) {
    return QStringLiteral("provider-") + QString::fromLatin1(provider) + QStringLiteral("-api-key");
}

#ifndef LLMPROXY_NO_KEYCHAIN

namespace {

QString reasonFor(KeyStore::Operation operation, const QKeychain::Job &job) {
    QString what;
    switch (operation) {
    case KeyStore::Operation::Read:
        what = KeyStore::tr("could not read the key from the system keychain");
        break;
    case KeyStore::Operation::Write:
        what = KeyStore::tr("could not save the key in the system keychain");
        break;
    case KeyStore::Operation::Remove:
        what = KeyStore::tr("could not remove the key from the system keychain");
        break;
    }
    switch (job.error()) {
    case QKeychain::NoBackendAvailable:
    case QKeychain::NotImplemented:
        return KeyStore::tr("No system keychain is available: ") + what;
    case QKeychain::AccessDeniedByUser:
    case QKeychain::AccessDenied:
        return KeyStore::tr("The system keychain refused access: ") + what;
    default:
        break;
    }
    const QString detail = job.errorString().trimmed();
    return KeyStore::tr("No system keychain is available: ") + what +
           (detail.isEmpty() ? QString() : QStringLiteral(" (") + detail + u')');
}
} // namespace

KeyStore::KeyStore(const QString &service, QObject *parent)
    : QObject(parent)
    , m_service(service) {
    m_timer.setSingleShot(true);
    connect(&m_timer, &QTimer::timeout, this, &KeyStore::timedOut);
}

KeyStore::~KeyStore() {
    // A job still running finishes on its own and deletes itself; we only stop listening.
    if (m_job)
        disconnect(m_job, nullptr, this, nullptr);
}

// Each job deletes itself once it has finished (autoDelete), so it needs no other owner.
void KeyStore::read() {
    auto *job = new QKeychain::ReadPasswordJob(m_service);
    job->setKey(m_entry);
    begin(Operation::Read, job);
}

void KeyStore::write(const QByteArray &key) {
    auto *job = new QKeychain::WritePasswordJob(m_service);
    job->setKey(m_entry);
    job->setBinaryData(key);
    begin(Operation::Write, job);
}

void KeyStore::remove() {
    auto *job = new QKeychain::DeletePasswordJob(m_service);
    job->setKey(m_entry);
    begin(Operation::Remove, job);
}

bool KeyStore::begin(Operation operation, QKeychain::Job *job) {
    job->setAutoDelete(true);
    if (m_job) {
        delete job; // never started
        QMetaObject::invokeMethod(
            this,
            [this, operation] {
                Q_EMIT failed(operation,
                              KeyStore::tr("The system keychain is still busy; try again"));
            },
            Qt::QueuedConnection);
        return false;
    }
    m_job = job;
    m_operation = operation;
    connect(job, &QKeychain::Job::finished, this, &KeyStore::finish);
    m_timer.start(m_timeout);
    job->start();
    return true;
}

void KeyStore::finish(QKeychain::Job *job) {
    if (job != m_job)
        return;
    m_job = nullptr;
    m_timer.stop();
    const QKeychain::Error error = job->error();
    switch (m_operation) {
    case Operation::Read:
        if (error == QKeychain::NoError) {
            const auto *readJob = static_cast<QKeychain::ReadPasswordJob *>(job);
            Q_EMIT readFinished(readJob->binaryData().trimmed());
        } else if (error == QKeychain::EntryNotFound) {
            Q_EMIT readFinished(QByteArray());
        } else {
            qCWarning(lcUi) << "keychain read failed, error" << error;
            Q_EMIT failed(m_operation, reasonFor(m_operation, *job));
        }
        return;
    case Operation::Write:
        if (error == QKeychain::NoError) {
            Q_EMIT written();
        } else {
            qCWarning(lcUi) << "keychain write failed, error" << error;
            Q_EMIT failed(m_operation, reasonFor(m_operation, *job));
        }
        return;
    case Operation::Remove:
        if (error == QKeychain::NoError || error == QKeychain::EntryNotFound) {
            Q_EMIT removed();
        } else {
            qCWarning(lcUi) << "keychain removal failed, error" << error;
            Q_EMIT failed(m_operation, reasonFor(m_operation, *job));
        }
        return;
    }
}

void KeyStore::timedOut() {
    if (!m_job)
        return;
    disconnect(m_job, nullptr, this, nullptr); // it deletes itself when it ends
    m_job = nullptr;
    Q_EMIT failed(m_operation,
                  KeyStore::tr("The system keychain did not answer within %1 s")
                      .arg(std::chrono::duration_cast<std::chrono::seconds>(m_timeout).count()));
}

#else // LLMPROXY_NO_KEYCHAIN

// The headless build has no keychain: every operation fails at once (queued, as a job would),
// and the settings controller keeps the key in the owner-only settings file instead.
KeyStore::KeyStore(const QString &service, QObject *parent)
    : QObject(parent)
    , m_service(service) {}

KeyStore::~KeyStore() = default;

void KeyStore::read() {
    begin(Operation::Read, nullptr);
}

void KeyStore::write(const QByteArray &key) {
    Q_UNUSED(key);
    begin(Operation::Write, nullptr);
}

void KeyStore::remove() {
    begin(Operation::Remove, nullptr);
}

bool KeyStore::begin(Operation operation, QKeychain::Job *job) {
    Q_UNUSED(job);
    QMetaObject::invokeMethod(
        this,
        [this, operation] {
            Q_EMIT failed(operation,
                          KeyStore::tr("No system keychain is available: this is the headless "
                                       "build of llm-proxy"));
        },
        Qt::QueuedConnection);
    return false;
}

void KeyStore::finish(QKeychain::Job *job) {
    Q_UNUSED(job);
}

void KeyStore::timedOut() {}

#endif // LLMPROXY_NO_KEYCHAIN

} // namespace llmproxy
