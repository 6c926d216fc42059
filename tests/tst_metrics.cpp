// SPDX-License-Identifier: GPL-3.0-or-later
// The /metrics registry: exact exposition lines after known records, label escaping and
// folding, the cardinality caps, cumulative histograms, counters that never go down, and the
// process_* metrics.

#include "stats/metrics.h"
#include "stats/stats.h"

#include <QDateTime>
#include <QHash>
#include <QRegularExpression>
#include <QTest>

#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace llmproxy;
using namespace Qt::StringLiterals;
using namespace std::chrono_literals;
using accounting::AccountedRequest;
using accounting::Cost;
using accounting::Route;

namespace {

AccountedRequest answered(Route route, const QByteArray &model, int status = 200,
                          double seconds = 1) {
    AccountedRequest r;
    r.route = route;
    r.endpoint = "/v1/chat/completions";
    r.model = model;
    r.caller = "alice";
    r.provider = "openai";
    r.httpStatus = status;
    r.seconds = seconds;
    return r;
}

Usage usage(qint64 input, qint64 cached, qint64 output, qint64 reasoning) {
    Usage u;
    u.reported = true;
    u.input = input;
    u.cachedInput = cached;
    u.output = output;
    u.reasoning = reasoning;
    return u;
}

Cost cost(accounting::Picos paid, accounting::Picos list) {
    Cost c;
    c.paid = paid;
    c.list = list;
    c.saved = list - paid;
    return c;
}

QList<QByteArray> lines(const QByteArray &text) {
    QList<QByteArray> out = text.split('\n');
    if (!out.isEmpty() && out.last().isEmpty())
        out.removeLast();
    return out;
}

// Every sample line of the exposition: "name{labels}" -> value.
QHash<QByteArray, QByteArray> samples(const QByteArray &text) {
    QHash<QByteArray, QByteArray> out;
    for (const QByteArray &line : lines(text)) {
        if (line.startsWith('#'))
            continue;
        const qsizetype space = line.lastIndexOf(' ');
        out.insert(line.first(space), line.sliced(space + 1));
    }
    return out;
}

// The families whose TYPE is `type`.
QList<QByteArray> familiesOfType(const QByteArray &text, const QByteArray &type) {
    QList<QByteArray> out;
    for (const QByteArray &line : lines(text)) {
        const QList<QByteArray> parts = line.split(' ');
        if (parts.size() == 4 && parts[0] == "#" && parts[1] == "TYPE" && parts[3] == type)
            out.append(parts[2]);
    }
    return out;
}

} // namespace

class tst_Metrics final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void renderAfterRecordsHasTheExactLines() {
        MetricsRegistry metrics;
        AccountedRequest batch = answered(Route::Batch, "gpt-4o-mini", 200, 90);
        batch.usage = usage(1000, 200, 50, 10);
        batch.cost = cost(75'000'000, 150'000'000); // $0.000075 paid, $0.00015 list
        metrics.record(batch);
        metrics.record(batch);
        AccountedRequest relay = answered(Route::Relay, "gpt-4o", 429, 0.2);
        relay.endpoint = "/v1/responses";
        metrics.record(relay); // no usage: counted as such

