// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/connectionlimiter.h"

#include <sys/resource.h>

#include <algorithm>

namespace llmproxy::http {

ConnectionLimiter::ConnectionLimiter(int maxTotal, int maxPerAddress) {
    setLimits(maxTotal, maxPerAddress);
}

void ConnectionLimiter::setLimits(int maxTotal, int maxPerAddress) {
    const std::lock_guard lock(m_mutex);
    m_maxTotal = maxTotal > 0 ? maxTotal : defaultMaxTotal();
    m_maxPerAddress = std::max(0, maxPerAddress);
}

int ConnectionLimiter::defaultMaxTotal() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return 1'000'000;
    const auto files = static_cast<long long>(limit.rlim_cur);
    return int(std::clamp<long long>(files - 128, 16, 1'000'000));
}

QByteArray ConnectionLimiter::addressKey(const QHostAddress &peer, bool *loopback) {
    bool mapped = false;
    const quint32 v4 = peer.toIPv4Address(&mapped); // also ::ffff:a.b.c.d
    const QHostAddress address = mapped ? QHostAddress(v4) : peer;
    *loopback = address.isLoopback();
    return address.toString().toLatin1();
}

ConnectionLimiter::Verdict ConnectionLimiter::acquire(const QHostAddress &peer) {
    bool loopback = false;
    const QByteArray key = addressKey(peer, &loopback);
    const std::lock_guard lock(m_mutex);
    if (m_open >= m_maxTotal)
        return Verdict::TooManyInAll;
    if (!loopback) {
        int &count = m_perAddress[key];
        if (m_maxPerAddress > 0 && count >= m_maxPerAddress) {
            if (count == 0)
                m_perAddress.remove(key);
            return Verdict::TooManyFromAddress;
        }
        ++count;
    }
    ++m_open;
    return Verdict::Accepted;
}

void ConnectionLimiter::release(const QHostAddress &peer) {
    bool loopback = false;
    const QByteArray key = addressKey(peer, &loopback);
    const std::lock_guard lock(m_mutex);
    m_open = std::max(0, m_open - 1);
    if (!loopback) {
        const auto it = m_perAddress.find(key);
        if (it != m_perAddress.end() && --it.value() <= 0)
            m_perAddress.erase(it);
    }
}

int ConnectionLimiter::open() const {
    const std::lock_guard lock(m_mutex);
    return m_open;
}

int ConnectionLimiter::maxTotal() const {
    const std::lock_guard lock(m_mutex);
    return m_maxTotal;
}

} // namespace llmproxy::http
