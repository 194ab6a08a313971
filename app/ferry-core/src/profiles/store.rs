//! The profile store: `profiles.toml` in the config directory, read leniently, written
//! atomically under a cross-process lock, with the previous version kept as `profiles.toml.bak`.
//!
//! Rules it keeps: a file with errors is never overwritten (writes are refused and the problems
//! name file, line and column); a file from a newer Ferry is read-only; every write re-reads the
//! file under the lock first, so two Ferry processes never lose each other's changes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::atomic::{FileLock, resolve_links, write_atomic, write_new_atomic};
use super::comments::keep_comments;
use super::document::{Parsed, Problem, parse_bytes};
use super::model::{CURRENT_VERSION, Cluster, Document, Profile, SecretRef};
use crate::config_dir::{ConfigDirError, config_dir};
use crate::secrets::{OsKeyring, SecretError, SecretStore};

/// The profile file's name inside the config directory.
pub const FILE_NAME: &str = "profiles.toml";

/// Why a store operation failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} has errors, so Ferry will not overwrite it (that would lose what it cannot read): {}. \
         Fix the file{}",
        path.display(),
        problems.first().map(|p| p.to_string()).unwrap_or_default(),
        if *has_backup {
            ", or restore the backup (`ferry profile restore-backup`, or Restore backup in the app)"
        } else {
            ""
        }
    )]
    Damaged {
        path: PathBuf,
        problems: Vec<Problem>,
        has_backup: bool,
    },
    #[error(
        "{} was written by a newer Ferry (format version {version}; this one knows up to \
         {CURRENT_VERSION}), so it is read-only here; update Ferry to change it",
        path.display()
    )]
    NewerVersion { path: PathBuf, version: u32 },
    #[error("cannot write profiles as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
    #[error("a profile named \"{0}\" already exists; choose another name or replace it")]
    ProfileExists(String),
    #[error("no profile named \"{0}\" (see `ferry profile list`)")]
    ProfileNotFound(String),
    #[error("no cluster named \"{0}\"")]
    ClusterNotFound(String),
    #[error("a {0} name cannot be empty")]
    EmptyName(&'static str),
    #[error("there is no backup at {0} to restore")]
    NoBackup(PathBuf),
    #[error("the backup {} is damaged too ({}); fix one of the files by hand", path.display(),
        problems.first().map(|p| p.to_string()).unwrap_or_default())]
    BackupDamaged {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    ConfigDir(#[from] ConfigDirError),
}

/// Written at the top of every saved file, so a person editing it knows the rules.
const FILE_HEADER: &str = "\
# Ferry's saved profiles. Hand edits and comments are welcome: Ferry re-reads the file before
# each change and keeps comments next to the entries they describe. Tokens are never stored
# here, only references to the OS keyring. The previous version is kept as profiles.toml.bak.

";

/// What to do with a cluster's token when saving the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// Keep whatever token the cluster has now (none for a new cluster).
    Keep,
    /// Store this token in the OS keyring (replacing any old one).
    Set(String),
    /// Delete the cluster's token from the keyring.
    Remove,
}

/// How to treat imported profiles whose name is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Import nothing and report the clashing names.
    #[default]
    Fail,
    /// The imported profile replaces the existing one.
    Replace,
    /// The imported profile gets a free name: "staging (2)".
    Rename,
}

/// What an import did: names added, and (old, new) pairs for renamed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub renamed: Vec<(String, String)>,
}

/// Profiles and in-app clusters, backed by one TOML file. Cheap to reload; every change goes to
/// disk before the call returns.
pub struct ProfileStore {
    path: PathBuf,
    secrets: Arc<dyn SecretStore>,
    parsed: Parsed,
}

impl std::fmt::Debug for ProfileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileStore")
            .field("path", &self.path)
            .field("profiles", &self.parsed.document.profiles.len())
            .field("problems", &self.parsed.problems)
            .finish()
    }
}

