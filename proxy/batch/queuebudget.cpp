// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/queuebudget.h"

#include "provider/providerprofile.h" // DefaultProviderName

#include <QMap>

namespace llmproxy {

qint64 QueueBudget::Pending::tokens() const {
    qint64 sum = 0;
    for (const Item &item : items)
        sum += item.tokens;
    return sum;
}

qint64 QueueBudget::Pending::bytes() const {
    qint64 sum = 0;
    for (const Item &item : items)
        sum += item.bytes;
    return sum;
}

QList<quint64> QueueBudget::Pending::requestIds() const {
    QList<quint64> ids;
    ids.reserve(items.size());
    for (const Item &item : items)
        ids.append(item.requestId);
    return ids;
}

QueueBudget::Key QueueBudget::keyOf(const GroupKey &group) {
    return Key{group.provider.isEmpty() ? QByteArray(DefaultProviderName) : group.provider,
               group.keyHash, group.organization, group.model};
}

void QueueBudget::setLimits(QueueLimits limits, BatchLimits fileLimits) {
    m_limits = std::move(limits);
    m_fileLimits = std::move(fileLimits);
}

bool QueueBudget::limited(const GroupKey &group) const {
    return m_limits.limitFor(group.model).has_value();
}

QList<QueueBudget::Pending> QueueBudget::offer(Pending pending) {
    const std::optional<qint64> limit = m_limits.limitFor(pending.group.model);
    if (!limit)
        return {std::move(pending)};
    const Key key = keyOf(pending.group);
    std::deque<Pending> &queue = m_waiting[key];
    // Cut into batches that each fit the limit on their own.
    Pending piece{pending.group, {}, pending.attempts};
    qint64 tokens = 0;
    for (const Item &item : std::as_const(pending.items)) {
        if (!piece.items.isEmpty() && tokens + item.tokens > *limit) {
            queue.push_back(std::exchange(piece, Pending{pending.group, {}, pending.attempts}));
            tokens = 0;
        }
        piece.items.append(item);
        tokens += item.tokens;
        m_waitingIds.insert(item.requestId);
    }
    if (!piece.items.isEmpty())
        queue.push_back(std::move(piece));
    return admit(key);
}

void QueueBudget::dropGone(Pending &pending) const {
    pending.items.removeIf(
        [this](const Item &item) { return !m_waitingIds.contains(item.requestId); });
}

QList<QueueBudget::Pending> QueueBudget::admit(const Key &key) {
    QList<Pending> out;
    const auto it = m_waiting.find(key);
    if (it == m_waiting.end())
        return out;
    std::deque<Pending> &queue = it.value();
    qint64 enqueued = m_enqueued.value(key);
    while (!queue.empty()) {
        Pending batch = std::move(queue.front());
        queue.pop_front();
        dropGone(batch);
        if (batch.items.isEmpty())
            continue;
        const std::optional<qint64> limit = m_limits.limitFor(key.model);
        qint64 tokens = batch.tokens();
        if (limit && enqueued > 0 && enqueued + tokens > *limit) {
            queue.push_front(std::move(batch)); // first come, first served: the rest wait too
            break;
        }
        // Later waiting batches of the same group join it while everything still fits.
        const FileLimits file = m_fileLimits.fileLimitsFor(batch.group.provider);
        qint64 bytes = batch.bytes();
        while (!queue.empty() && queue.front().group == batch.group) {
            Pending &next = queue.front();
            dropGone(next);
            if (next.items.isEmpty()) {
                queue.pop_front();
                continue;
            }
            const qint64 nextTokens = next.tokens();
            const qint64 nextBytes = next.bytes();
            if (batch.items.size() + next.items.size() > file.maxRequests ||
                bytes + nextBytes > file.maxBytes ||
                (limit && enqueued + tokens + nextTokens > *limit))
                break;
            batch.items.append(next.items);
            tokens += nextTokens;
            bytes += nextBytes;
            queue.pop_front();
        }
        for (const Item &item : std::as_const(batch.items))
            m_waitingIds.remove(item.requestId);
        enqueued += tokens;
        out.append(std::move(batch));
    }
    if (queue.empty())
        m_waiting.erase(it);
    return out;
}

void QueueBudget::reserve(const QByteArray &localId, const GroupKey &group, qint64 tokens) {
    if (m_reservations.contains(localId))
        return;
    const Key key = keyOf(group);
    m_reservations.insert(localId, Reservation{key, tokens});
    m_enqueued[key] += tokens;
}

QList<QueueBudget::Pending> QueueBudget::release(const QByteArray &localId) {
    const auto it = m_reservations.find(localId);
    if (it == m_reservations.end())
        return {};
    const Reservation reservation = it.value();
    m_reservations.erase(it);
    const auto enqueued = m_enqueued.find(reservation.key);
    if (enqueued != m_enqueued.end()) {
        *enqueued -= reservation.tokens;
        if (*enqueued <= 0)
            m_enqueued.erase(enqueued);
    }
    return admit(reservation.key);
}

QList<QueueBudget::Pending> QueueBudget::admitWaiting() {
    QList<Pending> out;
    const QList<Key> keys = m_waiting.keys();
    for (const Key &key : keys)
        out.append(admit(key));
    return out;
}

bool QueueBudget::remove(quint64 requestId) {
    return m_waitingIds.remove(requestId);
}

qint64 QueueBudget::enqueued(const GroupKey &group) const {
    return m_enqueued.value(keyOf(group));
}

QList<QueueBudget::Queue> QueueBudget::queues() const {
    if (m_limits.empty()) // the usual case, asked for at every request: nothing to list
        return {};
    QMap<std::pair<QByteArray, QByteArray>, Queue> byModel;
    auto add = [&](const Key &key, qint64 enqueued) {
        const std::optional<qint64> limit = m_limits.limitFor(key.model);
        if (!limit)
            return;
        Queue &queue = byModel[{key.provider, key.model}];
        queue.provider = key.provider;
        queue.model = key.model;
        queue.limit = *limit;
        queue.enqueued += enqueued;
    };
    for (auto it = m_enqueued.cbegin(); it != m_enqueued.cend(); ++it)
        add(it.key(), it.value());
    for (auto it = m_waiting.cbegin(); it != m_waiting.cend(); ++it)
        add(it.key(), 0); // listed while batches wait for it
    return byModel.values();
}

} // namespace llmproxy
