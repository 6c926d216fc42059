// SPDX-License-Identifier: GPL-3.0-or-later
// The composition root: parse the command line, start the proxy on its worker thread, stop it
// cleanly on SIGINT/SIGTERM.

#include "api/logging.h"
#include "eventloop/epolleventdispatcher.h"
#include "processlimits.h"
#include "proxyservice.h"
#include "settings/config.h"

#include <QCoreApplication>
#include <QLoggingCategory>
#include <QThread>

#include <cstdio>

using namespace llmproxy;

namespace {
void printLine(FILE *stream, const QString &text) {
    const QByteArray bytes = text.toLocal8Bit() + '\n';
    std::fwrite(bytes.constData(), 1, size_t(bytes.size()), stream);
    std::fflush(stream);
}
} // namespace

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("llm-proxy"));
    QCoreApplication::setApplicationVersion(QStringLiteral(LLMPROXY_VERSION));

    const CommandLine commandLine =
        parseCommandLine(QCoreApplication::arguments(), qgetenv("OPENAI_API_KEY"));
    switch (commandLine.action) {
    case CommandLine::Action::ShowHelp:
    case CommandLine::Action::ShowVersion:
        printLine(stdout, commandLine.message);
        return 0;
    case CommandLine::Action::Error:
        printLine(stderr, commandLine.message);
        return 2;
    case CommandLine::Action::Run:
        break;
    }
    const Config &config = commandLine.config;
    qSetMessagePattern(QStringLiteral("%{time yyyy-MM-ddThh:mm:ss.zzz} %{type} %{category}: "
                                      "%{message}"));
    if (config.verbose)
        QLoggingCategory::setFilterRules(QStringLiteral("llmproxy.*.debug=true"));
    if (!config.noGui) {
        printLine(stderr, QStringLiteral("llm-proxy: this build has no desktop window yet; "
                                         "running headless (pass --no-gui to say so)"));
    }
    const quint64 files = raiseOpenFileLimit();
    qCInfo(lcApp) << "open-file limit" << files;

    QThread worker;
    worker.setObjectName(QStringLiteral("proxy"));
    // The proxy's thread holds every waiting client's socket: Qt's own dispatchers cost time
    // proportional to their number on every event, epoll does not.
    if (qgetenv("LLMPROXY_DISPATCHER") != "qt")
        EpollEventDispatcher::installOn(&worker);
    auto *service = new ProxyService(config);
    service->moveToThread(&worker);
    QObject::connect(&worker, &QThread::finished, service, &QObject::deleteLater);

    int exitCode = 0;
    QObject::connect(service, &ProxyService::started, &app, [&config](const QList<quint16> &ports) {
        for (qsizetype i = 0; i < config.listen.size() && i < ports.size(); ++i) {
            const QHostAddress &address = config.listen.at(i).address;
            const QString host = address.protocol() == QAbstractSocket::IPv6Protocol
                                     ? QLatin1Char('[') + address.toString() + QLatin1Char(']')
                                     : address.toString();
            printLine(stdout, QStringLiteral("llm-proxy listening on http://%1:%2/v1")
                                  .arg(host)
                                  .arg(ports.at(i)));
        }
    });
    QObject::connect(service, &ProxyService::startFailed, &app, [&exitCode](const QString &error) {
        printLine(stderr, QStringLiteral("llm-proxy: ") + error);
        exitCode = 1;
        QCoreApplication::exit(1);
    });
    QObject::connect(service, &ProxyService::stopped, &app, [] { QCoreApplication::quit(); });
    watchTerminationSignals(&app, [service](int signal) {
        qCInfo(lcApp) << "signal" << signal << "- stopping";
        QMetaObject::invokeMethod(service, &ProxyService::stop, Qt::QueuedConnection);
    });

    worker.start();
    QMetaObject::invokeMethod(service, &ProxyService::start, Qt::QueuedConnection);
    const int loopResult = QCoreApplication::exec();
    worker.quit();
    worker.wait();
    return exitCode != 0 ? exitCode : loopResult;
}
