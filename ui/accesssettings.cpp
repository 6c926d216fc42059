// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/accesssettings.h"

#include "api/logging.h"
#include "settings/proxytokens.h"
#include "ui/errorstyle.h"

#include <QClipboard>
#include <QCoreApplication>
#include <QFrame>
#include <QGridLayout>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace llmproxy {

namespace {

// The settings table's words for the window, through the translator (as SettingsPage).
QString tableText(QLatin1StringView text) {
    return QCoreApplication::translate("llmproxy::Setting",
                                       QByteArray(text.data(), text.size()).constData());
}
} // namespace

AccessSettings::AccessSettings(QWidget *parent)
    : QGroupBox(AccessSettings::tr("Access"), parent) {
    setObjectName(QStringLiteral("accessSettings"));
    auto *layout = new QGridLayout(this);
    layout->setColumnStretch(1, 1);

    // Titles and tooltips as the settings table declares them.
    const SettingDeclaration &origins = settingDeclaration(Setting::AllowOrigins);
    auto *originsTitle = new QLabel(tableText(origins.label), this);
    originsTitle->setToolTip(tableText(origins.hint));
    layout->addWidget(originsTitle, 0, 0, Qt::AlignTop);
    layout->addWidget(makeListEditor(&m_origins, Setting::AllowOrigins, QStringLiteral("Origin"),
                                     QStringLiteral("http://localhost:5173")),
                      0, 1);
    const SettingDeclaration &hosts = settingDeclaration(Setting::AllowHosts);
    auto *hostsTitle = new QLabel(tableText(hosts.label), this);
    hostsTitle->setToolTip(tableText(hosts.hint));
    layout->addWidget(hostsTitle, 1, 0, Qt::AlignTop);
    layout->addWidget(makeListEditor(&m_hosts, Setting::AllowHosts, QStringLiteral("Host"),
                                     QStringLiteral("proxy.example.lan")),
                      1, 1);
    originsTitle->setBuddy(m_origins.entry);
    hostsTitle->setBuddy(m_hosts.entry);

    auto *tokensTitle = new QLabel(AccessSettings::tr("Proxy tokens"), this);
    tokensTitle->setToolTip(AccessSettings::tr("With tokens, every request must carry one "
                                               "(Authorization: Bearer TOKEN)"));
    layout->addWidget(tokensTitle, 2, 0, Qt::AlignTop);
    auto *tokens = new QWidget(this);
    auto *tokensLayout = new QVBoxLayout(tokens);
    tokensLayout->setContentsMargins(0, 0, 0, 0);
    m_tokensFile = new QLabel(tokens);
    m_tokensFile->setObjectName(QStringLiteral("tokensFileLabel"));
    m_tokensFile->setWordWrap(true);
    tokensLayout->addWidget(m_tokensFile);
    m_tokens = new QTableWidget(0, 2, tokens);
    m_tokens->setObjectName(QStringLiteral("tokensTable"));
    m_tokens->setHorizontalHeaderLabels({AccessSettings::tr("Name"), AccessSettings::tr("Token")});
    m_tokens->horizontalHeader()->setStretchLastSection(true);
    m_tokens->verticalHeader()->hide();
    m_tokens->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_tokens->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_tokens->setSelectionMode(QAbstractItemView::SingleSelection);
    m_tokens->setMaximumHeight(140);
    m_tokens->setTabKeyNavigation(false); // Tab leaves the table (arrows move in it)
    tokensLayout->addWidget(m_tokens);
    auto *tokenRow = new QHBoxLayout;
    m_tokenName = new QLineEdit(tokens);
    m_tokenName->setObjectName(QStringLiteral("tokenNameEdit"));
    m_tokenName->setPlaceholderText(AccessSettings::tr("Name of the new token (who uses it)"));
    tokenRow->addWidget(m_tokenName, 1);
    m_generate = new QPushButton(AccessSettings::tr("Generate"), tokens);
    m_generate->setObjectName(QStringLiteral("generateTokenButton"));
    tokenRow->addWidget(m_generate);
    m_removeToken = new QPushButton(AccessSettings::tr("Remove"), tokens);
    m_removeToken->setObjectName(QStringLiteral("removeTokenButton"));
    tokenRow->addWidget(m_removeToken);
    tokensLayout->addLayout(tokenRow);
    m_tokenError = new QLabel(tokens);
    m_tokenError->setObjectName(QStringLiteral("tokenError"));
    errorstyle::setLabelError(m_tokenError);
    m_tokenError->setWordWrap(true);
    tokensLayout->addWidget(m_tokenError);

    // The new token, once: read-only, copied with a button, gone when dismissed.
    m_newToken = new QFrame(tokens);
    m_newToken->setObjectName(QStringLiteral("newTokenFrame"));
    m_newToken->setFrameShape(QFrame::StyledPanel);
    auto *newLayout = new QVBoxLayout(m_newToken);
    m_newTokenTitle = new QLabel(m_newToken);
    m_newTokenTitle->setWordWrap(true);
    newLayout->addWidget(m_newTokenTitle);
    auto *newRow = new QHBoxLayout;
    m_newTokenValue = new QLineEdit(m_newToken);
    m_newTokenValue->setObjectName(QStringLiteral("newTokenEdit"));
    m_newTokenValue->setReadOnly(true);
    newRow->addWidget(m_newTokenValue, 1);
    auto *copy = new QPushButton(AccessSettings::tr("Copy"), m_newToken);
    copy->setObjectName(QStringLiteral("copyTokenButton"));
    newRow->addWidget(copy);
    auto *done = new QPushButton(AccessSettings::tr("Done"), m_newToken);
    done->setObjectName(QStringLiteral("hideTokenButton"));
    newRow->addWidget(done);
    newLayout->addLayout(newRow);
    m_newToken->hide();
    tokensLayout->addWidget(m_newToken);
    layout->addWidget(tokens, 2, 1);

    const auto checkName = [this] {
        const QString name = m_tokenName->text().trimmed();
        const bool good = isProxyTokenName(name.toUtf8());
        m_generate->setEnabled(good);
        m_tokenError->setText(
            name.isEmpty() || good
                ? QString()
                : AccessSettings::tr("A name is 1 to 64 letters, digits or . _ @ -"));
    };
    connect(m_tokenName, &QLineEdit::textChanged, this, checkName);
    const auto generate = [this] {
        if (m_generate->isEnabled())
            Q_EMIT tokenGenerateRequested(m_tokenName->text().trimmed());
    };
    connect(m_generate, &QPushButton::clicked, this, generate);
    connect(m_tokenName, &QLineEdit::returnPressed, this, generate);
    connect(m_removeToken, &QPushButton::clicked, this, [this] {
        const int row = m_tokens->currentRow();
        if (row >= 0 && m_tokens->item(row, 0))
            Q_EMIT tokenRemoveRequested(m_tokens->item(row, 0)->text());
    });
    connect(m_tokens, &QTableWidget::itemSelectionChanged, this,
            [this] { m_removeToken->setEnabled(m_tokens->currentRow() >= 0); });
    connect(copy, &QPushButton::clicked, this, [this] {
        QGuiApplication::clipboard()->setText(m_newTokenValue->text());
        m_newTokenTitle->setText(m_newTokenTitle->text().section(u'\n', 0, 0) +
                                 AccessSettings::tr("\nCopied to the clipboard."));
    });
    connect(done, &QPushButton::clicked, this, &AccessSettings::hideGeneratedToken);
    checkName();
    m_removeToken->setEnabled(false);
}

