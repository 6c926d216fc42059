// SPDX-License-Identifier: GPL-3.0-or-later
//
// Conformance suite for EpollEventDispatcher. Every test runs twice (global data column
// "dispatcher"): once on a worker thread with Qt's default event dispatcher, once on a worker
// thread with ours, and must pass the same way on both. The test bodies run on the worker
// thread; the main thread waits for them.
//
// With LLMPROXY_DISPATCHER=epoll in the environment, the main thread runs on an
// EpollEventDispatcher too (installed before QCoreApplication exists).
#include "eventloop/epolleventdispatcher.h"

#include <QAbstractEventDispatcher>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QHostAddress>
#include <QNetworkAccessManager>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QPointer>
#include <QProcess>
#include <QRandomGenerator>
#include <QSemaphore>
#include <QSocketNotifier>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryFile>
#include <QTest>
#include <QThread>
#include <QTimer>
#include <QUrl>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace llmproxy::test {

// A worker thread running the dispatcher under test ("qt": Qt's default, "epoll": ours).
class TestThread final {
public:
    explicit TestThread(const QString &dispatcher)
        : m_epoll(dispatcher == QLatin1StringView("epoll")) {
        m_thread.setObjectName(QStringLiteral("worker-") + dispatcher);
        if (m_epoll && !EpollEventDispatcher::installOn(&m_thread)) {
            qFatal("cannot install the epoll event dispatcher");
        }
        m_context->moveToThread(&m_thread);
        m_thread.start();
    }
    ~TestThread() { stop(); }
    Q_DISABLE_COPY_MOVE(TestThread)

    QThread *thread() { return &m_thread; }

    void stop() {
        if (m_thread.isRunning()) {
            m_thread.quit();
            if (!m_thread.wait(60'000)) {
                qFatal("worker thread did not stop");
            }
        }
    }

    // Runs `body` on the thread and waits for it. QtTest's checks inside `body` work as usual:
    // only one thread runs test code at a time, and the semaphore orders their effects.
    // Returns false if the thread does not run the dispatcher it should.
    bool run(const std::function<void()> &body) {
        QSemaphore done;
        bool rightDispatcher = false;
        QMetaObject::invokeMethod(m_context.get(), [&] {
            const auto *dispatcher = QAbstractEventDispatcher::instance();
            rightDispatcher =
                (qobject_cast<const EpollEventDispatcher *>(dispatcher) != nullptr) == m_epoll;
            if (rightDispatcher) {
                body();
            }
            done.release();
        });
        if (!done.tryAcquire(1, 300'000)) {
            qFatal("a test body on the worker thread hung");
        }
        return rightDispatcher;
    }

private:
    bool m_epoll;
    QThread m_thread;
    std::unique_ptr<QObject> m_context = std::make_unique<QObject>(); // lives in m_thread
};

// A connected pair of non-blocking Unix stream sockets.
class SocketPair final {
public:
    explicit SocketPair(bool openNow = true) {
        if (openNow) {
            open();
        }
    }
    ~SocketPair() {
        close(0);
        close(1);
    }
    Q_DISABLE_COPY_MOVE(SocketPair)

    bool open() {
        return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, m_fd) == 0;
    }
    bool isValid() const { return m_fd[0] >= 0 && m_fd[1] >= 0; }
    int fd(int end) const { return m_fd[end]; }
    void close(int end) {
        if (m_fd[end] >= 0) {
            ::close(m_fd[end]);
        }
        m_fd[end] = -1;
    }

private:
    int m_fd[2] = {-1, -1};
};

bool writeByte(int fd) {
    const char byte = 'x';
    return ::write(fd, &byte, 1) == 1;
}

// Reads everything available; returns the number of bytes read (0 at end of file).
qsizetype drain(int fd) {
    char buffer[256];
    qsizetype total = 0;
    for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) {
            return total;
        }
        total += n;
    }
}

// Spins the current thread's event loop (blocking waits) for `duration`.
void spinFor(std::chrono::milliseconds duration) {
    QEventLoop loop;
    QTimer::singleShot(duration, Qt::PreciseTimer, &loop, &QEventLoop::quit);
    loop.exec();
}

// Processes events (blocking waits, bounded by a 10 ms tick) until `condition` holds.
bool waitFor(const std::function<bool()> &condition, std::chrono::milliseconds timeout = 20s) {
    QDeadlineTimer deadline(timeout);
    QTimer tick;
    tick.start(10ms);
    while (!condition()) {
        if (deadline.hasExpired()) {
            return false;
        }
        QCoreApplication::processEvents(QEventLoop::WaitForMoreEvents);
    }
    return true;
}

// Runs `loop` until something quits it (true) or `timeout` passes (false).
bool execWithTimeout(QEventLoop &loop, std::chrono::milliseconds timeout) {
    QTimer guard;
    guard.setSingleShot(true);
    QObject::connect(&guard, &QTimer::timeout, &loop, [&loop] { loop.exit(1); });
    guard.start(timeout);
    return loop.exec() == 0;
}

EpollEventDispatcher *epollDispatcher() {
    return qobject_cast<EpollEventDispatcher *>(QAbstractEventDispatcher::instance());
}

qint64 monotonicMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Forwards timer events to a callback.
class TimerObject final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TimerObject)
public:
    explicit TimerObject(QObject *parent = nullptr)
        : QObject(parent) {}
    std::function<void(QTimerEvent *)> onTimer;

protected:
    void timerEvent(QTimerEvent *event) override {
        if (onTimer) {
            onTimer(event);
        }
    }
};

// A posted event carrying a number.
class NumberEvent final : public QEvent {
public:
    explicit NumberEvent(int number)
        : QEvent(type())
        , value(number) {}
    static QEvent::Type type() {
        static const auto registered = static_cast<QEvent::Type>(QEvent::registerEventType());
        return registered;
    }
    const int value;
};

// Records the NumberEvents it receives and hands each to a callback.
class EventRecorder final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(EventRecorder)
public:
    explicit EventRecorder(QObject *parent = nullptr)
        : QObject(parent) {}
    QList<int> seen;
    std::function<void(int)> onEvent;

    bool event(QEvent *event) override {
        if (event->type() != NumberEvent::type()) {
            return QObject::event(event);
        }
        const int value = static_cast<NumberEvent *>(event)->value;
        seen.append(value);
        if (onEvent) {
            onEvent(value);
        }
        return true;
    }
};

