// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings/config.h"

#include "provider/modelroute.h"
#include "provider/providerprofile.h"
#include "provider/queuelimit.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QHash>
#include <QRegularExpression>
#include <QSet>
#include <QStandardPaths>
#include <QtNumeric>

#include <array>
#include <limits>
#include <vector>

namespace llmproxy {

namespace {

using std::chrono::milliseconds;

constexpr quint16 DefaultPort = 3030;
constexpr milliseconds MaxBatchWindow{24LL * 60 * 60 * 1000};
constexpr milliseconds MinPollInterval{100};
constexpr milliseconds MaxScreenshotDelay{60LL * 60 * 1000};
constexpr qint64 MinBatchBytes = 1000;
constexpr qint64 MinMaxBody = 1024;
constexpr milliseconds MinGracePeriod{1000};
constexpr milliseconds MaxGracePeriod{30LL * 24 * 60 * 60 * 1000};
constexpr int MaxIoThreads = 64;
// Fraction digits beyond this many are ignored: 10^9 times the largest unit (GiB, 2^30)
// still fits in a qint64, and nine digits are far finer than a millisecond or a byte.
constexpr qsizetype MaxFractionDigits = 9;

struct Unit {
    QLatin1StringView name;
    qint64 factor;
};

// A bare number is seconds.
constexpr std::array DurationUnits{
    Unit{QLatin1StringView(""), 1000},
    Unit{QLatin1StringView("ms"), 1},
    Unit{QLatin1StringView("s"), 1000},
    Unit{QLatin1StringView("m"), 60 * 1000},
    Unit{QLatin1StringView("h"), 60 * 60 * 1000},
};

constexpr std::array SizeUnits{
    Unit{QLatin1StringView(""), 1},
    Unit{QLatin1StringView("B"), 1},
    Unit{QLatin1StringView("KB"), 1000},
    Unit{QLatin1StringView("MB"), 1000 * 1000},
    Unit{QLatin1StringView("GB"), 1000 * 1000 * 1000},
    Unit{QLatin1StringView("KiB"), 1024},
    Unit{QLatin1StringView("MiB"), 1024 * 1024},
    Unit{QLatin1StringView("GiB"), 1024 * 1024 * 1024},
};

bool isAsciiDigit(QChar c) {
    return c >= u'0' && c <= u'9';
}

bool isAsciiLetter(QChar c) {
    return (c >= u'a' && c <= u'z') || (c >= u'A' && c <= u'Z');
}

bool allAsciiDigits(QStringView text) {
    if (text.isEmpty())
        return false;
    for (QChar c : text) {
        if (!isAsciiDigit(c))
            return false;
    }
    return true;
}

// "<digits>[.<digits>][spaces]<letters>" → number × unit factor, rounded to the nearest
// integer. No sign, no exponent; nullopt if malformed, the unit is unknown, or on overflow.
template <std::size_t N>
std::optional<qint64> parseScaled(QStringView text, const std::array<Unit, N> &units) {
    text = text.trimmed();
    qsizetype pos = 0;
    while (pos < text.size() && isAsciiDigit(text[pos]))
        ++pos;
    const QStringView whole = text.first(pos);
    QStringView fraction;
    if (pos < text.size() && text[pos] == u'.') {
        ++pos;
        const qsizetype fractionStart = pos;
        while (pos < text.size() && isAsciiDigit(text[pos]))
            ++pos;
        fraction = text.sliced(fractionStart, pos - fractionStart);
    }
    if (whole.isEmpty() && fraction.isEmpty())
        return std::nullopt;
    while (pos < text.size() && text[pos].isSpace())
        ++pos;
    const qsizetype unitStart = pos;
    while (pos < text.size() && isAsciiLetter(text[pos]))
        ++pos;
    if (pos != text.size())
        return std::nullopt;
    const QStringView unitText = text.sliced(unitStart);

    qint64 factor = 0;
    for (const Unit &unit : units) {
        if (unitText.compare(unit.name, Qt::CaseInsensitive) == 0) {
            factor = unit.factor;
            break;
        }
    }
    if (factor == 0)
        return std::nullopt;

    qint64 result = 0;
    for (QChar c : whole) {
        if (qMulOverflow(result, qint64(10), &result) ||
            qAddOverflow(result, qint64(c.digitValue()), &result)) {
            return std::nullopt;
        }
    }
    if (qMulOverflow(result, factor, &result))
        return std::nullopt;

    qint64 numerator = 0;
    qint64 denominator = 1;
    for (qsizetype i = 0; i < fraction.size() && i < MaxFractionDigits; ++i) {
        numerator = numerator * 10 + fraction[i].digitValue();
        denominator *= 10;
    }
    qint64 scaledFraction = 0;
    if (qMulOverflow(numerator, factor, &scaledFraction))
        return std::nullopt;
    scaledFraction = (scaledFraction + denominator / 2) / denominator;
    if (qAddOverflow(result, scaledFraction, &result))
        return std::nullopt;
    return result;
}

// Strict dotted quad: four decimal parts 0..255 (QHostAddress also takes "127.1" and octal).
bool isDottedQuad(QStringView text) {
    const auto parts = text.split(u'.');
    if (parts.size() != 4)
        return false;
    for (QStringView part : parts) {
        if (part.size() > 3 || !allAsciiDigits(part) || part.toInt() > 255)
            return false;
    }
    return true;
}

constexpr QLatin1StringView DurationExamples("examples: 4s, 500ms, 0.5, 2m");
constexpr QLatin1StringView SizeExamples("examples: 25MB, 32MiB, 1000000, 512KiB");

// A value as it may appear in a one-line error message: quoted, control characters replaced,
// long values shortened, and anything that looks like an API key (or is the configured key)
// not shown at all.
QString shown(QStringView value, const QByteArray &apiKey) {
    // OpenAI keys start with "sk-" ("sk-proj-…", "sk-svcacct-…").
    static const QRegularExpression keyLike(QStringLiteral("(^|[^A-Za-z0-9])sk-"));
    if (keyLike.match(value.toString()).hasMatch() ||
        (!apiKey.isEmpty() && value.contains(QString::fromUtf8(apiKey)))) {
        return QStringLiteral("(a value that looks like an API key, not shown)");
    }
    // A URL's user name and password ("https://user:secret@host") are never repeated.
    static const QRegularExpression userInfo(QStringLiteral("://[^/?#]*@"));
    const QString visible = value.toString().replace(userInfo, QStringLiteral("://…@"));
    constexpr qsizetype MaxShown = 80;
    QString text;
    text.reserve(qMin(visible.size(), MaxShown) + 3);
    for (qsizetype i = 0; i < visible.size() && i < MaxShown; ++i) {
        const QChar c = visible[i];
        text += (c.category() == QChar::Other_Control) ? QChar(u'?') : c;
    }
    if (visible.size() > MaxShown)
        text += QChar(u'…');
    return u'"' + text + u'"';
}

QString errorLine(QStringView option, const QString &detail) {
    return QStringLiteral("llm-proxy: ") + option + QStringLiteral(": ") + detail;
}

QString formatDuration(milliseconds duration) {
    const qint64 ms = duration.count();
    if (ms % (60 * 60 * 1000) == 0 && ms != 0)
        return QString::number(ms / (60 * 60 * 1000)) + u'h';
    if (ms % (60 * 1000) == 0 && ms != 0)
        return QString::number(ms / (60 * 1000)) + u'm';
    if (ms % 1000 == 0)
        return QString::number(ms / 1000) + u's';
    return QString::number(ms) + QStringLiteral("ms");
}

QString formatSize(qint64 bytes) {
    if (bytes != 0) {
        // Prefer the unit that gives a whole number, largest first, decimal before binary.
        static constexpr std::array Order{7, 4, 6, 3, 5, 2};
        for (int index : Order) {
            const Unit &unit = SizeUnits[static_cast<std::size_t>(index)];
            if (bytes % unit.factor == 0)
                return QString::number(bytes / unit.factor) + unit.name;
        }
    }
    return QString::number(bytes);
}

// The upstream base URL: http or https with a host, no credentials, query or fragment;
// trailing slashes stripped, the path kept.
std::optional<QUrl> parseUpstream(const QString &text, QString *error) {
    const QUrl url(text.trimmed(), QUrl::StrictMode);
    if (!url.isValid() || url.isRelative() || url.host().isEmpty()) {
        *error = QStringLiteral("is not a URL with a host (example: https://api.openai.com/v1)");
        return std::nullopt;
    }
    if (url.scheme() != QLatin1StringView("http") && url.scheme() != QLatin1StringView("https")) {
        *error = QStringLiteral("is not an http or https URL (example: https://api.openai.com/v1)");
        return std::nullopt;
    }
    if (!url.userInfo().isEmpty()) {
        *error = QStringLiteral("must not contain a user name or password (the key comes from "
                                "OPENAI_API_KEY or the client)");
        return std::nullopt;
    }
    if (url.hasQuery() || url.hasFragment()) {
        *error = QStringLiteral("must not have a query or fragment (example: "
                                "https://api.openai.com/v1)");
        return std::nullopt;
    }
    QUrl normalized = url;
    QString path = url.path(QUrl::FullyEncoded);
    while (path.endsWith(u'/'))
        path.chop(1);
    normalized.setPath(path, QUrl::TolerantMode);
    return normalized;
}

// "~/.local/share/llm-proxy" rather than the home folder of whoever asked (the man page is
// made from this text at build time).
QString homeRelative(const QString &path) {
    const QString home = QDir::homePath();
    if (home.size() > 1 && path.startsWith(home + u'/'))
        return QStringLiteral("~") + QDir::toNativeSeparators(path.mid(home.size()));
    return QDir::toNativeSeparators(path);
}

// ---- every setting, declared once -------------------------------------------------------

using namespace Qt::Literals::StringLiterals;
using Kind = SettingDeclaration::Kind;

// No upper bound (a "too short" or "too small" value is then the only way to be out of range).
constexpr qint64 Unbounded = std::numeric_limits<qint64>::max();
constexpr qint64 Hour = 60LL * 60 * 1000;
constexpr qint64 Day = 24 * Hour;

// Where a setting lives in Config, for the kinds the table checks and formats by itself.
// One pointer is set, of the type the entry's kind needs.
struct Field {
    bool *flag = nullptr;                            // Switch
    int *count = nullptr;                            // Count
    qint64 *size = nullptr;                          // Size
    milliseconds *duration = nullptr;                // Duration
    std::optional<milliseconds> *maybeOff = nullptr; // DurationOrOff
    QString *path = nullptr;                         // Path
    QList<QByteArray> *list = nullptr;               // List
    QUrl *url = nullptr;                             // Url
    QByteArray *name = nullptr;                      // Name
};

// One setting: what everyone reads (SettingDeclaration) and how it reaches Config.
struct Entry {
    SettingDeclaration decl;
    Field (*field)(Config &config) = nullptr;
    // List settings: the value as stored, or nullopt if it is not acceptable ("is not " +
    // decl.expected follows the quoted value).
    std::optional<QByteArray> (*item)(const QString &value) = nullptr;
    // The default as --help says it, when settingText(Config()) does not have it.
    QString (*defaultText)() = nullptr;
};

// scheme://host[:port] and nothing else, as browsers send it in Origin: http and https pages,
// or an extension's (chrome-extension://ID, vscode-webview://ID).
std::optional<QByteArray> originItem(const QString &value) {
    const QString text = value.trimmed();
    const QUrl url(text, QUrl::StrictMode);
    if (!url.isValid() || url.scheme().isEmpty() || url.host().isEmpty() ||
        !url.userInfo().isEmpty() || (!url.path().isEmpty() && url.path() != u'/') ||
        url.hasQuery() || url.hasFragment())
        return std::nullopt;
    QString origin = text;
    if (origin.endsWith(u'/'))
        origin.chop(1);
    return origin.toLower().toUtf8();
}

std::optional<QByteArray> hostItem(const QString &value) {
    static const QRegularExpression hostName(
        QStringLiteral("^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       "(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\\.?(:[0-9]{1,5})?$"));
    const QString text = value.trimmed();
    if (!hostName.match(text).hasMatch())
        return std::nullopt;
    return text.toLower().toUtf8();
}

std::optional<QByteArray> providerItem(const QString &value) {
    QString error;
    const auto spec = parseProviderSpec(value, &error);
    if (!spec)
        return std::nullopt;
    return providerSpecText(*spec);
}

std::optional<QByteArray> modelRouteItem(const QString &value) {
    QString error;
    if (!parseModelRouteRule(value, &error))
        return std::nullopt;
    return value.trimmed().toUtf8();
}

std::optional<QByteArray> queueLimitItem(const QString &value) {
    QString error;
    if (!parseQueueLimitRule(value, &error))
        return std::nullopt;
    return value.trimmed().toUtf8();
}

std::optional<QByteArray> screenshotPageItem(const QString &value) {
    const QByteArray name = value.trimmed().toLower().toUtf8();
    if (!screenshotPageNames().contains(name))
        return std::nullopt;
    return name;
}

std::optional<QByteArray> routeItem(const QString &value) {
    QString error;
    if (!parseRouteRule(value, &error))
        return std::nullopt;
    return value.trimmed().toUtf8();
}

QString homeRelativeDataDir() {
    return homeRelative(defaultDataDir());
}

QString homeRelativeTokensFile() {
    return homeRelative(defaultTokensFile());
}

constexpr QLatin1StringView DurationValue = "a duration, examples: 4s, 500ms, 0.5, 2m"_L1;
constexpr QLatin1StringView SizeValue = "a size, examples: 25MB, 32MiB, 1000000, 512KiB"_L1;

// The table. Its order is --help's. A new setting: a Config field, a Setting value and an entry
// here; the command line, the settings file (with a storeKey), the window (with a label),
// --help, the man page and the completion follow.
const std::vector<Entry> &entries() {
    static const std::vector<Entry> table{
        {.decl = {.setting = Setting::NoGui,
                  .option = "no-gui"_L1,
                  .kind = Kind::Switch,
                  .help = "Run headless, without the tray icon and window."_L1},
         .field = [](Config &c) -> Field { return {.flag = &c.noGui}; }},
        {.decl = {.setting = Setting::Listen,
                  .option = "listen"_L1,
                  .valueName = "HOST:PORT"_L1,
                  .kind = Kind::Listen,
                  .missing = "HOST:PORT"_L1,
                  .help = "Address to listen on (default: 127.0.0.1:3030 and [::1]:3030). HOST "
                          "is an IPv4 address, an IPv6 address in brackets, localhost (both "
                          "loopbacks) or empty for all interfaces (:3030). Port 0 picks a free "
                          "port."_L1,
                  .storeKey = "proxy/listen"_L1,
                  .label = "Listen address"_L1,
                  .objectName = "listen"_L1,
                  .hint = "HOST:PORT, e.g. 127.0.0.1:3030, [::1]:3030, localhost:3030 (both "
                          "loopbacks) or :3030 (all interfaces)"_L1,
                  .changeName = "listen address"_L1}},
        {.decl = {.setting = Setting::Upstream,
                  .option = "upstream"_L1,
                  .valueName = "URL"_L1,
                  .kind = Kind::Url,
                  .missing = "URL"_L1,
                  .help = "The OpenAI-compatible API base URL, http or https (default: %1)."_L1,
                  .storeKey = "proxy/upstream"_L1,
                  .label = "Upstream URL"_L1,
                  .objectName = "upstream"_L1,
                  .hint = "The OpenAI-compatible API, e.g. https://api.openai.com/v1"_L1,
                  .changeName = "upstream URL"_L1},
         .field = [](Config &c) -> Field { return {.url = &c.upstream}; }},
        {.decl = {.setting = Setting::Providers,
                  .option = "provider"_L1,
                  .valueName = "NAME=PROFILE"_L1,
                  .kind = Kind::List,
                  .expected = "NAME=PROFILE[;url=URL][;key_env=VAR] with a known profile "
                              "(openai, azure, gemini, groq, together, generic)"_L1,
                  .missing = "NAME=PROFILE, example: gemini=gemini"_L1,
                  .help = "Another provider besides openai (--upstream), as NAME=PROFILE"
                          "[;url=URL][;key_env=VAR]; profiles: openai, azure, gemini, groq, "
                          "together, generic. Its key comes from VAR (default: the profile's, "
                          "e.g. GEMINI_API_KEY). Repeatable."_L1,
                  .storeKey = "providers/providers"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.providers}; },
         .item = providerItem},
        {.decl = {.setting = Setting::Routes,
                  .option = "route"_L1,
                  .valueName = "PATTERN=NAME"_L1,
                  .kind = Kind::List,
                  .expected = "PATTERN=NAME (examples: gemini-*=gemini, my-deployment=azure, "
                              "/v1/embeddings=openai)"_L1,
                  .missing = "PATTERN=NAME, example: gemini-*=gemini"_L1,
                  .help = "Send requests for a model (exact name, or a prefix ending in *) or a "
                          "path (/v1/...) to the provider NAME. Exact names win over prefixes, "
                          "the longest prefix over shorter ones, models over paths. "
                          "Repeatable."_L1,
                  .storeKey = "providers/routes"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.routes}; },
         .item = routeItem},
        {.decl = {.setting = Setting::DefaultProvider,
                  .option = "default-provider"_L1,
                  .valueName = "NAME"_L1,
                  .kind = Kind::Name,
                  .expected = "a provider's name (a-z, 0-9, _, -) or none"_L1,
                  .missing = "a provider's name, or none"_L1,
                  .help = "Where requests no --route matches go (default: %1); none: they get "
                          "400 naming the configured providers."_L1,
                  .storeKey = "providers/default"_L1},
         .field = [](Config &c) -> Field { return {.name = &c.defaultProvider}; }},
        {.decl = {.setting = Setting::ModelRoutes,
                  .option = "model-route"_L1,
                  .valueName = "PATTERN=ROUTE"_L1,
                  .kind = Kind::List,
                  .expected = "PATTERN=ROUTE, ROUTE one of batch, flex, flex-then-batch, relay "
                              "(examples: gpt-5=flex, o4-*=flex-then-batch, gpt-4o=relay)"_L1,
                  .missing = "PATTERN=ROUTE, example: gpt-5*=flex-then-batch"_L1,
                  .help = "How requests for a model (exact name, or a prefix ending in *) are "
                          "answered: batch (the default), flex (OpenAI's flex processing at the "
                          "batch price, falling back to a batch, never to full price), "
                          "flex-then-batch (the same, to the batch at the first refusal), relay "
                          "(full price). Prefix rules use flex only for models the price table "
                          "gives a flex price. Repeatable."_L1,
                  .storeKey = "providers/model_routes"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.modelRoutes}; },
         .item = modelRouteItem},
        {.decl = {.setting = Setting::FlexTimeout,
                  .option = "flex-timeout"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = 60 * 60 * 1000,
                  .expected = "1s to 1h"_L1,
                  .missing = DurationValue,
                  .help = "How long a flex call may send nothing back before the request goes "
                          "into a batch instead (default: %1; 1s to 1h)."_L1,
                  .storeKey = "providers/flex_timeout"_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.flexTimeout}; }},
        {.decl = {.setting = Setting::QueueLimits,
                  .option = "queue-limit"_L1,
                  .valueName = "PATTERN=TOKENS"_L1,
                  .kind = Kind::List,
                  .expected = "PATTERN=TOKENS, TOKENS a count of prompt tokens from 1 to 10^13 "
                              "(examples: gpt-4o-mini=2M, gpt-4o*=90k)"_L1,
                  .missing = "PATTERN=TOKENS, example: gpt-4o-mini=2M"_L1,
                  .help = "The provider's queue limit for a model (exact name, or a prefix "
                          "ending in *): the prompt tokens of its batches that may wait at the "
                          "provider at once (OpenAI: the Batch queue limit on your organization's "
                          "Limits page). Batches that would go over it wait in the proxy until "
                          "earlier ones end, instead of failing with token_limit_exceeded. "
                          "Tokens are estimated as a quarter of the request's bytes. "
                          "Repeatable."_L1,
                  .storeKey = "providers/queue_limits"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.queueLimits}; },
         .item = queueLimitItem},
        {.decl = {.setting = Setting::BatchWindow,
                  .option = "batch-window"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1,
                  .maximum = MaxBatchWindow.count(),
                  .expected = "more than 0 and at most 24h"_L1,
                  .missing = DurationValue,
                  .help = "How long a batch collects requests, counted from its first request "
                          "(default: %1; more than 0, at most 24h)."_L1,
                  .storeKey = "proxy/batch_window"_L1,
                  .label = "Batch window"_L1,
                  .objectName = "batchWindow"_L1,
                  .hint = "How long a batch collects, from its first request (4s, 500ms, 2m)"_L1,
                  .changeName = "batch window"_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.batchWindow}; }},
        {.decl = {.setting = Setting::BatchSize,
                  .option = "batch-size"_L1,
                  .valueName = "N"_L1,
                  .kind = Kind::Count,
                  .minimum = 1,
                  .maximum = Config::ProviderMaxRequests,
                  .expected = "1 to 50000, the provider's limit"_L1,
                  .missing = "a number of requests"_L1,
                  .help = "Most requests in one batch (default: %1; 1 to 50000)."_L1,
                  .storeKey = "proxy/batch_size"_L1,
                  .label = "Batch size"_L1,
                  .objectName = "batchSize"_L1,
                  .hint = "Most requests per batch (1 to 50000)"_L1,
                  .changeName = "batch size"_L1},
         .field = [](Config &c) -> Field { return {.count = &c.batchSize}; }},
        {.decl = {.setting = Setting::BatchBytes,
                  .option = "batch-bytes"_L1,
                  .valueName = "SIZE"_L1,
                  .kind = Kind::Size,
                  .minimum = MinBatchBytes,
                  .maximum = Config::ProviderMaxBytes,
                  .expected = "1KB to 200MB, the provider's limit"_L1,
                  .missing = SizeValue,
                  .help = "Largest batch input file (default: %1; 1KB to 200MB)."_L1,
                  .storeKey = "proxy/batch_bytes"_L1,
                  .label = "Batch bytes"_L1,
                  .objectName = "batchBytes"_L1,
                  .hint = "Largest batch input file (1KB to 200MB, e.g. 25MB)"_L1,
                  .changeName = "batch bytes"_L1},
         .field = [](Config &c) -> Field { return {.size = &c.batchBytes}; }},
        {.decl = {.setting = Setting::PollInterval,
                  .option = "poll-interval"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = MinPollInterval.count(),
                  .maximum = Unbounded,
                  .expected = "at least 100ms"_L1,
                  .missing = DurationValue,
                  .help = "How often a running batch is checked (default: %1; at least "
                          "100ms)."_L1,
                  .storeKey = "proxy/poll_interval"_L1,
                  .label = "Poll interval"_L1,
                  .objectName = "pollInterval"_L1,
                  .hint = "How often a running batch is checked (at least 100ms)"_L1,
                  .changeName = "poll interval"_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.pollInterval}; }},
        {.decl = {.setting = Setting::DataDir,
                  .option = "data-dir"_L1,
                  .valueName = "DIR"_L1,
                  .kind = Kind::Path,
                  .missing = "a directory"_L1,
                  .help = "Where the proxy keeps its state (default: %1)."_L1},
         .field = [](Config &c) -> Field { return {.path = &c.dataDir}; },
         .defaultText = homeRelativeDataDir},
        {.decl = {.setting = Setting::InMemory,
                  .option = "in-memory"_L1,
                  .kind = Kind::Switch,
                  .help = "Run without the durable store: nothing survives a restart. For "
                          "comparisons, benchmarks and throwaway runs; cannot be combined with "
                          "--data-dir."_L1},
         .field = [](Config &c) -> Field { return {.flag = &c.inMemory}; }},
        {.decl = {.setting = Setting::MaxBody,
                  .option = "max-body"_L1,
                  .valueName = "SIZE"_L1,
                  .kind = Kind::Size,
                  .minimum = MinMaxBody,
                  .maximum = Unbounded,
                  .expected = "at least 1KiB"_L1,
                  .missing = SizeValue,
                  .help = "Largest request body accepted (default: %1; at least 1KiB)."_L1,
                  .storeKey = "proxy/max_body"_L1,
                  .label = "Largest request body"_L1,
                  .objectName = "maxBody"_L1,
                  .hint = "Bigger requests are refused with 413 (at least 1KiB, e.g. 32MiB)"_L1,
                  .changeName = "largest body"_L1},
         .field = [](Config &c) -> Field { return {.size = &c.maxBody}; }},
        // Missing from the file (written before it was a setting, or off, the default): off.
        {.decl = {.setting = Setting::GracePeriod,
                  .option = "grace-period"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::DurationOrOff,
                  .minimum = MinGracePeriod.count(),
                  .maximum = MaxGracePeriod.count(),
                  .expected = "1s to 30 days, or off"_L1,
                  .missing = "a duration or off, examples: 4s, 500ms, 0.5, 2m"_L1,
                  .help = "Cancel a batch not finished this long after it was created; what it "
                          "did not run goes through the synchronous API at full price (default: "
                          "%1; 1s to 30 days, or off)."_L1,
                  .storeKey = "proxy/grace_period"_L1,
                  .label = "Grace period"_L1,
                  .objectName = "gracePeriod"_L1,
                  .hint = "Cancel a batch not finished this long after it was created; what it "
                          "did not run goes through the synchronous API at full price (1s to 30 "
                          "days, e.g. 2h; 0 or off: never)"_L1,
                  .changeName = "grace period"_L1},
         .field = [](Config &c) -> Field { return {.maybeOff = &c.gracePeriod}; }},
        {.decl = {.setting = Setting::ResultTtl,
                  .option = "result-ttl"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = 30 * Day,
                  .expected = "1s to 30 days"_L1,
                  .missing = DurationValue,
                  .help = "How long answers nobody collected are kept for a client that "
                          "retries (default: %1; 1s to 30 days)."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.resultTtl}; }},
        // Missing from the file (written before it was a setting, or off, the default): off.
        {.decl = {.setting = Setting::Cache,
                  .option = "cache"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::DurationOrOff,
                  .minimum = 1000,
                  .maximum = 30 * Day,
                  .expected = "1s to 30 days, or off"_L1,
                  .missing = "a duration or off, examples: 10m, 2h, off"_L1,
                  .help = "Answer a request identical to one answered this recently (same "
                          "caller, key, endpoint and body) from the stored answer, paying nothing; "
                          "Cache-Control: no-cache skips it (default: %1; 1s to 30 days, or "
                          "off). Off by default: frameworks resend identical requests on "
                          "purpose to get a new answer."_L1,
                  .storeKey = "proxy/cache"_L1,
                  .label = "Answer cache"_L1,
                  .objectName = "cache"_L1,
                  .hint = "Answer a request identical to one answered this recently (same "
                          "caller, key, endpoint and body) from the stored answer, paying nothing "
                          "(1s to 30 days, e.g. 1h; off or empty: never)"_L1,
                  .changeName = "answer cache"_L1},
         .field = [](Config &c) -> Field { return {.maybeOff = &c.cache}; }},
        {.decl = {.setting = Setting::CacheMaxBytes,
                  .option = "cache-max-bytes"_L1,
                  .valueName = "SIZE"_L1,
                  .kind = Kind::Size,
                  .minimum = 1000 * 1000,
                  .maximum = 1000LL * 1000 * 1000 * 1000,
                  .expected = "1MB to 1TB"_L1,
                  .missing = SizeValue,
                  .help = "Most bytes of answers the cache keeps; the oldest go first (default: "
                          "%1; 1MB to 1TB)."_L1,
                  .storeKey = "proxy/cache_max_bytes"_L1},
         .field = [](Config &c) -> Field { return {.size = &c.cacheMaxBytes}; }},
        {.decl = {.setting = Setting::Streams,
                  .option = "streams"_L1,
                  .valueName = "batch|relay"_L1,
                  .kind = Kind::Choice,
                  .expected = "batch or relay"_L1,
                  .missing = "batch or relay"_L1,
                  .choices = "batch|relay"_L1,
                  .help = "What becomes of streaming requests (\"stream\": true on chat, "
                          "completions and responses): batch answers them with a replay of the "
                          "finished result as the endpoint's event stream, relay sends them on at "
                          "full price (default: %1)."_L1},
         .field = [](Config &c) -> Field { return {.flag = &c.relayStreams}; }},
        {.decl = {.setting = Setting::StreamKeepAlive,
                  .option = "stream-keepalive"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = 5 * 60 * 1000,
                  .expected = "1s to 5m"_L1,
                  .missing = DurationValue,
                  .help = "How often a streaming client waiting for its batch gets an SSE comment "
                          "(: keep-alive), so that its read timeouts never fire (default: %1; 1s "
                          "to 5m)."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.streamKeepAlive}; }},
        {.decl = {.setting = Setting::IoThreads,
                  .option = "io-threads"_L1,
                  .valueName = "N"_L1,
                  .kind = Kind::Count,
                  .minimum = 0,
                  .maximum = MaxIoThreads,
                  .expected = "1 to 64, or 0 for one per core"_L1,
                  .missing = "a number of threads"_L1,
                  .help = "How many threads serve HTTP connections (default: %1, one per core; "
                          "1 to 64)."_L1},
         .field = [](Config &c) -> Field { return {.count = &c.ioThreads}; }},
        {.decl = {.setting = Setting::AllowOrigins,
                  .option = "allow-origin"_L1,
                  .valueName = "ORIGIN"_L1,
                  .kind = Kind::List,
                  .expected = "an origin (scheme://host[:port]; example: "
                              "http://localhost:5173)"_L1,
                  .missing = "an origin, example: http://localhost:5173"_L1,
                  .help = "A web page origin (http://localhost:5173) that may call the proxy "
                          "from a browser, with CORS answers. Repeatable. Other pages get "
                          "403."_L1,
                  // Space-separated (a list QSettings read from commas is joined back).
                  .storeKey = "access/allow_origins"_L1,
                  .label = "Allowed origins"_L1,
                  .objectName = "allowOrigin"_L1,
                  .hint = "Web pages (scheme://host[:port]) that may call the proxy from a "
                          "browser, with CORS answers; other pages get 403 (--allow-origin)"_L1,
                  .changeName = "allowed origins"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.allowOrigins}; },
         .item = originItem},
        {.decl = {.setting = Setting::AllowHosts,
                  .option = "allow-host"_L1,
                  .valueName = "NAME"_L1,
                  .kind = Kind::List,
                  .expected = "a host name (example: proxy.example.lan)"_L1,
                  .missing = "a host name"_L1,
                  .help = "A Host name served besides IP literals and localhost (other names get "
                          "421: DNS rebinding). Repeatable."_L1,
                  .storeKey = "access/allow_hosts"_L1,
                  .label = "Allowed hosts"_L1,
                  .objectName = "allowHost"_L1,
                  .hint = "Host names served besides IP addresses and localhost; other names get "
                          "421 (--allow-host)"_L1,
                  .changeName = "allowed hosts"_L1},
         .field = [](Config &c) -> Field { return {.list = &c.allowHosts}; },
         .item = hostItem},
        {.decl = {.setting = Setting::TokensFile,
                  .option = "tokens-file"_L1,
                  .valueName = "FILE"_L1,
                  .kind = Kind::Path,
                  .missing = "a file"_L1,
                  .help = "Proxy tokens, one \"name token\" a line, mode 0600. With tokens, every "
                          "request needs one (default: %1, if it exists)."_L1},
         .field = [](Config &c) -> Field { return {.path = &c.tokensFile}; },
         .defaultText = homeRelativeTokensFile},
        {.decl = {.setting = Setting::HeaderTimeout,
                  .option = "header-timeout"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = Hour,
                  .expected = "1s to 1h"_L1,
                  .missing = DurationValue,
                  .help = "A request's header block must arrive within this (default: %1), "
                          "extended by 1s for every --min-rate bytes that come, up to "
                          "--header-timeout-max. Then: 408 and the connection closes."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.frontDoor.headerTimeout}; }},
        {.decl = {.setting = Setting::HeaderTimeoutMax,
                  .option = "header-timeout-max"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = Hour,
                  .expected = "1s to 1h"_L1,
                  .missing = DurationValue,
                  .help = "The longest a header block may take with those extensions (default: "
                          "%1)."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.frontDoor.headerTimeoutMax}; }},
        {.decl = {.setting = Setting::BodyTimeout,
                  .option = "body-timeout"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 1000,
                  .maximum = Hour,
                  .expected = "1s to 1h"_L1,
                  .missing = DurationValue,
                  .help = "After this much of a body's time (default: %1), it must keep coming "
                          "at --min-rate or more: 408."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.frontDoor.bodyTimeout}; }},
        {.decl = {.setting = Setting::MinRate,
                  .option = "min-rate"_L1,
                  .valueName = "SIZE"_L1,
                  .kind = Kind::Size,
                  .minimum = 0,
                  .maximum = 1LL << 30,
                  .expected = "0 to 1GiB"_L1,
                  .missing = SizeValue,
                  .help = "Bytes a second a slow client must send (default: %1; 0 turns the "
                          "rate off)."_L1},
         .field = [](Config &c) -> Field { return {.size = &c.frontDoor.minRate}; }},
        {.decl = {.setting = Setting::MaxConnections,
                  .option = "max-connections"_L1,
                  .valueName = "N"_L1,
                  .kind = Kind::Count,
                  .minimum = 0,
                  .maximum = 1'000'000,
                  .expected = "0 to 1000000"_L1,
                  .missing = "a number"_L1,
                  .help = "Open connections at most (default: %1, the open-file limit less "
                          "128); more get 503 with Retry-After."_L1},
         .field = [](Config &c) -> Field { return {.count = &c.frontDoor.maxConnections}; }},
        {.decl = {.setting = Setting::MaxConnectionsPerIp,
                  .option = "max-connections-per-ip"_L1,
                  .valueName = "N"_L1,
                  .kind = Kind::Count,
                  .minimum = 0,
                  .maximum = 1'000'000,
                  .expected = "0 to 1000000"_L1,
                  .missing = "a number"_L1,
                  .help = "Open connections from one address, loopback excepted (default: %1; "
                          "0: no limit); more get 503."_L1},
         .field = [](Config &c) -> Field { return {.count = &c.frontDoor.maxConnectionsPerIp}; }},
        {.decl = {.setting = Setting::MaxPipelined,
                  .option = "max-pipelined"_L1,
                  .valueName = "N"_L1,
                  .kind = Kind::Count,
                  .minimum = 1,
                  .maximum = 100'000,
                  .expected = "1 to 100000"_L1,
                  .missing = "a number"_L1,
                  .help = "Requests read ahead on one connection while an earlier one is "
                          "answered (default: %1; 1 to 100000); then the proxy stops reading "
                          "from it."_L1},
         .field = [](Config &c) -> Field { return {.count = &c.frontDoor.maxPipelined}; }},
        {.decl = {.setting = Setting::MaxOutputBuffer,
                  .option = "max-output-buffer"_L1,
                  .valueName = "SIZE"_L1,
                  .kind = Kind::Size,
                  .minimum = 1024,
                  .maximum = 1LL << 30,
                  .expected = "1KiB to 1GiB"_L1,
                  .missing = SizeValue,
                  .help = "Unread answer bytes after which a connection's next request waits "
                          "for the client to read (default: %1; 1KiB to 1GiB)."_L1},
         .field = [](Config &c) -> Field { return {.size = &c.frontDoor.maxOutputBuffer}; }},
        {.decl = {.setting = Setting::StartInTray,
                  .option = "start-in-tray"_L1,
                  .kind = Kind::Switch,
                  .help = "Start the desktop app with its window hidden in the tray (the window "
                          "shows when there is no tray). Start at login uses it."_L1},
         .field = [](Config &c) -> Field { return {.flag = &c.startInTray}; }},
        {.decl = {.setting = Setting::Screenshot,
                  .option = "screenshot"_L1,
                  .valueName = "FILE"_L1,
                  .kind = Kind::Path,
                  .missing = "a file name"_L1,
                  .help = "Start the desktop app, save its window as a PNG after the delay, and "
                          "exit."_L1},
         .field = [](Config &c) -> Field { return {.path = &c.screenshotPath}; }},
        {.decl = {.setting = Setting::ScreenshotDelay,
                  .option = "screenshot-delay"_L1,
                  .valueName = "DUR"_L1,
                  .kind = Kind::Duration,
                  .minimum = 0,
                  .maximum = MaxScreenshotDelay.count(),
                  .expected = "at most 1h"_L1,
                  .missing = DurationValue,
                  .help = "How long the app serves before the screenshot (default: %1; at most "
                          "1h)."_L1},
         .field = [](Config &c) -> Field { return {.duration = &c.screenshotDelay}; }},
        {.decl = {.setting = Setting::ScreenshotPages,
                  .option = "screenshot-page"_L1,
                  .valueName = "PAGE"_L1,
                  .kind = Kind::List,
                  .expected = "a page: dashboard, first-run, history, settings or providers"_L1,
                  .missing = "a page (dashboard, first-run, history, settings, providers)"_L1,
                  .help = "The page --screenshot pictures: dashboard, first-run (the Connect a "
                          "client panel), history, settings or providers. Repeatable: with "
                          "several, FILE is a folder and each page is saved in it as PAGE.png, "
                          "in the order given."_L1},
         .field = [](Config &c) -> Field { return {.list = &c.screenshotPages}; },
         .item = screenshotPageItem},
        {.decl = {.setting = Setting::Verbose,
                  .option = "verbose"_L1,
                  .kind = Kind::Switch,
                  .help = "Log debug messages."_L1},
         .field = [](Config &c) -> Field { return {.flag = &c.verbose}; }},
        // Not settings but the command line's own switches; no field.
        {.decl = {.setting = Setting::Help,
                  .option = "help"_L1,
                  .kind = Kind::Switch,
                  .help = "Show this help and exit."_L1}},
        {.decl = {.setting = Setting::Version,
                  .option = "version"_L1,
                  .kind = Kind::Switch,
                  .help = "Show the version and exit."_L1}},
    };
    return table;
}

