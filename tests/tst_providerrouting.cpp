// SPDX-License-Identifier: GPL-3.0-or-later
// Provider profiles as data (providerprofile.h), checked fact by fact against the reference on
// provider batch APIs, and the routing of requests to configured providers (providerrouting.h,
// --provider, --route, --default-provider).

#include "provider/providerprofile.h"
#include "provider/providerrouting.h"
#include "settings/config.h"

#include <QTest>

using namespace llmproxy;

Q_DECLARE_METATYPE(llmproxy::BatchPhase)
Q_DECLARE_METATYPE(llmproxy::BatchEnd)
Q_DECLARE_METATYPE(llmproxy::ExpiryBehaviour)

class tst_ProviderRouting final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void everyProfileIsThere() {
        QList<QByteArray> names;
        for (const ProviderProfile &profile : providerProfiles())
            names.append(profile.name);
        QCOMPARE(names,
                 QList<QByteArray>({"openai", "azure", "gemini", "groq", "together", "generic"}));
        QCOMPARE(providerProfileNames(), QStringLiteral("openai, azure, gemini, groq, together, "
                                                        "generic, anthropic"));
        QVERIFY(!providerProfile("mistral"));
    }

    void profileFacts_data() {
        QTest::addColumn<QByteArray>("name");
        QTest::addColumn<QByteArray>("defaultUrl");
        QTest::addColumn<QByteArray>("authHeader");
        QTest::addColumn<QByteArray>("authPrefix");
        QTest::addColumn<QByteArray>("keyVariable");
        QTest::addColumn<QByteArray>("purpose");
        QTest::addColumn<bool>("methodAndUrl");
        QTest::addColumn<int>("maxRequests");
        QTest::addColumn<qint64>("maxBytes");
        QTest::addColumn<QList<QByteArray>>("windows");
        QTest::addColumn<QList<QByteArray>>("batched");
        QTest::addColumn<int>("discount");
        QTest::addColumn<ExpiryBehaviour>("expiry");
        QTest::addColumn<int>("expiresAfterHours");
        using L = QList<QByteArray>;
        const L all{"/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses",
                    "/v1/moderations"};
        const L chat{"/v1/chat/completions"};
        // §1.1, §1.6, §1.7
        QTest::newRow("openai") << QByteArray("openai") << QByteArray("https://api.openai.com/v1")
                                << QByteArray("Authorization") << QByteArray("Bearer ")
                                << QByteArray("OPENAI_API_KEY") << QByteArray("batch") << true
                                << 50'000 << qint64(200'000'000) << L{"24h"} << all << 50
                                << ExpiryBehaviour::PartialResults << 24;
        // §4.1: api-key, deployment names, 100,000 per file, 200 MB, 24h only, never expires.
        QTest::newRow("azure") << QByteArray("azure") << QByteArray() << QByteArray("api-key")
                               << QByteArray() << QByteArray("AZURE_OPENAI_API_KEY")
                               << QByteArray("batch") << true << 100'000 << qint64(200'000'000)
                               << L{"24h"} << L{"/v1/chat/completions", "/v1/responses"} << 50
                               << ExpiryBehaviour::Never << 24;
        // §3.1: compatibility layer, Gemini key, 2 GB files, 48 h then expired without results.
        QTest::newRow("gemini") << QByteArray("gemini")
                                << QByteArray(
                                       "https://generativelanguage.googleapis.com/v1beta/openai")
                                << QByteArray("Authorization") << QByteArray("Bearer ")
                                << QByteArray("GEMINI_API_KEY") << QByteArray("batch") << true
                                << 50'000 << qint64(2'000'000'000) << L{"24h"} << chat << 50
                                << ExpiryBehaviour::NoResults << 48;
        // §4.2: /openai/v1, 100 MB, 24h to 7d, chat only.
        QTest::newRow("groq") << QByteArray("groq") << QByteArray("https://api.groq.com/openai/v1")
                              << QByteArray("Authorization") << QByteArray("Bearer ")
                              << QByteArray("GROQ_API_KEY") << QByteArray("batch") << true << 50'000
                              << qint64(100'000'000) << L{"24h", "7d"} << chat << 50
                              << ExpiryBehaviour::PartialResults << 24;
        // §4.2: purpose batch-api, {custom_id, body}, 50,000 requests, 100 MB, 24 h.
        QTest::newRow("together") << QByteArray("together")
                                  << QByteArray("https://api.together.xyz/v1")
                                  << QByteArray("Authorization") << QByteArray("Bearer ")
                                  << QByteArray("TOGETHER_API_KEY") << QByteArray("batch-api")
                                  << false << 50'000 << qint64(100'000'000) << L{"24h"}
                                  << L{"/v1/chat/completions", "/v1/embeddings", "/v1/completions"}
                                  << 50 << ExpiryBehaviour::PartialResults << 24;
        QTest::newRow("generic") << QByteArray("generic") << QByteArray()
                                 << QByteArray("Authorization") << QByteArray("Bearer ")
                                 << QByteArray("OPENAI_API_KEY") << QByteArray("batch") << true
                                 << 50'000 << qint64(200'000'000) << L{"24h"}
                                 << L{"/v1/chat/completions", "/v1/embeddings", "/v1/completions"}
                                 << 50 << ExpiryBehaviour::PartialResults << 24;
    }
    void profileFacts() {
        QFETCH(QByteArray, name);
        const ProviderProfile *profile = providerProfile(name);
        QVERIFY(profile);
        QFETCH(QByteArray, defaultUrl);
        QCOMPARE(profile->defaultUrl.toString().toUtf8(), defaultUrl);
        QTEST(profile->authHeader, "authHeader");
        QTEST(profile->authPrefix, "authPrefix");
        QTEST(profile->keyEnvironment, "keyVariable");
        QTEST(profile->filePurpose, "purpose");
        QTEST(profile->linesCarryMethodAndUrl, "methodAndUrl");
        QTEST(profile->maxRequests, "maxRequests");
        QTEST(profile->maxBytes, "maxBytes");
        QTEST(profile->completionWindows, "windows");
        QTEST(profile->batchedEndpoints, "batched");
        QTEST(profile->discountPercent, "discount");
        QTEST(profile->expiry, "expiry");
        QFETCH(int, expiresAfterHours);
        QCOMPARE(profile->expiresAfter.count(), expiresAfterHours);
        QFETCH(QList<QByteArray>, batched);
        for (const QByteArray &path : batched)
            QVERIFY(profile->batches(path));
        QVERIFY(!profile->batches("/v1/audio/speech"));
    }

    void statusWords_data() {
        QTest::addColumn<QByteArray>("profile");
        QTest::addColumn<QByteArray>("word");
        QTest::addColumn<BatchPhase>("phase");
        QTest::addColumn<BatchEnd>("end");
        QTest::newRow("openai in_progress") << QByteArray("openai") << QByteArray("in_progress")
                                            << BatchPhase::Running << BatchEnd::None;
        QTest::newRow("together COMPLETED") << QByteArray("together") << QByteArray("COMPLETED")
                                            << BatchPhase::Ended << BatchEnd::Completed;
        QTest::newRow("gemini pending") << QByteArray("gemini") << QByteArray("BATCH_STATE_PENDING")
                                        << BatchPhase::Validating << BatchEnd::None;
        QTest::newRow("gemini running") << QByteArray("gemini") << QByteArray("BATCH_STATE_RUNNING")
                                        << BatchPhase::Running << BatchEnd::None;
        QTest::newRow("gemini succeeded")
            << QByteArray("gemini") << QByteArray("BATCH_STATE_SUCCEEDED") << BatchPhase::Ended
            << BatchEnd::Completed;
        QTest::newRow("gemini expired") << QByteArray("gemini") << QByteArray("BATCH_STATE_EXPIRED")
                                        << BatchPhase::Ended << BatchEnd::Expired;
        QTest::newRow("gemini job cancelling")
            << QByteArray("gemini") << QByteArray("JOB_STATE_CANCELLING") << BatchPhase::Cancelling
            << BatchEnd::None;
        QTest::newRow("gemini openai words") << QByteArray("gemini") << QByteArray("completed")
                                             << BatchPhase::Ended << BatchEnd::Completed;
    }
    void statusWords() {
        QFETCH(QByteArray, profile);
        QFETCH(QByteArray, word);
        const auto status = providerProfile(profile)->status(word);
        QVERIFY(status);
        QTEST(status->first, "phase");
        QTEST(status->second, "end");
        // OpenAI itself has no Gemini words.
        QVERIFY(!providerProfile("openai")->status("BATCH_STATE_RUNNING"));
    }

    void aUrlWithoutAPathGetsTheProfilesPrefix() {
        const ProviderProfile &azure = *providerProfile("azure");
        QCOMPARE(azure.baseUrlFor(QUrl(QStringLiteral("https://res.openai.azure.com"))).toString(),
                 QStringLiteral("https://res.openai.azure.com/openai/v1"));
        QCOMPARE(azure.baseUrlFor(QUrl(QStringLiteral("https://res.openai.azure.com/"))).toString(),
                 QStringLiteral("https://res.openai.azure.com/openai/v1"));
        QCOMPARE(
            azure.baseUrlFor(QUrl(QStringLiteral("http://127.0.0.1:9/x/openai/v1/"))).toString(),
            QStringLiteral("http://127.0.0.1:9/x/openai/v1"));
        QCOMPARE(providerProfile("gemini")
                     ->baseUrlFor(QUrl(QStringLiteral("https://generativelanguage.googleapis.com")))
                     .toString(),
                 QStringLiteral("https://generativelanguage.googleapis.com/v1beta/openai"));
    }

    void providerSpecs_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<bool>("valid");
        QTest::addColumn<QByteArray>("name");
        QTest::addColumn<QByteArray>("profile");
        QTest::addColumn<QByteArray>("url");
        QTest::addColumn<QByteArray>("keyVariable");
        QTest::newRow("name=profile") << QByteArray("gemini=gemini") << true << QByteArray("gemini")
                                      << QByteArray("gemini") << QByteArray() << QByteArray();
        QTest::newRow("name only") << QByteArray("groq") << true << QByteArray("groq")
                                   << QByteArray("groq") << QByteArray() << QByteArray();
        QTest::newRow("url and key")
            << QByteArray("work=azure;url=https://r.openai.azure.com;key_env=WORK_KEY") << true
            << QByteArray("work") << QByteArray("azure") << QByteArray("https://r.openai.azure.com")
            << QByteArray("WORK_KEY");
        QTest::newRow("azure needs a url") << QByteArray("azure=azure") << false << QByteArray()
                                           << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("generic needs a url") << QByteArray("local=generic") << false << QByteArray()
                                             << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("unknown profile") << QByteArray("m=mistral") << false << QByteArray()
                                         << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("bad name") << QByteArray("Gem ini=gemini") << false << QByteArray()
                                  << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("ftp url") << QByteArray("g=gemini;url=ftp://x") << false << QByteArray()
                                 << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("bad variable") << QByteArray("g=gemini;key_env=1X") << false << QByteArray()
                                      << QByteArray() << QByteArray() << QByteArray();
        QTest::newRow("unknown field") << QByteArray("g=gemini;region=eu") << false << QByteArray()
                                       << QByteArray() << QByteArray() << QByteArray();
    }
    void providerSpecs() {
        QFETCH(QByteArray, text);
        QFETCH(bool, valid);
        QString error;
        const auto spec = parseProviderSpec(QString::fromUtf8(text), &error);
        QCOMPARE(spec.has_value(), valid);
        if (!valid) {
            QVERIFY(!error.isEmpty());
            return;
        }
        QTEST(spec->name, "name");
        QTEST(spec->profile, "profile");
        QFETCH(QByteArray, url);
        QCOMPARE(spec->url.toString().toUtf8(), url);
        QTEST(spec->keyEnvironment, "keyVariable");
        // Its text reads back to the same spec.
        QCOMPARE(parseProviderSpec(QString::fromUtf8(providerSpecText(*spec)), &error), spec);
    }

    // Exact names win over prefixes, the longest prefix over shorter ones, models over paths,
    // and the default takes the rest; without one, nothing.
    void routing_data() {
        QTest::addColumn<QByteArray>("defaultProvider");
        QTest::addColumn<QByteArray>("path");
        QTest::addColumn<QByteArray>("model");
        QTest::addColumn<QByteArray>("expected"); // empty: not routed
        const QByteArray chat("/v1/chat/completions");
        QTest::newRow("exact") << QByteArray("openai") << chat << QByteArray("my-deployment")
                               << QByteArray("azure");
        QTest::newRow("prefix") << QByteArray("openai") << chat << QByteArray("gemini-2.5-flash")
                                << QByteArray("gemini");
        QTest::newRow("longest prefix") << QByteArray("openai") << chat
                                        << QByteArray("gemini-pro-x") << QByteArray("vertexish");
        QTest::newRow("exact beats prefix")
            << QByteArray("openai") << chat << QByteArray("gemini-special") << QByteArray("azure");
        QTest::newRow("path") << QByteArray("openai") << QByteArray("/v1/embeddings")
                              << QByteArray("text-embedding-3-small") << QByteArray("groq");
        QTest::newRow("model beats path") << QByteArray("openai") << QByteArray("/v1/embeddings")
                                          << QByteArray("gemini-embedding") << QByteArray("gemini");
        QTest::newRow("default") << QByteArray("openai") << chat << QByteArray("gpt-4o-mini")
                                 << QByteArray("openai");
        QTest::newRow("no default")
            << QByteArray() << chat << QByteArray("gpt-4o-mini") << QByteArray();
        QTest::newRow("no model, no default")
            << QByteArray() << QByteArray("/v1/models") << QByteArray() << QByteArray();
        QTest::newRow("prefix is not a substring")
            << QByteArray() << chat << QByteArray("my-gemini-2") << QByteArray();
    }
    void routing() {
        QFETCH(QByteArray, defaultProvider);
        QFETCH(QByteArray, path);
        QFETCH(QByteArray, model);
        QFETCH(QByteArray, expected);
        QList<RouteRule> rules;
        for (const char *text : {"my-deployment=azure", "gemini-*=gemini", "gemini-pro*=vertexish",
                                 "gemini-special=azure", "/v1/embeddings=groq"}) {
            QString error;
            const auto rule = parseRouteRule(QString::fromLatin1(text), &error);
            QVERIFY2(rule, qPrintable(error));
            rules.append(*rule);
        }
        const ProviderRouter router(rules, defaultProvider,
                                    {"openai", "azure", "gemini", "vertexish", "groq"});
        const auto chosen = router.route(path, model);
        QCOMPARE(chosen.value_or(QByteArray()), expected);
        if (!chosen) {
            const QString message = router.unroutedMessage(path, model);
            QVERIFY2(message.contains(QStringLiteral("openai, azure, gemini, vertexish, groq")),
                     qPrintable(message));
        }
    }

    void badRoutesAreRefused_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::newRow("no provider") << QByteArray("gemini-*");
        QTest::newRow("empty pattern") << QByteArray("=gemini");
        QTest::newRow("star inside") << QByteArray("gem*ini=gemini");
        QTest::newRow("bad name") << QByteArray("gpt-4o=Open AI");
    }
    void badRoutesAreRefused() {
        QFETCH(QByteArray, text);
        QString error;
        QVERIFY(!parseRouteRule(QString::fromUtf8(text), &error));
        QVERIFY(!error.isEmpty());
    }

    // Each provider's key comes from its own variable (the profile's unless key_env says); the
    // "openai" provider is always there, --upstream with OPENAI_API_KEY.
    void configuredProvidersTakeTheirKeysFromTheirVariables() {
        const CommandLine line = parseCommandLine(
            {QStringLiteral("llm-proxy"), QStringLiteral("--upstream"),
             QStringLiteral("http://127.0.0.1:9/v1"), QStringLiteral("--provider"),
             QStringLiteral("gemini=gemini"), QStringLiteral("--provider"),
             QStringLiteral("work=azure;url=https://r.openai.azure.com;key_env=WORK_KEY"),
             QStringLiteral("--route"), QStringLiteral("gemini-*=gemini"),
             QStringLiteral("--route"), QStringLiteral("my-deployment=work")},
            "sk-openai-key");
        QCOMPARE(line.action, CommandLine::Action::Run);
        const QHash<QByteArray, QByteArray> environment{{"GEMINI_API_KEY", "gm-key"},
                                                        {"WORK_KEY", "az-key"},
                                                        {"AZURE_OPENAI_API_KEY", "not-this"}};
        QString error;
        const QList<ConfiguredProvider> providers = configuredProviders(
            line.config, [&](const QByteArray &name) { return environment.value(name); }, &error);
        QCOMPARE(error, QString());
        QCOMPARE(providers.size(), 3);
        QCOMPARE(providers.at(0).name, QByteArray("openai"));
        QCOMPARE(providers.at(0).baseUrl.toString(), QStringLiteral("http://127.0.0.1:9/v1"));
        QCOMPARE(providers.at(0).apiKey, QByteArray("sk-openai-key"));
        QCOMPARE(providers.at(1).name, QByteArray("gemini"));
        QCOMPARE(providers.at(1).apiKey, QByteArray("gm-key"));
        QCOMPARE(providers.at(1).baseUrl.toString(),
                 QStringLiteral("https://generativelanguage.googleapis.com/v1beta/openai"));
        QCOMPARE(providers.at(2).name, QByteArray("work"));
        QCOMPARE(providers.at(2).profile->name, QByteArray("azure"));
        QCOMPARE(providers.at(2).apiKey, QByteArray("az-key"));
        QCOMPARE(providers.at(2).baseUrl.toString(),
                 QStringLiteral("https://r.openai.azure.com/openai/v1"));
        const ProviderRouter router = providerRouter(line.config, providers);
        QCOMPARE(router.route("/v1/chat/completions", "gemini-2.5-flash"), QByteArray("gemini"));
        QCOMPARE(router.route("/v1/chat/completions", "my-deployment"), QByteArray("work"));
        QCOMPARE(router.route("/v1/chat/completions", "gpt-4o-mini"), QByteArray("openai"));
    }

    void aRouteToAProviderNotConfiguredIsACommandLineError() {
        const CommandLine line =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--route"),
                              QStringLiteral("gemini-*=gemini")});
        QCOMPARE(line.action, CommandLine::Action::Error);
        QVERIFY2(line.message.contains(QStringLiteral("not configured")), qPrintable(line.message));
        const CommandLine noDefault =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--default-provider"),
                              QStringLiteral("gemini")});
        QCOMPARE(noDefault.action, CommandLine::Action::Error);
        const CommandLine none =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--default-provider"),
                              QStringLiteral("none")});
        QCOMPARE(none.action, CommandLine::Action::Run);
        QVERIFY(none.config.defaultProvider.isEmpty());
        QCOMPARE(settingText(none.config, Setting::DefaultProvider), QStringLiteral("none"));
        const CommandLine badSpec = parseCommandLine(
            {QStringLiteral("llm-proxy"), QStringLiteral("--provider"), QStringLiteral("x=nope")});
        QCOMPARE(badSpec.action, CommandLine::Action::Error);
        QVERIFY2(badSpec.message.contains(QStringLiteral("--provider")),
                 qPrintable(badSpec.message));
    }
};

QTEST_GUILESS_MAIN(tst_ProviderRouting)
#include "tst_providerrouting.moc"
