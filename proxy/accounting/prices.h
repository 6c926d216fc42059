// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The price table: what a million tokens of each kind cost, per provider, model and tier.
//
// The app ships one (resources/prices.json, compiled in as :/llmproxy/prices.json); the user
// may override it with a file of the same format (by default
// ~/.config/llm-proxy/prices.json), whose entries replace the shipped ones model by model.
//
// Format (schema 1):
//   {"schema": 1, "currency": "USD", "notes": [...],
//    "providers": {"openai": {"models": {
//      "gpt-4o": {"aliases": ["gpt-4o-2024-08-06"],
//                 "tiers": {"standard": {"input": 2.5, "cached_input": 1.25, "output": 10,
//                                        "source": "https://...", "date": "2026-12-06"},
//                           "batch": {...}, "flex": {...}}}}}}}
// Prices are USD per million tokens as plain JSON decimals with at most 6 decimal places, kept
// exactly as integer micro-USD per million tokens (which is also pico-USD per token): no
// floating point anywhere. "input" is required; "cached_input", "cache_write" (prompt-cache
// writes, Anthropic's 5-minute price), "cache_write_1h" (1-hour cache writes) and "output" may
// be left out (embeddings have no output), and then tokens
// of that kind make the cost unknown. Every tier
// names its "source" (an http(s) URL) and the "date" (YYYY-MM-DD) it was read; "as_of" (a date)
// and "note" are optional. A model needs a "standard" tier (the list price).
//
// Lookup is exact: the model's own name or one of its "aliases" (dated snapshots the table
// says are billed the same). No prefix or pattern matching: "gpt-4o-2024-05-13" was priced
// differently from "gpt-4o", and a guessed price is worse than an unknown one.
//
// Validation is strict; the first problem is reported on one line naming the file, the model
// and the field, e.g.
//   prices.json: openai/gpt-4o: batch.input: must not be negative (-1)

#include <QHash>
#include <QList>
#include <QString>
#include <QStringList>
#include <QtGlobal>

#include <optional>

namespace llmproxy::accounting {

// USD per million tokens in micro-USD, which is the same number as pico-USD per token.
using MicroUsdPerMillion = qint64;

enum class Tier { Standard, Batch, Flex };
QString tierName(Tier tier); // "standard", "batch", "flex"

struct TierPrices {
    MicroUsdPerMillion input = 0;
    std::optional<MicroUsdPerMillion> cachedInput;
    std::optional<MicroUsdPerMillion> output;
    // Tokens written to the prompt cache (Anthropic's cache_creation_input_tokens, at its
    // 5-minute write price); without it, such tokens make the cost unknown.
    std::optional<MicroUsdPerMillion> cacheWrite;
    // Tokens written to the 1-hour prompt cache (Anthropic: 2x input); without it, a cost with
    // 1-hour cache writes is unknown.
    std::optional<MicroUsdPerMillion> cacheWrite1h;
    QString source; // the public page the figures were read from
    QString date;   // when they were read, YYYY-MM-DD
    QString asOf;   // optional: the date the page gives for them
    QString note;   // optional

    friend bool operator==(const TierPrices &, const TierPrices &) = default;
};

struct ModelPrices {
    QString provider; // "openai", "anthropic", ...
    QString model;
    QStringList aliases;
    TierPrices standard;
    std::optional<TierPrices> batch;
    std::optional<TierPrices> flex;

    const TierPrices *tier(Tier which) const; // nullptr if the table has no such tier
};

class PriceTable final {
public:
    // The resource compiled into the proxy library.
    static QString shippedPath(); // ":/llmproxy/prices.json"
    // The user's override file: <GenericConfigLocation>/llm-proxy/prices.json.
    static QString defaultOverridePath();

    // `fileName` is only used in error messages. nullopt and *error set on the first problem.
    static std::optional<PriceTable> parse(QByteArrayView json, const QString &fileName,
                                           QString *error);
    // Read and parse a file; a file that cannot be read is an error too.
    static std::optional<PriceTable> readFile(const QString &path, QString *error);

    // Each model of `overrides` replaces this table's model of the same provider and name
    // (all its tiers and aliases); other models stay. An alias now claimed by an override
    // model is dropped from the shipped model that had it.
    void overrideWith(const PriceTable &overrides);

    // Exact model name first, then aliases. nullptr: no price (cost unknown).
    const ModelPrices *find(const QString &provider, const QString &model) const;

    const QList<ModelPrices> &models() const { return m_models; }
    const QStringList &notes() const { return m_notes; }
    int schema() const { return m_schema; }

private:
    void rebuildIndex();

    int m_schema = 0;
    QStringList m_notes;
    QList<ModelPrices> m_models;
    QHash<QString, qsizetype> m_index; // "provider\nname or alias" -> m_models index
};

// The shipped table with the override file applied when it exists. A broken override file
// (or a broken shipped table) is reported in `error` as one line, and the shipped table alone
// (or an empty one) is returned, so the proxy can say so and count tokens without prices.
struct LoadedPrices {
    PriceTable table;
    QString error; // empty when all went well
};
LoadedPrices loadPrices(const QString &overridePath);

// A price as written in the table: "2.5" -> 2500000. nullopt and *why set ("must not be
// negative (-1)", ...) when it is not a plain non-negative decimal with at most 6 decimals.
// `raw` is the raw JSON value text.
std::optional<MicroUsdPerMillion> parsePrice(QByteArrayView raw, QString *why);

} // namespace llmproxy::accounting
