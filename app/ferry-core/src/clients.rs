//! One `kube::Client` per context, created on first use and shared by tunnels, exec sessions and
//! the catalog, so a context with an exec plugin signs in once and every feature reuses the same
//! connection pool.
//!
//! [`ClientPool`] is a cheap-clone handle (an `Arc` inside): clone it into every task that needs
//! a cluster. Creating a client does not contact the API server; connection problems show up on
//! the first request, and [`ClusterError::from_kube`] words them with the server URL.
//!
//! A kubeconfig changes under a running Ferry: a re-login, `aws eks update-kubeconfig` or a
//! certificate rotation writes a new CA or token into the same file. So the client a context
//! hands out *follows its kubeconfig*: each request goes to the client built from the files as
//! they are now. The files are checked once a second and re-read when they change, and a
//! server that refuses the credentials (401) or the certificate makes the next request re-read
//! them and build a new client — so watches and tunnels that hold a client recover by
//! themselves, without being restarted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::{OnceCell, watch};

use crate::errors::{ClusterError, error_chain};
use crate::exec_auth;
use crate::kubeconfig::{ContextInfo, KubeconfigError, LoadedKubeconfig};

/// How long to wait for a TCP/TLS connection to the API server before calling it unreachable.
/// Shorter than kube-rs's default so a dead cluster is reported (and retried) quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the kubeconfig files are checked for changes.
const FILE_CHECK: Duration = Duration::from_secs(1);
/// A context whose server refused its credentials or certificate rebuilds its client at most
/// this often (each rebuild may run a credential plugin).
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(2);

/// The clients of all contexts, created lazily. Clone freely: all clones share the same clients.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<Inner>,
}

struct Inner {
    /// The files this pool was loaded from (for [`ClientPool::reload`]).
    paths: Vec<PathBuf>,
    kubeconfig: RwLock<LoadedKubeconfig>,
    /// Clusters that are not in any kubeconfig file: the built-in demo cluster, tests.
    in_app: RwLock<Vec<(ContextInfo, kube::Client)>>,
    /// The clients built from the kubeconfig as it is now; emptied when it is re-read.
    clients: Mutex<HashMap<String, Arc<OnceCell<kube::Client>>>>,
    /// The clients handed out, one per context: they follow `clients` (see the module docs).
    following: Mutex<HashMap<String, kube::Client>>,
    /// Counts the times the kubeconfig was re-read, so retries waiting out a backoff can try
    /// again at once with the new credentials.
    changes: watch::Sender<u64>,
    /// Modification time and length of each file when it was last read.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
    /// When each context last rebuilt its client because the server refused it.
    refreshed: Mutex<HashMap<String, Instant>>,
    watching: AtomicBool,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("paths", &self.inner.paths)
            .finish_non_exhaustive()
    }
}

impl ClientPool {
    /// Loads the kubeconfig kubectl would use (`$KUBECONFIG`, else `~/.kube/config`). A missing
    /// default file gives an empty pool (no contexts), not an error; a malformed file is an
    /// error naming the file.
    pub fn from_env() -> Result<Self, KubeconfigError> {
        Self::from_paths(&crate::kubeconfig::paths_from_env())
    }

