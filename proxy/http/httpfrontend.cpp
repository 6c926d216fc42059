// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/httpfrontend.h"

#include "accounting/ledger.h"
#include "api/json.h"
#include "api/logging.h"
#include "batch/batchcore.h"
#include "http/frontdoor.h"
#include "http/httpwriter.h"
#include "http/relay.h"
#include "http/upstreamclient.h"
#include "stats/metrics.h"
#include "stats/stats.h"

#include <QCryptographicHash>
#include <QHttpServerRequest>
#include <QTcpServer>
#include <QTcpSocket>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {

constexpr qint64 MaxDrainBytes = 256LL * 1024 * 1024;

// The client's Cache-Control request directives for the answer cache: no-cache asks for a new
// answer; no-store also keeps this one out of the cache (RFC 9111, 5.2.1).
void applyCacheControl(const QHttpServerRequest &request, BatchRequest &batched) {
    for (const auto &[name, value] : request.headers()) {
        if (name.compare("cache-control", Qt::CaseInsensitive) != 0)
            continue;
        for (const QByteArray &part : value.split(',')) {
            const QByteArray directive = part.trimmed().toLower();
            const qsizetype equals = directive.indexOf('=');
            const QByteArray word = equals < 0 ? directive : directive.left(equals).trimmed();
            if (word == "no-cache") {
                batched.cacheRead = false;
            } else if (word == "no-store") {
                batched.cacheRead = false;
                batched.cacheWrite = false;
            }
        }
    }
}

constexpr QByteArrayView BatchedEndpoints[] = {
    "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses", "/v1/moderations",
};

// A QTcpServer that lets the front end see each socket before QtHttpServer connects to it, so
// our readyRead handler runs first (the gate) and our own disconnected handler is in place.
//
// Two costs of QtHttpServer 6.4 grow with the number of open connections, and this class
// removes both (the scale issue; pinned by tst_integration's accept test):
// - its new-connection slot calls QObject::sender(), which walks every connection made to the
//   HTTP server; each socket adds one in front of the listener's, so accepting N connections
//   was quadratic. `beforeQueue` re-binds the listener just before each new connection is
//   queued, which puts its connection first again.
// - sockets are children of the listener, so deleting one searches all its siblings. Ours
//   have no parent: the front end owns them (and deletes what is left when it goes).
class GatedTcpServer final : public QTcpServer {
public:
    GatedTcpServer(std::function<bool(QTcpSocket *)> onSocket,
                   std::function<void(QTcpServer *)> beforeQueue, QObject *parent)
        : QTcpServer(parent)
        , m_onSocket(std::move(onSocket))
        , m_beforeQueue(std::move(beforeQueue)) {}

protected:
    void incomingConnection(qintptr descriptor) override {
        auto *socket = new QTcpSocket;
        if (!socket->setSocketDescriptor(descriptor)) {
            delete socket;
            return;
        }
        if (!m_onSocket(socket))
            return; // turned away: the front end answers and closes it
        if (m_beforeQueue)
            m_beforeQueue(this);
        addPendingConnection(socket);
    }

private:
    std::function<bool(QTcpSocket *)> m_onSocket;
    std::function<void(QTcpServer *)> m_beforeQueue;
};

QByteArray methodName(QHttpServerRequest::Method method) {
    switch (method) {
    case QHttpServerRequest::Method::Get:
        return "GET";
    case QHttpServerRequest::Method::Put:
        return "PUT";
    case QHttpServerRequest::Method::Delete:
        return "DELETE";
    case QHttpServerRequest::Method::Post:
        return "POST";
    case QHttpServerRequest::Method::Head:
        return "HEAD";
    case QHttpServerRequest::Method::Options:
        return "OPTIONS";
    case QHttpServerRequest::Method::Patch:
        return "PATCH";
    default:
        return {};
    }
}

QByteArray bearerToken(const QByteArray &authorization) {
    const QByteArray value = authorization.trimmed();
    if (value.size() > 7 && value.first(7).compare("bearer ", Qt::CaseInsensitive) == 0)
        return value.sliced(7).trimmed();
    return {};
}

QByteArray kindName(std::optional<json::Kind> kind) {
    if (!kind)
        return "nothing";
    switch (*kind) {
    case json::Kind::Object:
        return "an object";
    case json::Kind::Array:
        return "an array";
    case json::Kind::String:
        return "a string";
    case json::Kind::Number:
        return "a number";
    case json::Kind::True:
    case json::Kind::False:
        return "a boolean";
    case json::Kind::Null:
        return "null";
    }
    return "something else";
}

// How many inputs an embeddings request carries (the provider caps a batch at 50,000).
int embeddingInputs(const QList<json::Member> &members) {
    const json::Member *input = json::find(members, "input");
    if (!input || input->kind != json::Kind::Array)
        return 1;
    // An array of token ids is one input; an array of strings or of token arrays is many.
    const QByteArrayView inner = input->value.sliced(1).trimmed();
    if (!inner.isEmpty() &&
        (inner.front() == '-' || (inner.front() >= '0' && inner.front() <= '9')))
        return 1;
    return int(std::max<qsizetype>(1, json::arrayLength(input->value).value_or(1)));
}

// No key from the client and none configured: the same 401 on every path.
HttpAnswer missingKeyAnswer() {
    return errorAnswer(401,
                       QStringLiteral("You didn't provide an API key. Send it as "
                                      "'Authorization: Bearer YOUR_KEY', or start llm-proxy "
                                      "with OPENAI_API_KEY set."),
                       ErrorType::InvalidRequest, "invalid_api_key");
}

// A proxy token was missing or wrong.
HttpAnswer badTokenAnswer() {
    return errorAnswer(401,
                       QStringLiteral("Incorrect or missing proxy token. This llm-proxy needs one "
                                      "of its tokens as 'Authorization: Bearer TOKEN' (or "
                                      "'x-api-key: TOKEN'); a provider key of your own goes in "
                                      "'X-Provider-Authorization: Bearer KEY'."),
                       ErrorType::InvalidRequest, "invalid_api_key");
}

// The endpoints whose streams the proxy can replay from a finished body.
std::optional<sse::Endpoint> replayEndpoint(QByteArrayView path) {
    if (path == "/v1/chat/completions")
        return sse::Endpoint::ChatCompletions;
    if (path == "/v1/completions")
        return sse::Endpoint::Completions;
    if (path == "/v1/responses")
        return sse::Endpoint::Responses;
    return std::nullopt;
}

bool isLoopbackPeer(const QHostAddress &address) {
    bool mapped = false;
    const quint32 v4 = address.toIPv4Address(&mapped);
    if (mapped)
        return QHostAddress(v4).isLoopback();
    return address.isLoopback();
}

} // namespace

bool isBatchedEndpoint(QByteArrayView path) {
    for (QByteArrayView endpoint : BatchedEndpoints) {
        if (endpoint == path)
            return true;
    }
    return false;
}

HttpFrontEnd::HttpFrontEnd(BatchCore *core, Stats *stats, const Clock *clock,
                           const FrontEndSettings &settings, QObject *parent)
    : QAbstractHttpServer(parent)
    , m_core(core)
    , m_stats(stats)
    , m_upstream(new UpstreamClient(this))
    , m_clock(clock)
    , m_settings(settings)
    , m_streams(new http::StreamWaiter(clock, stats, this)) {
    m_streams->setKeepAliveInterval(m_settings.streamKeepAlive);
    if (!m_settings.limiter) {
        m_settings.limiter = std::make_shared<http::ConnectionLimiter>(
            m_settings.limits.maxConnections, m_settings.limits.maxConnectionsPerIp);
    }
    m_sweep.setInterval(
        m_settings.sweepInterval > 0ms
            ? m_settings.sweepInterval
            : std::max<std::chrono::milliseconds>(
                  std::min<std::chrono::milliseconds>({m_settings.idleTimeout / 4, 1s}), 50ms));
    connect(&m_sweep, &QTimer::timeout, this, &HttpFrontEnd::sweepIdle);
    m_sweep.start();
}

HttpFrontEnd::~HttpFrontEnd() {
    // The sockets have no parent (see GatedTcpServer): delete those still open.
    QList<QTcpSocket *> open;
    for (const auto &[socket, connection] : m_connections)
        open.append(socket);
    for (QTcpSocket *socket : std::as_const(open)) {
        socket->disconnect(this);
        delete socket;
    }
}

bool HttpFrontEnd::listenOn(const QList<ListenAddress> &addresses, QString *error) {
    QList<GatedTcpServer *> servers;
    for (const ListenAddress &address : addresses) {
        auto *server =
            new GatedTcpServer([this](QTcpSocket *socket) { return acceptSocket(socket); },
                               [this](QTcpServer *listener) { putListenerFirst(listener); }, this);
        server->setListenBacklogSize(4096); // the kernel caps it at net.core.somaxconn
        // Port 0 on several addresses: share the port the first one got.
        const quint16 port = (address.port == 0 && !servers.isEmpty())
                                 ? servers.constFirst()->serverPort()
                                 : address.port;
        if (!server->listen(address.address, port)) {
            if (error) {
                *error = QStringLiteral("cannot listen on %1 port %2: %3")
                             .arg(address.address.toString())
                             .arg(port)
                             .arg(server->errorString());
            }
            delete server;
            qDeleteAll(servers);
            return false;
        }
        servers.append(server);
    }
    for (GatedTcpServer *server : std::as_const(servers))
        bind(server);
    return true;
}

