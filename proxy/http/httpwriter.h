// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Serialising HTTP/1.1 answers by hand: we write straight to the socket, so any status code,
// header and framing is possible and nothing refers to Qt's per-connection request object.

#include "api/httpanswer.h"

#include <QByteArray>
#include <QByteArrayView>

namespace llmproxy::http {

QByteArray reasonPhrase(int status);
// "HTTP/1.1 <status> <reason>\r\n"
QByteArray statusLine(int status);
// A whole answer with Content-Type, Content-Length (none for 1xx, 204 and 304, which never
// have a body) and Date (RFC 9110 §6.6.1); "Connection: close" unless keepAlive.
// `headOnly` leaves out the body (a HEAD request) but keeps its Content-Length.
// A header of `answer` that isSafeHeader() (httpanswer.h) refuses is left out (it may carry bytes
// from the provider, such as a request_id), and so is a Date of its own.
QByteArray serialize(const HttpAnswer &answer, bool keepAlive, bool headOnly = false);

// A time as an IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
QByteArray imfFixdate(qint64 secondsSinceEpoch);
// The Date header's value for the current second, formatted at most once a second per thread.
QByteArray currentDate();
// One chunk of a chunked body (an empty view gives nothing: use lastChunk()).
QByteArray chunk(QByteArrayView data);
inline QByteArray lastChunk() {
    return QByteArrayLiteral("0\r\n\r\n");
}

// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
bool isHopByHop(QByteArrayView lowerCaseName);

} // namespace llmproxy::http
