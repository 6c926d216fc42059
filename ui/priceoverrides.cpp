// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/priceoverrides.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <QUrl>

namespace llmproxy {

namespace {

using accounting::MicroUsdPerMillion;
using accounting::TierPrices;

// A price as a JSON number. Written through a double: a price has at most 6 decimals and is far
// below 2^53 micro-USD, so the shortest text of the double is the decimal itself (the parser
// checks it again below).
QJsonValue priceJson(MicroUsdPerMillion price) {
    return QJsonValue(double(price) / 1'000'000.0);
}

QJsonObject tierJson(const TierPrices &tier) {
    QJsonObject object;
    object.insert(QStringLiteral("input"), priceJson(tier.input));
    if (tier.cachedInput)
        object.insert(QStringLiteral("cached_input"), priceJson(*tier.cachedInput));
    if (tier.cacheWrite)
        object.insert(QStringLiteral("cache_write"), priceJson(*tier.cacheWrite));
    if (tier.output)
        object.insert(QStringLiteral("output"), priceJson(*tier.output));
    object.insert(QStringLiteral("source"), tier.source);
    object.insert(QStringLiteral("date"), tier.date);
    if (!tier.asOf.isEmpty())
        object.insert(QStringLiteral("as_of"), tier.asOf);
    if (!tier.note.isEmpty())
        object.insert(QStringLiteral("note"), tier.note);
    return object;
}

QJsonObject modelJson(const accounting::ModelPrices &model) {
    QJsonObject tiers;
    tiers.insert(QStringLiteral("standard"), tierJson(model.standard));
    if (model.batch)
        tiers.insert(QStringLiteral("batch"), tierJson(*model.batch));
    if (model.flex)
        tiers.insert(QStringLiteral("flex"), tierJson(*model.flex));
    QJsonObject object;
    if (!model.aliases.isEmpty())
        object.insert(QStringLiteral("aliases"), QJsonArray::fromStringList(model.aliases));
    object.insert(QStringLiteral("tiers"), tiers);
    return object;
}

// The current file as an object (a new one when empty); nullopt with result.error when broken.
std::optional<QJsonObject> currentObject(const QByteArray &current, PriceEditResult *result) {
    if (current.trimmed().isEmpty()) {
        QJsonObject root;
        root.insert(QStringLiteral("schema"), 1);
        root.insert(QStringLiteral("currency"), QStringLiteral("USD"));
        root.insert(QStringLiteral("providers"), QJsonObject());
        return root;
    }
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(current, &parseError);
    if (!document.isObject()) {
        result->error = QCoreApplication::translate(
                            "PriceOverrides",
                            "The override file is not valid JSON (%1): mend or remove it first")
                            .arg(parseError.errorString());
        return std::nullopt;
    }
    return document.object();
}

// Checks the whole file with the proxy's parser; fills result->json when it loads.
void finish(const QJsonObject &root, PriceEditResult *result) {
    const QByteArray json = QJsonDocument(root).toJson(QJsonDocument::Indented);
    QString error;
    if (!accounting::PriceTable::parse(json, QStringLiteral("prices.json"), &error)) {
        result->error = error;
        return;
    }
    result->json = json;
}

} // namespace

QString priceText(MicroUsdPerMillion price) {
    const QString sign = price < 0 ? QStringLiteral("-") : QString();
    const qint64 magnitude = price < 0 ? -price : price;
    QString text = QString::number(magnitude / 1'000'000);
    const qint64 fraction = magnitude % 1'000'000;
    if (fraction != 0) {
        QString digits = QStringLiteral("%1").arg(fraction, 6, 10, QLatin1Char('0'));
        while (digits.endsWith(u'0'))
            digits.chop(1);
        text += u'.' + digits;
    }
    return sign + text;
}

PriceEditResult applyPriceEdit(const QByteArray &current, const accounting::PriceTable &effective,
                               const PriceEdit &edit, const QDate &today) {
    PriceEditResult result;
    const QString provider = edit.provider.trimmed();
    const QString model = edit.model.trimmed();
    if (provider.isEmpty() || model.isEmpty()) {
        result.fieldErrors.insert(
            QStringLiteral("model"),
            QCoreApplication::translate("PriceOverrides", "Name the provider and the model"));
    }
    // Each figure with the parser's own rules (plain decimal, at most 6 decimals, not negative).
    auto price = [&result](const QString &field, const QString &typed,
                           bool required) -> std::optional<MicroUsdPerMillion> {
        const QString text = typed.trimmed();
        if (text.isEmpty()) {
            if (required)
                result.fieldErrors.insert(
                    field, QCoreApplication::translate("PriceOverrides", "A price is needed"));
            return std::nullopt;
        }
        QString why;
        const auto value = accounting::parsePrice(text.toUtf8(), &why);
        if (!value)
            result.fieldErrors.insert(field, why);
        return value;
    };
    TierPrices tier;
    const auto input = price(QStringLiteral("input"), edit.input, true);
    tier.cachedInput = price(QStringLiteral("cached_input"), edit.cachedInput, false);
    tier.output = price(QStringLiteral("output"), edit.output, false);
    const QUrl source(edit.source.trimmed(), QUrl::StrictMode);
    if (!source.isValid() || source.host().isEmpty() ||
        (source.scheme() != u"https" && source.scheme() != u"http")) {
        result.fieldErrors.insert(
            QStringLiteral("source"),
            QCoreApplication::translate(
                "PriceOverrides", "Give the http(s) address of the page the prices are from"));
    }
    if (!result.fieldErrors.isEmpty())
        return result;
    tier.input = *input;
    tier.source = edit.source.trimmed();
    tier.date = today.toString(Qt::ISODate);
    tier.note = QCoreApplication::translate("PriceOverrides", "set in llm-proxy's settings");

    std::optional<QJsonObject> root = currentObject(current, &result);
    if (!root)
        return result;
    // The model as it is in force (its other tiers, aliases and cache-write price kept), or new.
    accounting::ModelPrices prices;
    if (const accounting::ModelPrices *known = effective.find(provider, model);
        known && known->model == model) {
        prices = *known;
    } else {
        prices.provider = provider;
        prices.model = model;
    }
    if (const TierPrices *old = prices.tier(edit.tier))
        tier.cacheWrite = old->cacheWrite;
    switch (edit.tier) {
    case accounting::Tier::Standard:
        prices.standard = tier;
        break;
    case accounting::Tier::Batch:
        prices.batch = tier;
        break;
    case accounting::Tier::Flex:
        prices.flex = tier;
        break;
    }
    QJsonObject providers = root->value(QStringLiteral("providers")).toObject();
    QJsonObject providerObject = providers.value(provider).toObject();
    QJsonObject models = providerObject.value(QStringLiteral("models")).toObject();
    models.insert(model, modelJson(prices));
    providerObject.insert(QStringLiteral("models"), models);
    providers.insert(provider, providerObject);
    root->insert(QStringLiteral("providers"), providers);
    finish(*root, &result);
    if (!result.json.isEmpty()) {
        // The figures read back exactly as typed.
        QString error;
        const auto table = accounting::PriceTable::parse(result.json, QString(), &error);
        const accounting::ModelPrices *back = table ? table->find(provider, model) : nullptr;
        const TierPrices *written = back ? back->tier(edit.tier) : nullptr;
        if (!written || written->input != tier.input || written->cachedInput != tier.cachedInput ||
            written->output != tier.output) {
            result.json.clear();
            result.error = QCoreApplication::translate(
                "PriceOverrides", "The prices could not be written exactly; nothing was saved");
        }
    }
    return result;
}

PriceEditResult removePriceOverride(const QByteArray &current, const QString &provider,
                                    const QString &model) {
    PriceEditResult result;
    std::optional<QJsonObject> root = current.trimmed().isEmpty() ? std::optional<QJsonObject>()
                                                                  : currentObject(current, &result);
    if (!result.error.isEmpty())
        return result;
    QJsonObject providers =
        root ? root->value(QStringLiteral("providers")).toObject() : QJsonObject();
    QJsonObject providerObject = providers.value(provider).toObject();
    QJsonObject models = providerObject.value(QStringLiteral("models")).toObject();
    if (!models.contains(model)) {
        result.error =
            QCoreApplication::translate("PriceOverrides", "%1 has no price of yours to remove")
                .arg(model);
        return result;
    }
    models.remove(model);
    if (models.isEmpty()) {
        providers.remove(provider);
    } else {
        providerObject.insert(QStringLiteral("models"), models);
        providers.insert(provider, providerObject);
    }
    root->insert(QStringLiteral("providers"), providers);
    finish(*root, &result);
    return result;
}

std::optional<QByteArray> readOverrideFile(const QString &path, QString *error) {
    QFile file(path);
    if (!file.exists())
        return QByteArray();
    if (!file.open(QIODevice::ReadOnly)) {
        if (error)
            *error = QCoreApplication::translate("PriceOverrides", "Cannot read %1: %2")
                         .arg(QDir::toNativeSeparators(path), file.errorString());
        return std::nullopt;
    }
    return file.readAll();
}

bool writeOverrideFile(const QString &path, const QByteArray &json, QString *error) {
    QDir().mkpath(QFileInfo(path).absolutePath());
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(json) != json.size() || !file.commit()) {
        if (error)
            *error = QCoreApplication::translate("PriceOverrides", "Cannot write %1: %2")
                         .arg(QDir::toNativeSeparators(path), file.errorString());
        return false;
    }
    return true;
}

} // namespace llmproxy
