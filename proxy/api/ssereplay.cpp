// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/ssereplay.h"

#include "api/anthropicsse.h"
#include "api/json.h"
#include "api/textpieces.h"

#include <QList>

#include <algorithm>

using namespace Qt::StringLiterals;

namespace llmproxy::sse {
namespace {

using json::Kind;
using json::Member;

// Whole events are handed to the sink in batches of about this size.
constexpr qsizetype FlushBytes = 64 * 1024;

// The elements of an array the scanner has already checked (a member value of objectMembers),
// found without recursion: commas at depth 1 outside strings separate them.
QList<QByteArrayView> arrayElements(QByteArrayView array) {
    QList<QByteArrayView> elements;
    qsizetype i = 0;
    while (i < array.size() && array[i] != '[')
        ++i;
    ++i;
    int depth = 1;
    bool inString = false;
    qsizetype start = i;
    auto addElement = [&](qsizetype end) {
        QByteArrayView element = array.sliced(start, end - start).trimmed();
        if (!element.isEmpty())
            elements.append(element);
    };
    for (; i < array.size() && depth > 0; ++i) {
        const char c = array[i];
        if (inString) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                inString = false;
            continue;
        }
        switch (c) {
        case '"':
            inString = true;
            break;
        case '[':
        case '{':
            ++depth;
            break;
        case ']':
        case '}':
            if (--depth == 0)
                addElement(i);
            break;
        case ',':
            if (depth == 1) {
                addElement(i);
                start = i + 1;
            }
            break;
        default:
            break;
        }
    }
    return elements;
}

// `text` cut as the options say (textpieces.h).
QList<QByteArrayView> textPieces(QByteArrayView text, const ReplayOptions &options) {
    return sse::textPieces(text, options.maxPieces, options.minPieceBytes);
}

// Reading a body: every failure names the field, e.g. "choices[1].message.content".
class Reader {
public:
    std::optional<QList<Member>> object(QByteArrayView raw, const QString &where) {
        json::ScanError scanError;
        auto members = json::objectMembers(raw, json::Strictness::Lenient, &scanError);
        if (!members && where.isEmpty())
            fail(u"the body is not a JSON object ("_s + scanError.message + u')');
        else if (!members)
            fail(where + u" is not a JSON object"_s);
        return members;
    }

    // A member that must be there with one of the given kinds.
    const Member *require(const QList<Member> &members, QByteArrayView key, const QString &where,
                          std::initializer_list<Kind> kinds) {
        const Member *member = json::find(members, key);
        if (!member) {
            fail(path(where, key) + u" is missing"_s);
            return nullptr;
        }
        if (std::find(kinds.begin(), kinds.end(), member->kind) == kinds.end()) {
            fail(path(where, key) + u" has the wrong type"_s);
            return nullptr;
        }
        return member;
    }

    // A member that may be missing or null; when present and not null, of one of the kinds.
    const Member *optional(const QList<Member> &members, QByteArrayView key, const QString &where,
                           std::initializer_list<Kind> kinds) {
        const Member *member = json::find(members, key);
        if (!member || member->kind == Kind::Null)
            return nullptr;
        if (std::find(kinds.begin(), kinds.end(), member->kind) == kinds.end()) {
            fail(path(where, key) + u" has the wrong type"_s);
            return nullptr;
        }
        return member;
    }

    std::optional<QByteArray> string(const Member *member) {
        if (!member)
            return std::nullopt;
        return json::stringValue(member->value);
    }

    static QString path(const QString &where, QByteArrayView key) {
        const QString name = QString::fromUtf8(key);
        return where.isEmpty() ? name : where + u'.' + name;
    }
    static QString indexed(const QString &where, QByteArrayView key, qsizetype i) {
        return path(where, key) + u'[' + QString::number(i) + u']';
    }

    void fail(const QString &message) {
        if (!m_error)
            m_error =
                ReplayError{u"The provider's answer cannot be replayed as a stream: "_s + message};
    }
    bool failed() const { return m_error.has_value(); }
    std::optional<ReplayError> takeError() { return std::move(m_error); }

private:
    std::optional<ReplayError> m_error;
};

// Collects whole events and hands them to the sink in batches.
class Writer {
public:
    explicit Writer(const Sink &sink)
        : m_sink(sink) {}

