// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/appactions.h"

namespace llmproxy {

AppActions::AppActions(QObject *parent)
    : QObject(parent)
    , m_show(new QAction(AppActions::tr("Show &dashboard"), this))
    , m_pause(new QAction(AppActions::tr("&Pause batching"), this))
    , m_flush(new QAction(AppActions::tr("&Send pending batches now"), this))
    , m_quit(new QAction(AppActions::tr("&Quit"), this)) {
    m_show->setObjectName(QStringLiteral("showDashboardAction"));
    m_pause->setObjectName(QStringLiteral("pauseAction"));
    m_flush->setObjectName(QStringLiteral("flushAction"));
    m_quit->setObjectName(QStringLiteral("quitAction"));
    m_pause->setCheckable(true);
    m_pause->setToolTip(AppActions::tr("Hold every request; nothing is sent until you resume"));
    m_flush->setToolTip(AppActions::tr("Send every waiting group's batch now, without waiting for "
                                       "its window"));
    m_quit->setShortcut(QKeySequence::Quit);
    m_quit->setMenuRole(QAction::QuitRole);

    connect(m_show, &QAction::triggered, this, &AppActions::showDashboardRequested);
    connect(m_pause, &QAction::triggered, this, [this](bool checked) {
        setPaused(checked);
        Q_EMIT pauseRequested(checked);
    });
    connect(m_flush, &QAction::triggered, this, &AppActions::flushRequested);
    connect(m_quit, &QAction::triggered, this, &AppActions::quitRequested);
}

void AppActions::setPaused(bool paused) {
    m_pause->setChecked(paused);
    m_pause->setText(paused ? AppActions::tr("Resume &batching")
                            : AppActions::tr("&Pause batching"));
}

} // namespace llmproxy
