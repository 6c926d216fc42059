// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The Anthropic Messages stream replay (issue 13): a streaming client's answer built from the
// finished message a batch (or a synchronous call) returned, as the Messages API's own event
// sequence, with nothing invented:
//
//   event: message_start        {"type":"message_start","message":{...the message, content [],
//                                stop_reason and stop_sequence null, usage.output_tokens 0}}
//   per content block i:
//   event: content_block_start  {"type":"content_block_start","index":i,"content_block":{...}}
//   event: content_block_delta  text_delta (text), input_json_delta (tool_use and
//                               server_tool_use input), thinking_delta then signature_delta
//                               (thinking), citations_delta (a text block's citations)
//   event: content_block_stop
//   event: message_delta        {"delta":{"stop_reason","stop_sequence"},"usage":{...the whole
//                                usage object}}
//   event: message_stop
//
// Values the body holds (ids, model, usage, tool ids and names, signatures, citations, blocks
// of other types) are copied byte for byte; only texts are decoded, cut on code point
// boundaries and quoted again. Blocks of types without deltas (redacted_thinking, tool results)
// go whole in their content_block_start. A body that is not a message is refused as a whole
// before anything is written.

#include "api/httpanswer.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QString>

#include <optional>

namespace llmproxy::sse::anthropic {

struct Options {
    // A text is cut into at most maxPieces deltas of at least minPieceBytes each (the last may
    // be shorter), every cut moved forward to the start of a code point.
    int maxPieces = 8;
    int minPieceBytes = 32;
};

struct Result {
    QByteArray stream;            // every event, in order (empty on error)
    std::optional<QString> error; // why the body cannot be replayed
};

Result replay(QByteArrayView message, const Options &options = {});

// `event: ping`, the keep-alive the API itself sends (the SDKs skip it).
QByteArray pingEvent();

// `event: error` with {"type":"error","error":{"type","message"}}: an Anthropic-shaped failure
// is passed on as it is (on one line); any other (an OpenAI-shaped answer the proxy made) gets
// the Anthropic error type of its status and its message.
QByteArray errorEvent(const HttpAnswer &failure);

// The Anthropic error type for an HTTP status (400 invalid_request_error, 401
// authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
// rate_limit_error, 504 timeout_error, 529 overloaded_error, anything else api_error).
QByteArray errorTypeForStatus(int status);

} // namespace llmproxy::sse::anthropic
