// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/settingspage.h"

#include "ui/accesssettings.h"
#include "ui/connectiontestrow.h"
#include "ui/errorstyle.h"
#include "ui/pricessettings.h"
#include "ui/quantityedit.h"
#include "ui/startatlogincheckbox.h"

#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDesktopServices>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFrame>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QUrl>
#include <QVBoxLayout>

#include <limits>

namespace llmproxy {

namespace {

// The settings table's words for the window (label, hint, help), through the translator.
QString tableText(QLatin1StringView text) {
    return QCoreApplication::translate("llmproxy::Setting",
                                       QByteArray(text.data(), text.size()).constData());
}

// The table's help text for the line under a field: "%1" is the default.
QString helpLine(const SettingDeclaration &decl) {
    QString help = tableText(decl.help);
    if (help.contains(QStringLiteral("%1")))
        help = help.arg(settingText(Config(), decl.setting));
    return help;
}

int clampedToInt(qint64 value) {
    return static_cast<int>(qBound(qint64(std::numeric_limits<int>::min()), value,
                                   qint64(std::numeric_limits<int>::max())));
}
} // namespace

SettingsPage::SettingsPage(QWidget *parent)
    : QWidget(parent) {
    auto *layout = new QVBoxLayout(this);

    auto *batching = new QGroupBox(tr("Proxy"), this);
    auto *grid = new QGridLayout(batching);
    grid->setColumnStretch(2, 1);
    // A row for each setting the window shows, in the table's order (settingDeclarations()).
    int row = 0;
    for (const SettingDeclaration &decl : settingDeclarations()) {
        if (decl.shownInWindow() && decl.kind != SettingDeclaration::Kind::List)
            addField(grid, 2 * row++, decl); // the lists: in the Access group (AccessSettings)
    }
    layout->addWidget(batching);

    auto *keyBox = new QGroupBox(tr("API key"), this);
    auto *keyLayout = new QVBoxLayout(keyBox);
    m_keyStatus = new QLabel(keyBox);
    m_keyStatus->setObjectName(QStringLiteral("apiKeyStatus"));
    m_keyStatus->setWordWrap(true);
    keyLayout->addWidget(m_keyStatus);
    auto *keyRow = new QHBoxLayout;
    auto *keyTitle = new QLabel(tr("New &key:"), keyBox);
    m_key = new QLineEdit(keyBox);
    m_key->setObjectName(QStringLiteral("apiKeyEdit"));
    m_key->setEchoMode(QLineEdit::Password);
    m_key->setPlaceholderText(tr("Paste a new key to use for every upstream call"));
    m_key->setClearButtonEnabled(true);
    keyTitle->setBuddy(m_key);
    keyRow->addWidget(keyTitle);
    keyRow->addWidget(m_key, 1);
    m_forgetKey = new QPushButton(tr("Forget the stored key"), keyBox);
    m_forgetKey->setObjectName(QStringLiteral("forgetKeyButton"));
    keyRow->addWidget(m_forgetKey);
    keyLayout->addLayout(keyRow);
    auto *keyNote = new QLabel(tr("Without a key here, each client's own Authorization key is "
                                  "used for its requests."),
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
    auto *keep = new QPushButton(tr("Keep it in the settings file"), m_fallback);
    keep->setObjectName(QStringLiteral("keepKeyInFileButton"));
    auto *dismiss = new QPushButton(tr("Only for this session"), m_fallback);
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

    // Prices (issue 10): the table in force and the user's overrides; saved on its own.
    m_prices = new PricesSettings(this);
    layout->addWidget(m_prices);

    auto *desktop = new QGroupBox(tr("Desktop"), this);
    auto *desktopLayout = new QVBoxLayout(desktop);
    m_notifications = new QCheckBox(tr("Notify me when a batch finishes or fails"), desktop);
    m_notifications->setObjectName(QStringLiteral("notificationsCheck"));
    m_notifications->setChecked(true);
    desktopLayout->addWidget(m_notifications);
    m_startAtLogin = new StartAtLoginCheckBox(desktop);
    desktopLayout->addWidget(m_startAtLogin);
    auto *dataRow = new QHBoxLayout;
    m_dataDir = new QLabel(desktop);
    m_dataDir->setObjectName(QStringLiteral("dataDirLabel"));
    m_dataDir->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_dataDir->setWordWrap(true);
    auto *openData = new QPushButton(tr("Open data folder"), desktop);
    openData->setObjectName(QStringLiteral("openDataFolderButton"));
    openData->setToolTip(tr("Show the folder with the proxy's queue in the file manager"));
    dataRow->addWidget(m_dataDir, 1);
    dataRow->addWidget(openData);
    desktopLayout->addLayout(dataRow);
    layout->addWidget(desktop);

    auto *buttons = new QHBoxLayout;
    m_message = new QLabel(this);
    m_message->setObjectName(QStringLiteral("settingsMessage"));
    m_message->setWordWrap(true);
    buttons->addWidget(m_message, 1);
    m_defaults = new QPushButton(tr("Restore defaults"), this);
    m_defaults->setObjectName(QStringLiteral("restoreDefaultsButton"));
    m_defaults->setToolTip(tr("Put the defaults in the form; Apply uses them, Revert goes back"));
    m_revert = new QPushButton(tr("&Revert"), this);
    m_revert->setObjectName(QStringLiteral("revertButton"));
    m_apply = new QPushButton(tr("&Apply"), this);
    m_apply->setObjectName(QStringLiteral("applyButton"));
    m_apply->setDefault(true);
    buttons->addWidget(m_defaults);
    buttons->addWidget(m_revert);
    buttons->addWidget(m_apply);
    layout->addLayout(buttons);
    layout->addStretch(1);

    connect(m_key, &QLineEdit::textChanged, this, &SettingsPage::validate);
    connect(m_apply, &QPushButton::clicked, this, &SettingsPage::apply);
    connect(m_defaults, &QPushButton::clicked, this, &SettingsPage::restoreDefaults);
    connect(openData, &QPushButton::clicked, this, &SettingsPage::openDataFolder);
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
    const QString hint = tableText(decl.hint);
    QWidget *parent = grid->parentWidget();
    Field field;
    QWidget *editor = nullptr;
    QWidget *focus = nullptr; // what the label's mnemonic focuses
    using Kind = SettingDeclaration::Kind;
    if (decl.kind == Kind::Duration || decl.kind == Kind::DurationOrOff ||
        decl.kind == Kind::Size) {
        // A whole number and a unit, within the declared bounds as the command line checks them.
        if (decl.kind == Kind::Size)
            field.quantity = new SizeEdit(decl.minimum, decl.maximum, parent);
        else
            field.quantity = new DurationEdit(decl.minimum, decl.maximum,
                                              decl.kind == Kind::DurationOrOff, parent);
        field.quantity->numberBox()->setObjectName(name + QStringLiteral("Number"));
        field.quantity->unitBox()->setObjectName(name + QStringLiteral("Unit"));
        field.quantity->unitBox()->setAccessibleName(tr("%1 unit").arg(tableText(decl.label)));
        field.quantity->unitBox()->setToolTip(hint);
        connect(field.quantity, &QuantityEdit::edited, this, &SettingsPage::validate);
        connect(field.quantity, &QuantityEdit::returnPressed, this, [this] {
            if (m_apply->isEnabled())
                apply();
        });
        editor = field.quantity;
        focus = field.quantity->numberBox();
    } else if (decl.kind == Kind::Count) {
        // A whole number within the declared bounds: the spin box cannot hold anything else.
        field.spin = new QSpinBox(parent);
        field.spin->setRange(clampedToInt(decl.minimum), clampedToInt(decl.maximum));
        field.spin->setAccelerated(true);
        connect(field.spin, &QSpinBox::valueChanged, this, &SettingsPage::validate);
        editor = field.spin;
    } else {
        // Addresses and URLs: their text, checked as typed by the command line's own rules
        // (validate()).
        field.edit = new QLineEdit(parent);
        connect(field.edit, &QLineEdit::textChanged, this, &SettingsPage::validate);
        connect(field.edit, &QLineEdit::returnPressed, this, [this] {
            if (m_apply->isEnabled())
                apply();
        });
        editor = field.edit;
    }
    editor->setObjectName(name + QStringLiteral("Edit"));
    editor->setToolTip(hint);
    editor->setMinimumWidth(220);
    field.error = new QLabel(parent);
    field.error->setObjectName(name + QStringLiteral("Error"));
    errorstyle::setLabelError(field.error);
    field.error->setWordWrap(true);
    auto *title = new QLabel(tableText(decl.label), parent);
    title->setToolTip(hint);
    title->setBuddy(focus ? focus : editor);
    // One line under the field: the table's help, with the default and the bounds.
    auto *help = new QLabel(helpLine(decl), parent);
    help->setObjectName(name + QStringLiteral("Help"));
    help->setWordWrap(true);
    help->setForegroundRole(QPalette::PlaceholderText);
    QFont small = help->font();
    small.setPointSizeF(small.pointSizeF() * 0.9);
    help->setFont(small);
    grid->addWidget(title, row, 0);
    grid->addWidget(editor, row, 1);
    grid->addWidget(field.error, row, 2);
    grid->addWidget(help, row + 1, 1, 1, 2);
    m_fields.insert(setting, field);
}

QString SettingsPage::fieldText(const Field &field) {
    if (field.quantity)
        return field.quantity->text();
    return field.spin ? QString::number(field.spin->value()) : field.edit->text();
}

void SettingsPage::setFieldText(const Field &field, const QString &text) {
    if (field.quantity)
        field.quantity->setText(text);
    else if (field.spin)
        field.spin->setValue(text.toInt());
    else
        field.edit->setText(text);
}

void SettingsPage::setFields(const Config &config) {
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        setFieldText(it.value(), settingText(config, it.key()));
}

void SettingsPage::setConfig(const Config &config) {
    m_base = config;
    setFields(config);
    m_access->setConfig(config);
    m_dataDir->setText(tr("Data folder: %1").arg(QDir::toNativeSeparators(config.dataDir)));
    validate();
}

void SettingsPage::restoreDefaults() {
    Config defaults; // the table's defaults, as the command line completes them
    defaults.listen = defaultListenAddresses();
    setFields(defaults);
    m_access->setLists(defaults);
    validate();
    showMessage(hasChanges() ? tr("The defaults are in the form: Apply uses them, Revert goes "
                                  "back.")
                             : tr("Every setting here is at its default already."),
                false);
}

void SettingsPage::openDataFolder() {
    const QString dir = m_base.dataDir;
    if (dir.isEmpty() || !QFileInfo(dir).isDir()) {
        showMessage(tr("The data folder %1 does not exist yet: the proxy makes it when it "
                       "starts with its store.")
                        .arg(QDir::toNativeSeparators(dir)),
                    true);
        return;
    }
    const QUrl url = QUrl::fromLocalFile(dir);
    const bool opened = m_openUrl ? m_openUrl(url) : QDesktopServices::openUrl(url);
    if (!opened) {
        showMessage(
            tr("Could not open %1: no file manager answered.").arg(QDir::toNativeSeparators(dir)),
            true);
    }
}

Config SettingsPage::editedConfig() const {
    Config edited = m_base;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        applySetting(edited, it.key(), fieldText(it.value()));
    m_access->applyTo(edited);
    return edited;
}

bool SettingsPage::isValid() const {
    Config scratch = m_base;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it) {
        if (!applySetting(scratch, it.key(), fieldText(it.value())).isEmpty())
            return false;
    }
    return true;
}

bool SettingsPage::hasChanges() const {
    if (!m_key->text().trimmed().isEmpty() || m_access->hasChanges(m_base))
        return true;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it) {
        // Compared as values: a grace period of 0 is "off", 4000 ms is 4 s.
        Config scratch = m_base;
        if (!applySetting(scratch, it.key(), fieldText(it.value())).isEmpty())
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
        QString problem = applySetting(scratch, it.key(), fieldText(it.value()));
        if (!problem.isEmpty())
            valid = false;
        const bool bad = !problem.isEmpty();
        if (!bad && it.key() == Setting::Listen && !m_listenCoreError.isEmpty())
            problem = m_listenCoreError;
        it.value().error->setText(problem);
        if (it.value().edit)
            errorstyle::setFieldError(it.value().edit, bad);
        else if (it.value().quantity)
            errorstyle::setFieldError(it.value().quantity->numberBox(), bad);
    }
    const bool changed = hasChanges();
    m_apply->setEnabled(valid && changed);
    m_revert->setEnabled(changed);
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
    const QString hint =
        state.hint.isEmpty() ? QString() : tr(" (ending in %1)").arg(QString::fromUtf8(state.hint));
    QString text;
    switch (state.source) {
    case KeyState::Source::None:
        text = tr("No key stored: each client's own key is used.");
        break;
    case KeyState::Source::Keychain:
        text = tr("A key is stored in the system keychain%1.").arg(hint);
        break;
    case KeyState::Source::File:
        text = tr("A key is stored in the settings file, readable only by you%1.").arg(hint);
        break;
    case KeyState::Source::Session:
        text = tr("A key is in use until you quit, but not saved%1.").arg(hint);
        break;
    case KeyState::Source::Environment:
        text = tr("OPENAI_API_KEY is set in the environment%1 and is used for every call; a key "
                  "stored here is not used.")
                   .arg(hint);
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
    m_fallbackText->setText(tr("%1.\nThe key is in use now, but it will be gone when you quit. "
                               "You can keep it in the settings file instead, readable only by "
                               "you (mode 0600).")
                                .arg(reason));
    m_fallback->show();
}

void SettingsPage::setNotificationsEnabled(bool enabled) {
    const QSignalBlocker blocker(m_notifications);
    m_notifications->setChecked(enabled);
}

void SettingsPage::showMessage(const QString &text, bool isError) {
    m_message->setText(text);
    errorstyle::setLabelError(m_message, isError);
}

} // namespace llmproxy
