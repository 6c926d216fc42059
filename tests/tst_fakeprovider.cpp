// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of the fake OpenAI provider fixture: it must behave like OpenAI's Files + Batches API
// (shapes checked against the OpenAPI spec), or tests built on it prove nothing.
#include "fakemodel.h"
#include "fakeprovider.h"
#include "multipart.h"
#include "testmain.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QHttpMultiPart>
#include <QJsonArray>
#include <QJsonDocument>
#include <QNetworkAccessManager>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QProcess>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTcpSocket>
#include <QTest>
#include <QtEndian>

#include <cstring>
#include <optional>

using namespace std::chrono_literals;
using namespace Qt::StringLiterals;
using llmproxy::test::FakeProvider;
using Headers = QList<QPair<QByteArray, QByteArray>>;

namespace {

struct HttpResult {
    int status = 0;
    QNetworkReply::NetworkError error = QNetworkReply::NoError;
    QByteArray body;
    QList<QNetworkReply::RawHeaderPair> headers;

    QJsonObject json() const { return QJsonDocument::fromJson(body).object(); }
    QByteArray header(QByteArrayView name) const {
        for (const auto &[key, value] : headers) {
            if (key.compare(name, Qt::CaseInsensitive) == 0)
                return value;
        }
        return {};
    }
};

struct Shape {
    QStringList required;
    QStringList properties;
};

int indentOf(const QByteArray &line) {
    int n = 0;
    while (n < line.size() && line.at(n) == ' ')
        ++n;
    return n;
}

// Just enough YAML to read one schema of components.schemas in openai-openapi.yaml: the
// schema's own `required:` list and the names under its own `properties:`.
std::optional<Shape> yamlSchema(const QList<QByteArray> &lines, const QByteArray &name) {
    const qsizetype start = lines.indexOf(QByteArrayLiteral("    ") + name + ':');
    if (start < 0)
        return std::nullopt;
    Shape shape;
    QByteArray section;
    for (qsizetype i = start + 1; i < lines.size(); ++i) {
        const QByteArray &line = lines.at(i);
        const QByteArray text = line.trimmed();
        if (text.isEmpty())
            continue;
        const int indent = indentOf(line);
        if (indent <= 4)
            break;
        if (section == "required" && (indent == 6 || indent == 8) && text.startsWith("- ")) {
            shape.required.append(QString::fromUtf8(text.mid(2).trimmed()));
        } else if (indent == 6) {
            section = text.left(text.indexOf(':'));
            const QByteArray rest = text.mid(section.size() + 1).trimmed();
            if (section == "required" && rest.startsWith('[')) { // flow style
                for (const QByteArray &item : rest.mid(1, rest.size() - 2).split(','))
                    shape.required.append(QString::fromUtf8(item.trimmed()));
            }
        } else if (indent == 8 && section == "properties" && !text.startsWith('-') &&
                   text.contains(':')) {
            shape.properties.append(QString::fromUtf8(text.left(text.indexOf(':'))));
        }
    }
    return shape;
}

QString sourceDir() {
    const QString env = qEnvironmentVariable("LLMPROXY_SOURCE_DIR");
    return env.isEmpty() ? QFileInfo(QStringLiteral(__FILE__)).absolutePath() + u"/.."_s : env;
}

QString specPath() {
    const QString env = qEnvironmentVariable("LLMPROXY_SHARED_DIR");
    const QString shared = env.isEmpty() ? sourceDir() + u"/../shared"_s : env;
    return shared + u"/reference/openai-openapi.yaml"_s;
}

QJsonObject chatLine(const QString &customId, const QString &content,
                     const QString &model = u"gpt-4o-mini"_s) {
    return QJsonObject{
        {"custom_id"_L1, customId},
        {"method"_L1, "POST"_L1},
        {"url"_L1, "/v1/chat/completions"_L1},
        {"body"_L1,
         QJsonObject{{"model"_L1, model},
                     {"messages"_L1,
                      QJsonArray{QJsonObject{{"role"_L1, "user"_L1}, {"content"_L1, content}}}}}}};
}

QByteArray jsonl(const QList<QJsonObject> &lines) {
    QByteArray out;
    for (const QJsonObject &line : lines)
        out += QJsonDocument(line).toJson(QJsonDocument::Compact) + '\n';
    return out;
}

QStringList sorted(QStringList list) {
    list.sort();
    return list;
}

} // namespace

class tst_FakeProvider final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void vendoredSchemasMatchSpec();
    void multipartParser();
    void unauthorized_data();
    void unauthorized();
    void fullLifecycle();
    void magicStrings_data();
    void magicStrings();
    void uploadValidation_data();
    void uploadValidation();
    void fileEndpoints();
    void createValidation_data();
    void createValidation();
    void failedValidation_data();
    void failedValidation();
    void scriptedBatchFailure();
    void faults_data();
    void faults();
    void dropConnection();
    void listPagination();
    void cancel();
    void cancelWhileValidating();
    void expire();
    void neverFinish();
    void syncEndpoints();
    void sseStream();
    void clientGoneDuringStreamAndDelay();
    void echo_data();
    void echo();
    void observation();
    void controlOverHttp();
    void executable();

private:
    QUrl v1(const QString &path) const { return QUrl(m_fake->baseUrl().toString() + path); }
    QUrl control(const QString &path) const {
        return QUrl(u"http://127.0.0.1:%1/_fake/%2"_s.arg(m_fake->port()).arg(path));
    }
    HttpResult finish(QNetworkReply *reply);
    HttpResult call(const QByteArray &method, const QUrl &url, const QByteArray &body = {},
                    const Headers &headers = {}, bool auth = true);
    HttpResult upload(const QByteArray &content, const QByteArray &purpose = "batch",
                      const QString &fileName = u"input.jsonl"_s);
    QString uploadId(const QByteArray &content);
    HttpResult createBatch(const QString &fileId,
                           const QString &endpoint = u"/v1/chat/completions"_s,
                           const QJsonObject &extra = {});
    QJsonObject waitUntil(const QString &batchId, const QStringList &statuses,
                          int timeoutMs = 5000);
    QJsonObject runBatch(const QByteArray &content);
    QHash<QString, QJsonObject> resultLines(const QJsonValue &fileId, QStringList *order = nullptr);
    QString shapeError(const QJsonValue &value, const QString &schema) const;

    QNetworkAccessManager *m_nam = nullptr;
    std::unique_ptr<FakeProvider> m_fake;
    QHash<QString, Shape> m_schemas;
    const QByteArray m_key = QByteArrayLiteral("sk-test-key-1");
};

void tst_FakeProvider::initTestCase() {
    m_nam = new QNetworkAccessManager(this);
    m_nam->setProxy(QNetworkProxy::NoProxy);
    QFile file(sourceDir() + u"/tests/data/openai-schemas.json"_s);
    if (!file.exists())
        file.setFileName(QFINDTESTDATA("data/openai-schemas.json"));
    QVERIFY2(file.open(QIODevice::ReadOnly), qPrintable(file.fileName()));
    const QJsonObject schemas =
        QJsonDocument::fromJson(file.readAll()).object().value("schemas"_L1).toObject();
    QVERIFY(schemas.size() >= 10);
    for (auto it = schemas.begin(); it != schemas.end(); ++it) {
        const QJsonObject s = it.value().toObject();
        Shape shape;
        for (const QJsonValue &v : s.value("required"_L1).toArray())
            shape.required.append(v.toString());
        for (const QJsonValue &v : s.value("properties"_L1).toArray())
            shape.properties.append(v.toString());
        m_schemas.insert(it.key(), shape);
    }
}

void tst_FakeProvider::init() {
    m_fake = std::make_unique<FakeProvider>();
    QVERIFY(m_fake->listen());
    QVERIFY(m_fake->port() != 0);
    m_fake->setValidationDelay(10ms);
    m_fake->setProcessingDelay(20ms);
    m_fake->setFinalizingDelay(5ms);
    m_fake->setCancelDelay(5ms);
}

void tst_FakeProvider::cleanup() {
    m_fake.reset();
}

HttpResult tst_FakeProvider::finish(QNetworkReply *reply) {
    if (!reply->isFinished()) {
        QSignalSpy spy(reply, &QNetworkReply::finished);
        spy.wait(10000);
    }
    HttpResult result;
    result.status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    result.error = reply->error();
    result.body = reply->readAll();
    result.headers = reply->rawHeaderPairs();
    reply->deleteLater();
    return result;
}

HttpResult tst_FakeProvider::call(const QByteArray &method, const QUrl &url, const QByteArray &body,
                                  const Headers &headers, bool auth) {
    QNetworkRequest request(url);
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    if (auth)
        request.setRawHeader("Authorization", "Bearer " + m_key);
    if (!body.isEmpty())
        request.setHeader(QNetworkRequest::ContentTypeHeader,
                          QByteArrayLiteral("application/json"));
    for (const auto &[key, value] : headers)
        request.setRawHeader(key, value);
    return finish(m_nam->sendCustomRequest(request, method, body));
}

