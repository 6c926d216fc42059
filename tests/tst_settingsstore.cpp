// SPDX-License-Identifier: GPL-3.0-or-later
// The settings file: defaults, round trips, refused values, owner-only permissions, the key kept
// in the file, typed preferences with bounds; and the command line over stored settings, with
// the settings page's checks (applySetting) agreeing with the command line's.

#include "settings/config.h"
#include "settings/settingsstore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSettings>
#include <QTemporaryDir>
#include <QTest>

#include <array>

using namespace llmproxy;
using namespace std::chrono_literals;

Q_DECLARE_METATYPE(llmproxy::Setting)

namespace {

QStringList program(const QStringList &args = {}) {
    return QStringList{QStringLiteral("llm-proxy")} + args;
}

Config defaults() {
    return parseCommandLine(program()).config;
}

constexpr std::array AllSettings{Setting::Listen,    Setting::Upstream,    Setting::BatchWindow,
                                 Setting::BatchSize, Setting::BatchBytes,  Setting::PollInterval,
                                 Setting::MaxBody,   Setting::GracePeriod, Setting::AllowOrigins,
                                 Setting::AllowHosts};

QString allTexts(const Config &config) {
    QStringList texts;
    for (Setting setting : AllSettings)
        texts.append(settingText(config, setting));
    return texts.join(u'|');
}

void writeFile(const QString &path, const QByteArray &content) {
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write(content);
}

QByteArray readFile(const QString &path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return QByteArray();
    return file.readAll();
}

constexpr QFile::Permissions GroupOrOther = QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup |
                                            QFile::ReadOther | QFile::WriteOther | QFile::ExeOther;

} // namespace

class TestSettingsStore final : public QObject {
    Q_OBJECT

private slots:
    void init();

    void emptyFileGivesDefaults();
    void roundTrip_data();
    void roundTrip();
    void defaultsAreNotWritten();
    void gracePeriodStored_data();
    void gracePeriodStored();
    void gracePeriodOffIsNotWritten();
    void refusedValuesFallBackToDefaults_data();
    void refusedValuesFallBackToDefaults();
    void fileIsOwnerOnly();
    void existingFileBecomesOwnerOnly();
    void unwritableFileReportsError();
    void keyInFile();
    void keyLocationKeychainRemovesFileKey();
    void preferencesHaveDefaultsAndBounds();

    void commandLineOverridesStoredSettings();
    void environmentKeyOverridesStoredKey();
    void applySettingAgreesWithCommandLine_data();
    void applySettingAgreesWithCommandLine();
    void applySettingLeavesConfigAloneOnError();
    void applySettingNeverRepeatsKey();
    void settingTextRoundTrips_data();
    void settingTextRoundTrips();
    void accessListsInTheFile();
    void screenshotOptions();
    void everyDeclaredSettingIsStored();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    QString m_path;
};

void TestSettingsStore::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_path = m_dir->filePath(QStringLiteral("sub/llm-proxy.conf"));
}

void TestSettingsStore::emptyFileGivesDefaults() {
    SettingsStore store(m_path);
    QStringList problems;
    const Config config = store.load(&problems);
    QVERIFY(problems.isEmpty());
    QCOMPARE(allTexts(config), allTexts(defaults()));
    QCOMPARE(config.listen, defaultListenAddresses());
    QCOMPARE(config.dataDir, defaultDataDir());
    QVERIFY(config.apiKey.isEmpty());
    QCOMPARE(store.keyLocation(), KeyLocation::None);
    QVERIFY(!QFileInfo::exists(m_path)); // nothing written by reading
}

