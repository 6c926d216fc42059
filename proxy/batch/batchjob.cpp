// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batchjob.h"

#include "api/batchresult.h"
#include "api/jsonl.h"
#include "api/logging.h"
#include "batch/batchcore.h" // customIdFor, requestIdFromCustomId

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

BatchJob::BatchJob(BatchJobHost *host, Provider *provider, const Clock *clock,
                   Credentials credentials, StoredBatch record, QList<quint64> requestIds,
                   QByteArray jsonl, std::chrono::milliseconds pollInterval, bool resumed,
                   QObject *parent)
    : QObject(parent)
    , m_host(host)
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
    m_status.id = m_record.batchId;
    if (const auto named = statusFromName(m_record.status)) {
        m_status.phase = named->first;
        m_status.end = named->second;
    }
    m_status.providerStatus = m_record.status;
    m_status.state = m_record.providerState;
    m_submittedAt =
        m_clock->now() - std::chrono::milliseconds(
                             m_record.submittedMs > 0
                                 ? std::max<qint64>(0, m_clock->wallMs() - m_record.submittedMs)
                                 : 0);
    m_progress.localId = m_record.localId;
    m_progress.batchId = m_record.batchId;
    m_progress.endpoint = m_record.endpoint;
    m_progress.model = m_record.model;
    m_progress.provider = m_record.provider;
    m_progress.keyHint = keyHint();
    m_progress.callers = m_record.callers;
    m_progress.total = m_record.requestCount;
    m_progress.createdAt = QDateTime::fromMSecsSinceEpoch(m_record.createdMs, Qt::UTC);
    if (m_record.submittedMs > 0)
        m_progress.submittedAt = QDateTime::fromMSecsSinceEpoch(m_record.submittedMs, Qt::UTC);
    m_progress.status = m_record.status.isEmpty() ? QByteArray("uploading") : m_record.status;
    m_progress.usage = m_record.usage; // what its lines recorded before a restart
}

// The hint recorded when the batch was made: a client's own key is not held after a restart
// until the client comes back, and the window still says whose batch it is.
QByteArray BatchJob::keyHint() const {
    return m_record.keyHint.isEmpty() ? redactedKey(m_credentials.apiKey) : m_record.keyHint;
}

GroupKey BatchJob::group() const {
    return GroupKey{m_record.keyHash,  m_record.organization, m_record.project,
                    m_record.endpoint, m_record.model,        m_record.provider};
}

BatchSubmission BatchJob::submission() const {
    return BatchSubmission{m_record.localId, m_record.endpoint, m_record.model,
                           int(m_requestIds.size()),
                           [host = m_host, self = this](const QByteArray &batchId) {
                               return host->batchHeldElsewhere(batchId, self);
                           }};
}

void BatchJob::setCredentials(const Credentials &credentials) {
    m_credentials = credentials;
    m_progress.keyHint = keyHint();
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
        return stage();
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
    m_progress.completed = m_status.succeeded;
    m_progress.failed = m_status.failed;
}

QByteArray BatchJob::displayStatus() const {
    // The same words whatever the provider (the window and /stats know no provider's spelling);
    // the provider's own word goes to the log.
    return statusName(m_status.phase, m_status.end);
}

bool BatchJob::persist(bool durableNow) {
    m_host->saveBatch(m_record);
    return !durableNow || m_host->commitNow();
}

