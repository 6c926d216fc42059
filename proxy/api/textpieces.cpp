// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/textpieces.h"

#include <algorithm>

namespace llmproxy::sse {

namespace {
bool isContinuation(char c) {
    return (static_cast<uchar>(c) & 0xC0) == 0x80;
}
} // namespace

QList<QByteArrayView> textPieces(QByteArrayView text, int maxPieces, int minPieceBytes) {
    QList<QByteArrayView> pieces;
    if (text.isEmpty())
        return pieces;
    const qsizetype minBytes = std::max(1, minPieceBytes);
    const qsizetype most = std::max(1, maxPieces);
    const qsizetype count = std::clamp<qsizetype>((text.size() + minBytes - 1) / minBytes, 1, most);
    const qsizetype target = std::max(minBytes, (text.size() + count - 1) / count);
    qsizetype pos = 0;
    while (pos < text.size()) {
        qsizetype end = std::min(text.size(), pos + target);
        while (end < text.size() && isContinuation(text[end]))
            ++end;
        pieces.append(text.sliced(pos, end - pos));
        pos = end;
    }
    return pieces;
}

} // namespace llmproxy::sse