void TestSettingsStore::roundTrip_data() {
    QTest::addColumn<Setting>("setting");
    QTest::addColumn<QString>("value");
    QTest::newRow("listen v4") << Setting::Listen << QStringLiteral("127.0.0.1:4040");
    QTest::newRow("listen v6") << Setting::Listen << QStringLiteral("[::1]:4041");
    QTest::newRow("listen localhost") << Setting::Listen << QStringLiteral("localhost:4042");
    QTest::newRow("listen any") << Setting::Listen << QStringLiteral(":4043");
    QTest::newRow("upstream") << Setting::Upstream
                              << QStringLiteral("http://127.0.0.1:9999/openai/v1");
    QTest::newRow("batch window") << Setting::BatchWindow << QStringLiteral("250ms");
    QTest::newRow("batch window minutes") << Setting::BatchWindow << QStringLiteral("2m");
    QTest::newRow("batch size") << Setting::BatchSize << QStringLiteral("17");
    QTest::newRow("batch bytes") << Setting::BatchBytes << QStringLiteral("3MiB");
    QTest::newRow("poll interval") << Setting::PollInterval << QStringLiteral("1.5s");
    QTest::newRow("max body") << Setting::MaxBody << QStringLiteral("2KB");
    QTest::newRow("grace period") << Setting::GracePeriod << QStringLiteral("2h");
    QTest::newRow("grace period seconds") << Setting::GracePeriod << QStringLiteral("90s");
    QTest::newRow("grace period fraction") << Setting::GracePeriod << QStringLiteral("1.5s");
    QTest::newRow("answer cache") << Setting::Cache << QStringLiteral("10m");
    QTest::newRow("answer cache bytes") << Setting::CacheMaxBytes << QStringLiteral("64MiB");
    QTest::newRow("one origin") << Setting::AllowOrigins << QStringLiteral("http://localhost:5173");
    QTest::newRow("origins") << Setting::AllowOrigins
                             << QStringLiteral("http://localhost:5173 https://tool.example "
                                               "chrome-extension://abcdef");
    QTest::newRow("hosts") << Setting::AllowHosts
                           << QStringLiteral("proxy.example.lan box.local:3030");
}

void TestSettingsStore::roundTrip() {
    QFETCH(Setting, setting);
    QFETCH(QString, value);
    Config config = defaults();
    QCOMPARE(applySetting(config, setting, value), QString());
    {
        SettingsStore store(m_path);
        QVERIFY2(store.save(config), qPrintable(store.error()));
    }
    SettingsStore reopened(m_path);
    QStringList problems;
    const Config loaded = reopened.load(&problems);
    QVERIFY2(problems.isEmpty(), qPrintable(problems.join(u'\n')));
    QCOMPARE(allTexts(loaded), allTexts(config));
    QCOMPARE(loaded.listen, config.listen);
    QCOMPARE(loaded.batchWindow, config.batchWindow);
    QCOMPARE(loaded.batchBytes, config.batchBytes);
    QCOMPARE(loaded.upstream, config.upstream);
    QCOMPARE(loaded.gracePeriod, config.gracePeriod);
    QCOMPARE(loaded.allowOrigins, config.allowOrigins);
    QCOMPARE(loaded.allowHosts, config.allowHosts);
    const bool access = setting == Setting::AllowOrigins || setting == Setting::AllowHosts;
    QVERIFY(readFile(m_path).contains(access ? "[access]" : "[proxy]"));
}

void TestSettingsStore::defaultsAreNotWritten() {
    SettingsStore store(m_path);
    Config config = defaults();
    QCOMPARE(applySetting(config, Setting::BatchSize, QStringLiteral("5")), QString());
    QVERIFY(store.save(config));
    QVERIFY(readFile(m_path).contains("batch_size=5"));
    QVERIFY(store.save(defaults()));
    // Back to the defaults: nothing stored, so a later release's defaults apply.
    QVERIFY2(!readFile(m_path).contains("batch_size"), readFile(m_path).constData());
    QVERIFY(!readFile(m_path).contains("listen"));
}

// What a settings file says about the grace period, including files written before it was a
// setting (no key at all: off).
void TestSettingsStore::gracePeriodStored_data() {
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<qint64>("expectedMs"); // -1: off
    QTest::newRow("missing key") << QByteArray("[proxy]\nbatch_size=5\n") << qint64(-1);
    QTest::newRow("no proxy section") << QByteArray("[ui]\nnotifications=false\n") << qint64(-1);
    QTest::newRow("off") << QByteArray("[proxy]\ngrace_period=off\n") << qint64(-1);
    QTest::newRow("OFF") << QByteArray("[proxy]\ngrace_period=OFF\n") << qint64(-1);
    QTest::newRow("empty") << QByteArray("[proxy]\ngrace_period=\n") << qint64(-1);
    QTest::newRow("hours") << QByteArray("[proxy]\ngrace_period=2h\n") << qint64(7'200'000);
    QTest::newRow("ms") << QByteArray("[proxy]\ngrace_period=1500ms\n") << qint64(1500);
}

