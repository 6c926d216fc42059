// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// LLMPROXY_TEST_MAIN(Class): like QTEST_GUILESS_MAIN, but the main thread runs on llm-proxy's
// epoll event dispatcher, as the proxy's own threads do, so the suites exercise it too.
// LLMPROXY_DISPATCHER=qt in the environment keeps Qt's default dispatcher instead.

#include "eventloop/epolleventdispatcher.h"

#include <QCoreApplication>
#include <QTest>

namespace llmproxy::test {
inline void installTestDispatcher() {
    if (qgetenv("LLMPROXY_DISPATCHER") != "qt")
        QCoreApplication::setEventDispatcher(new EpollEventDispatcher);
}
} // namespace llmproxy::test

#define LLMPROXY_TEST_MAIN(TestObject)                                                             \
    int main(int argc, char *argv[]) {                                                             \
        llmproxy::test::installTestDispatcher();                                                   \
        QCoreApplication app(argc, argv);                                                          \
        app.setAttribute(Qt::AA_Use96Dpi, true);                                                   \
        TestObject tc;                                                                             \
        QTEST_SET_MAIN_SOURCE_PATH                                                                 \
        return QTest::qExec(&tc, argc, argv);                                                      \
    }
