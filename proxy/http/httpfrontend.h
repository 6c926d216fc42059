// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The HTTP front end: the only code that sees QtHttpServer. It validates requests, applies the
// key policy, hands batchable requests to the core and holds their connections open until the
// answer comes, relays everything else, and serves /stats and /healthz.

#include "accounting/accountedrequest.h"
#include "api/clock.h"
#include "api/httpanswer.h"
#include "http/connectionlimiter.h"
#include "http/requestgate.h"
#include "http/streamwaiter.h"
#include "provider/modelroute.h"
#include "settings/config.h"

#include <QAbstractHttpServer>
#include <QPointer>
#include <QTimer>
#include <QUrl>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

class QTcpServer;
class QTcpSocket;

namespace llmproxy {

class BatchCore;
struct BatchRequest;
class MetricsRegistry;
class RelayCall;
class Stats;
class UpstreamClient;

struct FrontEndSettings {
    qint64 maxBody = 32LL * 1024 * 1024;
    QByteArray apiKey; // when set, every upstream call uses it; never logged
    QUrl upstream = QUrl(QStringLiteral("https://api.openai.com/v1"));
    // Several providers behind one URL (issue 12): the configured providers and the rules that
    // pick one per request. The "openai" provider is always `upstream` with `apiKey` (so with
    // no providers given, everything goes there, as before).
    QList<ConfiguredProvider> providers;
    ProviderRouter router{{}, QByteArrayLiteral("openai"), {QByteArrayLiteral("openai")}};
    // How each model's requests are answered (--model-route, modelroute.h): batch, flex first,
    // or relayed at full price.
    ModelRoutes modelRoutes;
    std::chrono::milliseconds idleTimeout{std::chrono::seconds(65)};
    // The front door (frontdoor.h): browser origins with CORS answers, Host names besides IP
    // literals and localhost, and the proxy tokens (with any, every request needs one).
    QList<QByteArray> allowOrigins;
    QList<QByteArray> allowHosts;
    QList<ProxyToken> tokens;
    // Deadlines and limits of the front door; the limiter counts connections for every front
    // end sharing it (one is made for this front end alone when null).
    FrontDoorLimits limits;
    std::shared_ptr<http::ConnectionLimiter> limiter;
    // How often deadlines and idle connections are checked; 0: from the timeouts.
    std::chrono::milliseconds sweepInterval{0};
    // Streaming requests: relayed at full price instead of batched and replayed; while one
    // waits for its batch, a keep-alive comment this often (streamwaiter.h).
    bool relayStreams = false;
    std::chrono::milliseconds streamKeepAlive{std::chrono::seconds(15)};
};

// The endpoints the proxy batches.
bool isBatchedEndpoint(QByteArrayView path);

class HttpFrontEnd final : public QAbstractHttpServer {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HttpFrontEnd)
public:
    HttpFrontEnd(BatchCore *core, Stats *stats, const Clock *clock,
                 const FrontEndSettings &settings, QObject *parent = nullptr);
    ~HttpFrontEnd() override;

    // Listen on every address (backlog 1,024). On failure nothing is left listening.
    bool listenOn(const QList<ListenAddress> &addresses, QString *error);
    // Several front ends, one per I/O thread, serve the same listening sockets: the first
    // listens (listenOn), the others accept from duplicates of its descriptors. Whichever
    // thread is free takes the next connection. (SO_REUSEPORT would need every socket on the
    // port to set it, and would let a second instance share our port without an error.)
    QList<qintptr> listeningDescriptors() const;
    // Accept from duplicates of `descriptors` (another front end's listening sockets), instead
    // of whatever this one listened on before. False if a descriptor is not a listening socket.
    bool shareListeners(const QList<qintptr> &descriptors, QString *error);
    // Close every listening socket; open connections stay.
    void stopListening();
    // The n-th of several front ends (0..65535): its tickets carry n in their top 16 bits, so
    // they are unique across front ends sharing one core. Call before the first request.
    void setIndex(int index);
    // Listen somewhere else; connections already open stay. On failure, keeps the old addresses.
    bool rebind(const QList<ListenAddress> &addresses, QString *error);
    QList<quint16> ports() const;
    QList<ListenAddress> boundAddresses() const;
    void setSettings(const FrontEndSettings &settings);
    void setReady(bool ready) { m_ready = ready; }
    // What GET /metrics renders (null: /metrics is 404); shared by every front end, not owned.
    void setMetrics(MetricsRegistry *metrics) { m_metrics = metrics; }

