// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/autostart.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>
#include <QStandardPaths>

namespace llmproxy {

namespace {

// An Exec argument as the Desktop Entry spec wants it: quoted when it holds anything special,
// with ", `, $ and \ escaped inside the quotes, and % doubled.
QString execArgument(const QString &argument) {
    QString text = argument;
    text.replace(u'%', QStringLiteral("%%"));
    static const QString special = QStringLiteral(" \t\n\"'\\><~|&;$*?#()`=");
    bool quote = text.isEmpty();
    for (const QChar c : std::as_const(text))
        quote = quote || special.contains(c);
    if (!quote)
        return text;
    QString quoted;
    for (const QChar c : std::as_const(text)) {
        if (c == u'"' || c == u'`' || c == u'$' || c == u'\\')
            quoted += u'\\';
        quoted += c;
    }
    return u'"' + quoted + u'"';
}

bool isFalse(const QByteArray &value) {
    return value.trimmed().toLower() == "false";
}

bool isTrue(const QByteArray &value) {
    return value.trimmed().toLower() == "true";
}

} // namespace

Autostart::Autostart(QString executable)
    : m_executable(executable.isEmpty() ? QCoreApplication::applicationFilePath()
                                        : std::move(executable)) {}

QString Autostart::entryPath() const {
    return QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation) +
           QStringLiteral("/autostart/") + DesktopFileId + QStringLiteral(".desktop");
}

bool Autostart::isEnabled() const {
    QFile file(entryPath());
    if (!file.open(QIODevice::ReadOnly))
        return false;
    bool inMainGroup = false;
    bool enabled = true;
    while (!file.atEnd()) {
        const QByteArray line = file.readLine().trimmed();
        if (line.startsWith('[')) {
            inMainGroup = line == "[Desktop Entry]";
            continue;
        }
        const qsizetype equals = line.indexOf('=');
        if (!inMainGroup || equals < 0)
            continue;
        const QByteArray key = line.left(equals).trimmed();
        const QByteArray value = line.mid(equals + 1);
        if (key == "Hidden" && isTrue(value))
            enabled = false;
        else if (key == "X-GNOME-Autostart-enabled" && isFalse(value))
            enabled = false;
    }
    return enabled;
}

QString Autostart::setEnabled(bool enabled) const {
    const QString path = entryPath();
    if (!enabled) {
        QFile file(path);
        if (!file.exists() || file.remove())
            return QString();
        return QCoreApplication::translate("llmproxy::Autostart", "Could not remove %1: %2")
            .arg(path, file.errorString());
    }
    const QString folder = QFileInfo(path).absolutePath();
    if (!QDir().mkpath(folder))
        return QCoreApplication::translate("llmproxy::Autostart", "Could not create the folder %1")
            .arg(folder);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        return QCoreApplication::translate("llmproxy::Autostart", "Could not write %1: %2")
            .arg(path, file.errorString());
    file.write(entryText(m_executable));
    if (!file.commit())
        return QCoreApplication::translate("llmproxy::Autostart", "Could not write %1: %2")
            .arg(path, file.errorString());
    return QString();
}

QByteArray Autostart::entryText(const QString &executable) {
    const QString exec = execArgument(executable) + u' ' + TrayOption;
    return QByteArrayLiteral("[Desktop Entry]\n"
                             "Type=Application\n"
                             "Name=llm-proxy\n"
                             "Comment=Start llm-proxy in the tray at login\n"
                             "Exec=") +
           exec.toUtf8() +
           QByteArrayLiteral("\n"
                             "Icon=llm-proxy\n"
                             "Terminal=false\n"
                             "X-GNOME-Autostart-enabled=true\n");
}

} // namespace llmproxy
