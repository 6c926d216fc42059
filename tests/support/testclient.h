// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Client-side helpers the proxy's tests share: HTTP calls through several
// QNetworkAccessManagers (one allows only six connections per host, and held requests keep
// theirs), raw sockets for what QNAM cannot send, and small JSON accessors.

#include <QByteArray>
#include <QJsonObject>
#include <QList>
#include <QNetworkAccessManager>
#include <QPair>
#include <QTcpSocket>

#include <functional>
#include <memory>
#include <vector>

class QNetworkReply;

namespace llmproxy::test {

using Headers = QList<QPair<QByteArray, QByteArray>>;
inline const Headers KeyA{{"Authorization", "Bearer sk-test-key-aaaa"}};
inline const Headers KeyB{{"Authorization", "Bearer sk-test-key-bbbb"}};

QByteArray chatBody(const QByteArray &content, const QByteArray &model = "gpt-4o-mini");
QJsonObject jsonOf(const QByteArray &body);
QString chatContent(const QByteArray &body);

class TestClient {
public:
    explicit TestClient(int managers = 6);
    void setPort(quint16 port) { m_port = port; }
    quint16 port() const { return m_port; }
    QNetworkReply *send(const QByteArray &method, const QByteArray &path, const QByteArray &body,
                        const Headers &headers = KeyA);
    static bool finished(QNetworkReply *reply, int ms = 10'000);
    static int status(QNetworkReply *reply);
    // Sends a request without a body, waits for its answer and returns its status (0: none).
    int statusOf(const QByteArray &method, const QByteArray &path, const Headers &headers);

private:
    std::vector<std::unique_ptr<QNetworkAccessManager>> m_managers;
    size_t m_next = 0;
    quint16 m_port = 0;
};

// Sends raw bytes on its own connection and collects what comes back.
struct RawClient {
    QTcpSocket socket;
    QByteArray received;
    bool connectTo(quint16 port);
    bool waitFor(const std::function<bool()> &done, int ms = 5000);
    bool waitClosed(int ms = 5000);
    // A complete POST of `body` to `path` with the given Authorization key.
    void post(const QByteArray &path, const QByteArray &body,
              const QByteArray &key = "sk-test-key-aaaa");
};

} // namespace llmproxy::test
