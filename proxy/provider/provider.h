// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the batching core needs from a provider's batch API, in no provider's words. The core
// never sees HTTP. Every call is asynchronous: its callback runs later on the provider's thread,
// exactly once, unless the provider object or the call's context is destroyed first (then
// never).

#include "api/httpanswer.h"
#include "api/resultline.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>

#include <chrono>
#include <functional>
#include <optional>
#include <utility>

namespace llmproxy {

struct Credentials {
    QByteArray apiKey;       // "Authorization: Bearer <key>" (Anthropic: x-api-key); never logged
    QByteArray organization; // OpenAI-Organization, when non-empty
    QByteArray project;      // OpenAI-Project, when non-empty
    // Further headers of the group the provider's API keys its calls by (names in lower case),
    // e.g. Anthropic's anthropic-version and anthropic-beta as the client sent them. Each
    // provider sends the ones its API knows and ignores the rest; never logged.
    QList<std::pair<QByteArray, QByteArray>> headers = {};
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

// ---- The provider-neutral batch contract -----------------------------------------------
// BatchJob keeps a batch's lifecycle (durable intents, retries, grace period, resubmission) in
// these words only; each provider family maps its own API onto them.

// Where a batch is, normalised: the provider's own spelling stays in BatchStatus::providerStatus.
enum class BatchPhase : quint8 {
    Validating, // accepted, being checked
    Running,    // requests are being processed
    Finalizing, // done; results are being written
    Cancelling, // a cancel was asked for, it has not ended yet
    Ended,      // over: see BatchEnd
};
enum class BatchEnd : quint8 {
    None,      // not ended
    Completed, // results are ready
    Failed,    // the batch as a whole failed (errors says why); no request ran
    Expired,   // its window ended: finished requests have results, the rest never ran
    Cancelled, // cancelled: finished requests have results, the rest never ran
};

struct BatchStatus {
    QByteArray id; // the provider's batch id
    BatchPhase phase = BatchPhase::Validating;
    BatchEnd end = BatchEnd::None;
    // Request counts as far as the provider reports them (some only at the end).
    int total = 0, succeeded = 0, failed = 0;
    // Failed because the provider's queue for this model is full (OpenAI: token_limit_exceeded):
    // the same requests may be submitted again later.
    bool retryLater = false;
    // The provider's word for the status is not one its profile knows (a profile that does not
    // match the provider, or a status added since): phase says Running, so it is polled again.
    bool unknownStatus = false;
    QStringList errors;        // the provider's batch-level messages
    QByteArray providerStatus; // the provider's word for it, for people (logs, /stats, the UI)
    qint64 createdAtMs = 0;    // when the provider made it (0: unknown)
    // What the provider keeps about this batch from now on (file ids, result locations), opaque
    // to everyone else: stored with the batch and handed back with every later call.
    QByteArray state;
    bool ended() const { return phase == BatchPhase::Ended; }
};

// The stored and displayed name of a normalised status ("validating", "running", "finalizing",
// "cancelling", "completed", "failed", "expired", "cancelled"), and back (nullopt: not one).
QByteArray statusName(BatchPhase phase, BatchEnd end);
std::optional<std::pair<BatchPhase, BatchEnd>> statusFromName(QByteArrayView name);

// What a batch is made of, as the job gives it to the provider.
struct BatchSubmission {
    QByteArray localId;  // the proxy's id for the batch: found again by it after a crash
    QByteArray endpoint; // the API path every line goes to ("/v1/chat/completions")
    QByteArray model;
    int requests = 0;
    // Whether another batch of the proxy (running, or ended in this run) holds this provider
    // id: find() never takes such a batch for this one. Unset: none is known.
    std::function<bool(const QByteArray &batchId)> heldElsewhere = {};
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
    using StatusCallback = Callback<BatchStatus>;
    using ResultCallback = std::function<void(ResultLine line)>;

    // Every call below takes a context: its callbacks run only while the context lives (never
    // into a destroyed job), on this provider's thread, exactly once for the final callback.

    // -- The line encoder and the answer mapper.
    // One request's line in this provider's batch input, newline included.
    virtual QByteArray encodeLine(QByteArrayView customId, QByteArrayView endpoint,
                                  QByteArrayView body) const = 0;
    // The bytes encodeLine() adds around a body (for sizing batches without encoding them).
    qsizetype lineOverhead(QByteArrayView customId, QByteArrayView endpoint) const {
        return encodeLine(customId, endpoint, {}).size();
    }
    // A result line as read from the provider, normalised; nullopt (and *error) when unreadable.
    virtual std::optional<ResultLine> decodeResultLine(QByteArrayView line,
                                                       QString *error) const = 0;
    // The custom id of a result line known only by its first bytes (one too long to read).
    virtual std::optional<QByteArray> customIdFromLineStart(QByteArrayView lineStart) const = 0;
    // What the client of a result line is answered with (the default fits any provider whose
    // answers are the client's API's own answers).
    virtual HttpAnswer answerFor(const ResultLine &line, const QByteArray &batchId) const;

