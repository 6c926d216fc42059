// SPDX-License-Identifier: GPL-3.0-or-later
#include "proxyservice.h"

#include "api/logging.h"
#include "batch/batchcore.h"
#include "http/httpfrontend.h"
#include "provider/openaiprovider.h"
#include "stats/stats.h"

#include <QNetworkAccessManager>

namespace llmproxy {

ProxyService::ProxyService(Config config, QObject *parent)
    : QObject(parent)
    , m_config(std::move(config)) {}

ProxyService::~ProxyService() = default;

void ProxyService::start() {
    m_stats = std::make_unique<Stats>();
    m_nam = new QNetworkAccessManager(this);
    m_nam->setAutoDeleteReplies(false);
    m_provider = new OpenAiProvider(m_nam, m_config.upstream, this);

    CoreSettings core;
    core.limits.window = m_config.batchWindow;
    core.limits.maxRequests = std::min(m_config.batchSize, Config::ProviderMaxRequests);
    core.limits.maxBytes = std::min(m_config.batchBytes, Config::ProviderMaxBytes);
    core.limits.maxEmbeddingInputs = Config::ProviderMaxEmbeddingInputs;
    core.pollInterval = m_config.pollInterval;
    m_core = new BatchCore(m_provider, &m_clock, m_stats.get(), core, this);

    FrontEndSettings front;
    front.maxBody = m_config.maxBody;
    front.apiKey = m_config.apiKey;
    front.upstream = m_config.upstream;
    front.idleTimeout = m_config.idleTimeout;
    m_frontEnd = new HttpFrontEnd(m_core, m_stats.get(), m_nam, &m_clock, front, this);

    QString error;
    if (!m_frontEnd->listenOn(m_config.listen, &error)) {
        qCCritical(lcApp).noquote() << error;
        Q_EMIT startFailed(error);
        return;
    }
    m_frontEnd->setReady(true);
    qCInfo(lcApp).noquote() << "upstream" << m_config.upstream.toDisplayString()
                            << (m_config.apiKey.isEmpty() ? "(clients' own keys)"
                                                          : "(key from OPENAI_API_KEY)");
    Q_EMIT started(m_frontEnd->ports());
}

void ProxyService::stop() {
    if (m_frontEnd) {
        HttpAnswer answer =
            errorAnswer(503, QStringLiteral("llm-proxy is shutting down; retry shortly"),
                        ErrorType::Server, "proxy_shutting_down");
        answer.headers.emplaceBack("retry-after", "5");
        answer.headers.emplaceBack("x-should-retry", "true");
        m_frontEnd->closeAll(answer);
    }
    Q_EMIT stopped();
}

void ProxyService::flushNow() {
    if (m_core)
        m_core->flushNow();
}

} // namespace llmproxy
