// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/batchresult.h"
#include "api/json.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

using namespace llmproxy;

namespace {

const QByteArray BatchId = "batch_69a1b2c3";

struct ParsedError {
    QJsonValue message;
    QJsonValue type;
    QJsonValue param;
    QJsonValue code;
};

// The OpenAI error body of a synthesized answer; fails the test if it is not one.
std::optional<ParsedError> parseErrorBody(const QByteArray &body) {
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(body, &parseError);
    if (parseError.error != QJsonParseError::NoError || !document.isObject())
        return std::nullopt;
    const QJsonObject root = document.object();
    if (root.size() != 1 || !root.value(QStringLiteral("error")).isObject())
        return std::nullopt;
    const QJsonObject error = root.value(QStringLiteral("error")).toObject();
    if (error.size() != 4)
        return std::nullopt;
    return ParsedError{error.value(QStringLiteral("message")), error.value(QStringLiteral("type")),
                       error.value(QStringLiteral("param")), error.value(QStringLiteral("code"))};
}

HeaderList batchHeaderOnly() {
    return {{QByteArray("x-llm-proxy-batch-id"), BatchId}};
}

jsonl::OutputLine makeResponseLine(int status, const QByteArray &requestId,
                                   const QByteArray &body) {
    jsonl::OutputLine line;
    line.customId = "req-1";
    line.hasResponse = true;
    line.statusCode = status;
    line.requestId = requestId;
    line.body = body;
    return line;
}

jsonl::OutputLine makeErrorLine(const QByteArray &code, const QString &message) {
    jsonl::OutputLine line;
    line.customId = "req-1";
    line.errorCode = code;
    line.errorMessage = message;
    return line;
}

} // namespace

class TestBatchResult final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TestBatchResult)

public:
    TestBatchResult() = default;

private slots:
    void headerNames();
    void responseLine_data();
    void responseLine();
    void invalidStatus_data();
    void invalidStatus();
    void errorLine_data();
    void errorLine();
    void decodedLinesEndToEnd_data();
    void decodedLinesEndToEnd();
    void missingLine_data();
    void missingLine();
    void failedBatch_data();
    void failedBatch();
    void providerBytesNeverBecomeHeaders_data();
    void providerBytesNeverBecomeHeaders();
    void tooLongLine();
    // Issue 12: the normalised result line every provider maps into.
    void usageAsReported_data();
    void usageAsReported();
    void outcomeOfAnOpenAiLine_data();
    void outcomeOfAnOpenAiLine();
    void resultsWithoutAnAnswerAreSynthesizedFromTheirOutcome_data();
    void resultsWithoutAnAnswerAreSynthesizedFromTheirOutcome();
};

void TestBatchResult::headerNames() {
    QCOMPARE(QByteArray(BatchIdHeader), QByteArray("x-llm-proxy-batch-id"));
    QCOMPARE(QByteArray(RequestIdHeader), QByteArray("x-request-id"));
}

void TestBatchResult::responseLine_data() {
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("requestId");
    QTest::addColumn<QByteArray>("body");
    QTest::newRow("200 with big seed")
        << 200 << QByteArray("req_abc")
        << QByteArray(R"({"id":"chatcmpl-1","seed":12345678901234567890,"choices":[]})");
    QTest::newRow("400 provider error body")
        << 400 << QByteArray("req_def")
        << QByteArray(R"({"error":{"message":"too long","type":"invalid_request_error",)"
                      R"("param":"messages","code":"context_length_exceeded"}})");
    QTest::newRow("429") << 429 << QByteArray("req_x") << QByteArray(R"({"error":{}})");
    QTest::newRow("500 without request id") << 500 << QByteArray() << QByteArray("{}");
    QTest::newRow("599") << 599 << QByteArray("r") << QByteArray("[]");
    QTest::newRow("200 string body") << 200 << QByteArray("r") << QByteArray(R"("text")");
    QTest::newRow("pretty body kept")
        << 201 << QByteArray("r") << QByteArray("{\n  \"a\" : 1.50\n}");
}