void BatchJob::waitForStore(void (BatchJob::*step)()) {
    const auto delay = backoffDelay(std::min(m_attempt++, 6), std::nullopt);
    qCWarning(lcBatch).noquote() << "batch" << m_record.localId
                                 << "waits for the store to be writable before going on";
    m_retryTimer.disconnect(this);
    connect(&m_retryTimer, &QTimer::timeout, this, step);
    m_retryTimer.start(timerInterval(delay));
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

void BatchJob::stage() {
    setStatus("uploading");
    qCInfo(lcBatch).noquote() << "handing over" << m_requestIds.size() << "requests for"
                              << m_record.endpoint << m_record.model << "(" << m_jsonl.size()
                              << "bytes)";
    m_provider->stage(this, m_credentials, submission(), m_jsonl,
                      [this](ProviderResult<QByteArray> result) {
                          if (!result.ok()) {
                              if (result.error.retryable() && m_attempt + 1 < MaxAttempts)
                                  return retryLater(result.error, &BatchJob::stage);
                              return failAll(result.error, "upload");
                          }
                          crashPointForTests("after_upload");
                          m_attempt = 0;
                          m_record.providerState = *result.value;
                          m_status.state = m_record.providerState;
                          m_record.phase = StoredBatch::Phase::Uploaded;
                          persist();
                          if (!m_provider->inlineInput())
                              m_jsonl = QByteArray(); // the provider has it now
                          create();
                      });
}

void BatchJob::takeStatus(const BatchStatus &status) {
    m_status = status;
    m_record.status = statusName(m_status.phase, m_status.end);
    if (!m_status.state.isEmpty())
        m_record.providerState = m_status.state;
    setStatus(displayStatus());
}

void BatchJob::create() {
    // Lines that go inline in the create call and are gone (a restart after the intent, and
    // the batch was never made): its requests form a new batch, paying nothing twice.
    if (m_provider->inlineInput() && m_jsonl.isEmpty())
        return dissolve();
    setStatus("creating");
    // Record the intent first: after a crash we look for this batch upstream before
    // creating it again, so the same requests are never paid for twice. Not recorded (the
    // store cannot write): not created.
    m_record.phase = StoredBatch::Phase::Creating;
    if (!persist(true))
        return waitForStore(&BatchJob::create);
    m_provider->submit(this, m_credentials, submission(), m_record.providerState, m_jsonl,
                       [this](ProviderResult<BatchStatus> result) {
                           if (!result.ok()) {
                               // The model's queue is full and the provider says so at once
                               // (Azure's fail-fast deployments): wait, as for a batch that
                               // failed that way after validating.
                               if (m_provider->queueFull(result.error))
                                   return resubmitLater();
                               if (result.error.retryable() && m_attempt + 1 < MaxAttempts) {
                                   // It may exist anyway (the answer was lost): look before trying
                                   // again.
                                   m_lastError = result.error;
                                   return reconcile();
                               }
                               return failAll(result.error, "create");
                           }
                           crashPointForTests("after_create");
                           m_attempt = 0;
                           m_jsonl = QByteArray(); // made: its lines are the provider's now
                           takeStatus(*result.value);
                           m_record.batchId = m_status.id;
                           m_record.submittedMs = m_clock->wallMs();
                           m_record.cancelRequestedMs = 0; // a new batch gets its own grace period
                           m_record.phase = StoredBatch::Phase::Created;
                           persist(true);
                           m_submittedAt = m_clock->now();
                           m_cancelSent = false;
                           m_cancelAttempts = 0;
                           m_progress.batchId = m_record.batchId;
                           m_progress.submittedAt =
                               QDateTime::fromMSecsSinceEpoch(m_clock->wallMs(), Qt::UTC);
                           qCInfo(lcBatch).noquote()
                               << "batch" << m_record.batchId << "created with"
                               << m_requestIds.size() << "requests";
                           m_host->jobSubmitted(m_record.batchId, m_requestIds);
                           if (m_status.ended())
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
    m_provider->find(this, m_credentials, submission(), m_record.providerState,
                     [this](ProviderResult<std::optional<BatchStatus>> result) {
                         if (!result.ok()) {
                             if (result.error.retryable())
                                 return retryLater(result.error, &BatchJob::reconcile);
                             return failAll(result.error, "find");
                         }
                         if (const std::optional<BatchStatus> &found = *result.value) {
                             qCInfo(lcBatch).noquote()
                                 << "batch" << m_record.localId << "exists upstream as" << found->id
                                 << "- resuming it";
                             takeStatus(*found);
                             m_record.batchId = m_status.id;
                             m_record.submittedMs = m_status.createdAtMs > 0 ? m_status.createdAtMs
                                                                             : m_clock->wallMs();
                             m_record.phase = StoredBatch::Phase::Created;
                             persist(true);
                             m_progress.batchId = m_record.batchId;
                             m_attempt = 0;
                             return poll();
                         }
                         // Not created. Without clients (a restart) it is not worth paying for now;
                         // with clients, create it.
                         const bool anyoneWaiting = std::any_of(
                             m_requestIds.cbegin(), m_requestIds.cend(),
                             [this](quint64 id) { return m_host->hasWaitingClient(id); });
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
    m_provider->poll(this, m_credentials, m_record.batchId, m_record.providerState,
                     [this](ProviderResult<BatchStatus> result) {
                         m_retryTimer.disconnect(this);
                         connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::poll);
                         if (!result.ok()) {
                             // Gone (404) or not visible to this key (401, 403): polling again
                             // would never end. Its clients hear the provider's verdict.
                             if (Provider::isPermanentPollError(result.error))
                                 return failAll(result.error, "poll");
                             // Otherwise the batch is paid for: never give up polling it.
                             qCWarning(lcBatch).noquote()
                                 << "polling" << m_record.batchId
                                 << "failed:" << result.error.message << "- retrying";
                             m_retryTimer.start(timerInterval(
                                 result.error.retryAfter ? std::max(*result.error.retryAfter, 100ms)
                                                         : m_pollInterval));
                             return;
                         }
                         takeStatus(*result.value);
                         crashPointForTests("while_polling");
                         if (giveUpOnUnknownStatus())
                             return;
                         qCDebug(lcBatch).noquote()
                             << "batch" << m_record.batchId << displayStatus() << m_status.succeeded
                             << "/" << m_status.total;
                         if (!m_status.ended()) {
                             if (graceRanOut())
                                 return cancelForGrace();
                             m_retryTimer.start(timerInterval(nextPollDelay()));
                             m_pollScheduled = true;
                             return;
                         }
                         if (m_status.end == BatchEnd::Failed && m_status.retryLater)
                             return resubmitLater();
                         takeEnded();
                     });
}

void BatchJob::takeEnded() {
    m_record.endedMs = m_clock->wallMs();
    m_record.errors = m_status.errors.join(QLatin1Char('\n'));
    m_record.phase = StoredBatch::Phase::Ended;
    persist(true);
    m_host->jobLeftQueue(this);
    download();
}

bool BatchJob::graceRanOut() const {
    if (m_cancelSent)
        return false;
    // Finalizing: the results are about to exist; cancelling: someone else did it already.
    if (m_status.phase != BatchPhase::Validating && m_status.phase != BatchPhase::Running)
        return false;
    if (m_record.cancelRequestedMs > 0)
        return true; // decided before a restart: the provider may never have heard it
    const auto grace = m_host->gracePeriod();
    return grace && *grace > 0ms && m_clock->now() - m_submittedAt >= *grace;
}

std::chrono::milliseconds BatchJob::nextPollDelay() const {
    // Wake up when the grace period runs out, if that comes before the next regular poll.
    const auto grace = m_host->gracePeriod();
    if (!grace || *grace <= 0ms || m_record.cancelRequestedMs > 0)
        return m_pollInterval;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(m_submittedAt + *grace - m_clock->now());
    return left > 0ms ? std::min(left, m_pollInterval) : m_pollInterval;
}

void BatchJob::cancelForGrace() {
    if (m_record.cancelRequestedMs == 0) {
        const auto grace = m_host->gracePeriod().value_or(0ms);
        qCInfo(lcBatch).noquote() << "batch" << m_record.batchId << "is still" << displayStatus()
                                  << "after the grace period (" << grace.count()
                                  << "ms): cancelling it; its requests that did not run go "
                                     "through the synchronous API";
        m_progress.errors.append(
            QStringLiteral("cancelled after the grace period of %1 ms").arg(grace.count()));
        // Recorded first: after a restart, its lines that never ran are still known to be ours
        // to send synchronously, and the cancel is asked for again if it was not heard.
        m_record.cancelRequestedMs = m_clock->wallMs();
        persist(true);
    }
    m_cancelSent = true;
    m_provider->cancel(
        this, m_credentials, m_record.batchId, m_record.providerState,
        [this](ProviderResult<BatchStatus> result) {
            m_retryTimer.disconnect(this);
            connect(&m_retryTimer, &QTimer::timeout, this, &BatchJob::poll);
            if (result.ok()) {
                takeStatus(*result.value);
                // Cancelled at once (or it ended meanwhile): read its results now.
                m_retryTimer.start(m_status.ended() ? 0ms : timerInterval(m_pollInterval));
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
    qCWarning(lcBatch).noquote()
        << QStringLiteral("batch %1 did not fit the provider's queue for %2; submitting again in "
                          "%3 ms (attempt %4)")
               .arg(QString::fromUtf8(m_record.batchId.isEmpty() ? m_record.localId
                                                                 : m_record.batchId),
                    QString::fromUtf8(m_record.model))
               .arg(delay.count())
               .arg(m_record.attempts);
    m_record.batchId.clear();
    m_record.status.clear();
    m_record.phase = StoredBatch::Phase::Uploaded;
    persist(true);
    m_progress.batchId.clear();
    if (m_record.attempts >= 2 && m_requestIds.size() > 1) {
        // Too big for the quota: split in two new batches (new inputs), end this one.
        m_retryTimer.disconnect(this);
        connect(&m_retryTimer, &QTimer::timeout, this, [this] {
            m_host->splitBatch(this, m_record, m_requestIds);
            m_provider->cleanUp(m_credentials, m_record.providerState);
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
    qCInfo(lcBatch).noquote()
        << "batch" << m_record.batchId << "ended:" << m_record.status
        << QStringLiteral("(%1 succeeded, %2 failed)").arg(m_status.succeeded).arg(m_status.failed);
    m_attempt = 0;
    readResults();
}

void BatchJob::readResults() {
    if (m_waiting.empty())
        return answerRemaining();
    m_provider->readResults(
        this, m_credentials, m_record.batchId, m_record.providerState,
        [this](ResultLine line) { onLine(std::move(line)); },
        [this](const TooLongLine &line) { onLineTooLong(line); },
        [this](std::optional<ProviderError> error) {
            deliverPending();
            if (error) {
                if (error->retryable() && m_attempt + 1 < MaxAttempts)
                    return retryLater(*error, &BatchJob::readResults);
                if (error->httpStatus == 401)
                    m_host->keyRefused(m_record.keyHash);
                qCWarning(lcBatch).noquote()
                    << "could not read results of" << m_record.batchId << ":" << error->message;
            }
            m_attempt = 0;
            answerRemaining();
        });
}

void BatchJob::onLine(ResultLine line) {
    const auto requestId = requestIdFromCustomId(line.customId);
    if (!requestId || m_waiting.erase(*requestId) == 0)
        return; // not ours, or handled already (a retried read)
    if (line.outcome == ResultOutcome::Expired || line.outcome == ResultOutcome::Cancelled) {
        neverRan(*requestId);
        return;
    }
    queueAnswer(*requestId, m_provider->answerFor(line, m_record.batchId));
}

void BatchJob::onLineTooLong(const TooLongLine &line) {
    // Only this request fails. Without a readable custom id at the line's start, it ends up
    // missing from the results (answerRemaining()).
    const std::optional<QByteArray> customId = m_provider->customIdFromLineStart(line.start);
    const auto requestId = customId ? requestIdFromCustomId(*customId) : std::nullopt;
    if (!requestId || m_waiting.erase(*requestId) == 0)
        return;
    queueAnswer(*requestId, answerForTooLongLine(m_record.batchId, line.bytes, line.limit));
}

void BatchJob::record(quint64 requestId, const HttpAnswer &answer) {
    if (const auto row = m_host->recordResult(requestId, answer, m_record.localId))
        m_progress.usage.add(*row);
}

void BatchJob::queueAnswer(quint64 requestId, HttpAnswer answer) {
    // Bounds what waits here: at most MaxPendingBytes of bodies, plus one line.
    constexpr qsizetype MaxPendingAnswers = 256;
    constexpr qint64 MaxPendingBytes = 16 * 1024 * 1024;
    record(requestId, answer);
    m_pendingBytes += answer.body.size();
    m_pendingDelivery.append({requestId, std::move(answer)});
    if (m_pendingDelivery.size() >= MaxPendingAnswers || m_pendingBytes >= MaxPendingBytes)
        deliverPending();
}

void BatchJob::neverRan(quint64 requestId) {
    // After our grace cancel, a client still waiting has waited long enough: the synchronous
    // API answers now (full price). Otherwise it goes into a new batch if someone waits, and is
    // kept unpaid for a client that comes back if nobody does.
    if (m_record.cancelRequestedMs > 0 && m_host->hasWaitingClient(requestId))
        m_host->sendSynchronously(requestId, m_credentials);
    else
        m_host->requeue(requestId);
}

void BatchJob::deliverPending() {
    if (m_pendingDelivery.isEmpty())
        return;
    // Results are durable before anyone is answered: a crash now loses nothing.
    m_host->commit();
    crashPointForTests("after_download");
    const auto pending = std::exchange(m_pendingDelivery, {});
    m_pendingBytes = 0;
    for (const auto &[id, answer] : pending)
        m_host->deliver(id, answer, true);
}

void BatchJob::answerRemaining() {
    if (!m_waiting.empty()) {
        const auto waiting = std::exchange(m_waiting, {});
        if (m_status.end == BatchEnd::Expired || m_status.end == BatchEnd::Cancelled) {
            for (quint64 id : waiting) // never ran
                neverRan(id);
        } else {
            const QStringList messages = m_record.errors.isEmpty()
                                             ? QStringList()
                                             : m_record.errors.split(QLatin1Char('\n'));
            const bool failed = m_status.end == BatchEnd::Failed;
            const QByteArray &status = m_record.status;
            const HttpAnswer answer = failed
                                          ? answerForFailedBatch(m_record.batchId, status, messages)
                                          : answerForMissingLine(m_record.batchId, status);
            if (!failed)
                qCWarning(lcBatch).noquote() << waiting.size() << "requests of" << m_record.batchId
                                             << "are missing from its results";
            for (quint64 id : waiting)
                record(id, answer);
            m_host->commit();
            for (quint64 id : waiting)
                m_host->deliver(id, answer, true);
        }
    }
    m_record.phase = StoredBatch::Phase::Cleaning;
    persist(true);
    cleanUp();
}

void BatchJob::cleanUp() {
    setStatus(displayStatus());
    m_provider->cleanUp(m_credentials, m_record.providerState);
    finish(true);
}

void BatchJob::dissolve() {
    // Never created upstream and nobody waits: keep the requests for adoption, pay nothing.
    qCInfo(lcBatch).noquote() << "batch" << m_record.localId
                              << "was never created upstream; its requests wait for their "
                                 "clients to come back";
    for (quint64 id : std::as_const(m_requestIds))
        m_host->requeue(id);
    m_provider->cleanUp(m_credentials, m_record.providerState);
    m_record.status = "dissolved";
    m_status.providerStatus = m_record.status;
    setStatus("dissolved");
    finish(false);
}

bool BatchJob::giveUpOnUnknownStatus() {
    if (!m_status.unknownStatus) {
        m_unknownStatusPolls = 0;
        return false;
    }
    if (m_unknownStatusPolls++ == 0)
        m_unknownStatusSince = m_clock->now();
    if (m_unknownStatusPolls < UnknownStatusPolls ||
        m_clock->now() - m_unknownStatusSince < m_host->unknownStatusLimit())
        return false;
    const QString why =
        QStringLiteral("the provider '%1' reports batch %2 as '%3', a status its profile does not "
                       "know, since %4 s: check that the provider's profile matches it "
                       "(--provider NAME=PROFILE); the batch was left as it is upstream")
            .arg(QString::fromUtf8(m_record.provider), QString::fromUtf8(m_record.batchId),
                 QString::fromUtf8(m_status.providerStatus.left(64)))
            .arg(std::chrono::duration_cast<std::chrono::seconds>(m_clock->now() -
                                                                  m_unknownStatusSince)
                     .count());
    failAllWith(errorAnswer(502,
                            QStringLiteral("llm-proxy could not follow the batch for this "
                                           "request: ") +
                                why,
                            ErrorType::Server, QByteArrayLiteral("batch_status_unknown")),
                why, false);
    return true;
}

void BatchJob::failAll(const ProviderError &error, const char *step) {
    if (error.httpStatus == 401 && !m_credentials.apiKey.isEmpty())
        m_host->keyRefused(m_record.keyHash); // not kept, in memory or in the store
    failAllWith(answerForProviderFailure(error, step),
                QStringLiteral("%1 failed (HTTP %2): %3")
                    .arg(QString::fromLatin1(step))
                    .arg(error.httpStatus)
                    .arg(error.message),
                true);
}

void BatchJob::failAllWith(const HttpAnswer &answer, const QString &why, bool cleanUp) {
    qCWarning(lcBatch).noquote() << "batch" << m_record.localId << why;
    m_progress.errors.append(why);
    const auto waiting = std::exchange(m_waiting, {});
    for (quint64 id : waiting)
        record(id, answer);
    m_host->commit();
    for (quint64 id : waiting)
        m_host->deliver(id, answer, true);
    m_record.status = statusName(BatchPhase::Ended, BatchEnd::Failed);
    m_status.phase = BatchPhase::Ended;
    m_status.end = BatchEnd::Failed;
    m_status.providerStatus = m_record.status;
    if (cleanUp && !m_credentials.apiKey.isEmpty())
        m_provider->cleanUp(m_credentials, m_record.providerState);
    finish(true);
}

void BatchJob::finish(bool counted) {
    m_state = State::Done;
    m_retryTimer.stop();
    setStatus(m_record.status == "dissolved" ? m_record.status : displayStatus());
    m_progress.active = false;
    m_progress.endedAt = QDateTime::fromMSecsSinceEpoch(m_clock->wallMs(), Qt::UTC);
    for (const QString &message : std::as_const(m_status.errors))
        m_progress.errors.append(message);
    const auto duration =
        m_record.batchId.isEmpty()
            ? 0ms
            : std::chrono::duration_cast<std::chrono::milliseconds>(m_clock->now() - m_submittedAt);
    m_host->jobEnded(this, counted, m_status.end == BatchEnd::Completed && m_status.ended(),
                     duration);
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
