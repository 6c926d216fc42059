// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/anthropicprovider.h"

#include "api/batchresult.h"
#include "api/json.h"
#include "api/logging.h"
#include "api/usage.h"

#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>

#include <algorithm>

namespace llmproxy {

namespace {

using namespace std::chrono_literals;
using http::httpStatusOf;
using http::kMaxErrorBodyBytes;
using http::parseObject;
using http::readRest;
// Anthropic's {"type":"error","error":{"type","message"}} reads like OpenAI's "error".
using http::replyError;
using http::scrubKey;

// find(): a batch counts as ours when made from this long before the recorded intent (clock
// skew between us and the provider) to this long after it (the create call and its retries).
constexpr qint64 kFindSkewMs = 5 * 60 * 1000;
constexpr qint64 kFindWindowMs = 60 * 60 * 1000;
constexpr int kFindPages = 10;

QByteArray stringOf(const QJsonValue &v) {
    return v.isString() ? v.toString().toUtf8() : QByteArray();
}

qint64 msOfTimestamp(const QJsonValue &v) {
    if (!v.isString())
        return 0;
    const QDateTime t = QDateTime::fromString(v.toString(), Qt::ISODateWithMs);
    return t.isValid() ? t.toMSecsSinceEpoch() : 0;
}

// The answer headers a client of the synchronous call gets, as Anthropic's SDKs read them.
bool passedOnToClient(const QByteArray &lowerName) {
    return lowerName == "request-id" || lowerName == "retry-after" ||
           lowerName == "x-should-retry" || lowerName.startsWith("anthropic-");
}

QByteArray headerOf(const Credentials &creds, QByteArrayView name) {
    for (const auto &[key, value] : creds.headers) {
        if (key == name)
            return value;
    }
    return {};
}

// The state's fields.
struct State {
    QByteArray id;
    QByteArray resultsUrl;
    qint64 intentMs = 0;
    int requests = 0;
};

State stateOf(const QByteArray &state) {
    const std::optional<QJsonObject> o = parseObject(state);
    if (!o)
        return {};
    return {stringOf(o->value(QLatin1StringView("id"))),
            stringOf(o->value(QLatin1StringView("results_url"))),
            o->value(QLatin1StringView("intent_ms")).toInteger(),
            o->value(QLatin1StringView("requests")).toInt()};
}

QByteArray stateBytes(const State &s) {
    QJsonObject o;
    if (!s.id.isEmpty())
        o.insert(QStringLiteral("id"), QString::fromUtf8(s.id));
    if (!s.resultsUrl.isEmpty())
        o.insert(QStringLiteral("results_url"), QString::fromUtf8(s.resultsUrl));
    if (s.intentMs > 0)
        o.insert(QStringLiteral("intent_ms"), s.intentMs);
    if (s.requests > 0)
        o.insert(QStringLiteral("requests"), s.requests);
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

} // namespace

AnthropicProvider::AnthropicProvider(QNetworkAccessManager *nam, const QUrl &baseUrl,
                                     QObject *parent)
    : HttpProviderBase(nam, baseUrl, parent) {}

AnthropicProvider::~AnthropicProvider() = default;

QNetworkRequest AnthropicProvider::makeRequest(const Credentials &creds, const QUrl &url) const {
    QNetworkRequest req(url);
    req.setRawHeader(QByteArrayLiteral("x-api-key"), creds.apiKey);
    const QByteArray version = headerOf(creds, "anthropic-version");
    req.setRawHeader(QByteArrayLiteral("anthropic-version"),
                     version.isEmpty() ? QByteArray(kDefaultVersion) : version);
    const QByteArray beta = headerOf(creds, "anthropic-beta");
    if (!beta.isEmpty())
        req.setRawHeader(QByteArrayLiteral("anthropic-beta"), beta);
    prepareRequest(req, creds.apiKey);
    return req;
}

// ---- Anthropic's words ------------------------------------------------------------------

int AnthropicProvider::statusForErrorType(QByteArrayView type) {
    struct Entry {
        const char *type;
        int status;
    };
    // https://docs.anthropic.com/en/api/errors
    static constexpr Entry Types[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401},
        {"billing_error", 402},         {"permission_error", 403},
        {"not_found_error", 404},       {"request_too_large", 413},
        {"rate_limit_error", 429},      {"api_error", 500},
        {"timeout_error", 504},         {"overloaded_error", 529},
    };
    for (const Entry &entry : Types) {
        if (type == entry.type)
            return entry.status;
    }
    return 500;
}

std::optional<MessageBatchInfo> AnthropicProvider::parseBatch(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o)
        return std::nullopt;
    MessageBatchInfo b;
    b.id = stringOf(o->value(QLatin1StringView("id")));
    b.processingStatus = stringOf(o->value(QLatin1StringView("processing_status")));
    if (b.id.isEmpty() || b.processingStatus.isEmpty())
        return std::nullopt;
    const QJsonObject counts = o->value(QLatin1StringView("request_counts")).toObject();
    b.processing = counts.value(QLatin1StringView("processing")).toInt();
    b.succeeded = counts.value(QLatin1StringView("succeeded")).toInt();
    b.errored = counts.value(QLatin1StringView("errored")).toInt();
    b.canceled = counts.value(QLatin1StringView("canceled")).toInt();
    b.expired = counts.value(QLatin1StringView("expired")).toInt();
    b.createdAtMs = msOfTimestamp(o->value(QLatin1StringView("created_at")));
    b.cancelInitiated = o->value(QLatin1StringView("cancel_initiated_at")).isString();
    b.resultsUrl = stringOf(o->value(QLatin1StringView("results_url")));
    return b;
}

