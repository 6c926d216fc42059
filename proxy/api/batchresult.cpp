// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/batchresult.h"

namespace llmproxy {
namespace {

// Both values come from the provider: one with CR, LF or NUL is left out, never written as a
// header line of its own (the writer checks again).
void addBatchHeader(HttpAnswer &answer, const QByteArray &batchId) {
    if (isSafeHeaderValue(batchId))
        answer.headers.append({QByteArray(BatchIdHeader), batchId});
}

void addRequestIdHeader(HttpAnswer &answer, const QByteArray &requestId) {
    if (!requestId.isEmpty() && isSafeHeaderValue(requestId))
        answer.headers.append({QByteArray(RequestIdHeader), requestId});
}

// A status a client can be given as the final answer. 1xx codes are interim responses in
// HTTP/1.1: a client would keep waiting for the real one, so they count as invalid too.
bool isFinalHttpStatus(int status) {
    return status >= 200 && status <= 599;
}

QString batchName(const QByteArray &batchId) {
    return QStringLiteral("Batch ") + QString::fromUtf8(batchId);
}

HttpAnswer answerForError(const ResultLine &line, const QByteArray &batchId) {
    int status = 502;
    QString defaultMessage;
    if (line.outcome == ResultOutcome::Expired || line.errorCode == "batch_expired") {
        status = 504;
        defaultMessage = QStringLiteral("This request could not be executed before the batch's "
                                        "24h completion window expired.");
    } else if (line.errorCode == "request_timeout") {
        status = 504;
        defaultMessage = QStringLiteral("The request timed out while the batch was running.");
    } else if (line.outcome == ResultOutcome::Cancelled || line.errorCode == "batch_cancelled") {
        status = 503;
        defaultMessage =
            QStringLiteral("The batch was cancelled before this request could be executed.");
    } else if (line.errorCode.isEmpty()) {
        defaultMessage = QStringLiteral("The provider reported an error for this request "
                                        "without a code or message.");
    } else {
        defaultMessage = QStringLiteral("The provider reported the error '") +
                         QString::fromUtf8(line.errorCode) +
                         QStringLiteral("' for this request without a message.");
    }
    const QString message =
        line.errorMessage.trimmed().isEmpty() ? defaultMessage : line.errorMessage;
    HttpAnswer answer = errorAnswer(status, message, ErrorType::Server, line.errorCode);
    addBatchHeader(answer, batchId);
    return answer;
}

} // namespace

HttpAnswer answerForLine(const jsonl::OutputLine &line, const QByteArray &batchId) {
    return answerForResult(fromOpenAiOutputLine(line), batchId);
}

HttpAnswer answerForResult(const ResultLine &line, const QByteArray &batchId) {
    if (!line.hasAnswer)
        return answerForError(line, batchId);

    if (!isFinalHttpStatus(line.httpStatus)) {
        const QString statusText = line.httpStatus == 0
                                       ? QStringLiteral("no valid status_code")
                                       : QStringLiteral("status_code %1").arg(line.httpStatus);
        HttpAnswer answer = errorAnswer(
            502,
            QStringLiteral("Invalid response from provider: the result of this request in ") +
                batchName(batchId) + QStringLiteral(" has ") + statusText + QLatin1Char('.'),
            ErrorType::Server, QByteArrayLiteral("invalid_response_from_provider"));
        addRequestIdHeader(answer, line.requestId);
        addBatchHeader(answer, batchId);
        return answer;
    }

    HttpAnswer answer;
    answer.status = line.httpStatus;
    answer.contentType = QByteArrayLiteral("application/json");
    answer.body = line.body;
    answer.synthesized = false;
    addRequestIdHeader(answer, line.requestId);
    addBatchHeader(answer, batchId);
    return answer;
}

HttpAnswer answerForMissingLine(const QByteArray &batchId, const QByteArray &batchStatus) {
    const QString status =
        batchStatus.isEmpty() ? QStringLiteral("unknown") : QString::fromUtf8(batchStatus);
    HttpAnswer answer =
        errorAnswer(502,
                    batchName(batchId) + QStringLiteral(" ended with status '") + status +
                        QStringLiteral("' but its result files contain no line for this request."),
                    ErrorType::Server, QByteArrayLiteral("missing_from_batch_results"));
    addBatchHeader(answer, batchId);
    return answer;
}

HttpAnswer answerForTooLongLine(const QByteArray &batchId, qint64 lineBytes, qint64 limitBytes) {
    HttpAnswer answer = errorAnswer(
        502,
        QStringLiteral("The result of this request in ") + batchName(batchId) +
            QStringLiteral(" is a line of %1 bytes, over the %2-byte limit of a result line "
                           "that llm-proxy reads; the provider's answer was not read.")
                .arg(lineBytes)
                .arg(limitBytes),
        ErrorType::Server, QByteArrayLiteral("result_line_too_large"));
    addBatchHeader(answer, batchId);
    return answer;
}

HttpAnswer answerForFailedBatch(const QByteArray &batchId, const QByteArray &batchStatus,
                                const QStringList &providerMessages) {
    QStringList messages;
    for (const QString &message : providerMessages) {
        const QString text = message.trimmed();
        if (!text.isEmpty())
            messages.append(text);
    }
    QString message = batchName(batchId) + QStringLiteral(" failed");
    if (!batchStatus.isEmpty() && batchStatus != "failed")
        message +=
            QStringLiteral(" (status '") + QString::fromUtf8(batchStatus) + QStringLiteral("')");
    message += QStringLiteral(": ");
    message += messages.isEmpty() ? QStringLiteral("the provider gave no reason.")
                                  : messages.join(QStringLiteral("; "));
    HttpAnswer answer =
        errorAnswer(502, message, ErrorType::Server, QByteArrayLiteral("batch_failed"));
    addBatchHeader(answer, batchId);
    return answer;
}

} // namespace llmproxy
