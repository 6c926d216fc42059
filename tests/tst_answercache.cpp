// SPDX-License-Identifier: GPL-3.0-or-later
// The answer cache (--cache DUR, issue 10), over loopback against the fake provider: an
// identical request within the window is answered from the store without a new batch line and
// counted as route "cache" (paid 0, saved = list); a miss after the window, for another caller
// or key, with Cache-Control: no-cache / no-store, for an error; the byte bound evicts the
// oldest; the cache survives a restart.
//
// The fake counts words: "a b" is 2 prompt tokens, its answer "echo: a b" 3 completion tokens.
// gpt-4o-mini's standard price: 150,000 / 600,000 pico-USD per input / output token.

#include "batch/answercache.h"
#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QNetworkReply>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

class tst_AnswerCache final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    Config cachedConfig(std::chrono::milliseconds window = 1h) const {
        Config config = m_fx->baseConfig();
        config.cache = window;
        return config;
    }

    struct Reply {
        int status = 0;
        QByteArray body;
        QByteArray cacheHeader;
    };
    Reply post(const QByteArray &body, const Headers &headers = KeyA,
               const QByteArray &path = "/v1/chat/completions") {
        QNetworkReply *reply = m_fx->client()->send("POST", path, body, headers);
        Reply out;
        if (!TestClient::finished(reply, 15'000))
            return out;
        out.status = TestClient::status(reply);
        out.body = reply->readAll();
        out.cacheHeader = reply->rawHeader("x-llm-proxy-cache");
        return out;
    }
    static Headers with(Headers headers, const QByteArray &name, const QByteArray &value) {
        headers.emplaceBack(name, value);
        return headers;
    }
    QHash<QString, QJsonObject> usageByRoute() {
        QHash<QString, QJsonObject> out;
        const QJsonArray rows = jsonOf(m_fx->get("/usage?group_by=route")).value(u"rows").toArray();
        for (const QJsonValue &row : rows)
            out.insert(row.toObject().value(u"route").toString(), row.toObject());
        return out;
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>();
        QVERIFY(m_fx->listening());
    }
    void cleanup() { m_fx.reset(); }

    void anIdenticalRequestIsAnsweredFromTheCacheAndCountedAsSaved() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        const Reply first = post(chatBody("a b"));
        QCOMPARE(first.status, 200);
        QVERIFY(first.cacheHeader.isEmpty());
        const Reply second = post(chatBody("a b"));
        QCOMPARE(second.status, 200);
        QCOMPARE(second.cacheHeader, QByteArray("hit"));
        QCOMPARE(second.body, first.body); // the provider's answer, byte for byte
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->cacheHits(), quint64(1));

        // The ledger: route cache, the stored usage, paid 0, list = the standard price, saved
        // = list. 2 x 150,000 + 3 x 600,000 = 2,100,000 pico-USD.
        QHash<QString, QJsonObject> routes;
        QTRY_VERIFY((routes = usageByRoute()).contains(QStringLiteral("cache")));
        const QJsonObject cache = routes.value(QStringLiteral("cache"));
        QCOMPARE(cache.value(u"requests").toInteger(), 1);
        QCOMPARE(cache.value(u"input_tokens").toInteger(), 2);
        QCOMPARE(cache.value(u"output_tokens").toInteger(), 3);
        QCOMPARE(cache.value(u"cost_usd").toDouble(), 0.0);
        QCOMPARE(cache.value(u"list_cost_usd").toDouble(), 0.0000021);
        QCOMPARE(cache.value(u"saved_usd").toDouble(), 0.0000021);
        QCOMPARE(routes.value(QStringLiteral("batch")).value(u"requests").toInteger(), 1);
        const QByteArray csv = m_fx->get("/usage?format=csv&group_by=route");
        QVERIFY2(csv.contains("cache,1,0,2,0,0,3,0,0,0.0000021,0.0000021,0\r\n"), csv.constData());

        // /metrics and /stats count it too.
        const QByteArray metrics = m_fx->get("/metrics");
        QVERIFY2(metrics.contains(
                     R"(llm_proxy_saved_usd_total{route="cache",model="gpt-4o-mini"} 0.0000021)"),
                 metrics.constData());
        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats.value(u"cache_hits").toInteger(), 1);
        QCOMPARE(stats.value(u"requests").toObject().value(u"total").toInteger(), 2);
        const QJsonObject sinceStart =
            stats.value(u"usage").toObject().value(u"since_start").toObject();
        QCOMPARE(sinceStart.value(u"requests").toInteger(), 2);
        QCOMPARE(sinceStart.value(u"input_tokens").toInteger(), 4);
    }

    void aStreamIsReplayedFromTheCacheButIsNotTheNonStreamingAnswer() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        const QByteArray streamed = R"({"model":"gpt-4o-mini","stream":true,)"
                                    R"("messages":[{"role":"user","content":"s t"}]})";
        const QByteArray plain = R"({"model":"gpt-4o-mini",)"
                                 R"("messages":[{"role":"user","content":"s t"}]})";
        const Reply first = post(streamed);
        QCOMPARE(first.status, 200);
        QVERIFY(first.body.contains("data: [DONE]"));
        const Reply second = post(streamed);
        QCOMPARE(second.status, 200);
        QVERIFY2(second.body.contains("echo: s t") || second.body.contains("\"echo:"),
                 second.body.constData());
        QVERIFY(second.body.contains("data: [DONE]"));
        QCOMPARE(m_fx->paidLines(), 1);
        // The same body without "stream" is another request: its own batch line.
        const Reply json = post(plain);
        QCOMPARE(json.status, 200);
        QVERIFY(json.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);
    }

    void aRequestAfterTheWindowIsSentAgain() {
        QVERIFY(m_fx->startProxy(cachedConfig(1s)));
        QCOMPARE(post(chatBody("late")).status, 200);
        QTest::qWait(1100); // the window is wall-clock time in the store; 1s is its minimum
        const Reply again = post(chatBody("late"));
        QCOMPARE(again.status, 200);
        QVERIFY(again.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);
    }

    void anotherCallerNeverGetsTheAnswer() {
        // Clients' own keys: one key's answer is not another's.
        QVERIFY(m_fx->startProxy(cachedConfig()));
        QCOMPARE(post(chatBody("mine")).status, 200);
        const Reply other = post(chatBody("mine"), KeyB);
        QCOMPARE(other.status, 200);
        QVERIFY(other.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);

        // Proxy tokens over one configured key: one token's answer is not another's.
        Config config = cachedConfig();
        config.apiKey = "sk-configured-key-cccc";
        config.tokens = {ProxyToken{"alice", "llmp-aliceTOKENabcdefghijklmnopqrs"},
                         ProxyToken{"bob", "llmp-bobTOKENabcdefghijklmnopqrstuv"}};
        QVERIFY(m_fx->startProxy(config));
        const Headers alice{{"Authorization", "Bearer llmp-aliceTOKENabcdefghijklmnopqrs"}};
        const Headers bob{{"Authorization", "Bearer llmp-bobTOKENabcdefghijklmnopqrstuv"}};
        QCOMPARE(post(chatBody("shared words"), alice).status, 200);
        const Reply bobs = post(chatBody("shared words"), bob);
        QCOMPARE(bobs.status, 200);
        QVERIFY(bobs.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 4);
        QCOMPARE(post(chatBody("shared words"), alice).cacheHeader, QByteArray("hit"));
        QCOMPARE(post(chatBody("shared words"), bob).cacheHeader, QByteArray("hit"));
        QCOMPARE(m_fx->paidLines(), 4);
    }

    void cacheControlNoCacheAndNoStoreSkipIt() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        QCOMPARE(post(chatBody("fresh")).status, 200);
        const Reply noCache = post(chatBody("fresh"), with(KeyA, "Cache-Control", "no-cache"));
        QCOMPARE(noCache.status, 200);
        QVERIFY(noCache.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);
        // no-cache still stores its answer: the next plain request gets it.
        QCOMPARE(post(chatBody("fresh")).cacheHeader, QByteArray("hit"));

        // no-store: neither read nor written.
        QCOMPARE(
            post(chatBody("private"), with(KeyA, "Cache-Control", "max-age=0, no-store")).status,
            200);
        const Reply after = post(chatBody("private"));
        QVERIFY(after.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 4);
    }

    void errorsAreNeverCached() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        QCOMPARE(post(chatBody("bad [[status:400]]")).status, 400);
        const Reply again = post(chatBody("bad [[status:400]]"));
        QCOMPARE(again.status, 400);
        QVERIFY(again.cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);
    }

    void theByteBoundEvictsTheOldest() {
        Config config = cachedConfig();
        config.cacheMaxBytes = 1'000'000;
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(post(chatBody("one [[result_bytes:600000]]")).status, 200);
        QCOMPARE(post(chatBody("two [[result_bytes:600000]]")).status, 200);
        QCOMPARE(m_fx->paidLines(), 2);
        QCOMPARE(m_fx->proxy()->core()->answerCache().size(), 1);
        QVERIFY(m_fx->proxy()->core()->answerCache().bytes() <= 1'000'000);
        QCOMPARE(post(chatBody("two [[result_bytes:600000]]")).cacheHeader, QByteArray("hit"));
        QCOMPARE(m_fx->paidLines(), 2);
        QVERIFY(post(chatBody("one [[result_bytes:600000]]")).cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 3);
    }

    void theCacheSurvivesARestart() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        const Reply first = post(chatBody("durable"));
        QCOMPARE(first.status, 200);
        QVERIFY(m_fx->startProxy(cachedConfig()));
        const Reply after = post(chatBody("durable"));
        QCOMPARE(after.status, 200);
        QCOMPARE(after.cacheHeader, QByteArray("hit"));
        QCOMPARE(after.body, first.body);
        QCOMPARE(m_fx->paidLines(), 1);

        // Started without the cache, the proxy keeps none: on again, the answer is gone.
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
        QVERIFY(post(chatBody("durable")).cacheHeader.isEmpty());
        QVERIFY(m_fx->startProxy(cachedConfig()));
        QCOMPARE(m_fx->proxy()->core()->answerCache().size(), 0);
        QCOMPARE(m_fx->paidLines(), 2);
    }

    // The index alone: eviction of the oldest past the bound, expiry by the window, an answer
    // larger than the bound never kept, replacement counted once.
    void theIndexEvictsTheOldestAndExpiresByTime() {
        AnswerCache cache(100);
        QVERIFY(cache.insert("a", 1000, 40).isEmpty());
        QVERIFY(cache.insert("b", 2000, 40).isEmpty());
        QCOMPARE(cache.insert("c", 3000, 40), QList<QByteArray>{"a"});
        QCOMPARE(cache.bytes(), 80);
        QVERIFY(!cache.fresh("a", 0));
        QVERIFY(cache.fresh("b", 2000));
        QVERIFY(!cache.fresh("b", 2001));
        QVERIFY(cache.insert("b", 4000, 50).isEmpty()); // replaced: 40 + 50
        QCOMPARE(cache.bytes(), 90);
        QCOMPARE(cache.insert("huge", 5000, 101), QList<QByteArray>{"huge"});
        QCOMPARE(cache.size(), 2);
        QCOMPARE(cache.expire(3500), QList<QByteArray>{"c"});
        QCOMPARE(cache.setMaxBytes(10), QList<QByteArray>{"b"});
        QCOMPARE(cache.size(), 0);
        QCOMPARE(cache.bytes(), 0);
    }

    // Turned off in the settings of a running proxy: nothing more is answered from it, and what
    // it held is gone (also after turning it on again).
    void turningTheCacheOffEmptiesIt() {
        QVERIFY(m_fx->startProxy(cachedConfig()));
        QCOMPARE(post(chatBody("switch")).status, 200);
        QCOMPARE(m_fx->proxy()->core()->answerCache().size(), 1);
        m_fx->proxy()->applyConfig(m_fx->baseConfig());
        QCOMPARE(m_fx->proxy()->core()->answerCache().size(), 0);
        QVERIFY(post(chatBody("switch")).cacheHeader.isEmpty());
        m_fx->proxy()->applyConfig(cachedConfig());
        QVERIFY(post(chatBody("switch")).cacheHeader.isEmpty());
        QCOMPARE(post(chatBody("switch")).cacheHeader, QByteArray("hit"));
        QCOMPARE(m_fx->paidLines(), 3);
    }

    void offByDefault() {
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
        QCOMPARE(post(chatBody("twice")).status, 200);
        QVERIFY(post(chatBody("twice")).cacheHeader.isEmpty());
        QCOMPARE(m_fx->paidLines(), 2);
    }
};

LLMPROXY_TEST_MAIN(tst_AnswerCache)
#include "tst_answercache.moc"
