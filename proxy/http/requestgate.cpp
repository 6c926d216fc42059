// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/requestgate.h"

#include <QList>

namespace llmproxy::http {

namespace {
RequestGate::Verdict reject(int status, const QString &message) {
    return {RequestGate::Verdict::Reject, status, message};
}

bool equalsIgnoringCase(QByteArrayView a, QByteArrayView b) {
    return a.size() == b.size() &&
           QByteArray(a.data(), a.size()).compare(b, Qt::CaseInsensitive) == 0;
}
} // namespace

void RequestGate::startMessage() {
    m_phase = Phase::Headers;
    m_buffer.clear();
    m_remaining = 0;
    m_bodyBytes = 0;
}

RequestGate::Verdict RequestGate::feed(QByteArrayView bytes) {
    Verdict result;
    while (!bytes.isEmpty()) {
        switch (m_phase) {
        case Phase::Failed:
            return reject(400, QStringLiteral("Malformed request"));
        case Phase::Headers:
        case Phase::ChunkSize:
        case Phase::Trailers: {
            // Accumulate one line (chunk size, trailer) or the whole header block.
            if (m_phase == Phase::Headers && m_buffer.isEmpty()) {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                while (!bytes.isEmpty() && (bytes.front() == '\r' || bytes.front() == '\n'))
                    bytes = bytes.sliced(1);
                if (bytes.isEmpty())
                    return result;
            }
            const qsizetype before = m_buffer.size();
            m_buffer.append(bytes);
            const QByteArrayView terminator =
                m_phase == Phase::Headers ? QByteArrayView("\r\n\r\n") : QByteArrayView("\r\n");
            const qsizetype from = std::max<qsizetype>(0, before - terminator.size() + 1);
            qsizetype end = m_buffer.indexOf(terminator, from);
            if (end < 0) {
                if (m_buffer.size() > m_limits.maxHeaderBlock) {
                    m_phase = Phase::Failed;
                    return reject(431,
                                  QStringLiteral("Request headers are too large (over %1 bytes)")
                                      .arg(m_limits.maxHeaderBlock));
                }
                return result;
            }
            const qsizetype consumedHere = end + terminator.size() - before;
            bytes = bytes.sliced(consumedHere);
            m_buffer.truncate(end);
            if (m_phase == Phase::Headers) {
                const Verdict v = parseHeaders(end);
                if (v.kind == Verdict::Reject)
                    return v;
                if (v.kind == Verdict::SendContinue)
                    result = v;
            } else if (m_phase == Phase::ChunkSize) {
                const qsizetype semicolon = m_buffer.indexOf(';');
                bool ok = false;
                const qint64 size = m_buffer.left(semicolon < 0 ? m_buffer.size() : semicolon)
                                        .trimmed()
                                        .toLongLong(&ok, 16);
                if (!ok || size < 0) {
                    m_phase = Phase::Failed;
                    return reject(400, QStringLiteral("Malformed chunked body"));
                }
                m_buffer.clear();
                if (size == 0) {
                    m_phase = Phase::Trailers;
                } else {
                    m_bodyBytes += size;
                    if (m_bodyBytes > m_limits.maxBody) {
                        m_phase = Phase::Failed;
                        return reject(
                            413, QStringLiteral("Request body is larger than the %1-byte limit")
                                     .arg(m_limits.maxBody));
                    }
                    m_remaining = size;
                    m_phase = Phase::ChunkData;
                }
            } else { // Trailers: an empty line ends the message
                const bool empty = m_buffer.isEmpty();
                m_buffer.clear();
                if (empty)
                    startMessage();
            }
            break;
        }
        case Phase::Body:
        case Phase::ChunkData: {
            const qint64 take = std::min<qint64>(m_remaining, bytes.size());
            bytes = bytes.sliced(take);
            m_remaining -= take;
            if (m_remaining == 0) {
                if (m_phase == Phase::Body)
                    startMessage();
                else
                    m_phase = Phase::ChunkDataEnd;
            }
            break;
        }
        case Phase::ChunkDataEnd: {
            // Expect the CRLF after a chunk's data; tolerate it split across reads.
            const qsizetype n = std::min<qsizetype>(2 - m_buffer.size(), bytes.size());
            m_buffer.append(bytes.first(n));
            bytes = bytes.sliced(n);
            if (m_buffer.size() == 2) {
                if (m_buffer != "\r\n") {
                    m_phase = Phase::Failed;
                    return reject(400, QStringLiteral("Malformed chunked body"));
                }
                m_buffer.clear();
                m_phase = Phase::ChunkSize;
            }
            break;
        }
        }
    }
    return result;
}

RequestGate::Verdict RequestGate::parseHeaders(qsizetype end) {
    // Own the header block: the views below point into it, and m_buffer is reused.
    const QByteArray owned = std::exchange(m_buffer, QByteArray());
    const QByteArrayView block(owned.constData(), std::min(end, owned.size()));
    const QList<QByteArrayView> lines = [&] {
        QList<QByteArrayView> out;
        qsizetype start = 0;
        while (start <= block.size()) {
            qsizetype nl = block.indexOf("\r\n", start);
            if (nl < 0)
                nl = block.size();
            out.append(block.sliced(start, nl - start));
            start = nl + 2;
        }
        return out;
    }();
    if (lines.isEmpty() || lines.constFirst().isEmpty()) {
        m_phase = Phase::Failed;
        return reject(400, QStringLiteral("Malformed request line"));
    }
    const QByteArrayView requestLine = lines.constFirst();
    const bool http10 = requestLine.endsWith("HTTP/1.0");
    bool keepAlive = !http10;
    bool chunked = false;
    bool expectContinue = false;
    qint64 contentLength = 0;
    const int fields = int(lines.size()) - 1;
    if (fields > m_limits.maxHeaderFields) {
        m_phase = Phase::Failed;
        return reject(431, QStringLiteral("Too many request header fields (%1; at most %2)")
                               .arg(fields)
                               .arg(m_limits.maxHeaderFields));
    }
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArrayView line = lines.at(i);
        if (line.size() > m_limits.maxHeaderLine) {
            m_phase = Phase::Failed;
            return reject(431, QStringLiteral("A request header field is too large (over %1 bytes)")
                                   .arg(m_limits.maxHeaderLine));
        }
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0)
            continue;
        const QByteArrayView name = line.first(colon).trimmed();
        const QByteArrayView value = line.sliced(colon + 1).trimmed();
        if (equalsIgnoringCase(name, "content-length")) {
            bool ok = false;
            contentLength = QByteArray(value.data(), value.size()).toLongLong(&ok);
            if (!ok || contentLength < 0) {
                m_phase = Phase::Failed;
                return reject(400, QStringLiteral("Invalid Content-Length"));
            }
        } else if (equalsIgnoringCase(name, "transfer-encoding")) {
            chunked = QByteArray(value.data(), value.size()).toLower().contains("chunked");
        } else if (equalsIgnoringCase(name, "expect")) {
            expectContinue = equalsIgnoringCase(value, "100-continue");
        } else if (equalsIgnoringCase(name, "connection")) {
            const QByteArray v = QByteArray(value.data(), value.size()).toLower();
            if (v.contains("close"))
                keepAlive = false;
            else if (v.contains("keep-alive"))
                keepAlive = true;
        }
    }
    m_keepAlive.push_back(keepAlive);
    if (!chunked && contentLength > m_limits.maxBody) {
        m_phase = Phase::Failed;
        return reject(
            413,
            QStringLiteral("Request body is larger than the %1-byte limit").arg(m_limits.maxBody));
    }
    m_bodyBytes = 0;
    if (chunked) {
        m_phase = Phase::ChunkSize;
    } else if (contentLength > 0) {
        m_phase = Phase::Body;
        m_remaining = contentLength;
    } else {
        startMessage();
    }
    Verdict v;
    if (expectContinue && m_phase != Phase::Headers)
        v.kind = Verdict::SendContinue;
    return v;
}

bool RequestGate::takeKeepAlive() {
    if (m_keepAlive.empty())
        return true;
    const bool keepAlive = m_keepAlive.front();
    m_keepAlive.pop_front();
    return keepAlive;
}

} // namespace llmproxy::http
