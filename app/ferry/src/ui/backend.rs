//! The runtime thread's main task: owns the client pool, the engine, the catalog of the shown
//! context and (in demo mode) kubesim; applies [`Request`]s; and forwards their snapshots into
//! the UI's [`Model`] through [`bridge`](super::bridge). Nothing here runs on the UI thread.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::catalog::Catalog;
use ferry_core::clients::ClientPool;
use ferry_core::engine::{Engine, EngineOptions, TunnelId};
use ferry_core::spec::TunnelSpec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bridge;
use super::model::{ContextInfo, Model, SourceState};
use super::profile_ops::Profiles;
use super::runtime::{Notice, Publisher, Request, Source, Startup};
use super::theme::Tone;

/// Everything the runtime thread owns.
struct Backend {
    publisher: Publisher,
    pool: Option<ClientPool>,
    engine: Option<Engine>,
    catalog: Option<Catalog>,
    catalog_task: Option<JoinHandle<()>>,
    demo: Option<kubesim::Kubesim>,
    profiles: Profiles,
    tasks: Vec<JoinHandle<()>>,
}

/// Runs until the request channel closes (the window closed), then stops every tunnel.
pub async fn run(
    startup: Startup,
    mut requests: mpsc::UnboundedReceiver<Request>,
    publisher: Publisher,
) {
    let profiles = Profiles::open(startup.profiles_dir.clone(), publisher.clone());
    let mut backend = Backend {
        publisher,
        pool: None,
        engine: None,
        catalog: None,
        catalog_task: None,
        demo: None,
        profiles,
        tasks: Vec::new(),
    };
    backend.load(startup.source).await;
    while let Some(request) = requests.recv().await {
        backend.handle(request).await;
    }
    backend.shutdown().await;
}

impl Backend {
    /// Reads the kubeconfig (or starts the demo) and starts the engine on it.
    async fn load(&mut self, source: Source) {
        let loaded = match source {
            Source::Demo => return self.start_demo().await,
            Source::Env => (
                ClientPool::from_env(),
                ferry_core::kubeconfig::paths_from_env(),
            ),
            Source::Paths(paths) => (ClientPool::from_paths(&paths), paths),
        };
        let shown = display_paths(&loaded.1);
        if loaded.1.iter().all(|p| !p.exists()) {
            return self
                .publisher
                .update(|m| m.source = SourceState::Missing { looked_at: shown });
        }
        match loaded.0 {
            Err(e) => self.publisher.update(|m| {
                m.source = SourceState::Broken {
                    path: shown,
                    reason: e.to_string(),
                }
            }),
            Ok(pool) if pool.contexts().is_empty() => self
                .publisher
                .update(|m| m.source = SourceState::Missing { looked_at: shown }),
            Ok(pool) => self.use_pool(pool, SourceState::Kubeconfig { path: shown }),
        }
    }

    async fn start_demo(&mut self) {
        match crate::demo::start().await {
            Ok(demo) => {
                let path = demo.kubeconfig_path().to_path_buf();
                match ClientPool::from_paths(std::slice::from_ref(&path)) {
                    Ok(pool) => {
                        self.demo = Some(demo);
                        self.use_pool(
                            pool,
                            SourceState::Demo {
                                kubeconfig: path.display().to_string(),
                            },
                        );
                        self.publisher.event(Tone::Good, crate::demo::STARTED_NOTE);
                    }
                    Err(e) => self.demo_failed(e.to_string()),
                }
            }
            Err(e) => self.demo_failed(format!("{e:#}")),
        }
    }

    fn demo_failed(&self, reason: String) {
        self.publisher.event(
            Tone::Bad,
            format!("The demo cluster could not start: {reason}"),
        );
        self.publisher.update(|m| {
            m.source = SourceState::Broken {
                path: "the demo cluster".into(),
                reason,
            };
        });
    }

