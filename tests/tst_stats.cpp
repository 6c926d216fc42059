// SPDX-License-Identifier: GPL-3.0-or-later
#include "stats/stats.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QList>
#include <QTest>
#include <QVariant>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

using namespace llmproxy;

static_assert(std::is_trivially_copyable_v<StatsSnapshot>, "StatsSnapshot must stay a plain value");

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Nearest rank over an explicit sample set, the definition the histogram must follow.
double exactPercentile(std::vector<double> samples, double p) {
    std::sort(samples.begin(), samples.end());
    const auto n = static_cast<double>(samples.size());
    const auto rank = std::max(1.0, std::ceil(p * n / 100.0));
    return samples[static_cast<std::size_t>(rank) - 1];
}

bool withinRelative(double actual, double expected, double tolerance) {
    if (expected == 0) {
        return actual == 0;
    }
    return std::abs(actual - expected) <= tolerance * std::abs(expected);
}

QList<double> range(int from, int to, double scale = 1.0) {
    QList<double> out;
    for (int i = from; i <= to; ++i) {
        out.append(i * scale);
    }
    return out;
}

} // namespace

class TestStats final : public QObject {
    Q_OBJECT

private slots:
    void percentileKnownSets_data();
    void percentileKnownSets();
    void empty();
    void singleSample_data();
    void singleSample();
    void meanIsExact();
    void percentileOrderDoesNotMatter();
    void relativeErrorAcrossRange_data();
    void relativeErrorAcrossRange();
    void relativeErrorSweep();
    void hugeAndTinyValues();
    void invalidSamples();
    void percentileArgumentClamped();
    void boundedMemory();
    void randomDistributionMatchesExact();
    void clear();

    void requestCounting_data();
    void requestCounting();
    void batchCounting();
    void gaugesAndRelayed();
    void syncFallbackCounter();
    void concurrentRecordingLosesNothing();
    void snapshotIsRegisteredValue();

    void jsonExactText();
    void jsonListsEachLimitedQueue();
    void jsonEmpty();
    void jsonNumbers_data();
    void jsonNumbers();
    void jsonNeverNonFinite();
    void jsonParses();
    void jsonListsEachBatchWithItsProvider();
};

void TestStats::percentileKnownSets_data() {
    QTest::addColumn<QList<double>>("samples");
    QTest::addColumn<double>("p");
    QTest::addColumn<double>("expected");
    QTest::addColumn<double>("tolerance"); // relative; 0 = exact

    const QList<double> four{1, 2, 3, 4};
    QTest::newRow("{1..4} p0") << four << 0.0 << 1.0 << 0.0;
    QTest::newRow("{1..4} p25") << four << 25.0 << 1.0 << 0.0;
    QTest::newRow("{1..4} p26") << four << 26.0 << 2.0 << 0.0;
    QTest::newRow("{1..4} p50") << four << 50.0 << 2.0 << 0.0;
    QTest::newRow("{1..4} p51") << four << 51.0 << 3.0 << 0.0;
    QTest::newRow("{1..4} p75") << four << 75.0 << 3.0 << 0.0;
    QTest::newRow("{1..4} p95") << four << 95.0 << 4.0 << 0.0;
    QTest::newRow("{1..4} p100") << four << 100.0 << 4.0 << 0.0;
    QTest::newRow("{4,3,2,1} p50") << QList<double>{4, 3, 2, 1} << 50.0 << 2.0 << 0.0;
    QTest::newRow("{5,1,5} p50") << QList<double>{5, 1, 5} << 50.0 << 5.0 << 0.0;
    QTest::newRow("{10,20} p50") << QList<double>{10, 20} << 50.0 << 10.0 << 0.0;
    QTest::newRow("{10,20} p50.1") << QList<double>{10, 20} << 50.1 << 20.0 << 0.0;
    QTest::newRow("1..20 p95") << range(1, 20) << 95.0 << 19.0 << 0.0;
    QTest::newRow("1..64 p50 (last exact size)") << range(1, 64) << 50.0 << 32.0 << 0.0;
    // Beyond the exact buffer: the histogram answers within 1%.
    QTest::newRow("1..65 p50") << range(1, 65) << 50.0 << 33.0 << 0.01;
    QTest::newRow("1..100 p1") << range(1, 100) << 1.0 << 1.0 << 0.0; // rank 1 is the exact min
    QTest::newRow("1..100 p50") << range(1, 100) << 50.0 << 50.0 << 0.01;
    QTest::newRow("1..100 p95") << range(1, 100) << 95.0 << 95.0 << 0.01;
    QTest::newRow("1..100 p99") << range(1, 100) << 99.0 << 99.0 << 0.01;
    QTest::newRow("1..100 p100") << range(1, 100) << 100.0 << 100.0 << 0.0; // exact max
    QTest::newRow("1..1000 p50") << range(1, 1000) << 50.0 << 500.0 << 0.01;
    QTest::newRow("1..1000 p99") << range(1, 1000) << 99.0 << 990.0 << 0.01;
    QTest::newRow("1..1000 p99.9") << range(1, 1000) << 99.9 << 999.0 << 0.01;
    QTest::newRow("1..1000 p12.3") << range(1, 1000) << 12.3 << 123.0 << 0.01;
    QTest::newRow("0.01..10 ms p50") << range(1, 1000, 0.01) << 50.0 << 5.0 << 0.01;
    QTest::newRow("seconds p95") << range(1, 200, 1000.0) << 95.0 << 190000.0 << 0.01;
}

