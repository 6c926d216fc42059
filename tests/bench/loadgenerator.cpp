// SPDX-License-Identifier: GPL-3.0-or-later
#include "loadgenerator.h"

#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace llmproxy::bench {

namespace {

constexpr quint64 StatsId = ~quint64(0);
constexpr int MaxConnecting = 256; // connect() calls in progress at once, with a window
constexpr int MaxOpenPerTurn = 64; // new connections per loop turn: connects and sends interleave
constexpr int MaxRecordedFailures = 10;
constexpr int MaxStatsErrors = 50;

QByteArray errnoText(const char *what, int error) {
    return QByteArray(what) + ": " + std::strerror(error);
}

int socketError(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
        return errno;
    return error;
}

} // namespace

LoadGenerator::LoadGenerator(const LoadOptions &options, const ChatWorkload &workload)
    : m_options(options)
    , m_workload(workload) {}

LoadGenerator::~LoadGenerator() {
    stop();
    if (m_epoll >= 0)
        ::close(m_epoll);
}

bool LoadGenerator::start(QByteArray *error) {
    m_epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (m_epoll < 0) {
        *error = errnoText("epoll_create1", errno);
        return false;
    }
    m_connections.resize(static_cast<size_t>(m_options.requests));
    m_thread = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "loadgen"); // for perf and top
        run();
    });
    return true;
}

LoadGenerator::Phase LoadGenerator::waitFor(Phase phase, std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_mutex);
    m_phaseChanged.wait_for(lock, timeout, [this, phase] {
        return m_published.phase >= phase || m_published.phase == Phase::Aborted;
    });
    return m_published.phase;
}

void LoadGenerator::stop() {
    m_stopRequested = true;
    if (m_thread.joinable())
        m_thread.join();
}

LoadGenerator::Report LoadGenerator::report() const {
    std::lock_guard lock(m_mutex);
    return m_published;
}

void LoadGenerator::setPhase(Phase phase) {
    m_live.phase = phase;
    publish();
    m_phaseChanged.notify_all();
}

void LoadGenerator::publish() {
    std::lock_guard lock(m_mutex);
    m_published = m_live;
}

void LoadGenerator::abort(const QByteArray &why) {
    if (m_live.phase == Phase::Aborted || m_live.phase == Phase::Done)
        return;
    m_live.abortReason = why;
    setPhase(Phase::Aborted);
}

