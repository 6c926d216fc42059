// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/jsonl.h"

#include "api/json.h"

#include <limits>
#include <utility>

namespace llmproxy::jsonl {

QByteArray encodeInputLine(QByteArrayView customId, QByteArrayView url, QByteArrayView body) {
    const QByteArray quotedId = json::quoted(customId);
    const QByteArray quotedUrl = json::quoted(url);
    QByteArray line;
    line.reserve(quotedId.size() + quotedUrl.size() + body.size() + 64);
    line.append("{\"custom_id\":");
    line.append(quotedId);
    line.append(",\"method\":\"POST\",\"url\":");
    line.append(quotedUrl);
    line.append(",\"body\":");
    json::appendSingleLine(line, body);
    line.append("}\n");
    return line;
}

namespace {

std::optional<OutputLine> failed(QString *error, const QString &message) {
    if (error)
        *error = message;
    return std::nullopt;
}

} // namespace

std::optional<OutputLine> decodeOutputLine(QByteArrayView line, QString *error) {
    // The provider's output is relayed, not judged: read it leniently (see json::Strictness).
    json::ScanError scanError;
    const auto members = json::objectMembers(line, json::Strictness::Lenient, &scanError);
    if (!members)
        return failed(error, QStringLiteral("invalid JSON line: ") + scanError.message);

    OutputLine out;
    const json::Member *customId = json::find(*members, "custom_id");
    std::optional<QByteArray> id;
    if (customId && customId->kind == json::Kind::String)
        id = json::stringValue(customId->value);
    if (!id)
        return failed(error, QStringLiteral("line has no string custom_id"));
    out.customId = std::move(*id);

    const json::Member *response = json::find(*members, "response");
    if (response && response->kind == json::Kind::Object) {
        const auto fields = json::objectMembers(response->value, json::Strictness::Lenient);
        if (!fields) // cannot happen: the whole line was scanned already
            return failed(error, QStringLiteral("invalid response object"));
        out.hasResponse = true;
        if (const json::Member *status = json::find(*fields, "status_code")) {
            const std::optional<qint64> code = json::integerValue(status->value);
            if (code && *code >= 0 && *code <= std::numeric_limits<int>::max())
                out.statusCode = static_cast<int>(*code);
        }
        if (const json::Member *requestId = json::find(*fields, "request_id");
            requestId && requestId->kind == json::Kind::String) {
            out.requestId = json::stringValue(requestId->value).value_or(QByteArray());
        }
        if (const json::Member *body = json::find(*fields, "body"))
            out.body = body->value.toByteArray();
    }

    const json::Member *errorMember = json::find(*members, "error");
    const bool hasError = errorMember && errorMember->kind == json::Kind::Object;
    if (hasError) {
        const auto fields = json::objectMembers(errorMember->value, json::Strictness::Lenient);
        if (!fields)
            return failed(error, QStringLiteral("invalid error object"));
        if (const json::Member *code = json::find(*fields, "code");
            code && code->kind == json::Kind::String) {
            out.errorCode = json::stringValue(code->value).value_or(QByteArray());
        }
        if (const json::Member *message = json::find(*fields, "message");
            message && message->kind == json::Kind::String) {
            out.errorMessage =
                QString::fromUtf8(json::stringValue(message->value).value_or(QByteArray()));
        }
    }

    if (!out.hasResponse && !hasError)
        return failed(error, QStringLiteral("line for custom_id \"") +
                                 QString::fromUtf8(out.customId) +
                                 QStringLiteral("\" has neither a response nor an error object"));
    return out;
}

std::optional<QByteArray> customIdFromLineStart(QByteArrayView lineStart) {
    const QList<json::Member> members = json::leadingMembers(lineStart);
    const json::Member *customId = json::find(members, "custom_id");
    if (!customId || customId->kind != json::Kind::String)
        return std::nullopt;
    return json::stringValue(customId->value);
}

LineSplitter::LineSplitter(std::function<void(QByteArrayView)> onLine)
    : m_onLine(std::move(onLine)) {}

namespace {

// The line without its trailing CR; empty or whitespace-only lines are not delivered.
void deliver(const std::function<void(QByteArrayView)> &onLine, QByteArrayView line) {
    if (!line.isEmpty() && line.back() == '\r')
        line.chop(1);
    for (const char c : line) {
        if (c != ' ' && c != '\t' && c != '\r') {
            onLine(line);
            return;
        }
    }
}

} // namespace

void LineSplitter::feed(QByteArrayView chunk) {
    qsizetype start = 0;
    if (!m_partial.isEmpty()) {
        const qsizetype newline = chunk.indexOf('\n');
        if (newline < 0) {
            m_partial.append(chunk.data(), chunk.size());
            return;
        }
        m_partial.append(chunk.data(), newline);
        const QByteArray line = std::exchange(m_partial, QByteArray());
        deliver(m_onLine, line);
        start = newline + 1;
    }
    // Complete lines in the chunk go out as views, without copying.
    for (;;) {
        const qsizetype newline = chunk.indexOf('\n', start);
        if (newline < 0)
            break;
        deliver(m_onLine, chunk.sliced(start, newline - start));
        start = newline + 1;
    }
    if (start < chunk.size())
        m_partial.append(chunk.data() + start, chunk.size() - start);
}

void LineSplitter::finish() {
    if (m_partial.isEmpty())
        return;
    const QByteArray line = std::exchange(m_partial, QByteArray());
    deliver(m_onLine, line);
}

} // namespace llmproxy::jsonl
