// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/displaytext.h"

#include <QCoreApplication>
#include <QLocale>

#include <cmath>

namespace llmproxy::display {

QString duration(qint64 milliseconds) {
    const qint64 ms = std::max<qint64>(milliseconds, 0);
    if (ms < 1000)
        return QString::number(ms) + QCoreApplication::translate("llmproxy::display", " ms");
    if (ms < 60'000)
        return QString::number(static_cast<double>(ms) / 1000.0, 'f', 1) + QStringLiteral(" s");
    const qint64 seconds = ms / 1000;
    if (seconds < 3600) {
        return QString::number(seconds / 60) +
               QCoreApplication::translate("llmproxy::display", " min ") +
               QStringLiteral("%1 s").arg(seconds % 60, 2, 10, QLatin1Char('0'));
    }
    if (seconds < 86'400) {
        return QString::number(seconds / 3600) + QStringLiteral(" h ") +
               QCoreApplication::translate("llmproxy::display", "%1 min")
                   .arg((seconds % 3600) / 60, 2, 10, QLatin1Char('0'));
    }
    return QString::number(seconds / 86'400) + QStringLiteral(" d ") +
           QString::number((seconds % 86'400) / 3600) + QStringLiteral(" h");
}

QString latency(double milliseconds) {
    if (!std::isfinite(milliseconds) || milliseconds <= 0)
        return QCoreApplication::translate("llmproxy::display", "0 ms");
    if (milliseconds < 100)
        return QString::number(milliseconds, 'f', 1) +
               QCoreApplication::translate("llmproxy::display", " ms");
    return duration(std::llround(milliseconds));
}

QString count(quint64 value) {
    static const QLocale grouped = [] {
        QLocale locale = QLocale::c();
        locale.setNumberOptions(QLocale::DefaultNumberOptions); // C omits the separator
        return locale;
    }();
    return grouped.toString(value);
}

QString group(const BatchProgress &batch) {
    QString endpoint = QString::fromUtf8(batch.endpoint);
    if (endpoint.startsWith(QLatin1StringView("/v1/")))
        endpoint = endpoint.mid(4);
    if (batch.model.isEmpty())
        return endpoint;
    return endpoint + QStringLiteral(" · ") + QString::fromUtf8(batch.model);
}

QString batchName(const BatchProgress &batch) {
    return QString::fromUtf8(batch.batchId.isEmpty() ? batch.localId : batch.batchId);
}

QString who(const BatchProgress &batch) {
    const QString key = batch.keyHint.isEmpty()
                            ? QCoreApplication::translate("llmproxy::display", "client's")
                            : QString::fromUtf8(batch.keyHint);
    return batch.callers.isEmpty() ? key
                                   : QString::fromUtf8(batch.callers) + QStringLiteral(" · ") + key;
}

QString whoInWords(const BatchProgress &batch) {
    QString text = batch.keyHint.isEmpty()
                       ? QCoreApplication::translate("llmproxy::display", "Each client's own key")
                       : QCoreApplication::translate("llmproxy::display", "The key ending in %1")
                             .arg(QString::fromUtf8(batch.keyHint).remove(QChar(0x2026)));
    if (!batch.callers.isEmpty())
        text += QCoreApplication::translate("llmproxy::display", ", for %1")
                    .arg(QString::fromUtf8(batch.callers));
    return text;
}

QString progress(const BatchProgress &batch) {
    QString text =
        count(static_cast<quint64>(std::max(batch.completed, 0) + std::max(batch.failed, 0))) +
        QStringLiteral(" / ") + count(static_cast<quint64>(std::max(batch.total, 0)));
    if (batch.failed > 0)
        text += QStringLiteral(" · ") + count(static_cast<quint64>(batch.failed)) +
                QCoreApplication::translate("llmproxy::display", " failed");
    return text;
}

bool endedBadly(const BatchProgress &batch) {
    if (batch.active)
        return false;
    return batch.status != QByteArrayView("completed") || !batch.errors.isEmpty();
}

} // namespace llmproxy::display
