// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/settingscontroller.h"

#include "api/logging.h"
#include "settings/settingsstore.h"
#include "ui/keystore.h"
#include "ui/providerkeys.h"
#include "ui/uilogging.h"

#include <QFileInfo>

#include <array>

namespace llmproxy {

namespace {
// What the Providers page edits: applied together by applyProviders().
constexpr std::array ProviderSettings{Setting::Providers, Setting::Routes, Setting::DefaultProvider,
                                      Setting::ModelRoutes, Setting::QueueLimits};
} // namespace

SettingsController::SettingsController(SettingsStore *store, KeyStore *keys,
                                       const Config &effective, const QByteArray &environmentKey,
                                       QObject *parent)
    : QObject(parent)
    , m_store(store)
    , m_keys(keys)
    , m_config(effective)
    , m_environmentKey(environmentKey.trimmed())
    , m_providerKeys(new ProviderKeys(store, keys->service(), this)) {
    connect(m_keys, &KeyStore::readFinished, this, &SettingsController::onKeychainRead);
    connect(m_keys, &KeyStore::written, this, &SettingsController::onKeychainWritten);
    connect(m_keys, &KeyStore::removed, this, &SettingsController::onKeychainRemoved);
    connect(m_keys, &KeyStore::failed, this,
            [this](KeyStore::Operation operation, const QString &reason) {
                switch (operation) {
                case KeyStore::Operation::Read:
                    setKeyState(KeyState::Source::None, QByteArray(), reason);
                    Q_EMIT message(reason + SettingsController::tr("; clients' own keys are used"),
                                   true);
                    if (m_loading) {
                        m_loading = false;
                        loadProviderKeys();
                    }
                    return;
                case KeyStore::Operation::Write:
                    // In use now; where to keep it is the user's choice.
                    useKey(m_pendingKey);
                    setKeyState(KeyState::Source::Session, m_pendingKey);
                    Q_EMIT fileFallbackOffered(reason);
                    return;
                case KeyStore::Operation::Remove:
                    Q_EMIT message(reason, true);
                    return;
                }
            });

    connect(m_providerKeys, &ProviderKeys::loaded, this,
            [this](const QHash<QByteArray, QByteArray> &loaded, const QStringList &problems) {
                for (auto it = loaded.cbegin(); it != loaded.cend(); ++it)
                    m_config.providerKeys.insert(it.key(), it.value());
                for (const QString &problem : problems)
                    Q_EMIT message(problem, true);
                Q_EMIT providerKeysChanged();
                Q_EMIT ready();
            });
    connect(m_providerKeys, &ProviderKeys::stored, this,
            [this](const QByteArray &provider, const QByteArray &key, KeyLocation location) {
                m_sessionProviderKeys.remove(provider);
                m_providerKeyProblems.remove(provider);
                useProviderKey(provider, key);
                Q_EMIT message(location == KeyLocation::Keychain
                                   ? SettingsController::tr(
                                         "The key of provider %1 is saved in the system keychain")
                                         .arg(QString::fromLatin1(provider))
                                   : SettingsController::tr("The key of provider %1 is saved in "
                                                            "%2, readable only by you")
                                         .arg(QString::fromLatin1(provider), m_store->filePath()),
                               false);
            });
    connect(m_providerKeys, &ProviderKeys::storeFailed, this,
            [this](const QByteArray &provider, const QByteArray &key, const QString &reason) {
                // In use now; kept nowhere. The user may choose the settings file instead.
                m_sessionProviderKeys.insert(provider);
                useProviderKey(provider, key);
                Q_EMIT message(SettingsController::tr("Provider %1: %2. The key is in use until "
                                                      "you quit; choose the settings file to "
                                                      "keep it.")
                                   .arg(QString::fromLatin1(provider), reason),
                               true);
            });
    connect(m_providerKeys, &ProviderKeys::forgotten, this, [this](const QByteArray &provider) {
        Q_EMIT message(SettingsController::tr("The stored key of provider %1 is forgotten")
                           .arg(QString::fromLatin1(provider)),
                       false);
    });
    connect(m_providerKeys, &ProviderKeys::failed, this,
            [this](const QByteArray &provider, const QString &reason) {
                Q_EMIT message(SettingsController::tr("Provider %1: %2")
                                   .arg(QString::fromLatin1(provider), reason),
                               true);
            });
}

bool SettingsController::notificationsEnabled() const {
    return m_store->notificationsEnabled();
}

int SettingsController::chartSpan() const {
    return m_store->chartSpan();
}

bool SettingsController::firstRunDone() const {
    return m_store->firstRunDone();
}

QString SettingsController::settingsFile() const {
    return m_store->filePath();
}

void SettingsController::loadKey() {
    if (!m_environmentKey.isEmpty()) {
        setKeyState(KeyState::Source::Environment, m_environmentKey);
    } else {
        switch (m_store->keyLocation()) {
        case KeyLocation::Keychain:
            m_loading = true;
            m_keys->read();
            return;
        case KeyLocation::File:
            setKeyState(KeyState::Source::File, m_config.apiKey);
            break;
        case KeyLocation::None:
            setKeyState(KeyState::Source::None, QByteArray());
            break;
        }
    }
    loadProviderKeys(); // asynchronous, then ready()
}

void SettingsController::loadProviderKeys() {
    m_providerKeys->load();
}

void SettingsController::onKeychainRead(const QByteArray &key) {
    if (!m_loading)
        return;
    m_loading = false;
    if (key.isEmpty()) {
        setKeyState(KeyState::Source::None, QByteArray(),
                    SettingsController::tr("The keychain has no key for llm-proxy any more"));
    } else {
        m_config.apiKey = key;
        setKeyState(KeyState::Source::Keychain, key);
    }
    loadProviderKeys();
}

void SettingsController::applySettings(const Config &edited) {
    // The settings the window shows (settingDeclarations()).
    QList<Setting> changed;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.shownInWindow() &&
            settingText(edited, decl.setting) != settingText(m_config, decl.setting))
            changed.append(decl.setting);
    }
    if (changed.isEmpty())
        return;

    Config stored = m_store->load();
    QStringList names;
    for (Setting setting : std::as_const(changed)) {
        const QString text = settingText(edited, setting);
        const QString problem = applySetting(m_config, setting, text);
        if (!problem.isEmpty()) { // the page checks first; this is a safety net
            Q_EMIT message(QString(settingDeclaration(setting).changeName) + QStringLiteral(": ") +
                               problem,
                           true);
            return;
        }
        applySetting(stored, setting, text);
        names.append(QString(settingDeclaration(setting).changeName));
    }
    const bool saved = m_store->save(stored);
    qCInfo(lcUi).noquote() << "settings changed:" << names.join(QStringLiteral(", "));
    Q_EMIT configChanged(m_config);
    if (saved) {
        Q_EMIT message(SettingsController::tr("Applied and saved: ") +
                           names.join(QStringLiteral(", ")),
                       false);
    } else {
        Q_EMIT message(SettingsController::tr("Applied, but not saved: ") + m_store->error(), true);
    }
}

