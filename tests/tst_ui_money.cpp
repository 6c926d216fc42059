// SPDX-License-Identifier: GPL-3.0-or-later
// Money in the desktop app (issue 10): the dashboard's money panel shows the ledger's exact
// figures (cents on screen, every digit in the tooltip) and names the models without a price
// instead of showing $0; the tray's tooltip says what was saved today and the batch-finished
// notification what the batch saved; the history shows each batch's tokens and cost, after a
// restart too; the chart draws paid against list per day and notes the unpriced requests; the
// figures follow accounted requests without reading the whole ledger again; the settings'
// price editor writes an override file the proxy's parser loads, refuses a bad figure next to
// its field, and the running proxy prices with it at once.
//
// The fake provider counts words: "a b" is 2 prompt tokens, its answer "echo: a b" 3 completion
// tokens. gpt-4o-mini (resources/prices.json): standard 0.15 / 0.6, batch 0.075 / 0.3 USD per
// million input / output tokens.

#include "accounting/cost.h"
#include "accounting/ledger.h"
#include "accounting/prices.h"
#include "fakeprovider.h"
#include "queue/store.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "ui/appactions.h"
#include "ui/batchdetails.h"
#include "ui/batchtablemodel.h"
#include "ui/dashboardpage.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/moneychart.h"
#include "ui/moneypanel.h"
#include "ui/moneysummary.h"
#include "ui/moneytext.h"
#include "ui/priceoverrides.h"
#include "ui/pricessettings.h"
#include "ui/proxyhost.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"
#include "ui/traycontroller.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QLocale>
#include <QNetworkReply>
#include <QPushButton>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::accounting;
using namespace std::chrono_literals;

namespace {

constexpr Picos Usd = 1'000'000'000'000LL;

const PriceTable &shipped() {
    static const PriceTable table = [] {
        QString error;
        auto loaded = PriceTable::readFile(PriceTable::shippedPath(), &error);
        return loaded ? *loaded : PriceTable();
    }();
    return table;
}

// One answered request as the core would account it, priced with the shipped table.
AccountedRequest answered(const QDateTime &at, const QByteArray &model, Route route, qint64 input,
                          qint64 output) {
    AccountedRequest request;
    request.route = route;
    request.endpoint = "/v1/chat/completions";
    request.model = model;
    request.caller = "…aaaa";
    request.provider = "openai";
    request.httpStatus = 200;
    request.usage.reported = true;
    request.usage.input = input;
    request.usage.cachedInput = 0;
    request.usage.output = output;
    request.usage.reasoning = 0;
    request.cost = costOf(shipped().find(QStringLiteral("openai"), QString::fromUtf8(model)), route,
                          request.usage);
    request.answeredAtMs = at.toMSecsSinceEpoch();
    return request;
}

QDateTime utc(const char *text) {
    return QDateTime::fromString(QString::fromLatin1(text), Qt::ISODate).toUTC();
}

template <typename T>
T *child(QObject *root, const char *name) {
    return root->findChild<T *>(QString::fromLatin1(name));
}

// A report's rows as text, to compare two reports whole.
QString dump(const QList<LedgerRow> &rows) {
    QString out;
    for (const LedgerRow &r : rows)
        out += QStringLiteral("%1 %2: %3 %4 %5 %6 %7 %8 %9 %10 %11 %12\n")
                   .arg(r.hourMs)
                   .arg(QString::fromUtf8(r.model))
                   .arg(r.requests)
                   .arg(r.requestsWithoutUsage)
                   .arg(r.input)
                   .arg(r.cachedInput)
                   .arg(r.output)
                   .arg(r.reasoning)
                   .arg(r.paid)
                   .arg(r.list)
                   .arg(r.saved)
                   .arg(r.unknownCost);
    return out;
}

QString dump(const LedgerReport &report) {
    QStringList unpriced;
    for (const QByteArray &model : report.unpricedModels)
        unpriced.append(QString::fromUtf8(model));
    return dump(report.rows) + u"unpriced: "_qs + unpriced.join(u',');
}

QString labelText(QObject *root, const char *name) {
    auto *label = child<QLabel>(root, name);
    return label ? label->text() : QStringLiteral("<no %1>").arg(QString::fromLatin1(name));
}

} // namespace

