// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Three live charts over a chosen span, drawn from the SnapshotHistory: queued and in-flight
// requests; request latency p50/p95/p99 (the core's figures); batches sent and finished.

#include "ui/snapshothistory.h"

#include <QWidget>

#include <chrono>
#include <utility>

class QChart;
class QChartView;
class QComboBox;
class QDateTimeAxis;
class QLineSeries;
class QValueAxis;

namespace llmproxy {

// A "nice" upper bound for a value axis: 1, 2 or 5 times a power of ten, at least `floor`.
double niceCeiling(double value, double floor);

class ChartsWidget final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ChartsWidget)
public:
    explicit ChartsWidget(SnapshotHistory *history, QWidget *parent = nullptr);

    ChartSpan span() const { return m_span; }
    void setSpan(ChartSpan span);
    // A series by its objectName ("queuedSeries", "p99Series", ...; see the .cpp); the charts
    // own them outside the widget tree, so findChild() does not reach them.
    QLineSeries *series(const QString &name) const;
    // The latency axis's unit as shown ("ms", "s" or "min").
    QString latencyUnit() const { return m_latencyUnit; }
    // The time axes' range as shown, in ms since the epoch: the chosen span once the history
    // fills it; before that the data's own extent, at least MinVisible (or the span) wide.
    std::pair<qint64, qint64> timeRange() const { return m_timeRange; }
    static constexpr std::chrono::milliseconds MinVisible{60'000};

protected:
    void changeEvent(QEvent *event) override;
    void resizeEvent(QResizeEvent *event) override;

Q_SIGNALS:
    void spanChanged(llmproxy::ChartSpan span);

private:
    struct Panel {
        QChartView *view = nullptr;
        QChart *chart = nullptr;
        QDateTimeAxis *time = nullptr;
        QValueAxis *values = nullptr;
    };
    Panel makePanel(const QString &name, const QString &title, const QString &valueTitle);
    QLineSeries *addSeries(Panel &panel, const QString &name, const QString &label,
                           const QColor &color);
    void refresh();
    void fitTicks();
    void applyPalette();

    SnapshotHistory *m_history;
    ChartSpan m_span = ChartSpan::Minutes15;
    QComboBox *m_spanBox = nullptr;
    Panel m_queue;
    Panel m_latency;
    Panel m_batches;
    QLineSeries *m_queued = nullptr;
    QLineSeries *m_inFlight = nullptr;
    QLineSeries *m_p50 = nullptr;
    QLineSeries *m_p95 = nullptr;
    QLineSeries *m_p99 = nullptr;
    QLineSeries *m_sent = nullptr;
    QLineSeries *m_finished = nullptr;
    QString m_latencyUnit = QStringLiteral("ms");
    std::pair<qint64, qint64> m_timeRange{0, 0};
};

} // namespace llmproxy
