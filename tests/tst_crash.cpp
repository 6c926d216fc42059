// SPDX-License-Identifier: GPL-3.0-or-later
// The real binary, killed with SIGKILL at each dangerous point of a batch's life, started
// again on the same data directory: the client that comes back gets its answer, and the
// provider ran its request exactly once.

#include "fakeprovider.h"
#include "testclient.h"
#include "testmain.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QNetworkReply>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

using namespace llmproxy::test;
using namespace std::chrono_literals;

class tst_Crash final : public QObject {
    Q_OBJECT

private:
    struct Proxy {
        std::unique_ptr<QProcess> process;
        quint16 port = 0;
        QByteArray output;
    };

    static Proxy launch(const FakeProvider &fake, const QString &dataDir,
                        const QByteArray &crashAt) {
        Proxy proxy;
        proxy.process = std::make_unique<QProcess>();
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.remove(QStringLiteral("OPENAI_API_KEY"));
        if (!crashAt.isEmpty())
            env.insert(QStringLiteral("LLMPROXY_TEST_CRASH_AT"), QString::fromLatin1(crashAt));
        proxy.process->setProcessEnvironment(env);
        proxy.process->setProcessChannelMode(QProcess::MergedChannels);
        proxy.process->start(QStringLiteral(LLMPROXY_BINARY),
                             {QStringLiteral("--no-gui"), QStringLiteral("--listen"),
                              QStringLiteral("127.0.0.1:0"), QStringLiteral("--upstream"),
                              fake.baseUrl().toString(), QStringLiteral("--batch-window"),
                              QStringLiteral("0.2"), QStringLiteral("--poll-interval"),
                              QStringLiteral("0.1"), QStringLiteral("--data-dir"), dataDir});
        const QRegularExpression listening(
            QStringLiteral("listening on http://127.0.0.1:(\\d+)/v1"));
        [[maybe_unused]] const bool ready = QTest::qWaitFor(
            [&] {
                proxy.output += proxy.process->readAll();
                const auto match = listening.match(QString::fromUtf8(proxy.output));
                if (match.hasMatch())
                    proxy.port = quint16(match.captured(1).toUInt());
                return proxy.port != 0 || proxy.process->state() == QProcess::NotRunning;
            },
            10'000);
        return proxy;
    }

    static int paidLines(const FakeProvider &fake) {
        int lines = 0;
        for (const auto &batch : fake.batches())
            lines += int(batch.customIds.size());
        return lines;
    }

    // "requests input output" of the one batch in /stats' batch_list once it ended.
    static QByteArray finishedBatchUsage(TestClient &client) {
        QByteArray usage;
        [[maybe_unused]] const bool ended = QTest::qWaitFor(
            [&] {
                QNetworkReply *stats = client.send("GET", "/stats", {}, {});
                if (!TestClient::finished(stats) || TestClient::status(stats) != 200)
                    return false;
                const QJsonArray list = jsonOf(stats->readAll()).value(u"batch_list").toArray();
                if (list.size() != 1 || list.at(0).toObject().value(u"active").toBool())
                    return false;
                const QJsonObject u = list.at(0).toObject().value(u"usage").toObject();
                usage = QByteArray::number(u.value(u"requests").toInteger()) + ' ' +
                        QByteArray::number(u.value(u"input_tokens").toInteger()) + ' ' +
                        QByteArray::number(u.value(u"output_tokens").toInteger());
                return true;
            },
            20'000);
        return usage;
    }

private Q_SLOTS:
    void killedAndRestarted_data() {
        QTest::addColumn<QByteArray>("point");
        QTest::newRow("after upload") << QByteArray("after_upload");
        QTest::newRow("after create, before its id is stored") << QByteArray("after_create");
        QTest::newRow("while polling") << QByteArray("while_polling");
        QTest::newRow("after download, before delivery") << QByteArray("after_download");
    }
    void killedAndRestarted() {
        QFETCH(QByteArray, point);
        QTemporaryDir dir;
        FakeProvider fake;
        QVERIFY(fake.listen());
        fake.setValidationDelay(20ms);
        fake.setProcessingDelay(300ms);
        TestClient client;

        Proxy first = launch(fake, dir.path(), point);
        QVERIFY2(first.port != 0, first.output.constData());
        client.setPort(first.port);
        const QByteArray body = chatBody("survive " + point);
        QNetworkReply *lost = client.send("POST", "/v1/chat/completions", body);
        QVERIFY(QTest::qWaitFor([&] { return first.process->state() == QProcess::NotRunning; },
                                15'000));
        QCOMPARE(first.process->exitStatus(), QProcess::CrashExit);
        QVERIFY(TestClient::finished(lost));
        QCOMPARE(TestClient::status(lost), 0); // the connection died with the proxy

        Proxy second = launch(fake, dir.path(), {});
        QVERIFY2(second.port != 0, second.output.constData());
        client.setPort(second.port);
        QNetworkReply *back = client.send("POST", "/v1/chat/completions", body);
        QVERIFY(TestClient::finished(back, 20'000));
        QCOMPARE(TestClient::status(back), 200);
        QCOMPARE(chatContent(back->readAll()),
                 QStringLiteral("echo: survive ") + QString::fromLatin1(point));
        QCOMPARE(fake.batches().size(), 1);
        QCOMPARE(paidLines(fake), 1);
        // The ledger counted it once (issue 10): its result and its row were stored together,
        // and a result stored before the crash is not counted again when it is delivered.
        // "survive <point>": 2 prompt tokens; "echo: survive <point>": 3 completion tokens.
        QNetworkReply *usage = client.send("GET", "/usage?group_by=route", {}, {});
        QVERIFY(TestClient::finished(usage));
        QCOMPARE(TestClient::status(usage), 200);
        const QJsonObject totals = jsonOf(usage->readAll()).value(u"totals").toObject();
        QCOMPARE(totals.value(u"requests").toInteger(), 1);
        QCOMPARE(totals.value(u"input_tokens").toInteger(), 2);
        QCOMPARE(totals.value(u"output_tokens").toInteger(), 3);
        // The receipt reads the same ledger while the proxy holds the store.
        QProcess report;
        report.start(QStringLiteral(LLMPROXY_BINARY),
                     {QStringLiteral("--report"), QStringLiteral("--data-dir"), dir.path()});
        QVERIFY(report.waitForFinished(10'000));
        QCOMPARE(report.exitCode(), 0);
        const QByteArray receipt = report.readAllStandardOutput();
        QVERIFY2(receipt.contains("gpt-4o-mini") && receipt.contains("batch"), receipt.constData());

        // So did its batch (the history's tokens and cost): its lines' usage is stored with
        // their results, and kept once the batch ended, through another restart.
        QCOMPARE(finishedBatchUsage(client), QByteArray("1 2 3"));

        second.process->terminate();
        QVERIFY(QTest::qWaitFor([&] { return second.process->state() == QProcess::NotRunning; },
                                10'000));
        QCOMPARE(second.process->exitStatus(), QProcess::NormalExit);
        QCOMPARE(second.process->exitCode(), 0);

        Proxy third = launch(fake, dir.path(), {});
        QVERIFY2(third.port != 0, third.output.constData());
        client.setPort(third.port);
        QCOMPARE(finishedBatchUsage(client), QByteArray("1 2 3"));
        third.process->terminate();
        QVERIFY(QTest::qWaitFor([&] { return third.process->state() == QProcess::NotRunning; },
                                10'000));
    }
};

LLMPROXY_TEST_MAIN(tst_Crash)
#include "tst_crash.moc"
