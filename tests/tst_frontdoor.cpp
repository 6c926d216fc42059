// SPDX-License-Identifier: GPL-3.0-or-later
// The front door's pure rules (frontdoor.h) and the proxy tokens file (proxytokens.h), as
// tables: request targets, Host values, origins, CORS headers, token lines, constant-time lookup.

#include "api/httpanswer.h"
#include "http/frontdoor.h"
#include "settings/proxytokens.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

#include <cctype>

using namespace llmproxy;
using namespace llmproxy::frontdoor;

class tst_FrontDoor final : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void targets_data() {
        QTest::addColumn<QByteArray>("target");
        QTest::addColumn<bool>("ok");
        QTest::newRow("plain") << QByteArray("/v1/chat/completions") << true;
        QTest::newRow("query") << QByteArray("/v1/files?purpose=batch&limit=2") << true;
        QTest::newRow("encoded id") << QByteArray("/v1/files/file-abc%20x") << true;
        QTest::newRow("slash in query") << QByteArray("/v1/files?after=a%2Fb") << true;
        QTest::newRow("dots inside a name") << QByteArray("/v1/files/a..b/.x/x.") << true;
        QTest::newRow("three dots") << QByteArray("/v1/.../x") << true;
        QTest::newRow("stats") << QByteArray("/stats") << true;
        QTest::newRow("root") << QByteArray("/") << true;
        QTest::newRow("dotdot") << QByteArray("/v1/../x") << false;
        QTest::newRow("dotdot at end") << QByteArray("/v1/..") << false;
        QTest::newRow("dotdot before query") << QByteArray("/v1/..?x=1") << false;
        QTest::newRow("dot") << QByteArray("/v1/./x") << false;
        QTest::newRow("dot slash at start") << QByteArray("/./v1/x") << false;
        QTest::newRow("encoded dotdot") << QByteArray("/v1/%2e%2e/x") << false;
        QTest::newRow("encoded dotdot upper") << QByteArray("/v1/%2E%2E/x") << false;
        QTest::newRow("mixed dotdot") << QByteArray("/v1/%2E./x") << false;
        QTest::newRow("mixed dotdot 2") << QByteArray("/v1/.%2e/x") << false;
        QTest::newRow("encoded dot") << QByteArray("/v1/%2e/x") << false;
        QTest::newRow("deep dotdot") << QByteArray("/v1/models/../../x") << false;
        QTest::newRow("encoded slash") << QByteArray("/v1/files/a%2fb") << false;
        QTest::newRow("encoded slash upper") << QByteArray("/v1/files/a%2Fb") << false;
        QTest::newRow("backslash") << QByteArray("/v1\\..\\x") << false;
        QTest::newRow("encoded backslash") << QByteArray("/v1/%5c../x") << false;
        QTest::newRow("encoded backslash upper") << QByteArray("/v1/%5C") << false;
        QTest::newRow("NUL raw") << QByteArray("/v1/x\0y", 7) << false;
        QTest::newRow("NUL encoded") << QByteArray("/v1/x%00y") << false;
        QTest::newRow("CR encoded") << QByteArray("/v1/x%0d%0aHost:%20y") << false;
        QTest::newRow("tab raw") << QByteArray("/v1/x\ty") << false;
        QTest::newRow("DEL encoded") << QByteArray("/v1/x%7F") << false;
        QTest::newRow("control in query") << QByteArray("/v1/files?x=%0a") << false;
        QTest::newRow("bad percent") << QByteArray("/v1/x%zz") << false;
        QTest::newRow("truncated percent") << QByteArray("/v1/x%2") << false;
        QTest::newRow("not a path") << QByteArray("v1/models") << false;
        QTest::newRow("empty") << QByteArray() << false;
    }
    void targets() {
        QFETCH(QByteArray, target);
        QFETCH(bool, ok);
        const QString problem = targetProblem(target);
        QVERIFY2(problem.isEmpty() == ok, qPrintable(problem));
    }

    // Which request targets are Anthropic's (their errors in Anthropic's shape): the path as
    // Qt's server reads it (checked against Qt 6.4.2), its dot segments resolved, the query,
    // the fragment and an absolute form's host ignored.
    void anthropicTargets_data() {
        QTest::addColumn<QByteArray>("target");
        QTest::addColumn<bool>("anthropic");
        QTest::newRow("messages") << QByteArray("/v1/messages") << true;
        QTest::newRow("query") << QByteArray("/v1/messages?beta=true") << true;
        QTest::newRow("empty query") << QByteArray("/v1/messages?") << true;
        QTest::newRow("fragment") << QByteArray("/v1/messages#x") << true;
        QTest::newRow("count_tokens") << QByteArray("/v1/messages/count_tokens") << true;
        QTest::newRow("batches") << QByteArray("/v1/messages/batches/msgbatch_1/results") << true;
        QTest::newRow("complete") << QByteArray("/v1/complete") << true;
        QTest::newRow("encoded letter") << QByteArray("/v1/%6Dessages") << true;
        QTest::newRow("encoded v1") << QByteArray("/%76%31/me%73sages?") << true;
        QTest::newRow("absolute form") << QByteArray("http://127.0.0.1:1/v1/messages?a") << true;
        QTest::newRow("absolute form, upper case") << QByteArray("HTTP://h/v1/messages") << true;
        QTest::newRow("dots into messages") << QByteArray("/v1/models/../messages") << true;
        QTest::newRow("encoded dots into messages") << QByteArray("/v1/x/%2e%2E/messages") << true;
        QTest::newRow("dot") << QByteArray("/v1/./messages") << true;
        QTest::newRow("chat") << QByteArray("/v1/chat/completions") << false;
        QTest::newRow("messages in the query")
            << QByteArray("/v1/chat/completions?next=/v1/messages") << false;
        QTest::newRow("dots out of messages") << QByteArray("/v1/messages/../models") << false;
        QTest::newRow("encoded dots out") << QByteArray("/v1/messages/%2e%2e/models") << false;
        QTest::newRow("dots to the parent") << QByteArray("/v1/messages/..") << false;
        QTest::newRow("longer name") << QByteArray("/v1/messagesx") << false;
        QTest::newRow("parameter") << QByteArray("/v1/messages;x") << false;
        QTest::newRow("encoded query mark") << QByteArray("/v1/messages%3Fx") << false;
        QTest::newRow("encoded slash") << QByteArray("/v1/messages%2Fcount_tokens") << false;
        QTest::newRow("case") << QByteArray("/v1/Messages") << false;
        QTest::newRow("double slash") << QByteArray("/v1//messages") << false;
        QTest::newRow("authority") << QByteArray("//v1/messages") << false; // /messages on v1
        QTest::newRow("no slash") << QByteArray("v1/messages") << false;
        QTest::newRow("asterisk") << QByteArray("*") << false;
        QTest::newRow("empty") << QByteArray() << false;
    }
    void anthropicTargets() {
        QFETCH(QByteArray, target);
        QTEST(isAnthropicTarget(target), "anthropic");
        // The same in a request line, whole or cut short after its target.
        QTEST(
            isAnthropicRequestStart(QByteArray("\r\nPOST  " + target + " HTTP/1.1\r\nHost: x\r\n")),
            "anthropic");
        QTEST(isAnthropicRequestStart(QByteArray("POST " + target)), "anthropic");
    }

    void hosts_data() {
        QTest::addColumn<QByteArray>("host");
        QTest::addColumn<bool>("ok");
        QTest::newRow("v4") << QByteArray("127.0.0.1") << true;
        QTest::newRow("v4 port") << QByteArray("127.0.0.1:3030") << true;
        QTest::newRow("LAN v4") << QByteArray("192.168.1.20:3030") << true;
        QTest::newRow("v6") << QByteArray("[::1]") << true;
        QTest::newRow("v6 port") << QByteArray("[::1]:3030") << true;
        QTest::newRow("v6 full") << QByteArray("[fe80::1:2]:80") << true;
        QTest::newRow("localhost") << QByteArray("localhost") << true;
        QTest::newRow("localhost port") << QByteArray("localhost:3030") << true;
        QTest::newRow("LOCALHOST.") << QByteArray("LOCALHOST.:3030") << true;
        QTest::newRow("under localhost") << QByteArray("tool.localhost:3030") << true;
        QTest::newRow("allowed") << QByteArray("proxy.lan:3030") << true;
        QTest::newRow("allowed case") << QByteArray("Proxy.LAN") << true;
        QTest::newRow("allowed with its port") << QByteArray("box:8080") << true;
        QTest::newRow("evil") << QByteArray("evil.example:3030") << false;
        QTest::newRow("evil no port") << QByteArray("evil.example") << false;
        QTest::newRow("localhost suffix") << QByteArray("localhost.evil.example") << false;
        QTest::newRow("allowed name, other port") << QByteArray("box:9090") << false;
        QTest::newRow("v4 short") << QByteArray("127.1") << false;
        QTest::newRow("v4 too big") << QByteArray("256.0.0.1") << false;
        QTest::newRow("v6 unbracketed") << QByteArray("::1") << false;
        QTest::newRow("v6 not an address") << QByteArray("[evil.example]") << false;
        QTest::newRow("bad port") << QByteArray("localhost:99999") << false;
        QTest::newRow("port letters") << QByteArray("localhost:x") << false;
        QTest::newRow("empty") << QByteArray() << false;
        QTest::newRow("colon only") << QByteArray(":3030") << false;
    }
    void hosts() {
        QFETCH(QByteArray, host);
        QFETCH(bool, ok);
        const QList<QByteArray> allowed{"proxy.lan", "box:8080"};
        QCOMPARE(hostAllowed(host, allowed), ok);
    }

    void origins_data() {
        QTest::addColumn<QByteArray>("origin");
        QTest::addColumn<QByteArray>("site");
        QTest::addColumn<int>("verdict");
        const int none = int(OriginVerdict::NotCrossSite);
        const int allowed = int(OriginVerdict::Allowed);
        const int refused = int(OriginVerdict::Refused);
        QTest::newRow("sdk") << QByteArray() << QByteArray() << none;
        QTest::newRow("typed url") << QByteArray() << QByteArray("none") << none;
        QTest::newRow("same origin") << QByteArray() << QByteArray("same-origin") << none;
        QTest::newRow("cross-site no origin")
            << QByteArray() << QByteArray("cross-site") << refused;
        QTest::newRow("same-site no origin") << QByteArray() << QByteArray("Same-Site") << refused;
        QTest::newRow("evil") << QByteArray("http://evil.example") << QByteArray("cross-site")
                              << refused;
        QTest::newRow("null") << QByteArray("null") << QByteArray() << refused;
        QTest::newRow("allowed") << QByteArray("http://localhost:5173") << QByteArray("same-site")
                                 << allowed;
        QTest::newRow("allowed case")
            << QByteArray("HTTP://LocalHost:5173") << QByteArray() << allowed;
        QTest::newRow("allowed default port")
            << QByteArray("https://tool.example:443") << QByteArray() << allowed;
        QTest::newRow("allowed other port")
            << QByteArray("http://localhost:5174") << QByteArray() << refused;
        QTest::newRow("allowed other scheme")
            << QByteArray("https://localhost:5173") << QByteArray() << refused;
        QTest::newRow("suffix trick")
            << QByteArray("https://tool.example.evil.example") << QByteArray() << refused;
        QTest::newRow("garbage") << QByteArray("localhost:5173") << QByteArray() << refused;
    }
    void origins() {
        QFETCH(QByteArray, origin);
        QFETCH(QByteArray, site);
        QFETCH(int, verdict);
        const QList<QByteArray> allowed{"http://localhost:5173", "https://tool.example"};
        QCOMPARE(int(checkOrigin(origin, site, allowed)), verdict);
    }

    void normalizedOrigins_data() {
        QTest::addColumn<QByteArray>("origin");
        QTest::addColumn<QByteArray>("normalized");
        QTest::newRow("plain") << QByteArray("http://a.b") << QByteArray("http://a.b");
        QTest::newRow("slash") << QByteArray("http://a.b/") << QByteArray("http://a.b");
        QTest::newRow("port 80") << QByteArray("http://a.b:80") << QByteArray("http://a.b");
        QTest::newRow("port 443 http")
            << QByteArray("http://a.b:443") << QByteArray("http://a.b:443");
        QTest::newRow("v6") << QByteArray("http://[::1]:8080") << QByteArray("http://[::1]:8080");
        QTest::newRow("path") << QByteArray("http://a.b/x") << QByteArray();
        QTest::newRow("user") << QByteArray("http://u@a.b") << QByteArray();
        QTest::newRow("CRLF") << QByteArray("http://a.b\r\nx: y") << QByteArray();
        QTest::newRow("null") << QByteArray("null") << QByteArray();
    }
    void normalizedOrigins() {
        QFETCH(QByteArray, origin);
        QFETCH(QByteArray, normalized);
        QCOMPARE(normalizeOrigin(origin), normalized);
    }

    void corsHeadersCoverWhatTheSdkSends() {
        const QByteArray allowed = corsAllowHeaders(
            "authorization, content-type, x-stainless-os, X-Stainless-Retry-Count, "
            "openai-beta, idempotency-key, x-evil, x-stainless-bad\r\nx: y");
        const QList<QByteArray> names = allowed.split(',');
        QList<QByteArray> trimmed;
        for (const QByteArray &name : names)
            trimmed.append(name.trimmed());
        for (const char *name :
             {"authorization", "content-type", "idempotency-key", "x-batch", "openai-organization",
              "openai-project", "x-stainless-os", "x-stainless-retry-count", "openai-beta",
              "x-provider-authorization", "x-api-key"})
            QVERIFY2(trimmed.contains(name), name);
        QVERIFY(!trimmed.contains("x-evil"));
        QVERIFY(!allowed.contains('\r') && !allowed.contains('\n'));
        QVERIFY(corsAllowMethods().contains("POST"));
        QVERIFY(corsExposeHeaders().contains("x-request-id"));
    }

    void tokenLines_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<int>("count"); // -1: refused
        QTest::addColumn<QString>("errorPart");
        const QByteArray a = "0123456789abcdef";
        const QByteArray b = "fedcba9876543210";
        QTest::newRow("one") << "alice " + a + "\n" << 1 << QString();
        QTest::newRow("comments and blanks")
            << "# team tokens\n\n  alice\t" + a + "  \r\n#bob x\nbob " + b << 2 << QString();
        QTest::newRow("empty") << QByteArray() << 0 << QString();
        QTest::newRow("one field") << "alice\n" + a << -1 << QStringLiteral("line 1");
        QTest::newRow("three fields") << "alice " + a + " x" << -1 << QStringLiteral("line 1");
        QTest::newRow("duplicate name")
            << "alice " + a + "\nalice " + b << -1 << QStringLiteral("used twice");
        QTest::newRow("duplicate token")
            << "alice " + a + "\nbob " + a << -1 << QStringLiteral("same token as \"alice\"");
        QTest::newRow("short token")
            << QByteArray("alice short") << -1 << QStringLiteral("16 to 512");
        QTest::newRow("bad name") << "al/ice " + a << -1 << QStringLiteral("a name is");
        QTest::newRow("control in token")
            << "alice " + a + "\x01" << -1 << QStringLiteral("16 to 512");
    }
    void tokenLines() {
        QFETCH(QByteArray, text);
        QFETCH(int, count);
        QFETCH(QString, errorPart);
        QString error;
        const auto tokens = parseProxyTokens(text, &error);
        if (count < 0) {
            QVERIFY(!tokens);
            QVERIFY2(error.contains(errorPart), qPrintable(error));
            QVERIFY2(!error.contains(QStringLiteral("0123456789abcdef")), "a token was repeated");
        } else {
            QVERIFY2(tokens, qPrintable(error));
            QCOMPARE(tokens->size(), count);
        }
    }

    void tokenLookup() {
        const QList<ProxyToken> tokens{{"alice", "0123456789abcdef"}, {"bob", "fedcba9876543210"}};
        QCOMPARE(findProxyToken(tokens, "fedcba9876543210")->name, QByteArray("bob"));
        QCOMPARE(findProxyToken(tokens, "0123456789abcdef")->name, QByteArray("alice"));
        QVERIFY(!findProxyToken(tokens, "0123456789abcde"));
        QVERIFY(!findProxyToken(tokens, "0123456789abcdef0"));
        QVERIFY(!findProxyToken(tokens, ""));
        QVERIFY(!findProxyToken({}, "0123456789abcdef"));
    }

    void tokensFileMustBeOwnerOnly() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("tokens"));
        QFile file(path);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("alice 0123456789abcdef\n");
        file.close();
        QVERIFY(QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner |
                                                QFile::ReadGroup | QFile::ReadOther));
        QString error;
        QVERIFY(!loadProxyTokens(path, &error));
        QVERIFY2(error.contains(QStringLiteral("chmod 600")), qPrintable(error));
        QVERIFY(QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner));
        const auto tokens = loadProxyTokens(path, &error);
        QVERIFY2(tokens, qPrintable(error));
        QCOMPARE(tokens->size(), 1);
        QVERIFY(!loadProxyTokens(dir.filePath(QStringLiteral("missing")), &error));
        QVERIFY(error.contains(QStringLiteral("no such file")));
    }

    // ---- Writing the tokens file (the desktop app's Generate and Remove) -------------------

    void generatedTokensAreStrongAndDistinct() {
        QSet<QByteArray> seen;
        for (int i = 0; i < 200; ++i) {
            const QByteArray token = generateProxyToken();
            QVERIFY2(token.startsWith("llmp-"), token.constData());
            QCOMPARE(token.size(), 5 + 32);
            for (char c : token.mid(5))
                QVERIFY2(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_',
                         token.constData());
            QVERIFY(!seen.contains(token));
            seen.insert(token);
            // The file format takes it as it is.
            QString error;
            QVERIFY2(parseProxyTokens(QByteArray("x " + token), &error), qPrintable(error));
        }
    }

    void tokensTextKeepsCommentsAndOrder_data() {
        QTest::addColumn<QByteArray>("previous");
        QTest::addColumn<QByteArray>("expected");
        const QByteArray file = "# who may use the proxy\n"
                                "alice   0123456789abcdefA  \n"
                                "\n"
                                "# the build machine\n"
                                "ci\t0123456789abcdefC\n";
        QTest::newRow("unchanged") << file << file;
        QTest::newRow("new file") << QByteArray()
                                  << QByteArray("alice 0123456789abcdefA\n"
                                                "ci 0123456789abcdefC\n");
        QTest::newRow("no final line break") << QByteArray("alice 0123456789abcdefA")
                                             << QByteArray("alice 0123456789abcdefA\n"
                                                           "ci 0123456789abcdefC\n");
        QTest::newRow("one gone, one changed")
            << QByteArray("ci 0123456789abcdefC\n# keep\nbob 0123456789abcdefB\n"
                          "alice 0000000000000000\n")
            << QByteArray("ci 0123456789abcdefC\n# keep\nalice 0123456789abcdefA\n");
    }

    void tokensTextKeepsCommentsAndOrder() {
        QFETCH(QByteArray, previous);
        QFETCH(QByteArray, expected);
        const QList<ProxyToken> tokens{{"alice", "0123456789abcdefA"}, {"ci", "0123456789abcdefC"}};
        const QByteArray text = proxyTokensText(previous, tokens);
        QCOMPARE(text, expected);
        QString error;
        const auto parsed = parseProxyTokens(text, &error);
        QVERIFY2(parsed, qPrintable(error));
        QCOMPARE(QSet<QByteArray>({parsed->at(0).name, parsed->at(1).name}),
                 QSet<QByteArray>({"alice", "ci"}));
    }

    void savedTokensFileIsOwnerOnlyAndReadsBack() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("new/folder/tokens"));
        const QList<ProxyToken> tokens{{"alice", generateProxyToken()}};
        QString error;
        QVERIFY2(saveProxyTokens(path, tokens, &error), qPrintable(error));
        const QFile::Permissions others = QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup |
                                          QFile::ReadOther | QFile::WriteOther | QFile::ExeOther;
        QCOMPARE(QFileInfo(path).permissions() & others, QFile::Permissions());
        auto loaded = loadProxyTokens(path, &error);
        QVERIFY2(loaded, qPrintable(error));
        QCOMPARE(*loaded, tokens);

        // A file others could read is made owner-only before anything new goes in.
        QVERIFY(QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner |
                                                QFile::ReadGroup | QFile::ReadOther));
        const QList<ProxyToken> two{tokens.constFirst(), {"bob", generateProxyToken()}};
        QVERIFY2(saveProxyTokens(path, two, &error), qPrintable(error));
        QCOMPARE(QFileInfo(path).permissions() & others, QFile::Permissions());
        loaded = loadProxyTokens(path, &error);
        QVERIFY2(loaded, qPrintable(error));
        QCOMPARE(*loaded, two);
        // Nothing is left beside it (QSaveFile's temporary file is gone).
        QCOMPARE(QDir(QFileInfo(path).absolutePath()).entryList(QDir::Files | QDir::Hidden),
                 QStringList{QStringLiteral("tokens")});
    }

    void unwritableTokensFileIsReported() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        // A folder where the file should be: nothing can be written, and the reason says where.
        const QString path = dir.filePath(QStringLiteral("tokens"));
        QVERIFY(QDir().mkpath(path + QStringLiteral("/inside")));
        QString error;
        QVERIFY(!saveProxyTokens(path, {{"alice", generateProxyToken()}}, &error));
        QVERIFY2(error.startsWith(QStringLiteral("cannot write ") + path), qPrintable(error));
    }
};

QTEST_GUILESS_MAIN(tst_FrontDoor)
#include "tst_frontdoor.moc"
