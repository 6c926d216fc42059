// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>
#include <QUrl>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

class QObject;
class QThread;

namespace llmproxy::test {
class FakeProvider;
}

namespace llmproxy::bench {

// The fake OpenAI provider, on a thread with its own event loop, and a timestamp of every
// batch it creates and finishes (taken on that thread, the moment it happens).
class FakeHost {
public:
    using Clock = std::chrono::steady_clock;

    struct Events {
        int created = 0;
        int finished = 0;
        Clock::time_point firstCreated{};
        Clock::time_point lastFinished{};
        // The first download of a file's content after a batch finished: the proxy has seen
        // the completion and its results start arriving.
        Clock::time_point firstResultsDownload{};
        QByteArray lastStatus;      // "completed", "failed", ...
        int lastCompletedLines = 0; // request_counts.completed of the last finished batch
        int lastFailedLines = 0;
    };

    FakeHost();
    ~FakeHost();
    FakeHost(const FakeHost &) = delete;
    FakeHost &operator=(const FakeHost &) = delete;

    // Batches stay in_progress until release(), then finish after `processingDelay`.
    bool start(std::chrono::milliseconds processingDelay, QByteArray *error);
    // Lets held batches (and later ones) go on to finish.
    void release();
    QUrl baseUrl() const { return m_baseUrl; }
    Events events() const;
    // Blocks until `done(events)` holds or the timeout passes; returns the events then.
    Events waitUntil(const std::function<bool(const Events &)> &done,
                     std::chrono::milliseconds timeout) const;

private:
    void stop();

    std::unique_ptr<QThread> m_thread;
    QObject *m_context = nullptr;         // lives on m_thread, owns the provider
    test::FakeProvider *m_fake = nullptr; // only touched on m_thread
    QUrl m_baseUrl;
    mutable std::mutex m_mutex;
    mutable std::condition_variable m_changed;
    Events m_events;
};

} // namespace llmproxy::bench
