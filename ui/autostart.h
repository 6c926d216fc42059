// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Start at login: the XDG autostart entry ($XDG_CONFIG_HOME/autostart/<desktop file id>.desktop)
// that starts the app minimised to the tray. Enabled means the entry exists and neither
// Hidden=true nor X-GNOME-Autostart-enabled=false switches it off (the desktop's own session
// settings write those). Written atomically; failures come back as a sentence.

#include <QString>

namespace llmproxy {

class Autostart final {
public:
    // The shipped desktop file's id (resources/io.github.llm_proxy.desktop).
    static constexpr QStringView DesktopFileId = u"io.github.llm_proxy";
    // The option the entry passes: start with the window hidden in the tray.
    static constexpr QStringView TrayOption = u"--start-in-tray";

    // `executable`: the program the entry starts (default: the running binary).
    explicit Autostart(QString executable = QString());

    QString entryPath() const;
    bool isEnabled() const;
    // Writes or removes the entry; returns why that failed, or an empty string.
    QString setEnabled(bool enabled) const;

    // The entry's text for `executable` (quoted for the Exec key).
    static QByteArray entryText(const QString &executable);

private:
    QString m_executable;
};

} // namespace llmproxy
