// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/httpfrontend.h"

#include "api/json.h"
#include "api/logging.h"
#include "batch/batchcore.h"
#include "http/frontdoor.h"
#include "http/httpwriter.h"
#include "http/relay.h"
#include "http/upstreamclient.h"
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
    GatedTcpServer(std::function<void(QTcpSocket *)> onSocket,
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
        m_onSocket(socket);
        if (m_beforeQueue)
            m_beforeQueue(this);
        addPendingConnection(socket);
    }

private:
    std::function<void(QTcpSocket *)> m_onSocket;
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

HttpFrontEnd::HttpFrontEnd(BatchCore *core, Stats *stats, QNetworkAccessManager *nam,
                           const Clock *clock, const FrontEndSettings &settings, QObject *parent)
    : QAbstractHttpServer(parent)
    , m_core(core)
    , m_stats(stats)
    , m_nam(nam)
    , m_upstream(new UpstreamClient(this))
    , m_clock(clock)
    , m_settings(settings) {
    connect(m_core, &BatchCore::answered, this, &HttpFrontEnd::onAnswered);
    m_sweep.setInterval(std::max<std::chrono::milliseconds>(
        std::min<std::chrono::milliseconds>(m_settings.idleTimeout / 4, 5s), 50ms));
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
            new GatedTcpServer([this](QTcpSocket *socket) { acceptSocket(socket); },
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
            new GatedTcpServer([this](QTcpSocket *socket) { acceptSocket(socket); },
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
    m_settings = settings;
}

void HttpFrontEnd::putListenerFirst(QTcpServer *listener) {
    // See GatedTcpServer: a fresh connection is prepended to our senders list, so the
    // sender() lookup in QtHttpServer's slot finds it at once instead of after every socket's.
    QObject::disconnect(listener, &QTcpServer::pendingConnectionAvailable, this, nullptr);
    bind(listener);
}

void HttpFrontEnd::acceptSocket(QTcpSocket *socket) {
    http::GateLimits limits;
    limits.maxBody = m_settings.maxBody;
    auto [it, inserted] = m_connections.try_emplace(socket, limits);
    it->second.lastActivity = m_clock->now();
    // Context `socket`, not `this`: refuse() disconnects QtHttpServer's handler by receiver.
    connect(socket, &QIODevice::readyRead, socket, [this, socket] { onGateReadyRead(socket); });
    connect(socket, &QAbstractSocket::disconnected, socket, [this, socket] {
        const auto conn = m_connections.find(socket);
        if (conn == m_connections.end() || conn->second.heldRequest == 0)
            return;
        const quint64 id = std::exchange(conn->second.heldRequest, 0);
        m_held.erase(id);
        qCDebug(lcHttp) << "client of request" << id << "hung up";
        QMetaObject::invokeMethod(m_core, [core = m_core, id] { core->cancel(id); });
    });
    connect(socket, &QObject::destroyed, this, [this, socket] { m_connections.erase(socket); });
}

void HttpFrontEnd::onGateReadyRead(QTcpSocket *socket) {
    const auto it = m_connections.find(socket);
    if (it == m_connections.end())
        return;
    Connection &connection = it->second;
    connection.lastActivity = m_clock->now();
    if (connection.refused) {
        // Discard: the answer is out and the connection is closing.
        connection.drained += socket->readAll().size();
        return;
    }
    const QByteArray fresh = socket->peek(socket->bytesAvailable());
    const http::RequestGate::Verdict verdict = connection.gate.feed(fresh);
    switch (verdict.kind) {
    case http::RequestGate::Verdict::Pass:
        break;
    case http::RequestGate::Verdict::SendContinue:
        socket->write("HTTP/1.1 100 Continue\r\n\r\n");
        break;
    case http::RequestGate::Verdict::Reject:
        refuse(socket, connection, verdict.status, verdict.message);
        break;
    }
}

void HttpFrontEnd::refuse(QTcpSocket *socket, Connection &connection, int status,
                          const QString &message) {
    qCInfo(lcHttp).noquote() << "refused a request:" << message;
    connection.refused = true;
    // QtHttpServer must not buffer the rest of this request.
    QObject::disconnect(socket, &QIODevice::readyRead, this, nullptr);
    if (socket->isTransactionStarted())
        socket->commitTransaction();
    connection.drained = socket->readAll().size();
    const QByteArray code = status == 413   ? "request_too_large"
                            : status == 431 ? "request_headers_too_large"
                                            : "invalid_request";
    socket->write(
        http::serialize(errorAnswer(status, message, ErrorType::InvalidRequest, code), false));
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

void HttpFrontEnd::respond(QTcpSocket *socket, const HttpAnswer &answer, bool keepAlive,
                           bool head) {
    const auto it = m_connections.find(socket);
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
    if (it != m_connections.end()) {
        it->second.busy = false;
        it->second.lastActivity = m_clock->now();
        it->second.corsOrigin.clear();
    }
    if (!keepAlive || m_closing)
        socket->disconnectFromHost();
}

bool HttpFrontEnd::handleRequest(const QHttpServerRequest &request, QTcpSocket *socket) {
    auto it = m_connections.find(socket);
    if (it == m_connections.end()) // a socket we did not create: cannot happen, but be safe
        it = m_connections.try_emplace(socket, http::GateLimits{}).first;
    Connection &connection = it->second;
    const bool keepAlive = connection.gate.takeKeepAlive();
    connection.busy = true;
    connection.lastActivity = m_clock->now();

    const QHttpServerRequest::Method method = request.method();
    const bool head = method == QHttpServerRequest::Method::Head;
    const QByteArray path = request.url().path(QUrl::FullyEncoded).toUtf8();

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
    if (path == "/stats") {
        HttpAnswer answer;
        answer.body = m_stats ? Stats::toJson(m_stats->snapshot()) : QByteArrayLiteral("{}");
        answer.headers.emplaceBack("cache-control", "no-store");
        respond(socket, answer, keepAlive, head);
        return true;
    }
    if (path != "/v1" && !path.startsWith("/v1/")) {
        respond(socket,
                errorAnswer(404,
                            QStringLiteral("Unknown path %1: llm-proxy serves the OpenAI API "
                                           "under /v1 (set your SDK's base URL to "
                                           "http://HOST:PORT/v1), plus /stats and /healthz")
                                .arg(QString::fromUtf8(path)),
                            ErrorType::InvalidRequest, "unknown_url"),
                keepAlive, head);
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
    const auto key = upstreamKey(request);
    if (!key) {
        respond(socket, missingKeyAnswer(), keepAlive, head);
        return true;
    }
    relay(request, socket, keepAlive, *key);
    return true;
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
    if (path == "/stats" && !isLoopbackPeer(socket->peerAddress())) {
        respond(socket,
                errorAnswer(403,
                            QStringLiteral("/stats is served off this machine only to callers "
                                           "with a proxy token (start llm-proxy with "
                                           "--tokens-file FILE)"),
                            ErrorType::InvalidRequest, "token_required"),
                keepAlive, head);
        return false;
    }
    return true;
}

std::optional<QByteArray> HttpFrontEnd::upstreamKey(const QHttpServerRequest &request) const {
    if (!m_settings.apiKey.isEmpty())
        return m_settings.apiKey;
    // With proxy tokens, Authorization carries the token: a client's own provider key comes
    // in X-Provider-Authorization instead.
    const QByteArray token = bearerToken(
        request.value(m_settings.tokens.isEmpty() ? "authorization" : "x-provider-authorization"));
    if (token.isEmpty())
        return std::nullopt;
    return token;
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
    const auto key = upstreamKey(request);
    if (!key) {
        respond(socket, missingKeyAnswer(), keepAlive);
        return;
    }
    if (request.value("x-batch").trimmed().toLower() == "off") {
        relay(request, socket, keepAlive, *key);
        return;
    }
    json::ScanError scanError;
    const auto members = json::objectMembers(body, &scanError);
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
    if (const json::Member *stream = json::find(*members, "stream");
        stream && stream->kind == json::Kind::True) {
        relay(request, socket, keepAlive, *key); // batches cannot stream (yet): full price
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

    BatchRequest batched;
    batched.id = m_nextRequestId++;
    batched.credentials.apiKey = *key;
    batched.credentials.organization = request.value("openai-organization").trimmed();
    batched.credentials.project = request.value("openai-project").trimmed();
    // The configured key is named, not hashed: its batches resume with whatever key is
    // configured after a restart, and it is never stored (keys at rest).
    const bool configured = !m_settings.apiKey.isEmpty() && *key == m_settings.apiKey;
    batched.group =
        GroupKey{configured ? QByteArray(ConfiguredKeyHash) : keyHashOf(*key),
                 batched.credentials.organization, batched.credentials.project, path, model};
    batched.body = body;
    batched.embeddingInputs = path == "/v1/embeddings" ? embeddingInputs(*members) : 0;
    batched.arrival = m_clock->now();
    batched.idempotencyKey = request.value("idempotency-key").trimmed();
    batched.caller = admission.caller;

    m_held.emplace(batched.id, Held{QPointer<QTcpSocket>(socket), keepAlive, admission.corsOrigin});
    if (const auto it = m_connections.find(socket); it != m_connections.end())
        it->second.heldRequest = batched.id;
    // The core may live on another thread (several I/O threads): then this is a queued call.
    QMetaObject::invokeMethod(m_core, [core = m_core, request = std::move(batched)]() mutable {
        core->submit(std::move(request));
    });
    http::releaseIdleBuffers(socket); // it may wait for hours: about 8 KiB back per client
}

void HttpFrontEnd::onAnswered(quint64 requestId, const HttpAnswer &answer) {
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
                         const QByteArray &key) {
    RelayRequest relayed;
    relayed.method = methodName(request.method());
    relayed.pathAndQuery = request.url().path(QUrl::FullyEncoded).toUtf8();
    const QByteArray query = request.url().query(QUrl::FullyEncoded).toUtf8();
    if (request.url().hasQuery())
        relayed.pathAndQuery += '?' + query;
    relayed.body = request.body();
    relayed.keepAlive = keepAlive && !m_closing;
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
            lower == "expect" || lower == "x-provider-authorization" ||
            (lower == "x-api-key" && !m_settings.tokens.isEmpty())) // may be the proxy token
            continue;
        relayed.headers.emplaceBack(name, value);
    }
    relayed.headers.emplaceBack("Authorization", QByteArrayLiteral("Bearer ") + key);
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
    auto *call = new RelayCall(m_upstream, m_settings.upstream, std::move(relayed), socket, this);
    QPointer<QTcpSocket> guarded(socket);
    connect(call, &RelayCall::finished, this, [this, call, guarded](bool) {
        if (guarded) {
            if (const auto it = m_connections.find(guarded.data()); it != m_connections.end()) {
                it->second.busy = false;
                it->second.lastActivity = m_clock->now();
            }
        }
        call->deleteLater();
    });
}

void HttpFrontEnd::sweepIdle() {
    const SteadyTime now = m_clock->now();
    QList<QTcpSocket *> idle;
    for (const auto &[socket, connection] : m_connections) {
        if (!connection.busy && connection.heldRequest == 0 &&
            now - connection.lastActivity >= m_settings.idleTimeout)
            idle.append(socket);
    }
    for (QTcpSocket *socket : std::as_const(idle)) {
        if (m_connections.count(socket))
            socket->disconnectFromHost();
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
}

} // namespace llmproxy
