// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>

#include <chrono>
#include <memory>
#include <utility>

class QProcess;

namespace llmproxy::bench {

// The llm-proxy under test (or the bench's stub server) as a child process: started with the
// given arguments, its stderr kept in a log file, its listening port read from the line it
// prints on stdout.
class ProxyProcess {
public:
    // `marker`: how the line that gives the port starts ("<marker>H:P/v1").
    explicit ProxyProcess(const QByteArray &marker = "llm-proxy listening on http://");
    ~ProxyProcess(); // stops the proxy if it still runs
    ProxyProcess(const ProxyProcess &) = delete;
    ProxyProcess &operator=(const ProxyProcess &) = delete;

    // Sets (or overrides) an environment variable for start().
    void setEnvironment(const QString &name, const QString &value);
    // Starts it and waits (at most `timeout`) for the marker line.
    bool start(const QString &program, const QStringList &arguments, const QString &logFile,
               std::chrono::milliseconds timeout, QByteArray *error);
    quint16 port() const { return m_port; }
    qint64 pid() const { return m_pid; }
    // False once it has exited (crashed or otherwise); `description` says how.
    bool running(QByteArray *description = nullptr);
    // SIGTERM, then SIGKILL if it has not exited within `grace`. Returns how it ended.
    QByteArray stop(std::chrono::milliseconds grace);
    // The last `lines` lines of its stderr log, or `lines` lines from the start of a sanitizer
    // report if it has one.
    QByteArray logTail(int lines) const;

private:
    QByteArray exitDescription() const;

    std::unique_ptr<QProcess> m_process;
    QByteArray m_marker;
    QList<std::pair<QString, QString>> m_environment;
    QString m_logFile;
    quint16 m_port = 0;
    qint64 m_pid = 0;
};

// From /proc/<pid>/status, in KiB (-1 if unreadable).
struct ProcessMemory {
    qint64 rssKiB = -1; // VmRSS
    qint64 hwmKiB = -1; // VmHWM, the peak RSS
};
ProcessMemory processMemory(qint64 pid);

// User + system CPU time of a process so far, from /proc/<pid>/stat (-1 if unreadable).
std::chrono::milliseconds processCpuTime(qint64 pid);

// The kernel's count of connections dropped because a listen queue was full (TcpExt
// ListenOverflows, whole network namespace, so other programs count too); -1 if unreadable.
qint64 listenQueueDrops();

} // namespace llmproxy::bench