const Entry &entry(Setting setting) {
    for (const Entry &e : entries()) {
        if (e.decl.setting == setting)
            return e;
    }
    Q_UNREACHABLE();
}

// The entry of "--name" (or "-h"), or nullptr.
const Entry *entryForArgument(QStringView name) {
    if (name == u"-h")
        return &entry(Setting::Help);
    if (!name.startsWith(u"--"))
        return nullptr;
    for (const Entry &e : entries()) {
        if (name.sliced(2) == e.decl.option)
            return &e;
    }
    return nullptr;
}

// Checks a number against the entry's bounds: "is out of range (expected ...)", or "is too
// short" / "is too small" when there is only a lower bound.
QString outOfRange(const SettingDeclaration &decl, const QString &quoted, qint64 value) {
    if (value >= decl.minimum && value <= decl.maximum)
        return QString();
    if (decl.maximum == Unbounded) {
        const auto what = decl.kind == Kind::Size ? "is too small"_L1 : "is too short"_L1;
        return quoted + u' ' + what + QStringLiteral(" (expected ") + decl.expected + u')';
    }
    return quoted + QStringLiteral(" is out of range (expected ") + decl.expected + u')';
}

QString checkListen(Config &config, const QString &value, const QString &quoted) {
    const auto addresses = parseListen(value);
    if (!addresses) {
        return quoted + QStringLiteral(" is not HOST:PORT with an IP address, localhost or nothing "
                                       "as HOST and a port 0 to 65535 (examples: 127.0.0.1:3030, "
                                       "[::1]:3030, localhost:3030, :3030)");
    }
    config.listen = *addresses;
    config.listenText = value.trimmed();
    return QString();
}

