// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the desktop app shows of money (issue 10): the ledger summed over today, this month and
// everything it keeps, per model. Made on the proxy's thread from its store (the same query as
// GET /usage) and sent to the GUI thread as a value; the GUI never reads the store.
//
// "Today" and "this month" start at the local midnight (of the month's first day). The ledger
// keeps hours, so a zone whose offset is not whole hours counts from the hour before.

#include "accounting/ledger.h"

#include <QDateTime>
#include <QMetaType>
#include <QString>

namespace llmproxy {

class Store;

struct MoneyPeriods {
    qint64 todayFromMs = 0;
    qint64 monthFromMs = 0;
    qint64 nowMs = 0;
    // The periods as seen at `now` in its time zone.
    static MoneyPeriods at(const QDateTime &now);
};

struct MoneySummary {
    bool valid = false;
    QString error; // why there are no figures (no durable store, a read failure)
    MoneyPeriods periods;
    // Grouped by model only (route, endpoint and caller summed).
    accounting::LedgerReport today;
    accounting::LedgerReport month;
    accounting::LedgerReport allTime;
};

// The summary from `store` (null: the proxy runs without one, and the summary says so).
MoneySummary queryMoney(Store *store, const MoneyPeriods &periods);

} // namespace llmproxy

Q_DECLARE_METATYPE(llmproxy::MoneySummary)
