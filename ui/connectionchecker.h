// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Test connection: asks the upstream for its model list with the configured key and says in one
// plain sentence what is wrong (the host not found, refused, no answer, TLS, 401, 403, 404 for a
// wrong base URL, another HTTP status) or that it works, with the models the key can use. The
// key never appears in a message. Each provider is asked in its own API's form (Target): the
// OpenAI family's GET {base}/models with its profile's auth header (Bearer, Azure's api-key),
// Anthropic's GET {base}/models with x-api-key and anthropic-version.

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

struct ConfiguredProvider;

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

    // What to ask, and how: one provider's model list in its API's form.
    struct Target {
        QUrl baseUrl;   // the API's base, as the proxy uses it (…/v1, …/openai/v1)
        QByteArray key; // empty: no key is sent
        // "<authHeader>: <authPrefix><key>" (the profile's); Anthropic's is x-api-key.
        QByteArray authHeader = QByteArrayLiteral("Authorization");
        QByteArray authPrefix = QByteArrayLiteral("Bearer ");
        // Anthropic's Models API: anthropic-version, {data, has_more}, its error shape.
        bool anthropic = false;
        QString title = QStringLiteral("OpenAI"); // the provider's family, in messages
        QUrl exampleUrl = QUrl(QStringLiteral("https://api.openai.com/v1")); // may be empty
        QByteArray pathPrefix = QByteArrayLiteral("/v1"); // what its base URLs end in
        bool openAiCompatible = true;                     // "an OpenAI-compatible API" in messages
        QString keyPlace; // where a missing key goes (empty: "under API key")
    };
    // The model list of a configured provider (its profile, base URL and key).
    static Target targetFor(const ConfiguredProvider &provider);

    explicit ConnectionChecker(QObject *parent = nullptr);
    ~ConnectionChecker() override;

    void setTimeout(std::chrono::milliseconds timeout) { m_timeout = timeout; }
    bool isRunning() const { return !m_reply.isNull(); }
    const Result &result() const { return m_result; }

public Q_SLOTS:
    // GET <upstream>/models with "Authorization: Bearer <key>" (none when the key is empty).
    // A check still running is abandoned.
    void check(const QUrl &upstream, const QByteArray &key);
    // The target's model list in its API's form.
    void check(const llmproxy::ConnectionChecker::Target &target);

Q_SIGNALS:
    void finished(const QString &message, bool ok);

private:
    void readReply(QNetworkReply *reply);
    Result resultFor(QNetworkReply *reply) const;

    QNetworkAccessManager *m_network;
    QPointer<QNetworkReply> m_reply;
    Target m_target;
    QList<QSslError> m_sslErrors;
    bool m_encrypted = false; // the TLS handshake finished
    std::chrono::milliseconds m_timeout{15'000};
    Result m_result;
};

} // namespace llmproxy
