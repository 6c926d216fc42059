// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>

#include <chrono>

namespace llmproxy::bench {

struct HttpResult {
    bool ok = false; // a complete response arrived
    int status = 0;
    QByteArray body;
    QByteArray error;                    // why not ok
    std::chrono::nanoseconds elapsed{0}; // from socket() to the last byte of the response
};

// One request on a fresh connection to 127.0.0.1:port (blocking, bounded by `timeout`), with
// `Connection: close`; a non-empty `body` goes with a Content-Length, a JSON content type
// and a placeholder bearer key. For the bench's side measurements, not the load.
HttpResult httpRequest(quint16 port, const QByteArray &method, const QByteArray &path,
                       const QByteArray &body, std::chrono::milliseconds timeout);
HttpResult httpGet(quint16 port, const QByteArray &path, std::chrono::milliseconds timeout);

} // namespace llmproxy::bench
