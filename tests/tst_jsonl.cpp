// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/json.h"
#include "api/jsonl.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

using namespace llmproxy;

class TestJsonl final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TestJsonl)

public:
    TestJsonl() = default;

private slots:
    void encodeInputLine_data();
    void encodeInputLine();
    void encodeInputLineExact();
    void decodeOutputLine_data();
    void decodeOutputLine();
    void decodeInvalidLine_data();
    void decodeInvalidLine();
    void customIdFromLineStart_data();
    void customIdFromLineStart();
    void splitEveryPosition_data();
    void splitEveryPosition();
    void splitThreeChunks();
    void splitByteByByte();
    void splitterPendingBytes();
    void splitterFinishWithoutPartial();
    void streamRoundTrip();
};

void TestJsonl::encodeInputLine_data() {
    QTest::addColumn<QByteArray>("customId");
    QTest::addColumn<QByteArray>("url");
    QTest::addColumn<QByteArray>("body");
    QTest::newRow("chat") << QByteArray("req-1") << QByteArray("/v1/chat/completions")
                          << QByteArray(R"({"model":"gpt-4o-mini","messages":[]})");
    QTest::newRow("big seed")
        << QByteArray("req-2") << QByteArray("/v1/chat/completions")
        << QByteArray(R"({"model":"gpt-4o","seed":12345678901234567890,"temperature":0.1})");
    QTest::newRow("pretty CRLF body")
        << QByteArray("req-3") << QByteArray("/v1/embeddings")
        << QByteArray("{\r\n  \"model\": \"text-embedding-3-small\",\r\n  \"input\": [\r\n"
                      "    \"a\\nb\",\r\n    \"c\"\r\n  ]\r\n}\r\n");
    QTest::newRow("id needing escapes")
        << QByteArray("id \"quoted\" \\ back\tslash") << QByteArray("/v1/chat/completions")
        << QByteArray(R"({"a":1})");
    QTest::newRow("unicode body")
        << QByteArray("req-\xc3\xa9") << QByteArray("/v1/chat/completions")
        << QByteArray("{\"content\":\"\xf0\x9f\x98\x80 \\ud83d\\ude00 \\u0000\",\"n\":-1.5e-7}");
    QTest::newRow("whitespace around body")
        << QByteArray("req-4") << QByteArray("/v1/chat/completions")
        << QByteArray("\n\t {\"x\":[1, 2.50, 3e0]} \n");
}

void TestJsonl::encodeInputLine() {
    QFETCH(QByteArray, customId);
    QFETCH(QByteArray, url);
    QFETCH(QByteArray, body);

    const QByteArray line = jsonl::encodeInputLine(customId, url, body);
    QVERIFY(line.endsWith('\n'));
    QCOMPARE(line.count('\n'), 1);
    QVERIFY(!line.contains('\r'));
    const QByteArray withoutNewline = line.chopped(1);
    json::ScanError error;
    QVERIFY2(json::isValid(withoutNewline, &error), qPrintable(error.message));

    // Our own scanner: the body span is the body, byte for byte apart from CR/LF.
    const auto members = json::objectMembers(withoutNewline);
    QVERIFY(members);
    QCOMPARE(members->size(), 4);
    QCOMPARE(members->at(0).key, QByteArray("custom_id"));
    QCOMPARE(members->at(1).key, QByteArray("method"));
    QCOMPARE(members->at(2).key, QByteArray("url"));
    QCOMPARE(members->at(3).key, QByteArray("body"));
    QCOMPARE(json::stringValue(members->at(0).value), std::optional<QByteArray>(customId));
    QCOMPARE(members->at(1).value.toByteArray(), QByteArray(R"("POST")"));
    QCOMPARE(json::stringValue(members->at(2).value), std::optional<QByteArray>(url));
    QCOMPARE(members->at(3).value.toByteArray(), json::singleLine(body).trimmed());

    // Qt's parser sees the right fields, and the same body.
    QJsonParseError parseError;
    const QJsonObject object = QJsonDocument::fromJson(line, &parseError).object();
    QCOMPARE(parseError.error, QJsonParseError::NoError);
    QCOMPARE(object.value(QStringLiteral("custom_id")).toString(), QString::fromUtf8(customId));
    QCOMPARE(object.value(QStringLiteral("method")).toString(), QStringLiteral("POST"));
    QCOMPARE(object.value(QStringLiteral("url")).toString(), QString::fromUtf8(url));
    QCOMPARE(object.value(QStringLiteral("body")).toObject(),
             QJsonDocument::fromJson(body).object());
}

