// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The grouping and flush policy, free of I/O and timers: the core asks it what to send and
// when its next deadline is.

#include "api/clock.h"

#include <QByteArray>
#include <QHash>
#include <QList>

#include <chrono>
#include <map>
#include <optional>

namespace llmproxy {

// Requests that may share a batch: same provider, upstream key, organization, project, endpoint
// and model. Never mixed.
struct GroupKey {
    QByteArray keyHash; // a hash of the upstream API key, never the key itself
    // OpenAI-Organization and OpenAI-Project; for Anthropic's /v1/messages, the client's
    // anthropic-version and anthropic-beta (stored the same way, so a batch resumed after a
    // restart is made with the headers its clients sent).
    QByteArray organization;
    QByteArray project;
    QByteArray endpoint; // "/v1/chat/completions"
    QByteArray model;
    // The configured provider's name (routing, providerrouting.h); empty means "openai", the
    // one provider of --upstream.
    QByteArray provider = {};
    friend bool operator==(const GroupKey &, const GroupKey &) = default;
};
size_t qHash(const GroupKey &key, size_t seed = 0) noexcept;

// GroupKey::keyHash of requests made with the proxy's configured key: a marker, not a hash.
// Their batches use whatever key is configured when they run (after a restart too), and the
// configured key itself is never stored.
inline constexpr char ConfiguredKeyHash[] = "configured";
// GroupKey::keyHash for a client's own key: a hash (32 hex digits), never the key.
QByteArray keyHashOf(const QByteArray &apiKey);

// The size limits of one batch input file.
struct FileLimits {
    int maxRequests = 1000;
    qint64 maxBytes = 25'000'000; // of the JSONL file
    friend bool operator==(const FileLimits &, const FileLimits &) = default;
};

struct BatchLimits {
    std::chrono::milliseconds window{4000}; // from a group's first request
    // For a provider without an entry in perProvider.
    int maxRequests = 1000;
    qint64 maxBytes = 25'000'000; // of the JSONL file
    int maxEmbeddingInputs = 50'000;
    // Each configured provider's own file limits (GroupKey::provider; "openai" for the empty
    // name), so that one provider's smaller files never shrink another's batches.
    QHash<QByteArray, FileLimits> perProvider = {};
    // The limits a group of `provider` is flushed at.
    FileLimits fileLimitsFor(const QByteArray &provider) const;
};

enum class FlushReason { Window, Size, Bytes, EmbeddingInputs, Forced };

struct Flush {
    GroupKey group;
    QList<quint64> requestIds; // in arrival order
    qint64 bytes = 0;
    FlushReason reason = FlushReason::Window;
};

class Batcher {
public:
    explicit Batcher(const BatchLimits &limits)
        : m_limits(limits) {}

    void setLimits(const BatchLimits &limits) { m_limits = limits; }
    const BatchLimits &limits() const { return m_limits; }

    // Queue one request (`bytes`: its JSONL line; `embeddingInputs`: 0 unless an embeddings
    // request). Returns the batches this closes: the group's current batch first when adding
    // would exceed the bytes or embedding-input limits, then the new one if it is now full.
    QList<Flush> add(const GroupKey &group, quint64 requestId, qint64 bytes, int embeddingInputs,
                     SteadyTime now);
    // Take a queued request of `group` out (its client left before it was sent). False if it
    // is not queued there.
    bool remove(const GroupKey &group, quint64 requestId);
    // Every group whose window has passed at `now`.
    QList<Flush> takeDue(SteadyTime now);
    // Every group, now (flush-now, or shutting down).
    QList<Flush> takeAll();
    // When the earliest window ends, if anything is queued.
    std::optional<SteadyTime> nextDeadline() const;

    qsizetype queued() const { return m_queued; }
    qsizetype groups() const { return m_groups.size(); }

private:
    struct Item {
        qint64 bytes;
        int embeddingInputs;
    };
    struct Group {
        SteadyTime firstArrival;
        std::map<quint64, Item> items; // ids grow, so this is arrival order
        qint64 bytes = 0;
        int embeddingInputs = 0;
    };
    Flush take(const GroupKey &key, FlushReason reason);

    BatchLimits m_limits;
    QHash<GroupKey, Group> m_groups;
    qsizetype m_queued = 0; // no index by id: the caller names the group (memory per request)
};

} // namespace llmproxy
