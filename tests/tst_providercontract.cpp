// SPDX-License-Identifier: GPL-3.0-or-later
// The provider-neutral batch contract (provider.h), run case for case against every shape the
// fake plays, one per provider profile (providerprofile.h): OpenAI, Azure ("api-key" header,
// /openai/v1), Gemini (/v1beta/openai, BATCH_STATE_* statuses, expired jobs without results),
// Groq (/openai/v1), Together (UPPERCASE statuses, purpose "batch-api", {custom_id, body} lines,
// a create answer wrapped in {"job": ...}) and generic. What BatchJob relies on holds for each: a
// normalised status with counts, normalised result lines (outcome, status, body, request id,
// usage), find after a crash, cancel, clean up, permanent poll errors, the queue-full verdict,
// and callbacks that never reach a destroyed context. The last case runs a request from a
// client through the front end, the core and the job to the fake and back.
//
// The same contract against Anthropic's Message Batches (AnthropicProvider and the fake
// Anthropic API, the anthropic* cases): inline requests, its statuses and result types, its
// error shapes, find after a crash without metadata, and a request through the core and a job.

#include "batch/batchcore.h"
#include "fakeanthropic.h"
#include "fakeprovider.h"
#include "http/httpfrontend.h"
#include "provider/anthropicprovider.h"
#include "provider/openaiprovider.h"
#include "queue/store.h"
#include "stats/stats.h"
#include "testclient.h"
#include "testmain.h"

#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <optional>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

Q_DECLARE_METATYPE(llmproxy::test::FakeProvider::Shape)

