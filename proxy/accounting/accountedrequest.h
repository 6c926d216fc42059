// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One answered request as the accounting sees it: made once, where the answer is final (a
// batch line recorded, a synchronous fallback answered, a relayed answer finished), and handed
// to every consumer (the ledger in the store, /metrics, /stats). Nothing in it is a secret:
// `caller` is a proxy token's name or a key hint ("…" + the key's last 4 characters), never a
// key.

#include "accounting/cost.h"
#include "api/usage.h"

#include <QByteArray>
#include <QMetaType>

namespace llmproxy::accounting {

struct AccountedRequest {
    Route route = Route::Batch;
    QByteArray endpoint; // "/v1/chat/completions"
    QByteArray model;    // as the client asked for it ("" when the body had none)
    QByteArray caller;   // token name or key hint; never a key
    QByteArray provider; // the provider's profile name ("openai", ...)
    int httpStatus = 0;  // what the client was answered with
    bool streamed = false;
    Usage usage;             // as the provider reported it (reported=false: none)
    Cost cost;               // from the price table; unknown parts stay empty
    qint64 answeredAtMs = 0; // wall clock
    double seconds = 0;      // from arrival to answer
};

} // namespace llmproxy::accounting

Q_DECLARE_METATYPE(llmproxy::accounting::AccountedRequest)
