// SPDX-License-Identifier: GPL-3.0-or-later
// The composition root: read the saved settings and the command line, then run the proxy on its
// worker thread, with the desktop app (tray, dashboard, settings) or headless (--no-gui).
// Both modes stop cleanly on SIGINT/SIGTERM.

#include "api/logging.h"
#include "processlimits.h"
#include "report.h"
#include "settings/config.h"
#include "settings/settingsstore.h"
#include "ui/keystore.h"
#include "ui/proxyhost.h"
#include "ui/settingscontroller.h"
#ifdef LLMPROXY_WITH_GUI
#include "ui/desktopapp.h"
#include "ui/icons.h"
#include "ui/mainwindow.h"
#include "ui/screenshot.h"
#include "ui/singleinstance.h"

#include <QApplication>
#endif

#include <QCoreApplication>
#include <QDateTime>
#include <QLoggingCategory>
#include <QTimer>

#include <cstdio>
#include <memory>

using namespace llmproxy;

namespace {

void printLine(FILE *stream, const QString &text) {
    const QByteArray bytes = text.toLocal8Bit() + '\n';
    std::fwrite(bytes.constData(), 1, size_t(bytes.size()), stream);
    std::fflush(stream);
}

#ifdef LLMPROXY_WITH_GUI
bool hasDisplay() {
    return !qEnvironmentVariableIsEmpty("DISPLAY") ||
           !qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY") ||
           !qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM");
}

#endif

void printListening(const Config &config, const QList<quint16> &ports) {
    for (qsizetype i = 0; i < config.listen.size() && i < ports.size(); ++i) {
        const QHostAddress &address = config.listen.at(i).address;
        const QString host = address.protocol() == QAbstractSocket::IPv6Protocol
                                 ? QLatin1Char('[') + address.toString() + QLatin1Char(']')
                                 : address.toString();
        printLine(
            stdout,
            QStringLiteral("llm-proxy listening on http://%1:%2/v1").arg(host).arg(ports.at(i)));
    }
}

} // namespace

