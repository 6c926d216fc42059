// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/queuelimit.h"

#include <cmath>

namespace llmproxy {

std::optional<qint64> parseTokenCount(QStringView text) {
    QStringView number = text.trimmed();
    double scale = 1;
    if (!number.isEmpty()) {
        switch (number.back().toLower().unicode()) {
        case u'k':
            scale = 1e3;
            break;
        case u'm':
            scale = 1e6;
            break;
        case u'b':
            scale = 1e9;
            break;
        default:
            break;
        }
    }
    if (scale != 1)
        number.chop(1);
    // Digits with at most one '.', nothing else (no sign, exponent, or spaces inside).
    if (number.isEmpty() || number.front() == u'.' || number.back() == u'.')
        return std::nullopt;
    int dots = 0;
    for (const QChar c : number) {
        if (c == u'.')
            ++dots;
        else if (c < u'0' || c > u'9')
            return std::nullopt;
    }
    if (dots > 1 || (dots == 1 && scale == 1))
        return std::nullopt; // a fraction of one token
    if (number.size() > 16)
        return std::nullopt;
    bool ok = false;
    const double value = number.toDouble(&ok) * scale;
    if (!ok || !std::isfinite(value) || value < 1 || value > double(MaxQueueLimitTokens))
        return std::nullopt;
    return qint64(std::llround(value));
}

std::optional<QueueLimitRule> parseQueueLimitRule(QStringView text, QString *error) {
    const QStringView trimmed = text.trimmed();
    const qsizetype equals = trimmed.lastIndexOf(u'=');
    if (equals <= 0) {
        *error = QStringLiteral("is not PATTERN=TOKENS (examples: gpt-4o-mini=2M, "
                                "gpt-4o*=90k)");
        return std::nullopt;
    }
    const std::optional<qint64> tokens = parseTokenCount(trimmed.sliced(equals + 1));
    if (!tokens) {
        *error = QStringLiteral("does not end in =TOKENS, a count of prompt tokens from 1 to "
                                "10^13 (examples: 90000, 90k, 2M, 1.5B)");
        return std::nullopt;
    }
    const std::optional<ModelPattern> model = parseModelPattern(trimmed.left(equals), error);
    if (!model)
        return std::nullopt;
    return QueueLimitRule{model->pattern, model->prefix, *tokens};
}

std::optional<QueueLimits> QueueLimits::fromSpecs(const QList<QByteArray> &specs, QString *error) {
    auto rules =
        parseModelRules(specs, QLatin1StringView("queue-limit"), parseQueueLimitRule, error);
    if (!rules)
        return std::nullopt;
    return QueueLimits(std::move(*rules));
}

std::optional<qint64> QueueLimits::limitFor(QByteArrayView model) const {
    const QueueLimitRule *rule = bestModelRule(m_rules, model);
    return rule ? std::optional<qint64>(rule->tokens) : std::nullopt;
}

} // namespace llmproxy
