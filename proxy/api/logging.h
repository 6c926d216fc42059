// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QLoggingCategory>

// One logging category per area; --verbose turns on their debug output.
Q_DECLARE_LOGGING_CATEGORY(lcHttp)     // llmproxy.http
Q_DECLARE_LOGGING_CATEGORY(lcRelay)    // llmproxy.relay
Q_DECLARE_LOGGING_CATEGORY(lcBatch)    // llmproxy.batch
Q_DECLARE_LOGGING_CATEGORY(lcQueue)    // llmproxy.queue
Q_DECLARE_LOGGING_CATEGORY(lcProvider) // llmproxy.provider
Q_DECLARE_LOGGING_CATEGORY(lcApp)      // llmproxy.app

namespace llmproxy {

// A key as it may appear in logs and the UI: "…" plus its last four characters, never more.
QByteArray redactedKey(const QByteArray &key);

} // namespace llmproxy
