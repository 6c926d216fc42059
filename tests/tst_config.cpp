// SPDX-License-Identifier: GPL-3.0-or-later
// The configuration parsers and the command line: durations, sizes, listen addresses, every
// option in both syntaxes, every error path, help, version and the API key.

#include "settings/config.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <limits>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace llmproxy::test {

// The option's field rendered as text, so one data table can check every option.
QString fieldText(const Config &config, const QString &field) {
    if (field == QLatin1StringView("listen")) {
        QStringList parts;
        for (const ListenAddress &listen : config.listen)
            parts.append(listen.address.toString() + u' ' + QString::number(listen.port));
        return parts.join(u';');
    }
    if (field == QLatin1StringView("listenText"))
        return config.listenText;
    if (field == QLatin1StringView("upstream"))
        return config.upstream.toString();
    if (field == QLatin1StringView("batchWindow"))
        return QString::number(config.batchWindow.count());
    if (field == QLatin1StringView("batchSize"))
        return QString::number(config.batchSize);
    if (field == QLatin1StringView("batchBytes"))
        return QString::number(config.batchBytes);
    if (field == QLatin1StringView("pollInterval"))
        return QString::number(config.pollInterval.count());
    if (field == QLatin1StringView("gracePeriod"))
        return config.gracePeriod ? QString::number(config.gracePeriod->count())
                                  : QStringLiteral("off");
    if (field == QLatin1StringView("resultTtl"))
        return QString::number(config.resultTtl.count());
    if (field == QLatin1StringView("cache"))
        return config.cache ? QString::number(config.cache->count()) : QStringLiteral("off");
    if (field == QLatin1StringView("cacheMaxBytes"))
        return QString::number(config.cacheMaxBytes);
    if (field == QLatin1StringView("dataDir"))
        return config.dataDir;
    if (field == QLatin1StringView("maxBody"))
        return QString::number(config.maxBody);
    if (field == QLatin1StringView("verbose"))
        return config.verbose ? QStringLiteral("true") : QStringLiteral("false");
    if (field == QLatin1StringView("noGui"))
        return config.noGui ? QStringLiteral("true") : QStringLiteral("false");
    if (field == QLatin1StringView("startInTray"))
        return config.startInTray ? QStringLiteral("true") : QStringLiteral("false");
    if (field == QLatin1StringView("inMemory"))
        return config.inMemory ? QStringLiteral("true") : QStringLiteral("false");
    if (field == QLatin1StringView("ioThreads"))
        return QString::number(config.ioThreads);
    // The front door's limits (issue 9).
    const FrontDoorLimits &door = config.frontDoor;
    if (field == QLatin1StringView("headerTimeout"))
        return QString::number(door.headerTimeout.count());
    if (field == QLatin1StringView("headerTimeoutMax"))
        return QString::number(door.headerTimeoutMax.count());
    if (field == QLatin1StringView("bodyTimeout"))
        return QString::number(door.bodyTimeout.count());
    if (field == QLatin1StringView("minRate"))
        return QString::number(door.minRate);
    if (field == QLatin1StringView("maxConnections"))
        return QString::number(door.maxConnections);
    if (field == QLatin1StringView("maxConnectionsPerIp"))
        return QString::number(door.maxConnectionsPerIp);
    if (field == QLatin1StringView("maxPipelined"))
        return QString::number(door.maxPipelined);
    if (field == QLatin1StringView("maxOutputBuffer"))
        return QString::number(door.maxOutputBuffer);
    return QStringLiteral("<unknown field %1>").arg(field);
}

QStringList withProgram(const QStringList &args) {
    return QStringList{QStringLiteral("llm-proxy")} + args;
}

QStringList addressTexts(const QList<ListenAddress> &addresses) {
    QStringList texts;
    for (const ListenAddress &listen : addresses)
        texts.append(listen.address.toString());
    return texts;
}

} // namespace llmproxy::test

using namespace llmproxy::test;

class TestConfig final : public QObject {
    Q_OBJECT

private slots:
    void init();
    void cleanup();

    void parseDuration_data();
    void parseDuration();
    void parseSize_data();
    void parseSize();
    void parseListen_data();
    void parseListen();

    void defaults();
    void emptyArgumentList();
    void defaultDataDirWithoutApplicationName();
    void defaultDataDirWithApplicationName();
    void options_data();
    void options();
    void otherFieldsKeepDefaults();
    void errors_data();
    void errors();
    void errorMessageExample();
    void gracePeriodSetting_data();
    void gracePeriodSetting();
    void streamSettings();
    void inMemory();
    void errorsNeverShowTheKey_data();
    void errorsNeverShowTheKey();
    void help_data();
    void help();
    void helpIsComplete();
    void version();
    void everyDeclarationIsInTheHelp();
    void everyOptionInTheHelpIsParsed();
    void defaultsRoundTripThroughTheirText();
    void boundsAreTheDeclarations();
    void repeatedOptions();
    void apiKey_data();
    void apiKey();
    void frontDoorOptions();
    void frontDoorErrors_data();
    void frontDoorErrors();
    void tokensFile();
    void defaultTokensFileIsReadWhenPresent();
    void offLoopbackNeedsATokenWithAConfiguredKey_data();
    void offLoopbackNeedsATokenWithAConfiguredKey();
};

void TestConfig::init() {
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setApplicationName(QString());
}

void TestConfig::cleanup() {
    QCoreApplication::setApplicationName(QString());
}

// ---- parseDuration ------------------------------------------------------------------------