HttpResult tst_FakeProvider::upload(const QByteArray &content, const QByteArray &purpose,
                                    const QString &fileName) {
    auto *multipart = new QHttpMultiPart(QHttpMultiPart::FormDataType);
    QHttpPart purposePart;
    purposePart.setHeader(QNetworkRequest::ContentDispositionHeader,
                          QByteArrayLiteral("form-data; name=\"purpose\""));
    purposePart.setBody(purpose);
    QHttpPart filePart;
    filePart.setHeader(
        QNetworkRequest::ContentDispositionHeader,
        QByteArray("form-data; name=\"file\"; filename=\"" + fileName.toUtf8() + "\""));
    filePart.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/jsonl"));
    filePart.setBody(content);
    multipart->append(purposePart);
    multipart->append(filePart);
    QNetworkRequest request(v1(u"/files"_s));
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    request.setRawHeader("Authorization", "Bearer " + m_key);
    QNetworkReply *reply = m_nam->post(request, multipart);
    multipart->setParent(reply);
    return finish(reply);
}

QString tst_FakeProvider::uploadId(const QByteArray &content) {
    const HttpResult result = upload(content);
    return result.status == 200 ? result.json().value("id"_L1).toString() : QString();
}

HttpResult tst_FakeProvider::createBatch(const QString &fileId, const QString &endpoint,
                                         const QJsonObject &extra) {
    QJsonObject body{{"input_file_id"_L1, fileId},
                     {"endpoint"_L1, endpoint},
                     {"completion_window"_L1, "24h"_L1}};
    for (auto it = extra.begin(); it != extra.end(); ++it)
        body.insert(it.key(), it.value());
    return call("POST", v1(u"/batches"_s), QJsonDocument(body).toJson(QJsonDocument::Compact));
}

// Polls GET /v1/batches/{id} the way a client would, until one of `statuses`.
QJsonObject tst_FakeProvider::waitUntil(const QString &batchId, const QStringList &statuses,
                                        int timeoutMs) {
    QElapsedTimer timer;
    timer.start();
    QJsonObject batch;
    while (timer.elapsed() < timeoutMs) {
        batch = call("GET", v1(u"/batches/"_s + batchId)).json();
        if (statuses.contains(batch.value("status"_L1).toString()))
            return batch;
        QTest::qWait(10);
    }
    return batch;
}

QJsonObject tst_FakeProvider::runBatch(const QByteArray &content) {
    const QString fileId = uploadId(content);
    const QString batchId = createBatch(fileId).json().value("id"_L1).toString();
    return waitUntil(batchId, {u"completed"_s, u"failed"_s, u"expired"_s, u"cancelled"_s});
}

QHash<QString, QJsonObject> tst_FakeProvider::resultLines(const QJsonValue &fileId,
                                                          QStringList *order) {
    QHash<QString, QJsonObject> lines;
    if (!fileId.isString())
        return lines;
    const HttpResult result = call("GET", v1(u"/files/%1/content"_s.arg(fileId.toString())));
    for (const QByteArray &line : result.body.split('\n')) {
        if (line.isEmpty())
            continue;
        const QJsonObject object = QJsonDocument::fromJson(line).object();
        lines.insert(object.value("custom_id"_L1).toString(), object);
        if (order)
            order->append(object.value("custom_id"_L1).toString());
    }
    return lines;
}

// Every required field of the schema is present and every field is one the schema knows;
// nested objects with their own schema are checked too. Empty when the value fits.
QString tst_FakeProvider::shapeError(const QJsonValue &value, const QString &schema) const {
    if (!m_schemas.contains(schema))
        return u"no vendored schema %1"_s.arg(schema);
    if (!value.isObject())
        return u"%1: not an object"_s.arg(schema);
    const QJsonObject object = value.toObject();
    const Shape &shape = m_schemas[schema];
    for (const QString &field : shape.required) {
        if (!object.contains(field))
            return u"%1: required field '%2' missing"_s.arg(schema, field);
    }
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (!shape.properties.contains(it.key()))
            return u"%1: unknown field '%2'"_s.arg(schema, it.key());
    }
    const auto nested = [&](const QJsonValue &child, const QString &childSchema) -> QString {
        if (child.isObject())
            return shapeError(child, childSchema);
        for (const QJsonValue &item : child.toArray()) {
            if (const QString error = shapeError(item, childSchema); !error.isEmpty())
                return error;
        }
        return {};
    };
    static const QMultiHash<QString, QPair<QString, QString>> children{
        {u"Batch"_s, {u"request_counts"_s, u"BatchRequestCounts"_s}},
        {u"ListBatchesResponse"_s, {u"data"_s, u"Batch"_s}},
        {u"CreateEmbeddingResponse"_s, {u"data"_s, u"Embedding"_s}},
        {u"ListModelsResponse"_s, {u"data"_s, u"Model"_s}},
        {u"ErrorResponse"_s, {u"error"_s, u"Error"_s}},
        {u"CreateChatCompletionResponse"_s, {u"usage"_s, u"CompletionUsage"_s}},
        {u"CreateCompletionResponse"_s, {u"usage"_s, u"CompletionUsage"_s}}};
    for (auto it = children.find(schema); it != children.end() && it.key() == schema; ++it) {
        if (const QString error = nested(object.value(it->first), it->second); !error.isEmpty())
            return error;
    }
    if (schema == "Batch"_L1 && object.value("errors"_L1).isObject())
        return nested(object.value("errors"_L1).toObject().value("data"_L1), u"BatchError"_s);
    if (schema == "CreateChatCompletionResponse"_L1) {
        for (const QJsonValue &choice : object.value("choices"_L1).toArray()) {
            const QString error = shapeError(choice.toObject().value("message"_L1),
                                             u"ChatCompletionResponseMessage"_s);
            if (!error.isEmpty())
                return error;
        }
    }
    return {};
}

#define QVERIFY_SHAPE(value, schema)                                                               \
    do {                                                                                           \
        const QString shapeProblem = shapeError(value, QString::fromLatin1(schema));               \
        QVERIFY2(shapeProblem.isEmpty(), qPrintable(shapeProblem));                                \
    } while (false)

// --- The vendored excerpt of the spec ------------------------------------------------------

void tst_FakeProvider::vendoredSchemasMatchSpec() {
    QFile spec(specPath());
    if (!spec.open(QIODevice::ReadOnly))
        QSKIP("openai-openapi.yaml not found (set LLMPROXY_SHARED_DIR); the vendored excerpt is "
              "used unchecked");
    const QList<QByteArray> lines = spec.readAll().split('\n');
    for (auto it = m_schemas.cbegin(); it != m_schemas.cend(); ++it) {
        const std::optional<Shape> fromSpec = yamlSchema(lines, it.key().toUtf8());
        QVERIFY2(fromSpec, qPrintable(u"schema %1 not in the spec"_s.arg(it.key())));
        QVERIFY2(!fromSpec->properties.isEmpty(), qPrintable(it.key()));
        QCOMPARE(sorted(it->required), sorted(fromSpec->required));
        QCOMPARE(sorted(it->properties), sorted(fromSpec->properties));
    }
    // The reader itself: a schema with nested required lists must not mix them in.
    const std::optional<Shape> batch = yamlSchema(lines, "Batch");
    QVERIFY(batch);
    QVERIFY(!batch->required.contains(u"cached_tokens"_s));
    QVERIFY(!batch->properties.contains(u"input_tokens"_s));
}

void tst_FakeProvider::multipartParser() {
    using llmproxy::test::parseMultipart;
    const QByteArray body = "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                            "batch\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                            "filename=\"a b.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
                            "{\"x\":1}\r\n\r\n--XyZ--\r\n";
    for (const QByteArray &type : {QByteArrayLiteral("multipart/form-data; boundary=XyZ"),
                                   QByteArrayLiteral("multipart/form-data; boundary=\"XyZ\"")}) {
        const auto parts = parseMultipart(type, body);
        QVERIFY(parts);
        QCOMPARE(parts->size(), 2);
        QCOMPARE(parts->at(0).name, "purpose");
        QCOMPARE(parts->at(0).data, "batch");
        QCOMPARE(parts->at(1).fileName, "a b.jsonl");
        QCOMPARE(parts->at(1).contentType, "application/jsonl");
        QCOMPARE(parts->at(1).data, "{\"x\":1}\r\n"); // bytes kept exactly, trailing CRLF too
    }
    QVERIFY(!parseMultipart("application/json", body));
    QVERIFY(!parseMultipart("multipart/form-data; boundary=XyZ", body.left(body.size() - 12)));
}

// --- Authentication ------------------------------------------------------------------------

