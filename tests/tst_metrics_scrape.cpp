// SPDX-License-Identifier: GPL-3.0-or-later
// GET /metrics from a running proxy over loopback, against the fake provider: the gauges while
// a batch is held and after it, batches_total after a real batch, the accounting counters, the
// same access rules as /stats, and Prometheus' own `promtool check metrics` on a real scrape.

#include "accounting/accountedrequest.h"
#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "stats/metrics.h"
#include "testclient.h"
#include "testmain.h"

#include <QHash>
#include <QNetworkAccessManager>
#include <QNetworkInterface>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

const QByteArray AliceToken = "alice-token-0123456789";

// Every sample line of an exposition: "name{labels}" -> value.
QHash<QByteArray, QByteArray> samples(const QByteArray &text) {
    QHash<QByteArray, QByteArray> out;
    for (const QByteArray &line : text.split('\n')) {
        if (line.isEmpty() || line.startsWith('#'))
            continue;
        const qsizetype space = line.lastIndexOf(' ');
        out.insert(line.first(space), line.sliced(space + 1));
    }
    return out;
}

accounting::AccountedRequest probe(const QByteArray &model) {
    accounting::AccountedRequest r;
    r.route = accounting::Route::Relay;
    r.endpoint = "/v1/responses";
    r.model = model;
    r.caller = "alice";
    r.provider = "openai";
    r.httpStatus = 200;
    r.seconds = 2.5;
    r.usage.reported = true;
    r.usage.input = 1200;
    r.usage.cachedInput = 1000;
    r.usage.output = 300;
    r.usage.reasoning = 100;
    r.cost.paid = 2'500'000'000; // $0.0025
    r.cost.list = 2'500'000'000;
    r.cost.saved = 0;
    return r;
}

} // namespace

