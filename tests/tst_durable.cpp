// SPDX-License-Identifier: GPL-3.0-or-later
// Nothing lost, nothing paid twice: the proxy with its store, over loopback, against the fake
// provider. Adoption of retried requests, restarts, provider faults and resubmissions. Every
// case runs on OpenAI's path (a Batch API with uploaded files) and on Anthropic's (Message
// Batches, the requests inline); a case that does not apply to Anthropic skips its row and
// says why.

#include "api/httpanswer.h"
#include "batch/batchcore.h"
#include "batch/batchjob.h"
#include "batchpath.h"
#include "fakeanthropic.h"
#include "fakeprovider.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "queue/store.h"
#include "settings/config.h"
#include "stats/stats.h"
#include "testclient.h"
#include "testmain.h"

#include <QDir>
#include <QFile>
#include <QJsonObject>
#include <QNetworkReply>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

// In a test function: its Anthropic row is skipped, for the reason given.
#define OPENAI_ONLY(why)                                                                           \
    do {                                                                                           \
        if (m_fx->path()->isAnthropic())                                                           \
            QSKIP("Not on Anthropic's path: " why);                                                \
    } while (false)

class tst_Durable final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    BatchPath *path() const { return m_fx->path(); }
    QNetworkReply *send(const QByteArray &body) { return send(body, path()->headers()); }
    QNetworkReply *send(const QByteArray &body, const Headers &headers) {
        return m_fx->client()->send("POST", path()->path(), body, headers);
    }
    QByteArray body(const QByteArray &text) const { return path()->body(text); }
    QString content(QNetworkReply *reply) const { return path()->content(reply->readAll()); }
    // The proxy's own error answer is the one expected: OpenAI's error.code `openAiCode`, or on
    // Anthropic's path (whose errors have no code) its shape with the type its status maps to.
    bool isOwnError(QNetworkReply *reply, const char *openAiCode) const {
        const QJsonObject answer = jsonOf(reply->readAll());
        if (!path()->isAnthropic())
            return answer[u"error"][u"code"].toString() == QLatin1StringView(openAiCode);
        return answer[u"type"].toString() == u"error" &&
               answer[u"error"][u"type"].toString().toLatin1() ==
                   anthropicErrorType(TestClient::status(reply));
    }
    // A request on its own connection, which the test can drop as a client that gives up.
    void post(RawClient &client, const QByteArray &text, const Headers &extra = {}) const {
        const QByteArray b = body(text);
        QByteArray head = "POST " + path()->path() + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        for (const auto &[name, value] : path()->headers() + extra)
            head += name + ": " + value + "\r\n";
        client.socket.write(head + "Content-Type: application/json\r\nContent-Length: " +
                            QByteArray::number(b.size()) + "\r\n\r\n" + b);
    }

    Config graceConfig(std::chrono::milliseconds grace) const {
        Config config = m_fx->baseConfig();
        config.gracePeriod = grace;
        return config;
    }

    int cancels() const { return path()->cancels(); }
    // Synchronous calls the fake served: what was paid at full price.
    int syncCalls() const { return path()->syncCalls(); }

    // Every byte of the store on disk: the database, its WAL and its shared memory.
    QByteArray storeBytes() const {
        QByteArray all;
        const QStringList names =
            QDir(m_fx->dataDir())
                .entryList({QStringLiteral("llm-proxy.sqlite*")}, QDir::Files | QDir::Hidden);
        for (const QString &name : names) {
            QFile file(m_fx->filePath(name));
            if (file.open(QIODevice::ReadOnly))
                all += file.readAll();
        }
        return all;
    }

    Config configuredKeyConfig(const QByteArray &key) const {
        Config config = m_fx->baseConfig();
        config.apiKey = key;
        return config;
    }

    // The Authorization headers the fake saw on GET /v1/batches/{id} (polls).
    QList<QByteArray> pollKeys() const {
        QList<QByteArray> keys;
        for (const auto &request : m_fx->fake()->requests()) {
            if (request.method == "GET" && request.path.startsWith("/v1/batches/"))
                keys.append(request.headers.value("authorization"));
        }
        return keys;
    }

