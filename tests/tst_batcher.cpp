// SPDX-License-Identifier: GPL-3.0-or-later
// The grouping and flush policy, driven by an injected clock: no test here sleeps.

#include "batch/batchcore.h"
#include "batch/batcher.h"

#include <QTest>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace {
GroupKey group(const char *model, const char *endpoint = "/v1/chat/completions",
               const char *key = "k1") {
    return GroupKey{key, {}, {}, endpoint, model};
}
} // namespace

class tst_Batcher final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void windowCountsFromFirstRequest() {
        ManualClock clock;
        Batcher batcher({4s, 1000, 25'000'000, 50'000});
        QVERIFY(!batcher.nextDeadline());
        const SteadyTime start = clock.now();
        QVERIFY(batcher.add(group("m"), 1, 100, 0, clock.now()).isEmpty());
        QCOMPARE(*batcher.nextDeadline(), start + 4s);
        clock.advance(3s);
        QVERIFY(batcher.add(group("m"), 2, 100, 0, clock.now()).isEmpty());
        // A later request does not move the deadline.
        QCOMPARE(*batcher.nextDeadline(), start + 4s);
        clock.advance(999ms);
        QVERIFY(batcher.takeDue(clock.now()).isEmpty());
        clock.advance(1ms);
        const QList<Flush> due = batcher.takeDue(clock.now());
        QCOMPARE(due.size(), 1);
        QCOMPARE(due.first().requestIds, (QList<quint64>{1, 2}));
        QCOMPARE(due.first().reason, FlushReason::Window);
        QCOMPARE(due.first().bytes, 200);
        QCOMPARE(batcher.queued(), 0);
        QVERIFY(!batcher.nextDeadline());
    }

    // The prototype re-armed its timer on every arrival, so a steady stream never flushed.
    void steadyStreamDoesNotPostponeBatches() {
        ManualClock clock;
        Batcher batcher({1s, 1000, 25'000'000, 50'000});
        QList<QList<quint64>> batches;
        for (quint64 id = 1; id <= 50; ++id) { // one request every 100 ms for 5 s
            batcher.add(group("m"), id, 10, 0, clock.now());
            clock.advance(100ms);
            for (const Flush &f : batcher.takeDue(clock.now()))
                batches.append(f.requestIds);
        }
        QCOMPARE(batches.size(), 5);
        for (const auto &batch : std::as_const(batches))
            QCOMPARE(batch.size(), 10);
    }

    // The prototype sent the first request after an idle spell alone (stale window start).
    void firstRequestAfterIdleWaitsForItsWindow() {
        ManualClock clock;
        Batcher batcher({2s, 1000, 25'000'000, 50'000});
        batcher.add(group("m"), 1, 10, 0, clock.now());
        clock.advance(2s);
        QCOMPARE(batcher.takeDue(clock.now()).size(), 1);
        clock.advance(60s); // idle
        const SteadyTime arrival = clock.now();
        QVERIFY(batcher.add(group("m"), 2, 10, 0, arrival).isEmpty());
        QVERIFY(batcher.takeDue(clock.now()).isEmpty());
        QCOMPARE(*batcher.nextDeadline(), arrival + 2s);
        clock.advance(1s);
        batcher.add(group("m"), 3, 10, 0, clock.now());
        clock.advance(1s);
        const QList<Flush> due = batcher.takeDue(clock.now());
        QCOMPARE(due.size(), 1);
        QCOMPARE(due.first().requestIds, (QList<quint64>{2, 3}));
    }

    void sizeLimitFlushesImmediately() {
        ManualClock clock;
        Batcher batcher({4s, 3, 25'000'000, 50'000});
        QVERIFY(batcher.add(group("m"), 1, 10, 0, clock.now()).isEmpty());
        QVERIFY(batcher.add(group("m"), 2, 10, 0, clock.now()).isEmpty());
        const QList<Flush> flushed = batcher.add(group("m"), 3, 10, 0, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().reason, FlushReason::Size);
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{1, 2, 3}));
        QVERIFY(!batcher.nextDeadline());
        // The next request starts a new window.
        clock.advance(1s);
        batcher.add(group("m"), 4, 10, 0, clock.now());
        QCOMPARE(*batcher.nextDeadline(), clock.now() + 4s);
    }

    void bytesLimitFlushesBeforeExceeding() {
        ManualClock clock;
        Batcher batcher({4s, 1000, 1000, 50'000});
        QVERIFY(batcher.add(group("m"), 1, 400, 0, clock.now()).isEmpty());
        QVERIFY(batcher.add(group("m"), 2, 600, 0, clock.now()).isEmpty()); // exactly at limit
        const QList<Flush> flushed = batcher.add(group("m"), 3, 1, 0, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().reason, FlushReason::Bytes);
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{1, 2}));
        QCOMPARE(flushed.first().bytes, 1000);
        QCOMPARE(batcher.queued(), 1);
        // A single request larger than the limit still goes, alone.
        const QList<Flush> big = batcher.add(group("m"), 4, 5000, 0, clock.now());
        QCOMPARE(big.size(), 1);
        QCOMPARE(big.first().requestIds, (QList<quint64>{3}));
        QCOMPARE(batcher.queued(), 1);
    }

    // Several providers: each group is flushed at its own provider's file limits, never at the
    // smallest of them all.
    void eachProviderHasItsOwnFileLimits() {
        ManualClock clock;
        BatchLimits limits{4s, 1000, 25'000'000, 50'000, {}};
        limits.perProvider.insert("openai", FileLimits{3, 1000});
        limits.perProvider.insert("groq", FileLimits{2, 500});
        QCOMPARE(limits.fileLimitsFor(""), (FileLimits{3, 1000})); // "" is openai
        QCOMPARE(limits.fileLimitsFor("together"), (FileLimits{1000, 25'000'000}));
        Batcher batcher(limits);
        GroupKey openai = group("m");
        GroupKey groq = group("m");
        groq.provider = "groq";
        // Requests: groq's group is full at 2, openai's not until 3.
        QVERIFY(batcher.add(openai, 1, 10, 0, clock.now()).isEmpty());
        QVERIFY(batcher.add(groq, 2, 10, 0, clock.now()).isEmpty());
        QVERIFY(batcher.add(openai, 3, 10, 0, clock.now()).isEmpty());
        QList<Flush> flushed = batcher.add(groq, 4, 10, 0, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().group.provider, QByteArray("groq"));
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{2, 4}));
        flushed = batcher.add(openai, 5, 10, 0, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{1, 3, 5}));
        // Bytes: 600 closes groq's file (500) but fits in openai's (1000).
        QVERIFY(batcher.add(groq, 6, 400, 0, clock.now()).isEmpty());
        flushed = batcher.add(groq, 7, 200, 0, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().reason, FlushReason::Bytes);
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{6}));
        QVERIFY(batcher.add(openai, 8, 400, 0, clock.now()).isEmpty());
        QVERIFY(batcher.add(openai, 9, 200, 0, clock.now()).isEmpty());
    }

    void embeddingInputsLimit() {
        ManualClock clock;
        Batcher batcher({4s, 1000, 25'000'000, 50'000});
        const GroupKey g = group("text-embedding-3-small", "/v1/embeddings");
        QVERIFY(batcher.add(g, 1, 10, 30'000, clock.now()).isEmpty());
        QVERIFY(batcher.add(g, 2, 10, 20'000, clock.now()).isEmpty()); // 50,000: allowed
        const QList<Flush> flushed = batcher.add(g, 3, 10, 1, clock.now());
        QCOMPARE(flushed.size(), 1);
        QCOMPARE(flushed.first().reason, FlushReason::EmbeddingInputs);
        QCOMPARE(flushed.first().requestIds, (QList<quint64>{1, 2}));
    }

    void groupsNeverMix_data() {
        QTest::addColumn<GroupKey>("other");
        QTest::newRow("model") << GroupKey{"k1", {}, {}, "/v1/chat/completions", "m2"};
        QTest::newRow("endpoint") << GroupKey{"k1", {}, {}, "/v1/embeddings", "m"};
        QTest::newRow("key") << GroupKey{"k2", {}, {}, "/v1/chat/completions", "m"};
        QTest::newRow("organization") << GroupKey{"k1", "org-x", {}, "/v1/chat/completions", "m"};
        QTest::newRow("project") << GroupKey{"k1", {}, "proj-x", "/v1/chat/completions", "m"};
    }
    void groupsNeverMix() {
        QFETCH(GroupKey, other);
        ManualClock clock;
        Batcher batcher({1s, 2, 25'000'000, 50'000});
        batcher.add(group("m"), 1, 10, 0, clock.now());
        QVERIFY(batcher.add(other, 2, 10, 0, clock.now()).isEmpty()); // size 2 not reached
        QCOMPARE(batcher.groups(), 2);
        clock.advance(1s);
        const QList<Flush> due = batcher.takeDue(clock.now());
        QCOMPARE(due.size(), 2);
        for (const Flush &f : due)
            QCOMPARE(f.requestIds.size(), 1);
    }

    void removeTakesRequestOut() {
        ManualClock clock;
        Batcher batcher({1s, 1000, 1000, 50'000});
        batcher.add(group("m"), 1, 600, 0, clock.now());
        batcher.add(group("m"), 2, 300, 0, clock.now());
        QCOMPARE(batcher.queued(), 2);
        QVERIFY(!batcher.remove(group("other"), 1)); // not queued in that group
        QVERIFY(batcher.remove(group("m"), 1));
        QCOMPARE(batcher.queued(), 1);
        QVERIFY(!batcher.remove(group("m"), 1));
        QVERIFY(!batcher.remove(group("m"), 99));
        // Its bytes no longer count.
        QVERIFY(batcher.add(group("m"), 3, 600, 0, clock.now()).isEmpty());
        clock.advance(1s);
        const QList<Flush> due = batcher.takeDue(clock.now());
        QCOMPARE(due.first().requestIds, (QList<quint64>{2, 3}));
        // Removing the last request of a group drops the group and its deadline.
        batcher.add(group("m"), 4, 1, 0, clock.now());
        QVERIFY(batcher.remove(group("m"), 4));
        QVERIFY(!batcher.nextDeadline());
        QCOMPARE(batcher.groups(), 0);
        QCOMPARE(batcher.queued(), 0);
    }

    void takeAllFlushesEverything() {
        ManualClock clock;
        Batcher batcher({10s, 1000, 25'000'000, 50'000});
        batcher.add(group("a"), 1, 1, 0, clock.now());
        batcher.add(group("b"), 2, 1, 0, clock.now());
        const QList<Flush> all = batcher.takeAll();
        QCOMPARE(all.size(), 2);
        QCOMPARE(batcher.queued(), 0);
    }

    void customIds_data() {
        QTest::addColumn<quint64>("id");
        QTest::newRow("1") << quint64(1);
        QTest::newRow("35") << quint64(35);
        QTest::newRow("36") << quint64(36);
        QTest::newRow("large") << quint64(123456789012345ULL);
        QTest::newRow("max") << std::numeric_limits<quint64>::max();
    }
    void customIds() {
        QFETCH(quint64, id);
        const QByteArray customId = customIdFor(id);
        QVERIFY(!customId.isEmpty() && customId.size() <= 64);
        for (char c : customId)
            QVERIFY(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
        QCOMPARE(requestIdFromCustomId(customId), std::optional<quint64>(id));
    }

    void customIdsAreUniqueAndForeignOnesRejected() {
        QSet<QByteArray> seen;
        for (quint64 id = 0; id < 100'000; ++id)
            seen.insert(customIdFor(id));
        QCOMPARE(seen.size(), 100'000);
        for (const char *bad :
             {"", "lp_", "req_1", "lp_A", "lp_01", "lp_1.5", "LP_1", "lp_zzzzzzzzzzzzzzzz"})
            QVERIFY2(!requestIdFromCustomId(bad), bad);
    }
};

QTEST_GUILESS_MAIN(tst_Batcher)
#include "tst_batcher.moc"
