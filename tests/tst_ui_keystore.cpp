// SPDX-License-Identifier: GPL-3.0-or-later
// The API key's storage. Without a usable keychain (no D-Bus session here, on purpose) every
// operation fails plainly and the settings controller offers the settings file (0600) instead;
// the key is never part of a message. With a real Secret Service (gnome-keyring inside
// dbus-run-session, when installed) the key round-trips through the keychain and never touches
// the settings file.

#include "settings/settingsstore.h"
#include "ui/keystore.h"
#include "ui/settingscontroller.h"

#include "keychainsession.h"

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;

namespace {

const QByteArray TestKey = "sk-keystore-test-0123456789-kkkk";
const QString Service = QStringLiteral("llm-proxy-test-keystore");
constexpr auto ChildVariable = "LLMPROXY_TEST_REAL_KEYCHAIN";

bool isChild() {
    return qEnvironmentVariableIsSet(ChildVariable);
}

QByteArray fileText(const QString &path) {
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

} // namespace

class TestUiKeyStore final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void noKeychainFailsPlainly_data();
    void noKeychainFailsPlainly();
    void oneOperationAtATime();
    void fallbackToSettingsFile();
    void fileKeyLoadsAtStart();
    void forgetFileKey();
    void keychainUnreadableAtStart();
    void environmentKeyWins();
    void realKeychain();
    void realKeychainChild();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    QString m_path;
};

void TestUiKeyStore::initTestCase() {
    if (isChild())
        return;
    // No keychain: no session bus, and no X display to autolaunch one.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    qunsetenv("DISPLAY");
    qunsetenv("WAYLAND_DISPLAY");
}

void TestUiKeyStore::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_path = m_dir->filePath(QStringLiteral("llm-proxy.conf"));
    m_store = std::make_unique<SettingsStore>(m_path);
}

void TestUiKeyStore::cleanup() {
    m_store.reset();
    m_dir.reset();
}

void TestUiKeyStore::noKeychainFailsPlainly_data() {
    QTest::addColumn<int>("operation");
    QTest::newRow("read") << int(KeyStore::Operation::Read);
    QTest::newRow("write") << int(KeyStore::Operation::Write);
    QTest::newRow("remove") << int(KeyStore::Operation::Remove);
}

