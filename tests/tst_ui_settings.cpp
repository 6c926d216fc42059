// SPDX-License-Identifier: GPL-3.0-or-later
// The settings page: values checked as typed with the command line's reasons next to them,
// Apply only when all are good; applied settings are saved (only those changed) and reach a
// real ProxyService on its worker thread: a new listen address re-binds in place, a taken port
// is reported next to the field; a proxy that could not start starts with the next address.
// The grace period is a setting like the others (empty means off) and reaches batches already
// out. The key field is write-only, and without a keychain the settings file is offered.

#include "fakeprovider.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "ui/accesssettings.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/proxyhost.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"
#include "ui/traycontroller.h"

#include <QCheckBox>
#include <QClipboard>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFrame>
#include <QGuiApplication>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QNetworkReply>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {
const QByteArray TestKey = "sk-settings-test-0123456789-zzzz";

quint16 freePort() {
    QTcpServer probe;
    if (!probe.listen(QHostAddress::LocalHost, 0))
        return 0;
    return probe.serverPort();
}
} // namespace

class TestUiSettings final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void formShowsConfig();
    void formHasARowForEveryWindowSetting();
    void countsStayWithinTheDeclaredBounds();
    void validatedAsTyped_data();
    void validatedAsTyped();
    void applySavesOnlyChangedSettings();
    void revert();
    void listenChangeRebindsTheCore();
    void takenPortIsReported();
    void startFailureRecoversWithNewAddress();
    void keyIsWriteOnlyAndFallsBackToFile();
    void notificationsToggle();
    void gracePeriodIsARealSetting();
    void gracePeriodBadValueIsNotApplied();
    void gracePeriodEmptyMeansOff();
    void gracePeriodReachesBatchesAlreadyOut();
    void accessListsApplyAndPersist();
    void badAccessEntryIsRefusedAsTyped_data();
    void badAccessEntryIsRefusedAsTyped();
    void generatedTokenIsSavedCopiedAndRequired();
    void removingATokenRewritesTheFile();
    void tokenWriteFailureIsShown();

private:
    Config baseConfig() const;
    void buildApp(const Config &effective);
    QLineEdit *edit(const char *name) const;
    QLabel *label(const char *name) const;
    void typeInto(const char *name, const QString &text);
    void clickApply();
    ProxySnapshot waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until);
    QPushButton *button(const char *name) const;
    quint16 startHost(); // the proxy on 127.0.0.1:0, fed by the controller; its port

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    std::unique_ptr<ProxyHost> m_host;
};

void TestUiSettings::initTestCase() {
    // Never touch a real keychain from a test run: this one has none.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    qunsetenv("DISPLAY");
}

void TestUiSettings::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-settings"));
}

void TestUiSettings::cleanup() {
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
    m_dir.reset();
}

Config TestUiSettings::baseConfig() const {
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data")); // never the user's queue
    config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1"));
    return config;
}

void TestUiSettings::buildApp(const Config &effective) {
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), effective, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
}

QLineEdit *TestUiSettings::edit(const char *name) const {
    return m_app->window()->findChild<QLineEdit *>(QString::fromLatin1(name));
}

QLabel *TestUiSettings::label(const char *name) const {
    return m_app->window()->findChild<QLabel *>(QString::fromLatin1(name));
}

void TestUiSettings::typeInto(const char *name, const QString &text) {
    if (auto *spin = m_app->window()->findChild<QSpinBox *>(QString::fromLatin1(name))) {
        spin->selectAll();
        QTest::keyClick(spin, Qt::Key_Backspace);
        QTest::keyClicks(spin, text);
        return;
    }
    QLineEdit *field = edit(name);
    QVERIFY2(field, name);
    field->selectAll();
    QTest::keyClick(field, Qt::Key_Backspace);
    QTest::keyClicks(field, text);
}

void TestUiSettings::clickApply() {
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    QVERIFY(apply);
    QVERIFY(apply->isEnabled());
    QTest::mouseClick(apply, Qt::LeftButton);
}

