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
#include <vector>

class QHttpServerRequest;
class QHttpServerResponder;
class QTcpSocket;

namespace llmproxy::test {

class FakeAnthropicHttpServer;

// A fake Anthropic API for tests, written from the public API reference (Message Batches and
// Messages), served on 127.0.0.1 with scripted delays and faults. It shares no code with the
// proxy.
//
//   POST   /v1/messages/batches              {"requests":[{"custom_id","params"}]}: at most
//                                            maxRequests (100,000) requests and maxBytes
//                                            (256 MB); custom_id ^[a-zA-Z0-9_-]{1,64}$ and
//                                            unique; otherwise 400 invalid_request_error (413
//                                            request_too_large over the byte limit).
//   GET    /v1/messages/batches/{id}         the Message Batch (404 not_found_error)
//   GET    /v1/messages/batches?limit=&after_id=   newest first: {data, has_more, first_id,
//                                            last_id}
//   POST   /v1/messages/batches/{id}/cancel  in_progress -> canceling -> ended
//   GET    /v1/messages/batches/{id}/results JSONL (once ended), in reverse input order
//   DELETE /v1/messages/batches/{id}         once ended (else 400)
//   POST   /v1/messages                      the synchronous Messages API
//   GET    /v1/models?limit=                 the Models API: {data [{type, id, display_name,
//                                            created_at}], has_more, first_id, last_id}
// Every call needs x-api-key (or Authorization: Bearer) and anthropic-version; errors are
// {"type":"error","error":{"type","message"},"request_id"}; answers carry request-id.
//
// The "model": the answer to a request is the text "echo: <its last user message text>";
// usage.input_tokens is that text's byte count, output_tokens the answer's. Params are checked
// as the API does, asynchronously for a batch: a request without model, messages or with
// max_tokens < 1 (or with "stream") ends errored with invalid_request_error. Magic strings in
// the text: [[error:TYPE]] (errored with that error type, or that error's status for
// /v1/messages), [[cache:W:R]] (usage reports W cache-written and R cache-read tokens; when the
// request has cache_control breakpoints, usage.cache_creation splits the W tokens by TTL:
// all of them under the last breakpoint's, ephemeral_1h_input_tokens for "ttl":"1h", else
// ephemeral_5m_input_tokens). "stream": true on /v1/messages answers with the API's event
// stream (message_start with the input usage, the content blocks, message_delta with the
// output count, message_stop). A request with `tools` is answered with that text and a
// tool_use block calling the first tool with {"text": <the text>} (stop_reason tool_use).
//
// Lifecycle: in_progress (processingDelay) -> ended. setExpireAfter(): the batch ends after
// that delay with the first fraction of its requests succeeded and the rest expired.
//
// Control over HTTP (no key needed): GET /_fake/state, POST /_fake/reset, POST /_fake/config
// {processing_delay_ms, cancel_delay_ms, never_finish, expire_after_ms, expire_fraction_done,
//  cancel_fraction_done, max_requests, max_bytes,
//  fail_next: {op: "create"|"retrieve"|"list"|"cancel"|"results"|"delete"|"messages", status,
//              count?, retry_after?}}.
class FakeAnthropic final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FakeAnthropic)
public:
    enum class Operation { Create, Retrieve, List, Cancel, Results, Delete, Messages };
    Q_ENUM(Operation)

    struct RequestRecord {
        QByteArray method;
        QByteArray path;
        QByteArray query;
        // x-api-key, authorization, anthropic-version, anthropic-beta, content-type, accept
        QHash<QByteArray, QByteArray> headers;
        qsizetype bodySize = 0;
    };

    struct BatchRecord {
        QByteArray id;
        QByteArray status; // in_progress, canceling, ended
        QList<QByteArray> customIds;
        QByteArray apiKey;
        QByteArray version;
        QByteArray beta;
        bool deleted = false;
    };

    explicit FakeAnthropic(QObject *parent = nullptr);
    ~FakeAnthropic() override;

    bool listen(quint16 port = 0); // on 127.0.0.1; 0 picks a free port
    quint16 port() const { return m_port; }
    QUrl baseUrl() const; // http://127.0.0.1:PORT/v1

    void setProcessingDelay(std::chrono::milliseconds delay) { m_processingDelay = delay; }
    void setCancelDelay(std::chrono::milliseconds delay) { m_cancelDelay = delay; }
    void setNeverFinish(bool neverFinish);
    // Batches end `after` their creation with the first `fractionDone` of their requests
    // succeeded and the rest expired. A negative delay switches this off.
    void setExpireAfter(std::chrono::milliseconds after, double fractionDone = 0.5);
    void setCancelFractionDone(double fraction) { m_cancelFractionDone = fraction; }
    void setLimits(int maxRequests, qint64 maxBytes);
    // Only this key is accepted (empty: any); others get 401 authentication_error.
    void setAcceptedKey(const QByteArray &key) { m_acceptedKey = key; }
    // This key (empty: none) is known but not permitted: 403 permission_error on every call,
    // before the accepted-key check.
    void setForbiddenKey(const QByteArray &key) { m_forbiddenKey = key; }
    // The next `count` calls of `op` answer `httpStatus` with an Anthropic error body (and a
    // retry-after header if given); 0 closes the connection without an answer.
    void failNext(Operation op, int count, int httpStatus, const QByteArray &retryAfter = {});
    void reset();
    bool applyConfig(const QJsonObject &config, QString *error);

    const QList<RequestRecord> &requests() const { return m_requests; }
    int count(QByteArrayView method, QByteArrayView pathPrefix) const;
    QList<BatchRecord> batches() const;
    int batchesLive() const; // created and not deleted
    QJsonObject stateJson() const;

Q_SIGNALS:
    void batchCreated(const QByteArray &id);

private:
    friend class FakeAnthropicHttpServer;
    struct Incoming;
    struct Answer;
    struct Batch;
    struct Fault {
        int count = 0;
        int status = 0;
        QByteArray retryAfter;
    };

    void handleRequest(const QHttpServerRequest &request,
                       std::shared_ptr<QHttpServerResponder> responder);
    Answer route(const Incoming &in);
    Answer control(const Incoming &in);
    Answer createBatch(const Incoming &in);
    Answer listBatches(const Incoming &in);
    Answer cancelBatch(Batch &batch);
    Answer results(const Batch &batch);
    Answer messages(const Incoming &in);
    static Answer messageStream(const QJsonObject &message);
    std::optional<Answer> fault(Operation op);
    Batch *findBatch(const QByteArray &id) const;
    QJsonObject batchJson(const Batch &batch) const;
    void end(const QByteArray &id, quint64 epoch, const char *why);

    FakeAnthropicHttpServer *m_server = nullptr;
    quint16 m_port = 0;
    quint64 m_epoch = 0;
    std::chrono::milliseconds m_processingDelay{std::chrono::milliseconds(50)};
    std::chrono::milliseconds m_cancelDelay{std::chrono::milliseconds(20)};
    std::chrono::milliseconds m_expireAfter{-1};
    double m_expireFractionDone = 0.5;
    double m_cancelFractionDone = 0.5;
    bool m_neverFinish = false;
    int m_maxRequests = 100000;
    qint64 m_maxBytes = 256LL * 1024 * 1024;
    QByteArray m_acceptedKey;
    QByteArray m_forbiddenKey;
    std::map<Operation, Fault> m_faults;
    QList<RequestRecord> m_requests;
    std::vector<std::unique_ptr<Batch>> m_batches; // in creation order
};

} // namespace llmproxy::test