void TestConfig::parseDuration_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<qint64>("expectedMs"); // -1: must be refused

    QTest::newRow("zero") << QStringLiteral("0") << qint64(0);
    QTest::newRow("half second") << QStringLiteral("0.5") << qint64(500);
    QTest::newRow("bare seconds") << QStringLiteral("4") << qint64(4000);
    QTest::newRow("seconds") << QStringLiteral("4s") << qint64(4000);
    QTest::newRow("fractional seconds") << QStringLiteral("1.5s") << qint64(1500);
    QTest::newRow("milliseconds") << QStringLiteral("250ms") << qint64(250);
    QTest::newRow("minutes") << QStringLiteral("2m") << qint64(120'000);
    QTest::newRow("hours") << QStringLiteral("1h") << qint64(3'600'000);
    QTest::newRow("fractional hours") << QStringLiteral("1.5h") << qint64(5'400'000);
    QTest::newRow("24 hours") << QStringLiteral("24h") << qint64(86'400'000);
    QTest::newRow("upper-case unit") << QStringLiteral("4S") << qint64(4000);
    QTest::newRow("upper-case ms") << QStringLiteral("500MS") << qint64(500);
    QTest::newRow("space before unit") << QStringLiteral("4 s") << qint64(4000);
    QTest::newRow("surrounding spaces") << QStringLiteral("  10s ") << qint64(10'000);
    QTest::newRow("leading dot") << QStringLiteral(".5") << qint64(500);
    QTest::newRow("trailing dot") << QStringLiteral("5.") << qint64(5000);
    QTest::newRow("leading zeros") << QStringLiteral("007s") << qint64(7000);
    QTest::newRow("rounds down") << QStringLiteral("0.0004") << qint64(0);
    QTest::newRow("rounds half up") << QStringLiteral("0.0005") << qint64(1);
    QTest::newRow("sub-millisecond") << QStringLiteral("1.4ms") << qint64(1);
    QTest::newRow("many fraction digits")
        << QStringLiteral("0.12345678901234567890") << qint64(123);
    QTest::newRow("large but fits") << QStringLiteral("1000000h") << qint64(3'600'000'000'000);

    QTest::newRow("empty") << QString() << qint64(-1);
    QTest::newRow("blank") << QStringLiteral("   ") << qint64(-1);
    QTest::newRow("negative") << QStringLiteral("-1") << qint64(-1);
    QTest::newRow("negative with unit") << QStringLiteral("-5s") << qint64(-1);
    QTest::newRow("plus sign") << QStringLiteral("+1") << qint64(-1);
    QTest::newRow("exponent") << QStringLiteral("1e3") << qint64(-1);
    QTest::newRow("unknown unit") << QStringLiteral("4x") << qint64(-1);
    QTest::newRow("long unit name") << QStringLiteral("4sec") << qint64(-1);
    QTest::newRow("days not supported") << QStringLiteral("1d") << qint64(-1);
    QTest::newRow("compound") << QStringLiteral("1h30m") << qint64(-1);
    QTest::newRow("unit only") << QStringLiteral("s") << qint64(-1);
    QTest::newRow("dot only") << QStringLiteral(".") << qint64(-1);
    QTest::newRow("two dots") << QStringLiteral("1.2.3") << qint64(-1);
    QTest::newRow("decimal comma") << QStringLiteral("1,5") << qint64(-1);
    QTest::newRow("trailing garbage") << QStringLiteral("4s x") << qint64(-1);
    QTest::newRow("hex") << QStringLiteral("0x10") << qint64(-1);
    QTest::newRow("non-ASCII digit") << QString(QChar(0x0663)) << qint64(-1);
    QTest::newRow("overflow digits") << QStringLiteral("99999999999999999999") << qint64(-1);
    QTest::newRow("overflow by unit") << QStringLiteral("9999999999999999h") << qint64(-1);
}

void TestConfig::parseDuration() {
    QFETCH(QString, text);
    QFETCH(qint64, expectedMs);

    const auto result = llmproxy::parseDuration(text);
    if (expectedMs < 0) {
        QVERIFY2(!result.has_value(), qPrintable(QString::number(result.value_or(0ms).count())));
    } else {
        QVERIFY(result.has_value());
        QCOMPARE(result->count(), expectedMs);
    }
}

// ---- parseSize ----------------------------------------------------------------------------

void TestConfig::parseSize_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<qint64>("expected"); // -1: must be refused

    QTest::newRow("zero") << QStringLiteral("0") << qint64(0);
    QTest::newRow("bytes") << QStringLiteral("1000") << qint64(1000);
    QTest::newRow("B") << QStringLiteral("100B") << qint64(100);
    QTest::newRow("KB") << QStringLiteral("1KB") << qint64(1000);
    QTest::newRow("KiB") << QStringLiteral("1KiB") << qint64(1024);
    QTest::newRow("MB") << QStringLiteral("25MB") << qint64(25'000'000);
    QTest::newRow("MiB") << QStringLiteral("32MiB") << qint64(32 * 1024 * 1024);
    QTest::newRow("GB") << QStringLiteral("1GB") << qint64(1'000'000'000);
    QTest::newRow("GiB") << QStringLiteral("1GiB") << qint64(1024 * 1024 * 1024);
    QTest::newRow("lower-case unit") << QStringLiteral("25mb") << qint64(25'000'000);
    QTest::newRow("mixed-case unit") << QStringLiteral("2kIb") << qint64(2048);
    QTest::newRow("space before unit") << QStringLiteral("10 MB") << qint64(10'000'000);
    QTest::newRow("surrounding spaces") << QStringLiteral(" 10MB  ") << qint64(10'000'000);
    QTest::newRow("decimal MB") << QStringLiteral("1.5MB") << qint64(1'500'000);
    QTest::newRow("decimal KiB") << QStringLiteral("0.5KiB") << qint64(512);
    QTest::newRow("decimal GiB") << QStringLiteral("1.5GiB") << qint64(1'610'612'736);
    QTest::newRow("fraction of a byte rounds") << QStringLiteral("1.5") << qint64(2);
    QTest::newRow("200MB") << QStringLiteral("200MB") << qint64(200'000'000);
    QTest::newRow("largest qint64")
        << QStringLiteral("9223372036854775807") << std::numeric_limits<qint64>::max();
    QTest::newRow("large GB fits")
        << QStringLiteral("9000000000GB") << qint64(9'000'000'000'000'000'000);

    QTest::newRow("empty") << QString() << qint64(-1);
    QTest::newRow("negative") << QStringLiteral("-1") << qint64(-1);
    QTest::newRow("negative with unit") << QStringLiteral("-1MB") << qint64(-1);
    QTest::newRow("exponent") << QStringLiteral("1e3") << qint64(-1);
    QTest::newRow("unit only") << QStringLiteral("MB") << qint64(-1);
    QTest::newRow("terabytes not supported") << QStringLiteral("1TB") << qint64(-1);
    QTest::newRow("bare K") << QStringLiteral("1K") << qint64(-1);
    QTest::newRow("doubled unit") << QStringLiteral("1KBB") << qint64(-1);
    QTest::newRow("space inside unit") << QStringLiteral("10 M B") << qint64(-1);
    QTest::newRow("two dots") << QStringLiteral("1.5.5MB") << qint64(-1);
    QTest::newRow("thousands separator") << QStringLiteral("1,000") << qint64(-1);
    QTest::newRow("one past qint64") << QStringLiteral("9223372036854775808") << qint64(-1);
    QTest::newRow("overflow with unit") << QStringLiteral("99999999999999999999GB") << qint64(-1);
    QTest::newRow("overflow by unit") << QStringLiteral("10000000000GB") << qint64(-1);
}

void TestConfig::parseSize() {
    QFETCH(QString, text);
    QFETCH(qint64, expected);

    const auto result = llmproxy::parseSize(text);
    if (expected < 0) {
        QVERIFY2(!result.has_value(), qPrintable(QString::number(result.value_or(0))));
    } else {
        QVERIFY(result.has_value());
        QCOMPARE(*result, expected);
    }
}

// ---- parseListen --------------------------------------------------------------------------

void TestConfig::parseListen_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("valid");
    QTest::addColumn<QStringList>("addresses");
    QTest::addColumn<int>("port");

    const QStringList loopbacks{QStringLiteral("127.0.0.1"), QStringLiteral("::1")};
    const QStringList any{QStringLiteral("0.0.0.0"), QStringLiteral("::")};

    QTest::newRow("IPv4") << QStringLiteral("127.0.0.1:3030") << true
                          << QStringList{QStringLiteral("127.0.0.1")} << 3030;
    QTest::newRow("IPv6") << QStringLiteral("[::1]:3030") << true
                          << QStringList{QStringLiteral("::1")} << 3030;
    QTest::newRow("localhost") << QStringLiteral("localhost:3030") << true << loopbacks << 3030;
    QTest::newRow("LOCALHOST") << QStringLiteral("LOCALHOST:8080") << true << loopbacks << 8080;
    QTest::newRow("localhost ephemeral") << QStringLiteral("localhost:0") << true << loopbacks << 0;
    QTest::newRow("all interfaces") << QStringLiteral(":3030") << true << any << 3030;
    QTest::newRow("IPv4 any") << QStringLiteral("0.0.0.0:80") << true
                              << QStringList{QStringLiteral("0.0.0.0")} << 80;
    QTest::newRow("IPv6 any") << QStringLiteral("[::]:443") << true
                              << QStringList{QStringLiteral("::")} << 443;
    QTest::newRow("LAN address, top port") << QStringLiteral("192.168.1.10:65535") << true
                                           << QStringList{QStringLiteral("192.168.1.10")} << 65535;
    QTest::newRow("port 1") << QStringLiteral("127.0.0.1:1") << true
                            << QStringList{QStringLiteral("127.0.0.1")} << 1;
    QTest::newRow("full IPv6") << QStringLiteral("[2001:db8::42]:9000") << true
                               << QStringList{QStringLiteral("2001:db8::42")} << 9000;
    QTest::newRow("surrounding spaces") << QStringLiteral(" 127.0.0.1:3030 ") << true
                                        << QStringList{QStringLiteral("127.0.0.1")} << 3030;

    QTest::newRow("empty") << QString() << false << QStringList() << 0;
    QTest::newRow("colon only") << QStringLiteral(":") << false << QStringList() << 0;
    QTest::newRow("IPv4 missing port")
        << QStringLiteral("127.0.0.1") << false << QStringList() << 0;
    QTest::newRow("IPv4 empty port") << QStringLiteral("127.0.0.1:") << false << QStringList() << 0;
    QTest::newRow("localhost missing port")
        << QStringLiteral("localhost") << false << QStringList() << 0;
    QTest::newRow("IPv6 missing port") << QStringLiteral("[::1]") << false << QStringList() << 0;
    QTest::newRow("IPv6 without brackets")
        << QStringLiteral("::1:3030") << false << QStringList() << 0;
    QTest::newRow("unclosed bracket") << QStringLiteral("[::1:3030") << false << QStringList() << 0;
    QTest::newRow("empty brackets") << QStringLiteral("[]:80") << false << QStringList() << 0;
    QTest::newRow("IPv4 in brackets")
        << QStringLiteral("[127.0.0.1]:80") << false << QStringList() << 0;
    QTest::newRow("port too large") << QStringLiteral(":65536") << false << QStringList() << 0;
    QTest::newRow("port overflow") << QStringLiteral(":99999999999") << false << QStringList() << 0;
    QTest::newRow("negative port") << QStringLiteral(":-1") << false << QStringList() << 0;
    QTest::newRow("port with letters")
        << QStringLiteral("127.0.0.1:30a") << false << QStringList() << 0;
    QTest::newRow("space before port")
        << QStringLiteral("127.0.0.1: 3030") << false << QStringList() << 0;
    QTest::newRow("short IPv4") << QStringLiteral("127.1:3030") << false << QStringList() << 0;
    QTest::newRow("IPv4 part too big")
        << QStringLiteral("256.0.0.1:80") << false << QStringList() << 0;
    QTest::newRow("host name") << QStringLiteral("example.com:80") << false << QStringList() << 0;
    QTest::newRow("URL") << QStringLiteral("http://127.0.0.1:80") << false << QStringList() << 0;
}

void TestConfig::parseListen() {
    QFETCH(QString, text);
    QFETCH(bool, valid);
    QFETCH(QStringList, addresses);
    QFETCH(int, port);

    const auto result = llmproxy::parseListen(text);
    if (!valid) {
        QVERIFY2(!result.has_value(),
                 qPrintable(addressTexts(result.value_or(QList<ListenAddress>())).join(u' ')));
        return;
    }
    QVERIFY(result.has_value());
    QCOMPARE(addressTexts(*result), addresses);
    for (const ListenAddress &listen : *result)
        QCOMPARE(int(listen.port), port);
}

// ---- parseCommandLine ---------------------------------------------------------------------

void TestConfig::defaults() {
    const CommandLine line = parseCommandLine(withProgram({}));
    QCOMPARE(line.action, CommandLine::Action::Run);
    QVERIFY(line.message.isEmpty());
    const Config &config = line.config;
    const QList<ListenAddress> expectedListen{{QHostAddress(QStringLiteral("127.0.0.1")), 3030},
                                              {QHostAddress(QStringLiteral("::1")), 3030}};
    QCOMPARE(config.listen, expectedListen);
    QCOMPARE(defaultListenAddresses(), expectedListen);
    QCOMPARE(config.upstream, QUrl(QStringLiteral("https://api.openai.com/v1")));
    QCOMPARE(config.batchWindow, 4s);
    QCOMPARE(config.batchSize, 1000);
    QCOMPARE(config.batchBytes, qint64(25'000'000));
    QCOMPARE(config.pollInterval, 10s);
    QCOMPARE(config.maxBody, qint64(32 * 1024 * 1024));
    QCOMPARE(config.verbose, false);
    QCOMPARE(config.noGui, false);
    QCOMPARE(config.startInTray, false);
    QVERIFY(!config.gracePeriod.has_value());
    QCOMPARE(config.inMemory, false);
    QCOMPARE(config.ioThreads, 0);
    QVERIFY(config.apiKey.isEmpty());
    QVERIFY(!config.dataDir.isEmpty());
    QCOMPARE(config.dataDir, defaultDataDir());
}

void TestConfig::emptyArgumentList() {
    // No program name at all: nothing to skip, nothing to crash on.
    const CommandLine line = parseCommandLine(QStringList());
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.listen, defaultListenAddresses());
}

