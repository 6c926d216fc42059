// SPDX-License-Identifier: GPL-3.0-or-later
// Prices, usage and cost (issue 10): the shipped table, the override file, exact arithmetic.
#include "accounting/cost.h"
#include "accounting/prices.h"
#include "api/usage.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

#include <limits>

using namespace llmproxy;
using namespace llmproxy::accounting;

Q_DECLARE_METATYPE(llmproxy::accounting::Route)

class TestPricing final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TestPricing)

public:
    TestPricing() = default;

private slots:
    void shippedTableParsesWithSourcesAndDates();
    void shippedTableHasTheModelsPeopleBatch();
    void shippedResourceIsTheRepositoryFile();
    void costFollowsTheRoute_data();
    void costFollowsTheRoute();
    void oneTokenAtAFractionOfACentIsExact();
    void overflowMakesTheCostUnknown();
    void totalsAreChecked();
    void formatUsdIsExact_data();
    void formatUsdIsExact();
    void parsePriceIsExactAndStrict_data();
    void parsePriceIsExactAndStrict();
    void badFilesGiveOneLineNamingFileModelAndField_data();
    void badFilesGiveOneLineNamingFileModelAndField();
    void lookupIsExactNamesAndListedSnapshotsOnly_data();
    void lookupIsExactNamesAndListedSnapshotsOnly();
    void overrideFileReplacesModelByModel();
    void brokenOverrideFileKeepsTheShippedTableAndSaysWhy();
    void missingOverrideFileIsFine();
    void routeNamesRoundTrip();
    void usageFromRecordedAnswers_data();
    void usageFromRecordedAnswers();
    void batchedLineEndToEnd();
    void anthropicUsageCountsCacheReadsAndWritesAsInput_data();
    void anthropicUsageCountsCacheReadsAndWritesAsInput();
    void cacheWritesAreBilledAtTheirOwnPriceOrUnknown();
    void shippedClaudeModelsHaveBatchAndCacheWritePrices();
    void cacheWritePriceIsParsedStrictly();
    void oneHourCacheWritesAreBilledAtTheirOwnPrice();
    void cacheWritesWithoutTheirSplitHaveAnUnknownCost();
};

namespace {

constexpr qint64 Unknown = -1; // in the tables: "this cost must be unknown"
constexpr qint64 Absent = -1;  // in the tables: "this count is absent"

std::optional<qint64> opt(qint64 v) {
    return v == Absent ? std::nullopt : std::optional<qint64>(v);
}

// Figures for the arithmetic only (not real prices): USD per million tokens.
const QByteArray FixtureTable = R"({
  "schema": 1,
  "providers": {
    "openai": {
      "models": {
        "m": {"aliases": ["m-2025-01-01"],
              "tiers": {"standard": {"input": 2.5, "cached_input": 1.25, "output": 10,
                                     "source": "https://example.com/p", "date": "2026-12-06"},
                        "batch": {"input": 1.25, "cached_input": 0.625, "output": 5,
                                  "source": "https://example.com/p", "date": "2026-12-06"},
                        "flex": {"input": 1, "cached_input": 0.1, "output": 4,
                                 "source": "https://example.com/p", "date": "2026-12-06"}}},
        "noflex": {"tiers": {"standard": {"input": 1, "output": 2,
                                          "source": "https://example.com/p", "date": "2026-12-06"},
                             "batch": {"input": 0.5, "output": 1,
                                       "source": "https://example.com/p", "date": "2026-12-06"}}},
        "emb": {"tiers": {"standard": {"input": 0.02,
                                       "source": "https://example.com/p", "date": "2026-12-06"},
                          "batch": {"input": 0.01,
                                    "source": "https://example.com/p", "date": "2026-12-06"}}},
        "tiny": {"tiers": {"standard": {"input": 0.15, "output": 0.6,
                                        "source": "https://example.com/p", "date": "2026-12-06"},
                           "batch": {"input": 0.075, "output": 0.3,
                                     "source": "https://example.com/p", "date": "2026-12-06"}}}
      }
    }
  }
})";

PriceTable fixture() {
    QString error;
    const std::optional<PriceTable> t =
        PriceTable::parse(FixtureTable, QStringLiteral("fixture"), &error);
    if (!t)
        qFatal("fixture table: %s", qPrintable(error));
    return *t;
}

// A one-model table with `tier` spliced in as the standard tier of openai/m.
QByteArray withStandardTier(const QByteArray &tier) {
    return R"({"schema": 1, "providers": {"openai": {"models": {"m": {"tiers": {"standard": )" +
           tier + "}}}}}}";
}

const QByteArray GoodTier =
    R"({"input": 1, "source": "https://example.com/p", "date": "2026-12-06"})";

} // namespace

void TestPricing::shippedTableParsesWithSourcesAndDates() {
    const LoadedPrices loaded = loadPrices(QString());
    QVERIFY2(loaded.error.isEmpty(), qPrintable(loaded.error));
    const PriceTable &table = loaded.table;
    QCOMPARE(table.schema(), 1);
    QVERIFY(!table.notes().isEmpty());
    QVERIFY(table.models().size() >= 10);
    for (const ModelPrices &m : table.models()) {
        for (const Tier t : {Tier::Standard, Tier::Batch, Tier::Flex}) {
            const TierPrices *p = m.tier(t);
            if (!p)
                continue;
            const QString where =
                m.provider + QLatin1Char('/') + m.model + QLatin1Char(' ') + tierName(t);
            const QUrl url(p->source);
            QVERIFY2(url.scheme() == QLatin1String("https") && !url.host().isEmpty(),
                     qPrintable(where));
            QVERIFY2(!p->date.isEmpty(), qPrintable(where));
            QVERIFY2(p->input >= 0, qPrintable(where));
            // A cheaper tier is never dearer than the list price it discounts.
            QVERIFY2(p->input <= m.standard.input, qPrintable(where));
            if (p->output && m.standard.output)
                QVERIFY2(*p->output <= *m.standard.output, qPrintable(where));
            if (p->cachedInput)
                QVERIFY2(*p->cachedInput <= p->input, qPrintable(where));
        }
    }
}

