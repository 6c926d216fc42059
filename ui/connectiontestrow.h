// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings' Test connection button and its one-sentence answer. The owner says what to
// check (the configured upstream and key, or one provider's target) when the button asks; a
// ConnectionChecker does it.

#include "ui/connectionchecker.h"

#include <QByteArray>
#include <QUrl>
#include <QWidget>

class QLabel;
class QPushButton;

namespace llmproxy {

class ConnectionTestRow final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ConnectionTestRow)
public:
    explicit ConnectionTestRow(QWidget *parent = nullptr);

    ConnectionChecker *checker() const { return m_checker; }
    QString resultText() const;
    // Whether there is something to check (the Providers page: a selected provider).
    void setAvailable(bool available);
    void setButtonToolTip(const QString &tip);
    void clearResult();

public Q_SLOTS:
    void check(const QUrl &upstream, const QByteArray &key);
    // `subject` (a provider's name) heads the answer, so that it stays clear which one it is.
    void checkTarget(const llmproxy::ConnectionChecker::Target &target, const QString &subject);

Q_SIGNALS:
    // The button was pressed: the owner answers with check(upstream, key).
    void checkRequested();

private:
    void showResult(const QString &message, bool ok);

    ConnectionChecker *m_checker;
    QPushButton *m_button;
    QLabel *m_result;
    QString m_subject;
    bool m_available = true;
};

} // namespace llmproxy
