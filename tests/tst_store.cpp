// SPDX-License-Identifier: GPL-3.0-or-later
// The durable queue's SQLite store: schema, permissions, round trips, reopening.

#include "queue/store.h"

#include <QDir>
#include <QFile>
#include <QHash>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;

class tst_Store final : public QObject {
    Q_OBJECT

private:
    static StoredRequest request(quint64 id, const QByteArray &body = "{\"model\":\"m\"}") {
        StoredRequest r;
        r.id = id;
        r.keyHash = "hash";
        r.organization = "org";
        r.project = "proj";
        r.endpoint = "/v1/chat/completions";
        r.model = "m";
        r.dedupe = QByteArray(32, 'd');
        r.body = body;
        r.embeddingInputs = 0;
        r.arrivedMs = 1000 + qint64(id);
        return r;
    }

    // Every byte the store keeps on disk: the database, its WAL and its shared memory.
    static QByteArray rawFiles(const QString &directory) {
        QByteArray all;
        const QStringList names = QDir(directory).entryList({QStringLiteral("llm-proxy.sqlite*")},
                                                            QDir::Files | QDir::Hidden);
        for (const QString &name : names) {
            QFile file(QDir(directory).filePath(name));
            if (file.open(QIODevice::ReadOnly))
                all += file.readAll();
        }
        return all;
    }

    static StoredBatch batch(const QByteArray &localId, const QByteArray &keyHash) {
        StoredBatch b;
        b.localId = localId;
        b.keyHash = keyHash;
        b.endpoint = "/v1/chat/completions";
        b.model = "m";
        b.phase = StoredBatch::Phase::Created;
        b.batchId = "batch_" + localId;
        return b;
    }

    // Runs `sql` on a second connection to the store's file (as an older version would have).
    static bool execOn(const QString &path, const QStringList &statements) {
        bool ok = true;
        {
            QSqlDatabase db =
                QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("older"));
            db.setDatabaseName(path);
            ok = db.open();
            QSqlQuery q(db);
            for (const QString &sql : statements)
                ok = ok && q.exec(sql);
            db.close();
        }
        QSqlDatabase::removeDatabase(QStringLiteral("older"));
        return ok;
    }

