// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/httpprovider.h"

#include "api/clock.h"
#include "api/logging.h"

#include <QDateTime>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>

#include <cmath>
#include <limits>
#include <memory>

namespace llmproxy {

namespace {

// Back-pressure for downloads: Qt stops reading the socket when this much is unread.
constexpr qint64 kReadBufferBytes = 1024 * 1024;
constexpr qint64 kDefaultTransferTimeoutMs = 120 * 1000;

QByteArray userAgent() {
    return QByteArrayLiteral("llm-proxy/" LLMPROXY_VERSION);
}

int clampedMs(std::chrono::milliseconds timeout) {
    return static_cast<int>(std::min<qint64>(timeout.count(), std::numeric_limits<int>::max()));
}

} // namespace

namespace http {

int httpStatusOf(const QNetworkReply *reply) {
    const QVariant v = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    return v.isValid() ? v.toInt() : 0;
}

QByteArray readRest(QNetworkReply *reply) {
    return reply->isOpen() ? reply->readAll() : QByteArray();
}

bool isTransportError(int networkError) {
    return networkError != QNetworkReply::NoError &&
           networkError < QNetworkReply::ContentAccessDenied;
}

std::optional<QJsonObject> parseObject(const QByteArray &json) {
    QJsonParseError err;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject())
        return std::nullopt;
    return doc.object();
}

QByteArray stringOf(const QJsonValue &v) {
    if (v.isString())
        return v.toString().toUtf8();
    if (v.isDouble())
        return QByteArray::number(v.toInteger());
    return {};
}

void scrubKey(ProviderError &error, const QByteArray &apiKey) {
    if (apiKey.size() < 8)
        return;
    const QByteArray redacted = redactedKey(apiKey);
    error.body.replace(apiKey, redacted);
    error.message.replace(QString::fromUtf8(apiKey), QString::fromUtf8(redacted));
}

std::optional<ProviderError> replyError(QNetworkReply *reply, const QByteArray &body,
                                        const QByteArray &apiKey) {
    if (reply->error() == QNetworkReply::NoError && isSuccess(httpStatusOf(reply)))
        return std::nullopt;
    ProviderError err = HttpProviderBase::errorFromReply(reply, body);
    scrubKey(err, apiKey);
    qCWarning(lcProvider).noquote() << reply->url().toDisplayString() << "failed, status"
                                    << err.httpStatus << "-" << err.message;
    return err;
}

} // namespace http

using namespace http;

struct HttpProviderBase::LineDownload {
    std::function<void(QByteArrayView)> onLine;
    LineTooLongCallback onLineTooLong;
    QByteArray apiKey;
    qsizetype maxLineBytes = kMaxLineBytes;
    QByteArray partial;        // an unfinished line (2xx answers), never over maxLineBytes
    QByteArray longStart;      // the first bytes of a line over the limit, while it is skipped
    qint64 longBytes = -1;     // that line's length so far; -1 when no line is being skipped
    bool longEndsInCr = false; // its last byte so far is a CR (not part of the line)
    QByteArray errorBody;      // the answer's body (non-2xx answers), capped
};

HttpProviderBase::HttpProviderBase(QNetworkAccessManager *nam, const QUrl &baseUrl, QObject *parent)
    : Provider(parent)
    , m_nam(nam)
    , m_baseUrl(baseUrl) {}

HttpProviderBase::~HttpProviderBase() {
    // Abort what is in flight without calling back: disconnect first, because abort() emits
    // finished() synchronously and this object is still alive here.
    const std::vector<QPointer<QNetworkReply>> replies = std::move(m_replies);
    m_replies.clear();
    for (const QPointer<QNetworkReply> &reply : replies) {
        if (!reply)
            continue;
        reply->disconnect(this);
        reply->abort();
        reply->deleteLater();
    }
}

QUrl HttpProviderBase::endpointUrl(const QByteArray &encodedPath,
                                   const QByteArray &encodedQuery) const {
    QUrl url = m_baseUrl;
    QString path = url.path(QUrl::FullyEncoded);
    while (path.endsWith(QLatin1Char('/')))
        path.chop(1);
    url.setPath(path + QString::fromLatin1(encodedPath), QUrl::StrictMode);
    if (encodedQuery.isEmpty())
        url.setQuery(QString());
    else
        url.setQuery(QString::fromLatin1(encodedQuery), QUrl::StrictMode);
    url.setFragment(QString());
    return url;
}

