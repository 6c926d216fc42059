// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/json.h"

#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>

#include <limits>

using namespace llmproxy;

Q_DECLARE_METATYPE(json::Kind)

namespace {

QByteArray nestedArrays(int depth) {
    return QByteArray(depth, '[') + QByteArray(depth, ']');
}

// {"a":{"a":...{"a":0}...}} with `depth` objects.
QByteArray nestedObjects(int depth) {
    QByteArray text;
    for (int i = 0; i < depth; ++i)
        text += "{\"a\":";
    text += '0';
    text += QByteArray(depth, '}');
    return text;
}

} // namespace

class TestJson final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TestJson)

public:
    TestJson() = default;

private slots:
    void validDocuments_data();
    void validDocuments();
    void invalidDocuments_data();
    void invalidDocuments();
    void exactMessages_data();
    void exactMessages();
    void lenient_data();
    void lenient();
    void depthLimit();
    void hugeDepthFailsFast();
    void members();
    void memberSpansAndKeys_data();
    void memberSpansAndKeys();
    void notAnObject_data();
    void notAnObject();
    void bigNumbersKeptExact_data();
    void bigNumbersKeptExact();
    void kindOf_data();
    void kindOf();
    void stringValue_data();
    void stringValue();
    void integerValue_data();
    void integerValue();
    void arrayLength_data();
    void arrayLength();
    void singleLine_data();
    void singleLine();
    void quoted_data();
    void quoted();
    void quotedExact();
    void largeDocument();
    void duplicateKeys_data();
    void duplicateKeys();
    void duplicateKeysAmongManyMembers();
    void manyMembersStayLinear();
    void leadingMembers_data();
    void leadingMembers();
    void withoutMembers_data();
    void withoutMembers();
};

void TestJson::validDocuments_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("empty object") << QByteArray("{}");
    QTest::newRow("empty array") << QByteArray("[]");
    QTest::newRow("surrounding whitespace") << QByteArray(" \t\r\n{} \n\r\t");
    QTest::newRow("whitespace everywhere") << QByteArray("[ 1 ,\t2\r\n, { \"a\" : null } ]");
    QTest::newRow("zero") << QByteArray("0");
    QTest::newRow("minus zero") << QByteArray("-0");
    QTest::newRow("integer") << QByteArray("123");
    QTest::newRow("negative integer") << QByteArray("-123");
    QTest::newRow("fraction") << QByteArray("1.5");
    QTest::newRow("zero fraction") << QByteArray("0.0001");
    QTest::newRow("negative fraction") << QByteArray("-0.5");
    QTest::newRow("exponent") << QByteArray("1e5");
    QTest::newRow("capital exponent") << QByteArray("1E5");
    QTest::newRow("plus exponent") << QByteArray("1e+5");
    QTest::newRow("minus exponent") << QByteArray("1e-5");
    QTest::newRow("fraction and exponent") << QByteArray("-12.375E-010");
    QTest::newRow("zero exponent") << QByteArray("0e0");
    QTest::newRow("huge integer") << QByteArray("12345678901234567890123456789");
    QTest::newRow("huge exponent") << QByteArray("1e400");
    QTest::newRow("true") << QByteArray("true");
    QTest::newRow("false") << QByteArray("false");
    QTest::newRow("null") << QByteArray("null");
    QTest::newRow("empty string") << QByteArray("\"\"");
    QTest::newRow("string") << QByteArray("\"hello\"");
    QTest::newRow("short escapes") << QByteArray(R"("\" \\ \/ \b \f \n \r \t")");
    QTest::newRow("unicode escape") << QByteArray(R"("\u0041\u00e9\u20AC")");
    QTest::newRow("escaped NUL") << QByteArray(R"("\u0000")");
    QTest::newRow("surrogate pair") << QByteArray(R"("\ud83d\ude00")");
    QTest::newRow("surrogate pair upper case") << QByteArray(R"("\uD83D\uDE00")");
    QTest::newRow("raw UTF-8") << QByteArray("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    QTest::newRow("raw U+10FFFF") << QByteArray("\"\xf4\x8f\xbf\xbf\"");
    QTest::newRow("raw U+FFFF") << QByteArray("\"\xef\xbf\xbf\"");
    QTest::newRow("raw DEL") << QByteArray("\"\x7f\"");
    QTest::newRow("string with structural characters") << QByteArray(R"("{[]}:,")");
    QTest::newRow("nested") << QByteArray(R"({"a":[1,{"b":null,"c":[true,false]}],"d":"x"})");
    QTest::newRow("containers") << QByteArray("[[],{},[{}],{\"a\":[]}]");
    QTest::newRow("empty key") << QByteArray(R"({"":1})");
    QTest::newRow("duplicate keys") << QByteArray(R"({"a":1,"a":2})");
    QTest::newRow("512 nested arrays") << nestedArrays(512);
    QTest::newRow("512 nested objects") << nestedObjects(512);
    QTest::newRow("chat request") << QByteArray(
        R"({"model":"gpt-4o-mini","seed":12345678901234567890,)"
        R"("messages":[{"role":"user","content":"Hi \"there\"\n"}],)"
        R"("temperature":0.7,"max_tokens":100,"stream":false,"stop":null})");
}

void TestJson::validDocuments() {
    QFETCH(QByteArray, text);
    json::ScanError error;
    QVERIFY2(json::isValid(text, &error), qPrintable(error.message));
    QVERIFY(json::isValid(text));
    QVERIFY(json::isValid(text, json::Strictness::Lenient));
}

