// SPDX-License-Identifier: GPL-3.0-or-later
#include "api/httpanswer.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace llmproxy {

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
