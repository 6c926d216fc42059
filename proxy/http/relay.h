// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Relays one request to the upstream as it came and streams the answer back to the client
// as it arrives, with back-pressure (the upstream is read only as fast as the client takes it).

#include "accounting/answerusage.h"
#include "api/httpanswer.h"
#include "http/upstreamclient.h"

#include <QObject>
#include <QPointer>
#include <QUrl>

#include <memory>

class QTcpSocket;

namespace llmproxy {

struct RelayRequest {
    QByteArray method;
    QByteArray pathAndQuery; // as received, percent-encoding intact, starting with "/v1"
    HeaderList headers;      // already without hop-by-hop headers, key policy applied
    QByteArray body;
    bool keepAlive = true;
    // Headers for the client's answer (CORS); the upstream's Access-Control-* never pass.
    HeaderList answerHeaders;
    // Keep what the ledger needs of the answer (its usage) while it passes: see usage().
    bool captureUsage = false;
    // A call on Anthropic's API (an Anthropic path): the proxy's own error (upstream
    // unreachable) in its shape, and the answer's usage read by Anthropic's names and events.
    bool anthropic = false;
};

// The upstream URL for a client path under /v1: "/v1/models?x=1" with base
// "https://api.openai.com/v1" gives "https://api.openai.com/v1/models?x=1".
QUrl upstreamUrl(const QUrl &base, const QByteArray &pathAndQuery);
// The same URL's path and query as they go on the request line ("/v1/models?x=1"), without
// building a QUrl when the path and query have nothing QUrl would re-encode.
QByteArray upstreamTarget(const QUrl &base, const QByteArray &pathAndQuery);
// The same, with the base URL's origin already taken apart (UpstreamClient::origin()).
QByteArray upstreamTarget(const UpstreamOrigin &origin, const QUrl &base,
                          const QByteArray &pathAndQuery);

class RelayCall final : public QObject, private UpstreamReply::Listener {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(RelayCall)
public:
    RelayCall(UpstreamClient *upstream, const QUrl &upstreamBase, RelayRequest request,
              QTcpSocket *client, QObject *parent = nullptr);
    ~RelayCall() override;

    // After finished(): the upstream's status (0: no answer), whether it was an event stream,
    // and the usage it reported (only with RelayRequest::captureUsage; reported=false when the
    // answer had none, was compressed or was cut short).
    int upstreamStatus() const;
    bool streamed() const { return m_capture.eventStream(); }
    Usage usage() const;

Q_SIGNALS:
    // The exchange is over. `reusable`: the client connection may serve another request.
    void finished(bool reusable);

private:
    void upstreamReadyRead(UpstreamReply *) override { pump(); }
    void pump();
    void unreachable();
    QByteArray headBytes(qsizetype extra);
    void complete();
    void end(bool reusable);

    QPointer<QTcpSocket> m_client;
    std::unique_ptr<UpstreamReply> m_reply;
    bool m_keepAlive;
    bool m_head;
    bool m_anthropic;
    HeaderList m_answerHeaders;
    bool m_headWritten = false;
    bool m_chunked = false;
    bool m_watchingWrites = false;
    bool m_done = false;
    bool m_captureUsage = false;
    bool m_completed = false; // the whole answer came
    accounting::AnswerCapture m_capture;
};

} // namespace llmproxy
