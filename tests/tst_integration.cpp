// SPDX-License-Identifier: GPL-3.0-or-later
// The proxy as a whole, over loopback, against the fake provider: batching, results, errors,
// relay, the HTTP front end's mended edges, and stats.

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "http/httpfrontend.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "stats/stats.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

using namespace llmproxy;
using llmproxy::test::FakeProvider;
using namespace std::chrono_literals;

using namespace llmproxy::test;

class tst_Integration final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;

    Config baseConfig() const {
        Config config = m_fx->baseConfig();
        config.batchWindow = 300ms;
        config.maxBody = 64 * 1024;
        // Several front ends (one here, the others on threads of their own) unless the run
        // asks for another number: CTest runs this suite with 3 and with 1.
        config.ioThreads = ProxyFixture::ioThreads(3);
        return config;
    }

    QNetworkReply *send(const QByteArray &method, const QByteArray &path, const QByteArray &body,
                        const Headers &headers = KeyA) {
        return m_fx->client()->send(method, path, body, headers);
    }
    static bool finished(QNetworkReply *reply, int ms = 10'000) {
        return TestClient::finished(reply, ms);
    }
    static int status(QNetworkReply *reply) { return TestClient::status(reply); }
    // The body of the first answer in `received` once all of it is there (else a null array).
    static QByteArray completeBody(const QByteArray &received) {
        const qsizetype end = received.indexOf("\r\n\r\n");
        if (end < 0)
            return {};
        const QByteArray head = received.first(end).toLower();
        const qsizetype at = head.indexOf("content-length:");
        if (at < 0)
            return {};
        const qsizetype lineEnd = head.indexOf("\r\n", at);
        const qsizetype length =
            head.sliced(at + 15, (lineEnd < 0 ? head.size() : lineEnd) - at - 15)
                .trimmed()
                .toLongLong();
        if (received.size() - end - 4 < length)
            return {};
        QByteArray body = received.sliced(end + 4, length);
        body.detach();
        return body.isNull() ? QByteArray("") : body;
    }

    // GET /stats from another thread while this one (the service's: core and front end 0) is
    // kept busy, running no event loop; only front ends on threads of their own can answer.
    static QByteArray statsWhileThisThreadIsBusy(quint16 port) {
        std::atomic<bool> done{false};
        QByteArray answer;
        std::thread client([&answer, &done, port] {
            const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            timeval timeout{5, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_port = htons(port);
            address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0) {
                const QByteArray request = "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           "Connection: close\r\n\r\n";
                if (::send(fd, request.constData(), size_t(request.size()), 0) == request.size()) {
                    char buffer[4096];
                    ssize_t n = 0;
                    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
                        answer.append(buffer, n);
                }
            }
            ::close(fd);
            done = true;
        });
        QElapsedTimer busy;
        busy.start();
        while (!done && busy.elapsed() < 8000)
            std::this_thread::sleep_for(1ms); // busy: no events are processed here
        client.join();
        return answer;
    }

    // A proxy-made error: OpenAI's shape, all four fields present.
    static QJsonObject errorOf(const QByteArray &body) {
        const QJsonObject error = jsonOf(body)[u"error"].toObject();
        for (const char *field : {"message", "type", "param", "code"})
            if (!error.contains(QLatin1StringView(field)))
                qWarning("error body lacks %s: %s", field, body.constData());
        return error;
    }

    // An upstream that answers every request with `answer`, byte for byte (what the fake
    // provider's HTTP server cannot send). Requests are taken as whole once their head is in.
    static std::unique_ptr<QTcpServer> rawUpstream(const QByteArray &answer) {
        auto server = std::make_unique<QTcpServer>();
        if (!server->listen(QHostAddress::LocalHost, 0))
            return nullptr;
        QTcpServer *raw = server.get();
        QObject::connect(raw, &QTcpServer::newConnection, raw, [raw, answer] {
            while (QTcpSocket *socket = raw->nextPendingConnection()) {
                auto buffer = std::make_shared<QByteArray>();
                QObject::connect(socket, &QTcpSocket::readyRead, socket, [socket, buffer, answer] {
                    *buffer += socket->readAll();
                    while (buffer->contains("\r\n\r\n")) {
                        buffer->remove(0, buffer->indexOf("\r\n\r\n") + 4);
                        socket->write(answer);
                    }
                });
                QObject::connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            }
        });
        return server;
    }

    // The head of the first answer in `received` (up to its empty line), or a null array.
    static QByteArray headOf(const QByteArray &received) {
        const qsizetype end = received.indexOf("\r\n\r\n");
        return end < 0 ? QByteArray() : received.first(end + 2);
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>(ProxyFixture::Store::None);
        QVERIFY(m_fx->listening());
        QVERIFY(m_fx->startProxy(baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    void chatRequestsShareOneBatchAndEachGetsItsOwnAnswer() {
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 20; ++i)
            replies.append(send("POST", "/v1/chat/completions",
                                chatBody("question " + QByteArray::number(i))));
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(finished(reply));
            QCOMPARE(status(reply), 200);
            const QByteArray body = reply->readAll();
            QCOMPARE(chatContent(body), QStringLiteral("echo: question %1").arg(i));
            QVERIFY(reply->rawHeader("x-request-id").startsWith("req_"));
            QVERIFY(reply->rawHeader("x-llm-proxy-batch-id").startsWith("batch_"));
        }
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.first().customIds.size(), 20);
        QCOMPARE(batches.first().endpoint, QByteArray("/v1/chat/completions"));
        QCOMPARE(batches.first().metadata[u"created_by"].toString(), QStringLiteral("llm-proxy"));
        QCOMPARE(batches.first().authorization, QByteArray("Bearer sk-test-key-aaaa"));
        for (const QByteArray &id : batches.first().customIds)
            QVERIFY(QRegularExpression(QStringLiteral("^[A-Za-z0-9_-]{1,64}$"))
                        .match(QString::fromLatin1(id))
                        .hasMatch());
        // Input, output (and no error) files are deleted once everyone is answered.
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0);
        QVERIFY(m_fx->fake()->filesDeleted() >= 2);
        const QJsonObject stats = jsonOf(Stats::toJson(m_fx->proxy()->stats()->snapshot()));
        QCOMPARE(stats[u"requests"][u"total"].toInt(), 20);
        QCOMPARE(stats[u"requests"][u"successful"].toInt(), 20);
        QCOMPARE(stats[u"batches"][u"successful"].toInt(), 1);
    }

    void bodyGoesUpstreamByteForByte() {
        // Large integers, odd spacing and a pretty-printed body must arrive unchanged.
        const QByteArray body =
            "{\n  \"model\": \"gpt-4o-mini\",\n  \"seed\": 12345678901234567890,"
            "\n  \"messages\": [{\"role\": \"user\", \"content\": \"hi \\u00e9\"}]"
            ",\"temperature\":1.0000000000000001}";
        QNetworkReply *reply = send("POST", "/v1/chat/completions", body);
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), 200);
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 1);
        // The fake keeps the input file until the proxy deletes it; read what was uploaded via
        // the recorded requests instead: the line count and the echoed answer prove the body.
        QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: hi \u00e9"));
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 1);
    }

    void embeddingsAreBatched() {
        QNetworkReply *one =
            send("POST", "/v1/embeddings", R"({"model":"text-embedding-3-small","input":"hello"})");
        QNetworkReply *many = send("POST", "/v1/embeddings",
                                   R"({"model":"text-embedding-3-small","input":["a","b","c"]})");
        QVERIFY(finished(one));
        QVERIFY(finished(many));
        QCOMPARE(status(one), 200);
        QCOMPARE(status(many), 200);
        QCOMPARE(jsonOf(one->readAll())[u"data"].toArray().size(), 1);
        QCOMPARE(jsonOf(many->readAll())[u"data"].toArray().size(), 3);
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->fake()->batches().first().endpoint, QByteArray("/v1/embeddings"));
    }

    void groupsAreNeverMixed() {
        Headers orgHeaders = KeyA;
        orgHeaders.emplaceBack("OpenAI-Organization", "org-123");
        orgHeaders.emplaceBack("OpenAI-Project", "proj_456");
        QList<QNetworkReply *> replies{
            send("POST", "/v1/chat/completions", chatBody("a1", "model-a")),
            send("POST", "/v1/chat/completions", chatBody("a2", "model-a")),
            send("POST", "/v1/chat/completions", chatBody("b1", "model-b")),
            send("POST", "/v1/chat/completions", chatBody("k1", "model-a"), KeyB),
            send("POST", "/v1/chat/completions", chatBody("o1", "model-a"), orgHeaders),
            send("POST", "/v1/embeddings", R"({"model":"model-a","input":"x"})"),
        };
        for (QNetworkReply *reply : replies) {
            QVERIFY(finished(reply));
            QCOMPARE(status(reply), 200);
        }
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 5);
        int withOrg = 0;
        for (const auto &batch : batches) {
            if (batch.organization == "org-123") {
                ++withOrg;
                QCOMPARE(batch.project, QByteArray("proj_456"));
                QCOMPARE(batch.customIds.size(), 1);
            }
            if (batch.authorization.endsWith("bbbb"))
                QCOMPARE(batch.customIds.size(), 1);
        }
        QCOMPARE(withOrg, 1);
    }

    void sizeLimitSplitsBatches() {
        Config config = baseConfig();
        config.batchSize = 3;
        config.batchWindow = 60s; // only the size can flush
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 6; ++i)
            replies.append(send("POST", "/v1/chat/completions", chatBody(QByteArray::number(i))));
        for (QNetworkReply *reply : replies) {
            QVERIFY(finished(reply));
            QCOMPARE(status(reply), 200);
        }
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 2);
        QCOMPARE(batches.at(0).customIds.size(), 3);
        QCOMPARE(batches.at(1).customIds.size(), 3);
    }

    void perLineOutcomes() {
        QNetworkReply *ok = send("POST", "/v1/chat/completions", chatBody("fine"));
        QNetworkReply *bad =
            send("POST", "/v1/chat/completions", chatBody("too long [[status:400]]"));
        QNetworkReply *timeout =
            send("POST", "/v1/chat/completions", chatBody("slow [[error:request_timeout]]"));
        QNetworkReply *missing = send("POST", "/v1/chat/completions", chatBody("gone [[omit]]"));
        for (QNetworkReply *r : {ok, bad, timeout, missing})
            QVERIFY(finished(r));
        QCOMPARE(status(ok), 200);
        // The provider's own error passes through: its status and body.
        QCOMPARE(status(bad), 400);
        const QJsonObject badError = errorOf(bad->readAll());
        QVERIFY(!badError[u"message"].toString().isEmpty());
        QVERIFY(bad->rawHeader("x-request-id").startsWith("req_"));
        QCOMPARE(status(timeout), 504);
        QCOMPARE(status(missing), 502);
        QCOMPARE(errorOf(missing->readAll())[u"code"].toString(),
                 QStringLiteral("missing_from_batch_results"));
        for (QNetworkReply *r : {bad, timeout, missing})
            QVERIFY(r->rawHeader("x-llm-proxy-batch-id").startsWith("batch_"));
        const StatsSnapshot s = m_fx->proxy()->stats()->snapshot();
        QCOMPARE(s.requestsSuccessful, quint64(1));
        QCOMPARE(s.requestsFailed, quint64(3));
        QCOMPARE(s.synthesizedErrors, quint64(2));  // timeout, missing
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0); // input, output and error files deleted
    }

    void failedBatchCarriesProviderMessages() {
        // (token_limit_exceeded is submitted again instead: see tst_durable.)
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1, "model_not_found",
                                      QStringLiteral("The model gpt-4o-mini does not exist"));
        QNetworkReply *a = send("POST", "/v1/chat/completions", chatBody("x"));
        QNetworkReply *b = send("POST", "/v1/chat/completions", chatBody("y"));
        QVERIFY(finished(a));
        QVERIFY(finished(b));
        QCOMPARE(status(a), 502);
        const QJsonObject error = errorOf(a->readAll());
        QCOMPARE(error[u"code"].toString(), QStringLiteral("batch_failed"));
        QVERIFY2(error[u"message"].toString().contains(QStringLiteral("does not exist")),
                 qPrintable(error[u"message"].toString()));
        QCOMPARE(status(b), 502);
        const StatsSnapshot s = m_fx->proxy()->stats()->snapshot();
        QCOMPARE(s.batchesFailed, quint64(1));
        QCOMPARE(s.batchesSuccessful, quint64(0));
    }

    void uploadAndCreateFailures_data() {
        QTest::addColumn<FakeProvider::Operation>("operation");
        QTest::addColumn<int>("providerStatus");
        QTest::addColumn<int>("clientStatus");
        QTest::addColumn<int>("times");
        // Transient failures are retried (BatchJob::MaxAttempts times) before clients hear of
        // them; the fake asks for no back-off (Retry-After: 0) to keep this quick.
        QTest::newRow("upload 500") << FakeProvider::Operation::Upload << 500 << 502 << 8;
        QTest::newRow("upload 401") << FakeProvider::Operation::Upload << 401 << 401 << 1;
        QTest::newRow("create 400") << FakeProvider::Operation::Create << 400 << 400 << 1;
        QTest::newRow("create 503") << FakeProvider::Operation::Create << 503 << 502 << 8;
    }
    void uploadAndCreateFailures() {
        QFETCH(FakeProvider::Operation, operation);
        QFETCH(int, providerStatus);
        QFETCH(int, clientStatus);
        QFETCH(int, times);
        m_fx->fake()->failNext(operation, times, providerStatus, "0");
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("x"));
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), clientStatus);
        const QJsonObject error = errorOf(reply->readAll());
        QVERIFY(!error[u"message"].toString().isEmpty());
        QVERIFY(!error[u"message"].toString().contains(QStringLiteral("sk-test")));
        QCOMPARE(m_fx->proxy()->stats()->snapshot().synthesizedErrors, quint64(1));
        // The proxy keeps serving: the next request goes through.
        QNetworkReply *next = send("POST", "/v1/chat/completions", chatBody("again"));
        QVERIFY(finished(next));
        QCOMPARE(status(next), 200);
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0); // an orphaned input file is deleted too
    }

    void pollFailuresAreRetried() {
        m_fx->fake()->failNext(FakeProvider::Operation::Retrieve, 3, 503);
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("patience"));
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), 200);
        QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: patience"));
    }

    void downloadFailureIsRetried() {
        m_fx->fake()->failNext(FakeProvider::Operation::Download, 1, 500);
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("again"));
        QVERIFY(finished(reply, 20'000));
        QCOMPARE(status(reply), 200);
    }

    // Streams are batched by default (tst_streaming); with X-Batch: off they are relayed.
    void streamingAndOptOutAreRelayed() {
        Headers optOut = KeyA;
        optOut.emplaceBack("X-Batch", "off");
        QNetworkReply *stream = send(
            "POST", "/v1/chat/completions",
            R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"s"}]})",
            optOut);
        QNetworkReply *direct = send("POST", "/v1/chat/completions", chatBody("now"), optOut);
        QVERIFY(finished(stream));
        QVERIFY(finished(direct));
        QCOMPARE(status(stream), 200);
        QVERIFY(stream->header(QNetworkRequest::ContentTypeHeader)
                    .toString()
                    .startsWith(QStringLiteral("text/event-stream")));
        const QByteArray events = stream->readAll();
        QVERIFY(events.contains("chat.completion.chunk"));
        QVERIFY(events.trimmed().endsWith("data: [DONE]"));
        QCOMPARE(status(direct), 200);
        QCOMPARE(chatContent(direct->readAll()), QStringLiteral("echo: now"));
        QCOMPARE(m_fx->fake()->batches().size(), 0);
        QCOMPARE(m_fx->proxy()->stats()->snapshot().relayed, quint64(2));
        // The opt-out header itself is not forwarded.
        for (const auto &record : m_fx->fake()->requests())
            QVERIFY(!record.headers.contains("x-batch"));
    }

    void sseArrivesAsItIsProduced() {
        m_fx->fake()->setStreamChunkDelay(150ms);
        Headers optOut = KeyA;
        optOut.emplaceBack("X-Batch", "off");
        QNetworkReply *stream = send(
            "POST", "/v1/chat/completions",
            R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"slow stream"}]})",
            optOut);
        QByteArray first;
        QVERIFY(QTest::qWaitFor(
            [&] {
                first += stream->readAll();
                return first.contains("chat.completion.chunk");
            },
            5000));
        QVERIFY2(!stream->isFinished(), "the stream was buffered whole instead of relayed live");
        QVERIFY(finished(stream));
    }

    void relayPassesEverythingThrough() {
        Headers headers = KeyA;
        headers.emplaceBack("X-Custom", "kept");
        headers.emplaceBack("Keep-Alive", "timeout=5");
        headers.emplaceBack("OpenAI-Organization", "org-9");
        QNetworkReply *reply =
            send("PATCH", "/v1/echo/files/file-abc%3Bx?limit=2&q=a+b%20c%2F", "{\"k\":1}", headers);
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), 200);
        const QJsonObject echo = jsonOf(reply->readAll());
        QCOMPARE(echo[u"method"].toString(), QStringLiteral("PATCH"));
        // (An encoded slash in the path is refused since issue 9: tst_policy.)
        QCOMPARE(echo[u"path"].toString(), QStringLiteral("/v1/echo/files/file-abc%3Bx"));
        QCOMPARE(echo[u"query"].toString(), QStringLiteral("limit=2&q=a+b%20c%2F"));
        QCOMPARE(echo[u"body"].toString(), QStringLiteral("{\"k\":1}"));
        const QJsonObject seen = echo[u"headers"].toObject();
        QCOMPARE(seen[u"x-custom"].toString(), QStringLiteral("kept"));
        QCOMPARE(seen[u"openai-organization"].toString(), QStringLiteral("org-9"));
        QCOMPARE(seen[u"authorization"].toString(), QStringLiteral("Bearer sk-test-key-aaaa"));
        QVERIFY(!seen.contains(u"keep-alive"));
        QVERIFY(!seen.contains(u"x-batch"));

        // Upstream statuses and headers come back as they are.
        Headers teapot = KeyA;
        teapot.emplaceBack("X-Fake-Status", "418");
        QNetworkReply *odd = send("GET", "/v1/echo/status", {}, teapot);
        QVERIFY(finished(odd));
        QCOMPARE(status(odd), 418);
        QNetworkReply *models = send("GET", "/v1/models", {});
        QVERIFY(finished(models));
        QCOMPARE(status(models), 200);
        QCOMPARE(jsonOf(models->readAll())[u"object"].toString(), QStringLiteral("list"));
    }

    void configuredKeyReplacesClientKey() {
        Config config = baseConfig();
        config.apiKey = "sk-server-key-zzzz";
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *batched = send("POST", "/v1/chat/completions", chatBody("x"),
                                      {{"Authorization", "Bearer placeholder"}});
        QNetworkReply *anonymous = send("POST", "/v1/chat/completions", chatBody("y"), {});
        QNetworkReply *relayed = send("GET", "/v1/echo/x", {}, {});
        for (QNetworkReply *r : {batched, anonymous, relayed})
            QVERIFY(finished(r));
        QCOMPARE(status(batched), 200);
        QCOMPARE(status(anonymous), 200);
        QCOMPARE(jsonOf(relayed->readAll())[u"headers"][u"authorization"].toString(),
                 QStringLiteral("Bearer sk-server-key-zzzz"));
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 1); // same upstream key: one group
        QCOMPARE(batches.first().authorization, QByteArray("Bearer sk-server-key-zzzz"));
    }

    void upstreamUnreachableIs502() {
        Config config = baseConfig();
        config.upstream = QUrl(QStringLiteral("http://127.0.0.1:1/v1"));
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send("GET", "/v1/models", {});
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), 502);
        QCOMPARE(errorOf(reply->readAll())[u"type"].toString(), QStringLiteral("server_error"));
    }

    void badInput_data() {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QByteArray>("path");
        QTest::addColumn<QByteArray>("body");
        QTest::addColumn<bool>("withKey");
        QTest::addColumn<int>("expected");
        QTest::addColumn<QString>("param");
        QTest::newRow("invalid JSON") << QByteArray("POST") << QByteArray("/v1/chat/completions")
                                      << QByteArray("{\"model\":") << true << 400 << QString();
        QTest::newRow("not an object") << QByteArray("POST") << QByteArray("/v1/embeddings")
                                       << QByteArray("[1,2]") << true << 400 << QString();
        QTest::newRow("empty body") << QByteArray("POST") << QByteArray("/v1/chat/completions")
                                    << QByteArray() << true << 400 << QString();
        QTest::newRow("missing model")
            << QByteArray("POST") << QByteArray("/v1/chat/completions")
            << QByteArray("{\"messages\":[]}") << true << 400 << QStringLiteral("model");
        QTest::newRow("numeric model") << QByteArray("POST") << QByteArray("/v1/embeddings")
                                       << QByteArray("{\"model\":4,\"input\":\"x\"}") << true << 400
                                       << QStringLiteral("model");
        QTest::newRow("wrong method") << QByteArray("PUT") << QByteArray("/v1/chat/completions")
                                      << QByteArray("{}") << true << 405 << QString();
        QTest::newRow("GET embeddings") << QByteArray("GET") << QByteArray("/v1/embeddings")
                                        << QByteArray() << true << 405 << QString();
        QTest::newRow("outside /v1") << QByteArray("GET") << QByteArray("/chat/completions")
                                     << QByteArray() << true << 404 << QString();
        QTest::newRow("no key") << QByteArray("POST") << QByteArray("/v1/chat/completions")
                                << chatBody("x") << false << 401 << QString();
        QTest::newRow("no key, relay") << QByteArray("GET") << QByteArray("/v1/models")
                                       << QByteArray() << false << 401 << QString();
        QTest::newRow("too large")
            << QByteArray("POST") << QByteArray("/v1/chat/completions")
            << chatBody(QByteArray(70 * 1024, 'x')) << true << 413 << QString();
    }
    void badInput() {
        QFETCH(QByteArray, method);
        QFETCH(QByteArray, path);
        QFETCH(QByteArray, body);
        QFETCH(bool, withKey);
        QFETCH(int, expected);
        QFETCH(QString, param);
        QNetworkReply *reply = send(method, path, body, withKey ? KeyA : Headers{});
        QVERIFY(finished(reply));
        QCOMPARE(status(reply), expected);
        const QJsonObject error = errorOf(reply->readAll());
        QVERIFY(!error[u"message"].toString().isEmpty());
        QVERIFY(!error[u"type"].toString().isEmpty());
        if (!param.isEmpty())
            QCOMPARE(error[u"param"].toString(), param);
        QCOMPARE(m_fx->fake()->batches().size(), 0);
        // ... and the proxy keeps serving.
        QNetworkReply *health = send("GET", "/healthz", {});
        QVERIFY(finished(health));
        QCOMPARE(status(health), 200);
    }

    // The proxy groups by the first `model`; the provider may read the last: a member twice is
    // refused before anything goes upstream, and a request batched alongside is unharmed.
    void duplicateMemberIsRefused_data() {
        QTest::addColumn<QByteArray>("body");
        QTest::addColumn<QString>("member");
        QTest::newRow("model twice")
            << QByteArray(
                   R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"model":"gpt-4o"})")
            << QStringLiteral("model");
        QTest::newRow("model spelled with an escape")
            << QByteArray(R"({"model":"gpt-4o-mini","messages":[],"mo\u0064el":"gpt-4o"})")
            << QStringLiteral("model");
        QTest::newRow("stream: false, then true")
            << QByteArray(R"({"model":"gpt-4o-mini","stream":false,"messages":[],"stream":true})")
            << QStringLiteral("stream");
        QTest::newRow("input twice (embeddings)")
            << QByteArray(R"({"model":"text-embedding-3-small","input":"a","input":["b","c"]})")
            << QStringLiteral("input");
    }
    void duplicateMemberIsRefused() {
        QFETCH(QByteArray, body);
        QFETCH(QString, member);
        const QByteArray path =
            body.contains("embedding") ? "/v1/embeddings" : "/v1/chat/completions";
        QNetworkReply *bad = send("POST", path, body);
        QNetworkReply *innocent = send("POST", "/v1/chat/completions", chatBody("innocent"));
        QVERIFY(finished(bad));
        QVERIFY(finished(innocent));
        QCOMPARE(status(bad), 400);
        const QJsonObject error = errorOf(bad->readAll());
        QCOMPARE(error[u"param"].toString(), member);
        QCOMPARE(error[u"type"].toString(), QStringLiteral("invalid_request_error"));
        QCOMPARE(error[u"code"].toString(), QStringLiteral("duplicate_member"));
        QVERIFY2(error[u"message"].toString().contains(u'\'' + member + u'\''),
                 qPrintable(error[u"message"].toString()));
        QCOMPARE(status(innocent), 200);
        QCOMPARE(chatContent(innocent->readAll()), QStringLiteral("echo: innocent"));
        // Only the innocent request went upstream: one batch of one line, nothing relayed.
        const auto batches = m_fx->fake()->batches();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.first().customIds.size(), 1);
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 1);
        QCOMPARE(m_fx->fake()->count("POST", "/v1/chat/completions"), 0);
        QCOMPARE(m_fx->fake()->count("POST", "/v1/embeddings"), 0);
    }

    // A result line's request_id is the provider's: escaped CR LF in it must not become a
    // header line of the client's answer.
    void requestIdWithCrLfNeverBecomesAHeader() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.post("/v1/chat/completions", chatBody("evil [[request_id_crlf]]"));
        QNetworkReply *innocent = send("POST", "/v1/chat/completions", chatBody("innocent"));
        QVERIFY(raw.waitFor([&] { return !completeBody(raw.received).isNull(); }, 10'000));
        const QByteArray head = headOf(raw.received);
        QVERIFY2(head.startsWith("HTTP/1.1 200 "), head.constData());
        QVERIFY2(!head.contains("X-Evil") && !head.contains("req_evil"), head.constData());
        QVERIFY(head.contains("\r\nx-llm-proxy-batch-id: batch_"));
        QCOMPARE(chatContent(completeBody(raw.received)),
                 QStringLiteral("echo: evil [[request_id_crlf]]"));
        QVERIFY(finished(innocent));
        QCOMPARE(status(innocent), 200);
        QVERIFY(innocent->rawHeader("x-request-id").startsWith("req_"));
    }

    // RFC 9110 §6.6.1: answers the proxy makes say when.
    void answersCarryADate() {
        const QRegularExpression imfFixdate(QStringLiteral(
            "\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d "
            "GMT\r\n"));
        for (const QByteArray &request :
             {QByteArray("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
              QByteArray("GET /stats HTTP/1.1\r\nHost: localhost\r\n\r\n"),
              QByteArray("GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n"),
              QByteArray("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                         "Authorization: Bearer sk-test\r\nContent-Length: 2\r\n\r\n[]")}) {
            RawClient raw;
            QVERIFY(raw.connectTo(m_fx->port()));
            raw.socket.write(request);
            QVERIFY(raw.waitFor([&] { return !completeBody(raw.received).isNull(); }));
            QVERIFY2(imfFixdate.match(QString::fromLatin1(headOf(raw.received))).hasMatch(),
                     raw.received.constData());
        }
        QNetworkReply *batched = send("POST", "/v1/chat/completions", chatBody("dated"));
        QVERIFY(finished(batched));
        QCOMPARE(status(batched), 200);
        QVERIFY(!batched->rawHeader("Date").isEmpty());
    }

    // RFC 9112 §6.3: Transfer-Encoding wins, and the relay must not pass the Content-Length on
    // with a body it de-chunked: the client would read 5 bytes and take the rest for the next
    // answer on its connection.
    void relayedAnswerWithBothFramingsIsFramedOnce() {
        const QByteArray body = R"({"object":"list","data":[]})";
        auto upstream =
            rawUpstream("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: 5\r\nX-Odd: a\rb\r\nTransfer-Encoding: chunked\r\n\r\n" +
                        QByteArray::number(body.size(), 16) + "\r\n" + body + "\r\n0\r\n\r\n");
        QVERIFY(upstream);
        Config config = baseConfig();
        config.upstream =
            QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(upstream->serverPort()));
        QVERIFY(m_fx->startProxy(config));
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.socket.write("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"
                         "Authorization: Bearer sk-test\r\n\r\n");
        QVERIFY(raw.waitFor([&] { return raw.received.endsWith("\r\n0\r\n\r\n"); }));
        const QByteArray head = headOf(raw.received).toLower();
        QVERIFY2(!head.contains("content-length"), head.constData());
        QVERIFY2(head.contains("\r\ntransfer-encoding: chunked\r\n"), head.constData());
        QVERIFY2(head.contains("\r\nx-odd: a b\r\n"), head.constData()); // a bare CR: a space
        QVERIFY2(head.contains("\r\ndate: "), head.constData());
        QByteArray chunked = raw.received.mid(head.size() + 2);
        QByteArray decoded;
        while (true) {
            const qsizetype lineEnd = chunked.indexOf("\r\n");
            QVERIFY(lineEnd > 0);
            bool ok = false;
            const qsizetype size = chunked.first(lineEnd).toLongLong(&ok, 16);
            QVERIFY(ok);
            chunked.remove(0, lineEnd + 2);
            if (size == 0)
                break;
            decoded += chunked.first(size);
            chunked.remove(0, size + 2);
        }
        QCOMPARE(decoded, body);
        QCOMPARE(chunked, QByteArray("\r\n"));
        // The connection is still in step: the next answer reads cleanly.
        raw.received.clear();
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        QVERIFY(raw.waitFor([&] { return raw.received.endsWith("{\"status\":\"ok\"}"); }));
        QVERIFY2(raw.received.startsWith("HTTP/1.1 200 "), raw.received.constData());
    }

    // The provider client keeps no cookie jar: a cookie the API set on one key's calls never
    // goes out on another key's (or on any later call).
    void providerCookiesAreNeverSentBack() {
        m_fx->fake()->setSetCookie("__cf_bm=tenant-a; Path=/; HttpOnly");
        QNetworkReply *a = send("POST", "/v1/chat/completions", chatBody("from a"), KeyA);
        QVERIFY(finished(a));
        QCOMPARE(status(a), 200);
        QNetworkReply *b = send("POST", "/v1/chat/completions", chatBody("from b"), KeyB);
        QVERIFY(finished(b));
        QCOMPARE(status(b), 200);
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0);
        int keyB = 0;
        for (const FakeProvider::RequestRecord &record : m_fx->fake()->requests()) {
            QVERIFY2(
                !record.headers.contains("cookie"),
                QByteArray(record.path + " carried " + record.headers.value("cookie")).constData());
            keyB += record.headers.value("authorization").endsWith("bbbb") ? 1 : 0;
        }
        QVERIFY(keyB >= 3); // upload, create, poll, download, delete: all without a cookie
    }

    // One result line over the limit fails its own request only (502 naming the cause); the
    // lines after it are read and delivered.
    void hugeResultLineFailsOnlyItsRequest() {
        Config config = baseConfig();
        config.maxResultLine = 100'000;
        QVERIFY(m_fx->startProxy(config));
        QList<QNetworkReply *> replies;
        for (int i = 0; i < 6; ++i) {
            const QByteArray content = i == 2 ? QByteArray("huge [[result_bytes:400000]]")
                                              : QByteArray("normal " + QByteArray::number(i));
            replies.append(send("POST", "/v1/chat/completions", chatBody(content)));
        }
        for (int i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(finished(reply, 20'000));
            if (i == 2) {
                QCOMPARE(status(reply), 502);
                const QJsonObject error = errorOf(reply->readAll());
                QCOMPARE(error[u"code"].toString(), QStringLiteral("result_line_too_large"));
                QVERIFY2(error[u"message"].toString().contains(QStringLiteral("100000")),
                         qPrintable(error[u"message"].toString()));
                QVERIFY(reply->rawHeader("x-llm-proxy-batch-id").startsWith("batch_"));
                continue;
            }
            QCOMPARE(status(reply), 200);
            QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: normal %1").arg(i));
        }
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        const StatsSnapshot s = m_fx->proxy()->stats()->snapshot();
        QCOMPARE(s.requestsSuccessful, quint64(5));
        QCOMPARE(s.requestsFailed, quint64(1));
        QTRY_COMPARE(m_fx->fake()->filesLive(), 0);
    }

    // Without a custom_id at its start, an oversized line cannot be matched to its request: that
    // request ends as missing from the results, and the others are still delivered.
    void hugeResultLineWithItsIdAtTheEndIsMissing() {
        Config config = baseConfig();
        config.maxResultLine = 100'000;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *before = send("POST", "/v1/chat/completions", chatBody("before"));
        QNetworkReply *huge = send("POST", "/v1/chat/completions",
                                   chatBody("huge [[result_bytes:400000]] [[custom_id_last]]"));
        QNetworkReply *after = send("POST", "/v1/chat/completions", chatBody("after"));
        for (QNetworkReply *reply : {before, huge, after})
            QVERIFY(finished(reply, 20'000));
        QCOMPARE(status(huge), 502);
        QCOMPARE(errorOf(huge->readAll())[u"code"].toString(),
                 QStringLiteral("missing_from_batch_results"));
        QCOMPARE(status(before), 200);
        QCOMPARE(chatContent(before->readAll()), QStringLiteral("echo: before"));
        QCOMPARE(status(after), 200);
        QCOMPARE(chatContent(after->readAll()), QStringLiteral("echo: after"));
    }

    void oversizedBodyIsRefusedBeforeItIsRead() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100000000\r\n\r\n{\"model\":");
        // Refused at once, without waiting for 100 MB that never comes.
        QVERIFY(raw.waitFor([&] { return raw.received.contains("\r\n\r\n"); }));
        QVERIFY2(raw.received.startsWith("HTTP/1.1 413"), raw.received.constData());
        QVERIFY(raw.waitClosed());
    }

    void oversizedChunkedBodyIsRefused() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test\r\nTransfer-Encoding: chunked\r\n\r\n");
        const QByteArray piece(16 * 1024, 'x');
        for (int i = 0; i < 6; ++i) // 96 KiB > 64 KiB limit
            raw.socket.write(QByteArray::number(piece.size(), 16) + "\r\n" + piece + "\r\n");
        QVERIFY(raw.waitFor([&] { return raw.received.contains("\r\n\r\n"); }));
        QVERIFY2(raw.received.startsWith("HTTP/1.1 413"), raw.received.constData());
    }

    void expectContinueIsAnswered() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        const QByteArray body = chatBody("hello");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test\r\nExpect: 100-continue\r\n"
                         "Content-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n");
        // The interim answer comes before any byte of the body is sent (curl would otherwise
        // wait 1 s before sending it).
        QVERIFY(raw.waitFor([&] { return raw.received.contains("100 Continue\r\n\r\n"); }, 5000));
        raw.received.clear();
        raw.socket.write(body);
        QVERIFY(raw.waitFor([&] { return raw.received.contains("echo: hello"); }));
        QVERIFY(raw.received.startsWith("HTTP/1.1 200"));
    }

    void connectionCloseIsHonoured() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        QVERIFY(raw.waitClosed());
        QVERIFY(raw.received.startsWith("HTTP/1.1 200"));
        QVERIFY(raw.received.contains("Connection: close"));

        RawClient http10;
        QVERIFY(http10.connectTo(m_fx->port()));
        http10.socket.write("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        QVERIFY(http10.waitClosed());
        QVERIFY(http10.received.contains(" 200 "));
    }

    void keepAliveServesSeveralRequestsThenIdlesOut() {
        Config config = baseConfig();
        config.idleTimeout = 400ms;
        QVERIFY(m_fx->startProxy(config));
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        for (int i = 0; i < 3; ++i) {
            raw.received.clear();
            raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            QVERIFY(raw.waitFor([&] { return raw.received.endsWith("{\"status\":\"ok\"}"); }));
            QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        }
        QVERIFY(raw.waitClosed(3000));
    }

    // A held request's socket gives back its buffers (http::releaseIdleBuffers): the answer
    // still comes on that connection, which then serves more requests, held ones included.
    void heldRequestsKeepTheirConnection() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        for (int i = 0; i < 3; ++i) {
            raw.received.clear();
            const QByteArray question = "held " + QByteArray::number(i);
            const QByteArray echo = "echo: " + question;
            raw.post("/v1/chat/completions", chatBody(question));
            QVERIFY(raw.waitFor([&] { return raw.received.contains(echo); }));
            QVERIFY(raw.received.startsWith("HTTP/1.1 200"));
            QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        }
        raw.received.clear();
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QVERIFY(raw.waitFor([&] { return raw.received.endsWith("{\"status\":\"ok\"}"); }));
        QCOMPARE(m_fx->fake()->batches().size(), 3);
    }

    void tooManyHeadersAreRefused() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        QByteArray request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Authorization: Bearer sk-test\r\n";
        for (int i = 0; i < 120; ++i)
            request += "X-Filler-" + QByteArray::number(i) + ": y\r\n";
        const QByteArray body = chatBody("x");
        request += "Content-Length: " + QByteArray::number(body.size()) + "\r\n\r\n" + body;
        raw.socket.write(request);
        QVERIFY(raw.waitFor([&] { return raw.received.contains("\r\n\r\n"); }));
        QVERIFY2(raw.received.startsWith("HTTP/1.1 431"), raw.received.constData());
        QCOMPARE(m_fx->fake()->batches().size(), 0);
    }

    void unknownMethodIsRefused() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        raw.socket.write(
            "PROPFIND /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\n\r\n");
        QVERIFY(raw.waitFor([&] {
            return raw.received.contains("\r\n\r\n") ||
                   raw.socket.state() != QAbstractSocket::ConnectedState;
        }));
        QVERIFY2(raw.received.isEmpty() || raw.received.startsWith("HTTP/1.1 501") ||
                     raw.received.startsWith("HTTP/1.1 400"),
                 raw.received.constData());
        QCOMPARE(m_fx->fake()->count("PROPFIND", "/"), 0);
    }

    void clientHangingUpBeforeSubmissionIsNeverSent() {
        Config config = baseConfig();
        config.batchWindow = 800ms;
        QVERIFY(m_fx->startProxy(config));
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        const QByteArray body = chatBody("leaving");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test\r\nContent-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        raw.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 0);
        QNetworkReply *stayer = send("POST", "/v1/chat/completions", chatBody("staying"));
        QVERIFY(finished(stayer));
        QCOMPARE(status(stayer), 200);
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 1);
    }

    void clientHangingUpAfterSubmissionDoesNoHarm() {
        m_fx->fake()->setProcessingDelay(400ms);
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        const QByteArray body = chatBody("leaving later");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test-key-aaaa\r\nContent-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QNetworkReply *stayer = send("POST", "/v1/chat/completions", chatBody("staying"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        raw.socket.abort();
        QVERIFY(finished(stayer));
        QCOMPARE(status(stayer), 200);
        QCOMPARE(chatContent(stayer->readAll()), QStringLiteral("echo: staying"));
        QTRY_COMPARE(m_fx->proxy()->core()->inFlight(), 0);
    }

    void statsAndHealth() {
        QNetworkReply *chat = send("POST", "/v1/chat/completions", chatBody("x"));
        QVERIFY(finished(chat));
        QNetworkReply *models = send("GET", "/v1/models", {});
        QVERIFY(finished(models));
        QNetworkReply *stats = send("GET", "/stats", {}, {});
        QVERIFY(finished(stats));
        QCOMPARE(status(stats), 200);
        const QByteArray text = stats->readAll();
        const QJsonObject json = jsonOf(text);
        const char *requestKeys[] = {
            "total",       "successful",  "failed",      "synthesized_error_responses",
            "avg_time_ms", "p50_time_ms", "p95_time_ms", "p99_time_ms"};
        QCOMPARE(json[u"requests"].toObject().keys().size(), qsizetype(std::size(requestKeys)));
        for (const char *key : requestKeys)
            QVERIFY2(json[u"requests"].toObject().contains(QLatin1StringView(key)), key);
        QCOMPARE(json[u"requests"][u"total"].toInt(), 1);
        QCOMPARE(json[u"batches"][u"total"].toInt(), 1);
        QVERIFY(json[u"requests"][u"p50_time_ms"].toDouble() > 0);
        QCOMPARE(json[u"relayed"].toInt(), 1);
        QCOMPARE(json[u"queued"].toInt(), 0);
        QCOMPARE(json[u"in_flight"].toInt(), 0);
        QVERIFY(!text.contains("sk-test"));
    }

    void listensOnBothLoopbacks() {
        Config config = baseConfig();
        config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0},
                         ListenAddress{QHostAddress(QHostAddress::LocalHostIPv6), 0}};
        QVERIFY(m_fx->startProxy(config));
        QTcpSocket v6;
        v6.connectToHost(QHostAddress::LocalHostIPv6, m_fx->port());
        if (!QTest::qWaitFor([&] { return v6.state() == QAbstractSocket::ConnectedState; }, 3000))
            QSKIP("no IPv6 loopback on this machine");
        v6.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QByteArray got;
        QVERIFY(QTest::qWaitFor(
            [&] {
                got += v6.readAll();
                return got.contains("ok");
            },
            5000));
    }

    void pauseHoldsRequestsUntilResumed() {
        m_fx->proxy()->setPaused(true);
        QNetworkReply *a = send("POST", "/v1/chat/completions", chatBody("held a"));
        QNetworkReply *b = send("POST", "/v1/chat/completions", chatBody("held b"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 2);
        QTest::qWait(600); // two windows: nothing may leave while paused
        QCOMPARE(m_fx->fake()->batches().size(), 0);
        QVERIFY(m_fx->proxy()->snapshot().paused);
        QCOMPARE(m_fx->proxy()->snapshot().stats.queued, quint64(2));
        m_fx->proxy()->setPaused(false);
        QVERIFY(finished(a));
        QVERIFY(finished(b));
        QCOMPARE(status(a), 200);
        QCOMPARE(m_fx->fake()->batches().size(), 1);
    }

    void pausedRequestWhoseClientLeavesIsNeverSent() {
        Config config = baseConfig();
        config.batchSize = 1; // closes a batch at once, which pausing must hold back
        QVERIFY(m_fx->startProxy(config));
        m_fx->proxy()->setPaused(true);
        RawClient raw;
        QVERIFY(raw.connectTo(m_fx->port()));
        const QByteArray body = chatBody("bye");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test\r\nContent-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        raw.socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 0);
        m_fx->proxy()->setPaused(false);
        QTest::qWait(200);
        QCOMPARE(m_fx->fake()->inputLinesTotal(), 0);
    }

    void flushNowSendsAtOnce() {
        Config config = baseConfig();
        config.batchWindow = 60s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("now please"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        m_fx->proxy()->flushNow();
        QVERIFY(finished(reply, 5000));
        QCOMPARE(status(reply), 200);
    }

    void snapshotDescribesBatches() {
        m_fx->fake()->setProcessingDelay(500ms);
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("watch me"));
        QTRY_VERIFY(!m_fx->proxy()->snapshot().batches.isEmpty());
        // The normalised word, whatever the provider calls it (OpenAI in_progress, Together
        // IN_PROGRESS).
        QTRY_COMPARE(m_fx->proxy()->snapshot().batches.first().status, QByteArray("running"));
        const BatchProgress active = m_fx->proxy()->snapshot().batches.first();
        QVERIFY(active.active);
        QCOMPARE(active.total, 1);
        QCOMPARE(active.model, QByteArray("gpt-4o-mini"));
        QCOMPARE(active.endpoint, QByteArray("/v1/chat/completions"));
        QCOMPARE(active.keyHint, QByteArray("…aaaa"));
        QVERIFY(active.batchId.startsWith("batch_"));
        QSignalSpy finishedSpy(m_fx->proxy(), &ProxyService::batchFinished);
        QVERIFY(finished(reply));
        QTRY_COMPARE(finishedSpy.size(), 1);
        const ProxySnapshot after = m_fx->proxy()->snapshot();
        QCOMPARE(after.batches.size(), 1);
        QVERIFY(!after.batches.first().active);
        QCOMPARE(after.batches.first().status, QByteArray("completed"));
        QCOMPARE(after.batches.first().completed, 1);
        QVERIFY(after.batches.first().endedAt.isValid());
        QCOMPARE(after.batchesSubmitted, quint64(1));
        QCOMPARE(after.batchesEnded, quint64(1));
        QCOMPARE(after.listenUrls,
                 QStringList{QStringLiteral("http://127.0.0.1:%1/v1").arg(m_fx->port())});
        QCOMPARE(finishedSpy.first().first().value<BatchProgress>().batchId, active.batchId);
    }

    void applyConfigChangesLimitsAndRebinds() {
        Config config = baseConfig();
        config.batchSize = 2;
        config.batchWindow = 60s;
        m_fx->proxy()->applyConfig(config); // size 2 now closes a batch without waiting
        QNetworkReply *a = send("POST", "/v1/chat/completions", chatBody("1"));
        QNetworkReply *b = send("POST", "/v1/chat/completions", chatBody("2"));
        QVERIFY(finished(a, 5000));
        QVERIFY(finished(b, 5000));
        QCOMPARE(status(a), 200);

        // Another port: the new one serves, the old one is closed.
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost, 0));
        const quint16 freePort = probe.serverPort();
        probe.close();
        const quint16 oldPort = m_fx->port();
        config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), freePort}};
        m_fx->proxy()->applyConfig(config);
        m_fx->client()->setPort(freePort);
        QNetworkReply *health = send("GET", "/healthz", {});
        QVERIFY(finished(health));
        QCOMPARE(status(health), 200);
        QTcpSocket old;
        old.connectToHost(QHostAddress::LocalHost, oldPort);
        QVERIFY(QTest::qWaitFor([&] { return old.state() == QAbstractSocket::UnconnectedState; },
                                3000));

        // A port that is taken: refused, and the proxy keeps its current address.
        QTcpServer squatter;
        QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
        QSignalSpy failed(m_fx->proxy(), &ProxyService::listenFailed);
        config.listen = {
            ListenAddress{QHostAddress(QHostAddress::LocalHost), squatter.serverPort()}};
        m_fx->proxy()->applyConfig(config);
        QCOMPARE(failed.size(), 1);
        QVERIFY(!m_fx->proxy()->snapshot().listenError.isEmpty());
        QNetworkReply *still = send("GET", "/healthz", {});
        QVERIFY(finished(still));
        QCOMPARE(status(still), 200);
    }

    // A front end on a thread of its own answers while the core's thread (this one: the
    // service, the core and front end 0 live here) is busy and runs no event loop.
    void otherThreadsServeWhileTheCoreThreadIsBusy() {
        Config config = baseConfig();
        config.ioThreads = 2;
        m_fx->stopProxy();
        QVERIFY(m_fx->startProxy(config));
        const QByteArray answer = statsWhileThisThreadIsBusy(m_fx->port());
        QVERIFY2(answer.startsWith("HTTP/1.1 200"), answer.constData());
        QVERIFY2(answer.contains("\"queued\":"), answer.constData());
    }

    // Settings apply live, to batches already out too: a shorter poll interval is not left
    // waiting behind the long one that was scheduled before the change.
    void newPollIntervalReachesBatchesAlreadyOut() {
        Config config = baseConfig();
        config.pollInterval = 60s;
        m_fx->stopProxy();
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *reply = send("POST", "/v1/chat/completions", chatBody("polled sooner"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1); // created; first poll due in 60 s
        QTest::qWait(100);
        config.pollInterval = 100ms;
        m_fx->proxy()->applyConfig(config);
        QVERIFY(finished(reply, 5000));
        QCOMPARE(status(reply), 200);
        QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: polled sooner"));
    }

    // A new listen address reaches every front end; so does going back to the old one when
    // the new one is taken.
    void everyThreadFollowsANewListenAddress() {
        Config config = baseConfig();
        config.ioThreads = 2;
        m_fx->stopProxy();
        QVERIFY(m_fx->startProxy(config));
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost, 0));
        const quint16 next = probe.serverPort();
        probe.close();
        config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), next}};
        m_fx->proxy()->applyConfig(config);
        QCOMPARE(m_fx->proxy()->frontEnd()->ports(), QList<quint16>{next});
        QByteArray answer = statsWhileThisThreadIsBusy(next);
        QVERIFY2(answer.startsWith("HTTP/1.1 200"), answer.constData());

        QTcpServer squatter;
        QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
        QSignalSpy failed(m_fx->proxy(), &ProxyService::listenFailed);
        config.listen = {
            ListenAddress{QHostAddress(QHostAddress::LocalHost), squatter.serverPort()}};
        m_fx->proxy()->applyConfig(config);
        QCOMPARE(failed.size(), 1);
        answer = statsWhileThisThreadIsBusy(next);
        QVERIFY2(answer.startsWith("HTTP/1.1 200"), answer.constData());
    }

    // Requests arriving on every front end go into one core; each answer finds its way back
    // to the thread and the client that asked.
    void clientsOnEveryThreadGetTheirOwnAnswers() {
        constexpr int Clients = 120;
        Config config = baseConfig();
        config.ioThreads = 3;
        config.batchSize = Clients;
        config.batchWindow = 30s;
        m_fx->stopProxy();
        QVERIFY(m_fx->startProxy(config));
        std::vector<std::unique_ptr<RawClient>> clients;
        for (int i = 0; i < Clients; ++i) {
            clients.push_back(std::make_unique<RawClient>());
            QVERIFY(clients.back()->connectTo(m_fx->port()));
            clients.back()->post("/v1/chat/completions",
                                 chatBody("client " + QByteArray::number(i)));
        }
        for (int i = 0; i < Clients; ++i) {
            RawClient &raw = *clients.at(std::size_t(i));
            QVERIFY(raw.waitFor([&raw] { return !completeBody(raw.received).isNull(); }, 20'000));
            QVERIFY2(raw.received.startsWith("HTTP/1.1 200"), raw.received.constData());
            QCOMPARE(chatContent(completeBody(raw.received)),
                     QStringLiteral("echo: client %1").arg(i));
        }
        QCOMPARE(m_fx->fake()->batches().size(), 1);
        QCOMPARE(m_fx->fake()->inputLinesTotal(), Clients);
        QTRY_COMPARE(m_fx->proxy()->stats()->snapshot().requestsSuccessful, quint64(Clients));
    }

    void shutdownAnswersWaitingClientsOnEveryThread() {
        constexpr int Clients = 40;
        Config config = baseConfig();
        config.ioThreads = 3;
        config.batchWindow = 30s;
        m_fx->stopProxy();
        QVERIFY(m_fx->startProxy(config));
        std::vector<std::unique_ptr<RawClient>> clients;
        for (int i = 0; i < Clients; ++i) {
            clients.push_back(std::make_unique<RawClient>());
            QVERIFY(clients.back()->connectTo(m_fx->port()));
            clients.back()->post("/v1/chat/completions",
                                 chatBody("waiting " + QByteArray::number(i)));
        }
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), Clients);
        m_fx->proxy()->stop();
        for (const auto &raw : clients) {
            QVERIFY(raw->waitFor([&raw] { return raw->received.contains("\r\n\r\n"); }));
            QVERIFY2(raw->received.startsWith("HTTP/1.1 503"), raw->received.constData());
            QVERIFY(raw->received.contains("x-should-retry: true"));
        }
    }

    void shutdownTellsWaitingClientsToRetry() {
        Config config = baseConfig();
        config.batchWindow = 30s;
        QVERIFY(m_fx->startProxy(config));
        QNetworkReply *waiting = send("POST", "/v1/chat/completions", chatBody("x"));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        m_fx->proxy()->stop();
        QVERIFY(finished(waiting));
        QCOMPARE(status(waiting), 503);
        QCOMPARE(waiting->rawHeader("x-should-retry"), QByteArray("true"));
        QVERIFY(!waiting->rawHeader("retry-after").isEmpty());
    }
};

LLMPROXY_TEST_MAIN(tst_Integration)
#include "tst_integration.moc"
