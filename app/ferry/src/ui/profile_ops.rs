//! The profile side of the runtime thread: ferry-core's [`ProfileStore`] (TOML file with
//! backup), the file dialogs for import/export (shown via `rfd`, awaited here, never on the UI
//! thread), and publishing profiles into the model.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferry_core::profiles::{
    OnConflict, Profile, ProfileStore, export_profiles, import::import_ferry, write_atomic,
};
use ferry_core::spec::TunnelSpec;

use super::bridge;
use super::runtime::{Publisher, Request};
use super::theme::Tone;

/// The saved profiles as last read, shared with the task that counts running tunnels.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Vec<Profile>>>);

impl Shared {
    pub fn saved(&self) -> Vec<Profile> {
        self.0
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set(&self, profiles: Vec<Profile>) {
        match self.0.lock() {
            Ok(mut p) => *p = profiles,
            Err(p) => *p.into_inner() = profiles,
        }
    }
}

/// The profile store and what the UI knows of it.
pub struct Profiles {
    store: Option<ProfileStore>,
    shared: Shared,
    publisher: Publisher,
}

impl Profiles {
    /// Opens the store in `dir` (tests) or the user's config directory; a store that cannot be
    /// opened is reported and profiles are then unavailable.
    pub fn open(dir: Option<PathBuf>, publisher: Publisher, shared: Shared) -> Self {
        let store = match dir {
            Some(dir) => ProfileStore::open(dir, Arc::new(ferry_core::secrets::OsKeyring)),
            None => ProfileStore::open_default(),
        };
        let store = match store {
            Ok(store) => Some(store),
            Err(e) => {
                publisher.event(Tone::Bad, format!("Profiles are unavailable: {e}"));
                None
            }
        };
        let profiles = Profiles {
            store,
            shared,
            publisher,
        };
        profiles.publish();
        profiles
    }

    /// Adds a tunnel to a profile, creating the profile if needed (forward dialog's "save to").
    pub fn add_tunnel(&mut self, name: &str, spec: TunnelSpec) {
        let mut profile = self
            .store
            .as_ref()
            .and_then(|s| s.profile(name).cloned())
            .unwrap_or_else(|| Profile::new(name, []));
        if !profile.specs().any(|s| s == &spec) {
            profile.tunnels.push(spec.into());
        }
        self.change(format!("Saved the tunnel to profile {name}"), |s| {
            s.save_profile(profile)
        });
    }

    /// Applies a profile request from the UI.
    pub async fn handle(&mut self, request: Request) {
        match request {
            Request::SaveProfile {
                name,
                tunnels,
                autostart,
            } => {
                let mut profile = self
                    .store
                    .as_ref()
                    .and_then(|s| s.profile(&name).cloned())
                    .unwrap_or_else(|| Profile::new(name.clone(), []));
                profile.tunnels = tunnels.into_iter().map(Into::into).collect();
                profile.autostart = autostart;
                self.change(format!("Saved profile {name}"), |s| s.save_profile(profile));
            }
            Request::RenameProfile { from, to } => {
                let Some(mut profile) = self.store.as_ref().and_then(|s| s.profile(&from).cloned())
                else {
                    return;
                };
                profile.name = to.clone();
                self.change(format!("Renamed profile {from} to {to}"), |s| {
                    s.replace_profile(&from, profile)
                });
            }
            Request::DeleteProfile(name) => {
                self.change(format!("Deleted profile {name}"), |s| {
                    s.remove_profile(&name).map(drop)
                });
            }
            Request::RestoreProfilesBackup => {
                self.change("Restored the profile backup".into(), |s| {
                    s.restore_backup().map(drop)
                });
            }
            Request::ImportProfiles => self.import().await,
            Request::ExportProfiles => self.export().await,
            other => tracing::warn!(?other, "not a profile request"),
        }
    }

    fn change<E: std::fmt::Display>(
        &mut self,
        done: String,
        act: impl FnOnce(&mut ProfileStore) -> Result<(), E>,
    ) {
        let Some(store) = &mut self.store else {
            self.publisher.event(
                Tone::Bad,
                "Profiles are unavailable (see the earlier error).",
            );
            return;
        };
        match act(store) {
            Ok(()) => self.publisher.event(Tone::Good, done),
            Err(e) => self.publisher.event(Tone::Bad, e.to_string()),
        }
        if let Err(e) = store.reload() {
            self.publisher.event(Tone::Bad, e.to_string());
        }
        self.publish();
    }

    async fn import(&mut self) {
        let picked = rfd::AsyncFileDialog::new()
            .set_title("Import Ferry profiles")
            .add_filter("Ferry profiles", &["toml"])
            .pick_file()
            .await;
        let Some(file) = picked else { return };
        let path = file.path().to_path_buf();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                return self
                    .publisher
                    .event(Tone::Bad, format!("Cannot read {}: {e}", path.display()));
            }
        };
        let report = match import_ferry(&path, &text) {
            Ok(report) => report,
            Err(e) => return self.publisher.event(Tone::Bad, e.to_string()),
        };
        for skipped in &report.skipped {
            self.publisher
                .event(Tone::Warn, format!("Import: {skipped}"));
        }
        let count = report.profiles.len();
        self.change(
            format!("Imported {count} profiles from {}", path.display()),
            |s| {
                s.import_profiles(report.profiles, OnConflict::Rename)
                    .map(drop)
            },
        );
    }

    async fn export(&mut self) {
        let Some(store) = &self.store else { return };
        let text = match export_profiles(store.profiles()) {
            Ok(text) => text,
            Err(e) => {
                return self
                    .publisher
                    .event(Tone::Bad, format!("Cannot export profiles: {e}"));
            }
        };
        let picked = rfd::AsyncFileDialog::new()
            .set_title("Export Ferry profiles")
            .set_file_name("ferry-profiles.toml")
            .save_file()
            .await;
        let Some(file) = picked else { return };
        let path = file.path().to_path_buf();
        match write_atomic(&path, text.as_bytes()) {
            Ok(()) => self.publisher.event(
                Tone::Good,
                format!("Exported the profiles to {}", path.display()),
            ),
            Err(e) => self
                .publisher
                .event(Tone::Bad, format!("Cannot write {}: {e}", path.display())),
        }
    }

    /// Puts the store's profiles (and whether its file is damaged) into the model.
    fn publish(&self) {
        let saved = self
            .store
            .as_ref()
            .map(|s| s.profiles().to_vec())
            .unwrap_or_default();
        let corrupt = self
            .store
            .as_ref()
            .and_then(|s| s.check_writable().err())
            .map(|e| e.to_string());
        let path = self.store.as_ref().map(|s| s.path().display().to_string());
        let has_backup = self.store.as_ref().is_some_and(|s| s.has_backup());
        self.shared.set(saved.clone());
        self.publisher.update(|m| {
            let items = bridge::profiles(&saved, &m.tunnels);
            m.profiles = Arc::new(super::model::Profiles {
                items,
                corrupt,
                path,
                has_backup,
            });
        });
    }
}
