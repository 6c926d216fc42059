// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/settingspage.h"

#include "ui/accesssettings.h"
#include "ui/connectiontestrow.h"
#include "ui/startatlogincheckbox.h"

#include <QCheckBox>
#include <QFrame>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

namespace llmproxy {

namespace {
const QString ErrorStyle = QStringLiteral("color: #b02020;");
const QString FieldErrorStyle = QStringLiteral("QLineEdit { border: 1px solid #b02020; }");
} // namespace

SettingsPage::SettingsPage(QWidget *parent)
    : QWidget(parent) {
    auto *layout = new QVBoxLayout(this);

    auto *batching = new QGroupBox(QStringLiteral("Proxy"), this);
    auto *grid = new QGridLayout(batching);
    grid->setColumnStretch(2, 1);
    // A row for each setting the window shows, in the table's order (settingDeclarations()).
    int row = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.shownInWindow() && decl.kind != SettingDeclaration::Kind::List)
            addField(grid, row++, decl); // the lists: in the Access group (AccessSettings)
    }
    layout->addWidget(batching);

    auto *keyBox = new QGroupBox(QStringLiteral("API key"), this);
    auto *keyLayout = new QVBoxLayout(keyBox);
    m_keyStatus = new QLabel(keyBox);
    m_keyStatus->setObjectName(QStringLiteral("apiKeyStatus"));
    m_keyStatus->setWordWrap(true);
    keyLayout->addWidget(m_keyStatus);
    auto *keyRow = new QHBoxLayout;
    m_key = new QLineEdit(keyBox);
    m_key->setObjectName(QStringLiteral("apiKeyEdit"));
    m_key->setEchoMode(QLineEdit::Password);
    m_key->setPlaceholderText(QStringLiteral("Paste a new key to use for every upstream call"));
    m_key->setClearButtonEnabled(true);
    keyRow->addWidget(m_key, 1);
    m_forgetKey = new QPushButton(QStringLiteral("Forget the stored key"), keyBox);
    m_forgetKey->setObjectName(QStringLiteral("forgetKeyButton"));
    keyRow->addWidget(m_forgetKey);
    keyLayout->addLayout(keyRow);
    auto *keyNote = new QLabel(QStringLiteral("Without a key here, each client's own "
                                              "Authorization key is used for its requests."),
                               keyBox);
    keyNote->setWordWrap(true);
    keyLayout->addWidget(keyNote);

    m_fallback = new QFrame(keyBox);
    m_fallback->setObjectName(QStringLiteral("keyFallback"));
    m_fallback->setFrameShape(QFrame::StyledPanel);
    auto *fallbackLayout = new QVBoxLayout(m_fallback);
    m_fallbackText = new QLabel(m_fallback);
    m_fallbackText->setObjectName(QStringLiteral("keyFallbackText"));
    m_fallbackText->setWordWrap(true);
    fallbackLayout->addWidget(m_fallbackText);
    auto *fallbackButtons = new QHBoxLayout;
    auto *keep = new QPushButton(QStringLiteral("Keep it in the settings file"), m_fallback);
    keep->setObjectName(QStringLiteral("keepKeyInFileButton"));
    auto *dismiss = new QPushButton(QStringLiteral("Only for this session"), m_fallback);
    dismiss->setObjectName(QStringLiteral("dismissFallbackButton"));
    fallbackButtons->addWidget(keep);
    fallbackButtons->addWidget(dismiss);
    fallbackButtons->addStretch(1);
    fallbackLayout->addLayout(fallbackButtons);
    m_fallback->hide();
    keyLayout->addWidget(m_fallback);
    m_connectionTest = new ConnectionTestRow(keyBox);
    keyLayout->addWidget(m_connectionTest);
    layout->addWidget(keyBox);

    m_access = new AccessSettings(this);
    connect(m_access, &AccessSettings::edited, this, &SettingsPage::validate);
    layout->addWidget(m_access);

    auto *desktop = new QGroupBox(QStringLiteral("Desktop"), this);
    auto *desktopLayout = new QVBoxLayout(desktop);
    m_notifications =
        new QCheckBox(QStringLiteral("Notify me when a batch finishes or fails"), desktop);
    m_notifications->setObjectName(QStringLiteral("notificationsCheck"));
    m_notifications->setChecked(true);
    desktopLayout->addWidget(m_notifications);
    m_startAtLogin = new StartAtLoginCheckBox(desktop);
    desktopLayout->addWidget(m_startAtLogin);
    layout->addWidget(desktop);

    auto *buttons = new QHBoxLayout;
    m_message = new QLabel(this);
    m_message->setObjectName(QStringLiteral("settingsMessage"));
    m_message->setWordWrap(true);
    buttons->addWidget(m_message, 1);
    m_revert = new QPushButton(QStringLiteral("Revert"), this);
    m_revert->setObjectName(QStringLiteral("revertButton"));
    m_apply = new QPushButton(QStringLiteral("Apply"), this);
    m_apply->setObjectName(QStringLiteral("applyButton"));
    m_apply->setDefault(true);
    buttons->addWidget(m_revert);
    buttons->addWidget(m_apply);
    layout->addLayout(buttons);
    layout->addStretch(1);

    connect(m_key, &QLineEdit::textChanged, this, &SettingsPage::validate);
    connect(m_apply, &QPushButton::clicked, this, &SettingsPage::apply);
    connect(m_revert, &QPushButton::clicked, this, [this] {
        setConfig(m_base);
        m_key->clear();
        showMessage(QString(), false);
    });
    connect(m_forgetKey, &QPushButton::clicked, this, &SettingsPage::forgetKeyRequested);
    connect(keep, &QPushButton::clicked, this, [this] {
        m_fallback->hide();
        Q_EMIT keepKeyInFileRequested();
    });
    connect(dismiss, &QPushButton::clicked, m_fallback, &QWidget::hide);
    connect(m_notifications, &QCheckBox::toggled, this, &SettingsPage::notificationsToggled);
    setKeyState(KeyState());
    validate();
}

