// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings/config.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QtNumeric>

#include <array>

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

// ---- the command line -------------------------------------------------------------------

enum class OptionId {
    Listen,
    Upstream,
    BatchWindow,
    BatchSize,
    BatchBytes,
    PollInterval,
    DataDir,
    MaxBody,
    Screenshot,
    ScreenshotDelay,
    GracePeriod,
    ResultTtl,
    InMemory,
    IoThreads,
    AllowOrigin,
    AllowHost,
    TokensFile,
    // The front door's deadlines and limits (FrontDoorLimits).
    HeaderTimeout,
    HeaderTimeoutMax,
    BodyTimeout,
    MinRate,
    MaxConnections,
    MaxConnectionsPerIp,
    MaxPipelined,
    MaxOutputBuffer,
    Verbose,
    NoGui,
    Help,
    Version,
};

struct OptionSpec {
    QLatin1StringView name; // with its dashes
    OptionId id;
    bool takesValue;
};

constexpr std::array Options{
    OptionSpec{QLatin1StringView("--listen"), OptionId::Listen, true},
    OptionSpec{QLatin1StringView("--upstream"), OptionId::Upstream, true},
    OptionSpec{QLatin1StringView("--batch-window"), OptionId::BatchWindow, true},
    OptionSpec{QLatin1StringView("--batch-size"), OptionId::BatchSize, true},
    OptionSpec{QLatin1StringView("--batch-bytes"), OptionId::BatchBytes, true},
    OptionSpec{QLatin1StringView("--poll-interval"), OptionId::PollInterval, true},
    OptionSpec{QLatin1StringView("--data-dir"), OptionId::DataDir, true},
    OptionSpec{QLatin1StringView("--max-body"), OptionId::MaxBody, true},
    OptionSpec{QLatin1StringView("--screenshot"), OptionId::Screenshot, true},
    OptionSpec{QLatin1StringView("--screenshot-delay"), OptionId::ScreenshotDelay, true},
    OptionSpec{QLatin1StringView("--grace-period"), OptionId::GracePeriod, true},
    OptionSpec{QLatin1StringView("--result-ttl"), OptionId::ResultTtl, true},
    OptionSpec{QLatin1StringView("--in-memory"), OptionId::InMemory, false},
    OptionSpec{QLatin1StringView("--io-threads"), OptionId::IoThreads, true},
    OptionSpec{QLatin1StringView("--allow-origin"), OptionId::AllowOrigin, true},
    OptionSpec{QLatin1StringView("--allow-host"), OptionId::AllowHost, true},
    OptionSpec{QLatin1StringView("--tokens-file"), OptionId::TokensFile, true},
    OptionSpec{QLatin1StringView("--header-timeout"), OptionId::HeaderTimeout, true},
    OptionSpec{QLatin1StringView("--header-timeout-max"), OptionId::HeaderTimeoutMax, true},
    OptionSpec{QLatin1StringView("--body-timeout"), OptionId::BodyTimeout, true},
    OptionSpec{QLatin1StringView("--min-rate"), OptionId::MinRate, true},
    OptionSpec{QLatin1StringView("--max-connections"), OptionId::MaxConnections, true},
    OptionSpec{QLatin1StringView("--max-connections-per-ip"), OptionId::MaxConnectionsPerIp, true},
    OptionSpec{QLatin1StringView("--max-pipelined"), OptionId::MaxPipelined, true},
    OptionSpec{QLatin1StringView("--max-output-buffer"), OptionId::MaxOutputBuffer, true},
    OptionSpec{QLatin1StringView("--verbose"), OptionId::Verbose, false},
    OptionSpec{QLatin1StringView("--no-gui"), OptionId::NoGui, false},
    OptionSpec{QLatin1StringView("--help"), OptionId::Help, false},
    OptionSpec{QLatin1StringView("-h"), OptionId::Help, false},
    OptionSpec{QLatin1StringView("--version"), OptionId::Version, false},
};

