// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The facade that lives on the proxy's worker thread: it builds the front end, the batching
// core, the provider client and the statistics in start(), so they are born on that thread,
// and tears them down in stop(). Slots in, signals out.

#include "api/clock.h"
#include "settings/config.h"

#include <QObject>

#include <memory>

class QNetworkAccessManager;

namespace llmproxy {

class BatchCore;
class HttpFrontEnd;
class OpenAiProvider;
class Stats;

class ProxyService final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProxyService)
public:
    explicit ProxyService(Config config, QObject *parent = nullptr);
    ~ProxyService() override;

    // Valid between started() and stopped(), on the service's thread only.
    HttpFrontEnd *frontEnd() const { return m_frontEnd; }
    BatchCore *core() const { return m_core; }
    Stats *stats() const { return m_stats.get(); }
    const Config &config() const { return m_config; }

public Q_SLOTS:
    void start();
    // Stop listening and tell waiting clients to retry later (503 + Retry-After), then stopped().
    void stop();
    // Send every queued group now.
    void flushNow();

Q_SIGNALS:
    void started(const QList<quint16> &ports);
    void startFailed(const QString &error);
    void stopped();

private:
    Config m_config;
    SystemClock m_clock;
    std::unique_ptr<Stats> m_stats;
    QNetworkAccessManager *m_nam = nullptr;
    OpenAiProvider *m_provider = nullptr;
    BatchCore *m_core = nullptr;
    HttpFrontEnd *m_frontEnd = nullptr;
};

} // namespace llmproxy