    // `data: <json>` (with `event: <name>` first when a name is given) and the blank line.
    void event(QByteArrayView name, QByteArrayView data) {
        if (!name.isEmpty()) {
            m_buffer.append("event: ");
            m_buffer.append(name);
            m_buffer.append('\n');
        }
        m_buffer.append("data: ");
        m_buffer.append(data);
        m_buffer.append("\n\n");
        if (m_buffer.size() >= FlushBytes)
            flush();
    }
    void flush() {
        if (!m_buffer.isEmpty())
            m_sink(m_buffer);
        m_buffer.clear();
    }

private:
    const Sink &m_sink;
    QByteArray m_buffer;
};

// A raw value the scanner has checked, copied without the whitespace between its tokens: the
// same JSON on one line (an SSE data line ends at a line break), byte for byte otherwise.
void appendRaw(QByteArray &out, QByteArrayView raw) {
    bool inString = false;
    for (qsizetype i = 0; i < raw.size(); ++i) {
        const char c = raw[i];
        if (inString) {
            out.append(c);
            if (c == '\\' && i + 1 < raw.size())
                out.append(raw[++i]);
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
            out.append(c);
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out.append(c);
        }
    }
}
// A raw value, or null for an empty view (a member that is missing).
void appendRawOrNull(QByteArray &out, QByteArrayView raw) {
    if (raw.isEmpty())
        out.append("null");
    else
        appendRaw(out, raw);
}
QByteArrayView rawValue(const Member *member) {
    return member ? member->value : QByteArrayView();
}

// ---------------------------------------------------------------- chat and completions

struct FunctionPlan {
    QByteArrayView id;   // tool calls only
    QByteArrayView name; // raw string token
    QByteArray arguments;
};

struct ChoicePlan {
    QByteArray index; // raw number
    QByteArrayView role;
    bool hasContent = false; // content (chat) or text (completions) is a string
    QByteArray content;
    bool hasRefusal = false;
    QByteArray refusal;
    std::optional<FunctionPlan> functionCall;
    QList<FunctionPlan> toolCalls;
    QByteArrayView logprobs; // raw values (views into the body); empty when missing or null
    QByteArrayView finishReason;
};

// Views into the body; empty when missing (the optional ones).
struct ChunkPlan {
    QByteArrayView id;
    QByteArrayView created;
    QByteArrayView model;
    QByteArrayView serviceTier;
    QByteArrayView systemFingerprint;
    QByteArrayView usage;
    QList<ChoicePlan> choices;
};

std::optional<FunctionPlan> readFunction(Reader &reader, QByteArrayView raw, const QString &where) {
    const auto members = reader.object(raw, where);
    if (!members)
        return std::nullopt;
    FunctionPlan plan;
    const Member *name = reader.require(*members, "name", where, {Kind::String});
    const Member *arguments = reader.require(*members, "arguments", where, {Kind::String});
    if (!name || !arguments)
        return std::nullopt;
    plan.name = name->value;
    plan.arguments = *reader.string(arguments);
    return plan;
}

bool readChatMessage(Reader &reader, QByteArrayView raw, const QString &where, ChoicePlan &choice) {
    const auto message = reader.object(raw, where);
    if (!message)
        return false;
    if (const Member *role = reader.optional(*message, "role", where, {Kind::String}))
        choice.role = role->value;
    if (const Member *content = reader.optional(*message, "content", where, {Kind::String})) {
        choice.hasContent = true;
        choice.content = *reader.string(content);
    }
    if (const Member *refusal = reader.optional(*message, "refusal", where, {Kind::String})) {
        choice.hasRefusal = true;
        choice.refusal = *reader.string(refusal);
    }
    if (reader.optional(*message, "audio", where, {Kind::Object})) {
        reader.fail(Reader::path(where, "audio") +
                    u" is set: audio answers have no chunk form here"_s);
        return false;
    }
    if (const Member *call = reader.optional(*message, "function_call", where, {Kind::Object}))
        choice.functionCall =
            readFunction(reader, call->value, Reader::path(where, "function_call"));
    if (const Member *calls = reader.optional(*message, "tool_calls", where, {Kind::Array})) {
        const QList<QByteArrayView> elements = arrayElements(calls->value);
        for (qsizetype i = 0; i < elements.size() && !reader.failed(); ++i) {
            const QString at = Reader::indexed(where, "tool_calls", i);
            const auto call = reader.object(elements[i], at);
            if (!call)
                break;
            const Member *id = reader.require(*call, "id", at, {Kind::String});
            const Member *type = reader.require(*call, "type", at, {Kind::String});
            if (!id || !type)
                break;
            if (reader.string(type).value_or(QByteArray()) != "function") {
                reader.fail(at + u".type is not \"function\": only function calls have a chunk "
                                 u"form"_s);
                break;
            }
            const Member *function = reader.require(*call, "function", at, {Kind::Object});
            if (!function)
                break;
            auto plan = readFunction(reader, function->value, at + u".function"_s);
            if (!plan)
                break;
            plan->id = id->value;
            choice.toolCalls.append(std::move(*plan));
        }
    }
    return !reader.failed();
}

std::optional<ChunkPlan> readChunkPlan(Reader &reader, Endpoint endpoint, QByteArrayView body) {
    const bool chat = endpoint == Endpoint::ChatCompletions;
    ChunkPlan plan;
    const auto top = reader.object(body, {});
    if (!top)
        return std::nullopt;
    plan.id = rawValue(reader.require(*top, "id", {}, {Kind::String}));
    plan.created = rawValue(reader.require(*top, "created", {}, {Kind::Number}));
    plan.model = rawValue(reader.require(*top, "model", {}, {Kind::String}));
    plan.serviceTier = rawValue(json::find(*top, "service_tier"));
    plan.systemFingerprint = rawValue(json::find(*top, "system_fingerprint"));
    plan.usage = rawValue(reader.optional(*top, "usage", {}, {Kind::Object}));
    const Member *choices = reader.require(*top, "choices", {}, {Kind::Array});
    if (reader.failed())
        return std::nullopt;
    const QList<QByteArrayView> elements = arrayElements(choices->value);
    for (qsizetype i = 0; i < elements.size(); ++i) {
        const QString at = Reader::indexed({}, "choices", i);
        const auto members = reader.object(elements[i], at);
        if (!members)
            return std::nullopt;
        ChoicePlan choice;
        const Member *index = reader.optional(*members, "index", at, {Kind::Number});
        choice.index = index ? json::singleLine(index->value) : QByteArray::number(i);
        choice.logprobs = rawValue(reader.optional(*members, "logprobs", at, {Kind::Object}));
        choice.finishReason =
            rawValue(reader.optional(*members, "finish_reason", at, {Kind::String}));
        if (chat) {
            const Member *message = reader.require(*members, "message", at, {Kind::Object});
            if (!message || !readChatMessage(reader, message->value, at + u".message"_s, choice))
                return std::nullopt;
        } else {
            const Member *text = reader.require(*members, "text", at, {Kind::String});
            if (!text)
                return std::nullopt;
            choice.hasContent = true;
            choice.content = *reader.string(text);
        }
        if (reader.failed())
            return std::nullopt;
        plan.choices.append(std::move(choice));
    }
    return plan;
}

class ChunkWriter {
public:
    ChunkWriter(const ChunkPlan &plan, const ReplayOptions &options, Writer &writer)
        : m_options(options)
        , m_writer(writer) {
        const bool chat = options.endpoint == Endpoint::ChatCompletions;
        m_prefix = "{\"id\":";
        appendRaw(m_prefix, plan.id);
        m_prefix.append(chat ? ",\"object\":\"chat.completion.chunk\",\"created\":"
                             : ",\"object\":\"text_completion\",\"created\":");
        appendRaw(m_prefix, plan.created);
        m_prefix.append(",\"model\":");
        appendRaw(m_prefix, plan.model);
        if (chat && !plan.serviceTier.isEmpty()) {
            m_prefix.append(",\"service_tier\":");
            appendRaw(m_prefix, plan.serviceTier);
        }
        if (!plan.systemFingerprint.isEmpty()) {
            m_prefix.append(",\"system_fingerprint\":");
            appendRaw(m_prefix, plan.systemFingerprint);
        }
        m_prefix.append(",\"choices\":[");
    }

