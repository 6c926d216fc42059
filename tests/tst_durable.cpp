// SPDX-License-Identifier: GPL-3.0-or-later
// Nothing lost, nothing paid twice: the proxy with its store, over loopback, against the fake
// provider. Adoption of retried requests, restarts, provider faults and resubmissions.

#include "batch/batchcore.h"
#include "batch/batchjob.h"
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

class tst_Durable final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    QNetworkReply *send(const QByteArray &body, const Headers &headers = KeyA) {
        return m_fx->client()->send("POST", "/v1/chat/completions", body, headers);
    }

    Config graceConfig(std::chrono::milliseconds grace) const {
        Config config = m_fx->baseConfig();
        config.gracePeriod = grace;
        return config;
    }

    // POST /v1/batches/{id}/cancel calls the fake saw (creates are POST /v1/batches).
    int cancels() const { return m_fx->fake()->count("POST", "/v1/batches/"); }
    // Synchronous chat completions the fake served: what was paid at full price.
    int syncCalls() const { return m_fx->fake()->count("POST", "/v1/chat/completions"); }

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
    void init() {
        m_fx = std::make_unique<ProxyFixture>();
        QVERIFY(m_fx->listening());
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    void storeIsOwnerOnly() {
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
        QNetworkReply *reply = send(chatBody("kept in memory"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: kept in memory"));
        QCOMPARE(QDir(empty.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot),
                 QStringList());
    }

    void retryAfterClientTimeoutIsAdoptedNotPaidAgain() {
        m_fx->fake()->setProcessingDelay(700ms);
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        first.post("/v1/chat/completions", chatBody("only once"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        first.socket.abort();                               // the SDK timed out...
        QNetworkReply *retry = send(chatBody("only once")); // ...and retries the same body
        QVERIFY(TestClient::finished(retry));
        QCOMPARE(TestClient::status(retry), 200);
        QCOMPARE(chatContent(retry->readAll()), QStringLiteral("echo: only once"));
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
    }

    void uncollectedResultIsKeptForTheRetry() {
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        first.post("/v1/chat/completions", chatBody("keep it"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        first.socket.abort();
        // The batch ends with nobody waiting: the result is stored, not thrown away.
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *retry = send(chatBody("keep it"));
        QVERIFY(TestClient::finished(retry));
        // Answered from the store: no new batch was made for it (a wall-clock bound here
        // flaked on a loaded machine).
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(TestClient::status(retry), 200);
        QCOMPARE(chatContent(retry->readAll()), QStringLiteral("echo: keep it"));
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 0);
    }

    void twoWaitingClientsWithTheSameBodyAreTwoRequests() {
        QNetworkReply *a = send(chatBody("sample me"));
        QNetworkReply *b = send(chatBody("sample me"));
        QVERIFY(TestClient::finished(a));
        QVERIFY(TestClient::finished(b));
        QCOMPARE(TestClient::status(a), 200);
        QCOMPARE(TestClient::status(b), 200);
        QCOMPARE(m_fx->paidLines(), 2); // sampling stays independent
    }

    void idempotencyKeyAdoptsTheSameBodyAndRefusesAnother() {
        m_fx->fake()->setProcessingDelay(300ms);
        Headers headers = KeyA;
        headers.emplaceBack("Idempotency-Key", "job-42");
        QNetworkReply *a = send(chatBody("first wording"), headers);
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        QNetworkReply *same = send(chatBody("first wording"), headers);
        QNetworkReply *other = send(chatBody("second wording"), headers);
        QVERIFY(TestClient::finished(other));
        QCOMPARE(TestClient::status(other), 409); // issue 9: as Stripe does
        QCOMPARE(jsonOf(other->readAll())[u"error"][u"code"].toString(),
                 QStringLiteral("idempotency_key_reused"));
        QVERIFY(TestClient::finished(a));
        QVERIFY(TestClient::finished(same));
        QCOMPARE(chatContent(a->readAll()), QStringLiteral("echo: first wording"));
        QCOMPARE(chatContent(same->readAll()), QStringLiteral("echo: first wording"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    // The body an Idempotency-Key was first used with is stored: a restart does not forget it.
    void idempotencyKeyReuseIsRefusedAfterARestart() {
        Headers headers = KeyA;
        headers.emplaceBack("Idempotency-Key", "job-43");
        RawClient first;
        QVERIFY(first.connectTo(m_fx->client()->port()));
        first.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer sk-test-key-aaaa\r\n"
                           "Idempotency-Key: job-43\r\nContent-Type: application/json\r\n"
                           "Content-Length: " +
                           QByteArray::number(chatBody("kept").size()) + "\r\n\r\n" +
                           chatBody("kept"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        first.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QVERIFY(m_fx->startProxy(m_fx->baseConfig()));
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *other = send(chatBody("changed"), headers);
        QVERIFY(TestClient::finished(other));
        QCOMPARE(TestClient::status(other), 409);
        QNetworkReply *same = send(chatBody("kept"), headers);
        QVERIFY(TestClient::finished(same));
        QCOMPARE(TestClient::status(same), 200);
        QCOMPARE(chatContent(same->readAll()), QStringLiteral("echo: kept"));
        QCOMPARE(m_fx->paidLines(), 1);
    }

    void restartResumesSubmittedBatchWithoutPayingTwice() {
        m_fx->fake()->setProcessingDelay(800ms);
        QNetworkReply *waiting = send(chatBody("across a restart"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        m_fx->proxy()->stop(); // SIGTERM: clients are told to come back
        QVERIFY(TestClient::finished(waiting));
        QCOMPARE(TestClient::status(waiting), 503);
        QCOMPARE(waiting->rawHeader("x-should-retry"), QByteArray("true"));
        QVERIFY(m_fx->startProxy(m_fx->baseConfig())); // resumes polling with no client connected
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QNetworkReply *back = send(chatBody("across a restart"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(chatContent(back->readAll()), QStringLiteral("echo: across a restart"));
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->paidLines(), 1);
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0); // and its files were cleaned up
    }

    void unsentRequestsAreNotPaidUnlessTheirClientComesBack() {
        Config config = m_fx->baseConfig();
        config.batchWindow = 30s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *waiting = send(chatBody("not yet"));
        QNetworkReply *abandoned = send(chatBody("never mind"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 2);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        QVERIFY(TestClient::finished(abandoned));
        config.batchWindow = 200ms;
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(m_fx->proxy()->core()->unclaimed(), 2);
        QTest::qWait(500);
        QCOMPARE(m_fx->fake()->batches().size(), 0); // nobody asked again: nothing is paid
        QNetworkReply *back = send(chatBody("not yet"));
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
        first.post("/v1/chat/completions", chatBody("forgotten"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        first.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->proxy()->core()->unclaimed(), 0, 3000);
    }

    void transientUploadFailuresAreRetried() {
        m_fx->fake()->failNext(FakeProvider::Operation::Upload, 2, 503, "0");
        QNetworkReply *reply = send(chatBody("eventually"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(m_fx->fake()->batches().size(), 1);
    }

    void failedCreateIsLookedForBeforeTryingAgain() {
        m_fx->fake()->failNext(FakeProvider::Operation::Create, 1, 500, "0");
        QNetworkReply *reply = send(chatBody("create twice?"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QVERIFY(m_fx->fake()->count("GET", "/v1/batches") >= 1); // it listed before re-creating
    }

    void clientErrorFromProviderIsFinal() {
        m_fx->fake()->failNext(FakeProvider::Operation::Upload, 1, 401);
        QNetworkReply *reply = send(chatBody("bad key"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 401);
        QCOMPARE(m_fx->fake()->count("POST", "/v1/files"), 1); // not retried
    }

    void tokenLimitExceededIsSubmittedAgainWithoutFailingClients() {
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1, "token_limit_exceeded");
        QNetworkReply *a = send(chatBody("quota a"));
        QNetworkReply *b = send(chatBody("quota b"));
        QVERIFY(TestClient::finished(a, 20'000));
        QVERIFY(TestClient::finished(b, 20'000));
        QCOMPARE(TestClient::status(a), 200);
        QCOMPARE(TestClient::status(b), 200);
        QCOMPARE(m_fx->fake()->batches().size(), 2); // the failed one, then the one that ran
    }

    void tokenLimitTwiceSplitsTheBatch() {
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 2, "token_limit_exceeded");
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(chatBody("split " + QByteArray::number(i))));
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
        m_fx->fake()->setExpireAfter(100ms, 0.5);
        connect(m_fx->fake(), &FakeProvider::batchFinished, this,
                [this] { m_fx->fake()->setExpireAfter(-1ms); });
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(chatBody("expiring " + QByteArray::number(i))));
        for (int i = 0; i < replies.size(); ++i) {
            QVERIFY(TestClient::finished(replies.at(i), 15'000));
            QCOMPARE(TestClient::status(replies.at(i)), 200);
            QCOMPARE(chatContent(replies.at(i)->readAll()),
                     QStringLiteral("echo: expiring %1").arg(i));
        }
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 2);
        QCOMPARE(batches.at(1).customIds.size(), 2); // only the lines that never ran
    }

    // --- The grace period ---------------------------------------------------------------

    // --- Keys at rest -------------------------------------------------------------------

    void configuredKeyIsNeverStored() {
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-secret-0001")));
        QNetworkReply *reply = send(chatBody("with the configured key"));
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
        m_fx->fake()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(chatBody("with my own key"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        QTRY_VERIFY(storeBytes().contains("sk-test-key-aaaa")); // a restart would need it
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QTRY_VERIFY(!storeBytes().contains("sk-test-key-aaaa"));
        m_fx->stopProxy();
        QVERIFY(!storeBytes().contains("sk-test-key-aaaa"));
    }

    void clientKeyIsNeverStoredForRequestsThatWait() {
        Config config = m_fx->baseConfig();
        config.batchWindow = 30s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send(chatBody("queued only"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        m_fx->proxy()->core()->commit();
        QVERIFY(!storeBytes().contains("sk-test-key-aaaa")); // no batch made with it yet
        reply->abort();
    }

    void refusedKeyIsForgotten() {
        m_fx->fake()->failNext(FakeProvider::Operation::Upload, 5, 401);
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 5; ++i) {
            const QByteArray token = "sk-random-token-" + QByteArray::number(i) + "-xyz";
            replies.append(send(chatBody("random " + QByteArray::number(i)),
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
        m_fx->fake()->setProcessingDelay(800ms);
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-old-0001")));
        QNetworkReply *waiting = send(chatBody("key rotated"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        const qsizetype pollsBefore = pollKeys().size();
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-new-0002")));
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1);
        // (A poll the stopped instance had on the wire may still arrive just after.)
        const QList<QByteArray> polls = pollKeys().mid(pollsBefore);
        QVERIFY(polls.contains("Bearer sk-configured-new-0002"));
        QCOMPARE(polls.constLast(), QByteArray("Bearer sk-configured-new-0002"));
        QNetworkReply *back = send(chatBody("key rotated"));
        QVERIFY(TestClient::finished(back));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(chatContent(back->readAll()), QStringLiteral("echo: key rotated"));
        QCOMPARE(m_fx->paidLines(), 1);
        QVERIFY(!storeBytes().contains("sk-configured-"));
    }

    // A batch names the callers (token names) of its requests, in alphabetical order, and keeps
    // them through a restart; a fourth caller shows as "+".
    void batchNamesItsCallersThroughARestart() {
        m_fx->fake()->setProcessingDelay(800ms);
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
            replies.append(send(chatBody(QByteArray("from ") + name), as(name)));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 3);
        m_fx->proxy()->flushNow();
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
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
            replies.append(send(chatBody(QByteArray("second ") + name), as(name)));
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
        m_fx->fake()->setProcessingDelay(600ms);
        QVERIFY(m_fx->startProxy(configuredKeyConfig("sk-configured-gone-0001")));
        QNetworkReply *waiting = send(chatBody("no key later"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
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
        QNetworkReply *noKey = send(chatBody("no key later"), {});
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
        QNetworkReply *refused = send(chatBody("not stored"));
        QVERIFY(TestClient::finished(refused));
        QCOMPARE(TestClient::status(refused), 503);
        QVERIFY(refused->rawHeader("retry-after").toInt() >= 1);
        const QJsonObject error = jsonOf(refused->readAll())[u"error"].toObject();
        QCOMPARE(error[u"code"].toString(), QStringLiteral("store_unavailable"));
        QCOMPARE(error[u"type"].toString(), QStringLiteral("server_error"));
        QVERIFY(!m_fx->proxy()->core()->storeWritable());
        // Still refused while it cannot write, and nothing was sent for them.
        QNetworkReply *again = send(chatBody("still not stored"));
        QVERIFY(TestClient::finished(again));
        QCOMPARE(TestClient::status(again), 503);
        QTest::qWait(300);
        QCOMPARE(m_fx->fake()->count("POST", "/v1/files"), 0);
        QCOMPARE(m_fx->proxy()->core()->queued(), 0);
        // Writes succeed again: the probe notices, and requests are accepted.
        QVERIFY(m_fx->proxy()->store()->simulateWriteFailureForTests(false));
        QTRY_VERIFY_WITH_TIMEOUT(m_fx->proxy()->core()->storeWritable(), 5000);
        QNetworkReply *accepted = send(chatBody("stored now"));
        QVERIFY(TestClient::finished(accepted));
        QCOMPARE(TestClient::status(accepted), 200);
        QCOMPARE(chatContent(accepted->readAll()), QStringLiteral("echo: stored now"));
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
        m_fx->fake()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(chatBody("lost upstream"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        m_fx->fake()->failNext(FakeProvider::Operation::Retrieve, 1, status);
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), status);
        const QJsonObject error = jsonOf(reply->readAll())[u"error"].toObject();
        QVERIFY2(error[u"message"].toString().contains(u"poll"),
                 qPrintable(error[u"message"].toString()));
        QVERIFY(!error[u"type"].toString().isEmpty());
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QTRY_VERIFY(!storeBytes().contains("sk-test-key-aaaa"));
    }

    void pollOfABatchTheProviderForgotEnds() {
        m_fx->fake()->setProcessingDelay(600ms);
        QNetworkReply *reply = send(chatBody("forgotten upstream"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        m_fx->fake()->reset(); // the provider no longer knows the batch: 404 on every poll
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 404);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
    }

    void transientPollErrorsKeepPolling() {
        m_fx->fake()->setProcessingDelay(300ms);
        QNetworkReply *reply = send(chatBody("flaky upstream"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        m_fx->fake()->failNext(FakeProvider::Operation::Retrieve, 3, 503, "0");
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
    }

    void hugeRetryAfterIsCapped() {
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
        m_fx->fake()->failNext(FakeProvider::Operation::Upload, 1, 503, "99999999999");
        QNetworkReply *reply = send(chatBody("patient"));
        QTRY_COMPARE(m_fx->fake()->count("POST", "/v1/files"), 1);
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
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        Config config = graceConfig(300ms);
        if (!withStore)
            config.dataDir.clear();
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 3; ++i)
            replies.append(send(chatBody("slow " + QByteArray::number(i))));
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
            QVERIFY(reply->rawHeader("x-request-id").startsWith("req_"));
            QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: slow %1").arg(i));
        }
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->paidLines(), 3);
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 3);
        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats[u"sync_fallback"].toInteger(), 3);
        QCOMPARE(stats[u"requests"][u"successful"].toInteger(), 3);
        QCOMPARE(stats[u"in_flight"].toInteger(), 0);
        QTRY_COMPARE(m_fx->proxy()->core()->activeBatches(), 0);
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0);
    }

    void graceCancelWithPartialResults() {
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.5);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 4; ++i)
            replies.append(send(chatBody("half " + QByteArray::number(i))));
        int fromBatch = 0;
        int fromSync = 0;
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: half %1").arg(i));
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
        QCOMPARE(m_fx->fake()->batches().size(), 1); // the rest did not go into a new batch
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 2);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 2);
    }

    void batchFinishingWithinTheGracePeriodIsUntouched() {
        QVERIFY(m_fx->startProxy(graceConfig(5s)));
        QNetworkReply *a = send(chatBody("quick a"));
        QNetworkReply *b = send(chatBody("quick b"));
        for (QNetworkReply *reply : {a, b}) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY(!reply->hasRawHeader("x-llm-proxy-fallback"));
            QVERIFY(reply->hasRawHeader("x-llm-proxy-batch-id"));
        }
        QCOMPARE(chatContent(a->readAll()), QStringLiteral("echo: quick a"));
        QCOMPARE(cancels(), 0);
        QCOMPARE(syncCalls(), 0);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 0);
    }

    void withoutGracePeriodNothingIsCancelled() {
        m_fx->fake()->setNeverFinish(true);
        QNetworkReply *reply = send(chatBody("patient"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        QTest::qWait(600);
        QVERIFY(!reply->isFinished());
        QCOMPARE(cancels(), 0);
        m_fx->fake()->setNeverFinish(false); // it finishes after all
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 200);
        QVERIFY(!reply->hasRawHeader("x-llm-proxy-fallback"));
        QCOMPARE(syncCalls(), 0);
    }

    void graceKeepsLinesOfClientsWhoLeftUnpaid() {
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(400ms)));
        RawClient gone;
        QVERIFY(gone.connectTo(m_fx->client()->port()));
        gone.post("/v1/chat/completions", chatBody("gone"));
        QNetworkReply *stays = send(chatBody("stays"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->fake()->batches().constFirst().customIds.size(), 2);
        gone.socket.abort();
        QVERIFY(TestClient::finished(stays, 15'000));
        QCOMPARE(TestClient::status(stays), 200);
        QCOMPARE(stays->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QTRY_COMPARE(m_fx->proxy()->core()->unclaimed(), 1); // kept for its client, not paid
        QCOMPARE(syncCalls(), 1);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 1);
        // Its client comes back: it goes out again, in a batch.
        m_fx->fake()->setNeverFinish(false);
        QNetworkReply *back = send(chatBody("gone"));
        QVERIFY(TestClient::finished(back, 15'000));
        QCOMPARE(TestClient::status(back), 200);
        QVERIFY(!back->hasRawHeader("x-llm-proxy-fallback"));
        QCOMPARE(chatContent(back->readAll()), QStringLiteral("echo: gone"));
        QCOMPARE(m_fx->fake()->batches().size(), 2);
        QCOMPARE(m_fx->fake()->batches().at(1).customIds.size(), 1);
        QCOMPARE(syncCalls(), 1);
    }

    void graceFallbackRetriesTransientErrors() {
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        m_fx->fake()->failNext(FakeProvider::Operation::Chat, 2, 503, "0");
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *reply = send(chatBody("try again"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: try again"));
        QCOMPARE(syncCalls(), 3);
        QCOMPARE(m_fx->statsJson()[u"sync_fallback"].toInteger(), 1);
    }

    void graceFallbackPassesTheProvidersErrorOn() {
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *reply = send(chatBody("refuse me [[status:422]]"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 422); // final: not retried, not made up
        QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QVERIFY(reply->rawHeader("x-request-id").startsWith("req_"));
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
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        m_fx->fake()->setCancelDelay(1500ms);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *waiting = send(chatBody("across a restart"));
        QTRY_COMPARE_WITH_TIMEOUT(cancels(), 1, 5000);
        m_fx->proxy()->stop();
        QVERIFY(TestClient::finished(waiting));
        QCOMPARE(TestClient::status(waiting), 503);
        QVERIFY(m_fx->startProxy(graceConfig(300ms)));
        QNetworkReply *back = send(chatBody("across a restart"));
        QVERIFY(TestClient::finished(back, 15'000));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(back->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
        QCOMPARE(chatContent(back->readAll()), QStringLiteral("echo: across a restart"));
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
        QCOMPARE(cancels(), 1);
        QCOMPARE(syncCalls(), 1);
        QCOMPARE(m_fx->fake()->batches().size(), 1);
    }

    void graceRunningOutWhileStoppedCancelsWithoutPaying() {
        // Nobody waits after a restart: the lines that never ran are kept for their clients,
        // not sent at full price.
        m_fx->fake()->setNeverFinish(true);
        m_fx->fake()->setCancelFractionDone(0.0);
        QVERIFY(m_fx->startProxy(graceConfig(1h)));
        QNetworkReply *waiting = send(chatBody("while stopped"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
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
