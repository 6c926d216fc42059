// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/frontdoor.h"

#include <QHostAddress>

#include <array>

namespace llmproxy::frontdoor {

namespace {

int hexValue(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool isControl(unsigned char c) {
    return c < 0x20 || c == 0x7f;
}

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? char(c + ('a' - 'A')) : c;
}

QByteArray lowered(QByteArrayView text) {
    QByteArray out(text.size(), Qt::Uninitialized);
    for (qsizetype i = 0; i < text.size(); ++i)
        out[i] = lower(text[i]);
    return out;
}

// "." or "..", each dot raw or as %2e / %2E.
bool isDotSegment(QByteArrayView segment) {
    int dots = 0;
    for (qsizetype i = 0; i < segment.size();) {
        if (segment[i] == '.') {
            ++i;
        } else if (segment[i] == '%' && i + 2 < segment.size() && segment[i + 1] == '2' &&
                   lower(segment[i + 2]) == 'e') {
            i += 3;
        } else {
            return false;
        }
        if (++dots > 2)
            return false;
    }
    return dots > 0;
}

bool allDigits(QByteArrayView text) {
    if (text.isEmpty())
        return false;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
    }
    return true;
}

// A port after the host: one to five digits, at most 65535.
bool isPort(QByteArrayView text) {
    return allDigits(text) && text.size() <= 5 && text.toInt() <= 65535;
}

bool isDottedQuad(QByteArrayView text) {
    int parts = 0;
    qsizetype start = 0;
    for (qsizetype i = 0; i <= text.size(); ++i) {
        if (i < text.size() && text[i] != '.')
            continue;
        const QByteArrayView part = text.sliced(start, i - start);
        if (!allDigits(part) || part.size() > 3 || part.toInt() > 255)
            return false;
        ++parts;
        start = i + 1;
    }
    return parts == 4;
}

constexpr std::array FixedAllowHeaders{
    "authorization",  "content-type",
    "accept",         "idempotency-key",
    "x-batch",        "x-api-key",
    "openai-beta",    "openai-organization",
    "openai-project", "x-provider-authorization",
    "cache-control",
};

constexpr std::array AllowedHeaderPrefixes{"openai-", "anthropic-", "x-stainless-"};

} // namespace

QString targetProblem(QByteArrayView target) {
    if (target.isEmpty() || target.front() != '/')
        return QStringLiteral("The request target must be a path starting with /");
    const qsizetype queryAt = target.indexOf('?');
    const qsizetype pathEnd = queryAt < 0 ? target.size() : queryAt;
    for (qsizetype i = 0; i < target.size(); ++i) {
        const auto c = static_cast<unsigned char>(target[i]);
        const bool inPath = i < pathEnd;
        if (isControl(c))
            return QStringLiteral("The request target contains a control character");
        if (c == '\\' && inPath)
            return QStringLiteral("The request path contains a backslash");
        if (c != '%')
            continue;
        const int high = i + 1 < target.size() ? hexValue(target[i + 1]) : -1;
        const int low = i + 2 < target.size() ? hexValue(target[i + 2]) : -1;
        if (high < 0 || low < 0)
            return QStringLiteral("The request target has a '%' that is not followed by two "
                                  "hexadecimal digits");
        const auto decoded = static_cast<unsigned char>(high * 16 + low);
        if (isControl(decoded))
            return QStringLiteral("The request target contains an encoded control character");
        if (inPath && decoded == '/')
            return QStringLiteral("The request path contains an encoded slash (%2F)");
        if (inPath && decoded == '\\')
            return QStringLiteral("The request path contains an encoded backslash (%5C)");
        i += 2;
    }
    const QByteArrayView path = target.first(pathEnd);
    qsizetype start = 1;
    for (qsizetype i = 1; i <= path.size(); ++i) {
        if (i < path.size() && path[i] != '/')
            continue;
        if (isDotSegment(path.sliced(start, i - start)))
            return QStringLiteral("The request path contains a dot segment (. or ..): llm-proxy "
                                  "serves and relays only plain paths under /v1");
        start = i + 1;
    }
    return QString();
}

