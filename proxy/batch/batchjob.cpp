// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batchjob.h"

#include "api/batchresult.h"
#include "api/jsonl.h"
#include "api/logging.h"
#include "batch/batchcore.h"

#include <QJsonObject>
#include <QRandomGenerator>

#include <algorithm>
#include <csignal>

using namespace std::chrono_literals;

namespace llmproxy {

void crashPointForTests(const char *point) {
    static const QByteArray at = qgetenv("LLMPROXY_TEST_CRASH_AT");
    if (!at.isEmpty() && at == point) {
        qCWarning(lcBatch) << "test hook: crashing at" << point;
        std::raise(SIGKILL);
    }
}

namespace {
qint64 nowMs() {
    return QDateTime::currentMSecsSinceEpoch();
}

bool errorsSay(const BatchInfo &info, QByteArrayView code) {
    return std::any_of(info.errors.cbegin(), info.errors.cend(),
                       [code](const BatchErrorItem &item) { return item.code == code; });
}
} // namespace

BatchJob::BatchJob(BatchCore *core, Provider *provider, const Clock *clock, Credentials credentials,
                   StoredBatch record, QList<quint64> requestIds, QByteArray jsonl,
                   std::chrono::milliseconds pollInterval, bool resumed)
    : QObject(core)
    , m_core(core)
    , m_provider(provider)
    , m_clock(clock)
    , m_credentials(std::move(credentials))
    , m_record(std::move(record))
    , m_requestIds(std::move(requestIds))
    , m_waiting(m_requestIds.cbegin(), m_requestIds.cend())
    , m_jsonl(std::move(jsonl))
    , m_pollInterval(timerInterval(pollInterval))
    , m_resumed(resumed) {
    m_retryTimer.setSingleShot(true);
    m_record.requestCount = int(m_requestIds.size());
    m_info.id = m_record.batchId;
    m_info.status = m_record.status;
    m_info.inputFileId = m_record.inputFileId;
    m_info.outputFileId = m_record.outputFileId;
    m_info.errorFileId = m_record.errorFileId;
    m_submittedAt =
        m_clock->now() -
        std::chrono::milliseconds(
            m_record.submittedMs > 0 ? std::max<qint64>(0, nowMs() - m_record.submittedMs) : 0);
    m_progress.localId = m_record.localId;
    m_progress.batchId = m_record.batchId;
    m_progress.endpoint = m_record.endpoint;
    m_progress.model = m_record.model;
    m_progress.keyHint = redactedKey(m_credentials.apiKey);
    m_progress.total = m_record.requestCount;
    m_progress.createdAt = QDateTime::fromMSecsSinceEpoch(m_record.createdMs, Qt::UTC);
    if (m_record.submittedMs > 0)
        m_progress.submittedAt = QDateTime::fromMSecsSinceEpoch(m_record.submittedMs, Qt::UTC);
    m_progress.status = m_record.status.isEmpty() ? QByteArray("uploading") : m_record.status;
}

GroupKey BatchJob::group() const {
    return GroupKey{m_record.keyHash, m_record.organization, m_record.project, m_record.endpoint,
                    m_record.model};
}

void BatchJob::setCredentials(const Credentials &credentials) {
    m_credentials = credentials;
    m_progress.keyHint = redactedKey(m_credentials.apiKey);
    if (m_parked && !m_credentials.apiKey.isEmpty()) {
        m_parked = false;
        qCInfo(lcBatch).noquote() << "batch" << m_record.localId << "has a key again: resuming it";
        start();
    }
}

void BatchJob::start() {
    m_attempt = 0;
    if (m_credentials.apiKey.isEmpty()) {
        const bool configured = m_record.keyHash == ConfiguredKeyHash;
        if (m_resumed && m_record.phase >= StoredBatch::Phase::Creating) {
            // It may be paid for already: keep it (and its stored requests) for a key.
            m_parked = true;
            setStatus("waiting_for_key");
            qCWarning(lcBatch).noquote()
                << "batch" << m_record.localId
                << (configured ? "was made with the configured key, and none is configured now"
                               : "was made with a client's key that is no longer known")
                << "- it waits for one";
            return;
        }
        ProviderError error;
        error.httpStatus = 401;
        error.type = "invalid_request_error";
        error.code = "invalid_api_key";
        error.message = configured
                            ? QStringLiteral("no API key is configured in llm-proxy any more "
                                             "(OPENAI_API_KEY, the keychain or the settings)")
                            : QStringLiteral("the provider refused this API key");
        return failAll(error, "send");
    }
    switch (m_record.phase) {
    case StoredBatch::Phase::Forming:
        return upload();
    case StoredBatch::Phase::Uploaded:
        return create();
    case StoredBatch::Phase::Creating:
        return reconcile();
    case StoredBatch::Phase::Created:
        return poll();
    case StoredBatch::Phase::Ended:
        return download();
    case StoredBatch::Phase::Cleaning:
        return cleanUp();
    }
}

void BatchJob::setStatus(const QByteArray &status) {
    m_progress.status = status;
    m_progress.completed = m_info.completed;
    m_progress.failed = m_info.failed;
}

bool BatchJob::persist(bool durableNow) {
    m_core->saveBatch(m_record);
    return !durableNow || m_core->commitNow();
}

void BatchJob::waitForStore(void (BatchJob::*step)()) {
    const auto delay = backoffDelay(std::min(m_attempt++, 6), std::nullopt);
    qCWarning(lcBatch).noquote() << "batch" << m_record.localId
                                 << "waits for the store to be writable before going on";
    m_retryTimer.disconnect(this);
    connect(&m_retryTimer, &QTimer::timeout, this, step);
    m_retryTimer.start(timerInterval(delay));
}

bool BatchJob::isFinalPollError(const ProviderError &error) {
    return error.httpStatus == 401 || error.httpStatus == 403 || error.httpStatus == 404;
}

std::chrono::milliseconds
BatchJob::backoffDelay(int attempt, std::optional<std::chrono::milliseconds> retryAfter) {
    if (retryAfter)
        return std::clamp<std::chrono::milliseconds>(*retryAfter, 100ms, MaxTimerInterval);
    // Exponential with full jitter in its upper half: 0.5 s, 1 s, 2 s ... capped at 2 min.
    const auto base =
        std::min<std::chrono::milliseconds>(500ms * (1LL << std::clamp(attempt, 0, 10)), 2min);
    const auto jitter = std::chrono::milliseconds(
        QRandomGenerator::global()->bounded(qint64(base.count() / 2 + 1)));
    return base / 2 + jitter;
}

std::chrono::milliseconds BatchJob::backoff(const ProviderError *error) const {
    return backoffDelay(m_attempt, error ? error->retryAfter : std::nullopt);
}

void BatchJob::retryLater(const ProviderError &error, void (BatchJob::*step)()) {
    const auto delay = backoff(&error);
    ++m_attempt;
    qCWarning(lcBatch).noquote() << "batch" << m_record.localId << "step failed (HTTP"
                                 << error.httpStatus << "):" << error.message << "- retrying in"
                                 << delay.count() << "ms";
    m_retryTimer.disconnect(this);
    connect(&m_retryTimer, &QTimer::timeout, this, step);
    m_retryTimer.start(timerInterval(delay));
}

void BatchJob::upload() {
    setStatus("uploading");
    const QString fileName = QStringLiteral("llm-proxy-") + QString::fromLatin1(m_record.localId) +
                             QStringLiteral(".jsonl");
    qCInfo(lcBatch).noquote() << "uploading" << m_requestIds.size() << "requests for"
                              << m_record.endpoint << m_record.model << "(" << m_jsonl.size()
                              << "bytes)";
    m_provider->uploadBatchFile(m_credentials, m_jsonl, fileName,
                                [this](ProviderResult<FileInfo> result) {
                                    if (!result.ok()) {
                                        if (result.error.retryable() && m_attempt + 1 < MaxAttempts)
                                            return retryLater(result.error, &BatchJob::upload);
                                        return failAll(result.error, "upload");
                                    }
                                    crashPointForTests("after_upload");
                                    m_attempt = 0;
                                    m_record.inputFileId = result.value->id;
                                    m_info.inputFileId = m_record.inputFileId;
                                    m_record.phase = StoredBatch::Phase::Uploaded;
                                    persist();
                                    m_jsonl = QByteArray(); // the provider has it now
                                    create();
                                });
}

void BatchJob::create() {
    setStatus("creating");
    // Record the intent first: after a crash we look for this batch upstream before
    // creating it again, so the same requests are never paid for twice. Not recorded (the
    // store cannot write): not created.
    m_record.phase = StoredBatch::Phase::Creating;
    if (!persist(true))
        return waitForStore(&BatchJob::create);
    const QJsonObject metadata{
        {QStringLiteral("created_by"), QStringLiteral("llm-proxy")},
        {QStringLiteral("llm_proxy_version"), QStringLiteral(LLMPROXY_VERSION)},
        {QStringLiteral("llm_proxy_batch"), QString::fromLatin1(m_record.localId)},
    };
    m_provider->createBatch(
        m_credentials, m_record.inputFileId, m_record.endpoint, metadata,
        [this](ProviderResult<BatchInfo> result) {
            if (!result.ok()) {
                if (result.error.retryable() && m_attempt + 1 < MaxAttempts) {
                    // It may exist anyway (the answer was lost): look before trying again.
                    m_lastError = result.error;
                    return reconcile();
                }
                return failAll(result.error, "create");
            }
            crashPointForTests("after_create");
            m_attempt = 0;
            m_info = *result.value;
            m_record.batchId = m_info.id;
            m_record.status = m_info.status;
            m_record.submittedMs = nowMs();
            m_record.cancelRequestedMs = 0; // a new batch gets its own grace period
            m_record.phase = StoredBatch::Phase::Created;
            persist(true);
            m_submittedAt = m_clock->now();
            m_cancelSent = false;
            m_cancelAttempts = 0;
            m_progress.batchId = m_record.batchId;
            m_progress.submittedAt = QDateTime::currentDateTimeUtc();
            setStatus(m_info.status);
            qCInfo(lcBatch).noquote() << "batch" << m_record.batchId << "created with"
                                      << m_requestIds.size() << "requests";
            Q_EMIT m_core->batchSubmitted(m_record.batchId, int(m_requestIds.size()));
            if (m_info.isTerminal())
                return poll();
            m_retryTimer.disconnect(this);
            connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::poll);
            m_retryTimer.start(timerInterval(nextPollDelay()));
            m_pollScheduled = true;
        });
}

