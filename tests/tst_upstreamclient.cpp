// SPDX-License-Identifier: GPL-3.0-or-later
// The relay's own HTTP/1.1 client against a scripted upstream on loopback: framing
// (Content-Length, chunked, close-delimited, HEAD, 1xx), keep-alive reuse, a pooled connection
// the upstream closed (retried once for GET, never for POST), bodies cut short, timeouts,
// back-pressure, streaming as it arrives, and https with certificate verification.

#include "http/relay.h"
#include "http/upstreamclient.h"
#include "testcertificate.h"
#include "testmain.h"

#include <QPointer>
#include <QSslCertificate>
#include <QSslKey>
#include <QSslServer>
#include <QSslSocket>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>

#include <functional>
#include <memory>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace {

// What the upstream saw.
struct Seen {
    int connection = 0;   // 1 for the first connection accepted, and so on
    int onConnection = 0; // 1 for the first request on its connection
    QByteArray method;
    QByteArray target;
    HeaderList headers;
    QByteArray body;
    QByteArray header(QByteArrayView name) const {
        for (const auto &[n, v] : headers)
            if (n.compare(name, Qt::CaseInsensitive) == 0)
                return v;
        return {};
    }
};

// An HTTP/1.1 upstream whose answers the test writes by hand, byte for byte.
class ScriptedUpstream final : public QObject {
public:
    using Handler = std::function<void(QTcpSocket *socket, const Seen &request)>;

    explicit ScriptedUpstream(QTcpServer *server = nullptr)
        : m_server(server ? server : new QTcpServer) {
        m_server->setParent(this);
        connect(m_server, &QTcpServer::pendingConnectionAvailable, this, [this] {
            while (QTcpSocket *socket = m_server->nextPendingConnection())
                adopt(socket);
        });
    }
    bool listen() { return m_server->listen(QHostAddress::LocalHost, 0); }
    quint16 port() const { return m_server->serverPort(); }
    QUrl url(const char *scheme = "http") const {
        return QUrl(
            QStringLiteral("%1://127.0.0.1:%2/v1").arg(QLatin1StringView(scheme)).arg(port()));
    }

    Handler handler = [](QTcpSocket *socket, const Seen &) {
        socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    };
    QList<Seen> seen;
    int accepted = 0;
    QList<QPointer<QTcpSocket>> sockets;

private:
    void adopt(QTcpSocket *socket) {
        const int index = ++accepted;
        sockets.append(socket);
        auto buffer = std::make_shared<QByteArray>();
        auto count = std::make_shared<int>(0);
        connect(socket, &QIODevice::readyRead, socket, [this, socket, buffer, count, index] {
            *buffer += socket->readAll();
            for (;;) {
                const qsizetype end = buffer->indexOf("\r\n\r\n");
                if (end < 0)
                    return;
                Seen request;
                request.connection = index;
                const QList<QByteArray> lines = buffer->left(end).split('\n');
                const QList<QByteArray> first = lines.first().trimmed().split(' ');
                request.method = first.value(0);
                request.target = first.value(1);
                qsizetype length = 0;
                for (qsizetype i = 1; i < lines.size(); ++i) {
                    const QByteArray line = lines.at(i).trimmed();
                    const qsizetype colon = line.indexOf(':');
                    request.headers.emplaceBack(line.left(colon).trimmed(),
                                                line.mid(colon + 1).trimmed());
                    if (line.left(colon).trimmed().toLower() == "content-length")
                        length = line.mid(colon + 1).trimmed().toLongLong();
                }
                if (buffer->size() < end + 4 + length)
                    return;
                request.body = buffer->mid(end + 4, length);
                buffer->remove(0, end + 4 + length);
                request.onConnection = ++*count;
                seen.append(request);
                handler(socket, request);
            }
        });
        connect(socket, &QAbstractSocket::disconnected, socket, &QObject::deleteLater);
    }

    QTcpServer *m_server;
};

UpstreamRequest get(const QByteArray &target = "/v1/models") {
    UpstreamRequest request;
    request.method = "GET";
    request.target = target;
    return request;
}

UpstreamRequest post(const QByteArray &body) {
    UpstreamRequest request;
    request.method = "POST";
    request.target = "/v1/chat/completions";
    request.headers = {{"Content-Type", "application/json"}};
    request.body = body;
    return request;
}

// Counts how often a reply's listener is told; can act when told.
struct CountingListener final : UpstreamReply::Listener {
    int told = 0;
    std::function<void(UpstreamReply *)> onTold;
    void upstreamReadyRead(UpstreamReply *reply) override {
        ++told;
        if (onTold)
            onTold(reply);
    }
};

