// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/providerssettings.h"

#include "ui/connectiontestrow.h"
#include "ui/errorstyle.h"

#include "provider/modelroute.h"
#include "provider/queuelimit.h"

#include <QComboBox>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

#include <functional>

namespace llmproxy {

namespace {
constexpr QLatin1StringView NoDefault("none");

QLabel *errorLabel(const QString &name, QWidget *parent) {
    auto *label = new QLabel(parent);
    label->setObjectName(name);
    errorstyle::setLabelError(label);
    label->setWordWrap(true);
    return label;
}

// The variable a provider's key is read from: key_env=, else its profile's.
QByteArray keyVariable(const ProviderSpec &spec) {
    if (!spec.keyEnvironment.isEmpty())
        return spec.keyEnvironment;
    const ProviderProfile *profile = providerProfile(spec.profile);
    return profile ? profile->keyEnvironment : QByteArray();
}

// The pattern of an entry "PATTERN=VALUE" as typed (with its '*').
QString patternOf(const QByteArray &entry) {
    return QString::fromUtf8(entry.left(entry.lastIndexOf('=')).trimmed());
}

// Whether one of `entries` (model route or queue limit rules) has `rule`'s pattern: a second
// rule for it would never be used (the first one wins).
template <typename Rule, typename Parse>
bool hasPattern(const QList<QByteArray> &entries, const Rule &rule, Parse parse) {
    return std::any_of(entries.cbegin(), entries.cend(), [&](const QByteArray &entry) {
        QString problem;
        const auto other = parse(QString::fromUtf8(entry), &problem);
        return other && other->pattern == rule.pattern && other->prefix == rule.prefix;
    });
}

// Adds the model rule `text` (PATTERN=VALUE, checked by `parse`) to `entries`; false with the
// reason in `error` when it is malformed or its pattern has a rule already (`duplicate`, with
// %1 for the pattern: the first rule would always win).
template <typename Parse>
bool addModelRule(QList<QByteArray> &entries, const QString &text, Parse parse, QLabel *error,
                  const QString &duplicate) {
    QString problem;
    const auto rule = parse(text, &problem);
    if (!rule) {
        error->setText(QStringLiteral("\"%1\" %2").arg(text, problem));
        return false;
    }
    if (hasPattern(entries, *rule, parse)) {
        error->setText(duplicate.arg(patternOf(text.toUtf8())));
        return false;
    }
    entries.append(text.toUtf8());
    error->clear();
    return true;
}

// One list of PATTERN → VALUE rules as the page shows it: the list, a row to add one (a label
// with its buddy, the pattern box, the widgets that say what it maps to, Add and Remove) and an
// error line. Object names from `stem`: "<stem>sList", "<stem>PatternEdit", "add<Stem>Button",
// "remove<Stem>Button", "<stem>Error".
struct RuleList {
    QListWidget *list = nullptr;
    QLineEdit *pattern = nullptr;
    QPushButton *add = nullptr;
    QPushButton *remove = nullptr;
    QLabel *error = nullptr;
};

struct RuleListText {
    QString label, placeholder, add, remove;
};

// `value` makes the widgets between the pattern and Add, after the pattern box (tab order).
RuleList addRuleList(QWidget *parent, QVBoxLayout *layout, const QString &stem,
                     const RuleListText &text, const std::function<QList<QWidget *>()> &value,
                     int listHeight) {
    const QString Stem = stem.left(1).toUpper() + stem.mid(1);
    RuleList rules;
    rules.list = new QListWidget(parent);
    rules.list->setObjectName(stem + QStringLiteral("sList"));
    rules.list->setMaximumHeight(listHeight);
    layout->addWidget(rules.list);
    auto *row = new QHBoxLayout;
    auto *label = new QLabel(text.label, parent);
    rules.pattern = new QLineEdit(parent);
    rules.pattern->setObjectName(stem + QStringLiteral("PatternEdit"));
    rules.pattern->setPlaceholderText(text.placeholder);
    label->setBuddy(rules.pattern);
    const QList<QWidget *> between = value();
    rules.add = new QPushButton(text.add, parent);
    rules.add->setObjectName(QStringLiteral("add") + Stem + QStringLiteral("Button"));
    rules.remove = new QPushButton(text.remove, parent);
    rules.remove->setObjectName(QStringLiteral("remove") + Stem + QStringLiteral("Button"));
    row->addWidget(label);
    row->addWidget(rules.pattern, 1);
    for (QWidget *widget : between)
        row->addWidget(widget);
    row->addWidget(rules.add);
    row->addWidget(rules.remove);
    layout->addLayout(row);
    rules.error = errorLabel(stem + QStringLiteral("Error"), parent);
    layout->addWidget(rules.error);
    return rules;
}

} // namespace

ProvidersSettings::ProvidersSettings(QWidget *parent)
    : QWidget(parent) {
    setObjectName(QStringLiteral("providersSettings"));
    auto *layout = new QVBoxLayout(this);

    auto *providers = new QGroupBox(tr("Providers"), this);
    auto *providersLayout = new QVBoxLayout(providers);
    auto *intro = new QLabel(tr("Requests go to these providers' batch APIs. \"openai\" is the "
                                "Upstream URL and API key of the Settings page unless you "
                                "configure it here. A key set in the provider's environment "
                                "variable wins over a stored one."),
                             providers);
    intro->setWordWrap(true);
    providersLayout->addWidget(intro);
    m_table = new QTableWidget(0, ColumnCount, providers);
    m_table->setObjectName(QStringLiteral("providersTable"));
    m_table->setHorizontalHeaderLabels({tr("Name"), tr("Profile"), tr("URL"), tr("Key")});
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->verticalHeader()->hide();
    m_table->horizontalHeader()->setSectionResizeMode(UrlColumn, QHeaderView::Stretch);
    m_table->setMinimumHeight(140);
    providersLayout->addWidget(m_table);
    auto *tableButtons = new QHBoxLayout;
    m_add = new QPushButton(tr("Add provider…"), providers);
    m_add->setObjectName(QStringLiteral("addProviderButton"));
    m_edit = new QPushButton(tr("Edit…"), providers);
    m_edit->setObjectName(QStringLiteral("editProviderButton"));
    m_remove = new QPushButton(tr("Remove"), providers);
    m_remove->setObjectName(QStringLiteral("removeProviderButton"));
    tableButtons->addWidget(m_add);
    tableButtons->addWidget(m_edit);
    tableButtons->addWidget(m_remove);
    // Test connection of the selected row, its answer beside it.
    m_connectionTest = new ConnectionTestRow(providers);
    m_connectionTest->setObjectName(QStringLiteral("providerConnectionTest"));
    m_connectionTest->setButtonToolTip(
        tr("Ask the selected provider for its model list, as edited here, with the key it "
           "would use (free)"));
    m_connectionTest->setAvailable(false);
    tableButtons->addWidget(m_connectionTest, 1);
    providersLayout->addLayout(tableButtons);

    // The editor of one provider, under the table.
    m_editor = new QWidget(providers);
    m_editor->setObjectName(QStringLiteral("providerEditor"));
    auto *grid = new QGridLayout(m_editor);
    grid->setContentsMargins(0, 0, 0, 0);
    grid->setColumnStretch(2, 1);
    m_name = new QLineEdit(m_editor);
    m_name->setObjectName(QStringLiteral("providerNameEdit"));
    m_name->setPlaceholderText(tr("a-z, 0-9, _ and -, e.g. gemini"));
    m_nameError = errorLabel(QStringLiteral("providerNameError"), m_editor);
    m_profile = new QComboBox(m_editor);
    m_profile->setObjectName(QStringLiteral("providerProfileCombo"));
    for (const ProviderProfile &profile : providerProfiles())
        m_profile->addItem(profile.title, QString::fromLatin1(profile.name));
    m_profile->addItem(anthropicProfile().title, QString::fromLatin1(anthropicProfile().name));
    m_url = new QLineEdit(m_editor);
    m_url->setObjectName(QStringLiteral("providerUrlEdit"));
    m_urlError = errorLabel(QStringLiteral("providerUrlError"), m_editor);
    m_keyEnvironment = new QLineEdit(m_editor);
    m_keyEnvironment->setObjectName(QStringLiteral("providerKeyEnvEdit"));
    m_keyEnvironmentError = errorLabel(QStringLiteral("providerKeyEnvError"), m_editor);
    m_key = new QLineEdit(m_editor);
    m_key->setObjectName(QStringLiteral("providerKeyEdit"));
    m_key->setEchoMode(QLineEdit::Password);
    m_key->setClearButtonEnabled(true);
    m_key->setPlaceholderText(tr("Paste a key to store (empty: keep the stored one)"));
    m_keyLocation = new QComboBox(m_editor);
    m_keyLocation->setObjectName(QStringLiteral("providerKeyLocationCombo"));
    m_keyLocation->addItem(tr("in the system keychain"), false);
    m_keyLocation->addItem(tr("in the settings file, readable only by you"), true);
    const auto addRow = [grid](int row, const QString &title, QWidget *editor, QWidget *error) {
        auto *label = new QLabel(title, grid->parentWidget());
        label->setBuddy(editor);
        grid->addWidget(label, row, 0);
        grid->addWidget(editor, row, 1);
        if (error)
            grid->addWidget(error, row, 2);
    };
    addRow(0, tr("Name:"), m_name, m_nameError);
    addRow(1, tr("Profile:"), m_profile, nullptr);
    addRow(2, tr("URL:"), m_url, m_urlError);
    addRow(3, tr("Key variable:"), m_keyEnvironment, m_keyEnvironmentError);
    addRow(4, tr("Key:"), m_key, nullptr);
    addRow(5, tr("Keep the key:"), m_keyLocation, nullptr);
    auto *editorButtons = new QHBoxLayout;
    m_save = new QPushButton(tr("Save provider"), m_editor);
    m_save->setObjectName(QStringLiteral("saveProviderButton"));
    auto *cancel = new QPushButton(tr("Cancel"), m_editor);
    cancel->setObjectName(QStringLiteral("cancelProviderButton"));
    editorButtons->addWidget(m_save);
    editorButtons->addWidget(cancel);
    editorButtons->addStretch(1);
    grid->addLayout(editorButtons, 6, 1, 1, 2);
    m_editor->hide();
    providersLayout->addWidget(m_editor);
    layout->addWidget(providers);

    auto *routing = new QGroupBox(tr("Routing"), this);
    auto *routingLayout = new QVBoxLayout(routing);
    auto *routesIntro = new QLabel(tr("A rule sends a model (its exact name, or a prefix ending "
                                      "in *) or a path (/v1/...) to a provider. Exact names win "
                                      "over prefixes, the longest prefix over shorter ones, "
                                      "models over paths."),
                                   routing);
    routesIntro->setWordWrap(true);
    routingLayout->addWidget(routesIntro);
    const RuleList routeRules = addRuleList(
        routing, routingLayout, QStringLiteral("route"),
        {tr("Pattern:"), tr("gemini-*, my-deployment or /v1/embeddings"), tr("Add rule"),
         tr("Remove rule")},
        [&]() -> QList<QWidget *> {
            m_routeProvider = new QComboBox(routing);
            m_routeProvider->setObjectName(QStringLiteral("routeProviderCombo"));
            return {new QLabel(QStringLiteral("→"), routing), m_routeProvider};
        },
        120);
    m_routeList = routeRules.list;
    m_routePattern = routeRules.pattern;
    m_removeRoute = routeRules.remove;
    m_routeError = routeRules.error;
    auto *defaultRow = new QHBoxLayout;
    auto *defaultLabel = new QLabel(tr("Default provider:"), routing);
    m_defaultProvider = new QComboBox(routing);
    m_defaultProvider->setObjectName(QStringLiteral("defaultProviderCombo"));
    m_defaultProvider->setToolTip(tr("Where requests no rule matches go; none: they get 400 "
                                     "naming the configured providers"));
    defaultLabel->setBuddy(m_defaultProvider);
    defaultRow->addWidget(defaultLabel);
    defaultRow->addWidget(m_defaultProvider);
    defaultRow->addStretch(1);
    routingLayout->addLayout(defaultRow);
    layout->addWidget(routing);

    // Per model: how it is answered (--model-route) and its provider's queue limit
    // (--queue-limit), each a list of PATTERN=VALUE rules like the routes above.
    auto *models = new QGroupBox(tr("Models"), this);
    models->setObjectName(QStringLiteral("modelsGroup"));
    auto *modelsLayout = new QVBoxLayout(models);
    auto *answeredTitle = new QLabel(tr("How each model is answered"), models);
    QFont titleFont = answeredTitle->font();
    titleFont.setBold(true);
    answeredTitle->setFont(titleFont);
    modelsLayout->addWidget(answeredTitle);
    auto *answeredIntro =
        new QLabel(tr("A model (exact name, or a prefix ending in *) no rule names is batched; "
                      "flex is OpenAI's, at the batch price; relay pays full price."),
                   models);
    answeredIntro->setWordWrap(true);
    modelsLayout->addWidget(answeredIntro);
    const RuleList modelRouteRules = addRuleList(
        models, modelsLayout, QStringLiteral("modelRoute"),
        {tr("Model:"), tr("gpt-5, o4-* or *"), tr("Add route"), tr("Remove route")},
        [&]() -> QList<QWidget *> {
            m_modelRoute = new QComboBox(models);
            m_modelRoute->setObjectName(QStringLiteral("modelRouteCombo"));
            const QList<std::pair<ModelRoute, QString>> routeTips{
                {ModelRoute::Batch, tr("A line of a provider batch: half price, minutes to hours")},
                {ModelRoute::Flex, tr("OpenAI's flex processing at the batch price, tried up to %1 "
                                      "times, then a batch; never full price")
                                       .arg(FlexAttempts)},
                {ModelRoute::FlexThenBatch,
                 tr("Flex processing, and a batch at its first refusal; never full price")},
                {ModelRoute::Relay, tr("Passed on at once, at the standard (full) price")}};
            for (const auto &[route, tip] : routeTips) {
                const QString name = QString::fromLatin1(modelRouteName(route));
                m_modelRoute->addItem(name, name);
                m_modelRoute->setItemData(m_modelRoute->count() - 1, tip, Qt::ToolTipRole);
            }
            return {new QLabel(QStringLiteral("→"), models), m_modelRoute};
        },
        100);
    m_modelRouteList = modelRouteRules.list;
    m_modelRoutePattern = modelRouteRules.pattern;
    m_removeModelRoute = modelRouteRules.remove;
    m_modelRouteError = modelRouteRules.error;

    auto *limitsTitle = new QLabel(tr("Queue limits"), models);
    limitsTitle->setFont(titleFont);
    modelsLayout->addWidget(limitsTitle);
    auto *limitsIntro =
        new QLabel(tr("The prompt tokens of a model's batches that may wait at the provider at "
                      "once (OpenAI: Batch queue limit); batches over it wait in the proxy."),
                   models);
    limitsIntro->setWordWrap(true);
    modelsLayout->addWidget(limitsIntro);
    const RuleList queueLimitRules = addRuleList(
        models, modelsLayout, QStringLiteral("queueLimit"),
        {tr("Model:"), tr("gpt-4o-mini or gpt-4o*"), tr("Add limit"), tr("Remove limit")},
        [&]() -> QList<QWidget *> {
            auto *tokensLabel = new QLabel(tr("Tokens:"), models);
            m_queueLimitTokens = new QLineEdit(models);
            m_queueLimitTokens->setObjectName(QStringLiteral("queueLimitTokensEdit"));
            m_queueLimitTokens->setPlaceholderText(tr("90k, 2M or 1.5B"));
            tokensLabel->setBuddy(m_queueLimitTokens);
            return {tokensLabel, m_queueLimitTokens};
        },
        100);
    m_queueLimitList = queueLimitRules.list;
    m_queueLimitPattern = queueLimitRules.pattern;
    m_removeQueueLimit = queueLimitRules.remove;
    m_queueLimitError = queueLimitRules.error;
    layout->addWidget(models);

    m_problem = errorLabel(QStringLiteral("providersProblem"), this);
    layout->addWidget(m_problem);
    auto *buttons = new QHBoxLayout;
    m_message = new QLabel(this);
    m_message->setObjectName(QStringLiteral("providersMessage"));
    m_message->setWordWrap(true);
    buttons->addWidget(m_message, 1);
    m_revert = new QPushButton(tr("Revert"), this);
    m_revert->setObjectName(QStringLiteral("revertProvidersButton"));
    m_apply = new QPushButton(tr("Apply"), this);
    m_apply->setObjectName(QStringLiteral("applyProvidersButton"));
    buttons->addWidget(m_revert);
    buttons->addWidget(m_apply);
    layout->addLayout(buttons);
    layout->addStretch(1);

    connect(m_add, &QPushButton::clicked, this, &ProvidersSettings::addProvider);
    connect(m_edit, &QPushButton::clicked, this, &ProvidersSettings::editSelected);
    connect(m_remove, &QPushButton::clicked, this, &ProvidersSettings::removeSelected);
    connect(m_table, &QTableWidget::itemSelectionChanged, this, &ProvidersSettings::validate);
    connect(m_table, &QTableWidget::itemSelectionChanged, m_connectionTest,
            &ConnectionTestRow::clearResult);
    connect(m_connectionTest, &ConnectionTestRow::checkRequested, this,
            &ProvidersSettings::requestConnectionCheck);
    connect(m_table, &QTableWidget::itemDoubleClicked, this, &ProvidersSettings::editSelected);
    connect(m_save, &QPushButton::clicked, this, &ProvidersSettings::saveEditedProvider);
    connect(cancel, &QPushButton::clicked, this, &ProvidersSettings::closeEditor);
    connect(m_profile, &QComboBox::currentIndexChanged, this, &ProvidersSettings::profileChosen);
    // Each rule list: Add (its button, Enter in its boxes), Remove (the selected rule), its error
    // cleared as the pattern changes, and the buttons' state with the selection.
    const auto wireRules = [this](const RuleList &rules, QList<QByteArray> *entries,
                                  bool (ProvidersSettings::*add)()) {
        connect(rules.add, &QPushButton::clicked, this, add);
        connect(rules.pattern, &QLineEdit::returnPressed, this, add);
        connect(rules.pattern, &QLineEdit::textChanged, rules.error, &QLabel::clear);
        connect(rules.remove, &QPushButton::clicked, this, [this, rules, entries] {
            const int row = rules.list->currentRow();
            if (row < 0 || row >= entries->size())
                return;
            entries->removeAt(row);
            rules.error->clear();
            refresh();
        });
        connect(rules.list, &QListWidget::currentRowChanged, this, &ProvidersSettings::validate);
    };
    wireRules(routeRules, &m_routes, &ProvidersSettings::addRoute);
    wireRules(modelRouteRules, &m_modelRoutes, &ProvidersSettings::addModelRoute);
    wireRules(queueLimitRules, &m_queueLimits, &ProvidersSettings::addQueueLimit);
    connect(m_queueLimitTokens, &QLineEdit::returnPressed, this, &ProvidersSettings::addQueueLimit);
    connect(m_queueLimitTokens, &QLineEdit::textChanged, m_queueLimitError, &QLabel::clear);
    connect(m_defaultProvider, &QComboBox::activated, this, [this] {
        const QString text = m_defaultProvider->currentData().toString();
        m_default = text == NoDefault ? QByteArray() : text.toUtf8();
        validate();
    });
    connect(m_apply, &QPushButton::clicked, this, &ProvidersSettings::apply);
    connect(m_revert, &QPushButton::clicked, this, [this] {
        setConfig(m_base);
        showMessage(QString(), false);
    });
    refresh();
}

void ProvidersSettings::setConfig(const Config &config) {
    m_base = config;
    m_specs.clear();
    for (const QByteArray &text : config.providers) {
        QString problem;
        if (const auto spec = parseProviderSpec(QString::fromUtf8(text), &problem))
            m_specs.append(*spec);
    }
    m_routes = config.routes;
    m_default = config.defaultProvider;
    m_modelRoutes = config.modelRoutes;
    m_queueLimits = config.queueLimits;
    m_modelRouteError->clear();
    m_queueLimitError->clear();
    m_pendingKeys.clear();
    m_removedKeys.clear();
    closeEditor();
    refresh();
}

Config ProvidersSettings::editedConfig() const {
    Config edited = m_base;
    edited.providers.clear();
    for (const ProviderSpec &spec : m_specs)
        edited.providers.append(providerSpecText(spec));
    edited.routes = m_routes;
    edited.defaultProvider = m_default;
    edited.modelRoutes = m_modelRoutes;
    edited.queueLimits = m_queueLimits;
    return edited;
}

bool ProvidersSettings::hasChanges() const {
    const Config edited = editedConfig();
    return !m_pendingKeys.isEmpty() || !m_removedKeys.isEmpty() ||
           edited.providers != m_base.providers || edited.routes != m_base.routes ||
           edited.defaultProvider != m_base.defaultProvider ||
           edited.modelRoutes != m_base.modelRoutes || edited.queueLimits != m_base.queueLimits;
}

QString ProvidersSettings::problem() const {
    QString problem;
    configuredProviders(
        editedConfig(), [](const QByteArray &) { return QByteArray(); }, &problem);
    if (problem.startsWith(QStringLiteral("llm-proxy: ")))
        problem = problem.mid(11);
    return problem;
}

QList<QByteArray> ProvidersSettings::providerNames() const {
    QList<QByteArray> names{QByteArray(DefaultProviderName)};
    for (const ProviderSpec &spec : m_specs) {
        if (!names.contains(spec.name))
            names.append(spec.name);
    }
    return names;
}

QString ProvidersSettings::keyText(const QByteArray &name) const {
    if (const auto pending = m_pendingKeys.constFind(name); pending != m_pendingKeys.cend()) {
        return pending->inFile ? tr("entered: saved in the settings file on Apply")
                               : tr("entered: saved in the system keychain on Apply");
    }
    const KeyState state = m_keyStates.value(name);
    const QString hint = state.hint.isEmpty() ? QString() : u' ' + QString::fromUtf8(state.hint);
    QByteArray variable = QByteArrayLiteral("OPENAI_API_KEY");
    for (const ProviderSpec &spec : m_specs) {
        if (spec.name == name)
            variable = keyVariable(spec);
    }
    QString text;
    switch (state.source) {
    case KeyState::Source::Environment:
        text = tr("environment (%1)%2").arg(QString::fromLatin1(variable), hint);
        break;
    case KeyState::Source::Keychain:
        text = tr("system keychain%1").arg(hint);
        break;
    case KeyState::Source::File:
        text = tr("settings file%1").arg(hint);
        break;
    case KeyState::Source::Session:
        text = tr("this session only%1").arg(hint);
        break;
    case KeyState::Source::None:
        text = tr("missing: clients' own keys (or set %1)").arg(QString::fromLatin1(variable));
        break;
    }
    if (!state.problem.isEmpty())
        text += QStringLiteral(" (") + state.problem + u')';
    return text;
}

void ProvidersSettings::refresh() {
    // The table: the implicit "openai" unless configured here, then the configured ones.
    QList<ProviderSpec> rows;
    const bool openAiConfigured =
        std::any_of(m_specs.cbegin(), m_specs.cend(),
                    [](const ProviderSpec &spec) { return spec.name == DefaultProviderName; });
    if (!openAiConfigured) {
        ProviderSpec openAi;
        openAi.name = DefaultProviderName;
        openAi.profile = DefaultProviderName;
        openAi.url = m_base.upstream;
        rows.append(openAi);
    }
    rows.append(m_specs);
    m_table->setRowCount(int(rows.size()));
    for (int row = 0; row < rows.size(); ++row) {
        const ProviderSpec &spec = rows.at(row);
        const ProviderProfile *profile = providerProfile(spec.profile);
        const QString url = !spec.url.isEmpty() ? spec.url.toDisplayString()
                            : profile           ? profile->defaultUrl.toDisplayString()
                                                : QString();
        const QStringList cells{QString::fromUtf8(spec.name),
                                profile ? profile->title : QString::fromUtf8(spec.profile), url,
                                keyText(spec.name)};
        for (int column = 0; column < ColumnCount; ++column) {
            auto *item = new QTableWidgetItem(cells.at(column));
            item->setData(Qt::UserRole, spec.name);
            m_table->setItem(row, column, item);
        }
    }
    m_table->resizeColumnToContents(NameColumn);
    m_table->resizeColumnToContents(ProfileColumn);

    const QList<QByteArray> names = providerNames();
    const QString routeTarget = m_routeProvider->currentText();
    m_routeProvider->clear();
    for (const QByteArray &name : names)
        m_routeProvider->addItem(QString::fromUtf8(name));
    if (const int index = m_routeProvider->findText(routeTarget); index >= 0)
        m_routeProvider->setCurrentIndex(index);
    m_routeList->clear();
    for (const QByteArray &route : std::as_const(m_routes)) {
        QString problem;
        const auto rule = parseRouteRule(QString::fromUtf8(route), &problem);
        m_routeList->addItem(rule ? QStringLiteral("%1 → %2").arg(
                                        QString::fromUtf8(route.left(route.lastIndexOf('='))),
                                        QString::fromUtf8(rule->provider))
                                  : QString::fromUtf8(route));
    }
    m_modelRouteList->clear();
    for (const QByteArray &entry : std::as_const(m_modelRoutes)) {
        QString problem;
        const auto rule = parseModelRouteRule(QString::fromUtf8(entry), &problem);
        m_modelRouteList->addItem(
            rule ? QStringLiteral("%1 → %2").arg(patternOf(entry),
                                                 QString::fromLatin1(modelRouteName(rule->route)))
                 : QString::fromUtf8(entry));
    }
    m_queueLimitList->clear();
    for (const QByteArray &entry : std::as_const(m_queueLimits)) {
        const QString tokens = QString::fromUtf8(entry.mid(entry.lastIndexOf('=') + 1).trimmed());
        m_queueLimitList->addItem(tr("%1: %2 tokens").arg(patternOf(entry), tokens));
    }
    m_defaultProvider->clear();
    for (const QByteArray &name : names)
        m_defaultProvider->addItem(QString::fromUtf8(name), QString::fromUtf8(name));
    if (!m_default.isEmpty() && !names.contains(m_default)) // shown, and refused by validate()
        m_defaultProvider->addItem(QString::fromUtf8(m_default), QString::fromUtf8(m_default));
    m_defaultProvider->addItem(tr("none (unrouted requests get 400)"), QString(NoDefault));
    const int current = m_defaultProvider->findData(
        m_default.isEmpty() ? QString(NoDefault) : QString::fromUtf8(m_default));
    m_defaultProvider->setCurrentIndex(std::max(0, current));
    validate();
}

void ProvidersSettings::validate() {
    const QString trouble = problem();
    m_problem->setText(trouble);
    const bool changed = hasChanges();
    m_apply->setEnabled(changed && trouble.isEmpty() && m_editing == -2);
    m_revert->setEnabled(changed);
    const QByteArray selected = selectedName();
    m_connectionTest->setAvailable(!selected.isEmpty());
    const bool configured = std::any_of(m_specs.cbegin(), m_specs.cend(),
                                        [&](const ProviderSpec &s) { return s.name == selected; });
    m_edit->setEnabled(configured && m_editing == -2);
    m_remove->setEnabled(configured && m_editing == -2);
    m_add->setEnabled(m_editing == -2);
    m_removeRoute->setEnabled(m_routeList->currentRow() >= 0);
    m_removeModelRoute->setEnabled(m_modelRouteList->currentRow() >= 0);
    m_removeQueueLimit->setEnabled(m_queueLimitList->currentRow() >= 0);
}

QByteArray ProvidersSettings::selectedName() const {
    const QList<QTableWidgetItem *> items = m_table->selectedItems();
    return items.isEmpty() ? QByteArray() : items.constFirst()->data(Qt::UserRole).toByteArray();
}

void ProvidersSettings::requestConnectionCheck() {
    const QByteArray name = selectedName();
    if (name.isEmpty())
        return;
    Q_EMIT connectionCheckRequested(name, editedConfig().providers, m_pendingKeys.value(name).key);
}

void ProvidersSettings::addProvider() {
    openEditor(-1);
}

void ProvidersSettings::editSelected() {
    const int row = m_table->currentRow();
    if (row < 0 || !m_table->item(row, NameColumn))
        return;
    const QByteArray name = m_table->item(row, NameColumn)->data(Qt::UserRole).toByteArray();
    for (int i = 0; i < m_specs.size(); ++i) {
        if (m_specs.at(i).name == name) {
            openEditor(i);
            return;
        }
    }
}

void ProvidersSettings::removeSelected() {
    const int row = m_table->currentRow();
    if (row < 0 || !m_table->item(row, NameColumn))
        return;
    const QByteArray name = m_table->item(row, NameColumn)->data(Qt::UserRole).toByteArray();
    const auto removed = m_specs.removeIf([&](const ProviderSpec &s) { return s.name == name; });
    if (removed == 0)
        return;
    m_pendingKeys.remove(name);
    if (name != DefaultProviderName && !m_removedKeys.contains(name))
        m_removedKeys.append(name);
    refresh();
}

void ProvidersSettings::openEditor(int index) {
    m_editing = index;
    const ProviderSpec spec = index >= 0 ? m_specs.at(index) : ProviderSpec{};
    m_name->setText(QString::fromUtf8(spec.name));
    m_name->setReadOnly(index >= 0); // a new name is a new provider
    m_nameError->clear();
    m_urlError->clear();
    m_keyEnvironmentError->clear();
    m_lastDefaultUrl.clear();
    {
        const QSignalBlocker blocker(m_profile);
        const int profile = m_profile->findData(index >= 0 ? QString::fromUtf8(spec.profile)
                                                           : QStringLiteral("gemini"));
        m_profile->setCurrentIndex(std::max(0, profile));
    }
    m_url->clear();
    profileChosen(); // the profile's URL, when it has one
    if (!spec.url.isEmpty())
        m_url->setText(spec.url.toDisplayString());
    m_keyEnvironment->setText(QString::fromUtf8(spec.keyEnvironment));
    m_key->clear();
    m_keyLocation->setCurrentIndex(
        m_keyStates.value(spec.name).source == KeyState::Source::File ? 1 : 0);
    m_editor->show();
    (index >= 0 ? static_cast<QWidget *>(m_url) : m_name)->setFocus();
    validate();
}

void ProvidersSettings::closeEditor() {
    m_editing = -2;
    m_key->clear();
    m_editor->hide();
    validate();
}

void ProvidersSettings::profileChosen() {
    // The profile's default URL in the field, unless the user typed another one.
    const ProviderProfile *profile = providerProfile(m_profile->currentData().toString().toUtf8());
    if (!profile)
        return;
    const QString current = m_url->text().trimmed();
    if (current.isEmpty() || current == m_lastDefaultUrl)
        m_url->setText(profile->defaultUrl.toDisplayString());
    m_lastDefaultUrl = profile->defaultUrl.toDisplayString();
    m_url->setPlaceholderText(profile->defaultUrl.isEmpty()
                                  ? tr("required, e.g. https://RESOURCE.openai.azure.com")
                                  : profile->defaultUrl.toDisplayString());
    m_keyEnvironment->setPlaceholderText(QString::fromLatin1(profile->keyEnvironment));
}

bool ProvidersSettings::saveEditedProvider() {
    if (m_editing == -2)
        return false;
    m_nameError->clear();
    m_urlError->clear();
    m_keyEnvironmentError->clear();
    const QString name = m_name->text().trimmed();
    const QString profileName = m_profile->currentData().toString();
    const ProviderProfile *profile = providerProfile(profileName.toUtf8());
    QString url = m_url->text().trimmed();
    if (profile && url == profile->defaultUrl.toDisplayString())
        url.clear(); // the profile's default, which follows the profile
    const QString keyEnvironment = m_keyEnvironment->text().trimmed();
    // The command line's parser, field by field, so that the reason stands next to its field.
    QString problem;
    const QString head = name + u'=' + profileName;
    if (!parseProviderSpec(QString(head + QStringLiteral(";url=https://example.invalid")),
                           &problem)) {
        m_nameError->setText(problem);
        return false;
    }
    const QString withUrl = url.isEmpty() ? head : head + QStringLiteral(";url=") + url;
    if (!parseProviderSpec(withUrl, &problem)) {
        m_urlError->setText(problem);
        return false;
    }
    const QString text =
        keyEnvironment.isEmpty() ? withUrl : withUrl + QStringLiteral(";key_env=") + keyEnvironment;
    const auto spec = parseProviderSpec(text, &problem);
    if (!spec) {
        m_keyEnvironmentError->setText(problem);
        return false;
    }
    for (int i = 0; i < m_specs.size(); ++i) {
        if (i != m_editing && m_specs.at(i).name == spec->name) {
            m_nameError->setText(tr("There is a provider named \"%1\" already").arg(name));
            return false;
        }
    }
    if (m_editing >= 0)
        m_specs[m_editing] = *spec;
    else
        m_specs.append(*spec);
    const QByteArray key = m_key->text().trimmed().toUtf8();
    if (!key.isEmpty())
        m_pendingKeys.insert(spec->name, {key, m_keyLocation->currentData().toBool()});
    m_removedKeys.removeAll(spec->name);
    closeEditor();
    refresh();
    return true;
}

bool ProvidersSettings::addRoute() {
    const QString text = m_routePattern->text().trimmed() + u'=' + m_routeProvider->currentText();
    QString problem;
    const auto rule = parseRouteRule(text, &problem);
    if (!rule) {
        m_routeError->setText(tr("\"%1\" %2").arg(text, problem));
        return false;
    }
    const QByteArray entry = text.toUtf8();
    if (m_routes.contains(entry)) {
        m_routeError->setText(tr("This rule is there already"));
        return false;
    }
    m_routes.append(entry);
    m_routePattern->clear();
    m_routeError->clear();
    refresh();
    return true;
}

bool ProvidersSettings::addModelRoute() {
    if (!addModelRule(m_modelRoutes,
                      m_modelRoutePattern->text().trimmed() + u'=' +
                          m_modelRoute->currentData().toString(),
                      parseModelRouteRule, m_modelRouteError,
                      tr("There is a rule for %1 already; remove it first")))
        return false;
    m_modelRoutePattern->clear();
    refresh();
    return true;
}

bool ProvidersSettings::addQueueLimit() {
    if (!addModelRule(m_queueLimits,
                      m_queueLimitPattern->text().trimmed() + u'=' +
                          m_queueLimitTokens->text().trimmed(),
                      parseQueueLimitRule, m_queueLimitError,
                      tr("There is a limit for %1 already; remove it first")))
        return false;
    m_queueLimitPattern->clear();
    m_queueLimitTokens->clear();
    refresh();
    return true;
}

void ProvidersSettings::apply() {
    if (!problem().isEmpty() || m_editing != -2)
        return;
    const Config edited = editedConfig();
    const bool listsChanged =
        edited.providers != m_base.providers || edited.routes != m_base.routes ||
        edited.defaultProvider != m_base.defaultProvider ||
        edited.modelRoutes != m_base.modelRoutes || edited.queueLimits != m_base.queueLimits;
    const QHash<QByteArray, PendingKey> keys = std::exchange(m_pendingKeys, {});
    const QList<QByteArray> removed = std::exchange(m_removedKeys, {});
    if (listsChanged)
        Q_EMIT applyRequested(edited);
    for (auto it = keys.cbegin(); it != keys.cend(); ++it)
        Q_EMIT keyEntered(it.key(), it.value().key, it.value().inFile);
    for (const QByteArray &name : removed) {
        if (m_keyStates.value(name).source == KeyState::Source::Keychain ||
            m_keyStates.value(name).source == KeyState::Source::File ||
            m_keyStates.value(name).source == KeyState::Source::Session)
            Q_EMIT forgetKeyRequested(name);
    }
    refresh();
}

void ProvidersSettings::setKeyStates(const QHash<QByteArray, KeyState> &states) {
    m_keyStates = states;
    for (int row = 0; row < m_table->rowCount(); ++row) {
        if (QTableWidgetItem *item = m_table->item(row, KeyColumn))
            item->setText(keyText(item->data(Qt::UserRole).toByteArray()));
    }
}

void ProvidersSettings::showMessage(const QString &text, bool isError) {
    m_message->setText(text);
    errorstyle::setLabelError(m_message, isError);
}

} // namespace llmproxy