bool HttpFrontEnd::rebind(const QList<ListenAddress> &addresses, QString *error) {
    QList<ListenAddress> previous;
    const QList<QTcpServer *> old = servers();
    for (QTcpServer *server : old) {
        previous.append({server->serverAddress(), server->serverPort()});
        server->close();
    }
    if (listenOn(addresses, error)) {
        qDeleteAll(old);
        return true;
    }
    // Keep serving where we were.
    for (qsizetype i = 0; i < old.size(); ++i)
        old.at(i)->listen(previous.at(i).address, previous.at(i).port);
    return false;
}

QList<qintptr> HttpFrontEnd::listeningDescriptors() const {
    QList<qintptr> out;
    for (const QTcpServer *server : servers()) {
        if (server->isListening())
            out.append(server->socketDescriptor());
    }
    return out;
}

bool HttpFrontEnd::shareListeners(const QList<qintptr> &descriptors, QString *error) {
    const QList<QTcpServer *> old = this->servers(); // before ours join them
    QList<GatedTcpServer *> servers;
    for (const qintptr descriptor : descriptors) {
        auto *server =
            new GatedTcpServer([this](QTcpSocket *socket) { return acceptSocket(socket); },
                               [this](QTcpServer *listener) { putListenerFirst(listener); }, this);
        const int copy = ::fcntl(int(descriptor), F_DUPFD_CLOEXEC, 0);
        if (copy < 0 || !server->setSocketDescriptor(copy)) {
            if (error) {
                *error = QStringLiteral("cannot share listening socket %1: %2")
                             .arg(descriptor)
                             .arg(copy < 0 ? QString::fromLocal8Bit(std::strerror(errno))
                                           : server->errorString());
            }
            if (copy >= 0 && server->socketDescriptor() != copy)
                ::close(copy);
            delete server;
            qDeleteAll(servers);
            return false;
        }
        servers.append(server);
    }
    for (QTcpServer *server : old) {
        server->close();
        delete server;
    }
    for (GatedTcpServer *server : std::as_const(servers))
        bind(server);
    return true;
}

void HttpFrontEnd::stopListening() {
    const QList<QTcpServer *> old = servers();
    for (QTcpServer *server : old)
        server->close();
    qDeleteAll(old);
}

void HttpFrontEnd::setIndex(int index) {
    Q_ASSERT(index >= 0 && index <= 0xffff);
    m_nextRequestId = (quint64(index) << 48) + 1;
    m_answerRouted = false;
}

QList<ListenAddress> HttpFrontEnd::boundAddresses() const {
    QList<ListenAddress> out;
    for (const QTcpServer *server : servers()) {
        if (server->isListening())
            out.append({server->serverAddress(), server->serverPort()});
    }
    return out;
}

QList<quint16> HttpFrontEnd::ports() const {
    QList<quint16> ports;
    for (const QTcpServer *server : servers())
        ports.append(server->serverPort());
    return ports;
}

void HttpFrontEnd::setSettings(const FrontEndSettings &settings) {
    const std::shared_ptr<http::ConnectionLimiter> limiter = m_settings.limiter;
    m_settings = settings;
    if (!m_settings.limiter) {
        m_settings.limiter = limiter; // keeps counting the connections open now
        m_settings.limiter->setLimits(m_settings.limits.maxConnections,
                                      m_settings.limits.maxConnectionsPerIp);
    }
    m_streams->setKeepAliveInterval(m_settings.streamKeepAlive);
}

void HttpFrontEnd::putListenerFirst(QTcpServer *listener) {
    // See GatedTcpServer: a fresh connection is prepended to our senders list, so the
    // sender() lookup in QtHttpServer's slot finds it at once instead of after every socket's.
    QObject::disconnect(listener, &QTcpServer::pendingConnectionAvailable, this, nullptr);
    bind(listener);
}

bool HttpFrontEnd::acceptSocket(QTcpSocket *socket) {
    const QHostAddress peer = socket->peerAddress();
    const http::ConnectionLimiter::Verdict admitted = m_settings.limiter->acquire(peer);
    if (admitted != http::ConnectionLimiter::Verdict::Accepted) {
        turnAway(socket, admitted);
        return false;
    }
    http::GateLimits limits;
    limits.maxBody = m_settings.maxBody;
    auto [it, inserted] = m_connections.try_emplace(socket, limits);
    Connection &connection = it->second;
    connection.peer = peer;
    connection.counted = true;
    connection.lastActivity = connection.accepted = connection.freeSince = m_clock->now();
    // Context `socket`, not `this`: refuse() disconnects QtHttpServer's handler by receiver.
    // Connected before QtHttpServer's own handler, so it runs first on every readyRead.
    connect(socket, &QIODevice::readyRead, socket, [this, socket] { onGateReadyRead(socket); });
    connect(socket, &QIODevice::bytesWritten, socket, [this, socket] {
        const auto conn = m_connections.find(socket);
        if (conn != m_connections.end() && !conn->second.busy && conn->second.waiting() > 0 &&
            socket->bytesToWrite() <= m_settings.limits.maxOutputBuffer)
            kick(socket, conn->second);
    });
    connect(socket, &QAbstractSocket::disconnected, socket, [this, socket] {
        const auto conn = m_connections.find(socket);
        if (conn == m_connections.end())
            return;
        // What was read ahead is never handled; what is held is cancelled (at most one
        // request per connection is ever handed on: see Connection).
        conn->second.pending = QByteArray();
        conn->second.ends.clear();
        conn->second.head = 0;
        if (conn->second.heldRequest == 0)
            return;
        const quint64 id = std::exchange(conn->second.heldRequest, 0);
        m_held.erase(id);
        m_streams->forget(id);
        qCDebug(lcHttp) << "client of request" << id << "hung up";
        QMetaObject::invokeMethod(m_core, [core = m_core, id] { core->cancel(id); });
    });
    connect(socket, &QObject::destroyed, this, [this, socket] {
        const auto conn = m_connections.find(socket);
        if (conn == m_connections.end())
            return;
        if (conn->second.counted)
            m_settings.limiter->release(conn->second.peer);
        m_connections.erase(conn);
    });
    return true;
}

void HttpFrontEnd::turnAway(QTcpSocket *socket, http::ConnectionLimiter::Verdict verdict) {
    const bool inAll = verdict == http::ConnectionLimiter::Verdict::TooManyInAll;
    qCInfo(lcHttp).noquote() << "turned a connection away:"
                             << (inAll ? "too many connections"
                                       : "too many connections from one address");
    socket->setParent(this); // ours until it goes (QtHttpServer never sees it)
    const QString message =
        inAll ? QStringLiteral("llm-proxy has too many open connections; retry later")
              : QStringLiteral("Too many open connections from your address; close some or "
                               "retry later");
    // The answer's shape follows the request's path: it is sent once the request line is in
    // (clients speak first), or after a short wait with what came of it. Whatever the client
    // sends is read and dropped, so that closing does not reset the connection under the
    // answer; it goes once the answer is out, or 2 s later at most.
    constexpr qsizetype RequestLineBytes = 2048;
    auto head = std::make_shared<QByteArray>();
    auto answered = std::make_shared<bool>(false);
    const auto answer = [socket, message, head, answered] {
        if (std::exchange(*answered, true))
            return;
        HttpAnswer refusal =
            isAnthropicRequestStart(*head)
                ? anthropicErrorAnswer(503, message, "overloaded_error")
                : errorAnswer(503, message, ErrorType::Server, "too_many_connections");
        *head = QByteArray();
        refusal.headers.emplaceBack("retry-after", "5");
        socket->write(http::serialize(refusal, false));
        socket->disconnectFromHost();
        QTimer::singleShot(2s, socket, [socket] {
            socket->abort();
            socket->deleteLater();
        });
    };
    connect(socket, &QIODevice::readyRead, socket, [socket, head, answered, answer] {
        if (*answered) {
            socket->skip(1 << 20);
            return;
        }
        head->append(socket->read(RequestLineBytes - head->size()));
        socket->skip(1 << 20);
        qsizetype start = 0; // blank lines before the request line are allowed
        while (start < head->size() && (head->at(start) == '\r' || head->at(start) == '\n'))
            ++start;
        if (head->size() >= RequestLineBytes || head->indexOf('\n', start) >= 0)
            answer();
    });
    connect(socket, &QAbstractSocket::disconnected, socket, &QObject::deleteLater);
    QTimer::singleShot(500ms, socket, answer);
}

qint64 HttpFrontEnd::unsentBytes() const {
    qint64 n = 0;
    for (const auto &[socket, connection] : m_connections)
        n += socket->bytesToWrite();
    return n;
}

