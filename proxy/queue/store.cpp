// SPDX-License-Identifier: GPL-3.0-or-later
#include "queue/store.h"

#include "api/logging.h"
#include "queue/storeusage.h"

#include <QDir>
#include <QFile>
#include <QSqlError>
#include <QSqlQuery>
#include <QUuid>
#include <QVariant>

#include <utility>

namespace llmproxy {

namespace {

// Each entry moves the schema from version i to i + 1.
const char *const Migrations[] = {
    R"(CREATE TABLE keys(
           key_hash TEXT PRIMARY KEY,
           api_key BLOB NOT NULL);
       CREATE TABLE batches(
           local_id TEXT PRIMARY KEY,
           key_hash TEXT NOT NULL, organization BLOB, project BLOB,
           endpoint TEXT NOT NULL, model TEXT,
           phase INTEGER NOT NULL,
           input_file_id TEXT, batch_id TEXT, status TEXT,
           output_file_id TEXT, error_file_id TEXT,
           request_count INTEGER NOT NULL DEFAULT 0,
           created_ms INTEGER, submitted_ms INTEGER, ended_ms INTEGER,
           errors TEXT, attempts INTEGER NOT NULL DEFAULT 0);
       CREATE TABLE requests(
           id INTEGER PRIMARY KEY,
           key_hash TEXT NOT NULL, organization BLOB, project BLOB,
           endpoint TEXT NOT NULL, model TEXT,
           dedupe BLOB NOT NULL, body BLOB NOT NULL,
           embedding_inputs INTEGER NOT NULL DEFAULT 0,
           arrived_ms INTEGER NOT NULL,
           state INTEGER NOT NULL,
           batch_local_id TEXT,
           result_status INTEGER, result_headers BLOB, result_body BLOB,
           result_synthesized INTEGER, result_ms INTEGER);
       CREATE INDEX requests_by_batch ON requests(batch_local_id);)",
    // 1 -> 2: the grace period's cancel request.
    R"(ALTER TABLE batches ADD COLUMN cancel_requested_ms INTEGER NOT NULL DEFAULT 0;)",
    // 2 -> 3: keys at rest. A key is kept only while a batch made with it is unfinished (the
    // configured key never: its batches say ConfiguredKeyHash, and BatchCore::restore() moves
    // older rows to that marker). The health table is what Store::probe() writes.
    R"(DELETE FROM keys WHERE key_hash NOT IN (SELECT key_hash FROM batches);
       CREATE TABLE health(id INTEGER PRIMARY KEY, probed_ms INTEGER NOT NULL);)",
    // 3 -> 4: the caller (proxy token name) and, for Idempotency-Key requests, the body's hash.
    R"(ALTER TABLE requests ADD COLUMN caller BLOB;
       ALTER TABLE requests ADD COLUMN body_hash BLOB;)",
    // 4 -> 5: the provider's state of a batch as one opaque blob, and statuses in the
    // provider-neutral words. The rows of the OpenAI family's batches keep their files (the
    // old columns are no longer written) and "in_progress" becomes "running".
    R"(ALTER TABLE batches ADD COLUMN provider_state BLOB;
       UPDATE batches SET provider_state = CAST('{"input_file_id":"' || COALESCE(input_file_id, '')
           || '","output_file_id":"' || COALESCE(output_file_id, '')
           || '","error_file_id":"' || COALESCE(error_file_id, '') || '"}' AS BLOB);
       UPDATE batches SET status = 'running' WHERE status = 'in_progress';)",
    // 5 -> 6: the ledger (issue 10): usage and cost per hour x route x endpoint x model x
    // caller x provider, written with each result; kept 400 days, through the results' purge.
    // Money in pico-USD over the requests whose cost is known.
    R"(CREATE TABLE IF NOT EXISTS ledger(
           hour_ms INTEGER NOT NULL, route TEXT NOT NULL, endpoint TEXT NOT NULL,
           model TEXT NOT NULL, caller TEXT NOT NULL, provider TEXT NOT NULL DEFAULT 'openai',
           requests INTEGER NOT NULL DEFAULT 0,
           requests_without_usage INTEGER NOT NULL DEFAULT 0,
           input_tokens INTEGER NOT NULL DEFAULT 0,
           cached_input_tokens INTEGER NOT NULL DEFAULT 0,
           cache_write_input_tokens INTEGER NOT NULL DEFAULT 0,
           output_tokens INTEGER NOT NULL DEFAULT 0,
           reasoning_tokens INTEGER NOT NULL DEFAULT 0,
           paid_picos INTEGER NOT NULL DEFAULT 0, list_picos INTEGER NOT NULL DEFAULT 0,
           saved_picos INTEGER NOT NULL DEFAULT 0,
           unknown_cost_requests INTEGER NOT NULL DEFAULT 0,
           PRIMARY KEY(hour_ms, route, endpoint, model, caller, provider));)",
    // 6 -> 7: the provider of each request and batch (several providers behind one URL); the
    // rows from before went to the one provider there was, "openai".
    R"(ALTER TABLE requests ADD COLUMN provider TEXT NOT NULL DEFAULT 'openai';
       ALTER TABLE batches ADD COLUMN provider TEXT NOT NULL DEFAULT 'openai';)",
    // 7 -> 8: who a batch is for, as the window shows it after a restart too, when a client's
    // own key is no longer held: the key's hint ("…abcd") and its callers' token names.
    R"(ALTER TABLE batches ADD COLUMN key_hint BLOB;
       ALTER TABLE batches ADD COLUMN callers BLOB;)",
    // 8 -> 9: the answer cache (--cache): successful answers by a hash of who asked what
    // (caller, key, endpoint, body), kept for the cache's window within its byte bound.
    R"(CREATE TABLE IF NOT EXISTS answer_cache(
           cache_key BLOB PRIMARY KEY, status INTEGER NOT NULL, headers BLOB,
           body BLOB NOT NULL, stored_ms INTEGER NOT NULL, bytes INTEGER NOT NULL);)",
    // 9 -> 10: each batch's tokens and cost (issue 10), added with each line's result and
    // ledger row while it runs (finished = 0), and once it ended what the history shows of it
    // (finished = 1): the batches table forgets a batch (and its key) when it ends.
    R"(CREATE TABLE batch_history(
           local_id TEXT PRIMARY KEY, finished INTEGER NOT NULL DEFAULT 0,
           batch_id TEXT, endpoint TEXT, model TEXT, provider TEXT, key_hint BLOB, callers BLOB,
           status TEXT, request_count INTEGER NOT NULL DEFAULT 0,
           completed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
           created_ms INTEGER, submitted_ms INTEGER, ended_ms INTEGER, errors TEXT,
           requests INTEGER NOT NULL DEFAULT 0,
           requests_without_usage INTEGER NOT NULL DEFAULT 0,
           input_tokens INTEGER NOT NULL DEFAULT 0,
           cached_input_tokens INTEGER NOT NULL DEFAULT 0,
           cache_write_input_tokens INTEGER NOT NULL DEFAULT 0,
           output_tokens INTEGER NOT NULL DEFAULT 0,
           reasoning_tokens INTEGER NOT NULL DEFAULT 0,
           paid_picos INTEGER NOT NULL DEFAULT 0, list_picos INTEGER NOT NULL DEFAULT 0,
           saved_picos INTEGER NOT NULL DEFAULT 0,
           unknown_cost_requests INTEGER NOT NULL DEFAULT 0);
       CREATE INDEX batch_history_by_end ON batch_history(finished, ended_ms);)",
    // 10 -> 11: what a batch counts against its model's queue at the provider (--queue-limit),
    // so that a restart knows how full each queue is before it makes anything new.
    R"(ALTER TABLE batches ADD COLUMN queue_tokens INTEGER NOT NULL DEFAULT 0;)",
};
static_assert(std::size(Migrations) == Store::SchemaVersion);

