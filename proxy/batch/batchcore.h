// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The batching core: owns every queued and submitted request and every batch job. It lives
// on one thread and needs no locks; the front end talks to it with submit()/cancel() and
// hears back through answered().
//
// With a Store, everything that matters is durable: requests once accepted (group commit),
// each batch's progress around every provider call, and results nobody has collected yet. A
// client that comes back with the same request (an SDK retry after a timeout, or after a
// restart) adopts the earlier one instead of paying for it again.

#include "accounting/accountedrequest.h"
#include "accounting/ledger.h"
#include "accounting/prices.h"
#include "api/clock.h"
#include "api/httpanswer.h"
#include "batch/answercache.h"
#include "batch/batcher.h"
#include "batch/batchjob.h"
#include "batch/batchprogress.h"
#include "batch/queuebudget.h"
#include "provider/modelroute.h"
#include "provider/provider.h"

#include <QHash>
#include <QObject>
#include <QPointer>
#include <QSet>
#include <QTimer>
#include <QVarLengthArray>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

namespace llmproxy {

class BatchJob;
class Stats;
class Store;
struct StoredBatch;

// One client request to batch, as the front end hands it over.
struct BatchRequest {
    quint64 id = 0; // the front end's ticket for this client, unique for the process
    Credentials credentials;
    GroupKey group;
    QByteArray body; // the client's JSON body, byte for byte
    int embeddingInputs = 0;
    SteadyTime arrival;
    QByteArray idempotencyKey; // the Idempotency-Key header, if any
    // Who sent it: the proxy token's name (empty without tokens). Part of what adoption and
    // Idempotency-Key match on, so one caller never adopts another's request.
    QByteArray caller;
    // The client asked for a stream ("stream": true, taken out of `body`): it is answered with
    // a replay of the result. Part of what adoption matches on: a streaming and a non-streaming
    // request with the same body stay two requests.
    bool streaming = false;
    // The model's route (modelroute.h): Flex and FlexThenBatch try OpenAI's flex processing
    // first (the front end sets them only for providers with the openai profile); `routeExact`:
    // the rule named the model itself, so flex is tried even without a flex price for it.
    ModelRoute route = ModelRoute::Batch;
    bool routeExact = false;
    // The client's Cache-Control: no-cache (or no-store) asks for a new answer, not the answer
    // cache's; no-store also keeps its answer out of the cache.
    bool cacheRead = true;
    bool cacheWrite = true;
};

struct CoreSettings {
    BatchLimits limits;
    std::chrono::milliseconds pollInterval{10'000};
    // How long a result nobody collected (or a request never sent) is kept for adoption.
    std::chrono::milliseconds resultTtl{std::chrono::hours(24)};
    // A batch still validating or in progress this long after its creation is cancelled; its
    // finished lines are delivered and the rest go through the synchronous API (full price)
    // for the clients still waiting. Off when unset (or not positive).
    std::optional<std::chrono::milliseconds> gracePeriod;
    // The proxy's own key (environment, keychain or settings), for requests grouped under
    // ConfiguredKeyHash; empty when none is configured. Never written to the store.
    QByteArray configuredKey;
    // The other configured providers' keys, by provider name (routing); never stored.
    QHash<QByteArray, QByteArray> providerKeys;
    // A flex call's transfer timeout (--flex-timeout): then the request goes into a batch.
    std::chrono::milliseconds flexTimeout{std::chrono::minutes(15)};
    // The answer cache (--cache): how long a successful answer answers identical requests
    // (off when unset), and how many bytes of answers the store keeps for it. Needs the store.
    std::optional<std::chrono::milliseconds> cacheWindow;
    qint64 cacheMaxBytes = 256LL * 1024 * 1024;
    // Each model's queue limit at its provider (--queue-limit, queuelimit.h): batches wait
    // until what the proxy has enqueued for the model leaves room for them.
    QueueLimits queueLimits;
    // A batch whose status its provider's profile does not know for this long (and at least
    // BatchJob::UnknownStatusPolls polls) ends its clients with batch_status_unknown: a
    // profile that does not match the provider would otherwise keep them waiting forever.
    std::chrono::milliseconds unknownStatusLimit{std::chrono::minutes(10)};
};

// Names an answer that came through the synchronous API (value "sync") because the grace period
// cancelled its batch before the request ran.
inline constexpr char SyncFallbackHeader[] = "x-llm-proxy-fallback";
// Names an answer that came from OpenAI's flex processing (value "flex"), at the flex price.
inline constexpr char RouteHeader[] = "x-llm-proxy-route";
// Names an answer that came from the answer cache (value "hit"), paid nothing.
inline constexpr char CacheHeader[] = "x-llm-proxy-cache";

// The custom_id of a request inside a batch file: unique by construction, and within
// ^[A-Za-z0-9_-]{1,64}$.
QByteArray customIdFor(quint64 requestId);
std::optional<quint64> requestIdFromCustomId(QByteArrayView customId);

class BatchCore final : public QObject, private BatchJobHost {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchCore)
public:
    // `store` may be null: then nothing survives a restart (the in-memory path).
    BatchCore(Provider *provider, const Clock *clock, Stats *stats, Store *store,
              const CoreSettings &settings, QObject *parent = nullptr);
    ~BatchCore() override;