void TestConfig::defaultDataDirWithoutApplicationName() {
    // No QCoreApplication and no name: AppDataLocation would be the shared data folder itself.
    QVERIFY(QCoreApplication::applicationName().isEmpty());
    const QString generic = QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation);
    QVERIFY(!generic.isEmpty());
    QCOMPARE(defaultDataDir(), generic + QStringLiteral("/llm-proxy"));
    QCOMPARE(parseCommandLine(withProgram({})).config.dataDir,
             generic + QStringLiteral("/llm-proxy"));
}

void TestConfig::defaultDataDirWithApplicationName() {
    QCoreApplication::setApplicationName(QStringLiteral("llm-proxy-config-test"));
    const QString appData = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
    QVERIFY(appData.endsWith(QStringLiteral("/llm-proxy-config-test")));
    QCOMPARE(defaultDataDir(), appData);
    QCOMPARE(parseCommandLine(withProgram({})).config.dataDir, appData);
}

void TestConfig::options_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("expected");

    const auto row = [](const char *name, const QStringList &args, const char *field,
                        const QString &expected) {
        QTest::newRow(name) << args << QString::fromUtf8(field) << expected;
    };
    const auto s = [](const char *text) { return QString::fromUtf8(text); };

    row("listen IPv4", {s("--listen"), s("127.0.0.1:8080")}, "listen", s("127.0.0.1 8080"));
    row("listen IPv4 =", {s("--listen=127.0.0.1:8080")}, "listen", s("127.0.0.1 8080"));
    row("listen IPv6", {s("--listen"), s("[::1]:9000")}, "listen", s("::1 9000"));
    row("listen localhost", {s("--listen=localhost:4000")}, "listen", s("127.0.0.1 4000;::1 4000"));
    row("listen all", {s("--listen"), s(":3030")}, "listen", s("0.0.0.0 3030;:: 3030"));
    row("listen ephemeral", {s("--listen"), s("127.0.0.1:0")}, "listen", s("127.0.0.1 0"));
    row("listen text", {s("--listen"), s("localhost:4000")}, "listenText", s("localhost:4000"));
    row("listen text default", {}, "listenText", s("127.0.0.1:3030"));
    row("listen last wins", {s("--listen=127.0.0.1:1"), s("--listen"), s("[::1]:2")}, "listen",
        s("::1 2"));

    row("upstream", {s("--upstream"), s("http://127.0.0.1:9999/v1")}, "upstream",
        s("http://127.0.0.1:9999/v1"));
    row("upstream =", {s("--upstream=http://127.0.0.1:9999/v1")}, "upstream",
        s("http://127.0.0.1:9999/v1"));
    row("upstream trailing slash", {s("--upstream"), s("https://api.openai.com/v1/")}, "upstream",
        s("https://api.openai.com/v1"));
    row("upstream trailing slashes", {s("--upstream=http://127.0.0.1:9999/v1//")}, "upstream",
        s("http://127.0.0.1:9999/v1"));
    row("upstream root", {s("--upstream=http://localhost:8080/")}, "upstream",
        s("http://localhost:8080"));
    row("upstream no path", {s("--upstream=https://example.com")}, "upstream",
        s("https://example.com"));
    row("upstream case", {s("--upstream=HTTPS://Example.COM/Base/")}, "upstream",
        s("https://example.com/Base"));
    row("upstream IPv6", {s("--upstream=http://[::1]:9999/v1")}, "upstream",
        s("http://[::1]:9999/v1"));
    row("upstream deep path", {s("--upstream=https://h.example/openai/deployments/x/")}, "upstream",
        s("https://h.example/openai/deployments/x"));
    row("upstream spaces", {s("--upstream"), s(" http://127.0.0.1:9/v1 ")}, "upstream",
        s("http://127.0.0.1:9/v1"));

    row("batch window", {s("--batch-window"), s("500ms")}, "batchWindow", s("500"));
    row("batch window =", {s("--batch-window=2m")}, "batchWindow", s("120000"));
    row("batch window bare", {s("--batch-window"), s("0.5")}, "batchWindow", s("500"));
    row("batch window smallest", {s("--batch-window=1ms")}, "batchWindow", s("1"));
    row("batch window 24h", {s("--batch-window=24h")}, "batchWindow", s("86400000"));

    row("batch size", {s("--batch-size"), s("50")}, "batchSize", s("50"));
    row("batch size =", {s("--batch-size=50")}, "batchSize", s("50"));
    row("batch size 1", {s("--batch-size=1")}, "batchSize", s("1"));
    row("batch size max", {s("--batch-size"), s("50000")}, "batchSize", s("50000"));

    row("batch bytes", {s("--batch-bytes"), s("10MB")}, "batchBytes", s("10000000"));
    row("batch bytes =", {s("--batch-bytes=10MiB")}, "batchBytes", s("10485760"));
    row("batch bytes min", {s("--batch-bytes=1KB")}, "batchBytes", s("1000"));
    row("batch bytes plain", {s("--batch-bytes"), s("1000")}, "batchBytes", s("1000"));
    row("batch bytes max", {s("--batch-bytes=200MB")}, "batchBytes", s("200000000"));

    row("poll interval", {s("--poll-interval"), s("30s")}, "pollInterval", s("30000"));
    row("poll interval =", {s("--poll-interval=1m")}, "pollInterval", s("60000"));
    row("poll interval min", {s("--poll-interval=100ms")}, "pollInterval", s("100"));
    row("poll interval long", {s("--poll-interval=48h")}, "pollInterval", s("172800000"));

    row("data dir", {s("--data-dir"), s("/tmp/llm-proxy-data")}, "dataDir",
        s("/tmp/llm-proxy-data"));
    row("data dir =", {s("--data-dir=/tmp/llm-proxy-data")}, "dataDir", s("/tmp/llm-proxy-data"));
    row("data dir cleaned", {s("--data-dir=/tmp/a/../b/")}, "dataDir", s("/tmp/b"));
    row("data dir relative", {s("--data-dir"), s("rel/dir")}, "dataDir",
        QDir::currentPath() + s("/rel/dir"));
    row("data dir home", {s("--data-dir=~/state")}, "dataDir", QDir::homePath() + s("/state"));

    row("max body", {s("--max-body"), s("1MiB")}, "maxBody", s("1048576"));
    row("max body =", {s("--max-body=64MB")}, "maxBody", s("64000000"));
    row("max body min", {s("--max-body=1KiB")}, "maxBody", s("1024"));
    row("max body large", {s("--max-body=2GiB")}, "maxBody", s("2147483648"));

    // The front door (issue 9): defaults, then each flag.
    row("header timeout default", {}, "headerTimeout", s("20000"));
    row("header timeout max default", {}, "headerTimeoutMax", s("40000"));
    row("body timeout default", {}, "bodyTimeout", s("20000"));
    row("min rate default", {}, "minRate", s("500"));
    row("max connections default", {}, "maxConnections", s("0"));
    row("max connections per ip default", {}, "maxConnectionsPerIp", s("256"));
    row("max pipelined default", {}, "maxPipelined", s("64"));
    row("max output buffer default", {}, "maxOutputBuffer", s("4194304"));
    row("header timeout", {s("--header-timeout=5s")}, "headerTimeout", s("5000"));
    row("header timeout max", {s("--header-timeout-max"), s("1m")}, "headerTimeoutMax", s("60000"));
    row("body timeout", {s("--body-timeout=90s")}, "bodyTimeout", s("90000"));
    row("min rate", {s("--min-rate=1KiB")}, "minRate", s("1024"));
    row("min rate off", {s("--min-rate=0")}, "minRate", s("0"));
    row("max connections", {s("--max-connections=5000")}, "maxConnections", s("5000"));
    row("max connections per ip", {s("--max-connections-per-ip"), s("0")}, "maxConnectionsPerIp",
        s("0"));
    row("max pipelined", {s("--max-pipelined=1")}, "maxPipelined", s("1"));
    row("max output buffer", {s("--max-output-buffer=1MiB")}, "maxOutputBuffer", s("1048576"));

    row("verbose", {s("--verbose")}, "verbose", s("true"));
    row("not verbose", {}, "verbose", s("false"));
    row("no gui", {s("--no-gui")}, "noGui", s("true"));
    row("gui", {s("--verbose")}, "noGui", s("false"));
    row("start in tray", {s("--start-in-tray")}, "startInTray", s("true"));
    row("window shown", {s("--verbose")}, "startInTray", s("false"));

    row("all together: size",
        {s("--no-gui"), s("--listen"), s(":0"), s("--batch-size=7"), s("--verbose"),
         s("--upstream"), s("http://127.0.0.1:1/v1/")},
        "batchSize", s("7"));
    row("all together: upstream",
        {s("--no-gui"), s("--listen"), s(":0"), s("--batch-size=7"), s("--verbose"),
         s("--upstream"), s("http://127.0.0.1:1/v1/")},
        "upstream", s("http://127.0.0.1:1/v1"));
    row("grace period default", {}, "gracePeriod", s("off"));
    row("grace period", {s("--grace-period"), s("2h")}, "gracePeriod", s("7200000"));
    row("grace period =", {s("--grace-period=90s")}, "gracePeriod", s("90000"));
    row("grace period off", {s("--grace-period=1h"), s("--grace-period"), s("off")}, "gracePeriod",
        s("off"));
    row("grace period OFF", {s("--grace-period=1h"), s("--grace-period=OFF")}, "gracePeriod",
        s("off"));
    row("grace period empty is off", {s("--grace-period=1h"), s("--grace-period=")}, "gracePeriod",
        s("off"));
    row("grace period shortest", {s("--grace-period=1s")}, "gracePeriod", s("1000"));
    row("grace period 30 days", {s("--grace-period=720h")}, "gracePeriod", s("2592000000"));
    row("grace period fraction", {s("--grace-period"), s("1.5s")}, "gracePeriod", s("1500"));
    row("cache default off", {}, "cache", s("off"));
    row("cache", {s("--cache"), s("10m")}, "cache", s("600000"));
    row("cache 30 days", {s("--cache=720h")}, "cache", s("2592000000"));
    row("cache off", {s("--cache=1h"), s("--cache=off")}, "cache", s("off"));
    row("cache max bytes default", {}, "cacheMaxBytes", s("268435456"));
    row("cache max bytes", {s("--cache-max-bytes=2GiB")}, "cacheMaxBytes", s("2147483648"));
    row("in memory default", {}, "inMemory", s("false"));
    row("in memory", {s("--in-memory")}, "inMemory", s("true"));
    row("in memory keeps the default data dir", {s("--in-memory")}, "dataDir", defaultDataDir());
    row("io threads default", {}, "ioThreads", s("0"));
    row("io threads", {s("--io-threads"), s("4")}, "ioThreads", s("4"));
    row("io threads =", {s("--io-threads=8")}, "ioThreads", s("8"));
    row("io threads one", {s("--io-threads=1")}, "ioThreads", s("1"));
    row("io threads most", {s("--io-threads=64")}, "ioThreads", s("64"));
    row("io threads auto", {s("--io-threads=3"), s("--io-threads"), s("0")}, "ioThreads", s("0"));
    row("io threads spaces", {s("--io-threads"), s(" 2 ")}, "ioThreads", s("2"));
    row("result ttl default", {}, "resultTtl", s("86400000"));
    row("result ttl", {s("--result-ttl"), s("48h")}, "resultTtl", s("172800000"));
    row("value with =", {s("--data-dir=/tmp/a=b")}, "dataDir", s("/tmp/a=b"));
    row("negative-looking value is a value", {s("--data-dir"), s("-x")}, "dataDir",
        QDir::currentPath() + s("/-x"));
}

