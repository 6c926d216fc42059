// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/connectionchecker.h"

#include "provider/providerrouting.h"
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

// Whatever the provider wrote, without anything that looks like a key (OpenAI's and
// Anthropic's sk-…, Google's AIza…).
QString withoutKeys(QString text, const QByteArray &key) {
    if (!key.isEmpty())
        text.replace(QString::fromUtf8(key), QStringLiteral("[key]"));
    static const QRegularExpression keyLike(
        QStringLiteral("\\b((sk|rk|pk)-[A-Za-z0-9_*\\-]{6,}|AIza[A-Za-z0-9_\\-]{10,})"));
    text.replace(keyLike, QStringLiteral("[key]"));
    return text.simplified();
}

// The error object of an error body: OpenAI's and Anthropic's {"error":{…}}, or Google's
// [{"error":{…}}] (Gemini's OpenAI compatibility layer answers some errors so).
QJsonObject errorObject(const QByteArray &body) {
    const QJsonDocument document = QJsonDocument::fromJson(body);
    const QJsonObject object =
        document.isArray() ? document.array().at(0).toObject() : document.object();
    return object.value(QStringLiteral("error")).toObject();
}

// error.message of an error body, if there is one.
QString providerMessage(const QByteArray &body, const QByteArray &key) {
    QString text = errorObject(body).value(QStringLiteral("message")).toString();
    if (text.size() > 300)
        text = text.left(300) + u'…';
    return withoutKeys(text, key);
}