QString absolutePath(QString path) {
    if (path == u'~' || path.startsWith(QLatin1StringView("~/")))
        path = QDir::homePath() + path.mid(1);
    return QDir::cleanPath(QFileInfo(path).absoluteFilePath());
}

// One entry of a list setting (one --allow-origin or --allow-host value). Accepted: `item` gets
// it as the front door compares it and the result is empty; refused: the reason.
QString checkListEntry(const Entry &e, QStringView text, const QByteArray &apiKey,
                       QByteArray *item) {
    const auto accepted = e.item(text.toString());
    if (!accepted)
        return shown(text, apiKey) + QStringLiteral(" is not ") + e.decl.expected;
    *item = *accepted;
    return QString();
}

// A list setting's entries: separated by spaces, commas or line breaks.
QList<QStringView> listEntries(QStringView text) {
    QList<QStringView> entries;
    qsizetype start = 0;
    for (qsizetype i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i].isSpace() || text[i] == u',') {
            if (i > start)
                entries.append(text.sliced(start, i - start));
            start = i + 1;
        }
    }
    return entries;
}

// Checks one setting's value as the command line does; on success stores it in `config`.
// Returns what is wrong with it (starting with the quoted value), or an empty string.
QString checkSetting(Config &config, const Entry &e, const QString &value,
                     const QByteArray &apiKey) {
    const SettingDeclaration &decl = e.decl;
    const QString quoted = shown(value, apiKey);
    const Field field = e.field ? e.field(config) : Field();
    switch (decl.kind) {
    case Kind::Switch: {
        if (field.flag) {
            const QString text = value.trimmed().toLower();
            *field.flag = !(text.isEmpty() || text == u"false" || text == u"off" || text == u"0");
        }
        return QString();
    }
    case Kind::Listen:
        return checkListen(config, value, quoted);
    case Kind::Url: {
        QString problem;
        const auto url = parseUpstream(value, &problem);
        if (!url)
            return quoted + u' ' + problem;
        *field.url = *url;
        return QString();
    }
    case Kind::Duration:
    case Kind::DurationOrOff: {
        const bool offAllowed = decl.kind == Kind::DurationOrOff;
        // "off" in any case, or nothing at all (an empty field in the desktop app).
        const QString trimmed = value.trimmed();
        if (offAllowed &&
            (trimmed.isEmpty() || trimmed.compare(u"off", Qt::CaseInsensitive) == 0)) {
            field.maybeOff->reset();
            return QString();
        }
        const auto duration = parseDuration(trimmed);
        if (!duration) {
            return quoted +
                   (offAllowed ? QStringLiteral(" is not a duration or off (")
                               : QStringLiteral(" is not a duration (")) +
                   DurationExamples + u')';
        }
        const QString problem = outOfRange(decl, quoted, duration->count());
        if (!problem.isEmpty())
            return problem;
        if (offAllowed)
            *field.maybeOff = *duration;
        else
            *field.duration = *duration;
        return QString();
    }
    case Kind::Size: {
        const auto size = parseSize(value);
        if (!size)
            return quoted + QStringLiteral(" is not a size (") + SizeExamples + u')';
        const QString problem = outOfRange(decl, quoted, *size);
        if (!problem.isEmpty())
            return problem;
        *field.size = *size;
        return QString();
    }
    case Kind::Count: {
        const QString trimmed = value.trimmed();
        if (!allAsciiDigits(trimmed)) {
            return quoted + QStringLiteral(" is not a whole number (expected ") + decl.expected +
                   u')';
        }
        bool ok = false;
        const qlonglong count = trimmed.toLongLong(&ok);
        if (!ok)
            return quoted + QStringLiteral(" is out of range (expected ") + decl.expected + u')';
        const QString problem = outOfRange(decl, quoted, count);
        if (!problem.isEmpty())
            return problem;
        *field.count = static_cast<int>(count);
        return QString();
    }
    case Kind::Choice: {
        const qsizetype bar = decl.choices.indexOf(u'|');
        const QString text = value.trimmed();
        if (text.compare(decl.choices.first(bar), Qt::CaseInsensitive) == 0)
            *field.flag = false;
        else if (text.compare(decl.choices.sliced(bar + 1), Qt::CaseInsensitive) == 0)
            *field.flag = true;
        else
            return quoted + QStringLiteral(" is not ") + decl.expected;
        return QString();
    }
    case Kind::Path: {
        const QString path = value.trimmed();
        if (path.isEmpty())
            return QStringLiteral("missing value (expected ") + decl.missing + u')';
        *field.path = absolutePath(path);
        return QString();
    }
    case Kind::Name: {
        const QString text = value.trimmed();
        if (text.isEmpty() || text.compare(u"none", Qt::CaseInsensitive) == 0) {
            field.name->clear();
            return QString();
        }
        QString problem;
        if (!parseRouteRule(QString(QStringLiteral("x=") + text), &problem))
            return quoted + QStringLiteral(" is not ") + decl.expected;
        *field.name = text.toUtf8();
        return QString();
    }
    case Kind::List: {
        QList<QByteArray> list;
        for (QStringView text : listEntries(value)) {
            QByteArray item;
            const QString problem = checkListEntry(e, text, apiKey, &item);
            if (!problem.isEmpty())
                return problem;
            if (!list.contains(item))
                list.append(item);
        }
        *field.list = list;
        return QString();
    }
    }
    return QString();
}

