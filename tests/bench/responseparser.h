// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>

namespace llmproxy::bench {

// An incremental parser for one HTTP/1.1 response: status line, headers, then a body delimited
// by Content-Length, chunked (a stream answered from a batch, issue 11), or by the end of the
// connection when there is neither. Chunk extensions and trailers are not expected.
class ResponseParser {
public:
    enum class State { Incomplete, Complete, Error };

    // Append received bytes; returns the state after them.
    State feed(const char *data, qsizetype size);
    // The peer closed the connection: completes a body that runs to the end, else an error.
    State finish();

    State state() const { return m_state; }
    int status() const { return m_status; }
    QByteArray body() const;
    // Why the response is unusable (Error state only).
    const QByteArray &error() const { return m_error; }

private:
    State fail(const QByteArray &why);
    State parseHead();
    State parseChunks();

    QByteArray m_buffer;
    State m_state = State::Incomplete;
    int m_status = 0;
    qsizetype m_bodyStart = -1;  // offset of the body in m_buffer once the head is parsed
    qsizetype m_bodyLength = -1; // -1: until the connection ends
    bool m_chunked = false;
    qsizetype m_chunkPos = -1; // where the next chunk's size line starts in m_buffer
    QByteArray m_decoded;      // the chunked body without its framing
    QByteArray m_error;
};

} // namespace llmproxy::bench
