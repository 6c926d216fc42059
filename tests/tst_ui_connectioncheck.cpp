// SPDX-License-Identifier: GPL-3.0-or-later
// Test connection (issue 15): the checker asks <upstream>/models with the key and says plainly
// what is wrong, one message per failure class, against real sockets: a closed port, a name
// that does not resolve, a server that never answers, a plain-TCP server and a self-signed
// TLS server for an https URL, the fake provider refusing the key (401), a scripted 403 and
// 500, a wrong base URL (404), and the fake's model list. The key never appears in a message.
// Other providers in their own API's form: Anthropic's Models API (x-api-key,
// anthropic-version, its error shape) against the fake Anthropic, Azure's api-key header,
// Google's 400 for a wrong key, Together's bare list.

#include "fakeanthropic.h"
#include "fakeprovider.h"
#include "provider/providerrouting.h"
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
    void tlsClosedDuringHandshake();
    void unauthorized();
    void unauthorizedWithoutKey();
    void forbidden();
    void wrongBaseUrl();
    void otherHttpStatus();
    void notAModelList();
    void fineWithModels();
    void anthropicFine();
    void anthropicUnauthorized();
    void anthropicForbidden();
    void azureSendsItsApiKeyHeader();
    void googleKeyRefusalIsUnauthorized();
    void bareModelList();

private:
    static ConnectionChecker::Target target(const char *profile, const QUrl &url,
                                            const QByteArray &key) {
        return ConnectionChecker::targetFor(
            ConfiguredProvider{"p", providerProfile(profile), url, key});
    }
    ConnectionChecker::Result run(const ConnectionChecker::Target &target) {
        return run(target.baseUrl, target.key, 10s, &target);
    }
    ConnectionChecker::Result run(const QUrl &upstream, const QByteArray &key,
                                  std::chrono::milliseconds timeout = 10s,
                                  const ConnectionChecker::Target *target = nullptr) {
        ConnectionChecker checker;
        checker.setTimeout(timeout);
        QSignalSpy finished(&checker, &ConnectionChecker::finished);
        if (target)
            checker.check(*target);
        else
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

void TestUiConnectionCheck::tlsClosedDuringHandshake() {
    if (!QSslSocket::supportsSsl())
        QSKIP("no TLS backend");
    // A server that hangs up on the TLS hello, as some plain servers and filters do.
    QTcpServer server;
    QVERIFY(server.listen(QHostAddress::LocalHost, 0));
    connect(&server, &QTcpServer::pendingConnectionAvailable, &server, [&server] {
        while (QTcpSocket *socket = server.nextPendingConnection()) {
            connect(socket, &QTcpSocket::readyRead, socket, [socket] { socket->abort(); });
            connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
        }
    });
    const auto r =
        run(QUrl(QStringLiteral("https://127.0.0.1:%1/v1").arg(server.serverPort())), TestKey);
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Tls);
    QVERIFY2(r.message.contains(QStringLiteral("closed the connection before the secure "
                                               "connection was set up")),
             qPrintable(r.message));
    // Closed after the request (plain http): unreachable, not TLS.
    const auto plain =
        run(QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(server.serverPort())), TestKey);
    QCOMPARE(plain.outcome, ConnectionChecker::Outcome::Unreachable);
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

void TestUiConnectionCheck::anthropicFine() {
    FakeAnthropic fake;
    QVERIFY(fake.listen());
    const QByteArray key = "sk-ant-check-test-0123456789";
    fake.setAcceptedKey(key);
    const auto r = run(target("anthropic", fake.baseUrl(), key));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Fine);
    QCOMPARE(r.models, (QStringList{QStringLiteral("claude-3-5-haiku-20241022"),
                                    QStringLiteral("claude-opus-4-1-20250805"),
                                    QStringLiteral("claude-sonnet-4-20250514")}));
    QVERIFY2(r.message.contains(QStringLiteral("which can use 3 models")), qPrintable(r.message));
    // Anthropic's form: x-api-key and anthropic-version, no Bearer, the largest page.
    const FakeAnthropic::RequestRecord &request = fake.requests().constLast();
    QCOMPARE(request.path, QByteArray("/v1/models"));
    QCOMPARE(request.query, QByteArray("limit=1000"));
    QCOMPARE(request.headers.value("x-api-key"), key);
    QCOMPARE(request.headers.value("anthropic-version"), QByteArray("2023-06-01"));
    QVERIFY(!request.headers.contains("authorization"));
}

