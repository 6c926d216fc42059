// SPDX-License-Identifier: GPL-3.0-or-later
// Tokens and money (issue 10), over loopback against the fake provider whose usage is known:
// the ledger, GET /usage (JSON and CSV) and /stats agree with each other and with the tokens
// billed, before and after a restart; the synchronous fallback and relayed calls are priced at
// the standard tier, batch lines at the batch tier.
//
// The fake counts words: "a b" is 2 prompt tokens, its answer "echo: a b" 3 completion tokens.
// gpt-4o-mini in resources/prices.json: standard 0.15 / 0.6, batch 0.075 / 0.3 USD per million
// input / output tokens, that is 150,000 / 600,000 and 75,000 / 300,000 pico-USD per token.

#include "accounting/ledger.h"
#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "queue/store.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QNetworkReply>
#include <QSignalSpy>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

class tst_Usage final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    QByteArray get(const QByteArray &path, int *status = nullptr) {
        return m_fx->get(path, status);
    }

    QJsonObject usageTotals() { return jsonOf(get("/usage")).value(u"totals").toObject(); }

    // The ledger as the store has it (on this thread: the service runs here in the tests).
    accounting::LedgerRow ledgerTotal() {
        accounting::LedgerQuery all;
        all.fromMs = 0;
        all.toMs = std::numeric_limits<qint64>::max();
        const auto report = m_fx->proxy()->store()->ledgerReport(all, nullptr);
        return report ? report->total() : accounting::LedgerRow();
    }

    // Three batched requests and one relayed call.
    void sendKnownTraffic() {
        QList<QNetworkReply *> replies;
        for (const QByteArray &content : {QByteArray("a"), QByteArray("b c"), QByteArray("d e f")})
            replies.append(m_fx->client()->send("POST", "/v1/chat/completions", chatBody(content)));
        Headers relayed = KeyA;
        relayed.emplaceBack("X-Batch", "off");
        replies.append(
            m_fx->client()->send("POST", "/v1/chat/completions", chatBody("g h"), relayed));
        for (QNetworkReply *reply : std::as_const(replies)) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
        }
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>();
        QVERIFY(m_fx->listening());
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    void ledgerUsageAndStatsAgreeWithTheTokensBilled() {
        QSignalSpy accounted(m_fx->proxy()->core(), &BatchCore::requestAccounted);
        sendKnownTraffic();
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 4);
        QCOMPARE(accounted.size(), 4);

        // Batch: 6 input, 9 output; relay: 2 input, 3 output.
        // paid = 6 x 75,000 + 9 x 300,000 + 2 x 150,000 + 3 x 600,000 = 5,250,000 pico-USD
        // list = 8 x 150,000 + 12 x 600,000 = 8,400,000; saved = 3,150,000.
        const QByteArray json = get("/usage?group_by=route");
        const QJsonObject usage = jsonOf(json);
        const QJsonObject totals = usage.value(u"totals").toObject();
        QCOMPARE(totals.value(u"input_tokens").toInteger(), 8);
        QCOMPARE(totals.value(u"output_tokens").toInteger(), 12);
        QCOMPARE(totals.value(u"requests_without_usage").toInteger(), 0);
        QVERIFY2(json.contains(R"("totals":{"requests":4,"requests_without_usage":0,)"
                               R"("input_tokens":8,"cached_input_tokens":0,)"
                               R"("cache_write_input_tokens":0,"output_tokens":12,)"
                               R"("reasoning_tokens":0,"cost_usd":0.00000525,)"
                               R"("list_cost_usd":0.0000084,"saved_usd":0.00000315,)"),
                 json.constData());
        QHash<QString, QJsonObject> byRoute;
        for (const QJsonValue &row : usage.value(u"rows").toArray())
            byRoute.insert(row.toObject().value(u"route").toString(), row.toObject());
        QCOMPARE(byRoute.size(), 2);
        QCOMPARE(byRoute[QStringLiteral("batch")].value(u"requests").toInteger(), 3);
        QCOMPARE(byRoute[QStringLiteral("relay")].value(u"requests").toInteger(), 1);
        QVERIFY(json.contains(R"("route":"relay","requests":1,"requests_without_usage":0,)"
                              R"("input_tokens":2,"cached_input_tokens":0,)"
                              R"("cache_write_input_tokens":0,"output_tokens":3,)"
                              R"("reasoning_tokens":0,"cost_usd":0.0000021,)"
                              R"("list_cost_usd":0.0000021,"saved_usd":0,)"));

        // The CSV says the same.
        int status = 0;
        QNetworkReply *csvReply =
            m_fx->client()->send("GET", "/usage?format=csv&group_by=route", {}, {});
        QVERIFY(TestClient::finished(csvReply));
        QCOMPARE(TestClient::status(csvReply), 200);
        QVERIFY(csvReply->header(QNetworkRequest::ContentTypeHeader)
                    .toString()
                    .startsWith(QStringLiteral("text/csv")));
        const QList<QByteArray> lines = csvReply->readAll().split('\n');
        QCOMPARE(lines.at(0).left(21), QByteArray("route,requests,reques"));
        QVERIFY(lines.contains("batch,3,0,6,0,0,9,0,0.00000315,0.0000063,0.00000315,0\r"));
        QVERIFY(lines.contains("relay,1,0,2,0,0,3,0,0.0000021,0.0000021,0,0\r"));

        // The ledger in the store, and /stats since start and all time.
        const accounting::LedgerRow ledger = ledgerTotal();
        QCOMPARE(ledger.requests, 4);
        QCOMPARE(ledger.input, 8);
        QCOMPARE(ledger.output, 12);
        QCOMPARE(ledger.paid, 5'250'000);
        QCOMPARE(ledger.list, 8'400'000);
        QCOMPARE(ledger.saved, 3'150'000);
        const QByteArray stats = get("/stats", &status);
        QCOMPARE(status, 200);
        const QJsonObject statsUsage = jsonOf(stats).value(u"usage").toObject();
        for (const char *period : {"since_start", "all_time"}) {
            const QJsonObject o = statsUsage.value(QLatin1StringView(period)).toObject();
            QCOMPARE(o.value(u"requests").toInteger(), 4);
            QCOMPARE(o.value(u"input_tokens").toInteger(), 8);
            QCOMPARE(o.value(u"output_tokens").toInteger(), 12);
        }
        QVERIFY(stats.contains(R"("cost_usd":0.00000525,"list_cost_usd":0.0000084,)"
                               R"("saved_usd":0.00000315)"));

        // After a restart: the ledger is the same, /stats' all-time includes it, since-start
        // starts again.
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
        QCOMPARE(ledgerTotal().paid, 5'250'000);
        const QJsonObject after = usageTotals();
        QCOMPARE(after.value(u"requests").toInteger(), 4);
        QCOMPARE(after.value(u"input_tokens").toInteger(), 8);
        const QJsonObject afterStats = jsonOf(get("/stats")).value(u"usage").toObject();
        QCOMPARE(afterStats.value(u"all_time").toObject().value(u"requests").toInteger(), 4);
        QCOMPARE(afterStats.value(u"since_start").toObject().value(u"requests").toInteger(), 0);
        sendKnownTraffic();
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 8);
        QCOMPARE(ledgerTotal().paid, 10'500'000);
        QTRY_COMPARE(jsonOf(get("/stats"))
                         .value(u"usage")
                         .toObject()
                         .value(u"all_time")
                         .toObject()
                         .value(u"output_tokens")
                         .toInteger(),
                     24);
    }

    void callersAreTokenNamesOrKeyHints() {
        sendKnownTraffic();
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 4);
        const QJsonObject usage = jsonOf(get("/usage?group_by=caller"));
        const QJsonArray rows = usage.value(u"rows").toArray();
        QCOMPARE(rows.size(), 1);
        // KeyA is "sk-test-key-aaaa": only its last four characters are shown.
        QCOMPARE(rows.at(0).toObject().value(u"caller").toString(), QStringLiteral("…aaaa"));
        QVERIFY(!get("/usage?group_by=caller").contains("sk-test"));
    }

    void unknownModelsHaveTokensButNoCost() {
        QNetworkReply *reply = m_fx->client()->send("POST", "/v1/chat/completions",
                                                    chatBody("x y", "not-a-priced-model"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 1);
        const QJsonObject usage = jsonOf(get("/usage"));
        const QJsonObject row = usage.value(u"rows").toArray().at(0).toObject();
        QCOMPARE(row.value(u"input_tokens").toInteger(), 2);
        QVERIFY(row.value(u"cost_usd").isNull());
        QVERIFY(row.value(u"saved_usd").isNull());
        QCOMPARE(usage.value(u"unpriced_models").toArray(),
                 QJsonArray{QStringLiteral("not-a-priced-model")});
        QCOMPARE(usage.value(u"totals").toObject().value(u"unknown_cost_requests").toInteger(), 1);
    }

    void relayedStreamsCountTheirUsageChunkOnlyWhenAskedFor() {
        const QByteArray asked = R"({"model":"gpt-4o-mini","stream":true,)"
                                 R"("stream_options":{"include_usage":true},)"
                                 R"("messages":[{"role":"user","content":"s t"}]})";
        const QByteArray notAsked = R"({"model":"gpt-4o-mini","stream":true,)"
                                    R"("messages":[{"role":"user","content":"u v"}]})";
        // Streams are batched by default (issue 11): X-Batch: off relays them.
        const Headers relayed = KeyA + Headers{{"X-Batch", "off"}};
        for (const QByteArray &body : {asked, notAsked}) {
            QNetworkReply *reply =
                m_fx->client()->send("POST", "/v1/chat/completions", body, relayed);
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY(reply->readAll().contains("data: [DONE]"));
        }
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 2);
        const QJsonObject totals = usageTotals();
        QCOMPARE(totals.value(u"requests_without_usage").toInteger(), 1);
        QCOMPARE(totals.value(u"input_tokens").toInteger(), 2);
        QCOMPARE(totals.value(u"output_tokens").toInteger(), 3);
        // The relayed request went upstream as the client sent it.
        QCOMPARE(m_fx->fake()->count("POST", "/v1/chat/completions"), 2);
    }

    void badParametersAreRefusedNamingThem_data() {
        QTest::addColumn<QByteArray>("path");
        QTest::addColumn<QString>("param");
        QTest::newRow("from") << QByteArray("/usage?from=last-week") << QStringLiteral("from");
        QTest::newRow("to") << QByteArray("/usage?to=2026-13-45") << QStringLiteral("to");
        QTest::newRow("group_by") << QByteArray("/usage?group_by=colour")
                                  << QStringLiteral("group_by");
        QTest::newRow("format") << QByteArray("/usage?format=xml") << QStringLiteral("format");
    }
    void badParametersAreRefusedNamingThem() {
        QFETCH(QByteArray, path);
        QFETCH(QString, param);
        int status = 0;
        const QJsonObject error = jsonOf(get(path, &status)).value(u"error").toObject();
        QCOMPARE(status, 400);
        QCOMPARE(error.value(u"param").toString(), param);
        QCOMPARE(error.value(u"type").toString(), QStringLiteral("invalid_request_error"));
        QVERIFY(!error.value(u"message").toString().isEmpty());
    }

    void syncFallbackIsPaidAtTheStandardPrice() {
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.5);
        Config config = m_fx->baseConfig();
        config.gracePeriod = 300ms;
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(m_fx->client()->send("POST", "/v1/chat/completions",
                                                chatBody("half " + QByteArray::number(i))));
        for (QNetworkReply *reply : std::as_const(replies)) {
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
        }
        QTRY_COMPARE(usageTotals().value(u"requests").toInteger(), 4);
        const QByteArray csv = get("/usage?format=csv&group_by=route");
        // Each: 2 input, 3 output. Batch: 2 x (150,000 + 900,000) paid;
        // sync fallback: 2 x (300,000 + 1,800,000), paid = list.
        QVERIFY2(csv.contains("batch,2,0,4,0,0,6,0,0.0000021,0.0000042,0.0000021,0\r\n"),
                 csv.constData());
        QVERIFY2(csv.contains("sync_fallback,2,0,4,0,0,6,0,0.0000042,0.0000042,0,0\r\n"),
                 csv.constData());
    }
};

LLMPROXY_TEST_MAIN(tst_Usage)
#include "tst_usage.moc"