QString textOf(const Config &constConfig, const Entry &e) {
    // Only read: the field accessors are shared with checkSetting.
    Config &config = const_cast<Config &>(constConfig);
    const Field field = e.field ? e.field(config) : Field();
    switch (e.decl.kind) {
    case Kind::Switch:
        if (field.flag)
            return *field.flag ? QStringLiteral("true") : QStringLiteral("false");
        return QString();
    case Kind::Listen: {
        // What the user wrote, if it still describes the addresses; otherwise rebuilt from them.
        const auto written = parseListen(config.listenText);
        if (written && *written == config.listen)
            return config.listenText;
        if (config.listen.isEmpty())
            return QString();
        const quint16 port = config.listen.constFirst().port;
        const auto localhost =
            parseListen(QString(QStringLiteral("localhost:") + QString::number(port)));
        if (localhost && *localhost == config.listen)
            return QStringLiteral("localhost:") + QString::number(port);
        const auto any = parseListen(QString(u':' + QString::number(port)));
        if (any && *any == config.listen)
            return QStringLiteral(":") + QString::number(port);
        const QHostAddress &address = config.listen.constFirst().address;
        const QString host = address.protocol() == QAbstractSocket::IPv6Protocol
                                 ? u'[' + address.toString() + u']'
                                 : address.toString();
        return host + u':' + QString::number(port);
    }
    case Kind::Url:
        return field.url->toString(QUrl::FullyEncoded);
    case Kind::Duration:
        return formatDuration(*field.duration);
    case Kind::DurationOrOff: {
        const auto &duration = *field.maybeOff;
        return duration ? formatDuration(*duration) : QStringLiteral("off");
    }
    case Kind::Size:
        return formatSize(*field.size);
    case Kind::Count:
        return QString::number(*field.count);
    case Kind::Choice: {
        const qsizetype bar = e.decl.choices.indexOf(u'|');
        return *field.flag ? QString(e.decl.choices.sliced(bar + 1))
                           : QString(e.decl.choices.first(bar));
    }
    case Kind::Path:
        return *field.path;
    case Kind::Name:
        return field.name->isEmpty() ? QStringLiteral("none") : QString::fromUtf8(*field.name);
    case Kind::List: {
        QStringList items;
        for (const QByteArray &item : std::as_const(*field.list))
            items.append(QString::fromUtf8(item));
        return items.join(u' ');
    }
    }
    return QString();
}

