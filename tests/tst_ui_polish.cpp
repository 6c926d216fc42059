// SPDX-License-Identifier: GPL-3.0-or-later
// The settings a person can use and the rest of issue 15's polish: Restore defaults fills in
// the table's defaults (undone by Revert, applied by Apply); Open data folder opens the data
// directory's URL; Tab reaches every control of the settings in reading order; no two controls
// shown together share a mnemonic, and Alt+letter reaches a field; the icons are drawn at every
// size up to 256 px, so a 2x screen (this suite runs at QT_SCALE_FACTOR=2) gets real pixels;
// the first run is remembered across restarts; the snippets carry the proxy token, never the
// provider key.

#include "settings/settingsstore.h"
#include "ui/accesssettings.h"
#include "ui/dashboardpage.h"
#include "ui/desktopapp.h"
#include "ui/errorstyle.h"
#include "ui/firstrunpanel.h"
#include "ui/icons.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/mnemonics.h"
#include "ui/quantityedit.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"

#include <QAbstractButton>
#include <QAction>
#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScopeGuard>
#include <QScrollArea>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTabBar>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QToolButton>

using namespace llmproxy;
using namespace std::chrono_literals;

namespace {

const QByteArray ProviderKey = "sk-polish-provider-key-0123456789-wxyz";
const QByteArray ProxyTokenValue = "llmp-polishTOKENabcdefghijklmnopqrstuv";

ProxySnapshot snapshotListening() {
    ProxySnapshot snapshot;
    snapshot.takenAt = QDateTime::currentDateTimeUtc();
    snapshot.listening = true;
    snapshot.listenUrls = {QStringLiteral("http://127.0.0.1:3030/v1")};
    return snapshot;
}

// A widget's position in the settings page, for reading order.
QPoint positionIn(const QWidget *widget, const QWidget *page) {
    return widget->mapTo(page, QPoint(0, 0));
}

} // namespace

class TestUiPolish final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void restoreDefaultsFillsTheTableDefaults();
    void restoreDefaultsIsUndoneByRevert();
    void openDataFolderOpensTheDataDirectory();
    void openDataFolderSaysWhenThereIsNone();
    void tabReachesEveryControlInReadingOrder();
    void mnemonicsAreUniqueOnEveryPage();
    void mnemonicReachesItsField();
    void mnemonicAssignment();
    void iconsAreCrispAtTwiceTheDensity();
    void noObsoleteHighDpiAttributes();
    void firstRunDismissalSurvivesARestart();
    void firstRunServedSurvivesARestart();
    void snippetsUseTheProxyToken();
    void errorsReadOnLightAndDarkThemes();

private:
    Config baseConfig() const;
    void buildApp(const Config &config);
    void rebuildApp(const Config &config); // a restart: new controller and window, same files
    SettingsPage *page() const { return m_app->window()->settings(); }
    template <typename T>
    T *find(const QString &name) const {
        return m_app->window()->findChild<T *>(name);
    }
    void showSettings();

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
};

void TestUiPolish::initTestCase() {
    // Never touch a real keychain from a test run.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    QCOMPARE(qApp->devicePixelRatio(), 2.0); // main() below: a 2x screen
}

void TestUiPolish::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-polish"));
}

void TestUiPolish::cleanup() {
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
}

Config TestUiPolish::baseConfig() const {
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data")); // never the user's queue
    config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1"));
    config.tokensFile = m_dir->filePath(QStringLiteral("tokens"));
    return config;
}

void TestUiPolish::buildApp(const Config &config) {
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), config, config.apiKey);
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
    m_settings->loadKey();
}

void TestUiPolish::rebuildApp(const Config &config) {
    m_app.reset();
    m_settings.reset();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    buildApp(config);
}

void TestUiPolish::showSettings() {
    m_app->window()->tabs()->setCurrentIndex(2);
    QApplication::setActiveWindow(m_app->window());
    QVERIFY(QTest::qWaitForWindowActive(m_app->window()));
}

