// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One batch's conversation with the provider, as an explicit state machine whose every step
// is recorded before the next begins (StoredBatch::Phase), so a restart resumes it where it
// was: hand the lines over (stage) -> record the intent to create -> submit -> poll until it
// ends -> stream its result lines, storing each result before its client is answered -> let
// the provider clean up. It speaks the provider-neutral contract (provider.h) only: no
// provider's status words, files or line formats.

#include "api/clock.h"
#include "api/httpanswer.h"
#include "batch/batcher.h"
#include "batch/batchprogress.h"
#include "provider/provider.h"
#include "queue/store.h"

#include <QObject>
#include <QTimer>

#include <chrono>
#include <optional>
#include <unordered_set>

namespace llmproxy {

class BatchJob;

// What a job needs from the core that owns it, and nothing more.
class BatchJobHost {
public:
    virtual ~BatchJobHost() = default;
    // A batch still validating or running this long after its creation is cancelled (unset or
    // not positive: never).
    virtual std::optional<std::chrono::milliseconds> gracePeriod() const = 0;
    // How long a batch may report a status its provider's profile does not know before its
    // clients are told so (BatchJob::UnknownStatusPolls polls at least).
    virtual std::chrono::milliseconds unknownStatusLimit() const = 0;
    // Save the record (durable with the next commit); commitNow() commits at once: false when
    // the store could not (the job waits and tries again).
    virtual void saveBatch(const StoredBatch &batch) = 0;
    virtual bool commitNow() = 0;
    virtual void commit() = 0;
    // Store a request's answer (durable with the next commit) before it is delivered; what it
    // added to the ledger and to the usage of the batch `batchLocalId`, nullopt when it was
    // recorded before (or the request is unknown).
    virtual std::optional<accounting::LedgerRow>
    recordResult(quint64 requestId, const HttpAnswer &answer, const QByteArray &batchLocalId) = 0;
    // Answer whoever waits for the request; with nobody waiting, keep it for adoption.
    virtual void deliver(quint64 requestId, const HttpAnswer &answer, bool alreadyRecorded) = 0;
    // A request must go out again (it never ran): queue it if someone waits, else keep it.
    virtual void requeue(quint64 requestId) = 0;
    virtual bool hasWaitingClient(quint64 requestId) const = 0;
    // The grace period cancelled its batch before it ran: the synchronous API answers it.
    virtual void sendSynchronously(quint64 requestId, const Credentials &credentials) = 0;
    // A batch that keeps not fitting the provider's queue: form two new ones from its requests.
    virtual void splitBatch(BatchJob *job, const StoredBatch &record,
                            const QList<quint64> &requestIds) = 0;
    // The provider refused this key (401): forget it, in memory and in the store.
    virtual void keyRefused(const QByteArray &keyHash) = 0;
    // Whether a batch other than `asker`'s, running or ended in this run, has this provider id.
    virtual bool batchHeldElsewhere(const QByteArray &batchId, const BatchJob *asker) const = 0;
    // The provider created the batch: its id and the requests in it.
    virtual void jobSubmitted(const QByteArray &batchId, const QList<quint64> &requestIds) = 0;
    // The batch is no longer in the provider's queue (it ended there): what it counted
    // against the model's queue limit is free for the batches that wait (queuebudget.h).
    virtual void jobLeftQueue(BatchJob *job) = 0;
    // `counted`: a real batch that ended (stats, history); false when dissolved or split.
    virtual void jobEnded(BatchJob *job, bool counted, bool successful,
                          std::chrono::milliseconds duration) = 0;
};

class BatchJob final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchJob)
public:
    enum class State { Working, Done };

    // `jsonl` holds the encoded lines for a new batch; empty when resuming one from the store.
    BatchJob(BatchJobHost *host, Provider *provider, const Clock *clock, Credentials credentials,
             StoredBatch record, QList<quint64> requestIds, QByteArray jsonl,
             std::chrono::milliseconds pollInterval, bool resumed, QObject *parent);

    // Take the step the record's phase calls for.
    void start();
    // The settings changed (poll interval, grace period): a poll already scheduled comes no
    // later than the new settings call for.
    void settingsChanged(std::chrono::milliseconds pollInterval);
    State state() const { return m_state; }
    const QByteArray &batchId() const { return m_record.batchId; }
    const QByteArray &localId() const { return m_record.localId; }
    GroupKey group() const;
    // Resumed without a key (none configured, or a client's key not stored): it waits, asking
    // the provider nothing, until setCredentials() gives it one.
    bool isParked() const { return m_parked; }
    // The key for the calls from now on; a parked job resumes with it.
    void setCredentials(const Credentials &credentials);
    const BatchProgress &progress() const { return m_progress; }

    // Attempts for uploads, creates and downloads that fail in ways worth retrying.
    static constexpr int MaxAttempts = 8;
    // Polls in a row with a status the profile does not know (and unknownStatusLimit()) before
    // the clients are answered with batch_status_unknown instead of waiting forever.
    static constexpr int UnknownStatusPolls = 5;
    // How long to wait before attempt `attempt + 1`: the provider's Retry-After when it sent
    // one, else exponential (0.5 s doubling, capped at 2 min) with jitter.
    static std::chrono::milliseconds
    backoffDelay(int attempt, std::optional<std::chrono::milliseconds> retryAfter);

