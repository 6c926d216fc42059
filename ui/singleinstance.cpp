// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/singleinstance.h"

#include "ui/uilogging.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
constexpr int MaxAttempts = 25; // 25 × 200 ms: the first instance may be between lock and listen
const QByteArray ActivateMessage = QByteArrayLiteral("activate\n");
} // namespace

SingleInstance::SingleInstance(const QString &socketPath, QObject *parent)
    : QObject(parent)
    , m_path(socketPath)
    , m_lock(socketPath + QStringLiteral(".lock")) {
    m_lock.setStaleLockTime(0); // stale only when its process is gone
    m_retry.setSingleShot(true);
    m_retry.setInterval(200ms);
    connect(&m_retry, &QTimer::timeout, this, &SingleInstance::tryConnect);
}

SingleInstance::~SingleInstance() {
    if (m_server)
        m_server->close();
}

QString SingleInstance::socketPathFor(const QString &settingsFilePath) {
    QString dir = QStandardPaths::writableLocation(QStandardPaths::RuntimeLocation);
    if (dir.isEmpty())
        dir = QDir::tempPath();
    const QByteArray hash =
        QCryptographicHash::hash(QFileInfo(settingsFilePath).absoluteFilePath().toUtf8(),
                                 QCryptographicHash::Sha256)
            .toHex()
            .left(16);
    return dir + QStringLiteral("/llm-proxy-") + QString::fromLatin1(hash) +
           QStringLiteral(".socket");
}

void SingleInstance::start() {
    QDir().mkpath(QFileInfo(m_path).absolutePath());
    if (m_lock.tryLock(0)) {
        becomePrimary();
        return;
    }
    if (m_lock.error() != QLockFile::LockFailedError) {
        // No lock can be taken at all (unwritable folder): run, without the guard.
        qCWarning(lcUi) << "single-instance lock unavailable:" << m_lock.error();
        becomePrimary();
        return;
    }
    tryConnect();
}

void SingleInstance::becomePrimary() {
    m_primary = true;
    m_server = std::make_unique<QLocalServer>();
    m_server->setSocketOptions(QLocalServer::UserAccessOption);
    QLocalServer::removeServer(m_path); // a socket left by a crashed instance
    if (!m_server->listen(m_path)) {
        qCWarning(lcUi).noquote() << "single-instance socket:" << m_server->errorString();
    }
    connect(m_server.get(), &QLocalServer::newConnection, this, [this] {
        while (QLocalSocket *socket = m_server->nextPendingConnection()) {
            connect(socket, &QLocalSocket::disconnected, socket, &QObject::deleteLater);
            connect(socket, &QLocalSocket::readyRead, this, [this, socket] {
                while (socket->canReadLine()) {
                    if (socket->readLine() == ActivateMessage)
                        Q_EMIT activationRequested();
                }
                if (socket->bytesAvailable() > 1024)
                    socket->abort(); // not one of ours
            });
        }
    });
    Q_EMIT becamePrimary();
}

void SingleInstance::tryConnect() {
    ++m_attempts;
    m_client = std::make_unique<QLocalSocket>();
    QLocalSocket *client = m_client.get();
    connect(client, &QLocalSocket::connected, this, [this, client] {
        m_delivering = true;
        client->write(ActivateMessage);
        client->disconnectFromServer(); // after the bytes are written
    });
    connect(client, &QLocalSocket::disconnected, this, [this] {
        if (!m_delivering)
            return;
        m_retry.stop();
        Q_EMIT alreadyRunning();
    });
    connect(client, &QLocalSocket::errorOccurred, this, [this](QLocalSocket::LocalSocketError) {
        if (m_delivering)
            return; // the answer comes with disconnected()
        onConnectError();
    });
    client->connectToServer(m_path);
}

void SingleInstance::onConnectError() {
    // The lock's owner may have just quit: try to take over before asking again.
    if (m_lock.tryLock(0)) {
        m_client.release()->deleteLater();
        becomePrimary();
        return;
    }
    if (m_attempts >= MaxAttempts) {
        Q_EMIT failed(SingleInstance::tr("another llm-proxy holds %1 but does not answer")
                          .arg(m_lock.fileName()));
        return;
    }
    m_client.release()->deleteLater();
    m_retry.start();
}

} // namespace llmproxy
