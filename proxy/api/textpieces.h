// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// How a stream replay cuts a finished text into deltas, shared by the OpenAI replays
// (ssereplay.h) and Anthropic's (anthropicsse.h).

#include <QByteArrayView>
#include <QList>

namespace llmproxy::sse {

// `text` cut into at most `maxPieces` pieces of at least `minPieceBytes` each (the last may be
// shorter), each cut moved forward to the start of a code point (a byte that is not a UTF-8
// continuation byte), so no piece splits a character. Bytes that are not valid UTF-8 stay where
// they are: the pieces joined are always `text`. Values below 1 count as 1. No pieces for an
// empty text.
QList<QByteArrayView> textPieces(QByteArrayView text, int maxPieces, int minPieceBytes);

} // namespace llmproxy::sse
