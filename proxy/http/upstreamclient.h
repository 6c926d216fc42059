// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// A lean HTTP/1.1 client for the relay. One per front end (per thread, no locks): a keep-alive
// pool of connections to the upstream (QTcpSocket, or QSslSocket with certificate
// verification for https), and its own response parser (Content-Length, chunked,
// close-delimited). Bodies are read only as fast as the caller takes them: what the caller has
// not read stays in a bounded buffer and then in the kernel, so TCP pushes back on the
// upstream.
//
// Why not QNetworkAccessManager: its HTTP runs on an internal thread (every request crosses
// threads twice), it reads response heads a byte at a time and allows six connections per
// host; it cost about 0.5 ms of CPU per relayed request (tests/bench/README.md).

#include "api/clock.h"
#include "api/httpanswer.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QHash>
#include <QList>
#include <QObject>
#include <QSslConfiguration>
#include <QString>
#include <QTimer>
#include <QUrl>
#include <QVarLengthArray>

#include <chrono>
#include <memory>
#include <optional>

class QAbstractSocket;

namespace llmproxy {

class UpstreamClient;
class UpstreamConnection;

struct UpstreamRequest {
    QByteArray method;
    QByteArray target;  // the request line's path and query, percent-encoded ("/v1/models?x=1")
    HeaderList headers; // sent as they are; the client adds Host and Content-Length
    QByteArray body;
};

// Where requests go: http or https, host, port; and the base URL's own path and query, which
// the relay puts the client's paths under.
struct UpstreamOrigin {
    bool tls = false;
    QString host;
    quint16 port = 0;
    QByteArray key;        // "https://host:port", the pool's key
    QByteArray hostHeader; // "host" or "host:port" (the port only when not the default)
    QByteArray basePath;   // percent-encoded, without trailing slashes ("/v1", "")
    QByteArray baseQuery;  // percent-encoded, without the '?'
    bool baseHasQuery = false;

    static UpstreamOrigin fromUrl(const QUrl &url);
    bool isValid() const { return !host.isEmpty() && port != 0; }
};

struct UpstreamTimeouts {
    std::chrono::milliseconds connect{std::chrono::seconds(30)}; // TCP and TLS set-up
    // No byte from the upstream for this long while we wait for one: the upstream is gone.
    // Time the caller spends not reading (back-pressure) does not count.
    std::chrono::milliseconds silence{std::chrono::minutes(10)};
    // A pooled connection unused this long is closed.
    std::chrono::milliseconds keepIdle{std::chrono::seconds(30)};
};

// One exchange, owned by whoever sent it. Its listener is told when the head arrived, when
// more of the body may be read, and when the exchange ended: read until read() gives nothing,
// then check isFinished(). The listener is never called from inside a call to the reply or the
// client, and it may delete the reply when told. Deleting a reply before it finished closes its
// connection (it is never reused).
//
// Not a QObject: a QObject, its connection and its destruction cost about 4,000 instructions
// per relayed request, 5% of the proxy's whole user-space work (measured with callgrind).
class UpstreamReply final {
    Q_GADGET
    Q_DISABLE_COPY_MOVE(UpstreamReply)
public:
    class Listener {
    public:
        virtual void upstreamReadyRead(UpstreamReply *reply) = 0;

    protected:
        ~Listener() = default;
    };

    enum class Error {
        None,
        Connect,  // could not connect (refused, unknown host, connect timeout)
        Tls,      // TLS handshake or certificate verification failed
        Closed,   // the upstream closed the connection before the answer was whole
        Timeout,  // the upstream went silent for UpstreamTimeouts::silence
        Protocol, // not HTTP/1.x, or a malformed head or chunk
        Aborted,  // abort() was called, or the client went away
    };
    Q_ENUM(Error)

    ~UpstreamReply();

    void setListener(Listener *listener) { m_listener = listener; }
    bool hasHead() const { return m_headDone; }
    int status() const { return m_status; }
    // The headers as the upstream sent them, in order, duplicates kept (obsolete line folding
    // replaced by spaces). The views stay valid as long as the reply.
    qsizetype headerCount() const { return m_headerViews.size(); }
    QByteArrayView headerName(qsizetype i) const { return m_headerViews.at(i).name; }
    QByteArrayView headerValue(qsizetype i) const { return m_headerViews.at(i).value; }
    HeaderList headers() const; // a copy
    // The answer has Transfer-Encoding, which framed its body (RFC 9112 §6.3): any
    // Content-Length it also has was ignored and must not be passed on.
    bool transferCoded() const { return m_transferCoded; }
    // Up to maxSize bytes of decoded body (chunk framing removed); empty when nothing is there
    // yet. Never blocks.
    QByteArray read(qint64 maxSize);
    // The body was read whole, or the exchange failed (and every byte received was read).
    bool isFinished() const { return m_complete || m_error != Error::None; }
    Error error() const { return m_error; }
    QString errorString() const { return m_errorString; }
    // Whether the request first went out on a pooled connection.
    bool reusedConnection() const { return m_firstReused; }
    int attempts() const { return m_attempts; }
    void abort();

private:
    friend class UpstreamClient;
    friend class UpstreamConnection;
    friend class UpstreamReplyProbe; // tests/fuzz: the parser fed bytes, without a socket
    enum class Body { None, Length, ChunkSize, ChunkData, ChunkDataEnd, Trailers, UntilClose };
    struct HeaderView {
        QByteArrayView name;
        QByteArrayView value;
    };

