// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The main window: three pages in tabs (dashboard, history, settings), a menu with the shared
// actions, and a status bar. Closing it hides it while a tray icon exists; otherwise it asks
// to quit.

#include <QMainWindow>

class QTabWidget;

namespace llmproxy {

class AppActions;
class BatchTableModel;
class DashboardPage;
class HistoryPage;
class ProvidersSettings;
class SettingsPage;
class SnapshotHistory;

class MainWindow final : public QMainWindow {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)
public:
    MainWindow(AppActions *actions, BatchTableModel *active, BatchTableModel *finished,
               SnapshotHistory *history, QWidget *parent = nullptr);

    DashboardPage *dashboard() const { return m_dashboard; }
    HistoryPage *history() const { return m_history; }
    SettingsPage *settings() const { return m_settings; }
    ProvidersSettings *providers() const { return m_providers; }
    QTabWidget *tabs() const { return m_tabs; }

    // With a tray, closing only hides the window.
    void setCloseHidesToTray(bool hides) { m_hideOnClose = hides; }
    void bringForward();
    // Shows a page by its --screenshot-page name (screenshotPageNames()): its tab, and for
    // "first-run" the dashboard's Connect a client panel. False for an unknown name.
    bool showPage(QByteArrayView name);

Q_SIGNALS:
    void quitRequested();

protected:
    void closeEvent(QCloseEvent *event) override;

private:
    AppActions *m_actions;
    QTabWidget *m_tabs;
    DashboardPage *m_dashboard;
    HistoryPage *m_history;
    SettingsPage *m_settings;
    ProvidersSettings *m_providers;
    bool m_hideOnClose = false;
};

} // namespace llmproxy