void TestStats::percentileKnownSets() {
    QFETCH(QList<double>, samples);
    QFETCH(double, p);
    QFETCH(double, expected);
    QFETCH(double, tolerance);

    LatencyHistogram h;
    for (double v : samples) {
        h.record(v);
    }
    QCOMPARE(h.count(), static_cast<quint64>(samples.size()));
    const double actual = h.percentile(p);
    if (tolerance == 0) {
        QCOMPARE(actual, expected);
    } else {
        QVERIFY2(withinRelative(actual, expected, tolerance),
                 qPrintable(QStringLiteral("got %1, want %2").arg(actual).arg(expected)));
    }
    const auto [lo, hi] = std::minmax_element(samples.cbegin(), samples.cend());
    QVERIFY(actual >= *lo && actual <= *hi);
}

void TestStats::empty() {
    LatencyHistogram h;
    QCOMPARE(h.count(), quint64{0});
    QCOMPARE(h.mean(), 0.0);
    QCOMPARE(h.min(), 0.0);
    QCOMPARE(h.max(), 0.0);
    for (double p : {0.0, 50.0, 95.0, 99.0, 100.0}) {
        QCOMPARE(h.percentile(p), 0.0);
    }
}

void TestStats::singleSample_data() {
    QTest::addColumn<double>("value");
    QTest::newRow("zero") << 0.0;
    QTest::newRow("sub-range") << 0.003;
    QTest::newRow("one ms") << 1.0;
    QTest::newRow("odd") << 1234.5678;
    QTest::newRow("a day") << 86400000.0;
    QTest::newRow("above range") << 5e12;
}

void TestStats::singleSample() {
    QFETCH(double, value);
    LatencyHistogram h;
    h.record(value);
    QCOMPARE(h.count(), quint64{1});
    QCOMPARE(h.mean(), value);
    QCOMPARE(h.min(), value);
    QCOMPARE(h.max(), value);
    for (double p : {0.0, 1.0, 50.0, 95.0, 99.0, 100.0}) {
        QCOMPARE(h.percentile(p), value);
    }
}

void TestStats::meanIsExact() {
    LatencyHistogram h;
    double sum = 0;
    for (int i = 1; i <= 10000; ++i) {
        const double v = 1.0 + (i % 7) * 0.3;
        h.record(v);
        sum += v;
    }
    QCOMPARE(h.mean(), sum / 10000.0);
}

void TestStats::percentileOrderDoesNotMatter() {
    // The same multiset in two orders gives the same answers, both below and above the exact
    // buffer size.
    for (int n : {10, 64, 65, 500}) {
        LatencyHistogram up;
        LatencyHistogram down;
        for (int i = 1; i <= n; ++i) {
            up.record(i * 1.5);
            down.record((n + 1 - i) * 1.5);
        }
        for (double p : {10.0, 50.0, 95.0, 99.0}) {
            QCOMPARE(up.percentile(p), down.percentile(p));
        }
    }
}

void TestStats::relativeErrorAcrossRange_data() {
    QTest::addColumn<double>("value");
    for (double v :
         {0.01, 0.0137, 0.1, 1.0, 1.005, 1.5, 2.0, 999.9, 1000.0, 12345.678, 3.6e6, 8.6e8}) {
        QTest::newRow(qPrintable(QString::number(v))) << v;
    }
}

void TestStats::relativeErrorAcrossRange() {
    // Many copies of `value` between a far-away min and max: the median comes from the value's
    // bucket, not from the exact min/max clamping.
    QFETCH(double, value);
    LatencyHistogram h;
    h.record(0.0001);
    h.record(1e10);
    for (int i = 0; i < 100; ++i) {
        h.record(value);
    }
    const double p50 = h.percentile(50);
    QVERIFY2(withinRelative(p50, value, 0.01),
             qPrintable(QStringLiteral("got %1 for %2").arg(p50).arg(value)));
}

