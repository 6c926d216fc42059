// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The finished batches: a sortable table filtered by status, and the selected batch's details.

#include <QByteArray>
#include <QWidget>

class QComboBox;
class QLabel;
class QTableView;

namespace llmproxy {

class BatchDetails;
class BatchFilterModel;
class BatchTableModel;

class HistoryPage final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HistoryPage)
public:
    explicit HistoryPage(BatchTableModel *finished, QWidget *parent = nullptr);

    BatchFilterModel *filterModel() const { return m_filter; }
    QByteArray selectedBatch() const { return m_selected; }

public Q_SLOTS:
    // After the model took a new snapshot: refresh the filter's choices and the details.
    void refresh();

private:
    void selectionChanged();
    void showDetails();

    BatchTableModel *m_model;
    BatchFilterModel *m_filter;
    QComboBox *m_status = nullptr;
    QLabel *m_count = nullptr;
    QTableView *m_table = nullptr;
    BatchDetails *m_details = nullptr;
    QByteArray m_selected;
};

} // namespace llmproxy
