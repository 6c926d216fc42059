// SPDX-License-Identifier: GPL-3.0-or-later
// The built llm-proxy as a user runs it: the desktop app offscreen with real traffic from the
// fake provider (answers checked, --screenshot writes a real PNG, exit status 0); a second
// launch brings the first forward and exits 0; --no-gui reads the settings (and the key) the
// window saved; without a display the app runs headless. Every process gets its own config,
// runtime and data folders, so nothing of the user's is read or written.

#include "settings/settingsstore.h"
#include "testclient.h"

#include <QDir>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QProcess>
#include <QRegularExpression>
#include <QSet>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <csignal>

using namespace llmproxy;
using namespace llmproxy::test;

namespace {

const QByteArray ClientKey = "sk-client-e2e-0123456789-cccc";
const QByteArray StoredKey = "sk-stored-e2e-0123456789-ssss";

// A child process with its output collected; stopped with SIGTERM at the end.
class Child {
public:
    explicit Child(const QString &program)
        : m_program(program) {
        m_process.setProcessChannelMode(QProcess::SeparateChannels);
    }
    ~Child() {
        if (m_process.state() != QProcess::NotRunning) {
            m_process.kill();
            m_process.waitForFinished(5000);
        }
    }
    void start(const QStringList &args, const QProcessEnvironment &env) {
        m_process.setProcessEnvironment(env);
        m_process.start(m_program, args);
    }
    // The last capture group of `pattern` in the output so far, or an empty string after `ms`.
    QString waitFor(const QRegularExpression &pattern, int ms = 30'000) {
        QString found;
        const bool ok = QTest::qWaitFor(
            [&] {
                m_out += m_process.readAllStandardOutput();
                m_err += m_process.readAllStandardError();
                const auto match = pattern.match(QString::fromUtf8(m_out + m_err));
                if (match.hasMatch())
                    found = match.captured(match.lastCapturedIndex());
                return match.hasMatch() || m_process.state() == QProcess::NotRunning;
            },
            ms);
        Q_UNUSED(ok)
        return found;
    }
    bool waitForExit(int ms = 30'000) {
        const bool done =
            QTest::qWaitFor([&] { return m_process.state() == QProcess::NotRunning; }, ms);
        m_out += m_process.readAllStandardOutput();
        m_err += m_process.readAllStandardError();
        return done;
    }
    bool terminate(int ms = 30'000) {
        if (m_process.state() == QProcess::NotRunning)
            return true;
        ::kill(static_cast<pid_t>(m_process.processId()), SIGTERM);
        return waitForExit(ms);
    }
    int exitCode() const { return m_process.exitCode(); }
    QProcess::ExitStatus exitStatus() const { return m_process.exitStatus(); }
    bool running() const { return m_process.state() != QProcess::NotRunning; }
    QByteArray output() const { return m_out + m_err; }

private:
    QString m_program;
    QProcess m_process;
    QByteArray m_out;
    QByteArray m_err;
};

} // namespace

class TestUiApp final : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void desktopAppServesAndTakesAScreenshot();
    void secondLaunchBringsTheFirstForward();
    void headlessReadsTheSavedSettingsAndKey();
    void noDisplayRunsHeadless();
    void screenshotNeedsNoDisplay();
    void startInTrayIsAccepted();

private:
    QProcessEnvironment environment(bool offscreen = true) const;
    QString startFake(int validationMs = 0, int processingMs = 0);
    QNetworkReply *chat(const QString &baseUrl, const QByteArray &content);
    QByteArray fakeState();

    QString m_proxy;
    QString m_fakeProgram;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<Child> m_fake;
    QString m_fakeUrl;
    QNetworkAccessManager m_nam;
};

void TestUiApp::initTestCase() {
    m_proxy = qEnvironmentVariable("LLM_PROXY");
    m_fakeProgram = qEnvironmentVariable("FAKE_OPENAI");
    if (m_proxy.isEmpty() || m_fakeProgram.isEmpty())
        QSKIP("LLM_PROXY and FAKE_OPENAI are set by CTest (ctest -R tst_ui_app)");
}

