// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Fills a buffer sized beforehand: the relay builds a request head and an answer head per
// relayed request, and QByteArray::append checks capacity and aliasing on every call, which
// shows at tens of thousands of requests a second.

#include <QByteArray>
#include <QByteArrayView>

#include <charconv>
#include <cstring>

namespace llmproxy::http {

class Packer {
public:
    // `capacity` must cover everything put in (numbers count 20 bytes).
    explicit Packer(qsizetype capacity)
        : m_out(capacity, Qt::Uninitialized)
        , m_at(m_out.data()) {}
    Packer &operator<<(QByteArrayView bytes) {
        if (!bytes.isEmpty()) {
            Q_ASSERT(m_at + bytes.size() <= m_out.constData() + m_out.size());
            std::memcpy(m_at, bytes.data(), size_t(bytes.size()));
            m_at += bytes.size();
        }
        return *this;
    }
    Packer &operator<<(qint64 number) {
        m_at = std::to_chars(m_at, m_at + 20, number).ptr;
        return *this;
    }
    QByteArray take() {
        m_out.truncate(m_at - m_out.constData());
        return std::move(m_out);
    }

private:
    QByteArray m_out;
    char *m_at;
};

} // namespace llmproxy::http