void TestJson::invalidDocuments_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<qsizetype>("offset");
    QTest::addColumn<QString>("messagePart");

    auto row = [](const char *name, const QByteArray &text, qsizetype offset, const char *part) {
        QTest::newRow(name) << text << offset << QString::fromUtf8(part);
    };
    row("empty", "", 0, "empty");
    row("only whitespace", " \n\t ", 4, "empty");
    row("open object", "{", 1, "unexpected end of input");
    row("open array", "[1,2", 4, "unexpected end of input");
    row("trailing comma in array", "[1,]", 3, "unexpected character ']'");
    row("trailing comma in object", R"({"a":1,})", 7, "expected a string as object key");
    row("missing comma", "[1 2]", 3, "expected ',' or ']'");
    row("missing colon", R"({"a" 1})", 5, "expected ':'");
    row("missing value", R"({"a":})", 5, "expected a value");
    row("unquoted key", "{a:1}", 1, "unexpected character 'a'");
    row("single quotes", "['a']", 1, "unexpected character '''");
    row("wrong closer in object", R"({"a":1])", 6, "expected ',' or '}'");
    row("wrong closer in array", "[1}", 2, "expected ',' or ']'");
    row("extra closer", "[1]]", 3, "after the end");
    row("two documents", "{} {}", 3, "after the end");
    row("trailing garbage", "[1] x", 4, "unexpected character 'x'");
    row("trailing comment", "[1]//x", 3, "unexpected character '/'");
    row("trailing NUL", QByteArray("[1]\0", 4), 3, "unexpected byte 0x00");
    row("leading zero", "01", 0, "leading zero");
    row("negative leading zero", "-01", 0, "leading zero");
    row("leading zeros in array", "[00]", 1, "leading zero");
    row("plus sign", "+1", 0, "unexpected character '+'");
    row("leading dot", ".5", 0, "unexpected character '.'");
    row("trailing dot", "1.", 2, "decimal point");
    row("dot before exponent", "1.e5", 2, "decimal point");
    row("empty exponent", "1e", 2, "exponent");
    row("signed empty exponent", "1e+", 3, "exponent");
    row("lone minus", "-", 1, "after '-'");
    row("minus letter", "-a", 1, "after '-'");
    row("minus space", "- 1", 1, "after '-'");
    row("hex number", "0x10", 1, "after the end");
    row("NaN", "NaN", 0, "unexpected character 'N'");
    row("Infinity", "Infinity", 0, "unexpected character 'I'");
    row("minus Infinity", "-Infinity", 1, "after '-'");
    row("truncated true", "tru", 3, "unexpected end of input");
    row("misspelt true", "trUe", 2, "unexpected character 'U'");
    row("capital True", "True", 0, "unexpected character 'T'");
    row("truncated null", "[nul]", 4, "expected 'null'");
    row("longer literal", "truex", 4, "after the end");
    row("unterminated string", "\"abc", 4, "unterminated string");
    row("raw newline in string", "\"a\nb\"", 2, "control character 0x0a");
    row("raw tab in string", "\"a\tb\"", 2, "control character 0x09");
    row("raw 0x01 in string", "\"\x01\"", 1, "control character 0x01");
    row("raw 0x1f in string", "\"\x1f\"", 1, "control character 0x1f");
    row("bad escape", R"("\x")", 1, "invalid escape");
    row("escaped apostrophe", R"("\'")", 1, "invalid escape");
    row("escape at end", "\"\\", 2, "unexpected end of input");
    row("short unicode escape", R"("\u12")", 1, "\\u escape");
    row("bad hex digit", R"("\u12G4")", 1, "\\u escape");
    row("unicode escape at end", R"("\u00)", 1, "\\u escape");
    row("lone high surrogate", R"("\ud83d")", 1, "unpaired UTF-16 surrogate \\ud83d");
    row("lone low surrogate", R"("\ude00")", 1, "unpaired UTF-16 surrogate \\ude00");
    row("high surrogate then BMP escape", R"("\ud83d\u0041")", 1, "unpaired");
    row("high surrogate then text", R"("\ud83dx")", 1, "unpaired");
    row("two high surrogates", R"("\ud83d\ud83d")", 1, "unpaired");
    row("invalid UTF-8 0xff", "\"\xff\"", 1, "invalid UTF-8 byte 0xff");
    row("lone continuation byte", "\"a\x80\"", 2, "invalid UTF-8 byte 0x80");
    row("overlong slash", "\"\xc0\xaf\"", 1, "invalid UTF-8");
    row("overlong 3-byte", "\"\xe0\x80\xaf\"", 1, "invalid UTF-8");
    row("overlong 4-byte", "\"\xf0\x80\x80\xaf\"", 1, "invalid UTF-8");
    row("truncated sequence", "\"\xc3\"", 1, "invalid UTF-8");
    row("truncated at end", "\"\xe2\x82", 1, "invalid UTF-8");
    row("encoded surrogate", "\"\xed\xa0\x80\"", 1, "invalid UTF-8");
    row("above U+10FFFF", "\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8");
    row("byte 0xf5", "\"\xf5\x80\x80\x80\"", 1, "invalid UTF-8");
    row("UTF-8 outside string", "\xc3\xa9", 0, "unexpected byte 0xc3");
    row("byte order mark", "\xef\xbb\xbf{}", 0, "byte order mark");
    row("form feed is not whitespace", "\f[]", 0, "unexpected byte 0x0c");
    row("vertical tab is not whitespace", "[\v]", 1, "unexpected byte 0x0b");
    row("no-break space is not whitespace", "\xc2\xa0[]", 0, "unexpected byte 0xc2");
    row("513 nested arrays", nestedArrays(513), 512, "nesting deeper than 512 levels");
    row("513 nested objects", nestedObjects(513), 512 * 5, "nesting deeper than 512 levels");
    row("error deep inside", R"({"a":[{"b":[1,2,{"c":tru}]}]})", 24, "unexpected character '}'");
}

