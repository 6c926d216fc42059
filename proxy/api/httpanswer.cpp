// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/httpanswer.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonParseError>
#include <QList>
#include <QUrl>

#include <cstring>

namespace llmproxy {

bool isHeaderName(QByteArrayView name) {
    if (name.isEmpty())
        return false;
    for (const char c : name) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (c == '\0' || !std::strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

bool isSafeHeaderValue(QByteArrayView value) {
    for (const char c : value) {
        if (c == '\r' || c == '\n' || c == '\0')
            return false;
    }
    return true;
}

HttpAnswer errorAnswer(int status, const QString &message, const char *type, const QByteArray &code,
                       const QByteArray &param) {
    QJsonObject error{
        {QStringLiteral("message"), message},
        {QStringLiteral("type"), QString::fromLatin1(type)},
        {QStringLiteral("param"),
         param.isEmpty() ? QJsonValue(QJsonValue::Null) : QJsonValue(QString::fromUtf8(param))},
        {QStringLiteral("code"),
         code.isEmpty() ? QJsonValue(QJsonValue::Null) : QJsonValue(QString::fromUtf8(code))},
    };
    HttpAnswer answer;
    answer.status = status;
    answer.body =
        QJsonDocument(QJsonObject{{QStringLiteral("error"), error}}).toJson(QJsonDocument::Compact);
    answer.synthesized = true;
    return answer;
}

namespace {

// `path` with its "." and ".." segments resolved (RFC 3986 §5.2.4); a ".." above the root stays
// at the root.
QByteArray withoutDotSegments(QByteArrayView path) {
    QList<QByteArrayView> kept;
    qsizetype start = path.startsWith('/') ? 1 : 0;
    bool trailingSlash = false; // the last segment was "." or ".."; an empty one is kept
    while (start <= path.size()) {
        qsizetype end = path.indexOf('/', start);
        if (end < 0)
            end = path.size();
        const QByteArrayView segment = path.sliced(start, end - start);
        if (segment == ".") {
            trailingSlash = true; // "/a/." is "/a/"
        } else if (segment == "..") {
            if (!kept.isEmpty())
                kept.removeLast();
            trailingSlash = true;
        } else {
            kept.append(segment);
            trailingSlash = false;
        }
        start = end + 1;
    }
    QByteArray out;
    for (const QByteArrayView segment : std::as_const(kept)) {
        out += '/';
        out += segment;
    }
    if (trailingSlash || out.isEmpty())
        out += '/';
    return out;
}

bool hasDotSegment(QByteArrayView path) {
    for (qsizetype at = path.indexOf("/."); at >= 0; at = path.indexOf("/.", at + 1)) {
        const QByteArrayView rest = path.sliced(at + 2);
        if (rest.isEmpty() || rest.front() == '/' ||
            (rest.front() == '.' && (rest.size() == 1 || rest.at(1) == '/')))
            return true;
    }
    return false;
}

} // namespace

bool isAnthropicPath(QByteArrayView path) {
    if (hasDotSegment(path))
        return isAnthropicPath(withoutDotSegments(path));
    return path == AnthropicMessagesPath || path.startsWith("/v1/messages/") ||
           path == "/v1/complete";
}

bool isAnthropicTarget(QByteArrayView target) {
    // Cheap for the rest: without '%' nothing is decoded, and resolving dot segments makes no
    // new segment, so an Anthropic path has one of these words as it is.
    if (!target.contains('%') && !target.contains("messages") && !target.contains("complete"))
        return false;
    const QUrl url = QUrl::fromEncoded(target.toByteArray());
    return isAnthropicPath(url.path(QUrl::FullyEncoded).toUtf8());
}

bool isAnthropicRequestStart(QByteArrayView head) {
    while (!head.isEmpty() && (head.front() == '\r' || head.front() == '\n'))
        head = head.sliced(1);
    qsizetype lineEnd = head.size();
    for (qsizetype i = 0; i < head.size(); ++i) {
        if (head[i] == '\r' || head[i] == '\n') {
            lineEnd = i;
            break;
        }
    }
    const QByteArrayView line = head.first(lineEnd);
    // method SP+ target SP+ version, split as Qt's server splits it.
    qsizetype at = line.indexOf(' ');
    if (at < 0)
        return false;
    while (at < line.size() && line[at] == ' ')
        ++at;
    qsizetype end = line.indexOf(' ', at);
    if (end < 0)
        end = line.size();
    return isAnthropicTarget(line.sliced(at, end - at));
}

QByteArray anthropicErrorType(int status) {
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 408:
    case 504:
        return "timeout_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    case 501:
    case 505:
        return "invalid_request_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

HttpAnswer anthropicErrorAnswer(int status, const QString &message, QByteArrayView type) {
    const QByteArray typeName = type.isEmpty() ? anthropicErrorType(status) : type.toByteArray();
    const QJsonObject error{{QStringLiteral("type"), QString::fromLatin1(typeName)},
                            {QStringLiteral("message"), message}};
    HttpAnswer answer;
    answer.status = status;
    answer.body = QJsonDocument(QJsonObject{{QStringLiteral("type"), QStringLiteral("error")},
                                            {QStringLiteral("error"), error}})
                      .toJson(QJsonDocument::Compact);
    answer.synthesized = true;
    return answer;
}

HttpAnswer asAnthropicError(const HttpAnswer &answer) {
    // The proxy's own error bodies are small; a large body is a provider's, left alone.
    if (answer.status < 400 || answer.body.size() > 64 * 1024)
        return answer;
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(answer.body, &parseError);
    if (parseError.error != QJsonParseError::NoError || !document.isObject())
        return answer;
    const QJsonObject top = document.object();
    const QJsonValue error = top.value(QLatin1StringView("error"));
    // Anthropic's shape has "type":"error" at the top; OpenAI's has only "error".
    if (top.contains(QLatin1StringView("type")) || !error.isObject())
        return answer;
    QString message = error.toObject().value(QLatin1StringView("message")).toString();
    if (message.isEmpty())
        message = QStringLiteral("HTTP %1").arg(answer.status);
    HttpAnswer out = anthropicErrorAnswer(answer.status, message);
    out.headers = answer.headers;
    out.synthesized = answer.synthesized;
    return out;
}

} // namespace llmproxy
