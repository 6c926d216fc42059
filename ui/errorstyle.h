// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The one red the desktop app says "this is wrong" in. The palette has no role for it, so it
// is chosen against the palette it is drawn on: a dark red on light themes, a light red on dark
// ones, whichever reads better against the window colour. Labels keep it when the theme
// changes while the app runs.

#include <QColor>

class QLabel;
class QPalette;
class QWidget;

namespace llmproxy::errorstyle {

QColor color(const QPalette &palette);
// WCAG's contrast ratio of two colours (1 to 21); what color() maximises.
double contrast(const QColor &a, const QColor &b);
// Shows the label's text in the red (or back in the palette's text colour).
void setLabelError(QLabel *label, bool isError = true);
// Draws the field's border in the red (or the style's own border again): a line edit, a spin box.
void setFieldError(QWidget *field, bool isError);

} // namespace llmproxy::errorstyle
