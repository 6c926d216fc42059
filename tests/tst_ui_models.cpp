// SPDX-License-Identifier: GPL-3.0-or-later
// The desktop app's data: the batch table model and its sort/filter proxy (checked by
// QAbstractItemModelTester through a sequence of snapshots), the charts' bounded history, the
// tray state decided from a snapshot, and how numbers and durations read.

#include "ui/batchfiltermodel.h"
#include "ui/batchtablemodel.h"
#include "ui/displaytext.h"
#include "ui/snapshothistory.h"
#include "ui/traystate.h"

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTest>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace {

const QDateTime Now = QDateTime(QDate(2025, 3, 1), QTime(12, 0), Qt::UTC);

BatchProgress makeBatch(const QByteArray &id, const QByteArray &status, bool active, int total = 10,
                        int completed = 0, int failed = 0, qint64 ageSeconds = 60) {
    BatchProgress batch;
    batch.localId = id;
    batch.batchId = active && status == "uploading" ? QByteArray() : "batch_" + id;
    batch.endpoint = "/v1/chat/completions";
    batch.model = "gpt-4o-mini";
    batch.keyHint = "…abcd";
    batch.status = status;
    batch.active = active;
    batch.total = total;
    batch.completed = completed;
    batch.failed = failed;
    batch.createdAt = Now.addSecs(-ageSeconds);
    batch.submittedAt = batch.createdAt.addSecs(2);
    if (!active)
        batch.endedAt = batch.createdAt.addSecs(30);
    return batch;
}

QStringList column(const QAbstractItemModel &model, int column, int role = Qt::DisplayRole) {
    QStringList values;
    for (int row = 0; row < model.rowCount(); ++row)
        values.append(model.index(row, column).data(role).toString());
    return values;
}

ProxySnapshot snapshotAt(qint64 msecs, quint64 queued, quint64 inFlight, double p50 = 0) {
    ProxySnapshot snapshot;
    snapshot.takenAt = QDateTime::fromMSecsSinceEpoch(msecs, Qt::UTC);
    snapshot.stats.queued = queued;
    snapshot.stats.inFlight = inFlight;
    snapshot.stats.requestP50Ms = p50;
    snapshot.stats.requestP95Ms = p50 * 2;
    snapshot.stats.requestP99Ms = p50 * 3;
    snapshot.batchesSubmitted = static_cast<quint64>(msecs / 1000);
    snapshot.listening = true;
    return snapshot;
}

} // namespace

class TestUiModels final : public QObject {
    Q_OBJECT

private slots:
    void modelTester_data();
    void modelTester();
    void scopes();
    void displayValues();
    void rowsKeepTheirIdentity();
    void filterAndSort();
    void statuses();

    void historyIsBounded();
    void historyMergesIntoCoarserPoints();
    void historyIgnoresBadTimes();

    void trayState_data();
    void trayState();
    void trayToolTip();

    void durations_data();
    void durations();
    void latencies();
};

void TestUiModels::modelTester_data() {
    QTest::addColumn<bool>("finishedScope");
    QTest::addColumn<bool>("throughProxy");
    QTest::newRow("active") << false << false;
    QTest::newRow("finished") << true << false;
    QTest::newRow("active, sorted") << false << true;
    QTest::newRow("finished, filtered") << true << true;
}

void TestUiModels::modelTester() {
    QFETCH(bool, finishedScope);
    QFETCH(bool, throughProxy);
    const auto scope =
        finishedScope ? BatchTableModel::Scope::Finished : BatchTableModel::Scope::Active;
    BatchTableModel model(scope);
    BatchFilterModel proxy;
    proxy.setSourceModel(&model);
    proxy.sort(BatchTableModel::TimeColumn, Qt::DescendingOrder);
    if (throughProxy && finishedScope)
        proxy.setStatusFilter(QStringLiteral("completed"));
    QAbstractItemModelTester tester(throughProxy ? static_cast<QAbstractItemModel *>(&proxy)
                                                 : &model,
                                    QAbstractItemModelTester::FailureReportingMode::QtTest);

    const bool a = !finishedScope;
    const QByteArray done = finishedScope ? "completed" : "in_progress";
    const QList<QList<BatchProgress>> steps{
        {},
        {makeBatch("a", done, a), makeBatch("b", done, a, 5, 1), makeBatch("x", "failed", false)},
        {makeBatch("a", done, a, 10, 9), makeBatch("b", done, a, 5, 5),
         makeBatch("c", "failed", a)},
        {makeBatch("c", "failed", a), makeBatch("d", done, a), makeBatch("e", done, a),
         makeBatch("f", done, a)},
        {makeBatch("d", done, a), makeBatch("f", done, a)}, // removes from the middle and start
        {makeBatch("d", done, a), makeBatch("d", done, a)}, // a duplicate id is shown once
        {},
        {makeBatch("g", done, a)},
    };
    for (const QList<BatchProgress> &step : steps) {
        model.setBatches(step, Now);
        if (QTest::currentTestFailed())
            return;
    }
    QCOMPARE(model.rowCount(), 1);
    QCOMPARE(model.batchAt(0).localId, QByteArray("g"));
}