void TestJsonl::encodeInputLineExact() {
    const QByteArray body = "{\n  \"model\": \"gpt-4o\",\n  \"seed\": 12345678901234567890\n}";
    QCOMPARE(jsonl::encodeInputLine("req-7", "/v1/chat/completions", body),
             QByteArray(R"({"custom_id":"req-7","method":"POST","url":"/v1/chat/completions",)"
                        R"("body":{   "model": "gpt-4o",   "seed": 12345678901234567890 }})"
                        "\n"));
}

void TestJsonl::decodeOutputLine_data() {
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<QByteArray>("customId");
    QTest::addColumn<bool>("hasResponse");
    QTest::addColumn<int>("statusCode");
    QTest::addColumn<QByteArray>("requestId");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QByteArray>("errorCode");
    QTest::addColumn<QString>("errorMessage");

    const QByteArray completion =
        R"({"id":"chatcmpl-1","object":"chat.completion","system_fingerprint":"fp",)"
        R"("seed":12345678901234567890,"choices":[{"index":0,"message":)"
        R"({"role":"assistant","content":"Hi \"you\" \u00e9"}}],"usage":{"total_tokens":9}})";
    QTest::newRow("success") << QByteArray(R"({"id":"batch_req_1","custom_id":"req-1",)"
                                           R"("response":{"status_code":200,"request_id":)"
                                           R"("req_abc","body":)" +
                                           completion + R"(},"error":null})")
                             << QByteArray("req-1") << true << 200 << QByteArray("req_abc")
                             << completion << QByteArray() << QString();

    const QByteArray badRequest = R"({"error":{"message":"This model's maximum context length )"
                                  R"(is 8192 tokens.","type":"invalid_request_error",)"
                                  R"("param":"messages","code":"context_length_exceeded"}})";
    QTest::newRow("HTTP error in response")
        << QByteArray(R"({"id":"batch_req_2","custom_id":"req-2","response":{"status_code":400,)"
                      R"("request_id":"req_def","body":)" +
                      badRequest + R"(},"error":null})")
        << QByteArray("req-2") << true << 400 << QByteArray("req_def") << badRequest << QByteArray()
        << QString();

    QTest::newRow("batch_expired")
        << QByteArray(R"({"id":"batch_req_3","custom_id":"req-3","response":null,"error":)"
                      R"({"code":"batch_expired","message":"This request could not be executed )"
                      R"(before the completion window expired."}})")
        << QByteArray("req-3") << false << 0 << QByteArray() << QByteArray()
        << QByteArray("batch_expired")
        << QStringLiteral(
               "This request could not be executed before the completion window expired.");

    QTest::newRow("error without response member")
        << QByteArray(R"({"custom_id":"req-4","error":{"code":"batch_cancelled",)"
                      R"("message":"caf\u00e9 \ud83d\ude00"}})")
        << QByteArray("req-4") << false << 0 << QByteArray() << QByteArray()
        << QByteArray("batch_cancelled") << QString::fromUtf8("caf\xc3\xa9 \xf0\x9f\x98\x80");

    QTest::newRow("error with null code")
        << QByteArray(R"({"custom_id":"req-5","response":null,"error":{"code":null,)"
                      R"("message":"something"}})")
        << QByteArray("req-5") << false << 0 << QByteArray() << QByteArray() << QByteArray()
        << QStringLiteral("something");

    QTest::newRow("body is a string")
        << QByteArray(R"({"custom_id":"req-6","response":{"status_code":200,"request_id":"r",)"
                      R"("body":"plain \"text\""},"error":null})")
        << QByteArray("req-6") << true << 200 << QByteArray("r")
        << QByteArray(R"("plain \"text\"")") << QByteArray() << QString();

    const QByteArray spaced = "{ \"a\" :\t[ 1 ,2 ] ,\"b\": 1.50E+1 }";
    QTest::newRow("body whitespace kept")
        << QByteArray(R"({"custom_id":"req-7","response":{"body": )" + spaced +
                      R"( ,"status_code":201 }})")
        << QByteArray("req-7") << true << 201 << QByteArray() << spaced << QByteArray()
        << QString();

    QTest::newRow("null request_id")
        << QByteArray(R"({"custom_id":"req-8","response":{"status_code":500,"request_id":null,)"
                      R"("body":{}}})")
        << QByteArray("req-8") << true << 500 << QByteArray() << QByteArray("{}") << QByteArray()
        << QString();

    QTest::newRow("missing status_code")
        << QByteArray(R"({"custom_id":"req-9","response":{"body":{}},"error":null})")
        << QByteArray("req-9") << true << 0 << QByteArray() << QByteArray("{}") << QByteArray()
        << QString();

    QTest::newRow("status_code as string")
        << QByteArray(R"({"custom_id":"req-10","response":{"status_code":"200","body":{}}})")
        << QByteArray("req-10") << true << 0 << QByteArray() << QByteArray("{}") << QByteArray()
        << QString();

    QTest::newRow("status_code fraction")
        << QByteArray(R"({"custom_id":"req-11","response":{"status_code":200.5,"body":[]}})")
        << QByteArray("req-11") << true << 0 << QByteArray() << QByteArray("[]") << QByteArray()
        << QString();

    QTest::newRow("status_code huge")
        << QByteArray(R"({"custom_id":"r","response":{"status_code":99999999999,"body":1}})")
        << QByteArray("r") << true << 0 << QByteArray() << QByteArray("1") << QByteArray()
        << QString();

    QTest::newRow("both response and error")
        << QByteArray(R"({"custom_id":"req-12","response":{"status_code":200,"body":{"x":1}},)"
                      R"("error":{"code":"odd","message":"both"}})")
        << QByteArray("req-12") << true << 200 << QByteArray() << QByteArray(R"({"x":1})")
        << QByteArray("odd") << QStringLiteral("both");

    QTest::newRow("escaped custom_id")
        << QByteArray(R"({"custom_id":"req-\u0031\"3\"","response":{"status_code":200,)"
                      R"("body":{}}})")
        << QByteArray("req-1\"3\"") << true << 200 << QByteArray() << QByteArray("{}")
        << QByteArray() << QString();

    const QByteArray oddBody = "{\"text\":\"\\ud83d broken \xff\"}";
    QTest::newRow("unpaired surrogate and bad UTF-8 relayed")
        << QByteArray(R"({"custom_id":"req-13","response":{"status_code":200,"body":)" + oddBody +
                      "}}")
        << QByteArray("req-13") << true << 200 << QByteArray() << oddBody << QByteArray()
        << QString();

    QTest::newRow("trailing CR and whitespace")
        << QByteArray("{\"custom_id\":\"req-14\",\"response\":{\"status_code\":204,\"body\":null}}"
                      " \r")
        << QByteArray("req-14") << true << 204 << QByteArray() << QByteArray("null") << QByteArray()
        << QString();
}

