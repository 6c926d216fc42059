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

// Where the tokens file is looked for when --tokens-file is not given:
// QStandardPaths::GenericConfigLocation + "/llm-proxy/tokens".
QString defaultTokensFile();

} // namespace llmproxy
