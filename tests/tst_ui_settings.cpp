// SPDX-License-Identifier: GPL-3.0-or-later
// The settings page: values checked as typed with the command line's reasons next to them,
// Apply only when all are good; applied settings are saved (only those changed) and reach a
// real ProxyService on its worker thread: a new listen address re-binds in place, a taken port
// is reported next to the field; a proxy that could not start starts with the next address.
// The grace period is a setting like the others (empty means off) and reaches batches already
// out. Durations and sizes are a number and a unit (DurationEdit, SizeEdit) that show a saved
// value as written and give back the text the settings file keeps. The key field is
// write-only, and without a keychain the settings file is offered.

#include "fakeprovider.h"
#include "settings/settingsstore.h"
#include "testclient.h"
#include "ui/accesssettings.h"
#include "ui/desktopapp.h"
#include "ui/keystore.h"
#include "ui/mainwindow.h"
#include "ui/proxyhost.h"
#include "ui/quantityedit.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"
#include "ui/traycontroller.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileInfo>
#include <QFrame>
#include <QGuiApplication>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QNetworkReply>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTabWidget>
#include <QTableWidget>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy;
using namespace llmproxy::test;
using namespace std::chrono_literals;

namespace {
const QByteArray TestKey = "sk-settings-test-0123456789-zzzz";

quint16 freePort() {
    QTcpServer probe;
    if (!probe.listen(QHostAddress::LocalHost, 0))
        return 0;
    return probe.serverPort();
}
} // namespace

class TestUiSettings final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void formShowsConfig();
    void formHasARowForEveryWindowSetting();
    void countsStayWithinTheDeclaredBounds();
    void quantityEditRoundTrips();
    void quantityEditsFitTheirSetting();
    void numberAndUnitTypedAreSavedAsSettingsText();
    void savedValuesLoadBackAsWritten();
    void arrowsStopAtTheDeclaredBounds();
    void validatedAsTyped_data();
    void validatedAsTyped();
    void applySavesOnlyChangedSettings();
    void revert();
    void listenChangeRebindsTheCore();
    void takenPortIsReported();
    void startFailureRecoversWithNewAddress();
    void keyIsWriteOnlyAndFallsBackToFile();
    void notificationsToggle();
    void gracePeriodIsARealSetting();
    void gracePeriodBadValueIsNotApplied();
    void gracePeriodEmptyMeansOff();
    void gracePeriodReachesBatchesAlreadyOut();
    void accessListsApplyAndPersist();
    void badAccessEntryIsRefusedAsTyped_data();
    void badAccessEntryIsRefusedAsTyped();
    void generatedTokenIsSavedCopiedAndRequired();
    void removingATokenRewritesTheFile();
    void tokenWriteFailureIsShown();

private:
    Config baseConfig() const;
    void buildApp(const Config &effective);
    QLineEdit *edit(const char *name) const;
    QuantityEdit *quantity(const char *name) const;
    QLabel *label(const char *name) const;
    void typeInto(const char *name, const QString &text);
    void clickApply();
    void showSettings(); // the settings tab, in the active window (for the keyboard)
    ProxySnapshot waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until);
    QPushButton *button(const char *name) const;
    quint16 startHost(); // the proxy on 127.0.0.1:0, fed by the controller; its port

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<SettingsStore> m_store;
    std::unique_ptr<KeyStore> m_keys;
    std::unique_ptr<SettingsController> m_settings;
    std::unique_ptr<DesktopApp> m_app;
    std::unique_ptr<ProxyHost> m_host;
};

void TestUiSettings::initTestCase() {
    // Never touch a real keychain from a test run: this one has none.
    qputenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/llm-proxy-test-bus");
    qunsetenv("DISPLAY");
}

void TestUiSettings::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    m_store = std::make_unique<SettingsStore>(m_dir->filePath(QStringLiteral("llm-proxy.conf")));
    m_keys = std::make_unique<KeyStore>(QStringLiteral("llm-proxy-test-settings"));
}

