// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// What the fuzzers share: a broken invariant stops the run (libFuzzer keeps the input as a
// crash), a pseudo-random generator seeded by the input (so a run is reproducible from the
// input alone and the corpus stays plain bytes), and ways to cut an input into pieces that
// arrive one after another, each in an allocation of its own exact size, so AddressSanitizer
// sees a read past the end of a piece and not only past the end of the input.

#include <QByteArray>
#include <QByteArrayView>
#include <QString> // with QT_USE_QSTRINGBUILDER, QByteArray + QByteArray needs it
#include <QStringDecoder>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace fuzz {

[[noreturn]] inline void fail(const char *what, const QByteArray &detail) {
    std::fprintf(stderr, "\n=== fuzz invariant broken: %s\n%s\n", what, detail.constData());
    std::fflush(stderr);
    std::abort();
}

// Checks an invariant; `detail` (a QByteArray expression) is built only when it fails.
#define FUZZ_CHECK(condition, detail)                                                              \
    do {                                                                                           \
        if (!(condition))                                                                          \
            ::fuzz::fail(#condition, detail);                                                      \
    } while (false)

// Bytes quoted for a message: printable ASCII as is, the rest as \xNN; at most `max` bytes.
inline QByteArray printable(QByteArrayView bytes, qsizetype max = 400) {
    QByteArray out;
    for (qsizetype i = 0; i < bytes.size() && i < max; ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
        } else {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        }
    }
    if (bytes.size() > max)
        out += "...(" + QByteArray::number(bytes.size()) + " bytes)";
    return out;
}

// UTF-8 to a QString, a leading U+FEFF kept (QString::fromUtf8 drops it as a byte order mark).
inline QString fromUtf8(QByteArrayView utf8) {
    QStringDecoder decoder(QStringDecoder::Utf8, QStringDecoder::Flag::Stateless |
                                                     QStringDecoder::Flag::ConvertInitialBom);
    return decoder(utf8);
}

// Qt 6.4's JSON parser drops a raw (not escaped) U+FEFF at the start of a string or key: such
// strings are not compared with Qt's.
inline bool startsWithBom(QByteArrayView utf8) {
    return utf8.startsWith("\xef\xbb\xbf");
}

// splitmix64, seeded with an FNV-1a hash of the input.
class Rng {
public:
    explicit Rng(QByteArrayView input) {
        std::uint64_t h = 0xcbf29ce484222325ULL;
        for (const char c : input)
            h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
        m_state = h;
    }
    std::uint64_t next() {
        std::uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    // In [low, high].
    qsizetype between(qsizetype low, qsizetype high) {
        return low + qsizetype(next() % std::uint64_t(high - low + 1));
    }

private:
    std::uint64_t m_state;
};

// The input as pieces that arrive one after another, each a copy in its own allocation.
class Pieces {
public:
    // Pieces of 1..maxPiece bytes at pseudo-random points (every byte apart when maxPiece is 1).
    Pieces(QByteArrayView input, Rng &rng, qsizetype maxPiece) {
        while (!input.isEmpty()) {
            const qsizetype n =
                std::min(input.size(), rng.between(1, std::max<qsizetype>(maxPiece, 1)));
            add(input.first(n));
            input = input.sliced(n);
        }
    }
    // The input whole, as one piece.
    explicit Pieces(QByteArrayView input) {
        if (!input.isEmpty())
            add(input);
    }

    qsizetype size() const { return qsizetype(m_views.size()); }
    QByteArrayView at(qsizetype i) const { return m_views[size_t(i)]; }
    auto begin() const { return m_views.begin(); }
    auto end() const { return m_views.end(); }

private:
    void add(QByteArrayView bytes) {
        auto copy = std::make_unique<char[]>(size_t(bytes.size()));
        std::copy(bytes.begin(), bytes.end(), copy.get());
        m_views.emplace_back(copy.get(), bytes.size());
        m_storage.push_back(std::move(copy));
    }
    std::vector<std::unique_ptr<char[]>> m_storage;
    std::vector<QByteArrayView> m_views;
};

// A piece size for a pseudo-random cut: bytes apart, small pieces or large ones.
inline qsizetype pieceSize(Rng &rng) {
    switch (rng.next() % 4) {
    case 0:
        return 2;
    case 1:
        return 8;
    case 2:
        return 64;
    default:
        return 1024;
    }
}

} // namespace fuzz
