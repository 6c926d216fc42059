// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/provider.h"

namespace llmproxy {

bool ProviderError::retryable() const {
    return httpStatus == 0 || httpStatus == 408 || httpStatus == 409 || httpStatus == 429 ||
           httpStatus >= 500;
}

bool SyncAnswer::retryable() const {
    return httpStatus == 408 || httpStatus == 409 || httpStatus == 429 || httpStatus >= 500;
}

bool BatchInfo::isTerminal() const {
    return status == "failed" || status == "completed" || status == "expired" ||
           status == "cancelled";
}

} // namespace llmproxy