void TestUiApp::init() {
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    for (const char *sub : {"config", "run", "data", "state"})
        QVERIFY(QDir().mkpath(m_dir->filePath(QString::fromLatin1(sub))));
    QFile::setPermissions(m_dir->filePath(QStringLiteral("run")),
                          QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
}

void TestUiApp::cleanup() {
    if (m_fake) {
        QVERIFY(m_fake->terminate());
        m_fake.reset();
    }
    m_dir.reset();
}

QProcessEnvironment TestUiApp::environment(bool offscreen) const {
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), m_dir->filePath(QStringLiteral("config")));
    env.insert(QStringLiteral("XDG_RUNTIME_DIR"), m_dir->filePath(QStringLiteral("run")));
    env.insert(QStringLiteral("XDG_DATA_HOME"), m_dir->filePath(QStringLiteral("data")));
    env.insert(QStringLiteral("DBUS_SESSION_BUS_ADDRESS"),
               QStringLiteral("unix:path=/nonexistent/llm-proxy-test-bus"));
    env.remove(QStringLiteral("OPENAI_API_KEY"));
    env.remove(QStringLiteral("DISPLAY"));
    env.remove(QStringLiteral("WAYLAND_DISPLAY"));
    if (offscreen)
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    else
        env.remove(QStringLiteral("QT_QPA_PLATFORM"));
    return env;
}

QString TestUiApp::startFake(int validationMs, int processingMs) {
    m_fake = std::make_unique<Child>(m_fakeProgram);
    m_fake->start({QStringLiteral("--port"), QStringLiteral("0"),
                   QStringLiteral("--validation-delay-ms"), QString::number(validationMs),
                   QStringLiteral("--processing-delay-ms"), QString::number(processingMs)},
                  QProcessEnvironment::systemEnvironment());
    m_fakeUrl = m_fake->waitFor(
        QRegularExpression(QStringLiteral("listening on (http://127.0.0.1:\\d+/v1)")));
    return m_fakeUrl;
}

