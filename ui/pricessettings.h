// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The settings window's "Prices" group (issue 10): the price table in force (shipped, with the
// user's overrides marked), and an editor for one model's prices at one tier, saved to the
// override file the proxy loads (priceoverrides.h). A bad figure is named next to its field and
// nothing is saved. After a save, pricesSaved() asks the running proxy to read the prices
// again; showReloaded() says whether it did.

#include "accounting/prices.h"

#include <QGroupBox>
#include <QMap>

class QComboBox;
class QGridLayout;
class QLabel;
class QLineEdit;
class QPushButton;
class QTableWidget;

namespace llmproxy {

class PricesSettings final : public QGroupBox {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(PricesSettings)
public:
    explicit PricesSettings(QWidget *parent = nullptr);

    // The override file (default: accounting::PriceTable::defaultOverridePath()); re-reads it.
    void setOverridePath(const QString &path);
    QString overridePath() const { return m_path; }
    // The shown table (shipped with the overrides), for tests.
    const accounting::PriceTable &table() const { return m_table; }

public Q_SLOTS:
    // Read the shipped table and the override file again and show them.
    void reload();
    // The proxy read the prices again (empty error), or could not.
    void showReloaded(const QString &error);
    // Fill the editor with a model's prices at a tier (as if its row was selected).
    void editModel(const QString &provider, const QString &model, accounting::Tier tier);
    void save();
    void removeOverride();

Q_SIGNALS:
    // The override file was written: the proxy should read the prices again.
    void pricesSaved();

private:
    QLineEdit *addField(const QString &title, const QString &name, const QString &field);
    void fillTable();
    void rowSelected();
    void showFieldErrors(const QMap<QString, QString> &errors);
    void showMessage(const QString &text, bool isError);

    QString m_path;
    accounting::PriceTable m_table;
    QStringList m_overridden; // "provider\nmodel" of the models the override file sets
    QTableWidget *m_view = nullptr;
    QLineEdit *m_provider = nullptr;
    QLineEdit *m_model = nullptr;
    QComboBox *m_tier = nullptr;
    QLineEdit *m_input = nullptr;
    QLineEdit *m_cachedInput = nullptr;
    QLineEdit *m_output = nullptr;
    QLineEdit *m_source = nullptr;
    QMap<QString, QLabel *> m_errors; // field name -> its message
    QPushButton *m_save = nullptr;
    QPushButton *m_remove = nullptr;
    QLabel *m_message = nullptr;
    QGridLayout *m_grid = nullptr;
};

} // namespace llmproxy
