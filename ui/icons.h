// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The app's icons, drawn at run time (no image files to ship or load): the application icon
// and one tray icon per state, with a pause mark when batching is paused. Each is drawn at
// every size from 16 to 256 px, so a high-DPI screen gets pixels, not an upscaled blur.

#include "ui/traystate.h"

#include <QColor>
#include <QIcon>

namespace llmproxy::icons {

QIcon application();
QIcon trayState(TrayState state, bool paused);
// The state's colour (also used for the dashboard's state dot).
QColor stateColor(TrayState state);

} // namespace llmproxy::icons