void TestBatchResult::responseLine() {
    QFETCH(int, status);
    QFETCH(QByteArray, requestId);
    QFETCH(QByteArray, body);

    const HttpAnswer answer = answerForLine(makeResponseLine(status, requestId, body), BatchId);
    QCOMPARE(answer.status, status);
    QCOMPARE(answer.body, body); // byte for byte
    QCOMPARE(answer.contentType, QByteArray("application/json"));
    QCOMPARE(answer.synthesized, false);
    HeaderList expected;
    if (!requestId.isEmpty())
        expected.append({QByteArray("x-request-id"), requestId});
    expected.append({QByteArray("x-llm-proxy-batch-id"), BatchId});
    QCOMPARE(answer.headers, expected);
}

void TestBatchResult::invalidStatus_data() {
    QTest::addColumn<int>("status");
    QTest::newRow("missing") << 0;
    QTest::newRow("negative") << -1;
    QTest::newRow("99") << 99;
    QTest::newRow("100 is interim") << 100;
    QTest::newRow("101 is interim") << 101;
    QTest::newRow("199 is interim") << 199;
    QTest::newRow("600") << 600;
    QTest::newRow("1000") << 1000;
}

void TestBatchResult::invalidStatus() {
    QFETCH(int, status);
    const HttpAnswer answer =
        answerForLine(makeResponseLine(status, "req_q", R"({"ok":true})"), BatchId);
    QCOMPARE(answer.status, 502);
    QVERIFY(answer.synthesized);
    QCOMPARE(answer.contentType, QByteArray("application/json"));
    const HeaderList expected = {{QByteArray("x-request-id"), QByteArray("req_q")},
                                 {QByteArray("x-llm-proxy-batch-id"), BatchId}};
    QCOMPARE(answer.headers, expected);
    const std::optional<ParsedError> error = parseErrorBody(answer.body);
    QVERIFY2(error, answer.body.constData());
    QCOMPARE(error->type.toString(), QStringLiteral("server_error"));
    QCOMPARE(error->code.toString(), QStringLiteral("invalid_response_from_provider"));
    QVERIFY(error->param.isNull());
    const QString message = error->message.toString();
    QVERIFY2(message.startsWith(QStringLiteral("Invalid response from provider")),
             qPrintable(message));
    QVERIFY2(message.contains(QString::fromUtf8(BatchId)), qPrintable(message));
}

void TestBatchResult::errorLine_data() {
    QTest::addColumn<QByteArray>("code");
    QTest::addColumn<QString>("providerMessage");
    QTest::addColumn<int>("status");
    QTest::addColumn<QString>("message");

    const QString expiredText =
        QStringLiteral("This request could not be executed before the completion window expired.");
    QTest::newRow("batch_expired")
        << QByteArray("batch_expired") << expiredText << 504 << expiredText;
    QTest::newRow("batch_expired without message")
        << QByteArray("batch_expired") << QString() << 504
        << QStringLiteral("This request could not be executed before the batch's 24h completion "
                          "window expired.");
    QTest::newRow("request_timeout")
        << QByteArray("request_timeout") << QStringLiteral("The model took too long.") << 504
        << QStringLiteral("The model took too long.");
    QTest::newRow("request_timeout without message")
        << QByteArray("request_timeout") << QString() << 504
        << QStringLiteral("The request timed out while the batch was running.");
    QTest::newRow("batch_cancelled")
        << QByteArray("batch_cancelled") << QStringLiteral("Cancelled by the user.") << 503
        << QStringLiteral("Cancelled by the user.");
    QTest::newRow("batch_cancelled blank message")
        << QByteArray("batch_cancelled") << QStringLiteral("  ") << 503
        << QStringLiteral("The batch was cancelled before this request could be executed.");
    QTest::newRow("other code") << QByteArray("server_error")
                                << QStringLiteral("The server had an error.") << 502
                                << QStringLiteral("The server had an error.");
    QTest::newRow("other code without message")
        << QByteArray("weird_failure") << QString() << 502
        << QStringLiteral("The provider reported the error 'weird_failure' for this request "
                          "without a message.");
    QTest::newRow("no code") << QByteArray() << QStringLiteral("Something broke.") << 502
                             << QStringLiteral("Something broke.");
    QTest::newRow("nothing at all")
        << QByteArray() << QString() << 502
        << QStringLiteral("The provider reported an error for this request without a code or "
                          "message.");
    QTest::newRow("unicode message")
        << QByteArray("batch_expired") << QString::fromUtf8("caf\xc3\xa9 \"quoted\" \\") << 504
        << QString::fromUtf8("caf\xc3\xa9 \"quoted\" \\");
}

