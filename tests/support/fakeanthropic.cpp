// SPDX-License-Identifier: GPL-3.0-or-later
#include "fakeanthropic.h"

#include "fakemodel.h" // fakeId()

#include <QAbstractHttpServer>
#include <QDateTime>
#include <QHostAddress>
#include <QHttpServerRequest>
#include <QHttpServerResponder>
#include <QJsonArray>
#include <QJsonDocument>
#include <QRegularExpression>
#include <QSet>
#include <QTcpSocket>
#include <QTimer>
#include <QUrlQuery>

#include <algorithm>
#include <cmath>

namespace llmproxy::test {

using namespace Qt::StringLiterals;

namespace {

QString str(const QByteArray &bytes) {
    return QString::fromUtf8(bytes);
}

QString timestamp(qint64 ms) {
    return QDateTime::fromMSecsSinceEpoch(ms, Qt::UTC).toString(Qt::ISODateWithMs);
}

QJsonValue nullableTime(qint64 ms) {
    return ms ? QJsonValue(timestamp(ms)) : QJsonValue(QJsonValue::Null);
}

int statusOfErrorType(const QString &type) {
    static const QHash<QString, int> statuses{
        {u"invalid_request_error"_s, 400}, {u"authentication_error"_s, 401},
        {u"billing_error"_s, 402},         {u"permission_error"_s, 403},
        {u"not_found_error"_s, 404},       {u"request_too_large"_s, 413},
        {u"rate_limit_error"_s, 429},      {u"api_error"_s, 500},
        {u"timeout_error"_s, 504},         {u"overloaded_error"_s, 529}};
    return statuses.value(type, 500);
}

QString errorTypeOfStatus(int status) {
    switch (status) {
    case 400:
        return u"invalid_request_error"_s;
    case 401:
        return u"authentication_error"_s;
    case 403:
        return u"permission_error"_s;
    case 404:
        return u"not_found_error"_s;
    case 413:
        return u"request_too_large"_s;
    case 429:
        return u"rate_limit_error"_s;
    case 529:
        return u"overloaded_error"_s;
    default:
        return u"api_error"_s;
    }
}

QJsonObject errorObject(const QString &type, const QString &message, const QByteArray &requestId) {
    return QJsonObject{
        {"type"_L1, "error"_L1},
        {"error"_L1, QJsonObject{{"type"_L1, type}, {"message"_L1, message}}},
        {"request_id"_L1, str(requestId)},
    };
}

// The text of the last user message (string content, or its text blocks joined).
QString lastUserText(const QJsonObject &params) {
    const QJsonArray messages = params.value("messages"_L1).toArray();
    for (qsizetype i = messages.size() - 1; i >= 0; --i) {
        const QJsonObject m = messages.at(i).toObject();
        if (m.value("role"_L1).toString() != "user"_L1)
            continue;
        const QJsonValue content = m.value("content"_L1);
        if (content.isString())
            return content.toString();
        QString text;
        for (const QJsonValue &block : content.toArray()) {
            if (block.toObject().value("type"_L1).toString() == "text"_L1)
                text += block.toObject().value("text"_L1).toString();
        }
        return text;
    }
    return {};
}

// What the API says about params it refuses (empty: fine).
QString paramsProblem(const QJsonObject &params) {
    if (!params.value("model"_L1).isString() || params.value("model"_L1).toString().isEmpty())
        return u"model: Field required"_s;
    if (!params.value("max_tokens"_L1).isDouble())
        return u"max_tokens: Field required"_s;
    if (params.value("max_tokens"_L1).toDouble() < 1)
        return u"max_tokens: Input should be greater than or equal to 1"_s;
    if (!params.value("messages"_L1).isArray())
        return u"messages: Field required"_s;
    return {};
}

// The TTL of each cache_control breakpoint in the request, in the order the prompt is cached
// (tools, then system, then messages): "5m" unless the breakpoint says "ttl":"1h".
QStringList cacheBreakpointTtls(const QJsonObject &params) {
    QStringList ttls;
    const auto note = [&ttls](const QJsonValue &block) {
        const QJsonValue control = block.toObject().value("cache_control"_L1);
        if (control.isObject())
            ttls.append(control.toObject().value("ttl"_L1).toString(u"5m"_s));
    };
    for (const QJsonValue &tool : params.value("tools"_L1).toArray())
        note(tool);
    for (const QJsonValue &block : params.value("system"_L1).toArray())
        note(block);
    for (const QJsonValue &message : params.value("messages"_L1).toArray()) {
        for (const QJsonValue &block : message.toObject().value("content"_L1).toArray())
            note(block);
    }
    return ttls;
}

struct ModelResult {
    QString errorType; // empty: a message
    QString errorMessage;
    QJsonObject message;
};

ModelResult runModel(const QJsonObject &params, bool batched) {
    ModelResult r;
    if (const QString problem = paramsProblem(params); !problem.isEmpty()) {
        r.errorType = u"invalid_request_error"_s;
        r.errorMessage = problem;
        return r;
    }
    if (batched && params.contains("stream"_L1)) {
        r.errorType = u"invalid_request_error"_s;
        r.errorMessage = u"stream: Streaming is not supported in the Message Batches API"_s;
        return r;
    }
    const QString text = lastUserText(params);
    static const QRegularExpression errorScript(u"\\[\\[error:([a-z_]+)\\]\\]"_s);
    if (const QRegularExpressionMatch m = errorScript.match(text); m.hasMatch()) {
        r.errorType = m.captured(1);
        r.errorMessage = u"scripted "_s + r.errorType;
        return r;
    }
    const QString answer = u"echo: "_s + text;
    QJsonObject usage{{"input_tokens"_L1, qint64(text.toUtf8().size())},
                      {"output_tokens"_L1, qint64(answer.toUtf8().size())},
                      {"cache_creation_input_tokens"_L1, 0},
                      {"cache_read_input_tokens"_L1, 0}};
    static const QRegularExpression cacheScript(u"\\[\\[cache:(\\d+):(\\d+)\\]\\]"_s);
    if (const QRegularExpressionMatch m = cacheScript.match(text); m.hasMatch()) {
        usage.insert("cache_creation_input_tokens"_L1, m.captured(1).toLongLong());
        usage.insert("cache_read_input_tokens"_L1, m.captured(2).toLongLong());
    }
    // A request that asks for caching gets the cache writes split by TTL, as the API reports
    // them (usage.cache_creation); the fake writes them all at its last breakpoint's TTL.
    if (const QStringList ttls = cacheBreakpointTtls(params); !ttls.isEmpty()) {
        const qint64 written = usage.value("cache_creation_input_tokens"_L1).toInteger();
        const bool oneHour = ttls.constLast() == "1h"_L1;
        usage.insert("cache_creation"_L1,
                     QJsonObject{{"ephemeral_5m_input_tokens"_L1, oneHour ? 0 : written},
                                 {"ephemeral_1h_input_tokens"_L1, oneHour ? written : 0}});
    }
    if (batched)
        usage.insert("service_tier"_L1, "batch"_L1);
    // With tools, the model calls the first one with the text as its input.
    const QJsonArray tools = params.value("tools"_L1).toArray();
    if (!tools.isEmpty() && tools.first().toObject().value("name"_L1).isString()) {
        const QJsonObject toolUse{{"type"_L1, "tool_use"_L1},
                                  {"id"_L1, str(fakeId("toolu_"))},
                                  {"name"_L1, tools.first().toObject().value("name"_L1)},
                                  {"input"_L1, QJsonObject{{"text"_L1, text}}}};
        r.message = QJsonObject{
            {"id"_L1, str(fakeId("msg_"))},
            {"type"_L1, "message"_L1},
            {"role"_L1, "assistant"_L1},
            {"model"_L1, params.value("model"_L1)},
            {"content"_L1,
             QJsonArray{QJsonObject{{"type"_L1, "text"_L1}, {"text"_L1, answer}}, toolUse}},
            {"stop_reason"_L1, "tool_use"_L1},
            {"stop_sequence"_L1, QJsonValue::Null},
            {"usage"_L1, usage},
        };
        return r;
    }
    r.message = QJsonObject{
        {"id"_L1, str(fakeId("msg_"))},
        {"type"_L1, "message"_L1},
        {"role"_L1, "assistant"_L1},
        {"model"_L1, params.value("model"_L1)},
        {"content"_L1, QJsonArray{QJsonObject{{"type"_L1, "text"_L1}, {"text"_L1, answer}}}},
        {"stop_reason"_L1, "end_turn"_L1},
        {"stop_sequence"_L1, QJsonValue::Null},
        {"usage"_L1, usage},
    };
    return r;
}

const std::map<QString, FakeAnthropic::Operation> &operationNames() {
    using Op = FakeAnthropic::Operation;
    static const std::map<QString, Op> names{
        {u"create"_s, Op::Create},    {u"retrieve"_s, Op::Retrieve}, {u"list"_s, Op::List},
        {u"cancel"_s, Op::Cancel},    {u"results"_s, Op::Results},   {u"delete"_s, Op::Delete},
        {u"messages"_s, Op::Messages}};
    return names;
}

} // namespace

class FakeAnthropicHttpServer final : public QAbstractHttpServer {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FakeAnthropicHttpServer)
public:
    explicit FakeAnthropicHttpServer(FakeAnthropic *owner)
        : QAbstractHttpServer(owner)
        , m_owner(owner) {}

protected:
    bool handleRequest(const QHttpServerRequest &request, QTcpSocket *socket) override {
        m_owner->handleRequest(
            request, std::make_shared<QHttpServerResponder>(makeResponder(request, socket)));
        return true;
    }
    void missingHandler(const QHttpServerRequest &, QTcpSocket *) override {}

private:
    FakeAnthropic *m_owner;
};