// A QTimer owner that records where its timer fired.
class TimerHolder final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TimerHolder)
public:
    TimerHolder() {
        connect(&timer, &QTimer::timeout, this, [this] {
            lastThread.storeRelease(QThread::currentThread());
            fired.ref();
        });
    }
    QTimer timer{this};
    QAtomicInt fired;
    QAtomicPointer<QThread> lastThread;
};

// A one-connection-at-a-time HTTP/1.1 responder: answers "you asked for <path>".
class TinyHttpServer final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TinyHttpServer)
public:
    TinyHttpServer() {
        connect(&m_server, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *peer = m_server.nextPendingConnection()) {
                serve(peer);
            }
        });
    }
    bool listen() { return m_server.listen(QHostAddress::LocalHost, 0); }
    quint16 port() const { return m_server.serverPort(); }
    int answered = 0;

private:
    void serve(QTcpSocket *peer) {
        auto buffer = std::make_shared<QByteArray>();
        connect(peer, &QTcpSocket::disconnected, peer, &QObject::deleteLater);
        connect(peer, &QTcpSocket::readyRead, peer, [this, peer, buffer] {
            *buffer += peer->readAll();
            if (!buffer->contains("\r\n\r\n")) {
                return;
            }
            const QByteArray requestLine = buffer->left(buffer->indexOf("\r\n"));
            const QByteArray body = "you asked for " + requestLine.split(' ').value(1);
            peer->write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                        QByteArray::number(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
            peer->disconnectFromHost();
            buffer->clear();
            ++answered;
        });
    }

    QTcpServer m_server{this};
};

// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
rlim_t raiseOpenFileLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return 1024;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
        ::getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

} // namespace llmproxy::test

using namespace llmproxy::test;

class TestEventDispatcher final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase_data();

    // timers
    void singleShotTimer();
    void repeatingTimer();
    void zeroTimerDoesNotStarve();
    void coarseTimers();
    void killTimerInOwnEvent_data();
    void killTimerInOwnEvent();
    void remainingTime();
    void registeredTimers();
    void moveRunningTimerToAnotherThread();

    // posted events, wake-ups, loops
    void postedEvents();
    void deleteLater();
    void crossThreadPostWakesBlockedLoop();
    void concurrentPostersNeverLoseAWakeUp();
    void threadQuitEndsBlockedWorker();
    void interruptFromAnotherThread();
    void nestedLoops_data();
    void nestedLoops();
    void awakeAndAboutToBlock();

    // socket notifiers
    void readAndWriteNotifiersOnOneDescriptor();
    void notifierDeletedByAnotherHandler();
    void notifierDeletedByHandlerOnSameDescriptor();
    void eventHandledInNestedLoopNotRedelivered();
    void descriptorReusedWithinOneWait();
    void staleRegistrationOfClosedDescriptor();
    void hangUpAfterLastNotifierGone();
    void regularFile();
    void excludeSocketNotifiers();

    // Qt's I/O classes on top
    void tcpEcho4MB();
    void process();
    void networkAccessManager();

    // ours only
    void installOn();

    // figures
    void wakeUpCostWithManyIdleNotifiers();
};

void TestEventDispatcher::initTestCase_data() {
    QTest::addColumn<QString>("dispatcher");
    QTest::newRow("qt") << QStringLiteral("qt");
    QTest::newRow("epoll") << QStringLiteral("epoll");
}

// ---------------------------------------------------------------------------------------------
// Timers

void TestEventDispatcher::singleShotTimer() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        QEventLoop loop;
        QElapsedTimer clock;
        clock.start();
        int fired = 0;
        qint64 firedAt = -1;
        QTimer::singleShot(50ms, Qt::PreciseTimer, &loop, [&] {
            ++fired;
            firedAt = clock.elapsed();
        });
        QTimer::singleShot(300ms, Qt::PreciseTimer, &loop, &QEventLoop::quit);
        QVERIFY(execWithTimeout(loop, 20s));
        QCOMPARE(fired, 1);
        QVERIFY2(firedAt >= 50, qPrintable(QString::number(firedAt)));
        QVERIFY2(firedAt < 50 + 2000, qPrintable(QString::number(firedAt)));
    }));
}

void TestEventDispatcher::repeatingTimer() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        QEventLoop loop;
        QTimer timer;
        timer.setTimerType(Qt::PreciseTimer);
        timer.setInterval(20ms);
        int fired = 0;
        QElapsedTimer clock;
        QObject::connect(&timer, &QTimer::timeout, &loop, [&] {
            if (++fired == 10) {
                loop.quit();
            }
        });
        clock.start();
        timer.start();
        QVERIFY(execWithTimeout(loop, 20s));
        const qint64 elapsed = clock.elapsed();
        QVERIFY(timer.isActive());
        QVERIFY2(elapsed >= 10 * 20, qPrintable(QString::number(elapsed)));
        QVERIFY2(elapsed < 10 * 20 + 3000, qPrintable(QString::number(elapsed)));
        // It keeps firing.
        QVERIFY(waitFor([&] { return fired >= 13; }));
    }));
}

void TestEventDispatcher::zeroTimerDoesNotStarve() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        SocketPair pair;
        QVERIFY(pair.isValid());
        QSocketNotifier notifier(pair.fd(0), QSocketNotifier::Read);
        int notified = 0;
        QObject::connect(&notifier, &QSocketNotifier::activated, &notifier, [&] {
            drain(pair.fd(0));
            ++notified;
        });
        QObject context;
        int posted = 0;
        int timerFired = 0;
        int otherTimerFired = 0;
        QTimer zero;
        zero.setInterval(0);
        QTimer other;
        QObject::connect(&other, &QTimer::timeout, &context, [&] { ++otherTimerFired; });
        QObject::connect(&zero, &QTimer::timeout, &context, [&] {
            if (++timerFired % 100 == 1) {
                QVERIFY(writeByte(pair.fd(1)));
                QMetaObject::invokeMethod(
                    &context, [&] { ++posted; }, Qt::QueuedConnection);
            }
        });
        zero.start();
        other.start(5ms);
        QVERIFY(waitFor([&] {
            return timerFired >= 1000 && notified >= 3 && posted >= 3 && otherTimerFired >= 3;
        }));
    }));
}