// Every field shows the table's default (settingText of the command line's defaults), the
// lists are emptied, and nothing is applied until Apply; then the controller has the defaults.
void TestUiPolish::restoreDefaultsFillsTheTableDefaults() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("1500ms")), QString());
    QCOMPARE(applySetting(config, Setting::BatchSize, QStringLiteral("5")), QString());
    QCOMPARE(applySetting(config, Setting::MaxBody, QStringLiteral("2MiB")), QString());
    QCOMPARE(applySetting(config, Setting::GracePeriod, QStringLiteral("2h")), QString());
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    QCOMPARE(applySetting(config, Setting::AllowHosts, QStringLiteral("proxy.lan")), QString());
    buildApp(config);
    QCOMPARE(find<QListWidget>(QStringLiteral("allowHostsList"))->count(), 1);

    auto *restore = find<QPushButton>(QStringLiteral("restoreDefaultsButton"));
    QVERIFY(restore);
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QTest::mouseClick(restore, Qt::LeftButton);
    QCOMPARE(configs.count(), 0); // in the form only

    Config defaults;
    defaults.listen = defaultListenAddresses();
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (!decl.shownInWindow() || decl.kind == SettingDeclaration::Kind::List)
            continue;
        const QString name = QString(decl.objectName) + QStringLiteral("Edit");
        const QString expected = settingText(defaults, decl.setting);
        if (auto *spin = find<QSpinBox>(name))
            QCOMPARE(QString::number(spin->value()), expected);
        else if (auto *units = find<QuantityEdit>(name))
            QCOMPARE(units->text(), expected);
        else
            QCOMPARE(find<QLineEdit>(name)->text(), expected);
    }
    QCOMPARE(find<QLineEdit>(QStringLiteral("listenEdit"))->text(),
             QStringLiteral("localhost:3030"));
    // As number and unit: 4 s, 32 MiB, off (the units of 1500 ms and 2 MiB are not kept).
    auto *window = find<QuantityEdit>(QStringLiteral("batchWindowEdit"));
    QCOMPARE(window->text(), QStringLiteral("4s"));
    QCOMPARE(window->numberBox()->value(), 4.0);
    QCOMPARE(window->unitBox()->currentText(), QStringLiteral("s"));
    auto *body = find<QuantityEdit>(QStringLiteral("maxBodyEdit"));
    QCOMPARE(body->numberBox()->value(), 32.0);
    QCOMPARE(body->unitBox()->currentText(), QStringLiteral("MiB"));
    QCOMPARE(find<QSpinBox>(QStringLiteral("batchSizeEdit"))->value(), 1000);
    QCOMPARE(find<QuantityEdit>(QStringLiteral("gracePeriodEdit"))->text(), QStringLiteral("off"));
    QCOMPARE(find<QDoubleSpinBox>(QStringLiteral("gracePeriodNumber"))->text(),
             QStringLiteral("off"));
    QCOMPARE(find<QListWidget>(QStringLiteral("allowHostsList"))->count(), 0);
    QVERIFY(page()->isValid());
    QVERIFY(page()->hasChanges());

    auto *apply = find<QPushButton>(QStringLiteral("applyButton"));
    QVERIFY(apply->isEnabled());
    QTest::mouseClick(apply, Qt::LeftButton);
    QVERIFY(configs.count() >= 1);
    const Config applied = m_settings->config();
    QCOMPARE(applied.batchWindow, 4s);
    QCOMPARE(applied.batchSize, 1000);
    QCOMPARE(applied.maxBody, Config().maxBody);
    QVERIFY(!applied.gracePeriod.has_value());
    QVERIFY(applied.allowHosts.isEmpty());
    QCOMPARE(applied.listen, defaultListenAddresses());
    // Saved as defaults: the file keeps nothing for them.
    const Config stored = SettingsStore(m_store->filePath()).load();
    QCOMPARE(stored.batchWindow, 4s);
    QCOMPARE(stored.batchSize, 1000);
    QVERIFY(stored.allowHosts.isEmpty());
    QVERIFY(!apply->isEnabled());
}

