// SPDX-License-Identifier: GPL-3.0-or-later
// Anthropic's front door (issue 13): POST /v1/messages answered through Message Batches at the
// fake Anthropic API, over loopback, with the store. Anthropic's error shape for everything the
// proxy says on its paths, the request checks, groups by anthropic-version and anthropic-beta,
// relays, streams with ping events, and a restart mid-batch that the retried client adopts.

#include "api/batchresult.h"
#include "api/httpanswer.h"
#include "batch/batchcore.h"
#include "fakeanthropic.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkReply>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

const QByteArray ClientKey = "sk-ant-test-client-key-0123";
const Headers AnthropicKey{{"x-api-key", ClientKey}, {"anthropic-version", "2023-06-01"}};

QByteArray messagesBody(const QByteArray &text, const QByteArray &model = "claude-sonnet-4-5") {
    return R"({"model":")" + model + R"(","max_tokens":64,"messages":[{"role":"user","content":")" +
           text + R"("}]})";
}

// The error of an Anthropic-shaped body: its error.type, or empty when the body is not one.
QByteArray anthropicErrorTypeOf(const QByteArray &body) {
    const QJsonObject top = jsonOf(body);
    if (top.value(QLatin1StringView("type")).toString() != QLatin1StringView("error"))
        return {};
    return top.value(QLatin1StringView("error"))
        .toObject()
        .value(QLatin1StringView("type"))
        .toString()
        .toUtf8();
}

// A claude-opus-4-1 request whose system prompt is a cache breakpoint with the given TTL.
QByteArray cachedBody(const char *ttl, const char *text) {
    const QJsonObject system{{QStringLiteral("type"), QStringLiteral("text")},
                             {QStringLiteral("text"), QStringLiteral("a long prompt")},
                             {QStringLiteral("cache_control"),
                              QJsonObject{{QStringLiteral("type"), QStringLiteral("ephemeral")},
                                          {QStringLiteral("ttl"), QString::fromLatin1(ttl)}}}};
    const QJsonObject user{{QStringLiteral("role"), QStringLiteral("user")},
                           {QStringLiteral("content"), QString::fromLatin1(text)}};
    return QJsonDocument(QJsonObject{{QStringLiteral("model"), QStringLiteral("claude-opus-4-1")},
                                     {QStringLiteral("max_tokens"), 64},
                                     {QStringLiteral("system"), QJsonArray{system}},
                                     {QStringLiteral("messages"), QJsonArray{user}}})
        .toJson(QJsonDocument::Compact);
}

QString messageText(const QByteArray &body) {
    return jsonOf(body)
        .value(QLatin1StringView("content"))
        .toArray()
        .at(0)
        .toObject()
        .value(QLatin1StringView("text"))
        .toString();
}

} // namespace

class tst_AnthropicFront final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<FakeAnthropic> m_fake;
    std::unique_ptr<ProxyService> m_proxy;
    std::unique_ptr<TestClient> m_client;

    Config baseConfig(bool withAnthropic = true) const {
        Config config;
        config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}};
        config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1")); // OpenAI: unused
        config.batchWindow = 200ms;
        config.pollInterval = 40ms;
        config.dataDir = m_dir->path();
        if (withAnthropic) {
            config.providers = {"anthropic=anthropic;url=" + m_fake->baseUrl().toString().toUtf8()};
        }
        return config;
    }

    void startProxy(const Config &config) {
        m_proxy.reset(); // a previous instance lets go of the store first
        m_proxy = std::make_unique<ProxyService>(config);
        QSignalSpy started(m_proxy.get(), &ProxyService::started);
        m_proxy->start();
        QCOMPARE(started.size(), 1);
        m_client->setPort(started.first().first().value<QList<quint16>>().first());
    }

    QNetworkReply *send(const QByteArray &body, const Headers &headers = AnthropicKey,
                        const QByteArray &path = "/v1/messages") {
        return m_client->send("POST", path, body, headers);
    }

    QByteArray get(const QByteArray &path) {
        QNetworkReply *reply = m_client->send("GET", path, {}, {});
        if (!TestClient::finished(reply))
            return {};
        return reply->readAll();
    }
    // /usage's rows grouped by `groupBy`, by that column's value.
    QHash<QString, QJsonObject> usageRows(const QByteArray &groupBy) {
        QHash<QString, QJsonObject> rows;
        const QJsonObject usage = jsonOf(get("/usage?group_by=" + groupBy));
        for (const QJsonValue &row : usage.value(u"rows").toArray())
            rows.insert(row.toObject().value(QString::fromLatin1(groupBy)).toString(),
                        row.toObject());
        return rows;
    }

    int paidLines() const {
        int lines = 0;
        for (const auto &batch : m_fake->batches())
            lines += int(batch.customIds.size());
        return lines;
    }

