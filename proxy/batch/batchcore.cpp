// SPDX-License-Identifier: GPL-3.0-or-later
#include "batch/batchcore.h"

#include "api/json.h"
#include "api/jsonl.h"
#include "api/logging.h"
#include "batch/batchjob.h"
#include "provider/providerprofile.h"
#include "queue/store.h"
#include "stats/stats.h"

#include <QCryptographicHash>
#include <QPointer>
#include <QUuid>

#include <algorithm>
#include <charconv>
#include <limits>

using namespace std::chrono_literals;

namespace llmproxy {

namespace {
constexpr char CustomIdPrefix[] = "lp_";

// A batch names at most this many of its callers, in alphabetical order: "alice, bob, carol +".
// The list is gathered from its first CallersKept distinct ones (the tokens file is small).
constexpr qsizetype CallersShown = 3;
constexpr qsizetype CallersKept = 64;

QByteArray callerList(QList<QByteArray> callers) {
    std::sort(callers.begin(), callers.end());
    QByteArray out;
    for (qsizetype i = 0; i < std::min(callers.size(), CallersShown); ++i)
        out += (i ? QByteArrayLiteral(", ") : QByteArray()) + callers.at(i);
    if (callers.size() > CallersShown)
        out += QByteArrayLiteral(" +"); // and more: which ones is in /usage by caller
    return out;
}

// What makes two requests "the same" for adoption: same caller, key, organization, project and
// endpoint, streaming or not, and the same body — or the same Idempotency-Key, which then
// decides instead (and a different body with it is refused: idempotencyBodyHash).
QByteArray dedupeKey(const BatchRequest &request) {
    QCryptographicHash hash(QCryptographicHash::Sha256);
    if (request.streaming) // without it, the hash is what it always was (stored ones still match)
        hash.addData("stream:");
    if (!request.caller.isEmpty()) { // without tokens, the hash is what it always was
        hash.addData("caller:");
        hash.addData(QByteArray::number(request.caller.size()));
        hash.addData(":");
        hash.addData(request.caller);
    }
    for (const QByteArray &part : {request.group.keyHash, request.credentials.organization,
                                   request.credentials.project, request.group.endpoint}) {
        hash.addData(QByteArray::number(part.size()));
        hash.addData(":");
        hash.addData(part);
    }
    // Another provider's request is another request; the default provider's hash is what it
    // was before there were several.
    if (!request.group.provider.isEmpty() && request.group.provider != DefaultProviderName) {
        hash.addData("provider:");
        hash.addData(request.group.provider);
    }
    if (!request.idempotencyKey.isEmpty()) {
        hash.addData("idempotency-key:");
        hash.addData(request.idempotencyKey);
    } else {
        hash.addData("body:");
        hash.addData(request.body);
    }
    return hash.result();
}

// What an Idempotency-Key request's body must match for a retry to adopt it (empty without a
// key: the body is in the dedupe key then).
QByteArray idempotencyBodyHash(const BatchRequest &request) {
    if (request.idempotencyKey.isEmpty())
        return {};
    return QCryptographicHash::hash(request.body, QCryptographicHash::Sha256);
}

// The size of a request's input line (the provider's encodeLine()), without making it: the
// body goes in unchanged in length.
qint64 inputLineSize(const Provider &provider, quint64 requestId, const QByteArray &endpoint,
                     qsizetype bodySize) {
    return provider.lineOverhead(customIdFor(requestId), endpoint) + bodySize;
}

QByteArray encodeHeaders(const HttpAnswer &answer) {
    QByteArray out = QByteArrayLiteral("content-type: ") + answer.contentType + '\n';
    for (const auto &[name, value] : answer.headers)
        out += name + QByteArrayLiteral(": ") + value + '\n';
    return out;
}

// A synchronous call's answer as the provider gave it: status, type, the headers worth passing
// on and the body, byte for byte.
HttpAnswer providerAnswer(SyncAnswer &&value) {
    HttpAnswer answer;
    answer.status = value.httpStatus;
    if (!value.contentType.isEmpty())
        answer.contentType = std::move(value.contentType);
    for (auto &header : value.headers)
        answer.headers.append(std::move(header));
    answer.body = std::move(value.body);
    answer.synthesized = false;
    return answer;
}

// An answer as stored (encodeHeaders()): a result kept for adoption, or the answer cache's.
HttpAnswer decodeAnswer(int status, const QByteArray &headers, const QByteArray &body,
                        bool synthesized) {
    HttpAnswer answer;
    answer.status = status;
    answer.body = body;
    answer.synthesized = synthesized;
    answer.contentType.clear();
    for (const QByteArray &line : headers.split('\n')) {
        const qsizetype colon = line.indexOf(": ");
        if (colon <= 0)
            continue;
        const QByteArray name = line.left(colon);
        const QByteArray value = line.mid(colon + 2);
        if (name == "content-type")
            answer.contentType = value;
        else
            answer.headers.emplaceBack(name, value);
    }
    return answer;
}

HttpAnswer decodeAnswer(const StoredRequest &stored) {
    return decodeAnswer(stored.resultStatus, stored.resultHeaders, stored.resultBody,
                        stored.resultSynthesized);
}

// An answer to account for: what a provider's answer says it used (only its own successful
// answers carry usage; the proxy's are errors), with who asked what and how long it took.
accounting::AccountedRequest accountedAnswer(accounting::Route route, const GroupKey &group,
                                             const QByteArray &caller, bool streamed,
                                             const HttpAnswer &answer, qint64 answeredAtMs,
                                             double seconds) {
    accounting::AccountedRequest accounted;
    accounted.route = route;
    accounted.endpoint = group.endpoint;
    accounted.model = group.model;
    accounted.caller = caller;
    accounted.httpStatus = answer.status;
    accounted.provider = group.provider;
    accounted.streamed = streamed;
    if (!answer.synthesized && answer.status >= 200 && answer.status < 300)
        accounted.usage = group.endpoint == AnthropicMessagesPath
                              ? anthropicUsageFromAnswer(answer.body)
                              : usageFromAnswer(answer.body);
    accounted.answeredAtMs = answeredAtMs;
    accounted.seconds = seconds;
    return accounted;
}
} // namespace

QByteArray customIdFor(quint64 requestId) {
    return QByteArrayLiteral("lp_") + QByteArray::number(requestId, 36);
}

std::optional<quint64> requestIdFromCustomId(QByteArrayView customId) {
    if (!customId.startsWith(CustomIdPrefix))
        return std::nullopt;
    const QByteArrayView digits = customId.sliced(sizeof(CustomIdPrefix) - 1);
    if (digits.isEmpty() || digits.size() > 13)
        return std::nullopt;
    quint64 value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 36);
    if (ec != std::errc() || end != digits.data() + digits.size())
        return std::nullopt;
    // Only the canonical spelling (lower case, no leading zeros) maps back.
    if (customIdFor(value) != customId)
        return std::nullopt;
    return value;
}

