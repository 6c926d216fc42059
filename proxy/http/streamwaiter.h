// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Streaming clients whose request waits for its batch (issue 11). Each gets its answer's
// headers at once (200, text/event-stream), an SSE comment every keep-alive interval while the
// batch runs, and then the replay of the finished result in its endpoint's event format
// (api/ssereplay.h), or that format's error event; then the stream ends.
//
// A front end (one per I/O thread) has one waiter. Tens of thousands of streams may wait at
// once, so a stream costs a few dozen bytes here and there is one timer for all of them: every
// stream has the same interval, so the keep-alives fall due in the order the streams were last
// written to, and one queue in that order is all the sweep reads.
//
// Framing: with a keep-alive connection the body is chunked (the connection serves the next
// request once the stream ends, as the provider's own streams do); otherwise (Connection: close,
// HTTP/1.0) it is delimited by closing the connection.

#include "api/clock.h"
#include "api/httpanswer.h"
#include "api/ssereplay.h"
#include "stats/stats.h"

#include <QObject>
#include <QPointer>
#include <QTimer>

#include <chrono>
#include <deque>
#include <optional>
#include <unordered_map>

class QTcpSocket;

namespace llmproxy {

namespace http {

class StreamWaiter final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StreamWaiter)
public:
    StreamWaiter(const Clock *clock, Stats *stats, QObject *parent = nullptr);
    ~StreamWaiter() override;

    // 1 s to 5 min (clamped); streams already waiting keep their next due time.
    void setKeepAliveInterval(std::chrono::milliseconds interval);
    std::chrono::milliseconds keepAliveInterval() const { return m_interval; }

    // Writes the stream's headers (plus `headers`, such as CORS ones) to `socket` and holds it
    // until answer(), forget() or failAll().
    void hold(quint64 ticket, QTcpSocket *socket, sse::Endpoint endpoint, bool includeUsage,
              bool keepAlive, const HeaderList &headers = {});
    bool holds(quint64 ticket) const { return m_streams.count(ticket) > 0; }
    qsizetype waiting() const { return qsizetype(m_streams.size()); }

    // What the front end does with a connection whose stream ended: close it (!keepAlive) or
    // hand on its next request.
    struct Ended {
        QPointer<QTcpSocket> socket; // null if the client is gone
        bool keepAlive = false;
    };
    // The ticket's request went out in this batch: a `: x-llm-proxy-batch-id` comment (again if
    // the request had to go out in another batch), written by the sweep like the keep-alives (a
    // batch names thousands of streams at once).
    void batchKnown(quint64 ticket, const QByteArray &batchId);
    // The ticket's answer: a `: x-llm-proxy-batch-id` comment when the answer names its batch
    // and batchKnown() did not, then the replay of a 2xx body, or the error event of any other
    // answer (and of a body that cannot be replayed); then the end of the stream. nullopt if the
    // ticket is not held.
    std::optional<Ended> answer(quint64 ticket, const HttpAnswer &answer);
    // The client hung up: nothing more is written.
    void forget(quint64 ticket);
    // Every waiting stream gets `failure` as its error event and ends (shutdown).
    QList<Ended> failAll(const HttpAnswer &failure);

private:
    struct Stream {
        QPointer<QTcpSocket> socket;
        sse::Endpoint endpoint = sse::Endpoint::ChatCompletions;
        bool includeUsage = false;
        bool keepAlive = false;  // chunked body; else close-delimited
        bool batchNamed = false; // the sweep wrote a batchKnown() comment
    };
    void write(const Stream &stream, const QByteArray &bytes);
    Ended finish(const Stream &stream, const QByteArray &events);
    void ended(StreamEnd how); // counted in Stats
    void sweep();
    void rearm();

    const Clock *m_clock;
    Stats *m_stats;
    std::chrono::milliseconds m_interval{std::chrono::seconds(15)};
    std::unordered_map<quint64, Stream> m_streams;
    // (ticket, when its next keep-alive is due), in due order; entries of streams that ended
    // are dropped when they come up.
    std::deque<std::pair<quint64, SteadyTime>> m_due;
    // Batch id comments to write: (ticket, batch id), in the order the batches were created.
    std::deque<std::pair<quint64, QByteArray>> m_named;
    QTimer m_timer;
};

} // namespace http
} // namespace llmproxy
