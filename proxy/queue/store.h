// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The durable queue: every accepted request, every batch's progress with the provider, and
// every result not yet delivered, in SQLite (WAL) under the data directory. The core's
// in-memory structures are a cache of this; after a crash the core rebuilds itself from it.
//
// Writes go into one open transaction that is committed by commit() (the core calls it a few
// milliseconds after accepting requests: a group commit) and at once before any step whose
// outcome upstream must not be forgotten (creating a batch). The database holds prompts,
// answers and a client's own API key while a batch made with it is unfinished (never the
// configured key): the file and its folder are readable by the owner only (0600 / 0700).
//
// A write that fails is never hidden: the transaction it was part of is rolled back at
// commit(), which returns false, and writable() stays false until a commit (or probe())
// succeeds again.

#include "accounting/ledger.h"

#include <QByteArray>
#include <QDateTime>
#include <QList>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QString>

#include <map>
#include <memory>
#include <optional>

namespace llmproxy {

struct BatchProgress;

struct StoredRequest {
    enum class State { Queued = 0, Submitted = 1, Answered = 2 };
    quint64 id = 0;
    QByteArray keyHash, organization, project, endpoint, model;
    QByteArray provider = QByteArrayLiteral("openai"); // the configured provider's name
    QByteArray dedupe;                                 // what adoption matches on (a hash)
    // Who sent it: the proxy token's name, else a key hint ("…" + the key's last 4 characters);
    // what the ledger's rows name (never a key).
    QByteArray caller;
    QByteArray bodyHash; // SHA-256 of the body, for requests with an Idempotency-Key
    QByteArray body;     // loaded only where asked for
    int embeddingInputs = 0;
    qint64 bodySize = 0;
    qint64 arrivedMs = 0; // wall clock, ms since the epoch
    State state = State::Queued;
    QByteArray batchLocalId; // while submitted
    // The stored answer, when Answered.
    int resultStatus = 0;
    QByteArray resultHeaders; // "name: value\n" lines
    QByteArray resultBody;    // loaded only where asked for
    bool resultSynthesized = false;
    qint64 resultMs = 0;
};

struct StoredBatch {
    // How far a batch got with the provider; each step is recorded before the next begins.
    enum class Phase {
        Forming = 0,  // requests chosen, nothing sent yet
        Uploaded = 1, // input handed to the provider (providerState says where)
        Creating = 2, // about to create: after a crash, look for it upstream before anything
        Created = 3,  // batchId known: poll
        Ended = 4,    // terminal status known: download results
        Cleaning = 5, // results stored: delete the provider's files
    };
    QByteArray localId;
    QByteArray keyHash, organization, project, endpoint, model;
    QByteArray provider = QByteArrayLiteral("openai"); // the configured provider's name
    // Who it is for, shown by the window: the key's hint ("…abcd", never more) and the token
    // names of its requests' callers ("alice, bob +2"; empty when clients brought keys).
    QByteArray keyHint, callers;
    Phase phase = Phase::Forming;
    QByteArray batchId; // the provider's id, once created
    // The normalised status name (statusName(): validating, running, ..., completed, failed,
    // expired, cancelled) once known; "dissolved" for a batch never created.
    QByteArray status;
    // What the provider keeps about the batch (its files, ...): opaque here, the provider's.
    QByteArray providerState;
    int requestCount = 0;
    qint64 createdMs = 0, submittedMs = 0, endedMs = 0;
    QString errors;   // provider's messages, one a line
    int attempts = 0; // resubmissions after the provider's queue was full
    // The prompt tokens it is counted as in its model's queue at the provider
    // (estimatedQueueTokens() of its requests' bodies; 0 for batches made before version 11).
    qint64 queueTokens = 0;
    // When the grace period ran out and we asked the provider to cancel the batch (0: never).
    // Its lines that never ran then go through the synchronous API for clients still waiting.
    qint64 cancelRequestedMs = 0;
    // What its answered lines used and cost (addBatchUsage()), as loadBatches() reads it.
    accounting::LedgerRow usage;
};

// One answer of the answer cache (--cache): the provider's successful answer to a request,
// under the hash that names who asked what (BatchCore's dedupe key).
struct CachedAnswer {
    QByteArray key;
    int status = 0;
    QByteArray headers; // "name: value\n" lines, as a stored result's
    QByteArray body;    // not loaded by loadCacheIndex()
    qint64 storedMs = 0;
    qint64 bytes = 0; // headers + body: what the cache's bound counts
};

class Store {
public:
    // The database's user_version this build writes: one migration per version before it.
    static constexpr int SchemaVersion = 11;

    ~Store();
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    // Open (creating or migrating) the database in `directory`, on the calling thread, which
    // is then the only thread that may use it.
    static std::unique_ptr<Store> open(const QString &directory, QString *error);
    QString path() const { return m_path; }

    // The first request id that was never used (ids are never reused, across restarts too).
    quint64 nextRequestId() const { return m_nextRequestId; }