void TestUiSettings::cleanup() {
    if (m_host && m_host->state() != ProxyHost::State::Stopped) {
        QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
        m_host->stop();
        QVERIFY(stopped.wait(10'000));
    }
    m_host.reset();
    m_app.reset();
    m_settings.reset();
    m_keys.reset();
    m_store.reset();
    m_dir.reset();
}

Config TestUiSettings::baseConfig() const {
    Config config = m_store->load();
    config.dataDir = m_dir->filePath(QStringLiteral("data")); // never the user's queue
    config.upstream = QUrl(QStringLiteral("http://127.0.0.1:9/v1"));
    return config;
}

void TestUiSettings::buildApp(const Config &effective) {
    m_settings =
        std::make_unique<SettingsController>(m_store.get(), m_keys.get(), effective, QByteArray());
    m_app = std::make_unique<DesktopApp>(m_settings.get());
    m_app->show();
}

QLineEdit *TestUiSettings::edit(const char *name) const {
    return m_app->window()->findChild<QLineEdit *>(QString::fromLatin1(name));
}

QuantityEdit *TestUiSettings::quantity(const char *name) const {
    return m_app->window()->findChild<QuantityEdit *>(QString::fromLatin1(name));
}

QLabel *TestUiSettings::label(const char *name) const {
    return m_app->window()->findChild<QLabel *>(QString::fromLatin1(name));
}

// Into a number and unit: the unit chosen in its list, then the number typed ("750ms": 750 and
// ms; "0" in an editor that allows off: off).
void TestUiSettings::typeInto(const char *name, const QString &text) {
    if (QuantityEdit *field = quantity(name)) {
        qsizetype digits = 0;
        while (digits < text.size() && text[digits].isDigit())
            ++digits;
        const QString unit = text.sliced(digits);
        QComboBox *units = field->unitBox();
        if (!unit.isEmpty()) {
            int index = -1;
            for (int i = 0; i < units->count(); ++i) {
                units->setCurrentIndex(i);
                if (field->unitName() == unit)
                    index = i;
            }
            QVERIFY2(index >= 0, qPrintable(text));
            units->setCurrentIndex(index);
        }
        QDoubleSpinBox *number = field->numberBox();
        number->selectAll();
        QTest::keyClick(number, Qt::Key_Backspace);
        QTest::keyClicks(number, text.first(digits));
        QCOMPARE(field->text(), field->text() == u"off" ? QStringLiteral("off") : text);
        return;
    }
    if (auto *spin = m_app->window()->findChild<QSpinBox *>(QString::fromLatin1(name))) {
        spin->selectAll();
        QTest::keyClick(spin, Qt::Key_Backspace);
        QTest::keyClicks(spin, text);
        return;
    }
    QLineEdit *field = edit(name);
    QVERIFY2(field, name);
    field->selectAll();
    QTest::keyClick(field, Qt::Key_Backspace);
    QTest::keyClicks(field, text);
}

void TestUiSettings::showSettings() {
    QTabWidget *tabs = m_app->window()->tabs();
    for (int i = 0; i < tabs->count(); ++i) {
        if (tabs->widget(i)->isAncestorOf(m_app->window()->settings()))
            tabs->setCurrentIndex(i);
    }
    QVERIFY(m_app->window()->settings()->isVisible());
    QApplication::setActiveWindow(m_app->window());
    QVERIFY(QTest::qWaitForWindowActive(m_app->window()));
}

void TestUiSettings::clickApply() {
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    QVERIFY(apply);
    QVERIFY(apply->isEnabled());
    QTest::mouseClick(apply, Qt::LeftButton);
}

ProxySnapshot
TestUiSettings::waitForSnapshot(const std::function<bool(const ProxySnapshot &)> &until) {
    ProxySnapshot last;
    bool seen = false;
    QMetaObject::Connection connection =
        connect(m_host.get(), &ProxyHost::snapshotReady, this, [&](const ProxySnapshot &s) {
            last = s;
            seen = seen || until(s);
        });
    const bool arrived = QTest::qWaitFor([&] { return seen; }, 10'000);
    Q_UNUSED(arrived) // the caller checks the snapshot it gets
    disconnect(connection);
    return last;
}

// The page reads the table: an editor that fits the kind (a spin box within the declared
// bounds for a count, a line edit otherwise), an error label and the table's help text under
// it for every setting the window shows, labelled as declared (with a mnemonic) and filled
// with settingText; none for the others.
void TestUiSettings::formHasARowForEveryWindowSetting() {
    const Config config = baseConfig();
    buildApp(config);
    int rows = 0;
    const auto withoutMnemonic = [](QString text) { return text.remove(u'&'); };
    for (const SettingDeclaration &decl : settingDeclarations()) {
        const QByteArray name = QString(decl.objectName).toLatin1();
        if (!decl.shownInWindow()) {
            QVERIFY2(decl.objectName.isEmpty(), qPrintable(decl.optionName()));
            continue;
        }
        ++rows;
        auto *editor = m_app->window()->findChild<QWidget *>(QString::fromLatin1(name + "Edit"));
        QVERIFY2(editor, name.constData());
        QVERIFY(label(QByteArray(name + "Error").constData()));
        bool labelled = false;
        const auto labels = m_app->window()->findChildren<QLabel *>();
        if (decl.kind == SettingDeclaration::Kind::List) {
            // Edited entry by entry in the Access group, under the declared title.
            for (const QLabel *title : labels) {
                labelled = labelled || (withoutMnemonic(title->text()) == decl.label &&
                                        title->toolTip() == QString(decl.hint));
            }
            QVERIFY2(labelled, name.constData());
            continue;
        }
        auto *spin = qobject_cast<QSpinBox *>(editor);
        auto *line = qobject_cast<QLineEdit *>(editor);
        auto *units = qobject_cast<QuantityEdit *>(editor);
        using Kind = SettingDeclaration::Kind;
        if (decl.kind == Kind::Count) {
            QVERIFY2(spin, name.constData());
            QCOMPARE(spin->minimum(), int(decl.minimum));
            QCOMPARE(spin->maximum(), int(decl.maximum));
            QCOMPARE(QString::number(spin->value()), settingText(config, decl.setting));
        } else if (decl.kind == Kind::Duration || decl.kind == Kind::DurationOrOff) {
            QVERIFY2(qobject_cast<DurationEdit *>(editor), name.constData());
            QCOMPARE(units->minimum(), decl.minimum);
            QCOMPARE(units->maximum(), decl.maximum);
            QCOMPARE(units->text(), settingText(config, decl.setting));
        } else if (decl.kind == Kind::Size) {
            QVERIFY2(qobject_cast<SizeEdit *>(editor), name.constData());
            QCOMPARE(units->minimum(), decl.minimum);
            QCOMPARE(units->maximum(), decl.maximum);
            QCOMPARE(units->text(), settingText(config, decl.setting));
        } else {
            QVERIFY2(line, name.constData());
            QCOMPARE(line->text(), settingText(config, decl.setting));
        }
        QCOMPARE(editor->toolTip(), QString(decl.hint));
        // The label's buddy is what takes the focus: the number box of a number and unit.
        QWidget *focus = editor->focusProxy() ? editor->focusProxy() : editor;
        for (const QLabel *title : labels) {
            labelled = labelled ||
                       (title->buddy() == focus && withoutMnemonic(title->text()) == decl.label);
        }
        QVERIFY2(labelled, name.constData());
        // The one-line explanation: the table's help, with the default filled in.
        QLabel *help = label(QByteArray(name + "Help").constData());
        QVERIFY2(help, name.constData());
        QString expected = decl.help;
        if (expected.contains(QStringLiteral("%1")))
            expected = expected.arg(settingText(Config(), decl.setting));
        QCOMPARE(help->text(), expected);
        QVERIFY(help->wordWrap());
    }
    QVERIFY(rows >= 10);
}

// A count cannot leave its declared bounds in the window: the spin box stops at them, and the
// command line accepts every value it can hold.
void TestUiSettings::countsStayWithinTheDeclaredBounds() {
    buildApp(baseConfig());
    int counts = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (!decl.shownInWindow() || decl.kind != SettingDeclaration::Kind::Count)
            continue;
        ++counts;
        auto *spin = m_app->window()->findChild<QSpinBox *>(QString(decl.objectName) +
                                                            QStringLiteral("Edit"));
        QVERIFY(spin);
        const QByteArray name = QByteArray(decl.objectName.data(), decl.objectName.size()) + "Edit";
        typeInto(name.constData(), QString::number(decl.maximum + 1));
        QVERIFY(spin->value() <= decl.maximum);
        spin->setValue(int(decl.maximum) + 1);
        QCOMPARE(spin->value(), int(decl.maximum));
        spin->setValue(int(decl.minimum) - 1);
        QCOMPARE(spin->value(), int(decl.minimum));
        Config scratch;
        QCOMPARE(applySetting(scratch, decl.setting, QString::number(decl.minimum)), QString());
        QCOMPARE(applySetting(scratch, decl.setting, QString::number(decl.maximum)), QString());
        QVERIFY(!applySetting(scratch, decl.setting, QString::number(decl.maximum + 1)).isEmpty());
        spin->setValue(int(decl.minimum) + 1);
        QVERIFY(m_app->window()->settings()->isValid());
        QCOMPARE(settingText(m_app->window()->settings()->editedConfig(), decl.setting),
                 QString::number(decl.minimum + 1));
    }
    QVERIFY(counts >= 1);
}

// The editor alone: the settings' text in, shown as written (the unit kept when the value is
// a whole number of it), the same text out; a unit changed keeps the number typed.
void TestUiSettings::quantityEditRoundTrips() {
    const SettingDeclaration &window = settingDeclaration(Setting::BatchWindow);
    DurationEdit duration(window.minimum, window.maximum, false);
    for (const char *text : {"90s", "60m", "1500ms", "24h", "1m", "100ms"}) {
        duration.setText(QString::fromLatin1(text));
        QCOMPARE(duration.text(), QString::fromLatin1(text));
    }
    duration.setText(QStringLiteral("90s"));
    QCOMPARE(duration.numberBox()->value(), 90.0);
    QCOMPARE(duration.unitBox()->currentText(), QStringLiteral("s"));
    // Written otherwise: the largest unit that holds it whole.
    duration.setText(QStringLiteral("0.5"));
    QCOMPARE(duration.text(), QStringLiteral("500ms"));
    duration.setText(QStringLiteral("120"));
    QCOMPARE(duration.text(), QStringLiteral("2m"));
    QCOMPARE(duration.unitBox()->currentText(), QStringLiteral("min"));
    // Not a duration: left as it was.
    duration.setText(QStringLiteral("soon"));
    QCOMPARE(duration.text(), QStringLiteral("2m"));
    // Another unit, the same number.
    QSignalSpy edited(&duration, &QuantityEdit::edited);
    duration.unitBox()->setCurrentIndex(duration.unitBox()->findText(QStringLiteral("h")));
    QCOMPARE(duration.text(), QStringLiteral("2h"));
    QVERIFY(edited.count() >= 1);
    // The batch window's units stop at hours.
    QStringList units;
    for (int i = 0; i < duration.unitBox()->count(); ++i)
        units.append(duration.unitBox()->itemText(i));
    QCOMPARE(units, (QStringList{QStringLiteral("ms"), QStringLiteral("s"), QStringLiteral("min"),
                                 QStringLiteral("h")}));

    const SettingDeclaration &bytes = settingDeclaration(Setting::BatchBytes);
    SizeEdit size(bytes.minimum, bytes.maximum);
    for (const char *text : {"25MB", "1000KB", "32MiB", "1000KiB", "1500B"}) {
        size.setText(QString::fromLatin1(text));
        QCOMPARE(size.text(), QString::fromLatin1(text));
    }
    size.setText(QStringLiteral("2000000"));
    QCOMPARE(size.text(), QStringLiteral("2MB"));
    // No gigabytes where the most is 200MB.
    QCOMPARE(size.unitBox()->findText(QStringLiteral("GB")), -1);
    QCOMPARE(size.unitBox()->findText(QStringLiteral("GiB")), -1);
    QVERIFY(size.unitBox()->findText(QStringLiteral("bytes")) >= 0);
    QVERIFY(size.unitBox()->findText(QStringLiteral("MiB")) >= 0);

    const SettingDeclaration &grace = settingDeclaration(Setting::GracePeriod);
    DurationEdit off(grace.minimum, grace.maximum, true);
    off.setText(QStringLiteral("off"));
    QCOMPARE(off.text(), QStringLiteral("off"));
    QCOMPARE(off.numberBox()->text(), QStringLiteral("off"));
    off.setText(QStringLiteral("720h"));
    QCOMPARE(off.text(), QStringLiteral("720h"));
    off.setText(QString());
    QCOMPARE(off.text(), QStringLiteral("off"));
}

// Every duration and size the window shows is a number and a unit, within its declared bounds,
// and every unit it offers is one the command line takes: the text it gives is accepted.
void TestUiSettings::quantityEditsFitTheirSetting() {
    buildApp(baseConfig());
    int quantities = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        using Kind = SettingDeclaration::Kind;
        if (!decl.shownInWindow() || (decl.kind != Kind::Duration &&
                                      decl.kind != Kind::DurationOrOff && decl.kind != Kind::Size))
            continue;
        ++quantities;
        const QByteArray name = QByteArray(decl.objectName.data(), decl.objectName.size());
        QuantityEdit *field = quantity(QByteArray(name + "Edit").constData());
        QVERIFY2(field, name.constData());
        QCOMPARE(field->numberBox()->objectName(), QString::fromLatin1(name + "Number"));
        QCOMPARE(field->unitBox()->objectName(), QString::fromLatin1(name + "Unit"));
        QCOMPARE(field->focusProxy(), field->numberBox());
        QVERIFY(!field->unitBox()->accessibleName().isEmpty());
        for (int i = 0; i < field->unitBox()->count(); ++i) {
            field->unitBox()->setCurrentIndex(i);
            field->numberBox()->setValue(1);
            Config scratch;
            const QString problem = applySetting(scratch, decl.setting, field->text());
            // One of the unit is accepted, or refused only as out of range.
            QVERIFY2(problem.isEmpty() || problem.contains(u"out of range") ||
                         problem.contains(u"too "),
                     qPrintable(problem));
        }
    }
    QCOMPARE(quantities, 6); // five durations and sizes, and the answer cache's window
}

// Typed and chosen with the keyboard: 90 in the number box, "s" picked in the unit list with the
// arrow keys; Apply saves "90s" in the settings file, and the form still says 90 s.
void TestUiSettings::numberAndUnitTypedAreSavedAsSettingsText() {
    buildApp(baseConfig());
    showSettings();
    QuantityEdit *window = quantity("batchWindowEdit");
    window->setText(QStringLiteral("3m"));
    QDoubleSpinBox *number = window->numberBox();
    number->setFocus();
    QTRY_VERIFY(number->hasFocus());
    number->selectAll();
    QTest::keyClicks(number, QStringLiteral("90"));
    QCOMPARE(window->text(), QStringLiteral("90m"));
    QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab);
    QTRY_VERIFY(window->unitBox()->hasFocus());
    QTest::keyClick(window->unitBox(), Qt::Key_Up); // from min to s
    QCOMPARE(window->unitBox()->currentText(), QStringLiteral("s"));
    QCOMPARE(window->text(), QStringLiteral("90s"));

    QuantityEdit *body = quantity("maxBodyEdit");
    typeInto("maxBodyEdit", QStringLiteral("3MB"));
    QCOMPARE(body->unitBox()->currentText(), QStringLiteral("MB"));
    clickApply();

    QCOMPARE(m_settings->config().batchWindow, 90s);
    QCOMPARE(m_settings->config().maxBody, qint64(3'000'000));
    QSettings file(m_store->filePath(), QSettings::IniFormat);
    QCOMPARE(file.value(QStringLiteral("proxy/batch_window")).toString(), QStringLiteral("90s"));
    QCOMPARE(file.value(QStringLiteral("proxy/max_body")).toString(), QStringLiteral("3MB"));
    QCOMPARE(window->numberBox()->value(), 90.0);
    QCOMPARE(window->unitBox()->currentText(), QStringLiteral("s"));
    QVERIFY(!m_app->window()->settings()->hasChanges());
}

