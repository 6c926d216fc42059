// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/pricessettings.h"

#include "ui/icons.h"
#include "ui/priceoverrides.h"
#include "ui/traystate.h"

#include <QComboBox>
#include <QDate>
#include <QDir>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace llmproxy {

namespace {

enum PriceColumn {
    ProviderColumn,
    ModelColumn,
    TierColumn,
    InputColumn,
    CachedColumn,
    OutputColumn,
    SetByColumn,
    DateColumn,
    SourceColumn,
    PriceColumns
};

constexpr int ProviderRole = Qt::UserRole + 1;
constexpr int ModelRole = Qt::UserRole + 2;
constexpr int TierRole = Qt::UserRole + 3;

QString optionalPrice(const std::optional<accounting::MicroUsdPerMillion> &price) {
    return price ? priceText(*price) : QStringLiteral("–");
}

// Error text in the app's error colour.
void makeErrorLabel(QLabel *label) {
    QPalette palette = label->palette();
    palette.setColor(QPalette::WindowText, icons::stateColor(TrayState::Error));
    label->setPalette(palette);
    label->setWordWrap(true);
}

} // namespace

PricesSettings::PricesSettings(QWidget *parent)
    : QGroupBox(tr("Prices"), parent)
    , m_path(accounting::PriceTable::defaultOverridePath()) {
    setObjectName(QStringLiteral("pricesSettings"));
    auto *layout = new QVBoxLayout(this);
    auto *intro = new QLabel(
        tr("USD per million tokens. Every cost is worked out from these prices; a model without "
           "one has its tokens counted and its cost shown as unknown. Your prices replace the "
           "shipped ones model by model."),
        this);
    intro->setWordWrap(true);
    layout->addWidget(intro);

    m_view = new QTableWidget(0, PriceColumns, this);
    m_view->setObjectName(QStringLiteral("pricesTable"));
    m_view->setHorizontalHeaderLabels({tr("Provider"), tr("Model"), tr("Tier"), tr("Input"),
                                       tr("Cached input"), tr("Output"), tr("Set by"), tr("Date"),
                                       tr("Source")});
    m_view->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_view->setSelectionMode(QAbstractItemView::SingleSelection);
    m_view->verticalHeader()->hide();
    m_view->horizontalHeader()->setSectionResizeMode(SourceColumn, QHeaderView::Stretch);
    m_view->setMinimumHeight(200);
    m_view->setTabKeyNavigation(false); // Tab leaves the table (arrows move in it)
    connect(m_view, &QTableWidget::itemSelectionChanged, this, &PricesSettings::rowSelected);
    layout->addWidget(m_view);

    m_grid = new QGridLayout;
    m_grid->setColumnStretch(1, 1);
    m_grid->setColumnStretch(2, 1);
    m_provider = addField(tr("Provider"), QStringLiteral("priceProviderEdit"), QString());
    m_model = addField(tr("Model"), QStringLiteral("priceModelEdit"), QStringLiteral("model"));
    auto *tierTitle = new QLabel(tr("Tier"), this);
    m_tier = new QComboBox(this);
    m_tier->setObjectName(QStringLiteral("priceTierCombo"));
    m_tier->addItem(tr("standard (synchronous, the list price)"), int(accounting::Tier::Standard));
    m_tier->addItem(tr("batch"), int(accounting::Tier::Batch));
    m_tier->addItem(tr("flex"), int(accounting::Tier::Flex));
    tierTitle->setBuddy(m_tier);
    const int tierRow = m_grid->rowCount();
    m_grid->addWidget(tierTitle, tierRow, 0);
    m_grid->addWidget(m_tier, tierRow, 1);
    connect(m_tier, &QComboBox::activated, this, [this] {
        editModel(m_provider->text().trimmed(), m_model->text().trimmed(),
                  accounting::Tier(m_tier->currentData().toInt()));
    });
    m_input = addField(tr("Input"), QStringLiteral("priceInputEdit"), QStringLiteral("input"));
    m_cachedInput = addField(tr("Cached input"), QStringLiteral("priceCachedInputEdit"),
                             QStringLiteral("cached_input"));
    m_output = addField(tr("Output"), QStringLiteral("priceOutputEdit"), QStringLiteral("output"));
    m_source =
        addField(tr("Source page"), QStringLiteral("priceSourceEdit"), QStringLiteral("source"));
    m_provider->setText(QStringLiteral("openai"));
    m_cachedInput->setPlaceholderText(tr("none: cached tokens make the cost unknown"));
    m_output->setPlaceholderText(tr("none: output tokens make the cost unknown"));
    m_source->setPlaceholderText(QStringLiteral("https://openai.com/api/pricing/"));
    layout->addLayout(m_grid);

    auto *buttons = new QHBoxLayout;
    m_message = new QLabel(this);
    m_message->setObjectName(QStringLiteral("priceMessageLabel"));
    m_message->setWordWrap(true);
    m_remove = new QPushButton(tr("Use the shipped price"), this);
    m_remove->setObjectName(QStringLiteral("removePriceButton"));
    m_remove->setToolTip(tr("Remove your price for this model from the override file"));
    m_save = new QPushButton(tr("Save price"), this);
    m_save->setObjectName(QStringLiteral("savePriceButton"));
    m_save->setToolTip(tr("Write this price to the override file the proxy reads"));
    buttons->addWidget(m_message, 1);
    buttons->addWidget(m_remove);
    buttons->addWidget(m_save);
    layout->addLayout(buttons);
    connect(m_save, &QPushButton::clicked, this, &PricesSettings::save);
    connect(m_remove, &QPushButton::clicked, this, &PricesSettings::removeOverride);

    reload();
}

