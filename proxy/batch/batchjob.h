// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One batch's conversation with the provider, as an explicit state machine:
// upload the JSONL -> create the batch -> poll until it ends -> stream the output and error
// files, answering each request as its line arrives -> answer what is left -> delete the files.

#include "api/clock.h"
#include "api/httpanswer.h"
#include "batch/batcher.h"
#include "batch/batchprogress.h"
#include "provider/provider.h"

#include <QObject>
#include <QTimer>

#include <chrono>
#include <unordered_set>

namespace llmproxy {

class BatchCore;

class BatchJob final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchJob)
public:
    enum class State { Uploading, Creating, Polling, Downloading, Cleaning, Done };

    BatchJob(BatchCore *core, Provider *provider, const Clock *clock, Credentials credentials,
             GroupKey group, QList<quint64> requestIds, QByteArray jsonl,
             std::chrono::milliseconds pollInterval);

    void start();
    State state() const { return m_state; }
    const QByteArray &batchId() const { return m_batchId; }
    const GroupKey &group() const { return m_group; }
    int requestCount() const { return m_requestCount; }
    const BatchProgress &progress() const { return m_progress; }
    const QByteArray &finalStatus() const { return m_info.status; }

private:
    void upload();
    void create();
    void poll();
    void schedulePoll(std::chrono::milliseconds delay);
    void download();
    void downloadNext();
    void onLine(QByteArrayView line);
    void answerRemaining();
    void cleanUp();
    void failAll(const ProviderError &error, const char *step);
    void finish();
    void setStatus(const QByteArray &status);
    HttpAnswer answerForProviderFailure(const ProviderError &error, const char *step) const;

    BatchCore *m_core;
    Provider *m_provider;
    const Clock *m_clock;
    Credentials m_credentials;
    GroupKey m_group;
    std::unordered_set<quint64> m_waiting; // requests not yet answered
    int m_requestCount;
    QByteArray m_jsonl; // released once uploaded
    std::chrono::milliseconds m_pollInterval;
    QByteArray m_localName; // names the batch upstream (metadata) before it has an id
    State m_state = State::Uploading;
    QByteArray m_inputFileId;
    QByteArray m_batchId;
    BatchInfo m_info;
    QList<QByteArray> m_filesToRead;
    int m_downloadAttempts = 0;
    int m_badLines = 0;
    SteadyTime m_createdAt{};
    QTimer m_pollTimer;
    BatchProgress m_progress;
};

} // namespace llmproxy