// A settings file written by hand or by an older version loads into the editors as it was
// written, and an untouched form changes nothing in it.
void TestUiSettings::savedValuesLoadBackAsWritten() {
    {
        QSettings file(m_store->filePath(), QSettings::IniFormat);
        file.setValue(QStringLiteral("proxy/batch_window"), QStringLiteral("90s"));
        file.setValue(QStringLiteral("proxy/poll_interval"), QStringLiteral("1500ms"));
        file.setValue(QStringLiteral("proxy/batch_bytes"), QStringLiteral("512KiB"));
        file.setValue(QStringLiteral("proxy/max_body"), QStringLiteral("1GB"));
        file.setValue(QStringLiteral("proxy/grace_period"), QStringLiteral("36h"));
    }
    buildApp(baseConfig());
    const auto shows = [this](const char *name, double number, const QString &unit) {
        QuantityEdit *field = quantity(name);
        return field && field->numberBox()->value() == number &&
               field->unitBox()->currentText() == unit;
    };
    QVERIFY(shows("batchWindowEdit", 90, QStringLiteral("s")));
    QVERIFY(shows("pollIntervalEdit", 1500, QStringLiteral("ms")));
    QVERIFY(shows("batchBytesEdit", 512, QStringLiteral("KiB")));
    QVERIFY(shows("maxBodyEdit", 1, QStringLiteral("GB")));
    QVERIFY(shows("gracePeriodEdit", 36, QStringLiteral("h")));
    QVERIFY(!m_app->window()->settings()->hasChanges());
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
    // Saved again as it is: the file keeps the same texts.
    QVERIFY(m_store->save(m_app->window()->settings()->editedConfig()));
    QSettings file(m_store->filePath(), QSettings::IniFormat);
    QCOMPARE(file.value(QStringLiteral("proxy/batch_window")).toString(), QStringLiteral("90s"));
    QCOMPARE(file.value(QStringLiteral("proxy/poll_interval")).toString(),
             QStringLiteral("1500ms"));
    QCOMPARE(file.value(QStringLiteral("proxy/batch_bytes")).toString(), QStringLiteral("512KiB"));
    QCOMPARE(file.value(QStringLiteral("proxy/grace_period")).toString(), QStringLiteral("36h"));
}

