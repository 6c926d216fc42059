// SPDX-License-Identifier: GPL-3.0-or-later
#include "http/httpwriter.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace llmproxy::http {

QByteArray reasonPhrase(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

QByteArray statusLine(int status) {
    return QByteArrayLiteral("HTTP/1.1 ") + QByteArray::number(status) + ' ' +
           reasonPhrase(status) + QByteArrayLiteral("\r\n");
}

QByteArray serialize(const HttpAnswer &answer, bool keepAlive, bool headOnly) {
    // These answers never have a body, so they carry no Content-Length either (RFC 9110 §8.6):
    // a client would take body bytes after them for the next answer.
    const bool bodiless = answer.status == 204 || answer.status == 304 ||
                          (answer.status >= 100 && answer.status < 200);
    QByteArray out;
    out.reserve(160 + answer.body.size());
    out += statusLine(answer.status);
    if (!answer.contentType.isEmpty())
        out += QByteArrayLiteral("Content-Type: ") + answer.contentType + QByteArrayLiteral("\r\n");
    if (!bodiless)
        out += QByteArrayLiteral("Content-Length: ") + QByteArray::number(answer.body.size()) +
               QByteArrayLiteral("\r\n");
    out += QByteArrayLiteral("Date: ") + currentDate() + QByteArrayLiteral("\r\n");
    for (const auto &[name, value] : answer.headers) {
        if (!isSafeHeader(name, value) || name.compare("date", Qt::CaseInsensitive) == 0)
            continue;
        out += name + QByteArrayLiteral(": ") + value + QByteArrayLiteral("\r\n");
    }
    if (!keepAlive)
        out += QByteArrayLiteral("Connection: close\r\n");
    out += QByteArrayLiteral("\r\n");
    if (!headOnly && !bodiless)
        out += answer.body;
    return out;
}

QByteArray chunk(QByteArrayView data) {
    if (data.isEmpty())
        return {};
    QByteArray out = QByteArray::number(data.size(), 16);
    out.reserve(out.size() + data.size() + 4);
    out += "\r\n";
    out += data;
    out += "\r\n";
    return out;
}

QByteArray imfFixdate(qint64 secondsSinceEpoch) {
    static constexpr char Days[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static constexpr char Months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    // The proleptic Gregorian calendar from days since 1970-01-01 (a Thursday), by H. Hinnant's
    // civil_from_days: no gmtime_r (not everywhere) and no strftime (its names follow the locale).
    qint64 days = secondsSinceEpoch / 86400;
    qint64 secondOfDay = secondsSinceEpoch % 86400;
    if (secondOfDay < 0) {
        secondOfDay += 86400;
        --days;
    }
    const int weekday = int(((days % 7) + 7) % 7);
    const qint64 z = days + 719468;
    const qint64 era = (z >= 0 ? z : z - 146096) / 146097;
    const qint64 dayOfEra = z - era * 146097;
    const qint64 yearOfEra =
        (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365;
    const qint64 dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100);
    const qint64 mp = (5 * dayOfYear + 2) / 153;
    const int day = int(dayOfYear - (153 * mp + 2) / 5 + 1);
    const int month = int(mp < 10 ? mp + 3 : mp - 9); // 1..12
    const qint64 year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
    char text[64];
    const int n =
        std::snprintf(text, sizeof text, "%s, %02d %s %04lld %02d:%02d:%02d GMT", Days[weekday],
                      day, Months[month - 1], static_cast<long long>(year), int(secondOfDay / 3600),
                      int(secondOfDay / 60 % 60), int(secondOfDay % 60));
    return QByteArray(text, n > 0 ? std::min<int>(n, int(sizeof text) - 1) : 0);
}

QByteArray currentDate() {
    // One I/O thread each: no lock. time() is a vDSO call, far cheaper than formatting.
    thread_local std::time_t cachedSecond = -1;
    thread_local QByteArray cached;
    const std::time_t now = std::time(nullptr);
    if (now != cachedSecond) {
        cachedSecond = now;
        cached = imfFixdate(now);
    }
    return cached;
}

bool isHopByHop(QByteArrayView name) {
    static constexpr QByteArrayView names[] = {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    };
    for (QByteArrayView n : names) {
        if (n == name)
            return true;
    }
    return false;
}

} // namespace llmproxy::http