        const QByteArray text = metrics.render({.queued = 3, .inFlight = 7, .activeBatches = 2});
        const QList<QByteArray> all = lines(text);
        const QList<QByteArray> expected = {
            R"(llm_proxy_requests_total{route="batch",endpoint="/v1/chat/completions",model="gpt-4o-mini",code="200"} 2)",
            R"(llm_proxy_requests_total{route="relay",endpoint="/v1/responses",model="gpt-4o",code="429"} 1)",
            R"(llm_proxy_tokens_total{type="input",route="batch",model="gpt-4o-mini"} 2000)",
            R"(llm_proxy_tokens_total{type="cached_input",route="batch",model="gpt-4o-mini"} 400)",
            R"(llm_proxy_tokens_total{type="output",route="batch",model="gpt-4o-mini"} 100)",
            R"(llm_proxy_tokens_total{type="reasoning",route="batch",model="gpt-4o-mini"} 20)",
            R"(llm_proxy_cost_usd_total{route="batch",model="gpt-4o-mini"} 0.00015)",
            R"(llm_proxy_list_cost_usd_total{route="batch",model="gpt-4o-mini"} 0.0003)",
            R"(llm_proxy_saved_usd_total{route="batch",model="gpt-4o-mini"} 0.00015)",
            R"(llm_proxy_usage_unreported_requests_total{route="relay",model="gpt-4o"} 1)",
            R"(llm_proxy_request_duration_seconds_bucket{route="batch",le="60"} 0)",
            R"(llm_proxy_request_duration_seconds_bucket{route="batch",le="120"} 2)",
            R"(llm_proxy_request_duration_seconds_bucket{route="batch",le="+Inf"} 2)",
            R"(llm_proxy_request_duration_seconds_sum{route="batch"} 180)",
            R"(llm_proxy_request_duration_seconds_count{route="batch"} 2)",
            R"(llm_proxy_request_duration_seconds_bucket{route="relay",le="0.1"} 0)",
            R"(llm_proxy_request_duration_seconds_bucket{route="relay",le="0.25"} 1)",
            R"(llm_proxy_request_duration_seconds_sum{route="relay"} 0.2)",
            "llm_proxy_queued_requests 3",
            "llm_proxy_in_flight_requests 7",
            "llm_proxy_active_batches 2",
        };
        for (const QByteArray &line : expected) {
            if (!all.contains(line))
                QFAIL(QByteArray("missing line: " + line + "\nin:\n" + text).constData());
        }
        // No token or money series for the request that reported no usage, and no unpriced
        // one for the one whose cost was known.
        QVERIFY(!text.contains(R"(llm_proxy_tokens_total{type="input",route="relay")"));
        QVERIFY(!text.contains(R"(llm_proxy_cost_usd_total{route="relay")"));
        QVERIFY(!text.contains("llm_proxy_unpriced_requests_total{"));
        // No caller label anywhere (callers are the ledger's, not a metric's).
        QVERIFY(!text.contains("alice"));
        QVERIFY(text.endsWith('\n'));
    }

    // The streams' gauge and counters (issue 11) come from Stats like the queue's gauges; every
    // outcome is a series from the start, so rate() sees the first one.
    // Queue limits (--queue-limit): requests waiting for room, and each limited queue's limit
    // and estimate, by provider and model (escaped; at most MaxModels queues).
    void queueLimitsHaveGaugesByProviderAndModel() {
        MetricsRegistry metrics;
        const QHash<QByteArray, QByteArray> empty = samples(metrics.render({}));
        QCOMPARE(empty.value("llm_proxy_requests_waiting_for_quota"), QByteArray("0"));
        QVERIFY(!metrics.render({}).contains("llm_proxy_queue_limit_tokens{"));

        Stats stats;
        QList<StatsQueue> queues{{"openai", "gpt-4o-mini", 2'000'000, 630},
                                 {"azure", "my\"deployment", 90'000, 0}};
        for (int i = 0; i < MetricsRegistry::MaxModels + 5; ++i)
            queues.append({"groq", "m" + QByteArray::number(i), 10, 1});
        stats.setQuota(7, queues);
        const QByteArray text = metrics.render(MetricsGauges::of(stats.snapshot(), stats.queues()));
        const QHash<QByteArray, QByteArray> all = samples(text);
        QCOMPARE(all.value("llm_proxy_requests_waiting_for_quota"), QByteArray("7"));
        QCOMPARE(
            all.value(R"(llm_proxy_queue_limit_tokens{provider="openai",model="gpt-4o-mini"})"),
            QByteArray("2000000"));
        QCOMPARE(
            all.value(R"(llm_proxy_queue_enqueued_tokens{provider="openai",model="gpt-4o-mini"})"),
            QByteArray("630"));
        const QByteArray escaped =
            "llm_proxy_queue_limit_tokens{provider=\"azure\",model=\"my\\\"deployment\"}";
        QCOMPARE(all.value(escaped), QByteArray("90000"));
        QCOMPARE(text.count("\nllm_proxy_queue_limit_tokens{"), MetricsRegistry::MaxModels);
    }

    void streamsHaveAGaugeAndCountersByOutcome() {
        MetricsRegistry metrics;
        const QHash<QByteArray, QByteArray> empty = samples(metrics.render({}));
        QCOMPARE(empty.value("llm_proxy_waiting_streams"), QByteArray("0"));
        for (const char *outcome : {"replayed", "error_event", "client_gone", "shutdown"}) {
            QCOMPARE(empty.value("llm_proxy_streams_ended_total{outcome=\"" + QByteArray(outcome) +
                                 "\"}"),
                     QByteArray("0"));
        }
        QCOMPARE(empty.value("llm_proxy_stream_keepalives_total"), QByteArray("0"));

        Stats stats;
        for (int i = 0; i < 9; ++i)
            stats.recordStreamStarted();
        stats.recordStreamEnded(StreamEnd::Replayed);
        stats.recordStreamEnded(StreamEnd::Replayed);
        stats.recordStreamEnded(StreamEnd::ErrorEvent);
        stats.recordStreamEnded(StreamEnd::ClientGone);
        stats.recordStreamEnded(StreamEnd::Shutdown);
        stats.recordStreamKeepAlives(512);
        stats.recordStreamKeepAlives(30);
        const QHash<QByteArray, QByteArray> all =
            samples(metrics.render(MetricsGauges::of(stats.snapshot())));
        QCOMPARE(all.value("llm_proxy_waiting_streams"), QByteArray("4"));
        QCOMPARE(all.value(R"(llm_proxy_streams_ended_total{outcome="replayed"})"),
                 QByteArray("2"));
        QCOMPARE(all.value(R"(llm_proxy_streams_ended_total{outcome="error_event"})"),
                 QByteArray("1"));
        QCOMPARE(all.value(R"(llm_proxy_streams_ended_total{outcome="client_gone"})"),
                 QByteArray("1"));
        QCOMPARE(all.value(R"(llm_proxy_streams_ended_total{outcome="shutdown"})"),
                 QByteArray("1"));
        QCOMPARE(all.value("llm_proxy_stream_keepalives_total"), QByteArray("542"));
        // /stats' streamed counts the answered ones: replayed and error events.
        QCOMPARE(stats.snapshot().streamed, quint64(3));
    }

    void everyFamilyHasHelpAndTypeOnce() {
        MetricsRegistry metrics;
        const QByteArray text = metrics.render({});
        const QList<QByteArray> families = {
            "llm_proxy_requests_total",
            "llm_proxy_tokens_total",
            "llm_proxy_cost_usd_total",
            "llm_proxy_list_cost_usd_total",
            "llm_proxy_saved_usd_total",
            "llm_proxy_unpriced_requests_total",
            "llm_proxy_usage_unreported_requests_total",
            "llm_proxy_request_duration_seconds",
            "llm_proxy_batches_total",
            "llm_proxy_batch_duration_seconds",
            "llm_proxy_queued_requests",
            "llm_proxy_in_flight_requests",
            "llm_proxy_active_batches",
            "llm_proxy_waiting_streams",
            "llm_proxy_streams_ended_total",
            "llm_proxy_stream_keepalives_total",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        };
        const QString all = QString::fromUtf8(text);
        for (const QByteArray &family : families) {
            const QString name = QString::fromLatin1(family);
            QCOMPARE(all.count(QRegularExpression(u"^# HELP "_s + name + u" \\S"_s,
                                                  QRegularExpression::MultilineOption)),
                     1);
            QCOMPARE(all.count(QRegularExpression(u"^# TYPE "_s + name + u" \\S+$"_s,
                                                  QRegularExpression::MultilineOption)),
                     1);
        }
        // Every line is a comment or a sample of a declared family, and a family's samples
        // follow its TYPE line without another family in between.
        QByteArray current;
        const QRegularExpression sampleLine(
            QStringLiteral("^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[^}]*\\})? (\\S+)$"));
        for (const QByteArray &line : lines(text)) {
            if (line.startsWith("# TYPE ")) {
                current = line.split(' ').at(2);
                continue;
            }
            if (line.startsWith('#'))
                continue;
            const QRegularExpressionMatch m = sampleLine.match(QString::fromUtf8(line));
            QVERIFY2(m.hasMatch(), line.constData());
            const QByteArray name = m.captured(1).toUtf8();
            QVERIFY2(name == current || name == current + "_bucket" || name == current + "_sum" ||
                         name == current + "_count",
                     line.constData());
        }
        // The batch histogram is there before any batch ended.
        QVERIFY(text.contains("llm_proxy_batch_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        QVERIFY(text.contains("llm_proxy_batch_duration_seconds_count 0\n"));
    }

    void labelValuesAreEscaped_data() {
        QTest::addColumn<QByteArray>("value");
        QTest::addColumn<QByteArray>("escaped");
        QTest::newRow("plain") << QByteArray("gpt-4o") << QByteArray("gpt-4o");
        QTest::newRow("quote") << QByteArray("a\"b") << QByteArray("a\\\"b");
        QTest::newRow("backslash") << QByteArray("a\\b") << QByteArray("a\\\\b");
        QTest::newRow("newline") << QByteArray("a\nb") << QByteArray("a\\nb");
        QTest::newRow("all") << QByteArray("\\\"\n") << QByteArray("\\\\\\\"\\n");
        QTest::newRow("utf8") << QByteArray("mod\xc3\xa8le") << QByteArray("mod\xc3\xa8le");
    }
    void labelValuesAreEscaped() {
        QFETCH(QByteArray, value);
        QFETCH(QByteArray, escaped);
        QCOMPARE(MetricsRegistry::escapeLabelValue(value), escaped);
    }

    void clientModelNamesAreEscapedOrFolded_data() {
        QTest::addColumn<QByteArray>("model");
        QTest::addColumn<QByteArray>("label");
        QTest::newRow("quote and backslash")
            << QByteArray("we\"ird\\model") << QByteArray("model=\"we\\\"ird\\\\model\"");
        QTest::newRow("utf-8") << QByteArray("mod\xc3\xa8le")
                               << QByteArray("model=\"mod\xc3\xa8le\"");
        QTest::newRow("empty") << QByteArray() << QByteArray("model=\"\"");
        QTest::newRow("newline") << QByteArray("a\nb") << QByteArray("model=\"other\"");
        QTest::newRow("escape") << QByteArray("a\x1b[31mb") << QByteArray("model=\"other\"");
        QTest::newRow("nul") << QByteArray("a\0b", 3) << QByteArray("model=\"other\"");
        QTest::newRow("del") << QByteArray("a\x7f") << QByteArray("model=\"other\"");
        QTest::newRow("c1 control") << QByteArray("a\xc2\x85") << QByteArray("model=\"other\"");
        QTest::newRow("invalid utf-8") << QByteArray("a\xff") << QByteArray("model=\"other\"");
        QTest::newRow("too long") << QByteArray(MetricsRegistry::MaxLabelBytes + 1, 'x')
                                  << QByteArray("model=\"other\"");
        QTest::newRow("longest kept")
            << QByteArray(MetricsRegistry::MaxLabelBytes, 'x')
            << "model=\"" + QByteArray(MetricsRegistry::MaxLabelBytes, 'x') + '"';
    }
    void clientModelNamesAreEscapedOrFolded() {
        QFETCH(QByteArray, model);
        QFETCH(QByteArray, label);
        MetricsRegistry metrics;
        metrics.record(answered(Route::Batch, model));
        const QByteArray text = metrics.render({});
        QVERIFY2(text.contains(QByteArray("llm_proxy_requests_total{route=\"batch\",endpoint=\"/v1/"
                                          "chat/completions\"," +
                                          label + ",code=\"200\"} 1\n")),
                 text.constData());
        // Nothing the client sent breaks a line: one line per sample, all of them well formed.
        for (const QByteArray &line : lines(text))
            QVERIFY2(line.startsWith('#') || line.startsWith("llm_proxy_") ||
                         line.startsWith("process_"),
                     line.constData());
    }

    void distinctModelsAreCappedAndTheRestFolded() {
        MetricsRegistry metrics;
        const int models = int(MetricsRegistry::MaxModels) + 50;
        for (int i = 0; i < models; ++i)
            metrics.record(answered(Route::Batch, "model-" + QByteArray::number(i)));
        // A model seen before the cap keeps its own series afterwards.
        metrics.record(answered(Route::Batch, "model-0"));
        const QByteArray text = metrics.render({});
        const QHash<QByteArray, QByteArray> all = samples(text);
        int series = 0;
        for (auto it = all.cbegin(); it != all.cend(); ++it)
            series += it.key().startsWith("llm_proxy_requests_total{") ? 1 : 0;
        QCOMPARE(series, int(MetricsRegistry::MaxModels) + 1);
        const QByteArray prefix =
            "llm_proxy_requests_total{route=\"batch\",endpoint=\"/v1/chat/completions\",model=\"";
        QCOMPARE(all.value(prefix + "other\",code=\"200\"}"), QByteArray("50"));
        QCOMPARE(all.value(prefix + "model-0\",code=\"200\"}"), QByteArray("2"));
        QCOMPARE(all.value(prefix + "model-199\",code=\"200\"}"), QByteArray("1"));
        QVERIFY(!all.contains(prefix + "model-200\",code=\"200\"}"));
    }

    void requestSeriesAreCappedAcrossLabels() {
        // Within every per-label cap, the combinations still stop at MaxRequestSeries.
        MetricsRegistry metrics;
        int recorded = 0;
        for (int code = 200; code < 600 && recorded < 6000; ++code) {
            for (int m = 0; m < 20; ++m, ++recorded) {
                metrics.record(answered(Route::Relay, "m" + QByteArray::number(m), code));
            }
        }
        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        qsizetype series = 0;
        quint64 total = 0;
        for (auto it = all.cbegin(); it != all.cend(); ++it) {
            if (it.key().startsWith("llm_proxy_requests_total{")) {
                ++series;
                total += it.value().toULongLong();
            }
        }
        QVERIFY2(series <= qsizetype(MetricsRegistry::MaxRequestSeries) + 400,
                 QByteArray::number(series).constData());
        QCOMPARE(total, quint64(recorded));
    }

    void histogramBucketsAreCumulativeWithInfSumAndCount() {
        MetricsRegistry metrics;
        const QList<double> seconds = {0.0625, 0.1, 3, 3, 7200, 100000, -1};
        for (double s : seconds)
            metrics.recordBatch("completed", s);
        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        const auto bucket = [&all](const QByteArray &le) {
            return all.value("llm_proxy_batch_duration_seconds_bucket{le=\"" + le + "\"}");
        };
        QCOMPARE(bucket("0.1"), QByteArray("3")); // 0.0625, 0.1 (le is inclusive), -1 as 0
        QCOMPARE(bucket("0.25"), QByteArray("3"));
        QCOMPARE(bucket("2.5"), QByteArray("3"));
        QCOMPARE(bucket("5"), QByteArray("5"));
        QCOMPARE(bucket("3600"), QByteArray("5"));
        QCOMPARE(bucket("7200"), QByteArray("6"));
        QCOMPARE(bucket("86400"), QByteArray("6"));
        QCOMPARE(bucket("+Inf"), QByteArray("7"));
        QCOMPARE(all.value("llm_proxy_batch_duration_seconds_count"), QByteArray("7"));
        QVERIFY(qFuzzyCompare(all.value("llm_proxy_batch_duration_seconds_sum").toDouble(),
                              107206.1625));
        // Non-decreasing through the whole list of bounds.
        quint64 previous = 0;
        for (double le : MetricsRegistry::DurationBuckets) {
            const quint64 n = bucket(MetricsRegistry::formatDouble(le)).toULongLong();
            QVERIFY(n >= previous);
            previous = n;
        }
        QCOMPARE(all.value(R"(llm_proxy_batches_total{status="completed"})"), QByteArray("7"));
    }

    void batchStatusesAreCounted() {
        MetricsRegistry metrics;
        metrics.recordBatch("completed", 60);
        metrics.recordBatch("failed", 1);
        metrics.recordBatch("completed", 60);
        metrics.recordBatch("bad\nstatus", 1);
        const QByteArray text = metrics.render({});
        QVERIFY(text.contains("llm_proxy_batches_total{status=\"completed\"} 2\n"));
        QVERIFY(text.contains("llm_proxy_batches_total{status=\"failed\"} 1\n"));
        QVERIFY(text.contains("llm_proxy_batches_total{status=\"other\"} 1\n"));
    }

    void unknownCostIsNotAddedButCounted() {
        MetricsRegistry metrics;
        AccountedRequest priced = answered(Route::Batch, "gpt-4o");
        priced.usage = usage(100, 0, 10, 0);
        priced.cost = cost(100, 200);
        metrics.record(priced);
        AccountedRequest unpriced = answered(Route::Batch, "gpt-4o");
        unpriced.usage = usage(100, 0, 10, 0); // no price: cost left unknown
        metrics.record(unpriced);
        AccountedRequest flex = answered(Route::Batch, "gpt-4o"); // list known, paid not
        flex.usage = usage(100, 0, 10, 0);
        flex.cost.list = 1000;
        metrics.record(flex);
        AccountedRequest dearer = answered(Route::Batch, "gpt-4o"); // a negative saving
        dearer.usage = usage(100, 0, 10, 0);
        dearer.cost = cost(300, 200);
        metrics.record(dearer);
        AccountedRequest overflow = answered(Route::Batch, "gpt-4o");
        overflow.usage = usage(100, 0, 10, 0);
        overflow.cost =
            cost(std::numeric_limits<qint64>::max(), std::numeric_limits<qint64>::max());
        metrics.record(overflow);

        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        const QByteArray labels = R"({route="batch",model="gpt-4o"})";
        // 100 + 300 (the dearer one's paid part); the overflow added nothing.
        QCOMPARE(all.value("llm_proxy_cost_usd_total" + labels), QByteArray("0.0000000004"));
        QCOMPARE(all.value("llm_proxy_list_cost_usd_total" + labels), QByteArray("0.0000000014"));
        QCOMPARE(all.value("llm_proxy_saved_usd_total" + labels), QByteArray("0.0000000001"));
        QCOMPARE(all.value("llm_proxy_unpriced_requests_total" + labels), QByteArray("4"));
        QCOMPARE(all.value(R"(llm_proxy_tokens_total{type="input",route="batch",model="gpt-4o"})"),
                 QByteArray("500"));
        // A model never priced has no money series at all, rather than a 0 that reads as free.
        MetricsRegistry fresh;
        fresh.record(unpriced);
        const QByteArray text = fresh.render({});
        QVERIFY(!text.contains("llm_proxy_cost_usd_total{"));
        QVERIFY(!text.contains("llm_proxy_list_cost_usd_total{"));
        QVERIFY(text.contains(QByteArray("llm_proxy_unpriced_requests_total" + labels + " 1\n")));
    }

    void moneyIsExactInPicoDollars() {
        MetricsRegistry metrics;
        AccountedRequest r = answered(Route::SyncFallback, "gpt-4o");
        r.usage = usage(1, 0, 0, 0);
        r.cost = cost(1, 1); // one pico-dollar, a million times: exactly $0.000001
        for (int i = 0; i < 1'000'000; ++i)
            metrics.record(r);
        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        QCOMPARE(all.value(R"(llm_proxy_cost_usd_total{route="sync_fallback",model="gpt-4o"})"),
                 QByteArray("0.000001"));
        QCOMPARE(all.value(R"(llm_proxy_saved_usd_total{route="sync_fallback",model="gpt-4o"})"),
                 QByteArray("0"));
    }

    void countersNeverGoDown() {
        MetricsRegistry metrics;
        AccountedRequest r = answered(Route::Batch, "gpt-4o-mini", 200, 30);
        r.usage = usage(10, 2, 5, 1);
        r.cost = cost(10, 20);
        metrics.record(r);
        metrics.recordBatch("completed", 100);
        QByteArray before = metrics.render({.queued = 5, .inFlight = 5, .activeBatches = 1});
        for (int round = 0; round < 4; ++round) {
            AccountedRequest next = r;
            next.route = round % 2 ? Route::Relay : Route::Batch;
            next.model = "model-" + QByteArray::number(round);
            next.seconds = round * 1000;
            metrics.record(next);
            metrics.record(r);
            metrics.recordBatch(round % 2 ? "failed" : "completed", round * 100.0);
            const QByteArray after =
                metrics.render({.queued = 0, .inFlight = 0, .activeBatches = 0});
            const QHash<QByteArray, QByteArray> old = samples(before);
            const QHash<QByteArray, QByteArray> now = samples(after);
            QList<QByteArray> monotonic = familiesOfType(after, "counter");
            for (const QByteArray &h : familiesOfType(after, "histogram")) {
                monotonic << h + "_bucket" << h + "_sum" << h + "_count";
            }
            QVERIFY(monotonic.contains("llm_proxy_cost_usd_total"));
            for (auto it = old.cbegin(); it != old.cend(); ++it) {
                const QByteArray name = it.key().first(
                    it.key().contains('{') ? it.key().indexOf('{') : it.key().size());
                if (!monotonic.contains(name))
                    continue;
                QVERIFY2(now.contains(it.key()), it.key().constData()); // never disappears
                QVERIFY2(now.value(it.key()).toDouble() >= it.value().toDouble(),
                         QByteArray(it.key() + ' ' + it.value() + " -> " + now.value(it.key()))
                             .constData());
            }
            before = after;
        }
    }

    void processMetricsComeFromProc() {
#ifndef Q_OS_LINUX
        QSKIP("process_* metrics are read from /proc (Linux)");
#endif
        MetricsRegistry metrics;
        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        QVERIFY(all.value("process_resident_memory_bytes").toLongLong() > 1024 * 1024);
        QVERIFY(all.value("process_virtual_memory_bytes").toLongLong() >=
                all.value("process_resident_memory_bytes").toLongLong());
        QVERIFY(all.contains("process_cpu_seconds_total"));
        QVERIFY(all.value("process_cpu_seconds_total").toDouble() >= 0);
        const qint64 open = all.value("process_open_fds").toLongLong();
        QVERIFY(open >= 3); // at least stdin, stdout, stderr
        QVERIFY(all.value("process_max_fds").toLongLong() >= open);
        // Started within the last hour, not in the future.
        const double started = all.value("process_start_time_seconds").toDouble();
        const double now = double(QDateTime::currentMSecsSinceEpoch()) / 1000;
        QVERIFY2(started <= now + 1 && started > now - 3600,
                 QByteArray::number(started, 'f', 3).constData());
        // An extra descriptor is seen: counted after a scrape, shown by a later one.
        const int fd = ::dup(0);
        QVERIFY(fd >= 0);
        // (At least one more: Qt may open descriptors of its own meanwhile, e.g. the pool's.)
        const auto openFds = [&metrics] {
            return samples(metrics.render({})).value("process_open_fds").toLongLong();
        };
        QTRY_VERIFY(openFds() >= open + 1);
        ::close(fd);
    }

    void recordingAndRenderingFromManyThreads() {
        MetricsRegistry metrics;
        std::atomic<bool> stop{false};
        std::vector<std::thread> renderers;
        std::atomic<int> renders{0};
        for (int t = 0; t < 2; ++t) {
            renderers.emplace_back([&] {
                while (!stop) {
                    const QByteArray text = metrics.render({});
                    if (!text.endsWith('\n'))
                        return;
                    ++renders;
                    // A scrape holds the registry's lock while it renders: back to back, two
                    // of them can starve the recording thread for minutes (std::mutex is not
                    // fair). Scrapers come seconds apart; a millisecond is plenty here.
                    std::this_thread::sleep_for(1ms);
                }
            });
        }
        AccountedRequest r = answered(Route::Batch, "gpt-4o");
        r.usage = usage(10, 0, 5, 0);
        r.cost = cost(10, 20);
        for (int i = 0; i < 20'000; ++i) {
            r.model = "m" + QByteArray::number(i % 300);
            metrics.record(r);
        }
        QTRY_VERIFY(renders > 2);
        stop = true;
        for (std::thread &t : renderers)
            t.join();
        const QHash<QByteArray, QByteArray> all = samples(metrics.render({}));
        QCOMPARE(all.value(R"(llm_proxy_request_duration_seconds_count{route="batch"})"),
                 QByteArray("20000"));
    }
};

QTEST_GUILESS_MAIN(tst_Metrics)
#include "tst_metrics.moc"