impl ProfileStore {
    /// The store in the user's config directory (or `$FERRY_CONFIG_DIR`), secrets in the OS
    /// keyring. Problems in the file do not fail this: see [`ProfileStore::problems`].
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(config_dir()?, Arc::new(OsKeyring))
    }

    /// The store in `dir` with the given secret store. Fails only when the file exists but
    /// cannot be read at all (permissions, I/O).
    pub fn open(dir: impl AsRef<Path>, secrets: Arc<dyn SecretStore>) -> Result<Self, StoreError> {
        let path = dir.as_ref().join(FILE_NAME);
        let parsed = read(&path)?
            .map(|b| parse_bytes(&path, &b))
            .unwrap_or_default();
        log_problems(&parsed);
        Ok(ProfileStore {
            path,
            secrets,
            parsed,
        })
    }

    /// Reads the file again (e.g. after another process changed it).
    pub fn reload(&mut self) -> Result<(), StoreError> {
        self.parsed = read(&self.path)?
            .map(|b| parse_bytes(&self.path, &b))
            .unwrap_or_default();
        log_problems(&self.parsed);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the previous version of the file is kept.
    pub fn backup_path(&self) -> PathBuf {
        sibling(&self.path, ".bak")
    }

    /// The files an export must never be written onto: the store, its backup and its lock.
    pub fn own_files(&self) -> Vec<PathBuf> {
        vec![
            self.path.clone(),
            self.backup_path(),
            sibling(&self.path, ".lock"),
        ]
    }

    pub fn has_backup(&self) -> bool {
        self.backup_path().is_file()
    }

    pub fn document(&self) -> &Document {
        &self.parsed.document
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.parsed.document.profiles
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.parsed.document.profile(name)
    }

    pub fn clusters(&self) -> &[Cluster] {
        &self.parsed.document.clusters
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.parsed.document.cluster(name)
    }

    /// What could not be read at the last load, with file, line and column.
    pub fn problems(&self) -> &[Problem] {
        &self.parsed.problems
    }

    /// The file format version when the file was older and was upgraded in memory.
    pub fn migrated_from(&self) -> Option<u32> {
        self.parsed.migrated_from
    }

    /// `Err` with the reason when changes cannot be saved (damaged or newer file).
    pub fn check_writable(&self) -> Result<(), StoreError> {
        writable(&self.path, &self.parsed)
    }

    /// The one way to change the file: lock, re-read, check, apply `change`, back up the old
    /// file, write the new one atomically. `change` sees the current on-disk contents.
    pub fn modify<R>(
        &mut self,
        change: impl FnOnce(&mut Document) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if let Some(dir) = self.path.parent() {
            crate::config_dir::create_private_dir(dir).map_err(|source| StoreError::Io {
                action: "create the folder",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let _lock = FileLock::acquire(&self.path).map_err(|source| StoreError::Io {
            action: "lock",
            path: sibling(&self.path, ".lock"),
            source,
        })?;
        remove_stale_temp_files(&self.path);
        if let Ok(target) = resolve_links(&self.path)
            && target != self.path
        {
            remove_stale_temp_files(&target);
        }
        let old_bytes = read(&self.path)?;
        let parsed = old_bytes
            .as_deref()
            .map(|b| parse_bytes(&self.path, b))
            .unwrap_or_default();
        if let Err(e) = writable(&self.path, &parsed) {
            log_problems(&parsed);
            self.parsed = parsed;
            return Err(e);
        }
        let mut document = parsed.document.clone();
        let result = change(&mut document)?;
        validate(&document)?;
        document.version = CURRENT_VERSION;
        let plain = format!("{FILE_HEADER}{}", document.to_toml()?);
        let new_text = old_bytes
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|old| keep_comments(old, &plain))
            // Comments are a courtesy: use them only if the result reads back to the same data.
            .filter(|text| toml::from_str::<Document>(text).ok().as_ref() == Some(&document))
            .unwrap_or(plain);
        if let Some(old) = &old_bytes {
            let bak = self.backup_path();
            write_atomic(&bak, old).map_err(|source| StoreError::Io {
                action: "write the backup",
                path: bak,
                source,
            })?;
        }
        write_atomic(&self.path, new_text.as_bytes()).map_err(|source| StoreError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })?;
        tracing::debug!(path = %self.path.display(), "saved profiles");
        self.parsed = Parsed {
            document,
            ..Parsed::default()
        };
        Ok(result)
    }

    /// Adds a new profile; fails if the name is taken.
    pub fn add_profile(&mut self, profile: Profile) -> Result<(), StoreError> {
        self.modify(|doc| {
            if doc.profile(&profile.name).is_some() {
                return Err(StoreError::ProfileExists(profile.name.clone()));
            }
            doc.profiles.push(profile);
            Ok(())
        })
    }

    /// Adds the profile, or replaces the one with the same name (keeping its position).
    pub fn save_profile(&mut self, profile: Profile) -> Result<(), StoreError> {
        self.modify(|doc| {
            match doc.profiles.iter_mut().find(|p| p.name == profile.name) {
                Some(slot) => *slot = profile,
                None => doc.profiles.push(profile),
            }
            Ok(())
        })
    }

    /// Replaces the profile called `old_name` with `profile` (which may carry a new name).
    pub fn replace_profile(&mut self, old_name: &str, profile: Profile) -> Result<(), StoreError> {
        self.modify(|doc| {
            if profile.name != old_name && doc.profile(&profile.name).is_some() {
                return Err(StoreError::ProfileExists(profile.name.clone()));
            }
            let slot = doc
                .profiles
                .iter_mut()
                .find(|p| p.name == old_name)
                .ok_or_else(|| StoreError::ProfileNotFound(old_name.to_string()))?;
            *slot = profile;
            Ok(())
        })
    }

    /// Removes a profile and returns it.
    pub fn remove_profile(&mut self, name: &str) -> Result<Profile, StoreError> {
        self.modify(|doc| {
            let i = doc
                .profiles
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| StoreError::ProfileNotFound(name.to_string()))?;
            Ok(doc.profiles.remove(i))
        })
    }

    /// Adds imported profiles in one write, treating name clashes as `on_conflict` says.
    pub fn import_profiles(
        &mut self,
        profiles: Vec<Profile>,
        on_conflict: OnConflict,
    ) -> Result<ImportOutcome, StoreError> {
        self.modify(|doc| {
            if on_conflict == OnConflict::Fail
                && let Some(clash) = profiles.iter().find(|p| doc.profile(&p.name).is_some())
            {
                return Err(StoreError::ProfileExists(clash.name.clone()));
            }
            let mut outcome = ImportOutcome::default();
            for mut profile in profiles {
                match doc.profiles.iter().position(|p| p.name == profile.name) {
                    None => {
                        outcome.added.push(profile.name.clone());
                        doc.profiles.push(profile);
                    }
                    Some(i) if on_conflict == OnConflict::Replace => {
                        outcome.replaced.push(profile.name.clone());
                        doc.profiles[i] = profile;
                    }
                    Some(_) => {
                        let new_name = free_name(doc, &profile.name);
                        outcome
                            .renamed
                            .push((profile.name.clone(), new_name.clone()));
                        profile.name = new_name;
                        doc.profiles.push(profile);
                    }
                }
            }
            Ok(outcome)
        })
    }

    /// Adds or updates an in-app cluster. A new token goes to the OS keyring first; if no
    /// keyring is reachable nothing is saved and the error says so.
    pub fn save_cluster(
        &mut self,
        mut cluster: Cluster,
        token: TokenChange,
    ) -> Result<(), StoreError> {
        if cluster.name.trim().is_empty() {
            return Err(StoreError::EmptyName("cluster"));
        }
        let existing = self.cluster(&cluster.name).and_then(|c| c.token.clone());
        let new_ref = match &token {
            TokenChange::Set(secret) => {
                self.secrets.check()?;
                let r = SecretRef::new_for_cluster(&cluster.name);
                self.secrets.set(&r.key, secret)?;
                Some(r)
            }
            TokenChange::Keep | TokenChange::Remove => None,
        };
        let name = cluster.name.clone();
        let token_for_write = token.clone();
        let rollback = new_ref.clone();
        let saved = self.modify(move |doc| {
            let slot = doc.clusters.iter_mut().find(|c| c.name == cluster.name);
            let old_ref = slot.as_ref().and_then(|c| c.token.clone());
            cluster.token = match token_for_write {
                TokenChange::Keep => old_ref.clone(),
                TokenChange::Set(_) => new_ref.clone(),
                TokenChange::Remove => None,
            };
            match slot {
                Some(slot) => *slot = cluster,
                None => doc.clusters.push(cluster),
            }
            Ok(old_ref)
        });
        match saved {
            Ok(old_ref) => {
                if token != TokenChange::Keep
                    && let Some(old) = old_ref.or(existing)
                {
                    self.forget_secret(&name, &old);
                }
                tracing::info!(cluster = %name, "saved cluster");
                Ok(())
            }
            Err(e) => {
                // The file still points at the old token (or none): drop the new one.
                if let Some(r) = rollback {
                    self.forget_secret(&name, &r);
                }
                Err(e)
            }
        }
    }

    /// Removes an in-app cluster and its token. The token is deleted first: if the keyring
    /// cannot be reached the cluster stays, so no secret is left behind without a reference.
    pub fn remove_cluster(&mut self, name: &str) -> Result<Cluster, StoreError> {
        // Refuse early when the file cannot be written, before the secret is gone.
        self.reload()?;
        self.check_writable()?;
        let cluster = self
            .cluster(name)
            .cloned()
            .ok_or_else(|| StoreError::ClusterNotFound(name.to_string()))?;
        if let Some(r) = &cluster.token {
            self.secrets.delete(&r.key)?;
        }
        self.modify(|doc| {
            let i = doc
                .clusters
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| StoreError::ClusterNotFound(name.to_string()))?;
            Ok(doc.clusters.remove(i))
        })
    }

    /// Whether tokens can be saved now (the OS keyring answers), so a dialog can say so before
    /// the person types one.
    pub fn secrets_available(&self) -> Result<(), SecretError> {
        self.secrets.check()
    }

    /// The bearer token of an in-app cluster, read from the OS keyring.
    pub fn cluster_token(&self, name: &str) -> Result<Option<String>, StoreError> {
        let cluster = self
            .cluster(name)
            .ok_or_else(|| StoreError::ClusterNotFound(name.to_string()))?;
        match &cluster.token {
            Some(r) => Ok(self.secrets.get(&r.key)?),
            None => Ok(None),
        }
    }

    /// Puts the backup back in place of a damaged (or unwanted) file. The current file is kept
    /// as `profiles.toml.broken-<time>` so nothing is lost; returns that path (if there was a
    /// file).
    pub fn restore_backup(&mut self) -> Result<Option<PathBuf>, StoreError> {
        let _lock = FileLock::acquire(&self.path).map_err(|source| StoreError::Io {
            action: "lock",
            path: sibling(&self.path, ".lock"),
            source,
        })?;
        let bak = self.backup_path();
        let Some(backup) = read(&bak)? else {
            return Err(StoreError::NoBackup(bak));
        };
        let parsed = parse_bytes(&bak, &backup);
        if parsed.damaged {
            return Err(StoreError::BackupDamaged {
                path: bak,
                problems: parsed.problems,
            });
        }
        let kept = match read(&self.path)? {
            Some(current) => Some(self.keep_broken_copy(&current)?),
            None => None,
        };
        write_atomic(&self.path, &backup).map_err(|source| StoreError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })?;
        self.parsed = parse_bytes(&self.path, &backup);
        tracing::info!(path = %self.path.display(), "restored profiles from the backup");
        Ok(kept)
    }

    /// Saves `current` as `profiles.toml.broken-<time>`, never over an earlier copy: a second
    /// restore in the same second gets `…-2`, `…-3`.
    fn keep_broken_copy(&self, current: &[u8]) -> Result<PathBuf, StoreError> {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let mut last_error = None;
        for n in 1..=1000 {
            let suffix = match n {
                1 => format!(".broken-{stamp}"),
                n => format!(".broken-{stamp}-{n}"),
            };
            let kept = sibling(&self.path, &suffix);
            match write_new_atomic(&kept, current) {
                Ok(()) => return Ok(kept),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(source) => {
                    return Err(StoreError::Io {
                        action: "keep a copy of the current file as",
                        path: kept,
                        source,
                    });
                }
            }
        }
        Err(StoreError::Io {
            action: "keep a copy of the current file as",
            path: sibling(&self.path, &format!(".broken-{stamp}")),
            source: last_error.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()),
        })
    }

    fn forget_secret(&self, cluster: &str, r: &SecretRef) {
        if let Err(e) = self.secrets.delete(&r.key) {
            tracing::warn!(cluster, key = %r.key, "could not delete the old token from the keyring: {e}");
        }
    }
}

