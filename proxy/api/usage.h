// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The tokens one answer used, as the provider reported them.
//
// OpenAI's usage objects (the names issue 10 lists):
//   chat/completions, completions, embeddings: usage.prompt_tokens, usage.completion_tokens,
//     usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens
//     (embeddings report prompt_tokens and total_tokens only);
//   Responses: usage.input_tokens, usage.output_tokens, usage.input_tokens_details.cached_tokens,
//     usage.output_tokens_details.reasoning_tokens.
// Cached tokens are part of the input count, and reasoning tokens part of the output count:
// the OpenAPI spec's CompletionUsage says predicted tokens, "like reasoning tokens", "are still
// counted in the total completion tokens for purposes of billing". So `reasoning` is shown, never
// billed on top of `output`, and `cachedInput` is billed instead of (not besides) input.

#include <QByteArrayView>
#include <QtGlobal>

#include <optional>

namespace llmproxy {

struct Usage {
    std::optional<qint64> input;       // every input token, cached ones included
    std::optional<qint64> cachedInput; // the part of `input` read from the prompt cache
    std::optional<qint64> output;      // every output token, reasoning included
    std::optional<qint64> reasoning;   // the part of `output` spent on reasoning
    // The part of `input` written to the prompt cache (Anthropic's cache_creation_input_tokens,
    // billed at its own price); empty for providers that report no such thing.
    std::optional<qint64> cacheWriteInput;
    // The part of `cacheWriteInput` written to the 1-hour cache (Anthropic's
    // cache_creation.ephemeral_1h_input_tokens, billed at 2x input instead of 1.25x). Known only
    // when the answer gives that breakdown (and it adds up to cacheWriteInput); when it is empty,
    // cache writes cannot be priced exactly.
    std::optional<qint64> cacheWrite1hInput;
    // false: the answer had no (usable) usage object. Such a request is counted as "usage not
    // reported", never as zero tokens; the counts above are then all empty.
    bool reported = false;

    friend bool operator==(const Usage &, const Usage &) = default;
};

// The usage of an OpenAI answer body (chat/completions, completions, Responses or embeddings;
// for a batch result line, pass response.body). The shape is told by the usage object's own
// names: input_tokens means Responses, prompt_tokens the others. An answer that is not a JSON
// object, has no usage object (or "usage": null), or whose usage lacks the input count or holds
// a negative or non-integer count gives reported=false. A count that is absent stays empty.
Usage usageFromAnswer(QByteArrayView body);

// The usage of an Anthropic Messages answer body (a message object, or a batch result's
// result.message): usage.input_tokens counts only the tokens after the last cache breakpoint,
// so `input` = input_tokens + cache_creation_input_tokens + cache_read_input_tokens (every
// input token, as everywhere else), `cachedInput` = cache_read_input_tokens and
// `cacheWriteInput` = cache_creation_input_tokens and `cacheWrite1hInput` =
// cache_creation.ephemeral_1h_input_tokens when the breakdown {ephemeral_5m_input_tokens,
// ephemeral_1h_input_tokens} is given and sums to cache_creation_input_tokens (a breakdown that
// does not add up is ignored, leaving the split unknown); `output` = output_tokens (thinking
// included; Anthropic reports no separate reasoning count). Unusable in the same cases as
// usageFromAnswer(); input_tokens is required.
Usage anthropicUsageFromAnswer(QByteArrayView body);

} // namespace llmproxy