void TestConfig::options() {
    QFETCH(QStringList, args);
    QFETCH(QString, field);
    QFETCH(QString, expected);

    const CommandLine line = parseCommandLine(withProgram(args));
    QVERIFY2(line.action == CommandLine::Action::Run, qPrintable(line.message));
    QVERIFY(line.message.isEmpty());
    QCOMPARE(fieldText(line.config, field), expected);
}

void TestConfig::otherFieldsKeepDefaults() {
    // One option changes one field: compare everything else with a default run.
    const Config defaults = parseCommandLine(withProgram({})).config;
    const CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--batch-size"), QStringLiteral("5")}));
    QCOMPARE(line.action, CommandLine::Action::Run);
    const QStringList fields{QStringLiteral("listen"),      QStringLiteral("listenText"),
                             QStringLiteral("upstream"),    QStringLiteral("batchWindow"),
                             QStringLiteral("batchBytes"),  QStringLiteral("pollInterval"),
                             QStringLiteral("dataDir"),     QStringLiteral("maxBody"),
                             QStringLiteral("verbose"),     QStringLiteral("noGui"),
                             QStringLiteral("gracePeriod"), QStringLiteral("resultTtl"),
                             QStringLiteral("inMemory"),    QStringLiteral("ioThreads"),
                             QStringLiteral("cache"),       QStringLiteral("cacheMaxBytes")};
    for (const QString &field : fields)
        QCOMPARE(fieldText(line.config, field), fieldText(defaults, field));
    QCOMPARE(line.config.batchSize, 5);
}

void TestConfig::errors_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("option"); // must be named in the message
    QTest::addColumn<QString>("value");  // must appear in the message (quoted value or reason)

    const auto row = [](const char *name, const QStringList &args, const char *option,
                        const char *value) {
        QTest::newRow(name) << args << QString::fromUtf8(option) << QString::fromUtf8(value);
    };
    const auto s = [](const char *text) { return QString::fromUtf8(text); };

    row("window not a duration", {s("--batch-window"), s("4x")}, "--batch-window",
        "\"4x\" is not a duration");
    row("window = not a duration", {s("--batch-window=soon")}, "--batch-window",
        "\"soon\" is not a duration");
    row("window zero", {s("--batch-window"), s("0")}, "--batch-window", "\"0\" is out of range");
    row("header timeout zero", {s("--header-timeout=0")}, "--header-timeout",
        "\"0\" is out of range");
    row("header timeout not a duration", {s("--header-timeout=soon")}, "--header-timeout",
        "\"soon\" is not a duration");
    row("body timeout over an hour", {s("--body-timeout=2h")}, "--body-timeout",
        "\"2h\" is out of range");
    row("min rate not a size", {s("--min-rate=fast")}, "--min-rate", "\"fast\" is not a size");
    row("max connections negative", {s("--max-connections=-1")}, "--max-connections",
        "\"-1\" is not a whole number");
    row("max pipelined zero", {s("--max-pipelined=0")}, "--max-pipelined", "\"0\" is out of range");
    row("max output buffer too small", {s("--max-output-buffer=100")}, "--max-output-buffer",
        "\"100\" is out of range");
    row("window rounds to zero", {s("--batch-window=0.0001")}, "--batch-window",
        "\"0.0001\" is out of range");
    row("window over 24h", {s("--batch-window=25h")}, "--batch-window", "\"25h\" is out of range");
    row("window just over 24h", {s("--batch-window=86400.001")}, "--batch-window", "out of range");
    row("window negative", {s("--batch-window=-1")}, "--batch-window", "\"-1\" is not a duration");
    row("window empty", {s("--batch-window=")}, "--batch-window", "\"\" is not a duration");
    row("grace period not a duration", {s("--grace-period"), s("later")}, "--grace-period",
        "\"later\" is not a duration or off");
    row("grace period too short", {s("--grace-period=500ms")}, "--grace-period",
        "\"500ms\" is out of range");
    row("grace period zero", {s("--grace-period=0")}, "--grace-period", "\"0\" is out of range");
    row("grace period over 30 days", {s("--grace-period=720.001h")}, "--grace-period",
        "\"720.001h\" is out of range (expected 1s to 30 days, or off)");
    row("grace period days unit", {s("--grace-period=31d")}, "--grace-period",
        "\"31d\" is not a duration or off");
    row("grace period negative", {s("--grace-period=-1h")}, "--grace-period",
        "\"-1h\" is not a duration or off");
    row("grace period missing", {s("--grace-period")}, "--grace-period",
        "missing value (expected a duration or off");

    row("cache too short", {s("--cache=500ms")}, "--cache", "\"500ms\" is out of range");
    row("cache over 30 days", {s("--cache=721h")}, "--cache",
        "\"721h\" is out of range (expected 1s to 30 days, or off)");
    row("cache not a duration", {s("--cache=forever")}, "--cache",
        "\"forever\" is not a duration or off");
    row("cache max bytes too small", {s("--cache-max-bytes=1KB")}, "--cache-max-bytes",
        "\"1KB\" is out of range (expected 1MB to 1TB)");
    row("cache max bytes not a size", {s("--cache-max-bytes=lots")}, "--cache-max-bytes",
        "\"lots\" is not a size");
    row("result ttl not a duration", {s("--result-ttl=forever")}, "--result-ttl",
        "\"forever\" is not a duration");
    row("result ttl over 30 days", {s("--result-ttl=31d")}, "--result-ttl", "not a duration");
    row("result ttl too long", {s("--result-ttl=800h")}, "--result-ttl", "out of range");

    row("in memory with data dir", {s("--in-memory"), s("--data-dir=/tmp/x")}, "--in-memory",
        "--in-memory and --data-dir exclude each other");
    row("data dir with in memory", {s("--data-dir"), s("/tmp/x"), s("--in-memory")}, "--data-dir",
        "--in-memory and --data-dir exclude each other");
    row("in memory with value", {s("--in-memory=yes")}, "--in-memory", "takes no value");

    row("io threads too many", {s("--io-threads=65")}, "--io-threads",
        "\"65\" is out of range (expected 1 to 64, or 0 for one per core)");
    row("io threads huge", {s("--io-threads=99999999999999999999")}, "--io-threads",
        "is out of range");
    row("io threads negative", {s("--io-threads"), s("-1")}, "--io-threads",
        "\"-1\" is not a whole number");
    row("io threads = negative", {s("--io-threads=-1")}, "--io-threads",
        "\"-1\" is not a whole number (expected 1 to 64, or 0 for one per core)");
    row("io threads not a number", {s("--io-threads=many")}, "--io-threads",
        "\"many\" is not a whole number");
    row("io threads fraction", {s("--io-threads=1.5")}, "--io-threads",
        "\"1.5\" is not a whole number");
    row("io threads exponent", {s("--io-threads=1e1")}, "--io-threads",
        "\"1e1\" is not a whole number");
    row("io threads empty", {s("--io-threads=")}, "--io-threads", "\"\" is not a whole number");
    row("io threads missing", {s("--io-threads")}, "--io-threads",
        "missing value (expected a number of threads)");

    row("size zero", {s("--batch-size"), s("0")}, "--batch-size", "\"0\" is out of range");
    row("size over provider limit", {s("--batch-size=50001")}, "--batch-size",
        "\"50001\" is out of range");
    row("size huge", {s("--batch-size=99999999999999999999")}, "--batch-size", "out of range");
    row("size not a number", {s("--batch-size"), s("many")}, "--batch-size",
        "\"many\" is not a whole number");
    row("size exponent", {s("--batch-size=1e3")}, "--batch-size", "\"1e3\" is not a whole number");
    row("size negative", {s("--batch-size=-5")}, "--batch-size", "\"-5\" is not a whole number");
    row("size fraction", {s("--batch-size=1.5")}, "--batch-size", "not a whole number");

    row("bytes below 1KB", {s("--batch-bytes"), s("999")}, "--batch-bytes",
        "\"999\" is out of range");
    row("bytes over 200MB", {s("--batch-bytes=200000001")}, "--batch-bytes", "out of range");
    row("bytes 201MB", {s("--batch-bytes=201MB")}, "--batch-bytes", "\"201MB\" is out of range");
    row("bytes bad unit", {s("--batch-bytes=10XB")}, "--batch-bytes", "\"10XB\" is not a size");
    row("bytes overflow", {s("--batch-bytes=99999999999999999999GB")}, "--batch-bytes",
        "is not a size");

    row("poll too short", {s("--poll-interval"), s("99ms")}, "--poll-interval",
        "\"99ms\" is too short");
    row("poll zero", {s("--poll-interval=0")}, "--poll-interval", "\"0\" is too short");
    row("poll not a duration", {s("--poll-interval=often")}, "--poll-interval",
        "\"often\" is not a duration");

    row("max body too small", {s("--max-body"), s("1023")}, "--max-body", "\"1023\" is too small");
    row("max body 1KB is under 1KiB", {s("--max-body=1KB")}, "--max-body", "\"1KB\" is too small");
    row("max body not a size", {s("--max-body=big")}, "--max-body", "\"big\" is not a size");

    row("listen garbage", {s("--listen"), s("bogus")}, "--listen", "\"bogus\" is not HOST:PORT");
    row("listen missing port", {s("--listen=127.0.0.1")}, "--listen",
        "\"127.0.0.1\" is not HOST:PORT");
    row("listen host name", {s("--listen=example.com:80")}, "--listen",
        "\"example.com:80\" is not HOST:PORT");
    row("listen port range", {s("--listen"), s(":65536")}, "--listen",
        "\":65536\" is not HOST:PORT");

    row("upstream ftp", {s("--upstream"), s("ftp://example.com/v1")}, "--upstream",
        "\"ftp://example.com/v1\" is not an http or https URL");
    row("upstream no scheme", {s("--upstream=api.openai.com/v1")}, "--upstream",
        "\"api.openai.com/v1\" is not a URL with a host");
    row("upstream no host", {s("--upstream=https://")}, "--upstream", "is not a URL with a host");
    row("upstream empty host", {s("--upstream=http:///v1")}, "--upstream",
        "is not a URL with a host");
    row("upstream bad port", {s("--upstream=http://h:99999/v1")}, "--upstream",
        "is not a URL with a host");
    row("upstream query", {s("--upstream=http://h/v1?x=1")}, "--upstream", "must not have a query");
    row("upstream fragment", {s("--upstream=http://h/v1#top")}, "--upstream",
        "must not have a query or fragment");
    row("upstream empty", {s("--upstream=")}, "--upstream", "\"\" is not a URL");

    row("data dir empty", {s("--data-dir=")}, "--data-dir", "missing value");

    row("missing value at end", {s("--listen")}, "--listen", "missing value (expected HOST:PORT)");
    row("missing value before option", {s("--batch-size"), s("--verbose")}, "--batch-size",
        "missing value");
    row("missing duration", {s("--poll-interval")}, "--poll-interval",
        "missing value (expected a duration");
    row("flag with value", {s("--verbose=yes")}, "--verbose", "takes no value");
    row("no-gui with value", {s("--no-gui=1")}, "--no-gui", "takes no value");
    row("unknown option", {s("--frobnicate")}, "--frobnicate", "unknown option");
    row("unknown option =", {s("--frobnicate=3")}, "--frobnicate", "unknown option");
    row("unknown short option", {s("-x")}, "-x", "unknown option");
    row("screenshot without a file", {s("--screenshot")}, "--screenshot", "missing value");
    row("single-dash long option", {s("-listen"), s(":0")}, "-listen", "unknown option");
    row("positional", {s("extra")}, "extra", "unexpected argument");
    row("value containing sk- inside a word is shown", {s("--listen=disk-1:80")}, "--listen",
        "\"disk-1:80\" is not HOST:PORT");
    row("first error wins", {s("--batch-size=0"), s("--batch-window=4x")}, "--batch-size",
        "\"0\" is out of range");
    row("error after good options", {s("--no-gui"), s("--listen"), s(":0"), s("--max-body=1")},
        "--max-body", "\"1\" is too small");
}

