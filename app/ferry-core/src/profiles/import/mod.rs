//! Bringing tunnel sets in from elsewhere: Ferry files (a teammate's export), kftray JSON
//! exports, and pasted `kubectl port-forward …` command lines. Each importer maps what Ferry
//! supports and lists what it skipped and why, so nothing disappears without a word.

mod ferry;
mod kftray;
mod kubectl;

use std::fmt;

pub use ferry::import_ferry;
pub use kftray::import_kftray;
pub use kubectl::import_kubectl;

use super::document::Problem;
use super::model::Profile;

/// What an importer produced: profiles ready for
/// [`ProfileStore::import_profiles`](super::ProfileStore::import_profiles), and what it left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub profiles: Vec<Profile>,
    pub skipped: Vec<Skipped>,
}

/// One entry (or one field of an entry) that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Which entry: `entry 3 ("dns")`, `line 2`.
    pub entry: String,
    /// The field that was ignored; `None` when the whole entry was skipped.
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            None => write!(f, "{} skipped: {}", self.entry, self.reason),
            Some(field) => write!(f, "{}: `{field}` ignored: {}", self.entry, self.reason),
        }
    }
}

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a Ferry profile file: {0}")]
    Ferry(Problem),
    #[error("not a kftray export (a JSON list of configs): {0}")]
    KftrayJson(String),
    #[error("nothing to import: {0}")]
    Empty(String),
}

/// What an imported tunnel gets when its source does not say: the kubeconfig's current context
/// and namespace, as kubectl would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDefaults {
    pub context: String,
    pub namespace: String,
}

impl ImportDefaults {
    /// Reads the current context (and its namespace) from the kubeconfig (`$KUBECONFIG` or
    /// `~/.kube/config`); falls back to context "default", namespace "default".
    pub fn from_kubeconfig() -> Self {
        let fallback = ImportDefaults {
            context: "default".into(),
            namespace: "default".into(),
        };
        let Ok(config) = kube::config::Kubeconfig::read() else {
            return fallback;
        };
        let Some(current) = config.current_context.clone() else {
            return fallback;
        };
        let namespace = config
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .unwrap_or_else(|| "default".into());
        ImportDefaults {
            context: current,
            namespace,
        }
    }
}
