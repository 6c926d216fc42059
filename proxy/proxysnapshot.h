// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Everything the dashboard needs, taken on the proxy's thread and sent to the GUI thread as a
// value by a queued signal. The GUI never reaches into the core.

#include "batch/batchprogress.h"
#include "stats/stats.h"

#include <QDateTime>
#include <QList>
#include <QMetaType>
#include <QStringList>

namespace llmproxy {

struct ProxySnapshot {
    QDateTime takenAt; // UTC
    StatsSnapshot stats;
    // Active batches first, then finished ones, newest first (at most the last 500).
    QList<BatchProgress> batches;
    quint64 batchesSubmitted = 0; // since start
    quint64 batchesEnded = 0;     // since start
    qint64 uptimeMs = 0;
    QStringList listenUrls; // "http://127.0.0.1:3030/v1"
    bool paused = false;
    bool listening = false;
    QString listenError; // why the last (re)bind failed, if it did
};

} // namespace llmproxy

Q_DECLARE_METATYPE(llmproxy::ProxySnapshot)
