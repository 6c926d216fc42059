// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/screenshot.h"

#include "ui/mainwindow.h"

#include <QCoreApplication>
#include <QDir>
#include <QImage>
#include <QPixmap>

namespace llmproxy {

namespace {
QString save(MainWindow *window, const QString &path) {
    const QImage image = window->grab().toImage();
    if (image.isNull())
        return QCoreApplication::translate("llmproxy::Screenshot", "could not capture the window");
    if (!image.save(path, "PNG"))
        return QCoreApplication::translate("llmproxy::Screenshot", "could not write %1").arg(path);
    return QString();
}
} // namespace

QString saveScreenshots(MainWindow *window, const QString &path, const QList<QByteArray> &pages) {
    if (pages.size() <= 1) {
        if (!pages.isEmpty() && !window->showPage(pages.constFirst()))
            return QCoreApplication::translate("llmproxy::Screenshot", "no page named %1")
                .arg(QString::fromUtf8(pages.constFirst()));
        QCoreApplication::sendPostedEvents(); // the new page laid out before it is drawn
        return save(window, path);
    }
    if (!QDir().mkpath(path))
        return QCoreApplication::translate("llmproxy::Screenshot", "could not make the folder %1")
            .arg(path);
    for (const QByteArray &page : pages) {
        if (!window->showPage(page))
            return QCoreApplication::translate("llmproxy::Screenshot", "no page named %1")
                .arg(QString::fromUtf8(page));
        QCoreApplication::sendPostedEvents();
        const QString error =
            save(window, QDir(path).filePath(QString::fromUtf8(page) + QStringLiteral(".png")));
        if (!error.isEmpty())
            return error;
    }
    return QString();
}

} // namespace llmproxy
