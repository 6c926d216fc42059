// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings/proxytokens.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QSaveFile>
#include <QStandardPaths>

#include <algorithm>
#include <array>

namespace llmproxy {

namespace {

constexpr qsizetype MaxNameLength = 64;
constexpr qsizetype MinTokenLength = 16;
constexpr qsizetype MaxTokenLength = 512;
constexpr qint64 MaxFileSize = 1024 * 1024;

bool isNameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

bool isTokenChar(char c) {
    return c > ' ' && c < 0x7f;
}

QString lineError(int line, const QString &what) {
    return QStringLiteral("line %1: %2").arg(line).arg(what);
}

} // namespace

std::optional<QList<ProxyToken>> parseProxyTokens(QByteArrayView text, QString *error) {
    QList<ProxyToken> tokens;
    int lineNumber = 0;
    auto fail = [error](const QString &message) {
        if (error)
            *error = message;
        return std::nullopt;
    };
    for (const QByteArray &rawLine : text.toByteArray().split('\n')) {
        ++lineNumber;
        QByteArray line = rawLine;
        if (line.endsWith('\r'))
            line.chop(1);
        line = line.trimmed();
        if (line.isEmpty() || line.startsWith('#'))
            continue;
        const QList<QByteArray> fields = line.simplified().split(' ');
        if (fields.size() != 2)
            return fail(lineError(lineNumber, QStringLiteral("expected \"name token\" (two "
                                                             "fields separated by spaces)")));
        const QByteArray &name = fields.at(0);
        const QByteArray &token = fields.at(1);
        if (!isProxyTokenName(name))
            return fail(lineError(lineNumber, QStringLiteral("a name is 1 to 64 letters, digits "
                                                             "or . _ @ -")));
        if (token.size() < MinTokenLength || token.size() > MaxTokenLength ||
            !std::all_of(token.cbegin(), token.cend(), isTokenChar))
            return fail(lineError(lineNumber,
                                  QStringLiteral("the token of \"%1\" must be 16 to 512 visible "
                                                 "ASCII characters (generate one with: openssl "
                                                 "rand -hex 32)")
                                      .arg(QString::fromLatin1(name))));
        for (const ProxyToken &earlier : std::as_const(tokens)) {
            if (earlier.name == name)
                return fail(lineError(lineNumber, QStringLiteral("the name \"%1\" is used twice")
                                                      .arg(QString::fromLatin1(name))));
            if (earlier.token == token)
                return fail(
                    lineError(lineNumber, QStringLiteral("\"%1\" has the same token as \"%2\"")
                                              .arg(QString::fromLatin1(name),
                                                   QString::fromLatin1(earlier.name))));
        }
        tokens.append(ProxyToken{name, token});
    }
    return tokens;
}

std::optional<QList<ProxyToken>> loadProxyTokens(const QString &path, QString *error) {
    auto fail = [error, &path](const QString &message) {
        if (error)
            *error = path + QStringLiteral(": ") + message;
        return std::nullopt;
    };
    const QFileInfo info(path);
    if (!info.exists())
        return fail(QStringLiteral("no such file"));
    if (!info.isFile())
        return fail(QStringLiteral("not a regular file"));
    const QFile::Permissions others = QFile::ReadGroup | QFile::WriteGroup | QFile::ExeGroup |
                                      QFile::ReadOther | QFile::WriteOther | QFile::ExeOther;
    if (info.permissions() & others)
        return fail(QStringLiteral("others may read or write it; make it owner-only with: "
                                   "chmod 600 %1")
                        .arg(path));
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return fail(file.errorString());
    if (file.size() > MaxFileSize)
        return fail(QStringLiteral("larger than 1 MiB"));
    QString problem;
    auto tokens = parseProxyTokens(file.readAll(), &problem);
    if (!tokens)
        return fail(problem);
    return tokens;
}

const ProxyToken *findProxyToken(const QList<ProxyToken> &tokens, QByteArrayView presented) {
    const QByteArray digest = QCryptographicHash::hash(presented, QCryptographicHash::Sha256);
    const ProxyToken *match = nullptr;
    for (const ProxyToken &candidate : tokens) {
        const QByteArray other =
            QCryptographicHash::hash(candidate.token, QCryptographicHash::Sha256);
        unsigned char difference = 0;
        for (qsizetype i = 0; i < digest.size(); ++i)
            difference |= static_cast<unsigned char>(digest[i] ^ other[i]);
        // No early exit and no branch on the secret's bytes beyond this one select.
        const bool equal = difference == 0;
        match = equal ? &candidate : match;
    }
    return presented.isEmpty() ? nullptr : match;
}

bool isProxyTokenName(QByteArrayView name) {
    return !name.isEmpty() && name.size() <= MaxNameLength &&
           std::all_of(name.cbegin(), name.cend(), isNameChar);
}

QByteArray generateProxyToken() {
    std::array<quint32, 6> words{}; // 24 bytes: 32 base64 characters, no padding
    QRandomGenerator::system()->fillRange(words.data(), words.size());
    const QByteArray bytes(reinterpret_cast<const char *>(words.data()), sizeof(words));
    return QByteArrayLiteral("llmp-") +
           bytes.toBase64(QByteArray::Base64UrlEncoding | QByteArray::OmitTrailingEquals);
}

QByteArray proxyTokensText(QByteArrayView previous, const QList<ProxyToken> &tokens) {
    QByteArray text;
    QList<QByteArray> written;
    const auto line = [](const ProxyToken &token) -> QByteArray {
        return token.name + ' ' + token.token + '\n';
    };
    QList<QByteArray> lines = previous.toByteArray().split('\n');
    if (!lines.isEmpty() && lines.constLast().isEmpty())
        lines.removeLast(); // the final line break
    for (const QByteArray &rawLine : std::as_const(lines)) {
        const QByteArray trimmed = rawLine.trimmed();
        if (trimmed.isEmpty() || trimmed.startsWith('#')) {
            text += rawLine + '\n';
            continue;
        }
        const QByteArray name = trimmed.simplified().split(' ').constFirst();
        const auto kept = std::find_if(tokens.cbegin(), tokens.cend(),
                                       [&name](const ProxyToken &t) { return t.name == name; });
        if (kept == tokens.cend() || written.contains(name))
            continue; // removed (or a duplicate line, which the file could not have held)
        const QList<QByteArray> fields = trimmed.simplified().split(' ');
        text += (fields.size() == 2 && fields.at(1) == kept->token) ? rawLine + '\n' : line(*kept);
        written.append(name);
    }
    for (const ProxyToken &token : tokens) {
        if (!written.contains(token.name))
            text += line(token);
    }
    return text;
}

bool saveProxyTokens(const QString &path, const QList<ProxyToken> &tokens, QString *error) {
    auto fail = [error, &path](const QString &message) {
        if (error)
            *error = QStringLiteral("cannot write %1: %2").arg(path, message);
        return false;
    };
    constexpr QFile::Permissions OwnerOnly = QFile::ReadOwner | QFile::WriteOwner;
    const QFileInfo info(path);
    if (!QDir().mkpath(info.absolutePath()))
        return fail(QStringLiteral("cannot create the folder %1").arg(info.absolutePath()));
    QByteArray previous;
    if (info.exists() && !info.isFile())
        return fail(QStringLiteral("not a regular file"));
    if (info.exists()) {
        // QSaveFile gives its new file the old one's permissions: make those owner-only first,
        // so that the new text is never in a file others could have opened.
        if (!QFile::setPermissions(path, OwnerOnly))
            return fail(QStringLiteral("cannot make it readable by its owner only"));
        QFile old(path);
        if (!old.open(QIODevice::ReadOnly))
            return fail(old.errorString());
        if (old.size() > MaxFileSize)
            return fail(QStringLiteral("larger than 1 MiB"));
        previous = old.readAll();
    } else {
        // A new QSaveFile target gets the umask's permissions (often 0644): create it empty
        // and owner-only, so the temporary file QSaveFile writes takes that mode from the start.
        QFile created(path);
        if (!created.open(QIODevice::WriteOnly | QIODevice::NewOnly, OwnerOnly))
            return fail(created.errorString());
    }
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        return fail(file.errorString());
    if ((file.permissions() & ~(OwnerOnly | QFile::ReadUser | QFile::WriteUser)) != 0) {
        file.cancelWriting();
        return fail(QStringLiteral("its temporary file is not owner-only"));
    }
    const QByteArray text = proxyTokensText(previous, tokens);
    if (file.write(text) != text.size() || !file.commit())
        return fail(file.errorString());
    return true;
}

QString defaultTokensFile() {
    const QString config = QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation);
    if (config.isEmpty())
        return QString();
    return config + QStringLiteral("/llm-proxy/tokens");
}

} // namespace llmproxy