private Q_SLOTS:
    void initTestCase_data() { BatchPath::addRows(); }
    void initTestCase() { qunsetenv("ANTHROPIC_API_KEY"); } // the client's key, as with OpenAI

    void init() {
        QFETCH_GLOBAL(QByteArray, provider);
        m_fx = std::make_unique<ProxyFixture>(ProxyFixture::Store::TemporaryFolder,
                                              BatchPath::named(provider));
        QVERIFY(m_fx->listening());
        if (path()->repeatedForAnotherShape())
            QSKIP("Anthropic's path is the same with any OpenAI-family shape: run in tst_durable");
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    void storeIsOwnerOnly() {
        OPENAI_ONLY("the store's file, whichever the provider: once is enough");
        const QString file = m_fx->filePath(QStringLiteral("llm-proxy.sqlite"));
        QVERIFY(QFile::exists(file));
        QVERIFY(!(QFile::permissions(file) &
                  (QFile::ReadGroup | QFile::ReadOther | QFile::WriteGroup | QFile::WriteOther)));
    }

    // --in-memory: served as usual, but nothing is written and a restart starts empty.
    void inMemoryWritesNothing() {
        m_fx->stopProxy();
        QTemporaryDir empty;
        Config config = m_fx->baseConfig();
        config.dataDir = empty.path();
        config.inMemory = true;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send(body("kept in memory"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(content(reply), QStringLiteral("echo: kept in memory"));
        QCOMPARE(QDir(empty.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot),
                 QStringList());
    }

    void retryAfterClientTimeoutIsAdoptedNotPaidAgain() {
        path()->setProcessingDelay(700ms);
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        post(first, "only once");
        QTRY_COMPARE(path()->batchesCreated(), 1);
        first.socket.abort();                           // the SDK timed out...
        QNetworkReply *retry = send(body("only once")); // ...and retries the same body
        QVERIFY(TestClient::finished(retry));
        QCOMPARE(TestClient::status(retry), 200);
        QCOMPARE(content(retry), QStringLiteral("echo: only once"));
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
    }

    void uncollectedResultIsKeptForTheRetry() {
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        post(first, "keep it");
        QTRY_COMPARE(path()->batchesCreated(), 1);
        first.socket.abort();
        // The batch ends with nobody waiting: the result is stored, not thrown away.
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *retry = send(body("keep it"));
        QVERIFY(TestClient::finished(retry));
        // Answered from the store: no new batch was made for it (a wall-clock bound here
        // flaked on a loaded machine).
        QCOMPARE(path()->batchesCreated(), 1);
        QCOMPARE(TestClient::status(retry), 200);
        QCOMPARE(content(retry), QStringLiteral("echo: keep it"));
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 0);
    }

    void twoWaitingClientsWithTheSameBodyAreTwoRequests() {
        QNetworkReply *a = send(body("sample me"));
        QNetworkReply *b = send(body("sample me"));
        QVERIFY(TestClient::finished(a));
        QVERIFY(TestClient::finished(b));
        QCOMPARE(TestClient::status(a), 200);
        QCOMPARE(TestClient::status(b), 200);
        QCOMPARE(m_fx->paidLines(), 2); // sampling stays independent
    }

    void idempotencyKeyAdoptsTheSameBodyAndRefusesAnother() {
        path()->setProcessingDelay(300ms);
        Headers headers = path()->headers();
        headers.emplaceBack("Idempotency-Key", "job-42");
        QNetworkReply *a = send(body("first wording"), headers);
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        QNetworkReply *same = send(body("first wording"), headers);
        QNetworkReply *other = send(body("second wording"), headers);
        QVERIFY(TestClient::finished(other));
        QCOMPARE(TestClient::status(other), 409); // issue 9: as Stripe does
        QVERIFY(isOwnError(other, "idempotency_key_reused"));
        QVERIFY(TestClient::finished(a));
        QVERIFY(TestClient::finished(same));
        QCOMPARE(content(a), QStringLiteral("echo: first wording"));
        QCOMPARE(content(same), QStringLiteral("echo: first wording"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    // The body an Idempotency-Key was first used with is stored: a restart does not forget it.
    void idempotencyKeyReuseIsRefusedAfterARestart() {
        Headers headers = path()->headers();
        headers.emplaceBack("Idempotency-Key", "job-43");
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        post(first, "kept", {{"Idempotency-Key", "job-43"}});
        QTRY_COMPARE(path()->batchesCreated(), 1);
        first.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *other = send(body("changed"), headers);
        QVERIFY(TestClient::finished(other));
        QCOMPARE(TestClient::status(other), 409);
        QNetworkReply *same = send(body("kept"), headers);
        QVERIFY(TestClient::finished(same));
        QCOMPARE(TestClient::status(same), 200);
        QCOMPARE(content(same), QStringLiteral("echo: kept"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    void restartResumesSubmittedBatchWithoutPayingTwice() {
        path()->setProcessingDelay(800ms);
        QNetworkReply *waiting = send(body("across a restart"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        m_fx->proxy()->stop(); // SIGTERM: clients are told to come back
        QVERIFY(TestClient::finished(waiting));
        QCOMPARE(TestClient::status(waiting), 503);
        QCOMPARE(waiting->rawHeader("x-should-retry"), QByteArray("true"));
        QVERIFY(m_fx->startProxy(m_fx->baseConfig())); // resumes polling with no client connected
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *back = send(body("across a restart"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(content(back), QStringLiteral("echo: across a restart"));
        QCOMPARE(path()->batchesCreated(), 1);
        QCOMPARE(m_fx->paidLines(), 1);
        if (!path()->isAnthropic())                     // (Message Batches have no files)
            QTRY_COMPARE(m_fx->fake()->filesLive(), 0); // and its files were cleaned up
    }

    void unsentRequestsAreNotPaidUnlessTheirClientComesBack() {
        Config config = m_fx->baseConfig();
        config.batchWindow = 30s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *waiting = send(body("not yet"));
        QNetworkReply *abandoned = send(body("never mind"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 2);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        QVERIFY(TestClient::finished(abandoned));
        config.batchWindow = 200ms;
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 2);
        QTest::qWait(500);
        QCOMPARE(path()->batchesCreated(), 0); // nobody asked again: nothing is paid
        QNetworkReply *back = send(body("not yet"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 1); // "never mind" waits for its client still
    }

    void unclaimedResultsExpire() {
        Config config = m_fx->baseConfig();
        config.resultTtl = 400ms;
        QVERIFY(m_fx->startProxy(config));
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        post(first, "forgotten");
        QTRY_COMPARE(path()->batchesCreated(), 1);
        first.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->proxy()->core()->unclaimed(), 0, 3000);
    }

    void transientUploadFailuresAreRetried() {
        OPENAI_ONLY("a file upload: Message Batches take their requests inline");
        path()->failNext(BatchPath::Operation::HandOver, 2, 503, "0");
        QNetworkReply *reply = send(body("eventually"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(path()->batchesCreated(), 1);
    }

    void failedCreateIsLookedForBeforeTryingAgain() {
        path()->failNext(BatchPath::Operation::Create, 1, 500, "0");
        QNetworkReply *reply = send(body("create twice?"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(path()->batchesCreated(), 1);
        QVERIFY(path()->lists() >= 1); // it listed before re-creating
    }

    void clientErrorFromProviderIsFinal() {
        path()->failNext(BatchPath::Operation::HandOver, 1, 401);
        QNetworkReply *reply = send(body("bad key"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 401);
        QCOMPARE(path()->handOvers(), 1); // not retried
    }

    void tokenLimitExceededIsSubmittedAgainWithoutFailingClients() {
        OPENAI_ONLY("OpenAI's batch-level failure: a Message Batch does not fail as a whole");
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1, "token_limit_exceeded");
        QNetworkReply *a = send(body("quota a"));
        QNetworkReply *b = send(body("quota b"));
        QVERIFY(TestClient::finished(a, 20'000));
        QVERIFY(TestClient::finished(b, 20'000));
        QCOMPARE(TestClient::status(a), 200);
        QCOMPARE(TestClient::status(b), 200);
        QCOMPARE(path()->batchesCreated(), 2); // the failed one, then the one that ran
    }

    void tokenLimitTwiceSplitsTheBatch() {
        OPENAI_ONLY("OpenAI's batch-level failure: a Message Batch does not fail as a whole");
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 2, "token_limit_exceeded");
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(body("split " + QByteArray::number(i))));
        for (QNetworkReply *reply : replies) {
            QVERIFY(TestClient::finished(reply, 30'000));
            QCOMPARE(TestClient::status(reply), 200);
        }
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 4); // failed (4), failed (4), then two halves of 2
        QCOMPARE(batches.at(2).customIds.size() + batches.at(3).customIds.size(), 4);
        QCOMPARE(batches.at(2).customIds.size(), 2);
    }

    void expiredLinesOfWaitingClientsGoOutAgain() {
        path()->setExpireAfter(100ms, 0.5);
        // Only the first batch expires. (Anthropic's fake decides it when the batch is made.)
        if (path()->isAnthropic())
            connect(path()->anthropic(), &FakeAnthropic::batchCreated, this,
                    [this] { path()->setExpireAfter(-1ms); });
        else
            connect(m_fx->fake(), &FakeProvider::batchFinished, this,
                    [this] { path()->setExpireAfter(-1ms); });
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(body("expiring " + QByteArray::number(i))));
        for (int i = 0; i < replies.size(); ++i) {
            QVERIFY(TestClient::finished(replies.at(i), 15'000));
            QCOMPARE(TestClient::status(replies.at(i)), 200);
            QCOMPARE(content(replies.at(i)), QStringLiteral("echo: expiring %1").arg(i));
        }
        QCOMPARE(path()->batchesCreated(), 2);
        QCOMPARE(path()->paidLines(), 4 + 2); // the second: only the lines that never ran
    }

    // --- The grace period ---------------------------------------------------------------

    // --- Keys at rest -------------------------------------------------------------------

    void configuredKeyIsNeverStored() {
        OPENAI_ONLY("--api-key configures OpenAI's key; Anthropic's comes from its environment");
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-secret-0001")));
        QNetworkReply *reply = send(body("with the configured key"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(m_fx->fake()->batches().constFirst().authorization,
                 QByteArray("Bearer sk-configured-secret-0001"));
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        m_fx->proxy()->core()->commit();
        QByteArray bytes = storeBytes();
        QVERIFY(!bytes.isEmpty());
        QVERIFY(!bytes.contains("sk-configured-secret-0001"));
        QVERIFY(!bytes.contains("sk-test-key-aaaa")); // the client's token, unused
        m_fx->stopProxy();
        bytes = storeBytes();
        QVERIFY(!bytes.contains("sk-configured-secret-0001"));
        QVERIFY(!bytes.contains("sk-test-key-aaaa"));
    }

    void clientKeyIsStoredOnlyWhileItsBatchRuns() {
        path()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(body("with my own key"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        QTRY_VERIFY(storeBytes().contains(path()->key())); // a restart would need it
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QTRY_VERIFY(!storeBytes().contains(path()->key()));
        m_fx->stopProxy();
        QVERIFY(!storeBytes().contains(path()->key()));
    }

    void clientKeyIsNeverStoredForRequestsThatWait() {
        Config config = m_fx->baseConfig();
        config.batchWindow = 30s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send(body("queued only"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        m_fx->proxy()->core()->commit();
        QVERIFY(!storeBytes().contains(path()->key())); // no batch made with it yet
        reply->abort();
    }

    void refusedKeyIsForgotten() {
        path()->failNext(BatchPath::Operation::HandOver, 5, 401);
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 5; ++i) {
            const QByteArray token = "sk-random-token-" + QByteArray::number(i) + "-xyz";
            replies.append(send(body("random " + QByteArray::number(i)),
                                Headers{{"Authorization", "Bearer " + token}}));
        }
        for (QNetworkReply *reply : replies) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 401);
        }
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QCOMPARE(m_fx->proxy()->core()->keysInMemory(), 0); // no growth per random token
        m_fx->proxy()->core()->commit();
        QVERIFY(!storeBytes().contains("sk-random-token-"));
    }

    void restartResumesWithTheKeyConfiguredThen() {
        OPENAI_ONLY("--api-key configures OpenAI's key; Anthropic's comes from its environment");
        path()->setProcessingDelay(800ms);
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-old-0001")));
        QNetworkReply *waiting = send(body("key rotated"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        const qsizetype pollsBefore = pollKeys().size();
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-new-0002")));
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        // (A poll the stopped instance had on the wire may still arrive just after.)
        const QList<QByteArray> polls = pollKeys().mid(pollsBefore);
        QVERIFY(polls.contains("Bearer sk-configured-new-0002"));
        QCOMPARE(polls.constLast(), QByteArray("Bearer sk-configured-new-0002"));
        QNetworkReply *back = send(body("key rotated"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(content(back), QStringLiteral("echo: key rotated"));
        QCOMPARE(m_fx->paidLines(), 1);
        QVERIFY(!storeBytes().contains("sk-configured-"));
    }

    // A batch names the callers (token names) of its requests, in alphabetical order, and keeps
    // them through a restart; a fourth caller shows as "+".
    void batchNamesItsCallersThroughARestart() {
        OPENAI_ONLY("--api-key configures OpenAI's key; Anthropic's comes from its environment");
        path()->setProcessingDelay(800ms);
        Config config = configuredKeyConfig("sk-configured-named-0001");
        config.batchWindow = 30s;
        const auto token = [](const char *name) -> QByteArray {
            return QByteArray("tok-") + name + "-0123456789abcdef";
        };
        const auto as = [&token](const char *name) {
            return Headers{{"Authorization", "Bearer " + token(name)}};
        };
        for (const char *name : {"alice", "bob", "carol", "dave"})
            config.tokens.append({name, token(name)});
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (const char *name : {"bob", "alice", "bob"})
            replies.append(send(body(QByteArray("from ") + name), as(name)));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 3);
        m_fx->proxy()->flushNow();
        QTRY_COMPARE(path()->batchesCreated(), 1);
        QList<BatchProgress> batches = m_fx->proxy()->core()->batchProgress();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.constFirst().callers, QByteArray("alice, bob"));
        QCOMPARE(batches.constFirst().keyHint, QByteArray("…0001"));
        m_fx->proxy()->stop();
        for (QNetworkReply *reply : replies)
            QVERIFY(TestClient::finished(reply));

        QVERIFY(m_fx->startProxy(config));
        batches = m_fx->proxy()->core()->batchProgress();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.constFirst().callers, QByteArray("alice, bob"));

        // Four callers in one batch: three named, then "+".
        replies.clear();
        for (const char *name : {"alice", "bob", "carol", "dave"})
            replies.append(send(body(QByteArray("second ") + name), as(name)));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 4);
        m_fx->proxy()->flushNow();
        QTRY_COMPARE(m_fx->proxy()->core()->batchProgress().size(), 2);
        QByteArrayList seen;
        for (const BatchProgress &batch : m_fx->proxy()->core()->batchProgress())
            seen.append(batch.callers);
        QVERIFY2(seen.contains("alice, bob, carol +"), seen.join(" | ").constData());
        for (QNetworkReply *reply : replies)
            reply->abort();
    }

    void restartWithoutAKeyWaitsForOne() {
        OPENAI_ONLY("--api-key configures OpenAI's key; Anthropic's comes from its environment");
        path()->setProcessingDelay(600ms);
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-gone-0001")));
        QNetworkReply *waiting = send(body("no key later"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        const qsizetype requestsBefore = m_fx->fake()->requests().size();
        QVERIFY(m_fx->startProxy(m_fx->baseConfig())); // nothing configured
        QTest::qWait(300);
        // Nothing is asked with no key (or an empty one), and no poll goes on forever. (The
        // stopped proxy polled with the old key until startProxy() replaced it: those are its.)
        for (qsizetype i = requestsBefore; i < m_fx->fake()->requests().size(); ++i) {
            const auto &request = m_fx->fake()->requests().at(i);
            QVERIFY2(request.headers.value("authorization") == "Bearer sk-configured-gone-0001",
                     QByteArray(request.method + ' ' + request.path).constData());
        }
        const QList<BatchProgress> batches = m_fx->proxy()->core()->batchProgress();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.constFirst().status, QByteArray("waiting_for_key"));
        // Whose it is still shows, though the key is not held: its hint was recorded with it.
        QCOMPARE(batches.constFirst().keyHint, QByteArray("…0001"));
        // A client without a key of its own is told what is missing.
        QNetworkReply *noKey = send(body("no key later"), {});
        QVERIFY(TestClient::finished(noKey));
        QCOMPARE(TestClient::status(noKey), 401);
        QCOMPARE(jsonOf(noKey->readAll())[u"error"][u"code"].toString(),
                 QStringLiteral("invalid_api_key"));
        // A key configured later (the desktop app's settings) resumes it.
        m_fx->proxy()->applyConfig(configuredKeyConfig("sk-configured-later-0002"));
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QVERIFY(pollKeys().contains("Bearer sk-configured-later-0002"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    // --- Faults of our own ----------------------------------------------------------------

    void storeThatCannotWriteRefusesNewRequests() {
        QVERIFY(m_fx->proxy()->store());
        QVERIFY(m_fx->proxy()->store()->simulateWriteFailureForTests(true));
        QNetworkReply *refused = send(body("not stored"));
        QVERIFY(TestClient::finished(refused));
        QCOMPARE(TestClient::status(refused), 503);
        QVERIFY(refused->rawHeader("retry-after").toInt() >= 1);
        QVERIFY(isOwnError(refused, "store_unavailable"));
        QVERIFY(!m_fx->proxy()->core()->storeWritable());
        // Still refused while it cannot write, and nothing was sent for them.
        QNetworkReply *again = send(body("still not stored"));
        QVERIFY(TestClient::finished(again));
        QCOMPARE(TestClient::status(again), 503);
        QTest::qWait(300);
        QCOMPARE(path()->handOvers(), 0);
        QCOMPARE(m_fx->proxy()->core()->queued(), 0);
        // Writes succeed again: the probe notices, and requests are accepted.
        QVERIFY(m_fx->proxy()->store()->simulateWriteFailureForTests(false));
        QTRY_VERIFY_WITH_TIMEOUT(m_fx->proxy()->core()->storeWritable(), 5000);
        QNetworkReply *accepted = send(body("stored now"));
        QVERIFY(TestClient::finished(accepted));
        QCOMPARE(TestClient::status(accepted), 200);
        QCOMPARE(content(accepted), QStringLiteral("echo: stored now"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    void pollAnsweredWithAFinalErrorEndsTheClients_data() {
        QTest::addColumn<int>("status");
        QTest::newRow("404 gone") << 404;
        QTest::newRow("401 key refused") << 401;
        QTest::newRow("403 not visible") << 403;
    }

    void pollAnsweredWithAFinalErrorEndsTheClients() {
        QFETCH(int, status);
        path()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(body("lost upstream"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        path()->failNext(BatchPath::Operation::Retrieve, 1, status);
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), status);
        const QJsonObject error = jsonOf(reply->readAll())[u"error"].toObject();
        QVERIFY2(error[u"message"].toString().contains(u"poll"),
                 qPrintable(error[u"message"].toString()));
        QVERIFY(!error[u"type"].toString().isEmpty());
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QTRY_VERIFY(!storeBytes().contains(path()->key()));
    }

    void pollOfABatchTheProviderForgotEnds() {
        path()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(body("forgotten upstream"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        path()->forgetBatches(); // the provider no longer knows the batch: 404 on every poll
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 404);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
    }

    void transientPollErrorsKeepPolling() {
        path()->setProcessingDelay(300ms);
        QNetworkReply *reply = send(body("flaky upstream"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        path()->failNext(BatchPath::Operation::Retrieve, 3, 503, "0");
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
    }

    void hugeRetryAfterIsCapped() {
        OPENAI_ONLY("the backoff's arithmetic, whichever the provider: once is enough");
        // Far beyond what a QTimer takes (int milliseconds): capped, never an overflow.
        const auto day = std::chrono::duration_cast<std::chrono::milliseconds>(24h);
        QCOMPARE(BatchJob::backoffDelay(0, std::chrono::milliseconds(1'000'000'000'000LL)), day);
        QCOMPARE(BatchJob::backoffDelay(3, std::chrono::milliseconds(3'000'000'000LL)), day);
        QCOMPARE(timerInterval(std::chrono::milliseconds(-5)), 0ms);
        // A poll interval from the command line beyond it is capped too.
        Config config = m_fx->baseConfig();
        config.pollInterval = std::chrono::hours(24 * 400);
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(m_fx->proxy()->core()->settings().pollInterval, day);
        // The provider asks to wait for years: the proxy stays alive and keeps its batch.
        path()->failNext(BatchPath::Operation::HandOver, 1, 503, "99999999999");
        QNetworkReply *reply = send(body("patient"));
        QTRY_COMPARE(path()->handOvers(), 1);
        QTest::qWait(200);
        QVERIFY(!reply->isFinished());
        QCOMPARE(m_fx->proxy()->core()->activeBatches(), 1);
        reply->abort();
    }

    void graceCancelsABatchThatNeverFinishes_data() {
        QTest::addColumn<bool>("withStore");
        QTest::newRow("store") << true;
        QTest::newRow("in memory") << false;
    }

    void graceCancelsABatchThatNeverFinishes() {
        QFETCH(bool, withStore);
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        Config config = graceConfig(300ms);
        if (!withStore)
            config.dataDir.clear();
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 3; ++i)
            replies.append(send(body("slow " + QByteArray::number(i))));
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
            QVERIFY(reply->rawHeader(path()->requestIdHeader()).startsWith("req_"));
            QCOMPARE(content(reply), QStringLiteral("echo: slow %1").arg(i));
        }
        QCOMPARE(path()->batchesCreated(), 1);
        QCOMPARE(m_fx->paidLines(), 3);
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 3);
        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats[u"sync_fallback"].toInteger(), 3);
        QCOMPARE(stats[u"requests"][u"successful"].toInteger(), 3);
        QCOMPARE(stats[u"in_flight"].toInteger(), 0);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        if (!path()->isAnthropic()) // (Message Batches have no files)
            QTRY_COMPARE(m_fx->fake()->filesLive(), 0);
    }

    void graceCancelWithPartialResults() {
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.5);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(body("half " + QByteArray::number(i))));
        int fromBatch = 0;
        int fromSync = 0;
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QCOMPARE(content(reply), QStringLiteral("echo: half %1").arg(i));
            if (reply->rawHeader("x-llm-proxy-fallback") == "sync") {
                ++fromSync;
                QVERIFY(!reply->hasRawHeader("x-llm-proxy-batch-id"));
            } else {
                ++fromBatch;
                QVERIFY(reply->hasRawHeader("x-llm-proxy-batch-id"));
            }
        }
        QCOMPARE(fromBatch, 2);
        QCOMPARE(fromSync, 2);
        QCOMPARE(path()->batchesCreated(), 1); // the rest did not go into a new batch
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 2);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 2);
    }

    void batchFinishingWithinTheGracePeriodIsUntouched() {
        QVERIFY(m_fx->startProxy(graceConfig(5s)));
        QNetworkReply *a = send(body("quick a"));
        QNetworkReply *b = send(body("quick b"));
        for (QNetworkReply *reply : {a, b}) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY(!reply->hasRawHeader("x-llm-proxy-fallback"));
            QVERIFY(reply->hasRawHeader("x-llm-proxy-batch-id"));
        }
        QCOMPARE(content(a), QStringLiteral("echo: quick a"));
        QCOMPARE(cancels(), 0);
        QCOMPARE(syncCalls(), 0);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 0);
    }

    void withoutGracePeriodNothingIsCancelled() {
        path()->setNeverFinish(true);
        QNetworkReply *reply = send(body("patient"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        QTest::qWait(600);
        QVERIFY(!reply->isFinished());
        QCOMPARE(cancels(), 0);
        path()->setNeverFinish(false); // it finishes after all
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QVERIFY(!reply->hasRawHeader("x-llm-proxy-fallback"));
        QCOMPARE(syncCalls(), 0);
    }

    void graceKeepsLinesOfClientsWhoLeftUnpaid() {
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(400ms)));
        RawClient gone;
        QVERIFY(gone.connectTo(m_fx->client()->port()));
        post(gone, "gone");
        QNetworkReply *stays = send(body("stays"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        QCOMPARE(path()->paidLines(), 2);
        gone.socket.abort();
        QVERIFY(TestClient::finished(stays, 15'000));
        QCOMPARE(TestClient::status(stays), 200);
        QCOMPARE(stays->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1); // kept for its client, not paid
        QCOMPARE(syncCalls(), 1);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 1);
        // Its client comes back: it goes out again, in a batch.
        path()->setNeverFinish(false);
        QNetworkReply *back = send(body("gone"));
        QVERIFY(TestClient::finished(back, 15'000));
        QCOMPARE(TestClient::status(back), 200);
        QVERIFY(!back->hasRawHeader("x-llm-proxy-fallback"));
        QCOMPARE(content(back), QStringLiteral("echo: gone"));
        QCOMPARE(path()->batchesCreated(), 2);
        QCOMPARE(path()->paidLines(), 2 + 1);
        QCOMPARE(syncCalls(), 1);
    }

    void graceFallbackRetriesTransientErrors() {
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        path()->failNext(BatchPath::Operation::Sync, 2, 503, "0");
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *reply = send(body("try again"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(content(reply), QStringLiteral("echo: try again"));
        QCOMPARE(syncCalls(), 3);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 1);
    }

    void graceFallbackPassesTheProvidersErrorOn() {
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        // A refusal in each fake's words: OpenAI's 422, Anthropic's invalid_request_error (400).
        const bool anthropic = path()->isAnthropic();
        QNetworkReply *reply = send(body(anthropic ? "refuse me [[error:invalid_request_error]]"
                                                   : "refuse me [[status:422]]"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), anthropic ? 400 : 422); // final: not retried
        QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QVERIFY(reply->rawHeader(path()->requestIdHeader()).startsWith("req_"));
        QVERIFY(jsonOf(reply->readAll())[u"error"].isObject());
        QCOMPARE(syncCalls(), 1);
        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats[u"sync_fallback"].toInteger(), 1);
        QCOMPARE(stats[u"requests"][u"failed"].toInteger(), 1);
        QCOMPARE(stats[u"requests"][u"synthesized_error_responses"].toInteger(), 0);
    }

    void graceCancelSurvivesARestart() {
        // Cancelled before the restart, cancelled upstream after it: a client that comes back
        // still gets its request through the synchronous API, and nothing is cancelled twice.
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        path()->setCancelDelay(1500ms);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *waiting = send(body("across a restart"));
        QTRY_COMPARE_WITH_TIMEOUT(cancels(), 1, 5000);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        QCOMPARE(TestClient::status(waiting), 503);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *back = send(body("across a restart"));
        QVERIFY(TestClient::finished(back, 15'000));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(back->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QCOMPARE(content(back), QStringLiteral("echo: across a restart"));
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 1);
        QCOMPARE(path()->batchesCreated(), 1);
    }

    void graceRunningOutWhileStoppedCancelsWithoutPaying() {
        // Nobody waits after a restart: the lines that never ran are kept for their clients,
        // not sent at full price.
        path()->setNeverFinish(true);
        path()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(1h)));
        QNetworkReply *waiting = send(body("while stopped"));
        QTRY_COMPARE(path()->batchesCreated(), 1);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        QVERIFY(m_fx->startProxy(
            graceConfig(300ms))); // counted from the batch's creation, before the restart
        QTRY_COMPARE_WITH_TIMEOUT(cancels(), 1, 5000);
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->proxy()->core()->unclaimed(), 1, 5000);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QCOMPARE(syncCalls(), 0);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 0);
    }
};

LLMPROXY_TEST_MAIN(tst_Durable)
#include "tst_durable.moc"