void SettingsController::setApiKey(const QByteArray &key) {
    const QByteArray trimmed = key.trimmed();
    if (trimmed.isEmpty())
        return;
    m_pendingKey = trimmed;
    m_keys->write(trimmed);
}

void SettingsController::onKeychainWritten() {
    if (m_pendingKey.isEmpty())
        return;
    if (!m_store->setKeyLocation(KeyLocation::Keychain))
        Q_EMIT message(m_store->error(), true);
    useKey(m_pendingKey);
    setKeyState(KeyState::Source::Keychain, m_pendingKey);
    m_pendingKey.clear();
    Q_EMIT message(SettingsController::tr("The key is saved in the system keychain"), false);
}

void SettingsController::keepKeyInFile() {
    if (m_pendingKey.isEmpty())
        return;
    if (!m_store->storeKeyInFile(m_pendingKey)) {
        Q_EMIT message(SettingsController::tr("Could not save the key: ") + m_store->error(), true);
        return;
    }
    useKey(m_pendingKey);
    setKeyState(KeyState::Source::File, m_pendingKey);
    m_pendingKey.clear();
    Q_EMIT message(SettingsController::tr("The key is saved in %1, readable only by you")
                       .arg(m_store->filePath()),
                   false);
}

void SettingsController::forgetApiKey() {
    m_pendingKey.clear();
    const KeyLocation location = m_store->keyLocation();
    if (!m_store->setKeyLocation(KeyLocation::None))
        Q_EMIT message(m_store->error(), true);
    useKey(QByteArray());
    setKeyState(m_environmentKey.isEmpty() ? KeyState::Source::None : KeyState::Source::Environment,
                m_environmentKey);
    if (location == KeyLocation::Keychain)
        m_keys->remove(); // removed() or failed() reports
    else
        Q_EMIT message(SettingsController::tr("The stored key is forgotten"), false);
}

