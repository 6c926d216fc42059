// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/mainwindow.h"

#include "ui/appactions.h"
#include "ui/dashboardpage.h"
#include "ui/historypage.h"
#include "ui/icons.h"
#include "ui/mnemonics.h"
#include "ui/providerssettings.h"
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
    , m_settings(new SettingsPage)
    , m_providers(new ProvidersSettings) {
    setObjectName(QStringLiteral("mainWindow"));
    setWindowTitle(QStringLiteral("llm-proxy")); // the program's name, not translated
    setWindowIcon(icons::application());
    m_tabs->setObjectName(QStringLiteral("tabs"));
    m_tabs->addTab(m_dashboard, tr("&Dashboard"));
    m_tabs->addTab(m_history, tr("H&istory"));
    auto *scroll = new QScrollArea(m_tabs);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setWidget(m_settings);
    m_tabs->addTab(scroll, tr("&Settings"));
    auto *providersScroll = new QScrollArea(m_tabs);
    providersScroll->setWidgetResizable(true);
    providersScroll->setFrameShape(QFrame::NoFrame);
    providersScroll->setWidget(m_providers);
    m_tabs->addTab(providersScroll, tr("Pro&viders"));
    setCentralWidget(m_tabs);

    QMenu *file = menuBar()->addMenu(tr("&Proxy"));
    file->addAction(actions->pause());
    file->addAction(actions->flush());
    file->addSeparator();
    file->addAction(actions->quit());
    addAction(actions->quit()); // the shortcut works with the menu bar hidden too

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    QAction *connectClient = help->addAction(tr("&Connect a client…"));
    connectClient->setObjectName(QStringLiteral("connectClientAction"));
    connect(connectClient, &QAction::triggered, this, [this] {
        showPage("first-run");
        bringForward();
    });

    statusBar()->setObjectName(QStringLiteral("statusBar"));
    connect(m_dashboard, &DashboardPage::baseUrlCopied, this, [this](const QString &url) {
        statusBar()->showMessage(tr("Copied %1").arg(url), 4000);
    });

    // Alt+letter: the menus and tabs keep theirs; each page's controls get the letters left,
    // so no two controls shown together share one (the settings' labels come from the table).
    QSet<QChar> windowLetters;
    for (const QAction *menu : menuBar()->actions())
        windowLetters.insert(mnemonics::of(menu->text()));
    for (int i = 0; i < m_tabs->count(); ++i)
        windowLetters.insert(mnemonics::of(m_tabs->tabText(i)));
    windowLetters.remove(QChar());
    for (QWidget *page : {static_cast<QWidget *>(m_dashboard), static_cast<QWidget *>(m_history),
                          static_cast<QWidget *>(m_settings), static_cast<QWidget *>(m_providers)})
        mnemonics::assignUnder(page, windowLetters);
    resize(1180, 820);
}

bool MainWindow::showPage(QByteArrayView name) {
    // The settings pages sit in scroll areas: their tab is the area around them.
    const auto tabOf = [this](QWidget *page) {
        for (int i = 0; i < m_tabs->count(); ++i) {
            if (m_tabs->widget(i) == page || m_tabs->widget(i)->isAncestorOf(page))
                return i;
        }
        return -1;
    };
    QWidget *page = nullptr;
    if (name == "dashboard" || name == "first-run")
        page = m_dashboard;
    else if (name == "history")
        page = m_history;
    else if (name == "settings")
        page = m_settings;
    else if (name == "providers")
        page = m_providers;
    if (!page)
        return false;
    m_tabs->setCurrentIndex(tabOf(page));
    if (name == "first-run")
        m_dashboard->showFirstRun();
    return true;
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
