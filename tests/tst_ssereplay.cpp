// SPDX-License-Identifier: GPL-3.0-or-later
// The SSE replay (issue 11): recorded provider bodies (tests/data/sse) are replayed, the stream
// is parsed back as an SSE client would, and the original message is rebuilt from the events.
#include "api/json.h"
#include "api/ssereplay.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>
#include <QUtf8StringView>

using namespace llmproxy;
using namespace Qt::StringLiterals;

namespace {

QString sourceDir() {
    const QString env = qEnvironmentVariable("LLMPROXY_SOURCE_DIR");
    return env.isEmpty() ? QFileInfo(QStringLiteral(__FILE__)).absolutePath() + u"/.."_s : env;
}

QByteArray recorded(const QString &name) {
    QFile file(sourceDir() + u"/tests/data/sse/"_s + name);
    if (!file.open(QIODevice::ReadOnly))
        qFatal("cannot read %s", qPrintable(file.fileName()));
    return file.readAll();
}

QJsonObject object(const QByteArray &json) {
    return QJsonDocument::fromJson(json).object();
}

struct Event {
    QByteArray name; // the `event:` line, empty without one
    QByteArray data;
};

// An SSE client's reading: events end with a blank line; within one, `event: ` and `data: `
// lines only (comments start with ':'). Anything else is a framing error.
std::optional<QList<Event>> parseSse(const QByteArray &stream, QString *problem) {
    QList<Event> events;
    if (!stream.endsWith("\n\n")) {
        *problem = u"the stream does not end with a blank line"_s;
        return std::nullopt;
    }
    const QList<QByteArray> blocks = stream.chopped(2).split('\n');
    Event current;
    bool open = false;
    for (const QByteArray &line : blocks) {
        if (line.isEmpty()) {
            if (!open) {
                *problem = u"two blank lines in a row"_s;
                return std::nullopt;
            }
            events.append(current);
            current = {};
            open = false;
        } else if (line.startsWith(':')) {
            open = true; // a comment: not an event of its own
        } else if (line.startsWith("event: ")) {
            current.name = line.mid(7);
            open = true;
        } else if (line.startsWith("data: ")) {
            if (!current.data.isNull()) {
                *problem = u"an event with two data lines"_s;
                return std::nullopt;
            }
            current.data = line.mid(6);
            open = true;
        } else {
            *problem = u"a line that is no SSE field: "_s + QString::fromUtf8(line);
            return std::nullopt;
        }
    }
    events.append(current);
    // Comments alone make events without data: SSE clients drop those.
    events.removeIf([](const Event &e) { return e.data.isNull(); });
    return events;
}

// Every data line is one JSON value, on one line, with valid UTF-8 (so no delta cut a code
// point: a cut one would leave invalid bytes at the end of one piece and the start of the next).
bool allDataIsStrictJson(const QList<Event> &events) {
    for (const Event &event : events) {
        if (event.data == "[DONE]")
            continue;
        if (!json::isValid(event.data, json::Strictness::Strict))
            return false;
    }
    return true;
}

struct RebuiltChoice {
    int chunks = 0;
    QJsonValue role;
    QString content;
    bool contentSeen = false;
    QString refusal;
    bool refusalSeen = false;
    QJsonArray toolCalls;
    QJsonArray logprobsContent;
    QJsonValue logprobs = QJsonValue(QJsonValue::Undefined);
    QJsonValue finishReason;
    int finishes = 0;
    bool validUtf8Deltas = true;
};

} // namespace

class TestSseReplay final : public QObject {
    Q_OBJECT

private slots:
    void chatRebuildsTheMessage_data();
    void chatRebuildsTheMessage();
    void completionsRebuildTheText_data();
    void completionsRebuildTheText();
    void responsesRebuildTheResponse_data();
    void responsesRebuildTheResponse();
    void responsesSnapshotsAreInProgressAndEmpty();
    void piecesNeverSplitACodePoint();
    void invalidUtf8IsReplayedByteForByte();
    void hugeTextIsCutIntoAFewPieces();
    void sinkReceivesWholeEvents();
    void badBodiesAreRefusedBeforeAnyByte_data();
    void badBodiesAreRefusedBeforeAnyByte();
    void chatErrorEventCarriesTheProviderError();
    void errorEventForABodyThatIsNoOpenAIError();
    void responsesErrorEventIsAResponseErrorEvent();
    void commentsCannotBreakTheFraming();
    void optionsComeFromStreamOptions_data();
    void optionsComeFromStreamOptions();
};

void TestSseReplay::chatRebuildsTheMessage_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<bool>("includeUsage");
    QTest::addColumn<int>("minPieceBytes");
    const QStringList files = {
        u"chat-text.json"_s, u"chat-tool-calls.json"_s, u"chat-refusal.json"_s, u"chat-n2.json"_s,
        u"chat-utf8.json"_s, u"chat-empty.json"_s,      u"chat-logprobs.json"_s};
    for (const QString &file : files) {
        for (const bool usage : {false, true}) {
            for (const int minBytes : {32, 1}) {
                QTest::addRow("%s usage=%d min=%d", qPrintable(file), usage, minBytes)
                    << file << usage << minBytes;
            }
        }
    }
}