void LoadGenerator::run() {
    m_acceptDeadline = Clock::now() + m_options.acceptTimeout;
    setPhase(Phase::Connecting);
    std::vector<epoll_event> events(1024);
    while (m_live.phase == Phase::Connecting || m_live.phase == Phase::Holding) {
        if (m_stopRequested) {
            abort("stopped by the bench (timeout)");
            break;
        }
        Clock::time_point now = Clock::now();
        if (m_live.phase == Phase::Connecting) {
            if (now > m_acceptDeadline) {
                abort("the proxy did not queue all requests within the accept timeout (" +
                      QByteArray::number(m_live.counted) + " of " +
                      QByteArray::number(m_options.requests) + " counted)");
                break;
            }
            pollStats(now);
            // The first count comes before the first client: the /stats connection is then
            // already accepted instead of queueing behind N others, and the rate's samples
            // start at zero.
            if (m_live.statsPolls > 0)
                openMore();
        }
        if (m_live.phase != Phase::Connecting && m_live.phase != Phase::Holding)
            break;
        const int n = ::epoll_wait(m_epoll, events.data(), static_cast<int>(events.size()),
                                   epollTimeoutMs(Clock::now()));
        if (n < 0 && errno != EINTR) {
            abort(errnoText("epoll_wait", errno));
            break;
        }
        for (int i = 0; i < n; ++i) {
            const epoll_event &event = events[static_cast<size_t>(i)];
            if (event.data.u64 == StatsId)
                onStatsEvent(event.events);
            else
                onEvent(static_cast<int>(event.data.u64), event.events);
        }
        if (m_live.phase == Phase::Holding && m_finished == m_options.requests) {
            setPhase(Phase::Done);
            break;
        }
        publish();
    }

    checkAnswers();
    // Whoever is still waiting has no answer.
    for (size_t i = 0; i < m_connections.size(); ++i) {
        Connection &c = m_connections[i];
        if (c.state != State::Finished && c.state != State::NotStarted)
            finishConnection(static_cast<int>(i), "no answer before the bench ended");
    }
    for (Connection &c : m_connections) {
        if (c.fd >= 0)
            ::close(c.fd);
        c.fd = -1;
    }
    if (m_stats.fd >= 0)
        ::close(m_stats.fd);
    m_stats.fd = -1;
    timespec cpu{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    m_live.cpuTime = std::chrono::seconds(cpu.tv_sec) + std::chrono::nanoseconds(cpu.tv_nsec);
    m_live.samples = std::move(m_samples);
    publish();
    m_phaseChanged.notify_all();
}

int LoadGenerator::epollTimeoutMs(Clock::time_point now) const {
    if (m_live.phase != Phase::Connecting)
        return 50;
    if (m_live.statsPolls > 0 && m_live.started < m_options.requests && m_options.window == 0)
        return 0; // more to open: keep going
    if (m_stats.state == State::NotStarted || m_stats.state == State::Finished) {
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(m_stats.nextPoll - now);
        return static_cast<int>(std::clamp<qint64>(wait.count(), 0, 5));
    }
    return 5;
}

int LoadGenerator::openSocket(int source, QByteArray *error) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = errnoText("socket", errno);
        return -1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source >= 0) {
        // Bind the address only: the port is chosen by connect(), for the full 4-tuple, so
        // each source address has the whole ephemeral range to itself.
        if (::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) {
            *error = errnoText("setsockopt(IP_BIND_ADDRESS_NO_PORT)", errno);
            ::close(fd);
            return -1;
        }
        sockaddr_in from{};
        from.sin_family = AF_INET;
        from.sin_port = 0;
        from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + quint32(source));
        if (::bind(fd, reinterpret_cast<const sockaddr *>(&from), sizeof from) != 0) {
            *error = errnoText("bind", errno);
            ::close(fd);
            return -1;
        }
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(m_options.port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) != 0 &&
        errno != EINPROGRESS) {
        *error = errnoText("connect", errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

void LoadGenerator::openMore() {
    const bool burst = m_options.window == 0;
    for (int opened = 0;
         m_live.started < m_options.requests &&
         (burst ? opened < MaxOpenPerTurn
                : m_connecting < MaxConnecting &&
                      quint64(m_live.started) < m_live.counted + quint64(m_options.window));
         ++opened) {
        const int index = m_live.started;
        QByteArray error;
        const int source = m_options.sourceAddresses > 0 ? index % m_options.sourceAddresses : -1;
        const int fd = openSocket(source, &error);
        if (fd < 0) {
            abort("cannot open connection " + QByteArray::number(index) + ": " + error);
            return;
        }
        if (index == 0)
            m_live.firstConnect = Clock::now();
        Connection &c = m_connections[static_cast<size_t>(index)];
        c.fd = fd;
        c.state = State::Connecting;
        epoll_event event{};
        event.events = EPOLLOUT;
        event.data.u64 = quint64(index);
        if (::epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &event) != 0) {
            abort(errnoText("epoll_ctl", errno));
            return;
        }
        ++m_connecting;
        ++m_live.started;
    }
}

bool LoadGenerator::writePending(int fd, QByteArray &out, qsizetype &offset, QByteArray *error) {
    while (offset < out.size()) {
        const ssize_t n = ::send(fd, out.constData() + offset,
                                 static_cast<size_t>(out.size() - offset), MSG_NOSIGNAL);
        if (n > 0) {
            offset += n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return true;
        } else {
            *error = errnoText("send", n < 0 ? errno : EPIPE);
            return false;
        }
    }
    return true;
}

void LoadGenerator::onEvent(int index, quint32 events) {
    Connection &c = m_connections[static_cast<size_t>(index)];
    if (c.state == State::Connecting) {
        --m_connecting;
        if (const int error = socketError(c.fd); error != 0) {
            finishConnection(index, errnoText("connect", error));
            return;
        }
        c.state = State::Writing;
        c.out = m_workload.httpRequest(index);
        c.outOffset = 0;
    }
    if (c.state == State::Writing) {
        QByteArray error;
        if (!writePending(c.fd, c.out, c.outOffset, &error)) {
            finishConnection(index, error);
            return;
        }
        if (c.outOffset < c.out.size())
            return; // EPOLLOUT again later
        c.out = QByteArray();
        c.state = State::Waiting;
        ++m_live.written;
        m_live.lastWritten = Clock::now();
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP;
        event.data.u64 = quint64(index);
        ::epoll_ctl(m_epoll, EPOLL_CTL_MOD, c.fd, &event);
        return;
    }
    if (c.state != State::Waiting)
        return;
    Q_UNUSED(events); // errors and hang-ups show up as recv() results
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            c.parser.feed(buffer, n);
        } else if (n == 0) {
            c.parser.finish();
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            return;
        } else {
            finishConnection(index, errnoText("recv", errno));
            return;
        }
        switch (c.parser.state()) {
        case ResponseParser::State::Incomplete:
            continue;
        case ResponseParser::State::Error:
            finishConnection(index, "bad response: " + c.parser.error());
            return;
        case ResponseParser::State::Complete:
            if (m_live.phase == Phase::Connecting) { // an early answer: checked at once
                finishConnection(index,
                                 m_workload.verify(index, c.parser.status(), c.parser.body()));
                return;
            }
            c.status = c.parser.status();
            c.body = c.parser.body();
            c.unchecked = true;
            finishConnection(index, {}); // counted as right until checkAnswers()
            return;
        }
    }
}