// `text` in lines of at most `width` characters, broken at spaces.
QStringList wrapped(const QString &text, qsizetype width) {
    QStringList lines;
    QString line;
    const QStringList words = text.split(u' ', Qt::SkipEmptyParts);
    for (const QString &word : words) {
        if (!line.isEmpty() && line.size() + 1 + word.size() > width) {
            lines.append(line);
            line.clear();
        }
        line += (line.isEmpty() ? QString() : QStringLiteral(" ")) + word;
    }
    if (!line.isEmpty())
        lines.append(line);
    return lines;
}

// "  --batch-window DUR     How long ..." with the text wrapped at column 80 under column 25.
QString optionHelp(const Entry &e) {
    constexpr qsizetype Indent = 25;
    constexpr qsizetype Width = 80;
    const SettingDeclaration &decl = e.decl;
    QString names = decl.setting == Setting::Help ? QStringLiteral("-h, ") : QString();
    names += decl.optionName();
    if (!decl.valueName.isEmpty())
        names += u' ' + decl.valueName;
    QString help = decl.help;
    if (help.contains(QStringLiteral("%1"))) {
        help = help.arg(e.defaultText ? e.defaultText() : textOf(Config(), e));
    }
    const QString indent(Indent, u' ');
    QString text = QStringLiteral("  ") + names;
    text += text.size() < Indent ? QString(Indent - text.size(), u' ') : QString(u'\n' + indent);
    text += wrapped(help, Width - Indent).join(u'\n' + indent);
    return text;
}