QByteArray bytes(const QVariant &v) {
    return v.isNull() ? QByteArray() : v.toByteArray();
}

QVariant nullable(const QByteArray &b) {
    return b.isEmpty() ? QVariant(QMetaType(QMetaType::QByteArray)) : QVariant(b);
}

void warnOnFailure(QSqlQuery &query, const char *what) {
    if (query.lastError().isValid())
        qCWarning(lcQueue).noquote() << "store:" << what << "failed:" << query.lastError().text();
}

} // namespace

Store::~Store() {
    if (!m_connection.isEmpty()) {
        commit();
        m_prepared.clear(); // statements go before their connection
        {
            QSqlDatabase db = QSqlDatabase::database(m_connection, false);
            db.close();
        }
        QSqlDatabase::removeDatabase(m_connection);
    }
}

std::unique_ptr<Store> Store::open(const QString &directory, QString *error) {
    auto fail = [error](const QString &message) {
        if (error)
            *error = message;
        return std::unique_ptr<Store>();
    };
    if (!QDir().mkpath(directory))
        return fail(QStringLiteral("cannot create the data directory %1").arg(directory));
    QFile::setPermissions(directory, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);

    std::unique_ptr<Store> store(new Store);
    store->m_path = QDir(directory).filePath(QStringLiteral("llm-proxy.sqlite"));
    store->m_connection =
        QStringLiteral("llmproxy-store-") + QUuid::createUuid().toString(QUuid::WithoutBraces);
    // Create the file owner-only before SQLite does, so it is never readable by others.
    if (!QFile::exists(store->m_path)) {
        QFile file(store->m_path);
        if (!file.open(QIODevice::WriteOnly))
            return fail(
                QStringLiteral("cannot create %1: %2").arg(store->m_path, file.errorString()));
        file.close();
    }
    QFile::setPermissions(store->m_path, QFile::ReadOwner | QFile::WriteOwner);

    QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), store->m_connection);
    db.setDatabaseName(store->m_path);
    db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
    if (!db.open())
        return fail(QStringLiteral("cannot open %1: %2").arg(store->m_path, db.lastError().text()));
    QString sqlError;
    // secure_delete: a deleted row (a key no longer needed) is overwritten, not left in a free
    // page; with the WAL truncated after such a delete (commit()), its bytes are gone.
    if (!store->exec(QStringLiteral("PRAGMA journal_mode=WAL"), &sqlError) ||
        !store->exec(QStringLiteral("PRAGMA synchronous=NORMAL"), &sqlError) ||
        !store->exec(QStringLiteral("PRAGMA secure_delete=ON"), &sqlError) ||
        !store->migrate(&sqlError))
        return fail(QStringLiteral("cannot prepare %1: %2").arg(store->m_path, sqlError));
    for (const char *suffix : {"-wal", "-shm"}) {
        const QString side = store->m_path + QLatin1StringView(suffix);
        if (QFile::exists(side))
            QFile::setPermissions(side, QFile::ReadOwner | QFile::WriteOwner);
    }
    QSqlQuery maxId(db);
    if (maxId.exec(QStringLiteral("SELECT COALESCE(MAX(id), 0) FROM requests")) && maxId.next())
        store->m_nextRequestId = maxId.value(0).toULongLong() + 1;
    return store;
}

