// SPDX-License-Identifier: GPL-3.0-or-later
// Anthropic's Message Batches in the proxy's words (issue 13): the request line and the create
// body, result lines (succeeded, errored with each error type's status, canceled, expired),
// the client's answer with request-id, batch objects to normalised statuses, and the usage
// and cost of an answer with prompt-cache reads and writes. The HTTP side runs against the
// fake Anthropic API in tst_providercontract.

#include "accounting/cost.h"
#include "accounting/prices.h"
#include "api/anthropicsse.h"
#include "api/batchresult.h"
#include "api/json.h"
#include "api/usage.h"
#include "provider/anthropicprovider.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QNetworkAccessManager>
#include <QStringDecoder>
#include <QTest>

using namespace llmproxy;

namespace {

QByteArray recorded(const QString &name) {
    QString dir = qEnvironmentVariable("LLMPROXY_SOURCE_DIR");
    if (dir.isEmpty())
        dir = QFileInfo(QStringLiteral(__FILE__)).absolutePath() + QStringLiteral("/..");
    QFile file(dir + QStringLiteral("/tests/data/anthropic-sse/") + name);
    if (!file.open(QIODevice::ReadOnly))
        qFatal("cannot read %s", qPrintable(file.fileName()));
    return file.readAll();
}

struct Event {
    QByteArray name;
    QByteArray data;
};

// "event: NAME\ndata: JSON\n\n" events, checked for that framing.
QList<Event> eventsOf(const QByteArray &stream) {
    QList<Event> events;
    for (const QByteArray &chunk : stream.split('\n')) {
        if (chunk.startsWith("event: "))
            events.append({chunk.mid(7), {}});
        else if (chunk.startsWith("data: ") && !events.isEmpty())
            events.last().data = chunk.mid(6);
    }
    return events;
}

bool isUtf8(const QByteArray &bytes) {
    QStringDecoder decoder(QStringDecoder::Utf8);
    const QString text = decoder.decode(bytes);
    return !decoder.hasError();
}

// The message a client's SDK accumulates from the events (as the official SDKs' MessageStream
// does), to compare with the body the events were made from.
QJsonObject accumulate(const QList<Event> &events, QByteArray *partialJson, bool *piecesValid) {
    QJsonObject message;
    QJsonArray content;
    QMap<int, QByteArray> partial;
    for (const Event &event : events) {
        const QJsonObject data = QJsonDocument::fromJson(event.data).object();
        const QString type = data.value(QStringLiteral("type")).toString();
        if (type.toUtf8() != event.name)
            *piecesValid = false;
        const int index = data.value(QStringLiteral("index")).toInt();
        if (type == QStringLiteral("message_start")) {
            message = data.value(QStringLiteral("message")).toObject();
        } else if (type == QStringLiteral("content_block_start")) {
            content.append(data.value(QStringLiteral("content_block")));
        } else if (type == QStringLiteral("content_block_delta")) {
            QJsonObject block = content.at(index).toObject();
            const QJsonObject delta = data.value(QStringLiteral("delta")).toObject();
            const QString kind = delta.value(QStringLiteral("type")).toString();
            const auto append = [&](const char *field, const char *from) {
                const QString piece = delta.value(QLatin1StringView(from)).toString();
                if (!isUtf8(piece.toUtf8()) || piece.contains(QChar::ReplacementCharacter))
                    *piecesValid = false;
                block.insert(QLatin1StringView(field),
                             QString(block.value(QLatin1StringView(field)).toString() + piece));
            };
            if (kind == QStringLiteral("text_delta")) {
                append("text", "text");
            } else if (kind == QStringLiteral("thinking_delta")) {
                append("thinking", "thinking");
            } else if (kind == QStringLiteral("signature_delta")) {
                block.insert(QStringLiteral("signature"), delta.value(QStringLiteral("signature")));
            } else if (kind == QStringLiteral("input_json_delta")) {
                partial[index] += delta.value(QStringLiteral("partial_json")).toString().toUtf8();
            } else if (kind == QStringLiteral("citations_delta")) {
                QJsonArray citations = block.value(QStringLiteral("citations")).toArray();
                citations.append(delta.value(QStringLiteral("citation")));
                block.insert(QStringLiteral("citations"), citations);
            }
            content.replace(index, block);
        } else if (type == QStringLiteral("content_block_stop")) {
            if (partial.contains(index)) {
                QJsonObject block = content.at(index).toObject();
                block.insert(QStringLiteral("input"),
                             QJsonDocument::fromJson(partial.value(index)).object());
                content.replace(index, block);
                *partialJson += partial.value(index);
            }
        } else if (type == QStringLiteral("message_delta")) {
            const QJsonObject delta = data.value(QStringLiteral("delta")).toObject();
            message.insert(QStringLiteral("stop_reason"),
                           delta.value(QStringLiteral("stop_reason")));
            message.insert(QStringLiteral("stop_sequence"),
                           delta.value(QStringLiteral("stop_sequence")));
            message.insert(QStringLiteral("usage"), data.value(QStringLiteral("usage")));
        }
    }
    message.insert(QStringLiteral("content"), content);
    return message;
}

} // namespace

