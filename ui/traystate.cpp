// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/traystate.h"

#include "ui/displaytext.h"

#include <QCoreApplication>

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
        return QCoreApplication::translate("llmproxy::TrayState", "idle");
    case TrayState::Waiting:
        return QCoreApplication::translate("llmproxy::TrayState", "requests waiting");
    case TrayState::BatchesOut:
        return QCoreApplication::translate("llmproxy::TrayState", "batches out");
    case TrayState::Error:
        return QCoreApplication::translate("llmproxy::TrayState", "error");
    }
    return QString();
}

QString trayToolTip(const ProxySnapshot &snapshot) {
    QStringList lines{QStringLiteral("llm-proxy")};
    if (!snapshot.listening) {
        lines.append(snapshot.listenError.isEmpty()
                         ? QCoreApplication::translate("llmproxy::TrayState", "Not listening")
                         : QCoreApplication::translate("llmproxy::TrayState", "Not listening: ") +
                               snapshot.listenError);
    } else if (!snapshot.listenError.isEmpty()) {
        lines.append(QCoreApplication::translate("llmproxy::TrayState", "Could not move: ") +
                     snapshot.listenError);
    }
    if (snapshot.paused)
        lines.append(
            QCoreApplication::translate("llmproxy::TrayState", "Paused: requests are held"));
    lines.append(QCoreApplication::translate("llmproxy::TrayState",
                                             "%1 waiting, %2 batches out (%3 requests in flight)")
                     .arg(display::count(snapshot.stats.queued),
                          display::count(static_cast<quint64>(activeBatches(snapshot))),
                          display::count(snapshot.stats.inFlight)));
    lines.append(
        QCoreApplication::translate("llmproxy::TrayState", "%1 answered, %2 failed, %3 relayed")
            .arg(display::count(snapshot.stats.requestsTotal),
                 display::count(snapshot.stats.requestsFailed),
                 display::count(snapshot.stats.relayed)));
    if (recentFailure(snapshot))
        lines.append(QCoreApplication::translate("llmproxy::TrayState", "A batch failed recently"));
    return lines.join(u'\n');
}

} // namespace llmproxy
