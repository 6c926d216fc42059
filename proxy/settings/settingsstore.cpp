// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings/settingsstore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>

namespace llmproxy {

namespace {

constexpr QLatin1StringView KeyLocationName("key/location");
constexpr QLatin1StringView FileKeyName("key/openai_api_key");
// provider_keys/<name>/location and provider_keys/<name>/key (names are [a-z0-9_-]).
constexpr QLatin1StringView ProviderKeysGroup("provider_keys");

QString providerKeyName(const QByteArray &provider, QLatin1StringView what) {
    return ProviderKeysGroup + u'/' + QString::fromLatin1(provider) + u'/' + what;
}

constexpr QFile::Permissions OwnerOnly = QFile::ReadOwner | QFile::WriteOwner;

// The defaults as the command line would produce them with no options.
Config defaultConfig() {
    return parseCommandLine({QStringLiteral("llm-proxy")}).config;
}

QString locationText(KeyLocation location) {
    switch (location) {
    case KeyLocation::Keychain:
        return QStringLiteral("keychain");
    case KeyLocation::File:
        return QStringLiteral("file");
    case KeyLocation::None:
        break;
    }
    return QStringLiteral("none");
}

} // namespace

SettingsStore::SettingsStore(const QString &filePath)
    : m_filePath(filePath)
    , m_settings(std::make_unique<QSettings>(filePath, QSettings::IniFormat)) {}

SettingsStore::~SettingsStore() = default;

QString SettingsStore::defaultFilePath() {
    return QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation) +
           QStringLiteral("/llm-proxy/llm-proxy.conf");
}

Config SettingsStore::load(QStringList *problems) const {
    Config config = defaultConfig();
    // Every setting with an INI key (settingDeclarations()); a missing key keeps the default.
    for (const SettingDeclaration &stored : settingDeclarations()) {
        if (!stored.stored())
            continue;
        const QVariant value = m_settings->value(stored.storeKey);
        if (!value.isValid())
            continue;
        const QString text = value.typeId() == QMetaType::QStringList
                                 ? value.toStringList().join(u' ')
                                 : value.toString();
        const QString problem = applySetting(config, stored.setting, text);
        if (!problem.isEmpty() && problems) {
            problems->append(QString(stored.storeKey).section(u'/', 1) + QStringLiteral(": ") +
                             problem + QStringLiteral(" (the default is used)"));
        }
    }
    if (keyLocation() == KeyLocation::File)
        config.apiKey = fileKey();
    for (const QByteArray &provider : providersWithStoredKeys()) {
        if (const QByteArray key = providerFileKey(provider); !key.isEmpty())
            config.providerKeys.insert(provider, key);
    }
    return config;
}

bool SettingsStore::save(const Config &config) {
    const Config defaults = defaultConfig();
    for (const SettingDeclaration &stored : settingDeclarations()) {
        if (!stored.stored())
            continue;
        const QString text = settingText(config, stored.setting);
        if (text == settingText(defaults, stored.setting))
            m_settings->remove(stored.storeKey);
        else
            m_settings->setValue(stored.storeKey, text);
    }
    return sync();
}

KeyLocation SettingsStore::keyLocation() const {
    const QString text = m_settings->value(KeyLocationName).toString();
    if (text == QLatin1StringView("keychain"))
        return KeyLocation::Keychain;
    if (text == QLatin1StringView("file"))
        return KeyLocation::File;
    return KeyLocation::None;
}

QByteArray SettingsStore::fileKey() const {
    if (keyLocation() != KeyLocation::File)
        return QByteArray();
    return m_settings->value(FileKeyName).toString().toUtf8().trimmed();
}

bool SettingsStore::storeKeyInFile(const QByteArray &key) {
    m_settings->setValue(FileKeyName, QString::fromUtf8(key.trimmed()));
    m_settings->setValue(KeyLocationName, locationText(KeyLocation::File));
    return sync();
}

bool SettingsStore::setKeyLocation(KeyLocation location) {
    if (location == KeyLocation::File)
        return storeKeyInFile(fileKey());
    m_settings->remove(FileKeyName);
    if (location == KeyLocation::None)
        m_settings->remove(KeyLocationName);
    else
        m_settings->setValue(KeyLocationName, locationText(location));
    return sync();
}