fn writable(path: &Path, parsed: &Parsed) -> Result<(), StoreError> {
    if let Some(version) = parsed.newer_version {
        return Err(StoreError::NewerVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    if parsed.damaged {
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            problems: parsed.problems.clone(),
            has_backup: sibling(path, ".bak").is_file(),
        });
    }
    Ok(())
}

fn validate(doc: &Document) -> Result<(), StoreError> {
    if doc.profiles.iter().any(|p| p.name.trim().is_empty()) {
        return Err(StoreError::EmptyName("profile"));
    }
    if doc.clusters.iter().any(|c| c.name.trim().is_empty()) {
        return Err(StoreError::EmptyName("cluster"));
    }
    Ok(())
}

fn free_name(doc: &Document, base: &str) -> String {
    (2..)
        .map(|n| format!("{base} ({n})"))
        .find(|candidate| doc.profile(candidate).is_none())
        .unwrap_or_else(|| base.to_string())
}

/// The file's bytes, `None` when it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Temp files of writers that were killed mid-write. Only called under the lock, when no
/// other writer of this file can be between creating and renaming its temp file.
fn remove_stale_temp_files(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            tracing::debug!(file, "removing a temp file left by an interrupted write");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn log_problems(parsed: &Parsed) {
    // Info, not warn: the CLI and the window show each problem to the person once themselves;
    // this line is for the instance's log file.
    for p in &parsed.problems {
        tracing::info!("{p}");
    }
}
