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

// The error code of a batch (or, on Azure's fail-fast deployments, of a create call) that did
// not fit the organization's queue for its model.
constexpr QByteArrayView QueueFullCode = "token_limit_exceeded";

QByteArray pathSegment(const QByteArray &id) {
    return QUrl::toPercentEncoding(QString::fromUtf8(id));
}

using http::httpStatusOf;
using http::kMaxErrorBodyBytes;
using http::parseObject;
using http::readRest;
using http::replyError;
using http::scrubKey;
using http::stringOf;

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

OpenAiProvider::OpenAiProvider(QNetworkAccessManager *nam, const QUrl &baseUrl, QObject *parent)
    : HttpProviderBase(nam, baseUrl, parent) {
    // The manager takes the jar (and deletes it). The requests say "no cookies" as well.
    m_nam->setCookieJar(new NoCookieJar(m_nam));
}

OpenAiProvider::~OpenAiProvider() = default;

QNetworkRequest OpenAiProvider::makeRequest(const Credentials &creds, const QUrl &url) const {
    QNetworkRequest req(url);
    req.setRawHeader(m_profile.authHeader, m_profile.authPrefix + creds.apiKey);
    if (!creds.organization.isEmpty())
        req.setRawHeader(QByteArrayLiteral("OpenAI-Organization"), creds.organization);
    if (!creds.project.isEmpty())
        req.setRawHeader(QByteArrayLiteral("OpenAI-Project"), creds.project);
    prepareRequest(req, creds.apiKey);
    return req;
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
    postSynchronous(makeRequest(creds, endpointUrl(path)), body, creds.apiKey, &passedOnToClient,
                    std::move(done));
}

void OpenAiProvider::sendSynchronousWithin(const Credentials &creds, const QByteArray &endpoint,
                                           const QByteArray &body,
                                           std::chrono::milliseconds timeout,
                                           Callback<SyncAnswer> done) {
    const QByteArray path = endpoint.startsWith("/v1/") ? endpoint.mid(3) : endpoint;
    postSynchronous(makeRequest(creds, endpointUrl(path)), body, creds.apiKey, &passedOnToClient,
                    std::move(done), timeout);
}

void OpenAiProvider::downloadFileLines(const Credentials &creds, const QByteArray &fileId,
                                       std::function<void(QByteArrayView line)> onLine,
                                       LineTooLongCallback onLineTooLong, DoneCallback done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/files/") + pathSegment(fileId) +
                                 QByteArrayLiteral("/content"));
    QNetworkRequest req = makeRequest(creds, url);
    req.setRawHeader(QByteArrayLiteral("Accept"), QByteArrayLiteral("*/*"));
    downloadLines(std::move(req), creds.apiKey, std::move(onLine), std::move(onLineTooLong),
                  std::move(done));
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
        out.unknownStatus = true;
    }
    out.total = info.total;
    out.succeeded = info.completed;
    out.failed = info.failed;
    for (const BatchErrorItem &item : info.errors) {
        out.errors.append(item.message);
        // The organisation's queue for the model is full: the same requests fit later.
        if (out.end == BatchEnd::Failed && item.code == QueueFullCode)
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

bool OpenAiProvider::queueFull(const ProviderError &error) const {
    return error.code == QueueFullCode;
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
        creds, file, resultLines(context, file, onLine),
        [guard, onLineTooLong](const TooLongLine &line) {
            if (guard && *onLineTooLong)
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
