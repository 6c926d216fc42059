// SPDX-License-Identifier: GPL-3.0-or-later
// OpenAiProvider against a scripted raw HTTP/1.1 server on 127.0.0.1, so that every byte the
// provider sends can be checked and every failure (refused, cut short, stalled) can be staged.

#include "provider/openaiprovider.h"
#include "testmain.h"

#include <QDateTime>
#include <QElapsedTimer>
#include <QFile>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLocale>
#include <QNetworkAccessManager>
#include <QNetworkCookieJar>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QPointer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>
#include <QThread>
#include <QTimer>

#include <functional>
#include <memory>
#include <tuple>

#if defined(__SANITIZE_ADDRESS__)
#define LLMPROXY_TEST_ASAN 1
// Keep ASan's quarantine of freed blocks small, or it dominates the peak-memory measurement.
extern "C" const char *__asan_default_options() {
    return "quarantine_size_mb=16";
}
#endif

using namespace std::chrono_literals;

namespace llmproxy::test {
namespace {

struct HttpRequest {
    QByteArray method;
    QByteArray target; // path and query, as sent
    QList<std::pair<QByteArray, QByteArray>> headers;
    QByteArray body;

    bool hasHeader(QByteArrayView name) const {
        for (const auto &[key, value] : headers) {
            if (key.compare(name, Qt::CaseInsensitive) == 0)
                return true;
        }
        return false;
    }
    QByteArray header(QByteArrayView name) const {
        for (const auto &[key, value] : headers) {
            if (key.compare(name, Qt::CaseInsensitive) == 0)
                return value;
        }
        return {};
    }
};

// A raw HTTP/1.1 server: parses requests (Content-Length bodies only, which is all Qt sends
// here), records them and hands each to the current handler, which writes whatever it likes.
class ScriptedServer final {
public:
    using Handler = std::function<void(const HttpRequest &, QTcpSocket *)>;

    ScriptedServer() {
        QObject::connect(&m_server, &QTcpServer::newConnection, &m_server, [this] {
            while (QTcpSocket *socket = m_server.nextPendingConnection()) {
                QObject::connect(socket, &QTcpSocket::readyRead, socket,
                                 [this, socket] { readFrom(socket); });
                QObject::connect(socket, &QTcpSocket::disconnected, socket, [this, socket] {
                    m_buffers.remove(socket);
                    socket->deleteLater();
                });
            }
        });
    }

    bool listen() { return m_server.listen(QHostAddress::LocalHost, 0); }
    quint16 port() const { return m_server.serverPort(); }
    QUrl baseUrl() const { return QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(port())); }
    void setHandler(Handler handler) { m_handler = std::move(handler); }
    const QList<HttpRequest> &requests() const { return m_requests; }

    static void respond(QTcpSocket *socket, int status, const QByteArray &body,
                        const QList<std::pair<QByteArray, QByteArray>> &extraHeaders = {},
                        const QByteArray &contentType = QByteArrayLiteral("application/json")) {
        QByteArray out = QByteArrayLiteral("HTTP/1.1 ") + QByteArray::number(status) +
                         QByteArrayLiteral(" Status\r\nContent-Type: ") + contentType +
                         QByteArrayLiteral("\r\nContent-Length: ") +
                         QByteArray::number(body.size()) + QByteArrayLiteral("\r\n");
        for (const auto &[key, value] : extraHeaders)
            out += key + QByteArrayLiteral(": ") + value + QByteArrayLiteral("\r\n");
        out += QByteArrayLiteral("\r\n") + body;
        socket->write(out);
    }

private:
    void readFrom(QTcpSocket *socket) {
        QByteArray &buf = m_buffers[socket];
        buf += socket->readAll();
        for (;;) {
            const qsizetype end = buf.indexOf("\r\n\r\n");
            if (end < 0)
                return;
            HttpRequest req;
            const QList<QByteArray> lines = buf.left(end).split('\n');
            const QList<QByteArray> requestLine = lines.value(0).trimmed().split(' ');
            req.method = requestLine.value(0);
            req.target = requestLine.value(1);
            qsizetype length = 0;
            for (qsizetype i = 1; i < lines.size(); ++i) {
                const qsizetype colon = lines[i].indexOf(':');
                if (colon < 0)
                    continue;
                req.headers.append(
                    {lines[i].left(colon).trimmed(), lines[i].mid(colon + 1).trimmed()});
                if (req.headers.constLast().first.compare("content-length", Qt::CaseInsensitive) ==
                    0)
                    length = req.headers.constLast().second.toLongLong();
            }
            if (buf.size() < end + 4 + length)
                return;
            req.body = buf.mid(end + 4, length);
            buf.remove(0, end + 4 + length);
            m_requests.append(req);
            if (m_handler)
                m_handler(req, socket);
            if (!m_buffers.contains(socket))
                return;
        }
    }

    Handler m_handler;
    QHash<QTcpSocket *, QByteArray> m_buffers;
    QList<HttpRequest> m_requests;
    QTcpServer m_server; // last: its sockets (children) go first and still see the members
};

// Serves one generated file of `lines` fixed-size JSONL lines from its own thread, writing as
// fast as the client's socket accepts (its own buffer stays under 256 KiB).
class BulkFileServer final {
public:
    BulkFileServer(qint64 lineBytes, qint64 lines)
        : m_lineBytes(lineBytes)
        , m_lines(lines) {}
    ~BulkFileServer() {
        m_thread.quit();
        m_thread.wait();
    }

    // Listens on 127.0.0.1 and starts the thread; the port, or 0.
    quint16 start() {
        auto server = std::make_unique<QTcpServer>();
        if (!server->listen(QHostAddress::LocalHost, 0))
            return 0;
        const quint16 port = server->serverPort();
        server->moveToThread(&m_thread);
        // Deleted on its own thread when the thread ends.
        QTcpServer *raw = server.release();
        QObject::connect(&m_thread, &QThread::finished, raw, &QObject::deleteLater);
        const qint64 lineBytes = m_lineBytes;
        const qint64 lines = m_lines;
        QObject::connect(raw, &QTcpServer::newConnection, raw, [raw, lineBytes, lines] {
            while (QTcpSocket *s = raw->nextPendingConnection())
                serve(s, lineBytes, lines);
        });
        m_thread.start();
        return port;
    }

private:
    static void serve(QTcpSocket *s, qint64 lineBytes, qint64 lines) {
        auto request = std::make_shared<QByteArray>();
        auto next = std::make_shared<qint64>(-1); // -1: headers not sent yet
        auto fill = [s, next, lineBytes, lines] {
            while (*next >= 0 && *next < lines && s->bytesToWrite() < 256 * 1024) {
                QByteArray chunk;
                chunk.reserve(64 * lineBytes);
                for (int k = 0; k < 64 && *next < lines; ++k, ++*next) {
                    QByteArray line = QByteArrayLiteral("{\"custom_id\":\"req-") +
                                      QByteArray::number(*next).rightJustified(8, '0') +
                                      QByteArrayLiteral("\",\"pad\":\"");
                    line += QByteArray(lineBytes - line.size() - 3, 'x');
                    line += QByteArrayLiteral("\"}\n");
                    chunk += line;
                }
                s->write(chunk);
            }
        };
        QObject::connect(s, &QTcpSocket::readyRead, s, [s, request, next, fill, lineBytes, lines] {
            *request += s->readAll();
            if (*next >= 0 || !request->contains("\r\n\r\n"))
                return;
            s->write(QByteArrayLiteral("HTTP/1.1 200 OK\r\n"
                                       "Content-Type: application/octet-stream\r\n"
                                       "Content-Length: ") +
                     QByteArray::number(lineBytes * lines) + QByteArrayLiteral("\r\n\r\n"));
            *next = 0;
            fill();
        });
        QObject::connect(s, &QTcpSocket::bytesWritten, s, fill);
        QObject::connect(s, &QTcpSocket::disconnected, s, &QObject::deleteLater);
    }