// The arrow keys stop at the declared bounds; a number typed beyond them stays, and is refused
// with the command line's reason next to the field (Apply stays off) until it is fixed.
void TestUiSettings::arrowsStopAtTheDeclaredBounds() {
    buildApp(baseConfig());
    showSettings();
    const auto press = [this](const char *name, Qt::Key key) {
        QDoubleSpinBox *number = quantity(name)->numberBox();
        number->setFocus();
        QTest::keyClick(number, key);
        return quantity(name)->text();
    };
    typeInto("batchWindowEdit", QStringLiteral("24h"));
    QCOMPARE(press("batchWindowEdit", Qt::Key_Up), QStringLiteral("24h"));
    QCOMPARE(press("batchWindowEdit", Qt::Key_Down), QStringLiteral("23h"));
    typeInto("batchWindowEdit", QStringLiteral("1s"));
    QCOMPARE(press("batchWindowEdit", Qt::Key_Down), QStringLiteral("1s")); // 0s is refused
    typeInto("batchBytesEdit", QStringLiteral("200MB"));
    QCOMPARE(press("batchBytesEdit", Qt::Key_PageUp), QStringLiteral("200MB"));
    typeInto("pollIntervalEdit", QStringLiteral("100ms"));
    QCOMPARE(press("pollIntervalEdit", Qt::Key_Down), QStringLiteral("100ms"));
    // Below a grace period's least, off.
    typeInto("gracePeriodEdit", QStringLiteral("1s"));
    QCOMPARE(press("gracePeriodEdit", Qt::Key_Down), QStringLiteral("off"));
    QCOMPARE(press("gracePeriodEdit", Qt::Key_Up), QStringLiteral("1s"));
    typeInto("gracePeriodEdit", QStringLiteral("720h"));
    QCOMPARE(press("gracePeriodEdit", Qt::Key_Up), QStringLiteral("720h"));
    QVERIFY(label("gracePeriodError")->text().isEmpty());

    // Typed beyond the most: kept, refused, explained; an arrow brings it back within.
    typeInto("batchWindowEdit", QStringLiteral("25h"));
    QCOMPARE(quantity("batchWindowEdit")->numberBox()->text(), QStringLiteral("25"));
    QCOMPARE(label("batchWindowError")->text(),
             QStringLiteral("\"25h\" is out of range (expected more than 0 and at most 24h)"));
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
    QCOMPARE(press("batchWindowEdit", Qt::Key_Down), QStringLiteral("24h"));
    QVERIFY(label("batchWindowError")->text().isEmpty());
}

void TestUiSettings::formShowsConfig() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("1500ms")), QString());
    buildApp(config);
    QCOMPARE(edit("listenEdit")->text(), QStringLiteral("localhost:3030"));
    QCOMPARE(edit("upstreamEdit")->text(), QStringLiteral("http://127.0.0.1:9/v1"));
    QCOMPARE(quantity("batchWindowEdit")->text(), QStringLiteral("1500ms"));
    QCOMPARE(quantity("batchWindowEdit")->numberBox()->value(), 1500.0);
    QCOMPARE(quantity("batchWindowEdit")->unitBox()->currentText(), QStringLiteral("ms"));
    QCOMPARE(m_app->window()->findChild<QSpinBox *>(QStringLiteral("batchSizeEdit"))->value(),
             1000);
    QCOMPARE(quantity("batchBytesEdit")->text(), QStringLiteral("25MB"));
    QCOMPARE(quantity("pollIntervalEdit")->text(), QStringLiteral("10s"));
    QCOMPARE(quantity("maxBodyEdit")->text(), QStringLiteral("32MiB"));
    QCOMPARE(quantity("maxBodyEdit")->unitBox()->currentText(), QStringLiteral("MiB"));
    QCOMPARE(quantity("gracePeriodEdit")->text(), QStringLiteral("off"));
    QCOMPARE(quantity("gracePeriodEdit")->numberBox()->text(), QStringLiteral("off"));
    for (const char *name :
         {"listenError", "upstreamError", "batchWindowError", "batchSizeError", "batchBytesError",
          "pollIntervalError", "maxBodyError", "gracePeriodError"}) {
        QVERIFY2(label(name), name);
        QVERIFY(label(name)->text().isEmpty());
    }
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
}

void TestUiSettings::validatedAsTyped_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("setting");
    QTest::addColumn<QString>("bad");
    QTest::addColumn<QString>("good");
    QTest::newRow("listen") << "listenEdit"
                            << "--listen"
                            << "example.com:80"
                            << "127.0.0.1:0";
    QTest::newRow("upstream") << "upstreamEdit"
                              << "--upstream"
                              << "ftp://x/v1"
                              << "https://example.com/v1";
    QTest::newRow("window") << "batchWindowEdit"
                            << "--batch-window"
                            << "0s"
                            << "2s";
    QTest::newRow("window range") << "batchWindowEdit"
                                  << "--batch-window"
                                  << "25h"
                                  << "24h";
    QTest::newRow("bytes") << "batchBytesEdit"
                           << "--batch-bytes"
                           << "201MB"
                           << "200MB";
    QTest::newRow("poll") << "pollIntervalEdit"
                          << "--poll-interval"
                          << "50ms"
                          << "100ms";
    QTest::newRow("body") << "maxBodyEdit"
                          << "--max-body"
                          << "12B"
                          << "1KiB";
    QTest::newRow("grace range") << "gracePeriodEdit"
                                 << "--grace-period"
                                 << "500ms"
                                 << "90s";
    QTest::newRow("grace too long") << "gracePeriodEdit"
                                    << "--grace-period"
                                    << "721h"
                                    << "720h";
}

