// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QObject>

#include <functional>

namespace llmproxy {

// Raise the soft open-file limit to the hard one: every waiting client holds a socket.
// Returns the limit now in force (0 if unknown).
quint64 raiseOpenFileLimit();

// Route SIGINT and SIGTERM into the event loop: `onSignal` runs on the calling thread's loop.
// Call once, from the main thread.
void watchTerminationSignals(QObject *context, std::function<void(int)> onSignal);

} // namespace llmproxy