ProxySnapshot
TestUiSettings::waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until) {
    ProxySnapshot last;
    bool seen = false;
    QMetaObject::Connection connection =
        connect(m_host.get(), &ProxyHost::snapshotReady, this, [&](const ProxySnapshot &s) {
            last = s;
            seen = seen || until(s);
        });
    const bool arrived = QTest::qWaitFor([&] { return seen; }, 10'000);
    Q_UNUSED(arrived) // the caller checks the snapshot it gets
    disconnect(connection);
    return last;
}

// The page reads the table: an editor that fits the kind (a spin box within the declared
// bounds for a count, a line edit otherwise), an error label and the table's help text under
// it for every setting the window shows, labelled as declared (with a mnemonic) and filled
// with settingText; none for the others.
void TestUiSettings::formHasARowForEveryWindowSetting() {
    const Config config = baseConfig();
    buildApp(config);
    int rows = 0;
    const auto withoutMnemonic = [](QString text) { return text.remove(u'&'); };
    for (const SettingDeclaration &decl : settingDeclarations()) {
        const QByteArray name = QString(decl.objectName).toLatin1();
        if (!decl.shownInWindow()) {
            QVERIFY2(decl.objectName.isEmpty(), qPrintable(decl.optionName()));
            continue;
        }
        ++rows;
        auto *editor = m_app->window()->findChild<QWidget *>(QString::fromLatin1(name + "Edit"));
        QVERIFY2(editor, name.constData());
        QVERIFY(label(QByteArray(name + "Error").constData()));
        bool labelled = false;
        const auto labels = m_app->window()->findChildren<QLabel *>();
        if (decl.kind == SettingDeclaration::Kind::List) {
            // Edited entry by entry in the Access group, under the declared title.
            for (const QLabel *title : labels) {
                labelled = labelled || (withoutMnemonic(title->text()) == decl.label &&
                                        title->toolTip() == QString(decl.hint));
            }
            QVERIFY2(labelled, name.constData());
            continue;
        }
        auto *spin = qobject_cast<QSpinBox *>(editor);
        auto *line = qobject_cast<QLineEdit *>(editor);
        if (decl.kind == SettingDeclaration::Kind::Count) {
            QVERIFY2(spin, name.constData());
            QCOMPARE(spin->minimum(), int(decl.minimum));
            QCOMPARE(spin->maximum(), int(decl.maximum));
            QCOMPARE(QString::number(spin->value()), settingText(config, decl.setting));
        } else {
            QVERIFY2(line, name.constData());
            QCOMPARE(line->text(), settingText(config, decl.setting));
        }
        QCOMPARE(editor->toolTip(), QString(decl.hint));
        for (const QLabel *title : labels) {
            labelled = labelled ||
                       (title->buddy() == editor && withoutMnemonic(title->text()) == decl.label);
        }
        QVERIFY2(labelled, name.constData());
        // The one-line explanation: the table's help, with the default filled in.
        QLabel *help = label(QByteArray(name + "Help").constData());
        QVERIFY2(help, name.constData());
        QString expected = decl.help;
        if (expected.contains(QStringLiteral("%1")))
            expected = expected.arg(settingText(Config(), decl.setting));
        QCOMPARE(help->text(), expected);
        QVERIFY(help->wordWrap());
    }
    QVERIFY(rows >= 10);
}

// A count cannot leave its declared bounds in the window: the spin box stops at them, and the
// command line accepts every value it can hold.
void TestUiSettings::countsStayWithinTheDeclaredBounds() {
    buildApp(baseConfig());
    int counts = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (!decl.shownInWindow() || decl.kind != SettingDeclaration::Kind::Count)
            continue;
        ++counts;
        auto *spin = m_app->window()->findChild<QSpinBox *>(QString(decl.objectName) +
                                                            QStringLiteral("Edit"));
        QVERIFY(spin);
        const QByteArray name = QByteArray(decl.objectName.data(), decl.objectName.size()) + "Edit";
        typeInto(name.constData(), QString::number(decl.maximum + 1));
        QVERIFY(spin->value() <= decl.maximum);
        spin->setValue(int(decl.maximum) + 1);
        QCOMPARE(spin->value(), int(decl.maximum));
        spin->setValue(int(decl.minimum) - 1);
        QCOMPARE(spin->value(), int(decl.minimum));
        Config scratch;
        QCOMPARE(applySetting(scratch, decl.setting, QString::number(decl.minimum)), QString());
        QCOMPARE(applySetting(scratch, decl.setting, QString::number(decl.maximum)), QString());
        QVERIFY(!applySetting(scratch, decl.setting, QString::number(decl.maximum + 1)).isEmpty());
        spin->setValue(int(decl.minimum) + 1);
        QVERIFY(m_app->window()->settings()->isValid());
        QCOMPARE(settingText(m_app->window()->settings()->editedConfig(), decl.setting),
                 QString::number(decl.minimum + 1));
    }
    QVERIFY(counts >= 1);
}

