// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The user's intents as actions, shared by the tray menu, the window's menu and the dashboard's
// buttons, so "paused" reads the same everywhere. Only a user's trigger emits an intent;
// showing a snapshot (setPaused) does not.

#include <QAction>
#include <QObject>

namespace llmproxy {

class AppActions final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(AppActions)
public:
    explicit AppActions(QObject *parent = nullptr);

    QAction *showDashboard() const { return m_show; }
    QAction *pause() const { return m_pause; } // checkable: checked while paused
    QAction *flush() const { return m_flush; }
    QAction *quit() const { return m_quit; }

    // The core's state, from a snapshot.
    void setPaused(bool paused);

Q_SIGNALS:
    void showDashboardRequested();
    void pauseRequested(bool paused);
    void flushRequested();
    void quitRequested();

private:
    QAction *m_show;
    QAction *m_pause;
    QAction *m_flush;
    QAction *m_quit;
};

} // namespace llmproxy
