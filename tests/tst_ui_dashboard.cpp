// SPDX-License-Identifier: GPL-3.0-or-later
// The main window renders the snapshots it is given (values, not pixels): state, address and
// copy button, uptime, totals, active batches, charts, the history with its filter and details;
// the close button hides to the tray or asks to quit.

#include "settings/settingsstore.h"
#include "ui/appactions.h"
#include "ui/batchtablemodel.h"
#include "ui/chartswidget.h"

#include "ui/dashboardpage.h"
#include "ui/desktopapp.h"
#include "ui/historypage.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/progressdelegate.h"
#include "ui/settingscontroller.h"
#include <QAbstractAxis>
#include <QChart>
#include <QChartView>

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QLabel>
#include <QLineSeries>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>
#include <QTextBrowser>
#include <QToolButton>

using namespace llmproxy;

namespace {

const QDateTime Now = QDateTime::currentDateTimeUtc();

BatchProgress makeBatch(const QByteArray &id, const QByteArray &status, bool active, int total = 10,
                        int completed = 0, int failed = 0, qint64 ageSeconds = 60) {
    BatchProgress batch;
    batch.localId = id;
    batch.batchId = "batch_" + id;
    batch.endpoint = "/v1/chat/completions";
    batch.model = "gpt-4o-mini";
    batch.keyHint = "…wxyz";
    batch.status = status;
    batch.active = active;
    batch.total = total;
    batch.completed = completed;
    batch.failed = failed;
    batch.createdAt = Now.addSecs(-ageSeconds);
    batch.submittedAt = batch.createdAt.addSecs(4);
    if (!active)
        batch.endedAt = batch.createdAt.addSecs(50);
    return batch;
}

ProxySnapshot baseSnapshot() {
    ProxySnapshot snapshot;
    snapshot.takenAt = Now;
    snapshot.listening = true;
    snapshot.listenUrls = {QStringLiteral("http://127.0.0.1:3030/v1"),
                           QStringLiteral("http://[::1]:3030/v1")};
    snapshot.uptimeMs = 3'700'000;
    return snapshot;
}

} // namespace

class TestUiDashboard final : public QObject {
    Q_OBJECT

private slots:
    void init();
    void cleanup();

    void totalsAndState();
    void copyBaseUrl();
    void activeBatches();
    void charts();
    void chartsFitTheDataUntilTheSpanIsFull();
    void chartsFollowThePalette();
    void chartSpanIsRemembered();
    void historyFilterAndDetails();
    void detailsEscapeProviderText();
    void startFailed();
    void pauseFollowsSnapshots();
    void closeHidesOrQuits();
    void manyBatches();
    void waitingStreamsNextToWaitingRequests();

private:
    template <typename T>
    T *find(const char *name) const {
        T *widget = m_app->window()->findChild<T *>(QString::fromLatin1(name));
        if (!widget)
            qWarning("no widget named %s", name);
        return widget;
    }
    QString text(const char *name) const {
        const QLabel *label = find<QLabel>(name);
        return label ? label->text() : QStringLiteral("<missing>");
    }

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
};

void TestUiDashboard::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test"));
    m_settings = std::make_unique<SettingsController>(m_store.get(), m_keys.get(), m_store->load(),
                                                      QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
}

void TestUiDashboard::cleanup() {
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
}

