// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The ledger as the store keeps it and as /usage, /stats and `llm-proxy --report` show it: usage
// and cost summed per hour x route x endpoint x model x caller x provider. Nothing here touches
// the database (queue/store.* does); these are the values, the query a client asks for and the
// texts made from the answer (JSON, CSV, the receipt).
//
// Money is pico-USD (cost.h) and is written with formatUsd(): exact decimals, never a float. A
// request whose usage was reported but whose cost cannot be known (no price for its model, a
// tier the model lacks) is counted in `unknownCost` and adds no money; a request without usage
// is counted in `requestsWithoutUsage` and adds neither tokens nor money.

#include "accounting/accountedrequest.h"
#include "accounting/cost.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>

#include <optional>

namespace llmproxy::accounting {

// Rows older than this are purged.
inline constexpr qint64 LedgerKeepMs = 400LL * 24 * 60 * 60 * 1000;
inline constexpr qint64 HourMs = 60LL * 60 * 1000;
inline constexpr qint64 DayMs = 24 * HourMs;

struct LedgerRow {
    qint64 hourMs = 0; // start of the hour (or of the day, when grouped by day), UTC, ms
    QByteArray route, endpoint, model, caller, provider;
    qint64 requests = 0;
    qint64 requestsWithoutUsage = 0;
    qint64 input = 0, cachedInput = 0, cacheWriteInput = 0, output = 0, reasoning = 0;
    Picos paid = 0, list = 0, saved = 0; // over the requests whose cost is known
    qint64 unknownCost = 0;              // requests with usage whose cost is unknown

    // Add `other`'s counts and money (checked: false when money would overflow).
    bool add(const LedgerRow &other);
};

// Who a request is counted for when it came without a proxy token: "…" and the last 4
// characters of the key that paid for it (just "…" for a key shorter than 12 characters, so a
// short placeholder is never half shown). Never the key.
QByteArray keyHint(QByteArrayView key);

// One accounted request as a ledger increment: its hour, labels, tokens and (known) cost.
LedgerRow ledgerRowFor(const AccountedRequest &request);

// What a /usage (or --report) caller asks for.
struct LedgerQuery {
    qint64 fromMs = 0;
    qint64 toMs = 0; // exclusive
    bool byModel = true, byRoute = true, byEndpoint = true, byCaller = true;
    bool byDay = false, byProvider = false;
    bool byHour = false; // each hour apart (ignored when byDay)
};

// The parameters of GET /usage: from, to (ISO 8601 date or date-time, or a duration back from
// `nowMs` such as 7d, 12h, 30m, 2w), group_by (model, route, endpoint, caller, day, provider;
// comma-separated), format (json or csv). Default: the last 30 days, grouped by model, route,
// endpoint and caller. nullopt with `badParam` and `message` set when one is wrong.
struct UsageRequest {
    LedgerQuery query;
    bool csv = false;
};
std::optional<UsageRequest> parseUsageQuery(const QByteArray &percentEncodedQuery, qint64 nowMs,
                                            QByteArray *badParam, QString *message);
// "7d", "12h", "30m", "45s", "2w" as milliseconds; nullopt otherwise.
std::optional<qint64> parseLedgerDuration(QStringView text);
// An ISO 8601 date ("2026-12-01", midnight UTC) or date-time ("2026-12-01T10:00:00Z"; without a
// zone: UTC) as ms since the epoch.
std::optional<qint64> parseLedgerTime(QStringView text);

// What the store answers a query with: the grouped rows (labels not grouped by are empty) and
// the models in the range that had requests of unknown cost.
struct LedgerReport {
    QList<LedgerRow> rows;
    QList<QByteArray> unpricedModels;
    LedgerRow total() const; // the sum of the rows (labels empty)
};

// The /usage answers. In a row, money is null when any of its requests' cost is unknown; the
// totals add up what is known and name the models left out ("unpriced_models").
QByteArray usageJson(const LedgerQuery &query, const LedgerReport &report);
QByteArray usageCsv(const LedgerQuery &query, const LedgerReport &report);
// A total's counts and money as one JSON object (for /stats): known money, with
// "unknown_cost_requests" saying how many requests it leaves out.
QByteArray totalsJson(const LedgerRow &total);

// `llm-proxy --report`: rows grouped by model and route, printed like a receipt.
QString receiptText(const LedgerQuery &query, const LedgerReport &report);

} // namespace llmproxy::accounting
