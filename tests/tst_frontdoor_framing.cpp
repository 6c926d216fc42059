// SPDX-License-Identifier: GPL-3.0-or-later
// The front door's HTTP framing over loopback (issue 9, items 5-7): pipelines framed once and
// answered in order, chunk sizes against --max-body, the smuggling set, deadlines driven by
// an injected clock, and the limits on connections and on reading ahead.

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "http/connectionlimiter.h"
#include "http/httpfrontend.h"
#include "provider/openaiprovider.h"
#include "proxyservice.h"
#include "stats/stats.h"
#include "testclient.h"
#include "testmain.h"

#include <QElapsedTimer>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QSignalSpy>
#include <QTcpSocket>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

// The answers in `received`, each as its status line and body, once complete (the proxy's
// own answers always carry Content-Length).
struct Answer {
    QByteArray statusLine;
    QByteArray head;
    QByteArray body;
};
QList<Answer> answersIn(const QByteArray &received) {
    QList<Answer> out;
    qsizetype at = 0;
    while (true) {
        const qsizetype end = received.indexOf("\r\n\r\n", at);
        if (end < 0)
            break;
        const QByteArray head = received.sliced(at, end - at);
        if (head.startsWith("HTTP/1.1 100")) {
            at = end + 4;
            continue;
        }
        const qsizetype lengthAt = head.toLower().indexOf("content-length:");
        qsizetype length = 0;
        if (lengthAt >= 0) {
            const qsizetype lineEnd = head.indexOf("\r\n", lengthAt);
            length =
                head.sliced(lengthAt + 15, (lineEnd < 0 ? head.size() : lineEnd) - lengthAt - 15)
                    .trimmed()
                    .toLongLong();
        }
        if (received.size() < end + 4 + length)
            break;
        out.append({head.first(head.indexOf("\r\n") < 0 ? head.size() : head.indexOf("\r\n")), head,
                    received.sliced(end + 4, length)});
        at = end + 4 + length;
    }
    return out;
}

QJsonObject errorOf(const QByteArray &body) {
    return QJsonDocument::fromJson(body).object()[u"error"].toObject();
}

// Whether `body` is an error in Anthropic's shape ({"type":"error","error":{"type","message"}})
// of the given type, or in OpenAI's ({"error":{"message","type","param","code"}}) when `type`
// is empty.
bool hasErrorShape(const QByteArray &body, const QByteArray &anthropicType) {
    const QJsonObject top = QJsonDocument::fromJson(body).object();
    const QJsonObject error = top[u"error"].toObject();
    if (error[u"message"].toString().isEmpty())
        return false;
    if (anthropicType.isEmpty()) {
        return !top.contains(u"type") && error.contains(u"code") && error.contains(u"param") &&
               !error[u"type"].toString().isEmpty();
    }
    return top[u"type"].toString() == u"error" &&
           error[u"type"].toString() == QString::fromLatin1(anthropicType) && error.size() == 2;
}

} // namespace

class tst_FrontDoorFraming final : public QObject {
    Q_OBJECT

private:
    // A front end of our own, driven by a manual clock, with a batching core whose provider
    // is never reached within these tests (batched requests stay held).
    std::unique_ptr<QNetworkAccessManager> m_nam;
    std::unique_ptr<OpenAiProvider> m_provider;
    std::unique_ptr<Stats> m_stats;
    std::unique_ptr<BatchCore> m_core;
    std::unique_ptr<HttpFrontEnd> m_front;
    ManualClock m_clock;
    quint16 m_port = 0;

    void startFrontEnd(const FrontEndSettings &settings) {
        m_front.reset();
        m_core.reset();
        m_nam = std::make_unique<QNetworkAccessManager>();
        m_provider = std::make_unique<OpenAiProvider>(
            m_nam.get(), QUrl(QStringLiteral("http://127.0.0.1:9/v1")));
        m_stats = std::make_unique<Stats>();
        CoreSettings core;
        core.limits.window = 1h; // held requests stay held
        m_core =
            std::make_unique<BatchCore>(m_provider.get(), &m_clock, m_stats.get(), nullptr, core);
        m_front = std::make_unique<HttpFrontEnd>(m_core.get(), m_stats.get(), &m_clock, settings);
        QString error;
        QVERIFY2(
            m_front->listenOn({ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}}, &error),
            qPrintable(error));
        m_port = m_front->ports().constFirst();
    }

    static FrontEndSettings smallSettings() {
        FrontEndSettings settings;
        settings.maxBody = 64 * 1024;
        settings.apiKey = "sk-configured";
        settings.sweepInterval = 10ms; // deadlines are checked often; the clock says when
        return settings;
    }

