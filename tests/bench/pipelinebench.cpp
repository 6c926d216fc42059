// SPDX-License-Identifier: GPL-3.0-or-later
// llmproxy-pipeline-bench: the cost of pipelining (issue 9, item 6). N GET /healthz sent in
// one write on one connection to an in-process front end (the proxy's own HttpFrontEnd on
// this thread, as with --io-threads 1); prints the front end thread's CPU time per request and
// the wall time until the last answer, for each N given (default: 1,000 and 10,000). Every
// answer is checked (200, in order); the run fails (exit code 1) otherwise.

#include "batch/batchcore.h"
#include "http/httpfrontend.h"
#include "provider/openaiprovider.h"
#include "stats/stats.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QNetworkAccessManager>
#include <QStringList>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace {

double threadCpuSeconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// Sends `requests` pipelined GET /healthz in one write; reads until every answer came.
// Returns how many complete 200 answers arrived, in order.
int runClient(quint16 port, int requests) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
        ::close(fd);
        return 0;
    }
    QByteArray pipeline;
    for (int i = 0; i < requests; ++i)
        pipeline += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    std::thread writer([fd, &pipeline] {
        qsizetype sent = 0;
        while (sent < pipeline.size()) {
            const ssize_t n = ::send(fd, pipeline.constData() + sent,
                                     size_t(pipeline.size() - sent), MSG_NOSIGNAL);
            if (n <= 0)
                return;
            sent += n;
        }
    });
    const QByteArray answerEnd = "{\"status\":\"ok\"}";
    QByteArray received;
    int answers = 0;
    qsizetype scanned = 0;
    char buffer[65536];
    while (answers < requests) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0)
            break;
        received.append(buffer, n);
        qsizetype at = 0;
        while ((at = received.indexOf(answerEnd, scanned)) >= 0) {
            if (!received.sliced(scanned).startsWith("HTTP/1.1 200"))
                break;
            ++answers;
            scanned = at + answerEnd.size();
        }
        if (scanned > 1 << 20) {
            received.remove(0, scanned);
            scanned = 0;
        }
    }
    writer.join();
    ::close(fd);
    return answers;
}

} // namespace

int main(int argc, char **argv) {
    QCoreApplication app(argc, argv);
    QList<int> sizes;
    const QStringList args = app.arguments();
    for (qsizetype i = 1; i < args.size(); ++i) {
        if (args.at(i) == u"--pipeline" && i + 1 < args.size())
            sizes.append(args.at(++i).toInt());
    }
    if (sizes.isEmpty())
        sizes = {1000, 10'000};

    QNetworkAccessManager nam;
    OpenAiProvider provider(&nam, QUrl(QStringLiteral("http://127.0.0.1:9/v1")));
    Stats stats;
    SystemClock clock;
    BatchCore core(&provider, &clock, &stats, nullptr, CoreSettings{});
    FrontEndSettings settings;
    HttpFrontEnd front(&core, &stats, &clock, settings);
    QString error;
    if (!front.listenOn({ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}}, &error)) {
        std::fprintf(stderr, "llmproxy-pipeline-bench: %s\n", qPrintable(error));
        return 1;
    }
    const quint16 port = front.ports().constFirst();
    std::printf("%10s %14s %16s %12s %16s\n", "pipelined", "CPU total ms", "CPU us/request",
                "wall ms", "bytes framed");
    int status = 0;
    for (const int n : std::as_const(sizes)) {
        std::atomic<int> answers{-1};
        const quint64 framedBefore = front.framedBytes();
        const double cpuBefore = threadCpuSeconds();
        QElapsedTimer wall;
        wall.start();
        std::thread client([&answers, port, n] { answers = runClient(port, n); });
        while (answers < 0)
            QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
        const double cpu = threadCpuSeconds() - cpuBefore;
        const qint64 elapsed = wall.elapsed();
        client.join();
        std::printf("%10d %14.1f %16.2f %12lld %16llu\n", n, cpu * 1e3, cpu * 1e6 / n,
                    static_cast<long long>(elapsed),
                    static_cast<unsigned long long>(front.framedBytes() - framedBefore));
        if (answers != n) {
            std::fprintf(stderr, "llmproxy-pipeline-bench: %d of %d answers\n", int(answers), n);
            status = 1;
        }
        // Let the connection's close be processed before the next run.
        QElapsedTimer settle;
        settle.start();
        while (front.connections() > 0 && settle.elapsed() < 2000)
            QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
    }
    return status;
}