void TestJsonl::decodeOutputLine() {
    QFETCH(QByteArray, line);
    QFETCH(QByteArray, customId);
    QFETCH(bool, hasResponse);
    QFETCH(int, statusCode);
    QFETCH(QByteArray, requestId);
    QFETCH(QByteArray, body);
    QFETCH(QByteArray, errorCode);
    QFETCH(QString, errorMessage);

    QString error;
    const std::optional<jsonl::OutputLine> decoded = jsonl::decodeOutputLine(line, &error);
    QVERIFY2(decoded, qPrintable(error));
    QCOMPARE(decoded->customId, customId);
    QCOMPARE(decoded->hasResponse, hasResponse);
    QCOMPARE(decoded->statusCode, statusCode);
    QCOMPARE(decoded->requestId, requestId);
    QCOMPARE(decoded->body, body);
    QCOMPARE(decoded->errorCode, errorCode);
    QCOMPARE(decoded->errorMessage, errorMessage);
}

void TestJsonl::decodeInvalidLine_data() {
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<QString>("errorPart");
    QTest::newRow("empty") << QByteArray() << QStringLiteral("invalid JSON line");
    QTest::newRow("not JSON") << QByteArray("hello") << QStringLiteral("invalid JSON line");
    QTest::newRow("array") << QByteArray("[1]") << QStringLiteral("expected a JSON object");
    QTest::newRow("truncated")
        << QByteArray(R"({"custom_id":"req-1","response":{"status_code":200,"body":{"a")")
        << QStringLiteral("unexpected end of input");
    QTest::newRow("raw newline in string")
        << QByteArray("{\"custom_id\":\"a\nb\",\"error\":{}}") << QStringLiteral("control");
    QTest::newRow("no custom_id") << QByteArray(R"({"response":{"status_code":200,"body":{}}})")
                                  << QStringLiteral("custom_id");
    QTest::newRow("numeric custom_id")
        << QByteArray(R"({"custom_id":1,"response":{"status_code":200,"body":{}}})")
        << QStringLiteral("custom_id");
    QTest::newRow("neither") << QByteArray(R"({"custom_id":"req-1"})")
                             << QStringLiteral("neither a response nor an error");
    QTest::newRow("both null") << QByteArray(
                                      R"({"custom_id":"req-1","response":null,"error":null})")
                               << QStringLiteral("neither a response nor an error");
    QTest::newRow("response is a string")
        << QByteArray(R"({"custom_id":"req-1","response":"ok","error":"bad"})")
        << QStringLiteral("neither a response nor an error");
}

