// SPDX-License-Identifier: GPL-3.0-or-later
// The ledger's part of the Store (issue 10): the table is made by migration 5 -> 6 in store.cpp.

#include "accounting/ledger.h"
#include "api/logging.h"
#include "queue/store.h"

#include <QDir>
#include <QFileInfo>
#include <QSqlError>
#include <QSqlQuery>
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

// The report's rows and unpriced models, read from `db` (the store's connection, or a read-only
// one for --report).
std::optional<LedgerReport> queryLedger(const QSqlDatabase &db, const LedgerQuery &query,
                                        QString *error) {
    const QString day =
        query.byDay ? QStringLiteral("(hour_ms / 86400000) * 86400000") : QStringLiteral("0");
    auto column = [](bool grouped, const char *name) {
        return grouped ? QLatin1StringView(name) : QLatin1StringView("''");
    };
    const QString sql =
        QStringLiteral(
            "SELECT %1, %2, %3, %4, %5, %6, SUM(requests), SUM(requests_without_usage),"
            " SUM(input_tokens), SUM(cached_input_tokens), SUM(cache_write_input_tokens),"
            " SUM(output_tokens), SUM(reasoning_tokens), SUM(paid_picos), SUM(list_picos),"
            " SUM(saved_picos), SUM(unknown_cost_requests) FROM ledger"
            " WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1, 2, 3, 4, 5, 6"
            " ORDER BY 1, 2, 3, 4, 5, 6")
            .arg(day, column(query.byModel, "model"), column(query.byRoute, "route"),
                 column(query.byEndpoint, "endpoint"), column(query.byCaller, "caller"),
                 column(query.byProvider, "provider"));
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
        LedgerRow row;
        row.hourMs = q.value(0).toLongLong();
        row.model = text(q.value(1));
        row.route = text(q.value(2));
        row.endpoint = text(q.value(3));
        row.caller = text(q.value(4));
        row.provider = text(q.value(5));
        row.requests = q.value(6).toLongLong();
        row.requestsWithoutUsage = q.value(7).toLongLong();
        row.input = q.value(8).toLongLong();
        row.cachedInput = q.value(9).toLongLong();
        row.cacheWriteInput = q.value(10).toLongLong();
        row.output = q.value(11).toLongLong();
        row.reasoning = q.value(12).toLongLong();
        row.paid = q.value(13).toLongLong();
        row.list = q.value(14).toLongLong();
        row.saved = q.value(15).toLongLong();
        row.unknownCost = q.value(16).toLongLong();
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

void Store::addToLedger(const LedgerRow &row) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral(
        "INSERT INTO ledger(hour_ms, route, endpoint, model, caller, provider, requests,"
        " requests_without_usage, input_tokens, cached_input_tokens, cache_write_input_tokens,"
        " output_tokens, reasoning_tokens, paid_picos, list_picos, saved_picos,"
        " unknown_cost_requests) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(hour_ms, route, endpoint, model, caller, provider) DO UPDATE SET"
        " requests = requests + excluded.requests,"
        " requests_without_usage = requests_without_usage + excluded.requests_without_usage,"
        " input_tokens = input_tokens + excluded.input_tokens,"
        " cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,"
        " cache_write_input_tokens = cache_write_input_tokens + excluded.cache_write_input_tokens,"
        " output_tokens = output_tokens + excluded.output_tokens,"
        " reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,"
        " paid_picos = paid_picos + excluded.paid_picos,"
        " list_picos = list_picos + excluded.list_picos,"
        " saved_picos = saved_picos + excluded.saved_picos,"
        " unknown_cost_requests = unknown_cost_requests + excluded.unknown_cost_requests"));
    q.addBindValue(row.hourMs);
    for (const QByteArray *label :
         {&row.route, &row.endpoint, &row.model, &row.caller, &row.provider})
        q.addBindValue(label->isEmpty() ? QStringLiteral("") // '', never NULL
                                        : QString::fromUtf8(*label));
    for (const qint64 n :
         {row.requests, row.requestsWithoutUsage, row.input, row.cachedInput, row.cacheWriteInput,
          row.output, row.reasoning, row.paid, row.list, row.saved, row.unknownCost})
        q.addBindValue(n);
    q.exec();
    checkWrite(q, "adding to the ledger");
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