void TestConfig::errors() {
    QFETCH(QStringList, args);
    QFETCH(QString, option);
    QFETCH(QString, value);

    const CommandLine line = parseCommandLine(withProgram(args));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(line.message.startsWith(QStringLiteral("llm-proxy: ")), qPrintable(line.message));
    QVERIFY2(line.message.contains(option), qPrintable(line.message));
    QVERIFY2(line.message.contains(value), qPrintable(line.message));
    QVERIFY2(!line.message.contains(u'\n'), qPrintable(line.message));
    QVERIFY2(line.message.size() < 300, qPrintable(line.message));
}

void TestConfig::errorMessageExample() {
    // The exact wording from the specification.
    const CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--batch-window"), QStringLiteral("4x")}));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QCOMPARE(line.message, QStringLiteral("llm-proxy: --batch-window: \"4x\" is not a duration "
                                          "(examples: 4s, 500ms, 0.5, 2m)"));

    // Control characters in a value do not break the one-line message.
    const CommandLine controls =
        parseCommandLine(withProgram({QStringLiteral("--listen"), QStringLiteral("a\nb\r\tc")}));
    QCOMPARE(controls.action, CommandLine::Action::Error);
    QVERIFY(!controls.message.contains(u'\n'));
    QVERIFY(!controls.message.contains(u'\r'));
    QVERIFY2(controls.message.contains(QStringLiteral("\"a?b??c\"")), qPrintable(controls.message));

    // A very long value is shortened.
    const QString longValue(5000, u'x');
    const CommandLine longLine =
        parseCommandLine(withProgram({QStringLiteral("--listen"), longValue}));
    QCOMPARE(longLine.action, CommandLine::Action::Error);
    QVERIFY2(longLine.message.size() < 400, qPrintable(QString::number(longLine.message.size())));
}

// The grace period is a setting like the others: the command line and applySetting (the
// desktop app's settings page and the settings file) take the same values, with the same
// reasons, and settingText gives back text both accept.
// --streams batch|relay (any case) and --stream-keepalive 1s to 5m (issue 11).
void TestConfig::streamSettings() {
    const Config defaults = parseCommandLine(withProgram({})).config;
    QCOMPARE(defaults.relayStreams, false);
    QCOMPARE(defaults.streamKeepAlive, std::chrono::milliseconds(15'000));
    QCOMPARE(settingText(defaults, Setting::Streams), QStringLiteral("batch"));
    QCOMPARE(settingText(defaults, Setting::StreamKeepAlive), QStringLiteral("15s"));

    CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--streams"), QStringLiteral("relay"),
                                      QStringLiteral("--stream-keepalive=2m")}));
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.relayStreams, true);
    QCOMPARE(line.config.streamKeepAlive, std::chrono::milliseconds(120'000));
    QCOMPARE(settingText(line.config, Setting::Streams), QStringLiteral("relay"));
    line = parseCommandLine(withProgram({QStringLiteral("--streams= Batch ")}), {}, line.config);
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.relayStreams, false);

    line = parseCommandLine(withProgram({QStringLiteral("--streams=maybe")}));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(line.message.contains(QStringLiteral("\"maybe\" is not batch or relay")),
             qPrintable(line.message));
    Config config;
    QCOMPARE(applySetting(config, Setting::Streams, QStringLiteral("")),
             QStringLiteral("\"\" is not batch or relay"));
    QCOMPARE(config.relayStreams, false);
    QCOMPARE(applySetting(config, Setting::StreamKeepAlive, QStringLiteral("999ms")),
             QStringLiteral("\"999ms\" is out of range (expected 1s to 5m)"));
    QCOMPARE(applySetting(config, Setting::StreamKeepAlive, QStringLiteral("301s")),
             QStringLiteral("\"301s\" is out of range (expected 1s to 5m)"));
    QCOMPARE(applySetting(config, Setting::StreamKeepAlive, QStringLiteral("1s")), QString());
    QCOMPARE(config.streamKeepAlive, std::chrono::milliseconds(1000));
    QVERIFY(helpText().contains(QStringLiteral("--streams batch|relay")));
    QVERIFY(helpText().contains(QStringLiteral("--stream-keepalive DUR")));
}

void TestConfig::gracePeriodSetting_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("expected"); // milliseconds, "off", or the refusal's reason

    const auto row = [](const char *name, const char *text, const char *expected) {
        QTest::newRow(name) << QString::fromUtf8(text) << QString::fromUtf8(expected);
    };
    row("seconds", "90s", "90000");
    row("bare seconds", "30", "30000");
    row("minutes", "2m", "120000");
    row("hours", "2h", "7200000");
    row("fraction", "1.5s", "1500");
    row("milliseconds", "2500ms", "2500");
    row("shortest", "1s", "1000");
    row("shortest in ms", "1000ms", "1000");
    row("longest", "720h", "2592000000");
    row("spaces", " 10m ", "600000");
    row("off", "off", "off");
    row("OFF", "OFF", "off");
    row("Off with spaces", "  Off ", "off");
    row("empty", "", "off");
    row("blank", "   ", "off");

    row("too short", "999ms", "\"999ms\" is out of range (expected 1s to 30 days, or off)");
    row("zero", "0", "\"0\" is out of range (expected 1s to 30 days, or off)");
    row("too long", "721h", "\"721h\" is out of range (expected 1s to 30 days, or off)");
    row("not a duration", "later",
        "\"later\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("days", "30d", "\"30d\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("negative", "-5s", "\"-5s\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("no", "no", "\"no\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("none", "none", "\"none\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("off with junk", "off!",
        "\"off!\" is not a duration or off (examples: 4s, 500ms, 0.5, 2m)");
    row("key-like", "sk-abcdef0123456789",
        "(a value that looks like an API key, not shown) is not a duration or off (examples: "
        "4s, 500ms, 0.5, 2m)");
}

