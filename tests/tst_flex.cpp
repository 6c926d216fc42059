// SPDX-License-Identifier: GPL-3.0-or-later
// OpenAI's flex processing as a route (issue 12), end to end over loopback: the proxy in front
// of the fake provider, with --model-route rules. A flex request is answered in seconds with
// "service_tier":"flex" and counted at the flex price under the route "flex"; when the fake
// refuses flex (429 "resource unavailable", or a model it does not offer flex for) the request
// goes into a batch, and the fake never sees it at the standard tier. Prefix rules use flex only
// for models with a flex price; relay routes pass the request on at full price; a flex route
// for a provider that is not OpenAI is refused at start.

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QElapsedTimer>
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
constexpr char ConfiguredKey[] = "sk-configured-flex-0001";

QByteArray chatFor(const QByteArray &model, const QByteArray &content, bool stream = false) {
    return R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" + content +
           R"("}])" + (stream ? R"(,"stream":true)" : "") + "}";
}
} // namespace

class tst_Flex final : public QObject {
    Q_OBJECT

    std::unique_ptr<FakeProvider> m_fake;
    std::unique_ptr<ProxyService> m_proxy;
    std::unique_ptr<TestClient> m_client;
    std::unique_ptr<QTemporaryDir> m_dir;

    Config config(const QList<QByteArray> &modelRoutes,
                  std::chrono::milliseconds window = 200ms) const {
        Config c;
        c.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}};
        c.upstream = m_fake->baseUrl();
        c.apiKey = ConfiguredKey;
        c.batchWindow = window;
        c.pollInterval = 40ms;
        c.ioThreads = 2;
        c.dataDir = m_dir->path();
        c.modelRoutes = modelRoutes;
        return c;
    }

    bool start(const Config &c) {
        m_proxy = std::make_unique<ProxyService>(c);
        QSignalSpy started(m_proxy.get(), &ProxyService::started);
        m_proxy->start();
        if (started.size() != 1)
            return false;
        m_client->setPort(started.first().first().value<QList<quint16>>().first());
        return true;
    }

    QNetworkReply *chat(const QByteArray &model, const QByteArray &content, bool stream = false) {
        return m_client->send("POST", "/v1/chat/completions", chatFor(model, content, stream));
    }

    // GET /usage?group_by=route: each route's row.
    QHash<QString, QJsonObject> usageByRoute() {
        QHash<QString, QJsonObject> rows;
        QNetworkReply *reply = m_client->send("GET", "/usage?group_by=route", {}, {});
        if (!TestClient::finished(reply))
            return rows;
        const QJsonArray list =
            QJsonDocument::fromJson(reply->readAll()).object().value(u"rows").toArray();
        delete reply;
        for (const QJsonValue &row : list)
            rows.insert(row.toObject().value(u"route").toString(), row.toObject());
        return rows;
    }

