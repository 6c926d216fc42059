// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Proxy tokens: named secrets that clients present instead of a provider key. The name is the
// caller's identity (adoption and Idempotency-Key are scoped to it); the token never leaves
// the proxy. They come from a file of "name token" lines that only its owner may read (0600).

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>

#include <optional>

namespace llmproxy {

struct ProxyToken {
    QByteArray name;  // [A-Za-z0-9._@-]{1,64}
    QByteArray token; // 16 to 512 visible ASCII characters, no spaces
    friend bool operator==(const ProxyToken &, const ProxyToken &) = default;
};

// Parses the file's text: one "name token" pair a line (separated by spaces or tabs); blank
// lines and lines starting with '#' are ignored. Duplicate names or tokens, malformed lines and
// weak tokens are refused with a message naming the line (never repeating a token).
std::optional<QList<ProxyToken>> parseProxyTokens(QByteArrayView text, QString *error);

// Reads and parses `path`. Refused unless it is a regular file that only its owner may read or
// write (mode 0600 or 0400): the error then says how to fix it (chmod 600 FILE).
std::optional<QList<ProxyToken>> loadProxyTokens(const QString &path, QString *error);

// The token `presented` matches, or null. Takes the same time whichever token matches, or
// none: every token is compared, by SHA-256 digest, without stopping early.
const ProxyToken *findProxyToken(const QList<ProxyToken> &tokens, QByteArrayView presented);

// Whether `name` may name a token: 1 to 64 letters, digits or . _ @ -.
bool isProxyTokenName(QByteArrayView name);

// A new token from the system's CSPRNG: "llmp-" and 32 URL-safe base64 characters (192 bits).
QByteArray generateProxyToken();

// The file's text after its tokens become `tokens`: comments, blank lines and the lines of
// tokens that stay are kept in place (a changed token's line is rewritten), lines of tokens that
// are gone are dropped, new tokens are appended in their order.
QByteArray proxyTokensText(QByteArrayView previous, const QList<ProxyToken> &tokens);

// Writes `tokens` to `path` (through proxyTokensText over the file's current text) atomically,
// in a file that is owner-only (0600) from its creation on. False, with the reason in `error`,
// if it could not be written.
bool saveProxyTokens(const QString &path, const QList<ProxyToken> &tokens, QString *error);

// Where the tokens file is looked for when --tokens-file is not given:
// QStandardPaths::GenericConfigLocation + "/llm-proxy/tokens".
QString defaultTokensFile();

} // namespace llmproxy