KeyLocation SettingsStore::providerKeyLocation(const QByteArray &provider) const {
    const QString text =
        m_settings->value(providerKeyName(provider, QLatin1StringView("location"))).toString();
    if (text == QLatin1StringView("keychain"))
        return KeyLocation::Keychain;
    if (text == QLatin1StringView("file"))
        return KeyLocation::File;
    return KeyLocation::None;
}

QByteArray SettingsStore::providerFileKey(const QByteArray &provider) const {
    if (providerKeyLocation(provider) != KeyLocation::File)
        return QByteArray();
    return m_settings->value(providerKeyName(provider, QLatin1StringView("key")))
        .toString()
        .toUtf8()
        .trimmed();
}

bool SettingsStore::storeProviderKeyInFile(const QByteArray &provider, const QByteArray &key) {
    m_settings->setValue(providerKeyName(provider, QLatin1StringView("key")),
                         QString::fromUtf8(key.trimmed()));
    m_settings->setValue(providerKeyName(provider, QLatin1StringView("location")),
                         locationText(KeyLocation::File));
    return sync();
}

bool SettingsStore::setProviderKeyLocation(const QByteArray &provider, KeyLocation location) {
    if (location == KeyLocation::File)
        return storeProviderKeyInFile(provider, providerFileKey(provider));
    if (location == KeyLocation::None) {
        m_settings->remove(ProviderKeysGroup + u'/' + QString::fromLatin1(provider));
    } else {
        m_settings->remove(providerKeyName(provider, QLatin1StringView("key")));
        m_settings->setValue(providerKeyName(provider, QLatin1StringView("location")),
                             locationText(location));
    }
    return sync();
}

QList<QByteArray> SettingsStore::providersWithStoredKeys() const {
    m_settings->beginGroup(ProviderKeysGroup);
    const QStringList groups = m_settings->childGroups();
    m_settings->endGroup();
    QList<QByteArray> names;
    for (const QString &group : groups) {
        const QByteArray name = group.toLatin1();
        if (providerKeyLocation(name) != KeyLocation::None)
            names.append(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

bool SettingsStore::notificationsEnabled() const {
    return m_settings->value(Notifications.name, Notifications.defaultValue).toBool();
}

bool SettingsStore::setNotificationsEnabled(bool enabled) {
    if (enabled == Notifications.defaultValue)
        m_settings->remove(Notifications.name);
    else
        m_settings->setValue(Notifications.name, enabled);
    return sync();
}

int SettingsStore::chartSpan() const {
    bool ok = false;
    const int span = m_settings->value(ChartSpan.name, ChartSpan.defaultValue).toInt(&ok);
    if (!ok)
        return ChartSpan.defaultValue;
    return qBound(ChartSpan.minimum, span, ChartSpan.maximum);
}

bool SettingsStore::setChartSpan(int span) {
    span = qBound(ChartSpan.minimum, span, ChartSpan.maximum);
    if (span == ChartSpan.defaultValue)
        m_settings->remove(ChartSpan.name);
    else
        m_settings->setValue(ChartSpan.name, span);
    return sync();
}

bool SettingsStore::firstRunDone() const {
    return m_settings->value(FirstRunDone.name, FirstRunDone.defaultValue).toBool();
}

bool SettingsStore::setFirstRunDone(bool done) {
    if (done == FirstRunDone.defaultValue)
        m_settings->remove(FirstRunDone.name);
    else
        m_settings->setValue(FirstRunDone.name, done);
    return sync();
}

bool SettingsStore::sync() {
    m_error.clear();
    // Create the file with mode 0600 before anything is written to it: QSettings keeps the
    // permissions of an existing file, and a new one would get the umask's (often 0644).
    if (!QFileInfo::exists(m_filePath)) {
        const QString dir = QFileInfo(m_filePath).absolutePath();
        if (!QDir().mkpath(dir)) {
            m_error = QStringLiteral("cannot create the folder %1").arg(dir);
            return false;
        }
        QFile file(m_filePath);
        if (!file.open(QIODevice::WriteOnly | QIODevice::NewOnly, OwnerOnly)) {
            m_error = QStringLiteral("cannot create %1: %2").arg(m_filePath, file.errorString());
            return false;
        }
    }
    m_settings->sync();
    if (m_settings->status() != QSettings::NoError) {
        m_error = QStringLiteral("cannot write %1").arg(m_filePath);
        return false;
    }
    if (!QFile::setPermissions(m_filePath, OwnerOnly)) {
        m_error = QStringLiteral("cannot make %1 readable by its owner only").arg(m_filePath);
        return false;
    }
    return true;
}

} // namespace llmproxy