BatchCore::BatchCore(Provider *provider, const Clock *clock, Stats *stats, Store *store,
                     const CoreSettings &settings, QObject *parent)
    : QObject(parent)
    , m_clock(clock)
    , m_stats(stats)
    , m_store(store)
    , m_settings(settings)
    , m_batcher(settings.limits) {
    m_budget.setLimits(m_settings.queueLimits, m_settings.limits);
    m_providers.insert(QByteArray(DefaultProviderName), provider);
    m_timer.setSingleShot(true);
    m_timer.setTimerType(Qt::PreciseTimer);
    connect(&m_timer, &QTimer::timeout, this, &BatchCore::onTimer);
    // Group commit: requests accepted within a few milliseconds share one transaction.
    m_commitTimer.setSingleShot(true);
    m_commitTimer.setInterval(5ms);
    connect(&m_commitTimer, &QTimer::timeout, this, &BatchCore::commit);
    m_purgeTimer.setInterval(std::min<std::chrono::milliseconds>(m_settings.resultTtl / 4, 1min));
    connect(&m_purgeTimer, &QTimer::timeout, this, &BatchCore::purge);
    m_purgeTimer.start();
    m_probeTimer.setSingleShot(true);
    m_probeTimer.setInterval(1s);
    connect(&m_probeTimer, &QTimer::timeout, this, &BatchCore::probeStore);
    m_settings.pollInterval = timerInterval(m_settings.pollInterval);
    if (m_store)
        m_nextRequestId = m_store->nextRequestId();
    dropCached(m_cache.setMaxBytes(m_settings.cacheMaxBytes));
    if (!m_store && m_settings.cacheWindow)
        qCWarning(lcQueue) << "the answer cache keeps its answers in the store: it is off "
                              "without one (--in-memory)";
}

BatchCore::~BatchCore() {
    if (m_store)
        m_store->commit();
}

void BatchCore::setSettings(const CoreSettings &settings) {
    const bool keyChanged = settings.configuredKey != m_settings.configuredKey;
    m_settings = settings;
    m_settings.pollInterval = timerInterval(m_settings.pollInterval);
    m_batcher.setLimits(settings.limits);
    m_budget.setLimits(m_settings.queueLimits, m_settings.limits);
    m_purgeTimer.setInterval(std::min<std::chrono::milliseconds>(m_settings.resultTtl / 4, 1min));
    dropCached(m_cache.setMaxBytes(m_settings.cacheMaxBytes));
    if (!cacheOn() && m_cache.size() > 0) {
        m_cache.clear();
        if (m_store)
            m_store->clearCachedAnswers();
        scheduleCommit();
    }
    rearmTimer();
    // Batches already out follow a new poll interval or grace period from their next wait.
    const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
    for (BatchJob *job : jobs) {
        // Batches made with the configured key go on with the new one (a key removed while
        // they run: they finish with the one they have).
        if (keyChanged && !m_settings.configuredKey.isEmpty() &&
            job->group().keyHash == ConfiguredKeyHash)
            job->setCredentials(credentialsFor(job->group()));
        job->settingsChanged(m_settings.pollInterval);
    }
    // A limit raised or removed: batches that waited for room may go now.
    startAdmitted(m_budget.admitWaiting());
    updateGauges();
}

void BatchCore::commit() {
    commitNow();
}

bool BatchCore::commitNow() {
    m_commitTimer.stop();
    if (!m_store)
        return true;
    if (!m_store->commit()) {
        storeFailed();
        return false;
    }
    m_uncommitted.clear();
    return true;
}

namespace {
HttpAnswer storeUnavailableAnswer() {
    HttpAnswer answer = errorAnswer(
        503,
        QStringLiteral("llm-proxy cannot write to its store (is the disk full or the database "
                       "read-only?), so it accepts no new requests until it can; retry shortly"),
        ErrorType::Server, "store_unavailable");
    answer.headers.emplaceBack("retry-after", "2");
    answer.headers.emplaceBack("x-should-retry", "true");
    return answer;
}
} // namespace

void BatchCore::storeFailed() {
    if (m_storeWritable)
        qCCritical(lcQueue) << "the store cannot be written: new requests get 503 until it can";
    m_storeWritable = false;
    // Requests whose acceptance was not stored are not kept (a crash would lose them while
    // they are paid for): their clients hear it now, unless they are in a batch already.
    const QList<quint64> lost = std::exchange(m_uncommitted, {});
    for (quint64 id : lost) {
        const auto it = m_requests.find(id);
        if (it == m_requests.end() || it->second.state != State::Queued)
            continue;
        if (!m_batcher.remove(it->second.group, id))
            continue;
        const auto tickets = it->second.tickets;
        eraseRequest(id);
        for (quint64 ticket : tickets)
            answerTicket(ticket, storeUnavailableAnswer());
    }
    rearmTimer();
    updateGauges();
    if (!m_probeTimer.isActive())
        m_probeTimer.start();
}

void BatchCore::probeStore() {
    if (m_store && m_store->probe()) {
        qCInfo(lcQueue) << "the store can be written again: accepting requests";
        m_storeWritable = true;
        m_uncommitted.clear();
        return;
    }
    m_probeTimer.start();
}

void BatchCore::scheduleCommit() {
    if (m_store && !m_commitTimer.isActive())
        m_commitTimer.start();
}