void BatchJob::reconcile() {
    setStatus("creating");
    qCInfo(lcBatch).noquote() << "looking upstream for batch" << m_record.localId
                              << "before creating it";
    reconcilePage({}, 0);
}

void BatchJob::reconcilePage(const QByteArray &after, int page) {
    m_provider->listBatches(
        m_credentials, after, 100, [this, page](ProviderResult<BatchPage> result) {
            if (!result.ok()) {
                if (result.error.retryable())
                    return retryLater(result.error, &BatchJob::reconcile);
                return failAll(result.error, "find");
            }
            for (const BatchInfo &batch : std::as_const(result.value->batches)) {
                if (batch.metadata.value(QStringLiteral("llm_proxy_batch")).toString() ==
                    QString::fromLatin1(m_record.localId)) {
                    qCInfo(lcBatch).noquote() << "batch" << m_record.localId << "exists upstream as"
                                              << batch.id << "- resuming it";
                    m_info = batch;
                    m_record.batchId = batch.id;
                    m_record.status = batch.status;
                    m_record.submittedMs = batch.createdAt > 0 ? batch.createdAt * 1000 : nowMs();
                    m_record.phase = StoredBatch::Phase::Created;
                    persist(true);
                    m_progress.batchId = batch.id;
                    m_attempt = 0;
                    return poll();
                }
            }
            // Newest first: a few pages reach back far enough for a batch we just created.
            if (result.value->hasMore && page < 9)
                return reconcilePage(result.value->lastId, page + 1);
            // Not created. Without clients (a restart) it is not worth paying for now; with
            // clients, create it.
            const bool anyoneWaiting =
                std::any_of(m_requestIds.cbegin(), m_requestIds.cend(),
                            [this](quint64 id) { return m_core->hasWaitingClient(id); });
            if (!anyoneWaiting)
                return dissolve();
            m_record.phase = StoredBatch::Phase::Uploaded;
            persist();
            retryLater(m_lastError, &BatchJob::create);
        });
}

