// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Runs the ProxyService on its own worker thread and is the only thing that talks to it:
// the service is constructed on that thread (not moved there), so objects it holds by value
// share its thread.
// intents go in as queued calls, the service's signals come out queued on this object's thread.
// Nothing here waits for the service while it runs. When the service could not start (its
// port taken), the next applyConfig() starts a fresh one with the new settings.

#include "proxysnapshot.h"
#include "settings/config.h"
#include "ui/moneysummary.h"

#include <QList>
#include <QObject>
#include <QThread>

#include <functional>
#include <memory>

namespace llmproxy {

class MoneyTally;
class ProxyService;

class ProxyHost final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProxyHost)
public:
    enum class State { NotStarted, Starting, Running, StartFailed, Stopping, Stopped };
    Q_ENUM(State)

    explicit ProxyHost(QObject *parent = nullptr);
    ~ProxyHost() override; // ends the worker thread (the service is stopped first by stop())

    State state() const { return m_state; }
    // How often the service sends snapshots (default 1 s); applies to services started later.
    void setSnapshotInterval(std::chrono::milliseconds interval) { m_snapshotInterval = interval; }
    // At most how often moneyReady() follows accounted requests (default 1 s); applies to
    // services started later.
    void setMoneyInterval(std::chrono::milliseconds interval) { m_moneyInterval = interval; }

public Q_SLOTS:
    void start(const llmproxy::Config &config);
    void setPaused(bool paused);
    void flushNow();
    void applyConfig(const llmproxy::Config &config);
    // Stop serving (waiting clients are told to retry), then stopped().
    void stop();
    // The money figures now (moneyReady()); they also follow by themselves once the proxy runs:
    // at its start, and at most every money interval while requests are accounted.
    void refreshMoney();
    // The price override file changed: the running proxy reads the prices again
    // (pricesReloaded(), with an empty error when they are in use).
    void reloadPrices();

Q_SIGNALS:
    void started(const QList<quint16> &ports);
    void startFailed(const QString &error);
    void stopped();
    void snapshotReady(const llmproxy::ProxySnapshot &snapshot);
    void listenFailed(const QString &error);
    void batchFinished(const llmproxy::BatchProgress &batch);
    void moneyReady(const llmproxy::MoneySummary &summary);
    void pricesReloaded(const QString &error);

private:
    void launch(const Config &config);
    void endThread();
    // On the service's thread: moneyReady() with the figures `tally` keeps (or read afresh).
    void postMoneyOf(ProxyService *service, MoneyTally *tally);
    // Runs `call` with the service, on the service's thread, after everything queued before.
    void withService(std::function<void(ProxyService *)> call);
    // From the proxy's thread: the host's signals are emitted on the host's own thread, so a
    // receiver (or a QSignalSpy, which records where the signal is emitted) never races it.
    void postMoney(const llmproxy::MoneySummary &summary);
    void postPricesReloaded(const QString &error);

    std::unique_ptr<QThread> m_thread;
    // Lives on m_thread; the service is born there as its child (so every member of the
    // service, timers included, belongs to that thread), and both go when the thread ends.
    QObject *m_anchor = nullptr;
    State m_state = State::NotStarted;
    std::chrono::milliseconds m_snapshotInterval{1000};
    std::chrono::milliseconds m_moneyInterval{1000};
};

} // namespace llmproxy
