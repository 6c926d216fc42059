// SPDX-License-Identifier: GPL-3.0-or-later
// The front door over loopback, against the fake provider (issue 9): web pages, DNS rebinding,
// paths that leave /v1, proxy tokens and the caller identity they give, Idempotency-Key reuse,
// and the binary refusing to offer the configured key to the network.

#include "fakeprovider.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonObject>
#include <QNetworkInterface>
#include <QNetworkReply>
#include <QProcess>
#include <QSignalSpy>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

const QByteArray AliceToken = "alice-token-0123456789";
const QByteArray BobToken = "bob-token-9876543210ab";
const QByteArray ConfiguredKey = "sk-configured-key-zzzz";

struct RawAnswer {
    int status = 0;
    QByteArray head; // lower case
    QByteArray body;
};

} // namespace

class tst_Policy final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    Config baseConfig() const {
        Config config = m_fx->baseConfig();
        config.batchWindow = 300ms;
        config.ioThreads = 2;
        config.inMemory = true;
        return config;
    }

    Config tokenConfig() const {
        Config config = baseConfig();
        config.apiKey = ConfiguredKey;
        config.tokens = {{"alice", AliceToken}, {"bob", BobToken}};
        return config;
    }

    // One request on a connection of its own, exactly as written; its whole answer.
    RawAnswer exchange(const QByteArray &request) {
        RawClient raw;
        RawAnswer answer;
        if (!raw.connectTo(m_fx->port()))
            return answer;
        raw.socket.write(request);
        raw.waitFor([&] {
            const qsizetype end = raw.received.indexOf("\r\n\r\n");
            if (end < 0)
                return false;
            const QByteArray head = raw.received.first(end).toLower();
            const qsizetype at = head.indexOf("content-length:");
            const qint64 length =
                at < 0
                    ? 0
                    : head.mid(at + 15, head.indexOf("\r\n", at) - at - 15).trimmed().toLongLong();
            return raw.received.size() - end - 4 >= length;
        });
        const qsizetype end = raw.received.indexOf("\r\n\r\n");
        if (end < 0)
            return answer;
        answer.head = raw.received.first(end).toLower();
        answer.body = raw.received.sliced(end + 4);
        answer.status = raw.received.mid(9, 3).toInt();
        return answer;
    }

    static QByteArray get(const QByteArray &target, const QByteArray &extra = {}) {
        return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
    }

    static QByteArray post(const QByteArray &target, const QByteArray &body,
                           const QByteArray &extra) {
        return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra +
               "Content-Length: " + QByteArray::number(body.size()) + "\r\n\r\n" + body;
    }

    static QString errorCode(const QByteArray &body) {
        return jsonOf(body)[u"error"].toObject()[u"code"].toString();
    }

    // Nothing reached the provider: waits a batch window (and then some) first.
    void verifyNothingUpstream() {
        QTest::qWait(500);
        QCOMPARE(m_fx->fake()->requests().size(), 0);
    }

    QNetworkReply *send(const QByteArray &method, const QByteArray &path, const QByteArray &body,
                        const Headers &headers) {
        return m_fx->client()->send(method, path, body, headers);
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>(ProxyFixture::Store::None);
        QVERIFY(m_fx->listening());
        QVERIFY(m_fx->startProxy(baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    // ---- Browsers -----------------------------------------------------------------------

    void crossSitePagesAreRefusedAndNothingGoesUpstream_data() {
        QTest::addColumn<QByteArray>("request");
        // A "simple" request: no preflight, the browser sends it as is.
        QTest::newRow("text/plain POST")
            << post("/v1/chat/completions", chatBody("spend"),
                    "Origin: http://evil.example\r\nContent-Type: text/plain\r\n"
                    "Authorization: Bearer sk-test-key-aaaa\r\n");
        QTest::newRow("null origin") << post("/v1/chat/completions", chatBody("spend"),
                                             "Origin: null\r\nContent-Type: text/plain\r\n");
        QTest::newRow("no-cors GET") << get("/v1/models", "Sec-Fetch-Site: cross-site\r\n"
                                                          "Sec-Fetch-Mode: no-cors\r\n");
        QTest::newRow("stats") << get("/stats", "Origin: http://evil.example\r\n");
        QTest::newRow("preflight") << QByteArray(
            "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    }
    void crossSitePagesAreRefusedAndNothingGoesUpstream() {
        QFETCH(QByteArray, request);
        const RawAnswer answer = exchange(request);
        QCOMPARE(answer.status, 403);
        QCOMPARE(errorCode(answer.body), QStringLiteral("origin_not_allowed"));
        QVERIFY(!answer.head.contains("access-control-allow-origin"));
        verifyNothingUpstream();
    }

    void allowedOriginsGetCorsAnswers() {
        Config config = baseConfig();
        config.allowOrigins = {"http://localhost:5173"};
        QVERIFY(m_fx->startProxy(config));
        // The preflight is the proxy's: answered here, allowing what the SDK sends.
        const RawAnswer preflight =
            exchange("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                     "Origin: http://localhost:5173\r\nAccess-Control-Request-Method: POST\r\n"
                     "Access-Control-Request-Headers: authorization, content-type, x-stainless-os, "
                     "x-stainless-retry-count, idempotency-key\r\n\r\n");
        QCOMPARE(preflight.status, 204);
        QVERIFY(preflight.head.contains("access-control-allow-origin: http://localhost:5173"));
        QVERIFY(preflight.head.contains("vary: origin"));
        for (const char *name : {"authorization", "content-type", "x-stainless-os",
                                 "x-stainless-retry-count", "idempotency-key", "x-batch"})
            QVERIFY2(preflight.head.contains(name), name);
        QVERIFY(preflight.head.contains("access-control-allow-methods: get, post"));

        // Relayed and batched answers carry it too.
        const QByteArray origin = "Origin: http://localhost:5173\r\n"
                                  "Authorization: Bearer sk-test-key-aaaa\r\n";
        const RawAnswer models = exchange(get("/v1/models", origin));
        QCOMPARE(models.status, 200);
        QVERIFY(models.head.contains("access-control-allow-origin: http://localhost:5173"));
        QCOMPARE(models.head.count("access-control-allow-origin"), 1);
        const RawAnswer chat = exchange(post("/v1/chat/completions", chatBody("hi"),
                                             origin + "Content-Type: application/json\r\n"));
        QCOMPARE(chat.status, 200);
        QVERIFY(chat.head.contains("access-control-allow-origin: http://localhost:5173"));
        QVERIFY(chat.head.contains("access-control-expose-headers:"));

        // Another page still gets nothing.
        const RawAnswer other = exchange(get("/v1/models", "Origin: http://localhost:5174\r\n"));
        QCOMPARE(other.status, 403);
        // SDKs and curl (no Origin) get no CORS headers.
        const RawAnswer plain = exchange(get("/v1/models", "Authorization: Bearer k\r\n"));
        QCOMPARE(plain.status, 200);
        QVERIFY(!plain.head.contains("access-control-"));
    }

    // ---- Hosts (DNS rebinding) ------------------------------------------------------------

    void foreignHostNamesGet421() {
        for (const QByteArray target : {"/stats", "/v1/models", "/v1/files", "/healthz"}) {
            const RawAnswer answer = exchange("GET " + target +
                                              " HTTP/1.1\r\nHost: evil.example:3030\r\n"
                                              "Authorization: Bearer sk-test-key-aaaa\r\n\r\n");
            QCOMPARE(answer.status, 421);
            QCOMPARE(errorCode(answer.body), QStringLiteral("misdirected_request"));
            QVERIFY(!answer.body.contains("\"requests\"")); // no stats
        }
        const RawAnswer twoHosts =
            exchange("GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n");
        QCOMPARE(twoHosts.status, 400);
        verifyNothingUpstream();
        const QList<QByteArray> hosts{QByteArray("localhost:" + QByteArray::number(m_fx->port())),
                                      QByteArray("127.0.0.1"), QByteArray("[::1]:3030")};
        for (const QByteArray &host : hosts) {
            const RawAnswer answer = exchange("GET /stats HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
            QCOMPARE(answer.status, 200);
        }
    }

    void allowedHostNamesAreServed() {
        Config config = baseConfig();
        config.allowHosts = {"proxy.lan"};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(exchange("GET /stats HTTP/1.1\r\nHost: Proxy.LAN:3030\r\n\r\n").status, 200);
        QCOMPARE(exchange("GET /stats HTTP/1.1\r\nHost: evil.example\r\n\r\n").status, 421);
    }

    // ---- Paths ----------------------------------------------------------------------------

    void pathsLeavingV1AreRefusedNeverRelayed_data() {
        QTest::addColumn<QByteArray>("target");
        QTest::newRow("dotdot") << QByteArray("/v1/../x");
        QTest::newRow("encoded dotdot") << QByteArray("/v1/%2e%2e/x");
        QTest::newRow("mixed case") << QByteArray("/v1/%2E./x");
        QTest::newRow("deep") << QByteArray("/v1/models/../../x");
        QTest::newRow("dot") << QByteArray("/v1/./models");
        QTest::newRow("encoded slash") << QByteArray("/v1/files/a%2f..%2fx");
        QTest::newRow("encoded backslash") << QByteArray("/v1/files/%5c..%5cx");
        QTest::newRow("encoded NUL") << QByteArray("/v1/files/a%00b");
        QTest::newRow("encoded LF in query") << QByteArray("/v1/files?x=%0aHost:%20y");
    }
    void pathsLeavingV1AreRefusedNeverRelayed() {
        QFETCH(QByteArray, target);
        const RawAnswer answer =
            exchange(get(target, "Authorization: Bearer sk-test-key-aaaa\r\n"));
        QCOMPARE(answer.status, 400);
        QCOMPARE(errorCode(answer.body), QStringLiteral("invalid_path"));
        verifyNothingUpstream();
    }

    // ---- Proxy tokens ---------------------------------------------------------------------

    void tokensAreRequiredAndNeverGoUpstream() {
        QVERIFY(m_fx->startProxy(tokenConfig()));
        // Missing, wrong, or a provider key instead of a token: 401, nothing upstream.
        const QList<QByteArray> refused{
            QByteArray(), QByteArray("Authorization: Bearer wrong-token-000000000\r\n"),
            QByteArray("Authorization: Bearer sk-test-key-aaaa\r\n"),
            QByteArray("Authorization: Bearer " + AliceToken.chopped(1) + "\r\n")};
        for (const QByteArray &auth : refused) {
            for (const QByteArray target : {"/v1/models", "/stats"}) {
                const RawAnswer answer = exchange(get(target, auth));
                QCOMPARE(answer.status, 401);
                QCOMPARE(errorCode(answer.body), QStringLiteral("invalid_api_key"));
            }
            const RawAnswer chat = exchange(post("/v1/chat/completions", chatBody("x"),
                                                 auth + "Content-Type: application/json\r\n"));
            QCOMPARE(chat.status, 401);
        }
        verifyNothingUpstream();
        // /healthz says only "ok" and needs nothing.
        QCOMPARE(exchange(get("/healthz")).status, 200);

        // With a token: the provider sees the configured key, never the token.
        QNetworkReply *relayed =
            send("GET", "/v1/echo/x", {}, {{"Authorization", "Bearer " + AliceToken}});
        QNetworkReply *anthropicStyle =
            send("GET", "/v1/echo/y", {},
                 {{"x-api-key", BobToken}, {"Authorization", "Bearer sk-ignored-0000"}});
        QNetworkReply *batched = send("POST", "/v1/chat/completions", chatBody("q"),
                                      {{"Authorization", "Bearer " + AliceToken}});
        QNetworkReply *stats = send("GET", "/stats", {}, {{"Authorization", "Bearer " + BobToken}});
        for (QNetworkReply *reply : {relayed, anthropicStyle, batched, stats}) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
        }
        for (QNetworkReply *reply : {relayed, anthropicStyle}) {
            const QJsonObject headers = jsonOf(reply->readAll())[u"headers"].toObject();
            QCOMPARE(headers[u"authorization"].toString(),
                     QString::fromLatin1("Bearer " + ConfiguredKey));
            QVERIFY(!headers.contains(u"x-api-key"));
        }
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->fake()->batches().first().authorization, "Bearer " + ConfiguredKey);
        for (const FakeProvider::RequestRecord &record : m_fx->fake()->requests()) {
            for (const QByteArray &value : record.headers) {
                QVERIFY(!value.contains(AliceToken));
                QVERIFY(!value.contains(BobToken));
            }
        }
    }

    void tokensWithTheClientsOwnProviderKey() {
        Config config = tokenConfig();
        config.apiKey.clear(); // clients bring their own keys
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *own = send("GET", "/v1/echo/x", {},
                                  {{"Authorization", "Bearer " + AliceToken},
                                   {"X-Provider-Authorization", "Bearer sk-own-key-1111"}});
        QNetworkReply *noKey =
            send("GET", "/v1/echo/x", {}, {{"Authorization", "Bearer " + AliceToken}});
        QNetworkReply *keyNoToken =
            send("GET", "/v1/echo/x", {}, {{"X-Provider-Authorization", "Bearer sk-own-key-1111"}});
        QNetworkReply *batched = send("POST", "/v1/chat/completions", chatBody("own"),
                                      {{"Authorization", "Bearer " + BobToken},
                                       {"X-Provider-Authorization", "Bearer sk-own-key-2222"}});
        for (QNetworkReply *reply : {own, noKey, keyNoToken, batched})
            QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(own), 200);
        const QJsonObject headers = jsonOf(own->readAll())[u"headers"].toObject();
        QCOMPARE(headers[u"authorization"].toString(), QStringLiteral("Bearer sk-own-key-1111"));
        QVERIFY(!headers.contains(u"x-provider-authorization"));
        QCOMPARE(TestClient::status(noKey), 401);
        QCOMPARE(TestClient::status(keyNoToken), 401);
        QCOMPARE(TestClient::status(batched), 200);
        QCOMPARE(m_fx->fake()->batches().first().authorization,
                 QByteArray("Bearer sk-own-key-2222"));
    }

    // A peer off loopback: the proxy listens on this machine's own LAN address and the test
    // connects to it, so the peer address is not loopback either. Skipped without one.
    void statsOffLoopbackNeedsAToken() {
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
        auto statsFrom = [&](const QByteArray &extra) {
            QTcpSocket socket;
            socket.connectToHost(lan, m_fx->port());
            if (!QTest::qWaitFor([&] { return socket.state() == QAbstractSocket::ConnectedState; },
                                 5000))
                return 0;
            socket.write("GET /stats HTTP/1.1\r\nHost: " + lan.toString().toLatin1() + "\r\n" +
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
        // Without tokens (clients bring their own keys): loopback peers only.
        Config config = baseConfig();
        config.listen = {ListenAddress{lan, 0}};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(statsFrom({}), 403);
        // With tokens: the token, from anywhere.
        config.tokens = {{"alice", AliceToken}};
        QVERIFY(m_fx->startProxy(config));
        QCOMPARE(statsFrom({}), 401);
        QCOMPARE(statsFrom("Authorization: Bearer " + AliceToken + "\r\n"), 200);
        // And loopback without tokens keeps its /stats.
        QVERIFY(m_fx->startProxy(baseConfig()));
        QCOMPARE(exchange(get("/stats")).status, 200);
    }

    // ---- Caller identity: adoption and Idempotency-Key ----------------------------------

    void adoptionStaysWithinOneCaller() {
        QVERIFY(m_fx->startProxy(tokenConfig()));
        const QByteArray body = chatBody("same question");
        auto headersOf = [](const QByteArray &token) {
            return Headers{{"Authorization", "Bearer " + token},
                           {"Idempotency-Key", "key-1"},
                           {"Content-Type", "application/json"}};
        };
        QNetworkReply *alice = send("POST", "/v1/chat/completions", body, headersOf(AliceToken));
        QNetworkReply *bob = send("POST", "/v1/chat/completions", body, headersOf(BobToken));
        QNetworkReply *aliceAgain =
            send("POST", "/v1/chat/completions", body, headersOf(AliceToken));
        for (QNetworkReply *reply : {alice, bob, aliceAgain}) {
            QVERIFY(TestClient::finished(reply));
            QCOMPARE(TestClient::status(reply), 200);
        }
        // Same key, same body: Alice's retry adopted her request; Bob's is his own.
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 2);
        QCOMPARE(alice->rawHeader("x-request-id"), aliceAgain->rawHeader("x-request-id"));
        QVERIFY(alice->rawHeader("x-request-id") != bob->rawHeader("x-request-id"));
    }

    void idempotencyKeyWithAnotherBodyIs409() {
        QVERIFY(m_fx->startProxy(tokenConfig()));
        const Headers headers{{"Authorization", "Bearer " + AliceToken},
                              {"Idempotency-Key", "key-7"},
                              {"Content-Type", "application/json"}};
        QNetworkReply *first = send("POST", "/v1/chat/completions", chatBody("one"), headers);
        QTRY_COMPARE(m_fx->proxy()->stats()->snapshot().queued, quint64(1));
        QNetworkReply *second = send("POST", "/v1/chat/completions", chatBody("two"), headers);
        QVERIFY(TestClient::finished(second));
        QCOMPARE(TestClient::status(second), 409);
        const QByteArray body = second->readAll();
        QCOMPARE(errorCode(body), QStringLiteral("idempotency_key_reused"));
        QVERIFY(jsonOf(body)[u"error"][u"message"].toString().contains(u"different request body"));
        QVERIFY(TestClient::finished(first));
        QCOMPARE(TestClient::status(first), 200);
        QCOMPARE(chatContent(first->readAll()), QStringLiteral("echo: one"));
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 1);

        // Under a shared configured key without tokens (the case) too.
        Config shared = baseConfig();
        shared.apiKey = ConfiguredKey;
        QVERIFY(m_fx->startProxy(shared));
        const Headers anyone{{"Idempotency-Key", "key-8"}, {"Content-Type", "application/json"}};
        QNetworkReply *mine = send("POST", "/v1/chat/completions", chatBody("mine"), anyone);
        QTRY_COMPARE(m_fx->proxy()->stats()->snapshot().queued, quint64(1));
        QNetworkReply *theirs = send("POST", "/v1/chat/completions", chatBody("theirs"), anyone);
        QVERIFY(TestClient::finished(theirs));
        QCOMPARE(TestClient::status(theirs), 409);
        QVERIFY(TestClient::finished(mine));
        QCOMPARE(chatContent(mine->readAll()), QStringLiteral("echo: mine"));
    }

    // ---- The binary: no configured key offered to the network without a token -------------

    void offLoopbackWithoutTokenExits2_data() {
        QTest::addColumn<QString>("listen");
        QTest::addColumn<bool>("withTokens");
        QTest::addColumn<int>("exitCode");
        QTest::newRow("all interfaces") << QStringLiteral(":0") << false << 2;
        QTest::newRow("0.0.0.0") << QStringLiteral("0.0.0.0:0") << false << 2;
        QTest::newRow("with tokens") << QStringLiteral(":0") << true << -1;
        QTest::newRow("loopback") << QStringLiteral("127.0.0.1:0") << false << -1;
    }
    void offLoopbackWithoutTokenExits2() {
        QFETCH(QString, listen);
        QFETCH(bool, withTokens);
        QFETCH(int, exitCode);
        QTemporaryDir home;
        QVERIFY(home.isValid());
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("OPENAI_API_KEY"), QString::fromLatin1(ConfiguredKey));
        env.insert(QStringLiteral("HOME"), home.path());
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), home.filePath(QStringLiteral("config")));
        env.insert(QStringLiteral("XDG_DATA_HOME"), home.filePath(QStringLiteral("data")));
        QStringList args{QStringLiteral("--no-gui"), QStringLiteral("--in-memory"),
                         QStringLiteral("--listen"), listen};
        if (withTokens) {
            const QString file = home.filePath(QStringLiteral("tokens"));
            QFile tokens(file);
            QVERIFY(tokens.open(QIODevice::WriteOnly));
            tokens.write("alice " + AliceToken + "\n");
            tokens.close();
            QVERIFY(QFile::setPermissions(file, QFile::ReadOwner | QFile::WriteOwner));
            args << QStringLiteral("--tokens-file") << file;
        }
        QProcess process;
        process.setProcessEnvironment(env);
        process.start(QStringLiteral(LLMPROXY_BINARY), args);
        QVERIFY(process.waitForStarted());
        QByteArray out;
        QByteArray err;
        const bool ended = QTest::qWaitFor(
            [&] {
                out += process.readAllStandardOutput();
                err += process.readAllStandardError();
                return process.state() == QProcess::NotRunning || out.contains("listening on");
            },
            10'000);
        QVERIFY(ended);
        if (exitCode < 0) {
            QVERIFY2(out.contains("listening on"), err.constData());
            process.terminate();
            QVERIFY(process.waitForFinished(10'000));
            return;
        }
        QCOMPARE(process.exitStatus(), QProcess::NormalExit);
        QCOMPARE(process.exitCode(), exitCode);
        err += process.readAllStandardError();
        const QList<QByteArray> lines = err.trimmed().split('\n');
        QCOMPARE(lines.size(), 1);
        QVERIFY2(err.contains("--tokens-file"), err.constData());
        QVERIFY(!err.contains(ConfiguredKey));
        QVERIFY(!out.contains("listening on"));
    }
};

LLMPROXY_TEST_MAIN(tst_Policy)
#include "tst_policy.moc"
