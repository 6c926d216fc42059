// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The one class that touches QSettings: the desktop app's saved settings in an INI file that
// only its owner can read (mode 0600). The proxy settings are stored as the text the command
// line takes ("4s", "25MB") and checked on load by the same functions (applySetting), so the
// window, the file and `--no-gui` agree on what is valid.

#include "settings/config.h"

#include <QString>
#include <QStringList>

#include <memory>

class QSettings;

namespace llmproxy {

// Where the API key is kept between runs.
enum class KeyLocation { None, Keychain, File };

// A typed preference: its INI key, its default and its bounds (values outside are clamped).
template <typename T>
struct PreferenceKey {
    QLatin1StringView name;
    T defaultValue;
    T minimum;
    T maximum;
};

class SettingsStore final {
    Q_DISABLE_COPY_MOVE(SettingsStore)
public:
    static constexpr PreferenceKey<bool> Notifications{QLatin1StringView("ui/notifications"), true,
                                                       false, true};
    // 0: last 15 minutes, 1: last hour, 2: last day.
    static constexpr PreferenceKey<int> ChartSpan{QLatin1StringView("ui/chart_span"), 0, 0, 2};
    // The first-run panel was dismissed, or a client was served: it stays hidden after a
    // restart (Help → Connect a client brings it back).
    static constexpr PreferenceKey<bool> FirstRunDone{QLatin1StringView("ui/first_run_done"), false,
                                                      false, true};

    // `filePath`: the INI file (created on first save, with mode 0600).
    explicit SettingsStore(const QString &filePath);
    ~SettingsStore();

    // The user's file: $XDG_CONFIG_HOME/llm-proxy/llm-proxy.conf (~/.config/...).
    static QString defaultFilePath();
    QString filePath() const { return m_filePath; }

    // The stored proxy settings over the defaults (listen addresses and data folder filled in as
    // the command line fills them). A stored value the command line would refuse is skipped;
    // `problems` then gets one line for it ("batch_window: \"4x\" is not a duration ...").
    // The key is included when it is kept in this file.
    Config load(QStringList *problems = nullptr) const;
    // Stores the proxy settings of `config` (never its key); a value equal to the default is
    // removed, so a later default applies. False (and error()) if the file cannot be written.
    bool save(const Config &config);

    KeyLocation keyLocation() const;
    // The key kept in this file; empty unless keyLocation() is File.
    QByteArray fileKey() const;
    // Keep `key` in this file (mode 0600) and note KeyLocation::File.
    bool storeKeyInFile(const QByteArray &key);
    // Note where the key is now: Keychain or None (either removes a key kept in this file).
    bool setKeyLocation(KeyLocation location);

    // The keys of other providers (routing), one entry per provider name, kept the same way:
    // where each is (keychain or this file) and, for the file, the key. load() fills
    // Config.providerKeys with the ones kept here.
    KeyLocation providerKeyLocation(const QByteArray &provider) const;
    QByteArray providerFileKey(const QByteArray &provider) const;
    bool storeProviderKeyInFile(const QByteArray &provider, const QByteArray &key);
    // Keychain or None (either removes a key kept in this file for that provider).
    bool setProviderKeyLocation(const QByteArray &provider, KeyLocation location);
    // The providers with a stored key (keychain or file), sorted.
    QList<QByteArray> providersWithStoredKeys() const;

    bool notificationsEnabled() const;
    bool setNotificationsEnabled(bool enabled);
    int chartSpan() const;
    bool setChartSpan(int span);
    bool firstRunDone() const;
    bool setFirstRunDone(bool done);

    // Why the last write failed (empty after a successful one).
    QString error() const { return m_error; }

private:
    bool sync();

    QString m_filePath;
    std::unique_ptr<QSettings> m_settings;
    QString m_error;
};

} // namespace llmproxy
