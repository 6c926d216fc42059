// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/anthropicsse.h"

#include "api/json.h"
#include "api/textpieces.h"

#include <algorithm>

namespace llmproxy::sse::anthropic {

namespace {

using json::Kind;
using json::Member;

QList<QByteArrayView> textPieces(QByteArrayView text, const Options &options) {
    return sse::textPieces(text, options.maxPieces, options.minPieceBytes);
}

// The elements of a JSON array (raw bytes, trimmed), split at its top-level commas.
QList<QByteArrayView> arrayElements(QByteArrayView array) {
    QList<QByteArrayView> elements;
    QByteArrayView list = array.trimmed();
    if (list.size() < 2)
        return elements;
    list = list.sliced(1, list.size() - 2);
    int depth = 0;
    bool inString = false, escaped = false;
    qsizetype start = 0;
    for (qsizetype k = 0; k <= list.size(); ++k) {
        const char c = k < list.size() ? list[k] : ',';
        if (inString) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                inString = false;
            continue;
        }
        if (c == '"') {
            inString = true;
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if (c == '}' || c == ']') {
            --depth;
        } else if (c == ',' && depth == 0) {
            const QByteArrayView element = list.sliced(start, k - start).trimmed();
            if (!element.isEmpty())
                elements.append(element);
            start = k + 1;
        }
    }
    return elements;
}

void appendEvent(QByteArray &out, QByteArrayView name, const QByteArray &data) {
    out += "event: ";
    out += name;
    out += "\ndata: ";
    out += data;
    out += "\n\n";
}

// An object from raw members: `replace` gives a member a new raw value, or leaves it out (an
// empty value); members are kept in their order and bytes otherwise.
QByteArray rebuilt(const QList<Member> &members,
                   const QList<std::pair<QByteArrayView, QByteArray>> &replace) {
    QByteArray out = "{";
    bool first = true;
    for (const Member &m : members) {
        QByteArray value;
        bool replaced = false;
        for (const auto &[key, raw] : replace) {
            if (m.key == key) {
                value = raw;
                replaced = true;
            }
        }
        if (replaced && value.isEmpty())
            continue;
        if (!first)
            out += ',';
        first = false;
        out += json::quoted(m.key);
        out += ':';
        if (replaced)
            out += value;
        else
            json::appendSingleLine(out, m.value);
    }
    out += '}';
    return out;
}

struct Block {
    QByteArray type;
    QList<Member> members;
};

QByteArray delta(int index, const QByteArray &deltaObject) {
    return R"({"type":"content_block_delta","index":)" + QByteArray::number(index) +
           R"(,"delta":)" + deltaObject + '}';
}

std::optional<QByteArray> stringOf(const QList<Member> &members, QByteArrayView key) {
    const Member *m = json::find(members, key);
    if (!m || m->kind != Kind::String)
        return std::nullopt;
    return json::stringValue(m->value);
}

} // namespace

Result replay(QByteArrayView message, const Options &options) {
    Result result;
    const auto fail = [&result](const QString &why) {
        result.error = why;
        return result;
    };
    const std::optional<QList<Member>> top =
        json::objectMembers(message, json::Strictness::Lenient);
    if (!top)
        return fail(QStringLiteral("the answer is not a JSON object"));
    if (stringOf(*top, "type").value_or(QByteArray()) != "message")
        return fail(QStringLiteral("the answer is not a message (its type is not \"message\")"));
    const Member *content = json::find(*top, "content");
    if (!content || content->kind != Kind::Array)
        return fail(QStringLiteral("the message has no content array"));
    const Member *usage = json::find(*top, "usage");
    if (!usage || usage->kind != Kind::Object)
        return fail(QStringLiteral("the message has no usage object"));
    const std::optional<QList<Member>> usageMembers =
        json::objectMembers(usage->value, json::Strictness::Lenient);
    if (!usageMembers)
        return fail(QStringLiteral("the message's usage is not an object"));

    // The blocks, each checked before anything is written.
    QList<Block> blocks;
    for (const QByteArrayView element : arrayElements(content->value)) {
        std::optional<QList<Member>> members =
            json::objectMembers(element, json::Strictness::Lenient);
        const std::optional<QByteArray> type = members ? stringOf(*members, "type") : std::nullopt;
        if (!type)
            return fail(QStringLiteral("content[%1] is not a content block").arg(blocks.size()));
        blocks.append({*type, std::move(*members)});
    }

    QByteArray out;
    // message_start: the message as it begins, with the input usage.
    const QByteArray startUsage = rebuilt(*usageMembers, {{"output_tokens", "0"}});
    const QByteArray started = rebuilt(*top, {{"content", "[]"},
                                              {"stop_reason", "null"},
                                              {"stop_sequence", "null"},
                                              {"usage", startUsage}});
    appendEvent(out, "message_start", R"({"type":"message_start","message":)" + started + '}');

    for (qsizetype i = 0; i < blocks.size(); ++i) {
        const Block &block = blocks.at(i);
        const int index = int(i);
        QByteArray startBlock;
        QList<QByteArray> deltas;
        if (block.type == "text") {
            const std::optional<QByteArray> text = stringOf(block.members, "text");
            if (!text)
                return fail(QStringLiteral("content[%1].text is not a string").arg(i));
            const Member *citations = json::find(block.members, "citations");
            const bool cited = citations && citations->kind == Kind::Array;
            startBlock = rebuilt(block.members,
                                 {{"text", "\"\""}, {"citations", cited ? "[]" : QByteArray()}});
            for (const QByteArrayView piece : textPieces(*text, options))
                deltas.append(R"({"type":"text_delta","text":)" + json::quoted(piece) + '}');
            if (cited) {
                // Each citation as its own delta, byte for byte.
                for (const QByteArrayView citation : arrayElements(citations->value))
                    deltas.append(R"({"type":"citations_delta","citation":)" +
                                  json::singleLine(citation) + '}');
            }
        } else if (block.type == "tool_use" || block.type == "server_tool_use") {
            const Member *input = json::find(block.members, "input");
            if (!input || input->kind != Kind::Object)
                return fail(QStringLiteral("content[%1].input is not an object").arg(i));
            startBlock = rebuilt(block.members, {{"input", "{}"}});
            const QByteArray inputJson = json::singleLine(input->value);
            for (const QByteArrayView piece : textPieces(inputJson, options))
                deltas.append(R"({"type":"input_json_delta","partial_json":)" +
                              json::quoted(piece) + '}');
        } else if (block.type == "thinking") {
            const std::optional<QByteArray> thinking = stringOf(block.members, "thinking");
            if (!thinking)
                return fail(QStringLiteral("content[%1].thinking is not a string").arg(i));
            const Member *signature = json::find(block.members, "signature");
            startBlock = rebuilt(block.members, {{"thinking", "\"\""}, {"signature", "\"\""}});
            for (const QByteArrayView piece : textPieces(*thinking, options))
                deltas.append(R"({"type":"thinking_delta","thinking":)" + json::quoted(piece) +
                              '}');
            if (signature && signature->kind == Kind::String)
                deltas.append(R"({"type":"signature_delta","signature":)" +
                              json::singleLine(signature->value) + '}');
        } else {
            // redacted_thinking, tool results and whatever comes next: whole at the start.
            startBlock = rebuilt(block.members, {});
        }
        appendEvent(out, "content_block_start",
                    R"({"type":"content_block_start","index":)" + QByteArray::number(index) +
                        R"(,"content_block":)" + startBlock + '}');
        for (const QByteArray &d : std::as_const(deltas))
            appendEvent(out, "content_block_delta", delta(index, d));
        appendEvent(out, "content_block_stop",
                    R"({"type":"content_block_stop","index":)" + QByteArray::number(index) + '}');
    }

    const Member *stopReason = json::find(*top, "stop_reason");
    const Member *stopSequence = json::find(*top, "stop_sequence");
    QByteArray messageDelta = R"({"type":"message_delta","delta":{"stop_reason":)";
    messageDelta += stopReason ? json::singleLine(stopReason->value) : QByteArray("null");
    messageDelta += R"(,"stop_sequence":)";
    messageDelta += stopSequence ? json::singleLine(stopSequence->value) : QByteArray("null");
    messageDelta += R"(},"usage":)";
    messageDelta += json::singleLine(usage->value);
    messageDelta += '}';
    appendEvent(out, "message_delta", messageDelta);
    appendEvent(out, "message_stop", R"({"type":"message_stop"})");
    result.stream = std::move(out);
    return result;
}

QByteArray pingEvent() {
    return QByteArrayLiteral("event: ping\ndata: {\"type\": \"ping\"}\n\n");
}

QByteArray errorTypeForStatus(int status) {
    return anthropicErrorType(status);
}

QByteArray errorEvent(const HttpAnswer &failure) {
    QByteArray data;
    const std::optional<QList<Member>> top =
        json::objectMembers(failure.body, json::Strictness::Lenient);
    const Member *error = top ? json::find(*top, "error") : nullptr;
    const std::optional<QList<Member>> fields =
        error && error->kind == Kind::Object
            ? json::objectMembers(error->value, json::Strictness::Lenient)
            : std::nullopt;
    if (top && fields && stringOf(*top, "type").value_or(QByteArray()) == "error" &&
        stringOf(*fields, "type")) {
        data = json::singleLine(failure.body); // Anthropic's own shape
    } else {
        QByteArray message = fields ? stringOf(*fields, "message").value_or(QByteArray()) : "";
        if (message.isEmpty())
            message = "HTTP " + QByteArray::number(failure.status);
        data = R"({"type":"error","error":{"type":)" +
               json::quoted(errorTypeForStatus(failure.status)) + R"(,"message":)" +
               json::quoted(message) + "}}";
    }
    QByteArray out;
    appendEvent(out, "error", data);
    return out;
}

} // namespace llmproxy::sse::anthropic
