// SPDX-License-Identifier: GPL-3.0-or-later
// Raw HTTP/1.1 serialisation (status line, framing, chunks), the hop-by-hop list, and the
// relay's upstream URL. Whatever the writer produces is parsed back here as a client would.

#include "http/httpwriter.h"
#include "http/relay.h"

#include <QDateTime>
#include <QLocale>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QTest>
#include <QUrl>

#include <optional>

using namespace llmproxy;

Q_DECLARE_METATYPE(llmproxy::HttpAnswer)

namespace {

struct ParsedResponse {
    int status = 0;
    QByteArray reason;
    HeaderList headers;
    QByteArray rest; // everything after the empty line that ends the head

    QList<QByteArray> values(QByteArrayView name) const {
        QList<QByteArray> out;
        for (const auto &[n, v] : headers) {
            if (n.compare(name, Qt::CaseInsensitive) == 0)
                out.append(v);
        }
        return out;
    }
};

// A strict reading of a response head: CRLF line endings, "name: value" fields.
std::optional<ParsedResponse> parseResponse(const QByteArray &bytes) {
    const qsizetype headEnd = bytes.indexOf("\r\n\r\n");
    if (headEnd < 0)
        return std::nullopt;
    const QList<QByteArray> lines = bytes.left(headEnd).split('\n');
    ParsedResponse out;
    for (qsizetype i = 0; i < lines.size(); ++i) {
        QByteArray line = lines.at(i);
        if (!line.endsWith('\r') && i + 1 < lines.size())
            return std::nullopt; // a bare LF
        if (line.endsWith('\r'))
            line.chop(1);
        if (i == 0) {
            const QList<QByteArray> parts = line.split(' ');
            if (parts.size() < 3 || parts.at(0) != "HTTP/1.1" || parts.at(1).size() != 3)
                return std::nullopt;
            bool ok = false;
            out.status = parts.at(1).toInt(&ok);
            if (!ok)
                return std::nullopt;
            out.reason = line.mid(parts.at(0).size() + parts.at(1).size() + 2);
            continue;
        }
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0 || line.indexOf("\r") >= 0)
            return std::nullopt;
        out.headers.emplaceBack(line.left(colon), line.mid(colon + 1).trimmed());
    }
    out.rest = bytes.mid(headEnd + 4);
    return out;
}

// Decodes a chunked body that must be complete and end exactly at the end of `bytes`.
std::optional<QByteArray> decodeChunkedBody(QByteArrayView bytes) {
    QByteArray out;
    while (true) {
        const qsizetype lineEnd = bytes.indexOf("\r\n");
        if (lineEnd <= 0)
            return std::nullopt;
        bool ok = false;
        const qint64 size = bytes.first(lineEnd).toByteArray().toLongLong(&ok, 16);
        if (!ok || size < 0)
            return std::nullopt;
        bytes = bytes.sliced(lineEnd + 2);
        if (size == 0)
            return bytes == "\r\n" ? std::optional<QByteArray>(out) : std::nullopt;
        if (bytes.size() < size + 2 || bytes.sliced(size, 2) != "\r\n")
            return std::nullopt;
        out += bytes.first(size);
        bytes = bytes.sliced(size + 2);
    }
}

QByteArray decodeChunked(QByteArrayView bytes) {
    return decodeChunkedBody(bytes).value_or(QByteArrayLiteral("<malformed chunked body>"));
}

const QRegularExpression ImfFixdate(QStringLiteral(
    "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
    "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] "
    "GMT$"));

// `bytes` without its one Date header line (which must come right after the framing headers
// and be an IMF-fixdate); a marker when there is none, or more than one.
QByteArray withoutDate(const QByteArray &bytes) {
    const qsizetype headEnd = bytes.indexOf("\r\n\r\n");
    const qsizetype at = bytes.indexOf("\r\nDate: ");
    const qsizetype again = at < 0 ? -1 : bytes.indexOf("\r\nDate: ", at + 1);
    if (at < 0 || at > headEnd || (again >= 0 && again < headEnd))
        return QByteArrayLiteral("<not exactly one Date header>");
    const qsizetype valueStart = at + 8;
    const qsizetype lineEnd = bytes.indexOf("\r\n", valueStart);
    const QByteArray value = bytes.sliced(valueStart, lineEnd - valueStart);
    if (!ImfFixdate.match(QString::fromLatin1(value)).hasMatch())
        return QByteArrayLiteral("<Date is not an IMF-fixdate: ") + value + '>';
    return bytes.left(at) + bytes.mid(lineEnd);
}

