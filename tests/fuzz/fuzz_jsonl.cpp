// SPDX-License-Identifier: GPL-3.0-or-later
// The result-file path (proxy/api/jsonl.*, proxy/api/batchresult.*): the input is a whole
// output or error file of the Batch API. Invariants:
// - LineSplitter, fed the file whole, byte by byte or in pseudo-random pieces, delivers exactly
//   the file's non-blank lines (CR stripped), nothing lost, nothing made up, and holds only the
//   unfinished last line.
// - decodeOutputLine() refuses with a message or decodes; what it reads agrees with Qt's
//   parser where both read the line the same way (no duplicate keys, valid UTF-16).
// - The client's answer (answerForLine) has a final status; a response's body is passed on byte
//   for byte; and the answer as written (http::serialize) has a well-formed head: no CR, LF or
//   NUL inside a field, no field the answer does not hold, the body right after the head.

#include "api/batchresult.h"
#include "api/json.h"
#include "api/jsonl.h"
#include "fuzzsupport.h"
#include "http/httpwriter.h"

#include <QHash>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <QSet>

namespace json = llmproxy::json;
namespace jsonl = llmproxy::jsonl;

namespace {

QByteArray context(QByteArrayView text) {
    return "\ninput: " + fuzz::printable(text);
}

// The lines a file holds, as LineSplitter promises them.
QList<QByteArray> referenceLines(QByteArrayView file) {
    QList<QByteArray> lines;
    for (QByteArrayView rest = file; !rest.isEmpty();) {
        qsizetype nl = rest.indexOf('\n');
        QByteArrayView line = rest.first(nl < 0 ? rest.size() : nl);
        rest = nl < 0 ? QByteArrayView() : rest.sliced(nl + 1);
        if (line.endsWith('\r'))
            line.chop(1);
        if (std::any_of(line.begin(), line.end(),
                        [](char c) { return c != ' ' && c != '\t' && c != '\r'; }))
            lines.append(line.toByteArray());
    }
    return lines;
}

QList<QByteArray> split(const fuzz::Pieces &pieces, qsizetype *pending) {
    QList<QByteArray> lines;
    jsonl::LineSplitter splitter([&](QByteArrayView line) { lines.append(line.toByteArray()); });
    for (const QByteArrayView piece : pieces)
        splitter.feed(piece);
    *pending = splitter.pendingBytes();
    splitter.finish();
    FUZZ_CHECK(splitter.pendingBytes() == 0, "bytes left after finish()");
    return lines;
}

QByteArray describe(const QList<QByteArray> &lines) {
    QByteArray out;
    for (const QByteArray &line : lines)
        out += "  [" + fuzz::printable(line, 120) + "]\n";
    return out;
}

bool isTokenChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           QByteArrayView("!#$%&'*+-.^_`|~").contains(c);
}