void TestConfig::gracePeriodSetting() {
    QFETCH(QString, text);
    QFETCH(QString, expected);
    const bool accepted = !expected.startsWith(u'"') && !expected.startsWith(u'(');

    // Start from a grace period that is on, so that "off" visibly changes it.
    Config base = parseCommandLine(withProgram({})).config;
    base.gracePeriod = 5min;
    Config viaSetting = base;
    const QString problem = applySetting(viaSetting, Setting::GracePeriod, text);
    const CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--grace-period=") + text}), {}, base);
    QCOMPARE(settingOption(Setting::GracePeriod), QStringLiteral("--grace-period"));
    if (!accepted) {
        QCOMPARE(problem, expected);
        QCOMPARE(viaSetting.gracePeriod, base.gracePeriod); // left alone
        QCOMPARE(line.action, CommandLine::Action::Error);
        QCOMPARE(line.message, QStringLiteral("llm-proxy: --grace-period: ") + expected);
        return;
    }
    QCOMPARE(problem, QString());
    QCOMPARE(fieldText(viaSetting, QStringLiteral("gracePeriod")), expected);
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(fieldText(line.config, QStringLiteral("gracePeriod")), expected);

    // Its text reads back as the same value, on both paths; off reads "off".
    const QString written = settingText(viaSetting, Setting::GracePeriod);
    if (expected == QLatin1StringView("off"))
        QCOMPARE(written, QStringLiteral("off"));
    Config again = base;
    QCOMPARE(applySetting(again, Setting::GracePeriod, written), QString());
    QCOMPARE(again.gracePeriod, viaSetting.gracePeriod);
    const CommandLine reread =
        parseCommandLine(withProgram({QStringLiteral("--grace-period"), written}));
    QCOMPARE(reread.action, CommandLine::Action::Run);
    QCOMPARE(reread.config.gracePeriod, viaSetting.gracePeriod);
}

void TestConfig::inMemory() {
    // The exact wording, whichever comes first.
    const QString refused =
        QStringLiteral("llm-proxy: --in-memory and --data-dir exclude each other");
    QCOMPARE(parseCommandLine(withProgram({QStringLiteral("--in-memory"),
                                           QStringLiteral("--data-dir=/tmp/llm-proxy-x")}))
                 .message,
             refused);
    QCOMPARE(parseCommandLine(
                 withProgram({QStringLiteral("--data-dir"), QStringLiteral("/tmp/llm-proxy-x"),
                              QStringLiteral("--no-gui"), QStringLiteral("--in-memory")}))
                 .message,
             refused);
    // An error before it is reported first (one line, the first problem).
    const CommandLine earlier = parseCommandLine(
        withProgram({QStringLiteral("--batch-size=0"), QStringLiteral("--in-memory"),
                     QStringLiteral("--data-dir=/x")}));
    QCOMPARE(earlier.action, CommandLine::Action::Error);
    QVERIFY2(earlier.message.contains(QStringLiteral("--batch-size")), qPrintable(earlier.message));

    // Only an explicit --data-dir excludes it: a base configuration (the settings file's) that
    // carries a data folder does not.
    Config base = parseCommandLine(withProgram({})).config;
    base.dataDir = QStringLiteral("/tmp/llm-proxy-stored");
    const CommandLine overBase = parseCommandLine(
        withProgram({QStringLiteral("--in-memory"), QStringLiteral("--no-gui")}), {}, base);
    QCOMPARE(overBase.action, CommandLine::Action::Run);
    QVERIFY(overBase.config.inMemory);
    QVERIFY(overBase.config.noGui);

    // Help wins over the conflict, as over any bad command line.
    QCOMPARE(
        parseCommandLine(withProgram({QStringLiteral("--in-memory"),
                                      QStringLiteral("--data-dir=/x"), QStringLiteral("--help")}))
            .action,
        CommandLine::Action::ShowHelp);
}

void TestConfig::errorsNeverShowTheKey_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QByteArray>("key");
    QTest::addColumn<QString>("secret"); // must not appear in the message

    QTest::newRow("key-like upstream")
        << QStringList{QStringLiteral("--upstream"), QStringLiteral("sk-proj-abcdef123456")}
        << QByteArray() << QStringLiteral("abcdef123456");
    QTest::newRow("key-like positional")
        << QStringList{QStringLiteral("--api-key"), QStringLiteral("sk-abcdef123456")}
        << QByteArray() << QStringLiteral("abcdef123456");
    QTest::newRow("key-like unknown option =")
        << QStringList{QStringLiteral("--api-key=sk-abcdef123456")} << QByteArray()
        << QStringLiteral("abcdef123456");
    QTest::newRow("environment key as a value")
        << QStringList{QStringLiteral("--listen"), QStringLiteral("custom-key-0123456789")}
        << QByteArrayLiteral("custom-key-0123456789") << QStringLiteral("custom-key-0123456789");
    QTest::newRow("environment key inside a value")
        << QStringList{QStringLiteral("--upstream=ftp://custom-key-0123456789@host/")}
        << QByteArrayLiteral("custom-key-0123456789") << QStringLiteral("custom-key-0123456789");
    QTest::newRow("key-like value after a separator")
        << QStringList{QStringLiteral("--listen=x:sk-abcdef123456")} << QByteArray()
        << QStringLiteral("abcdef123456");
    QTest::newRow("padded environment key")
        << QStringList{QStringLiteral("--batch-size"), QStringLiteral("custom-key-0123456789")}
        << QByteArrayLiteral("  custom-key-0123456789\n")
        << QStringLiteral("custom-key-0123456789");
    QTest::newRow("password in the upstream URL")
        << QStringList{QStringLiteral("--upstream=https://user:hunter2@api.example.com/v1")}
        << QByteArray() << QStringLiteral("hunter2");
}

void TestConfig::errorsNeverShowTheKey() {
    QFETCH(QStringList, args);
    QFETCH(QByteArray, key);
    QFETCH(QString, secret);

    const CommandLine line = parseCommandLine(withProgram(args), key);
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(!line.message.contains(secret), qPrintable(line.message));
    QVERIFY2(line.message.startsWith(QStringLiteral("llm-proxy: ")), qPrintable(line.message));
}

void TestConfig::help_data() {
    QTest::addColumn<QStringList>("args");

    QTest::newRow("--help") << QStringList{QStringLiteral("--help")};
    QTest::newRow("-h") << QStringList{QStringLiteral("-h")};
    QTest::newRow("after options")
        << QStringList{QStringLiteral("--no-gui"), QStringLiteral("--help")};
    QTest::newRow("wins over a bad value")
        << QStringList{QStringLiteral("--batch-size=0"), QStringLiteral("--help")};
    QTest::newRow("wins over an unknown option")
        << QStringList{QStringLiteral("--help"), QStringLiteral("--frobnicate")};
    QTest::newRow("after an option missing its value")
        << QStringList{QStringLiteral("--data-dir"), QStringLiteral("--help")};
    QTest::newRow("wins over --version")
        << QStringList{QStringLiteral("--version"), QStringLiteral("--help")};
}

void TestConfig::help() {
    QFETCH(QStringList, args);

    const CommandLine line = parseCommandLine(withProgram(args), QByteArrayLiteral("sk-secret"));
    QCOMPARE(line.action, CommandLine::Action::ShowHelp);
    QVERIFY(line.message.startsWith(QStringLiteral("Usage: llm-proxy")));
    QVERIFY(!line.message.contains(QStringLiteral("sk-secret")));
}

void TestConfig::helpIsComplete() {
    const CommandLine line = parseCommandLine(withProgram({QStringLiteral("--help")}));
    QCOMPARE(line.action, CommandLine::Action::ShowHelp);
    const QString &text = line.message;
    const QStringList needed{
        // every option
        QStringLiteral("--no-gui"), QStringLiteral("--listen HOST:PORT"),
        QStringLiteral("--upstream URL"), QStringLiteral("--batch-window DUR"),
        QStringLiteral("--batch-size N"), QStringLiteral("--batch-bytes SIZE"),
        QStringLiteral("--poll-interval DUR"), QStringLiteral("--data-dir DIR"),
        QStringLiteral("--max-body SIZE"), QStringLiteral("--verbose"), QStringLiteral("--help"),
        QStringLiteral("--version"), QStringLiteral("--grace-period DUR"),
        QStringLiteral("--result-ttl DUR"), QStringLiteral("--in-memory"),
        QStringLiteral("--io-threads N"), QStringLiteral("--header-timeout DUR"),
        QStringLiteral("--header-timeout-max"), QStringLiteral("--body-timeout DUR"),
        QStringLiteral("--min-rate SIZE"), QStringLiteral("--max-connections N"),
        QStringLiteral("--max-connections-per-ip N"), QStringLiteral("--max-pipelined N"),
        QStringLiteral("--max-output-buffer SIZE"),
        // every default
        QStringLiteral("127.0.0.1:3030"), QStringLiteral("[::1]:3030"),
        QStringLiteral("https://api.openai.com/v1"), QStringLiteral("(default: 4s;"),
        QStringLiteral("(default: 1000;"), QStringLiteral("(default: 25MB;"),
        QStringLiteral("(default: 10s;"), QStringLiteral("(default: 32MiB;"),
        // the data folder, relative to the home folder (the man page is made from this text)
        defaultDataDir().startsWith(QDir::homePath() + u'/')
            ? QStringLiteral("~") + defaultDataDir().mid(QDir::homePath().size())
            : defaultDataDir(),
        // limits
        QStringLiteral("50000"), QStringLiteral("200MB"), QStringLiteral("24h"),
        QStringLiteral("100ms"), QStringLiteral("1KiB"),
        // value syntax
        QStringLiteral("DUR"), QStringLiteral("SIZE"), QStringLiteral("ms, s, m or h"),
        QStringLiteral("KB, MB, GB (powers of 1000)"),
        QStringLiteral("KiB, MiB, GiB (powers of 1024)"), QStringLiteral("--option=VALUE"),
        // the environment
        QStringLiteral("OPENAI_API_KEY")};
    for (const QString &piece : needed)
        QVERIFY2(text.contains(piece), qPrintable(piece));
    if (defaultDataDir().startsWith(QDir::homePath() + u'/'))
        QVERIFY2(!text.contains(QDir::homePath() + u'/'), "the help names a user's home folder");
    // What --in-memory, --io-threads and --grace-period mean, across line breaks.
    const QString flat = text.simplified();
    const QStringList meanings{
        QStringLiteral("--in-memory Run without the durable store: nothing survives a restart."),
        QStringLiteral("For comparisons, benchmarks and throwaway runs; cannot be combined with "
                       "--data-dir."),
        QStringLiteral("--io-threads N How many threads serve HTTP connections (default: 0, one "
                       "per core; 1 to 64)."),
        QStringLiteral("(default: off; 1s to 30 days, or off)")};
    for (const QString &piece : meanings)
        QVERIFY2(flat.contains(piece), qPrintable(piece));
    QVERIFY(!text.endsWith(u'\n'));
    const QStringList lines = text.split(u'\n');
    for (const QString &helpLine : lines)
        QVERIFY2(helpLine.size() <= 90, qPrintable(helpLine));
}

