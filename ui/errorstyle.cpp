// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/errorstyle.h"

#include <QEvent>
#include <QLabel>
#include <QLineEdit>
#include <QPalette>

#include <algorithm>
#include <cmath>

namespace llmproxy::errorstyle {

namespace {

const QColor DarkRed(0xb0, 0x20, 0x20);  // 6.8:1 on white
const QColor LightRed(0xff, 0x8a, 0x80); // 7.4:1 on #202020

double luminance(const QColor &colour) {
    const auto channel = [](double value) {
        return value <= 0.03928 ? value / 12.92 : std::pow((value + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) +
           0.0722 * channel(colour.blueF());
}

// Follows palette changes (a theme switch) for one label: the red is chosen again for the
// new window colour. A child of the label, so it goes with it.
class Tint final : public QObject {
public:
    explicit Tint(QLabel *label)
        : QObject(label)
        , m_label(label) {
        label->installEventFilter(this);
        apply();
    }

    void apply() {
        const QColor wanted = color(m_label->palette());
        if (m_label->palette().color(QPalette::WindowText) == wanted)
            return; // also ends the PaletteChange our own setPalette() sends
        QPalette palette = m_label->palette();
        palette.setColor(QPalette::WindowText, wanted);
        m_label->setPalette(palette);
    }

protected:
    bool eventFilter(QObject *watched, QEvent *event) override {
        if (watched == m_label && event->type() == QEvent::PaletteChange)
            apply();
        return false;
    }

private:
    QLabel *m_label;
};

} // namespace

double contrast(const QColor &a, const QColor &b) {
    const double la = luminance(a);
    const double lb = luminance(b);
    return (std::max(la, lb) + 0.05) / (std::min(la, lb) + 0.05);
}

QColor color(const QPalette &palette) {
    const QColor background = palette.color(QPalette::Window);
    return contrast(DarkRed, background) >= contrast(LightRed, background) ? DarkRed : LightRed;
}

void setLabelError(QLabel *label, bool isError) {
    Tint *tint = label->findChild<Tint *>(QString(), Qt::FindDirectChildrenOnly);
    if (isError == (tint != nullptr))
        return;
    if (isError) {
        new Tint(label);
        return;
    }
    delete tint;                   // removes its event filter
    label->setPalette(QPalette()); // only the text role was set: inherit everything again
}

void setFieldError(QWidget *field, bool isError) {
    // The window's palette: a field with a style sheet holds on to the one it was polished with.
    // The selector is the field's own class ("QLineEdit", "QDoubleSpinBox").
    field->setStyleSheet(isError ? QStringLiteral("%1 { border: 1px solid %2; }")
                                       .arg(QLatin1StringView(field->metaObject()->className()),
                                            color(field->window()->palette()).name())
                                 : QString());
}

} // namespace llmproxy::errorstyle