void TestBatchResult::errorLine() {
    QFETCH(QByteArray, code);
    QFETCH(QString, providerMessage);
    QFETCH(int, status);
    QFETCH(QString, message);

    const HttpAnswer answer = answerForLine(makeErrorLine(code, providerMessage), BatchId);
    QCOMPARE(answer.status, status);
    QVERIFY(answer.synthesized);
    QCOMPARE(answer.contentType, QByteArray("application/json"));
    QCOMPARE(answer.headers, batchHeaderOnly());
    const std::optional<ParsedError> error = parseErrorBody(answer.body);
    QVERIFY2(error, answer.body.constData());
    QCOMPARE(error->message.toString(), message);
    QCOMPARE(error->type.toString(), QStringLiteral("server_error"));
    QVERIFY(error->param.isNull());
    if (code.isEmpty())
        QVERIFY(error->code.isNull());
    else
        QCOMPARE(error->code.toString(), QString::fromUtf8(code));
}

void TestBatchResult::decodedLinesEndToEnd_data() {
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<int>("status");
    QTest::addColumn<bool>("synthesized");
    QTest::addColumn<QByteArray>("body"); // for provider answers
    QTest::newRow("success")
        << QByteArray(R"({"custom_id":"a","response":{"status_code":200,"request_id":"rq",)"
                      R"("body":{"seed":12345678901234567890}},"error":null})")
        << 200 << false << QByteArray(R"({"seed":12345678901234567890})");
    QTest::newRow("expired")
        << QByteArray(R"({"custom_id":"a","response":null,"error":{"code":"batch_expired",)"
                      R"("message":"late"}})")
        << 504 << true << QByteArray();
    QTest::newRow("response without status")
        << QByteArray(R"({"custom_id":"a","response":{"body":{}},"error":null})") << 502 << true
        << QByteArray();
}

void TestBatchResult::decodedLinesEndToEnd() {
    QFETCH(QByteArray, line);
    QFETCH(int, status);
    QFETCH(bool, synthesized);
    QFETCH(QByteArray, body);
    const std::optional<jsonl::OutputLine> decoded = jsonl::decodeOutputLine(line);
    QVERIFY(decoded);
    const HttpAnswer answer = answerForLine(*decoded, BatchId);
    QCOMPARE(answer.status, status);
    QCOMPARE(answer.synthesized, synthesized);
    if (!synthesized)
        QCOMPARE(answer.body, body);
    else
        QVERIFY(parseErrorBody(answer.body));
    QVERIFY(answer.headers.contains({QByteArray("x-llm-proxy-batch-id"), BatchId}));
}

void TestBatchResult::missingLine_data() {
    QTest::addColumn<QByteArray>("batchStatus");
    QTest::addColumn<QString>("message");
    QTest::newRow("completed")
        << QByteArray("completed")
        << QStringLiteral("Batch batch_69a1b2c3 ended with status 'completed' but its result "
                          "files contain no line for this request.");
    QTest::newRow("expired")
        << QByteArray("expired")
        << QStringLiteral("Batch batch_69a1b2c3 ended with status 'expired' but its result "
                          "files contain no line for this request.");
    QTest::newRow("unknown status")
        << QByteArray()
        << QStringLiteral("Batch batch_69a1b2c3 ended with status 'unknown' but its result "
                          "files contain no line for this request.");
}

void TestBatchResult::missingLine() {
    QFETCH(QByteArray, batchStatus);
    QFETCH(QString, message);
    const HttpAnswer answer = answerForMissingLine(BatchId, batchStatus);
    QCOMPARE(answer.status, 502);
    QVERIFY(answer.synthesized);
    QCOMPARE(answer.headers, batchHeaderOnly());
    const std::optional<ParsedError> error = parseErrorBody(answer.body);
    QVERIFY2(error, answer.body.constData());
    QCOMPARE(error->message.toString(), message);
    QCOMPARE(error->type.toString(), QStringLiteral("server_error"));
    QCOMPARE(error->code.toString(), QStringLiteral("missing_from_batch_results"));
    QVERIFY(error->param.isNull());
}

