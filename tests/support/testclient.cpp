// SPDX-License-Identifier: GPL-3.0-or-later
#include "testclient.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QNetworkReply>
#include <QTest>

namespace llmproxy::test {

QByteArray chatBody(const QByteArray &content, const QByteArray &model) {
    return QByteArrayLiteral("{\"model\":\"") + model +
           QByteArrayLiteral("\",\"messages\":[{\"role\":\"user\",\"content\":\"") + content +
           QByteArrayLiteral("\"}]}");
}

QJsonObject jsonOf(const QByteArray &body) {
    return QJsonDocument::fromJson(body).object();
}

QString chatContent(const QByteArray &body) {
    return jsonOf(body)[u"choices"][0][u"message"][u"content"].toString();
}

TestClient::TestClient(int managers) {
    for (int i = 0; i < managers; ++i)
        m_managers.push_back(std::make_unique<QNetworkAccessManager>());
}

QNetworkReply *TestClient::send(const QByteArray &method, const QByteArray &path,
                                const QByteArray &body, const Headers &headers) {
    QNetworkRequest request(
        QUrl(QStringLiteral("http://127.0.0.1:%1").arg(m_port) + QString::fromUtf8(path)));
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    if (!body.isEmpty())
        request.setHeader(QNetworkRequest::ContentTypeHeader, QByteArray("application/json"));
    for (const auto &[name, value] : headers)
        request.setRawHeader(name, value);
    QNetworkAccessManager *manager = m_managers.at(m_next++ % m_managers.size()).get();
    return manager->sendCustomRequest(request, method, body);
}

bool TestClient::finished(QNetworkReply *reply, int ms) {
    return QTest::qWaitFor([reply] { return reply->isFinished(); }, ms);
}

int TestClient::status(QNetworkReply *reply) {
    return reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
}

int TestClient::statusOf(const QByteArray &method, const QByteArray &path, const Headers &headers) {
    QNetworkReply *reply = send(method, path, {}, headers);
    finished(reply);
    reply->deleteLater();
    return status(reply);
}

bool RawClient::connectTo(quint16 port) {
    socket.connectToHost(QHostAddress::LocalHost, port);
    return QTest::qWaitFor([&] { return socket.state() == QAbstractSocket::ConnectedState; }, 5000);
}

bool RawClient::waitFor(const std::function<bool()> &done, int ms) {
    return QTest::qWaitFor(
        [&] {
            received += socket.readAll();
            return done();
        },
        ms);
}

bool RawClient::waitClosed(int ms) {
    return waitFor([&] { return socket.state() == QAbstractSocket::UnconnectedState; }, ms);
}

void RawClient::post(const QByteArray &path, const QByteArray &body, const QByteArray &key) {
    socket.write("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key +
                 "\r\nContent-Type: application/json\r\nContent-Length: " +
                 QByteArray::number(body.size()) + "\r\n\r\n" + body);
}

} // namespace llmproxy::test
