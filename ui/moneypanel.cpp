// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/moneypanel.h"

#include "ui/moneychart.h"
#include "ui/moneytext.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QTableWidget>
#include <QVBoxLayout>
#include <climits>

namespace llmproxy {

namespace {

using accounting::LedgerRow;

enum ModelColumn {
    ModelName,
    ModelRequests,
    ModelInput,
    ModelOutput,
    ModelPaid,
    ModelList,
    ModelSaved,
    ModelColumns
};

// A number cell that sorts as a number.
QTableWidgetItem *numberItem(const QString &text, qint64 value, const QString &toolTip = {}) {
    auto *item = new QTableWidgetItem(text);
    item->setData(Qt::UserRole, value);
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    item->setToolTip(toolTip);
    return item;
}

} // namespace

MoneyPanel::MoneyPanel(QWidget *parent)
    : QGroupBox(tr("Money"), parent) {
    setObjectName(QStringLiteral("moneyPanel"));
    auto *layout = new QVBoxLayout(this);

    auto *periods = new QHBoxLayout;
    m_today = addPeriod(periods, tr("Saved today"), QStringLiteral("Today"));
    m_month = addPeriod(periods, tr("Saved this month"), QStringLiteral("Month"));
    m_allTime = addPeriod(periods, tr("Saved since install"), QStringLiteral("AllTime"));
    periods->addStretch(1);
    layout->addLayout(periods);

    m_tokens = new QLabel(this);
    m_tokens->setObjectName(QStringLiteral("moneyTokensLabel"));
    m_tokens->setWordWrap(true);
    layout->addWidget(m_tokens);

    m_unknown = new QLabel(this);
    m_unknown->setObjectName(QStringLiteral("unknownCostLabel"));
    m_unknown->setWordWrap(true);
    m_unknown->setForegroundRole(QPalette::PlaceholderText);
    m_unknown->hide();
    layout->addWidget(m_unknown);

    m_error = new QLabel(this);
    m_error->setObjectName(QStringLiteral("moneyErrorLabel"));
    m_error->setWordWrap(true);
    m_error->setForegroundRole(QPalette::PlaceholderText);
    m_error->hide();
    layout->addWidget(m_error);

    // The chart and the table side by side: the dashboard has more below.
    auto *details = new QHBoxLayout;
    m_chart = new MoneyChart(this);
    m_chart->hide(); // until there is something to draw
    details->addWidget(m_chart, 2);

    m_models = new QTableWidget(0, ModelColumns, this);
    m_models->setObjectName(QStringLiteral("moneyModelsTable"));
    m_models->setHorizontalHeaderLabels({tr("Model"), tr("Requests"), tr("Input tokens"),
                                         tr("Output tokens"), tr("Paid"), tr("List price"),
                                         tr("Saved")});
    m_models->setToolTip(tr("Since install, per model"));
    m_models->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_models->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_models->verticalHeader()->hide();
    m_models->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_models->horizontalHeader()->setSectionResizeMode(ModelName, QHeaderView::Stretch);
    m_models->setMaximumHeight(220);
    m_models->setTabKeyNavigation(false); // Tab leaves the table (arrows move in it)
    m_models->hide();
    details->addWidget(m_models, 3, Qt::AlignTop);
    layout->addLayout(details);

    m_tokens->setText(tr("No requests counted yet"));
}

MoneyPanel::Period MoneyPanel::addPeriod(QLayout *row, const QString &title, const QString &name) {
    auto *box = new QVBoxLayout;
    auto *caption = new QLabel(title, this);
    Period period;
    period.saved = new QLabel(QStringLiteral("–"), this);
    period.saved->setObjectName(QStringLiteral("saved%1Label").arg(name));
    QFont big = period.saved->font();
    big.setBold(true);
    big.setPointSizeF(big.pointSizeF() * 1.6);
    period.saved->setFont(big);
    period.saved->setTextInteractionFlags(Qt::TextSelectableByMouse);
    period.paid = new QLabel(this);
    period.paid->setObjectName(QStringLiteral("paid%1Label").arg(name));
    box->addWidget(caption);
    box->addWidget(period.saved);
    box->addWidget(period.paid);
    qobject_cast<QBoxLayout *>(row)->addLayout(box);
    qobject_cast<QBoxLayout *>(row)->addSpacing(24);
    return period;
}

void MoneyPanel::showSummary(const MoneySummary &summary) {
    m_chart->showSummary(summary);
    m_error->setVisible(!summary.valid);
    if (!summary.valid) {
        m_error->setText(summary.error);
        return;
    }
    showPeriod(m_today, summary.today);
    showPeriod(m_month, summary.month);
    showPeriod(m_allTime, summary.allTime);

    const LedgerRow all = summary.allTime.total();
    if (all.requests == 0) {
        m_tokens->setText(tr("No requests counted yet"));
    } else {
        QString text = tr("Since install: %n request(s), %1 input tokens (%2 cached), %3 output "
                          "tokens (%4 reasoning)",
                          nullptr, int(qMin<qint64>(all.requests, INT_MAX)))
                           .arg(money::tokens(all.input), money::tokens(all.cachedInput),
                                money::tokens(all.output), money::tokens(all.reasoning));
        if (all.requestsWithoutUsage > 0)
            text += u' ' + tr("%n answer(s) came without usage and are not in the tokens.", nullptr,
                              int(qMin<qint64>(all.requestsWithoutUsage, INT_MAX)));
        m_tokens->setText(text);
    }

    QStringList unpriced;
    for (const QByteArray &model : summary.allTime.unpricedModels)
        unpriced.append(model.isEmpty() ? tr("(no model)") : QString::fromUtf8(model));
    m_unknown->setVisible(!unpriced.isEmpty());
    m_unknown->setText(tr("Cost unknown for: %1. Their tokens are counted; without a price "
                          "(Settings → Prices) their cost is not.")
                           .arg(unpriced.join(QStringLiteral(", "))));
    showModels(summary.allTime);
}

void MoneyPanel::showPeriod(const Period &period, const accounting::LedgerReport &report) {
    const LedgerRow total = report.total();
    period.saved->setText(money::amount(total, &LedgerRow::saved));
    period.saved->setToolTip(money::exactAmount(total, &LedgerRow::saved));
    if (total.requests == 0) {
        period.paid->setText(tr("nothing counted"));
        period.paid->setToolTip(QString());
        return;
    }
    period.paid->setText(
        tr("paid %1 of %2 list")
            .arg(money::amount(total, &LedgerRow::paid), money::amount(total, &LedgerRow::list)));
    period.paid->setToolTip(tr("Paid %1\nList price %2")
                                .arg(money::exactAmount(total, &LedgerRow::paid),
                                     money::exactAmount(total, &LedgerRow::list)));
}

void MoneyPanel::showModels(const accounting::LedgerReport &report) {
    m_models->setSortingEnabled(false);
    m_models->setRowCount(int(report.rows.size()));
    int row = 0;
    for (const LedgerRow &line : report.rows) {
        auto *name = new QTableWidgetItem(line.model.isEmpty() ? tr("(no model)")
                                                               : QString::fromUtf8(line.model));
        m_models->setItem(row, ModelName, name);
        m_models->setItem(row, ModelRequests,
                          numberItem(money::tokens(line.requests), line.requests));
        m_models->setItem(row, ModelInput,
                          numberItem(money::tokens(line.input), line.input,
                                     tr("%1 of them cached").arg(money::tokens(line.cachedInput))));
        m_models->setItem(row, ModelOutput, numberItem(money::tokens(line.output), line.output));
        const bool known = money::knownOf(line) != money::Known::None;
        m_models->setItem(row, ModelPaid,
                          numberItem(money::amount(line, &LedgerRow::paid), known ? line.paid : -1,
                                     money::exactAmount(line, &LedgerRow::paid)));
        m_models->setItem(row, ModelList,
                          numberItem(money::amount(line, &LedgerRow::list), known ? line.list : -1,
                                     money::exactAmount(line, &LedgerRow::list)));
        m_models->setItem(row, ModelSaved,
                          numberItem(money::amount(line, &LedgerRow::saved),
                                     known ? line.saved : -1,
                                     money::exactAmount(line, &LedgerRow::saved)));
        ++row;
    }
    m_models->setVisible(row > 0);
}

} // namespace llmproxy
