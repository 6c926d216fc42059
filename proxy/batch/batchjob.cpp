// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batchjob.h"

#include "api/batchresult.h"
#include "api/jsonl.h"
#include "api/logging.h"
#include "batch/batchcore.h"

#include <QJsonObject>
#include <QUuid>

#include <algorithm>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
std::chrono::milliseconds backoff(int attempt, std::chrono::milliseconds base,
                                  const ProviderError &error) {
    if (error.retryAfter)
        return std::max(*error.retryAfter, 100ms);
    const auto exp = base * (1LL << std::min(attempt, 6));
    return std::min<std::chrono::milliseconds>(exp, 60s);
}
} // namespace

BatchJob::BatchJob(BatchCore *core, Provider *provider, const Clock *clock, Credentials credentials,
                   GroupKey group, QList<quint64> requestIds, QByteArray jsonl,
                   std::chrono::milliseconds pollInterval)
    : QObject(core)
    , m_core(core)
    , m_provider(provider)
    , m_clock(clock)
    , m_credentials(std::move(credentials))
    , m_group(std::move(group))
    , m_waiting(requestIds.cbegin(), requestIds.cend())
    , m_requestCount(int(requestIds.size()))
    , m_jsonl(std::move(jsonl))
    , m_pollInterval(pollInterval)
    , m_localName(QUuid::createUuid().toByteArray(QUuid::WithoutBraces)) {
    m_pollTimer.setSingleShot(true);
    connect(&m_pollTimer, &QTimer::timeout, this, &BatchJob::poll);
    m_progress.localId = m_localName;
    m_progress.endpoint = m_group.endpoint;
    m_progress.model = m_group.model;
    m_progress.keyHint = redactedKey(m_credentials.apiKey);
    m_progress.status = "uploading";
    m_progress.total = m_requestCount;
    m_progress.createdAt = QDateTime::currentDateTimeUtc();
}

void BatchJob::setStatus(const QByteArray &status)
{
    m_progress.status = status;
    m_progress.completed = m_info.completed;
    m_progress.failed = m_info.failed;
}

void BatchJob::start() {
    upload();
}

void BatchJob::upload() {
    m_state = State::Uploading;
    const QString fileName =
        QStringLiteral("llm-proxy-") + QString::fromLatin1(m_localName) + QStringLiteral(".jsonl");
    qCInfo(lcBatch).noquote() << "uploading" << m_requestCount << "requests for" << m_group.endpoint
                              << m_group.model << "(" << m_jsonl.size() << "bytes)";
    m_provider->uploadBatchFile(m_credentials, m_jsonl, fileName,
                                [this](ProviderResult<FileInfo> result) {
                                    if (!result.ok())
                                        return failAll(result.error, "upload");
                                    m_inputFileId = result.value->id;
                                    m_jsonl = QByteArray(); // the provider has it now
                                    create();
                                });
}

void BatchJob::create() {
    m_state = State::Creating;
    setStatus("creating");
    const QJsonObject metadata{
        {QStringLiteral("created_by"), QStringLiteral("llm-proxy")},
        {QStringLiteral("llm_proxy_version"), QStringLiteral(LLMPROXY_VERSION)},
        {QStringLiteral("llm_proxy_batch"), QString::fromLatin1(m_localName)},
    };
    m_provider->createBatch(m_credentials, m_inputFileId, m_group.endpoint, metadata,
                            [this](ProviderResult<BatchInfo> result) {
                                if (!result.ok()) {
                                    failAll(result.error, "create");
                                    return;
                                }
                                m_info = *result.value;
                                m_batchId = m_info.id;
                                m_createdAt = m_clock->now();
                                m_progress.batchId = m_batchId;
                                m_progress.submittedAt = QDateTime::currentDateTimeUtc();
                                setStatus(m_info.status);
                                qCInfo(lcBatch).noquote() << "batch" << m_batchId << "created with"
                                                          << m_requestCount << "requests";
                                Q_EMIT m_core->batchSubmitted(m_batchId, m_requestCount);
                                if (m_info.isTerminal())
                                    return download();
                                m_state = State::Polling;
                                schedulePoll(m_pollInterval);
                            });
}

void BatchJob::schedulePoll(std::chrono::milliseconds delay) {
    m_pollTimer.start(delay);
}

void BatchJob::poll() {
    m_provider->retrieveBatch(m_credentials, m_batchId, [this](ProviderResult<BatchInfo> result) {
        if (!result.ok()) {
            // The batch is paid for: never give up polling it.
            qCWarning(lcBatch).noquote()
                << "polling" << m_batchId << "failed:" << result.error.message << "- retrying";
            schedulePoll(result.error.retryAfter ? std::max(*result.error.retryAfter, 100ms)
                                                 : m_pollInterval);
            return;
        }
        m_info = *result.value;
        setStatus(m_info.status);
        qCDebug(lcBatch).noquote()
            << "batch" << m_batchId << m_info.status << m_info.completed << "/" << m_info.total;
        if (!m_info.isTerminal())
            return schedulePoll(m_pollInterval);
        download();
    });
}

void BatchJob::download() {
    m_state = State::Downloading;
    setStatus("downloading");
    qCInfo(lcBatch).noquote() << "batch" << m_batchId << "ended:" << m_info.status << "("
                              << m_info.completed << "completed," << m_info.failed << "failed)";
    m_filesToRead.clear();
    if (!m_info.outputFileId.isEmpty())
        m_filesToRead.append(m_info.outputFileId);
    if (!m_info.errorFileId.isEmpty())
        m_filesToRead.append(m_info.errorFileId);
    downloadNext();
}