void tst_FakeProvider::unauthorized_data() {
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QString>("path");
    QTest::addColumn<QByteArray>("authorization"); // empty: no header at all
    QTest::newRow("models, no header") << QByteArray("GET") << u"/models"_s << QByteArray();
    QTest::newRow("batches, empty bearer")
        << QByteArray("GET") << u"/batches"_s << QByteArray("Bearer ");
    QTest::newRow("files, basic auth")
        << QByteArray("POST") << u"/files"_s << QByteArray("Basic dXNlcjpwYXNz");
    QTest::newRow("chat, no header")
        << QByteArray("POST") << u"/chat/completions"_s << QByteArray();
    QTest::newRow("echo, no header") << QByteArray("GET") << u"/echo/x"_s << QByteArray();
}

void tst_FakeProvider::unauthorized() {
    QFETCH(QByteArray, method);
    QFETCH(QString, path);
    QFETCH(QByteArray, authorization);
    Headers headers;
    if (!authorization.isEmpty())
        headers.append({"Authorization", authorization});
    const HttpResult result = call(method, v1(path), {}, headers, false);
    QCOMPARE(result.status, 401);
    QVERIFY_SHAPE(result.json(), "ErrorResponse");
    const QJsonObject error = result.json().value("error"_L1).toObject();
    QCOMPARE(error.value("code"_L1).toString(), u"invalid_api_key"_s);
    QCOMPARE(error.value("type"_L1).toString(), u"invalid_request_error"_s);
    QVERIFY(error.value("param"_L1).isNull());
    // The same call with a key is not refused.
    QVERIFY(call(method, v1(path)).status != 401);
}

// --- The batch lifecycle -------------------------------------------------------------------

void tst_FakeProvider::fullLifecycle() {
    QList<QJsonObject> lines;
    for (int i = 1; i <= 4; ++i)
        lines.append(chatLine(u"req-%1"_s.arg(i), u"hello %1"_s.arg(i)));
    const QByteArray content = jsonl(lines);

    const HttpResult uploaded = upload(content);
    QCOMPARE(uploaded.status, 200);
    QVERIFY_SHAPE(uploaded.json(), "OpenAIFile");
    const QJsonObject file = uploaded.json();
    QVERIFY(file.value("id"_L1).toString().startsWith("file-"_L1));
    QCOMPARE(file.value("object"_L1).toString(), u"file"_s);
    QCOMPARE(file.value("bytes"_L1).toInteger(), content.size());
    QCOMPARE(file.value("filename"_L1).toString(), u"input.jsonl"_s);
    QCOMPARE(file.value("purpose"_L1).toString(), u"batch"_s);
    QCOMPARE(file.value("expires_at"_L1).toInteger(),
             file.value("created_at"_L1).toInteger() + 30 * 86400);
    QCOMPARE(m_fake->fileContent(file.value("id"_L1).toString().toUtf8()), content);

    m_fake->setProcessingDelay(150ms);
    const HttpResult created =
        createBatch(file.value("id"_L1).toString(), u"/v1/chat/completions"_s,
                    {{"metadata"_L1, QJsonObject{{"k"_L1, "v"_L1}}}});
    QCOMPARE(created.status, 200);
    QVERIFY_SHAPE(created.json(), "Batch");
    QJsonObject batch = created.json();
    const QString batchId = batch.value("id"_L1).toString();
    QVERIFY(batchId.startsWith("batch_"_L1));
    QCOMPARE(batch.value("status"_L1).toString(), u"validating"_s);
    QCOMPARE(batch.value("object"_L1).toString(), u"batch"_s);
    QCOMPARE(batch.value("completion_window"_L1).toString(), u"24h"_s);
    QCOMPARE(batch.value("metadata"_L1).toObject().value("k"_L1).toString(), u"v"_s);
    QCOMPARE(batch.value("expires_at"_L1).toInteger(),
             batch.value("created_at"_L1).toInteger() + 86400);
    for (const char *field : {"in_progress_at", "completed_at", "output_file_id", "error_file_id",
                              "errors", "failed_at", "cancelled_at"})
        QVERIFY2(batch.value(QLatin1StringView(field)).isNull(), field);
    // Every field of the spec's Batch schema is present.
    for (const QString &field : m_schemas.value(u"Batch"_s).properties)
        QVERIFY2(batch.contains(field), qPrintable(field));

    batch = waitUntil(batchId, {u"in_progress"_s});
    QCOMPARE(batch.value("status"_L1).toString(), u"in_progress"_s);
    QVERIFY_SHAPE(batch, "Batch");
    QCOMPARE(batch.value("model"_L1).toString(), u"gpt-4o-mini"_s);
    QCOMPARE(batch.value("request_counts"_L1).toObject().value("total"_L1).toInt(), 4);
    QVERIFY(batch.value("in_progress_at"_L1).toInteger() > 0);

    batch = waitUntil(batchId, {u"completed"_s});
    QCOMPARE(batch.value("status"_L1).toString(), u"completed"_s);
    QVERIFY_SHAPE(batch, "Batch");
    QVERIFY(batch.value("finalizing_at"_L1).toInteger() > 0);
    QVERIFY(batch.value("completed_at"_L1).toInteger() > 0);
    QVERIFY(batch.value("error_file_id"_L1).isNull()); // no failed lines, no error file
    const QJsonObject counts = batch.value("request_counts"_L1).toObject();
    QCOMPARE(counts.value("completed"_L1).toInt(), 4);
    QCOMPARE(counts.value("failed"_L1).toInt(), 0);
    QVERIFY(batch.value("usage"_L1).toObject().value("total_tokens"_L1).toInt() > 0);

    const QString outputId = batch.value("output_file_id"_L1).toString();
    const HttpResult outputMeta = call("GET", v1(u"/files/"_s + outputId));
    QVERIFY_SHAPE(outputMeta.json(), "OpenAIFile");
    QCOMPARE(outputMeta.json().value("purpose"_L1).toString(), u"batch_output"_s);

    QStringList order;
    const QHash<QString, QJsonObject> results = resultLines(outputId, &order);
    QCOMPARE(results.size(), 4);
    QCOMPARE(order, (QStringList{u"req-4"_s, u"req-3"_s, u"req-2"_s, u"req-1"_s}));
    for (int i = 1; i <= 4; ++i) {
        const QJsonObject line = results.value(u"req-%1"_s.arg(i));
        QVERIFY(line.value("id"_L1).toString().startsWith("batch_req_"_L1));
        QVERIFY(line.value("error"_L1).isNull());
        const QJsonObject response = line.value("response"_L1).toObject();
        QCOMPARE(response.value("status_code"_L1).toInt(), 200);
        QVERIFY(response.value("request_id"_L1).toString().startsWith("req_"_L1));
        const QJsonObject body = response.value("body"_L1).toObject();
        QVERIFY_SHAPE(body, "CreateChatCompletionResponse");
        const QJsonObject message =
            body.value("choices"_L1).toArray().first().toObject().value("message"_L1).toObject();
        QCOMPARE(message.value("content"_L1).toString(), u"echo: hello %1"_s.arg(i));
        QCOMPARE(message.value("role"_L1).toString(), u"assistant"_s);
        QCOMPARE(body.value("model"_L1).toString(), u"gpt-4o-mini"_s);
    }

    // Delete input and output; both are gone afterwards.
    for (const QString &id : {file.value("id"_L1).toString(), outputId}) {
        const HttpResult deleted = call("DELETE", v1(u"/files/"_s + id));
        QCOMPARE(deleted.status, 200);
        QVERIFY_SHAPE(deleted.json(), "DeleteFileResponse");
        QCOMPARE(deleted.json().value("deleted"_L1).toBool(), true);
        QCOMPARE(deleted.json().value("id"_L1).toString(), id);
        QCOMPARE(call("GET", v1(u"/files/%1/content"_s.arg(id))).status, 404);
    }
    QCOMPARE(m_fake->filesLive(), 0);
    QCOMPARE(m_fake->filesDeleted(), 2);
}

void tst_FakeProvider::magicStrings_data() {
    QTest::addColumn<QString>("content");
    QTest::addColumn<QString>("file");   // output, error or none
    QTest::addColumn<int>("statusCode"); // 0: response is null
    QTest::addColumn<QString>("errorCode");
    QTest::newRow("plain") << u"hi"_s << u"output"_s << 200 << QString();
    QTest::newRow("status 400") << u"x [[status:400]]"_s << u"error"_s << 400 << QString();
    QTest::newRow("status 503") << u"[[status:503]] y"_s << u"error"_s << 503 << QString();
    QTest::newRow("batch_expired")
        << u"[[error:batch_expired]]"_s << u"error"_s << 0 << u"batch_expired"_s;
    QTest::newRow("request_timeout")
        << u"[[error:request_timeout]]"_s << u"error"_s << 0 << u"request_timeout"_s;
    QTest::newRow("batch_cancelled")
        << u"[[error:batch_cancelled]]"_s << u"error"_s << 0 << u"batch_cancelled"_s;
    QTest::newRow("omit") << u"[[omit]]"_s << u"none"_s << 0 << QString();
}