qsizetype HttpFrontEnd::pipelined() const {
    qsizetype n = 0;
    for (const auto &[socket, connection] : m_connections)
        n += connection.waiting();
    return n;
}

void HttpFrontEnd::kick(QTcpSocket *socket, Connection &connection) {
    // The gate hands Qt a request only from inside a readyRead (Qt's handler runs right
    // after it): a queued one, as QtHttpServer does itself when bytes are left.
    if (std::exchange(connection.kicked, true))
        return;
    QMetaObject::invokeMethod(socket, &QAbstractSocket::readyRead, Qt::QueuedConnection);
}

void HttpFrontEnd::becameFree(QTcpSocket *socket) {
    const auto it = m_connections.find(socket);
    if (it == m_connections.end())
        return;
    Connection &connection = it->second;
    connection.busy = false;
    connection.lastActivity = connection.freeSince = m_clock->now();
    if ((connection.waiting() > 0 || connection.paused || connection.failure) &&
        socket->state() == QAbstractSocket::ConnectedState)
        kick(socket, connection);
}

void HttpFrontEnd::onGateReadyRead(QTcpSocket *socket) {
    const auto it = m_connections.find(socket);
    if (it == m_connections.end())
        return;
    Connection &connection = it->second;
    connection.kicked = false;
    if (connection.refused) {
        // Discard: the answer is out and the connection is closing.
        connection.drained += socket->readAll().size();
        return;
    }
    if (connection.released) {
        // Qt was handed one whole request and did not take it: it frames it differently from
        // the gate. Never guess which request the rest belongs to.
        connection.released = false;
        refuse(socket, connection, 400, QStringLiteral("Malformed request"));
        return;
    }
    // Ours (reading paused) gives the unread bytes back; Qt's holds only what Qt has read
    // already (nothing, or a request it handled without committing): it goes. A request
    // being read inside our transaction (capturing) carries on in it.
    if (socket->isTransactionStarted() && !connection.capturing) {
        if (connection.paused && connection.unreadBehind == 0)
            socket->rollbackTransaction();
        else
            socket->commitTransaction();
    }
    if (std::exchange(connection.paused, false))
        socket->setReadBufferSize(0);
    connection.unreadBehind = 0;
    takeBytes(socket, connection);
    if (connection.refused)
        return;
    const qint64 unread = socket->bytesAvailable();
    const bool released = releaseNext(socket, connection);
    // What takeBytes left unread (past the read-ahead limits) stays in the socket, which reads
    // no more from the kernel meanwhile (back-pressure). Qt must not parse it: behind a
    // request handed over now it is left alone (Qt takes one request per readyRead);
    // otherwise a transaction of ours hides it until the next readyRead rolls it back.
    if (unread > 0 && !connection.refused && socket->state() == QAbstractSocket::ConnectedState) {
        if (released) {
            connection.unreadBehind = unread;
        } else {
            socket->startTransaction();
            socket->skip(unread);
        }
        socket->setReadBufferSize(unread);
        connection.paused = true;
    }
}

void HttpFrontEnd::takeBytes(QTcpSocket *socket, Connection &connection) {
    const FrontDoorLimits &limits = m_settings.limits;
    const SteadyTime now = m_clock->now();
    // Read ahead, but not too far: past these limits the bytes are left unread.
    const qint64 maxAhead = m_settings.maxBody + 128 * 1024;
    const auto full = [&] {
        return connection.waiting() >= limits.maxPipelined ||
               (connection.waiting() > 0 && connection.pending.size() - connection.head > maxAhead);
    };
    // Frames what `bytes` holds of one message at most; notes the deadlines' times, answers
    // "Expect: 100-continue" and keeps a refusal. Returns how many bytes it framed.
    const auto frame = [&](QByteArrayView bytes, bool *ended) {
        const http::RequestGate::Stage before = connection.gate.stage();
        http::RequestGate::Verdict verdict;
        const qsizetype framed = connection.gate.feedMessage(bytes, &verdict, ended);
        const http::RequestGate::Stage after = connection.gate.stage();
        if (before == http::RequestGate::Stage::Idle && framed > 0) {
            connection.messageStart = now;
            connection.headerBytes = connection.bodyBytes = 0;
        }
        if (before == http::RequestGate::Stage::Body)
            connection.bodyBytes += framed;
        else
            connection.headerBytes += framed;
        if (before != http::RequestGate::Stage::Body && after == http::RequestGate::Stage::Body) {
            connection.bodyStart = now;
            connection.bodyBytes = 0;
        }
        if (verdict.kind == http::RequestGate::Verdict::Reject) {
            connection.failure = verdict;
            *ended = false;
        }
        if (verdict.kind == http::RequestGate::Verdict::SendContinue && connection.waiting() == 0 &&
            !connection.busy && !connection.released)
            socket->write("HTTP/1.1 100 Continue\r\n\r\n"); // never between answers
        if (*ended) {
            connection.anyRequest = true;
            ++m_framedRequests;
        }
        m_framedBytes += quint64(framed);
        return framed;
    };
    char window[16 * 1024];

    // A request that starts while nothing else of its connection is under way is read inside
    // a transaction of ours: its bytes stay in the socket and, once it is complete, a rollback
    // shows it to Qt whole, with no copy out and back (which a large body would feel).
    if (!connection.capturing && connection.ends.empty() &&
        connection.pending.size() == connection.head && !connection.busy && !connection.released &&
        !connection.failure && !connection.paused && socket->bytesAvailable() > 0 &&
        socket->bytesToWrite() <= limits.maxOutputBuffer && !socket->isTransactionStarted()) {
        connection.pending = QByteArray();
        connection.head = 0;
        socket->startTransaction();
        connection.capturing = true;
        connection.captureComplete = false;
    }
    if (connection.capturing) {
        while (!connection.captureComplete && !connection.failure && socket->bytesAvailable() > 0) {
            connection.lastActivity = now;
            const qint64 got = socket->peek(window, qint64(sizeof window));
            if (got <= 0)
                return;
            qsizetype used = 0;
            while (used < got && !connection.captureComplete && !connection.failure) {
                bool ended = false;
                const qsizetype framed = frame(QByteArrayView(window + used, got - used), &ended);
                used += framed;
                connection.captureComplete = ended;
                if (framed == 0)
                    break;
            }
            socket->skip(used); // inside the transaction: the bytes stay in the socket
        }
        return;
    }

    while (socket->bytesAvailable() > 0 && !full()) {
        if (connection.failure) {
            // Refused after what waits: nothing more of this connection is framed.
            connection.drained += socket->skip(socket->bytesAvailable());
            if (connection.drained > MaxDrainBytes)
                socket->abort();
            return;
        }
        connection.lastActivity = now;
        const qint64 got = socket->peek(window, qint64(sizeof window));
        if (got <= 0)
            return;
        qsizetype used = 0;
        while (used < got && !full() && !connection.failure) {
            bool ended = false;
            const qsizetype framed = frame(QByteArrayView(window + used, got - used), &ended);
            used += framed;
            if (ended)
                connection.ends.push_back(connection.pending.size() + used);
            if (framed == 0)
                break; // cannot happen: the gate takes at least one byte or refuses
        }
        connection.pending.append(window, used);
        socket->skip(used);
    }
}

bool HttpFrontEnd::releaseNext(QTcpSocket *socket, Connection &connection) {
    if (connection.capturing) {
        if (connection.failure) {
            // Refused: what was read of it goes with the transaction.
            connection.capturing = false;
            socket->commitTransaction();
        } else if (!connection.captureComplete ||
                   socket->state() != QAbstractSocket::ConnectedState) {
            return false;
        } else {
            // The request is complete and first in the socket: let Qt see it (and what
            // follows it, unread; Qt takes one request per readyRead).
            connection.capturing = false;
            connection.captureComplete = false;
            socket->rollbackTransaction();
            connection.released = true;
            return true;
        }
    }
    if (connection.busy || connection.released ||
        socket->state() != QAbstractSocket::ConnectedState ||
        socket->bytesToWrite() > m_settings.limits.maxOutputBuffer)
        return false;
    if (connection.ends.empty()) {
        if (connection.failure) {
            const http::RequestGate::Verdict failure = *connection.failure;
            connection.failure.reset();
            refuse(socket, connection, failure.status, failure.message);
        }
        return false;
    }
    // Hand Qt the next request, whole: put its bytes back into the socket's (now empty)
    // read buffer; Qt's readyRead handler, which runs next, parses exactly them.
    const qsizetype end = connection.ends.front();
    connection.ends.pop_front();
    const char *bytes = connection.pending.constData();
    for (qsizetype i = end - 1; i >= connection.head; --i)
        socket->ungetChar(bytes[i]);
    connection.head = end;
    connection.released = true;
    if (connection.head == connection.pending.size()) {
        connection.pending.clear();
        connection.head = 0;
        for (qsizetype &e : connection.ends)
            e = 0; // none: they all ended before head
    } else if (connection.head > 64 * 1024 && connection.head * 2 > connection.pending.size()) {
        connection.pending.remove(0, connection.head);
        for (qsizetype &e : connection.ends)
            e -= connection.head;
        connection.head = 0;
    }
    if (connection.pending.isEmpty())
        connection.pending = QByteArray(); // its allocation too: the client may wait for hours
    return true;
}