    // Stop accepting; answer every waiting client with `answer` (shutdown).
    void closeAll(const HttpAnswer &answer);
    qsizetype waiting() const { return std::ssize(m_held) + m_streams->waiting(); }
    // Of those, the streaming clients (headers sent, keep-alives until the answer).
    qsizetype waitingStreams() const { return m_streams->waiting(); }
    qsizetype connections() const { return std::ssize(m_connections); }
    // Requests read and framed, waiting for an earlier one of their connection (all
    // connections); how many requests and bytes the gates framed in all. For tests.
    qsizetype pipelined() const;
    quint64 framedRequests() const { return m_framedRequests; }
    quint64 framedBytes() const { return m_framedBytes; }
    // Answer bytes written to the connections' sockets that the kernel did not take yet.
    qint64 unsentBytes() const;

protected:
    bool handleRequest(const QHttpServerRequest &request, QTcpSocket *socket) override;
    void missingHandler(const QHttpServerRequest &request, QTcpSocket *socket) override;

private:
    // Each connection's bytes are read by the gate first, framed once, and kept here;
    // QtHttpServer gets them one whole request at a time, and the next only once the answer
    // to the one before is out: answers go in order, and at most one request per connection
    // is ever held or relayed.
    struct Connection {
        explicit Connection(const http::GateLimits &limits)
            : gate(limits) {}
        qsizetype waiting() const { return std::ssize(ends); }
        http::RequestGate gate;
        QHostAddress peer;
        bool counted = false; // in the limiter
        SteadyTime lastActivity;
        quint64 heldRequest = 0; // a batched request waiting for its answer
        bool busy = false;       // a request is being answered
        bool refused = false;    // the gate refused it: drain and close
        qint64 drained = 0;      // bytes discarded since it was refused
        QByteArray corsOrigin;   // the allowed Origin of the request being answered, if any
        // Framed bytes not yet handed to Qt, from `head`; `ends` are where the complete
        // requests among them end (offsets into `pending`); the rest is a partial one.
        QByteArray pending;
        qsizetype head = 0;
        std::deque<qsizetype> ends;
        bool released = false;   // Qt has a request of ours that it has not handled yet
        qint64 unreadBehind = 0; // bytes left unread behind it
        bool paused = false;     // reading stopped: the unread bytes wait in the socket
        bool kicked = false;     // a queued readyRead is on its way
        // The request being received is read inside a transaction of ours and stays in the
        // socket (nothing else of the connection under way); complete: it is whole there.
        bool capturing = false;
        bool captureComplete = false;
        std::optional<http::RequestGate::Verdict> failure; // refused after what waits
        // Deadlines of the request being received.
        SteadyTime accepted;
        SteadyTime freeSince;    // since when nothing of ours held the client up
        SteadyTime messageStart; // its first byte
        SteadyTime bodyStart;
        qint64 headerBytes = 0;
        qint64 bodyBytes = 0;
        bool anyRequest = false; // a request came on this connection
        // The request being answered is on an Anthropic path: the proxy's own errors for it
        // are in Anthropic's shape (asAnthropicError).
        bool anthropic = false;
    };
    struct Held {
        QPointer<QTcpSocket> socket;
        bool keepAlive = true;
        QByteArray corsOrigin;
    };
    // What the front door learnt about a request it let in.
    struct Admission {
        QByteArray caller;     // the proxy token's name (empty without tokens)
        QByteArray corsOrigin; // an allowed browser Origin: answers carry CORS headers
    };

