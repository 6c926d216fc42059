// SPDX-License-Identifier: GPL-3.0-or-later
// The request gate (proxy/http/requestgate.*) fed one connection's bytes: whole, then cut at
// pseudo-random points (bytes apart for short inputs). Besides memory errors and undefined
// behaviour, it checks that the verdicts do not depend on how the bytes arrive: the first
// refusal (status and message), whether "100 Continue" was asked for, the keep-alive flag of
// every request, and the state the gate is left in (a request fed after the input must get
// the same verdict). Each input runs with small limits, so that every limit is reachable, and
// with the defaults.

#include "fuzzsupport.h"
#include "http/requestgate.h"

using llmproxy::http::GateLimits;
using llmproxy::http::RequestGate;

namespace {

struct Outcome {
    int status = 0; // of the first Reject, 0 if none
    QString message;
    bool continued = false; // a SendContinue (only compared when nothing was refused)
    QByteArray keepAlive;   // takeKeepAlive() for each request seen, then some
    QByteArray after;       // what a request fed after the input got

    bool operator==(const Outcome &other) const {
        return status == other.status && message == other.message &&
               (status != 0 || continued == other.continued) && keepAlive == other.keepAlive &&
               after == other.after;
    }
    QByteArray describe() const {
        return "status=" + QByteArray::number(status) + " message=\"" + message.toUtf8() +
               "\" continued=" + QByteArray(continued ? "yes" : "no") + " keepAlive=" + keepAlive +
               " after=" + after;
    }
};

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

Outcome run(const GateLimits &limits, const fuzz::Pieces &pieces) {
    RequestGate gate(limits);
    Outcome out;
    for (const QByteArrayView piece : pieces) {
        const RequestGate::Verdict v = gate.feed(piece);
        if (v.kind == RequestGate::Verdict::SendContinue) {
            out.continued = true;
        } else if (v.kind == RequestGate::Verdict::Reject) {
            FUZZ_CHECK(v.status >= 400 && v.status <= 599 && !v.message.isEmpty(),
                       verdictName(v) + " \"" + v.message.toUtf8() + "\"");
            out.status = v.status;
            out.message = v.message;
            break;
        }
    }
    if (out.status == 0)
        out.after = verdictName(gate.feed(Probe));
    // More takes than requests can be in a short input: the surplus reads as "keep alive".
    for (int i = 0; i < 40; ++i)
        out.keepAlive += gate.takeKeepAlive() ? '1' : '0';
    return out;
}

GateLimits smallLimits() {
    GateLimits limits;
    limits.maxBody = 24;
    limits.maxHeaderFields = 6;
    limits.maxHeaderLine = 48;
    limits.maxHeaderBlock = 160;
    return limits;
}

void check(const GateLimits &limits, QByteArrayView input) {
    const Outcome whole = run(limits, fuzz::Pieces(input));
    fuzz::Rng rng(input);
    const auto compare = [&](qsizetype maxPiece) {
        const fuzz::Pieces pieces(input, rng, maxPiece);
        const Outcome split = run(limits, pieces);
        FUZZ_CHECK(split == whole, "input: " + fuzz::printable(input) + "\nwhole:  " +
                                       whole.describe() + "\nsplit:  " + split.describe() +
                                       "\npieces: " + QByteArray::number(pieces.size()) +
                                       ", max size " + QByteArray::number(maxPiece));
    };
    if (input.size() <= 1024)
        compare(1);
    compare(fuzz::pieceSize(rng));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const QByteArrayView input(reinterpret_cast<const char *>(data), qsizetype(size));
    check(smallLimits(), input);
    check(GateLimits(), input);
    return 0;
}
