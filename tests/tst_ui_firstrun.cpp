// SPDX-License-Identifier: GPL-3.0-or-later
// The first-run panel (issue 15): on the dashboard until a request has been handled, back from
// Help → Connect a client; its copy button and snippets carry the real listen address; its test
// request goes through the real proxy (on its worker thread) to the fake provider and shows
// the outcome, a 401 in plain words without the key.

#include "fakeprovider.h"
#include "settings/settingsstore.h"
#include "ui/autostart.h"
#include "ui/dashboardpage.h"
#include "ui/desktopapp.h"
#include "ui/firstrunpanel.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/proxyhost.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"
#include "ui/startatlogincheckbox.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QFileInfo>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {

const QByteArray TestKey = "sk-firstrun-test-0123456789-wxyz";

quint16 freePort() {
    QTcpServer probe;
    if (!probe.listen(QHostAddress::LocalHost, 0))
        return 0;
    return probe.serverPort();
}

ProxySnapshot snapshotListening(const QString &url) {
    ProxySnapshot snapshot;
    snapshot.takenAt = QDateTime::currentDateTimeUtc();
    snapshot.listening = true;
    snapshot.listenUrls = {url};
    return snapshot;
}

} // namespace

class TestUiFirstRun final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void shownUntilTheFirstRequest();
    void shownAgainFromTheHelpMenu();
    void copyButtonCopiesTheBaseUrl();
    void snippetsCarryTheAddressAndTimeouts();
    void keyStateIsShown();
    void testRequestThroughTheProxy();
    void testRequestShowsA401();
    void testRequestCarriesTheProxyToken();
    void settingsTestConnection();
    void settingsStartAtLogin();

private:
    void buildApp(const QByteArray &key, const QList<ProxyToken> &tokens = {});
    void startProxy();
    FirstRunPanel *panel() const { return m_app->window()->dashboard()->firstRun(); }
    template <typename T>
    T *find(const char *name) const {
        return m_app->window()->findChild<T *>(QString::fromLatin1(name));
    }

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    std::unique_ptr<ProxyHost> m_host;
    std::unique_ptr<FakeProvider> m_fake;
    QTemporaryDir m_configHome; // XDG_CONFIG_HOME: never the user's autostart folder
};

void TestUiFirstRun::initTestCase() {
    // Never touch a real keychain from a test run.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    QVERIFY(m_configHome.isValid());
    qputenv("XDG_CONFIG_HOME", QFile::encodeName(m_configHome.path()));
}

void TestUiFirstRun::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-firstrun"));
    m_fake = std::make_unique<FakeProvider>();
    QVERIFY(m_fake->listen());
}