void TestSseReplay::chatRebuildsTheMessage() {
    QFETCH(QString, file);
    QFETCH(bool, includeUsage);
    QFETCH(int, minPieceBytes);
    const QByteArray body = recorded(file);
    const QJsonObject original = object(body);

    sse::ReplayOptions options;
    options.endpoint = sse::Endpoint::ChatCompletions;
    options.includeUsage = includeUsage;
    options.minPieceBytes = minPieceBytes;
    options.maxPieces = minPieceBytes == 1 ? 100000 : 8;
    const sse::ReplayResult result = sse::replayToBytes(options, body);
    QVERIFY2(!result.error, qPrintable(result.error ? result.error->message : QString()));

    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY2(events, qPrintable(problem));
    QVERIFY(allDataIsStrictJson(*events));
    QCOMPARE(events->last().data, QByteArray("[DONE]"));

    QMap<int, RebuiltChoice> choices;
    QList<QJsonObject> usageChunks;
    for (qsizetype e = 0; e + 1 < events->size(); ++e) {
        const Event &event = events->at(e);
        QVERIFY(event.name.isEmpty());
        const QJsonObject chunk = object(event.data);
        QCOMPARE(chunk.value("object"_L1).toString(), u"chat.completion.chunk"_s);
        for (const auto key :
             {"id"_L1, "created"_L1, "model"_L1, "service_tier"_L1, "system_fingerprint"_L1})
            QCOMPARE(chunk.value(key), original.value(key));
        QCOMPARE(chunk.contains("usage"_L1), includeUsage);
        const QJsonArray chunkChoices = chunk.value("choices"_L1).toArray();
        if (chunkChoices.isEmpty()) {
            usageChunks.append(chunk);
            continue;
        }
        QVERIFY(!includeUsage || chunk.value("usage"_L1).isNull());
        QCOMPARE(chunkChoices.size(), 1);
        const QJsonObject choice = chunkChoices.first().toObject();
        RebuiltChoice &rebuilt = choices[choice.value("index"_L1).toInt(-1)];
        QCOMPARE(rebuilt.finishes, 0); // nothing after a choice's final chunk
        const QJsonObject delta = choice.value("delta"_L1).toObject();
        if (rebuilt.chunks++ == 0) {
            rebuilt.role = delta.value("role"_L1);
            QVERIFY(delta.contains("content"_L1));
        }
        if (delta.value("content"_L1).isString()) {
            rebuilt.contentSeen = true;
            rebuilt.content += delta.value("content"_L1).toString();
            // the raw bytes of this piece are whole code points
            const QByteArray raw = delta.value("content"_L1).toString().toUtf8();
            rebuilt.validUtf8Deltas &= QUtf8StringView(raw).isValidUtf8();
        }
        if (delta.value("refusal"_L1).isString()) {
            rebuilt.refusalSeen = true;
            rebuilt.refusal += delta.value("refusal"_L1).toString();
        }
        for (const QJsonValue callValue : delta.value("tool_calls"_L1).toArray()) {
            const QJsonObject call = callValue.toObject();
            const int index = call.value("index"_L1).toInt(-1);
            QVERIFY(index >= 0 && index <= rebuilt.toolCalls.size());
            if (index == rebuilt.toolCalls.size()) {
                QVERIFY(call.contains("id"_L1) && call.contains("type"_L1));
                QJsonObject function = call.value("function"_L1).toObject();
                rebuilt.toolCalls.append(QJsonObject{
                    {"id"_L1, call.value("id"_L1)},
                    {"type"_L1, call.value("type"_L1)},
                    {"function"_L1, QJsonObject{{"name"_L1, function.value("name"_L1)},
                                                {"arguments"_L1, function.value("arguments"_L1)}}},
                });
            } else {
                QVERIFY(!call.contains("id"_L1));
                QJsonObject known = rebuilt.toolCalls[index].toObject();
                QJsonObject function = known.value("function"_L1).toObject();
                const QString joined =
                    function.value("arguments"_L1).toString() +
                    call.value("function"_L1).toObject().value("arguments"_L1).toString();
                function.insert("arguments"_L1, joined);
                known.insert("function"_L1, function);
                rebuilt.toolCalls[index] = known;
            }
        }
        const QJsonValue logprobs = choice.value("logprobs"_L1);
        QVERIFY(choice.contains("logprobs"_L1));
        if (logprobs.isObject()) {
            QVERIFY(rebuilt.logprobs.isUndefined()); // sent once
            rebuilt.logprobs = logprobs;
            for (const QJsonValue token : logprobs.toObject().value("content"_L1).toArray())
                rebuilt.logprobsContent.append(token);
        }
        QVERIFY(choice.contains("finish_reason"_L1));
        if (!choice.value("finish_reason"_L1).isNull()) {
            rebuilt.finishReason = choice.value("finish_reason"_L1);
            ++rebuilt.finishes;
            QCOMPARE(delta, QJsonObject());
        }
    }

    // Usage: one chunk, last before [DONE], only when asked.
    QCOMPARE(usageChunks.size(), includeUsage ? 1 : 0);
    if (includeUsage) {
        QCOMPARE(object(events->at(events->size() - 2).data), usageChunks.first());
        QCOMPARE(usageChunks.first().value("usage"_L1), original.value("usage"_L1));
    }

    const QJsonArray originalChoices = original.value("choices"_L1).toArray();
    QCOMPARE(choices.size(), originalChoices.size());
    for (const QJsonValue value : originalChoices) {
        const QJsonObject choice = value.toObject();
        const QJsonObject message = choice.value("message"_L1).toObject();
        const int index = choice.value("index"_L1).toInt();
        QVERIFY(choices.contains(index));
        const RebuiltChoice &rebuilt = choices[index];
        QCOMPARE(rebuilt.role, message.value("role"_L1));
        if (message.value("content"_L1).isString())
            QCOMPARE(rebuilt.content, message.value("content"_L1).toString());
        else
            QVERIFY(!rebuilt.contentSeen);
        QVERIFY(rebuilt.validUtf8Deltas);
        if (message.value("refusal"_L1).isString())
            QCOMPARE(rebuilt.refusal, message.value("refusal"_L1).toString());
        else
            QVERIFY(!rebuilt.refusalSeen);
        QCOMPARE(rebuilt.toolCalls, message.value("tool_calls"_L1).toArray());
        QCOMPARE(rebuilt.finishes, 1);
        QCOMPARE(rebuilt.finishReason, choice.value("finish_reason"_L1));
        if (choice.value("logprobs"_L1).isObject()) {
            QCOMPARE(rebuilt.logprobs, choice.value("logprobs"_L1));
            QCOMPARE(rebuilt.logprobsContent,
                     choice.value("logprobs"_L1).toObject().value("content"_L1).toArray());
        } else {
            QVERIFY(rebuilt.logprobs.isUndefined());
        }
        // A text long enough to cut is sent in several pieces.
        if (minPieceBytes == 1 && message.value("content"_L1).toString().size() > 8)
            QVERIFY(rebuilt.chunks > 4);
    }
}