void TestBatchResult::failedBatch_data() {
    QTest::addColumn<QByteArray>("batchStatus");
    QTest::addColumn<QStringList>("providerMessages");
    QTest::addColumn<QString>("message");
    QTest::newRow("one message") << QByteArray("failed")
                                 << QStringList{QStringLiteral("This line is not parseable.")}
                                 << QStringLiteral(
                                        "Batch batch_69a1b2c3 failed: This line is not parseable.");
    QTest::newRow("several messages")
        << QByteArray("failed")
        << QStringList{QStringLiteral("Model mismatch."), QStringLiteral("Duplicate custom_id.")}
        << QStringLiteral("Batch batch_69a1b2c3 failed: Model mismatch.; Duplicate custom_id.");
    QTest::newRow("no messages")
        << QByteArray("failed") << QStringList()
        << QStringLiteral("Batch batch_69a1b2c3 failed: the provider gave no reason.");
    QTest::newRow("blank messages dropped")
        << QByteArray("failed")
        << QStringList{QString(), QStringLiteral(" a "), QStringLiteral("  "), QStringLiteral("b")}
        << QStringLiteral("Batch batch_69a1b2c3 failed: a; b");
    QTest::newRow("only blank messages")
        << QByteArray("failed") << QStringList{QStringLiteral(" ")}
        << QStringLiteral("Batch batch_69a1b2c3 failed: the provider gave no reason.");
    QTest::newRow("expired batch")
        << QByteArray("expired") << QStringList()
        << QStringLiteral(
               "Batch batch_69a1b2c3 failed (status 'expired'): the provider gave no reason.");
    QTest::newRow("cancelled batch")
        << QByteArray("cancelled") << QStringList{QStringLiteral("Cancelled.")}
        << QStringLiteral("Batch batch_69a1b2c3 failed (status 'cancelled'): Cancelled.");
    QTest::newRow("no status") << QByteArray() << QStringList{QStringLiteral("x")}
                               << QStringLiteral("Batch batch_69a1b2c3 failed: x");
}

void TestBatchResult::failedBatch() {
    QFETCH(QByteArray, batchStatus);
    QFETCH(QStringList, providerMessages);
    QFETCH(QString, message);
    const HttpAnswer answer = answerForFailedBatch(BatchId, batchStatus, providerMessages);
    QCOMPARE(answer.status, 502);
    QVERIFY(answer.synthesized);
    QCOMPARE(answer.contentType, QByteArray("application/json"));
    QCOMPARE(answer.headers, batchHeaderOnly());
    const std::optional<ParsedError> error = parseErrorBody(answer.body);
    QVERIFY2(error, answer.body.constData());
    QCOMPARE(error->message.toString(), message);
    QCOMPARE(error->type.toString(), QStringLiteral("server_error"));
    QCOMPARE(error->code.toString(), QStringLiteral("batch_failed"));
    QVERIFY(error->param.isNull());
}

void TestBatchResult::providerBytesNeverBecomeHeaders_data() {
    QTest::addColumn<QByteArray>("requestId");
    QTest::newRow("CR LF") << QByteArray("req\r\nX-Evil: 1");
    QTest::newRow("LF") << QByteArray("req\nX-Evil: 1");
    QTest::newRow("CR") << QByteArray("req\rX-Evil: 1");
    QTest::newRow("NUL") << QByteArray("req\0X-Evil: 1", 13);
}

