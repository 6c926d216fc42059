// SPDX-License-Identifier: GPL-3.0-or-later
// llmproxy-bench: N concurrent held chat completions through the real llm-proxy binary against
// the in-process fake provider, all in one batch. Prints the accept time, the proxy's memory,
// the /stats latency while it holds them, the time from the batch's completion to the last
// answer and the total wall time, and checks that every client got its own answer.
// See README.md in this folder.

#include "blockinghttp.h"
#include "chatworkload.h"
#include "fakehost.h"
#include "loadgenerator.h"
#include "proxyprocess.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sys/resource.h>
#include <thread>
#include <vector>

#ifndef LLMPROXY_BENCH_PROXY_PATH
#define LLMPROXY_BENCH_PROXY_PATH ""
#endif

using namespace std::chrono_literals;
using namespace llmproxy::bench;

namespace {

struct Options {
    int requests = 10'000;
    QString proxy = QStringLiteral(LLMPROXY_BENCH_PROXY_PATH);
    int pollIntervalMs = 100;
    int processingDelayMs = 2000;
    int bodyBytes = 200;
    int window = 512;
    int statsSamples = 50;
    int sourceAddresses = 16;
};

constexpr int MaxRequests = 50'000;     // the provider's batch limit
constexpr int MinPollIntervalMs = 100;  // llm-proxy refuses shorter --poll-interval values
constexpr int FdReserve = 64;           // descriptors the bench needs besides its clients
constexpr int MaxSourceAddresses = 200; // 127.0.0.2 ... 127.0.0.201

void print(const QByteArray &text) {
    std::fwrite(text.constData(), 1, static_cast<size_t>(text.size()), stdout);
    std::fflush(stdout);
}

void fail(const QByteArray &text) {
    const QByteArray line = "llmproxy-bench: " + text + '\n';
    std::fwrite(line.constData(), 1, static_cast<size_t>(line.size()), stderr);
}

std::optional<Options> parseOptions(const QCoreApplication &app) {
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Drives N concurrent held chat completions through llm-proxy (one batch) against the "
        "in-process fake OpenAI provider and prints what it measured."));
    parser.addHelpOption();
    const QCommandLineOption requests(QStringLiteral("requests"),
                                      QStringLiteral("Concurrent held requests (default 10000, "
                                                     "at most 50000)."),
                                      QStringLiteral("N"), QStringLiteral("10000"));
    const QCommandLineOption proxy(QStringLiteral("proxy"),
                                   QStringLiteral("The llm-proxy binary (default: the one of "
                                                  "this build tree)."),
                                   QStringLiteral("PATH"),
                                   QStringLiteral(LLMPROXY_BENCH_PROXY_PATH));
    const QCommandLineOption poll(QStringLiteral("poll-interval-ms"),
                                  QStringLiteral("The proxy's --poll-interval (default 100, the "
                                                 "proxy's minimum)."),
                                  QStringLiteral("MS"), QStringLiteral("100"));
    const QCommandLineOption processing(QStringLiteral("processing-delay-ms"),
                                        QStringLiteral("How long the fake keeps the batch "
                                                       "in_progress (default 2000)."),
                                        QStringLiteral("MS"), QStringLiteral("2000"));
    const QCommandLineOption body(QStringLiteral("body-bytes"),
                                  QStringLiteral("Size of each chat message (default 200)."),
                                  QStringLiteral("BYTES"), QStringLiteral("200"));
    const QCommandLineOption window(QStringLiteral("window"),
                                    QStringLiteral("Requests sent but not yet counted by the "
                                                   "proxy's /stats, at most (default 512; 0: "
                                                   "no limit)."),
                                    QStringLiteral("N"), QStringLiteral("512"));
    const QCommandLineOption samples(QStringLiteral("stats-samples"),
                                     QStringLiteral("GET /stats calls timed while the requests "
                                                    "are held (default 50)."),
                                     QStringLiteral("N"), QStringLiteral("50"));
    const QCommandLineOption sources(QStringLiteral("source-addresses"),
                                     QStringLiteral("Spread the clients over 127.0.0.2 ... "
                                                    "127.0.0.(1+K) (default 16; 0: all from "
                                                    "127.0.0.1)."),
                                     QStringLiteral("K"), QStringLiteral("16"));
    parser.addOptions({requests, proxy, poll, processing, body, window, samples, sources});
    parser.process(app);

    Options options;
    bool allGood = true;
    const auto number = [&](const QCommandLineOption &option, int min, int max) {
        bool ok = false;
        const int value = parser.value(option).toInt(&ok);
        if (!ok || value < min || value > max) {
            fail("--" + option.names().constFirst().toUtf8() + " must be a whole number from " +
                 QByteArray::number(min) + " to " + QByteArray::number(max));
            allGood = false;
        }
        return value;
    };
    options.requests = number(requests, 1, MaxRequests);
    options.pollIntervalMs = number(poll, MinPollIntervalMs, 3'600'000);
    options.processingDelayMs = number(processing, 0, 3'600'000);
    options.bodyBytes = number(body, 1, 1'000'000);
    options.window = number(window, 0, MaxRequests);
    options.statsSamples = number(samples, 1, 100'000);
    options.sourceAddresses = number(sources, 0, MaxSourceAddresses);
    options.proxy = parser.value(proxy);
    if (options.proxy.isEmpty() || !QFileInfo(options.proxy).isExecutable()) {
        fail("no llm-proxy binary at '" + options.proxy.toUtf8() + "' (use --proxy PATH)");
        allGood = false;
    }
    if (!allGood)
        return std::nullopt;
    return options;
}