struct FakeAnthropic::Incoming {
    QByteArray method;
    QByteArray path;
    QByteArray query;
    QUrlQuery urlQuery;
    QList<QPair<QByteArray, QByteArray>> headers;
    QByteArray body;

    QByteArray header(QByteArrayView name) const {
        for (const auto &[key, value] : headers) {
            if (key.compare(name, Qt::CaseInsensitive) == 0)
                return value;
        }
        return {};
    }
};

struct FakeAnthropic::Answer {
    int status = 200;
    QByteArray contentType = QByteArrayLiteral("application/json");
    QByteArray body;
    QList<QPair<QByteArray, QByteArray>> headers;
    bool drop = false;
    QByteArray requestId = fakeId("req_");

    static Answer json(int status, const QJsonObject &object) {
        Answer answer;
        answer.status = status;
        answer.body = QJsonDocument(object).toJson(QJsonDocument::Compact);
        return answer;
    }
    static Answer error(int status, const QString &type, const QString &message) {
        Answer answer;
        answer.status = status;
        answer.body = QJsonDocument(errorObject(type, message, answer.requestId))
                          .toJson(QJsonDocument::Compact);
        return answer;
    }
};

struct FakeAnthropic::Batch {
    QByteArray id;
    QByteArray status = "in_progress";
    qint64 createdMs = 0;
    qint64 endedMs = 0;
    qint64 cancelMs = 0;
    QList<QByteArray> customIds;
    QList<QJsonObject> params;
    QList<QByteArray> resultLines; // once ended
    int succeeded = 0, errored = 0, canceled = 0, expired = 0;
    QByteArray apiKey, version, beta;
    bool deleted = false;
};