void TestUiSettings::formShowsConfig() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("1500ms")), QString());
    buildApp(config);
    QCOMPARE(edit("listenEdit")->text(), QStringLiteral("localhost:3030"));
    QCOMPARE(edit("upstreamEdit")->text(), QStringLiteral("http://127.0.0.1:9/v1"));
    QCOMPARE(edit("batchWindowEdit")->text(), QStringLiteral("1500ms"));
    QCOMPARE(m_app->window()->findChild<QSpinBox *>(QStringLiteral("batchSizeEdit"))->value(),
             1000);
    QCOMPARE(edit("batchBytesEdit")->text(), QStringLiteral("25MB"));
    QCOMPARE(edit("pollIntervalEdit")->text(), QStringLiteral("10s"));
    QCOMPARE(edit("maxBodyEdit")->text(), QStringLiteral("32MiB"));
    QCOMPARE(edit("gracePeriodEdit")->text(), QStringLiteral("off"));
    for (const char *name :
         {"listenError", "upstreamError", "batchWindowError", "batchSizeError", "batchBytesError",
          "pollIntervalError", "maxBodyError", "gracePeriodError"}) {
        QVERIFY2(label(name), name);
        QVERIFY(label(name)->text().isEmpty());
    }
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
}

void TestUiSettings::validatedAsTyped_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("setting");
    QTest::addColumn<QString>("bad");
    QTest::addColumn<QString>("good");
    QTest::newRow("listen") << "listenEdit"
                            << "--listen"
                            << "example.com:80"
                            << "127.0.0.1:0";
    QTest::newRow("upstream") << "upstreamEdit"
                              << "--upstream"
                              << "ftp://x/v1"
                              << "https://example.com/v1";
    QTest::newRow("window") << "batchWindowEdit"
                            << "--batch-window"
                            << "4x"
                            << "2s";
    QTest::newRow("window range") << "batchWindowEdit"
                                  << "--batch-window"
                                  << "25h"
                                  << "24h";
    QTest::newRow("bytes") << "batchBytesEdit"
                           << "--batch-bytes"
                           << "1GB"
                           << "200MB";
    QTest::newRow("poll") << "pollIntervalEdit"
                          << "--poll-interval"
                          << "50ms"
                          << "100ms";
    QTest::newRow("body") << "maxBodyEdit"
                          << "--max-body"
                          << "12"
                          << "1KiB";
    QTest::newRow("grace") << "gracePeriodEdit"
                           << "--grace-period"
                           << "later"
                           << "90s";
    QTest::newRow("grace range") << "gracePeriodEdit"
                                 << "--grace-period"
                                 << "500ms"
                                 << "1s";
    QTest::newRow("grace too long") << "gracePeriodEdit"
                                    << "--grace-period"
                                    << "721h"
                                    << "720h";
}

void TestUiSettings::validatedAsTyped() {
    QFETCH(QString, field);
    QFETCH(QString, setting);
    QFETCH(QString, bad);
    QFETCH(QString, good);
    buildApp(baseConfig());
    const QByteArray name = field.toLatin1();
    const QByteArray errorName = field.chopped(4).toLatin1() + "Error";
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));

    typeInto(name.constData(), bad);
    // The reason is the command line's, word for word.
    const CommandLine line = parseCommandLine({QStringLiteral("llm-proxy"), setting + u'=' + bad});
    QCOMPARE(line.action, CommandLine::Action::Error);
    const QString reason = label(errorName.constData())->text();
    QVERIFY(!reason.isEmpty());
    QCOMPARE(QStringLiteral("llm-proxy: ") + setting + QStringLiteral(": ") + reason, line.message);
    QVERIFY(!apply->isEnabled());
    QVERIFY(!m_app->window()->settings()->isValid());

    typeInto(name.constData(), good);
    QVERIFY(label(errorName.constData())->text().isEmpty());
    QVERIFY(apply->isEnabled());
    QVERIFY(m_app->window()->settings()->isValid());
}

void TestUiSettings::applySavesOnlyChangedSettings() {
    // In force: batch size 5 from the command line (not stored).
    Config effective = baseConfig();
    QCOMPARE(applySetting(effective, Setting::BatchSize, QStringLiteral("5")), QString());
    buildApp(effective);
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("batchWindowEdit", QStringLiteral("750ms"));
    typeInto("maxBodyEdit", QStringLiteral("2MiB"));
    clickApply();
    QCOMPARE(configs.count(), 1);
    const Config applied = configs.constFirst().constFirst().value<Config>();
    QCOMPARE(applied.batchWindow, 750ms);
    QCOMPARE(applied.maxBody, qint64(2 * 1024 * 1024));
    QCOMPARE(applied.batchSize, 5);
    QCOMPARE(applied.dataDir, effective.dataDir);

    const Config stored = SettingsStore(m_store->filePath()).load();
    QCOMPARE(stored.batchWindow, 750ms);
    QCOMPARE(stored.maxBody, qint64(2 * 1024 * 1024));
    QCOMPARE(stored.batchSize, 1000); // the command line's value is not saved
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("batch window")));
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("largest body")));
    // The form now shows what is in force, and nothing is pending.
    QCOMPARE(edit("batchWindowEdit")->text(), QStringLiteral("750ms"));
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
}

