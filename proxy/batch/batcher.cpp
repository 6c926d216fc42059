// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batcher.h"

#include <QCryptographicHash>

namespace llmproxy {

QByteArray keyHashOf(const QByteArray &apiKey) {
    return QCryptographicHash::hash(apiKey, QCryptographicHash::Sha256).toHex().left(32);
}

size_t qHash(const GroupKey &key, size_t seed) noexcept {
    return qHashMulti(seed, key.keyHash, key.organization, key.project, key.endpoint, key.model,
                      key.provider);
}

FileLimits BatchLimits::fileLimitsFor(const QByteArray &provider) const {
    const auto it =
        perProvider.constFind(provider.isEmpty() ? QByteArrayLiteral("openai") : provider);
    return it != perProvider.constEnd() ? *it : FileLimits{maxRequests, maxBytes};
}

QList<Flush> Batcher::add(const GroupKey &group, quint64 requestId, qint64 bytes,
                          int embeddingInputs, SteadyTime now) {
    QList<Flush> flushes;
    const FileLimits file = m_limits.fileLimitsFor(group.provider);
    if (auto it = m_groups.find(group); it != m_groups.end() && !it->items.empty()) {
        if (it->bytes + bytes > file.maxBytes)
            flushes.append(take(group, FlushReason::Bytes));
        else if (embeddingInputs > 0 &&
                 it->embeddingInputs + embeddingInputs > m_limits.maxEmbeddingInputs)
            flushes.append(take(group, FlushReason::EmbeddingInputs));
    }
    auto it = m_groups.find(group);
    if (it == m_groups.end())
        it = m_groups.insert(group, Group{now, {}, 0, 0});
    it->items.emplace(requestId, Item{bytes, embeddingInputs});
    it->bytes += bytes;
    it->embeddingInputs += embeddingInputs;
    ++m_queued;
    if (std::ssize(it->items) >= file.maxRequests)
        flushes.append(take(group, FlushReason::Size));
    return flushes;
}

bool Batcher::remove(const GroupKey &group, quint64 requestId) {
    const auto it = m_groups.find(group);
    if (it == m_groups.end())
        return false;
    const auto item = it->items.find(requestId);
    if (item == it->items.end())
        return false;
    it->bytes -= item->second.bytes;
    it->embeddingInputs -= item->second.embeddingInputs;
    it->items.erase(item);
    --m_queued;
    if (it->items.empty())
        m_groups.erase(it); // the next request starts a fresh window
    return true;
}

QList<Flush> Batcher::takeDue(SteadyTime now) {
    QList<GroupKey> due;
    for (auto it = m_groups.cbegin(); it != m_groups.cend(); ++it) {
        if (it->firstArrival + m_limits.window <= now)
            due.append(it.key());
    }
    QList<Flush> flushes;
    for (const GroupKey &key : std::as_const(due))
        flushes.append(take(key, FlushReason::Window));
    return flushes;
}

QList<Flush> Batcher::takeAll() {
    const QList<GroupKey> keys = m_groups.keys();
    QList<Flush> flushes;
    for (const GroupKey &key : keys)
        flushes.append(take(key, FlushReason::Forced));
    return flushes;
}

std::optional<SteadyTime> Batcher::nextDeadline() const {
    std::optional<SteadyTime> earliest;
    for (const Group &group : m_groups) {
        const SteadyTime deadline = group.firstArrival + m_limits.window;
        if (!earliest || deadline < *earliest)
            earliest = deadline;
    }
    return earliest;
}

Flush Batcher::take(const GroupKey &key, FlushReason reason) {
    Flush flush;
    flush.group = key;
    flush.reason = reason;
    auto it = m_groups.find(key);
    if (it == m_groups.end())
        return flush;
    flush.bytes = it->bytes;
    flush.requestIds.reserve(std::ssize(it->items));
    for (const auto &[id, item] : it->items)
        flush.requestIds.append(id);
    m_queued -= std::ssize(it->items);
    m_groups.erase(it);
    return flush;
}

} // namespace llmproxy
