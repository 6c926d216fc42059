// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The facade that lives on the proxy's worker thread: it builds the front end, the batching
// core, the provider client and the statistics in start(), so they are born on that thread,
// and tears them down in stop(). Slots in (intents), signals out (snapshots): the GUI never
// touches the objects behind it.

#include "api/clock.h"
#include "proxysnapshot.h"
#include "settings/config.h"

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <functional>
#include <memory>
#include <vector>

class QNetworkAccessManager;

namespace llmproxy {

class BatchCore;
class HttpFrontEnd;
class MetricsRegistry;
class HttpProviderBase;
class OpenAiProvider;
class Provider;
class Stats;
class Store;
namespace http {
class ConnectionLimiter;
}
namespace accounting {
class PriceTable;
}

class ProxyService final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProxyService)
public:
    explicit ProxyService(Config config, QObject *parent = nullptr);
    ~ProxyService() override;

    // Valid between started() and stopped(), on the service's thread only.
    HttpFrontEnd *frontEnd() const { return m_frontEnd; }
    BatchCore *core() const { return m_core; }
    Store *store() const { return m_store.get(); } // null without a durable store
    Stats *stats() const { return m_stats.get(); }
    MetricsRegistry *metrics() const { return m_metrics.get(); } // what GET /metrics renders
    const Config &config() const { return m_config; }

    ProxySnapshot snapshot() const;
    // How often snapshotReady() fires (default 1 s).
    void setSnapshotInterval(std::chrono::milliseconds interval);

public Q_SLOTS:
    void start();
    // Stop listening and tell waiting clients to retry later (503 + Retry-After), then stopped().
    void stop();
    // Send every queued group now.
    void flushNow();
    // Hold every request (nothing is sent) / send again.
    void setPaused(bool paused);
    // New settings, applied without a restart: limits, poll interval, upstream, key, body
    // limit, providers, routes and their keys (for new requests), and the listen address (re-bound
    // in place; on failure the old one stays and listenFailed() says why).
    void applyConfig(const llmproxy::Config &config);
    // Read the price table again (the shipped one with the user's override file, as at start)
    // and price every request accounted from now on with it; what was counted keeps its cost.
    // Empty when it was loaded; else why not (the prices in use stay).
    QString reloadPrices();

Q_SIGNALS:
    void started(const QList<quint16> &ports);
    void startFailed(const QString &error);
    void stopped();
    void snapshotReady(const llmproxy::ProxySnapshot &snapshot);
    void listenFailed(const QString &error);
    void batchFinished(const llmproxy::BatchProgress &batch);

private:
    struct IoThread;

    void applyToParts();
    // New routing for new requests: clients for new providers (or a new profile under an old
    // name), new URLs for the others; batches already out keep the client they have.
    HttpProviderBase *makeClient(const ConfiguredProvider &configured);
    void applyProviders(const QList<ConfiguredProvider> &providers);
    // The shipped price table with the user's overrides; null (and startFailed()) when the
    // override file is broken.
    std::shared_ptr<const accounting::PriceTable> loadPriceTable();
    // Front ends 1..n-1, each on a thread of its own, accepting from front end 0's sockets.
    bool startIoThreads(int count, QString *error);
    void stopIoThreads();
    // Run `call` with each extra front end, on its thread; waits for them when `wait`.
    void forEachIoFrontEnd(const std::function<void(HttpFrontEnd *)> &call, bool wait);
    // /metrics: a registry fed by the core's accounting and batch signals, for every front end.
    void startMetrics();

    Config m_config;
    SystemClock m_clock;
    std::unique_ptr<Stats> m_stats;
    std::unique_ptr<MetricsRegistry> m_metrics; // outlives the front ends (see the destructor)
    std::shared_ptr<http::ConnectionLimiter> m_limiter; // shared by the front ends
    std::unique_ptr<Store> m_store;
    QNetworkAccessManager *m_nam = nullptr;
    OpenAiProvider *m_provider = nullptr; // "openai": --upstream
    // Every configured provider (routing), "openai" first, and its client.
    QList<ConfiguredProvider> m_providers;
    QHash<QByteArray, HttpProviderBase *> m_providerClients;
    QHash<QByteArray, QByteArray> m_clientProfiles; // the profile each client was made for
    BatchCore *m_core = nullptr;
    HttpFrontEnd *m_frontEnd = nullptr;
    QTimer m_snapshotTimer;
    QElapsedTimer m_uptime;
    QString m_listenError;
    std::vector<std::unique_ptr<IoThread>> m_ioThreads;
};

} // namespace llmproxy
