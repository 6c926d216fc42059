// SPDX-License-Identifier: GPL-3.0-or-later
#include "proxyservice.h"

#include "accounting/prices.h"
#include "api/logging.h"
#include "batch/batchcore.h"
#include "eventloop/epolleventdispatcher.h"
#include "http/httpfrontend.h"
#include "provider/anthropicprovider.h"
#include "provider/openaiprovider.h"
#include "queue/store.h"
#include "stats/metrics.h"
#include "stats/stats.h"

#include <QAbstractEventDispatcher>
#include <QNetworkAccessManager>
#include <QThread>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
// The providers of `config`, keys from the environment (OPENAI_API_KEY's is config.apiKey).
QList<ConfiguredProvider> providersOf(const Config &config, QString *error) {
    return configuredProviders(
        config, [](const QByteArray &name) { return qgetenv(name.constData()); }, error);
}

CoreSettings coreSettings(const Config &config, const QList<ConfiguredProvider> &providers) {
    CoreSettings core;
    core.limits.window = config.batchWindow;
    // Each provider's batches keep within its own file limits (and the user's --batch-size /
    // --batch-bytes); a provider without a profile (Anthropic) gets the user's limits capped
    // at the proxy's own maximum.
    core.limits.maxRequests = std::min(config.batchSize, Config::ProviderMaxRequests);
    core.limits.maxBytes = std::min(config.batchBytes, Config::ProviderMaxBytes);
    for (const ConfiguredProvider &provider : providers) {
        if (provider.profile)
            core.limits.perProvider.insert(
                provider.name, FileLimits{std::min(config.batchSize, provider.profile->maxRequests),
                                          std::min(config.batchBytes, provider.profile->maxBytes)});
        if (provider.name != DefaultProviderName)
            core.providerKeys.insert(provider.name, provider.apiKey);
    }
    core.limits.maxEmbeddingInputs = Config::ProviderMaxEmbeddingInputs;
    core.pollInterval = config.pollInterval;
    core.resultTtl = config.resultTtl;
    core.gracePeriod = config.gracePeriod;
    core.cacheWindow = config.cache;
    core.cacheMaxBytes = config.cacheMaxBytes;
    core.configuredKey = config.apiKey;
    core.flexTimeout = config.flexTimeout;
    QString queueError; // each item was checked when it was parsed
    core.queueLimits =
        QueueLimits::fromSpecs(config.queueLimits, &queueError).value_or(QueueLimits());
    return core;
}

FrontEndSettings frontEndSettings(const Config &config,
                                  const std::shared_ptr<http::ConnectionLimiter> &limiter,
                                  const QList<ConfiguredProvider> &providers) {
    FrontEndSettings front;
    front.limits = config.frontDoor;
    front.limiter = limiter; // one count of connections for every front end
    front.maxBody = config.maxBody;
    front.apiKey = config.apiKey;
    front.upstream = providers.isEmpty() ? config.upstream : providers.constFirst().baseUrl;
    front.providers = providers;
    front.router = providerRouter(config, providers);
    QString routeError; // refused at start (configuredProviders): cannot happen here
    front.modelRoutes =
        ModelRoutes::fromSpecs(config.modelRoutes, &routeError).value_or(ModelRoutes());
    front.idleTimeout = config.idleTimeout;
    front.allowOrigins = config.allowOrigins;
    front.allowHosts = config.allowHosts;
    front.tokens = config.tokens;
    front.relayStreams = config.relayStreams;
    front.streamKeepAlive = config.streamKeepAlive;
    return front;
}

QString urlFor(const ListenAddress &address) {
    const bool v6 = address.address.protocol() == QAbstractSocket::IPv6Protocol;
    const QString host = v6 ? QLatin1Char('[') + address.address.toString() + QLatin1Char(']')
                            : address.address.toString();
    return QStringLiteral("http://%1:%2/v1").arg(host).arg(address.port);
}
int frontEndCount(const Config &config) {
    const int wanted = config.ioThreads > 0 ? config.ioThreads : QThread::idealThreadCount();
    return std::clamp(wanted, 1, 64);
}
} // namespace