private Q_SLOTS:
    void deletedKeyIsGoneFromTheFiles() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        store->saveKey("h1", "sk-client-key-to-forget-0001");
        QVERIFY(store->commit());
        QVERIFY(rawFiles(dir.path()).contains("sk-client-key-to-forget-0001"));
        store->deleteKey("h1");
        QVERIFY(store->commit());
        QVERIFY(store->key("h1").isEmpty());
        // Not in a free page of the database, not in an old frame of the WAL.
        QVERIFY(!rawFiles(dir.path()).contains("sk-client-key-to-forget-0001"));
    }

    void migrationRemovesKeysNoBatchNeeds() {
        // A store written by schema 2, which kept every key a client ever sent.
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
            store->saveBatch(batch("running", "h-running"));
            QVERIFY(store->commit());
        }
        QVERIFY(execOn(path, {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
                              QStringLiteral("DROP TABLE batch_history"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN key_hint"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN callers"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN provider"),
                              QStringLiteral("ALTER TABLE requests DROP COLUMN provider"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN provider_state"),
                              QStringLiteral("DROP TABLE health"),
                              QStringLiteral("ALTER TABLE requests DROP COLUMN caller"),
                              QStringLiteral("ALTER TABLE requests DROP COLUMN body_hash"),
                              QStringLiteral("INSERT INTO keys VALUES('h-running', "
                                             "'sk-running-batch-key-0001')"),
                              QStringLiteral("INSERT INTO keys VALUES('h-old', "
                                             "'sk-long-finished-key-0002')"),
                              QStringLiteral("PRAGMA user_version=2")}));
        QVERIFY(rawFiles(dir.path()).contains("sk-long-finished-key-0002"));
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QCOMPARE(store->key("h-running"), QByteArray("sk-running-batch-key-0001"));
        QVERIFY(store->key("h-old").isEmpty());
        QVERIFY(!rawFiles(dir.path()).contains("sk-long-finished-key-0002"));
    }

    void configuredKeyRowsAreMarkedAndItsCopyDeleted() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        store->saveKey("h-conf", "sk-the-configured-key-0003");
        store->saveBatch(batch("b", "h-conf"));
        StoredRequest r = request(1);
        r.keyHash = "h-conf";
        store->insertRequest(r);
        QVERIFY(store->commit());
        store->markConfiguredKey("h-conf", "configured");
        QVERIFY(store->commit());
        QVERIFY(store->key("h-conf").isEmpty());
        QCOMPARE(store->loadBatches().constFirst().keyHash, QByteArray("configured"));
        QCOMPARE(store->loadRequests().constFirst().keyHash, QByteArray("configured"));
        QVERIFY(!rawFiles(dir.path()).contains("sk-the-configured-key-0003"));
    }

    void failedWriteIsNotHidden() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store->insertRequest(request(1)));
        QVERIFY(store->commit());
        QVERIFY(store->writable());
        QVERIFY(store->simulateWriteFailureForTests(true)); // as a read-only database does
        QVERIFY(!store->insertRequest(request(2)));
        store->setRequestQueued(1);
        QVERIFY(!store->commit()); // the whole transaction is rolled back, and said so
        QVERIFY(!store->writable());
        QVERIFY(!store->probe());
        QVERIFY(store->simulateWriteFailureForTests(false));
        QVERIFY(store->probe());
        QVERIFY(store->writable());
        QCOMPARE(store->loadRequests().size(), 1);
        QVERIFY(store->insertRequest(request(3)));
        QVERIFY(store->commit());
        QCOMPARE(store->loadRequests().size(), 2);
    }

    void createsOwnerOnlyFiles() {
        QTemporaryDir dir;
        const QString data = dir.filePath(QStringLiteral("data"));
        QString error;
        auto store = Store::open(data, &error);
        QVERIFY2(store, qPrintable(error));
        const auto dirPerms = QFile::permissions(data);
        QVERIFY(dirPerms & QFile::ReadOwner);
        QVERIFY(!(dirPerms & (QFile::ReadGroup | QFile::ReadOther | QFile::ExeOther)));
        const auto filePerms = QFile::permissions(store->path());
        QVERIFY(filePerms & QFile::WriteOwner);
        QVERIFY(!(filePerms & (QFile::ReadGroup | QFile::ReadOther | QFile::WriteOther)));
    }

    void requestsSurviveReopening() {
        QTemporaryDir dir;
        const QByteArray bigSeed = "{\"model\":\"m\",\"seed\":12345678901234567890}";
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            QCOMPARE(store->nextRequestId(), quint64(1));
            store->saveKey("hash", "sk-secret-key");
            store->insertRequest(request(1, bigSeed));
            store->insertRequest(request(2));
            store->insertRequest(request(3));
            store->setRequestsSubmitted({2, 3}, "batch-local");
            store->storeResult(3, 200, "content-type: application/json\nx-request-id: r\n",
                               "{\"ok\":true}", false, 5000);
            StoredBatch batch;
            batch.localId = "batch-local";
            batch.keyHash = "hash";
            batch.endpoint = "/v1/chat/completions";
            batch.model = "m";
            batch.phase = StoredBatch::Phase::Creating;
            batch.providerState = R"({"input_file_id":"file-1"})";
            batch.requestCount = 2;
            store->saveBatch(batch);
            QVERIFY(store->commit());
        }
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QCOMPARE(store->nextRequestId(), quint64(4)); // ids are never reused
        QCOMPARE(store->key("hash"), QByteArray("sk-secret-key"));
        const QList<StoredRequest> requests = store->loadRequests();
        QCOMPARE(requests.size(), 3);
        QCOMPARE(requests.at(0).state, StoredRequest::State::Queued);
        QCOMPARE(requests.at(0).organization, QByteArray("org"));
        QCOMPARE(requests.at(0).bodySize, qint64(bigSeed.size()));
        QCOMPARE(store->requestBody(1), bigSeed); // byte for byte
        QCOMPARE(requests.at(1).state, StoredRequest::State::Submitted);
        QCOMPARE(requests.at(1).batchLocalId, QByteArray("batch-local"));
        QCOMPARE(requests.at(2).state, StoredRequest::State::Answered);
        const auto result = store->requestWithResult(3);
        QVERIFY(result);
        QCOMPARE(result->resultStatus, 200);
        QCOMPARE(result->resultBody, QByteArray("{\"ok\":true}"));
        QVERIFY(result->resultHeaders.contains("x-request-id: r"));
        QVERIFY(!store->requestWithResult(2));
        const QList<StoredBatch> batches = store->loadBatches();
        QCOMPARE(batches.size(), 1);
        QCOMPARE(batches.first().phase, StoredBatch::Phase::Creating);
        QCOMPARE(batches.first().providerState, QByteArray(R"({"input_file_id":"file-1"})"));
    }

    // Issue 12: a store written by schema 4 named the OpenAI files of a batch in columns of
    // their own and spelled its status as OpenAI does. After the migration the same batch is
    // resumable through the provider-neutral contract: its files are in its opaque provider
    // state and its status is a normalised name.
    // Several providers: each request and batch names its provider, and the rows of a store
    // from before (schema 5) belong to the one provider there was, "openai".
    // Whose batch it is (key hint, callers' token names) is kept with it, and a store from
    // before (schema 7) opens with neither.
    void batchKeepsWhoItIsFor() {
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
            StoredBatch b = batch("named", "h");
            b.keyHint = "\xE2\x80\xA6"
                        "abcd";
            b.callers = "alice, bob +";
            store->saveBatch(b);
            QVERIFY(store->commit());
        }
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            const StoredBatch loaded = store->loadBatches().constFirst();
            QCOMPARE(loaded.keyHint, QByteArray("\xE2\x80\xA6"
                                                "abcd"));
            QCOMPARE(loaded.callers, QByteArray("alice, bob +"));
        }
        QVERIFY(execOn(path, {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
                              QStringLiteral("DROP TABLE batch_history"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN key_hint"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN callers"),
                              QStringLiteral("PRAGMA user_version=7")}));
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QVERIFY(store->loadBatches().constFirst().keyHint.isEmpty());
        QVERIFY(store->loadBatches().constFirst().callers.isEmpty());
    }

    void requestsAndBatchesKeepTheirProvider() {
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
            StoredRequest r;
            r.id = 7;
            r.keyHash = "h";
            r.endpoint = "/v1/chat/completions";
            r.model = "gemini-2.5-flash";
            r.provider = "gemini";
            r.dedupe = "d";
            r.body = "{}";
            QVERIFY(store->insertRequest(r));
            StoredBatch b = batch("running", "h");
            b.provider = "gemini";
            store->saveBatch(b);
            store->saveBatch(batch("old", "h"));
            QVERIFY(store->commit());
        }
        {
            auto store = Store::open(dir.path(), nullptr);
            QCOMPARE(store->loadRequests().constFirst().provider, QByteArray("gemini"));
            QHash<QByteArray, QByteArray> providers;
            for (const StoredBatch &b : store->loadBatches())
                providers.insert(b.localId, b.provider);
            QCOMPARE(providers.value("running"), QByteArray("gemini"));
            QCOMPARE(providers.value("old"), QByteArray("openai"));
        }
        QVERIFY(execOn(path, {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
                              QStringLiteral("DROP TABLE batch_history"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN key_hint"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN callers"),
                              QStringLiteral("ALTER TABLE batches DROP COLUMN provider"),
                              QStringLiteral("ALTER TABLE requests DROP COLUMN provider"),
                              QStringLiteral("PRAGMA user_version=6")})); // before providers
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QCOMPARE(store->loadRequests().constFirst().provider, QByteArray("openai"));
        for (const StoredBatch &b : store->loadBatches())
            QCOMPARE(b.provider, QByteArray("openai"));
    }

    void migrationFromV4KeepsItsBatchesUsable() {
        QTemporaryDir dir;
        QString path;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            path = store->path();
        }
        QVERIFY(execOn(
            path,
            {QStringLiteral("ALTER TABLE batches DROP COLUMN queue_tokens"),
             QStringLiteral("DROP TABLE batch_history"),
             QStringLiteral("ALTER TABLE batches DROP COLUMN key_hint"),
             QStringLiteral("ALTER TABLE batches DROP COLUMN callers"),
             QStringLiteral("ALTER TABLE batches DROP COLUMN provider"),
             QStringLiteral("ALTER TABLE requests DROP COLUMN provider"),
             QStringLiteral("ALTER TABLE batches DROP COLUMN provider_state"),
             QStringLiteral(
                 "INSERT INTO batches(local_id, key_hash, endpoint, model, phase, input_file_id,"
                 " batch_id, status, output_file_id, error_file_id, request_count, created_ms,"
                 " submitted_ms, ended_ms, errors, attempts, cancel_requested_ms)"
                 " VALUES('polling', 'h', '/v1/chat/completions', 'm', 3, 'file-in-1',"
                 " 'batch_1', 'in_progress', NULL, NULL, 2, 1000, 2000, 0, '', 0, 0)"),
             QStringLiteral(
                 "INSERT INTO batches(local_id, key_hash, endpoint, model, phase, input_file_id,"
                 " batch_id, status, output_file_id, error_file_id, request_count, created_ms,"
                 " submitted_ms, ended_ms, errors, attempts, cancel_requested_ms)"
                 " VALUES('ended', 'h', '/v1/embeddings', 'e', 4, 'file-in-2', 'batch_2',"
                 " 'completed', 'file-out-2', 'file-err-2', 3, 1000, 2000, 3000, '', 0, 0)"),
             QStringLiteral("PRAGMA user_version=4")}));
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QHash<QByteArray, StoredBatch> byId;
        for (const StoredBatch &b : store->loadBatches())
            byId.insert(b.localId, b);
        QCOMPARE(byId.size(), 2);
        const auto files = [](const StoredBatch &b) {
            const QJsonObject o = QJsonDocument::fromJson(b.providerState).object();
            return QStringList{o.value(QStringLiteral("input_file_id")).toString(),
                               o.value(QStringLiteral("output_file_id")).toString(),
                               o.value(QStringLiteral("error_file_id")).toString()};
        };
        QCOMPARE(byId["polling"].status, QByteArray("running"));
        QCOMPARE(files(byId["polling"]), (QStringList{QStringLiteral("file-in-1"), {}, {}}));
        QCOMPARE(byId["polling"].phase, StoredBatch::Phase::Created);
        QCOMPARE(byId["polling"].batchId, QByteArray("batch_1"));
        QCOMPARE(byId["ended"].status, QByteArray("completed"));
        QCOMPARE(files(byId["ended"]),
                 (QStringList{QStringLiteral("file-in-2"), QStringLiteral("file-out-2"),
                              QStringLiteral("file-err-2")}));
        // And it is written back in the new shape.
        store->saveBatch(byId["ended"]);
        QVERIFY(store->commit());
        const QList<StoredBatch> reloaded = store->loadBatches();
        const auto ended = std::find_if(reloaded.cbegin(), reloaded.cend(),
                                        [](const StoredBatch &b) { return b.localId == "ended"; });
        QVERIFY(ended != reloaded.cend());
        QCOMPARE(files(*ended),
                 (QStringList{QStringLiteral("file-in-2"), QStringLiteral("file-out-2"),
                              QStringLiteral("file-err-2")}));
    }

    // Issue 9: who sent a request (the proxy token's name) and, with an Idempotency-Key, the
    // hash of the body it was first used with, so a reuse with another body is refused after a
    // restart too.
    void callerAndBodyHashSurviveReopening() {
        QTemporaryDir dir;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            StoredRequest withCaller = request(1);
            withCaller.caller = "alice";
            withCaller.bodyHash = QByteArray(32, 'h');
            store->insertRequest(withCaller);
            store->insertRequest(request(2));
            QVERIFY(store->commit());
        }
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        const QList<StoredRequest> requests = store->loadRequests();
        QCOMPARE(requests.size(), 2);
        QCOMPARE(requests.at(0).caller, QByteArray("alice"));
        QCOMPARE(requests.at(0).bodyHash, QByteArray(32, 'h'));
        QVERIFY(requests.at(1).caller.isEmpty());
        QVERIFY(requests.at(1).bodyHash.isEmpty());
    }

    void uncommittedWritesAreLostOnlyUntilCommit() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        store->insertRequest(request(1));
        QVERIFY(store->hasUncommitted());
        // A second connection (another process after a crash) sees nothing yet...
        {
            QSqlDatabase other =
                QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("reader"));
            other.setDatabaseName(store->path());
            QVERIFY(other.open());
            QSqlQuery q(other);
            QVERIFY(q.exec(QStringLiteral("SELECT COUNT(*) FROM requests")) && q.next());
            QCOMPARE(q.value(0).toInt(), 0);
            // ... and everything once committed.
            QVERIFY(store->commit());
            QVERIFY(q.exec(QStringLiteral("SELECT COUNT(*) FROM requests")) && q.next());
            QCOMPARE(q.value(0).toInt(), 1);
            other.close();
        }
        QSqlDatabase::removeDatabase(QStringLiteral("reader"));
    }

    // The answer cache's table: answers survive reopening, the index loads without bodies,
    // oldest first, and an answer written in a transaction that failed is not there.
    void cachedAnswersSurviveReopeningAndFailWithTheirTransaction() {
        QTemporaryDir dir;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
            store->putCachedAnswer(CachedAnswer{"k2", 200, "content-type: application/json\n",
                                                R"({"b":2})", 2000, 39});
            store->putCachedAnswer(CachedAnswer{"k1", 201, {}, R"({"a":1})", 1000, 7});
            QVERIFY(store->commit());
            QVERIFY(store->simulateWriteFailureForTests(true));
            store->putCachedAnswer(CachedAnswer{"k3", 200, {}, "{}", 3000, 2});
            QVERIFY(!store->commit());
            QVERIFY(store->simulateWriteFailureForTests(false));
        }
        auto store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        const QList<CachedAnswer> index = store->loadCacheIndex();
        QCOMPARE(index.size(), 2);
        QCOMPARE(index.at(0).key, QByteArray("k1"));
        QCOMPARE(index.at(0).storedMs, 1000);
        QCOMPARE(index.at(0).bytes, 7);
        QVERIFY(index.at(0).body.isEmpty());
        QCOMPARE(index.at(1).key, QByteArray("k2"));
        const std::optional<CachedAnswer> k2 = store->cachedAnswer("k2");
        QVERIFY(k2);
        QCOMPARE(k2->status, 200);
        QCOMPARE(k2->headers, QByteArray("content-type: application/json\n"));
        QCOMPARE(k2->body, QByteArray(R"({"b":2})"));
        QVERIFY(!store->cachedAnswer("k3"));
        store->deleteCachedAnswer("k1");
        QVERIFY(store->commit());
        QVERIFY(!store->cachedAnswer("k1"));
        store->clearCachedAnswers();
        QVERIFY(store->commit());
        QVERIFY(store->loadCacheIndex().isEmpty());
    }

    void deleteAndRequeue() {
        QTemporaryDir dir;
        auto store = Store::open(dir.path(), nullptr);
        store->insertRequest(request(1));
        store->insertRequest(request(2));
        store->setRequestsSubmitted({1, 2}, "b");
        store->setRequestQueued(2);
        store->deleteRequest(1);
        store->deleteBatch("b");
        store->commit();
        const QList<StoredRequest> requests = store->loadRequests();
        QCOMPARE(requests.size(), 1);
        QCOMPARE(requests.first().id, quint64(2));
        QCOMPARE(requests.first().state, StoredRequest::State::Queued);
        QVERIFY(requests.first().batchLocalId.isEmpty());
        QVERIFY(store->loadBatches().isEmpty());
    }

    void refusesNewerSchema() {
        QTemporaryDir dir;
        {
            auto store = Store::open(dir.path(), nullptr);
            QVERIFY(store);
        }
        {
            QSqlDatabase db =
                QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("bump"));
            db.setDatabaseName(dir.filePath(QStringLiteral("llm-proxy.sqlite")));
            QVERIFY(db.open());
            QSqlQuery q(db);
            QVERIFY(q.exec(QStringLiteral("PRAGMA user_version=99")));
            db.close();
        }
        QSqlDatabase::removeDatabase(QStringLiteral("bump"));
        QString error;
        QVERIFY(!Store::open(dir.path(), &error));
        QVERIFY2(error.contains(QStringLiteral("newer")), qPrintable(error));
    }
};

QTEST_GUILESS_MAIN(tst_Store)
#include "tst_store.moc"
