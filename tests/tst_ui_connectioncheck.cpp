// SPDX-License-Identifier: GPL-3.0-or-later
// Test connection (issue 15): the checker asks <upstream>/models with the key and says plainly
// what is wrong, one message per failure class, against real sockets: a closed port, a name
// that does not resolve, a server that never answers, a plain-TCP server and a self-signed
// TLS server for an https URL, the fake provider refusing the key (401), a scripted 403 and
// 500, a wrong base URL (404), and the fake's model list. The key never appears in a message.

#include "fakeprovider.h"
#include "testcertificate.h"
#include "ui/connectionchecker.h"

#include <QSignalSpy>
#include <QSslCertificate>
#include <QSslConfiguration>
#include <QSslServer>
#include <QSslSocket>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

const QByteArray TestKey = "sk-check-test-0123456789-abcd";

// Answers every request with one canned HTTP answer (or never, when silent); for a plain
// server behind an https URL it answers the TLS hello with that HTTP text, as a
// misconfigured port would.
class CannedServer final : public QObject {
public:
    explicit CannedServer(QByteArray answer, QTcpServer *server = nullptr)
        : m_server(server ? server : new QTcpServer)
        , m_answer(std::move(answer)) {
        m_server->setParent(this);
        connect(m_server, &QTcpServer::pendingConnectionAvailable, this, [this] {
            while (QTcpSocket *socket = m_server->nextPendingConnection()) {
                connect(socket, &QTcpSocket::readyRead, this, [this, socket] {
                    m_seen += socket->readAll();
                    if (m_answer.isEmpty())
                        return;
                    socket->write(m_answer);
                    socket->disconnectFromHost();
                });
                connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            }
        });
    }
    bool listen() { return m_server->listen(QHostAddress::LocalHost, 0); }
    QUrl url(const char *scheme) const {
        return QUrl(QStringLiteral("%1://127.0.0.1:%2/v1")
                        .arg(QLatin1StringView(scheme))
                        .arg(m_server->serverPort()));
    }
    QByteArray seen() const { return m_seen; }

private:
    QTcpServer *m_server;
    QByteArray m_answer;
    QByteArray m_seen;
};

QByteArray httpAnswer(int status, const QByteArray &reason, const QByteArray &message) {
    const QByteArray body = R"({"error":{"message":")" + message +
                            R"(","type":"invalid_request_error","param":null,"code":null}})";
    return "HTTP/1.1 " + QByteArray::number(status) + ' ' + reason +
           "\r\nContent-Type: application/json\r\nContent-Length: " +
           QByteArray::number(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

quint16 closedPort() {
    QTcpServer probe;
    if (!probe.listen(QHostAddress::LocalHost, 0))
        return 0;
    return probe.serverPort(); // closed again when the probe goes
}

} // namespace

class TestUiConnectionCheck final : public QObject {
    Q_OBJECT

private slots:
    void refused();
    void hostNotFound();
    void timedOut();
    void tlsAgainstPlainTcp();
    void tlsSelfSigned();
    void unauthorized();
    void unauthorizedWithoutKey();
    void forbidden();
    void wrongBaseUrl();
    void otherHttpStatus();
    void notAModelList();
    void fineWithModels();

private:
    ConnectionChecker::Result run(const QUrl &upstream, const QByteArray &key,
                                  std::chrono::milliseconds timeout = 10s) {
        ConnectionChecker checker;
        checker.setTimeout(timeout);
        QSignalSpy finished(&checker, &ConnectionChecker::finished);
        checker.check(upstream, key);
        [&] { QVERIFY(finished.wait(20'000)); }();
        const ConnectionChecker::Result result = checker.result();
        qInfo().noquote() << result.message;
        if (!finished.isEmpty()) {
            [&] {
                QCOMPARE(finished.first().at(0).toString(), result.message);
                QCOMPARE(finished.first().at(1).toBool(),
                         result.outcome == ConnectionChecker::Outcome::Fine);
            }();
        }
        [&] {
            QVERIFY2(!result.message.contains(QString::fromLatin1(key)) || key.isEmpty(),
                     qPrintable(result.message));
        }();
        return result;
    }
};

void TestUiConnectionCheck::refused() {
    const quint16 port = closedPort();
    QVERIFY(port != 0);
    const auto r = run(QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(port)), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Refused);
    QVERIFY2(r.message.startsWith(QStringLiteral("Unreachable: 127.0.0.1:%1 refused the "
                                                 "connection")
                                      .arg(port)),
             qPrintable(r.message));
}

void TestUiConnectionCheck::hostNotFound() {
    const auto r = run(QUrl(QStringLiteral("https://no-such-host.invalid/v1")), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::HostNotFound);
    QVERIFY2(r.message.contains(QStringLiteral("no-such-host.invalid could not be found (DNS)")),
             qPrintable(r.message));
}

void TestUiConnectionCheck::timedOut() {
    CannedServer silent{QByteArray()};
    QVERIFY(silent.listen());
    const auto r = run(silent.url("http"), TestKey, 300ms);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::TimedOut);
    QVERIFY2(r.message.contains(QStringLiteral("did not answer within 0.3 s")),
             qPrintable(r.message));
}

void TestUiConnectionCheck::tlsAgainstPlainTcp() {
    if (!QSslSocket::supportsSsl())
        QSKIP("no TLS backend");
    CannedServer plain(httpAnswer(400, "Bad Request", "plain HTTP here"));
    QVERIFY(plain.listen());
    const auto r = run(plain.url("https"), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Tls);
    QVERIFY2(r.message.startsWith(QStringLiteral("TLS failed: the secure connection to "
                                                 "127.0.0.1:")),
             qPrintable(r.message));
    QVERIFY(r.message.contains(QStringLiteral("http:// for a plain one")));
    QVERIFY(!plain.seen().contains(TestKey)); // the key never went out in the clear
}

void TestUiConnectionCheck::tlsSelfSigned() {
    if (!QSslSocket::supportsSsl())
        QSKIP("no TLS backend");
    const auto serverConfig = test::selfSignedServerConfiguration(QStringLiteral("127.0.0.1"),
                                                                  QStringLiteral("IP:127.0.0.1"));
    if (!serverConfig)
        QSKIP("openssl could not make a test certificate");
    auto *sslServer = new QSslServer;
    sslServer->setSslConfiguration(*serverConfig);
    CannedServer server(httpAnswer(200, "OK", "never sent"), sslServer);
    QVERIFY(server.listen());
    const auto r = run(server.url("https"), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Tls);
    QVERIFY2(r.message.startsWith(QStringLiteral("TLS failed: the certificate of 127.0.0.1:")),
             qPrintable(r.message));
    QVERIFY2(r.message.contains(QStringLiteral("self signed"), Qt::CaseInsensitive) ||
                 r.message.contains(QStringLiteral("self-signed"), Qt::CaseInsensitive),
             qPrintable(r.message));
    QVERIFY(server.seen().isEmpty()); // no request (and no key) was sent
}

void TestUiConnectionCheck::unauthorized() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    fake.setAcceptedKey("sk-the-right-one-000000000000");
    const auto r = run(fake.baseUrl(), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Unauthorized);
    QCOMPARE(r.httpStatus, 401);
    QVERIFY2(
        r.message.startsWith(QStringLiteral("401: 127.0.0.1:%1 refused the key").arg(fake.port())),
        qPrintable(r.message));
}

