// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/moneysummary.h"

#include "queue/store.h"

#include <QCoreApplication>

#include <algorithm>

namespace llmproxy {

namespace {

using accounting::LedgerRow;

// The first hour the ledger query for rows from `fromMs` includes (storeledger.cpp).
qint64 hourFloor(qint64 ms) {
    return ms - ((ms % accounting::HourMs) + accounting::HourMs) % accounting::HourMs;
}

// `row` added to `rows` (sorted by hourMs, then model) at the row with the same `hourMs` and
// `model`, or as a new one in its place. Only the counts and money are taken from `row`.
void addTo(QList<LedgerRow> &rows, qint64 hourMs, const QByteArray &model, const LedgerRow &row) {
    const auto before = [](const LedgerRow &r, const std::pair<qint64, QByteArray> &key) {
        return std::pair(r.hourMs, r.model) < key;
    };
    const auto key = std::pair(hourMs, model);
    auto it = std::lower_bound(rows.begin(), rows.end(), key, before);
    if (it == rows.end() || it->hourMs != hourMs || it->model != model) {
        LedgerRow fresh;
        fresh.hourMs = hourMs;
        fresh.model = model;
        it = rows.insert(it, fresh);
    }
    it->add(row);
}

void addTo(accounting::LedgerReport &report, const LedgerRow &row) {
    addTo(report.rows, 0, row.model, row);
    if (row.unknownCost > 0) {
        auto &models = report.unpricedModels;
        const auto at = std::lower_bound(models.begin(), models.end(), row.model);
        if (at == models.end() || *at != row.model)
            models.insert(at, row.model);
    }
}

} // namespace

MoneyPeriods MoneyPeriods::at(const QDateTime &now) {
    MoneyPeriods periods;
    periods.nowMs = now.toMSecsSinceEpoch();
    periods.spec = now.timeSpec();
    const QDate today = now.date();
    periods.todayFromMs = QDateTime(today, QTime(0, 0), now.timeSpec()).toMSecsSinceEpoch();
    periods.monthFromMs =
        QDateTime(QDate(today.year(), today.month(), 1), QTime(0, 0), now.timeSpec())
            .toMSecsSinceEpoch();
    periods.chartFromMs =
        QDateTime(today.addDays(-(ChartDays - 1)), QTime(0, 0), now.timeSpec()).toMSecsSinceEpoch();
    return periods;
}

qint64 MoneyPeriods::dayStart(qint64 ms) const {
    const QDate day = QDateTime::fromMSecsSinceEpoch(ms, spec).date();
    return QDateTime(day, QTime(0, 0), spec).toMSecsSinceEpoch();
}

MoneySummary queryMoney(Store *store, const MoneyPeriods &periods) {
    MoneySummary summary;
    summary.periods = periods;
    if (!store) {
        summary.error = QCoreApplication::translate(
            "MoneySummary", "llm-proxy runs without its durable store (in memory), so it keeps no "
                            "ledger of tokens and money");
        return summary;
    }
    auto report = [&](qint64 fromMs, bool byModel, bool byHour, accounting::LedgerReport *into) {
        accounting::LedgerQuery query;
        query.fromMs = fromMs;
        query.toMs = periods.nowMs + accounting::HourMs; // the current hour included
        query.byModel = byModel;
        query.byHour = byHour;
        query.byRoute = query.byEndpoint = query.byCaller = false;
        QString error;
        auto answer = store->ledgerReport(query, &error);
        if (!answer) {
            summary.error =
                QCoreApplication::translate("MoneySummary", "cannot read the ledger: %1")
                    .arg(error);
            return false;
        }
        *into = std::move(*answer);
        return true;
    };
    accounting::LedgerReport hours;
    summary.valid = report(periods.todayFromMs, true, false, &summary.today) &&
                    report(periods.monthFromMs, true, false, &summary.month) &&
                    report(0, true, false, &summary.allTime) &&
                    report(periods.chartFromMs, false, true, &hours);
    // The hours summed into local days (the ledger's own days are UTC's).
    for (const LedgerRow &hour : std::as_const(hours.rows))
        addTo(summary.days, periods.dayStart(hour.hourMs), QByteArray(), hour);
    return summary;
}

MoneyTally::MoneyTally(QObject *parent)
    : QObject(parent) {}

MoneySummary MoneyTally::summary(Store *store, const MoneyPeriods &periods) {
    if (!m_summary || !m_summary->valid || m_summary->periods.todayFromMs != periods.todayFromMs ||
        m_summary->periods.spec != periods.spec) {
        m_summary = queryMoney(store, periods);
        ++m_reads;
    }
    m_summary->periods.nowMs = periods.nowMs;
    return *m_summary;
}

void MoneyTally::add(const accounting::AccountedRequest &request) {
    addRow(accounting::ledgerRowFor(request));
}

void MoneyTally::addRow(const LedgerRow &row) {
    if (!m_summary || !m_summary->valid)
        return; // read in full at the next summary()
    const MoneyPeriods &periods = m_summary->periods;
    // Where the ledger's queries would count it (each includes the hour its period starts in).
    if (row.hourMs >= hourFloor(periods.todayFromMs))
        addTo(m_summary->today, row);
    if (row.hourMs >= hourFloor(periods.monthFromMs))
        addTo(m_summary->month, row);
    addTo(m_summary->allTime, row);
    if (row.hourMs >= hourFloor(periods.chartFromMs))
        addTo(m_summary->days, periods.dayStart(row.hourMs), QByteArray(), row);
}

} // namespace llmproxy
