// SPDX-License-Identifier: GPL-3.0-or-later
#include "accounting/prices.h"

#include "api/json.h"

#include <QDate>
#include <QFile>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QStandardPaths>
#include <QUrl>

namespace llmproxy::accounting {

namespace {

constexpr int SchemaVersion = 1;
constexpr qsizetype MaxDecimals = 6;
// $10,000,000 per million tokens: far above any real price, far below qint64's reach.
constexpr MicroUsdPerMillion MaxPrice = Q_INT64_C(10000000) * 1000000;

QString kindName(json::Kind kind) {
    switch (kind) {
    case json::Kind::Object:
        return QStringLiteral("an object");
    case json::Kind::Array:
        return QStringLiteral("an array");
    case json::Kind::String:
        return QStringLiteral("a string");
    case json::Kind::Number:
        return QStringLiteral("a number");
    case json::Kind::True:
    case json::Kind::False:
        return QStringLiteral("a boolean");
    case json::Kind::Null:
        return QStringLiteral("null");
    }
    return QString();
}

QString str(QByteArrayView utf8) {
    return QString::fromUtf8(utf8.data(), utf8.size());
}

// Collects the first error, prefixed with where it happened.
struct Parser {
    QString file;
    QString error;

    bool fail(const QString &where, const QString &what) {
        error = file + QStringLiteral(": ");
        if (!where.isEmpty())
            error += where + QStringLiteral(": ");
        error += what;
        return false;
    }

    // The members of an object value; fails on anything else or on duplicate names.
    std::optional<QList<json::Member>> object(const json::Member &m, const QString &where,
                                              const QString &what) {
        if (m.kind != json::Kind::Object) {
            fail(where, QStringLiteral("%1 must be an object, not %2").arg(what, kindName(m.kind)));
            return std::nullopt;
        }
        return members(m.value, where);
    }

    std::optional<QList<json::Member>> members(QByteArrayView text, const QString &where) {
        json::ScanError scanError;
        std::optional<QList<json::Member>> result = json::objectMembers(text, &scanError);
        if (!result) {
            fail(where, QStringLiteral("not valid JSON: ") + scanError.message);
            return std::nullopt;
        }
        if (const std::optional<QByteArray> dup = json::firstDuplicateKey(*result)) {
            fail(where, QStringLiteral("duplicate key \"%1\"").arg(str(*dup)));
            return std::nullopt;
        }
        return result;
    }

    bool onlyKeys(const QList<json::Member> &members, const QList<QByteArrayView> &known,
                  const QString &where) {
        for (const json::Member &m : members) {
            if (!known.contains(QByteArrayView(m.key)))
                return fail(where, QStringLiteral("unknown field \"%1\"").arg(str(m.key)));
        }
        return true;
    }

    std::optional<QString> string(const json::Member &m, const QString &where) {
        if (m.kind != json::Kind::String) {
            fail(where, QStringLiteral("must be a string, not %1").arg(kindName(m.kind)));
            return std::nullopt;
        }
        return str(json::stringValue(m.value).value_or(QByteArray()));
    }

    // An array whose elements are all strings.
    std::optional<QStringList> strings(const json::Member &m, const QString &where) {
        if (m.kind != json::Kind::Array) {
            fail(where,
                 QStringLiteral("must be an array of strings, not %1").arg(kindName(m.kind)));
            return std::nullopt;
        }
        const QJsonArray array = QJsonDocument::fromJson(m.value.toByteArray()).array();
        QStringList out;
        for (const QJsonValue &v : array) {
            if (!v.isString() || v.toString().isEmpty()) {
                fail(where, QStringLiteral("must be an array of non-empty strings"));
                return std::nullopt;
            }
            out.append(v.toString());
        }
        return out;
    }

    std::optional<MicroUsdPerMillion> price(const json::Member &m, const QString &where) {
        QString why;
        const std::optional<MicroUsdPerMillion> p = parsePrice(m.value, &why);
        if (!p)
            fail(where, why);
        return p;
    }

