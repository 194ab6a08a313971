//! The tray icon, owned by the instance's host so it works with the window open, closed, or
//! never opened (`ferry daemon`). On Linux it is a StatusNotifierItem (`ksni`, pure Rust over
//! D-Bus: building needs no GTK). Every menu action goes straight to the instance through its
//! API, so the tray works while no window is open.
//!
//! The item is registered even when no StatusNotifierWatcher runs yet (a tray host that
//! starts after Ferry, e.g. a panel restarting, finds it); [`Tray::host_flag`] says whether
//! one took it, so closing the window can ask before leaving Ferry invisible.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_core::instance::Instance;
use ferry_core::instance::api::{ProfileSummary, Request, Response};
use ferry_core::tunnel::{TunnelSnapshot, TunnelState};
use ksni::TrayMethods as _;

use crate::tray_icon::{self, Health};

/// How often the tray re-reads the profiles (a `ferry profile add` in a terminal shows up).
const PROFILES_EVERY: Duration = Duration::from_secs(2);
/// Changes are coalesced: a rollout moves many tunnels at once.
const COALESCE: Duration = Duration::from_millis(150);

/// The running tray item.
pub struct Tray {
    handle: ksni::Handle<Item>,
    host: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tray {
    /// Registers the tray item on the session bus and keeps it in step with the instance.
    /// `Err` when there is no session bus at all.
    pub async fn start(instance: Instance) -> Result<Tray, ksni::Error> {
        // True until ksni reports that no watcher took the item (it calls `watcher_offline`
        // when the first registration fails, `watcher_online` when one appears later).
        let host = Arc::new(AtomicBool::new(true));
        let item = Item {
            instance: instance.clone(),
            runtime: tokio::runtime::Handle::current(),
            view: View::default(),
            host: host.clone(),
        };
        let handle = item.assume_sni_available(true).spawn().await?;
        let task = tokio::spawn(follow(instance, handle.clone()));
        Ok(Tray { handle, host, task })
    }

    /// Whether a StatusNotifierWatcher (a tray host) took the item, as a flag that follows it.
    pub fn host_flag(&self) -> Arc<AtomicBool> {
        self.host.clone()
    }

    /// Removes the item from the bus.
    pub async fn stop(self) {
        self.task.abort();
        self.handle.shutdown().await;
    }
}

/// What the item shows, refreshed by [`follow`].
#[derive(Debug, Clone, Default, PartialEq)]
struct View {
    tunnels: Vec<TunnelSnapshot>,
    profiles: Vec<ProfileSummary>,
    window_open: bool,
    can_show_window: bool,
}

struct Item {
    instance: Instance,
    runtime: tokio::runtime::Handle,
    view: View,
    host: Arc<AtomicBool>,
}

impl Item {
    /// Sends a request to the instance in the background (menu callbacks must not block).
    fn ask(&self, request: Request) {
        let instance = self.instance.clone();
        self.runtime.spawn(async move {
            if let Response::Error(e) = instance.handle(request).await {
                tracing::warn!("tray: {e}");
            }
        });
    }
}

/// Keeps the item's view in step with the instance: on every tunnel change (coalesced) and
/// every [`PROFILES_EVERY`].
async fn follow(instance: Instance, handle: ksni::Handle<Item>) {
    let mut snapshots = instance.engine().snapshots();
    let mut tick = tokio::time::interval(PROFILES_EVERY);
    loop {
        let profiles = match instance.handle(Request::ListProfiles).await {
            Response::Profiles { profiles } => profiles,
            _ => Vec::new(),
        };
        let info = instance.info();
        let view = View {
            tunnels: snapshots.borrow_and_update().as_ref().clone(),
            profiles,
            window_open: info.window_open,
            can_show_window: info.has_window,
        };
        let changed = handle
            .update(|item| {
                let changed = item.view != view;
                item.view = view;
                changed
            })
            .await;
        if changed.is_none() {
            return; // the item was shut down
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        tokio::time::sleep(COALESCE).await;
    }
}

impl ksni::Tray for Item {
    fn id(&self) -> String {
        "dev.ferry.Ferry".into()
    }

    fn title(&self) -> String {
        "Ferry".into()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::ApplicationStatus
    }

    fn status(&self) -> ksni::Status {
        match tray_icon::health(&self.view.tunnels) {
            Health::Failed => ksni::Status::NeedsAttention,
            _ => ksni::Status::Active,
        }
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        let health = tray_icon::health(&self.view.tunnels);
        tray_icon::SIZES
            .iter()
            .map(|&size| ksni::Icon {
                width: size as i32,
                height: size as i32,
                data: tray_icon::argb32(health, size),
            })
            .collect()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "Ferry".into(),
            description: tray_icon::summary(&self.view.tunnels),
            ..Default::default()
        }
    }

    /// A click on the icon shows the window.
    fn activate(&mut self, _x: i32, _y: i32) {
        self.ask(Request::ShowWindow);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        use ksni::menu::{CheckmarkItem, StandardItem};
        let mut menu: Vec<ksni::MenuItem<Self>> = Vec::new();
        if self.view.can_show_window {
            let (label, request) = if self.view.window_open {
                ("Hide window", Request::HideWindow)
            } else {
                ("Show window", Request::ShowWindow)
            };
            menu.push(
                StandardItem {
                    label: label.into(),
                    activate: Box::new(move |item: &mut Self| item.ask(request.clone())),
                    ..Default::default()
                }
                .into(),
            );
            menu.push(ksni::MenuItem::Separator);
        }
        if self.view.profiles.is_empty() {
            menu.push(
                StandardItem {
                    label: "No saved profiles".into(),
                    enabled: false,
                    ..Default::default()
                }
                .into(),
            );
        }
        for profile in &self.view.profiles {
            let running = profile.running > 0;
            let name = profile.name.clone();
            menu.push(
                CheckmarkItem {
                    label: format!(
                        "{} ({}/{})",
                        escape(&profile.name),
                        profile.running,
                        profile.tunnels
                    ),
                    checked: running,
                    activate: Box::new(move |item: &mut Self| {
                        item.ask(if running {
                            Request::Down {
                                profiles: vec![name.clone()],
                                all: false,
                            }
                        } else {
                            Request::Up {
                                profiles: vec![name.clone()],
                            }
                        })
                    }),
                    ..Default::default()
                }
                .into(),
            );
        }
        let ad_hoc: Vec<&TunnelSnapshot> = self
            .view
            .tunnels
            .iter()
            .filter(|t| t.origin.profile().is_none() && t.state != TunnelState::Stopped)
            .collect();
        if !ad_hoc.is_empty() {
            menu.push(ksni::MenuItem::Separator);
        }
        for tunnel in ad_hoc {
            let address = tunnel
                .ports
                .iter()
                .flat_map(|p| p.local.first())
                .next()
                .map(|a| a.to_string());
            let target = tunnel
                .spec
                .alias
                .clone()
                .unwrap_or_else(|| tunnel.spec.target.to_kubectl());
            let label = match &address {
                Some(a) => format!("{} → {a} ({})", escape(&target), tunnel.state),
                None => format!("{} ({})", escape(&target), tunnel.state),
            };
            menu.push(
                StandardItem {
                    label,
                    enabled: address.is_some(),
                    activate: Box::new(move |_: &mut Self| {
                        if let Some(address) = &address {
                            crate::clipboard::copy(address.clone());
                        }
                    }),
                    ..Default::default()
                }
                .into(),
            );
        }
        menu.push(ksni::MenuItem::Separator);
        let any_running = self
            .view
            .tunnels
            .iter()
            .any(|t| t.state != TunnelState::Stopped);
        menu.push(
            StandardItem {
                label: "Stop all tunnels".into(),
                enabled: any_running,
                activate: Box::new(|item: &mut Self| {
                    item.ask(Request::Down {
                        profiles: Vec::new(),
                        all: true,
                    })
                }),
                ..Default::default()
            }
            .into(),
        );
        menu.push(
            StandardItem {
                label: "Quit Ferry".into(),
                icon_name: "application-exit".into(),
                activate: Box::new(|item: &mut Self| item.ask(Request::Quit)),
                ..Default::default()
            }
            .into(),
        );
        menu
    }

    fn watcher_online(&self) {
        self.host.store(true, Ordering::SeqCst);
        tracing::info!("tray: a tray host took the item");
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        self.host.store(false, Ordering::SeqCst);
        tracing::info!("tray: no tray host ({reason:?}); the item waits for one");
        true
    }
}

/// dbusmenu labels treat `_` as the access-key marker: a profile named `my_db` must show so.
fn escape(label: &str) -> String {
    label.replace('_', "__")
}