void TestEventDispatcher::coarseTimers() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        QEventLoop loop;
        QElapsedTimer clock;
        qint64 coarseAt = -1;
        qint64 veryCoarseAt = -1;
        int repeats = 0;
        qint64 repeatsDoneAt = -1;
        QTimer repeating;
        repeating.setTimerType(Qt::CoarseTimer);
        QObject::connect(&repeating, &QTimer::timeout, &loop, [&] {
            if (++repeats == 10) {
                repeatsDoneAt = clock.elapsed();
                repeating.stop();
            }
        });
        clock.start();
        QTimer::singleShot(100ms, Qt::CoarseTimer, &loop, [&] { coarseAt = clock.elapsed(); });
        QTimer::singleShot(1000ms, Qt::VeryCoarseTimer, &loop, [&] {
            veryCoarseAt = clock.elapsed();
            loop.quit();
        });
        repeating.start(50ms);
        QVERIFY(execWithTimeout(loop, 30s));
        // Coarse: at most 5% early; very coarse: whole seconds, at most half a second early.
        QVERIFY2(coarseAt >= 94 && coarseAt < 100 + 3000, qPrintable(QString::number(coarseAt)));
        QVERIFY2(repeatsDoneAt >= 470 && repeatsDoneAt < 500 + 5000,
                 qPrintable(QString::number(repeatsDoneAt)));
        QVERIFY2(veryCoarseAt >= 450 && veryCoarseAt < 1500 + 3000,
                 qPrintable(QString::number(veryCoarseAt)));
    }));
}

void TestEventDispatcher::killTimerInOwnEvent_data() {
    QTest::addColumn<int>("intervalMs");
    QTest::newRow("zero") << 0;
    QTest::newRow("10 ms") << 10;
}

void TestEventDispatcher::killTimerInOwnEvent() {
    QFETCH_GLOBAL(QString, dispatcher);
    QFETCH(int, intervalMs);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([intervalMs] {
        TimerObject object;
        int stage = 0;
        int unexpected = 0;
        object.onTimer = [&](QTimerEvent *event) {
            switch (stage) {
            case 0: // kill the timer in its own event and start another (the id may be reused)
                object.killTimer(event->timerId());
                object.startTimer(std::chrono::milliseconds(intervalMs), Qt::PreciseTimer);
                stage = 1;
                break;
            case 1:
                object.killTimer(event->timerId());
                stage = 2;
                break;
            default:
                ++unexpected;
            }
        };
        object.startTimer(std::chrono::milliseconds(intervalMs), Qt::PreciseTimer);
        QVERIFY(waitFor([&] { return stage == 2; }));
        spinFor(100ms);
        QCOMPARE(unexpected, 0);
        QVERIFY(QAbstractEventDispatcher::instance()->registeredTimers(&object).isEmpty());
    }));
}

void TestEventDispatcher::remainingTime() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        auto *eventDispatcher = QAbstractEventDispatcher::instance();
        QTimer timer;
        timer.setTimerType(Qt::PreciseTimer);
        timer.start(5000ms);
        const int id = timer.timerId();
        const int first = eventDispatcher->remainingTime(id);
        QVERIFY2(first > 4000 && first <= 5000, qPrintable(QString::number(first)));
        spinFor(200ms);
        const int second = eventDispatcher->remainingTime(id);
        QVERIFY2(second >= 0 && second <= 4800 && second < first,
                 qPrintable(QString::number(second)));
        QVERIFY(qAbs(timer.remainingTime() - second) < 1000);
        timer.stop();
        QCOMPARE(eventDispatcher->remainingTime(id), -1);
        QCOMPARE(timer.remainingTime(), -1);
        QCOMPARE(eventDispatcher->remainingTime(987'654), -1);
    }));
}

void TestEventDispatcher::registeredTimers() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        auto *eventDispatcher = QAbstractEventDispatcher::instance();
        TimerObject object;
        TimerObject other;
        const int coarse = object.startTimer(100ms, Qt::CoarseTimer);
        const int precise = object.startTimer(2000ms, Qt::PreciseTimer);
        const int veryCoarse = object.startTimer(3000ms, Qt::VeryCoarseTimer);
        const int shortCoarse = object.startTimer(5ms, Qt::CoarseTimer);
        const int others = other.startTimer(700ms, Qt::PreciseTimer);

        std::map<int, std::pair<int, Qt::TimerType>> byId;
        for (const auto &info : eventDispatcher->registeredTimers(&object)) {
            byId[info.timerId] = {info.interval, info.timerType};
        }
        QCOMPARE(byId.size(), std::size_t(4));
        QCOMPARE(byId[coarse], std::pair(100, Qt::CoarseTimer));
        QCOMPARE(byId[precise], std::pair(2000, Qt::PreciseTimer));
        QCOMPARE(byId[veryCoarse], std::pair(3000, Qt::VeryCoarseTimer));
        // Qt turns coarse timers of 20 ms or less into precise ones.
        QCOMPARE(byId[shortCoarse], std::pair(5, Qt::PreciseTimer));

        const auto otherTimers = eventDispatcher->registeredTimers(&other);
        QCOMPARE(otherTimers.size(), qsizetype(1));
        QCOMPARE(otherTimers.first().timerId, others);
        QCOMPARE(otherTimers.first().interval, 700);

        object.killTimer(precise);
        QCOMPARE(eventDispatcher->registeredTimers(&object).size(), qsizetype(3));
        QVERIFY(eventDispatcher->unregisterTimers(&object));
        QVERIFY(eventDispatcher->registeredTimers(&object).isEmpty());
        QCOMPARE(eventDispatcher->registeredTimers(&other).size(), qsizetype(1));
        QVERIFY(eventDispatcher->unregisterTimer(others));
        QVERIFY(!eventDispatcher->unregisterTimer(others));
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->timerCount(), qsizetype(0));
        }
    }));
}

void TestEventDispatcher::moveRunningTimerToAnotherThread() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread from(dispatcher);
    TestThread to(dispatcher);
    TimerHolder *holder = nullptr; // deleted on `to`
    QVERIFY(from.run([&] {
        holder = new TimerHolder;
        holder->timer.start(10ms);
        QVERIFY(waitFor([&] { return holder->fired.loadAcquire() >= 3; }));
        QCOMPARE(holder->lastThread.loadAcquire(), from.thread());
        holder->moveToThread(to.thread());
        QVERIFY(QAbstractEventDispatcher::instance()->registeredTimers(&holder->timer).isEmpty());
    }));
    QVERIFY(holder);
    const int before = holder->fired.loadAcquire();
    QTRY_VERIFY_WITH_TIMEOUT(holder->fired.loadAcquire() >= before + 3, 20'000);
    QCOMPARE(holder->lastThread.loadAcquire(), to.thread());
    QVERIFY(to.run([&] {
        const auto timers = QAbstractEventDispatcher::instance()->registeredTimers(&holder->timer);
        QCOMPARE(timers.size(), qsizetype(1));
        QCOMPARE(timers.first().interval, 10);
        QCOMPARE(timers.first().timerId, holder->timer.timerId());
        delete holder;
        holder = nullptr;
    }));
}