class TestUiMoney final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void cleanup();

    void usdIsRoundedToCentsAndExactInFull_data();
    void usdIsRoundedToCentsAndExactInFull();
    void panelShowsTheLedgerExactlyAndNamesUnpricedModels();
    void withoutAStoreThePanelSaysSo();
    void chartDrawsPaidAgainstListPerDayAndNotesUnpricedRequests();
    void tallyFollowsAccountedRequestsWithoutReadingTheLedgerAgain();
    void liveFiguresBatchCostAndNotificationFromARunningProxy();
    void historyShowsEachBatchsCostAfterARestart();
    void overrideIsWrittenSoTheParserLoadsIt();
    void badFigureIsRefusedNextToItsField_data();
    void badFigureIsRefusedNextToItsField();
    void removingAnOverrideBringsTheShippedPriceBack();
    void savedPricesReachTheRunningProxy();

private:
    void startApp();
    void startProxy();
    void restartAppAndProxy();

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    std::unique_ptr<test::FakeProvider> m_fake;
    std::unique_ptr<ProxyHost> m_host;
    std::unique_ptr<test::TestClient> m_client;
    QTemporaryDir m_config; // XDG_CONFIG_HOME: where the proxy reads the override file
};

void TestUiMoney::initTestCase() {
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    QVERIFY(m_config.isValid());
    qputenv("XDG_CONFIG_HOME", m_config.path().toUtf8());
    QLocale::setDefault(QLocale(QLocale::English, QLocale::UnitedStates));
    QVERIFY(!shipped().models().isEmpty());
}

void TestUiMoney::cleanup() {
    if (m_host && m_host->state() != ProxyHost::State::Stopped &&
        m_host->state() != ProxyHost::State::NotStarted) {
        QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
        m_host->stop();
        QVERIFY(stopped.wait(10'000));
    }
    m_client.reset();
    m_host.reset();
    m_fake.reset();
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
    QFile::remove(PriceTable::defaultOverridePath());
}

void TestUiMoney::startApp() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-money"));
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data"));
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), config, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
}

