// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Keyboard mnemonics (Alt+letter): the labels the settings table names get theirs here, so no
// two controls shown together in a window share a letter, whatever the table holds.

#include <QChar>
#include <QSet>
#include <QString>

class QWidget;

namespace llmproxy::mnemonics {

// The mnemonic letter of `text` ("Re&vert" → 'v'), lower case; a null QChar if none.
QChar of(const QString &text);
// `text` with a mnemonic on its first letter not in `taken` (word starts first), which is then
// added to `taken`. `text` unchanged if it has a mnemonic already or no letter is free.
QString assign(const QString &text, QSet<QChar> *taken);
// Gives a mnemonic to every label with a buddy under `root` that has none, then to every
// button (but tool buttons, which show an action's text), in creation order, avoiding the
// letters in `taken` and those the controls under `root` have already. A control may be left
// without one when no letter of its text is free; none ever shares one.
void assignUnder(QWidget *root, QSet<QChar> taken);

} // namespace llmproxy::mnemonics