FakeAnthropic::FakeAnthropic(QObject *parent)
    : QObject(parent)
    , m_server(new FakeAnthropicHttpServer(this)) {}

FakeAnthropic::~FakeAnthropic() = default;

bool FakeAnthropic::listen(quint16 port) {
    m_port = m_server->listen(QHostAddress::LocalHost, port);
    return m_port != 0;
}

QUrl FakeAnthropic::baseUrl() const {
    return QUrl(u"http://127.0.0.1:%1/v1"_s.arg(m_port));
}

void FakeAnthropic::setNeverFinish(bool neverFinish) {
    m_neverFinish = neverFinish;
    if (neverFinish)
        return;
    for (const auto &batch : m_batches) {
        if (batch->status == "in_progress")
            QTimer::singleShot(m_processingDelay, this,
                               [this, id = batch->id, epoch = m_epoch] { end(id, epoch, "done"); });
    }
}

void FakeAnthropic::setExpireAfter(std::chrono::milliseconds after, double fractionDone) {
    m_expireAfter = after;
    m_expireFractionDone = std::clamp(fractionDone, 0.0, 1.0);
}

void FakeAnthropic::setLimits(int maxRequests, qint64 maxBytes) {
    m_maxRequests = maxRequests;
    m_maxBytes = maxBytes;
}

void FakeAnthropic::failNext(Operation op, int count, int httpStatus,
                             const QByteArray &retryAfter) {
    m_faults[op] = Fault{count, httpStatus, retryAfter};
}

void FakeAnthropic::reset() {
    ++m_epoch;
    m_processingDelay = std::chrono::milliseconds(50);
    m_cancelDelay = std::chrono::milliseconds(20);
    m_expireAfter = std::chrono::milliseconds(-1);
    m_expireFractionDone = 0.5;
    m_cancelFractionDone = 0.5;
    m_neverFinish = false;
    m_maxRequests = 100000;
    m_maxBytes = 256LL * 1024 * 1024;
    m_acceptedKey.clear();
    m_forbiddenKey.clear();
    m_faults.clear();
    m_requests.clear();
    m_batches.clear();
}