void TestUiSettings::revert() {
    buildApp(baseConfig());
    typeInto("batchWindowEdit", QStringLiteral("nonsense"));
    auto *revert = m_app->window()->findChild<QPushButton *>(QStringLiteral("revertButton"));
    QVERIFY(revert->isEnabled());
    QTest::mouseClick(revert, Qt::LeftButton);
    QCOMPARE(edit("batchWindowEdit")->text(), QStringLiteral("4s"));
    QVERIFY(label("batchWindowError")->text().isEmpty());
}

void TestUiSettings::listenChangeRebindsTheCore() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::listenFailed, m_app.get(), &DesktopApp::showListenFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));

    const quint16 port = freePort();
    QVERIFY(port != 0);
    const QString target = QStringLiteral("http://127.0.0.1:%1/v1").arg(port);
    typeInto("listenEdit", QStringLiteral("127.0.0.1:%1").arg(port));
    clickApply();
    const ProxySnapshot snapshot =
        waitForSnapshot([&](const ProxySnapshot &s) { return s.listenUrls.contains(target); });
    QCOMPARE(snapshot.listenUrls, QStringList{target});
    QVERIFY(snapshot.listenError.isEmpty());
    QTRY_VERIFY(m_app->window()
                    ->findChild<QLabel *>(QStringLiteral("listenLabel"))
                    ->text()
                    .contains(target));
    QCOMPARE(SettingsStore(m_store->filePath()).load().listen.constFirst().port, port);
}

void TestUiSettings::takenPortIsReported() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::listenFailed, m_app.get(), &DesktopApp::showListenFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));
    const quint16 boundPort =
        started.constFirst().constFirst().value<QList<quint16>>().constFirst();

    QTcpServer squatter;
    QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
    QSignalSpy failed(m_host.get(), &ProxyHost::listenFailed);
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    typeInto("listenEdit", QStringLiteral("127.0.0.1:%1").arg(squatter.serverPort()));
    clickApply();
    QVERIFY(failed.wait(10'000));
    const QString error = failed.constFirst().constFirst().toString();
    QVERIFY2(error.contains(QString::number(squatter.serverPort())), qPrintable(error));
    // Said next to the field, and by a notification; the old address keeps serving.
    QTRY_COMPARE(label("listenError")->text(), error);
    QCOMPARE(notified.count(), 1);
    const ProxySnapshot snapshot =
        waitForSnapshot([](const ProxySnapshot &s) { return !s.listenError.isEmpty(); });
    QCOMPARE(snapshot.listenError, error);
    QVERIFY(snapshot.listening);
    QCOMPARE(snapshot.listenUrls,
             QStringList{QStringLiteral("http://127.0.0.1:%1/v1").arg(boundPort)});
}

void TestUiSettings::startFailureRecoversWithNewAddress() {
    QTcpServer squatter;
    QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen,
                          QStringLiteral("127.0.0.1:%1").arg(squatter.serverPort())),
             QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    connect(m_host.get(), &ProxyHost::startFailed, m_app.get(), &DesktopApp::showStartFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy startFailed(m_host.get(), &ProxyHost::startFailed);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(startFailed.wait(10'000));
    QCOMPARE(m_host->state(), ProxyHost::State::StartFailed);
    QVERIFY(!label("listenError")->text().isEmpty());

    typeInto("listenEdit", QStringLiteral("127.0.0.1:0"));
    clickApply();
    QVERIFY(started.wait(10'000));
    QCOMPARE(m_host->state(), ProxyHost::State::Running);
}

void TestUiSettings::keyIsWriteOnlyAndFallsBackToFile() {
    buildApp(baseConfig());
    QLineEdit *key = edit("apiKeyEdit");
    QVERIFY(key);
    QCOMPARE(key->echoMode(), QLineEdit::Password);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("No key stored")));
    auto *fallback = m_app->window()->findChild<QFrame *>(QStringLiteral("keyFallback"));
    QVERIFY(fallback && fallback->isHidden());

    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("apiKeyEdit", QString::fromUtf8(TestKey));
    clickApply();
    QVERIFY(key->text().isEmpty()); // never kept in the form
    QTRY_VERIFY_WITH_TIMEOUT(!fallback->isHidden(), 10'000);
    QVERIFY(label("keyFallbackText")->text().contains(QStringLiteral("No system keychain")));
    QVERIFY(label("keyFallbackText")->text().contains(QStringLiteral("0600")));
    QCOMPARE(configs.count(), 1);
    QCOMPARE(configs.constFirst().constFirst().value<Config>().apiKey, TestKey);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("not saved")));

    QTest::mouseClick(
        m_app->window()->findChild<QPushButton *>(QStringLiteral("keepKeyInFileButton")),
        Qt::LeftButton);
    QVERIFY(fallback->isHidden());
    QCOMPARE(m_store->keyLocation(), KeyLocation::File);
    const QString status = label("apiKeyStatus")->text();
    QVERIFY2(status.contains(QStringLiteral("settings file")), qPrintable(status));
    QVERIFY(status.contains(QStringLiteral("…zzzz")));
    // Nowhere in the window is the key shown.
    const QList<QLabel *> labels = m_app->window()->findChildren<QLabel *>();
    for (const QLabel *any : labels)
        QVERIFY(!any->text().contains(QStringLiteral("0123456789")));
    const QList<QLineEdit *> edits = m_app->window()->findChildren<QLineEdit *>();
    for (const QLineEdit *any : edits)
        QVERIFY(!any->text().contains(QStringLiteral("0123456789")));

    QTest::mouseClick(m_app->window()->findChild<QPushButton *>(QStringLiteral("forgetKeyButton")),
                      Qt::LeftButton);
    QCOMPARE(m_store->keyLocation(), KeyLocation::None);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("No key stored")));
    QVERIFY(m_settings->config().apiKey.isEmpty());
}