std::optional<MessageBatchPage> AnthropicProvider::parseBatchPage(const QByteArray &json) {
    const std::optional<QJsonObject> o = parseObject(json);
    if (!o || !o->value(QLatin1StringView("data")).isArray())
        return std::nullopt;
    MessageBatchPage page;
    const QJsonArray data = o->value(QLatin1StringView("data")).toArray();
    for (const QJsonValue &v : data) {
        std::optional<MessageBatchInfo> b =
            parseBatch(QJsonDocument(v.toObject()).toJson(QJsonDocument::Compact));
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

BatchStatus AnthropicProvider::batchStatusFrom(const MessageBatchInfo &info) {
    BatchStatus out;
    out.id = info.id;
    out.providerStatus = info.processingStatus;
    if (info.processingStatus == "in_progress") {
        out.phase = BatchPhase::Running;
    } else if (info.processingStatus == "canceling") {
        out.phase = BatchPhase::Cancelling;
    } else if (info.processingStatus == "ended") {
        out.phase = BatchPhase::Ended;
        // Ended with requests that never ran: cancelled (a cancel was asked for) or expired.
        if (info.cancelInitiated)
            out.end = BatchEnd::Cancelled;
        else if (info.expired > 0)
            out.end = BatchEnd::Expired;
        else
            out.end = BatchEnd::Completed;
    } else {
        qCWarning(lcProvider).noquote() << "batch" << info.id << "has an unknown status"
                                        << info.processingStatus << "- polling it again";
        out.phase = BatchPhase::Running;
        out.unknownStatus = true;
    }
    out.total = info.total();
    out.succeeded = info.succeeded;
    out.failed = info.errored + info.canceled + info.expired;
    out.createdAtMs = info.createdAtMs;
    out.state = stateBytes({info.id, info.resultsUrl, 0, 0});
    return out;
}

QByteArray AnthropicProvider::createBody(const QByteArray &lines) {
    QByteArray body;
    body.reserve(lines.size() + 16);
    body += R"({"requests":[)";
    qsizetype start = 0;
    bool first = true;
    while (start < lines.size()) {
        qsizetype nl = lines.indexOf('\n', start);
        if (nl < 0)
            nl = lines.size();
        if (nl > start) {
            if (!first)
                body += ',';
            body.append(lines.constData() + start, nl - start);
            first = false;
        }
        start = nl + 1;
    }
    body += "]}";
    return body;
}

// ---- The contract -------------------------------------------------------------------------

QByteArray AnthropicProvider::encodeLine(QByteArrayView customId, QByteArrayView,
                                         QByteArrayView body) const {
    QByteArray line;
    line.reserve(customId.size() + body.size() + 32);
    line += R"({"custom_id":)";
    line += json::quoted(customId);
    line += R"(,"params":)";
    json::appendSingleLine(line, body);
    line += "}\n";
    return line;
}

std::optional<ResultLine> AnthropicProvider::decodeResultLine(QByteArrayView line,
                                                              QString *error) const {
    const auto fail = [error](const QString &why) -> std::optional<ResultLine> {
        if (error)
            *error = why;
        return std::nullopt;
    };
    json::ScanError scan;
    const std::optional<QList<json::Member>> top =
        json::objectMembers(line, json::Strictness::Lenient, &scan);
    if (!top)
        return fail(scan.message);
    const json::Member *customId = json::find(*top, "custom_id");
    if (!customId || customId->kind != json::Kind::String)
        return fail(QStringLiteral("no custom_id"));
    const json::Member *result = json::find(*top, "result");
    if (!result || result->kind != json::Kind::Object)
        return fail(QStringLiteral("no result object"));
    const std::optional<QList<json::Member>> fields =
        json::objectMembers(result->value, json::Strictness::Lenient);
    const json::Member *type = fields ? json::find(*fields, "type") : nullptr;
    const std::optional<QByteArray> typeName =
        type && type->kind == json::Kind::String ? json::stringValue(type->value) : std::nullopt;
    if (!typeName)
        return fail(QStringLiteral("no result.type"));

    ResultLine out;
    out.customId = json::stringValue(customId->value).value_or(QByteArray());
    if (*typeName == "succeeded") {
        const json::Member *message = json::find(*fields, "message");
        if (!message || message->kind != json::Kind::Object)
            return fail(QStringLiteral("a succeeded result without a message"));
        out.outcome = ResultOutcome::Succeeded;
        out.hasAnswer = true;
        out.httpStatus = 200;
        out.body = message->value.toByteArray();
        out.usage = anthropicUsageFromAnswer(out.body);
    } else if (*typeName == "errored") {
        // {"type":"error","error":{"type","message"},"request_id"}: the body a synchronous call
        // would have had, with the status its error type stands for.
        const json::Member *errorMember = json::find(*fields, "error");
        if (!errorMember || errorMember->kind != json::Kind::Object)
            return fail(QStringLiteral("an errored result without an error"));
        out.outcome = ResultOutcome::Errored;
        out.hasAnswer = true;
        out.body = errorMember->value.toByteArray();
        const std::optional<QList<json::Member>> outer =
            json::objectMembers(errorMember->value, json::Strictness::Lenient);
        QByteArray errorType;
        if (outer) {
            if (const json::Member *rid = json::find(*outer, "request_id");
                rid && rid->kind == json::Kind::String)
                out.requestId = json::stringValue(rid->value).value_or(QByteArray());
            const json::Member *inner = json::find(*outer, "error");
            const std::optional<QList<json::Member>> innerFields =
                inner && inner->kind == json::Kind::Object
                    ? json::objectMembers(inner->value, json::Strictness::Lenient)
                    : std::nullopt;
            if (innerFields) {
                if (const json::Member *t = json::find(*innerFields, "type");
                    t && t->kind == json::Kind::String)
                    errorType = json::stringValue(t->value).value_or(QByteArray());
                if (const json::Member *m = json::find(*innerFields, "message");
                    m && m->kind == json::Kind::String)
                    out.errorMessage =
                        QString::fromUtf8(json::stringValue(m->value).value_or(QByteArray()));
            }
        }
        out.errorCode = errorType;
        out.httpStatus = statusForErrorType(errorType);
    } else if (*typeName == "canceled") {
        out.outcome = ResultOutcome::Cancelled;
        out.errorCode = "canceled";
    } else if (*typeName == "expired") {
        out.outcome = ResultOutcome::Expired;
        out.errorCode = "expired";
    } else {
        return fail(QStringLiteral("unknown result.type ") + QString::fromUtf8(*typeName));
    }
    return out;
}

std::optional<QByteArray> AnthropicProvider::customIdFromLineStart(QByteArrayView lineStart) const {
    const QList<json::Member> members = json::leadingMembers(lineStart);
    const json::Member *customId = json::find(members, "custom_id");
    if (!customId || customId->kind != json::Kind::String)
        return std::nullopt;
    return json::stringValue(customId->value);
}

HttpAnswer AnthropicProvider::answerFor(const ResultLine &line, const QByteArray &batchId) const {
    HttpAnswer answer;
    if (line.hasAnswer) {
        answer.status = line.httpStatus;
        answer.body = line.body;
    } else if (line.outcome == ResultOutcome::Expired) {
        answer = anthropicErrorAnswer(
            504, QStringLiteral("The request expired in its Message Batch before it "
                                "was processed."));
    } else if (line.outcome == ResultOutcome::Cancelled) {
        answer = anthropicErrorAnswer(
            503, QStringLiteral("The request's Message Batch was canceled before "
                                "the request was processed."));
    } else {
        answer = anthropicErrorAnswer(502, line.errorMessage.isEmpty()
                                               ? QStringLiteral("The Message Batch gave no answer.")
                                               : line.errorMessage);
    }
    if (!line.requestId.isEmpty() && isSafeHeaderValue(line.requestId))
        answer.headers.append({QByteArrayLiteral("request-id"), line.requestId});
    if (!batchId.isEmpty() && isSafeHeaderValue(batchId))
        answer.headers.append({QByteArray(BatchIdHeader), batchId});
    return answer;
}

void AnthropicProvider::stage(QObject *context, const Credentials &,
                              const BatchSubmission &submission, const QByteArray &lines,
                              Callback<QByteArray> done) {
    // Nothing to upload: the lines go in the create call. What is kept is what find() needs
    // to recognise the batch after a crash: when it is about to be made, and its size.
    ProviderResult<QByteArray> out;
    if (submission.requests > kMaxRequests || lines.size() > kMaxBytes) {
        out.error.httpStatus = 413;
        out.error.type = "request_too_large";
        out.error.message = QStringLiteral("the batch is over Anthropic's limit of %1 requests or "
                                           "%2 bytes")
                                .arg(kMaxRequests)
                                .arg(kMaxBytes);
    } else {
        out.value = stateBytes({{}, {}, QDateTime::currentMSecsSinceEpoch(), submission.requests});
    }
    // Asynchronous like every call of the contract.
    QMetaObject::invokeMethod(
        context ? context : this,
        [done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); },
        Qt::QueuedConnection);
}

void AnthropicProvider::expectBatch(QObject *context, QNetworkReply *reply,
                                    const Credentials &creds, StatusCallback done) {
    track(reply, bound(context, [key = creds.apiKey, done = std::move(done)](QNetworkReply *r) {
              const QByteArray body = readRest(r);
              ProviderResult<BatchStatus> result;
              if (std::optional<ProviderError> err = replyError(r, body, key)) {
                  result.error = std::move(*err);
              } else if (const std::optional<MessageBatchInfo> info = parseBatch(body)) {
                  result.value = batchStatusFrom(*info);
              } else {
                  result.error.httpStatus = httpStatusOf(r);
                  result.error.message = QStringLiteral("invalid Message Batch from provider");
                  result.error.body = body.left(kMaxErrorBodyBytes);
                  scrubKey(result.error, key);
              }
              done(std::move(result));
          }));
}

void AnthropicProvider::submit(QObject *context, const Credentials &creds, const BatchSubmission &,
                               const QByteArray &, const QByteArray &lines, StatusCallback done) {
    QNetworkRequest req = makeRequest(creds, endpointUrl(QByteArrayLiteral("/messages/batches")));
    req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    expectBatch(context, m_nam->post(req, createBody(lines)), creds, std::move(done));
}

void AnthropicProvider::find(QObject *context, const Credentials &creds,
                             const BatchSubmission &submission, const QByteArray &state,
                             Callback<std::optional<BatchStatus>> done) {
    const State s = stateOf(state);
    if (s.intentMs <= 0) {
        // No intent recorded: nothing of ours can be told apart upstream.
        ProviderResult<std::optional<BatchStatus>> out;
        out.value = std::optional<BatchStatus>();
        QMetaObject::invokeMethod(
            context ? context : this,
            [done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); },
            Qt::QueuedConnection);
        return;
    }
    findPage(context, creds, s.intentMs, s.requests > 0 ? s.requests : submission.requests,
             submission.heldElsewhere, {}, 0, std::nullopt, std::move(done));
}

