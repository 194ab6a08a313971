//! The window's backend, a task on the instance's runtime: it shows the instance's tunnels and
//! profiles in the UI's [`Model`] (through [`bridge`](super::bridge)), runs the catalog of the
//! shown context on the instance's clients, and applies the UI's [`Request`]s — tunnel and
//! profile actions through the instance's API, like every other client. Requests that take
//! time (a port scan, a pod's logs, a file dialog) run in tasks of their own, so nothing holds
//! up a Stop. Nothing here runs on the UI thread, and closing the window ends only this.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::catalog::Catalog;
use ferry_core::clients::ClientPool;
use ferry_core::engine::{Engine, TunnelId};
use ferry_core::instance::Instance;
use ferry_core::instance::api::{Request as Api, Response};
use ferry_core::instance::assemble::{self, KubeconfigChoice, KubeconfigState, Setup};
use ferry_core::spec::TunnelSpec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bridge;
use super::model::{ContextInfo, Model, SourceState};
use super::profile_ops::{Profiles, Shared};
use super::runtime::{Notice, Publisher, Request, Source, Startup};
use super::theme::Tone;

/// What the window's backend owns.
struct Backend {
    instance: Instance,
    publisher: Publisher,
    source: SourceState,
    catalog: Option<Catalog>,
    catalog_task: Option<JoinHandle<()>>,
    profiles: mpsc::UnboundedSender<ProfileJob>,
    tasks: Vec<JoinHandle<()>>,
    /// The settings file (beside the profiles).
    settings: Option<PathBuf>,
    /// One-shot commands that run, by the UI's run id (so Stop can end one).
    runs: HashMap<u64, JoinHandle<()>>,
}

/// Work for the profile task (one at a time, in order; off the request loop).
enum ProfileJob {
    Request(Request),
    AddTunnel(String, TunnelSpec),
}

/// The kubeconfig's fate as the welcome screen shows it.
pub fn source_state(state: KubeconfigState) -> SourceState {
    match state {
        KubeconfigState::Missing { looked_at } => SourceState::Missing { looked_at },
        KubeconfigState::Broken { path, reason } => SourceState::Broken { path, reason },
        KubeconfigState::Loaded { path } => SourceState::Kubeconfig { path },
        KubeconfigState::NotUsed => SourceState::Missing {
            looked_at: "nowhere (no kubeconfig was asked for)".into(),
        },
    }
}

/// A private instance (no socket) for [`Runtime::start`](super::Runtime::start).
pub async fn private_instance(startup: &Startup) -> (Instance, SourceState) {
    let kubeconfig = match &startup.source {
        Source::Env => KubeconfigChoice::Env,
        Source::Paths(paths) => KubeconfigChoice::Paths(paths.clone()),
        Source::Demo => KubeconfigChoice::Nothing,
    };
    let assembled = assemble::assemble(Setup {
        kubeconfig,
        profiles_dir: startup.profiles_dir.clone(),
        flavor: ferry_core::instance::Flavor::Real,
        log_file: None,
        engine: Default::default(),
        autostart: startup.source != Source::Demo,
    })
    .await;
    let source = if startup.source == Source::Demo {
        demo_state(crate::demo::start_into(&assembled.instance).await)
    } else {
        source_state(assembled.kubeconfig)
    };
    (assembled.instance, source)
}

fn demo_state(started: anyhow::Result<PathBuf>) -> SourceState {
    match started {
        Ok(path) => SourceState::Demo {
            kubeconfig: path.display().to_string(),
        },
        Err(e) => SourceState::Broken {
            path: "the demo cluster".into(),
            reason: format!("{e:#}"),
        },
    }
}

/// Runs until the request channel closes (the window closed). The instance's tunnels stay.
pub async fn run(
    instance: Instance,
    source: SourceState,
    profiles_dir: Option<PathBuf>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    publisher: Publisher,
) {
    let shared = Shared::default();
    let (profiles, jobs) = mpsc::unbounded_channel();
    let settings = match &profiles_dir {
        Some(dir) => Some(dir.join(ferry_core::settings::FILE_NAME)),
        None => ferry_core::settings::default_path().ok(),
    };
    let mut backend = Backend {
        instance: instance.clone(),
        publisher: publisher.clone(),
        source,
        catalog: None,
        catalog_task: None,
        profiles,
        tasks: Vec::new(),
        settings,
        runs: HashMap::new(),
    };
    backend.load_settings().await;
    backend.tasks.push(tokio::spawn(profile_jobs(
        profiles_dir,
        publisher.clone(),
        shared.clone(),
        jobs,
    )));
    let engine = instance.engine().clone();
    backend.tasks.push(tokio::spawn(forward_snapshots(
        engine.clone(),
        publisher.clone(),
        shared,
    )));
    backend
        .tasks
        .push(tokio::spawn(forward_events(engine, publisher.clone())));
    backend.tasks.push(tokio::spawn(follow_terminals(
        instance.terminals().clone(),
        publisher.clone(),
    )));
    backend.tasks.push(tokio::spawn(follow_contexts(
        instance.clients().clone(),
        publisher.clone(),
    )));
    backend.publish_source();
    if matches!(backend.source, SourceState::Demo { .. }) {
        publisher.event(Tone::Good, crate::demo::STARTED_NOTE);
    }
    while let Some(request) = requests.recv().await {
        backend.handle(request).await;
    }
    backend.end();
}

