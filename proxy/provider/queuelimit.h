// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The provider's queue for a model (issue 12, "limits ... per-model inputs"): OpenAI and Azure
// cap the prompt tokens of one model waiting in an organization's batches ("Batch queue
// limit", e.g. 2,000,000 for gpt-4o-mini at tier 1), Together at 30 B per model, Gemini per
// model as well. A batch over it fails after validating with token_limit_exceeded (Azure's
// fail-fast deployments refuse it at create). The limit depends on the account, not the
// profile, so the user gives it: --queue-limit PATTERN=TOKENS (exact model names, or prefixes
// ending in '*'; exact names win, then the longest prefix). The proxy then keeps its own
// estimate of what it has enqueued per provider, key, organization and model, and sends a
// batch only when it fits (queuebudget.h).

#include "provider/modelroute.h"

#include <QByteArray>
#include <QList>
#include <QString>

#include <optional>

namespace llmproxy {

struct QueueLimitRule {
    QByteArray pattern; // without the '*'
    bool prefix = false;
    qint64 tokens = 0;
    friend bool operator==(const QueueLimitRule &, const QueueLimitRule &) = default;
};

inline constexpr qint64 MaxQueueLimitTokens = 10'000'000'000'000; // 10^13
// A count of tokens: digits, optionally with a fraction and a suffix k (thousand), M
// (million) or B (billion): "90000", "90k", "2M", "1.5M", "30B"; 1 to 10^13. nullopt otherwise.
std::optional<qint64> parseTokenCount(QStringView text);

// "gpt-4o-mini=2M", "gpt-4o*=90k". nullopt and *error (a phrase to follow the value) when
// malformed.
std::optional<QueueLimitRule> parseQueueLimitRule(QStringView text, QString *error);

// The prompt tokens a request body is counted as while it waits in a provider's queue: a
// quarter of its bytes (rounded up), the usual rule of thumb for English text. It is an
// estimate for scheduling only, never for money: the provider counts with its tokenizer, and
// a batch that does not fit after all is submitted again later (batchjob.h).
inline qint64 estimatedQueueTokens(qint64 bodyBytes) {
    return (bodyBytes + 3) / 4;
}

class QueueLimits {
public:
    QueueLimits() = default;
    explicit QueueLimits(QList<QueueLimitRule> rules)
        : m_rules(std::move(rules)) {}
    // Built from --queue-limit values; nullopt and *error ("--queue-limit VALUE: why") when one
    // is malformed.
    static std::optional<QueueLimits> fromSpecs(const QList<QByteArray> &specs, QString *error);
    // The limit for `model` (nullopt: none is set, nothing is held back).
    std::optional<qint64> limitFor(QByteArrayView model) const;
    bool empty() const { return m_rules.isEmpty(); }
    const QList<QueueLimitRule> &rules() const { return m_rules; }
    friend bool operator==(const QueueLimits &, const QueueLimits &) = default;

private:
    QList<QueueLimitRule> m_rules;
};

} // namespace llmproxy
