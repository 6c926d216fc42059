// SPDX-License-Identifier: GPL-3.0-or-later
#include "chatworkload.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonParseError>

namespace llmproxy::bench {

ChatWorkload::ChatWorkload(quint16 port, int messageBytes, bool stream)
    : m_port(port)
    , m_messageBytes(messageBytes)
    , m_stream(stream) {}

QByteArray ChatWorkload::message(int index) const {
    static constexpr char Alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static constexpr int AlphabetSize = sizeof Alphabet - 1;
    QByteArray text = "bench request " + QByteArray::number(index) + ' ';
    const qsizetype prefix = text.size();
    if (prefix < m_messageBytes)
        text.resize(m_messageBytes);
    for (qsizetype i = prefix; i < text.size(); ++i)
        text[i] = Alphabet[(index * 7 + i * 13 + index / AlphabetSize) % AlphabetSize];
    return text;
}

QByteArray ChatWorkload::httpRequest(int index) const {
    const QByteArray body =
        QByteArrayLiteral("{\"model\":\"") + Model +
        QByteArrayLiteral("\",\"messages\":[{\"role\":\"user\",\"content\":\"") + message(index) +
        QByteArrayLiteral("\"}]") + (m_stream ? QByteArrayLiteral(",\"stream\":true}") : "}");
    QByteArray request;
    request.reserve(body.size() + 256);
    request += "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:";
    request += QByteArray::number(m_port);
    request += "\r\nAuthorization: Bearer ";
    request += ApiKey;
    request += "\r\nContent-Type: application/json\r\nContent-Length: ";
    request += QByteArray::number(body.size());
    request += "\r\n\r\n";
    request += body;
    return request;
}

QByteArray ChatWorkload::verify(int index, int status, const QByteArray &body) const {
    const auto snippet = [&body] { return body.left(160).replace('\n', ' '); };
    if (status != 200)
        return "status " + QByteArray::number(status) + ": " + snippet();
    if (m_stream) {
        // The replay: chat.completion.chunk events whose deltas join to the answer, then [DONE].
        QByteArray text;
        bool done = false;
        for (const QByteArray &line : body.split('\n')) {
            if (!line.startsWith("data: "))
                continue;
            const QByteArray data = line.sliced(6);
            if (data == "[DONE]") {
                done = true;
                continue;
            }
            const QJsonObject chunk = QJsonDocument::fromJson(data).object();
            if (chunk.contains(QLatin1StringView("error")))
                return "an error event: " + data.left(160);
            text += chunk.value(QLatin1StringView("choices"))
                        .toArray()
                        .at(0)
                        .toObject()
                        .value(QLatin1StringView("delta"))
                        .toObject()
                        .value(QLatin1StringView("content"))
                        .toString()
                        .toUtf8();
        }
        if (!done)
            return "the stream has no [DONE]: " + snippet();
        if (text != "echo: " + message(index))
            return "wrong streamed content (another request's answer?): " + text.left(80);
        return {};
    }
    QJsonParseError error{};
    const QJsonDocument document = QJsonDocument::fromJson(body, &error);
    if (error.error != QJsonParseError::NoError || !document.isObject())
        return "the body is not a JSON object: " + snippet();
    const QJsonObject root = document.object();
    if (root.value(QLatin1StringView("object")).toString() != QLatin1StringView("chat.completion"))
        return "not a chat.completion: " + snippet();
    const QJsonValue content = root.value(QLatin1StringView("choices"))
                                   .toArray()
                                   .at(0)
                                   .toObject()
                                   .value(QLatin1StringView("message"))
                                   .toObject()
                                   .value(QLatin1StringView("content"));
    const QByteArray expected = "echo: " + message(index);
    if (!content.isString())
        return "no choices[0].message.content: " + snippet();
    if (content.toString().toUtf8() != expected)
        return "wrong content (another request's answer?): " + content.toString().toUtf8().left(80);
    return {};
}

} // namespace llmproxy::bench