bool Store::exec(const QString &sql, QString *error) {
    QSqlQuery query(QSqlDatabase::database(m_connection, false));
    if (query.exec(sql))
        return true;
    if (error)
        *error = query.lastError().text();
    return false;
}

bool Store::migrate(QString *error) {
    QSqlDatabase db = QSqlDatabase::database(m_connection, false);
    QSqlQuery version(db);
    if (!version.exec(QStringLiteral("PRAGMA user_version")) || !version.next()) {
        if (error)
            *error = version.lastError().text();
        return false;
    }
    int current = version.value(0).toInt();
    const int found = current;
    version.finish();
    if (current > SchemaVersion) {
        if (error)
            *error = QStringLiteral("the database was written by a newer llm-proxy (schema %1)")
                         .arg(current);
        return false;
    }
    while (current < SchemaVersion) {
        db.transaction();
        const QStringList statements =
            QString::fromUtf8(Migrations[current]).split(QLatin1Char(';'), Qt::SkipEmptyParts);
        for (const QString &statement : statements) {
            if (statement.trimmed().isEmpty())
                continue;
            if (!exec(statement, error)) {
                db.rollback();
                return false;
            }
        }
        ++current;
        if (!exec(QStringLiteral("PRAGMA user_version=%1").arg(current), error)) {
            db.rollback();
            return false;
        }
        db.commit();
    }
    if (found > 0 && found < 3) {
        // Written by a version that kept every key: rewrite the file without the free pages
        // the deleted keys were in, and empty the WAL that still held them.
        if (!exec(QStringLiteral("VACUUM"), error) || !truncateWal())
            qCWarning(lcQueue) << "store: could not compact the database after removing keys";
    }
    return true;
}

