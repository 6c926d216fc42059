// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QPair>
#include <QString>

namespace llmproxy {

using HeaderList = QList<QPair<QByteArray, QByteArray>>;

// A complete HTTP answer for one client: what the front end writes back.
struct HttpAnswer {
    int status = 200;
    HeaderList headers; // besides Content-Type / Content-Length, which the writer adds
    QByteArray contentType = QByteArrayLiteral("application/json");
    QByteArray body;
    // True when the proxy made this answer itself (not the provider's own body).
    bool synthesized = false;
};

// A header name is a token (RFC 9110 §5.6.2): letters, digits and !#$%&'*+-.^_`|~, not empty.
bool isHeaderName(QByteArrayView name);
// A header value holds no CR, LF or NUL (RFC 9110 §5.5), so it cannot end its line early and
// start a header (or a body) of its own. Bytes from the provider or the upstream are checked.
bool isSafeHeaderValue(QByteArrayView value);
// Both: the header can be written as it is.
inline bool isSafeHeader(QByteArrayView name, QByteArrayView value) {
    return isHeaderName(name) && isSafeHeaderValue(value);
}

// Kinds of error body, as the OpenAI API spells them in `error.type`.
namespace ErrorType {
inline constexpr char InvalidRequest[] = "invalid_request_error";
inline constexpr char Authentication[] = "authentication_error";
inline constexpr char NotFound[] = "not_found_error";
inline constexpr char Server[] = "server_error";
inline constexpr char RateLimit[] = "rate_limit_error";
} // namespace ErrorType

// The one place that turns a failure into an OpenAI-shaped HTTP answer:
// {"error":{"message":...,"type":...,"param":...|null,"code":...|null}} with the given status.
// Marked synthesized. Empty `param`/`code` become JSON null.
HttpAnswer errorAnswer(int status, const QString &message, const char *type,
                       const QByteArray &code = {}, const QByteArray &param = {});

// ---- Anthropic's API (/v1/messages and what is under it) ----------------------------------
// The endpoint the proxy batches through Message Batches.
inline constexpr char AnthropicMessagesPath[] = "/v1/messages";
// A path of Anthropic's API that no OpenAI client uses: /v1/messages and everything under it
// (count_tokens, batches), and the legacy /v1/complete. Errors on these are Anthropic-shaped.
// `path` is a URL's path (no query): its dot segments are resolved first (RFC 3986 §5.2.4), so
// /v1/messages/../models is not one and /v1/models/../messages is. The one rule that decides
// both where a request goes and the shape of the proxy's errors on it.
bool isAnthropicPath(QByteArrayView path);
// The same for a request target as the request line carries it (origin form with its query
// and fragment, or absolute form), read as Qt's HTTP server reads it (QUrl::fromEncoded:
// "/v1/%6Dessages" is /v1/messages, "//v1/messages" is /messages on host v1): for answers the
// front door makes before Qt has parsed the request.
bool isAnthropicTarget(QByteArrayView target);
// The same for the first bytes of a request (leading blank lines allowed; the request line may
// be cut short, and is then judged by what came of it): "POST /v1/messages HTTP/1.1...".
bool isAnthropicRequestStart(QByteArrayView head);
// The Anthropic error type of an HTTP status: 400 invalid_request_error, 401
// authentication_error, 403 permission_error, 404 not_found_error, 408 and 504 timeout_error,
// 413 request_too_large, 429 rate_limit_error, 529 overloaded_error; other 4xx and the
// refusals of what the client sent (501 unsupported framing, 505 HTTP version)
// invalid_request_error, anything else api_error.
QByteArray anthropicErrorType(int status);
// The one place that makes an Anthropic-shaped answer:
// {"type":"error","error":{"type":...,"message":...}} with the given status, marked synthesized.
// `type` empty: anthropicErrorType(status).
HttpAnswer anthropicErrorAnswer(int status, const QString &message, QByteArrayView type = {});
// An error answer for an Anthropic client: an OpenAI-shaped error body (one the proxy made,
// errorAnswer()) becomes Anthropic's shape with the same status, message and headers; anything
// else (a success, an answer already in Anthropic's shape, a provider's own body) is returned
// as it is.
HttpAnswer asAnthropicError(const HttpAnswer &answer);

} // namespace llmproxy