void BatchCore::restore() {
    if (!m_store)
        return;
    const qint64 wallNow = m_clock->wallMs();
    const SteadyTime steadyNow = m_clock->now();
    auto steadyFor = [&](qint64 ms) {
        return steadyNow - std::chrono::milliseconds(std::max<qint64>(0, wallNow - ms));
    };
    // Older versions stored the configured key like a client's: its rows name it now.
    if (!m_settings.configuredKey.isEmpty())
        m_store->markConfiguredKey(keyHashOf(m_settings.configuredKey), ConfiguredKeyHash);
    QHash<QByteArray, QList<quint64>> byBatch;
    const QList<StoredRequest> stored = m_store->loadRequests();
    for (const StoredRequest &s : stored) {
        Request r;
        r.group = acquireGroup(
            GroupKey{s.keyHash, s.organization, s.project, s.endpoint, s.model, s.provider});
        r.dedupe = s.dedupe;
        r.bodyHash = s.bodyHash;
        r.arrival = steadyFor(s.arrivedMs);
        r.caller = internCaller(s.caller);
        r.embeddingInputs = s.embeddingInputs;
        switch (s.state) {
        case StoredRequest::State::Queued: // accepted, never sent: its client is gone
            r.state = State::Unclaimed;
            r.unclaimedSince = r.arrival;
            ++m_unclaimed;
            break;
        case StoredRequest::State::Submitted:
            r.state = State::Submitted;
            byBatch[s.batchLocalId].append(s.id);
            ++m_submitted;
            break;
        case StoredRequest::State::Answered:
            r.state = State::Unclaimed;
            r.hasResult = true;
            r.unclaimedSince = steadyFor(s.resultMs);
            ++m_unclaimed;
            break;
        }
        m_byDedupe.insert(r.dedupe, s.id);
        m_requests.emplace(s.id, std::move(r));
        m_nextRequestId = std::max(m_nextRequestId, s.id + 1);
    }
    // The history: the batches that ended before, with their tokens and cost.
    m_history = m_store->loadFinishedBatches(HistorySize);
    const QList<StoredBatch> batches = m_store->loadBatches();
    int resumed = 0;
    for (const StoredBatch &batch : batches) {
        const QList<quint64> ids = byBatch.take(batch.localId);
        const GroupKey group{batch.keyHash,  batch.organization, batch.project,
                             batch.endpoint, batch.model,        batch.provider};
        Provider *provider = providerFor(group);
        if (!provider && batch.phase >= StoredBatch::Phase::Creating) {
            // Made at a provider that is no longer configured: nothing is resumed, cancelled or
            // forgotten. The batch stays in the store for when the provider is configured again;
            // a client that comes back for one of its requests is told why it cannot be answered.
            qCWarning(lcBatch).noquote()
                << "batch" << batch.localId << "(" << batch.batchId << ") was made at provider"
                << batch.provider << "which is not configured: its" << ids.size()
                << "requests wait until it is";
            for (quint64 id : ids)
                m_unroutable.insert(id, batch.provider);
            // Shown (dashboard, history) with why it is not going on.
            BatchProgress shown;
            shown.localId = batch.localId;
            shown.batchId = batch.batchId;
            shown.endpoint = batch.endpoint;
            shown.model = batch.model;
            shown.provider = batch.provider;
            shown.status = QByteArrayLiteral("provider_missing");
            shown.active = false;
            shown.total = batch.requestCount;
            shown.createdAt = QDateTime::fromMSecsSinceEpoch(batch.createdMs, Qt::UTC);
            shown.usage = batch.usage;
            shown.errors.append(QStringLiteral("provider '%1' is not configured: the batch is kept "
                                               "until it is configured again")
                                    .arg(QString::fromUtf8(batch.provider)));
            m_history.append(shown);
            continue;
        }
        if (batch.phase < StoredBatch::Phase::Creating) {
            // Never created upstream, so not paid for: its requests wait for their clients.
            for (quint64 id : ids)
                requeue(id);
            if (provider)
                provider->cleanUp(credentialsFor(group), batch.providerState);
            m_store->deleteBatch(batch.localId);
            continue;
        }
        const Credentials credentials = credentialsFor(group);
        rememberKey(group.keyHash, credentials.apiKey); // for its lines that go out again
        // Let in before the restart: it counts against its model's queue while it is there.
        if (batch.phase <= StoredBatch::Phase::Created)
            m_budget.reserve(batch.localId, group, batch.queueTokens);
        auto *job = new BatchJob(this, provider, m_clock, credentials, batch, ids, {},
                                 m_settings.pollInterval, true, this);
        ++m_jobs;
        ++m_batchesStarted;
        ++resumed;
        job->start();
    }
    // Requests that name a batch we no longer have cannot be sent by it: keep them.
    for (auto it = byBatch.cbegin(); it != byBatch.cend(); ++it) {
        for (quint64 id : it.value())
            requeue(id);
    }
    // The answer cache's index; its answers stay on disk. Off: nothing is kept.
    if (cacheOn()) {
        const QList<CachedAnswer> cached = m_store->loadCacheIndex();
        for (const CachedAnswer &entry : cached)
            dropCached(m_cache.insert(entry.key, entry.storedMs, entry.bytes));
        dropCached(m_cache.expire(wallNow - m_settings.cacheWindow->count()));
    } else {
        m_store->clearCachedAnswers();
    }
    // A client's key is kept only while a batch made with it is unfinished.
    m_store->deleteUnusedKeys();
    // /stats' all-time usage starts from what the ledger holds.
    if (m_stats) {
        accounting::LedgerQuery all;
        all.fromMs = 0;
        all.toMs = std::numeric_limits<qint64>::max();
        all.byModel = all.byRoute = all.byEndpoint = all.byCaller = false;
        QString ledgerError;
        if (const auto report = m_store->ledgerReport(all, &ledgerError))
            m_stats->setUsageBeforeStart(report->total());
        else
            qCWarning(lcQueue).noquote() << "cannot read the ledger:" << ledgerError;
    }
    commit();
    qCInfo(lcQueue).noquote() << "restored" << stored.size() << "requests and" << resumed
                              << "batches from" << m_store->path();
    updateGauges();
}

void BatchCore::addProvider(const QByteArray &name, Provider *provider) {
    m_providers.insert(name, provider);
}

Provider *BatchCore::providerFor(const GroupKey &group) const {
    return m_providers.value(group.provider.isEmpty() ? QByteArray(DefaultProviderName)
                                                      : group.provider);
}

QByteArray BatchCore::configuredKeyFor(const QByteArray &provider) const {
    if (provider.isEmpty() || provider == DefaultProviderName)
        return m_settings.configuredKey;
    return m_settings.providerKeys.value(provider);
}

HttpAnswer BatchCore::providerMissingAnswer(const QByteArray &provider) {
    return errorAnswer(503,
                       QStringLiteral("This request belongs to provider '%1', which llm-proxy "
                                      "no longer has configured. Configure it again (--provider "
                                      "%1=PROFILE) and restart to collect its answer.")
                           .arg(QString::fromUtf8(provider)),
                       ErrorType::Server, "provider_not_configured");
}

Credentials BatchCore::credentialsFor(const GroupKey &group) const {
    Credentials credentials;
    if (group.keyHash == ConfiguredKeyHash) {
        credentials.apiKey = configuredKeyFor(group.provider);
    } else {
        credentials.apiKey = m_keys.value(group.keyHash).apiKey;
        if (credentials.apiKey.isEmpty() && m_store)
            credentials.apiKey = m_store->key(group.keyHash);
    }
    if (group.endpoint == AnthropicMessagesPath) {
        // Anthropic keys its calls by version and beta headers (GroupKey keeps them in the
        // organization and project fields).
        if (!group.organization.isEmpty())
            credentials.headers.append(
                {QByteArrayLiteral("anthropic-version"), group.organization});
        if (!group.project.isEmpty())
            credentials.headers.append({QByteArrayLiteral("anthropic-beta"), group.project});
    } else {
        credentials.organization = group.organization;
        credentials.project = group.project;
    }
    return credentials;
}

qsizetype BatchCore::keysInMemory() const {
    return std::count_if(m_keys.cbegin(), m_keys.cend(),
                         [](const KeyUse &use) { return !use.apiKey.isEmpty(); });
}

void BatchCore::rememberKey(const QByteArray &keyHash, const QByteArray &apiKey) {
    if (apiKey.isEmpty() || keyHash == ConfiguredKeyHash)
        return;
    const auto it = m_keys.find(keyHash);
    if (it != m_keys.end() && it->apiKey != apiKey) {
        it->apiKey = apiKey;
        resumeParkedJobs(keyHash);
    }
}

void BatchCore::resumeParkedJobs(const QByteArray &keyHash) {
    const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
    for (BatchJob *job : jobs) {
        if (job->isParked() && job->group().keyHash == keyHash)
            job->setCredentials(credentialsFor(job->group()));
    }
}

void BatchCore::keyRefused(const QByteArray &keyHash) {
    if (keyHash == ConfiguredKeyHash)
        return; // not ours to forget: the user configured it
    if (const auto it = m_keys.find(keyHash); it != m_keys.end())
        it->apiKey.clear();
    if (m_store) {
        m_store->deleteKey(keyHash);
        scheduleCommit();
    }
}

void BatchCore::setAnswerRoute(int frontEnd, QObject *context, AnswerFunction deliver,
                               BatchIdFunction batchKnown) {
    m_answerRoutes.insert(frontEnd, AnswerRoute{QPointer<QObject>(context), std::move(deliver),
                                                std::move(batchKnown)});
}

bool BatchCore::batchHeldElsewhere(const QByteArray &batchId, const BatchJob *asker) const {
    if (batchId.isEmpty())
        return false;
    const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
    const bool running = std::any_of(jobs.cbegin(), jobs.cend(), [&](const BatchJob *job) {
        return job != asker && job->batchId() == batchId;
    });
    return running ||
           std::any_of(m_history.cbegin(), m_history.cend(),
                       [&](const BatchProgress &ended) { return ended.batchId == batchId; });
}

