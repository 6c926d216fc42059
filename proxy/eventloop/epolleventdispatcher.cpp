// SPDX-License-Identifier: GPL-3.0-or-later
#include "eventloop/epolleventdispatcher.h"

#include <QCoreApplication>
#include <QEvent>
#include <QLoggingCategory>
#include <QSocketNotifier>
#include <QThread>
#include <QTimerEvent>
#include <QVarLengthArray>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

namespace llmproxy {
namespace {

Q_LOGGING_CATEGORY(lcEventLoop, "llmproxy.eventloop")

// epoll_event.data of the wake-up eventfd. Socket keys are (generation << 32 | fd) with fd >= 0,
// so they never collide with it.
constexpr quint64 kWakeUpKey = ~quint64(0);
// One wait's event buffer. It lives on the stack: a handler may run a nested loop, whose own
// wait must not overwrite the events the outer loop is still walking through. Level-triggered
// epoll reports whatever did not fit next time, rotating the ready list, so nothing starves.
constexpr int kMaxEvents = 256;
constexpr qint64 kNsPerMs = 1'000'000;
constexpr qint64 kNsPerSecond = 1'000'000'000;
constexpr qint64 kNoDeadline = LLONG_MAX;

// Indexed by QSocketNotifier::Type (Read, Write, Exception). Hang-up and error activate every
// notifier on the descriptor, as poll() does in Qt's Unix dispatcher.
constexpr quint32 kInterest[3] = {EPOLLIN, EPOLLOUT, EPOLLPRI};
constexpr quint32 kActivating[3] = {EPOLLIN | EPOLLHUP | EPOLLERR, EPOLLOUT | EPOLLHUP | EPOLLERR,
                                    EPOLLPRI | EPOLLHUP | EPOLLERR};
constexpr const char *kTypeNames[3] = {"Read", "Write", "Exception"};

qint64 steadyNowNs() {
    // libstdc++'s steady_clock is CLOCK_MONOTONIC, the clock Qt's own timers use.
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

quint64 socketKey(int fd, quint32 generation) {
    return (quint64(generation) << 32) | quint32(fd);
}

// Qt::CoarseTimer: move the expiry by at most 5% of the interval onto the roundest boundary in
// reach, so that timers of similar intervals fire together and the thread wakes less often.
qint64 coarsened(qint64 expectedNs, qint64 intervalMs) {
    const qint64 slackMs = intervalMs / 20;
    static constexpr qint64 kBoundariesMs[] = {1000, 500, 250, 200, 100, 50, 25, 20, 10, 5, 2};
    for (const qint64 boundary : kBoundariesMs) {
        if (boundary > 2 * slackMs) {
            continue;
        }
        const qint64 boundaryNs = boundary * kNsPerMs;
        // The nearest multiple is at most boundary / 2 <= slack away.
        return (expectedNs + boundaryNs / 2) / boundaryNs * boundaryNs;
    }
    return expectedNs;
}

int clampedMs(qint64 ms) {
    return static_cast<int>(std::clamp<qint64>(ms, INT_MIN, INT_MAX));
}

} // namespace

EpollEventDispatcher::EpollEventDispatcher(QObject *parent)
    : QAbstractEventDispatcher(parent) {
    m_epollFd = ::epoll_create1(EPOLL_CLOEXEC);
    m_wakeEpollFd = ::epoll_create1(EPOLL_CLOEXEC);
    m_eventFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bool ok = m_epollFd >= 0 && m_wakeEpollFd >= 0 && m_eventFd >= 0;
    for (const int epollFd : {m_epollFd, m_wakeEpollFd}) {
        if (!ok) {
            break;
        }
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = kWakeUpKey;
        ok = ::epoll_ctl(epollFd, EPOLL_CTL_ADD, m_eventFd, &event) == 0;
    }
    if (!ok) {
        const int error = errno;
        qCCritical(lcEventLoop, "cannot set up epoll and eventfd: %s", std::strerror(error));
        for (int *fd : {&m_epollFd, &m_wakeEpollFd, &m_eventFd}) {
            if (*fd >= 0) {
                ::close(*fd);
            }
            *fd = -1;
        }
    }
}

EpollEventDispatcher::~EpollEventDispatcher() {
    for (const int fd : {m_epollFd, m_wakeEpollFd, m_eventFd}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

bool EpollEventDispatcher::installOn(QThread *thread) {
    if (!thread || QAbstractEventDispatcher::instance(thread)) {
        return false;
    }
    auto dispatcher = std::make_unique<EpollEventDispatcher>();
    if (!dispatcher->isValid()) {
        return false;
    }
    thread->setEventDispatcher(dispatcher.get()); // moves it to `thread`
    if (QAbstractEventDispatcher::instance(thread) != dispatcher.get()) {
        return false;
    }
    // Installed: QThread deletes its event dispatcher when the thread finishes.
    static_cast<void>(dispatcher.release());
    return true;
}

bool EpollEventDispatcher::isValid() const {
    return m_epollFd >= 0;
}

qsizetype EpollEventDispatcher::watchedDescriptorCount() const {
    return m_descriptors.size();
}

qsizetype EpollEventDispatcher::timerCount() const {
    return m_timers.size();
}

// ---------------------------------------------------------------------------------------------
// The loop

bool EpollEventDispatcher::processEvents(QEventLoop::ProcessEventsFlags flags) {
    if (!isValid()) {
        return false;
    }
    m_interrupt.storeRelaxed(0);
    Q_EMIT awake();

    // Qt's own dispatchers call the private QCoreApplicationPrivate::sendPostedEvents with
    // their thread's data; the public overload resolves the same data for the calling thread.
    QCoreApplication::sendPostedEvents();

    const bool includeTimers = !(flags & QEventLoop::X11ExcludeTimers);
    const bool includeNotifiers = !(flags & QEventLoop::ExcludeSocketNotifiers);
    // Qt's dispatchers also ask the private QThreadData::canWait() whether posts arrived after
    // sendPostedEvents(). That is unreachable from here and not needed: every post calls
    // wakeUp(), which leaves the eventfd readable until this thread has read it, so the wait
    // below returns at once.
    const bool mayWait = (flags & QEventLoop::WaitForMoreEvents) && !m_interrupt.loadRelaxed();
    if (mayWait) {
        Q_EMIT aboutToBlock();
    }
    if (m_interrupt.loadRelaxed()) {
        return false;
    }

    qint64 timeoutNs = 0;
    if (mayWait) {
        timeoutNs = -1;
        if (includeNotifiers && !m_alwaysReady.isEmpty()) {
            timeoutNs = 0;
        } else if (includeTimers) {
            const qint64 next = nextTimerDeadline();
            if (next != kNoDeadline) {
                timeoutNs = std::max<qint64>(0, next - steadyNowNs());
            }
        }
    }

    epoll_event events[kMaxEvents];
    const int epollFd = includeNotifiers ? m_epollFd : m_wakeEpollFd;
    int count = -1;
    if (m_hasPwait2) {
        timespec timeout{};
        timeout.tv_sec = static_cast<time_t>(timeoutNs / kNsPerSecond);
        timeout.tv_nsec = static_cast<long>(timeoutNs % kNsPerSecond);
        count = ::epoll_pwait2(epollFd, events, kMaxEvents, timeoutNs < 0 ? nullptr : &timeout,
                               nullptr);
        if (count < 0 && errno == ENOSYS) {
            m_hasPwait2 = false; // kernel before 5.11: millisecond timeouts
        }
    }
    if (!m_hasPwait2) {
        // Round up: waking before a timer is due would only spin.
        const int timeoutMs = timeoutNs < 0 ? -1 : clampedMs((timeoutNs + kNsPerMs - 1) / kNsPerMs);
        count = ::epoll_wait(epollFd, events, kMaxEvents, timeoutMs);
    }
    if (count < 0) {
        const int error = errno;
        if (error != EINTR) {
            qCWarning(lcEventLoop, "epoll_wait failed: %s", std::strerror(error));
        }
        count = 0;
    }
    const quint64 waitSerial = ++m_waitSerial;

    int delivered = 0;
    for (int i = 0; i < count; ++i) {
        if (events[i].data.u64 == kWakeUpKey) {
            drainWakeUp();
            ++delivered;
        }
    }
    if (includeNotifiers) {
        for (int i = 0; i < count && !m_interrupt.loadRelaxed(); ++i) {
            const quint64 key = events[i].data.u64;
            if (key == kWakeUpKey) {
                continue;
            }
            delivered += deliverSocketEvents(static_cast<int>(quint32(key)), quint32(key >> 32),
                                             events[i].events, waitSerial);
        }
        if (!m_alwaysReady.isEmpty() && !m_interrupt.loadRelaxed()) {
            delivered += deliverAlwaysReady(waitSerial);
        }
    }
    if (includeTimers && !m_interrupt.loadRelaxed()) {
        delivered += activateTimers();
    }
    return delivered > 0;
}

void EpollEventDispatcher::drainWakeUp() {
    // Read first, then clear the flag. In the other order a wakeUp() from another thread
    // between the clear and the read sets the flag and writes, and the read swallows that
    // write: the flag stays set over an empty eventfd, every later wakeUp() skips its write,
    // and the thread sleeps through all further posts.
    quint64 value = 0;
    while (::read(m_eventFd, &value, sizeof value) < 0 && errno == EINTR) {
    }
    m_wakeUpPending.storeRelease(0);
}

void EpollEventDispatcher::wakeUp() {
    if (m_eventFd < 0 || m_wakeUpPending.fetchAndStoreOrdered(1) != 0) {
        return; // a wake-up is already on its way
    }
    const quint64 one = 1;
    while (::write(m_eventFd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void EpollEventDispatcher::interrupt() {
    m_interrupt.storeRelaxed(1);
    wakeUp();
}

// ---------------------------------------------------------------------------------------------
// Socket notifiers

void EpollEventDispatcher::registerSocketNotifier(QSocketNotifier *notifier) {
    Q_ASSERT(notifier);
    const qintptr socket = notifier->socket();
    const int type = static_cast<int>(notifier->type());
    if (socket < 0 || socket > INT_MAX || type < 0 || type > 2) {
        qCWarning(lcEventLoop, "cannot watch invalid socket descriptor %lld",
                  static_cast<long long>(socket));
        return;
    }
    if (notifier->thread() != thread() || thread() != QThread::currentThread()) {
        qCWarning(lcEventLoop, "socket notifiers cannot be enabled from another thread");
        return;
    }
    const int fd = static_cast<int>(socket);
    auto it = m_descriptors.find(fd);
    if (it == m_descriptors.end()) {
        it = m_descriptors.insert(fd, Descriptor{});
        it->generation = nextGeneration();
    }
    if (it->notifiers[type] && it->notifiers[type] != notifier) {
        qCWarning(lcEventLoop, "multiple socket notifiers for descriptor %d and type %s", fd,
                  kTypeNames[type]);
    }
    it->notifiers[type] = notifier;
    // Events from a wait that happened before this registration are not for this notifier.
    it->deliveredIn[type] = m_waitSerial;
    updateInterest(fd, true);
}

void EpollEventDispatcher::unregisterSocketNotifier(QSocketNotifier *notifier) {
    Q_ASSERT(notifier);
    const qintptr socket = notifier->socket();
    const int type = static_cast<int>(notifier->type());
    if (socket < 0 || socket > INT_MAX || type < 0 || type > 2) {
        return;
    }
    if (notifier->thread() != thread() || thread() != QThread::currentThread()) {
        qCWarning(lcEventLoop, "socket notifiers cannot be disabled from another thread");
        return;
    }
    const int fd = static_cast<int>(socket);
    const auto it = m_descriptors.find(fd);
    if (it == m_descriptors.end() || it->notifiers[type] != notifier) {
        return;
    }
    it->notifiers[type] = nullptr;
    updateInterest(fd, false);
}

quint32 EpollEventDispatcher::nextGeneration() {
    const quint32 generation = m_nextGeneration++;
    if (m_nextGeneration == 0) {
        m_nextGeneration = 1;
    }
    return generation;
}

void EpollEventDispatcher::updateInterest(int fd, bool refresh) {
    const auto it = m_descriptors.find(fd);
    if (it == m_descriptors.end()) {
        return;
    }
    Descriptor &descriptor = *it;
    quint32 events = 0;
    for (int type = 0; type < 3; ++type) {
        if (descriptor.notifiers[type]) {
            events |= kInterest[type];
        }
    }

    if (events == 0) {
        // The last notifier is gone: leave the epoll set. An empty mask is not enough, epoll
        // reports hang-up and error regardless of it, and the loop would spin on them.
        if (descriptor.inEpoll && ::epoll_ctl(m_epollFd, EPOLL_CTL_DEL, fd, nullptr) != 0) {
            const int error = errno;
            // EBADF/ENOENT: the descriptor was closed (and perhaps reused) before its
            // notifiers were disabled; the kernel dropped the registration with the file.
            if (error != EBADF && error != ENOENT) {
                qCWarning(lcEventLoop, "cannot stop watching descriptor %d: %s", fd,
                          std::strerror(error));
            }
        }
        if (descriptor.alwaysReady) {
            m_alwaysReady.removeOne(fd);
        }
        m_descriptors.erase(it);
        return;
    }

    // On registration the kernel is asked even if the mask is unchanged: if the descriptor
    // was closed and its number reused behind our back, that is how we find out.
    if (descriptor.alwaysReady || (descriptor.inEpoll && descriptor.events == events && !refresh)) {
        descriptor.events = events;
        return;
    }

    epoll_event event{};
    event.events = events;
    event.data.u64 = socketKey(fd, descriptor.generation);
    if (descriptor.inEpoll) {
        if (::epoll_ctl(m_epollFd, EPOLL_CTL_MOD, fd, &event) == 0) {
            descriptor.events = events;
            return;
        }
        if (errno != ENOENT) {
            const int error = errno;
            qCWarning(lcEventLoop, "cannot change the events watched on descriptor %d: %s", fd,
                      std::strerror(error));
            return;
        }
        // The number now names another file: the old one was closed without its notifiers
        // being disabled first. A new generation drops whatever is still reported for it.
        descriptor.inEpoll = false;
        descriptor.generation = nextGeneration();
        event.data.u64 = socketKey(fd, descriptor.generation);
    }
    int result = ::epoll_ctl(m_epollFd, EPOLL_CTL_ADD, fd, &event);
    if (result != 0 && errno == EEXIST) {
        result = ::epoll_ctl(m_epollFd, EPOLL_CTL_MOD, fd, &event);
    }
    if (result == 0) {
        descriptor.inEpoll = true;
        descriptor.events = events;
        return;
    }
    const int error = errno;
    if (error == EPERM) {
        // A regular file or directory. poll() calls them always readable and writable, so
        // Qt's dispatchers activate their notifiers on every iteration; so do we.
        descriptor.alwaysReady = true;
        descriptor.events = events;
        m_alwaysReady.append(fd);
        return;
    }
    qCWarning(lcEventLoop, "cannot watch descriptor %d: %s", fd, std::strerror(error));
}

int EpollEventDispatcher::deliverSocketEvents(int fd, quint32 generation, quint32 events,
                                              quint64 waitSerial) {
    int delivered = 0;
    for (int type = 0; type < 3; ++type) {
        if (m_interrupt.loadRelaxed()) {
            break;
        }
        if (!(events & kActivating[type])) {
            continue;
        }
        // Look it up again for each delivery: the previous handler may have deleted or
        // disabled this notifier, or closed the descriptor and reused its number.
        const auto it = m_descriptors.find(fd);
        if (it == m_descriptors.end() || it->generation != generation) {
            break;
        }
        QSocketNotifier *notifier = it->notifiers[type];
        if (!notifier || it->deliveredIn[type] >= waitSerial) {
            continue;
        }
        it->deliveredIn[type] = waitSerial;
        QEvent event(QEvent::SockAct);
        QCoreApplication::sendEvent(notifier, &event);
        ++delivered;
    }
    return delivered;
}

int EpollEventDispatcher::deliverAlwaysReady(quint64 waitSerial) {
    int delivered = 0;
    const QList<int> fds = m_alwaysReady; // handlers may change the list
    for (const int fd : fds) {
        if (m_interrupt.loadRelaxed()) {
            break;
        }
        const auto it = m_descriptors.constFind(fd);
        if (it == m_descriptors.cend() || !it->alwaysReady) {
            continue;
        }
        delivered += deliverSocketEvents(fd, it->generation, EPOLLIN | EPOLLOUT, waitSerial);
    }
    return delivered;
}

// ---------------------------------------------------------------------------------------------
// Timers

void EpollEventDispatcher::registerTimer(int timerId, qint64 interval, Qt::TimerType timerType,
                                         QObject *object) {
    if (timerId < 1 || interval < 0 || !object) {
        qCWarning(lcEventLoop, "registerTimer: invalid arguments");
        return;
    }
    if (object->thread() != thread() || thread() != QThread::currentThread()) {
        qCWarning(lcEventLoop, "timers cannot be started from another thread");
        return;
    }
    if (m_timers.contains(timerId)) {
        unregisterTimer(timerId); // Qt hands out unique ids; be safe anyway
    }

    Timer timer;
    timer.object = object;
    timer.interval = interval;
    timer.type = timerType;
    timer.serial = m_nextTimerSerial++;
    // Same classification as Qt's QTimerInfoList: below 20 ms, 5% is under a millisecond;
    // from 20 s on, it is over a second.
    if (timerType == Qt::CoarseTimer) {
        if (interval >= 20'000) {
            timer.type = Qt::VeryCoarseTimer;
        } else if (interval <= 20) {
            timer.type = Qt::PreciseTimer;
        }
    }
    if (timer.type == Qt::VeryCoarseTimer && interval > 0) {
        timer.interval = std::max<qint64>(1, (interval + 500) / 1000) * 1000; // whole seconds
    }

    const auto it = m_timers.insert(timerId, timer);
    armTimer(timerId, *it, steadyNowNs(), true);
    m_timersByObject.insert(object, timerId);
}

void EpollEventDispatcher::armTimer(int timerId, Timer &timer, qint64 now, bool first) {
    if (!first) {
        m_timerQueue.erase({timer.deadline, timerId});
    }
    const qint64 intervalNs = timer.interval * kNsPerMs;
    if (timer.type == Qt::VeryCoarseTimer) {
        const qint64 wholeSecond = now / kNsPerSecond * kNsPerSecond;
        if (first) {
            const qint64 nearestSecond =
                wholeSecond + (now - wholeSecond > kNsPerSecond / 2 ? kNsPerSecond : 0);
            timer.expected = nearestSecond + intervalNs;
        } else {
            timer.expected += intervalNs;
            if (timer.expected <= wholeSecond) {
                timer.expected = wholeSecond + intervalNs;
            }
        }
        timer.deadline = timer.expected;
    } else {
        // Drift-free: the next expiry follows the previous one, unless the loop fell behind by
        // more than an interval, in which case the missed expiries are skipped.
        if (first) {
            timer.expected = now + intervalNs;
        } else {
            timer.expected += intervalNs;
            if (timer.expected < now) {
                timer.expected = now + intervalNs;
            }
        }
        timer.deadline = timer.type == Qt::CoarseTimer ? coarsened(timer.expected, timer.interval)
                                                       : timer.expected;
    }
    m_timerQueue.insert({timer.deadline, timerId});
}

bool EpollEventDispatcher::unregisterTimer(int timerId) {
    if (thread() != QThread::currentThread()) {
        qCWarning(lcEventLoop, "timers cannot be stopped from another thread");
        return false;
    }
    const auto it = m_timers.find(timerId);
    if (it == m_timers.end()) {
        return false;
    }
    m_timerQueue.erase({it->deadline, timerId});
    m_timersByObject.remove(it->object, timerId);
    m_timers.erase(it);
    return true;
}

bool EpollEventDispatcher::unregisterTimers(QObject *object) {
    if (!object) {
        return false;
    }
    if (object->thread() != thread() || thread() != QThread::currentThread()) {
        qCWarning(lcEventLoop, "timers cannot be stopped from another thread");
        return false;
    }
    const QList<int> ids = m_timersByObject.values(object);
    if (ids.isEmpty()) {
        return false;
    }
    for (const int id : ids) {
        const auto it = m_timers.find(id);
        if (it != m_timers.end()) {
            m_timerQueue.erase({it->deadline, id});
            m_timers.erase(it);
        }
    }
    m_timersByObject.remove(object);
    return true;
}

QList<QAbstractEventDispatcher::TimerInfo>
EpollEventDispatcher::registeredTimers(QObject *object) const {
    QList<TimerInfo> list;
    if (!object) {
        return list;
    }
    for (auto it = m_timersByObject.constFind(object);
         it != m_timersByObject.cend() && it.key() == object; ++it) {
        const auto timer = m_timers.constFind(it.value());
        if (timer != m_timers.cend()) {
            // TimerInfo holds the interval as an int.
            list.append(TimerInfo(it.value(), clampedMs(timer->interval), timer->type));
        }
    }
    return list;
}

int EpollEventDispatcher::remainingTime(int timerId) {
    const auto it = m_timers.constFind(timerId);
    if (it == m_timers.cend()) {
        return -1;
    }
    return clampedMs(std::max<qint64>(0, it->deadline - steadyNowNs()) / kNsPerMs);
}

qint64 EpollEventDispatcher::nextTimerDeadline() const {
    // A timer whose event is being delivered (we are in a nested loop under it) does not
    // count: it must not fire again until that delivery ends, so waking for it would spin.
    for (const auto &[deadline, id] : m_timerQueue) {
        const auto it = m_timers.constFind(id);
        if (it != m_timers.cend() && !it->inFlight) {
            return deadline;
        }
    }
    return kNoDeadline;
}

int EpollEventDispatcher::activateTimers() {
    if (m_timerQueue.empty()) {
        return 0;
    }
    const qint64 now = steadyNowNs();
    // Only the timers due now, each at most once: a zero timer re-armed below, or a timer
    // started by a handler, waits for the next iteration, so sockets and posted events are
    // served in between.
    QVarLengthArray<std::pair<int, quint64>, 32> due;
    for (const auto &[deadline, id] : m_timerQueue) {
        if (deadline > now) {
            break;
        }
        const auto it = m_timers.constFind(id);
        if (it != m_timers.cend() && !it->inFlight) {
            due.append({id, it->serial});
        }
    }

    int delivered = 0;
    for (const auto &[id, serial] : due) {
        if (m_interrupt.loadRelaxed()) {
            break;
        }
        auto it = m_timers.find(id);
        // Gone, or killed and its id handed out again by an earlier handler.
        if (it == m_timers.end() || it->serial != serial || it->inFlight) {
            continue;
        }
        armTimer(id, *it, now, false); // re-armed before delivery, as Qt does
        it->inFlight = true;
        QObject *object = it->object;
        QTimerEvent event(id);
        QCoreApplication::sendEvent(object, &event);
        ++delivered;
        it = m_timers.find(id);
        if (it != m_timers.end() && it->serial == serial) {
            it->inFlight = false;
        }
    }
    return delivered;
}

} // namespace llmproxy
