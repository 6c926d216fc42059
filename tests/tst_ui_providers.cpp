// SPDX-License-Identifier: GPL-3.0-or-later
// The Providers page (issue 12, routing): the configured providers with where each key comes
// from; a provider added with its profile's URL and a key that goes to the key store (the
// keychain, or the 0600 settings file when chosen), never into the settings' own lines; route
// rules and the default saved through the settings store and loaded back as the core loads
// them; bad entries refused with the command line's reason next to the field; the provider of
// each batch in the batch tables. Without a keychain here (no D-Bus session, on purpose), a key
// meant for it is used for the session only; tst_ui_providers's realKeychain child checks the
// keychain itself inside dbus-run-session when gnome-keyring is installed. Test connection per
// provider, against the fakes: fine with the models, 401, 403, unreachable and TLS for Gemini
// and Groq profiles, and Anthropic's form with a key typed and not applied yet. The Models
// group: how each model is answered (--model-route) and its queue limit (--queue-limit), added,
// removed, refused with the parsers' reasons, saved and loaded back, and applied to a running
// proxy without a restart.

#include "batch/batchcore.h"
#include "fakeanthropic.h"
#include "fakeprovider.h"
#include "provider/modelroute.h"
#include "provider/queuelimit.h"
#include "proxyfixture.h"
#include "proxyservice.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "ui/batchtablemodel.h"
#include "ui/connectiontestrow.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/providerssettings.h"
#include "ui/settingscontroller.h"

#include "keychainsession.h"

#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QNetworkReply>
#include <QProcess>
#include <QPushButton>
#include <QSignalSpy>
#include <QSslSocket>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;

namespace {
const QByteArray GeminiKey = "gm-providers-test-0123456789-gggg";
const QString Service = QStringLiteral("llm-proxy-test-providers");
constexpr auto ChildVariable = "LLMPROXY_TEST_REAL_KEYCHAIN";

bool isChild() {
    return qEnvironmentVariableIsSet(ChildVariable);
}

QByteArray fileText(const QString &path) {
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}
} // namespace

class TestUiProviders final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void tableShowsProvidersAndKeySources();
    void addingGeminiKeepsItsKeyOutOfTheSettings();
    void anthropicIsOneOfTheProfiles();
    void keyInTheFileIsUsedAtStartAndForgotten();
    void routingRoundTripsThroughTheStore();
    void badEntriesAreRefusedNextToTheField();
    void modelRulesRoundTripThroughTheStore();
    void badModelRulesAreRefused();
    void modelRulesApplyToTheRunningProxy();
    void providerColumnShowsEachBatchsProvider();
    void testConnectionPerProvider();
    void testConnectionAnthropicWithTypedKey();
    void realKeychain();
    void realKeychainChild();

private:
    Config baseConfig() const;
    void buildApp(const Config &effective);
    ProvidersSettings *page() const { return m_app->window()->providers(); }
    template <typename T>
    T *find(const char *name) const {
        return page()->findChild<T *>(QString::fromLatin1(name));
    }
    // The editor filled in for a new provider, then saved.
    bool addProvider(const QString &name, const QString &profile, const QByteArray &key,
                     bool inFile);

    // The Models group's rows, filled in and added.
    void addModelRoute(const QString &pattern, const QString &route);
    void addQueueLimit(const QString &pattern, const QString &tokens);
    QStringList listTexts(const char *name) const;

    // Selects the provider's row, presses Test connection and waits for the answer.
    QString testConnection(const QString &name);

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    QString m_path;
};

void TestUiProviders::initTestCase() {
    if (isChild())
        return;
    // No keychain: no session bus, and no X display to autolaunch one.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    qunsetenv("DISPLAY");
    qunsetenv("WAYLAND_DISPLAY");
    qunsetenv("GEMINI_API_KEY");
    qunsetenv("GROQ_API_KEY");
}

void TestUiProviders::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_path = m_dir->filePath(QStringLiteral("llm-proxy.conf"));
    m_store = std::make_unique<SettingsStore>(m_path);
    m_keys = std::make_unique<KeyStore>(Service);
}

void TestUiProviders::cleanup() {
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
    qunsetenv("LLMPROXY_TEST_GROQ_KEY");
    qunsetenv("LLMPROXY_TEST_GEMINI_KEY");
}

Config TestUiProviders::baseConfig() const {
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data"));
    config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1"));
    return config;
}

void TestUiProviders::buildApp(const Config &effective) {
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), effective, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
}

bool TestUiProviders::addProvider(const QString &name, const QString &profile,
                                  const QByteArray &key, bool inFile) {
    find<QPushButton>("addProviderButton")->click();
    if (!find<QWidget>("providerEditor")->isVisibleTo(page()))
        return false;
    find<QLineEdit>("providerNameEdit")->setText(name);
    auto *profiles = find<QComboBox>("providerProfileCombo");
    profiles->setCurrentIndex(profiles->findData(profile));
    find<QLineEdit>("providerKeyEdit")->setText(QString::fromUtf8(key));
    find<QComboBox>("providerKeyLocationCombo")->setCurrentIndex(inFile ? 1 : 0);
    find<QPushButton>("saveProviderButton")->click();
    return !find<QWidget>("providerEditor")->isVisibleTo(page());
}

