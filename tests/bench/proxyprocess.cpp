// SPDX-License-Identifier: GPL-3.0-or-later
#include "proxyprocess.h"

#include <QFile>
#include <QList>
#include <QProcess>
#include <QProcessEnvironment>

#include <algorithm>
#include <csignal>
#include <sys/prctl.h>
#include <unistd.h>

namespace llmproxy::bench {

namespace {

QByteArray readProcFile(const QByteArray &path) {
    QFile file(QString::fromUtf8(path));
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return file.readAll(); // /proc files report size 0: readAll reads until the end
}

} // namespace

ProxyProcess::ProxyProcess(const QByteArray &marker)
    : m_marker(marker) {}

void ProxyProcess::setEnvironment(const QString &name, const QString &value) {
    m_environment.append({name, value});
}

ProxyProcess::~ProxyProcess() {
    if (m_process && m_process->state() != QProcess::NotRunning)
        stop(std::chrono::seconds(10));
}

bool ProxyProcess::start(const QString &program, const QStringList &arguments,
                         const QString &logFile, std::chrono::milliseconds timeout,
                         QByteArray *error) {
    m_logFile = logFile;
    m_process = std::make_unique<QProcess>();
    m_process->setProgram(program);
    m_process->setArguments(arguments);
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.remove(QStringLiteral("OPENAI_API_KEY")); // the clients send a placeholder key
    for (const auto &[name, value] : std::as_const(m_environment))
        environment.insert(name, value);
    m_process->setProcessEnvironment(environment);
    m_process->setStandardErrorFile(logFile);
    m_process->setReadChannel(QProcess::StandardOutput);
    // If the bench dies, the proxy goes too (runs in the child between fork and exec).
    m_process->setChildProcessModifier([] { ::prctl(PR_SET_PDEATHSIG, SIGKILL); });
    m_process->start(QIODevice::ReadOnly);
    if (!m_process->waitForStarted(static_cast<int>(timeout.count()))) {
        *error = "cannot start " + program.toUtf8() + ": " + m_process->errorString().toUtf8();
        return false;
    }
    m_pid = m_process->processId();

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    QByteArray output;
    while (std::chrono::steady_clock::now() < deadline) {
        while (m_process->canReadLine()) {
            const QByteArray line = m_process->readLine().trimmed();
            output += line + '\n';
            if (!line.startsWith(m_marker))
                continue;
            // "llm-proxy listening on http://127.0.0.1:PORT/v1"
            const QByteArray hostPort = line.sliced(m_marker.size()).split('/').constFirst();
            bool ok = false;
            const uint port = hostPort.sliced(hostPort.lastIndexOf(':') + 1).toUInt(&ok);
            if (!ok || port == 0 || port > 65535) {
                *error = "cannot read the port from: " + line;
                return false;
            }
            m_port = static_cast<quint16>(port);
            return true;
        }
        if (m_process->state() == QProcess::NotRunning) {
            *error = program.toUtf8() + " exited before listening (" + exitDescription() + ")";
            return false;
        }
        m_process->waitForReadyRead(100);
    }
    *error =
        program.toUtf8() + " did not print its listening line in time; stdout so far: " + output;
    return false;
}

QByteArray ProxyProcess::exitDescription() const {
    if (m_process->exitStatus() == QProcess::CrashExit)
        return "crashed: " + m_process->errorString().toUtf8();
    return "exit code " + QByteArray::number(m_process->exitCode());
}

bool ProxyProcess::running(QByteArray *description) {
    if (!m_process)
        return false;
    if (m_process->state() != QProcess::NotRunning && !m_process->waitForFinished(0))
        return true;
    if (description)
        *description = exitDescription();
    return false;
}

QByteArray ProxyProcess::stop(std::chrono::milliseconds grace) {
    if (!m_process)
        return "not started";
    if (!running()) // it ended on its own
        return "had already ended: " + exitDescription();
    m_process->terminate();
    if (m_process->waitForFinished(static_cast<int>(grace.count())))
        return exitDescription();
    m_process->kill();
    m_process->waitForFinished(5000);
    return "did not stop within " + QByteArray::number(qint64(grace.count())) +
           " ms of SIGTERM: killed";
}

QByteArray ProxyProcess::logTail(int lines) const {
    QFile file(m_logFile);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    const QList<QByteArray> all = file.readAll().split('\n');
    // A sanitizer report matters more than the lines that end it: start there if there is one.
    qsizetype from = std::max<qsizetype>(0, all.size() - lines - 1);
    for (qsizetype i = 0; i < all.size(); ++i) {
        if (all.at(i).contains("ERROR: AddressSanitizer") || all.at(i).contains("runtime error:") ||
            all.at(i).contains("ERROR: LeakSanitizer")) {
            from = i;
            break;
        }
    }
    QByteArray tail;
    for (qsizetype i = from; i < all.size() && i < from + lines + 1; ++i)
        tail += all.at(i) + '\n';
    return tail.trimmed();
}

ProcessMemory processMemory(qint64 pid) {
    ProcessMemory memory;
    const QByteArray status = readProcFile("/proc/" + QByteArray::number(pid) + "/status");
    for (const QByteArray &line : status.split('\n')) {
        const auto value = [&line] {
            // "VmRSS:	   12345 kB"
            return line.sliced(line.indexOf(':') + 1)
                .trimmed()
                .split(' ')
                .constFirst()
                .toLongLong();
        };
        if (line.startsWith("VmRSS:"))
            memory.rssKiB = value();
        else if (line.startsWith("VmHWM:"))
            memory.hwmKiB = value();
    }
    return memory;
}

std::chrono::milliseconds processCpuTime(qint64 pid) {
    const QByteArray stat = readProcFile("/proc/" + QByteArray::number(pid) + "/stat");
    // "pid (comm) state ppid ...": fields after the last ')' start with field 3 (state);
    // utime and stime are fields 14 and 15.
    const qsizetype close = stat.lastIndexOf(')');
    if (close < 0)
        return std::chrono::milliseconds(-1);
    const QList<QByteArray> fields = stat.sliced(close + 2).split(' ');
    if (fields.size() < 13)
        return std::chrono::milliseconds(-1);
    const qint64 ticks = fields.at(11).toLongLong() + fields.at(12).toLongLong();
    const long perSecond = ::sysconf(_SC_CLK_TCK);
    return std::chrono::milliseconds(perSecond > 0 ? ticks * 1000 / perSecond : -1);
}

qint64 listenQueueDrops() {
    const QList<QByteArray> lines = readProcFile("/proc/net/netstat").split('\n');
    for (qsizetype i = 0; i + 1 < lines.size(); ++i) {
        if (!lines.at(i).startsWith("TcpExt:") || !lines.at(i + 1).startsWith("TcpExt:"))
            continue;
        const QList<QByteArray> names = lines.at(i).simplified().split(' ');
        const QList<QByteArray> values = lines.at(i + 1).simplified().split(' ');
        qint64 total = 0;
        for (qsizetype k = 1; k < names.size() && k < values.size(); ++k) {
            if (names.at(k) == "ListenOverflows")
                total += values.at(k).toLongLong();
        }
        return total;
    }
    return -1;
}

} // namespace llmproxy::bench