void tst_FakeProvider::magicStrings() {
    QFETCH(QString, content);
    QFETCH(QString, file);
    QFETCH(int, statusCode);
    QFETCH(QString, errorCode);

    // One scripted line between two plain ones.
    const QJsonObject batch =
        runBatch(jsonl({chatLine(u"before"_s, u"a"_s), chatLine(u"scripted"_s, content),
                        chatLine(u"after"_s, u"b"_s)}));
    QCOMPARE(batch.value("status"_L1).toString(), u"completed"_s);
    QVERIFY_SHAPE(batch, "Batch");
    const QHash<QString, QJsonObject> output = resultLines(batch.value("output_file_id"_L1));
    const QHash<QString, QJsonObject> errors = resultLines(batch.value("error_file_id"_L1));
    QVERIFY(output.contains(u"before"_s) && output.contains(u"after"_s));
    QCOMPARE(output.contains(u"scripted"_s), file == "output"_L1);
    QCOMPARE(errors.contains(u"scripted"_s), file == "error"_L1);
    QCOMPARE(batch.value("error_file_id"_L1).isNull(), file != "error"_L1);
    const QJsonObject counts = batch.value("request_counts"_L1).toObject();
    QCOMPARE(counts.value("total"_L1).toInt(), 3);
    QCOMPARE(counts.value("completed"_L1).toInt(), file == "output"_L1 ? 3 : 2);
    QCOMPARE(counts.value("failed"_L1).toInt(), file == "error"_L1 ? 1 : 0);
    if (file == "none"_L1)
        return;

    const QJsonObject line = (file == "output"_L1 ? output : errors).value(u"scripted"_s);
    if (statusCode == 0) {
        QVERIFY(line.value("response"_L1).isNull());
        const QJsonObject error = line.value("error"_L1).toObject();
        QCOMPARE(error.value("code"_L1).toString(), errorCode);
        QVERIFY(!error.value("message"_L1).toString().isEmpty());
    } else {
        QVERIFY(line.value("error"_L1).isNull());
        const QJsonObject response = line.value("response"_L1).toObject();
        QCOMPARE(response.value("status_code"_L1).toInt(), statusCode);
        const QJsonObject body = response.value("body"_L1).toObject();
        QVERIFY_SHAPE(body, statusCode == 200 ? "CreateChatCompletionResponse" : "ErrorResponse");
        if (statusCode >= 500)
            QCOMPARE(body.value("error"_L1).toObject().value("type"_L1).toString(),
                     u"server_error"_s);
    }
}

// --- Files ---------------------------------------------------------------------------------

void tst_FakeProvider::uploadValidation_data() {
    QTest::addColumn<QByteArray>("purpose");
    QTest::addColumn<QString>("fileName");
    QTest::addColumn<int>("status");
    QTest::newRow("batch jsonl") << QByteArray("batch") << u"a.jsonl"_s << 200;
    QTest::newRow("user_data txt") << QByteArray("user_data") << u"a.txt"_s << 200;
    QTest::newRow("unknown purpose") << QByteArray("other") << u"a.jsonl"_s << 400;
    QTest::newRow("output purpose refused") << QByteArray("batch_output") << u"a.jsonl"_s << 400;
    QTest::newRow("batch not jsonl") << QByteArray("batch") << u"a.txt"_s << 400;
}

void tst_FakeProvider::uploadValidation() {
    QFETCH(QByteArray, purpose);
    QFETCH(QString, fileName);
    QFETCH(int, status);
    const HttpResult result = upload("{}\n", purpose, fileName);
    QCOMPARE(result.status, status);
    QVERIFY_SHAPE(result.json(), status == 200 ? "OpenAIFile" : "ErrorResponse");
    QCOMPARE(m_fake->filesLive(), status == 200 ? 1 : 0);
    if (status != 200)
        QCOMPARE(result.json().value("error"_L1).toObject().value("type"_L1).toString(),
                 u"invalid_request_error"_s);
}

void tst_FakeProvider::fileEndpoints() {
    // The form the Node SDK sends: unquoted boundary, file part before purpose.
    const QByteArray body = "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; "
                            "filename=\"in.jsonl\"\r\nContent-Type: application/octet-stream\r\n"
                            "\r\n{\"a\":1}\n\r\n--b0undary\r\nContent-Disposition: form-data; "
                            "name=\"purpose\"\r\n\r\nbatch\r\n--b0undary--\r\n";
    HttpResult result = call("POST", v1(u"/files"_s), body,
                             {{"Content-Type", "multipart/form-data; boundary=b0undary"}});
    QCOMPARE(result.status, 200);
    const QString id = result.json().value("id"_L1).toString();
    QCOMPARE(result.json().value("bytes"_L1).toInt(), 8);

    result = call("GET", v1(u"/files/"_s + id));
    QCOMPARE(result.status, 200);
    QVERIFY_SHAPE(result.json(), "OpenAIFile");
    result = call("GET", v1(u"/files/%1/content"_s.arg(id)));
    QCOMPARE(result.status, 200);
    QCOMPARE(result.body, "{\"a\":1}\n");

    // Missing parts and bodies that are not multipart.
    QCOMPARE(call("POST", v1(u"/files"_s), "{}").status, 400);
    const QByteArray noPurpose = "--q\r\nContent-Disposition: form-data; name=\"file\"; "
                                 "filename=\"x.jsonl\"\r\n\r\n{}\r\n--q--\r\n";
    result = call("POST", v1(u"/files"_s), noPurpose,
                  {{"Content-Type", "multipart/form-data; boundary=q"}});
    QCOMPARE(result.status, 400);
    QCOMPARE(result.json().value("error"_L1).toObject().value("param"_L1).toString(), u"purpose"_s);

    // Unknown ids answer 404 with an OpenAI error on every file call.
    for (const auto &[method, path] :
         QList<QPair<QByteArray, QString>>{{"GET", u"/files/file-nope"_s},
                                           {"GET", u"/files/file-nope/content"_s},
                                           {"DELETE", u"/files/file-nope"_s}}) {
        result = call(method, v1(path));
        QCOMPARE(result.status, 404);
        QVERIFY_SHAPE(result.json(), "ErrorResponse");
    }
    QCOMPARE(call("DELETE", v1(u"/files/"_s + id)).status, 200);
    QCOMPARE(call("DELETE", v1(u"/files/"_s + id)).status, 404);
    QCOMPARE(call("GET", v1(u"/nothing/here"_s)).status, 404);
}

// --- Batch creation and validation ---------------------------------------------------------

void tst_FakeProvider::createValidation_data() {
    QTest::addColumn<QJsonObject>("change"); // merged into a valid request
    QTest::addColumn<int>("status");
    QTest::addColumn<QString>("param");
    QJsonObject sixteen;
    QJsonObject seventeen;
    for (int i = 0; i < 17; ++i) {
        if (i < 16)
            sixteen.insert(u"k%1"_s.arg(i), u"v"_s);
        seventeen.insert(u"k%1"_s.arg(i), u"v"_s);
    }
    QTest::newRow("valid") << QJsonObject{} << 200 << QString();
    QTest::newRow("16 metadata pairs") << QJsonObject{{"metadata"_L1, sixteen}} << 200 << QString();
    QTest::newRow("17 metadata pairs")
        << QJsonObject{{"metadata"_L1, seventeen}} << 400 << u"metadata"_s;
    QTest::newRow("metadata value too long")
        << QJsonObject{{"metadata"_L1, QJsonObject{{"k"_L1, QString(513, u'x')}}}} << 400
        << u"metadata"_s;
    QTest::newRow("unknown file") << QJsonObject{{"input_file_id"_L1, "file-nope"_L1}} << 400
                                  << u"input_file_id"_s;
    QTest::newRow("bad endpoint") << QJsonObject{{"endpoint"_L1, "/v1/foo"_L1}} << 400
                                  << u"endpoint"_s;
    QTest::newRow("images endpoint is allowed")
        << QJsonObject{{"endpoint"_L1, "/v1/images/generations"_L1}} << 200 << QString();
    QTest::newRow("window 48h") << QJsonObject{{"completion_window"_L1, "48h"_L1}} << 400
                                << u"completion_window"_s;
}

void tst_FakeProvider::createValidation() {
    QFETCH(QJsonObject, change);
    QFETCH(int, status);
    QFETCH(QString, param);
    const QString fileId = uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}));
    QJsonObject body{{"input_file_id"_L1, fileId},
                     {"endpoint"_L1, "/v1/chat/completions"_L1},
                     {"completion_window"_L1, "24h"_L1}};
    for (auto it = change.begin(); it != change.end(); ++it)
        body.insert(it.key(), it.value());
    const HttpResult result =
        call("POST", v1(u"/batches"_s), QJsonDocument(body).toJson(QJsonDocument::Compact));
    QCOMPARE(result.status, status);
    QCOMPARE(m_fake->batches().size(), status == 200 ? 1 : 0);
    if (status == 200) {
        QVERIFY_SHAPE(result.json(), "Batch");
        return;
    }
    QVERIFY_SHAPE(result.json(), "ErrorResponse");
    QCOMPARE(result.json().value("error"_L1).toObject().value("param"_L1).toString(), param);
}

