// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Anthropic's Message Batches API behind the provider-neutral contract (provider.h).
//
// Its words, mapped here and nowhere else: requests go inline in the create call
// ({"requests":[{"custom_id", "params"}]}, at most 100,000 requests or 256 MB); a batch is
// processing_status in_progress | canceling | ended with request_counts {processing,
// succeeded, errored, canceled, expired}; its results are JSONL at results_url, one
// {"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired", ...}} per
// request, in any order. Calls carry x-api-key and anthropic-version (and anthropic-beta when
// the group has one: Credentials::headers).
//
// Finding a batch after a crash: Anthropic batches carry no metadata, so ours is recognised by
// what the job recorded before the create call (the provider state stage() returns: the
// time, the number of requests): a batch of exactly that many requests created from shortly
// before that time to an hour after it (the create call and its retries), the earliest such
// one. Two proxies sharing a workspace that make batches of the same size in the same minutes
// could be confused; custom ids would tell them apart but are only readable once a batch has
// ended.

#include "provider/httpprovider.h"

#include <QUrl>

class QNetworkAccessManager;
class QNetworkReply;
class QNetworkRequest;

namespace llmproxy {

// A Message Batch object, in Anthropic's words.
struct MessageBatchInfo {
    QByteArray id;
    QByteArray processingStatus; // in_progress, canceling, ended
    int processing = 0, succeeded = 0, errored = 0, canceled = 0, expired = 0;
    qint64 createdAtMs = 0; // 0: unknown
    bool cancelInitiated = false;
    QByteArray resultsUrl; // empty until it ended
    int total() const { return processing + succeeded + errored + canceled + expired; }
};

struct MessageBatchPage {
    QList<MessageBatchInfo> batches; // newest first
    bool hasMore = false;
    QByteArray lastId;
};

class AnthropicProvider final : public HttpProviderBase {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(AnthropicProvider)
public:
    // `baseUrl` ends in /v1 (https://api.anthropic.com/v1). The manager must outlive the calls.
    explicit AnthropicProvider(QNetworkAccessManager *nam, const QUrl &baseUrl,
                               QObject *parent = nullptr);
    ~AnthropicProvider() override;

    // The provider's limits per batch.
    static constexpr int kMaxRequests = 100000;
    static constexpr qint64 kMaxBytes = 256LL * 1024 * 1024;
    // Sent when the group names no anthropic-version.
    static constexpr char kDefaultVersion[] = "2023-06-01";

    // -- The contract. The provider state is a small JSON object: {"intent_ms", "requests"}
    // from stage(), then {"id", "results_url"} once the batch exists.
    QByteArray encodeLine(QByteArrayView customId, QByteArrayView endpoint,
                          QByteArrayView body) const override;
    std::optional<ResultLine> decodeResultLine(QByteArrayView line, QString *error) const override;
    std::optional<QByteArray> customIdFromLineStart(QByteArrayView lineStart) const override;
    // The answer with Anthropic's request-id header (and the batch header), not x-request-id;
    // a result without an answer gets an error body in Anthropic's shape.
    HttpAnswer answerFor(const ResultLine &line, const QByteArray &batchId) const override;
    bool inlineInput() const override { return true; }
    void stage(QObject *context, const Credentials &creds, const BatchSubmission &submission,
               const QByteArray &lines, Callback<QByteArray> done) override;
    void submit(QObject *context, const Credentials &creds, const BatchSubmission &submission,
                const QByteArray &state, const QByteArray &lines, StatusCallback done) override;
    void find(QObject *context, const Credentials &creds, const BatchSubmission &submission,
              const QByteArray &state, Callback<std::optional<BatchStatus>> done) override;
    void poll(QObject *context, const Credentials &creds, const QByteArray &batchId,
              const QByteArray &state, StatusCallback done) override;
    void cancel(QObject *context, const Credentials &creds, const QByteArray &batchId,
                const QByteArray &state, StatusCallback done) override;
    void readResults(QObject *context, const Credentials &creds, const QByteArray &batchId,
                     const QByteArray &state, ResultCallback onLine,
                     LineTooLongCallback onLineTooLong, DoneCallback done) override;
    // DELETE /messages/batches/{id} (the state names it), fire and forget.
    void cleanUp(const Credentials &creds, const QByteArray &state) override;
    // POST /v1/messages (or another path under /v1) with the body unchanged.
    void sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                         const QByteArray &body, Callback<SyncAnswer> done) override;

    // -- Anthropic's words, public for tests.
    // The status an error.type of Anthropic's stands for (unknown types: 500).
    static int statusForErrorType(QByteArrayView type);
    // A batch object as the neutral contract sees it.
    static BatchStatus batchStatusFrom(const MessageBatchInfo &info);
    static std::optional<MessageBatchInfo> parseBatch(const QByteArray &json);
    static std::optional<MessageBatchPage> parseBatchPage(const QByteArray &json);
    // {"requests":[...]} from encodeLine() lines.
    static QByteArray createBody(const QByteArray &lines);

private:
    QNetworkRequest makeRequest(const Credentials &creds, const QUrl &url) const;
    void expectBatch(QObject *context, QNetworkReply *reply, const Credentials &creds,
                     StatusCallback done);
    void findPage(QObject *context, const Credentials &creds, qint64 intentMs, int requests,
                  std::function<bool(const QByteArray &)> heldElsewhere, const QByteArray &afterId,
                  int page, std::optional<MessageBatchInfo> best,
                  Callback<std::optional<BatchStatus>> done);
};

} // namespace llmproxy
