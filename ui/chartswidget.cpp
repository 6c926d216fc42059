// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/chartswidget.h"

#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QDateTime>
#include <QDateTimeAxis>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QLegend>
#include <QLineSeries>
#include <QPalette>
#include <QVBoxLayout>
#include <QValueAxis>

#include <algorithm>
#include <cmath>
#include <functional>

namespace llmproxy {

double niceCeiling(double value, double floor) {
    value = std::max(value, floor);
    const double magnitude = std::pow(10.0, std::floor(std::log10(value)));
    for (double step : {1.0, 2.0, 5.0, 10.0}) {
        if (value <= step * magnitude)
            return step * magnitude;
    }
    return 10.0 * magnitude;
}

ChartsWidget::ChartsWidget(SnapshotHistory *history, QWidget *parent)
    : QWidget(parent)
    , m_history(history) {
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto *top = new QHBoxLayout;
    top->addWidget(new QLabel(ChartsWidget::tr("Charts over the last"), this));
    m_spanBox = new QComboBox(this);
    m_spanBox->setObjectName(QStringLiteral("chartSpan"));
    m_spanBox->addItem(ChartsWidget::tr("15 minutes"), static_cast<int>(ChartSpan::Minutes15));
    m_spanBox->addItem(ChartsWidget::tr("hour"), static_cast<int>(ChartSpan::Hour));
    m_spanBox->addItem(ChartsWidget::tr("day"), static_cast<int>(ChartSpan::Day));
    top->addWidget(m_spanBox);
    top->addStretch(1);
    layout->addLayout(top);

    auto *charts = new QHBoxLayout;
    m_queue = makePanel(QStringLiteral("queueChart"), ChartsWidget::tr("Requests waiting"),
                        ChartsWidget::tr("requests"));
    m_queued = addSeries(m_queue, QStringLiteral("queuedSeries"), ChartsWidget::tr("queued"),
                         QColor(0xe0, 0xa2, 0x1b));
    m_inFlight = addSeries(m_queue, QStringLiteral("inFlightSeries"), ChartsWidget::tr("in flight"),
                           QColor(0x2f, 0x7b, 0xe0));
    m_latency = makePanel(QStringLiteral("latencyChart"), ChartsWidget::tr("Request latency"),
                          ChartsWidget::tr("ms"));
    m_p50 = addSeries(m_latency, QStringLiteral("p50Series"), QStringLiteral("p50"),
                      QColor(0x2e, 0x9e, 0x5b));
    m_p95 = addSeries(m_latency, QStringLiteral("p95Series"), QStringLiteral("p95"),
                      QColor(0xe0, 0x7b, 0x1b));
    m_p99 = addSeries(m_latency, QStringLiteral("p99Series"), QStringLiteral("p99"),
                      QColor(0xc8, 0x32, 0x32));
    m_batches = makePanel(QStringLiteral("batchesChart"), ChartsWidget::tr("Batches since start"),
                          ChartsWidget::tr("batches"));
    m_sent = addSeries(m_batches, QStringLiteral("batchesSentSeries"), ChartsWidget::tr("sent"),
                       QColor(0x2f, 0x7b, 0xe0));
    m_finished = addSeries(m_batches, QStringLiteral("batchesFinishedSeries"),
                           ChartsWidget::tr("finished"), QColor(0x2e, 0x9e, 0x5b));
    for (const Panel *panel : {&m_queue, &m_latency, &m_batches})
        charts->addWidget(panel->view, 1);
    layout->addLayout(charts, 1);

    connect(m_spanBox, &QComboBox::activated, this, [this](int index) {
        setSpan(static_cast<ChartSpan>(m_spanBox->itemData(index).toInt()));
    });
    connect(m_history, &SnapshotHistory::appended, this, &ChartsWidget::refresh);
    applyPalette();
    refresh();
}

void ChartsWidget::fitTicks() {
    // Labels stay readable: about one time label per LabelWidth pixels of a chart's plot area.
    constexpr int LabelWidth = 80;
    for (Panel *panel : {&m_queue, &m_latency, &m_batches}) {
        const int width = panel->view->width();
        const int ticks = std::clamp(width / LabelWidth, 2, 6);
        if (panel->time->tickCount() != ticks)
            panel->time->setTickCount(ticks);
    }
}

void ChartsWidget::applyPalette() {
    // Colours follow the palette (dark themes included); the series keep their own colours,
    // which read on light and dark backgrounds alike.
    const QPalette pal = palette();
    const QColor background = pal.color(QPalette::Base);
    const QColor text = pal.color(QPalette::Text);
    QColor grid = pal.color(QPalette::Mid);
    for (Panel *panel : {&m_queue, &m_latency, &m_batches}) {
        panel->chart->setBackgroundBrush(background);
        panel->chart->setPlotAreaBackgroundVisible(false);
        panel->chart->setTitleBrush(text);
        panel->chart->legend()->setLabelColor(text);
        for (QAbstractAxis *axis : {static_cast<QAbstractAxis *>(panel->time),
                                    static_cast<QAbstractAxis *>(panel->values)}) {
            axis->setLabelsColor(text);
            axis->setTitleBrush(text);
            axis->setLinePenColor(grid);
            axis->setGridLineColor(grid);
        }
        panel->view->setBackgroundBrush(background);
    }
}

void ChartsWidget::changeEvent(QEvent *event) {
    if (event->type() == QEvent::PaletteChange)
        applyPalette();
    QWidget::changeEvent(event);
}

void ChartsWidget::resizeEvent(QResizeEvent *event) {
    QWidget::resizeEvent(event);
    fitTicks();
}

ChartsWidget::Panel ChartsWidget::makePanel(const QString &name, const QString &title,
                                            const QString &valueTitle) {
    Panel panel;
    panel.chart = new QChart;
    panel.chart->setTitle(title);
    panel.chart->legend()->setAlignment(Qt::AlignBottom);
    panel.chart->setMargins(QMargins(4, 4, 4, 4));
    panel.chart->setBackgroundRoundness(0);
    panel.time = new QDateTimeAxis(panel.chart);
    panel.time->setFormat(QStringLiteral("HH:mm"));
    panel.time->setTickCount(4);
    panel.values = new QValueAxis(panel.chart);
    panel.values->setTitleText(valueTitle);
    panel.values->setLabelFormat(QStringLiteral("%g"));
    panel.values->setRange(0, 1);
    panel.chart->addAxis(panel.time, Qt::AlignBottom);
    panel.chart->addAxis(panel.values, Qt::AlignLeft);
    panel.view = new QChartView(panel.chart, this); // the view owns the chart
    panel.view->setObjectName(name);
    panel.view->setRenderHint(QPainter::Antialiasing);
    panel.view->setMinimumSize(260, 220);
    return panel;
}

QLineSeries *ChartsWidget::addSeries(Panel &panel, const QString &name, const QString &label,
                                     const QColor &color) {
    auto *series = new QLineSeries(panel.chart);
    series->setObjectName(name);
    series->setName(label);
    series->setColor(color);
    panel.chart->addSeries(series); // the chart owns the series from here
    series->attachAxis(panel.time);
    series->attachAxis(panel.values);
    return series;
}

QLineSeries *ChartsWidget::series(const QString &name) const {
    for (QLineSeries *series : {m_queued, m_inFlight, m_p50, m_p95, m_p99, m_sent, m_finished}) {
        if (series->objectName() == name)
            return series;
    }
    return nullptr;
}

void ChartsWidget::setSpan(ChartSpan span) {
    const int index = m_spanBox->findData(static_cast<int>(span));
    if (index >= 0)
        m_spanBox->setCurrentIndex(index);
    if (span == m_span)
        return;
    m_span = span;
    refresh();
    Q_EMIT spanChanged(span);
}

void ChartsWidget::refresh() {
    const QList<HistorySample> samples = m_history->samples(m_span);
    const qint64 spanMs = SnapshotHistory::spanLength(m_span).count();
    const qint64 end = samples.isEmpty() ? QDateTime::currentMSecsSinceEpoch()
                                         : samples.constLast().msecsSinceEpoch;
    // Until the chosen span is full, the axis fits the data (right after start a 15-minute
    // axis would show one sliver at its right edge), but never narrower than MinVisible.
    qint64 start = end - spanMs;
    if (!samples.isEmpty())
        start = std::max(start, samples.constFirst().msecsSinceEpoch);
    start = std::min(start, end - std::min<qint64>(spanMs, MinVisible.count()));
    m_timeRange = {start, end};
    const QString format =
        end - start <= 15LL * 60 * 1000 ? QStringLiteral("HH:mm:ss") : QStringLiteral("HH:mm");
    for (Panel *panel : {&m_queue, &m_latency, &m_batches}) {
        panel->time->setFormat(format);
        panel->time->setRange(QDateTime::fromMSecsSinceEpoch(start),
                              QDateTime::fromMSecsSinceEpoch(end));
    }
    fitTicks();

    double latencyMax = 0;
    for (const HistorySample &sample : samples)
        latencyMax = std::max({latencyMax, sample.p50Ms, sample.p95Ms, sample.p99Ms});
    double divisor = 1;
    m_latencyUnit = ChartsWidget::tr("ms");
    if (latencyMax >= 120'000) {
        divisor = 60'000;
        m_latencyUnit = QStringLiteral("min");
    } else if (latencyMax >= 2'000) {
        divisor = 1000;
        m_latencyUnit = QStringLiteral("s");
    }
    m_latency.values->setTitleText(m_latencyUnit);

    using Field = std::function<double(const HistorySample &)>;
    const auto fill = [&samples](QLineSeries *series, const Field &field, double *max) {
        QList<QPointF> points;
        points.reserve(samples.size());
        for (const HistorySample &sample : samples) {
            const double value = field(sample);
            *max = std::max(*max, value);
            points.append(QPointF(static_cast<qreal>(sample.msecsSinceEpoch), value));
        }
        series->replace(points);
    };
    double queueMax = 0;
    fill(
        m_queued, [](const HistorySample &s) { return s.queued; }, &queueMax);
    fill(
        m_inFlight, [](const HistorySample &s) { return s.inFlight; }, &queueMax);
    double scaledLatencyMax = 0;
    fill(
        m_p50, [divisor](const HistorySample &s) { return s.p50Ms / divisor; }, &scaledLatencyMax);
    fill(
        m_p95, [divisor](const HistorySample &s) { return s.p95Ms / divisor; }, &scaledLatencyMax);
    fill(
        m_p99, [divisor](const HistorySample &s) { return s.p99Ms / divisor; }, &scaledLatencyMax);
    double batchMax = 0;
    fill(
        m_sent, [](const HistorySample &s) { return s.batchesSent; }, &batchMax);
    fill(
        m_finished, [](const HistorySample &s) { return s.batchesFinished; }, &batchMax);

    m_queue.values->setRange(0, niceCeiling(queueMax * 1.1, 5));
    m_latency.values->setRange(0, niceCeiling(scaledLatencyMax * 1.1, 1));
    m_batches.values->setRange(0, niceCeiling(batchMax * 1.1, 5));
}

} // namespace llmproxy
