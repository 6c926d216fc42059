// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The front door's rules, as pure functions of a request's target and headers (no I/O): which
// paths may be relayed, which Host names are served (DNS rebinding), which browser origins may
// call the proxy and what CORS answers they get. HttpFrontEnd::handleRequest applies them in
// this order: Host (421), Origin (403), path (400), then the proxy token.

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>

namespace llmproxy::frontdoor {

// What is wrong with a request target (path, optionally "?query", percent-encoding intact), or
// an empty string when it may be served and relayed as it is. Refused: dot segments ("." or
// "..", raw or percent-encoded in any case: /v1/../x, /v1/%2e%2e/x, /v1/%2E./x, /v1/./x);
// encoded slashes (%2f) and backslashes (raw or %5c) in the path; NUL, control bytes and DEL
// anywhere, raw or percent-encoded; a '%' not followed by two hex digits; a path that does
// not start with '/'.
QString targetProblem(QByteArrayView target);

// Whether a Host header value may be served: an IPv4 literal (dotted quad), an IPv6 literal
// in brackets, "localhost" (any case, a trailing dot allowed), or one of `allowedHosts` (names
// compared without case), each with or without ":port". A rebinding page always uses a name of
// its own, never an IP literal, so literals are safe. An empty value is refused.
bool hostAllowed(QByteArrayView host, const QList<QByteArray> &allowedHosts);

// The form an origin is compared in: "scheme://host[:port]", lower case, without a default
// port (80 for http, 443 for https) or a trailing slash. Empty if `origin` is not one.
QByteArray normalizeOrigin(QByteArrayView origin);

enum class OriginVerdict {
    NotCrossSite, // no Origin and not a cross-site fetch: a command-line or SDK client
    Allowed,      // an allowed origin: served, with CORS headers
    Refused,      // another web page (or Origin: null): 403, nothing sent upstream
};
// `origin` and `secFetchSite` are the header values (empty when absent). A request with an
// Origin is judged by it alone; without one, Sec-Fetch-Site "cross-site" or "same-site" (a page
// on another port of the same host) is refused; "same-origin", "none" or nothing pass.
OriginVerdict checkOrigin(QByteArrayView origin, QByteArrayView secFetchSite,
                          const QList<QByteArray> &allowedOrigins);

// CORS: the methods a preflight allows, and the request headers: a fixed list (what the
// official OpenAI and Anthropic SDKs send, Idempotency-Key, X-Batch, X-Provider-Authorization)
// plus any requested openai-*, anthropic-* or x-stainless-* header. `requested` is the
// preflight's Access-Control-Request-Headers value.
QByteArray corsAllowMethods();
QByteArray corsAllowHeaders(QByteArrayView requested);
// The answer headers a page may read (request ids, rate limits, the batch id).
QByteArray corsExposeHeaders();

} // namespace llmproxy::frontdoor