void TestStats::relativeErrorSweep() {
    // Every value from 0.01 ms to 10 days (log-spaced, 20,000 points) comes back within 1%.
    constexpr int kPoints = 20000;
    double worst = 0;
    for (int i = 0; i <= kPoints; ++i) {
        const double value = 0.01 * std::pow(864e8, static_cast<double>(i) / kPoints);
        LatencyHistogram h;
        h.record(0.0);
        h.record(1e12);
        for (std::size_t k = 0; k < LatencyHistogram::kExactSamples; ++k) {
            h.record(value);
        }
        const double error = std::abs(h.percentile(50) - value) / value;
        worst = std::max(worst, error);
    }
    QVERIFY2(worst < 0.01, qPrintable(QString::number(worst)));
    QVERIFY2(worst > 0, "the sweep must go through the buckets, not the exact samples");
}

void TestStats::hugeAndTinyValues() {
    // Far above and below the bucket range: the end buckets take them, percentiles stay within
    // [min, max] and finite, min/max/mean stay exact.
    LatencyHistogram h;
    for (int i = 0; i < 100; ++i) {
        h.record(1e-6);
        h.record(0.0);
        h.record(1e15);
        h.record(3e16);
    }
    QCOMPARE(h.count(), quint64{400});
    QCOMPARE(h.min(), 0.0);
    QCOMPARE(h.max(), 3e16);
    QCOMPARE(h.mean(), (1e-6 + 1e15 + 3e16) * 100 / 400);
    for (double p : {0.0, 10.0, 25.0, 26.0, 50.0, 51.0, 75.0, 76.0, 99.0, 100.0}) {
        const double v = h.percentile(p);
        QVERIFY(std::isfinite(v));
        QVERIFY(v >= h.min() && v <= h.max());
    }
    // The low half is below 0.01 ms, the high half is above 10 days.
    QVERIFY(h.percentile(50) < LatencyHistogram::kLowestMs);
    QVERIFY(h.percentile(51) >= 1e15);
    QCOMPARE(h.percentile(100), 3e16);

    // The largest finite double neither overflows a bucket index nor produces infinity.
    LatencyHistogram big;
    big.record(std::numeric_limits<double>::max());
    big.record(1.0);
    QCOMPARE(big.percentile(100), std::numeric_limits<double>::max());
    QVERIFY(std::isfinite(big.mean()));
}

void TestStats::invalidSamples() {
    LatencyHistogram h;
    h.record(kNaN);
    h.record(kInf);
    h.record(-kInf);
    QCOMPARE(h.count(), quint64{0});
    h.record(-5.0); // clock skew: counts as 0
    h.record(10.0);
    QCOMPARE(h.count(), quint64{2});
    QCOMPARE(h.min(), 0.0);
    QCOMPARE(h.mean(), 5.0);
    QCOMPARE(h.percentile(50), 0.0);
}

void TestStats::percentileArgumentClamped() {
    LatencyHistogram h;
    for (double v : {1.0, 2.0, 3.0}) {
        h.record(v);
    }
    QCOMPARE(h.percentile(-10), 1.0);
    QCOMPARE(h.percentile(kNaN), 1.0);
    QCOMPARE(h.percentile(250), 3.0);
}

void TestStats::boundedMemory() {
    LatencyHistogram h;
    const std::size_t buckets = h.bucketCount();
    // 0.01 ms .. 10 days with ratio 1.01 needs about 2,530 buckets; make sure it is that order.
    QVERIFY(buckets > 2000 && buckets < 3000);

    // 1,000,000 samples: 0.01, 0.02, ..., 10,000 ms, in a scrambled order.
    constexpr quint64 kSamples = 1000000;
    for (quint64 i = 0; i < kSamples; ++i) {
        const quint64 k = (i * 7919) % kSamples + 1; // 7919 is prime: a permutation of 1..N
        h.record(static_cast<double>(k) * 0.01);
    }
    QCOMPARE(h.count(), kSamples);
    QCOMPARE(h.bucketCount(), buckets);
    QCOMPARE(sizeof(h), sizeof(LatencyHistogram));
    QCOMPARE(h.min(), 0.01);
    QCOMPARE(h.max(), 10000.0);
    QVERIFY(withinRelative(h.mean(), (kSamples + 1) * 0.01 / 2, 1e-9));
    for (double p : {1.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9}) {
        const double expected = p * kSamples / 100.0 * 0.01;
        const double actual = h.percentile(p);
        QVERIFY2(
            withinRelative(actual, expected, 0.01),
            qPrintable(QStringLiteral("p%1: got %2, want %3").arg(p).arg(actual).arg(expected)));
    }
}