// A thread with one front end (which makes its own upstream connections for relayed calls). The
// objects are created, used and deleted on that thread; the service reaches them with queued
// calls only.
struct ProxyService::IoThread {
    QThread thread;
    QObject *anchor = nullptr; // lives on `thread`: the context of calls made to it
    HttpFrontEnd *frontEnd = nullptr;
};

ProxyService::ProxyService(Config config, QObject *parent)
    : QObject(parent)
    , m_config(std::move(config)) {
    qRegisterMetaType<ProxySnapshot>();
    qRegisterMetaType<BatchProgress>();
    qRegisterMetaType<Config>();
    // A child, so that moveToThread() takes the timer along to the proxy's thread.
    m_snapshotTimer.setParent(this);
    m_snapshotTimer.setInterval(1s);
    connect(&m_snapshotTimer, &QTimer::timeout, this, [this] { Q_EMIT snapshotReady(snapshot()); });
}

ProxyService::~ProxyService() {
    // The front ends call into the core: they go first. The core commits to the store as it
    // goes: it must go before the store does.
    stopIoThreads();
    delete m_frontEnd;
    delete m_core;
}

void ProxyService::setSnapshotInterval(std::chrono::milliseconds interval) {
    m_snapshotTimer.setInterval(interval);
}

void ProxyService::start() {
    m_uptime.start();
    m_stats = std::make_unique<Stats>();
    m_nam = new QNetworkAccessManager(this);
    m_nam->setAutoDeleteReplies(false);
    QString providerError;
    m_providers = providersOf(m_config, &providerError);
    if (!providerError.isEmpty()) {
        qCCritical(lcApp).noquote() << providerError;
        Q_EMIT startFailed(providerError);
        return;
    }
    for (const ConfiguredProvider &configured : std::as_const(m_providers)) {
        if (configured.profile->messagesApi && configured.name == DefaultProviderName) {
            const QString error = QStringLiteral(
                "llm-proxy: the provider named openai cannot use the anthropic profile; give "
                "it a name of its own (--provider anthropic=anthropic)");
            qCCritical(lcApp).noquote() << error;
            Q_EMIT startFailed(error);
            return;
        }
        HttpProviderBase *client = makeClient(configured);
        if (configured.name == DefaultProviderName)
            m_provider = static_cast<OpenAiProvider *>(client);
    }
    // Test hook, not a setting: with LLMPROXY_TEST_PROVIDER_SHAPE=together (or another profile's
    // name) the suites run the whole lifecycle against the fake playing that profile as the
    // "openai" provider.
    if (const ProviderProfile *shape = providerProfile(qgetenv("LLMPROXY_TEST_PROVIDER_SHAPE"));
        shape && !shape->messagesApi) {
        m_provider->setProfile(*shape);
        m_providers.first().profile = shape;
    }
    if (const QString exposed = exposureProblem(m_config); !exposed.isEmpty()) {
        qCCritical(lcApp).noquote() << exposed; // e.g. a key from the keychain, LAN listen
        Q_EMIT startFailed(exposed);
        return;
    }
    auto prices = loadPriceTable();
    if (!prices)
        return;
    if (!m_config.dataDir.isEmpty() && !m_config.inMemory) {
        QString storeError;
        m_store = Store::open(m_config.dataDir, &storeError);
        if (!m_store) {
            qCCritical(lcApp).noquote() << storeError;
            Q_EMIT startFailed(storeError);
            return;
        }
        qCInfo(lcApp).noquote() << "queue stored in" << m_store->path();
    } else {
        qCWarning(lcApp) << "no durable store: requests are kept in memory only and a restart "
                            "loses them";
    }
    m_core = new BatchCore(m_provider, &m_clock, m_stats.get(), m_store.get(),
                           coreSettings(m_config, m_providers), this);
    m_core->setPriceTable(std::move(prices));
    for (auto it = m_providerClients.cbegin(); it != m_providerClients.cend(); ++it) {
        if (it.key() != DefaultProviderName)
            m_core->addProvider(it.key(), it.value());
    }
    m_core->restore();
    connect(m_core, &BatchCore::batchFinished, this, &ProxyService::batchFinished);
    m_limiter = std::make_shared<http::ConnectionLimiter>(m_config.frontDoor.maxConnections,
                                                          m_config.frontDoor.maxConnectionsPerIp);
    m_frontEnd = new HttpFrontEnd(m_core, m_stats.get(), &m_clock,
                                  frontEndSettings(m_config, m_limiter, m_providers), this);
    startMetrics();

    QString error;
    if (!m_frontEnd->listenOn(m_config.listen, &error)) {
        qCCritical(lcApp).noquote() << error;
        m_listenError = error;
        Q_EMIT startFailed(error);
        return;
    }
    if (!startIoThreads(frontEndCount(m_config) - 1, &error)) {
        qCCritical(lcApp).noquote() << error;
        Q_EMIT startFailed(error);
        return;
    }
    m_frontEnd->setReady(true);
    for (const ConfiguredProvider &provider : std::as_const(m_providers)) {
        qCInfo(lcApp).noquote() << "provider" << provider.name << "(" << provider.profile->name
                                << ")" << provider.baseUrl.toDisplayString()
                                << (provider.apiKey.isEmpty() ? "(clients' own keys)"
                                                              : "(configured key)");
    }
    qCInfo(lcApp).noquote() << "front door:" << m_config.tokens.size() << "proxy tokens,"
                            << m_config.allowOrigins.size() << "allowed origins,"
                            << m_config.allowHosts.size() << "allowed host names";
    m_snapshotTimer.start();
    Q_EMIT started(m_frontEnd->ports());
    Q_EMIT snapshotReady(snapshot());
}