bool Store::truncateWal() {
    QSqlQuery q(QSqlDatabase::database(m_connection, false));
    // Returns (busy, log frames, checkpointed frames); busy = 1 when it could not finish.
    if (!q.exec(QStringLiteral("PRAGMA wal_checkpoint(TRUNCATE)")) || !q.next() ||
        q.value(0).toInt() != 0) {
        warnOnFailure(q, "truncating the WAL");
        return false;
    }
    return true;
}

void Store::checkWrite(QSqlQuery &query, const char *what) {
    if (!query.lastError().isValid())
        return;
    warnOnFailure(query, what);
    m_transactionFailed = true;
    m_writable = false;
}

QSqlQuery &Store::prepared(const QString &sql) {
    // Parsing SQL cost more than running it: each statement is prepared once and reused.
    auto it = m_prepared.find(sql);
    if (it == m_prepared.end()) {
        auto query = std::make_unique<QSqlQuery>(QSqlDatabase::database(m_connection, false));
        if (!query->prepare(sql))
            warnOnFailure(*query, "preparing a statement");
        it = m_prepared.emplace(sql, std::move(query)).first;
    }
    return *it->second;
}

void Store::beginIfNeeded() {
    if (m_inTransaction)
        return;
    QSqlDatabase::database(m_connection, false).transaction();
    m_inTransaction = true;
}

bool Store::commit() {
    if (!m_inTransaction)
        return true;
    m_inTransaction = false;
    QSqlDatabase db = QSqlDatabase::database(m_connection, false);
    const bool failed = std::exchange(m_transactionFailed, false);
    if (failed || !db.commit()) {
        // Never half a transaction: what it held is not stored, and the caller hears it.
        if (!failed)
            qCCritical(lcQueue).noquote() << "store: commit failed:" << db.lastError().text();
        else
            qCCritical(lcQueue) << "store: a write failed: its transaction is rolled back";
        db.rollback();
        m_writable = false;
        m_scrubPending = false;
        return false;
    }
    m_writable = true;
    if (std::exchange(m_scrubPending, false))
        truncateWal(); // the deleted keys' old pages are in the WAL until it is emptied
    return true;
}

bool Store::probe() {
    if (m_inTransaction)
        commit(); // a transaction that failed is rolled back first
    beginIfNeeded();
    QSqlQuery &q =
        prepared(QStringLiteral("INSERT OR REPLACE INTO health(id, probed_ms) VALUES(1, ?)"));
    q.addBindValue(QDateTime::currentMSecsSinceEpoch());
    q.exec();
    checkWrite(q, "probing");
    return commit();
}

void Store::deleteKey(const QByteArray &keyHash) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral("DELETE FROM keys WHERE key_hash = ?"));
    q.addBindValue(QString::fromLatin1(keyHash));
    q.exec();
    checkWrite(q, "deleting a key");
    if (q.numRowsAffected() > 0)
        m_scrubPending = true;
}

