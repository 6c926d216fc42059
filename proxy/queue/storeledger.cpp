// SPDX-License-Identifier: GPL-3.0-or-later
// The ledger's part of the Store (issue 10): the table is made by migration 5 -> 6 in store.cpp;
// each batch's usage and the finished batches (batch_history) by migration 8 -> 9.

#include "accounting/ledger.h"
#include "api/logging.h"
#include "batch/batchprogress.h"
#include "queue/store.h"
#include "queue/storeusage.h"

#include <QDir>
#include <QFileInfo>
#include <QSqlError>
#include <QSqlQuery>
#include <QStringList>
#include <QUuid>
#include <QVariant>

namespace llmproxy {

namespace {

using accounting::LedgerQuery;
using accounting::LedgerReport;
using accounting::LedgerRow;

QByteArray text(const QVariant &v) {
    return v.isNull() ? QByteArray() : v.toString().toUtf8();
}

// In LedgerRow's order (storeusage::bind(), storeusage::at()).
constexpr const char *UsageColumnNames[] = {"requests",
                                            "requests_without_usage",
                                            "input_tokens",
                                            "cached_input_tokens",
                                            "cache_write_input_tokens",
                                            "output_tokens",
                                            "reasoning_tokens",
                                            "paid_picos",
                                            "list_picos",
                                            "saved_picos",
                                            "unknown_cost_requests"};

// The report's rows and unpriced models, read from `db` (the store's connection, or a read-only
// one for --report).
std::optional<LedgerReport> queryLedger(const QSqlDatabase &db, const LedgerQuery &query,
                                        QString *error) {
    const QString day = query.byDay    ? QStringLiteral("(hour_ms / 86400000) * 86400000")
                        : query.byHour ? QStringLiteral("hour_ms")
                                       : QStringLiteral("0");
    auto column = [](bool grouped, const char *name) {
        return grouped ? QLatin1StringView(name) : QLatin1StringView("''");
    };
    QStringList sums;
    for (const QString &name : storeusage::columns().split(QStringLiteral(", ")))
        sums.append(QStringLiteral("SUM(%1)").arg(name));
    const QString sql =
        QStringLiteral("SELECT %1, %2, %3, %4, %5, %6, %7 FROM ledger"
                       " WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1, 2, 3, 4, 5, 6"
                       " ORDER BY 1, 2, 3, 4, 5, 6")
            .arg(day, column(query.byModel, "model"), column(query.byRoute, "route"),
                 column(query.byEndpoint, "endpoint"), column(query.byCaller, "caller"),
                 column(query.byProvider, "provider"), sums.join(QStringLiteral(", ")));
    const qint64 from = query.fromMs - ((query.fromMs % accounting::HourMs) + accounting::HourMs) %
                                           accounting::HourMs;
    QSqlQuery q(db);
    q.setForwardOnly(true);
    q.prepare(sql);
    q.addBindValue(from);
    q.addBindValue(query.toMs);
    LedgerReport report;
    if (!q.exec()) {
        if (error)
            *error = q.lastError().text();
        return std::nullopt;
    }
    while (q.next()) {
        LedgerRow row = storeusage::at(q, 6);
        row.hourMs = q.value(0).toLongLong();
        row.model = text(q.value(1));
        row.route = text(q.value(2));
        row.endpoint = text(q.value(3));
        row.caller = text(q.value(4));
        row.provider = text(q.value(5));
        report.rows.append(row);
    }
    QSqlQuery unpriced(db);
    unpriced.setForwardOnly(true);
    unpriced.prepare(QStringLiteral("SELECT DISTINCT model FROM ledger WHERE"
                                    " unknown_cost_requests > 0 AND hour_ms >= ? AND hour_ms < ?"
                                    " ORDER BY model"));
    unpriced.addBindValue(from);
    unpriced.addBindValue(query.toMs);
    if (!unpriced.exec()) {
        if (error)
            *error = unpriced.lastError().text();
        return std::nullopt;
    }
    while (unpriced.next())
        report.unpricedModels.append(text(unpriced.value(0)));
    return report;
}

} // namespace

namespace storeusage {

QString columns(QLatin1StringView table) {
    QStringList names;
    for (const char *name : UsageColumnNames)
        names.append(QString(table) + QLatin1StringView(name));
    return names.join(QStringLiteral(", "));
}

QString placeholders(int more) {
    QStringList marks;
    for (int i = 0; i < more + int(std::size(UsageColumnNames)); ++i)
        marks.append(QStringLiteral("?"));
    return marks.join(QStringLiteral(", "));
}

QString sums() {
    QStringList out;
    for (const char *name : UsageColumnNames)
        out.append(QStringLiteral("%1 = %1 + excluded.%1").arg(QLatin1StringView(name)));
    return out.join(QStringLiteral(", "));
}

void bind(QSqlQuery &query, const LedgerRow &row) {
    for (const qint64 n :
         {row.requests, row.requestsWithoutUsage, row.input, row.cachedInput, row.cacheWriteInput,
          row.output, row.reasoning, row.paid, row.list, row.saved, row.unknownCost})
        query.addBindValue(n);
}

LedgerRow at(const QSqlQuery &query, int firstColumn) {
    LedgerRow row;
    qint64 *const fields[] = {&row.requests,
                              &row.requestsWithoutUsage,
                              &row.input,
                              &row.cachedInput,
                              &row.cacheWriteInput,
                              &row.output,
                              &row.reasoning,
                              &row.paid,
                              &row.list,
                              &row.saved,
                              &row.unknownCost};
    static_assert(std::size(fields) == std::size(UsageColumnNames));
    for (qsizetype i = 0; i < qsizetype(std::size(fields)); ++i)
        *fields[i] = query.value(firstColumn + int(i)).toLongLong();
    return row;
}

} // namespace storeusage

void Store::addToLedger(const LedgerRow &row) {
    beginIfNeeded();
    QSqlQuery &q = prepared(
        QStringLiteral("INSERT INTO ledger(hour_ms, route, endpoint, model, caller, provider, %1)"
                       " VALUES(%2) ON CONFLICT(hour_ms, route, endpoint, model, caller,"
                       " provider) DO UPDATE SET %3")
            .arg(storeusage::columns(), storeusage::placeholders(6), storeusage::sums()));
    q.addBindValue(row.hourMs);
    for (const QByteArray *label :
         {&row.route, &row.endpoint, &row.model, &row.caller, &row.provider})
        q.addBindValue(label->isEmpty() ? QStringLiteral("") // '', never NULL
                                        : QString::fromUtf8(*label));
    storeusage::bind(q, row);
    q.exec();
    checkWrite(q, "adding to the ledger");
}

void Store::addBatchUsage(const QByteArray &localId, const LedgerRow &row) {
    beginIfNeeded();
    QSqlQuery &q =
        prepared(QStringLiteral("INSERT INTO batch_history(local_id, %1) VALUES(%2)"
                                " ON CONFLICT(local_id) DO UPDATE SET %3")
                     .arg(storeusage::columns(), storeusage::placeholders(1), storeusage::sums()));
    q.addBindValue(QString::fromLatin1(localId));
    storeusage::bind(q, row);
    q.exec();
    checkWrite(q, "adding to a batch's usage");
}

void Store::saveFinishedBatch(const BatchProgress &b) {
    beginIfNeeded();
    // The usage columns are left as the batch's lines added them.
    QSqlQuery &q = prepared(QStringLiteral(
        "INSERT INTO batch_history(local_id, finished, batch_id, endpoint, model, provider,"
        " key_hint, callers, status, request_count, completed, failed, created_ms, submitted_ms,"
        " ended_ms, errors) VALUES(?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(local_id) DO UPDATE SET finished = 1, batch_id = excluded.batch_id,"
        " endpoint = excluded.endpoint, model = excluded.model, provider = excluded.provider,"
        " key_hint = excluded.key_hint, callers = excluded.callers, status = excluded.status,"
        " request_count = excluded.request_count, completed = excluded.completed,"
        " failed = excluded.failed, created_ms = excluded.created_ms,"
        " submitted_ms = excluded.submitted_ms, ended_ms = excluded.ended_ms,"
        " errors = excluded.errors"));
    const auto ms = [](const QDateTime &t) { return t.isValid() ? t.toMSecsSinceEpoch() : 0; };
    q.addBindValue(QString::fromLatin1(b.localId));
    q.addBindValue(QString::fromUtf8(b.batchId));
    q.addBindValue(QString::fromUtf8(b.endpoint));
    q.addBindValue(QString::fromUtf8(b.model));
    q.addBindValue(QString::fromUtf8(b.provider));
    q.addBindValue(b.keyHint);
    q.addBindValue(b.callers);
    q.addBindValue(QString::fromUtf8(b.status));
    q.addBindValue(b.total);
    q.addBindValue(b.completed);
    q.addBindValue(b.failed);
    q.addBindValue(ms(b.createdAt));
    q.addBindValue(ms(b.submittedAt));
    q.addBindValue(ms(b.endedAt));
    q.addBindValue(b.errors.join(QLatin1Char('\n')));
    q.exec();
    checkWrite(q, "keeping a finished batch");
    QSqlQuery &trim = prepared(
        QStringLiteral(
            "DELETE FROM batch_history WHERE finished = 1 AND local_id NOT IN (SELECT local_id FROM"
            " batch_history WHERE finished = 1 ORDER BY ended_ms DESC LIMIT %1)")
            .arg(FinishedBatchesKept));
    trim.exec();
    checkWrite(trim, "forgetting the oldest finished batches");
}

QList<BatchProgress> Store::loadFinishedBatches(qsizetype limit) {
    QList<BatchProgress> out;
    QSqlQuery q(QSqlDatabase::database(m_connection, false));
    q.setForwardOnly(true);
    q.prepare(QStringLiteral("SELECT local_id, batch_id, endpoint, model, provider, key_hint,"
                             " callers, status, request_count, completed, failed, created_ms,"
                             " submitted_ms, ended_ms, errors, %1 FROM batch_history"
                             " WHERE finished = 1 ORDER BY ended_ms DESC LIMIT ?")
                  .arg(storeusage::columns()));
    q.addBindValue(qint64(limit));
    if (!q.exec()) {
        qCWarning(lcQueue).noquote()
            << "store: loading finished batches failed:" << q.lastError().text();
        return out;
    }
    const auto time = [](const QVariant &v) {
        return v.toLongLong() > 0 ? QDateTime::fromMSecsSinceEpoch(v.toLongLong(), Qt::UTC)
                                  : QDateTime();
    };
    while (q.next()) {
        BatchProgress b;
        b.localId = q.value(0).toString().toLatin1();
        b.batchId = text(q.value(1));
        b.endpoint = text(q.value(2));
        b.model = text(q.value(3));
        b.provider = text(q.value(4));
        b.keyHint = q.value(5).toByteArray();
        b.callers = q.value(6).toByteArray();
        b.status = text(q.value(7));
        b.active = false;
        b.total = q.value(8).toInt();
        b.completed = q.value(9).toInt();
        b.failed = q.value(10).toInt();
        b.createdAt = time(q.value(11));
        b.submittedAt = time(q.value(12));
        b.endedAt = time(q.value(13));
        const QString errors = q.value(14).toString();
        if (!errors.isEmpty())
            b.errors = errors.split(QLatin1Char('\n'));
        b.usage = storeusage::at(q, 15);
        out.prepend(b); // oldest first
    }
    return out;
}

std::optional<LedgerReport> Store::ledgerReport(const LedgerQuery &query, QString *error) {
    return queryLedger(QSqlDatabase::database(m_connection, false), query, error);
}

void Store::purgeLedger(qint64 beforeMs) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral("DELETE FROM ledger WHERE hour_ms < ?"));
    q.addBindValue(beforeMs);
    q.exec();
    checkWrite(q, "purging the ledger");
}