void HttpProviderBase::prepareRequest(QNetworkRequest &req, const QByteArray &apiKey) const {
    req.setHeader(QNetworkRequest::UserAgentHeader, userAgent());
    req.setRawHeader(QByteArrayLiteral("Accept"), QByteArrayLiteral("application/json"));
    // Every call has one: a timeout of zero or less means the default, never "wait forever".
    req.setTransferTimeout(clampedMs(m_transferTimeout.count() > 0
                                         ? m_transferTimeout
                                         : std::chrono::milliseconds(kDefaultTransferTimeoutMs)));
    // Never follow a redirect to another origin: it would carry the key along.
    req.setAttribute(QNetworkRequest::RedirectPolicyAttribute,
                     QNetworkRequest::SameOriginRedirectPolicy);
    // No cookies either way, whatever jar the manager has.
    req.setAttribute(QNetworkRequest::CookieLoadControlAttribute, QNetworkRequest::Manual);
    req.setAttribute(QNetworkRequest::CookieSaveControlAttribute, QNetworkRequest::Manual);
    qCDebug(lcProvider).noquote() << "request" << req.url().toDisplayString() << "key"
                                  << redactedKey(apiKey);
}

void HttpProviderBase::track(QNetworkReply *reply, std::function<void(QNetworkReply *)> handler) {
    m_replies.emplace_back(reply);
    connect(reply, &QNetworkReply::finished, this,
            [this, reply, handler = std::move(handler)]() mutable {
                std::erase_if(m_replies, [reply](const QPointer<QNetworkReply> &r) {
                    return r.isNull() || r.data() == reply;
                });
                reply->deleteLater();
                // The handler may destroy this provider: keep it alive on the stack.
                const std::function<void(QNetworkReply *)> h = std::move(handler);
                h(reply);
            });
}

void HttpProviderBase::downloadLines(QNetworkRequest req, const QByteArray &apiKey,
                                     std::function<void(QByteArrayView line)> onLine,
                                     LineTooLongCallback onLineTooLong, DoneCallback done) {
    // The read-buffer limit (our back-pressure) is ignored over HTTP/2 in Qt 6.4.
    req.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    // JSONL compresses very well; do not mistake a big result file for a zip bomb.
    req.setDecompressedSafetyCheckThreshold(-1);

    auto download = std::make_shared<LineDownload>();
    download->onLine = std::move(onLine);
    download->onLineTooLong = std::move(onLineTooLong);
    download->apiKey = apiKey;
    download->maxLineBytes = m_maxLineBytes;

    QNetworkReply *reply = m_nam->get(req);
    reply->setReadBufferSize(kReadBufferBytes);
    // A queued request may drop the limit set above: set it again once the answer starts.
    connect(reply, &QNetworkReply::metaDataChanged, this,
            [reply] { reply->setReadBufferSize(kReadBufferBytes); });
    connect(reply, &QNetworkReply::readyRead, this,
            [this, reply, download] { drainLines(reply, *download); });
    track(reply, [this, download, done = std::move(done)](QNetworkReply *r) {
        finishLines(r, *download, done);
    });
}

// Never canReadLine()/readLine(): with a read-buffer limit they stall (qt64-notes §5).
void HttpProviderBase::drainLines(QNetworkReply *reply, LineDownload &download) {
    const QByteArray chunk = readRest(reply);
    if (chunk.isEmpty())
        return;
    if (!isSuccess(httpStatusOf(reply))) {
        if (download.errorBody.size() < kMaxErrorBodyBytes)
            download.errorBody += chunk.left(kMaxErrorBodyBytes - download.errorBody.size());
        return;
    }
    // Only the new bytes are searched for line ends: a long line costs linear time.
    qsizetype start = 0;
    while (start < chunk.size()) {
        const qsizetype nl = chunk.indexOf('\n', start);
        const qsizetype end = nl < 0 ? chunk.size() : nl;
        const QByteArrayView piece(chunk.constData() + start, end - start);
        start = end + 1;
        if (!takeLinePiece(download, piece, nl >= 0))
            return; // destroyed by a callback: stop here, silently
    }
}