void LoadGenerator::finishConnection(int index, const QByteArray &failure) {
    Connection &c = m_connections[static_cast<size_t>(index)];
    if (c.state == State::Finished)
        return;
    if (c.state == State::Connecting)
        --m_connecting;
    c.state = State::Finished;
    c.out = QByteArray();
    c.parser = ResponseParser();
    // Stop watching it, but keep it open until the end, as a keep-alive client would: closing
    // now would make the proxy tidy up connections while it is still answering the others.
    if (c.fd >= 0)
        ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
    ++m_finished;
    const Clock::time_point now = Clock::now();
    if (m_live.answered + m_live.failed == 0)
        m_live.firstAnswer = now;
    m_live.lastAnswer = now;
    if (failure.isEmpty()) {
        ++m_live.answered;
        return;
    }
    ++m_live.failed;
    if (m_live.failures.size() < MaxRecordedFailures)
        m_live.failures.append(Failure{index, failure});
    if (m_live.phase == Phase::Connecting)
        abort("request " + QByteArray::number(index) +
              " ended before all requests were queued: " + failure);
}

void LoadGenerator::checkAnswers() {
    for (size_t i = 0; i < m_connections.size(); ++i) {
        Connection &c = m_connections[i];
        if (!c.unchecked)
            continue;
        c.unchecked = false;
        const QByteArray failure = m_workload.verify(static_cast<int>(i), c.status, c.body);
        c.body = QByteArray();
        if (failure.isEmpty())
            continue;
        --m_live.answered;
        ++m_live.failed;
        if (m_live.failures.size() < MaxRecordedFailures)
            m_live.failures.append(Failure{static_cast<int>(i), failure});
    }
}

void LoadGenerator::pollStats(Clock::time_point now) {
    StatsConnection &s = m_stats;
    if (s.state != State::NotStarted && s.state != State::Finished)
        return; // a poll is under way
    if (now < s.nextPoll)
        return;
    s.out =
        "GET /stats HTTP/1.1\r\nHost: 127.0.0.1:" + QByteArray::number(m_options.port) + "\r\n\r\n";
    s.outOffset = 0;
    s.parser = ResponseParser();
    epoll_event event{};
    event.events = EPOLLOUT;
    event.data.u64 = StatsId;
    if (s.state == State::NotStarted) {
        QByteArray error;
        s.fd = openSocket(-1, &error);
        if (s.fd < 0) {
            dropStats(error);
            return;
        }
        s.state = State::Connecting;
        ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, s.fd, &event);
    } else {
        s.state = State::Writing; // reuse the keep-alive connection
        ::epoll_ctl(m_epoll, EPOLL_CTL_MOD, s.fd, &event);
    }
}