void TestJson::invalidDocuments() {
    QFETCH(QByteArray, text);
    QFETCH(qsizetype, offset);
    QFETCH(QString, messagePart);

    json::ScanError error;
    QVERIFY(!json::isValid(text, &error));
    QVERIFY(!json::isValid(text));
    QCOMPARE(error.offset, offset);
    QVERIFY2(error.message.contains(messagePart), qPrintable(error.message));
    if (!error.message.startsWith(QStringLiteral("the document is empty"))) {
        QVERIFY2(error.message.contains(QStringLiteral("at byte ") + QString::number(offset)),
                 qPrintable(error.message));
    }

    // objectMembers refuses them too, with the same diagnosis for objects.
    json::ScanError memberError;
    QVERIFY(!json::objectMembers(text, &memberError));
    if (text.trimmed().startsWith('{')) {
        QCOMPARE(memberError.offset, error.offset);
        QCOMPARE(memberError.message, error.message);
    }
}

void TestJson::exactMessages_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("message");
    QTest::newRow("unexpected brace") << QByteArray(R"({"model":"gpt-4o",})")
                                      << QStringLiteral("unexpected character '}' at byte 18 "
                                                        "(expected a string as object key)");
    QTest::newRow("end of input") << QByteArray(R"({"a":[1,2)")
                                  << QStringLiteral("unexpected end of input at byte 9 "
                                                    "(expected ',' or ']' in array)");
    QTest::newRow("garbage") << QByteArray("{}x")
                             << QStringLiteral(
                                    "unexpected character 'x' at byte 2 (after the end of "
                                    "the JSON value)");
    QTest::newRow("empty") << QByteArray()
                           << QStringLiteral("the document is empty (expected a JSON value)");
    QTest::newRow("leading zero") << QByteArray("[012]")
                                  << QStringLiteral("number with a leading zero at byte 1");
}

void TestJson::exactMessages() {
    QFETCH(QByteArray, text);
    QFETCH(QString, message);
    json::ScanError error;
    QVERIFY(!json::isValid(text, &error));
    QCOMPARE(error.message, message);
}

void TestJson::lenient_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("lenientValid");
    QTest::newRow("lone high surrogate") << QByteArray(R"(["\ud83d"])") << true;
    QTest::newRow("lone low surrogate") << QByteArray(R"({"a":"\udc00"})") << true;
    QTest::newRow("invalid UTF-8") << QByteArray("[\"\xff\xfe\"]") << true;
    QTest::newRow("encoded surrogate") << QByteArray("\"\xed\xa0\x80\"") << true;
    QTest::newRow("raw control character") << QByteArray("[\"a\nb\"]") << false;
    QTest::newRow("bad escape") << QByteArray(R"(["\q"])") << false;
    QTest::newRow("bad hex") << QByteArray(R"(["\ud83d\uZZZZ"])") << false;
    QTest::newRow("syntax") << QByteArray("[1,]") << false;
    QTest::newRow("UTF-8 outside strings") << QByteArray("[\xc3\xa9]") << false;
}

void TestJson::lenient() {
    QFETCH(QByteArray, text);
    QFETCH(bool, lenientValid);
    QVERIFY(!json::isValid(text)); // every row is refused by the strict default
    QCOMPARE(json::isValid(text, json::Strictness::Lenient), lenientValid);
    if (text.startsWith('{'))
        QCOMPARE(json::objectMembers(text, json::Strictness::Lenient).has_value(), lenientValid);
}

void TestJson::depthLimit() {
    QCOMPARE(json::MaxDepth, 512);
    QVERIFY(json::isValid(nestedArrays(json::MaxDepth)));
    QVERIFY(!json::isValid(nestedArrays(json::MaxDepth + 1)));

    // The object given to objectMembers is the first level.
    const QByteArray inner511 = R"({"a":)" + nestedArrays(json::MaxDepth - 1) + '}';
    const QByteArray inner512 = R"({"a":)" + nestedArrays(json::MaxDepth) + '}';
    QVERIFY(json::objectMembers(inner511));
    json::ScanError error;
    QVERIFY(!json::objectMembers(inner512, &error));
    QCOMPARE(error.offset, qsizetype(5 + json::MaxDepth - 1));
    QVERIFY(error.message.startsWith(QStringLiteral("nesting deeper than 512 levels")));
    QCOMPARE(json::isValid(inner512), false);

    // arrayLength counts its own level too.
    QCOMPARE(json::arrayLength(nestedArrays(json::MaxDepth)), std::optional<qsizetype>(1));
    QVERIFY(!json::arrayLength(nestedArrays(json::MaxDepth + 1)));
}

void TestJson::hugeDepthFailsFast() {
    // A million open brackets must neither recurse nor run past the limit.
    const QByteArray text(1000000, '[');
    json::ScanError error;
    QVERIFY(!json::isValid(text, &error));
    QCOMPARE(error.offset, qsizetype(json::MaxDepth));
    const QByteArray object = "{\"a\":" + text;
    QVERIFY(!json::objectMembers(object));
    QVERIFY(!json::arrayLength(text));
}

