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
    static constexpr char Days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr char Months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t t = static_cast<std::time_t>(secondsSinceEpoch);
    std::tm tm{};
    gmtime_r(&t, &tm);
    // Not strftime: its names follow the locale.
    char text[64];
    const int n = std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                Days[tm.tm_wday % 7], tm.tm_mday, Months[tm.tm_mon % 12],
                                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
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
