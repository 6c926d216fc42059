// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Counters and latency percentiles for /stats and the dashboard, in bounded memory.

#include "accounting/ledger.h"

#include <QByteArray>
#include <QList>
#include <QMetaType>
#include <QtGlobal>

#include <array>
#include <cstddef>
#include <mutex>
#include <vector>

namespace llmproxy {

// How a batched streaming client's wait ended: its replay was written, or an error event for
// a failed request (the provider's error, a batch that failed, a body that could not be
// replayed), or the client hung up, or the proxy stopped (an error event, then the end).
enum class StreamEnd { Replayed, ErrorEvent, ClientGone, Shutdown };
inline constexpr std::size_t StreamEndCount = 4;

// Latency samples in logarithmic buckets (relative error under 1%), from 0.01 ms up to
// about 10 days; memory is fixed however many samples arrive.
// Percentiles use the nearest-rank definition and never leave [min, max]; min, max and mean are
// exact. The first kExactSamples samples are also kept verbatim, so small sets get exact
// percentiles. NaN and infinities are ignored; negative values count as 0.
class LatencyHistogram {
public:
    static constexpr double kLowestMs = 0.01;   // values below share bucket 0
    static constexpr double kHighestMs = 864e6; // 10 days; values beyond share the last bucket
    static constexpr double kBucketRatio = 1.01;
    static constexpr std::size_t kExactSamples = 64;

    LatencyHistogram();
    void record(double milliseconds);
    quint64 count() const { return m_count; }
    double mean() const;                 // 0 when empty
    double percentile(double p) const;   // p in [0,100]; 0 when empty
    double min() const { return m_min; } // 0 when empty
    double max() const { return m_max; } // 0 when empty
    // Fixed at construction: the memory does not grow with the number of samples.
    std::size_t bucketCount() const { return m_buckets.size(); }
    void clear();

private:
    static std::size_t bucketIndex(double milliseconds);
    double bucketValue(std::size_t index) const;

    std::vector<quint64> m_buckets;
    std::array<double, kExactSamples> m_exact{};
    quint64 m_count = 0;
    double m_sum = 0;
    double m_max = 0;
    double m_min = 0;
};

// The counts and money of accounting::LedgerRow without its labels: a plain value.
struct UsageTotals {
    qint64 requests = 0, requestsWithoutUsage = 0;
    qint64 input = 0, cachedInput = 0, cacheWriteInput = 0, output = 0, reasoning = 0;
    qint64 paidPicos = 0, listPicos = 0, savedPicos = 0, unknownCost = 0;
    static UsageTotals of(const accounting::LedgerRow &row);
    accounting::LedgerRow toRow() const;
};

// One model's queue at its provider that has a limit (--queue-limit): how much of it the
// proxy's batches fill now, by its estimate.
struct StatsQueue {
    QByteArray provider;
    QByteArray model;
    qint64 limitTokens = 0;
    qint64 enqueuedTokens = 0;
};

// One batch as /stats lists it: which provider it went to, and how far it is.
struct StatsBatch {
    QByteArray id;       // ours (the local id), stable from the start
    QByteArray batchId;  // the provider's; empty until created
    QByteArray provider; // the configured provider's name ("openai", "gemini", ...)
    QByteArray endpoint;
    QByteArray model;
    QByteArray status; // BatchProgress::status
    bool active = true;
    int total = 0, completed = 0, failed = 0;
    accounting::LedgerRow usage = {}; // its answered lines' tokens and cost (BatchProgress)
};

// A plain copyable value: it crosses threads in queued signals (see Q_DECLARE_METATYPE below).
// requestsTotal = requestsSuccessful + requestsFailed; synthesizedErrors is a subset of failed.
struct StatsSnapshot {
    quint64 requestsTotal = 0;
    quint64 requestsSuccessful = 0;
    quint64 requestsFailed = 0;
    quint64 synthesizedErrors = 0;
    double requestAvgMs = 0, requestP50Ms = 0, requestP95Ms = 0, requestP99Ms = 0;
    quint64 batchesTotal = 0;
    quint64 batchesSuccessful = 0;
    quint64 batchesFailed = 0;
    double batchAvgMs = 0, batchP50Ms = 0, batchP95Ms = 0, batchP99Ms = 0;
    quint64 queued = 0;
    quint64 inFlight = 0;
    quint64 relayed = 0;
    // Requests of batches cancelled after the grace period that were answered through the
    // synchronous API instead (at full price). They are counted in requests* as well.
    quint64 syncFallback = 0;
    // Requests answered from the answer cache (--cache; counted in requests* as well).
    quint64 cacheHits = 0;
    // Batches not ended yet (for /metrics; not in /stats' JSON).
    quint64 activeBatches = 0;
    // Tokens and money of every answered request (the ledger's counts): since this start, and
    // all time (the ledger's totals when the proxy started, plus since start).
    UsageTotals usageSinceStart;
    UsageTotals usageAllTime;
    // Batched requests whose client asked for a stream and got it (the replay or an error
    // event; counted in requests* as well), and the streaming clients waiting now (counted in
    // queued or in_flight as well).
    quint64 streamed = 0;
    quint64 waitingStreams = 0;
    // Streams whose wait ended, by StreamEnd (for /metrics; streamed = Replayed + ErrorEvent),
    // and the keep-alive comments written to waiting streams.
    std::array<quint64, StreamEndCount> streamsEnded{};
    quint64 streamKeepAlives = 0;
    // Requests waiting for room in their model's queue at the provider (counted in queued as
    // well). The queues themselves: Stats::queues().
    quint64 waitingForQuota = 0;
};

// Thread-safe: the core records batches and requests on its thread while every I/O thread's
// front end counts relayed calls and answers GET /stats. Each call takes one short lock.
class Stats {
public:
    // A batched request was answered (status decides successful: 2xx, or failed).
    // `synthesized`: the proxy made the answer itself; only a synthesized failure counts in
    // synthesized_error_responses. Time from arrival to answer.
    void recordRequest(int httpStatus, bool synthesized, double milliseconds);
    // A batch reached a terminal state: successful if `completed`, else failed.
    // Time from submission (create) to terminal state.
    void recordBatch(bool successful, double milliseconds);
    void recordRelayed();
    // A request was answered through the synchronous API after its batch was cancelled for
    // taking longer than the grace period (the provider answered; recordRequest() counts it too).
    void recordSyncFallback();
    // A request was answered from the answer cache (recordRequest() counts it too).
    void recordCacheHit();
    // One answered request's usage and cost (accounting::ledgerRowFor), counted since start and
    // all time.
    void recordUsage(const accounting::LedgerRow &row);
    // What the ledger held when the proxy started (before any recordUsage()).
    void setUsageBeforeStart(const accounting::LedgerRow &total);
    // A streaming client started waiting for its batch; its wait ended (`how`): Replayed and
    // ErrorEvent count as streamed.
    void recordStreamStarted();
    void recordStreamEnded(StreamEnd how);
    // `count` keep-alive comments were written to waiting streams (one call per sweep).
    void recordStreamKeepAlives(quint64 count);
    void setQueued(quint64 n);
    void setInFlight(quint64 n);
    void setActiveBatches(quint64 n);
    void setQuota(quint64 waitingForQuota, QList<StatsQueue> queues);
    QList<StatsQueue> queues() const;
    // The batches /stats lists (the core's progress, active first, then recently ended ones);
    // at most MaxListedBatches are kept.
    void setBatchList(QList<StatsBatch> batches);
    QList<StatsBatch> batchList() const;
    static constexpr qsizetype MaxListedBatches = 50;

