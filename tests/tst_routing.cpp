// SPDX-License-Identifier: GPL-3.0-or-later
// Several providers behind one base URL (issue 12), end to end in one process: the proxy with
// two fake providers of different profiles and keys (OpenAI as "openai", Gemini's compatibility
// layer as "gemini"). Requests for each model land in a batch at their own provider with its own
// key; the relay goes to the right one with its auth header; a model no rule routes gets 400
// naming the providers; an endpoint a provider does not batch is relayed to it; a restart
// resumes each batch at its provider, and a batch whose provider is gone is not lost.

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "testmain.h"

#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkReply>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {
constexpr char OpenAiKey[] = "sk-openai-configured-0001";
constexpr char GeminiKey[] = "gm-gemini-configured-0002";
constexpr char GeminiKeyVariable[] = "LLMPROXY_TEST_GEMINI_KEY";

QByteArray chatFor(const QByteArray &model, const QByteArray &content) {
    return R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" + content +
           R"("}]})";
}
} // namespace

class tst_Routing final : public QObject {
    Q_OBJECT

    std::unique_ptr<FakeProvider> m_openAi;
    std::unique_ptr<FakeProvider> m_gemini;
    std::unique_ptr<ProxyService> m_proxy;
    std::unique_ptr<TestClient> m_client;
    std::unique_ptr<QTemporaryDir> m_dir;

    Config config(bool withGemini = true, bool withDefault = true) const {
        Config c;
        c.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}};
        c.upstream = m_openAi->baseUrl();
        c.apiKey = OpenAiKey;
        c.batchWindow = 200ms;
        c.pollInterval = 40ms;
        c.ioThreads = 2;
        c.dataDir = m_dir->path();
        if (withGemini) {
            c.providers = {"gemini=gemini;url=" + m_gemini->baseUrl().toString().toUtf8() +
                           ";key_env=" + GeminiKeyVariable};
            c.routes = {"gemini-*=gemini"};
        }
        if (!withDefault)
            c.defaultProvider.clear();
        return c;
    }

    bool start(const Config &c) {
        m_proxy = std::make_unique<ProxyService>(c);
        QSignalSpy started(m_proxy.get(), &ProxyService::started);
        m_proxy->start();
        if (started.size() != 1)
            return false;
        m_client->setPort(started.first().first().value<QList<quint16>>().first());
        return true;
    }

    // The client's own key is never what goes upstream: each provider's configured key does.
    QNetworkReply *send(const QByteArray &path, const QByteArray &body,
                        const Headers &headers = {}) {
        return m_client->send("POST", path, body, headers);
    }

