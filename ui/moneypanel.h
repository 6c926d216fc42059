// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The dashboard's first panel (issue 10): money saved today, this month and since install,
// what was paid against the list price, the tokens, a chart of paid against list per day and
// a table per model since install.
// Models without a price are named ("Cost unknown for: …"), never counted as $0. A view of
// the MoneySummary values the proxy's thread sends (ProxyHost::moneyReady).

#include "ui/moneysummary.h"

#include <QGroupBox>

class QLabel;
class QTableWidget;

namespace llmproxy {

class MoneyChart;

class MoneyPanel final : public QGroupBox {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MoneyPanel)
public:
    explicit MoneyPanel(QWidget *parent = nullptr);
    MoneyChart *chart() const { return m_chart; }

public Q_SLOTS:
    void showSummary(const llmproxy::MoneySummary &summary);

private:
    struct Period {
        QLabel *saved = nullptr;
        QLabel *paid = nullptr;
    };
    Period addPeriod(QLayout *row, const QString &title, const QString &name);
    static void showPeriod(const Period &period, const accounting::LedgerReport &report);
    void showModels(const accounting::LedgerReport &report);

    Period m_today, m_month, m_allTime;
    QLabel *m_tokens = nullptr;
    QLabel *m_unknown = nullptr;
    QLabel *m_error = nullptr;
    QTableWidget *m_models = nullptr;
    MoneyChart *m_chart = nullptr;
};

} // namespace llmproxy