    const qint64 m_lineBytes;
    const qint64 m_lines;
    QThread m_thread;
};

struct MultipartPart {
    QList<std::pair<QByteArray, QByteArray>> headers;
    QByteArray content;
    QByteArray header(QByteArrayView name) const {
        for (const auto &[key, value] : headers) {
            if (key.compare(name, Qt::CaseInsensitive) == 0)
                return value;
        }
        return {};
    }
};

// Splits a multipart body (RFC 2046) into its parts; an empty list if it is malformed.
QList<MultipartPart> parseMultipart(const QByteArray &body, const QByteArray &boundary) {
    QList<MultipartPart> parts;
    const QByteArray first = QByteArrayLiteral("--") + boundary + QByteArrayLiteral("\r\n");
    const QByteArray delimiter = QByteArrayLiteral("\r\n--") + boundary;
    if (!body.startsWith(first))
        return {};
    qsizetype pos = first.size();
    for (;;) {
        const qsizetype headersEnd = body.indexOf("\r\n\r\n", pos);
        const qsizetype next = body.indexOf(delimiter, pos);
        if (headersEnd < 0 || next < 0 || headersEnd > next)
            return {};
        MultipartPart part;
        const QList<QByteArray> lines = body.mid(pos, headersEnd - pos).split('\n');
        for (const QByteArray &line : lines) {
            const qsizetype colon = line.indexOf(':');
            if (colon > 0)
                part.headers.append({line.left(colon).trimmed(), line.mid(colon + 1).trimmed()});
        }
        part.content = body.mid(headersEnd + 4, next - headersEnd - 4);
        parts.append(part);
        pos = next + delimiter.size();
        if (body.mid(pos, 2) == "--")
            return parts;
        if (body.mid(pos, 2) != "\r\n")
            return {};
        pos += 2;
    }
}

// The peak resident set size of this process, in KiB (-1 if unknown).
qint64 peakRssKiB() {
    QFile f(QStringLiteral("/proc/self/status"));
    if (!f.open(QIODevice::ReadOnly))
        return -1;
    const QList<QByteArray> lines = f.readAll().split('\n');
    for (const QByteArray &line : lines) {
        if (line.startsWith("VmHWM:"))
            return line.mid(6).trimmed().split(' ').value(0).toLongLong();
    }
    return -1;
}

// Resets VmHWM to the current RSS (Linux ≥ 4.0); false if not allowed.
bool resetPeakRss() {
    QFile f(QStringLiteral("/proc/self/clear_refs"));
    return f.open(QIODevice::WriteOnly) && f.write("5") == 1;
}

// The Batch example from OpenAI's spec (/batches/{batch_id} GET, trailing comma removed), with
// errors filled in as a failed validation reports them.
const char kSpecBatch[] = R"({
  "id": "batch_abc123",
  "object": "batch",
  "endpoint": "/v1/completions",
  "errors": {"object": "list", "data": [
    {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
     "param": null, "line": 1},
    {"code": "token_limit_exceeded", "message": "Enqueued token limit reached.",
     "param": null, "line": null}
  ]},
  "input_file_id": "file-abc123",
  "completion_window": "24h",
  "status": "completed",
  "output_file_id": "file-cvaTdG",
  "error_file_id": "file-HOWS94",
  "created_at": 1711471533,
  "in_progress_at": 1711471538,
  "expires_at": 1711557933,
  "finalizing_at": 1711493133,
  "completed_at": 1711493163,
  "failed_at": null,
  "expired_at": null,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {
    "total": 100,
    "completed": 95,
    "failed": 5
  },
  "metadata": {
    "customer_id": "user_123456789",
    "batch_description": "Nightly eval job"
  }
})";

// The create example's answer: nulls everywhere they may be.
const char kValidatingBatch[] = R"({
  "id": "batch_abc123", "object": "batch", "endpoint": "/v1/chat/completions",
  "errors": null, "input_file_id": "file-abc123", "completion_window": "24h",
  "status": "validating", "output_file_id": null, "error_file_id": null,
  "created_at": 1711471533, "in_progress_at": null, "expires_at": null,
  "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": null
})";

QByteArray batchJson(const QByteArray &id, const QByteArray &status = "in_progress") {
    return QByteArrayLiteral("{\"id\":\"") + id + QByteArrayLiteral("\",\"object\":\"batch\",") +
           QByteArrayLiteral("\"endpoint\":\"/v1/chat/completions\",\"status\":\"") + status +
           QByteArrayLiteral("\",\"input_file_id\":\"file-in\",\"created_at\":1}");
}

} // namespace
} // namespace llmproxy::test

using namespace llmproxy;
using namespace llmproxy::test;

class tst_Provider final : public QObject {
    Q_OBJECT

private slots:
    void init();
    void cleanup();

    void endpointUrl_data();
    void endpointUrl();
    void headers_data();
    void headers();
    void upload();
    void createBatch();
    void parseBatch_data();
    void parseBatch();
    void retrieveAndCancel();
    void listBatches_data();
    void listBatches();
    void deleteFile_data();
    void deleteFile();
    void errors_data();
    void errors();
    void retryAfter_data();
    void retryAfter();
    void retryable_data();
    void retryable();
    void connectionRefused();
    void connectionClosedMidAnswer_data();
    void connectionClosedMidAnswer();
    void transferTimeout();
    void downloadInChunks();
    void downloadErrorBody();
    void downloadLarge();
    void destroyWhileInFlight();
    void destroyFromLineCallback();
    void downloadSkipsTooLongLines_data();
    void downloadSkipsTooLongLines();
    void noCookiesAcrossKeys_data();
    void noCookiesAcrossKeys();
    void sendSynchronous_data();
    void sendSynchronous();
    void sendSynchronousTransportFailure_data();
    void sendSynchronousTransportFailure();
    void sendSynchronousOutlivesShortTransferTimeout();
    void syncAnswerRetryable_data();
    void syncAnswerRetryable();

private:
    std::unique_ptr<OpenAiProvider> makeProvider() {
        return std::make_unique<OpenAiProvider>(m_nam.get(), m_server->baseUrl());
    }
    // sendSynchronous() and wait; nullopt unless its callback ran exactly once.
    std::optional<ProviderResult<SyncAnswer>>
    sendSync(OpenAiProvider &provider, const QByteArray &endpoint, const QByteArray &body);
    // retrieveBatch() and wait; nullopt unless its callback ran exactly once.
    std::optional<ProviderResult<BatchInfo>> retrieve(OpenAiProvider &provider,
                                                      const QByteArray &id);

    Credentials m_creds{QByteArrayLiteral("sk-test-0123456789abcdefSECRET"), {}, {}};
    std::unique_ptr<QNetworkAccessManager> m_nam;
    std::unique_ptr<ScriptedServer> m_server;
};

void tst_Provider::init() {
    m_nam = std::make_unique<QNetworkAccessManager>();
    m_nam->setProxy(QNetworkProxy::NoProxy);
    m_server = std::make_unique<ScriptedServer>();
    QVERIFY(m_server->listen());
}

void tst_Provider::cleanup() {
    m_server.reset();
    m_nam.reset();
}

std::optional<ProviderResult<BatchInfo>> tst_Provider::retrieve(OpenAiProvider &provider,
                                                                const QByteArray &id) {
    std::optional<ProviderResult<BatchInfo>> result;
    int calls = 0;
    provider.retrieveBatch(m_creds, id, [&](ProviderResult<BatchInfo> r) {
        ++calls;
        result = std::move(r);
    });
    if (!QTest::qWaitFor([&] { return result.has_value(); }, 10000))
        qWarning("no answer within 10 s");
    QTest::qWait(20);
    if (calls != 1) {
        qWarning("the callback ran %d times", calls);
        return std::nullopt;
    }
    return result;
}

std::optional<ProviderResult<SyncAnswer>> tst_Provider::sendSync(OpenAiProvider &provider,
                                                                 const QByteArray &endpoint,
                                                                 const QByteArray &body) {
    std::optional<ProviderResult<SyncAnswer>> result;
    int calls = 0;
    provider.sendSynchronous(m_creds, endpoint, body, [&](ProviderResult<SyncAnswer> r) {
        ++calls;
        result = std::move(r);
    });
    if (!QTest::qWaitFor([&] { return result.has_value(); }, 10000))
        qWarning("no answer within 10 s");
    QTest::qWait(20);
    if (calls != 1) {
        qWarning("the callback ran %d times", calls);
        return std::nullopt;
    }
    return result;
}