void TestUiKeyStore::noKeychainFailsPlainly() {
    if (isChild())
        QSKIP("runs without a keychain only");
    QFETCH(int, operation);
    KeyStore keys(Service);
    QSignalSpy failed(&keys, &KeyStore::failed);
    QSignalSpy read(&keys, &KeyStore::readFinished);
    QSignalSpy written(&keys, &KeyStore::written);
    QSignalSpy removed(&keys, &KeyStore::removed);
    switch (static_cast<KeyStore::Operation>(operation)) {
    case KeyStore::Operation::Read:
        keys.read();
        break;
    case KeyStore::Operation::Write:
        keys.write(TestKey);
        break;
    case KeyStore::Operation::Remove:
        keys.remove();
        break;
    }
    QVERIFY(keys.isBusy());
    QVERIFY(failed.wait(10'000));
    QCOMPARE(failed.count(), 1);
    QCOMPARE(failed.constFirst().at(0).value<KeyStore::Operation>(),
             static_cast<KeyStore::Operation>(operation));
    const QString reason = failed.constFirst().at(1).toString();
    QVERIFY2(reason.startsWith(QStringLiteral("No system keychain is available")),
             qPrintable(reason));
    QVERIFY(!reason.contains(QString::fromUtf8(TestKey)));
    QVERIFY(!reason.contains(QStringLiteral("kkkk")));
    QCOMPARE(read.count() + written.count() + removed.count(), 0);
    QVERIFY(!keys.isBusy());
}

void TestUiKeyStore::oneOperationAtATime() {
    if (isChild())
        QSKIP("runs without a keychain only");
    KeyStore keys(Service);
    QSignalSpy failed(&keys, &KeyStore::failed);
    keys.read();
    keys.write(TestKey); // refused: busy
    QTRY_COMPARE(failed.count(), 2);
    QStringList reasons{failed.at(0).at(1).toString(), failed.at(1).at(1).toString()};
    QVERIFY(reasons.contains(QStringLiteral("The system keychain is still busy; try again")));
}

void TestUiKeyStore::fallbackToSettingsFile() {
    if (isChild())
        QSKIP("runs without a keychain only");
    KeyStore keys(Service);
    SettingsController controller(m_store.get(), &keys, m_store->load(), QByteArray());
    QSignalSpy configs(&controller, &SettingsController::configChanged);
    QSignalSpy offered(&controller, &SettingsController::fileFallbackOffered);
    QSignalSpy states(&controller, &SettingsController::keyStateChanged);

    controller.setApiKey(TestKey + "\n");
    QVERIFY(offered.wait(10'000));
    QVERIFY(offered.constFirst().constFirst().toString().contains(
        QStringLiteral("No system keychain is available")));
    // In use at once, for this session.
    QCOMPARE(configs.count(), 1);
    QCOMPARE(configs.constFirst().constFirst().value<Config>().apiKey, TestKey);
    QCOMPARE(controller.keyState().source, KeyState::Source::Session);
    QCOMPARE(controller.keyState().hint, QByteArray("…kkkk"));
    QCOMPARE(m_store->keyLocation(), KeyLocation::None);
    QVERIFY(!fileText(m_path).contains(TestKey)); // nothing written without the user's choice

    controller.keepKeyInFile();
    QCOMPARE(controller.keyState().source, KeyState::Source::File);
    QCOMPARE(m_store->keyLocation(), KeyLocation::File);
    QVERIFY(fileText(m_path).contains(TestKey));
    QCOMPARE(QFile::permissions(m_path) &
                 (QFile::ReadGroup | QFile::ReadOther | QFile::WriteGroup | QFile::WriteOther),
             QFile::Permissions());
    QCOMPARE(configs.count(), 1); // the key in use did not change
}

void TestUiKeyStore::fileKeyLoadsAtStart() {
    if (isChild())
        QSKIP("runs without a keychain only");
    QVERIFY(m_store->storeKeyInFile(TestKey));
    KeyStore keys(Service);
    SettingsController controller(m_store.get(), &keys, m_store->load(), QByteArray());
    QSignalSpy ready(&controller, &SettingsController::ready);
    controller.loadKey();
    QCOMPARE(ready.count(), 0); // always asynchronous
    QVERIFY(ready.wait(5000));
    QCOMPARE(controller.config().apiKey, TestKey);
    QCOMPARE(controller.keyState().source, KeyState::Source::File);
}

void TestUiKeyStore::forgetFileKey() {
    if (isChild())
        QSKIP("runs without a keychain only");
    QVERIFY(m_store->storeKeyInFile(TestKey));
    KeyStore keys(Service);
    SettingsController controller(m_store.get(), &keys, m_store->load(), QByteArray());
    QSignalSpy configs(&controller, &SettingsController::configChanged);
    controller.forgetApiKey();
    QCOMPARE(configs.count(), 1);
    QVERIFY(configs.constFirst().constFirst().value<Config>().apiKey.isEmpty());
    QCOMPARE(m_store->keyLocation(), KeyLocation::None);
    QVERIFY(!fileText(m_path).contains(TestKey));
    QCOMPARE(controller.keyState().source, KeyState::Source::None);
}

void TestUiKeyStore::keychainUnreadableAtStart() {
    if (isChild())
        QSKIP("runs without a keychain only");
    QVERIFY(m_store->setKeyLocation(KeyLocation::Keychain));
    KeyStore keys(Service);
    SettingsController controller(m_store.get(), &keys, m_store->load(), QByteArray());
    QSignalSpy ready(&controller, &SettingsController::ready);
    QSignalSpy messages(&controller, &SettingsController::message);
    controller.loadKey();
    QVERIFY(ready.wait(10'000)); // the proxy starts anyway, with clients' keys
    QVERIFY(controller.config().apiKey.isEmpty());
    QCOMPARE(controller.keyState().source, KeyState::Source::None);
    QVERIFY(!controller.keyState().problem.isEmpty());
    QCOMPARE(messages.count(), 1);
    QCOMPARE(messages.constFirst().at(1).toBool(), true);
}

void TestUiKeyStore::environmentKeyWins() {
    if (isChild())
        QSKIP("runs without a keychain only");
    const QByteArray environmentKey = "sk-env-0123456789-eeee";
    Config effective = m_store->load();
    effective.apiKey = environmentKey;
    KeyStore keys(Service);
    SettingsController controller(m_store.get(), &keys, effective, environmentKey);
    QSignalSpy ready(&controller, &SettingsController::ready);
    QSignalSpy configs(&controller, &SettingsController::configChanged);
    controller.loadKey();
    QVERIFY(ready.wait(5000));
    QCOMPARE(controller.keyState().source, KeyState::Source::Environment);
    QCOMPARE(controller.keyState().hint, QByteArray("…eeee"));
    QSignalSpy offered(&controller, &SettingsController::fileFallbackOffered);
    controller.setApiKey(TestKey);
    QVERIFY(offered.wait(10'000));
    QCOMPARE(configs.count(), 0); // the environment's key stays in use
    QCOMPARE(controller.config().apiKey, environmentKey);
}

void TestUiKeyStore::realKeychain() {
    if (isChild())
        QSKIP("the parent's test");
    const KeychainSession child =
        runInKeychainSession(ChildVariable, QStringLiteral("realKeychainChild"));
    if (!child.skipped.isEmpty())
        QSKIP(qPrintable(child.skipped));
    QVERIFY2(child.succeeded, child.output.constData());
    QVERIFY2(child.output.contains("PASS   : TestUiKeyStore::realKeychainChild()"),
             child.output.constData());
    QVERIFY(!child.output.contains(TestKey));
}

void TestUiKeyStore::realKeychainChild() {
    if (!isChild())
        QSKIP("runs inside dbus-run-session, started by realKeychain()");
    KeyStore keys(Service);
    QSignalSpy failed(&keys, &KeyStore::failed);
    QSignalSpy written(&keys, &KeyStore::written);
    keys.write(TestKey);
    QVERIFY2(written.wait(30'000),
             failed.isEmpty() ? "no answer" : qPrintable(failed.constFirst().at(1).toString()));
    QSignalSpy read(&keys, &KeyStore::readFinished);
    keys.read();
    QVERIFY(read.wait(30'000));
    QCOMPARE(read.constFirst().constFirst().toByteArray(), TestKey);

    // Through the controller: the keychain, never the file.
    const QByteArray other = "sk-keychain-0123456789-cccc";
    {
        SettingsController controller(m_store.get(), &keys, m_store->load(), QByteArray());
        QSignalSpy configs(&controller, &SettingsController::configChanged);
        controller.setApiKey(other);
        QVERIFY(configs.wait(30'000));
        QCOMPARE(controller.keyState().source, KeyState::Source::Keychain);
        QCOMPARE(m_store->keyLocation(), KeyLocation::Keychain);
        QVERIFY(!fileText(m_path).contains(other));
    }
    {
        SettingsController restarted(m_store.get(), &keys, m_store->load(), QByteArray());
        QSignalSpy ready(&restarted, &SettingsController::ready);
        restarted.loadKey();
        QVERIFY(ready.wait(30'000));
        QCOMPARE(restarted.config().apiKey, other);
        QSignalSpy messages(&restarted, &SettingsController::message);
        restarted.forgetApiKey();
        QTRY_VERIFY_WITH_TIMEOUT(!messages.isEmpty() &&
                                     messages.constLast().at(0).toString().contains(
                                         QStringLiteral("removed from the system keychain")),
                                 30'000);
    }
    QSignalSpy readAgain(&keys, &KeyStore::readFinished);
    keys.read();
    QVERIFY(readAgain.wait(30'000));
    QVERIFY(readAgain.constFirst().constFirst().toByteArray().isEmpty());
}

QTEST_GUILESS_MAIN(TestUiKeyStore)
#include "tst_ui_keystore.moc"