void TestStats::randomDistributionMatchesExact() {
    // A long-tailed (log-normal) distribution, compared with the exact nearest-rank answers.
    std::mt19937_64 rng(12345);
    std::lognormal_distribution<double> dist(std::log(2000.0), 1.5);
    std::vector<double> samples;
    samples.reserve(200000);
    LatencyHistogram h;
    for (int i = 0; i < 200000; ++i) {
        const double v = dist(rng);
        samples.push_back(v);
        h.record(v);
    }
    for (double p : {0.0, 1.0, 25.0, 50.0, 75.0, 95.0, 99.0, 99.99, 100.0}) {
        const double expected = exactPercentile(samples, p);
        const double actual = h.percentile(p);
        QVERIFY2(
            withinRelative(actual, expected, 0.01),
            qPrintable(QStringLiteral("p%1: got %2, want %3").arg(p).arg(actual).arg(expected)));
    }
}

void TestStats::clear() {
    LatencyHistogram h;
    for (int i = 0; i < 1000; ++i) {
        h.record(i);
    }
    h.clear();
    QCOMPARE(h.count(), quint64{0});
    QCOMPARE(h.mean(), 0.0);
    QCOMPARE(h.percentile(50), 0.0);
    h.record(7.0);
    h.record(9.0);
    QCOMPARE(h.min(), 7.0);
    QCOMPARE(h.percentile(50), 7.0);
    QCOMPARE(h.percentile(100), 9.0);
}

void TestStats::requestCounting_data() {
    QTest::addColumn<int>("status");
    QTest::addColumn<bool>("synthesized");
    QTest::addColumn<bool>("successful");
    QTest::addColumn<bool>("countsAsSynthesized");

    QTest::newRow("200") << 200 << false << true << false;
    QTest::newRow("201") << 201 << false << true << false;
    QTest::newRow("299") << 299 << false << true << false;
    QTest::newRow("199") << 199 << false << false << false;
    QTest::newRow("300") << 300 << false << false << false;
    QTest::newRow("400") << 400 << false << false << false;
    QTest::newRow("429 upstream") << 429 << false << false << false;
    QTest::newRow("500 upstream") << 500 << false << false << false;
    QTest::newRow("502 synthesized") << 502 << true << false << true;
    QTest::newRow("504 synthesized") << 504 << true << false << true;
    QTest::newRow("400 synthesized") << 400 << true << false << true;
    QTest::newRow("0 synthesized") << 0 << true << false << true;
    QTest::newRow("200 synthesized is no error") << 200 << true << true << false;
}

void TestStats::requestCounting() {
    QFETCH(int, status);
    QFETCH(bool, synthesized);
    QFETCH(bool, successful);
    QFETCH(bool, countsAsSynthesized);

    Stats stats;
    stats.recordRequest(status, synthesized, 10.0);
    const StatsSnapshot s = stats.snapshot();
    QCOMPARE(s.requestsTotal, quint64{1});
    QCOMPARE(s.requestsSuccessful, quint64{successful ? 1u : 0u});
    QCOMPARE(s.requestsFailed, quint64{successful ? 0u : 1u});
    QCOMPARE(s.synthesizedErrors, quint64{countsAsSynthesized ? 1u : 0u});
    QCOMPARE(s.requestAvgMs, 10.0);
    QCOMPARE(s.batchesTotal, quint64{0});
}

void TestStats::batchCounting() {
    Stats stats;
    stats.recordBatch(true, 1000);
    stats.recordBatch(false, 2000);
    stats.recordBatch(false, 3000);
    const StatsSnapshot s = stats.snapshot();
    QCOMPARE(s.batchesTotal, quint64{3});
    QCOMPARE(s.batchesSuccessful, quint64{1});
    QCOMPARE(s.batchesFailed, quint64{2});
    QCOMPARE(s.batchAvgMs, 2000.0);
    QCOMPARE(s.batchP50Ms, 2000.0);
    QCOMPARE(s.batchP99Ms, 3000.0);
    QCOMPARE(s.requestsTotal, quint64{0}); // batches do not touch request counters

    // Mixed requests: total is always successful + failed, synthesized a subset of failed.
    Stats mixed;
    for (int i = 0; i < 10; ++i) {
        mixed.recordRequest(200, false, 1);
        mixed.recordRequest(500, i % 2 == 0, 1);
        mixed.recordRequest(200, true, 1);
    }
    const StatsSnapshot m = mixed.snapshot();
    QCOMPARE(m.requestsTotal, quint64{30});
    QCOMPARE(m.requestsSuccessful, quint64{20});
    QCOMPARE(m.requestsFailed, quint64{10});
    QCOMPARE(m.synthesizedErrors, quint64{5});
    QCOMPARE(m.requestsTotal, m.requestsSuccessful + m.requestsFailed);
    QVERIFY(m.synthesizedErrors <= m.requestsFailed);
}