void TestUiConnectionCheck::anthropicUnauthorized() {
    FakeAnthropic fake;
    QVERIFY(fake.listen());
    fake.setAcceptedKey("sk-ant-the-right-one-000000");
    const auto r = run(target("anthropic", fake.baseUrl(), "sk-ant-a-wrong-one-0000000"));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Unauthorized);
    QVERIFY2(
        r.message.startsWith(QStringLiteral("401: 127.0.0.1:%1 refused the key").arg(fake.port())),
        qPrintable(r.message));
    // Without a key: where a provider's key goes.
    const auto none = run(target("anthropic", fake.baseUrl(), QByteArray()));
    QCOMPARE(none.outcome, ConnectionChecker::Outcome::Unauthorized);
    QVERIFY2(none.message.contains(QStringLiteral("in this provider's Key field")),
             qPrintable(none.message));
}

void TestUiConnectionCheck::anthropicForbidden() {
    FakeAnthropic fake;
    QVERIFY(fake.listen());
    const QByteArray key = "sk-ant-forbidden-0123456789";
    fake.setForbiddenKey(key);
    const auto r = run(target("anthropic", fake.baseUrl(), key));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Forbidden);
    QVERIFY2(r.message.contains(QStringLiteral("It said: Your API key does not have permission "
                                               "to use the specified resource.")),
             qPrintable(r.message));
}

void TestUiConnectionCheck::azureSendsItsApiKeyHeader() {
    FakeProvider fake;
    fake.setShape(FakeProvider::Shape::Azure);
    QVERIFY(fake.listen());
    fake.setAcceptedKey(TestKey);
    // The resource's URL as the user types it; the profile adds /openai/v1.
    const QUrl resource(QStringLiteral("http://127.0.0.1:%1").arg(fake.port()));
    const auto r = run(target("azure", providerProfile("azure")->baseUrlFor(resource), TestKey));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Fine);
    QCOMPARE(fake.requests().constLast().path, QByteArray("/openai/v1/models"));
    QCOMPARE(fake.requests().constLast().headers.value("api-key"), TestKey);
    QVERIFY(!fake.requests().constLast().headers.contains("authorization"));
}

void TestUiConnectionCheck::googleKeyRefusalIsUnauthorized() {
    const QByteArray body =
        R"([{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",)"
        R"("status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/)"
        R"(google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}])";
    CannedServer server("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                        "Content-Length: " +
                        QByteArray::number(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    QVERIFY(server.listen());
    const auto r = run(target("gemini", server.url("http"), "AIzaSyCheckTest0123456789abcdef"));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Unauthorized);
    QVERIFY(server.seen().contains("Authorization: Bearer AIzaSyCheckTest0123456789abcdef"));
}

void TestUiConnectionCheck::bareModelList() {
    // Together answers /v1/models with the list itself.
    const QByteArray body =
        R"([{"id":"meta-llama/Llama-3.3-70B-Instruct-Turbo","object":"model"}])";
    CannedServer server("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                        QByteArray::number(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    QVERIFY(server.listen());
    const auto r = run(target("together", server.url("http"), TestKey));
    QCOMPARE(r.outcome, ConnectionChecker::Outcome::Fine);
    QCOMPARE(r.models, QStringList{QStringLiteral("meta-llama/Llama-3.3-70B-Instruct-Turbo")});
}

QTEST_GUILESS_MAIN(TestUiConnectionCheck)
#include "tst_ui_connectioncheck.moc"
