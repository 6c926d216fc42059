// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The desktop app's object graph: shared actions, the models, the main window and the tray,
// wired to a SettingsController. Snapshots come in through slots; the user's intents go out
// as signals (the composition root connects them to the ProxyHost).

#include "proxysnapshot.h"
#include "ui/moneysummary.h"

#include <QObject>

#include <memory>

namespace llmproxy {

class AppActions;
class BatchTableModel;
class MainWindow;
class SettingsController;
class SnapshotHistory;
class TrayController;

class DesktopApp final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(DesktopApp)
public:
    explicit DesktopApp(SettingsController *settings, QObject *parent = nullptr);
    ~DesktopApp() override;

    MainWindow *window() const { return m_window.get(); }
    TrayController *tray() const { return m_tray; }
    AppActions *actions() const { return m_actions; }
    SnapshotHistory *history() const { return m_history; }
    BatchTableModel *activeModel() const { return m_active; }
    BatchTableModel *finishedModel() const { return m_finished; }
    // Whether the tray icon is shown (false where the desktop has none).
    bool hasTray() const { return m_hasTray; }

    // Shows the tray icon where there is a tray, and the window; `inTray` (start at login)
    // leaves the window hidden where there is a tray to bring it back from.
    void show(bool inTray = false);

public Q_SLOTS:
    void showSnapshot(const llmproxy::ProxySnapshot &snapshot);
    void showBatchFinished(const llmproxy::BatchProgress &batch);
    void showListenFailed(const QString &error);
    void showStartFailed(const QString &error);
    // Money (issue 10): the dashboard's panel and the tray's tooltip.
    void showMoney(const llmproxy::MoneySummary &summary);
    // The proxy read the price overrides again (empty error) or could not.
    void showPricesReloaded(const QString &error);
    // Another launch asked us to come forward.
    void activate();

Q_SIGNALS:
    void pauseRequested(bool paused);
    void flushRequested();
    void quitRequested();
    // The user saved price overrides: the running proxy should read them.
    void pricesChanged();

private:
    SettingsController *m_settings;
    AppActions *m_actions;
    SnapshotHistory *m_history;
    BatchTableModel *m_active;
    BatchTableModel *m_finished;
    std::unique_ptr<MainWindow> m_window;
    TrayController *m_tray;
    bool m_hasTray = false;
};

} // namespace llmproxy