bool hostAllowed(QByteArrayView host, const QList<QByteArray> &allowedHosts) {
    host = host.trimmed();
    if (host.isEmpty())
        return false;
    if (host.front() == '[') {
        const qsizetype close = host.indexOf(']');
        if (close < 0)
            return false;
        const QByteArrayView rest = host.sliced(close + 1);
        if (!rest.isEmpty() && !(rest.front() == ':' && isPort(rest.sliced(1))))
            return false;
        QHostAddress address;
        return address.setAddress(QString::fromLatin1(host.sliced(1, close - 1))) &&
               address.protocol() == QAbstractSocket::IPv6Protocol;
    }
    QByteArrayView name = host;
    const qsizetype colon = host.indexOf(':');
    if (colon >= 0) {
        if (!isPort(host.sliced(colon + 1)))
            return false;
        name = host.first(colon);
    }
    if (isDottedQuad(name))
        return true;
    QByteArray lowerName = lowered(name);
    if (lowerName.endsWith('.'))
        lowerName.chop(1);
    if (lowerName.isEmpty())
        return false;
    // RFC 6761: localhost and every name under it are loopback; browsers resolve them so
    // themselves, whatever DNS says.
    if (lowerName == "localhost" || lowerName.endsWith(".localhost"))
        return true;
    const QByteArray lowerHost = lowered(host);
    for (const QByteArray &allowed : allowedHosts) {
        const QByteArray entry = lowered(allowed.trimmed());
        if (!entry.isEmpty() && (entry == lowerName || entry == lowerHost))
            return true;
    }
    return false;
}

QByteArray normalizeOrigin(QByteArrayView origin) {
    const QByteArray text = lowered(origin.trimmed());
    const qsizetype sep = text.indexOf("://");
    if (sep <= 0)
        return {};
    const QByteArray scheme = text.first(sep);
    for (char c : scheme) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
            return {};
    }
    QByteArray authority = text.sliced(sep + 3);
    if (authority.endsWith('/'))
        authority.chop(1);
    if (authority.isEmpty())
        return {};
    for (char c : authority) {
        if (c == '/' || c == '?' || c == '#' || c == '@' || isControl(static_cast<uchar>(c)) ||
            c == ' ')
            return {};
    }
    // The port, if any: after the last ':' that is not inside an IPv6 literal.
    const qsizetype bracket = authority.lastIndexOf(']');
    const qsizetype colon = authority.lastIndexOf(':');
    if (colon > bracket) {
        const QByteArray port = authority.sliced(colon + 1);
        if (!isPort(port))
            return {};
        if ((scheme == "http" && port.toInt() == 80) || (scheme == "https" && port.toInt() == 443))
            authority.truncate(colon);
    }
    if (authority.isEmpty() || authority.front() == ':')
        return {};
    return scheme + "://" + authority;
}

OriginVerdict checkOrigin(QByteArrayView origin, QByteArrayView secFetchSite,
                          const QList<QByteArray> &allowedOrigins) {
    if (!origin.trimmed().isEmpty()) {
        const QByteArray normalized = normalizeOrigin(origin);
        if (normalized.isEmpty())
            return OriginVerdict::Refused; // "null" (sandboxed frames, file://) and garbage
        for (const QByteArray &allowed : allowedOrigins) {
            if (normalizeOrigin(allowed) == normalized)
                return OriginVerdict::Allowed;
        }
        return OriginVerdict::Refused;
    }
    const QByteArray site = lowered(secFetchSite.trimmed());
    if (site == "cross-site" || site == "same-site")
        return OriginVerdict::Refused;
    return OriginVerdict::NotCrossSite;
}

QByteArray corsAllowMethods() {
    return QByteArrayLiteral("GET, POST, DELETE, OPTIONS");
}

QByteArray corsAllowHeaders(QByteArrayView requested) {
    QList<QByteArray> names;
    for (const char *name : FixedAllowHeaders)
        names.append(QByteArray(name));
    for (const QByteArray &part : requested.toByteArray().split(',')) {
        const QByteArray name = lowered(part.trimmed());
        if (name.isEmpty() || names.contains(name))
            continue;
        bool tokenChars = true;
        for (char c : name) {
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                tokenChars = false;
        }
        if (!tokenChars)
            continue;
        for (const char *prefix : AllowedHeaderPrefixes) {
            if (name.startsWith(prefix)) {
                names.append(name);
                break;
            }
        }
    }
    return names.join(", ");
}

QByteArray corsExposeHeaders() {
    return QByteArrayLiteral("x-request-id, openai-processing-ms, openai-version, "
                             "openai-organization, retry-after, x-should-retry, "
                             "x-ratelimit-limit-requests, x-ratelimit-limit-tokens, "
                             "x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, "
                             "x-ratelimit-reset-requests, x-ratelimit-reset-tokens, "
                             "x-llm-proxy-batch-id, x-llm-proxy-fallback, x-llm-proxy-cache");
}

} // namespace llmproxy::frontdoor
