// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QAbstractEventDispatcher>
#include <QAtomicInt>
#include <QHash>
#include <QList>

#include <set>
#include <utility>

class QThread;

namespace llmproxy {

// A Linux event dispatcher whose cost per wake-up does not grow with the number of registered
// socket notifiers. Qt 6.4's own dispatchers (glib and the plain Unix one) rebuild and poll the
// whole descriptor set on every iteration; with tens of thousands of held client connections
// that costs milliseconds per event. This one keeps the descriptors in an epoll set and only
// touches those that are ready.
//
// Install it before the thread's event loop exists; Qt then owns it and deletes it when the
// thread finishes (Qt 6.4 never deletes the dispatcher of a thread that is never started, so
// install it just before start()):
//   worker thread:  EpollEventDispatcher::installOn(&thread);  before thread.start()
//                   (or thread.setEventDispatcher(new EpollEventDispatcher))
//   main thread:    QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
//                   before the QCoreApplication is constructed
//                   (or EpollEventDispatcher::installOn(QThread::currentThread()) at that time).
//
// Behaviour, matching Qt's Unix dispatcher where Qt documents it:
// - posted events are sent at the start of every processEvents(); every post wakes the loop
//   through an eventfd; interrupt() makes the running processEvents() return;
// - socket notifiers: Read, Write and Exception on one descriptor share one epoll registration;
//   hang-up and error wake all three; regular files (which epoll refuses) count as always ready;
// - timers: ordered by deadline, re-armed before their QTimerEvent is sent and never delivered
//   again while that event is still being handled (nested loops); Qt::PreciseTimer to the
//   millisecond or better, Qt::CoarseTimer within 5% (precise at <= 20 ms, very coarse at >= 20 s),
//   Qt::VeryCoarseTimer on whole seconds;
// - QEventLoop::WaitForMoreEvents, ExcludeSocketNotifiers and X11ExcludeTimers are honoured.
// Everything except wakeUp() and interrupt() must be called from the dispatcher's own thread.
//
// Disable a notifier before closing its descriptor (Qt's own classes do). If a descriptor is
// closed first while a duplicate (another fd, a forked child) keeps its file open, the kernel
// keeps that file in the epoll set and it cannot be removed by number any more: its reports are
// recognised by their registration generation and dropped, but while that file stays ready the
// loop wakes up for nothing.
class EpollEventDispatcher final : public QAbstractEventDispatcher {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(EpollEventDispatcher)

public:
    explicit EpollEventDispatcher(QObject *parent = nullptr);
    ~EpollEventDispatcher() override;

    // Gives `thread` a new EpollEventDispatcher, owned by the thread from then on. The thread
    // must not have an event dispatcher yet (not started yet; for the main thread: no
    // QCoreApplication yet). Returns false, and installs nothing, if it already has one or if
    // epoll is unavailable.
    static bool installOn(QThread *thread);

    // False if the epoll set or the eventfd could not be created (the dispatcher is unusable).
    bool isValid() const;
    // Descriptors currently in the epoll set (excluding the wake-up eventfd) and regular files
    // handled without epoll. For tests and diagnostics.
    qsizetype watchedDescriptorCount() const;
    // Registered timers. For tests and diagnostics.
    qsizetype timerCount() const;

    bool processEvents(QEventLoop::ProcessEventsFlags flags) override;

    void registerSocketNotifier(QSocketNotifier *notifier) override;
    void unregisterSocketNotifier(QSocketNotifier *notifier) override;

    using QAbstractEventDispatcher::registerTimer;
    void registerTimer(int timerId, qint64 interval, Qt::TimerType timerType,
                       QObject *object) override;
    bool unregisterTimer(int timerId) override;
    bool unregisterTimers(QObject *object) override;
    QList<TimerInfo> registeredTimers(QObject *object) const override;
    int remainingTime(int timerId) override;

    void wakeUp() override;
    void interrupt() override;

private:
    // One registered descriptor: up to one notifier per QSocketNotifier::Type.
    struct Descriptor {
        QSocketNotifier *notifiers[3] = {nullptr, nullptr, nullptr};
        // Per type, the serial of the wait that last delivered to it (or of the last wait
        // before it was registered): events an outer loop collected in an older wait are
        // stale once a nested loop's newer wait has delivered them, and are not for a
        // notifier registered after that wait.
        quint64 deliveredIn[3] = {0, 0, 0};
        quint32 generation = 0; // distinguishes a reused descriptor number
        quint32 events = 0;     // the epoll interest mask now registered
        bool inEpoll = false;
        bool alwaysReady = false; // a regular file: epoll refuses it, poll calls it always ready
    };

    struct Timer {
        QObject *object = nullptr;
        qint64 interval = 0; // ms; whole seconds (as ms) for very coarse timers
        qint64 expected = 0; // ns, steady clock: the ideal next expiry
        qint64 deadline = 0; // ns, steady clock: when it fires (coarse timers are rounded)
        quint64 serial = 0;  // distinguishes a timer id that was freed and handed out again
        Qt::TimerType type = Qt::CoarseTimer;
        bool inFlight = false; // its QTimerEvent is being delivered
    };

    quint32 nextGeneration();
    void updateInterest(int fd, bool refresh);
    int deliverSocketEvents(int fd, quint32 generation, quint32 events, quint64 waitSerial);
    int deliverAlwaysReady(quint64 waitSerial);
    int activateTimers();
    qint64 nextTimerDeadline() const;
    void drainWakeUp();
    void armTimer(int timerId, Timer &timer, qint64 now, bool first);

    int m_epollFd = -1;     // sockets and the eventfd
    int m_wakeEpollFd = -1; // the eventfd alone, for ExcludeSocketNotifiers
    int m_eventFd = -1;

    QAtomicInt m_wakeUpPending; // 1 while the eventfd holds an unread wake-up
    QAtomicInt m_interrupt;

    QHash<int, Descriptor> m_descriptors;
    QList<int> m_alwaysReady;
    quint32 m_nextGeneration = 1;
    quint64 m_waitSerial = 0;

    QHash<int, Timer> m_timers;
    std::set<std::pair<qint64, int>> m_timerQueue; // (deadline, id), earliest first
    QMultiHash<const QObject *, int> m_timersByObject;
    quint64 m_nextTimerSerial = 1;
    bool m_hasPwait2 = true;
};

} // namespace llmproxy
