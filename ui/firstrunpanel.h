// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Connect a client: the panel a new user sees on the dashboard until the first request, and
// again from Help → Connect a client. The base URL with a copy button, ready-to-paste snippets
// (Python, Node, curl) with the long timeouts the README recommends, whether a key is
// configured, and Send a test request: GET /v1/models through the proxy's own listening
// address (the relay, the configured key, the provider), with its outcome in plain words.

#include "settings/proxytokens.h"
#include "ui/settingscontroller.h"

#include <QElapsedTimer>
#include <QGroupBox>
#include <QPointer>

class QLabel;
class QNetworkAccessManager;
class QNetworkReply;
class QPlainTextEdit;
class QPushButton;
class QTabWidget;

namespace llmproxy {

class FirstRunPanel final : public QGroupBox {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FirstRunPanel)
public:
    // Anthropic: Claude through /v1/messages, with the Anthropic Python SDK.
    enum class Language { Python, Node, Curl, Anthropic };
    Q_ENUM(Language)

    explicit FirstRunPanel(QWidget *parent = nullptr);
    ~FirstRunPanel() override;

    QString baseUrl() const { return m_baseUrl; }
    QString snippet(Language language) const;
    // Whether the user sent a test request from here (then the panel stays until dismissed).
    bool testSent() const { return m_testSent; }
    QString testOutcome() const;

    // `proxyToken`: what clients must send when the proxy has tokens (empty: none). The
    // configured provider key is never part of a snippet.
    static QString snippetFor(Language language, const QString &baseUrl, bool keyConfigured,
                              const QByteArray &proxyToken = {});

public Q_SLOTS:
    // The URL clients use ("http://127.0.0.1:3030/v1"); empty while not listening.
    void setBaseUrl(const QString &url);
    void setKeyState(const llmproxy::KeyState &state);
    // The proxy's tokens: the snippets and the test request use the first one.
    void setProxyTokens(const QList<llmproxy::ProxyToken> &tokens);
    void sendTestRequest();

Q_SIGNALS:
    void baseUrlCopied(const QString &url);
    void dismissed();
    void testFinished(bool ok);

private:
    void refreshSnippets();
    void readTestReply(QNetworkReply *reply);

    QLabel *m_url;
    QPushButton *m_copy;
    QLabel *m_key;
    QTabWidget *m_snippets;
    QPlainTextEdit *m_python;
    QPlainTextEdit *m_node;
    QPlainTextEdit *m_curl;
    QPlainTextEdit *m_anthropic;
    QPushButton *m_test;
    QLabel *m_outcome;
    QNetworkAccessManager *m_network;
    QPointer<QNetworkReply> m_reply;
    QElapsedTimer m_clock;
    QString m_baseUrl;
    QByteArray m_proxyToken;
    bool m_keyConfigured = false;
    bool m_testSent = false;
};

} // namespace llmproxy