    fn use_pool(&mut self, pool: ClientPool, source: SourceState) {
        let contexts: Vec<ContextInfo> = pool
            .contexts()
            .into_iter()
            .map(|c| ContextInfo {
                name: c.name,
                cluster: c.cluster,
                namespace: c.namespace,
                connection: Default::default(),
            })
            .collect();
        let current = pool.current_context();
        let engine = Engine::new(
            &tokio::runtime::Handle::current(),
            Arc::new(pool.clone()),
            EngineOptions::default(),
        );
        self.tasks.push(tokio::spawn(forward_snapshots(
            engine.clone(),
            self.publisher.clone(),
            self.profiles.shared(),
        )));
        self.tasks.push(tokio::spawn(forward_events(
            engine.clone(),
            self.publisher.clone(),
        )));
        self.publisher.update(|m| {
            m.contexts = contexts;
            m.current_context = current;
            m.source = source;
        });
        for spec in self.profiles.autostart_specs() {
            engine.start(spec);
        }
        self.pool = Some(pool);
        self.engine = Some(engine);
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Scope { context, namespace } => self.scope(context, namespace),
            Request::StartTunnel {
                spec,
                save_to_profile,
            } => {
                if let Some(profile) = save_to_profile {
                    self.profiles.add_tunnel(&profile, spec.clone());
                }
                self.with_engine(|e| {
                    e.start(spec);
                });
            }
            Request::StartTunnels(ids) | Request::RestartTunnels(ids) => {
                self.each(ids, Engine::restart)
            }
            Request::StopTunnels(ids) => self.each(ids, Engine::stop),
            Request::RemoveTunnels(ids) => self.each(ids, Engine::remove),
            Request::CheckPort { bind, port } => {
                let free = port_is_free(bind, port).await;
                self.publisher
                    .notice(Notice::PortChecked { bind, port, free });
            }
            Request::NextFreePort { index, bind, from } => {
                let port = next_free_port(bind, from).await;
                self.publisher.notice(Notice::NextFreePort { index, port });
            }
            Request::Logs {
                context,
                namespace,
                pod,
            } => self.logs(context, namespace, pod),
            Request::StartProfile(name) => {
                let specs = self.profiles.specs(&name);
                self.with_engine(|e| start_specs(e, &specs));
            }
            Request::StopProfile(name) => {
                let specs = self.profiles.specs(&name);
                self.with_engine(|e| stop_specs(e, &specs));
            }
            Request::StartDemo => {
                if self.demo.is_none() {
                    self.start_demo().await;
                }
            }
            other => self.profiles.handle(other).await,
        }
    }

    fn with_engine(&self, act: impl FnOnce(&Engine)) {
        match &self.engine {
            Some(engine) => act(engine),
            None => self
                .publisher
                .event(Tone::Bad, "No cluster is connected, so no tunnel can run."),
        }
    }

    fn each(&self, ids: Vec<String>, act: fn(&Engine, TunnelId)) {
        self.with_engine(|engine| {
            for id in ids.iter().filter_map(|id| parse_id(id)) {
                act(engine, id);
            }
        });
    }

    /// Shows a context and namespace: a new catalog for a new context, a namespace switch
    /// otherwise.
    fn scope(&mut self, context: String, namespace: Option<String>) {
        let Some(pool) = &self.pool else { return };
        match &self.catalog {
            Some(catalog) if catalog.context() == context => {
                if let Some(ns) = namespace {
                    catalog.set_namespace(&ns);
                }
            }
            _ => {
                let catalog = Catalog::start(pool, &context, namespace.as_deref());
                if let Some(task) = self.catalog_task.take() {
                    task.abort();
                }
                self.catalog_task = Some(tokio::spawn(forward_catalog(
                    catalog.clone(),
                    self.publisher.clone(),
                )));
                self.catalog = Some(catalog);
            }
        }
    }

    fn logs(&self, context: String, namespace: String, pod: String) {
        let Some(pool) = self.pool.clone() else {
            return;
        };
        let publisher = self.publisher.clone();
        tokio::spawn(async move {
            let lines = recent_logs(&pool, &context, &namespace, &pod).await;
            publisher.notice(Notice::Logs { pod, lines });
        });
    }

    async fn shutdown(mut self) {
        if let Some(task) = self.catalog_task.take() {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(engine) = self.engine.take() {
            // Bounded: a wedged engine must not keep the window from closing.
            let _ = tokio::time::timeout(Duration::from_secs(2), engine.shutdown()).await;
        }
        if let Some(demo) = self.demo.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), demo.shutdown()).await;
        }
    }
}

/// `t3` → `TunnelId(3)`, as [`TunnelId`]'s `Display` writes it.
fn parse_id(id: &str) -> Option<TunnelId> {
    id.strip_prefix('t')
        .and_then(|n| n.parse().ok())
        .map(TunnelId)
}