void tst_Provider::endpointUrl_data() {
    QTest::addColumn<QString>("base");
    QTest::addColumn<QByteArray>("path");
    QTest::addColumn<QByteArray>("query");
    QTest::addColumn<QByteArray>("expected");
    QTest::newRow("v1") << QStringLiteral("http://127.0.0.1:9/v1") << QByteArray("/batches")
                        << QByteArray() << QByteArray("http://127.0.0.1:9/v1/batches");
    QTest::newRow("trailing slash")
        << QStringLiteral("https://api.openai.com/v1/") << QByteArray("/files") << QByteArray()
        << QByteArray("https://api.openai.com/v1/files");
    QTest::newRow("deeper path") << QStringLiteral("http://127.0.0.1:9/openai/v1")
                                 << QByteArray("/batches") << QByteArray("limit=2")
                                 << QByteArray("http://127.0.0.1:9/openai/v1/batches?limit=2");
    QTest::newRow("no path") << QStringLiteral("http://127.0.0.1:9") << QByteArray("/files")
                             << QByteArray() << QByteArray("http://127.0.0.1:9/files");
    QTest::newRow("encoded id") << QStringLiteral("http://127.0.0.1:9/v1")
                                << QByteArray("/files/a%2Fb%20c%3F/content") << QByteArray()
                                << QByteArray("http://127.0.0.1:9/v1/files/a%2Fb%20c%3F/content");
}

void tst_Provider::endpointUrl() {
    QFETCH(QString, base);
    QFETCH(QByteArray, path);
    QFETCH(QByteArray, query);
    QFETCH(QByteArray, expected);
    QNetworkAccessManager nam;
    OpenAiProvider provider(&nam, QUrl(base));
    const QUrl url = provider.endpointUrl(path, query);
    QVERIFY(url.isValid());
    QCOMPARE(url.toEncoded(), expected);
}

void tst_Provider::headers_data() {
    QTest::addColumn<QByteArray>("organization");
    QTest::addColumn<QByteArray>("project");
    QTest::newRow("key only") << QByteArray() << QByteArray();
    QTest::newRow("organization") << QByteArray("org-123") << QByteArray();
    QTest::newRow("project") << QByteArray() << QByteArray("proj_456");
    QTest::newRow("both") << QByteArray("org-123") << QByteArray("proj_456");
}

void tst_Provider::headers() {
    QFETCH(QByteArray, organization);
    QFETCH(QByteArray, project);
    m_creds.organization = organization;
    m_creds.project = project;
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, 200, batchJson("batch_1"));
    });
    auto provider = makeProvider();
    const auto result = retrieve(*provider, "batch_1");
    QVERIFY(result);
    QVERIFY(result->ok());
    QCOMPARE(m_server->requests().size(), 1);
    const HttpRequest &req = m_server->requests().constFirst();
    QCOMPARE(req.method, QByteArray("GET"));
    QCOMPARE(req.target, QByteArray("/v1/batches/batch_1"));
    QCOMPARE(req.header("Authorization"), QByteArray("Bearer ") + m_creds.apiKey);
    QCOMPARE(req.hasHeader("OpenAI-Organization"), !organization.isEmpty());
    QCOMPARE(req.header("OpenAI-Organization"), organization);
    QCOMPARE(req.hasHeader("OpenAI-Project"), !project.isEmpty());
    QCOMPARE(req.header("OpenAI-Project"), project);
    QCOMPARE(req.header("User-Agent"), QByteArray("llm-proxy/" LLMPROXY_VERSION));
}

void tst_Provider::upload() {
    // Every byte value, CRLF and a line without newline: the upload must be byte-exact.
    QByteArray jsonl = QByteArrayLiteral("{\"custom_id\":\"a\",\"body\":\"h\\u00e9 \xc3\xa9\"}\n"
                                         "{\"custom_id\":\"b\"}\r\n--not-a-boundary\r\n");
    for (int i = 0; i < 256; ++i)
        jsonl += char(i);
    jsonl += QByteArray(300000, 'z');
    const QByteArray original = jsonl;

    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, 200,
                                R"({"id":"file-xyz","object":"file","bytes":300299,)"
                                R"("created_at":1,"filename":"b.jsonl","purpose":"batch"})");
    });
    auto provider = makeProvider();
    std::optional<ProviderResult<FileInfo>> result;
    provider->uploadBatchFile(m_creds, jsonl, QStringLiteral("batch \"7\".jsonl"),
                              [&](ProviderResult<FileInfo> r) { result = std::move(r); });
    jsonl.fill('!'); // the caller reusing its buffer must not change what is sent
    QTRY_VERIFY_WITH_TIMEOUT(result.has_value(), 10000);
    QVERIFY(result->ok());
    QCOMPARE(result->value->id, QByteArray("file-xyz"));
    QCOMPARE(result->value->bytes, qint64(300299));

    QCOMPARE(m_server->requests().size(), 1);
    const HttpRequest &req = m_server->requests().constFirst();
    QCOMPARE(req.method, QByteArray("POST"));
    QCOMPARE(req.target, QByteArray("/v1/files"));
    QCOMPARE(req.header("Authorization"), QByteArray("Bearer ") + m_creds.apiKey);
    const QByteArray contentType = req.header("Content-Type");
    QVERIFY2(contentType.startsWith("multipart/form-data; boundary="), contentType.constData());
    const QByteArray boundary = contentType.mid(contentType.indexOf('=') + 1);
    QVERIFY(!boundary.isEmpty());
    QVERIFY(!boundary.contains('"'));

    const QList<MultipartPart> parts = parseMultipart(req.body, boundary);
    QCOMPARE(parts.size(), 2);
    QCOMPARE(parts[0].header("Content-Disposition"), QByteArray("form-data; name=\"purpose\""));
    QCOMPARE(parts[0].content, QByteArray("batch"));
    QCOMPARE(parts[1].header("Content-Disposition"),
             QByteArray("form-data; name=\"file\"; filename=\"batch _7_.jsonl\""));
    QCOMPARE(parts[1].header("Content-Type"), QByteArray("application/jsonl"));
    QCOMPARE(parts[1].content.size(), original.size());
    QVERIFY(parts[1].content == original);
}

void tst_Provider::createBatch() {
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, 200, kValidatingBatch);
    });
    auto provider = makeProvider();
    const QJsonObject metadata{{QStringLiteral("llmproxy_group"), QStringLiteral("g-1")},
                               {QStringLiteral("note"), QStringLiteral("é")}};
    std::optional<ProviderResult<BatchInfo>> result;
    provider->createBatch(m_creds, "file-abc123", "/v1/chat/completions", metadata,
                          [&](ProviderResult<BatchInfo> r) { result = std::move(r); });
    QTRY_VERIFY_WITH_TIMEOUT(result.has_value(), 10000);
    QVERIFY(result->ok());
    QCOMPARE(result->value->status, QByteArray("validating"));
    QCOMPARE(result->value->outputFileId, QByteArray());
    QVERIFY(!result->value->isTerminal());

    QCOMPARE(m_server->requests().size(), 1);
    const HttpRequest &req = m_server->requests().constFirst();
    QCOMPARE(req.method, QByteArray("POST"));
    QCOMPARE(req.target, QByteArray("/v1/batches"));
    QCOMPARE(req.header("Content-Type"), QByteArray("application/json"));
    const QJsonObject body = QJsonDocument::fromJson(req.body).object();
    QCOMPARE(body.size(), 4);
    QCOMPARE(body.value(QStringLiteral("input_file_id")).toString(), QStringLiteral("file-abc123"));
    QCOMPARE(body.value(QStringLiteral("endpoint")).toString(),
             QStringLiteral("/v1/chat/completions"));
    QCOMPARE(body.value(QStringLiteral("completion_window")).toString(), QStringLiteral("24h"));
    QCOMPARE(body.value(QStringLiteral("metadata")).toObject(), metadata);
}