void TestUiPolish::restoreDefaultsIsUndoneByRevert() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("1500ms")), QString());
    QCOMPARE(applySetting(config, Setting::AllowOrigins, QStringLiteral("http://localhost:5173")),
             QString());
    buildApp(config);
    QTest::mouseClick(find<QPushButton>(QStringLiteral("restoreDefaultsButton")), Qt::LeftButton);
    QCOMPARE(find<QuantityEdit>(QStringLiteral("batchWindowEdit"))->text(), QStringLiteral("4s"));
    auto *revert = find<QPushButton>(QStringLiteral("revertButton"));
    QVERIFY(revert->isEnabled());
    QTest::mouseClick(revert, Qt::LeftButton);
    QCOMPARE(find<QuantityEdit>(QStringLiteral("batchWindowEdit"))->text(),
             QStringLiteral("1500ms"));
    QCOMPARE(find<QComboBox>(QStringLiteral("batchWindowUnit"))->currentText(),
             QStringLiteral("ms"));
    QCOMPARE(find<QListWidget>(QStringLiteral("allowOriginsList"))->count(), 1);
    QVERIFY(!page()->hasChanges());
    QCOMPARE(m_settings->config().batchWindow, 1500ms);
}

void TestUiPolish::openDataFolderOpensTheDataDirectory() {
    const Config config = baseConfig();
    QVERIFY(QDir().mkpath(config.dataDir));
    buildApp(config);
    QList<QUrl> opened;
    page()->setUrlOpener([&opened](const QUrl &url) {
        opened.append(url);
        return true;
    });
    auto *button = find<QPushButton>(QStringLiteral("openDataFolderButton"));
    QVERIFY(button);
    QTest::mouseClick(button, Qt::LeftButton);
    QCOMPARE(opened.size(), 1);
    QCOMPARE(opened.constFirst(), QUrl::fromLocalFile(config.dataDir));
    QVERIFY(opened.constFirst().isLocalFile());
    QVERIFY(find<QLabel>(QStringLiteral("dataDirLabel"))
                ->text()
                .contains(QDir::toNativeSeparators(config.dataDir)));

    // A file manager that does not answer is reported.
    page()->setUrlOpener([](const QUrl &) { return false; });
    QTest::mouseClick(button, Qt::LeftButton);
    QVERIFY(find<QLabel>(QStringLiteral("settingsMessage"))
                ->text()
                .contains(QDir::toNativeSeparators(config.dataDir)));
}

void TestUiPolish::openDataFolderSaysWhenThereIsNone() {
    const Config config = baseConfig(); // its data folder was never made
    buildApp(config);
    int calls = 0;
    page()->setUrlOpener([&calls](const QUrl &) {
        ++calls;
        return true;
    });
    QTest::mouseClick(find<QPushButton>(QStringLiteral("openDataFolderButton")), Qt::LeftButton);
    QCOMPARE(calls, 0);
    QVERIFY(find<QLabel>(QStringLiteral("settingsMessage"))->text().contains(u"does not exist"));
}

