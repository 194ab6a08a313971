//! What a profile file holds, as plain serde data: saved tunnel sets ("profiles") and clusters
//! added inside Ferry. Every struct keeps the fields it does not know in `extra`, so a file
//! written by a newer Ferry survives being edited by this one.
//!
//! The file (`profiles.toml`) is meant to be read and edited by people:
//!
//! ```toml
//! version = 1
//!
//! [[profile]]
//! name = "staging backend"
//! autostart = true
//! note = "what I forward every morning"
//!
//! [[profile.tunnel]]
//! alias = "api"
//! context = "kind-staging"
//! namespace = "backend"
//! target = "svc/api"            # pod/NAME, svc/NAME, deploy/NAME or a selector (app=web)
//! ports = ["8080:80", ":http"]  # as kubectl takes them
//! bind = ["127.0.0.1"]          # optional; default loopback
//! spread = "round-robin"        # optional: single, round-robin, client-affinity, follow-service
//!
//! [[cluster]]
//! name = "lab"
//! server = "https://10.0.0.1:6443"
//! ca_data = "LS0tLS1CRUdJTi…"   # base64 PEM, as in kubeconfig
//! token = "keyring:cluster/lab/5f1c…"  # a reference; the token is in the OS keyring
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

use crate::spec::TunnelSpec;

/// The file format version this Ferry writes. Older files are migrated on load (see
/// `migrate.rs`); newer files are read but never written.
pub const CURRENT_VERSION: u32 = 1;

/// A named set of tunnels that a person starts together ("staging backend").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique within a file; what `ferry up NAME` and the GUI list show.
    pub name: String,
    /// Start this profile when Ferry starts (and on `ferry up` without names).
    #[serde(default, skip_serializing_if = "is_false")]
    pub autostart: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Serialised as `[[profile.tunnel]]` tables, one per tunnel.
    #[serde(default, rename = "tunnel", skip_serializing_if = "Vec::is_empty")]
    pub tunnels: Vec<SavedTunnel>,
    /// Fields this version does not know, kept for the round trip.
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl Profile {
    /// A profile from tunnel specs (e.g. the GUI's "save running tunnels as profile").
    pub fn new(name: impl Into<String>, tunnels: impl IntoIterator<Item = TunnelSpec>) -> Self {
        Profile {
            name: name.into(),
            autostart: false,
            note: None,
            tunnels: tunnels.into_iter().map(SavedTunnel::from).collect(),
            extra: toml::Table::new(),
        }
    }

    /// The tunnel specs, ready to hand to the engine.
    pub fn specs(&self) -> impl Iterator<Item = &TunnelSpec> {
        self.tunnels.iter().map(|t| &t.spec)
    }
}

/// One tunnel of a profile: the spec the engine runs, plus fields this version does not know.
/// Dereferences to the [`TunnelSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedTunnel {
    #[serde(flatten)]
    pub spec: TunnelSpec,
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl From<TunnelSpec> for SavedTunnel {
    fn from(spec: TunnelSpec) -> Self {
        SavedTunnel {
            spec,
            extra: toml::Table::new(),
        }
    }
}

impl Deref for SavedTunnel {
    type Target = TunnelSpec;
    fn deref(&self) -> &TunnelSpec {
        &self.spec
    }
}

impl DerefMut for SavedTunnel {
    fn deref_mut(&mut self) -> &mut TunnelSpec {
        &mut self.spec
    }
}

/// A cluster added inside Ferry, for people without a kubeconfig entry for it. Tunnels refer to
/// it by `name` in their `context` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// The API server URL, e.g. `https://10.0.0.1:6443`.
    pub server: String,
    /// The CA bundle, base64 of the PEM as in kubeconfig's `certificate-authority-data`.
    /// `None` means the system's trust roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_data: Option<String>,
    /// Where the bearer token is kept in the OS keyring. The token itself is never in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl Cluster {
    /// A cluster with no CA (system roots) and no token yet.
    pub fn new(name: impl Into<String>, server: impl Into<String>) -> Self {
        Cluster {
            name: name.into(),
            server: server.into(),
            ca_data: None,
            token: None,
            note: None,
            extra: toml::Table::new(),
        }
    }
}

/// A reference to a secret in the OS keyring, written in files as `keyring:KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretRef {
    /// The keyring account name (the "username" attribute with the Secret Service).
    pub key: String,
}

const SECRET_PREFIX: &str = "keyring:";

impl SecretRef {
    /// A fresh reference for a cluster's token. A random suffix keeps two config directories
    /// (or a removed and re-added cluster) from sharing a keyring entry.
    pub fn new_for_cluster(cluster: &str) -> Self {
        let suffix: u64 = rand::random();
        SecretRef {
            key: format!("cluster/{cluster}/{suffix:016x}"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", self.key)
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.strip_prefix(SECRET_PREFIX) {
            Some(key) if !key.is_empty() => Ok(SecretRef {
                key: key.to_string(),
            }),
            _ => Err(format!(
                "\"{}\" is not a keyring reference: tokens are kept in the OS keyring and the \
                 file holds only \"keyring:KEY\"; remove the line and add the token again in Ferry",
                if text.len() > 12 {
                    "(hidden)"
                } else {
                    text.as_str()
                }
            )),
        }
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

/// A whole profile file: its format version, profiles and clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub version: u32,
    #[serde(default, rename = "profile", skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<Profile>,
    #[serde(default, rename = "cluster", skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<Cluster>,
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl Default for Document {
    fn default() -> Self {
        Document {
            version: CURRENT_VERSION,
            profiles: Vec::new(),
            clusters: Vec::new(),
            extra: toml::Table::new(),
        }
    }
}

impl Document {
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The TOML text of this document, as written to disk.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
