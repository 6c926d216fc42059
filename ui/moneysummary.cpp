// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/moneysummary.h"

#include "queue/store.h"

#include <QCoreApplication>

namespace llmproxy {

MoneyPeriods MoneyPeriods::at(const QDateTime &now) {
    MoneyPeriods periods;
    periods.nowMs = now.toMSecsSinceEpoch();
    const QDate today = now.date();
    periods.todayFromMs = QDateTime(today, QTime(0, 0), now.timeSpec()).toMSecsSinceEpoch();
    periods.monthFromMs =
        QDateTime(QDate(today.year(), today.month(), 1), QTime(0, 0), now.timeSpec())
            .toMSecsSinceEpoch();
    return periods;
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
    auto report = [&](qint64 fromMs, accounting::LedgerReport *into) {
        accounting::LedgerQuery query;
        query.fromMs = fromMs;
        query.toMs = periods.nowMs + accounting::HourMs; // the current hour included
        query.byModel = true;
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
    summary.valid = report(periods.todayFromMs, &summary.today) &&
                    report(periods.monthFromMs, &summary.month) && report(0, &summary.allTime);
    return summary;
}

} // namespace llmproxy