    // One chunk with one choice: `delta` is the chat delta object or, for completions, the text.
    void chunk(const ChoicePlan &choice, const QByteArray &delta, QByteArrayView logprobs,
               QByteArrayView finishReason) {
        QByteArray data = m_prefix;
        if (m_options.endpoint == Endpoint::ChatCompletions) {
            data.append("{\"index\":");
            data.append(choice.index);
            data.append(",\"delta\":");
            data.append(delta);
        } else {
            data.append("{\"text\":");
            data.append(delta);
            data.append(",\"index\":");
            data.append(choice.index);
        }
        data.append(",\"logprobs\":");
        appendRawOrNull(data, logprobs);
        data.append(",\"finish_reason\":");
        appendRawOrNull(data, finishReason);
        data.append("}]");
        if (m_options.includeUsage)
            data.append(",\"usage\":null");
        data.append('}');
        m_writer.event({}, data);
    }

    void usage(QByteArrayView usage) {
        QByteArray data = m_prefix;
        data.append("],\"usage\":");
        appendRawOrNull(data, usage);
        data.append('}');
        m_writer.event({}, data);
    }

private:
    const ReplayOptions &m_options;
    Writer &m_writer;
    QByteArray m_prefix;
};

void writeChatChoice(ChunkWriter &chunks, const ChoicePlan &choice, const ReplayOptions &options) {
    // The logprobs go with the first chunk that carries text, else with the last one.
    QByteArrayView logprobs = choice.logprobs;
    auto takeLogprobs = [&logprobs] { return std::exchange(logprobs, QByteArrayView()); };

    QByteArray first = "{";
    if (!choice.role.isEmpty()) {
        first.append("\"role\":");
        appendRaw(first, choice.role);
        first.append(',');
    }
    first.append(choice.hasContent ? "\"content\":\"\"" : "\"content\":null");
    first.append(",\"refusal\":null}");
    chunks.chunk(choice, first, {}, {});

    for (const QByteArrayView piece : textPieces(choice.content, options))
        chunks.chunk(choice, "{\"content\":" + json::quoted(piece) + '}', takeLogprobs(), {});
    for (const QByteArrayView piece : textPieces(choice.refusal, options))
        chunks.chunk(choice, "{\"refusal\":" + json::quoted(piece) + '}', takeLogprobs(), {});

    if (choice.functionCall) {
        QByteArray delta = "{\"function_call\":{\"name\":";
        appendRaw(delta, choice.functionCall->name);
        delta.append(",\"arguments\":\"\"}}");
        chunks.chunk(choice, delta, {}, {});
        for (const QByteArrayView piece : textPieces(choice.functionCall->arguments, options)) {
            chunks.chunk(choice, "{\"function_call\":{\"arguments\":" + json::quoted(piece) + "}}",
                         {}, {});
        }
    }
    for (qsizetype i = 0; i < choice.toolCalls.size(); ++i) {
        const FunctionPlan &call = choice.toolCalls[i];
        const QByteArray index = QByteArray::number(i);
        QByteArray delta = "{\"tool_calls\":[{\"index\":" + index + ",\"id\":";
        appendRaw(delta, call.id);
        delta.append(",\"type\":\"function\",\"function\":{\"name\":");
        appendRaw(delta, call.name);
        delta.append(",\"arguments\":\"\"}}]}");
        chunks.chunk(choice, delta, {}, {});
        for (const QByteArrayView piece : textPieces(call.arguments, options)) {
            chunks.chunk(choice,
                         "{\"tool_calls\":[{\"index\":" + index +
                             ",\"function\":{\"arguments\":" + json::quoted(piece) + "}}]}",
                         {}, {});
        }
    }
    chunks.chunk(choice, "{}", takeLogprobs(), choice.finishReason);
}

void writeCompletionChoice(ChunkWriter &chunks, const ChoicePlan &choice,
                           const ReplayOptions &options) {
    QByteArrayView logprobs = choice.logprobs;
    for (const QByteArrayView piece : textPieces(choice.content, options))
        chunks.chunk(choice, json::quoted(piece), std::exchange(logprobs, QByteArrayView()), {});
    chunks.chunk(choice, "\"\"", logprobs, choice.finishReason);
}

std::optional<ReplayError> replayChunks(const ReplayOptions &options, QByteArrayView body,
                                        Writer &writer) {
    Reader reader;
    const std::optional<ChunkPlan> plan = readChunkPlan(reader, options.endpoint, body);
    if (!plan)
        return reader.takeError();
    ChunkWriter chunks(*plan, options, writer);
    for (const ChoicePlan &choice : plan->choices) {
        if (options.endpoint == Endpoint::ChatCompletions)
            writeChatChoice(chunks, choice, options);
        else
            writeCompletionChoice(chunks, choice, options);
    }
    if (options.includeUsage)
        chunks.usage(plan->usage);
    writer.event({}, "[DONE]");
    return std::nullopt;
}

// ---------------------------------------------------------------- Responses API

enum class ItemKind { Message, FunctionCall, Other };
enum class PartKind { OutputText, Refusal, Other };

struct PartPlan {
    PartKind kind = PartKind::Other;
    QByteArrayView raw;
    QList<Member> members;
    QByteArray text;         // output_text.text or refusal.refusal, decoded
    QByteArrayView logprobs; // raw, empty when missing or null
    QList<QByteArrayView> annotations;
};

struct ItemPlan {
    ItemKind kind = ItemKind::Other;
    QByteArrayView raw;
    QList<Member> members;
    QByteArrayView id; // raw string token (message and function_call)
    QByteArrayView name;
    QByteArray arguments;
    QList<PartPlan> parts;
};

struct ResponsePlan {
    QList<Member> top;
    QByteArray endEvent; // response.completed, response.incomplete or response.failed
    QList<ItemPlan> items;
};

std::optional<ResponsePlan> readResponsePlan(Reader &reader, QByteArrayView body) {
    ResponsePlan plan;
    auto top = reader.object(body, {});
    if (!top)
        return std::nullopt;
    plan.top = std::move(*top);
    reader.require(plan.top, "id", {}, {Kind::String});
    const Member *status = reader.require(plan.top, "status", {}, {Kind::String});
    const Member *output = reader.require(plan.top, "output", {}, {Kind::Array});
    reader.optional(plan.top, "usage", {}, {Kind::Object});
    if (reader.failed())
        return std::nullopt;
    const QByteArray statusText = reader.string(status).value_or(QByteArray());
    if (statusText != "completed" && statusText != "incomplete" && statusText != "failed") {
        reader.fail(u"status is \""_s + QString::fromUtf8(statusText) +
                    u"\", not completed, incomplete or failed"_s);
        return std::nullopt;
    }
    plan.endEvent = "response." + statusText;

    const QList<QByteArrayView> items = arrayElements(output->value);
    for (qsizetype i = 0; i < items.size(); ++i) {
        const QString at = Reader::indexed({}, "output", i);
        auto members = reader.object(items[i], at);
        if (!members)
            return std::nullopt;
        ItemPlan item;
        item.raw = items[i];
        item.members = std::move(*members);
        const Member *type = reader.require(item.members, "type", at, {Kind::String});
        if (!type)
            return std::nullopt;
        const QByteArray typeText = *reader.string(type);
        if (typeText == "message") {
            item.kind = ItemKind::Message;
            const Member *id = reader.require(item.members, "id", at, {Kind::String});
            const Member *content = reader.require(item.members, "content", at, {Kind::Array});
            if (!id || !content)
                return std::nullopt;
            item.id = id->value;
            const QList<QByteArrayView> parts = arrayElements(content->value);
            for (qsizetype j = 0; j < parts.size(); ++j) {
                const QString partAt = Reader::indexed(at, "content", j);
                auto partMembers = reader.object(parts[j], partAt);
                if (!partMembers)
                    return std::nullopt;
                PartPlan part;
                part.raw = parts[j];
                part.members = std::move(*partMembers);
                const Member *partType =
                    reader.require(part.members, "type", partAt, {Kind::String});
                if (!partType)
                    return std::nullopt;
                const QByteArray partTypeText = *reader.string(partType);
                if (partTypeText == "output_text") {
                    part.kind = PartKind::OutputText;
                    const Member *text =
                        reader.require(part.members, "text", partAt, {Kind::String});
                    part.logprobs =
                        rawValue(reader.optional(part.members, "logprobs", partAt, {Kind::Array}));
                    const Member *annotations =
                        reader.optional(part.members, "annotations", partAt, {Kind::Array});
                    if (reader.failed())
                        return std::nullopt;
                    part.text = *reader.string(text);
                    if (annotations)
                        part.annotations = arrayElements(annotations->value);
                } else if (partTypeText == "refusal") {
                    part.kind = PartKind::Refusal;
                    const Member *refusal =
                        reader.require(part.members, "refusal", partAt, {Kind::String});
                    if (!refusal)
                        return std::nullopt;
                    part.text = *reader.string(refusal);
                }
                item.parts.append(std::move(part));
            }
        } else if (typeText == "function_call") {
            item.kind = ItemKind::FunctionCall;
            const Member *id = reader.require(item.members, "id", at, {Kind::String});
            const Member *name = reader.require(item.members, "name", at, {Kind::String});
            const Member *arguments = reader.require(item.members, "arguments", at, {Kind::String});
            if (reader.failed())
                return std::nullopt;
            item.id = id->value;
            item.name = name->value;
            item.arguments = *reader.string(arguments);
        }
        plan.items.append(std::move(item));
    }
    return plan;
}

// An object with some members replaced by other raw JSON values (an empty value leaves the member
// out); the rest copied as they are, in their order.
struct Replacement {
    QByteArrayView key;
    QByteArrayView value; // raw JSON; empty: leave the member out
};
void appendObjectWith(QByteArray &out, const QList<Member> &members,
                      std::initializer_list<Replacement> replacements) {
    out.append('{');
    bool first = true;
    for (const Member &member : members) {
        QByteArrayView value = member.value;
        for (const Replacement &replacement : replacements) {
            if (member.key == replacement.key) {
                value = replacement.value;
                break;
            }
        }
        if (value.isEmpty())
            continue;
        if (!first)
            out.append(',');
        first = false;
        out.append(json::quoted(member.key));
        out.append(':');
        appendRaw(out, value);
    }
    out.append('}');
}

class ResponseEvents {
public:
    explicit ResponseEvents(Writer &writer)
        : m_writer(writer) {}

