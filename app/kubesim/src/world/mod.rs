//! Worlds: sets of ordinary Kubernetes manifests (multi-document YAML, as `kubectl apply -f`
//! takes them) that a kubesim cluster starts with. The built-in `demo` world ships in the repo.

use serde_json::Value;

/// Why a world could not be loaded: which file, which document, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("{0}")]
    Invalid(String),
}

/// The manifests of every cluster of a world.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// (cluster name, manifests) in the order the kubeconfig lists them; the first is the
    /// primary cluster.
    pub clusters: Vec<(String, Vec<Value>)>,
}
