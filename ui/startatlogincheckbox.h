// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Start at login: a check box that shows and changes the XDG autostart entry (Autostart).
// Checked means the desktop will start llm-proxy in the tray at login; a failed write leaves
// the box as the file is and says why.

#include "ui/autostart.h"

#include <QCheckBox>

namespace llmproxy {

class StartAtLoginCheckBox final : public QCheckBox {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StartAtLoginCheckBox)
public:
    explicit StartAtLoginCheckBox(QWidget *parent = nullptr, Autostart autostart = Autostart());

public Q_SLOTS:
    // Reads the entry again (the desktop's session settings may have changed it).
    void refresh();

Q_SIGNALS:
    void failed(const QString &error);

private:
    void apply(bool enabled);

    Autostart m_autostart;
};

} // namespace llmproxy