namespace {
const Credentials Key{"sk-test-key-aaaa", {}, {}};

template <typename T>
std::optional<ProviderResult<T>> waitFor(std::optional<ProviderResult<T>> &slot) {
    if (!QTest::qWaitFor([&] { return slot.has_value(); }, 10'000))
        return std::nullopt;
    return slot;
}
} // namespace

class tst_ProviderContract final : public QObject {
    Q_OBJECT

    std::unique_ptr<FakeProvider> m_fake;
    std::unique_ptr<FakeAnthropic> m_anthropicFake;
    std::unique_ptr<QNetworkAccessManager> m_nam;
    std::unique_ptr<Provider> m_provider;
    std::unique_ptr<QObject> m_context; // stands for a job

    void addShapes() {
        QTest::addColumn<FakeProvider::Shape>("shape");
        for (const ProviderProfile &profile : providerProfiles())
            QTest::newRow(profile.name.constData()) << *FakeProvider::shapeNamed(profile.name);
    }

    bool startShape() {
        QFETCH(FakeProvider::Shape, shape);
        m_fake = std::make_unique<FakeProvider>();
        m_fake->setShape(shape);
        m_fake->setValidationDelay(20ms);
        m_fake->setProcessingDelay(30ms);
        m_fake->setFinalizingDelay(10ms);
        if (!m_fake->listen())
            return false;
        m_nam = std::make_unique<QNetworkAccessManager>();
        m_nam->setAutoDeleteReplies(false);
        auto provider = std::make_unique<OpenAiProvider>(m_nam.get(), m_fake->baseUrl());
        provider->setProfile(*providerProfile(FakeProvider::shapeName(shape)));
        m_provider = std::move(provider);
        m_context = std::make_unique<QObject>();
        return true;
    }

    bool startAnthropic() {
        m_anthropicFake = std::make_unique<FakeAnthropic>();
        m_anthropicFake->setProcessingDelay(30ms);
        if (!m_anthropicFake->listen())
            return false;
        m_nam = std::make_unique<QNetworkAccessManager>();
        m_nam->setAutoDeleteReplies(false);
        m_provider = std::make_unique<AnthropicProvider>(m_nam.get(), m_anthropicFake->baseUrl());
        m_context = std::make_unique<QObject>();
        return true;
    }

    static QByteArray messagesBody(const QByteArray &text) {
        return "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":["
               "{\"role\":\"user\",\"content\":\"" +
               text + "\"}]}";
    }

    QByteArray lines(const QList<QByteArray> &contents) const {
        const bool anthropic = m_anthropicFake != nullptr;
        QByteArray out;
        for (qsizetype i = 0; i < contents.size(); ++i)
            out += m_provider->encodeLine(
                customIdFor(quint64(i + 1)), anthropic ? "/v1/messages" : "/v1/chat/completions",
                anthropic ? messagesBody(contents.at(i)) : chatBody(contents.at(i)));
        return out;
    }

    std::optional<QByteArray> stage(const BatchSubmission &submission, const QByteArray &input) {
        std::optional<ProviderResult<QByteArray>> staged;
        m_provider->stage(m_context.get(), Key, submission, input,
                          [&](ProviderResult<QByteArray> r) { staged = std::move(r); });
        const auto result = waitFor(staged);
        if (!result || !result->ok())
            return std::nullopt;
        return *result->value;
    }

    std::optional<BatchStatus> submit(const BatchSubmission &submission, const QByteArray &state,
                                      const QByteArray &input = {},
                                      const Credentials &creds = Key) {
        std::optional<ProviderResult<BatchStatus>> created;
        m_provider->submit(m_context.get(), creds, submission, state, input,
                           [&](ProviderResult<BatchStatus> r) { created = std::move(r); });
        const auto result = waitFor(created);
        if (!result || !result->ok())
            return std::nullopt;
        return *result->value;
    }

    ProviderResult<BatchStatus> pollOnce(const BatchStatus &batch) {
        std::optional<ProviderResult<BatchStatus>> polled;
        m_provider->poll(m_context.get(), Key, batch.id, batch.state,
                         [&](ProviderResult<BatchStatus> r) { polled = std::move(r); });
        return waitFor(polled).value_or(ProviderResult<BatchStatus>{});
    }

    std::optional<BatchStatus> pollUntilEnded(BatchStatus batch) {
        for (int i = 0; i < 200 && !batch.ended(); ++i) {
            QTest::qWait(10);
            ProviderResult<BatchStatus> polled = pollOnce(batch);
            if (!polled.ok())
                return std::nullopt;
            batch = *polled.value;
        }
        return batch.ended() ? std::optional<BatchStatus>(batch) : std::nullopt;
    }

    QList<ResultLine> readAll(const BatchStatus &batch) {
        QList<ResultLine> out;
        bool done = false;
        m_provider->readResults(
            m_context.get(), Key, batch.id, batch.state,
            [&](ResultLine line) { out.append(std::move(line)); }, [](const TooLongLine &) {},
            [&](std::optional<ProviderError> error) {
                done = true;
                if (error)
                    qWarning() << "reading results failed:" << error->message;
            });
        if (!QTest::qWaitFor([&] { return done; }, 10'000))
            qWarning() << "reading results did not end";
        return out;
    }

    static const ResultLine *byId(const QList<ResultLine> &lines, quint64 request) {
        for (const ResultLine &line : lines) {
            if (line.customId == customIdFor(request))
                return &line;
        }
        return nullptr;
    }

    static QByteArray spelled(FakeProvider::Shape shape, const char *word) {
        if (shape == FakeProvider::Shape::Gemini) {
            const QByteArray w(word);
            return w == "validating"                         ? QByteArray("BATCH_STATE_PENDING")
                   : w == "completed"                        ? QByteArray("BATCH_STATE_SUCCEEDED")
                   : w == "cancelling"                       ? QByteArray("JOB_STATE_CANCELLING")
                   : w == "in_progress" || w == "finalizing" ? QByteArray("BATCH_STATE_RUNNING")
                                                             : "BATCH_STATE_" + w.toUpper();
        }
        return shape == FakeProvider::Shape::Together ? QByteArray(word).toUpper()
                                                      : QByteArray(word);
    }

private Q_SLOTS:
    void cleanup() {
        m_context.reset();
        m_provider.reset();
        m_nam.reset();
        m_fake.reset();
        m_anthropicFake.reset();
    }

    void aBatchGoesFromSubmitToNormalisedResults_data() { addShapes(); }
    void aBatchGoesFromSubmitToNormalisedResults() {
        QVERIFY(startShape());
        QFETCH(FakeProvider::Shape, shape);
        const BatchSubmission submission{"local-1", "/v1/chat/completions", "gpt-4o-mini", 3};
        const std::optional<QByteArray> state = stage(
            submission, lines({"hello", "bad [[status:400]]", "late [[error:batch_expired]]"}));
        QVERIFY(state);
        // The encoder is the provider's: Together's lines carry no method or url (its fake
        // fails a batch whose lines do), OpenAI's do.
        const QList<QByteArray> files = m_fake->liveFileIds();
        QCOMPARE(files.size(), 1);
        QCOMPARE(m_fake->fileContent(files.constFirst()).contains(R"("method":"POST")"),
                 shape != FakeProvider::Shape::Together);

        const std::optional<BatchStatus> created = submit(submission, *state);
        QVERIFY(created);
        QVERIFY(!created->id.isEmpty());
        QCOMPARE(created->phase, BatchPhase::Validating);
        QCOMPARE(created->providerStatus, spelled(shape, "validating"));
        QVERIFY(!created->state.isEmpty());

        const std::optional<BatchStatus> ended = pollUntilEnded(*created);
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Completed);
        QCOMPARE(ended->providerStatus, spelled(shape, "completed"));
        QCOMPARE(statusName(ended->phase, ended->end), QByteArray("completed"));
        QCOMPARE(ended->total, 3);
        QCOMPARE(ended->succeeded + ended->failed, 3);
        QVERIFY(!ended->retryLater);

        const QList<ResultLine> results = readAll(*ended);
        QCOMPARE(results.size(), 3);
        const ResultLine *ok = byId(results, 1);
        QVERIFY(ok);
        QCOMPARE(ok->outcome, ResultOutcome::Succeeded);
        QCOMPARE(ok->httpStatus, 200);
        QVERIFY(!ok->requestId.isEmpty());
        QVERIFY(chatContent(ok->body).size() > 0);
        QVERIFY(ok->usage.reported);
        QVERIFY(ok->usage.input.value_or(0) > 0);
        QVERIFY(ok->usage.output.value_or(0) > 0);
        const ResultLine *bad = byId(results, 2);
        QVERIFY(bad);
        QCOMPARE(bad->outcome, ResultOutcome::Errored);
        QCOMPARE(bad->httpStatus, 400);
        QVERIFY(jsonOf(bad->body).contains(QStringLiteral("error")));
        QVERIFY(!bad->usage.reported);
        const ResultLine *late = byId(results, 3);
        QVERIFY(late);
        QCOMPARE(late->outcome, ResultOutcome::Expired);
        QVERIFY(!late->hasAnswer);

        // Clean up: every file of the batch goes.
        m_provider->cleanUp(Key, ended->state);
        QTRY_COMPARE(m_fake->filesLive(), 0);
        QCOMPARE(m_fake->filesDeleted(), 3); // input, output, error
    }

    void aBatchMadeBeforeACrashIsFound_data() { addShapes(); }
    void aBatchMadeBeforeACrashIsFound() {
        QVERIFY(startShape());
        const BatchSubmission submission{"local-crash", "/v1/chat/completions", "gpt-4o-mini", 1};
        const std::optional<QByteArray> state = stage(submission, lines({"hello"}));
        QVERIFY(state);
        const std::optional<BatchStatus> created = submit(submission, *state);
        QVERIFY(created);

        std::optional<ProviderResult<std::optional<BatchStatus>>> found;
        m_provider->find(
            m_context.get(), Key, submission, *state,
            [&](ProviderResult<std::optional<BatchStatus>> r) { found = std::move(r); });
        QVERIFY(waitFor(found));
        QVERIFY(found->ok());
        QVERIFY(found->value->has_value());
        QCOMPARE((*found->value)->id, created->id);
        // Its state still names the input file, so a cleanup after the crash deletes it.
        QCOMPARE(OpenAiProvider::filesOf((*found->value)->state).input,
                 OpenAiProvider::filesOf(*state).input);

        std::optional<ProviderResult<std::optional<BatchStatus>>> missing;
        m_provider->find(
            m_context.get(), Key, {"never-made", "/v1/chat/completions", {}, 1}, {},
            [&](ProviderResult<std::optional<BatchStatus>> r) { missing = std::move(r); });
        QVERIFY(waitFor(missing));
        QVERIFY(missing->ok());
        QVERIFY(!missing->value->has_value());
    }

    void aCancelledBatchEndsCancelledAndItsUnrunLinesSaySo_data() { addShapes(); }
    void aCancelledBatchEndsCancelledAndItsUnrunLinesSaySo() {
        QVERIFY(startShape());
        QFETCH(FakeProvider::Shape, shape);
        m_fake->setNeverFinish(true);
        m_fake->setCancelFractionDone(0.0);
        const BatchSubmission submission{"local-cancel", "/v1/chat/completions", "gpt-4o-mini", 2};
        const std::optional<QByteArray> state = stage(submission, lines({"one", "two"}));
        QVERIFY(state);
        std::optional<BatchStatus> batch = submit(submission, *state);
        QVERIFY(batch);
        QTRY_COMPARE(pollOnce(*batch).value.value_or(BatchStatus{}).phase, BatchPhase::Running);
        QCOMPARE(pollOnce(*batch).value->providerStatus, spelled(shape, "in_progress"));

        std::optional<ProviderResult<BatchStatus>> cancelled;
        m_provider->cancel(m_context.get(), Key, batch->id, batch->state,
                           [&](ProviderResult<BatchStatus> r) { cancelled = std::move(r); });
        QVERIFY(waitFor(cancelled));
        QVERIFY(cancelled->ok());
        QVERIFY(cancelled->value->phase == BatchPhase::Cancelling || cancelled->value->ended());
        batch = pollUntilEnded(*cancelled->value);
        QVERIFY(batch);
        QCOMPARE(batch->end, BatchEnd::Cancelled);
        const QList<ResultLine> results = readAll(*batch);
        QCOMPARE(results.size(), 2);
        for (const ResultLine &line : results)
            QCOMPARE(line.outcome, ResultOutcome::Cancelled);
    }

    // Each profile sends its key its own way; the fake playing it refuses any other way.
    void eachProfileSendsItsKeyItsOwnWay_data() { addShapes(); }
    void eachProfileSendsItsKeyItsOwnWay() {
        QVERIFY(startShape());
        QFETCH(FakeProvider::Shape, shape);
        m_fake->setAcceptedKey(Key.apiKey);
        const BatchSubmission submission{"local-key", "/v1/chat/completions", "gpt-4o-mini", 1};
        QVERIFY(stage(submission, lines({"hello"})));
        const FakeProvider::RequestRecord &upload = m_fake->requests().constLast();
        QVERIFY(upload.path.startsWith(QByteArray(m_fake->baseUrl().path().toUtf8() + "/files")));
        if (shape == FakeProvider::Shape::Azure) {
            QCOMPARE(upload.headers.value("api-key"), Key.apiKey);
            QVERIFY(!upload.headers.contains("authorization"));
        } else {
            QCOMPARE(upload.headers.value("authorization"), "Bearer " + Key.apiKey);
            QVERIFY(!upload.headers.contains("api-key"));
        }
        // Another family member's way of sending the key is refused: 401, a permanent error.
        const ProviderProfile &other =
            *providerProfile(shape == FakeProvider::Shape::Azure ? "openai" : "azure");
        static_cast<OpenAiProvider *>(m_provider.get())->setProfile(other);
        std::optional<ProviderResult<QByteArray>> refused;
        m_provider->stage(m_context.get(), Key, submission, lines({"hello"}),
                          [&](ProviderResult<QByteArray> r) { refused = std::move(r); });
        QVERIFY(waitFor(refused));
        QVERIFY(!refused->ok());
        QCOMPARE(refused->error.httpStatus, 401);
    }

    // How expiry behaves is the profile's: Gemini's expired jobs have nothing to read, so every
    // request goes out again; OpenAI's keep the lines that finished.
    void anExpiredBatchLeavesWhatItsProfileSays_data() { addShapes(); }
    void anExpiredBatchLeavesWhatItsProfileSays() {
        QVERIFY(startShape());
        QFETCH(FakeProvider::Shape, shape);
        if (shape == FakeProvider::Shape::Azure)
            QSKIP("Azure never expires a job (the fake is told to anyway for the others)");
        m_fake->setExpireAfter(20ms, 0.5);
        const BatchSubmission submission{"local-expire", "/v1/chat/completions", "gpt-4o-mini", 2};
        const std::optional<QByteArray> state = stage(submission, lines({"one", "two"}));
        QVERIFY(state);
        const std::optional<BatchStatus> created = submit(submission, *state);
        QVERIFY(created);
        const std::optional<BatchStatus> ended = pollUntilEnded(*created);
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Expired);
        QCOMPARE(ended->providerStatus, spelled(shape, "expired"));
        const QList<ResultLine> results = readAll(*ended);
        const ProviderProfile &profile = *providerProfile(FakeProvider::shapeName(shape));
        QCOMPARE(results.size(), profile.expiry == ExpiryBehaviour::NoResults ? 0 : 2);
    }

    // A profile's file limit is the provider's: over it, the batch fails validation for good.
    void moreRequestsThanTheProfileTakesFailForGood_data() { addShapes(); }
    void moreRequestsThanTheProfileTakesFailForGood() {
        QVERIFY(startShape());
        QString error;
        QVERIFY(
            m_fake->applyConfig(QJsonObject{{QStringLiteral("max_requests_per_file"), 2}}, &error));
        const BatchSubmission submission{"local-many", "/v1/chat/completions", "gpt-4o-mini", 3};
        const std::optional<QByteArray> state = stage(submission, lines({"a", "b", "c"}));
        QVERIFY(state);
        const std::optional<BatchStatus> created = submit(submission, *state);
        QVERIFY(created);
        const std::optional<BatchStatus> ended = pollUntilEnded(*created);
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Failed);
        QVERIFY(!ended->retryLater);
    }

    // An endpoint the provider does not batch is refused at create with a final 400: the proxy
    // relays such requests instead (isBatchedAt), and a batch that reaches one anyway ends.
    void anEndpointTheProfileDoesNotBatchIsRefusedForGood_data() { addShapes(); }
    void anEndpointTheProfileDoesNotBatchIsRefusedForGood() {
        QVERIFY(startShape());
        QFETCH(FakeProvider::Shape, shape);
        const ProviderProfile &profile = *providerProfile(FakeProvider::shapeName(shape));
        if (profile.batches("/v1/embeddings"))
            QSKIP("this profile batches embeddings");
        const BatchSubmission submission{"local-embed", "/v1/embeddings", "text-embedding-3-small",
                                         1};
        QByteArray input = m_provider->encodeLine(
            customIdFor(1), "/v1/embeddings", R"({"model":"text-embedding-3-small","input":"x"})");
        const std::optional<QByteArray> state = stage(submission, input);
        QVERIFY(state);
        std::optional<ProviderResult<BatchStatus>> created;
        m_provider->submit(m_context.get(), Key, submission, *state, input,
                           [&](ProviderResult<BatchStatus> r) { created = std::move(r); });
        QVERIFY(waitFor(created));
        QVERIFY(!created->ok());
        QCOMPARE(created->error.httpStatus, 400);
        QVERIFY(!created->error.retryable());
    }

    void aBatchTheProviderNoLongerKnowsIsAPermanentError_data() { addShapes(); }
    void aBatchTheProviderNoLongerKnowsIsAPermanentError() {
        QVERIFY(startShape());
        BatchStatus gone;
        gone.id = "batch_that_never_was";
        const ProviderResult<BatchStatus> polled = pollOnce(gone);
        QVERIFY(!polled.ok());
        QCOMPARE(polled.error.httpStatus, 404);
        QVERIFY(Provider::isPermanentPollError(polled.error));
        // A refused key is final too; a transient answer is not.
        ProviderError refused;
        refused.httpStatus = 401;
        QVERIFY(Provider::isPermanentPollError(refused));
        ProviderError busy;
        busy.httpStatus = 503;
        QVERIFY(!Provider::isPermanentPollError(busy));
    }

    void aFullQueueIsRetryLaterAndOtherFailuresAreNot_data() {
        QTest::addColumn<FakeProvider::Shape>("shape");
        QTest::addColumn<QByteArray>("code");
        QTest::addColumn<bool>("retryLater");
        for (const ProviderProfile &profile : providerProfiles()) {
            const char *name = profile.name.constData();
            const FakeProvider::Shape shape = *FakeProvider::shapeNamed(profile.name);
            QTest::addRow("%s queue full", name)
                << shape << QByteArray("token_limit_exceeded") << true;
            QTest::addRow("%s bad file", name) << shape << QByteArray("invalid_json_line") << false;
        }
    }
    void aFullQueueIsRetryLaterAndOtherFailuresAreNot() {
        QVERIFY(startShape());
        QFETCH(QByteArray, code);
        QFETCH(bool, retryLater);
        m_fake->setBatchOutcome(FakeProvider::BatchOutcome::Fail, 1, code,
                                QStringLiteral("the provider says no"));
        const BatchSubmission submission{"local-fail", "/v1/chat/completions", "gpt-4o-mini", 1};
        const std::optional<QByteArray> state = stage(submission, lines({"hello"}));
        QVERIFY(state);
        const std::optional<BatchStatus> created = submit(submission, *state);
        QVERIFY(created);
        const std::optional<BatchStatus> ended = pollUntilEnded(*created);
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Failed);
        QCOMPARE(ended->retryLater, retryLater);
        QVERIFY(ended->errors.contains(QStringLiteral("the provider says no")));
    }

    void callbacksNeverReachADestroyedContext_data() { addShapes(); }
    void callbacksNeverReachADestroyedContext() {
        QVERIFY(startShape());
        BatchStatus batch;
        batch.id = "batch_x";
        int calls = 0;
        auto job = std::make_unique<QObject>();
        m_provider->poll(job.get(), Key, batch.id, {},
                         [&](ProviderResult<BatchStatus>) { ++calls; });
        m_provider->stage(job.get(), Key, {"l", "/v1/chat/completions", {}, 1}, lines({"a"}),
                          [&](ProviderResult<QByteArray>) { ++calls; });
        job.reset(); // the job is gone before the provider answers
        // The provider itself lives on and answers another caller meanwhile.
        std::optional<ProviderResult<BatchStatus>> other;
        m_provider->poll(m_context.get(), Key, batch.id, {},
                         [&](ProviderResult<BatchStatus> r) { other = std::move(r); });
        QVERIFY(waitFor(other));
        QTRY_COMPARE(
            m_fake->count("POST", QByteArray(m_fake->baseUrl().path().toUtf8() + "/files")), 1);
        QTest::qWait(100);
        QCOMPARE(calls, 0);
    }

    // ---- Anthropic's Message Batches through the same contract ---------------------------

    void anthropicBatchGoesFromSubmitToNormalisedResults() {
        QVERIFY(startAnthropic());
        const BatchSubmission submission{"local-a", "/v1/messages", "claude-haiku-4-5", 4};
        const QByteArray input =
            lines({"hello", "bad [[error:invalid_request_error]]",
                   "busy [[error:overloaded_error]]", "cached [[cache:100:200]]"});
        // Inline: staging uploads nothing, the lines go with the create call.
        QVERIFY(m_provider->inlineInput());
        const std::optional<QByteArray> state = stage(submission, input);
        QVERIFY(state);
        QCOMPARE(m_anthropicFake->requests().size(), 0);

        Credentials creds = Key;
        creds.headers = {{"anthropic-version", "2023-06-01"},
                         {"anthropic-beta", "message-batches-2024-09-24"},
                         {"openai-organization", "not-sent"}};
        const std::optional<BatchStatus> created = submit(submission, *state, input, creds);
        QVERIFY(created);
        QVERIFY(created->id.startsWith("msgbatch_"));
        QCOMPARE(created->phase, BatchPhase::Running);
        QCOMPARE(created->providerStatus, QByteArray("in_progress"));
        QCOMPARE(created->total, 4);
        const FakeAnthropic::RequestRecord &create = m_anthropicFake->requests().constLast();
        QCOMPARE(create.path, QByteArray("/v1/messages/batches"));
        QCOMPARE(create.headers.value("x-api-key"), Key.apiKey);
        QVERIFY(!create.headers.contains("authorization"));
        QCOMPARE(create.headers.value("anthropic-version"), QByteArray("2023-06-01"));
        QCOMPARE(create.headers.value("anthropic-beta"), QByteArray("message-batches-2024-09-24"));
        QCOMPARE(
            m_anthropicFake->batches().constFirst().customIds,
            (QList<QByteArray>{customIdFor(1), customIdFor(2), customIdFor(3), customIdFor(4)}));

        const std::optional<BatchStatus> ended = pollUntilEnded(*created);
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Completed);
        QCOMPARE(ended->providerStatus, QByteArray("ended"));
        QCOMPARE(ended->total, 4);
        QCOMPARE(ended->succeeded, 2);
        QCOMPARE(ended->failed, 2);

        const QList<ResultLine> results = readAll(*ended);
        QCOMPARE(results.size(), 4);
        const ResultLine *ok = byId(results, 1);
        QVERIFY(ok);
        QCOMPARE(ok->outcome, ResultOutcome::Succeeded);
        QCOMPARE(ok->httpStatus, 200);
        const QJsonObject message = jsonOf(ok->body);
        QCOMPARE(message.value(QStringLiteral("type")).toString(), QStringLiteral("message"));
        QCOMPARE(message.value(QStringLiteral("content"))
                     .toArray()
                     .first()
                     .toObject()
                     .value(QStringLiteral("text")),
                 QStringLiteral("echo: hello"));
        QVERIFY(ok->usage.reported);
        QCOMPARE(ok->usage.input, std::optional<qint64>(5));
        QCOMPARE(ok->usage.output, std::optional<qint64>(11));
        const ResultLine *bad = byId(results, 2);
        QVERIFY(bad);
        QCOMPARE(bad->outcome, ResultOutcome::Errored);
        QCOMPARE(bad->httpStatus, 400);
        QVERIFY(!bad->requestId.isEmpty());
        QCOMPARE(jsonOf(bad->body).value(QStringLiteral("type")).toString(),
                 QStringLiteral("error"));
        const ResultLine *busy = byId(results, 3);
        QVERIFY(busy);
        QCOMPARE(busy->httpStatus, 529);
        const HttpAnswer busyAnswer = m_provider->answerFor(*busy, ended->id);
        QCOMPARE(busyAnswer.status, 529);
        QVERIFY(busyAnswer.headers.contains(qMakePair(QByteArray("request-id"), busy->requestId)));
        const ResultLine *cached = byId(results, 4);
        QVERIFY(cached);
        const qint64 text = QByteArray("cached [[cache:100:200]]").size();
        QCOMPARE(cached->usage.input, std::optional<qint64>(text + 300));
        QCOMPARE(cached->usage.cachedInput, std::optional<qint64>(200));
        QCOMPARE(cached->usage.cacheWriteInput, std::optional<qint64>(100));

        // Clean up deletes the batch.
        m_provider->cleanUp(Key, ended->state);
        QTRY_COMPARE(m_anthropicFake->batchesLive(), 0);
    }

