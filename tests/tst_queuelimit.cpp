// SPDX-License-Identifier: GPL-3.0-or-later
// A model's queue limit at its provider (issue 12, "limits ... per-model inputs"): OpenAI fails
// a batch that would take a model's queue over the organization's limit (token_limit_exceeded,
// after validating); Azure's fail-fast deployments refuse it at create. With --queue-limit the
// proxy keeps its own estimate of what it has in each queue and makes a batch only when it
// fits: batches bigger than the limit are cut, the rest wait first come, first served, and a
// restart knows what its resumed batches hold. Without it, the provider's refusals are waited
// out (never passed to the clients as errors). The fake provider models the limit.

#include "batch/queuebudget.h"
#include "fakeprovider.h"
#include "provider/queuelimit.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/config.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QNetworkReply>
#include <QTest>

#include <memory>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

Q_DECLARE_METATYPE(std::optional<qint64>)

namespace {

// A request of about 315 estimated tokens (1,260 bytes of body): two fit a limit of 700,
// three do not.
QByteArray bigChat(int n) {
    const QByteArray text = "question " + QByteArray::number(n) + ' ';
    return chatBody(text + QByteArray(1200 - text.size(), 'x'));
}
constexpr qint64 Limit = 700;

GroupKey groupFor(const QByteArray &model, const QByteArray &key = "configured") {
    return GroupKey{key, {}, {}, "/v1/chat/completions", model, "openai"};
}

QueueBudget::Pending pendingOf(const GroupKey &group, const QList<qint64> &tokens,
                               quint64 firstId) {
    QueueBudget::Pending pending{group, {}, 0};
    quint64 id = firstId;
    for (qint64 t : tokens)
        pending.items.append({id++, t, t * 4});
    return pending;
}

QList<QList<quint64>> idsOf(const QList<QueueBudget::Pending> &batches) {
    QList<QList<quint64>> out;
    for (const QueueBudget::Pending &batch : batches)
        out.append(batch.requestIds());
    return out;
}

} // namespace

class tst_QueueLimit final : public QObject {
    Q_OBJECT

    std::unique_ptr<ProxyFixture> m_fx;

    // With a batch window long enough for the requests a test sends together to share one batch
    // even on a loaded machine (the checks do not depend on it).
    Config configWithLimit(bool limited) const {
        Config config = m_fx->baseConfig();
        config.batchWindow = 1500ms;
        if (limited)
            config.queueLimits = {"gpt-4o-*=" + QByteArray::number(Limit)};
        return config;
    }

    QList<QNetworkReply *> sendBig(int from, int count) {
        QList<QNetworkReply *> replies;
        for (int i = from; i < from + count; ++i)
            replies.append(m_fx->client()->send("POST", "/v1/chat/completions", bigChat(i)));
        return replies;
    }

