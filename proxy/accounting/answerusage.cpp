// SPDX-License-Identifier: GPL-3.0-or-later
#include "accounting/answerusage.h"

#include "api/json.h"

#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>

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

// Calls `onData` with each event's data, in order. Events end with a blank line; a line
// "data: ..." carries (part of) the event's data.
template <typename OnData>
void forEachEventData(QByteArrayView stream, OnData onData) {
    QByteArray text = stream.toByteArray();
    text.replace("\r\n", "\n");
    const QList<QByteArray> events = text.split('\n');
    QByteArray data;
    auto endEvent = [&] {
        if (!data.isEmpty() && data != "[DONE]")
            onData(QByteArrayView(data));
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
}

// `stream` from its first whole event: what follows its first blank line.
QByteArrayView fromFirstWholeEvent(QByteArrayView stream) {
    qsizetype blank = stream.indexOf("\n\n");
    qsizetype crlf = stream.indexOf("\r\n\r\n");
    if (blank < 0 && crlf < 0)
        return {};
    if (blank < 0 || (crlf >= 0 && crlf < blank))
        return stream.sliced(crlf + 4);
    return stream.sliced(blank + 2);
}

// `stream` up to its last whole event: up to and with its last blank line.
QByteArrayView toLastWholeEvent(QByteArrayView stream) {
    const qsizetype lf = stream.lastIndexOf("\n\n");
    const qsizetype crlf = stream.lastIndexOf("\r\n\r\n");
    const qsizetype end = std::max(lf < 0 ? 0 : lf + 2, crlf < 0 ? 0 : crlf + 4);
    return stream.first(end);
}

} // namespace

Usage usageFromEventStream(QByteArrayView tail) {
    Usage found;
    forEachEventData(tail, [&found](QByteArrayView data) {
        const Usage usage = usageOfEvent(data);
        if (usage.reported)
            found = usage;
    });
    return found;
}

Usage anthropicUsageFromEventStream(QByteArrayView events) {
    QJsonObject usage;
    bool seen = false;
    forEachEventData(events, [&](QByteArrayView data) {
        const bool start = data.contains("\"message_start\"");
        if (!start && !data.contains("\"message_delta\""))
            return; // the many content_block_delta events: not parsed
        const QJsonObject event = QJsonDocument::fromJson(data.toByteArray()).object();
        const QString type = event.value(QLatin1StringView("type")).toString();
        if (type == QLatin1StringView("message_start")) {
            const QJsonValue given = event.value(QLatin1StringView("message"))
                                         .toObject()
                                         .value(QLatin1StringView("usage"));
            if (given.isObject()) {
                usage = given.toObject();
                seen = true;
            }
        } else if (type == QLatin1StringView("message_delta")) {
            const QJsonValue given = event.value(QLatin1StringView("usage"));
            if (!given.isObject())
                return;
            const QJsonObject update = given.toObject();
            for (auto it = update.begin(); it != update.end(); ++it)
                usage.insert(it.key(), it.value());
            seen = true;
        }
    });
    if (!seen)
        return {};
    return anthropicUsageFromAnswer(QJsonDocument(QJsonObject{{QStringLiteral("usage"), usage}})
                                        .toJson(QJsonDocument::Compact));
}

void AnswerCapture::start(bool eventStream, bool identity, bool anthropic) {
    m_eventStream = eventStream;
    m_enabled = identity;
    m_anthropic = anthropic;
    m_kept.clear();
    m_head.clear();
    m_overflowed = false;
    m_trimmed = false;
}

void AnswerCapture::append(QByteArrayView data) {
    if (!m_enabled || m_overflowed || data.isEmpty())
        return;
    m_kept.append(data);
    if (m_eventStream) {
        if (m_kept.size() > 2 * StreamTailBytes) {
            if (m_anthropic && !m_trimmed)
                m_head = m_kept.first(StreamHeadBytes);
            m_kept.remove(0, m_kept.size() - StreamTailBytes);
            m_trimmed = true;
        }
    } else if (m_kept.size() > MaxJsonBytes) {
        m_overflowed = true;
        m_kept = QByteArray();
    }
}

Usage AnswerCapture::usage() const {
    if (!m_enabled || m_overflowed)
        return {};
    if (m_eventStream) {
        if (m_anthropic) {
            // Its whole start (message_start) and its whole end (message_delta), in order.
            if (!m_trimmed)
                return anthropicUsageFromEventStream(m_kept);
            QByteArray events = toLastWholeEvent(m_head).toByteArray();
            events += fromFirstWholeEvent(m_kept);
            return anthropicUsageFromEventStream(events);
        }
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
    return m_anthropic ? anthropicUsageFromAnswer(m_kept) : usageFromAnswer(m_kept);
}

} // namespace llmproxy::accounting
