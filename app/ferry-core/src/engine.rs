//! The one handle the GUI, the CLI and the control socket drive: start, stop, restart and
//! remove tunnels, read their snapshots, and subscribe to changes.
//!
//! [`Engine`] is a cheap-to-clone handle. Its command methods never block and never need an
//! async context: they put a command on a queue that the engine task (running on the tokio
//! runtime given at construction) applies in order. That lets egui call them from its UI thread
//! inside a frame. Reading is just as cheap: [`Engine::list`] clones the latest published
//! snapshot, and [`Engine::snapshots`] / [`Engine::events`] hand out tokio `watch` and
//! `broadcast` receivers. A GUI that does not poll registers [`EngineOptions::on_change`] (for
//! egui: `ctx.request_repaint()`), called after each new snapshot is published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::errors::ClusterError;
use crate::spec::TunnelSpec;
use crate::tunnel::clock::ClockWatch;
use crate::tunnel::feed::{FeedSettings, Feeds};
use crate::tunnel::stats::{EventSink, TunnelCell};
use crate::tunnel::supervisor;
pub use crate::tunnel::{
    EventKind, ForwardedPort, TunnelEvent, TunnelId, TunnelSnapshot, TunnelState,
};

/// A kube client for one context, with the server URL used in messages ("cannot reach
/// https://… ").
#[derive(Clone)]
pub struct ContextClient {
    pub client: kube::Client,
    pub url: String,
}

/// Where the engine gets clients. The kubeconfig-backed client pool implements it; tests and
/// `ferry --demo` can hand in fixed clients. Called once per tunnel (re)start; implementations
/// should cache.
pub trait ClientSource: Send + Sync + 'static {
    /// The client for `context`, or why there is none (unknown context, bad kubeconfig,
    /// missing credential plugin…). Transient errors ([`ClusterError::is_transient`]) are
    /// retried with backoff; others fail the tunnel.
    fn client(&self, context: &str) -> BoxFuture<'_, Result<ContextClient, ClusterError>>;

    /// Ticks when the clients' configuration changed (a re-read kubeconfig), so watches
    /// waiting out a backoff retry at once. `None`: it never changes.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// A [`ClientSource`] over a fixed set of clients, e.g. one per context built by the caller.
#[derive(Clone, Default)]
pub struct FixedClients {
    clients: BTreeMap<String, ContextClient>,
}

impl FixedClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) the client of `context`.
    pub fn with(
        mut self,
        context: impl Into<String>,
        client: kube::Client,
        url: impl Into<String>,
    ) -> Self {
        self.clients.insert(
            context.into(),
            ContextClient {
                client,
                url: url.into(),
            },
        );
        self
    }
}

impl ClientSource for FixedClients {
    fn client(&self, context: &str) -> BoxFuture<'_, Result<ContextClient, ClusterError>> {
        let found =
            self.clients
                .get(context)
                .cloned()
                .ok_or_else(|| ClusterError::UnknownContext {
                    name: context.to_string(),
                    known: self.clients.keys().cloned().collect(),
                });
        Box::pin(async move { found })
    }
}

impl ClientSource for crate::clients::ClientPool {
    fn client(&self, context: &str) -> BoxFuture<'_, Result<ContextClient, ClusterError>> {
        let context = context.to_string();
        Box::pin(async move {
            let client = crate::clients::ClientPool::client(self, &context).await?;
            Ok(ContextClient {
                client,
                url: self.server_url(&context),
            })
        })
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(crate::clients::ClientPool::changes(self))
    }
}

/// Where a tunnel came from, carried in its snapshot so no client has to guess which profile a
/// tunnel belongs to by comparing specs (two profiles may hold the same spec).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Started by hand (`ferry forward`, the window's forward dialog).
    #[default]
    AdHoc,
    /// Started from the saved profile of this name.
    Profile(String),
}

impl Origin {
    /// The profile's name, if the tunnel came from one.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Origin::Profile(name) => Some(name),
            Origin::AdHoc => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::AdHoc => f.write_str("ad hoc"),
            Origin::Profile(name) => write!(f, "profile {name}"),
        }
    }
}

