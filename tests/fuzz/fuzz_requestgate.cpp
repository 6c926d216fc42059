// SPDX-License-Identifier: GPL-3.0-or-later
// The request gate (proxy/http/requestgate.*) fed one connection's bytes: whole, then cut at
// pseudo-random points (bytes apart for short inputs). Besides memory errors and undefined
// behaviour, it checks that the verdicts do not depend on how the bytes arrive: the first
// refusal (status and message), whether "100 Continue" was asked for, the keep-alive flag of
// every request, and the state the gate is left in (a request fed after the input must get
// the same verdict). Each input runs with small limits, so that every limit is reachable, and
// with the defaults.
//
// Where the gate also frames message by message (feedMessage() and stage(), which the front
// end drives), the same cuts go through it as the front end does: the verdicts must match
// feed()'s, every call must take a byte or refuse (the front end's loop would spin otherwise),
// the messages must end at the same offsets however the bytes are cut, and the gate is idle
// at the end exactly when nothing but blank lines follows the last message.

#include "fuzzsupport.h"
#include "http/requestgate.h"

#include <concepts>

using llmproxy::http::GateLimits;
using llmproxy::http::RequestGate;

namespace {

struct Outcome {
    int status = 0; // of the first Reject, 0 if none
    QString message;
    bool continued = false; // a SendContinue (only compared when nothing was refused)
    QByteArray keepAlive;   // takeKeepAlive() for each request seen, then some
    QByteArray after;       // what a request fed after the input got
    QByteArray ends;        // feedMessage(): the offsets where messages ended