void TestBatchResult::providerBytesNeverBecomeHeaders() {
    // As the provider's JSON would carry it: escaped, then decoded by the line decoder.
    QFETCH(QByteArray, requestId);
    const QByteArray lineText =
        R"({"custom_id":"r-1","response":{"status_code":200,"request_id":)" +
        json::quoted(requestId) + R"(,"body":{}},"error":null})";
    const auto line = jsonl::decodeOutputLine(lineText);
    QVERIFY(line);
    QCOMPARE(line->requestId, requestId);
    for (const HttpAnswer &answer :
         {answerForLine(*line, BatchId), answerForLine(*line, "batch\r\nX-Evil: 2"),
          answerForMissingLine("batch\nX-Evil: 2", "completed"),
          answerForTooLongLine("batch\r\nX-Evil: 2", 10, 5)}) {
        for (const auto &[name, value] : answer.headers) {
            QVERIFY2(isSafeHeader(name, value), value.constData());
            QVERIFY(!value.contains("X-Evil"));
        }
    }
    const HttpAnswer answer = answerForLine(*line, BatchId);
    QCOMPARE(answer.status, 200);
    QCOMPARE(answer.headers, (HeaderList{{QByteArray("x-llm-proxy-batch-id"), BatchId}}));
}

void TestBatchResult::tooLongLine() {
    const HttpAnswer answer = answerForTooLongLine(BatchId, 70'000'000, 67'108'864);
    QCOMPARE(answer.status, 502);
    QVERIFY(answer.synthesized);
    const QJsonObject error = QJsonDocument::fromJson(answer.body).object()[u"error"].toObject();
    QCOMPARE(error[u"code"].toString(), QStringLiteral("result_line_too_large"));
    QCOMPARE(error[u"type"].toString(), QStringLiteral("server_error"));
    const QString message = error[u"message"].toString();
    QVERIFY2(message.contains(QStringLiteral("70000000")) &&
                 message.contains(QStringLiteral("67108864")) &&
                 message.contains(QString::fromLatin1(BatchId)),
             qPrintable(message));
    QCOMPARE(answer.headers, (HeaderList{{QByteArray("x-llm-proxy-batch-id"), BatchId}}));
}

using Count = std::optional<qint64>;
Q_DECLARE_METATYPE(std::optional<qint64>)

void TestBatchResult::usageAsReported_data() {
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<bool>("reported");
    QTest::addColumn<Count>("input");
    QTest::addColumn<Count>("cachedInput");
    QTest::addColumn<Count>("output");
    QTest::addColumn<Count>("reasoning");
    const Count none;
    QTest::newRow("chat, full details")
        << QByteArray(R"({"id":"c","choices":[],"usage":{"prompt_tokens":120,)"
                      R"("completion_tokens":40,"total_tokens":160,)"
                      R"("prompt_tokens_details":{"cached_tokens":100},)"
                      R"("completion_tokens_details":{"reasoning_tokens":25}}})")
        << true << Count(120) << Count(100) << Count(40) << Count(25);
    QTest::newRow("chat, no details")
        << QByteArray(R"({"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}})")
        << true << Count(7) << none << Count(3) << none;
    QTest::newRow("responses")
        << QByteArray(R"({"object":"response","usage":{"input_tokens":50,)"
                      R"("input_tokens_details":{"cached_tokens":0},"output_tokens":9,)"
                      R"("output_tokens_details":{"reasoning_tokens":4},"total_tokens":59}})")
        << true << Count(50) << Count(0) << Count(9) << Count(4);
    QTest::newRow("embeddings: input only")
        << QByteArray(R"({"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})")
        << true << Count(8) << none << none << none;
    QTest::newRow("completions") << QByteArray(
                                        R"({"object":"text_completion","usage":{"prompt_tokens":5,)"
                                        R"("completion_tokens":16,"total_tokens":21}})")
                                 << true << Count(5) << none << Count(16) << none;
    QTest::newRow("no usage (moderations)")
        << QByteArray(R"({"id":"modr","results":[]})") << false << none << none << none << none;
    QTest::newRow("usage null") << QByteArray(R"({"usage":null})") << false << none << none << none
                                << none;
    QTest::newRow("counts that are not counts")
        << QByteArray(R"({"usage":{"prompt_tokens":"12","completion_tokens":-1}})") << false << none
        << none << none << none;
    QTest::newRow("not JSON") << QByteArray("<html>") << false << none << none << none << none;
}