void Store::deleteUnusedKeys() {
    beginIfNeeded();
    QSqlQuery &q = prepared(
        QStringLiteral("DELETE FROM keys WHERE key_hash NOT IN (SELECT key_hash FROM batches)"));
    q.exec();
    checkWrite(q, "deleting keys no longer needed");
    if (q.numRowsAffected() > 0)
        m_scrubPending = true;
}

void Store::markConfiguredKey(const QByteArray &keyHash, const QByteArray &marker) {
    beginIfNeeded();
    for (const char *table : {"batches", "requests"}) {
        QSqlQuery &q = prepared(QStringLiteral("UPDATE %1 SET key_hash = ? WHERE key_hash = ?")
                                    .arg(QLatin1StringView(table)));
        q.addBindValue(QString::fromLatin1(marker));
        q.addBindValue(QString::fromLatin1(keyHash));
        q.exec();
        checkWrite(q, "marking the configured key's batches");
    }
    deleteKey(keyHash);
}

bool Store::simulateWriteFailureForTests(bool fail) {
    if (m_inTransaction)
        commit();
    return exec(fail ? QStringLiteral("PRAGMA query_only=ON")
                     : QStringLiteral("PRAGMA query_only=OFF"));
}

void Store::saveKey(const QByteArray &keyHash, const QByteArray &apiKey) {
    beginIfNeeded();
    QSqlQuery &q =
        prepared(QStringLiteral("INSERT OR REPLACE INTO keys(key_hash, api_key) VALUES(?, ?)"));
    q.addBindValue(QString::fromLatin1(keyHash));
    q.addBindValue(apiKey);
    q.exec();
    checkWrite(q, "saving a key");
}

QByteArray Store::key(const QByteArray &keyHash) {
    QSqlQuery &q = prepared(QStringLiteral("SELECT api_key FROM keys WHERE key_hash = ?"));
    q.addBindValue(QString::fromLatin1(keyHash));
    QByteArray out;
    if (q.exec() && q.next())
        out = bytes(q.value(0));
    q.finish(); // the statement is kept for the next call: let go of its read
    return out;
}

bool Store::insertRequest(const StoredRequest &r) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral(
        "INSERT INTO requests(id, key_hash, organization, project, endpoint, model, dedupe, body,"
        " embedding_inputs, arrived_ms, state, batch_local_id, caller, body_hash, provider)"
        " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    q.addBindValue(qint64(r.id));
    q.addBindValue(QString::fromLatin1(r.keyHash));
    q.addBindValue(r.organization);
    q.addBindValue(r.project);
    q.addBindValue(QString::fromUtf8(r.endpoint));
    q.addBindValue(QString::fromUtf8(r.model));
    q.addBindValue(r.dedupe);
    q.addBindValue(r.body);
    q.addBindValue(r.embeddingInputs);
    q.addBindValue(r.arrivedMs);
    q.addBindValue(int(r.state));
    q.addBindValue(nullable(r.batchLocalId));
    q.addBindValue(nullable(r.caller));
    q.addBindValue(nullable(r.bodyHash));
    q.addBindValue(QString::fromUtf8(r.provider.isEmpty() ? QByteArray("openai") : r.provider));
    q.exec();
    checkWrite(q, "saving a request");
    m_nextRequestId = std::max(m_nextRequestId, r.id + 1);
    return !q.lastError().isValid();
}

void Store::setRequestQueued(quint64 id) {
    beginIfNeeded();
    QSqlQuery &q = prepared(
        QStringLiteral("UPDATE requests SET state = 0, batch_local_id = NULL WHERE id = ?"));
    q.addBindValue(qint64(id));
    q.exec();
    checkWrite(q, "re-queueing a request");
}

void Store::setRequestsSubmitted(const QList<quint64> &ids, const QByteArray &batchLocalId) {
    beginIfNeeded();
    QSqlQuery &q =
        prepared(QStringLiteral("UPDATE requests SET state = 1, batch_local_id = ? WHERE id = ?"));
    for (quint64 id : ids) {
        q.addBindValue(QString::fromLatin1(batchLocalId));
        q.addBindValue(qint64(id));
        q.exec();
        checkWrite(q, "marking a request submitted");
    }
}

