// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/resultline.h"

#include "api/json.h"

namespace llmproxy {
namespace {

std::optional<qint64> countOf(const QList<json::Member> &members, QByteArrayView key) {
    const json::Member *member = json::find(members, key);
    if (!member || member->kind != json::Kind::Number)
        return std::nullopt;
    const std::optional<qint64> value = json::integerValue(member->value);
    if (!value || *value < 0)
        return std::nullopt;
    return value;
}

// details.<key>, when `details` is an object with that count.
std::optional<qint64> detailOf(const QList<json::Member> &members, QByteArrayView details,
                               QByteArrayView key) {
    const json::Member *member = json::find(members, details);
    if (!member || member->kind != json::Kind::Object)
        return std::nullopt;
    const auto fields = json::objectMembers(member->value, json::Strictness::Lenient);
    return fields ? countOf(*fields, key) : std::nullopt;
}

bool isSuccess(int status) {
    return status >= 200 && status <= 299;
}

} // namespace

std::optional<TokenUsage> usageFromOpenAiBody(QByteArrayView body) {
    const auto members = json::objectMembers(body, json::Strictness::Lenient);
    if (!members)
        return std::nullopt;
    const json::Member *usageMember = json::find(*members, "usage");
    if (!usageMember || usageMember->kind != json::Kind::Object)
        return std::nullopt;
    const auto usage = json::objectMembers(usageMember->value, json::Strictness::Lenient);
    if (!usage)
        return std::nullopt;
    TokenUsage out;
    if (json::find(*usage, "input_tokens")) { // Responses
        out.input = countOf(*usage, "input_tokens");
        out.output = countOf(*usage, "output_tokens");
        out.cachedInput = detailOf(*usage, "input_tokens_details", "cached_tokens");
        out.reasoning = detailOf(*usage, "output_tokens_details", "reasoning_tokens");
    } else { // Chat Completions, Completions, embeddings
        out.input = countOf(*usage, "prompt_tokens");
        out.output = countOf(*usage, "completion_tokens");
        out.cachedInput = detailOf(*usage, "prompt_tokens_details", "cached_tokens");
        out.reasoning = detailOf(*usage, "completion_tokens_details", "reasoning_tokens");
    }
    if (!out.input && !out.output && !out.cachedInput && !out.reasoning)
        return std::nullopt;
    return out;
}

ResultLine fromOpenAiOutputLine(jsonl::OutputLine line) {
    ResultLine out;
    out.customId = std::move(line.customId);
    out.requestId = std::move(line.requestId);
    out.errorCode = std::move(line.errorCode);
    out.errorMessage = std::move(line.errorMessage);
    if (line.hasResponse) {
        out.hasAnswer = true;
        out.httpStatus = line.statusCode;
        out.body = std::move(line.body);
        out.outcome = isSuccess(out.httpStatus) ? ResultOutcome::Succeeded : ResultOutcome::Errored;
        if (out.outcome == ResultOutcome::Succeeded)
            out.usage = usageFromOpenAiBody(out.body);
        return out;
    }
    if (out.errorCode == "batch_expired")
        out.outcome = ResultOutcome::Expired;
    else if (out.errorCode == "batch_cancelled")
        out.outcome = ResultOutcome::Cancelled;
    else
        out.outcome = ResultOutcome::Errored;
    return out;
}

} // namespace llmproxy