void BatchJob::settingsChanged(std::chrono::milliseconds pollInterval) {
    m_pollInterval = pollInterval;
    if (!m_pollScheduled || !m_retryTimer.isActive())
        return;
    const auto left = m_retryTimer.remainingTimeAsDuration();
    const auto wanted = nextPollDelay();
    if (wanted < left)
        m_retryTimer.start(timerInterval(wanted));
}

void BatchJob::poll() {
    m_pollScheduled = false;
    m_provider->retrieveBatch(
        m_credentials, m_record.batchId, [this](ProviderResult<BatchInfo> result) {
            m_retryTimer.disconnect(this);
            connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::poll);
            if (!result.ok()) {
                // Gone (404) or not visible to this key (401, 403): polling again would never
                // end. Its clients hear the provider's verdict.
                if (isFinalPollError(result.error))
                    return failAll(result.error, "poll");
                // Otherwise the batch is paid for: never give up polling it.
                qCWarning(lcBatch).noquote() << "polling" << m_record.batchId
                                             << "failed:" << result.error.message << "- retrying";
                m_retryTimer.start(timerInterval(result.error.retryAfter
                                                     ? std::max(*result.error.retryAfter, 100ms)
                                                     : m_pollInterval));
                return;
            }
            m_info = *result.value;
            setStatus(m_info.status);
            crashPointForTests("while_polling");
            qCDebug(lcBatch).noquote() << "batch" << m_record.batchId << m_info.status
                                       << m_info.completed << "/" << m_info.total;
            if (!m_info.isTerminal()) {
                if (graceRanOut())
                    return cancelForGrace();
                m_retryTimer.start(timerInterval(nextPollDelay()));
                m_pollScheduled = true;
                return;
            }
            if (m_info.status == "failed" && errorsSay(m_info, "token_limit_exceeded"))
                return resubmitLater();
            m_record.status = m_info.status;
            m_record.outputFileId = m_info.outputFileId;
            m_record.errorFileId = m_info.errorFileId;
            m_record.endedMs = nowMs();
            QStringList errors;
            for (const BatchErrorItem &item : std::as_const(m_info.errors))
                errors.append(item.message);
            m_record.errors = errors.join(QLatin1Char('\n'));
            m_record.phase = StoredBatch::Phase::Ended;
            persist(true);
            download();
        });
}