void SettingsController::applyProviders(const Config &edited) {
    // The command line's checks: each entry, then routes and the default against the providers.
    Config next = m_config;
    QStringList names;
    for (Setting setting : ProviderSettings) {
        const QString text = settingText(edited, setting);
        if (text == settingText(m_config, setting))
            continue;
        const QString problem = applySetting(next, setting, text);
        if (!problem.isEmpty()) { // the page checks first; this is a safety net
            Q_EMIT message(settingOption(setting) + u' ' + problem, true);
            return;
        }
        names.append(settingOption(setting));
    }
    if (names.isEmpty())
        return;
    QString problem;
    configuredProviders(
        next, [](const QByteArray &) { return QByteArray(); }, &problem);
    if (!problem.isEmpty()) {
        Q_EMIT message(problem, true);
        return;
    }
    Config stored = m_store->load();
    for (Setting setting : ProviderSettings)
        applySetting(stored, setting, settingText(next, setting));
    m_config.providers = next.providers;
    m_config.routes = next.routes;
    m_config.defaultProvider = next.defaultProvider;
    m_config.modelRoutes = next.modelRoutes;
    m_config.queueLimits = next.queueLimits;
    const bool saved = m_store->save(stored);
    qCInfo(lcUi).noquote() << "providers changed:" << names.join(QStringLiteral(", "));
    Q_EMIT configChanged(m_config);
    Q_EMIT providerKeysChanged();
    if (saved) {
        Q_EMIT message(SettingsController::tr("Providers applied to new requests and saved; "
                                              "batches already sent keep their provider"),
                       false);
    } else {
        Q_EMIT message(SettingsController::tr("Applied, but not saved: ") + m_store->error(), true);
    }
}

void SettingsController::setProviderKey(const QByteArray &provider, const QByteArray &key,
                                        bool inFile) {
    if (key.trimmed().isEmpty() || provider.isEmpty())
        return;
    if (provider == DefaultProviderName) { // the OpenAI key has its own row
        if (inFile) {
            m_pendingKey = key.trimmed();
            keepKeyInFile();
        } else {
            setApiKey(key);
        }
        return;
    }
    m_providerKeys->store(provider, key, inFile ? KeyLocation::File : KeyLocation::Keychain);
}

void SettingsController::forgetProviderKey(const QByteArray &provider) {
    if (provider == DefaultProviderName) {
        forgetApiKey();
        return;
    }
    m_sessionProviderKeys.remove(provider);
    useProviderKey(provider, QByteArray());
    m_providerKeys->forget(provider);
}

KeyState SettingsController::providerKeyState(const QByteArray &provider) const {
    if (provider == DefaultProviderName)
        return m_keyState;
    KeyState state;
    QByteArray variable;
    for (const QByteArray &text : m_config.providers) {
        QString problem;
        const auto spec = parseProviderSpec(QString::fromUtf8(text), &problem);
        if (spec && spec->name == provider) {
            variable = spec->keyEnvironment.isEmpty()
                           ? providerProfile(spec->profile)->keyEnvironment
                           : spec->keyEnvironment;
        }
    }
    const QByteArray fromEnvironment =
        variable.isEmpty() ? QByteArray() : qgetenv(variable.constData()).trimmed();
    const QByteArray key = m_config.providerKeys.value(provider);
    if (!fromEnvironment.isEmpty()) {
        state.source = KeyState::Source::Environment;
        state.hint = redactedKey(fromEnvironment);
    } else if (m_sessionProviderKeys.contains(provider) && !key.isEmpty()) {
        state.source = KeyState::Source::Session;
        state.hint = redactedKey(key);
    } else {
        switch (m_store->providerKeyLocation(provider)) {
        case KeyLocation::Keychain:
            state.source = KeyState::Source::Keychain;
            break;
        case KeyLocation::File:
            state.source = KeyState::Source::File;
            break;
        case KeyLocation::None:
            break;
        }
        if (state.source != KeyState::Source::None) {
            if (key.isEmpty())
                state.problem = SettingsController::tr("the stored key could not be read");
            else
                state.hint = redactedKey(key);
        }
    }
    return state;
}

void SettingsController::useProviderKey(const QByteArray &provider, const QByteArray &key) {
    bool changed = false;
    if (key.isEmpty()) {
        changed = m_config.providerKeys.remove(provider) > 0;
    } else if (m_config.providerKeys.value(provider) != key) {
        m_config.providerKeys.insert(provider, key);
        changed = true;
    }
    if (changed)
        Q_EMIT configChanged(m_config);
    Q_EMIT providerKeysChanged();
}

void SettingsController::onKeychainRemoved() {
    Q_EMIT message(SettingsController::tr("The key is removed from the system keychain"), false);
}

