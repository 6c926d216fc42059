// SPDX-License-Identifier: GPL-3.0-or-later
// --screenshot with --screenshot-page (issue 15's README pictures): each page asked for is
// saved as a non-empty PNG of that page (offscreen): the dashboard, the first-run panel as
// Help → Connect a client shows it, the settings and the providers; one page to the file
// named, several to PAGE.png in the folder named; an unknown page is refused.

#include "settings/settingsstore.h"
#include "ui/dashboardpage.h"
#include "ui/desktopapp.h"
#include "ui/firstrunpanel.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/moneypanel.h"
#include "ui/providerssettings.h"
#include "ui/screenshot.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"

#include <QDir>
#include <QFileInfo>
#include <QImage>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;

class TestUiScreenshot final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void severalPagesIntoAFolder();
    void onePageToTheFile();
    void unknownPageIsRefused();

private:
    MainWindow *window() const { return m_app->window(); }
    // Whether `image` (the whole window) shows `widget`, visible now, as the window draws it
    // now where it sits.
    bool shows(const QImage &image, QWidget *widget) const {
        if (!widget->isVisible())
            return false;
        const QRect area(widget->mapTo(window(), QPoint(0, 0)), widget->size());
        const QImage now = window()->grab().toImage();
        return image.copy(area).convertToFormat(QImage::Format_RGB32) ==
               now.copy(area).convertToFormat(QImage::Format_RGB32);
    }

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
};

void TestUiScreenshot::initTestCase() {
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
}

void TestUiScreenshot::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-screenshot"));
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data"));
    config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1"));
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), config, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show(false);
    QVERIFY(QTest::qWaitForWindowExposed(window()));
}

void TestUiScreenshot::cleanup() {
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
}

void TestUiScreenshot::severalPagesIntoAFolder() {
    window()->dashboard()->setFirstRunDone(); // as after the first request: the panel is away
    const QString folder = m_dir->filePath(QStringLiteral("shots"));
    QCOMPARE(saveScreenshots(window(), folder, {"dashboard", "settings", "first-run"}), QString());
    QCOMPARE(QDir(folder).entryList(QDir::Files, QDir::Name),
             (QStringList{QStringLiteral("dashboard.png"), QStringLiteral("first-run.png"),
                          QStringLiteral("settings.png")}));
    QImage images[3];
    const char *const names[] = {"dashboard", "settings", "first-run"};
    for (int i = 0; i < 3; ++i) {
        const QString file = QDir(folder).filePath(QLatin1StringView(names[i]) + u".png");
        QVERIFY(QFileInfo(file).size() > 0);
        QVERIFY2(images[i].load(file, "PNG"), qPrintable(file));
        QCOMPARE(images[i].size(), window()->size() * window()->devicePixelRatio());
    }
    QVERIFY(images[0] != images[1]);
    QVERIFY(images[0] != images[2]);

    // Each is its page: the first-run panel as the Help menu shows it, over the dashboard...
    DashboardPage *dashboard = window()->dashboard();
    QCOMPARE(window()->tabs()->currentWidget(), dashboard);
    QVERIFY(shows(images[2], dashboard->firstRun()));
    QVERIFY(shows(images[2], dashboard->money()));
    // ...the settings (in their scroll area), and the dashboard without the panel.
    window()->tabs()->setCurrentIndex(2);
    QVERIFY(shows(images[1], window()->settings()));
    QVERIFY(!shows(images[0], window()->settings()));
    window()->tabs()->setCurrentIndex(0);
    QVERIFY(!shows(images[1], dashboard->money()));
    dashboard->setFirstRunDone();
    QVERIFY(shows(images[0], dashboard->money()));
    QVERIFY(!shows(images[0], dashboard->firstRun())); // hidden there
}

void TestUiScreenshot::onePageToTheFile() {
    const QString file = m_dir->filePath(QStringLiteral("providers.png"));
    QCOMPARE(saveScreenshots(window(), file, {"providers"}), QString());
    QImage image;
    QVERIFY(image.load(file, "PNG"));
    QVERIFY(QFileInfo(file).isFile());
    QVERIFY(shows(image, window()->providers()));
    // Without a page: the window as it is.
    const QString plain = m_dir->filePath(QStringLiteral("plain.png"));
    QCOMPARE(saveScreenshots(window(), plain, {}), QString());
    QImage again;
    QVERIFY(again.load(plain, "PNG"));
    QCOMPARE(again, image);
}

void TestUiScreenshot::unknownPageIsRefused() {
    QCOMPARE(saveScreenshots(window(), m_dir->filePath(QStringLiteral("x.png")), {"charts"}),
             QStringLiteral("no page named charts"));
    QVERIFY(!QFileInfo::exists(m_dir->filePath(QStringLiteral("x.png"))));
    // The command line refuses it first, and a page without a file.
    const auto program = [](QStringList args) {
        args.prepend(QStringLiteral("llm-proxy"));
        return parseCommandLine(args);
    };
    const CommandLine unknown =
        program({QStringLiteral("--screenshot"), QStringLiteral("a.png"),
                 QStringLiteral("--screenshot-page"), QStringLiteral("charts")});
    QCOMPARE(unknown.action, CommandLine::Action::Error);
    QVERIFY2(unknown.message.contains(QStringLiteral("\"charts\" is not a page")),
             qPrintable(unknown.message));
    const CommandLine noFile =
        program({QStringLiteral("--screenshot-page"), QStringLiteral("settings")});
    QCOMPARE(noFile.action, CommandLine::Action::Error);
    QVERIFY2(noFile.message.contains(QStringLiteral("needs --screenshot FILE")),
             qPrintable(noFile.message));
    const CommandLine two =
        program({QStringLiteral("--screenshot"), QStringLiteral("shots"),
                 QStringLiteral("--screenshot-page"), QStringLiteral("First-Run"),
                 QStringLiteral("--screenshot-page=settings")});
    QCOMPARE(two.action, CommandLine::Action::Run);
    QCOMPARE(two.config.screenshotPages, (QList<QByteArray>{"first-run", "settings"}));
}

QTEST_MAIN(TestUiScreenshot)
#include "tst_ui_screenshot.moc"