/// Called (from the engine's runtime threads) after every published snapshot.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// How the engine behaves. `Default` gives the documented production values.
#[derive(Clone)]
pub struct EngineOptions {
    /// How long a new local connection waits for a Ready pod before it is closed (10 s).
    pub ready_wait: Duration,
    /// How long opening one port-forward stream may take before the attempt counts as failed
    /// and the API server as unreachable (5 s).
    pub connect_timeout: Duration,
    /// Retry delays after a broken watch: first and cap (0.2 s … 30 s).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A namespace watch that delivers nothing for this long is re-listed, so an idle tunnel
    /// notices a silently stalled API server (330 s: just over kube's 290 s watch renewal).
    pub quiet_relist: Duration,
    /// Events kept per tunnel in its snapshot (64).
    pub event_log_len: usize,
    /// How often the wall clock is compared with the monotonic clock to detect sleep/wake (2 s).
    pub clock_check: Duration,
    /// Minimum time between two published snapshots, so a busy transfer does not repaint the
    /// GUI thousands of times a second (50 ms).
    pub publish_interval: Duration,
    /// While connections are open, snapshots are refreshed this often so byte counters move (1 s).
    pub busy_refresh: Duration,
    /// Woken after each published snapshot (egui: `request_repaint`).
    pub on_change: Option<OnChange>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            ready_wait: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            quiet_relist: Duration::from_secs(330),
            event_log_len: 64,
            clock_check: Duration::from_secs(2),
            publish_interval: Duration::from_millis(50),
            busy_refresh: Duration::from_secs(1),
            on_change: None,
        }
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("ready_wait", &self.ready_wait)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("on_change", &self.on_change.is_some())
            .finish_non_exhaustive()
    }
}

/// All tunnels' snapshots, ordered by id. Shared, so cloning a receiver's value is cheap.
pub type Snapshots = Arc<Vec<TunnelSnapshot>>;

enum Command {
    Start(TunnelId, Box<TunnelSpec>, Origin),
    Stop(TunnelId),
    Restart(TunnelId),
    Remove(TunnelId),
    Update(TunnelId, Box<TunnelSpec>),
    ClockJumped(i64),
    Shutdown(tokio::sync::oneshot::Sender<()>),
}

/// The handle to Ferry's tunnel engine. Clone it freely; all clones drive the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Handle>,
}

struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    /// The shared watches, reachable from the handle so the catalog (the window's lists) uses
    /// the same watches, clock and backoff as the tunnels.
    feeds: Arc<Feeds>,
    snapshots: watch::Receiver<Snapshots>,
    events: broadcast::Sender<TunnelEvent>,
    next_id: AtomicU64,
}