void TestPricing::shippedTableHasTheModelsPeopleBatch() {
    const PriceTable table = loadPrices(QString()).table;
    for (const char *name :
         {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
          "gpt-5", "gpt-5-mini", "text-embedding-3-small", "text-embedding-3-large"}) {
        const ModelPrices *m = table.find(QStringLiteral("openai"), QString::fromLatin1(name));
        QVERIFY2(m, name);
    }
    // Spot checks against the figures the table cites (USD per million tokens).
    const ModelPrices *mini = table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini"));
    QCOMPARE(mini->standard.input, 150000);
    QCOMPARE(*mini->standard.cachedInput, 75000);
    QCOMPARE(*mini->standard.output, 600000);
    QVERIFY(mini->batch);
    QCOMPARE(mini->batch->input, 75000);
    QCOMPARE(*mini->batch->output, 300000);
    const ModelPrices *gpt5 = table.find(QStringLiteral("openai"), QStringLiteral("gpt-5"));
    QVERIFY(gpt5->flex);
    QCOMPARE(gpt5->flex->input, 625000);
}

void TestPricing::shippedResourceIsTheRepositoryFile() {
    const QString source = qEnvironmentVariable("LLMPROXY_SOURCE_DIR");
    if (source.isEmpty())
        QSKIP("LLMPROXY_SOURCE_DIR is not set (run through ctest)");
    QFile repo(source + QStringLiteral("/resources/prices.json"));
    QFile shipped(PriceTable::shippedPath());
    QVERIFY(repo.open(QIODevice::ReadOnly));
    QVERIFY(shipped.open(QIODevice::ReadOnly));
    QCOMPARE(shipped.readAll(), repo.readAll());
}

void TestPricing::costFollowsTheRoute_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<Route>("route");
    QTest::addColumn<bool>("reported");
    QTest::addColumn<qint64>("input");
    QTest::addColumn<qint64>("cached");
    QTest::addColumn<qint64>("output");
    QTest::addColumn<qint64>("reasoning");
    QTest::addColumn<qint64>("paid"); // pico-USD, Unknown = must be unknown
    QTest::addColumn<qint64>("list");
    QTest::addColumn<qint64>("saved");

    // m: standard 2.5 / 1.25 / 10, batch 1.25 / 0.625 / 5, flex 1 / 0.1 / 4 ($ per M).
    // 1000 in, 500 out: list 1000 x 2.5e6 + 500 x 10e6 = 7.5e9 pico ($0.0075).
    QTest::newRow("batch") << "m" << Route::Batch << true << 1000LL << Absent << 500LL << Absent
                           << 3'750'000'000LL << 7'500'000'000LL << 3'750'000'000LL;
    // 400 of the 1000 input tokens cached: 600 x 2.5e6 + 400 x 1.25e6 + 500 x 10e6 = 7e9.
    QTest::newRow("batch, cached input")
        << "m" << Route::Batch << true << 1000LL << 400LL << 500LL << Absent << 3'500'000'000LL
        << 7'000'000'000LL << 3'500'000'000LL;
    // Reasoning tokens are inside the output count: not billed again.
    QTest::newRow("reasoning is part of output")
        << "m" << Route::Batch << true << 100LL << 0LL << 300LL << 200LL << 1'625'000'000LL
        << 3'250'000'000LL << 1'625'000'000LL;
    QTest::newRow("sync fallback pays the list price")
        << "m" << Route::SyncFallback << true << 1000LL << 400LL << 500LL << Absent
        << 7'000'000'000LL << 7'000'000'000LL << 0LL;
    QTest::newRow("relay pays the list price")
        << "m" << Route::Relay << true << 1000LL << Absent << 500LL << Absent << 7'500'000'000LL
        << 7'500'000'000LL << 0LL;
    // 600 x 1e6 + 400 x 0.1e6 + 500 x 4e6 = 2.64e9.
    QTest::newRow("flex") << "m" << Route::Flex << true << 1000LL << 400LL << 500LL << Absent
                          << 2'640'000'000LL << 7'000'000'000LL << 4'360'000'000LL;
    QTest::newRow("flex, model without a flex price")
        << "noflex" << Route::Flex << true << 1000LL << Absent << 500LL << Absent << Unknown
        << 2'000'000'000LL << Unknown;
    QTest::newRow("cache pays nothing, saves the list price")
        << "m" << Route::Cache << true << 1000LL << Absent << 500LL << Absent << 0LL
        << 7'500'000'000LL << 7'500'000'000LL;
    QTest::newRow("cache, unknown model") << "nope" << Route::Cache << true << 1000LL << Absent
                                          << 500LL << Absent << 0LL << Unknown << Unknown;
    QTest::newRow("unknown model") << "nope" << Route::Batch << true << 1000LL << Absent << 500LL
                                   << Absent << Unknown << Unknown << Unknown;
    QTest::newRow("unknown model, relay") << "nope" << Route::Relay << true << 1000LL << Absent
                                          << 500LL << Absent << Unknown << Unknown << Unknown;
    QTest::newRow("usage not reported") << "m" << Route::Batch << false << Absent << Absent
                                        << Absent << Absent << Unknown << Unknown << Unknown;
    QTest::newRow("usage not reported, cache") << "m" << Route::Cache << false << Absent << Absent
                                               << Absent << Absent << 0LL << Unknown << Unknown;
    QTest::newRow("more cached than input") << "m" << Route::Batch << true << 10LL << 11LL << 5LL
                                            << Absent << Unknown << Unknown << Unknown;
    QTest::newRow("cached tokens, no cached price")
        << "noflex" << Route::Batch << true << 1000LL << 10LL << 500LL << Absent << Unknown
        << Unknown << Unknown;
    QTest::newRow("cached count zero needs no cached price")
        << "noflex" << Route::Batch << true << 1000LL << 0LL << 500LL << Absent << 1'000'000'000LL
        << 2'000'000'000LL << 1'000'000'000LL;
    // Embeddings: input only. 1000 x 0.02e6 = 2e7 pico.
    QTest::newRow("embeddings, batch")
        << "emb" << Route::Batch << true << 1000LL << Absent << Absent << Absent << 10'000'000LL
        << 20'000'000LL << 10'000'000LL;
    QTest::newRow("output tokens, no output price")
        << "emb" << Route::Batch << true << 1000LL << Absent << 1LL << Absent << Unknown << Unknown
        << Unknown;
    QTest::newRow("alias of m") << "m-2025-01-01" << Route::Batch << true << 1000LL << Absent
                                << 500LL << Absent << 3'750'000'000LL << 7'500'000'000LL
                                << 3'750'000'000LL;
    QTest::newRow("zero tokens cost zero")
        << "m" << Route::Batch << true << 0LL << 0LL << 0LL << 0LL << 0LL << 0LL << 0LL;
}

