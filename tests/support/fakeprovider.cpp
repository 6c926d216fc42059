// SPDX-License-Identifier: GPL-3.0-or-later
#include "fakeprovider.h"

#include "fakemodel.h"
#include "multipart.h"

#include <QAbstractHttpServer>
#include <QDateTime>
#include <QHostAddress>
#include <QHttpServerRequest>
#include <QHttpServerResponder>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSet>
#include <QTcpSocket>
#include <QTimer>
#include <QUrlQuery>

#include <algorithm>
#include <cmath>
#include <functional>

namespace llmproxy::test {

using namespace std::chrono_literals;
using namespace Qt::StringLiterals;

namespace {

constexpr qint64 kDay = 24 * 60 * 60;
constexpr qint64 kThirtyDays = 30 * kDay;

qint64 now() {
    return QDateTime::currentSecsSinceEpoch();
}

QJsonValue nullable(qint64 timestamp) {
    return timestamp ? QJsonValue(timestamp) : QJsonValue(QJsonValue::Null);
}

QJsonValue nullable(const QByteArray &id) {
    return id.isEmpty() ? QJsonValue(QJsonValue::Null) : QJsonValue(QString::fromUtf8(id));
}

QString str(const QByteArray &bytes) {
    return QString::fromUtf8(bytes);
}

QByteArray methodName(QHttpServerRequest::Method method) {
    using M = QHttpServerRequest::Method;
    switch (method) {
    case M::Get:
        return QByteArrayLiteral("GET");
    case M::Put:
        return QByteArrayLiteral("PUT");
    case M::Delete:
        return QByteArrayLiteral("DELETE");
    case M::Post:
        return QByteArrayLiteral("POST");
    case M::Head:
        return QByteArrayLiteral("HEAD");
    case M::Options:
        return QByteArrayLiteral("OPTIONS");
    case M::Patch:
        return QByteArrayLiteral("PATCH");
    case M::Connect:
        return QByteArrayLiteral("CONNECT");
    case M::Trace:
        return QByteArrayLiteral("TRACE");
    default:
        return QByteArrayLiteral("UNKNOWN");
    }
}

const QList<QByteArray> &batchEndpoints() {
    static const QList<QByteArray> endpoints{
        QByteArrayLiteral("/v1/responses"),    QByteArrayLiteral("/v1/chat/completions"),
        QByteArrayLiteral("/v1/embeddings"),   QByteArrayLiteral("/v1/completions"),
        QByteArrayLiteral("/v1/moderations"),  QByteArrayLiteral("/v1/images/generations"),
        QByteArrayLiteral("/v1/images/edits"), QByteArrayLiteral("/v1/videos")};
    return endpoints;
}

const std::map<QByteArray, FakeProvider::Operation> &operationNames() {
    using Op = FakeProvider::Operation;
    static const std::map<QByteArray, Op> names{{QByteArrayLiteral("upload"), Op::Upload},
                                                {QByteArrayLiteral("create"), Op::Create},
                                                {QByteArrayLiteral("retrieve"), Op::Retrieve},
                                                {QByteArrayLiteral("download"), Op::Download},
                                                {QByteArrayLiteral("delete"), Op::Delete},
                                                {QByteArrayLiteral("cancel"), Op::Cancel},
                                                {QByteArrayLiteral("list"), Op::List},
                                                {QByteArrayLiteral("chat"), Op::Chat}};
    return names;
}

// Gemini's words for OpenAI's statuses (the fake keeps OpenAI's internally).
QByteArray geminiStatus(const QByteArray &status) {
    if (status == "validating")
        return QByteArrayLiteral("BATCH_STATE_PENDING");
    if (status == "completed")
        return QByteArrayLiteral("BATCH_STATE_SUCCEEDED");
    if (status == "failed" || status == "cancelled" || status == "expired")
        return QByteArrayLiteral("BATCH_STATE_") + status.toUpper();
    if (status == "cancelling") // the shared JobState word; BATCH_STATE_* has none
        return QByteArrayLiteral("JOB_STATE_CANCELLING");
    return QByteArrayLiteral("BATCH_STATE_RUNNING"); // in_progress, finalizing
}
QJsonObject lineError(const QString &code, const QString &message, const QJsonValue &param,
                      qsizetype line) {
    return QJsonObject{{"code"_L1, code},
                       {"message"_L1, message},
                       {"param"_L1, param},
                       {"line"_L1, line > 0 ? QJsonValue(static_cast<qint64>(line))
                                            : QJsonValue(QJsonValue::Null)}};
}

} // namespace

// The HTTP front of the fake: hands every request to FakeProvider with a stored responder.
class FakeHttpServer final : public QAbstractHttpServer {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FakeHttpServer)
public:
    explicit FakeHttpServer(FakeProvider *owner)
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
    FakeProvider *m_owner;
};

// What the fake needs of a request, copied at once (Qt reuses the request object).
struct FakeProvider::Incoming {
    QByteArray method;
    QByteArray path;        // decoded, for routing
    QByteArray encodedPath; // as received
    QByteArray query;       // as received, without '?'
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

struct FakeProvider::Answer {
    int status = 200;
    QByteArray contentType = QByteArrayLiteral("application/json");
    QByteArray body;
    QList<QPair<QByteArray, QByteArray>> headers;
    bool drop = false;
    QList<QByteArray> events; // non-empty: an SSE stream

    static Answer json(int status, const QJsonObject &object) {
        Answer answer;
        answer.status = status;
        answer.body = QJsonDocument(object).toJson(QJsonDocument::Compact);
        return answer;
    }
    static Answer error(int status, const QString &message,
                        const QJsonValue &param = QJsonValue::Null,
                        const QJsonValue &code = QJsonValue::Null) {
        return json(status, openAiError(message, u"invalid_request_error"_s, param, code));
    }
};

struct FakeProvider::FileEntry {
    QByteArray id;
    QByteArray fileName;
    QByteArray purpose;
    QByteArray content;
    qint64 createdAt = 0;
    qint64 expiresAt = 0;

    QJsonObject toJson() const {
        return QJsonObject{{"id"_L1, str(id)},
                           {"object"_L1, "file"_L1},
                           {"bytes"_L1, static_cast<qint64>(content.size())},
                           {"created_at"_L1, createdAt},
                           {"expires_at"_L1, nullable(expiresAt)},
                           {"filename"_L1, str(fileName)},
                           {"purpose"_L1, str(purpose)},
                           {"status"_L1, "processed"_L1},
                           {"status_details"_L1, QJsonValue::Null}};
    }
};

struct FakeProvider::BatchEntry {
    struct Line {
        QByteArray customId;
        QJsonObject body;
    };

    BatchRecord record;
    QByteArray content; // the input file as it was when the batch was created
    QByteArray completionWindow;
    QByteArray status = QByteArrayLiteral("validating");
    QByteArray cancelledFrom;
    bool validated = false;
    bool held = false;            // in_progress, waiting for setNeverFinish(false) or a cancel
    bool upperCaseStatus = false; // Together spells its statuses in capitals
    FakeProvider::Shape shape = FakeProvider::Shape::OpenAi;
    qint64 createdAt = 0, inProgressAt = 0, expiresAt = 0, finalizingAt = 0, completedAt = 0,
           failedAt = 0, expiredAt = 0, cancellingAt = 0, cancelledAt = 0;
    QByteArray outputFileId, errorFileId;
    QJsonArray errors;
    int completed = 0, failed = 0;
    qint64 inputTokens = 0, outputTokens = 0;
    qint64 queueTokens = 0; // what it holds of its model's queue (setQueueLimit)
    QList<Line> lines;