bool FakeAnthropic::applyConfig(const QJsonObject &config, QString *error) {
    static const QSet<QString> known{u"processing_delay_ms"_s,
                                     u"cancel_delay_ms"_s,
                                     u"never_finish"_s,
                                     u"expire_after_ms"_s,
                                     u"expire_fraction_done"_s,
                                     u"cancel_fraction_done"_s,
                                     u"max_requests"_s,
                                     u"max_bytes"_s,
                                     u"fail_next"_s};
    for (auto it = config.begin(); it != config.end(); ++it) {
        if (!known.contains(it.key())) {
            *error = u"unknown key "_s + it.key();
            return false;
        }
    }
    using std::chrono::milliseconds;
    if (config.contains("processing_delay_ms"_L1))
        m_processingDelay = milliseconds(config.value("processing_delay_ms"_L1).toInteger());
    if (config.contains("cancel_delay_ms"_L1))
        m_cancelDelay = milliseconds(config.value("cancel_delay_ms"_L1).toInteger());
    if (config.contains("never_finish"_L1))
        setNeverFinish(config.value("never_finish"_L1).toBool());
    if (config.contains("expire_after_ms"_L1))
        setExpireAfter(milliseconds(config.value("expire_after_ms"_L1).toInteger()),
                       config.value("expire_fraction_done"_L1).toDouble(0.5));
    if (config.contains("cancel_fraction_done"_L1))
        m_cancelFractionDone = config.value("cancel_fraction_done"_L1).toDouble();
    if (config.contains("max_requests"_L1))
        m_maxRequests = config.value("max_requests"_L1).toInt();
    if (config.contains("max_bytes"_L1))
        m_maxBytes = config.value("max_bytes"_L1).toInteger();
    if (config.contains("fail_next"_L1)) {
        const QJsonObject f = config.value("fail_next"_L1).toObject();
        const auto op = operationNames().find(f.value("op"_L1).toString());
        if (op == operationNames().end()) {
            *error = u"unknown fail_next.op"_s;
            return false;
        }
        failNext(op->second, f.value("count"_L1).toInt(1), f.value("status"_L1).toInt(),
                 f.value("retry_after"_L1).toString().toUtf8());
    }
    return true;
}

int FakeAnthropic::count(QByteArrayView method, QByteArrayView pathPrefix) const {
    return int(std::count_if(m_requests.cbegin(), m_requests.cend(), [&](const RequestRecord &r) {
        return (method.isEmpty() || r.method == method) && r.path.startsWith(pathPrefix);
    }));
}

QList<FakeAnthropic::BatchRecord> FakeAnthropic::batches() const {
    QList<BatchRecord> out;
    for (const auto &b : m_batches)
        out.append({b->id, b->status, b->customIds, b->apiKey, b->version, b->beta, b->deleted});
    return out;
}

int FakeAnthropic::batchesLive() const {
    return int(std::count_if(m_batches.cbegin(), m_batches.cend(),
                             [](const auto &b) { return !b->deleted; }));
}

QJsonObject FakeAnthropic::stateJson() const {
    QJsonArray batches;
    for (const auto &b : m_batches) {
        QJsonArray ids;
        for (const QByteArray &id : b->customIds)
            ids.append(str(id));
        QJsonObject o = batchJson(*b);
        o.insert("custom_ids"_L1, ids);
        o.insert("deleted"_L1, b->deleted);
        o.insert("anthropic_version"_L1, str(b->version));
        o.insert("anthropic_beta"_L1, str(b->beta));
        batches.append(o);
    }
    return QJsonObject{{"batches"_L1, batches},
                       {"requests"_L1, qint64(m_requests.size())},
                       {"batches_live"_L1, batchesLive()}};
}

FakeAnthropic::Batch *FakeAnthropic::findBatch(const QByteArray &id) const {
    for (const auto &b : m_batches) {
        if (b->id == id && !b->deleted)
            return b.get();
    }
    return nullptr;
}

QJsonObject FakeAnthropic::batchJson(const Batch &b) const {
    const bool ended = b.status == "ended";
    const int processing = ended ? 0 : int(b.customIds.size());
    return QJsonObject{
        {"id"_L1, str(b.id)},
        {"type"_L1, "message_batch"_L1},
        {"processing_status"_L1, str(b.status)},
        {"request_counts"_L1, QJsonObject{{"processing"_L1, processing},
                                          {"succeeded"_L1, b.succeeded},
                                          {"errored"_L1, b.errored},
                                          {"canceled"_L1, b.canceled},
                                          {"expired"_L1, b.expired}}},
        {"ended_at"_L1, nullableTime(b.endedMs)},
        {"created_at"_L1, timestamp(b.createdMs)},
        {"expires_at"_L1, timestamp(b.createdMs + 24LL * 3600 * 1000)},
        {"archived_at"_L1, QJsonValue::Null},
        {"cancel_initiated_at"_L1, nullableTime(b.cancelMs)},
        {"results_url"_L1, ended ? QJsonValue(baseUrl().toString() + u"/messages/batches/"_s +
                                              str(b.id) + u"/results"_s)
                                 : QJsonValue(QJsonValue::Null)},
    };
}