void HttpFrontEnd::checkDeadlines(QTcpSocket *socket, Connection &connection, SteadyTime now) {
    // Only while the client holds things up: not while its request is answered or read ahead.
    if (connection.refused || connection.busy || connection.released || connection.waiting() > 0 ||
        connection.paused || connection.failure)
        return;
    const FrontDoorLimits &limits = m_settings.limits;
    const auto allowance = [&limits](qint64 bytes) {
        return limits.minRate > 0 ? std::chrono::milliseconds(bytes * 1000 / limits.minRate)
                                  : std::chrono::milliseconds(0);
    };
    const http::RequestGate::Stage stage = connection.gate.stage();
    if (stage == http::RequestGate::Stage::Idle) {
        // A first request that never starts: closed, as Apache does (later ones: idleTimeout).
        if (!connection.anyRequest &&
            now - std::max(connection.accepted, connection.freeSince) > limits.headerTimeout) {
            qCInfo(lcHttp) << "closed a connection that sent no request";
            socket->abort();
        }
        return;
    }
    QString late;
    if (stage == http::RequestGate::Stage::Headers) {
        const SteadyTime start =
            std::max(connection.anyRequest ? connection.messageStart : connection.accepted,
                     connection.freeSince);
        const auto allowed = std::min(limits.headerTimeout + allowance(connection.headerBytes),
                                      std::max(limits.headerTimeout, limits.headerTimeoutMax));
        if (now - start > allowed)
            late = QStringLiteral("The request's headers did not arrive in time");
    } else {
        const SteadyTime start = std::max(connection.bodyStart, connection.freeSince);
        if (now - start > limits.bodyTimeout + allowance(connection.bodyBytes))
            late = QStringLiteral("The request's body arrived too slowly");
    }
    if (!late.isEmpty())
        refuse(socket, connection, 408, late);
}

void HttpFrontEnd::refuse(QTcpSocket *socket, Connection &connection, int status,
                          const QString &message) {
    qCInfo(lcHttp).noquote() << "refused a request:" << message;
    connection.refused = true;
    connection.capturing = connection.captureComplete = false;
    connection.pending = QByteArray();
    connection.ends.clear();
    connection.head = 0;
    // QtHttpServer must not buffer the rest of this request.
    QObject::disconnect(socket, &QIODevice::readyRead, this, nullptr);
    if (socket->isTransactionStarted())
        socket->commitTransaction();
    if (std::exchange(connection.paused, false))
        socket->setReadBufferSize(0);
    connection.drained = socket->readAll().size();
    const QByteArray code = status == 413   ? "request_too_large"
                            : status == 431 ? "request_headers_too_large"
                            : status == 414 ? "request_line_too_long"
                            : status == 408 ? "request_timeout"
                            : status == 501 ? "not_implemented"
                                            : "invalid_request";
    // Refused before Qt parsed it: the shape follows the request line, as far as it came.
    const HttpAnswer answer = errorAnswer(status, message, ErrorType::InvalidRequest, code);
    socket->write(http::serialize(
        connection.gate.anthropicTarget() ? asAnthropicError(answer) : answer, false));
    // Most clients read the answer only once they have sent the whole body: keep reading and
    // discarding (never buffering) until the client goes quiet, then close. Bounded in bytes
    // and time so a client cannot keep us busy forever.
    auto *drain = new QTimer(socket);
    const SteadyTime started = m_clock->now();
    connect(drain, &QTimer::timeout, socket, [this, socket, drain, started] {
        const auto it = m_connections.find(socket);
        const SteadyTime now = m_clock->now();
        const bool quiet = it == m_connections.end() || now - it->second.lastActivity > 500ms;
        const bool tooMuch = it != m_connections.end() && it->second.drained > MaxDrainBytes;
        if (quiet || tooMuch || now - started > 30s) {
            drain->stop();
            socket->disconnectFromHost();
            QTimer::singleShot(5s, socket, [socket] { socket->abort(); });
        }
    });
    drain->start(100ms);
}

void HttpFrontEnd::respond(QTcpSocket *socket, const HttpAnswer &given, bool keepAlive, bool head) {
    const auto it = m_connections.find(socket);
    // An Anthropic client reads the proxy's own errors in Anthropic's shape: made here, once,
    // for every error of the front door, the core and the batch job alike.
    const HttpAnswer answer =
        it != m_connections.end() && it->second.anthropic ? asAnthropicError(given) : given;
    if (it != m_connections.end() && !it->second.corsOrigin.isEmpty()) {
        // An allowed page's request: let it read the answer.
        HttpAnswer withCors = answer;
        withCors.headers.emplaceBack("access-control-allow-origin", it->second.corsOrigin);
        withCors.headers.emplaceBack("access-control-expose-headers",
                                     frontdoor::corsExposeHeaders());
        withCors.headers.emplaceBack("vary", "Origin");
        socket->write(http::serialize(withCors, keepAlive && !m_closing, head));
    } else {
        socket->write(http::serialize(answer, keepAlive && !m_closing, head));
    }
    if (it != m_connections.end())
        it->second.corsOrigin.clear();
    if (!keepAlive || m_closing)
        socket->disconnectFromHost();
    becameFree(socket); // the next request read ahead, if any, is handed on
}

bool HttpFrontEnd::handleRequest(const QHttpServerRequest &request, QTcpSocket *socket) {
    auto it = m_connections.find(socket);
    if (it == m_connections.end()) // a socket we did not create: cannot happen, but be safe
        it = m_connections.try_emplace(socket, http::GateLimits{}).first;
    Connection &connection = it->second;
    const bool keepAlive = connection.gate.takeKeepAlive();
    connection.busy = true;
    connection.lastActivity = m_clock->now();
    // Qt parsed exactly the bytes the gate handed it, or it frames requests differently: then
    // nothing after this point can be trusted.
    if (!std::exchange(connection.released, false) ||
        socket->bytesAvailable() != connection.unreadBehind) {
        connection.busy = false;
        refuse(socket, connection, 400, QStringLiteral("Malformed request"));
        return true;
    }

    const QHttpServerRequest::Method method = request.method();
    const bool head = method == QHttpServerRequest::Method::Head;
    const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();
    connection.anthropic = isAnthropicPath(path);

    if (m_closing) {
        HttpAnswer answer = errorAnswer(503, QStringLiteral("llm-proxy is shutting down"),
                                        ErrorType::Server, "shutting_down");
        answer.headers.emplaceBack("retry-after", "5");
        answer.headers.emplaceBack("x-should-retry", "true");
        respond(socket, answer, false, head);
        return true;
    }
    if (request.headers().isEmpty()) {
        // Qt 6.4 drops every header when there are too many: never treat that as anonymous.
        respond(socket,
                errorAnswer(400, QStringLiteral("The request has no headers (HTTP/1.1 needs Host)"),
                            ErrorType::InvalidRequest, "invalid_request"),
                false, head);
        return true;
    }
    if (methodName(method).isEmpty()) {
        respond(socket,
                errorAnswer(501, QStringLiteral("This HTTP method is not supported by llm-proxy"),
                            ErrorType::InvalidRequest, "method_not_supported"),
                keepAlive, head);
        return true;
    }
    Admission admission;
    if (!admit(request, socket, keepAlive, head, &admission))
        return true;
    if (path == "/healthz") {
        HttpAnswer answer;
        answer.status = m_ready ? 200 : 503;
        answer.body = m_ready ? QByteArrayLiteral("{\"status\":\"ok\"}")
                              : QByteArrayLiteral("{\"status\":\"starting\"}");
        respond(socket, answer, keepAlive, head);
        return true;
    }
    if (path == "/usage") {
        if (method != QHttpServerRequest::Method::Get && !head) {
            HttpAnswer answer = errorAnswer(405, QStringLiteral("/usage is read with GET"),
                                            ErrorType::InvalidRequest, "method_not_allowed");
            answer.headers.emplaceBack("allow", "GET, HEAD");
            respond(socket, answer, keepAlive, head);
            return true;
        }
        serveUsage(request, socket, keepAlive, head);
        return true;
    }
    if (path == "/stats") {
        HttpAnswer answer;
        answer.body =
            m_stats ? Stats::toJson(m_stats->snapshot(), m_stats->batchList(), m_stats->queues())
                    : QByteArrayLiteral("{}");
        answer.headers.emplaceBack("cache-control", "no-store");
        respond(socket, answer, keepAlive, head);
        return true;
    }
    if (path == "/metrics" && m_metrics) {
        respond(socket, metricsAnswer(), keepAlive, head);
        return true;
    }
    if (path != "/v1" && !path.startsWith("/v1/")) {
        respond(socket,
                errorAnswer(404,
                            QStringLiteral("Unknown path %1: llm-proxy serves the OpenAI API "
                                           "under /v1 (set your SDK's base URL to "
                                           "http://HOST:PORT/v1), plus /stats, /usage, "
                                           "/metrics and /healthz")
                                .arg(QString::fromUtf8(path)),
                            ErrorType::InvalidRequest, "unknown_url"),
                keepAlive, head);
        return true;
    }
    if (isAnthropicPath(path)) {
        handleAnthropic(request, socket, keepAlive, head, admission);
        return true;
    }
    if (isBatchedEndpoint(path)) {
        const bool listChat = method == QHttpServerRequest::Method::Get &&
                              path == "/v1/chat/completions"; // list stored completions
        if (method != QHttpServerRequest::Method::Post && !listChat) {
            HttpAnswer answer = errorAnswer(
                405,
                QStringLiteral("%1 is not allowed on %2 (use POST)")
                    .arg(QString::fromLatin1(methodName(method)), QString::fromUtf8(path)),
                ErrorType::InvalidRequest, "method_not_allowed");
            answer.headers.emplaceBack("allow",
                                       path == "/v1/chat/completions" ? "GET, POST" : "POST");
            respond(socket, answer, keepAlive, head);
            return true;
        }
        if (!listChat) {
            handleBatched(request, socket, keepAlive, admission);
            return true;
        }
    }
    // Not batched: relayed to the provider its path routes to (its body is not read here).
    const auto provider = routeFor(path, {});
    if (!provider) {
        refuseUnrouted(socket, keepAlive, head, path, {});
        return true;
    }
    const auto key = upstreamKey(request, *provider);
    if (!key) {
        respond(socket, missingKeyAnswer(), keepAlive, head);
        return true;
    }
    relay(request, socket, keepAlive, *key, admission.caller, *provider);
    return true;
}

