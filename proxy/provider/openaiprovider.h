// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include "provider/provider.h"

#include <QPointer>
#include <QUrl>

#include <algorithm>
#include <chrono>
#include <vector>

class QNetworkAccessManager;
class QNetworkReply;
class QNetworkRequest;

namespace llmproxy {

// The OpenAI Files + Batches API over a QNetworkAccessManager that the caller owns and that
// lives on the same thread. No cookies: the manager is given a jar that never keeps one, and
// no call loads or saves any, so nothing one key's calls received is sent on another's. `baseUrl`
// ends in /v1 (e.g. https://api.openai.com/v1); it may carry a longer path. The manager must
// outlive the calls: replies it deletes never call back.
class OpenAiProvider final : public Provider {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(OpenAiProvider)
public:
    explicit OpenAiProvider(QNetworkAccessManager *nam, const QUrl &baseUrl,
                            QObject *parent = nullptr);
    ~OpenAiProvider() override;

    // Transfer timeout for every call (no bytes moving for this long fails the call).
    void setTransferTimeout(std::chrono::milliseconds timeout) { m_transferTimeout = timeout; }

    void uploadBatchFile(const Credentials &creds, const QByteArray &jsonl, const QString &fileName,
                         Callback<FileInfo> done) override;
    void createBatch(const Credentials &creds, const QByteArray &inputFileId,
                     const QByteArray &endpoint, const QJsonObject &metadata,
                     Callback<BatchInfo> done) override;
    void retrieveBatch(const Credentials &creds, const QByteArray &batchId,
                       Callback<BatchInfo> done) override;
    void cancelBatch(const Credentials &creds, const QByteArray &batchId,
                     Callback<BatchInfo> done) override;
    void listBatches(const Credentials &creds, const QByteArray &after, int limit,
                     Callback<BatchPage> done) override;
    void downloadFileLines(const Credentials &creds, const QByteArray &fileId,
                           std::function<void(QByteArrayView line)> onLine,
                           LineTooLongCallback onLineTooLong, DoneCallback done) override;
    void deleteFile(const Credentials &creds, const QByteArray &fileId, DoneCallback done) override;
    void sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                         const QByteArray &body, Callback<SyncAnswer> done) override;

    // Parse helpers, public for unit tests.
    static std::optional<BatchInfo> parseBatch(const QByteArray &json);
    static std::optional<FileInfo> parseFile(const QByteArray &json);
    static std::optional<BatchPage> parseBatchPage(const QByteArray &json);
    // The error a finished reply carries (transport errors give httpStatus 0). It does not know
    // the key: the calls scrub the key from message and body themselves.
    static ProviderError errorFromReply(QNetworkReply *reply, const QByteArray &body);
    // Retry-After / retry-after-ms header values, capped at MaxTimerInterval (24 h); nullopt when
    // absent or unparsable.
    static std::optional<std::chrono::milliseconds> parseRetryAfter(const QByteArray &retryAfterMs,
                                                                    const QByteArray &retryAfter);
    // {base path}/{encodedPath}?{encodedQuery}; pieces must already be percent-encoded.
    QUrl endpointUrl(const QByteArray &encodedPath, const QByteArray &encodedQuery = {}) const;

    // The transfer timeout of sendSynchronous() is at least this: a model may think for minutes
    // before its first byte (the official SDKs wait 10 minutes).
    static constexpr std::chrono::milliseconds kMinSyncTransferTimeout = std::chrono::minutes(10);

    // Largest line downloadFileLines() reads whole by default; a longer one goes to
    // onLineTooLong (its first kLineStartBytes only) and the download goes on.
    static constexpr qsizetype kMaxLineBytes = 64 * 1024 * 1024;
    static constexpr qsizetype kLineStartBytes = 64 * 1024;
    // For downloads started from now on (at least kLineStartBytes; tests use small limits).
    void setMaxLineBytes(qsizetype bytes) { m_maxLineBytes = std::max(bytes, kLineStartBytes); }
    qsizetype maxLineBytes() const { return m_maxLineBytes; }

private:
    struct DownloadState;

    QNetworkRequest makeRequest(const Credentials &creds, const QUrl &url) const;
    // Watches `reply`: `handler` runs exactly once when it finishes, after the reply has been
    // scheduled for deletion, unless this provider is destroyed first.
    void track(QNetworkReply *reply, std::function<void(QNetworkReply *)> handler);
    // A JSON call: the reply's body goes through `parse` and the result to `done`.
    template <typename T>
    void expectJson(QNetworkReply *reply, const Credentials &creds,
                    std::optional<T> (*parse)(const QByteArray &), Callback<T> done);
    void drainDownload(QNetworkReply *reply, DownloadState &state);
    // Takes the bytes of one line up to a newline (`lineEnds`) or the end of a chunk. False if
    // a callback destroyed this provider.
    bool takeLinePiece(DownloadState &state, QByteArrayView piece, bool lineEnds);
    bool endTooLongLine(DownloadState &state);
    void finishDownload(QNetworkReply *reply, DownloadState &state, const DoneCallback &done);

    QNetworkAccessManager *m_nam;
    QUrl m_baseUrl;
    qsizetype m_maxLineBytes = kMaxLineBytes;

public:
    // Calls made from now on go to `baseUrl` (calls in flight finish where they started).
    void setBaseUrl(const QUrl &baseUrl) { m_baseUrl = baseUrl; }
    const QUrl &baseUrl() const { return m_baseUrl; }
    std::chrono::milliseconds m_transferTimeout{std::chrono::minutes(2)};
    std::vector<QPointer<QNetworkReply>> m_replies; // in flight, aborted on destruction
};

} // namespace llmproxy