// From the first field, Tab visits every visible, enabled control of the settings page once,
// top to bottom, and comes back round.
void TestUiPolish::tabReachesEveryControlInReadingOrder() {
    Config config = baseConfig();
    config.tokens = {ProxyToken{"laptop", ProxyTokenValue}};
    buildApp(config);
    showSettings();
    QWidget *settings = page();
    QList<QWidget *> expected;
    const auto all = settings->findChildren<QWidget *>();
    for (QWidget *widget : all) {
        if (widget->isVisible() && widget->isEnabled() && !widget->focusProxy() &&
            (widget->focusPolicy() & Qt::TabFocus) == Qt::TabFocus)
            expected.append(widget);
    }
    QVERIFY(expected.size() >= 15);
    // Enable what starts disabled, so it is in the walk too.
    find<QuantityEdit>(QStringLiteral("batchWindowEdit"))->setText(QStringLiteral("5s"));

    QWidget *first = find<QWidget>(QStringLiteral("listenEdit"));
    first->setFocus(Qt::TabFocusReason);
    QTRY_COMPARE(QApplication::focusWidget(), first);
    QList<QWidget *> visited{first};
    for (int i = 0; i < 300; ++i) {
        QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
        QWidget *now = QApplication::focusWidget();
        QVERIFY(now);
        if (now == first)
            break;
        if (settings->isAncestorOf(now) && !visited.contains(now))
            visited.append(now);
    }
    for (QWidget *widget : std::as_const(expected)) {
        if (!widget->isEnabled())
            continue;
        QVERIFY2(visited.contains(widget),
                 qPrintable(QStringLiteral("Tab never reaches %1 (%2)")
                                .arg(widget->objectName(),
                                     QString::fromLatin1(widget->metaObject()->className()))));
    }
    // Reading order: each stop is not above the one before it (rows top to bottom).
    for (qsizetype i = 1; i < visited.size(); ++i) {
        const QPoint before = positionIn(visited[i - 1], settings);
        const QPoint now = positionIn(visited[i], settings);
        QVERIFY2(now.y() + 4 >= before.y(),
                 qPrintable(QStringLiteral("Tab goes up from %1 to %2")
                                .arg(visited[i - 1]->objectName(), visited[i]->objectName())));
    }
}

// On each page, the menus, the tabs and every visible button and buddied label: no letter
// twice. The settings' fields all have one.
void TestUiPolish::mnemonicsAreUniqueOnEveryPage() {
    Config config = baseConfig();
    config.apiKey = ProviderKey;
    buildApp(config);
    MainWindow *window = m_app->window();
    for (int tab = 0; tab < window->tabs()->count(); ++tab) {
        window->tabs()->setCurrentIndex(tab);
        QMultiHash<QChar, QString> owners;
        const auto note = [&owners](const QString &text) {
            const QChar letter = mnemonics::of(text);
            if (!letter.isNull())
                owners.insert(letter, text);
        };
        for (const QAction *menu : window->menuBar()->actions())
            note(menu->text());
        for (int i = 0; i < window->tabs()->count(); ++i)
            note(window->tabs()->tabText(i));
        const auto buttons = window->findChildren<QAbstractButton *>();
        for (const QAbstractButton *button : buttons) {
            if (button->isVisible())
                note(button->text());
        }
        const auto labels = window->findChildren<QLabel *>();
        for (const QLabel *label : labels) {
            if (label->isVisible() && label->buddy())
                note(label->text());
        }
        const auto groups = window->findChildren<QGroupBox *>();
        for (const QGroupBox *group : groups) {
            if (group->isVisible() && group->isCheckable())
                note(group->title());
        }
        for (const QChar letter : owners.uniqueKeys()) {
            QVERIFY2(owners.count(letter) == 1,
                     qPrintable(QStringLiteral("tab %1: Alt+%2 is shared by: %3")
                                    .arg(tab)
                                    .arg(letter)
                                    .arg(owners.values(letter).join(QStringLiteral(" | ")))));
        }
        QVERIFY(owners.size() >= 5);
    }
    // Every field of the settings form has a label with a mnemonic.
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (!decl.shownInWindow() || decl.kind == SettingDeclaration::Kind::List)
            continue;
        auto *field = find<QWidget>(QString(decl.objectName) + QStringLiteral("Edit"));
        QWidget *editor = field->focusProxy() ? field->focusProxy() : field; // a number and unit
        bool found = false;
        for (const QLabel *label : window->findChildren<QLabel *>())
            found = found || (label->buddy() == editor && !mnemonics::of(label->text()).isNull());
        QVERIFY2(found, decl.objectName.data());
    }
}