void TestUiSettings::notificationsToggle() {
    buildApp(baseConfig());
    auto *check = m_app->window()->findChild<QCheckBox *>(QStringLiteral("notificationsCheck"));
    QVERIFY(check && check->isChecked());
    QVERIFY(m_app->tray()->notificationsEnabled());
    check->click();
    QVERIFY(!m_store->notificationsEnabled());
    QVERIFY(!m_app->tray()->notificationsEnabled());
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    BatchProgress batch;
    batch.status = "completed";
    batch.active = false;
    m_app->showBatchFinished(batch);
    QCOMPARE(notified.count(), 0);
}

void TestUiSettings::gracePeriodIsARealSetting() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::GracePeriod, QStringLiteral("2h")), QString());
    buildApp(config);
    QLineEdit *grace = edit("gracePeriodEdit");
    QVERIFY(grace);
    QVERIFY(grace->isEnabled());
    QVERIFY(!grace->isReadOnly());
    QCOMPARE(grace->text(), QStringLiteral("2h"));
    QCOMPARE(grace->placeholderText(), QStringLiteral("off")); // what an empty field means
    QVERIFY(label("gracePeriodError"));
    QVERIFY(label("gracePeriodError")->text().isEmpty());
    QVERIFY(!edit("graceEdit")); // the old disabled placeholder is gone
    // Nothing in the window says it is still to come.
    const QList<QLabel *> labels = m_app->window()->findChildren<QLabel *>();
    for (const QLabel *any : labels)
        QVERIFY2(!any->text().contains(QStringLiteral("durable queue")), qPrintable(any->text()));
    QVERIFY(!grace->toolTip().contains(QStringLiteral("coming")));
}

void TestUiSettings::gracePeriodBadValueIsNotApplied() {
    buildApp(baseConfig());
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    typeInto("gracePeriodEdit", QStringLiteral("30d"));
    const QString reason = label("gracePeriodError")->text();
    QCOMPARE(reason, QStringLiteral("\"30d\" is not a duration or off (examples: 4s, 500ms, 0.5, "
                                    "2m)"));
    QVERIFY(!apply->isEnabled());
    // Return in the field applies only a valid form.
    QTest::keyClick(edit("gracePeriodEdit"), Qt::Key_Return);
    typeInto("gracePeriodEdit", QStringLiteral("0.5s"));
    QCOMPARE(label("gracePeriodError")->text(),
             QStringLiteral("\"0.5s\" is out of range (expected 1s to 30 days, or off)"));
    QTest::keyClick(edit("gracePeriodEdit"), Qt::Key_Return);
    QVERIFY(!apply->isEnabled());
    // A good value elsewhere does not carry the bad one along.
    typeInto("batchSizeEdit", QStringLiteral("7"));
    QVERIFY(!apply->isEnabled());
    QTest::mouseClick(apply, Qt::LeftButton);
    QCOMPARE(configs.count(), 0);
    QVERIFY(!m_settings->config().gracePeriod.has_value());
    QCOMPARE(m_settings->config().batchSize, 1000);
    const Config stored = SettingsStore(m_store->filePath()).load(); // nothing saved
    QVERIFY(!stored.gracePeriod.has_value());
    QCOMPARE(stored.batchSize, 1000);
}