std::optional<ConfiguredProvider> HttpFrontEnd::routeFor(QByteArrayView path,
                                                         QByteArrayView model) const {
    const std::optional<QByteArray> name = m_settings.router.route(path, model);
    if (!name)
        return std::nullopt;
    if (*name == DefaultProviderName) {
        // Always --upstream with the configured key, whatever the list says (settings changed
        // at run time reach it there).
        ConfiguredProvider openAi{QByteArray(DefaultProviderName),
                                  providerProfile(DefaultProviderName), m_settings.upstream,
                                  m_settings.apiKey};
        for (const ConfiguredProvider &provider : m_settings.providers) {
            if (provider.name == DefaultProviderName) {
                openAi.profile = provider.profile;
                if (openAi.apiKey.isEmpty())
                    openAi.apiKey = provider.apiKey;
            }
        }
        return openAi;
    }
    for (const ConfiguredProvider &provider : m_settings.providers) {
        if (provider.name == *name)
            return provider;
    }
    return std::nullopt;
}

void HttpFrontEnd::refuseUnrouted(QTcpSocket *socket, bool keepAlive, bool head,
                                  QByteArrayView path, QByteArrayView model) {
    respond(socket,
            errorAnswer(400, m_settings.router.unroutedMessage(path, model),
                        ErrorType::InvalidRequest, "model_not_routed",
                        model.isEmpty() ? QByteArray() : QByteArray("model")),
            keepAlive, head);
}

void HttpFrontEnd::missingHandler(const QHttpServerRequest &request, QTcpSocket *socket) {
    // handleRequest() answers everything; this is only here because Qt requires it.
    Q_UNUSED(request);
    respond(socket,
            errorAnswer(404, QStringLiteral("Not found"), ErrorType::InvalidRequest, "unknown_url"),
            false);
}

bool HttpFrontEnd::admit(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                         bool head, Admission *admission) {
    // Host: DNS rebinding pages use a name of their own, never an IP literal or localhost.
    int hosts = 0;
    QByteArray host;
    for (const auto &[name, value] : request.headers()) {
        if (name.compare("host", Qt::CaseInsensitive) == 0) {
            ++hosts;
            host = value;
        }
    }
    if (hosts > 1) {
        respond(socket,
                errorAnswer(400, QStringLiteral("The request has more than one Host header"),
                            ErrorType::InvalidRequest, "invalid_request"),
                false, head);
        return false;
    }
    if (hosts == 1 && !frontdoor::hostAllowed(host, m_settings.allowHosts)) {
        respond(socket,
                errorAnswer(421,
                            QStringLiteral("llm-proxy does not serve this Host name (a guard "
                                           "against DNS rebinding). Use an IP address or "
                                           "localhost, or start llm-proxy with --allow-host "
                                           "NAME."),
                            ErrorType::InvalidRequest, "misdirected_request"),
                keepAlive, head);
        return false;
    }
    // Origin: a web page may spend nothing unless the user allowed its origin.
    const QByteArray origin = request.value("origin").trimmed();
    switch (
        frontdoor::checkOrigin(origin, request.value("sec-fetch-site"), m_settings.allowOrigins)) {
    case frontdoor::OriginVerdict::Refused:
        qCInfo(lcHttp) << "refused a request from a web page (Origin or Sec-Fetch-Site)";
        respond(socket,
                errorAnswer(403,
                            QStringLiteral("llm-proxy refuses requests from web pages whose "
                                           "origin is not allowed. To let a local web tool call "
                                           "it, start llm-proxy with --allow-origin ORIGIN "
                                           "(example: http://localhost:5173)."),
                            ErrorType::InvalidRequest, "origin_not_allowed"),
                keepAlive, head);
        return false;
    case frontdoor::OriginVerdict::Allowed:
        admission->corsOrigin = origin;
        if (const auto it = m_connections.find(socket); it != m_connections.end())
            it->second.corsOrigin = origin;
        if (request.method() == QHttpServerRequest::Method::Options &&
            !request.value("access-control-request-method").isEmpty()) {
            // A preflight: answered here, never relayed.
            HttpAnswer answer;
            answer.status = 204;
            answer.contentType.clear();
            answer.headers.emplaceBack("access-control-allow-methods",
                                       frontdoor::corsAllowMethods());
            answer.headers.emplaceBack(
                "access-control-allow-headers",
                frontdoor::corsAllowHeaders(request.value("access-control-request-headers")));
            answer.headers.emplaceBack("access-control-max-age", "600");
            respond(socket, answer, keepAlive, head);
            return false;
        }
        break;
    case frontdoor::OriginVerdict::NotCrossSite:
        break;
    }
    // The target: nothing but a plain path leaves for the upstream.
    QByteArray target = request.url().path(QUrl::FullyEncoded).toUtf8();
    if (request.url().hasQuery())
        target += '?' + request.url().query(QUrl::FullyEncoded).toUtf8();
    if (const QString problem = frontdoor::targetProblem(target); !problem.isEmpty()) {
        respond(socket, errorAnswer(400, problem, ErrorType::InvalidRequest, "invalid_path"),
                keepAlive, head);
        return false;
    }
    // The proxy token, on everything but /healthz (which says only "ok" or "starting").
    const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();
    if (path == "/healthz")
        return true;
    if (!m_settings.tokens.isEmpty()) {
        const ProxyToken *token =
            findProxyToken(m_settings.tokens, bearerToken(request.value("authorization")));
        if (!token) // Anthropic-style clients send their key as x-api-key
            token = findProxyToken(m_settings.tokens, request.value("x-api-key").trimmed());
        if (!token) {
            qCInfo(lcHttp) << "refused a request without a valid proxy token";
            respond(socket, badTokenAnswer(), keepAlive, head);
            return false;
        }
        admission->caller = token->name;
        return true;
    }
    if ((path == "/stats" || path == "/usage" || path == "/metrics") &&
        !isLoopbackPeer(socket->peerAddress())) {
        respond(socket,
                errorAnswer(403,
                            QStringLiteral("%1 is served off this machine only to callers "
                                           "with a proxy token (start llm-proxy with "
                                           "--tokens-file FILE)")
                                .arg(QString::fromLatin1(path)),
                            ErrorType::InvalidRequest, "token_required"),
                keepAlive, head);
        return false;
    }
    return true;
}

std::optional<QByteArray> HttpFrontEnd::upstreamKey(const QHttpServerRequest &request,
                                                    const ConfiguredProvider &provider) const {
    if (!provider.apiKey.isEmpty())
        return provider.apiKey;
    // With proxy tokens, Authorization carries the token: a client's own provider key comes
    // in X-Provider-Authorization instead.
    const QByteArray token = bearerToken(
        request.value(m_settings.tokens.isEmpty() ? "authorization" : "x-provider-authorization"));
    if (token.isEmpty())
        return std::nullopt;
    return token;
}

std::optional<ConfiguredProvider> HttpFrontEnd::anthropicProviderFor(QByteArrayView path,
                                                                     QByteArrayView model) const {
    if (const auto routed = routeFor(path, model);
        routed && routed->profile && routed->profile->messagesApi)
        return routed;
    for (const ConfiguredProvider &provider : m_settings.providers) {
        if (provider.profile && provider.profile->messagesApi)
            return provider;
    }
    return std::nullopt;
}

