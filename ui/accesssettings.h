// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings page's "Access" group (issue 9): the browser origins and Host names the front
// door allows, edited as lists whose entries are checked as typed by the command line's own
// rules and applied with the page's other settings; and the proxy tokens, which are written at
// once by the controller. A new token is shown once, with a Copy button; the table shows only
// each token's last four characters.

#include "settings/config.h"

#include <QGroupBox>

class QFrame;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QTableWidget;

namespace llmproxy {

class AccessSettings final : public QGroupBox {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(AccessSettings)
public:
    explicit AccessSettings(QWidget *parent = nullptr);

    // Shows the lists and tokens of the configuration in force (discarding list edits).
    void setConfig(const Config &config);
    // Shows the lists of `config` as edits (Restore defaults), leaving the tokens alone.
    void setLists(const Config &config);
    // Puts the edited lists into `edited`.
    void applyTo(Config &edited) const;
    // Whether the edited lists differ from `base`'s.
    bool hasChanges(const Config &base) const;

public Q_SLOTS:
    void showGeneratedToken(const QString &name, const QByteArray &token);
    void showTokenError(const QString &reason);

Q_SIGNALS:
    void edited();
    void tokenGenerateRequested(const QString &name);
    void tokenRemoveRequested(const QString &name);

private:
    // A list of origins or hosts: an entry field checked as typed, Add, Remove.
    struct ListEditor {
        Setting setting = Setting::AllowOrigins;
        QListWidget *list = nullptr;
        QLineEdit *entry = nullptr;
        QLabel *error = nullptr;
        QPushButton *add = nullptr;
        QPushButton *remove = nullptr;
    };
    // Fills `editor` (a member) and returns the widget that holds it.
    QWidget *makeListEditor(ListEditor *editor, Setting setting, const QString &name,
                            const QString &placeholder);
    void checkEntry(const ListEditor &editor);
    void addEntry(const ListEditor &editor);
    static QString listText(const ListEditor &editor);
    void hideGeneratedToken();

    ListEditor m_origins;
    ListEditor m_hosts;
    QLabel *m_tokensFile = nullptr;
    QTableWidget *m_tokens = nullptr;
    QLineEdit *m_tokenName = nullptr;
    QPushButton *m_generate = nullptr;
    QPushButton *m_removeToken = nullptr;
    QLabel *m_tokenError = nullptr;
    QFrame *m_newToken = nullptr;
    QLabel *m_newTokenTitle = nullptr;
    QLineEdit *m_newTokenValue = nullptr;
};

} // namespace llmproxy