void BatchCore::jobSubmitted(const QByteArray &batchId, const QList<quint64> &requestIds) {
    Q_EMIT batchSubmitted(batchId, int(requestIds.size()));
    for (quint64 id : requestIds) {
        const auto it = m_requests.find(id);
        if (it == m_requests.end() || !it->second.streaming)
            continue;
        for (quint64 ticket : std::as_const(it->second.tickets)) {
            const auto route = m_answerRoutes.constFind(frontEndOf(ticket));
            if (route == m_answerRoutes.cend() || !route->context || !route->batchKnown)
                continue;
            QMetaObject::invokeMethod(route->context.data(), [known = route->batchKnown, ticket,
                                                              batchId] { known(ticket, batchId); });
        }
    }
}

void BatchCore::answerTicket(quint64 ticket, const HttpAnswer &answer) {
    const auto it = m_answerRoutes.constFind(frontEndOf(ticket));
    if (it == m_answerRoutes.cend() || !it->context) {
        qCDebug(lcQueue) << "no front end" << frontEndOf(ticket) << "for an answer: dropped";
        return;
    }
    // Same thread: called now; another I/O thread: queued to it alone.
    QMetaObject::invokeMethod(it->context.data(),
                              [deliver = it->deliver, ticket, answer] { deliver(ticket, answer); });
}

void BatchCore::submit(BatchRequest request) {
    const quint64 ticket = request.id;
    if (m_store && !m_storeWritable) {
        answerTicket(ticket, storeUnavailableAnswer());
        return;
    }
    if (request.group.provider.isEmpty())
        request.group.provider = DefaultProviderName;
    const QByteArray dedupe = dedupeKey(request);
    const QByteArray bodyHash = idempotencyBodyHash(request);
    // A retry of a request nobody waits for any more (or with the same Idempotency-Key)
    // takes that request over instead of being sent again.
    for (auto it = m_byDedupe.constFind(dedupe); it != m_byDedupe.cend() && it.key() == dedupe;
         ++it) {
        const auto found = m_requests.find(it.value());
        if (found == m_requests.end())
            continue;
        if (!request.idempotencyKey.isEmpty() && !found->second.bodyHash.isEmpty() &&
            found->second.bodyHash != bodyHash) {
            // As Stripe does: a key names one request; another body with it is a mistake.
            qCInfo(lcQueue) << "refused an Idempotency-Key reused with another body";
            answerTicket(ticket, errorAnswer(409,
                                             QStringLiteral("This Idempotency-Key was already used "
                                                            "with a different request body. Use a "
                                                            "new key for a new request."),
                                             ErrorType::InvalidRequest, "idempotency_key_reused"));
            return;
        }
        if (!request.idempotencyKey.isEmpty() || found->second.tickets.isEmpty()) {
            rememberKey(request.group.keyHash, request.credentials.apiKey);
            found->second.streaming = request.streaming; // the same (dedupeKey): after a restart
            adopt(found->first, found->second, ticket);
            updateGauges();
            return;
        }
    }

    const QByteArray caller =
        internCaller(request.caller.isEmpty() ? accounting::keyHint(request.credentials.apiKey)
                                              : request.caller);
    // The answer cache keys on the body: an Idempotency-Key names one request instead (its
    // retries adopt it above), so such requests neither use nor fill the cache.
    const bool cacheable = cacheOn() && request.idempotencyKey.isEmpty();
    if (cacheable && request.cacheRead && answerFromCache(request, dedupe, caller))
        return;

    const quint64 id = m_nextRequestId++;
    if (m_store) {
        StoredRequest s;
        s.id = id;
        s.keyHash = request.group.keyHash;
        s.organization = request.group.organization;
        s.project = request.group.project;
        s.endpoint = request.group.endpoint;
        s.model = request.group.model;
        s.provider = request.group.provider;
        s.dedupe = dedupe;
        s.caller = caller;
        s.bodyHash = bodyHash;
        s.body = request.body;
        s.embeddingInputs = request.embeddingInputs;
        s.arrivedMs = m_clock->wallMs();
        if (!m_store->insertRequest(s)) {
            // Not stored, so not accepted: nothing is kept or sent for it.
            answerTicket(ticket, storeUnavailableAnswer());
            storeFailed();
            return;
        }
        m_uncommitted.append(id);
        scheduleCommit();
    }
    Request r;
    r.group = acquireGroup(request.group); // the front end's copies of its strings go
    r.body = request.body;
    r.dedupe = dedupe;
    r.bodyHash = bodyHash;
    r.arrival = request.arrival;
    r.caller = caller;
    r.embeddingInputs = request.embeddingInputs;
    r.streaming = request.streaming;
    r.cacheable = cacheable && request.cacheWrite;
    r.tickets.append(ticket);
    rememberKey(request.group.keyHash, request.credentials.apiKey);
    m_ticketToRequest.emplace(ticket, id);
    m_byDedupe.insert(dedupe, id);
    auto [it, inserted] = m_requests.emplace(id, std::move(r));
    if (wantsFlex(request)) {
        it->second.route = request.route;
        it->second.state = State::Submitted;
        ++m_submitted;
        sendFlex(id, 0);
    } else {
        enqueue(id, it->second);
    }
    rearmTimer();
    updateGauges();
}

bool BatchCore::wantsFlex(const BatchRequest &request) const {
    if (!isFlex(request.route) || m_paused || !providerFor(request.group))
        return false;
    if (m_noFlex.contains(request.group.provider + '\n' + request.group.model))
        return false;
    if (request.routeExact)
        return true; // the user marked this model
    // A prefix rule: only the models the price table gives a flex price (OpenAI's list).
    const accounting::ModelPrices *prices =
        m_prices ? m_prices->find(QString::fromLatin1(request.group.provider),
                                  QString::fromUtf8(request.group.model))
                 : nullptr;
    return prices && prices->flex;
}

void BatchCore::sendFlex(quint64 requestId, int attempt) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end() || it->second.state != State::Submitted)
        return;
    Request &r = it->second;
    Provider *provider = providerFor(r.group);
    const QByteArray body = bodyFor(requestId);
    // The client's body with "service_tier":"flex" in place of any tier it named.
    const std::optional<QByteArray> untiered = json::withoutMembers(body, {"service_tier"});
    const qsizetype open = untiered ? untiered->indexOf('{') : -1;
    if (!provider || open < 0) {
        requeue(requestId);
        return;
    }
    const bool emptyObject = untiered->mid(open + 1).trimmed().startsWith('}');
    const QByteArray flexBody = untiered->left(open + 1) + R"("service_tier":"flex")" +
                                (emptyObject ? "" : ",") + untiered->mid(open + 1);
    if (attempt == 0)
        qCInfo(lcBatch).noquote() << "request" << customIdFor(requestId)
                                  << "goes through flex processing (" << r.group.model << ")";
    const QPointer<BatchCore> self(this);
    provider->sendSynchronousWithin(
        credentialsFor(r.group), r.group.endpoint, flexBody, m_settings.flexTimeout,
        [self, requestId, attempt](ProviderResult<SyncAnswer> result) {
            if (self)
                self->onFlexAnswer(requestId, attempt, std::move(result));
        });
}

namespace {
// The provider's 400/404 says flex is not offered for this model (its error names the
// service_tier parameter, or flex).
bool flexRefusedForModel(const SyncAnswer &answer) {
    if (answer.httpStatus != 400 && answer.httpStatus != 404)
        return false;
    const QByteArray lower = answer.body.toLower();
    return lower.contains("service_tier") || lower.contains("flex");
}
} // namespace