    bool acceptSocket(QTcpSocket *socket);
    void turnAway(QTcpSocket *socket, http::ConnectionLimiter::Verdict verdict);
    void takeBytes(QTcpSocket *socket, Connection &connection);
    bool releaseNext(QTcpSocket *socket, Connection &connection);
    void kick(QTcpSocket *socket, Connection &connection);
    void becameFree(QTcpSocket *socket);
    void checkDeadlines(QTcpSocket *socket, Connection &connection, SteadyTime now);
    void putListenerFirst(QTcpServer *listener);
    void onGateReadyRead(QTcpSocket *socket);
    void refuse(QTcpSocket *socket, Connection &connection, int status, const QString &message);
    void respond(QTcpSocket *socket, const HttpAnswer &answer, bool keepAlive, bool head = false);
    void handleBatched(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                       const Admission &admission);
    // Anthropic's API: POST /v1/messages batched through Message Batches, everything else under
    // it relayed to the Anthropic provider.
    void handleAnthropic(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                         bool head, const Admission &admission);
    void handleMessages(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                        const Admission &admission, const ConfiguredProvider &provider,
                        const QByteArray &key);
    // A batchable request checked and ready: hold its client (a stream's headers go out now)
    // and hand it to the core.
    void holdAndSubmit(BatchRequest batched, QTcpSocket *socket, bool keepAlive,
                       const Admission &admission, std::optional<sse::Endpoint> stream,
                       bool includeUsage);
    // The Anthropic provider a request on an Anthropic path goes to: a routing rule's if it
    // names one with the anthropic profile, else the first configured; nullopt when none is.
    std::optional<ConfiguredProvider> anthropicProviderFor(QByteArrayView path,
                                                           QByteArrayView model) const;
    // The key an Anthropic call is made with: the provider's configured key, else the client's
    // (x-api-key or Authorization: Bearer; with proxy tokens, X-Provider-Authorization).
    std::optional<QByteArray> anthropicKey(const QHttpServerRequest &request,
                                           const ConfiguredProvider &provider) const;
    // To `provider`, with `key` in its auth header.
    void relay(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
               const QByteArray &key, const QByteArray &caller, const ConfiguredProvider &provider);
    // A relayed model call's ledger record: endpoint, the model the client asked for, caller.
    static accounting::AccountedRequest
    relayAccounting(const QByteArray &path, const QByteArray &body, const QByteArray &caller);
    // Its answer is over: add what the call learnt and hand it to the core.
    void accountRelayed(accounting::AccountedRequest accounted, const RelayCall &call,
                        SteadyTime started);
    // GET /usage: the ledger, read on the core's thread, answered here when it comes.
    void serveUsage(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive,
                    bool head);
    void onAnswered(quint64 requestId, const HttpAnswer &answer);
    // GET /metrics: the registry's exposition with the gauges from Stats.
    HttpAnswer metricsAnswer() const;
    // A streaming request accepted for a batch: its headers go out now (streamwaiter.h).
    void holdStream(quint64 ticket, QTcpSocket *socket, bool keepAlive, const Admission &admission,
                    sse::Endpoint endpoint, bool includeUsage);
    // A stream was written to its end: close its connection or hand on its next request.
    void endStream(const http::StreamWaiter::Ended &ended);
    void sweepIdle();
    // Host, Origin (and preflights), the target, the proxy token. False when it answered the
    // request itself (a refusal, a preflight).
    bool admit(const QHttpServerRequest &request, QTcpSocket *socket, bool keepAlive, bool head,
               Admission *admission);
    std::optional<QByteArray> upstreamKey(const QHttpServerRequest &request,
                                          const ConfiguredProvider &provider) const;
    // The provider the routing rules pick for `path` and `model` (empty: not known), or nullopt.
    std::optional<ConfiguredProvider> routeFor(QByteArrayView path, QByteArrayView model) const;
    // Answers 400 naming the configured providers.
    void refuseUnrouted(QTcpSocket *socket, bool keepAlive, bool head, QByteArrayView path,
                        QByteArrayView model);

    BatchCore *m_core;
    Stats *m_stats;
    MetricsRegistry *m_metrics = nullptr;
    UpstreamClient *m_upstream; // the relay's connections, this front end's (thread's) own
    const Clock *m_clock;
    FrontEndSettings m_settings;
    bool m_ready = true;
    bool m_closing = false;
    quint64 m_nextRequestId = 1;
    bool m_answerRouted = false; // the core knows to send this index's answers here
    quint64 m_framedRequests = 0;
    quint64 m_framedBytes = 0;
    std::unordered_map<QTcpSocket *, Connection> m_connections;
    std::unordered_map<quint64, Held> m_held;
    http::StreamWaiter *m_streams; // held streaming clients (a child)
    QTimer m_sweep;
};

} // namespace llmproxy