int main(int argc, char *argv[]) {
    // Settings decide between the desktop app and headless, so they are read before the
    // application object exists.
    QCoreApplication::setApplicationName(QStringLiteral("llm-proxy"));
    QCoreApplication::setApplicationVersion(QStringLiteral(LLMPROXY_VERSION));
    QStringList args;
    for (int i = 0; i < argc; ++i)
        args.append(QString::fromLocal8Bit(argv[i]));

    SettingsStore store(SettingsStore::defaultFilePath());
    QStringList settingsProblems;
    const Config stored = store.load(&settingsProblems);
    if (args.contains(QStringLiteral("--report"))) {
        // A one-shot command: the ledger as a receipt, without starting the proxy.
        QCoreApplication reportApp(argc, argv);
        const std::optional<ReportOutcome> report =
            runReportCommand(args, stored.dataDir.isEmpty() ? defaultDataDir() : stored.dataDir,
                             QDateTime::currentMSecsSinceEpoch());
        if (!report->out.isEmpty())
            printLine(stdout, report->out);
        if (!report->err.isEmpty())
            printLine(stderr, report->err);
        return report->exitCode;
    }
    const QByteArray environmentKey = qgetenv("OPENAI_API_KEY");
    const CommandLine commandLine = parseCommandLine(args, environmentKey, stored);
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
    const bool screenshot = !config.screenshotPath.isEmpty();
#ifdef LLMPROXY_WITH_GUI
    bool gui = !config.noGui;
    if (gui && !hasDisplay()) {
        if (screenshot) {
            qputenv("QT_QPA_PLATFORM", "offscreen"); // a picture needs no screen
        } else {
            printLine(stderr, QStringLiteral("llm-proxy: no display found; running headless "
                                             "(pass --no-gui to say so)"));
            gui = false;
        }
    }
    std::unique_ptr<QCoreApplication> app = gui ? std::make_unique<QApplication>(argc, argv)
                                                : std::make_unique<QCoreApplication>(argc, argv);
#else
    // The headless build: the same proxy, no desktop app.
    if (screenshot) {
        printLine(stderr, QStringLiteral("llm-proxy: --screenshot needs the desktop app, and "
                                         "this is the headless build"));
        return 2;
    }
    const bool gui = false;
    auto app = std::make_unique<QCoreApplication>(argc, argv);
#endif
    qSetMessagePattern(QStringLiteral("%{time yyyy-MM-ddThh:mm:ss.zzz} %{type} %{category}: "
                                      "%{message}"));
    if (config.verbose)
        QLoggingCategory::setFilterRules(QStringLiteral("llmproxy.*.debug=true"));
    for (const QString &problem : std::as_const(settingsProblems))
        qCWarning(lcApp).noquote() << store.filePath() + QStringLiteral(": ") + problem;
    const quint64 files = raiseOpenFileLimit();
    qCInfo(lcApp) << "open-file limit" << files;

    KeyStore keys;
    SettingsController settings(&store, &keys, config, environmentKey);
    ProxyHost host;
    int exitCode = 0;

    QObject::connect(
        &host, &ProxyHost::started, app.get(),
        [&settings](const QList<quint16> &ports) { printListening(settings.config(), ports); });
    // exit(), not quit(): in a GUI app, quit() first asks every window to close, and ours only
    // hides (tray) or asks to stop the proxy, which is how we got here.
    QObject::connect(&host, &ProxyHost::stopped, app.get(), [] { QCoreApplication::exit(0); });
    QObject::connect(&settings, &SettingsController::ready, &host,
                     [&host, &settings, &exitCode, gui] {
                         // A key from the keychain is known only now: the command line's
                         // check again (the desktop app shows the service's refusal instead).
                         const QString exposed = exposureProblem(settings.config());
                         if (!gui && !exposed.isEmpty()) {
                             printLine(stderr, exposed);
                             exitCode = 2;
                             QCoreApplication::exit(2);
                             return;
                         }
                         host.start(settings.config());
                     });
    QObject::connect(&settings, &SettingsController::configChanged, &host, &ProxyHost::applyConfig);
    watchTerminationSignals(app.get(), [&host](int signal) {
        qCInfo(lcApp) << "signal" << signal << "- stopping";
        host.stop();
    });

    if (!gui) {
        QObject::connect(&host, &ProxyHost::startFailed, app.get(),
                         [&exitCode](const QString &error) {
                             printLine(stderr, QStringLiteral("llm-proxy: ") + error);
                             exitCode = 1;
                             QCoreApplication::exit(1);
                         });
        QObject::connect(&settings, &SettingsController::message, app.get(),
                         [](const QString &text, bool isError) {
                             if (isError)
                                 printLine(stderr, QStringLiteral("llm-proxy: ") + text);
                         });
        settings.loadKey();
        const int loopResult = QCoreApplication::exec();
        return exitCode != 0 ? exitCode : loopResult;
    }

#ifdef LLMPROXY_WITH_GUI
    // The desktop app: one per user and settings file.
    QApplication::setQuitOnLastWindowClosed(false);
    QApplication::setWindowIcon(icons::application());
    SingleInstance instance(SingleInstance::socketPathFor(store.filePath()));
    std::unique_ptr<DesktopApp> desktop;
    QObject::connect(&instance, &SingleInstance::alreadyRunning, app.get(), [] {
        printLine(stdout, QStringLiteral("llm-proxy is already running; its window was brought "
                                         "forward"));
        QCoreApplication::exit(0);
    });
    QObject::connect(&instance, &SingleInstance::failed, app.get(),
                     [&exitCode](const QString &why) {
                         printLine(stderr, QStringLiteral("llm-proxy: ") + why);
                         exitCode = 1;
                         QCoreApplication::exit(1);
                     });
    QObject::connect(&instance, &SingleInstance::becamePrimary, app.get(), [&] {
        desktop = std::make_unique<DesktopApp>(&settings);
        DesktopApp *view = desktop.get();
        QObject::connect(&host, &ProxyHost::snapshotReady, view, &DesktopApp::showSnapshot);
        QObject::connect(&host, &ProxyHost::batchFinished, view, &DesktopApp::showBatchFinished);
        QObject::connect(&host, &ProxyHost::listenFailed, view, &DesktopApp::showListenFailed);
        QObject::connect(&host, &ProxyHost::startFailed, view, &DesktopApp::showStartFailed);
        QObject::connect(&host, &ProxyHost::moneyReady, view, &DesktopApp::showMoney);
        QObject::connect(&host, &ProxyHost::pricesReloaded, view, &DesktopApp::showPricesReloaded);
        QObject::connect(view, &DesktopApp::pricesChanged, &host, &ProxyHost::reloadPrices);
        // The money figures now (the proxy may have started before the window), and again now
        // and then, so "today" turns over at midnight without a request.
        host.refreshMoney();
        auto *moneyClock = new QTimer(view);
        QObject::connect(moneyClock, &QTimer::timeout, &host, &ProxyHost::refreshMoney);
        moneyClock->start(std::chrono::minutes(5));
        QObject::connect(view, &DesktopApp::pauseRequested, &host, &ProxyHost::setPaused);
        QObject::connect(view, &DesktopApp::flushRequested, &host, &ProxyHost::flushNow);
        QObject::connect(view, &DesktopApp::quitRequested, &host, &ProxyHost::stop);
        QObject::connect(&instance, &SingleInstance::activationRequested, view, [view] {
            qCInfo(lcApp) << "another launch asked for the window";
            view->activate();
        });
        if (screenshot) {
            // Serve for the delay, then save the window and quit; a proxy that could not start
            // is pictured too, but the exit status says so.
            const auto shoot = [&, view](bool served) {
                QTimer::singleShot(config.screenshotDelay, view, [&, view, served] {
                    const QString error = saveScreenshots(view->window(), config.screenshotPath,
                                                          config.screenshotPages);
                    if (!error.isEmpty()) {
                        printLine(stderr, QStringLiteral("llm-proxy: --screenshot: ") + error);
                        exitCode = 1;
                    } else if (!served) {
                        exitCode = 1;
                    }
                    host.stop();
                });
            };
            QObject::connect(&host, &ProxyHost::started, view, [shoot] { shoot(true); });
            QObject::connect(&host, &ProxyHost::startFailed, view, [shoot] { shoot(false); });
        }
        view->show(config.startInTray);
        settings.loadKey();
    });
    instance.start();
    const int loopResult = QCoreApplication::exec();
    desktop.reset(); // the window goes before the application object
    return exitCode != 0 ? exitCode : loopResult;
#endif
}
