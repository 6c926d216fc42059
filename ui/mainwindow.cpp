// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/mainwindow.h"

#include "ui/appactions.h"
#include "ui/dashboardpage.h"
#include "ui/historypage.h"
#include "ui/icons.h"
#include "ui/settingspage.h"

#include <QAction>
#include <QCloseEvent>
#include <QMenu>
#include <QMenuBar>
#include <QScrollArea>
#include <QStatusBar>
#include <QTabWidget>

namespace llmproxy {

MainWindow::MainWindow(AppActions *actions, BatchTableModel *active, BatchTableModel *finished,
                       SnapshotHistory *history, QWidget *parent)
    : QMainWindow(parent)
    , m_actions(actions)
    , m_tabs(new QTabWidget(this))
    , m_dashboard(new DashboardPage(actions, active, history, m_tabs))
    , m_history(new HistoryPage(finished, m_tabs))
    , m_settings(new SettingsPage) {
    setObjectName(QStringLiteral("mainWindow"));
    setWindowTitle(QStringLiteral("llm-proxy"));
    setWindowIcon(icons::application());
    m_tabs->setObjectName(QStringLiteral("tabs"));
    m_tabs->addTab(m_dashboard, QStringLiteral("&Dashboard"));
    m_tabs->addTab(m_history, QStringLiteral("&History"));
    auto *scroll = new QScrollArea(m_tabs);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setWidget(m_settings);
    m_tabs->addTab(scroll, QStringLiteral("&Settings"));
    setCentralWidget(m_tabs);

    QMenu *file = menuBar()->addMenu(QStringLiteral("&Proxy"));
    file->addAction(actions->pause());
    file->addAction(actions->flush());
    file->addSeparator();
    file->addAction(actions->quit());
    addAction(actions->quit()); // the shortcut works with the menu bar hidden too

    QMenu *help = menuBar()->addMenu(QStringLiteral("&Help"));
    QAction *connectClient = help->addAction(QStringLiteral("&Connect a client…"));
    connectClient->setObjectName(QStringLiteral("connectClientAction"));
    connect(connectClient, &QAction::triggered, this, [this] {
        m_tabs->setCurrentWidget(m_dashboard);
        m_dashboard->showFirstRun();
        bringForward();
    });

    statusBar()->setObjectName(QStringLiteral("statusBar"));
    connect(m_dashboard, &DashboardPage::baseUrlCopied, this, [this](const QString &url) {
        statusBar()->showMessage(QStringLiteral("Copied ") + url, 4000);
    });
    resize(1180, 820);
}

void MainWindow::bringForward() {
    if (isMinimized())
        showNormal();
    else
        show();
    raise();
    activateWindow();
}

void MainWindow::closeEvent(QCloseEvent *event) {
    if (m_hideOnClose) {
        hide();
        event->ignore();
        return;
    }
    event->ignore(); // the app quits once the proxy has stopped
    Q_EMIT quitRequested();
}

} // namespace llmproxy