void tst_Provider::parseBatch_data() {
    QTest::addColumn<QByteArray>("json");
    QTest::addColumn<bool>("valid");
    QTest::addColumn<QByteArray>("status");
    QTest::addColumn<QByteArray>("outputFileId");
    QTest::addColumn<QByteArray>("errorFileId");
    QTest::addColumn<int>("total");
    QTest::addColumn<int>("completed");
    QTest::addColumn<int>("failed");
    QTest::addColumn<int>("errorCount");
    QTest::addColumn<bool>("terminal");

    QTest::newRow("spec example") << QByteArray(kSpecBatch) << true << QByteArray("completed")
                                  << QByteArray("file-cvaTdG") << QByteArray("file-HOWS94") << 100
                                  << 95 << 5 << 2 << true;
    QTest::newRow("nulls") << QByteArray(kValidatingBatch) << true << QByteArray("validating")
                           << QByteArray() << QByteArray() << 0 << 0 << 0 << 0 << false;
    QTest::newRow("minimal") << batchJson("b", "cancelling") << true << QByteArray("cancelling")
                             << QByteArray() << QByteArray() << 0 << 0 << 0 << 0 << false;
    QTest::newRow("expired") << batchJson("b", "expired") << true << QByteArray("expired")
                             << QByteArray() << QByteArray() << 0 << 0 << 0 << 0 << true;
    QTest::newRow("not json") << QByteArray("<html>") << false << QByteArray() << QByteArray()
                              << QByteArray() << 0 << 0 << 0 << 0 << false;
    QTest::newRow("array") << QByteArray("[]") << false << QByteArray() << QByteArray()
                           << QByteArray() << 0 << 0 << 0 << 0 << false;
    QTest::newRow("no id") << QByteArray(R"({"status":"completed"})") << false << QByteArray()
                           << QByteArray() << QByteArray() << 0 << 0 << 0 << 0 << false;
    QTest::newRow("no status") << QByteArray(R"({"id":"batch_1"})") << false << QByteArray()
                               << QByteArray() << QByteArray() << 0 << 0 << 0 << 0 << false;
}

void tst_Provider::parseBatch() {
    QFETCH(QByteArray, json);
    QFETCH(bool, valid);
    const std::optional<BatchInfo> b = OpenAiProvider::parseBatch(json);
    QCOMPARE(b.has_value(), valid);
    if (!valid)
        return;
    QFETCH(QByteArray, status);
    QFETCH(QByteArray, outputFileId);
    QFETCH(QByteArray, errorFileId);
    QFETCH(int, total);
    QFETCH(int, completed);
    QFETCH(int, failed);
    QFETCH(int, errorCount);
    QFETCH(bool, terminal);
    QCOMPARE(b->status, status);
    QCOMPARE(b->outputFileId, outputFileId);
    QCOMPARE(b->errorFileId, errorFileId);
    QCOMPARE(b->total, total);
    QCOMPARE(b->completed, completed);
    QCOMPARE(b->failed, failed);
    QCOMPARE(b->errors.size(), errorCount);
    QCOMPARE(b->isTerminal(), terminal);

    if (QByteArrayView(QTest::currentDataTag()) == "spec example") {
        QCOMPARE(b->id, QByteArray("batch_abc123"));
        QCOMPARE(b->endpoint, QByteArray("/v1/completions"));
        QCOMPARE(b->inputFileId, QByteArray("file-abc123"));
        QCOMPARE(b->createdAt, qint64(1711471533));
        QCOMPARE(b->metadata.value(QStringLiteral("customer_id")).toString(),
                 QStringLiteral("user_123456789"));
        QCOMPARE(b->metadata.size(), 2);
        QCOMPARE(b->errors[0].code, QByteArray("invalid_json_line"));
        QCOMPARE(b->errors[0].message, QStringLiteral("This line is not parseable as valid JSON."));
        QCOMPARE(b->errors[0].line, 1);
        QCOMPARE(b->errors[1].code, QByteArray("token_limit_exceeded"));
        QCOMPARE(b->errors[1].line, -1);
    }
    if (QByteArrayView(QTest::currentDataTag()) == "nulls") {
        QVERIFY(b->metadata.isEmpty());
        QCOMPARE(b->createdAt, qint64(1711471533));
    }
}

void tst_Provider::retrieveAndCancel() {
    m_server->setHandler([](const HttpRequest &req, QTcpSocket *s) {
        ScriptedServer::respond(s, 200,
                                batchJson("batch/x y", req.target.endsWith("/cancel")
                                                           ? QByteArray("cancelling")
                                                           : QByteArray("in_progress")));
    });
    auto provider = makeProvider();
    const auto got = retrieve(*provider, "batch/x y");
    QVERIFY(got);
    QVERIFY(got->ok());
    QCOMPARE(got->value->id, QByteArray("batch/x y"));
    QCOMPARE(got->value->status, QByteArray("in_progress"));

    std::optional<ProviderResult<BatchInfo>> cancelled;
    provider->cancelBatch(m_creds, "batch/x y",
                          [&](ProviderResult<BatchInfo> r) { cancelled = std::move(r); });
    QTRY_VERIFY_WITH_TIMEOUT(cancelled.has_value(), 10000);
    QVERIFY(cancelled->ok());
    QCOMPARE(cancelled->value->status, QByteArray("cancelling"));

    QCOMPARE(m_server->requests().size(), 2);
    QCOMPARE(m_server->requests()[0].method, QByteArray("GET"));
    QCOMPARE(m_server->requests()[0].target, QByteArray("/v1/batches/batch%2Fx%20y"));
    QCOMPARE(m_server->requests()[1].method, QByteArray("POST"));
    QCOMPARE(m_server->requests()[1].target, QByteArray("/v1/batches/batch%2Fx%20y/cancel"));
}

void tst_Provider::listBatches_data() {
    QTest::addColumn<QByteArray>("after");
    QTest::addColumn<int>("limit");
    QTest::addColumn<QByteArray>("target");
    QTest::newRow("first page") << QByteArray() << 2 << QByteArray("/v1/batches?limit=2");
    QTest::newRow("next page") << QByteArray("batch_b") << 2
                               << QByteArray("/v1/batches?limit=2&after=batch_b");
    QTest::newRow("limit clamped")
        << QByteArray("batch_b") << 500 << QByteArray("/v1/batches?limit=100&after=batch_b");
    QTest::newRow("default limit")
        << QByteArray("a&b=c") << 0 << QByteArray("/v1/batches?after=a%26b%3Dc");
}

void tst_Provider::listBatches() {
    QFETCH(QByteArray, after);
    QFETCH(int, limit);
    QFETCH(QByteArray, target);
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        const QByteArray page = QByteArrayLiteral("{\"object\":\"list\",\"data\":[") +
                                llmproxy::test::batchJson("batch_c", "completed") + ',' +
                                llmproxy::test::batchJson("batch_d", "failed") +
                                QByteArrayLiteral("],\"first_id\":\"batch_c\","
                                                  "\"last_id\":\"batch_d\",\"has_more\":true}");
        ScriptedServer::respond(s, 200, page);
    });
    auto provider = makeProvider();
    std::optional<ProviderResult<BatchPage>> result;
    provider->listBatches(m_creds, after, limit,
                          [&](ProviderResult<BatchPage> r) { result = std::move(r); });
    QTRY_VERIFY_WITH_TIMEOUT(result.has_value(), 10000);
    QVERIFY(result->ok());
    QCOMPARE(m_server->requests().size(), 1);
    QCOMPARE(m_server->requests().constFirst().method, QByteArray("GET"));
    QCOMPARE(m_server->requests().constFirst().target, target);
    const BatchPage &page = *result->value;
    QCOMPARE(page.batches.size(), 2);
    QCOMPARE(page.batches[0].id, QByteArray("batch_c"));
    QCOMPARE(page.batches[1].status, QByteArray("failed"));
    QVERIFY(page.hasMore);
    QCOMPARE(page.lastId, QByteArray("batch_d"));
}

void tst_Provider::deleteFile_data() {
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<int>("errorStatus");
    QTest::newRow("deleted") << 200
                             << QByteArray(R"({"id":"file-1","object":"file","deleted":true})")
                             << true << 0;
    QTest::newRow("not deleted") << 200
                                 << QByteArray(R"({"id":"file-1","object":"file","deleted":false})")
                                 << false << 200;
    QTest::newRow("not found") << 404
                               << QByteArray(
                                      R"({"error":{"message":"No such File object: file-1","type":)"
                                      R"("invalid_request_error","param":"id","code":null}})")
                               << false << 404;
    QTest::newRow("garbage") << 200 << QByteArray("nope") << false << 200;
}

void tst_Provider::deleteFile() {
    QFETCH(int, status);
    QFETCH(QByteArray, body);
    QFETCH(bool, ok);
    QFETCH(int, errorStatus);
    m_server->setHandler([status, body](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, status, body);
    });
    auto provider = makeProvider();
    bool called = false;
    std::optional<ProviderError> error;
    provider->deleteFile(m_creds, "file-1", [&](std::optional<ProviderError> e) {
        called = true;
        error = std::move(e);
    });
    QTRY_VERIFY_WITH_TIMEOUT(called, 10000);
    QCOMPARE(m_server->requests().constFirst().method, QByteArray("DELETE"));
    QCOMPARE(m_server->requests().constFirst().target, QByteArray("/v1/files/file-1"));
    QCOMPARE(!error.has_value(), ok);
    if (error) {
        QCOMPARE(error->httpStatus, errorStatus);
        QVERIFY(!error->message.isEmpty());
        QVERIFY(!error->retryable());
    }
}

