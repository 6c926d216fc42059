// SPDX-License-Identifier: GPL-3.0-or-later
// Streaming clients get the batch price (issue 11): the proxy over loopback against the fake
// provider, read byte by byte from raw sockets so that what arrives when is visible: the
// headers at once, keep-alive comments while the batch runs, then the replay of the result (or
// the error event), on a connection that serves the next request.

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyfixture.h"
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
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

// What a raw client has received of one streamed answer: the head, and the body so far with
// the chunked framing taken off.
struct StreamReply {
    QByteArray head; // status line and header lines, lower-cased
    QByteArray body;
    bool headersDone = false;
    bool ended = false; // the last chunk came (chunked bodies only)
    qsizetype used = 0; // bytes of the raw input this answer took
};

StreamReply decode(const QByteArray &raw) {
    StreamReply r;
    const qsizetype end = raw.indexOf("\r\n\r\n");
    if (end < 0)
        return r;
    r.headersDone = true;
    r.head = raw.left(end).toLower();
    qsizetype pos = end + 4;
    if (!r.head.contains("transfer-encoding: chunked")) {
        r.body = raw.mid(pos);
        r.used = raw.size();
        return r;
    }
    for (;;) {
        const qsizetype lineEnd = raw.indexOf("\r\n", pos);
        if (lineEnd < 0)
            break;
        bool ok = false;
        const qsizetype size = raw.mid(pos, lineEnd - pos).toLongLong(&ok, 16);
        if (!ok)
            break;
        if (size == 0) {
            r.ended = raw.size() >= lineEnd + 4;
            r.used = lineEnd + 4;
            break;
        }
        if (raw.size() < lineEnd + 2 + size + 2)
            break;
        r.body += raw.mid(lineEnd + 2, size);
        pos = lineEnd + 2 + size + 2;
    }
    return r;
}

struct Event {
    QByteArray name; // "event:" line
    QByteArray data; // "data:" lines
    QList<QByteArray> comments;
};

QList<Event> events(const QByteArray &body) {
    QList<Event> out;
    const QList<QByteArray> blocks = body.split('\n');
    Event current;
    bool any = false;
    for (const QByteArray &line : blocks) {
        if (line.isEmpty()) {
            if (any)
                out.append(current);
            current = Event();
            any = false;
            continue;
        }
        any = true;
        if (line.startsWith(':'))
            current.comments.append(line.mid(1).trimmed());
        else if (line.startsWith("event:"))
            current.name = line.mid(6).trimmed();
        else if (line.startsWith("data:"))
            current.data += line.mid(5).trimmed();
    }
    return out;
}

int commentCount(const QByteArray &body, const QByteArray &comment) {
    int n = 0;
    for (const Event &event : events(body))
        n += int(event.comments.count(comment));
    return n;
}

// The text of every chat delta, in order (choice 0).
QString joinedChatText(const QByteArray &body) {
    QString text;
    for (const Event &event : events(body)) {
        if (event.data.isEmpty() || event.data == "[DONE]")
            continue;
        const QJsonArray choices =
            QJsonDocument::fromJson(event.data).object()[u"choices"].toArray();
        for (const QJsonValue &choice : choices)
            text += choice.toObject()[u"delta"].toObject()[u"content"].toString();
    }
    return text;
}

QByteArray streamBody(const QByteArray &content, const QByteArray &extra = {}) {
    return R"({"model":"gpt-4o-mini", "stream": true,)" + extra +
           R"( "messages":[{"role":"user","content":")" + content + R"("}]})";
}

} // namespace

