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

#include "batch/batchcore.h"
#include "fakeprovider.h"
#include "http/httpfrontend.h"
#include "provider/openaiprovider.h"
#include "queue/store.h"
#include "stats/stats.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
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
    std::unique_ptr<QNetworkAccessManager> m_nam;
    std::unique_ptr<OpenAiProvider> m_provider;
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
        m_provider = std::make_unique<OpenAiProvider>(m_nam.get(), m_fake->baseUrl());
        m_provider->setProfile(*providerProfile(FakeProvider::shapeName(shape)));
        m_context = std::make_unique<QObject>();
        return true;
    }

    QByteArray lines(const QList<QByteArray> &contents) const {
        QByteArray out;
        for (qsizetype i = 0; i < contents.size(); ++i)
            out += m_provider->encodeLine(customIdFor(quint64(i + 1)), "/v1/chat/completions",
                                          chatBody(contents.at(i)));
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

    std::optional<BatchStatus> submit(const BatchSubmission &submission, const QByteArray &state) {
        std::optional<ProviderResult<BatchStatus>> created;
        m_provider->submit(m_context.get(), Key, submission, state,
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
        m_provider->setProfile(other);
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
        m_provider->submit(m_context.get(), Key, submission, *state,
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
