// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QHash>
#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QUrl>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <vector>

class QHttpServerRequest;
class QHttpServerResponder;
class QTcpSocket;

namespace llmproxy::test {

class FakeHttpServer;

// A fake OpenAI server for tests: Files + Batches lifecycle, the synchronous endpoints the proxy
// relays, and an echo endpoint, served on 127.0.0.1 with scripted delays and faults. Results
// come from a deterministic "model" (fakemodel.h). It shares no code with the proxy.
//
// Magic strings in a batch line's body script that line: [[status:N]] (error file, status N),
// [[error:CODE]] (error file, response null), [[omit]] (in neither file), [[result_bytes:N]]
// (its result line padded to N bytes or more), [[request_id_crlf]] (its request_id holds an
// escaped CR LF and a header line), [[custom_id_last]] (its result line names its custom_id
// last, after the response). [[status:N]] also works on the synchronous endpoints. A chat body
// with tools and "tool_choice": "required" is answered with a call of its first tool.
// Request headers X-Fake-Delay-Ms (any /v1 call) delay the answer; X-Fake-Status sets the
// status of /v1/echo answers.
//
// Batch lifecycle: validating (validationDelay) → in_progress (processingDelay) → finalizing
// (finalizingDelay) → completed. Output lines are written in reverse input order. Uploads take
// OpenAI's upload purposes (assistants, batch, fine-tune, vision, user_data, evals); batch
// input must be named *.jsonl.
// Per-model queue limit (setQueueLimit): a model's batches that have not ended may hold at most
// that many prompt tokens, counted as a quarter of each line's compact body (rounded up); a
// batch over it fails after validating with token_limit_exceeded (OpenAI), or, fail-fast
// (Azure's fail-fast deployments), its create call gets 400 token_limit_exceeded.
// Not modelled: the 24 h window in real time, file listing.
//
// Control over HTTP (no key needed, not in the request log), for the fake-openai executable:
//   GET  /_fake/state   counts, per_model / per_endpoint {batches, lines}, batches [{id,
//                       endpoint, model, status, custom_ids, api_key, organization, project,
//                       metadata, request_counts}], organizations_seen, projects_seen
//   POST /_fake/reset   same as reset()
//   POST /_fake/config  {validation_delay_ms, processing_delay_ms, finalizing_delay_ms,
//                       cancel_delay_ms, stream_chunk_delay_ms, never_finish, expire_after_ms,
//                       expire_fraction_done, cancel_fraction_done,
//                       fail_next: {op: "upload"|"create"|"retrieve"|"download"|"delete"|
//                                   "cancel"|"list"|"chat", status, count?, retry_after?}
//                                  (or an array of them),
//                       fail_batches: {count, code?, message?}, max_requests_per_file,
//                       queue_limit_tokens, queue_fail_fast}; unknown keys are a 400.
//
// Note for Qt clients: QNetworkAccessManager resends a request once when the connection closes
// before any answer, so failNext(op, 1, 0) is invisible to it; use a count of 2.
class FakeProvider final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FakeProvider)
public:
    // What failNext() scripts. Retrieve covers GET of a batch and of a file's metadata; Chat
    // covers the synchronous POST /v1/chat/completions, /v1/embeddings, /v1/completions,
    // /v1/responses and /v1/moderations.
    enum class Operation { Upload, Create, Retrieve, Download, Delete, Cancel, List, Chat };
    Q_ENUM(Operation)
    enum class BatchOutcome { Complete, Fail };
    // Which provider of the OpenAI family it plays. Together: uploads with purpose
    // "batch-api", input lines {custom_id, body} (lines with method or url fail validation),
    // statuses in capitals (VALIDATING, IN_PROGRESS, ...), and a create answer wrapped as
    // {"job": {...}, "warning": ""}. Paths, files and result lines are OpenAI's.
    // Azure (v1 API): under /openai/v1, the key in an "api-key" header (Bearer refused),
    // 100,000 requests per file, chat completions and responses only, "24h" only.
    // Gemini (OpenAI compatibility layer): under /v1beta/openai, Bearer key, chat completions
    // only, statuses in Gemini's words (BATCH_STATE_PENDING, _RUNNING, _SUCCEEDED, _FAILED,
    // _CANCELLED, _EXPIRED; JOB_STATE_CANCELLING while cancelling), and an expired batch has no
    // result files at all.
    // Groq: under /openai/v1, chat completions only, completion windows 24h to 7d.
    // Generic: OpenAI's shape under /v1 (chat completions, embeddings, completions).
    enum class Shape { OpenAi, Together, Azure, Gemini, Groq, Generic };
    // "openai", "together", "azure", "gemini", "groq", "generic"; nullopt for other names.
    static std::optional<Shape> shapeNamed(QByteArrayView name);
    static QByteArray shapeName(Shape shape);

    struct RequestRecord {
        QByteArray method;
        QByteArray path;  // percent-encoded, as received
        QByteArray query; // percent-encoded, without '?'
        // Only authorization, openai-organization, openai-project, content-type, user-agent,
        // cookie.
        QHash<QByteArray, QByteArray> headers;
        qsizetype bodySize = 0;
    };

    struct BatchRecord {
        QByteArray id;
        QByteArray endpoint;
        QByteArray model; // the first line's model, read at creation (empty if none)
        QByteArray inputFileId;
        QJsonObject metadata;
        QList<QByteArray> customIds; // of the input lines that parsed, in input order
        QByteArray authorization;    // the full header value the batch was created with
        QByteArray organization;
        QByteArray project;
    };

    explicit FakeProvider(QObject *parent = nullptr);
    ~FakeProvider() override;

    // Listens on 127.0.0.1; port 0 picks a free one.
    bool listen(quint16 port = 0);
    quint16 port() const { return m_port; }
    QUrl baseUrl() const; // http://127.0.0.1:PORT plus the shape's prefix (/v1, /openai/v1, ...)

    // --- Scripting -------------------------------------------------------------------------
    void setValidationDelay(std::chrono::milliseconds delay) { m_validationDelay = delay; }
    void setProcessingDelay(std::chrono::milliseconds delay) { m_processingDelay = delay; }
    void setFinalizingDelay(std::chrono::milliseconds delay) { m_finalizingDelay = delay; }
    void setCancelDelay(std::chrono::milliseconds delay) { m_cancelDelay = delay; }
    void setStreamChunkDelay(std::chrono::milliseconds delay) { m_streamChunkDelay = delay; }
    // The next `count` calls of `op` answer `httpStatus` with an OpenAI error body (and a
    // Retry-After header if given); httpStatus 0 closes the connection without an answer.
    void failNext(Operation op, int count, int httpStatus, const QByteArray &retryAfter = {});
    // The next `count` batches fail after validation with errors.data[0] = {code, message}.
    void setBatchOutcome(BatchOutcome outcome, int count = 1,
                         const QByteArray &code = QByteArrayLiteral("token_limit_exceeded"),
                         const QString &message = {});
    // Batches stay in_progress until cancelled (or until this is switched off again).
    void setNeverFinish(bool neverFinish);
    // The queue limit per model in tokens (0: none), and whether it is refused at create.
    void setQueueLimit(qint64 tokens, bool failFast = false) {
        m_queueLimit = tokens;
        m_queueFailFast = failFast;
    }
    // Batches refused for the queue limit, and the most tokens a model's queue ever held.
    int queueRefusals() const { return m_queueRefusals; }
    qint64 peakQueueTokens() const { return m_peakQueueTokens; }
    // Batches expire `after` after going in_progress; the first `fractionDone` of the lines are
    // answered, the rest get batch_expired error lines. A negative delay switches this off.
    void setExpireAfter(std::chrono::milliseconds after, double fractionDone = 0.5);
    // The fraction of lines answered when an in_progress batch is cancelled (default 0.5).
    void setCancelFractionDone(double fraction) { m_cancelFractionDone = fraction; }
    // Every answer from now on carries "Set-Cookie: <value>" (empty: none), as OpenAI's edge
    // sets cookies; requests() records the Cookie header a client sends back.
    void setSetCookie(const QByteArray &value) { m_setCookie = value; }
    // Only this key is accepted from now on (empty: any key); others get OpenAI's 401
    // "Incorrect API key provided".
    void setAcceptedKey(const QByteArray &key) { m_acceptedKey = key; }
    // This key (empty: none) is known but not permitted: every call with it gets OpenAI's 403
    // "unsupported_country_region_territory" (request_forbidden), before the accepted-key check.
    void setForbiddenKey(const QByteArray &key) { m_forbiddenKey = key; }
    // OpenAI's flex processing: a synchronous chat or responses call with "service_tier":"flex"
    // is answered like any other, with "service_tier":"flex" in the answer (as OpenAI echoes
    // the tier it served). The next `count` flex calls are refused with 429 "Resource
    // unavailable" (OpenAI's answer when flex has no capacity); flex calls for these models get
    // 400 naming service_tier (flex not offered for the model).
    void setFlexRefusals(int count) { m_flexRefusals = count; }
    void setFlexUnsupportedModels(const QList<QByteArray> &models) { m_flexUnsupported = models; }
    // Synchronous model calls seen since reset(), by the tier they asked for: flex, or any
    // other (standard, full price).
    int flexCalls() const { return m_flexCalls; }
    int standardCalls() const { return m_standardCalls; }
    // Kept by reset(). The default is OpenAI's, or the one LLMPROXY_TEST_PROVIDER_SHAPE names.
    void setShape(Shape shape) { m_shape = shape; }
    Shape shape() const { return m_shape; }
    // Forgets all files, batches, the request log and the scripting (delays back to defaults).
    void reset();
    // Applies a /_fake/config JSON object; false (with a message) for unknown keys or values.
    bool applyConfig(const QJsonObject &config, QString *error);

    // --- Observation -----------------------------------------------------------------------
    const QList<RequestRecord> &requests() const { return m_requests; }
    // Requests whose method equals `method` (empty: any) and whose path starts with the prefix.
    int count(QByteArrayView method, QByteArrayView pathPrefix) const;
    QList<BatchRecord> batches() const;
    QJsonObject batchObject(const QByteArray &id) const; // the Batch as GET would return it
    int inputLinesTotal() const { return m_inputLinesTotal; }
    int filesLive() const { return static_cast<int>(m_files.size()); }
    int filesDeleted() const { return static_cast<int>(m_deletedFileIds.size()); }
    QList<QByteArray> liveFileIds() const;
    QList<QByteArray> deletedFileIds() const { return m_deletedFileIds; }
    QByteArray fileContent(const QByteArray &id) const;
    QJsonObject stateJson() const; // what GET /_fake/state returns