void TestJsonl::decodeInvalidLine() {
    QFETCH(QByteArray, line);
    QFETCH(QString, errorPart);
    QString error;
    QVERIFY(!jsonl::decodeOutputLine(line, &error));
    QVERIFY2(error.contains(errorPart), qPrintable(error));
    QVERIFY(!jsonl::decodeOutputLine(line)); // no error pointer: no crash
}

void TestJsonl::customIdFromLineStart_data() {
    QTest::addColumn<QByteArray>("start");
    QTest::addColumn<QByteArray>("customId"); // null: not found
    const QByteArray line = R"({"id": "batch_req_1", "custom_id": "r-2a", "response": )"
                            R"({"status_code": 200, "request_id": "req_1", "body": {"x": "yyyy)";
    QTest::newRow("OpenAI's order, cut in the body") << line << QByteArray("r-2a");
    QTest::newRow("cut in the custom_id") << line.left(line.indexOf("2a")) << QByteArray();
    QTest::newRow("custom_id after the huge response")
        << QByteArray(R"({"id":"x","response":{"status_code":200,"body":{"a":"bbbb)")
        << QByteArray();
    QTest::newRow("escaped custom_id")
        << QByteArray(R"({"custom_id":"r-\u0031","response":{)") << QByteArray("r-1");
    QTest::newRow("not a string") << QByteArray(R"({"custom_id":12,"response":{)") << QByteArray();
    QTest::newRow("garbage") << QByteArray("\xff\xfe not json") << QByteArray();
}

void TestJsonl::customIdFromLineStart() {
    QFETCH(QByteArray, start);
    QFETCH(QByteArray, customId);
    const std::optional<QByteArray> found = jsonl::customIdFromLineStart(start);
    QCOMPARE(found.has_value(), !customId.isNull());
    if (found)
        QCOMPARE(*found, customId);
}

namespace {

// A stream with LF and CRLF endings, empty and blank lines (a line of CRs is blank too), a CR
// inside a line (kept), and a last line without newline.
const QByteArray SampleStream = "{\"a\":1}\r\n"
                                "\r\n"
                                "line two\n"
                                "\n"
                                "  \n"
                                "x\r\n"
                                "\r\r\n"
                                "third\rstill third\n"
                                "last";
const QList<QByteArray> SampleLines = {"{\"a\":1}", "line two", "x", "third\rstill third", "last"};

QList<QByteArray> splitInChunks(const QByteArray &stream, const QList<qsizetype> &cuts) {
    QList<QByteArray> lines;
    jsonl::LineSplitter splitter(
        [&lines](QByteArrayView line) { lines.append(line.toByteArray()); });
    qsizetype start = 0;
    for (const qsizetype cut : cuts) {
        splitter.feed(QByteArrayView(stream).sliced(start, cut - start));
        start = cut;
    }
    splitter.feed(QByteArrayView(stream).sliced(start));
    splitter.finish();
    return lines;
}

} // namespace

void TestJsonl::splitEveryPosition_data() {
    QTest::addColumn<qsizetype>("cut");
    for (qsizetype cut = 0; cut <= SampleStream.size(); ++cut)
        QTest::addRow("cut at %lld", static_cast<long long>(cut)) << cut;
}

void TestJsonl::splitEveryPosition() {
    QFETCH(qsizetype, cut);
    QCOMPARE(splitInChunks(SampleStream, {cut}), SampleLines);
}

void TestJsonl::splitThreeChunks() {
    for (qsizetype first = 0; first <= SampleStream.size(); ++first) {
        for (qsizetype second = first; second <= SampleStream.size(); ++second) {
            const QList<QByteArray> lines = splitInChunks(SampleStream, {first, second});
            if (lines != SampleLines) {
                QFAIL(qPrintable(QStringLiteral("cuts at %1 and %2 gave a different split")
                                     .arg(first)
                                     .arg(second)));
            }
        }
    }
}

