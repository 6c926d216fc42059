// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// GET /metrics: counters and histograms of answered requests and ended batches, the queue's
// gauges and the standard process_* metrics, in the Prometheus text exposition format 0.0.4.
//
// Names follow Prometheus' conventions (base units, _total on counters) and the OpenTelemetry
// GenAI meanings (gen_ai.client.token.usage split by token type, gen_ai.request.model). Money
// is counted exactly, as integer pico-USD, and printed as an exact decimal (formatUsd): a cost
// that is not known is never added as 0; such requests are counted instead.
//
// Memory and scrape time depend on the label series, never on the requests held or answered:
// label values come from clients (model names, paths), so each label's distinct values are
// capped and the rest folded into "other"; a value that is not printable UTF-8 (control bytes)
// or is too long is folded too. Nothing here carries a key: the records have none.

#include "accounting/accountedrequest.h"
#include "stats/stats.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QSet>
#include <QtGlobal>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace llmproxy {

// The values the scrape reads from Stats::snapshot(): the core's gauges, and the streams'
// gauge and counters (kept by Stats, which the I/O threads' stream waiters report to).
struct MetricsGauges {
    quint64 queued = 0;
    quint64 inFlight = 0;
    quint64 activeBatches = 0;
    quint64 waitingStreams = 0;
    std::array<quint64, StreamEndCount> streamsEnded{}; // by StreamEnd
    quint64 streamKeepAlives = 0;
    quint64 waitingForQuota = 0;
    QList<StatsQueue> queues = {};

    static MetricsGauges of(const StatsSnapshot &s, QList<StatsQueue> queues = {});
};

// Thread-safe: the core records on its thread while every I/O thread's front end renders.
// Each call takes one short lock.
class MetricsRegistry final {
public:
    Q_DISABLE_COPY_MOVE(MetricsRegistry)
    MetricsRegistry();

    // Distinct label values kept per label before the rest are folded into "other".
    static constexpr qsizetype MaxModels = 200;
    static constexpr qsizetype MaxEndpoints = 64;
    static constexpr qsizetype MaxBatchStatuses = 32;
    // Series of llm_proxy_requests_total (route x endpoint x model x code) before a new
    // combination is counted with endpoint and model "other": the product of the caps above
    // is no bound by itself.
    static constexpr std::size_t MaxRequestSeries = 5000;
    // A label value longer than this (in bytes) is folded into "other".
    static constexpr qsizetype MaxLabelBytes = 128;
    // Upper bounds (seconds) of both duration histograms: a relayed call's seconds to a batch's
    // 24 hours. +Inf follows.
    static constexpr std::array<double, 19> DurationBuckets = {
        0.1, 0.25, 0.5,  1,    2.5,  5,     10,    30,    60,   120,
        300, 600,  1800, 3600, 7200, 14400, 28800, 43200, 86400};
    static constexpr char ContentType[] = "text/plain; version=0.0.4; charset=utf-8";

    // One answered request (BatchCore::requestAccounted).
    void record(const accounting::AccountedRequest &request);
    // One batch that ended (`status`: completed, failed, expired, cancelled), `seconds` from
    // its submission.
    void recordBatch(QByteArrayView status, double seconds);

    // The whole exposition: every family with its HELP and TYPE lines, then process_*.
    QByteArray render(const MetricsGauges &gauges) const;

    // A label value as the format writes it between quotes: \ " and newline escaped.
    static QByteArray escapeLabelValue(QByteArrayView value);
    // A number as the format reads it (Go's ParseFloat): shortest round trip, +Inf, -Inf, NaN.
    static QByteArray formatDouble(double value);

private:
    struct Histogram {
        std::array<quint64, DurationBuckets.size()> buckets{}; // not cumulative
        quint64 count = 0;
        double sum = 0;
        void observe(double seconds);
    };
    // Per (route, model): tokens, money and the requests whose usage or cost is unknown.
    struct RouteModel {
        QByteArray labels; // route="batch",model="gpt-4o", escaped once
        std::array<quint64, 5> tokens{};
        std::array<bool, 5> tokensSeen{};
        accounting::Picos paid = 0, list = 0, saved = 0;
        bool paidSeen = false, listSeen = false, savedSeen = false;
        quint64 unpriced = 0;
        quint64 usageUnreported = 0;
    };
    struct Labelled {
        QByteArray labels;
        quint64 count = 0;
    };

    // The label value to use for `value`: itself, or "other" (not printable UTF-8, too long,
    // or `known` is full).
    static QByteArray boundedLabel(QByteArrayView value, QSet<QByteArray> &known, qsizetype limit);

    // process_open_fds. Counting /proc/self/fd costs microseconds per descriptor (tens of ms
    // with 19,000 held sockets), more than a whole scrape may: each scrape shows the count
    // finished last and starts the next one on a pool thread (one at a time).
    struct DescriptorCount;
    std::shared_ptr<DescriptorCount> m_descriptors;

    mutable std::mutex m_mutex;
    QSet<QByteArray> m_models;
    QSet<QByteArray> m_endpoints;
    QSet<QByteArray> m_batchStatuses;
    // Sorted keys, so a scrape lists series in a stable order.
    std::map<std::tuple<int, QByteArray, QByteArray, int>, Labelled> m_requests;
    std::map<std::pair<int, QByteArray>, RouteModel> m_routeModels;
    std::map<int, Histogram> m_requestDuration; // by route
    std::map<QByteArray, Labelled> m_batches;   // by status
    Histogram m_batchDuration;
    double m_startTime = 0; // process_start_time_seconds
};

} // namespace llmproxy
