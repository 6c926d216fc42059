// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Sorting (on BatchTableModel::SortRole) and a status filter over a BatchTableModel.

#include <QSortFilterProxyModel>

namespace llmproxy {

class BatchFilterModel final : public QSortFilterProxyModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchFilterModel)
public:
    explicit BatchFilterModel(QObject *parent = nullptr);

    // Only rows with this status; empty shows every row.
    void setStatusFilter(const QString &status);
    QString statusFilter() const { return m_status; }

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const override;

private:
    QString m_status;
};

} // namespace llmproxy
