// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The proxy as the loopback tests run it: the fake OpenAI provider with quick delays (and, on
// Anthropic's path, the fake Anthropic API as its "anthropic" provider), a
// ProxyService started on this thread against it (its store in a temporary folder, or none),
// and a TestClient pointed at the proxy's port. One per test function: made in init(), dropped
// in cleanup().

#include "batchpath.h"
#include "settings/config.h"
#include "testclient.h"

#include <QJsonObject>
#include <QTemporaryDir>

#include <memory>

namespace llmproxy {
class ProxyService;
}

namespace llmproxy::test {

class FakeProvider;

class ProxyFixture final {
public:
    Q_DISABLE_COPY_MOVE(ProxyFixture)
    enum class Store { TemporaryFolder, None };

    // Starts the fake provider (validation 10 ms, processing 30 ms, finalizing 10 ms); check
    // listening() before using it.
    explicit ProxyFixture(Store store = Store::TemporaryFolder,
                          BatchPath::Provider provider = BatchPath::Provider::OpenAI);
    ~ProxyFixture(); // the client, the proxy, the fake, then the folder

    bool listening() const { return m_listening; }

    // Listening on 127.0.0.1, port 0; upstream: the fake; batch window 200 ms, polls every
    // 40 ms; the data folder (Store::TemporaryFolder) or none; the path's provider.
    Config baseConfig() const;
    // LLMPROXY_TEST_IO_THREADS if set (CTest runs some suites with 3 and with 1), else
    // `otherwise`.
    static int ioThreads(int otherwise);

    // Stops a running proxy first (it lets go of the store), starts one with `config` and
    // points the client at its first port. False if it did not start.
    [[nodiscard]] bool startProxy(const Config &config);
    void stopProxy();

    FakeProvider *fake() const { return m_fake.get(); }
    BatchPath *path() const { return m_path.get(); }
    ProxyService *proxy() const { return m_proxy.get(); }
    TestClient *client() const { return m_client.get(); }
    quint16 port() const { return m_client->port(); } // where the client sends
    // The data folder (empty with Store::None), and a file's path in it.
    QString dataDir() const;
    QString filePath(const QString &name) const;

    // Lines the path's provider was asked to run, over every batch it created: what was paid
    // for.
    int paidLines() const;
    // GET `path` through the client: the body (empty if it did not finish) and the status.
    QByteArray get(const QByteArray &path, int *status = nullptr);
    // GET /stats as a client sees it; empty unless it answered 200.
    QJsonObject statsJson();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<FakeProvider> m_fake;
    std::unique_ptr<BatchPath> m_path;
    std::unique_ptr<ProxyService> m_proxy;
    std::unique_ptr<TestClient> m_client;
    bool m_listening = false;
};

} // namespace llmproxy::test
