// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The HTTP plumbing the providers that speak to an upstream API share: the common part of a
// request (user agent, timeout, redirects, cookies), tracking replies until they finish, a
// results download read line by line under a line limit, the error a reply carries, and the
// synchronous call's answer. What a provider says (auth headers, paths, JSON shapes, status
// words) stays in its own file.

#include "provider/provider.h"

#include <QPointer>
#include <QUrl>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

class QJsonObject;
class QJsonValue;
class QNetworkAccessManager;
class QNetworkReply;
class QNetworkRequest;

namespace llmproxy {

namespace http {

// An error body is small; keep at most this much of it.
inline constexpr qsizetype kMaxErrorBodyBytes = 64 * 1024;

int httpStatusOf(const QNetworkReply *reply);
// What is left to read; nothing once the reply was aborted (closed).
QByteArray readRest(QNetworkReply *reply);
inline bool isSuccess(int status) {
    return status >= 200 && status < 300;
}
// Errors where the HTTP exchange did not complete (refused, reset, cut short, timed out, proxy).
bool isTransportError(int networkError);
std::optional<QJsonObject> parseObject(const QByteArray &json);
// A string (or an integer, as its digits) of a JSON answer; empty for anything else.
QByteArray stringOf(const QJsonValue &v);
// The provider may echo what it was sent; a key must never reach a log line or message.
void scrubKey(ProviderError &error, const QByteArray &apiKey);
// nullopt when the reply is a complete 2xx answer, else the error it carries (key scrubbed,
// logged as a warning).
std::optional<ProviderError> replyError(QNetworkReply *reply, const QByteArray &body,
                                        const QByteArray &apiKey);

} // namespace http

class HttpProviderBase : public Provider {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HttpProviderBase)
public:
    ~HttpProviderBase() override;

    // Transfer timeout for every call (no bytes moving for this long fails the call).
    void setTransferTimeout(std::chrono::milliseconds timeout) { m_transferTimeout = timeout; }
    // Calls made from now on go to `baseUrl` (calls in flight finish where they started).
    void setBaseUrl(const QUrl &baseUrl) { m_baseUrl = baseUrl; }
    const QUrl &baseUrl() const { return m_baseUrl; }
    // {base path}/{encodedPath}?{encodedQuery}; pieces must already be percent-encoded.
    QUrl endpointUrl(const QByteArray &encodedPath, const QByteArray &encodedQuery = {}) const;

    // The transfer timeout of sendSynchronous() is at least this: a model may think for minutes
    // before its first byte (the official SDKs wait 10 minutes).
    static constexpr std::chrono::milliseconds kMinSyncTransferTimeout = std::chrono::minutes(10);

    // Largest result line read whole by default; a longer one goes to onLineTooLong (its first
    // kLineStartBytes only) and the download goes on.
    static constexpr qsizetype kMaxLineBytes = 64 * 1024 * 1024;
    static constexpr qsizetype kLineStartBytes = 64 * 1024;
    // For downloads started from now on (at least kLineStartBytes; tests use small limits).
    void setMaxLineBytes(qsizetype bytes) { m_maxLineBytes = std::max(bytes, kLineStartBytes); }
    qsizetype maxLineBytes() const { return m_maxLineBytes; }

    // The error a finished reply carries (transport errors give httpStatus 0); the body is read
    // as {"error": {"message", "type", "code", "param"}} or {"error": "..."}. It does not know
    // the key: the calls scrub the key from message and body themselves.
    static ProviderError errorFromReply(QNetworkReply *reply, const QByteArray &body);
    // Retry-After / retry-after-ms header values, capped at MaxTimerInterval (24 h); nullopt when
    // absent or unparsable.
    static std::optional<std::chrono::milliseconds> parseRetryAfter(const QByteArray &retryAfterMs,
                                                                    const QByteArray &retryAfter);

protected:
    HttpProviderBase(QNetworkAccessManager *nam, const QUrl &baseUrl, QObject *parent);

    // Adds what every call carries to a request that has its auth headers already.
    void prepareRequest(QNetworkRequest &req, const QByteArray &apiKey) const;
    // Watches `reply`: `handler` runs exactly once when it finishes, after the reply has been
    // scheduled for deletion, unless this provider is destroyed first.
    void track(QNetworkReply *reply, std::function<void(QNetworkReply *)> handler);
    // GETs `req` (its Accept header set by the caller) and delivers the body line by line as it
    // streams in (never whole in memory). Each non-empty line goes to `onLine` without its
    // CR/LF, in order; a last line without a newline is delivered too. A line longer than the
    // line limit is not held: its first bytes go to `onLineTooLong` (may be empty) in its place.
    // `done` runs once at the end, with the reply's error if any.
    void downloadLines(QNetworkRequest req, const QByteArray &apiKey,
                       std::function<void(QByteArrayView line)> onLine,
                       LineTooLongCallback onLineTooLong, DoneCallback done);
    // readResults(): a downloaded line as a result for `onLine`, nothing once `context` is gone;
    // a line that does not decode is logged (naming `source`) and skipped.
    std::function<void(QByteArrayView line)> resultLines(QObject *context, const QByteArray &source,
                                                         std::shared_ptr<ResultCallback> onLine);
    // POSTs `body` as JSON with the synchronous call's timeout (or `timeout` when given) and
    // answers with the upstream answer as it is, its headers filtered by `passedOnToClient`
    // (lower-case names).
    void postSynchronous(QNetworkRequest req, const QByteArray &body, const QByteArray &apiKey,
                         bool (*passedOnToClient)(const QByteArray &lowerName),
                         Callback<SyncAnswer> done,
                         std::optional<std::chrono::milliseconds> timeout = std::nullopt);

    QNetworkAccessManager *m_nam;
    QUrl m_baseUrl;
    qsizetype m_maxLineBytes = kMaxLineBytes;
    std::chrono::milliseconds m_transferTimeout{std::chrono::minutes(2)};

private:
    struct LineDownload;

    void drainLines(QNetworkReply *reply, LineDownload &download);
    // Takes the bytes of one line up to a newline (`lineEnds`) or the end of a chunk. False if
    // a callback destroyed this provider.
    bool takeLinePiece(LineDownload &download, QByteArrayView piece, bool lineEnds);
    bool endTooLongLine(LineDownload &download);
    void finishLines(QNetworkReply *reply, LineDownload &download, const DoneCallback &done);

    std::vector<QPointer<QNetworkReply>> m_replies; // in flight, aborted on destruction
};

} // namespace llmproxy
