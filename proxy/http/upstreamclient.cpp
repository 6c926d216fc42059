// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/upstreamclient.h"

#include "api/logging.h"
#include "http/upstreampacker.h"

#include <QSslSocket>
#include <QTcpSocket>

#include <algorithm>
#include <cstring>
#include <vector>

#ifdef Q_OS_UNIX
#include <cerrno>
#include <sys/socket.h>
#endif

using namespace std::chrono_literals;

namespace llmproxy {

namespace {

constexpr qint64 TlsBufferSize = 256 * 1024; // QSslSocket stops reading past this
constexpr qsizetype InputLimit = 64 * 1024;  // our own buffer of unparsed bytes
constexpr qint64 ReadChunk = 32 * 1024;      // one read() from the socket
constexpr qsizetype MaxHeadBytes = 64 * 1024;
constexpr qsizetype MaxChunkLine = 4 * 1024;
// A pooled connection idle this long is asked (MSG_PEEK) whether the upstream closed it before
// it is used again; younger ones are known alive (no upstream times out idle connections that
// fast, and one that closes on its own says so in its last answer).
constexpr auto PeekAfterIdle = 1s;

SteadyTime now() {
    return std::chrono::steady_clock::now();
}

bool isIdempotent(const QByteArray &method) {
    // RFC 9110 §9.2.2. POST and PATCH are never sent twice.
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
           method == "DELETE" || method == "TRACE";
}

// Calls f on each comma-separated element of a header value, trimmed, until f says stop.
template <typename F>
void forEachElement(QByteArrayView list, F f) {
    while (!list.isEmpty()) {
        qsizetype comma = list.indexOf(',');
        if (comma < 0)
            comma = list.size();
        if (!f(list.first(comma).trimmed()))
            return;
        list = list.sliced(std::min(comma + 1, list.size()));
    }
}

bool hasToken(QByteArrayView list, QByteArrayView token) {
    bool found = false;
    forEachElement(list, [&](QByteArrayView element) {
        found = element.compare(token, Qt::CaseInsensitive) == 0;
        return !found;
    });
    return found;
}

} // namespace

// One connection to the upstream. Its socket's signals are connected once, for its whole life,
// and go to whichever reply owns it now, or to the pool while it is idle.
//
// Plain TCP sockets are opened unbuffered: a request goes out in one write() from the caller's
// stack (no write notifier switched on and off per request), and the answer is read straight
// into the reply's own buffer. QSslSocket keeps its own buffering.
class UpstreamConnection final : public QObject {
public:
    UpstreamConnection(UpstreamClient *client, const UpstreamOrigin &origin,
                       QAbstractSocket *socket)
        : QObject(client)
        , m_client(client)
        , m_socket(socket)
        , m_key(origin.key)
        , m_tls(origin.tls) {
        socket->setParent(this);
        if (auto *ssl = qobject_cast<QSslSocket *>(socket)) {
            ssl->setReadBufferSize(TlsBufferSize);
            connect(ssl, &QSslSocket::encrypted, this, [this] { onConnected(); });
        } else {
            connect(socket, &QAbstractSocket::connected, this, [this] { onConnected(); });
        }
        connect(socket, &QIODevice::readyRead, this, [this] {
            if (m_owner)
                m_owner->onReadyRead();
            else if (!m_dead)
                m_client->dropIdle(this); // an idle connection spoke: closing, or confused
        });
        connect(socket, &QIODevice::bytesWritten, this, [this] {
            if (m_owner)
                m_owner->onProgress();
        });
        connect(socket, &QAbstractSocket::errorOccurred, this,
                [this](QAbstractSocket::SocketError error) { onError(error); });
        connect(socket, &QAbstractSocket::disconnected, this,
                [this] { onError(QAbstractSocket::RemoteHostClosedError); });
    }

    QAbstractSocket *socket() const { return m_socket; }
    const QByteArray &key() const { return m_key; }
    bool isConnected() const { return m_connected; }
    void setOwner(UpstreamReply *owner) { m_owner = owner; }
    SteadyTime idleSince() const { return m_idleSince; }
    void setIdleSince(SteadyTime t) { m_idleSince = t; }

    // Bytes Qt holds for us (never asks the kernel).
    qint64 buffered() const { return m_socket->QIODevice::bytesAvailable(); }

