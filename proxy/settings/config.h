// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The proxy's configuration as a plain value, and the command line that fills it.

#include "provider/providerrouting.h"
#include "settings/proxytokens.h"

#include <QByteArray>
#include <QHash>
#include <QHostAddress>
#include <QList>
#include <QString>
#include <QStringList>
#include <QUrl>

#include <chrono>
#include <functional>
#include <optional>

namespace llmproxy {

struct ListenAddress {
    QHostAddress address;
    quint16 port = 0;
    friend bool operator==(const ListenAddress &, const ListenAddress &) = default;
};

// The front door's deadlines and limits (issue 9), like Apache's mod_reqtimeout defaults:
// a header block within headerTimeout, extended by one second for every minRate bytes that
// come, up to headerTimeoutMax; a body at no less than minRate bytes a second after its first
// bodyTimeout. Over them: 408 and the connection closes.
struct FrontDoorLimits {
    std::chrono::milliseconds headerTimeout{20'000};    // --header-timeout
    std::chrono::milliseconds headerTimeoutMax{40'000}; // --header-timeout-max
    std::chrono::milliseconds bodyTimeout{20'000};      // --body-timeout
    qint64 minRate = 500;                               // --min-rate, bytes a second; 0: none
    // Open connections, all front ends together; over it: 503 with Retry-After, then close.
    // 0: the open-file limit less a reserve (--max-connections).
    int maxConnections = 0;
    // Open connections from one address, loopback excepted; 0: no limit (--max-connections-
    // per-ip).
    int maxConnectionsPerIp = 256;
    // Requests a connection may have read ahead, waiting for the one being answered; then the
    // proxy stops reading from it until they are answered (--max-pipelined).
    int maxPipelined = 64;
    // Answer bytes a client has not read yet beyond which no further request of that
    // connection is handled until it reads them (--max-output-buffer).
    qint64 maxOutputBuffer = 4LL * 1024 * 1024;
};

struct Config {
    // Default: 127.0.0.1 and ::1 on port 3030 ("localhost" clients try ::1 first).
    // "--listen localhost:P" also means both loopbacks; any other host is that address only.
    QList<ListenAddress> listen;
    QString listenText = QStringLiteral("127.0.0.1:3030"); // as the user wrote it, for display
    QUrl upstream = QUrl(QStringLiteral("https://api.openai.com/v1"));
    // Several providers behind one base URL (issue 12). The "openai" provider is always there:
    // --upstream with OPENAI_API_KEY. --provider adds others (or redefines "openai"), each as
    // NAME=PROFILE[;url=URL][;key_env=VAR] (ProviderSpec, providerrouting.h); --route
    // PATTERN=NAME picks one by model or path; the rest go to --default-provider ("none": a
    // request no rule routes gets 400).
    QList<QByteArray> providers;
    QList<QByteArray> routes;
    QByteArray defaultProvider = QByteArrayLiteral("openai");
    // How each model's requests are answered (provider/modelroute.h): --model-route
    // PATTERN=batch|flex|flex-then-batch|relay, exact names or prefixes ending in '*'; a model
    // no rule names is batched. Flex routes need the openai profile (checked at start).
    QList<QByteArray> modelRoutes;
    // A flex call that sends nothing back for this long is given up and the request goes into
    // a batch (--flex-timeout; flex answers can take minutes, OpenAI suggests 15).
    std::chrono::milliseconds flexTimeout{std::chrono::minutes(15)};
    // Each model's queue limit at its provider (provider/queuelimit.h): --queue-limit
    // PATTERN=TOKENS, exact names or prefixes ending in '*'. None by default: the limit is the
    // account's (OpenAI shows it on the organization's Limits page).
    QList<QByteArray> queueLimits;
    // Keys the desktop app keeps for providers other than "openai" (system keychain, or the
    // settings file with mode 0600), by provider name. A provider's environment variable
    // (key_env=, or its profile's) wins over them. Not a setting: never written as one, never
    // logged or printed.
    QHash<QByteArray, QByteArray> providerKeys;
    std::chrono::milliseconds batchWindow{4000};
    int batchSize = 1000;
    qint64 batchBytes = 25'000'000;
    std::chrono::milliseconds pollInterval{10'000};
    QString dataDir; // default: QStandardPaths::AppDataLocation (filled by parseCommandLine)
    // Run without the durable store: nothing survives a restart (--in-memory; for comparisons,
    // benchmarks and throwaway runs). The command line refuses it with an explicit --data-dir;
    // dataDir still holds the default folder, which the consumer then does not open.
    bool inMemory = false;
    // How many threads serve HTTP connections (--io-threads): 1 to 64, or 0 for one per core
    // (QThread::idealThreadCount(), resolved by whoever starts the threads).
    int ioThreads = 0;
    qint64 maxBody = 32LL * 1024 * 1024;
    // Results nobody collected (and requests never sent) are kept this long for clients that
    // come back (--result-ttl).
    std::chrono::milliseconds resultTtl{std::chrono::hours(24)};
    // A batch not finished this long after its creation is cancelled: its finished lines are
    // delivered, the rest go through the synchronous API at full price (--grace-period; off).
    // A setting like the others (Setting::GracePeriod): "off" or an empty value turn it off.
    std::optional<std::chrono::milliseconds> gracePeriod;
    // The answer cache (--cache DUR; off by default: frameworks resend identical bodies on
    // purpose to get a new sample): a request identical to one answered within DUR (same
    // caller, key, endpoint, body, streaming or not) gets the stored answer, paid nothing. Its
    // answers are kept in the store, at most cacheMaxBytes of them (--cache-max-bytes).
    std::optional<std::chrono::milliseconds> cache;
    qint64 cacheMaxBytes = 256LL * 1024 * 1024;
    // Streaming requests ("stream": true on chat, completions, responses): batched and answered
    // with a replay of the finished result (--streams batch, the default), or relayed at full
    // price (--streams relay). X-Batch: off relays either way.
    bool relayStreams = false;
    // While a streaming client waits for its batch, an SSE comment this often (--stream-keepalive).
    std::chrono::milliseconds streamKeepAlive{std::chrono::seconds(15)};
    // Idle keep-alive connections are closed after this long (not a flag yet).
    std::chrono::milliseconds idleTimeout{std::chrono::seconds(65)};
    // A result-file line longer than this is not read whole: only its request fails (502
    // result_line_too_large). Not a flag; at least 64 KiB (tests make it small).
    qint64 maxResultLine = 64LL * 1024 * 1024;
    FrontDoorLimits frontDoor;
    bool verbose = false;
    bool noGui = false;
    // From OPENAI_API_KEY when set: every upstream call uses it. Never logged or printed.
    QByteArray apiKey;
    // The front door (issue 9). Browser origins allowed to call the proxy, with CORS answers
    // (--allow-origin, repeatable; "http://localhost:5173"); Host names served besides IP
    // literals and localhost (--allow-host, repeatable); proxy tokens and the file they came
    // from (--tokens-file, default defaultTokensFile() when it exists). With tokens, every
    // request must carry one.
    QList<QByteArray> allowOrigins;
    QList<QByteArray> allowHosts;
    QString tokensFile;
    QList<ProxyToken> tokens;
    // Desktop app only: start with the window hidden where there is a tray (--start-in-tray,
    // the option the start-at-login entry runs; ui/autostart.h).
    bool startInTray = false;
    // Desktop app only: save the main window as a PNG here after screenshotDelay, then exit.
    QString screenshotPath;
    std::chrono::milliseconds screenshotDelay{1000};
    // The pages pictured, in order (screenshotPageNames()); empty: the window as it opens. With
    // more than one, screenshotPath is a folder that gets PAGE.png for each.
    QList<QByteArray> screenshotPages;

    // The provider's hard limits: a batch never exceeds them whatever the flags say.
    static constexpr int ProviderMaxRequests = 50'000;
    static constexpr qint64 ProviderMaxBytes = 200'000'000;
    static constexpr int ProviderMaxEmbeddingInputs = 50'000;
};

// "0.5" (seconds), "250ms", "4s", "2m", "1h", "1.5s". Non-negative; nullopt if malformed.
std::optional<std::chrono::milliseconds> parseDuration(QStringView text);
// "1000", "25MB" (10^6), "32MiB" (2^20), "1KB", "1KiB", "1GB", "1GiB", "100B"; case-insensitive
// units, optional space; integral or decimal ("1.5MB"). nullopt if malformed or negative.
std::optional<qint64> parseSize(QStringView text);
// The units a duration or a size is written with, as parseDuration and parseSize read them and
// settingText writes them: the name ("ms", "s", "m", "h"; "B", "KB", "MB", "GB", "KiB", "MiB",
// "GiB") and what one is worth (milliseconds, bytes), smallest first within each family. The
// bare number (seconds, bytes) is not among them. For editors that take a number and a unit.
struct ValueUnit {
    QLatin1StringView name;
    qint64 factor = 1;
};
QList<ValueUnit> durationUnits();
QList<ValueUnit> sizeUnits();
// "127.0.0.1:3030", "[::1]:3030", "localhost:3030", ":3030" (all interfaces). nullopt if bad.
std::optional<QList<ListenAddress>> parseListen(QStringView text);

// The default listen addresses: 127.0.0.1 and ::1 on port 3030.
QList<ListenAddress> defaultListenAddresses();
// QStandardPaths::AppDataLocation, or GenericDataLocation + "/llm-proxy" when no application
// name is set (AppDataLocation would then be the shared data folder itself).
QString defaultDataDir();

// Why the proxy must not start with this configuration, or an empty string: listening on
// anything but loopback with a configured provider key and no proxy token would let anyone who
// reaches the port spend the key. One line, naming the fix.
QString exposureProblem(const Config &config);

// Every setting, declared once in settingDeclarations() (config.cpp): its option, value name,
// kind, bounds, help, INI key and window label. The command line (QCommandLineParser), the
// settings file (SettingsStore), the settings window (SettingsController, SettingsPage), `--help`
// and so the man page (help2man) and the bash completion all read that table. Adding a setting
// is adding a Config field, a value here and one entry there.
enum class Setting {
    NoGui,
    Listen,
    Upstream,
    Providers,       // list, as AllowOrigins; entries NAME=PROFILE[;url=URL][;key_env=VAR]
    Routes,          // list; entries PATTERN=NAME
    DefaultProvider, // a provider's name, or "none"
    ModelRoutes,     // list; entries PATTERN=batch|flex|flex-then-batch|relay
    FlexTimeout,     // 1s to 1h
    QueueLimits,     // list; entries PATTERN=TOKENS
    BatchWindow,
    BatchSize,
    BatchBytes,
    PollInterval,
    DataDir,
    InMemory,
    MaxBody,
    GracePeriod, // 1s to 30 days; "off" (any case) or empty text: off
    ResultTtl,
    Cache,           // 1s to 30 days; "off" (any case) or empty text: off
    CacheMaxBytes,   // 1MB to 1TB
    Streams,         // batch | relay (Config.relayStreams)
    StreamKeepAlive, // 1s to 5min
    IoThreads,
    // Lists (Config.allowOrigins, .allowHosts). As settings (file, window): entries separated
    // by spaces, commas or line breaks, each checked as one --allow-origin / --allow-host
    // value; empty text: none. On the command line each option gives one entry: the first
    // replaces the saved list, the next add to it.
    AllowOrigins,
    AllowHosts,
    TokensFile,
    HeaderTimeout,
    HeaderTimeoutMax,
    BodyTimeout,
    MinRate,
    MaxConnections,
    MaxConnectionsPerIp,
    MaxPipelined,
    MaxOutputBuffer,
    StartInTray,
    Screenshot,
    ScreenshotDelay,
    ScreenshotPages,
    Verbose,
    Help,
    Version,
};

struct SettingDeclaration {
    enum class Kind {
        Switch,        // no value (--verbose)
        Duration,      // DUR, within [minimum, maximum] milliseconds
        DurationOrOff, // DUR or "off"
        Size,          // SIZE, within [minimum, maximum] bytes
        Count,         // N, a whole number within [minimum, maximum]
        Listen,        // HOST:PORT
        Url,           // URL
        Path,          // DIR or FILE, made absolute
        List,          // entries (see AllowOrigins); the option is repeatable
        Choice,        // one of two words (`choices`: "off|on"), any case, for a flag
        Name,          // a name (--default-provider)
    };
    Setting setting = Setting::NoGui;
    QLatin1StringView option{};    // "batch-window" ("h" is the short form of help)
    QLatin1StringView valueName{}; // "DUR" in --help; empty for a switch
    Kind kind = Kind::Switch;
    qint64 minimum{}; // bounds for Duration (ms), Size (bytes), Count; unused otherwise
    qint64 maximum{};
    QLatin1StringView expected{}; // the bounds as the error message says them ("1s to 1h")
    QLatin1StringView missing{};  // what a missing value should have been ("a number of threads")
    // Choice: the word for false, '|', the word for true ("batch|relay").
    QLatin1StringView choices{};
    // The help text, wrapped by --help; "%1" is the default (settingText of Config(), or the
    // entry's own default text for the data folder and the tokens file).
    QLatin1StringView help{};
    QLatin1StringView
        storeKey{}; // INI key in the settings file ("proxy/batch_window"); empty: none
    // The settings window: the label (empty: not shown), the objectName prefix of its editor
    // and error label ("batchWindow" → batchWindowEdit, batchWindowError; a number and unit's
    // parts batchWindowNumber, batchWindowUnit), the tooltip, and the name in "Applied and
    // saved: ..." messages. The form has a row for each shown setting but the lists, which the
    // Access group (AccessSettings) edits entry by entry.
    QLatin1StringView label{};
    QLatin1StringView objectName{};
    QLatin1StringView hint{};
    QLatin1StringView changeName{};

    QString optionName() const; // "--batch-window"
    bool takesValue() const { return kind != Kind::Switch; }
    bool stored() const { return !storeKey.isEmpty(); }
    bool shownInWindow() const { return !label.isEmpty(); }
};

// What --screenshot-page accepts: dashboard, first-run (the dashboard with the Connect a client
// panel, as Help → Connect a client shows it), history, settings, providers.
const QList<QByteArray> &screenshotPageNames();

// All settings, in --help order.
const QList<SettingDeclaration> &settingDeclarations();
const SettingDeclaration &settingDeclaration(Setting setting);

// Checks `text` exactly as the command line checks its option's value. Accepted: stores it in
// `config` and returns an empty string. Refused: leaves `config` alone and returns the reason,
// starting with the quoted value (`"4x" is not a duration (examples: ...)`); a value that looks
// like an API key (or contains config.apiKey) is never repeated. A switch is set by any text
// but "false", "off", "0" and ""; a list setting's text replaces the list.
QString applySetting(Config &config, Setting setting, const QString &text);
// The setting's value in config as text that applySetting accepts ("4s", "25MB", "localhost:3030";
// a grace period that is off reads "off"; a switch "true" or "false"; a list its values joined by
// spaces).
QString settingText(const Config &config, Setting setting);
// The command-line option of a setting ("--batch-window").
QString settingOption(Setting setting);
// The text of `--help`, made from settingDeclarations().
QString helpText();

struct CommandLine {
    enum class Action { Run, ShowHelp, ShowVersion, Error };
    Action action = Action::Run;
    Config config;
    QString message; // help text, version line, or a one-line error; no trailing newline
};

// The providers `config` configures, the implicit "openai" one (--upstream, config.apiKey) first,
// each with its key from its environment variable (`environment` looks one up), else the key
// stored for it (config.providerKeys). Empty (and
// *error) when a route or the default names a provider that is not configured.
QList<ConfiguredProvider>
configuredProviders(const Config &config,
                    const std::function<QByteArray(const QByteArray &name)> &environment,
                    QString *error);
// Why the model routes of `config` cannot be used with these providers, or an empty string: a
// flex route (flex, flex-then-batch) whose models go to a provider without the openai profile
// (flex processing is OpenAI's "service_tier":"flex"). One line naming the rule and provider.
QString modelRouteProblem(const Config &config, const QList<ConfiguredProvider> &providers);
// The router for those providers.
ProviderRouter providerRouter(const Config &config, const QList<ConfiguredProvider> &providers);

// Parse argv (args[0] is the program name). `environment` supplies OPENAI_API_KEY
// (pass QProcessEnvironment::systemEnvironment() values in production, anything in tests).
// `base` is where the options start from (the stored settings; defaults when not given): every
// option on the command line overrides it, and OPENAI_API_KEY, when set, overrides base.apiKey.
CommandLine parseCommandLine(const QStringList &args,
                             const QByteArray &openAiApiKeyFromEnvironment = {},
                             const Config &base = Config());

} // namespace llmproxy
Q_DECLARE_METATYPE(llmproxy::Config)