class tst_Anthropic final : public QObject {
    Q_OBJECT

    QNetworkAccessManager m_nam;
    AnthropicProvider m_provider;

public:
    tst_Anthropic()
        : m_provider(&m_nam, QUrl(QStringLiteral("http://127.0.0.1:9/v1"))) {}

private:
    static QJsonObject objectOf(const QByteArray &json) {
        return QJsonDocument::fromJson(json).object();
    }

private Q_SLOTS:
    void aRequestIsOneLineAndTheLinesMakeTheCreateBody() {
        const QByteArray body =
            "{\n  \"model\": \"claude-haiku-4-5\",\n  \"max_tokens\": 10,\n"
            "  \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\"}]\n}";
        const QByteArray line = m_provider.encodeLine("r-1", "/v1/messages", body);
        QVERIFY(line.endsWith('\n'));
        QCOMPARE(line.count('\n'), 1);
        const QJsonObject decoded = objectOf(line);
        QCOMPARE(decoded.value(QStringLiteral("custom_id")).toString(), QStringLiteral("r-1"));
        QCOMPARE(decoded.value(QStringLiteral("params")).toObject(), objectOf(body));
        QCOMPARE(m_provider.lineOverhead("r-1", "/v1/messages"),
                 m_provider.encodeLine("r-1", "/v1/messages", {}).size());

        const QByteArray lines = line + m_provider.encodeLine("r-2", "/v1/messages", body);
        const QByteArray create = AnthropicProvider::createBody(lines);
        QJsonParseError error;
        const QJsonDocument doc = QJsonDocument::fromJson(create, &error);
        QCOMPARE(error.error, QJsonParseError::NoError);
        const QJsonArray requests = doc.object().value(QStringLiteral("requests")).toArray();
        QCOMPARE(requests.size(), 2);
        QCOMPARE(requests.at(1).toObject().value(QStringLiteral("custom_id")).toString(),
                 QStringLiteral("r-2"));
        QCOMPARE(AnthropicProvider::createBody({}), QByteArray(R"({"requests":[]})"));
        QVERIFY(m_provider.inlineInput());
    }