// Alt plus a field label's letter puts the cursor in that field (in the number of a number and
// unit).
void TestUiPolish::mnemonicReachesItsField() {
    buildApp(baseConfig());
    showSettings();
    for (const char *name :
         {"batchWindowEdit", "batchSizeEdit", "batchBytesEdit", "pollIntervalEdit", "maxBodyEdit",
          "gracePeriodEdit", "upstreamEdit"}) {
        auto *field = find<QWidget>(QString::fromLatin1(name));
        QVERIFY2(field, name);
        QWidget *editor = field;
        if (auto *units = qobject_cast<QuantityEdit *>(field))
            editor = units->numberBox();
        QLabel *title = nullptr;
        for (QLabel *label : m_app->window()->findChildren<QLabel *>()) {
            if (label->buddy() == editor)
                title = label;
        }
        QVERIFY(title);
        const QChar letter = mnemonics::of(title->text());
        QVERIFY2(!letter.isNull(), name);
        find<QWidget>(QStringLiteral("listenEdit"))->setFocus();
        QTRY_VERIFY(find<QWidget>(QStringLiteral("listenEdit"))->hasFocus());
        QVERIFY(!editor->hasFocus() && !editor->isAncestorOf(QApplication::focusWidget()));
        QTest::keyClick(m_app->window(), static_cast<Qt::Key>(letter.toUpper().unicode()),
                        Qt::AltModifier);
        QWidget *focus = QApplication::focusWidget();
        QVERIFY2(focus == editor || editor->isAncestorOf(focus) ||
                     (focus && focus->focusProxy() == editor),
                 name);
    }
}

void TestUiPolish::mnemonicAssignment() {
    QSet<QChar> taken{u'b', u'w'};
    QCOMPARE(mnemonics::assign(QStringLiteral("Batch window"), &taken),
             QStringLiteral("B&atch window"));
    QVERIFY(taken.contains(u'a'));
    QCOMPARE(mnemonics::assign(QStringLiteral("Poll interval"), &taken),
             QStringLiteral("&Poll interval"));
    QCOMPARE(mnemonics::assign(QStringLiteral("Re&vert"), &taken), QStringLiteral("Re&vert"));
    QCOMPARE(mnemonics::of(QStringLiteral("Re&vert")), QChar(u'v'));
    QCOMPARE(mnemonics::of(QStringLiteral("Salt && pepper")), QChar());
    QSet<QChar> full;
    for (char16_t c = u'a'; c <= u'z'; ++c)
        full.insert(QChar(c));
    QCOMPARE(mnemonics::assign(QStringLiteral("Batch"), &full), QStringLiteral("Batch"));
}

// The application and tray icons have real pixmaps up to 256 px: a 32 px icon on this 2x
// screen is the 64 px drawing, not the 32 px one scaled up.
void TestUiPolish::iconsAreCrispAtTwiceTheDensity() {
    const QList<QIcon> all{icons::application(), icons::trayState(TrayState::Idle, false),
                           icons::trayState(TrayState::Error, true)};
    for (const QIcon &icon : all) {
        const QList<QSize> sizes = icon.availableSizes();
        for (int size : {16, 32, 48, 64, 128, 256})
            QVERIFY2(sizes.contains(QSize(size, size)), qPrintable(QString::number(size)));
        for (int logical : {16, 24, 32, 64, 128}) {
            const QPixmap crisp = icon.pixmap(QSize(logical, logical), 2.0);
            QCOMPARE(crisp.devicePixelRatio(), 2.0);
            QCOMPARE(crisp.size(), QSize(2 * logical, 2 * logical));
            const QImage drawn = icon.pixmap(QSize(2 * logical, 2 * logical), 1.0)
                                     .toImage()
                                     .convertToFormat(QImage::Format_ARGB32);
            QImage got = crisp.toImage().convertToFormat(QImage::Format_ARGB32);
            got.setDevicePixelRatio(1.0);
            QCOMPARE(got, drawn);
            const QImage blurred = icon.pixmap(QSize(logical, logical), 1.0)
                                       .toImage()
                                       .scaled(2 * logical, 2 * logical, Qt::IgnoreAspectRatio,
                                               Qt::SmoothTransformation)
                                       .convertToFormat(QImage::Format_ARGB32);
            QVERIFY(got != blurred);
        }
    }
    // The window uses it at the screen's ratio.
    buildApp(baseConfig());
    QCOMPARE(m_app->window()->devicePixelRatioF(), 2.0);
    QVERIFY(m_app->window()->windowIcon().availableSizes().contains(QSize(256, 256)));
}