void tst_FakeProvider::failedValidation_data() {
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<QString>("code");
    QTest::addColumn<int>("line"); // 0: null
    const QJsonObject a = chatLine(u"a"_s, u"x"_s);
    const QJsonObject b = chatLine(u"b"_s, u"y"_s);
    QJsonObject get = b;
    get.insert("method"_L1, "GET"_L1);
    QJsonObject wrongUrl = b;
    wrongUrl.insert("url"_L1, "/v1/embeddings"_L1);
    QJsonObject noId = b;
    noId.remove("custom_id"_L1);
    QJsonObject numericId = b;
    numericId.insert("custom_id"_L1, 7);
    QTest::newRow("duplicate custom_id") << jsonl({a, b, a}) << u"duplicate_custom_id"_s << 3;
    QTest::newRow("mixed models") << jsonl({a, chatLine(u"b"_s, u"y"_s, u"gpt-4o"_s)})
                                  << u"model_mismatch"_s << 2;
    QTest::newRow("bad json line") << QByteArray(jsonl({a}) + "{\"custom_id\": \n" + jsonl({b}))
                                   << u"invalid_json_line"_s << 2;
    QTest::newRow("empty line") << QByteArray(jsonl({a}) + "\n" + jsonl({b}))
                                << u"invalid_json_line"_s << 2;
    QTest::newRow("method GET") << jsonl({a, get}) << u"invalid_method"_s << 2;
    QTest::newRow("url mismatch") << jsonl({wrongUrl}) << u"url_mismatch"_s << 1;
    QTest::newRow("no custom_id") << jsonl({a, noId}) << u"invalid_custom_id"_s << 2;
    QTest::newRow("numeric custom_id") << jsonl({numericId}) << u"invalid_custom_id"_s << 1;
    QTest::newRow("empty file") << QByteArray() << u"empty_file"_s << 0;
}

void tst_FakeProvider::failedValidation() {
    QFETCH(QByteArray, content);
    QFETCH(QString, code);
    QFETCH(int, line);
    const QJsonObject batch = runBatch(content);
    QCOMPARE(batch.value("status"_L1).toString(), u"failed"_s);
    QVERIFY_SHAPE(batch, "Batch");
    QVERIFY(batch.value("failed_at"_L1).toInteger() > 0);
    QVERIFY(batch.value("in_progress_at"_L1).isNull());
    QVERIFY(batch.value("output_file_id"_L1).isNull());
    QVERIFY(batch.value("error_file_id"_L1).isNull());
    const QJsonObject errors = batch.value("errors"_L1).toObject();
    QCOMPARE(errors.value("object"_L1).toString(), u"list"_s);
    const QJsonArray data = errors.value("data"_L1).toArray();
    QCOMPARE(data.size(), 1);
    const QJsonObject error = data.first().toObject();
    QCOMPARE(error.value("code"_L1).toString(), code);
    QVERIFY(!error.value("message"_L1).toString().isEmpty());
    if (line == 0)
        QVERIFY(error.value("line"_L1).isNull());
    else
        QCOMPARE(error.value("line"_L1).toInt(), line);
}

void tst_FakeProvider::scriptedBatchFailure() {
    m_fake->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1);
    const QByteArray content = jsonl({chatLine(u"a"_s, u"x"_s)});
    QJsonObject batch = runBatch(content);
    QCOMPARE(batch.value("status"_L1).toString(), u"failed"_s);
    QVERIFY_SHAPE(batch, "Batch");
    const QJsonObject error =
        batch.value("errors"_L1).toObject().value("data"_L1).toArray().first().toObject();
    QCOMPARE(error.value("code"_L1).toString(), u"token_limit_exceeded"_s);
    QVERIFY(error.value("message"_L1).toString().contains("gpt-4o-mini"_L1));
    QVERIFY(error.value("line"_L1).isNull());
    // Only the next one batch was scripted.
    QCOMPARE(runBatch(content).value("status"_L1).toString(), u"completed"_s);

    m_fake->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 2, "quota_exceeded", u"no"_s);
    for (int i = 0; i < 2; ++i) {
        batch = runBatch(content);
        const QJsonObject e =
            batch.value("errors"_L1).toObject().value("data"_L1).toArray().first().toObject();
        QCOMPARE(e.value("code"_L1).toString(), u"quota_exceeded"_s);
        QCOMPARE(e.value("message"_L1).toString(), u"no"_s);
    }
    QCOMPARE(runBatch(content).value("status"_L1).toString(), u"completed"_s);
}

// --- Scripted HTTP faults ------------------------------------------------------------------

void tst_FakeProvider::faults_data() {
    QTest::addColumn<FakeProvider::Operation>("op");
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QString>("path");
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("retryAfter");
    using Op = FakeProvider::Operation;
    QTest::newRow("upload 429") << Op::Upload << QByteArray("POST") << u"/files"_s << 429
                                << QByteArray("7");
    QTest::newRow("create 500") << Op::Create << QByteArray("POST") << u"/batches"_s << 500
                                << QByteArray();
    QTest::newRow("retrieve 503") << Op::Retrieve << QByteArray("GET") << u"/batches/batch_x"_s
                                  << 503 << QByteArray("2");
    QTest::newRow("download 500") << Op::Download << QByteArray("GET") << u"/files/file-x/content"_s
                                  << 500 << QByteArray();
    QTest::newRow("delete 429") << Op::Delete << QByteArray("DELETE") << u"/files/file-x"_s << 429
                                << QByteArray("1");
    QTest::newRow("cancel 502") << Op::Cancel << QByteArray("POST") << u"/batches/batch_x/cancel"_s
                                << 502 << QByteArray();
    QTest::newRow("list 429") << Op::List << QByteArray("GET") << u"/batches"_s << 429
                              << QByteArray("30");
    QTest::newRow("chat 429") << Op::Chat << QByteArray("POST") << u"/chat/completions"_s << 429
                              << QByteArray("5");
}

void tst_FakeProvider::faults() {
    QFETCH(FakeProvider::Operation, op);
    QFETCH(QByteArray, method);
    QFETCH(QString, path);
    QFETCH(int, status);
    QFETCH(QByteArray, retryAfter);
    m_fake->failNext(op, 2, status, retryAfter);
    // Other operations are not affected.
    QCOMPARE(call("GET", v1(u"/models"_s)).status, 200);
    for (int i = 0; i < 2; ++i) {
        const HttpResult result = call(method, v1(path), "{}");
        QCOMPARE(result.status, status);
        QVERIFY_SHAPE(result.json(), "ErrorResponse");
        QCOMPARE(result.header("retry-after"), retryAfter);
        QVERIFY(!result.header("x-request-id").isEmpty());
    }
    QVERIFY(call(method, v1(path), "{}").status != status);
}

void tst_FakeProvider::dropConnection() {
    // A raw client sees the connection closed with no answer at all.
    m_fake->failNext(FakeProvider::Operation::List, 1, 0);
    QTcpSocket socket;
    socket.connectToHost(QHostAddress::LocalHost, m_fake->port());
    QVERIFY(socket.waitForConnected(5000));
    socket.write("GET /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n");
    QSignalSpy closed(&socket, &QTcpSocket::disconnected);
    QVERIFY(closed.wait(5000));
    QCOMPARE(socket.readAll(), QByteArray());

    QCOMPARE(m_fake->count("GET", "/v1/batches"), 1);

    // QNetworkAccessManager (6.4) resends a request once when the connection closes before
    // any answer: one drop is invisible to a Qt client, two make it fail.
    m_fake->failNext(FakeProvider::Operation::List, 1, 0);
    QCOMPARE(call("GET", v1(u"/batches"_s)).status, 200);
    QCOMPARE(m_fake->count("GET", "/v1/batches"), 3);
    m_fake->failNext(FakeProvider::Operation::List, 2, 0);
    const HttpResult result = call("GET", v1(u"/batches"_s));
    QCOMPARE(result.status, 0);
    QCOMPARE(result.error, QNetworkReply::RemoteHostClosedError);
    QCOMPARE(m_fake->count("GET", "/v1/batches"), 5);
    QCOMPARE(call("GET", v1(u"/batches"_s)).status, 200);
    // The same holds for a POST: the drop happens before the fake creates anything, so the
    // resent request creates exactly one batch.
    const QString fileId = uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}));
    m_fake->failNext(FakeProvider::Operation::Create, 1, 0);
    QCOMPARE(createBatch(fileId).status, 200);
    QCOMPARE(m_fake->count("POST", "/v1/batches"), 2);
    QCOMPARE(m_fake->batches().size(), 1);
}

// --- Listing, cancel, expiry ---------------------------------------------------------------