void FakeAnthropic::handleRequest(const QHttpServerRequest &request,
                                  std::shared_ptr<QHttpServerResponder> responder) {
    Incoming in;
    const QUrl url = request.url();
    in.method = request.method() == QHttpServerRequest::Method::Get      ? "GET"
                : request.method() == QHttpServerRequest::Method::Post   ? "POST"
                : request.method() == QHttpServerRequest::Method::Delete ? "DELETE"
                                                                         : "OTHER";
    in.path = url.path().toUtf8();
    in.query = url.query(QUrl::FullyEncoded).toLatin1();
    in.urlQuery = QUrlQuery(url);
    in.headers = request.headers();
    in.body = request.body();
    const QPointer<QTcpSocket> socket = responder->socket();
    const Answer answer = route(in);
    if (!socket || socket->state() != QAbstractSocket::ConnectedState)
        return;
    if (answer.drop) {
        QTimer::singleShot(0, socket.data(), [socket] {
            if (socket)
                socket->disconnectFromHost();
        });
        return;
    }
    responder->writeStatusLine(static_cast<QHttpServerResponder::StatusCode>(answer.status));
    responder->writeHeader(QByteArrayLiteral("Content-Type"), answer.contentType);
    responder->writeHeader(QByteArrayLiteral("request-id"), answer.requestId);
    for (const auto &[key, value] : answer.headers)
        responder->writeHeader(key, value);
    responder->writeHeader(QByteArrayLiteral("Content-Length"),
                           QByteArray::number(answer.body.size()));
    responder->writeBody(answer.body);
}

std::optional<FakeAnthropic::Answer> FakeAnthropic::fault(Operation op) {
    const auto it = m_faults.find(op);
    if (it == m_faults.end() || it->second.count <= 0)
        return std::nullopt;
    --it->second.count;
    if (it->second.status == 0) {
        Answer a;
        a.drop = true;
        return a;
    }
    Answer a = Answer::error(it->second.status, errorTypeOfStatus(it->second.status),
                             u"scripted failure"_s);
    if (!it->second.retryAfter.isEmpty())
        a.headers.append({QByteArrayLiteral("retry-after"), it->second.retryAfter});
    return a;
}

