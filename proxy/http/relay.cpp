// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/relay.h"

#include "api/logging.h"
#include "http/httpwriter.h"

#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QTcpSocket>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
constexpr qint64 ClientBufferLimit = 1 << 20; // stop reading upstream past this much unsent
constexpr qint64 ReplyBufferSize = 256 * 1024;
} // namespace

QUrl upstreamUrl(const QUrl &base, const QByteArray &pathAndQuery) {
    QByteArray path = pathAndQuery;
    QByteArray query;
    if (const qsizetype q = path.indexOf('?'); q >= 0) {
        query = path.mid(q + 1);
        path.truncate(q);
    }
    if (path.startsWith("/v1"))
        path.remove(0, 3);
    QByteArray basePath = base.path(QUrl::FullyEncoded).toUtf8();
    while (basePath.endsWith('/'))
        basePath.chop(1);
    QUrl url = base;
    url.setPath(QString::fromUtf8(basePath + path), QUrl::TolerantMode);
    if (!query.isEmpty() || pathAndQuery.contains('?'))
        url.setQuery(QString::fromUtf8(query), QUrl::TolerantMode);
    return url;
}

RelayCall::RelayCall(QNetworkAccessManager *nam, const QUrl &upstreamBase, RelayRequest request,
                     QTcpSocket *client, QObject *parent)
    : QObject(parent)
    , m_client(client)
    , m_keepAlive(request.keepAlive)
    , m_head(request.method == "HEAD") {
    QNetworkRequest upstream(upstreamUrl(upstreamBase, request.pathAndQuery));
    bool acceptEncoding = false;
    for (const auto &[name, value] : std::as_const(request.headers)) {
        upstream.setRawHeader(name, value);
        if (name.compare("accept-encoding", Qt::CaseInsensitive) == 0)
            acceptEncoding = true;
    }
    // Pass bodies through untouched: without this QNAM would ask for gzip and inflate it.
    if (!acceptEncoding)
        upstream.setRawHeader("Accept-Encoding", "identity");
    upstream.setAttribute(QNetworkRequest::RedirectPolicyAttribute,
                          QNetworkRequest::ManualRedirectPolicy);
    // HTTP/2 ignores the read buffer limit in Qt 6.4, which would defeat back-pressure.
    upstream.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    upstream.setAttribute(QNetworkRequest::CacheLoadControlAttribute,
                          QNetworkRequest::AlwaysNetwork);
    upstream.setAttribute(QNetworkRequest::CacheSaveControlAttribute, false);
    upstream.setTransferTimeout(int(
        std::chrono::milliseconds(10min).count())); // silence this long means the upstream is gone

    m_reply = nam->sendCustomRequest(upstream, request.method, request.body);
    m_reply->setParent(this);
    m_reply->setReadBufferSize(ReplyBufferSize);
    connect(m_reply, &QNetworkReply::metaDataChanged, this, &RelayCall::onMetaData);
    connect(m_reply, &QNetworkReply::readyRead, this, &RelayCall::pump);
    connect(m_reply, &QNetworkReply::finished, this, &RelayCall::onReplyFinished);
    if (m_client) {
        connect(m_client, &QIODevice::bytesWritten, this, &RelayCall::pump);
        connect(m_client, &QAbstractSocket::disconnected, this, [this] {
            qCDebug(lcRelay) << "client left; aborting the upstream call";
            end(false);
        });
    }
}

RelayCall::~RelayCall() {
    if (m_reply) {
        m_reply->disconnect(this);
        m_reply->abort();
    }
}

void RelayCall::onMetaData() {
    // Re-apply: for requests with a body the first call comes too early to take effect.
    m_reply->setReadBufferSize(ReplyBufferSize);
}

void RelayCall::writeHead() {
    if (m_headWritten || !m_client)
        return;
    m_headWritten = true;
    const int status = m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    QByteArray head = http::statusLine(status);
    bool hasLength = false;
    for (const auto &[name, value] : m_reply->rawHeaderPairs()) {
        const QByteArray lower = name.toLower();
        if (http::isHopByHop(lower))
            continue;
        if (lower == "content-length")
            hasLength = true;
        head += name + QByteArrayLiteral(": ") + value + QByteArrayLiteral("\r\n");
    }
    const bool noBody = m_head || status == 204 || status == 304 || (status >= 100 && status < 200);
    m_chunked = !hasLength && !noBody;
    if (m_chunked)
        head += QByteArrayLiteral("Transfer-Encoding: chunked\r\n");
    if (!m_keepAlive)
        head += QByteArrayLiteral("Connection: close\r\n");
    head += QByteArrayLiteral("\r\n");
    m_client->write(head);
}

void RelayCall::pump() {
    if (m_done || !m_reply)
        return;
    if (!m_client) {
        end(false);
        return;
    }
    if (m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).isValid())
        writeHead();
    if (!m_headWritten)
        return;
    while (m_client->bytesToWrite() < ClientBufferLimit && m_reply->bytesAvailable() > 0) {
        const QByteArray data = m_reply->read(ReplyBufferSize);
        if (data.isEmpty())
            break;
        if (!m_head)
            m_client->write(m_chunked ? http::chunk(data) : data);
    }
    if (m_upstreamFinished && m_reply->bytesAvailable() == 0)
        complete();
}

void RelayCall::onReplyFinished() {
    if (m_done)
        return;
    m_upstreamFinished = true;
    if (!m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).isValid()) {
        // No HTTP answer at all: the upstream is unreachable.
        const QString reason = m_reply->errorString();
        qCWarning(lcRelay).noquote() << "upstream unreachable:" << reason;
        if (m_client) {
            const HttpAnswer answer = errorAnswer(
                502, QStringLiteral("llm-proxy could not reach the upstream API: ") + reason,
                ErrorType::Server, "upstream_unreachable");
            m_client->write(http::serialize(answer, m_keepAlive, m_head));
        }
        end(m_keepAlive);
        return;
    }
    pump(); // drains what is left at the client's pace, then completes
}

void RelayCall::complete() {
    const int error = m_reply->error();
    // HTTP error statuses are complete answers; transport errors cut the body short.
    const bool whole = error == QNetworkReply::NoError || (error >= 201 && error < 300) ||
                       (error >= 401 && error < 500);
    if (whole && m_chunked)
        m_client->write(http::lastChunk());
    // A body cut short upstream cannot be framed as complete: close the connection.
    end(whole && m_keepAlive);
}

void RelayCall::end(bool reusable) {
    if (m_done)
        return;
    m_done = true;
    if (m_reply) {
        m_reply->disconnect(this);
        if (m_reply->isRunning())
            m_reply->abort();
        m_reply->deleteLater();
        m_reply = nullptr;
    }
    if (m_client) {
        m_client->disconnect(this);
        if (!reusable)
            m_client->disconnectFromHost();
    }
    Q_EMIT finished(reusable);
}

} // namespace llmproxy
