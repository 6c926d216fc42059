// SPDX-License-Identifier: GPL-3.0-or-later
#include "fakemodel.h"

#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QRandomGenerator>
#include <QtEndian>

#include <atomic>
#include <cstring>

namespace llmproxy::test {

namespace {

using namespace Qt::StringLiterals;

std::atomic<quint64> s_idCounter{0};

QString textOfContent(const QJsonValue &content) {
    if (content.isString())
        return content.toString();
    QStringList texts;
    const QJsonArray parts = content.toArray();
    for (const QJsonValue &part : parts) {
        const QJsonValue text = part.toObject().value("text"_L1);
        if (text.isString())
            texts.append(text.toString());
    }
    return texts.join(u' ');
}

int tokenCount(const QString &text) {
    return std::max<int>(1, static_cast<int>(text.split(u' ', Qt::SkipEmptyParts).size()));
}

QJsonObject badRequest(const QString &message, const QJsonValue &param,
                       const QJsonValue &code = QJsonValue::Null) {
    return openAiError(message, u"invalid_request_error"_s, param, code);
}

QJsonObject missingParameter(const QString &name) {
    return badRequest(u"Missing required parameter: '%1'."_s.arg(name), name,
                      u"missing_required_parameter"_s);
}

QJsonObject chatUsage(int prompt, int completion) {
    return QJsonObject{{"prompt_tokens"_L1, prompt},
                       {"completion_tokens"_L1, completion},
                       {"total_tokens"_L1, prompt + completion}};
}

// The reply text and prompt size of a chat body, or an error answer.
struct ChatInput {
    QString reply;
    int promptTokens = 0;
};

std::optional<ChatInput> chatInput(const QJsonObject &body, ModelAnswer *error) {
    if (!body.value("model"_L1).isString()) {
        *error = {400, missingParameter(u"model"_s)};
        return std::nullopt;
    }
    const QJsonArray messages = body.value("messages"_L1).toArray();
    if (messages.isEmpty()) {
        *error = {400, missingParameter(u"messages"_s)};
        return std::nullopt;
    }
    ChatInput input;
    for (const QJsonValue &message : messages)
        input.promptTokens += tokenCount(textOfContent(message.toObject().value("content"_L1)));
    input.reply = u"echo: "_s + textOfContent(messages.last().toObject().value("content"_L1));
    return input;
}

ModelAnswer chatCompletion(const QJsonObject &body, qint64 now) {
    ModelAnswer error;
    const std::optional<ChatInput> input = chatInput(body, &error);
    if (!input)
        return error;
    QJsonObject message{{"role"_L1, "assistant"_L1},
                        {"content"_L1, input->reply},
                        {"refusal"_L1, QJsonValue::Null},
                        {"annotations"_L1, QJsonArray()}};
    QString finishReason = u"stop"_s;
    // With tools and "tool_choice": "required", the first tool is called with the reply as its
    // argument: {"text": "echo: ..."}.
    const QJsonArray tools = body.value("tools"_L1).toArray();
    if (!tools.isEmpty() && body.value("tool_choice"_L1).toString() == "required"_L1) {
        const QString name =
            tools.first().toObject().value("function"_L1).toObject().value("name"_L1).toString();
        const QJsonObject call{
            {"id"_L1, QString::fromLatin1(fakeId("call_"))},
            {"type"_L1, "function"_L1},
            {"function"_L1,
             QJsonObject{{"name"_L1, name},
                         {"arguments"_L1,
                          QString::fromUtf8(QJsonDocument(QJsonObject{{"text"_L1, input->reply}})
                                                .toJson(QJsonDocument::Compact))}}}};
        message.insert("content"_L1, QJsonValue::Null);
        message.insert("tool_calls"_L1, QJsonArray{call});
        finishReason = u"tool_calls"_s;
    }
    const QJsonObject choice{{"index"_L1, 0},
                             {"message"_L1, message},
                             {"logprobs"_L1, QJsonValue::Null},
                             {"finish_reason"_L1, finishReason}};
    return {200, QJsonObject{{"id"_L1, QString::fromLatin1(fakeId("chatcmpl-"))},
                             {"object"_L1, "chat.completion"_L1},
                             {"created"_L1, now},
                             {"model"_L1, body.value("model"_L1)},
                             {"choices"_L1, QJsonArray{choice}},
                             {"usage"_L1, chatUsage(input->promptTokens, tokenCount(input->reply))},
                             {"service_tier"_L1, "default"_L1},
                             {"system_fingerprint"_L1, "fp_fake"_L1}}};
}

// The texts to embed: a string, an array of strings, one token array, or an array of them.
QList<QByteArray> embeddingInputs(const QJsonValue &input) {
    if (input.isString())
        return {input.toString().toUtf8()};
    const QJsonArray items = input.toArray();
    if (items.isEmpty())
        return {};
    if (items.first().isDouble())
        return {QJsonDocument(items).toJson(QJsonDocument::Compact)};
    QList<QByteArray> texts;
    for (const QJsonValue &item : items) {
        if (item.isString())
            texts.append(item.toString().toUtf8());
        else if (item.isArray())
            texts.append(QJsonDocument(item.toArray()).toJson(QJsonDocument::Compact));
        else
            return {};
    }
    return texts;
}

ModelAnswer embeddings(const QJsonObject &body) {
    if (!body.value("model"_L1).isString())
        return {400, missingParameter(u"model"_s)};
    const QList<QByteArray> inputs = embeddingInputs(body.value("input"_L1));
    if (inputs.isEmpty())
        return {400, badRequest(u"'input' must be a non-empty string or array."_s, u"input"_s)};
    const bool base64 = body.value("encoding_format"_L1).toString() == "base64"_L1;
    QJsonArray data;
    int tokens = 0;
    for (qsizetype i = 0; i < inputs.size(); ++i) {
        const QList<float> vector = fakeEmbedding(inputs.at(i));
        QJsonValue embedding;
        if (base64) {
            QByteArray raw;
            for (float f : vector) {
                quint32 bits = 0;
                std::memcpy(&bits, &f, sizeof bits);
                bits = qToLittleEndian(bits);
                raw.append(reinterpret_cast<const char *>(&bits), sizeof bits);
            }
            embedding = QString::fromLatin1(raw.toBase64());
        } else {
            QJsonArray floats;
            for (float f : vector)
                floats.append(static_cast<double>(f));
            embedding = floats;
        }
        data.append(QJsonObject{{"object"_L1, "embedding"_L1},
                                {"index"_L1, static_cast<int>(i)},
                                {"embedding"_L1, embedding}});
        tokens += tokenCount(QString::fromUtf8(inputs.at(i)));
    }
    return {200, QJsonObject{{"object"_L1, "list"_L1},
                             {"data"_L1, data},
                             {"model"_L1, body.value("model"_L1)},
                             {"usage"_L1, QJsonObject{{"prompt_tokens"_L1, tokens},
                                                      {"total_tokens"_L1, tokens}}}}};
}

ModelAnswer completion(const QJsonObject &body, qint64 now) {
    if (!body.value("model"_L1).isString())
        return {400, missingParameter(u"model"_s)};
    const QJsonValue prompt = body.value("prompt"_L1);
    const QString text = prompt.isArray() ? prompt.toArray().first().toString() : prompt.toString();
    const QString reply = u"echo: "_s + text;
    const QJsonObject choice{{"text"_L1, reply},
                             {"index"_L1, 0},
                             {"logprobs"_L1, QJsonValue::Null},
                             {"finish_reason"_L1, "stop"_L1}};
    return {200, QJsonObject{{"id"_L1, QString::fromLatin1(fakeId("cmpl-"))},
                             {"object"_L1, "text_completion"_L1},
                             {"created"_L1, now},
                             {"model"_L1, body.value("model"_L1)},
                             {"choices"_L1, QJsonArray{choice}},
                             {"usage"_L1, chatUsage(tokenCount(text), tokenCount(reply))}}};
}

ModelAnswer response(const QJsonObject &body, qint64 now) {
    if (!body.value("model"_L1).isString())
        return {400, missingParameter(u"model"_s)};
    const QJsonValue input = body.value("input"_L1);
    const QString text = input.isArray()
                             ? textOfContent(input.toArray().last().toObject().value("content"_L1))
                             : input.toString();
    const QString reply = u"echo: "_s + text;
    const int in = tokenCount(text);
    const int out = tokenCount(reply);
    const QJsonObject content{
        {"type"_L1, "output_text"_L1}, {"text"_L1, reply}, {"annotations"_L1, QJsonArray()}};
    const QJsonObject message{{"type"_L1, "message"_L1},
                              {"id"_L1, QString::fromLatin1(fakeId("msg_"))},
                              {"status"_L1, "completed"_L1},
                              {"role"_L1, "assistant"_L1},
                              {"content"_L1, QJsonArray{content}}};
    const QJsonObject usage{{"input_tokens"_L1, in},
                            {"input_tokens_details"_L1, QJsonObject{{"cached_tokens"_L1, 0}}},
                            {"output_tokens"_L1, out},
                            {"output_tokens_details"_L1, QJsonObject{{"reasoning_tokens"_L1, 0}}},
                            {"total_tokens"_L1, in + out}};
    return {200, QJsonObject{{"id"_L1, QString::fromLatin1(fakeId("resp_"))},
                             {"object"_L1, "response"_L1},
                             {"created_at"_L1, now},
                             {"status"_L1, "completed"_L1},
                             {"model"_L1, body.value("model"_L1)},
                             {"output"_L1, QJsonArray{message}},
                             {"output_text"_L1, reply},
                             {"error"_L1, QJsonValue::Null},
                             {"incomplete_details"_L1, QJsonValue::Null},
                             {"instructions"_L1, QJsonValue::Null},
                             {"metadata"_L1, QJsonObject()},
                             {"parallel_tool_calls"_L1, true},
                             {"temperature"_L1, 1.0},
                             {"tool_choice"_L1, "auto"_L1},
                             {"tools"_L1, QJsonArray()},
                             {"top_p"_L1, 1.0},
                             {"usage"_L1, usage}}};
}

ModelAnswer moderation(const QJsonObject &body) {
    const QJsonValue input = body.value("input"_L1);
    if (input.isUndefined() || input.isNull())
        return {400, missingParameter(u"input"_s)};
    static const char *const categoryNames[] = {"hate",
                                                "hate/threatening",
                                                "harassment",
                                                "harassment/threatening",
                                                "illicit",
                                                "illicit/violent",
                                                "self-harm",
                                                "self-harm/intent",
                                                "self-harm/instructions",
                                                "sexual",
                                                "sexual/minors",
                                                "violence",
                                                "violence/graphic"};
    QJsonObject categories;
    QJsonObject scores;
    QJsonObject applied;
    for (const char *name : categoryNames) {
        const QString key = QString::fromLatin1(name);
        categories.insert(key, false);
        scores.insert(key, 0.0);
        applied.insert(key, QJsonArray{"text"_L1});
    }
    const QJsonObject result{{"flagged"_L1, false},
                             {"categories"_L1, categories},
                             {"category_scores"_L1, scores},
                             {"category_applied_input_types"_L1, applied}};
    const qsizetype count = input.isArray() ? std::max<qsizetype>(1, input.toArray().size()) : 1;
    QJsonArray results;
    for (qsizetype i = 0; i < count; ++i)
        results.append(result);
    const QJsonValue model = body.value("model"_L1);
    return {200, QJsonObject{{"id"_L1, QString::fromLatin1(fakeId("modr-"))},
                             {"model"_L1,
                              model.isString() ? model : QJsonValue("omni-moderation-latest"_L1)},
                             {"results"_L1, results}}};
}

QByteArray sseEvent(const QJsonObject &object) {
    return QByteArrayLiteral("data: ") + QJsonDocument(object).toJson(QJsonDocument::Compact) +
           QByteArrayLiteral("\n\n");
}

} // namespace

QByteArray fakeId(QByteArrayView prefix) {
    const quint64 serial = ++s_idCounter;
    const quint64 noise = QRandomGenerator::global()->generate64();
    return prefix.toByteArray() + QByteArray::number(serial, 16).rightJustified(8, '0') +
           QByteArray::number(noise, 16).rightJustified(16, '0');
}

QJsonObject openAiError(const QString &message, const QString &type, const QJsonValue &param,
                        const QJsonValue &code) {
    return QJsonObject{{"error"_L1, QJsonObject{{"message"_L1, message},
                                                {"type"_L1, type},
                                                {"param"_L1, param},
                                                {"code"_L1, code}}}};
}

QJsonObject openAiErrorForStatus(int status, const QString &message) {
    if (status == 401)
        return openAiError(message, u"invalid_request_error"_s, QJsonValue::Null,
                           u"invalid_api_key"_s);
    if (status == 429)
        return openAiError(message, u"requests"_s, QJsonValue::Null, u"rate_limit_exceeded"_s);
    if (status >= 500)
        return openAiError(message, u"server_error"_s);
    return openAiError(message, u"invalid_request_error"_s);
}

std::optional<int> scriptedStatus(QByteArrayView text) {
    const QByteArrayView tag("[[status:");
    const qsizetype start = text.indexOf(tag);
    if (start < 0)
        return std::nullopt;
    const qsizetype end = text.indexOf(QByteArrayView("]]"), start);
    if (end < 0)
        return std::nullopt;
    bool ok = false;
    const int status = text.sliced(start + tag.size(), end - start - tag.size()).toInt(&ok);
    if (!ok || status < 100 || status > 599)
        return std::nullopt;
    return status;
}

QByteArray scriptedErrorCode(QByteArrayView text) {
    const QByteArrayView tag("[[error:");
    const qsizetype start = text.indexOf(tag);
    if (start < 0)
        return {};
    const qsizetype end = text.indexOf(QByteArrayView("]]"), start);
    if (end < 0)
        return {};
    return text.sliced(start + tag.size(), end - start - tag.size()).toByteArray();
}

bool scriptedOmit(QByteArrayView text) {
    return text.contains(QByteArrayView("[[omit]]"));
}

qint64 scriptedResultBytes(QByteArrayView text) {
    const QByteArrayView tag("[[result_bytes:");
    const qsizetype start = text.indexOf(tag);
    if (start < 0)
        return 0;
    const qsizetype end = text.indexOf(QByteArrayView("]]"), start);
    if (end < 0)
        return 0;
    bool ok = false;
    const qint64 bytes = text.sliced(start + tag.size(), end - start - tag.size()).toLongLong(&ok);
    return ok && bytes > 0 ? bytes : 0;
}

bool scriptedRequestIdCrlf(QByteArrayView text) {
    return text.contains(QByteArrayView("[[request_id_crlf]]"));
}

bool scriptedCustomIdLast(QByteArrayView text) {
    return text.contains(QByteArrayView("[[custom_id_last]]"));
}

QString batchLineErrorMessage(const QByteArray &code) {
    if (code == "batch_expired")
        return u"This request could not be executed before the completion window expired."_s;
    if (code == "batch_cancelled")
        return u"This request was not executed because the batch was cancelled."_s;
    if (code == "request_timeout")
        return u"The request timed out."_s;
    return u"Scripted error '%1' from the fake provider."_s.arg(QString::fromUtf8(code));
}

ModelAnswer runFakeModel(QByteArrayView endpoint, const QJsonObject &body, qint64 now) {
    const QByteArray text = QJsonDocument(body).toJson(QJsonDocument::Compact);
    if (const std::optional<int> status = scriptedStatus(text); status && *status >= 400)
        return {*status, openAiErrorForStatus(
                             *status, u"Scripted HTTP %1 from the fake provider."_s.arg(*status))};
    if (endpoint == "/v1/chat/completions")
        return chatCompletion(body, now);
    if (endpoint == "/v1/embeddings")
        return embeddings(body);
    if (endpoint == "/v1/completions")
        return completion(body, now);
    if (endpoint == "/v1/responses")
        return response(body, now);
    if (endpoint == "/v1/moderations")
        return moderation(body);
    return {400, badRequest(u"The fake provider does not implement %1."_s.arg(
                                QString::fromUtf8(endpoint.toByteArray())),
                            QJsonValue::Null)};
}

QList<QByteArray> chatCompletionStreamEvents(const QJsonObject &body, qint64 now) {
    ModelAnswer error;
    const std::optional<ChatInput> input = chatInput(body, &error);
    if (!input)
        return {};
    const QString id = QString::fromLatin1(fakeId("chatcmpl-"));
    const bool includeUsage =
        body.value("stream_options"_L1).toObject().value("include_usage"_L1).toBool();
    auto chunk = [&](const QJsonObject &delta, const QJsonValue &finishReason) {
        QJsonObject object{
            {"id"_L1, id},
            {"object"_L1, "chat.completion.chunk"_L1},
            {"created"_L1, now},
            {"model"_L1, body.value("model"_L1)},
            {"system_fingerprint"_L1, "fp_fake"_L1},
            {"choices"_L1, QJsonArray{QJsonObject{{"index"_L1, 0},
                                                  {"delta"_L1, delta},
                                                  {"logprobs"_L1, QJsonValue::Null},
                                                  {"finish_reason"_L1, finishReason}}}}};
        if (includeUsage)
            object.insert("usage"_L1, QJsonValue::Null);
        return sseEvent(object);
    };

    QList<QByteArray> events;
    events.append(chunk(QJsonObject{{"role"_L1, "assistant"_L1},
                                    {"content"_L1, ""_L1},
                                    {"refusal"_L1, QJsonValue::Null}},
                        QJsonValue::Null));
    const QStringList words = input->reply.split(u' ');
    for (qsizetype i = 0; i < words.size(); ++i) {
        const QString piece = i == 0 ? words.at(i) : u" "_s + words.at(i);
        events.append(chunk(QJsonObject{{"content"_L1, piece}}, QJsonValue::Null));
    }
    events.append(chunk(QJsonObject(), "stop"_L1));
    if (includeUsage) {
        events.append(sseEvent(
            QJsonObject{{"id"_L1, id},
                        {"object"_L1, "chat.completion.chunk"_L1},
                        {"created"_L1, now},
                        {"model"_L1, body.value("model"_L1)},
                        {"choices"_L1, QJsonArray()},
                        {"usage"_L1, chatUsage(input->promptTokens, tokenCount(input->reply))}}));
    }
    events.append(QByteArrayLiteral("data: [DONE]\n\n"));
    return events;
}

QList<float> fakeEmbedding(const QByteArray &input) {
    const QByteArray hash = QCryptographicHash::hash(input, QCryptographicHash::Sha256);
    QList<float> vector;
    for (int i = 0; i < 8; ++i) {
        const int k =
            (static_cast<uchar>(hash.at(2 * i)) << 8) | static_cast<uchar>(hash.at(2 * i + 1));
        vector.append(static_cast<float>(k - 32768) / 32768.0f);
    }
    return vector;
}

} // namespace llmproxy::test
