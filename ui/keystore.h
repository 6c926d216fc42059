// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The API key in the system keychain (Secret Service, KWallet, ...) through QtKeychain. Every
// operation is asynchronous and ends in exactly one signal. Where no keychain answers (no D-Bus
// session, no Secret Service), failed() says so plainly; QtKeychain's own "insecure fallback"
// does not cover that case, so the caller offers the settings file instead.
// The key itself is never logged and never part of a message.

#include <QByteArray>
#include <QObject>
#include <QString>
#include <QTimer>

#include <chrono>

namespace QKeychain {
class Job;
}

namespace llmproxy {

class KeyStore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(KeyStore)
public:
    enum class Operation { Read, Write, Remove };
    Q_ENUM(Operation)

    // `service` names the entry in the keychain (tests use their own).
    explicit KeyStore(const QString &service = QStringLiteral("llm-proxy"),
                      QObject *parent = nullptr);
    ~KeyStore() override;

    // How long an operation may take before it counts as failed (a keychain that waits for an
    // unlock prompt nobody answers). Default 20 s.
    void setTimeout(std::chrono::milliseconds timeout) { m_timeout = timeout; }
    bool isBusy() const { return m_job != nullptr; }
    QString service() const { return m_service; }
    // The entry the next operations use (default "openai-api-key"; another provider's key has
    // one of its own, providerKeyEntry()).
    void setEntry(const QString &entry) { m_entry = entry; }
    QString entry() const { return m_entry; }
    // The keychain entry of a provider's key: "provider-<name>-api-key".
    static QString providerKeyEntry(const QByteArray &provider);

    // One operation at a time; starting another while busy fails it at once.
    void read();
    void write(const QByteArray &key);
    void remove();

Q_SIGNALS:
    void readFinished(const QByteArray &key); // empty when no key is stored
    void written();
    void removed();
    // The keychain could not be used; `reason` is for the user (never contains the key).
    void failed(llmproxy::KeyStore::Operation operation, const QString &reason);

private:
    bool begin(Operation operation, QKeychain::Job *job);
    void finish(QKeychain::Job *job);
    void timedOut();

    QString m_service;
    QString m_entry = QStringLiteral("openai-api-key");
    QKeychain::Job *m_job = nullptr;
    Operation m_operation = Operation::Read;
    QTimer m_timer;
    std::chrono::milliseconds m_timeout{20'000};
};

} // namespace llmproxy