void TestSseReplay::completionsRebuildTheText_data() {
    QTest::addColumn<bool>("includeUsage");
    QTest::addColumn<int>("minPieceBytes");
    for (const bool usage : {false, true}) {
        for (const int minBytes : {32, 1})
            QTest::addRow("usage=%d min=%d", usage, minBytes) << usage << minBytes;
    }
}

void TestSseReplay::completionsRebuildTheText() {
    QFETCH(bool, includeUsage);
    QFETCH(int, minPieceBytes);
    const QByteArray body = recorded(u"completions-text.json"_s);
    const QJsonObject original = object(body);
    sse::ReplayOptions options;
    options.endpoint = sse::Endpoint::Completions;
    options.includeUsage = includeUsage;
    options.minPieceBytes = minPieceBytes;
    options.maxPieces = 100000;
    const sse::ReplayResult result = sse::replayToBytes(options, body);
    QVERIFY(!result.error);
    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY2(events, qPrintable(problem));
    QVERIFY(allDataIsStrictJson(*events));
    QCOMPARE(events->last().data, QByteArray("[DONE]"));

    QMap<int, QString> texts;
    QMap<int, QJsonValue> finishes;
    int usageChunks = 0;
    for (qsizetype e = 0; e + 1 < events->size(); ++e) {
        const QJsonObject chunk = object(events->at(e).data);
        QCOMPARE(chunk.value("object"_L1).toString(), u"text_completion"_s);
        for (const auto key : {"id"_L1, "created"_L1, "model"_L1, "system_fingerprint"_L1})
            QCOMPARE(chunk.value(key), original.value(key));
        QCOMPARE(chunk.contains("usage"_L1), includeUsage);
        const QJsonArray chunkChoices = chunk.value("choices"_L1).toArray();
        if (chunkChoices.isEmpty()) {
            ++usageChunks;
            QCOMPARE(e, events->size() - 2);
            QCOMPARE(chunk.value("usage"_L1), original.value("usage"_L1));
            continue;
        }
        const QJsonObject choice = chunkChoices.first().toObject();
        const int index = choice.value("index"_L1).toInt(-1);
        QVERIFY(!finishes.contains(index));
        texts[index] += choice.value("text"_L1).toString();
        if (!choice.value("finish_reason"_L1).isNull())
            finishes[index] = choice.value("finish_reason"_L1);
    }
    QCOMPARE(usageChunks, includeUsage ? 1 : 0);
    const QJsonArray originalChoices = original.value("choices"_L1).toArray();
    QCOMPARE(texts.size(), originalChoices.size());
    for (const QJsonValue value : originalChoices) {
        const QJsonObject choice = value.toObject();
        const int index = choice.value("index"_L1).toInt();
        QCOMPARE(texts.value(index), choice.value("text"_L1).toString());
        QCOMPARE(finishes.value(index), choice.value("finish_reason"_L1));
    }
}