void TestUiModels::scopes() {
    BatchTableModel active(BatchTableModel::Scope::Active);
    BatchTableModel finished(BatchTableModel::Scope::Finished);
    const QList<BatchProgress> batches{
        makeBatch("a", "in_progress", true), makeBatch("b", "completed", false),
        makeBatch("c", "failed", false), makeBatch("d", "uploading", true)};
    active.setBatches(batches, Now);
    finished.setBatches(batches, Now);
    QCOMPARE(column(active, BatchTableModel::BatchColumn),
             (QStringList{QStringLiteral("batch_a"), QStringLiteral("d")}));
    QCOMPARE(column(finished, BatchTableModel::BatchColumn),
             (QStringList{QStringLiteral("batch_b"), QStringLiteral("batch_c")}));
    QCOMPARE(active.headerData(BatchTableModel::TimeColumn, Qt::Horizontal).toString(),
             QStringLiteral("Age"));
    QCOMPARE(finished.headerData(BatchTableModel::TimeColumn, Qt::Horizontal).toString(),
             QStringLiteral("Took"));
}

void TestUiModels::displayValues() {
    BatchTableModel model(BatchTableModel::Scope::Active);
    BatchProgress batch = makeBatch("a", "in_progress", true, 10, 6, 1, 65);
    batch.errors = {QStringLiteral("line 3: context too long")};
    BatchProgress clientKey = makeBatch("b", "validating", true, 1000, 0, 0, 3700);
    clientKey.keyHint.clear();
    clientKey.endpoint = "/v1/embeddings";
    clientKey.model = "text-embedding-3-small";
    model.setBatches({batch, clientKey}, Now);

    const auto cell = [&model](int row, int col, int role = Qt::DisplayRole) {
        return model.index(row, col).data(role);
    };
    QCOMPARE(cell(0, BatchTableModel::GroupColumn).toString(),
             QStringLiteral("chat/completions · gpt-4o-mini"));
    QCOMPARE(cell(0, BatchTableModel::KeyColumn).toString(), QStringLiteral("…abcd"));
    QCOMPARE(cell(0, BatchTableModel::StatusColumn).toString(), QStringLiteral("in_progress"));
    QCOMPARE(cell(0, BatchTableModel::StatusColumn, Qt::ToolTipRole).toString(),
             QStringLiteral("line 3: context too long"));
    QCOMPARE(cell(0, BatchTableModel::ProgressColumn).toString(),
             QStringLiteral("7 / 10 · 1 failed"));
    QCOMPARE(cell(0, BatchTableModel::ProgressColumn, BatchTableModel::ProgressRole).toInt(), 70);
    QCOMPARE(cell(0, BatchTableModel::TimeColumn).toString(), QStringLiteral("1 min 05 s"));
    QCOMPARE(cell(0, BatchTableModel::TimeColumn, BatchTableModel::SortRole).toLongLong(),
             qint64(65'000));
    QCOMPARE(cell(0, BatchTableModel::CreatedColumn).toString(),
             Now.addSecs(-65).toLocalTime().toString(QStringLiteral("yyyy-MM-dd HH:mm:ss")));

    QCOMPARE(cell(1, BatchTableModel::GroupColumn).toString(),
             QStringLiteral("embeddings · text-embedding-3-small"));
    QCOMPARE(cell(1, BatchTableModel::KeyColumn).toString(), QStringLiteral("client's"));
    QCOMPARE(cell(1, BatchTableModel::KeyColumn, Qt::ToolTipRole).toString(),
             QStringLiteral("Each client's own key"));
    QCOMPARE(cell(0, BatchTableModel::KeyColumn, Qt::ToolTipRole).toString(),
             QStringLiteral("The key ending in abcd"));
    // With proxy tokens the callers' names come first.
    BatchProgress named = batch;
    named.callers = "alice, bob";
    model.setBatches({named}, Now);
    QCOMPARE(cell(0, BatchTableModel::KeyColumn).toString(), QStringLiteral("alice, bob · …abcd"));
    QCOMPARE(cell(0, BatchTableModel::KeyColumn, Qt::ToolTipRole).toString(),
             QStringLiteral("The key ending in abcd, for alice, bob"));
    model.setBatches({batch, clientKey}, Now);
    QCOMPARE(cell(1, BatchTableModel::ProgressColumn).toString(), QStringLiteral("0 / 1,000"));
    QCOMPARE(cell(1, BatchTableModel::TimeColumn).toString(), QStringLiteral("1 h 01 min"));

    // Finished: how long it took, and failures stand out.
    BatchTableModel finished(BatchTableModel::Scope::Finished);
    finished.setBatches({makeBatch("f", "failed", false)}, Now);
    QCOMPARE(finished.index(0, BatchTableModel::TimeColumn).data().toString(),
             QStringLiteral("30.0 s"));
    QVERIFY(finished.index(0, BatchTableModel::StatusColumn).data(Qt::ForegroundRole).isValid());
}

void TestUiModels::rowsKeepTheirIdentity() {
    BatchTableModel model(BatchTableModel::Scope::Active);
    model.setBatches({makeBatch("a", "in_progress", true), makeBatch("b", "in_progress", true),
                      makeBatch("c", "in_progress", true)},
                     Now);
    const QPersistentModelIndex c = model.index(2, 0);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    model.setBatches(
        {makeBatch("c", "finalizing", true, 10, 10), makeBatch("d", "uploading", true)},
        Now.addSecs(5));
    QVERIFY(c.isValid());
    QCOMPARE(c.data(BatchTableModel::LocalIdRole).toByteArray(), QByteArray("c"));
    QCOMPARE(model.index(c.row(), BatchTableModel::StatusColumn).data().toString(),
             QStringLiteral("finalizing"));
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(changed.count(), 1);
    QVERIFY(model.batch("d").has_value());
    QVERIFY(!model.batch("a").has_value());
}

void TestUiModels::filterAndSort() {
    BatchTableModel model(BatchTableModel::Scope::Finished);
    BatchFilterModel proxy;
    proxy.setSourceModel(&model);
    model.setBatches({makeBatch("old", "completed", false, 10, 10, 0, 3600),
                      makeBatch("new", "completed", false, 10, 10, 0, 10),
                      makeBatch("bad", "failed", false, 10, 0, 10, 600),
                      makeBatch("exp", "expired", false, 10, 5, 5, 900)},
                     Now);
    proxy.sort(BatchTableModel::CreatedColumn, Qt::DescendingOrder);
    QCOMPARE(column(proxy, BatchTableModel::BatchColumn),
             (QStringList{QStringLiteral("batch_new"), QStringLiteral("batch_bad"),
                          QStringLiteral("batch_exp"), QStringLiteral("batch_old")}));
    // Numbers sort as numbers: 100% before 50% before 0%... here by answered fraction.
    proxy.sort(BatchTableModel::ProgressColumn, Qt::AscendingOrder);
    QCOMPARE(column(proxy, BatchTableModel::BatchColumn).constLast(), QStringLiteral("batch_old"));

    proxy.setStatusFilter(QStringLiteral("failed"));
    QCOMPARE(column(proxy, BatchTableModel::BatchColumn), QStringList{QStringLiteral("batch_bad")});
    proxy.setStatusFilter(QStringLiteral("completed"));
    QCOMPARE(proxy.rowCount(), 2);
    // A new snapshot keeps the filter.
    model.setBatches({makeBatch("bad", "failed", false), makeBatch("n2", "completed", false)}, Now);
    QCOMPARE(column(proxy, BatchTableModel::BatchColumn), QStringList{QStringLiteral("batch_n2")});
    proxy.setStatusFilter(QString());
    QCOMPARE(proxy.rowCount(), 2);
}

void TestUiModels::statuses() {
    BatchTableModel model(BatchTableModel::Scope::Finished);
    model.setBatches({makeBatch("a", "failed", false), makeBatch("b", "completed", false),
                      makeBatch("c", "failed", false), makeBatch("d", "cancelled", false)},
                     Now);
    QCOMPARE(model.statuses(),
             (QStringList{QStringLiteral("cancelled"), QStringLiteral("completed"),
                          QStringLiteral("failed")}));
}

void TestUiModels::historyIsBounded() {
    SnapshotHistory history;
    QSignalSpy appended(&history, &SnapshotHistory::appended);
    const qint64 start = Now.toMSecsSinceEpoch();
    const int seconds = 2 * 60 * 60; // two hours of one snapshot a second
    for (int i = 0; i <= seconds; ++i)
        history.append(snapshotAt(start + i * 1000LL, static_cast<quint64>(i % 7), 1));
    QCOMPARE(appended.count(), seconds + 1);
    const qint64 end = start + seconds * 1000LL;
    QCOMPARE(history.latestMsecs(), end);
    for (ChartSpan span : {ChartSpan::Minutes15, ChartSpan::Hour, ChartSpan::Day}) {
        const QList<HistorySample> samples = history.samples(span);
        QVERIFY(samples.size() <= SnapshotHistory::PointsPerSpan + 1);
        QVERIFY(samples.size() >= 10);
        QCOMPARE(samples.constLast().msecsSinceEpoch, end);
        QVERIFY(samples.constFirst().msecsSinceEpoch >=
                end - SnapshotHistory::spanLength(span).count());
        for (qsizetype i = 1; i < samples.size(); ++i)
            QVERIFY(samples.at(i - 1).msecsSinceEpoch < samples.at(i).msecsSinceEpoch);
    }
    QCOMPARE(history.samples(ChartSpan::Minutes15).size(), 901);
    // The day span holds the two hours seen so far, at 96 s a point.
    QVERIFY(history.samples(ChartSpan::Day).size() <= seconds / 96 + 2);
    QVERIFY(history.samples(ChartSpan::Day).constFirst().msecsSinceEpoch <= start + 96'000);
    history.clear();
    QVERIFY(history.samples(ChartSpan::Hour).isEmpty());
}

void TestUiModels::historyMergesIntoCoarserPoints() {
    SnapshotHistory history;
    const qint64 start = (Now.toMSecsSinceEpoch() / 4000) * 4000; // a 4 s boundary
    // Four snapshots within one 4 s point of the hour span: a spike of 50 in the middle.
    history.append(snapshotAt(start, 1, 2, 10));
    history.append(snapshotAt(start + 1000, 50, 3, 20));
    history.append(snapshotAt(start + 2000, 4, 9, 30));
    history.append(snapshotAt(start + 3000, 2, 1, 40));
    const QList<HistorySample> hour = history.samples(ChartSpan::Hour);
    QCOMPARE(hour.size(), 1);
    QCOMPARE(hour.constFirst().queued, 50.0);  // the highest
    QCOMPARE(hour.constFirst().inFlight, 9.0); // the highest
    QCOMPARE(hour.constFirst().p50Ms, 40.0);   // the latest
    QCOMPARE(hour.constFirst().p99Ms, 120.0);  // the latest
    QCOMPARE(hour.constFirst().msecsSinceEpoch, start + 3000);
    QCOMPARE(history.samples(ChartSpan::Minutes15).size(), 4); // 1 s points stay apart
    history.append(snapshotAt(start + 4000, 0, 0, 50));
    QCOMPARE(history.samples(ChartSpan::Hour).size(), 2);
}

void TestUiModels::historyIgnoresBadTimes() {
    SnapshotHistory history;
    history.append(snapshotAt(Now.toMSecsSinceEpoch(), 1, 1));
    history.append(snapshotAt(Now.toMSecsSinceEpoch() - 5000, 9, 9)); // backwards
    ProxySnapshot invalid;
    history.append(invalid);
    QCOMPARE(history.samples(ChartSpan::Minutes15).size(), 1);
    QCOMPARE(history.samples(ChartSpan::Minutes15).constFirst().queued, 1.0);
}

void TestUiModels::trayState_data() {
    QTest::addColumn<ProxySnapshot>("snapshot");
    QTest::addColumn<int>("expected");
    ProxySnapshot idle;
    idle.takenAt = Now;
    idle.listening = true;
    QTest::newRow("idle") << idle << int(TrayState::Idle);
    ProxySnapshot waiting = idle;
    waiting.stats.queued = 3;
    QTest::newRow("waiting") << waiting << int(TrayState::Waiting);
    ProxySnapshot paused = waiting;
    paused.paused = true;
    QTest::newRow("paused, waiting") << paused << int(TrayState::Waiting);
    ProxySnapshot out = waiting;
    out.batches = {makeBatch("a", "in_progress", true)};
    QTest::newRow("batches out") << out << int(TrayState::BatchesOut);
    ProxySnapshot inFlight = idle;
    inFlight.stats.inFlight = 5;
    QTest::newRow("in flight") << inFlight << int(TrayState::BatchesOut);
    ProxySnapshot notListening = idle;
    notListening.listening = false;
    QTest::newRow("not listening") << notListening << int(TrayState::Error);
    ProxySnapshot rebindFailed = idle;
    rebindFailed.listenError = QStringLiteral("address in use");
    QTest::newRow("rebind failed") << rebindFailed << int(TrayState::Error);
    ProxySnapshot recentFailure = out;
    BatchProgress failed = makeBatch("f", "failed", false, 10, 0, 10, 60); // ended 30 s ago
    recentFailure.batches.append(failed);
    QTest::newRow("recent failure") << recentFailure << int(TrayState::Error);
    ProxySnapshot oldFailure = out;
    oldFailure.batches.append(makeBatch("f", "failed", false, 10, 0, 10, 3600));
    QTest::newRow("old failure") << oldFailure << int(TrayState::BatchesOut);
    ProxySnapshot completed = idle;
    completed.batches.append(makeBatch("c", "completed", false, 10, 10, 0, 40));
    QTest::newRow("recent success") << completed << int(TrayState::Idle);
}

void TestUiModels::trayState() {
    QFETCH(ProxySnapshot, snapshot);
    QFETCH(int, expected);
    QCOMPARE(int(trayStateFor(snapshot)), expected);
}

void TestUiModels::trayToolTip() {
    ProxySnapshot snapshot;
    snapshot.takenAt = Now;
    snapshot.listening = true;
    snapshot.paused = true;
    snapshot.stats.queued = 1234;
    snapshot.stats.inFlight = 56;
    snapshot.stats.requestsTotal = 789;
    snapshot.stats.requestsFailed = 3;
    snapshot.stats.relayed = 4;
    snapshot.batches = {makeBatch("a", "in_progress", true), makeBatch("b", "validating", true),
                        makeBatch("c", "completed", false)};
    const QString tip = llmproxy::trayToolTip(snapshot);
    QVERIFY2(tip.contains(QStringLiteral("1,234 waiting, 2 batches out (56 requests in flight)")),
             qPrintable(tip));
    QVERIFY(tip.contains(QStringLiteral("789 answered, 3 failed, 4 relayed")));
    QVERIFY(tip.contains(QStringLiteral("Paused")));
    snapshot.listening = false;
    snapshot.listenError = QStringLiteral("port 3030 is in use");
    QVERIFY(llmproxy::trayToolTip(snapshot).contains(QStringLiteral("port 3030 is in use")));
}

void TestUiModels::durations_data() {
    QTest::addColumn<qint64>("ms");
    QTest::addColumn<QString>("text");
    QTest::newRow("negative") << qint64(-5) << QStringLiteral("0 ms");
    QTest::newRow("ms") << qint64(850) << QStringLiteral("850 ms");
    QTest::newRow("seconds") << qint64(4200) << QStringLiteral("4.2 s");
    QTest::newRow("minutes") << qint64(185'000) << QStringLiteral("3 min 05 s");
    QTest::newRow("hours") << qint64(7'440'000) << QStringLiteral("2 h 04 min");
    QTest::newRow("days") << qint64(273'600'000) << QStringLiteral("3 d 4 h");
}

void TestUiModels::durations() {
    QFETCH(qint64, ms);
    QFETCH(QString, text);
    QCOMPARE(display::duration(ms), text);
}

void TestUiModels::latencies() {
    QCOMPARE(display::latency(0), QStringLiteral("0 ms"));
    QCOMPARE(display::latency(12.44), QStringLiteral("12.4 ms"));
    QCOMPARE(display::latency(1599.816), QStringLiteral("1.6 s"));
    QCOMPARE(display::latency(qQNaN()), QStringLiteral("0 ms"));
    QCOMPARE(display::count(1234567), QStringLiteral("1,234,567"));
}

QTEST_MAIN(TestUiModels)
#include "tst_ui_models.moc"