void SettingsController::setNotificationsEnabled(bool enabled) {
    if (!m_store->setNotificationsEnabled(enabled))
        Q_EMIT message(m_store->error(), true);
    Q_EMIT notificationsChanged(enabled);
}

void SettingsController::setChartSpan(int span) {
    m_store->setChartSpan(span);
}

void SettingsController::setFirstRunDone() {
    if (!m_store->firstRunDone() && !m_store->setFirstRunDone(true))
        qCWarning(lcUi).noquote() << "first run not saved:" << m_store->error();
}

QString SettingsController::tokensFile() const {
    return m_config.tokensFile.isEmpty() ? defaultTokensFile() : m_config.tokensFile;
}

void SettingsController::generateProxyToken(const QString &name) {
    const QByteArray tokenName = name.trimmed().toUtf8();
    if (!isProxyTokenName(tokenName)) {
        Q_EMIT proxyTokenFailed(
            SettingsController::tr("A token's name is 1 to 64 letters, digits or "
                                   ". _ @ -"));
        return;
    }
    auto tokens = currentTokens();
    if (!tokens)
        return;
    for (const ProxyToken &token : std::as_const(*tokens)) {
        if (token.name == tokenName) {
            Q_EMIT proxyTokenFailed(SettingsController::tr("There is a token named \"%1\" already")
                                        .arg(name.trimmed()));
            return;
        }
    }
    const ProxyToken created{tokenName, llmproxy::generateProxyToken()};
    tokens->append(created);
    if (!writeTokens(*tokens))
        return;
    qCInfo(lcUi).noquote() << "proxy token added:" << QString::fromUtf8(tokenName);
    Q_EMIT proxyTokenGenerated(QString::fromUtf8(created.name), created.token);
    Q_EMIT message(SettingsController::tr("Token \"%1\" added to %2")
                       .arg(QString::fromUtf8(tokenName), m_config.tokensFile),
                   false);
}

void SettingsController::removeProxyToken(const QString &name) {
    auto tokens = currentTokens();
    if (!tokens)
        return;
    const QByteArray tokenName = name.toUtf8();
    const auto removed =
        tokens->removeIf([&tokenName](const ProxyToken &token) { return token.name == tokenName; });
    if (removed == 0)
        return;
    Config next = m_config;
    next.tokens = *tokens;
    if (const QString exposed = exposureProblem(next); !exposed.isEmpty()) {
        Q_EMIT proxyTokenFailed(
            SettingsController::tr("The last token cannot go while the proxy listens "
                                   "off loopback with a key: ") +
            exposed);
        return;
    }
    if (!writeTokens(*tokens))
        return;
    qCInfo(lcUi).noquote() << "proxy token removed:" << name;
    Q_EMIT message(
        SettingsController::tr("Token \"%1\" removed from %2").arg(name, m_config.tokensFile),
        false);
}

std::optional<QList<ProxyToken>> SettingsController::currentTokens() {
    // The file as it is now (it may have been edited since the start), or none yet.
    const QString path = tokensFile();
    if (path.isEmpty()) {
        Q_EMIT proxyTokenFailed(SettingsController::tr("There is no folder for the tokens file"));
        return std::nullopt;
    }
    if (!QFileInfo::exists(path))
        return QList<ProxyToken>();
    QString problem;
    auto tokens = loadProxyTokens(path, &problem);
    if (!tokens)
        Q_EMIT proxyTokenFailed(SettingsController::tr("The tokens file cannot be read: ") +
                                problem);
    return tokens;
}

bool SettingsController::writeTokens(const QList<ProxyToken> &tokens) {
    const QString path = tokensFile();
    QString problem;
    if (!saveProxyTokens(path, tokens, &problem)) {
        qCWarning(lcUi).noquote() << problem;
        Q_EMIT proxyTokenFailed(problem);
        return false;
    }
    m_config.tokensFile = path;
    m_config.tokens = tokens;
    Q_EMIT configChanged(m_config);
    return true;
}

void SettingsController::useKey(const QByteArray &key) {
    const QByteArray effective = m_environmentKey.isEmpty() ? key : m_environmentKey;
    if (effective == m_config.apiKey)
        return;
    m_config.apiKey = effective;
    Q_EMIT configChanged(m_config);
}

void SettingsController::setKeyState(KeyState::Source source, const QByteArray &key,
                                     const QString &problem) {
    m_keyState.source = source;
    m_keyState.hint = key.isEmpty() ? QByteArray() : redactedKey(key);
    m_keyState.problem = problem;
    Q_EMIT keyStateChanged(m_keyState);
}

} // namespace llmproxy
