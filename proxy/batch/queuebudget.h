// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the proxy has enqueued in each provider's per-model queue, and the batches that wait
// until theirs fits (--queue-limit, queuelimit.h). A queue is one provider's, for one key,
// organization and model: the providers count per organization, and the proxy cannot tell
// which keys share one. Free of I/O and timers: the core offers each batch before making it,
// reserves what it made, and releases a batch's tokens when it leaves the provider's queue.
//
// A batch is let in when its queue holds nothing of ours, or when the queue plus the batch
// stays within the limit; batches that wait are let in first come, first served, and waiting
// batches of the same group are merged (within the file limits) so that a long wait does not
// turn into many small batches. A batch bigger than the limit is cut into batches that fit
// (a single request bigger than the limit goes alone).

#include "batch/batcher.h"
#include "provider/queuelimit.h"

#include <QByteArray>
#include <QHash>
#include <QList>
#include <QSet>

#include <deque>
#include <optional>

namespace llmproxy {

class QueueBudget {
public:
    struct Item {
        quint64 requestId = 0;
        qint64 tokens = 0; // estimatedQueueTokens() of its body
        qint64 bytes = 0;  // of its input line (the file limits)
    };
    // A batch to be made: a group's requests in arrival order.
    struct Pending {
        GroupKey group;
        QList<Item> items;
        int attempts = 0; // resubmissions of the batch it came from (BatchCore::splitBatch)
        qint64 tokens() const;
        qint64 bytes() const;
        QList<quint64> requestIds() const;
    };
    // One queue as /stats shows it (summed over keys and organizations).
    struct Queue {
        QByteArray provider, model;
        qint64 limit = 0;
        qint64 enqueued = 0;
    };

    void setLimits(QueueLimits limits, BatchLimits fileLimits);
    const QueueLimits &limits() const { return m_limits; }
    // Whether batches of `group` are counted against a limit at all.
    bool limited(const GroupKey &group) const;
    // `pending` cut to fit its limit; returns the batches that may be made now, in order (the
    // rest wait here).
    QList<Pending> offer(Pending pending);
    // A batch was made (or resumed after a restart: it was let in before) with `tokens`.
    void reserve(const QByteArray &localId, const GroupKey &group, qint64 tokens);
    // It left the provider's queue (ended, split, dissolved): the batches that may be made now.
    QList<Pending> release(const QByteArray &localId);
    // The limits changed: the batches that may be made now.
    QList<Pending> admitWaiting();
    // A waiting request leaves (its client went away before it was sent): true if it waited
    // here.
    bool remove(quint64 requestId);
    qsizetype waitingRequests() const { return m_waitingIds.size(); }
    // What of ours is in `group`'s queue now (estimated tokens).
    qint64 enqueued(const GroupKey &group) const;
    // The queues that have a limit and hold or await something of ours, by provider and model
    // (as many as there are running or waiting groups).
    QList<Queue> queues() const;

private:
    struct Key {
        QByteArray provider, keyHash, organization, model;
        friend bool operator==(const Key &, const Key &) = default;
        friend size_t qHash(const Key &key, size_t seed = 0) noexcept {
            return qHashMulti(seed, key.provider, key.keyHash, key.organization, key.model);
        }
    };
    static Key keyOf(const GroupKey &group);
    QList<Pending> admit(const Key &key);
    // `pending` without the requests that left meanwhile.
    void dropGone(Pending &pending) const;

    QueueLimits m_limits;
    BatchLimits m_fileLimits;
    QHash<Key, qint64> m_enqueued;
    struct Reservation {
        Key key;
        qint64 tokens = 0;
    };
    QHash<QByteArray, Reservation> m_reservations; // by the batch's local id
    QHash<Key, std::deque<Pending>> m_waiting;
    QSet<quint64> m_waitingIds;
};

} // namespace llmproxy