private Q_SLOTS:
    void init() {
        m_dir = std::make_unique<QTemporaryDir>();
        m_fake = std::make_unique<FakeProvider>();
        m_fake->setShape(FakeProvider::Shape::OpenAi);
        QVERIFY(m_fake->listen());
        m_fake->setValidationDelay(10ms);
        m_fake->setProcessingDelay(30ms);
        m_fake->setFinalizingDelay(10ms);
        m_fake->setAcceptedKey(ConfiguredKey);
        m_client = std::make_unique<TestClient>();
    }

    void cleanup() {
        m_client.reset();
        m_proxy.reset();
        m_fake.reset();
        m_dir.reset();
    }

    // With a batch window of a minute, a batched request would wait a minute; the flex route
    // answers at once, at the flex price, and the ledger says "flex".
    void flexIsAnsweredInSecondsAtTheFlexPrice() {
        QVERIFY(start(config({"gpt-5-mini=flex-then-batch"}, 60s)));
        QElapsedTimer timer;
        timer.start();
        QNetworkReply *reply = chat("gpt-5-mini", "quick");
        QVERIFY(TestClient::finished(reply, 10'000));
        QVERIFY2(timer.elapsed() < 10'000, "answered by flex, not by the minute-long window");
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(reply->rawHeader("x-llm-proxy-route"), QByteArray("flex"));
        QVERIFY(reply->rawHeader("x-llm-proxy-batch-id").isEmpty());
        const QJsonObject body = QJsonDocument::fromJson(reply->readAll()).object();
        delete reply;
        QCOMPARE(body.value(u"service_tier").toString(), QStringLiteral("flex"));
        QCOMPARE(m_fake->flexCalls(), 1);
        QCOMPARE(m_fake->standardCalls(), 0);
        QCOMPARE(m_fake->batches().size(), 0);

        QHash<QString, QJsonObject> rows;
        QTRY_VERIFY((rows = usageByRoute()).contains(QStringLiteral("flex")));
        const QJsonObject flex = rows.value(QStringLiteral("flex"));
        QCOMPARE(flex.value(u"requests").toInteger(), 1);
        QVERIFY(flex.value(u"input_tokens").toInteger() > 0);
        // Paid at gpt-5-mini's flex price, listed at its standard price (twice as much).
        QVERIFY(flex.value(u"cost_usd").isDouble());
        QVERIFY(flex.value(u"cost_usd").toDouble() > 0);
        QCOMPARE(flex.value(u"list_cost_usd").toDouble(), 2 * flex.value(u"cost_usd").toDouble());
        QVERIFY(!rows.contains(QStringLiteral("batch")));
        QVERIFY(!rows.contains(QStringLiteral("relay")));
    }

    // 429 "resource unavailable": flex-then-batch goes to the batch at once; the fake never
    // sees the request at the standard tier.
    void aRefusalFallsBackToABatchNeverToTheStandardTier() {
        QVERIFY(start(config({"gpt-5-mini=flex-then-batch"})));
        m_fake->setFlexRefusals(1);
        QNetworkReply *reply = chat("gpt-5-mini", "later");
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QVERIFY(reply->rawHeader("x-llm-proxy-route").isEmpty());
        QVERIFY(!reply->rawHeader("x-llm-proxy-batch-id").isEmpty());
        delete reply;
        QCOMPARE(m_fake->flexCalls(), 1);
        QCOMPARE(m_fake->standardCalls(), 0);
        QCOMPARE(m_fake->batches().size(), 1);
        QCOMPARE(m_fake->batches().constFirst().model, QByteArray("gpt-5-mini"));
        QHash<QString, QJsonObject> rows;
        QTRY_VERIFY((rows = usageByRoute()).contains(QStringLiteral("batch")));
        QVERIFY(!rows.contains(QStringLiteral("flex")));
        QVERIFY(!rows.contains(QStringLiteral("sync_fallback")));
    }

    // The flex route tries flex again after a refusal (up to FlexAttempts calls), and only then
    // the batch.
    void theFlexRouteTriesAgainBeforeTheBatch() {
        QVERIFY(start(config({"gpt-5-mini=flex"})));
        m_fake->setFlexRefusals(1);
        QNetworkReply *again = chat("gpt-5-mini", "again");
        QVERIFY(TestClient::finished(again, 15'000));
        QCOMPARE(TestClient::status(again), 200);
        QCOMPARE(again->rawHeader("x-llm-proxy-route"), QByteArray("flex"));
        delete again;
        QCOMPARE(m_fake->flexCalls(), 2);
        QCOMPARE(m_fake->batches().size(), 0);

        m_fake->setFlexRefusals(FlexAttempts);
        QNetworkReply *batched = chat("gpt-5-mini", "no capacity");
        QVERIFY(TestClient::finished(batched, 20'000));
        QCOMPARE(TestClient::status(batched), 200);
        QVERIFY(!batched->rawHeader("x-llm-proxy-batch-id").isEmpty());
        delete batched;
        QCOMPARE(m_fake->flexCalls(), 2 + FlexAttempts);
        QCOMPARE(m_fake->batches().size(), 1);
        QCOMPARE(m_fake->standardCalls(), 0);
    }

    // A model the provider does not offer flex for: batched, and not tried with flex again.
    void anUnsupportedModelFallsBackAndIsRemembered() {
        QVERIFY(start(config({"my-model=flex-then-batch"})));
        m_fake->setFlexUnsupportedModels({"my-model"});
        for (const char *text : {"first", "second"}) {
            QNetworkReply *reply = chat("my-model", text);
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY(!reply->rawHeader("x-llm-proxy-batch-id").isEmpty());
            delete reply;
        }
        QCOMPARE(m_fake->flexCalls(), 1);
        QCOMPARE(m_fake->standardCalls(), 0);
        QCOMPARE(m_fake->batches().size(), 2);
    }

    // A prefix rule uses flex only for the models the price table gives a flex price.
    void prefixRulesUseFlexOnlyForModelsWithAFlexPrice() {
        QVERIFY(start(config({"gpt-*=flex-then-batch"})));
        QNetworkReply *flex = chat("gpt-5-mini", "flex");
        QNetworkReply *batch = chat("gpt-4o-mini", "batch");
        QVERIFY(TestClient::finished(flex, 15'000));
        QVERIFY(TestClient::finished(batch, 15'000));
        QCOMPARE(flex->rawHeader("x-llm-proxy-route"), QByteArray("flex"));
        QVERIFY(!batch->rawHeader("x-llm-proxy-batch-id").isEmpty());
        delete flex;
        delete batch;
        QCOMPARE(m_fake->flexCalls(), 1);
        QCOMPARE(m_fake->batches().size(), 1);
        QCOMPARE(m_fake->batches().constFirst().model, QByteArray("gpt-4o-mini"));
    }

    // A streaming request on a flex route: the flex answer replayed as the event stream.
    void aStreamOnAFlexRouteIsTheFlexAnswerReplayed() {
        QVERIFY(start(config({"gpt-5-mini=flex-then-batch"}, 60s)));
        QNetworkReply *reply = chat("gpt-5-mini", "stream me", true);
        QVERIFY(TestClient::finished(reply, 10'000));
        QCOMPARE(TestClient::status(reply), 200);
        QVERIFY(reply->header(QNetworkRequest::ContentTypeHeader)
                    .toString()
                    .startsWith(QStringLiteral("text/event-stream")));
        const QByteArray events = reply->readAll();
        delete reply;
        QVERIFY2(events.contains("data: [DONE]"), events.constData());
        QCOMPARE(m_fake->flexCalls(), 1);
        QCOMPARE(m_fake->standardCalls(), 0);
    }

    // relay: passed on at full price, never batched or flexed.
    void theRelayRoutePassesTheRequestOn() {
        QVERIFY(start(config({"gpt-4o=relay", "gpt-5-mini=flex"})));
        QNetworkReply *reply = chat("gpt-4o", "full price");
        QVERIFY(TestClient::finished(reply, 10'000));
        QCOMPARE(TestClient::status(reply), 200);
        delete reply;
        QCOMPARE(m_fake->standardCalls(), 1);
        QCOMPARE(m_fake->flexCalls(), 0);
        QCOMPARE(m_fake->batches().size(), 0);
        QHash<QString, QJsonObject> rows;
        QTRY_VERIFY((rows = usageByRoute()).contains(QStringLiteral("relay")));
        QCOMPARE(rows.value(QStringLiteral("relay")).value(u"requests").toInteger(), 1);
    }

    // Flex is OpenAI's: a flex route whose models go to another provider is refused at start.
    void aFlexRouteForAnotherProviderIsRefusedAtStart() {
        Config c = config({"gemini-*=flex-then-batch"});
        c.providers = {"gemini=gemini;url=" + m_fake->baseUrl().toString().toUtf8() +
                       ";key_env=LLMPROXY_TEST_FLEX_GEMINI_KEY"};
        c.routes = {"gemini-*=gemini"};
        m_proxy = std::make_unique<ProxyService>(c);
        QSignalSpy failed(m_proxy.get(), &ProxyService::startFailed);
        m_proxy->start();
        QCOMPARE(failed.size(), 1);
        const QString message = failed.first().first().toString();
        QVERIFY2(message.contains(QStringLiteral("--model-route gemini-*=flex-then-batch")) &&
                     message.contains(QStringLiteral("gemini")),
                 qPrintable(message));
        // Batch and relay routes for it are fine.
        m_proxy.reset();
        c.modelRoutes = {"gemini-*=batch", "gemini-2.5-pro=relay", "gpt-5=flex"};
        QVERIFY(start(c));
    }

    // The route rules as the command line takes them.
    void routeRulesParse_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("valid");
        QTest::newRow("exact") << QStringLiteral("gpt-5=flex") << true;
        QTest::newRow("prefix") << QStringLiteral("o4-*=flex-then-batch") << true;
        QTest::newRow("all") << QStringLiteral("*=batch") << true;
        QTest::newRow("relay") << QStringLiteral("gpt-4o = relay") << true;
        QTest::newRow("unknown route") << QStringLiteral("gpt-5=standard") << false;
        QTest::newRow("path") << QStringLiteral("/v1/embeddings=relay") << false;
        QTest::newRow("inner star") << QStringLiteral("gpt-*-mini=flex") << false;
        QTest::newRow("no route") << QStringLiteral("gpt-5") << false;
    }
    void routeRulesParse() {
        QFETCH(QString, text);
        QFETCH(bool, valid);
        QString error;
        QCOMPARE(parseModelRouteRule(text, &error).has_value(), valid);
        const CommandLine parsed =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--no-gui"),
                              QStringLiteral("--model-route"), text});
        QCOMPARE(parsed.action == CommandLine::Action::Error, !valid);
    }

    void routeMatching() {
        QString error;
        const std::optional<ModelRoutes> routes = ModelRoutes::fromSpecs(
            {"gpt-*=flex-then-batch", "gpt-5*=flex", "gpt-5-nano=relay", "*=batch"}, &error);
        QVERIFY2(routes, qPrintable(error));
        QCOMPARE(routes->match("gpt-5-nano").route, ModelRoute::Relay);
        QVERIFY(routes->match("gpt-5-nano").exact);
        QCOMPARE(routes->match("gpt-5-mini").route, ModelRoute::Flex); // the longest prefix
        QVERIFY(!routes->match("gpt-5-mini").exact);
        QCOMPARE(routes->match("gpt-4o").route, ModelRoute::FlexThenBatch);
        QCOMPARE(routes->match("o3").route, ModelRoute::Batch);
        QCOMPARE(ModelRoutes().match("gpt-5").route, ModelRoute::Batch);
    }
};

LLMPROXY_TEST_MAIN(tst_Flex)
#include "tst_flex.moc"
