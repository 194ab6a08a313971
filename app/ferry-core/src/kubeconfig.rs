//! The user's kubeconfig, read and merged exactly as kubectl does, so Ferry offers the same
//! contexts, the same current context and the same default namespaces as `kubectl config
//! get-contexts`.
//!
//! Rules (client-go's `ClientConfigLoadingRules`): `KUBECONFIG` lists files separated by `:`
//! (`;` on Windows); empty entries and files that do not exist are skipped, duplicates read
//! once; without `KUBECONFIG` (or when it is empty) `~/.kube/config` is used, and a missing
//! default file simply means "no contexts". When merging, the first file that sets a map key
//! (cluster, user or context name) wins whole, and `current-context` comes from the first file
//! that sets it. A file that exists but cannot be read or parsed is an error that names the file.
//! What kubectl passes over in silence (missing or empty files, a `current-context` naming no
//! context) is kept as [`KubeconfigNote`]s, so Ferry can say which file is the problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, NamedCluster};
use serde::{Deserialize, Serialize};

/// Why the kubeconfig could not be loaded. Always names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// The file exists but could not be read (permissions, not UTF-8…).
    #[error("cannot read kubeconfig file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The file is not a valid kubeconfig (YAML syntax, wrong field types).
    #[error("kubeconfig file {} is malformed: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// The file is valid on its own but cannot be merged with the earlier ones.
    #[error("kubeconfig file {} cannot be merged with the files before it: {reason}", path.display())]
    Merge { path: PathBuf, reason: String },
}

/// Something wrong with the kubeconfig files that kubectl passes over in silence (it skips
/// missing and empty files and ignores a dangling `current-context`), but that leaves a person
/// with no contexts, or with a default that does not work. Shown as warnings, or as the error
/// when there are no contexts at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigNote {
    /// A listed file does not exist.
    #[error("kubeconfig file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A file exists but defines nothing (no clusters, users, contexts or current-context).
    #[error("kubeconfig file {} is empty: it defines no clusters, users or contexts", .0.display())]
    Empty(PathBuf),
    /// `current-context` names a context that no file defines.
    #[error(
        "current-context \"{name}\" (set in {}) names no context in the kubeconfig; choose one with `kubectl config use-context NAME`",
        path.display()
    )]
    UnknownCurrentContext { name: String, path: PathBuf },
}

/// One context as `kubectl config get-contexts` shows it, plus where it came from. Plain serde
/// data for the UI, the CLI and the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextInfo {
    /// The context name (unique after merging).
    pub name: String,
    /// The cluster entry the context refers to.
    pub cluster: String,
    /// The API server URL of that cluster; `None` if the cluster entry is missing.
    pub server: Option<String>,
    /// The user (auth info) entry the context refers to.
    pub user: Option<String>,
    /// The context's default namespace as written in the file (`None`: kubectl uses `default`).
    pub namespace: Option<String>,
    /// Whether this is the `current-context`.
    pub is_current: bool,
    /// Whether signing in runs an exec credential plugin (may be slow or interactive).
    pub uses_exec_plugin: bool,
    /// The file that defined this context (`None` for in-app clusters).
    pub source: Option<PathBuf>,
}

impl ContextInfo {
    /// The namespace to use when the user chose none: the context's, else `default`.
    pub fn default_namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
    }
}

/// The merged kubeconfig plus the files it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedKubeconfig {
    /// The merged document, as kube-rs's `Config::from_custom_kubeconfig` takes it.
    pub merged: Kubeconfig,
    /// Files actually read, in merge order.
    pub files: Vec<PathBuf>,
    /// For each context name, the file that defined it (first wins).
    context_sources: Vec<(String, PathBuf)>,
    /// The file the merged `current-context` came from.
    current_context_source: Option<PathBuf>,
    /// Listed files that do not exist, in list order.
    missing: Vec<PathBuf>,
    /// Files that exist but define nothing.
    empty: Vec<PathBuf>,
}

impl LoadedKubeconfig {
    /// Reads the files kubectl would read: `$KUBECONFIG`, else `~/.kube/config`.
    pub fn from_env() -> Result<Self, KubeconfigError> {
        Self::from_paths(&paths_from_env())
    }

