// SPDX-License-Identifier: GPL-3.0-or-later
#include "fakehost.h"

#include "fakeprovider.h"

#include <QJsonObject>
#include <QThread>

namespace llmproxy::bench {

FakeHost::FakeHost() = default;

FakeHost::~FakeHost() {
    stop();
}

bool FakeHost::start(std::chrono::milliseconds processingDelay, QByteArray *error) {
    m_thread = std::make_unique<QThread>();
    m_thread->setObjectName(QStringLiteral("fake-provider"));
    m_context = new QObject; // deleted on the thread when it finishes
    m_context->moveToThread(m_thread.get());
    QObject::connect(m_thread.get(), &QThread::finished, m_context, &QObject::deleteLater);
    m_thread->start();

    bool listening = false;
    // Build the provider on its own thread so its server and timers belong to that thread.
    QMetaObject::invokeMethod(
        m_context,
        [this, processingDelay, &listening] {
            m_fake = new test::FakeProvider(m_context);
            m_fake->setProcessingDelay(processingDelay);
            m_fake->setNeverFinish(true); // until release()
            QObject::connect(m_fake, &test::FakeProvider::requestReceived, m_fake, [this] {
                const test::FakeProvider::RequestRecord &last = m_fake->requests().constLast();
                if (last.method != "GET" || !last.path.endsWith("/content"))
                    return;
                const Clock::time_point now = Clock::now();
                std::lock_guard lock(m_mutex);
                if (m_events.finished > 0 && m_events.firstResultsDownload == Clock::time_point{})
                    m_events.firstResultsDownload = now;
            });
            QObject::connect(m_fake, &test::FakeProvider::batchCreated, m_fake, [this] {
                const Clock::time_point now = Clock::now();
                std::lock_guard lock(m_mutex);
                if (m_events.created++ == 0)
                    m_events.firstCreated = now;
                m_changed.notify_all();
            });
            QObject::connect(
                m_fake, &test::FakeProvider::batchFinished, m_fake, [this](const QByteArray &id) {
                    const Clock::time_point now = Clock::now();
                    const QJsonObject batch = m_fake->batchObject(id);
                    const QJsonObject counts =
                        batch.value(QLatin1StringView("request_counts")).toObject();
                    std::lock_guard lock(m_mutex);
                    ++m_events.finished;
                    m_events.lastFinished = now;
                    m_events.lastStatus =
                        batch.value(QLatin1StringView("status")).toString().toUtf8();
                    m_events.lastCompletedLines =
                        counts.value(QLatin1StringView("completed")).toInt();
                    m_events.lastFailedLines = counts.value(QLatin1StringView("failed")).toInt();
                    m_changed.notify_all();
                });
            listening = m_fake->listen(0);
            if (listening)
                m_baseUrl = m_fake->baseUrl();
        },
        Qt::BlockingQueuedConnection);
    if (!listening) {
        *error = "the fake provider cannot listen on 127.0.0.1";
        return false;
    }
    return true;
}

void FakeHost::release() {
    QMetaObject::invokeMethod(
        m_context, [this] { m_fake->setNeverFinish(false); }, Qt::BlockingQueuedConnection);
}

void FakeHost::stop() {
    if (!m_thread)
        return;
    m_thread->quit();
    m_thread->wait();
    m_thread.reset();
    m_context = nullptr;
    m_fake = nullptr;
}

FakeHost::Events FakeHost::events() const {
    std::lock_guard lock(m_mutex);
    return m_events;
}

FakeHost::Events FakeHost::waitUntil(const std::function<bool(const Events &)> &done,
                                     std::chrono::milliseconds timeout) const {
    std::unique_lock lock(m_mutex);
    m_changed.wait_for(lock, timeout, [&] { return done(m_events); });
    return m_events;
}

} // namespace llmproxy::bench
