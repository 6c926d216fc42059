// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/icons.h"

#include <QPainter>
#include <QPainterPath>
#include <QPixmap>

#include <array>

namespace llmproxy::icons {

namespace {

// Drawn at each size (never scaled): 16 to 256 px, so a 2x screen (and the launcher's largest
// tiles) get a crisp pixmap for every size a 1x screen uses (QIcon picks size x ratio).
constexpr std::array Sizes{16, 20, 22, 24, 32, 40, 44, 48, 64, 96, 128, 256};

// Three stacked bars, the middle one shorter: requests collected into a batch.
void drawStack(QPainter &painter, const QRectF &box, const QColor &color) {
    const qreal h = box.height();
    const qreal barHeight = h * 0.13;
    const qreal left = box.left() + box.width() * 0.26;
    const qreal fullWidth = box.width() * 0.48;
    const std::array<qreal, 3> widths{1.0, 0.7, 1.0};
    painter.setPen(Qt::NoPen);
    painter.setBrush(color);
    for (std::size_t i = 0; i < widths.size(); ++i) {
        const qreal top = box.top() + h * (0.27 + 0.19 * static_cast<qreal>(i));
        painter.drawRoundedRect(QRectF(left, top, fullWidth * widths[i], barHeight), barHeight / 2,
                                barHeight / 2);
    }
}

void drawExclamation(QPainter &painter, const QRectF &box, const QColor &color) {
    const qreal w = box.width();
    const qreal h = box.height();
    painter.setPen(Qt::NoPen);
    painter.setBrush(color);
    const qreal barWidth = w * 0.14;
    painter.drawRoundedRect(
        QRectF(box.center().x() - barWidth / 2, box.top() + h * 0.2, barWidth, h * 0.4),
        barWidth / 2, barWidth / 2);
    painter.drawEllipse(QPointF(box.center().x(), box.top() + h * 0.74), barWidth * 0.65,
                        barWidth * 0.65);
}

void drawPauseMark(QPainter &painter, const QRectF &box) {
    const qreal d = box.width() * 0.46;
    const QRectF badge(box.right() - d, box.bottom() - d, d, d);
    painter.setPen(Qt::NoPen);
    painter.setBrush(QColor(0x22, 0x22, 0x22));
    painter.drawEllipse(badge);
    painter.setBrush(Qt::white);
    const qreal barWidth = d * 0.18;
    const qreal barHeight = d * 0.5;
    const qreal top = badge.center().y() - barHeight / 2;
    painter.drawRect(QRectF(badge.center().x() - barWidth * 1.5, top, barWidth, barHeight));
    painter.drawRect(QRectF(badge.center().x() + barWidth * 0.5, top, barWidth, barHeight));
}

QPixmap statePixmap(int size, TrayState state, bool paused) {
    QPixmap pixmap(size, size);
    pixmap.fill(Qt::transparent);
    QPainter painter(&pixmap);
    painter.setRenderHint(QPainter::Antialiasing);
    const QRectF box(0.5, 0.5, size - 1.0, size - 1.0);
    painter.setPen(QPen(stateColor(state).darker(130), std::max(1.0, size / 24.0)));
    painter.setBrush(stateColor(state));
    painter.drawEllipse(box);
    if (state == TrayState::Error)
        drawExclamation(painter, box, Qt::white);
    else
        drawStack(painter, box, Qt::white);
    if (paused)
        drawPauseMark(painter, box);
    return pixmap;
}

QPixmap applicationPixmap(int size) {
    QPixmap pixmap(size, size);
    pixmap.fill(Qt::transparent);
    QPainter painter(&pixmap);
    painter.setRenderHint(QPainter::Antialiasing);
    const QRectF box(0.5, 0.5, size - 1.0, size - 1.0);
    const qreal radius = size * 0.2;
    QLinearGradient gradient(box.topLeft(), box.bottomLeft());
    gradient.setColorAt(0, QColor(0x3d, 0x8b, 0xf0));
    gradient.setColorAt(1, QColor(0x1f, 0x5f, 0xbf));
    painter.setPen(Qt::NoPen);
    painter.setBrush(gradient);
    painter.drawRoundedRect(box, radius, radius);
    drawStack(painter, box, Qt::white);
    return pixmap;
}

} // namespace

QColor stateColor(TrayState state) {
    switch (state) {
    case TrayState::Idle:
        return QColor(0x7a, 0x88, 0x99);
    case TrayState::Waiting:
        return QColor(0xe0, 0xa2, 0x1b);
    case TrayState::BatchesOut:
        return QColor(0x2f, 0x7b, 0xe0);
    case TrayState::Error:
        return QColor(0xd2, 0x3c, 0x3c);
    }
    return QColor(Qt::gray);
}

QIcon application() {
    QIcon icon;
    for (int size : Sizes)
        icon.addPixmap(applicationPixmap(size));
    return icon;
}

QIcon trayState(TrayState state, bool paused) {
    QIcon icon;
    for (int size : Sizes)
        icon.addPixmap(statePixmap(size, state, paused));
    return icon;
}

} // namespace llmproxy::icons