class Parser {
public:
    Parser(const QByteArray &environmentKey, const Config &base)
        : m_apiKey(environmentKey.trimmed().isEmpty() ? base.apiKey : environmentKey.trimmed())
        , m_config(base) {
        m_config.apiKey = m_apiKey;
    }

    CommandLine parse(const QStringList &args) {
        // QCommandLineParser parses what it can word our way: options of the table, each with
        // its value. What it would word otherwise (an unknown option, a switch with a value, a
        // value missing or taken from the next option, a positional argument) is found here,
        // with the position of the argument, and not handed on.
        QStringList handedOn{args.value(0)};
        QList<qsizetype> positions; // in args, of each option handed on, in order
        for (qsizetype i = 1; i < args.size(); ++i) {
            const QString &arg = args[i];
            const qsizetype equals = arg.startsWith(u"--") ? arg.indexOf(u'=') : -1;
            const QStringView name = equals > 0 ? QStringView(arg).left(equals) : QStringView(arg);
            const Entry *e = entryForArgument(name);
            if (!e) {
                fail(i, unknownArgument(arg, name));
                continue;
            }
            const QString option = e->decl.optionName();
            if (!e->decl.takesValue() && equals > 0) {
                fail(i, errorLine(option, QStringLiteral("takes no value (got ") +
                                              shown(QStringView(arg).sliced(equals + 1), m_apiKey) +
                                              u')'));
                continue;
            }
            if (e->decl.takesValue() && equals < 0) {
                if (i + 1 >= args.size() || args[i + 1].startsWith(u"--")) {
                    fail(i, errorLine(option, QStringLiteral("missing value (expected ") +
                                                  e->decl.missing + u')'));
                    continue;
                }
                positions.append(i);
                handedOn << arg << args[++i];
                continue;
            }
            positions.append(i);
            handedOn.append(arg);
        }

        QCommandLineParser parser;
        for (const Entry &e : entries()) {
            QStringList names{e.decl.option};
            if (e.decl.setting == Setting::Help)
                names.prepend(QStringLiteral("h"));
            parser.addOption(QCommandLineOption(names, e.decl.help, e.decl.valueName));
        }
        if (!parser.parse(handedOn)) // not expected: everything handed on is well formed
            fail(0, QStringLiteral("llm-proxy: ") + parser.errorText());

        // The values in the order given: the last one wins, a list's add up.
        QHash<QString, qsizetype> used;
        QSet<Setting> given;
        const QStringList found = parser.optionNames();
        for (qsizetype k = 0; k < found.size() && k < positions.size(); ++k) {
            const QString dashed =
                (found[k].size() == 1 ? QStringLiteral("-") : QStringLiteral("--")) + found[k];
            const Entry *e = entryForArgument(dashed);
            if (!e)
                continue;
            QString value;
            if (e->decl.takesValue())
                value = parser.values(found[k]).value(used[found[k]]++);
            else if (e->field)
                value = QStringLiteral("true");
            else
                continue; // --help, --version: isSet() below
            const QString problem = e->decl.kind == Kind::List
                                        ? addToList(*e, value, !given.contains(e->decl.setting))
                                        : checkSetting(m_config, *e, value, m_apiKey);
            given.insert(e->decl.setting);
            if (!problem.isEmpty())
                fail(positions[k], errorLine(e->decl.optionName(), problem));
        }
        const bool help = parser.isSet(QStringLiteral("help"));
        const bool version = parser.isSet(QStringLiteral("version"));

        QString error = m_error;
        if (error.isEmpty() && m_config.noGui && !m_config.screenshotPath.isEmpty()) {
            error = errorLine(settingOption(Setting::Screenshot),
                              QStringLiteral("needs the desktop app (drop --no-gui)"));
        }
        if (error.isEmpty() && !m_config.screenshotPages.isEmpty() &&
            m_config.screenshotPath.isEmpty()) {
            error = errorLine(settingOption(Setting::ScreenshotPages),
                              QStringLiteral("needs --screenshot FILE"));
        }
        if (error.isEmpty() && m_config.inMemory && given.contains(Setting::DataDir))
            error = QStringLiteral("llm-proxy: --in-memory and --data-dir exclude each other");
        if (error.isEmpty() && !help && !version)
            error = loadTokens(given.contains(Setting::TokensFile));
        if (error.isEmpty() && !help && !version) {
            m_config.apiKey = m_apiKey;
            if (m_config.listen.isEmpty())
                m_config.listen = defaultListenAddresses();
            error = exposureProblem(m_config);
        }
        if (error.isEmpty() && !help && !version) {
            // Routes and the default must name configured providers (keys are looked up later).
            configuredProviders(
                m_config, [](const QByteArray &) { return QByteArray(); }, &error);
        }

        CommandLine result;
        if (help) {
            result.action = CommandLine::Action::ShowHelp;
            result.message = helpText();
        } else if (version) {
            result.action = CommandLine::Action::ShowVersion;
            result.message = QStringLiteral("llm-proxy ") + QLatin1StringView(LLMPROXY_VERSION);
        } else if (!error.isEmpty()) {
            result.action = CommandLine::Action::Error;
            result.message = error;
        } else {
            result.action = CommandLine::Action::Run;
        }
        if (m_config.listen.isEmpty())
            m_config.listen = defaultListenAddresses();
        if (m_config.dataDir.isEmpty())
            m_config.dataDir = defaultDataDir();
        m_config.apiKey = m_apiKey; // empty when neither set (or only whitespace)
        result.config = m_config;
        return result;
    }

private:
    // Keeps the error of the earliest argument: the first error on the command line wins.
    void fail(qsizetype position, const QString &error) {
        if (position < m_errorPosition) {
            m_errorPosition = position;
            m_error = error;
        }
    }

