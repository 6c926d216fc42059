// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The members of the OpenAI family of batch APIs, as data: one OpenAiProvider speaks to each of
// them, told by its profile how this one differs. Facts and sources: the reference on provider
// batch APIs (§1 OpenAI, §3.1 Gemini's compatibility layer, §4.1 Azure, §4.2 Groq, Together).

#include "provider/provider.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QUrl>

#include <chrono>
#include <optional>

namespace llmproxy {

// What a batch that runs out of time leaves behind.
enum class ExpiryBehaviour : quint8 {
    PartialResults, // expired: finished requests have results, the rest never ran (OpenAI)
    NoResults,      // expired: nothing can be read, every request must go out again (Gemini)
    Never,          // jobs are not expired, they run until done or cancelled (Azure)
};

// A provider word for a batch status beyond OpenAI's eight (matched without regard to case).
struct StatusWord {
    QByteArray word;
    BatchPhase phase = BatchPhase::Running;
    BatchEnd end = BatchEnd::None;
};

struct ProviderProfile {
    QByteArray name = QByteArrayLiteral("openai"); // --provider NAME=<this>
    QString title = QStringLiteral("OpenAI");
    // Where the API is when no URL is configured; empty when each user has their own (Azure's
    // resource, a generic server).
    QUrl defaultUrl = QUrl(QStringLiteral("https://api.openai.com/v1"));
    // The path of the OpenAI-shaped API on the provider's host: a configured URL without a path
    // gets it ("https://r.openai.azure.com" → ".../openai/v1").
    QByteArray pathPrefix = QByteArrayLiteral("/v1");
    // How the key goes: "<authHeader>: <authPrefix><key>".
    QByteArray authHeader = QByteArrayLiteral("Authorization");
    QByteArray authPrefix = QByteArrayLiteral("Bearer ");
    QByteArray keyEnvironment = QByteArrayLiteral("OPENAI_API_KEY"); // the key's default variable
    QByteArray filePurpose = QByteArrayLiteral("batch");             // the upload's purpose field
    // Input lines name their method and URL ({custom_id, method, url, body}); Together's are
    // {custom_id, body}.
    bool linesCarryMethodAndUrl = true;
    // How its statuses are spelled: OpenAI's words (any case: Together writes them in capitals)
    // and these besides (Gemini's BATCH_STATE_* words).
    bool upperCaseStatuses = false;
    QList<StatusWord> extraStatusWords;
    // Limits of one batch input file.
    int maxRequests = 50'000;
    qint64 maxBytes = 200'000'000;
    // The completion windows it accepts; the proxy asks for the first.
    QList<QByteArray> completionWindows{QByteArrayLiteral("24h")};
    // The endpoints it batches; the proxy relays the others to it (full price), never batches
    // them.
    QList<QByteArray> batchedEndpoints;
    int discountPercent = 50; // off the synchronous price
    // Anthropic's Messages API and Message Batches (AnthropicProvider), not OpenAI's shape.
    bool messagesApi = false;
    ExpiryBehaviour expiry = ExpiryBehaviour::PartialResults;
    std::chrono::hours expiresAfter{24}; // when expiry is not Never
    // Whether a batch at this provider may carry this endpoint.
    bool batches(QByteArrayView endpoint) const;
    // `url` as this provider's base URL: its path prefix added when the URL has no path.
    QUrl baseUrlFor(const QUrl &url) const;
    // The provider's status word normalised (nullopt: a word it does not use).
    std::optional<std::pair<BatchPhase, BatchEnd>> status(QByteArrayView word) const;
};

// Every profile of the OpenAI family: openai, azure, gemini, groq, together, generic (in that
// order).
const QList<ProviderProfile> &providerProfiles();
// Anthropic's (messagesApi): its own API family, spoken by AnthropicProvider.
const ProviderProfile &anthropicProfile();
// The profile of that name (either family), or nullptr.
const ProviderProfile *providerProfile(QByteArrayView name);
// The names, joined for messages ("openai, azure, ..., generic, anthropic").
QString providerProfileNames();

// The provider every request goes to unless routing rules say otherwise: --upstream with
// OPENAI_API_KEY, as before there were several.
inline constexpr char DefaultProviderName[] = "openai";

} // namespace llmproxy