private Q_SLOTS:
    void initTestCase() {
        qunsetenv("ANTHROPIC_API_KEY"); // each client's own key, unless a test sets one
    }

    void init() {
        m_dir = std::make_unique<QTemporaryDir>();
        m_fake = std::make_unique<FakeAnthropic>();
        QVERIFY(m_fake->listen());
        m_fake->setProcessingDelay(30ms);
        m_client = std::make_unique<TestClient>();
        startProxy(baseConfig());
    }

    void cleanup() {
        m_client.reset();
        m_proxy.reset();
        m_fake.reset();
        m_dir.reset();
    }

    void checksAnswerInAnthropicsShape_data() {
        QTest::addColumn<QByteArray>("body");
        QTest::addColumn<bool>("withKey");
        QTest::addColumn<int>("status");
        QTest::addColumn<QByteArray>("type");
        QTest::addColumn<QString>("mentions");
        const QByteArray m = R"("messages":[{"role":"user","content":"hi"}])";
        QTest::newRow("empty body")
            << QByteArray() << true << 400 << QByteArray("invalid_request_error") << "empty";
        QTest::newRow("not an object") << QByteArray("[1]") << true << 400
                                       << QByteArray("invalid_request_error") << "JSON object";
        QTest::newRow("broken json") << QByteArray(R"({"model":)") << true << 400
                                     << QByteArray("invalid_request_error") << "not valid JSON";
        QTest::newRow("no model") << R"({"max_tokens":5,)" + m + "}" << true << 400
                                  << QByteArray("invalid_request_error") << "model";
        QTest::newRow("model not a string")
            << R"({"model":7,"max_tokens":5,)" + m + "}" << true << 400
            << QByteArray("invalid_request_error") << "model";
        QTest::newRow("empty model") << R"({"model":"","max_tokens":5,)" + m + "}" << true << 400
                                     << QByteArray("invalid_request_error") << "model";
        QTest::newRow("no max_tokens") << R"({"model":"claude",)" + m + "}" << true << 400
                                       << QByteArray("invalid_request_error") << "max_tokens";
        for (const char *bad :
             {"0", "-3", "1.5", "1e3", "\"64\"", "null", "99999999999999999999"}) {
            QTest::addRow("max_tokens %s", bad)
                << R"({"model":"claude","max_tokens":)" + QByteArray(bad) + "," + m + "}" << true
                << 400 << QByteArray("invalid_request_error") << "max_tokens";
        }
        QTest::newRow("no messages") << QByteArray(R"({"model":"claude","max_tokens":5})") << true
                                     << 400 << QByteArray("invalid_request_error") << "messages";
        QTest::newRow("empty messages")
            << QByteArray(R"({"model":"claude","max_tokens":5,"messages":[]})") << true << 400
            << QByteArray("invalid_request_error") << "messages";
        QTest::newRow("messages an object")
            << QByteArray(R"({"model":"claude","max_tokens":5,"messages":{}})") << true << 400
            << QByteArray("invalid_request_error") << "messages";
        QTest::newRow("model twice")
            << R"({"model":"a","model":"b","max_tokens":5,)" + m + "}" << true << 400
            << QByteArray("invalid_request_error") << "more than once";
        QTest::newRow("stream not a boolean")
            << R"({"model":"claude","max_tokens":5,"stream":"yes",)" + m + "}" << true << 400
            << QByteArray("invalid_request_error") << "stream";
        QTest::newRow("no key") << messagesBody("hi") << false << 401
                                << QByteArray("authentication_error") << "x-api-key";
    }
    void checksAnswerInAnthropicsShape() {
        QFETCH(QByteArray, body);
        QFETCH(bool, withKey);
        QNetworkReply *reply =
            send(body, withKey ? AnthropicKey : Headers{{"anthropic-version", "2023-06-01"}});
        QVERIFY(TestClient::finished(reply));
        QTEST(TestClient::status(reply), "status");
        const QByteArray answer = reply->readAll();
        QTEST(anthropicErrorTypeOf(answer), "type");
        QFETCH(QString, mentions);
        const QString message = jsonOf(answer)
                                    .value(QLatin1StringView("error"))
                                    .toObject()
                                    .value(QLatin1StringView("message"))
                                    .toString();
        QVERIFY2(message.contains(mentions), qPrintable(message));
        QCOMPARE(m_fake->requests().size(), 0); // nothing reached the provider
    }

    void frontDoorRefusalsOnAnthropicPathsAreAnthropicShaped() {
        // A web page's request: 403, as permission_error.
        QNetworkReply *page =
            send(messagesBody("hi"), AnthropicKey + Headers{{"Origin", "http://evil.test"}});
        QVERIFY(TestClient::finished(page));
        QCOMPARE(TestClient::status(page), 403);
        QCOMPARE(anthropicErrorTypeOf(page->readAll()), QByteArray("permission_error"));
        // The same refusal on an OpenAI path stays OpenAI-shaped.
        QNetworkReply *openAi = m_client->send("POST", "/v1/chat/completions", chatBody("hi"),
                                               KeyA + Headers{{"Origin", "http://evil.test"}});
        QVERIFY(TestClient::finished(openAi));
        QCOMPARE(TestClient::status(openAi), 403);
        const QJsonObject body = jsonOf(openAi->readAll());
        QVERIFY(!body.contains(QLatin1StringView("type")));
        QVERIFY(
            body.value(QLatin1StringView("error")).toObject().contains(QLatin1StringView("code")));
    }

    void withoutAnAnthropicProviderTheAnswerSaysHowToConfigureOne() {
        startProxy(baseConfig(false));
        QNetworkReply *reply = send(messagesBody("hi"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 404);
        const QByteArray body = reply->readAll();
        QCOMPARE(anthropicErrorTypeOf(body), QByteArray("not_found_error"));
        QVERIFY(body.contains("--provider anthropic=anthropic"));
    }

    void answersComeFromOneBatchWithTheProvidersHeaders() {
        QNetworkReply *a = send(messagesBody("one"));
        QNetworkReply *b = send(messagesBody("two"), {{"Authorization", "Bearer " + ClientKey},
                                                      {"anthropic-version", "2023-06-01"}});
        QVERIFY(TestClient::finished(a));
        QVERIFY(TestClient::finished(b));
        QCOMPARE(TestClient::status(a), 200);
        QCOMPARE(TestClient::status(b), 200);
        QCOMPARE(messageText(a->readAll()), QStringLiteral("echo: one"));
        QCOMPARE(messageText(b->readAll()), QStringLiteral("echo: two"));
        QVERIFY(a->rawHeader(BatchIdHeader).startsWith("msgbatch_"));
        QCOMPARE(m_fake->batches().size(), 1); // x-api-key and Bearer: the same key, one group
        QCOMPARE(m_fake->batches().first().apiKey, ClientKey);
        QCOMPARE(m_fake->batches().first().version, QByteArray("2023-06-01"));
    }

    void groupsByVersionAndBeta() {
        const Headers v1{{"x-api-key", ClientKey}, {"anthropic-version", "2023-06-01"}};
        const Headers v1Beta = v1 + Headers{{"anthropic-beta", "tools-2024-04-04"}};
        const Headers v0{{"x-api-key", ClientKey}, {"anthropic-version", "2023-01-01"}};
        QList<QNetworkReply *> replies{send(messagesBody("a"), v1), send(messagesBody("b"), v1Beta),
                                       send(messagesBody("c"), v0), send(messagesBody("d"), v1)};
        for (QNetworkReply *reply : replies) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
        }
        QCOMPARE(m_fake->batches().size(), 3);
        QSet<QByteArray> seen;
        for (const auto &batch : m_fake->batches()) {
            seen.insert(batch.version + '|' + batch.beta + '|' +
                        QByteArray::number(batch.customIds.size()));
        }
        QCOMPARE(seen, (QSet<QByteArray>{"2023-06-01||2", "2023-06-01|tools-2024-04-04|1",
                                         "2023-01-01||1"}));
    }

    void erroredResultsKeepTheirStatusAndShape() {
        QNetworkReply *reply = send(messagesBody("[[error:rate_limit_error]]"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 429);
        QCOMPARE(anthropicErrorTypeOf(reply->readAll()), QByteArray("rate_limit_error"));
    }

    void theJobsOwnErrorsAreAnthropicShaped() {
        // The create call is refused for good (400): the job answers its clients itself.
        m_fake->failNext(FakeAnthropic::Operation::Create, 10, 400);
        QNetworkReply *reply = send(messagesBody("refused"));
        QVERIFY(TestClient::finished(reply));
        const int status = TestClient::status(reply);
        QVERIFY2(status >= 400, QByteArray::number(status));
        QCOMPARE(anthropicErrorTypeOf(reply->readAll()), anthropicErrorType(status));
    }

    void relaysTheRestOfAnthropicsPaths() {
        // count_tokens and X-Batch: off go to the provider as they are, with the client's key.
        QNetworkReply *count =
            send(messagesBody("count me"), AnthropicKey, "/v1/messages/count_tokens");
        QVERIFY(TestClient::finished(count));
        QNetworkReply *direct =
            send(messagesBody("now"), AnthropicKey + Headers{{"X-Batch", "off"}});
        QVERIFY(TestClient::finished(direct));
        QCOMPARE(TestClient::status(direct), 200);
        QCOMPARE(messageText(direct->readAll()), QStringLiteral("echo: now"));
        QCOMPARE(m_fake->count("POST", "/v1/messages/count_tokens"), 1);
        QCOMPARE(m_fake->batches().size(), 0);
        for (const auto &request : m_fake->requests())
            QCOMPARE(request.headers.value("x-api-key"), ClientKey);
    }

    // Relayed /v1/messages calls (X-Batch: off, a relay model route, a relayed stream) are in
    // the ledger at the standard price, from Anthropic's usage: a JSON answer's, and a stream's
    // message_start (input, cache) and message_delta (output) events; the request went to
    // Anthropic as the client sent it.
    void relayedMessagesAreCountedAtTheStandardPrice() {
        Config config = baseConfig();
        config.modelRoutes = {"claude-opus-4-1=relay"};
        startProxy(config);
        const Headers off = AnthropicKey + Headers{{"X-Batch", "off"}};
        // 1-hour cache writes: 100 written, 40 read; 19 bytes of text after the breakpoint.
        QNetworkReply *json = send(cachedBody("1h", "[[cache:100:40]] hi")); // route: relay
        QVERIFY(TestClient::finished(json));
        QCOMPARE(TestClient::status(json), 200);
        const QByteArray streamBody = R"({"model":"claude-opus-4-1","max_tokens":64,)"
                                      R"("stream":true,"messages":[{"role":"user",)"
                                      R"("content":"stream me"}]})";
        QNetworkReply *stream = send(streamBody, off);
        QVERIFY(TestClient::finished(stream));
        QCOMPARE(TestClient::status(stream), 200);
        const QByteArray events = stream->readAll();
        QVERIFY(events.contains("event: message_delta"));
        QVERIFY(events.contains(R"("output_tokens":1)"));          // message_start's first count
        QNetworkReply *unpriced = send(messagesBody("free"), off); // claude-sonnet-4-5
        QVERIFY(TestClient::finished(unpriced));
        QCOMPARE(TestClient::status(unpriced), 200);
        QNetworkReply *refused = send(messagesBody("[[error:rate_limit_error]]", "claude-opus-4-1"),
                                      off); // an answer without usage
        QVERIFY(TestClient::finished(refused));
        QCOMPARE(TestClient::status(refused), 429);
        QCOMPARE(m_fake->batches().size(), 0);
        QCOMPARE(m_fake->count("POST", "/v1/messages"), 4);
        QCOMPARE(m_fake->requests().at(1).bodySize, streamBody.size()); // sent as it came

        QTRY_COMPARE(
            jsonOf(get("/usage")).value(u"totals").toObject().value(u"requests").toInteger(), 4);
        const QHash<QString, QJsonObject> routes = usageRows("route");
        QCOMPARE(routes.keys(), QList<QString>{QStringLiteral("relay")});
        const QJsonObject relay = routes.value(QStringLiteral("relay"));
        QCOMPARE(relay.value(u"requests").toInteger(), 4);
        QCOMPARE(relay.value(u"requests_without_usage").toInteger(), 1);
        const QHash<QString, QJsonObject> models = usageRows("model");
        // claude-opus-4-1 at the standard price (USD per million: input 15, cache read 1.5,
        // 1-hour cache write 30, output 75). JSON: input 19 + 100 + 40, output 25
        // (19 x 15 + 40 x 1.5 + 100 x 30 + 25 x 75 = 5,220); stream: input 9, output 15
        // (9 x 15 + 15 x 75 = 1,260). 6,480 per million: $0.00648.
        const QJsonObject opus = models.value(QStringLiteral("claude-opus-4-1"));
        QCOMPARE(opus.value(u"requests").toInteger(), 3);
        QCOMPARE(opus.value(u"requests_without_usage").toInteger(), 1);
        QCOMPARE(opus.value(u"input_tokens").toInteger(), 159 + 9);
        QCOMPARE(opus.value(u"cached_input_tokens").toInteger(), 40);
        QCOMPARE(opus.value(u"cache_write_input_tokens").toInteger(), 100);
        QCOMPARE(opus.value(u"output_tokens").toInteger(), 25 + 15);
        QCOMPARE(opus.value(u"cost_usd").toDouble(), 0.00648);
        QCOMPARE(opus.value(u"saved_usd").toDouble(), 0.0);
        // claude-sonnet-4-5 is not priced: its tokens counted, its cost unknown.
        const QJsonObject sonnet = models.value(QStringLiteral("claude-sonnet-4-5"));
        QCOMPARE(sonnet.value(u"input_tokens").toInteger(), 4);
        QCOMPARE(sonnet.value(u"output_tokens").toInteger(), 10);
        QVERIFY(sonnet.value(u"cost_usd").isNull());
    }

    // The grace period's synchronous fallback is paid, and counted, at the standard price too.
    void theSyncFallbackIsCountedAtTheStandardPrice() {
        m_fake->setNeverFinish(true);
        m_fake->setCancelFractionDone(0); // nothing ran: the request goes to /v1/messages
        Config config = baseConfig();
        config.gracePeriod = 300ms;
        startProxy(config);
        QNetworkReply *reply = send(cachedBody("1h", "[[cache:100:40]] hi"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        const auto fallback = [this] {
            return usageRows("route").value(QStringLiteral("sync_fallback"));
        };
        QTRY_COMPARE(fallback().value(u"requests").toInteger(), 1);
        // As relayedMessagesAreCountedAtTheStandardPrice: 5,220 per million.
        QCOMPARE(fallback().value(u"cache_write_input_tokens").toInteger(), 100);
        QCOMPARE(fallback().value(u"cost_usd").toDouble(), 0.00522);
    }

    // The 1-hour cache-write price end to end through Message Batches: the fake reports the
    // writes split by TTL when the request asks for caching, and /usage bills them at the batch
    // tier's cache_write_1h (given here by a price override: the shipped table has no batch
    // cache prices for Claude).
    void oneHourCacheWritesInABatchArePricedAtTheirOwnRate() {
        QTemporaryDir config;
        QVERIFY(QDir(config.path()).mkpath(QStringLiteral("llm-proxy")));
        QFile prices(config.filePath(QStringLiteral("llm-proxy/prices.json")));
        QVERIFY(prices.open(QIODevice::WriteOnly));
        // A normal string: moc reads "//" in a raw string as a comment.
        prices.write("{\"schema\":1,\"providers\":{\"anthropic\":{\"models\":{\"claude-opu"
                     "s-4-1\":{\"tiers\":{\"standard\":{\"input\":15,\"cached_input\":1.5,"
                     "\"cache_write\":18.75,\"cache_write_1h\":30,\"output\":75,\"source\""
                     ":\"https://example.com/p\",\"date\":\"2026-12-06\"},\"batch\":{\"inp"
                     "ut\":7.5,\"cached_input\":0.75,\"cache_write\":9.375,\"cache_write_1"
                     "h\":15,\"output\":37.5,\"source\":\"https://example.com/p\",\"date\""
                     ":\"2026-12-06\"}}}}}}}");
        prices.close();
        const QByteArray previous = qgetenv("XDG_CONFIG_HOME");
        qputenv("XDG_CONFIG_HOME", config.path().toUtf8());
        startProxy(baseConfig());
        qputenv("XDG_CONFIG_HOME", previous);
        QNetworkReply *hour = send(cachedBody("1h", "[[cache:1000:0]] a"));
        QNetworkReply *minutes = send(cachedBody("5m", "[[cache:1000:0]] b"));
        QVERIFY(TestClient::finished(hour));
        QVERIFY(TestClient::finished(minutes));
        QCOMPARE(TestClient::status(hour), 200);
        QCOMPARE(TestClient::status(minutes), 200);
        const QJsonObject split =
            jsonOf(hour->readAll()).value(u"usage").toObject().value(u"cache_creation").toObject();
        QCOMPARE(split.value(u"ephemeral_1h_input_tokens").toInteger(), 1000);
        QCOMPARE(split.value(u"ephemeral_5m_input_tokens").toInteger(), 0);
        QCOMPARE(m_fake->batches().size(), 1);
        const auto batched = [this] {
            return usageRows("route").value(QStringLiteral("batch")).value(u"requests").toInteger();
        };
        QTRY_COMPARE(batched(), 2);
        // Each: 18 input after the breakpoint, 1,000 written, 24 output, at the batch tier.
        // 1 h: 18 x 7.5 + 1,000 x 15 + 24 x 37.5 = 16,035; 5 min: 135 + 9,375 + 900 = 10,410.
        const QJsonObject batch = usageRows("route").value(QStringLiteral("batch"));
        QCOMPARE(batch.value(u"cache_write_input_tokens").toInteger(), 2000);
        QCOMPARE(batch.value(u"cost_usd").toDouble(), 0.026445);
    }

    void aStreamGetsPingsThenTheReplayedMessage() {
        Config config = baseConfig();
        config.streamKeepAlive = 1s;
        startProxy(config);
        m_fake->setProcessingDelay(1500ms);
        RawClient client;
        QVERIFY(client.connectTo(m_client->port()));
        const QByteArray body = R"({"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,)"
                                R"("messages":[{"role":"user","content":"streamed"}]})";
        client.socket.write(
            "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + ClientKey +
            "\r\nanthropic-version: 2023-06-01\r\nContent-Type: "
            "application/json\r\nContent-Length: " +
            QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QVERIFY(client.waitFor([&] { return client.received.contains("text/event-stream"); }));
        QVERIFY(client.waitFor([&] { return client.received.contains("event: ping"); }, 5000));
        QVERIFY(!client.received.contains("message_start")); // still waiting for the batch
        QVERIFY(
            client.waitFor([&] { return client.received.contains("event: message_stop"); }, 10000));
        QVERIFY(client.received.contains("event: message_start"));
        QVERIFY(client.received.contains(R"("text_delta","text":"echo: streamed")") ||
                client.received.contains("echo: streamed"));
        // The batch was made without "stream": Message Batches refuse it.
        QCOMPARE(m_fake->batches().size(), 1);
    }

    // The answer cache (--cache) on /v1/messages: an identical request gets the stored message
    // without a new batch line, and an identical stream gets it replayed as Anthropic's events.
    void anIdenticalMessagesRequestIsAnsweredFromTheCache() {
        Config config = baseConfig();
        config.cache = 1h;
        startProxy(config);
        QByteArray firstBody;
        for (int i = 0; i < 2; ++i) {
            QNetworkReply *reply = send(messagesBody("cached"));
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
            const QByteArray body = reply->readAll();
            QCOMPARE(messageText(body), QStringLiteral("echo: cached"));
            QCOMPARE(reply->rawHeader(CacheHeader), i ? QByteArray("hit") : QByteArray());
            if (i == 0)
                firstBody = body;
            else
                QCOMPARE(body, firstBody);
        }
        QCOMPARE(paidLines(), 1);

        const QByteArray streamed = R"({"model":"claude-sonnet-4-5","max_tokens":64,)"
                                    R"("stream":true,"messages":[{"role":"user",)"
                                    R"("content":"cached"}]})";
        for (int i = 0; i < 2; ++i) {
            QNetworkReply *reply = send(streamed);
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
            const QByteArray events = reply->readAll();
            QVERIFY2(events.contains("event: message_stop"), events.constData());
            QVERIFY(events.contains("echo: cached"));
        }
        QCOMPARE(paidLines(), 2); // the stream is its own entry, paid once
        QCOMPARE(m_proxy->core()->cacheHits(), quint64(2));
    }

    void shutdownAndRestartMidBatchTheRetriedClientAdoptsTheStoredResult() {
        m_fake->setProcessingDelay(800ms);
        QNetworkReply *waiting = send(messagesBody("across a restart"));
        QTRY_COMPARE(m_fake->batches().size(), 1);
        m_proxy->stop(); // clients are told to come back
        QVERIFY(TestClient::finished(waiting));
        QCOMPARE(TestClient::status(waiting), 503);
        QCOMPARE(waiting->rawHeader("x-should-retry"), QByteArray("true"));
        QCOMPARE(anthropicErrorTypeOf(waiting->readAll()), QByteArray("api_error"));
        startProxy(baseConfig()); // resumes the batch with no client connected
        QTRY_COMPARE_WITH_TIMEOUT(m_proxy->core()->unclaimed(), 1, 10000);
        QNetworkReply *back = send(messagesBody("across a restart"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(messageText(back->readAll()), QStringLiteral("echo: across a restart"));
        QCOMPARE(m_fake->batches().size(), 1); // resumed, not made again
        QCOMPARE(paidLines(), 1);
    }
};

LLMPROXY_TEST_MAIN(tst_AnthropicFront)
#include "tst_anthropicfront.moc"