// Qt 6 scales for high DPI by itself: the attributes Qt 5 needed are obsolete and not set.
void TestUiPolish::noObsoleteHighDpiAttributes() {
    QFile main(qEnvironmentVariable("LLMPROXY_SOURCE_DIR") + QStringLiteral("/app/main.cpp"));
    QVERIFY(main.open(QIODevice::ReadOnly));
    const QByteArray text = main.readAll();
    for (const char *obsolete :
         {"AA_EnableHighDpiScaling", "AA_DisableHighDpiScaling", "AA_UseHighDpiPixmaps"})
        QVERIFY2(!text.contains(obsolete), obsolete);
    QCOMPARE(QGuiApplication::highDpiScaleFactorRoundingPolicy(),
             Qt::HighDpiScaleFactorRoundingPolicy::PassThrough);
}

void TestUiPolish::firstRunDismissalSurvivesARestart() {
    const Config config = baseConfig();
    buildApp(config);
    FirstRunPanel *panel = m_app->window()->dashboard()->firstRun();
    QVERIFY(panel->isVisible());
    QTest::mouseClick(find<QPushButton>(QStringLiteral("firstRunHideButton")), Qt::LeftButton);
    QVERIFY(panel->isHidden());
    QVERIFY(SettingsStore(m_store->filePath()).firstRunDone());

    rebuildApp(config);
    panel = m_app->window()->dashboard()->firstRun();
    QVERIFY(panel->isHidden());
    m_app->showSnapshot(snapshotListening()); // nothing served yet: still hidden
    QVERIFY(panel->isHidden());
    // Help → Connect a client still brings it back.
    auto *connectClient = find<QAction>(QStringLiteral("connectClientAction"));
    QVERIFY(connectClient);
    connectClient->trigger();
    QVERIFY(panel->isVisible());
}

void TestUiPolish::firstRunServedSurvivesARestart() {
    const Config config = baseConfig();
    buildApp(config);
    m_app->showSnapshot(snapshotListening());
    QVERIFY(m_app->window()->dashboard()->firstRun()->isVisible());
    QVERIFY(!SettingsStore(m_store->filePath()).firstRunDone());
    ProxySnapshot served = snapshotListening();
    served.stats.relayed = 1; // a client's request went through (not batched, no history)
    m_app->showSnapshot(served);
    QVERIFY(SettingsStore(m_store->filePath()).firstRunDone());

    rebuildApp(config);
    m_app->showSnapshot(snapshotListening());
    QVERIFY(m_app->window()->dashboard()->firstRun()->isHidden());
}