FakeAnthropic::Answer FakeAnthropic::route(const Incoming &in) {
    if (in.path.startsWith("/_fake/"))
        return control(in);
    RequestRecord record{in.method, in.path, in.query, {}, in.body.size()};
    for (const char *name : {"x-api-key", "authorization", "anthropic-version", "anthropic-beta",
                             "content-type", "accept"}) {
        const QByteArray value = in.header(name);
        if (!value.isNull())
            record.headers.insert(QByteArray(name), value);
    }
    m_requests.append(record);

    QByteArray key = in.header("x-api-key");
    if (key.isEmpty() && in.header("authorization").toLower().startsWith("bearer "))
        key = in.header("authorization").mid(7).trimmed();
    if (key.isEmpty())
        return Answer::error(401, u"authentication_error"_s, u"x-api-key header is required"_s);
    if (!m_forbiddenKey.isEmpty() && key == m_forbiddenKey)
        return Answer::error(403, u"permission_error"_s,
                             u"Your API key does not have permission to use the specified "
                             "resource."_s);
    if (!m_acceptedKey.isEmpty() && key != m_acceptedKey)
        return Answer::error(401, u"authentication_error"_s, u"invalid x-api-key"_s);
    if (in.header("anthropic-version").isEmpty())
        return Answer::error(400, u"invalid_request_error"_s,
                             u"anthropic-version: header is required"_s);

    static const QByteArray batches = QByteArrayLiteral("/v1/messages/batches");
    if (in.path == "/v1/models" && in.method == "GET") {
        // Newest first, `limit` (1 to 1000, default 20) to a page.
        static const char *const Models[][3] = {
            {"claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"},
            {"claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"},
            {"claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"},
        };
        bool ok = false;
        int limit = in.urlQuery.queryItemValue(u"limit"_s).toInt(&ok);
        if (!ok)
            limit = 20;
        if (limit < 1 || limit > 1000)
            return Answer::error(400, u"invalid_request_error"_s,
                                 u"limit: Input should be between 1 and 1000"_s);
        QJsonArray data;
        for (const auto &model : Models) {
            if (data.size() == limit)
                break;
            data.append(QJsonObject{{"type"_L1, "model"_L1},
                                    {"id"_L1, QLatin1StringView(model[0])},
                                    {"display_name"_L1, QLatin1StringView(model[1])},
                                    {"created_at"_L1, QLatin1StringView(model[2])}});
        }
        return Answer::json(200,
                            QJsonObject{{"data"_L1, data},
                                        {"has_more"_L1, data.size() < qsizetype(std::size(Models))},
                                        {"first_id"_L1, data.first()[u"id"_s]},
                                        {"last_id"_L1, data.last()[u"id"_s]}});
    }
    if (in.path == "/v1/messages" && in.method == "POST") {
        if (auto f = fault(Operation::Messages))
            return *f;
        return messages(in);
    }
    if (in.path == batches && in.method == "POST") {
        if (auto f = fault(Operation::Create))
            return *f;
        Answer a = createBatch(in);
        if (a.status == 200) {
            const auto &b = m_batches.back();
            b->apiKey = key;
            b->version = in.header("anthropic-version");
            b->beta = in.header("anthropic-beta");
        }
        return a;
    }
    if (in.path == batches && in.method == "GET") {
        if (auto f = fault(Operation::List))
            return *f;
        return listBatches(in);
    }
    if (in.path.startsWith(QByteArray(batches + "/"))) {
        QList<QByteArray> parts = in.path.mid(batches.size() + 1).split('/');
        Batch *batch = findBatch(parts.value(0));
        const QByteArray action = parts.value(1);
        const Answer notFound = Answer::error(
            404, u"not_found_error"_s, u"Message Batch %1 not found"_s.arg(str(parts.value(0))));
        if (in.method == "GET" && action.isEmpty()) {
            if (auto f = fault(Operation::Retrieve))
                return *f;
            return batch ? Answer::json(200, batchJson(*batch)) : notFound;
        }
        if (in.method == "POST" && action == "cancel") {
            if (auto f = fault(Operation::Cancel))
                return *f;
            return batch ? cancelBatch(*batch) : notFound;
        }
        if (in.method == "GET" && action == "results") {
            if (auto f = fault(Operation::Results))
                return *f;
            return batch ? results(*batch) : notFound;
        }
        if (in.method == "DELETE" && action.isEmpty()) {
            if (auto f = fault(Operation::Delete))
                return *f;
            if (!batch)
                return notFound;
            if (batch->status != "ended")
                return Answer::error(400, u"invalid_request_error"_s,
                                     u"Message Batch %1 cannot be deleted while it is processing; "
                                     "cancel it first"_s.arg(str(batch->id)));
            batch->deleted = true;
            return Answer::json(200, QJsonObject{{"id"_L1, str(batch->id)},
                                                 {"type"_L1, "message_batch_deleted"_L1}});
        }
    }
    return Answer::error(404, u"not_found_error"_s,
                         u"Not found: %1 %2"_s.arg(str(in.method), str(in.path)));
}

FakeAnthropic::Answer FakeAnthropic::control(const Incoming &in) {
    if (in.path == "/_fake/state")
        return Answer::json(200, stateJson());
    if (in.path == "/_fake/reset" && in.method == "POST") {
        reset();
        return Answer::json(200, QJsonObject{{"ok"_L1, true}});
    }
    if (in.path == "/_fake/config" && in.method == "POST") {
        QString error;
        if (!applyConfig(QJsonDocument::fromJson(in.body).object(), &error))
            return Answer::error(400, u"invalid_request_error"_s, error);
        return Answer::json(200, QJsonObject{{"ok"_L1, true}});
    }
    return Answer::error(404, u"not_found_error"_s, u"unknown control path"_s);
}

