// SPDX-License-Identifier: GPL-3.0-or-later
// The tray: its menu holds the shared actions, and pause / send now / quit reach a real
// ProxyService on its worker thread (with the fake provider upstream); its state and tooltip
// follow the snapshots; notifications for finished and failed batches can be turned off.
// Offscreen there is no system tray: the window shows instead, and closing it asks to quit.

#include "fakeprovider.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "ui/appactions.h"
#include "ui/batchtablemodel.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/proxyhost.h"
#include "ui/settingscontroller.h"
#include "ui/traycontroller.h"

#include <QMenu>
#include <QNetworkReply>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QSystemTrayIcon>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

class TestUiTray final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void menu();
    void stateAndToolTipFollowSnapshots();
    void noTrayShowsTheWindow();
    void showActionBringsTheWindowBack();
    void pauseReachesTheCore();
    void flushReachesTheCore();
    void quitStopsTheCore();
    void notifications();
    void realTray();
    void realTrayChild();

private:
    void startProxy(std::chrono::milliseconds batchWindow);
    ProxySnapshot waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until);

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    std::unique_ptr<FakeProvider> m_fake;
    std::unique_ptr<ProxyHost> m_host;
    std::unique_ptr<TestClient> m_client;
    quint16 m_port = 0;
};

void TestUiTray::initTestCase() {
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
}

void TestUiTray::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-tray"));
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data"));
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), config, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
}

