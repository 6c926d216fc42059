// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/batchtablemodel.h"

#include "provider/providerprofile.h"
#include "ui/displaytext.h"
#include "ui/errorstyle.h"
#include "ui/moneytext.h"

#include <QBrush>
#include <QColor>
#include <QGuiApplication>
#include <QPalette>
#include <QSet>

namespace llmproxy {

BatchTableModel::BatchTableModel(Scope scope, QObject *parent)
    : QAbstractTableModel(parent)
    , m_scope(scope) {}

void BatchTableModel::setBatches(const QList<BatchProgress> &batches, const QDateTime &now) {
    const bool wantActive = m_scope == Scope::Active;
    QHash<QByteArray, const BatchProgress *> incoming;
    QList<const BatchProgress *> order;
    for (const BatchProgress &batch : batches) {
        if (batch.active != wantActive || incoming.contains(batch.localId))
            continue;
        incoming.insert(batch.localId, &batch);
        order.append(&batch);
    }
    m_now = now;

    // Remove rows that are gone, one contiguous run at a time, from the end.
    for (qsizetype last = m_rows.size() - 1; last >= 0;) {
        if (incoming.contains(m_rows.at(last).localId)) {
            --last;
            continue;
        }
        qsizetype first = last;
        while (first > 0 && !incoming.contains(m_rows.at(first - 1).localId))
            --first;
        beginRemoveRows(QModelIndex(), static_cast<int>(first), static_cast<int>(last));
        m_rows.remove(first, last - first + 1);
        endRemoveRows();
        last = first - 1;
    }

    // Update the rows that stay (ages change every snapshot, so all of them).
    QSet<QByteArray> known;
    for (BatchProgress &row : m_rows) {
        known.insert(row.localId);
        row = *incoming.value(row.localId);
    }
    if (!m_rows.isEmpty()) {
        Q_EMIT dataChanged(index(0, 0),
                           index(static_cast<int>(m_rows.size()) - 1, ColumnCount - 1));
    }

    // Append the new ones, in the snapshot's order.
    QList<BatchProgress> added;
    for (const BatchProgress *batch : std::as_const(order)) {
        if (!known.contains(batch->localId))
            added.append(*batch);
    }
    if (!added.isEmpty()) {
        const int first = static_cast<int>(m_rows.size());
        beginInsertRows(QModelIndex(), first, first + static_cast<int>(added.size()) - 1);
        m_rows.append(added);
        endInsertRows();
    }
}

std::optional<BatchProgress> BatchTableModel::batch(const QByteArray &localId) const {
    for (const BatchProgress &row : m_rows) {
        if (row.localId == localId)
            return row;
    }
    return std::nullopt;
}

QStringList BatchTableModel::statuses() const {
    QStringList result;
    for (const BatchProgress &row : m_rows) {
        const QString status = QString::fromUtf8(row.status);
        if (!result.contains(status))
            result.append(status);
    }
    result.sort();
    return result;
}

int BatchTableModel::rowCount(const QModelIndex &parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_rows.size());
}

int BatchTableModel::columnCount(const QModelIndex &parent) const {
    return parent.isValid() ? 0 : ColumnCount;
}

qint64 BatchTableModel::timeMs(const BatchProgress &batch) const {
    if (!batch.createdAt.isValid())
        return -1;
    if (batch.active)
        return m_now.isValid() ? batch.createdAt.msecsTo(m_now) : -1;
    return batch.endedAt.isValid() ? batch.createdAt.msecsTo(batch.endedAt) : -1;
}

QVariant BatchTableModel::display(const BatchProgress &batch, int column) const {
    switch (column) {
    case BatchColumn:
        return display::batchName(batch);
    case GroupColumn:
        return display::group(batch);
    case ProviderColumn:
        return QString::fromUtf8(batch.provider.isEmpty() ? QByteArray(DefaultProviderName)
                                                          : batch.provider);
    case KeyColumn:
        return display::who(batch);
    case StatusColumn:
        return QString::fromUtf8(batch.status);
    case ProgressColumn:
        return display::progress(batch);
    case CreatedColumn:
        return batch.createdAt.isValid()
                   ? batch.createdAt.toLocalTime().toString(QStringLiteral("yyyy-MM-dd HH:mm:ss"))
                   : QString();
    case TimeColumn: {
        const qint64 ms = timeMs(batch);
        return ms < 0 ? QString() : display::duration(ms);
    }
    case TokensColumn:
        return batch.usage.requests > batch.usage.requestsWithoutUsage
                   ? money::tokens(batch.usage.input + batch.usage.output)
                   : QString();
    case PaidColumn:
        return batch.usage.requests > batch.usage.requestsWithoutUsage
                   ? money::amount(batch.usage, &accounting::LedgerRow::paid)
                   : QString();
    case SavedColumn:
        return batch.usage.requests > batch.usage.requestsWithoutUsage
                   ? money::amount(batch.usage, &accounting::LedgerRow::saved)
                   : QString();
    default:
        return QVariant();
    }
}