void TestUiDashboard::totalsAndState() {
    QCOMPARE(text("stateLabel"), QStringLiteral("Starting…"));
    ProxySnapshot snapshot = baseSnapshot();
    StatsSnapshot &s = snapshot.stats;
    s.requestsTotal = 1234;
    s.requestsSuccessful = 1200;
    s.requestsFailed = 34;
    s.synthesizedErrors = 4;
    s.relayed = 17;
    s.queued = 250;
    s.inFlight = 1000;
    s.requestAvgMs = 61'000;
    s.requestP50Ms = 60'500;
    s.requestP95Ms = 185'000;
    s.requestP99Ms = 7'440'000;
    s.batchesTotal = 9;
    s.batchesSuccessful = 8;
    s.batchesFailed = 1;
    s.batchP50Ms = 42.24;
    snapshot.batchesSubmitted = 12;
    snapshot.batches = {makeBatch("a", "in_progress", true), makeBatch("b", "validating", true),
                        makeBatch("c", "completed", false, 10, 10, 0, 900)};
    m_app->showSnapshot(snapshot);

    QCOMPARE(text("requestsTotalValue"), QStringLiteral("1,234"));
    QCOMPARE(text("requestsSuccessfulValue"), QStringLiteral("1,200"));
    QCOMPARE(text("requestsFailedValue"), QStringLiteral("34"));
    QCOMPARE(text("synthesizedValue"), QStringLiteral("4"));
    QCOMPARE(text("relayedValue"), QStringLiteral("17"));
    QCOMPARE(text("queuedValue"), QStringLiteral("250"));
    QCOMPARE(text("inFlightValue"), QStringLiteral("1,000"));
    QCOMPARE(text("requestAvgValue"), QStringLiteral("1 min 01 s"));
    QCOMPARE(text("requestP50Value"), QStringLiteral("1 min 00 s"));
    QCOMPARE(text("requestP95Value"), QStringLiteral("3 min 05 s"));
    QCOMPARE(text("requestP99Value"), QStringLiteral("2 h 04 min"));
    QCOMPARE(text("batchP50Value"), QStringLiteral("42.2 ms"));
    QCOMPARE(text("batchesTotalValue"), QStringLiteral("9"));
    QCOMPARE(text("batchesSuccessfulValue"), QStringLiteral("8"));
    QCOMPARE(text("batchesFailedValue"), QStringLiteral("1"));
    QCOMPARE(text("batchesSentValue"), QStringLiteral("12"));
    QCOMPARE(text("batchesActiveValue"), QStringLiteral("2"));
    QCOMPARE(text("uptimeLabel"), QStringLiteral("up 1 h 01 min"));
    QCOMPARE(text("stateLabel"), QStringLiteral("Batches out at the provider"));
    QVERIFY(text("listenLabel").contains(QStringLiteral("http://127.0.0.1:3030/v1")));
    QVERIFY(text("listenLabel").contains(QStringLiteral("http://[::1]:3030/v1")));
    QVERIFY(!find<QLabel>("listenErrorLabel")->isVisible());

    snapshot.batches.clear();
    snapshot.stats.inFlight = 0;
    m_app->showSnapshot(snapshot);
    QCOMPARE(text("stateLabel"), QStringLiteral("Collecting requests into batches"));
    snapshot.stats.queued = 0;
    m_app->showSnapshot(snapshot);
    QCOMPARE(text("stateLabel"), QStringLiteral("Idle: nothing waiting"));
    snapshot.listenError = QStringLiteral("127.0.0.1:3031: address in use");
    m_app->showSnapshot(snapshot);
    QVERIFY(find<QLabel>("listenErrorLabel")->isVisible());
    QVERIFY(text("listenErrorLabel").contains(QStringLiteral("address in use")));
}

void TestUiDashboard::copyBaseUrl() {
    auto *copy = find<QPushButton>("copyBaseUrlButton");
    QVERIFY(copy);
    QVERIFY(!copy->isEnabled()); // nothing to copy before the first snapshot
    ProxySnapshot snapshot = baseSnapshot();
    snapshot.listenUrls = {QStringLiteral("http://0.0.0.0:4040/v1"),
                           QStringLiteral("http://[::]:4040/v1")};
    m_app->showSnapshot(snapshot);
    QVERIFY(copy->isEnabled());
    QSignalSpy copied(m_app->window()->dashboard(), &DashboardPage::baseUrlCopied);
    QTest::mouseClick(copy, Qt::LeftButton);
    QCOMPARE(copied.count(), 1);
    // All interfaces: a local client uses the loopback address.
    QCOMPARE(copied.constFirst().constFirst().toString(),
             QStringLiteral("http://127.0.0.1:4040/v1"));
    QCOMPARE(QGuiApplication::clipboard()->text(), QStringLiteral("http://127.0.0.1:4040/v1"));
    QVERIFY(text("listenLabel").contains(QStringLiteral("http://[::1]:4040/v1")));
}