void TestPricing::costFollowsTheRoute() {
    QFETCH(QString, model);
    QFETCH(Route, route);
    QFETCH(bool, reported);
    QFETCH(qint64, input);
    QFETCH(qint64, cached);
    QFETCH(qint64, output);
    QFETCH(qint64, reasoning);
    QFETCH(qint64, paid);
    QFETCH(qint64, list);
    QFETCH(qint64, saved);

    const PriceTable table = fixture();
    Usage usage;
    usage.reported = reported;
    usage.input = opt(input);
    usage.cachedInput = opt(cached);
    usage.output = opt(output);
    usage.reasoning = opt(reasoning);
    const Cost cost = costOf(table.find(QStringLiteral("openai"), model), route, usage);
    QCOMPARE(cost.paid, opt(paid));
    QCOMPARE(cost.list, opt(list));
    QCOMPARE(cost.saved, opt(saved));
    QCOMPARE(cost.known(), paid != Unknown && list != Unknown && saved != Unknown);
}

void TestPricing::oneTokenAtAFractionOfACentIsExact() {
    const PriceTable table = fixture();
    Usage usage;
    usage.reported = true;
    usage.input = 1;
    usage.output = 0;
    const Cost cost =
        costOf(table.find(QStringLiteral("openai"), QStringLiteral("tiny")), Route::Batch, usage);
    QCOMPARE(cost.paid, std::optional<Picos>(75'000)); // $0.075 per million = 75,000 pico each
    QCOMPARE(formatUsd(*cost.paid), QByteArray("0.000000075"));
    QCOMPARE(formatUsd(*cost.list), QByteArray("0.00000015"));
    QCOMPARE(formatUsd(*cost.saved), QByteArray("0.000000075"));

    // A million such answers add up to exactly $0.075: no drift from rounding.
    Picos total = 0;
    for (int i = 0; i < 1'000'000; ++i)
        QVERIFY(addPicos(total, *cost.paid));
    QCOMPARE(formatUsd(total), QByteArray("0.075"));
}

void TestPricing::overflowMakesTheCostUnknown() {
    const PriceTable table = fixture();
    const ModelPrices *m = table.find(QStringLiteral("openai"), QStringLiteral("m"));
    Usage usage;
    usage.reported = true;
    // 2^62 tokens x 2,500,000 pico overflows qint64.
    usage.input = Q_INT64_C(1) << 62;
    usage.output = 0;
    QCOMPARE(tierCost(m->standard, usage), std::nullopt);
    QVERIFY(!costOf(m, Route::Batch, usage).known());

    // Each product fits, their sum does not: 8e11 x 2.5e6 + 8e11 x 10e6 = 1e19 > 9.22e18,
    // while at the batch prices 8e11 x 1.25e6 + 8e11 x 5e6 = 5e18 fits.
    usage.input = 800'000'000'000LL;
    usage.output = usage.input;
    QCOMPARE(tierCost(m->batch.value(), usage), std::optional<Picos>(5'000'000'000'000'000'000LL));
    QCOMPARE(tierCost(m->standard, usage), std::nullopt);

    // The largest cost that fits is still exact.
    Usage fits;
    fits.reported = true;
    fits.input = 3'689'348'814'741LL; // x 2,500,000 = 9,223,372,036,852,500,000 <= INT64_MAX
    fits.output = 0;
    QCOMPARE(tierCost(m->standard, fits), std::optional<Picos>(9'223'372'036'852'500'000LL));
    QCOMPARE(formatUsd(9'223'372'036'852'500'000LL), QByteArray("9223372.0368525"));
}

void TestPricing::totalsAreChecked() {
    Picos total = std::numeric_limits<Picos>::max() - 5;
    QVERIFY(addPicos(total, 5));
    QCOMPARE(total, std::numeric_limits<Picos>::max());
    QVERIFY(!addPicos(total, 1));
    QCOMPARE(total, std::numeric_limits<Picos>::max()); // unchanged on overflow
    Picos low = std::numeric_limits<Picos>::min();
    QVERIFY(!addPicos(low, -1));
}

void TestPricing::formatUsdIsExact_data() {
    QTest::addColumn<qint64>("picos");
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("zero") << 0LL << QByteArray("0");
    QTest::newRow("one pico") << 1LL << QByteArray("0.000000000001");
    QTest::newRow("123 micro") << 123'000'000LL << QByteArray("0.000123");
    QTest::newRow("one dollar") << 1'000'000'000'000LL << QByteArray("1");
    QTest::newRow("a dollar fifty") << 1'500'000'000'000LL << QByteArray("1.5");
    QTest::newRow("negative") << -2'500'000LL << QByteArray("-0.0000025");
    QTest::newRow("max") << std::numeric_limits<qint64>::max()
                         << QByteArray("9223372.036854775807");
    QTest::newRow("min") << std::numeric_limits<qint64>::min()
                         << QByteArray("-9223372.036854775808");
}

void TestPricing::formatUsdIsExact() {
    QFETCH(qint64, picos);
    QFETCH(QByteArray, text);
    QCOMPARE(formatUsd(picos), text);
}

void TestPricing::parsePriceIsExactAndStrict_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<qint64>("value"); // micro-USD per million, or Unknown
    QTest::addColumn<QString>("why");
    QTest::newRow("2.5") << QByteArray("2.5") << 2'500'000LL << QString();
    QTest::newRow("0.075") << QByteArray("0.075") << 75'000LL << QString();
    QTest::newRow("0.000001") << QByteArray("0.000001") << 1LL << QString();
    QTest::newRow("10") << QByteArray("10") << 10'000'000LL << QString();
    QTest::newRow("0") << QByteArray("0") << 0LL << QString();
    QTest::newRow("0.1 is not a double here")
        << QByteArray("0.1") << 100'000LL << QString(); // 0.1 has no exact double
    QTest::newRow("negative") << QByteArray("-1") << Unknown
                              << QStringLiteral("must not be negative (-1)");
    QTest::newRow("string") << QByteArray("\"2.5\"") << Unknown
                            << QStringLiteral("must be a number, not a string");
    QTest::newRow("null") << QByteArray("null") << Unknown
                          << QStringLiteral("must be a number, not null");
    QTest::newRow("exponent") << QByteArray("1e-3") << Unknown
                              << QStringLiteral("must be a plain decimal, not 1e-3 (no exponent)");
    QTest::newRow("seven decimals")
        << QByteArray("0.0000001") << Unknown
        << QStringLiteral("has more than 6 decimal places (0.0000001): the smallest step is "
                          "$0.000001 per million tokens");
    QTest::newRow("too large") << QByteArray("123456789") << Unknown
                               << QStringLiteral("is too large (123456789)");
    QTest::newRow("not JSON") << QByteArray("2,5") << Unknown
                              << QStringLiteral("must be a number, not \"2,5\"");
}

void TestPricing::parsePriceIsExactAndStrict() {
    QFETCH(QByteArray, raw);
    QFETCH(qint64, value);
    QFETCH(QString, why);
    QString error;
    const std::optional<MicroUsdPerMillion> parsed = parsePrice(raw, &error);
    QCOMPARE(parsed, opt(value));
    QCOMPARE(error, why);
}

void TestPricing::badFilesGiveOneLineNamingFileModelAndField_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("error");

    QTest::newRow("negative price")
        << withStandardTier(
               R"({"input": -1, "source": "https://example.com/p", "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard.input: must not be negative (-1)");
    QTest::newRow("price as a string")
        << withStandardTier(R"({"input": 1, "output": "10", "source": "https://example.com/p",
                               "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard.output: must be a number, not a string");
    QTest::newRow("cached price negative")
        << withStandardTier(R"({"input": 1, "cached_input": -0.5,
                               "source": "https://example.com/p", "date": "2026-12-06"})")
        << QStringLiteral(
               "prices.json: openai/m: standard.cached_input: must not be negative (-0.5)");
    QTest::newRow("missing input")
        << withStandardTier(R"({"source": "https://example.com/p", "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard: missing \"input\"");
    QTest::newRow("missing source")
        << withStandardTier(R"({"input": 1, "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard: missing \"source\" (the page the "
                          "prices were read from)");
    QTest::newRow("source not a URL")
        << withStandardTier(R"({"input": 1, "source": "my notes", "date": "2026-12-06"})")
        << QStringLiteral(
               "prices.json: openai/m: standard.source: must be an http(s) URL, not \"my notes\"");
    QTest::newRow("missing date")
        << withStandardTier(R"({"input": 1, "source": "https://example.com/p"})")
        << QStringLiteral("prices.json: openai/m: standard: missing \"date\" (when the prices "
                          "were read, YYYY-MM-DD)");
    QTest::newRow("bad date")
        << withStandardTier(
               R"({"input": 1, "source": "https://example.com/p", "date": "2026-13-01"})")
        << QStringLiteral("prices.json: openai/m: standard.date: must be a date YYYY-MM-DD, not "
                          "\"2026-13-01\"");
    QTest::newRow("unknown field in a tier")
        << withStandardTier(R"({"input": 1, "ouptut": 2, "source": "https://example.com/p",
                               "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard: unknown field \"ouptut\"");
    QTest::newRow("unknown tier")
        << QByteArray(R"({"schema": 1, "providers": {"openai": {"models": {"m": {"tiers": {
               "standard": )" +
                      GoodTier + R"(, "turbo": )" + GoodTier + "}}}}}}")
        << QStringLiteral(
               "prices.json: openai/m: unknown tier \"turbo\" (known: standard, batch, flex)");
    QTest::newRow("no standard tier")
        << QByteArray(R"({"schema": 1, "providers": {"openai": {"models": {"m": {"tiers": {
               "batch": )" +
                      GoodTier + "}}}}}}")
        << QStringLiteral("prices.json: openai/m: missing the \"standard\" tier (the list price)");
    QTest::newRow("schema 2") << QByteArray(R"({"schema": 2, "providers": {}})")
                              << QStringLiteral("prices.json: schema: must be 1, not 2");
    QTest::newRow("no schema")
        << QByteArray(R"({"providers": {}})")
        << QStringLiteral("prices.json: missing \"schema\" (this proxy reads schema 1)");
    QTest::newRow("other currency")
        << QByteArray(R"({"schema": 1, "currency": "EUR", "providers": {}})")
        << QStringLiteral(
               "prices.json: currency: must be \"USD\", not \"EUR\" (prices are kept in USD)");
    QTest::newRow("alias claimed twice")
        << QByteArray(R"({"schema": 1, "providers": {"openai": {"models": {
               "a": {"aliases": ["x-1"], "tiers": {"standard": )" +
                      GoodTier + R"(}},
               "b": {"aliases": ["x-1"], "tiers": {"standard": )" +
                      GoodTier + "}}}}}}")
        << QStringLiteral(
               "prices.json: openai/b: alias \"x-1\" is already the name or an alias of openai/a");
    QTest::newRow("alias is another model's name")
        << QByteArray(R"({"schema": 1, "providers": {"openai": {"models": {
               "a": {"tiers": {"standard": )" +
                      GoodTier + R"(}},
               "b": {"aliases": ["a"], "tiers": {"standard": )" +
                      GoodTier + "}}}}}}")
        << QStringLiteral(
               "prices.json: openai/b: alias \"a\" is already the name or an alias of openai/a");
    QTest::newRow("duplicate key")
        << withStandardTier(R"({"input": 1, "input": 2, "source": "https://example.com/p",
                               "date": "2026-12-06"})")
        << QStringLiteral("prices.json: openai/m: standard: duplicate key \"input\"");
    QTest::newRow("tier not an object")
        << withStandardTier("2.5")
        << QStringLiteral(
               "prices.json: openai/m: standard: a tier must be an object, not a number");
    QTest::newRow("unknown top-level field")
        << QByteArray(R"({"schema": 1, "providers": {}, "prices": {}})")
        << QStringLiteral("prices.json: unknown field \"prices\"");
}

void TestPricing::badFilesGiveOneLineNamingFileModelAndField() {
    QFETCH(QByteArray, text);
    QFETCH(QString, error);
    QString actual;
    QCOMPARE(PriceTable::parse(text, QStringLiteral("prices.json"), &actual).has_value(), false);
    QCOMPARE(actual, error);
    QVERIFY(!actual.contains(QLatin1Char('\n')));
}

void TestPricing::lookupIsExactNamesAndListedSnapshotsOnly_data() {
    QTest::addColumn<QString>("provider");
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("found"); // empty: no price

    const QString openai = QStringLiteral("openai");
    QTest::newRow("exact") << openai << "gpt-4o"
                           << "gpt-4o";
    QTest::newRow("listed snapshot") << openai << "gpt-4o-2024-08-06"
                                     << "gpt-4o";
    QTest::newRow("listed snapshot, mini") << openai << "gpt-4o-mini-2024-07-18"
                                           << "gpt-4o-mini";
    QTest::newRow("listed snapshot, 4.1") << openai << "gpt-4.1-2025-04-14"
                                          << "gpt-4.1";
    // Priced differently from gpt-4o: never folded into it.
    QTest::newRow("old snapshot with another price") << openai << "gpt-4o-2024-05-13"
                                                     << "";
    QTest::newRow("unlisted snapshot") << openai << "gpt-4o-mini-2099-01-01"
                                       << "";
    QTest::newRow("case differs") << openai << "GPT-4o"
                                  << "";
    QTest::newRow("fine-tuned") << openai << "ft:gpt-4o-mini-2024-07-18:org::abc"
                                << "";
    QTest::newRow("prefix of a name") << openai << "gpt-4"
                                      << "";
    QTest::newRow("other provider") << QStringLiteral("anthropic") << "gpt-4o"
                                    << "";
    QTest::newRow("anthropic snapshot")
        << QStringLiteral("anthropic") << "claude-haiku-4-5-20251001"
        << "claude-haiku-4-5";
    // Priced by input size (more above 200,000 tokens): left out rather than priced wrong.
    QTest::newRow("size-tiered model left out")
        << QStringLiteral("anthropic") << "claude-sonnet-4-5"
        << "";
}

void TestPricing::lookupIsExactNamesAndListedSnapshotsOnly() {
    QFETCH(QString, provider);
    QFETCH(QString, name);
    QFETCH(QString, found);
    const PriceTable table = loadPrices(QString()).table;
    const ModelPrices *m = table.find(provider, name);
    QCOMPARE(m ? m->model : QString(), found);
}

void TestPricing::overrideFileReplacesModelByModel() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("prices.json"));
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(R"({"schema": 1, "providers": {"openai": {"models": {
        "gpt-4o": {"tiers": {"standard": {"input": 3, "cached_input": 1.5, "output": 12,
                                          "source": "https://example.com/mine", "date": "2026-12-07"},
                             "batch": {"input": 1.5, "cached_input": 0.75, "output": 6,
                                       "source": "https://example.com/mine", "date": "2026-12-07"}}},
        "my-model": {"aliases": ["gpt-4o-2024-08-06"],
                     "tiers": {"standard": {"input": 1, "output": 1,
                                            "source": "https://example.com/mine",
                                            "date": "2026-12-07"}}}}}}})");
    file.close();

    const LoadedPrices loaded = loadPrices(path);
    QVERIFY2(loaded.error.isEmpty(), qPrintable(loaded.error));
    const ModelPrices *gpt4o =
        loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o"));
    QVERIFY(gpt4o);
    QCOMPARE(gpt4o->standard.input, 3'000'000);
    QCOMPARE(gpt4o->standard.source, QStringLiteral("https://example.com/mine"));
    QVERIFY(gpt4o->batch);
    QCOMPARE(gpt4o->batch->input, 1'500'000);
    QVERIFY(gpt4o->aliases.isEmpty()); // replaced whole: the override listed none
    // The snapshot now belongs to the override's model.
    const ModelPrices *snapshot =
        loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-2024-08-06"));
    QVERIFY(snapshot);
    QCOMPARE(snapshot->model, QStringLiteral("my-model"));
    // Models the override does not name keep the shipped prices.
    const ModelPrices *mini =
        loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini"));
    QVERIFY(mini);
    QCOMPARE(mini->standard.input, 150'000);
    QVERIFY(loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini-2024-07-18")));

    // And the arithmetic uses the override: 1000 in, 0 out at $3/M list, $1.5/M batch.
    Usage usage;
    usage.reported = true;
    usage.input = 1000;
    usage.output = 0;
    const Cost cost = costOf(gpt4o, Route::Batch, usage);
    QCOMPARE(formatUsd(*cost.list), QByteArray("0.003"));
    QCOMPARE(formatUsd(*cost.paid), QByteArray("0.0015"));
}

void TestPricing::brokenOverrideFileKeepsTheShippedTableAndSaysWhy() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("prices.json"));
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(R"({"schema": 1, "providers": {"openai": {"models": {
        "gpt-4o": {"tiers": {"standard": {"input": 3, "output": "twelve",
                                          "source": "https://example.com/mine",
                                          "date": "2026-12-07"}}}}}}})");
    file.close();

    const LoadedPrices loaded = loadPrices(path);
    QCOMPARE(loaded.error,
             path + QStringLiteral(": openai/gpt-4o: standard.output: must be a number, not a "
                                   "string"));
    const ModelPrices *gpt4o =
        loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o"));
    QVERIFY(gpt4o);
    QCOMPARE(gpt4o->standard.input, 2'500'000); // the shipped figure, not half of an override

    // Not JSON at all.
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write("{\"schema\": 1,");
    file.close();
    const LoadedPrices garbled = loadPrices(path);
    QVERIFY2(garbled.error.startsWith(path + QStringLiteral(": not valid JSON: ")),
             qPrintable(garbled.error));
    QVERIFY(!garbled.error.contains(QLatin1Char('\n')));
    QVERIFY(garbled.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o")));
}