    QString unknownArgument(const QString &arg, QStringView name) const {
        if (arg.startsWith(u'-')) {
            return QStringLiteral("llm-proxy: unknown option ") + shown(name, m_apiKey) +
                   QStringLiteral(" (see --help)");
        }
        return QStringLiteral("llm-proxy: unexpected argument ") + shown(arg, m_apiKey) +
               QStringLiteral(" (options start with --; see --help)");
    }

    // One --allow-origin or --allow-host: the first replaces the saved list (as every option
    // overrides its saved setting), the next add to it.
    QString addToList(const Entry &e, const QString &value, bool first) {
        QByteArray item;
        const QString problem = checkListEntry(e, value, m_apiKey, &item);
        if (!problem.isEmpty())
            return problem;
        QList<QByteArray> &list = *e.field(m_config).list;
        if (first)
            list.clear();
        if (!list.contains(item))
            list.append(item);
        return QString();
    }

    // Reads the tokens file: the one given, or the default one if it exists. Returns an error
    // line, or an empty string.
    QString loadTokens(bool explicitFile) {
        if (!explicitFile) {
            const QString fallback = defaultTokensFile();
            if (fallback.isEmpty() || !QFileInfo::exists(fallback))
                return QString();
            m_config.tokensFile = fallback;
        }
        QString problem;
        const auto tokens = loadProxyTokens(m_config.tokensFile, &problem);
        if (!tokens)
            return errorLine(settingOption(Setting::TokensFile), problem);
        m_config.tokens = *tokens;
        return QString();
    }

    QByteArray m_apiKey; // trimmed, the environment's over base's; for the config and redacting
    Config m_config;
    QString m_error;
    qsizetype m_errorPosition = std::numeric_limits<qsizetype>::max();
};

} // namespace

std::optional<milliseconds> parseDuration(QStringView text) {
    const auto ms = parseScaled(text, DurationUnits);
    if (!ms)
        return std::nullopt;
    return milliseconds(*ms);
}

std::optional<qint64> parseSize(QStringView text) {
    return parseScaled(text, SizeUnits);
}

std::optional<QList<ListenAddress>> parseListen(QStringView text) {
    text = text.trimmed();
    const qsizetype colon = text.lastIndexOf(u':');
    if (colon < 0)
        return std::nullopt;
    const QStringView host = text.left(colon);
    const QStringView portText = text.sliced(colon + 1);
    if (!allAsciiDigits(portText) || portText.size() > 5)
        return std::nullopt;
    const int portNumber = portText.toInt();
    if (portNumber > 65535)
        return std::nullopt;
    const auto port = static_cast<quint16>(portNumber);

    if (host.isEmpty()) {
        return QList<ListenAddress>{{QHostAddress(QHostAddress::AnyIPv4), port},
                                    {QHostAddress(QHostAddress::AnyIPv6), port}};
    }
    if (host.compare(QLatin1StringView("localhost"), Qt::CaseInsensitive) == 0) {
        return QList<ListenAddress>{{QHostAddress(QHostAddress::LocalHost), port},
                                    {QHostAddress(QHostAddress::LocalHostIPv6), port}};
    }
    QHostAddress address;
    if (host.startsWith(u'[') && host.endsWith(u']') && host.size() > 2) {
        if (!address.setAddress(host.sliced(1, host.size() - 2).toString()) ||
            address.protocol() != QAbstractSocket::IPv6Protocol) {
            return std::nullopt;
        }
    } else if (isDottedQuad(host)) {
        if (!address.setAddress(host.toString()) ||
            address.protocol() != QAbstractSocket::IPv4Protocol) {
            return std::nullopt;
        }
    } else {
        return std::nullopt; // host names other than localhost, unbracketed IPv6, garbage
    }
    return QList<ListenAddress>{{address, port}};
}

QString exposureProblem(const Config &config) {
    // The stored keys of other providers count as much as the OpenAI key.
    if ((config.apiKey.isEmpty() && config.providerKeys.isEmpty()) || !config.tokens.isEmpty())
        return QString();
    for (const ListenAddress &listen : config.listen) {
        if (!listen.address.isLoopback()) {
            return QStringLiteral("llm-proxy: listening on %1 would let anyone who reaches it "
                                  "spend the configured %2; add proxy tokens "
                                  "(--tokens-file FILE, \"name token\" lines, mode 0600) or "
                                  "listen on loopback (--listen 127.0.0.1:PORT)")
                .arg(config.listenText, config.apiKey.isEmpty() ? QStringLiteral("provider keys")
                                                                : QStringLiteral("OpenAI key"));
        }
    }
    return QString();
}

QList<ListenAddress> defaultListenAddresses() {
    return {{QHostAddress(QHostAddress::LocalHost), DefaultPort},
            {QHostAddress(QHostAddress::LocalHostIPv6), DefaultPort}};
}

