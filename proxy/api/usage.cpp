// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/usage.h"

#include "api/json.h"

#include <algorithm>
#include <initializer_list>

namespace llmproxy {

namespace {

// How one named count reads: absent (or null), a usable count, or something that makes the
// whole usage object untrustworthy (negative, fractional, a string...).
enum class Read { Absent, Ok, Bad };

Read readCount(const QList<json::Member> &members, QByteArrayView key, std::optional<qint64> &out) {
    const json::Member *m = json::find(members, key);
    if (!m || m->kind == json::Kind::Null)
        return Read::Absent;
    const std::optional<qint64> value = json::integerValue(m->value);
    if (!value || *value < 0)
        return Read::Bad;
    out = *value;
    return Read::Ok;
}

// `key` inside the object member `parent` (e.g. prompt_tokens_details.cached_tokens).
Read readNestedCount(const QList<json::Member> &members, QByteArrayView parent, QByteArrayView key,
                     std::optional<qint64> &out) {
    const json::Member *m = json::find(members, parent);
    if (!m || m->kind == json::Kind::Null)
        return Read::Absent;
    if (m->kind != json::Kind::Object)
        return Read::Bad;
    const std::optional<QList<json::Member>> inner =
        json::objectMembers(m->value, json::Strictness::Lenient);
    if (!inner)
        return Read::Bad;
    return readCount(*inner, key, out);
}

// The members of an answer's "usage" object: nullopt if the body is not a JSON object or has
// no usage object (absent, null or another kind).
std::optional<QList<json::Member>> usageMembers(QByteArrayView body) {
    const std::optional<QList<json::Member>> top =
        json::objectMembers(body, json::Strictness::Lenient);
    if (!top)
        return std::nullopt;
    const json::Member *usage = json::find(*top, "usage");
    if (!usage || usage->kind != json::Kind::Object)
        return std::nullopt;
    return json::objectMembers(usage->value, json::Strictness::Lenient);
}

// Every count was absent or usable: none makes the usage object untrustworthy.
bool noneBad(std::initializer_list<Read> reads) {
    return std::none_of(reads.begin(), reads.end(), [](Read r) { return r == Read::Bad; });
}

} // namespace

Usage usageFromAnswer(QByteArrayView body) {
    const std::optional<QList<json::Member>> usage = usageMembers(body);
    if (!usage)
        return {};

    const bool responses = json::find(*usage, "input_tokens") != nullptr;
    const QByteArrayView inputKey = responses ? "input_tokens" : "prompt_tokens";
    const QByteArrayView outputKey = responses ? "output_tokens" : "completion_tokens";
    const QByteArrayView inputDetails =
        responses ? "input_tokens_details" : "prompt_tokens_details";
    const QByteArrayView outputDetails =
        responses ? "output_tokens_details" : "completion_tokens_details";

    Usage result;
    if (!noneBad({readCount(*usage, inputKey, result.input),
                  readCount(*usage, outputKey, result.output),
                  readNestedCount(*usage, inputDetails, "cached_tokens", result.cachedInput),
                  readNestedCount(*usage, outputDetails, "reasoning_tokens", result.reasoning)}))
        return {};
    if (!result.input)
        return {};
    // A part larger than its whole is not a usage we can bill.
    if (result.cachedInput && *result.cachedInput > *result.input)
        return {};
    if (result.reasoning && result.output && *result.reasoning > *result.output)
        return {};
    result.reported = true;
    return result;
}

Usage anthropicUsageFromAnswer(QByteArrayView body) {
    const std::optional<QList<json::Member>> usage = usageMembers(body);
    if (!usage)
        return {};

    std::optional<qint64> uncached, cacheWrite, cacheRead, output;
    if (!noneBad({readCount(*usage, "input_tokens", uncached),
                  readCount(*usage, "cache_creation_input_tokens", cacheWrite),
                  readCount(*usage, "cache_read_input_tokens", cacheRead),
                  readCount(*usage, "output_tokens", output)}))
        return {};
    if (!uncached)
        return {};
    qint64 input = 0;
    if (__builtin_add_overflow(*uncached, cacheWrite.value_or(0), &input) ||
        __builtin_add_overflow(input, cacheRead.value_or(0), &input))
        return {};
    Usage result;
    result.input = input;
    result.cachedInput = cacheRead;
    result.cacheWriteInput = cacheWrite;
    // The 5-minute / 1-hour split of the cache writes, when given and consistent.
    std::optional<qint64> written5m, written1h;
    const Read split5m =
        readNestedCount(*usage, "cache_creation", "ephemeral_5m_input_tokens", written5m);
    const Read split1h =
        readNestedCount(*usage, "cache_creation", "ephemeral_1h_input_tokens", written1h);
    if (split5m != Read::Bad && split1h != Read::Bad) {
        const qint64 total = cacheWrite.value_or(0);
        qint64 sum = 0;
        if (!__builtin_add_overflow(written5m.value_or(0), written1h.value_or(0), &sum) &&
            (written5m || written1h) && sum == total)
            result.cacheWrite1hInput = written1h.value_or(0);
    }
    result.output = output;
    result.reported = true;
    return result;
}

} // namespace llmproxy