void SettingsPage::addField(QGridLayout *grid, int row, const SettingDeclaration &decl) {
    const Setting setting = decl.setting;
    const QString name = decl.objectName;
    const QString label = decl.label;
    const QString hint = decl.hint;
    QWidget *parent = grid->parentWidget();
    Field field;
    field.edit = new QLineEdit(parent);
    field.edit->setObjectName(name + QStringLiteral("Edit"));
    field.edit->setToolTip(hint);
    field.edit->setMinimumWidth(220);
    if (decl.kind == SettingDeclaration::Kind::DurationOrOff)
        field.edit->setPlaceholderText(QStringLiteral("off")); // empty means off, and says so
    field.error = new QLabel(parent);
    field.error->setObjectName(name + QStringLiteral("Error"));
    field.error->setStyleSheet(ErrorStyle);
    field.error->setWordWrap(true);
    auto *title = new QLabel(label, parent);
    title->setToolTip(hint);
    title->setBuddy(field.edit);
    grid->addWidget(title, row, 0);
    grid->addWidget(field.edit, row, 1);
    grid->addWidget(field.error, row, 2);
    m_fields.insert(setting, field);
    connect(field.edit, &QLineEdit::textChanged, this, &SettingsPage::validate);
    connect(field.edit, &QLineEdit::returnPressed, this, [this] {
        if (m_apply->isEnabled())
            apply();
    });
}

void SettingsPage::setConfig(const Config &config) {
    m_base = config;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        it.value().edit->setText(settingText(config, it.key()));
    m_access->setConfig(config);
    validate();
}

Config SettingsPage::editedConfig() const {
    Config edited = m_base;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        applySetting(edited, it.key(), it.value().edit->text());
    m_access->applyTo(edited);
    return edited;
}

bool SettingsPage::isValid() const {
    Config scratch = m_base;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it) {
        if (!applySetting(scratch, it.key(), it.value().edit->text()).isEmpty())
            return false;
    }
    return true;
}