void TestSettingsStore::gracePeriodStored() {
    QFETCH(QByteArray, content);
    QFETCH(qint64, expectedMs);
    QVERIFY(QDir().mkpath(QFileInfo(m_path).absolutePath()));
    writeFile(m_path, content);
    QStringList problems;
    const Config config = SettingsStore(m_path).load(&problems);
    QVERIFY2(problems.isEmpty(), qPrintable(problems.join(u'\n')));
    if (expectedMs < 0) {
        QVERIFY(!config.gracePeriod.has_value());
        QCOMPARE(settingText(config, Setting::GracePeriod), QStringLiteral("off"));
    } else {
        QVERIFY(config.gracePeriod.has_value());
        QCOMPARE(config.gracePeriod->count(), expectedMs);
    }
    // The other settings are unaffected by it.
    if (content.contains("batch_size=5"))
        QCOMPARE(config.batchSize, 5);
}

void TestSettingsStore::gracePeriodOffIsNotWritten() {
    SettingsStore store(m_path);
    Config config = defaults();
    QCOMPARE(applySetting(config, Setting::GracePeriod, QStringLiteral("45m")), QString());
    QVERIFY(store.save(config));
    QVERIFY2(readFile(m_path).contains("grace_period=45m"), readFile(m_path).constData());
    QCOMPARE(SettingsStore(m_path).load().gracePeriod, std::optional(45min));
    // Off is the default: removed, not written as "off".
    QCOMPARE(applySetting(config, Setting::GracePeriod, QString()), QString());
    QVERIFY(store.save(config));
    QVERIFY2(!readFile(m_path).contains("grace_period"), readFile(m_path).constData());
    QVERIFY(!SettingsStore(m_path).load().gracePeriod.has_value());
}

void TestSettingsStore::refusedValuesFallBackToDefaults_data() {
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<QString>("expectedProblem");
    QTest::newRow("window") << QByteArray("batch_window=4x")
                            << QStringLiteral("batch_window: \"4x\" is not a duration");
    QTest::newRow("window zero") << QByteArray("batch_window=0")
                                 << QStringLiteral("batch_window: \"0\" is out of range");
    QTest::newRow("size") << QByteArray("batch_size=0")
                          << QStringLiteral("batch_size: \"0\" is out of range");
    QTest::newRow("bytes") << QByteArray("batch_bytes=999TB")
                           << QStringLiteral("batch_bytes: \"999TB\" is not a size");
    QTest::newRow("poll") << QByteArray("poll_interval=10ms")
                          << QStringLiteral("poll_interval: \"10ms\" is too short");
    QTest::newRow("listen") << QByteArray("listen=example.com:80")
                            << QStringLiteral("listen: \"example.com:80\" is not HOST:PORT");
    QTest::newRow("upstream") << QByteArray("upstream=ftp://x/v1")
                              << QStringLiteral("is not an http or https URL");
    QTest::newRow("body") << QByteArray("max_body=10") << QStringLiteral("is too small");
    QTest::newRow("grace") << QByteArray("grace_period=soon")
                           << QStringLiteral("grace_period: \"soon\" is not a duration or off");
    QTest::newRow("grace short") << QByteArray("grace_period=500ms")
                                 << QStringLiteral("grace_period: \"500ms\" is out of range");
}

void TestSettingsStore::refusedValuesFallBackToDefaults() {
    QFETCH(QByteArray, line);
    QFETCH(QString, expectedProblem);
    QVERIFY(QDir().mkpath(QFileInfo(m_path).absolutePath()));
    writeFile(m_path, "[proxy]\n" + line + "\nbatch_size_unrelated=1\n");
    SettingsStore store(m_path);
    QStringList problems;
    const Config config = store.load(&problems);
    QCOMPARE(problems.size(), 1);
    QVERIFY2(problems.constFirst().contains(expectedProblem), qPrintable(problems.constFirst()));
    QVERIFY(problems.constFirst().contains(QStringLiteral("the default is used")));
    QCOMPARE(allTexts(config), allTexts(defaults()));
}