// ---------------------------------------------------------------------------------------------
// Posted events, wake-ups, loops

void TestEventDispatcher::postedEvents() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        EventRecorder recorder;
        // Each event of the chain posts the next one, from inside the loop.
        recorder.onEvent = [&](int value) {
            if (value >= 2000 && value < 2099) {
                QCoreApplication::postEvent(&recorder, new NumberEvent(value + 1));
            }
        };
        for (int i = 0; i < 100; ++i) {
            QCoreApplication::postEvent(&recorder, new NumberEvent(i));
        }
        QCoreApplication::postEvent(&recorder, new NumberEvent(1000), Qt::HighEventPriority);
        QCoreApplication::postEvent(&recorder, new NumberEvent(2000));
        QEventLoop loop;
        QTimer poll;
        QObject::connect(&poll, &QTimer::timeout, &loop, [&] {
            if (recorder.seen.contains(2099)) {
                loop.quit();
            }
        });
        poll.start(5ms);
        QVERIFY(execWithTimeout(loop, 20s));
        QList<int> expected{1000};
        for (int i = 0; i < 100; ++i) {
            expected.append(i);
        }
        for (int i = 2000; i < 2100; ++i) {
            expected.append(i);
        }
        QCOMPARE(recorder.seen, expected);
    }));
}

void TestEventDispatcher::deleteLater() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // Plain: deleted once control is back in the loop.
        {
            auto *victim = new QObject; // deleted by deleteLater
            QPointer<QObject> guard(victim);
            QEventLoop loop;
            QTimer::singleShot(0, &loop, [&] { victim->deleteLater(); });
            QTimer::singleShot(100ms, &loop, &QEventLoop::quit);
            QVERIFY(execWithTimeout(loop, 20s));
            QVERIFY(guard.isNull());
        }
        // Not inside a nested loop started after the deleteLater(); after it returns.
        {
            auto *victim = new QObject; // deleted by deleteLater
            QPointer<QObject> guard(victim);
            bool aliveAfterNested = false;
            QEventLoop outer;
            QTimer::singleShot(0, &outer, [&] {
                victim->deleteLater();
                QEventLoop nested;
                QTimer::singleShot(50ms, &nested, &QEventLoop::quit);
                nested.exec();
                aliveAfterNested = !guard.isNull();
                QTimer::singleShot(50ms, &outer, &QEventLoop::quit);
            });
            QVERIFY(execWithTimeout(outer, 20s));
            QVERIFY(aliveAfterNested);
            QVERIFY(guard.isNull());
        }
    }));
}

void TestEventDispatcher::crossThreadPostWakesBlockedLoop() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // Ping-pong with another thread: every ping must wake the loop, which blocks between
        // them (the only timer is the 60 s guard). One lost wake-up stalls the exchange.
        constexpr int kRounds = 2000;
        QEventLoop loop;
        EventRecorder recorder;
        QSemaphore pong;
        recorder.onEvent = [&](int value) {
            pong.release();
            if (value == kRounds - 1) {
                loop.quit();
            }
        };
        std::atomic<bool> stalled{false};
        std::atomic<qint64> worstMs{0};
        std::thread producer([&] {
            for (int i = 0; i < kRounds; ++i) {
                const qint64 start = monotonicMs();
                QCoreApplication::postEvent(&recorder, new NumberEvent(i));
                if (!pong.tryAcquire(1, 10'000)) {
                    stalled = true;
                    return;
                }
                worstMs = std::max<qint64>(worstMs, monotonicMs() - start);
                if (i % 4 == 0) {
                    std::this_thread::sleep_for(200us); // let the loop fall asleep
                }
            }
        });
        const bool quit = execWithTimeout(loop, 60s);
        producer.join();
        QVERIFY(!stalled);
        QVERIFY(quit);
        QCOMPARE(recorder.seen.size(), qsizetype(kRounds));
        qDebug("worst wake-up round trip: %lld ms", static_cast<long long>(worstMs.load()));
    }));
}

void TestEventDispatcher::concurrentPostersNeverLoseAWakeUp() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // Two threads post in bursts while the loop keeps draining and falling asleep. A
        // wake-up lost once leaves the dispatcher deaf to every later post: the count stalls.
        constexpr int kProducers = 2;
        constexpr int kPerProducer = 20'000;
        QEventLoop loop;
        EventRecorder recorder;
        recorder.onEvent = [&](int) {
            if (recorder.seen.size() == kProducers * kPerProducer) {
                loop.quit();
            }
        };
        std::vector<std::thread> producers;
        for (int p = 0; p < kProducers; ++p) {
            producers.emplace_back([&recorder, p] {
                QRandomGenerator random(quint32(p + 1));
                for (int i = 0; i < kPerProducer; ++i) {
                    QCoreApplication::postEvent(&recorder, new NumberEvent(i));
                    if (random.bounded(32) == 0) {
                        std::this_thread::sleep_for(std::chrono::microseconds(random.bounded(200)));
                    }
                }
            });
        }
        const bool quit = execWithTimeout(loop, 60s);
        for (auto &producer : producers) {
            producer.join();
        }
        QVERIFY2(quit, qPrintable(QString::number(recorder.seen.size())));
        QCOMPARE(recorder.seen.size(), qsizetype(kProducers * kPerProducer));
    }));
}