void TestSseReplay::responsesRebuildTheResponse_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<int>("minPieceBytes");
    for (const QString &file :
         {u"responses-text.json"_s, u"responses-tool-call.json"_s, u"responses-refusal.json"_s}) {
        for (const int minBytes : {32, 1})
            QTest::addRow("%s min=%d", qPrintable(file), minBytes) << file << minBytes;
    }
}

void TestSseReplay::responsesRebuildTheResponse() {
    QFETCH(QString, file);
    QFETCH(int, minPieceBytes);
    const QByteArray body = recorded(file);
    const QJsonObject original = object(body);
    sse::ReplayOptions options;
    options.endpoint = sse::Endpoint::Responses;
    options.includeUsage = true; // no meaning for the Responses API: usage is in the last event
    options.minPieceBytes = minPieceBytes;
    options.maxPieces = 100000;
    const sse::ReplayResult result = sse::replayToBytes(options, body);
    QVERIFY2(!result.error, qPrintable(result.error ? result.error->message : QString()));
    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY2(events, qPrintable(problem));
    QVERIFY(allDataIsStrictJson(*events));

    // Named events, each data object of that type, sequence numbers 0, 1, 2, ...
    QList<QJsonObject> data;
    for (qsizetype e = 0; e < events->size(); ++e) {
        const QJsonObject event = object(events->at(e).data);
        QCOMPARE(event.value("type"_L1).toString().toUtf8(), events->at(e).name);
        QCOMPARE(event.value("sequence_number"_L1).toInteger(-1), e);
        data.append(event);
    }
    QVERIFY(data.size() >= 3);
    QCOMPARE(data[0].value("type"_L1).toString(), u"response.created"_s);
    QCOMPARE(data[1].value("type"_L1).toString(), u"response.in_progress"_s);
    const QString status = original.value("status"_L1).toString();
    QCOMPARE(data.last().value("type"_L1).toString(), u"response."_s + status);
    QCOMPARE(data.last().value("response"_L1).toObject(), original);
    QCOMPARE(data.last().value("response"_L1).toObject().value("usage"_L1),
             original.value("usage"_L1));

    // Rebuild the output from the events in between.
    QJsonArray output;
    QJsonArray addedItems;
    QMap<QPair<int, int>, QString> texts, refusals;
    QMap<QPair<int, int>, QJsonArray> annotations;
    QMap<int, QString> arguments;
    for (qsizetype e = 2; e + 1 < data.size(); ++e) {
        const QJsonObject &event = data[e];
        const QString type = event.value("type"_L1).toString();
        const int outputIndex = event.value("output_index"_L1).toInt(-1);
        const QPair<int, int> part{outputIndex, event.value("content_index"_L1).toInt(-1)};
        const QJsonObject originalItem = original.value("output"_L1)[outputIndex].toObject();
        if (type != "response.output_item.added"_L1 && type != "response.output_item.done"_L1)
            QCOMPARE(event.value("item_id"_L1), originalItem.value("id"_L1));
        if (type == "response.output_item.added"_L1) {
            QCOMPARE(outputIndex, addedItems.size());
            addedItems.append(event.value("item"_L1));
            QCOMPARE(event.value("item"_L1).toObject().value("id"_L1), originalItem.value("id"_L1));
        } else if (type == "response.output_item.done"_L1) {
            QCOMPARE(outputIndex, output.size());
            output.append(event.value("item"_L1));
        } else if (type == "response.output_text.delta"_L1) {
            texts[part] += event.value("delta"_L1).toString();
            QVERIFY(event.value("logprobs"_L1).isArray());
        } else if (type == "response.output_text.done"_L1) {
            QCOMPARE(event.value("text"_L1).toString(), texts.value(part));
        } else if (type == "response.output_text.annotation.added"_L1) {
            QCOMPARE(event.value("annotation_index"_L1).toInt(), annotations[part].size());
            annotations[part].append(event.value("annotation"_L1));
        } else if (type == "response.refusal.delta"_L1) {
            refusals[part] += event.value("delta"_L1).toString();
        } else if (type == "response.refusal.done"_L1) {
            QCOMPARE(event.value("refusal"_L1).toString(), refusals.value(part));
        } else if (type == "response.function_call_arguments.delta"_L1) {
            arguments[outputIndex] += event.value("delta"_L1).toString();
        } else if (type == "response.function_call_arguments.done"_L1) {
            QCOMPARE(event.value("arguments"_L1).toString(), arguments.value(outputIndex));
            QCOMPARE(event.value("name"_L1), originalItem.value("name"_L1));
        } else if (type == "response.content_part.added"_L1) {
            const QJsonObject added = event.value("part"_L1).toObject();
            QCOMPARE(added.value("type"_L1),
                     originalItem.value("content"_L1)[part.second].toObject().value("type"_L1));
            QVERIFY(added.value("text"_L1).toString().isEmpty());
            QVERIFY(added.value("refusal"_L1).toString().isEmpty());
        } else if (type == "response.content_part.done"_L1) {
            QCOMPARE(event.value("part"_L1), originalItem.value("content"_L1)[part.second]);
        } else {
            QFAIL(qPrintable(u"unexpected event "_s + type));
        }
    }
    QCOMPARE(output, original.value("output"_L1).toArray());
    QCOMPARE(addedItems.size(), output.size());
    for (qsizetype i = 0; i < output.size(); ++i) {
        const QJsonObject item = output[i].toObject();
        const QJsonObject added = addedItems[i].toObject();
        const QString type = item.value("type"_L1).toString();
        if (type == "message"_L1) {
            QCOMPARE(added.value("status"_L1).toString(), u"in_progress"_s);
            QCOMPARE(added.value("content"_L1).toArray(), QJsonArray());
            const QJsonArray parts = item.value("content"_L1).toArray();
            for (qsizetype j = 0; j < parts.size(); ++j) {
                const QJsonObject p = parts[j].toObject();
                const QPair<int, int> key{int(i), int(j)};
                if (p.value("type"_L1) == "output_text"_L1) {
                    QCOMPARE(texts.value(key), p.value("text"_L1).toString());
                    QCOMPARE(annotations.value(key), p.value("annotations"_L1).toArray());
                } else {
                    QCOMPARE(refusals.value(key), p.value("refusal"_L1).toString());
                }
            }
        } else if (type == "function_call"_L1) {
            QCOMPARE(added.value("status"_L1).toString(), u"in_progress"_s);
            QCOMPARE(added.value("arguments"_L1).toString(), QString());
            QCOMPARE(added.value("call_id"_L1), item.value("call_id"_L1));
            QCOMPARE(arguments.value(int(i)), item.value("arguments"_L1).toString());
        } else {
            QCOMPARE(added, item); // reasoning and other items pass through
        }
    }
}

