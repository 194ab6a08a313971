//! Secrets (bearer tokens of clusters added inside Ferry) live only in the OS keyring: Secret
//! Service on Linux, Keychain on macOS, Credential Manager on Windows. Files hold a
//! [`SecretRef`](crate::profiles::SecretRef) naming the keyring entry, never the secret.
//!
//! There is deliberately no plaintext fallback: when no keyring is reachable, saving a token
//! fails with [`SecretError::Unavailable`] and the caller tells the person why.

use std::collections::HashMap;
use std::sync::Mutex;

/// The keyring "service" attribute under which every Ferry secret is filed. With the Secret
/// Service, `secret-tool lookup service dev.ferry.Ferry username <key>` finds one.
pub const KEYRING_SERVICE: &str = "dev.ferry.Ferry";

/// Why a secret could not be stored, read or deleted. Messages never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no secret store is reachable ({reason}). Ferry keeps tokens only in the OS keyring \
         (on Linux a Secret Service such as gnome-keyring or KeePassXC, running and unlocked) \
         and will not write them to a file; start one and try again"
    )]
    Unavailable { reason: String },
    #[error("the OS keyring refused to {action} the secret {key}: {reason}")]
    Failed {
        action: &'static str,
        key: String,
        reason: String,
    },
}

/// A place secrets can be kept. The store talks to this trait so tests of the profile store can
/// run without a keyring daemon; the app always uses [`OsKeyring`].
pub trait SecretStore: Send + Sync {
    /// Checks that the store can be reached now, so a dialog can warn before the person types.
    fn check(&self) -> Result<(), SecretError>;
    /// Stores (or replaces) the secret under `key`.
    fn set(&self, key: &str, secret: &str) -> Result<(), SecretError>;
    /// Reads the secret under `key`; `Ok(None)` when there is none.
    fn get(&self, key: &str) -> Result<Option<String>, SecretError>;
    /// Deletes the secret under `key`; `Ok(false)` when there was none.
    fn delete(&self, key: &str) -> Result<bool, SecretError>;
}

/// The platform keyring through the `keyring` crate (v4, Secret Service over D-Bus on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyring;

impl OsKeyring {
    fn entry(&self, key: &str) -> Result<keyring::Entry, SecretError> {
        keyring::Entry::new(KEYRING_SERVICE, key).map_err(|e| classify("open", key, e))
    }
}

/// Errors that mean "there is no usable keyring" become `Unavailable`; the rest are failures.
fn classify(action: &'static str, key: &str, err: keyring::Error) -> SecretError {
    match err {
        keyring::Error::NoDefaultStore => SecretError::Unavailable {
            reason: match keyring::Entry::store_status() {
                Err(e) => e.to_string(),
                Ok(()) => "no default credential store".into(),
            },
        },
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            SecretError::Unavailable {
                reason: e.to_string(),
            }
        }
        other => SecretError::Failed {
            action,
            key: key.to_string(),
            reason: other.to_string(),
        },
    }
}

impl SecretStore for OsKeyring {
    fn check(&self) -> Result<(), SecretError> {
        // A lookup of a key that never exists proves the daemon answers and the collection is
        // readable; NoEntry is the healthy answer.
        match self.entry("ferry-availability-probe")?.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(classify("read", "ferry-availability-probe", e)),
        }
    }

    fn set(&self, key: &str, secret: &str) -> Result<(), SecretError> {
        self.entry(key)?
            .set_password(secret)
            .map_err(|e| classify("store", key, e))?;
        tracing::debug!(key, "stored a secret in the OS keyring");
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<String>, SecretError> {
        match self.entry(key)?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify("read", key, e)),
        }
    }

    fn delete(&self, key: &str) -> Result<bool, SecretError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) => {
                tracing::debug!(key, "deleted a secret from the OS keyring");
                Ok(true)
            }
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(classify("delete", key, e)),
        }
    }
}

/// Secrets held in memory only, for tests and demos. Never used to persist anything: when the
/// process ends they are gone, which is the point.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    entries: Mutex<HashMap<String, String>>,
    /// When set, every call fails as if no keyring were reachable (to test that path).
    pub unavailable: bool,
}

impl MemorySecrets {
    /// A memory store that behaves like a missing keyring daemon.
    pub fn unavailable() -> Self {
        Self {
            unavailable: true,
            ..Self::default()
        }
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, String>>, SecretError> {
        if self.unavailable {
            return Err(SecretError::Unavailable {
                reason: "the test store is switched off".into(),
            });
        }
        Ok(self.entries.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl SecretStore for MemorySecrets {
    fn check(&self) -> Result<(), SecretError> {
        self.entries().map(|_| ())
    }
    fn set(&self, key: &str, secret: &str) -> Result<(), SecretError> {
        self.entries()?.insert(key.to_string(), secret.to_string());
        Ok(())
    }
    fn get(&self, key: &str) -> Result<Option<String>, SecretError> {
        Ok(self.entries()?.get(key).cloned())
    }
    fn delete(&self, key: &str) -> Result<bool, SecretError> {
        Ok(self.entries()?.remove(key).is_some())
    }
}