QVariant BatchTableModel::sortValue(const BatchProgress &batch, int column) const {
    switch (column) {
    case ProgressColumn:
        return batch.total > 0 ? static_cast<double>(batch.completed + batch.failed) / batch.total
                               : 0.0;
    case CreatedColumn:
        return batch.createdAt.isValid() ? batch.createdAt.toMSecsSinceEpoch() : qint64(0);
    case TimeColumn:
        return timeMs(batch);
    case TokensColumn:
        return batch.usage.input + batch.usage.output;
    case PaidColumn:
        return money::knownOf(batch.usage) == money::Known::None ? qint64(-1) : batch.usage.paid;
    case SavedColumn:
        return money::knownOf(batch.usage) == money::Known::None ? qint64(-1) : batch.usage.saved;
    default:
        return display(batch, column);
    }
}

QVariant BatchTableModel::data(const QModelIndex &index, int role) const {
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return QVariant();
    const BatchProgress &batch = m_rows.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
        return display(batch, index.column());
    case Qt::ToolTipRole:
        if (index.column() == StatusColumn && !batch.errors.isEmpty())
            return batch.errors.join(u'\n');
        if (index.column() == TokensColumn && batch.usage.requests > 0)
            return BatchTableModel::tr("%1 input (%2 cached), %3 output (%4 reasoning)")
                .arg(money::tokens(batch.usage.input), money::tokens(batch.usage.cachedInput),
                     money::tokens(batch.usage.output), money::tokens(batch.usage.reasoning));
        if (index.column() == PaidColumn && batch.usage.requests > 0)
            return BatchTableModel::tr("Paid %1\nList price %2")
                .arg(money::exactAmount(batch.usage, &accounting::LedgerRow::paid),
                     money::exactAmount(batch.usage, &accounting::LedgerRow::list));
        if (index.column() == SavedColumn && batch.usage.requests > 0)
            return money::exactAmount(batch.usage, &accounting::LedgerRow::saved);
        if (index.column() == KeyColumn)
            return display::whoInWords(batch);
        return QVariant();
    case Qt::ForegroundRole:
        if (index.column() == StatusColumn && display::endedBadly(batch))
            return QBrush(errorstyle::color(QGuiApplication::palette()));
        return QVariant();
    case Qt::TextAlignmentRole:
        if (index.column() == TimeColumn || index.column() >= TokensColumn)
            return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
        return QVariant();
    case SortRole:
        return sortValue(batch, index.column());
    case StatusRole:
        return QString::fromUtf8(batch.status);
    case LocalIdRole:
        return batch.localId;
    case ProgressRole:
        return batch.total > 0 ? (batch.completed + batch.failed) * 100 / batch.total : 0;
    default:
        return QVariant();
    }
}

QVariant BatchTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return QAbstractTableModel::headerData(section, orientation, role);
    switch (section) {
    case BatchColumn:
        return BatchTableModel::tr("Batch");
    case GroupColumn:
        return BatchTableModel::tr("Group");
    case ProviderColumn:
        return BatchTableModel::tr("Provider");
    case KeyColumn:
        return BatchTableModel::tr("Key");
    case StatusColumn:
        return BatchTableModel::tr("Status");
    case ProgressColumn:
        return BatchTableModel::tr("Requests");
    case CreatedColumn:
        return BatchTableModel::tr("Created");
    case TimeColumn:
        return m_scope == Scope::Active ? BatchTableModel::tr("Age") : BatchTableModel::tr("Took");
    case TokensColumn:
        return BatchTableModel::tr("Tokens");
    case PaidColumn:
        return BatchTableModel::tr("Paid");
    case SavedColumn:
        return BatchTableModel::tr("Saved");
    default:
        return QVariant();
    }
}

} // namespace llmproxy
