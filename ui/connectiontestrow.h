// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings' Test connection button and its one-sentence answer. The owner says what to
// check (the configured upstream and key) when the button asks; a ConnectionChecker does it.

#include <QByteArray>
#include <QUrl>
#include <QWidget>

class QLabel;
class QPushButton;

namespace llmproxy {

class ConnectionChecker;

class ConnectionTestRow final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ConnectionTestRow)
public:
    explicit ConnectionTestRow(QWidget *parent = nullptr);

    ConnectionChecker *checker() const { return m_checker; }
    QString resultText() const;

public Q_SLOTS:
    void check(const QUrl &upstream, const QByteArray &key);

Q_SIGNALS:
    // The button was pressed: the owner answers with check(upstream, key).
    void checkRequested();

private:
    void showResult(const QString &message, bool ok);

    ConnectionChecker *m_checker;
    QPushButton *m_button;
    QLabel *m_result;
};

} // namespace llmproxy
