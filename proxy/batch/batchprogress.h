// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the dashboard shows of one batch: a plain value, safe to copy across threads.

#include "accounting/ledger.h"

#include <QByteArray>
#include <QDateTime>
#include <QMetaType>
#include <QStringList>

namespace llmproxy {

struct BatchProgress {
    QByteArray localId;  // ours, stable from the start (the provider's id comes later)
    QByteArray batchId;  // the provider's id; empty until the batch is created
    QByteArray endpoint; // "/v1/chat/completions"
    QByteArray model;
    QByteArray provider = {}; // the configured provider's name ("openai", "gemini", ...)
    QByteArray keyHint;       // the key's last four characters ("…abcd"), never more
    QByteArray callers;       // its callers' token names ("alice, bob +2"), if tokens are used
    // uploading, creating, then the normalised status whatever the provider (validating,
    // running, finalizing, cancelling, completed, failed, expired, cancelled: statusName()),
    // downloading while results stream in; waiting_for_key, waiting_for_quota, dissolved.
    QByteArray status;
    bool active = true;
    int total = 0;     // requests in the batch
    int completed = 0; // as the provider counts them
    int failed = 0;
    QDateTime createdAt; // UTC: when the batch was formed
    QDateTime submittedAt;
    QDateTime endedAt;
    QStringList errors; // the provider's messages, if any
    // What its answered lines used and cost (labels and hour empty): requests, tokens, paid,
    // list and saved, as the ledger counted them; kept in the store with the lines' results
    // (batch_history), so a restart keeps them.
    accounting::LedgerRow usage;
};

} // namespace llmproxy

Q_DECLARE_METATYPE(llmproxy::BatchProgress)