void LoadGenerator::counted(quint64 value) {
    const Clock::time_point now = Clock::now();
    ++m_live.statsPolls;
    m_live.counted = value;
    m_samples.push_back(CountSample{now, value});
    if (m_live.phase == Phase::Connecting && value >= quint64(m_options.requests)) {
        m_live.allQueued = now;
        setPhase(Phase::Holding);
    }
}

void LoadGenerator::dropStats(const QByteArray &why) {
    StatsConnection &s = m_stats;
    if (s.fd >= 0) {
        ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, s.fd, nullptr);
        ::close(s.fd);
    }
    s.fd = -1;
    s.state = State::NotStarted;
    s.nextPoll = Clock::now() + m_options.statsPollInterval;
    if (++s.consecutiveErrors >= MaxStatsErrors)
        abort("GET /stats keeps failing: " + why);
}

void LoadGenerator::onStatsEvent(quint32 events) {
    StatsConnection &s = m_stats;
    if (s.state == State::Connecting) {
        if (const int error = socketError(s.fd); error != 0) {
            dropStats(errnoText("connect", error));
            return;
        }
        s.state = State::Writing;
    }
    if (s.state == State::Writing) {
        QByteArray error;
        if (!writePending(s.fd, s.out, s.outOffset, &error)) {
            dropStats(error);
            return;
        }
        if (s.outOffset < s.out.size())
            return;
        s.state = State::Waiting;
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP;
        event.data.u64 = StatsId;
        ::epoll_ctl(m_epoll, EPOLL_CTL_MOD, s.fd, &event);
        return;
    }
    // Waiting for the answer, or idle between polls (then only a close can arrive).
    Q_UNUSED(events);
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(s.fd, buffer, sizeof buffer, 0);
        if (n > 0 && s.state == State::Waiting) {
            s.parser.feed(buffer, n);
        } else if (n > 0) {
            dropStats("unexpected bytes between polls");
            return;
        } else if (n == 0) {
            if (s.state == State::Waiting)
                dropStats("closed by the proxy during a poll");
            else
                dropStats({}); // an idle keep-alive connection closed: reconnect next time
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            return;
        } else {
            dropStats(errnoText("recv", errno));
            return;
        }
        if (s.parser.state() == ResponseParser::State::Incomplete)
            continue;
        if (s.parser.state() == ResponseParser::State::Error || s.parser.status() != 200) {
            dropStats("bad /stats answer: " + s.parser.error());
            return;
        }
        const QJsonObject stats = QJsonDocument::fromJson(s.parser.body()).object();
        const auto queued = stats.value(QLatin1StringView("queued"));
        const auto inFlight = stats.value(QLatin1StringView("in_flight"));
        if (!queued.isDouble() || !inFlight.isDouble()) {
            dropStats("/stats has no queued/in_flight: " + s.parser.body().left(120));
            return;
        }
        s.consecutiveErrors = 0;
        s.state = State::Finished;
        // A fixed interval from the previous poll's start, not from its answer: the samples
        // are evenly spaced while the proxy answers within the interval.
        s.nextPoll = std::max(s.nextPoll + m_options.statsPollInterval, Clock::now());
        counted(quint64(queued.toDouble()) + quint64(inFlight.toDouble()));
        if (m_live.phase == Phase::Holding) {
            // The held phase needs no more polling: leave the connection out of the picture.
            ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, s.fd, nullptr);
            ::close(s.fd);
            s.fd = -1;
            s.state = State::NotStarted;
        }
        return;
    }
}

} // namespace llmproxy::bench
