// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QJsonObject>
#include <QJsonValue>
#include <QList>
#include <QString>

#include <optional>

// The deterministic "model" behind the fake OpenAI provider: the same request body always gives
// the same answer (apart from ids and timestamps), so tests can predict every result.
namespace llmproxy::test {

// A unique id with an OpenAI-like prefix: "file-", "batch_", "req_", "chatcmpl-", ...
QByteArray fakeId(QByteArrayView prefix);

// {"error":{"message","type","param","code"}} as OpenAI sends it.
QJsonObject openAiError(const QString &message, const QString &type,
                        const QJsonValue &param = QJsonValue::Null,
                        const QJsonValue &code = QJsonValue::Null);
// The error body OpenAI uses for a status code (type/code chosen from the status).
QJsonObject openAiErrorForStatus(int status, const QString &message);

// Magic strings a test writes into a request body to script its outcome.
std::optional<int> scriptedStatus(QByteArrayView text); // [[status:N]]
QByteArray scriptedErrorCode(QByteArrayView text);      // [[error:code]] → "code"
bool scriptedOmit(QByteArrayView text);                 // [[omit]]
// [[result_bytes:N]]: the batch result line is padded to at least N bytes (0 when absent).
qint64 scriptedResultBytes(QByteArrayView text);
// [[request_id_crlf]]: the batch result line's request_id has an escaped CR LF and a header.
bool scriptedRequestIdCrlf(QByteArrayView text);
// [[custom_id_last]]: the batch result line has its custom_id last, after the response.
bool scriptedCustomIdLast(QByteArrayView text);
QString batchLineErrorMessage(const QByteArray &code);

struct ModelAnswer {
    int status = 200;
    QJsonObject body;
};

// Answers one request body for an endpoint ("/v1/chat/completions", ...). A scripted
// [[status:N]] with N >= 400 gives that status and an OpenAI error body.
ModelAnswer runFakeModel(QByteArrayView endpoint, const QJsonObject &body, qint64 now);

// The SSE events ("data: {...}\n\n", ending with "data: [DONE]\n\n") streaming the same
// answer as runFakeModel gives for a chat completion.
QList<QByteArray> chatCompletionStreamEvents(const QJsonObject &body, qint64 now);

// The embedding the fake gives for one input: 8 floats derived from a SHA-256 of the text,
// each exactly representable as a float32, so base64 and float answers agree.
QList<float> fakeEmbedding(const QByteArray &input);

} // namespace llmproxy::test