    // `fields` are the members after type and sequence_number, with a leading comma.
    void event(QByteArrayView type, const QByteArray &fields) {
        QByteArray data = "{\"type\":\"";
        data.append(type);
        data.append("\",\"sequence_number\":");
        data.append(QByteArray::number(m_sequence++));
        data.append(fields);
        data.append('}');
        m_writer.event(type, data);
    }

private:
    Writer &m_writer;
    qint64 m_sequence = 0;
};

QByteArray itemFields(qsizetype outputIndex, QByteArrayView itemId) {
    QByteArray fields = ",\"item_id\":";
    appendRaw(fields, itemId);
    fields.append(",\"output_index\":");
    fields.append(QByteArray::number(outputIndex));
    return fields;
}

QByteArray partFields(qsizetype outputIndex, QByteArrayView itemId, qsizetype contentIndex) {
    return itemFields(outputIndex, itemId) +
           ",\"content_index\":" + QByteArray::number(contentIndex);
}

void writePart(ResponseEvents &events, const ItemPlan &item, qsizetype outputIndex,
               const PartPlan &part, qsizetype contentIndex, const ReplayOptions &options) {
    const QByteArray where = partFields(outputIndex, item.id, contentIndex);
    QByteArray added = where + ",\"part\":";
    switch (part.kind) {
    case PartKind::OutputText:
        appendObjectWith(added, part.members,
                         {{"text", "\"\""}, {"annotations", "[]"}, {"logprobs", "[]"}});
        break;
    case PartKind::Refusal:
        appendObjectWith(added, part.members, {{"refusal", "\"\""}});
        break;
    case PartKind::Other:
        appendRaw(added, part.raw);
        break;
    }
    events.event("response.content_part.added", added);

    if (part.kind == PartKind::OutputText) {
        bool firstDelta = true;
        for (const QByteArrayView piece : textPieces(part.text, options)) {
            QByteArray delta = where + ",\"delta\":" + json::quoted(piece) + ",\"logprobs\":";
            if (firstDelta && !part.logprobs.isEmpty())
                appendRaw(delta, part.logprobs);
            else
                delta.append("[]");
            firstDelta = false;
            events.event("response.output_text.delta", delta);
        }
        for (qsizetype i = 0; i < part.annotations.size(); ++i) {
            QByteArray annotation =
                where + ",\"annotation_index\":" + QByteArray::number(i) + ",\"annotation\":";
            appendRaw(annotation, part.annotations[i]);
            events.event("response.output_text.annotation.added", annotation);
        }
        QByteArray done = where + ",\"text\":" + json::quoted(part.text) + ",\"logprobs\":";
        if (!part.logprobs.isEmpty())
            appendRaw(done, part.logprobs);
        else
            done.append("[]");
        events.event("response.output_text.done", done);
    } else if (part.kind == PartKind::Refusal) {
        for (const QByteArrayView piece : textPieces(part.text, options))
            events.event("response.refusal.delta", where + ",\"delta\":" + json::quoted(piece));
        events.event("response.refusal.done", where + ",\"refusal\":" + json::quoted(part.text));
    }

    QByteArray done = where + ",\"part\":";
    appendRaw(done, part.raw);
    events.event("response.content_part.done", done);
}

void writeItem(ResponseEvents &events, const ItemPlan &item, qsizetype outputIndex,
               const ReplayOptions &options) {
    const QByteArray index = ",\"output_index\":" + QByteArray::number(outputIndex);
    QByteArray added = index + ",\"item\":";
    switch (item.kind) {
    case ItemKind::Message:
        appendObjectWith(added, item.members, {{"status", "\"in_progress\""}, {"content", "[]"}});
        break;
    case ItemKind::FunctionCall:
        appendObjectWith(added, item.members,
                         {{"status", "\"in_progress\""}, {"arguments", "\"\""}});
        break;
    case ItemKind::Other:
        appendRaw(added, item.raw);
        break;
    }
    events.event("response.output_item.added", added);

    if (item.kind == ItemKind::Message) {
        for (qsizetype j = 0; j < item.parts.size(); ++j)
            writePart(events, item, outputIndex, item.parts[j], j, options);
    } else if (item.kind == ItemKind::FunctionCall) {
        const QByteArray where = itemFields(outputIndex, item.id);
        for (const QByteArrayView piece : textPieces(item.arguments, options)) {
            events.event("response.function_call_arguments.delta",
                         where + ",\"delta\":" + json::quoted(piece));
        }
        QByteArray done = where + ",\"name\":";
        appendRaw(done, item.name);
        done.append(",\"arguments\":");
        done.append(json::quoted(item.arguments));
        events.event("response.function_call_arguments.done", done);
    }

    QByteArray done = index + ",\"item\":";
    appendRaw(done, item.raw);
    events.event("response.output_item.done", done);
}

std::optional<ReplayError> replayResponse(const ReplayOptions &options, QByteArrayView body,
                                          Writer &writer) {
    Reader reader;
    const std::optional<ResponsePlan> plan = readResponsePlan(reader, body);
    if (!plan)
        return reader.takeError();
    ResponseEvents events(writer);

    // The snapshots sent before any output, as the API sends them: in progress, nothing yet.
    QByteArray snapshot = ",\"response\":";
    appendObjectWith(snapshot, plan->top,
                     {{"status", "\"in_progress\""},
                      {"output", "[]"},
                      {"usage", "null"},
                      {"error", "null"},
                      {"incomplete_details", "null"},
                      {"completed_at", "null"},
                      {"output_text", {}}});
    events.event("response.created", snapshot);
    events.event("response.in_progress", snapshot);

    for (qsizetype i = 0; i < plan->items.size(); ++i)
        writeItem(events, plan->items[i], i, options);

    QByteArray end = ",\"response\":";
    appendRaw(end, body.trimmed());
    events.event(plan->endEvent, end);
    return std::nullopt;
}

} // namespace