    QJsonObject toJson() const {
        const QJsonObject usage{
            {"input_tokens"_L1, inputTokens},
            {"input_tokens_details"_L1, QJsonObject{{"cached_tokens"_L1, 0}}},
            {"output_tokens"_L1, outputTokens},
            {"output_tokens_details"_L1, QJsonObject{{"reasoning_tokens"_L1, 0}}},
            {"total_tokens"_L1, inputTokens + outputTokens}};
        const QJsonObject counts{{"total"_L1, validated ? static_cast<int>(lines.size()) : 0},
                                 {"completed"_L1, completed},
                                 {"failed"_L1, failed}};
        return QJsonObject{
            {"id"_L1, str(record.id)},
            {"object"_L1, "batch"_L1},
            {"endpoint"_L1, str(record.endpoint)},
            {"model"_L1, validated ? nullable(record.model) : QJsonValue(QJsonValue::Null)},
            {"errors"_L1, errors.isEmpty()
                              ? QJsonValue(QJsonValue::Null)
                              : QJsonObject{{"object"_L1, "list"_L1}, {"data"_L1, errors}}},
            {"input_file_id"_L1, str(record.inputFileId)},
            {"completion_window"_L1, str(completionWindow)},
            {"status"_L1, shape == FakeProvider::Shape::Gemini ? str(geminiStatus(status))
                          : upperCaseStatus                    ? str(status.toUpper())
                                                               : str(status)},
            {"output_file_id"_L1, nullable(outputFileId)},
            {"error_file_id"_L1, nullable(errorFileId)},
            {"created_at"_L1, createdAt},
            {"in_progress_at"_L1, nullable(inProgressAt)},
            {"expires_at"_L1, nullable(expiresAt)},
            {"finalizing_at"_L1, nullable(finalizingAt)},
            {"completed_at"_L1, nullable(completedAt)},
            {"failed_at"_L1, nullable(failedAt)},
            {"expired_at"_L1, nullable(expiredAt)},
            {"cancelling_at"_L1, nullable(cancellingAt)},
            {"cancelled_at"_L1, nullable(cancelledAt)},
            {"request_counts"_L1, counts},
            {"usage"_L1, usage},
            {"metadata"_L1, record.metadata.isEmpty() ? QJsonValue(QJsonValue::Null)
                                                      : QJsonValue(record.metadata)}};
    }
};

FakeProvider::FakeProvider(QObject *parent)
    : QObject(parent)
    , m_server(new FakeHttpServer(this)) {
    clearScripting();
    // The suites that run once more against Together's shape say so in the environment (the
    // proxy reads the same variable).
    if (const auto shape = shapeNamed(qgetenv("LLMPROXY_TEST_PROVIDER_SHAPE")))
        m_shape = *shape;
}

namespace {
constexpr std::pair<const char *, FakeProvider::Shape> ShapeNames[] = {
    {"openai", FakeProvider::Shape::OpenAi}, {"together", FakeProvider::Shape::Together},
    {"azure", FakeProvider::Shape::Azure},   {"gemini", FakeProvider::Shape::Gemini},
    {"groq", FakeProvider::Shape::Groq},     {"generic", FakeProvider::Shape::Generic},
};

} // namespace

std::optional<FakeProvider::Shape> FakeProvider::shapeNamed(QByteArrayView name) {
    for (const auto &[text, shape] : ShapeNames) {
        if (name == text)
            return shape;
    }
    return std::nullopt;
}

QByteArray FakeProvider::shapeName(Shape shape) {
    for (const auto &[text, s] : ShapeNames) {
        if (s == shape)
            return QByteArray(text);
    }
    return {};
}

QByteArray FakeProvider::pathPrefix() const {
    switch (m_shape) {
    case Shape::Azure:
    case Shape::Groq:
        return QByteArrayLiteral("/openai/v1");
    case Shape::Gemini:
        return QByteArrayLiteral("/v1beta/openai");
    default:
        return QByteArrayLiteral("/v1");
    }
}

int FakeProvider::maxRequestsPerFile() const {
    if (m_maxRequestsPerFile > 0)
        return m_maxRequestsPerFile;
    return m_shape == Shape::Azure ? 100000 : 50000;
}

FakeProvider::~FakeProvider() = default;

bool FakeProvider::listen(quint16 port) {
    m_port = m_server->listen(QHostAddress::LocalHost, port);
    return m_port != 0;
}

QUrl FakeProvider::baseUrl() const {
    return QUrl(u"http://127.0.0.1:%1%2"_s.arg(m_port).arg(str(pathPrefix())));
}

void FakeProvider::failNext(Operation op, int count, int httpStatus, const QByteArray &retryAfter) {
    m_faults[op] = Fault{count, httpStatus, retryAfter};
}

void FakeProvider::setBatchOutcome(BatchOutcome outcome, int count, const QByteArray &code,
                                   const QString &message) {
    m_failBatchesCount = outcome == BatchOutcome::Fail ? count : 0;
    m_failBatchCode = code;
    m_failBatchMessage = message;
}

void FakeProvider::setNeverFinish(bool neverFinish) {
    m_neverFinish = neverFinish;
    if (neverFinish)
        return;
    for (const auto &batch : m_batches) {
        if (batch->held && batch->status == "in_progress") {
            batch->held = false;
            scheduleProcessing(*batch);
        }
    }
}

void FakeProvider::setExpireAfter(std::chrono::milliseconds after, double fractionDone) {
    m_expireAfter = after;
    m_expireFractionDone = fractionDone;
}

void FakeProvider::clearScripting() {
    m_validationDelay = 50ms;
    m_processingDelay = 100ms;
    m_finalizingDelay = 20ms;
    m_cancelDelay = 20ms;
    m_streamChunkDelay = 50ms;
    m_expireAfter = -1ms;
    m_expireFractionDone = 0.5;
    m_cancelFractionDone = 0.5;
    m_neverFinish = false;
    m_faults.clear();
    m_failBatchesCount = 0;
    m_setCookie.clear();
    m_acceptedKey.clear();
    m_forbiddenKey.clear();
    m_maxRequestsPerFile = 0;
    m_flexRefusals = 0;
    m_flexUnsupported.clear();
}

QByteArray FakeProvider::batchPurpose() const {
    return m_shape == Shape::Together ? QByteArrayLiteral("batch-api") : QByteArrayLiteral("batch");
}

void FakeProvider::reset() {
    ++m_epoch;
    clearScripting();
    m_requests.clear();
    m_files.clear();
    m_deletedFileIds.clear();
    m_batches.clear();
    m_inputLinesTotal = 0;
    m_queueLimit = 0;
    m_queueFailFast = false;
    m_queueRefusals = 0;
    m_peakQueueTokens = 0;
    m_flexCalls = 0;
    m_standardCalls = 0;
}

int FakeProvider::count(QByteArrayView method, QByteArrayView pathPrefix) const {
    return static_cast<int>(
        std::count_if(m_requests.cbegin(), m_requests.cend(), [&](const RequestRecord &r) {
            return (method.isEmpty() || r.method == method) && r.path.startsWith(pathPrefix);
        }));
}

QList<FakeProvider::BatchRecord> FakeProvider::batches() const {
    QList<BatchRecord> records;
    for (const auto &batch : m_batches)
        records.append(batch->record);
    return records;
}

QJsonObject FakeProvider::batchObject(const QByteArray &id) const {
    const BatchEntry *batch = findBatch(id);
    return batch ? batch->toJson() : QJsonObject();
}

QList<QByteArray> FakeProvider::liveFileIds() const {
    QList<QByteArray> ids;
    for (const auto &[id, file] : m_files)
        ids.append(id);
    return ids;
}

QByteArray FakeProvider::fileContent(const QByteArray &id) const {
    const auto it = m_files.find(id);
    return it == m_files.end() ? QByteArray() : it->second->content;
}

FakeProvider::BatchEntry *FakeProvider::findBatch(const QByteArray &id) const {
    for (const auto &batch : m_batches) {
        if (batch->record.id == id)
            return batch.get();
    }
    return nullptr;
}

// --- HTTP ----------------------------------------------------------------------------------

void FakeProvider::handleRequest(const QHttpServerRequest &request,
                                 std::shared_ptr<QHttpServerResponder> responder) {
    Incoming in;
    const QUrl url = request.url();
    in.method = methodName(request.method());
    in.path = url.path().toUtf8();
    in.encodedPath = url.path(QUrl::FullyEncoded).toLatin1();
    in.query = url.query(QUrl::FullyEncoded).toLatin1();
    in.urlQuery = QUrlQuery(url);
    in.headers = request.headers();
    in.body = request.body();
    const QPointer<QTcpSocket> socket = responder->socket();

    const bool logged = !in.path.startsWith("/_fake/");
    const Answer answer = route(in);

    bool ok = false;
    const int delayMs = in.header("x-fake-delay-ms").toInt(&ok);
    if (ok && delayMs > 0) {
        QTimer::singleShot(
            std::chrono::milliseconds(delayMs), this,
            [this, responder, socket, answer] { dispatch(responder, socket, answer); });
    } else {
        dispatch(responder, socket, answer);
    }
    if (logged)
        Q_EMIT requestReceived();
}

FakeProvider::Answer FakeProvider::route(const Incoming &in) {
    if (in.path.startsWith("/_fake/"))
        return control(in);

    RequestRecord record{in.method, in.encodedPath, in.query, {}, in.body.size()};
    for (const char *name : {"authorization", "api-key", "openai-organization", "openai-project",
                             "content-type", "user-agent", "cookie"}) {
        const QByteArray value = in.header(name);
        if (!value.isNull())
            record.headers.insert(QByteArray(name), value);
    }
    m_requests.append(record);

    const Answer notFound =
        Answer::error(404, u"Invalid URL (%1 %2)"_s.arg(str(in.method), str(in.path)));
    // Each shape serves the API under its own prefix (Azure /openai/v1, Gemini /v1beta/openai).
    const QByteArray prefix = pathPrefix();
    if (in.path != prefix && !in.path.startsWith(QByteArray(prefix + '/')))
        return notFound;
    const QByteArray apiPath = QByteArrayLiteral("/v1") + in.path.mid(prefix.size());

    // Azure takes its key in "api-key" and refuses a Bearer token; the others want Bearer.
    QByteArray auth = in.header("authorization");
    if (m_shape == Shape::Azure) {
        const QByteArray apiKey = in.header("api-key").trimmed();
        if (apiKey.isEmpty() || (!m_acceptedKey.isEmpty() && apiKey != m_acceptedKey)) {
            return Answer::json(
                401, QJsonObject{{"error"_L1,
                                  QJsonObject{{"code"_L1, "401"_L1},
                                              {"message"_L1,
                                               "Access denied due to invalid subscription key or "
                                               "wrong API endpoint. Make sure to provide a valid "
                                               "key for an active subscription and use a correct "
                                               "regional API endpoint for your resource."_L1}}}});
        }
        auth = QByteArrayLiteral("Bearer ") + apiKey; // recorded as every shape's is
    }
    if (!auth.toLower().startsWith("bearer ") || auth.mid(7).trimmed().isEmpty()) {
        return Answer::json(
            401, openAiError(u"You didn't provide an API key. You need to provide your API key "
                             u"in an Authorization header using Bearer auth."_s,
                             u"invalid_request_error"_s, QJsonValue::Null, u"invalid_api_key"_s));
    }
    if (!m_forbiddenKey.isEmpty() && auth.mid(7).trimmed() == m_forbiddenKey) {
        return Answer::json(403, openAiError(u"Country, region, or territory not supported"_s,
                                             u"request_forbidden"_s, QJsonValue::Null,
                                             u"unsupported_country_region_territory"_s));
    }
    if (!m_acceptedKey.isEmpty() && auth.mid(7).trimmed() != m_acceptedKey) {
        return Answer::json(
            401, openAiError(u"Incorrect API key provided. You can find your API key at "
                             u"https://platform.openai.com/account/api-keys."_s,
                             u"invalid_request_error"_s, QJsonValue::Null, u"invalid_api_key"_s));
    }

    const QList<QByteArray> seg = apiPath.mid(4).split('/');
    const QByteArray &m = in.method;
    const auto is = [&](const char *method, std::initializer_list<const char *> parts) {
        if (m != method || seg.size() != static_cast<qsizetype>(parts.size()))
            return false;
        qsizetype i = 0;
        for (const char *part : parts) {
            if (*part != '*' && seg.at(i) != part)
                return false;
            ++i;
        }
        return true;
    };

    std::optional<Operation> op;
    std::function<Answer()> handler;
    if (seg.first() == "echo") {
        handler = [&] { return echo(in); };
    } else if (is("POST", {"files"})) {
        op = Operation::Upload;
        handler = [&] { return uploadFile(in); };
    } else if (is("GET", {"files", "*"}) || is("DELETE", {"files", "*"}) ||
               is("GET", {"files", "*", "content"})) {
        op = m == "DELETE" ? Operation::Delete
                           : (seg.size() == 3 ? Operation::Download : Operation::Retrieve);
        handler = [&, kind = *op] {
            const auto it = m_files.find(seg.at(1));
            if (it == m_files.end())
                return Answer::error(404, u"No such File object: %1"_s.arg(str(seg.at(1))),
                                     u"id"_s);
            if (kind == Operation::Retrieve)
                return Answer::json(200, it->second->toJson());
            if (kind == Operation::Download) {
                Answer answer;
                answer.contentType = QByteArrayLiteral("application/octet-stream");
                answer.body = it->second->content;
                return answer;
            }
            m_deletedFileIds.append(it->first);
            m_files.erase(it);
            return Answer::json(200, QJsonObject{{"id"_L1, str(seg.at(1))},
                                                 {"object"_L1, "file"_L1},
                                                 {"deleted"_L1, true}});
        };
    } else if (is("POST", {"batches"})) {
        op = Operation::Create;
        handler = [&] { return createBatch(in); };
    } else if (is("GET", {"batches"})) {
        op = Operation::List;
        handler = [&] { return listBatches(in); };
    } else if (is("GET", {"batches", "*"})) {
        op = Operation::Retrieve;
        handler = [&] {
            const BatchEntry *batch = findBatch(seg.at(1));
            return batch ? Answer::json(200, batch->toJson())
                         : Answer::error(404, u"No batch found with id '%1'."_s.arg(str(seg.at(1))),
                                         u"batch_id"_s);
        };
    } else if (is("POST", {"batches", "*", "cancel"})) {
        op = Operation::Cancel;
        handler = [&] { return cancelBatch(seg.at(1)); };
    } else if (is("POST", {"chat", "completions"}) || is("POST", {"embeddings"}) ||
               is("POST", {"completions"}) || is("POST", {"responses"}) ||
               is("POST", {"moderations"})) {
        op = Operation::Chat;
        handler = [&] { return syncModel(in, apiPath); };
    } else if (is("GET", {"models"}) || is("GET", {"models", "*"})) {
        handler = [&] {
            QJsonArray models;
            for (const char *id :
                 {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "omni-moderation-latest"}) {
                const QJsonObject model{{"id"_L1, QLatin1StringView(id)},
                                        {"object"_L1, "model"_L1},
                                        {"created"_L1, 1700000000},
                                        {"owned_by"_L1, "openai"_L1}};
                if (seg.size() == 2 && seg.at(1) == id)
                    return Answer::json(200, model);
                models.append(model);
            }
            if (seg.size() == 2)
                return Answer::error(404, u"The model '%1' does not exist"_s.arg(str(seg.at(1))),
                                     u"model"_s, u"model_not_found"_s);
            return Answer::json(200, QJsonObject{{"object"_L1, "list"_L1}, {"data"_L1, models}});
        };
    } else {
        return notFound;
    }

    if (op) {
        const auto fault = m_faults.find(*op);
        if (fault != m_faults.end() && fault->second.count > 0) {
            --fault->second.count;
            Answer answer;
            if (fault->second.status == 0) {
                answer.drop = true;
                return answer;
            }
            answer =
                Answer::json(fault->second.status,
                             openAiErrorForStatus(fault->second.status,
                                                  u"Scripted failure from the fake provider."_s));
            if (!fault->second.retryAfter.isEmpty())
                answer.headers.append({QByteArrayLiteral("Retry-After"), fault->second.retryAfter});
            return answer;
        }
    }
    return handler();
}

void FakeProvider::dispatch(const std::shared_ptr<QHttpServerResponder> &responder,
                            const QPointer<QTcpSocket> &socket, const Answer &answer) {
    if (answer.events.isEmpty())
        send(responder, socket, answer);
    else
        startStream(responder, socket, answer);
}

void FakeProvider::send(const std::shared_ptr<QHttpServerResponder> &responder,
                        const QPointer<QTcpSocket> &socket, const Answer &answer) {
    if (!socket || socket->state() != QAbstractSocket::ConnectedState)
        return;
    if (answer.drop) {
        // Not from inside Qt's read handler: close on the next event-loop pass.
        QTimer::singleShot(0, socket.data(), [socket] {
            if (socket)
                socket->disconnectFromHost();
        });
        return;
    }
    responder->writeStatusLine(static_cast<QHttpServerResponder::StatusCode>(answer.status));
    responder->writeHeader(QByteArrayLiteral("Content-Type"), answer.contentType);
    responder->writeHeader(QByteArrayLiteral("x-request-id"), fakeId("req_"));
    for (const auto &[key, value] : answer.headers)
        responder->writeHeader(key, value);
    if (!m_setCookie.isEmpty())
        responder->writeHeader(QByteArrayLiteral("Set-Cookie"), m_setCookie);
    responder->writeHeader(QByteArrayLiteral("Content-Length"),
                           QByteArray::number(answer.body.size()));
    responder->writeBody(answer.body);
}

void FakeProvider::startStream(const std::shared_ptr<QHttpServerResponder> &responder,
                               const QPointer<QTcpSocket> &socket, const Answer &answer) {
    if (!socket || socket->state() != QAbstractSocket::ConnectedState)
        return;
    responder->writeStatusLine(QHttpServerResponder::StatusCode::Ok);
    responder->writeHeader(QByteArrayLiteral("Content-Type"),
                           QByteArrayLiteral("text/event-stream; charset=utf-8"));
    responder->writeHeader(QByteArrayLiteral("Cache-Control"), QByteArrayLiteral("no-cache"));
    responder->writeHeader(QByteArrayLiteral("x-request-id"), fakeId("req_"));
    responder->writeHeader(QByteArrayLiteral("Transfer-Encoding"), QByteArrayLiteral("chunked"));
    responder->writeBody(QByteArray()); // ends the header block

    auto *timer = new QTimer(this);
    timer->setInterval(m_streamChunkDelay);
    auto next = std::make_shared<qsizetype>(0);
    connect(timer, &QTimer::timeout, timer,
            [timer, responder, socket, next, events = answer.events] {
                if (!socket || socket->state() != QAbstractSocket::ConnectedState) {
                    timer->stop();
                    timer->deleteLater();
                    return;
                }
                const QByteArray &event = events.at((*next)++);
                responder->writeBody(
                    QByteArray(QByteArray::number(event.size(), 16) + "\r\n" + event + "\r\n"));
                if (*next == events.size()) {
                    responder->writeBody(QByteArrayLiteral("0\r\n\r\n"));
                    timer->stop();
                    timer->deleteLater();
                }
            });
    timer->start();
}

FakeProvider::Answer FakeProvider::control(const Incoming &in) {
    if (in.method == "GET" && in.path == "/_fake/state")
        return Answer::json(200, stateJson());
    if (in.method == "POST" && in.path == "/_fake/reset") {
        reset();
        return Answer::json(200, QJsonObject{{"ok"_L1, true}});
    }
    if (in.method == "POST" && in.path == "/_fake/config") {
        QJsonParseError parseError;
        const QJsonDocument doc = QJsonDocument::fromJson(in.body, &parseError);
        QString error = u"The body must be a JSON object."_s;
        if (doc.isObject() && applyConfig(doc.object(), &error))
            return Answer::json(200, QJsonObject{{"ok"_L1, true}});
        return Answer::error(400, error);
    }
    return Answer::error(404, u"Unknown control call %1 %2"_s.arg(str(in.method), str(in.path)));
}

bool FakeProvider::applyConfig(const QJsonObject &config, QString *error) {
    static const QSet<QString> known{u"validation_delay_ms"_s,   u"processing_delay_ms"_s,
                                     u"finalizing_delay_ms"_s,   u"cancel_delay_ms"_s,
                                     u"stream_chunk_delay_ms"_s, u"never_finish"_s,
                                     u"expire_after_ms"_s,       u"expire_fraction_done"_s,
                                     u"cancel_fraction_done"_s,  u"fail_next"_s,
                                     u"fail_batches"_s,          u"max_requests_per_file"_s,
                                     u"flex_refuse_next"_s,      u"flex_unsupported_models"_s,
                                     u"queue_limit_tokens"_s,    u"queue_fail_fast"_s};
    for (auto it = config.begin(); it != config.end(); ++it) {
        if (!known.contains(it.key())) {
            *error = u"Unknown config key '%1'."_s.arg(it.key());
            return false;
        }
    }
    // Check everything before changing anything.
    for (const char *key : {"validation_delay_ms", "processing_delay_ms", "finalizing_delay_ms",
                            "cancel_delay_ms", "stream_chunk_delay_ms"}) {
        const QJsonValue v = config.value(QLatin1StringView(key));
        if (!v.isUndefined() && (!v.isDouble() || v.toDouble() < 0)) {
            *error = u"'%1' must be a non-negative number."_s.arg(QLatin1StringView(key));
            return false;
        }
    }
    for (const char *key : {"expire_fraction_done", "cancel_fraction_done"}) {
        const QJsonValue v = config.value(QLatin1StringView(key));
        if (!v.isUndefined() && (!v.isDouble() || v.toDouble() < 0 || v.toDouble() > 1)) {
            *error = u"'%1' must be a number from 0 to 1."_s.arg(QLatin1StringView(key));
            return false;
        }
    }
    if (config.contains("max_requests_per_file"_L1)) {
        const QJsonValue v = config.value("max_requests_per_file"_L1);
        if (!v.isDouble() || v.toDouble() < 0) {
            *error = u"'max_requests_per_file' must be a non-negative number (0: the shape's)."_s;
            return false;
        }
    }
    if (config.contains("flex_refuse_next"_L1) &&
        (!config.value("flex_refuse_next"_L1).isDouble() ||
         config.value("flex_refuse_next"_L1).toDouble() < 0)) {
        *error = u"'flex_refuse_next' must be a non-negative number."_s;
        return false;
    }
    if (config.contains("flex_unsupported_models"_L1) &&
        !config.value("flex_unsupported_models"_L1).isArray()) {
        *error = u"'flex_unsupported_models' must be an array of model names."_s;
        return false;
    }
    if (config.contains("queue_limit_tokens"_L1) &&
        (!config.value("queue_limit_tokens"_L1).isDouble() ||
         config.value("queue_limit_tokens"_L1).toDouble() < 0)) {
        *error = u"'queue_limit_tokens' must be a non-negative number (0: no limit)."_s;
        return false;
    }
    if (config.contains("queue_fail_fast"_L1) && !config.value("queue_fail_fast"_L1).isBool()) {
        *error = u"'queue_fail_fast' must be a boolean."_s;
        return false;
    }
    if (config.contains("never_finish"_L1) && !config.value("never_finish"_L1).isBool()) {
        *error = u"'never_finish' must be a boolean."_s;
        return false;
    }
    if (config.contains("expire_after_ms"_L1) && !config.value("expire_after_ms"_L1).isDouble()) {
        *error = u"'expire_after_ms' must be a number (negative: off)."_s;
        return false;
    }
    const QJsonValue failNextValue = config.value("fail_next"_L1);
    const QJsonArray failNextList = failNextValue.isArray()    ? failNextValue.toArray()
                                    : failNextValue.isObject() ? QJsonArray{failNextValue}
                                                               : QJsonArray();
    if (!failNextValue.isUndefined() && failNextList.isEmpty()) {
        *error = u"'fail_next' must be an object or an array of objects."_s;
        return false;
    }
    for (const QJsonValue &item : failNextList) {
        const QJsonObject f = item.toObject();
        if (!operationNames().count(f.value("op"_L1).toString().toUtf8()) ||
            !f.value("status"_L1).isDouble()) {
            *error = u"'fail_next' needs {op: upload|create|retrieve|download|delete|cancel|"
                     u"list|chat, status: N, count?: N, retry_after?: S}."_s;
            return false;
        }
    }
    const QJsonValue failBatches = config.value("fail_batches"_L1);
    if (!failBatches.isUndefined() && !failBatches.toObject().value("count"_L1).isDouble()) {
        *error = u"'fail_batches' needs {count: N, code?: S, message?: S}."_s;
        return false;
    }

    const auto ms = [&](const char *key, std::chrono::milliseconds *target) {
        const QJsonValue v = config.value(QLatin1StringView(key));
        if (v.isDouble())
            *target = std::chrono::milliseconds(v.toInteger());
    };
    ms("validation_delay_ms", &m_validationDelay);
    ms("processing_delay_ms", &m_processingDelay);
    ms("finalizing_delay_ms", &m_finalizingDelay);
    ms("cancel_delay_ms", &m_cancelDelay);
    ms("stream_chunk_delay_ms", &m_streamChunkDelay);
    ms("expire_after_ms", &m_expireAfter);
    m_expireFractionDone = config.value("expire_fraction_done"_L1).toDouble(m_expireFractionDone);
    m_cancelFractionDone = config.value("cancel_fraction_done"_L1).toDouble(m_cancelFractionDone);
    for (const QJsonValue &item : failNextList) {
        const QJsonObject f = item.toObject();
        const QJsonValue retryAfter = f.value("retry_after"_L1);
        failNext(operationNames().at(f.value("op"_L1).toString().toUtf8()),
                 f.value("count"_L1).toInt(1), f.value("status"_L1).toInt(),
                 retryAfter.isDouble() ? QByteArray::number(retryAfter.toInteger())
                                       : retryAfter.toString().toUtf8());
    }
    if (failBatches.isObject()) {
        const QJsonObject f = failBatches.toObject();
        setBatchOutcome(BatchOutcome::Fail, f.value("count"_L1).toInt(),
                        f.value("code"_L1).toString(u"token_limit_exceeded"_s).toUtf8(),
                        f.value("message"_L1).toString());
    }
    if (config.contains("max_requests_per_file"_L1))
        m_maxRequestsPerFile = config.value("max_requests_per_file"_L1).toInt();
    if (config.contains("never_finish"_L1))
        setNeverFinish(config.value("never_finish"_L1).toBool());
    if (config.contains("queue_limit_tokens"_L1) || config.contains("queue_fail_fast"_L1))
        setQueueLimit(config.value("queue_limit_tokens"_L1).toInteger(m_queueLimit),
                      config.value("queue_fail_fast"_L1).toBool(m_queueFailFast));
    if (config.contains("flex_refuse_next"_L1))
        m_flexRefusals = config.value("flex_refuse_next"_L1).toInt();
    if (config.contains("flex_unsupported_models"_L1)) {
        m_flexUnsupported.clear();
        for (const QJsonValue &model : config.value("flex_unsupported_models"_L1).toArray())
            m_flexUnsupported.append(model.toString().toUtf8());
    }
    return true;
}

QJsonObject FakeProvider::stateJson() const {
    QJsonObject perModel;
    QJsonObject perEndpoint;
    QJsonArray batchList;
    const auto bump = [](QJsonObject &table, const QByteArray &key, qsizetype lines) {
        QJsonObject entry = table.value(str(key)).toObject();
        entry.insert("batches"_L1, entry.value("batches"_L1).toInt() + 1);
        entry.insert("lines"_L1, entry.value("lines"_L1).toInteger() + lines);
        table.insert(str(key), entry);
    };
    for (const auto &batch : m_batches) {
        const BatchRecord &r = batch->record;
        bump(perModel, r.model, r.customIds.size());
        bump(perEndpoint, r.endpoint, r.customIds.size());
        QJsonArray ids;
        for (const QByteArray &id : r.customIds)
            ids.append(str(id));
        const QJsonObject object = batch->toJson();
        batchList.append(QJsonObject{{"id"_L1, str(r.id)},
                                     {"endpoint"_L1, str(r.endpoint)},
                                     {"model"_L1, str(r.model)},
                                     {"status"_L1, str(batch->status)},
                                     {"input_file_id"_L1, str(r.inputFileId)},
                                     {"metadata"_L1, r.metadata},
                                     {"custom_ids"_L1, ids},
                                     {"api_key"_L1, str(r.authorization.mid(7).trimmed())},
                                     {"organization"_L1, nullable(r.organization)},
                                     {"project"_L1, nullable(r.project)},
                                     {"request_counts"_L1, object.value("request_counts"_L1)}});
    }
    QSet<QString> orgs;
    QSet<QString> projects;
    for (const RequestRecord &r : m_requests) {
        if (r.headers.contains("openai-organization"))
            orgs.insert(str(r.headers.value("openai-organization")));
        if (r.headers.contains("openai-project"))
            projects.insert(str(r.headers.value("openai-project")));
    }
    QStringList orgList(orgs.cbegin(), orgs.cend());
    QStringList projectList(projects.cbegin(), projects.cend());
    orgList.sort();
    projectList.sort();
    return QJsonObject{{"profile"_L1, str(shapeName(m_shape))},
                       {"requests_total"_L1, static_cast<int>(m_requests.size())},
                       {"batches_created"_L1, static_cast<int>(m_batches.size())},
                       {"flex_calls"_L1, m_flexCalls},
                       {"standard_calls"_L1, m_standardCalls},
                       {"input_lines_total"_L1, m_inputLinesTotal},
                       {"queue_refusals"_L1, m_queueRefusals},
                       {"peak_queue_tokens"_L1, m_peakQueueTokens},
                       {"files_live"_L1, filesLive()},
                       {"files_deleted"_L1, filesDeleted()},
                       {"per_model"_L1, perModel},
                       {"per_endpoint"_L1, perEndpoint},
                       {"batches"_L1, batchList},
                       {"organizations_seen"_L1, QJsonArray::fromStringList(orgList)},
                       {"projects_seen"_L1, QJsonArray::fromStringList(projectList)}};
}

// --- Files ---------------------------------------------------------------------------------

QByteArray FakeProvider::storeFile(const QByteArray &fileName, const QByteArray &purpose,
                                   const QByteArray &content, qint64 expiresAfterSeconds) {
    auto file = std::make_unique<FileEntry>();
    file->id = fakeId("file-");
    file->fileName = fileName;
    file->purpose = purpose;
    file->content = content;
    file->createdAt = now();
    file->expiresAt = expiresAfterSeconds > 0 ? file->createdAt + expiresAfterSeconds : 0;
    const QByteArray id = file->id;
    m_files.emplace(id, std::move(file));
    return id;
}

FakeProvider::Answer FakeProvider::uploadFile(const Incoming &in) {
    const auto parts = parseMultipart(in.header("content-type"), in.body);
    if (!parts)
        return Answer::error(400, u"The request body must be multipart/form-data."_s);
    const MultipartPart *file = nullptr;
    QHash<QByteArray, QByteArray> fields;
    for (const MultipartPart &part : *parts) {
        if (part.name == "file")
            file = &part;
        else
            fields.insert(part.name, part.data);
    }
    if (!file)
        return Answer::error(400, u"Missing required parameter: 'file'."_s, u"file"_s,
                             u"missing_required_parameter"_s);
    if (!fields.contains("purpose"))
        return Answer::error(400, u"Missing required parameter: 'purpose'."_s, u"purpose"_s,
                             u"missing_required_parameter"_s);
    const QByteArray purpose = fields.value("purpose");
    static const QList<QByteArray> purposes{"assistants", "batch", "fine-tune", "vision",
                                            "user_data",  "evals", "batch-api"};
    if (!purposes.contains(purpose)) {
        return Answer::error(400,
                             u"'%1' is not one of ['assistants', 'batch', 'fine-tune', 'vision', "
                             u"'user_data', 'evals'] - 'purpose'"_s.arg(str(purpose)),
                             u"purpose"_s);
    }
    if (purpose == batchPurpose() && !file->fileName.endsWith(".jsonl"))
        return Answer::error(400, u"Invalid file format for Batch API. Must be .jsonl"_s,
                             u"file"_s);
    qint64 expiresAfter = purpose == batchPurpose() ? kThirtyDays : 0;
    if (fields.contains("expires_after[seconds]")) {
        bool ok = false;
        expiresAfter = fields.value("expires_after[seconds]").toLongLong(&ok);
        if (!ok || expiresAfter < 3600 || expiresAfter > kThirtyDays ||
            fields.value("expires_after[anchor]") != "created_at") {
            return Answer::error(400,
                                 u"Invalid 'expires_after': anchor must be 'created_at' "
                                 u"and seconds between 3600 and 2592000."_s,
                                 u"expires_after"_s);
        }
    }
    const QByteArray id = storeFile(file->fileName, purpose, file->data, expiresAfter);
    return Answer::json(200, m_files.at(id)->toJson());
}

// --- Batches -------------------------------------------------------------------------------

FakeProvider::Answer FakeProvider::createBatch(const Incoming &in) {
    const QJsonDocument doc = QJsonDocument::fromJson(in.body);
    if (!doc.isObject())
        return Answer::error(400, u"We could not parse the JSON body of your request."_s);
    const QJsonObject request = doc.object();
    const QByteArray inputFileId = request.value("input_file_id"_L1).toString().toUtf8();
    const QByteArray endpoint = request.value("endpoint"_L1).toString().toUtf8();
    const QJsonValue window = request.value("completion_window"_L1);
    const QJsonValue metadata = request.value("metadata"_L1);

    const auto file = m_files.find(inputFileId);
    if (file == m_files.end())
        return Answer::error(
            400, u"Invalid 'input_file_id': '%1'. No such file."_s.arg(str(inputFileId)),
            u"input_file_id"_s);
    if (file->second->purpose != batchPurpose())
        return Answer::error(400,
                             u"The input file must have purpose '%1'."_s.arg(str(batchPurpose())),
                             u"input_file_id"_s);
    // Which endpoints each shape batches (Azure: chat and responses; Gemini and Groq:
    // chat; Together and generic: chat, embeddings, completions; OpenAI: all of its list).
    const bool shapeBatches = [&] {
        switch (m_shape) {
        case Shape::Azure:
            return endpoint == "/v1/chat/completions" || endpoint == "/v1/responses";
        case Shape::Gemini:
        case Shape::Groq:
            return endpoint == "/v1/chat/completions";
        case Shape::Together:
        case Shape::Generic:
            return endpoint == "/v1/chat/completions" || endpoint == "/v1/embeddings" ||
                   endpoint == "/v1/completions";
        case Shape::OpenAi:
            break;
        }
        return true;
    }();
    if (!batchEndpoints().contains(endpoint) || !shapeBatches)
        return Answer::error(400, u"Invalid value for 'endpoint': '%1'."_s.arg(str(endpoint)),
                             u"endpoint"_s);
    // Groq takes windows from 24h to 7d; the others only 24h.
    static const QSet<QString> groqWindows{u"24h"_s, u"36h"_s, u"48h"_s, u"72h"_s,
                                           u"4d"_s,  u"5d"_s,  u"6d"_s,  u"7d"_s};
    if (m_shape == Shape::Groq ? !groqWindows.contains(window.toString())
                               : window.toString() != "24h"_L1)
        return Answer::error(400,
                             m_shape == Shape::Groq
                                 ? u"Invalid value for 'completion_window': durations from '24h' "
                                   u"to '7d' are supported."_s
                                 : u"Invalid value for 'completion_window': only '24h' is "
                                   u"supported."_s,
                             u"completion_window"_s);
    if (!metadata.isUndefined() && !metadata.isNull()) {
        const QJsonObject meta = metadata.toObject();
        bool valid = metadata.isObject() && meta.size() <= 16;
        for (auto it = meta.begin(); valid && it != meta.end(); ++it)
            valid = it.key().size() <= 64 && it.value().isString() &&
                    it.value().toString().size() <= 512;
        if (!valid)
            return Answer::error(400,
                                 u"Invalid 'metadata': at most 16 pairs, keys up to 64 "
                                 u"characters, string values up to 512."_s,
                                 u"metadata"_s);
    }

    auto batch = std::make_unique<BatchEntry>();
    BatchRecord &r = batch->record;
    r.id = fakeId("batch_");
    r.endpoint = endpoint;
    r.inputFileId = inputFileId;
    r.metadata = metadata.toObject();
    r.authorization = m_shape == Shape::Azure
                          ? QByteArrayLiteral("Bearer ") + in.header("api-key").trimmed()
                          : in.header("authorization");
    r.organization = in.header("openai-organization");
    r.project = in.header("openai-project");
    batch->content = file->second->content;
    batch->completionWindow = window.toString().toUtf8();
    batch->shape = m_shape;
    batch->createdAt = now();
    batch->expiresAt = batch->createdAt + kDay;
    // What the test log needs now; the real checks happen in validate().
    int lineCount = 0;
    for (const QByteArray &line : batch->content.split('\n')) {
        if (line.trimmed().isEmpty())
            continue;
        ++lineCount;
        const QJsonObject object = QJsonDocument::fromJson(line).object();
        if (object.value("custom_id"_L1).isString())
            r.customIds.append(object.value("custom_id"_L1).toString().toUtf8());
        const QJsonObject body = object.value("body"_L1).toObject();
        const QJsonValue model = body.value("model"_L1);
        if (r.model.isEmpty() && model.isString())
            r.model = model.toString().toUtf8();
        batch->queueTokens += (QJsonDocument(body).toJson(QJsonDocument::Compact).size() + 3) / 4;
    }
    if (m_queueFailFast && !fitsQueue(*batch))
        return Answer::error(
            400,
            u"Enqueued token limit reached for %1. Limit: %2 enqueued tokens."_s.arg(str(r.model))
                .arg(m_queueLimit),
            QJsonValue::Null, u"token_limit_exceeded"_s);
    m_inputLinesTotal += lineCount;
    const QByteArray id = r.id;
    batch->upperCaseStatus = m_shape == Shape::Together;
    if (m_shape == Shape::Gemini)
        batch->expiresAt = batch->createdAt + 2 * kDay; // Gemini expires jobs after 48 h
    // Together wraps the batch it created; every other call returns it as it is.
    const Answer answer =
        Answer::json(200, m_shape == Shape::Together
                              ? QJsonObject{{"job"_L1, batch->toJson()}, {"warning"_L1, ""_L1}}
                              : batch->toJson());
    m_batches.push_back(std::move(batch));
    after(m_validationDelay, id, &FakeProvider::validate);
    Q_EMIT batchCreated(id);
    return answer;
}

FakeProvider::Answer FakeProvider::listBatches(const Incoming &in) {
    int limit = 20;
    if (in.urlQuery.hasQueryItem(u"limit"_s)) {
        bool ok = false;
        limit = in.urlQuery.queryItemValue(u"limit"_s).toInt(&ok);
        if (!ok || limit < 1 || limit > 100)
            return Answer::error(400, u"Invalid 'limit': must be from 1 to 100."_s, u"limit"_s);
    }
    const QByteArray after = in.urlQuery.queryItemValue(u"after"_s, QUrl::FullyDecoded).toUtf8();
    auto it = m_batches.crbegin(); // newest first
    if (!after.isEmpty()) {
        while (it != m_batches.crend() && (*it)->record.id != after)
            ++it;
        if (it == m_batches.crend())
            return Answer::error(400, u"Invalid 'after': no batch '%1'."_s.arg(str(after)),
                                 u"after"_s);
        ++it;
    }
    QJsonArray data;
    for (; it != m_batches.crend() && data.size() < limit; ++it)
        data.append((*it)->toJson());
    const auto idOf = [](const QJsonValue &v) { return v.toObject().value("id"_L1); };
    return Answer::json(
        200, QJsonObject{{"object"_L1, "list"_L1},
                         {"data"_L1, data},
                         {"first_id"_L1, data.isEmpty() ? QJsonValue() : idOf(data.first())},
                         {"last_id"_L1, data.isEmpty() ? QJsonValue() : idOf(data.last())},
                         {"has_more"_L1, it != m_batches.crend()}});
}

FakeProvider::Answer FakeProvider::cancelBatch(const QByteArray &id) {
    BatchEntry *batch = findBatch(id);
    if (!batch)
        return Answer::error(404, u"No batch found with id '%1'."_s.arg(str(id)), u"batch_id"_s);
    if (batch->status == "validating" || batch->status == "in_progress" ||
        batch->status == "finalizing") {
        batch->cancelledFrom = batch->status;
        batch->status = QByteArrayLiteral("cancelling");
        batch->cancellingAt = now();
        batch->held = false;
        after(m_cancelDelay, id, &FakeProvider::finishCancel);
    } else if (batch->status != "cancelling" && batch->status != "cancelled") {
        // [U] OpenAI's exact answer for cancelling a finished batch is not documented.
        return Answer::error(409,
                             u"Cannot cancel a batch with status '%1'."_s.arg(str(batch->status)));
    }
    return Answer::json(200, batch->toJson());
}

void FakeProvider::after(std::chrono::milliseconds delay, const QByteArray &batchId,
                         void (FakeProvider::*step)(BatchEntry &)) {
    const quint64 epoch = m_epoch;
    QTimer::singleShot(delay, this, [this, epoch, batchId, step] {
        if (epoch != m_epoch)
            return;
        if (BatchEntry *batch = findBatch(batchId))
            (this->*step)(*batch);
    });
}

void FakeProvider::validate(BatchEntry &batch) {
    if (batch.status != "validating")
        return;
    QList<QByteArray> rawLines = batch.content.split('\n');
    if (batch.content.endsWith('\n'))
        rawLines.removeLast();
    QJsonArray errors;
    if (batch.content.isEmpty())
        errors.append(
            lineError(u"empty_file"_s, u"The batch input file is empty."_s, QJsonValue::Null, 0));
    if (rawLines.size() > maxRequestsPerFile())
        errors.append(lineError(
            u"too_many_tasks"_s,
            u"The batch input file has more than %1 requests."_s.arg(maxRequestsPerFile()),
            QJsonValue::Null, 0));
    QSet<QByteArray> seen;
    QByteArray model;
    QList<BatchEntry::Line> lines;
    for (qsizetype i = 0; i < rawLines.size() && !batch.content.isEmpty(); ++i) {
        const qsizetype lineNo = i + 1;
        QJsonParseError parseError;
        const QJsonDocument doc = QJsonDocument::fromJson(rawLines.at(i), &parseError);
        if (parseError.error != QJsonParseError::NoError || !doc.isObject()) {
            errors.append(lineError(u"invalid_json_line"_s,
                                    u"This line is not parseable as valid JSON."_s,
                                    QJsonValue::Null, lineNo));
            continue;
        }
        const QJsonObject object = doc.object();
        const QJsonValue customId = object.value("custom_id"_L1);
        const QJsonValue body = object.value("body"_L1);
        const QByteArray lineModel = body.toObject().value("model"_L1).toString().toUtf8();
        if (!customId.isString() || customId.toString().isEmpty()) {
            errors.append(lineError(u"invalid_custom_id"_s,
                                    u"'custom_id' must be a non-empty string."_s, u"custom_id"_s,
                                    lineNo));
        } else if (seen.contains(customId.toString().toUtf8())) {
            errors.append(lineError(u"duplicate_custom_id"_s,
                                    u"The custom_id for this request is a duplicate of another "
                                    u"request."_s,
                                    u"custom_id"_s, lineNo));
        } else if (!linesCarryMethodAndUrl() &&
                   (object.contains("method"_L1) || object.contains("url"_L1))) {
            // Together's lines are {custom_id, body}: this fake refuses anything else, so a
            // test sees which encoder wrote the file.
            errors.append(lineError(u"invalid_line"_s,
                                    u"Lines are {custom_id, body} without method or url."_s,
                                    u"method"_s, lineNo));
        } else if (linesCarryMethodAndUrl() && object.value("method"_L1).toString() != "POST"_L1) {
            errors.append(lineError(u"invalid_method"_s, u"The method must be 'POST'."_s,
                                    u"method"_s, lineNo));
        } else if (linesCarryMethodAndUrl() &&
                   object.value("url"_L1).toString().toUtf8() != batch.record.endpoint) {
            errors.append(
                lineError(u"url_mismatch"_s,
                          u"The url '%1' does not match the batch endpoint '%2'."_s.arg(
                              object.value("url"_L1).toString(), str(batch.record.endpoint)),
                          u"url"_s, lineNo));
        } else if (!body.isObject()) {
            errors.append(lineError(u"invalid_body"_s, u"'body' must be a JSON object."_s,
                                    u"body"_s, lineNo));
        } else if (!lineModel.isEmpty() && !model.isEmpty() && lineModel != model) {
            errors.append(lineError(u"model_mismatch"_s,
                                    u"The model '%1' differs from the model '%2' of the other "
                                    u"requests; a batch input file may use only one model."_s.arg(
                                        str(lineModel), str(model)),
                                    u"body.model"_s, lineNo));
        } else {
            seen.insert(customId.toString().toUtf8());
            if (model.isEmpty())
                model = lineModel;
            lines.append({customId.toString().toUtf8(), body.toObject()});
        }
    }
    if (!errors.isEmpty()) {
        fail(batch, errors);
        return;
    }
    batch.lines = lines;
    batch.record.model = model;
    batch.validated = true;
    if (!m_queueFailFast && !fitsQueue(batch)) {
        fail(batch, QJsonArray{lineError(
                        u"token_limit_exceeded"_s,
                        u"Enqueued token limit reached for %1 in organization org-fake. Limit: "
                        u"%2 enqueued tokens. Please try again once some in_progress batches "
                        u"have been completed."_s.arg(str(model))
                            .arg(m_queueLimit),
                        QJsonValue::Null, 0)});
        return;
    }
    if (m_failBatchesCount > 0) {
        --m_failBatchesCount;
        const QString message =
            m_failBatchMessage.isEmpty()
                ? u"Enqueued token limit reached for %1 in organization org-fake. Limit: "
                  u"2,000,000 enqueued tokens. Please try again once some in_progress batches "
                  u"have been completed."_s.arg(str(model))
                : m_failBatchMessage;
        fail(batch, QJsonArray{lineError(str(m_failBatchCode), message, QJsonValue::Null, 0)});
        return;
    }
    startProcessing(batch);
}

qint64 FakeProvider::queueTokensOf(const QByteArray &model, const BatchEntry *except) const {
    qint64 sum = 0;
    for (const auto &other : m_batches) {
        if (other.get() != except && other->record.model == model &&
            (other->status == "validating" || other->status == "in_progress" ||
             other->status == "finalizing" || other->status == "cancelling"))
            sum += other->queueTokens;
    }
    return sum;
}

bool FakeProvider::fitsQueue(const BatchEntry &batch) {
    if (m_queueLimit <= 0)
        return true;
    const qint64 held = queueTokensOf(batch.record.model, &batch) + batch.queueTokens;
    if (held > m_queueLimit) {
        ++m_queueRefusals;
        return false;
    }
    m_peakQueueTokens = std::max(m_peakQueueTokens, held);
    return true;
}

void FakeProvider::startProcessing(BatchEntry &batch) {
    batch.status = QByteArrayLiteral("in_progress");
    batch.inProgressAt = now();
    if (m_neverFinish)
        batch.held = true;
    else
        scheduleProcessing(batch);
}

void FakeProvider::scheduleProcessing(BatchEntry &batch) {
    if (m_expireAfter >= 0ms)
        after(m_expireAfter, batch.record.id, &FakeProvider::expire);
    else
        after(m_processingDelay, batch.record.id, &FakeProvider::finalize);
}

void FakeProvider::finalize(BatchEntry &batch) {
    if (batch.status != "in_progress")
        return;
    batch.status = QByteArrayLiteral("finalizing");
    batch.finalizingAt = now();
    after(m_finalizingDelay, batch.record.id, &FakeProvider::complete);
}

void FakeProvider::complete(BatchEntry &batch) {
    if (batch.status != "finalizing")
        return;
    writeResults(batch, batch.lines.size(), {});
    batch.completedAt = now();
    finish(batch, QByteArrayLiteral("completed"));
}

void FakeProvider::expire(BatchEntry &batch) {
    if (batch.status != "in_progress")
        return;
    if (batch.shape == Shape::Gemini) { // an expired Gemini job has no results to retrieve
        batch.expiredAt = now();
        finish(batch, QByteArrayLiteral("expired"));
        return;
    }
    writeResults(batch,
                 static_cast<qsizetype>(
                     std::floor(static_cast<double>(batch.lines.size()) * m_expireFractionDone)),
                 QByteArrayLiteral("batch_expired"));
    batch.expiredAt = now();
    finish(batch, QByteArrayLiteral("expired"));
}

void FakeProvider::finishCancel(BatchEntry &batch) {
    if (batch.status != "cancelling")
        return;
    if (batch.validated) {
        const qsizetype done =
            batch.cancelledFrom == "finalizing"
                ? batch.lines.size()
                : static_cast<qsizetype>(
                      std::floor(static_cast<double>(batch.lines.size()) * m_cancelFractionDone));
        writeResults(batch, done, QByteArrayLiteral("batch_cancelled"));
    }
    batch.cancelledAt = now();
    finish(batch, QByteArrayLiteral("cancelled"));
}

void FakeProvider::fail(BatchEntry &batch, const QJsonArray &errors) {
    batch.errors = errors;
    batch.failedAt = now();
    finish(batch, QByteArrayLiteral("failed"));
}

void FakeProvider::finish(BatchEntry &batch, const QByteArray &status) {
    batch.status = status;
    batch.held = false;
    Q_EMIT batchFinished(batch.record.id);
}

// Runs the fake model over the lines: the first `done` are answered, the others get an error
// line with `undoneCode`. Lines go out in reverse input order, so clients must match on
// custom_id.
void FakeProvider::writeResults(BatchEntry &batch, qsizetype done, const QByteArray &undoneCode) {
    QList<QByteArray> output;
    QList<QByteArray> errorLines;
    const qint64 created = now();
    for (qsizetype i = 0; i < batch.lines.size(); ++i) {
        const BatchEntry::Line &line = batch.lines.at(i);
        const QByteArray bodyText = QJsonDocument(line.body).toJson(QJsonDocument::Compact);
        if (scriptedOmit(bodyText))
            continue;
        QJsonObject result{{"id"_L1, QString::fromLatin1(fakeId("batch_req_"))},
                           {"custom_id"_L1, str(line.customId)},
                           {"response"_L1, QJsonValue::Null},
                           {"error"_L1, QJsonValue::Null}};
        const QByteArray errorCode = i < done ? scriptedErrorCode(bodyText) : undoneCode;
        bool success = false;
        if (!errorCode.isEmpty()) {
            result.insert("error"_L1,
                          QJsonObject{{"code"_L1, str(errorCode)},
                                      {"message"_L1, batchLineErrorMessage(errorCode)}});
        } else {
            ModelAnswer answer = runFakeModel(batch.record.endpoint, line.body, created);
            if (const qint64 bytes = scriptedResultBytes(bodyText); bytes > 0)
                answer.body.insert("padding"_L1, QString(bytes, u'x'));
            const QString requestId = scriptedRequestIdCrlf(bodyText)
                                          ? u"req_evil\r\nX-Evil: 1"_s
                                          : QString::fromLatin1(fakeId("req_"));
            result.insert("response"_L1, QJsonObject{{"status_code"_L1, answer.status},
                                                     {"request_id"_L1, requestId},
                                                     {"body"_L1, answer.body}});
            success = answer.status < 400;
            const QJsonObject usage = answer.body.value("usage"_L1).toObject();
            batch.inputTokens += usage.value("prompt_tokens"_L1).toInteger() +
                                 usage.value("input_tokens"_L1).toInteger();
            batch.outputTokens += usage.value("completion_tokens"_L1).toInteger() +
                                  usage.value("output_tokens"_L1).toInteger();
        }
        QByteArray text;
        if (scriptedCustomIdLast(bodyText)) {
            // QJsonDocument sorts keys (custom_id comes early): write this one by hand.
            const QJsonValue customId = result.take("custom_id"_L1);
            text = QJsonDocument(result).toJson(QJsonDocument::Compact);
            text.chop(1);
            text += R"(,"custom_id":")" + customId.toString().toUtf8() + "\"}";
        } else {
            text = QJsonDocument(result).toJson(QJsonDocument::Compact);
        }
        (success ? output : errorLines).prepend(text + '\n');
        ++(success ? batch.completed : batch.failed);
    }
    const QByteArray &base = batch.record.id;
    if (!output.isEmpty())
        batch.outputFileId = storeFile(base + "_output.jsonl", QByteArrayLiteral("batch_output"),
                                       output.join(), kThirtyDays);
    if (!errorLines.isEmpty())
        batch.errorFileId = storeFile(base + "_error.jsonl", QByteArrayLiteral("batch_output"),
                                      errorLines.join(), kThirtyDays);
}

