// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/moneytext.h"

#include <QCoreApplication>
#include <QLocale>

#include <cmath>

namespace llmproxy::money {

namespace {

constexpr qint64 PicosPerCent = 10'000'000'000LL;

} // namespace

QString usd(accounting::Picos picos) {
    const bool negative = picos < 0;
    // |picos| without overflow for the most negative value: work on the negative side.
    const qint64 negated = negative ? picos : -picos; // <= 0
    const qint64 wholeCents = -(negated / PicosPerCent);
    const qint64 rest = -(negated % PicosPerCent);
    const qint64 cents = wholeCents + (rest * 2 >= PicosPerCent ? 1 : 0);
    const QLocale locale;
    if (cents == 0 && picos != 0) {
        return negative ? QStringLiteral("> -$") + locale.toString(0.01, 'f', 2)
                        : QStringLiteral("< $") + locale.toString(0.01, 'f', 2);
    }
    const QString text = QStringLiteral("$") + locale.toString(cents / 100) +
                         locale.decimalPoint() +
                         QStringLiteral("%1").arg(cents % 100, 2, 10, QLatin1Char('0'));
    return negative ? QStringLiteral("-") + text : text;
}

QString axisUsd(double dollars, int decimals) {
    const QString number = QLocale().toString(std::abs(dollars), 'f', decimals);
    return dollars < 0 ? QStringLiteral("-$") + number : QStringLiteral("$") + number;
}

QString exactUsd(accounting::Picos picos) {
    const QByteArray digits = accounting::formatUsd(picos);
    const QString sign = digits.startsWith('-') ? QStringLiteral("-") : QString();
    const QString number = QString::fromLatin1(digits.startsWith('-') ? digits.mid(1) : digits);
    return QCoreApplication::translate("Money", "%1$%2 USD").arg(sign, number);
}

QString tokens(qint64 count) {
    return QLocale().toString(count);
}

Known knownOf(const accounting::LedgerRow &row) {
    if (row.unknownCost <= 0)
        return Known::All;
    const qint64 priced = row.requests - row.requestsWithoutUsage - row.unknownCost;
    return priced > 0 ? Known::Part : Known::None;
}

QString amount(const accounting::LedgerRow &row, accounting::Picos accounting::LedgerRow::*field) {
    switch (knownOf(row)) {
    case Known::All:
        return usd(row.*field);
    case Known::Part:
        return QCoreApplication::translate("Money", "%1 + unknown").arg(usd(row.*field));
    case Known::None:
        return QCoreApplication::translate("Money", "unknown");
    }
    return QString();
}

QString exactAmount(const accounting::LedgerRow &row,
                    accounting::Picos accounting::LedgerRow::*field) {
    switch (knownOf(row)) {
    case Known::All:
        return exactUsd(row.*field);
    case Known::Part:
        return QCoreApplication::translate("Money",
                                           "%1, leaving out %n request(s) whose model has no price",
                                           nullptr, int(row.unknownCost))
            .arg(exactUsd(row.*field));
    case Known::None:
        return QCoreApplication::translate(
            "Money", "No price is known for these requests' model: their cost is unknown");
    }
    return QString();
}

QString savedToday(const MoneySummary &summary) {
    if (!summary.valid)
        return QString();
    return QCoreApplication::translate("Money", "Saved today: %1")
        .arg(amount(summary.today.total(), &accounting::LedgerRow::saved));
}

} // namespace llmproxy::money