    void anthropicBatchThatExpiresHalfDoneSaysWhichNeverRan() {
        QVERIFY(startAnthropic());
        m_anthropicFake->setExpireAfter(40ms, 0.5);
        const BatchSubmission submission{"local-x", "/v1/messages", {}, 2};
        const QByteArray input = lines({"one", "two"});
        const std::optional<BatchStatus> ended =
            pollUntilEnded(*submit(submission, *stage(submission, input), input));
        QVERIFY(ended);
        QCOMPARE(ended->end, BatchEnd::Expired);
        const QList<ResultLine> results = readAll(*ended);
        QCOMPARE(results.size(), 2);
        QCOMPARE(byId(results, 1)->outcome, ResultOutcome::Succeeded);
        QCOMPARE(byId(results, 2)->outcome, ResultOutcome::Expired);
        QVERIFY(!byId(results, 2)->hasAnswer);
    }

    void anthropicCancelledBatchEndsCancelled() {
        QVERIFY(startAnthropic());
        m_anthropicFake->setNeverFinish(true);
        m_anthropicFake->setCancelFractionDone(0.0);
        const BatchSubmission submission{"local-c", "/v1/messages", {}, 2};
        const QByteArray input = lines({"one", "two"});
        std::optional<BatchStatus> batch = submit(submission, *stage(submission, input), input);
        QVERIFY(batch);
        std::optional<ProviderResult<BatchStatus>> cancelled;
        m_provider->cancel(m_context.get(), Key, batch->id, batch->state,
                           [&](ProviderResult<BatchStatus> r) { cancelled = std::move(r); });
        QVERIFY(waitFor(cancelled));
        QVERIFY(cancelled->ok());
        QCOMPARE(cancelled->value->phase, BatchPhase::Cancelling);
        QCOMPARE(cancelled->value->providerStatus, QByteArray("canceling"));
        batch = pollUntilEnded(*cancelled->value);
        QVERIFY(batch);
        QCOMPARE(batch->end, BatchEnd::Cancelled);
        const QList<ResultLine> results = readAll(*batch);
        QCOMPARE(results.size(), 2);
        for (const ResultLine &line : results)
            QCOMPARE(line.outcome, ResultOutcome::Cancelled);
    }