bool SettingsPage::hasChanges() const {
    if (!m_key->text().trimmed().isEmpty() || m_access->hasChanges(m_base))
        return true;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it) {
        // Compared as values: an empty grace period is "off", "4000ms" is "4s".
        Config scratch = m_base;
        if (!applySetting(scratch, it.key(), it.value().edit->text()).isEmpty())
            return true;
        if (settingText(scratch, it.key()) != settingText(m_base, it.key()))
            return true;
    }
    return false;
}

void SettingsPage::validate() {
    bool valid = true;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it) {
        Config scratch = m_base;
        QString problem = applySetting(scratch, it.key(), it.value().edit->text());
        if (!problem.isEmpty())
            valid = false;
        const bool bad = !problem.isEmpty();
        if (!bad && it.key() == Setting::Listen && !m_listenCoreError.isEmpty())
            problem = m_listenCoreError;
        it.value().error->setText(problem);
        it.value().edit->setStyleSheet(bad ? FieldErrorStyle : QString());
    }
    m_apply->setEnabled(valid && hasChanges());
    m_revert->setEnabled(hasChanges());
}

void SettingsPage::apply() {
    if (!isValid())
        return;
    const QByteArray key = m_key->text().trimmed().toUtf8();
    m_key->clear(); // never kept in the form
    if (!key.isEmpty())
        Q_EMIT apiKeyEntered(key);
    const Config edited = editedConfig();
    bool changed = m_access->hasChanges(m_base);
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        changed = changed || settingText(edited, it.key()) != settingText(m_base, it.key());
    if (changed)
        Q_EMIT applyRequested(edited);
    validate();
}

void SettingsPage::setKeyState(const KeyState &state) {
    const QString hint = state.hint.isEmpty() ? QString()
                                              : QStringLiteral(" (ending in ") +
                                                    QString::fromUtf8(state.hint) + u')';
    QString text;
    switch (state.source) {
    case KeyState::Source::None:
        text = QStringLiteral("No key stored: each client's own key is used.");
        break;
    case KeyState::Source::Keychain:
        text = QStringLiteral("A key is stored in the system keychain") + hint + u'.';
        break;
    case KeyState::Source::File:
        text = QStringLiteral("A key is stored in the settings file, readable only by you") + hint +
               u'.';
        break;
    case KeyState::Source::Session:
        text = QStringLiteral("A key is in use until you quit, but not saved") + hint + u'.';
        break;
    case KeyState::Source::Environment:
        text = QStringLiteral("OPENAI_API_KEY is set in the environment") + hint +
               QStringLiteral(" and is used for every call; a key stored here is not used.");
        break;
    }
    if (!state.problem.isEmpty())
        text += u' ' + state.problem + u'.';
    m_keyStatus->setText(text);
    m_environmentKey = state.source == KeyState::Source::Environment;
    m_key->setEnabled(!m_environmentKey);
    m_forgetKey->setEnabled(state.source == KeyState::Source::Keychain ||
                            state.source == KeyState::Source::File ||
                            state.source == KeyState::Source::Session);
}

void SettingsPage::setListenError(const QString &error) {
    if (error == m_listenCoreError)
        return;
    m_listenCoreError = error;
    validate();
}

void SettingsPage::offerFileFallback(const QString &reason) {
    m_fallbackText->setText(reason +
                            QStringLiteral(".\nThe key is in use now, but it will be gone when "
                                           "you quit. You can keep it in the settings file "
                                           "instead, readable only by you (mode 0600)."));
    m_fallback->show();
}

void SettingsPage::setNotificationsEnabled(bool enabled) {
    const QSignalBlocker blocker(m_notifications);
    m_notifications->setChecked(enabled);
}

void SettingsPage::showMessage(const QString &text, bool isError) {
    m_message->setText(text);
    m_message->setStyleSheet(isError ? ErrorStyle : QString());
}

} // namespace llmproxy