void TestJson::members() {
    const QByteArray text = R"( {"model" : "gpt-4o", "seed":12345678901234567890,)"
                            R"("messages":[ {"role":"user"} ], "n":null,"t":true,"f":false,)"
                            R"("x":-1.5e3 ,"o":{ "a" : [] },"model":"again"} )";
    json::ScanError error;
    const auto members = json::objectMembers(text, &error);
    QVERIFY2(members, qPrintable(error.message));
    QCOMPARE(members->size(), 9);

    const QList<QByteArray> keys = {"model", "seed", "messages", "n", "t", "f", "x", "o", "model"};
    const QList<QByteArray> values = {R"("gpt-4o")",
                                      "12345678901234567890",
                                      R"([ {"role":"user"} ])",
                                      "null",
                                      "true",
                                      "false",
                                      "-1.5e3",
                                      R"({ "a" : [] })",
                                      R"("again")"};
    const QList<json::Kind> kinds = {json::Kind::String, json::Kind::Number, json::Kind::Array,
                                     json::Kind::Null,   json::Kind::True,   json::Kind::False,
                                     json::Kind::Number, json::Kind::Object, json::Kind::String};
    for (qsizetype i = 0; i < members->size(); ++i) {
        const json::Member &member = members->at(i);
        QCOMPARE(member.key, keys.at(i));
        QCOMPARE(member.value.toByteArray(), values.at(i));
        QCOMPARE(member.kind, kinds.at(i));
        // The value is a view into the scanned text, not a copy.
        QVERIFY(member.value.data() >= text.constData());
        QVERIFY(member.value.data() + member.value.size() <= text.constData() + text.size());
    }

    // find() returns the first of duplicate keys, and nullptr for absent ones.
    const json::Member *model = json::find(*members, "model");
    QVERIFY(model);
    QCOMPARE(model->value.toByteArray(), QByteArray(R"("gpt-4o")"));
    QVERIFY(!json::find(*members, "missing"));
    QVERIFY(!json::find(*members, "mode"));

    const auto empty = json::objectMembers(" { } ");
    QVERIFY(empty);
    QVERIFY(empty->isEmpty());
}

void TestJson::memberSpansAndKeys_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("key");
    QTest::addColumn<QByteArray>("value");
    QTest::newRow("escaped key") << QByteArray(R"({"a\u0062\n":1})") << QByteArray("ab\n")
                                 << QByteArray("1");
    QTest::newRow("surrogate key")
        << QByteArray(R"({"\ud83d\ude00":2})") << QByteArray("\xf0\x9f\x98\x80") << QByteArray("2");
    QTest::newRow("raw UTF-8 key") << QByteArray("{\"\xc3\xa9\":\"\xc3\xa9\"}")
                                   << QByteArray("\xc3\xa9") << QByteArray("\"\xc3\xa9\"");
    QTest::newRow("empty key") << QByteArray(R"({"":[]})") << QByteArray() << QByteArray("[]");
    QTest::newRow("string with escapes kept raw")
        << QByteArray(R"({"s":"a\"b\\c\u00e9"})") << QByteArray("s")
        << QByteArray(R"("a\"b\\c\u00e9")");
    QTest::newRow("whitespace inside value kept")
        << QByteArray("{\"v\":\r\n  {\r\n \"x\" : [ 1 , 2 ]\r\n }\r\n}") << QByteArray("v")
        << QByteArray("{\r\n \"x\" : [ 1 , 2 ]\r\n }");
}

void TestJson::memberSpansAndKeys() {
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, key);
    QFETCH(QByteArray, value);
    const auto members = json::objectMembers(text);
    QVERIFY(members);
    QCOMPARE(members->size(), 1);
    QCOMPARE(members->first().key, key);
    QCOMPARE(members->first().value.toByteArray(), value);
    QCOMPARE(json::find(*members, key), &members->first());
}

void TestJson::notAnObject_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<qsizetype>("offset");
    QTest::newRow("array") << QByteArray("[1]") << qsizetype(0);
    QTest::newRow("string") << QByteArray(R"( "a")") << qsizetype(1);
    QTest::newRow("number") << QByteArray("1") << qsizetype(0);
    QTest::newRow("null") << QByteArray("null") << qsizetype(0);
}

void TestJson::notAnObject() {
    QFETCH(QByteArray, text);
    QFETCH(qsizetype, offset);
    QVERIFY(json::isValid(text));
    json::ScanError error;
    QVERIFY(!json::objectMembers(text, &error));
    QCOMPARE(error.offset, offset);
    QVERIFY2(error.message.contains(QStringLiteral("expected a JSON object")),
             qPrintable(error.message));
}

void TestJson::bigNumbersKeptExact_data() {
    QTest::addColumn<QByteArray>("number");
    QTest::newRow("seed above qint64") << QByteArray("12345678901234567890");
    QTest::newRow("2^64") << QByteArray("18446744073709551616");
    QTest::newRow("negative huge") << QByteArray("-98765432109876543210987654321");
    QTest::newRow("many fraction digits") << QByteArray("0.10000000000000000000000000001");
    QTest::newRow("2^53 + 1") << QByteArray("9007199254740993");
    QTest::newRow("exponent form") << QByteArray("1.0E+2");
}

void TestJson::bigNumbersKeptExact() {
    QFETCH(QByteArray, number);
    const QByteArray text = R"({"seed":)" + number + R"(,"after":1})";
    const auto members = json::objectMembers(text);
    QVERIFY(members);
    const json::Member *seed = json::find(*members, "seed");
    QVERIFY(seed);
    QCOMPARE(seed->kind, json::Kind::Number);
    QCOMPARE(seed->value.toByteArray(), number);
    // singleLine and quoted-free copies keep every digit as well.
    QVERIFY(json::singleLine(text).contains(number));
}

void TestJson::kindOf_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<bool>("known");
    QTest::addColumn<json::Kind>("kind");
    QTest::newRow("object") << QByteArray("{}") << true << json::Kind::Object;
    QTest::newRow("array") << QByteArray(" [1]") << true << json::Kind::Array;
    QTest::newRow("string") << QByteArray("\"x\"") << true << json::Kind::String;
    QTest::newRow("number") << QByteArray("12") << true << json::Kind::Number;
    QTest::newRow("negative number") << QByteArray("\n-1") << true << json::Kind::Number;
    QTest::newRow("true") << QByteArray("true") << true << json::Kind::True;
    QTest::newRow("false") << QByteArray("false") << true << json::Kind::False;
    QTest::newRow("null") << QByteArray("null") << true << json::Kind::Null;
    QTest::newRow("empty") << QByteArray() << false << json::Kind::Null;
    QTest::newRow("whitespace") << QByteArray(" \t") << false << json::Kind::Null;
    QTest::newRow("letter") << QByteArray("x") << false << json::Kind::Null;
    QTest::newRow("plus") << QByteArray("+1") << false << json::Kind::Null;
    QTest::newRow("closing brace") << QByteArray("}") << false << json::Kind::Null;
}