Q_SIGNALS:
    void batchCreated(const QByteArray &id);
    void batchFinished(const QByteArray &id);
    void requestReceived();

private:
    friend class FakeHttpServer;
    struct Incoming;
    struct Answer;
    struct FileEntry;
    struct BatchEntry;
    struct Fault {
        int count = 0;
        int status = 0;
        QByteArray retryAfter;
    };

    void handleRequest(const QHttpServerRequest &request,
                       std::shared_ptr<QHttpServerResponder> responder);
    Answer route(const Incoming &in);
    Answer control(const Incoming &in);
    Answer uploadFile(const Incoming &in);
    Answer createBatch(const Incoming &in);
    Answer listBatches(const Incoming &in);
    Answer cancelBatch(const QByteArray &id);
    Answer syncModel(const Incoming &in, QByteArrayView endpoint);
    Answer echo(const Incoming &in);
    void dispatch(const std::shared_ptr<QHttpServerResponder> &responder,
                  const QPointer<QTcpSocket> &socket, const Answer &answer);
    void send(const std::shared_ptr<QHttpServerResponder> &responder,
              const QPointer<QTcpSocket> &socket, const Answer &answer);
    void startStream(const std::shared_ptr<QHttpServerResponder> &responder,
                     const QPointer<QTcpSocket> &socket, const Answer &answer);

    BatchEntry *findBatch(const QByteArray &id) const;
    QByteArray storeFile(const QByteArray &fileName, const QByteArray &purpose,
                         const QByteArray &content, qint64 expiresAfterSeconds);
    void after(std::chrono::milliseconds delay, const QByteArray &batchId,
               void (FakeProvider::*step)(BatchEntry &));
    void validate(BatchEntry &batch);
    void startProcessing(BatchEntry &batch);
    void scheduleProcessing(BatchEntry &batch);
    void finalize(BatchEntry &batch);
    void complete(BatchEntry &batch);
    void expire(BatchEntry &batch);
    void finishCancel(BatchEntry &batch);
    void fail(BatchEntry &batch, const QJsonArray &errors);
    void writeResults(BatchEntry &batch, qsizetype done, const QByteArray &undoneCode);
    void finish(BatchEntry &batch, const QByteArray &status);
    void clearScripting();
    QByteArray batchPurpose() const;
    bool linesCarryMethodAndUrl() const { return m_shape != Shape::Together; }
    QByteArray pathPrefix() const;
    int maxRequestsPerFile() const;

    FakeHttpServer *m_server = nullptr;
    quint16 m_port = 0;
    quint64 m_epoch = 0; // bumped by reset(); pending timers of older epochs do nothing

    std::chrono::milliseconds m_validationDelay;
    std::chrono::milliseconds m_processingDelay;
    std::chrono::milliseconds m_finalizingDelay;
    std::chrono::milliseconds m_cancelDelay;
    std::chrono::milliseconds m_streamChunkDelay;
    std::chrono::milliseconds m_expireAfter;
    double m_expireFractionDone = 0.5;
    double m_cancelFractionDone = 0.5;
    bool m_neverFinish = false;
    qint64 m_queueLimit = 0;
    bool m_queueFailFast = false;
    int m_queueRefusals = 0;
    qint64 m_peakQueueTokens = 0;
    // The tokens of `model`'s batches that have not ended, but `except`.
    qint64 queueTokensOf(const QByteArray &model, const BatchEntry *except) const;
    // Whether `batch` fits its model's queue; counts a refusal when not, the peak when it does.
    bool fitsQueue(const BatchEntry &batch);
    std::map<Operation, Fault> m_faults;
    int m_failBatchesCount = 0;
    QByteArray m_setCookie;
    QByteArray m_acceptedKey;
    QByteArray m_forbiddenKey;
    Shape m_shape = Shape::OpenAi;
    int m_maxRequestsPerFile = 0; // 0: the shape's own limit (/_fake/config max_requests_per_file)
    int m_flexRefusals = 0;       // /_fake/config flex_refuse_next
    QList<QByteArray> m_flexUnsupported; // /_fake/config flex_unsupported_models
    int m_flexCalls = 0;
    int m_standardCalls = 0;
    QByteArray m_failBatchCode;
    QString m_failBatchMessage;

    QList<RequestRecord> m_requests;
    std::map<QByteArray, std::unique_ptr<FileEntry>> m_files;
    QList<QByteArray> m_deletedFileIds;
    std::vector<std::unique_ptr<BatchEntry>> m_batches; // in creation order
    int m_inputLinesTotal = 0;
};

} // namespace llmproxy::test
