// SPDX-License-Identifier: GPL-3.0-or-later
#include "proxyfixture.h"

#include "fakeprovider.h"
#include "proxyservice.h"

#include <QNetworkReply>
#include <QSignalSpy>

using namespace std::chrono_literals;

namespace llmproxy::test {

ProxyFixture::ProxyFixture(Store store, BatchPath::Provider provider)
    : m_dir(store == Store::TemporaryFolder ? std::make_unique<QTemporaryDir>() : nullptr)
    , m_fake(std::make_unique<FakeProvider>())
    , m_path(std::make_unique<BatchPath>(provider, m_fake.get()))
    , m_client(std::make_unique<TestClient>()) {
    m_listening = m_fake->listen() && m_path->listening() && (!m_dir || m_dir->isValid());
    m_fake->setValidationDelay(10ms);
    m_fake->setProcessingDelay(30ms);
    m_fake->setFinalizingDelay(10ms);
}

ProxyFixture::~ProxyFixture() {
    m_client.reset();
    m_proxy.reset();
    m_path.reset();
    m_fake.reset();
    m_dir.reset();
}

Config ProxyFixture::baseConfig() const {
    Config config;
    config.listen = {ListenAddress{QHostAddress(QHostAddress::LocalHost), 0}};
    config.upstream = m_fake->baseUrl();
    config.batchWindow = 200ms;
    config.pollInterval = 40ms;
    config.dataDir = dataDir();
    if (const QByteArray item = m_path->providerItem(); !item.isEmpty())
        config.providers = {item};
    return config;
}

int ProxyFixture::ioThreads(int otherwise) {
    const int threads = qEnvironmentVariableIntValue("LLMPROXY_TEST_IO_THREADS");
    return threads > 0 ? threads : otherwise;
}

bool ProxyFixture::startProxy(const Config &config) {
    m_proxy.reset(); // a previous instance lets go of the store first
    m_proxy = std::make_unique<ProxyService>(config);
    QSignalSpy started(m_proxy.get(), &ProxyService::started);
    m_proxy->start();
    if (started.size() != 1)
        return false;
    const QList<quint16> ports = started.first().first().value<QList<quint16>>();
    if (ports.isEmpty() || ports.first() == 0)
        return false;
    m_client->setPort(ports.first());
    return true;
}

void ProxyFixture::stopProxy() {
    m_proxy.reset();
}

QString ProxyFixture::dataDir() const {
    return m_dir ? m_dir->path() : QString();
}

QString ProxyFixture::filePath(const QString &name) const {
    return m_dir ? m_dir->filePath(name) : QString();
}

int ProxyFixture::paidLines() const {
    return m_path->paidLines();
}

QByteArray ProxyFixture::get(const QByteArray &path, int *status) {
    QNetworkReply *reply = m_client->send("GET", path, {}, {});
    if (!TestClient::finished(reply))
        return {};
    if (status)
        *status = TestClient::status(reply);
    return reply->readAll();
}

QJsonObject ProxyFixture::statsJson() {
    int status = 0;
    const QByteArray body = get("/stats", &status);
    return status == 200 ? jsonOf(body) : QJsonObject();
}

} // namespace llmproxy::test