    void anthropicBatchMadeBeforeACrashIsFoundByItsIntent() {
        QVERIFY(startAnthropic());
        m_anthropicFake->setNeverFinish(true);
        // Another batch of the proxy, of the same size, made just before this one's intent.
        const BatchSubmission before{"local-before", "/v1/messages", {}, 2};
        const QByteArray beforeInput = lines({"x", "y"});
        const std::optional<BatchStatus> madeBefore =
            submit(before, *stage(before, beforeInput), beforeInput);
        QVERIFY(madeBefore);
        BatchSubmission mine{"local-mine", "/v1/messages", {}, 2};
        const QByteArray input = lines({"one", "two"});
        const std::optional<QByteArray> state = stage(mine, input);
        QVERIFY(state);
        const std::optional<BatchStatus> created = submit(mine, *state, input);
        QVERIFY(created);
        // Another batch made since, of another size, is not ours.
        const BatchSubmission other{"local-other", "/v1/messages", {}, 3};
        const QByteArray otherInput = lines({"a", "b", "c"});
        QVERIFY(submit(other, *stage(other, otherInput), otherInput));

        const auto findWith = [&](const BatchSubmission &submission, const QByteArray &withState) {
            std::optional<ProviderResult<std::optional<BatchStatus>>> found;
            m_provider->find(
                m_context.get(), Key, submission, withState,
                [&](ProviderResult<std::optional<BatchStatus>> r) { found = std::move(r); });
            return waitFor(found);
        };
        // When and how many cannot tell the two apart: the one the proxy holds is not ours.
        const auto taken = findWith(mine, *state);
        QVERIFY(taken && taken->ok() && taken->value->has_value());
        QCOMPARE((*taken->value)->id, madeBefore->id);
        mine.heldElsewhere = [id = madeBefore->id](const QByteArray &batchId) {
            return batchId == id;
        };
        const auto found = findWith(mine, *state);
        QVERIFY(found && found->ok());
        QVERIFY(found->value->has_value());
        QCOMPARE((*found->value)->id, created->id);
        QCOMPARE(m_anthropicFake->count("GET", "/v1/messages/batches"), 2);
        // An intent from two hours ago matches nothing made now.
        const QByteArray old = QByteArray(R"({"intent_ms":)") +
                               QByteArray::number(QDateTime::currentMSecsSinceEpoch() - 7'200'000) +
                               R"(,"requests":2})";
        const auto missing = findWith(mine, old);
        QVERIFY(missing && missing->ok());
        QVERIFY(!missing->value->has_value());
        // No intent recorded: nothing can be ours.
        const auto none = findWith(mine, {});
        QVERIFY(none && none->ok());
        QVERIFY(!none->value->has_value());
    }