    // Whether a pooled connection can carry another request.
    bool looksAlive(SteadyTime t) const {
        if (m_socket->state() != QAbstractSocket::ConnectedState || buffered() > 0)
            return false;
#ifdef Q_OS_UNIX
        if (t - m_idleSince < PeekAfterIdle)
            return true;
        // The event loop may not have seen the upstream's FIN yet: ask the kernel.
        const qintptr fd = m_socket->socketDescriptor();
        if (fd < 0)
            return false;
        char byte = 0;
        const ssize_t n = ::recv(int(fd), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0)
            return false; // end of stream
        if (n > 0)
            return m_tls; // TLS has records of its own (session tickets); plain HTTP has not
        return errno == EAGAIN || errno == EWOULDBLOCK;
#else
        Q_UNUSED(t);
        return true;
#endif
    }

    // Never used again: no more signals, the socket closed, deleted from the event loop.
    void kill() {
        if (m_dead)
            return;
        m_dead = true;
        m_owner = nullptr;
        m_socket->disconnect(this);
        m_socket->abort();
        deleteLater();
    }

private:
    void onConnected() {
        m_connected = true;
        m_socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
        if (m_owner)
            m_owner->onConnected();
    }
    void onError(QAbstractSocket::SocketError error) {
        if (m_dead)
            return;
        if (!m_owner) {
            m_client->dropIdle(this);
            return;
        }
        const bool tlsFailure = error == QAbstractSocket::SslHandshakeFailedError ||
                                error == QAbstractSocket::SslInternalError ||
                                error == QAbstractSocket::SslInvalidUserDataError;
        QString reason = m_socket->errorString();
        if (error == QAbstractSocket::RemoteHostClosedError || reason.isEmpty())
            reason = QStringLiteral("the upstream closed the connection");
        m_owner->onClosed(m_connected  ? UpstreamReply::Error::Closed
                          : tlsFailure ? UpstreamReply::Error::Tls
                                       : UpstreamReply::Error::Connect,
                          reason);
    }

