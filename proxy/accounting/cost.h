// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What one answer cost, what it would have cost at the synchronous price, and the difference.
//
// Money is exact: prices are integer micro-USD per million tokens (= pico-USD per token, see
// prices.h), so tokens x price is an integer number of pico-USD (10^-12 USD) with no rounding
// at all. A qint64 of pico-USD holds up to $9,223,372.036854775807; every multiplication and
// addition is checked, and one that would overflow makes the cost unknown instead of wrong.
//
// The tokens billed for one tier (OpenAI's rules, see usage.h):
//   (input - cachedInput) x input + cachedInput x cached_input + output x output
// Reasoning tokens are already inside `output` and are not added again.

#include "accounting/prices.h"
#include "api/usage.h"

#include <QByteArray>
#include <QString>

#include <optional>

namespace llmproxy::accounting {

using Picos = qint64; // pico-USD, 10^-12 USD

// How a request was answered, which decides the price paid.
enum class Route {
    Batch,        // a line of a provider batch: the batch tier
    SyncFallback, // sent synchronously by the proxy instead: the standard tier
    Relay,        // passed through unchanged: the standard tier
    Flex,         // OpenAI's flex service tier: the flex tier
    Cache,        // answered from the proxy's own answer cache: nothing paid
};
QString routeName(Route route); // "batch", "sync_fallback", "relay", "flex", "cache"
std::optional<Route> routeFromName(QStringView name);
// The tier a route pays; nullopt for Cache (which pays nothing).
std::optional<Tier> paidTier(Route route);

// The cost of `usage` at one tier's prices. nullopt when it cannot be known exactly: usage not
// reported, cached and cache-written tokens more than input tokens, cache writes whose
// 5-minute / 1-hour split the answer did not give (Usage::cacheWrite1hInput empty), cached,
// cache-written (5-minute or 1-hour) or output tokens the tier has no price for, or an overflow.
std::optional<Picos> tierCost(const TierPrices &tier, const Usage &usage);

struct Cost {
    std::optional<Picos> paid;  // what the provider charged (0 for the answer cache)
    std::optional<Picos> list;  // the same tokens at the standard (synchronous) price
    std::optional<Picos> saved; // list - paid, when both are known

    bool known() const { return paid && list && saved; }
    friend bool operator==(const Cost &, const Cost &) = default;
};

// `model` is the table's entry (PriceTable::find), nullptr when the model has no price: then
// the cost is unknown (never 0), except that an answer from the cache is known to have been
// paid 0. A route whose tier the model lacks (flex for gpt-4o) leaves paid and saved unknown.
Cost costOf(const ModelPrices *model, Route route, const Usage &usage);

// Checked sum for totals: false (and `total` unchanged) if it would overflow.
bool addPicos(Picos &total, Picos amount);

// Pico-USD as an exact decimal number of dollars, for JSON, CSV and metrics: 123 ->
// "0.000000000123", 1500000000000 -> "1.5", 0 -> "0", -2500000 -> "-0.0000025". No exponent,
// no rounding, no trailing zeros.
QByteArray formatUsd(Picos picos);

} // namespace llmproxy::accounting