bool HttpProviderBase::takeLinePiece(LineDownload &d, QByteArrayView piece, bool lineEnds) {
    if (d.longBytes >= 0) { // skipping a line over the limit
        d.longBytes += piece.size();
        if (!piece.isEmpty())
            d.longEndsInCr = piece.back() == '\r';
        return lineEnds ? endTooLongLine(d) : true;
    }
    if (d.partial.size() + piece.size() > d.maxLineBytes) {
        // Over the limit: keep its start (to find its custom_id), drop the rest as it comes.
        d.longBytes = d.partial.size() + piece.size();
        d.longEndsInCr = piece.isEmpty() ? d.partial.endsWith('\r') : piece.back() == '\r';
        d.longStart = d.partial.left(kLineStartBytes);
        d.longStart +=
            piece.first(std::min<qsizetype>(piece.size(), kLineStartBytes - d.longStart.size()));
        d.partial = QByteArray();
        return lineEnds ? endTooLongLine(d) : true;
    }
    if (!lineEnds) {
        d.partial.append(piece.data(), piece.size());
        return true;
    }
    QByteArray joined;
    QByteArrayView line = piece;
    if (!d.partial.isEmpty()) {
        joined = std::exchange(d.partial, QByteArray());
        joined.append(piece.data(), piece.size());
        line = joined;
    }
    if (line.endsWith('\r'))
        line.chop(1);
    if (line.isEmpty())
        return true;
    const QPointer<HttpProviderBase> self(this);
    d.onLine(line);
    return !self.isNull();
}

bool HttpProviderBase::endTooLongLine(LineDownload &d) {
    const QByteArray start = std::exchange(d.longStart, QByteArray());
    TooLongLine line;
    line.start = start;
    line.bytes = std::exchange(d.longBytes, -1) - (d.longEndsInCr ? 1 : 0);
    line.limit = d.maxLineBytes;
    qCWarning(lcProvider).noquote()
        << "a line of a result file is" << line.bytes << "bytes long, over the limit of"
        << line.limit << "bytes: it is skipped";
    if (!d.onLineTooLong)
        return true;
    const QPointer<HttpProviderBase> self(this);
    d.onLineTooLong(line);
    return !self.isNull();
}

void HttpProviderBase::finishLines(QNetworkReply *reply, LineDownload &download,
                                   const DoneCallback &done) {
    const QPointer<HttpProviderBase> self(this);
    drainLines(reply, download);
    if (!self)
        return;
    if (std::optional<ProviderError> err = replyError(reply, download.errorBody, download.apiKey)) {
        done(std::move(err));
        return;
    }
    // A last line without a newline.
    if (download.longBytes >= 0 || !download.partial.isEmpty()) {
        if (!takeLinePiece(download, {}, true))
            return;
    }
    done(std::nullopt);
}

std::function<void(QByteArrayView)>
HttpProviderBase::resultLines(QObject *context, const QByteArray &source,
                              std::shared_ptr<ResultCallback> onLine) {
    return [this, guard = QPointer<QObject>(context), source, onLine](QByteArrayView line) {
        if (!guard)
            return;
        QString error;
        std::optional<ResultLine> result = decodeResultLine(line, &error);
        if (!result) {
            qCWarning(lcProvider).noquote()
                << "a result line of" << source << "was ignored:" << error;
            return;
        }
        (*onLine)(std::move(*result));
    };
}

void HttpProviderBase::postSynchronous(QNetworkRequest req, const QByteArray &body,
                                       const QByteArray &apiKey,
                                       bool (*passedOnToClient)(const QByteArray &lowerName),
                                       Callback<SyncAnswer> done,
                                       std::optional<std::chrono::milliseconds> timeout) {
    req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    req.setTransferTimeout(clampedMs(timeout && timeout->count() > 0
                                         ? *timeout
                                         : std::max(m_transferTimeout, kMinSyncTransferTimeout)));
    QNetworkReply *reply = m_nam->post(req, body);
    track(reply, [key = apiKey, passedOnToClient, done = std::move(done)](QNetworkReply *r) {
        const QByteArray answerBody = readRest(r);
        const int status = httpStatusOf(r);
        ProviderResult<SyncAnswer> result;
        if (isTransportError(r->error()) || status <= 0) {
            result.error = errorFromReply(r, answerBody);
            result.error.httpStatus = 0; // no complete answer, whatever the status line said
            scrubKey(result.error, key);
            qCWarning(lcProvider).noquote()
                << r->url().toDisplayString() << "failed:" << result.error.message;
            done(std::move(result));
            return;
        }
        SyncAnswer answer;
        answer.httpStatus = status;
        answer.contentType = r->rawHeader(QByteArrayLiteral("Content-Type"));
        for (const auto &[name, value] : r->rawHeaderPairs()) {
            const QByteArray lower = name.toLower();
            if (passedOnToClient(lower))
                answer.headers.emplaceBack(lower, value);
        }
        answer.body = answerBody;
        answer.retryAfter = parseRetryAfter(r->rawHeader(QByteArrayLiteral("retry-after-ms")),
                                            r->rawHeader(QByteArrayLiteral("Retry-After")));
        qCDebug(lcProvider).noquote() << r->url().toDisplayString() << "answered" << status;
        result.value = std::move(answer);
        done(std::move(result));
    });
}

