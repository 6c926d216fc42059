// SPDX-License-Identifier: GPL-3.0-or-later
// The ledger (issue 10) at the store's level: the hour's row each answer adds to, the 400 days it
// is kept, the migration that adds it to a version-5 database, a result counted once, the
// read-only reader of --report, and the texts /usage answers with. Each batch's tokens and cost
// (batch_history): added with its lines, kept through a restart and its end, lost with a failed
// transaction together with the result, and the migration that adds them.

#include "accounting/answerusage.h"
#include "accounting/ledger.h"
#include "batch/batchprogress.h"
#include "queue/store.h"

#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>
#include <QTimeZone>
#include <QUuid>

using namespace llmproxy;
using namespace llmproxy::accounting;

namespace {

constexpr qint64 T0 = Q_INT64_C(1796558400000); // 2026-12-06T12:00:00Z, the start of an hour

AccountedRequest answered(qint64 atMs, const QByteArray &model = "gpt-4o-mini",
                          Route route = Route::Batch, const QByteArray &caller = "alice") {
    AccountedRequest r;
    r.route = route;
    r.endpoint = "/v1/chat/completions";
    r.model = model;
    r.caller = caller;
    r.provider = "openai";
    r.httpStatus = 200;
    r.usage.reported = true;
    r.usage.input = 100;
    r.usage.cachedInput = 20;
    r.usage.output = 50;
    r.usage.reasoning = 10;
    r.cost.paid = 1000;
    r.cost.list = 2000;
    r.cost.saved = 1000;
    r.answeredAtMs = atMs;
    return r;
}

// Request 1, a chat completion, as the store keeps it before its result.
StoredRequest requestOne() {
    StoredRequest r;
    r.id = 1;
    r.keyHash = "h";
    r.endpoint = "/v1/chat/completions";
    r.model = "m";
    r.dedupe = "d";
    r.body = "{}";
    return r;
}

// A chat completions batch as the store keeps it while it runs.
StoredBatch batchNamed(const QByteArray &localId) {
    StoredBatch b;
    b.localId = localId;
    b.keyHash = "h";
    b.endpoint = "/v1/chat/completions";
    return b;
}

LedgerQuery everything() {
    LedgerQuery q;
    q.fromMs = 0;
    q.toMs = std::numeric_limits<qint64>::max();
    return q;
}

bool execOn(const QString &path, const QStringList &statements) {
    const QString name = QUuid::createUuid().toString();
    bool ok = true;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
        db.setDatabaseName(path);
        ok = db.open();
        for (const QString &sql : statements) {
            QSqlQuery q(db);
            if (ok && !q.exec(sql))
                ok = false;
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(name);
    return ok;
}

} // namespace

class tst_Ledger final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void upsertAddsToTheRowOfItsHourAndLabels() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        store->addToLedger(ledgerRowFor(answered(T0 + 5)));
        store->addToLedger(ledgerRowFor(answered(T0 + 3'599'999)));
        store->addToLedger(ledgerRowFor(answered(T0 + 10, "gpt-4o-mini", Route::Batch, "bob")));
        QVERIFY(store->commit());
        const auto report = store->ledgerReport(everything(), nullptr);
        QVERIFY(report);
        QCOMPARE(report->rows.size(), 2);
        const LedgerRow &alice = report->rows.at(0);
        QCOMPARE(alice.caller, QByteArray("alice"));
        QCOMPARE(alice.requests, 2);
        QCOMPARE(alice.input, 200);
        QCOMPARE(alice.cachedInput, 40);
        QCOMPARE(alice.output, 100);
        QCOMPARE(alice.reasoning, 20);
        QCOMPARE(alice.paid, 2000);
        QCOMPARE(alice.list, 4000);
        QCOMPARE(alice.saved, 2000);
        QCOMPARE(report->rows.at(1).caller, QByteArray("bob"));
        // A request without a model (moderations has a default) is a row too.
        store->addToLedger(ledgerRowFor(answered(T0, QByteArray(), Route::Batch, QByteArray())));
        QVERIFY(store->commit());
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 4);
        QCOMPARE(report->total().requests, 3);
        // One table row per hour and labels: the upsert added to it.
        QCOMPARE(rowCount(store->path()), 3);
    }

    void answersAreBucketedByTheHourTheyEnded() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        store->addToLedger(ledgerRowFor(answered(T0 - 1)));           // 11:59:59.999
        store->addToLedger(ledgerRowFor(answered(T0)));               // 12:00
        store->addToLedger(ledgerRowFor(answered(T0 + 11 * HourMs))); // 23:00, same day
        store->addToLedger(ledgerRowFor(answered(T0 + 12 * HourMs))); // next day
        QVERIFY(store->commit());
        QCOMPARE(rowCount(store->path()), 4);
        LedgerQuery byDay = everything();
        byDay.byDay = true;
        byDay.byCaller = byDay.byEndpoint = byDay.byRoute = byDay.byModel = false;
        const auto days = store->ledgerReport(byDay, nullptr);
        QVERIFY(days);
        QCOMPARE(days->rows.size(), 2);
        QCOMPARE(days->rows.at(0).requests, 3);
        QCOMPARE(days->rows.at(1).requests, 1);
        QCOMPARE(days->rows.at(1).hourMs, T0 + 12 * HourMs);
        // A range that starts inside an hour includes that hour's row.
        LedgerQuery lastHour = everything();
        lastHour.fromMs = T0 + 30 * 60 * 1000;
        lastHour.toMs = T0 + HourMs;
        const auto hour = store->ledgerReport(lastHour, nullptr);
        QVERIFY(hour);
        QCOMPARE(hour->total().requests, 1);
    }

    void rowsOlderThan400DaysArePurged() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        const qint64 now = T0;
        store->addToLedger(ledgerRowFor(answered(now - 401 * DayMs)));
        store->addToLedger(ledgerRowFor(answered(now - 399 * DayMs)));
        store->addToLedger(ledgerRowFor(answered(now)));
        QVERIFY(store->commit());
        store->purgeLedger(now - LedgerKeepMs);
        QVERIFY(store->commit());
        const auto report = store->ledgerReport(everything(), nullptr);
        QVERIFY(report);
        QCOMPARE(report->total().requests, 2);
        QCOMPARE(rowCount(store->path()), 2);
    }

    void migrationFromV5AddsTheLedgerAndKeepsTheQueue() {
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
        }
        // A version-5 database: no ledger, no provider columns (schema 7), no batch key hints
        // and callers (schema 8), one answered
        // request waiting for its client.
        QVERIFY(execOn(path, {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
                              QStringLiteral("DROP TABLE batch_history"),
                              QStringLiteral("DROP TABLE ledger"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN key_hint"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN callers"),
                              QStringLiteral("ALTER TABLE requests DROP COLUMN provider"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN provider"),
                              QStringLiteral("INSERT INTO requests(id, key_hash, endpoint, model,"
                                             " dedupe, body, arrived_ms, state, result_status,"
                                             " result_body, result_ms) VALUES(7, 'h',"
                                             " '/v1/chat/completions', 'm', x'00', x'', 1000, 2,"
                                             " 200, CAST('{}' AS BLOB), 2000)"),
                              QStringLiteral("PRAGMA user_version=5")}));
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        const QList<StoredRequest> requests = store->loadRequests();
        QCOMPARE(requests.size(), 1);
        QCOMPARE(requests.first().id, quint64(7));
        QVERIFY(store->requestWithResult(7));
        const auto empty = store->ledgerReport(everything(), nullptr);
        QVERIFY(empty);
        QVERIFY(empty->rows.isEmpty());
        store->addToLedger(ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 1);
        QCOMPARE(userVersion(path), Store::SchemaVersion); // and on through every later one
    }

    void aResultIsRecordedOnceAndItsRowOutlivesIt() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QVERIFY(store->insertRequest(requestOne()));
        QVERIFY(store->storeResult(1, 200, {}, "{}", false, T0));
        // A re-delivery (a result read again after a restart) finds it recorded.
        QVERIFY(!store->storeResult(1, 200, {}, "{\"again\":1}", false, T0));
        QVERIFY(!store->storeResult(99, 200, {}, "{}", false, T0)); // no such request
        QCOMPARE(store->requestWithResult(1)->resultBody, QByteArray("{}"));
        store->addToLedger(ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        store->deleteRequest(1); // the result is collected (or purged)
        QVERIFY(store->commit());
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 1);
    }

    void aFailedTransactionLosesTheResultAndItsRowTogether() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QVERIFY(store->insertRequest(requestOne()));
        QVERIFY(store->commit());
        QVERIFY(store->simulateWriteFailureForTests(true));
        QVERIFY(!store->storeResult(1, 200, {}, "{}", false, T0));
        store->addToLedger(ledgerRowFor(answered(T0)));
        QVERIFY(!store->commit());
        QVERIFY(store->simulateWriteFailureForTests(false));
        QVERIFY(!store->requestWithResult(1));
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 0);
        // Recorded again (the batch's results are read again): counted once.
        QVERIFY(store->storeResult(1, 200, {}, "{}", false, T0));
        store->addToLedger(ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 1);
    }

    void aBatchsUsageSurvivesRestartsAndItsEnd() {
        QTemporaryDir dir;
        StoredBatch running = batchNamed("batch-1");
        running.model = "gpt-4o-mini";
        running.phase = StoredBatch::Phase::Created;
        running.createdMs = T0;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            store->saveBatch(running);
            store->addBatchUsage("batch-1", ledgerRowFor(answered(T0)));
            QVERIFY(store->commit());
            store->saveBatch(running); // a later step of the batch keeps its usage
            store->addBatchUsage("batch-1", ledgerRowFor(answered(T0 + 5)));
            QVERIFY(store->commit());
        }
        BatchProgress ended;
        {
            auto store = Store::open(dir.path(), nullptr); // a restart while it runs
            QVERIFY(store);
            const QList<StoredBatch> batches = store->loadBatches();
            QCOMPARE(batches.size(), 1);
            const LedgerRow &usage = batches.constFirst().usage;
            QCOMPARE(usage.requests, 2);
            QCOMPARE(usage.input, 200);
            QCOMPARE(usage.cachedInput, 40);
            QCOMPARE(usage.output, 100);
            QCOMPARE(usage.reasoning, 20);
            QCOMPARE(usage.paid, 2000);
            QCOMPARE(usage.list, 4000);
            QCOMPARE(usage.saved, 2000);
            QCOMPARE(usage.unknownCost, 0);
            // It ends: the history keeps it, with the store's sums (not the progress' own).
            ended.localId = "batch-1";
            ended.batchId = "batch_abc";
            ended.endpoint = running.endpoint;
            ended.model = running.model;
            ended.provider = "openai";
            ended.keyHint = "…abcd";
            ended.status = "completed";
            ended.active = false;
            ended.total = ended.completed = 2;
            ended.createdAt = QDateTime::fromMSecsSinceEpoch(T0, Qt::UTC);
            ended.endedAt = QDateTime::fromMSecsSinceEpoch(T0 + 60'000, Qt::UTC);
            ended.errors = QStringList{u"one"_qs, u"two"_qs};
            store->saveFinishedBatch(ended);
            store->deleteBatch("batch-1");
            QVERIFY(store->commit());
        }
        auto store = Store::open(dir.path(), nullptr); // and after another restart
        QVERIFY(store);
        QVERIFY(store->loadBatches().isEmpty());
        const QList<BatchProgress> history = store->loadFinishedBatches(10);
        QCOMPARE(history.size(), 1);
        const BatchProgress &kept = history.constFirst();
        QCOMPARE(kept.localId, ended.localId);
        QCOMPARE(kept.batchId, ended.batchId);
        QCOMPARE(kept.status, ended.status);
        QCOMPARE(kept.keyHint, ended.keyHint);
        QVERIFY(!kept.active);
        QCOMPARE(kept.completed, 2);
        QCOMPARE(kept.endedAt, ended.endedAt);
        QCOMPARE(kept.errors, ended.errors);
        QCOMPARE(kept.usage.requests, 2);
        QCOMPARE(kept.usage.paid, 2000);
        QCOMPARE(kept.usage.list, 4000);
        QCOMPARE(kept.usage.output, 100);
    }

    void aBatchWithoutPricesKeepsItsCostUnknown() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        AccountedRequest unpriced = answered(T0, "mystery-model");
        unpriced.cost = Cost{}; // no price: unknown, not 0
        store->addBatchUsage("b", ledgerRowFor(unpriced));
        BatchProgress ended;
        ended.localId = "b";
        ended.status = "completed";
        store->saveFinishedBatch(ended);
        QVERIFY(store->commit());
        const LedgerRow usage = store->loadFinishedBatches(10).constFirst().usage;
        QCOMPARE(usage.requests, 1);
        QCOMPARE(usage.input, 100);
        QCOMPARE(usage.unknownCost, 1);
    }

    void aFailedTransactionLosesTheBatchsUsageWithItsResult() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QVERIFY(store->insertRequest(requestOne()));
        store->addBatchUsage("b", ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        QVERIFY(store->simulateWriteFailureForTests(true));
        QVERIFY(!store->storeResult(1, 200, {}, "{}", false, T0));
        store->addToLedger(ledgerRowFor(answered(T0)));
        store->addBatchUsage("b", ledgerRowFor(answered(T0)));
        QVERIFY(!store->commit());
        QVERIFY(store->simulateWriteFailureForTests(false));
        BatchProgress ended;
        ended.localId = "b";
        store->saveFinishedBatch(ended);
        QVERIFY(store->commit());
        QCOMPARE(store->loadFinishedBatches(10).constFirst().usage.requests, 1);
        QCOMPARE(store->ledgerReport(everything(), nullptr)->total().requests, 0);
    }

    void onlyTheNewestFinishedBatchesAreKept() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        for (int i = 0; i < Store::FinishedBatchesKept + 2; ++i) {
            BatchProgress ended;
            ended.localId = QByteArray::number(i);
            ended.endedAt = QDateTime::fromMSecsSinceEpoch(T0 + i, Qt::UTC);
            store->saveFinishedBatch(ended);
        }
        // An unfinished batch's usage is not a finished batch: it is not trimmed.
        store->addBatchUsage("running", ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        const QList<BatchProgress> kept = store->loadFinishedBatches(10'000);
        QCOMPARE(kept.size(), Store::FinishedBatchesKept);
        QCOMPARE(kept.constFirst().localId, QByteArray("2")); // oldest first
        QCOMPARE(kept.constLast().localId, QByteArray::number(Store::FinishedBatchesKept + 1));
        QCOMPARE(store->loadFinishedBatches(3).constFirst().localId,
                 QByteArray::number(Store::FinishedBatchesKept - 1));
        store->saveBatch(batchNamed("running"));
        QVERIFY(store->commit());
        QCOMPARE(store->loadBatches().constFirst().usage.requests, 1);
        // A batch forgotten unfinished (dissolved, split) takes its usage with it.
        store->deleteBatch("running");
        store->saveBatch(batchNamed("running"));
        QVERIFY(store->commit());
        QCOMPARE(store->loadBatches().constFirst().usage.requests, 0);
    }

    void migrationFromV8AddsBatchUsage() {
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
            StoredBatch b = batchNamed("old");
            b.phase = StoredBatch::Phase::Created;
            store->saveBatch(b);
            QVERIFY(store->commit());
        }
        QVERIFY(execOn(path, {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
                              QStringLiteral("DROP TABLE batch_history"),
                              QStringLiteral("PRAGMA user_version=8")}));
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QCOMPARE(userVersion(path), Store::SchemaVersion);
        QCOMPARE(store->loadBatches().constFirst().usage.requests, 0); // not known: none counted
        QVERIFY(store->loadFinishedBatches(10).isEmpty());
        store->addBatchUsage("old", ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        QCOMPARE(store->loadBatches().constFirst().usage.requests, 1);
    }

    void reportReadsTheStoreReadOnlyWhileItIsOpen() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        store->addToLedger(ledgerRowFor(answered(T0)));
        QVERIFY(store->commit());
        store->addToLedger(ledgerRowFor(answered(T0))); // open, not committed: not seen
        QString error;
        const auto report = Store::readLedger(dir.path(), everything(), &error);
        QVERIFY2(report, qPrintable(error));
        QCOMPARE(report->total().requests, 1);
        QVERIFY(store->commit());
        QCOMPARE(Store::readLedger(dir.path(), everything(), &error)->total().requests, 2);

        QTemporaryDir empty;
        QVERIFY(!Store::readLedger(empty.path(), everything(), &error));
        QVERIFY2(error.contains(QStringLiteral("no store")), qPrintable(error));
        QVERIFY(!QFile::exists(empty.filePath(QStringLiteral("llm-proxy.sqlite"))));
    }

    void usageQuery_data() {
        QTest::addColumn<QByteArray>("query");
        QTest::addColumn<QByteArray>("badParam");
        QTest::addColumn<qint64>("fromMs");
        QTest::addColumn<qint64>("toMs");
        const qint64 now = T0;
        QTest::newRow("default: 30 days")
            << QByteArray() << QByteArray() << now - 30 * DayMs << now + 1;
        QTest::newRow("7d") << QByteArray("from=7d") << QByteArray() << now - 7 * DayMs << now + 1;
        QTest::newRow("12h to 1h")
            << QByteArray("from=12h&to=1h") << QByteArray() << now - 12 * HourMs << now - HourMs;
        QTest::newRow("dates") << QByteArray("from=2026-12-01&to=2026-12-02T06:00:00Z")
                               << QByteArray() << T0 - 5 * DayMs - 12 * HourMs
                               << T0 - 4 * DayMs - 6 * HourMs;
        QTest::newRow("group_by list") << QByteArray("group_by=model,day&format=csv")
                                       << QByteArray() << now - 30 * DayMs << now + 1;
        QTest::newRow("bad from") << QByteArray("from=yesterday") << QByteArray("from") << 0LL
                                  << 0LL;
        QTest::newRow("bad to") << QByteArray("to=7x") << QByteArray("to") << 0LL << 0LL;
        QTest::newRow("bad group")
            << QByteArray("group_by=model,colour") << QByteArray("group_by") << 0LL << 0LL;
        QTest::newRow("bad format")
            << QByteArray("format=xml") << QByteArray("format") << 0LL << 0LL;
        QTest::newRow("unknown") << QByteArray("limit=3") << QByteArray("limit") << 0LL << 0LL;
        QTest::newRow("reversed") << QByteArray("from=1d&to=2d") << QByteArray("from") << 0LL
                                  << 0LL;
    }
    void usageQuery() {
        QFETCH(QByteArray, query);
        QFETCH(QByteArray, badParam);
        QFETCH(qint64, fromMs);
        QFETCH(qint64, toMs);
        QByteArray param;
        QString message;
        const auto parsed = parseUsageQuery(query, T0, &param, &message);
        if (!badParam.isEmpty()) {
            QVERIFY(!parsed);
            QCOMPARE(param, badParam);
            QVERIFY(!message.isEmpty());
            return;
        }
        QVERIFY2(parsed, qPrintable(message));
        QCOMPARE(parsed->query.fromMs, fromMs);
        QCOMPARE(parsed->query.toMs, toMs);
        if (query.contains("group_by")) {
            QVERIFY(parsed->query.byModel && parsed->query.byDay);
            QVERIFY(!parsed->query.byRoute && !parsed->query.byCaller);
            QVERIFY(parsed->csv);
        }
    }

    void usageJsonAndCsvAreExact() {
        LedgerQuery q;
        q.fromMs = T0;
        q.toMs = T0 + DayMs;
        q.byEndpoint = false;
        LedgerReport report;
        report.rows.append(ledgerRowFor(answered(T0)));
        AccountedRequest unpriced = answered(T0, "my-model", Route::Relay, "…abcd");
        unpriced.cost = {};
        report.rows.append(ledgerRowFor(unpriced));
        report.unpricedModels.append("my-model");
        const QByteArray json = usageJson(q, report);
        const QJsonObject root = QJsonDocument::fromJson(json).object();
        QCOMPARE(root.value(QStringLiteral("from")).toString(),
                 QStringLiteral("2026-12-06T12:00:00Z"));
        const QJsonArray rows = root.value(QStringLiteral("rows")).toArray();
        QCOMPARE(rows.size(), 2);
        QCOMPARE(rows.at(0).toObject().value(QStringLiteral("model")).toString(),
                 QStringLiteral("gpt-4o-mini"));
        QVERIFY(!rows.at(0).toObject().contains(QStringLiteral("endpoint")));
        QVERIFY(json.contains(R"("cost_usd":0.000000001,"list_cost_usd":0.000000002,)"
                              R"("saved_usd":0.000000001)"));
        QVERIFY(rows.at(1).toObject().value(QStringLiteral("cost_usd")).isNull());
        const QJsonObject totals = root.value(QStringLiteral("totals")).toObject();
        QCOMPARE(totals.value(QStringLiteral("requests")).toInt(), 2);
        QCOMPARE(totals.value(QStringLiteral("input_tokens")).toInt(), 200);
        QCOMPARE(totals.value(QStringLiteral("unknown_cost_requests")).toInt(), 1);
        QCOMPARE(root.value(QStringLiteral("unpriced_models")).toArray(),
                 QJsonArray{QStringLiteral("my-model")});

        const QByteArray csv = usageCsv(q, report);
        const QList<QByteArray> lines = csv.split('\n');
        QCOMPARE(lines.at(0), QByteArray("model,route,caller,requests,requests_without_usage,"
                                         "input_tokens,cached_input_tokens,"
                                         "cache_write_input_tokens,output_tokens,"
                                         "reasoning_tokens,cost_usd,list_cost_usd,saved_usd,"
                                         "unknown_cost_requests\r"));
        QCOMPARE(lines.at(1), QByteArray("gpt-4o-mini,batch,alice,1,0,100,20,0,50,10,"
                                         "0.000000001,0.000000002,0.000000001,0\r"));
        QCOMPARE(lines.at(2), QByteArray("my-model,relay,…abcd,1,0,100,20,0,50,10,,,,1\r"));
    }

    void keyHintShowsFourCharactersAtMost() {
        QCOMPARE(keyHint("sk-proj-abcdefghijklmnop"), QByteArray("…mnop"));
        QCOMPARE(keyHint("short"), QByteArray("…"));
    }

    void streamUsageComesFromItsLastUsageEvent_data() {
        QTest::addColumn<QByteArray>("stream");
        QTest::addColumn<bool>("reported");
        QTest::addColumn<qint64>("input");
        QTest::addColumn<qint64>("output");
        QTest::newRow("chat with include_usage")
            << QByteArray("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}"
                          "\n\n"
                          "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
                          "\"completion_tokens\":4,\"total_tokens\":13}}\n\n"
                          "data: [DONE]\n\n")
            << true << 9LL << 4LL;
        QTest::newRow("chat without")
            << QByteArray("data: {\"choices\":[]}\n\ndata: [DONE]\n\n") << false << 0LL << 0LL;
        QTest::newRow("responses completed")
            << QByteArray("event: response.completed\r\ndata: {\"type\":\"response.completed\","
                          "\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}}"
                          "\r\n\r\n")
            << true << 5LL << 7LL;
    }
    void streamUsageComesFromItsLastUsageEvent() {
        QFETCH(QByteArray, stream);
        QFETCH(bool, reported);
        QFETCH(qint64, input);
        QFETCH(qint64, output);
        AnswerCapture capture;
        capture.start(true, true);
        for (qsizetype i = 0; i < stream.size(); i += 7) // in pieces, as the network gives it
            capture.append(
                QByteArrayView(stream).sliced(i, std::min<qsizetype>(7, stream.size() - i)));
        const Usage usage = capture.usage();
        QCOMPARE(usage.reported, reported);
        if (reported) {
            QCOMPARE(*usage.input, input);
            QCOMPARE(*usage.output, output);
        }
    }

    // Anthropic's streams: the input counts come in message_start (the first event), the final
    // output count in message_delta (near the end); a stream long enough that only its tail is
    // kept still has its start read, and a stream without either has no usage (never zero).
    void anthropicStreamUsageJoinsItsFirstAndLastUsageEvents_data() {
        QTest::addColumn<QByteArray>("stream");
        QTest::addColumn<bool>("reported");
        QTest::addColumn<qint64>("cacheWrite1h");
        QTest::addColumn<qint64>("output");
        const QByteArray start =
            "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
            "\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":7,"
            "\"cache_creation_input_tokens\":30,\"cache_read_input_tokens\":5,"
            "\"cache_creation\":{\"ephemeral_5m_input_tokens\":10,"
            "\"ephemeral_1h_input_tokens\":20},\"output_tokens\":1}}}\r\n\r\n";
        const QByteArray delta = "event: content_block_delta\r\ndata: {\"type\":"
                                 "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                 "\"text_delta\",\"text\":\"" +
                                 QByteArray(100, 'x') + "\"}}\r\n\r\n";
        const QByteArray end = "event: message_delta\r\ndata: {\"type\":\"message_delta\","
                               "\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{"
                               "\"output_tokens\":42}}\r\n\r\nevent: message_stop\r\n"
                               "data: {\"type\":\"message_stop\"}\r\n\r\n";
        QTest::newRow("short") << QByteArray(start + delta + end) << true << 20LL << 42LL;
        QTest::newRow("long") << QByteArray(start + delta.repeated(8000) + end) << true << 20LL
                              << 42LL;
        QTest::newRow("error event")
            << QByteArray("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                          "\"overloaded_error\",\"message\":\"x\"}}\n\n")
            << false << 0LL << 0LL;
    }
    void anthropicStreamUsageJoinsItsFirstAndLastUsageEvents() {
        QFETCH(QByteArray, stream);
        QFETCH(bool, reported);
        QFETCH(qint64, cacheWrite1h);
        QFETCH(qint64, output);
        AnswerCapture capture;
        capture.start(true, true, true);
        for (qsizetype i = 0; i < stream.size(); i += 4096)
            capture.append(
                QByteArrayView(stream).sliced(i, std::min<qsizetype>(4096, stream.size() - i)));
        const Usage usage = capture.usage();
        QCOMPARE(usage.reported, reported);
        if (reported) {
            QCOMPARE(*usage.input, 7 + 30 + 5); // every input token
            QCOMPARE(*usage.cachedInput, 5);
            QCOMPARE(*usage.cacheWriteInput, 30);
            QCOMPARE(*usage.cacheWrite1hInput, cacheWrite1h);
            QCOMPARE(*usage.output, output); // message_delta's, not message_start's 1
        }
    }

private:
    static int rowCount(const QString &path) {
        const QString name = QUuid::createUuid().toString();
        int n = -1;
        {
            QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
            db.setDatabaseName(path);
            if (db.open()) {
                QSqlQuery q(db);
                if (q.exec(QStringLiteral("SELECT COUNT(*) FROM ledger")) && q.next())
                    n = q.value(0).toInt();
            }
            db.close();
        }
        QSqlDatabase::removeDatabase(name);
        return n;
    }
    static int userVersion(const QString &path) {
        const QString name = QUuid::createUuid().toString();
        int n = -1;
        {
            QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
            db.setDatabaseName(path);
            if (db.open()) {
                QSqlQuery q(db);
                if (q.exec(QStringLiteral("PRAGMA user_version")) && q.next())
                    n = q.value(0).toInt();
            }
            db.close();
        }
        QSqlDatabase::removeDatabase(name);
        return n;
    }
};

QTEST_GUILESS_MAIN(tst_Ledger)
#include "tst_ledger.moc"