    void errorTypesMapToTheirStatuses_data() {
        QTest::addColumn<QByteArray>("type");
        QTest::addColumn<int>("status");
        QTest::newRow("invalid request") << QByteArray("invalid_request_error") << 400;
        QTest::newRow("authentication") << QByteArray("authentication_error") << 401;
        QTest::newRow("billing") << QByteArray("billing_error") << 402;
        QTest::newRow("permission") << QByteArray("permission_error") << 403;
        QTest::newRow("not found") << QByteArray("not_found_error") << 404;
        QTest::newRow("too large") << QByteArray("request_too_large") << 413;
        QTest::newRow("rate limit") << QByteArray("rate_limit_error") << 429;
        QTest::newRow("api") << QByteArray("api_error") << 500;
        QTest::newRow("timeout") << QByteArray("timeout_error") << 504;
        QTest::newRow("overloaded") << QByteArray("overloaded_error") << 529;
        QTest::newRow("unknown") << QByteArray("brand_new_error") << 500;
    }
    void errorTypesMapToTheirStatuses() {
        QFETCH(QByteArray, type);
        QFETCH(int, status);
        QCOMPARE(AnthropicProvider::statusForErrorType(type), status);
        // And through a result line, with the error body and its request id kept.
        const QByteArray line =
            "{\"custom_id\":\"c1\",\"result\":{\"type\":\"errored\",\"error\":{\"type\":"
            "\"error\",\"error\":{\"type\":\"" +
            type + "\",\"message\":\"nope\"},\"request_id\":\"req_011\"}}}";
        QString why;
        const std::optional<ResultLine> result = m_provider.decodeResultLine(line, &why);
        QVERIFY2(result, qPrintable(why));
        QCOMPARE(result->outcome, ResultOutcome::Errored);
        QVERIFY(result->hasAnswer);
        QCOMPARE(result->httpStatus, status);
        QCOMPARE(result->requestId, QByteArray("req_011"));
        QCOMPARE(result->errorMessage, QStringLiteral("nope"));
        QCOMPARE(objectOf(result->body)
                     .value(QStringLiteral("error"))
                     .toObject()
                     .value(QStringLiteral("type"))
                     .toString()
                     .toUtf8(),
                 type);
        QVERIFY(!result->usage.reported);
        const HttpAnswer answer = m_provider.answerFor(*result, "msgbatch_1");
        QCOMPARE(answer.status, status);
        QCOMPARE(answer.body, result->body);
        QVERIFY(
            answer.headers.contains(qMakePair(QByteArray("request-id"), QByteArray("req_011"))));
        QVERIFY(answer.headers.contains(
            qMakePair(QByteArray(BatchIdHeader), QByteArray("msgbatch_1"))));
    }

    void resultLinesAreNormalised() {
        QString why;
        // succeeded: the message object is the client's body, byte for byte.
        const QByteArray message =
            R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",)"
            R"("content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn",)"
            R"("stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":2,)"
            R"("cache_creation_input_tokens":5,"cache_read_input_tokens":20}})";
        const std::optional<ResultLine> ok = m_provider.decodeResultLine(
            QByteArray(R"({"custom_id":"c1","result":{"type":"succeeded","message":)" + message +
                       "}}"),
            &why);
        QVERIFY2(ok, qPrintable(why));
        QCOMPARE(ok->customId, QByteArray("c1"));
        QCOMPARE(ok->outcome, ResultOutcome::Succeeded);
        QCOMPARE(ok->httpStatus, 200);
        QCOMPARE(ok->body, message);
        QCOMPARE(ok->usage.input, std::optional<qint64>(35));
        QCOMPARE(ok->usage.cachedInput, std::optional<qint64>(20));
        QCOMPARE(ok->usage.cacheWriteInput, std::optional<qint64>(5));
        QCOMPARE(ok->usage.output, std::optional<qint64>(2));
        const HttpAnswer answer = m_provider.answerFor(*ok, "msgbatch_1");
        QCOMPARE(answer.status, 200);
        QCOMPARE(answer.body, message);
        QVERIFY(!answer.synthesized);

        // canceled / expired: never ran, sent again; their answers (if ever needed) are
        // Anthropic-shaped.
        const std::optional<ResultLine> cancelled =
            m_provider.decodeResultLine(R"({"custom_id":"c2","result":{"type":"canceled"}})", &why);
        QVERIFY(cancelled);
        QCOMPARE(cancelled->outcome, ResultOutcome::Cancelled);
        QVERIFY(!cancelled->hasAnswer);
        const std::optional<ResultLine> expired =
            m_provider.decodeResultLine(R"({"custom_id":"c3","result":{"type":"expired"}})", &why);
        QVERIFY(expired);
        QCOMPARE(expired->outcome, ResultOutcome::Expired);
        const HttpAnswer late = m_provider.answerFor(*expired, "msgbatch_1");
        QCOMPARE(late.status, 504);
        QVERIFY(late.synthesized);
        const QJsonObject body = objectOf(late.body);
        QCOMPARE(body.value(QStringLiteral("type")).toString(), QStringLiteral("error"));
        QCOMPARE(body.value(QStringLiteral("error")).toObject().value(QStringLiteral("type")),
                 QStringLiteral("timeout_error"));

        // Unreadable lines say why.
        for (const QByteArray &bad :
             {QByteArray("not json"), QByteArray(R"({"result":{"type":"expired"}})"),
              QByteArray(R"({"custom_id":"c","result":{"type":"unheard_of"}})"),
              QByteArray(R"({"custom_id":"c","result":{"type":"succeeded"}})")}) {
            why.clear();
            QVERIFY2(!m_provider.decodeResultLine(bad, &why), bad.constData());
            QVERIFY(!why.isEmpty());
        }
        QCOMPARE(
            m_provider.customIdFromLineStart("{\"custom_id\":\"c9\",\"result\":{\"type\":\"succ"),
            std::optional<QByteArray>("c9"));
    }