void BatchCore::onFlexAnswer(quint64 requestId, int attempt, ProviderResult<SyncAnswer> result) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end() || it->second.state != State::Submitted)
        return;
    Request &r = it->second;
    const bool answered =
        result.ok() && result.value->httpStatus >= 200 && result.value->httpStatus < 300;
    if (!answered && m_shuttingDown)
        return; // stays in the store, never sent: the next start keeps it for its client
    if (result.ok() && flexRefusedForModel(*result.value)) {
        m_noFlex.insert(r.group.provider + '\n' + r.group.model);
        qCWarning(lcBatch).noquote()
            << "flex processing is not offered for" << r.group.model << "(HTTP"
            << result.value->httpStatus << "): its requests go into batches";
        r.route = ModelRoute::Batch;
        requeue(requestId);
        return;
    }
    // "Not now": 429 (resource unavailable, or a rate limit), 408, 409, 5xx, no answer within
    // the flex timeout. The flex route tries again a few times; then, and on flex-then-batch
    // at once, the batch takes it. Never the standard tier.
    const bool notNow = result.ok() ? result.value->retryable() : true;
    if (notNow) {
        const int status = result.ok() ? result.value->httpStatus : 0;
        if (r.route == ModelRoute::Flex && attempt + 1 < FlexAttempts) {
            const auto delay = BatchJob::backoffDelay(
                attempt, result.ok() ? result.value->retryAfter : result.error.retryAfter);
            qCInfo(lcBatch).noquote()
                << "flex call for" << customIdFor(requestId) << "refused (HTTP" << status
                << ") - trying again in" << delay.count() << "ms";
            QTimer::singleShot(timerInterval(delay), this,
                               [this, requestId, attempt] { sendFlex(requestId, attempt + 1); });
            return;
        }
        qCInfo(lcBatch).noquote() << "flex call for" << customIdFor(requestId) << "refused (HTTP"
                                  << status << "): the request goes into a batch";
        r.route = ModelRoute::Batch;
        requeue(requestId);
        return;
    }
    // The provider's own answer, whatever its status (a 2xx at the flex price, or an error
    // that a batch would not mend), byte for byte.
    HttpAnswer answer = providerAnswer(std::move(*result.value));
    answer.headers.emplaceBack(RouteHeader, "flex");
    recordAnswer(requestId, answer, accounting::Route::Flex);
    commit();
    deliver(requestId, answer, true);
}

void BatchCore::adopt(quint64 id, Request &request, quint64 ticket) {
    ++m_adopted;
    request.tickets.append(ticket);
    m_ticketToRequest.emplace(ticket, id);
    qCInfo(lcQueue).noquote() << "request" << customIdFor(id) << "adopted by a returning client";
    if (const auto unroutable = m_unroutable.constFind(id); unroutable != m_unroutable.cend()) {
        request.tickets.removeOne(ticket);
        m_ticketToRequest.erase(ticket);
        answerTicket(ticket, providerMissingAnswer(*unroutable));
        return;
    }
    if (request.state != State::Unclaimed)
        return; // queued or in a batch: the answer will come to the new client
    --m_unclaimed;
    if (request.hasResult) {
        std::optional<HttpAnswer> answer;
        if (request.memoryResult) {
            answer = *request.memoryResult;
        } else if (m_store) {
            if (const auto stored = m_store->requestWithResult(id))
                answer = decodeAnswer(*stored);
        }
        if (answer) {
            request.state = State::Submitted; // transiently: deliver() settles the counts
            ++m_submitted;
            deliver(id, *answer, true);
            return;
        }
        request.hasResult = false; // lost: send it again
    }
    // Never sent: send it now that somebody wants it.
    request.body = bodyFor(id);
    if (request.body.isEmpty()) {
        const auto tickets = request.tickets;
        eraseRequest(id);
        for (quint64 t : tickets)
            answerTicket(t, errorAnswer(500, QStringLiteral("llm-proxy lost this request"),
                                        ErrorType::Server, "request_lost"));
        return;
    }
    request.state = State::Queued;
    request.arrival = m_clock->now();
    if (m_store)
        m_store->setRequestQueued(id);
    enqueue(id, request);
    rearmTimer();
}

void BatchCore::enqueue(quint64 id, Request &request) {
    const Provider *provider = providerFor(request.group);
    if (!provider) {
        // Kept (in the store too) for when its provider is configured again.
        qCWarning(lcQueue).noquote() << "request" << customIdFor(id) << "is for provider"
                                     << request.group.provider << "which is not configured";
        const auto tickets = std::exchange(request.tickets, {});
        for (quint64 t : tickets) {
            m_ticketToRequest.erase(t);
            answerTicket(t, providerMissingAnswer(request.group.provider));
        }
        if (request.state != State::Unclaimed) {
            request.state = State::Unclaimed;
            request.unclaimedSince = m_clock->now();
            ++m_unclaimed;
        }
        return;
    }
    request.state = State::Queued;
    startBatches(
        m_batcher.add(request.group, id,
                      inputLineSize(*provider, id, request.group.endpoint, request.body.size()),
                      request.embeddingInputs, m_clock->now()));
}

QByteArray BatchCore::lineFor(quint64 requestId, qsizetype *bodyBytes) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return {};
    const QByteArray body = bodyFor(requestId);
    if (body.isEmpty())
        return {};
    if (bodyBytes)
        *bodyBytes = body.size();
    const Provider *provider = providerFor(it->second.group);
    if (!provider)
        return {};
    return provider->encodeLine(customIdFor(requestId), it->second.group.endpoint, body);
}

GroupKey BatchCore::acquireGroup(const GroupKey &group) {
    auto it = m_groups.find(group);
    if (it == m_groups.end())
        it = m_groups.insert(group, 0);
    ++it.value();
    if (group.keyHash != ConfiguredKeyHash)
        ++m_keys[group.keyHash].requests;
    return it.key();
}

void BatchCore::releaseGroup(const GroupKey &group) {
    if (const auto key = m_keys.find(group.keyHash); key != m_keys.end() && --key->requests <= 0)
        m_keys.erase(key);
    const auto it = m_groups.find(group);
    if (it != m_groups.end() && --it.value() <= 0)
        m_groups.erase(it);
}

void BatchCore::cancel(quint64 ticket) {
    const auto t = m_ticketToRequest.find(ticket);
    if (t == m_ticketToRequest.end())
        return;
    const quint64 id = t->second;
    m_ticketToRequest.erase(t);
    const auto it = m_requests.find(id);
    if (it == m_requests.end())
        return;
    Request &r = it->second;
    r.tickets.removeOne(ticket);
    if (!r.tickets.isEmpty() || r.state != State::Queued || m_shuttingDown)
        return; // someone else waits, it is in a batch already, or its client will come back
    bool removed = m_batcher.remove(r.group, id);
    for (Flush &held : m_heldFlushes) { // closed while paused: not sent either
        if (!removed && held.requestIds.removeOne(id)) {
            --m_heldRequests;
            removed = true;
        }
    }
    if (!removed) // waiting for room in its model's queue at the provider
        removed = m_budget.remove(id);
    if (removed) {
        // Not sent yet: it will never be paid for.
        eraseRequest(id);
        scheduleCommit();
        rearmTimer();
        updateGauges();
    }
}

void BatchCore::eraseRequest(quint64 id) {
    const auto it = m_requests.find(id);
    if (it == m_requests.end())
        return;
    Request &r = it->second;
    if (r.state == State::Submitted)
        --m_submitted;
    else if (r.state == State::Unclaimed)
        --m_unclaimed;
    for (quint64 ticket : std::as_const(r.tickets))
        m_ticketToRequest.erase(ticket);
    m_byDedupe.remove(r.dedupe, id);
    releaseGroup(r.group);
    m_requests.erase(it);
    if (m_store)
        m_store->deleteRequest(id);
}

