// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The answer cache's index (--cache DUR): which answers the store keeps, when each was stored
// and how many bytes it holds, so that a hit, an expiry and an eviction need no query. The
// answers themselves are in the store (Store::putCachedAnswer); this keeps about 150 bytes per
// entry. Pure bookkeeping, no I/O: the core deletes from the store what this lets go.

#include <QByteArray>
#include <QHash>
#include <QList>

#include <set>
#include <utility>

namespace llmproxy {

class AnswerCache final {
public:
    explicit AnswerCache(qint64 maxBytes = 0)
        : m_maxBytes(maxBytes) {}

    // Whether `key` holds an answer stored at or after `notBeforeMs`.
    bool fresh(const QByteArray &key, qint64 notBeforeMs) const;
    // Record an answer of `bytes` stored at `storedMs` (replacing any for `key`). Returns the
    // keys to delete from the store: the oldest entries while the total exceeds the bound, and
    // `key` itself when its answer alone is larger than the bound.
    [[nodiscard]] QList<QByteArray> insert(const QByteArray &key, qint64 storedMs, qint64 bytes);
    void remove(const QByteArray &key);
    // Entries stored before `notBeforeMs`, now forgotten.
    [[nodiscard]] QList<QByteArray> expire(qint64 notBeforeMs);
    // A smaller bound evicts the oldest entries at once.
    [[nodiscard]] QList<QByteArray> setMaxBytes(qint64 maxBytes);
    void clear();

    qsizetype size() const { return m_entries.size(); }
    qint64 bytes() const { return m_bytes; }
    qint64 maxBytes() const { return m_maxBytes; }

private:
    struct Entry {
        qint64 storedMs = 0;
        qint64 bytes = 0;
    };
    QList<QByteArray> evict();

    QHash<QByteArray, Entry> m_entries;
    std::set<std::pair<qint64, QByteArray>> m_byAge; // oldest first
    qint64 m_bytes = 0;
    qint64 m_maxBytes = 0;
};

} // namespace llmproxy