void TestSseReplay::responsesSnapshotsAreInProgressAndEmpty() {
    const QByteArray body = recorded(u"responses-text.json"_s);
    const QJsonObject original = object(body);
    sse::ReplayOptions options;
    options.endpoint = sse::Endpoint::Responses;
    const sse::ReplayResult result = sse::replayToBytes(options, body);
    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY(events && events->size() > 2);
    for (int e = 0; e < 2; ++e) {
        QJsonObject snapshot = object(events->at(e).data).value("response"_L1).toObject();
        QCOMPARE(snapshot.value("status"_L1).toString(), u"in_progress"_s);
        QCOMPARE(snapshot.value("output"_L1).toArray(), QJsonArray());
        QVERIFY(snapshot.value("usage"_L1).isNull());
        QVERIFY(snapshot.value("completed_at"_L1).isNull());
        // Everything else is the body's, in the body's order.
        QJsonObject expected = original;
        for (const auto key : {"status"_L1, "output"_L1, "usage"_L1, "completed_at"_L1})
            expected.remove(key), snapshot.remove(key);
        QCOMPARE(snapshot, expected);
    }
}

void TestSseReplay::piecesNeverSplitACodePoint() {
    // Every cut a naive byte split would make lands inside a 2, 3 or 4 byte sequence.
    const QByteArray text = u"é東😀é東😀👨‍👩‍👧 𝄞"_s.toUtf8();
    const QByteArray body = R"({"id":"c","object":"chat.completion","created":1,"model":"m",)"
                            R"("choices":[{"index":0,"message":{"role":"assistant","content":)" +
                            json::quoted(text) + R"(},"finish_reason":"stop"}]})";
    for (int minBytes = 1; minBytes <= 8; ++minBytes) {
        sse::ReplayOptions options;
        options.minPieceBytes = minBytes;
        options.maxPieces = 1000;
        const sse::ReplayResult result = sse::replayToBytes(options, body);
        QVERIFY(!result.error);
        QString problem;
        const auto events = parseSse(result.stream, &problem);
        QVERIFY(events);
        QByteArray joined;
        int pieces = 0;
        for (const Event &event : *events) {
            if (event.data == "[DONE]")
                continue;
            const auto members = json::objectMembers(event.data);
            QVERIFY(members);
            const auto choices = json::find(*members, "choices");
            const auto choice = json::objectMembers(choices->value.sliced(1).chopped(1));
            const auto delta = json::objectMembers(json::find(*choice, "delta")->value);
            const json::Member *content = json::find(*delta, "content");
            if (!content || content->kind != json::Kind::String)
                continue;
            const QByteArray piece = *json::stringValue(content->value);
            QVERIFY2(QUtf8StringView(piece).isValidUtf8(), piece.toHex().constData());
            joined += piece;
            pieces += piece.isEmpty() ? 0 : 1;
        }
        QCOMPARE(joined, text);
        QVERIFY(pieces > 1);
    }
}