std::shared_ptr<const accounting::PriceTable> ProxyService::loadPriceTable() {
    // The shipped prices with the user's override file (issue 10). A broken override file is
    // the user's to mend: say where and what, and do not start with prices they did not mean.
    accounting::LoadedPrices loaded =
        accounting::loadPrices(accounting::PriceTable::defaultOverridePath());
    if (!loaded.error.isEmpty()) {
        const QString error = QStringLiteral("cannot load the price table: ") + loaded.error;
        qCCritical(lcApp).noquote() << error;
        Q_EMIT startFailed(error);
        return nullptr;
    }
    qCInfo(lcApp).noquote() << "prices for" << loaded.table.models().size() << "models";
    return std::make_shared<const accounting::PriceTable>(std::move(loaded.table));
}

QString ProxyService::reloadPrices() {
    accounting::LoadedPrices loaded =
        accounting::loadPrices(accounting::PriceTable::defaultOverridePath());
    if (!loaded.error.isEmpty()) {
        qCWarning(lcApp).noquote() << "prices not reloaded:" << loaded.error;
        return loaded.error;
    }
    if (!m_core)
        return QStringLiteral("the proxy is not running");
    qCInfo(lcApp).noquote() << "prices reloaded:" << loaded.table.models().size() << "models";
    m_core->setPriceTable(std::make_shared<const accounting::PriceTable>(std::move(loaded.table)));
    return QString();
}

void ProxyService::stop() {
    m_snapshotTimer.stop();
    if (m_core)
        m_core->prepareShutdown();
    if (m_frontEnd) {
        HttpAnswer answer =
            errorAnswer(503, QStringLiteral("llm-proxy is shutting down; retry shortly"),
                        ErrorType::Server, "proxy_shutting_down");
        answer.headers.emplaceBack("retry-after", "5");
        answer.headers.emplaceBack("x-should-retry", "true");
        m_frontEnd->closeAll(answer);
        forEachIoFrontEnd([&answer](HttpFrontEnd *frontEnd) { frontEnd->closeAll(answer); }, true);
    }
    if (m_core)
        m_core->commit(); // nothing is cancelled upstream: the next start resumes it all
    Q_EMIT stopped();
}

void ProxyService::flushNow() {
    if (m_core)
        m_core->flushNow();
}

void ProxyService::setPaused(bool paused) {
    if (m_core)
        m_core->setPaused(paused);
    if (m_snapshotTimer.isActive())
        Q_EMIT snapshotReady(snapshot());
}