// Google refuses a wrong key with 400 INVALID_ARGUMENT and the reason API_KEY_INVALID.
bool isGoogleKeyRefusal(const QByteArray &body) {
    for (const QJsonValue &detail : errorObject(body).value(QStringLiteral("details")).toArray()) {
        if (detail[QStringLiteral("reason")].toString() == QLatin1StringView("API_KEY_INVALID"))
            return true;
    }
    return false;
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

ConnectionChecker::Target ConnectionChecker::targetFor(const ConfiguredProvider &provider) {
    Target target;
    target.baseUrl = provider.baseUrl;
    target.key = provider.apiKey;
    if (const ProviderProfile *profile = provider.profile) {
        target.authHeader = profile->authHeader;
        target.authPrefix = profile->authPrefix;
        target.anthropic = profile->messagesApi;
        target.title = profile->title;
        target.exampleUrl = profile->defaultUrl;
        target.pathPrefix = profile->pathPrefix;
        target.openAiCompatible = !profile->messagesApi;
    }
    if (provider.name != DefaultProviderName)
        target.keyPlace = ConnectionChecker::tr("in this provider's Key field (Edit…)");
    return target;
}

void ConnectionChecker::check(const QUrl &upstream, const QByteArray &key) {
    Target target;
    target.baseUrl = upstream;
    target.key = key;
    check(target);
}

void ConnectionChecker::check(const Target &target) {
    if (m_reply) {
        QNetworkReply *old = m_reply;
        m_reply.clear();
        old->disconnect(this);
        old->abort();
        old->deleteLater();
    }
    m_target = target;
    m_sslErrors.clear();
    m_encrypted = false;
    QUrl url = target.baseUrl;
    QString path = url.path();
    while (path.endsWith(u'/'))
        path.chop(1);
    url.setPath(path + QStringLiteral("/models"));
    if (target.anthropic)
        url.setQuery(QStringLiteral("limit=1000")); // its most; 20 unless asked
    QNetworkRequest request(url);
    request.setTransferTimeout(static_cast<int>(m_timeout.count()));
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    if (!target.key.isEmpty())
        request.setRawHeader(target.authHeader, target.authPrefix + target.key);
    if (target.anthropic)
        request.setRawHeader("anthropic-version", "2023-06-01");
    request.setRawHeader("Accept", "application/json");
    QNetworkReply *reply = m_network->get(request);
    m_reply = reply;
    connect(reply, &QNetworkReply::sslErrors, this,
            [this](const QList<QSslError> &errors) { m_sslErrors = errors; });
    connect(reply, &QNetworkReply::encrypted, this, [this] { m_encrypted = true; });
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
    const QString host = hostOf(m_target.baseUrl);
    const QString modelsUrl = reply->url().toDisplayString(QUrl::RemoveUserInfo);
    r.httpStatus = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (r.httpStatus == 0) {
        switch (reply->error()) {
        case QNetworkReply::HostNotFoundError:
            r.outcome = Outcome::HostNotFound;
            r.message =
                ConnectionChecker::tr("Unreachable: the name %1 could not be found (DNS). Check "
                                      "the base URL and the network.")
                    .arg(m_target.baseUrl.host());
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
        case QNetworkReply::RemoteHostClosedError:
            // Closed before TLS was set up: a plain server (or a filter) at an https URL.
            if (m_target.baseUrl.scheme() == QLatin1StringView("https") && !m_encrypted) {
                r.outcome = Outcome::Tls;
                r.message =
                    ConnectionChecker::tr("TLS failed: %1 closed the connection before the secure "
                                          "connection was set up. Is the base URL's scheme right "
                                          "(https:// for a TLS server, http:// for a plain one)?")
                        .arg(host);
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
    const QByteArray &key = m_target.key;
    const QString said = providerMessage(body, key);
    const QString saying = said.isEmpty() ? QString() : ConnectionChecker::tr(" It said: ") + said;
    const bool keyRefused =
        r.httpStatus == 401 || (r.httpStatus == 400 && isGoogleKeyRefusal(body));
    switch (keyRefused ? 401 : r.httpStatus) {
    case 200:
        break;
    case 401:
        r.outcome = Outcome::Unauthorized;
        r.message = key.isEmpty()
                        ? ConnectionChecker::tr("401: %1 wants a key, and none is configured. "
                                                "Enter one %2, or let each client send its own.")
                              .arg(host, m_target.keyPlace.isEmpty()
                                             ? ConnectionChecker::tr("under API key")
                                             : m_target.keyPlace)
                        : ConnectionChecker::tr("401: %1 refused the key. It is wrong, revoked, "
                                                "or for another provider; enter it again.")
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
        r.message =
            m_target.exampleUrl.isEmpty()
                ? ConnectionChecker::tr("404: %1 has no model list at %2, so the base URL is "
                                        "probably wrong (%3's end in %4).")
                      .arg(host, modelsUrl, m_target.title,
                           QString::fromLatin1(m_target.pathPrefix))
                : ConnectionChecker::tr("404: %1 has no model list at %2, so the base URL is "
                                        "probably wrong (%3's is %4; most providers' end in "
                                        "/v1).")
                      .arg(host, modelsUrl, m_target.title, m_target.exampleUrl.toDisplayString());
        return r;
    default:
        r.outcome = Outcome::HttpError;
        r.message = ConnectionChecker::tr("HTTP %1 from %2 when asking for the model list.")
                        .arg(r.httpStatus)
                        .arg(host) +
                    saying;
        return r;
    }

    // {"data": [...]} (OpenAI, Anthropic), or the bare list (Together).
    const QJsonDocument document = QJsonDocument::fromJson(body);
    const QJsonValue data = document.isArray() ? QJsonValue(document.array())
                                               : document.object().value(QStringLiteral("data"));
    if (!data.isArray()) {
        r.outcome = Outcome::NotAModelList;
        r.message =
            m_target.openAiCompatible
                ? ConnectionChecker::tr("%1 answered, but not with a model list; is the base "
                                        "URL an OpenAI-compatible API (ending in %2)?")
                      .arg(host, QString::fromLatin1(m_target.pathPrefix))
                : ConnectionChecker::tr("%1 answered, but not with a model list; is the base "
                                        "URL %2's API (ending in %3)?")
                      .arg(host, m_target.title, QString::fromLatin1(m_target.pathPrefix));
        return r;
    }
    for (const QJsonValue &model : data.toArray()) {
        QString id = model[QStringLiteral("id")].toString();
        if (id.startsWith(QStringLiteral("models/"))) // Gemini's names
            id = id.mid(7);
        if (!id.isEmpty())
            r.models.append(id);
    }
    std::sort(r.models.begin(), r.models.end());
    // Anthropic's pages hold at most 1000; more is rare enough to say so rather than page on.
    const bool more = document.object().value(QStringLiteral("has_more")).toBool();
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
                  .arg(host,
                       more ? ConnectionChecker::tr("more than %1").arg(r.models.size())
                            : QString::number(r.models.size()),
                       r.models.size() == 1 && !more ? QString() : QStringLiteral("s"), examples);
    return r;
}

} // namespace llmproxy
