// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// How numbers, durations and batch groups read in the desktop app.

#include "batch/batchprogress.h"

#include <QString>

namespace llmproxy::display {

// "850 ms", "4.2 s", "3 min 05 s", "2 h 04 min", "3 d 4 h". Negative counts as 0.
QString duration(qint64 milliseconds);
// A latency from the core: "0 ms", "12.4 ms", "850 ms", "4.2 s", "3 min 05 s".
QString latency(double milliseconds);
// 12345 → "12,345" (C locale grouping, the same on every machine).
QString count(quint64 value);
// "chat/completions · gpt-4o-mini" (endpoint without "/v1/", then the model).
QString group(const BatchProgress &batch);
// The provider's id, or ours while the provider has not named it yet.
QString batchName(const BatchProgress &batch);
// Whose batch: "…abcd", or its callers' token names with it ("alice, bob · …abcd"); "client's"
// when nothing about the key is known.
QString who(const BatchProgress &batch);
// The same in a sentence, for a tooltip.
QString whoInWords(const BatchProgress &batch);
// "12 / 100" or "12 / 100 · 3 failed".
QString progress(const BatchProgress &batch);
// Whether a batch ended badly (failed, expired, cancelled, or any error recorded).
bool endedBadly(const BatchProgress &batch);

} // namespace llmproxy::display
