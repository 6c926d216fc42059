// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/startatlogincheckbox.h"

#include "ui/uilogging.h"

#include <QSignalBlocker>

namespace llmproxy {

StartAtLoginCheckBox::StartAtLoginCheckBox(QWidget *parent, Autostart autostart)
    : QCheckBox(StartAtLoginCheckBox::tr("Start at login, in the tray"), parent)
    , m_autostart(std::move(autostart)) {
    setObjectName(QStringLiteral("startAtLoginCheck"));
    setToolTip(StartAtLoginCheckBox::tr("Writes or removes %1").arg(m_autostart.entryPath()));
    refresh();
    connect(this, &QCheckBox::toggled, this, &StartAtLoginCheckBox::apply);
}

void StartAtLoginCheckBox::refresh() {
    const QSignalBlocker blocker(this);
    setChecked(m_autostart.isEnabled());
}

void StartAtLoginCheckBox::apply(bool enabled) {
    const QString error = m_autostart.setEnabled(enabled);
    if (!error.isEmpty()) {
        qCWarning(lcUi).noquote() << "start at login:" << error;
        refresh();
        Q_EMIT failed(error);
        return;
    }
    qCInfo(lcUi) << "start at login" << (enabled ? "on" : "off");
    refresh();
}

} // namespace llmproxy
