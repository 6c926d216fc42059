// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/openaiprovider.h"

#include "api/clock.h"
#include "api/json.h"
#include "api/jsonl.h"
#include "api/logging.h"

#include <QDateTime>
#include <QHttpMultiPart>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonValue>
#include <QNetworkAccessManager>
#include <QNetworkCookie>
#include <QNetworkCookieJar>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QRandomGenerator>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

namespace llmproxy {

namespace {

// Back-pressure for downloads: Qt stops reading the socket when this much is unread.
constexpr qint64 kReadBufferBytes = 1024 * 1024;
constexpr qint64 kDefaultTransferTimeoutMs = 120 * 1000;
// An error body is small; keep at most this much of it.
constexpr qsizetype kMaxErrorBodyBytes = 64 * 1024;

QByteArray userAgent() {
    return QByteArrayLiteral("llm-proxy/" LLMPROXY_VERSION);
}

QByteArray pathSegment(const QByteArray &id) {
    return QUrl::toPercentEncoding(QString::fromUtf8(id));
}

int httpStatusOf(const QNetworkReply *reply) {
    const QVariant v = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    return v.isValid() ? v.toInt() : 0;
}

// What is left to read; nothing once the reply was aborted (closed).
QByteArray readRest(QNetworkReply *reply) {
    return reply->isOpen() ? reply->readAll() : QByteArray();
}

bool isSuccess(int status) {
    return status >= 200 && status < 300;
}

// Errors where the HTTP exchange did not complete (refused, reset, cut short, timed out, proxy).
bool isTransportError(QNetworkReply::NetworkError error) {
    return error != QNetworkReply::NoError && error < QNetworkReply::ContentAccessDenied;
}

QByteArray stringOf(const QJsonValue &v) {
    if (v.isString())
        return v.toString().toUtf8();
    if (v.isDouble())
        return QByteArray::number(v.toInteger());
    return {};
}

std::optional<QJsonObject> parseObject(const QByteArray &json) {
    QJsonParseError err;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject())
        return std::nullopt;
    return doc.object();
}

std::optional<BatchInfo> batchFromObject(const QJsonObject &object) {
    // Together wraps a created batch: {"job": {...}, "warning": ...}.
    const QJsonValue job = object.value(QLatin1StringView("job"));
    const QJsonObject o =
        !object.contains(QLatin1StringView("id")) && job.isObject() ? job.toObject() : object;
    BatchInfo b;
    b.id = stringOf(o.value(QLatin1StringView("id")));
    b.status = stringOf(o.value(QLatin1StringView("status")));
    if (b.id.isEmpty() || b.status.isEmpty())
        return std::nullopt;
    b.endpoint = stringOf(o.value(QLatin1StringView("endpoint")));
    b.inputFileId = stringOf(o.value(QLatin1StringView("input_file_id")));
    b.outputFileId = stringOf(o.value(QLatin1StringView("output_file_id")));
    b.errorFileId = stringOf(o.value(QLatin1StringView("error_file_id")));
    const QJsonObject counts = o.value(QLatin1StringView("request_counts")).toObject();
    b.total = counts.value(QLatin1StringView("total")).toInt();
    b.completed = counts.value(QLatin1StringView("completed")).toInt();
    b.failed = counts.value(QLatin1StringView("failed")).toInt();
    const QJsonArray errors =
        o.value(QLatin1StringView("errors")).toObject().value(QLatin1StringView("data")).toArray();
    for (const QJsonValue &e : errors) {
        const QJsonObject eo = e.toObject();
        BatchErrorItem item;
        item.code = stringOf(eo.value(QLatin1StringView("code")));
        item.message = eo.value(QLatin1StringView("message")).toString();
        const QJsonValue line = eo.value(QLatin1StringView("line"));
        item.line = line.isDouble() ? line.toInt() : -1;
        b.errors.append(std::move(item));
    }
    b.metadata = o.value(QLatin1StringView("metadata")).toObject();
    b.createdAt = o.value(QLatin1StringView("created_at")).toInteger();
    return b;
}

std::optional<bool> parseDeleted(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o)
        return std::nullopt;
    return o->value(QLatin1StringView("deleted")).toBool(true);
}