void TestEventDispatcher::threadQuitEndsBlockedWorker() {
    QFETCH_GLOBAL(QString, dispatcher);
    for (int i = 0; i < 10; ++i) {
        TestThread worker(dispatcher);
        if (i % 2 == 0) {
            QVERIFY(worker.run([] {})); // surely running its loop; then let it block
            QThread::msleep(20);
        }
        QElapsedTimer clock;
        clock.start();
        worker.thread()->quit();
        QVERIFY(worker.thread()->wait(20'000));
        QVERIFY(clock.elapsed() < 20'000);
    }
}

void TestEventDispatcher::interruptFromAnotherThread() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        auto *eventDispatcher = QAbstractEventDispatcher::instance();
        QTimer guard; // bounds the test if interrupt() does not work
        guard.setSingleShot(true);
        guard.start(20s);
        std::atomic<qint64> interruptedAt{0};
        std::thread interrupter([&] {
            std::this_thread::sleep_for(100ms);
            interruptedAt = monotonicMs();
            eventDispatcher->interrupt();
        });
        qint64 returnedAt = 0;
        while (guard.isActive()) {
            eventDispatcher->processEvents(QEventLoop::WaitForMoreEvents);
            if (interruptedAt.load() != 0) {
                returnedAt = monotonicMs();
                break;
            }
        }
        interrupter.join();
        QVERIFY(returnedAt != 0);
        QVERIFY2(returnedAt - interruptedAt < 5000,
                 qPrintable(QString::number(returnedAt - interruptedAt)));
    }));
}

void TestEventDispatcher::nestedLoops_data() {
    QTest::addColumn<int>("outerIntervalMs");
    QTest::newRow("10 ms") << 10;
    QTest::newRow("zero") << 0;
}

void TestEventDispatcher::nestedLoops() {
    QFETCH_GLOBAL(QString, dispatcher);
    QFETCH(int, outerIntervalMs);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([outerIntervalMs] {
        QObject context;
        SocketPair pair;
        QVERIFY(pair.isValid());
        QSocketNotifier notifier(pair.fd(0), QSocketNotifier::Read);
        int notified = 0;
        QObject::connect(&notifier, &QSocketNotifier::activated, &context, [&] {
            drain(pair.fd(0));
            ++notified;
        });
        QTimer inner;
        int innerFired = 0;
        QObject::connect(&inner, &QTimer::timeout, &context, [&] { ++innerFired; });
        int posted = 0;
        QTimer outer;
        outer.setTimerType(Qt::PreciseTimer);
        int outerFired = 0;
        int outerFiredInNested = -1;
        QObject::connect(&outer, &QTimer::timeout, &context, [&] {
            if (++outerFired != 1) {
                return;
            }
            inner.start(5ms);
            QMetaObject::invokeMethod(
                &context, [&] { ++posted; }, Qt::QueuedConnection);
            QVERIFY(writeByte(pair.fd(1)));
            QEventLoop nested;
            QTimer::singleShot(150ms, Qt::PreciseTimer, &nested, &QEventLoop::quit);
            nested.exec();
            // The timer whose event is being delivered never fires inside it.
            outerFiredInNested = outerFired;
            inner.stop();
        });
        outer.start(std::chrono::milliseconds(outerIntervalMs));
        QVERIFY(waitFor([&] { return outerFired >= 4; }));
        QCOMPARE(outerFiredInNested, 1);
        QVERIFY2(innerFired >= 3, qPrintable(QString::number(innerFired)));
        QCOMPARE(posted, 1);
        QCOMPARE(notified, 1);
    }));
}

void TestEventDispatcher::awakeAndAboutToBlock() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        auto *eventDispatcher = QAbstractEventDispatcher::instance();
        QObject context;
        int awake = 0;
        int aboutToBlock = 0;
        QObject::connect(eventDispatcher, &QAbstractEventDispatcher::awake, &context,
                         [&] { ++awake; });
        QObject::connect(eventDispatcher, &QAbstractEventDispatcher::aboutToBlock, &context,
                         [&] { ++aboutToBlock; });
        spinFor(50ms);
        QVERIFY(awake > 0);
        QVERIFY(aboutToBlock > 0);
    }));
}

// ---------------------------------------------------------------------------------------------
// Socket notifiers

void TestEventDispatcher::readAndWriteNotifiersOnOneDescriptor() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        SocketPair pair;
        QVERIFY(pair.isValid());
        const int fd = pair.fd(0);
        {
            QSocketNotifier readNotifier(fd, QSocketNotifier::Read);
            QSocketNotifier writeNotifier(fd, QSocketNotifier::Write);
            int reads = 0;
            int writes = 0;
            QObject::connect(&writeNotifier, &QSocketNotifier::activated, &writeNotifier, [&] {
                ++writes;
                writeNotifier.setEnabled(false);
            });
            QObject::connect(&readNotifier, &QSocketNotifier::activated, &readNotifier, [&] {
                ++reads;
                drain(fd);
            });
            // Writable at once, nothing to read.
            QVERIFY(waitFor([&] { return writes == 1; }));
            spinFor(30ms);
            QCOMPARE(writes, 1);
            QCOMPARE(reads, 0);
            // Readable once the peer writes.
            QVERIFY(writeByte(pair.fd(1)));
            QVERIFY(waitFor([&] { return reads == 1; }));
            // Disabled: the data waits.
            readNotifier.setEnabled(false);
            QVERIFY(writeByte(pair.fd(1)));
            spinFor(50ms);
            QCOMPARE(reads, 1);
            // Enabled again: delivered.
            readNotifier.setEnabled(true);
            QVERIFY(waitFor([&] { return reads == 2; }));
            // Both ready in the same wake-up.
            QVERIFY(writeByte(pair.fd(1)));
            writeNotifier.setEnabled(true);
            QVERIFY(waitFor([&] { return reads == 3 && writes == 2; }));
            spinFor(30ms);
            QCOMPARE(reads, 3);
            QCOMPARE(writes, 2);
            if (auto *epoll = epollDispatcher()) {
                QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(1));
                readNotifier.setEnabled(false);
                QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(0));
            }
        }
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(0));
        }
    }));
}

void TestEventDispatcher::notifierDeletedByAnotherHandler() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // Both readable before the loop runs, so both are reported by the same wait; whichever
        // is delivered first deletes the other.
        SocketPair a;
        SocketPair b;
        QVERIFY(a.isValid() && b.isValid());
        QVERIFY(writeByte(a.fd(1)) && writeByte(b.fd(1)));
        auto notifierA = std::make_unique<QSocketNotifier>(a.fd(0), QSocketNotifier::Read);
        auto notifierB = std::make_unique<QSocketNotifier>(b.fd(0), QSocketNotifier::Read);
        QObject context;
        int fired = 0;
        QObject::connect(notifierA.get(), &QSocketNotifier::activated, &context, [&] {
            ++fired;
            drain(a.fd(0));
            notifierB.reset();
        });
        QObject::connect(notifierB.get(), &QSocketNotifier::activated, &context, [&] {
            ++fired;
            drain(b.fd(0));
            notifierA.reset();
        });
        QVERIFY(waitFor([&] { return fired > 0; }));
        spinFor(50ms);
        QCOMPARE(fired, 1);
        QVERIFY(!notifierA != !notifierB);
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(1));
        }
        notifierA.reset();
        notifierB.reset();
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(0));
        }
    }));
}