bool BatchJob::graceRanOut() const {
    if (m_cancelSent)
        return false;
    // Finalizing: the results are about to exist; cancelling: someone else did it already.
    if (m_info.status != "validating" && m_info.status != "in_progress")
        return false;
    if (m_record.cancelRequestedMs > 0)
        return true; // decided before a restart: the provider may never have heard it
    const auto grace = m_core->settings().gracePeriod;
    return grace && *grace > 0ms && m_clock->now() - m_submittedAt >= *grace;
}

std::chrono::milliseconds BatchJob::nextPollDelay() const {
    // Wake up when the grace period runs out, if that comes before the next regular poll.
    const auto grace = m_core->settings().gracePeriod;
    if (!grace || *grace <= 0ms || m_record.cancelRequestedMs > 0)
        return m_pollInterval;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(m_submittedAt + *grace - m_clock->now());
    return left > 0ms ? std::min(left, m_pollInterval) : m_pollInterval;
}

void BatchJob::cancelForGrace() {
    if (m_record.cancelRequestedMs == 0) {
        const auto grace = m_core->settings().gracePeriod.value_or(0ms);
        qCInfo(lcBatch).noquote() << "batch" << m_record.batchId << "is still" << m_info.status
                                  << "after the grace period (" << grace.count()
                                  << "ms): cancelling it; its requests that did not run go "
                                     "through the synchronous API";
        m_progress.errors.append(
            QStringLiteral("cancelled after the grace period of %1 ms").arg(grace.count()));
        // Recorded first: after a restart, its lines that never ran are still known to be ours
        // to send synchronously, and the cancel is asked for again if it was not heard.
        m_record.cancelRequestedMs = nowMs();
        persist(true);
    }
    m_cancelSent = true;
    m_provider->cancelBatch(
        m_credentials, m_record.batchId, [this](ProviderResult<BatchInfo> result) {
            m_retryTimer.disconnect(this);
            connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::poll);
            if (result.ok()) {
                m_info = *result.value;
                setStatus(m_info.status);
                // Cancelled at once (or it ended meanwhile): read its results now.
                m_retryTimer.start(m_info.isTerminal() ? 0ms : timerInterval(m_pollInterval));
                return;
            }
            if (result.error.retryable() && ++m_cancelAttempts < MaxAttempts) {
                qCWarning(lcBatch).noquote()
                    << "cancelling" << m_record.batchId << "failed:" << result.error.message
                    << "- trying again at the next poll";
                m_cancelSent = false;
                m_retryTimer.start(timerInterval(result.error.retryAfter
                                                     ? std::max(*result.error.retryAfter, 100ms)
                                                     : m_pollInterval));
                return;
            }
            // Typically: it is finishing or finished meanwhile. Keep polling it to its end.
            qCWarning(lcBatch).noquote() << "could not cancel" << m_record.batchId << "(HTTP"
                                         << result.error.httpStatus << "):" << result.error.message;
            m_retryTimer.start(timerInterval(m_pollInterval));
        });
}