std::optional<QByteArray> HttpFrontEnd::anthropicKey(const QHttpServerRequest &request,
                                                     const ConfiguredProvider &provider) const {
    if (!provider.apiKey.isEmpty())
        return provider.apiKey;
    // With proxy tokens, x-api-key and Authorization carry the token: a client's own key comes
    // in X-Provider-Authorization instead.
    QByteArray key;
    if (m_settings.tokens.isEmpty()) {
        key = request.value("x-api-key").trimmed();
        if (key.isEmpty())
            key = bearerToken(request.value("authorization"));
    } else {
        key = bearerToken(request.value("x-provider-authorization"));
    }
    if (key.isEmpty())
        return std::nullopt;
    return key;
}

void HttpFrontEnd::handleAnthropic(const QHttpServerRequest &request, QTcpSocket *socket,
                                   bool keepAlive, bool head, const Admission &admission) {
    const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();
    const bool batchable =
        path == AnthropicMessagesPath && request.method() == QHttpServerRequest::Method::Post;
    // Routing rules by model apply to the batched path, whose body is read here.
    QByteArray routedModel;
    if (batchable && request.body().size() <= m_settings.maxBody) {
        if (const auto members = json::objectMembers(request.body())) {
            if (const json::Member *m = json::find(*members, "model");
                m && m->kind == json::Kind::String)
                routedModel = json::stringValue(m->value).value_or(QByteArray());
        }
    }
    const auto provider = anthropicProviderFor(path, routedModel);
    if (!provider) {
        respond(socket,
                anthropicErrorAnswer(
                    404, QStringLiteral("llm-proxy has no Anthropic provider configured, so it "
                                        "cannot serve %1. Start it with --provider "
                                        "anthropic=anthropic (its key from ANTHROPIC_API_KEY, or "
                                        "each client's own in x-api-key).")
                             .arg(QString::fromUtf8(path))),
                keepAlive, head);
        return;
    }
    const auto key = anthropicKey(request, *provider);
    if (!key) {
        respond(socket,
                anthropicErrorAnswer(
                    401, m_settings.tokens.isEmpty()
                             ? QStringLiteral("No API key: send your Anthropic key as 'x-api-key: "
                                              "KEY' (or 'Authorization: Bearer KEY'), or start "
                                              "llm-proxy with ANTHROPIC_API_KEY set.")
                             : QStringLiteral("No Anthropic key: this llm-proxy has none "
                                              "configured, so send yours as "
                                              "'X-Provider-Authorization: Bearer KEY' (x-api-key "
                                              "carries the proxy token).")),
                keepAlive, head);
        return;
    }
    if (!batchable || request.value("x-batch").trimmed().toLower() == "off") {
        relay(request, socket, keepAlive, *key, admission.caller, *provider);
        return;
    }
    handleMessages(request, socket, keepAlive, admission, *provider, *key);
}

void HttpFrontEnd::handleMessages(const QHttpServerRequest &request, QTcpSocket *socket,
                                  bool keepAlive, const Admission &admission,
                                  const ConfiguredProvider &provider, const QByteArray &key) {
    const QByteArray body = request.body();
    const auto refuse400 = [&](const QString &message) {
        respond(socket, anthropicErrorAnswer(400, message), keepAlive);
    };
    if (body.size() > m_settings.maxBody) {
        respond(socket,
                anthropicErrorAnswer(413, QStringLiteral("Request body is larger than the "
                                                         "%1-byte limit")
                                              .arg(m_settings.maxBody)),
                false);
        return;
    }
    json::ScanError scanError;
    const auto members = json::objectMembers(body, &scanError);
    if (!members) {
        refuse400(body.trimmed().isEmpty() ? QStringLiteral("The request body is empty: the "
                                                            "Messages API expects a JSON object")
                  : json::isValid(body)
                      ? QStringLiteral("The request body must be a JSON object")
                      : QStringLiteral("The request body is not valid JSON: ") + scanError.message);
        return;
    }
    // We read the first `model`, `stream`, ...; the provider may read the last: never guess.
    if (const std::optional<QByteArray> twice = json::firstDuplicateKey(*members)) {
        const QByteArray name = twice->size() > 256 ? twice->first(256) + "..." : *twice;
        refuse400(QStringLiteral("The JSON body has the member '%1' more than once; each "
                                 "top-level member may appear only once.")
                      .arg(QString::fromUtf8(name)));
        return;
    }
    const json::Member *modelMember = json::find(*members, "model");
    const std::optional<QByteArray> model = modelMember && modelMember->kind == json::Kind::String
                                                ? json::stringValue(modelMember->value)
                                                : std::nullopt;
    if (!model || model->isEmpty()) {
        refuse400(!modelMember ? QStringLiteral("model: Field required")
                               : QStringLiteral("model: Input should be a non-empty string, not "
                                                "%1")
                                     .arg(QString::fromLatin1(kindName(modelMember->kind))));
        return;
    }
    if (model->size() > 256) {
        refuse400(QStringLiteral("model: at most 256 characters"));
        return;
    }
    const json::Member *maxTokens = json::find(*members, "max_tokens");
    const std::optional<qint64> maxTokensValue = maxTokens && maxTokens->kind == json::Kind::Number
                                                     ? json::integerValue(maxTokens->value)
                                                     : std::nullopt;
    if (!maxTokens) {
        refuse400(QStringLiteral("max_tokens: Field required"));
        return;
    }
    if (!maxTokensValue || *maxTokensValue < 1) {
        refuse400(QStringLiteral("max_tokens: Input should be a positive integer"));
        return;
    }
    const json::Member *messages = json::find(*members, "messages");
    if (!messages) {
        refuse400(QStringLiteral("messages: Field required"));
        return;
    }
    if (messages->kind != json::Kind::Array || json::arrayLength(messages->value).value_or(0) < 1) {
        refuse400(QStringLiteral("messages: Input should be a non-empty array"));
        return;
    }
    const json::Member *streamMember = json::find(*members, "stream");
    if (streamMember && streamMember->kind != json::Kind::True &&
        streamMember->kind != json::Kind::False) {
        refuse400(QStringLiteral("stream: Input should be a valid boolean"));
        return;
    }
    const bool streaming = streamMember && streamMember->kind == json::Kind::True;
    // The headers Anthropic keys a call by: they group the batch and go with its create call.
    // Several anthropic-beta headers are one comma-separated list.
    QByteArray version;
    QByteArray beta;
    for (const auto &[name, value] : request.headers()) {
        if (name.compare("anthropic-version", Qt::CaseInsensitive) == 0 && version.isEmpty())
            version = value.trimmed();
        else if (name.compare("anthropic-beta", Qt::CaseInsensitive) == 0 &&
                 !value.trimmed().isEmpty())
            beta += (beta.isEmpty() ? QByteArray() : QByteArrayLiteral(",")) + value.trimmed();
    }
    if (version.size() > 64 || beta.size() > 2048 || !isSafeHeaderValue(version) ||
        !isSafeHeaderValue(beta)) {
        refuse400(QStringLiteral("anthropic-version (64 bytes at most) or anthropic-beta (2,048 "
                                 "bytes at most) is not a valid header value"));
        return;
    }
    // Relayed at full price: a stream with --streams relay, or a model whose --model-route is
    // relay (flex is OpenAI's only; any other route is batched).
    if ((streaming && m_settings.relayStreams) ||
        m_settings.modelRoutes.match(*model).route == ModelRoute::Relay) {
        relay(request, socket, keepAlive, key, admission.caller, provider);
        return;
    }

    BatchRequest batched;
    batched.id = m_nextRequestId++;
    batched.credentials.apiKey = key;
    // The configured key is named, not hashed: its batches resume with whatever key is
    // configured after a restart, and it is never stored (keys at rest).
    const bool configured = !provider.apiKey.isEmpty() && key == provider.apiKey;
    batched.group = GroupKey{configured ? QByteArray(ConfiguredKeyHash) : keyHashOf(key),
                             version,
                             beta,
                             QByteArray(AnthropicMessagesPath),
                             *model,
                             provider.name};
    batched.body = body;
    if (streamMember) {
        // A Message Batch request cannot stream: its params go without `stream`.
        const auto streamless = json::withoutMembers(body, {"stream"});
        if (!streamless) { // cannot happen: the body was read as an object above
            refuse400(QStringLiteral("The request body must be a JSON object"));
            return;
        }
        batched.body = *streamless;
    }
    batched.streaming = streaming;
    batched.arrival = m_clock->now();
    batched.idempotencyKey = request.value("idempotency-key").trimmed();
    batched.caller = admission.caller;
    applyCacheControl(request, batched);
    holdAndSubmit(std::move(batched), socket, keepAlive, admission,
                  streaming ? std::optional(sse::Endpoint::Messages) : std::nullopt, false);
}