void BatchCore::flushNow() {
    if (m_paused)
        return;
    startBatches(m_batcher.takeAll());
    rearmTimer();
    updateGauges();
}

void BatchCore::setPaused(bool paused) {
    if (m_paused == paused)
        return;
    m_paused = paused;
    qCInfo(lcBatch) << (paused ? "batching paused: requests are held" : "batching resumed");
    if (!paused) {
        m_heldRequests = 0;
        startBatches(std::exchange(m_heldFlushes, {}));
    }
    rearmTimer();
    updateGauges();
}

void BatchCore::onTimer() {
    if (m_paused)
        return;
    startBatches(m_batcher.takeDue(m_clock->now()));
    rearmTimer();
    updateGauges();
}

void BatchCore::startBatches(const QList<Flush> &flushes) {
    if (m_paused) {
        for (const Flush &flush : flushes)
            m_heldRequests += flush.requestIds.size();
        m_heldFlushes.append(flushes);
        return;
    }
    for (const Flush &flush : flushes)
        startBatch(flush);
}

QList<BatchProgress> BatchCore::batchProgress() const {
    QList<BatchProgress> out;
    const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
    for (const BatchJob *job : jobs) {
        if (job->state() != BatchJob::State::Done)
            out.append(job->progress());
    }
    std::sort(out.begin(), out.end(), [](const BatchProgress &a, const BatchProgress &b) {
        return a.createdAt > b.createdAt;
    });
    for (auto it = m_history.crbegin(); it != m_history.crend(); ++it)
        out.append(*it);
    return out;
}

void BatchCore::rearmTimer() {
    const auto deadline = m_batcher.nextDeadline();
    if (!deadline || m_paused) {
        m_timer.stop();
        return;
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*deadline - m_clock->now());
    m_timer.start(timerInterval(wait));
}

void BatchCore::startBatch(const Flush &flush) {
    if (flush.requestIds.isEmpty())
        return;
    if (m_budget.limited(flush.group))
        return offerBatch(flush.group, flush.requestIds, 0);
    startJob(flush.group, flush.requestIds, 0);
}

void BatchCore::offerBatch(const GroupKey &group, const QList<quint64> &ids, int attempts) {
    QueueBudget::Pending pending{group, {}, attempts};
    pending.items.reserve(ids.size());
    const Provider *provider = providerFor(group);
    for (quint64 id : ids) {
        const auto it = m_requests.find(id);
        if (it == m_requests.end())
            continue;
        const qsizetype size =
            it->second.body.isEmpty() ? bodyFor(id).size() : it->second.body.size();
        pending.items.append(
            {id, estimatedQueueTokens(size),
             provider ? inputLineSize(*provider, id, group.endpoint, size) : qint64(size)});
    }
    const qsizetype waitingBefore = m_budget.waitingRequests();
    startAdmitted(m_budget.offer(std::move(pending)));
    if (const qsizetype held = m_budget.waitingRequests() - waitingBefore; held > 0)
        qCInfo(lcBatch).noquote()
            << QStringLiteral("%1 requests for %2 wait for room in its queue at %3 (about %4 "
                              "tokens of ours there, limit %5)")
                   .arg(held)
                   .arg(QString::fromUtf8(group.model),
                        QString::fromUtf8(group.provider.isEmpty() ? QByteArray(DefaultProviderName)
                                                                   : group.provider))
                   .arg(m_budget.enqueued(group))
                   .arg(m_budget.limits().limitFor(group.model).value_or(0));
}

void BatchCore::startAdmitted(const QList<QueueBudget::Pending> &admitted) {
    for (const QueueBudget::Pending &batch : admitted) {
        if (m_paused) { // held like any batch closed while paused (offered again on resume)
            m_heldFlushes.append(Flush{batch.group, batch.requestIds(), batch.bytes()});
            m_heldRequests += batch.items.size();
            continue;
        }
        startJob(batch.group, batch.requestIds(), batch.attempts);
    }
}

void BatchCore::jobLeftQueue(BatchJob *job) {
    startAdmitted(m_budget.release(job->localId()));
    updateGauges();
}

void BatchCore::startJob(const GroupKey &group, const QList<quint64> &ids, int attempts) {
    StoredBatch record;
    record.localId = QUuid::createUuid().toByteArray(QUuid::Id128);
    record.keyHash = group.keyHash;
    record.organization = group.organization;
    record.project = group.project;
    record.endpoint = group.endpoint;
    record.model = group.model;
    record.provider = group.provider.isEmpty() ? QByteArray(DefaultProviderName) : group.provider;
    record.createdMs = m_clock->wallMs();
    record.attempts = attempts;
    record.requestCount = int(ids.size());
    const Credentials credentials = credentialsFor(group);
    record.keyHint = accounting::keyHint(credentials.apiKey);
    QByteArray jsonl;
    QList<quint64> included;
    QList<QByteArray> callers; // token names
    for (quint64 id : ids) {
        const auto it = m_requests.find(id);
        if (it == m_requests.end())
            continue;
        qsizetype bodyBytes = 0;
        const QByteArray line = lineFor(id, &bodyBytes);
        if (line.isEmpty())
            continue;
        jsonl += line;
        included.append(id);
        record.queueTokens += estimatedQueueTokens(bodyBytes);
        Request &r = it->second;
        // A request without a token is counted for its key's hint: that is not a name.
        if (!r.caller.isEmpty() && r.caller != record.keyHint && callers.size() < CallersKept &&
            !callers.contains(r.caller))
            callers.append(r.caller);
        if (r.state == State::Unclaimed)
            --m_unclaimed;
        if (r.state != State::Submitted)
            ++m_submitted;
        r.state = State::Submitted;
        if (m_store)
            r.body = QByteArray(); // the batch file has it now, and the store keeps it
    }
    if (included.isEmpty())
        return;
    record.requestCount = int(included.size());
    record.callers = callerList(callers);
    if (m_store) {
        // A client's own key is stored while a batch made with it is unfinished (a restart
        // resumes the batch with it); the configured key never is.
        if (group.keyHash != ConfiguredKeyHash && !credentials.apiKey.isEmpty())
            m_store->saveKey(group.keyHash, credentials.apiKey);
        m_store->setRequestsSubmitted(included, record.localId);
        m_store->saveBatch(record);
        scheduleCommit();
    }
    m_budget.reserve(record.localId, group, record.queueTokens);
    auto *job = new BatchJob(this, providerFor(group), m_clock, credentials, record, included,
                             std::move(jsonl), m_settings.pollInterval, false, this);
    ++m_jobs;
    ++m_batchesStarted;
    job->start();
}

void BatchCore::splitBatch(BatchJob *job, const StoredBatch &record,
                           const QList<quint64> &requestIds) {
    Q_UNUSED(job);
    const GroupKey group{record.keyHash,  record.organization, record.project,
                         record.endpoint, record.model,        record.provider};
    const qsizetype half = requestIds.size() / 2;
    qCInfo(lcBatch).noquote() << "splitting batch" << record.localId << "into two of" << half
                              << "and" << requestIds.size() - half << "requests";
    for (const QList<quint64> &part : {requestIds.first(half), requestIds.sliced(half)}) {
        if (m_budget.limited(group))
            offerBatch(group, part, record.attempts);
        else
            startJob(group, part, record.attempts);
    }
}

