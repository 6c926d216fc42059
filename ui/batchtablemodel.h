// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Batches as table rows: the active ones (dashboard) or the finished ones (history), taken from
// each snapshot. Rows are matched on the batch's local id across snapshots, so a selection
// survives updates; new batches are appended, vanished ones removed.

#include "batch/batchprogress.h"

#include <QAbstractTableModel>
#include <QDateTime>
#include <QHash>
#include <QList>

#include <optional>

namespace llmproxy {

class BatchTableModel final : public QAbstractTableModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchTableModel)
public:
    enum class Scope { Active, Finished };
    enum Column {
        BatchColumn,
        GroupColumn,
        ProviderColumn, // the configured provider the batch went to ("openai", "gemini", ...)
        KeyColumn,
        StatusColumn,
        ProgressColumn,
        CreatedColumn,
        TimeColumn, // age of an active batch; how long a finished one took
        // What its answered lines used and cost (issue 10): input + output tokens, paid, saved.
        TokensColumn,
        PaidColumn,
        SavedColumn,
        ColumnCount
    };
    enum Role {
        SortRole = Qt::UserRole + 1, // a value that sorts naturally (numbers for numbers)
        StatusRole,                  // QString: the raw status
        LocalIdRole,                 // QByteArray
        ProgressRole,                // int: percent of requests answered (done + failed)
    };

    explicit BatchTableModel(Scope scope, QObject *parent = nullptr);

    Scope scope() const { return m_scope; }
    // The batches of a snapshot (active and finished mixed; this model keeps its scope's),
    // and the snapshot's time, which ages are counted against.
    void setBatches(const QList<BatchProgress> &batches, const QDateTime &now);
    const BatchProgress &batchAt(int row) const { return m_rows.at(row); }
    std::optional<BatchProgress> batch(const QByteArray &localId) const;
    // Distinct statuses present, sorted (for the history's filter).
    QStringList statuses() const;

    int rowCount(const QModelIndex &parent = QModelIndex()) const override;
    int columnCount(const QModelIndex &parent = QModelIndex()) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation,
                        int role = Qt::DisplayRole) const override;

private:
    QVariant display(const BatchProgress &batch, int column) const;
    QVariant sortValue(const BatchProgress &batch, int column) const;
    qint64 timeMs(const BatchProgress &batch) const; // -1 when unknown

    Scope m_scope;
    QList<BatchProgress> m_rows;
    QDateTime m_now;
};

} // namespace llmproxy
