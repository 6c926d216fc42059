// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Looks at each connection's bytes before Qt's HTTP parser does, to mend what Qt 6.4's
// server lacks: a body size limit enforced before the body is buffered, refusing requests
// whose headers Qt would silently drop, answering "Expect: 100-continue", and knowing each
// request's HTTP version and Connection header (for keep-alive).

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>

class QAbstractSocket;

namespace llmproxy::http {

struct GateLimits {
    qint64 maxBody = 32LL * 1024 * 1024;
    int maxHeaderFields = 96;            // Qt 6.4 drops every header past 100 fields
    qsizetype maxHeaderLine = 64 * 1024; // ... or with a field over 100 KiB
    qsizetype maxHeaderBlock = 128 * 1024;
    qsizetype maxRequestLine = 16 * 1024; // longer: 414 (OpenAI's paths are short)
    qsizetype maxChunkLine = 4 * 1024;    // a chunk-size line with its extensions
};

class RequestGate {
public:
    struct Verdict {
        enum Kind { Pass, SendContinue, Reject } kind = Pass;
        int status = 0;  // for Reject
        QString message; // for Reject
    };

    explicit RequestGate(const GateLimits &limits)
        : m_limits(limits) {}

    // Bytes that have just arrived on the connection, in order, none skipped.
    Verdict feed(QByteArrayView bytes);
    // Like feed(), but stops right after the end of a message: returns how many of `bytes`
    // it framed (all of them unless a message ended there, or the verdict is Reject), and
    // *ended tells whether a message ended. The front end uses it to cut the stream into
    // messages and hand them on one at a time.
    qsizetype feedMessage(QByteArrayView bytes, Verdict *verdict, bool *ended);

    // Where the gate stands: between messages (nothing of the next one seen), in a header
    // block, or in a body. For the deadlines.
    enum class Stage { Idle, Headers, Body };
    Stage stage() const;

    // Whether the request being framed (or, between requests, the last one) targets an
    // Anthropic path (isAnthropicRequestStart), judged from as much of its request line as came:
    // the front end's own refusals of it are then in Anthropic's error shape.
    bool anthropicTarget() const;

    // For each request whose headers were seen, in order: whether the connection may stay
    // open after its answer. The front end takes one per request it handles.
    bool takeKeepAlive();

private:
    enum class Phase { Headers, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, Failed };
    Verdict parseHeaders(qsizetype end);
    Verdict run(QByteArrayView &bytes, bool stopAtMessageEnd);
    void startMessage();

    GateLimits m_limits;
    Phase m_phase = Phase::Headers;
    QByteArray m_buffer;      // header block (or a chunk-size line) so far
    qint64 m_remaining = 0;   // body or chunk bytes still to come
    qint64 m_bodyBytes = 0;   // decoded body bytes of this message so far
    QList<bool> m_keepAlive;  // freed when empty: nothing for a connection between requests
    bool m_ended = false;     // a message ended in the current run()
    bool m_anthropic = false; // the last request line seen targets an Anthropic path
};

// Frees a connection's read and write buffers while they are empty, e.g. once its request is
// held. Qt 6.4 keeps a 16 KiB read chunk per socket after the first read, and two of its pages
// stay resident (its header with the data, and its terminator): about 8 KiB per held client,
// half of what a held request cost. QIODevice::open(), which QAbstractSocket does not override,
// drops both buffers and leaves the connection as it was; the next read allocates afresh.
// Does nothing (and returns false) unless the socket is connected, nothing is buffered either
// way and no read transaction is open, so no byte is ever lost.
bool releaseIdleBuffers(QAbstractSocket *socket);

} // namespace llmproxy::http
