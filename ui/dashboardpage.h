// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The dashboard: state and listen address (with a copy button for the base URL), uptime,
// the first-run panel until the first request, totals, the active batches with their progress, and
// the charts. A view of snapshots.

#include "proxysnapshot.h"

#include <QWidget>

class QLabel;
class QGridLayout;
class QTableView;
class QToolButton;
class QPushButton;

namespace llmproxy {

class AppActions;
class BatchFilterModel;
class BatchTableModel;
class ChartsWidget;
class FirstRunPanel;
class MoneyPanel;
class SnapshotHistory;

class DashboardPage final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(DashboardPage)
public:
    DashboardPage(AppActions *actions, BatchTableModel *active, SnapshotHistory *history,
                  QWidget *parent = nullptr);

    ChartsWidget *charts() const { return m_charts; }
    // Connect a client: shown until a request has been handled, and on request afterwards.
    FirstRunPanel *firstRun() const { return m_firstRun; }
    // Money saved, paid and tokens, first on the page (issue 10).
    MoneyPanel *money() const { return m_money; }
    // The base URL the copy button copies ("http://127.0.0.1:3030/v1"; empty when not listening).
    QString baseUrl() const { return m_baseUrl; }

public Q_SLOTS:
    void showSnapshot(const llmproxy::ProxySnapshot &snapshot);
    // The proxy could not start at all (no snapshot will come).
    void showStartFailed(const QString &error);
    // Help → Connect a client.
    void showFirstRun();
    // The first run is over (saved from an earlier run): the panel stays hidden until asked.
    void setFirstRunDone();

Q_SIGNALS:
    void baseUrlCopied(const QString &url);
    // The user hid the panel, or a client was served: remember it across restarts.
    void firstRunCompleted();

private:
    void finishFirstRun();
    QLabel *addValue(QGridLayout *grid, int row, int column, const QString &title,
                     const QString &name, const QString &toolTip = QString());

    BatchTableModel *m_activeModel;
    BatchFilterModel *m_activeSorted;
    QLabel *m_stateDot = nullptr;
    QLabel *m_state = nullptr;
    QLabel *m_listen = nullptr;
    QLabel *m_listenError = nullptr;
    QLabel *m_uptime = nullptr;
    QPushButton *m_copy = nullptr;
    QLabel *m_requestsTotal = nullptr;
    QLabel *m_requestsSuccessful = nullptr;
    QLabel *m_requestsFailed = nullptr;
    QLabel *m_synthesized = nullptr;
    QLabel *m_relayed = nullptr;
    QLabel *m_queued = nullptr;
    QLabel *m_inFlight = nullptr;
    QLabel *m_waitingStreams = nullptr;
    QLabel *m_waitingForQuota = nullptr;
    QLabel *m_requestAvg = nullptr;
    QLabel *m_requestP50 = nullptr;
    QLabel *m_requestP95 = nullptr;
    QLabel *m_requestP99 = nullptr;
    QLabel *m_batchesTotal = nullptr;
    QLabel *m_batchesSuccessful = nullptr;
    QLabel *m_batchesFailed = nullptr;
    QLabel *m_batchesSent = nullptr;
    QLabel *m_batchesActive = nullptr;
    QLabel *m_batchP50 = nullptr;
    QLabel *m_batchP95 = nullptr;
    QLabel *m_batchP99 = nullptr;
    QLabel *m_activeTitle = nullptr;
    QTableView *m_activeTable = nullptr;
    ChartsWidget *m_charts = nullptr;
    FirstRunPanel *m_firstRun = nullptr;
    MoneyPanel *m_money = nullptr;
    bool m_firstRunDone = false; // a request was handled, or the user hid the panel
    QString m_baseUrl;
};

} // namespace llmproxy