void TestSettingsStore::fileIsOwnerOnly() {
    SettingsStore store(m_path);
    QVERIFY(store.setNotificationsEnabled(false));
    QVERIFY(QFileInfo::exists(m_path));
    QCOMPARE(QFile::permissions(m_path) & GroupOrOther, QFile::Permissions());
    QVERIFY(QFile::permissions(m_path) & QFile::ReadOwner);
    QVERIFY(QFile::permissions(m_path) & QFile::WriteOwner);
}

void TestSettingsStore::existingFileBecomesOwnerOnly() {
    QVERIFY(QDir().mkpath(QFileInfo(m_path).absolutePath()));
    writeFile(m_path, "[ui]\nnotifications=true\n");
    QVERIFY(QFile::setPermissions(m_path, QFile::ReadOwner | QFile::WriteOwner | QFile::ReadGroup |
                                              QFile::ReadOther));
    SettingsStore store(m_path);
    QVERIFY(store.storeKeyInFile("sk-test-key-0123456789abcd"));
    QCOMPARE(QFile::permissions(m_path) & GroupOrOther, QFile::Permissions());
}

void TestSettingsStore::unwritableFileReportsError() {
    const QString blocker = m_dir->filePath(QStringLiteral("blocker"));
    writeFile(blocker, "a file, not a folder");
    SettingsStore store(blocker + QStringLiteral("/llm-proxy.conf"));
    QVERIFY(!store.save(defaults()));
    QVERIFY(!store.error().isEmpty());
}

void TestSettingsStore::keyInFile() {
    const QByteArray key = "sk-file-key-0123456789wxyz";
    {
        SettingsStore store(m_path);
        QVERIFY(store.storeKeyInFile(key + "  "));
        QCOMPARE(store.keyLocation(), KeyLocation::File);
        QCOMPARE(store.fileKey(), key);
    }
    SettingsStore reopened(m_path);
    QCOMPARE(reopened.keyLocation(), KeyLocation::File);
    QCOMPARE(reopened.load().apiKey, key);
    QCOMPARE(QFile::permissions(m_path) & GroupOrOther, QFile::Permissions());
}

void TestSettingsStore::keyLocationKeychainRemovesFileKey() {
    const QByteArray key = "sk-file-key-0123456789wxyz";
    SettingsStore store(m_path);
    QVERIFY(store.storeKeyInFile(key));
    QVERIFY(readFile(m_path).contains(key));
    QVERIFY(store.setKeyLocation(KeyLocation::Keychain));
    QCOMPARE(store.keyLocation(), KeyLocation::Keychain);
    QVERIFY(store.fileKey().isEmpty());
    QVERIFY(store.load().apiKey.isEmpty()); // the keychain's key is read elsewhere
    QVERIFY(!readFile(m_path).contains(key));
    QVERIFY(store.setKeyLocation(KeyLocation::None));
    QCOMPARE(store.keyLocation(), KeyLocation::None);
}

void TestSettingsStore::preferencesHaveDefaultsAndBounds() {
    {
        SettingsStore store(m_path);
        QCOMPARE(store.notificationsEnabled(), true);
        QCOMPARE(store.chartSpan(), 0);
        QVERIFY(store.setChartSpan(2));
        QCOMPARE(store.chartSpan(), 2);
        QVERIFY(store.setChartSpan(99)); // clamped
        QCOMPARE(store.chartSpan(), 2);
        QVERIFY(store.setNotificationsEnabled(false));
        QCOMPARE(store.notificationsEnabled(), false);
    }
    writeFile(m_path, "[ui]\nchart_span=7\n");
    QCOMPARE(SettingsStore(m_path).chartSpan(), 2);
    writeFile(m_path, "[ui]\nchart_span=-3\n");
    QCOMPARE(SettingsStore(m_path).chartSpan(), 0);
    writeFile(m_path, "[ui]\nchart_span=hour\n");
    QCOMPARE(SettingsStore(m_path).chartSpan(), 0);
}

