// SPDX-License-Identifier: GPL-3.0-or-later
#include "accounting/ledger.h"

#include <QDateTime>
#include <QTimeZone>
#include <QUrlQuery>

#include <algorithm>
#include <map>

namespace llmproxy::accounting {

namespace {

bool addCount(qint64 &total, qint64 amount) {
    return !qAddOverflow(total, amount, &total);
}

QByteArray quotedJson(const QByteArray &utf8) {
    QByteArray out = "\"";
    for (const char c : utf8) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (uchar(c) < 0x20)
                out += "\\u00" + QByteArray::number(uchar(c), 16).rightJustified(2, '0');
            else
                out += c;
        }
    }
    return out + '"';
}

QByteArray csvField(const QByteArray &value) {
    if (!value.contains(',') && !value.contains('"') && !value.contains('\n') &&
        !value.contains('\r'))
        return value;
    QByteArray escaped = value;
    escaped.replace('"', "\"\"");
    return '"' + escaped + '"';
}

QByteArray dayText(qint64 ms) {
    return QDateTime::fromMSecsSinceEpoch(ms, QTimeZone::utc())
        .date()
        .toString(Qt::ISODate)
        .toLatin1();
}

QByteArray timeText(qint64 ms) {
    const QDateTime at = QDateTime::fromMSecsSinceEpoch(ms, QTimeZone::utc());
    const QString format = ms % 1000 == 0 ? QStringLiteral("yyyy-MM-ddTHH:mm:ss")
                                          : QStringLiteral("yyyy-MM-ddTHH:mm:ss.zzz");
    return at.toString(format).toLatin1() + 'Z';
}

struct Label {
    const char *name;
    bool LedgerQuery::*grouped;
    QByteArray LedgerRow::*value;
};
constexpr Label Labels[] = {
    {"model", &LedgerQuery::byModel, &LedgerRow::model},
    {"route", &LedgerQuery::byRoute, &LedgerRow::route},
    {"endpoint", &LedgerQuery::byEndpoint, &LedgerRow::endpoint},
    {"caller", &LedgerQuery::byCaller, &LedgerRow::caller},
    {"provider", &LedgerQuery::byProvider, &LedgerRow::provider},
};

QByteArray money(const LedgerRow &row, Picos LedgerRow::*field, bool nullWhenUnknown) {
    if (nullWhenUnknown && row.unknownCost > 0)
        return QByteArrayLiteral("null");
    return formatUsd(row.*field);
}

// The counts and money of a row as JSON members, without braces.
QByteArray countsJson(const LedgerRow &row, bool nullWhenUnknown) {
    QByteArray out;
    out += "\"requests\":" + QByteArray::number(row.requests);
    out += ",\"requests_without_usage\":" + QByteArray::number(row.requestsWithoutUsage);
    out += ",\"input_tokens\":" + QByteArray::number(row.input);
    out += ",\"cached_input_tokens\":" + QByteArray::number(row.cachedInput);
    out += ",\"cache_write_input_tokens\":" + QByteArray::number(row.cacheWriteInput);
    out += ",\"output_tokens\":" + QByteArray::number(row.output);
    out += ",\"reasoning_tokens\":" + QByteArray::number(row.reasoning);
    out += ",\"cost_usd\":" + money(row, &LedgerRow::paid, nullWhenUnknown);
    out += ",\"list_cost_usd\":" + money(row, &LedgerRow::list, nullWhenUnknown);
    out += ",\"saved_usd\":" + money(row, &LedgerRow::saved, nullWhenUnknown);
    out += ",\"unknown_cost_requests\":" + QByteArray::number(row.unknownCost);
    return out;
}

} // namespace

bool LedgerRow::add(const LedgerRow &o) {
    LedgerRow sum = *this;
    const bool ok = addCount(sum.requests, o.requests) &&
                    addCount(sum.requestsWithoutUsage, o.requestsWithoutUsage) &&
                    addCount(sum.input, o.input) && addCount(sum.cachedInput, o.cachedInput) &&
                    addCount(sum.cacheWriteInput, o.cacheWriteInput) &&
                    addCount(sum.output, o.output) && addCount(sum.reasoning, o.reasoning) &&
                    addPicos(sum.paid, o.paid) && addPicos(sum.list, o.list) &&
                    addPicos(sum.saved, o.saved) && addCount(sum.unknownCost, o.unknownCost);
    if (ok)
        *this = sum;
    return ok;
}

