// SPDX-License-Identifier: GPL-3.0-or-later
#include "stubserver.h"

#include <QStringBuilder>

#include <algorithm>
#include <chrono>
#include <utility>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace llmproxy::bench {

namespace {

constexpr quint64 ListenId = ~quint64(0);
constexpr quint64 WakeId = ~quint64(0) - 1;
constexpr qsizetype MaxRequestBytes = 16LL * 1024 * 1024;

QByteArray errnoText(const char *what) {
    return QByteArray(what) + ": " + std::strerror(errno);
}

// The Content-Length of a request head ("\r\n"-separated, without the blank line); 0 if none,
// -1 if it is not a number.
qsizetype contentLength(QByteArrayView head) {
    qsizetype from = 0;
    while (from < head.size()) {
        qsizetype end = head.indexOf("\r\n", from);
        if (end < 0)
            end = head.size();
        const QByteArrayView line = head.sliced(from, end - from);
        from = end + 2;
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0 ||
            line.first(colon).trimmed().compare("content-length", Qt::CaseInsensitive) != 0)
            continue;
        bool ok = false;
        const qsizetype length = line.sliced(colon + 1).trimmed().toLongLong(&ok);
        return ok && length >= 0 ? length : -1;
    }
    return 0;
}

QByteArray jsonAnswer(const QByteArray &json) {
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           QByteArray::number(json.size()) + "\r\n\r\n" + json;
}

// The answer to one held request: the body's last "content" string, echoed as the fake's
// model does. The bench's messages are plain ASCII with nothing escaped.
QByteArray chatAnswer(QByteArrayView body) {
    static constexpr QByteArrayView Key = "\"content\":\"";
    QByteArray content;
    const qsizetype at = body.lastIndexOf(Key);
    if (at >= 0) {
        const qsizetype start = at + Key.size();
        const qsizetype end = body.indexOf('"', start);
        if (end > start)
            content = body.sliced(start, end - start).toByteArray();
    }
    return jsonAnswer("{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion\",\"created\":0,"
                      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                      "\"assistant\",\"content\":\"echo: " +
                      content +
                      "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
                      "\"completion_tokens\":1,\"total_tokens\":2}}");
}

} // namespace

StubServer::StubServer() = default;

StubServer::~StubServer() {
    m_stop = true;
    if (m_wake >= 0) {
        const quint64 one = 1;
        [[maybe_unused]] const ssize_t n = ::write(m_wake, &one, sizeof one);
    }
    if (m_thread.joinable())
        m_thread.join();
    for (Connection &c : m_connections) {
        if (c.fd >= 0)
            ::close(c.fd);
    }
    for (const int fd : {m_listen, m_epoll, m_wake}) {
        if (fd >= 0)
            ::close(fd);
    }
}

bool StubServer::start(int backlog, QByteArray *error) {
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m_listen < 0) {
        *error = errnoText("stub: socket");
        return false;
    }
    const int one = 1;
    ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = 0;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(m_listen, reinterpret_cast<const sockaddr *>(&address), sizeof address) != 0 ||
        ::listen(m_listen, backlog) != 0 ||
        ::getsockname(m_listen, reinterpret_cast<sockaddr *>(&address), &length) != 0) {
        *error = errnoText("stub: listen on 127.0.0.1");
        return false;
    }
    m_port = ntohs(address.sin_port);
    m_epoll = ::epoll_create1(EPOLL_CLOEXEC);
    m_wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m_epoll < 0 || m_wake < 0) {
        *error = errnoText("stub: epoll/eventfd");
        return false;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = ListenId;
    ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_listen, &event);
    event.data.u64 = WakeId;
    ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_wake, &event);
    m_thread = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "stub"); // for perf and top
        run();
    });
    return true;
}