    // A client's own key, for the batches made with it (never the configured key).
    void saveKey(const QByteArray &keyHash, const QByteArray &apiKey);
    QByteArray key(const QByteArray &keyHash);
    // Deleted keys are overwritten in the file, and the WAL is emptied after the commit.
    void deleteKey(const QByteArray &keyHash);
    // Every key no batch refers to any more.
    void deleteUnusedKeys();
    // Rows written with the configured key's hash (by older versions) refer to `marker`
    // instead, and its stored copy goes.
    void markConfiguredKey(const QByteArray &keyHash, const QByteArray &marker);

    // False when the statement failed (nothing was written; the transaction fails at commit).
    bool insertRequest(const StoredRequest &request);
    void setRequestQueued(quint64 id); // back in the queue (no batch)
    void setRequestsSubmitted(const QList<quint64> &ids, const QByteArray &batchLocalId);
    // True when this recorded the request's answer; false when it had one already (the first
    // stays) or no such request exists, so that its usage is never counted twice.
    bool storeResult(quint64 id, int status, const QByteArray &headers, const QByteArray &body,
                     bool synthesized, qint64 atMs);

    // The ledger (accounting/ledger.h): add `row` to its hour's row of the same labels, in the
    // open transaction (so a batch line's usage commits with its result, or not at all).
    void addToLedger(const accounting::LedgerRow &row);
    // Rows in [query.fromMs, query.toMs) grouped as asked; nullopt and *error on failure.
    std::optional<accounting::LedgerReport> ledgerReport(const accounting::LedgerQuery &query,
                                                         QString *error);
    // Forget the hours before `beforeMs` (the ledger is kept 400 days).
    void purgeLedger(qint64 beforeMs);
    // `llm-proxy --report`: the ledger of the store in `directory`, opened read-only (a running
    // proxy may hold it: WAL readers are fine). nullopt and *error (one line) when there is no
    // store there, or it has no ledger yet.
    static std::optional<accounting::LedgerReport>
    readLedger(const QString &directory, const accounting::LedgerQuery &query, QString *error);
    // The answer cache (queue/storecache.cpp), written in the open transaction (so an answer
    // is cached with its result, or not at all).
    void putCachedAnswer(const CachedAnswer &answer); // insert or replace
    std::optional<CachedAnswer> cachedAnswer(const QByteArray &key);
    void deleteCachedAnswer(const QByteArray &key);
    void clearCachedAnswers();
    // Every cached answer without its body, oldest first: the cache's index after a restart.
    QList<CachedAnswer> loadCacheIndex();

    // Each batch's tokens and cost (issue 10), kept in batch_history: add a recorded line's
    // ledger increment to its batch's usage, in the open transaction with the result and the
    // ledger row (so a crash never counts a line twice in either).
    void addBatchUsage(const QByteArray &localId, const accounting::LedgerRow &row);
    // A batch ended: keep what the history shows of it, with the usage its lines added (the
    // store's sums, not `batch.usage`). Only the newest FinishedBatchesKept are kept.
    void saveFinishedBatch(const BatchProgress &batch);
    static constexpr int FinishedBatchesKept = 500;
    // The finished batches kept, oldest first, at most the newest `limit`.
    QList<BatchProgress> loadFinishedBatches(qsizetype limit);

    void deleteRequest(quint64 id);
    QByteArray requestBody(quint64 id);
    std::optional<StoredRequest> requestWithResult(quint64 id);

    void saveBatch(const StoredBatch &batch); // insert or replace
    // Forgets an unfinished batch (with its usage; a finished one stays in the history).
    void deleteBatch(const QByteArray &localId);

    // Everything, without bodies, for a restart.
    QList<StoredRequest> loadRequests();
    QList<StoredBatch> loadBatches();

    // Make everything written so far durable. False (and rolled back) if any write of the
    // transaction or the commit itself failed.
    bool commit();
    bool hasUncommitted() const { return m_inTransaction; }
    // Whether the last commit (or probe) succeeded and no write failed since.
    bool writable() const { return m_writable; }
    // Commit a small write now, to learn whether writes succeed again.
    bool probe();
    // Test hook: make every write fail (SQLite's query_only), or succeed again.
    bool simulateWriteFailureForTests(bool fail);

private:
    Store() = default;
    bool exec(const QString &sql, QString *error = nullptr);
    bool migrate(QString *error);
    bool truncateWal();
    // After a write statement: a failure is logged and fails the transaction.
    void checkWrite(QSqlQuery &query, const char *what);
    void beginIfNeeded();
    // The statement for `sql`, prepared on first use and kept (bind, exec, finish a SELECT).
    QSqlQuery &prepared(const QString &sql);

    QString m_connection;
    QString m_path;
    quint64 m_nextRequestId = 1;
    bool m_inTransaction = false;
    bool m_transactionFailed = false; // a write of the open transaction failed
    bool m_writable = true;
    bool m_scrubPending = false; // a key was deleted: empty the WAL after the commit
    std::map<QString, std::unique_ptr<QSqlQuery>> m_prepared;
};

} // namespace llmproxy