ReplayOptions optionsForRequest(Endpoint endpoint, QByteArrayView requestBody) {
    ReplayOptions options;
    options.endpoint = endpoint;
    const auto members = json::objectMembers(requestBody, json::Strictness::Lenient);
    if (!members)
        return options;
    const Member *streamOptions = json::find(*members, "stream_options");
    if (!streamOptions || streamOptions->kind != Kind::Object)
        return options;
    const auto inner = json::objectMembers(streamOptions->value, json::Strictness::Lenient);
    if (!inner)
        return options;
    const Member *includeUsage = json::find(*inner, "include_usage");
    options.includeUsage =
        includeUsage && includeUsage->kind == Kind::True && endpoint != Endpoint::Responses;
    return options;
}

std::optional<ReplayError> replay(const ReplayOptions &options, QByteArrayView body,
                                  const Sink &sink) {
    // Both replays read and check the whole body into a plan before they write the first event;
    // writing a plan cannot fail, so a sink never sees half a replay.
    if (options.endpoint == Endpoint::Messages) {
        const anthropic::Result replayed =
            anthropic::replay(body, {options.maxPieces, options.minPieceBytes});
        if (replayed.error)
            return ReplayError{*replayed.error};
        sink(replayed.stream); // whole events, at once
        return std::nullopt;
    }
    Writer writer(sink);
    std::optional<ReplayError> error = options.endpoint == Endpoint::Responses
                                           ? replayResponse(options, body, writer)
                                           : replayChunks(options, body, writer);
    writer.flush();
    return error;
}