    static void expectAnswered(const QList<QNetworkReply *> &replies, int from) {
        for (qsizetype i = 0; i < replies.size(); ++i) {
            QNetworkReply *reply = replies.at(i);
            QVERIFY(TestClient::finished(reply, 30'000));
            const QByteArray body = reply->readAll();
            QCOMPARE(TestClient::status(reply), 200);
            QVERIFY2(chatContent(body).contains(QStringLiteral("question %1 ").arg(from + int(i))),
                     body.constData());
        }
    }

    qint64 statsNumber(const char *key) {
        return qint64(m_fx->statsJson().value(QLatin1StringView(key)).toDouble(-1));
    }

private Q_SLOTS:
    void init() {
        m_fx = std::make_unique<ProxyFixture>();
        QVERIFY(m_fx->listening());
    }
    void cleanup() { m_fx.reset(); }

    // -- The rules.

    void tokenCounts_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<std::optional<qint64>>("tokens");
        QTest::newRow("plain") << "90000" << std::optional<qint64>(90'000);
        QTest::newRow("thousands") << "90k" << std::optional<qint64>(90'000);
        QTest::newRow("millions") << "2M" << std::optional<qint64>(2'000'000);
        QTest::newRow("small m") << "2m" << std::optional<qint64>(2'000'000);
        QTest::newRow("fraction") << "1.5M" << std::optional<qint64>(1'500'000);
        QTest::newRow("billions") << "30B" << std::optional<qint64>(30'000'000'000);
        QTest::newRow("spaces around") << " 5k " << std::optional<qint64>(5'000);
        QTest::newRow("largest") << "10000B" << std::optional<qint64>(MaxQueueLimitTokens);
        QTest::newRow("too large") << "10001B" << std::optional<qint64>();
        QTest::newRow("zero") << "0" << std::optional<qint64>();
        QTest::newRow("negative") << "-5" << std::optional<qint64>();
        QTest::newRow("fraction of a token") << "1.5" << std::optional<qint64>();
        QTest::newRow("two dots") << "1.2.3k" << std::optional<qint64>();
        QTest::newRow("unit only") << "k" << std::optional<qint64>();
        QTest::newRow("other unit") << "5G" << std::optional<qint64>();
        QTest::newRow("exponent") << "1e6" << std::optional<qint64>();
        QTest::newRow("inner space") << "5 k" << std::optional<qint64>();
        QTest::newRow("empty") << "" << std::optional<qint64>();
        QTest::newRow("huge digits") << "99999999999999999999999" << std::optional<qint64>();
    }
    void tokenCounts() {
        QFETCH(QString, text);
        QFETCH(std::optional<qint64>, tokens);
        QCOMPARE(parseTokenCount(text), tokens);
    }

    void rulesAreCheckedAndMatchLikeModelRoutes() {
        QString error;
        QVERIFY(!parseQueueLimitRule(u"gpt-4o", &error));
        QVERIFY(error.contains(u"PATTERN=TOKENS"));
        QVERIFY(!parseQueueLimitRule(u"gpt-4o=lots", &error));
        QVERIFY(error.contains(u"=TOKENS"));
        QVERIFY(!parseQueueLimitRule(u"/v1/chat/completions=2M", &error));
        QVERIFY(error.contains(u"path"));
        QVERIFY(!parseQueueLimitRule(u"gpt*4o=2M", &error));
        QVERIFY(!QueueLimits::fromSpecs({"gpt-4o=2M", "bad"}, &error));
        QVERIFY2(error.startsWith(u"--queue-limit bad:"), qPrintable(error));

        const auto limits = QueueLimits::fromSpecs(
            {"gpt-4o*=90k", "gpt-4o-mini=2M", "gpt-4o-mini-*=1M", "*=5M"}, &error);
        QVERIFY(limits);
        QCOMPARE(limits->limitFor("gpt-4o-mini"), std::optional<qint64>(2'000'000)); // exact
        QCOMPARE(limits->limitFor("gpt-4o-mini-2024"), std::optional<qint64>(1'000'000));
        QCOMPARE(limits->limitFor("gpt-4o"), std::optional<qint64>(90'000)); // longest prefix
        QCOMPARE(limits->limitFor("o3"), std::optional<qint64>(5'000'000));  // '*' alone
        QVERIFY(!QueueLimits::fromSpecs({"gpt-4o=2M"}, &error)->limitFor("gpt-4o-mini"));
        QVERIFY(!QueueLimits().limitFor("gpt-4o"));
    }

    void theCommandLineTakesQueueLimits() {
        const CommandLine parsed =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--queue-limit"),
                              QStringLiteral("gpt-4o-mini=2M"), QStringLiteral("--queue-limit"),
                              QStringLiteral("gpt-4o*=90k")});
        QVERIFY2(parsed.action != CommandLine::Action::Error, qPrintable(parsed.message));
        QCOMPARE(parsed.config.queueLimits, (QList<QByteArray>{"gpt-4o-mini=2M", "gpt-4o*=90k"}));
        const CommandLine bad =
            parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--queue-limit"),
                              QStringLiteral("gpt-4o=many")});
        QCOMPARE(bad.action, CommandLine::Action::Error);
        QVERIFY2(bad.message.contains(u"queue-limit"), qPrintable(bad.message));
    }

    // -- The budget on its own.

    void aBatchThatFitsGoesAndOneThatDoesNotWaits() {
        QueueBudget budget;
        budget.setLimits(*QueueLimits::fromSpecs({"m=1000"}, nullptr), BatchLimits{});
        const GroupKey group = groupFor("m");
        QVERIFY(budget.limited(group));
        QVERIFY(!budget.limited(groupFor("other")));
        QCOMPARE(idsOf(budget.offer(pendingOf(group, {300, 300}, 1))),
                 (QList<QList<quint64>>{{1, 2}}));
        budget.reserve("a", group, 600);
        QCOMPARE(budget.enqueued(group), 600);
        // 600 + 500 > 1000: it waits, and so does a small one behind it (first come, first
        // served), though 600 + 100 would fit.
        QVERIFY(budget.offer(pendingOf(group, {500}, 3)).isEmpty());
        QVERIFY(budget.offer(pendingOf(group, {100}, 4)).isEmpty());
        QCOMPARE(budget.waitingRequests(), 2);
        // Another key's queue, and another model's, are not this one.
        QCOMPARE(budget.offer(pendingOf(groupFor("m", "other-key"), {900}, 5)).size(), 1);
        QCOMPARE(budget.offer(pendingOf(groupFor("other"), {5000}, 6)).size(), 1);
        // The batch ends: both waiting batches go, merged into one (same group, they fit).
        QCOMPARE(idsOf(budget.release("a")), (QList<QList<quint64>>{{3, 4}}));
        QCOMPARE(budget.waitingRequests(), 0);
        QCOMPARE(budget.enqueued(group), 0);    // until the core reserves what it made
        QVERIFY(budget.release("a").isEmpty()); // once only
    }

    void aBatchBiggerThanTheLimitIsCutAndAHugeRequestGoesAlone() {
        QueueBudget budget;
        budget.setLimits(*QueueLimits::fromSpecs({"m=1000"}, nullptr), BatchLimits{});
        const GroupKey group = groupFor("m");
        // 400 + 400 | 400 + 400 | 1500 (alone, bigger than the limit) | 200: the first goes.
        const QList<QueueBudget::Pending> first =
            budget.offer(pendingOf(group, {400, 400, 400, 400, 1500, 200}, 1));
        QCOMPARE(idsOf(first), (QList<QList<quint64>>{{1, 2}}));
        QCOMPARE(first.first().tokens(), 800);
        budget.reserve("a", group, 800);
        QCOMPARE(idsOf(budget.release("a")), (QList<QList<quint64>>{{3, 4}}));
        budget.reserve("b", group, 800);
        QCOMPARE(idsOf(budget.release("b")), (QList<QList<quint64>>{{5}}));
        budget.reserve("c", group, 1500);
        QCOMPARE(idsOf(budget.release("c")), (QList<QList<quint64>>{{6}}));
    }

    void mergingKeepsToTheFileLimitsAndSkipsRequestsThatLeft() {
        QueueBudget budget;
        BatchLimits files;
        files.perProvider.insert("openai", FileLimits{3, 1'000'000});
        budget.setLimits(*QueueLimits::fromSpecs({"m=100000"}, nullptr), files);
        const GroupKey group = groupFor("m");
        budget.reserve("running", group, 99'995);
        for (quint64 id = 1; id <= 5; ++id)
            QVERIFY(budget.offer(pendingOf(group, {10}, id)).isEmpty());
        QVERIFY(budget.remove(2)); // its client went away
        QVERIFY(!budget.remove(2));
        QVERIFY(!budget.remove(99));
        QCOMPARE(budget.waitingRequests(), 4);
        // At most 3 requests per file: 1, 3, 4 then 5.
        QCOMPARE(idsOf(budget.release("running")), (QList<QList<quint64>>{{1, 3, 4}, {5}}));
    }

    void aLimitRaisedOrRemovedLetsWaitingBatchesGo() {
        QueueBudget budget;
        budget.setLimits(*QueueLimits::fromSpecs({"m=100"}, nullptr), BatchLimits{});
        const GroupKey group = groupFor("m");
        budget.reserve("a", group, 100);
        QVERIFY(budget.offer(pendingOf(group, {50}, 1)).isEmpty());
        QVERIFY(budget.admitWaiting().isEmpty());
        QCOMPARE(budget.queues().size(), 1);
        QCOMPARE(budget.queues().first().enqueued, 100);
        QCOMPARE(budget.queues().first().limit, 100);
        budget.setLimits({}, BatchLimits{});
        QCOMPARE(idsOf(budget.admitWaiting()), (QList<QList<quint64>>{{1}}));
        QVERIFY(budget.queues().isEmpty()); // no limit: nothing to show
    }

    // -- Through the proxy, against the fake provider's queue.

    // Six requests of ~315 tokens in one window: with the limit the proxy makes three batches
    // one after the other and the provider never refuses one; without it, the provider does.
    void batchesKeepWithinTheQueueLimit_data() {
        QTest::addColumn<bool>("limited");
        QTest::newRow("--queue-limit") << true;
        QTest::newRow("no limit given") << false;
    }
    void batchesKeepWithinTheQueueLimit() {
        QFETCH(bool, limited);
        m_fx->fake()->setQueueLimit(Limit);
        QVERIFY(m_fx->startProxy(configWithLimit(limited)));
        const QList<QNetworkReply *> replies = sendBig(0, 6);
        if (!limited) {
            QTRY_VERIFY_WITH_TIMEOUT(m_fx->fake()->queueRefusals() > 0, 10'000);
            qDeleteAll(replies);
            return;
        }
        expectAnswered(replies, 0);
        qDeleteAll(replies);
        QCOMPARE(m_fx->fake()->queueRefusals(), 0);
        QVERIFY(m_fx->fake()->peakQueueTokens() <= Limit);
        // Two requests at most per batch (three would not fit): three batches, or more if the
        // requests came in more than one window.
        QVERIFY(m_fx->fake()->batches().size() >= 3);
        for (const FakeProvider::BatchRecord &batch : m_fx->fake()->batches())
            QVERIFY(batch.customIds.size() <= 2);
        QCOMPARE(m_fx->paidLines(), 6);
    }

    // While one batch holds the queue: the next waits (in /stats and /metrics); a client that
    // leaves meanwhile is never sent; when the batch ends, the waiting one goes.
    void aWaitingRequestIsShownAndOneWhoseClientLeftIsNeverSent() {
        m_fx->fake()->setQueueLimit(Limit);
        m_fx->fake()->setNeverFinish(true);
        QVERIFY(m_fx->startProxy(configWithLimit(true)));
        const QList<QNetworkReply *> first = sendBig(0, 2);
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->paidLines(), 2, 10'000);        // created upstream
        const qsizetype batchesBefore = m_fx->fake()->batches().size(); // 1, or 2 windows
        QList<QNetworkReply *> waiting = sendBig(2, 2);
        QTRY_COMPARE_WITH_TIMEOUT(statsNumber("waiting_for_quota"), 2, 10'000);
        const QJsonObject stats = m_fx->statsJson();
        QCOMPARE(stats.value(u"queued").toInt(), 2);
        const QJsonArray queues = stats.value(u"queues").toArray();
        QCOMPARE(queues.size(), 1);
        const QJsonObject queue = queues.first().toObject();
        QCOMPARE(queue.value(u"provider").toString(), QStringLiteral("openai"));
        QCOMPARE(queue.value(u"model").toString(), QStringLiteral("gpt-4o-mini"));
        QCOMPARE(queue.value(u"limit_tokens").toInteger(), Limit);
        QCOMPARE(queue.value(u"enqueued_tokens").toInteger(),
                 2 * estimatedQueueTokens(bigChat(0).size()));
        const QByteArray metrics = m_fx->get("/metrics");
        QVERIFY2(metrics.contains("\nllm_proxy_requests_waiting_for_quota 2\n"),
                 metrics.constData());
        QVERIFY(metrics.contains(
            "\nllm_proxy_queue_limit_tokens{provider=\"openai\",model=\"gpt-4o-mini\"} 700\n"));

        // Request 3's client leaves: it is taken out, not sent.
        waiting.last()->abort();
        QTRY_COMPARE_WITH_TIMEOUT(statsNumber("waiting_for_quota"), 1, 10'000);
        QCOMPARE(statsNumber("queued"), 1);

        m_fx->fake()->setNeverFinish(false);
        expectAnswered(first, 0);
        expectAnswered({waiting.first()}, 2);
        qDeleteAll(first);
        qDeleteAll(waiting);
        QCOMPARE(m_fx->fake()->batches().size(), batchesBefore + 1);
        QCOMPARE(m_fx->paidLines(), 3);
        QCOMPARE(m_fx->fake()->queueRefusals(), 0);
        QCOMPARE(statsNumber("waiting_for_quota"), 0);
    }

    // A restart resumes a batch that holds the queue: it still counts (its estimate is stored
    // with it), so a new request waits for it instead of being refused by the provider.
    void aResumedBatchStillHoldsItsQueue() {
        m_fx->fake()->setQueueLimit(Limit);
        m_fx->fake()->setNeverFinish(true);
        QVERIFY(m_fx->startProxy(configWithLimit(true)));
        const QList<QNetworkReply *> before = sendBig(0, 2);
        QTRY_COMPARE_WITH_TIMEOUT(statsNumber("in_flight"), 2, 10'000);
        QTRY_COMPARE_WITH_TIMEOUT(m_fx->paidLines(), 2, 10'000); // created upstream
        const qsizetype batchesBefore = m_fx->fake()->batches().size();
        m_fx->stopProxy();
        qDeleteAll(before);

        QVERIFY(m_fx->startProxy(configWithLimit(true)));
        const QList<QNetworkReply *> after = sendBig(2, 1);
        QTRY_COMPARE_WITH_TIMEOUT(statsNumber("waiting_for_quota"), 1, 10'000);
        QCOMPARE(m_fx->fake()->batches().size(), batchesBefore);
        m_fx->fake()->setNeverFinish(false);
        expectAnswered(after, 2);
        qDeleteAll(after);
        QCOMPARE(m_fx->fake()->queueRefusals(), 0);
        QCOMPARE(m_fx->fake()->batches().size(), batchesBefore + 1);
    }

    // Azure's fail-fast deployments refuse the create call itself (400 token_limit_exceeded):
    // the clients wait while the proxy submits again later (split when it keeps not fitting),
    // instead of getting the 400.
    void aCreateRefusedForTheQueueIsSubmittedAgainLater() {
        m_fx->fake()->setQueueLimit(Limit, true);
        m_fx->fake()->setNeverFinish(true); // nothing leaves the queue until the refusal
        QVERIFY(m_fx->startProxy(configWithLimit(false)));
        const QList<QNetworkReply *> replies = sendBig(0, 3); // 945 tokens: never all at once
        QTRY_VERIFY_WITH_TIMEOUT(m_fx->fake()->queueRefusals() > 0, 15'000);
        for (QNetworkReply *reply : replies)
            QVERIFY(!reply->isFinished()); // still waiting, not told the 400
        m_fx->fake()->setNeverFinish(false);
        expectAnswered(replies, 0);
        qDeleteAll(replies);
        QCOMPARE(m_fx->paidLines(), 3);
    }
};

LLMPROXY_TEST_MAIN(tst_QueueLimit)
#include "tst_queuelimit.moc"
