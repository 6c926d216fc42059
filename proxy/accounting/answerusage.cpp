// SPDX-License-Identifier: GPL-3.0-or-later
#include "accounting/answerusage.h"

#include "api/json.h"

namespace llmproxy::accounting {

namespace {

// The usage one event's data reports, if any.
Usage usageOfEvent(QByteArrayView data) {
    const auto members = json::objectMembers(data);
    if (!members)
        return {};
    if (const json::Member *usage = json::find(*members, "usage");
        usage && usage->kind == json::Kind::Object)
        return usageFromAnswer(data);
    if (const json::Member *response = json::find(*members, "response");
        response && response->kind == json::Kind::Object)
        return usageFromAnswer(response->value);
    return {};
}

} // namespace

Usage usageFromEventStream(QByteArrayView tail) {
    // Events end with a blank line; a line "data: ..." carries (part of) the event's data.
    QByteArray text = tail.toByteArray();
    text.replace("\r\n", "\n");
    const QList<QByteArray> events = text.split('\n');
    Usage found;
    QByteArray data;
    auto endEvent = [&] {
        if (!data.isEmpty() && data != "[DONE]") {
            const Usage usage = usageOfEvent(data);
            if (usage.reported)
                found = usage;
        }
        data.clear();
    };
    for (const QByteArray &line : events) {
        if (line.isEmpty()) {
            endEvent();
            continue;
        }
        if (line.startsWith("data:")) {
            QByteArray value = line.sliced(5);
            if (value.startsWith(' '))
                value.remove(0, 1);
            if (!data.isEmpty())
                data += '\n';
            data += value;
        }
    }
    endEvent();
    return found;
}

void AnswerCapture::start(bool eventStream, bool identity) {
    m_eventStream = eventStream;
    m_enabled = identity;
    m_kept.clear();
    m_overflowed = false;
}

void AnswerCapture::append(QByteArrayView data) {
    if (!m_enabled || m_overflowed || data.isEmpty())
        return;
    m_kept.append(data);
    if (m_eventStream) {
        if (m_kept.size() > 2 * StreamTailBytes)
            m_kept.remove(0, m_kept.size() - StreamTailBytes);
    } else if (m_kept.size() > MaxJsonBytes) {
        m_overflowed = true;
        m_kept = QByteArray();
    }
}

Usage AnswerCapture::usage() const {
    if (!m_enabled || m_overflowed)
        return {};
    if (m_eventStream) {
        // A tail cut inside an event: start after the first blank line.
        QByteArrayView kept(m_kept);
        if (m_kept.size() >= StreamTailBytes) {
            const qsizetype blank = m_kept.indexOf("\n\n");
            if (blank < 0)
                return {};
            kept = kept.sliced(blank + 2);
        }
        return usageFromEventStream(kept);
    }
    return usageFromAnswer(m_kept);
}

} // namespace llmproxy::accounting
