// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Paints a batch's requests column as a progress bar (BatchTableModel::ProgressRole) with the
// "done / total" text on it.

#include <QStyledItemDelegate>

namespace llmproxy {

class ProgressDelegate final : public QStyledItemDelegate {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ProgressDelegate)
public:
    explicit ProgressDelegate(QObject *parent = nullptr);
    void paint(QPainter *painter, const QStyleOptionViewItem &option,
               const QModelIndex &index) const override;
};

} // namespace llmproxy