    void batchObjectsNormalise_data() {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<int>("phase");
        QTest::addColumn<int>("end");
        QTest::addColumn<int>("total");
        QTest::addColumn<int>("succeeded");
        QTest::addColumn<int>("failed");
        const auto batch = [](const char *status, const char *counts, const char *cancel,
                              const char *url) -> QByteArray {
            return QByteArray("{\"id\":\"msgbatch_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":"
                              "\"message_batch\",\"processing_status\":\"") +
                   status + "\",\"request_counts\":" + counts +
                   R"(,"ended_at":null,"created_at":"2024-08-20T18:37:24.100435Z",)"
                   R"("expires_at":"2024-08-21T18:37:24.100435Z","archived_at":null,)"
                   R"("cancel_initiated_at":)" +
                   cancel + R"(,"results_url":)" + url + "}";
        };
        QTest::newRow("in progress")
            << batch("in_progress",
                     R"({"processing":100,"succeeded":0,"errored":0,"canceled":0,"expired":0})",
                     "null", "null")
            << int(BatchPhase::Running) << int(BatchEnd::None) << 100 << 0 << 0;
        QTest::newRow("canceling")
            << batch("canceling",
                     R"({"processing":100,"succeeded":0,"errored":0,"canceled":0,"expired":0})",
                     R"("2024-08-20T18:40:00Z")", "null")
            << int(BatchPhase::Cancelling) << int(BatchEnd::None) << 100 << 0 << 0;
        QTest::newRow("ended")
            << batch("ended",
                     R"({"processing":0,"succeeded":98,"errored":2,"canceled":0,"expired":0})",
                     "null", "\"https://api.anthropic.com/v1/messages/batches/x/results\"")
            << int(BatchPhase::Ended) << int(BatchEnd::Completed) << 100 << 98 << 2;
        QTest::newRow("ended after a cancel")
            << batch("ended",
                     R"({"processing":0,"succeeded":10,"errored":0,"canceled":90,"expired":0})",
                     R"("2024-08-20T18:40:00Z")", "\"https://x/results\"")
            << int(BatchPhase::Ended) << int(BatchEnd::Cancelled) << 100 << 10 << 90;
        QTest::newRow("ended with expired requests")
            << batch("ended",
                     R"({"processing":0,"succeeded":50,"errored":0,"canceled":0,"expired":50})",
                     "null", "\"https://x/results\"")
            << int(BatchPhase::Ended) << int(BatchEnd::Expired) << 100 << 50 << 50;
    }
    void batchObjectsNormalise() {
        QFETCH(QByteArray, json);
        QFETCH(int, phase);
        QFETCH(int, end);
        QFETCH(int, total);
        QFETCH(int, succeeded);
        QFETCH(int, failed);
        const std::optional<MessageBatchInfo> info = AnthropicProvider::parseBatch(json);
        QVERIFY(info);
        QCOMPARE(info->createdAtMs, qint64(1724179044100));
        const BatchStatus status = AnthropicProvider::batchStatusFrom(*info);
        QCOMPARE(int(status.phase), phase);
        QCOMPARE(int(status.end), end);
        QCOMPARE(status.total, total);
        QCOMPARE(status.succeeded, succeeded);
        QCOMPARE(status.failed, failed);
        QCOMPARE(status.id, QByteArray("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"));
        QCOMPARE(status.createdAtMs, qint64(1724179044100));
        // The state names the batch (for clean-up) and where its results are.
        QCOMPARE(objectOf(status.state).value(QStringLiteral("id")).toString(),
                 QStringLiteral("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"));
        QCOMPARE(objectOf(status.state).contains(QStringLiteral("results_url")), status.ended());

        const QByteArray page = R"({"data":[)" + json + "," + json +
                                R"(],"has_more":true,"first_id":"a","last_id":"b"})";
        const std::optional<MessageBatchPage> parsed = AnthropicProvider::parseBatchPage(page);
        QVERIFY(parsed);
        QCOMPARE(parsed->batches.size(), 2);
        QVERIFY(parsed->hasMore);
        QCOMPARE(parsed->lastId, QByteArray("b"));
        QVERIFY(!AnthropicProvider::parseBatch(R"({"id":"x"})"));
    }