    // Rebuild from the store after a restart: resume every submitted batch (poll, download,
    // store results), keep unsent requests and uncollected results for adoption.
    void restore();

    // Several providers behind one URL: the provider of the groups named `name` (the one given
    // to the constructor is "openai", the name of an empty GroupKey::provider). Call before
    // restore(). A request or batch of a provider not added is answered with an error.
    void addProvider(const QByteArray &name, Provider *provider);

    void setSettings(const CoreSettings &settings);
    // The prices every accounted request's cost comes from (none: every cost is unknown).
    void setPriceTable(std::shared_ptr<const accounting::PriceTable> prices);

    // A relayed request's answer is final (the front end read its usage on its I/O thread):
    // price it, add it to the ledger (committed with the next group commit) and to the stats,
    // and tell requestAccounted().
    void accountRelayed(accounting::AccountedRequest request);
    // GET /usage and the stats' all-time figures: the ledger grouped as asked. nullopt and
    // *error without a store, or when it cannot be read.
    std::optional<accounting::LedgerReport> usageReport(const accounting::LedgerQuery &query,
                                                        QString *error);
    const CoreSettings &settings() const { return m_settings; }

    // Queue a request; its answer comes later through answered().
    void submit(BatchRequest request);
    // The client went away: drop a queued request, or forget who waits for a submitted one.
    void cancel(quint64 ticket);
    // Send every queued group now, whatever its window.
    void flushNow();
    // Make everything accepted so far durable (also done a few ms after each change).
    void commit() override;
    // The proxy is stopping: clients told to come back keep their requests (for adoption
    // after the restart) instead of having them taken out of the queue.
    void prepareShutdown() { m_shuttingDown = true; }

    // Accepted but not yet sent (waiting for their window, held while paused, or waiting for
    // room in their model's queue at the provider).
    qsizetype queued() const {
        return m_batcher.queued() + m_heldRequests + m_budget.waitingRequests();
    }
    // Of those, the ones waiting for room in their model's queue (--queue-limit).
    qsizetype waitingForQuota() const { return m_budget.waitingRequests(); }
    // The models' queues with a limit: what of ours is in each (estimated tokens).
    QList<QueueBudget::Queue> providerQueues() const { return m_budget.queues(); }
    // In a batch that was sent, not answered yet.
    qsizetype inFlight() const { return m_submitted; }
    // Kept for clients that may come back: results nobody collected, requests never sent.
    qsizetype unclaimed() const { return m_unclaimed; }
    qsizetype activeBatches() const { return m_jobs; }
    quint64 adopted() const { return m_adopted; }
    // Requests answered from the answer cache since start, and what it holds now.
    quint64 cacheHits() const { return m_cacheHits; }
    const AnswerCache &answerCache() const { return m_cache; }
    // Clients' own keys held in memory now (bounded by the requests that need them).
    qsizetype keysInMemory() const;
    // Active batches, then the last finished ones, newest first.
    QList<BatchProgress> batchProgress() const;
    quint64 batchesSubmitted() const { return m_batchesStarted; }
    quint64 batchesEnded() const { return m_batchesEnded; }

