// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/dashboardpage.h"

#include "ui/appactions.h"
#include "ui/batchfiltermodel.h"
#include "ui/batchtablemodel.h"
#include "ui/chartswidget.h"
#include "ui/displaytext.h"
#include "ui/errorstyle.h"
#include "ui/firstrunpanel.h"
#include "ui/icons.h"
#include "ui/moneypanel.h"
#include "ui/progressdelegate.h"
#include "ui/traystate.h"

#include <QClipboard>
#include <QGridLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPainter>
#include <QPushButton>
#include <QSplitter>
#include <QTableView>
#include <QToolButton>
#include <QVBoxLayout>

namespace llmproxy {

namespace {

// A URL a local client can use: the wildcard addresses become loopback ones.
QString clientUrl(QString url) {
    url.replace(QStringLiteral("//0.0.0.0:"), QStringLiteral("//127.0.0.1:"));
    url.replace(QStringLiteral("//[::]:"), QStringLiteral("//[::1]:"));
    return url;
}

QString stateText(const ProxySnapshot &snapshot) {
    switch (trayStateFor(snapshot)) {
    case TrayState::Idle:
        return snapshot.paused ? DashboardPage::tr("Paused: nothing waiting")
                               : DashboardPage::tr("Idle: nothing waiting");
    case TrayState::Waiting:
        return snapshot.paused ? DashboardPage::tr("Paused: requests are held")
                               : DashboardPage::tr("Collecting requests into batches");
    case TrayState::BatchesOut:
        return snapshot.paused ? DashboardPage::tr("Paused; batches already out are running")
                               : DashboardPage::tr("Batches out at the provider");
    case TrayState::Error:
        if (!snapshot.listening)
            return DashboardPage::tr("Not listening");
        if (!snapshot.listenError.isEmpty())
            return DashboardPage::tr("Listening, but the new address failed");
        return DashboardPage::tr("A batch failed recently (see History)");
    }
    return QString();
}

QPixmap dot(const QColor &color) {
    QPixmap pixmap(14, 14);
    pixmap.fill(Qt::transparent);
    QPainter painter(&pixmap);
    painter.setRenderHint(QPainter::Antialiasing);
    painter.setPen(Qt::NoPen);
    painter.setBrush(color);
    painter.drawEllipse(QRectF(1, 1, 12, 12));
    return pixmap;
}

} // namespace

DashboardPage::DashboardPage(AppActions *actions, BatchTableModel *active, SnapshotHistory *history,
                             QWidget *parent)
    : QWidget(parent)
    , m_activeModel(active)
    , m_activeSorted(new BatchFilterModel(this)) {
    auto *layout = new QVBoxLayout(this);

    // State, address, uptime, and the two actions.
    auto *status = new QHBoxLayout;
    m_stateDot = new QLabel(this);
    m_stateDot->setPixmap(dot(icons::stateColor(TrayState::Idle)));
    m_state = new QLabel(DashboardPage::tr("Starting…"), this);
    m_state->setObjectName(QStringLiteral("stateLabel"));
    QFont bold = m_state->font();
    bold.setBold(true);
    m_state->setFont(bold);
    m_listen = new QLabel(this);
    m_listen->setObjectName(QStringLiteral("listenLabel"));
    m_listen->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_copy = new QPushButton(DashboardPage::tr("Copy base URL"), this);
    m_copy->setObjectName(QStringLiteral("copyBaseUrlButton"));
    m_copy->setToolTip(DashboardPage::tr("Copy the URL to give your OpenAI SDK as its base URL"));
    m_copy->setEnabled(false);
    m_uptime = new QLabel(this);
    m_uptime->setObjectName(QStringLiteral("uptimeLabel"));
    auto *pause = new QToolButton(this);
    pause->setObjectName(QStringLiteral("pauseButton"));
    pause->setDefaultAction(actions->pause());
    auto *flush = new QToolButton(this);
    flush->setObjectName(QStringLiteral("flushButton"));
    flush->setDefaultAction(actions->flush());
    status->addWidget(m_stateDot);
    status->addWidget(m_state);
    status->addSpacing(16);
    status->addWidget(m_listen);
    status->addWidget(m_copy);
    status->addStretch(1);
    status->addWidget(m_uptime);
    status->addSpacing(12);
    status->addWidget(pause);
    status->addWidget(flush);
    layout->addLayout(status);

    m_listenError = new QLabel(this);
    m_listenError->setObjectName(QStringLiteral("listenErrorLabel"));
    errorstyle::setLabelError(m_listenError);
    m_listenError->setWordWrap(true);
    m_listenError->hide();
    layout->addWidget(m_listenError);

    // Money first (issue 10): saved today, this month, since install; fed by moneyReady.
    m_money = new MoneyPanel(this);
    layout->addWidget(m_money);

    m_firstRun = new FirstRunPanel(this);
    layout->addWidget(m_firstRun);

    // Totals.
    auto *totals = new QHBoxLayout;
    auto *requests = new QGroupBox(DashboardPage::tr("Requests"), this);
    auto *requestGrid = new QGridLayout(requests);
    m_requestsTotal = addValue(requestGrid, 0, 0, DashboardPage::tr("Answered"),
                               QStringLiteral("requestsTotalValue"),
                               DashboardPage::tr("Batched requests answered since start"));
    m_requestsSuccessful = addValue(requestGrid, 1, 0, DashboardPage::tr("Successful"),
                                    QStringLiteral("requestsSuccessfulValue"));
    m_requestsFailed = addValue(requestGrid, 2, 0, DashboardPage::tr("Failed"),
                                QStringLiteral("requestsFailedValue"));
    m_synthesized = addValue(requestGrid, 3, 0, DashboardPage::tr("Errors made by the proxy"),
                             QStringLiteral("synthesizedValue"),
                             DashboardPage::tr("Failures the proxy answered itself "
                                               "(synthesized_error_responses)"));
    m_queued =
        addValue(requestGrid, 0, 2, DashboardPage::tr("Waiting"), QStringLiteral("queuedValue"),
                 DashboardPage::tr("Queued for their batch to be sent"));
    m_inFlight =
        addValue(requestGrid, 1, 2, DashboardPage::tr("In flight"), QStringLiteral("inFlightValue"),
                 DashboardPage::tr("In a batch at the provider"));
    m_relayed =
        addValue(requestGrid, 2, 2, DashboardPage::tr("Relayed"), QStringLiteral("relayedValue"),
                 DashboardPage::tr("Passed through unbatched, at full price"));
    m_waitingStreams = addValue(
        requestGrid, 3, 2, DashboardPage::tr("Waiting streams"),
        QStringLiteral("waitingStreamsValue"),
        DashboardPage::tr("Streaming clients waiting for their batch (counted in Waiting or In "
                          "flight too)"));
    m_waitingForQuota = addValue(
        requestGrid, 4, 2, DashboardPage::tr("Waiting for quota"),
        QStringLiteral("waitingForQuotaValue"),
        DashboardPage::tr("Waiting for room in their model's queue at the provider (the queue "
                          "limits; counted in Waiting too)"));
    totals->addWidget(requests);

    auto *latency = new QGroupBox(DashboardPage::tr("Latency"), this);
    auto *latencyGrid = new QGridLayout(latency);
    m_requestAvg = addValue(latencyGrid, 0, 0, DashboardPage::tr("Request average"),
                            QStringLiteral("requestAvgValue"));
    m_requestP50 =
        addValue(latencyGrid, 1, 0, DashboardPage::tr("Request p50"),
                 QStringLiteral("requestP50Value"), DashboardPage::tr("From arrival to answer"));
    m_requestP95 = addValue(latencyGrid, 2, 0, DashboardPage::tr("Request p95"),
                            QStringLiteral("requestP95Value"));
    m_requestP99 = addValue(latencyGrid, 3, 0, DashboardPage::tr("Request p99"),
                            QStringLiteral("requestP99Value"));
    m_batchP50 =
        addValue(latencyGrid, 1, 2, DashboardPage::tr("Batch p50"), QStringLiteral("batchP50Value"),
                 DashboardPage::tr("From creation at the provider to the end"));
    m_batchP95 = addValue(latencyGrid, 2, 2, DashboardPage::tr("Batch p95"),
                          QStringLiteral("batchP95Value"));
    m_batchP99 = addValue(latencyGrid, 3, 2, DashboardPage::tr("Batch p99"),
                          QStringLiteral("batchP99Value"));
    totals->addWidget(latency);

    auto *batches = new QGroupBox(DashboardPage::tr("Batches"), this);
    auto *batchGrid = new QGridLayout(batches);
    m_batchesSent =
        addValue(batchGrid, 0, 0, DashboardPage::tr("Sent"), QStringLiteral("batchesSentValue"),
                 DashboardPage::tr("Submitted since start"));
    m_batchesActive = addValue(batchGrid, 1, 0, DashboardPage::tr("Active"),
                               QStringLiteral("batchesActiveValue"));
    m_batchesTotal =
        addValue(batchGrid, 2, 0, DashboardPage::tr("Ended"), QStringLiteral("batchesTotalValue"));
    m_batchesSuccessful = addValue(batchGrid, 3, 0, DashboardPage::tr("Completed"),
                                   QStringLiteral("batchesSuccessfulValue"));
    m_batchesFailed = addValue(batchGrid, 4, 0, DashboardPage::tr("Failed"),
                               QStringLiteral("batchesFailedValue"));
    totals->addWidget(batches);
    layout->addLayout(totals);

    // Active batches above the charts.
    auto *splitter = new QSplitter(Qt::Vertical, this);
    auto *activeBox = new QWidget(splitter);
    auto *activeLayout = new QVBoxLayout(activeBox);
    activeLayout->setContentsMargins(0, 0, 0, 0);
    m_activeTitle = new QLabel(DashboardPage::tr("Active batches"), activeBox);
    m_activeTitle->setFont(bold);
    activeLayout->addWidget(m_activeTitle);
    m_activeSorted->setSourceModel(m_activeModel);
    m_activeTable = new QTableView(activeBox);
    m_activeTable->setObjectName(QStringLiteral("activeBatchesTable"));
    m_activeTable->setModel(m_activeSorted);
    m_activeTable->setSortingEnabled(true);
    m_activeTable->sortByColumn(BatchTableModel::CreatedColumn, Qt::DescendingOrder);
    m_activeTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_activeTable->setAlternatingRowColors(true);
    m_activeTable->setItemDelegateForColumn(BatchTableModel::ProgressColumn,
                                            new ProgressDelegate(m_activeTable));
    m_activeTable->verticalHeader()->hide();
    m_activeTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_activeTable->horizontalHeader()->setSectionResizeMode(BatchTableModel::ProgressColumn,
                                                            QHeaderView::Stretch);
    m_activeTable->setColumnHidden(BatchTableModel::CreatedColumn, true);
    activeLayout->addWidget(m_activeTable);
    m_charts = new ChartsWidget(history, splitter);
    splitter->addWidget(activeBox);
    splitter->addWidget(m_charts);
    splitter->setStretchFactor(0, 2);
    splitter->setStretchFactor(1, 3);
    layout->addWidget(splitter, 1);

    connect(m_copy, &QPushButton::clicked, this, [this] {
        if (m_baseUrl.isEmpty())
            return;
        QGuiApplication::clipboard()->setText(m_baseUrl);
        Q_EMIT baseUrlCopied(m_baseUrl);
    });
    connect(m_firstRun, &FirstRunPanel::baseUrlCopied, this, &DashboardPage::baseUrlCopied);
    connect(m_firstRun, &FirstRunPanel::dismissed, this, &DashboardPage::finishFirstRun);
}

void DashboardPage::finishFirstRun() {
    if (m_firstRunDone)
        return;
    m_firstRunDone = true;
    Q_EMIT firstRunCompleted();
}

void DashboardPage::setFirstRunDone() {
    m_firstRunDone = true;
    m_firstRun->hide();
}

QLabel *DashboardPage::addValue(QGridLayout *grid, int row, int column, const QString &title,
                                const QString &name, const QString &toolTip) {
    auto *titleLabel = new QLabel(title + u':', this);
    auto *value = new QLabel(QStringLiteral("–"), this);
    value->setObjectName(name);
    value->setAlignment(Qt::AlignRight | Qt::AlignVCenter);
    value->setMinimumWidth(value->fontMetrics().horizontalAdvance(QStringLiteral("000,000,000")));
    titleLabel->setToolTip(toolTip);
    value->setToolTip(toolTip);
    grid->addWidget(titleLabel, row, column);
    grid->addWidget(value, row, column + 1);
    grid->setColumnStretch(column + 1, 1);
    return value;
}

void DashboardPage::showSnapshot(const ProxySnapshot &snapshot) {
    const TrayState state = trayStateFor(snapshot);
    m_stateDot->setPixmap(dot(icons::stateColor(state)));
    m_state->setText(stateText(snapshot));

    QStringList urls;
    for (const QString &url : snapshot.listenUrls)
        urls.append(clientUrl(url));
    m_baseUrl = urls.isEmpty() ? QString() : urls.constFirst();
    m_listen->setText(urls.isEmpty() ? DashboardPage::tr("not listening")
                                     : DashboardPage::tr("on ") + urls.join(QStringLiteral(", ")));
    m_copy->setEnabled(!m_baseUrl.isEmpty());
    m_firstRun->setBaseUrl(m_baseUrl);
    m_listenError->setVisible(!snapshot.listenError.isEmpty());
    m_listenError->setText(DashboardPage::tr("Listen address: ") + snapshot.listenError);
    m_uptime->setText(DashboardPage::tr("up ") + display::duration(snapshot.uptimeMs));

    const StatsSnapshot &s = snapshot.stats;
    // The first-run panel goes once a request was handled (now, or before a restart: batches
    // in the history, or the saved first-run flag), unless the user is reading a test
    // request's outcome in it.
    const bool handled =
        s.requestsTotal + s.relayed + s.queued + s.inFlight > 0 || !snapshot.batches.isEmpty();
    if (handled && !m_firstRunDone) {
        if (!m_firstRun->testSent())
            m_firstRun->hide();
        finishFirstRun(); // remembered: not shown again after a restart
    }
    m_requestsTotal->setText(display::count(s.requestsTotal));
    m_requestsSuccessful->setText(display::count(s.requestsSuccessful));
    m_requestsFailed->setText(display::count(s.requestsFailed));
    m_synthesized->setText(display::count(s.synthesizedErrors));
    m_relayed->setText(display::count(s.relayed));
    m_queued->setText(display::count(s.queued));
    m_inFlight->setText(display::count(s.inFlight));
    m_waitingStreams->setText(display::count(s.waitingStreams));
    m_waitingForQuota->setText(display::count(s.waitingForQuota));
    m_requestAvg->setText(display::latency(s.requestAvgMs));
    m_requestP50->setText(display::latency(s.requestP50Ms));
    m_requestP95->setText(display::latency(s.requestP95Ms));
    m_requestP99->setText(display::latency(s.requestP99Ms));
    m_batchP50->setText(display::latency(s.batchP50Ms));
    m_batchP95->setText(display::latency(s.batchP95Ms));
    m_batchP99->setText(display::latency(s.batchP99Ms));
    m_batchesSent->setText(display::count(snapshot.batchesSubmitted));
    m_batchesTotal->setText(display::count(s.batchesTotal));
    m_batchesSuccessful->setText(display::count(s.batchesSuccessful));
    m_batchesFailed->setText(display::count(s.batchesFailed));
    const int active = m_activeModel->rowCount();
    m_batchesActive->setText(display::count(static_cast<quint64>(active)));
    m_activeTitle->setText(active == 0 ? DashboardPage::tr("Active batches: none")
                                       : DashboardPage::tr("Active batches: ") +
                                             display::count(static_cast<quint64>(active)));
}

void DashboardPage::showStartFailed(const QString &error) {
    m_stateDot->setPixmap(dot(icons::stateColor(TrayState::Error)));
    m_state->setText(DashboardPage::tr("Not listening"));
    m_listen->setText(DashboardPage::tr("change the listen address in Settings"));
    m_baseUrl.clear();
    m_copy->setEnabled(false);
    m_firstRun->setBaseUrl(QString());
    m_listenError->setText(DashboardPage::tr("Could not start: ") + error);
    m_listenError->show();
}

void DashboardPage::showFirstRun() {
    m_firstRun->show();
}

} // namespace llmproxy
