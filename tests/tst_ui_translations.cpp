// SPDX-License-Identifier: GPL-3.0-or-later
// The desktop app is ready for translation: under a pseudo-translation (every tr() string
// wrapped in ⟦ ⟧) each text the window shows on each page is translated, and none is left
// as a bare literal; the build made the translation template (ui/llm-proxy.ts, by lupdate) with
// the strings of every ui/*.cpp that shows text.

#include "settings/config.h"
#include "settings/settingsstore.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/settingscontroller.h"

#include <QAbstractButton>
#include <QAction>
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QRegularExpression>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTranslator>
#include <QXmlStreamReader>

using namespace llmproxy;

namespace {

// Every string through tr() comes back as ⟦string⟧.
class PseudoTranslator final : public QTranslator {
public:
    QString translate(const char *, const char *sourceText, const char * = nullptr,
                      int = -1) const override {
        if (!sourceText || !*sourceText)
            return QString();
        return u'⟦' + QString::fromUtf8(sourceText) + u'⟧';
    }
    bool isEmpty() const override { return false; }
};

bool translated(const QString &text) {
    return text.contains(u'⟦');
}

// Text with letters that a person reads (not a number, a dash or empty).
bool prose(const QString &text) {
    static const QRegularExpression word(QStringLiteral("[A-Za-z]{2}"));
    return word.match(text).hasMatch();
}

QString sourceDir() {
    return qEnvironmentVariable("LLMPROXY_SOURCE_DIR");
}

} // namespace

class TestUiTranslations final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void everyVisibleTextIsTranslated();
    void noBareProseInTheSources();
    void templateHasEveryFilesStrings();
};

void TestUiTranslations::initTestCase() {
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    QVERIFY(!sourceDir().isEmpty());
}

void TestUiTranslations::everyVisibleTextIsTranslated() {
    PseudoTranslator pseudo;
    QVERIFY(QCoreApplication::installTranslator(&pseudo));
    QTemporaryDir dir;
    SettingsStore store(dir.filePath(QStringLiteral("llm-proxy.conf")));
    KeyStore keys(QStringLiteral("llm-proxy-test-translations"));
    Config config = store.load();
    config.dataDir = dir.filePath(QStringLiteral("data"));
    SettingsController settings(&store, &keys, config, QByteArray());
    auto app = std::make_unique<DesktopApp>(&settings);
    app->show();
    MainWindow *window = app->window();

    QStringList untranslated;
    const auto check = [&untranslated](const QString &where, const QString &text) {
        if (prose(text) && !translated(text))
            untranslated.append(where + QStringLiteral(": ") + text);
    };
    for (const QAction *menu : window->menuBar()->actions()) {
        check(QStringLiteral("menu"), menu->text());
        if (menu->menu()) {
            for (const QAction *action : menu->menu()->actions())
                check(QStringLiteral("menu item"), action->text());
        }
    }
    int checked = 0;
    for (int tab = 0; tab < window->tabs()->count(); ++tab) {
        window->tabs()->setCurrentIndex(tab);
        check(QStringLiteral("tab"), window->tabs()->tabText(tab));
        QWidget *page = window->tabs()->currentWidget();
        for (const QAbstractButton *button : page->findChildren<QAbstractButton *>()) {
            if (button->isVisible()) {
                check(button->objectName(), button->text());
                check(button->objectName() + QStringLiteral(" tooltip"), button->toolTip());
                ++checked;
            }
        }
        for (const QLabel *label : page->findChildren<QLabel *>()) {
            // Labels with an objectName show values (counts, addresses, states) or messages
            // set later; the captions have none, and the help lines under fields come from
            // the settings table.
            if (!label->isVisible())
                continue;
            if (label->objectName().isEmpty() || label->objectName().endsWith(u"Help")) {
                check(QStringLiteral("label"), label->text());
                ++checked;
            }
            check(QStringLiteral("tooltip of ") + label->text(), label->toolTip());
        }
        for (const QGroupBox *group : page->findChildren<QGroupBox *>()) {
            if (group->isVisible())
                check(QStringLiteral("group"), group->title());
        }
        for (const QLineEdit *edit : page->findChildren<QLineEdit *>()) {
            // A placeholder that is an example value (a URL, a host name) is data.
            const bool example = !edit->placeholderText().contains(u' ');
            if (edit->isVisible()) {
                if (!example) {
                    check(edit->objectName() + QStringLiteral(" placeholder"),
                          edit->placeholderText());
                }
                check(edit->objectName() + QStringLiteral(" tooltip"), edit->toolTip());
            }
        }
    }
    app.reset();
    QCoreApplication::removeTranslator(&pseudo);
    QVERIFY2(untranslated.isEmpty(), qPrintable(untranslated.join(u'\n')));
    QVERIFY(checked >= 40);
}