void TestPricing::missingOverrideFileIsFine() {
    QTemporaryDir dir;
    const LoadedPrices loaded = loadPrices(dir.filePath(QStringLiteral("nothing-here.json")));
    QVERIFY(loaded.error.isEmpty());
    QVERIFY(loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o")));
    QVERIFY(PriceTable::defaultOverridePath().endsWith(QStringLiteral("/llm-proxy/prices.json")));
}

void TestPricing::routeNamesRoundTrip() {
    for (const Route r :
         {Route::Batch, Route::SyncFallback, Route::Relay, Route::Flex, Route::Cache})
        QCOMPARE(routeFromName(routeName(r)), std::optional<Route>(r));
    QCOMPARE(routeName(Route::SyncFallback), QStringLiteral("sync_fallback"));
    QCOMPARE(routeFromName(u"Batch"), std::nullopt);
    QCOMPARE(paidTier(Route::Relay), std::optional<Tier>(Tier::Standard));
    QCOMPARE(paidTier(Route::Cache), std::nullopt);
}

void TestPricing::usageFromRecordedAnswers_data() {
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<bool>("reported");
    QTest::addColumn<qint64>("input");
    QTest::addColumn<qint64>("cached");
    QTest::addColumn<qint64>("output");
    QTest::addColumn<qint64>("reasoning");

    // The chat/completions example of OpenAI's OpenAPI description (the reference copy).
    QTest::newRow("chat/completions") << QByteArray(R"({
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
  "created": 1741569952, "model": "gpt-5.4",
  "choices": [{"index": 0, "message": {"role": "assistant",
    "content": "Hello! How can I assist you today?", "refusal": null, "annotations": []},
    "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "service_tier": "default"})") << true
                                      << 19LL << 0LL << 10LL << 0LL;
    QTest::newRow("chat/completions, cached and reasoning")
        << QByteArray(R"({
  "object": "chat.completion", "model": "o4-mini-2025-04-16", "choices": [],
  "usage": {"prompt_tokens": 2048, "completion_tokens": 900, "total_tokens": 2948,
    "prompt_tokens_details": {"cached_tokens": 1536},
    "completion_tokens_details": {"reasoning_tokens": 640}}})")
        << true << 2048LL << 1536LL << 900LL << 640LL;
    QTest::newRow("completions (legacy)") << QByteArray(R"({
  "id": "cmpl-1", "object": "text_completion", "model": "gpt-3.5-turbo-instruct",
  "choices": [{"text": "x", "index": 0, "logprobs": null, "finish_reason": "length"}],
  "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})")
                                          << true << 5LL << Absent << 7LL << Absent;
    // The Responses example of OpenAI's OpenAPI description, abridged.
    QTest::newRow("responses") << QByteArray(R"({
  "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41", "object": "response",
  "status": "completed", "model": "gpt-4.1-2025-04-14", "output": [],
  "usage": {"input_tokens": 36,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 123},
  "user": null, "metadata": {}})")
                               << true << 36LL << 0LL << 87LL << 0LL;
    QTest::newRow("responses, reasoning model") << QByteArray(R"({
  "object": "response", "status": "completed", "model": "o3",
  "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 448},
    "total_tokens": 1700}})") << true << 1200LL << 1024LL
                                                << 500LL << 448LL;
    QTest::newRow("embeddings") << QByteArray(R"({
  "object": "list",
  "data": [{"object": "embedding", "embedding": [0.0023064255, -0.009327292], "index": 0}],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}})")
                                << true << 8LL << Absent << Absent << Absent;
    QTest::newRow("no usage") << QByteArray(R"({"object": "chat.completion", "choices": []})")
                              << false << Absent << Absent << Absent << Absent;
    QTest::newRow("usage null (response not finished)")
        << QByteArray(R"({"object": "response", "status": "in_progress", "usage": null})") << false
        << Absent << Absent << Absent << Absent;
    QTest::newRow("an error answer")
        << QByteArray(R"({"error": {"message": "Rate limit", "type": "requests", "param": null,
                                    "code": "rate_limit_exceeded"}})")
        << false << Absent << Absent << Absent << Absent;
    QTest::newRow("negative count") << QByteArray(R"({"usage": {"prompt_tokens": -1,
                                                                "completion_tokens": 2}})")
                                    << false << Absent << Absent << Absent << Absent;
    QTest::newRow("count as a string") << QByteArray(R"({"usage": {"prompt_tokens": "5"}})")
                                       << false << Absent << Absent << Absent << Absent;
    QTest::newRow("more cached than input")
        << QByteArray(R"({"usage": {"prompt_tokens": 5, "completion_tokens": 1,
                                    "prompt_tokens_details": {"cached_tokens": 6}}})")
        << false << Absent << Absent << Absent << Absent;
    QTest::newRow("no input count") << QByteArray(R"({"usage": {"completion_tokens": 3}})") << false
                                    << Absent << Absent << Absent << Absent;
    QTest::newRow("not JSON") << QByteArray("data: {\"usage\":") << false << Absent << Absent
                              << Absent << Absent;
}