    StatsSnapshot snapshot() const;
    // The prototype's JSON exactly, plus "queued", "in_flight", "relayed", "sync_fallback" and
    // "usage": {"since_start": {...}, "all_time": {...}} (accounting::totalsJson) at the top level.
    // The prototype's JSON exactly, plus "queued", "in_flight", "relayed", "sync_fallback",
    // "streamed", "waiting_streams", "waiting_for_quota" at the top level, "queues": one object
    // per limited model queue {"provider","model","limit_tokens","enqueued_tokens"}, and
    // "batch_list": one object per listed
    // batch {"id","batch_id","provider","endpoint","model","status","active","requests",
    // "completed","failed","usage"} ("usage": its lines' tokens and cost, totalsJson()).
    // Compact, fixed key order, no trailing newline. Times are rounded to 3 decimals and
    // written like Go's encoding/json (shortest form, "0" not "0.0"); a non-finite number is
    // written as 0.
    static QByteArray toJson(const StatsSnapshot &s, const QList<StatsBatch> &batches = {},
                             const QList<StatsQueue> &queues = {});

private:
    mutable std::mutex m_mutex;
    LatencyHistogram m_requestLatency;
    LatencyHistogram m_batchLatency;
    quint64 m_requestsSuccessful = 0, m_requestsFailed = 0, m_synthesized = 0;
    quint64 m_batchesSuccessful = 0, m_batchesFailed = 0;
    quint64 m_queued = 0, m_inFlight = 0, m_relayed = 0, m_syncFallback = 0, m_cacheHits = 0;
    quint64 m_activeBatches = 0;
    QList<StatsBatch> m_batchList;
    accounting::LedgerRow m_usageSinceStart, m_usageBeforeStart; // labels empty
    quint64 m_streamed = 0, m_waitingStreams = 0;
    std::array<quint64, StreamEndCount> m_streamsEnded{};
    quint64 m_streamKeepAlives = 0;
    quint64 m_waitingForQuota = 0;
    QList<StatsQueue> m_queues;
};

} // namespace llmproxy

Q_DECLARE_METATYPE(llmproxy::StatsSnapshot)
