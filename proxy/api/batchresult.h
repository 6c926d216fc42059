// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Turning what the provider said about one request into the answer its client receives.

#include "api/httpanswer.h"
#include "api/jsonl.h"
#include "api/resultline.h"

#include <QByteArray>
#include <QStringList>

namespace llmproxy {

// Header names the proxy adds to batched answers.
inline constexpr char BatchIdHeader[] = "x-llm-proxy-batch-id";
inline constexpr char RequestIdHeader[] = "x-request-id";

// A line with a response: its status_code becomes the status (a missing/invalid one is a 502),
// its body the body (byte for byte), its request_id the x-request-id header. A line with an
// error (batch_expired, batch_cancelled, request_timeout, anything else) becomes a synthesized
// OpenAI-shaped error with a fitting status (never 200), carrying the provider's message.
// Every answer names the batch in the BatchIdHeader header.
HttpAnswer answerForLine(const jsonl::OutputLine &line, const QByteArray &batchId);
// The same for a normalised result line (any provider): an answer passes through; one without
// an answer is synthesized from its outcome (Expired 504, Cancelled 503) or its error code.
HttpAnswer answerForResult(const ResultLine &line, const QByteArray &batchId);

// The request was in a batch that ended but is in neither result file.
HttpAnswer answerForMissingLine(const QByteArray &batchId, const QByteArray &batchStatus);

// The request's line in the result file is `lineBytes` long, over the `limitBytes` that the
// proxy reads whole: a 502 with code result_line_too_large (the rest of the file is read).
HttpAnswer answerForTooLongLine(const QByteArray &batchId, qint64 lineBytes, qint64 limitBytes);

// The batch ended as `failed` (or `expired`/`cancelled` with no line for this request):
// carry the provider's errors.data messages to the client.
HttpAnswer answerForFailedBatch(const QByteArray &batchId, const QByteArray &batchStatus,
                                const QStringList &providerMessages);

} // namespace llmproxy