    // -- The batch lifecycle.
    // Hand over the batch's input (the encoded lines). A provider with an input file uploads it
    // now; the state it returns (e.g. the file's id) goes to submit(). Unless the provider
    // takes its input inline (inlineInput()), `lines` is not needed again after this succeeds.
    virtual void stage(QObject *context, const Credentials &creds,
                       const BatchSubmission &submission, const QByteArray &lines,
                       Callback<QByteArray> done) = 0;
    // True when the lines go in the create call itself (Anthropic) rather than in a staged
    // file: the job then keeps them until submit() succeeds, and a batch whose lines are gone
    // (resumed after a restart, never created) is formed again from its requests.
    virtual bool inlineInput() const { return false; }
    // Create the batch (from here on it costs money; the job records its intent first).
    // `lines` are the stage()d lines while the job still holds them (always, for a provider
    // with inlineInput()); empty otherwise.
    virtual void submit(QObject *context, const Credentials &creds,
                        const BatchSubmission &submission, const QByteArray &state,
                        const QByteArray &lines, StatusCallback done) = 0;
    // After a crash between the intent and the answer: the batch made from `submission`, if
    // the provider has it (a value holding nullopt: it was never made).
    virtual void find(QObject *context, const Credentials &creds, const BatchSubmission &submission,
                      const QByteArray &state, Callback<std::optional<BatchStatus>> done) = 0;
    // Where it is now. A permanent error (see isPermanentPollError()) means it never will be.
    virtual void poll(QObject *context, const Credentials &creds, const QByteArray &batchId,
                      const QByteArray &state, StatusCallback done) = 0;
    virtual void cancel(QObject *context, const Credentials &creds, const QByteArray &batchId,
                        const QByteArray &state, StatusCallback done) = 0;
    // Stream an ended batch's result lines, normalised, as they arrive (never whole in memory).
    // A line too long to read goes to `onLineTooLong` instead. A read that fails part-way may
    // have delivered some lines; calling again delivers them again.
    virtual void readResults(QObject *context, const Credentials &creds, const QByteArray &batchId,
                             const QByteArray &state, ResultCallback onLine,
                             LineTooLongCallback onLineTooLong, DoneCallback done) = 0;
    // Delete what the provider still keeps for the batch (files); fire and forget.
    virtual void cleanUp(const Credentials &creds, const QByteArray &state) = 0;

    // -- Full price, for requests the grace period took out of a batch.
    // POST {endpoint} (a batchable path such as "/v1/chat/completions", relative to the base
    // URL's /v1) with `body` unchanged: the synchronous API, at full price. Every complete HTTP
    // answer is a value, whatever its status; only an exchange that did not complete (refused,
    // reset, cut short, timed out) is an error.
    virtual void sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                                 const QByteArray &body, Callback<SyncAnswer> done) = 0;
    // The same with `timeout` as the call's transfer timeout (no byte from the provider for
    // this long ends it with an error): OpenAI's flex processing, whose answers take minutes.
    // By default (a provider without its own) sendSynchronous() with its usual timeout.
    virtual void sendSynchronousWithin(const Credentials &creds, const QByteArray &endpoint,
                                       const QByteArray &body, std::chrono::milliseconds timeout,
                                       Callback<SyncAnswer> done);

    // Whether refusing to create a batch means the model's queue is full (Azure's fail-fast
    // deployments: 400 token_limit_exceeded at create): the same requests fit later, so they
    // wait and are submitted again instead of failing.
    virtual bool queueFull(const ProviderError &error) const {
        Q_UNUSED(error);
        return false;
    }

    // A poll error that will not go away: the key is refused (401), or the batch is gone (404)
    // or hidden (403) from it. Its clients are answered with the provider's error.
    static bool isPermanentPollError(const ProviderError &error);

protected:
    // `callback` wrapped to do nothing once `context` is destroyed.
    template <typename F>
    static auto bound(QObject *context, F callback) {
        return [guard = QPointer<QObject>(context),
                callback = std::move(callback)](auto &&...args) mutable {
            if (guard)
                callback(std::forward<decltype(args)>(args)...);
        };
    }
};

} // namespace llmproxy
