// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/provider.h"

#include "api/batchresult.h"

namespace llmproxy {

bool ProviderError::retryable() const {
    return httpStatus == 0 || httpStatus == 408 || httpStatus == 409 || httpStatus == 429 ||
           httpStatus >= 500;
}

bool SyncAnswer::retryable() const {
    return httpStatus == 408 || httpStatus == 409 || httpStatus == 429 || httpStatus >= 500;
}

namespace {
struct StatusNameEntry {
    BatchPhase phase;
    BatchEnd end;
    const char *name;
};
constexpr StatusNameEntry StatusNames[] = {
    {BatchPhase::Validating, BatchEnd::None, "validating"},
    {BatchPhase::Running, BatchEnd::None, "running"},
    {BatchPhase::Finalizing, BatchEnd::None, "finalizing"},
    {BatchPhase::Cancelling, BatchEnd::None, "cancelling"},
    {BatchPhase::Ended, BatchEnd::Completed, "completed"},
    {BatchPhase::Ended, BatchEnd::Failed, "failed"},
    {BatchPhase::Ended, BatchEnd::Expired, "expired"},
    {BatchPhase::Ended, BatchEnd::Cancelled, "cancelled"},
};
} // namespace

QByteArray statusName(BatchPhase phase, BatchEnd end) {
    if (phase != BatchPhase::Ended)
        end = BatchEnd::None;
    for (const StatusNameEntry &entry : StatusNames) {
        if (entry.phase == phase && entry.end == end)
            return QByteArray(entry.name);
    }
    return QByteArrayLiteral("ended");
}

std::optional<std::pair<BatchPhase, BatchEnd>> statusFromName(QByteArrayView name) {
    for (const StatusNameEntry &entry : StatusNames) {
        if (name == entry.name)
            return std::pair{entry.phase, entry.end};
    }
    return std::nullopt;
}

HttpAnswer Provider::answerFor(const ResultLine &line, const QByteArray &batchId) const {
    return answerForResult(line, batchId);
}

bool Provider::isPermanentPollError(const ProviderError &error) {
    return error.httpStatus == 401 || error.httpStatus == 403 || error.httpStatus == 404;
}

void Provider::sendSynchronousWithin(const Credentials &creds, const QByteArray &endpoint,
                                     const QByteArray &body, std::chrono::milliseconds timeout,
                                     Callback<SyncAnswer> done) {
    Q_UNUSED(timeout);
    sendSynchronous(creds, endpoint, body, std::move(done));
}

} // namespace llmproxy