ReplayResult replayToBytes(const ReplayOptions &options, QByteArrayView body) {
    ReplayResult result;
    result.error =
        replay(options, body, [&result](const QByteArray &events) { result.stream += events; });
    return result;
}

QByteArray errorEvent(Endpoint endpoint, const HttpAnswer &failure, qint64 sequenceNumber) {
    if (endpoint == Endpoint::Messages)
        return anthropic::errorEvent(failure);
    // The error object of an OpenAI-shaped body, else one the proxy makes from the status.
    QByteArray errorObject;
    if (const auto top = json::objectMembers(failure.body, json::Strictness::Lenient)) {
        if (const Member *error = json::find(*top, "error"); error && error->kind == Kind::Object)
            errorObject = error->value.toByteArray();
    }
    if (errorObject.isEmpty()) {
        const HttpAnswer made = errorAnswer(502,
                                            u"The provider answered with HTTP status "_s +
                                                QString::number(failure.status) +
                                                u" and a body that is not an OpenAI error."_s,
                                            ErrorType::Server, QByteArrayLiteral("upstream_error"));
        const auto top = json::objectMembers(made.body);
        errorObject = json::find(*top, "error")->value.toByteArray();
    }

    if (endpoint != Endpoint::Responses) {
        QByteArray event = "data: {\"error\":";
        appendRaw(event, errorObject);
        event.append("}\n\n");
        return event;
    }
    // ResponseErrorEvent: code and param are strings or null; message a string.
    const auto members = json::objectMembers(errorObject, json::Strictness::Lenient);
    auto stringOrNull = [&members](QByteArrayView key) -> QByteArray {
        const Member *member = json::find(*members, key);
        return member && member->kind == Kind::String ? json::singleLine(member->value)
                                                      : QByteArrayLiteral("null");
    };
    QByteArray message = stringOrNull("message");
    if (message == "null")
        message = "\"The provider failed without a message.\"";
    QByteArray event = "event: error\ndata: {\"type\":\"error\",\"code\":" + stringOrNull("code") +
                       ",\"message\":" + message + ",\"param\":" + stringOrNull("param") +
                       ",\"sequence_number\":" + QByteArray::number(sequenceNumber) + "}\n\n";
    return event;
}

QByteArray keepAliveComment() {
    return QByteArrayLiteral(": keep-alive\n\n");
}

QByteArray keepAliveFor(Endpoint endpoint) {
    return endpoint == Endpoint::Messages ? anthropic::pingEvent() : keepAliveComment();
}

QByteArray batchIdComment(QByteArrayView batchId) {
    QByteArray comment = ": x-llm-proxy-batch-id ";
    for (const char c : batchId) {
        const uchar u = static_cast<uchar>(c);
        if (u >= 0x20 && u != 0x7F)
            comment.append(c);
    }
    comment.append("\n\n");
    return comment;
}

} // namespace llmproxy::sse
