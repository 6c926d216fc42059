// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/connectionchecker.h"

#include "ui/uilogging.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkRequest>
#include <QRegularExpression>
#include <QSslError>

#include <algorithm>

namespace llmproxy {

namespace {

// Whatever the provider wrote, without anything that looks like a key.
QString withoutKeys(QString text, const QByteArray &key) {
    if (!key.isEmpty())
        text.replace(QString::fromUtf8(key), QStringLiteral("[key]"));
    static const QRegularExpression keyLike(QStringLiteral("\\b(sk|rk|pk)-[A-Za-z0-9_*\\-]{6,}"));
    text.replace(keyLike, QStringLiteral("[key]"));
    return text.simplified();
}

// error.message of an OpenAI-shaped error body, if there is one.
QString providerMessage(const QByteArray &body, const QByteArray &key) {
    const QJsonValue message = QJsonDocument::fromJson(body).object().value(
        QStringLiteral("error"))[QStringLiteral("message")];
    QString text = message.toString();
    if (text.size() > 300)
        text = text.left(300) + u'…';
    return withoutKeys(text, key);
}

QString hostOf(const QUrl &url) {
    const int port = url.port();
    return port < 0 ? url.host() : url.host() + u':' + QString::number(port);
}

} // namespace

ConnectionChecker::ConnectionChecker(QObject *parent)
    : QObject(parent)
    , m_network(new QNetworkAccessManager(this)) {}

ConnectionChecker::~ConnectionChecker() {
    if (m_reply)
        m_reply->abort();
}

void ConnectionChecker::check(const QUrl &upstream, const QByteArray &key) {
    if (m_reply) {
        QNetworkReply *old = m_reply;
        m_reply.clear();
        old->disconnect(this);
        old->abort();
        old->deleteLater();
    }
    m_upstream = upstream;
    m_key = key;
    m_sslErrors.clear();
    QUrl url = upstream;
    QString path = url.path();
    while (path.endsWith(u'/'))
        path.chop(1);
    url.setPath(path + QStringLiteral("/models"));
    QNetworkRequest request(url);
    request.setTransferTimeout(static_cast<int>(m_timeout.count()));
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    if (!key.isEmpty())
        request.setRawHeader("Authorization", QByteArrayLiteral("Bearer ") + key);
    request.setRawHeader("Accept", "application/json");
    QNetworkReply *reply = m_network->get(request);
    m_reply = reply;
    connect(reply, &QNetworkReply::sslErrors, this,
            [this](const QList<QSslError> &errors) { m_sslErrors = errors; });
    connect(reply, &QNetworkReply::finished, this, [this, reply] { readReply(reply); });
}

void ConnectionChecker::readReply(QNetworkReply *reply) {
    m_reply.clear();
    m_result = resultFor(reply);
    qCInfo(lcUi) << "connection check:" << m_result.outcome << m_result.httpStatus;
    reply->deleteLater();
    Q_EMIT finished(m_result.message, m_result.outcome == Outcome::Fine);
}

ConnectionChecker::Result ConnectionChecker::resultFor(QNetworkReply *reply) const {
    Result r;
    const QString host = hostOf(m_upstream);
    const QString modelsUrl = reply->url().toDisplayString(QUrl::RemoveUserInfo);
    r.httpStatus = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (r.httpStatus == 0) {
        switch (reply->error()) {
        case QNetworkReply::HostNotFoundError:
            r.outcome = Outcome::HostNotFound;
            r.message =
                ConnectionChecker::tr("Unreachable: the name %1 could not be found (DNS). Check "
                                      "the base URL and the network.")
                    .arg(m_upstream.host());
            return r;
        case QNetworkReply::ConnectionRefusedError:
            r.outcome = Outcome::Refused;
            r.message =
                ConnectionChecker::tr("Unreachable: %1 refused the connection; nothing listens "
                                      "there. Check the base URL and its port.")
                    .arg(host);
            return r;
        case QNetworkReply::TimeoutError:
        case QNetworkReply::OperationCanceledError:
            r.outcome = Outcome::TimedOut;
            r.message =
                ConnectionChecker::tr("Unreachable: %1 did not answer within %2 s. A firewall "
                                      "or a proxy may be in the way.")
                    .arg(host)
                    .arg(m_timeout.count() / 1000.0);
            return r;
        case QNetworkReply::SslHandshakeFailedError:
        case QNetworkReply::UnknownNetworkError:
            if (reply->error() == QNetworkReply::SslHandshakeFailedError ||
                !m_sslErrors.isEmpty()) {
                QStringList reasons;
                for (const QSslError &error : m_sslErrors)
                    reasons.append(error.errorString());
                reasons.removeDuplicates();
                r.outcome = Outcome::Tls;
                r.message = m_sslErrors.isEmpty()
                                ? ConnectionChecker::tr(
                                      "TLS failed: the secure connection to %1 could not be "
                                      "set up (%2). Is the base URL's scheme right (https:// "
                                      "for a TLS server, http:// for a plain one)?")
                                      .arg(host, reply->errorString())
                                : ConnectionChecker::tr(
                                      "TLS failed: the certificate of %1 is not trusted (%2). "
                                      "A network that intercepts HTTPS, a wrong clock, or a "
                                      "self-made certificate causes this.")
                                      .arg(host, reasons.join(QStringLiteral("; ")));
                return r;
            }
            break;
        default:
            break;
        }
        r.outcome = Outcome::Unreachable;
        r.message = ConnectionChecker::tr("Unreachable: %1 (%2).").arg(host, reply->errorString());
        return r;
    }

    const QByteArray body = reply->readAll();
    const QString said = providerMessage(body, m_key);
    const QString saying = said.isEmpty() ? QString() : ConnectionChecker::tr(" It said: ") + said;
    switch (r.httpStatus) {
    case 200:
        break;
    case 401:
        r.outcome = Outcome::Unauthorized;
        r.message =
            m_key.isEmpty()
                ? ConnectionChecker::tr("401: %1 wants a key, and none is configured. Enter "
                                        "one under API key, or let each client send its own.")
                      .arg(host)
                : ConnectionChecker::tr("401: %1 refused the key. It is wrong, revoked, or for "
                                        "another provider; enter it again.")
                      .arg(host);
        return r;
    case 403:
        r.outcome = Outcome::Forbidden;
        r.message =
            ConnectionChecker::tr("403: %1 knows the key but does not allow it to list models "
                                  "(its project, organization or region is not permitted).")
                .arg(host) +
            saying;
        return r;
    case 404:
        r.outcome = Outcome::NotFound;
        r.message = ConnectionChecker::tr("404: %1 has no model list at %2, so the base URL is "
                                          "probably wrong (OpenAI's is https://api.openai.com/v1; "
                                          "most providers' end in /v1).")
                        .arg(host, modelsUrl);
        return r;
    default:
        r.outcome = Outcome::HttpError;
        r.message = ConnectionChecker::tr("HTTP %1 from %2 when asking for the model list.")
                        .arg(r.httpStatus)
                        .arg(host) +
                    saying;
        return r;
    }

    const QJsonValue data = QJsonDocument::fromJson(body).object().value(QStringLiteral("data"));
    if (!data.isArray()) {
        r.outcome = Outcome::NotAModelList;
        r.message =
            ConnectionChecker::tr("%1 answered, but not with a model list; is the base URL an "
                                  "OpenAI-compatible API (ending in /v1)?")
                .arg(host);
        return r;
    }
    for (const QJsonValue &model : data.toArray()) {
        const QString id = model[QStringLiteral("id")].toString();
        if (!id.isEmpty())
            r.models.append(id);
    }
    std::sort(r.models.begin(), r.models.end());
    r.outcome = Outcome::Fine;
    const qsizetype shown = std::min<qsizetype>(r.models.size(), 5);
    QString examples = QStringList(r.models.mid(0, shown)).join(QStringLiteral(", "));
    if (r.models.size() > shown)
        examples += QStringLiteral(", …");
    r.message =
        r.models.isEmpty()
            ? ConnectionChecker::tr("Fine: %1 accepted the key, but lists no models for it.")
                  .arg(host)
            : ConnectionChecker::tr("Fine: %1 accepted the key, which can use %2 model%3: %4.")
                  .arg(host)
                  .arg(r.models.size())
                  .arg(r.models.size() == 1 ? QString() : QStringLiteral("s"), examples);
    return r;
}

} // namespace llmproxy
