// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/json.h"

#include <QSet>

#include <bitset>
#include <limits>

namespace llmproxy::json {
namespace {

bool isWhitespace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

int hexDigit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool isContinuation(uchar c) {
    return (c & 0xC0) == 0x80;
}

// Length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or 0 if there is none.
int utf8SequenceLength(const uchar *p, qsizetype available) {
    const uchar lead = p[0];
    if (lead < 0x80)
        return 1;
    if (lead < 0xC2) // a continuation byte, or the lead of an overlong 2-byte form
        return 0;
    if (lead < 0xE0)
        return available >= 2 && isContinuation(p[1]) ? 2 : 0;
    if (lead < 0xF0) {
        if (available < 3)
            return 0;
        const uchar low = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
        const uchar high = lead == 0xED ? 0x9F : 0xBF; // no UTF-16 surrogates
        return p[1] >= low && p[1] <= high && isContinuation(p[2]) ? 3 : 0;
    }
    if (lead < 0xF5) {
        if (available < 4)
            return 0;
        const uchar low = lead == 0xF0 ? 0x90 : 0x80;  // no overlong forms
        const uchar high = lead == 0xF4 ? 0x8F : 0xBF; // nothing above U+10FFFF
        return p[1] >= low && p[1] <= high && isContinuation(p[2]) && isContinuation(p[3]) ? 4 : 0;
    }
    return 0;
}

void appendUtf8(QByteArray &out, char32_t cp) {
    if (cp < 0x80) {
        out.append(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.append(static_cast<char>(0xC0 | (cp >> 6)));
        out.append(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.append(static_cast<char>(0xE0 | (cp >> 12)));
        out.append(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.append(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.append(static_cast<char>(0xF0 | (cp >> 18)));
        out.append(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.append(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.append(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

constexpr char32_t ReplacementCharacter = 0xFFFD;

std::optional<Kind> kindOfByte(char c) {
    switch (c) {
    case '{':
        return Kind::Object;
    case '[':
        return Kind::Array;
    case '"':
        return Kind::String;
    case 't':
        return Kind::True;
    case 'f':
        return Kind::False;
    case 'n':
        return Kind::Null;
    default:
        if (c == '-' || isDigit(c))
            return Kind::Number;
        return std::nullopt;
    }
}

// One pass over the text. Containers are tracked on a fixed array, never by recursion.
class Scanner {
public:
    Scanner(QByteArrayView text, Strictness strictness, ScanError *error)
        : m_data(text.data())
        , m_size(text.size())
        , m_strict(strictness == Strictness::Strict)
        , m_error(error) {}

    qsizetype position() const { return m_pos; }
    bool atEnd() const { return m_pos >= m_size; }
    char peek() const { return m_data[m_pos]; }
    void advance() { ++m_pos; }

    void skipWhitespace() {
        while (m_pos < m_size && isWhitespace(m_data[m_pos]))
            ++m_pos;
    }

    // The start of a document: no byte order mark, something besides whitespace.
    bool startDocument() {
        if (m_size >= 3 && static_cast<uchar>(m_data[0]) == 0xEF &&
            static_cast<uchar>(m_data[1]) == 0xBB && static_cast<uchar>(m_data[2]) == 0xBF) {
            return fail(0, QStringLiteral("byte order mark (BOM) at byte 0: JSON must be sent "
                                          "as UTF-8 without a BOM"));
        }
        skipWhitespace();
        if (atEnd())
            return fail(m_pos, QStringLiteral("the document is empty (expected a JSON value)"));
        return true;
    }

    // Only whitespace may follow the value.
    bool finishDocument() {
        skipWhitespace();
        if (!atEnd())
            return unexpected(QStringLiteral("after the end of the JSON value"));
        return true;
    }

    // One complete value at the current position (whitespace before it is skipped), inside
    // `depth` containers that are already open.
    bool scanValue(int depth) {
        std::bitset<MaxDepth> isObject; // the open containers, innermost last
        int open = 0;
        for (;;) {
            skipWhitespace();
            if (atEnd())
                return unexpected(QStringLiteral("expected a value"));
            const char c = peek();
            switch (c) {
            case '{':
            case '[':
                if (depth + open >= MaxDepth) {
                    return fail(m_pos, QStringLiteral("nesting deeper than %1 levels at byte %2")
                                           .arg(MaxDepth)
                                           .arg(m_pos));
                }
                isObject[open++] = c == '{';
                ++m_pos;
                skipWhitespace();
                if (!atEnd() && peek() == (c == '{' ? '}' : ']')) {
                    ++m_pos; // an empty container is a complete value
                    --open;
                    break;
                }
                if (c == '{' && !scanKeyAndColon())
                    return false;
                continue; // scan the first element
            case '"':
                if (!scanString(nullptr))
                    return false;
                break;
            case 't':
                if (!scanLiteral("true", 4))
                    return false;
                break;
            case 'f':
                if (!scanLiteral("false", 5))
                    return false;
                break;
            case 'n':
                if (!scanLiteral("null", 4))
                    return false;
                break;
            default:
                if (c == '-' || isDigit(c)) {
                    if (!scanNumber())
                        return false;
                    break;
                }
                return unexpected(QStringLiteral("expected a value"));
            }

            // A value has just ended: close containers until one expects another element.
            for (;;) {
                if (open == 0)
                    return true;
                skipWhitespace();
                const bool inObject = isObject[open - 1];
                if (atEnd()) {
                    return unexpected(inObject ? QStringLiteral("expected ',' or '}' in object")
                                               : QStringLiteral("expected ',' or ']' in array"));
                }
                const char d = peek();
                if (d == ',') {
                    ++m_pos;
                    if (inObject) {
                        skipWhitespace();
                        if (!scanKeyAndColon())
                            return false;
                    }
                    break;
                }
                if (d == (inObject ? '}' : ']')) {
                    ++m_pos;
                    --open;
                    continue;
                }
                return unexpected(inObject ? QStringLiteral("expected ',' or '}' in object")
                                           : QStringLiteral("expected ',' or ']' in array"));
            }
        }
    }

    // An object key (at the current position) and the ':' after it; the key is decoded into
    // *key when given.
    bool scanKeyAndColon(QByteArray *key = nullptr) {
        if (atEnd() || peek() != '"')
            return unexpected(QStringLiteral("expected a string as object key"));
        if (!scanString(key))
            return false;
        skipWhitespace();
        if (atEnd() || peek() != ':')
            return unexpected(QStringLiteral("expected ':' after object key"));
        ++m_pos;
        return true;
    }

    // A string token starting at the current '"'. Decoded into *out (appended) when given.
    bool scanString(QByteArray *out) {
        const qsizetype start = m_pos;
        ++m_pos;
        qsizetype runStart = m_pos;
        for (;;) {
            while (m_pos < m_size) {
                const uchar c = static_cast<uchar>(m_data[m_pos]);
                if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                    break;
                ++m_pos;
            }
            if (atEnd()) {
                return fail(m_pos, QStringLiteral("unterminated string (it starts at byte %1) at "
                                                  "byte %2")
                                       .arg(start)
                                       .arg(m_pos));
            }
            const uchar c = static_cast<uchar>(m_data[m_pos]);
            if (c >= 0x80) {
                if (!m_strict) {
                    ++m_pos;
                    continue;
                }
                const int length = utf8SequenceLength(
                    reinterpret_cast<const uchar *>(m_data) + m_pos, m_size - m_pos);
                if (length == 0) {
                    return fail(m_pos,
                                QStringLiteral("invalid UTF-8 byte 0x%1 in string at byte %2")
                                    .arg(static_cast<uint>(c), 2, 16, QLatin1Char('0'))
                                    .arg(m_pos));
                }
                m_pos += length;
                continue;
            }
            if (out)
                out->append(m_data + runStart, m_pos - runStart);
            if (c == '"') {
                ++m_pos;
                return true;
            }
            if (c < 0x20) {
                return fail(m_pos, QStringLiteral("unescaped control character 0x%1 in string at "
                                                  "byte %2 (write it as an escape such as \\n)")
                                       .arg(static_cast<uint>(c), 2, 16, QLatin1Char('0'))
                                       .arg(m_pos));
            }
            if (!scanEscape(out))
                return false;
            runStart = m_pos;
        }
    }

    bool scanNumber() {
        const qsizetype start = m_pos;
        if (peek() == '-') {
            ++m_pos;
            if (atEnd() || !isDigit(peek()))
                return unexpected(QStringLiteral("expected a digit after '-'"));
        }
        if (peek() == '0') {
            ++m_pos;
            if (!atEnd() && isDigit(peek())) {
                return fail(start,
                            QStringLiteral("number with a leading zero at byte %1").arg(start));
            }
        } else {
            skipDigits();
        }
        if (!atEnd() && peek() == '.') {
            ++m_pos;
            if (atEnd() || !isDigit(peek()))
                return unexpected(QStringLiteral("expected a digit after the decimal point"));
            skipDigits();
        }
        if (!atEnd() && (peek() == 'e' || peek() == 'E')) {
            ++m_pos;
            if (!atEnd() && (peek() == '+' || peek() == '-'))
                ++m_pos;
            if (atEnd() || !isDigit(peek()))
                return unexpected(QStringLiteral("expected a digit in the exponent"));
            skipDigits();
        }
        return true;
    }

    bool unexpected(const QString &context) { return unexpectedAt(m_pos, context); }

    bool unexpectedAt(qsizetype offset, const QString &context) {
        QString what;
        if (offset >= m_size) {
            what = QStringLiteral("unexpected end of input");
        } else {
            const uchar c = static_cast<uchar>(m_data[offset]);
            if (c > 0x20 && c < 0x7F) {
                what = QStringLiteral("unexpected character '") +
                       QLatin1Char(static_cast<char>(c)) + QLatin1Char('\'');
            } else {
                what = QStringLiteral("unexpected byte 0x%1")
                           .arg(static_cast<uint>(c), 2, 16, QLatin1Char('0'));
            }
        }
        QString message = what + QStringLiteral(" at byte ") + QString::number(offset);
        if (!context.isEmpty())
            message += QStringLiteral(" (") + context + QLatin1Char(')');
        return fail(offset, message);
    }

    bool fail(qsizetype offset, const QString &message) {
        if (m_error) {
            m_error->offset = offset;
            m_error->message = message;
        }
        return false;
    }

private:
    void skipDigits() {
        while (m_pos < m_size && isDigit(m_data[m_pos]))
            ++m_pos;
    }

    bool scanLiteral(const char *word, qsizetype length) {
        for (qsizetype i = 0; i < length; ++i) {
            if (m_pos + i >= m_size || m_data[m_pos + i] != word[i]) {
                return unexpectedAt(
                    m_pos + i,
                    QStringLiteral("expected '%1'").arg(QLatin1StringView(word, length)));
            }
        }
        m_pos += length;
        return true;
    }

    // Four hex digits at the current position; -1 (error reported) if there are not.
    int scanHex4(qsizetype escapeStart) {
        int value = 0;
        for (int i = 0; i < 4; ++i) {
            const int digit = m_pos + i < m_size ? hexDigit(m_data[m_pos + i]) : -1;
            if (digit < 0) {
                fail(escapeStart,
                     QStringLiteral("invalid \\u escape at byte %1 (expected four hex digits)")
                         .arg(escapeStart));
                return -1;
            }
            value = value * 16 + digit;
        }
        m_pos += 4;
        return value;
    }

    // An escape sequence at the current '\'.
    bool scanEscape(QByteArray *out) {
        const qsizetype escapeStart = m_pos;
        ++m_pos;
        if (atEnd())
            return unexpected(QStringLiteral("unterminated escape sequence in string"));
        const char c = peek();
        char decoded = 0;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            decoded = c;
            break;
        case 'b':
            decoded = '\b';
            break;
        case 'f':
            decoded = '\f';
            break;
        case 'n':
            decoded = '\n';
            break;
        case 'r':
            decoded = '\r';
            break;
        case 't':
            decoded = '\t';
            break;
        case 'u':
            ++m_pos;
            return scanUnicodeEscape(escapeStart, out);
        default:
            return fail(escapeStart,
                        QStringLiteral("invalid escape sequence at byte %1 in string (allowed: "
                                       "\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
                            .arg(escapeStart));
        }
        ++m_pos;
        if (out)
            out->append(decoded);
        return true;
    }

    // The XXXX of a \uXXXX escape (and a low surrogate escape that may follow it).
    bool scanUnicodeEscape(qsizetype escapeStart, QByteArray *out) {
        const int unit = scanHex4(escapeStart);
        if (unit < 0)
            return false;
        char32_t codePoint = static_cast<char32_t>(unit);
        if (unit >= 0xD800 && unit <= 0xDBFF) {
            // A high surrogate must be followed by an escaped low surrogate.
            int low = -1;
            if (m_pos + 6 <= m_size && m_data[m_pos] == '\\' && m_data[m_pos + 1] == 'u') {
                int value = 0;
                for (int i = 2; i < 6 && value >= 0; ++i) {
                    const int digit = hexDigit(m_data[m_pos + i]);
                    value = digit < 0 ? -1 : value * 16 + digit;
                }
                if (value >= 0xDC00 && value <= 0xDFFF)
                    low = value;
            }
            if (low >= 0) {
                m_pos += 6;
                codePoint = 0x10000 + ((static_cast<char32_t>(unit) - 0xD800) << 10) +
                            (static_cast<char32_t>(low) - 0xDC00);
            } else if (m_strict) {
                return unpairedSurrogate(escapeStart, unit);
            } else {
                codePoint = ReplacementCharacter;
            }
        } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
            if (m_strict)
                return unpairedSurrogate(escapeStart, unit);
            codePoint = ReplacementCharacter;
        }
        if (out)
            appendUtf8(*out, codePoint);
        return true;
    }

    bool unpairedSurrogate(qsizetype escapeStart, int unit) {
        return fail(escapeStart, QStringLiteral("unpaired UTF-16 surrogate \\u%1 at byte %2")
                                     .arg(static_cast<uint>(unit), 4, 16, QLatin1Char('0'))
                                     .arg(escapeStart));
    }

    const char *m_data;
    qsizetype m_size;
    qsizetype m_pos = 0;
    bool m_strict;
    ScanError *m_error;
};

// `raw` without the JSON whitespace around it.
QByteArrayView trimmed(QByteArrayView raw) {
    qsizetype begin = 0;
    qsizetype end = raw.size();
    while (begin < end && isWhitespace(raw[begin]))
        ++begin;
    while (end > begin && isWhitespace(raw[end - 1]))
        --end;
    return raw.sliced(begin, end - begin);
}

} // namespace

bool isValid(QByteArrayView text, ScanError *error) {
    return isValid(text, Strictness::Strict, error);
}

bool isValid(QByteArrayView text, Strictness strictness, ScanError *error) {
    Scanner scanner(text, strictness, error);
    return scanner.startDocument() && scanner.scanValue(0) && scanner.finishDocument();
}

std::optional<QList<Member>> objectMembers(QByteArrayView text, ScanError *error) {
    return objectMembers(text, Strictness::Strict, error);
}

std::optional<QList<Member>> objectMembers(QByteArrayView text, Strictness strictness,
                                           ScanError *error) {
    Scanner scanner(text, strictness, error);
    if (!scanner.startDocument())
        return std::nullopt;
    if (scanner.peek() != '{') {
        scanner.unexpected(QStringLiteral("expected a JSON object"));
        return std::nullopt;
    }
    scanner.advance();
    QList<Member> members;
    scanner.skipWhitespace();
    if (!scanner.atEnd() && scanner.peek() == '}') {
        scanner.advance();
        if (!scanner.finishDocument())
            return std::nullopt;
        return members;
    }
    for (;;) {
        scanner.skipWhitespace();
        Member member;
        if (!scanner.scanKeyAndColon(&member.key))
            return std::nullopt;
        scanner.skipWhitespace();
        const qsizetype valueStart = scanner.position();
        if (!scanner.scanValue(1))
            return std::nullopt;
        member.value = text.sliced(valueStart, scanner.position() - valueStart);
        member.kind = *kindOfByte(text[valueStart]); // scanValue accepted it, so it is known
        members.append(std::move(member));
        scanner.skipWhitespace();
        if (scanner.atEnd()) {
            scanner.unexpected(QStringLiteral("expected ',' or '}' in object"));
            return std::nullopt;
        }
        if (scanner.peek() == ',') {
            scanner.advance();
            continue;
        }
        if (scanner.peek() == '}') {
            scanner.advance();
            break;
        }
        scanner.unexpected(QStringLiteral("expected ',' or '}' in object"));
        return std::nullopt;
    }
    if (!scanner.finishDocument())
        return std::nullopt;
    return members;
}

const Member *find(const QList<Member> &members, QByteArrayView key) {
    for (const Member &member : members) {
        if (QByteArrayView(member.key) == key)
            return &member;
    }
    return nullptr;
}

std::optional<QByteArray> firstDuplicateKey(const QList<Member> &members) {
    // Request bodies have a handful of members: compare pairwise. Beyond that, a hash set
    // (Qt's hash is seeded per process, so crafted names cannot make it degrade).
    constexpr qsizetype PairwiseLimit = 16;
    if (members.size() <= PairwiseLimit) {
        for (qsizetype i = 1; i < members.size(); ++i) {
            for (qsizetype j = 0; j < i; ++j) {
                if (members.at(j).key == members.at(i).key)
                    return members.at(i).key;
            }
        }
        return std::nullopt;
    }
    QSet<QByteArrayView> seen;
    seen.reserve(members.size());
    for (const Member &member : members) {
        const QByteArrayView key(member.key);
        if (seen.contains(key))
            return member.key;
        seen.insert(key);
    }
    return std::nullopt;
}

QList<Member> leadingMembers(QByteArrayView text) {
    QList<Member> members;
    Scanner scanner(text, Strictness::Lenient, nullptr);
    scanner.skipWhitespace();
    if (scanner.atEnd() || scanner.peek() != '{')
        return members;
    scanner.advance();
    for (;;) {
        scanner.skipWhitespace();
        Member member;
        if (!scanner.scanKeyAndColon(&member.key))
            return members;
        scanner.skipWhitespace();
        const qsizetype valueStart = scanner.position();
        if (!scanner.scanValue(1))
            return members;
        const qsizetype valueEnd = scanner.position();
        const std::optional<Kind> kind = kindOfByte(text[valueStart]);
        const bool selfDelimited =
            kind == Kind::Object || kind == Kind::Array || kind == Kind::String;
        if (!kind || (!selfDelimited && valueEnd >= text.size()))
            return members; // a number or literal that the cut may have shortened
        member.value = text.sliced(valueStart, valueEnd - valueStart);
        member.kind = *kind;
        members.append(std::move(member));
        scanner.skipWhitespace();
        if (scanner.atEnd() || scanner.peek() != ',')
            return members;
        scanner.advance();
    }
}

std::optional<QByteArray> withoutMembers(QByteArrayView object,
                                         const QList<QByteArrayView> &names) {
    QByteArray text = object.toByteArray();
    // One member at a time, scanning again after each cut (the names are few and rare).
    for (;;) {
        const auto members = objectMembers(text, Strictness::Lenient);
        if (!members)
            return std::nullopt;
        qsizetype doomed = -1;
        for (qsizetype i = 0; i < members->size() && doomed < 0; ++i) {
            if (names.contains(QByteArrayView(members->at(i).key)))
                doomed = i;
        }
        if (doomed < 0)
            return text;
        const auto valueEnd = [&](qsizetype i) {
            const QByteArrayView value = members->at(i).value;
            return qsizetype(value.data() - text.constData()) + value.size();
        };
        // Where member i's key starts: after '{' (or the previous value and its comma) and
        // whitespace.
        const auto keyStart = [&](qsizetype i) {
            qsizetype pos = i == 0 ? qsizetype(text.indexOf('{')) + 1 : valueEnd(i - 1);
            while (pos < text.size() && isWhitespace(text[pos]))
                ++pos;
            if (i > 0 && pos < text.size() && text[pos] == ',')
                ++pos;
            while (pos < text.size() && isWhitespace(text[pos]))
                ++pos;
            return pos;
        };
        qsizetype from = 0;
        qsizetype to = 0;
        if (doomed > 0) {
            from = valueEnd(doomed - 1);
            to = valueEnd(doomed);
        } else if (members->size() > 1) {
            from = keyStart(0);
            to = keyStart(1);
        } else {
            from = keyStart(0);
            to = valueEnd(0);
        }
        text.remove(from, to - from);
    }
}

std::optional<Kind> kindOf(QByteArrayView rawValue) {
    const QByteArrayView value = trimmed(rawValue);
    if (value.isEmpty())
        return std::nullopt;
    return kindOfByte(value.front());
}

std::optional<QByteArray> stringValue(QByteArrayView rawValue) {
    const QByteArrayView token = trimmed(rawValue);
    if (token.isEmpty() || token.front() != '"')
        return std::nullopt;
    Scanner scanner(token, Strictness::Lenient, nullptr);
    QByteArray decoded;
    decoded.reserve(token.size() - 2);
    if (!scanner.scanString(&decoded) || !scanner.atEnd())
        return std::nullopt;
    return decoded;
}

std::optional<qint64> integerValue(QByteArrayView rawValue) {
    const QByteArrayView token = trimmed(rawValue);
    qsizetype i = 0;
    const bool negative = !token.isEmpty() && token.front() == '-';
    if (negative)
        ++i;
    if (i >= token.size() || !isDigit(token[i]))
        return std::nullopt;
    if (token[i] == '0' && i + 1 < token.size())
        return std::nullopt; // a leading zero, a fraction or an exponent
    const quint64 limit = negative ? static_cast<quint64>(std::numeric_limits<qint64>::max()) + 1
                                   : std::numeric_limits<qint64>::max();
    quint64 value = 0;
    for (; i < token.size(); ++i) {
        if (!isDigit(token[i]))
            return std::nullopt;
        const quint64 digit = static_cast<quint64>(token[i] - '0');
        if (value > (limit - digit) / 10)
            return std::nullopt;
        value = value * 10 + digit;
    }
    if (!negative)
        return static_cast<qint64>(value);
    if (value == static_cast<quint64>(std::numeric_limits<qint64>::max()) + 1)
        return std::numeric_limits<qint64>::min();
    return -static_cast<qint64>(value);
}

std::optional<qsizetype> arrayLength(QByteArrayView rawValue) {
    Scanner scanner(rawValue, Strictness::Lenient, nullptr);
    scanner.skipWhitespace();
    if (scanner.atEnd() || scanner.peek() != '[')
        return std::nullopt;
    scanner.advance();
    scanner.skipWhitespace();
    qsizetype count = 0;
    if (!scanner.atEnd() && scanner.peek() == ']') {
        scanner.advance();
    } else {
        for (;;) {
            if (!scanner.scanValue(1))
                return std::nullopt;
            ++count;
            scanner.skipWhitespace();
            if (scanner.atEnd())
                return std::nullopt;
            const char c = scanner.peek();
            scanner.advance();
            if (c == ']')
                break;
            if (c != ',')
                return std::nullopt;
        }
    }
    if (!scanner.finishDocument())
        return std::nullopt;
    return count;
}

QByteArray singleLine(QByteArrayView validJson) {
    QByteArray out;
    appendSingleLine(out, validJson);
    return out;
}

void appendSingleLine(QByteArray &out, QByteArrayView validJson) {
    const qsizetype start = out.size();
    out.append(validJson.data(), validJson.size());
    char *p = out.data() + start;
    char *const end = out.data() + out.size();
    for (; p != end; ++p) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
}

QByteArray quoted(QByteArrayView utf8) {
    static constexpr char Hex[] = "0123456789abcdef";
    QByteArray out;
    out.reserve(utf8.size() + 2);
    out.append('"');
    qsizetype runStart = 0;
    for (qsizetype i = 0; i < utf8.size(); ++i) {
        const uchar c = static_cast<uchar>(utf8[i]);
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out.append(utf8.data() + runStart, i - runStart);
        runStart = i + 1;
        switch (c) {
        case '"':
            out.append("\\\"", 2);
            break;
        case '\\':
            out.append("\\\\", 2);
            break;
        case '\b':
            out.append("\\b", 2);
            break;
        case '\f':
            out.append("\\f", 2);
            break;
        case '\n':
            out.append("\\n", 2);
            break;
        case '\r':
            out.append("\\r", 2);
            break;
        case '\t':
            out.append("\\t", 2);
            break;
        default: {
            const char escape[] = {'\\', 'u', '0', '0', Hex[c >> 4], Hex[c & 0xF]};
            out.append(escape, sizeof(escape));
            break;
        }
        }
    }
    out.append(utf8.data() + runStart, utf8.size() - runStart);
    out.append('"');
    return out;
}

} // namespace llmproxy::json
