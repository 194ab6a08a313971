//! The instance: the one process per user that owns the engine, the profiles and the kube
//! clients, and serves its clients through one typed API ([`api`]). `ferry daemon` runs one;
//! `ferry` runs one with its window open; the window is a view on it that may close and open
//! again, and the CLI talks to it over the control socket.
//!
//! [`Instance`] is a cheap-to-clone handle. [`Instance::handle`] applies one [`Request`]; many
//! may run at once (each caller awaits only its own answer), so a slow request — waiting for a
//! tunnel to become Active, reading the profile file — never holds up a Stop.
//! [`server`] puts the same handle behind the control socket; [`client`] is the other end.

pub mod api;
pub mod assemble;
pub mod client;
pub mod exec_relay;
pub mod log_file;
pub mod paths;
pub mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use futures::future::BoxFuture;

use crate::clients::ClientPool;
use crate::engine::{Engine, EngineOptions, Origin};
use crate::exec::Terminals;
use crate::profiles::{Profile, ProfileStore};
use crate::tunnel::{TunnelId, TunnelSnapshot, TunnelState};
use api::{ApiError, ErrorKind, InstanceInfo, ProfileSummary, Request, Response, Status};

pub use paths::Flavor;

/// Opens the profile store when a request needs it. Re-opened on every request that reads
/// profiles, so `ferry profile add` in a terminal is seen by the running instance at once.
pub type OpenStore = Arc<dyn Fn() -> Result<ProfileStore, String> + Send + Sync>;

/// The window side of an instance, registered by the process that can show one; what
/// [`Request::ShowWindow`] and [`Request::HideWindow`] do. Each `Err` says why not.
pub trait WindowControl: Send + Sync + 'static {
    /// Opens the window, or raises it when it is open.
    fn show(&self) -> Result<(), String>;
    /// Closes the window; the instance and its tunnels keep running.
    fn hide(&self) -> Result<(), String>;
    fn is_open(&self) -> bool;
}

/// Something the instance keeps alive and stops last, after its tunnels (the demo cluster).
pub trait Owned: Send + 'static {
    /// Stops it; awaited (bounded) by [`Instance::shutdown`].
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// What an instance is made of.
pub struct InstanceParts {
    /// The one client source — the kubeconfig's contexts plus the clusters added in Ferry (see
    /// [`InAppClusters`](crate::profiles::InAppClusters)) — used by tunnels, the catalog, logs
    /// and exec alike.
    pub clients: ClientPool,
    pub engine: EngineOptions,
    pub open_store: OpenStore,
    pub flavor: Flavor,
    pub log_file: Option<std::path::PathBuf>,
}

/// The handle to the instance. Clone freely.
#[derive(Clone)]
pub struct Instance {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    clients: ClientPool,
    terminals: Terminals,
    owned: Mutex<Vec<Box<dyn Owned>>>,
    open_store: OpenStore,
    info: Mutex<InstanceInfo>,
    window: Mutex<Option<Arc<dyn WindowControl>>>,
    quit: CancellationToken,
}

impl Instance {
    /// Starts the engine on `runtime`. No socket yet: [`server::Server::bind`] adds one.
    pub fn new(runtime: &tokio::runtime::Handle, parts: InstanceParts) -> Self {
        let engine = Engine::new(runtime, Arc::new(parts.clients.clone()), parts.engine);
        let info = InstanceInfo {
            ferry_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            demo: parts.flavor == Flavor::Demo,
            has_window: false,
            window_open: false,
            started_at: jiff::Timestamp::now(),
            socket: Default::default(),
            log_file: parts.log_file,
        };
        Self {
            inner: Arc::new(Inner {
                engine,
                terminals: Terminals::new(runtime, parts.clients.clone()),
                clients: parts.clients,
                owned: Mutex::new(Vec::new()),
                open_store: parts.open_store,
                info: Mutex::new(info),
                window: Mutex::new(None),
                quit: CancellationToken::new(),
            }),
        }
    }

    /// The engine (for in-process views that read snapshots directly).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The instance's clients, one per context (the catalog, logs and exec use these too).
    pub fn clients(&self) -> &ClientPool {
        &self.inner.clients
    }

    /// The instance's interactive shells: they outlive a hidden window, like tunnels.
    pub fn terminals(&self) -> &Terminals {
        &self.inner.terminals
    }