FakeAnthropic::Answer FakeAnthropic::createBatch(const Incoming &in) {
    if (in.body.size() > m_maxBytes)
        return Answer::error(413, u"request_too_large"_s,
                             u"Request exceeds the maximum allowed number of bytes."_s);
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(in.body, &parseError);
    if (parseError.error != QJsonParseError::NoError || !doc.isObject())
        return Answer::error(400, u"invalid_request_error"_s, u"Invalid JSON body"_s);
    const QJsonValue requests = doc.object().value("requests"_L1);
    if (!requests.isArray() || requests.toArray().isEmpty())
        return Answer::error(400, u"invalid_request_error"_s,
                             u"requests: List should have at least 1 item"_s);
    const QJsonArray list = requests.toArray();
    if (list.size() > m_maxRequests)
        return Answer::error(400, u"invalid_request_error"_s,
                             u"requests: List should have at most %1 items"_s.arg(m_maxRequests));
    static const QRegularExpression idPattern(u"^[a-zA-Z0-9_-]{1,64}$"_s);
    auto batch = std::make_unique<Batch>();
    QSet<QString> seen;
    for (const QJsonValue &v : list) {
        const QJsonObject r = v.toObject();
        const QString customId = r.value("custom_id"_L1).toString();
        if (!idPattern.match(customId).hasMatch())
            return Answer::error(400, u"invalid_request_error"_s,
                                 u"custom_id: String should match pattern "
                                 "'^[a-zA-Z0-9_-]{1,64}$'"_s);
        if (seen.contains(customId))
            return Answer::error(400, u"invalid_request_error"_s,
                                 u"Duplicate custom_id: %1"_s.arg(customId));
        if (!r.value("params"_L1).isObject())
            return Answer::error(400, u"invalid_request_error"_s, u"params: Field required"_s);
        seen.insert(customId);
        batch->customIds.append(customId.toUtf8());
        batch->params.append(r.value("params"_L1).toObject());
    }
    batch->id = fakeId("msgbatch_");
    batch->createdMs = QDateTime::currentMSecsSinceEpoch();
    const QByteArray id = batch->id;
    const QJsonObject json = batchJson(*batch);
    m_batches.push_back(std::move(batch));
    if (m_expireAfter.count() >= 0) {
        QTimer::singleShot(m_expireAfter, this,
                           [this, id, epoch = m_epoch] { end(id, epoch, "expire"); });
    } else if (!m_neverFinish) {
        QTimer::singleShot(m_processingDelay, this,
                           [this, id, epoch = m_epoch] { end(id, epoch, "done"); });
    }
    Q_EMIT batchCreated(id);
    return Answer::json(200, json);
}

void FakeAnthropic::end(const QByteArray &id, quint64 epoch, const char *why) {
    Batch *b = epoch == m_epoch ? findBatch(id) : nullptr;
    if (!b || b->status == "ended")
        return;
    const QByteArrayView reason(why);
    const qsizetype n = b->customIds.size();
    const qsizetype run = reason == "done"     ? n
                          : reason == "expire" ? qsizetype(std::floor(n * m_expireFractionDone))
                                               : qsizetype(std::floor(n * m_cancelFractionDone));
    b->resultLines.clear();
    for (qsizetype i = n - 1; i >= 0; --i) { // in any order: here, reversed
        QJsonObject result;
        if (i < run) {
            const ModelResult r = runModel(b->params.at(i), true);
            if (r.errorType.isEmpty()) {
                result = QJsonObject{{"type"_L1, "succeeded"_L1}, {"message"_L1, r.message}};
                ++b->succeeded;
            } else {
                result = QJsonObject{
                    {"type"_L1, "errored"_L1},
                    {"error"_L1, errorObject(r.errorType, r.errorMessage, fakeId("req_"))}};
                ++b->errored;
            }
        } else if (reason == "expire") {
            result = QJsonObject{{"type"_L1, "expired"_L1}};
            ++b->expired;
        } else {
            result = QJsonObject{{"type"_L1, "canceled"_L1}};
            ++b->canceled;
        }
        b->resultLines.append(QJsonDocument(QJsonObject{{"custom_id"_L1, str(b->customIds.at(i))},
                                                        {"result"_L1, result}})
                                  .toJson(QJsonDocument::Compact));
    }
    b->status = "ended";
    b->endedMs = QDateTime::currentMSecsSinceEpoch();
}

FakeAnthropic::Answer FakeAnthropic::cancelBatch(Batch &batch) {
    if (batch.status == "in_progress") {
        batch.status = "canceling";
        batch.cancelMs = QDateTime::currentMSecsSinceEpoch();
        QTimer::singleShot(m_cancelDelay, this,
                           [this, id = batch.id, epoch = m_epoch] { end(id, epoch, "cancel"); });
    }
    return Answer::json(200, batchJson(batch));
}

FakeAnthropic::Answer FakeAnthropic::results(const Batch &batch) {
    if (batch.status != "ended")
        return Answer::error(400, u"invalid_request_error"_s,
                             u"Message Batch %1 has not yet ended"_s.arg(str(batch.id)));
    Answer a;
    a.contentType = QByteArrayLiteral("application/binary");
    for (const QByteArray &line : batch.resultLines)
        a.body += line + '\n';
    return a;
}

