// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Runs one test function of this test binary again in a child process with a real keychain: a
// private D-Bus session (dbus-run-session) with an unlocked gnome-keyring, in a temporary HOME,
// with no display and no session bus of the parent's. The child sees `childVariable` set to 1
// (so its test knows it is the child) and none of the variables in `removed`.

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>

struct KeychainSession {
    QString skipped; // why it could not run (tools missing): the test should skip
    bool finished = false;
    bool succeeded = false; // exited normally with status 0
    QByteArray output;      // the child's stdout and stderr
};

inline KeychainSession runInKeychainSession(const char *childVariable, const QString &childTest,
                                            const QStringList &removed = {}) {
    KeychainSession result;
    const QString dbusRun = QStandardPaths::findExecutable(QStringLiteral("dbus-run-session"));
    const QString keyring = QStandardPaths::findExecutable(QStringLiteral("gnome-keyring-daemon"));
    if (dbusRun.isEmpty() || keyring.isEmpty()) {
        result.skipped =
            QStringLiteral("dbus-run-session or gnome-keyring-daemon is not installed");
        return result;
    }
    QTemporaryDir home;
    const QString run = home.filePath(QStringLiteral("run"));
    if (!QDir().mkpath(run) ||
        !QFile::setPermissions(run, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner)) {
        result.output = "could not make a private XDG_RUNTIME_DIR";
        return result;
    }
    QProcess child;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QString::fromLatin1(childVariable), QStringLiteral("1"));
    env.insert(QStringLiteral("HOME"), home.path());
    env.insert(QStringLiteral("XDG_RUNTIME_DIR"), run);
    env.insert(QStringLiteral("XDG_DATA_HOME"), home.filePath(QStringLiteral("data")));
    env.remove(QStringLiteral("DBUS_SESSION_BUS_ADDRESS"));
    env.remove(QStringLiteral("DISPLAY"));
    for (const QString &name : removed)
        env.remove(name);
    child.setProcessEnvironment(env);
    child.setProcessChannelMode(QProcess::MergedChannels);
    const QString script = QStringLiteral(
        "eval \"$(printf pw | gnome-keyring-daemon --unlock --components=secrets)\" && "
        "exec \"$0\" \"$1\"");
    child.start(dbusRun, {QStringLiteral("--"), QStringLiteral("sh"), QStringLiteral("-c"), script,
                          QCoreApplication::applicationFilePath(), childTest});
    result.finished = child.waitForFinished(120'000);
    result.output = child.readAll();
    result.succeeded =
        result.finished && child.exitStatus() == QProcess::NormalExit && child.exitCode() == 0;
    return result;
}