    void anthropicLimitsAndErrorsAreAnthropics() {
        QVERIFY(startAnthropic());
        // Over the provider's count limit: refused before anything is sent.
        std::optional<ProviderResult<QByteArray>> staged;
        m_provider->stage(
            m_context.get(), Key, {"big", "/v1/messages", {}, AnthropicProvider::kMaxRequests + 1},
            lines({"a"}), [&](ProviderResult<QByteArray> r) { staged = std::move(r); });
        QVERIFY(waitFor(staged));
        QVERIFY(!staged->ok());
        QCOMPARE(staged->error.httpStatus, 413);
        QVERIFY(!staged->error.retryable());
        // The fake keeps the provider's own limits: a create over them is a 400 in its shape.
        m_anthropicFake->setLimits(1, 1024 * 1024);
        std::optional<ProviderResult<BatchStatus>> created;
        const QByteArray two = lines({"a", "b"});
        m_provider->submit(m_context.get(), Key, {"l", "/v1/messages", {}, 2}, {}, two,
                           [&](ProviderResult<BatchStatus> r) { created = std::move(r); });
        QVERIFY(waitFor(created));
        QVERIFY(!created->ok());
        QCOMPARE(created->error.httpStatus, 400);
        QCOMPARE(created->error.type, QByteArray("invalid_request_error"));
        QVERIFY(created->error.message.contains(QStringLiteral("at most 1")));
        // A batch it never knew: permanent.
        BatchStatus gone;
        gone.id = "msgbatch_never";
        const ProviderResult<BatchStatus> polled = pollOnce(gone);
        QCOMPARE(polled.error.httpStatus, 404);
        QCOMPARE(polled.error.type, QByteArray("not_found_error"));
        QVERIFY(Provider::isPermanentPollError(polled.error));
        // A refused key.
        m_anthropicFake->setAcceptedKey("sk-ant-other");
        const ProviderResult<BatchStatus> refused = pollOnce(gone);
        QCOMPARE(refused.error.httpStatus, 401);
        QVERIFY(!refused.error.body.contains(Key.apiKey));
    }