FakeProvider::Answer FakeProvider::syncModel(const Incoming &in, QByteArrayView endpoint) {
    const QJsonDocument doc = QJsonDocument::fromJson(in.body);
    if (!doc.isObject())
        return Answer::error(400, u"We could not parse the JSON body of your request."_s);
    const QJsonObject body = doc.object();
    const bool flex = body.value("service_tier"_L1).toString() == "flex"_L1;
    ++(flex ? m_flexCalls : m_standardCalls);
    if (flex) {
        const QString model = body.value("model"_L1).toString();
        if (m_flexUnsupported.contains(model.toUtf8()))
            return Answer::error(400,
                                 u"Invalid value for 'service_tier': flex processing is not "
                                 u"available for model '%1'."_s.arg(model),
                                 u"service_tier"_s, u"invalid_value"_s);
        if (m_flexRefusals > 0) {
            --m_flexRefusals;
            return Answer::json(429, openAiError(u"Resource unavailable: flex processing has no "
                                                 u"capacity right now. Please try again later."_s,
                                                 u"rate_limit_error"_s, QJsonValue::Null,
                                                 u"resource_unavailable"_s));
        }
    }
    ModelAnswer answer = runFakeModel(endpoint, body, now());
    if (flex && answer.status == 200)
        answer.body.insert("service_tier"_L1, u"flex"_s);
    if (answer.status == 200 && endpoint == "/v1/chat/completions" &&
        body.value("stream"_L1).toBool()) {
        Answer stream;
        stream.events = chatCompletionStreamEvents(body, now());
        return stream;
    }
    return Answer::json(answer.status, answer.body);
}

FakeProvider::Answer FakeProvider::echo(const Incoming &in) {
    QJsonObject headers;
    for (const auto &[key, value] : in.headers) {
        const QString name = str(key.toLower());
        const QString previous = headers.value(name).toString();
        headers.insert(name, previous.isEmpty() ? str(value) : previous + u", "_s + str(value));
    }
    bool ok = false;
    const int status = in.header("x-fake-status").toInt(&ok);
    return Answer::json(ok && status >= 100 && status <= 599 ? status : 200,
                        QJsonObject{{"method"_L1, str(in.method)},
                                    {"path"_L1, str(in.encodedPath)},
                                    {"query"_L1, str(in.query)},
                                    {"headers"_L1, headers},
                                    {"body"_L1, str(in.body)}});
}

} // namespace llmproxy::test

#include "fakeprovider.moc"
