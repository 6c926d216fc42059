// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/logging.h"

Q_LOGGING_CATEGORY(lcHttp, "llmproxy.http", QtInfoMsg)
Q_LOGGING_CATEGORY(lcRelay, "llmproxy.relay", QtInfoMsg)
Q_LOGGING_CATEGORY(lcBatch, "llmproxy.batch", QtInfoMsg)
Q_LOGGING_CATEGORY(lcQueue, "llmproxy.queue", QtInfoMsg)
Q_LOGGING_CATEGORY(lcProvider, "llmproxy.provider", QtInfoMsg)
Q_LOGGING_CATEGORY(lcApp, "llmproxy.app", QtInfoMsg)

namespace llmproxy {

QByteArray redactedKey(const QByteArray &key) {
    if (key.isEmpty())
        return QByteArrayLiteral("(none)");
    if (key.size() < 12)
        return QByteArrayLiteral("…");
    return QByteArrayLiteral("…") + key.right(4);
}

} // namespace llmproxy