void tst_FakeProvider::listPagination() {
    m_fake->setNeverFinish(true); // keep them cheap and stable
    const QString fileId = uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}));
    QStringList ids; // oldest first
    for (int i = 0; i < 5; ++i)
        ids.append(createBatch(fileId).json().value("id"_L1).toString());

    const auto page = [&](const QString &query) { return call("GET", v1(u"/batches"_s + query)); };
    const auto idsOf = [](const QJsonObject &list) {
        QStringList out;
        for (const QJsonValue &v : list.value("data"_L1).toArray())
            out.append(v.toObject().value("id"_L1).toString());
        return out;
    };

    QJsonObject list = page(u"?limit=2"_s).json();
    QVERIFY_SHAPE(list, "ListBatchesResponse");
    QCOMPARE(list.value("object"_L1).toString(), u"list"_s);
    QCOMPARE(idsOf(list), (QStringList{ids[4], ids[3]}));
    QCOMPARE(list.value("first_id"_L1).toString(), ids[4]);
    QCOMPARE(list.value("last_id"_L1).toString(), ids[3]);
    QCOMPARE(list.value("has_more"_L1).toBool(), true);

    list = page(u"?limit=2&after="_s + ids[3]).json();
    QCOMPARE(idsOf(list), (QStringList{ids[2], ids[1]}));
    QCOMPARE(list.value("has_more"_L1).toBool(), true);
    list = page(u"?limit=2&after="_s + ids[1]).json();
    QCOMPARE(idsOf(list), (QStringList{ids[0]}));
    QCOMPARE(list.value("has_more"_L1).toBool(), false);

    list = page(QString()).json(); // default limit 20
    QCOMPARE(idsOf(list).size(), 5);
    QCOMPARE(list.value("has_more"_L1).toBool(), false);
    list = page(u"?after="_s + ids[0]).json();
    QVERIFY(idsOf(list).isEmpty());
    QVERIFY(list.value("first_id"_L1).isNull());

    for (const QString &bad : {u"?limit=0"_s, u"?limit=101"_s, u"?limit=x"_s, u"?after=batch_no"_s})
        QCOMPARE(page(bad).status, 400);
}

void tst_FakeProvider::cancel() {
    m_fake->setNeverFinish(true);
    QList<QJsonObject> lines;
    for (int i = 1; i <= 4; ++i)
        lines.append(chatLine(u"c%1"_s.arg(i), u"x"_s));
    const QString fileId = uploadId(jsonl(lines));
    const QString id = createBatch(fileId).json().value("id"_L1).toString();
    QCOMPARE(waitUntil(id, {u"in_progress"_s}).value("status"_L1).toString(), u"in_progress"_s);
    QTest::qWait(100);
    QCOMPARE(m_fake->batchObject(id.toUtf8()).value("status"_L1).toString(), u"in_progress"_s);

    QSignalSpy finished(m_fake.get(), &FakeProvider::batchFinished);
    HttpResult result = call("POST", v1(u"/batches/%1/cancel"_s.arg(id)));
    QCOMPARE(result.status, 200);
    QVERIFY_SHAPE(result.json(), "Batch");
    QCOMPARE(result.json().value("status"_L1).toString(), u"cancelling"_s);
    QVERIFY(result.json().value("cancelling_at"_L1).toInteger() > 0);

    const QJsonObject batch = waitUntil(id, {u"cancelled"_s});
    QCOMPARE(batch.value("status"_L1).toString(), u"cancelled"_s);
    QVERIFY_SHAPE(batch, "Batch");
    QVERIFY(batch.value("cancelled_at"_L1).toInteger() > 0);
    QCOMPARE(finished.size(), 1);
    QCOMPARE(finished.first().first().toByteArray(), id.toUtf8());
    const QHash<QString, QJsonObject> output = resultLines(batch.value("output_file_id"_L1));
    const QHash<QString, QJsonObject> errors = resultLines(batch.value("error_file_id"_L1));
    QCOMPARE(sorted(output.keys()), (QStringList{u"c1"_s, u"c2"_s}));
    QCOMPARE(sorted(errors.keys()), (QStringList{u"c3"_s, u"c4"_s}));
    for (const QJsonObject &line : errors) {
        QVERIFY(line.value("response"_L1).isNull());
        QCOMPARE(line.value("error"_L1).toObject().value("code"_L1).toString(),
                 u"batch_cancelled"_s);
    }
    QCOMPARE(batch.value("request_counts"_L1).toObject().value("completed"_L1).toInt(), 2);
    QCOMPARE(batch.value("request_counts"_L1).toObject().value("failed"_L1).toInt(), 2);

    // Cancelling again is harmless; a finished batch cannot be cancelled; unknown ids are 404.
    result = call("POST", v1(u"/batches/%1/cancel"_s.arg(id)));
    QCOMPARE(result.status, 200);
    QCOMPARE(result.json().value("status"_L1).toString(), u"cancelled"_s);
    m_fake->setNeverFinish(false);
    const QString done = runBatch(jsonl(lines)).value("id"_L1).toString();
    QCOMPARE(call("POST", v1(u"/batches/%1/cancel"_s.arg(done))).status, 409);
    QCOMPARE(call("POST", v1(u"/batches/batch_nope/cancel"_s)).status, 404);
}

void tst_FakeProvider::cancelWhileValidating() {
    m_fake->setValidationDelay(10s);
    const QString id =
        createBatch(uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}))).json().value("id"_L1).toString();
    QCOMPARE(call("POST", v1(u"/batches/%1/cancel"_s.arg(id))).status, 200);
    const QJsonObject batch = waitUntil(id, {u"cancelled"_s});
    QCOMPARE(batch.value("status"_L1).toString(), u"cancelled"_s);
    QVERIFY(batch.value("output_file_id"_L1).isNull());
    QVERIFY(batch.value("error_file_id"_L1).isNull());
    QVERIFY(batch.value("in_progress_at"_L1).isNull());
}

void tst_FakeProvider::expire() {
    m_fake->setExpireAfter(30ms, 0.5);
    QList<QJsonObject> lines;
    for (int i = 1; i <= 4; ++i)
        lines.append(chatLine(u"e%1"_s.arg(i), u"x"_s));
    const QJsonObject batch = runBatch(jsonl(lines));
    QCOMPARE(batch.value("status"_L1).toString(), u"expired"_s);
    QVERIFY_SHAPE(batch, "Batch");
    QVERIFY(batch.value("expired_at"_L1).toInteger() > 0);
    QVERIFY(batch.value("completed_at"_L1).isNull());
    const QHash<QString, QJsonObject> output = resultLines(batch.value("output_file_id"_L1));
    const QHash<QString, QJsonObject> errors = resultLines(batch.value("error_file_id"_L1));
    QCOMPARE(sorted(output.keys()), (QStringList{u"e1"_s, u"e2"_s}));
    QCOMPARE(sorted(errors.keys()), (QStringList{u"e3"_s, u"e4"_s}));
    for (const QJsonObject &line : errors)
        QCOMPARE(line.value("error"_L1).toObject().value("code"_L1).toString(), u"batch_expired"_s);
}

void tst_FakeProvider::neverFinish() {
    m_fake->setNeverFinish(true);
    const QString id =
        createBatch(uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}))).json().value("id"_L1).toString();
    QCOMPARE(waitUntil(id, {u"in_progress"_s}).value("status"_L1).toString(), u"in_progress"_s);
    QTest::qWait(200); // ten processing delays
    QCOMPARE(m_fake->batchObject(id.toUtf8()).value("status"_L1).toString(), u"in_progress"_s);
    m_fake->setNeverFinish(false);
    QCOMPARE(waitUntil(id, {u"completed"_s}).value("status"_L1).toString(), u"completed"_s);
}

// --- Synchronous endpoints -----------------------------------------------------------------