void TestUiSettings::gracePeriodEmptyMeansOff() {
    // In force: a grace period of 1h, stored.
    Config effective = baseConfig();
    QCOMPARE(applySetting(effective, Setting::GracePeriod, QStringLiteral("1h")), QString());
    QVERIFY(m_store->save(effective));
    buildApp(effective);
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QCOMPARE(edit("gracePeriodEdit")->text(), QStringLiteral("1h"));
    // "60m" is the value in force: nothing to apply.
    typeInto("gracePeriodEdit", QStringLiteral("60m"));
    QVERIFY(!apply->isEnabled());
    typeInto("gracePeriodEdit", QString());
    QVERIFY(label("gracePeriodError")->text().isEmpty());
    clickApply();
    QCOMPARE(configs.count(), 1);
    QVERIFY(!configs.constFirst().constFirst().value<Config>().gracePeriod.has_value());
    QVERIFY(!m_settings->config().gracePeriod.has_value());
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("grace period")));
    // Off is the default: the stored value is removed, and the form says "off".
    QVERIFY(!SettingsStore(m_store->filePath()).load().gracePeriod.has_value());
    QCOMPARE(edit("gracePeriodEdit")->text(), QStringLiteral("off"));
    QVERIFY(!apply->isEnabled());
    // An empty field over "off" is no change either.
    typeInto("gracePeriodEdit", QString());
    QVERIFY(!apply->isEnabled());
    typeInto("gracePeriodEdit", QStringLiteral("OFF"));
    QVERIFY(!apply->isEnabled());
}