void BatchJob::resubmitLater() {
    // The provider's queue for this model is full: wait and submit the same requests again,
    // halving the batch when it keeps not fitting. Clients keep waiting.
    ++m_record.attempts;
    setStatus("waiting_for_quota");
    const auto delay = std::min<std::chrono::milliseconds>(
        std::max<std::chrono::milliseconds>(m_pollInterval, 1s) *
            (1LL << std::min(m_record.attempts - 1, 10)),
        10min);
    qCWarning(lcBatch).noquote() << "batch" << m_record.batchId
                                 << "failed with token_limit_exceeded; submitting again in"
                                 << delay.count() << "ms (attempt" << m_record.attempts << ")";
    const QByteArray oldBatch = m_record.batchId;
    m_record.batchId.clear();
    m_record.status.clear();
    m_record.phase = StoredBatch::Phase::Uploaded;
    persist(true);
    m_progress.batchId.clear();
    if (m_record.attempts >= 2 && m_requestIds.size() > 1) {
        // Too big for the quota: split in two new batches (new files), end this one.
        m_retryTimer.disconnect(this);
        connect(&m_retryTimer, &QTimer::timeout, this, [this] {
            m_core->splitBatch(this, m_record, m_requestIds);
            if (!m_record.inputFileId.isEmpty())
                m_provider->deleteFile(m_credentials, m_record.inputFileId,
                                       [](std::optional<ProviderError>) {});
            finish(false);
        });
        m_retryTimer.start(timerInterval(delay));
        return;
    }
    m_retryTimer.disconnect(this);
    connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::create);
    m_retryTimer.start(timerInterval(delay));
}

void BatchJob::download() {
    setStatus("downloading");
    qCInfo(lcBatch).noquote() << "batch" << m_record.batchId << "ended:" << m_record.status << "("
                              << m_info.completed << "completed," << m_info.failed << "failed)";
    m_filesToRead.clear();
    if (!m_record.outputFileId.isEmpty())
        m_filesToRead.append(m_record.outputFileId);
    if (!m_record.errorFileId.isEmpty())
        m_filesToRead.append(m_record.errorFileId);
    m_attempt = 0;
    downloadNext();
}