void TestJson::kindOf() {
    QFETCH(QByteArray, raw);
    QFETCH(bool, known);
    QFETCH(json::Kind, kind);
    const std::optional<json::Kind> result = json::kindOf(raw);
    QCOMPARE(result.has_value(), known);
    if (known)
        QCOMPARE(*result, kind);
}

void TestJson::stringValue_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<bool>("valid");
    QTest::addColumn<QByteArray>("decoded");
    QTest::newRow("plain") << QByteArray(R"("abc")") << true << QByteArray("abc");
    QTest::newRow("empty") << QByteArray(R"("")") << true << QByteArray();
    QTest::newRow("whitespace around") << QByteArray(" \"a\"\n") << true << QByteArray("a");
    QTest::newRow("short escapes")
        << QByteArray(R"("\"\\\/\b\f\n\r\t")") << true << QByteArray("\"\\/\b\f\n\r\t");
    QTest::newRow("escaped NUL") << QByteArray(R"("a\u0000b")") << true << QByteArray("a\0b", 3);
    QTest::newRow("two-byte escape") << QByteArray(R"("\u00e9")") << true << QByteArray("\xc3\xa9");
    QTest::newRow("U+07FF") << QByteArray(R"("\u07ff")") << true << QByteArray("\xdf\xbf");
    QTest::newRow("U+0800") << QByteArray(R"("\u0800")") << true << QByteArray("\xe0\xa0\x80");
    QTest::newRow("euro") << QByteArray(R"("\u20AC")") << true << QByteArray("\xe2\x82\xac");
    QTest::newRow("U+FFFF") << QByteArray(R"("\uffff")") << true << QByteArray("\xef\xbf\xbf");
    QTest::newRow("surrogate pair")
        << QByteArray(R"("\ud83d\ude00")") << true << QByteArray("\xf0\x9f\x98\x80");
    QTest::newRow("U+10000") << QByteArray(R"("\ud800\udc00")") << true
                             << QByteArray("\xf0\x90\x80\x80");
    QTest::newRow("U+10FFFF") << QByteArray(R"("\udbff\udfff")") << true
                              << QByteArray("\xf4\x8f\xbf\xbf");
    QTest::newRow("raw UTF-8 copied") << QByteArray("\"\xc3\xa9 \xf0\x9f\x98\x80\"") << true
                                      << QByteArray("\xc3\xa9 \xf0\x9f\x98\x80");
    QTest::newRow("mixed") << QByteArray(R"("x\ty\u0041z")") << true << QByteArray("x\tyAz");
    QTest::newRow("lone high surrogate")
        << QByteArray(R"("\ud83d!")") << true << QByteArray("\xef\xbf\xbd!");
    QTest::newRow("high then BMP escape") << QByteArray(R"("\ud83d\u0041")") << true
                                          << QByteArray("\xef\xbf\xbd"
                                                        "A");
    QTest::newRow("lone low surrogate")
        << QByteArray(R"("\ude00")") << true << QByteArray("\xef\xbf\xbd");
    QTest::newRow("not a string") << QByteArray("abc") << false << QByteArray();
    QTest::newRow("number") << QByteArray("1") << false << QByteArray();
    QTest::newRow("nothing") << QByteArray() << false << QByteArray();
    QTest::newRow("unterminated") << QByteArray(R"("abc)") << false << QByteArray();
    QTest::newRow("trailing bytes") << QByteArray(R"("a"b)") << false << QByteArray();
    QTest::newRow("two strings") << QByteArray(R"("a" "b")") << false << QByteArray();
    QTest::newRow("bad escape") << QByteArray(R"("\x")") << false << QByteArray();
    QTest::newRow("bad unicode escape") << QByteArray(R"("\u00g0")") << false << QByteArray();
    QTest::newRow("raw newline") << QByteArray("\"a\nb\"") << false << QByteArray();
}

void TestJson::stringValue() {
    QFETCH(QByteArray, raw);
    QFETCH(bool, valid);
    QFETCH(QByteArray, decoded);
    const std::optional<QByteArray> result = json::stringValue(raw);
    QCOMPARE(result.has_value(), valid);
    if (valid)
        QCOMPARE(*result, decoded);
}

void TestJson::integerValue_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<bool>("valid");
    QTest::addColumn<qint64>("value");
    const qint64 max = std::numeric_limits<qint64>::max();
    const qint64 min = std::numeric_limits<qint64>::min();
    QTest::newRow("zero") << QByteArray("0") << true << qint64(0);
    QTest::newRow("minus zero") << QByteArray("-0") << true << qint64(0);
    QTest::newRow("positive") << QByteArray("200") << true << qint64(200);
    QTest::newRow("negative") << QByteArray("-42") << true << qint64(-42);
    QTest::newRow("whitespace") << QByteArray(" 7\n") << true << qint64(7);
    QTest::newRow("max") << QByteArray("9223372036854775807") << true << max;
    QTest::newRow("min") << QByteArray("-9223372036854775808") << true << min;
    QTest::newRow("max + 1") << QByteArray("9223372036854775808") << false << qint64(0);
    QTest::newRow("min - 1") << QByteArray("-9223372036854775809") << false << qint64(0);
    QTest::newRow("max * 10") << QByteArray("92233720368547758070") << false << qint64(0);
    QTest::newRow("seed") << QByteArray("12345678901234567890") << false << qint64(0);
    QTest::newRow("2^64") << QByteArray("18446744073709551616") << false << qint64(0);
    QTest::newRow("fraction") << QByteArray("1.0") << false << qint64(0);
    QTest::newRow("exponent") << QByteArray("1e3") << false << qint64(0);
    QTest::newRow("zero fraction") << QByteArray("0.5") << false << qint64(0);
    QTest::newRow("leading zero") << QByteArray("01") << false << qint64(0);
    QTest::newRow("plus") << QByteArray("+1") << false << qint64(0);
    QTest::newRow("minus only") << QByteArray("-") << false << qint64(0);
    QTest::newRow("empty") << QByteArray() << false << qint64(0);
    QTest::newRow("string") << QByteArray(R"("7")") << false << qint64(0);
    QTest::newRow("true") << QByteArray("true") << false << qint64(0);
    QTest::newRow("two numbers") << QByteArray("1 2") << false << qint64(0);
    QTest::newRow("trailing letter") << QByteArray("12a") << false << qint64(0);
}