void ProxyService::applyConfig(const Config &config) {
    if (const QString exposed = exposureProblem(config); !exposed.isEmpty()) {
        qCWarning(lcApp).noquote() << exposed << "(the change is not applied)";
        Q_EMIT listenFailed(exposed);
        return;
    }
    const bool listenChanged = config.listen != m_config.listen;
    m_config = config;
    if (!m_core)
        return;
    QString providerError;
    const QList<ConfiguredProvider> providers = providersOf(m_config, &providerError);
    if (providerError.isEmpty() && !m_providers.isEmpty())
        applyProviders(providers);
    else if (!providerError.isEmpty())
        qCWarning(lcApp).noquote() << providerError << "(the providers are not changed)";
    m_core->setSettings(coreSettings(m_config, m_providers));
    m_limiter->setLimits(m_config.frontDoor.maxConnections, m_config.frontDoor.maxConnectionsPerIp);
    m_frontEnd->setSettings(frontEndSettings(m_config, m_limiter, m_providers));
    forEachIoFrontEnd([settings = frontEndSettings(m_config, m_limiter, m_providers)](
                          HttpFrontEnd *frontEnd) { frontEnd->setSettings(settings); },
                      false);
    m_provider->setBaseUrl(m_providers.constFirst().baseUrl);
    if (listenChanged) {
        // The other front ends accept from duplicates of front end 0's sockets: they let go
        // first, so that the old sockets really close (and front end 0 can go back to them if
        // the new address fails), then share whatever front end 0 listens on afterwards.
        forEachIoFrontEnd([](HttpFrontEnd *frontEnd) { frontEnd->stopListening(); }, true);
        QString error;
        const bool rebound = m_frontEnd->rebind(m_config.listen, &error);
        const QList<qintptr> listeners = m_frontEnd->listeningDescriptors();
        forEachIoFrontEnd(
            [&listeners](HttpFrontEnd *frontEnd) {
                QString shareError;
                if (!frontEnd->shareListeners(listeners, &shareError))
                    qCWarning(lcApp).noquote() << shareError;
            },
            true);
        if (rebound) {
            m_listenError.clear();
            qCInfo(lcApp).noquote() << "now listening on" << snapshot().listenUrls.join(u' ');
        } else {
            m_listenError = error;
            qCWarning(lcApp).noquote() << error;
            Q_EMIT listenFailed(error);
        }
    }
    Q_EMIT snapshotReady(snapshot());
}

// A client for a configured provider: Anthropic's Message Batches, or the OpenAI family's
// Files + Batches in its profile's shape.
HttpProviderBase *ProxyService::makeClient(const ConfiguredProvider &configured) {
    HttpProviderBase *client = nullptr;
    if (configured.profile->messagesApi) {
        client = new AnthropicProvider(m_nam, configured.baseUrl, this);
    } else {
        auto *openai = new OpenAiProvider(m_nam, configured.baseUrl, this);
        openai->setProfile(*configured.profile);
        client = openai;
    }
    client->setMaxLineBytes(m_config.maxResultLine);
    m_providerClients.insert(configured.name, client);
    m_clientProfiles.insert(configured.name, configured.profile->name);
    return client;
}

void ProxyService::applyProviders(const QList<ConfiguredProvider> &providers) {
    // The "openai" provider follows --upstream and its key; its profile stays the one it
    // started with (the test hook's shape included).
    QList<ConfiguredProvider> next = providers;
    next.first().profile = m_providers.constFirst().profile;
    for (const ConfiguredProvider &configured : std::as_const(next)) {
        HttpProviderBase *client = m_providerClients.value(configured.name);
        if (client && configured.name != DefaultProviderName &&
            m_clientProfiles.value(configured.name) != configured.profile->name) {
            // Another profile under the same name: a client of its own for new batches; the
            // batches already out keep the old one (it stays, a child of this service).
            client = nullptr;
        }
        if (!client) {
            if (configured.profile->messagesApi && configured.name == DefaultProviderName)
                continue; // refused at start; the "openai" provider keeps its client
            client = makeClient(configured);
            m_core->addProvider(configured.name, client);
            qCInfo(lcApp).noquote()
                << "provider" << configured.name << "added (" << configured.profile->name << ")"
                << configured.baseUrl.toDisplayString();
        } else if (client->baseUrl() != configured.baseUrl) {
            client->setBaseUrl(configured.baseUrl);
        }
    }
    // A provider no longer configured keeps its client for its batches still out; the router
    // sends no new request to it.
    m_providers = next;
}