void TestSettingsStore::commandLineOverridesStoredSettings() {
    SettingsStore store(m_path);
    Config saved = defaults();
    QCOMPARE(applySetting(saved, Setting::BatchWindow, QStringLiteral("2s")), QString());
    QCOMPARE(applySetting(saved, Setting::BatchSize, QStringLiteral("10")), QString());
    QCOMPARE(applySetting(saved, Setting::Listen, QStringLiteral("127.0.0.1:4444")), QString());
    QVERIFY(store.save(saved));

    const Config base = SettingsStore(m_path).load();
    const CommandLine line = parseCommandLine(
        program({QStringLiteral("--batch-size"), QStringLiteral("5"), QStringLiteral("--no-gui")}),
        {}, base);
    QCOMPARE(line.action, CommandLine::Action::Run);
    QCOMPARE(line.config.batchWindow, 2s); // stored
    QCOMPARE(line.config.batchSize, 5);    // the command line wins
    QCOMPARE(settingText(line.config, Setting::Listen), QStringLiteral("127.0.0.1:4444"));
    QCOMPARE(line.config.listen.size(), 1);
    QVERIFY(line.config.noGui);

    // A stored grace period applies, and the command line can turn it off for a run.
    QCOMPARE(applySetting(saved, Setting::GracePeriod, QStringLiteral("1h")), QString());
    QVERIFY(store.save(saved));
    const Config withGrace = SettingsStore(m_path).load();
    QCOMPARE(withGrace.gracePeriod, std::optional(1h));
    QCOMPARE(parseCommandLine(program(), {}, withGrace).config.gracePeriod, std::optional(1h));
    const CommandLine off = parseCommandLine(
        program({QStringLiteral("--grace-period"), QStringLiteral("off")}), {}, withGrace);
    QCOMPARE(off.action, CommandLine::Action::Run);
    QVERIFY(!off.config.gracePeriod.has_value());

    // Stored origins and hosts apply; given on the command line, the lists replace them.
    QCOMPARE(applySetting(saved, Setting::AllowOrigins,
                          QStringLiteral("http://localhost:5173, https://tool.example")),
             QString());
    QCOMPARE(applySetting(saved, Setting::AllowHosts, QStringLiteral("box.lan")), QString());
    QVERIFY(store.save(saved));
    const Config withAccess = SettingsStore(m_path).load();
    const Config storedOnly = parseCommandLine(program(), {}, withAccess).config;
    QCOMPARE(storedOnly.allowOrigins,
             (QList<QByteArray>{"http://localhost:5173", "https://tool.example"}));
    QCOMPARE(storedOnly.allowHosts, QList<QByteArray>{"box.lan"});
    const CommandLine replaced = parseCommandLine(
        program({QStringLiteral("--allow-origin=http://a.example"),
                 QStringLiteral("--allow-origin"), QStringLiteral("http://b.example")}),
        {}, withAccess);
    QCOMPARE(replaced.action, CommandLine::Action::Run);
    QCOMPARE(replaced.config.allowOrigins,
             (QList<QByteArray>{"http://a.example", "http://b.example"}));
    QCOMPARE(replaced.config.allowHosts, QList<QByteArray>{"box.lan"}); // not given: stored

    // A bad option is still an error, whatever is stored.
    QCOMPARE(parseCommandLine(program({QStringLiteral("--batch-size=0")}), {}, base).action,
             CommandLine::Action::Error);
}

void TestSettingsStore::environmentKeyOverridesStoredKey() {
    Config base = defaults();
    base.apiKey = "sk-stored-0123456789-aaaa";
    QCOMPARE(parseCommandLine(program(), {}, base).config.apiKey, base.apiKey);
    QCOMPARE(parseCommandLine(program(), "  ", base).config.apiKey, base.apiKey);
    QCOMPARE(parseCommandLine(program(), "sk-env-0123456789-bbbb\n", base).config.apiKey,
             QByteArray("sk-env-0123456789-bbbb"));
    // The stored key is redacted from error messages like the environment's.
    const CommandLine line = parseCommandLine(
        program({QStringLiteral("--listen=x") + QString::fromUtf8(base.apiKey)}), {}, base);
    QCOMPARE(line.action, CommandLine::Action::Error);
    QVERIFY(!line.message.contains(QString::fromUtf8(base.apiKey)));
}

