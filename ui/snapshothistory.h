// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The charts' memory: the sequence of snapshots, kept as a few numbers each, in bounded space.
// Three tiers, one per chart span, each at most PointsPerSpan points: the last 15 minutes at
// 1 s, the last hour at 4 s, the last day at 96 s. A tier's point covers its interval: queued
// and in-flight keep the interval's highest value (a spike stays visible), everything else
// the latest. The percentiles are the core's (no maths here).

#include "proxysnapshot.h"

#include <QList>
#include <QObject>

#include <array>
#include <chrono>

namespace llmproxy {

enum class ChartSpan { Minutes15 = 0, Hour = 1, Day = 2 };

struct HistorySample {
    qint64 msecsSinceEpoch = 0; // UTC
    double queued = 0;
    double inFlight = 0;
    double p50Ms = 0;
    double p95Ms = 0;
    double p99Ms = 0;
    double batchesSent = 0;     // since start
    double batchesFinished = 0; // since start
};

class SnapshotHistory final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SnapshotHistory)
public:
    static constexpr int PointsPerSpan = 900;

    explicit SnapshotHistory(QObject *parent = nullptr);

    static std::chrono::milliseconds spanLength(ChartSpan span);
    static std::chrono::milliseconds resolution(ChartSpan span);

    void append(const ProxySnapshot &snapshot);
    // Oldest first; only points within spanLength(span) of the latest snapshot.
    QList<HistorySample> samples(ChartSpan span) const;
    // The latest snapshot's time (0 before the first).
    qint64 latestMsecs() const { return m_latest; }
    void clear();

Q_SIGNALS:
    void appended();

private:
    static HistorySample sampleOf(const ProxySnapshot &snapshot);

    std::array<QList<HistorySample>, 3> m_tiers;
    qint64 m_latest = 0;
};

} // namespace llmproxy