// The one table: --help (and so the man page and the completion) lists every entry, each with
// its value name and its default, and nothing else.
void TestConfig::everyDeclarationIsInTheHelp() {
    const QString help = helpText();
    QCOMPARE(parseCommandLine(withProgram({QStringLiteral("--help")})).message, help);
    QStringList optionLines;
    for (const QString &line : help.split(u'\n')) {
        QVERIFY2(line.size() <= 80, qPrintable(line));
        if (line.startsWith(QStringLiteral("  -")))
            optionLines.append(line.trimmed().section(u' ', 0, 0).remove(u','));
    }
    QStringList declared;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        declared.append(decl.setting == Setting::Help ? QStringLiteral("-h") : decl.optionName());
        QString names =
            decl.setting == Setting::Help ? QStringLiteral("-h, --help") : decl.optionName();
        if (!decl.valueName.isEmpty())
            names += u' ' + decl.valueName;
        QVERIFY2(help.contains(QStringLiteral("  ") + names), qPrintable(names));
        QCOMPARE(decl.takesValue(), !decl.valueName.isEmpty());
        QVERIFY2(!decl.help.isEmpty(), qPrintable(names));
        if (decl.takesValue())
            QVERIFY2(!decl.missing.isEmpty(), qPrintable(names));
        const QString flatHelp = help.simplified();
        if (decl.help.contains(QStringLiteral("(default: %1")) &&
            decl.kind != SettingDeclaration::Kind::Path) {
            const QString shownDefault =
                QStringLiteral("(default: ") + settingText(Config(), decl.setting);
            QVERIFY2(flatHelp.contains(shownDefault), qPrintable(shownDefault));
        }
    }
    QCOMPARE(optionLines, declared);
}

// Every option --help names is one the command line takes, with the value --help describes.
void TestConfig::everyOptionInTheHelpIsParsed() {
    static const QRegularExpression optionLine(QStringLiteral("^  (?:-h, )?(--[a-z-]+)( \\S+)?"));
    const QStringList lines = helpText().split(u'\n');
    int options = 0;
    for (const QString &line : lines) {
        const auto match = optionLine.match(line);
        if (!match.hasMatch())
            continue;
        ++options;
        const QString option = match.captured(1);
        const SettingDeclaration *decl = nullptr;
        for (const SettingDeclaration &d : settingDeclarations()) {
            if (d.optionName() == option)
                decl = &d;
        }
        QVERIFY2(decl, qPrintable(option));
        QStringList args{option};
        if (decl->takesValue()) {
            // A value the option accepts: its default, or one for those without.
            QString value = settingText(parseCommandLine(withProgram({})).config, decl->setting);
            if (decl->kind == SettingDeclaration::Kind::Path)
                value = QDir::tempPath() + QStringLiteral("/x.png");
            if (decl->kind == SettingDeclaration::Kind::List)
                value = decl->setting == Setting::AllowOrigins
                            ? QStringLiteral("http://localhost:5173")
                        : decl->setting == Setting::Providers   ? QStringLiteral("gemini=gemini")
                        : decl->setting == Setting::Routes      ? QStringLiteral("gpt-*=openai")
                        : decl->setting == Setting::ModelRoutes ? QStringLiteral("gpt-5=flex")
                        : decl->setting == Setting::QueueLimits ? QStringLiteral("gpt-4o=90k")
                        : decl->setting == Setting::ScreenshotPages ? QStringLiteral("settings")
                                                                    : QStringLiteral("proxy.lan");
            args.append(value);
        }
        if (decl->setting == Setting::ScreenshotPages) // a page of the --screenshot FILE
            args << QStringLiteral("--screenshot") << QDir::tempPath() + QStringLiteral("/x.png");
        if (decl->setting == Setting::TokensFile)
            continue; // needs a real file: tokensFile()
        const CommandLine parsed = parseCommandLine(withProgram(args));
        QVERIFY2(parsed.action != CommandLine::Action::Error, qPrintable(parsed.message));
        const CommandLine given = parseCommandLine(withProgram({option + QStringLiteral("=x")}));
        QVERIFY2(!given.message.contains(QStringLiteral("unknown option")),
                 qPrintable(given.message));
    }
    QCOMPARE(options, settingDeclarations().size());
}

// What settingText writes, applySetting reads back to the same value; for every entry.
void TestConfig::defaultsRoundTripThroughTheirText() {
    const Config defaults = parseCommandLine(withProgram({})).config;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        const QString text = settingText(defaults, decl.setting);
        if (decl.kind == SettingDeclaration::Kind::Path ||
            decl.kind == SettingDeclaration::Kind::List || decl.setting == Setting::Help ||
            decl.setting == Setting::Version) {
            continue; // empty by default: nothing to read back
        }
        Config config;
        QCOMPARE(applySetting(config, decl.setting, text), QString());
        QVERIFY2(settingText(config, decl.setting) == text, qPrintable(decl.optionName()));
        // And from the command line.
        if (decl.takesValue()) {
            const CommandLine line =
                parseCommandLine(withProgram({decl.optionName() + u'=' + text}));
            QCOMPARE(line.action, CommandLine::Action::Run);
            QCOMPARE(settingText(line.config, decl.setting), text);
        }
    }
}

// The bounds in an entry are the ones applied: the edges pass, one past them is refused with
// the entry's own words.
void TestConfig::boundsAreTheDeclarations() {
    using Kind = SettingDeclaration::Kind;
    const auto asText = [](Kind kind, qint64 n) -> QString {
        if (kind == Kind::Count)
            return QString::number(n);
        return QString::number(n) +
               (kind == Kind::Size ? QStringLiteral("B") : QStringLiteral("ms"));
    };
    int checked = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.kind != Kind::Duration && decl.kind != Kind::DurationOrOff &&
            decl.kind != Kind::Size && decl.kind != Kind::Count)
            continue;
        ++checked;
        QVERIFY2(!decl.expected.isEmpty(), qPrintable(decl.optionName()));
        Config config;
        QCOMPARE(applySetting(config, decl.setting, asText(decl.kind, decl.minimum)), QString());
        if (decl.minimum > 0) {
            const QString problem =
                applySetting(config, decl.setting, asText(decl.kind, decl.minimum - 1));
            QVERIFY2(problem.contains(decl.expected), qPrintable(problem));
        }
        if (decl.maximum < std::numeric_limits<qint64>::max()) {
            QCOMPARE(applySetting(config, decl.setting, asText(decl.kind, decl.maximum)),
                     QString());
            const QString problem =
                applySetting(config, decl.setting, asText(decl.kind, decl.maximum + 1));
            QVERIFY2(problem.contains(QStringLiteral("is out of range (expected ") + decl.expected +
                                      u')'),
                     qPrintable(problem));
        }
    }
    QVERIFY(checked >= 15);
}

// QCommandLineParser under the table: the last value wins, list options add up, both
// spellings work, and a value may start with a single dash.
void TestConfig::repeatedOptions() {
    const CommandLine line = parseCommandLine(
        withProgram({QStringLiteral("--batch-size=5"), QStringLiteral("--allow-host"),
                     QStringLiteral("a.lan"), QStringLiteral("--batch-size"), QStringLiteral("7"),
                     QStringLiteral("--allow-host=b.lan"), QStringLiteral("-h")}));
    QCOMPARE(line.action, CommandLine::Action::ShowHelp);
    QCOMPARE(line.config.batchSize, 7);
    QCOMPARE(line.config.allowHosts, (QList<QByteArray>{"a.lan", "b.lan"}));
    const CommandLine dash =
        parseCommandLine(withProgram({QStringLiteral("--io-threads"), QStringLiteral("-1")}));
    QCOMPARE(dash.message, QStringLiteral("llm-proxy: --io-threads: \"-1\" is not a whole number "
                                          "(expected 1 to 64, or 0 for one per core)"));
    // The wording of every kind of malformed command line, exactly.
    const auto message = [](const QStringList &args) {
        return parseCommandLine(withProgram(args)).message;
    };
    QCOMPARE(message({QStringLiteral("--frobnicate=3")}),
             QStringLiteral("llm-proxy: unknown option \"--frobnicate\" (see --help)"));
    QCOMPARE(message({QStringLiteral("-help")}),
             QStringLiteral("llm-proxy: unknown option \"-help\" (see --help)"));
    QCOMPARE(message({QStringLiteral("extra")}),
             QStringLiteral("llm-proxy: unexpected argument \"extra\" (options start with --; "
                            "see --help)"));
    QCOMPARE(message({QStringLiteral("--verbose=yes")}),
             QStringLiteral("llm-proxy: --verbose: takes no value (got \"yes\")"));
    QCOMPARE(message({QStringLiteral("--batch-size"), QStringLiteral("--verbose")}),
             QStringLiteral("llm-proxy: --batch-size: missing value (expected a number of "
                            "requests)"));
    QCOMPARE(message({QStringLiteral("--max-body=1"), QStringLiteral("--listen")}),
             QStringLiteral("llm-proxy: --max-body: \"1\" is too small (expected at least "
                            "1KiB)"));
    QCOMPARE(message({QStringLiteral("--listen"), QStringLiteral("--max-body=1")}),
             QStringLiteral("llm-proxy: --listen: missing value (expected HOST:PORT)"));
}

