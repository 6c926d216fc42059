// SPDX-License-Identifier: GPL-3.0-or-later
#include "report.h"

#include "accounting/ledger.h"
#include "queue/store.h"

#include <QDir>
#include <QFileInfo>

#include <limits>

namespace llmproxy {

std::optional<ReportOutcome> runReportCommand(const QStringList &args, const QString &dataDir,
                                              qint64 nowMs) {
    if (!args.contains(QStringLiteral("--report")))
        return std::nullopt;
    ReportOutcome outcome;
    auto usage = [&outcome](const QString &problem) {
        outcome.exitCode = 2;
        outcome.err = QStringLiteral("llm-proxy: --report: ") + problem +
                      QStringLiteral("\nusage: llm-proxy --report [--since DUR] [--csv] "
                                     "[--data-dir DIR]   (DUR: 7d, 12h, 30m, 2w)");
        return outcome;
    };
    QString directory = dataDir;
    std::optional<qint64> since;
    bool csv = false;
    for (qsizetype i = 1; i < args.size(); ++i) {
        const QString &arg = args.at(i);
        QString name = arg;
        std::optional<QString> value;
        if (const qsizetype equals = arg.indexOf(QLatin1Char('=')); equals > 0) {
            name = arg.left(equals);
            value = arg.sliced(equals + 1);
        }
        const bool takesValue =
            name == QLatin1StringView("--since") || name == QLatin1StringView("--data-dir");
        if (takesValue && !value) {
            if (i + 1 >= args.size())
                return usage(name + QStringLiteral(" needs a value"));
            value = args.at(++i);
        }
        if (name == QLatin1StringView("--report") && !value) {
            continue;
        } else if (name == QLatin1StringView("--csv") && !value) {
            csv = true;
        } else if (name == QLatin1StringView("--since")) {
            since = accounting::parseLedgerDuration(*value);
            if (!since)
                return usage(QStringLiteral("--since takes a duration such as 7d, 12h, 30m or "
                                            "2w (got \"%1\")")
                                 .arg(value->left(40)));
        } else if (name == QLatin1StringView("--data-dir")) {
            directory = QFileInfo(*value).absoluteFilePath();
        } else {
            return usage(QStringLiteral("unexpected argument \"%1\"").arg(arg.left(40)));
        }
    }
    accounting::LedgerQuery query;
    query.fromMs = since ? nowMs - *since : 0;
    query.toMs = nowMs + 1;
    query.byEndpoint = query.byCaller = false; // per model and route, like a receipt
    QString error;
    const QString path = QDir(directory).filePath(QStringLiteral("llm-proxy.sqlite"));
    if (!QFileInfo::exists(path)) {
        outcome.out = QStringLiteral("No ledger yet: there is no store at %1 (nothing has been "
                                     "answered through llm-proxy with this data folder; see "
                                     "--data-dir).")
                          .arg(path);
        return outcome;
    }
    const std::optional<accounting::LedgerReport> report =
        Store::readLedger(directory, query, &error);
    if (!report) {
        outcome.exitCode = 1;
        outcome.err = QStringLiteral("llm-proxy: --report: ") + error;
        return outcome;
    }
    if (csv) {
        outcome.out = QString::fromUtf8(accounting::usageCsv(query, *report)).trimmed();
    } else {
        outcome.out = accounting::receiptText(query, *report).trimmed();
    }
    return outcome;
}

} // namespace llmproxy