private Q_SLOTS:
    void init() { startFrontEnd(smallSettings()); }
    void cleanup() {
        m_front.reset();
        m_core.reset();
        m_provider.reset();
        m_nam.reset();
    }

    // 10,000 requests in one write on one connection: every one answered, in order (paths that
    // are not served are named in their 404s), and the gate framed each byte exactly once.
    void tenThousandPipelinedRequestsAreFramedOnceAndAnsweredInOrder() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        constexpr int Requests = 10'000;
        QByteArray pipeline;
        for (int i = 0; i < Requests; ++i) {
            pipeline += i % 2 == 0 ? QByteArray("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                                   : "GET /nope/" + QByteArray::number(i) +
                                         " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        }
        raw.socket.write(pipeline);
        QVERIFY(raw.waitFor([&] { return answersIn(raw.received).size() == Requests; }, 60'000));
        const QList<Answer> answers = answersIn(raw.received);
        for (int i = 0; i < Requests; ++i) {
            if (i % 2 == 0) {
                QCOMPARE(answers.at(i).statusLine, QByteArray("HTTP/1.1 200 OK"));
            } else {
                QVERIFY2(
                    answers.at(i).body.contains(QByteArray("/nope/" + QByteArray::number(i) + ':')),
                    answers.at(i).body.constData());
            }
        }
        QCOMPARE(m_front->framedBytes(), quint64(pipeline.size()));
        QCOMPARE(m_front->framedRequests(), quint64(Requests));
        QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
    }

    // A held request is answered before the one pipelined behind it, which waits unparsed.
    void answersKeepTheOrderOfTheirRequests() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        const QByteArray body = chatBody("first");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Type: application/json\r\nContent-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n" + body +
                         "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QTRY_COMPARE(m_front->waiting(), 1);
        QTRY_COMPARE(m_front->pipelined(), 1);
        QTest::qWait(100);
        QVERIFY2(raw.received.isEmpty() && raw.socket.readAll().isEmpty(),
                 "the second request was answered before the first");
        // Shutdown answers the held one; the one behind it is never handled.
        m_front->closeAll(errorAnswer(503, QStringLiteral("bye"), ErrorType::Server));
        QVERIFY(raw.waitClosed());
        const QList<Answer> answers = answersIn(raw.received);
        QCOMPARE(answers.size(), 1);
        QVERIFY(answers.at(0).statusLine.startsWith("HTTP/1.1 503"));
    }

    // A chunked body, split into chunks across several writes, reaches Qt decoded and whole:
    // the request is valid JSON, so it is held (a bad body would be a 400).
    void chunkedBodyIsHandedOnWhole() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        const QByteArray body = chatBody("chunked");
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n");
        QByteArray chunks;
        for (qsizetype at = 0; at < body.size(); at += 7) {
            const QByteArray piece = body.mid(at, 7);
            chunks += QByteArray::number(piece.size(), 16) + ";ext=1\r\n" + piece + "\r\n";
        }
        chunks += "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        for (qsizetype at = 0; at < chunks.size(); at += 13) {
            raw.socket.write(chunks.mid(at, 13));
            raw.socket.flush();
            QTest::qWait(1);
        }
        QTRY_COMPARE(m_front->waiting(), 1);
        QTRY_COMPARE(m_front->pipelined(), 1);
        QVERIFY(raw.socket.readAll().isEmpty());
    }

    // Pipelined requests behind a held one wait unread past --max-pipelined: the proxy stops
    // reading from the connection instead of buffering without bound.
    void readingAheadStopsAtTheLimit() {
        FrontEndSettings settings = smallSettings();
        settings.limits.maxPipelined = 8;
        startFrontEnd(settings);
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.post("/v1/chat/completions", chatBody("held"));
        QTRY_COMPARE(m_front->waiting(), 1);
        QByteArray pipeline;
        for (int i = 0; i < 2000; ++i)
            pipeline += "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        raw.socket.write(pipeline);
        QTRY_COMPARE(m_front->pipelined(), 8);
        QTest::qWait(200);
        QCOMPARE(m_front->pipelined(), 8);
        QCOMPARE(m_front->framedRequests(), quint64(1 + 8));
    }

    // A client that pipelines without reading its answers: once --max-output-buffer bytes of
    // answers wait for it, no further request is handled and reading stops, so neither the
    // answers nor the requests pile up in the proxy.
    void aClientThatDoesNotReadHoldsItsOwnRequestsUp() {
        FrontEndSettings settings = smallSettings();
        settings.limits.maxPipelined = 8;
        settings.limits.maxOutputBuffer = 64 * 1024;
        startFrontEnd(settings);
        RawClient raw;
        raw.socket.setReadBufferSize(1024); // and never read: the kernel's buffers fill up
        QVERIFY(raw.connectTo(m_port));
        // A small, fixed receive buffer (no autotuning up to tcp_rmem's 32 MiB): the answers
        // soon fill it, and the proxy's send buffer (up to 4 MiB).
        raw.socket.setSocketOption(QAbstractSocket::ReceiveBufferSizeSocketOption, 4096);
        constexpr int Requests = 100'000;
        QByteArray pipeline;
        for (int i = 0; i < Requests; ++i)
            pipeline += "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        raw.socket.write(pipeline);
        // Answers stop once the kernel's buffers and ours are full.
        QElapsedTimer waited;
        waited.start();
        quint64 framed = 0;
        quint64 before = 0;
        do {
            before = framed;
            QTest::qWait(300);
            framed = m_front->framedRequests();
        } while ((framed != before || framed == 0) && waited.elapsed() < 60'000);
        QCOMPARE(framed, before);
        QVERIFY(framed > 0);
        // What waits for the client in the proxy stays near the limit (one answer past it),
        // and no more requests are read ahead than allowed.
        QVERIFY2(m_front->unsentBytes() < 64 * 1024 + 1024,
                 QByteArray::number(m_front->unsentBytes()).constData());
        QVERIFY(m_front->pipelined() <= 8);
    }

    // Item 5: a chunk size that would overflow the body counter is a 413 at once.
    void chunkSizeOverflowIsRefused_data() {
        QTest::addColumn<QByteArray>("chunks");
        QTest::newRow("7fffffffffffffff second")
            << QByteArray("5\r\nhello\r\n7fffffffffffffff\r\n");
        QTest::newRow("ffffffffffffffff first") << QByteArray("ffffffffffffffff\r\n");
        QTest::newRow("2^64") << QByteArray("10000000000000000\r\n");
        QTest::newRow("just over --max-body") << QByteArray("10001\r\n");
    }
    void chunkSizeOverflowIsRefused() {
        QFETCH(QByteArray, chunks);
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n" +
                         chunks);
        raw.socket.write(QByteArray(256 * 1024, 'x')); // whatever follows is never kept
        QVERIFY(raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }));
        const Answer answer = answersIn(raw.received).constFirst();
        QVERIFY2(answer.statusLine.startsWith("HTTP/1.1 413"), raw.received.constData());
        QCOMPARE(errorOf(answer.body)[u"code"].toString(), QStringLiteral("request_too_large"));
        m_clock.advance(1s); // the client went quiet: the refused connection closes
        QVERIFY(raw.waitClosed());
        QCOMPARE(m_front->waiting(), 0);
    }

    // The usual smuggling set, over a real connection: refused, nothing handled, closed.
    void smugglingIsRefused_data() {
        QTest::addColumn<QByteArray>("request");
        QTest::addColumn<int>("status");
        const QByteArray post = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        QTest::newRow("Content-Length with Transfer-Encoding")
            << QByteArray(post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
            << 400;
        QTest::newRow("two Content-Lengths")
            << QByteArray(post + "Content-Length: 0\r\nContent-Length: 30\r\n\r\n"
                                 "GET /healthz HTTP/1.1\r\n\r\n")
            << 400;
        QTest::newRow("bare LF") << QByteArray("GET /healthz HTTP/1.1\nHost: x\n\n") << 400;
        QTest::newRow("obs-fold")
            << QByteArray(post + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 0\r\n\r\n")
            << 400;
        QTest::newRow("chunked, then another coding")
            << QByteArray(post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n") << 501;
        QTest::newRow("huge chunk extensions")
            << QByteArray(post + "Transfer-Encoding: chunked\r\n\r\n1;" + QByteArray(1 << 20, 'e') +
                          "\r\nx\r\n0\r\n\r\n")
            << 431;
        QTest::newRow("1 MB request line") << QByteArray("GET /" + QByteArray(1 << 20, 'a') +
                                                         " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                                           << 431;
        QTest::newRow("WebSocket upgrade")
            << QByteArray("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
            << 501;
        QTest::newRow("20 KB request line") << QByteArray("GET /" + QByteArray(20'000, 'a') +
                                                          " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                                            << 414;
    }
    void smugglingIsRefused() {
        QFETCH(QByteArray, request);
        QFETCH(int, status);
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write(request);
        QVERIFY(raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }));
        m_clock.advance(1s); // the client went quiet: the refused connection closes
        QVERIFY(raw.waitClosed());
        const QList<Answer> answers = answersIn(raw.received);
        QCOMPARE(answers.size(), 1); // nothing smuggled behind it was answered
        QVERIFY2(answers.at(0).statusLine.startsWith(
                     QByteArray("HTTP/1.1 " + QByteArray::number(status))),
                 answers.at(0).head.constData());
        QVERIFY(!errorOf(answers.at(0).body)[u"message"].toString().isEmpty());
        QCOMPARE(m_front->waiting(), 0);
    }

    // Refusals made before the request's route is known (the gate's, here) are in the shape of
    // the API its path belongs to: Anthropic's on Anthropic's paths, OpenAI's elsewhere.
    void earlyRefusalsTakeTheShapeOfTheRequestsApi_data() {
        QTest::addColumn<QByteArray>("request");
        QTest::addColumn<int>("status");
        QTest::addColumn<QByteArray>("anthropicType"); // empty: OpenAI's shape
        const struct {
            const char *name;
            QByteArray target;
            bool anthropic;
        } targets[] = {{"anthropic", "/v1/messages?beta=true", true},
                       {"openai", "/v1/chat/completions?x=1", false}};
        const QByteArray host = " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        for (const auto &t : targets) {
            const QByteArray post = "POST " + t.target + host;
            const auto row = [&](const char *kind, const QByteArray &request, int status,
                                 const char *type) {
                QTest::addRow("%s: %s", kind, t.name)
                    << request << status << QByteArray(t.anthropic ? type : "");
            };
            row("body over --max-body", post + "Content-Length: 70000\r\n\r\n", 413,
                "request_too_large");
            row("chunk over --max-body", post + "Transfer-Encoding: chunked\r\n\r\n10001\r\n", 413,
                "request_too_large");
            QByteArray fields;
            for (int i = 0; i < 97; ++i)
                fields += "X-Field-" + QByteArray::number(i) + ": 1\r\n";
            row("too many fields", post + fields + "\r\n", 431, "invalid_request_error");
            row("unfinished block too large", post + "X-Big: " + QByteArray(200'000, 'a'), 431,
                "invalid_request_error");
            row("bare LF", "POST " + t.target + " HTTP/1.1\nHost: x\n\n", 400,
                "invalid_request_error");
            row("both framings",
                post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
                "invalid_request_error");
            row("malformed chunk", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                "invalid_request_error");
            row("other coding", post + "Transfer-Encoding: gzip\r\n\r\n", 501,
                "invalid_request_error");
            row("request line too long",
                "POST " + t.target + "&pad=" + QByteArray(20'000, 'a') + host + "\r\n", 414,
                "invalid_request_error");
            row("malformed request line", "POST " + t.target + " HTTP/9\r\nHost: 127.0.0.1\r\n\r\n",
                400, "invalid_request_error");
        }
        // The path decides as the router reads it, whatever its spelling.
        const auto tooLarge = [&](const char *name, const QByteArray &target, bool anthropic) {
            QTest::addRow("413 at %s", name)
                << QByteArray("POST " + target + host + "Content-Length: 70000\r\n\r\n") << 413
                << QByteArray(anthropic ? "request_too_large" : "");
        };
        tooLarge("count_tokens", "/v1/messages/count_tokens", true);
        tooLarge("encoded letter", "/v1/%6Dessages", true);
        tooLarge("absolute form", "http://127.0.0.1/v1/messages", true);
        tooLarge("dots into messages", "/v1/models/../messages", true);
        tooLarge("dots out of messages", "/v1/messages/../models", false);
        tooLarge("longer name", "/v1/messagesx", false);
        tooLarge("messages in the query", "/v1/embeddings?x=/v1/messages", false);
    }
    void earlyRefusalsTakeTheShapeOfTheRequestsApi() {
        QFETCH(QByteArray, request);
        QFETCH(int, status);
        QFETCH(QByteArray, anthropicType);
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write(request);
        QVERIFY(raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }));
        const Answer answer = answersIn(raw.received).constFirst();
        QVERIFY2(answer.statusLine.startsWith(QByteArray("HTTP/1.1 " + QByteArray::number(status))),
                 answer.statusLine.constData());
        QVERIFY2(hasErrorShape(answer.body, anthropicType), answer.body.constData());
        QCOMPARE(m_front->waiting(), 0);
    }

    // The deadlines' 408s too: a timeout_error on Anthropic's paths.
    void deadlinesOnAnthropicPathsAreTimeoutErrors_data() {
        QTest::addColumn<QByteArray>("start");
        QTest::addColumn<QByteArray>("anthropicType");
        QTest::newRow("headers, anthropic")
            << QByteArray("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            << QByteArray("timeout_error");
        QTest::newRow("request line, anthropic")
            << QByteArray("POST /v1/messages/count_tokens?a=") << QByteArray("timeout_error");
        QTest::newRow("body, anthropic")
            << QByteArray("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Length: 50000\r\n\r\n{")
            << QByteArray("timeout_error");
        QTest::newRow("headers, openai")
            << QByteArray("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            << QByteArray();
        QTest::newRow("body, openai")
            << QByteArray("POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Length: 50000\r\n\r\n{")
            << QByteArray();
    }
    void deadlinesOnAnthropicPathsAreTimeoutErrors() {
        QFETCH(QByteArray, start);
        QFETCH(QByteArray, anthropicType);
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write(start);
        QTRY_VERIFY(m_front->framedBytes() > 0);
        m_clock.advance(45s); // past every deadline
        QVERIFY(raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }));
        const Answer answer = answersIn(raw.received).constFirst();
        QVERIFY2(answer.statusLine.startsWith("HTTP/1.1 408"), answer.statusLine.constData());
        QVERIFY2(hasErrorShape(answer.body, anthropicType), answer.body.constData());
    }

    // The proxy token's 401 (checked before the route): authentication_error on /v1/messages.
    void aMissingProxyTokenOnAnthropicPathsIsAnAuthenticationError() {
        FrontEndSettings settings = smallSettings();
        settings.tokens = {{"alice", "0123456789abcdef0123"}};
        startFrontEnd(settings);
        const auto refusal = [&](const QByteArray &path, const QByteArray &key) {
            RawClient raw;
            if (!raw.connectTo(m_port))
                return Answer{};
            raw.socket.write("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + key +
                             "\r\nContent-Length: 2\r\n\r\n{}");
            if (!raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }))
                return Answer{};
            return answersIn(raw.received).constFirst();
        };
        const Answer anthropic = refusal("/v1/messages?beta=true", "sk-ant-not-a-token");
        QVERIFY2(anthropic.statusLine.startsWith("HTTP/1.1 401"), anthropic.statusLine.constData());
        QVERIFY2(hasErrorShape(anthropic.body, "authentication_error"), anthropic.body.constData());
        const Answer openAi = refusal("/v1/chat/completions", "sk-not-a-token");
        QVERIFY2(openAi.statusLine.startsWith("HTTP/1.1 401"), openAi.statusLine.constData());
        QVERIFY2(hasErrorShape(openAi.body, {}), openAi.body.constData());
    }

    // Item 7: a header block trickled in is cut off at the deadline (20 s, extended by 1 s per
    // 500 bytes up to 40 s), measured by the injected clock.
    void trickledHeadersAreCutOff() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        QTRY_VERIFY(m_front->framedBytes() > 0);
        m_clock.advance(19s);
        QTest::qWait(100);
        QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        raw.socket.write("X-Slow: 1\r\n");
        m_clock.advance(2s); // 21 s; 45 bytes earn nothing
        QVERIFY(raw.waitFor([&] { return !answersIn(raw.received).isEmpty(); }));
        m_clock.advance(1s);
        QVERIFY(raw.waitClosed());
        const QList<Answer> answers = answersIn(raw.received);
        QCOMPARE(answers.size(), 1);
        QVERIFY(answers.at(0).statusLine.startsWith("HTTP/1.1 408"));
        QCOMPARE(errorOf(answers.at(0).body)[u"code"].toString(),
                 QStringLiteral("request_timeout"));
    }

    void headersArrivingAtTheMinimumRateGetMoreTime() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        // 5,000 bytes of headers earn 10 s more: 30 s in all.
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " +
                         QByteArray(5000, 'p'));
        QTRY_VERIFY(m_front->framedBytes() >= 5000);
        m_clock.advance(29s);
        QTest::qWait(100);
        QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        m_clock.advance(2s);
        QVERIFY(raw.waitClosed());
        QVERIFY(raw.received.startsWith("HTTP/1.1 408"));
    }

    void headerTimeExtendsNoFurtherThanTheMaximum() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " +
                         QByteArray(60'000, 'p'));
        QTRY_VERIFY(m_front->framedBytes() >= 60'000);
        m_clock.advance(39s);
        QTest::qWait(100);
        QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        m_clock.advance(2s); // 120 s earned, 40 s allowed
        QVERIFY(raw.waitClosed());
        QVERIFY(raw.received.startsWith("HTTP/1.1 408"));
    }

    void slowBodyIsCutOff() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        raw.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Length: 50000\r\n\r\n" +
                         QByteArray(1000, ' '));
        QTRY_VERIFY(m_front->framedBytes() >= 1000);
        m_clock.advance(21s); // 20 s, plus 2 s for the 1,000 bytes
        QTest::qWait(100);
        QCOMPARE(raw.socket.state(), QAbstractSocket::ConnectedState);
        m_clock.advance(2s);
        QVERIFY(raw.waitClosed());
        QVERIFY(raw.received.startsWith("HTTP/1.1 408"));
    }

    void aConnectionThatSendsNothingIsClosed() {
        RawClient raw;
        QVERIFY(raw.connectTo(m_port));
        QTRY_COMPARE(m_front->connections(), 1);
        m_clock.advance(21s);
        QVERIFY(raw.waitClosed());
        QVERIFY(raw.received.isEmpty());
    }

    // Over --max-connections: 503 with Retry-After, OpenAI-shaped, then close; a place frees
    // up when a connection closes.
    void connectionsOverTheLimitGet503() {
        FrontEndSettings settings = smallSettings();
        settings.limits.maxConnections = 2;
        startFrontEnd(settings);
        auto first = std::make_unique<RawClient>();
        RawClient second;
        QVERIFY(first->connectTo(m_port));
        QVERIFY(second.connectTo(m_port));
        QTRY_COMPARE(m_front->connections(), 2);
        RawClient third;
        QVERIFY(third.connectTo(m_port));
        QVERIFY(third.waitClosed());
        const QList<Answer> answers = answersIn(third.received);
        QCOMPARE(answers.size(), 1);
        QVERIFY2(answers.at(0).statusLine.startsWith("HTTP/1.1 503"), third.received.constData());
        QVERIFY(answers.at(0).head.toLower().contains("retry-after: 5"));
        QCOMPARE(errorOf(answers.at(0).body)[u"code"].toString(),
                 QStringLiteral("too_many_connections"));
        // A client that speaks first is answered in the shape of its request's API.
        RawClient anthropic;
        QVERIFY(anthropic.connectTo(m_port));
        anthropic.socket.write("POST /v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        QVERIFY(anthropic.waitClosed());
        const QList<Answer> overloaded = answersIn(anthropic.received);
        QCOMPARE(overloaded.size(), 1);
        QVERIFY(overloaded.at(0).statusLine.startsWith("HTTP/1.1 503"));
        QVERIFY(overloaded.at(0).head.toLower().contains("retry-after: 5"));
        QVERIFY2(hasErrorShape(overloaded.at(0).body, "overloaded_error"),
                 overloaded.at(0).body.constData());
        RawClient openAi;
        QVERIFY(openAi.connectTo(m_port));
        openAi.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QVERIFY(openAi.waitClosed());
        QCOMPARE(answersIn(openAi.received).size(), 1);
        QVERIFY(hasErrorShape(answersIn(openAi.received).at(0).body, {}));
        first.reset();
        QTRY_COMPARE(m_front->connections(), 1);
        RawClient fourth;
        QVERIFY(fourth.connectTo(m_port));
        fourth.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QVERIFY(fourth.waitFor([&] { return raw200(fourth.received); }));
    }

    // Per source address (loopback, shared by every local client, counts in the total only).
    void limiterCountsPerAddress() {
        http::ConnectionLimiter limiter(5, 2);
        const QHostAddress a(QStringLiteral("192.0.2.1"));
        const QHostAddress aMapped(QStringLiteral("::ffff:192.0.2.1"));
        const QHostAddress b(QStringLiteral("2001:db8::1"));
        const QHostAddress local(QHostAddress::LocalHost);
        using V = http::ConnectionLimiter::Verdict;
        QCOMPARE(limiter.acquire(a), V::Accepted);
        QCOMPARE(limiter.acquire(aMapped), V::Accepted); // the same address
        QCOMPARE(limiter.acquire(a), V::TooManyFromAddress);
        QCOMPARE(limiter.acquire(b), V::Accepted);
        QCOMPARE(limiter.acquire(local), V::Accepted);
        QCOMPARE(limiter.acquire(local), V::Accepted);
        QCOMPARE(limiter.acquire(local), V::TooManyInAll);
        QCOMPARE(limiter.open(), 5);
        limiter.release(aMapped);
        QCOMPARE(limiter.acquire(a), V::Accepted);
        limiter.setLimits(0, 0);
        QVERIFY(limiter.maxTotal() >= 16);
        QCOMPARE(limiter.acquire(a), V::Accepted); // no limit per address
    }

    // With the whole proxy and the fake provider: a hang-up cancels every request of the
    // connection, including those pipelined behind the first.
    void hangUpCancelsEveryPipelinedRequest() {
        FakeProvider fake;
        QVERIFY(fake.listen());
        Config config;
        config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}};
        config.upstream = fake.baseUrl();
        config.batchWindow = 300ms;
        config.pollInterval = 40ms;
        config.ioThreads = 1;
        ProxyService proxy(config);
        QSignalSpy started(&proxy, &ProxyService::started);
        proxy.start();
        QCOMPARE(started.size(), 1);
        const quint16 port = started.first().first().value<QList<quint16>>().first();
        {
            RawClient raw;
            QVERIFY(raw.connectTo(port));
            for (int i = 0; i < 3; ++i)
                raw.post("/v1/chat/completions", chatBody("pipelined " + QByteArray::number(i)));
            QVERIFY(raw.socket.waitForBytesWritten(2000));
            QTest::qWait(50);
            raw.socket.abort();
        }
        QTest::qWait(900); // three batch windows
        QCOMPARE(fake.batches().size(), 0);
    }

private:
    static bool raw200(const QByteArray &received) {
        return received.startsWith("HTTP/1.1 200") && received.endsWith("{\"status\":\"ok\"}");
    }
};

LLMPROXY_TEST_MAIN(tst_FrontDoorFraming)

#include "tst_frontdoor_framing.moc"