bool ProxyService::startIoThreads(int count, QString *error) {
    // The same dispatcher as ours: epoll when the service's thread runs on it.
    const bool epoll = dynamic_cast<EpollEventDispatcher *>(
                           QAbstractEventDispatcher::instance(QThread::currentThread())) != nullptr;
    const QList<qintptr> listeners = m_frontEnd->listeningDescriptors();
    for (int i = 1; i <= count; ++i) {
        auto io = std::make_unique<IoThread>();
        io->thread.setObjectName(QStringLiteral("proxy-io-%1").arg(i));
        if (epoll)
            EpollEventDispatcher::installOn(&io->thread);
        io->thread.start();
        io->anchor = new QObject;
        io->anchor->moveToThread(&io->thread);
        bool shared = false;
        QString shareError;
        IoThread *raw = io.get();
        QMetaObject::invokeMethod(
            io->anchor,
            [this, raw, i, &listeners, &shared, &shareError] {
                raw->frontEnd =
                    new HttpFrontEnd(m_core, m_stats.get(), &m_clock,
                                     frontEndSettings(m_config, m_limiter, m_providers));
                raw->frontEnd->setIndex(i);
                raw->frontEnd->setMetrics(m_metrics.get());
                shared = raw->frontEnd->shareListeners(listeners, &shareError);
                raw->frontEnd->setReady(true);
            },
            Qt::BlockingQueuedConnection);
        m_ioThreads.push_back(std::move(io));
        if (!shared) {
            if (error)
                *error = shareError;
            stopIoThreads();
            return false;
        }
    }
    if (count > 0)
        qCInfo(lcApp) << "serving HTTP on" << count + 1 << "threads";
    return true;
}

void ProxyService::startMetrics() {
    m_metrics = std::make_unique<MetricsRegistry>();
    // The registry locks: it is fed here (the core's thread) and read by every I/O thread.
    MetricsRegistry *metrics = m_metrics.get();
    connect(m_core, &BatchCore::requestAccounted, this,
            [metrics](const accounting::AccountedRequest &request) { metrics->record(request); });
    connect(m_core, &BatchCore::batchFinished, this, [metrics](const BatchProgress &batch) {
        const QDateTime from = batch.submittedAt.isValid() ? batch.submittedAt : batch.createdAt;
        const QDateTime to =
            batch.endedAt.isValid() ? batch.endedAt : QDateTime::currentDateTimeUtc();
        metrics->recordBatch(batch.status, from.isValid() ? double(from.msecsTo(to)) / 1000 : 0);
    });
    m_frontEnd->setMetrics(metrics);
}

void ProxyService::stopIoThreads() {
    for (const std::unique_ptr<IoThread> &io : m_ioThreads) {
        QMetaObject::invokeMethod(
            io->anchor,
            [raw = io.get()] {
                delete raw->frontEnd;
                raw->frontEnd = nullptr;
            },
            Qt::BlockingQueuedConnection);
        io->thread.quit();
        io->thread.wait();
        delete io->anchor;
    }
    m_ioThreads.clear();
}

void ProxyService::forEachIoFrontEnd(const std::function<void(HttpFrontEnd *)> &call, bool wait) {
    for (const std::unique_ptr<IoThread> &io : m_ioThreads) {
        QMetaObject::invokeMethod(
            io->anchor,
            [call, raw = io.get()] {
                if (raw->frontEnd)
                    call(raw->frontEnd);
            },
            wait ? Qt::BlockingQueuedConnection : Qt::QueuedConnection);
    }
}

ProxySnapshot ProxyService::snapshot() const {
    ProxySnapshot s;
    s.takenAt = QDateTime::currentDateTimeUtc();
    s.uptimeMs = m_uptime.isValid() ? m_uptime.elapsed() : 0;
    s.listenError = m_listenError;
    if (!m_core)
        return s;
    s.stats = m_stats->snapshot();
    s.batches = m_core->batchProgress();
    s.batchesSubmitted = m_core->batchesSubmitted();
    s.batchesEnded = m_core->batchesEnded();
    s.paused = m_core->isPaused();
    const QList<ListenAddress> bound = m_frontEnd->boundAddresses();
    s.listening = !bound.isEmpty();
    for (const ListenAddress &address : bound)
        s.listenUrls.append(urlFor(address));
    return s;
}

} // namespace llmproxy