QLineEdit *PricesSettings::addField(const QString &title, const QString &name,
                                    const QString &field) {
    const int row = m_grid->rowCount();
    auto *label = new QLabel(title, this);
    auto *edit = new QLineEdit(this);
    edit->setObjectName(name);
    label->setBuddy(edit);
    m_grid->addWidget(label, row, 0);
    m_grid->addWidget(edit, row, 1);
    if (!field.isEmpty()) {
        auto *error = new QLabel(this);
        error->setObjectName(name.chopped(4) + QStringLiteral("Error"));
        makeErrorLabel(error);
        m_grid->addWidget(error, row, 2);
        m_errors.insert(field, error);
    }
    return edit;
}

void PricesSettings::setOverridePath(const QString &path) {
    m_path = path;
    reload();
}

void PricesSettings::reload() {
    accounting::LoadedPrices loaded = accounting::loadPrices(m_path);
    m_table = std::move(loaded.table);
    m_overridden.clear();
    QString error;
    if (const auto current = readOverrideFile(m_path, &error); current && !current->isEmpty()) {
        if (const auto overrides = accounting::PriceTable::parse(*current, m_path, &error)) {
            for (const accounting::ModelPrices &model : overrides->models())
                m_overridden.append(model.provider + u'\n' + model.model);
        }
    }
    fillTable();
    if (!loaded.error.isEmpty())
        showMessage(tr("Your override file is not in use: %1").arg(loaded.error), true);
}

void PricesSettings::fillTable() {
    m_view->setRowCount(0);
    for (const accounting::ModelPrices &model : m_table.models()) {
        const bool yours = m_overridden.contains(model.provider + u'\n' + model.model);
        for (accounting::Tier tier :
             {accounting::Tier::Standard, accounting::Tier::Batch, accounting::Tier::Flex}) {
            const accounting::TierPrices *prices = model.tier(tier);
            if (!prices)
                continue;
            const int row = m_view->rowCount();
            m_view->insertRow(row);
            const QStringList cells = {model.provider,
                                       model.model,
                                       accounting::tierName(tier),
                                       priceText(prices->input),
                                       optionalPrice(prices->cachedInput),
                                       optionalPrice(prices->output),
                                       yours ? tr("you") : tr("shipped"),
                                       prices->date,
                                       prices->source};
            for (int column = 0; column < PriceColumns; ++column) {
                auto *item = new QTableWidgetItem(cells.at(column));
                item->setData(ProviderRole, model.provider);
                item->setData(ModelRole, model.model);
                item->setData(TierRole, int(tier));
                if (column >= InputColumn && column <= OutputColumn)
                    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
                if (column == SourceColumn || column == ModelColumn) {
                    QString tip = prices->source;
                    if (column == ModelColumn && !model.aliases.isEmpty())
                        tip =
                            tr("Also billed as: %1").arg(model.aliases.join(QStringLiteral(", ")));
                    item->setToolTip(tip);
                }
                m_view->setItem(row, column, item);
            }
        }
    }
    m_view->resizeColumnsToContents();
}