void TestUiFirstRun::cleanup() {
    if (m_host && m_host->state() != ProxyHost::State::Stopped) {
        QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
        m_host->stop();
        QVERIFY(stopped.wait(10'000));
    }
    m_host.reset();
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_fake.reset();
    m_dir.reset();
}

void TestUiFirstRun::buildApp(const QByteArray &key, const QList<ProxyToken> &tokens) {
    Config config = m_store->load();
    config.tokens = tokens;
    config.dataDir = m_dir->filePath(QStringLiteral("data"));
    config.upstream = m_fake->baseUrl();
    const quint16 port = freePort();
    QVERIFY(port != 0);
    config.listen = {ListenAddress{QHostAddress::LocalHost, port}};
    config.listenText = QStringLiteral("127.0.0.1:%1").arg(port);
    config.apiKey = key;
    m_settings = std::make_unique<SettingsController>(m_store.get(), m_keys.get(), config, key);
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
    m_settings->loadKey();
}

void TestUiFirstRun::startProxy() {
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));
    QTRY_VERIFY_WITH_TIMEOUT(!panel()->baseUrl().isEmpty(), 10'000);
}

void TestUiFirstRun::shownUntilTheFirstRequest() {
    buildApp(QByteArray());
    QVERIFY(panel()->isVisible());
    m_app->showSnapshot(snapshotListening(QStringLiteral("http://127.0.0.1:3030/v1")));
    QVERIFY(panel()->isVisible());

    ProxySnapshot handled = snapshotListening(QStringLiteral("http://127.0.0.1:3030/v1"));
    handled.stats.relayed = 1;
    m_app->showSnapshot(handled);
    QVERIFY(!panel()->isVisible());
    // It stays hidden: later snapshots with nothing waiting do not bring it back.
    m_app->showSnapshot(snapshotListening(QStringLiteral("http://127.0.0.1:3030/v1")));
    QVERIFY(!panel()->isVisible());
}

void TestUiFirstRun::shownAgainFromTheHelpMenu() {
    buildApp(QByteArray());
    auto *hide = find<QPushButton>("firstRunHideButton");
    QVERIFY(hide);
    QTest::mouseClick(hide, Qt::LeftButton);
    QVERIFY(panel()->isHidden());
    // Hidden by the user, it does not come back with the next snapshot.
    m_app->showSnapshot(snapshotListening(QStringLiteral("http://127.0.0.1:3030/v1")));
    QVERIFY(panel()->isHidden());
    m_app->window()->tabs()->setCurrentIndex(1);
    auto *action = find<QAction>("connectClientAction");
    QVERIFY(action);
    action->trigger();
    QCOMPARE(m_app->window()->tabs()->currentWidget(), m_app->window()->dashboard());
    QVERIFY(panel()->isVisible());
}

void TestUiFirstRun::copyButtonCopiesTheBaseUrl() {
    buildApp(QByteArray());
    auto *copy = find<QPushButton>("firstRunCopyButton");
    QVERIFY(copy);
    QVERIFY(!copy->isEnabled()); // not listening yet
    // A wildcard listen address is given to clients as loopback.
    m_app->showSnapshot(snapshotListening(QStringLiteral("http://0.0.0.0:4041/v1")));
    QVERIFY(copy->isEnabled());
    QCOMPARE(find<QLabel>("firstRunUrlLabel")->text(), QStringLiteral("http://127.0.0.1:4041/v1"));
    QApplication::clipboard()->clear();
    QSignalSpy copied(panel(), &FirstRunPanel::baseUrlCopied);
    QTest::mouseClick(copy, Qt::LeftButton);
    QCOMPARE(copied.count(), 1);
    QCOMPARE(QApplication::clipboard()->text(), QStringLiteral("http://127.0.0.1:4041/v1"));
}

void TestUiFirstRun::snippetsCarryTheAddressAndTimeouts() {
    buildApp(QByteArray());
    m_app->showSnapshot(snapshotListening(QStringLiteral("http://127.0.0.1:4042/v1")));
    const QString python = find<QPlainTextEdit>("snippetPython")->toPlainText();
    const QString node = find<QPlainTextEdit>("snippetNode")->toPlainText();
    const QString curl = find<QPlainTextEdit>("snippetCurl")->toPlainText();
    QVERIFY2(python.contains(QStringLiteral("base_url=\"http://127.0.0.1:4042/v1\"")),
             qPrintable(python));
    QVERIFY(python.contains(QStringLiteral("timeout=3600")));
    QVERIFY2(node.contains(QStringLiteral("baseURL: \"http://127.0.0.1:4042/v1\"")),
             qPrintable(node));
    QVERIFY(node.contains(QStringLiteral("timeout: 3_600_000")));
    QVERIFY(node.contains(QStringLiteral("headersTimeout: 3_600_000")));
    QVERIFY(node.contains(QStringLiteral("bodyTimeout: 3_600_000")));
    QVERIFY2(curl.contains(QStringLiteral("http://127.0.0.1:4042/v1/chat/completions")),
             qPrintable(curl));
    QVERIFY(curl.contains(QStringLiteral("--max-time 3600")));
    // No key here: the client must send its own.
    QVERIFY(curl.contains(QStringLiteral("Authorization: Bearer $OPENAI_API_KEY")));
    QVERIFY(!python.contains(QStringLiteral("api_key")));
    // Claude: the Anthropic SDK's base URL is the proxy's root (it adds /v1/messages itself).
    const QString claude = find<QPlainTextEdit>("snippetAnthropic")->toPlainText();
    QVERIFY2(claude.contains(QStringLiteral("base_url=\"http://127.0.0.1:4042\", timeout=3600")),
             qPrintable(claude));
    QVERIFY(claude.contains(QStringLiteral("ANTHROPIC_BASE_URL=http://127.0.0.1:4042 claude")));
    QVERIFY(!claude.contains(QStringLiteral("api_key")));
    // With proxy tokens, the token is the SDK's key.
    const QString withToken = FirstRunPanel::snippetFor(FirstRunPanel::Language::Anthropic,
                                                        QStringLiteral("http://127.0.0.1:4042/v1"),
                                                        false, "tok-first-run-0123456789");
    QVERIFY2(withToken.contains(QStringLiteral("api_key=\"tok-first-run-0123456789\"")),
             qPrintable(withToken));
    QVERIFY(withToken.startsWith(QStringLiteral("import os\n")));
}

void TestUiFirstRun::keyStateIsShown() {
    buildApp(QByteArray());
    QVERIFY(find<QLabel>("firstRunKeyLabel")->text().startsWith(QStringLiteral("No key")));
    cleanup();
    init();
    buildApp(TestKey);
    const QString text = find<QLabel>("firstRunKeyLabel")->text();
    QVERIFY2(text.startsWith(QStringLiteral("A key is configured (…wxyz")), qPrintable(text));
    QVERIFY(!text.contains(QString::fromLatin1(TestKey)));
    // With a key in the proxy, clients send a placeholder and no Authorization of their own.
    QVERIFY(find<QPlainTextEdit>("snippetPython")
                ->toPlainText()
                .contains(QStringLiteral("api_key=\"unused\"")));
    QVERIFY(!find<QPlainTextEdit>("snippetCurl")
                 ->toPlainText()
                 .contains(QStringLiteral("Authorization")));
}

void TestUiFirstRun::testRequestThroughTheProxy() {
    buildApp(TestKey);
    startProxy();
    auto *button = find<QPushButton>("firstRunTestButton");
    QVERIFY(button);
    QVERIFY(button->isEnabled());
    QSignalSpy finished(panel(), &FirstRunPanel::testFinished);
    QTest::mouseClick(button, Qt::LeftButton);
    QVERIFY(finished.wait(15'000));
    QCOMPARE(finished.first().first().toBool(), true);
    const QString outcome = find<QLabel>("firstRunTestOutcome")->text();
    QVERIFY2(outcome.startsWith(QStringLiteral("Works: 200 in ")), qPrintable(outcome));
    QVERIFY2(outcome.contains(QStringLiteral("listed 4 models")), qPrintable(outcome));
    // It went through the proxy's relay, with the configured key.
    QCOMPARE(m_fake->count("GET", "/v1/models"), 1);
    QCOMPARE(m_fake->requests().constLast().headers.value("authorization"),
             QByteArrayLiteral("Bearer ") + TestKey);
    // The panel stays while its outcome is read, though a request was handled now.
    QTRY_VERIFY_WITH_TIMEOUT(
        m_app->window()->findChild<QLabel *>(QStringLiteral("relayedValue"))->text() ==
            QStringLiteral("1"),
        5'000);
    QVERIFY(panel()->isVisible());
}

// With proxy tokens every request needs one: the test request sends the first token, and the
// provider sees the configured key in its place.
void TestUiFirstRun::testRequestCarriesTheProxyToken() {
    const QByteArray token = "llmp-firstrunTOKENabcdefghijklmnopqrs";
    buildApp(TestKey, {ProxyToken{"laptop", token}});
    startProxy();
    QSignalSpy finished(panel(), &FirstRunPanel::testFinished);
    QTest::mouseClick(find<QPushButton>("firstRunTestButton"), Qt::LeftButton);
    QVERIFY(finished.wait(15'000));
    const QString outcome = find<QLabel>("firstRunTestOutcome")->text();
    QVERIFY2(finished.first().first().toBool(), qPrintable(outcome));
    QCOMPARE(m_fake->count("GET", "/v1/models"), 1);
    QCOMPARE(m_fake->requests().constLast().headers.value("authorization"),
             QByteArrayLiteral("Bearer ") + TestKey);
    QVERIFY(!outcome.contains(QString::fromLatin1(token)));
}

void TestUiFirstRun::testRequestShowsA401() {
    buildApp(TestKey);
    m_fake->setAcceptedKey("sk-some-other-key-000000000000");
    startProxy();
    QSignalSpy finished(panel(), &FirstRunPanel::testFinished);
    QTest::mouseClick(find<QPushButton>("firstRunTestButton"), Qt::LeftButton);
    QVERIFY(finished.wait(15'000));
    QCOMPARE(finished.first().first().toBool(), false);
    const QString outcome = find<QLabel>("firstRunTestOutcome")->text();
    QVERIFY2(outcome.startsWith(QStringLiteral("Failed: HTTP 401 in ")), qPrintable(outcome));
    QVERIFY2(outcome.contains(QStringLiteral("the provider refused the configured key")),
             qPrintable(outcome));
    QVERIFY2(outcome.contains(QStringLiteral("Incorrect API key provided")), qPrintable(outcome));
    QVERIFY(!outcome.contains(QString::fromLatin1(TestKey)));
}

void TestUiFirstRun::settingsTestConnection() {
    buildApp(TestKey);
    m_fake->setAcceptedKey(TestKey);
    // The Settings page's (the Providers page has one of its own).
    SettingsPage *settings = m_app->window()->settings();
    auto *button = settings->findChild<QPushButton *>(QStringLiteral("testConnectionButton"));
    auto *result = settings->findChild<QLabel *>(QStringLiteral("testConnectionResult"));
    QVERIFY(button);
    QVERIFY(result);
    QTest::mouseClick(button, Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(result->text().startsWith(QStringLiteral("Fine: ")), 10'000);
    QVERIFY2(result->text().contains(QStringLiteral("4 models")), qPrintable(result->text()));
    // The saved key went upstream, and shows nowhere.
    QCOMPARE(m_fake->requests().constLast().headers.value("authorization"),
             QByteArray("Bearer " + TestKey));
    QVERIFY(!result->text().contains(QString::fromLatin1(TestKey)));

    m_fake->setAcceptedKey("sk-another-key-0000000000000");
    QTest::mouseClick(button, Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(result->text().startsWith(QStringLiteral("401: ")), 10'000);
    QVERIFY2(result->text().contains(QStringLiteral("refused the key")),
             qPrintable(result->text()));
}

void TestUiFirstRun::settingsStartAtLogin() {
    buildApp(QByteArray());
    auto *box = find<QCheckBox>("startAtLoginCheck");
    QVERIFY(box);
    const QString entry =
        m_configHome.filePath(QStringLiteral("autostart/io.github.llm_proxy.desktop"));
    QVERIFY(!box->isChecked());
    box->setChecked(true);
    QVERIFY(QFileInfo::exists(entry));
    QVERIFY(Autostart().isEnabled());
    box->setChecked(false);
    QVERIFY(!QFileInfo::exists(entry));
}

QTEST_MAIN(TestUiFirstRun)
#include "tst_ui_firstrun.moc"
