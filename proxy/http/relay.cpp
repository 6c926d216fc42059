// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/relay.h"

#include "api/logging.h"
#include "http/httpwriter.h"
#include "http/upstreamclient.h"
#include "http/upstreampacker.h"

#include <QTcpSocket>
#include <QVarLengthArray>

#include <algorithm>

#ifdef Q_OS_UNIX
#include <sys/socket.h>
#endif

namespace llmproxy {

namespace {
constexpr qint64 ClientBufferLimit = 1 << 20; // stop reading upstream past this much unsent
constexpr qint64 ReplyBufferSize = 256 * 1024;

// Bytes QUrl keeps as they are in a path or query (unreserved, sub-delims, ':', '@', '/', '?').
bool plainTargetByte(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
    case '/':
    case '?':
        return true;
    default:
        return false;
    }
}

// Writes to the client. When Qt holds nothing unsent for this socket, the bytes go straight to
// the kernel: QTcpSocket would switch its write notifier on and off (two epoll_ctl calls) and
// wait a turn of the event loop for every answer. What the kernel does not take, and anything
// while Qt still holds bytes, goes through Qt in order.
void writeToClient(QTcpSocket *socket, const QByteArray &data) {
#ifdef Q_OS_UNIX
    if (socket->bytesToWrite() == 0 && socket->state() == QAbstractSocket::ConnectedState &&
        socket->socketDescriptor() >= 0) {
        const ssize_t n = ::send(int(socket->socketDescriptor()), data.constData(),
                                 size_t(data.size()), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == data.size())
            return;
        if (n > 0) {
            socket->write(data.constData() + n, data.size() - n);
            return;
        }
        // EAGAIN, or an error Qt reports itself when it tries.
    }
#endif
    socket->write(data);
}
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

QByteArray upstreamTarget(const QUrl &base, const QByteArray &pathAndQuery) {
    return upstreamTarget(UpstreamOrigin::fromUrl(base), base, pathAndQuery);
}

QByteArray upstreamTarget(const UpstreamOrigin &origin, const QUrl &base,
                          const QByteArray &pathAndQuery) {
    if (!std::all_of(pathAndQuery.begin(), pathAndQuery.end(), plainTargetByte)) {
        // Percent-encoding and odd bytes: exactly what QUrl makes of them.
        const QUrl url = upstreamUrl(base, pathAndQuery);
        QByteArray target = url.path(QUrl::FullyEncoded).toUtf8();
        if (target.isEmpty())
            target = "/";
        if (url.hasQuery())
            target += '?' + url.query(QUrl::FullyEncoded).toUtf8();
        return target;
    }
    QByteArrayView path(pathAndQuery);
    QByteArrayView query;
    const qsizetype q = path.indexOf('?');
    if (q >= 0) {
        query = path.sliced(q + 1);
        path.truncate(q);
    }
    if (path.startsWith("/v1"))
        path = path.sliced(3);
    const QByteArrayView baseQuery = q >= 0 ? query : QByteArrayView(origin.baseQuery);
    const bool withQuery = q >= 0 || origin.baseHasQuery;
    if (origin.basePath.isEmpty() && path.isEmpty())
        path = "/";
    http::Packer out(origin.basePath.size() + path.size() + 1 + baseQuery.size());
    out << origin.basePath << path;
    if (withQuery)
        out << "?" << baseQuery;
    return out.take();
}

RelayCall::RelayCall(UpstreamClient *upstream, const QUrl &upstreamBase, RelayRequest request,
                     QTcpSocket *client, QObject *parent)
    : QObject(parent)
    , m_client(client)
    , m_keepAlive(request.keepAlive)
    , m_head(request.method == "HEAD")
    , m_anthropic(request.anthropic)
    , m_answerHeaders(std::move(request.answerHeaders))
    , m_captureUsage(request.captureUsage) {
    const UpstreamOrigin &origin = upstream->origin(upstreamBase);
    UpstreamRequest call;
    call.target = upstreamTarget(origin, upstreamBase, request.pathAndQuery);
    call.method = std::move(request.method);
    call.headers = std::move(request.headers);
    call.body = std::move(request.body);
    const bool acceptEncoding =
        std::any_of(call.headers.cbegin(), call.headers.cend(), [](const auto &header) {
            return header.first.compare("accept-encoding", Qt::CaseInsensitive) == 0;
        });
    // What the relay has always asked for when the client did not say: bodies pass through
    // untouched either way, and a client that did not ask for compression does not get it.
    if (!acceptEncoding)
        call.headers.emplaceBack(QByteArrayLiteral("Accept-Encoding"),
                                 QByteArrayLiteral("identity"));

    m_reply = upstream->send(origin, std::move(call), this);
    if (m_client) {
        connect(m_client, &QAbstractSocket::disconnected, this, [this] {
            qCDebug(lcRelay) << "client left; aborting the upstream call";
            end(false);
        });
    }
}

RelayCall::~RelayCall() = default; // the reply closes its connection if unfinished

int RelayCall::upstreamStatus() const {
    return m_reply && m_reply->hasHead() ? m_reply->status() : 0;
}

Usage RelayCall::usage() const {
    return m_completed ? m_capture.usage() : Usage();
}

QByteArray RelayCall::headBytes(qsizetype extra) {
    const int status = m_reply->status();
    const QByteArray statusLine =
        status == 200 ? QByteArrayLiteral("HTTP/1.1 200 OK\r\n") : http::statusLine(status);
    qsizetype size = statusLine.size() + 96 + extra;
    for (const auto &[name, value] : std::as_const(m_answerHeaders))
        size += name.size() + value.size() + 4;
    for (qsizetype i = 0; i < m_reply->headerCount(); ++i)
        size += m_reply->headerName(i).size() + m_reply->headerValue(i).size() + 4;
    http::Packer out(size);
    out << statusLine;
    // With Transfer-Encoding the body was de-chunked by its rules, whatever Content-Length said
    // (RFC 9112 §6.3): that Content-Length goes, and the body is framed anew below.
    const bool transferCoded = m_reply->transferCoded();
    bool hasLength = false;
    bool hasDate = false;
    for (qsizetype i = 0; i < m_reply->headerCount(); ++i) {
        const QByteArrayView name = m_reply->headerName(i);
        QVarLengthArray<char, 64> lower(name.size());
        std::transform(name.begin(), name.end(), lower.begin(),
                       [](char c) { return c >= 'A' && c <= 'Z' ? char(c + ('a' - 'A')) : c; });
        const QByteArrayView lowerName(lower.constData(), lower.size());
        if (http::isHopByHop(lowerName) || !isHeaderName(name))
            continue;
        if (lowerName.startsWith("access-control-"))
            continue; // CORS is the proxy's to answer (m_answerHeaders)
        if (lowerName == "content-length") {
            if (transferCoded)
                continue;
            hasLength = true;
        }
        if (lowerName == "date")
            hasDate = true;
        const QByteArrayView value = m_reply->headerValue(i);
        if (isSafeHeaderValue(value)) {
            out << name << ": " << value << "\r\n";
        } else {
            // A bare CR or a NUL would end the line for some clients: RFC 9110 §5.5 has a
            // forwarding recipient replace each with a space.
            QByteArray cleaned = value.toByteArray();
            std::replace_if(
                cleaned.begin(), cleaned.end(),
                [](char c) { return c == '\r' || c == '\n' || c == '\0'; }, ' ');
            out << name << ": " << cleaned << "\r\n";
        }
    }
    for (const auto &[name, value] : std::as_const(m_answerHeaders))
        out << name << ": " << value << "\r\n";
    if (!hasDate) // a recipient with a clock adds one (RFC 9110 §6.6.1)
        out << "Date: " << http::currentDate() << "\r\n";
    if (m_captureUsage) {
        bool eventStream = false;
        bool identity = true;
        for (qsizetype i = 0; i < m_reply->headerCount(); ++i) {
            const QByteArrayView name = m_reply->headerName(i);
            const QByteArray value = m_reply->headerValue(i).toByteArray().trimmed().toLower();
            if (name.compare("content-type", Qt::CaseInsensitive) == 0)
                eventStream = value.startsWith("text/event-stream");
            else if (name.compare("content-encoding", Qt::CaseInsensitive) == 0)
                identity = value.isEmpty() || value == "identity";
        }
        m_capture.start(eventStream, identity && status >= 200 && status < 300, m_anthropic);
    }
    const bool noBody = m_head || status == 204 || status == 304 || (status >= 100 && status < 200);
    m_chunked = !hasLength && !noBody;
    if (m_chunked)
        out << "Transfer-Encoding: chunked\r\n";
    if (!m_keepAlive)
        out << "Connection: close\r\n";
    out << "\r\n";
    return out.take();
}

void RelayCall::pump() {
    if (m_done)
        return;
    if (!m_client) {
        end(false);
        return;
    }
    if (!m_reply->hasHead()) {
        if (m_reply->isFinished())
            unreachable();
        return;
    }
    QByteArray out;
    if (!m_headWritten) {
        // The head and the first of the body go out in one write: the usual small answer is
        // all here already.
        m_headWritten = true;
        const QByteArray first = m_reply->read(ReplyBufferSize);
        out = headBytes(first.size() + 16);
        if (m_captureUsage)
            m_capture.append(first);
        if (!m_head && !first.isEmpty())
            out += m_chunked ? http::chunk(first) : first;
    }
    bool full = false;
    for (;;) {
        if (m_client->bytesToWrite() + out.size() >= ClientBufferLimit) {
            full = true;
            break;
        }
        const QByteArray data = m_reply->read(ReplyBufferSize);
        if (data.isEmpty())
            break;
        if (m_head)
            continue;
        if (m_captureUsage)
            m_capture.append(data);
        if (m_chunked)
            out += http::chunk(data);
        else if (out.isEmpty())
            out = data;
        else
            out += data;
    }
    const bool finished = m_reply->isFinished();
    if (finished && m_reply->error() == UpstreamReply::Error::None && m_chunked)
        out += http::lastChunk();
    if (!out.isEmpty())
        writeToClient(m_client, out);
    if (finished) {
        complete();
        return;
    }
    if (!full)
        return; // the upstream's next bytes will call again
    if (m_client->bytesToWrite() == 0) {
        // The kernel took it all: go on from the event loop (other clients get their turn).
        QMetaObject::invokeMethod(this, &RelayCall::pump, Qt::QueuedConnection);
    } else if (!m_watchingWrites) {
        // Held back by a slow client: go on as it takes what Qt holds for it.
        m_watchingWrites = true;
        connect(m_client, &QIODevice::bytesWritten, this, &RelayCall::pump);
    }
}

void RelayCall::unreachable() {
    // No HTTP answer at all: the upstream is unreachable.
    const QString reason = m_reply->errorString();
    qCWarning(lcRelay).noquote() << "upstream unreachable:" << reason;
    HttpAnswer answer =
        errorAnswer(502, QStringLiteral("llm-proxy could not reach the upstream API: ") + reason,
                    ErrorType::Server, "upstream_unreachable");
    if (m_anthropic)
        answer = asAnthropicError(answer);
    writeToClient(m_client, http::serialize(answer, m_keepAlive, m_head));
    end(m_keepAlive);
}

void RelayCall::complete() {
    // HTTP error statuses are whole answers; a transport error cut the body short, and a body
    // cut short cannot be framed as complete: the client's connection is closed.
    const bool whole = m_reply->error() == UpstreamReply::Error::None;
    m_completed = whole;
    if (!whole)
        qCWarning(lcRelay).noquote() << "upstream answer cut short:" << m_reply->errorString();
    end(whole && m_keepAlive);
}

void RelayCall::end(bool reusable) {
    if (m_done)
        return;
    m_done = true;
    // Signals that still come (from the reply, or the client's socket) find m_done set; our
    // connections go when this object does, soon after finished().
    m_reply->setListener(nullptr);
    if (!m_reply->isFinished())
        m_reply->abort(); // its connection is closed now; the reply goes with this object
    if (m_client && !reusable)
        m_client->disconnectFromHost();
    Q_EMIT finished(reusable);
}

} // namespace llmproxy