QNetworkReply *TestUiApp::chat(const QString &baseUrl, const QByteArray &content) {
    QNetworkRequest request(QUrl(baseUrl + QStringLiteral("/chat/completions")));
    request.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
    request.setRawHeader("Authorization", "Bearer " + ClientKey);
    request.setTransferTimeout(30'000);
    return m_nam.post(request, chatBody(content));
}

QByteArray TestUiApp::fakeState() {
    QNetworkRequest request(QUrl(QString(m_fakeUrl).replace(QStringLiteral("/v1"), QString()) +
                                 QStringLiteral("/_fake/state")));
    QNetworkReply *reply = m_nam.get(request);
    if (!TestClient::finished(reply))
        return QByteArray();
    const QByteArray body = reply->readAll();
    reply->deleteLater();
    return body;
}

void TestUiApp::desktopAppServesAndTakesAScreenshot() {
    QVERIFY(!startFake(100, 300).isEmpty());
    const QString shot = m_dir->filePath(QStringLiteral("dashboard.png"));
    Child app(m_proxy);
    app.start({QStringLiteral("--listen"), QStringLiteral("127.0.0.1:0"),
               QStringLiteral("--upstream"), m_fakeUrl, QStringLiteral("--batch-window"),
               QStringLiteral("0.2"), QStringLiteral("--poll-interval"), QStringLiteral("0.1"),
               QStringLiteral("--data-dir"), m_dir->filePath(QStringLiteral("state")),
               QStringLiteral("--screenshot"), shot, QStringLiteral("--screenshot-delay"),
               QStringLiteral("5s"), QStringLiteral("--verbose")},
              environment());
    const QString base = app.waitFor(
        QRegularExpression(QStringLiteral("llm-proxy listening on (http://127.0.0.1:\\d+/v1)")));
    QVERIFY2(!base.isEmpty(), app.output().constData());

    QList<QNetworkReply *> replies;
    for (int i = 0; i < 8; ++i)
        replies.append(chat(base, "question " + QByteArray::number(i)));
    for (int i = 0; i < replies.size(); ++i) {
        QVERIFY(TestClient::finished(replies.at(i), 30'000));
        QCOMPARE(TestClient::status(replies.at(i)), 200);
        QCOMPARE(chatContent(replies.at(i)->readAll()), QStringLiteral("echo: question %1").arg(i));
        QVERIFY(replies.at(i)->rawHeader("x-llm-proxy-batch-id").startsWith("batch_"));
    }
    // While it still serves, relayed calls work too.
    QNetworkReply *models = m_nam.get(QNetworkRequest(QUrl(base + QStringLiteral("/models"))));
    QVERIFY(TestClient::finished(models));

    QVERIFY2(app.waitForExit(60'000), app.output().constData());
    QCOMPARE(app.exitStatus(), QProcess::NormalExit);
    QVERIFY2(app.exitCode() == 0, app.output().constData());
    QImage image;
    QVERIFY2(image.load(shot, "PNG"), qPrintable(shot));
    QVERIFY2(image.width() >= 640 && image.height() >= 480,
             qPrintable(QStringLiteral("%1x%2").arg(image.width()).arg(image.height())));
    QSet<QRgb> colors;
    for (int y = 0; y < image.height(); y += 7) {
        for (int x = 0; x < image.width(); x += 7)
            colors.insert(image.pixel(x, y));
    }
    QVERIFY2(colors.size() > 20, "the picture looks blank");
    QVERIFY(!app.output().contains(ClientKey));
    QVERIFY(!app.output().contains(ClientKey.right(12)));
}

void TestUiApp::secondLaunchBringsTheFirstForward() {
    const QStringList args{QStringLiteral("--listen"),   QStringLiteral("127.0.0.1:0"),
                           QStringLiteral("--upstream"), QStringLiteral("http://127.0.0.1:9/v1"),
                           QStringLiteral("--data-dir"), m_dir->filePath(QStringLiteral("state"))};
    Child first(m_proxy);
    first.start(args, environment());
    QVERIFY2(!first.waitFor(QRegularExpression(QStringLiteral("llm-proxy listening on (\\S+)")))
                  .isEmpty(),
             first.output().constData());

    Child second(m_proxy);
    second.start(args, environment());
    QVERIFY(second.waitForExit());
    QCOMPARE(second.exitStatus(), QProcess::NormalExit);
    QVERIFY2(second.exitCode() == 0, second.output().constData());
    QVERIFY2(second.output().contains("already running"), second.output().constData());
    QVERIFY(!second.output().contains("llm-proxy listening on"));
    QVERIFY(first.running());
    QVERIFY2(!first
                  .waitFor(QRegularExpression(QStringLiteral("(another launch asked for the "
                                                             "window)")))
                  .isEmpty(),
             first.output().constData());

    // Another settings folder is another instance.
    QProcessEnvironment other = environment();
    QTemporaryDir otherConfig;
    other.insert(QStringLiteral("XDG_CONFIG_HOME"), otherConfig.path());
    Child third(m_proxy);
    QStringList thirdArgs = args;
    thirdArgs[thirdArgs.indexOf(m_dir->filePath(QStringLiteral("state")))] =
        otherConfig.filePath(QStringLiteral("state"));
    third.start(thirdArgs, other);
    QVERIFY(!third.waitFor(QRegularExpression(QStringLiteral("llm-proxy listening on (\\S+)")))
                 .isEmpty());
    QVERIFY(third.terminate());
    QCOMPARE(third.exitCode(), 0);

    QVERIFY(first.terminate());
    QCOMPARE(first.exitStatus(), QProcess::NormalExit);
    QVERIFY2(first.exitCode() == 0, first.output().constData());
}

void TestUiApp::headlessReadsTheSavedSettingsAndKey() {
    QVERIFY(!startFake().isEmpty());
    // What the window saves: a batch window and the key (in the file: no keychain here).
    {
        const QString file = m_dir->filePath(QStringLiteral("config/llm-proxy/llm-proxy.conf"));
        SettingsStore store(file);
        Config config = store.load();
        QCOMPARE(applySetting(config, Setting::BatchWindow, QStringLiteral("150ms")), QString());
        QCOMPARE(applySetting(config, Setting::Upstream, m_fakeUrl), QString());
        QCOMPARE(applySetting(config, Setting::Listen, QStringLiteral("127.0.0.1:0")), QString());
        QVERIFY(store.save(config));
        QVERIFY(store.storeKeyInFile(StoredKey));
    }
    Child proxy(m_proxy);
    proxy.start({QStringLiteral("--no-gui"), QStringLiteral("--verbose"),
                 QStringLiteral("--poll-interval"), QStringLiteral("0.1"),
                 QStringLiteral("--data-dir"), m_dir->filePath(QStringLiteral("state"))},
                environment(false));
    const QString base = proxy.waitFor(
        QRegularExpression(QStringLiteral("llm-proxy listening on (http://127.0.0.1:\\d+/v1)")));
    QVERIFY2(!base.isEmpty(), proxy.output().constData());
    QNetworkReply *reply = chat(base, "headless");
    QVERIFY(TestClient::finished(reply, 30'000));
    QCOMPARE(TestClient::status(reply), 200);
    QCOMPARE(chatContent(reply->readAll()), QStringLiteral("echo: headless"));

    const QJsonObject state = QJsonDocument::fromJson(fakeState()).object();
    const QJsonArray batches = state.value(QStringLiteral("batches")).toArray();
    QCOMPARE(batches.size(), 1);
    // The saved key is used for the upstream call, not the client's.
    QCOMPARE(batches.at(0).toObject().value(QStringLiteral("api_key")).toString(),
             QString::fromUtf8(StoredKey));
    QVERIFY(proxy.output().contains("(configured key)"));

    QVERIFY(proxy.terminate());
    QCOMPARE(proxy.exitCode(), 0);
    for (const QByteArray &secret : {StoredKey, ClientKey})
        QVERIFY2(!proxy.output().contains(secret) && !proxy.output().contains(secret.right(12)),
                 proxy.output().constData());
}

void TestUiApp::noDisplayRunsHeadless() {
    Child proxy(m_proxy);
    proxy.start({QStringLiteral("--listen"), QStringLiteral("127.0.0.1:0"),
                 QStringLiteral("--data-dir"), m_dir->filePath(QStringLiteral("state"))},
                environment(false));
    QVERIFY2(!proxy.waitFor(QRegularExpression(QStringLiteral("llm-proxy listening on (\\S+)")))
                  .isEmpty(),
             proxy.output().constData());
    QVERIFY(proxy.terminate());
    QCOMPARE(proxy.exitCode(), 0);
    QVERIFY2(proxy.output().contains("no display found; running headless"),
             proxy.output().constData());
}

void TestUiApp::screenshotNeedsNoDisplay() {
    // Two pages: a folder with PAGE.png for each (the README's pictures are made so).
    const QString shots = m_dir->filePath(QStringLiteral("shots"));
    Child app(m_proxy);
    app.start({QStringLiteral("--listen"), QStringLiteral("127.0.0.1:0"),
               QStringLiteral("--data-dir"), m_dir->filePath(QStringLiteral("state")),
               QStringLiteral("--screenshot"), shots, QStringLiteral("--screenshot-page"),
               QStringLiteral("first-run"), QStringLiteral("--screenshot-page=settings"),
               QStringLiteral("--screenshot-delay"), QStringLiteral("200ms")},
              environment(false));
    QVERIFY(app.waitForExit(60'000));
    QVERIFY2(app.exitCode() == 0, app.output().constData());
    QImage firstRun;
    QVERIFY(firstRun.load(QDir(shots).filePath(QStringLiteral("first-run.png")), "PNG"));
    QVERIFY(firstRun.width() >= 640);
    QImage settings;
    QVERIFY(settings.load(QDir(shots).filePath(QStringLiteral("settings.png")), "PNG"));
    QVERIFY(settings != firstRun);
}

void TestUiApp::startInTrayIsAccepted() {
    // The autostart entry's option; offscreen has no tray, so the window shows and is pictured.
    const QString shot = m_dir->filePath(QStringLiteral("tray.png"));
    Child app(m_proxy);
    app.start({QStringLiteral("--start-in-tray"), QStringLiteral("--listen"),
               QStringLiteral("127.0.0.1:0"), QStringLiteral("--data-dir"),
               m_dir->filePath(QStringLiteral("state")), QStringLiteral("--screenshot"), shot,
               QStringLiteral("--screenshot-delay"), QStringLiteral("200ms")},
              environment(false));
    QVERIFY(app.waitForExit(60'000));
    QVERIFY2(app.exitCode() == 0, app.output().constData());
    QImage image;
    QVERIFY(image.load(shot, "PNG"));
}

QTEST_GUILESS_MAIN(TestUiApp)
#include "tst_ui_app.moc"
