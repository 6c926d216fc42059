// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/providerrouting.h"

namespace llmproxy {

namespace {

bool validName(QByteArrayView name) {
    if (name.isEmpty() || name.size() > 32)
        return false;
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool validEnvironmentName(QByteArrayView name) {
    if (name.isEmpty() || name.size() > 64 || (name.front() >= '0' && name.front() <= '9'))
        return false;
    for (char c : name) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

} // namespace

std::optional<ProviderSpec> parseProviderSpec(QStringView text, QString *error) {
    const QList<QStringView> fields = text.trimmed().split(u';');
    const QStringView head = fields.value(0);
    const qsizetype equals = head.indexOf(u'=');
    ProviderSpec spec;
    spec.name = (equals < 0 ? head : head.left(equals)).trimmed().toString().toUtf8();
    spec.profile = equals < 0 ? spec.name : head.sliced(equals + 1).trimmed().toString().toUtf8();
    if (!validName(spec.name)) {
        *error = QStringLiteral("is not NAME=PROFILE[;url=URL][;key_env=VAR] with a NAME of "
                                "a-z, 0-9, _ and - (example: gemini=gemini)");
        return std::nullopt;
    }
    if (!providerProfile(spec.profile)) {
        *error =
            QStringLiteral("names no known profile (profiles: ") + providerProfileNames() + u')';
        return std::nullopt;
    }
    for (qsizetype i = 1; i < fields.size(); ++i) {
        const QStringView field = fields.at(i).trimmed();
        if (field.isEmpty())
            continue;
        if (field.startsWith(u"url=")) {
            const QUrl url(field.sliced(4).toString(), QUrl::StrictMode);
            if (!url.isValid() || url.host().isEmpty() ||
                (url.scheme() != u"http" && url.scheme() != u"https") ||
                !url.userInfo().isEmpty() || url.hasQuery() || url.hasFragment()) {
                *error = QStringLiteral("has a url= that is not an http or https URL with a host "
                                        "and no user, query or fragment");
                return std::nullopt;
            }
            spec.url = url;
        } else if (field.startsWith(u"key_env=")) {
            spec.keyEnvironment = field.sliced(8).toString().toUtf8();
            if (!validEnvironmentName(spec.keyEnvironment)) {
                *error = QStringLiteral("has a key_env= that is not an environment variable name");
                return std::nullopt;
            }
        } else {
            *error = QStringLiteral("has a field other than url= and key_env=");
            return std::nullopt;
        }
    }
    const ProviderProfile &profile = *providerProfile(spec.profile);
    if (spec.url.isEmpty() && profile.defaultUrl.isEmpty()) {
        *error = QStringLiteral("needs url= (profile %1 has no default URL; example: "
                                "url=https://RESOURCE.openai.azure.com)")
                     .arg(QString::fromLatin1(profile.name));
        return std::nullopt;
    }
    return spec;
}

QByteArray providerSpecText(const ProviderSpec &spec) {
    QByteArray text = spec.name + '=' + spec.profile;
    if (!spec.url.isEmpty())
        text += ";url=" + spec.url.toString(QUrl::FullyEncoded).toUtf8();
    if (!spec.keyEnvironment.isEmpty())
        text += ";key_env=" + spec.keyEnvironment;
    return text;
}

std::optional<RouteRule> parseRouteRule(QStringView text, QString *error) {
    const QStringView trimmed = text.trimmed();
    const qsizetype equals = trimmed.lastIndexOf(u'=');
    RouteRule rule;
    if (equals <= 0) {
        *error = QStringLiteral("is not PATTERN=NAME (examples: gemini-*=gemini, "
                                "my-deployment=azure, /v1/embeddings=openai)");
        return std::nullopt;
    }
    QByteArray pattern = trimmed.left(equals).trimmed().toString().toUtf8();
    rule.provider = trimmed.sliced(equals + 1).trimmed().toString().toUtf8();
    if (!validName(rule.provider)) {
        *error = QStringLiteral("does not end in =NAME, a provider's name (a-z, 0-9, _, -)");
        return std::nullopt;
    }
    if (pattern.startsWith('/')) {
        rule.kind = RouteRule::Kind::Path;
    } else if (pattern.endsWith('*')) {
        rule.kind = RouteRule::Kind::ModelPrefix;
        pattern.chop(1);
        if (pattern.contains('*')) {
            *error = QStringLiteral("has a '*' that is not at the end of the pattern");
            return std::nullopt;
        }
    } else if (pattern.contains('*')) {
        *error = QStringLiteral("has a '*' that is not at the end of the pattern");
        return std::nullopt;
    }
    if (pattern.isEmpty() && rule.kind != RouteRule::Kind::ModelPrefix) {
        *error = QStringLiteral("has an empty pattern");
        return std::nullopt;
    }
    rule.pattern = pattern;
    return rule;
}

ProviderRouter::ProviderRouter(QList<RouteRule> rules, QByteArray defaultProvider,
                               QList<QByteArray> providerNames)
    : m_rules(std::move(rules))
    , m_default(std::move(defaultProvider))
    , m_names(std::move(providerNames)) {}

std::optional<QByteArray> ProviderRouter::route(QByteArrayView path, QByteArrayView model) const {
    const RouteRule *prefix = nullptr;
    const RouteRule *byPath = nullptr;
    for (const RouteRule &rule : m_rules) {
        switch (rule.kind) {
        case RouteRule::Kind::Model:
            if (!model.isEmpty() && rule.pattern == model)
                return rule.provider;
            break;
        case RouteRule::Kind::ModelPrefix:
            if (!model.isEmpty() && model.startsWith(rule.pattern) &&
                (!prefix || rule.pattern.size() > prefix->pattern.size()))
                prefix = &rule;
            break;
        case RouteRule::Kind::Path:
            if (!byPath && rule.pattern == path)
                byPath = &rule;
            break;
        }
    }
    if (prefix)
        return prefix->provider;
    if (byPath)
        return byPath->provider;
    if (!m_default.isEmpty())
        return m_default;
    return std::nullopt;
}

QString ProviderRouter::unroutedMessage(QByteArrayView path, QByteArrayView model) const {
    QStringList names;
    for (const QByteArray &name : m_names)
        names.append(QString::fromUtf8(name));
    const QString what = model.isEmpty()
                             ? QStringLiteral("path '%1'").arg(QString::fromUtf8(path))
                             : QStringLiteral("model '%1'").arg(QString::fromUtf8(model));
    return QStringLiteral("No provider is configured for %1, and there is no default provider. "
                          "Configured providers: %2. Add a rule (--route PATTERN=NAME) or a "
                          "default (--default-provider NAME).")
        .arg(what, names.join(QStringLiteral(", ")));
}

} // namespace llmproxy