    /// Loads and merges the given kubeconfig files (first file wins per name), as if they were
    /// listed in `KUBECONFIG`.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Self, KubeconfigError> {
        let loaded = LoadedKubeconfig::from_paths(paths)?;
        Ok(Self::with_kubeconfig(paths.to_vec(), loaded))
    }

    /// A pool over an already loaded kubeconfig.
    pub fn with_kubeconfig(paths: Vec<PathBuf>, loaded: LoadedKubeconfig) -> Self {
        let stamps = Mutex::new(file_stamps(&paths));
        ClientPool {
            inner: Arc::new(Inner {
                paths,
                kubeconfig: RwLock::new(loaded),
                in_app: RwLock::new(Vec::new()),
                clients: Mutex::new(HashMap::new()),
                following: Mutex::new(HashMap::new()),
                changes: watch::Sender::new(0),
                stamps,
                refreshed: Mutex::new(HashMap::new()),
                watching: AtomicBool::new(false),
            }),
        }
    }

    /// A pool with no kubeconfig at all (only in-app clusters added with
    /// [`ClientPool::add_in_app`]).
    pub fn empty() -> Self {
        Self::with_kubeconfig(Vec::new(), LoadedKubeconfig::default())
    }

    /// Adds a cluster that lives inside the app (the `--demo` kubesim) under a context name.
    /// It shadows a kubeconfig context of the same name.
    pub fn add_in_app(&self, mut info: ContextInfo, client: kube::Client) {
        info.source = None;
        let mut in_app = write(&self.inner.in_app);
        in_app.retain(|(i, _)| i.name != info.name);
        lock(&self.inner.clients).remove(&info.name);
        in_app.push((info, client));
    }

    /// Re-reads the kubeconfig files (after the user edited them or logged in to a new cluster).
    /// Cached clients are dropped so new credentials and URLs take effect; running tasks keep
    /// the clients they already hold.
    pub fn reload(&self) -> Result<(), KubeconfigError> {
        let stamps = file_stamps(&self.inner.paths);
        let loaded = LoadedKubeconfig::from_paths(&self.inner.paths)?;
        *write(&self.inner.kubeconfig) = loaded;
        *lock(&self.inner.stamps) = stamps;
        lock(&self.inner.clients).clear();
        self.inner.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Ticks each time the kubeconfig has been re-read (see [`ClientPool::reload`]).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Missing or empty kubeconfig files and a dangling `current-context`, for warnings.
    pub fn kubeconfig_notes(&self) -> Vec<crate::kubeconfig::KubeconfigNote> {
        read(&self.inner.kubeconfig).notes()
    }

    /// All contexts, sorted by name: in-app clusters and kubeconfig contexts.
    pub fn contexts(&self) -> Vec<ContextInfo> {
        let mut out = read(&self.inner.kubeconfig).contexts();
        let in_app = read(&self.inner.in_app);
        out.retain(|c| !in_app.iter().any(|(i, _)| i.name == c.name));
        out.extend(in_app.iter().map(|(i, _)| i.clone()));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One context by name.
    pub fn context(&self, name: &str) -> Option<ContextInfo> {
        self.contexts().into_iter().find(|c| c.name == name)
    }

    /// The kubeconfig's `current-context` (what kubectl uses without `--context`).
    pub fn current_context(&self) -> Option<String> {
        read(&self.inner.kubeconfig)
            .current_context()
            .map(str::to_string)
    }

    /// The namespace to use in a context when none was chosen (the context's, else `default`).
    pub fn default_namespace(&self, context: &str) -> String {
        self.context(context)
            .map(|c| c.default_namespace().to_string())
            .unwrap_or_else(|| "default".to_string())
    }

    /// The API server URL of a context, for error messages (`"?"` when unknown).
    pub fn server_url(&self, context: &str) -> String {
        self.context(context)
            .and_then(|c| c.server)
            .unwrap_or_else(|| "?".to_string())
    }

    /// The shared client of a context, created on first use (this may run an exec credential
    /// plugin). Fails with [`ClusterError::UnknownContext`], [`ClusterError::BadContext`]
    /// (naming the kubeconfig file), or exec plugin errors. Does not contact the API server.
    ///
    /// The client follows the kubeconfig: later requests use new credentials, CA or URL once
    /// the files change (see the module docs).
    pub async fn client(&self, context: &str) -> Result<kube::Client, ClusterError> {
        if let Some((_, client)) = read(&self.inner.in_app)
            .iter()
            .find(|(i, _)| i.name == context)
        {
            return Ok(client.clone());
        }
        let current = self.current(context).await?;
        self.watch_files();
        let mut following = lock(&self.inner.following);
        let client = following.entry(context.to_string()).or_insert_with(|| {
            let service = Following {
                pool: Arc::downgrade(&self.inner),
                context: context.to_string(),
            };
            kube::Client::new(service, current.default_namespace())
        });
        Ok(client.clone())
    }

    /// The client built from the kubeconfig as it is now (built on first use).
    async fn current(&self, context: &str) -> Result<kube::Client, ClusterError> {
        let cell = lock(&self.inner.clients)
            .entry(context.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.build(context)).await.cloned()
    }

    /// The server refused what `context`'s client presented: build the context's client anew
    /// on its next request (running its credential plugin again), after re-reading the
    /// kubeconfig if the files changed. Other contexts keep their clients. At most once per
    /// [`REFRESH_AT_MOST_EVERY`].
    fn refresh(&self, context: &str) {
        let now = Instant::now();
        {
            let mut refreshed = lock(&self.inner.refreshed);
            if refreshed
                .get(context)
                .is_some_and(|at| now.duration_since(*at) < REFRESH_AT_MOST_EVERY)
            {
                return;
            }
            refreshed.insert(context.to_string(), now);
        }
        tracing::info!(
            context,
            "the API server refused the credentials or certificate; building a new client"
        );
        let files_changed = file_stamps(&self.inner.paths) != *lock(&self.inner.stamps);
        if files_changed && let Err(e) = self.reload() {
            tracing::warn!(context, error = %e, "the kubeconfig could not be re-read; keeping the last good one");
        }
        self.forget(context);
    }

    /// Starts the once-a-second check of the kubeconfig files (once per pool, inside a tokio
    /// runtime). A file that changed is re-read; one that does not parse (perhaps half
    /// written) leaves the last good configuration in place and is tried again next time.
    fn watch_files(&self) {
        if self.inner.paths.is_empty() || self.inner.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.watching.store(false, Ordering::SeqCst);
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut failed_for = None;
            loop {
                tokio::time::sleep(FILE_CHECK).await;
                let Some(inner) = inner.upgrade() else { return };
                let pool = ClientPool { inner };
                let now = file_stamps(&pool.inner.paths);
                if now == *lock(&pool.inner.stamps) || failed_for.as_ref() == Some(&now) {
                    continue;
                }
                match pool.reload() {
                    Ok(()) => {
                        failed_for = None;
                        tracing::info!("the kubeconfig changed; contexts use it from their next request");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the kubeconfig changed but could not be read; keeping the last good one");
                        failed_for = Some(now);
                    }
                }
            }
        });
    }

    /// Checks that a context works end to end: builds its client (running any exec plugin) and
    /// asks the API server for its core API versions (`GET /api`), which needs valid
    /// credentials but no RBAC grant. Errors name the URL, file, plugin or reason; a server
    /// that does not answer within `timeout` counts as unreachable.
    pub async fn probe(&self, context: &str, timeout: Duration) -> Result<(), ClusterError> {
        let url = self.server_url(context);
        let attempt = async {
            let client = self.client(context).await?;
            let access = crate::errors::Access::new("get", "/api (discovery)", None);
            client
                .list_core_api_versions()
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::from_kube(context, &url, &access, &e))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ClusterError::Unreachable {
                context: context.to_string(),
                url,
                reason: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Forgets the cached client of a context so the next [`ClientPool::client`] builds a new
    /// one (e.g. after its credentials expired for good).
    pub fn forget(&self, context: &str) {
        lock(&self.inner.clients).remove(context);
    }

    async fn build(&self, context: &str) -> Result<kube::Client, ClusterError> {
        let (merged, source) = {
            let loaded = read(&self.inner.kubeconfig);
            if !loaded.merged.contexts.iter().any(|c| c.name == context) {
                return Err(ClusterError::UnknownContext {
                    name: context.to_string(),
                    known: loaded.contexts().into_iter().map(|c| c.name).collect(),
                });
            }
            (
                loaded.merged.clone(),
                loaded.source_of(context).map(|p| p.display().to_string()),
            )
        };
        let mut config = config_for(context, merged, source.as_deref()).await?;
        if let Some(exec) = config.auth_info.exec.as_mut() {
            find_plugin(context, exec).await?;
        }
        let command = config
            .auth_info
            .exec
            .as_ref()
            .and_then(|e| e.command.clone());
        let ctx = context.to_string();
        // Building the client runs the exec plugin synchronously: keep it off the async workers.
        let built = tokio::task::spawn_blocking(move || crate::http_stack::client(config))
            .await
            .map_err(|e| other(context, &e))?;
        built.map_err(|e| match (e, command) {
            (kube::Error::Auth(auth), Some(command)) => ClusterError::ExecPluginFailed {
                context: ctx,
                command,
                reason: crate::exec_auth::describe_failure(&auth),
            },
            (e, _) => ClusterError::BadContext {
                context: ctx,
                reason: error_chain(&e),
            },
        })
    }
}

/// Points the exec config at the plugin binary: first the cheap search (process `PATH`, usual
/// places), then, only if that fails, the login shell's `PATH` as well.
async fn find_plugin(
    context: &str,
    exec: &mut kube::config::ExecConfig,
) -> Result<(), ClusterError> {
    let original = exec.clone();
    match exec_auth::prepare(context, exec, &exec_auth::quick_search_path()) {
        Err(ClusterError::ExecPluginNotFound { .. }) => {
            *exec = original;
            let dirs = tokio::task::spawn_blocking(exec_auth::search_path)
                .await
                .map_err(|e| other(context, &e))?;
            exec_auth::prepare(context, exec, dirs)
        }
        result => result,
    }
}

/// kube-rs's client config for one context of the merged kubeconfig.
async fn config_for(
    context: &str,
    merged: Kubeconfig,
    source: Option<&str>,
) -> Result<kube::Config, ClusterError> {
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        cluster: None,
        user: None,
    };
    let mut config = kube::Config::from_custom_kubeconfig(merged, &options)
        .await
        .map_err(|e| ClusterError::BadContext {
            context: context.to_string(),
            reason: match source {
                Some(file) => format!("{} (context defined in {file})", error_chain(&e)),
                None => error_chain(&e),
            },
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Ok(config)
}

fn other(context: &str, err: &dyn std::error::Error) -> ClusterError {
    ClusterError::Other {
        context: context.to_string(),
        reason: err.to_string(),
    }
}

/// Modification time and length of each file (`None` for one that cannot be read).
fn file_stamps(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// The service behind a context's handed-out client: each request goes to the client built
/// from the kubeconfig as it is now, and a refusal of the credentials or certificate makes the
/// next request build a new one.
#[derive(Clone)]
struct Following {
    pool: Weak<Inner>,
    context: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Request<kube::client::Body>> for Following {
    type Response = http::Response<kube::client::Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let inner = this
                .pool
                .upgrade()
                .ok_or_else(|| BoxError::from("Ferry's client pool was closed"))?;
            let pool = ClientPool { inner };
            let client = pool.current(&this.context).await?;
            let answer = client.send(request).await;
            let refused = match &answer {
                Ok(response) => response.status() == http::StatusCode::UNAUTHORIZED,
                Err(e) => certificate_refused(e),
            };
            if refused {
                pool.refresh(&this.context);
            }
            Ok(answer?)
        })
    }
}

/// Whether a request failed because the server's certificate is not the one the kubeconfig's
/// CA vouches for (rustls: "invalid peer certificate"), as after a certificate rotation.
fn certificate_refused(err: &kube::Error) -> bool {
    error_chain(err).contains("invalid peer certificate")
}

// Poisoned locks only mean another thread panicked mid-update; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