bool BatchCore::hasWaitingClient(quint64 requestId) const {
    const auto it = m_requests.find(requestId);
    return it != m_requests.end() && !it->second.tickets.isEmpty();
}

QByteArray BatchCore::bodyFor(quint64 requestId) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return {};
    if (!it->second.body.isEmpty())
        return it->second.body;
    return m_store ? m_store->requestBody(requestId) : QByteArray();
}

void BatchCore::sendSynchronousAttempt(quint64 requestId, const Credentials &credentials,
                                       int attempt) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return;
    if (it->second.tickets.isEmpty()) {
        // Its clients left before it was sent: keep it for one that comes back, pay nothing.
        requeue(requestId);
        return;
    }
    const QByteArray body = bodyFor(requestId);
    if (body.isEmpty()) {
        deliver(requestId,
                errorAnswer(500, QStringLiteral("llm-proxy lost this request"), ErrorType::Server,
                            "request_lost"),
                false);
        return;
    }
    if (attempt == 0)
        qCInfo(lcBatch).noquote() << "request" << customIdFor(requestId)
                                  << "goes through the synchronous API (full price)";
    Provider *provider = providerFor(it->second.group);
    if (!provider) {
        deliver(requestId, providerMissingAnswer(it->second.group.provider), false);
        return;
    }
    const QPointer<BatchCore> self(this);
    provider->sendSynchronous(
        credentials, it->second.group.endpoint, body,
        [self, requestId, credentials, attempt](ProviderResult<SyncAnswer> result) {
            if (self)
                self->onSynchronousAnswer(requestId, credentials, attempt, std::move(result));
        });
}

void BatchCore::onSynchronousAnswer(quint64 requestId, const Credentials &credentials, int attempt,
                                    ProviderResult<SyncAnswer> result) {
    if (!m_requests.count(requestId))
        return;
    const bool transient = result.ok() ? result.value->retryable() : result.error.retryable();
    if (transient && m_shuttingDown)
        return; // stays in the store: the next start keeps it for its client's retry
    if (transient && attempt + 1 < BatchJob::MaxAttempts) {
        const auto delay = BatchJob::backoffDelay(attempt, result.ok() ? result.value->retryAfter
                                                                       : result.error.retryAfter);
        qCWarning(lcBatch).noquote()
            << "synchronous call for" << customIdFor(requestId) << "failed (HTTP"
            << (result.ok() ? result.value->httpStatus : result.error.httpStatus)
            << ") - retrying in" << delay.count() << "ms";
        QTimer::singleShot(timerInterval(delay), this, [this, requestId, credentials, attempt] {
            sendSynchronousAttempt(requestId, credentials, attempt + 1);
        });
        return;
    }
    HttpAnswer answer;
    if (result.ok()) {
        // The provider's own answer, whatever its status, byte for byte.
        answer = providerAnswer(std::move(*result.value));
        if (m_stats)
            m_stats->recordSyncFallback();
    } else {
        answer = errorAnswer(502,
                             QStringLiteral("llm-proxy could not send this request through the "
                                            "synchronous API after its batch was cancelled at "
                                            "the end of the grace period: ") +
                                 result.error.message,
                             ErrorType::Server, "sync_fallback_failed");
    }
    answer.headers.emplaceBack(SyncFallbackHeader, "sync");
    recordAnswer(requestId, answer, accounting::Route::SyncFallback);
    commit();
    deliver(requestId, answer, true);
}

std::optional<accounting::LedgerRow> BatchCore::recordResult(quint64 requestId,
                                                             const HttpAnswer &answer,
                                                             const QByteArray &batchLocalId) {
    const auto row = recordAnswer(requestId, answer, accounting::Route::Batch);
    if (row && m_store && !batchLocalId.isEmpty())
        m_store->addBatchUsage(batchLocalId, *row);
    return row;
}

std::optional<accounting::LedgerRow>
BatchCore::recordAnswer(quint64 requestId, const HttpAnswer &answer, accounting::Route route) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return std::nullopt;
    const qint64 now = m_clock->wallMs();
    // A result stored before (a re-delivery) was counted with it: never count it twice.
    if (m_store && !m_store->storeResult(requestId, answer.status, encodeHeaders(answer),
                                         answer.body, answer.synthesized, now))
        return std::nullopt;
    const Request &r = it->second;
    if (route != accounting::Route::Relay)
        cacheAnswer(r, answer, now);
    accounting::AccountedRequest accounted =
        accountedAnswer(route, r.group, r.caller, r.streaming, answer, now,
                        std::chrono::duration<double>(m_clock->now() - r.arrival).count());
    return account(accounted, true);
}

void BatchCore::cacheAnswer(const Request &r, const HttpAnswer &answer, qint64 nowMs) {
    if (!r.cacheable || !cacheOn() || answer.synthesized || answer.status < 200 ||
        answer.status >= 300)
        return; // errors are never cached: the next identical request tries again
    CachedAnswer cached;
    cached.key = r.dedupe;
    cached.status = answer.status;
    cached.headers = encodeHeaders(answer);
    cached.body = answer.body;
    cached.storedMs = nowMs;
    cached.bytes = cached.headers.size() + cached.body.size();
    const QList<QByteArray> evicted = m_cache.insert(cached.key, nowMs, cached.bytes);
    if (!evicted.contains(cached.key))
        m_store->putCachedAnswer(cached); // with the result, in the same transaction
    dropCached(evicted);
}

void BatchCore::dropCached(const QList<QByteArray> &keys) {
    if (!m_store)
        return;
    for (const QByteArray &key : keys)
        m_store->deleteCachedAnswer(key);
    if (!keys.isEmpty())
        scheduleCommit();
}

bool BatchCore::answerFromCache(const BatchRequest &request, const QByteArray &key,
                                const QByteArray &caller) {
    const qint64 now = m_clock->wallMs();
    if (!m_cache.fresh(key, now - m_settings.cacheWindow->count()))
        return false;
    const std::optional<CachedAnswer> cached = m_store->cachedAnswer(key);
    if (!cached) { // its write was rolled back
        m_cache.remove(key);
        return false;
    }
    HttpAnswer answer = decodeAnswer(cached->status, cached->headers, cached->body, false);
    // How it was answered then (flex, the synchronous fallback) is not how it is answered now.
    answer.headers.removeIf([](const QPair<QByteArray, QByteArray> &header) {
        return header.first == SyncFallbackHeader || header.first == RouteHeader;
    });
    answer.headers.emplaceBack(CacheHeader, "hit");
    ++m_cacheHits;
    // Counted as route "cache": the stored usage, paid nothing, its whole list cost saved.
    accounting::AccountedRequest accounted = accountedAnswer(
        accounting::Route::Cache, request.group, caller, request.streaming, answer, now,
        std::chrono::duration<double>(m_clock->now() - request.arrival).count());
    account(accounted, true);
    scheduleCommit();
    if (m_stats) {
        m_stats->recordRequest(answer.status, false, accounted.seconds * 1000);
        m_stats->recordCacheHit();
    }
    answerTicket(request.id, answer);
    return true;
}

