// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include "provider/httpprovider.h"
#include "provider/providerprofile.h"

#include <QPointer>
#include <QUrl>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

class QNetworkAccessManager;
class QNetworkReply;
class QNetworkRequest;

namespace llmproxy {

// The OpenAI family's own words: files, and batch objects with their status strings.
struct FileInfo {
    QByteArray id;
    qint64 bytes = 0;
};

struct BatchErrorItem {
    QByteArray code;
    QString message;
    int line = -1; // -1 when null
};

struct BatchInfo {
    QByteArray id;
    QByteArray status; // validating, failed, in_progress, finalizing, completed, expired,
                       // cancelling, cancelled
    QByteArray endpoint;
    QByteArray inputFileId;
    QByteArray outputFileId;                  // empty when null
    QByteArray errorFileId;                   // empty when null
    int total = 0, completed = 0, failed = 0; // request_counts
    QList<BatchErrorItem> errors;             // errors.data
    QJsonObject metadata;
    qint64 createdAt = 0;
    bool isTerminal() const; // failed, completed, expired, cancelled
};

struct BatchPage {
    QList<BatchInfo> batches;
    bool hasMore = false;
    QByteArray lastId;
};

// An OpenAI-family status string, normalised (case-insensitive; unknown: nullopt).
std::optional<std::pair<BatchPhase, BatchEnd>> openAiFamilyStatus(QByteArrayView status);
// A batch object as the neutral contract sees it, in `profile`'s words; `state` is the provider
// state to keep.
BatchStatus batchStatusFromInfo(const BatchInfo &info,
                                const ProviderProfile &profile = ProviderProfile());

// The OpenAI Files + Batches API over a QNetworkAccessManager that the caller owns and that
// lives on the same thread. No cookies: the manager is given a jar that never keeps one, and
// no call loads or saves any, so nothing one key's calls received is sent on another's. `baseUrl`
// ends in /v1 (e.g. https://api.openai.com/v1); it may carry a longer path. The manager must
// outlive the calls: replies it deletes never call back.
class OpenAiProvider final : public HttpProviderBase {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(OpenAiProvider)
public:
    explicit OpenAiProvider(QNetworkAccessManager *nam, const QUrl &baseUrl,
                            QObject *parent = nullptr);
    ~OpenAiProvider() override;

    // Which member of the family this client speaks to (OpenAI by default): its auth header,
    // file purpose, line shape, status words, completion window and expiry.
    void setProfile(const ProviderProfile &profile) { m_profile = profile; }
    const ProviderProfile &profile() const { return m_profile; }

    // The provider-neutral contract. The provider state is a small JSON object naming the
    // batch's files: {"input_file_id", "output_file_id", "error_file_id"} (stateFor()).
    QByteArray encodeLine(QByteArrayView customId, QByteArrayView endpoint,
                          QByteArrayView body) const override;
    std::optional<ResultLine> decodeResultLine(QByteArrayView line, QString *error) const override;
    std::optional<QByteArray> customIdFromLineStart(QByteArrayView lineStart) const override;
    bool queueFull(const ProviderError &error) const override;
    void stage(QObject *context, const Credentials &creds, const BatchSubmission &submission,
               const QByteArray &lines, Callback<QByteArray> done) override;
    void submit(QObject *context, const Credentials &creds, const BatchSubmission &submission,
                const QByteArray &state, const QByteArray &lines, StatusCallback done) override;
    void find(QObject *context, const Credentials &creds, const BatchSubmission &submission,
              const QByteArray &state, Callback<std::optional<BatchStatus>> done) override;
    void poll(QObject *context, const Credentials &creds, const QByteArray &batchId,
              const QByteArray &state, StatusCallback done) override;
    void cancel(QObject *context, const Credentials &creds, const QByteArray &batchId,
                const QByteArray &state, StatusCallback done) override;
    void readResults(QObject *context, const Credentials &creds, const QByteArray &batchId,
                     const QByteArray &state, ResultCallback onLine,
                     LineTooLongCallback onLineTooLong, DoneCallback done) override;
    void cleanUp(const Credentials &creds, const QByteArray &state) override;
    void sendSynchronous(const Credentials &creds, const QByteArray &endpoint,
                         const QByteArray &body, Callback<SyncAnswer> done) override;
    void sendSynchronousWithin(const Credentials &creds, const QByteArray &endpoint,
                               const QByteArray &body, std::chrono::milliseconds timeout,
                               Callback<SyncAnswer> done) override;