std::optional<std::chrono::milliseconds>
HttpProviderBase::parseRetryAfter(const QByteArray &retryAfterMs, const QByteArray &retryAfter) {
    using std::chrono::milliseconds;
    // Whatever the provider says, no wait is longer than MaxTimerInterval (24 h): a timer
    // started with it must not overflow.
    const auto capped = [](double ms) {
        return milliseconds(std::llround(std::min(ms, double(MaxTimerInterval.count()))));
    };
    bool ok = false;
    const double ms = retryAfterMs.trimmed().toDouble(&ok);
    if (ok && std::isfinite(ms) && ms >= 0)
        return capped(ms);

    const QByteArray value = retryAfter.trimmed();
    if (value.isEmpty())
        return std::nullopt;
    const double seconds = value.toDouble(&ok);
    if (ok && std::isfinite(seconds) && seconds >= 0)
        return capped(seconds * 1000);

    // An HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"); Qt 6.4's RFC 2822 parser wants +0000.
    QString date = QString::fromLatin1(value);
    if (date.endsWith(QLatin1StringView(" GMT")) || date.endsWith(QLatin1StringView(" UTC")))
        date = date.chopped(4) + QLatin1StringView(" +0000");
    const QDateTime when = QDateTime::fromString(date, Qt::RFC2822Date);
    if (!when.isValid())
        return std::nullopt;
    const qint64 delta = QDateTime::currentDateTimeUtc().msecsTo(when);
    return std::clamp(milliseconds(delta), milliseconds::zero(), MaxTimerInterval);
}

ProviderError HttpProviderBase::errorFromReply(QNetworkReply *reply, const QByteArray &body) {
    ProviderError err;
    const QNetworkReply::NetworkError netError = reply->error();
    const int status = httpStatusOf(reply);
    err.body = body.left(kMaxErrorBodyBytes);
    // A connection cut short or timed out gives no usable answer, even after a status line.
    err.httpStatus = isTransportError(netError) ? 0 : status;

    if (const std::optional<QJsonObject> o = parseObject(body)) {
        const QJsonValue e = o->value(QLatin1StringView("error"));
        if (e.isObject()) {
            const QJsonObject eo = e.toObject();
            err.message = eo.value(QLatin1StringView("message")).toString();
            err.type = stringOf(eo.value(QLatin1StringView("type")));
            err.code = stringOf(eo.value(QLatin1StringView("code")));
            err.param = stringOf(eo.value(QLatin1StringView("param")));
        } else if (e.isString()) {
            err.message = e.toString();
        }
    }

    if (err.httpStatus == 0) {
        QString what;
        switch (netError) {
        case QNetworkReply::ConnectionRefusedError:
            what = QStringLiteral("connection refused");
            break;
        case QNetworkReply::RemoteHostClosedError:
            what = status > 0 ? QStringLiteral("connection closed in the middle of the answer")
                              : QStringLiteral("connection closed before an answer");
            break;
        case QNetworkReply::OperationCanceledError: // what setTransferTimeout() reports
        case QNetworkReply::TimeoutError:
            what = QStringLiteral("no data from the provider within the transfer timeout");
            break;
        default:
            what = reply->errorString();
            break;
        }
        err.message = err.message.isEmpty() ? what : what + QLatin1StringView(": ") + err.message;
    } else if (err.message.isEmpty()) {
        const QString reason = QString::fromUtf8(
            reply->attribute(QNetworkRequest::HttpReasonPhraseAttribute).toByteArray());
        err.message = QStringLiteral("HTTP %1").arg(status);
        if (!reason.isEmpty())
            err.message += QLatin1Char(' ') + reason;
    }

    if (status > 0) {
        err.retryAfter = parseRetryAfter(reply->rawHeader(QByteArrayLiteral("retry-after-ms")),
                                         reply->rawHeader(QByteArrayLiteral("Retry-After")));
    }
    return err;
}

} // namespace llmproxy