void TestStats::gaugesAndRelayed() {
    Stats stats;
    stats.setQueued(12);
    stats.setInFlight(4);
    stats.recordRelayed();
    stats.recordRelayed();
    stats.setQueued(11); // a gauge: replaced, not added
    StatsSnapshot s = stats.snapshot();
    QCOMPARE(s.queued, quint64{11});
    QCOMPARE(s.inFlight, quint64{4});
    QCOMPARE(s.relayed, quint64{2});
    QCOMPARE(s.requestsTotal, quint64{0}); // relayed calls are not batched requests
    QCOMPARE(s.syncFallback, quint64{0});
}

// The core records on its thread while every I/O thread's front end counts relayed calls and
// reads snapshots for GET /stats: nothing may be lost or torn.
void TestStats::concurrentRecordingLosesNothing() {
    Stats stats;
    constexpr int PerThread = 200'000;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&stats, &go, t] {
            while (!go)
                std::this_thread::yield();
            for (int i = 0; i < PerThread; ++i) {
                if (t == 0)
                    stats.recordRequest(200, false, 1.0);
                else
                    stats.recordRelayed();
            }
        });
    }
    std::atomic<bool> torn{false};
    std::thread reader([&stats, &go, &torn] {
        while (!go)
            std::this_thread::yield();
        for (int i = 0; i < 2000; ++i) {
            const StatsSnapshot s = stats.snapshot();
            if (s.requestsTotal != s.requestsSuccessful + s.requestsFailed ||
                s.requestsSuccessful > quint64(PerThread))
                torn = true;
        }
    });
    go = true;
    for (std::thread &thread : threads)
        thread.join();
    reader.join();
    QVERIFY(!torn);
    const StatsSnapshot s = stats.snapshot();
    QCOMPARE(s.requestsSuccessful, quint64(PerThread));
    QCOMPARE(s.relayed, quint64(2 * PerThread));
}

void TestStats::syncFallbackCounter() {
    Stats stats;
    QCOMPARE(stats.snapshot().syncFallback, quint64{0});
    // A fallback request is answered like any other (recordRequest) and counted once more here.
    stats.recordRequest(200, false, 5000);
    stats.recordSyncFallback();
    stats.recordRequest(429, false, 6000);
    stats.recordSyncFallback();
    stats.recordRequest(200, false, 10);
    const StatsSnapshot s = stats.snapshot();
    QCOMPARE(s.syncFallback, quint64{2});
    QCOMPARE(s.requestsTotal, quint64{3});
    QCOMPARE(s.requestsSuccessful, quint64{2});
    QCOMPARE(s.requestsFailed, quint64{1});
    QCOMPARE(s.synthesizedErrors, quint64{0});
    QCOMPARE(s.relayed, quint64{0});
    QVERIFY(Stats::toJson(s).contains(
        R"("relayed":0,"sync_fallback":2,"cache_hits":0,"streamed":0,"waiting_streams":0,"waiting_for_quota":0,"usage":{)"));
}

void TestStats::snapshotIsRegisteredValue() {
    QVERIFY(QMetaType::fromType<StatsSnapshot>().isValid());
    StatsSnapshot s;
    s.requestsTotal = 3;
    s.batchP99Ms = 1.5;
    s.relayed = 9;
    s.syncFallback = 4;
    const QVariant v = QVariant::fromValue(s);
    QVERIFY(v.canConvert<StatsSnapshot>());
    const auto back = v.value<StatsSnapshot>();
    QCOMPARE(back.requestsTotal, quint64{3});
    QCOMPARE(back.batchP99Ms, 1.5);
    QCOMPARE(back.relayed, quint64{9});
    QCOMPARE(back.syncFallback, quint64{4});
}