// With proxy tokens, each snippet sends the first token as the SDK's key; the configured
// provider key is never printed. Without tokens, a placeholder when a key is configured.
void TestUiPolish::snippetsUseTheProxyToken() {
    Config config = baseConfig();
    config.apiKey = ProviderKey;
    config.tokens = {ProxyToken{"laptop", ProxyTokenValue},
                     ProxyToken{"ci", "llmp-secondTOKENabcdefghijklmnopqrstu"}};
    buildApp(config);
    FirstRunPanel *panel = m_app->window()->dashboard()->firstRun();
    for (const char *name : {"snippetPython", "snippetNode", "snippetCurl"}) {
        const QString text = find<QPlainTextEdit>(QString::fromLatin1(name))->toPlainText();
        QVERIFY2(text.contains(QString::fromLatin1(ProxyTokenValue)), name);
        QVERIFY2(!text.contains(QString::fromLatin1(ProviderKey)), name);
        QVERIFY2(!text.contains(QStringLiteral("unused")), name);
        QVERIFY2(!text.contains(QStringLiteral("X-Provider-Authorization")), name);
    }
    QVERIFY(panel->snippet(FirstRunPanel::Language::Curl)
                .contains(QStringLiteral("Authorization: Bearer ") +
                          QString::fromLatin1(ProxyTokenValue)));
    QVERIFY(panel->snippet(FirstRunPanel::Language::Python)
                .contains(QStringLiteral("api_key=\"") + QString::fromLatin1(ProxyTokenValue)));
    QVERIFY(panel->snippet(FirstRunPanel::Language::Node)
                .contains(QStringLiteral("apiKey: \"") + QString::fromLatin1(ProxyTokenValue)));

    // Tokens and no configured key: the client's own key goes in X-Provider-Authorization.
    const QString ownKey = FirstRunPanel::snippetFor(FirstRunPanel::Language::Python, QString(),
                                                     false, ProxyTokenValue);
    QVERIFY(ownKey.contains(QString::fromLatin1(ProxyTokenValue)));
    QVERIFY(ownKey.contains(QStringLiteral("X-Provider-Authorization")));
    QVERIFY(ownKey.contains(QStringLiteral("os.environ[\"OPENAI_API_KEY\"]")));

    // The tokens go: back to the placeholder, still never the key.
    Config without = config;
    without.tokens.clear();
    panel->setProxyTokens(without.tokens);
    const QString python = find<QPlainTextEdit>(QStringLiteral("snippetPython"))->toPlainText();
    QVERIFY(python.contains(QStringLiteral("api_key=\"unused\"")));
    QVERIFY(!python.contains(QString::fromLatin1(ProxyTokenValue)));
    QVERIFY(!python.contains(QString::fromLatin1(ProviderKey)));
}

// The one error red reads on light and dark themes alike (WCAG AA, 4.5:1 against the window),
// on a field's message and its border, and a label already shown follows a theme switch.
void TestUiPolish::errorsReadOnLightAndDarkThemes() {
    QPalette light(QColor(0xef, 0xef, 0xef));
    light.setColor(QPalette::Window, QColor(0xef, 0xef, 0xef));
    QPalette dark(QColor(0x35, 0x35, 0x35));
    dark.setColor(QPalette::Window, QColor(0x20, 0x20, 0x20));
    for (const QPalette &palette : {light, dark}) {
        QVERIFY2(errorstyle::contrast(errorstyle::color(palette),
                                      palette.color(QPalette::Window)) >= 4.5,
                 qPrintable(errorstyle::color(palette).name()));
    }
    QVERIFY(errorstyle::color(light) != errorstyle::color(dark));

    const QPalette original = QApplication::palette();
    auto restore = qScopeGuard([&] { QApplication::setPalette(original); });
    QApplication::setPalette(light);
    buildApp(baseConfig());
    showSettings();
    auto *window = find<QuantityEdit>(QStringLiteral("batchWindowEdit"));
    QWidget *field = window->numberBox();
    window->setText(QStringLiteral("25h")); // beyond 24h
    auto *error = find<QLabel>(QStringLiteral("batchWindowError"));
    QVERIFY(!error->text().isEmpty());
    QCOMPARE(error->palette().color(QPalette::WindowText), errorstyle::color(light));
    QVERIFY(field->styleSheet().contains(errorstyle::color(light).name()));

    // The theme turns dark while the message shows: the message turns the lighter red.
    QApplication::setPalette(dark);
    QTRY_COMPARE(error->palette().color(QPalette::WindowText), errorstyle::color(dark));
    window->setText(QStringLiteral("26h"));
    QVERIFY(field->styleSheet().contains(errorstyle::color(dark).name()));
    // Fixed: the border goes; the (now empty) message label keeps its red for the next one.
    window->setText(QStringLiteral("5s"));
    QVERIFY(field->styleSheet().isEmpty());
    QVERIFY(error->text().isEmpty());
}

// A 2x screen for the whole suite, as on a high-DPI laptop.
int main(int argc, char *argv[]) {
    qputenv("QT_SCALE_FACTOR", "2");
    QApplication app(argc, argv);
    TestUiPolish test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "tst_ui_polish.moc"