QByteArray keyHint(QByteArrayView key) {
    QByteArray hint = QByteArrayLiteral("\xE2\x80\xA6"); // U+2026, "…"
    if (key.size() >= 12)
        hint += key.last(4);
    return hint;
}

LedgerRow ledgerRowFor(const AccountedRequest &r) {
    LedgerRow row;
    const qint64 at = std::max<qint64>(0, r.answeredAtMs);
    row.hourMs = at - at % HourMs;
    row.route = routeName(r.route).toLatin1();
    row.endpoint = r.endpoint;
    row.model = r.model;
    row.caller = r.caller;
    row.provider = r.provider.isEmpty() ? QByteArrayLiteral("openai") : r.provider;
    row.requests = 1;
    if (!r.usage.reported) {
        row.requestsWithoutUsage = 1;
        return row;
    }
    row.input = r.usage.input.value_or(0);
    row.cachedInput = r.usage.cachedInput.value_or(0);
    row.cacheWriteInput = r.usage.cacheWriteInput.value_or(0);
    row.output = r.usage.output.value_or(0);
    row.reasoning = r.usage.reasoning.value_or(0);
    if (r.cost.known()) {
        row.paid = *r.cost.paid;
        row.list = *r.cost.list;
        row.saved = *r.cost.saved;
    } else {
        row.unknownCost = 1;
    }
    return row;
}

std::optional<qint64> parseLedgerDuration(QStringView text) {
    text = text.trimmed();
    if (text.size() < 2)
        return std::nullopt;
    qint64 unit = 0;
    switch (text.back().unicode()) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60 * 1000;
        break;
    case 'h':
        unit = HourMs;
        break;
    case 'd':
        unit = DayMs;
        break;
    case 'w':
        unit = 7 * DayMs;
        break;
    default:
        return std::nullopt;
    }
    const QStringView digits = text.chopped(1);
    if (digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](QChar c) { return c.isDigit(); }))
        return std::nullopt;
    return digits.toLongLong() * unit;
}

std::optional<qint64> parseLedgerTime(QStringView text) {
    text = text.trimmed();
    if (text.isEmpty())
        return std::nullopt;
    if (text.size() == 10) {
        const QDate date = QDate::fromString(text.toString(), Qt::ISODate);
        if (!date.isValid())
            return std::nullopt;
        return date.startOfDay(QTimeZone::utc()).toMSecsSinceEpoch();
    }
    QDateTime at = QDateTime::fromString(text.toString(), Qt::ISODateWithMs);
    if (!at.isValid())
        return std::nullopt;
    if (at.timeSpec() == Qt::LocalTime) // no zone given: UTC, as everywhere in the ledger
        at.setTimeZone(QTimeZone::utc());
    return at.toMSecsSinceEpoch();
}

