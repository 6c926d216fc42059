// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/historypage.h"

#include "ui/batchdetails.h"
#include "ui/batchfiltermodel.h"
#include "ui/batchtablemodel.h"
#include "ui/displaytext.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

namespace llmproxy {

HistoryPage::HistoryPage(BatchTableModel *finished, QWidget *parent)
    : QWidget(parent)
    , m_model(finished)
    , m_filter(new BatchFilterModel(this)) {
    m_filter->setSourceModel(m_model);
    auto *layout = new QVBoxLayout(this);
    auto *top = new QHBoxLayout;
    top->addWidget(new QLabel(HistoryPage::tr("Status:"), this));
    m_status = new QComboBox(this);
    m_status->setObjectName(QStringLiteral("statusFilter"));
    m_status->addItem(HistoryPage::tr("All"), QString());
    m_status->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    top->addWidget(m_status);
    m_count = new QLabel(this);
    m_count->setObjectName(QStringLiteral("historyCount"));
    top->addWidget(m_count);
    top->addStretch(1);
    layout->addLayout(top);

    auto *splitter = new QSplitter(Qt::Horizontal, this);
    m_table = new QTableView(splitter);
    m_table->setObjectName(QStringLiteral("historyTable"));
    m_table->setModel(m_filter);
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(BatchTableModel::CreatedColumn, Qt::DescendingOrder);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setAlternatingRowColors(true);
    m_table->verticalHeader()->hide();
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setStretchLastSection(true);
    m_details = new BatchDetails(splitter);
    splitter->addWidget(m_table);
    splitter->addWidget(m_details);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    layout->addWidget(splitter, 1);

    connect(m_status, &QComboBox::currentIndexChanged, this, [this](int index) {
        m_filter->setStatusFilter(m_status->itemData(index).toString());
        refresh();
    });
    connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &HistoryPage::selectionChanged);
    refresh();
}

void HistoryPage::refresh() {
    // Offer every status seen so far (statuses never disappear from the list while shown).
    const QStringList statuses = m_model->statuses();
    for (const QString &status : statuses) {
        if (m_status->findData(status) < 0)
            m_status->addItem(status, status);
    }
    m_count->setText(tr("%1 of %2 finished batches")
                         .arg(display::count(static_cast<quint64>(m_filter->rowCount())),
                              display::count(static_cast<quint64>(m_model->rowCount()))));
    showDetails();
}

void HistoryPage::selectionChanged() {
    const QModelIndexList rows = m_table->selectionModel()->selectedRows();
    m_selected = rows.isEmpty()
                     ? QByteArray()
                     : rows.constFirst().data(BatchTableModel::LocalIdRole).toByteArray();
    showDetails();
}

void HistoryPage::showDetails() {
    const auto batch = m_selected.isEmpty() ? std::nullopt : m_model->batch(m_selected);
    if (batch)
        m_details->showBatch(*batch);
    else
        m_details->clearBatch();
}

} // namespace llmproxy