void AnthropicProvider::findPage(QObject *context, const Credentials &creds, qint64 intentMs,
                                 int requests,
                                 std::function<bool(const QByteArray &)> heldElsewhere,
                                 const QByteArray &afterId, int page,
                                 std::optional<MessageBatchInfo> best,
                                 Callback<std::optional<BatchStatus>> done) {
    QByteArray query = QByteArrayLiteral("limit=100");
    if (!afterId.isEmpty())
        query +=
            QByteArrayLiteral("&after_id=") + QUrl::toPercentEncoding(QString::fromUtf8(afterId));
    QNetworkReply *reply =
        m_nam->get(makeRequest(creds, endpointUrl(QByteArrayLiteral("/messages/batches"), query)));
    track(reply,
          bound(context, [this, context, creds, intentMs, requests,
                          heldElsewhere = std::move(heldElsewhere), page, best = std::move(best),
                          done = std::move(done)](QNetworkReply *r) mutable {
              const QByteArray body = readRest(r);
              ProviderResult<std::optional<BatchStatus>> out;
              if (std::optional<ProviderError> err = replyError(r, body, creds.apiKey)) {
                  out.error = std::move(*err);
                  return done(std::move(out));
              }
              const std::optional<MessageBatchPage> list = parseBatchPage(body);
              if (!list) {
                  out.error.httpStatus = httpStatusOf(r);
                  out.error.message = QStringLiteral("invalid batch list from provider");
                  return done(std::move(out));
              }
              // Newest first: stop once the batches are older than the intent could make.
              bool older = false;
              for (const MessageBatchInfo &b : list->batches) {
                  if (b.createdAtMs > 0 && b.createdAtMs < intentMs - kFindSkewMs) {
                      older = true;
                      break;
                  }
                  if (b.total() != requests || b.createdAtMs > intentMs + kFindWindowMs)
                      continue;
                  // Another batch of ours, made just before this one's intent, looks the same
                  // (when, how many): the one it belongs to holds its id.
                  if (heldElsewhere && heldElsewhere(b.id))
                      continue;
                  if (!best || b.createdAtMs < best->createdAtMs)
                      best = b; // the earliest: a later one would be a second create
              }
              if (!older && list->hasMore && page + 1 < kFindPages)
                  return findPage(context, creds, intentMs, requests, std::move(heldElsewhere),
                                  list->lastId, page + 1, std::move(best), std::move(done));
              out.value = best ? std::optional<BatchStatus>(batchStatusFrom(*best))
                               : std::optional<BatchStatus>();
              done(std::move(out));
          }));
}