class tst_MetricsScrape final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    Config baseConfig() const {
        Config config = m_fx->baseConfig();
        config.ioThreads = ProxyFixture::ioThreads(3); // scrapes on other threads too
        return config;
    }

    // Opens a connection and posts a streaming chat request on it.
    std::unique_ptr<RawClient> postStream(const QByteArray &content) {
        auto client = std::make_unique<RawClient>();
        if (!client->connectTo(m_fx->port()))
            return nullptr;
        client->post("/v1/chat/completions",
                     R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user",)"
                     R"("content":")" +
                         content + R"("}]})");
        return client;
    }

    // GET /metrics; the body, or a null array when it did not answer 200 in the right type.
    QByteArray scrape(const Headers &headers = {}) {
        QNetworkReply *reply = m_fx->client()->send("GET", "/metrics", {}, headers);
        if (!TestClient::finished(reply) || TestClient::status(reply) != 200)
            return {};
        if (reply->rawHeader("content-type") != "text/plain; version=0.0.4; charset=utf-8")
            return {};
        return reply->readAll();
    }

    // The value of one sample in a fresh scrape ("" when absent).
    QByteArray scraped(const QByteArray &series) { return samples(scrape()).value(series); }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>(ProxyFixture::Store::None);
        QVERIFY(m_fx->listening());
        QVERIFY(m_fx->startProxy(baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    void gaugesFollowARealBatchAndItIsCounted() {
        const QByteArray before = scrape();
        QVERIFY(!before.isEmpty());
        QCOMPARE(samples(before).value("llm_proxy_in_flight_requests"), QByteArray("0"));
        QVERIFY(!before.contains("llm_proxy_batches_total{"));

        m_fx->fake()->setProcessingDelay(2500ms); // held in_progress long enough to be seen
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 3; ++i)
            replies.append(m_fx->client()->send("POST", "/v1/chat/completions",
                                                chatBody("question " + QByteArray::number(i))));
        // Queued first (the window is open), then in the batch.
        QTRY_COMPARE_WITH_TIMEOUT(scraped("llm_proxy_in_flight_requests"), QByteArray("3"), 5000);
        const QHash<QByteArray, QByteArray> held = samples(scrape());
        QCOMPARE(held.value("llm_proxy_queued_requests"), QByteArray("0"));
        QCOMPARE(held.value("llm_proxy_active_batches"), QByteArray("1"));

        for (QNetworkReply *reply : std::as_const(replies)) {
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
        }
        QTRY_COMPARE(scraped("llm_proxy_active_batches"), QByteArray("0"));
        const QHash<QByteArray, QByteArray> after = samples(scrape());
        QCOMPARE(after.value("llm_proxy_in_flight_requests"), QByteArray("0"));
        QCOMPARE(after.value("llm_proxy_queued_requests"), QByteArray("0"));
        QCOMPARE(after.value("llm_proxy_batches_total{status=\"completed\"}"), QByteArray("1"));
        QCOMPARE(after.value("llm_proxy_batch_duration_seconds_count"), QByteArray("1"));
        // It was held for 2.5 s at the provider: the duration says so, and its bucket agrees
        // with it (how long exactly depends on the provider's clock: it may be just under 2.5).
        const double seconds = after.value("llm_proxy_batch_duration_seconds_sum").toDouble();
        QVERIFY2(seconds >= 2.0, QByteArray::number(seconds).constData());
        QCOMPARE(after.value("llm_proxy_batch_duration_seconds_bucket{le=\"1\"}"), QByteArray("0"));
        QCOMPARE(after.value("llm_proxy_batch_duration_seconds_bucket{le=\"2.5\"}"),
                 QByteArray(seconds <= 2.5 ? "1" : "0"));
        QCOMPARE(after.value("llm_proxy_batch_duration_seconds_bucket{le=\"5\"}"),
                 QByteArray(seconds <= 5 ? "1" : "0"));
        QCOMPARE(after.value("llm_proxy_batch_duration_seconds_bucket{le=\"+Inf\"}"),
                 QByteArray("1"));
        // Nothing of the key anywhere.
        QVERIFY(!scrape().contains("sk-test-key"));
    }

    // A streaming client (issue 11) is a waiting stream while its batch runs, gets keep-alives,
    // and is counted by how its wait ended: replayed, or gone when it hung up first.
    void streamsAreCountedWhileTheyWaitAndWhenTheyEnd() {
        Config config = baseConfig();
        config.streamKeepAlive = 1s;
        QVERIFY(m_fx->startProxy(config));
        m_fx->fake()->setProcessingDelay(2500ms);
        const QByteArray replayed = R"(llm_proxy_streams_ended_total{outcome="replayed"})";
        const QByteArray gone = R"(llm_proxy_streams_ended_total{outcome="client_gone"})";
        QCOMPARE(scraped("llm_proxy_waiting_streams"), QByteArray("0"));
        QCOMPARE(scraped(replayed), QByteArray("0"));

        auto client = postStream("stream me");
        QVERIFY(client);
        QTRY_COMPARE(scraped("llm_proxy_waiting_streams"), QByteArray("1"));
        QTRY_VERIFY_WITH_TIMEOUT(scraped("llm_proxy_stream_keepalives_total").toInt() >= 1, 10'000);
        QVERIFY(
            client->waitFor([&] { return client->received.contains("\r\n0\r\n\r\n"); }, 15'000));
        QVERIFY(client->received.contains("data: [DONE]"));
        QTRY_COMPARE(scraped("llm_proxy_waiting_streams"), QByteArray("0"));
        QCOMPARE(scraped(replayed), QByteArray("1"));
        QCOMPARE(scraped(gone), QByteArray("0"));

        auto leaving = postStream("never mind");
        QVERIFY(leaving);
        QTRY_COMPARE(scraped("llm_proxy_waiting_streams"), QByteArray("1"));
        leaving->socket.abort();
        QTRY_COMPARE(scraped(gone), QByteArray("1"));
        QCOMPARE(scraped("llm_proxy_waiting_streams"), QByteArray("0"));
        QCOMPARE(scraped(replayed), QByteArray("1"));
    }

    void accountedRequestsReachTheCounters() {
        // The core emits requestAccounted for every final answer; emitted here directly, so
        // the wiring (core -> registry -> every front end's /metrics) is what is tested.
        BatchCore *core = m_fx->proxy()->core();
        Q_EMIT core->requestAccounted(probe("metrics-probe-model"));
        const QByteArray labels = "{route=\"relay\",model=\"metrics-probe-model\"}";
        const QByteArray requests = "llm_proxy_requests_total{route=\"relay\",endpoint=\"/v1/"
                                    "responses\",model=\"metrics-probe-model\",code=\"200\"}";
        // Every front end (each on its own thread) renders the same registry.
        for (int i = 0; i < 6; ++i)
            QCOMPARE(scraped(requests), QByteArray("1"));
        QHash<QByteArray, QByteArray> s = samples(scrape());
        QCOMPARE(s.value("llm_proxy_tokens_total{type=\"input\",route=\"relay\",model=\"metrics-"
                         "probe-model\"}"),
                 QByteArray("1200"));
        QCOMPARE(s.value("llm_proxy_tokens_total{type=\"cached_input\",route=\"relay\",model="
                         "\"metrics-probe-model\"}"),
                 QByteArray("1000"));
        QCOMPARE(s.value("llm_proxy_tokens_total{type=\"output\",route=\"relay\",model=\"metrics-"
                         "probe-model\"}"),
                 QByteArray("300"));
        QCOMPARE(s.value("llm_proxy_tokens_total{type=\"reasoning\",route=\"relay\",model="
                         "\"metrics-probe-model\"}"),
                 QByteArray("100"));
        QCOMPARE(s.value("llm_proxy_cost_usd_total" + labels), QByteArray("0.0025"));
        QCOMPARE(s.value("llm_proxy_list_cost_usd_total" + labels), QByteArray("0.0025"));
        QCOMPARE(s.value("llm_proxy_saved_usd_total" + labels), QByteArray("0"));
        QCOMPARE(s.value("llm_proxy_request_duration_seconds_count{route=\"relay\"}"),
                 QByteArray("1"));

        Q_EMIT core->requestAccounted(probe("metrics-probe-model"));
        s = samples(scrape());
        QCOMPARE(s.value(requests), QByteArray("2"));
        QCOMPARE(s.value("llm_proxy_cost_usd_total" + labels), QByteArray("0.005"));
        QCOMPARE(s.value("llm_proxy_request_duration_seconds_sum{route=\"relay\"}"),
                 QByteArray("5"));
    }

    void servedOnlyWhereStatsIs() {
        // HEAD: the headers, no body.
        QNetworkAccessManager manager;
        std::unique_ptr<QNetworkReply> head(manager.head(QNetworkRequest(
            QUrl(QStringLiteral("http://127.0.0.1:%1/metrics").arg(m_fx->port())))));
        QVERIFY(TestClient::finished(head.get()));
        QCOMPARE(head->rawHeader("content-type"),
                 QByteArray("text/plain; version=0.0.4; charset=utf-8"));
        QCOMPARE(TestClient::status(head.get()), 200);
        QVERIFY(head->readAll().isEmpty());
        // With proxy tokens: a token is needed, as for /stats.
        Config config = baseConfig();
        config.apiKey = "sk-configured-0000";
        config.tokens = {{"alice", AliceToken}};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(m_fx->client()->statusOf("GET", "/metrics", {}), 401);
        QCOMPARE(m_fx->client()->statusOf("GET", "/metrics", {{"Authorization", "Bearer wrong"}}),
                 401);
        QVERIFY(!scrape({{"Authorization", "Bearer " + AliceToken}}).isEmpty());
    }

    // A peer off loopback: the proxy listens on this machine's own LAN address. Skipped
    // without one.
    void offLoopbackNeedsAToken() {
        QHostAddress lan;
        for (const QHostAddress &address : QNetworkInterface::allAddresses()) {
            if (address.protocol() == QAbstractSocket::IPv4Protocol && !address.isLoopback() &&
                !address.isLinkLocal()) {
                lan = address;
                break;
            }
        }
        if (lan.isNull())
            QSKIP("no non-loopback IPv4 address on this machine");
        const auto statusFrom = [&](const QByteArray &extra) {
            QTcpSocket socket;
            socket.connectToHost(lan, m_fx->port());
            if (!QTest::qWaitFor([&] { return socket.state() == QAbstractSocket::ConnectedState; },
                                 5000))
                return 0;
            socket.write("GET /metrics HTTP/1.1\r\nHost: " + lan.toString().toLatin1() + "\r\n" +
                         extra + "Connection: close\r\n\r\n");
            QByteArray received;
            [[maybe_unused]] const bool closed = QTest::qWaitFor(
                [&] {
                    received += socket.readAll();
                    return socket.state() == QAbstractSocket::UnconnectedState;
                },
                5000);
            received += socket.readAll();
            return received.mid(9, 3).toInt();
        };
        Config config = baseConfig();
        config.listen = {ListenAddress{lan, 0}};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(statusFrom({}), 403);
        config.tokens = {{"alice", AliceToken}};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(statusFrom({}), 401);
        QCOMPARE(statusFrom("Authorization: Bearer " + AliceToken + "\r\n"), 200);
    }

    // Prometheus' own linter on a real scrape, after a batch and records whose labels need
    // escaping or folding. A ctest of its own (metrics_promtool) runs only this function and
    // reports it skipped when promtool is not installed (Debian package `prometheus`).
    void promtoolChecksARealScrape() {
        const QString promtool = QStandardPaths::findExecutable(QStringLiteral("promtool"));
        if (promtool.isEmpty())
            QSKIP("promtool is not installed (Debian package prometheus): "
                  "the scrape was not checked by Prometheus");
        QNetworkReply *reply = m_fx->client()->send("POST", "/v1/chat/completions", chatBody("q"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QTRY_COMPARE(scraped("llm_proxy_batches_total{status=\"completed\"}"), QByteArray("1"));
        BatchCore *core = m_fx->proxy()->core();
        for (const QByteArray &model :
             {QByteArray("gpt-4o-mini"), QByteArray("we\"ird\\model"), QByteArray("a\nb"),
              QByteArray("mod\xc3\xa8le"), QByteArray()}) {
            accounting::AccountedRequest r = probe(model);
            Q_EMIT core->requestAccounted(r);
            r.route = accounting::Route::Batch;
            r.cost = {};
            Q_EMIT core->requestAccounted(r); // unpriced
            r.usage = {};
            r.httpStatus = 500;
            Q_EMIT core->requestAccounted(r); // usage not reported
        }
        const QByteArray text = scrape();
        QVERIFY(text.contains("llm_proxy_unpriced_requests_total{"));
        QVERIFY(text.contains("llm_proxy_usage_unreported_requests_total{"));
        QVERIFY(text.contains("model=\"we\\\"ird\\\\model\""));

        QProcess check;
        check.start(promtool, {QStringLiteral("check"), QStringLiteral("metrics")});
        QVERIFY(check.waitForStarted());
        check.write(text);
        check.closeWriteChannel();
        QVERIFY(check.waitForFinished(30'000));
        const QByteArray output = check.readAllStandardOutput() + check.readAllStandardError();
        const QByteArray report = "promtool check metrics: exit " +
                                  QByteArray::number(check.exitCode()) + "\n" + output +
                                  "\nscrape:\n" + text;
        QVERIFY2(check.exitStatus() == QProcess::NormalExit && check.exitCode() == 0,
                 report.constData());
        // No lint remarks either (promtool prints them and still exits 0 for some).
        QVERIFY2(output.trimmed().isEmpty(), output.constData());
    }
};

LLMPROXY_TEST_MAIN(tst_MetricsScrape)
#include "tst_metrics_scrape.moc"
