// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One client path through one provider's batch API, as the lifecycle suites (tst_crash,
// tst_durable) drive it, so that each of their cases runs once per path:
//   openai:    POST /v1/chat/completions, Batch API with an uploaded JSONL file (FakeProvider);
//   anthropic: POST /v1/messages, Message Batches with the requests inline (FakeAnthropic).
// The request, the answer's text, the fake's counters and faults, in one vocabulary.

#include "testclient.h"

#include <QByteArray>
#include <QString>

#include <chrono>
#include <memory>

namespace llmproxy::test {

class FakeAnthropic;
class FakeProvider;

class BatchPath final {
public:
    Q_DISABLE_COPY_MOVE(BatchPath)
    enum class Provider { OpenAI, Anthropic };
    // What failNext() scripts: the first call that carries the requests (OpenAI's file
    // upload, Anthropic's create, which has them inline), creating a batch, polling it, the
    // synchronous call.
    enum class Operation { HandOver, Create, Retrieve, Sync };

    // The rows "openai" and "anthropic" of a column named "provider" (QByteArray).
    static void addRows();
    static Provider named(const QByteArray &name);

    // OpenAI's path runs on `openai` (not owned); Anthropic's starts its own fake, with the
    // same quick processing delay.
    BatchPath(Provider provider, FakeProvider *openai);
    ~BatchPath();

    Provider provider() const { return m_provider; }
    bool isAnthropic() const { return m_provider == Provider::Anthropic; }
    bool listening() const;
    FakeAnthropic *anthropic() const { return m_anthropic.get(); }

    // The --provider item that routes this path (empty for OpenAI: --upstream does).
    QByteArray providerItem() const;
    QByteArray path() const;
    Headers headers() const; // the client's key, as this API's SDK sends it
    QByteArray key() const;  // that key
    // A request for `text` to model() or, `otherModel`, to another: a batch of its own.
    QByteArray body(const QByteArray &text, bool otherModel = false) const;
    QString content(const QByteArray &answer) const; // the answer's text
    QByteArray model(bool other = false) const;      // the model body() asks for
    QByteArray requestIdHeader() const; // the provider's request id, as the client gets it

    // The fake: batches it created, lines over all of them (what was paid for), calls.
    int batchesCreated() const;
    int paidLines() const;
    int cancels() const;
    int syncCalls() const;
    int lists() const;     // GET of the batch list
    int handOvers() const; // calls of Operation::HandOver
    // The lifecycle suites run once more with LLMPROXY_TEST_PROVIDER_SHAPE set (the OpenAI
    // family's other shapes): Anthropic's path does not change with it.
    bool repeatedForAnotherShape() const;
    void forgetBatches(); // the fake resets: every batch it knew is gone
    void failNext(Operation op, int count, int httpStatus, const QByteArray &retryAfter = {});
    void setProcessingDelay(std::chrono::milliseconds delay);
    void setCancelDelay(std::chrono::milliseconds delay);
    void setNeverFinish(bool neverFinish);
    void setCancelFractionDone(double fraction);
    void setExpireAfter(std::chrono::milliseconds after, double fractionDone = 0.5);

private:
    Provider m_provider;
    FakeProvider *m_openai;
    std::unique_ptr<FakeAnthropic> m_anthropic;
    bool m_listening = true;
};

} // namespace llmproxy::test