    void anthropicSynchronousCallKeepsTheRequestId() {
        QVERIFY(startAnthropic());
        std::optional<ProviderResult<SyncAnswer>> answered;
        m_provider->sendSynchronous(Key, "/v1/messages", messagesBody("now"),
                                    [&](ProviderResult<SyncAnswer> r) { answered = std::move(r); });
        QVERIFY(waitFor(answered));
        QVERIFY(answered->ok());
        QCOMPARE(answered->value->httpStatus, 200);
        QCOMPARE(jsonOf(answered->value->body).value(QStringLiteral("type")).toString(),
                 QStringLiteral("message"));
        bool hasRequestId = false;
        for (const auto &[name, value] : answered->value->headers)
            hasRequestId = hasRequestId || (name == "request-id" && value.startsWith("req_"));
        QVERIFY(hasRequestId);
        QCOMPARE(m_anthropicFake->requests().constLast().path, QByteArray("/v1/messages"));

        std::optional<ProviderResult<SyncAnswer>> limited;
        m_provider->sendSynchronous(Key, "/v1/messages",
                                    messagesBody("x [[error:rate_limit_error]]"),
                                    [&](ProviderResult<SyncAnswer> r) { limited = std::move(r); });
        QVERIFY(waitFor(limited));
        QVERIFY(limited->ok());
        QCOMPARE(limited->value->httpStatus, 429);
        QVERIFY(limited->value->retryable());
        QCOMPARE(jsonOf(limited->value->body)
                     .value(QStringLiteral("error"))
                     .toObject()
                     .value(QStringLiteral("type"))
                     .toString(),
                 QStringLiteral("rate_limit_error"));
    }

    void anthropicCallbacksNeverReachADestroyedContext() {
        QVERIFY(startAnthropic());
        int calls = 0;
        auto job = std::make_unique<QObject>();
        m_provider->poll(job.get(), Key, "msgbatch_x", {},
                         [&](ProviderResult<BatchStatus>) { ++calls; });
        m_provider->stage(job.get(), Key, {"l", "/v1/messages", {}, 1}, lines({"a"}),
                          [&](ProviderResult<QByteArray>) { ++calls; });
        job.reset();
        QTRY_COMPARE(m_anthropicFake->count("GET", "/v1/messages/batches/"), 1);
        QTest::qWait(100);
        QCOMPARE(calls, 0);
    }

