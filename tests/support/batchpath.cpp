// SPDX-License-Identifier: GPL-3.0-or-later
#include "batchpath.h"

#include "fakeanthropic.h"
#include "fakeprovider.h"

#include <QJsonArray>
#include <QTest>

#include <algorithm>

using namespace std::chrono_literals;

namespace llmproxy::test {

namespace {

const QByteArray AnthropicKey = "sk-ant-test-key-aaaa";

// Calls whose path is exactly `path` (the fakes' count() matches a prefix).
template <typename Fake>
int exactly(const Fake &fake, QByteArrayView method, QByteArrayView path) {
    const auto &requests = fake.requests();
    return int(std::count_if(requests.cbegin(), requests.cend(),
                             [&](const auto &r) { return r.method == method && r.path == path; }));
}

template <typename Batches>
int linesOf(const Batches &batches) {
    int lines = 0;
    for (const auto &batch : batches)
        lines += int(batch.customIds.size());
    return lines;
}

} // namespace

void BatchPath::addRows() {
    QTest::addColumn<QByteArray>("provider");
    QTest::newRow("openai") << QByteArray("openai");
    QTest::newRow("anthropic") << QByteArray("anthropic");
}

BatchPath::Provider BatchPath::named(const QByteArray &name) {
    return name == "anthropic" ? Provider::Anthropic : Provider::OpenAI;
}

BatchPath::BatchPath(Provider provider, FakeProvider *openai)
    : m_provider(provider)
    , m_openai(openai) {
    if (provider == Provider::Anthropic) {
        m_anthropic = std::make_unique<FakeAnthropic>();
        m_listening = m_anthropic->listen();
        m_anthropic->setProcessingDelay(30ms);
    }
}

BatchPath::~BatchPath() = default;

bool BatchPath::listening() const {
    return m_listening;
}

QByteArray BatchPath::providerItem() const {
    return isAnthropic() ? "anthropic=anthropic;url=" + m_anthropic->baseUrl().toString().toUtf8()
                         : QByteArray();
}

QByteArray BatchPath::path() const {
    return isAnthropic() ? "/v1/messages" : "/v1/chat/completions";
}

Headers BatchPath::headers() const {
    return isAnthropic() ? Headers{{"x-api-key", AnthropicKey}, {"anthropic-version", "2023-06-01"}}
                         : KeyA;
}

QByteArray BatchPath::key() const {
    return isAnthropic() ? AnthropicKey : QByteArray("sk-test-key-aaaa");
}

QByteArray BatchPath::model(bool other) const {
    if (isAnthropic())
        return other ? "claude-haiku-4-5" : "claude-sonnet-4-5";
    return other ? "gpt-4o" : "gpt-4o-mini";
}

QByteArray BatchPath::requestIdHeader() const {
    return isAnthropic() ? "request-id" : "x-request-id";
}

QByteArray BatchPath::body(const QByteArray &text, bool otherModel) const {
    if (!isAnthropic())
        return chatBody(text, model(otherModel));
    return R"({"model":")" + model(otherModel) +
           R"(","max_tokens":64,"messages":[{"role":"user","content":")" + text + R"("}]})";
}

QString BatchPath::content(const QByteArray &answer) const {
    if (!isAnthropic())
        return chatContent(answer);
    return jsonOf(answer)
        .value(QLatin1StringView("content"))
        .toArray()
        .at(0)
        .toObject()
        .value(QLatin1StringView("text"))
        .toString();
}

int BatchPath::batchesCreated() const {
    return isAnthropic() ? int(m_anthropic->batches().size()) : int(m_openai->batches().size());
}

int BatchPath::paidLines() const {
    return isAnthropic() ? linesOf(m_anthropic->batches()) : linesOf(m_openai->batches());
}

int BatchPath::cancels() const {
    // POST /v1/batches/{id}/cancel, POST /v1/messages/batches/{id}/cancel (creates have no id)
    return isAnthropic() ? m_anthropic->count("POST", "/v1/messages/batches/")
                         : m_openai->count("POST", "/v1/batches/");
}

int BatchPath::syncCalls() const {
    return isAnthropic() ? exactly(*m_anthropic, "POST", "/v1/messages")
                         : m_openai->count("POST", "/v1/chat/completions");
}

int BatchPath::lists() const {
    return isAnthropic() ? exactly(*m_anthropic, "GET", "/v1/messages/batches")
                         : exactly(*m_openai, "GET", "/v1/batches");
}

int BatchPath::handOvers() const {
    return isAnthropic() ? exactly(*m_anthropic, "POST", "/v1/messages/batches")
                         : m_openai->count("POST", "/v1/files");
}

bool BatchPath::repeatedForAnotherShape() const {
    return isAnthropic() && qEnvironmentVariableIsSet("LLMPROXY_TEST_PROVIDER_SHAPE");
}

void BatchPath::forgetBatches() {
    isAnthropic() ? m_anthropic->reset() : m_openai->reset();
}

void BatchPath::failNext(Operation op, int count, int httpStatus, const QByteArray &retryAfter) {
    if (isAnthropic()) {
        const auto theirs = op == Operation::HandOver || op == Operation::Create
                                ? FakeAnthropic::Operation::Create
                            : op == Operation::Retrieve ? FakeAnthropic::Operation::Retrieve
                                                        : FakeAnthropic::Operation::Messages;
        return m_anthropic->failNext(theirs, count, httpStatus, retryAfter);
    }
    const auto theirs = op == Operation::HandOver   ? FakeProvider::Operation::Upload
                        : op == Operation::Create   ? FakeProvider::Operation::Create
                        : op == Operation::Retrieve ? FakeProvider::Operation::Retrieve
                                                    : FakeProvider::Operation::Chat;
    m_openai->failNext(theirs, count, httpStatus, retryAfter);
}

void BatchPath::setProcessingDelay(std::chrono::milliseconds delay) {
    isAnthropic() ? m_anthropic->setProcessingDelay(delay) : m_openai->setProcessingDelay(delay);
}

void BatchPath::setCancelDelay(std::chrono::milliseconds delay) {
    isAnthropic() ? m_anthropic->setCancelDelay(delay) : m_openai->setCancelDelay(delay);
}

void BatchPath::setNeverFinish(bool neverFinish) {
    isAnthropic() ? m_anthropic->setNeverFinish(neverFinish)
                  : m_openai->setNeverFinish(neverFinish);
}

void BatchPath::setCancelFractionDone(double fraction) {
    isAnthropic() ? m_anthropic->setCancelFractionDone(fraction)
                  : m_openai->setCancelFractionDone(fraction);
}

void BatchPath::setExpireAfter(std::chrono::milliseconds after, double fractionDone) {
    isAnthropic() ? m_anthropic->setExpireAfter(after, fractionDone)
                  : m_openai->setExpireAfter(after, fractionDone);
}

} // namespace llmproxy::test
