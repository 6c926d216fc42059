// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/traycontroller.h"

#include "ui/appactions.h"
#include "ui/displaytext.h"
#include "ui/icons.h"
#include "ui/moneytext.h"

namespace llmproxy {

TrayController::TrayController(AppActions *actions, QObject *parent)
    : QObject(parent) {
    m_menu.setObjectName(QStringLiteral("trayMenu"));
    m_menu.addAction(actions->showDashboard());
    m_menu.addSeparator();
    m_menu.addAction(actions->pause());
    m_menu.addAction(actions->flush());
    m_menu.addSeparator();
    m_menu.addAction(actions->quit());
    m_icon.setContextMenu(&m_menu);
    setState(TrayState::Idle, false);
    m_stateTip = TrayController::tr("llm-proxy: starting");
    m_icon.setToolTip(m_stateTip);
    connect(&m_icon, &QSystemTrayIcon::activated, this,
            [this, actions](QSystemTrayIcon::ActivationReason reason) {
                if (reason == QSystemTrayIcon::Trigger || reason == QSystemTrayIcon::DoubleClick) {
                    Q_EMIT activated();
                    actions->showDashboard()->trigger();
                }
            });
}

TrayController::~TrayController() {
    m_icon.setContextMenu(nullptr);
}

bool TrayController::isAvailable() {
    return QSystemTrayIcon::isSystemTrayAvailable();
}

bool TrayController::show() {
    if (!isAvailable())
        return false;
    m_icon.show();
    return true;
}

void TrayController::setState(TrayState state, bool paused) {
    if (m_stateKnown && state == m_state && paused == m_paused)
        return;
    m_stateKnown = true;
    m_state = state;
    m_paused = paused;
    m_icon.setIcon(icons::trayState(state, paused));
}

void TrayController::showSnapshot(const ProxySnapshot &snapshot) {
    setState(trayStateFor(snapshot), snapshot.paused);
    m_stateTip = trayToolTip(snapshot);
    updateToolTip();
}

void TrayController::showMoney(const MoneySummary &summary) {
    m_moneyTip = money::savedToday(summary);
    updateToolTip();
}

void TrayController::updateToolTip() {
    m_icon.setToolTip(m_moneyTip.isEmpty() ? m_stateTip : m_stateTip + u'\n' + m_moneyTip);
}

void TrayController::notifyBatchFinished(const BatchProgress &batch) {
    const QString what = display::group(batch) + QStringLiteral(": ") + display::progress(batch);
    if (display::endedBadly(batch)) {
        QString message =
            tr("Batch %1 ended %2 (%3)")
                .arg(display::batchName(batch), QString::fromUtf8(batch.status), what);
        if (!batch.errors.isEmpty())
            message += u'\n' + batch.errors.constFirst();
        notify(tr("Batch %1").arg(QString::fromUtf8(batch.status)), message,
               QSystemTrayIcon::Warning);
    } else {
        QString message = tr("Batch %1 completed (%2)").arg(display::batchName(batch), what);
        // What it saved, when its lines reported usage (issue 10).
        const accounting::LedgerRow &usage = batch.usage;
        if (usage.requests > usage.requestsWithoutUsage) {
            message += u'\n' + tr("Saved %1 (paid %2 instead of %3)")
                                   .arg(money::amount(usage, &accounting::LedgerRow::saved),
                                        money::amount(usage, &accounting::LedgerRow::paid),
                                        money::amount(usage, &accounting::LedgerRow::list));
        }
        notify(tr("Batch finished"), message, QSystemTrayIcon::Information);
    }
}

void TrayController::notifyError(const QString &title, const QString &message) {
    notify(title, message, QSystemTrayIcon::Critical);
}

void TrayController::notify(const QString &title, const QString &message,
                            QSystemTrayIcon::MessageIcon icon) {
    if (!m_notify)
        return;
    if (m_icon.isVisible() && QSystemTrayIcon::supportsMessages())
        m_icon.showMessage(title, message, icon);
    Q_EMIT notified(title, message);
}

} // namespace llmproxy