void TestJson::integerValue() {
    QFETCH(QByteArray, raw);
    QFETCH(bool, valid);
    QFETCH(qint64, value);
    const std::optional<qint64> result = json::integerValue(raw);
    QCOMPARE(result.has_value(), valid);
    if (valid)
        QCOMPARE(*result, value);
}

void TestJson::arrayLength_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<qsizetype>("length"); // -1: not a valid array
    QTest::newRow("empty") << QByteArray("[]") << qsizetype(0);
    QTest::newRow("empty with space") << QByteArray("[ \n ]") << qsizetype(0);
    QTest::newRow("one") << QByteArray("[1]") << qsizetype(1);
    QTest::newRow("three") << QByteArray("[1, \"a\", null]") << qsizetype(3);
    QTest::newRow("nested arrays count once") << QByteArray("[[1,2],[3]]") << qsizetype(2);
    QTest::newRow("commas inside") << QByteArray(R"([{"a":[1,2]},"x,y"])") << qsizetype(2);
    QTest::newRow("whitespace around") << QByteArray(" [1] ") << qsizetype(1);
    QTest::newRow("strings of tokens") << QByteArray(R"(["a","b","c","d"])") << qsizetype(4);
    QTest::newRow("trailing comma") << QByteArray("[1,]") << qsizetype(-1);
    QTest::newRow("leading comma") << QByteArray("[,1]") << qsizetype(-1);
    QTest::newRow("unterminated") << QByteArray("[1") << qsizetype(-1);
    QTest::newRow("open only") << QByteArray("[") << qsizetype(-1);
    QTest::newRow("object") << QByteArray("{}") << qsizetype(-1);
    QTest::newRow("string") << QByteArray(R"("[]")") << qsizetype(-1);
    QTest::newRow("garbage after") << QByteArray("[1]x") << qsizetype(-1);
    QTest::newRow("missing comma") << QByteArray("[1 2]") << qsizetype(-1);
    QTest::newRow("invalid element") << QByteArray("[01]") << qsizetype(-1);
    QTest::newRow("empty input") << QByteArray() << qsizetype(-1);
}

void TestJson::arrayLength() {
    QFETCH(QByteArray, raw);
    QFETCH(qsizetype, length);
    const std::optional<qsizetype> result = json::arrayLength(raw);
    QCOMPARE(result.has_value(), length >= 0);
    if (length >= 0)
        QCOMPARE(*result, length);
}

void TestJson::singleLine_data() {
    QTest::addColumn<QByteArray>("text");
    const QJsonObject request{
        {QStringLiteral("model"), QStringLiteral("gpt-4o")},
        {QStringLiteral("messages"),
         QJsonArray{
             QJsonObject{{QStringLiteral("role"), QStringLiteral("user")},
                         {QStringLiteral("content"), QStringLiteral("line 1\nline 2\r\n")}}}},
        {QStringLiteral("nested"), QJsonObject{{QStringLiteral("a"), QJsonArray{1, 2, 3}}}},
    };
    const QByteArray pretty = QJsonDocument(request).toJson(QJsonDocument::Indented);
    QTest::newRow("pretty LF") << pretty;
    QByteArray crlf = pretty;
    crlf.replace("\n", "\r\n");
    QTest::newRow("pretty CRLF") << crlf;
    QTest::newRow("compact") << QJsonDocument(request).toJson(QJsonDocument::Compact);
    QTest::newRow("big number and escapes")
        << QByteArray("{\n  \"seed\": 12345678901234567890,\r\n  \"s\": \"a\\nb\\r\\u000a\"\n}\n");
    QTest::newRow("whitespace only between tokens") << QByteArray("\r\n[\r1\n,\n\n2]\r\n");
}

void TestJson::singleLine() {
    QFETCH(QByteArray, text);
    QVERIFY(json::isValid(text));
    const QByteArray line = json::singleLine(text);
    QCOMPARE(line.size(), text.size());
    QVERIFY(!line.contains('\n'));
    QVERIFY(!line.contains('\r'));
    for (qsizetype i = 0; i < text.size(); ++i) {
        if (text.at(i) == '\n' || text.at(i) == '\r')
            QCOMPARE(line.at(i), ' ');
        else
            QCOMPARE(line.at(i), text.at(i));
    }
    QVERIFY(json::isValid(line));
    QJsonParseError error;
    const QJsonDocument before = QJsonDocument::fromJson(text, &error);
    QCOMPARE(error.error, QJsonParseError::NoError);
    QCOMPARE(QJsonDocument::fromJson(line), before);

    QByteArray appended = "prefix:";
    json::appendSingleLine(appended, text);
    QCOMPARE(appended, QByteArray("prefix:") + line);
}

