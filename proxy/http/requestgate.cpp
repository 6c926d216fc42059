// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/requestgate.h"

#include "api/httpanswer.h"

#include <QAbstractSocket>

#include <algorithm>
#include <optional>
#include <utility>

namespace llmproxy::http {

namespace {
RequestGate::Verdict reject(int status, const QString &message) {
    return {RequestGate::Verdict::Reject, status, message};
}

bool equalsIgnoringCase(QByteArrayView a, QByteArrayView b) {
    return a.size() == b.size() &&
           QByteArray(a.data(), a.size()).compare(b, Qt::CaseInsensitive) == 0;
}

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

// A token (RFC 9110 §5.6.2): what a method or a field name is made of.
bool isToken(QByteArrayView s) {
    const auto tokenChar = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) ||
               QByteArrayView("!#$%&'*+-.^_`|~").contains(c);
    };
    return !s.isEmpty() && std::all_of(s.begin(), s.end(), tokenChar);
}

// "method SP request-target SP HTTP/d.d" (RFC 9112 §3). Whether the version is older than
// HTTP/1.1 (so no keep-alive by default), or nothing if the line is malformed.
std::optional<bool> parseRequestLine(QByteArrayView line) {
    const qsizetype first = line.indexOf(' ');
    const qsizetype last = line.lastIndexOf(' ');
    if (first <= 0 || last <= first + 1 || !isToken(line.first(first)))
        return std::nullopt;
    for (const char c : line.sliced(first + 1, last - first - 1)) {
        if (static_cast<uchar>(c) <= ' ' || c == '\x7f')
            return std::nullopt;
    }
    const QByteArrayView version = line.sliced(last + 1);
    if (version.size() != 8 || !version.startsWith("HTTP/") || !isDigit(version[5]) ||
        version[6] != '.' || !isDigit(version[7]))
        return std::nullopt;
    return version[5] == '0' || (version[5] == '1' && version[7] == '0');
}

// The offset of the first LF in `data` that no CR precedes (`previous` comes before data[0]).
qsizetype bareLineFeed(QByteArrayView data, char previous) {
    for (qsizetype i = data.indexOf('\n'); i >= 0; i = data.indexOf('\n', i + 1)) {
        if ((i == 0 ? previous : data[i - 1]) != '\r')
            return i;
    }
    return -1;
}
} // namespace

void RequestGate::startMessage() {
    m_phase = Phase::Headers;
    m_buffer.clear();
    m_remaining = 0;
    m_bodyBytes = 0;
    m_ended = true;
}

RequestGate::Stage RequestGate::stage() const {
    if (m_phase == Phase::Headers)
        return m_buffer.isEmpty() ? Stage::Idle : Stage::Headers;
    return Stage::Body;
}

bool RequestGate::anthropicTarget() const {
    if (m_phase == Phase::Headers && !m_buffer.isEmpty())
        return isAnthropicRequestStart(m_buffer); // a request line still arriving
    return m_anthropic;
}

RequestGate::Verdict RequestGate::feed(QByteArrayView bytes) {
    return run(bytes, false);
}

qsizetype RequestGate::feedMessage(QByteArrayView bytes, Verdict *verdict, bool *ended) {
    QByteArrayView rest = bytes;
    const Verdict v = run(rest, true);
    if (verdict)
        *verdict = v;
    if (ended)
        *ended = m_ended;
    return bytes.size() - rest.size();
}