void TestUiProviders::addModelRoute(const QString &pattern, const QString &route) {
    find<QLineEdit>("modelRoutePatternEdit")->setText(pattern);
    auto *routes = find<QComboBox>("modelRouteCombo");
    routes->setCurrentIndex(routes->findData(route));
    find<QPushButton>("addModelRouteButton")->click();
}

void TestUiProviders::addQueueLimit(const QString &pattern, const QString &tokens) {
    find<QLineEdit>("queueLimitPatternEdit")->setText(pattern);
    find<QLineEdit>("queueLimitTokensEdit")->setText(tokens);
    find<QPushButton>("addQueueLimitButton")->click();
}

QStringList TestUiProviders::listTexts(const char *name) const {
    QStringList texts;
    auto *list = find<QListWidget>(name);
    for (int row = 0; row < list->count(); ++row)
        texts.append(list->item(row)->text());
    return texts;
}

QString TestUiProviders::testConnection(const QString &name) {
    auto *table = find<QTableWidget>("providersTable");
    const QList<QTableWidgetItem *> found = table->findItems(name, Qt::MatchExactly);
    if (found.isEmpty())
        return QStringLiteral("no row named ") + name;
    table->selectRow(found.constFirst()->row());
    auto *row = find<ConnectionTestRow>("providerConnectionTest");
    auto *button = row->findChild<QPushButton *>(QStringLiteral("testConnectionButton"));
    if (!button->isEnabled())
        return QStringLiteral("button disabled");
    QSignalSpy finished(row->checker(), &ConnectionChecker::finished);
    button->click();
    if (!finished.wait(20'000))
        return QStringLiteral("no answer");
    return row->resultText();
}

void TestUiProviders::tableShowsProvidersAndKeySources() {
    qputenv("LLMPROXY_TEST_GROQ_KEY", "gq-from-the-environment-0000-qqqq");
    Config config = baseConfig();
    config.providers = {"gemini=gemini", "groq=groq;key_env=LLMPROXY_TEST_GROQ_KEY"};
    buildApp(config);
    auto *table = find<QTableWidget>("providersTable");
    QVERIFY(table);
    QCOMPARE(table->rowCount(), 3);
    QCOMPARE(table->item(0, ProvidersSettings::NameColumn)->text(), QStringLiteral("openai"));
    QCOMPARE(table->item(0, ProvidersSettings::UrlColumn)->text(),
             QStringLiteral("http://127.0.0.1:9/v1"));
    QCOMPARE(table->item(1, ProvidersSettings::NameColumn)->text(), QStringLiteral("gemini"));
    QVERIFY(table->item(1, ProvidersSettings::ProfileColumn)->text().startsWith(u"Gemini"));
    QVERIFY(table->item(1, ProvidersSettings::UrlColumn)
                ->text()
                .startsWith(QStringLiteral("https://generativelanguage.googleapis.com")));
    QVERIFY2(table->item(1, ProvidersSettings::KeyColumn)->text().startsWith(u"missing"),
             qPrintable(table->item(1, ProvidersSettings::KeyColumn)->text()));
    // From the environment: the variable and the last four characters, never the key.
    const QString groqKey = table->item(2, ProvidersSettings::KeyColumn)->text();
    QVERIFY2(groqKey.contains(QStringLiteral("environment (LLMPROXY_TEST_GROQ_KEY)")),
             qPrintable(groqKey));
    QVERIFY(groqKey.contains(QStringLiteral("qqqq")));
    QVERIFY(!groqKey.contains(QStringLiteral("from-the-environment")));
    // The implicit openai row is the Settings page's: neither edited nor removed here.
    table->selectRow(0);
    QVERIFY(!find<QPushButton>("editProviderButton")->isEnabled());
    QVERIFY(!find<QPushButton>("removeProviderButton")->isEnabled());
    table->selectRow(1);
    QVERIFY(find<QPushButton>("editProviderButton")->isEnabled());
}

void TestUiProviders::addingGeminiKeepsItsKeyOutOfTheSettings() {
    buildApp(baseConfig());
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QVERIFY(addProvider(QStringLiteral("gemini"), QStringLiteral("gemini"), GeminiKey, false));
    // The profile's URL was filled in; the key field is a password field, emptied on save.
    QCOMPARE(find<QLineEdit>("providerKeyEdit")->echoMode(), QLineEdit::Password);
    QVERIFY(find<QLineEdit>("providerKeyEdit")->text().isEmpty());
    auto *table = find<QTableWidget>("providersTable");
    QCOMPARE(table->rowCount(), 2);
    QVERIFY(table->item(1, ProvidersSettings::KeyColumn)->text().contains(u"on Apply"));
    find<QPushButton>("applyProvidersButton")->click();
    // No keychain here: the key is in use for this session and kept nowhere.
    QTRY_VERIFY(m_settings->config().providerKeys.value("gemini") == GeminiKey);
    QCOMPARE(m_settings->config().providers, QList<QByteArray>{"gemini=gemini"});
    QTRY_COMPARE(m_settings->providerKeyState("gemini").source, KeyState::Source::Session);
    QTRY_VERIFY(table->item(1, ProvidersSettings::KeyColumn)->text().contains(u"session"));
    QVERIFY(table->item(1, ProvidersSettings::KeyColumn)->text().contains(u"gggg"));
    QVERIFY(find<QLabel>("providersMessage")->text().contains(u"keychain"));
    QVERIFY(!fileText(m_path).contains(GeminiKey));
    QVERIFY(fileText(m_path).contains("gemini=gemini"));
    QCOMPARE(m_store->providerKeyLocation("gemini"), KeyLocation::None);

    // Edited again with "in the settings file": kept there (0600), used, shown by its end.
    table->selectRow(1);
    find<QPushButton>("editProviderButton")->click();
    QVERIFY(find<QLineEdit>("providerNameEdit")->isReadOnly());
    find<QLineEdit>("providerKeyEdit")->setText(QString::fromUtf8(GeminiKey));
    find<QComboBox>("providerKeyLocationCombo")->setCurrentIndex(1);
    find<QPushButton>("saveProviderButton")->click();
    find<QPushButton>("applyProvidersButton")->click();
    QTRY_COMPARE(m_store->providerKeyLocation("gemini"), KeyLocation::File);
    QCOMPARE(m_store->providerFileKey("gemini"), GeminiKey);
    QCOMPARE(QFileInfo(m_path).permissions() &
                 (QFile::ReadGroup | QFile::WriteGroup | QFile::ReadOther | QFile::WriteOther),
             QFile::Permissions());
    QTRY_COMPARE(m_settings->providerKeyState("gemini").source, KeyState::Source::File);
    // Only in the key's own entry, never in the provider's line.
    QVERIFY(!m_store->load().providers.constFirst().contains(GeminiKey));
    QVERIFY(!table->item(1, ProvidersSettings::KeyColumn)
                 ->text()
                 .contains(QString::fromUtf8(GeminiKey)));
}

// Claude through Message Batches is added like the others: its profile, its URL, its line.
void TestUiProviders::anthropicIsOneOfTheProfiles() {
    buildApp(baseConfig());
    QVERIFY(find<QComboBox>("providerProfileCombo")->findData(QStringLiteral("anthropic")) >= 0);
    QVERIFY(addProvider(QStringLiteral("claude"), QStringLiteral("anthropic"),
                        "sk-ant-test-key-0000-aaaa", true));
    auto *table = find<QTableWidget>("providersTable");
    QCOMPARE(table->rowCount(), 2);
    QVERIFY(table->item(1, ProvidersSettings::UrlColumn)
                ->text()
                .startsWith(QStringLiteral("https://api.anthropic.com")));
    find<QPushButton>("applyProvidersButton")->click();
    QTRY_COMPARE(m_settings->config().providers, QList<QByteArray>{"claude=anthropic"});
}

void TestUiProviders::keyInTheFileIsUsedAtStartAndForgotten() {
    // What --no-gui and the desktop app both do at start: the stored settings, then loadKey().
    QVERIFY(m_store->storeProviderKeyInFile("gemini", GeminiKey));
    Config stored = m_store->load();
    stored.providers = {"gemini=gemini"};
    QVERIFY(m_store->save(stored));
    const CommandLine line = parseCommandLine(
        {QStringLiteral("llm-proxy"), QStringLiteral("--no-gui")}, QByteArray(), m_store->load());
    QCOMPARE(line.action, CommandLine::Action::Run);
    SettingsController controller(m_store.get(), m_keys.get(), line.config, QByteArray());
    QSignalSpy ready(&controller, &SettingsController::ready);
    controller.loadKey();
    QVERIFY(ready.wait(10'000));
    QCOMPARE(controller.providerKeyState("gemini").source, KeyState::Source::File);
    QString error;
    const QList<ConfiguredProvider> providers = configuredProviders(
        controller.config(), [](const QByteArray &) { return QByteArray(); }, &error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    QCOMPARE(providers.size(), 2);
    QCOMPARE(providers.at(1).apiKey, GeminiKey);

    QSignalSpy messages(&controller, &SettingsController::message);
    controller.forgetProviderKey("gemini");
    QTRY_VERIFY(!messages.isEmpty());
    QVERIFY(messages.constLast().at(0).toString().contains(u"forgotten"));
    QCOMPARE(m_store->providerKeyLocation("gemini"), KeyLocation::None);
    QVERIFY(!fileText(m_path).contains(GeminiKey));
    QVERIFY(!controller.config().providerKeys.contains("gemini"));
}

void TestUiProviders::routingRoundTripsThroughTheStore() {
    buildApp(baseConfig());
    QVERIFY(addProvider(QStringLiteral("gemini"), QStringLiteral("gemini"), QByteArray(), false));
    QVERIFY(addProvider(QStringLiteral("azure"), QStringLiteral("azure"), QByteArray(), false) ==
            false); // Azure has no default URL: refused until one is given
    QVERIFY(!find<QLabel>("providerUrlError")->text().isEmpty());
    find<QLineEdit>("providerUrlEdit")->setText(QStringLiteral("https://team.openai.azure.com"));
    find<QPushButton>("saveProviderButton")->click();
    QVERIFY(!find<QWidget>("providerEditor")->isVisibleTo(page()));

    auto *pattern = find<QLineEdit>("routePatternEdit");
    auto *target = find<QComboBox>("routeProviderCombo");
    pattern->setText(QStringLiteral("gemini-*"));
    target->setCurrentText(QStringLiteral("gemini"));
    find<QPushButton>("addRouteButton")->click();
    pattern->setText(QStringLiteral("my-deployment"));
    target->setCurrentText(QStringLiteral("azure"));
    find<QPushButton>("addRouteButton")->click();
    QCOMPARE(find<QListWidget>("routesList")->count(), 2);
    auto *defaults = find<QComboBox>("defaultProviderCombo");
    defaults->setCurrentIndex(defaults->findData(QStringLiteral("none")));
    Q_EMIT defaults->activated(defaults->currentIndex());

    QVERIFY(find<QPushButton>("applyProvidersButton")->isEnabled());
    find<QPushButton>("applyProvidersButton")->click();
    QVERIFY(!find<QPushButton>("applyProvidersButton")->isEnabled());

    // In the settings file as the command line writes them; loaded back, the core's view.
    SettingsStore reread(m_path);
    const Config loaded = reread.load();
    QCOMPARE(loaded.providers,
             (QList<QByteArray>{"gemini=gemini", "azure=azure;url=https://team.openai.azure.com"}));
    QCOMPARE(loaded.routes, (QList<QByteArray>{"gemini-*=gemini", "my-deployment=azure"}));
    QVERIFY(loaded.defaultProvider.isEmpty());
    QCOMPARE(m_settings->config().routes, loaded.routes);
    QString error;
    const QList<ConfiguredProvider> providers = configuredProviders(
        loaded, [](const QByteArray &) { return QByteArray(); }, &error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    QCOMPARE(providers.size(), 3);
    QCOMPARE(providers.at(2).baseUrl,
             QUrl(QStringLiteral("https://team.openai.azure.com/openai/v1")));
    const ProviderRouter router = providerRouter(loaded, providers);
    QCOMPARE(router.route("/v1/chat/completions", "gemini-2.5-flash").value_or(""), "gemini");
    QCOMPARE(router.route("/v1/chat/completions", "my-deployment").value_or(""), "azure");
    QVERIFY(!router.route("/v1/chat/completions", "gpt-4o-mini"));
    // The command line accepts what the window saved.
    QCOMPARE(parseCommandLine({QStringLiteral("llm-proxy")}, QByteArray(), loaded).action,
             CommandLine::Action::Run);
}

void TestUiProviders::badEntriesAreRefusedNextToTheField() {
    Config config = baseConfig();
    config.providers = {"gemini=gemini"};
    config.routes = {"gemini-*=gemini"};
    buildApp(config);
    auto *table = find<QTableWidget>("providersTable");
    QVERIFY(!addProvider(QStringLiteral("Bad Name"), QStringLiteral("groq"), QByteArray(), false));
    QVERIFY(find<QLabel>("providerNameError")->text().contains(u"NAME=PROFILE"));
    find<QPushButton>("cancelProviderButton")->click();
    QVERIFY(!addProvider(QStringLiteral("gemini"), QStringLiteral("groq"), QByteArray(), false));
    QVERIFY(find<QLabel>("providerNameError")->text().contains(u"already"));
    find<QLineEdit>("providerNameEdit")->setText(QStringLiteral("groq"));
    find<QLineEdit>("providerUrlEdit")->setText(QStringLiteral("ftp://groq.example"));
    find<QPushButton>("saveProviderButton")->click();
    QVERIFY(find<QLabel>("providerUrlError")->text().contains(u"http or https"));
    find<QLineEdit>("providerUrlEdit")->setText(QStringLiteral("https://api.groq.com/openai/v1"));
    find<QLineEdit>("providerKeyEnvEdit")->setText(QStringLiteral("1-NOT A VARIABLE"));
    find<QPushButton>("saveProviderButton")->click();
    QVERIFY(find<QLabel>("providerKeyEnvError")->text().contains(u"environment variable"));
    find<QPushButton>("cancelProviderButton")->click();
    QCOMPARE(table->rowCount(), 2);

    auto *pattern = find<QLineEdit>("routePatternEdit");
    pattern->setText(QStringLiteral("gem*ini"));
    find<QPushButton>("addRouteButton")->click();
    QVERIFY(find<QLabel>("routeError")->text().contains(u"'*'"));
    QCOMPARE(find<QListWidget>("routesList")->count(), 1);

    // Removing a provider a rule still names: the core's own check, and no Apply.
    table->selectRow(1);
    find<QPushButton>("removeProviderButton")->click();
    QCOMPARE(table->rowCount(), 1);
    QVERIFY(find<QLabel>("providersProblem")->text().contains(u"not configured"));
    QVERIFY(!find<QPushButton>("applyProvidersButton")->isEnabled());
    find<QPushButton>("revertProvidersButton")->click();
    QCOMPARE(table->rowCount(), 2);
    QVERIFY(find<QLabel>("providersProblem")->text().isEmpty());
}

void TestUiProviders::modelRulesRoundTripThroughTheStore() {
    buildApp(baseConfig());
    QVERIFY(find<QGroupBox>("modelsGroup"));
    auto *routes = find<QComboBox>("modelRouteCombo");
    QCOMPARE(routes->count(), 4);
    for (const char *name : {"batch", "flex", "flex-then-batch", "relay"})
        QVERIFY2(routes->findData(QString::fromLatin1(name)) >= 0, name);
    QVERIFY(!find<QPushButton>("applyProvidersButton")->isEnabled());

    addModelRoute(QStringLiteral("gpt-5"), QStringLiteral("flex"));
    addModelRoute(QStringLiteral("o4-*"), QStringLiteral("flex-then-batch"));
    addModelRoute(QStringLiteral("gpt-4o"), QStringLiteral("relay"));
    QVERIFY(find<QLineEdit>("modelRoutePatternEdit")->text().isEmpty());
    QCOMPARE(listTexts("modelRoutesList"),
             (QStringList{QStringLiteral("gpt-5 → flex"), QStringLiteral("o4-* → flex-then-batch"),
                          QStringLiteral("gpt-4o → relay")}));
    addQueueLimit(QStringLiteral("gpt-4o-mini"), QStringLiteral("2M"));
    addQueueLimit(QStringLiteral("gpt-4o*"), QStringLiteral("90k"));
    addQueueLimit(QStringLiteral("o3"), QStringLiteral("1.5B"));
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 3);
    QVERIFY(listTexts("queueLimitsList").constFirst().startsWith(u"gpt-4o-mini: 2M"));
    QVERIFY(find<QLabel>("modelRouteError")->text().isEmpty());
    QVERIFY(find<QLabel>("queueLimitError")->text().isEmpty());
    QVERIFY(page()->hasChanges());

    // Remove: the selected rule of each list.
    auto *removeRoute = find<QPushButton>("removeModelRouteButton");
    QVERIFY(!removeRoute->isEnabled());
    find<QListWidget>("modelRoutesList")->setCurrentRow(1);
    QVERIFY(removeRoute->isEnabled());
    removeRoute->click();
    find<QListWidget>("queueLimitsList")->setCurrentRow(2);
    find<QPushButton>("removeQueueLimitButton")->click();
    QCOMPARE(listTexts("modelRoutesList"),
             (QStringList{QStringLiteral("gpt-5 → flex"), QStringLiteral("gpt-4o → relay")}));
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 2);

    QVERIFY(find<QLabel>("providersProblem")->text().isEmpty());
    QVERIFY(find<QPushButton>("applyProvidersButton")->isEnabled());
    find<QPushButton>("applyProvidersButton")->click();
    QVERIFY(!find<QPushButton>("applyProvidersButton")->isEnabled());
    QVERIFY(!page()->hasChanges());
    QCOMPARE(m_settings->config().modelRoutes, (QList<QByteArray>{"gpt-5=flex", "gpt-4o=relay"}));
    QCOMPARE(m_settings->config().queueLimits,
             (QList<QByteArray>{"gpt-4o-mini=2M", "gpt-4o*=90k"}));

    // In the settings file as the command line writes them; loaded back, the core's view.
    SettingsStore reread(m_path);
    const Config loaded = reread.load();
    QCOMPARE(loaded.modelRoutes, (QList<QByteArray>{"gpt-5=flex", "gpt-4o=relay"}));
    QCOMPARE(loaded.queueLimits, (QList<QByteArray>{"gpt-4o-mini=2M", "gpt-4o*=90k"}));
    QVERIFY(fileText(m_path).contains("model_routes"));
    QVERIFY(fileText(m_path).contains("queue_limits"));
    QString error;
    const auto modelRoutes = ModelRoutes::fromSpecs(loaded.modelRoutes, &error);
    QVERIFY2(modelRoutes, qPrintable(error));
    QCOMPARE(modelRoutes->match("gpt-5").route, ModelRoute::Flex);
    QCOMPARE(modelRoutes->match("gpt-4o").route, ModelRoute::Relay);
    QCOMPARE(modelRoutes->match("o4-mini").route, ModelRoute::Batch); // its rule was removed
    const auto limits = QueueLimits::fromSpecs(loaded.queueLimits, &error);
    QVERIFY2(limits, qPrintable(error));
    QCOMPARE(limits->limitFor("gpt-4o-mini"), std::optional<qint64>(2'000'000));
    QCOMPARE(limits->limitFor("gpt-4o-2024-08-06"), std::optional<qint64>(90'000));
    QCOMPARE(limits->limitFor("o3"), std::optional<qint64>());
    QCOMPARE(parseCommandLine({QStringLiteral("llm-proxy")}, QByteArray(), loaded).action,
             CommandLine::Action::Run);

    // The next start shows them, unchanged; Revert brings back what was applied.
    m_app.reset();
    m_settings.reset();
    Config next = loaded;
    next.dataDir = m_dir->filePath(QStringLiteral("data"));
    buildApp(next);
    QCOMPARE(listTexts("modelRoutesList"),
             (QStringList{QStringLiteral("gpt-5 → flex"), QStringLiteral("gpt-4o → relay")}));
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 2);
    QVERIFY(!page()->hasChanges());
    find<QListWidget>("modelRoutesList")->setCurrentRow(0);
    find<QPushButton>("removeModelRouteButton")->click();
    addQueueLimit(QStringLiteral("o3"), QStringLiteral("40k"));
    QVERIFY(page()->hasChanges());
    QVERIFY(find<QPushButton>("revertProvidersButton")->isEnabled());
    find<QPushButton>("revertProvidersButton")->click();
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 2);
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 2);
    QVERIFY(!page()->hasChanges());
}

void TestUiProviders::badModelRulesAreRefused() {
    Config config = baseConfig();
    config.providers = {"gemini=gemini"};
    config.routes = {"gemini-*=gemini"};
    buildApp(config);
    auto *routeError = find<QLabel>("modelRouteError");
    // The parser's reasons, under the list; nothing added.
    addModelRoute(QStringLiteral("gpt*5"), QStringLiteral("flex"));
    QVERIFY2(routeError->text().contains(u"'*'"), qPrintable(routeError->text()));
    addModelRoute(QStringLiteral("/v1/embeddings"), QStringLiteral("relay"));
    QVERIFY2(routeError->text().contains(u"names a path"), qPrintable(routeError->text()));
    addModelRoute(QString(), QStringLiteral("relay"));
    QVERIFY2(routeError->text().contains(u"PATTERN=ROUTE"), qPrintable(routeError->text()));
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 0);
    // Typing again clears the reason.
    find<QLineEdit>("modelRoutePatternEdit")->setText(QStringLiteral("gpt-5"));
    QVERIFY(routeError->text().isEmpty());
    // A second rule for the same pattern (whatever its route) would never be used: refused.
    addModelRoute(QStringLiteral("gpt-5"), QStringLiteral("flex"));
    addModelRoute(QStringLiteral("gpt-5"), QStringLiteral("relay"));
    QVERIFY2(routeError->text().contains(u"already"), qPrintable(routeError->text()));
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 1);
    addModelRoute(QStringLiteral("gpt-5*"), QStringLiteral("relay")); // a prefix is another one
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 2);

    auto *limitError = find<QLabel>("queueLimitError");
    addQueueLimit(QStringLiteral("gpt-4o"), QStringLiteral("lots"));
    QVERIFY2(limitError->text().contains(u"TOKENS"), qPrintable(limitError->text()));
    addQueueLimit(QStringLiteral("gpt-4o"), QStringLiteral("0"));
    QVERIFY2(limitError->text().contains(u"TOKENS"), qPrintable(limitError->text()));
    addQueueLimit(QStringLiteral("gpt-4o"), QString());
    QVERIFY(!limitError->text().isEmpty());
    addQueueLimit(QStringLiteral("gp*t"), QStringLiteral("90k"));
    QVERIFY2(limitError->text().contains(u"'*'"), qPrintable(limitError->text()));
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 0);
    addQueueLimit(QStringLiteral("gpt-4o"), QStringLiteral("90k"));
    QVERIFY(limitError->text().isEmpty());
    addQueueLimit(QStringLiteral("gpt-4o"), QStringLiteral("2M"));
    QVERIFY2(limitError->text().contains(u"already"), qPrintable(limitError->text()));
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 1);
    QVERIFY(find<QLabel>("providersProblem")->text().isEmpty());
    QVERIFY(find<QPushButton>("applyProvidersButton")->isEnabled());

    // Flex is OpenAI's: a flex rule for models routed to Gemini is the core's refusal, no Apply.
    addModelRoute(QStringLiteral("gemini-2.5-flash"), QStringLiteral("flex-then-batch"));
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 3);
    const QString problem = find<QLabel>("providersProblem")->text();
    QVERIFY2(problem.contains(u"--model-route gemini-2.5-flash=flex-then-batch") &&
                 problem.contains(u"provider gemini"),
             qPrintable(problem));
    QCOMPARE(page()->problem(), problem);
    QVERIFY(!find<QPushButton>("applyProvidersButton")->isEnabled());
    // Its provider changed to OpenAI (no route sends it elsewhere): fine again.
    find<QListWidget>("routesList")->setCurrentRow(0);
    find<QPushButton>("removeRouteButton")->click();
    QVERIFY(find<QLabel>("providersProblem")->text().isEmpty());
    QVERIFY(find<QPushButton>("applyProvidersButton")->isEnabled());
    find<QPushButton>("revertProvidersButton")->click();
    QCOMPARE(find<QListWidget>("modelRoutesList")->count(), 0);
    QCOMPARE(find<QListWidget>("queueLimitsList")->count(), 0);
    QVERIFY(m_store->load().modelRoutes.isEmpty());
}