void HttpFrontEnd::handleBatched(const QHttpServerRequest &request, QTcpSocket *socket,
                                 bool keepAlive, const Admission &admission) {
    const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();
    const QByteArray body = request.body();
    if (body.size() > m_settings.maxBody) {
        respond(socket,
                errorAnswer(413,
                            QStringLiteral("Request body is larger than the %1-byte limit")
                                .arg(m_settings.maxBody),
                            ErrorType::InvalidRequest, "request_too_large"),
                false);
        return;
    }
    json::ScanError scanError;
    const auto members = json::objectMembers(body, &scanError);
    // The provider, by the model if the body names one (else by path and the default).
    QByteArray routedModel;
    if (members) {
        if (const json::Member *m = json::find(*members, "model");
            m && m->kind == json::Kind::String)
            routedModel = json::stringValue(m->value).value_or(QByteArray());
    }
    const auto provider = routeFor(path, routedModel);
    if (!provider) {
        refuseUnrouted(socket, keepAlive, false, path, routedModel);
        return;
    }
    const auto key = upstreamKey(request, *provider);
    if (!key) {
        respond(socket, missingKeyAnswer(), keepAlive);
        return;
    }
    if (request.value("x-batch").trimmed().toLower() == "off") {
        relay(request, socket, keepAlive, *key, admission.caller, *provider);
        return;
    }
    if (!members) {
        const QString message =
            body.trimmed().isEmpty()
                ? QStringLiteral("The request body is empty: the OpenAI API expects a JSON object")
            : json::isValid(body)
                ? QStringLiteral("The request body must be a JSON object")
                : QStringLiteral("We could not parse the JSON body of your request: ") +
                      scanError.message;
        respond(socket, errorAnswer(400, message, ErrorType::InvalidRequest), keepAlive);
        return;
    }
    // We read the first `model`, `stream`, ...; the provider may read the last: never guess.
    if (const std::optional<QByteArray> twice = json::firstDuplicateKey(*members)) {
        const QByteArray name = twice->size() > 256 ? twice->first(256) + "..." : *twice;
        respond(socket,
                errorAnswer(400,
                            QStringLiteral("The JSON body has the member '%1' more than once; "
                                           "each top-level member may appear only once.")
                                .arg(QString::fromUtf8(name)),
                            ErrorType::InvalidRequest, "duplicate_member", name),
                keepAlive);
        return;
    }
    // A stream is batched and answered with a replay of the result (streamwaiter.h), unless
    // streams are relayed (--streams relay) or the endpoint has no replay (full price).
    const json::Member *streamMember = json::find(*members, "stream");
    const bool streaming = streamMember && streamMember->kind == json::Kind::True;
    const std::optional<sse::Endpoint> streamEndpoint =
        streaming ? replayEndpoint(path) : std::nullopt;
    if (streaming && (!streamEndpoint || m_settings.relayStreams)) {
        relay(request, socket, keepAlive, *key, admission.caller, *provider);
        return;
    }
    QByteArray model;
    const json::Member *modelMember = json::find(*members, "model");
    if (!modelMember) {
        if (path != "/v1/moderations") { // moderations has a default model
            respond(socket,
                    errorAnswer(400, QStringLiteral("you must provide a model parameter"),
                                ErrorType::InvalidRequest, {}, "model"),
                    keepAlive);
            return;
        }
    } else if (modelMember->kind != json::Kind::String) {
        respond(socket,
                errorAnswer(400,
                            QStringLiteral("Invalid type for 'model': expected a string, but got "
                                           "%1 instead.")
                                .arg(QString::fromLatin1(kindName(modelMember->kind))),
                            ErrorType::InvalidRequest, "invalid_type", "model"),
                keepAlive);
        return;
    } else {
        model = json::stringValue(modelMember->value).value_or(QByteArray());
    }
    // An endpoint this provider does not batch (Groq, Gemini: chat only) goes to it at full
    // price, never into a batch it would refuse.
    if (provider->profile && !provider->profile->batches(path)) {
        relay(request, socket, keepAlive, *key, admission.caller, *provider);
        return;
    }
    // The model's route (--model-route): relayed at full price, or OpenAI's flex processing
    // first (chat and responses at a provider with the openai profile; else batched).
    const ModelRouteMatch modelRoute = m_settings.modelRoutes.match(model);
    if (modelRoute.route == ModelRoute::Relay) {
        relay(request, socket, keepAlive, *key, admission.caller, *provider);
        return;
    }
    const bool flexible = isFlex(modelRoute.route) && provider->profile &&
                          provider->profile->name == "openai" &&
                          (path == "/v1/chat/completions" || path == "/v1/responses");

    BatchRequest batched;
    batched.id = m_nextRequestId++;
    batched.credentials.apiKey = *key;
    batched.credentials.organization = request.value("openai-organization").trimmed();
    batched.credentials.project = request.value("openai-project").trimmed();
    // The configured key is named, not hashed: its batches resume with whatever key is
    // configured after a restart, and it is never stored (keys at rest).
    const bool configured = !provider->apiKey.isEmpty() && *key == provider->apiKey;
    batched.group = GroupKey{configured ? QByteArray(ConfiguredKeyHash) : keyHashOf(*key),
                             batched.credentials.organization,
                             batched.credentials.project,
                             path,
                             model,
                             provider->name};
    batched.body = body;
    bool includeUsage = false;
    if (streaming) {
        // The batch line carries the body without them, byte for byte otherwise.
        const auto streamless = json::withoutMembers(body, {"stream", "stream_options"});
        if (!streamless) { // cannot happen: the body was read as an object above
            respond(socket,
                    errorAnswer(400, QStringLiteral("The request body must be a JSON object"),
                                ErrorType::InvalidRequest),
                    keepAlive);
            return;
        }
        batched.body = *streamless;
        batched.streaming = true;
        includeUsage = sse::optionsForRequest(*streamEndpoint, body).includeUsage;
    }
    batched.embeddingInputs = path == "/v1/embeddings" ? embeddingInputs(*members) : 0;
    batched.arrival = m_clock->now();
    batched.idempotencyKey = request.value("idempotency-key").trimmed();
    batched.caller = admission.caller;
    applyCacheControl(request, batched);
    if (flexible) {
        batched.route = modelRoute.route;
        batched.routeExact = modelRoute.exact;
    }

    holdAndSubmit(std::move(batched), socket, keepAlive, admission,
                  streaming ? streamEndpoint : std::nullopt, includeUsage);
}

void HttpFrontEnd::holdAndSubmit(BatchRequest batched, QTcpSocket *socket, bool keepAlive,
                                 const Admission &admission, std::optional<sse::Endpoint> stream,
                                 bool includeUsage) {
    if (stream)
        holdStream(batched.id, socket, keepAlive, admission, *stream, includeUsage);
    else
        m_held.emplace(batched.id,
                       Held{QPointer<QTcpSocket>(socket), keepAlive, admission.corsOrigin});
    if (const auto it = m_connections.find(socket); it != m_connections.end())
        it->second.heldRequest = batched.id;
    // The core may live on another thread (several I/O threads): then these are queued calls,
    // run in order. Its answers come to this front end alone, by the ticket's index.
    if (!m_answerRouted) {
        m_answerRouted = true;
        QMetaObject::invokeMethod(m_core, [core = m_core, index = BatchCore::frontEndOf(batched.id),
                                           self = QPointer<HttpFrontEnd>(this)] {
            core->setAnswerRoute(
                index, self.data(),
                [self](quint64 ticket, const HttpAnswer &answer) {
                    if (self)
                        self->onAnswered(ticket, answer);
                },
                [self](quint64 ticket, const QByteArray &batchId) {
                    if (self)
                        self->m_streams->batchKnown(ticket, batchId);
                });
        });
    }
    QMetaObject::invokeMethod(m_core, [core = m_core, request = std::move(batched)]() mutable {
        core->submit(std::move(request));
    });
    http::releaseIdleBuffers(socket); // it may wait for hours: about 8 KiB back per client
}

HttpAnswer HttpFrontEnd::metricsAnswer() const {
    MetricsGauges gauges;
    if (m_stats)
        gauges = MetricsGauges::of(m_stats->snapshot(), m_stats->queues());
    HttpAnswer answer;
    answer.contentType = QByteArray(MetricsRegistry::ContentType);
    answer.body = m_metrics->render(gauges);
    answer.headers.emplaceBack("cache-control", "no-store");
    return answer;
}

void HttpFrontEnd::holdStream(quint64 ticket, QTcpSocket *socket, bool keepAlive,
                              const Admission &admission, sse::Endpoint endpoint,
                              bool includeUsage) {
    HeaderList headers;
    if (!admission.corsOrigin.isEmpty()) {
        headers.emplaceBack("access-control-allow-origin", admission.corsOrigin);
        headers.emplaceBack("access-control-expose-headers", frontdoor::corsExposeHeaders());
        headers.emplaceBack("vary", "Origin");
    }
    if (const auto it = m_connections.find(socket); it != m_connections.end())
        it->second.corsOrigin.clear(); // written with the headers
    m_streams->hold(ticket, socket, endpoint, includeUsage, keepAlive && !m_closing, headers);
}

