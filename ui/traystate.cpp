// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/traystate.h"

#include "ui/displaytext.h"

namespace llmproxy {

namespace {
int activeBatches(const ProxySnapshot &snapshot) {
    int count = 0;
    for (const BatchProgress &batch : snapshot.batches) {
        if (batch.active)
            ++count;
    }
    return count;
}

bool recentFailure(const ProxySnapshot &snapshot) {
    for (const BatchProgress &batch : snapshot.batches) {
        if (!display::endedBadly(batch) || !batch.endedAt.isValid())
            continue;
        if (batch.endedAt.msecsTo(snapshot.takenAt) <= TrayErrorMemoryMs)
            return true;
    }
    return false;
}
} // namespace

TrayState trayStateFor(const ProxySnapshot &snapshot) {
    if (!snapshot.listening || !snapshot.listenError.isEmpty() || recentFailure(snapshot))
        return TrayState::Error;
    if (snapshot.stats.inFlight > 0 || activeBatches(snapshot) > 0)
        return TrayState::BatchesOut;
    if (snapshot.stats.queued > 0)
        return TrayState::Waiting;
    return TrayState::Idle;
}

QString trayStateName(TrayState state) {
    switch (state) {
    case TrayState::Idle:
        return QStringLiteral("idle");
    case TrayState::Waiting:
        return QStringLiteral("requests waiting");
    case TrayState::BatchesOut:
        return QStringLiteral("batches out");
    case TrayState::Error:
        return QStringLiteral("error");
    }
    return QString();
}

QString trayToolTip(const ProxySnapshot &snapshot) {
    QStringList lines{QStringLiteral("llm-proxy")};
    if (!snapshot.listening) {
        lines.append(snapshot.listenError.isEmpty()
                         ? QStringLiteral("Not listening")
                         : QStringLiteral("Not listening: ") + snapshot.listenError);
    } else if (!snapshot.listenError.isEmpty()) {
        lines.append(QStringLiteral("Could not move: ") + snapshot.listenError);
    }
    if (snapshot.paused)
        lines.append(QStringLiteral("Paused: requests are held"));
    lines.append(display::count(snapshot.stats.queued) + QStringLiteral(" waiting, ") +
                 display::count(static_cast<quint64>(activeBatches(snapshot))) +
                 QStringLiteral(" batches out (") + display::count(snapshot.stats.inFlight) +
                 QStringLiteral(" requests in flight)"));
    lines.append(display::count(snapshot.stats.requestsTotal) + QStringLiteral(" answered, ") +
                 display::count(snapshot.stats.requestsFailed) + QStringLiteral(" failed, ") +
                 display::count(snapshot.stats.relayed) + QStringLiteral(" relayed"));
    if (recentFailure(snapshot))
        lines.append(QStringLiteral("A batch failed recently"));
    return lines.join(u'\n');
}

} // namespace llmproxy