    // Whether new requests are accepted: false while the store cannot be written (they get 503
    // with Retry-After until a probe write succeeds).
    bool storeWritable() const { return m_storeWritable; }

    // Hold every request (nothing is sent) until resumed.
    void setPaused(bool paused);
    bool isPaused() const { return m_paused; }

    // Where the answers to one front end's tickets go: a ticket carries its front end's index
    // in its top 16 bits (frontEndOf), and its answer is handed to that front end alone, by a
    // call to `deliver` on `context`'s thread (queued when that is another thread). A later
    // route for the same index replaces this one; a route whose context was destroyed is
    // dropped with the answers for it. Call on the core's thread.
    using AnswerFunction = std::function<void(quint64 ticket, const HttpAnswer &answer)>;
    // Streaming tickets (BatchRequest::streaming) also hear the id of the batch their request
    // went out in, as soon as the provider created it, through `batchKnown` (if given).
    using BatchIdFunction = std::function<void(quint64 ticket, const QByteArray &batchId)>;
    void setAnswerRoute(int frontEnd, QObject *context, AnswerFunction deliver,
                        BatchIdFunction batchKnown = {});
    static constexpr int frontEndOf(quint64 ticket) { return int(ticket >> 48); }

Q_SIGNALS:
    void batchSubmitted(const QByteArray &batchId, int requests);
    void batchFinished(const llmproxy::BatchProgress &batch);
    // A request's answer is final (a batch line, a synchronous fallback, a relayed call): what
    // it used and cost, for /metrics and /stats (the ledger row is written with the result).
    void requestAccounted(const llmproxy::accounting::AccountedRequest &request);

private:
    enum class State { Queued, Submitted, Unclaimed };
    // What a request costs while its client waits is most of the proxy's memory per client:
    // keep it small. Its body is kept once (shared with the front end's copy, and not at all
    // once the store has it and it is in a batch); its JSONL line is only made for the batch
    // file; its group's strings are shared by all the group's requests (acquireGroup).
    struct Request {
        GroupKey group;
        // The client's JSON body while it may still have to be sent (queued; without a store,
        // until answered). With a store, the store keeps it too.
        QByteArray body;
        QByteArray dedupe; // a SHA-256 (dedupeKey)
        // With an Idempotency-Key: the body's SHA-256, so a reuse with another body is a 409.
        QByteArray bodyHash;
        SteadyTime arrival;
        QByteArray caller; // whom the ledger counts it for (token name or key hint)
        int embeddingInputs = 0;
        State state = State::Queued;
        QVarLengthArray<quint64, 1> tickets;  // clients waiting for it: nearly always one
        bool hasResult = false;               // Unclaimed with a stored answer (else: never sent)
        bool streaming = false;               // its clients asked for a stream
        bool cacheable = false;               // its answer goes into the answer cache
        ModelRoute route = ModelRoute::Batch; // Flex/FlexThenBatch while flex is being tried
        SteadyTime unclaimedSince;
        std::shared_ptr<const HttpAnswer> memoryResult; // without a store
    };

