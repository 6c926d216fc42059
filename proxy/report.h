// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// `llm-proxy --report [--since DUR] [--csv] [--data-dir DIR]`: the ledger as a receipt (list,
// paid and saved per model and route), read from the store without starting the proxy. The
// store is opened read-only, so a proxy running on it is no obstacle.

#include <QString>
#include <QStringList>

#include <optional>

namespace llmproxy {

struct ReportOutcome {
    int exitCode = 0;
    QString out; // for stdout
    QString err; // for stderr
};

// nullopt when `args` (argv, program name first) do not ask for --report. `dataDir` is where the
// store is unless --data-dir says otherwise; `nowMs` ends the period.
std::optional<ReportOutcome> runReportCommand(const QStringList &args, const QString &dataDir,
                                              qint64 nowMs);

} // namespace llmproxy