void TestJson::quoted_data() {
    QTest::addColumn<QByteArray>("utf8");
    QByteArray controls;
    for (int c = 0; c < 0x20; ++c)
        controls.append(static_cast<char>(c));
    QTest::newRow("empty") << QByteArray();
    QTest::newRow("plain") << QByteArray("req-000001");
    QTest::newRow("quote") << QByteArray("a\"b");
    QTest::newRow("backslash") << QByteArray("C:\\path\\");
    QTest::newRow("short escapes") << QByteArray("\n\r\t\b\f");
    QTest::newRow("all control characters") << controls;
    QTest::newRow("slash and DEL") << QByteArray("</script>\x7f");
    QTest::newRow("UTF-8") << QByteArray("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    QTest::newRow("url") << QByteArray("/v1/chat/completions?x=1&y=%20");
    QTest::newRow("everything") << QByteArray("\"\\\x01 \xc3\xa9\n") + controls;
}

void TestJson::quoted() {
    QFETCH(QByteArray, utf8);
    const QByteArray token = json::quoted(utf8);
    QVERIFY(token.startsWith('"'));
    QVERIFY(token.endsWith('"'));
    json::ScanError error;
    QVERIFY2(json::isValid(token, &error), qPrintable(error.message));
    QCOMPARE(json::kindOf(token), std::optional<json::Kind>(json::Kind::String));
    QCOMPARE(json::stringValue(token), std::optional<QByteArray>(utf8));

    // Qt's own parser reads the same string back.
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson("[" + token + "]", &parseError);
    QCOMPARE(parseError.error, QJsonParseError::NoError);
    QCOMPARE(document.array().at(0).toString(), QString::fromUtf8(utf8));
    // And what Qt writes for it reads back the same through ours.
    const QByteArray qtToken =
        QJsonDocument(QJsonArray{QString::fromUtf8(utf8)}).toJson(QJsonDocument::Compact);
    QCOMPARE(json::stringValue(qtToken.mid(1, qtToken.size() - 2)),
             std::optional<QByteArray>(utf8));
}

void TestJson::quotedExact() {
    QCOMPARE(json::quoted("a\"b\\c\n\x01\x1f\t/\xc3\xa9"), QByteArray(R"("a\"b\\c\n\u0001\u001f\t/)"
                                                                      "\xc3\xa9\""));
    QCOMPARE(json::quoted(""), QByteArray(R"("")"));
    QCOMPARE(json::quoted(QByteArray("\0", 1)), QByteArray(R"("\u0000")"));
}

void TestJson::largeDocument() {
    // A 10 MB body (one long string and many small members) is scanned as one value.
    QByteArray text = R"({"input":")" + QByteArray(8 * 1024 * 1024, 'x') + R"(","list":[)";
    for (int i = 0; i < 100000; ++i)
        text += QByteArray::number(i) + ',';
    text += R"("end"]})";
    const auto members = json::objectMembers(text);
    QVERIFY(members);
    QCOMPARE(members->size(), 2);
    QCOMPARE(members->at(0).value.size(), qsizetype(8 * 1024 * 1024 + 2));
    QCOMPARE(json::arrayLength(members->at(1).value), std::optional<qsizetype>(100001));
}

void TestJson::duplicateKeys_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("duplicate"); // null: none
    QTest::newRow("none") << QByteArray(R"({"model":"a","stream":false,"input":"x"})")
                          << QByteArray();
    QTest::newRow("empty object") << QByteArray("{}") << QByteArray();
    QTest::newRow("model twice") << QByteArray(
                                        R"({"model":"gpt-4o-mini","messages":[],"model":"gpt-4o"})")
                                 << QByteArray("model");
    QTest::newRow("adjacent") << QByteArray(R"({"stream":false,"stream":true})")
                              << QByteArray("stream");
    QTest::newRow("escaped spelling of the same name")
        << QByteArray(R"({"model":"a","mo\u0064el":"b"})") << QByteArray("model");
    QTest::newRow("escaped solidus") << QByteArray(R"({"a/b":1,"a\/b":2})") << QByteArray("a/b");
    QTest::newRow("surrogate pair against raw UTF-8")
        << QByteArray("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}")
        << QByteArray("\xf0\x9f\x98\x80");
    QTest::newRow("the first repeat in document order")
        << QByteArray(R"({"a":1,"b":2,"b":3,"a":4})") << QByteArray("b");
    QTest::newRow("only nested duplicates")
        << QByteArray(R"({"a":{"x":1,"x":2},"b":[{"y":1,"y":2}]})") << QByteArray();
    QTest::newRow("names differing in case")
        << QByteArray(R"({"Model":"a","model":"b"})") << QByteArray();
    QTest::newRow("empty name twice") << QByteArray(R"({"":1,"":2})") << QByteArray("");
}

void TestJson::duplicateKeys() {
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, duplicate);
    const auto members = json::objectMembers(text);
    QVERIFY(members);
    const std::optional<QByteArray> found = json::firstDuplicateKey(*members);
    QCOMPARE(found.has_value(), !duplicate.isNull());
    if (found)
        QCOMPARE(*found, duplicate);
}

void TestJson::duplicateKeysAmongManyMembers() {
    // Past the pairwise comparison: the hash set finds it too, and the first repeat.
    QByteArray text = "{";
    for (int i = 0; i < 1000; ++i)
        text += "\"k" + QByteArray::number(i) + "\":" + QByteArray::number(i) + ',';
    QByteArray unique = text;
    unique.chop(1);
    unique += '}';
    auto members = json::objectMembers(unique);
    QVERIFY(members);
    QVERIFY(!json::firstDuplicateKey(*members));
    text += R"("k\u0037":1,"k3":2})";
    members = json::objectMembers(text);
    QVERIFY(members);
    QCOMPARE(json::firstDuplicateKey(*members), std::optional<QByteArray>("k7"));
}

void TestJson::manyMembersStayLinear() {
    // 200,000 distinct members: a quadratic check would make 2*10^10 comparisons.
    QByteArray text = "{";
    for (int i = 0; i < 200000; ++i)
        text += "\"member" + QByteArray::number(i) + "\":0,";
    text += R"("member123456":1})";
    const auto members = json::objectMembers(text);
    QVERIFY(members);
    QElapsedTimer timer;
    timer.start();
    QCOMPARE(json::firstDuplicateKey(*members), std::optional<QByteArray>("member123456"));
    QVERIFY2(timer.elapsed() < 5000, qPrintable(QString::number(timer.elapsed())));
}