    // Hand `answer` to the front end that holds `ticket`.
    void answerTicket(quint64 ticket, const HttpAnswer &answer);
    void onTimer();
    void rearmTimer();
    void startBatch(const Flush &flush);
    void startJob(const GroupKey &group, const QList<quint64> &ids, int attempts);
    // A batch of `ids` for a group whose model has a queue limit: made now if it fits, else
    // it waits in m_budget (cut to fit when it is bigger than the limit).
    void offerBatch(const GroupKey &group, const QList<quint64> &ids, int attempts);
    // Make the batches the budget let in.
    void startAdmitted(const QList<QueueBudget::Pending> &admitted);
    void startBatches(const QList<Flush> &flushes);
    void enqueue(quint64 id, Request &request);
    void adopt(quint64 id, Request &request, quint64 ticket);
    void updateGauges();
    void scheduleCommit();
    void purge();
    // The answer cache (--cache): answer `request` from it (true), or not (false: a miss, the
    // cache off, or the client said no-cache); keep a successful answer of request `r` in it.
    bool answerFromCache(const BatchRequest &request, const QByteArray &key,
                         const QByteArray &caller);
    void cacheAnswer(const Request &r, const HttpAnswer &answer, qint64 nowMs);
    bool cacheOn() const { return m_store && m_settings.cacheWindow.has_value(); }
    // Delete from the store what the cache's index let go.
    void dropCached(const QList<QByteArray> &keys);
    Credentials credentialsFor(const GroupKey &group) const;
    // The group's provider; nullptr when it is not configured (any more).
    Provider *providerFor(const GroupKey &group) const;
    QByteArray configuredKeyFor(const QByteArray &provider) const;
    // What the clients of a request whose provider is not configured are told.
    static HttpAnswer providerMissingAnswer(const QByteArray &provider);
    void eraseRequest(quint64 id);
    // A client's own key, kept in memory while requests of its hash exist (see m_keys).
    void rememberKey(const QByteArray &keyHash, const QByteArray &apiKey);
    // Give parked jobs of `keyHash` (no key when they were resumed) the key known now.
    void resumeParkedJobs(const QByteArray &keyHash);
    // A write to the store failed: refuse new requests, answer the ones whose acceptance was
    // not stored, and probe until writes succeed again.
    void storeFailed();
    void probeStore();

    // What jobs may ask of the core (BatchJobHost).
    std::optional<std::chrono::milliseconds> gracePeriod() const override {
        return m_settings.gracePeriod;
    }
    std::chrono::milliseconds unknownStatusLimit() const override {
        return m_settings.unknownStatusLimit;
    }
    // Store a request's answer (durable with the next commit) before it is delivered; a batch
    // line's usage is added to its batch's in the same transaction.
    std::optional<accounting::LedgerRow> recordResult(quint64 requestId, const HttpAnswer &answer,
                                                      const QByteArray &batchLocalId) override;
    // Answer whoever waits for the request; with nobody waiting, keep it for adoption.
    void deliver(quint64 requestId, const HttpAnswer &answer, bool alreadyRecorded) override;
    // A batch that keeps not fitting the provider's quota: form two new ones from its requests.
    void splitBatch(BatchJob *job, const StoredBatch &record,
                    const QList<quint64> &requestIds) override;
    // A request must go out again (expired or cancelled upstream): queue it if someone
    // waits, else keep it for adoption without paying for it.
    void requeue(quint64 requestId) override;
    bool hasWaitingClient(quint64 requestId) const override;
    // The grace period cancelled the request's batch before it ran: send it through the
    // synchronous API (full price) and deliver that answer, retrying transient failures. If its
    // clients are gone before it was sent, it is requeued instead (kept, not paid for).
    void sendSynchronously(quint64 requestId, const Credentials &credentials) override {
        sendSynchronousAttempt(requestId, credentials, 0);
    }
    void sendSynchronousAttempt(quint64 requestId, const Credentials &credentials, int attempt);
    // Store the answer with its ledger row (one transaction), unless it was stored before, and
    // account for it (stats, requestAccounted).
    std::optional<accounting::LedgerRow> recordAnswer(quint64 requestId, const HttpAnswer &answer,
                                                      accounting::Route route);
    // The batches /stats lists, with their provider (Stats::setBatchList).
    void publishBatchList();
    // Price `request`, add it to the ledger (when `toLedger`) and the stats, and emit it.
    // Returns the ledger increment.
    accounting::LedgerRow account(accounting::AccountedRequest &request, bool toLedger);
    // The same caller text shared by every request that has it.
    QByteArray internCaller(const QByteArray &caller);
    bool batchHeldElsewhere(const QByteArray &batchId, const BatchJob *asker) const override;
    // Tells waiting streams their batch (setAnswerRoute's batchKnown).
    void jobSubmitted(const QByteArray &batchId, const QList<quint64> &requestIds) override;
    void jobLeftQueue(BatchJob *job) override;
    void onSynchronousAnswer(quint64 requestId, const Credentials &credentials, int attempt,
                             ProviderResult<SyncAnswer> result);
    // OpenAI's flex processing (modelroute.h): whether this request tries it first, the call
    // (`attempt` counts from 0), and what its answer decides: the client's answer (at the flex
    // price), another flex call, or the batch (requeue(); never the standard tier).
    bool wantsFlex(const BatchRequest &request) const;
    void sendFlex(quint64 requestId, int attempt);
    void onFlexAnswer(quint64 requestId, int attempt, ProviderResult<SyncAnswer> result);
    // The request's JSONL input line for a batch file, made from bodyFor() (whose size goes
    // to *bodyBytes if given).
    QByteArray lineFor(quint64 requestId, qsizetype *bodyBytes = nullptr);
    // The client's body: the one in memory, else the store's (empty if neither has it).
    QByteArray bodyFor(quint64 requestId);
    // The group as every request of it shares it, counted per request that uses it.
    GroupKey acquireGroup(const GroupKey &group);
    void releaseGroup(const GroupKey &group);
    void saveBatch(const StoredBatch &batch) override;
    void forgetBatch(const QByteArray &localId);
    // Commit now; false when the store could not write (the job waits and tries again).
    bool commitNow() override;
    // The provider answered 401 for this key: forget it, in memory and in the store.
    void keyRefused(const QByteArray &keyHash) override;
    // `counted`: a real batch that ended (stats, history); false when it was dissolved or split.
    void jobEnded(BatchJob *job, bool counted, bool successful,
                  std::chrono::milliseconds duration) override;