const OptionSpec *findOption(QStringView name) {
    for (const OptionSpec &spec : Options) {
        if (name == spec.name)
            return &spec;
    }
    return nullptr;
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

QString errorLine(QLatin1StringView option, const QString &detail) {
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

QString helpText() {
    const Config defaults;
    return QStringLiteral(
               "Usage: llm-proxy [options]\n"
               "\n"
               "A local proxy for the OpenAI API. Chat completions and embeddings sent to it are\n"
               "collected into Batch API jobs (half the price) and each waiting client gets its\n"
               "own answer; every other request is relayed to the upstream unchanged. Point an\n"
               "OpenAI SDK at http://127.0.0.1:3030/v1.\n"
               "\n"
               "Options:\n"
               "  --no-gui               Run headless, without the tray icon and window.\n"
               "  --listen HOST:PORT     Address to listen on (default: 127.0.0.1:3030 and\n"
               "                         [::1]:3030). HOST is an IPv4 address, an IPv6 address\n"
               "                         in brackets, localhost (both loopbacks) or empty for\n"
               "                         all interfaces (:3030). Port 0 picks a free port.\n"
               "  --upstream URL         The OpenAI-compatible API base URL, http or https\n"
               "                         (default: %1).\n"
               "  --batch-window DUR     How long a batch collects requests, counted from its\n"
               "                         first request (default: %2; more than 0, at most 24h).\n"
               "  --batch-size N         Most requests in one batch (default: %3; 1 to %4).\n"
               "  --batch-bytes SIZE     Largest batch input file (default: %5; 1KB to 200MB).\n"
               "  --poll-interval DUR    How often a running batch is checked (default: %6;\n"
               "                         at least 100ms).\n"
               "  --data-dir DIR         Where the proxy keeps its state (default:\n"
               "                         %7).\n"
               "  --in-memory            Run without the durable store: nothing survives a\n"
               "                         restart. For comparisons, benchmarks and throwaway\n"
               "                         runs; cannot be combined with --data-dir.\n"
               "  --max-body SIZE        Largest request body accepted (default: %8; at least\n"
               "                         1KiB).\n"
               "  --grace-period DUR     Cancel a batch not finished this long after it was\n"
               "                         created; what it did not run goes through the\n"
               "                         synchronous API at full price (default: off; 1s to\n"
               "                         30 days, or off).\n"
               "  --result-ttl DUR       How long answers nobody collected are kept for a\n"
               "                         client that retries (default: 24h; 1s to 30 days).\n"
               "  --io-threads N         How many threads serve HTTP connections (default: 0,\n"
               "                         one per core; 1 to 64).\n"
               "  --allow-origin ORIGIN  A web page origin (http://localhost:5173) that may call\n"
               "                         the proxy from a browser, with CORS answers.\n"
               "                         Repeatable. Other pages get 403.\n"
               "  --allow-host NAME      A Host name served besides IP literals and localhost\n"
               "                         (other names get 421: DNS rebinding). Repeatable.\n"
               "  --tokens-file FILE     Proxy tokens, one \"name token\" a line, mode 0600.\n"
               "                         With tokens, every request needs one (default:\n"
               "                         %9, if it exists).\n"
               "  --header-timeout DUR   A request's header block must arrive within this\n"
               "                         (default: 20s), extended by 1s for every --min-rate\n"
               "                         bytes that come, up to --header-timeout-max (default:\n"
               "                         40s). Then: 408 and the connection closes.\n"
               "  --body-timeout DUR     After this much of a body's time (default: 20s), it\n"
               "                         must keep coming at --min-rate or more: 408.\n"
               "  --min-rate SIZE        Bytes a second a slow client must send (default: 500B;\n"
               "                         0 turns the rate off).\n"
               "  --max-connections N    Open connections at most (default: 0, the open-file\n"
               "                         limit less 128); more get 503 with Retry-After.\n"
               "  --max-connections-per-ip N\n"
               "                         Open connections from one address, loopback excepted\n"
               "                         (default: 256; 0: no limit); more get 503.\n"
               "  --max-pipelined N      Requests read ahead on one connection while an earlier\n"
               "                         one is answered (default: 64; 1 to 100000); then the\n"
               "                         proxy stops reading from it.\n"
               "  --max-output-buffer SIZE\n"
               "                         Unread answer bytes after which a connection's next\n"
               "                         request waits for the client to read (default: 4MiB).\n"
               "  --screenshot FILE      Start the desktop app, save its window as a PNG after\n"
               "                         the delay, and exit.\n"
               "  --screenshot-delay DUR How long the app serves before the screenshot\n"
               "                         (default: 1s; at most 1h).\n"
               "  --verbose              Log debug messages.\n"
               "  -h, --help             Show this help and exit.\n"
               "  --version              Show the version and exit.\n"
               "\n"
               "Both --option VALUE and --option=VALUE work; a repeated option's last value wins\n"
               "(--allow-origin and --allow-host add up).\n"
               "Settings saved in the desktop app apply in both modes; options override them\n"
               "(--allow-origin and --allow-host given here replace the saved lists).\n"
               "\n"
               "Values:\n"
               "  DUR    Seconds (4, 0.5) or a number with a unit: ms, s, m or h (500ms, 4s, 2m,\n"
               "         1.5h).\n"
               "  SIZE   Bytes (1000000) or a number with a unit: B; KB, MB, GB (powers of 1000);\n"
               "         KiB, MiB, GiB (powers of 1024). Units ignore case: 25MB, 32MiB, 1.5 GB.\n"
               "\n"
               "Environment:\n"
               "  OPENAI_API_KEY         When set, the proxy uses this key for every upstream\n"
               "                         call. It is never logged or shown.\n"
               "\n"
               "Exit status: 0 on success, 2 for a bad command line, an unusable tokens file,\n"
               "or a listen address off loopback with OPENAI_API_KEY and no proxy token.")
        .arg(defaults.upstream.toString(), formatDuration(defaults.batchWindow),
             QString::number(defaults.batchSize), QString::number(Config::ProviderMaxRequests),
             formatSize(defaults.batchBytes), formatDuration(defaults.pollInterval),
             homeRelative(defaultDataDir()), formatSize(defaults.maxBody),
             homeRelative(defaultTokensFile()));
}

// One --allow-origin (setting AllowOrigins) or --allow-host (AllowHosts) value, as the command
// line and the settings (file and window) check it. Accepted: `normalized` gets the entry as
// the front door compares it (lower case; an origin without a trailing slash) and the result is
// empty. Refused: the reason, starting with the quoted value.
QString checkAccessEntry(Setting setting, QStringView value, const QByteArray &apiKey,
                         QByteArray *normalized) {
    const QString text = value.trimmed().toString();
    if (setting == Setting::AllowOrigins) {
        // scheme://host[:port] and nothing else, as browsers send it in Origin: http and
        // https pages, or an extension's (chrome-extension://ID, vscode-webview://ID).
        const QUrl url(text, QUrl::StrictMode);
        if (!url.isValid() || url.scheme().isEmpty() || url.host().isEmpty() ||
            !url.userInfo().isEmpty() || (!url.path().isEmpty() && url.path() != u'/') ||
            url.hasQuery() || url.hasFragment())
            return shown(value, apiKey) +
                   QStringLiteral(" is not an origin (scheme://host[:port]; example: "
                                  "http://localhost:5173)");
        QString origin = text;
        if (origin.endsWith(u'/'))
            origin.chop(1);
        *normalized = origin.toLower().toUtf8();
        return QString();
    }
    static const QRegularExpression hostName(
        QStringLiteral("^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       "(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\\.?(:[0-9]{1,5})?$"));
    if (!hostName.match(text).hasMatch())
        return shown(value, apiKey) +
               QStringLiteral(" is not a host name (example: proxy.example.lan)");
    *normalized = text.toLower().toUtf8();
    return QString();
}

// A list setting's entries: separated by spaces, commas or line breaks.
QList<QStringView> accessEntries(QStringView text) {
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
QString checkSetting(Config &config, Setting setting, const QString &value,
                     const QByteArray &apiKey) {
    const QString quoted = shown(value, apiKey);
    switch (setting) {
    case Setting::Listen: {
        const auto addresses = parseListen(value);
        if (!addresses) {
            return quoted +
                   QStringLiteral(" is not HOST:PORT with an IP address, localhost or nothing "
                                  "as HOST and a port 0 to 65535 (examples: 127.0.0.1:3030, "
                                  "[::1]:3030, localhost:3030, :3030)");
        }
        config.listen = *addresses;
        config.listenText = value.trimmed();
        return QString();
    }
    case Setting::Upstream: {
        QString problem;
        const auto url = parseUpstream(value, &problem);
        if (!url)
            return quoted + u' ' + problem;
        config.upstream = *url;
        return QString();
    }
    case Setting::BatchWindow: {
        const auto duration = parseDuration(value);
        if (!duration)
            return quoted + QStringLiteral(" is not a duration (") + DurationExamples + u')';
        if (*duration <= milliseconds::zero() || *duration > MaxBatchWindow) {
            return quoted +
                   QStringLiteral(" is out of range (expected more than 0 and at most 24h)");
        }
        config.batchWindow = *duration;
        return QString();
    }
    case Setting::PollInterval: {
        const auto duration = parseDuration(value);
        if (!duration)
            return quoted + QStringLiteral(" is not a duration (") + DurationExamples + u')';
        if (*duration < MinPollInterval)
            return quoted + QStringLiteral(" is too short (expected at least 100ms)");
        config.pollInterval = *duration;
        return QString();
    }
    case Setting::BatchSize: {
        const QString trimmed = value.trimmed();
        const QString range = QStringLiteral("1 to ") +
                              QString::number(Config::ProviderMaxRequests) +
                              QStringLiteral(", the provider's limit");
        if (!allAsciiDigits(trimmed)) {
            return quoted + QStringLiteral(" is not a whole number (expected ") + range + u')';
        }
        bool ok = false;
        const qlonglong count = trimmed.toLongLong(&ok);
        if (!ok || count < 1 || count > Config::ProviderMaxRequests)
            return quoted + QStringLiteral(" is out of range (expected ") + range + u')';
        config.batchSize = static_cast<int>(count);
        return QString();
    }
    case Setting::BatchBytes: {
        const auto size = parseSize(value);
        if (!size)
            return quoted + QStringLiteral(" is not a size (") + SizeExamples + u')';
        if (*size < MinBatchBytes || *size > Config::ProviderMaxBytes) {
            return quoted +
                   QStringLiteral(" is out of range (expected 1KB to 200MB, the provider's "
                                  "limit)");
        }
        config.batchBytes = *size;
        return QString();
    }
    case Setting::MaxBody: {
        const auto size = parseSize(value);
        if (!size)
            return quoted + QStringLiteral(" is not a size (") + SizeExamples + u')';
        if (*size < MinMaxBody)
            return quoted + QStringLiteral(" is too small (expected at least 1KiB)");
        config.maxBody = *size;
        return QString();
    }
    case Setting::GracePeriod: {
        // "off" in any case, or nothing at all (an empty field in the desktop app).
        const QString trimmed = value.trimmed();
        if (trimmed.isEmpty() || trimmed.compare(u"off", Qt::CaseInsensitive) == 0) {
            config.gracePeriod.reset();
            return QString();
        }
        const auto duration = parseDuration(trimmed);
        if (!duration)
            return quoted + QStringLiteral(" is not a duration or off (") + DurationExamples + u')';
        if (*duration < MinGracePeriod || *duration > MaxGracePeriod)
            return quoted + QStringLiteral(" is out of range (expected 1s to 30 days, or off)");
        config.gracePeriod = *duration;
        return QString();
    }
    case Setting::AllowOrigins:
    case Setting::AllowHosts: {
        QList<QByteArray> list;
        for (QStringView entry : accessEntries(value)) {
            QByteArray normalized;
            const QString problem = checkAccessEntry(setting, entry, apiKey, &normalized);
            if (!problem.isEmpty())
                return problem;
            if (!list.contains(normalized))
                list.append(normalized);
        }
        (setting == Setting::AllowOrigins ? config.allowOrigins : config.allowHosts) = list;
        return QString();
    }
    }
    return QString();
}

class Parser {
public:
    Parser(const QByteArray &environmentKey, const Config &base)
        : m_apiKey(environmentKey.trimmed().isEmpty() ? base.apiKey : environmentKey.trimmed())
        , m_config(base) {
        m_config.apiKey = m_apiKey;
    }

    CommandLine parse(const QStringList &args) {
        bool help = false;
        bool version = false;
        QString error;
        for (qsizetype i = 1; i < args.size(); ++i) {
            const QString &arg = args[i];
            QStringView name = arg;
            std::optional<QString> inlineValue;
            const qsizetype equals = arg.indexOf(u'=');
            if (arg.startsWith(QLatin1StringView("--")) && equals > 0) {
                name = QStringView(arg).left(equals);
                inlineValue = arg.mid(equals + 1);
            }
            const OptionSpec *spec = findOption(name);
            if (!spec) {
                if (error.isEmpty())
                    error = unknownArgument(arg, name);
                continue;
            }
            if (!spec->takesValue) {
                if (inlineValue) {
                    if (error.isEmpty())
                        error = errorLine(spec->name, QStringLiteral("takes no value (got ") +
                                                          shown(*inlineValue, m_apiKey) + u')');
                    continue;
                }
                switch (spec->id) {
                case OptionId::Help:
                    help = true;
                    break;
                case OptionId::Version:
                    version = true;
                    break;
                case OptionId::Verbose:
                    m_config.verbose = true;
                    break;
                case OptionId::NoGui:
                    m_config.noGui = true;
                    break;
                case OptionId::InMemory:
                    m_config.inMemory = true;
                    break;
                default:
                    break;
                }
                continue;
            }
            QString value;
            if (inlineValue) {
                value = *inlineValue;
            } else if (i + 1 < args.size() && !args[i + 1].startsWith(QLatin1StringView("--"))) {
                value = args[++i];
            } else {
                if (error.isEmpty()) {
                    error = errorLine(spec->name, QStringLiteral("missing value (expected ") +
                                                      valueName(spec->id) + u')');
                }
                continue;
            }
            const QString problem = apply(spec->id, value);
            if (error.isEmpty() && !problem.isEmpty())
                error = errorLine(spec->name, problem);
        }
        if (error.isEmpty() && m_config.noGui && !m_config.screenshotPath.isEmpty()) {
            error = errorLine(QLatin1StringView("--screenshot"),
                              QStringLiteral("needs the desktop app (drop --no-gui)"));
        }
        if (error.isEmpty() && m_config.inMemory && m_explicitDataDir) {
            error = QStringLiteral("llm-proxy: --in-memory and --data-dir exclude each other");
        }
        if (error.isEmpty() && !help && !version)
            error = loadTokens();
        if (error.isEmpty() && !help && !version) {
            m_config.apiKey = m_apiKey;
            if (m_config.listen.isEmpty())
                m_config.listen = defaultListenAddresses();
            error = exposureProblem(m_config);
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
    static QString valueName(OptionId id) {
        switch (id) {
        case OptionId::Listen:
            return QStringLiteral("HOST:PORT");
        case OptionId::Upstream:
            return QStringLiteral("URL");
        case OptionId::BatchWindow:
        case OptionId::PollInterval:
            return QStringLiteral("a duration, ") + DurationExamples;
        case OptionId::BatchSize:
            return QStringLiteral("a number of requests");
        case OptionId::BatchBytes:
        case OptionId::MaxBody:
            return QStringLiteral("a size, ") + SizeExamples;
        case OptionId::DataDir:
            return QStringLiteral("a directory");
        case OptionId::Screenshot:
            return QStringLiteral("a file name");
        case OptionId::ScreenshotDelay:
        case OptionId::ResultTtl:
            return QStringLiteral("a duration, ") + DurationExamples;
        case OptionId::GracePeriod:
            return QStringLiteral("a duration or off, ") + DurationExamples;
        case OptionId::IoThreads:
            return QStringLiteral("a number of threads");
        case OptionId::AllowOrigin:
            return QStringLiteral("an origin, example: http://localhost:5173");
        case OptionId::AllowHost:
            return QStringLiteral("a host name");
        case OptionId::TokensFile:
            return QStringLiteral("a file");
        case OptionId::HeaderTimeout:
        case OptionId::HeaderTimeoutMax:
        case OptionId::BodyTimeout:
            return QStringLiteral("a duration, ") + DurationExamples;
        case OptionId::MinRate:
        case OptionId::MaxOutputBuffer:
            return QStringLiteral("a size, ") + SizeExamples;
        case OptionId::MaxConnections:
        case OptionId::MaxConnectionsPerIp:
        case OptionId::MaxPipelined:
            return QStringLiteral("a number");
        default:
            return QString();
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

    // Applies one option's value; returns what is wrong with it, or an empty string.
    QString apply(OptionId id, const QString &value) {
        switch (id) {
        case OptionId::Listen:
            return checkSetting(m_config, Setting::Listen, value, m_apiKey);
        case OptionId::Upstream:
            return checkSetting(m_config, Setting::Upstream, value, m_apiKey);
        case OptionId::BatchWindow:
            return checkSetting(m_config, Setting::BatchWindow, value, m_apiKey);
        case OptionId::BatchSize:
            return checkSetting(m_config, Setting::BatchSize, value, m_apiKey);
        case OptionId::BatchBytes:
            return checkSetting(m_config, Setting::BatchBytes, value, m_apiKey);
        case OptionId::PollInterval:
            return checkSetting(m_config, Setting::PollInterval, value, m_apiKey);
        case OptionId::MaxBody:
            return checkSetting(m_config, Setting::MaxBody, value, m_apiKey);
        case OptionId::GracePeriod:
            return checkSetting(m_config, Setting::GracePeriod, value, m_apiKey);
        case OptionId::DataDir: {
            QString dir = value.trimmed();
            if (dir.isEmpty())
                return QStringLiteral("missing value (expected a directory)");
            m_config.dataDir = absolutePath(dir);
            m_explicitDataDir = true;
            return QString();
        }
        case OptionId::IoThreads: {
            const QString quoted = shown(value, m_apiKey);
            const QString trimmed = value.trimmed();
            const QString range = QStringLiteral("1 to ") + QString::number(MaxIoThreads) +
                                  QStringLiteral(", or 0 for one per core");
            if (!allAsciiDigits(trimmed))
                return quoted + QStringLiteral(" is not a whole number (expected ") + range + u')';
            bool ok = false;
            const qlonglong threads = trimmed.toLongLong(&ok);
            if (!ok || threads > MaxIoThreads)
                return quoted + QStringLiteral(" is out of range (expected ") + range + u')';
            m_config.ioThreads = static_cast<int>(threads);
            return QString();
        }
        case OptionId::AllowOrigin:
        case OptionId::AllowHost: {
            // Given here, the lists replace the saved ones (as every option overrides its
            // saved setting), then add up.
            const Setting setting =
                id == OptionId::AllowOrigin ? Setting::AllowOrigins : Setting::AllowHosts;
            QList<QByteArray> &list =
                id == OptionId::AllowOrigin ? m_config.allowOrigins : m_config.allowHosts;
            bool &replaced = id == OptionId::AllowOrigin ? m_originsGiven : m_hostsGiven;
            QByteArray entry;
            const QString problem = checkAccessEntry(setting, value, m_apiKey, &entry);
            if (!problem.isEmpty())
                return problem;
            if (!replaced)
                list.clear();
            replaced = true;
            if (!list.contains(entry))
                list.append(entry);
            return QString();
        }
        case OptionId::TokensFile: {
            const QString file = value.trimmed();
            if (file.isEmpty())
                return QStringLiteral("missing value (expected a file)");
            m_config.tokensFile = absolutePath(file);
            m_explicitTokensFile = true;
            return QString();
        }
        case OptionId::Screenshot: {
            const QString file = value.trimmed();
            if (file.isEmpty())
                return QStringLiteral("missing value (expected a file name)");
            m_config.screenshotPath = absolutePath(file);
            return QString();
        }
        case OptionId::ScreenshotDelay: {
            const QString quoted = shown(value, m_apiKey);
            const auto duration = parseDuration(value);
            if (!duration)
                return quoted + QStringLiteral(" is not a duration (") + DurationExamples + u')';
            if (*duration > MaxScreenshotDelay)
                return quoted + QStringLiteral(" is out of range (expected at most 1h)");
            m_config.screenshotDelay = *duration;
            return QString();
        }
        case OptionId::HeaderTimeout:
        case OptionId::HeaderTimeoutMax:
        case OptionId::BodyTimeout:
        case OptionId::MinRate:
        case OptionId::MaxConnections:
        case OptionId::MaxConnectionsPerIp:
        case OptionId::MaxPipelined:
        case OptionId::MaxOutputBuffer:
            return applyFrontDoor(id, value);
        case OptionId::ResultTtl: {
            const QString quoted = shown(value, m_apiKey);
            const auto duration = parseDuration(value);
            if (!duration)
                return quoted + QStringLiteral(" is not a duration (") + DurationExamples + u')';
            if (*duration < std::chrono::seconds(1) || *duration > MaxBatchWindow * 30)
                return quoted + QStringLiteral(" is out of range (expected 1s to 30 days)");
            m_config.resultTtl = *duration;
            return QString();
        }
        default:
            return QString();
        }
    }

    // The front door's options: durations 1s to 1h, counts and sizes in their ranges.
    QString applyFrontDoor(OptionId id, const QString &value) {
        const QString quoted = shown(value, m_apiKey);
        FrontDoorLimits &limits = m_config.frontDoor;
        const auto duration = [&](milliseconds *out) -> QString {
            const auto parsed = parseDuration(value);
            if (!parsed)
                return quoted + QStringLiteral(" is not a duration (") + DurationExamples + u')';
            if (*parsed < std::chrono::seconds(1) || *parsed > std::chrono::hours(1))
                return quoted + QStringLiteral(" is out of range (expected 1s to 1h)");
            *out = *parsed;
            return QString();
        };
        const auto count = [&](int *out, qint64 low, qint64 high) -> QString {
            const QString trimmed = value.trimmed();
            const QString range =
                QString::number(low) + QStringLiteral(" to ") + QString::number(high);
            bool ok = allAsciiDigits(trimmed);
            const qlonglong n = ok ? trimmed.toLongLong(&ok) : 0;
            if (!allAsciiDigits(trimmed))
                return quoted + QStringLiteral(" is not a whole number (expected ") + range + u')';
            if (!ok || n < low || n > high)
                return quoted + QStringLiteral(" is out of range (expected ") + range + u')';
            *out = static_cast<int>(n);
            return QString();
        };
        const auto size = [&](qint64 *out, qint64 low, qint64 high,
                              const QString &range) -> QString {
            const auto parsed = parseSize(value);
            if (!parsed)
                return quoted + QStringLiteral(" is not a size (") + SizeExamples + u')';
            if (*parsed < low || *parsed > high)
                return quoted + QStringLiteral(" is out of range (expected ") + range + u')';
            *out = *parsed;
            return QString();
        };
        switch (id) {
        case OptionId::HeaderTimeout:
            return duration(&limits.headerTimeout);
        case OptionId::HeaderTimeoutMax:
            return duration(&limits.headerTimeoutMax);
        case OptionId::BodyTimeout:
            return duration(&limits.bodyTimeout);
        case OptionId::MinRate:
            return size(&limits.minRate, 0, 1LL << 30, QStringLiteral("0 to 1GiB"));
        case OptionId::MaxConnections:
            return count(&limits.maxConnections, 0, 1'000'000);
        case OptionId::MaxConnectionsPerIp:
            return count(&limits.maxConnectionsPerIp, 0, 1'000'000);
        case OptionId::MaxPipelined:
            return count(&limits.maxPipelined, 1, 100'000);
        case OptionId::MaxOutputBuffer:
            return size(&limits.maxOutputBuffer, 1024, 1LL << 30, QStringLiteral("1KiB to 1GiB"));
        default:
            return QString();
        }
    }

    static QString absolutePath(QString path) {
        if (path == u'~' || path.startsWith(QLatin1StringView("~/")))
            path = QDir::homePath() + path.mid(1);
        return QDir::cleanPath(QFileInfo(path).absoluteFilePath());
    }

    // Reads the tokens file: the one given, or the default one if it exists. Returns an error
    // line, or an empty string.
    QString loadTokens() {
        if (!m_explicitTokensFile) {
            const QString fallback = defaultTokensFile();
            if (fallback.isEmpty() || !QFileInfo::exists(fallback))
                return QString();
            m_config.tokensFile = fallback;
        }
        QString problem;
        const auto tokens = loadProxyTokens(m_config.tokensFile, &problem);
        if (!tokens)
            return errorLine(QLatin1StringView("--tokens-file"), problem);
        m_config.tokens = *tokens;
        return QString();
    }

    QByteArray m_apiKey; // trimmed, the environment's over base's; for the config and redacting
    Config m_config;
    bool m_explicitDataDir = false;    // --data-dir was given (not just the default)
    bool m_explicitTokensFile = false; // --tokens-file was given
    bool m_originsGiven = false;       // an --allow-origin was given (the saved list is gone)
    bool m_hostsGiven = false;         // an --allow-host was given
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
    if (config.apiKey.isEmpty() || !config.tokens.isEmpty())
        return QString();
    for (const ListenAddress &listen : config.listen) {
        if (!listen.address.isLoopback()) {
            return QStringLiteral("llm-proxy: listening on %1 would let anyone who reaches it "
                                  "spend the configured OpenAI key; add proxy tokens "
                                  "(--tokens-file FILE, \"name token\" lines, mode 0600) or "
                                  "listen on loopback (--listen 127.0.0.1:PORT)")
                .arg(config.listenText);
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

QString applySetting(Config &config, Setting setting, const QString &text) {
    return checkSetting(config, setting, text, config.apiKey);
}

QString settingText(const Config &config, Setting setting) {
    switch (setting) {
    case Setting::Listen: {
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
    case Setting::Upstream:
        return config.upstream.toString(QUrl::FullyEncoded);
    case Setting::BatchWindow:
        return formatDuration(config.batchWindow);
    case Setting::BatchSize:
        return QString::number(config.batchSize);
    case Setting::BatchBytes:
        return formatSize(config.batchBytes);
    case Setting::PollInterval:
        return formatDuration(config.pollInterval);
    case Setting::MaxBody:
        return formatSize(config.maxBody);
    case Setting::GracePeriod:
        return config.gracePeriod ? formatDuration(*config.gracePeriod) : QStringLiteral("off");
    case Setting::AllowOrigins:
    case Setting::AllowHosts: {
        QStringList entries;
        for (const QByteArray &entry :
             setting == Setting::AllowOrigins ? config.allowOrigins : config.allowHosts)
            entries.append(QString::fromUtf8(entry));
        return entries.join(u' ');
    }
    }
    return QString();
}

QLatin1StringView settingOption(Setting setting) {
    switch (setting) {
    case Setting::Listen:
        return QLatin1StringView("--listen");
    case Setting::Upstream:
        return QLatin1StringView("--upstream");
    case Setting::BatchWindow:
        return QLatin1StringView("--batch-window");
    case Setting::BatchSize:
        return QLatin1StringView("--batch-size");
    case Setting::BatchBytes:
        return QLatin1StringView("--batch-bytes");
    case Setting::PollInterval:
        return QLatin1StringView("--poll-interval");
    case Setting::MaxBody:
        return QLatin1StringView("--max-body");
    case Setting::GracePeriod:
        return QLatin1StringView("--grace-period");
    case Setting::AllowOrigins:
        return QLatin1StringView("--allow-origin");
    case Setting::AllowHosts:
        return QLatin1StringView("--allow-host");
    }
    return QLatin1StringView();
}

} // namespace llmproxy