// The answer as the front end writes it: a head the client parses as we meant it.
void checkWritten(const llmproxy::HttpAnswer &answer, QByteArrayView line) {
    const QByteArray written = llmproxy::http::serialize(answer, true);
    const qsizetype end = written.indexOf("\r\n\r\n");
    FUZZ_CHECK(end > 0, "no end of head" + context(line));
    // 204, 304 and 1xx answers never have a body (RFC 9110 §6.4.1): serialize() leaves it out.
    const bool bodiless = answer.status == 204 || answer.status == 304 || answer.status < 200;
    FUZZ_CHECK(written.sliced(end + 4) == (bodiless ? QByteArray() : answer.body),
               "the body does not follow the head: " + fuzz::printable(written) + context(line));
    const QByteArrayView head = QByteArrayView(written).first(end);
    QHash<QByteArray, int> allowed; // lower-case name -> how many such fields the answer holds
    for (const auto &[name, value] : answer.headers)
        ++allowed[name.toLower()];
    for (const char *own : {"content-type", "content-length", "connection", "date"})
        allowed[own] = std::max(allowed.value(own), 1);
    qsizetype start = head.indexOf("\r\n");
    FUZZ_CHECK(start > 0, "no status line" + context(line));
    while (start < head.size()) {
        start += 2;
        qsizetype stop = head.indexOf("\r\n", start);
        if (stop < 0)
            stop = head.size();
        const QByteArrayView field = head.sliced(start, stop - start);
        const qsizetype colon = field.indexOf(':');
        const QByteArrayView name = colon > 0 ? field.first(colon) : QByteArrayView();
        const bool clean = std::none_of(field.begin(), field.end(),
                                        [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
        FUZZ_CHECK(clean && !name.isEmpty() && std::all_of(name.begin(), name.end(), isTokenChar) &&
                       --allowed[name.toByteArray().toLower()] >= 0,
                   "a field the answer does not hold, or CR/LF/NUL in a field: [" +
                       fuzz::printable(field) + "]\nwritten: " + fuzz::printable(written) +
                       context(line));
        start = stop;
    }
}

// Where Qt reads the line as the same object (no duplicate keys), the fields agree.
void compareWithQt(const jsonl::OutputLine &out, QByteArrayView line) {
    const auto members = json::objectMembers(line, json::Strictness::Lenient);
    QSet<QByteArray> keys;
    for (const json::Member &m : *members) {
        if (keys.contains(m.key))
            return;
        keys.insert(m.key);
    }
    const QJsonDocument doc = QJsonDocument::fromJson(line.toByteArray());
    if (!doc.isObject())
        return; // Qt refuses some of what we read leniently (invalid UTF-8)
    const QJsonObject object = doc.object();
    const auto same = [](const QByteArray &ours, const QJsonValue &theirs) {
        const QString s = theirs.toString();
        return !QStringView(s).isValidUtf16() || fuzz::startsWithBom(ours) ||
               fuzz::fromUtf8(ours) == s;
    };
    FUZZ_CHECK(same(out.customId, object.value(QStringLiteral("custom_id"))),
               "custom_id differs from Qt's" + context(line));
    const QJsonValue response = object.value(QStringLiteral("response"));
    FUZZ_CHECK(out.hasResponse == response.isObject(), "response differs" + context(line));
    if (out.hasResponse) {
        const QJsonObject r = response.toObject();
        const QJsonValue requestId = r.value(QStringLiteral("request_id"));
        if (requestId.isString()) {
            // Nested keys may repeat too: only compare where our scan found one.
            const auto fields = json::objectMembers(json::find(*members, "response")->value,
                                                    json::Strictness::Lenient);
            qsizetype n = 0;
            for (const json::Member &m : *fields)
                n += m.key == "request_id";
            FUZZ_CHECK(n != 1 || same(out.requestId, requestId),
                       "request_id differs from Qt's" + context(line));
        }
        FUZZ_CHECK(out.body.isEmpty() || json::isValid(out.body, json::Strictness::Lenient),
                   "the body is not one JSON value" + context(line));
    }
}

void checkLine(QByteArrayView line) {
    QString error;
    const std::optional<jsonl::OutputLine> out = jsonl::decodeOutputLine(line, &error);
    if (!out) {
        FUZZ_CHECK(!error.isEmpty(), "refused without a reason" + context(line));
        return;
    }
    compareWithQt(*out, line);
    // A line known by its first bytes only: the custom_id found there is the line's.
    fuzz::Rng rng(line);
    for (int round = 0; round < 4; ++round) {
        const qsizetype cut = round == 0 ? line.size() : rng.between(0, line.size());
        const fuzz::Pieces piece(line.first(cut));
        const std::optional<QByteArray> id =
            jsonl::customIdFromLineStart(piece.size() ? piece.at(0) : QByteArrayView("", 0));
        FUZZ_CHECK(!id || *id == out->customId, "customIdFromLineStart(first " +
                                                    QByteArray::number(cut) + " bytes) gave " +
                                                    fuzz::printable(*id) + context(line));
        FUZZ_CHECK(cut < line.size() || id,
                   "customIdFromLineStart of a whole line" + context(line));
    }
    const llmproxy::HttpAnswer answer = llmproxy::answerForLine(*out, "batch_fuzz");
    FUZZ_CHECK(answer.status >= 200 && answer.status <= 599,
               "answer status " + QByteArray::number(answer.status) + context(line));
    if (out->hasResponse && !answer.synthesized)
        FUZZ_CHECK(answer.body == out->body && answer.status == out->statusCode,
                   "the provider's answer was changed" + context(line));
    checkWritten(answer, line);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const QByteArrayView file(reinterpret_cast<const char *>(data), qsizetype(size));
    const QList<QByteArray> expected = referenceLines(file);
    const qsizetype lastNewline = file.lastIndexOf('\n');
    const qsizetype expectedPending = file.size() - lastNewline - 1;

    fuzz::Rng rng(file);
    std::vector<fuzz::Pieces> cuts;
    cuts.emplace_back(file);
    if (file.size() <= 1024)
        cuts.emplace_back(file, rng, 1);
    cuts.emplace_back(file, rng, fuzz::pieceSize(rng));
    for (const fuzz::Pieces &pieces : cuts) {
        qsizetype pending = -1;
        const QList<QByteArray> lines = split(pieces, &pending);
        FUZZ_CHECK(lines == expected && pending == expectedPending,
                   "LineSplitter in " + QByteArray::number(pieces.size()) + " pieces gave\n" +
                       describe(lines) + "expected\n" + describe(expected) + "pending " +
                       QByteArray::number(pending) + ", expected " +
                       QByteArray::number(expectedPending) + context(file));
    }
    for (const QByteArray &line : expected)
        checkLine(line);
    return 0;
}
