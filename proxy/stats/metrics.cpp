// SPDX-License-Identifier: GPL-3.0-or-later
#include "stats/metrics.h"

#include <QLocale>
#include <QString>
#include <QThreadPool>

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

#ifdef Q_OS_LINUX
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace llmproxy {

namespace {

using accounting::Picos;
using accounting::Route;

// Where the tokens of each type sit in RouteModel::tokens, and their label values.
constexpr std::array<const char *, 5> TokenTypeLabels = {
    "type=\"input\",", "type=\"cached_input\",", "type=\"output\",", "type=\"reasoning\",",
    "type=\"cache_write_input\","};

QByteArray routeLabel(int route) {
    return accounting::routeName(Route(route)).toLatin1();
}

// llm_proxy_streams_ended_total's outcome label, by StreamEnd.
constexpr std::array<const char *, StreamEndCount> StreamEndLabels = {
    "outcome=\"replayed\"", "outcome=\"error_event\"", "outcome=\"client_gone\"",
    "outcome=\"shutdown\""};

// The bucket bounds as written in le="...", made once.
const std::array<QByteArray, MetricsRegistry::DurationBuckets.size()> &bucketBounds() {
    static const auto bounds = [] {
        std::array<QByteArray, MetricsRegistry::DurationBuckets.size()> out;
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = MetricsRegistry::formatDouble(MetricsRegistry::DurationBuckets[i]);
        return out;
    }();
    return bounds;
}

void family(QByteArray &out, const char *name, const char *type, const char *help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

// An unsigned number's digits, without allocating.
struct Digits {
    char buffer[24];
    qsizetype size = 0;
    explicit Digits(quint64 value) {
        size = std::to_chars(buffer, buffer + sizeof buffer, value).ptr - buffer;
    }
    QByteArrayView view() const { return QByteArrayView(buffer, size); }
};

// name{head labels tail} value; the braces only when there are labels. The parts are appended
// as they are (no temporaries: a scrape writes thousands of lines).
void sample(QByteArray &out, QByteArrayView name, QByteArrayView labels, QByteArrayView value,
            QByteArrayView head = {}, QByteArrayView tail = {}) {
    out += name;
    if (!head.isEmpty() || !labels.isEmpty() || !tail.isEmpty()) {
        out += '{';
        out += head;
        out += labels;
        out += tail;
        out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
}

void sample(QByteArray &out, QByteArrayView name, QByteArrayView labels, quint64 value,
            QByteArrayView head = {}, QByteArrayView tail = {}) {
    sample(out, name, labels, Digits(value).view(), head, tail);
}

#ifdef Q_OS_LINUX
// A /proc file's text (they report size 0: read until the end).
QByteArray readProcFile(const char *path) {
    QByteArray text;
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return text;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0)
        text.append(buffer, n);
    ::close(fd);
    return text;
}

// /proc/self/stat's fields after the command name: [0] is field 3 (state) of proc(5).
QList<QByteArray> selfStatFields() {
    const QByteArray stat = readProcFile("/proc/self/stat");
    const qsizetype end = stat.lastIndexOf(')'); // the name may hold spaces and parentheses
    if (end < 0)
        return {};
    return stat.mid(end + 1).simplified().split(' ');
}

// Descriptors open now, the one used to count them left out.
std::optional<quint64> openDescriptors() {
    DIR *dir = ::opendir("/proc/self/fd");
    if (!dir)
        return std::nullopt;
    const int own = ::dirfd(dir);
    quint64 count = 0;
    while (const dirent *entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.')
            continue;
        if (std::atoi(entry->d_name) != own)
            ++count;
    }
    ::closedir(dir);
    return count;
}
#endif

} // namespace

struct MetricsRegistry::DescriptorCount {
    std::atomic<qint64> value{-1}; // -1: unknown
    std::atomic<bool> counting{false};
    void count() {
#ifdef Q_OS_LINUX
        const std::optional<quint64> open = openDescriptors();
        value = open ? qint64(*open) : -1;
#endif
    }
};

MetricsRegistry::MetricsRegistry()
    : m_descriptors(std::make_shared<DescriptorCount>()) {
    m_descriptors->count(); // at start: few descriptors, cheap
#ifdef Q_OS_LINUX
    // process_start_time_seconds: the boot time plus the process' start in clock ticks.
    const QList<QByteArray> fields = selfStatFields();
    const long ticks = ::sysconf(_SC_CLK_TCK);
    const QByteArray stat = readProcFile("/proc/stat");
    const qsizetype at = stat.indexOf("\nbtime ");
    if (fields.size() > 19 && ticks > 0 && at >= 0) {
        const qsizetype end = stat.indexOf('\n', at + 1);
        bool ok = false;
        const qint64 boot = stat.mid(at + 7, end < 0 ? -1 : end - at - 7).trimmed().toLongLong(&ok);
        bool startOk = false;
        const qint64 started = fields.at(19).toLongLong(&startOk); // field 22, starttime
        if (ok && startOk)
            m_startTime = double(boot) + double(started) / double(ticks);
    }
#endif
}

MetricsGauges MetricsGauges::of(const StatsSnapshot &s, QList<StatsQueue> queues) {
    return {.queued = s.queued,
            .inFlight = s.inFlight,
            .activeBatches = s.activeBatches,
            .waitingStreams = s.waitingStreams,
            .streamsEnded = s.streamsEnded,
            .streamKeepAlives = s.streamKeepAlives,
            .waitingForQuota = s.waitingForQuota,
            .queues = std::move(queues)};
}

QByteArray MetricsRegistry::escapeLabelValue(QByteArrayView value) {
    QByteArray out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
    return out;
}

QByteArray MetricsRegistry::formatDouble(double value) {
    if (std::isnan(value))
        return QByteArrayLiteral("NaN");
    if (std::isinf(value))
        return value > 0 ? QByteArrayLiteral("+Inf") : QByteArrayLiteral("-Inf");
    return QByteArray::number(value, 'g', QLocale::FloatingPointShortest);
}

QByteArray MetricsRegistry::boundedLabel(QByteArrayView value, QSet<QByteArray> &known,
                                         qsizetype limit) {
    static const QByteArray other = QByteArrayLiteral("other");
    const QByteArray bytes = value.toByteArray();
    if (const auto it = known.constFind(bytes); it != known.cend())
        return *it; // shares the stored bytes
    if (value.size() > MaxLabelBytes || known.size() >= limit)
        return other;
    const QString text = QString::fromUtf8(value);
    if (text.toUtf8() != bytes) // not UTF-8
        return other;
    for (const QChar c : text) {
        if (c.category() == QChar::Other_Control) // C0, DEL and C1: newlines, escapes
            return other;
    }
    known.insert(bytes);
    return bytes;
}

void MetricsRegistry::Histogram::observe(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0)
        seconds = 0;
    for (std::size_t i = 0; i < DurationBuckets.size(); ++i) {
        if (seconds <= DurationBuckets[i]) {
            ++buckets[i];
            break;
        }
    }
    ++count;
    sum += seconds;
}

void MetricsRegistry::record(const accounting::AccountedRequest &request) {
    const int route = int(request.route);
    const int code =
        request.httpStatus >= 100 && request.httpStatus <= 599 ? request.httpStatus : 0;
    const std::lock_guard lock(m_mutex);
    const QByteArray model = boundedLabel(request.model, m_models, MaxModels);
    QByteArray endpoint = boundedLabel(request.endpoint, m_endpoints, MaxEndpoints);

    std::tuple<int, QByteArray, QByteArray, int> key{route, endpoint, model, code};
    if (m_requests.size() >= MaxRequestSeries && !m_requests.contains(key)) {
        endpoint = QByteArrayLiteral("other");
        key = {route, endpoint, QByteArrayLiteral("other"), code};
    }
    const auto [requests, newRequests] = m_requests.try_emplace(key);
    if (newRequests) {
        requests->second.labels = "route=\"" + escapeLabelValue(routeLabel(route)) +
                                  "\",endpoint=\"" + escapeLabelValue(endpoint) + "\",model=\"" +
                                  escapeLabelValue(std::get<2>(key)) + "\",code=\"" +
                                  QByteArray::number(code) + '"';
    }
    ++requests->second.count;

    const auto [it, newRouteModel] = m_routeModels.try_emplace({route, model});
    RouteModel &series = it->second;
    if (newRouteModel) {
        series.labels = "route=\"" + escapeLabelValue(routeLabel(route)) + "\",model=\"" +
                        escapeLabelValue(model) + '"';
    }
    const Usage &usage = request.usage;
    if (!usage.reported) {
        ++series.usageUnreported;
    } else {
        const std::array<std::optional<qint64>, 5> counts = {
            usage.input, usage.cachedInput, usage.output, usage.reasoning, usage.cacheWriteInput};
        for (std::size_t i = 0; i < counts.size(); ++i) {
            if (counts[i] && *counts[i] >= 0) {
                series.tokens[i] += quint64(*counts[i]);
                series.tokensSeen[i] = true;
            }
        }
        // Each known part is added; an unknown one (no price, an overflow) is not added as 0,
        // and neither is a negative one (a counter never goes down): the request is then
        // counted as unpriced.
        bool complete = true;
        const auto add = [&complete](const std::optional<Picos> &amount, Picos &total, bool &seen) {
            if (!amount || *amount < 0 || !accounting::addPicos(total, *amount)) {
                complete = false;
                return;
            }
            seen = true;
        };
        add(request.cost.paid, series.paid, series.paidSeen);
        add(request.cost.list, series.list, series.listSeen);
        add(request.cost.saved, series.saved, series.savedSeen);
        if (!complete)
            ++series.unpriced;
    }
    m_requestDuration[route].observe(request.seconds);
}

void MetricsRegistry::recordBatch(QByteArrayView status, double seconds) {
    const std::lock_guard lock(m_mutex);
    const QByteArray label = boundedLabel(status, m_batchStatuses, MaxBatchStatuses);
    const auto [it, inserted] = m_batches.try_emplace(label);
    if (inserted)
        it->second.labels = "status=\"" + escapeLabelValue(label) + '"';
    ++it->second.count;
    m_batchDuration.observe(seconds);
}

QByteArray MetricsRegistry::render(const MetricsGauges &gauges) const {
    const auto &bounds = bucketBounds();
    const auto histogram = [&bounds](QByteArray &out, const char *name, const QByteArray &labels,
                                     const Histogram &h) {
        const QByteArray bucket = QByteArray(name) + "_bucket";
        const QByteArray sum = QByteArray(name) + "_sum";
        const QByteArray count = QByteArray(name) + "_count";
        const QByteArrayView separator = labels.isEmpty() ? "le=\"" : ",le=\"";
        quint64 cumulative = 0;
        for (std::size_t i = 0; i < bounds.size(); ++i) {
            cumulative += h.buckets[i];
            out += bucket;
            out += '{';
            out += labels;
            out += separator;
            out += bounds[i];
            out += "\"} ";
            out += Digits(cumulative).view();
            out += '\n';
        }
        sample(out, bucket, labels, h.count, {}, labels.isEmpty() ? "le=\"+Inf\"" : ",le=\"+Inf\"");
        sample(out, sum, labels, formatDouble(h.sum));
        sample(out, count, labels, h.count);
    };

    QByteArray out;
    const std::lock_guard lock(m_mutex);
    out.reserve(4096 + qsizetype(m_requests.size()) * 120 + qsizetype(m_routeModels.size()) * 600 +
                qsizetype(m_requestDuration.size()) * 1500);

    family(out, "llm_proxy_requests_total", "counter",
           "Requests answered, by route (batch, sync_fallback, relay, flex, cache), endpoint, "
           "model asked for and HTTP status code.");
    for (const auto &[key, series] : m_requests)
        sample(out, "llm_proxy_requests_total", series.labels, series.count);

    family(out, "llm_proxy_tokens_total", "counter",
           "Tokens the provider reported, by type: input (cached included), cached_input, output "
           "(reasoning included), reasoning, cache_write_input.");
    for (const auto &[key, series] : m_routeModels) {
        for (std::size_t i = 0; i < TokenTypeLabels.size(); ++i) {
            if (!series.tokensSeen[i])
                continue;
            sample(out, "llm_proxy_tokens_total", series.labels, series.tokens[i],
                   TokenTypeLabels[i]);
        }
    }

    const auto money = [&out, this](const char *name, const char *help, Picos RouteModel::*total,
                                    bool RouteModel::*seen) {
        family(out, name, "counter", help);
        for (const auto &[key, series] : m_routeModels) {
            if (series.*seen)
                sample(out, name, series.labels, accounting::formatUsd(series.*total));
        }
    };
    money("llm_proxy_cost_usd_total",
          "US dollars paid (exact); a request whose cost is not known adds nothing "
          "(llm_proxy_unpriced_requests_total).",
          &RouteModel::paid, &RouteModel::paidSeen);
    money("llm_proxy_list_cost_usd_total",
          "US dollars the same tokens cost at the standard (synchronous) price.", &RouteModel::list,
          &RouteModel::listSeen);
    money("llm_proxy_saved_usd_total", "US dollars saved: list cost minus what was paid.",
          &RouteModel::saved, &RouteModel::savedSeen);

    family(out, "llm_proxy_unpriced_requests_total", "counter",
           "Requests with reported usage whose paid, list or saved cost is not known (no price "
           "for the model or tier); their known parts are still added.");
    for (const auto &[key, series] : m_routeModels) {
        if (series.unpriced > 0)
            sample(out, "llm_proxy_unpriced_requests_total", series.labels, series.unpriced);
    }
    family(out, "llm_proxy_usage_unreported_requests_total", "counter",
           "Requests whose answer reported no token usage (errors included): counted here, not "
           "as zero tokens.");
    for (const auto &[key, series] : m_routeModels) {
        if (series.usageUnreported > 0) {
            sample(out, "llm_proxy_usage_unreported_requests_total", series.labels,
                   series.usageUnreported);
        }
    }

    family(out, "llm_proxy_request_duration_seconds", "histogram",
           "Seconds from a request's arrival to its answer, by route.");
    for (const auto &[route, h] : m_requestDuration) {
        histogram(out, "llm_proxy_request_duration_seconds",
                  "route=\"" + escapeLabelValue(routeLabel(route)) + '"', h);
    }

    family(out, "llm_proxy_batches_total", "counter",
           "Batches that ended, by final status (completed, failed, expired, cancelled).");
    for (const auto &[status, series] : m_batches)
        sample(out, "llm_proxy_batches_total", series.labels, series.count);
    family(out, "llm_proxy_batch_duration_seconds", "histogram",
           "Seconds from a batch's submission to its end.");
    histogram(out, "llm_proxy_batch_duration_seconds", {}, m_batchDuration);

    family(out, "llm_proxy_queued_requests", "gauge",
           "Requests accepted and waiting for their batch to be sent.");
    sample(out, "llm_proxy_queued_requests", {}, gauges.queued);
    family(out, "llm_proxy_in_flight_requests", "gauge",
           "Requests in a batch sent to the provider and not answered yet.");
    sample(out, "llm_proxy_in_flight_requests", {}, gauges.inFlight);
    family(out, "llm_proxy_active_batches", "gauge", "Batches not ended yet.");
    sample(out, "llm_proxy_active_batches", {}, gauges.activeBatches);

    family(out, "llm_proxy_requests_waiting_for_quota", "gauge",
           "Requests waiting for room in their model's queue at the provider (--queue-limit; "
           "counted in llm_proxy_queued_requests too).");
    sample(out, "llm_proxy_requests_waiting_for_quota", {}, gauges.waitingForQuota);
    family(out, "llm_proxy_queue_limit_tokens", "gauge",
           "The queue limit of a model at its provider (--queue-limit), in prompt tokens.");
    family(out, "llm_proxy_queue_enqueued_tokens", "gauge",
           "Prompt tokens of the proxy's batches in a model's queue at its provider, as the "
           "proxy estimates them (a quarter of the request bytes).");
    for (qsizetype i = 0; i < gauges.queues.size() && i < MaxModels; ++i) {
        const StatsQueue &q = gauges.queues.at(i);
        const QByteArray labels = "provider=\"" + escapeLabelValue(q.provider) + "\",model=\"" +
                                  escapeLabelValue(q.model) + '"';
        sample(out, "llm_proxy_queue_limit_tokens", labels,
               quint64(qMax<qint64>(0, q.limitTokens)));
        sample(out, "llm_proxy_queue_enqueued_tokens", labels,
               quint64(qMax<qint64>(0, q.enqueuedTokens)));
    }

    family(out, "llm_proxy_waiting_streams", "gauge",
           "Streaming clients waiting for their batch, headers sent (counted in "
           "llm_proxy_queued_requests or llm_proxy_in_flight_requests too).");
    sample(out, "llm_proxy_waiting_streams", {}, gauges.waitingStreams);
    family(out, "llm_proxy_streams_ended_total", "counter",
           "Batched streaming clients whose wait ended, by outcome: replayed (the answer as "
           "the endpoint's events), error_event (the request failed: its error event), "
           "client_gone (hung up first), shutdown (the proxy stopped: an error event).");
    for (std::size_t i = 0; i < StreamEndLabels.size(); ++i) {
        sample(out, "llm_proxy_streams_ended_total", StreamEndLabels[i], gauges.streamsEnded[i]);
    }
    family(out, "llm_proxy_stream_keepalives_total", "counter",
           "SSE keep-alive comments written to streaming clients while their batch ran.");
    sample(out, "llm_proxy_stream_keepalives_total", {}, gauges.streamKeepAlives);

#ifdef Q_OS_LINUX
    const QList<QByteArray> fields = selfStatFields();
    const long ticks = ::sysconf(_SC_CLK_TCK);
    if (fields.size() > 21 && ticks > 0) {
        const double cpuTicks = fields.at(11).toDouble() + fields.at(12).toDouble(); // utime stime
        family(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        sample(out, "process_cpu_seconds_total", {}, formatDouble(cpuTicks / double(ticks)));
    }
    if (const qint64 fds = m_descriptors->value; fds >= 0) {
        family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
        sample(out, "process_open_fds", {}, quint64(fds));
    }
    if (!m_descriptors->counting.exchange(true)) {
        QThreadPool::globalInstance()->start([descriptors = m_descriptors] {
            descriptors->count();
            descriptors->counting = false;
        });
    }
    if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sample(out, "process_max_fds", {},
               limit.rlim_cur == RLIM_INFINITY ? QByteArrayLiteral("+Inf")
                                               : QByteArray::number(quint64(limit.rlim_cur)));
    }
    if (fields.size() > 21) {
        const long page = ::sysconf(_SC_PAGESIZE);
        family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        sample(out, "process_virtual_memory_bytes", {}, fields.at(20)); // field 23, vsize
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        sample(out, "process_resident_memory_bytes", {},
               QByteArray::number(fields.at(21).toLongLong() * qint64(page))); // field 24, rss
    }
#endif
    if (m_startTime > 0) {
        family(out, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
        sample(out, "process_start_time_seconds", {}, formatDouble(m_startTime));
    }
    return out;
}

} // namespace llmproxy