// The provider may echo what it was sent; a key must never reach a log line or message.
void scrubKey(ProviderError &error, const QByteArray &apiKey) {
    if (apiKey.size() < 8)
        return;
    const QByteArray redacted = redactedKey(apiKey);
    error.body.replace(apiKey, redacted);
    error.message.replace(QString::fromUtf8(apiKey), QString::fromUtf8(redacted));
}

// nullopt when the reply is a complete 2xx answer, else the error it carries.
std::optional<ProviderError> replyError(QNetworkReply *reply, const QByteArray &body,
                                        const QByteArray &apiKey) {
    if (reply->error() == QNetworkReply::NoError && isSuccess(httpStatusOf(reply)))
        return std::nullopt;
    ProviderError err = OpenAiProvider::errorFromReply(reply, body);
    scrubKey(err, apiKey);
    qCWarning(lcProvider).noquote() << reply->url().toDisplayString() << "failed, status"
                                    << err.httpStatus << "-" << err.message;
    return err;
}

ProviderError invalidJson(QNetworkReply *reply, const QByteArray &body, const QByteArray &apiKey) {
    ProviderError err;
    err.httpStatus = httpStatusOf(reply);
    err.message = QStringLiteral("invalid JSON from provider");
    err.body = body.left(kMaxErrorBodyBytes);
    scrubKey(err, apiKey);
    qCWarning(lcProvider).noquote() << reply->url().toDisplayString() << "answered"
                                    << err.httpStatus << "with a body that does not parse";
    return err;
}

QByteArray safeFileName(const QString &fileName) {
    QByteArray name = fileName.toUtf8();
    for (char &c : name) {
        if (c == '"' || c == '\\' || c == '\r' || c == '\n')
            c = '_';
    }
    return name.isEmpty() ? QByteArrayLiteral("batch.jsonl") : name;
}

// The answer headers a client of the synchronous fallback gets, as the official SDKs read them.
bool passedOnToClient(const QByteArray &lowerName) {
    return lowerName == "x-request-id" || lowerName == "retry-after" ||
           lowerName == "retry-after-ms" || lowerName == "x-should-retry" ||
           lowerName.startsWith("openai-") || lowerName.startsWith("x-ratelimit-");
}

// A cookie jar that keeps nothing. The provider's calls carry keys of different clients over
// one manager: a cookie the API set for one key (OpenAI's edge sets some) must never be sent
// with another key's call, which would link the two.
class NoCookieJar final : public QNetworkCookieJar {
public:
    using QNetworkCookieJar::QNetworkCookieJar;
    QList<QNetworkCookie> cookiesForUrl(const QUrl &) const override { return {}; }
    bool setCookiesFromUrl(const QList<QNetworkCookie> &, const QUrl &) override { return false; }
    bool insertCookie(const QNetworkCookie &) override { return false; }
    bool updateCookie(const QNetworkCookie &) override { return false; }
};

} // namespace