void TestEventDispatcher::notifierDeletedByHandlerOnSameDescriptor() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // One descriptor both readable and writable: whichever notifier is delivered first
        // deletes the other, which must then not be delivered (ASan would see the use).
        SocketPair pair;
        QVERIFY(pair.isValid());
        QVERIFY(writeByte(pair.fd(1)));
        auto readNotifier = std::make_unique<QSocketNotifier>(pair.fd(0), QSocketNotifier::Read);
        auto writeNotifier = std::make_unique<QSocketNotifier>(pair.fd(0), QSocketNotifier::Write);
        QObject context;
        int reads = 0;
        int writes = 0;
        QObject::connect(readNotifier.get(), &QSocketNotifier::activated, &context, [&] {
            ++reads;
            drain(pair.fd(0));
            writeNotifier.reset();
        });
        QObject::connect(writeNotifier.get(), &QSocketNotifier::activated, &context, [&] {
            ++writes;
            readNotifier.reset();
            writeNotifier->setEnabled(false);
        });
        QVERIFY(waitFor([&] { return reads + writes > 0; }));
        spinFor(50ms);
        QCOMPARE(reads + writes, 1);
        QVERIFY(!readNotifier != !writeNotifier);
    }));
}

void TestEventDispatcher::eventHandledInNestedLoopNotRedelivered() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // a and b are reported by the same wait. The first handler processes events itself,
        // which delivers the other (its handler reads the data). Back in the outer loop, the
        // event it collected earlier for that other socket is stale and must not be delivered
        // again.
        SocketPair a;
        SocketPair b;
        QVERIFY(a.isValid() && b.isValid());
        QVERIFY(writeByte(a.fd(1)) && writeByte(b.fd(1)));
        QSocketNotifier notifierA(a.fd(0), QSocketNotifier::Read);
        QSocketNotifier notifierB(b.fd(0), QSocketNotifier::Read);
        QObject context;
        int deliveries = 0;
        int emptyDeliveries = 0;
        bool nestedRan = false;
        const auto handler = [&](int fd) {
            ++deliveries;
            if (drain(fd) == 0) {
                ++emptyDeliveries;
            }
            if (!nestedRan) {
                nestedRan = true;
                // A nested QEventLoop would not do: its quit() interrupts the outer
                // processEvents() too, which then drops the rest of its events anyway.
                for (int i = 0; i < 5; ++i) {
                    QCoreApplication::processEvents();
                }
            }
        };
        QObject::connect(&notifierA, &QSocketNotifier::activated, &context,
                         [&] { handler(a.fd(0)); });
        QObject::connect(&notifierB, &QSocketNotifier::activated, &context,
                         [&] { handler(b.fd(0)); });
        QVERIFY(waitFor([&] { return deliveries >= 2; }));
        spinFor(50ms);
        QCOMPARE(emptyDeliveries, 0);
        QCOMPARE(deliveries, 2);
    }));
}

void TestEventDispatcher::descriptorReusedWithinOneWait() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // p and q are both readable, so one wait reports both. The first handler closes the
        // other descriptor and opens a new socket, which gets the same number, with a notifier
        // of its own. The event already collected for the old socket must not reach it: the
        // new socket has nothing to read.
        SocketPair p;
        SocketPair q;
        SocketPair fresh(false);
        QVERIFY(p.isValid() && q.isValid());
        QVERIFY(writeByte(p.fd(1)) && writeByte(q.fd(1)));
        auto notifierP = std::make_unique<QSocketNotifier>(p.fd(0), QSocketNotifier::Read);
        auto notifierQ = std::make_unique<QSocketNotifier>(q.fd(0), QSocketNotifier::Read);
        std::unique_ptr<QSocketNotifier> reused;
        QObject context;
        int fired = 0;
        int reusedFired = 0;
        bool sameNumber = false;
        const auto firstHandler = [&](SocketPair &own, SocketPair &victim,
                                      std::unique_ptr<QSocketNotifier> &victimNotifier) {
            drain(own.fd(0));
            if (++fired != 1) {
                return;
            }
            const int victimFd = victim.fd(0);
            victimNotifier.reset();
            victim.close(0);
            QVERIFY(fresh.open());
            sameNumber = fresh.fd(0) == victimFd;
            reused = std::make_unique<QSocketNotifier>(fresh.fd(0), QSocketNotifier::Read);
            QObject::connect(reused.get(), &QSocketNotifier::activated, &context,
                             [&] { ++reusedFired; });
        };
        QObject::connect(notifierP.get(), &QSocketNotifier::activated, &context,
                         [&] { firstHandler(p, q, notifierQ); });
        QObject::connect(notifierQ.get(), &QSocketNotifier::activated, &context,
                         [&] { firstHandler(q, p, notifierP); });
        QVERIFY(waitFor([&] { return fired > 0; }));
        spinFor(100ms);
        QCOMPARE(fired, 1);
        if (!sameNumber) {
            QSKIP("the descriptor number was not reused; nothing was tested");
        }
        QCOMPARE(reusedFired, 0);
        // The new notifier works.
        QVERIFY(writeByte(fresh.fd(1)));
        QVERIFY(waitFor([&] { return reusedFired == 1; }));
    }));
}

void TestEventDispatcher::staleRegistrationOfClosedDescriptor() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // A descriptor closed before its notifier is disabled, while a duplicate keeps its
        // file open: the kernel keeps that file in the epoll set (removal by number fails once
        // the number is closed) and goes on reporting it under the old number. A new socket
        // that gets the number must not receive those reports.
        SocketPair old;
        QVERIFY(old.isValid());
        const int number = old.fd(0);
        const int duplicate = ::dup(number);
        QVERIFY(duplicate >= 0);
        {
            QSocketNotifier notifier(number, QSocketNotifier::Read);
            spinFor(10ms);
            old.close(0); // misuse: closed while its notifier is enabled
        }
        SocketPair fresh;
        QVERIFY(fresh.isValid());
        if (fresh.fd(0) != number) {
            ::close(duplicate);
            QSKIP("the descriptor number was not reused; nothing was tested");
        }
        QSocketNotifier notifier(fresh.fd(0), QSocketNotifier::Read);
        int fired = 0;
        QObject::connect(&notifier, &QSocketNotifier::activated, &notifier, [&] { ++fired; });
        QVERIFY(writeByte(old.fd(1))); // the old file, still open through `duplicate`, is ready
        spinFor(50ms);
        ::close(duplicate);
        QCOMPARE(fired, 0);
        QVERIFY(writeByte(fresh.fd(1)));
        QVERIFY(waitFor([&] { return fired > 0; }));
    }));
}

