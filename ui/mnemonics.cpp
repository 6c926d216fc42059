// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/mnemonics.h"

#include <QAbstractButton>
#include <QGroupBox>
#include <QLabel>
#include <QList>
#include <QToolButton>

namespace llmproxy::mnemonics {

QChar of(const QString &text) {
    for (qsizetype i = 0; i + 1 < text.size(); ++i) {
        if (text[i] != u'&')
            continue;
        if (text[i + 1] == u'&') { // "&&" is a literal ampersand
            ++i;
            continue;
        }
        return text[i + 1].toLower();
    }
    return QChar();
}

QString assign(const QString &text, QSet<QChar> *taken) {
    if (!of(text).isNull())
        return text;
    QList<qsizetype> candidates; // word starts, then the other letters
    for (qsizetype i = 0; i < text.size(); ++i) {
        if (text[i].isLetter() && (i == 0 || !text[i - 1].isLetter()))
            candidates.append(i);
    }
    for (qsizetype i = 0; i < text.size(); ++i) {
        if (text[i].isLetter() && !candidates.contains(i))
            candidates.append(i);
    }
    for (qsizetype i : std::as_const(candidates)) {
        const QChar letter = text[i].toLower();
        if (letter.unicode() > 0x7f || taken->contains(letter))
            continue; // ASCII letters only: every keyboard has them
        taken->insert(letter);
        return text.left(i) + u'&' + text.mid(i);
    }
    return text;
}

void assignUnder(QWidget *root, QSet<QChar> taken) {
    const auto labels = root->findChildren<QLabel *>();
    for (const QLabel *label : labels) {
        if (label->buddy() && !of(label->text()).isNull())
            taken.insert(of(label->text()));
    }
    const auto buttons = root->findChildren<QAbstractButton *>();
    for (const QAbstractButton *button : buttons) {
        if (!of(button->text()).isNull())
            taken.insert(of(button->text()));
    }
    const auto groups = root->findChildren<QGroupBox *>();
    for (const QGroupBox *group : groups) {
        if (!of(group->title()).isNull())
            taken.insert(of(group->title()));
    }
    for (QLabel *label : labels) {
        if (label->buddy() && of(label->text()).isNull())
            label->setText(assign(label->text(), &taken));
    }
    for (QAbstractButton *button : buttons) {
        if (!qobject_cast<QToolButton *>(button) && of(button->text()).isNull())
            button->setText(assign(button->text(), &taken));
    }
}

} // namespace llmproxy::mnemonics
