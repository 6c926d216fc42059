// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Counts open connections, all front ends (I/O threads) together and per source address, so
// that one client, or all of them, cannot take every file descriptor the process has.

#include <QByteArray>
#include <QHash>
#include <QHostAddress>

#include <mutex>

namespace llmproxy::http {

class ConnectionLimiter final {
    Q_DISABLE_COPY_MOVE(ConnectionLimiter)
public:
    // maxTotal 0: the open-file limit less a reserve; maxPerAddress 0: no limit per address.
    ConnectionLimiter(int maxTotal, int maxPerAddress);

    enum class Verdict { Accepted, TooManyInAll, TooManyFromAddress };
    // Counts a new connection from `peer` unless a limit is reached. Loopback addresses
    // (every local client shares one) count in the total only.
    Verdict acquire(const QHostAddress &peer);
    // For each accepted connection, once, when it closes.
    void release(const QHostAddress &peer);
    void setLimits(int maxTotal, int maxPerAddress);

    int open() const;
    int maxTotal() const;
    // What maxTotal 0 stands for: RLIMIT_NOFILE's soft limit less 128 (listening sockets,
    // the store, upstream connections), at least 16.
    static int defaultMaxTotal();

private:
    static QByteArray addressKey(const QHostAddress &peer, bool *loopback);

    mutable std::mutex m_mutex;
    int m_maxTotal = 0;
    int m_maxPerAddress = 0;
    int m_open = 0;
    QHash<QByteArray, int> m_perAddress;
};

} // namespace llmproxy::http
