// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The tray icon: its state icon and tooltip follow the snapshots, its menu holds the shared
// actions, and it tells the user when a batch finishes or fails (unless turned off). Where the
// desktop has no tray, isAvailable() is false and nothing is shown (the window shows instead).

#include "proxysnapshot.h"
#include "ui/moneysummary.h"
#include "ui/traystate.h"

#include <QMenu>
#include <QObject>
#include <QSystemTrayIcon>

namespace llmproxy {

class AppActions;

class TrayController final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TrayController)
public:
    explicit TrayController(AppActions *actions, QObject *parent = nullptr);
    ~TrayController() override;

    static bool isAvailable();
    // Shows the icon if the desktop has a tray; returns whether it is shown.
    bool show();

    QMenu *menu() { return &m_menu; }
    TrayState state() const { return m_state; }
    QString toolTip() const { return m_icon.toolTip(); }
    bool notificationsEnabled() const { return m_notify; }

public Q_SLOTS:
    void showSnapshot(const llmproxy::ProxySnapshot &snapshot);
    void notifyBatchFinished(const llmproxy::BatchProgress &batch);
    void notifyError(const QString &title, const QString &message);
    void setNotificationsEnabled(bool enabled) { m_notify = enabled; }
    // The money figures: the tooltip's last line says what was saved today.
    void showMoney(const llmproxy::MoneySummary &summary);

Q_SIGNALS:
    // A notification was shown (or would have been, where the desktop cannot show one).
    void notified(const QString &title, const QString &message);
    void activated(); // the icon was clicked

private:
    void setState(TrayState state, bool paused);
    void updateToolTip();
    void notify(const QString &title, const QString &message, QSystemTrayIcon::MessageIcon icon);

    QSystemTrayIcon m_icon;
    QMenu m_menu;
    TrayState m_state = TrayState::Idle;
    bool m_paused = false;
    bool m_stateKnown = false;
    bool m_notify = true;
    QString m_stateTip; // from the last snapshot
    QString m_moneyTip; // "Saved today: $1.23", empty without a ledger
};

} // namespace llmproxy
