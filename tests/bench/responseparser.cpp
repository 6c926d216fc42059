// SPDX-License-Identifier: GPL-3.0-or-later
#include "responseparser.h"

#include <QList>

namespace llmproxy::bench {

namespace {
constexpr qsizetype MaxHead = 64 * 1024;
constexpr qsizetype MaxBody = 64LL * 1024 * 1024;
} // namespace

ResponseParser::State ResponseParser::feed(const char *data, qsizetype size) {
    if (m_state != State::Incomplete)
        return m_state == State::Complete && size > 0 ? fail("bytes after the response") : m_state;
    m_buffer.append(data, size);
    if (m_bodyStart < 0) {
        if (parseHead() != State::Incomplete || m_bodyStart < 0)
            return m_state;
    }
    if (m_chunked)
        return parseChunks();
    const qsizetype have = m_buffer.size() - m_bodyStart;
    if (m_bodyLength >= 0) {
        if (have > m_bodyLength)
            return fail("bytes after the response");
        if (have == m_bodyLength)
            m_state = State::Complete;
    } else if (have > MaxBody) {
        return fail("body too large");
    }
    return m_state;
}

ResponseParser::State ResponseParser::finish() {
    if (m_state != State::Incomplete)
        return m_state;
    if (m_bodyStart >= 0 && m_bodyLength < 0 && !m_chunked) {
        m_state = State::Complete;
        return m_state;
    }
    return fail(m_bodyStart < 0 ? QByteArrayLiteral("connection closed before the headers")
                                : QByteArrayLiteral("connection closed inside the body"));
}

QByteArray ResponseParser::body() const {
    if (m_chunked)
        return m_decoded;
    return m_bodyStart < 0 ? QByteArray() : m_buffer.sliced(m_bodyStart);
}

ResponseParser::State ResponseParser::parseChunks() {
    for (;;) {
        const qsizetype lineEnd = m_buffer.indexOf("\r\n", m_chunkPos);
        if (lineEnd < 0)
            return m_state;
        bool ok = false;
        const qsizetype size = m_buffer.mid(m_chunkPos, lineEnd - m_chunkPos).toLongLong(&ok, 16);
        if (!ok || size < 0 || m_decoded.size() + size > MaxBody)
            return fail("bad chunk size");
        if (m_buffer.size() < lineEnd + 2 + size + 2)
            return m_state;
        if (size == 0) {
            if (m_buffer.size() > lineEnd + 4)
                return fail("bytes after the response");
            m_state = State::Complete;
            return m_state;
        }
        m_decoded += m_buffer.sliced(lineEnd + 2, size);
        m_chunkPos = lineEnd + 2 + size + 2;
    }
}

ResponseParser::State ResponseParser::fail(const QByteArray &why) {
    m_state = State::Error;
    m_error = why;
    return m_state;
}

ResponseParser::State ResponseParser::parseHead() {
    const qsizetype end = m_buffer.indexOf("\r\n\r\n");
    if (end < 0) {
        if (m_buffer.size() > MaxHead)
            return fail("response head too large");
        return m_state;
    }
    const QList<QByteArray> lines = m_buffer.first(end).split('\n');
    // "HTTP/1.1 200 OK"
    const QByteArray statusLine = lines.constFirst().trimmed();
    if (!statusLine.startsWith("HTTP/1.") || statusLine.size() < 12 || statusLine.at(8) != ' ')
        return fail("not an HTTP/1.x status line: " + statusLine.left(80));
    bool ok = false;
    m_status = statusLine.mid(9, 3).toInt(&ok);
    if (!ok)
        return fail("bad status code: " + statusLine.left(80));
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArray &line = lines.at(i);
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0)
            return fail("bad header line");
        const QByteArray name = line.first(colon).trimmed().toLower();
        const QByteArray value = line.sliced(colon + 1).trimmed();
        if (name == "content-length") {
            m_bodyLength = value.toLongLong(&ok);
            if (!ok || m_bodyLength < 0 || m_bodyLength > MaxBody)
                return fail("bad Content-Length");
        } else if (name == "transfer-encoding" && value.toLower() == "chunked") {
            m_chunked = true;
        } else if (name == "transfer-encoding" && value.toLower() != "identity") {
            return fail("unsupported Transfer-Encoding: " + value.left(40));
        }
    }
    if (m_status >= 100 && m_status < 200) {
        // An interim answer (100 Continue): drop it and parse what follows.
        m_buffer.remove(0, end + 4);
        m_bodyLength = -1;
        return m_buffer.isEmpty() ? m_state : parseHead();
    }
    m_bodyStart = end + 4;
    m_chunkPos = m_bodyStart;
    return m_state;
}

} // namespace llmproxy::bench