void BatchJob::downloadNext() {
    if (m_filesToRead.isEmpty() || m_waiting.empty())
        return answerRemaining();
    const QByteArray fileId = m_filesToRead.constFirst();
    m_provider->downloadFileLines(
        m_credentials, fileId, [this](QByteArrayView line) { onLine(line); },
        [this](const TooLongLine &line) { onLineTooLong(line); },
        [this](std::optional<ProviderError> error) {
            deliverPending();
            if (error) {
                if (error->retryable() && m_attempt + 1 < MaxAttempts)
                    return retryLater(*error, &BatchJob::downloadNext);
                if (error->httpStatus == 401)
                    m_core->keyRefused(m_record.keyHash);
                qCWarning(lcBatch).noquote()
                    << "could not download results of" << m_record.batchId << ":" << error->message;
            }
            m_attempt = 0;
            m_filesToRead.removeFirst();
            downloadNext();
        });
}

void BatchJob::onLine(QByteArrayView line) {
    QString error;
    const auto decoded = jsonl::decodeOutputLine(line, &error);
    if (!decoded) {
        if (++m_badLines <= 5)
            qCWarning(lcBatch).noquote()
                << "batch" << m_record.batchId << "result line ignored:" << error;
        return;
    }
    const auto requestId = requestIdFromCustomId(decoded->customId);
    if (!requestId || m_waiting.erase(*requestId) == 0)
        return; // not ours, or handled already (a retried download)
    if (!decoded->hasResponse &&
        (decoded->errorCode == "batch_expired" || decoded->errorCode == "batch_cancelled")) {
        neverRan(*requestId);
        return;
    }
    queueAnswer(*requestId, answerForLine(*decoded, m_record.batchId));
}

void BatchJob::onLineTooLong(const TooLongLine &line) {
    // Only this request fails. Without a readable custom_id at the line's start, it ends up
    // missing from the results (answerRemaining()).
    const std::optional<QByteArray> customId = jsonl::customIdFromLineStart(line.start);
    const auto requestId = customId ? requestIdFromCustomId(*customId) : std::nullopt;
    if (!requestId || m_waiting.erase(*requestId) == 0)
        return;
    queueAnswer(*requestId, answerForTooLongLine(m_record.batchId, line.bytes, line.limit));
}

void BatchJob::queueAnswer(quint64 requestId, HttpAnswer answer) {
    // Bounds what waits here: at most MaxPendingBytes of bodies, plus one line.
    constexpr qsizetype MaxPendingAnswers = 256;
    constexpr qint64 MaxPendingBytes = 16 * 1024 * 1024;
    m_core->recordResult(requestId, answer);
    m_pendingBytes += answer.body.size();
    m_pendingDelivery.append({requestId, std::move(answer)});
    if (m_pendingDelivery.size() >= MaxPendingAnswers || m_pendingBytes >= MaxPendingBytes)
        deliverPending();
}

void BatchJob::neverRan(quint64 requestId) {
    // After our grace cancel, a client still waiting has waited long enough: the synchronous
    // API answers now (full price). Otherwise it goes into a new batch if someone waits, and is
    // kept unpaid for a client that comes back if nobody does.
    if (m_record.cancelRequestedMs > 0 && m_core->hasWaitingClient(requestId))
        m_core->sendSynchronously(requestId, m_credentials);
    else
        m_core->requeue(requestId);
}

void BatchJob::deliverPending() {
    if (m_pendingDelivery.isEmpty())
        return;
    // Results are durable before anyone is answered: a crash now loses nothing.
    m_core->commit();
    crashPointForTests("after_download");
    const auto pending = std::exchange(m_pendingDelivery, {});
    m_pendingBytes = 0;
    for (const auto &[id, answer] : pending)
        m_core->deliver(id, answer, true);
}