    std::optional<TierPrices> tier(const json::Member &m, const QString &where) {
        const std::optional<QList<json::Member>> fields =
            object(m, where, QStringLiteral("a tier"));
        if (!fields)
            return std::nullopt;
        if (!onlyKeys(*fields,
                      {"input", "cached_input", "cache_write", "cache_write_1h", "output", "source",
                       "date", "as_of", "note"},
                      where))
            return std::nullopt;
        TierPrices t;
        const json::Member *input = json::find(*fields, "input");
        if (!input) {
            fail(where, QStringLiteral("missing \"input\""));
            return std::nullopt;
        }
        const std::optional<MicroUsdPerMillion> in =
            price(*input, where + QStringLiteral(".input"));
        if (!in)
            return std::nullopt;
        t.input = *in;
        if (const json::Member *c = json::find(*fields, "cached_input")) {
            t.cachedInput = price(*c, where + QStringLiteral(".cached_input"));
            if (!t.cachedInput)
                return std::nullopt;
        }
        if (const json::Member *w = json::find(*fields, "cache_write")) {
            t.cacheWrite = price(*w, where + QStringLiteral(".cache_write"));
            if (!t.cacheWrite)
                return std::nullopt;
        }
        if (const json::Member *w = json::find(*fields, "cache_write_1h")) {
            t.cacheWrite1h = price(*w, where + QStringLiteral(".cache_write_1h"));
            if (!t.cacheWrite1h)
                return std::nullopt;
        }
        if (const json::Member *o = json::find(*fields, "output")) {
            t.output = price(*o, where + QStringLiteral(".output"));
            if (!t.output)
                return std::nullopt;
        }

        const json::Member *source = json::find(*fields, "source");
        if (!source) {
            fail(where, QStringLiteral("missing \"source\" (the page the prices were read from)"));
            return std::nullopt;
        }
        const std::optional<QString> url = string(*source, where + QStringLiteral(".source"));
        if (!url)
            return std::nullopt;
        const QUrl parsed(*url, QUrl::StrictMode);
        if (!parsed.isValid() || parsed.host().isEmpty() ||
            (parsed.scheme() != QLatin1String("https") &&
             parsed.scheme() != QLatin1String("http"))) {
            fail(where + QStringLiteral(".source"),
                 QStringLiteral("must be an http(s) URL, not \"%1\"").arg(*url));
            return std::nullopt;
        }
        t.source = *url;

        const json::Member *date = json::find(*fields, "date");
        if (!date) {
            fail(where, QStringLiteral("missing \"date\" (when the prices were read, YYYY-MM-DD)"));
            return std::nullopt;
        }
        const std::optional<QString> d = isoDate(*date, where + QStringLiteral(".date"));
        if (!d)
            return std::nullopt;
        t.date = *d;
        if (const json::Member *asOf = json::find(*fields, "as_of")) {
            const std::optional<QString> a = isoDate(*asOf, where + QStringLiteral(".as_of"));
            if (!a)
                return std::nullopt;
            t.asOf = *a;
        }
        if (const json::Member *note = json::find(*fields, "note")) {
            const std::optional<QString> n = string(*note, where + QStringLiteral(".note"));
            if (!n)
                return std::nullopt;
            t.note = *n;
        }
        return t;
    }

    std::optional<QString> isoDate(const json::Member &m, const QString &where) {
        const std::optional<QString> s = string(m, where);
        if (!s)
            return std::nullopt;
        if (s->size() != 10 || !QDate::fromString(*s, Qt::ISODate).isValid()) {
            fail(where, QStringLiteral("must be a date YYYY-MM-DD, not \"%1\"").arg(*s));
            return std::nullopt;
        }
        return s;
    }

