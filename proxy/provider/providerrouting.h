// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Several providers behind one base URL: which providers are configured (--provider), and the
// rules that pick one for each request (--route, --default-provider). Pure values, no I/O.

#include "provider/providerprofile.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QUrl>

#include <optional>

namespace llmproxy {

// One --provider NAME=PROFILE[;url=URL][;key_env=VAR].
struct ProviderSpec {
    QByteArray name;           // what routes name it by ([a-z0-9_-], at most 32 characters)
    QByteArray profile;        // a providerProfiles() name
    QUrl url;                  // empty: the profile's default URL
    QByteArray keyEnvironment; // empty: the profile's (GEMINI_API_KEY, ...)
    friend bool operator==(const ProviderSpec &, const ProviderSpec &) = default;
};
// nullopt (and *error, without the quoted text) when `text` is not one.
std::optional<ProviderSpec> parseProviderSpec(QStringView text, QString *error);
QByteArray providerSpecText(const ProviderSpec &spec);

// One --route PATTERN=NAME: PATTERN is a model's exact name ("my-deployment"), a model prefix
// ending in '*' ("gemini-*"), or an API path starting with '/' ("/v1/embeddings").
struct RouteRule {
    enum class Kind { Model, ModelPrefix, Path };
    Kind kind = Kind::Model;
    QByteArray pattern; // without the '*'
    QByteArray provider;
    friend bool operator==(const RouteRule &, const RouteRule &) = default;
};
std::optional<RouteRule> parseRouteRule(QStringView text, QString *error);

// A configured provider, ready to use: its profile, base URL and key (never logged).
struct ConfiguredProvider {
    QByteArray name;
    const ProviderProfile *profile = nullptr;
    QUrl baseUrl;
    QByteArray apiKey; // empty: clients bring their own key
};

// Picks the provider of a request. Rules in this order: a model's exact name, the longest model
// prefix, the path, the default. Not found: nullopt (the caller answers 400 with
// unroutedMessage()).
class ProviderRouter {
public:
    ProviderRouter() = default;
    ProviderRouter(QList<RouteRule> rules, QByteArray defaultProvider,
                   QList<QByteArray> providerNames);
    std::optional<QByteArray> route(QByteArrayView path, QByteArrayView model) const;
    // "No provider is configured for model 'x'. Configured providers: openai, gemini. ..."
    QString unroutedMessage(QByteArrayView path, QByteArrayView model) const;
    const QList<QByteArray> &providerNames() const { return m_names; }
    const QByteArray &defaultProvider() const { return m_default; }

private:
    QList<RouteRule> m_rules;
    QByteArray m_default;
    QList<QByteArray> m_names;
};

} // namespace llmproxy