void TestStats::jsonExactText() {
    Stats stats;
    stats.recordRequest(200, false, 100);
    stats.recordRequest(200, false, 200);
    stats.recordRequest(502, true, 300);
    stats.recordRequest(404, false, 400.5);
    stats.recordBatch(true, 1000.5);
    stats.recordBatch(false, 2000.25);
    stats.recordBatch(true, 3000.125);
    stats.setQueued(7);
    stats.setInFlight(3);
    stats.recordRelayed();
    stats.recordRelayed();
    stats.recordRelayed();
    stats.recordSyncFallback();
    stats.recordSyncFallback();
    // Three streams waited; one was answered, one hung up, one still waits.
    stats.recordStreamStarted();
    stats.recordStreamStarted();
    stats.recordStreamStarted();
    stats.recordStreamEnded(StreamEnd::Replayed);
    stats.recordStreamEnded(StreamEnd::ClientGone);

    // requests: mean 1000.5 / 4 = 250.125; p50 = rank 2; p95, p99 = rank 4.
    // batches: mean 6000.875 / 3 = 2000.29166... -> 2000.292; p50 = rank 2; p95, p99 = rank 3.
    const QByteArray expected = QByteArrayLiteral(
        R"({"requests":{"total":4,"successful":2,"failed":2,"synthesized_error_responses":1,)"
        R"("avg_time_ms":250.125,"p50_time_ms":200,"p95_time_ms":400.5,"p99_time_ms":400.5},)"
        R"("batches":{"total":3,"successful":2,"failed":1,"avg_time_ms":2000.292,)"
        R"("p50_time_ms":2000.25,"p95_time_ms":3000.125,"p99_time_ms":3000.125},)"
        R"("queued":7,"in_flight":3,"relayed":3,"sync_fallback":2,"cache_hits":0,"streamed":1,"waiting_streams":1,"waiting_for_quota":0)"
        R"(,"usage":{"since_start":{"requests":0,"requests_without_usage":0,"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":0,"list_cost_usd":0,"saved_usd":0,"unknown_cost_requests":0},"all_time":{"requests":0,"requests_without_usage":0,"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":0,"list_cost_usd":0,"saved_usd":0,"unknown_cost_requests":0}},"queues":[],"batch_list":[]})");
    QCOMPARE(Stats::toJson(stats.snapshot()), expected);
}

void TestStats::jsonListsEachBatchWithItsProvider() {
    Stats stats;
    StatsBatch gemini{"b2",
                      "batches/xyz",
                      "gemini",
                      "/v1/chat/completions",
                      "gemini-2.5-flash",
                      "running",
                      true,
                      4,
                      1,
                      0};
    StatsBatch openai{
        "b1", "batch_abc", "openai", "/v1/chat/completions", "gpt-4o-mini", "completed", false,
        2,    2,           0};
    // Its lines' tokens and cost, as the ledger counted them (exact decimals).
    openai.usage.requests = 2;
    openai.usage.input = 6;
    openai.usage.output = 9;
    openai.usage.paid = 3'150'000;
    openai.usage.list = 6'300'000;
    openai.usage.saved = 3'150'000;
    const char *noUsage =
        R"({"requests":0,"requests_without_usage":0,"input_tokens":0,"cached_input_tokens":0,)"
        R"("cache_write_input_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":0,)"
        R"("list_cost_usd":0,"saved_usd":0,"unknown_cost_requests":0})";
    stats.setBatchList({gemini, openai});
    const QByteArray json = Stats::toJson(stats.snapshot(), stats.batchList());
    const QByteArray expected =
        R"(,"batch_list":[{"id":"b2","batch_id":"batches/xyz","provider":"gemini",)"
        R"("endpoint":"/v1/chat/completions","model":"gemini-2.5-flash","status":"running",)"
        R"("active":true,"requests":4,"completed":1,"failed":0,"usage":)" +
        QByteArray(noUsage) +
        R"(},)"
        R"({"id":"b1","batch_id":"batch_abc","provider":"openai",)"
        R"("endpoint":"/v1/chat/completions","model":"gpt-4o-mini","status":"completed",)"
        R"("active":false,"requests":2,"completed":2,"failed":0,"usage":)"
        R"({"requests":2,"requests_without_usage":0,"input_tokens":6,)"
        R"("cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":9,)"
        R"("reasoning_tokens":0,"cost_usd":0.00000315,"list_cost_usd":0.0000063,)"
        R"("saved_usd":0.00000315,"unknown_cost_requests":0}}]})";
    QVERIFY2(json.endsWith(expected), json.constData());
    // Bounded: only the first MaxListedBatches are kept.
    stats.setBatchList(QList<StatsBatch>(Stats::MaxListedBatches + 10, openai));
    QCOMPARE(stats.batchList().size(), Stats::MaxListedBatches);
}

