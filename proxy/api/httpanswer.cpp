// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/httpanswer.h"

#include <QJsonDocument>
#include <QJsonObject>

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

} // namespace llmproxy