    std::optional<ModelPrices> model(const QString &provider, const json::Member &m) {
        ModelPrices result;
        result.provider = provider;
        result.model = str(m.key);
        const QString where = provider + QLatin1Char('/') + result.model;
        if (result.model.isEmpty()) {
            fail(provider, QStringLiteral("a model has an empty name"));
            return std::nullopt;
        }
        const std::optional<QList<json::Member>> fields =
            object(m, where, QStringLiteral("a model"));
        if (!fields || !onlyKeys(*fields, {"aliases", "tiers", "note"}, where))
            return std::nullopt;
        if (const json::Member *aliases = json::find(*fields, "aliases")) {
            const std::optional<QStringList> list =
                strings(*aliases, where + QStringLiteral(": aliases"));
            if (!list)
                return std::nullopt;
            result.aliases = *list;
        }
        if (const json::Member *note = json::find(*fields, "note")) {
            if (!string(*note, where + QStringLiteral(": note")))
                return std::nullopt;
        }
        const json::Member *tiersMember = json::find(*fields, "tiers");
        if (!tiersMember) {
            fail(where, QStringLiteral("missing \"tiers\""));
            return std::nullopt;
        }
        const std::optional<QList<json::Member>> tiers =
            object(*tiersMember, where, QStringLiteral("\"tiers\""));
        if (!tiers)
            return std::nullopt;
        bool haveStandard = false;
        for (const json::Member &t : *tiers) {
            const QString name = str(t.key);
            std::optional<TierPrices> *slot = nullptr;
            if (name == QLatin1String("batch")) {
                slot = &result.batch;
            } else if (name == QLatin1String("flex")) {
                slot = &result.flex;
            } else if (name != QLatin1String("standard")) {
                fail(
                    where,
                    QStringLiteral("unknown tier \"%1\" (known: standard, batch, flex)").arg(name));
                return std::nullopt;
            }
            std::optional<TierPrices> parsed = tier(t, where + QStringLiteral(": ") + name);
            if (!parsed)
                return std::nullopt;
            if (slot) {
                *slot = std::move(parsed);
            } else {
                result.standard = std::move(*parsed);
                haveStandard = true;
            }
        }
        if (!haveStandard) {
            fail(where, QStringLiteral("missing the \"standard\" tier (the list price)"));
            return std::nullopt;
        }
        return result;
    }
};

QString key(const QString &provider, const QString &name) {
    return provider + QLatin1Char('\n') + name;
}

} // namespace

QString tierName(Tier tier) {
    switch (tier) {
    case Tier::Standard:
        return QStringLiteral("standard");
    case Tier::Batch:
        return QStringLiteral("batch");
    case Tier::Flex:
        return QStringLiteral("flex");
    }
    return QString();
}

const TierPrices *ModelPrices::tier(Tier which) const {
    switch (which) {
    case Tier::Standard:
        return &standard;
    case Tier::Batch:
        return batch ? &*batch : nullptr;
    case Tier::Flex:
        return flex ? &*flex : nullptr;
    }
    return nullptr;
}

std::optional<MicroUsdPerMillion> parsePrice(QByteArrayView raw, QString *why) {
    auto failWith = [why](const QString &message) {
        if (why)
            *why = message;
        return std::nullopt;
    };
    const QByteArrayView text = raw.trimmed();
    const std::optional<json::Kind> kind = json::kindOf(text);
    if (!kind || !json::isValid(text))
        return failWith(QStringLiteral("must be a number, not \"%1\"").arg(str(text)));
    if (*kind != json::Kind::Number)
        return failWith(QStringLiteral("must be a number, not %1").arg(kindName(*kind)));
    if (text.startsWith('-'))
        return failWith(QStringLiteral("must not be negative (%1)").arg(str(text)));
    if (text.contains('e') || text.contains('E'))
        return failWith(
            QStringLiteral("must be a plain decimal, not %1 (no exponent)").arg(str(text)));
    const qsizetype dot = text.indexOf('.');
    const QByteArrayView whole = dot < 0 ? text : text.first(dot);
    const QByteArrayView fraction = dot < 0 ? QByteArrayView() : text.sliced(dot + 1);
    if (fraction.size() > MaxDecimals)
        return failWith(QStringLiteral("has more than %1 decimal places (%2): the smallest step is "
                                       "$0.000001 per million tokens")
                            .arg(MaxDecimals)
                            .arg(str(text)));
    if (whole.size() > 8) // over $99,999,999 per million tokens
        return failWith(QStringLiteral("is too large (%1)").arg(str(text)));
    qint64 value = 0;
    for (const char c : whole)
        value = value * 10 + (c - '0');
    for (qsizetype i = 0; i < MaxDecimals; ++i)
        value = value * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
    if (value > MaxPrice)
        return failWith(QStringLiteral("is too large (%1)").arg(str(text)));
    return value;
}

QString PriceTable::shippedPath() {
    return QStringLiteral(":/llmproxy/prices.json");
}

QString PriceTable::defaultOverridePath() {
    const QString config = QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation);
    if (config.isEmpty())
        return QString();
    return config + QStringLiteral("/llm-proxy/prices.json");
}

