// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/streamwaiter.h"

#include "api/batchresult.h"
#include "api/logging.h"
#include "http/httpwriter.h"
#include "http/requestgate.h"
#include "stats/stats.h"

#include <QTcpSocket>

using namespace std::chrono_literals;

namespace llmproxy::http {

namespace {
constexpr std::chrono::milliseconds MinInterval = 1s;
constexpr std::chrono::milliseconds MaxInterval = 5min;
// Keep-alives written per pass of the sweep: streams accepted together fall due together, and
// tens of thousands of writes at once would hold up the thread's other clients. The rest go in
// the next pass, right after the events that waited.
constexpr int SweepBudget = 512;

// A waiting stream's socket between writes: what was written goes to the kernel now (a few
// bytes, taken at once), so that the socket's read and write buffers can be given back: about
// 16 KiB per client that waits for hours (releaseIdleBuffers).
void settle(QTcpSocket *socket) {
    socket->flush();
    releaseIdleBuffers(socket);
}
} // namespace

StreamWaiter::StreamWaiter(const Clock *clock, Stats *stats, QObject *parent)
    : QObject(parent)
    , m_clock(clock)
    , m_stats(stats) {
    m_timer.setSingleShot(true);
    connect(&m_timer, &QTimer::timeout, this, &StreamWaiter::sweep);
}

StreamWaiter::~StreamWaiter() = default;

void StreamWaiter::setKeepAliveInterval(std::chrono::milliseconds interval) {
    m_interval = std::clamp(interval, MinInterval, MaxInterval);
}

void StreamWaiter::hold(quint64 ticket, QTcpSocket *socket, sse::Endpoint endpoint,
                        bool includeUsage, bool keepAlive, const HeaderList &headers) {
    Stream stream{QPointer<QTcpSocket>(socket), endpoint, includeUsage, keepAlive};
    QByteArray head = statusLine(200);
    head += QByteArrayLiteral("Content-Type: text/event-stream; charset=utf-8\r\n"
                              "Cache-Control: no-cache\r\n"
                              "Date: ") +
            currentDate() + QByteArrayLiteral("\r\n");
    for (const auto &[name, value] : headers) {
        if (isSafeHeader(name, value))
            head += name + QByteArrayLiteral(": ") + value + QByteArrayLiteral("\r\n");
    }
    head += keepAlive ? QByteArrayLiteral("Transfer-Encoding: chunked\r\n\r\n")
                      : QByteArrayLiteral("Connection: close\r\n\r\n");
    socket->write(head);
    settle(socket);
    m_streams.emplace(ticket, stream);
    const bool wasIdle = m_due.empty();
    m_due.emplace_back(ticket, m_clock->now() + m_interval);
    if (wasIdle)
        rearm();
    if (m_stats)
        m_stats->recordStreamStarted();
}

void StreamWaiter::write(const Stream &stream, const QByteArray &bytes) {
    if (!stream.socket || stream.socket->state() != QAbstractSocket::ConnectedState ||
        bytes.isEmpty())
        return;
    stream.socket->write(stream.keepAlive ? chunk(bytes) : bytes);
}

StreamWaiter::Ended StreamWaiter::finish(const Stream &stream, const QByteArray &events) {
    QTcpSocket *socket = stream.socket.data();
    if (socket && socket->state() == QAbstractSocket::ConnectedState) {
        // The events and the last chunk in one write: written as two, the socket sent them in
        // two turns of the event loop (two sends, two wake-ups of the client, and the write
        // notifier armed twice), for every one of thousands of streams answered together.
        if (!stream.keepAlive)
            socket->write(events);
        else if (events.isEmpty())
            socket->write(lastChunk());
        else
            socket->write(chunk(events) + lastChunk());
    }
    return Ended{stream.socket, stream.keepAlive};
}

std::optional<StreamWaiter::Ended> StreamWaiter::answer(quint64 ticket, const HttpAnswer &answer) {
    const auto it = m_streams.find(ticket);
    if (it == m_streams.end())
        return std::nullopt;
    const Stream stream = it->second;
    m_streams.erase(it);
    QByteArray events;
    for (const auto &[name, value] : answer.headers) {
        if (!stream.batchNamed && name.compare(BatchIdHeader, Qt::CaseInsensitive) == 0) {
            events += sse::batchIdComment(value);
            break;
        }
    }
    if (answer.status >= 200 && answer.status < 300) {
        sse::ReplayOptions options;
        options.endpoint = stream.endpoint;
        options.includeUsage = stream.includeUsage;
        // Straight into the events (the replay writes nothing when it fails).
        events.reserve(events.size() + 3 * answer.body.size() + 512);
        const std::optional<sse::ReplayError> error = sse::replay(
            options, answer.body, [&events](const QByteArray &more) { events += more; });
        if (!error) {
            ended(StreamEnd::Replayed);
            return finish(stream, events);
        }
        qCWarning(lcHttp).noquote()
            << "an answer could not be replayed as a stream:" << error->message;
        events += sse::errorEvent(
            stream.endpoint,
            errorAnswer(502,
                        QStringLiteral("llm-proxy could not replay the batch's answer as a "
                                       "stream: ") +
                            error->message,
                        ErrorType::Server, "stream_replay_failed"));
        ended(StreamEnd::ErrorEvent);
        return finish(stream, events);
    }
    events += sse::errorEvent(stream.endpoint, answer);
    ended(StreamEnd::ErrorEvent);
    return finish(stream, events);
}

void StreamWaiter::batchKnown(quint64 ticket, const QByteArray &batchId) {
    if (!m_streams.count(ticket))
        return;
    m_named.emplace_back(ticket, batchId);
    m_timer.start(0);
}

void StreamWaiter::forget(quint64 ticket) {
    if (m_streams.erase(ticket) > 0)
        ended(StreamEnd::ClientGone);
}

QList<StreamWaiter::Ended> StreamWaiter::failAll(const HttpAnswer &failure) {
    QList<Ended> endedStreams;
    const auto streams = std::exchange(m_streams, {});
    m_due.clear();
    m_named.clear();
    m_timer.stop();
    for (const auto &[ticket, stream] : streams) {
        ended(StreamEnd::Shutdown);
        endedStreams.append(finish(stream, sse::errorEvent(stream.endpoint, failure)));
    }
    return endedStreams;
}

void StreamWaiter::ended(StreamEnd how) {
    if (m_stats)
        m_stats->recordStreamEnded(how);
}

void StreamWaiter::sweep() {
    const SteadyTime now = m_clock->now();
    // Those due a little later go now too: fewer wake-ups, and no comment comes late.
    const SteadyTime horizon = now + std::min<std::chrono::milliseconds>(m_interval / 10, 1s);
    int budget = SweepBudget;
    quint64 keepAlives = 0;
    while (!m_named.empty() && budget > 0) {
        const auto [ticket, batchId] = std::move(m_named.front());
        m_named.pop_front();
        const auto it = m_streams.find(ticket);
        if (it == m_streams.end())
            continue;
        --budget;
        it->second.batchNamed = true;
        write(it->second, sse::batchIdComment(batchId));
        if (it->second.socket)
            settle(it->second.socket.data());
    }
    while (!m_due.empty() && m_due.front().second <= horizon && budget > 0) {
        const quint64 ticket = m_due.front().first;
        m_due.pop_front();
        const auto it = m_streams.find(ticket);
        if (it == m_streams.end())
            continue; // answered or gone
        --budget;
        write(it->second, sse::keepAliveFor(it->second.endpoint));
        ++keepAlives;
        if (it->second.socket)
            settle(it->second.socket.data());
        m_due.emplace_back(ticket, now + m_interval);
    }
    if (keepAlives > 0 && m_stats)
        m_stats->recordStreamKeepAlives(keepAlives);
    if (budget == 0 && (!m_named.empty() || (!m_due.empty() && m_due.front().second <= horizon))) {
        m_timer.start(0); // more are due: after the events that waited
        return;
    }
    rearm();
}

void StreamWaiter::rearm() {
    if (!m_named.empty()) {
        m_timer.start(0);
        return;
    }
    if (m_due.empty()) {
        m_timer.stop();
        return;
    }
    const auto wait =
        std::chrono::ceil<std::chrono::milliseconds>(m_due.front().second - m_clock->now());
    m_timer.start(timerInterval(std::max(wait, 0ms)));
}

} // namespace llmproxy::http