    /// Reads and merges the given files in order (first wins), skipping ones that do not exist.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Self, KubeconfigError> {
        let mut loaded = LoadedKubeconfig::default();
        let mut seen = HashSet::new();
        for path in paths {
            if path.as_os_str().is_empty() || !seen.insert(path.clone()) {
                continue;
            }
            if !path.exists() {
                tracing::debug!(path = %path.display(), "kubeconfig file does not exist; skipped as kubectl does");
                loaded.missing.push(path.clone());
                continue;
            }
            let doc = read_file(path)?;
            if defines_nothing(&doc) {
                loaded.empty.push(path.clone());
            }
            loaded.add(path, doc)?;
        }
        Ok(loaded)
    }

    /// Parses one kubeconfig document from text (tests, in-app clusters).
    pub fn from_yaml(text: &str, pretend_path: &Path) -> Result<Self, KubeconfigError> {
        let doc = Kubeconfig::from_yaml(text).map_err(|e| KubeconfigError::Parse {
            path: pretend_path.to_path_buf(),
            reason: crate::errors::error_chain(&e),
        })?;
        let mut loaded = LoadedKubeconfig::default();
        loaded.add(pretend_path, doc)?;
        Ok(loaded)
    }

    fn add(&mut self, path: &Path, doc: Kubeconfig) -> Result<(), KubeconfigError> {
        for ctx in &doc.contexts {
            if !self
                .context_sources
                .iter()
                .any(|(name, _)| name == &ctx.name)
            {
                self.context_sources
                    .push((ctx.name.clone(), path.to_path_buf()));
            }
        }
        if self.merged.current_context.is_none() && doc.current_context.is_some() {
            self.current_context_source = Some(path.to_path_buf());
        }
        let merged = std::mem::take(&mut self.merged);
        self.merged = merged.merge(doc).map_err(|e| KubeconfigError::Merge {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// What a person should be told about the files: missing ones, empty ones, and a
    /// `current-context` that names no context. Empty when all is well.
    pub fn notes(&self) -> Vec<KubeconfigNote> {
        let mut notes: Vec<KubeconfigNote> = self
            .missing
            .iter()
            .cloned()
            .map(KubeconfigNote::Missing)
            .collect();
        notes.extend(self.empty.iter().cloned().map(KubeconfigNote::Empty));
        if let (Some(name), Some(path)) = (self.current_context(), &self.current_context_source)
            && !self.merged.contexts.iter().any(|c| c.name == name)
        {
            notes.push(KubeconfigNote::UnknownCurrentContext {
                name: name.to_string(),
                path: path.clone(),
            });
        }
        notes
    }

    /// The `current-context`, if any file sets it (to a non-empty name).
    pub fn current_context(&self) -> Option<&str> {
        self.merged
            .current_context
            .as_deref()
            .filter(|c| !c.is_empty())
    }

    /// All contexts, in file order (as kubectl lists them, sorted by name).
    pub fn contexts(&self) -> Vec<ContextInfo> {
        let current = self.current_context();
        let mut out: Vec<ContextInfo> = self
            .merged
            .contexts
            .iter()
            .map(|named| {
                let ctx = named.context.clone().unwrap_or_default();
                let server = self
                    .cluster(&ctx.cluster)
                    .and_then(|c| c.cluster.as_ref()?.server.clone());
                let uses_exec_plugin = ctx
                    .user
                    .as_deref()
                    .and_then(|u| self.merged.auth_infos.iter().find(|a| a.name == u))
                    .and_then(|a| a.auth_info.as_ref())
                    .is_some_and(|a| a.exec.is_some());
                ContextInfo {
                    name: named.name.clone(),
                    cluster: ctx.cluster,
                    server,
                    user: ctx.user,
                    namespace: ctx.namespace,
                    is_current: current == Some(named.name.as_str()),
                    uses_exec_plugin,
                    source: self.source_of(&named.name).map(Path::to_path_buf),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The file that defined a context.
    pub fn source_of(&self, context: &str) -> Option<&Path> {
        self.context_sources
            .iter()
            .find(|(name, _)| name == context)
            .map(|(_, p)| p.as_path())
    }

    fn cluster(&self, name: &str) -> Option<&NamedCluster> {
        self.merged.clusters.iter().find(|c| c.name == name)
    }
}

/// The files kubectl reads: the `KUBECONFIG` list if set and non-empty, else `~/.kube/config`.
pub fn paths_from_env() -> Vec<PathBuf> {
    paths_from(std::env::var_os("KUBECONFIG"), default_path())
}

/// [`paths_from_env`] without the environment: `kubeconfig_var` split on the platform's list
/// separator, empty entries dropped; `default` when that leaves nothing.
pub fn paths_from(
    kubeconfig_var: Option<std::ffi::OsString>,
    default: Option<PathBuf>,
) -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = kubeconfig_var
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        default.into_iter().collect()
    } else {
        listed
    }
}

/// `~/.kube/config`, if a home directory is known.
pub fn default_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().join(".kube").join("config"))
}

/// A document with nothing in it: an empty file, or one holding only comments.
fn defines_nothing(doc: &Kubeconfig) -> bool {
    doc.clusters.is_empty()
        && doc.auth_infos.is_empty()
        && doc.contexts.is_empty()
        && doc.current_context.is_none()
}

fn read_file(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
    use kube::config::KubeconfigError as K;
    Kubeconfig::read_from(path).map_err(|e| match e {
        K::ReadConfig(io, _) => KubeconfigError::Read {
            path: path.to_path_buf(),
            reason: io.to_string(),
        },
        K::Parse(parse) => KubeconfigError::Parse {
            path: path.to_path_buf(),
            // serde-saphyr starts with "error: " and adds a source snippet; keep both, minus
            // the redundant prefix.
            reason: parse
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
                .to_string(),
        },
        other => KubeconfigError::Merge {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_and_a_dangling_current_context_are_noted() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let empty = dir.path().join("empty");
        let real = dir.path().join("real");
        std::fs::write(&empty, "# only a comment\n").unwrap();
        std::fs::write(
            &real,
            "current-context: gone\nclusters:\n- name: k\n  cluster: {server: 'https://k:6443'}\ncontexts:\n- name: c\n  context: {cluster: k}\n",
        )
        .unwrap();
        let loaded =
            LoadedKubeconfig::from_paths(&[missing.clone(), empty.clone(), real.clone()]).unwrap();
        assert_eq!(
            loaded.notes(),
            vec![
                KubeconfigNote::Missing(missing),
                KubeconfigNote::Empty(empty),
                KubeconfigNote::UnknownCurrentContext {
                    name: "gone".into(),
                    path: real,
                },
            ]
        );
        assert_eq!(loaded.contexts().len(), 1);
    }

    #[test]
    fn a_sound_kubeconfig_has_no_notes() {
        let loaded = LoadedKubeconfig::from_yaml(
            "current-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://k:6443'}\ncontexts:\n- name: c\n  context: {cluster: k}\n",
            Path::new("/x/config"),
        )
        .unwrap();
        assert!(loaded.notes().is_empty(), "{:?}", loaded.notes());
    }
}
