// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <QByteArray>

namespace llmproxy::bench {

// The bench's requests: one chat completion per client, each with its own message so every
// answer can be checked against the request it belongs to.
class ChatWorkload {
public:
    // `stream`: the requests ask for a stream ("stream": true; the answer is chunked on the
    // keep-alive connection) and verify() reads the replay's events.
    ChatWorkload(quint16 port, int messageBytes, bool stream = false);

    // The user message of request `index`: "bench request <index> " padded to messageBytes
    // with a pattern that depends on the index (plain ASCII, nothing to escape in JSON).
    QByteArray message(int index) const;
    // The full HTTP/1.1 request (keep-alive, Content-Length) for request `index`.
    QByteArray httpRequest(int index) const;
    // Empty when `status`/`body` is the right answer to request `index`, else what is wrong.
    QByteArray verify(int index, int status, const QByteArray &body) const;

    static constexpr const char *Model = "gpt-4o-mini";
    // A placeholder bearer token: the upstream is the in-process fake.
    static constexpr const char *ApiKey = "sk-bench-not-a-real-key";

private:
    quint16 m_port;
    int m_messageBytes;
    bool m_stream = false;
};

} // namespace llmproxy::bench
