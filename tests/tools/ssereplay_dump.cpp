// SPDX-License-Identifier: GPL-3.0-or-later
// ssereplay-dump: prints the SSE replay of a provider's answer body (proxy/api/ssereplay.h), for
// the end-to-end test that feeds those bytes to the official OpenAI Node SDK.
//
//   ssereplay-dump chat|completions|responses BODY_FILE [--include-usage] [--batch-id ID]
//                  [--min-piece-bytes N]
//   ssereplay-dump chat|completions|responses ERROR_BODY_FILE --error STATUS [--batch-id ID]
//
// --batch-id first prints a keep-alive comment and the batch id comment, as a waiting stream
// would; --error prints the stream error event for an error answer instead of a replay.
// Exits 1 (the reason on stderr) when the body cannot be replayed.
#include "api/ssereplay.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QFile>

#include <cstdio>

using namespace llmproxy;

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Prints the SSE replay of a provider's finished answer body"));
    parser.addHelpOption();
    parser.addPositionalArgument(QStringLiteral("endpoint"),
                                 QStringLiteral("chat, completions or responses"));
    parser.addPositionalArgument(QStringLiteral("body"), QStringLiteral("the answer body file"));
    const QCommandLineOption usageOption(QStringLiteral("include-usage"),
                                         QStringLiteral("As if stream_options.include_usage"));
    const QCommandLineOption batchOption(QStringLiteral("batch-id"),
                                         QStringLiteral("Start with a keep-alive and this id"),
                                         QStringLiteral("ID"));
    const QCommandLineOption errorOption(QStringLiteral("error"),
                                         QStringLiteral("The body is an error answer"),
                                         QStringLiteral("STATUS"));
    const QCommandLineOption piecesOption(
        QStringLiteral("min-piece-bytes"),
        QStringLiteral("Cut texts into pieces of at least N bytes, as many as that makes"),
        QStringLiteral("N"));
    parser.addOptions({usageOption, batchOption, errorOption, piecesOption});
    parser.process(app);

    const QStringList args = parser.positionalArguments();
    if (args.size() != 2)
        parser.showHelp(2);
    sse::Endpoint endpoint;
    if (args[0] == QLatin1StringView("chat"))
        endpoint = sse::Endpoint::ChatCompletions;
    else if (args[0] == QLatin1StringView("completions"))
        endpoint = sse::Endpoint::Completions;
    else if (args[0] == QLatin1StringView("responses"))
        endpoint = sse::Endpoint::Responses;
    else
        parser.showHelp(2);

    QFile file(args[1]);
    if (!file.open(QIODevice::ReadOnly)) {
        std::fprintf(stderr, "ssereplay-dump: %s\n", qPrintable(file.errorString()));
        return 2;
    }
    const QByteArray body = file.readAll();

    QByteArray out;
    if (parser.isSet(batchOption)) {
        out += sse::keepAliveComment();
        out += sse::batchIdComment(parser.value(batchOption).toUtf8());
    }
    if (parser.isSet(errorOption)) {
        HttpAnswer failure;
        failure.status = parser.value(errorOption).toInt();
        failure.body = body;
        out += sse::errorEvent(endpoint, failure);
    } else {
        sse::ReplayOptions options;
        options.endpoint = endpoint;
        options.includeUsage = parser.isSet(usageOption);
        if (parser.isSet(piecesOption)) {
            options.minPieceBytes = parser.value(piecesOption).toInt();
            options.maxPieces = 1 << 20;
        }
        const sse::ReplayResult result = sse::replayToBytes(options, body);
        if (result.error) {
            std::fprintf(stderr, "ssereplay-dump: %s\n", qPrintable(result.error->message));
            return 1;
        }
        out += result.stream;
    }
    std::fwrite(out.constData(), 1, static_cast<size_t>(out.size()), stdout);
    return 0;
}
