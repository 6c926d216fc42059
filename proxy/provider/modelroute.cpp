// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/modelroute.h"

namespace llmproxy {

QByteArray modelRouteName(ModelRoute route) {
    switch (route) {
    case ModelRoute::Batch:
        return QByteArrayLiteral("batch");
    case ModelRoute::Flex:
        return QByteArrayLiteral("flex");
    case ModelRoute::FlexThenBatch:
        return QByteArrayLiteral("flex-then-batch");
    case ModelRoute::Relay:
        return QByteArrayLiteral("relay");
    }
    return {};
}

std::optional<ModelRoute> modelRouteFromName(QByteArrayView name) {
    for (const ModelRoute r :
         {ModelRoute::Batch, ModelRoute::Flex, ModelRoute::FlexThenBatch, ModelRoute::Relay}) {
        if (name == modelRouteName(r))
            return r;
    }
    return std::nullopt;
}

std::optional<ModelRouteRule> parseModelRouteRule(QStringView text, QString *error) {
    const QStringView trimmed = text.trimmed();
    const qsizetype equals = trimmed.lastIndexOf(u'=');
    if (equals <= 0) {
        *error = QStringLiteral("is not PATTERN=ROUTE (examples: gpt-5=flex, "
                                "o4-*=flex-then-batch, gpt-4o=relay)");
        return std::nullopt;
    }
    ModelRouteRule rule;
    const QStringView pattern = trimmed.left(equals);
    const QByteArray route = trimmed.sliced(equals + 1).trimmed().toString().toUtf8();
    const std::optional<ModelRoute> parsed = modelRouteFromName(route);
    if (!parsed) {
        *error = QStringLiteral("does not end in =ROUTE, one of batch, flex, flex-then-batch, "
                                "relay");
        return std::nullopt;
    }
    rule.route = *parsed;
    const std::optional<ModelPattern> model = parseModelPattern(pattern, error);
    if (!model)
        return std::nullopt;
    rule.pattern = model->pattern;
    rule.prefix = model->prefix;
    return rule;
}

std::optional<ModelPattern> parseModelPattern(QStringView text, QString *error) {
    QByteArray pattern = text.trimmed().toString().toUtf8();
    if (pattern.startsWith('/')) {
        *error = QStringLiteral("names a path: the rule is per model (a model name, or a "
                                "prefix ending in *)");
        return std::nullopt;
    }
    ModelPattern out;
    if (pattern.endsWith('*')) {
        out.prefix = true;
        pattern.chop(1);
    }
    if (pattern.contains('*')) {
        *error = QStringLiteral("has a '*' that is not at the end of the pattern");
        return std::nullopt;
    }
    if (pattern.isEmpty() && !out.prefix) {
        *error = QStringLiteral("has an empty pattern");
        return std::nullopt;
    }
    out.pattern = pattern;
    return out;
}

ModelRoutes::ModelRoutes(QList<ModelRouteRule> rules)
    : m_rules(std::move(rules)) {}

std::optional<ModelRoutes> ModelRoutes::fromSpecs(const QList<QByteArray> &specs, QString *error) {
    auto rules =
        parseModelRules(specs, QLatin1StringView("model-route"), parseModelRouteRule, error);
    if (!rules)
        return std::nullopt;
    return ModelRoutes(std::move(*rules));
}

ModelRouteMatch ModelRoutes::match(QByteArrayView model) const {
    const ModelRouteRule *best = bestModelRule(m_rules, model);
    return best ? ModelRouteMatch{best->route, !best->prefix} : ModelRouteMatch{};
}

} // namespace llmproxy
