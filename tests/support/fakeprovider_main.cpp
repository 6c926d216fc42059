// SPDX-License-Identifier: GPL-3.0-or-later
// fake-openai: the fake OpenAI provider as a standalone server for end-to-end tests.
// Prints "listening on http://127.0.0.1:PORT/v1" once ready; exits on SIGTERM or SIGINT.
#include "fakeprovider.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QSocketNotifier>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sys/socket.h>
#include <unistd.h>

namespace {

int s_signalFds[2] = {-1, -1};

void onSignal(int) {
    const char byte = 1;
    [[maybe_unused]] const ssize_t written = ::write(s_signalFds[0], &byte, 1);
}

} // namespace

int main(int argc, char *argv[]) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("fake-openai"));

    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("A fake OpenAI Files/Batches server for tests"));
    parser.addHelpOption();
    const QCommandLineOption portOption(QStringLiteral("port"),
                                        QStringLiteral("Port on 127.0.0.1 (0: any free port)."),
                                        QStringLiteral("N"), QStringLiteral("0"));
    const QCommandLineOption validationOption(QStringLiteral("validation-delay-ms"),
                                              QStringLiteral("Time a batch spends validating."),
                                              QStringLiteral("N"));
    const QCommandLineOption processingOption(QStringLiteral("processing-delay-ms"),
                                              QStringLiteral("Time a batch spends in progress."),
                                              QStringLiteral("N"));
    const QCommandLineOption profileOption(
        QStringLiteral("profile"),
        QStringLiteral("Which provider to play: openai, together, azure, gemini, groq, generic "
                       "(its path prefix, auth header, statuses and limits)."),
        QStringLiteral("NAME"));
    const QCommandLineOption keyOption(QStringLiteral("accept-key"),
                                       QStringLiteral("Accept only this API key (others get 401)."),
                                       QStringLiteral("KEY"));
    parser.addOptions({portOption, validationOption, processingOption, profileOption, keyOption});
    parser.process(app);

    const auto number = [&](const QCommandLineOption &option, int max) {
        bool ok = false;
        const int value = parser.value(option).toInt(&ok);
        if (!ok || value < 0 || value > max) {
            std::fprintf(stderr, "fake-openai: invalid --%s\n",
                         qPrintable(option.names().constFirst()));
            std::exit(2);
        }
        return value;
    };

    llmproxy::test::FakeProvider fake;
    if (parser.isSet(profileOption)) {
        const auto shape =
            llmproxy::test::FakeProvider::shapeNamed(parser.value(profileOption).toUtf8());
        if (!shape) {
            std::fprintf(stderr, "fake-openai: unknown --profile %s\n",
                         qPrintable(parser.value(profileOption)));
            return 2;
        }
        fake.setShape(*shape);
    }
    if (parser.isSet(keyOption))
        fake.setAcceptedKey(parser.value(keyOption).toUtf8());
    if (parser.isSet(validationOption))
        fake.setValidationDelay(std::chrono::milliseconds(number(validationOption, 86400000)));
    if (parser.isSet(processingOption))
        fake.setProcessingDelay(std::chrono::milliseconds(number(processingOption, 86400000)));
    const int port = number(portOption, 65535);

    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, s_signalFds) != 0) {
        std::perror("fake-openai: socketpair");
        return 1;
    }
    QSocketNotifier notifier(s_signalFds[1], QSocketNotifier::Read);
    QObject::connect(&notifier, &QSocketNotifier::activated, &app, [] {
        char byte = 0;
        [[maybe_unused]] const ssize_t got = ::read(s_signalFds[1], &byte, 1);
        QCoreApplication::quit();
    });
    struct sigaction action = {};
    action.sa_handler = onSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);

    if (!fake.listen(static_cast<quint16>(port))) {
        std::fprintf(stderr, "fake-openai: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    std::printf("listening on %s\n", qPrintable(fake.baseUrl().toString()));
    std::fflush(stdout);
    return app.exec();
}
