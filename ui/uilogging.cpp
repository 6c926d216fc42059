// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/uilogging.h"

Q_LOGGING_CATEGORY(lcUi, "llmproxy.ui", QtInfoMsg)