fn start_specs(engine: &Engine, specs: &[TunnelSpec]) {
    let existing = engine.list();
    for spec in specs {
        match existing.iter().find(|s| &s.spec == spec) {
            Some(s) if s.state.can_serve() => {}
            Some(s) => engine.restart(s.id),
            None => {
                engine.start(spec.clone());
            }
        }
    }
}

fn stop_specs(engine: &Engine, specs: &[TunnelSpec]) {
    for s in engine.list().iter().filter(|s| specs.contains(&s.spec)) {
        engine.stop(s.id);
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

/// Keeps the model's objects, namespaces and connection state in step with the catalog.
async fn forward_catalog(catalog: Catalog, publisher: Publisher) {
    let mut rx = catalog.subscribe();
    let mut announced = String::new();
    let mut version = 0;
    loop {
        let view = rx.borrow_and_update().clone();
        if announced != view.namespace {
            announced = view.namespace.clone();
            publisher.notice(Notice::Scope {
                context: view.context.clone(),
                namespace: view.namespace.clone(),
            });
        }
        version += 1;
        publisher.update(|m: &mut Model| {
            let objects = bridge::objects(&view, &m.objects, version);
            m.objects = Arc::new(objects);
            m.namespaces = bridge::namespaces(&view);
            let state = bridge::connection(&view);
            for c in &mut m.contexts {
                c.connection = if c.name == view.context {
                    state.clone()
                } else {
                    Default::default()
                };
            }
        });
        if rx.changed().await.is_err() {
            return;
        }
        // Coalesce a burst of watch events (a rollout, the first list) into one model update.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Keeps the tunnels table (and the profiles' running counts) in step with the engine.
async fn forward_snapshots(
    engine: Engine,
    publisher: Publisher,
    profiles: super::profile_ops::Shared,
) {
    let mut rx = engine.snapshots();
    let mut version = 0;
    loop {
        let rows: Vec<_> = rx
            .borrow_and_update()
            .iter()
            .map(bridge::tunnel_row)
            .collect();
        version += 1;
        let saved = profiles.saved();
        publisher.update(|m| {
            let mut p = m.profiles.as_ref().clone();
            p.items = bridge::profiles(&saved, &rows);
            m.profiles = Arc::new(p);
            m.tunnels = Arc::new(rows);
            m.tunnels_version = version;
        });
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Writes every engine event into the event log (errors also as toasts).
async fn forward_events(engine: Engine, publisher: Publisher) {
    let mut rx = engine.events();
    loop {
        match rx.recv().await {
            Ok(event) => {
                let (tone, toast) = bridge::event_tone(&event.kind);
                let target = engine
                    .get(event.tunnel)
                    .map(|s| {
                        s.spec
                            .alias
                            .clone()
                            .unwrap_or_else(|| s.spec.target.to_kubectl())
                    })
                    .unwrap_or_else(|| event.tunnel.to_string());
                publisher.notice(Notice::Event {
                    tone,
                    toast,
                    text: format!("{target}: {}", event.kind),
                });
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                publisher.event(
                    Tone::Warn,
                    format!("{n} tunnel events were skipped (too many at once)"),
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The last 50 log lines of a pod's first container.
async fn recent_logs(
    pool: &ClientPool,
    context: &str,
    namespace: &str,
    pod: &str,
) -> Result<Vec<String>, String> {
    use k8s_openapi::api::core::v1::Pod;
    let client = pool.client(context).await.map_err(|e| e.to_string())?;
    let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
    let params = kube::api::LogParams {
        tail_lines: Some(50),
        ..Default::default()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), api.logs(pod, &params))
        .await
        .map_err(|_| format!("the logs of {pod} did not arrive within 10 s"))?
        .map_err(|e| format!("cannot read the logs of {pod}: {e}"))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Whether a listener could bind this address and port right now.
async fn port_is_free(bind: IpAddr, port: u16) -> bool {
    tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .is_ok()
}

/// The first free port at or after `from` (bounded search).
async fn next_free_port(bind: IpAddr, from: u16) -> Option<u16> {
    for port in (from..=u16::MAX).take(2000) {
        if port_is_free(bind, port).await {
            return Some(port);
        }
    }
    None
}
