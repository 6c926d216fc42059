// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One desktop app per user and settings file. The first instance holds a lock file and serves
// a local socket (owner-only); a later launch finds the lock taken, asks the first over the
// socket to bring its window forward, and is told alreadyRunning(). Everything is asynchronous.

#include <QLocalServer>
#include <QLocalSocket>
#include <QLockFile>
#include <QObject>
#include <QString>
#include <QTimer>

#include <memory>

namespace llmproxy {

class SingleInstance final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SingleInstance)
public:
    // `socketPath`: where the first instance listens; the lock is socketPath + ".lock".
    explicit SingleInstance(const QString &socketPath, QObject *parent = nullptr);
    ~SingleInstance() override;

    // The socket for a settings file: in the user's runtime folder, named after the file, so a
    // test (or a second profile) with its own settings file is its own instance.
    static QString socketPathFor(const QString &settingsFilePath);

    // Decide, then emit exactly one of becamePrimary(), alreadyRunning(), failed().
    void start();
    bool isPrimary() const { return m_primary; }
    QString socketPath() const { return m_path; }

Q_SIGNALS:
    void becamePrimary();
    void alreadyRunning();              // the first instance was asked to show itself
    void failed(const QString &reason); // another instance holds the lock but never answered
    void activationRequested();         // (primary) a later launch asked us to show the window

private:
    void becomePrimary();
    void tryConnect();
    void onConnectError();

    QString m_path;
    QLockFile m_lock;
    std::unique_ptr<QLocalServer> m_server;
    std::unique_ptr<QLocalSocket> m_client;
    QTimer m_retry;
    int m_attempts = 0;
    bool m_primary = false;
    bool m_delivering = false; // connected to the first instance
};

} // namespace llmproxy