void TestPricing::usageFromRecordedAnswers() {
    QFETCH(QByteArray, body);
    QFETCH(bool, reported);
    QFETCH(qint64, input);
    QFETCH(qint64, cached);
    QFETCH(qint64, output);
    QFETCH(qint64, reasoning);
    const Usage usage = usageFromAnswer(body);
    QCOMPARE(usage.reported, reported);
    QCOMPARE(usage.input, opt(input));
    QCOMPARE(usage.cachedInput, opt(cached));
    QCOMPARE(usage.output, opt(output));
    QCOMPARE(usage.reasoning, opt(reasoning));
}

void TestPricing::batchedLineEndToEnd() {
    // A batch result line's response.body for gpt-4o-mini, priced with the shipped table.
    const Usage usage = usageFromAnswer(R"({"object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                  "prompt_tokens_details": {"cached_tokens": 0}}})");
    QVERIFY(usage.reported);
    const PriceTable table = loadPrices(QString()).table;
    const Cost cost =
        costOf(table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini-2024-07-18")),
               Route::Batch, usage);
    // list: 1000 x $0.15/M + 200 x $0.60/M = $0.00027; batch: half.
    QCOMPARE(formatUsd(*cost.list), QByteArray("0.00027"));
    QCOMPARE(formatUsd(*cost.paid), QByteArray("0.000135"));
    QCOMPARE(formatUsd(*cost.saved), QByteArray("0.000135"));

    // No source gives the batch tier's cached-input price: the shipped table carries none (a
    // figure derived from "the discounts stack" would be a guess), so a batched line that
    // reports cached tokens has an unknown cost, while its list cost is still known.
    QVERIFY(
        !table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini"))->batch->cachedInput);
    Usage cachedUsage = usage;
    cachedUsage.cachedInput = 400;
    const Cost cached = costOf(table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini")),
                               Route::Batch, cachedUsage);
    QVERIFY(!cached.paid);
    QVERIFY(!cached.saved);
    QVERIFY(cached.list);
}