impl Engine {
    /// Start the engine task on `runtime`. Clients come from `clients`, per context.
    ///
    /// The engine stops when [`Engine::shutdown`] is called or every handle is dropped; either
    /// way all listeners are closed.
    pub fn new(
        runtime: &tokio::runtime::Handle,
        clients: Arc<dyn ClientSource>,
        options: EngineOptions,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let (snap_tx, snapshots) = watch::channel(Snapshots::default());
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            dirty: Notify::new(),
            cells: std::sync::Mutex::new(Vec::new()),
            events: events.clone(),
        });
        let clock = ClockWatch::new();
        let feeds = Arc::new(Feeds::new(
            FeedSettings {
                backoff_initial: options.backoff_initial,
                backoff_max: options.backoff_max,
                list_timeout: options.connect_timeout * 2,
                quiet_relist: options.quiet_relist,
                clock: clock.subscribe(),
                kubeconfig: clients.changes(),
            },
            clients.clone(),
            runtime.clone(),
        ));
        let task = EngineTask {
            clients,
            options: Arc::new(options),
            shared,
            tunnels: BTreeMap::new(),
            feeds: feeds.clone(),
            clock,
        };
        runtime.spawn(task.run(rx, snap_tx));
        Self {
            inner: Arc::new(Handle {
                commands,
                feeds,
                snapshots,
                events,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    fn send(&self, command: Command) {
        // The engine task only ends on shutdown; after that commands have nothing to act on.
        let _ = self.inner.commands.send(command);
    }

    /// Start a tunnel. Returns at once; the tunnel shows up in [`Engine::list`] as `Starting`
    /// within moments and reports its progress through snapshots and events.
    pub fn start(&self, spec: TunnelSpec) -> TunnelId {
        self.start_from(spec, Origin::AdHoc)
    }

    /// [`Engine::start`], recording where the tunnel came from (shown in its snapshot).
    pub fn start_from(&self, spec: TunnelSpec, origin: Origin) -> TunnelId {
        let id = TunnelId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        self.send(Command::Start(id, Box::new(spec), origin));
        id
    }

    /// Stop a tunnel: close its listeners and connections. It stays listed as `Stopped` and can
    /// be restarted.
    pub fn stop(&self, id: TunnelId) {
        self.send(Command::Stop(id));
    }

    /// Stop (if running) and start again with the same spec, counters kept. This is how a
    /// person retries a `Failed` tunnel after fixing the cause.
    pub fn restart(&self, id: TunnelId) {
        self.send(Command::Restart(id));
    }

    /// Stop a tunnel and forget it.
    pub fn remove(&self, id: TunnelId) {
        self.send(Command::Remove(id));
    }

    /// Replace a tunnel's spec and restart it (used when a person edits a tunnel).
    pub fn update(&self, id: TunnelId, spec: TunnelSpec) {
        self.send(Command::Update(id, Box::new(spec)));
    }

    /// Tell the engine the machine just woke up (or its clock was changed): every watch is
    /// re-established at once. The engine detects sleep/wake by itself within a couple of
    /// seconds; call this when the OS reports a resume, to react immediately.
    pub fn clock_jumped(&self, seconds: i64) {
        self.send(Command::ClockJumped(seconds));
    }

    /// The engine's shared watches (one per kind, context and namespace), for other views of
    /// the cluster — the [catalog](crate::catalog) — to watch through the same connections,
    /// clock and backoff as the tunnels. Holding it does not keep the engine running.
    pub fn feeds(&self) -> &Arc<Feeds> {
        &self.inner.feeds
    }

    /// The latest snapshot of every tunnel, ordered by id.
    pub fn list(&self) -> Vec<TunnelSnapshot> {
        self.inner.snapshots.borrow().as_ref().clone()
    }

    /// The latest snapshot of one tunnel.
    pub fn get(&self, id: TunnelId) -> Option<TunnelSnapshot> {
        self.inner
            .snapshots
            .borrow()
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    /// A receiver of every published snapshot list (for async consumers).
    pub fn snapshots(&self) -> watch::Receiver<Snapshots> {
        self.inner.snapshots.clone()
    }

    /// A receiver of every event of every tunnel from now on. A receiver that falls more than
    /// 1024 events behind gets `Lagged` and continues with newer events.
    pub fn events(&self) -> broadcast::Receiver<TunnelEvent> {
        self.inner.events.subscribe()
    }

    /// Wait until tunnel `id`'s snapshot satisfies `ready`, up to `timeout`. Returns the
    /// matching snapshot, or the last one seen (or `None` if the tunnel never appeared) as the
    /// error. For the CLI, `ferry up` and tests.
    pub async fn wait_for(
        &self,
        id: TunnelId,
        timeout: Duration,
        mut ready: impl FnMut(&TunnelSnapshot) -> bool,
    ) -> Result<TunnelSnapshot, Option<TunnelSnapshot>> {
        let mut rx = self.snapshots();
        let mut last = None;
        let wait = async {
            loop {
                let found = rx.borrow_and_update().iter().find(|s| s.id == id).cloned();
                if let Some(snap) = found {
                    if ready(&snap) {
                        return Ok(snap);
                    }
                    last = Some(snap);
                }
                if rx.changed().await.is_err() {
                    return Err(());
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(snap)) => Ok(snap),
            _ => Err(last.or_else(|| self.get(id))),
        }
    }

    /// Stop every tunnel, close every listener, and end the engine task. Waits until done.
    pub async fn shutdown(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Shutdown(tx));
        let _ = rx.await;
    }
}

/// What tunnels share with the engine task: the "something changed" signal and the event bus.
struct Shared {
    dirty: Notify,
    /// The tunnel records to publish, replaced by the engine task on every command.
    cells: std::sync::Mutex<Vec<Arc<TunnelCell>>>,
    events: broadcast::Sender<TunnelEvent>,
}

impl EventSink for Shared {
    fn changed(&self) {
        self.dirty.notify_one();
    }

    fn event(&self, event: TunnelEvent) {
        tracing::debug!(tunnel = %event.tunnel, "{}", event.kind);
        let _ = self.events.send(event);
    }
}

struct Running {
    cell: Arc<TunnelCell>,
    cancel: Option<CancellationToken>,
    done: Option<tokio::task::JoinHandle<()>>,
}

struct EngineTask {
    clients: Arc<dyn ClientSource>,
    options: Arc<EngineOptions>,
    shared: Arc<Shared>,
    tunnels: BTreeMap<TunnelId, Running>,
    /// Shared watches (also reachable from the handles, for the catalog).
    feeds: Arc<Feeds>,
    clock: ClockWatch,
}

impl EngineTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        snapshots: watch::Sender<Snapshots>,
    ) {
        // The final publish after shutdown must happen before the reply; keep a sender.
        let final_sender = snapshots.clone();
        let shared = self.shared.clone();
        let options = self.options.clone();
        let clock_task = self.clock.spawn(options.clock_check);
        let publisher = tokio::spawn(Publisher.run(shared, options, snapshots));
        let mut shutdown_reply = None;
        while let Some(command) = commands.recv().await {
            match command {
                Command::Start(id, spec, origin) => self.start(id, *spec, origin, None),
                Command::Stop(id) => self.stop(id).await,
                Command::Restart(id) => self.restart(id, None).await,
                Command::Update(id, spec) => self.restart(id, Some(*spec)).await,
                Command::Remove(id) => {
                    self.stop(id).await;
                    self.tunnels.remove(&id);
                }
                Command::ClockJumped(seconds) => self.clock.report(seconds),
                Command::Shutdown(reply) => {
                    shutdown_reply = Some(reply);
                    break;
                }
            }
            self.publish_cells();
        }
        let ids: Vec<_> = self.tunnels.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
        clock_task.abort();
        publisher.abort();
        let list = self.tunnels.values().map(|r| r.cell.snapshot()).collect();
        final_sender.send_replace(Arc::new(list));
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    /// Hand the publisher the current set of tunnels.
    fn publish_cells(&self) {
        let cells: Vec<Arc<TunnelCell>> = self.tunnels.values().map(|r| r.cell.clone()).collect();
        *self.shared.cells.lock().unwrap_or_else(|p| p.into_inner()) = cells;
        self.shared.dirty.notify_one();
    }

    fn start(
        &mut self,
        id: TunnelId,
        spec: TunnelSpec,
        origin: Origin,
        keep: Option<Arc<TunnelCell>>,
    ) {
        let cell = keep.unwrap_or_else(|| {
            let sink: Arc<dyn EventSink> = self.shared.clone();
            let cell = TunnelCell::new(id, spec, sink, self.options.event_log_len);
            Arc::new(cell.with_origin(origin))
        });
        cell.update_facts(|f| {
            *f = crate::tunnel::state::Facts {
                api_reachable: true,
                ..Default::default()
            }
        });
        let cancel = CancellationToken::new();
        let run = supervisor::Supervisor {
            feeds: self.feeds.clone(),
            cell: cell.clone(),
            clients: self.clients.clone(),
            options: self.options.clone(),
            cancel: cancel.clone(),
            clock: self.clock.subscribe(),
        };
        let done = tokio::spawn(run.run());
        self.tunnels.insert(
            id,
            Running {
                cell,
                cancel: Some(cancel),
                done: Some(done),
            },
        );
    }

    async fn stop(&mut self, id: TunnelId) {
        let Some(running) = self.tunnels.get_mut(&id) else {
            return;
        };
        if let Some(cancel) = running.cancel.take() {
            cancel.cancel();
        }
        if let Some(done) = running.done.take() {
            let _ = done.await;
        }
        running.cell.update_facts(|f| f.stopped = true);
    }

    async fn restart(&mut self, id: TunnelId, spec: Option<TunnelSpec>) {
        let Some(running) = self.tunnels.get(&id) else {
            return;
        };
        let old = running.cell.clone();
        self.stop(id).await;
        match spec {
            Some(spec) => {
                // A new spec is a new tunnel record under the same id (and origin).
                self.tunnels.remove(&id);
                self.start(id, spec, old.origin.clone(), None);
            }
            None => {
                let spec = old.spec.clone();
                let origin = old.origin.clone();
                self.start(id, spec, origin, Some(old));
            }
        }
    }
}

/// Turns "something changed" signals into published snapshots, at most one per
/// `publish_interval`, plus a slow refresh while connections are open.
struct Publisher;

impl Publisher {
    async fn run(
        self,
        shared: Arc<Shared>,
        options: Arc<EngineOptions>,
        sender: watch::Sender<Snapshots>,
    ) {
        let mut busy = false;
        loop {
            if busy {
                let _ = tokio::time::timeout(options.busy_refresh, shared.dirty.notified()).await;
            } else {
                shared.dirty.notified().await;
            }
            let cells = shared
                .cells
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let list: Vec<TunnelSnapshot> = cells.iter().map(|c| c.snapshot()).collect();
            busy = list.iter().any(|s| s.active_connections > 0);
            sender.send_replace(Arc::new(list));
            if let Some(on_change) = &options.on_change {
                on_change();
            }
            tokio::time::sleep(options.publish_interval).await;
        }
    }
}
