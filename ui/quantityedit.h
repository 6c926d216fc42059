// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Editors for a duration or a size setting: a whole number and a unit chosen from a list
// (DurationEdit: ms, s, min, h; SizeEdit: bytes, KB, MB, GB, KiB, MiB, GiB), only the units
// the setting's maximum leaves room for. They speak the settings' own text: setText() takes
// what settingText() writes ("90s", "25MB", "off") and shows it exactly as written (90 s stays
// 90 s, never 1.5 min), text() gives the number and unit back in that form for applySetting().
// The bounds are the setting's declared ones (SettingDeclaration::minimum, maximum): the arrow
// keys and the mouse wheel stop at them; a number typed beyond them stays in the box, for the
// settings page to refuse with the command line's reason (applySetting). The number box is the
// focus proxy, so a label's buddy and Tab reach it first, then the unit.

#include "settings/config.h"

#include <QWidget>

#include <functional>
#include <optional>

class QComboBox;
class QDoubleSpinBox;

namespace llmproxy {

class QuantityEdit : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(QuantityEdit)
public:
    // The settings' text ("90s", "2MiB", "off" or "" when off is allowed); a text the setting's
    // parser refuses leaves the editor as it was.
    void setText(const QString &text);
    // The number and unit as the settings write them ("90s", "2MiB"); "off" for nothing when off
    // is allowed.
    QString text() const;
    // The declared bounds, in milliseconds or bytes.
    qint64 minimum() const { return m_minimum; }
    qint64 maximum() const { return m_maximum; }
    QDoubleSpinBox *numberBox() const { return m_number; }
    QComboBox *unitBox() const { return m_unit; }
    // The unit as the settings write it ("s", "MiB").
    QString unitName() const;

Q_SIGNALS:
    // The number or the unit changed (by the user or by setText()).
    void edited();
    // Return in the number box.
    void returnPressed();

protected:
    struct UnitChoice {
        ValueUnit unit;
        QString label; // what the list shows ("min", "bytes"), translated
    };
    using Parser = std::function<std::optional<qint64>(QStringView text)>;
    // `bareUnit`: the unit a number without one is in ("s", "B"), the list's first choice.
    QuantityEdit(const QList<UnitChoice> &units, QLatin1StringView bareUnit, Parser parse,
                 qint64 minimum, qint64 maximum, bool offAllowed, QWidget *parent);

private:
    // The number box's limits for the unit now chosen: typing up to `cap`, stepping within the
    // declared bounds.
    void fitNumberToUnit();
    qint64 factor() const;

    QDoubleSpinBox *m_number = nullptr;
    QComboBox *m_unit = nullptr;
    Parser m_parse;
    qint64 m_minimum = 0;
    qint64 m_maximum = 0;
    bool m_offAllowed = false;
};

class DurationEdit final : public QuantityEdit {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(DurationEdit)
public:
    // Bounds in milliseconds; `offAllowed`: 0 reads "off" and text() says "off" (GracePeriod).
    DurationEdit(qint64 minimum, qint64 maximum, bool offAllowed, QWidget *parent = nullptr);
};

class SizeEdit final : public QuantityEdit {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SizeEdit)
public:
    // Bounds in bytes.
    SizeEdit(qint64 minimum, qint64 maximum, QWidget *parent = nullptr);
};

} // namespace llmproxy