void TestUiSettings::validatedAsTyped() {
    QFETCH(QString, field);
    QFETCH(QString, setting);
    QFETCH(QString, bad);
    QFETCH(QString, good);
    buildApp(baseConfig());
    const QByteArray name = field.toLatin1();
    const QByteArray errorName = field.chopped(4).toLatin1() + "Error";
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));

    typeInto(name.constData(), bad);
    // The reason is the command line's, word for word.
    const CommandLine line = parseCommandLine({QStringLiteral("llm-proxy"), setting + u'=' + bad});
    QCOMPARE(line.action, CommandLine::Action::Error);
    const QString reason = label(errorName.constData())->text();
    QVERIFY(!reason.isEmpty());
    QCOMPARE(QStringLiteral("llm-proxy: ") + setting + QStringLiteral(": ") + reason, line.message);
    QVERIFY(!apply->isEnabled());
    QVERIFY(!m_app->window()->settings()->isValid());

    typeInto(name.constData(), good);
    QVERIFY(label(errorName.constData())->text().isEmpty());
    QVERIFY(apply->isEnabled());
    QVERIFY(m_app->window()->settings()->isValid());
}

void TestUiSettings::applySavesOnlyChangedSettings() {
    // In force: batch size 5 from the command line (not stored).
    Config effective = baseConfig();
    QCOMPARE(applySetting(effective, Setting::BatchSize, QStringLiteral("5")), QString());
    buildApp(effective);
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("batchWindowEdit", QStringLiteral("750ms"));
    typeInto("maxBodyEdit", QStringLiteral("2MiB"));
    clickApply();
    QCOMPARE(configs.count(), 1);
    const Config applied = configs.constFirst().constFirst().value<Config>();
    QCOMPARE(applied.batchWindow, 750ms);
    QCOMPARE(applied.maxBody, qint64(2 * 1024 * 1024));
    QCOMPARE(applied.batchSize, 5);
    QCOMPARE(applied.dataDir, effective.dataDir);

    const Config stored = SettingsStore(m_store->filePath()).load();
    QCOMPARE(stored.batchWindow, 750ms);
    QCOMPARE(stored.maxBody, qint64(2 * 1024 * 1024));
    QCOMPARE(stored.batchSize, 1000); // the command line's value is not saved
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("batch window")));
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("largest body")));
    // The form now shows what is in force, and nothing is pending.
    QCOMPARE(quantity("batchWindowEdit")->text(), QStringLiteral("750ms"));
    QVERIFY(!m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"))->isEnabled());
}

void TestUiSettings::revert() {
    buildApp(baseConfig());
    typeInto("batchWindowEdit", QStringLiteral("25h"));
    QVERIFY(!label("batchWindowError")->text().isEmpty());
    auto *revert = m_app->window()->findChild<QPushButton *>(QStringLiteral("revertButton"));
    QVERIFY(revert->isEnabled());
    QTest::mouseClick(revert, Qt::LeftButton);
    QCOMPARE(quantity("batchWindowEdit")->text(), QStringLiteral("4s"));
    QVERIFY(label("batchWindowError")->text().isEmpty());
}

void TestUiSettings::listenChangeRebindsTheCore() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::listenFailed, m_app.get(), &DesktopApp::showListenFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));

    const quint16 port = freePort();
    QVERIFY(port != 0);
    const QString target = QStringLiteral("http://127.0.0.1:%1/v1").arg(port);
    typeInto("listenEdit", QStringLiteral("127.0.0.1:%1").arg(port));
    clickApply();
    const ProxySnapshot snapshot =
        waitForSnapshot([&](const ProxySnapshot &s) { return s.listenUrls.contains(target); });
    QCOMPARE(snapshot.listenUrls, QStringList{target});
    QVERIFY(snapshot.listenError.isEmpty());
    QTRY_VERIFY(m_app->window()
                    ->findChild<QLabel *>(QStringLiteral("listenLabel"))
                    ->text()
                    .contains(target));
    QCOMPARE(SettingsStore(m_store->filePath()).load().listen.constFirst().port, port);
}

void TestUiSettings::takenPortIsReported() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_host.get(), &ProxyHost::listenFailed, m_app.get(), &DesktopApp::showListenFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));
    const quint16 boundPort =
        started.constFirst().constFirst().value<QList<quint16>>().constFirst();

    QTcpServer squatter;
    QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
    QSignalSpy failed(m_host.get(), &ProxyHost::listenFailed);
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    typeInto("listenEdit", QStringLiteral("127.0.0.1:%1").arg(squatter.serverPort()));
    clickApply();
    QVERIFY(failed.wait(10'000));
    const QString error = failed.constFirst().constFirst().toString();
    QVERIFY2(error.contains(QString::number(squatter.serverPort())), qPrintable(error));
    // Said next to the field, and by a notification; the old address keeps serving.
    QTRY_COMPARE(label("listenError")->text(), error);
    QCOMPARE(notified.count(), 1);
    const ProxySnapshot snapshot =
        waitForSnapshot([](const ProxySnapshot &s) { return !s.listenError.isEmpty(); });
    QCOMPARE(snapshot.listenError, error);
    QVERIFY(snapshot.listening);
    QCOMPARE(snapshot.listenUrls,
             QStringList{QStringLiteral("http://127.0.0.1:%1/v1").arg(boundPort)});
}

void TestUiSettings::startFailureRecoversWithNewAddress() {
    QTcpServer squatter;
    QVERIFY(squatter.listen(QHostAddress::LocalHost, 0));
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen,
                          QStringLiteral("127.0.0.1:%1").arg(squatter.serverPort())),
             QString());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    connect(m_host.get(), &ProxyHost::startFailed, m_app.get(), &DesktopApp::showStartFailed);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy startFailed(m_host.get(), &ProxyHost::startFailed);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(startFailed.wait(10'000));
    QCOMPARE(m_host->state(), ProxyHost::State::StartFailed);
    QVERIFY(!label("listenError")->text().isEmpty());

    typeInto("listenEdit", QStringLiteral("127.0.0.1:0"));
    clickApply();
    QVERIFY(started.wait(10'000));
    QCOMPARE(m_host->state(), ProxyHost::State::Running);
}

void TestUiSettings::keyIsWriteOnlyAndFallsBackToFile() {
    buildApp(baseConfig());
    QLineEdit *key = edit("apiKeyEdit");
    QVERIFY(key);
    QCOMPARE(key->echoMode(), QLineEdit::Password);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("No key stored")));
    auto *fallback = m_app->window()->findChild<QFrame *>(QStringLiteral("keyFallback"));
    QVERIFY(fallback && fallback->isHidden());

    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("apiKeyEdit", QString::fromUtf8(TestKey));
    clickApply();
    QVERIFY(key->text().isEmpty()); // never kept in the form
    QTRY_VERIFY_WITH_TIMEOUT(!fallback->isHidden(), 10'000);
    QVERIFY(label("keyFallbackText")->text().contains(QStringLiteral("No system keychain")));
    QVERIFY(label("keyFallbackText")->text().contains(QStringLiteral("0600")));
    QCOMPARE(configs.count(), 1);
    QCOMPARE(configs.constFirst().constFirst().value<Config>().apiKey, TestKey);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("not saved")));

    QTest::mouseClick(
        m_app->window()->findChild<QPushButton *>(QStringLiteral("keepKeyInFileButton")),
        Qt::LeftButton);
    QVERIFY(fallback->isHidden());
    QCOMPARE(m_store->keyLocation(), KeyLocation::File);
    const QString status = label("apiKeyStatus")->text();
    QVERIFY2(status.contains(QStringLiteral("settings file")), qPrintable(status));
    QVERIFY(status.contains(QStringLiteral("…zzzz")));
    // Nowhere in the window is the key shown.
    const QList<QLabel *> labels = m_app->window()->findChildren<QLabel *>();
    for (const QLabel *any : labels)
        QVERIFY(!any->text().contains(QStringLiteral("0123456789")));
    const QList<QLineEdit *> edits = m_app->window()->findChildren<QLineEdit *>();
    for (const QLineEdit *any : edits)
        QVERIFY(!any->text().contains(QStringLiteral("0123456789")));

    QTest::mouseClick(m_app->window()->findChild<QPushButton *>(QStringLiteral("forgetKeyButton")),
                      Qt::LeftButton);
    QCOMPARE(m_store->keyLocation(), KeyLocation::None);
    QVERIFY(label("apiKeyStatus")->text().contains(QStringLiteral("No key stored")));
    QVERIFY(m_settings->config().apiKey.isEmpty());
}

