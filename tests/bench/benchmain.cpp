// SPDX-License-Identifier: GPL-3.0-or-later
// llmproxy-bench: N concurrent held chat completions through the real llm-proxy binary against
// the in-process fake provider, all in one batch; first the same load against an ideal stub
// server in the bench itself, for the client's own floor. Prints the accept time and rate, the
// proxy's CPU and memory per request, the latency of a new request and of GET /stats while it
// holds them, the time from the results' arrival to the last answer, and checks that every
// client got its own answer. See README.md in this folder.

#include "blockinghttp.h"
#include "chatworkload.h"
#include "fakehost.h"
#include "loadgenerator.h"
#include "proxyprocess.h"
#include "stubserver.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QDirIterator>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef LLMPROXY_BENCH_PROXY_PATH
#define LLMPROXY_BENCH_PROXY_PATH ""
#endif

using namespace std::chrono_literals;
using namespace llmproxy::bench;

namespace {

enum class StoreMode { On, Off, Compare };

struct Options {
    int requests = 10'000;
    QString proxy = QStringLiteral(LLMPROXY_BENCH_PROXY_PATH);
    int pollIntervalMs = 100;
    int processingDelayMs = 0;
    int bodyBytes = 200;
    int window = 0;
    int probeSamples = 50;
    int sourceAddresses = 16;
    int statsPollMs = 5;
    bool stub = true;
    StoreMode store = StoreMode::On;
    QStringList proxyArguments; // more arguments for llm-proxy
    bool serveStub = false;     // this process is the stub server
    // The proxy's clients ask for streams (issue 11): each is held with its headers out and
    // answered with the replay (the stub keeps plain JSON: it is the floor of the transport).
    bool stream = false;
};

constexpr int MaxRequests = 50'000;     // the provider's batch limit
constexpr int MinPollIntervalMs = 100;  // llm-proxy refuses shorter --poll-interval values
constexpr int FdReserve = 64;           // descriptors the bench needs besides its clients
constexpr int MaxSourceAddresses = 200; // 127.0.0.2 ... 127.0.0.201
constexpr int ListenBacklog = 4096;     // the proxy's; the stub uses the same
// The sustained rate is the slope of the server's count between these fractions of N.
constexpr double RateFrom = 0.1;
constexpr double RateTo = 0.9;
// What the stub's child process prints first, as llm-proxy prints its listening line.
const QByteArray StubMarker = QByteArrayLiteral("llmproxy-bench stub listening on http://");

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
        "in-process fake OpenAI provider, after the same load against an ideal stub server, "
        "and prints what it measured."));
    parser.addHelpOption();
    const QCommandLineOption requests(QStringLiteral("requests"),
                                      QStringLiteral("Concurrent held requests (default 10000, "
                                                     "at most 50000; 0: the probes only)."),
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
                                                       "in_progress once the probes are done "
                                                       "(default 0)."),
                                        QStringLiteral("MS"), QStringLiteral("0"));
    const QCommandLineOption body(QStringLiteral("body-bytes"),
                                  QStringLiteral("Size of each chat message (default 200)."),
                                  QStringLiteral("BYTES"), QStringLiteral("200"));
    const QCommandLineOption window(QStringLiteral("window"),
                                    QStringLiteral("Requests sent but not yet counted by the "
                                                   "server, at most (default 0: no limit, all "
                                                   "N arrive at once)."),
                                    QStringLiteral("N"), QStringLiteral("0"));
    const QCommandLineOption samples(
        {QStringLiteral("probe-samples"), QStringLiteral("stats-samples")},
        QStringLiteral("New requests and GET /stats calls each timed while the requests are "
                       "held (default 50)."),
        QStringLiteral("N"), QStringLiteral("50"));
    const QCommandLineOption sources(QStringLiteral("source-addresses"),
                                     QStringLiteral("Spread the clients over 127.0.0.2 ... "
                                                    "127.0.0.(1+K) (default 16; 0: all from "
                                                    "127.0.0.1)."),
                                     QStringLiteral("K"), QStringLiteral("16"));
    const QCommandLineOption statsPoll(QStringLiteral("stats-poll-ms"),
                                       QStringLiteral("How often the server's count is read "
                                                      "while the requests arrive (default "
                                                      "5)."),
                                       QStringLiteral("MS"), QStringLiteral("5"));
    const QCommandLineOption stub(QStringLiteral("stub"),
                                  QStringLiteral("Measure the ideal stub server first: on "
                                                 "(default) or off."),
                                  QStringLiteral("on|off"), QStringLiteral("on"));
    const QCommandLineOption store(QStringLiteral("store"),
                                   QStringLiteral("The proxy's durable store: on (default) or "
                                                  "off (--in-memory)."),
                                   QStringLiteral("on|off"), QStringLiteral("on"));
    const QCommandLineOption proxyArgument(
        QStringLiteral("proxy-arg"),
        QStringLiteral("One more argument for llm-proxy, e.g. --proxy-arg=--io-threads=1 "
                       "(repeatable)."),
        QStringLiteral("ARG"));
    QCommandLineOption serve(QStringLiteral("serve-stub"),
                             QStringLiteral("Internal: be the stub server (a child process)."));
    serve.setFlags(QCommandLineOption::HiddenFromHelp);
    const QCommandLineOption stream(QStringLiteral("stream"),
                                    QStringLiteral("The proxy's clients ask for streams "
                                                   "(\"stream\": true): "
                                                   "held streams, answered with the replay."));
    const QCommandLineOption compare(QStringLiteral("compare-store"),
                                     QStringLiteral("Run the proxy twice, with the store and "
                                                    "--in-memory, and print the store's "
                                                    "cost."));
    parser.addOptions({requests, proxy, poll, processing, body, window, samples, sources, statsPoll,
                       stub, store, compare, proxyArgument, serve, stream});
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
    const auto onOff = [&](const QCommandLineOption &option) {
        const QString value = parser.value(option);
        if (value != QLatin1StringView("on") && value != QLatin1StringView("off")) {
            fail("--" + option.names().constFirst().toUtf8() + " must be on or off");
            allGood = false;
        }
        return value == QLatin1StringView("on");
    };
    options.requests = number(requests, 0, MaxRequests);
    options.pollIntervalMs = number(poll, MinPollIntervalMs, 3'600'000);
    options.processingDelayMs = number(processing, 0, 3'600'000);
    options.bodyBytes = number(body, 1, 1'000'000);
    options.window = number(window, 0, MaxRequests);
    options.probeSamples = number(samples, 1, 100'000);
    options.sourceAddresses = number(sources, 0, MaxSourceAddresses);
    options.statsPollMs = number(statsPoll, 1, 1000);
    options.stub = onOff(stub);
    options.store = onOff(store) ? StoreMode::On : StoreMode::Off;
    if (parser.isSet(compare))
        options.store = StoreMode::Compare;
    options.serveStub = parser.isSet(serve);
    options.stream = parser.isSet(stream);
    options.proxyArguments = parser.values(proxyArgument);
    options.proxy = parser.value(proxy);
    if (!options.serveStub &&
        (options.proxy.isEmpty() || !QFileInfo(options.proxy).isExecutable())) {
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

// Requests per second while the server's count went from RateFrom to RateTo of n: the slope
// between the last sample below RateFrom * n and the first at or above RateTo * n (the span
// brackets the middle of the arrival, so coarse samples understate the rate rather than
// overstate it); -1 when the samples never got there.
double sustainedRate(const std::vector<CountSample> &samples, int n) {
    const auto to = std::find_if(samples.begin(), samples.end(), [n](const CountSample &s) {
        return double(s.counted) >= RateTo * n;
    });
    if (to == samples.end())
        return -1;
    auto from = samples.begin();
    for (auto it = samples.begin(); it != to; ++it) {
        if (double(it->counted) < RateFrom * n)
            from = it;
    }
    if (to->at <= from->at)
        return -1;
    return double(to->counted - from->counted) /
           std::chrono::duration<double>(to->at - from->at).count();
}

// A signed percentage, or `unknown`.
QByteArray percent(std::optional<double> value, const QByteArray &unknown, bool withUnit = true) {
    return value ? QByteArray::number(*value, 'f', 1) + (withUnit ? " %" : "") : unknown;
}

double perSecond(int n, double ms) {
    return n > 0 && ms > 0 ? n / (ms / 1000.0) : -1;
}

QByteArray row(const QByteArray &label, const QByteArray &value) {
    QByteArray line = "  " + label;
    if (line.size() < 66)
        line += QByteArray(66 - line.size(), ' ');
    return line + ' ' + value + '\n';
}

QByteArray dispatcherName() {
    return qgetenv("LLMPROXY_DISPATCHER") == "qt" ? QByteArrayLiteral("qt")
                                                  : QByteArrayLiteral("epoll");
}

LoadOptions loadOptionsFor(const Options &o, quint16 port) {
    LoadOptions load;
    load.port = port;
    load.requests = o.requests;
    load.window = o.window;
    load.sourceAddresses = o.sourceAddresses;
    load.statsPollInterval = std::chrono::milliseconds(o.statsPollMs);
    return load;
}

// ---- The stub: the client's own floor ---------------------------------------------------------

struct StubFigures {
    bool ran = false;
    int answered = 0;
    double acceptMs = -1;
    double lastWriteMs = -1;
    double sustainedRps = -1;
    double answerMs = -1; // POST /_stub/answer -> last client answered
    qint64 overflows = -1;
    double loadgenCpuMs = -1;
};

StubFigures runStub(const Options &o, const QString &workDir, QList<QByteArray> *problems) {
    StubFigures f;
    if (!o.stub || o.requests == 0)
        return f;
    if (!QDir().mkpath(workDir)) {
        problems->append("cannot create " + workDir.toUtf8());
        return f;
    }
    // In a child process: it needs a descriptor per client, as the bench's clients do.
    ProxyProcess stub(StubMarker);
    QByteArray error;
    if (!stub.start(QCoreApplication::applicationFilePath(), {QStringLiteral("--serve-stub")},
                    workDir + QStringLiteral("/stub.log"), 20s, &error)) {
        problems->append("stub: " + error);
        return f;
    }
    f.ran = true;
    const ChatWorkload workload(stub.port(), o.bodyBytes);
    const LoadOptions loadOptions = loadOptionsFor(o, stub.port());
    const qint64 overflowsBefore = listenQueueDrops();
    LoadGenerator load(loadOptions, workload);
    if (!load.start(&error)) {
        problems->append("stub: " + error);
        return f;
    }
    LoadGenerator::Phase phase =
        load.waitFor(LoadGenerator::Phase::Holding, loadOptions.acceptTimeout + 10s);
    Clock::time_point allCounted{};
    Clock::time_point answerAt{};
    if (phase == LoadGenerator::Phase::Holding) {
        // The stub knows when it read the N-th request (the same steady clock: CLOCK_MONOTONIC).
        const HttpResult stats = httpGet(stub.port(), "/stats", 10s);
        const qint64 ns = QJsonDocument::fromJson(stats.body)
                              .object()
                              .value(QLatin1StringView("last_counted_ns"))
                              .toInteger(-1);
        if (ns > 0)
            allCounted = Clock::time_point(std::chrono::nanoseconds(ns));
        answerAt = Clock::now();
        const HttpResult answer = httpRequest(stub.port(), "POST", "/_stub/answer", "{}", 10s);
        if (!answer.ok || answer.status != 200)
            problems->append("stub: POST /_stub/answer failed: " + answer.error);
        phase = load.waitFor(LoadGenerator::Phase::Done, 300s);
    }
    load.stop();
    const qint64 overflowsAfter = listenQueueDrops();
    const LoadGenerator::Report report = load.report();
    stub.stop(5s);
    if (phase != LoadGenerator::Phase::Done)
        problems->append("stub: the load did not complete: " + report.abortReason);
    if (report.answered != o.requests)
        problems->append("stub: " + QByteArray::number(o.requests - report.answered) +
                         " clients did not get the right answer");
    f.answered = report.answered;
    f.acceptMs = spanMs(report.firstConnect,
                        allCounted != Clock::time_point{} ? allCounted : report.allQueued);
    f.lastWriteMs = spanMs(report.firstConnect, report.lastWritten);
    f.sustainedRps = sustainedRate(report.samples, o.requests);
    f.answerMs = spanMs(answerAt, report.lastAnswer);
    f.overflows =
        overflowsBefore >= 0 && overflowsAfter >= 0 ? overflowsAfter - overflowsBefore : -1;
    f.loadgenCpuMs = toMs(report.cpuTime);
    return f;
}

// llmproxy-bench --serve-stub: the stub server in this process until SIGTERM (or the bench's
// end: the parent asked for SIGKILL then).
int serveStub() {
    raiseOpenFileLimit();
    StubServer stub;
    QByteArray error;
    if (!stub.start(ListenBacklog, &error)) {
        fail(error);
        return 1;
    }
    print(StubMarker + "127.0.0.1:" + QByteArray::number(stub.port()) + "/v1\n");
    for (;;)
        ::pause();
}

// ---- The proxy ----------------------------------------------------------------------------

struct ProxyFigures {
    bool store = true;
    bool ok = false;
    QByteArray commandLine;
    int answered = 0;
    int wrong = 0;
    FakeHost::Events events;
    // Accept
    double acceptMs = -1;
    double lastWriteMs = -1;
    double sustainedRps = -1;
    double cpuAcceptMs = -1;
    qint64 overflows = -1;
    int statsPolls = 0;
    // Memory
    ProcessMemory idle, queued, end;
    qint64 holdKiB = -1;
    double perRequestBytes = -1;
    // Probes while holding
    std::vector<double> newMs;     // sorted
    std::vector<double> statsMs;   // sorted
    std::vector<double> metricsMs; // sorted: GET /metrics
    bool statsOverlapped = false;
    // Answers
    double createdMs = -1;
    double resultsToLastMs = -1;
    double completionToFirstMs = -1;
    double completionToLastMs = -1;
    double totalMs = -1;
    double cpuMs = -1;
    double loadgenCpuMs = -1;
    bool alive = false;
    QByteArray ended;
    QByteArray stopped;
    QList<Failure> failures;
    QList<QByteArray> problems;
    QList<QByteArray> warnings;
    QByteArray logTail;

    double cpuPerRequestUs(int n) const {
        return n > 0 && cpuAcceptMs >= 0 ? cpuAcceptMs * 1000.0 / n : -1;
    }
};

// A request the proxy answers at once, 400, after the whole accept + parse + validate path.
const QByteArray MalformedBody = QByteArrayLiteral("{\"model\":\"gpt-4o-mini\",\"messages\":[");

ProxyFigures runProxy(const Options &o, bool store, const QString &workDir) {
    ProxyFigures f;
    f.store = store;
    const int n = o.requests;
    QList<QByteArray> &problems = f.problems;

    if (!QDir().mkpath(workDir)) {
        problems.append("cannot create " + workDir.toUtf8());
        return f;
    }
    FakeHost fake;
    QByteArray error;
    if (!fake.start(std::chrono::milliseconds(o.processingDelayMs), &error)) {
        problems.append(error);
        return f;
    }
    QStringList arguments = {
        QStringLiteral("--no-gui"),
        QStringLiteral("--listen"),
        QStringLiteral("127.0.0.1:0"),
        QStringLiteral("--upstream"),
        fake.baseUrl().toString(),
        QStringLiteral("--batch-size"),
        QString::number(std::max(n, 1)),
        QStringLiteral("--batch-window"),
        QStringLiteral("600s"),
        QStringLiteral("--batch-bytes"),
        QStringLiteral("200MB"),
        QStringLiteral("--poll-interval"),
        QString::number(o.pollIntervalMs) + QStringLiteral("ms"),
    };
    // --in-memory and --data-dir exclude each other.
    if (store)
        arguments << QStringLiteral("--data-dir") << workDir + QStringLiteral("/data");
    else
        arguments << QStringLiteral("--in-memory");
    arguments << o.proxyArguments;
    f.commandLine = o.proxy.toUtf8() + ' ' + arguments.join(QLatin1Char(' ')).toUtf8();
    ProxyProcess proxy;
    // Its own settings and data folders: the user's saved settings do not change the run, and
    // a store opened anywhere but --data-dir shows up here.
    const QString xdgData = workDir + QStringLiteral("/xdg-data");
    proxy.setEnvironment(QStringLiteral("XDG_CONFIG_HOME"),
                         workDir + QStringLiteral("/xdg-config"));
    proxy.setEnvironment(QStringLiteral("XDG_DATA_HOME"), xdgData);
    if (!proxy.start(o.proxy, arguments, workDir + QStringLiteral("/llm-proxy.log"), 20s, &error)) {
        problems.append(error);
        f.logTail = proxy.logTail(20);
        return f;
    }
    f.commandLine = "(pid " + QByteArray::number(proxy.pid()) + ") " + f.commandLine;

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
        problems.append("llm-proxy never answered GET /healthz with 200" +
                        (proxy.running(&ended) ? QByteArray() : " (it ended: " + ended + ')'));
        f.logTail = proxy.logTail(20);
        return f;
    }
    std::this_thread::sleep_for(300ms);
    f.idle = processMemory(proxy.pid());
    const qint64 overflowsBefore = listenQueueDrops();
    const std::chrono::milliseconds cpuBefore = processCpuTime(proxy.pid());

    // 1. Accept: N connections, N requests, until /stats counts N.
    const ChatWorkload workload(proxy.port(), o.bodyBytes, o.stream);
    const LoadOptions loadOptions = loadOptionsFor(o, proxy.port());
    std::optional<LoadGenerator> load;
    LoadGenerator::Phase phase = LoadGenerator::Phase::Holding;
    if (n > 0) {
        load.emplace(loadOptions, workload);
        if (!load->start(&error)) {
            problems.append(error);
            return f;
        }
        phase = load->waitFor(LoadGenerator::Phase::Holding, loadOptions.acceptTimeout + 10s);
        const std::chrono::milliseconds cpuAccepted = processCpuTime(proxy.pid());
        if (cpuBefore.count() >= 0 && cpuAccepted.count() >= 0)
            f.cpuAcceptMs = double((cpuAccepted - cpuBefore).count());
    }
    f.queued = processMemory(proxy.pid());

    // 2./3. Held: once the batch exists at the provider (it stays in_progress until the probes
    // are done), memory and the latency of a new request and of /stats.
    if (phase == LoadGenerator::Phase::Holding) {
        if (n > 0) {
            const FakeHost::Events created =
                fake.waitUntil([](const FakeHost::Events &e) { return e.created > 0; }, 120s);
            if (created.created == 0)
                problems.append("the proxy created no batch within 120 s of queueing all "
                                "requests");
        }
        f.holdKiB = processMemory(proxy.pid()).rssKiB;
        for (int i = 0; i < o.probeSamples && problems.isEmpty(); ++i) {
            const HttpResult fresh =
                httpRequest(proxy.port(), "POST", "/v1/chat/completions", MalformedBody, 10s);
            if (!fresh.ok || fresh.status != 400) {
                problems.append(
                    "a new (malformed) request was not answered 400 while holding: " +
                    (fresh.ok ? "status " + QByteArray::number(fresh.status) : fresh.error));
                break;
            }
            f.newMs.push_back(toMs(fresh.elapsed));
            const HttpResult stats = httpGet(proxy.port(), "/stats", 10s);
            if (!stats.ok || stats.status != 200) {
                problems.append(
                    "GET /stats failed while holding: " +
                    (stats.ok ? "status " + QByteArray::number(stats.status) : stats.error));
                break;
            }
            f.statsMs.push_back(toMs(stats.elapsed));
            const HttpResult metrics = httpGet(proxy.port(), "/metrics", 10s);
            if (!metrics.ok || metrics.status != 200) {
                problems.append(
                    "GET /metrics failed while holding: " +
                    (metrics.ok ? "status " + QByteArray::number(metrics.status) : metrics.error));
                break;
            }
            f.metricsMs.push_back(toMs(metrics.elapsed));
            const QJsonObject object = QJsonDocument::fromJson(stats.body).object();
            const qint64 held = object.value(QLatin1StringView("queued")).toInteger() +
                                object.value(QLatin1StringView("in_flight")).toInteger();
            if (held != n)
                f.statsOverlapped = true; // answers have started going out
        }
        if (fake.events().finished > 0)
            f.statsOverlapped = true;
        fake.release();
        if (n > 0) {
            phase = load->waitFor(LoadGenerator::Phase::Done,
                                  std::chrono::milliseconds(o.processingDelayMs) + 300s);
        }
    }
    std::sort(f.newMs.begin(), f.newMs.end());
    std::sort(f.statsMs.begin(), f.statsMs.end());
    std::sort(f.metricsMs.begin(), f.metricsMs.end());
    LoadGenerator::Report report;
    if (load) {
        load->stop();
        report = load->report();
    }
    f.end = processMemory(proxy.pid());
    const std::chrono::milliseconds cpuAfter = processCpuTime(proxy.pid());
    f.alive = proxy.running(&f.ended);
    f.stopped = proxy.stop(15s);
    const qint64 overflowsAfter = listenQueueDrops();
    f.events = fake.events();

    f.answered = report.answered;
    f.wrong = report.failed;
    f.failures = report.failures;
    f.statsPolls = report.statsPolls;
    f.acceptMs = spanMs(report.firstConnect, report.allQueued);
    f.lastWriteMs = spanMs(report.firstConnect, report.lastWritten);
    f.sustainedRps = sustainedRate(report.samples, n);
    f.createdMs = spanMs(report.allQueued, f.events.firstCreated);
    f.resultsToLastMs = spanMs(f.events.firstResultsDownload, report.lastAnswer);
    f.completionToFirstMs = spanMs(f.events.lastFinished, report.firstAnswer);
    f.completionToLastMs = spanMs(f.events.lastFinished, report.lastAnswer);
    f.totalMs = spanMs(report.firstConnect, report.lastAnswer);
    if (f.holdKiB < 0)
        f.holdKiB = f.queued.rssKiB;
    f.perRequestBytes = n > 0 && f.holdKiB >= 0 && f.idle.rssKiB >= 0
                            ? static_cast<double>(f.holdKiB - f.idle.rssKiB) * 1024.0 / n
                            : -1;
    f.cpuMs = cpuBefore.count() >= 0 && cpuAfter.count() >= 0
                  ? static_cast<double>((cpuAfter - cpuBefore).count())
                  : -1;
    f.loadgenCpuMs = load ? toMs(report.cpuTime) : -1;
    f.overflows =
        overflowsBefore >= 0 && overflowsAfter >= 0 ? overflowsAfter - overflowsBefore : -1;

    if (phase != LoadGenerator::Phase::Done && n > 0)
        problems.append("the load did not complete: " + report.abortReason);
    if (report.answered != n)
        problems.append(QByteArray::number(n - report.answered) + " of " + QByteArray::number(n) +
                        " clients did not get the right answer");
    if (f.events.created != (n > 0 ? 1 : 0))
        problems.append("the provider saw " + QByteArray::number(f.events.created) +
                        " batches, not exactly " + QByteArray(n > 0 ? "1" : "0"));
    if (f.events.finished > 0 && f.events.lastStatus != "completed")
        problems.append("the provider's batch ended " + f.events.lastStatus);
    if (!f.alive)
        problems.append("llm-proxy ended during the run: " + f.ended);
    if (!store && QDirIterator(xdgData, {QStringLiteral("*.sqlite")}, QDir::Files,
                               QDirIterator::Subdirectories)
                      .hasNext())
        problems.append("llm-proxy opened a store in its default data folder despite "
                        "--in-memory: these are not in-memory figures");
    if (f.statsOverlapped)
        f.warnings.append("some probes overlapped the answer phase: figure 3 is not purely "
                          "'while holding'");
    if (f.overflows > 0)
        f.warnings.append("the listen queue overflowed " + QByteArray::number(f.overflows) +
                          " times: some clients waited for SYN retransmits (1 s and more)");
    if (!problems.isEmpty())
        f.logTail = proxy.logTail(15);
    f.ok = problems.isEmpty();
    return f;
}

QByteArray stubTable(const StubFigures &s, int n) {
    QByteArray out =
        "0 IDEAL STUB SERVER (llmproxy-bench --serve-stub: epoll, no Qt; the client's own floor)\n";
    out +=
        row("time to receive all N (first connect -> N-th request read)", num(s.acceptMs) + " ms");
    out += row("receive rate (N / time; sustained 10% -> 90%)",
               num(perSecond(n, s.acceptMs), 0) + " / " + num(s.sustainedRps, 0) + " requests/s");
    out += row("answer all N (command -> last client answered)", num(s.answerMs) + " ms");
    out += row("right answers", QByteArray::number(s.answered) + " of " + QByteArray::number(n));
    out += row("listen-queue overflows (whole host)",
               s.overflows < 0 ? QByteArrayLiteral("n/a") : QByteArray::number(s.overflows));
    out += row("bench load thread CPU time", num(s.loadgenCpuMs, 0) + " ms");
    return out;
}

QByteArray proxyTable(const ProxyFigures &f, const Options &o, const StubFigures &stub) {
    const int n = o.requests;
    const auto vsStub = [&stub](double value, double floor) -> QByteArray {
        return stub.ran && floor > 0 && value > 0
                   ? "   (stub " + num(floor) + " ms, x" + num(value / floor, 2) + ')'
                   : QByteArray();
    };
    QByteArray out = "PROXY, store " + QByteArray(f.store ? "on" : "off (--in-memory)") +
                     ", dispatcher " + dispatcherName() + '\n';
    out += "  " + f.commandLine + '\n';
    out += "1 ACCEPT\n";
    out += row("time to accept all N (first connect -> /stats queued+in_flight = N)",
               num(f.acceptMs) + " ms" + vsStub(f.acceptMs, stub.acceptMs));
    out += row("last request's bytes written after first connect", num(f.lastWriteMs) + " ms");
    out += row("accept rate (N / time)", num(perSecond(n, f.acceptMs), 0) + " requests/s");
    out += row("sustained accept rate (/stats count, 10% -> 90% of N)",
               num(f.sustainedRps, 0) + " requests/s");
    out += row("proxy CPU while accepting / per accepted request",
               num(f.cpuAcceptMs, 0) + " ms / " + num(f.cpuPerRequestUs(n), 1) + " us");
    out += "2 MEMORY (proxy)\n";
    out += row("RSS idle (after one request)", mib(f.idle.rssKiB));
    out += row("RSS when all N were queued", mib(f.queued.rssKiB));
    out += row("RSS holding N (batch submitted, waiting for it)", mib(f.holdKiB));
    out += row("RSS per held request ((holding - idle) / N)",
               num(f.perRequestBytes / 1024.0, 2) + " KiB");
    out += row("peak RSS (VmHWM, whole run)", mib(f.end.hwmKiB));
    out += "3 LATENCY while holding N (" + QByteArray::number(f.newMs.size()) +
           " of each, sequential, fresh connection each)\n";
    const auto pcts = [](const std::vector<double> &v) -> QByteArray {
        return num(percentile(v, 50), 2) + " / " + num(percentile(v, 95), 2) + " / " +
               num(v.empty() ? -1 : v.back(), 2) + " ms";
    };
    out += row("new request (malformed JSON -> 400) p50 / p95 / max", pcts(f.newMs));
    out += row("GET /stats p50 / p95 / max", pcts(f.statsMs));
    out += row("GET /metrics p50 / p95 / max", pcts(f.metricsMs));
    out += "4 BATCH COMPLETION -> ANSWERS\n";
    out += row("all N queued -> batch created at the provider (JSONL upload)",
               num(f.createdMs) + " ms");
    out += row("results arrive (output download) -> last client answered",
               num(f.resultsToLastMs) + " ms" + vsStub(f.resultsToLastMs, stub.answerMs));
    out += row("batch completed at the provider -> first client answered",
               num(f.completionToFirstMs) + " ms");
    out += row("batch completed at the provider -> last client answered",
               num(f.completionToLastMs) + " ms");
    out += "  (the last two include up to one --poll-interval = " +
           QByteArray::number(o.pollIntervalMs) + " ms before the proxy sees the completion)\n";
    out += "5 TOTAL\n";
    out += row("wall time, first connect -> last client answered", num(f.totalMs) + " ms");
    out += row("right answers (200, content echoes the client's own message)",
               QByteArray::number(f.answered) + " of " + QByteArray::number(n));
    out += row("wrong answers or errors", QByteArray::number(f.wrong));
    out += "CONTEXT\n";
    out +=
        row("batches at the provider (created / finished, last status)",
            QByteArray::number(f.events.created) + " / " + QByteArray::number(f.events.finished) +
                ", " + (f.events.lastStatus.isEmpty() ? "-" : f.events.lastStatus) + " (" +
                QByteArray::number(f.events.lastCompletedLines) + " lines ok, " +
                QByteArray::number(f.events.lastFailedLines) + " failed)");
    out += row("proxy CPU time during the run (user + system)", num(f.cpuMs, 0) + " ms");
    out += row("bench load thread CPU time", num(f.loadgenCpuMs, 0) + " ms");
    out += row("/stats polls by the load thread while accepting", QByteArray::number(f.statsPolls));
    out += row("listen-queue overflows during the run (whole host)",
               f.overflows < 0 ? QByteArrayLiteral("n/a") : QByteArray::number(f.overflows));
    out += row("llm-proxy at the end", f.alive ? QByteArray("running; stopped: " + f.stopped)
                                               : QByteArray("had ended: " + f.ended));
    for (const Failure &failure : f.failures) {
        out +=
            "  failure: request " + QByteArray::number(failure.index) + ": " + failure.what + '\n';
    }
    for (const QByteArray &warning : f.warnings)
        out += "  WARNING: " + warning + '\n';
    for (const QByteArray &problem : f.problems)
        out += "  PROBLEM: " + problem + '\n';
    if (!f.logTail.isEmpty())
        out += "  llm-proxy log (last lines):\n" + f.logTail + '\n';
    return out;
}

// The key figures of a run, for the RESULT line; `prefix` names the second run of
// --compare-store.
QByteArray proxyKeys(const ProxyFigures &f, int n, const QByteArray &prefix) {
    return ' ' + prefix + "accept_ms=" + kv(f.acceptMs) + ' ' + prefix +
           "accept_rate_rps=" + kv(perSecond(n, f.acceptMs), 0) + ' ' + prefix +
           "sustained_rate_rps=" + kv(f.sustainedRps, 0) + ' ' + prefix +
           "cpu_accept_ms=" + kv(f.cpuAcceptMs, 0) + ' ' + prefix +
           "cpu_per_request_us=" + kv(f.cpuPerRequestUs(n), 1) + ' ' + prefix +
           "rss_hold_kib=" + QByteArray::number(f.holdKiB) + ' ' + prefix +
           "rss_per_request_bytes=" + kv(f.perRequestBytes, 0) + ' ' + prefix +
           "new_p50_ms=" + kv(percentile(f.newMs, 50), 2) + ' ' + prefix +
           "new_p95_ms=" + kv(percentile(f.newMs, 95), 2) + ' ' + prefix +
           "stats_p50_ms=" + kv(percentile(f.statsMs, 50), 2) + ' ' + prefix +
           "stats_p95_ms=" + kv(percentile(f.statsMs, 95), 2) + ' ' + prefix +
           "metrics_p50_ms=" + kv(percentile(f.metricsMs, 50), 2) + ' ' + prefix +
           "metrics_p95_ms=" + kv(percentile(f.metricsMs, 95), 2) + ' ' + prefix +
           "results_to_last_answer_ms=" + kv(f.resultsToLastMs) + ' ' + prefix +
           "listen_overflows=" + QByteArray::number(f.overflows);
}

} // namespace

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("llmproxy-bench"));
    const std::optional<Options> parsed = parseOptions(app);
    if (!parsed)
        return 2;
    const Options &o = *parsed;
    if (o.serveStub)
        return serveStub();
    const int n = o.requests;

    const rlim_t files = raiseOpenFileLimit();
    if (files < rlim_t(n + FdReserve)) {
        fail("the open-file limit is " + QByteArray::number(quint64(files)) + ": " +
             QByteArray::number(n) + " clients need at least " + QByteArray::number(n + FdReserve) +
             " (raise the hard limit)");
        return 2;
    }
    QTemporaryDir temp;
    if (!temp.isValid()) {
        fail("cannot create a temporary directory");
        return 1;
    }

    print("llmproxy-bench: " + QByteArray::number(n) + " held chat completions" +
          (o.stream ? QByteArray(" (streaming)") : QByteArray()) + ", " +
          QByteArray::number(o.bodyBytes) + "-byte messages, " +
          (o.window == 0 ? QByteArray("all arriving at once")
                         : "at most " + QByteArray::number(o.window) + " uncounted") +
          ", from " +
          (o.sourceAddresses > 0 ? QByteArray::number(o.sourceAddresses) + " source addresses"
                                 : QByteArray("127.0.0.1")) +
          ", dispatcher " + dispatcherName() + '\n');

    QList<QByteArray> stubProblems;
    const StubFigures stub = runStub(o, temp.filePath(QStringLiteral("stub")), &stubProblems);
    std::vector<ProxyFigures> runs;
    const QList<bool> stores = o.store == StoreMode::Compare
                                   ? QList<bool>{true, false}
                                   : QList<bool>{o.store == StoreMode::On};
    for (const bool store : stores) {
        const QString dir = temp.filePath(store ? QStringLiteral("store") : QStringLiteral("mem"));
        runs.push_back(runProxy(o, store, dir));
    }

    const QByteArray rule(100, '-');
    QByteArray out = rule + '\n';
    if (stub.ran || !stubProblems.isEmpty()) {
        out += stubTable(stub, n);
        for (const QByteArray &problem : std::as_const(stubProblems))
            out += "  PROBLEM: " + problem + '\n';
        out += rule + '\n';
    }
    for (const ProxyFigures &f : runs)
        out += proxyTable(f, o, stub) + rule + '\n';
    std::optional<double> storeCostPct;    // rate lost, %
    std::optional<double> storeCpuCostPct; // CPU per request added, %
    if (runs.size() == 2) {
        const ProxyFigures &on = runs[0];
        const ProxyFigures &off = runs[1];
        out += "STORE COST (same N, store on vs --in-memory)\n";
        out += row("sustained accept rate",
                   num(on.sustainedRps, 0) + " vs " + num(off.sustainedRps, 0) + " requests/s");
        out += row("accept all N", num(on.acceptMs) + " vs " + num(off.acceptMs) + " ms");
        out += row("proxy CPU per accepted request",
                   num(on.cpuPerRequestUs(n), 1) + " vs " + num(off.cpuPerRequestUs(n), 1) + " us");
        if (on.sustainedRps > 0 && off.sustainedRps > 0)
            storeCostPct = (1.0 - on.sustainedRps / off.sustainedRps) * 100.0;
        if (on.cpuPerRequestUs(n) > 0 && off.cpuPerRequestUs(n) > 0)
            storeCpuCostPct = (on.cpuPerRequestUs(n) / off.cpuPerRequestUs(n) - 1.0) * 100.0;
        out += row("the store's cost: rate lost / CPU per request added",
                   percent(storeCostPct, "n/a") + " / " + percent(storeCpuCostPct, "n/a"));
        out += rule + '\n';
    }

    bool ok = stubProblems.isEmpty();
    for (const ProxyFigures &f : runs)
        ok = ok && f.ok;
    const ProxyFigures &f = runs.front();
    out +=
        "RESULT status=" + QByteArray(ok ? "ok" : "failed") + " requests=" + QByteArray::number(n) +
        " body_bytes=" + QByteArray::number(o.bodyBytes) + " dispatcher=" + dispatcherName() +
        " store=" + QByteArray(f.store ? "on" : "off") + " window=" + QByteArray::number(o.window) +
        " source_addresses=" + QByteArray::number(o.sourceAddresses) + " proxy_args=" +
        (o.proxyArguments.isEmpty() ? QByteArray("-")
                                    : o.proxyArguments.join(QLatin1Char('+')).toUtf8()) +
        " ok=" + QByteArray::number(f.answered) + " failed=" + QByteArray::number(n - f.answered) +
        " batches=" + QByteArray::number(f.events.created) + proxyKeys(f, n, {}) +
        " last_write_ms=" + kv(f.lastWriteMs) +
        " rss_idle_kib=" + QByteArray::number(f.idle.rssKiB) +
        " rss_peak_kib=" + QByteArray::number(f.end.hwmKiB) +
        " completion_to_first_answer_ms=" + kv(f.completionToFirstMs) +
        " completion_to_last_answer_ms=" + kv(f.completionToLastMs) +
        " poll_interval_ms=" + QByteArray::number(o.pollIntervalMs) +
        " processing_delay_ms=" + QByteArray::number(o.processingDelayMs) +
        " total_ms=" + kv(f.totalMs) + " proxy_cpu_ms=" + kv(f.cpuMs, 0) +
        " loadgen_cpu_ms=" + kv(f.loadgenCpuMs, 0) +
        " stats_overlapped_answers=" + QByteArray(f.statsOverlapped ? "1" : "0") +
        " stub_accept_ms=" + kv(stub.acceptMs) +
        " stub_sustained_rate_rps=" + kv(stub.sustainedRps, 0) +
        " stub_answer_ms=" + kv(stub.answerMs) +
        " stub_listen_overflows=" + QByteArray::number(stub.overflows);
    if (runs.size() == 2) {
        out += proxyKeys(runs[1], n, "inmem_") +
               " store_cost_pct=" + percent(storeCostPct, "nan", false) +
               " store_cpu_cost_pct=" + percent(storeCpuCostPct, "nan", false);
    }
    out += '\n';
    print(out);
    return ok ? 0 : 1;
}