    /// Keeps `thing` alive until [`Instance::shutdown`], which stops it after the tunnels.
    pub fn adopt(&self, thing: Box<dyn Owned>) {
        self.inner
            .owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thing);
    }

    /// Facts about this instance.
    pub fn info(&self) -> InstanceInfo {
        let mut info = self
            .inner
            .info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        info.window_open = self.window().is_some_and(|w| w.is_open());
        info
    }

    fn window(&self) -> Option<Arc<dyn WindowControl>> {
        self.inner
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_socket(&self, socket: std::path::PathBuf) {
        self.inner
            .info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .socket = socket;
    }

    /// Lets [`Request::ShowWindow`] and [`Request::HideWindow`] reach the window (the process
    /// that can show one registers this).
    pub fn set_window(&self, window: Option<Arc<dyn WindowControl>>) {
        self.inner
            .info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .has_window = window.is_some();
        *self.inner.window.lock().unwrap_or_else(|p| p.into_inner()) = window;
    }

    /// Cancelled when a client sends [`Request::Quit`] (or [`Instance::quit`] is called).
    pub fn quitting(&self) -> CancellationToken {
        self.inner.quit.clone()
    }

    /// Asks the instance to end; whoever runs it awaits [`Instance::quitting`].
    pub fn quit(&self) {
        self.inner.quit.cancel();
    }

    /// Closes every terminal, stops every tunnel and closes every listener, then what it [adopted](Self::adopt),
    /// waiting at most `limit` in all.
    pub async fn shutdown(&self, limit: Duration) {
        let owned: Vec<Box<dyn Owned>> =
            std::mem::take(&mut *self.inner.owned.lock().unwrap_or_else(|p| p.into_inner()));
        self.inner.terminals.close_all();
        let all = async {
            self.inner.engine.shutdown().await;
            for thing in owned {
                thing.shutdown().await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// The current status (what [`Request::Status`] answers).
    pub fn status(&self) -> Status {
        Status {
            instance: self.info(),
            tunnels: self.inner.engine.list(),
        }
    }

    /// Applies one request. Safe to call from many tasks at once.
    pub async fn handle(&self, request: Request) -> Response {
        match self.apply(request).await {
            Ok(response) => response,
            Err(error) => Response::Error(error),
        }
    }

    async fn apply(&self, request: Request) -> Result<Response, ApiError> {
        let engine = &self.inner.engine;
        match request {
            Request::Status => Ok(Response::Status(self.status())),
            Request::Up { profiles } => self.up(profiles).await,
            Request::Down { profiles, all } => self.down(profiles, all).await,
            Request::AddTunnel { spec, profile } => Ok(Response::TunnelAdded {
                id: engine.start_from(spec, profile.map_or(Origin::AdHoc, Origin::Profile)),
            }),
            Request::WaitTunnel { id, timeout_ms } => {
                // Waiting for something that does not exist (a typo) will not end by itself.
                let settled = |s: &TunnelSnapshot| {
                    matches!(s.state, TunnelState::Active | TunnelState::Failed)
                        || s.reason == Some(crate::tunnel::state::Reason::NotFound)
                };
                // A tunnel started a moment ago may not be published yet: wait for it too.
                let timeout = Duration::from_millis(timeout_ms.min(10 * 60 * 1000));
                match engine.wait_for(id, timeout, settled).await {
                    Ok(snap) | Err(Some(snap)) => Ok(Response::Tunnel(Box::new(snap))),
                    Err(None) => Err(unknown_tunnel(id)),
                }
            }
            Request::StopTunnels { ids } => self.each(ids, Engine::stop),
            Request::RestartTunnels { ids } => self.each(ids, Engine::restart),
            Request::RemoveTunnels { ids } => self.each(ids, Engine::remove),
            Request::ListProfiles => {
                let store = self.store().await?;
                let tunnels = engine.list();
                let profiles = store
                    .profiles()
                    .iter()
                    .map(|p| ProfileSummary {
                        name: p.name.clone(),
                        autostart: p.autostart,
                        tunnels: p.tunnels.len(),
                        running: tunnels
                            .iter()
                            .filter(|t| {
                                t.origin.profile() == Some(p.name.as_str()) && t.state.can_serve()
                            })
                            .count(),
                    })
                    .collect();
                Ok(Response::Profiles { profiles })
            }
            Request::ShowWindow | Request::HideWindow => {
                let Some(window) = self.window() else {
                    return Err(ApiError::new(
                        ErrorKind::Unsupported,
                        "this Ferry instance cannot show a window (it was started without a graphical session); use the command line, or stop it with `ferry quit` and start `ferry`",
                    ));
                };
                let done = if request == Request::ShowWindow {
                    window.show()
                } else {
                    window.hide()
                };
                done.map(|()| Response::Ok)
                    .map_err(|e| ApiError::new(ErrorKind::Failed, e))
            }
            // Subscriptions are a property of a connection; the server handles them.
            Request::Subscribe => Ok(Response::Ok),
            // So are exec sessions: their output needs a connection to go to.
            Request::ExecStart { .. } | Request::ExecInput { .. } => Err(ApiError::new(
                ErrorKind::Unsupported,
                "exec sessions run over a control connection; in process, use ferry_core::exec",
            )),
            Request::Quit => {
                self.quit();
                Ok(Response::Ok)
            }
        }
    }

    fn each(&self, ids: Vec<TunnelId>, act: fn(&Engine, TunnelId)) -> Result<Response, ApiError> {
        let engine = &self.inner.engine;
        let known = engine.list();
        if let Some(missing) = ids.iter().find(|id| !known.iter().any(|s| s.id == **id)) {
            return Err(unknown_tunnel(*missing));
        }
        for id in ids {
            act(engine, id);
        }
        Ok(Response::Ok)
    }

    /// Opens the profile store off the async threads (it reads a file and may ask the keyring).
    async fn store(&self) -> Result<ProfileStore, ApiError> {
        let open = self.inner.open_store.clone();
        tokio::task::spawn_blocking(move || open())
            .await
            .map_err(|e| ApiError::new(ErrorKind::Failed, e.to_string()))?
            .map_err(|e| ApiError::new(ErrorKind::Failed, e))
    }

    async fn up(&self, names: Vec<String>) -> Result<Response, ApiError> {
        let store = self.store().await?;
        let profiles = choose(&store, &names)?;
        let engine = &self.inner.engine;
        let existing = engine.list();
        let mut started = Vec::new();
        let mut already_running = Vec::new();
        for profile in &profiles {
            let origin = Origin::Profile(profile.name.clone());
            let mine: Vec<&TunnelSnapshot> =
                existing.iter().filter(|s| s.origin == origin).collect();
            for spec in profile.specs() {
                // Within one profile's own tunnels, the spec says which saved tunnel it is.
                match mine.iter().find(|s| &s.spec == spec) {
                    Some(s)
                        if s.state != TunnelState::Stopped && s.state != TunnelState::Failed =>
                    {
                        already_running.push(s.id)
                    }
                    Some(s) => {
                        engine.restart(s.id);
                        started.push(s.id);
                    }
                    None => started.push(engine.start_from(spec.clone(), origin.clone())),
                }
            }
        }
        Ok(Response::Started {
            started,
            already_running,
        })
    }

    async fn down(&self, names: Vec<String>, all: bool) -> Result<Response, ApiError> {
        let engine = &self.inner.engine;
        let tunnels = engine.list();
        let chosen: Vec<TunnelId> = if all {
            tunnels.iter().map(|s| s.id).collect()
        } else {
            if names.is_empty() {
                return Err(ApiError::new(
                    ErrorKind::BadRequest,
                    "name the profiles to stop, or ask for all tunnels",
                ));
            }
            let store = self.store().await.ok();
            for name in &names {
                let saved = store.as_ref().is_some_and(|s| s.profile(name).is_some());
                let running = tunnels.iter().any(|t| t.origin.profile() == Some(name));
                if !saved && !running {
                    return Err(unknown_profile(name, store.as_ref()));
                }
            }
            tunnels
                .iter()
                .filter(|t| {
                    t.origin
                        .profile()
                        .is_some_and(|p| names.iter().any(|n| n == p))
                })
                .map(|t| t.id)
                .collect()
        };
        let mut stopped = Vec::new();
        for id in chosen {
            if let Some(s) = tunnels.iter().find(|s| s.id == id)
                && s.state != TunnelState::Stopped
            {
                engine.stop(id);
                stopped.push(id);
            }
        }
        Ok(Response::Stopped { stopped })
    }
}

fn unknown_tunnel(id: TunnelId) -> ApiError {
    ApiError::new(
        ErrorKind::UnknownTunnel,
        format!("no tunnel {id} in this instance (see `ferry status`)"),
    )
}

fn unknown_profile(name: &str, store: Option<&ProfileStore>) -> ApiError {
    let known: Vec<&str> = store
        .map(|s| s.profiles().iter().map(|p| p.name.as_str()).collect())
        .unwrap_or_default();
    ApiError::new(
        ErrorKind::UnknownProfile,
        format!(
            "no profile named \"{name}\"; saved profiles: {} (see `ferry profile list`)",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// Raises this process's soft limit of open files to its hard limit, and returns the new soft
/// limit. Every tunnel listener and every forwarded connection is a file descriptor, and
/// desktop sessions often start programs with a soft limit of 1,024 (the hard limit is usually
/// far higher), which a profile of a few hundred tunnels would exhaust.
#[cfg(unix)]
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    #[allow(clippy::unnecessary_cast, reason = "rlim_t is not u64 on every unix")]
    Ok(limit.rlim_cur as u64)
}

/// Hands the allocator's free memory back to the operating system. Called when the window has
/// closed: its frames, textures and font atlas were freed, but glibc keeps freed heap pages in
/// its arenas unless asked, so the instance would go on looking as big as with its window.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The named profiles, or the autostart ones; an unknown name is an error listing known ones.
pub fn choose(store: &ProfileStore, names: &[String]) -> Result<Vec<Profile>, ApiError> {
    if names.is_empty() {
        let auto: Vec<Profile> = store
            .profiles()
            .iter()
            .filter(|p| p.autostart)
            .cloned()
            .collect();
        if auto.is_empty() {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "no profile is marked autostart: name the profiles to start (`ferry up NAME`), see `ferry profile list`",
            ));
        }
        return Ok(auto);
    }
    names
        .iter()
        .map(|name| {
            store
                .profile(name)
                .cloned()
                .ok_or_else(|| unknown_profile(name, Some(store)))
        })
        .collect()
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
        let raised = super::raise_open_files_limit().expect("getrlimit/setrlimit work");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed by pointer.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        #[allow(clippy::unnecessary_cast, reason = "rlim_t is not u64 on every unix")]
        let current = limit.rlim_cur as u64;
        assert_eq!(raised, current);
    }
}
