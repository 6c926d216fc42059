// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// How money and tokens read in the desktop app. Money is exact pico-USD (accounting/cost.h):
// shown rounded to cents in the user's number format, exact in tooltips; never a float. A
// cost that is not known is said to be unknown, never shown as $0.

#include "accounting/ledger.h"
#include "ui/moneysummary.h"

#include <QString>

namespace llmproxy::money {

// Rounded to the cent (half away from zero), grouped as the default locale groups digits:
// "$1,234.57", "$0.00", "-$0.42"; an amount that is not zero but under half a cent is
// "< $0.01" (or "> -$0.01").
QString usd(accounting::Picos picos);
// A chart axis' figure (a double, for drawing only; never an amount): "$1,250.5" with
// `decimals` decimals, in the default locale's format.
QString axisUsd(double dollars, int decimals);
// Every digit there is: "$0.00000315 USD" (formatUsd()).
QString exactUsd(accounting::Picos picos);
// 1234567 → "1,234,567" in the default locale's grouping.
QString tokens(qint64 count);

// How much of a row's money is known: all of it, some (some requests had no price), or none.
enum class Known { All, Part, None };
Known knownOf(const accounting::LedgerRow &row);
// A row's paid, list or saved amount: "$1.23"; "$1.23 + unknown" when some of its requests
// have no price; "unknown" when none has one. Requests without usage add nothing either way.
QString amount(const accounting::LedgerRow &row, accounting::Picos accounting::LedgerRow::*field);
// The exact figure for a tooltip, saying what it leaves out.
QString exactAmount(const accounting::LedgerRow &row,
                    accounting::Picos accounting::LedgerRow::*field);

// "Saved today: $1.23" (the tray's tooltip); empty when the summary has no figures.
QString savedToday(const MoneySummary &summary);

} // namespace llmproxy::money