void TestEventDispatcher::hangUpAfterLastNotifierGone() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // epoll reports hang-up even for a descriptor with no events of interest; one left in
        // the set after its last notifier went would make every wait return at once.
        SocketPair pair;
        QVERIFY(pair.isValid());
        QSocketNotifier notifier(pair.fd(0), QSocketNotifier::Read);
        int fired = 0;
        QObject::connect(&notifier, &QSocketNotifier::activated, &notifier, [&] {
            ++fired;
            if (drain(pair.fd(0)) == 0) {
                notifier.setEnabled(false); // end of file
            }
        });
        pair.close(1);
        QVERIFY(waitFor([&] { return !notifier.isEnabled(); }));
        QCOMPARE(fired, 1);

        const auto countWakeUps = [] {
            QObject context;
            int wakeUps = 0;
            QObject::connect(QAbstractEventDispatcher::instance(), &QAbstractEventDispatcher::awake,
                             &context, [&] { ++wakeUps; });
            spinFor(200ms);
            return wakeUps;
        };
        const int wakeUps = countWakeUps();
        QVERIFY2(wakeUps < 50, qPrintable(QString::number(wakeUps)));

        // Enabled again: the hang-up is reported again, once.
        notifier.setEnabled(true);
        QVERIFY(waitFor([&] { return fired == 2; }));
        QVERIFY(!notifier.isEnabled());
        spinFor(30ms);
        QCOMPARE(fired, 2);
    }));
}

void TestEventDispatcher::regularFile() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        // poll() calls regular files always readable and writable; epoll refuses them.
        QTemporaryFile file;
        QVERIFY(file.open());
        QVERIFY(file.write("some data") > 0);
        QVERIFY(file.flush());
        QSocketNotifier readNotifier(file.handle(), QSocketNotifier::Read);
        QSocketNotifier writeNotifier(file.handle(), QSocketNotifier::Write);
        int reads = 0;
        int writes = 0;
        QObject::connect(&readNotifier, &QSocketNotifier::activated, &readNotifier,
                         [&] { ++reads; });
        QObject::connect(&writeNotifier, &QSocketNotifier::activated, &writeNotifier,
                         [&] { ++writes; });
        QVERIFY(waitFor([&] { return reads >= 3 && writes >= 3; }));
        readNotifier.setEnabled(false);
        QVERIFY(waitFor([&] { return writes >= 6; }));
        writeNotifier.setEnabled(false);
        const int readsBefore = reads;
        const int writesBefore = writes;
        spinFor(50ms);
        QCOMPARE(reads, readsBefore);
        QCOMPARE(writes, writesBefore);
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(0));
        }
    }));
}

void TestEventDispatcher::excludeSocketNotifiers() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        if (QAbstractEventDispatcher::instance()->inherits("QEventDispatcherGlib")) {
            QSKIP("Qt's glib dispatcher ignores QEventLoop::ExcludeSocketNotifiers (its Unix "
                  "one, QT_NO_GLIB=1, honours it)");
        }
        SocketPair pair;
        QVERIFY(pair.isValid());
        QVERIFY(writeByte(pair.fd(1)));
        QSocketNotifier notifier(pair.fd(0), QSocketNotifier::Read);
        int notified = 0;
        QObject::connect(&notifier, &QSocketNotifier::activated, &notifier, [&] {
            ++notified;
            drain(pair.fd(0));
        });
        QObject context;
        int posted = 0;
        QMetaObject::invokeMethod(
            &context, [&] { ++posted; }, Qt::QueuedConnection);
        int timerFired = 0;
        QTimer::singleShot(5ms, &context, [&] { ++timerFired; });
        QDeadlineTimer deadline(20s);
        while (timerFired == 0 && !deadline.hasExpired()) {
            QCoreApplication::processEvents(QEventLoop::ExcludeSocketNotifiers |
                                            QEventLoop::WaitForMoreEvents);
        }
        QCOMPARE(posted, 1);
        QCOMPARE(timerFired, 1);
        QCOMPARE(notified, 0);
        QVERIFY(waitFor([&] { return notified == 1; }));
    }));
}

// ---------------------------------------------------------------------------------------------
// Qt's I/O classes

void TestEventDispatcher::tcpEcho4MB() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        QTcpServer server;
        QVERIFY(server.listen(QHostAddress::LocalHost, 0));
        QObject::connect(&server, &QTcpServer::newConnection, &server, [&server] {
            while (QTcpSocket *peer = server.nextPendingConnection()) { // child of the server
                QObject::connect(peer, &QTcpSocket::readyRead, peer,
                                 [peer] { peer->write(peer->readAll()); });
            }
        });
        QByteArray payload(4 << 20, Qt::Uninitialized);
        QRandomGenerator random(20240611);
        random.fillRange(reinterpret_cast<quint32 *>(payload.data()),
                         payload.size() / qsizetype(sizeof(quint32)));
        QTcpSocket client;
        QByteArray received;
        QObject::connect(&client, &QTcpSocket::readyRead, &client,
                         [&] { received += client.readAll(); });
        QObject::connect(&client, &QTcpSocket::connected, &client, [&] { client.write(payload); });
        client.connectToHost(QHostAddress::LocalHost, server.serverPort());
        QVERIFY(waitFor([&] { return received.size() >= payload.size(); }, 120s));
        QCOMPARE(received.size(), payload.size());
        QVERIFY(received == payload);
    }));
}

void TestEventDispatcher::process() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        for (int i = 0; i < 3; ++i) {
            QProcess process;
            bool finished = false;
            QObject::connect(&process, &QProcess::finished, &process, [&] { finished = true; });
            process.start(QStringLiteral("/bin/echo"),
                          {QStringLiteral("hello"), QString::number(i)});
            QVERIFY(waitFor([&] { return finished; }, 60s));
            QCOMPARE(process.exitStatus(), QProcess::NormalExit);
            QCOMPARE(process.exitCode(), 0);
            QCOMPARE(process.readAllStandardOutput(), "hello " + QByteArray::number(i) + '\n');
        }
    }));
}