void PricesSettings::rowSelected() {
    const QList<QTableWidgetItem *> selected = m_view->selectedItems();
    if (selected.isEmpty())
        return;
    const QTableWidgetItem *item = selected.constFirst();
    editModel(item->data(ProviderRole).toString(), item->data(ModelRole).toString(),
              accounting::Tier(item->data(TierRole).toInt()));
}

void PricesSettings::editModel(const QString &provider, const QString &model,
                               accounting::Tier tier) {
    m_provider->setText(provider);
    m_model->setText(model);
    m_tier->setCurrentIndex(m_tier->findData(int(tier)));
    const accounting::ModelPrices *prices = m_table.find(provider, model);
    const accounting::TierPrices *figures = prices ? prices->tier(tier) : nullptr;
    // A tier the model lacks starts from its list price's source.
    const accounting::TierPrices *any = figures ? figures : prices ? &prices->standard : nullptr;
    m_input->setText(figures ? priceText(figures->input) : QString());
    m_cachedInput->setText(figures && figures->cachedInput ? priceText(*figures->cachedInput)
                                                           : QString());
    m_output->setText(figures && figures->output ? priceText(*figures->output) : QString());
    m_source->setText(any ? any->source : QString());
    m_remove->setEnabled(m_overridden.contains(provider + u'\n' + model));
    showFieldErrors({});
}

void PricesSettings::showFieldErrors(const QMap<QString, QString> &errors) {
    for (auto it = m_errors.cbegin(); it != m_errors.cend(); ++it)
        it.value()->setText(errors.value(it.key()));
}

void PricesSettings::showMessage(const QString &text, bool isError) {
    m_message->setText(text);
    QPalette palette = this->palette();
    if (isError)
        palette.setColor(QPalette::WindowText, icons::stateColor(TrayState::Error));
    m_message->setPalette(palette);
}

void PricesSettings::save() {
    PriceEdit edit;
    edit.provider = m_provider->text();
    edit.model = m_model->text();
    edit.tier = accounting::Tier(m_tier->currentData().toInt());
    edit.input = m_input->text();
    edit.cachedInput = m_cachedInput->text();
    edit.output = m_output->text();
    edit.source = m_source->text();
    QString error;
    const std::optional<QByteArray> current = readOverrideFile(m_path, &error);
    if (!current) {
        showMessage(error, true);
        return;
    }
    const PriceEditResult result = applyPriceEdit(*current, m_table, edit, QDate::currentDate());
    showFieldErrors(result.fieldErrors);
    if (!result.ok()) {
        showMessage(result.error.isEmpty() ? tr("Nothing saved: mend the marked fields")
                                           : tr("Nothing saved: %1").arg(result.error),
                    true);
        return;
    }
    if (!writeOverrideFile(m_path, result.json, &error)) {
        showMessage(error, true);
        return;
    }
    const QString provider = edit.provider.trimmed();
    const QString model = edit.model.trimmed();
    reload();
    editModel(provider, model, edit.tier);
    showMessage(tr("Saved to %1").arg(QDir::toNativeSeparators(m_path)), false);
    Q_EMIT pricesSaved();
}

void PricesSettings::removeOverride() {
    QString error;
    const std::optional<QByteArray> current = readOverrideFile(m_path, &error);
    if (!current) {
        showMessage(error, true);
        return;
    }
    const QString provider = m_provider->text().trimmed();
    const QString model = m_model->text().trimmed();
    const PriceEditResult result = removePriceOverride(*current, provider, model);
    if (!result.ok() || !writeOverrideFile(m_path, result.json, &error)) {
        showMessage(result.error.isEmpty() ? error : result.error, true);
        return;
    }
    reload();
    editModel(provider, model, accounting::Tier(m_tier->currentData().toInt()));
    showMessage(tr("Your price for %1 is removed").arg(model), false);
    Q_EMIT pricesSaved();
}

void PricesSettings::showReloaded(const QString &error) {
    if (error.isEmpty()) {
        showMessage(tr("Saved. The proxy uses these prices for requests answered from now on "
                       "(what was already counted keeps its cost)."),
                    false);
    } else {
        showMessage(tr("Saved, but the running proxy could not read the prices (%1): it keeps "
                       "the ones it had until this is mended")
                        .arg(error),
                    true);
    }
}

} // namespace llmproxy