void tst_Provider::errors_data() {
    using Headers = QList<std::pair<QByteArray, QByteArray>>;
    QTest::addColumn<int>("status");
    QTest::addColumn<Headers>("headers");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("httpStatus");
    QTest::addColumn<QString>("message");
    QTest::addColumn<QByteArray>("type");
    QTest::addColumn<QByteArray>("code");
    QTest::addColumn<QByteArray>("param");
    QTest::addColumn<bool>("retryable");
    QTest::addColumn<qint64>("retryAfterMs"); // -1: none

    QTest::newRow("400 OpenAI body")
        << 400 << Headers{}
        << QByteArray(R"({"error":{"message":"Invalid 'limit': integer below minimum value.",)"
                      R"("type":"invalid_request_error","param":"limit",)"
                      R"("code":"integer_below_min_value"}})")
        << 400 << QStringLiteral("Invalid 'limit': integer below minimum value.")
        << QByteArray("invalid_request_error") << QByteArray("integer_below_min_value")
        << QByteArray("limit") << false << qint64(-1);
    QTest::newRow("429 Retry-After seconds")
        << 429 << Headers{{"Retry-After", "7"}}
        << QByteArray(R"({"error":{"message":"Rate limit reached","type":"requests",)"
                      R"("param":null,"code":"rate_limit_exceeded"}})")
        << 429 << QStringLiteral("Rate limit reached") << QByteArray("requests")
        << QByteArray("rate_limit_exceeded") << QByteArray() << true << qint64(7000);
    QTest::newRow("503 retry-after-ms")
        << 503 << Headers{{"retry-after-ms", "1500"}, {"Retry-After", "2"}}
        << QByteArray(R"({"error":{"message":"Overloaded","type":"server_error",)"
                      R"("param":null,"code":null}})")
        << 503 << QStringLiteral("Overloaded") << QByteArray("server_error") << QByteArray()
        << QByteArray() << true << qint64(1500);
    QTest::newRow("500 not JSON") << 500 << Headers{} << QByteArray("<html>oops</html>") << 500
                                  << QStringLiteral("HTTP 500 Status") << QByteArray()
                                  << QByteArray() << QByteArray() << true << qint64(-1);
    QTest::newRow("409 conflict") << 409 << Headers{} << QByteArray() << 409
                                  << QStringLiteral("HTTP 409 Status") << QByteArray()
                                  << QByteArray() << QByteArray() << true << qint64(-1);
    QTest::newRow("200 invalid JSON")
        << 200 << Headers{} << QByteArray("{\"id\":") << 200
        << QStringLiteral("invalid JSON from provider") << QByteArray() << QByteArray()
        << QByteArray() << false << qint64(-1);
    QTest::newRow("401 echoing the key")
        << 401 << Headers{}
        << QByteArray(R"({"error":{"message":"Incorrect API key provided: )"
                      R"(sk-test-0123456789abcdefSECRET.","type":"invalid_request_error",)"
                      R"("param":null,"code":"invalid_api_key"}})")
        << 401 << QStringLiteral("Incorrect API key provided: …CRET.")
        << QByteArray("invalid_request_error") << QByteArray("invalid_api_key") << QByteArray()
        << false << qint64(-1);
}

void tst_Provider::errors() {
    using Headers = QList<std::pair<QByteArray, QByteArray>>;
    QFETCH(int, status);
    QFETCH(Headers, headers);
    QFETCH(QByteArray, body);
    m_server->setHandler([status, headers, body](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, status, body, headers);
    });
    auto provider = makeProvider();
    const auto result = retrieve(*provider, "batch_1");
    QVERIFY(result);
    QVERIFY(!result->ok());
    const ProviderError &e = result->error;
    QTEST(e.httpStatus, "httpStatus");
    QTEST(e.message, "message");
    QTEST(e.type, "type");
    QTEST(e.code, "code");
    QTEST(e.param, "param");
    QTEST(e.retryable(), "retryable");
    QFETCH(qint64, retryAfterMs);
    QCOMPARE(e.retryAfter.has_value(), retryAfterMs >= 0);
    if (e.retryAfter)
        QCOMPARE(qint64(e.retryAfter->count()), retryAfterMs);
    QVERIFY(!e.message.contains(QString::fromUtf8(m_creds.apiKey)));
    QVERIFY(!e.body.contains(m_creds.apiKey));
    if (!body.contains(m_creds.apiKey))
        QCOMPARE(e.body, body);
}

void tst_Provider::retryAfter_data() {
    QTest::addColumn<QByteArray>("ms");
    QTest::addColumn<QByteArray>("value");
    QTest::addColumn<qint64>("expected"); // -1: nullopt; -2: a date about 30 s ahead
    QTest::newRow("none") << QByteArray() << QByteArray() << qint64(-1);
    QTest::newRow("seconds") << QByteArray() << QByteArray("7") << qint64(7000);
    QTest::newRow("fractional seconds") << QByteArray() << QByteArray("0.25") << qint64(250);
    QTest::newRow("ms") << QByteArray("250") << QByteArray() << qint64(250);
    QTest::newRow("ms wins") << QByteArray("40") << QByteArray("9") << qint64(40);
    QTest::newRow("bad ms, good seconds") << QByteArray("x") << QByteArray("3") << qint64(3000);
    QTest::newRow("garbage") << QByteArray() << QByteArray("soon") << qint64(-1);
    QTest::newRow("negative") << QByteArray() << QByteArray("-5") << qint64(-1);
    QTest::newRow("past date") << QByteArray() << QByteArray("Wed, 21 Oct 2015 07:28:00 GMT")
                               << qint64(0);
    const QByteArray future = QLocale::c()
                                  .toString(QDateTime::currentDateTimeUtc().addSecs(30),
                                            QStringLiteral("ddd, dd MMM yyyy HH:mm:ss"))
                                  .toLatin1() +
                              " GMT";
    QTest::newRow("future date") << QByteArray() << future << qint64(-2);
    // Capped at 24 h, so that no timer started with it overflows (QTimer takes int ms).
    const qint64 day = 24LL * 60 * 60 * 1000;
    QTest::newRow("huge ms") << QByteArray("1e15") << QByteArray() << day;
    QTest::newRow("huge seconds") << QByteArray() << QByteArray("99999999999") << day;
    QTest::newRow("25 days") << QByteArray() << QByteArray("2160000") << day;
    QTest::newRow("far date") << QByteArray() << QByteArray("Fri, 31 Dec 9999 23:59:59 GMT") << day;
}

void tst_Provider::retryAfter() {
    QFETCH(QByteArray, ms);
    QFETCH(QByteArray, value);
    QFETCH(qint64, expected);
    const auto got = OpenAiProvider::parseRetryAfter(ms, value);
    if (expected == -1) {
        QVERIFY(!got.has_value());
    } else if (expected == -2) {
        QVERIFY(got.has_value());
        QVERIFY2(got->count() > 25000 && got->count() <= 30000,
                 QByteArray::number(qint64(got->count())).constData());
    } else {
        QVERIFY(got.has_value());
        QCOMPARE(qint64(got->count()), expected);
    }
}

void tst_Provider::retryable_data() {
    QTest::addColumn<int>("status");
    QTest::addColumn<bool>("retryable");
    const std::pair<int, bool> rows[] = {{0, true},    {200, false}, {400, false}, {401, false},
                                         {403, false}, {404, false}, {408, true},  {409, true},
                                         {422, false}, {429, true},  {500, true},  {502, true},
                                         {503, true},  {504, true}};
    for (const auto &[status, retry] : rows)
        QTest::addRow("%d", status) << status << retry;
}

void tst_Provider::retryable() {
    QFETCH(int, status);
    ProviderError e;
    e.httpStatus = status;
    QTEST(e.retryable(), "retryable");
}