accounting::LedgerRow BatchCore::account(accounting::AccountedRequest &request, bool toLedger) {
    if (request.provider.isEmpty())
        request.provider = QByteArrayLiteral("openai");
    if (request.usage.reported) {
        const accounting::ModelPrices *model =
            m_prices ? m_prices->find(QString::fromLatin1(request.provider),
                                      QString::fromUtf8(request.model))
                     : nullptr;
        request.cost = accounting::costOf(model, request.route, request.usage);
    }
    const accounting::LedgerRow row = accounting::ledgerRowFor(request);
    if (toLedger && m_store)
        m_store->addToLedger(row);
    if (m_stats)
        m_stats->recordUsage(row);
    Q_EMIT requestAccounted(request);
    return row;
}

void BatchCore::accountRelayed(accounting::AccountedRequest request) {
    request.route = accounting::Route::Relay;
    request.caller = internCaller(request.caller);
    account(request, true);
    scheduleCommit();
}

void BatchCore::setPriceTable(std::shared_ptr<const accounting::PriceTable> prices) {
    m_prices = std::move(prices);
}

std::optional<accounting::LedgerReport> BatchCore::usageReport(const accounting::LedgerQuery &query,
                                                               QString *error) {
    if (!m_store) {
        if (error)
            *error = QStringLiteral("llm-proxy runs without its durable store (--in-memory), "
                                    "so it keeps no ledger");
        return std::nullopt;
    }
    return m_store->ledgerReport(query, error);
}

QByteArray BatchCore::internCaller(const QByteArray &caller) {
    if (caller.isEmpty())
        return caller;
    const auto it = m_callers.constFind(caller);
    if (it != m_callers.cend())
        return *it;
    if (m_callers.size() < 100'000) // bounded: past that, each request keeps its own copy
        m_callers.insert(caller);
    return caller;
}

void BatchCore::deliver(quint64 requestId, const HttpAnswer &answer, bool alreadyRecorded) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return;
    Request &r = it->second;
    if (r.tickets.isEmpty()) {
        // Nobody waits: keep the answer for a client that comes back (an SDK retry).
        if (!alreadyRecorded)
            recordResult(requestId, answer, QByteArray());
        if (!m_store)
            r.memoryResult = std::make_shared<const HttpAnswer>(answer);
        if (r.state == State::Submitted)
            --m_submitted;
        if (r.state != State::Unclaimed)
            ++m_unclaimed;
        r.state = State::Unclaimed;
        r.hasResult = true;
        r.body = QByteArray();
        r.unclaimedSince = m_clock->now();
        scheduleCommit();
        updateGauges();
        return;
    }
    const auto elapsed =
        std::chrono::duration<double, std::milli>(m_clock->now() - r.arrival).count();
    const auto tickets = r.tickets;
    eraseRequest(requestId);
    scheduleCommit();
    if (m_stats)
        m_stats->recordRequest(answer.status, answer.synthesized, elapsed);
    updateGauges();
    for (quint64 ticket : tickets)
        answerTicket(ticket, answer);
}

void BatchCore::requeue(quint64 requestId) {
    const auto it = m_requests.find(requestId);
    if (it == m_requests.end())
        return;
    Request &r = it->second;
    if (r.state == State::Submitted)
        --m_submitted;
    if (!r.tickets.isEmpty()) {
        r.body = bodyFor(requestId);
        if (!r.body.isEmpty()) {
            if (r.state == State::Unclaimed)
                --m_unclaimed;
            if (m_store)
                m_store->setRequestQueued(requestId);
            enqueue(requestId, r);
            scheduleCommit();
            rearmTimer();
            updateGauges();
            return;
        }
    }
    // Nobody waits: do not pay for it again unless a client comes back for it.
    if (r.state != State::Unclaimed)
        ++m_unclaimed;
    r.state = State::Unclaimed;
    r.hasResult = false;
    r.unclaimedSince = m_clock->now();
    if (m_store) {
        m_store->setRequestQueued(requestId);
        r.body = QByteArray();
    }
    scheduleCommit();
    updateGauges();
}

void BatchCore::saveBatch(const StoredBatch &batch) {
    if (m_store) {
        m_store->saveBatch(batch);
        scheduleCommit();
    }
    // Each step of a batch is saved: /stats lists where it is now. Queued so that the job's
    // own progress is updated first.
    QMetaObject::invokeMethod(this, &BatchCore::publishBatchList, Qt::QueuedConnection);
}

void BatchCore::jobEnded(BatchJob *job, bool counted, bool successful,
                         std::chrono::milliseconds duration) {
    --m_jobs;
    jobLeftQueue(job); // if it had not already (a batch split, dissolved or failed)
    if (m_store) {
        if (counted) // in the history after a restart too, with its tokens and cost
            m_store->saveFinishedBatch(job->progress());
        m_store->deleteBatch(job->localId());
        // The key goes with the last unfinished batch made with it.
        const QByteArray keyHash = job->group().keyHash;
        const QList<BatchJob *> jobs = findChildren<BatchJob *>(Qt::FindDirectChildrenOnly);
        const bool stillUsed = std::any_of(jobs.cbegin(), jobs.cend(), [&](const BatchJob *other) {
            return other != job && other->state() != BatchJob::State::Done &&
                   other->group().keyHash == keyHash;
        });
        if (!stillUsed && keyHash != ConfiguredKeyHash)
            m_store->deleteKey(keyHash);
        commit();
    }
    if (counted) {
        ++m_batchesEnded;
        m_history.append(job->progress());
        if (m_history.size() > HistorySize)
            m_history.removeFirst();
        if (m_stats)
            m_stats->recordBatch(successful, double(duration.count()));
        Q_EMIT batchFinished(job->progress());
    } else {
        --m_batchesStarted;
    }
    job->deleteLater();
    updateGauges();
}

void BatchCore::purge() {
    if (m_store) {
        m_store->purgeLedger(m_clock->wallMs() - accounting::LedgerKeepMs);
        if (cacheOn())
            dropCached(m_cache.expire(m_clock->wallMs() - m_settings.cacheWindow->count()));
        scheduleCommit();
    }
    const SteadyTime cutoff = m_clock->now() - m_settings.resultTtl;
    QList<quint64> doomed;
    for (const auto &[id, r] : m_requests) {
        if (r.state == State::Unclaimed && r.tickets.isEmpty() && r.unclaimedSince < cutoff)
            doomed.append(id);
    }
    for (quint64 id : std::as_const(doomed))
        eraseRequest(id);
    if (!doomed.isEmpty()) {
        qCInfo(lcQueue) << "removed" << doomed.size()
                        << "results and requests nobody came back for";
        scheduleCommit();
        updateGauges();
    }
}

void BatchCore::updateGauges() {
    if (!m_stats)
        return;
    m_stats->setQueued(quint64(queued()));
    m_stats->setInFlight(quint64(inFlight()));
    m_stats->setActiveBatches(quint64(activeBatches()));
    QList<StatsQueue> queues;
    for (const QueueBudget::Queue &q : m_budget.queues())
        queues.append(StatsQueue{q.provider, q.model, q.limit, q.enqueued});
    m_stats->setQuota(quint64(waitingForQuota()), std::move(queues));
    publishBatchList();
}

void BatchCore::publishBatchList() {
    if (!m_stats)
        return;
    const QList<BatchProgress> progress = batchProgress();
    QList<StatsBatch> list;
    list.reserve(qMin(progress.size(), Stats::MaxListedBatches));
    for (const BatchProgress &p : progress) {
        if (list.size() >= Stats::MaxListedBatches)
            break;
        list.append(StatsBatch{p.localId, p.batchId, p.provider, p.endpoint, p.model, p.status,
                               p.active, p.total, p.completed, p.failed, p.usage});
    }
    m_stats->setBatchList(std::move(list));
}

} // namespace llmproxy
