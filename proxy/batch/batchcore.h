// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The batching core: owns every queued and submitted request and every batch job. It lives
// on one thread and needs no locks; the front end talks to it with submit()/cancel() and
// hears back through answered().

#include "api/clock.h"
#include "api/httpanswer.h"
#include "batch/batcher.h"
#include "batch/batchprogress.h"
#include "provider/provider.h"

#include <QObject>
#include <QTimer>

#include <chrono>
#include <unordered_map>

namespace llmproxy {

class BatchJob;
class Stats;

// One client request to batch, as the front end hands it over.
struct BatchRequest {
    quint64 id = 0; // unique for the life of the process
    Credentials credentials;
    GroupKey group;
    QByteArray body; // the client's JSON body, byte for byte
    int embeddingInputs = 0;
    SteadyTime arrival;
};

struct CoreSettings {
    BatchLimits limits;
    std::chrono::milliseconds pollInterval{10'000};
};

// The custom_id of a request inside a batch file: unique by construction, and within
// ^[A-Za-z0-9_-]{1,64}$.
QByteArray customIdFor(quint64 requestId);
std::optional<quint64> requestIdFromCustomId(QByteArrayView customId);

class BatchCore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchCore)
public:
    BatchCore(Provider *provider, const Clock *clock, Stats *stats, const CoreSettings &settings,
              QObject *parent = nullptr);
    ~BatchCore() override;

    void setSettings(const CoreSettings &settings);
    const CoreSettings &settings() const { return m_settings; }

    // Queue a request; its answer comes later through answered().
    void submit(BatchRequest request);
    // The client went away: drop a queued request, or forget who waits for a submitted one.
    void cancel(quint64 requestId);
    // Send every queued group now, whatever its window.
    void flushNow();

    // Accepted but not yet sent (waiting for their window, or held while paused).
    qsizetype queued() const { return m_batcher.queued() + m_heldRequests; }
    // In a batch that was sent, not answered yet.
    qsizetype inFlight() const { return std::ssize(m_requests) - queued(); }
    qsizetype activeBatches() const { return m_jobs; }
    // Active batches, then the last finished ones, newest first.
    QList<BatchProgress> batchProgress() const;
    quint64 batchesSubmitted() const { return m_batchesStarted; }
    quint64 batchesEnded() const { return m_batchesEnded; }

    // Hold every request (nothing is sent) until resumed.
    void setPaused(bool paused);
    bool isPaused() const { return m_paused; }

Q_SIGNALS:
    void answered(quint64 requestId, const llmproxy::HttpAnswer &answer);
    void batchSubmitted(const QByteArray &batchId, int requests);
    void batchFinished(const llmproxy::BatchProgress &batch);

private:
    friend class BatchJob;
    struct Pending {
        Credentials credentials;
        QByteArray line; // the JSONL input line, until its batch file is built
        SteadyTime arrival;
        bool clientGone = false;
    };

    void onTimer();
    void rearmTimer();
    void startBatch(const Flush &flush);
    void startBatches(const QList<Flush> &flushes);
    void updateGauges();
    // Called by jobs.
    void deliver(quint64 requestId, HttpAnswer answer);
    void jobEnded(BatchJob *job, bool successful, std::chrono::milliseconds duration);

    Provider *m_provider;
    const Clock *m_clock;
    Stats *m_stats;
    CoreSettings m_settings;
    Batcher m_batcher;
    QTimer m_timer;
    std::unordered_map<quint64, Pending> m_requests;
    qsizetype m_jobs = 0;
    quint64 m_batchesStarted = 0;
    quint64 m_batchesEnded = 0;
    bool m_paused = false;
    QList<Flush> m_heldFlushes; // closed while paused
    qsizetype m_heldRequests = 0;
    QList<BatchProgress> m_history; // finished batches, newest last
    static constexpr qsizetype HistorySize = 500;
};

} // namespace llmproxy
