// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QList>

#include <optional>

namespace llmproxy::test {

// One part of a multipart/form-data body (RFC 7578): its form field name, the filename if the
// part is a file, its own Content-Type if given, and its bytes exactly as sent.
struct MultipartPart {
    QByteArray name;
    QByteArray fileName;
    QByteArray contentType;
    QByteArray data;
};

// The boundary parameter of a multipart Content-Type, quoted or not; empty if there is none.
QByteArray multipartBoundary(const QByteArray &contentType);

// Splits a multipart/form-data body. Returns nullopt when the body is not well formed
// (no boundary, no closing delimiter, a part without a form-data name).
std::optional<QList<MultipartPart>> parseMultipart(const QByteArray &contentType,
                                                   const QByteArray &body);

} // namespace llmproxy::test
