// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// --screenshot: the main window as PNG files, one per page asked for (--screenshot-page).

#include <QByteArray>
#include <QList>
#include <QString>

namespace llmproxy {

class MainWindow;

// Saves the window's `pages` (screenshotPageNames(); empty: the window as it is) as PNG files:
// one page to `path`, several to `path`/PAGE.png each (the folder is made). Returns what went
// wrong, or an empty string.
QString saveScreenshots(MainWindow *window, const QString &path, const QList<QByteArray> &pages);

} // namespace llmproxy
