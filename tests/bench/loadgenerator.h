// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include "chatworkload.h"
#include "responseparser.h"

#include <QByteArray>
#include <QList>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace llmproxy::bench {

using Clock = std::chrono::steady_clock;

struct LoadOptions {
    quint16 port = 0; // the server, on 127.0.0.1
    int requests = 10'000;
    // At most this many requests sent but not yet counted by the server (0: no limit, and no
    // limit on connect()s in progress either: all N arrive at once, as fast as this thread
    // can send them). A window under the listen backlog (4,096) keeps it from overflowing,
    // which would cost 1 s SYN retransmits.
    int window = 0;
    // Connections come from 127.0.0.2 ... 127.0.0.(1 + sourceAddresses), in turn (0: from
    // 127.0.0.1, the kernel's choice). With one source address, every connect() to the same
    // port searches the ephemeral range for a free 4-tuple, and once most even ports are taken
    // that search dominates the whole benchmark; spread over several, it stays short.
    int sourceAddresses = 16;
    // How often the server's count is read while the requests arrive: GET /stats (queued +
    // in_flight) on one keep-alive connection, opened before the first client.
    std::chrono::milliseconds statsPollInterval{5};
    std::chrono::milliseconds acceptTimeout{std::chrono::minutes(5)};
};

// One reading of the server's count while the requests arrive.
struct CountSample {
    Clock::time_point at; // when the /stats answer arrived
    quint64 counted = 0;
};

struct Failure {
    int index = -1; // the request, -1 for the bench itself
    QByteArray what;
};

// The client side of the benchmark: N keep-alive connections, one held chat completion each,
// driven by epoll in a thread of its own. Work per event is O(1): nothing scans all clients.
//
// Phases: Connecting (opening connections and sending, polling /stats on one keep-alive
// connection until queued + in_flight reaches N) → Holding (every request is in the proxy's
// queue; waiting for answers) → Done (every client has its answer, right or wrong). Aborted
// when the bench cannot go on: a socket error or an early answer while connecting, the accept
// timeout, or stop().
class LoadGenerator {
public:
    enum class Phase { Idle, Connecting, Holding, Done, Aborted };

    struct Report {
        Phase phase = Phase::Idle;
        int started = 0;     // connections opened
        int written = 0;     // requests fully written
        int answered = 0;    // right answers (200, content matches the request)
        int failed = 0;      // wrong answers, errors, closed connections
        quint64 counted = 0; // the proxy's queued + in_flight at the last /stats poll
        int statsPolls = 0;
        Clock::time_point firstConnect{};
        Clock::time_point lastWritten{};
        Clock::time_point allQueued{}; // the /stats answer that first showed all N
        Clock::time_point firstAnswer{};
        Clock::time_point lastAnswer{};
        std::vector<CountSample> samples; // every count read while connecting (once ended)
        QList<Failure> failures;          // the first few
        QByteArray abortReason;
        std::chrono::nanoseconds cpuTime{0}; // of the load thread, once it has ended
    };

    LoadGenerator(const LoadOptions &options, const ChatWorkload &workload);
    ~LoadGenerator();
    LoadGenerator(const LoadGenerator &) = delete;
    LoadGenerator &operator=(const LoadGenerator &) = delete;

    bool start(QByteArray *error);
    // Blocks until the phase is at least `phase` (or Aborted) or the timeout passes; returns the
    // phase then.
    Phase waitFor(Phase phase, std::chrono::milliseconds timeout);
    // Ends the thread; clients still waiting count as failed. Joins.
    void stop();
    Report report() const;

private:
    enum class State : quint8 { NotStarted, Connecting, Writing, Waiting, Finished };
    struct Connection {
        int fd = -1;
        State state = State::NotStarted;
        QByteArray out;
        qsizetype outOffset = 0;
        ResponseParser parser;
        // A complete answer received while holding, checked once every client has its answer
        // (checkAnswers()): the check (JSON parsing, several events per stream) is the bench's
        // CPU, taken from the same cores as the proxy's, and is no part of answering N.
        int status = 0;
        QByteArray body;
        bool unchecked = false;
    };
    struct StatsConnection {
        int fd = -1;
        State state = State::NotStarted; // NotStarted: no socket; Finished: idle keep-alive
        QByteArray out;
        qsizetype outOffset = 0;
        ResponseParser parser;
        Clock::time_point nextPoll{};
        int consecutiveErrors = 0;
    };

    void run();
    void openMore();
    // A non-blocking socket connecting to the proxy, from source address `source` (see
    // LoadOptions::sourceAddresses; -1: 127.0.0.1).
    int openSocket(int source, QByteArray *error);
    void onEvent(int index, quint32 events);
    void onStatsEvent(quint32 events);
    bool writePending(int fd, QByteArray &out, qsizetype &offset, QByteArray *error);
    void finishConnection(int index, const QByteArray &failure);
    void checkAnswers();
    void pollStats(Clock::time_point now);
    void counted(quint64 value);
    void dropStats(const QByteArray &why);
    void abort(const QByteArray &why);
    void setPhase(Phase phase);
    void publish();
    int epollTimeoutMs(Clock::time_point now) const;

    LoadOptions m_options;
    ChatWorkload m_workload;
    int m_epoll = -1;
    std::vector<Connection> m_connections;
    StatsConnection m_stats;
    int m_connecting = 0; // connections whose connect() has not completed
    int m_finished = 0;
    Clock::time_point m_acceptDeadline{};
    Report m_live;                      // the thread's own copy, published under m_mutex
    std::vector<CountSample> m_samples; // into m_live.samples when the thread ends

    std::thread m_thread;
    std::atomic<bool> m_stopRequested{false};
    mutable std::mutex m_mutex;
    std::condition_variable m_phaseChanged;
    Report m_published;
};

} // namespace llmproxy::bench
