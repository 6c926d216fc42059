// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// How a model's requests are answered (issue 12, "OpenAI flex processing as a route"):
//   batch            a line of a provider batch (the default; half price, minutes to hours)
//   flex             sent at once with "service_tier":"flex" (OpenAI's flex processing: the
//                    batch price, seconds to minutes); a refusal that means "not now" (429,
//                    a timeout, 5xx) is tried again with flex (up to FlexAttempts), then the
//                    request goes into a batch; "flex is not offered for this model" sends it
//                    to the batch at once
//   flex-then-batch  the same, but any "not now" refusal sends it to the batch at once
//   relay            passed through unchanged at the standard (full) price
// Never the standard tier as a fallback: a flex request that cannot be served by flex waits
// for a batch. Configured with --model-route PATTERN=ROUTE (exact model names, or prefixes
// ending in '*'; exact names win, then the longest prefix); a model no rule names is batched.

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>
#include <QStringView>

#include <optional>

namespace llmproxy {

enum class ModelRoute : quint8 { Batch, Flex, FlexThenBatch, Relay };
QByteArray modelRouteName(ModelRoute route); // "batch", "flex", "flex-then-batch", "relay"
std::optional<ModelRoute> modelRouteFromName(QByteArrayView name);
inline bool isFlex(ModelRoute route) {
    return route == ModelRoute::Flex || route == ModelRoute::FlexThenBatch;
}

// How many flex calls a request on the `flex` route makes before it goes into a batch.
inline constexpr int FlexAttempts = 3;

// A pattern of model names: an exact name, or a prefix ending in '*' ('*' alone: every model).
// nullopt and *error (a phrase to follow the value) when it names a path, has a '*' elsewhere
// than at its end, or is empty.
struct ModelPattern {
    QByteArray pattern; // without the '*'
    bool prefix = false;
};
std::optional<ModelPattern> parseModelPattern(QStringView text, QString *error);

// Of rules with a pattern and a prefix flag (ModelRouteRule, QueueLimitRule), the one that names
// `model` best: the rule with its exact name, else the longest prefix that matches (nullptr:
// none).
template <typename Rule>
const Rule *bestModelRule(const QList<Rule> &rules, QByteArrayView model) {
    const Rule *best = nullptr;
    for (const Rule &rule : rules) {
        if (!rule.prefix) {
            if (model == rule.pattern)
                return &rule;
            continue;
        }
        if (model.startsWith(rule.pattern) && (!best || rule.pattern.size() > best->pattern.size()))
            best = &rule;
    }
    return best;
}

// The rules of a repeatable option (--model-route, --queue-limit), each parsed by `parse`
// (QStringView text, QString *why) -> std::optional<Rule>; nullopt and *error
// ("--OPTION VALUE: why") at the first malformed one.
template <typename Parse>
auto parseModelRules(const QList<QByteArray> &specs, QLatin1StringView option, Parse parse,
                     QString *error)
    -> std::optional<QList<typename decltype(parse(QStringView(), error))::value_type>> {
    QList<typename decltype(parse(QStringView(), error))::value_type> rules;
    for (const QByteArray &spec : specs) {
        QString why;
        const QString text = QString::fromUtf8(spec);
        const auto rule = parse(text, &why);
        if (!rule) {
            *error = QStringLiteral("--%1 %2: %3").arg(option, text, why);
            return std::nullopt;
        }
        rules.append(*rule);
    }
    return rules;
}

struct ModelRouteRule {
    QByteArray pattern; // without the '*'
    bool prefix = false;
    ModelRoute route = ModelRoute::Batch;
    friend bool operator==(const ModelRouteRule &, const ModelRouteRule &) = default;
};
// "gpt-5=flex", "o4-*=flex-then-batch", "*=relay". nullopt and *error (a phrase to follow the
// value, e.g. "is not PATTERN=ROUTE ...") when malformed.
std::optional<ModelRouteRule> parseModelRouteRule(QStringView text, QString *error);

struct ModelRouteMatch {
    ModelRoute route = ModelRoute::Batch;
    // The rule named the model exactly: the user marked it, so flex is tried even when the
    // price table does not list a flex price for it.
    bool exact = false;
};

class ModelRoutes {
public:
    ModelRoutes() = default;
    explicit ModelRoutes(QList<ModelRouteRule> rules);
    // Built from --model-route values; nullopt and *error ("--model-route VALUE: why") when one
    // is malformed.
    static std::optional<ModelRoutes> fromSpecs(const QList<QByteArray> &specs, QString *error);
    ModelRouteMatch match(QByteArrayView model) const;
    const QList<ModelRouteRule> &rules() const { return m_rules; }
    bool empty() const { return m_rules.isEmpty(); }

private:
    QList<ModelRouteRule> m_rules;
};

} // namespace llmproxy
