// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/desktopapp.h"

#include "ui/accesssettings.h"
#include "ui/appactions.h"
#include "ui/batchtablemodel.h"
#include "ui/chartswidget.h"
#include "ui/connectiontestrow.h"
#include "ui/dashboardpage.h"
#include "ui/firstrunpanel.h"
#include "ui/historypage.h"
#include "ui/mainwindow.h"
#include "ui/moneypanel.h"
#include "ui/pricessettings.h"
#include "ui/providerssettings.h"
#include "ui/settingscontroller.h"
#include "ui/settingspage.h"
#include "ui/snapshothistory.h"
#include "ui/startatlogincheckbox.h"
#include "ui/traycontroller.h"

#include <QStatusBar>

namespace llmproxy {

DesktopApp::DesktopApp(SettingsController *settings, QObject *parent)
    : QObject(parent)
    , m_settings(settings)
    , m_actions(new AppActions(this))
    , m_history(new SnapshotHistory(this))
    , m_active(new BatchTableModel(BatchTableModel::Scope::Active, this))
    , m_finished(new BatchTableModel(BatchTableModel::Scope::Finished, this))
    , m_window(std::make_unique<MainWindow>(m_actions, m_active, m_finished, m_history))
    , m_tray(new TrayController(m_actions, this)) {
    // Intents out.
    connect(m_actions, &AppActions::pauseRequested, this, &DesktopApp::pauseRequested);
    connect(m_actions, &AppActions::flushRequested, this, &DesktopApp::flushRequested);
    connect(m_actions, &AppActions::quitRequested, this, &DesktopApp::quitRequested);
    connect(m_actions, &AppActions::showDashboardRequested, this, &DesktopApp::activate);
    connect(m_window.get(), &MainWindow::quitRequested, this, &DesktopApp::quitRequested);

    // Settings: the page talks to the controller, the controller answers the page.
    SettingsPage *page = m_window->settings();
    page->setConfig(settings->config());
    page->setKeyState(settings->keyState());
    page->setNotificationsEnabled(settings->notificationsEnabled());
    m_tray->setNotificationsEnabled(settings->notificationsEnabled());
    connect(page, &SettingsPage::applyRequested, settings, &SettingsController::applySettings);
    connect(page, &SettingsPage::apiKeyEntered, settings, &SettingsController::setApiKey);
    connect(page, &SettingsPage::forgetKeyRequested, settings, &SettingsController::forgetApiKey);
    connect(page, &SettingsPage::keepKeyInFileRequested, settings,
            &SettingsController::keepKeyInFile);
    connect(page, &SettingsPage::notificationsToggled, settings,
            &SettingsController::setNotificationsEnabled);
    connect(settings, &SettingsController::configChanged, page, &SettingsPage::setConfig);
    connect(settings, &SettingsController::keyStateChanged, page, &SettingsPage::setKeyState);
    connect(settings, &SettingsController::fileFallbackOffered, page,
            &SettingsPage::offerFileFallback);
    connect(settings, &SettingsController::message, page, &SettingsPage::showMessage);
    AccessSettings *access = page->access();
    connect(access, &AccessSettings::tokenGenerateRequested, settings,
            &SettingsController::generateProxyToken);
    connect(access, &AccessSettings::tokenRemoveRequested, settings,
            &SettingsController::removeProxyToken);
    connect(settings, &SettingsController::proxyTokenGenerated, access,
            &AccessSettings::showGeneratedToken);
    connect(settings, &SettingsController::proxyTokenFailed, access,
            &AccessSettings::showTokenError);
    connect(settings, &SettingsController::notificationsChanged, m_tray,
            &TrayController::setNotificationsEnabled);

    // Test connection: the saved upstream and key (the key never leaves the controller but
    // for this request).
    ConnectionTestRow *connectionTest = page->connectionTest();
    connect(connectionTest, &ConnectionTestRow::checkRequested, settings,
            [settings, connectionTest] {
                connectionTest->check(settings->config().upstream, settings->config().apiKey);
            });
    connect(page->startAtLogin(), &StartAtLoginCheckBox::failed, page,
            [page](const QString &error) { page->showMessage(error, true); });

    // Providers: the page edits the lists and takes keys; the controller keeps and applies them.
    ProvidersSettings *providers = m_window->providers();
    providers->setConfig(settings->config());
    const auto showProviderKeys = [settings, providers] {
        QHash<QByteArray, KeyState> states;
        states.insert(QByteArray(DefaultProviderName), settings->keyState());
        for (const QByteArray &text : settings->config().providers) {
            QString problem;
            if (const auto spec = parseProviderSpec(QString::fromUtf8(text), &problem))
                states.insert(spec->name, settings->providerKeyState(spec->name));
        }
        providers->setKeyStates(states);
    };
    showProviderKeys();
    connect(providers, &ProvidersSettings::applyRequested, settings,
            &SettingsController::applyProviders);
    connect(providers, &ProvidersSettings::keyEntered, settings,
            &SettingsController::setProviderKey);
    connect(providers, &ProvidersSettings::forgetKeyRequested, settings,
            &SettingsController::forgetProviderKey);
    connect(settings, &SettingsController::configChanged, providers,
            [providers, showProviderKeys](const Config &config) {
                providers->setConfig(config);
                showProviderKeys();
            });
    connect(settings, &SettingsController::providerKeysChanged, providers, showProviderKeys);
    connect(settings, &SettingsController::keyStateChanged, providers, showProviderKeys);
    connect(settings, &SettingsController::message, providers, &ProvidersSettings::showMessage);
    // Test connection of one provider: as edited on the page, with the key the proxy would use
    // for it (its variable, else the stored or typed one; "openai": the Settings page's).
    connect(providers, &ProvidersSettings::connectionCheckRequested, settings,
            [settings, providers](const QByteArray &name, const QList<QByteArray> &lines,
                                  const QByteArray &enteredKey) {
                Config config = settings->config();
                config.providers = lines;
                config.routes.clear(); // their problems are the page's, not the check's
                config.defaultProvider.clear();
                if (!enteredKey.isEmpty())
                    config.providerKeys.insert(name, enteredKey);
                QString error;
                const QList<ConfiguredProvider> configured = configuredProviders(
                    config,
                    [](const QByteArray &variable) { return qgetenv(variable.constData()); },
                    &error);
                for (const ConfiguredProvider &provider : configured) {
                    if (provider.name == name) {
                        providers->connectionTest()->checkTarget(
                            ConnectionChecker::targetFor(provider), QString::fromUtf8(name));
                    }
                }
            });

    FirstRunPanel *firstRun = m_window->dashboard()->firstRun();
    firstRun->setKeyState(settings->keyState());
    connect(settings, &SettingsController::keyStateChanged, firstRun, &FirstRunPanel::setKeyState);
    firstRun->setProxyTokens(settings->config().tokens);
    connect(settings, &SettingsController::configChanged, firstRun,
            [firstRun](const Config &config) { firstRun->setProxyTokens(config.tokens); });
    DashboardPage *dashboard = m_window->dashboard();
    if (settings->firstRunDone())
        dashboard->setFirstRunDone();
    connect(dashboard, &DashboardPage::firstRunCompleted, settings,
            &SettingsController::setFirstRunDone);

    // Prices: a saved override goes to the running proxy.
    connect(page->prices(), &PricesSettings::pricesSaved, this, &DesktopApp::pricesChanged);

    ChartsWidget *charts = m_window->dashboard()->charts();
    charts->setSpan(static_cast<ChartSpan>(settings->chartSpan()));
    connect(charts, &ChartsWidget::spanChanged, settings,
            [settings](ChartSpan span) { settings->setChartSpan(static_cast<int>(span)); });
}

DesktopApp::~DesktopApp() = default;

void DesktopApp::show(bool inTray) {
    m_hasTray = m_tray->show();
    m_window->setCloseHidesToTray(m_hasTray);
    if (inTray && m_hasTray)
        return;
    m_window->show();
}

void DesktopApp::showSnapshot(const ProxySnapshot &snapshot) {
    m_active->setBatches(snapshot.batches, snapshot.takenAt);
    m_finished->setBatches(snapshot.batches, snapshot.takenAt);
    m_history->append(snapshot);
    m_actions->setPaused(snapshot.paused);
    m_window->dashboard()->showSnapshot(snapshot);
    m_window->history()->refresh();
    m_window->settings()->setListenError(snapshot.listenError);
    m_tray->showSnapshot(snapshot);
}

void DesktopApp::showBatchFinished(const BatchProgress &batch) {
    m_tray->notifyBatchFinished(batch);
}

void DesktopApp::showMoney(const MoneySummary &summary) {
    m_window->dashboard()->money()->showSummary(summary);
    m_tray->showMoney(summary);
}

void DesktopApp::showPricesReloaded(const QString &error) {
    m_window->settings()->prices()->showReloaded(error);
}

void DesktopApp::showListenFailed(const QString &error) {
    m_window->settings()->setListenError(error);
    m_window->statusBar()->showMessage(DesktopApp::tr("Could not listen: ") + error, 10'000);
    m_tray->notifyError(DesktopApp::tr("llm-proxy could not listen"), error);
}

void DesktopApp::showStartFailed(const QString &error) {
    m_window->dashboard()->showStartFailed(error);
    m_window->settings()->setListenError(error);
    m_window->statusBar()->showMessage(
        DesktopApp::tr("Could not start: change the listen address in Settings"));
    activate();
}

void DesktopApp::activate() {
    m_window->bringForward();
}

} // namespace llmproxy