void TestStats::jsonListsEachLimitedQueue() {
    Stats stats;
    stats.setQuota(3, {StatsQueue{"openai", "gpt-4o-mini", 2'000'000, 630},
                       StatsQueue{"azure", "my \"deployment\"", 90'000, 0}});
    QCOMPARE(stats.snapshot().waitingForQuota, 3u);
    const QByteArray json = Stats::toJson(stats.snapshot(), {}, stats.queues());
    QVERIFY2(json.contains(R"("waiting_for_quota":3,"usage":{)"), json.constData());
    QVERIFY2(json.contains(
                 R"("queues":[{"provider":"openai","model":"gpt-4o-mini","limit_tokens":2000000,)"
                 R"("enqueued_tokens":630},{"provider":"azure","model":"my \"deployment\"",)"
                 R"("limit_tokens":90000,"enqueued_tokens":0}],"batch_list":[])"),
             json.constData());
    QJsonParseError error;
    QJsonDocument::fromJson(json, &error);
    QCOMPARE(error.error, QJsonParseError::NoError);
}

void TestStats::jsonEmpty() {
    const QByteArray expected = QByteArrayLiteral(
        R"({"requests":{"total":0,"successful":0,"failed":0,"synthesized_error_responses":0,)"
        R"("avg_time_ms":0,"p50_time_ms":0,"p95_time_ms":0,"p99_time_ms":0},)"
        R"("batches":{"total":0,"successful":0,"failed":0,"avg_time_ms":0,)"
        R"("p50_time_ms":0,"p95_time_ms":0,"p99_time_ms":0},)"
        R"("queued":0,"in_flight":0,"relayed":0,"sync_fallback":0,"cache_hits":0,"streamed":0,"waiting_streams":0,"waiting_for_quota":0)"
        R"(,"usage":{"since_start":{"requests":0,"requests_without_usage":0,"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":0,"list_cost_usd":0,"saved_usd":0,"unknown_cost_requests":0},"all_time":{"requests":0,"requests_without_usage":0,"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":0,"list_cost_usd":0,"saved_usd":0,"unknown_cost_requests":0}},"queues":[],"batch_list":[]})");
    QCOMPARE(Stats::toJson(Stats().snapshot()), expected);
    QCOMPARE(Stats::toJson(StatsSnapshot{}), expected);
}

void TestStats::jsonNumbers_data() {
    QTest::addColumn<double>("value");
    QTest::addColumn<QByteArray>("text");

    QTest::newRow("zero") << 0.0 << QByteArray("0");
    QTest::newRow("negative zero") << -0.0 << QByteArray("0");
    QTest::newRow("integer") << 42.0 << QByteArray("42");
    QTest::newRow("half") << 1.5 << QByteArray("1.5");
    QTest::newRow("three decimals") << 0.125 << QByteArray("0.125");
    QTest::newRow("rounded up") << 1234.5678 << QByteArray("1234.568");
    QTest::newRow("rounded down") << 2.0001 << QByteArray("2");
    QTest::newRow("third") << 1.0 / 3.0 << QByteArray("0.333");
    QTest::newRow("below a microsecond") << 0.0004 << QByteArray("0");
    QTest::newRow("ten days") << 864e6 << QByteArray("864000000");
    QTest::newRow("no exponent below 1e21") << 1e20 << QByteArray("100000000000000000000");
    QTest::newRow("exponent from 1e21") << 1e21 << QByteArray("1e+21");
    QTest::newRow("nan") << kNaN << QByteArray("0");
    QTest::newRow("+inf") << kInf << QByteArray("0");
    QTest::newRow("-inf") << -kInf << QByteArray("0");
}

void TestStats::jsonNumbers() {
    QFETCH(double, value);
    QFETCH(QByteArray, text);
    StatsSnapshot s;
    s.requestAvgMs = value;
    s.batchP99Ms = value;
    const QByteArray json = Stats::toJson(s);
    const QByteArray avg = QByteArrayLiteral("{\"total\":0,\"successful\":0,\"failed\":0,"
                                             "\"synthesized_error_responses\":0,\"avg_time_ms\":") +
                           text + ',';
    QVERIFY2(json.contains(avg), json.constData());
    const QByteArray p99 =
        QByteArrayLiteral("\"p99_time_ms\":") + text + QByteArrayLiteral("},\"queued\"");
    QVERIFY2(json.contains(p99), json.constData());
    QJsonParseError error;
    QVERIFY(QJsonDocument::fromJson(json, &error).isObject());
    QCOMPARE(error.error, QJsonParseError::NoError);
}

void TestStats::jsonNeverNonFinite() {
    StatsSnapshot s;
    s.requestAvgMs = kNaN;
    s.requestP50Ms = kInf;
    s.requestP95Ms = -kInf;
    s.requestP99Ms = kNaN;
    s.batchAvgMs = kInf;
    s.batchP50Ms = kNaN;
    s.batchP95Ms = kNaN;
    s.batchP99Ms = kInf;
    const QByteArray json = Stats::toJson(s);
    QVERIFY2(!json.contains("nan") && !json.contains("inf") && !json.contains("NaN") &&
                 !json.contains("Inf"),
             json.constData());
    QVERIFY(QJsonDocument::fromJson(json).isObject());

    // Through the real path too: huge values summing to more than DBL_MAX.
    Stats stats;
    stats.recordRequest(200, false, std::numeric_limits<double>::max());
    stats.recordRequest(200, false, std::numeric_limits<double>::max());
    const QByteArray json2 = Stats::toJson(stats.snapshot());
    QVERIFY2(!json2.contains("nan") && !json2.contains("inf"), json2.constData());
    QVERIFY(QJsonDocument::fromJson(json2).isObject());
}

void TestStats::jsonParses() {
    Stats stats;
    for (int i = 1; i <= 1000; ++i) {
        stats.recordRequest(i % 10 == 0 ? 500 : 200, i % 20 == 0, i * 3.7);
    }
    stats.recordBatch(true, 60000);
    stats.recordBatch(false, 5000);
    stats.setQueued(5);
    stats.setInFlight(2);
    stats.recordRelayed();
    for (int i = 0; i < 4; ++i)
        stats.recordSyncFallback();
    const StatsSnapshot snap = stats.snapshot();
    const QByteArray json = Stats::toJson(snap);

    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &error);
    QCOMPARE(error.error, QJsonParseError::NoError);
    QVERIFY(doc.isObject());
    const QJsonObject root = doc.object();
    // and "streamed", "waiting_streams" (issue 11), "usage" (issue 10), "batch_list" (issue 12),
    // "cache_hits" (the answer cache), "waiting_for_quota" and "queues" (queue limits)
    QCOMPARE(root.size(), 13);
    const QJsonObject requests = root.value(QLatin1StringView("requests")).toObject();
    const QJsonObject batches = root.value(QLatin1StringView("batches")).toObject();
    QCOMPARE(requests.size(), 8);
    QCOMPARE(batches.size(), 7);
    QCOMPARE(requests.value(QLatin1StringView("total")).toInteger(), 1000);
    QCOMPARE(requests.value(QLatin1StringView("successful")).toInteger(), 900);
    QCOMPARE(requests.value(QLatin1StringView("failed")).toInteger(), 100);
    QCOMPARE(requests.value(QLatin1StringView("synthesized_error_responses")).toInteger(), 50);
    QVERIFY(std::abs(requests.value(QLatin1StringView("avg_time_ms")).toDouble() -
                     snap.requestAvgMs) <= 0.0005);
    QVERIFY(std::abs(requests.value(QLatin1StringView("p99_time_ms")).toDouble() -
                     snap.requestP99Ms) <= 0.0005);
    QVERIFY(withinRelative(snap.requestP99Ms, 990 * 3.7, 0.01));
    QCOMPARE(batches.value(QLatin1StringView("total")).toInteger(), 2);
    QCOMPARE(batches.value(QLatin1StringView("successful")).toInteger(), 1);
    QCOMPARE(batches.value(QLatin1StringView("failed")).toInteger(), 1);
    QCOMPARE(batches.value(QLatin1StringView("p50_time_ms")).toDouble(), 5000.0);
    QCOMPARE(root.value(QLatin1StringView("queued")).toInteger(), 5);
    QCOMPARE(root.value(QLatin1StringView("in_flight")).toInteger(), 2);
    QCOMPARE(root.value(QLatin1StringView("relayed")).toInteger(), 1);
    QCOMPARE(root.value(QLatin1StringView("sync_fallback")).toInteger(), 4);
    // The prototype's fields first, in their order; the additions after them.
    QVERIFY(json.indexOf("\"relayed\"") < json.indexOf("\"sync_fallback\""));
    QVERIFY(
        json.contains(",\"sync_fallback\":4,\"cache_hits\":0,\"streamed\":0,\"waiting_streams\":0,"
                      "\"waiting_for_quota\":0,\"usage\":{"));
    QCOMPARE(root.value(QLatin1StringView("streamed")).toInteger(), 0);
    QCOMPARE(root.value(QLatin1StringView("waiting_streams")).toInteger(), 0);
}

QTEST_GUILESS_MAIN(TestStats)
#include "tst_stats.moc"
