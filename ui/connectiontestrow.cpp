// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/connectiontestrow.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>

namespace llmproxy {

ConnectionTestRow::ConnectionTestRow(QWidget *parent)
    : QWidget(parent)
    , m_checker(new ConnectionChecker(this))
    , m_button(new QPushButton(ConnectionTestRow::tr("&Test connection"), this))
    , m_result(new QLabel(this)) {
    auto *layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_button->setObjectName(QStringLiteral("testConnectionButton"));
    m_button->setToolTip(
        ConnectionTestRow::tr("Ask the upstream for its model list with the saved key "
                              "(free)"));
    m_result->setObjectName(QStringLiteral("testConnectionResult"));
    m_result->setWordWrap(true);
    m_result->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_button, 0, Qt::AlignTop);
    layout->addWidget(m_result, 1);
    connect(m_button, &QPushButton::clicked, this, &ConnectionTestRow::checkRequested);
    connect(m_checker, &ConnectionChecker::finished, this, &ConnectionTestRow::showResult);
}

QString ConnectionTestRow::resultText() const {
    return m_result->text();
}

void ConnectionTestRow::setAvailable(bool available) {
    m_available = available;
    m_button->setEnabled(available && !m_checker->isRunning());
}

void ConnectionTestRow::setButtonToolTip(const QString &tip) {
    m_button->setToolTip(tip);
}

void ConnectionTestRow::clearResult() {
    if (!m_checker->isRunning())
        m_result->clear();
}

void ConnectionTestRow::check(const QUrl &upstream, const QByteArray &key) {
    ConnectionChecker::Target target;
    target.baseUrl = upstream;
    target.key = key;
    checkTarget(target, QString());
}

void ConnectionTestRow::checkTarget(const ConnectionChecker::Target &target,
                                    const QString &subject) {
    m_subject = subject;
    m_button->setEnabled(false);
    const QString asking = ConnectionTestRow::tr("Asking %1 for its model list…")
                               .arg(target.baseUrl.toDisplayString(QUrl::RemoveUserInfo));
    m_result->setText(subject.isEmpty() ? asking : subject + QStringLiteral(": ") + asking);
    m_checker->check(target);
}

void ConnectionTestRow::showResult(const QString &message, bool ok) {
    m_button->setEnabled(m_available);
    m_result->setText(m_subject.isEmpty() ? message : m_subject + QStringLiteral(": ") + message);
    // Bold for a failure, in the palette's own colour (readable in dark themes too).
    QFont font = m_result->font();
    font.setBold(!ok);
    m_result->setFont(font);
}

} // namespace llmproxy