struct OpenAiProvider::DownloadState {
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

OpenAiProvider::OpenAiProvider(QNetworkAccessManager *nam, const QUrl &baseUrl, QObject *parent)
    : Provider(parent)
    , m_nam(nam)
    , m_baseUrl(baseUrl) {
    // The manager takes the jar (and deletes it). The requests say "no cookies" as well.
    m_nam->setCookieJar(new NoCookieJar(m_nam));
}

OpenAiProvider::~OpenAiProvider() {
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

QUrl OpenAiProvider::endpointUrl(const QByteArray &encodedPath,
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

QNetworkRequest OpenAiProvider::makeRequest(const Credentials &creds, const QUrl &url) const {
    QNetworkRequest req(url);
    req.setRawHeader(m_profile.authHeader, m_profile.authPrefix + creds.apiKey);
    if (!creds.organization.isEmpty())
        req.setRawHeader(QByteArrayLiteral("OpenAI-Organization"), creds.organization);
    if (!creds.project.isEmpty())
        req.setRawHeader(QByteArrayLiteral("OpenAI-Project"), creds.project);
    req.setHeader(QNetworkRequest::UserAgentHeader, userAgent());
    req.setRawHeader(QByteArrayLiteral("Accept"), QByteArrayLiteral("application/json"));
    // Every call has one: a timeout of zero or less means the default, never "wait forever".
    const qint64 timeoutMs =
        m_transferTimeout.count() > 0 ? m_transferTimeout.count() : kDefaultTransferTimeoutMs;
    req.setTransferTimeout(
        static_cast<int>(std::min<qint64>(timeoutMs, std::numeric_limits<int>::max())));
    // Never follow a redirect to another origin: it would carry the key along.
    req.setAttribute(QNetworkRequest::RedirectPolicyAttribute,
                     QNetworkRequest::SameOriginRedirectPolicy);
    // No cookies either way, whatever jar the manager has.
    req.setAttribute(QNetworkRequest::CookieLoadControlAttribute, QNetworkRequest::Manual);
    req.setAttribute(QNetworkRequest::CookieSaveControlAttribute, QNetworkRequest::Manual);
    qCDebug(lcProvider).noquote() << "request" << url.toDisplayString() << "key"
                                  << redactedKey(creds.apiKey);
    return req;
}

void OpenAiProvider::track(QNetworkReply *reply, std::function<void(QNetworkReply *)> handler) {
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

template <typename T>
void OpenAiProvider::expectJson(QNetworkReply *reply, const Credentials &creds,
                                std::optional<T> (*parse)(const QByteArray &), Callback<T> done) {
    track(reply, [key = creds.apiKey, parse, done = std::move(done)](QNetworkReply *r) {
        const QByteArray body = readRest(r);
        ProviderResult<T> result;
        if (std::optional<ProviderError> err = replyError(r, body, key))
            result.error = std::move(*err);
        else if (std::optional<T> value = parse(body))
            result.value = std::move(value);
        else
            result.error = invalidJson(r, body, key);
        done(std::move(result));
    });
}

void OpenAiProvider::uploadBatchFile(const Credentials &creds, const QByteArray &jsonl,
                                     const QString &fileName, Callback<FileInfo> done) {
    // Our own token-only boundary, sent unquoted like the official SDKs do.
    QRandomGenerator *rng = QRandomGenerator::global();
    const QByteArray boundary = QByteArrayLiteral("llmproxy-") +
                                QByteArray::number(rng->generate64(), 16) +
                                QByteArray::number(rng->generate64(), 16);
    auto multipart = std::make_unique<QHttpMultiPart>(QHttpMultiPart::FormDataType);
    multipart->setBoundary(boundary);

    QHttpPart purpose;
    purpose.setHeader(QNetworkRequest::ContentDispositionHeader,
                      QByteArrayLiteral("form-data; name=\"purpose\""));
    purpose.setBody(m_profile.filePurpose);
    multipart->append(purpose);

    QHttpPart file;
    file.setHeader(QNetworkRequest::ContentDispositionHeader,
                   QByteArray(QByteArrayLiteral("form-data; name=\"file\"; filename=\"") +
                              safeFileName(fileName) + '"'));
    file.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/jsonl"));
    file.setBody(jsonl); // implicitly shared: this call owns its bytes whatever the caller does
    multipart->append(file);

    QNetworkRequest req = makeRequest(creds, endpointUrl(QByteArrayLiteral("/files")));
    req.setHeader(QNetworkRequest::ContentTypeHeader,
                  QByteArray(QByteArrayLiteral("multipart/form-data; boundary=") + boundary));
    QNetworkReply *reply = m_nam->post(req, multipart.get());
    multipart.release()->setParent(reply);
    expectJson<FileInfo>(reply, creds, &OpenAiProvider::parseFile, std::move(done));
}

void OpenAiProvider::createBatch(const Credentials &creds, const QByteArray &inputFileId,
                                 const QByteArray &endpoint, const QJsonObject &metadata,
                                 Callback<BatchInfo> done) {
    QJsonObject body{
        {QStringLiteral("input_file_id"), QString::fromUtf8(inputFileId)},
        {QStringLiteral("endpoint"), QString::fromUtf8(endpoint)},
        {QStringLiteral("completion_window"),
         QString::fromLatin1(m_profile.completionWindows.value(0, QByteArrayLiteral("24h")))},
    };
    if (!metadata.isEmpty())
        body.insert(QStringLiteral("metadata"), metadata);
    QNetworkRequest req = makeRequest(creds, endpointUrl(QByteArrayLiteral("/batches")));
    req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    QNetworkReply *reply = m_nam->post(req, QJsonDocument(body).toJson(QJsonDocument::Compact));
    expectJson<BatchInfo>(reply, creds, &OpenAiProvider::parseBatch, std::move(done));
}

void OpenAiProvider::retrieveBatch(const Credentials &creds, const QByteArray &batchId,
                                   Callback<BatchInfo> done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/batches/") + pathSegment(batchId));
    QNetworkReply *reply = m_nam->get(makeRequest(creds, url));
    expectJson<BatchInfo>(reply, creds, &OpenAiProvider::parseBatch, std::move(done));
}

void OpenAiProvider::cancelBatch(const Credentials &creds, const QByteArray &batchId,
                                 Callback<BatchInfo> done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/batches/") + pathSegment(batchId) +
                                 QByteArrayLiteral("/cancel"));
    QNetworkReply *reply = m_nam->post(makeRequest(creds, url), QByteArray());
    expectJson<BatchInfo>(reply, creds, &OpenAiProvider::parseBatch, std::move(done));
}

void OpenAiProvider::listBatches(const Credentials &creds, const QByteArray &after, int limit,
                                 Callback<BatchPage> done) {
    QByteArray query;
    if (limit > 0)
        query = QByteArrayLiteral("limit=") + QByteArray::number(std::clamp(limit, 1, 100));
    if (!after.isEmpty()) {
        if (!query.isEmpty())
            query += '&';
        query += QByteArrayLiteral("after=") + QUrl::toPercentEncoding(QString::fromUtf8(after));
    }
    const QUrl url = endpointUrl(QByteArrayLiteral("/batches"), query);
    QNetworkReply *reply = m_nam->get(makeRequest(creds, url));
    expectJson<BatchPage>(reply, creds, &OpenAiProvider::parseBatchPage, std::move(done));
}

void OpenAiProvider::deleteFile(const Credentials &creds, const QByteArray &fileId,
                                DoneCallback done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/files/") + pathSegment(fileId));
    QNetworkReply *reply = m_nam->deleteResource(makeRequest(creds, url));
    Callback<bool> onDeleted = [done = std::move(done)](ProviderResult<bool> result) {
        if (!result.ok()) {
            done(std::move(result.error));
        } else if (!*result.value) {
            ProviderError err;
            err.httpStatus = 200;
            err.message = QStringLiteral("the provider did not delete the file");
            done(std::move(err));
        } else {
            done(std::nullopt);
        }
    };
    expectJson<bool>(reply, creds, &parseDeleted, std::move(onDeleted));
}

void OpenAiProvider::sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                                     const QByteArray &body, Callback<SyncAnswer> done) {
    // The base URL ends in /v1 already.
    const QByteArray path = endpoint.startsWith("/v1/") ? endpoint.mid(3) : endpoint;
    QNetworkRequest req = makeRequest(creds, endpointUrl(path));
    req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    const auto timeout =
        std::max<std::chrono::milliseconds>(m_transferTimeout, kMinSyncTransferTimeout);
    req.setTransferTimeout(
        static_cast<int>(std::min<qint64>(timeout.count(), std::numeric_limits<int>::max())));
    QNetworkReply *reply = m_nam->post(req, body);
    track(reply, [key = creds.apiKey, done = std::move(done)](QNetworkReply *r) {
        const QByteArray answerBody = readRest(r);
        const int status = httpStatusOf(r);
        ProviderResult<SyncAnswer> result;
        if (isTransportError(r->error()) || status <= 0) {
            result.error = OpenAiProvider::errorFromReply(r, answerBody);
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

void OpenAiProvider::downloadFileLines(const Credentials &creds, const QByteArray &fileId,
                                       std::function<void(QByteArrayView line)> onLine,
                                       LineTooLongCallback onLineTooLong, DoneCallback done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/files/") + pathSegment(fileId) +
                                 QByteArrayLiteral("/content"));
    QNetworkRequest req = makeRequest(creds, url);
    req.setRawHeader(QByteArrayLiteral("Accept"), QByteArrayLiteral("*/*"));
    // The read-buffer limit (our back-pressure) is ignored over HTTP/2 in Qt 6.4.
    req.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    // JSONL compresses very well; do not mistake a big result file for a zip bomb.
    req.setDecompressedSafetyCheckThreshold(-1);

    auto state = std::make_shared<DownloadState>();
    state->onLine = std::move(onLine);
    state->onLineTooLong = std::move(onLineTooLong);
    state->apiKey = creds.apiKey;
    state->maxLineBytes = m_maxLineBytes;

    QNetworkReply *reply = m_nam->get(req);
    reply->setReadBufferSize(kReadBufferBytes);
    // A queued request may drop the limit set above: set it again once the answer starts.
    connect(reply, &QNetworkReply::metaDataChanged, this,
            [reply] { reply->setReadBufferSize(kReadBufferBytes); });
    connect(reply, &QNetworkReply::readyRead, this,
            [this, reply, state] { drainDownload(reply, *state); });
    track(reply, [this, state, done = std::move(done)](QNetworkReply *r) {
        finishDownload(r, *state, done);
    });
}

// Never canReadLine()/readLine(): with a read-buffer limit they stall (qt64-notes §5).
void OpenAiProvider::drainDownload(QNetworkReply *reply, DownloadState &state) {
    const QByteArray chunk = readRest(reply);
    if (chunk.isEmpty())
        return;
    if (!isSuccess(httpStatusOf(reply))) {
        if (state.errorBody.size() < kMaxErrorBodyBytes)
            state.errorBody += chunk.left(kMaxErrorBodyBytes - state.errorBody.size());
        return;
    }
    // Only the new bytes are searched for line ends: a long line costs linear time.
    qsizetype start = 0;
    while (start < chunk.size()) {
        const qsizetype nl = chunk.indexOf('\n', start);
        const qsizetype end = nl < 0 ? chunk.size() : nl;
        const QByteArrayView piece(chunk.constData() + start, end - start);
        start = end + 1;
        if (!takeLinePiece(state, piece, nl >= 0))
            return; // destroyed by a callback: stop here, silently
    }
}

bool OpenAiProvider::takeLinePiece(DownloadState &state, QByteArrayView piece, bool lineEnds) {
    if (state.longBytes >= 0) { // skipping a line over the limit
        state.longBytes += piece.size();
        if (!piece.isEmpty())
            state.longEndsInCr = piece.back() == '\r';
        return lineEnds ? endTooLongLine(state) : true;
    }
    if (state.partial.size() + piece.size() > state.maxLineBytes) {
        // Over the limit: keep its start (to find its custom_id), drop the rest as it comes.
        state.longBytes = state.partial.size() + piece.size();
        state.longEndsInCr = piece.isEmpty() ? state.partial.endsWith('\r') : piece.back() == '\r';
        state.longStart = state.partial.left(kLineStartBytes);
        state.longStart += piece.first(
            std::min<qsizetype>(piece.size(), kLineStartBytes - state.longStart.size()));
        state.partial = QByteArray();
        return lineEnds ? endTooLongLine(state) : true;
    }
    if (!lineEnds) {
        state.partial.append(piece.data(), piece.size());
        return true;
    }
    QByteArray joined;
    QByteArrayView line = piece;
    if (!state.partial.isEmpty()) {
        joined = std::exchange(state.partial, QByteArray());
        joined.append(piece.data(), piece.size());
        line = joined;
    }
    if (line.endsWith('\r'))
        line.chop(1);
    if (line.isEmpty())
        return true;
    const QPointer<OpenAiProvider> self(this);
    state.onLine(line);
    return !self.isNull();
}

bool OpenAiProvider::endTooLongLine(DownloadState &state) {
    const QByteArray start = std::exchange(state.longStart, QByteArray());
    TooLongLine line;
    line.start = start;
    line.bytes = std::exchange(state.longBytes, -1) - (state.longEndsInCr ? 1 : 0);
    line.limit = state.maxLineBytes;
    qCWarning(lcProvider).noquote()
        << "a line of a result file is" << line.bytes << "bytes long, over the limit of"
        << line.limit << "bytes: it is skipped";
    if (!state.onLineTooLong)
        return true;
    const QPointer<OpenAiProvider> self(this);
    state.onLineTooLong(line);
    return !self.isNull();
}

void OpenAiProvider::finishDownload(QNetworkReply *reply, DownloadState &state,
                                    const DoneCallback &done) {
    const QPointer<OpenAiProvider> self(this);
    drainDownload(reply, state);
    if (!self)
        return;
    if (std::optional<ProviderError> err = replyError(reply, state.errorBody, state.apiKey)) {
        done(std::move(err));
        return;
    }
    // A last line without a newline.
    if (state.longBytes >= 0 || !state.partial.isEmpty()) {
        if (!takeLinePiece(state, {}, true))
            return;
    }
    done(std::nullopt);
}

std::optional<BatchInfo> OpenAiProvider::parseBatch(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o)
        return std::nullopt;
    return batchFromObject(*o);
}

std::optional<FileInfo> OpenAiProvider::parseFile(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o)
        return std::nullopt;
    FileInfo f;
    f.id = stringOf(o->value(QLatin1StringView("id")));
    if (f.id.isEmpty())
        return std::nullopt;
    f.bytes = o->value(QLatin1StringView("bytes")).toInteger();
    return f;
}

std::optional<BatchPage> OpenAiProvider::parseBatchPage(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o || !o->value(QLatin1StringView("data")).isArray())
        return std::nullopt;
    BatchPage page;
    const QJsonArray data = o->value(QLatin1StringView("data")).toArray();
    for (const QJsonValue &v : data) {
        std::optional<BatchInfo> b = batchFromObject(v.toObject());
        if (!b)
            return std::nullopt;
        page.batches.append(std::move(*b));
    }
    page.hasMore = o->value(QLatin1StringView("has_more")).toBool();
    page.lastId = stringOf(o->value(QLatin1StringView("last_id")));
    if (page.lastId.isEmpty() && !page.batches.isEmpty())
        page.lastId = page.batches.constLast().id;
    return page;
}

std::optional<std::chrono::milliseconds>
OpenAiProvider::parseRetryAfter(const QByteArray &retryAfterMs, const QByteArray &retryAfter) {
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

ProviderError OpenAiProvider::errorFromReply(QNetworkReply *reply, const QByteArray &body) {
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

// ---- The provider-neutral contract -----------------------------------------------------

std::optional<std::pair<BatchPhase, BatchEnd>> openAiFamilyStatus(QByteArrayView status) {
    return providerProfiles().constFirst().status(status);
}

bool BatchInfo::isTerminal() const {
    const auto normalised = openAiFamilyStatus(status);
    return normalised && normalised->first == BatchPhase::Ended;
}

BatchStatus batchStatusFromInfo(const BatchInfo &info, const ProviderProfile &profile) {
    BatchStatus out;
    out.id = info.id;
    out.providerStatus = info.status;
    if (const auto normalised = profile.status(info.status)) {
        out.phase = normalised->first;
        out.end = normalised->second;
    } else {
        // A word this client does not know: not ended, so it is polled again.
        qCWarning(lcProvider).noquote()
            << "batch" << info.id << "has an unknown status" << info.status << "- polling it again";
        out.phase = BatchPhase::Running;
    }
    out.total = info.total;
    out.succeeded = info.completed;
    out.failed = info.failed;
    for (const BatchErrorItem &item : info.errors) {
        out.errors.append(item.message);
        // The organisation's queue for the model is full: the same requests fit later.
        if (out.end == BatchEnd::Failed && item.code == "token_limit_exceeded")
            out.retryLater = true;
    }
    out.createdAtMs = info.createdAt > 0 ? info.createdAt * 1000 : 0;
    // A provider whose expired batches have no results (Gemini): nothing is read, every request
    // goes out again, even if a file is named.
    const bool nothingToRead =
        out.end == BatchEnd::Expired && profile.expiry == ExpiryBehaviour::NoResults;
    out.state = OpenAiProvider::stateFor({info.inputFileId,
                                          nothingToRead ? QByteArray() : info.outputFileId,
                                          nothingToRead ? QByteArray() : info.errorFileId});
    return out;
}

QByteArray OpenAiProvider::stateFor(const Files &files) {
    QJsonObject o;
    if (!files.input.isEmpty())
        o.insert(QStringLiteral("input_file_id"), QString::fromUtf8(files.input));
    if (!files.output.isEmpty())
        o.insert(QStringLiteral("output_file_id"), QString::fromUtf8(files.output));
    if (!files.error.isEmpty())
        o.insert(QStringLiteral("error_file_id"), QString::fromUtf8(files.error));
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

OpenAiProvider::Files OpenAiProvider::filesOf(const QByteArray &state) {
    const std::optional<QJsonObject> o = parseObject(state);
    if (!o)
        return {};
    return {stringOf(o->value(QLatin1StringView("input_file_id"))),
            stringOf(o->value(QLatin1StringView("output_file_id"))),
            stringOf(o->value(QLatin1StringView("error_file_id")))};
}

namespace {
// A batch's files as the provider last reported them, keeping the input file a create or a
// poll answer did not name.
BatchStatus withInputFile(BatchStatus status, const QByteArray &previousState) {
    OpenAiProvider::Files files = OpenAiProvider::filesOf(status.state);
    if (files.input.isEmpty()) {
        files.input = OpenAiProvider::filesOf(previousState).input;
        status.state = OpenAiProvider::stateFor(files);
    }
    return status;
}
} // namespace

QByteArray OpenAiProvider::encodeLine(QByteArrayView customId, QByteArrayView endpoint,
                                      QByteArrayView body) const {
    if (m_profile.linesCarryMethodAndUrl)
        return jsonl::encodeInputLine(customId, endpoint, body);
    QByteArray line;
    line.reserve(customId.size() + body.size() + 32);
    line += R"({"custom_id":)";
    line += json::quoted(customId);
    line += R"(,"body":)";
    json::appendSingleLine(line, body);
    line += "}\n";
    return line;
}

std::optional<ResultLine> OpenAiProvider::decodeResultLine(QByteArrayView line,
                                                           QString *error) const {
    std::optional<jsonl::OutputLine> decoded = jsonl::decodeOutputLine(line, error);
    if (!decoded)
        return std::nullopt;
    return fromOpenAiOutputLine(std::move(*decoded));
}

std::optional<QByteArray> OpenAiProvider::customIdFromLineStart(QByteArrayView lineStart) const {
    return jsonl::customIdFromLineStart(lineStart);
}

void OpenAiProvider::stage(QObject *context, const Credentials &creds,
                           const BatchSubmission &submission, const QByteArray &lines,
                           Callback<QByteArray> done) {
    const QString fileName = QStringLiteral("llm-proxy-") +
                             QString::fromLatin1(submission.localId) + QStringLiteral(".jsonl");
    uploadBatchFile(creds, lines, fileName,
                    bound(context, [done = std::move(done)](ProviderResult<FileInfo> result) {
                        ProviderResult<QByteArray> out;
                        if (result.ok())
                            out.value = stateFor({result.value->id, {}, {}});
                        else
                            out.error = std::move(result.error);
                        done(std::move(out));
                    }));
}

void OpenAiProvider::submit(QObject *context, const Credentials &creds,
                            const BatchSubmission &submission, const QByteArray &state,
                            const QByteArray &, StatusCallback done) {
    const QJsonObject metadata{
        {QStringLiteral("created_by"), QStringLiteral("llm-proxy")},
        {QStringLiteral("llm_proxy_version"), QStringLiteral(LLMPROXY_VERSION)},
        {QStringLiteral("llm_proxy_batch"), QString::fromLatin1(submission.localId)},
    };
    createBatch(
        creds, filesOf(state).input, submission.endpoint, metadata,
        bound(context, [this, state, done = std::move(done)](ProviderResult<BatchInfo> result) {
            ProviderResult<BatchStatus> out;
            if (result.ok())
                out.value = withInputFile(batchStatusFromInfo(*result.value, m_profile), state);
            else
                out.error = std::move(result.error);
            done(std::move(out));
        }));
}

void OpenAiProvider::find(QObject *context, const Credentials &creds,
                          const BatchSubmission &submission, const QByteArray &state,
                          Callback<std::optional<BatchStatus>> done) {
    findPage(context, creds, submission.localId, {}, 0,
             [state, done = std::move(done)](ProviderResult<std::optional<BatchStatus>> result) {
                 if (result.ok() && result.value->has_value())
                     **result.value = withInputFile(std::move(**result.value), state);
                 done(std::move(result));
             });
}

void OpenAiProvider::findPage(QObject *context, const Credentials &creds, const QByteArray &localId,
                              const QByteArray &after, int page,
                              Callback<std::optional<BatchStatus>> done) {
    // The batch names its local id in its metadata. Newest first: a few pages reach back far
    // enough for a batch made moments before a crash.
    listBatches(creds, after, 100,
                bound(context, [this, context, creds, localId, page,
                                done = std::move(done)](ProviderResult<BatchPage> result) mutable {
                    ProviderResult<std::optional<BatchStatus>> out;
                    if (!result.ok()) {
                        out.error = std::move(result.error);
                        return done(std::move(out));
                    }
                    for (const BatchInfo &batch : std::as_const(result.value->batches)) {
                        if (batch.metadata.value(QStringLiteral("llm_proxy_batch")).toString() ==
                            QString::fromLatin1(localId)) {
                            out.value =
                                std::optional<BatchStatus>(batchStatusFromInfo(batch, m_profile));
                            return done(std::move(out));
                        }
                    }
                    if (result.value->hasMore && page < 9)
                        return findPage(context, creds, localId, result.value->lastId, page + 1,
                                        std::move(done));
                    out.value = std::optional<BatchStatus>();
                    done(std::move(out));
                }));
}

// A batch object's answer (retrieve, cancel) as the normalised status, bound to `context`.
Provider::Callback<BatchInfo> OpenAiProvider::statusFromBatch(QObject *context,
                                                              const QByteArray &state,
                                                              StatusCallback done) const {
    return bound(context, [state, profile = m_profile,
                           done = std::move(done)](ProviderResult<BatchInfo> result) {
        ProviderResult<BatchStatus> out;
        if (result.ok())
            out.value = withInputFile(batchStatusFromInfo(*result.value, profile), state);
        else
            out.error = std::move(result.error);
        done(std::move(out));
    });
}

void OpenAiProvider::poll(QObject *context, const Credentials &creds, const QByteArray &batchId,
                          const QByteArray &state, StatusCallback done) {
    retrieveBatch(creds, batchId, statusFromBatch(context, state, std::move(done)));
}

void OpenAiProvider::cancel(QObject *context, const Credentials &creds, const QByteArray &batchId,
                            const QByteArray &state, StatusCallback done) {
    cancelBatch(creds, batchId, statusFromBatch(context, state, std::move(done)));
}

void OpenAiProvider::readResults(QObject *context, const Credentials &creds, const QByteArray &,
                                 const QByteArray &state, ResultCallback onLine,
                                 LineTooLongCallback onLineTooLong, DoneCallback done) {
    // Successes are in the output file, failures in the error file; either may be missing.
    const Files files = filesOf(state);
    QList<QByteArray> toRead;
    if (!files.output.isEmpty())
        toRead.append(files.output);
    if (!files.error.isEmpty())
        toRead.append(files.error);
    readFiles(context, creds, std::move(toRead),
              std::make_shared<ResultCallback>(std::move(onLine)),
              std::make_shared<LineTooLongCallback>(std::move(onLineTooLong)), std::move(done));
}

void OpenAiProvider::readFiles(QObject *context, const Credentials &creds, QList<QByteArray> files,
                               std::shared_ptr<ResultCallback> onLine,
                               std::shared_ptr<LineTooLongCallback> onLineTooLong,
                               DoneCallback done, std::optional<ProviderError> failed) {
    // A file that cannot be read for good (gone, refused) does not keep the next one from being
    // read; the error is reported at the end. One worth retrying ends the read now.
    if (files.isEmpty())
        return done(std::move(failed));
    const QByteArray file = files.takeFirst();
    QPointer<QObject> guard(context);
    downloadFileLines(
        creds, file,
        [this, guard, onLine, file](QByteArrayView line) {
            if (!guard)
                return;
            QString error;
            std::optional<ResultLine> result = decodeResultLine(line, &error);
            if (!result) {
                qCWarning(lcProvider).noquote()
                    << "a result line of" << file << "was ignored:" << error;
                return;
            }
            (*onLine)(std::move(*result));
        },
        [guard, onLineTooLong](const TooLongLine &line) {
            if (guard)
                (*onLineTooLong)(line);
        },
        bound(context, [this, context, creds, file, files = std::move(files), onLine, onLineTooLong,
                        done = std::move(done),
                        failed = std::move(failed)](std::optional<ProviderError> error) mutable {
            if (error && error->retryable())
                return done(std::move(error));
            if (error) {
                qCWarning(lcProvider).noquote()
                    << "could not read the result file" << file << ":" << error->message;
                if (!failed)
                    failed = std::move(error);
            }
            readFiles(context, creds, std::move(files), onLine, onLineTooLong, std::move(done),
                      std::move(failed));
        }));
}

void OpenAiProvider::cleanUp(const Credentials &creds, const QByteArray &state) {
    const Files files = filesOf(state);
    for (const QByteArray &file : {files.input, files.output, files.error}) {
        if (file.isEmpty())
            continue;
        // Fire and forget: a file we fail to delete expires upstream on its own.
        deleteFile(creds, file, [file](std::optional<ProviderError> error) {
            if (error)
                qCInfo(lcProvider).noquote() << "could not delete" << file << ":" << error->message;
        });
    }
}

} // namespace llmproxy