void TestConfig::version() {
    const CommandLine line = parseCommandLine(withProgram({QStringLiteral("--version")}));
    QCOMPARE(line.action, CommandLine::Action::ShowVersion);
    QCOMPARE(line.message, QStringLiteral("llm-proxy ") + QLatin1StringView(LLMPROXY_VERSION));
    QVERIFY(!QLatin1StringView(LLMPROXY_VERSION).isEmpty());

    const CommandLine afterError = parseCommandLine(
        withProgram({QStringLiteral("--batch-size=0"), QStringLiteral("--version")}));
    QCOMPARE(afterError.action, CommandLine::Action::ShowVersion);

    const CommandLine withValue = parseCommandLine(withProgram({QStringLiteral("--version=2")}));
    QCOMPARE(withValue.action, CommandLine::Action::Error);
}

void TestConfig::apiKey_data() {
    QTest::addColumn<QByteArray>("environment");
    QTest::addColumn<QByteArray>("expected");

    QTest::newRow("unset") << QByteArray() << QByteArray();
    QTest::newRow("empty") << QByteArrayLiteral("") << QByteArray();
    QTest::newRow("whitespace") << QByteArrayLiteral("  \t\n") << QByteArray();
    QTest::newRow("key") << QByteArrayLiteral("sk-test-1234567890")
                         << QByteArrayLiteral("sk-test-1234567890");
    QTest::newRow("key with newline")
        << QByteArrayLiteral(" sk-test-1234567890\n") << QByteArrayLiteral("sk-test-1234567890");
}

void TestConfig::apiKey() {
    QFETCH(QByteArray, environment);
    QFETCH(QByteArray, expected);

    const CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--no-gui")}), environment);
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.apiKey, expected);
}

// ---- the front door (issue 9) ----------------------------------------------------------

namespace {
QString writeTokens(const QTemporaryDir &dir, const QByteArray &text,
                    QFile::Permissions permissions = QFile::ReadOwner | QFile::WriteOwner) {
    const QString path = dir.filePath(QStringLiteral("tokens"));
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return QString();
    file.write(text);
    file.close();
    QFile::setPermissions(path, permissions);
    return path;
}
} // namespace

void TestConfig::frontDoorOptions() {
    const CommandLine line = parseCommandLine(withProgram(
        {QStringLiteral("--allow-origin"), QStringLiteral("http://localhost:5173/"),
         QStringLiteral("--allow-origin=HTTPS://Tool.Example"),
         QStringLiteral("--allow-origin=vscode-webview://abc123"), QStringLiteral("--allow-host"),
         QStringLiteral("proxy.lan"), QStringLiteral("--allow-host=Box.Lan:8080")}));
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.allowOrigins,
             (QList<QByteArray>{"http://localhost:5173", "https://tool.example",
                                "vscode-webview://abc123"}));
    QCOMPARE(line.config.allowHosts, (QList<QByteArray>{"proxy.lan", "box.lan:8080"}));
    QVERIFY(line.config.tokens.isEmpty());
    const QString help = parseCommandLine(withProgram({QStringLiteral("--help")})).message;
    for (const char *option : {"--allow-origin ORIGIN", "--allow-host NAME", "--tokens-file FILE"})
        QVERIFY2(help.contains(QLatin1StringView(option)), option);
}

void TestConfig::frontDoorErrors_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("expected");
    QTest::newRow("origin with path")
        << QStringList{QStringLiteral("--allow-origin"), QStringLiteral("http://a.b/x")}
        << QStringLiteral("--allow-origin: \"http://a.b/x\" is not an origin");
    QTest::newRow("origin without scheme")
        << QStringList{QStringLiteral("--allow-origin"), QStringLiteral("localhost:5173")}
        << QStringLiteral("is not an origin");
    QTest::newRow("origin with query")
        << QStringList{QStringLiteral("--allow-origin=http://a.b?x=1")}
        << QStringLiteral("is not an origin");
    QTest::newRow("host with path")
        << QStringList{QStringLiteral("--allow-host"), QStringLiteral("a.b/x")}
        << QStringLiteral("--allow-host: \"a.b/x\" is not a host name");
    QTest::newRow("missing tokens file")
        << QStringList{QStringLiteral("--tokens-file"), QStringLiteral("/nonexistent/tokens")}
        << QStringLiteral("--tokens-file: /nonexistent/tokens: no such file");
}

void TestConfig::frontDoorErrors() {
    QFETCH(QStringList, args);
    QFETCH(QString, expected);
    const CommandLine line = parseCommandLine(withProgram(args));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(line.message.contains(expected), qPrintable(line.message));
    QVERIFY(!line.message.contains(u'\n'));
}

void TestConfig::tokensFile() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = writeTokens(dir, "# team\nalice 0123456789abcdef\nbob fedcba9876543210\n");
    CommandLine line =
        parseCommandLine(withProgram({QStringLiteral("--tokens-file"), path}), "sk-key");
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.tokensFile, path);
    QCOMPARE(line.config.tokens.size(), 2);
    QCOMPARE(line.config.tokens.at(1).name, QByteArray("bob"));

    writeTokens(dir, "alice 0123456789abcdef\n",
                QFile::ReadOwner | QFile::WriteOwner | QFile::ReadGroup);
    line = parseCommandLine(withProgram({QStringLiteral("--tokens-file"), path}));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(line.message.contains(QStringLiteral("chmod 600")), qPrintable(line.message));

    writeTokens(dir, "alice 0123456789abcdef\nalice fedcba9876543210\n");
    line = parseCommandLine(withProgram({QStringLiteral("--tokens-file"), path}));
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY2(line.message.contains(QStringLiteral("line 2: the name \"alice\" is used twice")),
             qPrintable(line.message));
}

void TestConfig::defaultTokensFileIsReadWhenPresent() {
    // Test mode: the default lives under ~/.qttest, never the user's own configuration.
    const QString path = defaultTokensFile();
    QVERIFY(path.endsWith(QStringLiteral("/llm-proxy/tokens")));
    QFile::remove(path);
    QCOMPARE(parseCommandLine(withProgram({})).config.tokens.size(), 0);
    QVERIFY(QDir().mkpath(QFileInfo(path).absolutePath()));
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write("carol 0123456789abcdef\n");
    file.close();
    QVERIFY(QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner));
    const CommandLine line = parseCommandLine(withProgram({}));
    QFile::remove(path);
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.tokensFile, path);
    QCOMPARE(line.config.tokens.size(), 1);
}

void TestConfig::offLoopbackNeedsATokenWithAConfiguredKey_data() {
    QTest::addColumn<QString>("listen");
    QTest::addColumn<QByteArray>("key");
    QTest::addColumn<bool>("tokens");
    QTest::addColumn<bool>("refused");
    QTest::newRow("default") << QString() << QByteArray("sk-key") << false << false;
    QTest::newRow("loopback") << QStringLiteral("127.0.0.1:3030") << QByteArray("sk-key") << false
                              << false;
    QTest::newRow("localhost") << QStringLiteral("localhost:3030") << QByteArray("sk-key") << false
                               << false;
    QTest::newRow("v6 loopback") << QStringLiteral("[::1]:3030") << QByteArray("sk-key") << false
                                 << false;
    QTest::newRow("all") << QStringLiteral(":3030") << QByteArray("sk-key") << false << true;
    QTest::newRow("LAN") << QStringLiteral("192.168.1.2:3030") << QByteArray("sk-key") << false
                         << true;
    QTest::newRow("all, tokens") << QStringLiteral(":3030") << QByteArray("sk-key") << true
                                 << false;
    QTest::newRow("all, clients' keys")
        << QStringLiteral(":3030") << QByteArray() << false << false;
}

void TestConfig::offLoopbackNeedsATokenWithAConfiguredKey() {
    QFETCH(QString, listen);
    QFETCH(QByteArray, key);
    QFETCH(bool, tokens);
    QFETCH(bool, refused);
    QTemporaryDir dir;
    QStringList args;
    if (!listen.isEmpty())
        args << QStringLiteral("--listen") << listen;
    if (tokens)
        args << QStringLiteral("--tokens-file") << writeTokens(dir, "alice 0123456789abcdef\n");
    const CommandLine line = parseCommandLine(withProgram(args), key);
    QCOMPARE(line.action, refused ? CommandLine::Action::Error : CommandLine::Action::Run);
    if (refused) {
        QVERIFY(line.message.startsWith(QStringLiteral("llm-proxy: listening on ") + listen));
        QVERIFY(line.message.contains(QStringLiteral("--tokens-file FILE")));
        QVERIFY(!line.message.contains(QString::fromLatin1(key)));
        QVERIFY(!line.message.contains(u'\n'));
    }
    QCOMPARE(exposureProblem(line.config).isEmpty(), !refused);
}

QTEST_APPLESS_MAIN(TestConfig)

#include "tst_config.moc"
