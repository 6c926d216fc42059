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

// One GET on a fresh connection to 127.0.0.1:port (blocking, bounded by `timeout`); the
// connection is closed afterwards. For the bench's side measurements, not the load.
HttpResult httpGet(quint16 port, const QByteArray &path, std::chrono::milliseconds timeout);

} // namespace llmproxy::bench
