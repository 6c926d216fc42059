// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The Batch API's JSONL files: input lines we write, output/error lines we read.

#include <QByteArray>
#include <QByteArrayView>
#include <QString>

#include <functional>
#include <optional>

namespace llmproxy::jsonl {

// One input line, newline included:
// {"custom_id":"<id>","method":"POST","url":"<url>","body":<body on one line>}\n
// `body` must be valid JSON (already checked); its bytes are copied unchanged apart from
// raw CR/LF whitespace, which becomes spaces (json::singleLine).
QByteArray encodeInputLine(QByteArrayView customId, QByteArrayView url, QByteArrayView body);

// One line of an output or error file.
struct OutputLine {
    QByteArray customId;
    bool hasResponse = false; // "response" is an object
    int statusCode = 0;       // response.status_code
    QByteArray requestId;     // response.request_id (may be empty)
    QByteArray body;          // response.body, raw bytes exactly as in the file
    QByteArray errorCode;     // error.code when "error" is an object
    QString errorMessage;     // error.message
};

// Decode one line (without its newline). nullopt and *error set if the line is not valid JSON
// or lacks a string custom_id, or has neither a response object nor an error object.
std::optional<OutputLine> decodeOutputLine(QByteArrayView line, QString *error = nullptr);

// The custom_id of a result line known only by its first bytes (a line too long to read whole):
// found when a string "custom_id" member is complete before the cut (OpenAI writes it second,
// after "id"); nullopt otherwise.
std::optional<QByteArray> customIdFromLineStart(QByteArrayView lineStart);

// Splits a stream of bytes into lines without holding more than one partial line.
// Feed chunks as they arrive; each complete non-empty line (CR/LF stripped) goes to `onLine`.
// finish() delivers a last line that had no newline.
class LineSplitter {
public:
    explicit LineSplitter(std::function<void(QByteArrayView)> onLine);
    void feed(QByteArrayView chunk);
    void finish();
    qsizetype pendingBytes() const { return m_partial.size(); }

private:
    std::function<void(QByteArrayView)> m_onLine;
    QByteArray m_partial;
};

} // namespace llmproxy::jsonl
