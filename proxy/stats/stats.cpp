// SPDX-License-Identifier: GPL-3.0-or-later
#include "stats/stats.h"

#include "api/json.h"

#include <QLocale>

#include <algorithm>
#include <cmath>

namespace llmproxy {

namespace {

// Function-local statics: safe even for a histogram built during static initialisation.
double logRatio() {
    static const double value = std::log(LatencyHistogram::kBucketRatio);
    return value;
}

// Bucket 0 holds [0, kLowestMs); bucket i in 1..n-2 holds [kLowestMs * r^(i-1), kLowestMs * r^i),
// which covers kHighestMs; the last bucket (n-1) takes everything beyond.
std::size_t bucketTotal() {
    static const std::size_t value = [] {
        const double steps =
            std::log(LatencyHistogram::kHighestMs / LatencyHistogram::kLowestMs) / logRatio();
        return static_cast<std::size_t>(std::ceil(steps)) + 2;
    }();
    return value;
}

// A time for the JSON: rounded to 3 decimals, shortest form, integers without ".0", exponent
// only from 1e21 on (as Go's encoding/json writes a float64), never NaN or infinity.
QByteArray jsonMilliseconds(double value) {
    if (!std::isfinite(value)) {
        return QByteArrayLiteral("0");
    }
    if (std::abs(value) < 1e12) {
        value = std::round(value * 1000.0) / 1000.0;
    }
    if (value == 0.0) {
        return QByteArrayLiteral("0"); // also turns -0 into 0
    }
    const char format = std::abs(value) >= 1e21 ? 'e' : 'f';
    return QByteArray::number(value, format, QLocale::FloatingPointShortest);
}

} // namespace

LatencyHistogram::LatencyHistogram()
    : m_buckets(bucketTotal(), 0) {}

std::size_t LatencyHistogram::bucketIndex(double milliseconds) {
    if (milliseconds < kLowestMs) {
        return 0;
    }
    const std::size_t last = bucketTotal() - 1;
    const double steps = std::floor(std::log(milliseconds / kLowestMs) / logRatio());
    if (steps >= static_cast<double>(last - 1)) {
        return last;
    }
    return static_cast<std::size_t>(steps) + 1;
}

double LatencyHistogram::bucketValue(std::size_t index) const {
    // The end buckets are open-ended: the exact min and max are the best answers there.
    if (index == 0) {
        return m_min;
    }
    if (index == m_buckets.size() - 1) {
        return m_max;
    }
    // The geometric middle of the bucket: within sqrt(1.01) - 1 < 0.5% of anything inside it.
    const double middle = kLowestMs * std::pow(kBucketRatio, static_cast<double>(index) - 0.5);
    return std::clamp(middle, m_min, m_max);
}

void LatencyHistogram::record(double milliseconds) {
    if (!std::isfinite(milliseconds)) {
        return;
    }
    milliseconds = std::max(milliseconds, 0.0);
    if (m_count < kExactSamples) {
        m_exact[static_cast<std::size_t>(m_count)] = milliseconds;
    }
    if (m_count == 0) {
        m_min = milliseconds;
        m_max = milliseconds;
    } else {
        m_min = std::min(m_min, milliseconds);
        m_max = std::max(m_max, milliseconds);
    }
    ++m_buckets[bucketIndex(milliseconds)];
    ++m_count;
    m_sum += milliseconds;
}

double LatencyHistogram::mean() const {
    if (m_count == 0) {
        return 0;
    }
    const double result = m_sum / static_cast<double>(m_count);
    return std::isfinite(result) ? result : m_max;
}

double LatencyHistogram::percentile(double p) const {
    if (m_count == 0) {
        return 0;
    }
    if (!(p > 0)) { // also NaN
        p = 0;
    }
    p = std::min(p, 100.0);

    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    // The relative nudge keeps p * n / 100 that should be an integer from rounding up a rank.
    const double n = static_cast<double>(m_count);
    const double exactRank = p * n / 100.0;
    const double rankD = std::ceil(exactRank - exactRank * 1e-12);
    const quint64 rank = rankD < 1.0 ? 1 : std::min(static_cast<quint64>(rankD), m_count);
    if (rank == 1) {
        return m_min;
    }
    if (rank == m_count) {
        return m_max;
    }

    if (m_count <= kExactSamples) {
        std::array<double, kExactSamples> sorted = m_exact;
        const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(m_count);
        const auto nth = sorted.begin() + static_cast<std::ptrdiff_t>(rank - 1);
        std::nth_element(sorted.begin(), nth, end);
        return *nth;
    }

    quint64 seen = 0;
    for (std::size_t i = 0; i < m_buckets.size(); ++i) {
        seen += m_buckets[i];
        if (seen >= rank) {
            return bucketValue(i);
        }
    }
    return m_max; // not reached: the buckets hold m_count samples
}

void LatencyHistogram::clear() {
    std::fill(m_buckets.begin(), m_buckets.end(), 0);
    m_exact.fill(0);
    m_count = 0;
    m_sum = 0;
    m_max = 0;
    m_min = 0;
}

void Stats::recordRequest(int httpStatus, bool synthesized, double milliseconds) {
    const std::lock_guard lock(m_mutex);
    const bool successful = httpStatus >= 200 && httpStatus <= 299;
    if (successful) {
        ++m_requestsSuccessful;
    } else {
        ++m_requestsFailed;
        if (synthesized) {
            ++m_synthesized;
        }
    }
    m_requestLatency.record(milliseconds);
}

void Stats::recordBatch(bool successful, double milliseconds) {
    const std::lock_guard lock(m_mutex);
    if (successful) {
        ++m_batchesSuccessful;
    } else {
        ++m_batchesFailed;
    }
    m_batchLatency.record(milliseconds);
}

void Stats::recordRelayed() {
    const std::lock_guard lock(m_mutex);
    ++m_relayed;
}

void Stats::recordSyncFallback() {
    const std::lock_guard lock(m_mutex);
    ++m_syncFallback;
}

void Stats::recordCacheHit() {
    const std::lock_guard lock(m_mutex);
    ++m_cacheHits;
}

void Stats::recordStreamStarted() {
    const std::lock_guard lock(m_mutex);
    ++m_waitingStreams;
}

void Stats::recordStreamEnded(StreamEnd how) {
    const std::lock_guard lock(m_mutex);
    if (m_waitingStreams > 0)
        --m_waitingStreams;
    if (how == StreamEnd::Replayed || how == StreamEnd::ErrorEvent)
        ++m_streamed;
    ++m_streamsEnded[std::size_t(how)];
}

void Stats::recordStreamKeepAlives(quint64 count) {
    const std::lock_guard lock(m_mutex);
    m_streamKeepAlives += count;
}

void Stats::setQueued(quint64 n) {
    const std::lock_guard lock(m_mutex);
    m_queued = n;
}

void Stats::setInFlight(quint64 n) {
    const std::lock_guard lock(m_mutex);
    m_inFlight = n;
}

void Stats::setActiveBatches(quint64 n) {
    const std::lock_guard lock(m_mutex);
    m_activeBatches = n;
}

void Stats::setQuota(quint64 waitingForQuota, QList<StatsQueue> queues) {
    const std::lock_guard lock(m_mutex);
    m_waitingForQuota = waitingForQuota;
    m_queues = std::move(queues);
}

QList<StatsQueue> Stats::queues() const {
    const std::lock_guard lock(m_mutex);
    return m_queues;
}

void Stats::setBatchList(QList<StatsBatch> batches) {
    if (batches.size() > MaxListedBatches)
        batches.resize(MaxListedBatches);
    const std::lock_guard lock(m_mutex);
    m_batchList = std::move(batches);
}

QList<StatsBatch> Stats::batchList() const {
    const std::lock_guard lock(m_mutex);
    return m_batchList;
}

StatsSnapshot Stats::snapshot() const {
    const std::lock_guard lock(m_mutex);
    StatsSnapshot s;
    s.requestsSuccessful = m_requestsSuccessful;
    s.requestsFailed = m_requestsFailed;
    s.requestsTotal = m_requestsSuccessful + m_requestsFailed;
    s.synthesizedErrors = m_synthesized;
    s.requestAvgMs = m_requestLatency.mean();
    s.requestP50Ms = m_requestLatency.percentile(50);
    s.requestP95Ms = m_requestLatency.percentile(95);
    s.requestP99Ms = m_requestLatency.percentile(99);
    s.batchesSuccessful = m_batchesSuccessful;
    s.batchesFailed = m_batchesFailed;
    s.batchesTotal = m_batchesSuccessful + m_batchesFailed;
    s.batchAvgMs = m_batchLatency.mean();
    s.batchP50Ms = m_batchLatency.percentile(50);
    s.batchP95Ms = m_batchLatency.percentile(95);
    s.batchP99Ms = m_batchLatency.percentile(99);
    s.queued = m_queued;
    s.inFlight = m_inFlight;
    s.relayed = m_relayed;
    s.syncFallback = m_syncFallback;
    s.cacheHits = m_cacheHits;
    s.activeBatches = m_activeBatches;
    s.usageSinceStart = UsageTotals::of(m_usageSinceStart);
    accounting::LedgerRow allTime = m_usageBeforeStart;
    allTime.add(m_usageSinceStart);
    s.usageAllTime = UsageTotals::of(allTime);
    s.streamed = m_streamed;
    s.waitingStreams = m_waitingStreams;
    s.streamsEnded = m_streamsEnded;
    s.streamKeepAlives = m_streamKeepAlives;
    s.waitingForQuota = m_waitingForQuota;
    return s;
}

QByteArray Stats::toJson(const StatsSnapshot &s, const QList<StatsBatch> &batches,
                         const QList<StatsQueue> &queues) {
    QByteArray out;
    out.reserve(512);
    const auto count = [&out](const char *key, quint64 value) {
        out += '"';
        out += key;
        out += "\":";
        out += QByteArray::number(value);
    };
    const auto time = [&out](const char *key, double value) {
        out += '"';
        out += key;
        out += "\":";
        out += jsonMilliseconds(value);
    };

    out += "{\"requests\":{";
    count("total", s.requestsTotal);
    out += ',';
    count("successful", s.requestsSuccessful);
    out += ',';
    count("failed", s.requestsFailed);
    out += ',';
    count("synthesized_error_responses", s.synthesizedErrors);
    out += ',';
    time("avg_time_ms", s.requestAvgMs);
    out += ',';
    time("p50_time_ms", s.requestP50Ms);
    out += ',';
    time("p95_time_ms", s.requestP95Ms);
    out += ',';
    time("p99_time_ms", s.requestP99Ms);
    out += "},\"batches\":{";
    count("total", s.batchesTotal);
    out += ',';
    count("successful", s.batchesSuccessful);
    out += ',';
    count("failed", s.batchesFailed);
    out += ',';
    time("avg_time_ms", s.batchAvgMs);
    out += ',';
    time("p50_time_ms", s.batchP50Ms);
    out += ',';
    time("p95_time_ms", s.batchP95Ms);
    out += ',';
    time("p99_time_ms", s.batchP99Ms);
    out += "},";
    count("queued", s.queued);
    out += ',';
    count("in_flight", s.inFlight);
    out += ',';
    count("relayed", s.relayed);
    out += ',';
    count("sync_fallback", s.syncFallback);
    out += ',';
    count("cache_hits", s.cacheHits);
    out += ',';
    count("streamed", s.streamed);
    out += ',';
    count("waiting_streams", s.waitingStreams);
    out += ',';
    count("waiting_for_quota", s.waitingForQuota);
    out += ",\"usage\":{\"since_start\":" + accounting::totalsJson(s.usageSinceStart.toRow()) +
           ",\"all_time\":" + accounting::totalsJson(s.usageAllTime.toRow()) + "}";
    out += ",\"queues\":[";
    for (qsizetype i = 0; i < queues.size(); ++i) {
        const StatsQueue &q = queues.at(i);
        out += (i > 0 ? ",{\"provider\":" : "{\"provider\":") + json::quoted(q.provider) +
               ",\"model\":" + json::quoted(q.model) + ',';
        count("limit_tokens", quint64(qMax<qint64>(0, q.limitTokens)));
        out += ',';
        count("enqueued_tokens", quint64(qMax<qint64>(0, q.enqueuedTokens)));
        out += '}';
    }
    out += "]";
    out += ",\"batch_list\":[";
    for (qsizetype i = 0; i < batches.size(); ++i) {
        const StatsBatch &b = batches.at(i);
        if (i > 0)
            out += ',';
        out += "{\"id\":" + json::quoted(b.id) + ",\"batch_id\":" + json::quoted(b.batchId) +
               ",\"provider\":" + json::quoted(b.provider) +
               ",\"endpoint\":" + json::quoted(b.endpoint) + ",\"model\":" + json::quoted(b.model) +
               ",\"status\":" + json::quoted(b.status) +
               ",\"active\":" + (b.active ? "true" : "false") + ',';
        count("requests", quint64(qMax(0, b.total)));
        out += ',';
        count("completed", quint64(qMax(0, b.completed)));
        out += ',';
        count("failed", quint64(qMax(0, b.failed)));
        out += ",\"usage\":" + accounting::totalsJson(b.usage) + '}';
    }
    out += "]}";
    return out;
}

UsageTotals UsageTotals::of(const accounting::LedgerRow &row) {
    return UsageTotals{row.requests,
                       row.requestsWithoutUsage,
                       row.input,
                       row.cachedInput,
                       row.cacheWriteInput,
                       row.output,
                       row.reasoning,
                       row.paid,
                       row.list,
                       row.saved,
                       row.unknownCost};
}

accounting::LedgerRow UsageTotals::toRow() const {
    accounting::LedgerRow row;
    row.requests = requests;
    row.requestsWithoutUsage = requestsWithoutUsage;
    row.input = input;
    row.cachedInput = cachedInput;
    row.cacheWriteInput = cacheWriteInput;
    row.output = output;
    row.reasoning = reasoning;
    row.paid = paidPicos;
    row.list = listPicos;
    row.saved = savedPicos;
    row.unknownCost = unknownCost;
    return row;
}

void Stats::recordUsage(const accounting::LedgerRow &row) {
    const std::lock_guard lock(m_mutex);
    m_usageSinceStart.add(row);
}

void Stats::setUsageBeforeStart(const accounting::LedgerRow &total) {
    const std::lock_guard lock(m_mutex);
    m_usageBeforeStart = total;
}

} // namespace llmproxy