void tst_Provider::connectionRefused() {
    quint16 port = 0;
    {
        QTcpServer closed;
        QVERIFY(closed.listen(QHostAddress::LocalHost, 0));
        port = closed.serverPort();
    }
    OpenAiProvider provider(m_nam.get(), QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(port)));
    const auto result = retrieve(provider, "batch_1");
    QVERIFY(result);
    QVERIFY(!result->ok());
    QCOMPARE(result->error.httpStatus, 0);
    QVERIFY(result->error.retryable());
    QVERIFY2(result->error.message.contains(QStringLiteral("refused")),
             qPrintable(result->error.message));
    QVERIFY(!result->error.message.contains(QString::fromUtf8(m_creds.apiKey)));
}

void tst_Provider::connectionClosedMidAnswer_data() {
    QTest::addColumn<bool>("download");
    QTest::addColumn<QByteArray>("sent");
    QTest::newRow("json, after the headers")
        << false << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"id\":\"b");
    QTest::newRow("json, before the status line") << false << QByteArray();
    QTest::newRow("download, mid line")
        << true << QByteArray("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"a\":1}\n{\"b\"");
}

void tst_Provider::connectionClosedMidAnswer() {
    QFETCH(bool, download);
    QFETCH(QByteArray, sent);
    m_server->setHandler([sent](const HttpRequest &, QTcpSocket *s) {
        s->write(sent);
        s->flush();
        QTimer::singleShot(50, s, [s] { s->disconnectFromHost(); });
    });
    auto provider = makeProvider();
    ProviderError error;
    if (download) {
        QList<QByteArray> lines;
        std::optional<std::optional<ProviderError>> done;
        provider->downloadFileLines(
            m_creds, "file-1", [&](QByteArrayView l) { lines.append(l.toByteArray()); }, {},
            [&](std::optional<ProviderError> e) { done = std::move(e); });
        QTRY_VERIFY_WITH_TIMEOUT(done.has_value(), 10000);
        QVERIFY(done->has_value());
        error = **done;
        // The complete line may be delivered, the cut one never.
        QVERIFY(lines.size() <= 1);
        if (!lines.isEmpty())
            QCOMPARE(lines.constFirst(), QByteArray("{\"a\":1}"));
    } else {
        const auto result = retrieve(*provider, "batch_1");
        QVERIFY(result);
        QVERIFY(!result->ok());
        error = result->error;
    }
    QCOMPARE(error.httpStatus, 0);
    QVERIFY(error.retryable());
    QVERIFY(!error.message.isEmpty());
}

void tst_Provider::transferTimeout() {
    m_server->setHandler([](const HttpRequest &, QTcpSocket *) { /* never answer */ });
    auto provider = makeProvider();
    provider->setTransferTimeout(300ms);
    QElapsedTimer timer;
    timer.start();
    const auto result = retrieve(*provider, "batch_1");
    QVERIFY(result);
    QVERIFY(!result->ok());
    QCOMPARE(result->error.httpStatus, 0);
    QVERIFY(result->error.retryable());
    QVERIFY2(result->error.message.contains(QStringLiteral("timeout")),
             qPrintable(result->error.message));
    QVERIFY2(timer.elapsed() < 5000, QByteArray::number(timer.elapsed()).constData());
}

void tst_Provider::downloadInChunks() {
    // 50,000 lines, some ending in CRLF, the last without a newline, sent in odd-sized pieces
    // over time so that lines are split across reads everywhere.
    constexpr int kLines = 50000;
    QList<QByteArray> expected;
    QByteArray file;
    for (int i = 0; i < kLines; ++i) {
        QByteArray line = QByteArrayLiteral("{\"custom_id\":\"req-") + QByteArray::number(i) +
                          QByteArrayLiteral("\",\"v\":\"") + QByteArray(i % 97, 'a' + i % 26) +
                          QByteArrayLiteral("\"}");
        expected.append(line);
        file += line;
        if (i + 1 < kLines)
            file += (i % 3 == 0) ? QByteArrayLiteral("\r\n") : QByteArrayLiteral("\n");
    }

    m_server->setHandler([file](const HttpRequest &, QTcpSocket *s) {
        s->write(QByteArrayLiteral("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                   "Content-Length: ") +
                 QByteArray::number(file.size()) + QByteArrayLiteral("\r\n\r\n"));
        auto offset = std::make_shared<qsizetype>(0);
        auto piece = std::make_shared<int>(0);
        auto *timer = new QTimer(s);
        timer->setInterval(1);
        QObject::connect(timer, &QTimer::timeout, s, [s, timer, file, offset, piece] {
            // Odd sizes from 1 byte to ~60 KB, about 64 KB per tick.
            static const qsizetype sizes[] = {1, 7, 13, 127, 1021, 4099, 8191, 60013, 2, 333};
            qsizetype sent = 0;
            while (sent < 64 * 1024 && *offset < file.size()) {
                const qsizetype n = std::min(sizes[(*piece)++ % 10], file.size() - *offset);
                s->write(file.constData() + *offset, n);
                *offset += n;
                sent += n;
            }
            if (*offset >= file.size())
                timer->stop();
        });
        timer->start();
    });

    auto provider = makeProvider();
    QList<QByteArray> lines;
    lines.reserve(kLines);
    int doneCalls = 0;
    std::optional<ProviderError> error;
    provider->downloadFileLines(
        m_creds, "file-out", [&](QByteArrayView l) { lines.append(l.toByteArray()); }, {},
        [&](std::optional<ProviderError> e) {
            ++doneCalls;
            error = std::move(e);
        });
    QTRY_VERIFY2_WITH_TIMEOUT(doneCalls > 0, qPrintable(QString::number(lines.size())), 60000);
    QVERIFY2(!error, error ? qPrintable(error->message) : "");
    const HttpRequest &req = m_server->requests().constFirst();
    QCOMPARE(req.method, QByteArray("GET"));
    QCOMPARE(req.target, QByteArray("/v1/files/file-out/content"));
    QCOMPARE(req.header("Authorization"), QByteArray("Bearer ") + m_creds.apiKey);
    QCOMPARE(lines.size(), kLines);
    for (int i = 0; i < kLines; ++i) {
        if (lines[i] != expected[i])
            QFAIL(qPrintable(QStringLiteral("line %1 differs: %2")
                                 .arg(i)
                                 .arg(QString::fromUtf8(lines[i].left(80)))));
    }
    QTest::qWait(20);
    QCOMPARE(doneCalls, 1);
}

void tst_Provider::downloadErrorBody() {
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        // Pretty-printed over several lines: none of them may reach onLine.
        ScriptedServer::respond(s, 404,
                                "{\n  \"error\": {\n    \"message\": \"No such File object: "
                                "file-9\",\n    \"type\": \"invalid_request_error\",\n"
                                "    \"param\": \"id\",\n    \"code\": null\n  }\n}\n");
    });
    auto provider = makeProvider();
    int lineCount = 0;
    std::optional<std::optional<ProviderError>> done;
    provider->downloadFileLines(
        m_creds, "file-9", [&](QByteArrayView) { ++lineCount; }, {},
        [&](std::optional<ProviderError> e) { done = std::move(e); });
    QTRY_VERIFY_WITH_TIMEOUT(done.has_value(), 10000);
    QCOMPARE(lineCount, 0);
    QVERIFY(done->has_value());
    const ProviderError &e = **done;
    QCOMPARE(e.httpStatus, 404);
    QCOMPARE(e.message, QStringLiteral("No such File object: file-9"));
    QCOMPARE(e.param, QByteArray("id"));
    QVERIFY(!e.retryable());
    QVERIFY(e.body.contains("\"message\": \"No such File object: file-9\""));
}

