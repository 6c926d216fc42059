// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/snapshothistory.h"

#include <algorithm>

using namespace std::chrono_literals;

namespace llmproxy {

SnapshotHistory::SnapshotHistory(QObject *parent)
    : QObject(parent) {}

std::chrono::milliseconds SnapshotHistory::spanLength(ChartSpan span) {
    switch (span) {
    case ChartSpan::Minutes15:
        return 15min;
    case ChartSpan::Hour:
        return 1h;
    case ChartSpan::Day:
        return 24h;
    }
    return 15min;
}

std::chrono::milliseconds SnapshotHistory::resolution(ChartSpan span) {
    return spanLength(span) / PointsPerSpan;
}

HistorySample SnapshotHistory::sampleOf(const ProxySnapshot &snapshot) {
    HistorySample sample;
    sample.msecsSinceEpoch = snapshot.takenAt.toMSecsSinceEpoch();
    sample.queued = static_cast<double>(snapshot.stats.queued);
    sample.inFlight = static_cast<double>(snapshot.stats.inFlight);
    sample.p50Ms = snapshot.stats.requestP50Ms;
    sample.p95Ms = snapshot.stats.requestP95Ms;
    sample.p99Ms = snapshot.stats.requestP99Ms;
    sample.batchesSent = static_cast<double>(snapshot.batchesSubmitted);
    sample.batchesFinished = static_cast<double>(snapshot.batchesEnded);
    return sample;
}

void SnapshotHistory::append(const ProxySnapshot &snapshot) {
    if (!snapshot.takenAt.isValid())
        return;
    const HistorySample sample = sampleOf(snapshot);
    if (sample.msecsSinceEpoch < m_latest)
        return; // time never runs backwards on the charts
    m_latest = sample.msecsSinceEpoch;
    for (std::size_t tier = 0; tier < m_tiers.size(); ++tier) {
        const auto span = static_cast<ChartSpan>(tier);
        const qint64 step = resolution(span).count();
        QList<HistorySample> &points = m_tiers[tier];
        if (!points.isEmpty() &&
            points.constLast().msecsSinceEpoch / step == sample.msecsSinceEpoch / step) {
            HistorySample &last = points.last();
            const double queued = std::max(last.queued, sample.queued);
            const double inFlight = std::max(last.inFlight, sample.inFlight);
            last = sample;
            last.queued = queued;
            last.inFlight = inFlight;
        } else {
            points.append(sample);
        }
        const qint64 oldest = m_latest - spanLength(span).count();
        while (points.size() > PointsPerSpan + 1 ||
               (!points.isEmpty() && points.constFirst().msecsSinceEpoch < oldest)) {
            points.removeFirst();
        }
    }
    Q_EMIT appended();
}

QList<HistorySample> SnapshotHistory::samples(ChartSpan span) const {
    return m_tiers[static_cast<std::size_t>(span)];
}

void SnapshotHistory::clear() {
    for (QList<HistorySample> &points : m_tiers)
        points.clear();
    m_latest = 0;
    Q_EMIT appended();
}

} // namespace llmproxy