void TestPricing::anthropicUsageCountsCacheReadsAndWritesAsInput_data() {
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<bool>("reported");
    QTest::addColumn<qint64>("input");
    QTest::addColumn<qint64>("cached");
    QTest::addColumn<qint64>("written");
    QTest::addColumn<qint64>("output");
    // The Messages API's example answer (usage as the API reference shows it).
    QTest::newRow("message") << QByteArray(R"({"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
  "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
  "content": [{"type": "text", "text": "Hi! My name is Claude."}],
  "stop_reason": "end_turn", "stop_sequence": null,
  "usage": {"input_tokens": 2095, "output_tokens": 503}})")
                             << true << 2095LL << Absent << Absent << 503LL;
    QTest::newRow("prompt caching") << QByteArray(R"({"type": "message", "content": [],
  "usage": {"input_tokens": 50, "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 3000, "output_tokens": 20,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0},
            "service_tier": "batch"}})")
                                    << true << 4050LL << 3000LL << 1000LL << 20LL;
    QTest::newRow("nulls") << QByteArray(R"({"usage": {"input_tokens": 7,
  "cache_creation_input_tokens": null, "cache_read_input_tokens": null, "output_tokens": 1}})")
                           << true << 7LL << Absent << Absent << 1LL;
    QTest::newRow("no input count") << QByteArray(R"({"usage": {"output_tokens": 3}})") << false
                                    << Absent << Absent << Absent << Absent;
    QTest::newRow("negative cache read")
        << QByteArray(R"({"usage": {"input_tokens": 3, "cache_read_input_tokens": -1}})") << false
        << Absent << Absent << Absent << Absent;
    QTest::newRow("an error") << QByteArray(R"({"type": "error", "error": {
  "type": "overloaded_error", "message": "Overloaded"}})")
                              << false << Absent << Absent << Absent << Absent;
}