    UpstreamClient *m_client;
    QAbstractSocket *m_socket;
    QByteArray m_key;
    UpstreamReply *m_owner = nullptr;
    SteadyTime m_idleSince;
    bool m_tls;
    bool m_connected = false;
    bool m_dead = false;
};

// ---- UpstreamOrigin ---------------------------------------------------------------------

UpstreamOrigin UpstreamOrigin::fromUrl(const QUrl &url) {
    UpstreamOrigin origin;
    const QString scheme = url.scheme().toLower();
    if (scheme != QLatin1StringView("http") && scheme != QLatin1StringView("https"))
        return origin;
    origin.tls = scheme == QLatin1StringView("https");
    origin.host = url.host(QUrl::FullyEncoded);
    const quint16 defaultPort = origin.tls ? 443 : 80;
    origin.port = quint16(url.port(defaultPort));
    const QByteArray host = origin.host.toLatin1();
    origin.key = (origin.tls ? QByteArrayLiteral("https://") : QByteArrayLiteral("http://")) +
                 host + ':' + QByteArray::number(origin.port);
    origin.hostHeader = origin.host.contains(u':') ? '[' + host + ']' : host;
    if (origin.port != defaultPort)
        origin.hostHeader += ':' + QByteArray::number(origin.port);
    origin.basePath = url.path(QUrl::FullyEncoded).toUtf8();
    while (origin.basePath.endsWith('/'))
        origin.basePath.chop(1);
    origin.baseHasQuery = url.hasQuery();
    origin.baseQuery = url.query(QUrl::FullyEncoded).toUtf8();
    return origin;
}

// ---- UpstreamReply ----------------------------------------------------------------------

UpstreamReply::UpstreamReply(UpstreamClient *client, const UpstreamOrigin &origin,
                             UpstreamRequest request, Listener *listener)
    : m_client(client)
    , m_listener(listener)
    , m_origin(origin)
    , m_request(std::move(request)) {
    if (m_request.target.isEmpty())
        m_request.target = "/";
}

UpstreamReply::~UpstreamReply() {
    // A finished reply holds no connection and may outlive its client: touch nothing then.
    if (m_connection)
        release(false);
    if (m_active && m_client)
        m_client->deactivate(this);
    if (m_noticePending && m_client)
        m_client->forgetNotice(this);
}

void UpstreamReply::notify() {
    if (m_listener)
        m_listener->upstreamReadyRead(this);
}

HeaderList UpstreamReply::headers() const {
    HeaderList out;
    out.reserve(m_headerViews.size());
    for (const HeaderView &h : m_headerViews)
        out.emplaceBack(h.name.toByteArray(), h.value.toByteArray());
    return out;
}

void UpstreamReply::start(bool allowPooled) {
    ++m_attempts;
    m_received = false;
    m_reused = false;
    m_eof = false;
    m_in.clear();
    m_lastProgress = now();
    if (!m_origin.isValid()) {
        fail(Error::Connect, QStringLiteral("the upstream URL is not an http or https URL"));
        m_client->noticeLater(this);
        return;
    }
    if (allowPooled) {
        if (UpstreamConnection *pooled = m_client->takeIdle(m_origin, m_lastProgress)) {
            m_reused = true;
            m_firstReused = m_attempts == 1;
            m_connection = pooled;
            pooled->setOwner(this);
            sendRequest();
            return;
        }
    }
    m_connecting = true;
    m_connection = m_client->connectTo(m_origin);
    m_connection->setOwner(this);
}

void UpstreamReply::sendRequest() {
    const UpstreamRequest &r = m_request;
    const bool withLength =
        !r.body.isEmpty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
    const bool bodyInline = r.body.size() <= 16 * 1024;
    qsizetype size = r.method.size() + r.target.size() + m_origin.hostHeader.size() + 96;
    for (const auto &[name, value] : r.headers)
        size += name.size() + value.size() + 4;
    if (bodyInline)
        size += r.body.size();
    http::Packer out(size);
    out << r.method << " " << r.target << " HTTP/1.1\r\nHost: " << m_origin.hostHeader << "\r\n";
    for (const auto &[name, value] : r.headers)
        out << name << ": " << value << "\r\n";
    if (withLength)
        out << "Content-Length: " << r.body.size() << "\r\n";
    out << "\r\n";
    if (bodyInline)
        out << r.body;
    QAbstractSocket *socket = m_connection->socket();
    socket->write(out.take());
    if (!bodyInline)
        socket->write(r.body);
}

void UpstreamReply::onConnected() {
    m_connecting = false;
    m_lastProgress = now();
    sendRequest();
}

// Moves what the socket has into m_in, up to the limit. At the end of the stream (which an
// unbuffered socket reports only here, as a failed read) the connection is released.
bool UpstreamReply::fillInput() {
    if (!m_connection || m_eof)
        return false;
    const qsizetype room = InputLimit - m_in.size();
    if (room <= 0)
        return false;
    QAbstractSocket *socket = m_connection->socket();
    char buffer[ReadChunk];
    const qint64 n = socket->read(buffer, std::min<qint64>(room, ReadChunk));
    if (n > 0) {
        m_in.append(buffer, n);
        m_received = true;
        return true;
    }
    if (n < 0 || socket->state() != QAbstractSocket::ConnectedState) {
        QString reason = socket->errorString();
        if (socket->error() == QAbstractSocket::RemoteHostClosedError || reason.isEmpty())
            reason = QStringLiteral("the upstream closed the connection");
        markEof(Error::Closed, reason);
    }
    return false;
}

void UpstreamReply::markEof(Error error, const QString &reason) {
    m_eof = true;
    m_eofError = error;
    m_eofReason = reason;
    release(false);
}

void UpstreamReply::onReadyRead() {
    m_lastProgress = now();
    if (isFinished())
        return;
    // One read: an unbuffered socket says again if there is more. What a TLS socket has
    // already decrypted is taken now, as it will not say so again.
    if (fillInput()) {
        while (m_connection && m_connection->buffered() > 0 && fillInput()) {
        }
    }
    afterInput();
}

void UpstreamReply::onClosed(Error error, const QString &reason) {
    if (isFinished())
        return;
    // What Qt still holds is the end of the answer.
    if (m_connection && m_connection->buffered() > 0)
        m_in += m_connection->socket()->readAll();
    if (!m_in.isEmpty())
        m_received = true;
    markEof(error, reason);
    afterInput();
}

// After bytes or the end of the stream arrived: parse the head, retry, settle, tell.
void UpstreamReply::afterInput() {
    if (isFinished())
        return;
    if (!m_headDone) {
        if (!m_in.isEmpty() && !parseHead()) {
            notify(); // a protocol error: the listener sees isFinished()
            return;
        }
        if (!m_headDone) {
            if (!m_eof)
                return; // the head is not all here yet
            if (retryable()) {
                // A pooled connection the upstream had closed while idle: once more, on a
                // fresh one. Only for requests that may be sent twice.
                qCDebug(lcRelay) << "pooled upstream connection was closed; retrying"
                                 << m_request.method;
                start(false);
                return;
            }
            const bool silentClose = m_eofError == Error::Closed && !m_received;
            fail(m_eofError,
                 silentClose ? QStringLiteral("the upstream closed the connection before answering")
                             : m_eofReason);
            notify();
            return;
        }
    }
    if (m_eof && m_in.isEmpty() && !isFinished())
        settleEof();
    notify();
}

// Parses the status line and headers at the start of m_in. False on a protocol error.
// Hand-written loops over raw bytes: this runs once per relayed request.
bool UpstreamReply::parseHead() {
    for (;;) {
        const char *const begin = m_in.constData();
        const char *const limit = begin + m_in.size();
        // Find the empty line that ends the head (CRLF; a bare LF is accepted), noting the
        // line breaks on the way.
        QVarLengthArray<qsizetype, 32> breaks;
        qsizetype end = -1;
        qsizetype bodyStart = -1;
        for (const char *p = begin; p < limit;) {
            const auto *nl = static_cast<const char *>(std::memchr(p, '\n', size_t(limit - p)));
            if (!nl)
                break;
            const qsizetype at = nl - begin;
            const qsizetype lineStart = breaks.isEmpty() ? 0 : breaks.last() + 1;
            const qsizetype length = at - lineStart - (at > lineStart && nl[-1] == '\r' ? 1 : 0);
            if (length == 0 && !breaks.isEmpty()) {
                end = lineStart;
                bodyStart = at + 1;
                break;
            }
            breaks.append(at);
            p = nl + 1;
        }
        if (end < 0) {
            if (m_in.size() >= MaxHeadBytes) {
                fail(Error::Protocol, QStringLiteral("the upstream's answer head is too large"));
                return false;
            }
            return true; // wait for more
        }

        QByteArray head = m_in.first(end);
        m_in.remove(0, bodyStart);
        char *const h = head.data();
        // Obsolete line folding: CR LF and the whitespace after it become spaces (RFC 9112
        // §5.2), so every value is one run of bytes; the folded line joins the one before.
        QVarLengthArray<qsizetype, 32> lines; // where each line ends (its LF, or the end)
        for (const qsizetype at : std::as_const(breaks)) {
            if (at + 1 < end && (h[at + 1] == ' ' || h[at + 1] == '\t') && !lines.isEmpty()) {
                h[at] = ' ';
                if (h[at - 1] == '\r')
                    h[at - 1] = ' ';
                continue;
            }
            lines.append(at);
        }
        if (lines.isEmpty() || lines.last() != end - 1)
            lines.append(end);

        auto lineAt = [&](qsizetype i) {
            const qsizetype from = i == 0 ? 0 : lines[i - 1] + 1;
            qsizetype to = std::min(lines[i], end);
            if (to > from && h[to - 1] == '\r')
                --to;
            return QByteArrayView(h + from, to - from);
        };
        const auto isSpace = [](char c) { return c == ' ' || c == '\t'; };
        const auto trim = [&](QByteArrayView v) {
            qsizetype a = 0;
            qsizetype b = v.size();
            while (a < b && isSpace(v[a]))
                ++a;
            while (b > a && isSpace(v[b - 1]))
                --b;
            return v.sliced(a, b - a);
        };

        // "HTTP/1.1 200 OK"
        const QByteArrayView statusLine = lineAt(0);
        if (statusLine.size() < 12 || !statusLine.startsWith("HTTP/1.") || statusLine[8] != ' ' ||
            (statusLine.size() > 12 && statusLine[12] != ' ')) {
            fail(Error::Protocol, QStringLiteral("the upstream did not answer in HTTP/1.x"));
            return false;
        }
        const bool http10 = statusLine[7] == '0';
        int status = 0;
        for (int i = 9; i < 12; ++i) {
            const char c = statusLine[i];
            if (c < '0' || c > '9') {
                fail(Error::Protocol, QStringLiteral("the upstream sent a bad status line"));
                return false;
            }
            status = status * 10 + (c - '0');
        }
        if (status < 100 || status > 599) { // the only status codes there are (RFC 9110 §15)
            fail(Error::Protocol, QStringLiteral("the upstream sent a bad status line"));
            return false;
        }

        QVarLengthArray<HeaderView, 16> views;
        bool keepAlive = !http10;
        bool chunked = false;
        bool otherCoding = false;
        qint64 length = -1;
        for (qsizetype i = 1; i < lines.size(); ++i) {
            const QByteArrayView line = lineAt(i);
            if (trim(line).isEmpty())
                continue;
            const qsizetype colon = line.indexOf(':');
            if (colon <= 0) {
                fail(Error::Protocol, QStringLiteral("the upstream sent a malformed header"));
                return false;
            }
            const HeaderView header{trim(line.first(colon)), trim(line.sliced(colon + 1))};
            views.append(header);
            // How the body is framed (RFC 9112 §6.3).
            switch (header.name.size()) {
            case 10:
                if (header.name.compare("connection", Qt::CaseInsensitive) == 0) {
                    if (hasToken(header.value, "close"))
                        keepAlive = false;
                    else if (hasToken(header.value, "keep-alive"))
                        keepAlive = true;
                }
                break;
            case 17:
                if (header.name.compare("transfer-encoding", Qt::CaseInsensitive) == 0) {
                    QByteArrayView last;
                    forEachElement(header.value, [&](QByteArrayView element) {
                        last = element;
                        return true;
                    });
                    chunked = last.compare("chunked", Qt::CaseInsensitive) == 0;
                    otherCoding = !chunked;
                }
                break;
            case 14:
                if (header.name.compare("content-length", Qt::CaseInsensitive) == 0) {
                    bool ok = false;
                    qint64 n = -1;
                    forEachElement(header.value, [&](QByteArrayView element) {
                        const qint64 v = element.toLongLong(&ok);
                        ok = ok && v >= 0 && (n < 0 || v == n);
                        n = v;
                        return ok;
                    });
                    if (!ok || (length >= 0 && n != length)) {
                        fail(Error::Protocol,
                             QStringLiteral("the upstream sent a bad Content-Length"));
                        return false;
                    }
                    length = n;
                }
                break;
            default:
                break;
            }
        }

        if (status >= 100 && status < 200) {
            if (status == 101) {
                fail(Error::Protocol, QStringLiteral("the upstream switched protocols unasked"));
                return false;
            }
            continue; // an interim answer (100 Continue, 103 Early Hints): the real one follows
        }

        m_head = std::move(head); // the views point into it; it is never changed again
        m_headerViews = std::move(views);
        m_status = status;
        m_transferCoded = chunked || otherCoding;
        // Both framings at once (or Transfer-Encoding in HTTP/1.0) may be a smuggling attempt:
        // Transfer-Encoding frames this answer, and the connection is not used again (RFC 9112
        // §6.1, §6.3).
        m_keepAlive = keepAlive && !(m_transferCoded && (length >= 0 || http10));
        m_headDone = true;
        const bool noBody = m_request.method == "HEAD" || status == 204 || status == 304 ||
                            (length == 0 && !m_transferCoded);
        if (noBody) {
            m_body = Body::None;
            bodyDone();
        } else if (chunked) {
            m_body = Body::ChunkSize;
        } else if (otherCoding || length < 0) {
            m_body = Body::UntilClose;
            m_keepAlive = false;
        } else {
            m_body = Body::Length;
            m_remaining = length;
        }
        return true;
    }
}

QByteArray UpstreamReply::read(qint64 maxSize) {
    QByteArray out;
    if (!m_headDone || isFinished() || maxSize <= 0)
        return out;
    bool stalled = false;
    while (out.size() < maxSize && !isFinished()) {
        if (!decode(out, maxSize - out.size())) {
            stalled = true;
            break;
        }
    }
    if (stalled && m_eof && !isFinished())
        settleEof();
    return out;
}

// One step of body decoding; false when nothing more can be done with what has arrived.
bool UpstreamReply::decode(QByteArray &out, qint64 want) {
    if (m_in.isEmpty() && !fillInput())
        return false;
    switch (m_body) {
    case Body::None:
        return false;
    case Body::Length:
    case Body::ChunkData:
    case Body::UntilClose: {
        qint64 n = std::min<qint64>(want, m_in.size());
        if (m_body != Body::UntilClose)
            n = std::min(n, m_remaining);
        if (out.isEmpty() && n == m_in.size()) {
            out = std::exchange(m_in, QByteArray()); // the common case: no copy
        } else {
            out.append(m_in.constData(), n);
            m_in.remove(0, n);
        }
        if (m_body != Body::UntilClose) {
            m_remaining -= n;
            if (m_remaining == 0) {
                if (m_body == Body::Length)
                    bodyDone();
                else
                    m_body = Body::ChunkDataEnd;
            }
        }
        return true;
    }
    case Body::ChunkDataEnd:
        if (m_in == "\r" && !fillInput())
            return false; // the LF has not arrived yet
        if (m_in.startsWith("\r\n")) {
            m_in.remove(0, 2);
        } else if (m_in.startsWith('\n')) {
            m_in.remove(0, 1);
        } else {
            fail(Error::Protocol, QStringLiteral("the upstream sent a malformed chunk"));
            return false;
        }
        m_body = Body::ChunkSize;
        return true;
    case Body::ChunkSize:
    case Body::Trailers: {
        qsizetype nl = m_in.indexOf('\n');
        if (nl < 0) {
            if (m_in.size() > MaxChunkLine) {
                fail(Error::Protocol, QStringLiteral("the upstream sent a malformed chunk"));
                return false;
            }
            if (!fillInput())
                return false;
            return true; // looked at again, with more bytes, on the next step
        }
        QByteArrayView line(m_in.constData(), nl);
        if (line.endsWith('\r'))
            line.chop(1);
        if (m_body == Body::Trailers) {
            const bool last = line.isEmpty();
            m_in.remove(0, nl + 1);
            if (last)
                bodyDone();
            return true;
        }
        if (const qsizetype semicolon = line.indexOf(';'); semicolon >= 0)
            line.truncate(semicolon);
        line = line.trimmed();
        bool ok = false;
        const qint64 size = line.size() <= 15 ? line.toLongLong(&ok, 16) : -1;
        if (!ok || size < 0) {
            fail(Error::Protocol, QStringLiteral("the upstream sent a malformed chunk"));
            return false;
        }
        m_in.remove(0, nl + 1);
        if (size == 0) {
            m_body = Body::Trailers;
        } else {
            m_body = Body::ChunkData;
            m_remaining = size;
        }
        return true;
    }
    }
    return false;
}

// The connection is gone and what it brought is used up: the end, whole or cut short.
void UpstreamReply::settleEof() {
    if (m_body == Body::UntilClose)
        bodyDone();
    else
        fail(Error::Closed,
             QStringLiteral("the upstream closed the connection before the end of the answer"));
}

void UpstreamReply::bodyDone() {
    m_complete = true;
    if (m_connection) {
        // Reusable only if nothing is left over on it either way.
        const bool clean = m_in.isEmpty() && m_connection->buffered() == 0 &&
                           m_connection->socket()->bytesToWrite() == 0 &&
                           m_connection->socket()->state() == QAbstractSocket::ConnectedState;
        release(m_keepAlive && clean);
    }
    if (m_client)
        m_client->deactivate(this);
}

void UpstreamReply::release(bool reusable) {
    UpstreamConnection *connection = std::exchange(m_connection, nullptr);
    if (!connection)
        return;
    connection->setOwner(nullptr);
    if (reusable && m_client)
        m_client->giveBack(connection, m_lastProgress);
    else
        connection->kill();
}

void UpstreamReply::fail(Error error, const QString &message) {
    if (isFinished())
        return;
    m_error = error;
    m_errorString = message;
    m_in.clear();
    release(false);
    if (m_client)
        m_client->deactivate(this);
}

void UpstreamReply::abort() {
    fail(Error::Aborted, QStringLiteral("aborted"));
}

bool UpstreamReply::retryable() const {
    return m_reused && !m_received && m_attempts == 1 && isIdempotent(m_request.method);
}

bool UpstreamReply::timedOut(SteadyTime t) {
    if (isFinished() || !m_connection || !m_client)
        return false;
    const UpstreamTimeouts timeouts = m_client->timeouts();
    if (m_connecting) {
        if (t - m_lastProgress < timeouts.connect)
            return false;
        fail(Error::Connect,
             QStringLiteral("timed out connecting to %1:%2").arg(m_origin.host).arg(m_origin.port));
    } else {
        if (t - m_lastProgress < timeouts.silence)
            return false;
        // Unread bytes: the caller is the one holding back, not the upstream.
        if (m_headDone && (!m_in.isEmpty() || m_connection->buffered() > 0)) {
            m_lastProgress = t;
            return false;
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeouts.silence);
        fail(Error::Timeout,
             QStringLiteral("the upstream sent nothing for %1 s").arg(double(ms.count()) / 1000.0));
    }
    return true;
}

// ---- UpstreamClient ---------------------------------------------------------------------

UpstreamClient::UpstreamClient(QObject *parent)
    : QObject(parent) {
    m_sweep.setParent(this);
    connect(&m_sweep, &QTimer::timeout, this, &UpstreamClient::sweep);
    setTimeouts(m_timeouts);
}

UpstreamClient::~UpstreamClient() {
    m_sweep.stop();
    // Replies may outlive us: cut them loose from the connections that die with us.
    for (UpstreamReply *reply = m_activeHead; reply;) {
        UpstreamReply *next = reply->m_nextActive;
        if (UpstreamConnection *connection = std::exchange(reply->m_connection, nullptr))
            connection->socket()->disconnect(connection);
        reply->m_client = nullptr;
        reply->m_active = false;
        reply->m_prevActive = reply->m_nextActive = nullptr;
        if (!reply->isFinished()) {
            reply->m_error = UpstreamReply::Error::Aborted;
            reply->m_errorString = QStringLiteral("aborted");
        }
        reply = next;
    }
    m_activeHead = nullptr;
    for (UpstreamReply *reply = m_noticeHead; reply;) {
        UpstreamReply *next = reply->m_nextNotice;
        reply->m_client = nullptr;
        reply->m_noticePending = false;
        reply->m_nextNotice = nullptr;
        reply = next;
    }
    m_noticeHead = nullptr;
    for (const QList<UpstreamConnection *> &list : std::as_const(m_idle)) {
        for (UpstreamConnection *connection : list)
            connection->socket()->disconnect(connection);
    }
}

void UpstreamClient::setTimeouts(const UpstreamTimeouts &timeouts) {
    m_timeouts = timeouts;
    const auto shortest = std::min({timeouts.connect, timeouts.silence, timeouts.keepIdle});
    m_sweep.setInterval(std::clamp<std::chrono::milliseconds>(shortest / 4, 10ms, 1s));
}

void UpstreamClient::setSslConfiguration(const QSslConfiguration &configuration) {
    m_ssl = configuration;
    m_ssl->setAllowedNextProtocols({QByteArrayLiteral("http/1.1")});
}

qsizetype UpstreamClient::idleConnections() const {
    qsizetype n = 0;
    for (const QList<UpstreamConnection *> &list : m_idle)
        n += list.size();
    return n;
}

const UpstreamOrigin &UpstreamClient::origin(const QUrl &base) {
    if (m_lastBase.isEmpty() || base != m_lastBase) {
        m_lastBase = base;
        m_lastOrigin = UpstreamOrigin::fromUrl(base);
    }
    return m_lastOrigin;
}

std::unique_ptr<UpstreamReply> UpstreamClient::send(const QUrl &base, UpstreamRequest request,
                                                    UpstreamReply::Listener *listener) {
    return send(origin(base), std::move(request), listener);
}

std::unique_ptr<UpstreamReply> UpstreamClient::send(const UpstreamOrigin &origin,
                                                    UpstreamRequest request,
                                                    UpstreamReply::Listener *listener) {
    std::unique_ptr<UpstreamReply> reply(
        new UpstreamReply(this, origin, std::move(request), listener));
    activate(reply.get());
    reply->start(true);
    return reply;
}

UpstreamConnection *UpstreamClient::takeIdle(const UpstreamOrigin &origin, SteadyTime t) {
    const auto it = m_idle.find(origin.key);
    if (it == m_idle.end())
        return nullptr;
    QList<UpstreamConnection *> &list = it.value();
    while (!list.isEmpty()) {
        UpstreamConnection *connection = list.takeLast(); // the most recently used
        if (connection->looksAlive(t))
            return connection;
        connection->kill();
    }
    return nullptr;
}

UpstreamConnection *UpstreamClient::connectTo(const UpstreamOrigin &origin) {
    ++m_opened;
    if (origin.tls) {
        if (!m_ssl)
            setSslConfiguration(QSslConfiguration::defaultConfiguration());
        auto *socket = new QSslSocket;
        socket->setSslConfiguration(*m_ssl);
        auto *connection = new UpstreamConnection(this, origin, socket);
        socket->connectToHostEncrypted(origin.host, origin.port);
        return connection;
    }
    auto *socket = new QTcpSocket;
    auto *connection = new UpstreamConnection(this, origin, socket);
    socket->connectToHost(origin.host, origin.port, QIODevice::ReadWrite | QIODevice::Unbuffered);
    return connection;
}

void UpstreamClient::giveBack(UpstreamConnection *connection, SteadyTime t) {
    QList<UpstreamConnection *> &list = m_idle[connection->key()];
    if (list.size() >= m_maxIdle) {
        connection->kill();
        return;
    }
    connection->setIdleSince(t);
    list.append(connection);
    if (!m_sweep.isActive())
        m_sweep.start();
}

void UpstreamClient::dropIdle(UpstreamConnection *connection) {
    const auto it = m_idle.find(connection->key());
    if (it != m_idle.end())
        it.value().removeOne(connection);
    connection->kill();
}

void UpstreamClient::activate(UpstreamReply *reply) {
    reply->m_active = true;
    reply->m_prevActive = nullptr;
    reply->m_nextActive = m_activeHead;
    if (m_activeHead)
        m_activeHead->m_prevActive = reply;
    m_activeHead = reply;
    ++m_activeCount;
    if (!m_sweep.isActive())
        m_sweep.start();
}

void UpstreamClient::deactivate(UpstreamReply *reply) {
    if (!reply->m_active)
        return;
    reply->m_active = false;
    if (reply->m_prevActive)
        reply->m_prevActive->m_nextActive = reply->m_nextActive;
    else
        m_activeHead = reply->m_nextActive;
    if (reply->m_nextActive)
        reply->m_nextActive->m_prevActive = reply->m_prevActive;
    reply->m_prevActive = reply->m_nextActive = nullptr;
    --m_activeCount;
}

void UpstreamClient::noticeLater(UpstreamReply *reply) {
    if (reply->m_noticePending)
        return;
    reply->m_noticePending = true;
    reply->m_nextNotice = m_noticeHead;
    m_noticeHead = reply;
    if (!m_noticeQueued) {
        m_noticeQueued = true;
        QMetaObject::invokeMethod(
            this,
            [this] {
                m_noticeQueued = false;
                deliverNotices();
            },
            Qt::QueuedConnection);
    }
}

void UpstreamClient::forgetNotice(UpstreamReply *reply) {
    for (UpstreamReply **link = &m_noticeHead; *link; link = &(*link)->m_nextNotice) {
        if (*link == reply) {
            *link = reply->m_nextNotice;
            break;
        }
    }
    reply->m_nextNotice = nullptr;
    reply->m_noticePending = false;
}

void UpstreamClient::deliverNotices() {
    // A listener may delete any reply, this one included: each one leaves the list first, and
    // one deleted meanwhile takes itself out (forgetNotice).
    while (UpstreamReply *reply = m_noticeHead) {
        m_noticeHead = reply->m_nextNotice;
        reply->m_nextNotice = nullptr;
        reply->m_noticePending = false;
        reply->notify();
    }
}

void UpstreamClient::sweep() {
    const SteadyTime t = now();
    for (auto it = m_idle.begin(); it != m_idle.end();) {
        QList<UpstreamConnection *> &list = it.value();
        // Oldest first: the list is in the order the connections were given back.
        while (!list.isEmpty() && t - list.constFirst()->idleSince() >= m_timeouts.keepIdle)
            list.takeFirst()->kill();
        if (list.isEmpty())
            it = m_idle.erase(it);
        else
            ++it;
    }
    for (UpstreamReply *reply = m_activeHead; reply;) {
        UpstreamReply *next = reply->m_nextActive; // a reply that times out leaves the list
        if (reply->timedOut(t))
            noticeLater(reply);
        reply = next;
    }
    deliverNotices();
    if (!m_activeHead && m_idle.isEmpty())
        m_sweep.stop();
}

} // namespace llmproxy
