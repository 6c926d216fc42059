// SPDX-License-Identifier: GPL-3.0-or-later
// The answer cache's table (Store::putCachedAnswer and the rest; batch/answercache.h keeps its
// index in memory).
#include "api/logging.h"
#include "queue/store.h"

#include <QSqlError>
#include <QVariant>

namespace llmproxy {

void Store::putCachedAnswer(const CachedAnswer &answer) {
    beginIfNeeded();
    QSqlQuery &q = prepared(
        QStringLiteral("INSERT OR REPLACE INTO answer_cache(cache_key, status, headers, body,"
                       " stored_ms, bytes) VALUES(?, ?, ?, ?, ?, ?)"));
    q.addBindValue(answer.key);
    q.addBindValue(answer.status);
    q.addBindValue(answer.headers);
    q.addBindValue(answer.body);
    q.addBindValue(answer.storedMs);
    q.addBindValue(answer.bytes);
    q.exec();
    checkWrite(q, "caching an answer");
}

std::optional<CachedAnswer> Store::cachedAnswer(const QByteArray &key) {
    QSqlQuery &q = prepared(QStringLiteral(
        "SELECT status, headers, body, stored_ms, bytes FROM answer_cache WHERE cache_key = ?"));
    q.addBindValue(key);
    if (!q.exec() || !q.next()) {
        q.finish();
        return std::nullopt;
    }
    CachedAnswer answer;
    answer.key = key;
    answer.status = q.value(0).toInt();
    answer.headers = q.value(1).toByteArray();
    answer.body = q.value(2).toByteArray();
    answer.storedMs = q.value(3).toLongLong();
    answer.bytes = q.value(4).toLongLong();
    q.finish(); // the statement is kept for the next call: let go of its read
    return answer;
}

void Store::deleteCachedAnswer(const QByteArray &key) {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral("DELETE FROM answer_cache WHERE cache_key = ?"));
    q.addBindValue(key);
    q.exec();
    checkWrite(q, "deleting a cached answer");
}

void Store::clearCachedAnswers() {
    beginIfNeeded();
    QSqlQuery &q = prepared(QStringLiteral("DELETE FROM answer_cache"));
    q.exec();
    checkWrite(q, "emptying the answer cache");
}

QList<CachedAnswer> Store::loadCacheIndex() {
    QList<CachedAnswer> out;
    QSqlQuery q(QSqlDatabase::database(m_connection, false));
    q.setForwardOnly(true);
    if (!q.exec(QStringLiteral("SELECT cache_key, stored_ms, bytes FROM answer_cache"
                               " ORDER BY stored_ms"))) {
        qCWarning(lcQueue).noquote()
            << "store: loading the answer cache failed:" << q.lastError().text();
        return out;
    }
    while (q.next()) {
        CachedAnswer answer;
        answer.key = q.value(0).toByteArray();
        answer.storedMs = q.value(1).toLongLong();
        answer.bytes = q.value(2).toLongLong();
        out.append(answer);
    }
    return out;
}

} // namespace llmproxy
