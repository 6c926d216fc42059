// SPDX-License-Identifier: GPL-3.0-or-later
// The SSE replay (proxy/api/ssereplay.*) on arbitrary provider bodies. The first input byte picks
// the endpoint (low two bits) and include_usage (bit 2), the second the smallest piece (1..64
// bytes); the rest is the body, in an allocation of its exact size. Invariants:
// - A refused body gives an error that says so, and the sink is never called.
// - A replay is SSE with whole events only: every sink call ends with a blank line, and the
//   calls joined are replayToBytes(); only `event: ` and `data: ` lines, no CR anywhere.
// - Every data line is one JSON value (read leniently: a provider's invalid UTF-8 is passed on);
//   chat and completions end with `data: [DONE]`; Responses events carry their name as "type"
//   and sequence_numbers 0, 1, 2, ... with response.created first.
// - errorEvent() on the same bytes as an error body is one event whose data is JSON.

#include "api/json.h"
#include "api/ssereplay.h"
#include "fuzzsupport.h"

#include <memory>

namespace json = llmproxy::json;
namespace sse = llmproxy::sse;

namespace {

QByteArray context(QByteArrayView body) {
    return "\ninput: " + fuzz::printable(body);
}

struct Event {
    QByteArray name;
    QByteArray data;
};

QList<Event> events(const QByteArray &stream, QByteArrayView body) {
    FUZZ_CHECK(stream.endsWith("\n\n"), "a replay that does not end an event" + context(body));
    FUZZ_CHECK(!stream.contains('\r'), "a CR in a replay" + context(body));
    QList<Event> out;
    const QList<QByteArray> blocks = stream.chopped(2).split('\n');
    Event current;
    for (const QByteArray &line : blocks) {
        if (line.isEmpty()) {
            FUZZ_CHECK(!current.data.isNull(), "an event without data" + context(body));
            out.append(current);
            current = {};
        } else if (line.startsWith("event: ")) {
            FUZZ_CHECK(current.name.isNull(), "two event lines" + context(body));
            current.name = line.mid(7);
        } else {
            FUZZ_CHECK(line.startsWith("data: "),
                       "a line that is no SSE field: " + fuzz::printable(line) + context(body));
            FUZZ_CHECK(current.data.isNull(), "two data lines" + context(body));
            current.data = line.mid(6);
        }
    }
    FUZZ_CHECK(!current.data.isNull(), "a last event without data" + context(body));
    out.append(current);
    return out;
}

void checkReplay(const sse::ReplayOptions &options, QByteArrayView body) {
    QList<QByteArray> calls;
    const auto error =
        sse::replay(options, body, [&calls](const QByteArray &piece) { calls.append(piece); });
    if (error) {
        FUZZ_CHECK(calls.isEmpty(), "a refused body reached the sink" + context(body));
        FUZZ_CHECK(error->message.startsWith(u"The provider's answer cannot be replayed"),
                   "an error without its explanation" + context(body));
        return;
    }
    for (const QByteArray &call : calls)
        FUZZ_CHECK(call.endsWith("\n\n"), "a sink call with part of an event" + context(body));
    const QByteArray stream = calls.join();
    FUZZ_CHECK(stream == sse::replayToBytes(options, body).stream,
               "replay() and replayToBytes() differ" + context(body));

    const QList<Event> all = events(stream, body);
    const bool responses = options.endpoint == sse::Endpoint::Responses;
    if (!responses)
        FUZZ_CHECK(all.last().data == "[DONE]", "no [DONE] at the end" + context(body));
    for (qsizetype i = 0; i < all.size(); ++i) {
        const Event &event = all[i];
        if (!responses && i + 1 == all.size())
            break;
        const auto members = json::objectMembers(event.data, json::Strictness::Lenient);
        FUZZ_CHECK(members.has_value(),
                   "data that is no JSON object: " + fuzz::printable(event.data) + context(body));
        if (!responses) {
            FUZZ_CHECK(event.name.isNull(), "a named chunk" + context(body));
            continue;
        }
        const json::Member *type = json::find(*members, "type");
        const json::Member *sequence = json::find(*members, "sequence_number");
        FUZZ_CHECK(type && json::stringValue(type->value) == event.name,
                   "an event whose type is not its name" + context(body));
        FUZZ_CHECK(sequence && json::integerValue(sequence->value) == i,
                   "sequence numbers that do not count from 0" + context(body));
    }
    if (responses)
        FUZZ_CHECK(all.first().name == "response.created", "no response.created" + context(body));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 2)
        return 0;
    const auto endpoints = {sse::Endpoint::ChatCompletions, sse::Endpoint::Completions,
                            sse::Endpoint::Responses};
    sse::ReplayOptions options;
    options.endpoint = std::data(endpoints)[(data[0] & 3) % 3];
    options.includeUsage = (data[0] & 4) != 0;
    options.minPieceBytes = 1 + data[1] % 64;
    options.maxPieces = 1 + (data[0] >> 3);

    // The body alone in an allocation of its exact size.
    const std::size_t bodySize = size - 2;
    const auto copy = std::make_unique<char[]>(bodySize ? bodySize : 1);
    std::copy(data + 2, data + size, copy.get());
    const QByteArrayView body(copy.get(), qsizetype(bodySize));
    checkReplay(options, body);

    llmproxy::HttpAnswer failure;
    failure.status = 500;
    failure.body = body.toByteArray();
    const QByteArray event = sse::errorEvent(options.endpoint, failure, 3);
    const QList<Event> one = events(event, body);
    FUZZ_CHECK(one.size() == 1, "an error that is not one event" + context(body));
    FUZZ_CHECK(json::objectMembers(one.first().data, json::Strictness::Lenient).has_value(),
               "an error event whose data is no JSON object" + context(body));
    return 0;
}