// A sentence in a QStringLiteral in ui/ is a string nobody can translate: user-visible text goes
// through tr() (or QCoreApplication::translate outside QObjects).
void TestUiTranslations::noBareProseInTheSources() {
    const QDir ui(sourceDir() + QStringLiteral("/ui"));
    const QStringList files = ui.entryList({QStringLiteral("*.cpp")}, QDir::Files);
    QVERIFY(files.size() >= 20);
    static const QRegularExpression bare(
        QStringLiteral("QStringLiteral\\(\\s*\"(?:[A-Z][a-z]+[ :,]|[a-z]+ [a-z]+ )"));
    QStringList found;
    for (const QString &name : files) {
        if (name == u"autostart.cpp") // the .desktop entry's keys and values, not for people
            continue;
        QFile file(ui.filePath(name));
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(file.readAll());
        auto it = bare.globalMatch(text);
        while (it.hasNext()) {
            const auto match = it.next();
            const qsizetype line = text.left(match.capturedStart()).count(u'\n') + 1;
            const QString lineText = text.section(u'\n', int(line - 1), int(line - 1)).trimmed();
            // The client snippets are code, not prose.
            if (name == u"firstrunpanel.cpp" &&
                text.indexOf(u"snippetFor(") < match.capturedStart() &&
                match.capturedStart() < text.indexOf(u"void FirstRunPanel::setProxyTokens"))
                continue;
            found.append(name + u':' + QString::number(line) + QStringLiteral(": ") + lineText);
        }
    }
    QVERIFY2(found.isEmpty(), qPrintable(found.join(u'\n')));
}

// The build ran lupdate: the template names every ui/*.cpp that has tr() strings, with the
// strings this work added among them.
void TestUiTranslations::templateHasEveryFilesStrings() {
    QFile ts(qEnvironmentVariable("LLMPROXY_TS_FILE"));
    QVERIFY2(ts.open(QIODevice::ReadOnly), qPrintable(ts.fileName()));
    QXmlStreamReader xml(&ts);
    QSet<QString> locations;
    QSet<QString> sources;
    QSet<QString> contexts;
    QString element;
    while (!xml.atEnd()) {
        xml.readNext();
        if (!xml.isStartElement())
            continue;
        if (xml.name() == u"location")
            locations.insert(
                QFileInfo(xml.attributes().value(QStringLiteral("filename")).toString())
                    .fileName());
        else if (xml.name() == u"source")
            sources.insert(xml.readElementText());
        else if (xml.name() == u"name")
            contexts.insert(xml.readElementText());
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QVERIFY(xml.documentVersion().isEmpty() || xml.documentVersion() == u"1.0");

    const QDir ui(sourceDir() + QStringLiteral("/ui"));
    int withText = 0;
    for (const QString &name : ui.entryList({QStringLiteral("*.cpp")}, QDir::Files)) {
        QFile file(ui.filePath(name));
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QByteArray text = file.readAll();
        if (!text.contains("tr(\"") && !text.contains("translate(\""))
            continue;
        ++withText;
        QVERIFY2(locations.contains(name), qPrintable(name + QStringLiteral(" is not in the .ts")));
    }
    QVERIFY(withText >= 18);
    QVERIFY(sources.size() >= 200);
    for (const char *expected : {"Restore defaults", "Open data folder", "&Apply", "&Settings",
                                 "Connect a client", "Batch %1 completed (%2)"})
        QVERIFY2(sources.contains(QString::fromUtf8(expected)), expected);
    // The settings table's words the window shows (listed for lupdate by
    // llmproxy-settingtexts).
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (!decl.shownInWindow())
            continue;
        for (QLatin1StringView words : {decl.label, decl.hint, decl.help})
            QVERIFY2(sources.contains(QString(words)), words.data());
    }
    for (const char *context :
         {"llmproxy::Setting", "llmproxy::SettingsPage", "llmproxy::DashboardPage",
          "llmproxy::TrayState", "llmproxy::display"})
        QVERIFY2(contexts.contains(QString::fromUtf8(context)), context);
}

QTEST_MAIN(TestUiTranslations)
#include "tst_ui_translations.moc"
