// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The money panel's chart (issue 10): what was paid against the list price (the same tokens at
// the synchronous price), per local day over the last MoneyPeriods::ChartDays days, from the
// MoneySummary's days. A day without requests is a true zero; requests of models without a price
// add no money and are named in a note under the chart, never drawn as $0.

#include "ui/moneysummary.h"

#include <QWidget>

class QCategoryAxis;
class QChart;
class QChartView;
class QDateTimeAxis;
class QLabel;
class QLineSeries;

namespace llmproxy {

class MoneyChart final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MoneyChart)
public:
    explicit MoneyChart(QWidget *parent = nullptr);

    void showSummary(const MoneySummary &summary);
    // "paidSeries" or "listSeries": one point a day, x the day's start (ms), y in USD.
    QLineSeries *series(const QString &name) const;
    // The money axis' labels, bottom to top ("$0.00", "$2.50", ...).
    QStringList valueLabels() const;
    int dayTickCount() const; // the day axis' ticks, first and last day included

protected:
    void changeEvent(QEvent *event) override;

private:
    void applyPalette();

    QChartView *m_view = nullptr;
    QChart *m_chart = nullptr;
    QDateTimeAxis *m_days = nullptr;
    QCategoryAxis *m_money = nullptr;
    QLineSeries *m_paid = nullptr;
    QLineSeries *m_list = nullptr;
    QLabel *m_note = nullptr;
};

} // namespace llmproxy