void TestUiDashboard::activeBatches() {
    ProxySnapshot snapshot = baseSnapshot();
    snapshot.batches = {makeBatch("old", "in_progress", true, 100, 40, 2, 600),
                        makeBatch("new", "uploading", true, 3, 0, 0, 5),
                        makeBatch("done", "completed", false)};
    m_app->showSnapshot(snapshot);
    auto *table = find<QTableView>("activeBatchesTable");
    QVERIFY(table);
    const QAbstractItemModel *model = table->model();
    QCOMPARE(model->rowCount(), 2);
    // Newest first.
    QCOMPARE(model->index(0, BatchTableModel::BatchColumn).data().toString(),
             QStringLiteral("batch_new"));
    QCOMPARE(model->index(1, BatchTableModel::StatusColumn).data().toString(),
             QStringLiteral("in_progress"));
    QCOMPARE(model->index(1, BatchTableModel::ProgressColumn).data().toString(),
             QStringLiteral("42 / 100 · 2 failed"));
    QCOMPARE(model->index(1, BatchTableModel::ProgressColumn)
                 .data(BatchTableModel::ProgressRole)
                 .toInt(),
             42);
    QCOMPARE(model->index(1, BatchTableModel::KeyColumn).data().toString(),
             QStringLiteral("…wxyz"));
    QCOMPARE(model->index(1, BatchTableModel::TimeColumn).data().toString(),
             QStringLiteral("10 min 00 s"));
    QVERIFY(qobject_cast<ProgressDelegate *>(
        table->itemDelegateForColumn(BatchTableModel::ProgressColumn)));
    // The next snapshot moves "old" to the history.
    snapshot.batches[0].active = false;
    snapshot.batches[0].status = "completed";
    snapshot.batches[0].endedAt = Now;
    m_app->showSnapshot(snapshot);
    QCOMPARE(model->rowCount(), 1);
    QCOMPARE(m_app->finishedModel()->rowCount(), 2);
}

void TestUiDashboard::charts() {
    ChartsWidget *charts = m_app->window()->dashboard()->charts();
    const qint64 start = Now.toMSecsSinceEpoch() - 20'000;
    for (int i = 0; i < 10; ++i) {
        ProxySnapshot snapshot = baseSnapshot();
        snapshot.takenAt = QDateTime::fromMSecsSinceEpoch(start + i * 1000LL, Qt::UTC);
        snapshot.stats.queued = static_cast<quint64>(i);
        snapshot.stats.inFlight = static_cast<quint64>(2 * i);
        snapshot.stats.requestP50Ms = 100.0 * i;
        snapshot.stats.requestP95Ms = 200.0 * i;
        snapshot.stats.requestP99Ms = 300.0 * i;
        snapshot.batchesSubmitted = static_cast<quint64>(i / 2);
        snapshot.batchesEnded = static_cast<quint64>(i / 3);
        m_app->showSnapshot(snapshot);
    }
    const auto series = [charts](const char *name) {
        return charts->series(QString::fromLatin1(name));
    };
    for (const char *name : {"queuedSeries", "inFlightSeries", "p50Series", "p95Series",
                             "p99Series", "batchesSentSeries", "batchesFinishedSeries"}) {
        QVERIFY2(series(name), name);
        QCOMPARE(series(name)->count(), 10);
    }
    QCOMPARE(series("queuedSeries")->at(9).y(), 9.0);
    QCOMPARE(series("inFlightSeries")->at(9).y(), 18.0);
    QCOMPARE(series("batchesSentSeries")->at(9).y(), 4.0);
    QCOMPARE(series("batchesFinishedSeries")->at(9).y(), 3.0);
    QCOMPARE(series("queuedSeries")->at(9).x(), static_cast<qreal>(start + 9000));
    // p99 reached 2.7 s: the latency chart reads in seconds.
    QCOMPARE(charts->latencyUnit(), QStringLiteral("s"));
    QCOMPARE(series("p99Series")->at(9).y(), 2.7);
    QCOMPARE(series("p50Series")->at(9).y(), 0.9);
}

