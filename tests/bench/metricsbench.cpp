// SPDX-License-Identifier: GPL-3.0-or-later
// llmproxy-metrics-bench: what one GET /metrics costs to render (MetricsRegistry::render, the
// whole of the scrape's own work) with N descriptors open, as N held clients' sockets are, and
// the label series of a realistic proxy and of one filled up to every cardinality cap.
// Rendering never looks at held requests; the descriptors count because process_open_fds
// reads /proc/self/fd.
//
//   llmproxy-metrics-bench [--held 19000] [--renders 300]

#include "stats/metrics.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QElapsedTimer>

#include <algorithm>
#include <cstdio>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace llmproxy;
using accounting::AccountedRequest;
using accounting::Route;

namespace {

AccountedRequest request(Route route, const QByteArray &endpoint, const QByteArray &model,
                         int status, double seconds) {
    AccountedRequest r;
    r.route = route;
    r.endpoint = endpoint;
    r.model = model;
    r.httpStatus = status;
    r.seconds = seconds;
    if (status == 200) {
        r.usage.reported = true;
        r.usage.input = 1200;
        r.usage.cachedInput = 200;
        r.usage.output = 300;
        r.usage.reasoning = 50;
        r.cost.paid = 1'000'000;
        r.cost.list = 2'000'000;
        r.cost.saved = 1'000'000;
    }
    return r;
}

struct Timing {
    double p50 = 0, p95 = 0, max = 0;
    qsizetype bytes = 0;
    qsizetype lines = 0;
};

Timing time(const MetricsRegistry &metrics, int renders) {
    std::vector<double> ms;
    Timing t;
    for (int i = 0; i < renders + 10; ++i) {
        QElapsedTimer timer;
        timer.start();
        const QByteArray text = metrics.render({19000, 0, 1});
        const double elapsed = double(timer.nsecsElapsed()) / 1e6;
        if (i >= 10) // warm-up
            ms.push_back(elapsed);
        t.bytes = text.size();
        t.lines = text.count('\n');
    }
    std::sort(ms.begin(), ms.end());
    t.p50 = ms[ms.size() / 2];
    t.p95 = ms[ms.size() * 95 / 100];
    t.max = ms.back();
    return t;
}

void print(const char *scenario, const Timing &t) {
    std::printf("%-44s p50 %6.3f ms  p95 %6.3f ms  max %6.3f ms  (%lld lines, %lld bytes)\n",
                scenario, t.p50, t.p95, t.max, static_cast<long long>(t.lines),
                static_cast<long long>(t.bytes));
}

} // namespace

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Times MetricsRegistry::render (GET /metrics) with N open descriptors."));
    parser.addHelpOption();
    const QCommandLineOption held(QStringLiteral("held"),
                                  QStringLiteral("Descriptors to hold open, as held clients' "
                                                 "sockets (default 19000)."),
                                  QStringLiteral("N"), QStringLiteral("19000"));
    const QCommandLineOption renders(QStringLiteral("renders"),
                                     QStringLiteral("Timed renders per scenario (default 300)."),
                                     QStringLiteral("N"), QStringLiteral("300"));
    parser.addOptions({held, renders});
    parser.process(app);
    const int wanted = parser.value(held).toInt();
    const int count = std::max(1, parser.value(renders).toInt());

    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    std::vector<int> open;
    open.reserve(size_t(wanted));
    for (int i = 0; i < wanted; ++i) {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        open.push_back(fd);
    }
    std::printf("descriptors held open: %zu of %d wanted (open-file limit %llu)\n", open.size(),
                wanted, static_cast<unsigned long long>(limit.rlim_cur));

    const QList<QByteArray> endpoints = {"/v1/chat/completions", "/v1/responses", "/v1/embeddings"};
    const QList<Route> routes = {Route::Batch, Route::SyncFallback, Route::Relay};

    {
        MetricsRegistry empty;
        print("no requests yet", time(empty, count));
    }
    {
        // 30 models, 3 routes, 3 endpoints, 4 status codes; a few batch statuses.
        MetricsRegistry realistic;
        for (int m = 0; m < 30; ++m) {
            for (Route route : routes) {
                for (const QByteArray &endpoint : endpoints) {
                    for (int status : {200, 400, 429, 500}) {
                        realistic.record(request(route, endpoint,
                                                 "gpt-model-" + QByteArray::number(m), status,
                                                 double(m * 60)));
                    }
                }
            }
        }
        for (const char *status : {"completed", "failed", "expired", "cancelled"})
            realistic.recordBatch(status, 3600);
        print("realistic: 30 models x 3 routes x 3 endpoints", time(realistic, count));
    }
    {
        // Every cap reached: 200 models and more, every route, request series up to the cap.
        MetricsRegistry full;
        const QList<Route> all = {Route::Batch, Route::SyncFallback, Route::Relay, Route::Flex,
                                  Route::Cache};
        for (int m = 0; m < int(MetricsRegistry::MaxModels) + 100; ++m) {
            for (Route route : all) {
                for (int status : {200, 400, 429, 500, 502, 503}) {
                    full.record(request(route, endpoints.at(m % endpoints.size()),
                                        "model-" + QByteArray::number(m), status, 30));
                }
            }
        }
        for (int s = 0; s < int(MetricsRegistry::MaxBatchStatuses); ++s)
            full.recordBatch(QByteArray("status-" + QByteArray::number(s)), 3600);
        print("at every cap (200 models, 5 routes, 5000)", time(full, count));
    }
    for (const int fd : open)
        ::close(fd);
    return 0;
}
