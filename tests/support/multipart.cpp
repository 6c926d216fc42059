// SPDX-License-Identifier: GPL-3.0-or-later
#include "multipart.h"

namespace llmproxy::test {

namespace {

// The value of `key=` in a header's parameter list (`form-data; name="file"; filename="a"`).
QByteArray headerParameter(const QByteArray &header, QByteArrayView key) {
    const QList<QByteArray> params = header.split(';');
    for (qsizetype i = 1; i < params.size(); ++i) {
        const QByteArray param = params.at(i).trimmed();
        const qsizetype eq = param.indexOf('=');
        if (eq < 0 || param.left(eq).trimmed().toLower() != key)
            continue;
        QByteArray value = param.mid(eq + 1).trimmed();
        if (value.size() >= 2 && value.startsWith('"') && value.endsWith('"'))
            value = value.mid(1, value.size() - 2);
        return value;
    }
    return {};
}

} // namespace

QByteArray multipartBoundary(const QByteArray &contentType) {
    if (!contentType.trimmed().toLower().startsWith("multipart/form-data"))
        return {};
    return headerParameter(contentType, "boundary");
}

std::optional<QList<MultipartPart>> parseMultipart(const QByteArray &contentType,
                                                   const QByteArray &body) {
    const QByteArray boundary = multipartBoundary(contentType);
    if (boundary.isEmpty())
        return std::nullopt;
    const QByteArray delimiter = QByteArrayLiteral("--") + boundary;
    const QByteArray lineDelimiter = QByteArrayLiteral("\r\n") + delimiter;
    qsizetype pos = body.indexOf(delimiter);
    if (pos < 0)
        return std::nullopt;

    QList<MultipartPart> parts;
    while (true) {
        pos += delimiter.size();
        if (body.mid(pos, 2) == "--")
            return parts; // closing delimiter
        // The rest of the delimiter line (transport padding), then CRLF.
        const qsizetype lineEnd = body.indexOf("\r\n", pos);
        if (lineEnd < 0)
            return std::nullopt;
        const qsizetype headersEnd = body.indexOf("\r\n\r\n", lineEnd);
        if (headersEnd < 0)
            return std::nullopt;
        const qsizetype next = body.indexOf(lineDelimiter, headersEnd);
        if (next < 0)
            return std::nullopt;

        MultipartPart part;
        const QList<QByteArray> headerLines =
            body.mid(lineEnd + 2, headersEnd - lineEnd - 2).split('\n');
        for (const QByteArray &rawLine : headerLines) {
            const QByteArray line = rawLine.trimmed();
            const qsizetype colon = line.indexOf(':');
            if (colon < 0)
                continue;
            const QByteArray name = line.left(colon).trimmed().toLower();
            const QByteArray value = line.mid(colon + 1).trimmed();
            if (name == "content-disposition") {
                part.name = headerParameter(value, "name");
                part.fileName = headerParameter(value, "filename");
            } else if (name == "content-type") {
                part.contentType = value;
            }
        }
        if (part.name.isEmpty())
            return std::nullopt;
        part.data = body.mid(headersEnd + 4, next - headersEnd - 4);
        parts.append(part);
        pos = next + 2;
    }
}

} // namespace llmproxy::test