void TestUiSettings::gracePeriodReachesBatchesAlreadyOut() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    fake.setValidationDelay(10ms);
    fake.setNeverFinish(true);
    fake.setCancelFractionDone(0.0);
    Config config = baseConfig();
    config.upstream = fake.baseUrl();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("100ms")), QString());
    QCOMPARE(applySetting(config, Setting::PollInterval, QStringLiteral("100ms")), QString());
    QVERIFY(!config.gracePeriod.has_value());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));
    TestClient client;
    client.setPort(started.constFirst().constFirst().value<QList<quint16>>().constFirst());

    // A batch goes out with no grace period, and is left alone.
    QNetworkReply *reply = client.send("POST", "/v1/chat/completions", chatBody("overdue"));
    QTRY_COMPARE_WITH_TIMEOUT(fake.batches().size(), 1, 10'000);
    QTest::qWait(1500);
    QVERIFY(!reply->isFinished());
    QCOMPARE(fake.count("POST", "/v1/batches/"), 0);

    // Set in the window: the batch already out is cancelled (it is older than 1s), and its
    // request goes through the synchronous API.
    typeInto("gracePeriodEdit", QStringLiteral("1s"));
    clickApply();
    QVERIFY(TestClient::finished(reply, 15'000));
    QCOMPARE(TestClient::status(reply), 200);
    QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
    QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: overdue"));
    QCOMPARE(fake.count("POST", "/v1/batches/"), 1); // one cancel
    QCOMPARE(fake.count("POST", "/v1/chat/completions"), 1);
    QCOMPARE(fake.batches().size(), 1);
    QCOMPARE(SettingsStore(m_store->filePath()).load().gracePeriod, std::optional(1s));

    // Stopped while the fake provider is still there.
    QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
    m_host->stop();
    QVERIFY(stopped.wait(10'000));
}

QPushButton *TestUiSettings::button(const char *name) const {
    return m_app->window()->findChild<QPushButton *>(QString::fromLatin1(name));
}

quint16 TestUiSettings::startHost() {
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    if (!started.wait(10'000))
        return 0;
    const ProxySnapshot snapshot =
        waitForSnapshot([](const ProxySnapshot &s) { return !s.listenUrls.isEmpty(); });
    if (snapshot.listenUrls.isEmpty())
        return 0;
    return static_cast<quint16>(QUrl(snapshot.listenUrls.constFirst()).port());
}

// Origins and hosts are edited as lists, applied with the other settings, saved in the settings
// file (so --no-gui uses them too) and in force in the running proxy.
void TestUiSettings::accessListsApplyAndPersist() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    const quint16 port = startHost();
    QVERIFY(port != 0);
    TestClient client;
    client.setPort(port);
    const auto statusWith = [&client](const Headers &headers) {
        return client.statusOf("GET", "/stats", headers);
    };
    const Headers fromTool{{"Origin", "http://localhost:5173"}};
    QCOMPARE(statusWith(fromTool), 403);

    auto *origins = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowOriginsList"));
    auto *hosts = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowHostsList"));
    QVERIFY(origins && hosts);
    QCOMPARE(origins->count(), 0);
    typeInto("allowOriginEdit", QStringLiteral("http://localhost:5173"));
    QVERIFY(button("addOriginButton")->isEnabled());
    QTest::mouseClick(button("addOriginButton"), Qt::LeftButton);
    typeInto("allowOriginEdit", QStringLiteral("HTTPS://Tool.Example/"));
    QTest::keyClick(edit("allowOriginEdit"), Qt::Key_Return); // Enter adds too
    typeInto("allowHostEdit", QStringLiteral("proxy.example.lan"));
    QTest::mouseClick(button("addHostButton"), Qt::LeftButton);
    QCOMPARE(origins->count(), 2);
    QCOMPARE(origins->item(1)->text(), QStringLiteral("https://tool.example")); // as compared
    QCOMPARE(hosts->count(), 1);
    QVERIFY(edit("allowOriginEdit")->text().isEmpty());

    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    clickApply();
    QCOMPARE(configs.count(), 1);
    const QList<QByteArray> expectedOrigins{"http://localhost:5173", "https://tool.example"};
    QCOMPARE(configs.constFirst().constFirst().value<Config>().allowOrigins, expectedOrigins);
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("allowed origins")));
    // Saved: a fresh load of the file gives them back, and the command line starts from them.
    const Config stored = SettingsStore(m_store->filePath()).load();
    QCOMPARE(stored.allowOrigins, expectedOrigins);
    QCOMPARE(stored.allowHosts, QList<QByteArray>{"proxy.example.lan"});
    QCOMPARE(parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--no-gui")}, {}, stored)
                 .config.allowOrigins,
             expectedOrigins);
    // In force: the tool's page is served now, and the allowed Host name too.
    QTRY_COMPARE(statusWith(fromTool), 200);
    QCOMPARE(statusWith({{"Host", "proxy.example.lan"}}), 200);
    QVERIFY(!button("applyButton")->isEnabled());

    // Removing one is applied and saved the same way.
    origins->setCurrentRow(0);
    QVERIFY(button("removeOriginButton")->isEnabled());
    QTest::mouseClick(button("removeOriginButton"), Qt::LeftButton);
    QCOMPARE(origins->count(), 1);
    clickApply();
    QCOMPARE(SettingsStore(m_store->filePath()).load().allowOrigins,
             QList<QByteArray>{"https://tool.example"});
    QTRY_COMPARE(statusWith(fromTool), 403);
}

void TestUiSettings::badAccessEntryIsRefusedAsTyped_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("option");
    QTest::addColumn<QString>("bad");
    QTest::newRow("origin with a path") << "allowOrigin"
                                        << "--allow-origin"
                                        << "http://localhost:5173/app";
    QTest::newRow("origin without scheme") << "allowOrigin"
                                           << "--allow-origin"
                                           << "localhost";
    QTest::newRow("host") << "allowHost"
                          << "--allow-host"
                          << "evil_host!";
}

void TestUiSettings::badAccessEntryIsRefusedAsTyped() {
    QFETCH(QString, field);
    QFETCH(QString, option);
    QFETCH(QString, bad);
    buildApp(baseConfig());
    const QByteArray editName = (field + QStringLiteral("Edit")).toLatin1();
    const QByteArray errorName = (field + QStringLiteral("Error")).toLatin1();
    const QByteArray addName =
        field == QStringLiteral("allowOrigin") ? "addOriginButton" : "addHostButton";
    typeInto(editName.constData(), bad);
    const CommandLine line = parseCommandLine({QStringLiteral("llm-proxy"), option + u'=' + bad});
    QCOMPARE(line.action, CommandLine::Action::Error);
    const QString reason = label(errorName.constData())->text();
    QVERIFY(!reason.isEmpty());
    QCOMPARE(QStringLiteral("llm-proxy: ") + option + QStringLiteral(": ") + reason, line.message);
    QVERIFY(!button(addName.constData())->isEnabled());
    QTest::keyClick(edit(editName.constData()), Qt::Key_Return);
    auto *origins = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowOriginsList"));
    auto *hosts = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowHostsList"));
    QCOMPARE(origins->count() + hosts->count(), 0);
    QVERIFY(!button("applyButton")->isEnabled());
    // Cleared, the reason goes.
    typeInto(editName.constData(), QString());
    QVERIFY(label(errorName.constData())->text().isEmpty());
}

// Generate: a CSPRNG token shown once and copied; the tokens file is written owner-only in the
// format the proxy reads; the running proxy then refuses requests without it.
void TestUiSettings::generatedTokenIsSavedCopiedAndRequired() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    const QString tokensPath = m_dir->filePath(QStringLiteral("config/tokens"));
    config.tokensFile = tokensPath;
    buildApp(config);
    const quint16 port = startHost();
    QVERIFY(port != 0);
    TestClient client;
    client.setPort(port);
    const auto statusWith = [&client](const Headers &headers) {
        return client.statusOf("GET", "/stats", headers);
    };
    QCOMPARE(statusWith({}), 200); // no tokens yet: loopback needs none

    auto *frame = m_app->window()->findChild<QFrame *>(QStringLiteral("newTokenFrame"));
    QVERIFY(frame && frame->isHidden());
    typeInto("tokenNameEdit", QStringLiteral("bad name"));
    QVERIFY(!button("generateTokenButton")->isEnabled());
    QVERIFY(!label("tokenError")->text().isEmpty());
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QVERIFY(button("generateTokenButton")->isEnabled());
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);

    QVERIFY(!frame->isHidden());
    const QByteArray token = edit("newTokenEdit")->text().toLatin1();
    QVERIFY2(token.startsWith("llmp-") && token.size() == 37, token.constData());
    QTest::mouseClick(button("copyTokenButton"), Qt::LeftButton);
    QCOMPARE(QGuiApplication::clipboard()->text().toLatin1(), token);

    // The file: owner-only, and what the proxy's own loader reads.
    const QFile::Permissions others = QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup |
                                      QFile::ReadOther | QFile::WriteOther | QFile::ExeOther;
    QCOMPARE(QFileInfo(tokensPath).permissions() & others, QFile::Permissions());
    QString error;
    const auto loaded = loadProxyTokens(tokensPath, &error);
    QVERIFY2(loaded, qPrintable(error));
    QCOMPARE(*loaded, (QList<ProxyToken>{{"laptop", token}}));
    QCOMPARE(m_settings->config().tokens, *loaded);

    // The table names it and shows only its last four characters.
    auto *table = m_app->window()->findChild<QTableWidget *>(QStringLiteral("tokensTable"));
    QVERIFY(table);
    QCOMPARE(table->rowCount(), 1);
    QCOMPARE(table->item(0, 0)->text(), QStringLiteral("laptop"));
    QCOMPARE(table->item(0, 1)->text(), QString(u'…' + QString::fromLatin1(token.right(4))));

    // In force: without the token, 401; with it, served.
    QTRY_COMPARE(statusWith({}), 401);
    QCOMPARE(statusWith({{"Authorization", "Bearer " + token}}), 200);

    // Done: the token is gone from the window.
    QTest::mouseClick(button("hideTokenButton"), Qt::LeftButton);
    QVERIFY(frame->isHidden());
    QVERIFY(edit("newTokenEdit")->text().isEmpty());
    for (QLineEdit *anyEdit : m_app->window()->findChildren<QLineEdit *>())
        QVERIFY(!anyEdit->text().toLatin1().contains(token));

    // A second token with the same name is refused, and the file is left alone.
    const QByteArray before = [&] {
        QFile file(tokensPath);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }();
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);
    QVERIFY(label("tokenError")->text().contains(QStringLiteral("already")));
    QFile after(tokensPath);
    QVERIFY(after.open(QIODevice::ReadOnly));
    QCOMPARE(after.readAll(), before);
}