    // The provider state naming these files (empty ids are left out), and back.
    struct Files {
        QByteArray input, output, error;
    };
    static QByteArray stateFor(const Files &files);
    static Files filesOf(const QByteArray &state);

    // The family's Files + Batches calls, one HTTP call each.
    // POST /files (multipart, purpose from the profile) with the JSONL content.
    void uploadBatchFile(const Credentials &creds, const QByteArray &jsonl, const QString &fileName,
                         Callback<FileInfo> done);
    // POST /batches {input_file_id, endpoint, completion_window (the profile's first), metadata}.
    void createBatch(const Credentials &creds, const QByteArray &inputFileId,
                     const QByteArray &endpoint, const QJsonObject &metadata,
                     Callback<BatchInfo> done);
    // GET /batches/{id}
    void retrieveBatch(const Credentials &creds, const QByteArray &batchId,
                       Callback<BatchInfo> done);
    // POST /batches/{id}/cancel
    void cancelBatch(const Credentials &creds, const QByteArray &batchId, Callback<BatchInfo> done);
    // GET /batches?limit=&after= (limit clamped to 1..100; <= 0 leaves the provider's default;
    // an empty `after` starts at the newest batch).
    void listBatches(const Credentials &creds, const QByteArray &after, int limit,
                     Callback<BatchPage> done);
    // GET /files/{id}/content, delivered line by line as it streams in (never whole in memory).
    // Each non-empty line goes to `onLine` without its CR/LF, in file order; a last line without
    // a newline is delivered too. A line longer than the provider's line limit is not held: its
    // first bytes go to `onLineTooLong` (may be empty) in its place, and the lines after it are
    // read as usual. `done` runs once at the end. A download that fails part-way may already
    // have delivered its complete lines (never a cut one) before `done` reports the error.
    void downloadFileLines(const Credentials &creds, const QByteArray &fileId,
                           std::function<void(QByteArrayView line)> onLine,
                           LineTooLongCallback onLineTooLong, DoneCallback done);
    // DELETE /files/{id}
    void deleteFile(const Credentials &creds, const QByteArray &fileId, DoneCallback done);

    // Parse helpers, public for unit tests.
    static std::optional<BatchInfo> parseBatch(const QByteArray &json);
    static std::optional<FileInfo> parseFile(const QByteArray &json);
    static std::optional<BatchPage> parseBatchPage(const QByteArray &json);

private:
    struct DownloadState;

    QNetworkRequest makeRequest(const Credentials &creds, const QUrl &url) const;
    // A JSON call: the reply's body goes through `parse` and the result to `done`.
    template <typename T>
    void expectJson(QNetworkReply *reply, const Credentials &creds,
                    std::optional<T> (*parse)(const QByteArray &), Callback<T> done);

    // poll(), cancel(): the batch object they answer with, as the normalised status.
    Callback<BatchInfo> statusFromBatch(QObject *context, const QByteArray &state,
                                        StatusCallback done) const;
    // find(): one page of the newest batches, then the next (at most 10 pages).
    void findPage(QObject *context, const Credentials &creds, const QByteArray &localId,
                  const QByteArray &after, int page, Callback<std::optional<BatchStatus>> done);
    // readResults(): the files in `files`, one after the other.
    void readFiles(QObject *context, const Credentials &creds, QList<QByteArray> files,
                   std::shared_ptr<ResultCallback> onLine,
                   std::shared_ptr<LineTooLongCallback> onLineTooLong, DoneCallback done,
                   std::optional<ProviderError> failed = std::nullopt);

    ProviderProfile m_profile;
};

} // namespace llmproxy
