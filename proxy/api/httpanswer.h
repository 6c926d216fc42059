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

} // namespace llmproxy