void TestSettingsStore::applySettingAgreesWithCommandLine_data() {
    QTest::addColumn<Setting>("setting");
    QTest::addColumn<QString>("value");
    const auto row = [](const char *name, Setting setting, const char *value) {
        QTest::newRow(name) << setting << QString::fromUtf8(value);
    };
    row("listen ok", Setting::Listen, "127.0.0.1:0");
    row("listen bad", Setting::Listen, "nowhere");
    row("listen port", Setting::Listen, ":70000");
    row("upstream ok", Setting::Upstream, "https://example.com/v1/");
    row("upstream bad", Setting::Upstream, "example.com");
    row("upstream creds", Setting::Upstream, "https://user:pw@example.com/v1");
    row("window ok", Setting::BatchWindow, "0.5");
    row("window bad", Setting::BatchWindow, "soon");
    row("window long", Setting::BatchWindow, "25h");
    row("size ok", Setting::BatchSize, "50000");
    row("size big", Setting::BatchSize, "50001");
    row("size text", Setting::BatchSize, "ten");
    row("bytes ok", Setting::BatchBytes, "1KB");
    row("bytes small", Setting::BatchBytes, "999");
    row("bytes big", Setting::BatchBytes, "201MB");
    row("poll ok", Setting::PollInterval, "100ms");
    row("poll short", Setting::PollInterval, "99ms");
    row("body ok", Setting::MaxBody, "1KiB");
    row("body small", Setting::MaxBody, "1023");
    row("grace ok", Setting::GracePeriod, "2h");
    row("grace off", Setting::GracePeriod, "off");
    row("grace Off", Setting::GracePeriod, "Off");
    row("grace empty", Setting::GracePeriod, "");
    row("grace short", Setting::GracePeriod, "0.5");
    row("grace long", Setting::GracePeriod, "800h");
    row("grace bad", Setting::GracePeriod, "later");
    row("origin ok", Setting::AllowOrigins, "http://localhost:5173");
    row("origin slash", Setting::AllowOrigins, "HTTPS://Tool.Example/");
    row("origin path", Setting::AllowOrigins, "http://localhost:5173/app");
    row("origin bare", Setting::AllowOrigins, "localhost");
    row("origin creds", Setting::AllowOrigins, "http://u:p@localhost");
    row("origin query", Setting::AllowOrigins, "http://localhost/?x");
    row("host ok", Setting::AllowHosts, "proxy.example.lan");
    row("host port", Setting::AllowHosts, "Proxy.LAN:3030");
    row("host bad", Setting::AllowHosts, "evil_host!");
    row("host dash", Setting::AllowHosts, "-bad.example");
}

void TestSettingsStore::applySettingAgreesWithCommandLine() {
    QFETCH(Setting, setting);
    QFETCH(QString, value);
    Config viaPage = defaults();
    const QString pageProblem = applySetting(viaPage, setting, value);
    const QString option = settingOption(setting);
    const CommandLine line = parseCommandLine(program({option + u'=' + value}));
    if (pageProblem.isEmpty()) {
        QCOMPARE(line.action, CommandLine::Action::Run);
        QCOMPARE(allTexts(viaPage), allTexts(line.config));
    } else {
        QCOMPARE(line.action, CommandLine::Action::Error);
        QCOMPARE(line.message,
                 QStringLiteral("llm-proxy: ") + option + QStringLiteral(": ") + pageProblem);
        QVERIFY(pageProblem.startsWith(u'"'));
    }
}

// The origin and host lists as a settings file may hold them: spaces, commas (which QSettings
// reads as a list), duplicates; a bad entry drops the whole list with the command line's reason.
void TestSettingsStore::accessListsInTheFile() {
    QVERIFY(QDir().mkpath(QFileInfo(m_path).absolutePath()));
    writeFile(m_path, "[access]\nallow_origins=http://a.example, HTTP://B.example/\n"
                      "allow_hosts=one.lan two.lan one.lan\n");
    QStringList problems;
    Config config = SettingsStore(m_path).load(&problems);
    QVERIFY2(problems.isEmpty(), qPrintable(problems.join(u'\n')));
    QCOMPARE(config.allowOrigins, (QList<QByteArray>{"http://a.example", "http://b.example"}));
    QCOMPARE(config.allowHosts, (QList<QByteArray>{"one.lan", "two.lan"}));
    QCOMPARE(settingText(config, Setting::AllowOrigins),
             QStringLiteral("http://a.example http://b.example"));

    writeFile(m_path, "[access]\nallow_origins=http://a.example not-an-origin\n");
    problems.clear();
    config = SettingsStore(m_path).load(&problems);
    QVERIFY(config.allowOrigins.isEmpty());
    QCOMPARE(problems.size(), 1);
    QVERIFY2(problems.constFirst().startsWith(
                 QStringLiteral("allow_origins: \"not-an-origin\" is not an origin")),
             qPrintable(problems.constFirst()));
}