void tst_FakeProvider::syncEndpoints() {
    // Chat, with content as a string and as an array of parts.
    HttpResult result = call("POST", v1(u"/chat/completions"_s),
                             R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"s"},
                                 {"role":"user","content":"hi there"}]})");
    QCOMPARE(result.status, 200);
    QVERIFY_SHAPE(result.json(), "CreateChatCompletionResponse");
    QCOMPARE(result.json().value("object"_L1).toString(), u"chat.completion"_s);
    const auto content = [](const QJsonObject &o) {
        return o.value("choices"_L1)
            .toArray()
            .first()
            .toObject()
            .value("message"_L1)
            .toObject()
            .value("content"_L1)
            .toString();
    };
    QCOMPARE(content(result.json()), u"echo: hi there"_s);
    result = call("POST", v1(u"/chat/completions"_s),
                  R"({"model":"m","messages":[{"role":"user","content":[
                      {"type":"text","text":"part one"},{"type":"text","text":"two"}]}]})");
    QCOMPARE(content(result.json()), u"echo: part one two"_s);
    result = call("POST", v1(u"/chat/completions"_s), R"({"model":"m"})");
    QCOMPARE(result.status, 400);
    QVERIFY_SHAPE(result.json(), "ErrorResponse");
    result = call("POST", v1(u"/chat/completions"_s),
                  R"({"model":"m","messages":[{"role":"user","content":"[[status:429]]"}]})");
    QCOMPARE(result.status, 429);
    QCOMPARE(result.json().value("error"_L1).toObject().value("code"_L1).toString(),
             u"rate_limit_exceeded"_s);

    // Embeddings: one deterministic vector per input, as floats or as base64 float32.
    result = call("POST", v1(u"/embeddings"_s),
                  R"({"model":"text-embedding-3-small","input":["alpha","beta"]})");
    QCOMPARE(result.status, 200);
    QVERIFY_SHAPE(result.json(), "CreateEmbeddingResponse");
    const QJsonArray data = result.json().value("data"_L1).toArray();
    QCOMPARE(data.size(), 2);
    const QJsonArray alpha = data.at(0).toObject().value("embedding"_L1).toArray();
    QCOMPARE(alpha.size(), 8);
    const QList<float> expected = llmproxy::test::fakeEmbedding("alpha");
    for (int i = 0; i < 8; ++i)
        QCOMPARE(alpha.at(i).toDouble(), static_cast<double>(expected.at(i)));
    QVERIFY(alpha != data.at(1).toObject().value("embedding"_L1).toArray());
    result = call("POST", v1(u"/embeddings"_s),
                  R"({"model":"m","input":"alpha","encoding_format":"base64"})");
    QVERIFY_SHAPE(result.json(), "CreateEmbeddingResponse");
    const QByteArray raw = QByteArray::fromBase64(result.json()
                                                      .value("data"_L1)
                                                      .toArray()
                                                      .first()
                                                      .toObject()
                                                      .value("embedding"_L1)
                                                      .toString()
                                                      .toLatin1());
    QCOMPARE(raw.size(), 32);
    for (int i = 0; i < 8; ++i) {
        const quint32 bits = qFromLittleEndian<quint32>(raw.constData() + 4 * i);
        float f = 0;
        std::memcpy(&f, &bits, sizeof f);
        QCOMPARE(f, expected.at(i));
    }

    // Completions and moderations answer spec-shaped objects.
    result = call("POST", v1(u"/completions"_s), R"({"model":"m","prompt":"p"})");
    QVERIFY_SHAPE(result.json(), "CreateCompletionResponse");
    result = call("POST", v1(u"/moderations"_s), R"({"input":"p"})");
    QVERIFY_SHAPE(result.json(), "CreateModerationResponse");

    result = call("GET", v1(u"/models"_s));
    QCOMPARE(result.status, 200);
    QVERIFY_SHAPE(result.json(), "ListModelsResponse");
    QVERIFY(!result.json().value("data"_L1).toArray().isEmpty());
    QVERIFY_SHAPE(call("GET", v1(u"/models/gpt-4o-mini"_s)).json(), "Model");
    QCOMPARE(call("GET", v1(u"/models/nope"_s)).status, 404);
}

void tst_FakeProvider::sseStream() {
    m_fake->setStreamChunkDelay(60ms);
    QNetworkRequest request(v1(u"/chat/completions"_s));
    request.setRawHeader("Authorization", "Bearer " + m_key);
    request.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    QNetworkReply *reply =
        m_nam->post(request, R"({"model":"m","stream":true,"stream_options":{"include_usage":true},
                     "messages":[{"role":"user","content":"a b c"}]})");
    QByteArray received;
    QList<qint64> arrivals;
    QElapsedTimer clock;
    clock.start();
    connect(reply, &QNetworkReply::readyRead, this, [&] {
        received += reply->readAll();
        arrivals.append(clock.elapsed());
    });
    QTRY_VERIFY_WITH_TIMEOUT(reply->isFinished(), 10000);
    QCOMPARE(reply->error(), QNetworkReply::NoError);
    QVERIFY(reply->header(QNetworkRequest::ContentTypeHeader)
                .toString()
                .startsWith("text/event-stream"_L1));
    reply->deleteLater();

    QList<QByteArray> events = received.split('\n');
    events.removeAll(QByteArray());
    QVERIFY(events.size() >= 6);
    QCOMPARE(events.last(), "data: [DONE]");
    QString text;
    for (qsizetype i = 0; i + 1 < events.size(); ++i) {
        QVERIFY(events.at(i).startsWith("data: "));
        const QJsonObject chunk = QJsonDocument::fromJson(events.at(i).mid(6)).object();
        QVERIFY_SHAPE(chunk, "CreateChatCompletionStreamResponse");
        QCOMPARE(chunk.value("object"_L1).toString(), u"chat.completion.chunk"_s);
        const QJsonArray choices = chunk.value("choices"_L1).toArray();
        if (!choices.isEmpty())
            text += choices.first()
                        .toObject()
                        .value("delta"_L1)
                        .toObject()
                        .value("content"_L1)
                        .toString();
        else // the usage chunk, last before [DONE]
            QVERIFY(chunk.value("usage"_L1).toObject().value("total_tokens"_L1).toInt() > 0);
    }
    QCOMPARE(text, u"echo: a b c"_s);
    // The events really were spaced out, not sent in one go.
    // The events were spaced out by the chunk delay, not sent in one go. (Under load several
    // events may arrive in one read, so only the total time and "more than one read" are
    // checked.)
    QVERIFY(arrivals.size() >= 3);
    const qint64 minimum = 60 * (events.size() - 1) * 8 / 10;
    QVERIFY2(arrivals.last() >= minimum,
             qPrintable(u"%1 ms, expected >= %2 ms"_s.arg(arrivals.last()).arg(minimum)));
}

void tst_FakeProvider::clientGoneDuringStreamAndDelay() {
    // Clients that hang up while the fake holds their socket must not crash it (ASan run).
    m_fake->setStreamChunkDelay(30ms);
    QNetworkRequest request(v1(u"/chat/completions"_s));
    request.setRawHeader("Authorization", "Bearer " + m_key);
    request.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    QNetworkReply *stream = m_nam->post(
        request, R"({"model":"m","stream":true,"messages":[{"role":"user","content":"a b c d"}]})");
    QNetworkRequest delayed(v1(u"/echo/slow"_s));
    delayed.setRawHeader("Authorization", "Bearer " + m_key);
    delayed.setRawHeader("X-Fake-Delay-Ms", "150");
    QNetworkReply *slow = m_nam->get(delayed);
    QTRY_VERIFY(stream->bytesAvailable() > 0);
    stream->abort();
    slow->abort();
    stream->deleteLater();
    slow->deleteLater();
    QTest::qWait(300);
    QCOMPARE(call("GET", v1(u"/models"_s)).status, 200);

    // A delay is honoured when the client waits.
    QElapsedTimer clock;
    clock.start();
    QCOMPARE(call("GET", v1(u"/echo/x"_s), {}, {{"X-Fake-Delay-Ms", "150"}}).status, 200);
    QVERIFY(clock.elapsed() >= 140);
}

void tst_FakeProvider::echo_data() {
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QByteArray>("target"); // path and query after /v1, percent-encoded
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QByteArray>("fakeStatus");
    QTest::newRow("get with encoded path and query")
        << QByteArray("GET") << QByteArray("/echo/files/file-abc%2Fx?limit=2&q=a+b%20c")
        << QByteArray() << QByteArray();
    QTest::newRow("post keeps large integers")
        << QByteArray("POST") << QByteArray("/echo/chat")
        << QByteArray(R"({"seed":123456789012345678901234567890,"x":1.10})") << QByteArray();
    QTest::newRow("put") << QByteArray("PUT") << QByteArray("/echo") << QByteArray("{}")
                         << QByteArray();
    QTest::newRow("delete, status 418")
        << QByteArray("DELETE") << QByteArray("/echo/thing") << QByteArray() << QByteArray("418");
    QTest::newRow("patch, status 500")
        << QByteArray("PATCH") << QByteArray("/echo/a") << QByteArray("[1]") << QByteArray("500");
}

void tst_FakeProvider::echo() {
    QFETCH(QByteArray, method);
    QFETCH(QByteArray, target);
    QFETCH(QByteArray, body);
    QFETCH(QByteArray, fakeStatus);
    Headers headers{{"X-Custom", "Value 1"}, {"OpenAI-Project", "proj_1"}};
    if (!fakeStatus.isEmpty())
        headers.append({"X-Fake-Status", fakeStatus});
    const QUrl url = QUrl::fromEncoded(m_fake->baseUrl().toEncoded() + target);
    const HttpResult result = call(method, url, body, headers);
    QCOMPARE(result.status, fakeStatus.isEmpty() ? 200 : fakeStatus.toInt());
    const QJsonObject echo = result.json();
    QCOMPARE(echo.value("method"_L1).toString().toUtf8(), method);
    const qsizetype q = target.indexOf('?');
    QCOMPARE(echo.value("path"_L1).toString().toUtf8(), "/v1" + (q < 0 ? target : target.left(q)));
    QCOMPARE(echo.value("query"_L1).toString().toUtf8(), q < 0 ? QByteArray() : target.mid(q + 1));
    QCOMPARE(echo.value("body"_L1).toString().toUtf8(), body);
    const QJsonObject seen = echo.value("headers"_L1).toObject();
    QCOMPARE(seen.value("x-custom"_L1).toString(), u"Value 1"_s);
    QCOMPARE(seen.value("openai-project"_L1).toString(), u"proj_1"_s);
    QCOMPARE(seen.value("authorization"_L1).toString().toUtf8(), "Bearer " + m_key);
}

