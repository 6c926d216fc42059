// SPDX-License-Identifier: GPL-3.0-or-later
// The JSON scanner (proxy/api/json.*) on arbitrary bytes. The input is scanned in an allocation
// of its exact size, so a read past its end is an AddressSanitizer report. Invariants:
// - Strict validity implies lenient validity; a refusal has a message and an offset inside
//   the text.
// - objectMembers() succeeds exactly when the text is a valid object; every member's value is
//   a view into the text, valid on its own, of the kind reported; strings decode and survive
//   quoted() and back; integers agree with their digits; arrays have a length.
// - withoutMembers() (the batch line of a stream) keeps a valid object valid (strictly so if it
//   was), drops exactly the members named, and keeps the others' values byte for byte, in order.
// - singleLine() keeps a valid document valid, the same length, without CR or LF.
// - Against Qt's parser (QJsonDocument, objects and arrays only): what we accept strictly, Qt
//   accepts too (except numbers beyond a double, which Qt refuses); what Qt writes, we accept;
//   where both accept, the top-level keys, kinds, strings, integers and array length agree.
//   (Qt is laxer in places we are strict on purpose: a BOM, raw control characters in strings,
//   unknown escapes, "1." and ".5"; those are not compared. Qt also drops a raw U+FEFF that
//   starts a string: such strings and keys are not compared.)

#include "api/json.h"
#include "fuzzsupport.h"

#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonParseError>
#include <QJsonValue>
#include <QSet>
#include <QStringList>

namespace json = llmproxy::json;

namespace {

QByteArray context(QByteArrayView text) {
    return "\ninput: " + fuzz::printable(text);
}

QByteArrayView trimmed(QByteArrayView v) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!v.isEmpty() && space(v.front()))
        v = v.sliced(1);
    while (!v.isEmpty() && space(v.back()))
        v.chop(1);
    return v;
}

// RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool isNumberToken(QByteArrayView t) {
    qsizetype i = 0;
    const auto digits = [&] {
        const qsizetype start = i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9')
            ++i;
        return i > start;
    };
    if (i < t.size() && t[i] == '-')
        ++i;
    if (i < t.size() && t[i] == '0')
        ++i;
    else if (i >= t.size() || t[i] < '1' || t[i] > '9' || !digits())
        return false;
    if (i < t.size() && t[i] == '.' && (++i, !digits()))
        return false;
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        if (i < t.size() && (t[i] == '+' || t[i] == '-'))
            ++i;
        if (!digits())
            return false;
    }
    return i == t.size();
}