std::optional<PriceTable> PriceTable::parse(QByteArrayView json, const QString &fileName,
                                            QString *error) {
    Parser p{fileName, QString()};
    auto failed = [&]() -> std::optional<PriceTable> {
        if (error)
            *error = p.error;
        return std::nullopt;
    };
    const std::optional<QList<json::Member>> top = p.members(json, QString());
    if (!top)
        return failed();
    if (!p.onlyKeys(*top, {"schema", "currency", "unit", "read", "notes", "providers"}, QString()))
        return failed();

    PriceTable table;
    const json::Member *schema = json::find(*top, "schema");
    if (!schema) {
        p.fail(
            QString(),
            QStringLiteral("missing \"schema\" (this proxy reads schema %1)").arg(SchemaVersion));
        return failed();
    }
    const std::optional<qint64> version = json::integerValue(schema->value);
    if (!version || *version != SchemaVersion) {
        p.fail(QStringLiteral("schema"),
               QStringLiteral("must be %1, not %2").arg(SchemaVersion).arg(str(schema->value)));
        return failed();
    }
    table.m_schema = SchemaVersion;
    if (const json::Member *currency = json::find(*top, "currency")) {
        const std::optional<QString> c = p.string(*currency, QStringLiteral("currency"));
        if (!c)
            return failed();
        if (*c != QLatin1String("USD")) {
            p.fail(QStringLiteral("currency"),
                   QStringLiteral("must be \"USD\", not \"%1\" (prices are kept in USD)").arg(*c));
            return failed();
        }
    }
    for (const char *name : {"unit", "read"}) {
        if (const json::Member *m = json::find(*top, name)) {
            if (!p.string(*m, QString::fromLatin1(name)))
                return failed();
        }
    }
    if (const json::Member *notes = json::find(*top, "notes")) {
        const std::optional<QStringList> list = p.strings(*notes, QStringLiteral("notes"));
        if (!list)
            return failed();
        table.m_notes = *list;
    }

    const json::Member *providers = json::find(*top, "providers");
    if (!providers) {
        p.fail(QString(), QStringLiteral("missing \"providers\""));
        return failed();
    }
    const std::optional<QList<json::Member>> providerList =
        p.object(*providers, QStringLiteral("providers"), QStringLiteral("\"providers\""));
    if (!providerList)
        return failed();
    for (const json::Member &providerMember : *providerList) {
        const QString provider = str(providerMember.key);
        if (provider.isEmpty()) {
            p.fail(QStringLiteral("providers"), QStringLiteral("a provider has an empty name"));
            return failed();
        }
        const std::optional<QList<json::Member>> fields =
            p.object(providerMember, provider, QStringLiteral("a provider"));
        if (!fields || !p.onlyKeys(*fields, {"models"}, provider))
            return failed();
        const json::Member *models = json::find(*fields, "models");
        if (!models) {
            p.fail(provider, QStringLiteral("missing \"models\""));
            return failed();
        }
        const std::optional<QList<json::Member>> modelList =
            p.object(*models, provider, QStringLiteral("\"models\""));
        if (!modelList)
            return failed();
        QHash<QString, QString> claimedBy; // name or alias -> model that has it
        for (const json::Member &m : *modelList)
            claimedBy.insert(str(m.key), str(m.key));
        for (const json::Member &m : *modelList) {
            std::optional<ModelPrices> model = p.model(provider, m);
            if (!model)
                return failed();
            for (const QString &alias : std::as_const(model->aliases)) {
                const auto it = claimedBy.constFind(alias);
                if (it != claimedBy.cend()) {
                    p.fail(provider + QLatin1Char('/') + model->model,
                           QStringLiteral("alias \"%1\" is already the name or an alias of %2/%3")
                               .arg(alias, provider, *it));
                    return failed();
                }
                claimedBy.insert(alias, model->model);
            }
            table.m_models.append(std::move(*model));
        }
    }
    table.rebuildIndex();
    return table;
}

std::optional<PriceTable> PriceTable::readFile(const QString &path, QString *error) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        if (error)
            *error = path + QStringLiteral(": cannot be read: ") + file.errorString();
        return std::nullopt;
    }
    return parse(file.readAll(), path, error);
}

void PriceTable::overrideWith(const PriceTable &overrides) {
    for (const ModelPrices &o : overrides.m_models) {
        QStringList claimed = o.aliases;
        claimed.append(o.model);
        m_models.removeIf(
            [&o](const ModelPrices &m) { return m.provider == o.provider && m.model == o.model; });
        for (ModelPrices &m : m_models) {
            if (m.provider != o.provider)
                continue;
            m.aliases.removeIf([&claimed](const QString &a) { return claimed.contains(a); });
        }
        m_models.append(o);
    }
    rebuildIndex();
}

void PriceTable::rebuildIndex() {
    m_index.clear();
    // Aliases first, so that a model's own name wins over another model's alias.
    for (qsizetype i = 0; i < m_models.size(); ++i) {
        for (const QString &alias : std::as_const(m_models[i].aliases))
            m_index.insert(key(m_models[i].provider, alias), i);
    }
    for (qsizetype i = 0; i < m_models.size(); ++i)
        m_index.insert(key(m_models[i].provider, m_models[i].model), i);
}

const ModelPrices *PriceTable::find(const QString &provider, const QString &model) const {
    const auto it = m_index.constFind(key(provider, model));
    return it == m_index.cend() ? nullptr : &m_models[*it];
}

LoadedPrices loadPrices(const QString &overridePath) {
    LoadedPrices loaded;
    QString error;
    std::optional<PriceTable> shipped = PriceTable::readFile(PriceTable::shippedPath(), &error);
    if (!shipped) {
        loaded.error = error;
        return loaded;
    }
    loaded.table = std::move(*shipped);
    if (overridePath.isEmpty() || !QFile::exists(overridePath))
        return loaded;
    const std::optional<PriceTable> overrides = PriceTable::readFile(overridePath, &error);
    if (!overrides) {
        loaded.error = error;
        return loaded;
    }
    loaded.table.overrideWith(*overrides);
    return loaded;
}

} // namespace llmproxy::accounting