// Raises the soft open-file limit to the hard one; returns the limit in force.
rlim_t raiseOpenFileLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
            limit = raised;
    }
    return limit.rlim_cur;
}

double toMs(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// Milliseconds between two time points, or -1 when either is unknown.
double spanMs(Clock::time_point from, Clock::time_point to) {
    if (from == Clock::time_point{} || to == Clock::time_point{})
        return -1;
    return toMs(to - from);
}

QByteArray num(double value, int decimals = 1) {
    return value < 0 ? QByteArrayLiteral("n/a") : QByteArray::number(value, 'f', decimals);
}

QByteArray kv(double value, int decimals = 1) {
    return value < 0 ? QByteArrayLiteral("-1") : QByteArray::number(value, 'f', decimals);
}

QByteArray mib(qint64 kib) {
    return kib < 0 ? QByteArrayLiteral("n/a")
                   : QByteArray::number(static_cast<double>(kib) / 1024.0, 'f', 1) + " MiB";
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double> &sorted, double p) {
    if (sorted.empty())
        return -1;
    const auto rank =
        static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

QByteArray row(const QByteArray &label, const QByteArray &value) {
    QByteArray line = "  " + label;
    if (line.size() < 66)
        line += QByteArray(66 - line.size(), ' ');
    return line + ' ' + value + '\n';
}

} // namespace

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("llmproxy-bench"));
    const std::optional<Options> parsed = parseOptions(app);
    if (!parsed)
        return 2;
    const Options &o = *parsed;

    const rlim_t files = raiseOpenFileLimit();
    if (files < rlim_t(o.requests + FdReserve)) {
        fail("the open-file limit is " + QByteArray::number(quint64(files)) + ": " +
             QByteArray::number(o.requests) + " clients need at least " +
             QByteArray::number(o.requests + FdReserve) + " (raise the hard limit)");
        return 2;
    }

    QTemporaryDir temp;
    if (!temp.isValid()) {
        fail("cannot create a temporary directory");
        return 1;
    }
    const QString logFile = temp.filePath(QStringLiteral("llm-proxy.log"));

    FakeHost fake;
    QByteArray error;
    if (!fake.start(std::chrono::milliseconds(o.processingDelayMs), &error)) {
        fail(error);
        return 1;
    }

    const QStringList proxyArguments = {
        QStringLiteral("--no-gui"),
        QStringLiteral("--listen"),
        QStringLiteral("127.0.0.1:0"),
        QStringLiteral("--upstream"),
        fake.baseUrl().toString(),
        QStringLiteral("--batch-size"),
        QString::number(o.requests),
        QStringLiteral("--batch-window"),
        QStringLiteral("600s"),
        QStringLiteral("--batch-bytes"),
        QStringLiteral("200MB"),
        QStringLiteral("--poll-interval"),
        QString::number(o.pollIntervalMs) + QStringLiteral("ms"),
        QStringLiteral("--data-dir"),
        temp.filePath(QStringLiteral("data")),
    };
    ProxyProcess proxy;
    if (!proxy.start(o.proxy, proxyArguments, logFile, 20s, &error)) {
        fail(error);
        fail("its log:\n" + proxy.logTail(20));
        return 1;
    }

    print("llmproxy-bench: " + QByteArray::number(o.requests) + " held chat completions, " +
          QByteArray::number(o.bodyBytes) + "-byte messages\n");
    print("  proxy " + o.proxy.toUtf8() + " (pid " + QByteArray::number(proxy.pid()) + ") " +
          proxyArguments.join(QLatin1Char(' ')).toUtf8() + '\n');
    print("  fake provider in-process on " + fake.baseUrl().toString().toUtf8() +
          ", batch processing delay " + QByteArray::number(o.processingDelayMs) + " ms\n");

    // Idle: ready, one request served, then a moment to settle.
    bool healthy = false;
    for (int attempt = 0; attempt < 50 && !healthy; ++attempt) {
        const HttpResult health = httpGet(proxy.port(), "/healthz", 5s);
        healthy = health.ok && health.status == 200;
        if (!healthy)
            std::this_thread::sleep_for(100ms);
    }
    if (!healthy) {
        QByteArray ended;
        fail("llm-proxy never answered GET /healthz with 200" +
             (proxy.running(&ended) ? QByteArray() : " (it ended: " + ended + ')'));
        fail("its log:\n" + proxy.logTail(20));
        return 1;
    }
    std::this_thread::sleep_for(300ms);
    const ProcessMemory idle = processMemory(proxy.pid());
    const qint64 overflowsBefore = listenQueueDrops();
    const std::chrono::milliseconds cpuBefore = processCpuTime(proxy.pid());

    // 1. Accept: open N connections, send N requests, until /stats counts N.
    const ChatWorkload workload(proxy.port(), o.bodyBytes);
    LoadOptions loadOptions;
    loadOptions.port = proxy.port();
    loadOptions.requests = o.requests;
    loadOptions.window = o.window;
    loadOptions.sourceAddresses = o.sourceAddresses;
    LoadGenerator load(loadOptions, workload);
    if (!load.start(&error)) {
        fail(error);
        return 1;
    }
    QList<QByteArray> problems;
    LoadGenerator::Phase phase =
        load.waitFor(LoadGenerator::Phase::Holding, loadOptions.acceptTimeout + 10s);
    const ProcessMemory queued = processMemory(proxy.pid());

    // 2./3. Held: once the batch exists at the provider, memory and /stats latency.
    ProcessMemory holding;
    std::vector<double> statsMs;
    bool statsOverlapped = false;
    if (phase == LoadGenerator::Phase::Holding) {
        const FakeHost::Events created =
            fake.waitUntil([](const FakeHost::Events &e) { return e.created > 0; }, 120s);
        if (created.created == 0)
            problems.append("the proxy created no batch within 120 s of queueing all requests");
        holding = processMemory(proxy.pid());
        for (int i = 0; i < o.statsSamples; ++i) {
            const HttpResult stats = httpGet(proxy.port(), "/stats", 10s);
            if (!stats.ok || stats.status != 200) {
                problems.append(
                    "GET /stats failed while holding: " +
                    (stats.ok ? "status " + QByteArray::number(stats.status) : stats.error));
                break;
            }
            statsMs.push_back(toMs(stats.elapsed));
            const QJsonObject object = QJsonDocument::fromJson(stats.body).object();
            const qint64 held = object.value(QLatin1StringView("queued")).toInteger() +
                                object.value(QLatin1StringView("in_flight")).toInteger();
            if (held != o.requests)
                statsOverlapped = true; // answers have started going out
        }
        if (fake.events().finished > 0)
            statsOverlapped = true;
        phase = load.waitFor(LoadGenerator::Phase::Done,
                             std::chrono::milliseconds(o.processingDelayMs) + 300s);
    }
    std::sort(statsMs.begin(), statsMs.end());
    load.stop();
    const LoadGenerator::Report report = load.report();
    const ProcessMemory end = processMemory(proxy.pid());
    const std::chrono::milliseconds cpuAfter = processCpuTime(proxy.pid());
    QByteArray proxyEnded;
    const bool proxyAlive = proxy.running(&proxyEnded);
    const QByteArray proxyStop = proxy.stop(15s);
    const qint64 overflowsAfter = listenQueueDrops();
    const FakeHost::Events events = fake.events();

    // ---- The figures -----------------------------------------------------------------------
    const int n = o.requests;
    const double acceptMs = spanMs(report.firstConnect, report.allQueued);
    const double lastWriteMs = spanMs(report.firstConnect, report.lastWritten);
    const double createdMs = spanMs(report.allQueued, events.firstCreated);
    const double firstAnswerMs = spanMs(events.lastFinished, report.firstAnswer);
    const double lastAnswerMs = spanMs(events.lastFinished, report.lastAnswer);
    const double totalMs = spanMs(report.firstConnect, report.lastAnswer);
    const qint64 holdKiB = holding.rssKiB >= 0 ? holding.rssKiB : queued.rssKiB;
    const double perRequestBytes = holdKiB >= 0 && idle.rssKiB >= 0
                                       ? static_cast<double>(holdKiB - idle.rssKiB) * 1024.0 / n
                                       : -1;
    const qint64 peakKiB = end.hwmKiB;
    const double proxyCpuMs = cpuBefore.count() >= 0 && cpuAfter.count() >= 0
                                  ? static_cast<double>((cpuAfter - cpuBefore).count())
                                  : -1;
    const qint64 overflows =
        overflowsBefore >= 0 && overflowsAfter >= 0 ? overflowsAfter - overflowsBefore : -1;

    if (phase != LoadGenerator::Phase::Done)
        problems.append("the load did not complete: " + report.abortReason);
    if (report.answered != n)
        problems.append(QByteArray::number(n - report.answered) + " of " + QByteArray::number(n) +
                        " clients did not get the right answer");
    if (events.created != 1)
        problems.append("the provider saw " + QByteArray::number(events.created) +
                        " batches, not exactly 1");
    if (events.finished > 0 && events.lastStatus != "completed")
        problems.append("the provider's batch ended " + events.lastStatus);
    if (!proxyAlive)
        problems.append("llm-proxy ended during the run: " + proxyEnded);
    QList<QByteArray> warnings; // the figures are less meaningful, the run still passed
    if (statsOverlapped)
        warnings.append("some /stats samples overlapped the answer phase: figure 3 is not "
                        "purely 'while holding' (use a longer --processing-delay-ms)");

    const QByteArray rule(100, '-');
    QByteArray out = rule + '\n';
    out += "1 ACCEPT\n";
    out += row("time to accept all N (first connect -> /stats queued+in_flight = N)",
               num(acceptMs) + " ms");
    out += row("last request's bytes written after first connect", num(lastWriteMs) + " ms");
    out += row("accept rate", acceptMs > 0 ? num(n / (acceptMs / 1000.0), 0) + " requests/s"
                                           : QByteArrayLiteral("n/a"));
    out += "2 MEMORY (proxy)\n";
    out += row("RSS idle (after one request)", mib(idle.rssKiB));
    out += row("RSS when all N were queued", mib(queued.rssKiB));
    out += row("RSS holding N (batch submitted, waiting for it)", mib(holdKiB));
    out += row("RSS per held request ((holding - idle) / N)",
               num(perRequestBytes / 1024.0, 2) + " KiB");
    out += row("peak RSS (VmHWM, whole run)", mib(peakKiB));
    out += "3 GET /stats LATENCY while holding N (" + QByteArray::number(statsMs.size()) +
           " sequential requests, fresh connection each)\n";
    out += row("p50 / p95 / max", num(percentile(statsMs, 50), 2) + " / " +
                                      num(percentile(statsMs, 95), 2) + " / " +
                                      num(statsMs.empty() ? -1 : statsMs.back(), 2) + " ms");
    out += "4 BATCH COMPLETION -> ANSWERS\n";
    out +=
        row("all N queued -> batch created at the provider (JSONL upload)", num(createdMs) + " ms");
    out +=
        row("batch completed at the provider -> first client answered", num(firstAnswerMs) + " ms");
    out +=
        row("batch completed at the provider -> last client answered", num(lastAnswerMs) + " ms");
    out += "  (both include up to one --poll-interval = " + QByteArray::number(o.pollIntervalMs) +
           " ms before the proxy sees the completion,\n   then the output download and "
           "parsing and writing N answers)\n";
    out += "5 TOTAL\n";
    out += row("wall time, first connect -> last client answered", num(totalMs) + " ms");
    out += row("right answers (200, content echoes the client's own message)",
               QByteArray::number(report.answered) + " of " + QByteArray::number(n));
    out += row("wrong answers or errors", QByteArray::number(report.failed));
    out += "CONTEXT\n";
    out += row("batches at the provider (created / finished, last status)",
               QByteArray::number(events.created) + " / " + QByteArray::number(events.finished) +
                   ", " + (events.lastStatus.isEmpty() ? "-" : events.lastStatus) + " (" +
                   QByteArray::number(events.lastCompletedLines) + " lines ok, " +
                   QByteArray::number(events.lastFailedLines) + " failed)");
    out += row("proxy CPU time during the run (user + system)", num(proxyCpuMs, 0) + " ms");
    out += row("bench load thread CPU time", num(toMs(report.cpuTime), 0) + " ms");
    out += row("/stats polls by the load thread while accepting",
               QByteArray::number(report.statsPolls));
    out += row("listen-queue overflows during the run (whole host)",
               overflows < 0 ? QByteArrayLiteral("n/a") : QByteArray::number(overflows));
    out += row("llm-proxy at the end", proxyAlive ? QByteArray("running; stopped: " + proxyStop)
                                                  : QByteArray("had ended: " + proxyEnded));
    out += rule + '\n';
    for (const Failure &failure : report.failures) {
        out +=
            "  failure: request " + QByteArray::number(failure.index) + ": " + failure.what + '\n';
    }
    for (const QByteArray &warning : std::as_const(warnings))
        out += "  WARNING: " + warning + '\n';
    for (const QByteArray &problem : std::as_const(problems))
        out += "  PROBLEM: " + problem + '\n';
    const bool ok = problems.isEmpty();
    if (!ok)
        out += "  llm-proxy log (last lines):\n" + proxy.logTail(15) + '\n';

    out += "RESULT status=" + QByteArray(ok ? "ok" : "failed") +
           " requests=" + QByteArray::number(n) + " body_bytes=" + QByteArray::number(o.bodyBytes) +
           " ok=" + QByteArray::number(report.answered) +
           " failed=" + QByteArray::number(n - report.answered) +
           " batches=" + QByteArray::number(events.created) + " accept_ms=" + kv(acceptMs) +
           " last_write_ms=" + kv(lastWriteMs) +
           " rss_idle_kib=" + QByteArray::number(idle.rssKiB) +
           " rss_hold_kib=" + QByteArray::number(holdKiB) +
           " rss_peak_kib=" + QByteArray::number(peakKiB) +
           " rss_per_request_bytes=" + kv(perRequestBytes, 0) +
           " stats_p50_ms=" + kv(percentile(statsMs, 50), 2) +
           " stats_p95_ms=" + kv(percentile(statsMs, 95), 2) +
           " completion_to_first_answer_ms=" + kv(firstAnswerMs) +
           " completion_to_last_answer_ms=" + kv(lastAnswerMs) +
           " poll_interval_ms=" + QByteArray::number(o.pollIntervalMs) +
           " processing_delay_ms=" + QByteArray::number(o.processingDelayMs) +
           " total_ms=" + kv(totalMs) + " proxy_cpu_ms=" + kv(proxyCpuMs, 0) +
           " loadgen_cpu_ms=" + kv(toMs(report.cpuTime), 0) +
           " listen_overflows=" + QByteArray::number(overflows) +
           " stats_overlapped_answers=" + QByteArray(statsOverlapped ? "1" : "0") + '\n';
    print(out);
    return ok ? 0 : 1;
}
