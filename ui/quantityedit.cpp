// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/quantityedit.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLineEdit>

#include <cmath>
#include <limits>

namespace llmproxy {

namespace {

using namespace Qt::Literals::StringLiterals;

// Twelve digits at most: beyond any sensible setting, and exact in a double.
constexpr qint64 MaxNumber = 999'999'999'999;
constexpr int NameRole = Qt::UserRole;
constexpr int FactorRole = Qt::UserRole + 1;

// A spin box for whole numbers whose arrows (keys, buttons, wheel) stay within [low, high],
// while typing may go anywhere up to its maximum. With `zeroBelow`, 0 ("off") is the step
// below `low`.
class NumberBox final : public QDoubleSpinBox {
public:
    using QDoubleSpinBox::QDoubleSpinBox;
    void setStepRange(double low, double high, bool zeroBelow) {
        m_low = low;
        m_high = high;
        m_zeroBelow = zeroBelow;
    }
    void stepBy(int steps) override {
        double target = value() + steps * singleStep();
        if (target > m_high)
            target = m_high;
        if (target < m_low)
            target = (m_zeroBelow && steps < 0) ? 0.0 : m_low;
        setValue(target);
        selectAll();
    }

protected:
    StepEnabled stepEnabled() const override {
        if (isReadOnly())
            return StepNone;
        StepEnabled enabled = StepNone;
        if (value() > (m_zeroBelow ? 0.0 : m_low))
            enabled |= StepDownEnabled;
        if (value() < m_high)
            enabled |= StepUpEnabled;
        return enabled;
    }

private:
    double m_low = 0;
    double m_high = 0;
    bool m_zeroBelow = false;
};

std::optional<qint64> durationMs(QStringView text) {
    const auto duration = parseDuration(text);
    if (!duration)
        return std::nullopt;
    return duration->count();
}

} // namespace

QuantityEdit::QuantityEdit(const QList<UnitChoice> &units, QLatin1StringView bareUnit, Parser parse,
                           qint64 minimum, qint64 maximum, bool offAllowed, QWidget *parent)
    : QWidget(parent)
    , m_parse(std::move(parse))
    , m_minimum(minimum)
    , m_maximum(maximum)
    , m_offAllowed(offAllowed) {
    auto *layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_number = new NumberBox(this);
    m_number->setDecimals(0);
    m_number->setAccelerated(true);
    if (offAllowed)
        m_number->setSpecialValueText(tr("off"));
    m_unit = new QComboBox(this);
    m_unit->setAccessibleName(tr("Unit"));
    for (const UnitChoice &choice : units) {
        // Only units the maximum leaves room for; the smallest always (every value fits it).
        if (choice.unit.factor > maximum && choice.unit.factor != 1)
            continue;
        m_unit->addItem(choice.label);
        const int index = m_unit->count() - 1;
        m_unit->setItemData(index, QString(choice.unit.name), NameRole);
        m_unit->setItemData(index, choice.unit.factor, FactorRole);
        if (choice.unit.name == bareUnit)
            m_unit->setCurrentIndex(index);
    }
    layout->addWidget(m_number, 1);
    layout->addWidget(m_unit);
    setFocusProxy(m_number);
    fitNumberToUnit();

    connect(m_number, &QDoubleSpinBox::valueChanged, this, &QuantityEdit::edited);
    connect(m_unit, &QComboBox::currentIndexChanged, this, [this] {
        fitNumberToUnit();
        Q_EMIT edited();
    });
    if (auto *line = m_number->findChild<QLineEdit *>())
        connect(line, &QLineEdit::returnPressed, this, &QuantityEdit::returnPressed);
}

qint64 QuantityEdit::factor() const {
    return m_unit->currentData(FactorRole).toLongLong();
}

QString QuantityEdit::unitName() const {
    return m_unit->currentData(NameRole).toString();
}

void QuantityEdit::fitNumberToUnit() {
    const qint64 unit = qMax(factor(), qint64(1));
    const qint64 cap = qMin(MaxNumber, std::numeric_limits<qint64>::max() / unit);
    // The declared bounds in this unit: the first whole number at or over the minimum, the last
    // at or under the maximum.
    const qint64 low = (m_minimum + unit - 1) / unit;
    const qint64 high = qMin(cap, m_maximum / unit);
    m_number->setRange(0, double(cap));
    static_cast<NumberBox *>(m_number)->setStepRange(double(low), double(high), m_offAllowed);
}

void QuantityEdit::setText(const QString &text) {
    const QString trimmed = text.trimmed();
    if (m_offAllowed && (trimmed.isEmpty() || trimmed.compare(u"off", Qt::CaseInsensitive) == 0)) {
        m_number->setValue(0);
        return;
    }
    const auto value = m_parse(trimmed);
    if (!value)
        return;
    // The unit as written when the value is a whole number of it ("60m" stays 60 min), else
    // the largest one that is.
    qsizetype unitStart = trimmed.size();
    while (unitStart > 0 && trimmed[unitStart - 1].isLetter())
        --unitStart;
    const QStringView written = QStringView(trimmed).sliced(unitStart);
    int chosen = -1;
    for (int i = 0; i < m_unit->count(); ++i) {
        const qint64 unit = m_unit->itemData(i, FactorRole).toLongLong();
        if (*value % unit != 0)
            continue;
        if (!written.isEmpty() &&
            written.compare(m_unit->itemData(i, NameRole).toString(), Qt::CaseInsensitive) == 0) {
            chosen = i;
            break;
        }
        if (chosen < 0 || unit > m_unit->itemData(chosen, FactorRole).toLongLong())
            chosen = i;
    }
    if (chosen < 0)
        return;
    m_unit->setCurrentIndex(chosen);
    m_number->setValue(double(*value / factor()));
}

QString QuantityEdit::text() const {
    const qint64 number = qRound64(m_number->value());
    if (m_offAllowed && number == 0)
        return u"off"_s;
    return QString::number(number) + unitName();
}

DurationEdit::DurationEdit(qint64 minimum, qint64 maximum, bool offAllowed, QWidget *parent)
    : QuantityEdit(
          [] {
              QList<UnitChoice> choices;
              for (const ValueUnit &unit : durationUnits()) {
                  QString label = unit.name;
                  if (unit.name == "ms"_L1)
                      label = tr("ms", "milliseconds");
                  else if (unit.name == "s"_L1)
                      label = tr("s", "seconds");
                  else if (unit.name == "m"_L1)
                      label = tr("min", "minutes");
                  else if (unit.name == "h"_L1)
                      label = tr("h", "hours");
                  choices.append({unit, label});
              }
              return choices;
          }(),
          "s"_L1, durationMs, minimum, maximum, offAllowed, parent) {}

SizeEdit::SizeEdit(qint64 minimum, qint64 maximum, QWidget *parent)
    : QuantityEdit(
          [] {
              QList<UnitChoice> choices;
              for (const ValueUnit &unit : sizeUnits()) {
                  QString label = unit.name;
                  if (unit.name == "B"_L1)
                      label = tr("bytes");
                  else if (unit.name == "KB"_L1)
                      label = tr("KB", "1000 bytes");
                  else if (unit.name == "MB"_L1)
                      label = tr("MB", "10^6 bytes");
                  else if (unit.name == "GB"_L1)
                      label = tr("GB", "10^9 bytes");
                  else if (unit.name == "KiB"_L1)
                      label = tr("KiB", "1024 bytes");
                  else if (unit.name == "MiB"_L1)
                      label = tr("MiB", "2^20 bytes");
                  else if (unit.name == "GiB"_L1)
                      label = tr("GiB", "2^30 bytes");
                  choices.append({unit, label});
              }
              return choices;
          }(),
          "B"_L1, parseSize, minimum, maximum, false, parent) {}

} // namespace llmproxy