void AnthropicProvider::poll(QObject *context, const Credentials &creds, const QByteArray &batchId,
                             const QByteArray &, StatusCallback done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/messages/batches/") +
                                 QUrl::toPercentEncoding(QString::fromUtf8(batchId)));
    expectBatch(context, m_nam->get(makeRequest(creds, url)), creds, std::move(done));
}

void AnthropicProvider::cancel(QObject *context, const Credentials &creds,
                               const QByteArray &batchId, const QByteArray &, StatusCallback done) {
    const QUrl url = endpointUrl(QByteArrayLiteral("/messages/batches/") +
                                 QUrl::toPercentEncoding(QString::fromUtf8(batchId)) +
                                 QByteArrayLiteral("/cancel"));
    expectBatch(context, m_nam->post(makeRequest(creds, url), QByteArray()), creds,
                std::move(done));
}

void AnthropicProvider::readResults(QObject *context, const Credentials &creds,
                                    const QByteArray &batchId, const QByteArray &state,
                                    ResultCallback onLine, LineTooLongCallback onLineTooLong,
                                    DoneCallback done) {
    // The results_url the provider named, if it is on the API's own origin (the key goes with
    // the request); else the documented path.
    QUrl url = endpointUrl(QByteArrayLiteral("/messages/batches/") +
                           QUrl::toPercentEncoding(QString::fromUtf8(batchId)) +
                           QByteArrayLiteral("/results"));
    const QUrl named(QString::fromUtf8(stateOf(state).resultsUrl), QUrl::StrictMode);
    if (named.isValid() && named.scheme() == m_baseUrl.scheme() &&
        named.host() == m_baseUrl.host() && named.port() == m_baseUrl.port())
        url = named;
    QNetworkRequest req = makeRequest(creds, url);
    req.setRawHeader(QByteArrayLiteral("Accept"), QByteArrayLiteral("application/binary"));
    QPointer<QObject> guard(context);
    downloadLines(
        std::move(req), creds.apiKey,
        resultLines(context, batchId, std::make_shared<ResultCallback>(std::move(onLine))),
        [guard, onLineTooLong = std::move(onLineTooLong)](const TooLongLine &line) {
            if (guard && onLineTooLong)
                onLineTooLong(line);
        },
        bound(context, std::move(done)));
}

void AnthropicProvider::cleanUp(const Credentials &creds, const QByteArray &state) {
    const QByteArray id = stateOf(state).id;
    if (id.isEmpty())
        return;
    const QUrl url = endpointUrl(QByteArrayLiteral("/messages/batches/") +
                                 QUrl::toPercentEncoding(QString::fromUtf8(id)));
    track(m_nam->deleteResource(makeRequest(creds, url)),
          [id, key = creds.apiKey](QNetworkReply *r) {
              // Fire and forget: a batch we fail to delete stays listed until Anthropic
              // archives it (its results go after 29 days).
              if (const std::optional<ProviderError> err = replyError(r, readRest(r), key))
                  qCInfo(lcProvider).noquote() << "could not delete" << id << ":" << err->message;
          });
}

void AnthropicProvider::sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                                        const QByteArray &body, Callback<SyncAnswer> done) {
    const QByteArray path = endpoint.startsWith("/v1/") ? endpoint.mid(3) : endpoint;
    postSynchronous(makeRequest(creds, endpointUrl(path)), body, creds.apiKey, &passedOnToClient,
                    std::move(done));
}

} // namespace llmproxy