// Apply reaches a running proxy as the desktop app wires it (configChanged → applyConfig): the
// core holds batches to the new queue limits and the front ends answer by the new model routes,
// without a restart.
void TestUiProviders::modelRulesApplyToTheRunningProxy() {
    ProxyFixture fixture;
    QVERIFY(fixture.listening());
    Config config = fixture.baseConfig();
    config.ioThreads = ProxyFixture::ioThreads(2);
    QVERIFY(fixture.startProxy(config));
    ProxyService *proxy = fixture.proxy();
    QVERIFY(!proxy->core()->settings().queueLimits.limitFor("gpt-4o-mini"));
    buildApp(config);
    connect(m_settings.get(), &SettingsController::configChanged, proxy,
            &ProxyService::applyConfig);

    addModelRoute(QStringLiteral("gpt-4o-mini"), QStringLiteral("relay"));
    addQueueLimit(QStringLiteral("gpt-4o*"), QStringLiteral("2M"));
    QVERIFY(find<QPushButton>("applyProvidersButton")->isEnabled());
    find<QPushButton>("applyProvidersButton")->click();

    QCOMPARE(proxy->core()->settings().queueLimits.limitFor("gpt-4o-mini"),
             std::optional<qint64>(2'000'000));
    QCOMPARE(proxy->core()->settings().queueLimits.limitFor("gpt-4o-2024-08-06"),
             std::optional<qint64>(2'000'000));
    // gpt-4o-mini is relayed now: passed on at once, never batched.
    for (int i = 0; i < 2; ++i) {
        QNetworkReply *reply =
            fixture.client()->send("POST", "/v1/chat/completions",
                                   chatBody("relayed " + QByteArray::number(i), "gpt-4o-mini"));
        QVERIFY(TestClient::finished(reply, 10'000));
        QCOMPARE(TestClient::status(reply), 200);
        delete reply;
    }
    QCOMPARE(fixture.fake()->standardCalls(), 2);
    QCOMPARE(fixture.fake()->batches().size(), 0);

    // Removed again: the limit goes and the model is batched, still without a restart.
    find<QListWidget>("modelRoutesList")->setCurrentRow(0);
    find<QPushButton>("removeModelRouteButton")->click();
    find<QListWidget>("queueLimitsList")->setCurrentRow(0);
    find<QPushButton>("removeQueueLimitButton")->click();
    find<QPushButton>("applyProvidersButton")->click();
    QVERIFY(proxy->core()->settings().queueLimits.empty());
    QNetworkReply *reply =
        fixture.client()->send("POST", "/v1/chat/completions", chatBody("batched", "gpt-4o-mini"));
    QVERIFY(TestClient::finished(reply, 30'000));
    QCOMPARE(TestClient::status(reply), 200);
    delete reply;
    QCOMPARE(fixture.fake()->standardCalls(), 2);
    QCOMPARE(fixture.fake()->batches().size(), 1);
}

void TestUiProviders::providerColumnShowsEachBatchsProvider() {
    BatchTableModel model(BatchTableModel::Scope::Active);
    QAbstractItemModelTester tester(&model);
    BatchProgress gemini;
    gemini.localId = "b1";
    gemini.provider = "gemini";
    gemini.model = "gemini-2.5-flash";
    gemini.status = "running";
    BatchProgress openAi;
    openAi.localId = "b2";
    openAi.model = "gpt-4o-mini";
    openAi.status = "running";
    model.setBatches({gemini, openAi}, QDateTime::currentDateTimeUtc());
    QCOMPARE(model.headerData(BatchTableModel::ProviderColumn, Qt::Horizontal).toString(),
             QStringLiteral("Provider"));
    QCOMPARE(model.index(0, BatchTableModel::ProviderColumn).data().toString(),
             QStringLiteral("gemini"));
    QCOMPARE(model.index(1, BatchTableModel::ProviderColumn).data().toString(),
             QStringLiteral("openai"));
}

void TestUiProviders::testConnectionPerProvider() {
    FakeProvider gemini;
    gemini.setShape(FakeProvider::Shape::Gemini);
    QVERIFY(gemini.listen());
    gemini.setAcceptedKey(GeminiKey);
    const QByteArray forbidden = "gm-providers-forbidden-0123-ffff";
    gemini.setForbiddenKey(forbidden);
    quint16 closed = 0;
    {
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost, 0));
        closed = probe.serverPort();
    }
    Config config = baseConfig();
    config.providers = {
        QByteArray("gemini=gemini;url=" + gemini.baseUrl().toEncoded() +
                   ";key_env=LLMPROXY_TEST_GEMINI_KEY"),
        QByteArray("groq=groq;url=http://127.0.0.1:" + QByteArray::number(closed) + "/openai/v1"),
        // A plain HTTP server behind an https URL: the TLS handshake fails.
        QByteArray("gemtls=gemini;url=https://127.0.0.1:" + QByteArray::number(gemini.port()) +
                   "/v1beta/openai;key_env=LLMPROXY_TEST_GEMINI_KEY")};
    qputenv("LLMPROXY_TEST_GEMINI_KEY", GeminiKey);
    buildApp(config);
    // Nothing selected, nothing to test.
    QVERIFY(!find<ConnectionTestRow>("providerConnectionTest")
                 ->findChild<QPushButton *>(QStringLiteral("testConnectionButton"))
                 ->isEnabled());

    // Fine: the key from the provider's variable, the models it can use, the key never shown.
    QString text = testConnection(QStringLiteral("gemini"));
    QVERIFY2(text.startsWith(QStringLiteral("gemini: Fine: 127.0.0.1:%1 accepted the key, which "
                                            "can use 4 models: gpt-4o")
                                 .arg(gemini.port())),
             qPrintable(text));
    QCOMPARE(gemini.requests().constLast().path, QByteArray("/v1beta/openai/models"));
    QCOMPARE(gemini.requests().constLast().headers.value("authorization"),
             QByteArray("Bearer " + GeminiKey));
    QVERIFY(!text.contains(QString::fromUtf8(GeminiKey)));

    // 401: a key the provider does not know.
    qputenv("LLMPROXY_TEST_GEMINI_KEY", "gm-providers-wrong-0123456-wwww");
    text = testConnection(QStringLiteral("gemini"));
    QVERIFY2(text.startsWith(QStringLiteral("gemini: 401: ")), qPrintable(text));
    QVERIFY(text.contains(QStringLiteral("refused the key")));

    // 403: a key it knows but does not permit, with what the provider said.
    qputenv("LLMPROXY_TEST_GEMINI_KEY", forbidden);
    text = testConnection(QStringLiteral("gemini"));
    QVERIFY2(text.startsWith(QStringLiteral("gemini: 403: ")), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("It said: Country, region, or territory not "
                                          "supported")),
             qPrintable(text));
    QVERIFY(!text.contains(QString::fromUtf8(forbidden)));

    // Unreachable: nothing listens at Groq's configured port.
    text = testConnection(QStringLiteral("groq"));
    QVERIFY2(text.startsWith(QStringLiteral("groq: Unreachable: 127.0.0.1:%1 refused the "
                                            "connection")
                                 .arg(closed)),
             qPrintable(text));

    // TLS: the Gemini profile at an https URL that a plain server answers.
    if (QSslSocket::supportsSsl()) {
        qputenv("LLMPROXY_TEST_GEMINI_KEY", GeminiKey);
        const int before = int(gemini.requests().size());
        text = testConnection(QStringLiteral("gemtls"));
        QVERIFY2(text.startsWith(QStringLiteral("gemtls: TLS failed: ")), qPrintable(text));
        QCOMPARE(int(gemini.requests().size()), before); // the key never went out in the clear
    }
    // Another row selected: the previous answer goes.
    find<QTableWidget>("providersTable")->selectRow(0);
    QVERIFY(find<ConnectionTestRow>("providerConnectionTest")->resultText().isEmpty());
}

void TestUiProviders::testConnectionAnthropicWithTypedKey() {
    FakeAnthropic claude;
    QVERIFY(claude.listen());
    const QByteArray key = "sk-ant-providers-typed-0123-cccc";
    claude.setAcceptedKey(key);
    buildApp(baseConfig());
    find<QPushButton>("addProviderButton")->click();
    find<QLineEdit>("providerNameEdit")->setText(QStringLiteral("claude"));
    auto *profiles = find<QComboBox>("providerProfileCombo");
    profiles->setCurrentIndex(profiles->findData(QStringLiteral("anthropic")));
    find<QLineEdit>("providerUrlEdit")->setText(claude.baseUrl().toString());
    find<QLineEdit>("providerKeyEdit")->setText(QString::fromUtf8(key));
    find<QPushButton>("saveProviderButton")->click();
    QVERIFY(!find<QWidget>("providerEditor")->isVisibleTo(page()));
    // Before Apply: the provider as edited, with the key typed for it.
    const QString text = testConnection(QStringLiteral("claude"));
    QVERIFY2(text.startsWith(QStringLiteral("claude: Fine: 127.0.0.1:%1 accepted the key, which "
                                            "can use 3 models: claude-3-5-haiku-20241022")
                                 .arg(claude.port())),
             qPrintable(text));
    QVERIFY(!text.contains(QString::fromUtf8(key)));
    const FakeAnthropic::RequestRecord &request = claude.requests().constLast();
    QCOMPARE(request.path, QByteArray("/v1/models"));
    QCOMPARE(request.headers.value("x-api-key"), key);
    QCOMPARE(request.headers.value("anthropic-version"), QByteArray("2023-06-01"));
    QVERIFY(m_settings->config().providers.isEmpty()); // nothing applied by the check

    // A wrong key is Anthropic's 401.
    claude.setAcceptedKey("sk-ant-another-one-0000-dddd");
    const QString refused = testConnection(QStringLiteral("claude"));
    QVERIFY2(refused.startsWith(QStringLiteral("claude: 401: ")), qPrintable(refused));
}

void TestUiProviders::realKeychain() {
    if (isChild())
        QSKIP("the parent's test");
    const KeychainSession child = runInKeychainSession(
        ChildVariable, QStringLiteral("realKeychainChild"), {QStringLiteral("GEMINI_API_KEY")});
    if (!child.skipped.isEmpty())
        QSKIP(qPrintable(child.skipped));
    QVERIFY2(child.succeeded, child.output.constData());
    QVERIFY2(child.output.contains("PASS   : TestUiProviders::realKeychainChild()"),
             child.output.constData());
    QVERIFY(!child.output.contains(GeminiKey));
}

void TestUiProviders::realKeychainChild() {
    if (!isChild())
        QSKIP("runs inside dbus-run-session, started by realKeychain()");
    // The page's Gemini key: into the keychain under its own entry, never the file.
    buildApp(baseConfig());
    QVERIFY(addProvider(QStringLiteral("gemini"), QStringLiteral("gemini"), GeminiKey, false));
    find<QPushButton>("applyProvidersButton")->click();
    QTRY_VERIFY_WITH_TIMEOUT(m_store->providerKeyLocation("gemini") == KeyLocation::Keychain,
                             30'000);
    QCOMPARE(m_settings->providerKeyState("gemini").source, KeyState::Source::Keychain);
    QCOMPARE(m_settings->config().providerKeys.value("gemini"), GeminiKey);
    QVERIFY(!fileText(m_path).contains(GeminiKey));
    m_app.reset();
    m_settings.reset();

    // The next start (desktop or --no-gui) reads it back from the keychain.
    SettingsController restarted(m_store.get(), m_keys.get(), m_store->load(), QByteArray());
    QSignalSpy ready(&restarted, &SettingsController::ready);
    restarted.loadKey();
    QVERIFY(ready.wait(30'000));
    QCOMPARE(restarted.config().providerKeys.value("gemini"), GeminiKey);
    QSignalSpy messages(&restarted, &SettingsController::message);
    restarted.forgetProviderKey("gemini");
    QTRY_VERIFY_WITH_TIMEOUT(!messages.isEmpty() && messages.constLast().at(0).toString().contains(
                                                        QStringLiteral("forgotten")),
                             30'000);
    KeyStore keys(Service);
    keys.setEntry(KeyStore::providerKeyEntry("gemini"));
    QSignalSpy read(&keys, &KeyStore::readFinished);
    keys.read();
    QVERIFY(read.wait(30'000));
    QVERIFY(read.constFirst().constFirst().toByteArray().isEmpty());
}

QTEST_MAIN(TestUiProviders)
#include "tst_ui_providers.moc"