private Q_SLOTS:
    void init() {
        qputenv(GeminiKeyVariable, GeminiKey);
        m_dir = std::make_unique<QTemporaryDir>();
        m_openAi = std::make_unique<FakeProvider>();
        m_openAi->setShape(FakeProvider::Shape::OpenAi);
        m_gemini = std::make_unique<FakeProvider>();
        m_gemini->setShape(FakeProvider::Shape::Gemini);
        for (FakeProvider *fake : {m_openAi.get(), m_gemini.get()}) {
            QVERIFY(fake->listen());
            fake->setValidationDelay(10ms);
            fake->setProcessingDelay(30ms);
            fake->setFinalizingDelay(10ms);
        }
        // Each refuses any key but its own: a request sent to the wrong one would fail.
        m_openAi->setAcceptedKey(OpenAiKey);
        m_gemini->setAcceptedKey(GeminiKey);
        m_client = std::make_unique<TestClient>();
    }

    void cleanup() {
        m_client.reset();
        m_proxy.reset();
        m_openAi.reset();
        m_gemini.reset();
        m_dir.reset();
    }

    void eachModelIsBatchedAtItsProviderWithItsKey() {
        QVERIFY(start(config()));
        QList<QNetworkReply *> replies;
        for (const char *model : {"gpt-4o-mini", "gemini-2.5-flash"}) {
            for (int i = 0; i < 2; ++i)
                replies.append(
                    send("/v1/chat/completions", chatFor(model, "hello " + QByteArray::number(i))));
        }
        for (QNetworkReply *reply : std::as_const(replies)) {
            QVERIFY(TestClient::finished(reply, 15'000));
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY(!reply->rawHeader("x-llm-proxy-batch-id").isEmpty());
        }
        qDeleteAll(replies);
        QCOMPARE(m_openAi->batches().size(), 1);
        QCOMPARE(m_openAi->batches().constFirst().model, QByteArray("gpt-4o-mini"));
        QCOMPARE(m_openAi->batches().constFirst().customIds.size(), 2);
        QCOMPARE(m_openAi->batches().constFirst().authorization, "Bearer " + QByteArray(OpenAiKey));
        QCOMPARE(m_gemini->batches().size(), 1);
        QCOMPARE(m_gemini->batches().constFirst().model, QByteArray("gemini-2.5-flash"));
        QCOMPARE(m_gemini->batches().constFirst().customIds.size(), 2);
        QCOMPARE(m_gemini->batches().constFirst().authorization, "Bearer " + QByteArray(GeminiKey));
        // Under Gemini's own prefix.
        QVERIFY(m_gemini->count("POST", "/v1beta/openai/batches") >= 1);
        // The history says which provider each batch went to.
        QTRY_VERIFY(m_proxy->snapshot().batches.size() == 2);
        QSet<QByteArray> providers;
        for (const BatchProgress &batch : m_proxy->snapshot().batches)
            providers.insert(batch.provider + '/' + batch.model);
        QCOMPARE(providers, QSet<QByteArray>({"openai/gpt-4o-mini", "gemini/gemini-2.5-flash"}));
        // So does /stats: each listed batch names its provider.
        QSet<QString> listed;
        QTRY_VERIFY_WITH_TIMEOUT(
            [&] {
                QNetworkReply *stats = m_client->send("GET", "/stats", {});
                if (!TestClient::finished(stats))
                    return false;
                const QJsonArray list = QJsonDocument::fromJson(stats->readAll())
                                            .object()
                                            .value(u"batch_list")
                                            .toArray();
                delete stats;
                listed.clear();
                for (const QJsonValue &b : list)
                    listed.insert(b.toObject().value(u"provider").toString() + u'/' +
                                  b.toObject().value(u"model").toString() + u'/' +
                                  b.toObject().value(u"status").toString());
                return list.size() == 2;
            }(),
            5000);
        QCOMPARE(listed, QSet<QString>({QStringLiteral("openai/gpt-4o-mini/completed"),
                                        QStringLiteral("gemini/gemini-2.5-flash/completed")}));
    }

    // A profile that does not match its provider (Gemini's API configured as "generic"): the
    // batch's status is a word the profile does not know (BATCH_STATE_*), so it never seems to
    // end. After unknownStatusLimit (and a few polls) its clients are told why, instead of
    // waiting forever; the batch is left alone upstream.
    void aProfileThatDoesNotMatchEndsItsClientsWithTheReason() {
        Config c = config(false);
        c.providers = {"gemini=generic;url=" + m_gemini->baseUrl().toString().toUtf8() +
                       ";key_env=" + GeminiKeyVariable};
        c.routes = {"gemini-*=gemini"};
        QVERIFY(start(c));
        CoreSettings settings = m_proxy->core()->settings();
        settings.unknownStatusLimit = 300ms;
        m_proxy->core()->setSettings(settings);
        QNetworkReply *reply =
            send("/v1/chat/completions", chatFor("gemini-2.5-flash", "which profile?"));
        QVERIFY(TestClient::finished(reply, 15'000));
        const QByteArray body = reply->readAll();
        QCOMPARE(TestClient::status(reply), 502);
        const QJsonObject error = QJsonDocument::fromJson(body).object().value(u"error").toObject();
        QCOMPARE(error.value(u"code").toString(), QStringLiteral("batch_status_unknown"));
        QCOMPARE(error.value(u"type").toString(), QStringLiteral("server_error"));
        QVERIFY2(error.value(u"message").toString().contains(u"BATCH_STATE_"), body.constData());
        QVERIFY2(error.value(u"message").toString().contains(u"--provider NAME=PROFILE"),
                 body.constData());
        delete reply;
        QCOMPARE(m_gemini->batches().size(), 1);
        QCOMPARE(m_gemini->count("POST", "/v1beta/openai/batches/"), 0); // not cancelled
        QCOMPARE(m_gemini->filesDeleted(), 0);                           // nor its input deleted
    }

    void theRelayGoesToTheChosenProviderWithItsKey() {
        QVERIFY(start(config()));
        // Batching off: straight to the provider the model routes to, at full price.
        QNetworkReply *gemini =
            send("/v1/chat/completions", chatFor("gemini-2.5-flash", "now"), {{"X-Batch", "off"}});
        QNetworkReply *openAi =
            send("/v1/chat/completions", chatFor("gpt-4o-mini", "now"), {{"X-Batch", "off"}});
        QVERIFY(TestClient::finished(gemini));
        QVERIFY(TestClient::finished(openAi));
        QCOMPARE(TestClient::status(gemini), 200);
        QCOMPARE(TestClient::status(openAi), 200);
        delete gemini;
        delete openAi;
        QCOMPARE(m_gemini->count("POST", "/v1beta/openai/chat/completions"), 1);
        QCOMPARE(m_openAi->count("POST", "/v1/chat/completions"), 1);
        QCOMPARE(m_gemini->batches().size(), 0);
        // An endpoint Gemini does not batch (embeddings) is relayed to it, never batched.
        QNetworkReply *embed =
            send("/v1/embeddings", R"({"model":"gemini-embedding-001","input":"x"})");
        QVERIFY(TestClient::finished(embed));
        QCOMPARE(TestClient::status(embed), 200);
        delete embed;
        QCOMPARE(m_gemini->count("POST", "/v1beta/openai/embeddings"), 1);
        QCOMPARE(m_gemini->batches().size(), 0);
        QCOMPARE(m_openAi->count("POST", "/v1/embeddings"), 0);
        // Paths without a model go to the default.
        QNetworkReply *models = m_client->send("GET", "/v1/models", {});
        QVERIFY(TestClient::finished(models));
        QCOMPARE(TestClient::status(models), 200);
        delete models;
        QCOMPARE(m_openAi->count("GET", "/v1/models"), 1);
    }

    // Each provider's batches keep to its own file limits: Groq's 100 MB files do not shrink
    // OpenAI's (the user allows 150 MB), and the user's request count applies to both.
    void eachProviderKeepsItsOwnFileLimits() {
        Config c = config();
        c.providers.append("groq=groq;url=" + m_gemini->baseUrl().toString().toUtf8() +
                           ";key_env=" + GeminiKeyVariable);
        c.batchBytes = 150'000'000;
        c.batchSize = 40'000;
        QVERIFY(start(c));
        const BatchLimits &limits = m_proxy->core()->settings().limits;
        QCOMPARE(limits.fileLimitsFor("openai"), (FileLimits{40'000, 150'000'000}));
        QCOMPARE(limits.fileLimitsFor(""), (FileLimits{40'000, 150'000'000}));
        QCOMPARE(limits.fileLimitsFor("groq"), (FileLimits{40'000, 100'000'000}));
        QCOMPARE(limits.fileLimitsFor("gemini"), (FileLimits{40'000, 150'000'000}));
    }

    void anUnroutedModelWithoutADefaultIsA400NamingTheProviders() {
        QVERIFY(start(config(true, false)));
        QNetworkReply *reply = send("/v1/chat/completions", chatFor("gpt-4o-mini", "hi"));
        QVERIFY(TestClient::finished(reply));
        QCOMPARE(TestClient::status(reply), 400);
        const QJsonObject error =
            QJsonDocument::fromJson(reply->readAll()).object().value(u"error").toObject();
        delete reply;
        QCOMPARE(error.value(u"type").toString(), QStringLiteral("invalid_request_error"));
        QCOMPARE(error.value(u"code").toString(), QStringLiteral("model_not_routed"));
        QCOMPARE(error.value(u"param").toString(), QStringLiteral("model"));
        const QString message = error.value(u"message").toString();
        QVERIFY2(message.contains(QStringLiteral("gpt-4o-mini")), qPrintable(message));
        QVERIFY2(message.contains(QStringLiteral("openai, gemini")), qPrintable(message));
        // A routed model still works.
        QNetworkReply *routed = send("/v1/chat/completions", chatFor("gemini-2.5-flash", "hi"));
        QVERIFY(TestClient::finished(routed, 15'000));
        QCOMPARE(TestClient::status(routed), 200);
        delete routed;
        QCOMPARE(m_openAi->requests().size(), 0);
    }

    // What --no-gui does at start (main.cpp: the stored settings, then the command line over
    // them): a provider whose key variable is unset takes the key kept for it in the settings
    // file (0600), and its batches go out with it (the fake refuses any other key).
    void aProviderKeyComesFromTheSettingsFileWithoutItsVariable() {
        qunsetenv(GeminiKeyVariable);
        SettingsStore store(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
        QVERIFY(store.save(config()));
        QVERIFY(store.storeProviderKeyInFile("gemini", GeminiKey));
        QCOMPARE(QFileInfo(store.filePath()).permissions() &
                     (QFile::ReadGroup | QFile::WriteGroup | QFile::ReadOther | QFile::WriteOther),
                 QFile::Permissions());
        const CommandLine line =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--no-gui"),
                              QStringLiteral("--listen"), QStringLiteral("127.0.0.1:0")},
                             OpenAiKey, store.load());
        QCOMPARE(line.action, CommandLine::Action::Run);
        QCOMPARE(line.config.providerKeys.value("gemini"), QByteArray(GeminiKey));
        Config c = line.config;
        c.listen = config().listen;
        c.dataDir = config().dataDir; // not the user's data folder, which the parser defaults to
        c.batchWindow = 200ms;
        c.pollInterval = 40ms;
        c.ioThreads = 2;
        QVERIFY(start(c));
        QNetworkReply *reply = send("/v1/chat/completions", chatFor("gemini-2.5-flash", "filed"));
        QVERIFY(TestClient::finished(reply, 15'000));
        QCOMPARE(TestClient::status(reply), 200);
        delete reply;
        QCOMPARE(m_gemini->batches().size(), 1);
        QCOMPARE(m_gemini->batches().constFirst().authorization, "Bearer " + QByteArray(GeminiKey));
        // The environment wins over the file when it is set.
        QString error;
        const QList<ConfiguredProvider> fromEnvironment = configuredProviders(
            c, [](const QByteArray &) { return QByteArrayLiteral("gm-env"); }, &error);
        QCOMPARE(fromEnvironment.at(1).apiKey, QByteArray("gm-env"));
    }

    // New providers and routes apply without a restart (the desktop app's Providers page): a
    // request after applyConfig() goes to the provider just added, with the key kept for it.
    void newRoutingAppliesWithoutARestart() {
        qunsetenv(GeminiKeyVariable);
        QVERIFY(start(config(false)));
        QNetworkReply *before = send("/v1/chat/completions", chatFor("gpt-4o-mini", "before"));
        QVERIFY(TestClient::finished(before, 15'000));
        QCOMPARE(TestClient::status(before), 200);
        delete before;
        Config next = config();
        next.providerKeys.insert("gemini", GeminiKey);
        m_proxy->applyConfig(next);
        QNetworkReply *after = send("/v1/chat/completions", chatFor("gemini-2.5-flash", "after"));
        QVERIFY(TestClient::finished(after, 15'000));
        QCOMPARE(TestClient::status(after), 200);
        delete after;
        QCOMPARE(m_gemini->batches().size(), 1);
        QCOMPARE(m_gemini->batches().constFirst().authorization, "Bearer " + QByteArray(GeminiKey));
        QCOMPARE(m_openAi->batches().size(), 1);
    }

    // A restart finds each batch's provider: both batches resume where they were made, none is
    // made twice. Without the Gemini provider configured, its batch is kept (not cancelled, not
    // forgotten) and a returning client is told why.
    void aRestartResumesEachBatchAtItsProvider() {
        m_openAi->setNeverFinish(true);
        m_gemini->setNeverFinish(true);
        QVERIFY(start(config()));
        QNetworkReply *openAi = send("/v1/chat/completions", chatFor("gpt-4o-mini", "across"));
        QNetworkReply *gemini = send("/v1/chat/completions", chatFor("gemini-2.5-flash", "across"));
        QTRY_COMPARE_WITH_TIMEOUT(m_openAi->batches().size(), 1, 10'000);
        QTRY_COMPARE_WITH_TIMEOUT(m_gemini->batches().size(), 1, 10'000);
        QTest::qWait(200); // polled at least once: the batch ids are stored
        m_proxy.reset();
        delete openAi;
        delete gemini;

        // Restarted without Gemini (and no default): its returning client is told which providers
        // there are, nothing is cancelled or made there, and the batch is shown with the reason.
        QVERIFY(start(config(false, false)));
        QNetworkReply *orphan = send("/v1/chat/completions", chatFor("gemini-2.5-flash", "across"));
        QVERIFY(TestClient::finished(orphan));
        QCOMPARE(TestClient::status(orphan), 400);
        QVERIFY(orphan->readAll().contains("model_not_routed"));
        delete orphan;
        bool shown = false;
        for (const BatchProgress &batch : m_proxy->snapshot().batches) {
            if (batch.provider == "gemini") {
                QCOMPARE(batch.status, QByteArray("provider_missing"));
                shown = true;
            }
        }
        QVERIFY(shown);
        const int geminiCalls = int(m_gemini->requests().size());
        QTest::qWait(200);
        QCOMPARE(int(m_gemini->requests().size()), geminiCalls); // not polled, not cancelled
        m_proxy.reset();

        // With Gemini again: both resume at their own provider and answer their clients.
        m_openAi->setNeverFinish(false);
        m_gemini->setNeverFinish(false);
        QVERIFY(start(config()));
        QNetworkReply *backOpenAi = send("/v1/chat/completions", chatFor("gpt-4o-mini", "across"));
        QNetworkReply *backGemini =
            send("/v1/chat/completions", chatFor("gemini-2.5-flash", "across"));
        QVERIFY(TestClient::finished(backOpenAi, 15'000));
        QVERIFY(TestClient::finished(backGemini, 15'000));
        QCOMPARE(TestClient::status(backOpenAi), 200);
        QCOMPARE(TestClient::status(backGemini), 200);
        QVERIFY(chatContent(backGemini->readAll()).contains(QStringLiteral("across")));
        delete backOpenAi;
        delete backGemini;
        QCOMPARE(m_openAi->batches().size(), 1); // never paid twice
        QCOMPARE(m_gemini->batches().size(), 1);
    }
};

LLMPROXY_TEST_MAIN(tst_Routing)
#include "tst_routing.moc"