void TestUiSettings::removingATokenRewritesTheFile() {
    const QString tokensPath = m_dir->filePath(QStringLiteral("tokens"));
    {
        QFile file(tokensPath);
        QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::NewOnly,
                          QFile::ReadOwner | QFile::WriteOwner));
        file.write("# my tokens\nalice 0123456789abcdefAAAA\nbob 0123456789abcdefBBBB\n");
    }
    Config config = baseConfig();
    QString error;
    const auto tokens = loadProxyTokens(tokensPath, &error);
    QVERIFY2(tokens, qPrintable(error));
    config.tokens = *tokens;
    config.tokensFile = tokensPath;
    buildApp(config);
    auto *table = m_app->window()->findChild<QTableWidget *>(QStringLiteral("tokensTable"));
    QCOMPARE(table->rowCount(), 2);
    QCOMPARE(table->item(1, 1)->text(), QStringLiteral("…BBBB"));
    QVERIFY(!button("removeTokenButton")->isEnabled());
    table->selectRow(0);
    QVERIFY(button("removeTokenButton")->isEnabled());
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QTest::mouseClick(button("removeTokenButton"), Qt::LeftButton);
    QCOMPARE(configs.count(), 1);
    QCOMPARE(configs.constFirst().constFirst().value<Config>().tokens,
             (QList<ProxyToken>{{"bob", "0123456789abcdefBBBB"}}));
    QFile file(tokensPath);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QCOMPARE(file.readAll(), QByteArray("# my tokens\nbob 0123456789abcdefBBBB\n"));
    QCOMPARE(table->rowCount(), 1);
    QCOMPARE(table->item(0, 0)->text(), QStringLiteral("bob"));
}

void TestUiSettings::tokenWriteFailureIsShown() {
    Config config = baseConfig();
    // A folder where the file should be: the write fails, and the page says so.
    const QString tokensPath = m_dir->filePath(QStringLiteral("tokens"));
    QVERIFY(QDir().mkpath(tokensPath));
    config.tokensFile = tokensPath;
    buildApp(config);
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);
    QVERIFY2(label("tokenError")->text().contains(tokensPath),
             qPrintable(label("tokenError")->text()));
    QVERIFY(m_app->window()->findChild<QFrame *>(QStringLiteral("newTokenFrame"))->isHidden());
    QCOMPARE(configs.count(), 0);
    QVERIFY(m_settings->config().tokens.isEmpty());
}
QTEST_MAIN(TestUiSettings)
#include "tst_ui_settings.moc"
