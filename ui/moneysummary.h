// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the desktop app shows of money (issue 10): the ledger summed over today, this month and
// everything it keeps, per model, and per day over the last weeks (the chart). Made on the
// proxy's thread from its store (the same query as GET /usage) and sent to the GUI thread as a
// value; the GUI never reads the store.
//
// "Today", "this month" and the chart's days start at the local midnight (of the month's first
// day). The ledger keeps hours, so a zone whose offset is not whole hours counts from the hour
// before.

#include "accounting/accountedrequest.h"
#include "accounting/ledger.h"

#include <QDateTime>
#include <QMetaType>
#include <QObject>
#include <QString>

#include <optional>

namespace llmproxy {

class Store;

struct MoneyPeriods {
    qint64 todayFromMs = 0;
    qint64 monthFromMs = 0;
    qint64 chartFromMs = 0; // the local midnight ChartDays - 1 days before today's
    qint64 nowMs = 0;
    Qt::TimeSpec spec = Qt::LocalTime; // the zone the days are counted in
    // Four weeks back and today: 28 days split evenly, so the day axis' ticks fall on days.
    static constexpr int ChartDays = 29;
    // The periods as seen at `now` in its time zone.
    static MoneyPeriods at(const QDateTime &now);
    // The start of the local day `ms` falls in.
    qint64 dayStart(qint64 ms) const;
};

struct MoneySummary {
    bool valid = false;
    QString error; // why there are no figures (no durable store, a read failure)
    MoneyPeriods periods;
    // Grouped by model only (route, endpoint and caller summed).
    accounting::LedgerReport today;
    accounting::LedgerReport month;
    accounting::LedgerReport allTime;
    // Each local day since periods.chartFromMs with requests, oldest first: hourMs is the day's
    // start, the rest sums everything (labels empty). Unpriced requests are in unknownCost.
    QList<accounting::LedgerRow> days;
};

// The summary from `store` (null: the proxy runs without one, and the summary says so).
MoneySummary queryMoney(Store *store, const MoneyPeriods &periods);

// The summary kept up to date without reading the whole ledger again for each change: read
// once (queryMoney()), then each accounted request is added to it; read again when the day
// changes (today, the month and the chart's days move). Lives on the proxy's thread, next to
// the store. (A transaction that fails after a request was counted here is counted until the
// next read.)
class MoneyTally final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MoneyTally)
public:
    explicit MoneyTally(QObject *parent = nullptr);

    // The summary at `periods`: the last one read plus what was added since, or read from
    // `store` when there is none yet, the day changed, or the last read failed.
    MoneySummary summary(Store *store, const MoneyPeriods &periods);
    // An accounted request (BatchCore::requestAccounted) counted in the summary kept, as the
    // ledger counted it.
    void add(const accounting::AccountedRequest &request);
    void addRow(const accounting::LedgerRow &row);
    // How many times the ledger was read (queryMoney()).
    int reads() const { return m_reads; }

private:
    std::optional<MoneySummary> m_summary;
    int m_reads = 0;
};

} // namespace llmproxy

Q_DECLARE_METATYPE(llmproxy::MoneySummary)
