// SPDX-License-Identifier: GPL-3.0-or-later
// The relay's answer parser (UpstreamReply in proxy/http/upstreamclient.*): the input is what
// an upstream sends on one connection. The reply runs without a socket or a client: the bytes
// go into its input buffer as a socket read would put them there (at most 64 KiB held), then
// the same steps as on readyRead (afterInput(), then the caller's read()s), and at the end the
// connection closes (markEof(), as onClosed() does). Nothing in upstreamclient.cpp changes for
// this; the header names this file's class a friend.
//
// Invariants, besides memory errors and undefined behaviour:
// - The outcome does not depend on how the bytes arrive (whole, byte by byte, in pseudo-random
//   pieces, read back in pseudo-random sizes): status, headers, body, error, and what was
//   known before the connection closed.
// - The parser never stalls with a full buffer; a final status is 200..599 (1xx are skipped);
//   header fields are single lines; a Content-Length body is never longer than announced and
//   is whole when the reply ends without error; HEAD, 204 and 304 answers have no body.

#include "fuzzsupport.h"
#include "http/upstreamclient.h"

namespace llmproxy {

class UpstreamReplyProbe {
public:
    struct Outcome {
        bool headDone = false;
        int status = 0;
        QByteArray headers; // "name: value\n" each
        qsizetype fields = 0;
        QByteArray body;
        bool finished = false;
        UpstreamReply::Error error = UpstreamReply::Error::None;
        QString errorString;
        bool finishedBeforeClose = false;
        qsizetype bodyBeforeClose = 0;
        qint64 announcedLength = -1; // when the head framed the body by Content-Length

        bool operator==(const Outcome &) const = default;
        QByteArray describe() const {
            return "head=" + QByteArray(headDone ? "yes" : "no") +
                   " status=" + QByteArray::number(status) +
                   " finished=" + QByteArray(finished ? "yes" : "no") +
                   " error=" + QByteArray::number(int(error)) + " \"" + errorString.toUtf8() +
                   "\" before close: finished=" + QByteArray(finishedBeforeClose ? "yes" : "no") +
                   " body=" + QByteArray::number(bodyBeforeClose) +
                   "\nheaders: " + fuzz::printable(headers) + "\nbody: " + fuzz::printable(body);
        }
    };

    static Outcome run(const QByteArray &method, const fuzz::Pieces &pieces, fuzz::Rng *readSizes) {
        constexpr qsizetype InputLimit = 64 * 1024; // as in upstreamclient.cpp
        UpstreamRequest request;
        request.method = method;
        request.target = "/";
        UpstreamReply reply(nullptr, UpstreamOrigin(), std::move(request), nullptr);
        Outcome out;
        const auto takeHead = [&] {
            if (!reply.hasHead() || out.headDone)
                return;
            out.headDone = true;
            out.status = reply.status();
            out.fields = reply.headerCount();
            for (qsizetype i = 0; i < reply.headerCount(); ++i)
                out.headers += reply.headerName(i).toByteArray() + ": " +
                               reply.headerValue(i).toByteArray() + '\n';
            if (reply.m_body == UpstreamReply::Body::Length)
                out.announcedLength = reply.m_remaining;
        };
        // What the relay does when told: read until read() gives nothing.
        const auto drain = [&] {
            takeHead();
            for (;;) {
                const qint64 size = readSizes ? readSizes->between(1, 300) : 256 * 1024;
                const QByteArray data = reply.read(size);
                FUZZ_CHECK(data.size() <= size, "read() gave more than asked");
                if (data.isEmpty())
                    break;
                out.body += data;
            }
        };
        for (QByteArrayView piece : pieces) {
            while (!piece.isEmpty() && !reply.isFinished()) {
                const qsizetype room = InputLimit - reply.m_in.size();
                FUZZ_CHECK(room > 0, "the parser holds a full buffer and takes nothing: " +
                                         fuzz::printable(reply.m_in, 200));
                const qsizetype n = std::min(room, piece.size());
                reply.m_in.append(piece.data(), n);
                reply.m_received = true;
                piece = piece.sliced(n);
                reply.afterInput();
                drain();
            }
        }
        out.finishedBeforeClose = reply.isFinished();
        out.bodyBeforeClose = out.body.size();
        if (!reply.isFinished()) {
            reply.markEof(UpstreamReply::Error::Closed,
                          QStringLiteral("the upstream closed the connection"));
            reply.afterInput();
            drain();
        }
        out.finished = reply.isFinished();
        out.error = reply.error();
        out.errorString = reply.errorString();
        return out;
    }
};

} // namespace llmproxy

namespace {

using llmproxy::UpstreamReply;
using Probe = llmproxy::UpstreamReplyProbe;

void checkOutcome(const Probe::Outcome &o, const QByteArray &method, QByteArrayView input) {
    const QByteArray what = "\n" + o.describe() + "\ninput: " + fuzz::printable(input);
    FUZZ_CHECK(o.finished, "not finished after the connection closed" + what);
    FUZZ_CHECK(o.headDone || o.error != UpstreamReply::Error::None, "no head, no error" + what);
    if (!o.headDone)
        return;
    FUZZ_CHECK(o.status >= 200 && o.status <= 599, "status" + what);
    // One entry per field, each a single line (names are not judged here: the relay drops
    // what is not a token, and cleans values, before anything reaches a client).
    FUZZ_CHECK(o.headers.count('\n') == o.fields, "a field spans lines" + what);
    if (method == "HEAD" || o.status == 204 || o.status == 304)
        FUZZ_CHECK(o.body.isEmpty() && o.finishedBeforeClose, "a body where none may be" + what);
    if (o.announcedLength >= 0) {
        FUZZ_CHECK(o.body.size() <= o.announcedLength, "more body than announced" + what);
        if (o.error == UpstreamReply::Error::None)
            FUZZ_CHECK(o.body.size() == o.announcedLength, "less body than announced" + what);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const QByteArrayView input(reinterpret_cast<const char *>(data), qsizetype(size));
    const QByteArray get = "GET";
    const Probe::Outcome whole = Probe::run(get, fuzz::Pieces(input), nullptr);
    checkOutcome(whole, get, input);

    fuzz::Rng rng(input);
    const auto compare = [&](qsizetype maxPiece) {
        const fuzz::Pieces pieces(input, rng, maxPiece);
        const Probe::Outcome split = Probe::run(get, pieces, &rng);
        FUZZ_CHECK(split == whole,
                   "outcome depends on the pieces (" + QByteArray::number(pieces.size()) +
                       ")\nwhole: " + whole.describe() + "\nsplit: " + split.describe() +
                       "\ninput: " + fuzz::printable(input));
    };
    if (input.size() <= 1024)
        compare(1);
    compare(fuzz::pieceSize(rng));

    const QByteArray head = "HEAD";
    checkOutcome(Probe::run(head, fuzz::Pieces(input), nullptr), head, input);
    return 0;
}