void TestUiSettings::notificationsToggle() {
    buildApp(baseConfig());
    auto *check = m_app->window()->findChild<QCheckBox *>(QStringLiteral("notificationsCheck"));
    QVERIFY(check && check->isChecked());
    QVERIFY(m_app->tray()->notificationsEnabled());
    check->click();
    QVERIFY(!m_store->notificationsEnabled());
    QVERIFY(!m_app->tray()->notificationsEnabled());
    QSignalSpy notified(m_app->tray(), &TrayController::notified);
    BatchProgress batch;
    batch.status = "completed";
    batch.active = false;
    m_app->showBatchFinished(batch);
    QCOMPARE(notified.count(), 0);
}

void TestUiSettings::gracePeriodIsARealSetting() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::GracePeriod, QStringLiteral("2h")), QString());
    buildApp(config);
    QuantityEdit *grace = quantity("gracePeriodEdit");
    QVERIFY(grace);
    QVERIFY(grace->isEnabled());
    QVERIFY(!grace->numberBox()->isReadOnly());
    QCOMPARE(grace->text(), QStringLiteral("2h"));
    QCOMPARE(grace->numberBox()->specialValueText(), QStringLiteral("off")); // what 0 means
    QVERIFY(label("gracePeriodError"));
    QVERIFY(label("gracePeriodError")->text().isEmpty());
    QVERIFY(!edit("graceEdit")); // the old disabled placeholder is gone
    // Nothing in the window says it is still to come.
    const QList<QLabel *> labels = m_app->window()->findChildren<QLabel *>();
    for (const QLabel *any : labels)
        QVERIFY2(!any->text().contains(QStringLiteral("durable queue")), qPrintable(any->text()));
    QVERIFY(!grace->toolTip().contains(QStringLiteral("coming")));
}

void TestUiSettings::gracePeriodBadValueIsNotApplied() {
    buildApp(baseConfig());
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    typeInto("gracePeriodEdit", QStringLiteral("721h"));
    const QString reason = label("gracePeriodError")->text();
    QCOMPARE(reason, QStringLiteral("\"721h\" is out of range (expected 1s to 30 days, or off)"));
    QVERIFY(!apply->isEnabled());
    // Return in the field applies only a valid form.
    QTest::keyClick(quantity("gracePeriodEdit")->numberBox(), Qt::Key_Return);
    typeInto("gracePeriodEdit", QStringLiteral("500ms"));
    QCOMPARE(label("gracePeriodError")->text(),
             QStringLiteral("\"500ms\" is out of range (expected 1s to 30 days, or off)"));
    QTest::keyClick(quantity("gracePeriodEdit")->numberBox(), Qt::Key_Return);
    QVERIFY(!apply->isEnabled());
    // A good value elsewhere does not carry the bad one along.
    typeInto("batchSizeEdit", QStringLiteral("7"));
    QVERIFY(!apply->isEnabled());
    QTest::mouseClick(apply, Qt::LeftButton);
    QCOMPARE(configs.count(), 0);
    QVERIFY(!m_settings->config().gracePeriod.has_value());
    QCOMPARE(m_settings->config().batchSize, 1000);
    const Config stored = SettingsStore(m_store->filePath()).load(); // nothing saved
    QVERIFY(!stored.gracePeriod.has_value());
    QCOMPARE(stored.batchSize, 1000);
}

// 0 is off, and reads "off".
void TestUiSettings::gracePeriodEmptyMeansOff() {
    // In force: a grace period of 1h, stored.
    Config effective = baseConfig();
    QCOMPARE(applySetting(effective, Setting::GracePeriod, QStringLiteral("1h")), QString());
    QVERIFY(m_store->save(effective));
    buildApp(effective);
    auto *apply = m_app->window()->findChild<QPushButton *>(QStringLiteral("applyButton"));
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QCOMPARE(quantity("gracePeriodEdit")->text(), QStringLiteral("1h"));
    // 60 min is the value in force: nothing to apply.
    typeInto("gracePeriodEdit", QStringLiteral("60m"));
    QVERIFY(!apply->isEnabled());
    typeInto("gracePeriodEdit", QStringLiteral("0"));
    QCOMPARE(quantity("gracePeriodEdit")->text(), QStringLiteral("off"));
    QVERIFY(label("gracePeriodError")->text().isEmpty());
    clickApply();
    QCOMPARE(configs.count(), 1);
    QVERIFY(!configs.constFirst().constFirst().value<Config>().gracePeriod.has_value());
    QVERIFY(!m_settings->config().gracePeriod.has_value());
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("grace period")));
    // Off is the default: the stored value is removed, and the form says "off".
    QVERIFY(!SettingsStore(m_store->filePath()).load().gracePeriod.has_value());
    QCOMPARE(quantity("gracePeriodEdit")->text(), QStringLiteral("off"));
    QCOMPARE(quantity("gracePeriodEdit")->numberBox()->text(), QStringLiteral("off"));
    QVERIFY(!apply->isEnabled());
    // 0 in any unit over "off" is no change either.
    typeInto("gracePeriodEdit", QStringLiteral("0h"));
    QVERIFY(!apply->isEnabled());
}

