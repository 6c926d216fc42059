// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// A small strict JSON scanner (RFC 8259) that works on raw bytes and never converts numbers:
// request and response bodies pass through the proxy byte for byte, so a large integer
// such as a `seed` keeps every digit.
//
// The scanner makes a single pass without recursion (containers are tracked on a fixed stack,
// at most MaxDepth deep) and allocates nothing per byte. Whitespace is space, tab, CR and LF
// only; a leading byte order mark is refused (RFC 8259 §8.1 forbids adding one).
//
// Strings: raw control characters (< 0x20) are refused. With Strictness::Strict (the default)
// strings must also be valid UTF-8 (no overlong forms, no encoded surrogates, nothing above
// U+10FFFF) and \u escapes must not leave a surrogate unpaired: one such line in a batch input
// file can make the provider fail the whole batch, so we refuse it at the door. Provider output
// that we only relay is read with Strictness::Lenient, which lets any byte >= 0x80 and unpaired
// surrogate escapes through.

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>

#include <optional>

namespace llmproxy::json {

enum class Kind { Object, Array, String, Number, True, False, Null };

struct Member {
    QByteArray key;       // unescaped UTF-8
    QByteArrayView value; // raw bytes of the value, a view into the scanned text
    Kind kind;
};

struct ScanError {
    qsizetype offset = 0; // 0-based byte offset into the scanned text
    QString message;      // e.g. "unexpected character 'x' at byte 12" (offset included)
    // Written for users: the front end answers 400 with "Invalid JSON body: <message>".
};

// How deep objects and arrays may nest; deeper documents are refused, not overflowed.
inline constexpr int MaxDepth = 512;

enum class Strictness {
    Strict,  // strings must be valid UTF-8 without unpaired surrogate escapes
    Lenient, // any byte >= 0x80 and unpaired surrogate escapes are let through
};

// Is `text` exactly one valid JSON value (surrounding whitespace allowed)?
bool isValid(QByteArrayView text, ScanError *error = nullptr);
bool isValid(QByteArrayView text, Strictness strictness, ScanError *error = nullptr);

// The top-level members of a JSON object, in document order, with their raw value spans.
// nullopt (and *error filled) if `text` is not one valid JSON object. Nested values are fully
// validated. Duplicate keys are kept as they come.
std::optional<QList<Member>> objectMembers(QByteArrayView text, ScanError *error = nullptr);
std::optional<QList<Member>> objectMembers(QByteArrayView text, Strictness strictness,
                                           ScanError *error = nullptr);

// The first member named `key` in `members`, or nullptr.
const Member *find(const QList<Member> &members, QByteArrayView key);

// The first name (unescaped, so "mo\u0064el" is "model") that `members` holds twice: the one
// whose second occurrence comes first in document order; nullopt when every name is unique.
// RFC 8259 leaves duplicate names to the reader: the proxy reads the first, a provider may read
// the last, so a request body that has one is refused. Linear in the number of members.
std::optional<QByteArray> firstDuplicateKey(const QList<Member> &members);

// The top-level members at the start of a JSON object that may be cut short anywhere (the first
// bytes of a line too long to read whole): every member whose value ended before the cut, in
// document order. Stops at the first member that is cut or malformed. Read leniently. A number
// or literal that reaches the cut exactly is left out (it may go on past it).
QList<Member> leadingMembers(QByteArrayView truncatedObject);

// `object` (one valid JSON object) without its top-level members named `names` (compared after
// unescaping), every other byte as it was: a member after the first goes with the comma and
// whitespace before it, the first with the comma and whitespace after it, an only member alone
// (`{"stream":true}` becomes `{}`). nullopt if `object` is not one valid JSON object (read
// leniently). Every occurrence of a name goes, so the result is valid JSON without them.
std::optional<QByteArray> withoutMembers(QByteArrayView object, const QList<QByteArrayView> &names);

// The kind of a raw value (its first non-space byte decides); nullopt if empty or invalid start.
std::optional<Kind> kindOf(QByteArrayView rawValue);

// Decode a raw JSON string token (with quotes) to UTF-8; nullopt if not a valid string token.
// Lenient (it reads spans objectMembers already checked): an unpaired surrogate escape decodes
// to U+FFFD and raw bytes >= 0x80 are copied as they are.
std::optional<QByteArray> stringValue(QByteArrayView rawValue);

// A raw JSON number token that is an integer fitting in qint64; nullopt otherwise.
std::optional<qint64> integerValue(QByteArrayView rawValue);

// Number of elements of a raw JSON array; nullopt if not a valid array (checked leniently).
std::optional<qsizetype> arrayLength(QByteArrayView rawValue);

// The same JSON on a single line: raw CR and LF bytes (which valid JSON only allows as
// whitespace between tokens) become spaces. Everything else is untouched.
QByteArray singleLine(QByteArrayView validJson);
// The same, appended to `out` (no intermediate copy).
void appendSingleLine(QByteArray &out, QByteArrayView validJson);

// `s` as a JSON string token, quotes included.
QByteArray quoted(QByteArrayView utf8);

} // namespace llmproxy::json