std::optional<UsageRequest> parseUsageQuery(const QByteArray &percentEncodedQuery, qint64 nowMs,
                                            QByteArray *badParam, QString *message) {
    auto fail = [&](const char *param, const QString &why) {
        *badParam = param;
        *message = why;
        return std::optional<UsageRequest>();
    };
    const QUrlQuery query(QString::fromUtf8(percentEncodedQuery));
    UsageRequest out;
    out.query.fromMs = nowMs - 30 * DayMs;
    out.query.toMs = nowMs + 1;
    QStringList seen;
    for (const auto &[rawName, rawValue] : query.queryItems(QUrl::FullyDecoded)) {
        const QString name = rawName;
        if (seen.contains(name))
            return fail(name.toUtf8().constData(),
                        QStringLiteral("'%1' is given more than once").arg(name));
        seen.append(name);
        const QString value = rawValue.trimmed();
        if (name == QLatin1StringView("from") || name == QLatin1StringView("to")) {
            std::optional<qint64> at;
            if (const auto back = parseLedgerDuration(value))
                at = nowMs - *back;
            else
                at = parseLedgerTime(value);
            if (!at)
                return fail(name == QLatin1StringView("from") ? "from" : "to",
                            QStringLiteral("Invalid '%1': expected an ISO 8601 date or date-time "
                                           "(2026-12-01, 2026-12-01T10:00:00Z) or a duration "
                                           "back from now (7d, 12h, 30m, 2w)")
                                .arg(name));
            (name == QLatin1StringView("from") ? out.query.fromMs : out.query.toMs) = *at;
        } else if (name == QLatin1StringView("group_by")) {
            LedgerQuery &q = out.query;
            q.byModel = q.byRoute = q.byEndpoint = q.byCaller = q.byDay = q.byProvider = false;
            const QStringList parts = value.split(QLatin1Char(','), Qt::SkipEmptyParts);
            if (parts.isEmpty())
                return fail("group_by", QStringLiteral("'group_by' is empty"));
            for (const QString &raw : parts) {
                const QString part = raw.trimmed();
                if (part == QLatin1StringView("model"))
                    q.byModel = true;
                else if (part == QLatin1StringView("route"))
                    q.byRoute = true;
                else if (part == QLatin1StringView("endpoint"))
                    q.byEndpoint = true;
                else if (part == QLatin1StringView("caller"))
                    q.byCaller = true;
                else if (part == QLatin1StringView("day"))
                    q.byDay = true;
                else if (part == QLatin1StringView("provider"))
                    q.byProvider = true;
                else
                    return fail("group_by",
                                QStringLiteral("Invalid 'group_by' value '%1': expected model, "
                                               "route, endpoint, caller, day or provider, "
                                               "comma-separated")
                                    .arg(part.left(40)));
            }
        } else if (name == QLatin1StringView("format")) {
            if (value == QLatin1StringView("csv"))
                out.csv = true;
            else if (value != QLatin1StringView("json"))
                return fail("format", QStringLiteral("Invalid 'format': expected json or csv"));
        } else {
            return fail(name.left(40).toUtf8().constData(),
                        QStringLiteral("Unknown parameter '%1' (expected from, to, group_by, "
                                       "format)")
                            .arg(name.left(40)));
        }
    }
    if (out.query.fromMs >= out.query.toMs)
        return fail("from", QStringLiteral("'from' must be before 'to'"));
    return out;
}

LedgerRow LedgerReport::total() const {
    LedgerRow sum;
    for (const LedgerRow &row : rows)
        sum.add(row);
    return sum;
}

QByteArray totalsJson(const LedgerRow &total) {
    return '{' + countsJson(total, false) + '}';
}

QByteArray usageJson(const LedgerQuery &query, const LedgerReport &report) {
    QByteArray out = "{\"from\":" + quotedJson(timeText(query.fromMs)) +
                     ",\"to\":" + quotedJson(timeText(query.toMs)) + ",\"rows\":[";
    bool first = true;
    for (const LedgerRow &row : report.rows) {
        if (!std::exchange(first, false))
            out += ',';
        out += '{';
        if (query.byDay)
            out += "\"day\":" + quotedJson(dayText(row.hourMs)) + ',';
        for (const Label &label : Labels) {
            if (query.*label.grouped)
                out += '"' + QByteArray(label.name) + "\":" + quotedJson(row.*label.value) + ',';
        }
        out += countsJson(row, true) + '}';
    }
    out += "],\"totals\":" + totalsJson(report.total()) + ",\"unpriced_models\":[";
    first = true;
    for (const QByteArray &model : report.unpricedModels) {
        if (!std::exchange(first, false))
            out += ',';
        out += quotedJson(model);
    }
    return out + "]}";
}