RequestGate::Verdict RequestGate::run(QByteArrayView &bytes, bool stopAtMessageEnd) {
    Verdict result;
    m_ended = false;
    while (!bytes.isEmpty() && !(stopAtMessageEnd && m_ended)) {
        switch (m_phase) {
        case Phase::Failed:
            return reject(400, QStringLiteral("Malformed request"));
        case Phase::Headers:
        case Phase::ChunkSize: {
            // Accumulate the whole header block, or one chunk-size line.
            const bool headers = m_phase == Phase::Headers;
            if (headers && m_buffer.isEmpty()) {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                while (!bytes.isEmpty() && (bytes.front() == '\r' || bytes.front() == '\n'))
                    bytes = bytes.sliced(1);
                if (bytes.isEmpty())
                    return result;
            }
            const QByteArrayView terminator =
                headers ? QByteArrayView("\r\n\r\n") : QByteArrayView("\r\n");
            const qsizetype before = m_buffer.size();
            // Where the terminator starts, counted from the start of m_buffer. It may straddle
            // what we had and what just came. `bytes` is searched in place and only what
            // belongs to this block is copied: one read may hold thousands of messages.
            qsizetype end = -1;
            if (const qsizetype overlap = std::min(before, terminator.size() - 1); overlap > 0) {
                QByteArray joint = m_buffer.right(overlap);
                joint.append(bytes.first(std::min(bytes.size(), terminator.size() - 1)));
                if (const qsizetype at = joint.indexOf(terminator); at >= 0)
                    end = before - overlap + at;
            }
            if (end < 0) {
                if (const qsizetype at = bytes.indexOf(terminator); at >= 0)
                    end = before + at;
            }
            // The block is too large when more than maxHeaderBlock bytes precede its
            // terminator. That is certain once `tooLargeAt` bytes came without one, wherever
            // the reads split the bytes, so the verdict does not depend on how they arrive.
            const qsizetype limit = headers ? m_limits.maxHeaderBlock : m_limits.maxChunkLine;
            const qsizetype tooLargeAt = limit + terminator.size();
            const bool tooLarge = end >= 0 ? end > limit : before + bytes.size() >= tooLargeAt;
            const qsizetype fresh = end >= 0 ? end + terminator.size() - before : bytes.size();
            // Qt 6.4 also ends lines at a bare LF: the gate would frame such a request
            // differently (and miss its body), so it is refused.
            const bool bareLf =
                headers && bareLineFeed(bytes.first(std::min(fresh, tooLargeAt - before)),
                                        before > 0 ? m_buffer.back() : '\0') >= 0;
            if (headers && (tooLarge || bareLf)) {
                // Refused before the block is whole: judged by the request line so far.
                QByteArray seen = m_buffer;
                seen.append(bytes.first(std::min<qsizetype>(bytes.size(), tooLargeAt)));
                m_anthropic = isAnthropicRequestStart(seen);
            }
            if (bareLf) {
                m_phase = Phase::Failed;
                return reject(400, QStringLiteral("Malformed request: a line ends in a bare LF"));
            }
            if (tooLarge) {
                m_phase = Phase::Failed;
                return reject(431, headers ? QStringLiteral("Request headers are too large "
                                                            "(over %1 bytes)")
                                                 .arg(m_limits.maxHeaderBlock)
                                           : QStringLiteral("A chunk-size line is too long "
                                                            "(over %1 bytes)")
                                                 .arg(m_limits.maxChunkLine));
            }
            if (end < 0) {
                m_buffer.append(bytes);
                bytes = {};
                return result;
            }
            if (end >= before)
                m_buffer.append(bytes.first(end - before));
            else
                m_buffer.truncate(end);
            bytes = bytes.sliced(fresh);
            if (headers) {
                const Verdict v = parseHeaders(end);
                if (v.kind == Verdict::Reject)
                    return v;
                if (v.kind == Verdict::SendContinue)
                    result = v;
            } else {
                // chunk-size = 1*HEXDIG, then optional extensions (RFC 9112 §7.1). The size is
                // checked against what the body may still take digit by digit, so no value,
                // however long, can overflow or slip past the limit.
                const qint64 budget = m_limits.maxBody - m_bodyBytes;
                qint64 size = 0;
                qsizetype digits = 0;
                bool overBudget = false;
                for (; digits < m_buffer.size(); ++digits) {
                    const char c = m_buffer.at(digits);
                    const int value = isDigit(c)               ? c - '0'
                                      : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                      : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                               : -1;
                    if (value < 0)
                        break;
                    if (!overBudget && (value > budget || size > (budget - value) / 16))
                        overBudget = true;
                    if (!overBudget)
                        size = size * 16 + value;
                }
                // What follows the digits: nothing, or blanks then ';' and extensions made of
                // visible characters, blanks and nothing else (Qt ignores all after ';').
                QByteArrayView rest = QByteArrayView(m_buffer).sliced(digits);
                while (!rest.isEmpty() && (rest.front() == ' ' || rest.front() == '\t'))
                    rest = rest.sliced(1);
                const bool extensionsOk =
                    rest.isEmpty() ||
                    (rest.front() == ';' && std::all_of(rest.begin(), rest.end(), [](char c) {
                         return c == '\t' || (static_cast<uchar>(c) >= ' ' && c != '\x7f');
                     }));
                if (digits == 0 || !extensionsOk) {
                    m_phase = Phase::Failed;
                    return reject(400, QStringLiteral("Malformed chunked body"));
                }
                if (overBudget) {
                    m_phase = Phase::Failed;
                    return reject(413, QStringLiteral("Request body is larger than the %1-byte "
                                                      "limit")
                                           .arg(m_limits.maxBody));
                }
                m_buffer.clear();
                if (size == 0) {
                    m_phase = Phase::Trailers;
                } else {
                    m_bodyBytes += size;
                    m_remaining = size;
                    m_phase = Phase::ChunkData;
                }
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
        case Phase::ChunkDataEnd:
        case Phase::Trailers: {
            // The CRLF after a chunk's data or after the last chunk, perhaps split across reads.
            // Qt 6.4 reads just two bytes after the last chunk and parses what follows as a new
            // request, so trailer fields would hide a request from the gate: refuse them.
            const qsizetype n = std::min<qsizetype>(2 - m_buffer.size(), bytes.size());
            m_buffer.append(bytes.first(n));
            bytes = bytes.sliced(n);
            if (!QByteArrayView("\r\n").startsWith(m_buffer)) {
                const bool trailers = m_phase == Phase::Trailers;
                m_phase = Phase::Failed;
                return reject(400, trailers ? QStringLiteral("Trailer fields after a chunked "
                                                             "body are not supported")
                                            : QStringLiteral("Malformed chunked body"));
            }
            if (m_buffer.size() == 2) {
                m_buffer.clear();
                if (m_phase == Phase::Trailers)
                    startMessage();
                else
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
    m_anthropic = isAnthropicRequestStart(block);
    const std::optional<bool> olderThan11 =
        lines.isEmpty() ? std::nullopt : parseRequestLine(lines.constFirst());
    if (!olderThan11) {
        m_phase = Phase::Failed;
        return reject(400, QStringLiteral("Malformed request line"));
    }
    const bool http10 = *olderThan11;
    bool keepAlive = !http10;
    bool close = false;
    bool chunked = false;
    bool expectContinue = false;
    bool connectionUpgrade = false;
    bool webSocket = false;
    std::optional<qint64> contentLength;
    const int fields = int(lines.size()) - 1;
    if (fields > m_limits.maxHeaderFields) {
        m_phase = Phase::Failed;
        return reject(431, QStringLiteral("Too many request header fields (%1; at most %2)")
                               .arg(fields)
                               .arg(m_limits.maxHeaderFields));
    }
    for (qsizetype i = 1; i < lines.size(); ++i) {
        if (lines.at(i).startsWith(' ') || lines.at(i).startsWith('\t')) {
            m_phase = Phase::Failed; // obs-fold, whatever the field it continues
            return reject(400, QStringLiteral("Folded header lines are not supported"));
        }
    }
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArrayView line = lines.at(i);
        if (line.size() > m_limits.maxHeaderLine) {
            m_phase = Phase::Failed;
            return reject(431, QStringLiteral("A request header field is too large (over %1 bytes)")
                                   .arg(m_limits.maxHeaderLine));
        }
        // Qt 6.4 joins folded lines and drops every header after a line it cannot parse, so
        // such a block would frame the body differently there: refuse it (RFC 9112 §5).
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0 || !isToken(line.first(colon))) {
            m_phase = Phase::Failed;
            return reject(400, line.startsWith(' ') || line.startsWith('\t')
                                   ? QStringLiteral("Folded header lines are not supported")
                                   : QStringLiteral("Malformed request header field"));
        }
        const QByteArrayView name = line.first(colon);
        const QByteArrayView value = line.sliced(colon + 1).trimmed();
        if (equalsIgnoringCase(name, "content-length")) {
            bool ok = !value.isEmpty() && value.size() <= 18 &&
                      std::all_of(value.begin(), value.end(), isDigit);
            const qint64 length = ok ? QByteArray(value.data(), value.size()).toLongLong(&ok) : 0;
            // Qt 6.4 uses the first of several: differing ones must not reach it.
            if (!ok || length < 0 || (contentLength && *contentLength != length)) {
                m_phase = Phase::Failed;
                return reject(400, QStringLiteral("Invalid Content-Length"));
            }
            contentLength = length;
        } else if (equalsIgnoringCase(name, "transfer-encoding")) {
            // Only "chunked", once: Qt 6.4 looks for "chunked" anywhere in all the fields
            // combined, so any other coding would be framed one way here and another there.
            if (chunked || !equalsIgnoringCase(value, "chunked")) {
                m_phase = Phase::Failed;
                return reject(501, QStringLiteral("Transfer-Encoding other than a single "
                                                  "\"chunked\" is not supported"));
            }
            chunked = true;
        } else if (equalsIgnoringCase(name, "expect")) {
            // A server ignores this expectation from an HTTP/1.0 client (RFC 9110 §10.1.1).
            expectContinue = !http10 && equalsIgnoringCase(value, "100-continue");
        } else if (equalsIgnoringCase(name, "connection")) {
            const QByteArray v = QByteArray(value.data(), value.size()).toLower();
            if (v.contains("close"))
                close = true;
            else if (v.contains("keep-alive"))
                keepAlive = true;
            connectionUpgrade = connectionUpgrade || v.contains("upgrade");
        } else if (equalsIgnoringCase(name, "upgrade")) {
            webSocket = webSocket || equalsIgnoringCase(value, "websocket");
        }
    }
    if (close)
        keepAlive = false;
    // Both framings at once is how requests are smuggled past a proxy (RFC 9112 §6.1).
    if (chunked && contentLength) {
        m_phase = Phase::Failed;
        return reject(400, QStringLiteral("A request must not carry both Content-Length and "
                                          "Transfer-Encoding"));
    }
    // Qt 6.4 hands a WebSocket upgrade to its own WebSocket server and never finishes it as
    // a request; the proxy serves none.
    if (connectionUpgrade && webSocket) {
        m_phase = Phase::Failed;
        return reject(501, QStringLiteral("WebSocket upgrades are not supported"));
    }
    if (lines.constFirst().size() > m_limits.maxRequestLine) {
        m_phase = Phase::Failed;
        return reject(414, QStringLiteral("The request line is too long (over %1 bytes)")
                               .arg(m_limits.maxRequestLine));
    }
    m_keepAlive.append(keepAlive);
    if (!chunked && contentLength.value_or(0) > m_limits.maxBody) {
        m_phase = Phase::Failed;
        return reject(
            413,
            QStringLiteral("Request body is larger than the %1-byte limit").arg(m_limits.maxBody));
    }
    m_bodyBytes = 0;
    if (chunked) {
        m_phase = Phase::ChunkSize;
    } else if (contentLength.value_or(0) > 0) {
        m_phase = Phase::Body;
        m_remaining = *contentLength;
    } else {
        startMessage();
    }
    Verdict v;
    if (expectContinue && m_phase != Phase::Headers)
        v.kind = Verdict::SendContinue;
    return v;
}

bool RequestGate::takeKeepAlive() {
    if (m_keepAlive.isEmpty())
        return true;
    const bool keepAlive = m_keepAlive.takeFirst();
    if (m_keepAlive.isEmpty())
        m_keepAlive = QList<bool>(); // release the allocation, not just the elements
    return keepAlive;
}

bool releaseIdleBuffers(QAbstractSocket *socket) {
    if (!socket || socket->state() != QAbstractSocket::ConnectedState ||
        socket->isTransactionStarted() || socket->bytesAvailable() > 0 ||
        socket->bytesToWrite() > 0)
        return false;
    return socket->open(socket->openMode());
}

} // namespace llmproxy::http