void TestUiTray::cleanup() {
    if (m_host && m_host->state() != ProxyHost::State::Stopped) {
        QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
        m_host->stop();
        QVERIFY(stopped.wait(10'000));
    }
    m_client.reset();
    m_host.reset();
    m_fake.reset();
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
}

void TestUiTray::startProxy(std::chrono::milliseconds batchWindow) {
    m_fake = std::make_unique<FakeProvider>();
    QVERIFY(m_fake->listen());
    m_fake->setValidationDelay(10ms);
    m_fake->setProcessingDelay(30ms);
    m_fake->setFinalizingDelay(10ms);
    Config config = m_settings->config();
    config.upstream = m_fake->baseUrl();
    config.batchWindow = batchWindow;
    config.pollInterval = 100ms;
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    // Wired as the composition root wires them.
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::batchFinished, m_app.get(), &DesktopApp::showBatchFinished);
    connect(m_app.get(), &DesktopApp::pauseRequested, m_host.get(), &ProxyHost::setPaused);
    connect(m_app.get(), &DesktopApp::flushRequested, m_host.get(), &ProxyHost::flushNow);
    connect(m_app.get(), &DesktopApp::quitRequested, m_host.get(), &ProxyHost::stop);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(config);
    QVERIFY(started.wait(10'000));
    m_port = started.constFirst().constFirst().value<QList<quint16>>().constFirst();
    m_client = std::make_unique<TestClient>();
    m_client->setPort(m_port);
}

ProxySnapshot TestUiTray::waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until) {
    ProxySnapshot last;
    bool seen = false;
    const QMetaObject::Connection connection =
        connect(m_host.get(), &ProxyHost::snapshotReady, this, [&](const ProxySnapshot &s) {
            if (!seen)
                last = s;
            seen = seen || until(s);
        });
    const bool arrived = QTest::qWaitFor([&] { return seen; }, 10'000);
    disconnect(connection);
    Q_UNUSED(arrived) // the caller checks the snapshot it gets
    return last;
}

void TestUiTray::menu() {
    const QList<QAction *> actions = m_app->tray()->menu()->actions();
    QStringList names;
    for (const QAction *action : actions) {
        if (!action->isSeparator())
            names.append(action->objectName());
    }
    QCOMPARE(names,
             (QStringList{QStringLiteral("showDashboardAction"), QStringLiteral("pauseAction"),
                          QStringLiteral("flushAction"), QStringLiteral("quitAction")}));
    QVERIFY(m_app->actions()->pause()->isCheckable());
}

void TestUiTray::stateAndToolTipFollowSnapshots() {
    TrayController *tray = m_app->tray();
    ProxySnapshot snapshot;
    snapshot.takenAt = QDateTime::currentDateTimeUtc();
    snapshot.listening = true;
    m_app->showSnapshot(snapshot);
    QCOMPARE(tray->state(), TrayState::Idle);
    snapshot.stats.queued = 7;
    m_app->showSnapshot(snapshot);
    QCOMPARE(tray->state(), TrayState::Waiting);
    QVERIFY2(tray->toolTip().contains(QStringLiteral("7 waiting, 0 batches out")),
             qPrintable(tray->toolTip()));
    snapshot.stats.inFlight = 40;
    m_app->showSnapshot(snapshot);
    QCOMPARE(tray->state(), TrayState::BatchesOut);
    QVERIFY(tray->toolTip().contains(QStringLiteral("(40 requests in flight)")));
    snapshot.listening = false;
    m_app->showSnapshot(snapshot);
    QCOMPARE(tray->state(), TrayState::Error);
    QVERIFY(tray->toolTip().contains(QStringLiteral("Not listening")));
}

void TestUiTray::noTrayShowsTheWindow() {
    QVERIFY2(!QSystemTrayIcon::isSystemTrayAvailable(), "this test expects the offscreen platform");
    QVERIFY(!m_app->hasTray());
    QVERIFY(m_app->window()->isVisible());
    QSignalSpy quit(m_app.get(), &DesktopApp::quitRequested);
    m_app->window()->close(); // no tray to hide in: closing the window quits
    QCOMPARE(quit.count(), 1);

    // Started at login with no tray to hide in: the window shows, or nothing would.
    m_app.reset();
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show(true);
    QVERIFY(!m_app->hasTray());
    QVERIFY(m_app->window()->isVisible());
}

void TestUiTray::showActionBringsTheWindowBack() {
    m_app->window()->hide();
    m_app->actions()->showDashboard()->trigger();
    QVERIFY(m_app->window()->isVisible());
}

void TestUiTray::pauseReachesTheCore() {
    startProxy(1h);
    QAction *pause = m_app->actions()->pause();
    QVERIFY(!pause->isChecked());
    pause->trigger();
    QVERIFY(waitForSnapshot([](const ProxySnapshot &s) { return s.paused; }).paused);
    QVERIFY(pause->isChecked());
    QVERIFY(m_app->tray()->toolTip().contains(QStringLiteral("Paused")));
    // Paused: a request is held even when asked to send now.
    QNetworkReply *reply = m_client->send("POST", "/v1/chat/completions", chatBody("held"));
    QCOMPARE(
        waitForSnapshot([](const ProxySnapshot &s) { return s.stats.queued == 1; }).stats.queued,
        quint64(1));
    m_app->actions()->flush()->trigger();
    QTest::qWait(300);
    QCOMPARE(m_fake->batches().size(), 0);
    pause->trigger(); // resume
    QVERIFY(!waitForSnapshot([](const ProxySnapshot &s) { return !s.paused; }).paused);
    m_app->actions()->flush()->trigger();
    QVERIFY(TestClient::finished(reply));
    QCOMPARE(TestClient::status(reply), 200);
    QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: held"));
}

void TestUiTray::flushReachesTheCore() {
    startProxy(1h); // nothing would go out for an hour
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    QList<QNetworkReply *> replies;
    for (int i = 0; i < 3; ++i)
        replies.append(
            m_client->send("POST", "/v1/chat/completions", chatBody("q" + QByteArray::number(i))));
    QCOMPARE(
        waitForSnapshot([](const ProxySnapshot &s) { return s.stats.queued == 3; }).stats.queued,
        quint64(3));
    QTRY_COMPARE(m_app->tray()->state(), TrayState::Waiting);
    m_app->actions()->flush()->trigger();
    for (int i = 0; i < replies.size(); ++i) {
        QVERIFY(TestClient::finished(replies.at(i)));
        QCOMPARE(TestClient::status(replies.at(i)), 200);
        QCOMPARE(chatContent(replies.at(i)->readAll()), QStringLiteral("echo: q%1").arg(i));
    }
    QCOMPARE(m_fake->batches().size(), 1);
    // The finished batch is announced, and lands in the history.
    QTRY_COMPARE_WITH_TIMEOUT(notified.count(), 1, 10'000);
    QCOMPARE(notified.constFirst().at(0).toString(), QStringLiteral("Batch finished"));
    QVERIFY(notified.constFirst().at(1).toString().contains(
        QString::fromUtf8(m_fake->batches().constFirst().id)));
    QTRY_COMPARE(m_app->finishedModel()->rowCount(), 1);
    QTRY_COMPARE(m_app->tray()->state(), TrayState::Idle);
}

void TestUiTray::quitStopsTheCore() {
    startProxy(1h);
    QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
    QNetworkReply *waiting = m_client->send("POST", "/v1/chat/completions", chatBody("bye"));
    QCOMPARE(
        waitForSnapshot([](const ProxySnapshot &s) { return s.stats.queued == 1; }).stats.queued,
        quint64(1));
    m_app->actions()->quit()->trigger();
    QVERIFY(stopped.wait(10'000));
    QCOMPARE(m_host->state(), ProxyHost::State::Stopped);
    // The waiting client is told to come back.
    QVERIFY(TestClient::finished(waiting));
    QCOMPARE(TestClient::status(waiting), 503);
}

void TestUiTray::notifications() {
    TrayController *tray = m_app->tray();
    QSignalSpy notified(tray, &TrayController::notified);
    BatchProgress batch;
    batch.localId = "l1";
    batch.batchId = "batch_123";
    batch.endpoint = "/v1/chat/completions";
    batch.model = "gpt-4o-mini";
    batch.active = false;
    batch.status = "completed";
    batch.total = 4;
    batch.completed = 4;
    tray->notifyBatchFinished(batch);
    QCOMPARE(notified.count(), 1);
    QCOMPARE(notified.at(0).at(0).toString(), QStringLiteral("Batch finished"));
    QVERIFY(notified.at(0).at(1).toString().contains(QStringLiteral("batch_123")));
    QVERIFY(notified.at(0).at(1).toString().contains(QStringLiteral("4 / 4")));

    batch.status = "failed";
    batch.errors = {QStringLiteral("token_limit_exceeded: too many tokens")};
    tray->notifyBatchFinished(batch);
    QCOMPARE(notified.count(), 2);
    QCOMPARE(notified.at(1).at(0).toString(), QStringLiteral("Batch failed"));
    QVERIFY(notified.at(1).at(1).toString().contains(QStringLiteral("too many tokens")));

    tray->setNotificationsEnabled(false);
    tray->notifyBatchFinished(batch);
    QCOMPARE(notified.count(), 2);
}

void TestUiTray::realTray() {
    if (qEnvironmentVariableIsSet("LLMPROXY_TEST_REAL_TRAY"))
        QSKIP("the parent's test");
    const QString xvfb = QStandardPaths::findExecutable(QStringLiteral("xvfb-run"));
    const QString docker = QStandardPaths::findExecutable(QStringLiteral("wmdocker"));
    if (xvfb.isEmpty() || docker.isEmpty())
        QSKIP("xvfb-run or wmdocker is not installed");
    QProcess child;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("LLMPROXY_TEST_REAL_TRAY"), QStringLiteral("1"));
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("xcb"));
    env.insert(QStringLiteral("XDG_RUNTIME_DIR"), m_dir->path());
    child.setProcessEnvironment(env);
    child.setProcessChannelMode(QProcess::MergedChannels);
    // A tray (wmdocker) on a virtual X server, then this program's realTrayChild.
    const QString script = QStringLiteral("wmdocker & docker=$!; sleep 1; \"$0\" realTrayChild; "
                                          "status=$?; kill $docker; exit $status");
    child.start(xvfb, {QStringLiteral("-a"), QStringLiteral("-s"),
                       QStringLiteral("-screen 0 1280x1024x24"), QStringLiteral("sh"),
                       QStringLiteral("-c"), script, QCoreApplication::applicationFilePath()});
    QVERIFY(child.waitForFinished(120'000));
    const QByteArray output = child.readAll();
    if (output.contains("SKIP   : TestUiTray::realTrayChild()"))
        QSKIP("no system tray appeared under Xvfb");
    QVERIFY2(child.exitStatus() == QProcess::NormalExit && child.exitCode() == 0,
             output.constData());
    QVERIFY2(output.contains("PASS   : TestUiTray::realTrayChild()"), output.constData());
}

void TestUiTray::realTrayChild() {
    if (!qEnvironmentVariableIsSet("LLMPROXY_TEST_REAL_TRAY"))
        QSKIP("runs under Xvfb with wmdocker, started by realTray()");
    if (!QTest::qWaitFor([] { return QSystemTrayIcon::isSystemTrayAvailable(); }, 10'000))
        QSKIP("no system tray");
    // A fresh app now that the tray exists.
    m_app.reset();
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
    QVERIFY(m_app->hasTray());
    QVERIFY(m_app->window()->isVisible());
    QSignalSpy quit(m_app.get(), &DesktopApp::quitRequested);
    m_app->window()->close(); // with a tray, closing only hides
    QVERIFY(!m_app->window()->isVisible());
    QCOMPARE(quit.count(), 0);
    m_app->actions()->showDashboard()->trigger();
    QVERIFY(m_app->window()->isVisible());
    m_app->actions()->quit()->trigger(); // the tray menu's Quit
    QCOMPARE(quit.count(), 1);

    // Started at login (--start-in-tray): only the tray icon, the window on request.
    m_app.reset();
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show(true);
    QVERIFY(m_app->hasTray());
    QVERIFY(!m_app->window()->isVisible());
    m_app->actions()->showDashboard()->trigger();
    QVERIFY(m_app->window()->isVisible());
}

QTEST_MAIN(TestUiTray)
#include "tst_ui_tray.moc"