    void aBatchedClaudeAnswerWithCacheTokensIsPricedExactly() {
        QString why;
        const std::optional<ResultLine> line = m_provider.decodeResultLine(
            R"({"custom_id":"c1","result":{"type":"succeeded","message":{"id":"msg_1",)"
            R"("type":"message","role":"assistant","model":"claude-3-haiku-20240307",)"
            R"("content":[],"stop_reason":"end_turn","stop_sequence":null,)"
            R"("usage":{"input_tokens":1000,"output_tokens":100,)"
            R"("cache_creation_input_tokens":2000,"cache_read_input_tokens":0,)"
            R"("cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":0}}}}})",
            &why);
        QVERIFY2(line, qPrintable(why));
        const accounting::PriceTable table = accounting::loadPrices(QString()).table;
        const accounting::ModelPrices *haiku =
            table.find(QStringLiteral("anthropic"), QStringLiteral("claude-3-haiku-20240307"));
        QVERIFY(haiku);
        // List: 1000 x $0.25 + 2000 x $0.30 (cache writes) + 100 x $1.25, per million.
        const accounting::Cost relayed =
            accounting::costOf(haiku, accounting::Route::Relay, line->usage);
        QCOMPARE(accounting::formatUsd(*relayed.paid), QByteArray("0.000975"));
        // The batch tier names no cache-write price: the paid cost is unknown, not guessed.
        const accounting::Cost batched =
            accounting::costOf(haiku, accounting::Route::Batch, line->usage);
        QVERIFY(!batched.paid);
        QCOMPARE(accounting::formatUsd(*batched.list), QByteArray("0.000975"));
        // Half of the writes to the 1-hour cache ($0.50 a million): 1000 x $0.25 + 1000 x $0.30
        // + 1000 x $0.50 + 100 x $1.25.
        const std::optional<ResultLine> oneHour = m_provider.decodeResultLine(
            R"({"custom_id":"c2","result":{"type":"succeeded","message":{"id":"msg_2",)"
            R"("type":"message","role":"assistant","model":"claude-3-haiku-20240307",)"
            R"("content":[],"stop_reason":"end_turn","stop_sequence":null,)"
            R"("usage":{"input_tokens":1000,"output_tokens":100,)"
            R"("cache_creation_input_tokens":2000,"cache_read_input_tokens":0,)"
            R"("cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":1000}}}}})",
            &why);
        QVERIFY2(oneHour, qPrintable(why));
        QCOMPARE(accounting::formatUsd(
                     *accounting::costOf(haiku, accounting::Route::Relay, oneHour->usage).paid),
                 QByteArray("0.001175"));
    }