HttpAnswer answer(int status, const QByteArray &body, const QByteArray &contentType,
                  const HeaderList &headers = {}) {
    HttpAnswer a;
    a.status = status;
    a.body = body;
    a.contentType = contentType;
    a.headers = headers;
    return a;
}

} // namespace

class tst_HttpWriter final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void statusLine_data() {
        QTest::addColumn<int>("status");
        QTest::addColumn<QByteArray>("expected");
        const struct {
            int status;
            const char *reason;
        } known[] = {
            {100, "Continue"},
            {200, "OK"},
            {201, "Created"},
            {202, "Accepted"},
            {204, "No Content"},
            {206, "Partial Content"},
            {301, "Moved Permanently"},
            {302, "Found"},
            {304, "Not Modified"},
            {307, "Temporary Redirect"},
            {308, "Permanent Redirect"},
            {400, "Bad Request"},
            {401, "Unauthorized"},
            {403, "Forbidden"},
            {404, "Not Found"},
            {405, "Method Not Allowed"},
            {408, "Request Timeout"},
            {409, "Conflict"},
            {413, "Content Too Large"},
            {415, "Unsupported Media Type"},
            {417, "Expectation Failed"},
            {422, "Unprocessable Content"},
            {429, "Too Many Requests"},
            {431, "Request Header Fields Too Large"},
            {500, "Internal Server Error"},
            {501, "Not Implemented"},
            {502, "Bad Gateway"},
            {503, "Service Unavailable"},
            {504, "Gateway Timeout"},
            // Any other code still gets a well-formed line: clients read the code, not the
            // phrase (RFC 9112 §4).
            {299, "Status"},
            {418, "Status"},
            {529, "Status"},
        };
        for (const auto &[status, reason] : known) {
            QTest::addRow("%d", status)
                << status
                << QByteArray("HTTP/1.1 " + QByteArray::number(status) + ' ' + reason + "\r\n");
        }
    }
    void statusLine() {
        QFETCH(int, status);
        QFETCH(QByteArray, expected);
        QCOMPARE(http::statusLine(status), expected);
        QCOMPARE(http::reasonPhrase(status), expected.mid(13).chopped(2));
    }

    void serialize_data() {
        QTest::addColumn<HttpAnswer>("answer");
        QTest::addColumn<bool>("keepAlive");
        QTest::addColumn<bool>("headOnly");
        QTest::addColumn<QByteArray>("expected");

        const QByteArray json = R"({"ok":true})";
        QTest::newRow("200, keep-alive")
            << answer(200, json, "application/json") << true << false
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\n\r\n" +
                          json);
        QTest::newRow("404, close")
            << answer(404, json, "application/json") << false << false
            << QByteArray("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\nConnection: close\r\n\r\n" +
                          json);
        QTest::newRow("extra headers, in order")
            << answer(429, json, "application/json",
                      {{"retry-after", "5"}, {"x-request-id", "req_1"}, {"x-a", "1"}})
            << true << false
            << QByteArray("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\nretry-after: 5\r\nx-request-id: req_1\r\n"
                          "x-a: 1\r\n\r\n" +
                          json);
        QTest::newRow("no content type")
            << answer(200, "plain", {}) << true << false
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
        QTest::newRow("empty body")
            << answer(200, {}, "application/json") << true << false
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 0\r\n\r\n");
        QTest::newRow("HEAD keeps the length, drops the body")
            << answer(200, json, "application/json") << true << true
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\n\r\n");
        QTest::newRow("HEAD, close")
            << answer(503, json, "application/json") << false << true
            << QByteArray("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\nConnection: close\r\n\r\n");
        const QByteArray binary("a\r\n\r\nb\0c", 8);
        QTest::newRow("binary body")
            << answer(200, binary, "application/octet-stream") << true << false
            << QByteArray("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: 8\r\n\r\n" +
                          binary);
        QTest::newRow("unknown status")
            << answer(418, json, "application/json") << true << false
            << QByteArray("HTTP/1.1 418 Status\r\nContent-Type: application/json\r\n"
                          "Content-Length: 11\r\n\r\n" +
                          json);
        // No Content-Length and no body for these (RFC 9110 §8.6, §15.3.5, §15.4.5): a client
        // reads no body after them, so any body bytes would be taken for the next response.
        QTest::newRow("204")
            << answer(204, {}, "application/json") << true << false
            << QByteArray("HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n\r\n");
        QTest::newRow("204 given a body")
            << answer(204, json, "application/json") << true << false
            << QByteArray("HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n\r\n");
        QTest::newRow("304, close")
            << answer(304, {}, {}) << false << false
            << QByteArray("HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
    }
    void serialize() {
        QFETCH(HttpAnswer, answer);
        QFETCH(bool, keepAlive);
        QFETCH(bool, headOnly);
        QFETCH(QByteArray, expected);
        const QByteArray bytes = http::serialize(answer, keepAlive, headOnly);
        QCOMPARE(withoutDate(bytes), expected);

        // Read back as a client would.
        const std::optional<ParsedResponse> parsed = parseResponse(bytes);
        QVERIFY(parsed);
        QCOMPARE(parsed->status, answer.status);
        QCOMPARE(parsed->reason, http::reasonPhrase(answer.status));
        QCOMPARE(parsed->values("connection"),
                 keepAlive ? QList<QByteArray>{} : QList<QByteArray>{"close"});
        const bool bodiless = answer.status == 204 || answer.status == 304;
        const QList<QByteArray> lengths = parsed->values("content-length");
        QCOMPARE(lengths.size(), qsizetype(bodiless ? 0 : 1));
        if (!bodiless)
            QCOMPARE(lengths.constFirst(), QByteArray::number(answer.body.size()));
        QCOMPARE(parsed->rest, headOnly || bodiless ? QByteArray() : answer.body);
        QVERIFY(parsed->values("transfer-encoding").isEmpty());
    }

    // Answers written back to back on one connection are read back one after the other.
    void serializedAnswersFrameEachOther() {
        const QList<HttpAnswer> answers = {answer(200, "first", "text/plain"),
                                           answer(204, "ignored", {}),
                                           answer(500, QByteArray(1000, 'x'), "application/json"),
                                           answer(200, "last", "text/plain")};
        QByteArray stream;
        for (const HttpAnswer &a : answers)
            stream += http::serialize(a, true);
        for (const HttpAnswer &a : answers) {
            const std::optional<ParsedResponse> parsed = parseResponse(stream);
            QVERIFY(parsed);
            QCOMPARE(parsed->status, a.status);
            const QList<QByteArray> lengths = parsed->values("content-length");
            const qsizetype length = lengths.isEmpty() ? 0 : lengths.constFirst().toLongLong();
            if (a.status != 204)
                QCOMPARE(parsed->rest.left(length), a.body);
            stream = parsed->rest.mid(length);
        }
        QVERIFY(stream.isEmpty());
    }

    void imfFixdate_data() {
        QTest::addColumn<qint64>("seconds");
        QTest::addColumn<QByteArray>("expected");
        QTest::newRow("RFC 9110's example")
            << qint64(784111777) << QByteArray("Sun, 06 Nov 1994 08:49:37 GMT");
        QTest::newRow("epoch") << qint64(0) << QByteArray("Thu, 01 Jan 1970 00:00:00 GMT");
        QTest::newRow("leap day") << qint64(951782400)
                                  << QByteArray("Tue, 29 Feb 2000 00:00:00 GMT");
        QTest::newRow("last second of a year")
            << qint64(1798761599) << QByteArray("Thu, 31 Dec 2026 23:59:59 GMT");
        QTest::newRow("before the epoch")
            << qint64(-1) << QByteArray("Wed, 31 Dec 1969 23:59:59 GMT");
        QTest::newRow("a century not a leap year")
            << qint64(4107499200) << QByteArray("Sun, 28 Feb 2100 12:00:00 GMT");
        QTest::newRow("after 2038")
            << qint64(4102444800) << QByteArray("Fri, 01 Jan 2100 00:00:00 GMT");
    }
    void imfFixdate() {
        QFETCH(qint64, seconds);
        QFETCH(QByteArray, expected);
        QCOMPARE(http::imfFixdate(seconds), expected);
    }

    void imfFixdateAgreesWithQDateTime() {
        QRandomGenerator random(9110);
        for (int i = 0; i < 2000; ++i) {
            const qint64 seconds = qint64(random.bounded(8'000'000'000.0)) - 2'000'000'000;
            const QString expected =
                QLocale::c().toString(QDateTime::fromSecsSinceEpoch(seconds, Qt::UTC),
                                      QStringLiteral("ddd, dd MMM yyyy hh:mm:ss 'GMT'"));
            QCOMPARE(QString::fromLatin1(http::imfFixdate(seconds)), expected);
        }
    }

    // RFC 9110 §6.6.1: every answer the proxy writes itself says when it was made.
    void everyAnswerHasADate() {
        for (const int status : {200, 204, 304, 400, 502}) {
            HttpAnswer a = answer(status, "{}", "application/json",
                                  {{"Date", "Mon, 01 Jan 2001 00:00:00 GMT"}, {"x-a", "1"}});
            const QByteArray bytes = http::serialize(a, true);
            const std::optional<ParsedResponse> parsed = parseResponse(bytes);
            QVERIFY(parsed);
            const QList<QByteArray> dates = parsed->values("date");
            QCOMPARE(dates.size(), qsizetype(1)); // the answer's own Date is not repeated
            QVERIFY2(ImfFixdate.match(QString::fromLatin1(dates.constFirst())).hasMatch(),
                     dates.constFirst().constData());
            QString text = QString::fromLatin1(dates.constFirst());
            text.chop(4);
            const QDateTime when =
                QDateTime::fromString(text + QStringLiteral(" +0000"), Qt::RFC2822Date);
            QVERIFY(when.isValid());
            QVERIFY(qAbs(when.secsTo(QDateTime::currentDateTimeUtc())) <= 60);
            QCOMPARE(parsed->values("x-a"), QList<QByteArray>{"1"});
        }
        QCOMPARE(http::currentDate(), http::imfFixdate(QDateTime::currentSecsSinceEpoch()));
    }

    // A header value from the provider (a result line's request_id, say) with CR, LF or NUL
    // would end its line early and write headers, or a body, of the provider's choosing.
    void unsafeHeadersAreLeftOut_data() {
        QTest::addColumn<QByteArray>("name");
        QTest::addColumn<QByteArray>("value");
        QTest::newRow("CR LF in the value")
            << QByteArray("x-request-id") << QByteArray("req\r\nX-Evil: 1");
        QTest::newRow("LF in the value")
            << QByteArray("x-request-id") << QByteArray("req\nX-Evil: 1");
        QTest::newRow("bare CR in the value")
            << QByteArray("x-request-id") << QByteArray("req\rX-Evil: 1");
        QTest::newRow("NUL in the value")
            << QByteArray("x-request-id") << QByteArray("req\0X-Evil: 1", 13);
        QTest::newRow("CR LF CR LF: a body of its own")
            << QByteArray("x-request-id") << QByteArray("r\r\n\r\nX-Evil: 1");
        QTest::newRow("space in the name") << QByteArray("X-Evil: 1\r\nx") << QByteArray("v");
        QTest::newRow("colon in the name") << QByteArray("X-Evil:") << QByteArray("1");
        QTest::newRow("empty name") << QByteArray() << QByteArray("X-Evil: 1");
    }
    void unsafeHeadersAreLeftOut() {
        QFETCH(QByteArray, name);
        QFETCH(QByteArray, value);
        const HttpAnswer a = answer(200, "{}", "application/json",
                                    {{"x-before", "1"}, {name, value}, {"x-after", "2"}});
        const QByteArray bytes = http::serialize(a, true);
        const std::optional<ParsedResponse> parsed = parseResponse(bytes);
        QVERIFY2(parsed, bytes.constData());
        QVERIFY(parsed->values("x-evil").isEmpty());
        QCOMPARE(parsed->values("x-before"), QList<QByteArray>{"1"});
        QCOMPARE(parsed->values("x-after"), QList<QByteArray>{"2"});
        QCOMPARE(parsed->rest, QByteArray("{}"));
        QVERIFY(!bytes.contains("X-Evil"));
        QVERIFY(!isSafeHeader(name, value));
    }

    void safeHeaders_data() {
        QTest::addColumn<QByteArray>("name");
        QTest::addColumn<QByteArray>("value");
        QTest::newRow("plain") << QByteArray("x-request-id") << QByteArray("req_abc123");
        QTest::newRow("token characters") << QByteArray("!#$%&'*+-.^_`|~09azAZ") << QByteArray();
        QTest::newRow("tab and space in the value") << QByteArray("a") << QByteArray("b\t c");
        QTest::newRow("UTF-8 in the value") << QByteArray("a") << QByteArray("caf\xc3\xa9");
    }
    void safeHeaders() {
        QFETCH(QByteArray, name);
        QFETCH(QByteArray, value);
        QVERIFY(isSafeHeader(name, value));
    }

    void chunk_data() {
        QTest::addColumn<QByteArray>("data");
        QTest::addColumn<QByteArray>("sizeLine");
        QTest::newRow("one byte") << QByteArray("a") << QByteArray("1");
        QTest::newRow("15 bytes") << QByteArray(15, 'x') << QByteArray("f");
        QTest::newRow("16 bytes") << QByteArray(16, 'x') << QByteArray("10");
        QTest::newRow("255 bytes") << QByteArray(255, 'x') << QByteArray("ff");
        QTest::newRow("256 bytes") << QByteArray(256, 'x') << QByteArray("100");
        QTest::newRow("70000 bytes") << QByteArray(70000, 'x') << QByteArray("11170");
        QTest::newRow("CRLFs and NULs") << QByteArray("\r\n0\r\n\r\n\0", 8) << QByteArray("8");
        QTest::newRow("SSE event") << QByteArray("data: {\"x\":1}\n\n") << QByteArray("f");
    }
    void chunk() {
        QFETCH(QByteArray, data);
        QFETCH(QByteArray, sizeLine);
        const QByteArray framed = http::chunk(data);
        QCOMPARE(framed, QByteArray(sizeLine + "\r\n" + data + "\r\n"));
        QCOMPARE(decodeChunked(QByteArray(framed + http::lastChunk())), data);
    }

    void emptyChunkIsNothing() {
        // An empty chunk would read as the last one and end the body early.
        QCOMPARE(http::chunk({}), QByteArray());
        QCOMPARE(http::chunk(QByteArrayView("")), QByteArray());
        QCOMPARE(http::lastChunk(), QByteArray("0\r\n\r\n"));
        QCOMPARE(decodeChunked(http::lastChunk()), QByteArray());
    }

    // A body relayed in pieces of any size (empty ones included) decodes to itself.
    void chunkStreamDecodes() {
        QRandomGenerator random(7);
        QByteArray payload(200'000, Qt::Uninitialized);
        for (char &c : payload)
            c = char(random.bounded(256));
        for (int round = 0; round < 20; ++round) {
            QByteArray stream;
            qsizetype at = 0;
            while (at < payload.size()) {
                const qsizetype n =
                    std::min<qsizetype>(payload.size() - at, random.bounded(0, 20'000));
                stream += http::chunk(QByteArrayView(payload).sliced(at, n));
                at += n;
            }
            stream += http::lastChunk();
            QCOMPARE(decodeChunked(stream), payload);
        }
    }

    void isHopByHop_data() {
        QTest::addColumn<QByteArray>("name");
        QTest::addColumn<bool>("hopByHop");
        for (const char *name :
             {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
            QTest::newRow(name) << QByteArray(name) << true;
        for (const char *name : {"content-type", "content-length", "authorization", "x-request-id",
                                 "openai-organization", "trailers", "tee", "connections",
                                 "upgrade-insecure-requests", "x-keep-alive", ""})
            QTest::addRow("end-to-end: %s", name) << QByteArray(name) << false;
    }
    void isHopByHop() {
        QFETCH(QByteArray, name);
        QFETCH(bool, hopByHop);
        QCOMPARE(http::isHopByHop(name), hopByHop);
    }

    void upstreamUrl_data() {
        QTest::addColumn<QString>("base");
        QTest::addColumn<QByteArray>("pathAndQuery");
        QTest::addColumn<QByteArray>("expected");
        const QString openai = QStringLiteral("https://api.openai.com/v1");
        QTest::newRow("models") << openai << QByteArray("/v1/models")
                                << QByteArray("https://api.openai.com/v1/models");
        QTest::newRow("just /v1") << openai << QByteArray("/v1")
                                  << QByteArray("https://api.openai.com/v1");
        QTest::newRow("base with a trailing slash")
            << QStringLiteral("https://api.openai.com/v1/") << QByteArray("/v1/models")
            << QByteArray("https://api.openai.com/v1/models");
        QTest::newRow("base with trailing slashes")
            << QStringLiteral("https://api.openai.com/v1///") << QByteArray("/v1/files/f1")
            << QByteArray("https://api.openai.com/v1/files/f1");
        QTest::newRow("base without a path")
            << QStringLiteral("http://127.0.0.1:8080") << QByteArray("/v1/models")
            << QByteArray("http://127.0.0.1:8080/models");
        QTest::newRow("base of just a slash")
            << QStringLiteral("http://127.0.0.1:8080/") << QByteArray("/v1/models")
            << QByteArray("http://127.0.0.1:8080/models");
        QTest::newRow("base with a deeper path")
            << QStringLiteral("https://example.com/openai/v1") << QByteArray("/v1/chat/completions")
            << QByteArray("https://example.com/openai/v1/chat/completions");
        QTest::newRow("base with a port and a path")
            << QStringLiteral("http://localhost:11434/v1") << QByteArray("/v1/models/llama3")
            << QByteArray("http://localhost:11434/v1/models/llama3");
        QTest::newRow("query") << openai << QByteArray("/v1/files?purpose=batch&limit=10")
                               << QByteArray(
                                      "https://api.openai.com/v1/files?purpose=batch&limit=10");
        QTest::newRow("empty query") << openai << QByteArray("/v1/models?")
                                     << QByteArray("https://api.openai.com/v1/models?");
        QTest::newRow("query, encoded")
            << openai << QByteArray("/v1/batches?after=a%20b%26c&x=%2F+y")
            << QByteArray("https://api.openai.com/v1/batches?after=a%20b%26c&x=%2F+y");
        QTest::newRow("query with / and ?")
            << openai << QByteArray("/v1/x?next=/v1/y?z=1")
            << QByteArray("https://api.openai.com/v1/x?next=/v1/y?z=1");
        QTest::newRow("encoded slash kept")
            << openai << QByteArray("/v1/files/file%2Fabc/content")
            << QByteArray("https://api.openai.com/v1/files/file%2Fabc/content");
        QTest::newRow("encoded ? and # kept")
            << openai << QByteArray("/v1/models/ft%3Aa%3Fb%23c")
            << QByteArray("https://api.openai.com/v1/models/ft%3Aa%3Fb%23c");
        QTest::newRow("encoded space and percent kept")
            << openai << QByteArray("/v1/vector_stores/a%20b%25c")
            << QByteArray("https://api.openai.com/v1/vector_stores/a%20b%25c");
        // QUrl decodes an encoded unreserved character: the same URL (RFC 3986 §2.3).
        QTest::newRow("encoded unreserved character")
            << openai << QByteArray("/v1/models/%41bc")
            << QByteArray("https://api.openai.com/v1/models/Abc");
        QTest::newRow("fine-tuned model name")
            << openai << QByteArray("/v1/models/ft:gpt-4o-mini:org::abc123")
            << QByteArray("https://api.openai.com/v1/models/ft:gpt-4o-mini:org::abc123");
        QTest::newRow("base query kept without a client query")
            << QStringLiteral("https://x.example.com/openai/v1?api-version=2024-10-21")
            << QByteArray("/v1/models")
            << QByteArray("https://x.example.com/openai/v1/models?api-version=2024-10-21");
    }
    void upstreamUrl() {
        QFETCH(QString, base);
        QFETCH(QByteArray, pathAndQuery);
        QFETCH(QByteArray, expected);
        const QUrl url = llmproxy::upstreamUrl(QUrl(base), pathAndQuery);
        QVERIFY2(url.isValid(), qPrintable(url.errorString()));
        QCOMPARE(url.toEncoded(), expected);
    }
};

QTEST_APPLESS_MAIN(tst_HttpWriter)
#include "tst_httpwriter.moc"