bool Store::storeResult(quint64 id, int status, const QByteArray &headers, const QByteArray &body,
                        bool synthesized, qint64 atMs) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral(
        "UPDATE requests SET state = 2, batch_local_id = NULL, result_status = ?,"
        " result_headers = ?, result_body = ?, result_synthesized = ?, result_ms = ?,"
        " body = x'' WHERE id = ? AND state != 2"));
    q.addBindValue(status);
    q.addBindValue(headers);
    q.addBindValue(body);
    q.addBindValue(synthesized ? 1 : 0);
    q.addBindValue(atMs);
    q.addBindValue(qint64(id));
    q.exec();
    checkWrite(q, "storing a result");
    return !q.lastError().isValid() && q.numRowsAffected() > 0;
}

void Store::deleteRequest(quint64 id) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral("DELETE FROM requests WHERE id = ?"));
    q.addBindValue(qint64(id));
    q.exec();
    checkWrite(q, "deleting a request");
}

QByteArray Store::requestBody(quint64 id) {
    QSqlQuery &q = prepared(QStringLiteral("SELECT body FROM requests WHERE id = ?"));
    q.addBindValue(qint64(id));
    QByteArray out;
    if (q.exec() && q.next())
        out = bytes(q.value(0));
    q.finish(); // the statement is kept for the next call: let go of its read
    return out;
}

std::optional<StoredRequest> Store::requestWithResult(quint64 id) {
    QSqlQuery &q = prepared(QStringLiteral("SELECT result_status, result_headers, result_body,"
                                           " result_synthesized, result_ms FROM requests"
                                           " WHERE id = ? AND state = 2"));
    q.addBindValue(qint64(id));
    if (!q.exec() || !q.next()) {
        q.finish();
        return std::nullopt;
    }
    StoredRequest r;
    r.id = id;
    r.state = StoredRequest::State::Answered;
    r.resultStatus = q.value(0).toInt();
    r.resultHeaders = bytes(q.value(1));
    r.resultBody = bytes(q.value(2));
    r.resultSynthesized = q.value(3).toInt() != 0;
    r.resultMs = q.value(4).toLongLong();
    q.finish();
    return r;
}

void Store::saveBatch(const StoredBatch &b) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral(
        "INSERT OR REPLACE INTO batches(local_id, key_hash, organization, project, endpoint,"
        " model, phase, batch_id, status, provider_state,"
        " request_count, created_ms, submitted_ms, ended_ms, errors, attempts,"
        " cancel_requested_ms, provider, key_hint, callers, queue_tokens)"
        " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    q.addBindValue(QString::fromLatin1(b.localId));
    q.addBindValue(QString::fromLatin1(b.keyHash));
    q.addBindValue(b.organization);
    q.addBindValue(b.project);
    q.addBindValue(QString::fromUtf8(b.endpoint));
    q.addBindValue(QString::fromUtf8(b.model));
    q.addBindValue(int(b.phase));
    q.addBindValue(QString::fromUtf8(b.batchId));
    q.addBindValue(QString::fromUtf8(b.status));
    q.addBindValue(b.providerState);
    q.addBindValue(b.requestCount);
    q.addBindValue(b.createdMs);
    q.addBindValue(b.submittedMs);
    q.addBindValue(b.endedMs);
    q.addBindValue(b.errors);
    q.addBindValue(b.attempts);
    q.addBindValue(b.cancelRequestedMs);
    q.addBindValue(QString::fromUtf8(b.provider.isEmpty() ? QByteArray("openai") : b.provider));
    q.addBindValue(b.keyHint);
    q.addBindValue(b.callers);
    q.addBindValue(b.queueTokens);
    q.exec();
    checkWrite(q, "saving a batch");
}