void TestJson::leadingMembers_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QList<QByteArray>>("keys");
    const QByteArray line =
        R"({"id":"batch_req_1","custom_id":"r-1","response":{"status_code":200,"body":{"x":[1,2]}}})";
    QTest::newRow("whole line") << line << QList<QByteArray>{"id", "custom_id", "response"};
    QTest::newRow("cut inside the response")
        << line.left(line.indexOf("[1,")) << QList<QByteArray>{"id", "custom_id"};
    QTest::newRow("cut inside the custom_id")
        << line.left(line.indexOf("r-1") + 1) << QList<QByteArray>{"id"};
    QTest::newRow("cut after the custom_id's colon")
        << line.left(line.indexOf("\"r-1")) << QList<QByteArray>{"id"};
    QTest::newRow("cut right after the custom_id")
        << line.left(line.indexOf(",\"response")) << QList<QByteArray>{"id", "custom_id"};
    QTest::newRow("a number reaching the cut may go on")
        << QByteArray(R"({"a":"x","n":12)") << QList<QByteArray>{"a"};
    QTest::newRow("a literal reaching the cut may go on")
        << QByteArray(R"({"a":"x","t":true)") << QList<QByteArray>{"a"};
    QTest::newRow("a number before a comma is whole")
        << QByteArray(R"({"n":12,"b":)") << QList<QByteArray>{"n"};
    QTest::newRow("not an object") << QByteArray(R"(["a","b"])") << QList<QByteArray>{};
    QTest::newRow("nothing") << QByteArray() << QList<QByteArray>{};
    QTest::newRow("malformed member stops the scan")
        << QByteArray(R"({"a":1,"b" 2,"c":3})") << QList<QByteArray>{"a"};
    QTest::newRow("escaped key") << QByteArray(R"({"custom\u005fid":"r-1","x)")
                                 << QList<QByteArray>{"custom_id"};
}

void TestJson::leadingMembers() {
    QFETCH(QByteArray, text);
    QFETCH(QList<QByteArray>, keys);
    QList<QByteArray> found;
    for (const json::Member &member : json::leadingMembers(text)) {
        found.append(member.key);
        QVERIFY(json::isValid(member.value, json::Strictness::Lenient));
    }
    QCOMPARE(found, keys);
}

// What a streaming request becomes on its batch line: `stream` and `stream_options` taken out of
// the raw text with the comma and whitespace that belonged to them, everything else untouched.
void TestJson::withoutMembers_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("expected");
    QTest::newRow("none to remove") << QByteArray(R"({"model":"m","seed":12345678901234567890})")
                                    << QByteArray(R"({"model":"m","seed":12345678901234567890})");
    QTest::newRow("last") << QByteArray(R"({"model":"m","stream":true})")
                          << QByteArray(R"({"model":"m"})");
    QTest::newRow("first") << QByteArray(R"({"stream":true,"model":"m"})")
                           << QByteArray(R"({"model":"m"})");
    QTest::newRow("middle") << QByteArray(R"({"a":1,"stream":true,"b":2})")
                            << QByteArray(R"({"a":1,"b":2})");
    QTest::newRow("only") << QByteArray(R"({"stream":true})") << QByteArray("{}");
    QTest::newRow("only, spaced") << QByteArray("{ \"stream\" : true }") << QByteArray("{  }");
    QTest::newRow("both, first two")
        << QByteArray(R"({"stream":true,"stream_options":{"include_usage":true},"model":"m"})")
        << QByteArray(R"({"model":"m"})");
    QTest::newRow("both, apart")
        << QByteArray(R"({"stream":true,"model":"m","stream_options":{"include_usage":true}})")
        << QByteArray(R"({"model":"m"})");
    QTest::newRow("whitespace and newlines kept around the others")
        << QByteArray("{\n  \"model\": \"m\",\n  \"stream\": true,\n  \"n\": 2\n}\n")
        << QByteArray("{\n  \"model\": \"m\",\n  \"n\": 2\n}\n");
    QTest::newRow("space before the comma")
        << QByteArray("{\"model\":\"m\" , \"stream\" :true }") << QByteArray("{\"model\":\"m\" }");
    QTest::newRow("first, with whitespace after its comma")
        << QByteArray("{ \"stream\":true ,\r\n\t\"model\":\"m\"}")
        << QByteArray("{ \"model\":\"m\"}");
    QTest::newRow("escaped name") << QByteArray(R"({"model":"m","str\u0065am":true})")
                                  << QByteArray(R"({"model":"m"})");
    QTest::newRow("nested stream members stay")
        << QByteArray(R"({"model":"m","metadata":{"stream":"x"},"stream":true})")
        << QByteArray(R"({"model":"m","metadata":{"stream":"x"}})");
    QTest::newRow("a string value that looks like the member stays")
        << QByteArray(R"({"model":"\"stream\":true,","stream":false})")
        << QByteArray(R"({"model":"\"stream\":true,"})");
    QTest::newRow("leading whitespace before the object")
        << QByteArray(R"(  {"stream":true,"a":[1,2]})") << QByteArray(R"(  {"a":[1,2]})");
}

void TestJson::withoutMembers() {
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, expected);
    const auto out = json::withoutMembers(text, {"stream", "stream_options"});
    QVERIFY(out);
    QCOMPARE(*out, expected);
    QVERIFY(json::isValid(*out));
    // Nothing to remove from the result: it comes back unchanged.
    QCOMPARE(json::withoutMembers(*out, {"stream", "stream_options"}).value_or("x"), *out);
}

QTEST_GUILESS_MAIN(TestJson)
#include "tst_json.moc"