class tst_Streaming final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ProxyFixture> m_fx;
    QList<QByteArray> m_inputFiles; // each batch's input file, read when it was created

    Config baseConfig() const {
        Config config = m_fx->baseConfig();
        config.batchWindow = 100ms;
        config.streamKeepAlive = 1s;
        return config;
    }

    // Opens a connection and posts a streaming request on it.
    std::unique_ptr<RawClient> postStream(const QByteArray &body,
                                          const QByteArray &path = "/v1/chat/completions") {
        auto client = std::make_unique<RawClient>();
        if (!client->connectTo(m_fx->client()->port()))
            return nullptr;
        client->post(path, body);
        return client;
    }

    static bool waitEnded(RawClient &client, int ms = 10'000) {
        return client.waitFor([&] { return decode(client.received).ended; }, ms);
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>();
        QVERIFY(m_fx->listening());
        m_inputFiles.clear();
        connect(m_fx->fake(), &FakeProvider::batchCreated, this, [this](const QByteArray &id) {
            for (const auto &batch : m_fx->fake()->batches()) {
                if (batch.id == id)
                    m_inputFiles.append(m_fx->fake()->fileContent(batch.inputFileId));
            }
        });
        QVERIFY(m_fx->startProxy(baseConfig()));
    }

    void cleanup() { m_fx.reset(); }

    // The headers come when the request is accepted, long before the batch ends; the replay's
    // text is the non-streamed answer's; the connection then serves the next request.
    void headersAtOnceThenTheReplayOfTheResult() {
        // Headers that waited for the batch would come with the replay's end: they must come
        // alone, long before (no wall-clock bound: those flake on a loaded machine).
        m_fx->fake()->setProcessingDelay(2500ms);
        QElapsedTimer timer;
        timer.start();
        auto client = postStream(streamBody("hello stream"));
        QVERIFY(client);
        QVERIFY(client->waitFor([&] { return decode(client->received).headersDone; }, 5000));
        const StreamReply early = decode(client->received);
        QVERIFY(early.head.startsWith("http/1.1 200"));
        QVERIFY(early.head.contains("\r\ncontent-type: text/event-stream"));
        QVERIFY(early.head.contains("\r\ncache-control: no-cache"));
        QVERIFY(early.head.contains("\r\ntransfer-encoding: chunked"));
        QVERIFY(!early.ended);
        QCOMPARE(m_fx->statsJson()[u"waiting_streams"].toInteger(), 1);
        // The batch's id as soon as the provider created it, while the batch still runs.
        QVERIFY(client->waitFor(
            [&] { return decode(client->received).body.contains(": x-llm-proxy-batch-id batch_"); },
            5000));
        QVERIFY(!decode(client->received).ended);

        QVERIFY(waitEnded(*client));
        QVERIFY(timer.elapsed() >= 2500);
        const StreamReply reply = decode(client->received);
        const QList<Event> all = events(reply.body);
        QVERIFY(!all.isEmpty());
        QCOMPARE(all.last().data, QByteArray("[DONE]"));
        QCOMPARE(joinedChatText(reply.body), QStringLiteral("echo: hello stream"));
        QCOMPARE(
            commentCount(reply.body, "x-llm-proxy-batch-id " + m_fx->fake()->batches().first().id),
            1);
        QCOMPARE(m_fx->paidLines(), 1);

        // The same body without "stream": its answer's text is the replay's.
        QNetworkReply *plain =
            m_fx->client()->send("POST", "/v1/chat/completions", chatBody("hello stream"));
        QVERIFY(TestClient::finished(plain));
        QCOMPARE(TestClient::status(plain), 200);
        QCOMPARE(chatContent(plain->readAll()), joinedChatText(reply.body));

        // The stream ended with its last chunk: the connection serves the next request.
        client->received.remove(0, reply.used);
        client->socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        QVERIFY(client->waitFor([&] { return client->received.contains("{\"status\":\"ok\"}"); }));
        QVERIFY(client->received.startsWith("HTTP/1.1 200"));

        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats[u"streamed"].toInteger(), 1);
        QCOMPARE(stats[u"waiting_streams"].toInteger(), 0);
        QCOMPARE(stats[u"relayed"].toInteger(), 0);
    }

    // The batch line is the client's body without stream and stream_options, byte for byte
    // otherwise; include_usage is remembered for the replay.
    void batchLineLeavesOutTheStreamMembers() {
        const QByteArray body =
            R"({"model":"gpt-4o-mini", "stream": true, "seed": )"
            R"(12345678901234567890,  "stream_options": {"include_usage": true},)"
            R"( "messages":[{"role":"user","content":"count me"}]})";
        auto client = postStream(body);
        QVERIFY(client);
        QVERIFY(waitEnded(*client));
        QCOMPARE(m_inputFiles.size(), 1);
        const QByteArray expected = R"({"model":"gpt-4o-mini", "seed": 12345678901234567890,)"
                                    R"( "messages":[{"role":"user","content":"count me"}]})";
        QVERIFY2(m_inputFiles.first().contains(QByteArray("\"body\":" + expected)),
                 m_inputFiles.first());
        QVERIFY(!m_inputFiles.first().contains("stream"));
        // The usage chunk: choices [] and the body's usage, before [DONE].
        const QList<Event> all = events(decode(client->received).body);
        QVERIFY(all.size() >= 2);
        const QJsonObject usage = QJsonDocument::fromJson(all.at(all.size() - 2).data).object();
        QCOMPARE(usage[u"choices"].toArray().size(), 0);
        QVERIFY(usage[u"usage"].toObject()[u"total_tokens"].toInteger() > 0);
    }

    // While the batch runs, a comment every --stream-keepalive (1 s here).
    void keepAlivesAtTheConfiguredInterval() {
        m_fx->fake()->setProcessingDelay(5000ms);
        auto client = postStream(streamBody("keep me"));
        QVERIFY(client);
        QVERIFY(client->waitFor([&] { return decode(client->received).headersDone; }, 5000));
        QElapsedTimer timer;
        timer.start();
        QList<qint64> seen;
        QVERIFY(client->waitFor(
            [&] {
                const int n = commentCount(decode(client->received).body, "keep-alive");
                while (seen.size() < n)
                    seen.append(timer.elapsed());
                return n >= 3;
            },
            8000));
        // The first after about 1 s, then one a second. A timer never fires early, but a loaded
        // machine may run it late: the upper bounds only tell 1 s from the 15 s default.
        QVERIFY2(seen.at(0) >= 700 && seen.at(0) <= 2500, qPrintable(QString::number(seen.at(0))));
        const qint64 gap = seen.at(2) - seen.at(1);
        QVERIFY2(gap >= 700 && gap <= 2500, qPrintable(QString::number(gap)));
        QVERIFY(waitEnded(*client));
        QCOMPARE(joinedChatText(decode(client->received).body), QStringLiteral("echo: keep me"));
    }

    // A provider error for the request arrives as the stream's error event, in each format.
    void providerErrorIsTheErrorEvent() {
        auto chat = postStream(streamBody("[[status:400]] bad"));
        auto responses = postStream(
            R"({"model":"gpt-4o-mini","stream":true,"input":"[[status:429]] slow down"})",
            "/v1/responses");
        QVERIFY(chat && responses);
        QVERIFY(waitEnded(*chat));
        QVERIFY(waitEnded(*responses));
        const QList<Event> chatEvents = events(decode(chat->received).body);
        const QJsonObject chatError =
            QJsonDocument::fromJson(chatEvents.last().data).object()[u"error"].toObject();
        QVERIFY(!chatError.isEmpty());
        QCOMPARE(chatError[u"type"].toString(), QStringLiteral("invalid_request_error"));
        for (const Event &event : chatEvents)
            QVERIFY(event.data != "[DONE]");

        const QList<Event> responseEvents = events(decode(responses->received).body);
        QCOMPARE(responseEvents.last().name, QByteArray("error"));
        const QJsonObject error = QJsonDocument::fromJson(responseEvents.last().data).object();
        QCOMPARE(error[u"type"].toString(), QStringLiteral("error"));
        QVERIFY(!error[u"message"].toString().isEmpty());
    }

    // The proxy's own failures once the headers are out: the batch failed.
    void batchFailureIsTheErrorEvent() {
        m_fx->fake()->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1, "invalid_request",
                                      QStringLiteral("nope"));
        auto client = postStream(streamBody("doomed"));
        QVERIFY(client);
        QVERIFY(waitEnded(*client));
        const QList<Event> all = events(decode(client->received).body);
        const QJsonObject error =
            QJsonDocument::fromJson(all.last().data).object()[u"error"].toObject();
        QCOMPARE(error[u"code"].toString(), QStringLiteral("batch_failed"));
    }

    // Errors found before the headers stay plain HTTP errors.
    void badJsonIsAPlainError() {
        auto client = postStream(R"({"model":"gpt-4o-mini","stream":true,)");
        QVERIFY(client);
        QVERIFY(client->waitFor([&] { return client->received.contains("\r\n\r\n{"); }));
        QVERIFY(client->received.startsWith("HTTP/1.1 400"));
        QVERIFY(client->received.contains("Content-Type: application/json"));
    }

    // A client that hangs up while its request waits for the batch window: taken out, never sent.
    void hangUpCancelsTheWaitingStream() {
        m_fx->stopProxy();
        Config config = baseConfig();
        config.batchWindow = 600ms;
        QVERIFY(m_fx->startProxy(config));
        auto client = postStream(streamBody("never mind"));
        QVERIFY(client);
        QVERIFY(client->waitFor([&] { return decode(client->received).headersDone; }, 5000));
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 1);
        client->socket.abort();
        QTRY_COMPARE(m_fx->proxy()->core()->queued(), 0);
        QTRY_COMPARE(m_fx->statsJson()[u"waiting_streams"].toInteger(), 0);
        QTest::qWait(800);
        QCOMPARE(m_fx->fake()->batches().size(), 0);
    }

    // Adoption matches like with like: a stream never takes over a non-streamed request with
    // the same body (nor the reverse), but a retried stream takes over its own.
    void streamsAndNonStreamsAreNotAdoptedTogether() {
        m_fx->fake()->setProcessingDelay(600ms);
        RawClient plain;
        QVERIFY(plain.connectTo(m_fx->client()->port()));
        plain.post("/v1/chat/completions", chatBody("twins"));
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        plain.socket.abort(); // its result will wait for a retry...
        auto stream = postStream(R"({"model":"gpt-4o-mini","messages":[{"role":"user",)"
                                 R"("content":"twins"}],"stream":true})");
        QVERIFY(stream); // ...but not for this one: another request
        QVERIFY(waitEnded(*stream));
        QCOMPARE(joinedChatText(decode(stream->received).body), QStringLiteral("echo: twins"));
        QCOMPARE(m_fx->paidLines(), 2);
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(0));

        // A stream whose client left is adopted by the same stream, retried.
        auto first = postStream(streamBody("retry me"));
        QVERIFY(first);
        QTRY_COMPARE(m_fx->fake()->batches().size(), 3);
        first->socket.abort();
        auto retry = postStream(streamBody("retry me"));
        QVERIFY(retry);
        QVERIFY(waitEnded(*retry));
        QCOMPARE(joinedChatText(decode(retry->received).body), QStringLiteral("echo: retry me"));
        QCOMPARE(m_fx->paidLines(), 3);
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
    }

    // Shutting down: a waiting stream gets the error event and its connection closes; the
    // restarted proxy resumes the batch, and the retried stream adopts the stored result.
    void shutdownErrorEventThenRestartAndAdopt() {
        m_fx->fake()->setProcessingDelay(800ms);
        auto client = postStream(streamBody("survive"));
        QVERIFY(client);
        QTRY_COMPARE(m_fx->fake()->batches().size(), 1);
        QTRY_COMPARE(m_fx->proxy()->core()->inFlight(), 1);
        m_fx->proxy()->stop();
        QVERIFY(client->waitClosed());
        client->received += client->socket.readAll();
        const QList<Event> all = events(decode(client->received).body);
        QVERIFY(!all.isEmpty());
        const QJsonObject error =
            QJsonDocument::fromJson(all.last().data).object()[u"error"].toObject();
        QCOMPARE(error[u"code"].toString(), QStringLiteral("proxy_shutting_down"));

        QVERIFY(m_fx->startProxy(baseConfig())); // resumes the batch at once
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->proxy()->core()->unclaimed(), 1, 10'000);
        auto retry = postStream(streamBody("survive"));
        QVERIFY(retry);
        QVERIFY(waitEnded(*retry));
        QCOMPARE(joinedChatText(decode(retry->received).body), QStringLiteral("echo: survive"));
        QCOMPARE(m_fx->paidLines(), 1);
        QCOMPARE(m_fx->proxy()->core()->adopted(), quint64(1));
    }

    // --streams relay, and X-Batch: off, relay streams at full price as before.
    void relayedWhenAskedTo() {
        RawClient off;
        QVERIFY(off.connectTo(m_fx->client()->port()));
        const QByteArray body = streamBody("full price");
        off.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Authorization: Bearer sk-test-key-aaaa\r\nX-Batch: off\r\n"
                         "Content-Type: application/json\r\nContent-Length: " +
                         QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QVERIFY(waitEnded(off));
        QCOMPARE(joinedChatText(decode(off.received).body), QStringLiteral("echo: full price"));
        QCOMPARE(m_fx->fake()->count("POST", "/v1/chat/completions"), 1);

        m_fx->stopProxy();
        Config config = baseConfig();
        config.relayStreams = true;
        QVERIFY(m_fx->startProxy(config));
        auto relayed = postStream(streamBody("relay me"));
        QVERIFY(relayed);
        QVERIFY(waitEnded(*relayed));
        QCOMPARE(joinedChatText(decode(relayed->received).body), QStringLiteral("echo: relay me"));
        QCOMPARE(m_fx->fake()->count("POST", "/v1/chat/completions"), 2);
        QCOMPARE(m_fx->fake()->batches().size(), 0);
        QCOMPARE(m_fx->statsJson()[u"relayed"].toInteger(), 1);
    }

    // Connection: close: the stream is delimited by the end of the connection.
    void closeDelimitedWithoutKeepAlive() {
        RawClient client;
        QVERIFY(client.connectTo(m_fx->client()->port()));
        const QByteArray body =
            R"({"model":"gpt-3.5-turbo-instruct","stream":true,"prompt":"and close"})";
        client.socket.write("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Authorization: Bearer sk-test-key-aaaa\r\nConnection: close\r\n"
                            "Content-Type: application/json\r\nContent-Length: " +
                            QByteArray::number(body.size()) + "\r\n\r\n" + body);
        QVERIFY(client.waitClosed());
        client.received += client.socket.readAll();
        const StreamReply reply = decode(client.received);
        QVERIFY(reply.head.contains("connection: close"));
        QVERIFY(!reply.head.contains("transfer-encoding"));
        const QList<Event> all = events(reply.body);
        QCOMPARE(all.last().data, QByteArray("[DONE]"));
        QByteArray firstData; // comments (the batch id) come first
        for (const Event &event : all) {
            if (firstData.isEmpty())
                firstData = event.data;
        }
        const QJsonObject first = QJsonDocument::fromJson(firstData).object();
        QCOMPARE(first[u"object"].toString(), QStringLiteral("text_completion"));
        QVERIFY(!first[u"choices"].toArray().first()[u"text"].toString().isEmpty());
    }
};

LLMPROXY_TEST_MAIN(tst_Streaming)
#include "tst_streaming.moc"