void HttpFrontEnd::endStream(const http::StreamWaiter::Ended &ended) {
    QTcpSocket *socket = ended.socket.data();
    if (!socket || socket->state() != QAbstractSocket::ConnectedState)
        return; // the client left
    if (const auto conn = m_connections.find(socket); conn != m_connections.end())
        conn->second.heldRequest = 0;
    if (!ended.keepAlive || m_closing)
        socket->disconnectFromHost(); // a close-delimited stream ends with its connection
    becameFree(socket);
}

void HttpFrontEnd::onAnswered(quint64 requestId, const HttpAnswer &answer) {
    if (const auto ended = m_streams->answer(requestId, answer)) {
        endStream(*ended);
        return;
    }
    const auto it = m_held.find(requestId);
    if (it == m_held.end())
        return;
    const Held held = it->second;
    m_held.erase(it);
    if (!held.socket || held.socket->state() != QAbstractSocket::ConnectedState)
        return; // the client left; its answer is dropped
    if (const auto conn = m_connections.find(held.socket.data()); conn != m_connections.end()) {
        conn->second.heldRequest = 0;
        conn->second.corsOrigin = held.corsOrigin;
    }
    respond(held.socket.data(), answer, held.keepAlive);
}

void HttpFrontEnd::relay(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                         const QByteArray &key, const QByteArray &caller,
                         const ConfiguredProvider &provider) {
    const ProviderProfile &profile =
        provider.profile ? *provider.profile : providerProfiles().constFirst();
    const QByteArray authHeader = profile.authHeader.toLower();
    RelayRequest relayed;
    relayed.method = methodName(request.method());
    relayed.pathAndQuery = request.url().path(QUrl::FullyEncoded).toUtf8();
    const QByteArray query = request.url().query(QUrl::FullyEncoded).toUtf8();
    if (request.url().hasQuery())
        relayed.pathAndQuery += '?' + query;
    relayed.body = request.body();
    relayed.keepAlive = keepAlive && !m_closing;
    relayed.anthropic = isAnthropicPath(request.url().path(QUrl::FullyEncoded).toUtf8());
    QList<QByteArray> connectionTokens;
    for (const auto &[name, value] : request.headers()) {
        if (name.compare("connection", Qt::CaseInsensitive) == 0) {
            for (const QByteArray &token : value.split(','))
                connectionTokens.append(token.trimmed().toLower());
        }
    }
    for (const auto &[name, value] : request.headers()) {
        const QByteArray lower = name.toLower();
        if (http::isHopByHop(lower) || connectionTokens.contains(lower) || lower == "host" ||
            lower == "content-length" || lower == "authorization" || lower == "x-batch" ||
            lower == "expect" || lower == "x-provider-authorization" || lower == authHeader ||
            (lower == "x-api-key" && !m_settings.tokens.isEmpty())) // may be the proxy token
            continue;
        relayed.headers.emplaceBack(name, value);
    }
    relayed.headers.emplaceBack(profile.authHeader, profile.authPrefix + key);
    const auto connection = m_connections.find(socket);
    if (connection != m_connections.end() && !connection->second.corsOrigin.isEmpty()) {
        relayed.answerHeaders.emplaceBack("Access-Control-Allow-Origin",
                                          connection->second.corsOrigin);
        relayed.answerHeaders.emplaceBack("Access-Control-Expose-Headers",
                                          frontdoor::corsExposeHeaders());
        relayed.answerHeaders.emplaceBack("Vary", "Origin");
        connection->second.corsOrigin.clear();
    }
    if (m_stats)
        m_stats->recordRelayed();
    qCDebug(lcRelay).noquote() << "relaying" << relayed.method << relayed.pathAndQuery;
    // A model call (OpenAI's or Anthropic's) is counted in the ledger from the usage its
    // answer reports.
    std::optional<accounting::AccountedRequest> accounted;
    if (request.method() == QHttpServerRequest::Method::Post) {
        const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();
        if (isBatchedEndpoint(path) || path == AnthropicMessagesPath) {
            accounted = relayAccounting(path, relayed.body,
                                        caller.isEmpty() ? accounting::keyHint(key) : caller);
            accounted->provider = provider.name;
            relayed.captureUsage = true;
        }
    }
    auto *call = new RelayCall(m_upstream, provider.baseUrl, std::move(relayed), socket, this);
    QPointer<QTcpSocket> guarded(socket);
    const SteadyTime started = m_clock->now();
    connect(call, &RelayCall::finished, this, [this, call, guarded, accounted, started](bool) {
        if (accounted && call->upstreamStatus() > 0)
            accountRelayed(*accounted, *call, started);
        if (guarded)
            becameFree(guarded.data());
        call->deleteLater();
    });
}

accounting::AccountedRequest HttpFrontEnd::relayAccounting(const QByteArray &path,
                                                           const QByteArray &body,
                                                           const QByteArray &caller) {
    accounting::AccountedRequest accounted;
    accounted.route = accounting::Route::Relay;
    accounted.endpoint = path;
    accounted.caller = caller;
    if (const auto members = json::objectMembers(body)) {
        if (const json::Member *model = json::find(*members, "model");
            model && model->kind == json::Kind::String)
            accounted.model = json::stringValue(model->value).value_or(QByteArray());
    }
    return accounted;
}

void HttpFrontEnd::accountRelayed(accounting::AccountedRequest accounted, const RelayCall &call,
                                  SteadyTime started) {
    // Read here, on this I/O thread; priced, stored and counted on the core's.
    accounted.httpStatus = call.upstreamStatus();
    accounted.streamed = call.streamed();
    accounted.usage = call.usage();
    accounted.answeredAtMs = m_clock->wallMs();
    accounted.seconds = std::chrono::duration<double>(m_clock->now() - started).count();
    QMetaObject::invokeMethod(m_core, [core = m_core, accounted = std::move(accounted)]() mutable {
        core->accountRelayed(std::move(accounted));
    });
}

void HttpFrontEnd::serveUsage(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                              bool head) {
    QByteArray param;
    QString message;
    const std::optional<accounting::UsageRequest> asked = accounting::parseUsageQuery(
        request.url().query(QUrl::FullyEncoded).toUtf8(), m_clock->wallMs(), &param, &message);
    if (!asked) {
        respond(socket,
                errorAnswer(400, message, ErrorType::InvalidRequest, "invalid_value", param),
                keepAlive, head);
        return;
    }
    // The ledger is the core's (its thread owns the store): asked there, answered here.
    const QPointer<HttpFrontEnd> self(this);
    const QPointer<QTcpSocket> guarded(socket);
    QMetaObject::invokeMethod(
        m_core, [core = m_core, asked = *asked, self, guarded, keepAlive, head] {
            QString error;
            const std::optional<accounting::LedgerReport> report =
                core->usageReport(asked.query, &error);
            HttpAnswer answer;
            if (!report) {
                answer = errorAnswer(503, QStringLiteral("The ledger cannot be read: ") + error,
                                     ErrorType::Server, "ledger_unavailable");
            } else if (asked.csv) {
                answer.contentType = QByteArrayLiteral("text/csv; charset=utf-8");
                answer.body = accounting::usageCsv(asked.query, *report);
            } else {
                answer.body = accounting::usageJson(asked.query, *report);
            }
            answer.headers.emplaceBack("cache-control", "no-store");
            if (!self)
                return;
            QMetaObject::invokeMethod(self.data(), [self, guarded, answer, keepAlive, head] {
                if (self && guarded && guarded->state() == QAbstractSocket::ConnectedState)
                    self->respond(guarded.data(), answer, keepAlive, head);
            });
        });
}

void HttpFrontEnd::sweepIdle() {
    const SteadyTime now = m_clock->now();
    QList<QTcpSocket *> idle;
    QList<QTcpSocket *> all;
    for (const auto &[socket, connection] : m_connections) {
        all.append(socket);
        if (!connection.busy && connection.heldRequest == 0 && connection.waiting() == 0 &&
            !connection.released && connection.gate.stage() == http::RequestGate::Stage::Idle &&
            now - connection.lastActivity >= m_settings.idleTimeout)
            idle.append(socket);
    }
    for (QTcpSocket *socket : std::as_const(idle)) {
        if (m_connections.count(socket))
            socket->disconnectFromHost();
    }
    for (QTcpSocket *socket : std::as_const(all)) {
        if (const auto it = m_connections.find(socket);
            it != m_connections.end() && socket->state() == QAbstractSocket::ConnectedState)
            checkDeadlines(socket, it->second, now);
    }
}

void HttpFrontEnd::closeAll(const HttpAnswer &answer) {
    m_closing = true;
    for (QTcpServer *server : servers())
        server->close();
    const auto held = std::exchange(m_held, {});
    for (const auto &[id, client] : held) {
        if (client.socket && client.socket->state() == QAbstractSocket::ConnectedState)
            respond(client.socket.data(), answer, false);
    }
    // Waiting streams have their headers out: they get the answer as their error event.
    for (const http::StreamWaiter::Ended &ended : m_streams->failAll(answer))
        endStream(ended);
}

} // namespace llmproxy