QWidget *AccessSettings::makeListEditor(ListEditor *editor, Setting setting, const QString &name,
                                        const QString &placeholder) {
    auto *box = new QWidget(this);
    auto *layout = new QVBoxLayout(box);
    layout->setContentsMargins(0, 0, 0, 0);
    editor->setting = setting;
    const QString plural = settingDeclaration(setting).objectName + u's';
    editor->list = new QListWidget(box);
    editor->list->setObjectName(plural + QStringLiteral("List"));
    editor->list->setMaximumHeight(90);
    layout->addWidget(editor->list);
    auto *row = new QHBoxLayout;
    editor->entry = new QLineEdit(box);
    editor->entry->setObjectName(plural.chopped(1) + QStringLiteral("Edit"));
    editor->entry->setPlaceholderText(placeholder);
    row->addWidget(editor->entry, 1);
    editor->add = new QPushButton(AccessSettings::tr("Add"), box);
    editor->add->setObjectName(QStringLiteral("add") + name + QStringLiteral("Button"));
    row->addWidget(editor->add);
    editor->remove = new QPushButton(AccessSettings::tr("Remove"), box);
    editor->remove->setObjectName(QStringLiteral("remove") + name + QStringLiteral("Button"));
    editor->remove->setEnabled(false);
    row->addWidget(editor->remove);
    layout->addLayout(row);
    editor->error = new QLabel(box);
    editor->error->setObjectName(plural.chopped(1) + QStringLiteral("Error"));
    errorstyle::setLabelError(editor->error);
    editor->error->setWordWrap(true);
    layout->addWidget(editor->error);

    connect(editor->entry, &QLineEdit::textChanged, this, [this, editor] { checkEntry(*editor); });
    connect(editor->entry, &QLineEdit::returnPressed, this, [this, editor] { addEntry(*editor); });
    connect(editor->add, &QPushButton::clicked, this, [this, editor] { addEntry(*editor); });
    connect(editor->list, &QListWidget::itemSelectionChanged, this,
            [editor] { editor->remove->setEnabled(!editor->list->selectedItems().isEmpty()); });
    connect(editor->remove, &QPushButton::clicked, this, [this, editor] {
        qDeleteAll(editor->list->selectedItems());
        Q_EMIT edited();
    });
    checkEntry(*editor);
    return box;
}

