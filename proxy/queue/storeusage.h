// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The usage and money columns the ledger and batch_history share, for the store's own files
// (storeledger.cpp defines them): in accounting::LedgerRow's order.

#include "accounting/ledger.h"

#include <QLatin1StringView>
#include <QSqlQuery>
#include <QString>

namespace llmproxy::storeusage {

// "requests, ..., unknown_cost_requests", each prefixed with `table` ("h." or "").
QString columns(QLatin1StringView table = {});
// "?, ?, ..." for the usage columns and `more` others.
QString placeholders(int more);
// "requests = requests + excluded.requests, ..." for an upsert.
QString sums();
void bind(QSqlQuery &query, const accounting::LedgerRow &row);
// The usage read from `query`'s columns from `firstColumn` on (NULL reads as 0).
accounting::LedgerRow at(const QSqlQuery &query, int firstColumn);

} // namespace llmproxy::storeusage
