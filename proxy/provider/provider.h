// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the batching core needs from a provider's Batch API. The core never sees HTTP.
// Every call is asynchronous: its callback runs later on the provider's thread, exactly once,
// unless the provider object is destroyed first (then never).

#include <QByteArray>
#include <QByteArrayView>
#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QString>

#include <chrono>
#include <functional>
#include <optional>
#include <utility>

namespace llmproxy {

struct Credentials {
    QByteArray apiKey;       // sent as "Authorization: Bearer <key>"; never logged
    QByteArray organization; // OpenAI-Organization, when non-empty
    QByteArray project;      // OpenAI-Project, when non-empty
    friend bool operator==(const Credentials &, const Credentials &) = default;
};

struct ProviderError {
    int httpStatus = 0; // 0: no HTTP answer (connection refused, reset, timeout)
    QString message;    // error.message from the provider, or the network error (no secrets)
    QByteArray type;    // error.type
    QByteArray code;    // error.code
    QByteArray param;   // error.param
    QByteArray body;    // the provider's raw error body, if any
    std::optional<std::chrono::milliseconds> retryAfter; // Retry-After / retry-after-ms
    // Network errors, 408, 409, 429 and 5xx are worth retrying; other answers are final.
    bool retryable() const;
};

template <typename T>
struct ProviderResult {
    std::optional<T> value;
    ProviderError error; // meaningful when !value
    bool ok() const { return value.has_value(); }
};

struct FileInfo {
    QByteArray id;
    qint64 bytes = 0;
};

struct BatchErrorItem {
    QByteArray code;
    QString message;
    int line = -1; // -1 when null
};

struct BatchInfo {
    QByteArray id;
    QByteArray status; // validating, failed, in_progress, finalizing, completed, expired,
                       // cancelling, cancelled
    QByteArray endpoint;
    QByteArray inputFileId;
    QByteArray outputFileId;                  // empty when null
    QByteArray errorFileId;                   // empty when null
    int total = 0, completed = 0, failed = 0; // request_counts
    QList<BatchErrorItem> errors;             // errors.data
    QJsonObject metadata;
    qint64 createdAt = 0;
    bool isTerminal() const; // failed, completed, expired, cancelled
};

struct BatchPage {
    QList<BatchInfo> batches;
    bool hasMore = false;
    QByteArray lastId;
};

// A line of a result file longer than the provider's line limit, which is not read whole.
struct TooLongLine {
    QByteArrayView start; // its first bytes (at most 64 KiB), enough to find its custom_id
    qint64 bytes = 0;     // its whole length
    qint64 limit = 0;     // the limit it went over
};

// The answer to a synchronous call (full price), whatever its status, for its client as it came.
struct SyncAnswer {
    int httpStatus = 0;
    QByteArray contentType; // empty when the provider sent none
    // The headers worth passing on: x-request-id, openai-*, x-ratelimit-*, retry-after,
    // retry-after-ms, x-should-retry (names in lower case, in the order received).
    QList<std::pair<QByteArray, QByteArray>> headers;
    QByteArray body; // byte for byte (decompressed if the transfer was compressed)
    std::optional<std::chrono::milliseconds> retryAfter; // Retry-After / retry-after-ms
    // 408, 409, 429 and 5xx are worth trying again; other answers are final.
    bool retryable() const;
};

class Provider : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;
    ~Provider() override = default;

    template <typename T>
    using Callback = std::function<void(ProviderResult<T>)>;
    using DoneCallback = std::function<void(std::optional<ProviderError>)>;
    using LineTooLongCallback = std::function<void(const TooLongLine &line)>;

    // POST /files (multipart, purpose=batch) with the JSONL content.
    virtual void uploadBatchFile(const Credentials &creds, const QByteArray &jsonl,
                                 const QString &fileName, Callback<FileInfo> done) = 0;
    // POST /batches {input_file_id, endpoint, completion_window:"24h", metadata}.
    virtual void createBatch(const Credentials &creds, const QByteArray &inputFileId,
                             const QByteArray &endpoint, const QJsonObject &metadata,
                             Callback<BatchInfo> done) = 0;
    // GET /batches/{id}
    virtual void retrieveBatch(const Credentials &creds, const QByteArray &batchId,
                               Callback<BatchInfo> done) = 0;
    // POST /batches/{id}/cancel
    virtual void cancelBatch(const Credentials &creds, const QByteArray &batchId,
                             Callback<BatchInfo> done) = 0;
    // GET /batches?limit=&after= (limit clamped to 1..100; <= 0 leaves the provider's default;
    // an empty `after` starts at the newest batch).
    virtual void listBatches(const Credentials &creds, const QByteArray &after, int limit,
                             Callback<BatchPage> done) = 0;
    // GET /files/{id}/content, delivered line by line as it streams in (never whole in memory).
    // Each non-empty line goes to `onLine` without its CR/LF, in file order; a last line without
    // a newline is delivered too. A line longer than the provider's line limit is not held: its
    // first bytes go to `onLineTooLong` (may be empty) in its place, and the lines after it are
    // read as usual. `done` runs once at the end. A download that fails part-way may already
    // have delivered its complete lines (never a cut one) before `done` reports the error.
    virtual void downloadFileLines(const Credentials &creds, const QByteArray &fileId,
                                   std::function<void(QByteArrayView line)> onLine,
                                   LineTooLongCallback onLineTooLong, DoneCallback done) = 0;
    // DELETE /files/{id}
    virtual void deleteFile(const Credentials &creds, const QByteArray &fileId,
                            DoneCallback done) = 0;
    // POST {endpoint} (a batchable path such as "/v1/chat/completions", relative to the base
    // URL's /v1) with `body` unchanged: the synchronous API, at full price. Every complete HTTP
    // answer is a value, whatever its status; only an exchange that did not complete (refused,
    // reset, cut short, timed out) is an error.
    virtual void sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                                 const QByteArray &body, Callback<SyncAnswer> done) = 0;
};

} // namespace llmproxy