QByteArray usageCsv(const LedgerQuery &query, const LedgerReport &report) {
    QByteArray out;
    if (query.byDay)
        out += "day,";
    for (const Label &label : Labels) {
        if (query.*label.grouped)
            out += QByteArray(label.name) + ',';
    }
    out += "requests,requests_without_usage,input_tokens,cached_input_tokens,"
           "cache_write_input_tokens,output_tokens,reasoning_tokens,cost_usd,list_cost_usd,"
           "saved_usd,unknown_cost_requests\r\n";
    for (const LedgerRow &row : report.rows) {
        if (query.byDay)
            out += dayText(row.hourMs) + ',';
        for (const Label &label : Labels) {
            if (query.*label.grouped)
                out += csvField(row.*label.value) + ',';
        }
        const bool unknown = row.unknownCost > 0;
        for (const qint64 n : {row.requests, row.requestsWithoutUsage, row.input, row.cachedInput,
                               row.cacheWriteInput, row.output, row.reasoning})
            out += QByteArray::number(n) + ',';
        for (const Picos p : {row.paid, row.list, row.saved})
            out += (unknown ? QByteArray() : formatUsd(p)) + ',';
        out += QByteArray::number(row.unknownCost) + "\r\n";
    }
    return out;
}

QString receiptText(const LedgerQuery &query, const LedgerReport &report) {
    QString out;
    out += query.fromMs <= 0 ? QStringLiteral("llm-proxy receipt, all time to %1 (UTC)\n\n")
                                   .arg(QString::fromLatin1(timeText(query.toMs)))
                             : QStringLiteral("llm-proxy receipt, %1 to %2 (UTC)\n\n")
                                   .arg(QString::fromLatin1(timeText(query.fromMs)),
                                        QString::fromLatin1(timeText(query.toMs)));
    if (report.rows.isEmpty()) {
        out += QStringLiteral("Nothing was answered in this period.\n");
        return out;
    }
    const QString header = QStringLiteral("%1 %2 %3 %4 %5 %6\n")
                               .arg(QStringLiteral("model"), -28)
                               .arg(QStringLiteral("route"), -14)
                               .arg(QStringLiteral("requests"), 9)
                               .arg(QStringLiteral("list $"), 16)
                               .arg(QStringLiteral("paid $"), 16)
                               .arg(QStringLiteral("saved $"), 16);
    out += header;
    out += QString(header.size() - 1, QLatin1Char('-')) + QLatin1Char('\n');
    auto moneyText = [](const LedgerRow &row, Picos LedgerRow::*field) {
        return row.unknownCost > 0 && row.unknownCost == row.requests - row.requestsWithoutUsage
                   ? QStringLiteral("unknown")
                   : QString::fromLatin1(formatUsd(row.*field)) +
                         (row.unknownCost > 0 ? QStringLiteral("+?") : QString());
    };
    for (const LedgerRow &row : report.rows) {
        out += QStringLiteral("%1 %2 %3 %4 %5 %6\n")
                   .arg(QString::fromUtf8(row.model.isEmpty() ? "(none)" : row.model), -28)
                   .arg(QString::fromLatin1(row.route), -14)
                   .arg(row.requests, 9)
                   .arg(moneyText(row, &LedgerRow::list), 16)
                   .arg(moneyText(row, &LedgerRow::paid), 16)
                   .arg(moneyText(row, &LedgerRow::saved), 16);
    }
    const LedgerRow total = report.total();
    out += QString(header.size() - 1, QLatin1Char('-')) + QLatin1Char('\n');
    out += QStringLiteral("%1 %2 %3 %4 %5\n")
               .arg(QStringLiteral("TOTAL"), -43)
               .arg(total.requests, 9)
               .arg(QString::fromLatin1(formatUsd(total.list)), 16)
               .arg(QString::fromLatin1(formatUsd(total.paid)), 16)
               .arg(QString::fromLatin1(formatUsd(total.saved)), 16);
    out += QStringLiteral("\nTokens: %1 input (%2 cached), %3 output (%4 reasoning).\n")
               .arg(total.input)
               .arg(total.cachedInput)
               .arg(total.output)
               .arg(total.reasoning);
    if (total.requestsWithoutUsage > 0)
        out += QStringLiteral("%1 requests were answered without usage (errors, or streams "
                              "without include_usage): not counted in the tokens.\n")
                   .arg(total.requestsWithoutUsage);
    if (!report.unpricedModels.isEmpty()) {
        QStringList names;
        for (const QByteArray &m : report.unpricedModels)
            names.append(QString::fromUtf8(m));
        out += QStringLiteral("No price known for: %1 (their cost is not in the totals; add "
                              "them to the prices override file).\n")
                   .arg(names.join(QStringLiteral(", ")));
    }
    return out;
}

} // namespace llmproxy::accounting