    UpstreamReply(UpstreamClient *client, const UpstreamOrigin &origin, UpstreamRequest request,
                  Listener *listener);
    void notify(); // the last thing done before returning to the event loop
    void start(bool allowPooled);
    void sendRequest();
    // From the connection's socket:
    void onConnected();
    void onReadyRead();
    void onClosed(Error error, const QString &reason);
    void onProgress() { m_lastProgress = std::chrono::steady_clock::now(); }
    // From the client's sweep: fails the exchange if it ran out of time (true).
    bool timedOut(SteadyTime now);

    bool fillInput();
    void markEof(Error error, const QString &reason);
    void afterInput();
    bool parseHead();
    bool decode(QByteArray &out, qint64 want);
    void settleEof();
    void bodyDone();
    void release(bool reusable);
    void fail(Error error, const QString &message);
    bool retryable() const;

    UpstreamClient *m_client; // cleared by the client's destructor while the reply is active
    Listener *m_listener;
    UpstreamReply *m_prevActive = nullptr; // the client's list of replies in progress
    UpstreamReply *m_nextActive = nullptr;
    UpstreamReply *m_nextNotice = nullptr; // the client's list of replies to tell later
    bool m_active = false;
    bool m_noticePending = false;
    UpstreamOrigin m_origin;
    UpstreamRequest m_request;
    UpstreamConnection *m_connection = nullptr;
    QByteArray m_in; // received, not yet consumed (bounded)
    QByteArray m_head;
    QVarLengthArray<HeaderView, 16> m_headerViews;
    int m_status = 0;
    Body m_body = Body::None;
    qint64 m_remaining = 0; // of a Content-Length body or of the current chunk
    SteadyTime m_lastProgress;
    QString m_errorString;
    QString m_eofReason;
    Error m_error = Error::None;
    Error m_eofError = Error::None;
    int m_attempts = 0;
    bool m_connecting = false;
    bool m_headDone = false;
    bool m_transferCoded = false;
    bool m_complete = false;
    bool m_keepAlive = true;
    bool m_eof = false;      // the connection is gone; m_in holds all that is left of it
    bool m_received = false; // some byte of the answer arrived on this attempt
    bool m_reused = false;   // this attempt runs on a pooled connection
    bool m_firstReused = false;
};

class UpstreamClient final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(UpstreamClient)
public:
    explicit UpstreamClient(QObject *parent = nullptr);
    ~UpstreamClient() override;

    // Starts an exchange with the upstream at `base` (only its scheme, host and port count).
    // The listener (may be null) is told from the event loop, never from here.
    std::unique_ptr<UpstreamReply> send(const QUrl &base, UpstreamRequest request,
                                        UpstreamReply::Listener *listener = nullptr);
    std::unique_ptr<UpstreamReply> send(const UpstreamOrigin &origin, UpstreamRequest request,
                                        UpstreamReply::Listener *listener = nullptr);
    // The origin of a base URL (the last one is remembered).
    const UpstreamOrigin &origin(const QUrl &base);

    void setTimeouts(const UpstreamTimeouts &timeouts);
    UpstreamTimeouts timeouts() const { return m_timeouts; }
    // For https: the default verifies the peer against the system's CAs. HTTP/1.1 is forced.
    void setSslConfiguration(const QSslConfiguration &configuration);
    // Connections kept per origin once idle (default 64); more are closed.
    void setMaxIdlePerOrigin(int max) { m_maxIdle = max; }

    qsizetype idleConnections() const;
    quint64 connectionsOpened() const { return m_opened; }
    qsizetype activeReplies() const { return m_activeCount; }

private:
    friend class UpstreamReply;
    friend class UpstreamConnection;

    UpstreamConnection *takeIdle(const UpstreamOrigin &origin, SteadyTime t);
    UpstreamConnection *connectTo(const UpstreamOrigin &origin);
    void giveBack(UpstreamConnection *connection, SteadyTime t);
    void dropIdle(UpstreamConnection *connection);
    void activate(UpstreamReply *reply);
    void deactivate(UpstreamReply *reply);
    // Tells a reply's listener from the event loop (a reply that failed inside send()).
    void noticeLater(UpstreamReply *reply);
    void forgetNotice(UpstreamReply *reply);
    void deliverNotices();
    void sweep();

    UpstreamTimeouts m_timeouts;
    std::optional<QSslConfiguration> m_ssl; // made on first use: plain http never loads TLS
    int m_maxIdle = 64;
    quint64 m_opened = 0;
    QUrl m_lastBase;
    UpstreamOrigin m_lastOrigin;
    QHash<QByteArray, QList<UpstreamConnection *>> m_idle; // most recently used last
    UpstreamReply *m_activeHead = nullptr;
    qsizetype m_activeCount = 0;
    UpstreamReply *m_noticeHead = nullptr;
    bool m_noticeQueued = false;
    QTimer m_sweep;
};

} // namespace llmproxy