void BatchJob::answerRemaining() {
    if (!m_waiting.empty()) {
        const QByteArray &status = m_record.status;
        const auto waiting = std::exchange(m_waiting, {});
        if (status == "expired" || status == "cancelled") {
            for (quint64 id : waiting) // never ran
                neverRan(id);
        } else {
            const QStringList messages = m_record.errors.isEmpty()
                                             ? QStringList()
                                             : m_record.errors.split(QLatin1Char('\n'));
            const bool failed = status == "failed";
            const HttpAnswer answer = failed
                                          ? answerForFailedBatch(m_record.batchId, status, messages)
                                          : answerForMissingLine(m_record.batchId, status);
            if (!failed)
                qCWarning(lcBatch).noquote() << waiting.size() << "requests of" << m_record.batchId
                                             << "are missing from its result files";
            for (quint64 id : waiting)
                m_core->recordResult(id, answer);
            m_core->commit();
            for (quint64 id : waiting)
                m_core->deliver(id, answer, true);
        }
    }
    m_record.phase = StoredBatch::Phase::Cleaning;
    persist(true);
    cleanUp();
}

void BatchJob::cleanUp() {
    setStatus(m_record.status);
    QList<QByteArray> files{m_record.inputFileId, m_record.outputFileId, m_record.errorFileId};
    files.removeAll(QByteArray());
    for (const QByteArray &file : std::as_const(files)) {
        // Fire and forget: a file we fail to delete expires upstream on its own.
        m_provider->deleteFile(m_credentials, file, [file](std::optional<ProviderError> error) {
            if (error)
                qCInfo(lcBatch).noquote() << "could not delete" << file << ":" << error->message;
        });
    }
    finish(true);
}

void BatchJob::dissolve() {
    // Never created upstream and nobody waits: keep the requests for adoption, pay nothing.
    qCInfo(lcBatch).noquote() << "batch" << m_record.localId
                              << "was never created upstream; its requests wait for their "
                                 "clients to come back";
    for (quint64 id : std::as_const(m_requestIds))
        m_core->requeue(id);
    if (!m_record.inputFileId.isEmpty())
        m_provider->deleteFile(m_credentials, m_record.inputFileId,
                               [](std::optional<ProviderError>) {});
    m_record.status = "dissolved";
    setStatus("dissolved");
    finish(false);
}

void BatchJob::failAll(const ProviderError &error, const char *step) {
    qCWarning(lcBatch).noquote() << "batch" << step << "failed (HTTP" << error.httpStatus
                                 << "):" << error.message;
    m_progress.errors.append(QStringLiteral("%1 failed (HTTP %2): %3")
                                 .arg(QString::fromLatin1(step))
                                 .arg(error.httpStatus)
                                 .arg(error.message));
    if (error.httpStatus == 401 && !m_credentials.apiKey.isEmpty())
        m_core->keyRefused(m_record.keyHash); // not kept, in memory or in the store
    const HttpAnswer answer = answerForProviderFailure(error, step);
    const auto waiting = std::exchange(m_waiting, {});
    for (quint64 id : waiting)
        m_core->recordResult(id, answer);
    m_core->commit();
    for (quint64 id : waiting)
        m_core->deliver(id, answer, true);
    m_record.status = "failed";
    if (!m_record.inputFileId.isEmpty() && !m_credentials.apiKey.isEmpty()) {
        m_provider->deleteFile(m_credentials, m_record.inputFileId,
                               [](std::optional<ProviderError>) {});
    }
    finish(true);
}

void BatchJob::finish(bool counted) {
    m_state = State::Done;
    m_retryTimer.stop();
    setStatus(m_record.status);
    m_progress.active = false;
    m_progress.endedAt = QDateTime::currentDateTimeUtc();
    for (const BatchErrorItem &item : std::as_const(m_info.errors))
        m_progress.errors.append(item.message);
    const auto duration =
        m_record.batchId.isEmpty()
            ? 0ms
            : std::chrono::duration_cast<std::chrono::milliseconds>(m_clock->now() - m_submittedAt);
    m_core->jobEnded(this, counted, m_record.status == "completed", duration);
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