    // The core and a job over the inline provider: the lines reach the create call, the answer
    // reaches the client's route with Anthropic's message as its body.
    void anthropicRequestGoesThroughTheCoreAndAJob() {
        QVERIFY(startAnthropic());
        SystemClock clock;
        Stats stats;
        CoreSettings settings;
        settings.limits.window = 30ms;
        settings.pollInterval = 30ms;
        settings.configuredKey = Key.apiKey;
        BatchCore core(m_provider.get(), &clock, &stats, nullptr, settings);
        QObject route;
        QHash<quint64, HttpAnswer> answers;
        core.setAnswerRoute(
            0, &route, [&](quint64 ticket, const HttpAnswer &a) { answers.insert(ticket, a); });
        for (quint64 ticket : {quint64(1), quint64(2)}) {
            BatchRequest r;
            r.id = ticket;
            r.group = GroupKey{ConfiguredKeyHash, {}, {}, "/v1/messages", "claude-haiku-4-5"};
            r.body = messagesBody(ticket == 1 ? "first" : "second");
            r.arrival = clock.now();
            core.submit(r);
        }
        QTRY_COMPARE_WITH_TIMEOUT(answers.size(), 2, 15'000);
        QCOMPARE(answers.value(1).status, 200);
        QCOMPARE(jsonOf(answers.value(1).body)
                     .value(QStringLiteral("content"))
                     .toArray()
                     .first()
                     .toObject()
                     .value(QStringLiteral("text"))
                     .toString(),
                 QStringLiteral("echo: first"));
        QCOMPARE(m_anthropicFake->batches().size(), 1);
        QCOMPARE(m_anthropicFake->batches().constFirst().customIds.size(), 2);
        QCOMPARE(m_anthropicFake->count("POST", "/v1/messages/batches"), 1);
        QTRY_COMPARE(m_anthropicFake->batchesLive(), 0); // the job cleaned up
    }

    // A restart after the intent to create was recorded: the job looks for its batch by that
    // intent. Made upstream: it is adopted and read, never made twice. Not made: nothing is
    // created for nobody, and the request waits for its client.
    void anthropicBatchResumedAfterACrashIsFoundOrNeverMadeTwice_data() {
        QTest::addColumn<bool>("madeUpstream");
        QTest::newRow("made before the crash") << true;
        QTest::newRow("never made") << false;
    }
    void anthropicBatchResumedAfterACrashIsFoundOrNeverMadeTwice() {
        QFETCH(bool, madeUpstream);
        QVERIFY(startAnthropic());
        QTemporaryDir dir;
        std::unique_ptr<Store> store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        const BatchSubmission submission{"local-r", "/v1/messages", "claude-haiku-4-5", 1};
        const QByteArray input = lines({"resumed"}); // request 1
        const std::optional<QByteArray> state = stage(submission, input);
        QVERIFY(state);
        if (madeUpstream)
            QVERIFY(submit(submission, *state, input));
        StoredRequest request;
        request.id = 1;
        request.keyHash = ConfiguredKeyHash;
        request.endpoint = submission.endpoint;
        request.model = submission.model;
        request.dedupe = "dedupe-1";
        request.body = messagesBody("resumed");
        request.bodySize = request.body.size();
        request.arrivedMs = QDateTime::currentMSecsSinceEpoch();
        QVERIFY(store->insertRequest(request));
        StoredBatch batch;
        batch.localId = submission.localId;
        batch.keyHash = ConfiguredKeyHash;
        batch.endpoint = submission.endpoint;
        batch.model = submission.model;
        batch.phase = StoredBatch::Phase::Creating; // the intent, and then the crash
        batch.providerState = *state;
        batch.requestCount = 1;
        batch.createdMs = request.arrivedMs;
        store->saveBatch(batch);
        store->setRequestsSubmitted({1}, submission.localId);
        QVERIFY(store->commit());
        const int createsBefore = m_anthropicFake->count("POST", "/v1/messages/batches");

        SystemClock clock;
        Stats stats;
        CoreSettings settings;
        settings.pollInterval = 30ms;
        settings.configuredKey = Key.apiKey;
        BatchCore core(m_provider.get(), &clock, &stats, store.get(), settings);
        core.restore();
        if (madeUpstream) {
            QTRY_VERIFY_WITH_TIMEOUT(
                [&] {
                    core.commit();
                    const std::optional<StoredRequest> r = store->requestWithResult(1);
                    return r && r->state == StoredRequest::State::Answered;
                }(),
                15'000);
            const std::optional<StoredRequest> answered = store->requestWithResult(1);
            QCOMPARE(answered->resultStatus, 200);
            QVERIFY(answered->resultBody.contains("echo: resumed"));
        } else {
            QTRY_VERIFY_WITH_TIMEOUT(
                [&] {
                    core.commit();
                    return store->loadBatches().isEmpty();
                }(),
                15'000);
            const QList<StoredRequest> kept = store->loadRequests();
            QCOMPARE(kept.size(), 1);
            QCOMPARE(kept.constFirst().state, StoredRequest::State::Queued);
        }
        QCOMPARE(m_anthropicFake->count("POST", "/v1/messages/batches"), createsBefore);
        // The list, then for the batch found its polls and its results.
        const int reads = m_anthropicFake->count("GET", "/v1/messages/batches");
        QVERIFY2(madeUpstream ? reads >= 3 : reads == 1, qPrintable(QString::number(reads)));
    }

    // The fake itself keeps the API's rules (what the provider is tested against).
    void fakeAnthropicKeepsTheApisRules() {
        QVERIFY(startAnthropic());
        const auto call = [&](const QByteArray &method, const QByteArray &path,
                              const QByteArray &body,
                              QList<std::pair<QByteArray, QByteArray>> headers) {
            QNetworkRequest req(
                QUrl(m_anthropicFake->baseUrl().toString() + QString::fromUtf8(path)));
            for (const auto &[name, value] : headers)
                req.setRawHeader(name, value);
            req.setHeader(QNetworkRequest::ContentTypeHeader,
                          QByteArrayLiteral("application/json"));
            std::unique_ptr<QNetworkReply> reply(m_nam->sendCustomRequest(req, method, body));
            [&] { QVERIFY(QTest::qWaitFor([&] { return reply->isFinished(); }, 10'000)); }();
            const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
            return std::pair{status, jsonOf(reply->readAll())};
        };
        const QList<std::pair<QByteArray, QByteArray>> ok{{"x-api-key", "sk-ant-1"},
                                                          {"anthropic-version", "2023-06-01"}};
        const auto errorType = [](const QJsonObject &body) {
            return body.value(QStringLiteral("error"))
                .toObject()
                .value(QStringLiteral("type"))
                .toString();
        };
        auto [status, body] =
            call("GET", "/messages/batches", {}, {{"anthropic-version", "2023-06-01"}});
        QCOMPARE(status, 401);
        QCOMPARE(body.value(QStringLiteral("type")).toString(), QStringLiteral("error"));
        QCOMPARE(errorType(body), QStringLiteral("authentication_error"));
        std::tie(status, body) = call("GET", "/messages/batches", {}, {{"x-api-key", "k"}});
        QCOMPARE(status, 400);
        QCOMPARE(errorType(body), QStringLiteral("invalid_request_error"));
        // Authorization: Bearer is a key too.
        std::tie(status, body) =
            call("GET", "/messages/batches", {},
                 {{"authorization", "Bearer k"}, {"anthropic-version", "2023-06-01"}});
        QCOMPARE(status, 200);
        QVERIFY(body.value(QStringLiteral("data")).isArray());
        const QByteArray params = messagesBody("x");
        std::tie(status, body) =
            call("POST", "/messages/batches",
                 R"({"requests":[{"custom_id":"bad id!","params":)" + params + "}]}", ok);
        QCOMPARE(status, 400);
        std::tie(status, body) = call("POST", "/messages/batches",
                                      R"({"requests":[{"custom_id":"a","params":)" + params +
                                          R"(},{"custom_id":"a","params":)" + params + "}]}",
                                      ok);
        QCOMPARE(status, 400);
        QVERIFY(body.value(QStringLiteral("error"))
                    .toObject()
                    .value(QStringLiteral("message"))
                    .toString()
                    .contains(QStringLiteral("Duplicate")));
        m_anthropicFake->setNeverFinish(true);
        std::tie(status, body) =
            call("POST", "/messages/batches",
                 R"({"requests":[{"custom_id":"a","params":)" + params + "}]}", ok);
        QCOMPARE(status, 200);
        QCOMPARE(body.value(QStringLiteral("type")).toString(), QStringLiteral("message_batch"));
        QVERIFY(body.value(QStringLiteral("results_url")).isNull());
        const QByteArray id = body.value(QStringLiteral("id")).toString().toUtf8();
        // Not deletable nor readable while it runs.
        std::tie(status, body) = call("DELETE", "/messages/batches/" + id, {}, ok);
        QCOMPARE(status, 400);
        std::tie(status, body) = call("GET", "/messages/batches/" + id + "/results", {}, ok);
        QCOMPARE(status, 400);
        // Scripted faults, in Anthropic's shape.
        m_anthropicFake->failNext(FakeAnthropic::Operation::Retrieve, 1, 529);
        std::tie(status, body) = call("GET", "/messages/batches/" + id, {}, ok);
        QCOMPARE(status, 529);
        QCOMPARE(errorType(body), QStringLiteral("overloaded_error"));
        std::tie(status, body) = call("POST", "/messages", R"({"model":"m","messages":[]})", ok);
        QCOMPARE(status, 400);
        QCOMPARE(errorType(body), QStringLiteral("invalid_request_error"));
    }

    // The batching core and its jobs, through the front end, with each shape end to end.
    void aClientIsAnsweredThroughTheWholeLifecycle_data() { addShapes(); }
    void aClientIsAnsweredThroughTheWholeLifecycle() {
        QVERIFY(startShape());
        SystemClock clock;
        Stats stats;
        CoreSettings settings;
        settings.limits.window = 50ms;
        settings.pollInterval = 30ms;
        BatchCore core(m_provider.get(), &clock, &stats, nullptr, settings);
        FrontEndSettings front;
        front.upstream = m_fake->baseUrl();
        HttpFrontEnd frontEnd(&core, &stats, &clock, front);
        QString error;
        QVERIFY2(
            frontEnd.listenOn({ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}}, &error),
            qPrintable(error));
        TestClient client;
        client.setPort(frontEnd.ports().constFirst());
        QNetworkReply *first = client.send("POST", "/v1/chat/completions", chatBody("first"));
        QNetworkReply *second = client.send("POST", "/v1/chat/completions", chatBody("second"));
        QVERIFY(TestClient::finished(first, 15'000));
        QVERIFY(TestClient::finished(second, 15'000));
        QCOMPARE(TestClient::status(first), 200);
        QCOMPARE(TestClient::status(second), 200);
        QVERIFY(chatContent(first->readAll()).contains(QStringLiteral("first")));
        QVERIFY(!first->rawHeader("x-llm-proxy-batch-id").isEmpty());
        QCOMPARE(m_fake->batches().size(), 1);
        // The job cleaned up after itself through the contract.
        QTRY_COMPARE(m_fake->filesLive(), 0);
        delete first;
        delete second;
    }

    // Not the provider's side but the core's, changed on the way: an answer goes to the front
    // end (I/O thread) that holds its ticket, never to all of them.
    void answersGoToTheTicketsFrontEndAlone() {
        QTemporaryDir dir;
        std::unique_ptr<Store> store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QNetworkAccessManager nam;
        OpenAiProvider provider(&nam, QUrl(QStringLiteral("http://127.0.0.1:9/v1")));
        ManualClock clock;
        Stats stats;
        BatchCore core(&provider, &clock, &stats, store.get(), CoreSettings{});
        QObject frontEnd0;
        auto frontEnd1 = std::make_unique<QObject>();
        QList<quint64> to0, to1;
        core.setAnswerRoute(0, &frontEnd0,
                            [&](quint64 ticket, const HttpAnswer &) { to0.append(ticket); });
        core.setAnswerRoute(1, frontEnd1.get(),
                            [&](quint64 ticket, const HttpAnswer &) { to1.append(ticket); });
        // The store refuses the write: the core answers at once (503), which is all we need.
        QVERIFY(store->simulateWriteFailureForTests(true));
        const auto request = [&](quint64 ticket) {
            BatchRequest r;
            r.id = ticket;
            r.group = GroupKey{"h", {}, {}, "/v1/chat/completions", "gpt-4o-mini"};
            r.body = chatBody("x");
            r.arrival = clock.now();
            return r;
        };
        const quint64 ofFrontEnd1 = (quint64(1) << 48) + 7;
        QCOMPARE(BatchCore::frontEndOf(ofFrontEnd1), 1);
        core.submit(request(ofFrontEnd1));
        QCOMPARE(to1, QList<quint64>{ofFrontEnd1});
        QVERIFY(to0.isEmpty());
        // A front end that is gone gets nothing, and nobody else gets its answers.
        frontEnd1.reset();
        core.submit(request(ofFrontEnd1 + 1));
        QCOMPARE(to1.size(), 1);
        QVERIFY(to0.isEmpty());
        core.submit(request(3));
        QCOMPARE(to0, QList<quint64>{3});
    }

    // Also changed on the way: what the core stores is dated by the injected clock, not by a
    // second clock of its own, so a stored age and a timer agree.
    void storedTimesComeFromTheInjectedClock() {
        QTemporaryDir dir;
        std::unique_ptr<Store> store = Store::open(dir.path(), nullptr);
        QVERIFY(store);
        QNetworkAccessManager nam;
        OpenAiProvider provider(&nam, QUrl(QStringLiteral("http://127.0.0.1:9/v1")));
        ManualClock clock;
        clock.advance(std::chrono::hours(24 * 10));
        Stats stats;
        CoreSettings settings;
        settings.limits.window = 1h; // it stays queued
        BatchCore core(&provider, &clock, &stats, store.get(), settings);
        BatchRequest r;
        r.id = 1;
        r.group = GroupKey{"h", {}, {}, "/v1/chat/completions", "gpt-4o-mini"};
        r.body = chatBody("x");
        r.arrival = clock.now();
        core.submit(r);
        core.commit();
        const QList<StoredRequest> stored = store->loadRequests();
        QCOMPARE(stored.size(), 1);
        QCOMPARE(stored.constFirst().arrivedMs, clock.wallMs());
    }
};

LLMPROXY_TEST_MAIN(tst_ProviderContract)

#include "tst_providercontract.moc"