void Store::deleteBatch(const QByteArray &localId) {
    beginIfNeeded();
    for (const char *sql : {"DELETE FROM batches WHERE local_id = ?",
                            "DELETE FROM batch_history WHERE local_id = ? AND finished = 0"}) {
        QSqlQuery &q = prepared(QString::fromLatin1(sql));
        q.addBindValue(QString::fromLatin1(localId));
        q.exec();
        checkWrite(q, "deleting a batch");
    }
}

QList<StoredRequest> Store::loadRequests() {
    QList<StoredRequest> out;
    QSqlQuery q(QSqlDatabase::database(m_connection, false));
    q.setForwardOnly(true);
    if (!q.exec(QStringLiteral(
            "SELECT id, key_hash, organization, project, endpoint, model, dedupe,"
            " embedding_inputs, arrived_ms, state, batch_local_id, length(body), result_status,"
            " result_synthesized, result_ms, caller, body_hash, provider FROM requests"
            " ORDER BY id"))) {
        warnOnFailure(q, "loading requests");
        return out;
    }
    while (q.next()) {
        StoredRequest r;
        r.id = q.value(0).toULongLong();
        r.keyHash = bytes(q.value(1));
        r.organization = bytes(q.value(2));
        r.project = bytes(q.value(3));
        r.endpoint = bytes(q.value(4));
        r.model = bytes(q.value(5));
        r.dedupe = bytes(q.value(6));
        r.embeddingInputs = q.value(7).toInt();
        r.arrivedMs = q.value(8).toLongLong();
        r.state = StoredRequest::State(q.value(9).toInt());
        r.batchLocalId = bytes(q.value(10));
        r.bodySize = q.value(11).toLongLong();
        r.resultStatus = q.value(12).toInt();
        r.resultSynthesized = q.value(13).toInt() != 0;
        r.resultMs = q.value(14).toLongLong();
        r.caller = bytes(q.value(15));
        r.bodyHash = bytes(q.value(16));
        r.provider = bytes(q.value(17));
        out.append(r);
    }
    return out;
}

QList<StoredBatch> Store::loadBatches() {
    QList<StoredBatch> out;
    QSqlQuery q(QSqlDatabase::database(m_connection, false));
    q.setForwardOnly(true);
    if (!q.exec(
            QStringLiteral(
                "SELECT b.local_id, b.key_hash, b.organization, b.project, b.endpoint, b.model,"
                " b.phase, b.batch_id, b.status, b.provider_state, b.request_count, b.created_ms,"
                " b.submitted_ms, b.ended_ms, b.errors, b.attempts, b.cancel_requested_ms,"
                " b.provider, b.key_hint, b.callers, b.queue_tokens, %1 FROM batches b"
                " LEFT JOIN batch_history h ON h.local_id = b.local_id ORDER BY b.created_ms")
                .arg(storeusage::columns(QLatin1StringView("h."))))) {
        warnOnFailure(q, "loading batches");
        return out;
    }
    while (q.next()) {
        StoredBatch b;
        b.localId = bytes(q.value(0));
        b.keyHash = bytes(q.value(1));
        b.organization = bytes(q.value(2));
        b.project = bytes(q.value(3));
        b.endpoint = bytes(q.value(4));
        b.model = bytes(q.value(5));
        b.phase = StoredBatch::Phase(q.value(6).toInt());
        b.batchId = bytes(q.value(7));
        b.status = bytes(q.value(8));
        b.providerState = q.value(9).toByteArray();
        b.requestCount = q.value(10).toInt();
        b.createdMs = q.value(11).toLongLong();
        b.submittedMs = q.value(12).toLongLong();
        b.endedMs = q.value(13).toLongLong();
        b.errors = q.value(14).toString();
        b.attempts = q.value(15).toInt();
        b.cancelRequestedMs = q.value(16).toLongLong();
        b.provider = bytes(q.value(17));
        b.keyHint = q.value(18).toByteArray();
        b.callers = q.value(19).toByteArray();
        b.queueTokens = q.value(20).toLongLong();
        b.usage = storeusage::at(q, 21); // zeros (NULL) when no line was recorded
        out.append(b);
    }
    return out;
}

} // namespace llmproxy