    // The verdicts; `ends` is compared between feedMessage() runs only.
    bool operator==(const Outcome &other) const {
        return status == other.status && message == other.message &&
               (status != 0 || continued == other.continued) && keepAlive == other.keepAlive &&
               after == other.after;
    }
    QByteArray describe() const {
        return "status=" + QByteArray::number(status) + " message=\"" + message.toUtf8() +
               "\" continued=" + QByteArray(continued ? "yes" : "no") + " keepAlive=" + keepAlive +
               " after=" + after + " ends=" + ends;
    }
};

// A gate that frames message by message, as the front end drives it.
template <typename Gate>
concept FramesMessages = requires(Gate gate, QByteArrayView bytes, RequestGate::Verdict *verdict,
                                  bool *ended) {
    { gate.feedMessage(bytes, verdict, ended) } -> std::convertible_to<qsizetype>;
    gate.stage() == Gate::Stage::Idle;
};
static_assert(FramesMessages<RequestGate>, "the message-by-message check must not vanish");

// A request that follows the input on the same connection.
constexpr char Probe[] = "GET /probe HTTP/1.1\r\nConnection: close\r\n\r\n";

QByteArray verdictName(const RequestGate::Verdict &v) {
    switch (v.kind) {
    case RequestGate::Verdict::Pass:
        return "pass";
    case RequestGate::Verdict::SendContinue:
        return "continue";
    case RequestGate::Verdict::Reject:
        return "reject " + QByteArray::number(v.status);
    }
    return "?";
}

// Notes a verdict; true if it refused.
bool note(Outcome &out, const RequestGate::Verdict &v) {
    if (v.kind == RequestGate::Verdict::SendContinue) {
        out.continued = true;
    } else if (v.kind == RequestGate::Verdict::Reject) {
        FUZZ_CHECK(v.status >= 400 && v.status <= 599 && !v.message.isEmpty(),
                   verdictName(v) + " \"" + v.message.toUtf8() + "\"");
        out.status = v.status;
        out.message = v.message;
        return true;
    }
    return false;
}

// After the input: a request on the same connection, then the keep-alive flags.
void finish(Outcome &out, RequestGate &gate) {
    if (out.status == 0)
        out.after = verdictName(gate.feed(Probe));
    // More takes than requests can be in a short input: the surplus reads as "keep alive".
    for (int i = 0; i < 40; ++i)
        out.keepAlive += gate.takeKeepAlive() ? '1' : '0';
}

Outcome run(const GateLimits &limits, const fuzz::Pieces &pieces) {
    RequestGate gate(limits);
    Outcome out;
    for (const QByteArrayView piece : pieces) {
        if (note(out, gate.feed(piece)))
            break;
    }
    finish(out, gate);
    return out;
}

// As the front end does: feedMessage() until each read is used up.
template <typename Gate>
Outcome runMessages(const GateLimits &limits, const fuzz::Pieces &pieces, QByteArrayView input) {
    Gate gate(limits);
    Outcome out;
    qsizetype offset = 0;
    qsizetype lastEnd = 0;
    for (QByteArrayView piece : pieces) {
        while (!piece.isEmpty() && out.status == 0) {
            typename Gate::Verdict v;
            bool ended = false;
            const qsizetype framed = gate.feedMessage(piece, &v, &ended);
            FUZZ_CHECK(framed >= 0 && framed <= piece.size(),
                       "feedMessage() framed " + QByteArray::number(framed) + " of " +
                           QByteArray::number(piece.size()));
            if (note(out, v))
                break;
            FUZZ_CHECK(framed > 0,
                       "feedMessage() took nothing and refused nothing: " + fuzz::printable(input));
            offset += framed;
            piece = piece.sliced(framed);
            if (ended) {
                out.ends += QByteArray::number(offset) + ' ';
                lastEnd = offset;
            }
        }
        if (out.status != 0)
            break;
    }
    if (out.status == 0) {
        const QByteArrayView rest = input.sliced(lastEnd);
        const bool blank =
            std::all_of(rest.begin(), rest.end(), [](char c) { return c == '\r' || c == '\n'; });
        FUZZ_CHECK((gate.stage() == Gate::Stage::Idle) == blank,
                   "stage() at the end disagrees with the message ends " + out.ends +
                       "\ninput: " + fuzz::printable(input));
    }
    finish(out, gate);
    return out;
}

GateLimits smallLimits() {
    GateLimits limits;
    limits.maxBody = 24;
    limits.maxHeaderFields = 6;
    limits.maxHeaderLine = 48;
    limits.maxHeaderBlock = 160;
    limits.maxRequestLine = 40;
    limits.maxChunkLine = 24;
    return limits;
}

void check(const GateLimits &limits, QByteArrayView input) {
    const Outcome whole = run(limits, fuzz::Pieces(input));
    fuzz::Rng rng(input);
    const auto differ = [&](const char *what, const Outcome &other, const fuzz::Pieces &pieces) {
        return QByteArray(what) + "\ninput: " + fuzz::printable(input) +
               "\nwhole:  " + whole.describe() + "\nother:  " + other.describe() +
               "\npieces: " + QByteArray::number(pieces.size());
    };
    std::vector<fuzz::Pieces> cuts;
    if (input.size() <= 1024)
        cuts.emplace_back(input, rng, 1);
    cuts.emplace_back(input, rng, fuzz::pieceSize(rng));
    for (const fuzz::Pieces &pieces : cuts) {
        const Outcome split = run(limits, pieces);
        FUZZ_CHECK(split == whole, differ("feed() depends on the cut", split, pieces));
    }
    if constexpr (FramesMessages<RequestGate>) {
        const fuzz::Pieces one(input);
        const Outcome framed = runMessages<RequestGate>(limits, one, input);
        FUZZ_CHECK(framed == whole, differ("feedMessage() differs from feed()", framed, one));
        for (const fuzz::Pieces &pieces : cuts) {
            const Outcome split = runMessages<RequestGate>(limits, pieces, input);
            FUZZ_CHECK(split == whole && split.ends == framed.ends,
                       differ("feedMessage() depends on the cut", split, pieces) +
                           "\nends whole: " + framed.ends);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const QByteArrayView input(reinterpret_cast<const char *>(data), qsizetype(size));
    check(smallLimits(), input);
    check(GateLimits(), input);
    return 0;
}
