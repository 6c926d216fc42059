// SPDX-License-Identifier: GPL-3.0-or-later
// One desktop app per user and settings file: the first instance serves, a later one asks it to
// come forward and is told it is already running; a crashed instance's leftovers do not block.
// (Two real processes: tst_ui_app.)

#include "ui/singleinstance.h"

#include <QCoreApplication>
#include <QFile>
#include <QLocalServer>
#include <QLocalSocket>
#include <QProcess>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <cstdio>
#include <unistd.h>

using namespace llmproxy;

class TestUiSingleInstance final : public QObject {
    Q_OBJECT

private slots:
    void init();
    void secondLaunchIsForwarded();
    void thirdLaunchToo();
    void takesOverAfterTheFirstQuits();
    void staleSocketFileIsReplaced();
    void foreignMessagesAreIgnored();
    void socketPathDependsOnSettingsFile();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    QString m_path;
};

void TestUiSingleInstance::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_path = m_dir->filePath(QStringLiteral("instance.socket"));
}

void TestUiSingleInstance::secondLaunchIsForwarded() {
    SingleInstance first(m_path);
    QSignalSpy primary(&first, &SingleInstance::becamePrimary);
    QSignalSpy activated(&first, &SingleInstance::activationRequested);
    first.start();
    QCOMPARE(primary.count(), 1);
    QVERIFY(first.isPrimary());

    SingleInstance second(m_path);
    QSignalSpy secondPrimary(&second, &SingleInstance::becamePrimary);
    QSignalSpy running(&second, &SingleInstance::alreadyRunning);
    QSignalSpy failed(&second, &SingleInstance::failed);
    second.start();
    QVERIFY(running.wait(5000));
    QTRY_COMPARE(activated.count(), 1);
    QCOMPARE(secondPrimary.count(), 0);
    QCOMPARE(failed.count(), 0);
    QVERIFY(!second.isPrimary());
}

void TestUiSingleInstance::thirdLaunchToo() {
    SingleInstance first(m_path);
    QSignalSpy activated(&first, &SingleInstance::activationRequested);
    first.start();
    for (int i = 0; i < 3; ++i) {
        SingleInstance later(m_path);
        QSignalSpy running(&later, &SingleInstance::alreadyRunning);
        later.start();
        QVERIFY(running.wait(5000));
    }
    QTRY_COMPARE(activated.count(), 3);
}

void TestUiSingleInstance::takesOverAfterTheFirstQuits() {
    {
        SingleInstance first(m_path);
        first.start();
        QVERIFY(first.isPrimary());
    }
    SingleInstance second(m_path);
    QSignalSpy primary(&second, &SingleInstance::becamePrimary);
    second.start();
    QTRY_COMPARE(primary.count(), 1);
    QVERIFY(second.isPrimary());
}

void TestUiSingleInstance::staleSocketFileIsReplaced() {
    // A crashed instance leaves its socket file behind (and a lock whose process is gone).
    {
        QLocalServer leftover;
        QVERIFY(leftover.listen(m_path));
    }
    QFile junk(m_path);
    if (!junk.exists()) { // QLocalServer removed it on close: leave a plain file instead
        QVERIFY(junk.open(QIODevice::WriteOnly));
        junk.close();
    }
    // The lock of an instance that died without cleaning up: this program, run again, takes
    // the lock and leaves at once (no destructors run).
    QProcess crashed;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("LLMPROXY_TEST_DIE_HOLDING"), m_path);
    crashed.setProcessEnvironment(env);
    crashed.start(QCoreApplication::applicationFilePath(), QStringList());
    QVERIFY(crashed.waitForFinished(10000));
    QCOMPARE(crashed.exitCode(), 3);
    QVERIFY(QFile::exists(m_path + QStringLiteral(".lock")));

    SingleInstance first(m_path);
    QSignalSpy primary(&first, &SingleInstance::becamePrimary);
    first.start();
    QTRY_COMPARE(primary.count(), 1);
    SingleInstance second(m_path);
    QSignalSpy running(&second, &SingleInstance::alreadyRunning);
    second.start();
    QVERIFY(running.wait(5000));
}

void TestUiSingleInstance::foreignMessagesAreIgnored() {
    SingleInstance first(m_path);
    QSignalSpy activated(&first, &SingleInstance::activationRequested);
    first.start();
    QLocalSocket stranger;
    stranger.connectToServer(m_path);
    QVERIFY(stranger.waitForConnected(5000));
    stranger.write("hello\nactivate-not\n");
    stranger.write(QByteArray(4096, 'x'));
    QVERIFY(stranger.waitForBytesWritten(5000));
    QTest::qWait(200);
    QCOMPARE(activated.count(), 0);
}

void TestUiSingleInstance::socketPathDependsOnSettingsFile() {
    const QString a = SingleInstance::socketPathFor(QStringLiteral("/home/u/.config/llm-proxy/a"));
    const QString b = SingleInstance::socketPathFor(QStringLiteral("/home/u/.config/llm-proxy/b"));
    QVERIFY(a != b);
    QCOMPARE(a, SingleInstance::socketPathFor(QStringLiteral("/home/u/.config/llm-proxy/a")));
    QVERIFY(a.endsWith(QStringLiteral(".socket")));
    QVERIFY(a.size() < 100); // sun_path holds 108 bytes
}

int main(int argc, char *argv[]) {
    const QString holding = qEnvironmentVariable("LLMPROXY_TEST_DIE_HOLDING");
    if (!holding.isEmpty()) {
        QCoreApplication app(argc, argv);
        SingleInstance instance(holding);
        instance.start();
        std::fflush(nullptr);
        ::_exit(instance.isPrimary() ? 3 : 4);
    }
    QCoreApplication app(argc, argv);
    TestUiSingleInstance test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}
#include "tst_ui_singleinstance.moc"