FakeAnthropic::Answer FakeAnthropic::listBatches(const Incoming &in) {
    const int limit = std::clamp(in.urlQuery.queryItemValue(u"limit"_s).toInt(), 0, 1000);
    const QByteArray afterId = in.urlQuery.queryItemValue(u"after_id"_s).toUtf8();
    QList<const Batch *> newestFirst;
    for (auto it = m_batches.crbegin(); it != m_batches.crend(); ++it) {
        if (!(*it)->deleted)
            newestFirst.append(it->get());
    }
    qsizetype start = 0;
    if (!afterId.isEmpty()) {
        for (qsizetype i = 0; i < newestFirst.size(); ++i) {
            if (newestFirst.at(i)->id == afterId)
                start = i + 1;
        }
    }
    const qsizetype pageSize = limit > 0 ? limit : 20;
    QJsonArray data;
    for (qsizetype i = start; i < newestFirst.size() && data.size() < pageSize; ++i)
        data.append(batchJson(*newestFirst.at(i)));
    const bool hasMore = start + data.size() < newestFirst.size();
    return Answer::json(
        200, QJsonObject{{"data"_L1, data},
                         {"has_more"_L1, hasMore},
                         {"first_id"_L1, data.isEmpty() ? QJsonValue(QJsonValue::Null)
                                                        : data.first().toObject().value("id"_L1)},
                         {"last_id"_L1, data.isEmpty() ? QJsonValue(QJsonValue::Null)
                                                       : data.last().toObject().value("id"_L1)}});
}

FakeAnthropic::Answer FakeAnthropic::messages(const Incoming &in) {
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(in.body, &parseError);
    if (parseError.error != QJsonParseError::NoError || !doc.isObject())
        return Answer::error(400, u"invalid_request_error"_s, u"Invalid JSON body"_s);
    const ModelResult r = runModel(doc.object(), false);
    if (!r.errorType.isEmpty())
        return Answer::error(statusOfErrorType(r.errorType), r.errorType, r.errorMessage);
    if (doc.object().value("stream"_L1).toBool())
        return messageStream(r.message);
    return Answer::json(200, r.message);
}

FakeAnthropic::Answer FakeAnthropic::messageStream(const QJsonObject &message) {
    // The API's event sequence: message_start (the message without content; its usage has the
    // input counts and a first output count), one content block per block, message_delta (the
    // stop reason and the final output count), message_stop.
    QByteArray events;
    const auto event = [&events](const char *name, const QJsonObject &data) {
        events += "event: " + QByteArray(name) +
                  "\ndata: " + QJsonDocument(data).toJson(QJsonDocument::Compact) + "\n\n";
    };
    const QJsonObject usage = message.value("usage"_L1).toObject();
    QJsonObject startUsage = usage;
    startUsage.insert("output_tokens"_L1, 1);
    QJsonObject start = message;
    start.insert("content"_L1, QJsonArray());
    start.insert("stop_reason"_L1, QJsonValue::Null);
    start.insert("usage"_L1, startUsage);
    event("message_start", {{"type"_L1, "message_start"_L1}, {"message"_L1, start}});
    event("ping", {{"type"_L1, "ping"_L1}});
    const QJsonArray content = message.value("content"_L1).toArray();
    for (qsizetype i = 0; i < content.size(); ++i) {
        const QJsonObject block = content.at(i).toObject();
        const bool text = block.value("type"_L1).toString() == "text"_L1;
        QJsonObject empty = block;
        if (text)
            empty.insert("text"_L1, QString());
        else
            empty.insert("input"_L1, QJsonObject());
        event("content_block_start", {{"type"_L1, "content_block_start"_L1},
                                      {"index"_L1, int(i)},
                                      {"content_block"_L1, empty}});
        const QJsonObject delta =
            text ? QJsonObject{{"type"_L1, "text_delta"_L1}, {"text"_L1, block.value("text"_L1)}}
                 : QJsonObject{{"type"_L1, "input_json_delta"_L1},
                               {"partial_json"_L1,
                                QString::fromUtf8(QJsonDocument(block.value("input"_L1).toObject())
                                                      .toJson(QJsonDocument::Compact))}};
        event("content_block_delta",
              {{"type"_L1, "content_block_delta"_L1}, {"index"_L1, int(i)}, {"delta"_L1, delta}});
        event("content_block_stop", {{"type"_L1, "content_block_stop"_L1}, {"index"_L1, int(i)}});
    }
    event("message_delta",
          {{"type"_L1, "message_delta"_L1},
           {"delta"_L1, QJsonObject{{"stop_reason"_L1, message.value("stop_reason"_L1)},
                                    {"stop_sequence"_L1, QJsonValue::Null}}},
           {"usage"_L1, QJsonObject{{"output_tokens"_L1, usage.value("output_tokens"_L1)}}}});
    event("message_stop", {{"type"_L1, "message_stop"_L1}});
    Answer answer;
    answer.contentType = QByteArrayLiteral("text/event-stream");
    answer.body = events;
    return answer;
}

} // namespace llmproxy::test

#include "fakeanthropic.moc"
