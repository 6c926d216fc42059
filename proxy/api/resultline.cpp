// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/resultline.h"

namespace llmproxy {
namespace {

bool isSuccess(int status) {
    return status >= 200 && status <= 299;
}

} // namespace

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
            out.usage = usageFromAnswer(out.body);
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