    QHash<QByteArray, Provider *> m_providers; // by name; "openai" is the constructor's
    // Requests of restored batches whose provider is not configured: their clients, when they
    // come back, are told so instead of waiting (the batch stays in the store for when it is
    // configured again).
    QHash<quint64, QByteArray> m_unroutable;
    const Clock *m_clock;
    Stats *m_stats;
    Store *m_store;
    CoreSettings m_settings;
    Batcher m_batcher;
    QueueBudget m_budget;
    QTimer m_timer;
    QTimer m_commitTimer;
    QTimer m_purgeTimer;
    QTimer m_probeTimer; // while the store cannot be written
    std::unordered_map<quint64, Request> m_requests;
    std::unordered_map<quint64, quint64> m_ticketToRequest;
    QMultiHash<QByteArray, quint64> m_byDedupe;
    struct AnswerRoute {
        QPointer<QObject> context;
        AnswerFunction deliver;
        BatchIdFunction batchKnown;
    };
    QHash<int, AnswerRoute> m_answerRoutes; // by front end index
    QHash<GroupKey, qsizetype> m_groups;    // each group's strings once, with its request count
    // Clients' own keys by hash, counted per request of that hash that exists (queued, in a
    // batch or kept for adoption): an entry goes with the last such request, so the map never
    // outgrows the requests. The key is empty when unknown (restored) or refused (401).
    struct KeyUse {
        QByteArray apiKey;
        qsizetype requests = 0;
    };
    QHash<QByteArray, KeyUse> m_keys;
    std::shared_ptr<const accounting::PriceTable> m_prices;
    QSet<QByteArray> m_callers; // internCaller()
    // "provider\nmodel" of models whose provider said flex is not offered for them: their
    // requests go straight to the batch from then on.
    QSet<QByteArray> m_noFlex;
    // Requests inserted into the store since the last commit that succeeded.
    QList<quint64> m_uncommitted;
    bool m_storeWritable = true;
    quint64 m_nextRequestId = 1;
    qsizetype m_jobs = 0;
    qsizetype m_submitted = 0;
    qsizetype m_unclaimed = 0;
    quint64 m_adopted = 0;
    AnswerCache m_cache;
    quint64 m_cacheHits = 0;
    quint64 m_batchesStarted = 0;
    quint64 m_batchesEnded = 0;
    bool m_paused = false;
    bool m_shuttingDown = false;
    QList<Flush> m_heldFlushes; // closed while paused
    qsizetype m_heldRequests = 0;
    QList<BatchProgress> m_history; // finished batches, newest last
    static constexpr qsizetype HistorySize = 500;
};

} // namespace llmproxy