QString defaultDataDir() {
    if (!QCoreApplication::applicationName().isEmpty()) {
        const QString dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
        if (!dir.isEmpty())
            return dir;
    }
    const QString shared = QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation);
    if (shared.isEmpty())
        return QString();
    return shared + QStringLiteral("/llm-proxy");
}

CommandLine parseCommandLine(const QStringList &args, const QByteArray &openAiApiKeyFromEnvironment,
                             const Config &base) {
    return Parser(openAiApiKeyFromEnvironment, base).parse(args);
}

QString SettingDeclaration::optionName() const {
    return QStringLiteral("--") + option;
}

const QList<QByteArray> &screenshotPageNames() {
    static const QList<QByteArray> names{"dashboard", "first-run", "history", "settings",
                                         "providers"};
    return names;
}

const QList<SettingDeclaration> &settingDeclarations() {
    static const QList<SettingDeclaration> declarations = [] {
        QList<SettingDeclaration> list;
        for (const Entry &e : entries())
            list.append(e.decl);
        return list;
    }();
    return declarations;
}

const SettingDeclaration &settingDeclaration(Setting setting) {
    return entry(setting).decl;
}

namespace {
template <std::size_t N>
QList<ValueUnit> namedUnits(const std::array<Unit, N> &units) {
    QList<ValueUnit> named;
    for (const Unit &unit : units) {
        if (!unit.name.isEmpty())
            named.append(ValueUnit{unit.name, unit.factor});
    }
    return named;
}
} // namespace

QList<ValueUnit> durationUnits() {
    return namedUnits(DurationUnits);
}

QList<ValueUnit> sizeUnits() {
    return namedUnits(SizeUnits);
}

QString applySetting(Config &config, Setting setting, const QString &text) {
    return checkSetting(config, entry(setting), text, config.apiKey);
}

QString settingText(const Config &config, Setting setting) {
    return textOf(config, entry(setting));
}

QList<ConfiguredProvider>
configuredProviders(const Config &config,
                    const std::function<QByteArray(const QByteArray &name)> &environment,
                    QString *error) {
    QList<ConfiguredProvider> out;
    out.append({QByteArray(DefaultProviderName), providerProfile(DefaultProviderName),
                config.upstream, config.apiKey});
    for (const QByteArray &text : config.providers) {
        QString problem;
        const auto spec = parseProviderSpec(QString::fromUtf8(text), &problem);
        if (!spec) {
            *error =
                QStringLiteral("llm-proxy: --provider ") + QString::fromUtf8(text) + u' ' + problem;
            return {};
        }
        const ProviderProfile *profile = providerProfile(spec->profile);
        ConfiguredProvider provider;
        provider.name = spec->name;
        provider.profile = profile;
        const bool isDefault = spec->name == DefaultProviderName;
        provider.baseUrl = profile->baseUrlFor(!spec->url.isEmpty() ? spec->url
                                               : isDefault          ? config.upstream
                                                                    : profile->defaultUrl);
        const QByteArray variable =
            spec->keyEnvironment.isEmpty() ? profile->keyEnvironment : spec->keyEnvironment;
        provider.apiKey = environment(variable).trimmed();
        if (provider.apiKey.isEmpty())
            provider.apiKey = config.providerKeys.value(spec->name).trimmed();
        if (provider.apiKey.isEmpty() && isDefault)
            provider.apiKey = config.apiKey;
        const auto same = std::find_if(out.begin(), out.end(), [&](const ConfiguredProvider &p) {
            return p.name == provider.name;
        });
        if (same != out.end())
            *same = provider;
        else
            out.append(provider);
    }
    const auto known = [&](const QByteArray &name) {
        return std::any_of(out.cbegin(), out.cend(),
                           [&](const ConfiguredProvider &p) { return p.name == name; });
    };
    QStringList names;
    for (const ConfiguredProvider &p : std::as_const(out))
        names.append(QString::fromUtf8(p.name));
    for (const QByteArray &text : config.routes) {
        QString problem;
        const auto rule = parseRouteRule(QString::fromUtf8(text), &problem);
        if (rule && !known(rule->provider)) {
            *error = QStringLiteral("llm-proxy: --route %1 names a provider that is not "
                                    "configured (providers: %2)")
                         .arg(QString::fromUtf8(text), names.join(QStringLiteral(", ")));
            return {};
        }
    }
    if (!config.defaultProvider.isEmpty() && !known(config.defaultProvider)) {
        *error =
            QStringLiteral("llm-proxy: --default-provider %1 is not a configured provider "
                           "(providers: %2)")
                .arg(QString::fromUtf8(config.defaultProvider), names.join(QStringLiteral(", ")));
        return {};
    }
    if (const QString problem = modelRouteProblem(config, out); !problem.isEmpty()) {
        *error = problem;
        return {};
    }
    return out;
}

QString modelRouteProblem(const Config &config, const QList<ConfiguredProvider> &providers) {
    const ProviderRouter router = providerRouter(config, providers);
    for (const QByteArray &text : config.modelRoutes) {
        QString problem;
        const auto rule = parseModelRouteRule(QString::fromUtf8(text), &problem);
        if (!rule)
            return QStringLiteral("llm-proxy: --model-route %1 %2")
                .arg(QString::fromUtf8(text), problem);
        if (!isFlex(rule->route))
            continue;
        // Where the rule's models go (for a prefix, what the prefix itself routes to).
        const std::optional<QByteArray> name =
            router.route(QByteArrayLiteral("/v1/chat/completions"), rule->pattern);
        if (!name)
            continue; // unrouted models get 400 before any route applies
        const auto provider =
            std::find_if(providers.cbegin(), providers.cend(),
                         [&](const ConfiguredProvider &p) { return p.name == *name; });
        if (provider == providers.cend() || !provider->profile ||
            provider->profile->name != QByteArrayView("openai"))
            return QStringLiteral("llm-proxy: --model-route %1: flex processing (\"service_tier\": "
                                  "\"flex\") is OpenAI's, but these models go to provider %2 "
                                  "(profile %3); use batch or relay for them")
                .arg(QString::fromUtf8(text), QString::fromUtf8(*name),
                     provider != providers.cend() && provider->profile
                         ? QString::fromUtf8(provider->profile->name)
                         : QStringLiteral("none"));
    }
    return QString();
}

ProviderRouter providerRouter(const Config &config, const QList<ConfiguredProvider> &providers) {
    QList<RouteRule> rules;
    for (const QByteArray &text : config.routes) {
        QString problem;
        if (const auto rule = parseRouteRule(QString::fromUtf8(text), &problem))
            rules.append(*rule);
    }
    QList<QByteArray> names;
    for (const ConfiguredProvider &provider : providers)
        names.append(provider.name);
    return ProviderRouter(rules, config.defaultProvider, names);
}

QString settingOption(Setting setting) {
    return entry(setting).decl.optionName();
}

QString helpText() {
    QStringList options;
    for (const Entry &e : entries())
        options.append(optionHelp(e));
    return QStringLiteral(
               "Usage: llm-proxy [options]\n"
               "\n"
               "A local proxy for the OpenAI API. Chat completions and embeddings sent to it are\n"
               "collected into Batch API jobs (half the price) and each waiting client gets its\n"
               "own answer; every other request is relayed to the upstream unchanged. Point an\n"
               "OpenAI SDK at http://127.0.0.1:3030/v1.\n"
               "\n"
               "Options:\n") +
           options.join(u'\n') +
           QStringLiteral(
               "\n"
               "\n"
               "Both --option VALUE and --option=VALUE work; a repeated option's last value wins\n"
               "(--allow-origin and --allow-host add up).\n"
               "Settings saved in the desktop app apply in both modes; options override them\n"
               "(--allow-origin and --allow-host given here replace the saved lists).\n"
               "\n"
               "Values:\n"
               "  DUR    Seconds (4, 0.5) or a number with a unit: ms, s, m or h (500ms, 4s, 2m,\n"
               "         1.5h).\n"
               "  SIZE   Bytes (1000000) or a number with a unit:\n"
               "         B; KB, MB, GB (powers of 1000); KiB, MiB, GiB (powers of 1024).\n"
               "         Units ignore case: 25MB, 32MiB, 1.5 GB.\n"
               "\n"
               "Environment:\n"
               "  OPENAI_API_KEY         When set, the proxy uses this key for every upstream\n"
               "                         call. It is never logged or shown.\n"
               "\n"
               "Exit status: 0 on success, 2 for a bad command line, an unusable tokens file,\n"
               "or a listen address off loopback with OPENAI_API_KEY and no proxy token.");
}

} // namespace llmproxy
