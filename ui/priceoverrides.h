// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings window's price overrides (issue 10): one model's prices at one tier, as the
// user typed them, made into the user's override file (accounting/prices.h; the file the proxy
// loads at start and on ProxyHost::reloadPrices()). The whole new file is checked with the
// proxy's own parser before anything is written: a bad value is reported for its field and
// nothing is saved.

#include "accounting/prices.h"

#include <QByteArray>
#include <QDate>
#include <QMap>
#include <QString>

#include <optional>

namespace llmproxy {

struct PriceEdit {
    QString provider; // "openai"
    QString model;
    accounting::Tier tier = accounting::Tier::Standard;
    // USD per million tokens as typed ("2.5"); cachedInput and output may be empty (no price
    // for such tokens: their cost stays unknown).
    QString input, cachedInput, output;
    QString source; // the page the figures come from (http or https URL)
};

struct PriceEditResult {
    QByteArray json; // the new override file, when ok()
    // Per field ("model", "input", "cached_input", "output", "source"): why it is refused.
    QMap<QString, QString> fieldErrors;
    QString error; // a problem with the file as a whole
    bool ok() const { return fieldErrors.isEmpty() && error.isEmpty(); }
};

// `current` is the override file's content (empty when there is none); `effective` is the table
// in force (shipped with the overrides applied): the edited model's other tiers and aliases are
// kept as it has them. `today` is the tier's "date".
PriceEditResult applyPriceEdit(const QByteArray &current, const accounting::PriceTable &effective,
                               const PriceEdit &edit, const QDate &today);
// The override file without `provider`/`model` (the shipped price applies again). An error when
// the file has no such override.
PriceEditResult removePriceOverride(const QByteArray &current, const QString &provider,
                                    const QString &model);

// Read the override file at `path` (nullopt and *error when it exists but cannot be read; an
// empty array when it does not exist), and write one atomically (false and *error).
std::optional<QByteArray> readOverrideFile(const QString &path, QString *error);
bool writeOverrideFile(const QString &path, const QByteArray &json, QString *error);

// "2.5" from 2500000 micro-USD per million tokens (exact, no exponent).
QString priceText(accounting::MicroUsdPerMillion price);

} // namespace llmproxy
