// SPDX-License-Identifier: GPL-3.0-or-later
// Start at login (issue 15): the XDG autostart entry written and removed in a temporary
// XDG_CONFIG_HOME, its Exec line (quoted, with the tray option), and the enabled state read
// back as the desktop sees it: Hidden=true or X-GNOME-Autostart-enabled=false switch it off.

#include "ui/autostart.h"
#include "ui/startatlogincheckbox.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;

class TestUiAutostart final : public QObject {
    Q_OBJECT

private slots:
    void init();
    void cleanup();

    void writtenAndRemoved();
    void execLineIsQuoted_data();
    void execLineIsQuoted();
    void switchedOffByTheDesktop_data();
    void switchedOffByTheDesktop();
    void enablingAgainRewritesAHiddenEntry();
    void failureIsReported();
    void checkBoxWritesAndReads();
    void checkBoxReportsAFailure();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    QByteArray m_oldConfigHome;
};

void TestUiAutostart::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_oldConfigHome = qgetenv("XDG_CONFIG_HOME");
    qputenv("XDG_CONFIG_HOME", QFile::encodeName(m_dir->path()));
}

void TestUiAutostart::cleanup() {
    if (m_oldConfigHome.isNull())
        qunsetenv("XDG_CONFIG_HOME");
    else
        qputenv("XDG_CONFIG_HOME", m_oldConfigHome);
    m_dir.reset();
}

void TestUiAutostart::writtenAndRemoved() {
    const Autostart autostart(QStringLiteral("/usr/bin/llm-proxy"));
    const QString expected =
        m_dir->path() + QStringLiteral("/autostart/io.github.llm_proxy.desktop");
    QCOMPARE(autostart.entryPath(), expected);
    QVERIFY(!autostart.isEnabled());

    QCOMPARE(autostart.setEnabled(true), QString());
    QVERIFY(QFileInfo::exists(expected));
    QVERIFY(autostart.isEnabled());
    QFile file(expected);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QByteArray text = file.readAll();
    QVERIFY(text.startsWith("[Desktop Entry]\n"));
    QVERIFY(text.contains("\nType=Application\n"));
    QVERIFY2(text.contains("\nExec=/usr/bin/llm-proxy --start-in-tray\n"), text.constData());
    file.close();
    // No temporary file left behind by the atomic write.
    QCOMPARE(QDir(m_dir->path() + QStringLiteral("/autostart")).entryList(QDir::Files),
             QStringList{QStringLiteral("io.github.llm_proxy.desktop")});

    QCOMPARE(autostart.setEnabled(false), QString());
    QVERIFY(!QFileInfo::exists(expected));
    QVERIFY(!autostart.isEnabled());
    QCOMPARE(autostart.setEnabled(false), QString()); // already off: fine
}

void TestUiAutostart::execLineIsQuoted_data() {
    QTest::addColumn<QString>("program");
    QTest::addColumn<QByteArray>("exec");
    QTest::newRow("plain") << QStringLiteral("/opt/llm-proxy/bin/llm-proxy")
                           << QByteArray("Exec=/opt/llm-proxy/bin/llm-proxy --start-in-tray\n");
    QTest::newRow("space") << QStringLiteral("/home/a b/llm-proxy")
                           << QByteArray("Exec=\"/home/a b/llm-proxy\" --start-in-tray\n");
    QTest::newRow("specials") << QStringLiteral("/tmp/$x\"y%z")
                              << QByteArray("Exec=\"/tmp/\\$x\\\"y%%z\" --start-in-tray\n");
}

void TestUiAutostart::execLineIsQuoted() {
    QFETCH(QString, program);
    QFETCH(QByteArray, exec);
    const QByteArray text = Autostart::entryText(program);
    QVERIFY2(text.contains(exec), text.constData());
}

