// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/batchdetails.h"

#include "ui/displaytext.h"
#include "ui/moneytext.h"

namespace llmproxy {

namespace {

QString when(const QDateTime &time) {
    return time.isValid() ? time.toLocalTime().toString(QStringLiteral("yyyy-MM-dd HH:mm:ss.zzz"))
                          : QStringLiteral("—");
}

QString between(const QDateTime &from, const QDateTime &to) {
    if (!from.isValid() || !to.isValid())
        return QStringLiteral("—");
    return display::duration(from.msecsTo(to));
}

QString row(const QString &name, const QString &value) {
    return QStringLiteral("<tr><td style='padding-right:12px'><b>") + name.toHtmlEscaped() +
           QStringLiteral("</b></td><td>") + value.toHtmlEscaped() + QStringLiteral("</td></tr>");
}

} // namespace

BatchDetails::BatchDetails(QWidget *parent)
    : QTextBrowser(parent) {
    setObjectName(QStringLiteral("batchDetails"));
    setOpenLinks(false);
    clearBatch();
}

void BatchDetails::clearBatch() {
    show(BatchDetails::tr("<p><i>Select a batch to see its details.</i></p>"));
}

void BatchDetails::showBatch(const BatchProgress &batch) {
    show(html(batch));
}

void BatchDetails::show(const QString &html) {
    if (html == m_shown)
        return;
    m_shown = html;
    setHtml(html);
}

QString BatchDetails::html(const BatchProgress &batch) {
    QString text = QStringLiteral("<h3>") + display::batchName(batch).toHtmlEscaped() +
                   QStringLiteral("</h3><table>");
    text += row(BatchDetails::tr("Status"),
                QString::fromUtf8(batch.status) +
                    (batch.active ? BatchDetails::tr(" (active)") : QString()));
    text += row(BatchDetails::tr("Provider batch id"), batch.batchId.isEmpty()
                                                           ? BatchDetails::tr("(not created yet)")
                                                           : QString::fromUtf8(batch.batchId));
    text += row(BatchDetails::tr("Local id"), QString::fromUtf8(batch.localId));
    text += row(BatchDetails::tr("Endpoint"), QString::fromUtf8(batch.endpoint));
    text += row(BatchDetails::tr("Model"), QString::fromUtf8(batch.model));
    text +=
        row(BatchDetails::tr("Key"), batch.keyHint.isEmpty() ? BatchDetails::tr("each client's own")
                                                             : QString::fromUtf8(batch.keyHint));
    if (!batch.callers.isEmpty())
        text += row(BatchDetails::tr("Callers"), QString::fromUtf8(batch.callers));
    text += row(BatchDetails::tr("Requests"), display::count(static_cast<quint64>(batch.total)));
    text += row(BatchDetails::tr("Completed"),
                display::count(static_cast<quint64>(std::max(batch.completed, 0))));
    text += row(BatchDetails::tr("Failed"),
                display::count(static_cast<quint64>(std::max(batch.failed, 0))));
    text += row(BatchDetails::tr("Formed"), when(batch.createdAt));
    text += row(BatchDetails::tr("Submitted"), when(batch.submittedAt));
    text += row(BatchDetails::tr("Ended"), when(batch.endedAt));
    text += row(BatchDetails::tr("Until submitted"), between(batch.createdAt, batch.submittedAt));
    text += row(BatchDetails::tr("At the provider"), between(batch.submittedAt, batch.endedAt));
    text += row(BatchDetails::tr("In all"), between(batch.createdAt, batch.endedAt));
    // Its lines' usage and cost (issue 10), as the store kept them with their results.
    const accounting::LedgerRow &usage = batch.usage;
    if (usage.requests > usage.requestsWithoutUsage) {
        using accounting::LedgerRow;
        text += row(BatchDetails::tr("Input tokens"),
                    BatchDetails::tr("%1 (%2 cached)")
                        .arg(money::tokens(usage.input), money::tokens(usage.cachedInput)));
        text += row(BatchDetails::tr("Output tokens"),
                    BatchDetails::tr("%1 (%2 reasoning)")
                        .arg(money::tokens(usage.output), money::tokens(usage.reasoning)));
        text += row(BatchDetails::tr("Paid"), money::exactAmount(usage, &LedgerRow::paid));
        text += row(BatchDetails::tr("List price"), money::exactAmount(usage, &LedgerRow::list));
        text += row(BatchDetails::tr("Saved"), money::exactAmount(usage, &LedgerRow::saved));
    } else {
        text += row(BatchDetails::tr("Tokens and cost"), BatchDetails::tr("none recorded"));
    }
    text += QStringLiteral("</table>");
    if (batch.errors.isEmpty()) {
        text += BatchDetails::tr("<p>No errors from the provider.</p>");
    } else {
        text += BatchDetails::tr("<p><b>Provider errors</b></p><ul>");
        for (const QString &error : batch.errors)
            text += QStringLiteral("<li>") + error.toHtmlEscaped() + QStringLiteral("</li>");
        text += QStringLiteral("</ul>");
    }
    return text;
}

} // namespace llmproxy
