//! Building an instance from what is on disk: the kubeconfig (as kubectl finds it, or given
//! files), the profile store, and the clusters added in Ferry, all put into the instance's one
//! [`ClientPool`]. `ferry`, `ferry daemon` and the UI tests all start their instance here, so
//! they see the same contexts and start the same autostart profiles.

use std::path::PathBuf;
use std::sync::Arc;

use super::api::{Request, Response};
use super::{Flavor, Instance, InstanceParts, OpenStore};
use crate::clients::ClientPool;
use crate::engine::EngineOptions;
use crate::profiles::{InAppClusters, ProfileStore};

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeconfigChoice {
    /// What kubectl would read: `$KUBECONFIG`, else `~/.kube/config`.
    Env,
    /// These files (tests).
    Paths(Vec<PathBuf>),
    /// None at all: only in-app clusters (the demo adds its own).
    Nothing,
}

/// What to build.
pub struct Setup {
    pub kubeconfig: KubeconfigChoice,
    /// The profile store's folder; `None`: the user's config folder (or `$FERRY_CONFIG_DIR`).
    pub profiles_dir: Option<PathBuf>,
    pub flavor: Flavor,
    pub log_file: Option<PathBuf>,
    pub engine: EngineOptions,
    /// Start the profiles marked autostart once the instance is up.
    pub autostart: bool,
}

/// What became of the kubeconfig, for the window's welcome screen and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigState {
    /// No file exists, or none defines a context.
    Missing {
        looked_at: String,
    },
    /// A file could not be read or parsed.
    Broken {
        path: String,
        reason: String,
    },
    Loaded {
        path: String,
    },
    /// [`KubeconfigChoice::Nothing`].
    NotUsed,
}

/// A built instance and what was found on the way.
pub struct Assembled {
    pub instance: Instance,
    pub kubeconfig: KubeconfigState,
    /// Sentences for the user (unusable in-app clusters, an unreadable profile file,
    /// autostart problems). Never a secret.
    pub warnings: Vec<String>,
}

/// Builds the instance on the current tokio runtime. Never fails: what could not be loaded is
/// reported in [`Assembled::kubeconfig`] and [`Assembled::warnings`], and the instance runs
/// with what could.
pub async fn assemble(setup: Setup) -> Assembled {
    let mut warnings = Vec::new();
    let (pool, kubeconfig) = match &setup.kubeconfig {
        KubeconfigChoice::Env => open_kubeconfig(crate::kubeconfig::paths_from_env()),
        KubeconfigChoice::Paths(paths) => open_kubeconfig(paths.clone()),
        KubeconfigChoice::Nothing => (ClientPool::empty(), KubeconfigState::NotUsed),
    };
    let open_store = store_opener(setup.profiles_dir.clone());
    let read = {
        let open_store = open_store.clone();
        tokio::task::spawn_blocking(move || {
            open_store().map(|store| {
                let in_app = InAppClusters::read(&store);
                let autostart = store.profiles().iter().any(|p| p.autostart);
                (in_app, autostart)
            })
        })
        .await
    };
    let mut any_autostart = false;
    match read {
        Ok(Ok((in_app, autostart))) => {
            any_autostart = autostart;
            warnings.extend(in_app.install(&pool).await);
        }
        Ok(Err(e)) => warnings.push(format!("Profiles are unavailable: {e}")),
        Err(e) => warnings.push(format!("Profiles are unavailable: {e}")),
    }
    let instance = Instance::new(
        &tokio::runtime::Handle::current(),
        InstanceParts {
            clients: pool,
            engine: setup.engine,
            open_store,
            flavor: setup.flavor,
            log_file: setup.log_file,
        },
    );
    if setup.autostart
        && any_autostart
        && let Response::Error(e) = instance.handle(Request::Up { profiles: vec![] }).await
    {
        warnings.push(format!("Autostart: {e}"));
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Assembled {
        instance,
        kubeconfig,
        warnings,
    }
}

/// Opens the store in `dir`, or the user's; re-run for every request that reads profiles.
pub fn store_opener(dir: Option<PathBuf>) -> OpenStore {
    Arc::new(move || {
        match &dir {
            Some(dir) => ProfileStore::open(dir, Arc::new(crate::secrets::OsKeyring)),
            None => ProfileStore::open_default(),
        }
        .map_err(|e| e.to_string())
    })
}

/// The kubeconfig's pool, or an empty one with the reason it is empty.
fn open_kubeconfig(paths: Vec<PathBuf>) -> (ClientPool, KubeconfigState) {
    let shown = display_paths(&paths);
    if paths.iter().all(|p| !p.exists()) {
        return (
            ClientPool::from_paths(&paths).unwrap_or_else(|_| ClientPool::empty()),
            KubeconfigState::Missing { looked_at: shown },
        );
    }
    match ClientPool::from_paths(&paths) {
        Err(e) => (
            ClientPool::empty(),
            KubeconfigState::Broken {
                path: shown,
                reason: e.to_string(),
            },
        ),
        Ok(pool) if pool.contexts().is_empty() => {
            (pool, KubeconfigState::Missing { looked_at: shown })
        }
        Ok(pool) => (pool, KubeconfigState::Loaded { path: shown }),
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "~/.kube/config (no home directory is known)".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
