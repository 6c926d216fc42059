// SPDX-License-Identifier: GPL-3.0-or-later
#include "provider/providerprofile.h"

namespace llmproxy {

namespace {

using namespace std::chrono_literals;

QList<QByteArray> endpoints(std::initializer_list<const char *> paths) {
    QList<QByteArray> out;
    for (const char *path : paths)
        out.append(QByteArray(path));
    return out;
}

QList<ProviderProfile> makeProfiles() {
    QList<ProviderProfile> profiles;

    // OpenAI (§1): everything the proxy batches; 50,000 requests and 200 MB per file; only
    // "24h"; expired batches keep their finished lines.
    ProviderProfile openAi;
    openAi.batchedEndpoints = endpoints({"/v1/chat/completions", "/v1/embeddings",
                                         "/v1/completions", "/v1/responses", "/v1/moderations"});
    profiles.append(openAi);

    // Azure OpenAI, v1 API (§4.1): https://{resource}.openai.azure.com/openai/v1, "api-key"
    // header, model = the Global Batch deployment's name, 100,000 requests and 200 MB per file,
    // "24h" only, chat completions and responses, jobs never expire.
    ProviderProfile azure;
    azure.name = QByteArrayLiteral("azure");
    azure.title = QStringLiteral("Azure OpenAI");
    azure.defaultUrl = QUrl();
    azure.pathPrefix = QByteArrayLiteral("/openai/v1");
    azure.authHeader = QByteArrayLiteral("api-key");
    azure.authPrefix = QByteArray();
    azure.keyEnvironment = QByteArrayLiteral("AZURE_OPENAI_API_KEY");
    azure.maxRequests = 100'000;
    azure.batchedEndpoints = endpoints({"/v1/chat/completions", "/v1/responses"});
    azure.expiry = ExpiryBehaviour::Never;
    profiles.append(azure);

    // Gemini through its OpenAI compatibility layer (§3.1): .../v1beta/openai/, a Gemini key as
    // Bearer, chat completions, jobs in Gemini's states, expired after 48 h with no results.
    ProviderProfile gemini;
    gemini.name = QByteArrayLiteral("gemini");
    gemini.title = QStringLiteral("Gemini (OpenAI compatibility)");
    gemini.defaultUrl =
        QUrl(QStringLiteral("https://generativelanguage.googleapis.com/v1beta/openai"));
    gemini.pathPrefix = QByteArrayLiteral("/v1beta/openai");
    gemini.keyEnvironment = QByteArrayLiteral("GEMINI_API_KEY");
    gemini.upperCaseStatuses = true;
    for (const char *prefix : {"BATCH_STATE_", "JOB_STATE_"}) {
        const QByteArray p(prefix);
        gemini.extraStatusWords += {
            {p + "PENDING", BatchPhase::Validating, BatchEnd::None},
            {p + "QUEUED", BatchPhase::Validating, BatchEnd::None},
            {p + "RUNNING", BatchPhase::Running, BatchEnd::None},
            {p + "CANCELLING", BatchPhase::Cancelling, BatchEnd::None},
            {p + "SUCCEEDED", BatchPhase::Ended, BatchEnd::Completed},
            {p + "FAILED", BatchPhase::Ended, BatchEnd::Failed},
            {p + "CANCELLED", BatchPhase::Ended, BatchEnd::Cancelled},
            {p + "EXPIRED", BatchPhase::Ended, BatchEnd::Expired},
        };
    }
    gemini.maxBytes = 2'000'000'000; // a JSONL input file is at most 2 GB
    gemini.batchedEndpoints = endpoints({"/v1/chat/completions"});
    gemini.expiry = ExpiryBehaviour::NoResults;
    gemini.expiresAfter = 48h;
    profiles.append(gemini);

    // Groq (§4.2): /openai/v1, files of at most 100 MB, windows from 24h to 7d, chat only.
    ProviderProfile groq;
    groq.name = QByteArrayLiteral("groq");
    groq.title = QStringLiteral("Groq");
    groq.defaultUrl = QUrl(QStringLiteral("https://api.groq.com/openai/v1"));
    groq.pathPrefix = QByteArrayLiteral("/openai/v1");
    groq.keyEnvironment = QByteArrayLiteral("GROQ_API_KEY");
    groq.maxBytes = 100'000'000;
    groq.completionWindows = endpoints({"24h", "7d"});
    groq.batchedEndpoints = endpoints({"/v1/chat/completions"});
    profiles.append(groq);

    // Together (§4.2): /v1, purpose "batch-api", {custom_id, body} lines, UPPERCASE statuses,
    // create wraps the job; 50,000 requests and 100 MB per file, 24 h best effort.
    ProviderProfile together;
    together.name = QByteArrayLiteral("together");
    together.title = QStringLiteral("Together AI");
    together.defaultUrl = QUrl(QStringLiteral("https://api.together.xyz/v1"));
    together.keyEnvironment = QByteArrayLiteral("TOGETHER_API_KEY");
    together.filePurpose = QByteArrayLiteral("batch-api");
    together.linesCarryMethodAndUrl = false;
    together.upperCaseStatuses = true;
    together.maxBytes = 100'000'000;
    // The reference names no endpoint list for Together [U]: chat completions, completions and
    // embeddings, as its OpenAI-compatible API serves them.
    together.batchedEndpoints =
        endpoints({"/v1/chat/completions", "/v1/embeddings", "/v1/completions"});
    profiles.append(together);

    // Any other server with OpenAI's Files + Batches API (xAI, Cerebras, Novita, Nebius, a local
    // one): OpenAI's shape and limits, at the URL the user gives.
    ProviderProfile generic;
    generic.name = QByteArrayLiteral("generic");
    generic.title = QStringLiteral("OpenAI-compatible");
    generic.defaultUrl = QUrl();
    generic.batchedEndpoints =
        endpoints({"/v1/chat/completions", "/v1/embeddings", "/v1/completions"});
    profiles.append(generic);
    return profiles;
}

ProviderProfile makeAnthropicProfile() {
    // Anthropic's Message Batches (§2), spoken by AnthropicProvider rather than by the OpenAI
    // client: /v1/messages only, requests inline in the create call (100,000 requests or 256 MB),
    // x-api-key, expired after 24 h with the finished requests' results.
    ProviderProfile anthropic;
    anthropic.name = QByteArrayLiteral("anthropic");
    anthropic.title = QStringLiteral("Anthropic");
    anthropic.defaultUrl = QUrl(QStringLiteral("https://api.anthropic.com/v1"));
    anthropic.authHeader = QByteArrayLiteral("x-api-key");
    anthropic.authPrefix = QByteArray();
    anthropic.keyEnvironment = QByteArrayLiteral("ANTHROPIC_API_KEY");
    anthropic.filePurpose = QByteArray();
    anthropic.maxRequests = 100'000;
    anthropic.maxBytes = 256LL * 1024 * 1024;
    anthropic.batchedEndpoints = endpoints({"/v1/messages"});
    anthropic.messagesApi = true;
    return anthropic;
}

} // namespace

bool ProviderProfile::batches(QByteArrayView endpoint) const {
    for (const QByteArray &path : batchedEndpoints) {
        if (path == endpoint)
            return true;
    }
    return false;
}

QUrl ProviderProfile::baseUrlFor(const QUrl &url) const {
    QString path = url.path(QUrl::FullyEncoded);
    while (path.endsWith(u'/'))
        path.chop(1);
    QUrl out = url;
    out.setPath(path.isEmpty() ? QString::fromLatin1(pathPrefix) : path, QUrl::StrictMode);
    return out;
}

std::optional<std::pair<BatchPhase, BatchEnd>> ProviderProfile::status(QByteArrayView word) const {
    for (const StatusWord &extra : extraStatusWords) {
        if (QLatin1StringView(word).compare(QLatin1StringView(extra.word), Qt::CaseInsensitive) ==
            0)
            return std::pair{extra.phase, extra.end};
    }
    struct Entry {
        const char *word;
        BatchPhase phase;
        BatchEnd end;
    };
    static constexpr Entry Words[] = {
        {"validating", BatchPhase::Validating, BatchEnd::None},
        {"in_progress", BatchPhase::Running, BatchEnd::None},
        {"finalizing", BatchPhase::Finalizing, BatchEnd::None},
        {"cancelling", BatchPhase::Cancelling, BatchEnd::None},
        {"completed", BatchPhase::Ended, BatchEnd::Completed},
        {"failed", BatchPhase::Ended, BatchEnd::Failed},
        {"expired", BatchPhase::Ended, BatchEnd::Expired},
        {"cancelled", BatchPhase::Ended, BatchEnd::Cancelled},
    };
    for (const Entry &entry : Words) {
        if (QLatin1StringView(word).compare(QLatin1StringView(entry.word), Qt::CaseInsensitive) ==
            0)
            return std::pair{entry.phase, entry.end};
    }
    return std::nullopt;
}

const QList<ProviderProfile> &providerProfiles() {
    static const QList<ProviderProfile> profiles = makeProfiles();
    return profiles;
}

const ProviderProfile &anthropicProfile() {
    static const ProviderProfile profile = makeAnthropicProfile();
    return profile;
}

const ProviderProfile *providerProfile(QByteArrayView name) {
    for (const ProviderProfile &profile : providerProfiles()) {
        if (profile.name == name)
            return &profile;
    }
    if (anthropicProfile().name == name)
        return &anthropicProfile();
    return nullptr;
}

QString providerProfileNames() {
    QStringList names;
    for (const ProviderProfile &profile : providerProfiles())
        names.append(QString::fromLatin1(profile.name));
    names.append(QString::fromLatin1(anthropicProfile().name));
    return names.join(QStringLiteral(", "));
}

} // namespace llmproxy