// --- Observation and control ---------------------------------------------------------------

void tst_FakeProvider::observation() {
    QSignalSpy created(m_fake.get(), &FakeProvider::batchCreated);
    QSignalSpy finished(m_fake.get(), &FakeProvider::batchFinished);
    QSignalSpy received(m_fake.get(), &FakeProvider::requestReceived);
    const QString fileId = uploadId(jsonl({chatLine(u"x1"_s, u"a"_s), chatLine(u"x2"_s, u"b"_s)}));
    const HttpResult result =
        call("POST", v1(u"/batches"_s),
             QJsonDocument(QJsonObject{{"input_file_id"_L1, fileId},
                                       {"endpoint"_L1, "/v1/chat/completions"_L1},
                                       {"completion_window"_L1, "24h"_L1},
                                       {"metadata"_L1, QJsonObject{{"who"_L1, "me"_L1}}}})
                 .toJson(),
             {{"OpenAI-Organization", "org-1"},
              {"OpenAI-Project", "proj-1"},
              {"User-Agent", "tester/1"}});
    const QByteArray id = result.json().value("id"_L1).toString().toUtf8();
    QCOMPARE(created.size(), 1);
    QCOMPARE(created.first().first().toByteArray(), id);
    QVERIFY(finished.wait(5000));
    QCOMPARE(finished.first().first().toByteArray(), id);

    const QList<FakeProvider::BatchRecord> batches = m_fake->batches();
    QCOMPARE(batches.size(), 1);
    const FakeProvider::BatchRecord &b = batches.first();
    QCOMPARE(b.id, id);
    QCOMPARE(b.endpoint, "/v1/chat/completions");
    QCOMPARE(b.model, "gpt-4o-mini");
    QCOMPARE(b.inputFileId, fileId.toUtf8());
    QCOMPARE(b.metadata.value("who"_L1).toString(), u"me"_s);
    QCOMPARE(b.customIds, (QList<QByteArray>{"x1", "x2"}));
    QCOMPARE(b.authorization, "Bearer " + m_key);
    QCOMPARE(b.organization, "org-1");
    QCOMPARE(b.project, "proj-1");
    QCOMPARE(m_fake->inputLinesTotal(), 2);

    QCOMPARE(received.size(), 2);
    QCOMPARE(m_fake->requests().size(), 2);
    const FakeProvider::RequestRecord &r = m_fake->requests().last();
    QCOMPARE(r.method, "POST");
    QCOMPARE(r.path, "/v1/batches");
    QCOMPARE(r.headers.value("openai-organization"), "org-1");
    QCOMPARE(r.headers.value("user-agent"), "tester/1");
    QCOMPARE(r.headers.value("content-type"), "application/json");
    QCOMPARE(m_fake->count("POST", "/v1/files"), 1);
    QCOMPARE(m_fake->count("", "/v1/"), 2);
    QCOMPARE(m_fake->count("GET", "/v1/"), 0);

    const QByteArray outputId =
        m_fake->batchObject(id).value("output_file_id"_L1).toString().toUtf8();
    QCOMPARE(m_fake->filesLive(), 2);
    QVERIFY(m_fake->liveFileIds().contains(outputId));
    QCOMPARE(call("DELETE", v1(u"/files/"_s + QString::fromUtf8(outputId))).status, 200);
    QCOMPARE(m_fake->deletedFileIds(), QList<QByteArray>{outputId});
    QCOMPARE(m_fake->filesLive(), 1);
}

void tst_FakeProvider::controlOverHttp() {
    const auto post = [&](const QString &path, const QByteArray &body) {
        return call("POST", control(path), body, {}, false);
    };
    QCOMPARE(post(u"config"_s, R"({"validation_delay_ms":5,"processing_delay_ms":5,
                                   "fail_next":{"op":"list","count":1,"status":500,
                                                "retry_after":3}})")
                 .status,
             200);
    HttpResult result = call("GET", v1(u"/batches"_s));
    QCOMPARE(result.status, 500);
    QCOMPARE(result.header("retry-after"), "3");
    QCOMPARE(call("GET", v1(u"/batches"_s)).status, 200);
    QCOMPARE(post(u"config"_s, R"({"no_such_key":1})").status, 400);
    QCOMPARE(post(u"config"_s, R"({"fail_next":{"op":"fly","status":500}})").status, 400);
    QCOMPARE(post(u"config"_s, R"({"validation_delay_ms":-1})").status, 400);
    QCOMPARE(post(u"config"_s, "not json").status, 400);

    QCOMPARE(
        post(u"config"_s, R"({"fail_batches":{"count":1,"code":"token_limit_exceeded"}})").status,
        200);
    QCOMPARE(runBatch(jsonl({chatLine(u"a"_s, u"x"_s)})).value("status"_L1).toString(),
             u"failed"_s);
    call("GET", v1(u"/models"_s), {}, {{"OpenAI-Organization", "org-9"}});

    result = call("GET", control(u"state"_s), {}, {}, false);
    QCOMPARE(result.status, 200);
    QJsonObject state = result.json();
    QCOMPARE(state.value("batches_created"_L1).toInt(), 1);
    QCOMPARE(state.value("input_lines_total"_L1).toInt(), 1);
    QCOMPARE(state.value("files_live"_L1).toInt(), 1);
    QCOMPARE(state.value("per_model"_L1)
                 .toObject()
                 .value("gpt-4o-mini"_L1)
                 .toObject()
                 .value("lines"_L1)
                 .toInt(),
             1);
    QCOMPARE(state.value("per_endpoint"_L1)
                 .toObject()
                 .value("/v1/chat/completions"_L1)
                 .toObject()
                 .value("batches"_L1)
                 .toInt(),
             1);
    const QJsonObject batch = state.value("batches"_L1).toArray().first().toObject();
    QCOMPARE(batch.value("api_key"_L1).toString().toUtf8(), m_key);
    QCOMPARE(batch.value("status"_L1).toString(), u"failed"_s);
    QCOMPARE(state.value("organizations_seen"_L1).toArray(), QJsonArray{u"org-9"_s});
    // Control calls are not in the request log.
    QCOMPARE(state.value("requests_total"_L1).toInt(), static_cast<int>(m_fake->requests().size()));
    QCOMPARE(m_fake->count("", "/_fake"), 0);

    QCOMPARE(post(u"config"_s, R"({"never_finish":true})").status, 200);
    const QString id =
        createBatch(uploadId(jsonl({chatLine(u"a"_s, u"x"_s)}))).json().value("id"_L1).toString();
    QCOMPARE(waitUntil(id, {u"in_progress"_s}).value("status"_L1).toString(), u"in_progress"_s);

    QCOMPARE(post(u"reset"_s, {}).status, 200);
    state = call("GET", control(u"state"_s), {}, {}, false).json();
    QCOMPARE(state.value("batches_created"_L1).toInt(), 0);
    QCOMPARE(state.value("files_live"_L1).toInt(), 0);
    QCOMPARE(state.value("requests_total"_L1).toInt(), 0);
    QCOMPARE(call("GET", v1(u"/batches/"_s + id)).status, 404);
    QCOMPARE(call("GET", control(u"nope"_s), {}, {}, false).status, 404);
}

void tst_FakeProvider::executable() {
    const QString program = QCoreApplication::applicationDirPath() + u"/support/fake-openai"_s;
    if (!QFileInfo::exists(program))
        QSKIP("fake-openai is not built next to this test");
    QProcess process;
    process.start(program, {u"--port"_s, u"0"_s, u"--validation-delay-ms"_s, u"5"_s,
                            u"--processing-delay-ms"_s, u"5"_s});
    QVERIFY(process.waitForStarted(5000));
    QTRY_VERIFY_WITH_TIMEOUT(process.canReadLine(), 10000);
    const QByteArray line = process.readLine();
    const QRegularExpression pattern(u"^listening on http://127\\.0\\.0\\.1:(\\d+)/v1\\n$"_s);
    const QRegularExpressionMatch match = pattern.match(QString::fromUtf8(line));
    QVERIFY2(match.hasMatch(), line.constData());
    const QUrl models(u"http://127.0.0.1:%1/v1/models"_s.arg(match.captured(1)));
    QCOMPARE(call("GET", models).status, 200);
    QCOMPARE(call("GET", models, {}, {}, false).status, 401);

    process.terminate(); // SIGTERM
    QVERIFY(process.waitForFinished(5000));
    QCOMPARE(process.exitStatus(), QProcess::NormalExit);
    QCOMPARE(process.exitCode(), 0);
    QCOMPARE(process.readAllStandardOutput(), QByteArray()); // exactly one line was printed

    process.start(program, {u"--port"_s, u"nope"_s});
    QVERIFY(process.waitForFinished(5000));
    QCOMPARE(process.exitCode(), 2);
}

LLMPROXY_TEST_MAIN(tst_FakeProvider)
#include "tst_fakeprovider.moc"