// Reads the whole body as a relay would (everything there is, whenever readyRead says so),
// until the reply is finished.
QByteArray drain(UpstreamReply *reply, int ms = 5000) {
    QByteArray body;
    const bool done = QTest::qWaitFor(
        [&] {
            for (QByteArray part = reply->read(1 << 20); !part.isEmpty();
                 part = reply->read(1 << 20))
                body += part;
            return reply->isFinished();
        },
        ms);
    if (!done)
        qWarning("the reply did not finish");
    return body;
}

} // namespace

class tst_UpstreamClient final : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<ScriptedUpstream> m_upstream;
    std::unique_ptr<UpstreamClient> m_client;

private Q_SLOTS:
    void init() {
        m_upstream = std::make_unique<ScriptedUpstream>();
        QVERIFY(m_upstream->listen());
        m_client = std::make_unique<UpstreamClient>();
    }
    void cleanup() {
        m_client.reset();
        m_upstream.reset();
    }

    void originFromUrl_data() {
        QTest::addColumn<QString>("url");
        QTest::addColumn<bool>("tls");
        QTest::addColumn<QString>("host");
        QTest::addColumn<int>("port");
        QTest::addColumn<QByteArray>("hostHeader");
        QTest::newRow("https default port")
            << QStringLiteral("https://api.openai.com/v1") << true
            << QStringLiteral("api.openai.com") << 443 << QByteArray("api.openai.com");
        QTest::newRow("http with a port")
            << QStringLiteral("http://127.0.0.1:8080/v1") << false << QStringLiteral("127.0.0.1")
            << 8080 << QByteArray("127.0.0.1:8080");
        QTest::newRow("https on 80 names its port")
            << QStringLiteral("https://example.com:80") << true << QStringLiteral("example.com")
            << 80 << QByteArray("example.com:80");
        QTest::newRow("IPv6") << QStringLiteral("http://[::1]:3000/v1") << false
                              << QStringLiteral("::1") << 3000 << QByteArray("[::1]:3000");
        QTest::newRow("upper-case scheme")
            << QStringLiteral("HTTP://Example.COM/v1") << false << QStringLiteral("example.com")
            << 80 << QByteArray("example.com");
    }
    void originFromUrl() {
        QFETCH(QString, url);
        QFETCH(bool, tls);
        QFETCH(QString, host);
        QFETCH(int, port);
        QFETCH(QByteArray, hostHeader);
        const UpstreamOrigin origin = UpstreamOrigin::fromUrl(QUrl(url));
        QVERIFY(origin.isValid());
        QCOMPARE(origin.tls, tls);
        QCOMPARE(origin.host, host);
        QCOMPARE(int(origin.port), port);
        QCOMPARE(origin.hostHeader, hostHeader);
    }

    // The relay's request line without a QUrl per request must be the very URL the relay
    // always built (upstreamUrl, pinned in tst_httpwriter).
    void targetMatchesUpstreamUrl_data() {
        QTest::addColumn<QString>("base");
        QTest::addColumn<QByteArray>("pathAndQuery");
        const QString openai = QStringLiteral("https://api.openai.com/v1");
        const QString bases[] = {openai,
                                 QStringLiteral("https://api.openai.com/v1/"),
                                 QStringLiteral("https://api.openai.com/v1///"),
                                 QStringLiteral("http://127.0.0.1:8080"),
                                 QStringLiteral("http://127.0.0.1:8080/"),
                                 QStringLiteral("https://example.com/openai/v1"),
                                 QStringLiteral("https://x.example.com/openai/v1?api-version=1"),
                                 QStringLiteral("https://x.example.com/a%20b/v1")};
        const QByteArray paths[] = {"/v1/models",
                                    "/v1",
                                    "/v1/",
                                    "/v1/files?purpose=batch&limit=10",
                                    "/v1/models?",
                                    "/v1/batches?after=a%20b%26c&x=%2F+y",
                                    "/v1/x?next=/v1/y?z=1",
                                    "/v1/files/file%2Fabc/content",
                                    "/v1/models/ft%3Aa%3Fb%23c",
                                    "/v1/models/%41bc",
                                    "/v1/models/ft:gpt-4o-mini:org::abc123",
                                    "/v1/odd/!$&'()*+,;=:@-._~",
                                    "/v1/q?a=!$'()*,;:@/?-._~&b",
                                    "/v1/raw/a b\"c<d>{e}|f^g`h[i]",
                                    "/v1/caf\xc3\xa9?q=\xc3\xa9"};
        for (const QString &base : bases)
            for (const QByteArray &path : paths)
                QTest::addRow("%s %s", qPrintable(base), path.constData()) << base << path;
    }
    void targetMatchesUpstreamUrl() {
        QFETCH(QString, base);
        QFETCH(QByteArray, pathAndQuery);
        const QUrl url = upstreamUrl(QUrl(base), pathAndQuery);
        QByteArray expected = url.path(QUrl::FullyEncoded).toUtf8();
        if (expected.isEmpty())
            expected = "/";
        if (url.hasQuery())
            expected += '?' + url.query(QUrl::FullyEncoded).toUtf8();
        QCOMPARE(upstreamTarget(QUrl(base), pathAndQuery), expected);
    }

    void unsupportedSchemeFails() {
        CountingListener listener;
        const std::unique_ptr<UpstreamReply> reply =
            m_client->send(QUrl(QStringLiteral("ftp://x/v1")), get(), &listener);
        QCOMPARE(listener.told, 0); // never from inside send()
        QTRY_COMPARE(listener.told, 1);
        QVERIFY(reply->isFinished());
        QVERIFY(!reply->hasHead());
        QCOMPARE(reply->error(), UpstreamReply::Error::Connect);
    }

    void listenerMayDeleteRepliesWhenTold() {
        // Two exchanges time out in the same sweep; the first one's listener deletes both.
        UpstreamTimeouts timeouts;
        timeouts.silence = 100ms;
        m_client->setTimeouts(timeouts);
        m_upstream->handler = [](QTcpSocket *, const Seen &) {}; // never answers
        CountingListener first;
        CountingListener second;
        std::unique_ptr<UpstreamReply> a = m_client->send(m_upstream->url(), get(), &first);
        std::unique_ptr<UpstreamReply> b = m_client->send(m_upstream->url(), get(), &second);
        first.onTold = [&](UpstreamReply *) {
            a.reset();
            b.reset();
        };
        second.onTold = [&](UpstreamReply *) {
            a.reset();
            b.reset();
        };
        QTRY_VERIFY(!a && !b);
        QTest::qWait(300);
        QCOMPARE(first.told + second.told, 1);
        QCOMPARE(m_client->activeReplies(), 0);

        // And a listener that deletes its reply as soon as the head is in.
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        };
        CountingListener third;
        std::unique_ptr<UpstreamReply> c = m_client->send(m_upstream->url(), get(), &third);
        third.onTold = [&](UpstreamReply *reply) {
            QVERIFY(reply->hasHead());
            c.reset();
        };
        QTRY_VERIFY(!c);
        QCOMPARE(third.told, 1);
        QCOMPARE(m_client->idleConnections(), 0); // closed: its body was never read
    }

    void requestGoesOutAsGiven() {
        UpstreamRequest request = post("{\"model\":\"m\"}");
        request.target = "/v1/files/file-abc%2Fx?limit=2&q=a+b%20c";
        request.method = "PATCH";
        request.headers.emplaceBack("Authorization", "Bearer sk-x");
        request.headers.emplaceBack("X-Twice", "1");
        request.headers.emplaceBack("X-Twice", "2");
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), request));
        QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QCOMPARE(m_upstream->seen.size(), 1);
        const Seen &seen = m_upstream->seen.first();
        QCOMPARE(seen.method, QByteArray("PATCH"));
        QCOMPARE(seen.target, QByteArray("/v1/files/file-abc%2Fx?limit=2&q=a+b%20c"));
        QCOMPARE(seen.header("host"),
                 QByteArray("127.0.0.1:") + QByteArray::number(m_upstream->port()));
        QCOMPARE(seen.header("content-length"), QByteArray("13"));
        QCOMPARE(seen.header("authorization"), QByteArray("Bearer sk-x"));
        QCOMPARE(seen.body, QByteArray("{\"model\":\"m\"}"));
        int twice = 0;
        for (const auto &[name, value] : seen.headers)
            twice += name == "X-Twice" ? 1 : 0;
        QCOMPARE(twice, 2);
        // Nothing the client did not ask for.
        QVERIFY(seen.header("connection").isEmpty());
        QVERIFY(seen.header("user-agent").isEmpty());
        QVERIFY(seen.header("accept-encoding").isEmpty());
    }

    void emptyPostHasContentLengthZero() {
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), post({})));
        drain(reply.get());
        QCOMPARE(m_upstream->seen.first().header("content-length"), QByteArray("0"));
        std::unique_ptr<UpstreamReply> plain(m_client->send(m_upstream->url(), get()));
        drain(plain.get());
        QVERIFY(m_upstream->seen.last().header("content-length").isEmpty());
    }

    void keepAliveReusesTheConnection() {
        for (int i = 0; i < 5; ++i) {
            std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
            QCOMPARE(drain(reply.get()), QByteArray("ok"));
            QCOMPARE(reply->status(), 200);
            QCOMPARE(reply->reusedConnection(), i > 0);
            QCOMPARE(m_client->idleConnections(), 1);
        }
        QCOMPARE(m_upstream->accepted, 1);
        QCOMPARE(m_client->connectionsOpened(), quint64(1));
        QCOMPARE(m_upstream->seen.last().onConnection, 5);
    }

    void concurrentRequestsOpenTheirOwnConnections() {
        // Answered only once all three are in: each needs a connection of its own.
        QList<QTcpSocket *> waiting;
        m_upstream->handler = [&](QTcpSocket *socket, const Seen &) {
            waiting.append(socket);
            if (waiting.size() == 3) {
                for (QTcpSocket *s : std::as_const(waiting))
                    s->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                waiting.clear();
            }
        };
        std::vector<std::unique_ptr<UpstreamReply>> replies;
        for (int i = 0; i < 3; ++i)
            replies.emplace_back(m_client->send(m_upstream->url(), get()));
        for (auto &reply : replies)
            QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QCOMPARE(m_upstream->accepted, 3);
        QCOMPARE(m_client->idleConnections(), 3);
        // A new round takes them from the pool.
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        };
        std::unique_ptr<UpstreamReply> again(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(again.get()), QByteArray("ok"));
        QVERIFY(again->reusedConnection());
        QCOMPARE(m_upstream->accepted, 3);
    }

    void headersAsSent() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 418 I'm a teapot\r\n"
                          "Content-Type: application/json\r\n"
                          "Set-Cookie: a=1\r\n"
                          "Set-Cookie: b=2\r\n"
                          "X-Folded: one\r\n"
                          "  two\r\n"
                          "x-request-id:req_1  \r\n"
                          "Content-Length: 4\r\n"
                          "\r\n"
                          "nope");
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("nope"));
        QCOMPARE(reply->status(), 418);
        QCOMPARE(reply->error(), UpstreamReply::Error::None); // an HTTP error is a whole answer
        const HeaderList expected{{"Content-Type", "application/json"},
                                  {"Set-Cookie", "a=1"},
                                  {"Set-Cookie", "b=2"},
                                  {"X-Folded", "one    two"}, // the fold (CR LF) became spaces
                                  {"x-request-id", "req_1"},
                                  {"Content-Length", "4"}};
        QCOMPARE(reply->headers(), expected);
    }

    void bareLineFeedsAndOddSpacingAreAccepted() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\n"
                          "X-Empty:\n"
                          "X-Spaced :  \t value \t\n"
                          "Content-Length:\t2\n"
                          "\n"
                          "ok");
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        const HeaderList expected{{"X-Empty", ""}, {"X-Spaced", "value"}, {"Content-Length", "2"}};
        QCOMPARE(reply->headers(), expected);
        QCOMPARE(m_client->idleConnections(), 1);
    }

    void interimAnswersAreSkipped() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                          "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew");
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), post("x")));
        QCOMPARE(drain(reply.get()), QByteArray("new"));
        QCOMPARE(reply->status(), 201);
        QCOMPARE(reply->headers().size(), 1);
    }

    void chunkedBodyIsDecoded_data() {
        QTest::addColumn<bool>("byteByByte");
        QTest::newRow("at once") << false;
        QTest::newRow("a byte at a time") << true;
    }
    void chunkedBodyIsDecoded() {
        QFETCH(bool, byteByByte);
        const QByteArray answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5\r\nhello\r\n"
                                  "1;ext=\"x\"\r\n,\r\n"
                                  "B\r\n 0123456789\r\n"
                                  "0\r\nX-Trailer: t\r\n\r\n";
        QList<QPointer<QTcpSocket>> sockets;
        m_upstream->handler = [&](QTcpSocket *socket, const Seen &) {
            if (!byteByByte) {
                socket->write(answer);
                return;
            }
            auto *timer = new QTimer(socket);
            auto sent = std::make_shared<qsizetype>(0);
            connect(timer, &QTimer::timeout, socket, [socket, timer, sent, answer] {
                socket->write(answer.mid((*sent)++, 1));
                socket->flush();
                if (*sent == answer.size())
                    timer->deleteLater();
            });
            timer->start(1);
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get(), 20'000), QByteArray("hello, 0123456789"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QVERIFY(!reply->headers().isEmpty());
        // Whole and well framed: the connection goes back to the pool.
        QCOMPARE(m_client->idleConnections(), 1);
        std::unique_ptr<UpstreamReply> next(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(next.get(), 20'000), QByteArray("hello, 0123456789"));
        QVERIFY(next->reusedConnection());
    }

    // RFC 9112 §6.3: with both, Transfer-Encoding frames the body and Content-Length is
    // ignored; the connection is not used again (it may be a smuggling attempt).
    void transferEncodingWinsOverContentLength_data() {
        QTest::addColumn<QByteArray>("answer");
        QTest::newRow("Content-Length first")
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                          "\r\nC\r\nhello, world\r\n0\r\n\r\n");
        QTest::newRow("Transfer-Encoding first")
            << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
                          "\r\nC\r\nhello, world\r\n0\r\n\r\n");
        QTest::newRow("Content-Length: 0")
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n7\r\nhello, \r\n5\r\nworld\r\n0\r\n\r\n");
    }
    void transferEncodingWinsOverContentLength() {
        QFETCH(QByteArray, answer);
        m_upstream->handler = [answer](QTcpSocket *socket, const Seen &) { socket->write(answer); };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("hello, world"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QVERIFY(reply->transferCoded());
        QCOMPARE(m_client->idleConnections(), 0);
    }

    void transferCodedOnlyWithTransferEncoding() {
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QVERIFY(!reply->transferCoded());
        QCOMPARE(m_client->idleConnections(), 1);
    }

    void closeDelimitedBodyEndsAtTheClose() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
            socket->disconnectFromHost();
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("until the end"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QCOMPARE(m_client->idleConnections(), 0); // never reused
        std::unique_ptr<UpstreamReply> next(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(next.get()), QByteArray("until the end"));
        QVERIFY(!next->reusedConnection());
        QCOMPARE(m_upstream->accepted, 2);
    }

    void connectionCloseAndHttp10AreNotReused_data() {
        QTest::addColumn<QByteArray>("answer");
        QTest::newRow("Connection: close")
            << QByteArray("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        QTest::newRow("HTTP/1.0") << QByteArray("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    void connectionCloseAndHttp10AreNotReused() {
        QFETCH(QByteArray, answer);
        m_upstream->handler = [answer](QTcpSocket *socket, const Seen &) { socket->write(answer); };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QCOMPARE(m_client->idleConnections(), 0);
    }

    void http10KeepAliveIsReused() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok");
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), QByteArray("ok"));
        QCOMPARE(m_client->idleConnections(), 1);
    }

    void headAndNoContentHaveNoBody_data() {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QByteArray>("answer");
        QTest::newRow("HEAD with a length")
            << QByteArray("HEAD") << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
        QTest::newRow("HEAD, chunked")
            << QByteArray("HEAD")
            << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        QTest::newRow("204") << QByteArray("DELETE")
                             << QByteArray("HTTP/1.1 204 No Content\r\n\r\n");
        QTest::newRow("304") << QByteArray("GET")
                             << QByteArray("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
        QTest::newRow("length 0") << QByteArray("GET")
                                  << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    void headAndNoContentHaveNoBody() {
        QFETCH(QByteArray, method);
        QFETCH(QByteArray, answer);
        m_upstream->handler = [answer](QTcpSocket *socket, const Seen &) { socket->write(answer); };
        UpstreamRequest request = get();
        request.method = method;
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), request));
        QCOMPARE(drain(reply.get()), QByteArray());
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QVERIFY(reply->hasHead());
        // Nothing was left unread: the connection is clean for the next request.
        QCOMPARE(m_client->idleConnections(), 1);
    }

    void upstreamClosingMidBodyIsAnError_data() {
        QTest::addColumn<QByteArray>("answer");
        QTest::addColumn<QByteArray>("body");
        QTest::newRow("Content-Length")
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            << QByteArray("only part");
        QTest::newRow("chunked") << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                               "\r\n4\r\nsome\r\n10\r\nthing")
                                 << QByteArray("something");
        QTest::newRow("chunked, before the last chunk")
            << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsome\r\n")
            << QByteArray("some");
    }
    void upstreamClosingMidBodyIsAnError() {
        QFETCH(QByteArray, answer);
        QFETCH(QByteArray, body);
        m_upstream->handler = [answer](QTcpSocket *socket, const Seen &) {
            socket->write(answer);
            socket->disconnectFromHost();
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(reply.get()), body); // what arrived is delivered
        QVERIFY(reply->hasHead());
        QCOMPARE(reply->error(), UpstreamReply::Error::Closed);
        QCOMPARE(m_client->idleConnections(), 0);
    }

    void upstreamClosingBeforeAnsweringIsAnError() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->disconnectFromHost();
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), post("x")));
        drain(reply.get());
        QVERIFY(!reply->hasHead());
        QCOMPARE(reply->error(), UpstreamReply::Error::Closed);
        QCOMPARE(reply->attempts(), 1);
    }

    void pooledConnectionClosedUnderAGetIsRetriedOnce() {
        // The upstream closes a kept-alive connection just as the next request arrives on it
        // (its idle timeout racing our reuse): a GET may go again, on a fresh connection.
        m_upstream->handler = [](QTcpSocket *socket, const Seen &request) {
            if (request.connection == 1 && request.onConnection == 2) {
                socket->abort();
                return;
            }
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        };
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(second.get()), QByteArray("ok"));
        QCOMPARE(second->error(), UpstreamReply::Error::None);
        QVERIFY(second->reusedConnection());
        QCOMPARE(second->attempts(), 2);
        QCOMPARE(m_upstream->seen.size(), 3); // the lost one, and its retry
        QCOMPARE(m_upstream->seen.last().connection, 2);
    }

    void retryHappensOnlyOnce() {
        m_upstream->handler = [](QTcpSocket *socket, const Seen &request) {
            if (request.connection == 1 && request.onConnection == 1) {
                socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                return;
            }
            socket->abort(); // every later request dies unanswered
        };
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), get()));
        drain(second.get());
        QCOMPARE(second->error(), UpstreamReply::Error::Closed);
        QCOMPARE(second->attempts(), 2);
        QCOMPARE(m_upstream->seen.size(), 3);
    }

    void postIsNeverSentTwice_data() {
        QTest::addColumn<QByteArray>("method");
        QTest::newRow("POST") << QByteArray("POST");
        QTest::newRow("PATCH") << QByteArray("PATCH");
    }
    void postIsNeverSentTwice() {
        QFETCH(QByteArray, method);
        m_upstream->handler = [](QTcpSocket *socket, const Seen &request) {
            if (request.connection == 1 && request.onConnection == 2) {
                socket->abort();
                return;
            }
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        };
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        UpstreamRequest request = post("{\"once\":true}");
        request.method = method;
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), request));
        drain(second.get());
        QVERIFY(!second->hasHead());
        QCOMPARE(second->error(), UpstreamReply::Error::Closed);
        QCOMPARE(second->attempts(), 1);
        QTest::qWait(100); // a resend would have arrived by now
        int posts = 0;
        for (const Seen &seen : std::as_const(m_upstream->seen))
            posts += seen.method == method ? 1 : 0;
        QCOMPARE(posts, 1);
        QCOMPARE(m_upstream->accepted, 1);
    }

    void idleConnectionTheUpstreamClosedIsNotUsed() {
        // The upstream closes a connection while it sits in the pool: the next request, even a
        // POST, goes out on a fresh connection and succeeds.
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        };
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        QCOMPARE(m_client->idleConnections(), 1);
        QPointer<QTcpSocket> serverSide = m_upstream->sockets.first();
        QVERIFY(serverSide);
        serverSide->disconnectFromHost();
        QTRY_COMPARE(m_client->idleConnections(), 0);
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), post("x")));
        QCOMPARE(drain(second.get()), QByteArray("ok"));
        QCOMPARE(second->error(), UpstreamReply::Error::None);
        QVERIFY(!second->reusedConnection());
        QCOMPARE(m_upstream->accepted, 2);
    }

    void closedIdleConnectionIsSeenBeforeUse() {
        // The upstream closes a connection that has been idle a while, and the next request
        // comes before our event loop has seen the FIN: the kernel is asked (MSG_PEEK), so
        // even a POST goes out on a fresh connection.
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        QTest::qWait(1100); // idle for longer than the client trusts blindly
        QPointer<QTcpSocket> serverSide = m_upstream->sockets.first();
        QVERIFY(serverSide);
        serverSide->abort(); // FIN now, with no event loop turn on our side
        QCOMPARE(m_client->idleConnections(), 1);
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), post("x")));
        QCOMPARE(drain(second.get()), QByteArray("ok"));
        QCOMPARE(second->error(), UpstreamReply::Error::None);
        QVERIFY(!second->reusedConnection());
        QCOMPARE(second->attempts(), 1);
        QCOMPARE(m_upstream->accepted, 2);
    }

    void getOnAFreshlyClosedConnectionIsRetried() {
        // The same race on a connection used a moment ago (not asked): a GET goes again.
        std::unique_ptr<UpstreamReply> first(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(first.get()), QByteArray("ok"));
        QPointer<QTcpSocket> serverSide = m_upstream->sockets.first();
        QVERIFY(serverSide);
        serverSide->abort();
        std::unique_ptr<UpstreamReply> second(m_client->send(m_upstream->url(), get()));
        QCOMPARE(drain(second.get()), QByteArray("ok"));
        QCOMPARE(second->error(), UpstreamReply::Error::None);
        QVERIFY(second->reusedConnection());
        QCOMPARE(second->attempts(), 2);
        QCOMPARE(m_upstream->accepted, 2);
    }

    void idleConnectionsExpire() {
        UpstreamTimeouts timeouts;
        timeouts.keepIdle = 150ms;
        m_client->setTimeouts(timeouts);
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        drain(reply.get());
        QCOMPARE(m_client->idleConnections(), 1);
        QTRY_COMPARE_WITH_TIMEOUT(m_client->idleConnections(), 0, 2000);
        QPointer<QTcpSocket> serverSide = m_upstream->sockets.first();
        QTRY_VERIFY(!serverSide || serverSide->state() == QAbstractSocket::UnconnectedState);
    }

    void silentUpstreamTimesOut() {
        UpstreamTimeouts timeouts;
        timeouts.silence = 200ms;
        m_client->setTimeouts(timeouts);
        m_upstream->handler = [](QTcpSocket *socket, const Seen &request) {
            if (request.target == "/v1/half") // a head and part of the body, then silence
                socket->write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
        };
        QElapsedTimer clock;
        clock.start();
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        drain(reply.get());
        QCOMPARE(reply->error(), UpstreamReply::Error::Timeout);
        QVERIFY(!reply->hasHead());
        QVERIFY2(clock.elapsed() >= 190, QByteArray::number(clock.elapsed()).constData());
        QVERIFY2(clock.elapsed() < 3000, QByteArray::number(clock.elapsed()).constData());

        std::unique_ptr<UpstreamReply> half(m_client->send(m_upstream->url(), get("/v1/half")));
        QCOMPARE(drain(half.get()), QByteArray("half"));
        QCOMPARE(half->error(), UpstreamReply::Error::Timeout);
        QVERIFY(half->hasHead());
        QCOMPARE(m_client->idleConnections(), 0);
    }

    void aCallerThatDoesNotReadIsNotATimeout() {
        UpstreamTimeouts timeouts;
        timeouts.silence = 100ms;
        m_client->setTimeouts(timeouts);
        m_upstream->handler = [](QTcpSocket *socket, const Seen &) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nready");
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QTRY_VERIFY(reply->hasHead());
        QTest::qWait(400); // the caller holds back; the upstream said everything
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QCOMPARE(drain(reply.get()), QByteArray("ready"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
    }

    void connectTimeout() {
        // A TCP server that never speaks TLS: the handshake never ends.
        UpstreamTimeouts timeouts;
        timeouts.connect = 200ms;
        m_client->setTimeouts(timeouts);
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url("https"), get()));
        drain(reply.get());
        QCOMPARE(reply->error(), UpstreamReply::Error::Connect);
        QVERIFY(reply->errorString().contains(QStringLiteral("timed out")));
    }

    void refusedConnectionIsAConnectError() {
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost, 0));
        const quint16 port = probe.serverPort();
        probe.close();
        std::unique_ptr<UpstreamReply> reply(
            m_client->send(QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(port)), get()));
        drain(reply.get());
        QVERIFY(!reply->hasHead());
        QCOMPARE(reply->error(), UpstreamReply::Error::Connect);
        QVERIFY(!reply->errorString().isEmpty());
    }

    void malformedAnswersAreProtocolErrors_data() {
        QTest::addColumn<QByteArray>("answer");
        QTest::addColumn<bool>("head");
        QTest::newRow("not HTTP") << QByteArray("SSH-2.0-OpenSSH\r\n\r\n") << false;
        QTest::newRow("bad status") << QByteArray("HTTP/1.1 2x0 OK\r\n\r\n") << false;
        // Found by fuzz_upstreamparser: three digits, but not a status (RFC 9110 §15).
        QTest::newRow("status below 100")
            << QByteArray("HTTP/1.1 020 OK\r\nContent-Length: 0\r\n\r\n") << false;
        QTest::newRow("status above 599")
            << QByteArray("HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n") << false;
        QTest::newRow("header without a colon")
            << QByteArray("HTTP/1.1 200 OK\r\nbroken\r\n\r\n") << false;
        QTest::newRow("two lengths")
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
            << false;
        QTest::newRow("bad chunk size")
            << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
            << true;
        QTest::newRow("chunk without its CRLF")
            << QByteArray("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")
            << true;
    }
    void malformedAnswersAreProtocolErrors() {
        QFETCH(QByteArray, answer);
        QFETCH(bool, head);
        m_upstream->handler = [answer](QTcpSocket *socket, const Seen &) { socket->write(answer); };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        drain(reply.get());
        QCOMPARE(reply->hasHead(), head);
        QCOMPARE(reply->error(), UpstreamReply::Error::Protocol);
        QCOMPARE(m_client->idleConnections(), 0);
    }

    void streamArrivesAsItIsSent() {
        QPointer<QTcpSocket> stream;
        m_upstream->handler = [&](QTcpSocket *socket, const Seen &) {
            stream = socket;
            socket->write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"
                          "d\r\ndata: first\n\n\r\n");
        };
        CountingListener listener;
        std::unique_ptr<UpstreamReply> reply = m_client->send(m_upstream->url(), get(), &listener);
        QByteArray got;
        QVERIFY(QTest::qWaitFor(
            [&] {
                got += reply->read(1 << 20);
                return got == "data: first\n\n";
            },
            5000));
        QVERIFY(listener.told >= 1);
        const int toldForTheFirst = listener.told;
        QVERIFY(!reply->isFinished());
        QVERIFY(stream);
        stream->write("e\r\ndata: second\n\n\r\n0\r\n\r\n");
        QTRY_VERIFY(listener.told > toldForTheFirst); // told again for the second event
        got += drain(reply.get());
        QCOMPARE(got, QByteArray("data: first\n\ndata: second\n\n"));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
    }

    void bodyIsReadOnlyAsFastAsTheCallerTakesIt() {
        // 32 MiB offered at once; a caller that reads nothing holds it back in the upstream's
        // own buffers (TCP), so the upstream still has most of it to write.
        const qint64 size = 32LL * 1024 * 1024;
        const QByteArray block(1024 * 1024, 'x');
        QPointer<QTcpSocket> sender;
        m_upstream->handler = [&](QTcpSocket *socket, const Seen &) {
            sender = socket;
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: " + QByteArray::number(size) +
                          "\r\n\r\n");
            for (qint64 i = 0; i < size / block.size(); ++i)
                socket->write(block);
        };
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QTRY_VERIFY(reply->hasHead());
        QTest::qWait(500);
        QVERIFY(sender);
        QVERIFY2(sender->bytesToWrite() > size / 2,
                 QByteArray::number(sender->bytesToWrite()).constData());
        qint64 received = 0;
        bool allX = true;
        QVERIFY(QTest::qWaitFor(
            [&] {
                for (QByteArray part = reply->read(256 * 1024); !part.isEmpty();
                     part = reply->read(256 * 1024)) {
                    received += part.size();
                    allX = allX && part.count('x') == part.size();
                }
                return reply->isFinished();
            },
            30'000));
        QCOMPARE(reply->error(), UpstreamReply::Error::None);
        QCOMPARE(received, size);
        QVERIFY(allX);
    }

    void deletingAReplyClosesItsConnection() {
        QPointer<QTcpSocket> serverSide;
        m_upstream->handler = [&](QTcpSocket *socket, const Seen &) {
            serverSide = socket;
            socket->write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart");
        };
        std::unique_ptr<UpstreamReply> reply = m_client->send(m_upstream->url(), get());
        QTRY_VERIFY(reply->hasHead());
        reply.reset();
        QCOMPARE(m_client->idleConnections(), 0);
        QCOMPARE(m_client->activeReplies(), 0);
        QTRY_VERIFY(!serverSide || serverSide->state() == QAbstractSocket::UnconnectedState);
    }

    void replyOutlivesItsClient() {
        m_upstream->handler = [](QTcpSocket *, const Seen &) {}; // never answers
        std::unique_ptr<UpstreamReply> reply(m_client->send(m_upstream->url(), get()));
        QTRY_COMPARE(m_upstream->seen.size(), 1);
        m_client.reset();
        QVERIFY(reply->isFinished());
        QCOMPARE(reply->error(), UpstreamReply::Error::Aborted);
        QCOMPARE(reply->read(10), QByteArray());
        reply.reset(); // must not touch the client or its connections
    }

    void https() {
        const auto serverConfig = test::selfSignedServerConfiguration(
            QStringLiteral("localhost"), QStringLiteral("DNS:localhost"));
        if (!serverConfig)
            QSKIP("openssl could not make a test certificate");
        if (!QSslSocket::supportsSsl())
            QSKIP("no TLS backend");
        const QSslCertificate certificate = serverConfig->localCertificate();
        QVERIFY(!certificate.isNull());
        QVERIFY(!serverConfig->privateKey().isNull());

        auto *server = new QSslServer;
        server->setSslConfiguration(*serverConfig);
        m_upstream = std::make_unique<ScriptedUpstream>(server);
        QVERIFY(m_upstream->listen());

        // Not trusted: certificate verification refuses it.
        std::unique_ptr<UpstreamReply> refused(m_client->send(m_upstream->url("https"), get()));
        drain(refused.get());
        QVERIFY(!refused->hasHead());
        QCOMPARE(refused->error(), UpstreamReply::Error::Tls);
        QVERIFY(m_upstream->seen.isEmpty());

        // Trusted, but named for another host (the certificate is for "localhost" only):
        // refused too.
        QSslConfiguration trusting = QSslConfiguration::defaultConfiguration();
        trusting.addCaCertificate(certificate);
        m_client->setSslConfiguration(trusting);
        std::unique_ptr<UpstreamReply> wrongName(m_client->send(m_upstream->url("https"), get()));
        drain(wrongName.get());
        QCOMPARE(wrongName->error(), UpstreamReply::Error::Tls);
        QVERIFY(m_upstream->seen.isEmpty());

        // Trusted and rightly named: answers, and keeps the connection.
        const QUrl named(QStringLiteral("https://localhost:%1/v1").arg(m_upstream->port()));
        for (int i = 0; i < 3; ++i) {
            std::unique_ptr<UpstreamReply> reply(m_client->send(named, get()));
            QCOMPARE(drain(reply.get()), QByteArray("ok"));
            QCOMPARE(reply->error(), UpstreamReply::Error::None);
            QCOMPARE(reply->reusedConnection(), i > 0);
        }
        QCOMPARE(m_upstream->seen.size(), 3);
        QCOMPARE(m_upstream->seen.last().connection, m_upstream->seen.first().connection);
    }
};

LLMPROXY_TEST_MAIN(tst_UpstreamClient)
#include "tst_upstreamclient.moc"