void StubServer::run() {
    std::vector<epoll_event> events(1024);
    while (!m_stop) {
        const int n = ::epoll_wait(m_epoll, events.data(), static_cast<int>(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            const epoll_event &event = events[static_cast<size_t>(i)];
            if (event.data.u64 == ListenId) {
                acceptAll();
                continue;
            }
            if (event.data.u64 == WakeId)
                continue; // m_stop
            Connection &c = m_connections[static_cast<size_t>(event.data.u64)];
            if (c.fd < 0)
                continue;
            if ((event.events & EPOLLOUT) && c.outOffset < c.out.size())
                flush(c);
            if (c.fd >= 0 && (event.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                onReadable(c);
        }
    }
}

void StubServer::acceptAll() {
    for (;;) {
        const int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; // EAGAIN, or an error the next wake-up will see again
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (m_connections.size() <= size_t(fd))
            m_connections.resize(size_t(fd) + 1024);
        Connection &c = m_connections[size_t(fd)];
        c = Connection{};
        c.fd = fd;
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP;
        event.data.u64 = quint64(fd);
        ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &event);
    }
}

void StubServer::onReadable(Connection &c) {
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            c.in.append(buffer, n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            close(c); // the client left
            return;
        }
    }
    while (c.fd >= 0 && !c.held && takeRequest(c)) {
    }
}

bool StubServer::takeRequest(Connection &c) {
    const qsizetype headEnd = c.in.indexOf("\r\n\r\n");
    if (headEnd < 0) {
        if (c.in.size() > MaxRequestBytes)
            close(c);
        return false;
    }
    const QByteArrayView head = QByteArrayView(c.in).first(headEnd);
    const qsizetype length = contentLength(head);
    if (length < 0 || length > MaxRequestBytes) {
        close(c);
        return false;
    }
    const qsizetype end = headEnd + 4 + length;
    if (c.in.size() < end)
        return false;
    const QByteArrayView body = QByteArrayView(c.in).sliced(headEnd + 4, length);
    if (head.startsWith("GET /stats ")) {
        queue(c, jsonAnswer("{\"queued\":" + QByteArray::number(m_counted) +
                            ",\"in_flight\":0,\"last_counted_ns\":" +
                            QByteArray::number(m_lastCountedNs) + '}'));
    } else if (head.startsWith("POST /_stub/answer ")) {
        m_answering = true;
        answerHeld();
        queue(c, jsonAnswer("{}"));
    } else {
        c.answer = chatAnswer(body);
        c.held = true;
        ++m_counted;
        m_lastCountedNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
        if (m_answering)
            queue(c, std::exchange(c.answer, QByteArray()));
        else
            m_held.push_back(c.fd);
    }
    c.in.remove(0, end);
    return true;
}

void StubServer::answerHeld() {
    for (const int fd : m_held) {
        Connection &c = m_connections[size_t(fd)];
        if (c.fd >= 0 && c.held && !c.answer.isEmpty())
            queue(c, std::exchange(c.answer, QByteArray()));
    }
    m_held.clear();
}

void StubServer::queue(Connection &c, const QByteArray &bytes) {
    if (c.outOffset >= c.out.size()) {
        c.out = bytes;
        c.outOffset = 0;
    } else {
        c.out += bytes;
    }
    flush(c);
}

void StubServer::flush(Connection &c) {
    while (c.outOffset < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.constData() + c.outOffset,
                                 static_cast<size_t>(c.out.size() - c.outOffset), MSG_NOSIGNAL);
        if (n > 0) {
            c.outOffset += n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            watchOut(c, true);
            return;
        } else {
            close(c);
            return;
        }
    }
    c.out = QByteArray();
    c.outOffset = 0;
    watchOut(c, false);
}

void StubServer::watchOut(Connection &c, bool on) {
    if (c.watchOut == on)
        return;
    c.watchOut = on;
    epoll_event event{};
    event.events = on ? EPOLLIN | EPOLLRDHUP | EPOLLOUT : EPOLLIN | EPOLLRDHUP;
    event.data.u64 = quint64(c.fd);
    ::epoll_ctl(m_epoll, EPOLL_CTL_MOD, c.fd, &event);
}

void StubServer::close(Connection &c) {
    ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c = Connection{};
}

} // namespace llmproxy::bench