bool isIntegerToken(QByteArrayView t) {
    if (t.startsWith('-'))
        t = t.sliced(1);
    if (t.isEmpty() || (t.size() > 1 && t.front() == '0'))
        return false;
    return std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void checkString(QByteArrayView raw, QByteArrayView text) {
    const std::optional<QByteArray> decoded = json::stringValue(raw);
    FUZZ_CHECK(decoded.has_value(),
               "string member does not decode: " + fuzz::printable(raw) + context(text));
    const QByteArray again = json::quoted(*decoded);
    FUZZ_CHECK(json::isValid(again, json::Strictness::Lenient) &&
                   json::stringValue(again) == decoded,
               "quoted() does not round-trip " + fuzz::printable(*decoded) + " -> " +
                   fuzz::printable(again) + context(text));
}

void checkNumber(QByteArrayView raw, QByteArrayView text) {
    const QByteArrayView token = trimmed(raw);
    FUZZ_CHECK(isNumberToken(token),
               "accepted a number RFC 8259 refuses: " + fuzz::printable(token) + context(text));
    const std::optional<qint64> value = json::integerValue(raw);
    if (!isIntegerToken(token)) {
        FUZZ_CHECK(!value, "integerValue of a non-integer: " + fuzz::printable(token));
        return;
    }
    bool ok = false;
    const qint64 expected = token.toLongLong(&ok);
    FUZZ_CHECK(value.has_value() == ok && (!ok || *value == expected),
               "integerValue(" + fuzz::printable(token) +
                   ") = " + (value ? QByteArray::number(*value) : QByteArray("none")) +
                   ", expected " + (ok ? QByteArray::number(expected) : QByteArray("none")));
}

// A value span the scanner reported: valid alone, of its kind, and its parts check out.
void checkValue(QByteArrayView raw, json::Kind kind, QByteArrayView text) {
    FUZZ_CHECK(json::isValid(raw, json::Strictness::Lenient),
               "a member value is not valid alone: " + fuzz::printable(raw) + context(text));
    FUZZ_CHECK(json::kindOf(raw) == kind, "kindOf disagrees: " + fuzz::printable(raw));
    switch (kind) {
    case json::Kind::String:
        checkString(raw, text);
        break;
    case json::Kind::Number:
        checkNumber(raw, text);
        break;
    case json::Kind::Array:
        FUZZ_CHECK(json::arrayLength(raw).has_value(),
                   "arrayLength of a valid array: " + fuzz::printable(raw) + context(text));
        break;
    default:
        break;
    }
}

int depthOf(const QJsonValue &v) {
    int depth = 0;
    if (v.isArray()) {
        for (const QJsonValue &e : v.toArray())
            depth = std::max(depth, depthOf(e));
        return depth + 1;
    }
    if (v.isObject()) {
        const QJsonObject o = v.toObject();
        for (auto it = o.begin(); it != o.end(); ++it)
            depth = std::max(depth, depthOf(it.value()));
        return depth + 1;
    }
    return 0;
}

bool sameKind(json::Kind kind, const QJsonValue &v) {
    switch (kind) {
    case json::Kind::Object:
        return v.isObject();
    case json::Kind::Array:
        return v.isArray();
    case json::Kind::String:
        return v.isString();
    case json::Kind::Number:
        return v.isDouble();
    case json::Kind::True:
        return v.isBool() && v.toBool();
    case json::Kind::False:
        return v.isBool() && !v.toBool();
    case json::Kind::Null:
        return v.isNull();
    }
    return false;
}

void compareWithQt(QByteArrayView text, bool strict, bool lenient,
                   const std::optional<QList<json::Member>> &members) {
    QJsonParseError error{};
    const QJsonDocument doc = QJsonDocument::fromJson(text.toByteArray(), &error);
    if (doc.isNull()) {
        FUZZ_CHECK(!strict || error.error == QJsonParseError::IllegalNumber,
                   "we accept what Qt refuses (" + error.errorString().toUtf8() + " at " +
                       QByteArray::number(error.offset) + ")" + context(text));
        return;
    }
    const QJsonValue root = doc.isObject() ? QJsonValue(doc.object()) : QJsonValue(doc.array());
    if (depthOf(root) < json::MaxDepth) {
        const QByteArray written = doc.toJson(QJsonDocument::Compact);
        json::ScanError scanError;
        FUZZ_CHECK(json::isValid(written, json::Strictness::Lenient, &scanError),
                   "we refuse what Qt writes: " + fuzz::printable(written) + "\n" +
                       scanError.message.toUtf8() + context(text));
    }
    if (!lenient)
        return;
    if (doc.isArray()) {
        FUZZ_CHECK(json::arrayLength(text) == doc.array().size(),
                   "array length differs from Qt's" + context(text));
        return;
    }
    FUZZ_CHECK(members.has_value(), "Qt reads an object, we do not" + context(text));
    // Qt 6.4.2 cannot look up a parsed key of 17 or more Latin-1 characters with one above
    // U+007F (QJsonObject::value() misses it): read the members by iterating instead.
    const QJsonObject object = doc.object();
    QHash<QString, QJsonValue> qtMembers;
    for (auto it = object.begin(); it != object.end(); ++it)
        qtMembers.insert(it.key(), it.value());
    QSet<QString> keys;
    for (const json::Member &m : *members)
        keys.insert(fuzz::fromUtf8(m.key));
    // Unpaired surrogates (we decode them to U+FFFD, Qt keeps them) and leading U+FEFF (Qt
    // drops it) make keys incomparable.
    bool comparable = true;
    for (auto it = object.begin(); it != object.end(); ++it)
        comparable = comparable && QStringView(it.key()).isValidUtf16();
    for (const json::Member &m : *members)
        comparable = comparable && !fuzz::startsWithBom(m.key);
    if (!comparable)
        return;
    const QStringList qtKeys = object.keys();
    FUZZ_CHECK(keys == QSet<QString>(qtKeys.begin(), qtKeys.end()),
               "top-level keys differ from Qt's" + context(text));
    // Qt keeps the last of duplicate keys: compare each key's last member.
    for (qsizetype i = members->size() - 1; i >= 0; --i) {
        const json::Member &m = members->at(i);
        const QString key = fuzz::fromUtf8(m.key);
        if (!keys.remove(key))
            continue;
        const QJsonValue v = qtMembers.value(key);
        FUZZ_CHECK(sameKind(m.kind, v), "member kind differs from Qt's: " + m.key + context(text));
        const QByteArray string = json::stringValue(m.value).value_or(QByteArray());
        if (m.kind == json::Kind::String && QStringView(v.toString()).isValidUtf16() &&
            !fuzz::startsWithBom(string)) {
            FUZZ_CHECK(fuzz::fromUtf8(string) == v.toString(),
                       "string differs from Qt's: " + m.key + context(text));
        }
        if (const std::optional<qint64> n = json::integerValue(m.value);
            n && *n >= -(1LL << 53) && *n <= (1LL << 53)) {
            FUZZ_CHECK(v.toDouble() == double(*n),
                       "integer differs from Qt's: " + m.key + context(text));
        }
    }
}

// firstDuplicateKey() names the member whose second occurrence comes first; leadingMembers()
// reads an object cut anywhere: only whole members, each as objectMembers() reads them from
// the uncut text (a prefix of them), all of them when nothing is cut; on any bytes, only
// valid values.
void checkTruncated(QByteArrayView text, const std::optional<QList<json::Member>> &members) {
    if (members) {
        std::optional<QByteArray> expected;
        for (qsizetype i = 1; i < members->size() && !expected; ++i) {
            for (qsizetype j = 0; j < i && !expected; ++j) {
                if (members->at(j).key == members->at(i).key)
                    expected = members->at(i).key;
            }
        }
        FUZZ_CHECK(json::firstDuplicateKey(*members) == expected,
                   "firstDuplicateKey: expected " + expected.value_or("none") + context(text));
    }
    fuzz::Rng rng(text);
    for (int round = 0; round < 6; ++round) {
        const qsizetype cut = round == 0 ? text.size() : rng.between(0, text.size());
        const fuzz::Pieces piece(text.first(cut)); // its own allocation: ASan sees the cut
        const QByteArrayView cutText = piece.size() ? piece.at(0) : QByteArrayView("", 0);
        const QList<json::Member> leading = json::leadingMembers(cutText);
        for (qsizetype i = 0; i < leading.size(); ++i) {
            const json::Member &m = leading.at(i);
            FUZZ_CHECK(json::isValid(m.value, json::Strictness::Lenient) &&
                           json::kindOf(m.value) == m.kind,
                       "leadingMembers gave an invalid value" + context(cutText));
            if (!members)
                continue;
            FUZZ_CHECK(i < members->size() && members->at(i).key == m.key &&
                           members->at(i).value == m.value && members->at(i).kind == m.kind,
                       "leadingMembers(first " + QByteArray::number(cut) +
                           " bytes) is not a prefix of objectMembers()" + context(text));
        }
        FUZZ_CHECK(!members || cut < text.size() || leading.size() == members->size(),
                   "leadingMembers of a whole object missed members" + context(text));
    }
}

// withoutMembers() with the first member's name (and "stream"): the rest survive as they were.
void checkWithout(QByteArrayView text, const QList<json::Member> &members, bool strict) {
    QList<QByteArrayView> names{"stream"};
    if (!members.isEmpty())
        names.append(QByteArrayView(members.constFirst().key));
    const auto out = json::withoutMembers(text, names);
    FUZZ_CHECK(out.has_value(), "withoutMembers refused a valid object" + context(text));
    FUZZ_CHECK(json::isValid(*out, json::Strictness::Lenient) &&
                   (!strict || json::isValid(*out, json::Strictness::Strict)),
               "withoutMembers made invalid JSON" + context(text));
    const auto left = json::objectMembers(*out, json::Strictness::Lenient);
    FUZZ_CHECK(left.has_value(), "withoutMembers made a non-object" + context(text));
    QList<QByteArrayView> kept;
    for (const json::Member &m : members) {
        if (!names.contains(QByteArrayView(m.key)))
            kept.append(m.value);
    }
    FUZZ_CHECK(left->size() == kept.size(),
               "withoutMembers dropped the wrong members" + context(text));
    for (qsizetype i = 0; i < kept.size(); ++i) {
        FUZZ_CHECK(left->at(i).value == kept.at(i) &&
                       !names.contains(QByteArrayView(left->at(i).key)),
                   "withoutMembers changed a member it kept" + context(text));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const QByteArrayView text(reinterpret_cast<const char *>(data), qsizetype(size));

    json::ScanError strictError;
    json::ScanError lenientError;
    const bool strict = json::isValid(text, json::Strictness::Strict, &strictError);
    const bool lenient = json::isValid(text, json::Strictness::Lenient, &lenientError);
    FUZZ_CHECK(!strict || lenient, "strictly valid but not leniently" + context(text));
    for (const json::ScanError *e : {&strictError, &lenientError}) {
        if (e == &strictError ? strict : lenient)
            continue;
        FUZZ_CHECK(e->offset >= 0 && e->offset <= text.size() && !e->message.isEmpty(),
                   "error at " + QByteArray::number(e->offset) + ": " + e->message.toUtf8() +
                       context(text));
    }

    const QByteArrayView body = trimmed(text);
    const bool isObject = body.startsWith('{');
    const auto strictMembers = json::objectMembers(text, json::Strictness::Strict);
    const auto members = json::objectMembers(text, json::Strictness::Lenient);
    FUZZ_CHECK(strictMembers.has_value() == (strict && isObject),
               "objectMembers (strict) disagrees with isValid" + context(text));
    FUZZ_CHECK(members.has_value() == (lenient && isObject),
               "objectMembers (lenient) disagrees with isValid" + context(text));
    if (members) {
        for (const json::Member &m : *members) {
            FUZZ_CHECK(m.value.data() >= text.data() &&
                           m.value.data() + m.value.size() <= text.data() + text.size(),
                       "a member value outside the text" + context(text));
            const QByteArray key = json::quoted(m.key);
            FUZZ_CHECK(json::stringValue(key) == m.key, "key does not round-trip" + context(text));
            checkValue(m.value, m.kind, text);
        }
        checkWithout(text, *members, strict);
    }
    if (lenient) {
        const std::optional<json::Kind> kind = json::kindOf(text);
        FUZZ_CHECK(kind.has_value(), "no kind for a valid document" + context(text));
        checkValue(text, *kind, text);
        const QByteArray line = json::singleLine(text);
        FUZZ_CHECK(line.size() == text.size() && !line.contains('\n') && !line.contains('\r') &&
                       json::isValid(line, json::Strictness::Lenient) &&
                       json::isValid(line, json::Strictness::Strict) == strict,
                   "singleLine() changed the document" + context(text));
    }
    if (body.startsWith('{') || body.startsWith('['))
        compareWithQt(text, strict, lenient, members);
    checkTruncated(text, members);
    return 0;
}