void TestSettingsStore::applySettingLeavesConfigAloneOnError() {
    Config config = defaults();
    const QString before = allTexts(config);
    QVERIFY(!applySetting(config, Setting::BatchWindow, QStringLiteral("4x")).isEmpty());
    QVERIFY(!applySetting(config, Setting::Listen, QStringLiteral("bad")).isEmpty());
    QCOMPARE(allTexts(config), before);
    QCOMPARE(config.listenText, defaults().listenText);
}

void TestSettingsStore::applySettingNeverRepeatsKey() {
    Config config = defaults();
    config.apiKey = "secretkeyvalue-0123456789";
    const QString problem =
        applySetting(config, Setting::Upstream, QStringLiteral("x-secretkeyvalue-0123456789"));
    QVERIFY(!problem.isEmpty());
    QVERIFY2(!problem.contains(QStringLiteral("secretkeyvalue")), qPrintable(problem));
    const QString keyLike = applySetting(config, Setting::Listen, QStringLiteral("sk-abcdef"));
    QVERIFY2(!keyLike.contains(QStringLiteral("sk-abcdef")), qPrintable(keyLike));
}

void TestSettingsStore::settingTextRoundTrips_data() {
    QTest::addColumn<QStringList>("args");
    QTest::newRow("defaults") << QStringList();
    QTest::newRow("listen localhost") << QStringList{QStringLiteral("--listen=localhost:80")};
    QTest::newRow("listen any") << QStringList{QStringLiteral("--listen=:81")};
    QTest::newRow("listen v6") << QStringList{QStringLiteral("--listen=[::1]:82")};
    QTest::newRow("odd values") << QStringList{
        QStringLiteral("--batch-window=1500ms"),
        QStringLiteral("--poll-interval=90m"),
        QStringLiteral("--batch-bytes=1000001"),
        QStringLiteral("--max-body=3GiB"),
        QStringLiteral("--upstream=https://h.example:8443/a%20b/v1"),
        QStringLiteral("--grace-period=1.25s")};
    QTest::newRow("grace period") << QStringList{QStringLiteral("--grace-period=36h")};
    QTest::newRow("access lists") << QStringList{
        QStringLiteral("--allow-origin=http://a.example"),
        QStringLiteral("--allow-origin=https://B.example/"),
        QStringLiteral("--allow-host=h.lan:80")};
}

void TestSettingsStore::settingTextRoundTrips() {
    QFETCH(QStringList, args);
    const CommandLine line = parseCommandLine(program(args));
    QCOMPARE(line.action, CommandLine::Action::Run);
    Config copy = defaults();
    copy.gracePeriod = std::chrono::minutes(7); // so that "off" has something to undo
    for (Setting setting : AllSettings) {
        const QString text = settingText(line.config, setting);
        QCOMPARE(applySetting(copy, setting, text), QString());
    }
    QCOMPARE(copy.listen, line.config.listen);
    QCOMPARE(copy.upstream, line.config.upstream);
    QCOMPARE(copy.batchWindow, line.config.batchWindow);
    QCOMPARE(copy.pollInterval, line.config.pollInterval);
    QCOMPARE(copy.batchBytes, line.config.batchBytes);
    QCOMPARE(copy.maxBody, line.config.maxBody);
    QCOMPARE(copy.gracePeriod, line.config.gracePeriod);
    QCOMPARE(copy.allowOrigins, line.config.allowOrigins);
    QCOMPARE(copy.allowHosts, line.config.allowHosts);
    // The default listen addresses (both loopbacks) read as localhost.
    if (args.isEmpty())
        QCOMPARE(settingText(line.config, Setting::Listen), QStringLiteral("localhost:3030"));
}