void TestSseReplay::invalidUtf8IsReplayedByteForByte() {
    // A provider's invalid bytes are relayed as they are (as a non-streamed body would be); the
    // pieces never start with a continuation byte, so a decoder sees the same sequence.
    const QByteArray text = QByteArray("ab\xC3") + "cd\xE6\x9D" + "\x80\x80\x80\x80xy\xF0\x9F";
    const QByteArray body = R"({"id":"c","object":"chat.completion","created":1,"model":"m",)"
                            R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
                            text + R"("},"finish_reason":"stop"}]})";
    sse::ReplayOptions options;
    options.minPieceBytes = 1;
    options.maxPieces = 1000;
    const sse::ReplayResult result = sse::replayToBytes(options, body);
    QVERIFY(!result.error);
    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY2(events, qPrintable(problem));
    QByteArray joined;
    for (const Event &event : *events) {
        const auto members = json::objectMembers(event.data, json::Strictness::Lenient);
        if (!members)
            continue;
        const auto choices = json::find(*members, "choices");
        const auto choice =
            json::objectMembers(choices->value.sliced(1).chopped(1), json::Strictness::Lenient);
        const auto delta =
            json::objectMembers(json::find(*choice, "delta")->value, json::Strictness::Lenient);
        const json::Member *content = json::find(*delta, "content");
        if (!content || content->kind != json::Kind::String)
            continue;
        const QByteArray piece = *json::stringValue(content->value);
        if (!piece.isEmpty())
            QVERIFY((uchar(piece.front()) & 0xC0) != 0x80);
        joined += piece;
    }
    QCOMPARE(joined, text);
}

void TestSseReplay::hugeTextIsCutIntoAFewPieces() {
    const QByteArray text = QByteArray(8 * 1024 * 1024, 'x') + "😀";
    const QByteArray body = R"({"id":"c","object":"chat.completion","created":1,"model":"m",)"
                            R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
                            text + R"("},"finish_reason":"stop"}]})";
    const sse::ReplayResult result = sse::replayToBytes({}, body);
    QVERIFY(!result.error);
    QString problem;
    const auto events = parseSse(result.stream, &problem);
    QVERIFY(events);
    // role chunk, 8 pieces, finish chunk, [DONE]
    QCOMPARE(events->size(), 1 + sse::ReplayOptions().maxPieces + 1 + 1);
    QString joined;
    for (const Event &event : *events) {
        if (event.data != "[DONE]") {
            joined += object(event.data)["choices"_L1][0]["delta"_L1]["content"_L1].toString();
        }
    }
    QCOMPARE(joined.toUtf8(), text);
}

void TestSseReplay::sinkReceivesWholeEvents() {
    const QByteArray body = recorded(u"chat-utf8.json"_s);
    sse::ReplayOptions options;
    options.minPieceBytes = 1;
    options.maxPieces = 100000;
    QList<QByteArray> calls;
    const auto error =
        sse::replay(options, body, [&calls](const QByteArray &events) { calls.append(events); });
    QVERIFY(!error);
    QVERIFY(!calls.isEmpty());
    for (const QByteArray &call : calls)
        QVERIFY(call.endsWith("\n\n"));
    QCOMPARE(calls.join(), sse::replayToBytes(options, body).stream);

    // Large replays arrive in several pieces, each made of whole events.
    const QByteArray big = R"({"id":"c","object":"chat.completion","created":1,"model":"m",)"
                           R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
                           QByteArray(400 * 1024, 'y') + R"("},"finish_reason":"stop"}]})";
    calls.clear();
    QVERIFY(!sse::replay({}, big, [&calls](const QByteArray &events) { calls.append(events); }));
    QVERIFY(calls.size() > 1);
    for (const QByteArray &call : calls) {
        QVERIFY(call.endsWith("\n\n"));
        QVERIFY(call.startsWith("data: "));
    }
}

