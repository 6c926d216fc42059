// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/firstrunpanel.h"

#include "ui/uilogging.h"

#include <QClipboard>
#include <QFontDatabase>
#include <QGridLayout>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QTabWidget>
#include <QVBoxLayout>

namespace llmproxy {

namespace {

constexpr int TestTimeoutMs = 60'000;

QPlainTextEdit *snippetView(const QString &name, QWidget *parent) {
    auto *view = new QPlainTextEdit(parent);
    view->setObjectName(name);
    view->setReadOnly(true);
    view->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    view->setLineWrapMode(QPlainTextEdit::NoWrap);
    view->setTabChangesFocus(true); // read-only: Tab goes on to the next control
    view->setMaximumHeight(view->fontMetrics().lineSpacing() * 10);
    return view;
}

// error.message of an OpenAI-shaped body, without anything that looks like a key.
QString errorMessage(const QByteArray &body) {
    QString text = QJsonDocument::fromJson(body)
                       .object()
                       .value(QStringLiteral("error"))[QStringLiteral("message")]
                       .toString();
    static const QRegularExpression keyLike(QStringLiteral("\\b(sk|rk|pk)-[A-Za-z0-9_*\\-]{6,}"));
    text.replace(keyLike, QStringLiteral("[key]"));
    if (text.size() > 300)
        text = text.left(300) + u'…';
    return text.simplified();
}

} // namespace

FirstRunPanel::FirstRunPanel(QWidget *parent)
    : QGroupBox(FirstRunPanel::tr("Connect a client"), parent)
    , m_url(new QLabel(this))
    , m_copy(new QPushButton(FirstRunPanel::tr("&Copy"), this))
    , m_key(new QLabel(this))
    , m_snippets(new QTabWidget(this))
    , m_python(snippetView(QStringLiteral("snippetPython"), m_snippets))
    , m_node(snippetView(QStringLiteral("snippetNode"), m_snippets))
    , m_curl(snippetView(QStringLiteral("snippetCurl"), m_snippets))
    , m_anthropic(snippetView(QStringLiteral("snippetAnthropic"), m_snippets))
    , m_test(new QPushButton(FirstRunPanel::tr("Send a &test request"), this))
    , m_outcome(new QLabel(this))
    , m_network(new QNetworkAccessManager(this)) {
    setObjectName(QStringLiteral("firstRunPanel"));
    auto *layout = new QVBoxLayout(this);

    auto *intro = new QLabel(FirstRunPanel::tr("Point your OpenAI client at this base URL; nothing "
                                               "else changes. Requests are batched at half the "
                                               "price, so give the client a long timeout."),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);

    auto *urlRow = new QHBoxLayout;
    auto *urlTitle = new QLabel(FirstRunPanel::tr("Base URL:"), this);
    m_url->setObjectName(QStringLiteral("firstRunUrlLabel"));
    m_url->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QFont bold = m_url->font();
    bold.setBold(true);
    m_url->setFont(bold);
    m_copy->setObjectName(QStringLiteral("firstRunCopyButton"));
    m_copy->setToolTip(FirstRunPanel::tr("Copy the base URL to the clipboard"));
    auto *hideButton = new QPushButton(FirstRunPanel::tr("Hide"), this);
    hideButton->setObjectName(QStringLiteral("firstRunHideButton"));
    hideButton->setToolTip(FirstRunPanel::tr("Help → Connect a client shows this again"));
    urlRow->addWidget(urlTitle);
    urlRow->addWidget(m_url);
    urlRow->addWidget(m_copy);
    urlRow->addStretch(1);
    urlRow->addWidget(hideButton);
    layout->addLayout(urlRow);

    m_key->setObjectName(QStringLiteral("firstRunKeyLabel"));
    m_key->setWordWrap(true);
    layout->addWidget(m_key);

    m_snippets->setObjectName(QStringLiteral("firstRunSnippets"));
    m_snippets->addTab(m_python, FirstRunPanel::tr("Python"));
    m_snippets->addTab(m_node, FirstRunPanel::tr("Node"));
    m_snippets->addTab(m_curl, QStringLiteral("curl"));
    m_snippets->addTab(m_anthropic, FirstRunPanel::tr("Claude (Python)"));
    layout->addWidget(m_snippets);

    auto *testRow = new QHBoxLayout;
    auto *copySnippet = new QPushButton(FirstRunPanel::tr("Copy snippet"), this);
    copySnippet->setObjectName(QStringLiteral("firstRunCopySnippetButton"));
    m_test->setObjectName(QStringLiteral("firstRunTestButton"));
    m_test->setToolTip(FirstRunPanel::tr("Ask the provider for its model list through this proxy "
                                         "(free): proves the address, the key and the provider"));
    m_outcome->setObjectName(QStringLiteral("firstRunTestOutcome"));
    m_outcome->setWordWrap(true);
    m_outcome->setTextInteractionFlags(Qt::TextSelectableByMouse);
    testRow->addWidget(copySnippet);
    testRow->addWidget(m_test);
    testRow->addWidget(m_outcome, 1);
    layout->addLayout(testRow);

    connect(m_copy, &QPushButton::clicked, this, [this] {
        if (m_baseUrl.isEmpty())
            return;
        QGuiApplication::clipboard()->setText(m_baseUrl);
        Q_EMIT baseUrlCopied(m_baseUrl);
    });
    connect(copySnippet, &QPushButton::clicked, this, [this] {
        if (const auto *view = qobject_cast<QPlainTextEdit *>(m_snippets->currentWidget()))
            QGuiApplication::clipboard()->setText(view->toPlainText());
    });
    connect(hideButton, &QPushButton::clicked, this, [this] {
        hide();
        Q_EMIT dismissed();
    });
    connect(m_test, &QPushButton::clicked, this, &FirstRunPanel::sendTestRequest);
    setKeyState(KeyState());
    setBaseUrl(QString());
}

FirstRunPanel::~FirstRunPanel() {
    if (m_reply)
        m_reply->abort();
}

QString FirstRunPanel::snippet(Language language) const {
    return snippetFor(language, m_baseUrl, m_keyConfigured, m_proxyToken);
}

QString FirstRunPanel::testOutcome() const {
    return m_outcome->text();
}

QString FirstRunPanel::snippetFor(Language language, const QString &baseUrl, bool keyConfigured,
                                  const QByteArray &proxyToken) {
    const QString url = baseUrl.isEmpty() ? QStringLiteral("http://127.0.0.1:3030/v1") : baseUrl;
    const QString token = QString::fromUtf8(proxyToken);
    // What goes in the SDK's key: the proxy token when there are tokens; a placeholder when the
    // proxy has the provider key; else the client's own key (from its environment). With tokens
    // and no configured key, the client's own key travels in X-Provider-Authorization.
    const bool ownKeyHeader = !token.isEmpty() && !keyConfigured;
    switch (language) {
    case Language::Python: {
        QString key;
        if (!token.isEmpty())
            key = QStringLiteral(" api_key=\"%1\",").arg(token);
        else if (keyConfigured)
            key = QStringLiteral(" api_key=\"unused\",");
        return QStringLiteral("%3from openai import OpenAI\n"
                              "# Batched answers take minutes to hours: wait up to an hour.\n"
                              "client = OpenAI(base_url=\"%1\",%2 timeout=3600%4)\n"
                              "r = client.chat.completions.create(model=\"gpt-4o-mini\",\n"
                              "    messages=[{\"role\": \"user\", \"content\": \"Hello\"}])\n"
                              "print(r.choices[0].message.content)\n")
            .arg(url, key, ownKeyHeader ? QStringLiteral("import os\n") : QString(),
                 ownKeyHeader
                     ? QStringLiteral(",\n    default_headers={\"X-Provider-Authorization\": "
                                      "\"Bearer \" + os.environ[\"OPENAI_API_KEY\"]}")
                     : QString());
    }
    case Language::Node: {
        QString key;
        if (!token.isEmpty())
            key = QStringLiteral("\n  apiKey: \"%1\",").arg(token);
        else if (keyConfigured)
            key = QStringLiteral("\n  apiKey: \"unused\",");
        if (ownKeyHeader) {
            key += QStringLiteral("\n  defaultHeaders: { \"X-Provider-Authorization\": "
                                  "`Bearer ${process.env.OPENAI_API_KEY}` },");
        }
        return QStringLiteral(
                   "import OpenAI from \"openai\";\n"
                   "import { Agent } from \"undici\"; // npm install undici\n"
                   "// Batched answers take minutes to hours; Node's fetch gives up after 300 s.\n"
                   "const client = new OpenAI({\n"
                   "  baseURL: \"%1\",%2\n"
                   "  timeout: 3_600_000,\n"
                   "  fetchOptions: { dispatcher: new Agent({ headersTimeout: 3_600_000, "
                   "bodyTimeout: 3_600_000 }) },\n"
                   "});\n"
                   "const r = await client.chat.completions.create({\n"
                   "  model: \"gpt-4o-mini\", messages: [{ role: \"user\", content: \"Hello\" }] "
                   "});\n"
                   "console.log(r.choices[0].message.content);\n")
            .arg(url, key);
    }
    case Language::Curl: {
        QString headers;
        if (!token.isEmpty())
            headers = QStringLiteral(" \\\n  -H \"Authorization: Bearer %1\"").arg(token);
        else if (!keyConfigured)
            headers = QStringLiteral(" \\\n  -H \"Authorization: Bearer $OPENAI_API_KEY\"");
        if (ownKeyHeader) {
            headers += QStringLiteral(" \\\n  -H \"X-Provider-Authorization: Bearer "
                                      "$OPENAI_API_KEY\"");
        }
        return QStringLiteral("curl --max-time 3600 %1/chat/completions%2 \\\n"
                              "  -H \"Content-Type: application/json\" \\\n"
                              "  -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                              "\"content\":\"Hello\"}]}'\n")
            .arg(url, headers);
    }
    case Language::Anthropic: {
        // The Anthropic SDKs add /v1/messages to a base URL without /v1. The key: the proxy
        // token when there are tokens (the client's own Anthropic key then goes in
        // X-Provider-Authorization unless the proxy has one); else the SDK's ANTHROPIC_API_KEY,
        // which a key configured in the proxy replaces.
        QString root = url;
        if (root.endsWith(QStringLiteral("/v1")))
            root.chop(3);
        const QString key =
            token.isEmpty()
                ? QString()
                : QStringLiteral(" api_key=\"%1\",\n"
                                 "    # Your own Anthropic key, unless llm-proxy has one:\n"
                                 "    # default_headers={\"X-Provider-Authorization\": "
                                 "\"Bearer \" + os.environ[\"ANTHROPIC_API_KEY\"]},\n"
                                 "   ")
                      .arg(token);
        return QStringLiteral("%3import anthropic  # pip install anthropic\n"
                              "# Batched answers take minutes to hours: wait up to an hour.\n"
                              "client = anthropic.Anthropic(base_url=\"%1\",%2 timeout=3600)\n"
                              "m = client.messages.create(model=\"claude-opus-4-1\", "
                              "max_tokens=1024,\n"
                              "    messages=[{\"role\": \"user\", \"content\": \"Hello\"}])\n"
                              "print(m.content[0].text)\n"
                              "# Claude Code: ANTHROPIC_BASE_URL=%1 claude\n")
            .arg(root, key, token.isEmpty() ? QString() : QStringLiteral("import os\n"));
    }
    }
    return QString();
}

void FirstRunPanel::setProxyTokens(const QList<ProxyToken> &tokens) {
    const QByteArray token = tokens.isEmpty() ? QByteArray() : tokens.constFirst().token;
    if (token == m_proxyToken)
        return;
    m_proxyToken = token;
    refreshSnippets();
}

void FirstRunPanel::setBaseUrl(const QString &url) {
    if (url == m_baseUrl && !m_url->text().isEmpty())
        return;
    m_baseUrl = url;
    m_url->setText(url.isEmpty() ? FirstRunPanel::tr("not listening") : url);
    m_copy->setEnabled(!url.isEmpty());
    m_test->setEnabled(!url.isEmpty() && !m_reply);
    refreshSnippets();
}

void FirstRunPanel::setKeyState(const KeyState &state) {
    m_keyConfigured = state.source != KeyState::Source::None;
    QString where;
    switch (state.source) {
    case KeyState::Source::None:
        break;
    case KeyState::Source::Keychain:
        where = FirstRunPanel::tr("in the system keychain");
        break;
    case KeyState::Source::File:
        where = FirstRunPanel::tr("in the settings file");
        break;
    case KeyState::Source::Session:
        where = FirstRunPanel::tr("for this session only");
        break;
    case KeyState::Source::Environment:
        where = FirstRunPanel::tr("from OPENAI_API_KEY");
        break;
    }
    m_key->setText(
        m_keyConfigured
            ? FirstRunPanel::tr("A key is configured (%1, %2): the proxy sends it for every "
                                "request, so clients need none of their own (any placeholder "
                                "does).")
                  .arg(QString::fromUtf8(state.hint), where)
            : FirstRunPanel::tr("No key is configured: each client sends its own OpenAI key "
                                "(OPENAI_API_KEY), or enter one under Settings → API key."));
    refreshSnippets();
}

void FirstRunPanel::refreshSnippets() {
    m_python->setPlainText(snippet(Language::Python));
    m_node->setPlainText(snippet(Language::Node));
    m_curl->setPlainText(snippet(Language::Curl));
    m_anthropic->setPlainText(snippet(Language::Anthropic));
}

void FirstRunPanel::sendTestRequest() {
    if (m_baseUrl.isEmpty() || m_reply)
        return;
    m_testSent = true;
    QNetworkRequest request(QUrl(m_baseUrl + QStringLiteral("/models")));
    request.setTransferTimeout(TestTimeoutMs);
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    request.setRawHeader("Accept", "application/json");
    if (!m_proxyToken.isEmpty()) // with tokens, the front door wants one
        request.setRawHeader("Authorization", "Bearer " + m_proxyToken);
    m_clock.start();
    QNetworkReply *reply = m_network->get(request);
    m_reply = reply;
    connect(reply, &QNetworkReply::finished, this, [this, reply] { readTestReply(reply); });
    m_test->setEnabled(false);
    m_outcome->setText(FirstRunPanel::tr("Asking the provider for its model list through the "
                                         "proxy…"));
}

void FirstRunPanel::readTestReply(QNetworkReply *reply) {
    m_reply.clear();
    reply->deleteLater();
    m_test->setEnabled(!m_baseUrl.isEmpty());
    const qint64 ms = m_clock.elapsed();
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    const QByteArray body = reply->readAll();
    QString text;
    bool ok = false;
    if (status == 0) {
        text = FirstRunPanel::tr("Failed after %1 ms: no answer from the proxy at %2 (%3).")
                   .arg(ms)
                   .arg(m_baseUrl, reply->errorString());
    } else if (status == 200) {
        const QJsonValue models =
            QJsonDocument::fromJson(body).object().value(QStringLiteral("data"));
        ok = true;
        text = FirstRunPanel::tr("Works: 200 in %1 ms. The proxy relayed GET /v1/models to the "
                                 "provider, which listed %2 models; your clients can use this "
                                 "base URL.")
                   .arg(ms)
                   .arg(models.toArray().size());
    } else {
        const QString said = errorMessage(body);
        QString plain;
        switch (status) {
        case 401:
            plain = m_keyConfigured ? FirstRunPanel::tr("the provider refused the configured key; "
                                                        "enter it again under Settings → API key.")
                                    : FirstRunPanel::tr("no key is configured, so the request "
                                                        "went without one; enter a key under "
                                                        "Settings → API key (clients may also "
                                                        "send their own).");
            break;
        case 403:
            plain = FirstRunPanel::tr("the key is not allowed to do this (project, organization "
                                      "or region).");
            break;
        case 502:
        case 503:
        case 504:
            plain = FirstRunPanel::tr("the proxy could not get an answer from the provider; "
                                      "Settings → Test connection says why.");
            break;
        default:
            plain = FirstRunPanel::tr("the request failed.");
            break;
        }
        text = FirstRunPanel::tr("Failed: HTTP %1 in %2 ms: %3").arg(status).arg(ms).arg(plain);
        if (!said.isEmpty())
            text += QStringLiteral(" (\"%1\")").arg(said);
    }
    qCInfo(lcUi) << "test request:" << status << ms << "ms";
    m_outcome->setText(text);
    Q_EMIT testFinished(ok);
}

} // namespace llmproxy