void TestSettingsStore::screenshotOptions() {
    const CommandLine plain = parseCommandLine(program());
    QVERIFY(plain.config.screenshotPath.isEmpty());
    QCOMPARE(plain.config.screenshotDelay, 1s);

    const CommandLine shot =
        parseCommandLine(program({QStringLiteral("--screenshot"), QStringLiteral("out.png"),
                                  QStringLiteral("--screenshot-delay=2.5")}));
    QCOMPARE(shot.action, CommandLine::Action::Run);
    QVERIFY(QFileInfo(shot.config.screenshotPath).isAbsolute());
    QVERIFY(shot.config.screenshotPath.endsWith(QStringLiteral("/out.png")));
    QCOMPARE(shot.config.screenshotDelay, 2500ms);

    const CommandLine headless = parseCommandLine(
        program({QStringLiteral("--no-gui"), QStringLiteral("--screenshot=x.png")}));
    QCOMPARE(headless.action, CommandLine::Action::Error);
    QVERIFY2(headless.message.contains(QStringLiteral("--screenshot")),
             qPrintable(headless.message));
    QVERIFY(headless.message.contains(QStringLiteral("--no-gui")));

    QCOMPARE(parseCommandLine(program({QStringLiteral("--screenshot-delay=2h")})).action,
             CommandLine::Action::Error);
    QCOMPARE(parseCommandLine(program({QStringLiteral("--screenshot-delay=soon")})).action,
             CommandLine::Action::Error);
    QCOMPARE(parseCommandLine(program({QStringLiteral("--screenshot")})).action,
             CommandLine::Action::Error);
    const CommandLine help = parseCommandLine(program({QStringLiteral("--help")}));
    QVERIFY(help.message.contains(QStringLiteral("--screenshot FILE")));
    QVERIFY(help.message.contains(QStringLiteral("--screenshot-delay DUR")));
}

// The settings file reads the table: every setting the window shows is stored under its key,
// and every stored setting survives save and load with a value other than its default.
void TestSettingsStore::everyDeclaredSettingIsStored() {
    using Kind = SettingDeclaration::Kind;
    const Config base = defaults();
    Config changed = base;
    QStringList keys;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.shownInWindow())
            QVERIFY2(decl.stored(), qPrintable(decl.optionName()));
        if (!decl.stored())
            continue;
        QVERIFY2(decl.storeKey.contains(u'/'), qPrintable(decl.storeKey));
        QVERIFY2(!keys.contains(decl.storeKey), qPrintable(decl.storeKey));
        keys.append(decl.storeKey);
        QString value;
        switch (decl.kind) {
        case Kind::Listen:
            value = QStringLiteral("127.0.0.1:4999");
            break;
        case Kind::Url:
            value = QStringLiteral("http://127.0.0.1:9/v1");
            break;
        case Kind::Duration:
        case Kind::DurationOrOff:
        case Kind::Size:
        case Kind::Count:
            value = QString::number(decl.minimum == 0 ? decl.minimum + 1 : decl.minimum) +
                    (decl.kind == Kind::Count  ? QString()
                     : decl.kind == Kind::Size ? QStringLiteral("B")
                                               : QStringLiteral("ms"));
            break;
        case Kind::List:
            value = decl.setting == Setting::AllowOrigins
                        ? QStringLiteral("http://localhost:5173, https://tool.example")
                    : decl.setting == Setting::Providers
                        ? QStringLiteral("gemini=gemini work=azure;url=https://r.openai.azure.com")
                    : decl.setting == Setting::Routes
                        ? QStringLiteral("gemini-*=gemini my-deployment=work")
                    : decl.setting == Setting::ModelRoutes
                        ? QStringLiteral("gpt-5*=flex-then-batch gpt-4o=relay")
                    : decl.setting == Setting::QueueLimits
                        ? QStringLiteral("gpt-4o-mini=2M gpt-4o*=90k")
                        : QStringLiteral("proxy.lan box.lan:8080");
            break;
        case Kind::Name:
            value = QStringLiteral("gemini");
            break;
        default:
            QFAIL(qPrintable(QStringLiteral("no sample for ") + decl.optionName()));
        }
        QCOMPARE(applySetting(changed, decl.setting, value), QString());
        QVERIFY2(settingText(changed, decl.setting) != settingText(base, decl.setting),
                 qPrintable(decl.optionName()));
    }
    SettingsStore store(m_path);
    QVERIFY(store.save(changed));
    QSettings file(m_path, QSettings::IniFormat);
    QStringList written = file.allKeys();
    written.sort();
    keys.sort();
    QCOMPARE(written, keys);
    const Config loaded = SettingsStore(m_path).load();
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.stored())
            QCOMPARE(settingText(loaded, decl.setting), settingText(changed, decl.setting));
    }
}

QTEST_GUILESS_MAIN(TestSettingsStore)
#include "tst_settingsstore.moc"
