// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batchcore.h"

#include "api/jsonl.h"
#include "api/logging.h"
#include "batch/batchjob.h"
#include "stats/stats.h"

#include <algorithm>
#include <charconv>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
constexpr char CustomIdPrefix[] = "lp_";
}

QByteArray customIdFor(quint64 requestId) {
    return QByteArrayLiteral("lp_") + QByteArray::number(requestId, 36);
}

std::optional<quint64> requestIdFromCustomId(QByteArrayView customId) {
    if (!customId.startsWith(CustomIdPrefix))
        return std::nullopt;
    const QByteArrayView digits = customId.sliced(sizeof(CustomIdPrefix) - 1);
    if (digits.isEmpty() || digits.size() > 13)
        return std::nullopt;
    quint64 value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 36);
    if (ec != std::errc() || end != digits.data() + digits.size())
        return std::nullopt;
    // Only the canonical spelling (lower case, no leading zeros) maps back.
    if (customIdFor(value) != customId)
        return std::nullopt;
    return value;
}

BatchCore::BatchCore(Provider *provider, const Clock *clock, Stats *stats,
                     const CoreSettings &settings, QObject *parent)
    : QObject(parent)
    , m_provider(provider)
    , m_clock(clock)
    , m_stats(stats)
    , m_settings(settings)
    , m_batcher(settings.limits) {
    m_timer.setSingleShot(true);
    m_timer.setTimerType(Qt::PreciseTimer);
    connect(&m_timer, &QTimer::timeout, this, &BatchCore::onTimer);
}

BatchCore::~BatchCore() = default;

void BatchCore::setSettings(const CoreSettings &settings) {
    m_settings = settings;
    m_batcher.setLimits(settings.limits);
    rearmTimer();
}

void BatchCore::submit(BatchRequest request) {
    const quint64 id = request.id;
    const QByteArray line =
        jsonl::encodeInputLine(customIdFor(id), request.group.endpoint, request.body);
    m_requests.emplace(id, Pending{std::move(request.credentials), line, request.arrival, false});
    const QList<Flush> flushes =
        m_batcher.add(request.group, id, line.size(), request.embeddingInputs, m_clock->now());
    startBatches(flushes);
    rearmTimer();
    updateGauges();
}

void BatchCore::cancel(quint64 requestId) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return;
    if (m_batcher.remove(requestId)) {
        // Not sent yet: it will never be paid for.
        m_requests.erase(it);
        rearmTimer();
        updateGauges();
        return;
    }
    for (Flush &held : m_heldFlushes) { // closed while paused: not sent either
        if (held.requestIds.removeOne(requestId)) {
            --m_heldRequests;
            m_requests.erase(it);
            updateGauges();
            return;
        }
    }
    it->second.clientGone = true; // in a batch already: its result has nobody to go to
}

void BatchCore::flushNow() {
    if (m_paused)
        return;
    startBatches(m_batcher.takeAll());
    rearmTimer();
    updateGauges();
}

void BatchCore::setPaused(bool paused) {
    if (m_paused == paused)
        return;
    m_paused = paused;
    qCInfo(lcBatch) << (paused ? "batching paused: requests are held" : "batching resumed");
    if (!paused) {
        m_heldRequests = 0;
        startBatches(std::exchange(m_heldFlushes, {}));
    }
    rearmTimer();
    updateGauges();
}

void BatchCore::onTimer() {
    if (m_paused)
        return;
    startBatches(m_batcher.takeDue(m_clock->now()));
    rearmTimer();
    updateGauges();
}

void BatchCore::startBatches(const QList<Flush> &flushes) {
    if (m_paused) {
        for (const Flush &flush : flushes)
            m_heldRequests += flush.requestIds.size();
        m_heldFlushes.append(flushes);
        return;
    }
    for (const Flush &flush : flushes)
        startBatch(flush);
}

QList<BatchProgress> BatchCore::batchProgress() const {
    QList<BatchProgress> out;
    const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
    for (const BatchJob *job : jobs) {
        if (job->state() != BatchJob::State::Done)
            out.append(job->progress());
    }
    std::sort(out.begin(), out.end(), [](const BatchProgress &a, const BatchProgress &b) {
        return a.createdAt > b.createdAt;
    });
    for (auto it = m_history.crbegin(); it != m_history.crend(); ++it)
        out.append(*it);
    return out;
}

void BatchCore::rearmTimer() {
    const auto deadline = m_batcher.nextDeadline();
    if (!deadline || m_paused) {
        m_timer.stop();
        return;
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*deadline - m_clock->now());
    m_timer.start(std::max(wait, 0ms));
}

void BatchCore::startBatch(const Flush &flush) {
    if (flush.requestIds.isEmpty())
        return;
    QByteArray jsonl;
    jsonl.reserve(flush.bytes);
    Credentials credentials;
    for (quint64 id : flush.requestIds) {
        Pending &pending = m_requests.at(id);
        jsonl += pending.line;
        pending.line = QByteArray(); // the batch file holds it now
        credentials = pending.credentials;
    }
    auto *job = new BatchJob(this, m_provider, m_clock, credentials, flush.group, flush.requestIds,
                             std::move(jsonl), m_settings.pollInterval);
    ++m_jobs;
    ++m_batchesStarted;
    job->start();
}

void BatchCore::deliver(quint64 requestId, HttpAnswer answer) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return;
    const bool clientGone = it->second.clientGone;
    const auto elapsed =
        std::chrono::duration<double, std::milli>(m_clock->now() - it->second.arrival);
    m_requests.erase(it);
    if (m_stats && !clientGone)
        m_stats->recordRequest(answer.status, answer.synthesized, elapsed.count());
    updateGauges();
    if (!clientGone)
        Q_EMIT answered(requestId, answer);
}

void BatchCore::jobEnded(BatchJob *job, bool successful, std::chrono::milliseconds duration) {
    --m_jobs;
    ++m_batchesEnded;
    m_history.append(job->progress());
    if (m_history.size() > HistorySize)
        m_history.removeFirst();
    if (m_stats)
        m_stats->recordBatch(successful, double(duration.count()));
    Q_EMIT batchFinished(job->progress());
    job->deleteLater();
    updateGauges();
}

void BatchCore::updateGauges() {
    if (!m_stats)
        return;
    m_stats->setQueued(quint64(queued()));
    m_stats->setInFlight(quint64(inFlight()));
}

} // namespace llmproxy
