// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the tray icon says at a glance, decided from a snapshot alone.

#include "proxysnapshot.h"

#include <QString>

namespace llmproxy {

enum class TrayState {
    Idle,       // listening, nothing waiting, no batch out
    Waiting,    // requests queued for their batch
    BatchesOut, // at least one batch submitted and not finished
    Error,      // not listening, or a batch ended badly in the last ErrorMemory
};

// How long a failed batch keeps the icon red.
constexpr qint64 TrayErrorMemoryMs = 5 * 60 * 1000;

TrayState trayStateFor(const ProxySnapshot &snapshot);
// "llm-proxy: 3 waiting, 2 batches out (120 requests in flight)" and friends.
QString trayToolTip(const ProxySnapshot &snapshot);
QString trayStateName(TrayState state);

} // namespace llmproxy