void TestUiDashboard::chartsFitTheDataUntilTheSpanIsFull() {
    ChartsWidget *charts = m_app->window()->dashboard()->charts();
    QCOMPARE(charts->span(), ChartSpan::Minutes15);
    const qint64 start = Now.toMSecsSinceEpoch() - 30LL * 60 * 1000;
    const auto show = [this, start](qint64 offsetMs) {
        ProxySnapshot snapshot = baseSnapshot();
        snapshot.takenAt = QDateTime::fromMSecsSinceEpoch(start + offsetMs, Qt::UTC);
        m_app->showSnapshot(snapshot);
    };
    const qint64 minVisible = ChartsWidget::MinVisible.count();
    // Right after start: ten seconds of data fill the axis's minimum width, not a sliver of
    // 15 minutes.
    show(0);
    show(10'000);
    QCOMPARE(charts->timeRange(), std::make_pair(start + 10'000 - minVisible, start + 10'000));
    // Five minutes of data: the axis is exactly the data's extent.
    for (qint64 t = 20'000; t <= 5LL * 60 * 1000; t += 10'000)
        show(t);
    QCOMPARE(charts->timeRange(), std::make_pair(start, start + 5LL * 60 * 1000));
    // Twenty minutes: the chosen span, ending at the latest sample.
    for (qint64 t = 5LL * 60 * 1000 + 10'000; t <= 20LL * 60 * 1000; t += 10'000)
        show(t);
    QCOMPARE(charts->timeRange(),
             std::make_pair(start + 5LL * 60 * 1000, start + 20LL * 60 * 1000));
}

void TestUiDashboard::chartsFollowThePalette() {
    ChartsWidget *charts = m_app->window()->dashboard()->charts();
    auto *view = charts->findChild<QChartView *>(QStringLiteral("queueChart"));
    QVERIFY(view);
    QPalette dark = charts->palette();
    dark.setColor(QPalette::Base, QColor(0x20, 0x20, 0x24));
    dark.setColor(QPalette::Text, QColor(0xee, 0xee, 0xee));
    charts->setPalette(dark);
    QCOMPARE(view->chart()->backgroundBrush().color(), QColor(0x20, 0x20, 0x24));
    QCOMPARE(view->chart()->titleBrush().color(), QColor(0xee, 0xee, 0xee));
    const auto axes = view->chart()->axes(Qt::Horizontal);
    QVERIFY(!axes.isEmpty());
    QCOMPARE(axes.constFirst()->labelsColor(), QColor(0xee, 0xee, 0xee));
}

void TestUiDashboard::chartSpanIsRemembered() {
    ChartsWidget *charts = m_app->window()->dashboard()->charts();
    QCOMPARE(charts->span(), ChartSpan::Minutes15);
    auto *box = charts->findChild<QComboBox *>(QStringLiteral("chartSpan"));
    QVERIFY(box);
    QSignalSpy changed(charts, &ChartsWidget::spanChanged);
    box->setCurrentIndex(2);
    Q_EMIT box->activated(2); // as a user's choice does
    QCOMPARE(changed.count(), 1);
    QCOMPARE(charts->span(), ChartSpan::Day);
    QCOMPARE(m_store->chartSpan(), 2);
    // A new window starts with the stored span.
    DesktopApp second(m_settings.get());
    QCOMPARE(second.window()->dashboard()->charts()->span(), ChartSpan::Day);
}

void TestUiDashboard::historyFilterAndDetails() {
    ProxySnapshot snapshot = baseSnapshot();
    BatchProgress failed = makeBatch("bad", "failed", false, 10, 0, 10, 300);
    failed.errors = {QStringLiteral("line 1: token_limit_exceeded"),
                     QStringLiteral("line 2: model not found")};
    snapshot.batches = {makeBatch("run", "in_progress", true),
                        makeBatch("ok1", "completed", false, 10, 10, 0, 100), failed,
                        makeBatch("ok2", "completed", false, 5, 4, 1, 200),
                        makeBatch("exp", "expired", false, 8, 3, 5, 400)};
    m_app->showSnapshot(snapshot);
    m_app->window()->tabs()->setCurrentIndex(1);

    auto *table = find<QTableView>("historyTable");
    auto *filter = find<QComboBox>("statusFilter");
    auto *details = find<QTextBrowser>("batchDetails");
    QVERIFY(table && filter && details);
    QCOMPARE(table->model()->rowCount(), 4);
    QCOMPARE(text("historyCount"), QStringLiteral("4 of 4 finished batches"));
    QStringList choices;
    for (int i = 0; i < filter->count(); ++i)
        choices.append(filter->itemText(i));
    QCOMPARE(choices, (QStringList{QStringLiteral("All"), QStringLiteral("completed"),
                                   QStringLiteral("expired"), QStringLiteral("failed")}));

    filter->setCurrentIndex(filter->findText(QStringLiteral("completed")));
    QCOMPARE(table->model()->rowCount(), 2);
    QCOMPARE(text("historyCount"), QStringLiteral("2 of 4 finished batches"));
    filter->setCurrentIndex(filter->findText(QStringLiteral("failed")));
    QCOMPARE(table->model()->rowCount(), 1);

    QVERIFY(details->toPlainText().contains(QStringLiteral("Select a batch")));
    table->selectRow(0);
    QCOMPARE(m_app->window()->history()->selectedBatch(), QByteArray("bad"));
    const QString shown = details->toPlainText();
    for (const QString &piece :
         {QStringLiteral("batch_bad"), QStringLiteral("failed"),
          QStringLiteral("line 1: token_limit_exceeded"), QStringLiteral("line 2: model not found"),
          QStringLiteral("/v1/chat/completions"), QStringLiteral("gpt-4o-mini"),
          QStringLiteral("…wxyz"), QStringLiteral("50.0 s"), QStringLiteral("46.0 s"),
          QStringLiteral("4.0 s")}) {
        QVERIFY2(shown.contains(piece), qPrintable(piece + QStringLiteral(" in ") + shown));
    }
    // The details follow the batch through later snapshots, and clear when it is gone.
    snapshot.batches = {makeBatch("ok1", "completed", false)};
    m_app->showSnapshot(snapshot);
    QVERIFY(details->toPlainText().contains(QStringLiteral("Select a batch")));

    // Sorting by a column header works on the proxy.
    filter->setCurrentIndex(0);
    table->sortByColumn(BatchTableModel::BatchColumn, Qt::AscendingOrder);
    QCOMPARE(table->model()->rowCount(), 1);
}

void TestUiDashboard::detailsEscapeProviderText() {
    ProxySnapshot snapshot = baseSnapshot();
    BatchProgress batch = makeBatch("x", "failed", false);
    batch.errors = {QStringLiteral("<b>bold</b> & <script>alert(1)</script>")};
    snapshot.batches = {batch};
    m_app->showSnapshot(snapshot);
    auto *table = find<QTableView>("historyTable");
    table->selectRow(0);
    const QString shown = find<QTextBrowser>("batchDetails")->toPlainText();
    QVERIFY2(shown.contains(QStringLiteral("<b>bold</b> & <script>alert(1)</script>")),
             qPrintable(shown));
}

void TestUiDashboard::startFailed() {
    m_app->showStartFailed(QStringLiteral("127.0.0.1:3030: The bound address is already in use"));
    QVERIFY(find<QLabel>("listenErrorLabel")->isVisible());
    QVERIFY(text("listenErrorLabel").contains(QStringLiteral("already in use")));
    QCOMPARE(text("stateLabel"), QStringLiteral("Not listening"));
    QVERIFY(!find<QPushButton>("copyBaseUrlButton")->isEnabled());
    QVERIFY(text("listenError").contains(QStringLiteral("already in use"))); // settings page
}

void TestUiDashboard::pauseFollowsSnapshots() {
    auto *pause = find<QToolButton>("pauseButton");
    QVERIFY(pause);
    QVERIFY(!pause->isChecked());
    ProxySnapshot snapshot = baseSnapshot();
    snapshot.paused = true;
    QSignalSpy intents(m_app.get(), &DesktopApp::pauseRequested);
    m_app->showSnapshot(snapshot);
    QVERIFY(pause->isChecked());
    QCOMPARE(m_app->actions()->pause()->text(), QStringLiteral("Resume &batching"));
    QCOMPARE(intents.count(), 0); // showing state is not an intent
    QTest::mouseClick(pause, Qt::LeftButton);
    QCOMPARE(intents.count(), 1);
    QCOMPARE(intents.constFirst().constFirst().toBool(), false);
}

void TestUiDashboard::closeHidesOrQuits() {
    MainWindow *window = m_app->window();
    QSignalSpy quit(m_app.get(), &DesktopApp::quitRequested);
    window->setCloseHidesToTray(true);
    QVERIFY(window->isVisible());
    window->close();
    QVERIFY(!window->isVisible());
    QCOMPARE(quit.count(), 0);
    m_app->activate();
    QVERIFY(window->isVisible());
    window->setCloseHidesToTray(false);
    window->close();
    QCOMPARE(quit.count(), 1);
    QVERIFY(window->isVisible()); // it stays until the proxy has stopped
}

void TestUiDashboard::manyBatches() {
    ProxySnapshot snapshot = baseSnapshot();
    for (int i = 0; i < 500; ++i)
        snapshot.batches.append(makeBatch("f" + QByteArray::number(i), "completed", false));
    for (int i = 0; i < 200; ++i)
        snapshot.batches.append(makeBatch("a" + QByteArray::number(i), "in_progress", true));
    for (int round = 0; round < 5; ++round) {
        snapshot.takenAt = Now.addSecs(round);
        m_app->showSnapshot(snapshot);
    }
    QCOMPARE(find<QTableView>("activeBatchesTable")->model()->rowCount(), 200);
    QCOMPARE(find<QTableView>("historyTable")->model()->rowCount(), 500);
    QCOMPARE(text("batchesActiveValue"), QStringLiteral("200"));
}

// How many of the waiting requests are streams (issue 11), next to the waiting requests.
void TestUiDashboard::waitingStreamsNextToWaitingRequests() {
    ProxySnapshot snapshot = baseSnapshot();
    snapshot.stats.queued = 40;
    snapshot.stats.inFlight = 2'000;
    snapshot.stats.waitingStreams = 1'234;
    m_app->showSnapshot(snapshot);
    QCOMPARE(text("queuedValue"), QStringLiteral("40"));
    QCOMPARE(text("waitingStreamsValue"), QStringLiteral("1,234"));

    snapshot.stats.waitingStreams = 0;
    m_app->showSnapshot(snapshot);
    QCOMPARE(text("waitingStreamsValue"), QStringLiteral("0"));

    // And how many wait for room in their model's queue at the provider (--queue-limit).
    QCOMPARE(text("waitingForQuotaValue"), QStringLiteral("0"));
    snapshot.stats.waitingForQuota = 12'500;
    m_app->showSnapshot(snapshot);
    QCOMPARE(text("waitingForQuotaValue"), QStringLiteral("12,500"));
}

QTEST_MAIN(TestUiDashboard)
#include "tst_ui_dashboard.moc"