void TestPricing::anthropicUsageCountsCacheReadsAndWritesAsInput() {
    QFETCH(QByteArray, body);
    QFETCH(bool, reported);
    QFETCH(qint64, input);
    QFETCH(qint64, cached);
    QFETCH(qint64, written);
    QFETCH(qint64, output);
    const Usage usage = anthropicUsageFromAnswer(body);
    QCOMPARE(usage.reported, reported);
    QCOMPARE(usage.input, opt(input));
    QCOMPARE(usage.cachedInput, opt(cached));
    QCOMPARE(usage.cacheWriteInput, opt(written));
    QCOMPARE(usage.output, opt(output));
    QCOMPARE(usage.reasoning, std::nullopt);
}

void TestPricing::cacheWritesAreBilledAtTheirOwnPriceOrUnknown() {
    QString error;
    const std::optional<PriceTable> table = PriceTable::parse(
        R"({"schema": 1, "providers": {"anthropic": {"models": {
          "c": {"tiers": {
            "standard": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15,
                         "source": "https://example.com/p", "date": "2026-12-06"},
            "batch": {"input": 1.5, "output": 7.5,
                      "source": "https://example.com/p", "date": "2026-12-06"}}}}}}})",
        QStringLiteral("t"), &error);
    QVERIFY2(table, qPrintable(error));
    const ModelPrices *c = table->find(QStringLiteral("anthropic"), QStringLiteral("c"));
    QVERIFY(c);
    QCOMPARE(c->standard.cacheWrite, std::optional<MicroUsdPerMillion>(3750000));
    QCOMPARE(c->batch->cacheWrite, std::nullopt);

    const Usage usage = anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 50,
        "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
        "output_tokens": 20, "cache_creation": {"ephemeral_5m_input_tokens": 1000,
        "ephemeral_1h_input_tokens": 0}}})");
    QCOMPARE(usage.cacheWrite1hInput, std::optional<qint64>(0));
    // 50 x $3 + 3000 x $0.30 + 1000 x $3.75 + 20 x $15, per million: $0.0051.
    const Cost relayed = costOf(c, Route::Relay, usage);
    QCOMPARE(formatUsd(*relayed.paid), QByteArray("0.0051"));
    // The batch tier names no cache-write (nor cache-read) price: unknown, never guessed.
    const Cost batched = costOf(c, Route::Batch, usage);
    QVERIFY(!batched.paid);
    QVERIFY(batched.list);
    // Without cache tokens the batch tier prices it.
    const Usage plain =
        anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 1000, "output_tokens": 100}})");
    QCOMPARE(formatUsd(*costOf(c, Route::Batch, plain).paid), QByteArray("0.00225"));
    // A tier without a cache-write price cannot bill cache writes.
    Usage writesOnly;
    writesOnly.reported = true;
    writesOnly.input = 100;
    writesOnly.cacheWriteInput = 10;
    writesOnly.cacheWrite1hInput = 0;
    TierPrices noWrite = c->standard;
    noWrite.cacheWrite.reset();
    QVERIFY(!tierCost(noWrite, writesOnly));
    // Reads and writes together larger than the input: not a usage we can bill.
    Usage tooMany = writesOnly;
    tooMany.cachedInput = 95;
    QVERIFY(!tierCost(c->standard, tooMany));
}