void TestUiAutostart::switchedOffByTheDesktop_data() {
    QTest::addColumn<QByteArray>("extra");
    QTest::addColumn<bool>("enabled");
    QTest::newRow("as written") << QByteArray() << true;
    QTest::newRow("Hidden=true") << QByteArray("Hidden=true\n") << false;
    QTest::newRow("Hidden=false") << QByteArray("Hidden=false\n") << true;
    QTest::newRow("GNOME off") << QByteArray("X-GNOME-Autostart-enabled=false\n") << false;
    QTest::newRow("other group") << QByteArray("[Desktop Action x]\nHidden=true\n") << true;
}

void TestUiAutostart::switchedOffByTheDesktop() {
    QFETCH(QByteArray, extra);
    QFETCH(bool, enabled);
    const Autostart autostart(QStringLiteral("/usr/bin/llm-proxy"));
    QCOMPARE(autostart.setEnabled(true), QString());
    QFile file(autostart.entryPath());
    QVERIFY(file.open(QIODevice::ReadOnly));
    QByteArray text = file.readAll();
    file.close();
    // The desktop's session settings append their keys; the last X-GNOME key wins.
    text.replace("X-GNOME-Autostart-enabled=true\n", QByteArray());
    text += extra;
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write(text);
    file.close();
    QCOMPARE(autostart.isEnabled(), enabled);
}

void TestUiAutostart::enablingAgainRewritesAHiddenEntry() {
    const Autostart autostart(QStringLiteral("/usr/bin/llm-proxy"));
    QVERIFY(QDir().mkpath(m_dir->path() + QStringLiteral("/autostart")));
    QFile file(autostart.entryPath());
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write("[Desktop Entry]\nType=Application\nExec=old\nHidden=true\n");
    file.close();
    QVERIFY(!autostart.isEnabled());
    QCOMPARE(autostart.setEnabled(true), QString());
    QVERIFY(autostart.isEnabled());
}

void TestUiAutostart::failureIsReported() {
    // A file where the folder should be: nothing can be written, and the caller is told.
    QFile blocker(m_dir->path() + QStringLiteral("/autostart"));
    QVERIFY(blocker.open(QIODevice::WriteOnly));
    blocker.close();
    const Autostart autostart(QStringLiteral("/usr/bin/llm-proxy"));
    const QString error = autostart.setEnabled(true);
    QVERIFY2(error.startsWith(QStringLiteral("Could not create the folder ")), qPrintable(error));
    QVERIFY(!autostart.isEnabled());
}

void TestUiAutostart::checkBoxWritesAndReads() {
    const Autostart autostart(QStringLiteral("/usr/bin/llm-proxy"));
    StartAtLoginCheckBox box(nullptr, autostart);
    QVERIFY(!box.isChecked());
    box.show();
    QTest::mouseClick(&box, Qt::LeftButton, {}, QPoint(4, box.height() / 2));
    QVERIFY(box.isChecked());
    QVERIFY(autostart.isEnabled());
    QVERIFY(QFileInfo::exists(autostart.entryPath()));
    box.setChecked(false);
    QVERIFY(!QFileInfo::exists(autostart.entryPath()));

    // Switched off by the desktop (Hidden=true): the box reads it back as off.
    QCOMPARE(autostart.setEnabled(true), QString());
    QFile file(autostart.entryPath());
    QVERIFY(file.open(QIODevice::Append));
    file.write("Hidden=true\n");
    file.close();
    StartAtLoginCheckBox hidden(nullptr, autostart);
    QVERIFY(!hidden.isChecked());
}

void TestUiAutostart::checkBoxReportsAFailure() {
    QFile blocker(m_dir->path() + QStringLiteral("/autostart"));
    QVERIFY(blocker.open(QIODevice::WriteOnly));
    blocker.close();
    StartAtLoginCheckBox box(nullptr, Autostart(QStringLiteral("/usr/bin/llm-proxy")));
    QSignalSpy failed(&box, &StartAtLoginCheckBox::failed);
    box.setChecked(true);
    QCOMPARE(failed.count(), 1);
    QVERIFY(failed.first().first().toString().startsWith(QStringLiteral("Could not create")));
    QVERIFY(!box.isChecked()); // as the file is: off
}

QTEST_MAIN(TestUiAutostart)
#include "tst_ui_autostart.moc"
