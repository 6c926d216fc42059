// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The SSE replay (issue 11): a streaming client's answer built from the provider's finished,
// non-streamed body, as the endpoint's own event sequence, and nothing invented.
//
// Pure functions over bytes: no I/O, no clock, QtCore only. Values the body holds (ids, model,
// created, usage, logprobs, tool call ids, whole output items) are copied byte for byte; only
// the text of content, refusals and arguments is decoded, cut into a few pieces on code point
// boundaries and quoted again. A body that is not the expected shape is refused as a whole before
// anything is written, so a caller never sends half a replay: it sends the error event instead.
//
//   chat         data: {chat.completion.chunk}... [usage chunk] data: [DONE]
//   completions  data: {text_completion}...       [usage chunk] data: [DONE]
//   responses    event: response.created ... event: response.completed (no [DONE]: the API
//                sends none), every data object with a sequence_number counting from 0.

#include "api/httpanswer.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QString>

#include <functional>
#include <optional>

namespace llmproxy::sse {

enum class Endpoint {
    ChatCompletions, // /v1/chat/completions
    Completions,     // /v1/completions
    Responses,       // /v1/responses
    Messages,        // Anthropic's /v1/messages (anthropicsse.h)
};

struct ReplayOptions {
    Endpoint endpoint = Endpoint::ChatCompletions;
    // The request's stream_options.include_usage (chat and completions): "usage": null on every
    // chunk, then one chunk with "choices": [] and the body's usage before [DONE].
    bool includeUsage = false;
    // How a text is cut: into at most maxPieces deltas of at least minPieceBytes each (the last
    // may be shorter), every cut moved forward to the start of a code point.
    int maxPieces = 8;
    int minPieceBytes = 32;
};

// The request body's stream options for `endpoint`: includeUsage is true only when the request
// has "stream_options": {"include_usage": true}. An unreadable body gives the defaults.
ReplayOptions optionsForRequest(Endpoint endpoint, QByteArrayView requestBody);

// Why a body cannot be replayed: written for the client, who receives it in the error event.
struct ReplayError {
    QString message;
};

// Receives the stream in order, a few whole events at a time (never a partial event).
using Sink = std::function<void(const QByteArray &events)>;

// Writes the whole replay of `body` to `sink`. On error nothing has been written.
std::optional<ReplayError> replay(const ReplayOptions &options, QByteArrayView body,
                                  const Sink &sink);

struct ReplayResult {
    QByteArray stream;                // the complete SSE byte sequence (empty on error)
    std::optional<ReplayError> error; // set when the body cannot be replayed
};
// The same, as one byte sequence.
ReplayResult replayToBytes(const ReplayOptions &options, QByteArrayView body);

// The stream error the official SDKs raise, for a failure once the headers are out. `failure`
// is an error answer: the provider's (an OpenAI-shaped {"error":{...}} body, any status) or the
// proxy's own from errorAnswer(). A body of another shape becomes a server_error naming the
// status. chat and completions: `data: {"error":{...}}`; responses: an `error` event
// (ResponseErrorEvent: type, code, message, param, sequence_number); messages: Anthropic's
// `error` event (anthropicsse.h).
QByteArray errorEvent(Endpoint endpoint, const HttpAnswer &failure, qint64 sequenceNumber = 0);

// `: keep-alive`, the comment the SDKs skip, sent while the batch runs.
QByteArray keepAliveComment();
// What a waiting stream of `endpoint` is sent while its batch runs: the comment, or for
// Messages the `ping` event Anthropic's API itself sends.
QByteArray keepAliveFor(Endpoint endpoint);

// `: x-llm-proxy-batch-id <id>`, for a batch id known only after the headers went out. Bytes
// that could end the comment line (CR, LF, NUL and other controls) are left out.
QByteArray batchIdComment(QByteArrayView batchId);

} // namespace llmproxy::sse
