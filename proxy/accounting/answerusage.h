// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The usage of a relayed answer, read from the bytes the client was sent (the relay never
// changes a request to get it).

#include "api/usage.h"

#include <QByteArray>
#include <QByteArrayView>

namespace llmproxy::accounting {

// The usage of the last event of a server-sent-events stream that reports one: a chat or
// completions chunk with a non-null "usage" (sent last when the client asked for
// stream_options.include_usage), or a Responses event whose "response" object has one
// (response.completed). `tail` is the end of the stream (whole events after its first blank
// line are read). reported=false when no event has usage.
Usage usageFromEventStream(QByteArrayView tail);

// The usage of an Anthropic Messages event stream (`events`: whole events, in order): the
// `message_start` event's message.usage (input, cache writes and reads, the first output count),
// each member updated by the `message_delta` events' usage (cumulative counts: output_tokens,
// and in newer API versions the input counts too), read as anthropicUsageFromAnswer() reads a
// message's usage. reported=false when neither event carries a usage object.
Usage anthropicUsageFromEventStream(QByteArrayView events);

// What a relay keeps of an answer body to read its usage from: the whole body of a JSON answer
// up to a bound, or the tail of an event stream.
class AnswerCapture {
public:
    // Call with the answer's head: `eventStream` for text/event-stream; `identity` false when
    // the body is compressed (nothing is kept then: its usage is not reported); `anthropic` for
    // Anthropic's Messages API (its usage names, and a stream's input counts in its first event,
    // so the stream's start is kept as well as its end).
    void start(bool eventStream, bool identity, bool anthropic = false);
    void append(QByteArrayView data);
    // The usage of what was kept (reported=false when the body was too large, compressed, or
    // had none).
    Usage usage() const;
    bool eventStream() const { return m_eventStream; }

private:
    static constexpr qsizetype MaxJsonBytes = 8 * 1024 * 1024;
    static constexpr qsizetype StreamTailBytes = 256 * 1024;
    static constexpr qsizetype StreamHeadBytes = 64 * 1024;
    QByteArray m_kept;
    QByteArray m_head; // an Anthropic stream's start (message_start), once m_kept lost it
    bool m_eventStream = false;
    bool m_anthropic = false;
    bool m_trimmed = false; // m_kept lost the stream's start
    bool m_enabled = false;
    bool m_overflowed = false;
};

} // namespace llmproxy::accounting