void TestBatchResult::usageAsReported() {
    QFETCH(QByteArray, body);
    QFETCH(bool, reported);
    const Usage usage = usageFromAnswer(body);
    QCOMPARE(usage.reported, reported);
    if (!reported)
        return;
    QFETCH(Count, input);
    QFETCH(Count, cachedInput);
    QFETCH(Count, output);
    QFETCH(Count, reasoning);
    QCOMPARE(usage.input, input);
    QCOMPARE(usage.cachedInput, cachedInput);
    QCOMPARE(usage.output, output);
    QCOMPARE(usage.reasoning, reasoning);
}

void TestBatchResult::outcomeOfAnOpenAiLine_data() {
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<int>("outcome");
    QTest::addColumn<int>("httpStatus");
    QTest::addColumn<bool>("hasAnswer");
    QTest::addColumn<bool>("hasUsage");
    QTest::newRow("2xx answer")
        << QByteArray(
               R"({"id":"br","custom_id":"lp_1","response":{"status_code":200,"request_id":"req_1",)"
               R"("body":{"usage":{"prompt_tokens":1,"completion_tokens":2}}},"error":null})")
        << int(ResultOutcome::Succeeded) << 200 << true << true;
    QTest::newRow("4xx answer")
        << QByteArray(
               R"({"custom_id":"lp_1","response":{"status_code":400,"request_id":"req_2",)"
               R"("body":{"error":{"message":"too long","type":"invalid_request_error"}}},"error":null})")
        << int(ResultOutcome::Errored) << 400 << true << false;
    QTest::newRow("expired")
        << QByteArray(
               R"({"custom_id":"lp_1","response":null,"error":{"code":"batch_expired","message":"x"}})")
        << int(ResultOutcome::Expired) << 0 << false << false;
    QTest::newRow("cancelled")
        << QByteArray(
               R"({"custom_id":"lp_1","response":null,"error":{"code":"batch_cancelled","message":"x"}})")
        << int(ResultOutcome::Cancelled) << 0 << false << false;
    QTest::newRow("timed out")
        << QByteArray(
               R"({"custom_id":"lp_1","response":null,"error":{"code":"request_timeout","message":"x"}})")
        << int(ResultOutcome::Errored) << 0 << false << false;
}

void TestBatchResult::outcomeOfAnOpenAiLine() {
    QFETCH(QByteArray, line);
    QFETCH(int, outcome);
    QFETCH(int, httpStatus);
    QFETCH(bool, hasAnswer);
    QFETCH(bool, hasUsage);
    const std::optional<jsonl::OutputLine> decoded = jsonl::decodeOutputLine(line);
    QVERIFY(decoded);
    const ResultLine result = fromOpenAiOutputLine(*decoded);
    QCOMPARE(result.customId, QByteArray("lp_1"));
    QCOMPARE(int(result.outcome), outcome);
    QCOMPARE(result.httpStatus, httpStatus);
    QCOMPARE(result.hasAnswer, hasAnswer);
    QCOMPARE(result.usage.reported, hasUsage);
    if (hasAnswer)
        QCOMPARE(result.body, decoded->body); // byte for byte
}

void TestBatchResult::resultsWithoutAnAnswerAreSynthesizedFromTheirOutcome_data() {
    QTest::addColumn<int>("outcome");
    QTest::addColumn<int>("status");
    // A provider without OpenAI's error codes (Anthropic's "expired" / "canceled" results)
    // says only the outcome: the client's answer still fits it.
    QTest::newRow("expired") << int(ResultOutcome::Expired) << 504;
    QTest::newRow("cancelled") << int(ResultOutcome::Cancelled) << 503;
    QTest::newRow("errored") << int(ResultOutcome::Errored) << 502;
}

void TestBatchResult::resultsWithoutAnAnswerAreSynthesizedFromTheirOutcome() {
    QFETCH(int, outcome);
    QFETCH(int, status);
    ResultLine line;
    line.customId = "lp_1";
    line.outcome = ResultOutcome(outcome);
    const HttpAnswer answer = answerForResult(line, BatchId);
    QCOMPARE(answer.status, status);
    QVERIFY(answer.synthesized);
    QVERIFY(
        QJsonDocument::fromJson(answer.body).object().value(QStringLiteral("error")).isObject());
}

QTEST_GUILESS_MAIN(TestBatchResult)
#include "tst_batchresult.moc"