void TestUiConnectionCheck::unauthorizedWithoutKey() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    const auto r = run(fake.baseUrl(), QByteArray());
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Unauthorized);
    QVERIFY2(r.message.contains(QStringLiteral("none is configured")), qPrintable(r.message));
    QVERIFY(!fake.requests().constLast().headers.contains("authorization"));
}

void TestUiConnectionCheck::forbidden() {
    // The provider's text is shown, with anything key-like in it masked.
    CannedServer server(httpAnswer(
        403, "Forbidden", QByteArray("Project proj_1 may not use key " + TestKey + " here")));
    QVERIFY(server.listen());
    const auto r = run(server.url("http"), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Forbidden);
    QVERIFY2(r.message.startsWith(QStringLiteral("403: ")), qPrintable(r.message));
    QVERIFY2(r.message.contains(QStringLiteral("It said: Project proj_1 may not use key [key] "
                                               "here")),
             qPrintable(r.message));
    QVERIFY(server.seen().contains("GET /v1/models HTTP/1.1"));
    QVERIFY(server.seen().contains(QByteArray("Bearer " + TestKey)));
}

void TestUiConnectionCheck::wrongBaseUrl() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    // Without the /v1, the fake has nothing at /models.
    const QUrl base(QStringLiteral("http://127.0.0.1:%1").arg(fake.port()));
    const auto r = run(base, TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::NotFound);
    QVERIFY2(r.message.contains(QStringLiteral("base URL is probably wrong")),
             qPrintable(r.message));
    QVERIFY2(r.message.contains(QStringLiteral("http://127.0.0.1:%1/models").arg(fake.port())),
             qPrintable(r.message));
}

void TestUiConnectionCheck::otherHttpStatus() {
    CannedServer server(httpAnswer(500, "Internal Server Error", "The server had an error"));
    QVERIFY(server.listen());
    const auto r = run(server.url("http"), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::HttpError);
    QCOMPARE(r.message, QStringLiteral("HTTP 500 from 127.0.0.1:%1 when asking for the model "
                                       "list. It said: The server had an error")
                            .arg(server.url("http").port()));
}

void TestUiConnectionCheck::notAModelList() {
    CannedServer server("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n"
                        "Connection: close\r\n\r\n<html>");
    QVERIFY(server.listen());
    const auto r = run(server.url("http"), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::NotAModelList);
}

void TestUiConnectionCheck::fineWithModels() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    fake.setAcceptedKey(TestKey);
    const auto r = run(fake.baseUrl(), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Fine);
    QCOMPARE(r.models, (QStringList{QStringLiteral("gpt-4o"), QStringLiteral("gpt-4o-mini"),
                                    QStringLiteral("omni-moderation-latest"),
                                    QStringLiteral("text-embedding-3-small")}));
    QCOMPARE(r.message, QStringLiteral("Fine: 127.0.0.1:%1 accepted the key, which can use 4 "
                                       "models: gpt-4o, gpt-4o-mini, omni-moderation-latest, "
                                       "text-embedding-3-small.")
                            .arg(fake.port()));
    QCOMPARE(fake.requests().constLast().headers.value("authorization"),
             QByteArray("Bearer " + TestKey));
}

QTEST_GUILESS_MAIN(TestUiConnectionCheck)
#include "tst_ui_connectioncheck.moc"