void BatchJob::downloadNext() {
    if (m_filesToRead.isEmpty() || m_waiting.empty())
        return answerRemaining();
    const QByteArray fileId = m_filesToRead.constFirst();
    m_provider->downloadFileLines(
        m_credentials, fileId, [this](QByteArrayView line) { onLine(line); },
        [this](std::optional<ProviderError> error) {
            if (error) {
                if (error->retryable() && m_downloadAttempts < 8) {
                    const auto delay = backoff(m_downloadAttempts++, 500ms, *error);
                    qCWarning(lcBatch).noquote()
                        << "downloading results of" << m_batchId << "failed:" << error->message
                        << "- retrying in" << delay.count() << "ms";
                    QTimer::singleShot(delay, this, &BatchJob::downloadNext);
                    return;
                }
                qCWarning(lcBatch).noquote()
                    << "could not download results of" << m_batchId << ":" << error->message;
            }
            m_downloadAttempts = 0;
            m_filesToRead.removeFirst();
            downloadNext();
        });
}

void BatchJob::onLine(QByteArrayView line) {
    QString error;
    const auto decoded = jsonl::decodeOutputLine(line, &error);
    if (!decoded) {
        if (++m_badLines <= 5)
            qCWarning(lcBatch).noquote() << "batch" << m_batchId << "result line ignored:" << error;
        return;
    }
    const auto requestId = requestIdFromCustomId(decoded->customId);
    if (!requestId || m_waiting.erase(*requestId) == 0)
        return; // not ours, or answered already (a retried download)
    m_core->deliver(*requestId, answerForLine(*decoded, m_batchId));
}

void BatchJob::answerRemaining() {
    if (!m_waiting.empty()) {
        QStringList messages;
        for (const BatchErrorItem &item : std::as_const(m_info.errors)) {
            QString text = item.message;
            if (!item.code.isEmpty())
                text = QString::fromUtf8(item.code) + QStringLiteral(": ") + text;
            if (item.line >= 0)
                text += QStringLiteral(" (line %1)").arg(item.line);
            messages.append(text);
        }
        const bool failed = m_info.status == "failed";
        const HttpAnswer answer = failed ? answerForFailedBatch(m_batchId, m_info.status, messages)
                                         : answerForMissingLine(m_batchId, m_info.status);
        if (!failed)
            qCWarning(lcBatch).noquote() << m_waiting.size() << "requests of" << m_batchId
                                         << "are missing from its result files";
        const auto waiting = std::exchange(m_waiting, {});
        for (quint64 id : waiting)
            m_core->deliver(id, answer);
    }
    cleanUp();
}

void BatchJob::cleanUp() {
    m_state = State::Cleaning;
    QList<QByteArray> files{m_inputFileId, m_info.outputFileId, m_info.errorFileId};
    files.removeAll(QByteArray());
    for (const QByteArray &file : std::as_const(files)) {
        // Fire and forget: a file we fail to delete expires upstream on its own.
        m_provider->deleteFile(m_credentials, file, [file](std::optional<ProviderError> error) {
            if (error)
                qCInfo(lcBatch).noquote() << "could not delete" << file << ":" << error->message;
        });
    }
    finish();
}

void BatchJob::failAll(const ProviderError &error, const char *step) {
    qCWarning(lcBatch).noquote() << "batch" << step << "failed (HTTP" << error.httpStatus
                                 << "):" << error.message;
    m_progress.errors.append(QStringLiteral("%1 failed (HTTP %2): %3")
                                 .arg(QString::fromLatin1(step))
                                 .arg(error.httpStatus)
                                 .arg(error.message));
    const HttpAnswer answer = answerForProviderFailure(error, step);
    const auto waiting = std::exchange(m_waiting, {});
    for (quint64 id : waiting)
        m_core->deliver(id, answer);
    m_info.status = "failed";
    if (!m_inputFileId.isEmpty()) {
        m_provider->deleteFile(m_credentials, m_inputFileId, [](std::optional<ProviderError>) {});
    }
    finish();
}

void BatchJob::finish() {
    m_state = State::Done;
    setStatus(m_info.status);
    m_progress.active = false;
    m_progress.endedAt = QDateTime::currentDateTimeUtc();
    for (const BatchErrorItem &item : std::as_const(m_info.errors))
        m_progress.errors.append(item.message);
    const auto duration =
        m_batchId.isEmpty()
            ? 0ms
            : std::chrono::duration_cast<std::chrono::milliseconds>(m_clock->now() - m_createdAt);
    m_core->jobEnded(this, m_info.status == "completed", duration);
}

HttpAnswer BatchJob::answerForProviderFailure(const ProviderError &error, const char *step) const {
    const QString what = QStringLiteral("llm-proxy could not %1 the batch for this request")
                             .arg(QString::fromLatin1(step));
    const QString detail =
        error.message.isEmpty() ? QString() : QStringLiteral(": ") + error.message;
    const int s = error.httpStatus;
    if (s >= 400 && s < 500 && s != 408 && s != 409) {
        // The provider refused us (bad key, quota, bad file): pass its verdict on.
        HttpAnswer answer =
            errorAnswer(s, what + detail,
                        error.type.isEmpty() ? ErrorType::InvalidRequest : error.type.constData(),
                        error.code, error.param);
        if (error.retryAfter)
            answer.headers.emplaceBack("retry-after", QByteArray::number(std::max<qint64>(
                                                          1, error.retryAfter->count() / 1000)));
        return answer;
    }
    const QString reason = s == 0 ? QStringLiteral(" (the provider could not be reached)")
                                  : QStringLiteral(" (the provider answered HTTP %1)").arg(s);
    return errorAnswer(502, what + reason + detail, ErrorType::Server,
                       QByteArrayLiteral("batch_") + step + QByteArrayLiteral("_failed"));
}

} // namespace llmproxy