void TestSseReplay::badBodiesAreRefusedBeforeAnyByte_data() {
    QTest::addColumn<int>("endpoint");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QString>("mentions");
    const int chat = int(sse::Endpoint::ChatCompletions);
    const int completions = int(sse::Endpoint::Completions);
    const int responses = int(sse::Endpoint::Responses);
    const QByteArray head = R"({"id":"c","object":"chat.completion","created":1,"model":"m",)";
    const QByteArray deep = QByteArray(600, '[') + QByteArray(600, ']');

    QTest::newRow("empty") << chat << QByteArray() << u"not a JSON object"_s;
    QTest::newRow("html") << chat << QByteArray("<html>502</html>") << u"not a JSON object"_s;
    QTest::newRow("array") << responses << QByteArray("[1,2]") << u"not a JSON object"_s;
    QTest::newRow("cut short") << chat << head.chopped(3) << u"not a JSON object"_s;
    QTest::newRow("too deep") << chat << head + R"("choices":)" + deep + "}"
                              << u"not a JSON object"_s;
    QTest::newRow("no id") << chat << QByteArray(R"({"created":1,"model":"m","choices":[]})")
                           << u"id is missing"_s;
    QTest::newRow("created is text")
        << chat << QByteArray(R"({"id":"c","created":"1","model":"m","choices":[]})")
        << u"created has the wrong type"_s;
    QTest::newRow("choices not array")
        << chat << head + R"("choices":{}})" << u"choices has the wrong type"_s;
    QTest::newRow("choice not object")
        << chat << head + R"("choices":[1]})" << u"choices[0] is not a JSON object"_s;
    QTest::newRow("no message") << chat << head + R"("choices":[{"index":0}]})"
                                << u"choices[0].message is missing"_s;
    QTest::newRow("content is number")
        << chat << head + R"("choices":[{"index":0,"message":{"role":"assistant","content":5}}]})"
        << u"choices[0].message.content has the wrong type"_s;
    QTest::newRow("custom tool call")
        << chat
        << head + R"("choices":[{"message":{"role":"assistant","tool_calls":[{"id":"x",)"
                  R"("type":"custom","custom":{"name":"n","input":"i"}}]}}]})"
        << u"tool_calls[0].type is not \"function\""_s;
    QTest::newRow("tool call without arguments")
        << chat
        << head + R"("choices":[{"message":{"role":"assistant","tool_calls":[{"id":"x",)"
                  R"("type":"function","function":{"name":"n"}}]}}]})"
        << u"tool_calls[0].function.arguments is missing"_s;
    QTest::newRow("audio") << chat
                           << head + R"("choices":[{"message":{"role":"assistant","content":null,)"
                                     R"("audio":{"id":"a","data":"AAAA"}}}]})"
                           << u"audio"_s;
    QTest::newRow("completion text null")
        << completions << head + R"("choices":[{"index":0,"text":null}]})"
        << u"choices[0].text has the wrong type"_s;
    QTest::newRow("response in progress")
        << responses << QByteArray(R"({"id":"r","status":"in_progress","output":[]})")
        << u"in_progress"_s;
    QTest::newRow("response without output")
        << responses << QByteArray(R"({"id":"r","status":"completed"})") << u"output is missing"_s;
    QTest::newRow("message without id")
        << responses
        << QByteArray(
               R"({"id":"r","status":"completed","output":[{"type":"message","content":[]}]})")
        << u"output[0].id is missing"_s;
    QTest::newRow("output_text without text")
        << responses
        << QByteArray(R"({"id":"r","status":"completed","output":[{"type":"message","id":"m",)"
                      R"("content":[{"type":"output_text"}]}]})")
        << u"output[0].content[0].text is missing"_s;
    QTest::newRow("function call arguments object")
        << responses
        << QByteArray(R"({"id":"r","status":"completed","output":[{"type":"function_call",)"
                      R"("id":"f","name":"n","arguments":{}}]})")
        << u"output[0].arguments has the wrong type"_s;
}

void TestSseReplay::badBodiesAreRefusedBeforeAnyByte() {
    QFETCH(int, endpoint);
    QFETCH(QByteArray, body);
    QFETCH(QString, mentions);
    sse::ReplayOptions options;
    options.endpoint = sse::Endpoint(endpoint);
    options.includeUsage = true;
    bool called = false;
    const auto error = sse::replay(options, body, [&called](const QByteArray &) { called = true; });
    QVERIFY(error);
    QVERIFY2(error->message.contains(mentions), qPrintable(error->message));
    QVERIFY(error->message.startsWith(u"The provider's answer cannot be replayed"_s));
    QVERIFY(!called);
    QVERIFY(sse::replayToBytes(options, body).stream.isEmpty());
}

void TestSseReplay::chatErrorEventCarriesTheProviderError() {
    HttpAnswer failure;
    failure.status = 429;
    failure.body = recorded(u"error-rate-limit.json"_s);
    for (const auto endpoint : {sse::Endpoint::ChatCompletions, sse::Endpoint::Completions}) {
        const QByteArray event = sse::errorEvent(endpoint, failure);
        QString problem;
        const auto events = parseSse(event, &problem);
        QVERIFY2(events, qPrintable(problem));
        QCOMPARE(events->size(), 1);
        QVERIFY(events->first().name.isEmpty());
        QCOMPARE(object(events->first().data), object(failure.body));
    }

    // The proxy's own failures come from errorAnswer(), the one place for the shape.
    const HttpAnswer own =
        errorAnswer(503, u"llm-proxy is shutting down"_s, ErrorType::Server, "shutting_down");
    const QByteArray event = sse::errorEvent(sse::Endpoint::ChatCompletions, own);
    QVERIFY(event.startsWith("data: {\"error\":"));
    QVERIFY(event.endsWith("}\n\n"));
    QCOMPARE(object(event.mid(6).chopped(2)), object(own.body));
}

