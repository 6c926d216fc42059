// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/moneychart.h"

#include "ui/chartswidget.h"
#include "ui/moneytext.h"

#include <QCategoryAxis>
#include <QChart>
#include <QChartView>
#include <QDateTimeAxis>
#include <QEvent>
#include <QLabel>
#include <QLegend>
#include <QLineSeries>
#include <QVBoxLayout>

#include <algorithm>
#include <climits>
#include <cmath>

namespace llmproxy {

namespace {

using accounting::LedgerRow;

constexpr double PicosPerUsd = 1e12;
constexpr int MoneyTicks = 4; // intervals on the money axis

// How many ticks the day axis gets for `span` days: one a day up to a week, then as many as
// split the span into whole days (at most 8); 2 (its two ends) when none does.
int dayTicks(qint64 span) {
    if (span <= 7)
        return int(std::max<qint64>(span, 1)) + 1;
    for (int ticks = 8; ticks >= 4; --ticks) {
        if (span % (ticks - 1) == 0)
            return ticks;
    }
    return 2;
}

} // namespace

MoneyChart::MoneyChart(QWidget *parent)
    : QWidget(parent) {
    setObjectName(QStringLiteral("moneyChart"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);

    m_chart = new QChart;
    m_chart->setTitle(tr("Paid and list price per day"));
    m_chart->legend()->setAlignment(Qt::AlignBottom);
    m_chart->setMargins(QMargins(4, 4, 4, 4));
    m_chart->setBackgroundRoundness(0);
    m_days = new QDateTimeAxis(m_chart);
    m_days->setFormat(QStringLiteral("MMM d"));
    m_days->setTickCount(6);
    m_money = new QCategoryAxis(m_chart);
    m_money->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
    m_chart->addAxis(m_days, Qt::AlignBottom);
    m_chart->addAxis(m_money, Qt::AlignLeft);
    const auto addSeries = [this](const QString &name, const QString &label, const QColor &color,
                                  Qt::PenStyle style) {
        auto *series = new QLineSeries(m_chart);
        series->setObjectName(name);
        series->setName(label);
        QPen pen(color);
        pen.setWidth(2);
        pen.setStyle(style);
        series->setPen(pen);
        series->setPointsVisible(true); // a single day reads too
        m_chart->addSeries(series);     // the chart owns the series from here
        series->attachAxis(m_days);
        series->attachAxis(m_money);
        return series;
    };
    m_list = addSeries(QStringLiteral("listSeries"), tr("list price"), QColor(0x2f, 0x7b, 0xe0),
                       Qt::DashLine);
    m_paid = addSeries(QStringLiteral("paidSeries"), tr("paid"), QColor(0x2e, 0x9e, 0x5b),
                       Qt::SolidLine);
    m_view = new QChartView(m_chart, this); // the view owns the chart
    m_view->setObjectName(QStringLiteral("moneyChartView"));
    m_view->setRenderHint(QPainter::Antialiasing);
    // Tall enough for each money label: QtCharts elides a label to "..." when its share of the
    // axis' height (a fifth here) is shorter than the text.
    m_view->setMinimumSize(320, 240);
    layout->addWidget(m_view, 1);

    m_note = new QLabel(this);
    m_note->setObjectName(QStringLiteral("chartUnknownLabel"));
    m_note->setWordWrap(true);
    m_note->setForegroundRole(QPalette::PlaceholderText);
    m_note->hide();
    layout->addWidget(m_note);
    applyPalette();
}

void MoneyChart::applyPalette() {
    // As the dashboard's other charts: the palette's colours (dark themes included).
    const QPalette pal = palette();
    const QColor background = pal.color(QPalette::Base);
    const QColor text = pal.color(QPalette::Text);
    const QColor grid = pal.color(QPalette::Mid);
    m_chart->setBackgroundBrush(background);
    m_chart->setPlotAreaBackgroundVisible(false);
    m_chart->setTitleBrush(text);
    m_chart->legend()->setLabelColor(text);
    for (QAbstractAxis *axis :
         {static_cast<QAbstractAxis *>(m_days), static_cast<QAbstractAxis *>(m_money)}) {
        axis->setLabelsColor(text);
        axis->setTitleBrush(text);
        axis->setLinePenColor(grid);
        axis->setGridLineColor(grid);
    }
    m_view->setBackgroundBrush(background);
}

void MoneyChart::changeEvent(QEvent *event) {
    if (event->type() == QEvent::PaletteChange)
        applyPalette();
    QWidget::changeEvent(event);
}

QLineSeries *MoneyChart::series(const QString &name) const {
    for (QLineSeries *series : {m_paid, m_list}) {
        if (series->objectName() == name)
            return series;
    }
    return nullptr;
}

int MoneyChart::dayTickCount() const {
    return m_days->tickCount();
}

QStringList MoneyChart::valueLabels() const {
    return m_money->categoriesLabels();
}

void MoneyChart::showSummary(const MoneySummary &summary) {
    const MoneyPeriods &periods = summary.periods;
    const QList<LedgerRow> &days = summary.days;
    setVisible(summary.valid && !days.isEmpty());
    if (!summary.valid || days.isEmpty())
        return;
    // From a week before the first day with requests (the whole span once it is full) to today;
    // a day without requests between them is drawn as what it cost: nothing.
    const qint64 today = periods.dayStart(periods.nowMs);
    qint64 first = std::max(periods.chartFromMs, days.constFirst().hourMs);
    first = std::min(
        first, QDateTime::fromMSecsSinceEpoch(today, periods.spec).addDays(-6).toMSecsSinceEpoch());
    first = std::max(first, periods.chartFromMs);
    // The day axis' ticks fall on midnights only when its days divide evenly into its
    // intervals: a span that does not, and can start a day earlier within the window (a day
    // without requests, drawn as nothing spent), does.
    {
        const qint64 span = QDateTime::fromMSecsSinceEpoch(first, periods.spec)
                                .daysTo(QDateTime::fromMSecsSinceEpoch(today, periods.spec));
        if (dayTicks(span) == 2 && span > 1 && first - accounting::DayMs >= periods.chartFromMs)
            first =
                QDateTime::fromMSecsSinceEpoch(first, periods.spec).addDays(-1).toMSecsSinceEpoch();
    }
    QList<QPointF> paid, list;
    double top = 0;
    qint64 unknown = 0;
    auto row = days.cbegin();
    for (QDateTime day = QDateTime::fromMSecsSinceEpoch(first, periods.spec);
         day.toMSecsSinceEpoch() <= today; day = day.addDays(1)) {
        const qint64 start = day.toMSecsSinceEpoch();
        LedgerRow counted;
        while (row != days.cend() && row->hourMs <= start) {
            if (row->hourMs == start)
                counted = *row;
            ++row;
        }
        unknown += counted.unknownCost;
        const double x = double(start);
        paid.append(QPointF(x, double(counted.paid) / PicosPerUsd));
        list.append(QPointF(x, double(counted.list) / PicosPerUsd));
        top = std::max({top, paid.constLast().y(), list.constLast().y()});
    }
    m_paid->replace(paid);
    m_list->replace(list);
    m_days->setRange(
        QDateTime::fromMSecsSinceEpoch(first, periods.spec),
        QDateTime::fromMSecsSinceEpoch(std::max(today, first + accounting::DayMs), periods.spec));
    m_days->setTickCount(dayTicks(int(paid.size()) - 1));

    // The money axis: round steps, labelled in the user's number format with as many decimals
    // as the steps need (at least cents; fractions of a cent for tiny amounts, so they show).
    const double ceiling = niceCeiling(top * 1.1, top > 0 ? 1e-9 : 0.01);
    const double step = ceiling / MoneyTicks;
    const int decimals = std::clamp(int(std::ceil(-std::log10(step))) + 1, 2, 8);
    for (const QString &label : m_money->categoriesLabels())
        m_money->remove(label);
    m_money->setRange(0, ceiling);
    m_money->setStartValue(0);
    for (int i = 0; i <= MoneyTicks; ++i)
        m_money->append(money::axisUsd(step * i, decimals), step * i);

    m_note->setVisible(unknown > 0);
    m_note->setText(tr("%n request(s) of unpriced models not included", nullptr,
                       int(std::min<qint64>(unknown, INT_MAX))));
}

} // namespace llmproxy