void TestEventDispatcher::networkAccessManager() {
    QFETCH_GLOBAL(QString, dispatcher);
    TestThread worker(dispatcher);
    QVERIFY(worker.run([] {
        TinyHttpServer server;
        QVERIFY(server.listen());
        QNetworkAccessManager manager;
        manager.setProxy(QNetworkProxy::NoProxy);
        constexpr int kRequests = 5;
        struct Result {
            QNetworkReply::NetworkError error = QNetworkReply::UnknownNetworkError;
            int status = 0;
            QByteArray body;
        };
        std::vector<Result> results(kRequests);
        int finished = 0;
        for (int i = 0; i < kRequests; ++i) {
            QNetworkRequest request(
                QUrl(QStringLiteral("http://127.0.0.1:%1/item/%2").arg(server.port()).arg(i)));
            request.setTransferTimeout(20'000);
            QNetworkReply *reply = manager.get(request);
            QObject::connect(reply, &QNetworkReply::finished, reply, [&, reply, i] {
                results[std::size_t(i)] = {
                    reply->error(),
                    reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt(),
                    reply->readAll()};
                ++finished;
                reply->deleteLater();
            });
        }
        QVERIFY(waitFor([&] { return finished == kRequests; }, 60s));
        for (int i = 0; i < kRequests; ++i) {
            const Result &result = results[std::size_t(i)];
            QCOMPARE(result.error, QNetworkReply::NoError);
            QCOMPARE(result.status, 200);
            QCOMPARE(result.body, "you asked for /item/" + QByteArray::number(i));
        }
        QCOMPARE(server.answered, kRequests);
    }));
}

// ---------------------------------------------------------------------------------------------

void TestEventDispatcher::installOn() {
    QFETCH_GLOBAL(QString, dispatcher);
    if (dispatcher != QLatin1StringView("epoll")) {
        QSKIP("about EpollEventDispatcher::installOn only");
    }
    QVERIFY(!EpollEventDispatcher::installOn(nullptr));
    // The main thread has its dispatcher already.
    QVERIFY(!EpollEventDispatcher::installOn(QThread::currentThread()));
    QThread thread;
    QVERIFY(EpollEventDispatcher::installOn(&thread));
    QVERIFY(!EpollEventDispatcher::installOn(&thread));
    QVERIFY(qobject_cast<EpollEventDispatcher *>(QAbstractEventDispatcher::instance(&thread)));
    thread.start();
    QVERIFY(!EpollEventDispatcher::installOn(&thread));
    thread.quit();
    QVERIFY(thread.wait(20'000));
}

// Prints what one wake-up costs with 10,000 idle socket notifiers registered (5,000 socket
// pairs, both ends watched), against none. Asserts only behaviour: every round ran and no idle
// notifier fired.
void TestEventDispatcher::wakeUpCostWithManyIdleNotifiers() {
    QFETCH_GLOBAL(QString, dispatcher);
    const rlim_t fdLimit = raiseOpenFileLimit();
    const int pairs = static_cast<int>(std::min<rlim_t>(5000, (fdLimit - 512) / 2));
    if (pairs < 5000) {
        qDebug("open-file limit %llu: measuring with %d pairs instead of 5,000",
               static_cast<unsigned long long>(fdLimit), pairs);
    }
    TestThread worker(dispatcher);
    QVERIFY(worker.run([pairs] {
        constexpr int kRounds = 300;
        SocketPair ping;
        QVERIFY(ping.isValid());
        QSocketNotifier pingNotifier(ping.fd(0), QSocketNotifier::Read);
        int rounds = 0;
        QEventLoop *running = nullptr;
        // Each round is one loop iteration: the handler makes its own socket readable again.
        QObject::connect(&pingNotifier, &QSocketNotifier::activated, &pingNotifier, [&] {
            drain(ping.fd(0));
            if (++rounds < kRounds) {
                writeByte(ping.fd(1));
            } else if (running) {
                running->quit();
            }
        });
        const auto measure = [&] {
            rounds = 0;
            QEventLoop loop;
            running = &loop;
            QElapsedTimer clock;
            clock.start();
            writeByte(ping.fd(1));
            const bool done = execWithTimeout(loop, 120s);
            running = nullptr;
            return done ? double(clock.nsecsElapsed()) / 1e6 / kRounds : -1.0;
        };
        const double idleNone = measure();
        QCOMPARE(rounds, kRounds);

        QElapsedTimer setupClock;
        setupClock.start();
        std::vector<std::unique_ptr<SocketPair>> sockets;
        std::vector<std::unique_ptr<QSocketNotifier>> idle;
        sockets.reserve(std::size_t(pairs));
        idle.reserve(std::size_t(pairs) * 2);
        QObject context;
        int idleFired = 0;
        for (int i = 0; i < pairs; ++i) {
            sockets.push_back(std::make_unique<SocketPair>());
            QVERIFY(sockets.back()->isValid());
            for (int end = 0; end < 2; ++end) {
                idle.push_back(std::make_unique<QSocketNotifier>(sockets.back()->fd(end),
                                                                 QSocketNotifier::Read));
                QObject::connect(idle.back().get(), &QSocketNotifier::activated, &context,
                                 [&] { ++idleFired; });
            }
        }
        const qint64 setupMs = setupClock.elapsed();

        const double idleMany = measure();
        QCOMPARE(rounds, kRounds);
        QCOMPARE(idleFired, 0);

        setupClock.restart();
        idle.clear();
        const qint64 teardownMs = setupClock.elapsed();
        qDebug("%s: one wake-up costs %.3f ms with %d idle socket notifiers, %.3f ms with none "
               "(registering them took %lld ms, removing them %lld ms)",
               QAbstractEventDispatcher::instance()->metaObject()->className(), idleMany, pairs * 2,
               idleNone, static_cast<long long>(setupMs), static_cast<long long>(teardownMs));
        if (auto *epoll = epollDispatcher()) {
            QCOMPARE(epoll->watchedDescriptorCount(), qsizetype(1)); // the ping socket
        }
    }));
}

int main(int argc, char **argv) {
    if (qEnvironmentVariable("LLMPROXY_DISPATCHER") == QLatin1StringView("epoll") &&
        !EpollEventDispatcher::installOn(QThread::currentThread())) {
        qCritical("cannot install the epoll event dispatcher on the main thread");
        return 1;
    }
    QCoreApplication app(argc, argv);
    TestEventDispatcher test;
    return QTest::qExec(&test, argc, argv);
}

#include "tst_eventdispatcher.moc"