    void aFinishedMessageReplaysAsItsStream_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QList<QByteArray>>("deltaKinds");
        QTest::newRow("text") << QStringLiteral("text.json") << QList<QByteArray>{"text_delta"};
        QTest::newRow("tool use") << QStringLiteral("tool-use.json")
                                  << QList<QByteArray>{"text_delta", "input_json_delta"};
        QTest::newRow("thinking") << QStringLiteral("thinking.json")
                                  << QList<QByteArray>{"thinking_delta", "signature_delta",
                                                       "text_delta"};
        QTest::newRow("multi-byte UTF-8")
            << QStringLiteral("utf8.json") << QList<QByteArray>{"text_delta"};
        QTest::newRow("empty content") << QStringLiteral("empty.json") << QList<QByteArray>{};
    }
    void aFinishedMessageReplaysAsItsStream() {
        QFETCH(QString, file);
        QFETCH(QList<QByteArray>, deltaKinds);
        const QByteArray body = recorded(file);
        sse::anthropic::Options options;
        options.minPieceBytes = 5; // many small pieces: every cut is exercised
        options.maxPieces = 40;
        const sse::anthropic::Result result = sse::anthropic::replay(body, options);
        QVERIFY2(!result.error, qPrintable(result.error.value_or(QString())));
        const QList<Event> events = eventsOf(result.stream);
        QVERIFY(result.stream.endsWith("\n\n"));
        QCOMPARE(events.first().name, QByteArray("message_start"));
        QCOMPARE(events.at(events.size() - 2).name, QByteArray("message_delta"));
        QCOMPARE(events.last().name, QByteArray("message_stop"));
        // message_start: nothing of the answer yet, the input usage already.
        const QJsonObject started =
            objectOf(events.first().data).value(QStringLiteral("message")).toObject();
        QVERIFY(started.value(QStringLiteral("content")).toArray().isEmpty());
        QVERIFY(started.value(QStringLiteral("stop_reason")).isNull());
        const QJsonObject startUsage = started.value(QStringLiteral("usage")).toObject();
        QCOMPARE(startUsage.value(QStringLiteral("output_tokens")).toInt(), 0);
        QCOMPARE(startUsage.value(QStringLiteral("input_tokens")),
                 objectOf(body)
                     .value(QStringLiteral("usage"))
                     .toObject()
                     .value(QStringLiteral("input_tokens")));

        QList<QByteArray> kinds;
        for (const Event &event : events) {
            const QByteArray kind = objectOf(event.data)
                                        .value(QStringLiteral("delta"))
                                        .toObject()
                                        .value(QStringLiteral("type"))
                                        .toString()
                                        .toUtf8();
            if (event.name == "content_block_delta" && !kinds.contains(kind))
                kinds.append(kind);
        }
        QCOMPARE(kinds, deltaKinds);

        // What the SDK accumulates is the message itself.
        QByteArray partialJson;
        bool valid = true;
        const QJsonObject rebuilt = accumulate(events, &partialJson, &valid);
        QVERIFY2(valid, "an event name differs from its type, or a piece split a character");
        QCOMPARE(QJsonDocument(rebuilt), QJsonDocument(objectOf(body)));
        // A tool's input arrives byte for byte (a number too large for a double keeps every
        // digit).
        if (file == QStringLiteral("tool-use.json"))
            QVERIFY(partialJson.contains("12345678901234567890"));
    }

    void textPiecesNeverSplitACharacter() {
        const QByteArray body = recorded(QStringLiteral("utf8.json"));
        for (int minBytes = 1; minBytes < 12; ++minBytes) {
            sse::anthropic::Options options;
            options.minPieceBytes = minBytes;
            options.maxPieces = 1000;
            const QList<Event> events = eventsOf(sse::anthropic::replay(body, options).stream);
            QByteArray joined;
            for (const Event &event : events) {
                if (event.name != "content_block_delta")
                    continue;
                // The raw JSON string decodes to whole characters (no invalid bytes).
                const QList<json::Member> members = *json::objectMembers(event.data);
                const QList<json::Member> delta =
                    *json::objectMembers(json::find(members, "delta")->value);
                const QByteArray piece = *json::stringValue(json::find(delta, "text")->value);
                QVERIFY(isUtf8(piece));
                joined += piece;
            }
            QCOMPARE(QString::fromUtf8(joined), objectOf(body)
                                                    .value(QStringLiteral("content"))
                                                    .toArray()
                                                    .first()
                                                    .toObject()
                                                    .value(QStringLiteral("text"))
                                                    .toString());
        }
    }

    void whatIsNotAMessageIsRefusedWhole() {
        for (const QByteArray &bad :
             {QByteArray("nope"), QByteArray(R"({"type":"error","error":{}})"),
              QByteArray(R"({"type":"message","content":{},"usage":{}})"),
              QByteArray(R"({"type":"message","content":[{"type":"text"}],"usage":{}})"),
              QByteArray(R"({"type":"message","content":[],"stop_reason":null})")}) {
            const sse::anthropic::Result result = sse::anthropic::replay(bad);
            QVERIFY2(result.error, bad.constData());
            QVERIFY(result.stream.isEmpty());
        }
    }

    void pingAndErrorEventsAreAnthropics() {
        QCOMPARE(sse::anthropic::pingEvent(),
                 QByteArray("event: ping\ndata: {\"type\": \"ping\"}\n\n"));
        // The provider's own error passes as it is, on one line.
        HttpAnswer overloaded;
        overloaded.status = 529;
        overloaded.body = "{\"type\": \"error\",\n \"error\": {\"type\": \"overloaded_error\", "
                          "\"message\": \"Overloaded\"}}";
        const QList<Event> passed = eventsOf(sse::anthropic::errorEvent(overloaded));
        QCOMPARE(passed.size(), 1);
        QCOMPARE(passed.first().name, QByteArray("error"));
        QCOMPARE(objectOf(passed.first().data), objectOf(overloaded.body));
        // One the proxy made in OpenAI's shape gets Anthropic's, with the type of its status.
        const HttpAnswer proxy =
            errorAnswer(429, QStringLiteral("slow down"), ErrorType::RateLimit);
        const QByteArray event = sse::anthropic::errorEvent(proxy);
        QVERIFY(event.startsWith("event: error\ndata: "));
        const QJsonObject error = objectOf(eventsOf(event).first().data);
        QCOMPARE(error.value(QStringLiteral("type")).toString(), QStringLiteral("error"));
        QCOMPARE(error.value(QStringLiteral("error")).toObject().value(QStringLiteral("type")),
                 QStringLiteral("rate_limit_error"));
        QCOMPARE(error.value(QStringLiteral("error")).toObject().value(QStringLiteral("message")),
                 QStringLiteral("slow down"));
        QCOMPARE(sse::anthropic::errorTypeForStatus(529), QByteArray("overloaded_error"));
        QCOMPARE(sse::anthropic::errorTypeForStatus(502), QByteArray("api_error"));
    }
};

QTEST_GUILESS_MAIN(tst_Anthropic)
#include "tst_anthropic.moc"
