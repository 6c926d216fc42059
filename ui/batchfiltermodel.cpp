// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/batchfiltermodel.h"

#include "ui/batchtablemodel.h"

namespace llmproxy {

BatchFilterModel::BatchFilterModel(QObject *parent)
    : QSortFilterProxyModel(parent) {
    setSortRole(BatchTableModel::SortRole);
    setDynamicSortFilter(true);
}

void BatchFilterModel::setStatusFilter(const QString &status) {
    if (status == m_status)
        return;
    m_status = status;
    invalidateRowsFilter();
}

bool BatchFilterModel::filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const {
    if (m_status.isEmpty())
        return true;
    const QModelIndex index = sourceModel()->index(sourceRow, 0, sourceParent);
    return index.data(BatchTableModel::StatusRole).toString() == m_status;
}

} // namespace llmproxy
