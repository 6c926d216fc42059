// SPDX-License-Identifier: GPL-3.0-or-later
#include "blockinghttp.h"

#include "responseparser.h"

#include <QStringBuilder>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace llmproxy::bench {

namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until the deadline; false on timeout or error.
bool waitFor(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

QByteArray errnoText(const char *what) {
    return QByteArray(what) + ": " + std::strerror(errno);
}

} // namespace

HttpResult httpGet(quint16 port, const QByteArray &path, std::chrono::milliseconds timeout) {
    return httpRequest(port, "GET", path, {}, timeout);
}

HttpResult httpRequest(quint16 port, const QByteArray &method, const QByteArray &path,
                       const QByteArray &body, std::chrono::milliseconds timeout) {
    HttpResult result;
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + timeout;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        result.error = errnoText("socket");
        return result;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    const auto done = [&](const QByteArray &error) {
        ::close(fd);
        result.error = error;
        result.elapsed = Clock::now() - start;
        return result;
    };

    if (::connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) != 0) {
        if (errno != EINPROGRESS)
            return done(errnoText("connect"));
        if (!waitFor(fd, POLLOUT, deadline))
            return done("connect timed out");
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            errno = error;
            return done(errnoText("connect"));
        }
    }
    QByteArray request = method + ' ' + path +
                         " HTTP/1.1\r\nHost: 127.0.0.1:" + QByteArray::number(port) +
                         "\r\nConnection: close\r\n";
    if (!body.isEmpty()) {
        request += "Authorization: Bearer sk-bench-not-a-real-key\r\nContent-Type: "
                   "application/json\r\nContent-Length: " +
                   QByteArray::number(body.size()) + "\r\n";
    }
    request += "\r\n" + body;
    qsizetype written = 0;
    while (written < request.size()) {
        const ssize_t n = ::send(fd, request.constData() + written,
                                 static_cast<size_t>(request.size() - written), MSG_NOSIGNAL);
        if (n > 0) {
            written += n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!waitFor(fd, POLLOUT, deadline))
                return done("send timed out");
        } else {
            return done(errnoText("send"));
        }
    }
    ResponseParser parser;
    char buffer[16384];
    while (parser.state() == ResponseParser::State::Incomplete) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            parser.feed(buffer, n);
        } else if (n == 0) {
            parser.finish();
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!waitFor(fd, POLLIN, deadline))
                return done("answer timed out");
        } else {
            return done(errnoText("recv"));
        }
    }
    result.elapsed = Clock::now() - start;
    ::close(fd);
    if (parser.state() == ResponseParser::State::Error) {
        result.error = parser.error();
        return result;
    }
    result.ok = true;
    result.status = parser.status();
    result.body = parser.body();
    return result;
}

} // namespace llmproxy::bench
