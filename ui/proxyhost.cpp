// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/proxyhost.h"

#include "batch/batchcore.h"
#include "eventloop/epolleventdispatcher.h"
#include "proxyservice.h"

#include <QTimer>

namespace llmproxy {

ProxyHost::ProxyHost(QObject *parent)
    : QObject(parent) {
    qRegisterMetaType<ProxySnapshot>();
    qRegisterMetaType<BatchProgress>();
    qRegisterMetaType<Config>();
    qRegisterMetaType<MoneySummary>();
}

ProxyHost::~ProxyHost() {
    endThread();
}

void ProxyHost::start(const Config &config) {
    if (m_state != State::NotStarted && m_state != State::StartFailed)
        return;
    launch(config);
}

void ProxyHost::launch(const Config &config) {
    endThread();
    m_state = State::Starting;
    m_thread = std::make_unique<QThread>();
    m_thread->setObjectName(QStringLiteral("proxy"));
    m_anchor = new QObject;
    m_anchor->moveToThread(m_thread.get());
    connect(m_thread.get(), &QThread::finished, m_anchor, &QObject::deleteLater);
    // The proxy's thread holds every waiting client's socket: Qt's own dispatchers cost time
    // proportional to their number on every event, epoll does not. Installed just before
    // start(), as the dispatcher requires (LLMPROXY_DISPATCHER=qt keeps Qt's).
    if (qgetenv("LLMPROXY_DISPATCHER") != "qt")
        EpollEventDispatcher::installOn(m_thread.get());
    m_thread->start();

    const auto interval = m_snapshotInterval;
    const auto moneyInterval = m_moneyInterval;
    QMetaObject::invokeMethod(
        m_anchor,
        [this, anchor = m_anchor, config, interval, moneyInterval] {
            // On the worker thread. `this` outlives it: endThread() waits for the thread.
            auto *service = new ProxyService(config, anchor);
            service->setSnapshotInterval(interval);
            // Queued: the receiver lives on the host's thread.
            connect(service, &ProxyService::started, this, [this](const QList<quint16> &ports) {
                m_state = State::Running;
                Q_EMIT started(ports);
            });
            connect(service, &ProxyService::startFailed, this, [this](const QString &error) {
                m_state = State::StartFailed;
                Q_EMIT startFailed(error);
            });
            connect(service, &ProxyService::stopped, this, [this] {
                m_state = State::Stopped;
                Q_EMIT stopped();
            });
            connect(service, &ProxyService::snapshotReady, this, &ProxyHost::snapshotReady);
            connect(service, &ProxyService::listenFailed, this, &ProxyHost::listenFailed);
            connect(service, &ProxyService::batchFinished, this, &ProxyHost::batchFinished);
            // Money: the figures at the start, then after accounted requests, at most once
            // per interval however many there are. The ledger is read here, on the store's
            // thread, once (and again when the day changes); each accounted request is added
            // to the figures kept (MoneyTally), not read back from the whole ledger.
            auto *tally = new MoneyTally(service);
            auto *moneyTimer = new QTimer(service);
            moneyTimer->setSingleShot(true);
            moneyTimer->setInterval(moneyInterval);
            connect(moneyTimer, &QTimer::timeout, service,
                    [this, service, tally] { postMoneyOf(service, tally); });
            connect(service, &ProxyService::started, service, [this, service, tally, moneyTimer] {
                postMoneyOf(service, tally);
                connect(service->core(), &BatchCore::requestAccounted, moneyTimer,
                        [tally, moneyTimer](const accounting::AccountedRequest &request) {
                            tally->add(request);
                            if (!moneyTimer->isActive())
                                moneyTimer->start();
                        });
            });
            service->start();
        },
        Qt::QueuedConnection);
}

void ProxyHost::endThread() {
    if (!m_thread)
        return;
    m_anchor = nullptr; // deleted, with the service, when the thread finishes
    m_thread->quit();
    m_thread->wait(); // the service is idle here: stopped, or never started
    m_thread.reset();
}

void ProxyHost::withService(std::function<void(ProxyService *)> call) {
    if (!m_anchor)
        return;
    QMetaObject::invokeMethod(
        m_anchor,
        [anchor = m_anchor, call = std::move(call)] {
            if (auto *service =
                    anchor->findChild<ProxyService *>(QString(), Qt::FindDirectChildrenOnly)) {
                call(service);
            }
        },
        Qt::QueuedConnection);
}

void ProxyHost::setPaused(bool paused) {
    withService([paused](ProxyService *service) { service->setPaused(paused); });
}

void ProxyHost::flushNow() {
    withService([](ProxyService *service) { service->flushNow(); });
}

void ProxyHost::applyConfig(const Config &config) {
    if (m_state == State::StartFailed) {
        launch(config); // nothing was served: start over with the new settings
        return;
    }
    withService([config](ProxyService *service) { service->applyConfig(config); });
}

void ProxyHost::refreshMoney() {
    withService([this](ProxyService *service) {
        if (!service->core())
            return;
        // The figures kept; read again if the day changed since (the app asks every few
        // minutes, so "today" turns over at midnight without a request).
        postMoneyOf(service,
                    service->findChild<MoneyTally *>(QString(), Qt::FindDirectChildrenOnly));
    });
}

void ProxyHost::postMoneyOf(ProxyService *service, MoneyTally *tally) {
    const MoneyPeriods periods = MoneyPeriods::at(QDateTime::currentDateTime());
    postMoney(tally ? tally->summary(service->store(), periods)
                    : queryMoney(service->store(), periods));
}

void ProxyHost::reloadPrices() {
    withService([this](ProxyService *service) { postPricesReloaded(service->reloadPrices()); });
}

void ProxyHost::postMoney(const MoneySummary &summary) {
    QMetaObject::invokeMethod(
        this, [this, summary] { Q_EMIT moneyReady(summary); }, Qt::QueuedConnection);
}

void ProxyHost::postPricesReloaded(const QString &error) {
    QMetaObject::invokeMethod(
        this, [this, error] { Q_EMIT pricesReloaded(error); }, Qt::QueuedConnection);
}

void ProxyHost::stop() {
    switch (m_state) {
    case State::Starting:
    case State::Running:
        m_state = State::Stopping;
        withService([](ProxyService *service) { service->stop(); });
        return;
    case State::Stopping:
        return;
    case State::NotStarted:
    case State::StartFailed:
    case State::Stopped:
        m_state = State::Stopped;
        QMetaObject::invokeMethod(this, &ProxyHost::stopped, Qt::QueuedConnection);
        return;
    }
}

} // namespace llmproxy
