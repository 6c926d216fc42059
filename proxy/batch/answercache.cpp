// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/answercache.h"

namespace llmproxy {

bool AnswerCache::fresh(const QByteArray &key, qint64 notBeforeMs) const {
    const auto it = m_entries.constFind(key);
    return it != m_entries.cend() && it->storedMs >= notBeforeMs;
}

QList<QByteArray> AnswerCache::insert(const QByteArray &key, qint64 storedMs, qint64 bytes) {
    remove(key);
    if (bytes > m_maxBytes)
        return {key}; // never fits: not kept (the store may have had an older one)
    m_entries.insert(key, Entry{storedMs, bytes});
    m_byAge.emplace(storedMs, key);
    m_bytes += bytes;
    return evict();
}

void AnswerCache::remove(const QByteArray &key) {
    const auto it = m_entries.find(key);
    if (it == m_entries.end())
        return;
    m_byAge.erase({it->storedMs, key});
    m_bytes -= it->bytes;
    m_entries.erase(it);
}

QList<QByteArray> AnswerCache::expire(qint64 notBeforeMs) {
    QList<QByteArray> gone;
    while (!m_byAge.empty() && m_byAge.begin()->first < notBeforeMs) {
        const QByteArray key = m_byAge.begin()->second;
        remove(key);
        gone.append(key);
    }
    return gone;
}

QList<QByteArray> AnswerCache::setMaxBytes(qint64 maxBytes) {
    m_maxBytes = maxBytes;
    return evict();
}

void AnswerCache::clear() {
    m_entries.clear();
    m_byAge.clear();
    m_bytes = 0;
}

QList<QByteArray> AnswerCache::evict() {
    QList<QByteArray> gone;
    while (m_bytes > m_maxBytes && !m_byAge.empty()) {
        const QByteArray key = m_byAge.begin()->second;
        remove(key);
        gone.append(key);
    }
    return gone;
}

} // namespace llmproxy