void TestPricing::shippedClaudeModelsHaveBatchAndCacheWritePrices() {
    const PriceTable table = loadPrices(QString()).table;
    const ModelPrices *opus =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-opus-4-1"));
    QVERIFY(opus);
    QCOMPARE(opus->standard.input, 15000000);
    QCOMPARE(opus->standard.cacheWrite, std::optional<MicroUsdPerMillion>(18750000));
    QVERIFY(opus->batch);
    QCOMPARE(opus->batch->input, 7500000);
    QCOMPARE(opus->batch->output, std::optional<MicroUsdPerMillion>(37500000));
    const ModelPrices *haiku =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-3-5-haiku-20241022"));
    QVERIFY(haiku);
    QCOMPARE(haiku->batch->input, 400000);
    QCOMPARE(haiku->standard.cacheWrite, std::optional<MicroUsdPerMillion>(1000000));
    const ModelPrices *h45 =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-haiku-4-5"));
    QVERIFY(h45);
    QCOMPARE(h45->standard.cacheWrite, std::optional<MicroUsdPerMillion>(1250000));
    // A batched Claude answer priced end to end: 1000 in, 100 out on Claude Haiku 3.
    const Usage usage =
        anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 1000, "output_tokens": 100}})");
    const Cost cost =
        costOf(table.find(QStringLiteral("anthropic"), QStringLiteral("claude-3-haiku")),
               Route::Batch, usage);
    QCOMPARE(formatUsd(*cost.list), QByteArray("0.000375"));
    QCOMPARE(formatUsd(*cost.paid), QByteArray("0.0001875"));
}

void TestPricing::cacheWritePriceIsParsedStrictly() {
    QString error;
    QVERIFY(!PriceTable::parse(withStandardTier(R"({"input": 1, "cache_write": -1,
        "source": "https://example.com/p", "date": "2026-12-06"})"),
                               QStringLiteral("prices.json"), &error));
    QVERIFY2(error.contains(QStringLiteral("standard.cache_write")), qPrintable(error));
    QVERIFY(PriceTable::parse(withStandardTier(R"({"input": 1, "cache_write": 1.25,
        "source": "https://example.com/p", "date": "2026-12-06"})"),
                              QStringLiteral("prices.json"), &error));
}

void TestPricing::oneHourCacheWritesAreBilledAtTheirOwnPrice() {
    // Claude 3.7 Sonnet from the shipped table: input $3, 5-minute writes $3.75, 1-hour $6.
    const PriceTable table = loadPrices(QString()).table;
    const ModelPrices *sonnet =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-3-7-sonnet"));
    QVERIFY(sonnet);
    QCOMPARE(sonnet->standard.cacheWrite1h, std::optional<MicroUsdPerMillion>(6000000));
    const ModelPrices *opus =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-opus-4-1"));
    QVERIFY(opus);
    QCOMPARE(opus->standard.cacheWrite1h, std::optional<MicroUsdPerMillion>(30000000));

    const Usage usage = anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 100,
        "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0, "output_tokens": 10,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                           "ephemeral_1h_input_tokens": 2000}}})");
    QVERIFY(usage.reported);
    QCOMPARE(usage.input, std::optional<qint64>(3100));
    QCOMPARE(usage.cacheWriteInput, std::optional<qint64>(3000));
    QCOMPARE(usage.cacheWrite1hInput, std::optional<qint64>(2000));
    // 100 x $3 + 1000 x $3.75 + 2000 x $6 + 10 x $15, per million: $0.0162 (at the 5-minute
    // price alone it would have been $0.0117).
    const Cost cost = costOf(sonnet, Route::Relay, usage);
    QVERIFY(cost.paid);
    QCOMPARE(formatUsd(*cost.paid), QByteArray("0.0162"));
    QCOMPARE(formatUsd(*cost.list), QByteArray("0.0162"));

    // A model whose table has no 1-hour price cannot bill 1-hour writes...
    const ModelPrices *h45 =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-haiku-4-5"));
    QVERIFY(h45);
    QCOMPARE(h45->standard.cacheWrite1h, std::nullopt);
    QVERIFY(!costOf(h45, Route::Relay, usage).paid);
    QVERIFY(!costOf(h45, Route::Relay, usage).list);
    // ...but bills 5-minute ones: 100 x $1 + 1000 x $1.25 + 10 x $5 = $0.0014.
    const Usage fiveMinutes = anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 100,
        "cache_creation_input_tokens": 1000, "output_tokens": 10,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                           "ephemeral_1h_input_tokens": 0}}})");
    QCOMPARE(formatUsd(*costOf(h45, Route::Relay, fiveMinutes).paid), QByteArray("0.0014"));

    // The price field is parsed like the others.
    QString error;
    QVERIFY(!PriceTable::parse(withStandardTier(R"({"input": 1, "cache_write_1h": "2",
        "source": "https://example.com/p", "date": "2026-12-06"})"),
                               QStringLiteral("prices.json"), &error));
    QVERIFY2(error.contains(QStringLiteral("standard.cache_write_1h")), qPrintable(error));
}

void TestPricing::cacheWritesWithoutTheirSplitHaveAnUnknownCost() {
    const PriceTable table = loadPrices(QString()).table;
    const ModelPrices *sonnet =
        table.find(QStringLiteral("anthropic"), QStringLiteral("claude-3-7-sonnet"));
    QVERIFY(sonnet);
    // No cache_creation breakdown: some of the 1000 may be 1-hour writes, so no price is known.
    const Usage noSplit = anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 100,
        "cache_creation_input_tokens": 1000, "output_tokens": 10}})");
    QVERIFY(noSplit.reported);
    QCOMPARE(noSplit.cacheWriteInput, std::optional<qint64>(1000));
    QCOMPARE(noSplit.cacheWrite1hInput, std::nullopt);
    const Cost unknown = costOf(sonnet, Route::Relay, noSplit);
    QVERIFY(!unknown.paid);
    QVERIFY(!unknown.list);
    QVERIFY(!unknown.known());
    // A breakdown that does not add up to the written count is not trusted either.
    const Usage badSplit = anthropicUsageFromAnswer(R"({"usage": {"input_tokens": 100,
        "cache_creation_input_tokens": 1000, "output_tokens": 10,
        "cache_creation": {"ephemeral_5m_input_tokens": 100,
                           "ephemeral_1h_input_tokens": 200}}})");
    QVERIFY(badSplit.reported);
    QCOMPARE(badSplit.cacheWrite1hInput, std::nullopt);
    QVERIFY(!costOf(sonnet, Route::Relay, badSplit).paid);
    // No cache writes at all: nothing to split, the cost is known.
    const Usage none = anthropicUsageFromAnswer(
        R"({"usage": {"input_tokens": 100, "cache_creation_input_tokens": 0, "output_tokens": 10}})");
    QVERIFY(costOf(sonnet, Route::Relay, none).paid);
}

QTEST_GUILESS_MAIN(TestPricing)
#include "tst_pricing.moc"