void tst_Provider::downloadLarge() {
    // 100 MB served from another thread as fast as the socket takes it, read by a consumer that
    // is slower than the network: only back-pressure keeps the peak memory far below 100 MB.
    constexpr qint64 kLineBytes = 1000;
    constexpr qint64 kLines = 100000;
    BulkFileServer server(kLineBytes, kLines);
    const quint16 port = server.start();
    QVERIFY(port != 0);

    const bool reset = resetPeakRss();
    const qint64 before = peakRssKiB();
    if (before < 0)
        QSKIP("no /proc/self/status");

    OpenAiProvider provider(m_nam.get(), QUrl(QStringLiteral("http://127.0.0.1:%1/v1").arg(port)));
    qint64 count = 0;
    qint64 bytes = 0;
    bool inOrder = true;
    std::optional<std::optional<ProviderError>> done;
    QElapsedTimer timer;
    timer.start();
    provider.downloadFileLines(
        m_creds, "file-big",
        [&](QByteArrayView line) {
            const QByteArray expectedId = QByteArrayLiteral("\"req-") +
                                          QByteArray::number(count).rightJustified(8, '0') + '"';
            if (line.size() != kLineBytes - 1 || line.indexOf(expectedId) != 13)
                inOrder = false;
            ++count;
            bytes += line.size() + 1;
            if (count % 200 == 0)
                QThread::usleep(4000); // ~2 s in all: a parser slower than the network
        },
        {}, [&](std::optional<ProviderError> e) { done = std::move(e); });
    QTRY_VERIFY_WITH_TIMEOUT(done.has_value(), 240000);
    QVERIFY2(!done->has_value(), done->has_value() ? qPrintable((*done)->message) : "");
    QCOMPARE(count, kLines);
    QCOMPARE(bytes, kLineBytes * kLines);
    QVERIFY(inOrder);

    const qint64 growthMiB = (peakRssKiB() - before) / 1024;
    qInfo("100 MB in %lld ms; peak RSS grew by %lld MiB (peak reset: %s)", timer.elapsed(),
          growthMiB, reset ? "yes" : "no");
    QVERIFY2(growthMiB < 50, qPrintable(QStringLiteral("peak RSS grew %1 MiB").arg(growthMiB)));
}

void tst_Provider::destroyWhileInFlight() {
    // The server holds every request; the provider goes away with calls in flight.
    QList<QPointer<QTcpSocket>> held;
    m_server->setHandler([&held](const HttpRequest &, QTcpSocket *s) { held.append(s); });
    auto provider = makeProvider();
    int callbacks = 0;
    provider->retrieveBatch(m_creds, "batch_1", [&](ProviderResult<BatchInfo>) { ++callbacks; });
    provider->uploadBatchFile(m_creds, QByteArray(1 << 20, 'u'), QStringLiteral("x.jsonl"),
                              [&](ProviderResult<FileInfo>) { ++callbacks; });
    provider->downloadFileLines(
        m_creds, "file-1", [&](QByteArrayView) { ++callbacks; }, {},
        [&](std::optional<ProviderError>) { ++callbacks; });
    provider->deleteFile(m_creds, "file-2", [&](std::optional<ProviderError>) { ++callbacks; });
    QTRY_COMPARE_WITH_TIMEOUT(m_server->requests().size(), 4, 10000);
    provider.reset();
    // Answer the held requests now: nothing may reach the dead provider's callbacks.
    for (const QPointer<QTcpSocket> &s : std::as_const(held)) {
        if (s)
            ScriptedServer::respond(s, 200, batchJson("batch_1"));
    }
    QTest::qWait(300);
    QCOMPARE(callbacks, 0);

    // A provider destroyed before its request even left: same.
    auto second = makeProvider();
    second->retrieveBatch(m_creds, "batch_2", [&](ProviderResult<BatchInfo>) { ++callbacks; });
    second.reset();
    QTest::qWait(200);
    QCOMPARE(callbacks, 0);
    m_server->setHandler({});
}

void tst_Provider::destroyFromLineCallback() {
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        QByteArray body;
        for (int i = 0; i < 1000; ++i)
            body += QByteArrayLiteral("{\"n\":") + QByteArray::number(i) + QByteArrayLiteral("}\n");
        ScriptedServer::respond(s, 200, body, {}, "application/octet-stream");
    });
    auto provider = makeProvider();
    int lines = 0;
    int doneCalls = 0;
    provider->downloadFileLines(
        m_creds, "file-1",
        [&](QByteArrayView) {
            if (++lines == 10)
                provider.reset();
        },
        {}, [&](std::optional<ProviderError>) { ++doneCalls; });
    QTRY_VERIFY_WITH_TIMEOUT(!provider, 10000);
    QTest::qWait(200);
    QCOMPARE(lines, 10);
    QCOMPARE(doneCalls, 0);
}

void tst_Provider::downloadSkipsTooLongLines_data() {
    QTest::addColumn<bool>("withCallback");
    QTest::newRow("reported") << true;
    QTest::newRow("no callback: skipped all the same") << false;
}

void tst_Provider::downloadSkipsTooLongLines() {
    // A line over the limit fails only itself: the lines before and after it arrive, and only
    // its first bytes are held.
    QFETCH(bool, withCallback);
    constexpr qsizetype kLimit = 100'000;
    const auto lineOf = [](const QByteArray &id, qsizetype size) {
        QByteArray line = R"({"custom_id":")" + id + R"(","x":")";
        line += QByteArray(size - line.size() - 2, 'x') + "\"}";
        return line;
    };
    const QByteArray small1 = R"({"custom_id":"a"})";
    const QByteArray huge1 = lineOf("b", 300'000);
    const QByteArray exact = lineOf("c", kLimit);
    const QByteArray oneOver = lineOf("d", kLimit + 1);
    const QByteArray small2 = R"({"custom_id":"e"})";
    const QByteArray huge2 = lineOf("f", 2'000'000);
    const QByteArray body = small1 + '\n' + huge1 + "\r\n" + exact + '\n' + oneOver + '\n' +
                            small2 + '\n' + huge2; // the last line without a newline
    m_server->setHandler([body](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, 200, body, {}, "application/octet-stream");
    });
    auto provider = makeProvider();
    provider->setMaxLineBytes(kLimit);
    QCOMPARE(provider->maxLineBytes(), kLimit);
    QList<QByteArray> lines;
    QList<std::tuple<QByteArray, qint64, qint64>> tooLong;
    std::optional<std::optional<ProviderError>> done;
    Provider::LineTooLongCallback onTooLong;
    if (withCallback) {
        onTooLong = [&](const TooLongLine &line) {
            tooLong.append({line.start.toByteArray(), line.bytes, line.limit});
        };
    }
    provider->downloadFileLines(
        m_creds, "file-out", [&](QByteArrayView l) { lines.append(l.toByteArray()); }, onTooLong,
        [&](std::optional<ProviderError> e) { done = std::move(e); });
    QTRY_VERIFY_WITH_TIMEOUT(done.has_value(), 20000);
    QVERIFY2(!done->has_value(), done->has_value() ? qPrintable((*done)->message) : "");
    QCOMPARE(lines, (QList<QByteArray>{small1, exact, small2}));
    if (!withCallback)
        return;
    QCOMPARE(tooLong.size(), qsizetype(3));
    const QList<QByteArray> longLines{huge1, oneOver, huge2};
    for (qsizetype i = 0; i < 3; ++i) {
        const auto &[start, bytes, limit] = tooLong.at(i);
        QCOMPARE(bytes, qint64(longLines.at(i).size()));
        QCOMPARE(limit, qint64(kLimit));
        QCOMPARE(start, longLines.at(i).left(OpenAiProvider::kLineStartBytes));
    }
}

void tst_Provider::noCookiesAcrossKeys_data() {
    QTest::addColumn<bool>("jarInstalledLater");
    QTest::newRow("the manager as the provider left it") << false;
    QTest::newRow("a cookie jar installed on the manager later") << true;
}

void tst_Provider::noCookiesAcrossKeys() {
    // OpenAI's edge answers with Set-Cookie. Sent back, it would tie one key's calls to
    // another's: no call of the provider may carry a Cookie header, whatever the jar.
    QFETCH(bool, jarInstalledLater);
    m_server->setHandler([](const HttpRequest &request, QTcpSocket *s) {
        const QList<std::pair<QByteArray, QByteArray>> cookies{
            {"Set-Cookie", "__cf_bm=tenant-a; Path=/; HttpOnly"},
            {"Set-Cookie", "_cfuvid=abc123; Path=/"}};
        if (request.target.endsWith("/content"))
            ScriptedServer::respond(s, 200, "{\"a\":1}\n", cookies, "application/octet-stream");
        else if (request.method == "POST")
            ScriptedServer::respond(s, 200, R"({"id":"chatcmpl-1"})", cookies);
        else
            ScriptedServer::respond(s, 200, batchJson("batch_1"), cookies);
    });
    auto provider = makeProvider();
    if (jarInstalledLater)
        m_nam->setCookieJar(new QNetworkCookieJar);
    const Credentials keyA = m_creds;
    const Credentials keyB{QByteArrayLiteral("sk-test-other-key-BBBBBBBB"), {}, {}};
    int calls = 0;
    provider->retrieveBatch(keyA, "batch_1", [&](ProviderResult<BatchInfo>) { ++calls; });
    QTRY_COMPARE_WITH_TIMEOUT(calls, 1, 10000);
    provider->retrieveBatch(keyB, "batch_1", [&](ProviderResult<BatchInfo>) { ++calls; });
    QTRY_COMPARE_WITH_TIMEOUT(calls, 2, 10000);
    provider->sendSynchronous(keyB, "/v1/chat/completions", "{}",
                              [&](ProviderResult<SyncAnswer>) { ++calls; });
    QTRY_COMPARE_WITH_TIMEOUT(calls, 3, 10000);
    provider->downloadFileLines(
        keyA, "file-1", [](QByteArrayView) {}, {}, [&](std::optional<ProviderError>) { ++calls; });
    QTRY_COMPARE_WITH_TIMEOUT(calls, 4, 10000);
    provider->retrieveBatch(keyB, "batch_1", [&](ProviderResult<BatchInfo>) { ++calls; });
    QTRY_COMPARE_WITH_TIMEOUT(calls, 5, 10000);
    QCOMPARE(m_server->requests().size(), qsizetype(5));
    for (const HttpRequest &request : m_server->requests())
        QVERIFY2(!request.hasHeader("cookie"), request.header("cookie").constData());
    // Nothing was kept for later either.
    QVERIFY(m_nam->cookieJar()->cookiesForUrl(m_server->baseUrl()).isEmpty());
}

