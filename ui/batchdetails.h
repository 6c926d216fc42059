// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One batch in full: ids, group, key hint, status, counts, timings and the provider's errors.

#include "batch/batchprogress.h"

#include <QTextBrowser>

namespace llmproxy {

class BatchDetails final : public QTextBrowser {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BatchDetails)
public:
    explicit BatchDetails(QWidget *parent = nullptr);

    void showBatch(const BatchProgress &batch);
    void clearBatch();
    // The HTML for a batch (escaped; the view shows exactly this).
    static QString html(const BatchProgress &batch);

private:
    void show(const QString &html);

    QString m_shown; // re-rendering the same text would reset the scroll position
};

} // namespace llmproxy