void TestUiMoney::startProxy() {
    m_fake = std::make_unique<test::FakeProvider>();
    QVERIFY(m_fake->listen());
    m_fake->setValidationDelay(10ms);
    m_fake->setProcessingDelay(30ms);
    m_fake->setFinalizingDelay(10ms);
    Config config = m_settings->config();
    config.upstream = m_fake->baseUrl();
    config.batchWindow = 200ms;
    config.pollInterval = 40ms;
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    m_host->setMoneyInterval(100ms);
    // Wired as the composition root (app/main.cpp) wires them.
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::batchFinished, m_app.get(), &DesktopApp::showBatchFinished);
    connect(m_host.get(), &ProxyHost::moneyReady, m_app.get(), &DesktopApp::showMoney);
    connect(m_host.get(), &ProxyHost::pricesReloaded, m_app.get(), &DesktopApp::showPricesReloaded);
    connect(m_app.get(), &DesktopApp::pricesChanged, m_host.get(), &ProxyHost::reloadPrices);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(config);
    QVERIFY(started.wait(10'000));
    m_client = std::make_unique<test::TestClient>();
    m_client->setPort(started.constFirst().constFirst().value<QList<quint16>>().constFirst());
}

void TestUiMoney::restartAppAndProxy() {
    QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
    m_host->stop();
    QVERIFY(stopped.wait(10'000));
    m_client.reset();
    m_host.reset();
    m_fake.reset();
    m_app = std::make_unique<DesktopApp>(m_settings.get()); // the same settings and data folder
    m_app->show();
    startProxy();
}

void TestUiMoney::usdIsRoundedToCentsAndExactInFull_data() {
    QTest::addColumn<qint64>("picos");
    QTest::addColumn<QString>("shown");
    QTest::addColumn<QString>("exact");
    QTest::newRow("zero") << qint64(0) << QStringLiteral("$0.00") << QStringLiteral("$0 USD");
    QTest::newRow("cents") << 6'250'000'000'000LL << QStringLiteral("$6.25")
                           << QStringLiteral("$6.25 USD");
    QTest::newRow("grouped") << 1'234'567'891'000'000'000LL << QStringLiteral("$1,234,567.89")
                             << QStringLiteral("$1234567.891 USD");
    QTest::newRow("half a cent rounds up")
        << 5'000'000'000LL << QStringLiteral("$0.01") << QStringLiteral("$0.005 USD");
    QTest::newRow("under half a cent")
        << 3'150'000LL << QStringLiteral("< $0.01") << QStringLiteral("$0.00000315 USD");
    QTest::newRow("negative") << -4'204'999'999'999LL << QStringLiteral("-$4.20")
                              << QStringLiteral("-$4.204999999999 USD");
}

void TestUiMoney::usdIsRoundedToCentsAndExactInFull() {
    QFETCH(qint64, picos);
    QFETCH(QString, shown);
    QFETCH(QString, exact);
    QCOMPARE(money::usd(picos), shown);
    QCOMPARE(money::exactUsd(picos), exact);
}

void TestUiMoney::panelShowsTheLedgerExactlyAndNamesUnpricedModels() {
    QTemporaryDir dir;
    QString error;
    auto store = Store::open(dir.path(), &error);
    QVERIFY2(store, qPrintable(error));
    // Today: gpt-4o batched, 1M in + 1M out: paid 1.25 + 5, list 2.5 + 10; and a model
    // without a price. This month: gpt-4o-mini batched, 2M in + 1M out: paid 0.45, list 0.9.
    // Last month: gpt-4o relayed, 1M in: paid = list = 2.5.
    store->addToLedger(ledgerRowFor(
        answered(utc("2026-12-06T10:15:00Z"), "gpt-4o", Route::Batch, 1'000'000, 1'000'000)));
    store->addToLedger(
        ledgerRowFor(answered(utc("2026-12-06T11:00:00Z"), "mystery-model", Route::Batch, 10, 10)));
    store->addToLedger(ledgerRowFor(
        answered(utc("2026-12-02T09:00:00Z"), "gpt-4o-mini", Route::Batch, 2'000'000, 1'000'000)));
    store->addToLedger(
        ledgerRowFor(answered(utc("2026-11-20T09:00:00Z"), "gpt-4o", Route::Relay, 1'000'000, 0)));
    QVERIFY(store->commit());

    const MoneySummary summary =
        queryMoney(store.get(), MoneyPeriods::at(utc("2026-12-06T15:30:00Z")));
    QVERIFY2(summary.valid, qPrintable(summary.error));
    QCOMPARE(summary.today.total().saved, 6'250'000'000'000LL);
    QCOMPARE(summary.month.total().saved, 6'700'000'000'000LL);
    QCOMPARE(summary.allTime.total().paid, 9'200'000'000'000LL);
    QCOMPARE(summary.allTime.total().list, 15'900'000'000'000LL);

    MoneyPanel panel;
    panel.showSummary(summary);
    // Some of today's requests have no price: their cost is unknown, not $0.
    QCOMPARE(labelText(&panel, "savedTodayLabel"), QStringLiteral("$6.25 + unknown"));
    QVERIFY(child<QLabel>(&panel, "savedTodayLabel")
                ->toolTip()
                .startsWith(QStringLiteral("$6.25 USD, leaving out 1 request")));
    QCOMPARE(labelText(&panel, "savedMonthLabel"), QStringLiteral("$6.70 + unknown"));
    QCOMPARE(labelText(&panel, "savedAllTimeLabel"), QStringLiteral("$6.70 + unknown"));
    QCOMPARE(labelText(&panel, "paidAllTimeLabel"),
             QStringLiteral("paid $9.20 + unknown of $15.90 + unknown list"));
    QVERIFY(labelText(&panel, "moneyTokensLabel").contains(u"4,000,010 input tokens"));
    QVERIFY(labelText(&panel, "moneyTokensLabel").contains(u"2,000,010 output tokens"));
    auto *unknown = child<QLabel>(&panel, "unknownCostLabel");
    QVERIFY(!unknown->isHidden());
    QVERIFY2(unknown->text().startsWith(u"Cost unknown for: mystery-model."),
             qPrintable(unknown->text()));

    // Per model, since install: the unpriced model's money is "unknown", never $0.00.
    auto *models = child<QTableWidget>(&panel, "moneyModelsTable");
    QCOMPARE(models->rowCount(), 3);
    QHash<QString, int> rowOf;
    for (int row = 0; row < models->rowCount(); ++row)
        rowOf.insert(models->item(row, 0)->text(), row);
    QCOMPARE(models->item(rowOf.value(u"mystery-model"_qs), 4)->text(), QStringLiteral("unknown"));
    QCOMPARE(models->item(rowOf.value(u"mystery-model"_qs), 6)->text(), QStringLiteral("unknown"));
    // gpt-4o: 6.25 paid batched today, 2.5 relayed last month.
    QCOMPARE(models->item(rowOf.value(u"gpt-4o"_qs), 4)->text(), QStringLiteral("$8.75"));
    QCOMPARE(models->item(rowOf.value(u"gpt-4o"_qs), 6)->text(), QStringLiteral("$6.25"));
    QCOMPARE(models->item(rowOf.value(u"gpt-4o-mini"_qs), 6)->toolTip(),
             QStringLiteral("$0.45 USD"));

    // The tray says it too.
    AppActions actions;
    TrayController tray(&actions);
    tray.showMoney(summary);
    QVERIFY2(tray.toolTip().endsWith(u"\nSaved today: $6.25 + unknown"),
             qPrintable(tray.toolTip()));
}

void TestUiMoney::withoutAStoreThePanelSaysSo() {
    const MoneySummary summary =
        queryMoney(nullptr, MoneyPeriods::at(QDateTime::currentDateTime()));
    QVERIFY(!summary.valid);
    MoneyPanel panel;
    panel.showSummary(summary);
    QVERIFY(!child<QLabel>(&panel, "moneyErrorLabel")->isHidden());
    QVERIFY(labelText(&panel, "moneyErrorLabel").contains(u"keeps no ledger"));
    QCOMPARE(labelText(&panel, "savedTodayLabel"), QStringLiteral("–"));
    AppActions actions;
    TrayController tray(&actions);
    tray.showMoney(summary);
    QVERIFY(!tray.toolTip().contains(u"Saved"));
}

void TestUiMoney::chartDrawsPaidAgainstListPerDayAndNotesUnpricedRequests() {
    QTemporaryDir dir;
    auto store = Store::open(dir.path(), nullptr);
    QVERIFY(store);
    // Dec 6: gpt-4o batched, 1M in + 1M out: paid 6.25, list 12.5; a model without a price.
    // Dec 2: gpt-4o-mini batched, 2M in + 1M out: paid 0.45, list 0.9.
    // Nov 20: gpt-4o relayed, 1M in: paid = list = 2.5. Oct 1: outside the chart's four weeks.
    store->addToLedger(ledgerRowFor(
        answered(utc("2026-12-06T10:15:00Z"), "gpt-4o", Route::Batch, 1'000'000, 1'000'000)));
    store->addToLedger(
        ledgerRowFor(answered(utc("2026-12-06T11:00:00Z"), "mystery-model", Route::Batch, 10, 10)));
    store->addToLedger(ledgerRowFor(
        answered(utc("2026-12-02T09:00:00Z"), "gpt-4o-mini", Route::Batch, 2'000'000, 1'000'000)));
    store->addToLedger(
        ledgerRowFor(answered(utc("2026-11-20T09:00:00Z"), "gpt-4o", Route::Relay, 1'000'000, 0)));
    store->addToLedger(
        ledgerRowFor(answered(utc("2026-10-01T09:00:00Z"), "gpt-4o", Route::Relay, 1'000'000, 0)));
    QVERIFY(store->commit());

    const MoneySummary summary =
        queryMoney(store.get(), MoneyPeriods::at(utc("2026-12-06T15:30:00Z")));
    QVERIFY2(summary.valid, qPrintable(summary.error));
    QCOMPARE(summary.days.size(), 3);
    QCOMPARE(summary.days.at(2).paid, 6'250'000'000'000LL);
    QCOMPARE(summary.days.at(2).unknownCost, 1);

    MoneyPanel panel;
    panel.resize(900, 600);
    panel.showSummary(summary);
    MoneyChart *chart = panel.chart();
    QVERIFY(!chart->isHidden());
    QLineSeries *paid = chart->series(u"paidSeries"_qs);
    QLineSeries *list = chart->series(u"listSeries"_qs);
    QVERIFY(paid && list);
    QCOMPARE(paid->name(), QStringLiteral("paid"));
    QCOMPARE(list->name(), QStringLiteral("list price"));
    // One point a day from Nov 20 to Dec 6; a day without requests cost nothing.
    QCOMPARE(paid->count(), 17);
    QCOMPARE(list->count(), 17);
    const auto day = [](const char *date) { return double(utc(date).toMSecsSinceEpoch()); };
    QCOMPARE(paid->at(0), QPointF(day("2026-11-20T00:00:00Z"), 2.5));
    QCOMPARE(list->at(0), QPointF(day("2026-11-20T00:00:00Z"), 2.5));
    QCOMPARE(paid->at(1), QPointF(day("2026-11-21T00:00:00Z"), 0));
    QCOMPARE(paid->at(12), QPointF(day("2026-12-02T00:00:00Z"), 0.45));
    QCOMPARE(list->at(12), QPointF(day("2026-12-02T00:00:00Z"), 0.9));
    QCOMPARE(paid->at(16), QPointF(day("2026-12-06T00:00:00Z"), 6.25));
    QCOMPARE(list->at(16), QPointF(day("2026-12-06T00:00:00Z"), 12.5));
    // The day axis' ticks fall on midnights: 16 days in 4 intervals of 4 (6 ticks labelled
    // days 3.2 days apart).
    QCOMPARE(chart->dayTickCount(), 5);
    // The unpriced request is not drawn as $0: it is named under the chart.
    auto *note = child<QLabel>(chart, "chartUnknownLabel");
    QVERIFY(!note->isHidden());
    QCOMPARE(note->text(), QStringLiteral("1 request(s) of unpriced models not included"));
    // The money axis in the user's format.
    QCOMPARE(chart->valueLabels(),
             (QStringList{u"$0.00"_qs, u"$5.00"_qs, u"$10.00"_qs, u"$15.00"_qs, u"$20.00"_qs}));
    QLocale::setDefault(QLocale(QLocale::German, QLocale::Germany));
    chart->showSummary(summary);
    QCOMPARE(chart->valueLabels().at(1), QStringLiteral("$5,00"));
    QLocale::setDefault(QLocale(QLocale::English, QLocale::UnitedStates));

    // All priced: no note. Nothing counted in the last four weeks, or no ledger: no chart.
    MoneySummary priced = summary;
    priced.days = {summary.days.at(1)}; // Dec 2 only: the chart shows a week back from today
    chart->showSummary(priced);
    QVERIFY(note->isHidden());
    QCOMPARE(paid->count(), 7);
    QCOMPARE(paid->at(0), QPointF(day("2026-11-30T00:00:00Z"), 0));
    QCOMPARE(paid->at(2), QPointF(day("2026-12-02T00:00:00Z"), 0.45));
    MoneySummary quiet = summary;
    quiet.days.clear();
    panel.showSummary(quiet);
    QVERIFY(chart->isHidden());
    panel.showSummary(queryMoney(nullptr, summary.periods));
    QVERIFY(chart->isHidden());
}

void TestUiMoney::tallyFollowsAccountedRequestsWithoutReadingTheLedgerAgain() {
    QTemporaryDir dir;
    auto store = Store::open(dir.path(), nullptr);
    QVERIFY(store);
    // A year of use up to this morning: 365 days x 24 hours x 3 models.
    const QDateTime start = utc("2025-12-06T10:00:00Z");
    const QByteArray models[] = {"gpt-4o", "gpt-4o-mini", "mystery-model"};
    for (int hour = 0; hour < 365 * 24; ++hour) {
        for (const QByteArray &model : models)
            store->addToLedger(ledgerRowFor(
                answered(start.addSecs(qint64(hour) * 3600), model, Route::Batch, 1000, 100)));
    }
    QVERIFY(store->commit());

    const MoneyPeriods morning = MoneyPeriods::at(utc("2026-12-06T09:30:00Z"));
    MoneyTally tally;
    QElapsedTimer timer;
    timer.start();
    const MoneySummary first = tally.summary(store.get(), morning);
    const qint64 readNs = timer.nsecsElapsed();
    QVERIFY(first.valid);
    QCOMPARE(tally.reads(), 1);

    // Requests accounted through the day, as the core writes and signals them: new models, an
    // unpriced one, a relayed one, one without usage.
    const MoneyPeriods evening = MoneyPeriods::at(utc("2026-12-06T21:00:00Z"));
    qint64 tallyNs = 0;
    for (int i = 0; i < 50; ++i) {
        AccountedRequest request = answered(utc("2026-12-06T10:00:00Z").addSecs(i * 600),
                                            i % 5 == 0 ? QByteArray("o3-mini") : models[i % 3],
                                            i % 2 ? Route::Relay : Route::Batch, 100 + i, 10 + i);
        if (i % 7 == 0) {
            request.model = "never-priced";
            request.cost = Cost{};
        }
        if (i == 13)
            request.usage = Usage{};
        store->addToLedger(ledgerRowFor(request));
        timer.restart();
        tally.add(request);
        tally.summary(store.get(), evening);
        tallyNs += timer.nsecsElapsed();
    }
    QVERIFY(store->commit());
    QCOMPARE(tally.reads(), 1);
    timer.restart();
    const MoneySummary read = queryMoney(store.get(), evening);
    const qint64 fullNs = timer.nsecsElapsed();
    const MoneySummary kept = tally.summary(store.get(), evening);
    QCOMPARE(tally.reads(), 1);
    QCOMPARE(dump(kept.today), dump(read.today));
    QCOMPARE(dump(kept.month), dump(read.month));
    QCOMPARE(dump(kept.allTime), dump(read.allTime));
    QCOMPARE(dump(kept.days), dump(read.days));
    QVERIFY(kept.today.unpricedModels.contains("never-priced"));
    QCOMPARE(kept.periods.nowMs, evening.nowMs);
    qInfo("money figures over %lld ledger rows: read in full %.1f ms (and %.1f ms), kept up to "
          "date %.3f ms per accounted request",
          qint64(365 * 24 * 3), double(readNs) / 1e6, double(fullNs) / 1e6,
          double(tallyNs) / 50 / 1e6);

    // The next day: today, the month and the chart's days move, so the ledger is read again.
    const MoneySummary tomorrow =
        tally.summary(store.get(), MoneyPeriods::at(utc("2026-12-07T00:10:00Z")));
    QCOMPARE(tally.reads(), 2);
    QCOMPARE(tomorrow.today.total().requests, 0);
    QCOMPARE(tomorrow.allTime.total().requests, read.allTime.total().requests);
}

void TestUiMoney::liveFiguresBatchCostAndNotificationFromARunningProxy() {
    startApp();
    startProxy();
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    QSignalSpy money(m_host.get(), &ProxyHost::moneyReady);
    QList<QNetworkReply *> replies;
    for (const QByteArray &content : {QByteArray("a"), QByteArray("b c"), QByteArray("d e f")})
        replies.append(m_client->send("POST", "/v1/chat/completions", test::chatBody(content)));
    for (QNetworkReply *reply : std::as_const(replies)) {
        QVERIFY(test::TestClient::finished(reply));
        QCOMPARE(test::TestClient::status(reply), 200);
    }
    // Batch: 6 input, 9 output tokens. paid = 6 x 75,000 + 9 x 300,000 = 3,150,000 pico-USD;
    // list = 6 x 150,000 + 9 x 600,000 = 6,300,000; saved 3,150,000. No request: no query.
    QTRY_VERIFY_WITH_TIMEOUT(
        !money.isEmpty() &&
            money.constLast().constFirst().value<MoneySummary>().allTime.total().requests == 3,
        10'000);
    const MoneySummary summary = money.constLast().constFirst().value<MoneySummary>();
    QCOMPARE(summary.allTime.total().paid, 3'150'000LL);
    QCOMPARE(summary.today.total().list, 6'300'000LL);
    DashboardPage *dashboard = m_app->window()->dashboard();
    // The spy hears the signal on the proxy's thread; the window a moment later, queued.
    QTRY_COMPARE(labelText(dashboard, "savedTodayLabel"), QStringLiteral("< $0.01"));
    QCOMPARE(child<QLabel>(dashboard, "savedTodayLabel")->toolTip(),
             QStringLiteral("$0.00000315 USD"));
    QCOMPARE(child<QLabel>(dashboard, "paidAllTimeLabel")->toolTip(),
             QStringLiteral("Paid $0.00000315 USD\nList price $0.0000063 USD"));
    QVERIFY(m_app->tray()->toolTip().endsWith(u"\nSaved today: < $0.01"));
    // The chart has today's point: what the batch paid against its list price, in USD, on an
    // axis fine enough to show it.
    MoneyChart *chart = dashboard->money()->chart();
    QVERIFY(!chart->isHidden());
    QCOMPARE(chart->series(u"paidSeries"_qs)->points().constLast().y(), 0.00000315);
    QCOMPARE(chart->series(u"listSeries"_qs)->points().constLast().y(), 0.0000063);
    QCOMPARE(chart->valueLabels().constLast(), QStringLiteral("$0.0000100"));

    // The history: the batch's tokens and cost, exact in the tooltip and the details.
    BatchTableModel *finished = m_app->finishedModel();
    QTRY_COMPARE_WITH_TIMEOUT(finished->rowCount(), 1, 10'000);
    QCOMPARE(finished->index(0, BatchTableModel::TokensColumn).data().toString(),
             QStringLiteral("15"));
    QCOMPARE(finished->index(0, BatchTableModel::PaidColumn).data().toString(),
             QStringLiteral("< $0.01"));
    QCOMPARE(finished->index(0, BatchTableModel::PaidColumn)
                 .data(BatchTableModel::SortRole)
                 .toLongLong(),
             3'150'000LL);
    QCOMPARE(finished->index(0, BatchTableModel::SavedColumn).data(Qt::ToolTipRole).toString(),
             QStringLiteral("$0.00000315 USD"));
    QCOMPARE(finished->headerData(BatchTableModel::SavedColumn, Qt::Horizontal).toString(),
             QStringLiteral("Saved"));
    const QString details = BatchDetails::html(finished->batchAt(0));
    QVERIFY(details.contains(u"$0.0000063 USD"));
    QVERIFY(details.contains(u"6 (0 cached)"));

    // The notification says what the batch saved.
    QTRY_VERIFY(!notified.isEmpty());
    const QString message = notified.constLast().at(1).toString();
    QVERIFY2(message.contains(u"Saved < $0.01 (paid < $0.01 instead of < $0.01)"),
             qPrintable(message));
}

void TestUiMoney::historyShowsEachBatchsCostAfterARestart() {
    startApp();
    startProxy();
    QNetworkReply *reply = m_client->send("POST", "/v1/chat/completions", test::chatBody("a b"));
    QVERIFY(test::TestClient::finished(reply));
    QCOMPARE(test::TestClient::status(reply), 200);
    QTRY_COMPARE_WITH_TIMEOUT(m_app->finishedModel()->rowCount(), 1, 10'000);

    restartAppAndProxy();
    // 2 input + 3 output tokens; paid 2 x 75,000 + 3 x 300,000, list 2 x 150,000 + 3 x 600,000.
    BatchTableModel *finished = m_app->finishedModel();
    QTRY_COMPARE_WITH_TIMEOUT(finished->rowCount(), 1, 10'000);
    QCOMPARE(finished->index(0, BatchTableModel::TokensColumn).data().toString(),
             QStringLiteral("5"));
    QCOMPARE(finished->index(0, BatchTableModel::PaidColumn)
                 .data(BatchTableModel::SortRole)
                 .toLongLong(),
             1'050'000LL);
    QCOMPARE(finished->index(0, BatchTableModel::SavedColumn).data(Qt::ToolTipRole).toString(),
             QStringLiteral("$0.00000105 USD"));
    QVERIFY(BatchDetails::html(finished->batchAt(0)).contains(u"$0.0000021 USD"));
}

void TestUiMoney::overrideIsWrittenSoTheParserLoadsIt() {
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("prices.json"));
    PricesSettings prices;
    prices.setOverridePath(path);
    QSignalSpy saved(&prices, &PricesSettings::pricesSaved);
    prices.editModel(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini"), Tier::Batch);
    QCOMPARE(child<QLineEdit>(&prices, "priceInputEdit")->text(), QStringLiteral("0.075"));
    QCOMPARE(child<QLineEdit>(&prices, "priceOutputEdit")->text(), QStringLiteral("0.3"));
    child<QLineEdit>(&prices, "priceInputEdit")->setText(QStringLiteral("0.05"));
    child<QLineEdit>(&prices, "priceCachedInputEdit")->setText(QStringLiteral("0.025"));
    child<QLineEdit>(&prices, "priceOutputEdit")->setText(QStringLiteral("0.123456"));
    child<QPushButton>(&prices, "savePriceButton")->click();
    QCOMPARE(saved.size(), 1);

    // The proxy's own parser loads the file, and the figures are exact.
    QString error;
    const auto overrides = PriceTable::readFile(path, &error);
    QVERIFY2(overrides, qPrintable(error));
    const LoadedPrices loaded = loadPrices(path);
    QVERIFY2(loaded.error.isEmpty(), qPrintable(loaded.error));
    const ModelPrices *mini =
        loaded.table.find(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini-2024-07-18"));
    QVERIFY(mini);
    QCOMPARE(mini->batch->input, 50'000LL);
    QCOMPARE(mini->batch->cachedInput, std::optional<MicroUsdPerMillion>(25'000));
    QCOMPARE(mini->batch->output, std::optional<MicroUsdPerMillion>(123'456));
    QCOMPARE(mini->batch->date, QDate::currentDate().toString(Qt::ISODate));
    QCOMPARE(mini->standard, shipped().find(u"openai"_qs, u"gpt-4o-mini"_qs)->standard);
    // Other models keep the shipped prices.
    QCOMPARE(loaded.table.find(u"openai"_qs, u"gpt-4o"_qs)->batch,
             shipped().find(u"openai"_qs, u"gpt-4o"_qs)->batch);
    // The table shows it as the user's.
    auto *table = child<QTableWidget>(&prices, "pricesTable");
    bool shownAsYours = false;
    for (int row = 0; row < table->rowCount(); ++row) {
        if (table->item(row, 1)->text() == u"gpt-4o-mini" &&
            table->item(row, 2)->text() == u"batch")
            shownAsYours =
                table->item(row, 3)->text() == u"0.05" && table->item(row, 6)->text() == u"you";
    }
    QVERIFY(shownAsYours);
    QVERIFY(labelText(&prices, "priceMessageLabel").startsWith(u"Saved to "));
}

void TestUiMoney::badFigureIsRefusedNextToItsField_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("errorLabel");
    QTest::newRow("negative") << u"priceInputEdit"_qs << u"-1"_qs << u"priceInputError"_qs;
    QTest::newRow("not a number") << u"priceInputEdit"_qs << u"cheap"_qs << u"priceInputError"_qs;
    QTest::newRow("too many decimals")
        << u"priceOutputEdit"_qs << u"0.1234567"_qs << u"priceOutputError"_qs;
    QTest::newRow("exponent") << u"priceCachedInputEdit"_qs << u"1e-3"_qs
                              << u"priceCachedInputError"_qs;
    QTest::newRow("empty input") << u"priceInputEdit"_qs << QString() << u"priceInputError"_qs;
    QTest::newRow("source not a web page")
        << u"priceSourceEdit"_qs << u"ftp://example.com/prices"_qs << u"priceSourceError"_qs;
    QTest::newRow("no model") << u"priceModelEdit"_qs << QString() << u"priceModelError"_qs;
}

void TestUiMoney::badFigureIsRefusedNextToItsField() {
    QFETCH(QString, field);
    QFETCH(QString, text);
    QFETCH(QString, errorLabel);
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("prices.json"));
    PricesSettings prices;
    prices.setOverridePath(path);
    QSignalSpy saved(&prices, &PricesSettings::pricesSaved);
    prices.editModel(QStringLiteral("openai"), QStringLiteral("gpt-4o"), Tier::Standard);
    prices.findChild<QLineEdit *>(field)->setText(text);
    child<QPushButton>(&prices, "savePriceButton")->click();
    QCOMPARE(saved.size(), 0);
    QVERIFY(!QFile::exists(path)); // nothing saved
    auto *error = prices.findChild<QLabel *>(errorLabel);
    QVERIFY(error);
    QVERIFY2(!error->text().isEmpty(), qPrintable(errorLabel));
    QVERIFY(labelText(&prices, "priceMessageLabel").startsWith(u"Nothing saved"));
    // Every other field is left unmarked.
    for (QLabel *other : prices.findChildren<QLabel *>()) {
        if (other->objectName().endsWith(u"Error") && other != error)
            QVERIFY2(other->text().isEmpty(), qPrintable(other->objectName()));
    }
}

void TestUiMoney::removingAnOverrideBringsTheShippedPriceBack() {
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("prices.json"));
    PricesSettings prices;
    prices.setOverridePath(path);
    prices.editModel(QStringLiteral("openai"), QStringLiteral("gpt-4o"), Tier::Standard);
    QVERIFY(!child<QPushButton>(&prices, "removePriceButton")->isEnabled());
    child<QLineEdit>(&prices, "priceInputEdit")->setText(QStringLiteral("3"));
    prices.save();
    QCOMPARE(prices.table().find(u"openai"_qs, u"gpt-4o"_qs)->standard.input, 3'000'000LL);
    QVERIFY(child<QPushButton>(&prices, "removePriceButton")->isEnabled());
    QSignalSpy saved(&prices, &PricesSettings::pricesSaved);
    child<QPushButton>(&prices, "removePriceButton")->click();
    QCOMPARE(saved.size(), 1);
    QCOMPARE(prices.table().find(u"openai"_qs, u"gpt-4o"_qs)->standard,
             shipped().find(u"openai"_qs, u"gpt-4o"_qs)->standard);
    QString error;
    QVERIFY2(PriceTable::readFile(path, &error), qPrintable(error)); // still a valid file
}

void TestUiMoney::savedPricesReachTheRunningProxy() {
    startApp();
    startProxy();
    QSignalSpy reloaded(m_host.get(), &ProxyHost::pricesReloaded);
    // The settings window writes the file the proxy reads (XDG_CONFIG_HOME here).
    PricesSettings *prices = m_app->window()->settings()->prices();
    QCOMPARE(prices->overridePath(), PriceTable::defaultOverridePath());
    prices->editModel(QStringLiteral("openai"), QStringLiteral("gpt-4o-mini"), Tier::Batch);
    child<QLineEdit>(prices, "priceInputEdit")->setText(QStringLiteral("1"));
    child<QLineEdit>(prices, "priceOutputEdit")->setText(QStringLiteral("2"));
    prices->save();
    // Emitted on the proxy's thread, maybe before wait() would start listening: a count.
    QTRY_VERIFY_WITH_TIMEOUT(!reloaded.isEmpty(), 10'000);
    QCOMPARE(reloaded.constFirst().constFirst().toString(), QString());
    QTRY_VERIFY(labelText(prices, "priceMessageLabel").contains(u"from now on")); // queued

    QSignalSpy money(m_host.get(), &ProxyHost::moneyReady);
    QNetworkReply *reply = m_client->send("POST", "/v1/chat/completions", test::chatBody("a b"));
    QVERIFY(test::TestClient::finished(reply));
    QCOMPARE(test::TestClient::status(reply), 200);
    // 2 input x 1,000,000 + 3 output x 2,000,000 pico-USD, at the new batch price.
    QTRY_VERIFY_WITH_TIMEOUT(
        !money.isEmpty() &&
            money.constLast().constFirst().value<MoneySummary>().allTime.total().requests == 1,
        10'000);
    QCOMPARE(money.constLast().constFirst().value<MoneySummary>().allTime.total().paid,
             8'000'000LL);
}

QTEST_MAIN(TestUiMoney)
#include "tst_ui_money.moc"