void TestUiSettings::gracePeriodReachesBatchesAlreadyOut() {
    FakeProvider fake;
    QVERIFY(fake.listen());
    fake.setValidationDelay(10ms);
    fake.setNeverFinish(true);
    fake.setCancelFractionDone(0.0);
    Config config = baseConfig();
    config.upstream = fake.baseUrl();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("100ms")), QString());
    QCOMPARE(applySetting(config, Setting::PollInterval, QStringLiteral("100ms")), QString());
    QVERIFY(!config.gracePeriod.has_value());
    buildApp(config);
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_host.get(), &ProxyHost::snapshotReady, m_app.get(), &DesktopApp::showSnapshot);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    QVERIFY(started.wait(10'000));
    TestClient client;
    client.setPort(started.constFirst().constFirst().value<QList<quint16>>().constFirst());

    // A batch goes out with no grace period, and is left alone.
    QNetworkReply *reply = client.send("POST", "/v1/chat/completions", chatBody("overdue"));
    QTRY_COMPARE_WITH_TIMEOUT(fake.batches().size(), 1, 10'000);
    QTest::qWait(1500);
    QVERIFY(!reply->isFinished());
    QCOMPARE(fake.count("POST", "/v1/batches/"), 0);

    // Set in the window: the batch already out is cancelled (it is older than 1s), and its
    // request goes through the synchronous API.
    typeInto("gracePeriodEdit", QStringLiteral("1s"));
    clickApply();
    QVERIFY(TestClient::finished(reply, 15'000));
    QCOMPARE(TestClient::status(reply), 200);
    QCOMPARE(reply->rawHeader("x-llm-proxy-fallback"), QByteArray("sync"));
    QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: overdue"));
    QCOMPARE(fake.count("POST", "/v1/batches/"), 1); // one cancel
    QCOMPARE(fake.count("POST", "/v1/chat/completions"), 1);
    QCOMPARE(fake.batches().size(), 1);
    QCOMPARE(SettingsStore(m_store->filePath()).load().gracePeriod, std::optional(1s));

    // Stopped while the fake provider is still there.
    QSignalSpy stopped(m_host.get(), &ProxyHost::stopped);
    m_host->stop();
    QVERIFY(stopped.wait(10'000));
}

QPushButton *TestUiSettings::button(const char *name) const {
    return m_app->window()->findChild<QPushButton *>(QString::fromLatin1(name));
}

quint16 TestUiSettings::startHost() {
    m_host = std::make_unique<ProxyHost>();
    m_host->setSnapshotInterval(100ms);
    connect(m_settings.get(), &SettingsController::configChanged, m_host.get(),
            &ProxyHost::applyConfig);
    QSignalSpy started(m_host.get(), &ProxyHost::started);
    m_host->start(m_settings->config());
    if (!started.wait(10'000))
        return 0;
    const ProxySnapshot snapshot =
        waitForSnapshot([](const ProxySnapshot &s) { return !s.listenUrls.isEmpty(); });
    if (snapshot.listenUrls.isEmpty())
        return 0;
    return static_cast<quint16>(QUrl(snapshot.listenUrls.constFirst()).port());
}

// Origins and hosts are edited as lists, applied with the other settings, saved in the settings
// file (so --no-gui uses them too) and in force in the running proxy.
void TestUiSettings::accessListsApplyAndPersist() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    buildApp(config);
    const quint16 port = startHost();
    QVERIFY(port != 0);
    TestClient client;
    client.setPort(port);
    const auto statusWith = [&client](const Headers &headers) {
        return client.statusOf("GET", "/stats", headers);
    };
    const Headers fromTool{{"Origin", "http://localhost:5173"}};
    QCOMPARE(statusWith(fromTool), 403);

    auto *origins = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowOriginsList"));
    auto *hosts = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowHostsList"));
    QVERIFY(origins && hosts);
    QCOMPARE(origins->count(), 0);
    typeInto("allowOriginEdit", QStringLiteral("http://localhost:5173"));
    QVERIFY(button("addOriginButton")->isEnabled());
    QTest::mouseClick(button("addOriginButton"), Qt::LeftButton);
    typeInto("allowOriginEdit", QStringLiteral("HTTPS://Tool.Example/"));
    QTest::keyClick(edit("allowOriginEdit"), Qt::Key_Return); // Enter adds too
    typeInto("allowHostEdit", QStringLiteral("proxy.example.lan"));
    QTest::mouseClick(button("addHostButton"), Qt::LeftButton);
    QCOMPARE(origins->count(), 2);
    QCOMPARE(origins->item(1)->text(), QStringLiteral("https://tool.example")); // as compared
    QCOMPARE(hosts->count(), 1);
    QVERIFY(edit("allowOriginEdit")->text().isEmpty());

    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    clickApply();
    QCOMPARE(configs.count(), 1);
    const QList<QByteArray> expectedOrigins{"http://localhost:5173", "https://tool.example"};
    QCOMPARE(configs.constFirst().constFirst().value<Config>().allowOrigins, expectedOrigins);
    QVERIFY(label("settingsMessage")->text().contains(QStringLiteral("allowed origins")));
    // Saved: a fresh load of the file gives them back, and the command line starts from them.
    const Config stored = SettingsStore(m_store->filePath()).load();
    QCOMPARE(stored.allowOrigins, expectedOrigins);
    QCOMPARE(stored.allowHosts, QList<QByteArray>{"proxy.example.lan"});
    QCOMPARE(parseCommandLine({QStringLiteral("llm-proxy"), QStringLiteral("--no-gui")}, {}, stored)
                 .config.allowOrigins,
             expectedOrigins);
    // In force: the tool's page is served now, and the allowed Host name too.
    QTRY_COMPARE(statusWith(fromTool), 200);
    QCOMPARE(statusWith({{"Host", "proxy.example.lan"}}), 200);
    QVERIFY(!button("applyButton")->isEnabled());

    // Removing one is applied and saved the same way.
    origins->setCurrentRow(0);
    QVERIFY(button("removeOriginButton")->isEnabled());
    QTest::mouseClick(button("removeOriginButton"), Qt::LeftButton);
    QCOMPARE(origins->count(), 1);
    clickApply();
    QCOMPARE(SettingsStore(m_store->filePath()).load().allowOrigins,
             QList<QByteArray>{"https://tool.example"});
    QTRY_COMPARE(statusWith(fromTool), 403);
}

void TestUiSettings::badAccessEntryIsRefusedAsTyped_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("option");
    QTest::addColumn<QString>("bad");
    QTest::newRow("origin with a path") << "allowOrigin"
                                        << "--allow-origin"
                                        << "http://localhost:5173/app";
    QTest::newRow("origin without scheme") << "allowOrigin"
                                           << "--allow-origin"
                                           << "localhost";
    QTest::newRow("host") << "allowHost"
                          << "--allow-host"
                          << "evil_host!";
}

void TestUiSettings::badAccessEntryIsRefusedAsTyped() {
    QFETCH(QString, field);
    QFETCH(QString, option);
    QFETCH(QString, bad);
    buildApp(baseConfig());
    const QByteArray editName = (field + QStringLiteral("Edit")).toLatin1();
    const QByteArray errorName = (field + QStringLiteral("Error")).toLatin1();
    const QByteArray addName =
        field == QStringLiteral("allowOrigin") ? "addOriginButton" : "addHostButton";
    typeInto(editName.constData(), bad);
    const CommandLine line = parseCommandLine({QStringLiteral("llm-proxy"), option + u'=' + bad});
    QCOMPARE(line.action, CommandLine::Action::Error);
    const QString reason = label(errorName.constData())->text();
    QVERIFY(!reason.isEmpty());
    QCOMPARE(QStringLiteral("llm-proxy: ") + option + QStringLiteral(": ") + reason, line.message);
    QVERIFY(!button(addName.constData())->isEnabled());
    QTest::keyClick(edit(editName.constData()), Qt::Key_Return);
    auto *origins = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowOriginsList"));
    auto *hosts = m_app->window()->findChild<QListWidget *>(QStringLiteral("allowHostsList"));
    QCOMPARE(origins->count() + hosts->count(), 0);
    QVERIFY(!button("applyButton")->isEnabled());
    // Cleared, the reason goes.
    typeInto(editName.constData(), QString());
    QVERIFY(label(errorName.constData())->text().isEmpty());
}

// Generate: a CSPRNG token shown once and copied; the tokens file is written owner-only in the
// format the proxy reads; the running proxy then refuses requests without it.
void TestUiSettings::generatedTokenIsSavedCopiedAndRequired() {
    Config config = baseConfig();
    QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
    const QString tokensPath = m_dir->filePath(QStringLiteral("config/tokens"));
    config.tokensFile = tokensPath;
    buildApp(config);
    const quint16 port = startHost();
    QVERIFY(port != 0);
    TestClient client;
    client.setPort(port);
    const auto statusWith = [&client](const Headers &headers) {
        return client.statusOf("GET", "/stats", headers);
    };
    QCOMPARE(statusWith({}), 200); // no tokens yet: loopback needs none

    auto *frame = m_app->window()->findChild<QFrame *>(QStringLiteral("newTokenFrame"));
    QVERIFY(frame && frame->isHidden());
    typeInto("tokenNameEdit", QStringLiteral("bad name"));
    QVERIFY(!button("generateTokenButton")->isEnabled());
    QVERIFY(!label("tokenError")->text().isEmpty());
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QVERIFY(button("generateTokenButton")->isEnabled());
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);

    QVERIFY(!frame->isHidden());
    const QByteArray token = edit("newTokenEdit")->text().toLatin1();
    QVERIFY2(token.startsWith("llmp-") && token.size() == 37, token.constData());
    QTest::mouseClick(button("copyTokenButton"), Qt::LeftButton);
    QCOMPARE(QGuiApplication::clipboard()->text().toLatin1(), token);

    // The file: owner-only, and what the proxy's own loader reads.
    const QFile::Permissions others = QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup |
                                      QFile::ReadOther | QFile::WriteOther | QFile::ExeOther;
    QCOMPARE(QFileInfo(tokensPath).permissions() & others, QFile::Permissions());
    QString error;
    const auto loaded = loadProxyTokens(tokensPath, &error);
    QVERIFY2(loaded, qPrintable(error));
    QCOMPARE(*loaded, (QList<ProxyToken>{{"laptop", token}}));
    QCOMPARE(m_settings->config().tokens, *loaded);

    // The table names it and shows only its last four characters.
    auto *table = m_app->window()->findChild<QTableWidget *>(QStringLiteral("tokensTable"));
    QVERIFY(table);
    QCOMPARE(table->rowCount(), 1);
    QCOMPARE(table->item(0, 0)->text(), QStringLiteral("laptop"));
    QCOMPARE(table->item(0, 1)->text(), QString(u'…' + QString::fromLatin1(token.right(4))));

    // In force: without the token, 401; with it, served.
    QTRY_COMPARE(statusWith({}), 401);
    QCOMPARE(statusWith({{"Authorization", "Bearer " + token}}), 200);

    // Done: the token is gone from the window.
    QTest::mouseClick(button("hideTokenButton"), Qt::LeftButton);
    QVERIFY(frame->isHidden());
    QVERIFY(edit("newTokenEdit")->text().isEmpty());
    for (QLineEdit *anyEdit : m_app->window()->findChildren<QLineEdit *>())
        QVERIFY(!anyEdit->text().toLatin1().contains(token));

    // A second token with the same name is refused, and the file is left alone.
    const QByteArray before = [&] {
        QFile file(tokensPath);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }();
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);
    QVERIFY(label("tokenError")->text().contains(QStringLiteral("already")));
    QFile after(tokensPath);
    QVERIFY(after.open(QIODevice::ReadOnly));
    QCOMPARE(after.readAll(), before);
}

void TestUiSettings::removingATokenRewritesTheFile() {
    const QString tokensPath = m_dir->filePath(QStringLiteral("tokens"));
    {
        QFile file(tokensPath);
        QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::NewOnly,
                          QFile::ReadOwner | QFile::WriteOwner));
        file.write("# my tokens\nalice 0123456789abcdefAAAA\nbob 0123456789abcdefBBBB\n");
    }
    Config config = baseConfig();
    QString error;
    const auto tokens = loadProxyTokens(tokensPath, &error);
    QVERIFY2(tokens, qPrintable(error));
    config.tokens = *tokens;
    config.tokensFile = tokensPath;
    buildApp(config);
    auto *table = m_app->window()->findChild<QTableWidget *>(QStringLiteral("tokensTable"));
    QCOMPARE(table->rowCount(), 2);
    QCOMPARE(table->item(1, 1)->text(), QStringLiteral("…BBBB"));
    QVERIFY(!button("removeTokenButton")->isEnabled());
    table->selectRow(0);
    QVERIFY(button("removeTokenButton")->isEnabled());
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    QTest::mouseClick(button("removeTokenButton"), Qt::LeftButton);
    QCOMPARE(configs.count(), 1);
    QCOMPARE(configs.constFirst().constFirst().value<Config>().tokens,
             (QList<ProxyToken>{{"bob", "0123456789abcdefBBBB"}}));
    QFile file(tokensPath);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QCOMPARE(file.readAll(), QByteArray("# my tokens\nbob 0123456789abcdefBBBB\n"));
    QCOMPARE(table->rowCount(), 1);
    QCOMPARE(table->item(0, 0)->text(), QStringLiteral("bob"));
}

void TestUiSettings::tokenWriteFailureIsShown() {
    Config config = baseConfig();
    // A folder where the file should be: the write fails, and the page says so.
    const QString tokensPath = m_dir->filePath(QStringLiteral("tokens"));
    QVERIFY(QDir().mkpath(tokensPath));
    config.tokensFile = tokensPath;
    buildApp(config);
    QSignalSpy configs(m_settings.get(), &SettingsController::configChanged);
    typeInto("tokenNameEdit", QStringLiteral("laptop"));
    QTest::mouseClick(button("generateTokenButton"), Qt::LeftButton);
    QVERIFY2(label("tokenError")->text().contains(tokensPath),
             qPrintable(label("tokenError")->text()));
    QVERIFY(m_app->window()->findChild<QFrame *>(QStringLiteral("newTokenFrame"))->isHidden());
    QCOMPARE(configs.count(), 0);
    QVERIFY(m_settings->config().tokens.isEmpty());
}
QTEST_MAIN(TestUiSettings)
#include "tst_ui_settings.moc"
