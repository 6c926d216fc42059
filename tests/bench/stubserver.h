// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>

#include <atomic>
#include <thread>
#include <vector>

namespace llmproxy::bench {

// An ideal server for the bench's own floor: epoll on a thread of its own, no Qt, nothing but
// what the bench's client needs. It accepts every connection, reads each request fully
// (headers and Content-Length body), counts it and holds it. Two control requests, on any
// connection (keep-alive):
//   GET /stats           {"queued": <requests counted>, "in_flight": 0,
//                         "last_counted_ns": <steady clock of the latest count, or -1>}
//                        (the same fields the bench reads from llm-proxy's /stats)
//   POST /_stub/answer   answers every held request now, and any later one at once, with a
//                        small chat.completion whose content is "echo: " + the request's last
//                        "content" string, as the fake provider's model would, so the bench's
//                        checker accepts it
// Connections stay open after their answer. The figures it gives are what the bench's client
// can do against a server that costs nothing.
//
// It holds one descriptor per client, so the bench runs it in a child process of its own
// (llmproxy-bench --serve-stub): the bench's own clients take the other N.
class StubServer {
public:
    StubServer();
    ~StubServer(); // stops the thread and closes every connection
    StubServer(const StubServer &) = delete;
    StubServer &operator=(const StubServer &) = delete;

    // Listens on 127.0.0.1 (any free port) with this listen backlog, and starts the thread.
    bool start(int backlog, QByteArray *error);
    quint16 port() const { return m_port; }

private:
    struct Connection {
        int fd = -1;
        QByteArray in;
        QByteArray out; // what is still to be sent
        qsizetype outOffset = 0;
        QByteArray answer;     // the held request's answer, until it is sent
        bool held = false;     // a counted request is waiting on this connection
        bool watchOut = false; // EPOLLOUT is in its epoll interest
    };

    void run();
    void acceptAll();
    void onReadable(Connection &c);
    // Parses one request from c.in; false when it is incomplete (or the connection closed).
    bool takeRequest(Connection &c);
    void answerHeld();
    void queue(Connection &c, const QByteArray &bytes);
    void flush(Connection &c);
    void watchOut(Connection &c, bool on);
    void close(Connection &c);

    int m_listen = -1;
    int m_epoll = -1;
    int m_wake = -1; // eventfd: stop
    quint16 m_port = 0;
    std::vector<Connection> m_connections; // indexed by descriptor
    std::vector<int> m_held;               // descriptors with a held, unanswered request
    bool m_answering = false;              // after POST /_stub/answer
    quint64 m_counted = 0;
    qint64 m_lastCountedNs = -1;

    std::thread m_thread;
    std::atomic<bool> m_stop{false};
};

} // namespace llmproxy::bench