void AccessSettings::checkEntry(const ListEditor &editor) {
    // One entry is a list of one: the reason is the command line's, word for word.
    const QString text = editor.entry->text();
    Config scratch;
    const QString problem =
        text.trimmed().isEmpty() ? QString() : applySetting(scratch, editor.setting, text);
    const QList<QByteArray> &entries =
        editor.setting == Setting::AllowOrigins ? scratch.allowOrigins : scratch.allowHosts;
    const bool good = problem.isEmpty() && entries.size() == 1;
    editor.error->setText(problem.isEmpty() && entries.size() > 1
                              ? AccessSettings::tr("One entry at a time")
                              : problem);
    errorstyle::setFieldError(editor.entry, !problem.isEmpty());
    editor.add->setEnabled(good);
}

void AccessSettings::addEntry(const ListEditor &editor) {
    if (!editor.add->isEnabled())
        return;
    Config scratch;
    if (!applySetting(scratch, editor.setting, editor.entry->text()).isEmpty())
        return;
    const QString entry = settingText(scratch, editor.setting);
    if (editor.list->findItems(entry, Qt::MatchExactly).isEmpty())
        editor.list->addItem(entry);
    editor.entry->clear();
    Q_EMIT edited();
}

QString AccessSettings::listText(const ListEditor &editor) {
    QStringList entries;
    for (int i = 0; i < editor.list->count(); ++i)
        entries.append(editor.list->item(i)->text());
    return entries.join(u' ');
}

void AccessSettings::setLists(const Config &config) {
    for (ListEditor *editor : {&m_origins, &m_hosts}) {
        editor->list->clear();
        const QString text = settingText(config, editor->setting);
        if (!text.isEmpty())
            editor->list->addItems(text.split(u' '));
    }
}

void AccessSettings::setConfig(const Config &config) {
    setLists(config);
    const QString file = config.tokensFile.isEmpty() ? defaultTokensFile() : config.tokensFile;
    m_tokensFile->setText(
        (config.tokens.isEmpty()
             ? AccessSettings::tr("No tokens: any local program may use the proxy. ")
             : AccessSettings::tr("Every request must carry one of these tokens "
                                  "(Authorization: Bearer TOKEN). ")) +
        AccessSettings::tr("Saved at once in %1.").arg(file));
    m_tokens->setRowCount(0);
    for (const ProxyToken &token : config.tokens) {
        const int row = m_tokens->rowCount();
        m_tokens->insertRow(row);
        m_tokens->setItem(row, 0, new QTableWidgetItem(QString::fromUtf8(token.name)));
        // Never the whole token: its last four characters, to tell them apart.
        m_tokens->setItem(row, 1,
                          new QTableWidgetItem(QString::fromUtf8(redactedKey(token.token))));
    }
    m_removeToken->setEnabled(false);
}

void AccessSettings::applyTo(Config &edited) const {
    applySetting(edited, Setting::AllowOrigins, listText(m_origins));
    applySetting(edited, Setting::AllowHosts, listText(m_hosts));
}

bool AccessSettings::hasChanges(const Config &base) const {
    Config edited = base;
    applyTo(edited);
    return edited.allowOrigins != base.allowOrigins || edited.allowHosts != base.allowHosts;
}

void AccessSettings::showGeneratedToken(const QString &name, const QByteArray &token) {
    m_tokenName->clear();
    m_tokenError->clear();
    m_newTokenTitle->setText(
        AccessSettings::tr("The token \"%1\" is shown only now: copy it into its client.")
            .arg(name));
    m_newTokenValue->setText(QString::fromLatin1(token));
    m_newToken->show();
}

void AccessSettings::showTokenError(const QString &reason) {
    m_tokenError->setText(reason);
}

void AccessSettings::hideGeneratedToken() {
    m_newTokenValue->clear();
    m_newTokenTitle->clear();
    m_newToken->hide();
}

} // namespace llmproxy
