// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Test connection: asks the upstream for its model list with the configured key and says in one
// plain sentence what is wrong (the host not found, refused, no answer, TLS, 401, 403, 404 for a
// wrong base URL, another HTTP status) or that it works, with the models the key can use. The
// key never appears in a message.

#include <QList>
#include <QNetworkReply>
#include <QObject>
#include <QPointer>
#include <QStringList>
#include <QUrl>

#include <chrono>

class QNetworkAccessManager;
class QSslError;

namespace llmproxy {

class ConnectionChecker final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ConnectionChecker)
public:
    enum class Outcome {
        Fine,
        HostNotFound,
        Refused,
        TimedOut,
        Tls,
        Unreachable, // any other transport failure
        Unauthorized,
        Forbidden,
        NotFound,
        HttpError,
        NotAModelList,
    };
    Q_ENUM(Outcome)

    struct Result {
        Outcome outcome = Outcome::Fine;
        QString message;
        int httpStatus = 0;
        QStringList models; // sorted, when fine
    };

    explicit ConnectionChecker(QObject *parent = nullptr);
    ~ConnectionChecker() override;

    void setTimeout(std::chrono::milliseconds timeout) { m_timeout = timeout; }
    bool isRunning() const { return !m_reply.isNull(); }
    const Result &result() const { return m_result; }

public Q_SLOTS:
    // GET <upstream>/models with "Authorization: Bearer <key>" (none when the key is empty).
    // A check still running is abandoned.
    void check(const QUrl &upstream, const QByteArray &key);

Q_SIGNALS:
    void finished(const QString &message, bool ok);

private:
    void readReply(QNetworkReply *reply);
    Result resultFor(QNetworkReply *reply) const;

    QNetworkAccessManager *m_network;
    QPointer<QNetworkReply> m_reply;
    QUrl m_upstream;
    QByteArray m_key;
    QList<QSslError> m_sslErrors;
    std::chrono::milliseconds m_timeout{15'000};
    Result m_result;
};

} // namespace llmproxy
