// SPDX-License-Identifier: GPL-3.0-or-later
#include "accounting/cost.h"

#include <limits>

namespace llmproxy::accounting {

namespace {

constexpr qint64 PicosPerUsd = Q_INT64_C(1000000000000);

bool mulAdd(Picos &total, qint64 tokens, MicroUsdPerMillion price) {
    Picos product = 0;
    if (__builtin_mul_overflow(tokens, price, &product))
        return false;
    return addPicos(total, product);
}

} // namespace

QString routeName(Route route) {
    switch (route) {
    case Route::Batch:
        return QStringLiteral("batch");
    case Route::SyncFallback:
        return QStringLiteral("sync_fallback");
    case Route::Relay:
        return QStringLiteral("relay");
    case Route::Flex:
        return QStringLiteral("flex");
    case Route::Cache:
        return QStringLiteral("cache");
    }
    return QString();
}

std::optional<Route> routeFromName(QStringView name) {
    for (const Route r :
         {Route::Batch, Route::SyncFallback, Route::Relay, Route::Flex, Route::Cache}) {
        if (name == routeName(r))
            return r;
    }
    return std::nullopt;
}

std::optional<Tier> paidTier(Route route) {
    switch (route) {
    case Route::Batch:
        return Tier::Batch;
    case Route::SyncFallback:
    case Route::Relay:
        return Tier::Standard;
    case Route::Flex:
        return Tier::Flex;
    case Route::Cache:
        return std::nullopt;
    }
    return std::nullopt;
}

std::optional<Picos> tierCost(const TierPrices &tier, const Usage &usage) {
    if (!usage.reported || !usage.input)
        return std::nullopt;
    const qint64 input = *usage.input;
    const qint64 cached = usage.cachedInput.value_or(0);
    const qint64 written = usage.cacheWriteInput.value_or(0);
    const qint64 output = usage.output.value_or(0);
    if (input < 0 || cached < 0 || written < 0 || output < 0 || cached > input ||
        written > input - cached)
        return std::nullopt;
    // Cache writes are priced only when their 5-minute / 1-hour split is known: a 1-hour write
    // costs 2x input, a 5-minute one 1.25x, and guessing would misstate the cost.
    if (written > 0 && !usage.cacheWrite1hInput)
        return std::nullopt;
    const qint64 written1h = usage.cacheWrite1hInput.value_or(0);
    if (written1h < 0 || written1h > written)
        return std::nullopt;
    const qint64 written5m = written - written1h;
    if ((cached > 0 && !tier.cachedInput) || (written5m > 0 && !tier.cacheWrite) ||
        (written1h > 0 && !tier.cacheWrite1h) || (output > 0 && !tier.output))
        return std::nullopt;
    Picos total = 0;
    if (!mulAdd(total, input - cached - written, tier.input))
        return std::nullopt;
    if (cached > 0 && !mulAdd(total, cached, *tier.cachedInput))
        return std::nullopt;
    if (written5m > 0 && !mulAdd(total, written5m, *tier.cacheWrite))
        return std::nullopt;
    if (written1h > 0 && !mulAdd(total, written1h, *tier.cacheWrite1h))
        return std::nullopt;
    if (output > 0 && !mulAdd(total, output, *tier.output))
        return std::nullopt;
    return total;
}

Cost costOf(const ModelPrices *model, Route route, const Usage &usage) {
    Cost cost;
    if (model)
        cost.list = tierCost(model->standard, usage);
    if (const std::optional<Tier> tier = paidTier(route)) {
        const TierPrices *prices = model ? model->tier(*tier) : nullptr;
        if (prices)
            cost.paid = tierCost(*prices, usage);
    } else {
        cost.paid = 0; // answered from the proxy's cache: the provider was not asked
    }
    if (cost.paid && cost.list) {
        Picos saved = 0;
        if (!__builtin_sub_overflow(*cost.list, *cost.paid, &saved))
            cost.saved = saved;
    }
    return cost;
}

bool addPicos(Picos &total, Picos amount) {
    Picos sum = 0;
    if (__builtin_add_overflow(total, amount, &sum))
        return false;
    total = sum;
    return true;
}

QByteArray formatUsd(Picos picos) {
    QByteArray out;
    // Work on the magnitude as unsigned so that the most negative value has one too.
    quint64 magnitude = picos < 0 ? quint64(0) - quint64(picos) : quint64(picos);
    if (picos < 0)
        out += '-';
    out += QByteArray::number(magnitude / quint64(PicosPerUsd));
    quint64 fraction = magnitude % quint64(PicosPerUsd);
    if (fraction != 0) {
        QByteArray digits = QByteArray::number(fraction).rightJustified(12, '0');
        while (digits.endsWith('0'))
            digits.chop(1);
        out += '.';
        out += digits;
    }
    return out;
}

} // namespace llmproxy::accounting