private:
    QByteArray keyHint() const;
    // recordResult(), counted in the batch's usage.
    void record(quint64 requestId, const HttpAnswer &answer);
    void stage();
    void create();
    void reconcile();
    void poll();
    // A status the provider reported: the job's view and the record follow it.
    void takeStatus(const BatchStatus &status);
    void takeEnded();
    // The batch is still validating or in progress after the grace period (or was to be
    // cancelled before a restart) and this process has not asked to cancel it yet.
    bool graceRanOut() const;
    void cancelForGrace();
    std::chrono::milliseconds nextPollDelay() const;
    void resubmitLater();
    void download();
    void readResults();
    void onLine(ResultLine line);
    void onLineTooLong(const TooLongLine &line);
    // The answer is stored now and delivered with the next deliverPending(), which runs once
    // MaxPendingAnswers or MaxPendingBytes are waiting.
    void queueAnswer(quint64 requestId, HttpAnswer answer);
    // A request that never ran (its batch expired or was cancelled): send it again.
    void neverRan(quint64 requestId);
    void deliverPending();
    void answerRemaining();
    void cleanUp();
    void dissolve();
    void failAll(const ProviderError &error, const char *step);
    // Every waiting client gets `answer`; the batch ends here (failed) and, if `cleanUp`, the
    // provider's files for it are deleted.
    void failAllWith(const HttpAnswer &answer, const QString &why, bool cleanUp);
    // The status stayed one the profile does not know: tell the clients (the batch is left
    // alone upstream: it may be running).
    bool giveUpOnUnknownStatus();
    void finish(bool counted);
    void retryLater(const ProviderError &error, void (BatchJob::*step)());
    // Save the record; with `durableNow`, commit too: false when the store could not.
    bool persist(bool durableNow = false);
    // The store could not make a step durable: take `step` again later.
    void waitForStore(void (BatchJob::*step)());
    void setStatus(const QByteArray &status);
    // The normalised status name (statusName()) shown in the window and /stats.
    QByteArray displayStatus() const;
    BatchSubmission submission() const;
    HttpAnswer answerForProviderFailure(const ProviderError &error, const char *step) const;
    std::chrono::milliseconds backoff(const ProviderError *error) const;

    BatchJobHost *m_host;
    Provider *m_provider;
    const Clock *m_clock;
    Credentials m_credentials;
    StoredBatch m_record;
    QList<quint64> m_requestIds;
    std::unordered_set<quint64> m_waiting; // requests without their result yet
    QByteArray m_jsonl;                    // released once staged (inline providers: once created)
    std::chrono::milliseconds m_pollInterval;
    bool m_resumed;
    State m_state = State::Working;
    BatchStatus m_status; // as the provider last reported it
    QList<std::pair<quint64, HttpAnswer>> m_pendingDelivery;
    qint64 m_pendingBytes = 0; // of the bodies in m_pendingDelivery
    int m_attempt = 0;         // of the current step
    ProviderError m_lastError;
    int m_badLines = 0;
    bool m_cancelSent = false; // by this process, for the current batch id
    int m_cancelAttempts = 0;
    int m_unknownStatusPolls = 0;
    SteadyTime m_unknownStatusSince{};
    SteadyTime m_submittedAt{};
    QTimer m_retryTimer;
    bool m_pollScheduled = false; // m_retryTimer waits for the next regular poll
    bool m_parked = false;        // no key: nothing is asked of the provider
    BatchProgress m_progress;
};

// Test hook: with LLMPROXY_TEST_CRASH_AT=<point> in the environment, the process kills itself
// with SIGKILL at that point (after_upload, after_create, while_polling, after_download), so the
// crash tests can prove a restart loses nothing and pays for nothing twice.
void crashPointForTests(const char *point);

} // namespace llmproxy