void tst_Provider::sendSynchronous_data() {
    QTest::addColumn<QString>("basePath");
    QTest::addColumn<QByteArray>("endpoint");
    QTest::addColumn<QByteArray>("target");
    QTest::addColumn<int>("status");
    QTest::addColumn<bool>("retryable");
    QTest::newRow("chat completion") << QStringLiteral("/v1") << QByteArray("/v1/chat/completions")
                                     << QByteArray("/v1/chat/completions") << 200 << false;
    QTest::newRow("embeddings under a deeper base")
        << QStringLiteral("/openai/v1") << QByteArray("/v1/embeddings")
        << QByteArray("/openai/v1/embeddings") << 200 << false;
    QTest::newRow("400 is an answer, not a failure")
        << QStringLiteral("/v1") << QByteArray("/v1/chat/completions")
        << QByteArray("/v1/chat/completions") << 400 << false;
    QTest::newRow("429") << QStringLiteral("/v1") << QByteArray("/v1/responses")
                         << QByteArray("/v1/responses") << 429 << true;
    QTest::newRow("503") << QStringLiteral("/v1") << QByteArray("/v1/moderations")
                         << QByteArray("/v1/moderations") << 503 << true;
}

void tst_Provider::sendSynchronous() {
    QFETCH(QString, basePath);
    QFETCH(QByteArray, endpoint);
    QFETCH(QByteArray, target);
    QFETCH(int, status);
    QFETCH(bool, retryable);
    // Raw whitespace, escapes, non-ASCII and a number no double holds: sent as it is.
    const QByteArray body = QByteArrayLiteral(
        "{\"model\":\"gpt-4o-mini\",\r\n \"seed\":12345678901234567890,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9 \xc3\xa9 \\\"q\\\"\"}]}");
    const QByteArray answer = QByteArrayLiteral(
        "{\"id\":\"chatcmpl-1\",\"n\":98765432109876543210,\"text\":\"\xe2\x82\xac\"}\n");
    m_server->setHandler([status, answer](const HttpRequest &, QTcpSocket *s) {
        ScriptedServer::respond(s, status, answer,
                                {{"x-request-id", "req_abc"},
                                 {"openai-processing-ms", "42"},
                                 {"X-RateLimit-Remaining-Requests", "9"},
                                 {"Set-Cookie", "session=secret"},
                                 {"retry-after", "2"}},
                                "application/json; charset=utf-8");
    });
    m_creds.organization = "org-1";
    m_creds.project = "proj_2";
    OpenAiProvider provider(
        m_nam.get(),
        QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_server->port()).arg(basePath)));
    const auto result = sendSync(provider, endpoint, body);
    QVERIFY(result);
    QVERIFY(result->ok());
    const SyncAnswer &a = *result->value;
    QCOMPARE(a.httpStatus, status);
    QCOMPARE(a.body, answer);
    QCOMPARE(a.contentType, QByteArray("application/json; charset=utf-8"));
    const QList<std::pair<QByteArray, QByteArray>> expectedHeaders{
        {"x-request-id", "req_abc"},
        {"openai-processing-ms", "42"},
        {"x-ratelimit-remaining-requests", "9"},
        {"retry-after", "2"}};
    QCOMPARE(a.headers, expectedHeaders); // no Set-Cookie, Content-Length or Content-Type
    QVERIFY(a.retryAfter);
    QCOMPARE(a.retryAfter->count(), 2000);
    QCOMPARE(a.retryable(), retryable);

    QCOMPARE(m_server->requests().size(), 1);
    const HttpRequest &req = m_server->requests().constFirst();
    QCOMPARE(req.method, QByteArray("POST"));
    QCOMPARE(req.target, target);
    QCOMPARE(req.body, body);
    QCOMPARE(req.header("Content-Type"), QByteArray("application/json"));
    QCOMPARE(req.header("Authorization"), QByteArray("Bearer ") + m_creds.apiKey);
    QCOMPARE(req.header("OpenAI-Organization"), QByteArray("org-1"));
    QCOMPARE(req.header("OpenAI-Project"), QByteArray("proj_2"));
    QCOMPARE(req.header("User-Agent"), QByteArray("llm-proxy/" LLMPROXY_VERSION));
}

void tst_Provider::sendSynchronousTransportFailure_data() {
    QTest::addColumn<QByteArray>("sent");
    QTest::newRow("before the status line") << QByteArray();
    QTest::newRow("after the headers") << QByteArray(
        "HTTP/1.1 200 OK\r\nContent-Length: 500\r\nx-request-id: req_1\r\n\r\n{\"id\"");
    QTest::newRow("error status cut short")
        << QByteArray("HTTP/1.1 500 Oops\r\nContent-Length: 500\r\n\r\n{\"error\"");
}

void tst_Provider::sendSynchronousTransportFailure() {
    QFETCH(QByteArray, sent);
    m_server->setHandler([sent](const HttpRequest &, QTcpSocket *s) {
        s->write(sent);
        s->flush();
        QTimer::singleShot(50, s, [s] { s->disconnectFromHost(); });
    });
    auto provider = makeProvider();
    const auto result = sendSync(*provider, "/v1/chat/completions", "{\"model\":\"m\"}");
    QVERIFY(result);
    QVERIFY(!result->ok());
    QCOMPARE(result->error.httpStatus, 0);
    QVERIFY(result->error.retryable());
    QVERIFY(!result->error.message.isEmpty());
    QVERIFY(!result->error.message.contains(QString::fromUtf8(m_creds.apiKey)));
    QVERIFY(!result->error.body.contains(m_creds.apiKey));
}

void tst_Provider::sendSynchronousOutlivesShortTransferTimeout() {
    // A model may think for a while before its first byte: the batch calls' short transfer
    // timeout does not cut a synchronous call.
    m_server->setHandler([](const HttpRequest &, QTcpSocket *s) {
        QTimer::singleShot(900, s, [s] { ScriptedServer::respond(s, 200, "{\"ok\":true}"); });
    });
    auto provider = makeProvider();
    provider->setTransferTimeout(200ms);
    const auto result = sendSync(*provider, "/v1/chat/completions", "{\"model\":\"m\"}");
    QVERIFY(result);
    QVERIFY2(result->ok(), qPrintable(result->error.message));
    QCOMPARE(result->value->httpStatus, 200);
    QCOMPARE(result->value->body, QByteArray("{\"ok\":true}"));
}

void tst_Provider::syncAnswerRetryable_data() {
    QTest::addColumn<int>("status");
    QTest::addColumn<bool>("retryable");
    const std::pair<int, bool> rows[] = {{200, false}, {201, false}, {400, false}, {401, false},
                                         {404, false}, {408, true},  {409, true},  {422, false},
                                         {429, true},  {500, true},  {503, true}};
    for (const auto &[status, retry] : rows)
        QTest::addRow("%d", status) << status << retry;
}

void tst_Provider::syncAnswerRetryable() {
    QFETCH(int, status);
    SyncAnswer a;
    a.httpStatus = status;
    QTEST(a.retryable(), "retryable");
}

LLMPROXY_TEST_MAIN(tst_Provider)
#include "tst_provider.moc"