std::optional<LedgerReport> Store::readLedger(const QString &directory, const LedgerQuery &query,
                                              QString *error) {
    const QString path = QDir(directory).filePath(QStringLiteral("llm-proxy.sqlite"));
    auto fail = [error](const QString &message) {
        if (error)
            *error = message;
        return std::optional<LedgerReport>();
    };
    if (!QFileInfo::exists(path))
        return fail(QStringLiteral("no store at %1: nothing has been answered through this "
                                   "llm-proxy yet (or it uses another --data-dir)")
                        .arg(path));
    const QString connection =
        QStringLiteral("llmproxy-report-") + QUuid::createUuid().toString(QUuid::WithoutBraces);
    std::optional<LedgerReport> report;
    QString problem;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), connection);
        db.setDatabaseName(path);
        // Read-only: never migrates or writes; a running proxy's WAL is read as it stands.
        db.setConnectOptions(QStringLiteral("QSQLITE_OPEN_READONLY;QSQLITE_BUSY_TIMEOUT=5000"));
        if (!db.open()) {
            problem = QStringLiteral("cannot open %1: %2").arg(path, db.lastError().text());
        } else {
            QSqlQuery has(db);
            if (!has.exec(QStringLiteral(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'"))) {
                problem = QStringLiteral("cannot read %1: %2").arg(path, has.lastError().text());
            } else if (!has.next()) {
                problem = QStringLiteral("%1 has no ledger yet: start this version of llm-proxy "
                                         "once to add it")
                              .arg(path);
            } else {
                has.finish();
                QString sqlError;
                report = queryLedger(db, query, &sqlError);
                if (!report)
                    problem =
                        QStringLiteral("cannot read the ledger in %1: %2").arg(path, sqlError);
            }
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(connection);
    if (!report)
        return fail(problem);
    return report;
}

} // namespace llmproxy