void TestSseReplay::errorEventForABodyThatIsNoOpenAIError() {
    HttpAnswer failure;
    failure.status = 502;
    failure.body = "<html>\r\n<h1>Bad gateway</h1>\r\n</html>";
    const QByteArray event = sse::errorEvent(sse::Endpoint::ChatCompletions, failure);
    QString problem;
    const auto events = parseSse(event, &problem);
    QVERIFY2(events, qPrintable(problem));
    const QJsonObject error = object(events->first().data).value("error"_L1).toObject();
    QCOMPARE(error.value("type"_L1).toString(), u"server_error"_s);
    QVERIFY(error.value("message"_L1).toString().contains(u"502"_s));
    QVERIFY(error.contains("param"_L1) && error.contains("code"_L1));

    // A multi-line provider error object stays one data line.
    failure.body = "{\n  \"error\": {\n    \"message\": \"x\",\n    \"type\": \"t\"\n  }\n}";
    const auto again = parseSse(sse::errorEvent(sse::Endpoint::Completions, failure), &problem);
    QVERIFY2(again, qPrintable(problem));
    QCOMPARE(object(again->first().data).value("error"_L1).toObject().value("message"_L1),
             QJsonValue(u"x"_s));
}

void TestSseReplay::responsesErrorEventIsAResponseErrorEvent() {
    HttpAnswer failure;
    failure.status = 429;
    failure.body = recorded(u"error-rate-limit.json"_s);
    const QByteArray event = sse::errorEvent(sse::Endpoint::Responses, failure, 7);
    QString problem;
    const auto events = parseSse(event, &problem);
    QVERIFY2(events, qPrintable(problem));
    QCOMPARE(events->size(), 1);
    QCOMPARE(events->first().name, QByteArray("error"));
    const QJsonObject data = object(events->first().data);
    const QJsonObject expected = object(failure.body).value("error"_L1).toObject();
    // ResponseErrorEvent: exactly type, code, message, param, sequence_number.
    QCOMPARE(data.keys(),
             (QStringList{u"code"_s, u"message"_s, u"param"_s, u"sequence_number"_s, u"type"_s}));
    QCOMPARE(data.value("type"_L1).toString(), u"error"_s);
    QCOMPARE(data.value("code"_L1), expected.value("code"_L1));
    QCOMPARE(data.value("message"_L1), expected.value("message"_L1));
    QVERIFY(data.value("param"_L1).isNull());
    QCOMPARE(data.value("sequence_number"_L1).toInt(), 7);
}

void TestSseReplay::commentsCannotBreakTheFraming() {
    QCOMPARE(sse::keepAliveComment(), QByteArray(": keep-alive\n\n"));
    QCOMPARE(sse::batchIdComment("batch_abc"), QByteArray(": x-llm-proxy-batch-id batch_abc\n\n"));
    // An id with line breaks cannot smuggle an event into the stream.
    const QByteArray comment = sse::batchIdComment("batch_1\n\ndata: [DONE]\r\n\0x");
    QCOMPARE(comment.count('\n'), 2);
    QVERIFY(comment.endsWith("\n\n"));
    QVERIFY(!comment.contains('\r'));
    QString problem;
    const auto events = parseSse(comment + sse::keepAliveComment(), &problem);
    QVERIFY2(events, qPrintable(problem));
    QVERIFY(events->isEmpty()); // comments only: no event reaches the client
}

void TestSseReplay::optionsComeFromStreamOptions_data() {
    QTest::addColumn<int>("endpoint");
    QTest::addColumn<QByteArray>("request");
    QTest::addColumn<bool>("includeUsage");
    const int chat = int(sse::Endpoint::ChatCompletions);
    QTest::newRow("asked") << chat
                           << QByteArray(R"({"model":"m","stream":true,"stream_options":)"
                                         R"({"include_usage":true}})")
                           << true;
    QTest::newRow("false") << chat
                           << QByteArray(
                                  R"({"stream":true,"stream_options":{"include_usage":false}})")
                           << false;
    QTest::newRow("no stream_options") << chat << QByteArray(R"({"stream":true})") << false;
    QTest::newRow("string true") << chat
                                 << QByteArray(R"({"stream_options":{"include_usage":"true"}})")
                                 << false;
    QTest::newRow("not json") << chat << QByteArray("{") << false;
    QTest::newRow("completions") << int(sse::Endpoint::Completions)
                                 << QByteArray(R"({"stream_options":{"include_usage":true}})")
                                 << true;
    QTest::newRow("responses has none")
        << int(sse::Endpoint::Responses)
        << QByteArray(R"({"stream_options":{"include_usage":true}})") << false;
}

void TestSseReplay::optionsComeFromStreamOptions() {
    QFETCH(int, endpoint);
    QFETCH(QByteArray, request);
    QFETCH(bool, includeUsage);
    const sse::ReplayOptions options = sse::optionsForRequest(sse::Endpoint(endpoint), request);
    QCOMPARE(options.endpoint, sse::Endpoint(endpoint));
    QCOMPARE(options.includeUsage, includeUsage);
}

QTEST_GUILESS_MAIN(TestSseReplay)
#include "tst_ssereplay.moc"