/// The profile task: opens the store, then applies profile jobs in order.
async fn profile_jobs(
    dir: Option<PathBuf>,
    publisher: Publisher,
    shared: Shared,
    mut jobs: mpsc::UnboundedReceiver<ProfileJob>,
) {
    let mut profiles = Profiles::open(dir, publisher, shared);
    while let Some(job) = jobs.recv().await {
        match job {
            ProfileJob::Request(request) => profiles.handle(request).await,
            ProfileJob::AddTunnel(name, spec) => profiles.add_tunnel(&name, spec),
        }
    }
}

/// The contexts the instance's clients know, published now and whenever the kubeconfig changes.
async fn follow_contexts(pool: ClientPool, publisher: Publisher) {
    let mut changes = pool.changes();
    loop {
        publish_contexts(&pool, &publisher);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn publish_contexts(pool: &ClientPool, publisher: &Publisher) {
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
    // Without a current-context (the demo, in-app clusters only) the first context is shown.
    let current = pool
        .current_context()
        .filter(|c| contexts.iter().any(|i| &i.name == c))
        .or_else(|| contexts.first().map(|c| c.name.clone()));
    publisher.update(|m| {
        for c in &mut m.contexts {
            if let Some(new) = contexts.iter().find(|n| n.name == c.name) {
                let connection = std::mem::take(&mut c.connection);
                *c = new.clone();
                c.connection = connection;
            }
        }
        m.contexts
            .retain(|c| contexts.iter().any(|n| n.name == c.name));
        for new in &contexts {
            if !m.contexts.iter().any(|c| c.name == new.name) {
                m.contexts.push(new.clone());
            }
        }
        m.contexts.sort_by(|a, b| a.name.cmp(&b.name));
        m.current_context = current;
    });
}

impl Backend {
    fn publish_source(&self) {
        let source = self.source.clone();
        self.publisher.update(|m| m.source = source);
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Scope { context, namespace } => self.scope(context, namespace),
            Request::StartTunnel {
                spec,
                save_to_profile,
            } => {
                if let Some(profile) = &save_to_profile {
                    self.profile_job(ProfileJob::AddTunnel(profile.clone(), spec.clone()));
                }
                self.api(Api::AddTunnel {
                    spec,
                    profile: save_to_profile,
                });
            }
            Request::StartTunnels(ids) | Request::RestartTunnels(ids) => {
                self.api(Api::RestartTunnels {
                    ids: parse_ids(&ids),
                })
            }
            Request::StopTunnels(ids) => self.api(Api::StopTunnels {
                ids: parse_ids(&ids),
            }),
            Request::RemoveTunnels(ids) => self.api(Api::RemoveTunnels {
                ids: parse_ids(&ids),
            }),
            Request::StartProfile(name) => self.api(Api::Up {
                profiles: vec![name],
            }),
            Request::StopProfile(name) => self.api(Api::Down {
                profiles: vec![name],
                all: false,
            }),
            Request::CheckPort { bind, port } => {
                let publisher = self.publisher.clone();
                self.spawn(async move {
                    let free = port_is_free(bind, port).await;
                    publisher.notice(Notice::PortChecked { bind, port, free });
                });
            }
            Request::NextFreePort { index, bind, from } => {
                let publisher = self.publisher.clone();
                self.spawn(async move {
                    let port = next_free_port(bind, from).await;
                    publisher.notice(Notice::NextFreePort { index, port });
                });
            }
            Request::Logs {
                context,
                namespace,
                pod,
                container,
            } => {
                let pool = self.instance.clients().clone();
                let publisher = self.publisher.clone();
                self.spawn(async move {
                    let lines =
                        recent_logs(&pool, &context, &namespace, &pod, container.as_deref()).await;
                    publisher.notice(Notice::Logs {
                        pod,
                        container,
                        lines,
                    });
                });
            }
            Request::OpenShell { target, size } => {
                self.instance.terminals().open(target, size);
            }
            Request::CloseTerminal(id) => self.instance.terminals().close(id),
            Request::RunCommand { run, request } => {
                let pool = self.instance.clients().clone();
                let publisher = self.publisher.clone();
                let task = tokio::spawn(run_command(pool, publisher, run, request));
                self.runs.retain(|_, t| !t.is_finished());
                self.runs.insert(run, task);
            }
            Request::CancelRun(run) => {
                if let Some(task) = self.runs.remove(&run) {
                    task.abort();
                    self.publisher.notice(Notice::RunEnded {
                        run,
                        result: Err("stopped before it finished".into()),
                        took: Duration::ZERO,
                    });
                }
            }
            Request::SaveOutput { file_name, bytes } => {
                let publisher = self.publisher.clone();
                self.spawn(save_output(publisher, file_name, bytes));
            }
            Request::StartDemo => {
                if !matches!(self.source, SourceState::Demo { .. }) {
                    self.source = demo_state(crate::demo::start_into(&self.instance).await);
                    self.publish_source();
                    publish_contexts(self.instance.clients(), &self.publisher);
                    if matches!(self.source, SourceState::Demo { .. }) {
                        self.publisher.event(Tone::Good, crate::demo::STARTED_NOTE);
                    } else if let SourceState::Broken { reason, .. } = &self.source {
                        self.publisher.event(
                            Tone::Bad,
                            format!("The demo cluster could not start: {reason}"),
                        );
                    }
                }
            }
            Request::Quit => self.instance.quit(),
            Request::SaveSettings(settings) => self.save_settings(settings).await,
            other => self.profile_job(ProfileJob::Request(other)),
        }
    }

    async fn load_settings(&self) {
        let Some(path) = self.settings.clone() else {
            return;
        };
        let loaded = tokio::task::spawn_blocking(move || ferry_core::settings::load(&path)).await;
        let (settings, problem) = match loaded {
            Ok(Ok(settings)) => (settings, None),
            Ok(Err(e)) => (Default::default(), Some(e.to_string())),
            Err(e) => (Default::default(), Some(e.to_string())),
        };
        self.publisher.update(|m| {
            m.settings = settings;
            m.settings_problem = problem;
        });
    }

    /// Saves the settings and applies what they change outside Ferry (launch at login).
    async fn save_settings(&self, settings: ferry_core::settings::Settings) {
        let Some(path) = self.settings.clone() else {
            self.publisher.event(
                Tone::Bad,
                "Settings cannot be saved: no config folder is known.",
            );
            return;
        };
        let login = settings.launch_at_login;
        let saved = tokio::task::spawn_blocking(move || {
            ferry_core::settings::save(&path, &settings)?;
            #[cfg(target_os = "linux")]
            if let (Some(dir), Ok(exe)) = (crate::autostart::default_dir(), std::env::current_exe())
            {
                crate::autostart::apply(&dir, login, &exe).map_err(|source| {
                    ferry_core::settings::SettingsError::Write {
                        path: dir.join(crate::autostart::FILE_NAME),
                        source,
                    }
                })?;
            }
            let _ = login;
            Ok::<(), ferry_core::settings::SettingsError>(())
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.publisher.event(Tone::Bad, e.to_string()),
            Err(e) => self.publisher.event(Tone::Bad, e.to_string()),
        }
        self.load_settings().await;
    }

    fn profile_job(&self, job: ProfileJob) {
        if self.profiles.send(job).is_err() {
            self.publisher.event(
                Tone::Bad,
                "Profiles are unavailable (their task has ended).",
            );
        }
    }

    /// Sends a request to the instance in a task of its own; an error goes to the event log.
    fn api(&mut self, request: Api) {
        let instance = self.instance.clone();
        let publisher = self.publisher.clone();
        self.spawn(async move {
            if let Response::Error(e) = instance.handle(request).await {
                publisher.event(Tone::Bad, e.message);
            }
        });
    }

    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(tokio::spawn(task));
    }

    /// Shows a context and namespace: a new catalog for a new context, a namespace switch
    /// otherwise.
    fn scope(&mut self, context: String, namespace: Option<String>) {
        match &self.catalog {
            Some(catalog) if catalog.context() == context => {
                if let Some(ns) = namespace {
                    catalog.set_namespace(&ns);
                }
            }
            _ => {
                // Through the engine's feeds: the window and the tunnels share their watches.
                let catalog = Catalog::start(
                    self.instance.engine(),
                    self.instance.clients(),
                    &context,
                    namespace.as_deref(),
                );
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

    /// Ends the window's tasks; the instance and its tunnels are not touched.
    fn end(mut self) {
        if let Some(task) = self.catalog_task.take() {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for (_, task) in self.runs.drain() {
            task.abort();
        }
    }
}

/// `t3` → `TunnelId(3)`, as [`TunnelId`]'s `Display` writes it.
fn parse_ids(ids: &[String]) -> Vec<TunnelId> {
    ids.iter()
        .filter_map(|id| id.strip_prefix('t').and_then(|n| n.parse().ok()))
        .map(TunnelId)
        .collect()
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
async fn forward_snapshots(engine: Engine, publisher: Publisher, profiles: Shared) {
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

/// The instance's shells, published when one opens or closes; the window is woken whenever
/// one of them has a new grid (the views read the grids themselves, through their handles).
async fn follow_terminals(terminals: ferry_core::exec::Terminals, publisher: Publisher) {
    let mut changes = terminals.changes();
    let mut shown: Vec<ferry_core::exec::TerminalId> = Vec::new();
    let repaint = publisher.repaint();
    loop {
        let list = terminals.list();
        let ids: Vec<_> = list.iter().map(|t| t.id).collect();
        if ids != shown {
            shown = ids;
            publisher.update(|m| m.terminals = list);
        } else {
            repaint();
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Runs one command for the command panel, passing its output and end back as notices.
async fn run_command(
    pool: ClientPool,
    publisher: Publisher,
    run: u64,
    request: ferry_core::exec::ExecRequest,
) {
    use ferry_core::exec::{Outcome, Output};
    let started = std::time::Instant::now();
    let result = match ferry_core::exec::open(&pool, request).await {
        Err(e) => Err(e.to_string()),
        Ok(mut session) => {
            while let Some(chunk) = session.output.recv().await {
                let (stderr, data) = match chunk {
                    Output::Stdout(b) => (false, b),
                    Output::Stderr(b) => (true, b),
                };
                publisher.notice(Notice::RunOutput { run, stderr, data });
            }
            match session.wait().await {
                Outcome::Exited(code) => Ok(code),
                Outcome::Failed(e) => Err(e.to_string()),
            }
        }
    };
    publisher.notice(Notice::RunEnded {
        run,
        result,
        took: started.elapsed(),
    });
}

/// Asks where to save a command's output (off the UI thread), then writes it.
async fn save_output(publisher: Publisher, file_name: String, bytes: Arc<Vec<u8>>) {
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Save the command's output")
        .set_file_name(&file_name)
        .save_file()
        .await;
    let Some(file) = picked else { return };
    let path = file.path().to_path_buf();
    match tokio::fs::write(&path, bytes.as_slice()).await {
        Ok(()) => publisher.event(
            Tone::Good,
            format!(
                "Saved {} bytes of output to {}",
                bytes.len(),
                path.display()
            ),
        ),
        Err(e) => publisher.event(Tone::Bad, format!("Cannot write {}: {e}", path.display())),
    }
}

/// The last 50 log lines of a pod's container: the one asked for, else the one kubectl would
/// pick (its default-container annotation, else the first). Errors are sentences.
async fn recent_logs(
    pool: &ClientPool,
    context: &str,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<Vec<String>, String> {
    use ferry_core::errors::{Access, ClusterError};
    use k8s_openapi::api::core::v1::Pod;
    let client = pool.client(context).await.map_err(|e| e.to_string())?;
    let url = pool.server_url(context);
    let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
    let access = Access::new("get", "pods/log", Some(namespace)).named(pod);
    let spec = tokio::time::timeout(Duration::from_secs(10), api.get(pod))
        .await
        .map_err(|_| format!("pod {pod} could not be read within 10 s"))?
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 404 => {
                format!("pod {pod} no longer exists in namespace {namespace}")
            }
            _ => ClusterError::from_kube(context, &url, &access, &e).to_string(),
        })?;
    let chosen =
        ferry_core::exec::container::choose(&spec, container).map_err(|e| e.to_string())?;
    let params = kube::api::LogParams {
        tail_lines: Some(50),
        container: Some(chosen.container.name.clone()),
        ..Default::default()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), api.logs(pod, &params))
        .await
        .map_err(|_| format!("the logs of {pod} did not arrive within 10 s"))?
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 400 => format!(
                "container {} of pod {pod} has no logs yet: {}",
                chosen.container.name, s.message
            ),
            _ => ClusterError::from_kube(context, &url, &access, &e).to_string(),
        })?;
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