void TestJsonl::splitByteByByte() {
    QList<qsizetype> cuts;
    for (qsizetype i = 1; i < SampleStream.size(); ++i)
        cuts.append(i);
    QCOMPARE(splitInChunks(SampleStream, cuts), SampleLines);

    // A final newline (LF or CRLF) leaves nothing for finish().
    QCOMPARE(splitInChunks("a\nb\n", {}), QList<QByteArray>({"a", "b"}));
    QCOMPARE(splitInChunks("a\r\nb\r\n", {4}), QList<QByteArray>({"a", "b"}));
    // A stream ending in a lone CR: the CR is stripped from the last line.
    QCOMPARE(splitInChunks("a\nb\r", {3}), QList<QByteArray>({"a", "b"}));
    QCOMPARE(splitInChunks("", {}), QList<QByteArray>());
    QCOMPARE(splitInChunks("\n\r\n\n", {1, 2}), QList<QByteArray>());
}

void TestJsonl::splitterPendingBytes() {
    QList<QByteArray> lines;
    jsonl::LineSplitter splitter(
        [&lines](QByteArrayView line) { lines.append(line.toByteArray()); });
    splitter.feed("abc");
    QCOMPARE(splitter.pendingBytes(), qsizetype(3));
    QVERIFY(lines.isEmpty());
    splitter.feed("de\r");
    QCOMPARE(splitter.pendingBytes(), qsizetype(6));
    splitter.feed("\nfg\nh");
    QCOMPARE(lines, QList<QByteArray>({"abcde", "fg"}));
    QCOMPARE(splitter.pendingBytes(), qsizetype(1)); // only the partial line is held
    splitter.feed("\n");
    QCOMPARE(splitter.pendingBytes(), qsizetype(0));
    QCOMPARE(lines, QList<QByteArray>({"abcde", "fg", "h"}));
}

void TestJsonl::splitterFinishWithoutPartial() {
    int calls = 0;
    jsonl::LineSplitter splitter([&calls](QByteArrayView) { ++calls; });
    splitter.finish();
    splitter.feed("one\n");
    splitter.finish();
    splitter.finish();
    QCOMPARE(calls, 1);
}

void TestJsonl::streamRoundTrip() {
    // An output file as the provider writes it, fed in odd-sized chunks, decoded line by line.
    QByteArray file;
    for (int i = 0; i < 200; ++i) {
        const QByteArray id = "req-" + QByteArray::number(i);
        if (i % 7 == 3) {
            file += R"({"custom_id":")" + id +
                    R"(","response":null,"error":{"code":"batch_expired","message":"late"}})";
        } else {
            file += R"({"id":"batch_req_)" + QByteArray::number(i) + R"(","custom_id":")" + id +
                    R"(","response":{"status_code":200,"request_id":"rq)" + QByteArray::number(i) +
                    R"(","body":{"seed":1234567890123456789)" + QByteArray::number(i % 10) +
                    R"(,"n":)" + QByteArray::number(i) + R"(}},"error":null})";
        }
        file += (i % 2) ? "\r\n" : "\n";
    }

    int decoded = 0;
    jsonl::LineSplitter splitter([&decoded](QByteArrayView line) {
        QString error;
        const auto output = jsonl::decodeOutputLine(line, &error);
        QVERIFY2(output, qPrintable(error));
        const QByteArray expectedId = "req-" + QByteArray::number(decoded);
        QCOMPARE(output->customId, expectedId);
        if (decoded % 7 == 3) {
            QVERIFY(!output->hasResponse);
            QCOMPARE(output->errorCode, QByteArray("batch_expired"));
        } else {
            QCOMPARE(output->statusCode, 200);
            const QByteArray body = R"({"seed":1234567890123456789)" +
                                    QByteArray::number(decoded % 10) + R"(,"n":)" +
                                    QByteArray::number(decoded) + "}";
            QCOMPARE(output->body, body);
        }
        ++decoded;
    });
    qsizetype position = 0;
    qsizetype chunk = 1;
    while (position < file.size()) {
        const qsizetype size = qMin(chunk, file.size() - position);
        splitter.feed(QByteArrayView(file).sliced(position, size));
        position += size;
        chunk = chunk * 3 % 997 + 1;
    }
    splitter.finish();
    QCOMPARE(decoded, 200);
}

QTEST_GUILESS_MAIN(TestJsonl)
#include "tst_jsonl.moc"
