//! One supervisor task per tunnel: it binds the local ports, follows the target (the service or
//! deployment, and its pods) through the namespace's shared watches ([`super::feed`]), keeps
//! the tunnel's [`Routes`] current on every watch event, and records facts from which the
//! state is derived.
//!
//! Everything is event-driven: a pod deleted or turning NotReady changes the routes the moment
//! the watch event arrives, so the next connection goes to another Ready pod with no sleep. The
//! feeds re-establish broken watches (backoff with jitter, at once after sleep/wake); the
//! supervisor turns their health into "waiting: API server unreachable" and back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Api;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::access;
use super::backoff::Backoff;
use super::clock::ClockJump;
use super::feed::{Feed, FeedState, Feeds};
use super::forward::{self, PortPath};
use super::listener::{self, BoundPort};
use super::picker::{Picker, Routes};
use super::routes::{self, Resolution};
use super::state::{Reason, Unresolved};
use super::stats::{Counters, EventKind, TunnelCell};
use super::transport::PodLinks;
use crate::engine::{ClientSource, ContextClient, EngineOptions};
use crate::resolve::{self, PodQuery, TargetObject};
use crate::spec::{LocalPort, Target};

/// Everything one tunnel's supervisor needs; built by the engine.
pub(crate) struct Supervisor {
    pub cell: Arc<TunnelCell>,
    pub clients: Arc<dyn ClientSource>,
    pub options: Arc<EngineOptions>,
    pub cancel: CancellationToken,
    pub clock: watch::Receiver<ClockJump>,
    pub feeds: Arc<Feeds>,
}

/// The target's objects as last seen by the watches.
#[derive(Default)]
struct View {
    service: Option<Service>,
    deployment: Option<Deployment>,
    pods: BTreeMap<String, Pod>,
    /// Names of every object of the target's kind in the namespace (services, deployments or
    /// pods), to say which exist when the target does not.
    siblings: Vec<String>,
    /// The namespace holds no pod and no object of the target's kind: it may not exist.
    empty_namespace: bool,
    /// When a watch last heard from the server (the newest of them): any answer proves the
    /// server was reachable then.
    heard: Option<std::time::Instant>,
}

/// The shared watches one tunnel follows.
struct Watches {
    pods: Arc<Feed<Pod>>,
    services: Option<Arc<Feed<Service>>>,
    deployments: Option<Arc<Feed<Deployment>>>,
}

impl Supervisor {
    /// Run until cancelled or failed. Listeners and connections close when this returns.
    pub(crate) async fn run(mut self) {
        let cancel = self.cancel.clone();
        tokio::select! {
            () = cancel.cancelled() => {}
            () = self.serve() => {}
        }
        cancel.cancel();
        self.cell.update_facts(|f| f.listening = false);
    }

    async fn serve(&mut self) {
        let Some(kube) = self.connect().await else {
            return;
        };
        let spec = &self.cell.spec;
        if let Err(err) =
            access::check_port_forward(&kube.client, &spec.context, &spec.namespace).await
        {
            self.cell.update_facts(|f| f.fatal = Some(err.to_string()));
            return;
        }
        let (routes_tx, routes_rx) = watch::channel(Arc::new(Routes::default()));
        let api_trouble = Arc::new(Notify::new());
        let picker = Arc::new(Picker::new(spec.spread));
        let mut ports = Ports::new(self, &kube, routes_rx, picker, api_trouble.clone());
        if let Err(message) = ports.bind_known(&[]).await {
            self.cell.update_facts(|f| f.fatal = Some(message));
            return;
        }
        let message = self
            .follow(&kube, &routes_tx, &mut ports, &api_trouble)
            .await;
        self.cell.update_facts(|f| f.fatal = Some(message));
    }

    /// Get the context's client, retrying transient failures.
    async fn connect(&mut self) -> Option<ContextClient> {
        let mut backoff = Backoff::new(self.options.backoff_initial, self.options.backoff_max);
        loop {
            match self.clients.client(&self.cell.spec.context).await {
                Ok(client) => {
                    let url = client.url.clone();
                    self.cell.update_facts(|f| f.api_url = Some(url));
                    return Some(client);
                }
                Err(err) if err.is_transient() => {
                    let message = err.to_string();
                    self.cell.update_facts(|f| {
                        f.api_reachable = false;
                        f.unresolved = Some(Unresolved::new(Reason::Unreachable, message.clone()));
                    });
                    let delay = backoff.next_delay();
                    self.cell.event(EventKind::Reconnecting {
                        attempt: backoff.attempt(),
                        delay_ms: delay.as_millis() as u64,
                        message,
                    });
                    self.sleep_or_jump(delay).await;
                }
                Err(err) => {
                    let message = err.to_string();
                    self.cell.update_facts(|f| f.fatal = Some(message));
                    return None;
                }
            }
        }
    }

    /// Wait `delay`, cut short by a clock jump.
    async fn sleep_or_jump(&mut self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.clock.changed() => {}
        }
    }

    /// Follow the target through the shared watches until something no retry can fix; returns
    /// that reason.
    async fn follow(
        &mut self,
        kube: &ContextClient,
        routes_tx: &watch::Sender<Arc<Routes>>,
        ports: &mut Ports,
        api_trouble: &Notify,
    ) -> String {
        let spec = self.cell.spec.clone();
        let (ctx, ns) = (spec.context.as_str(), spec.namespace.as_str());
        let watches = Watches {
            pods: self.feeds.namespaced(ctx, ns),
            services: matches!(spec.target, Target::Service(_))
                .then(|| self.feeds.namespaced(ctx, ns)),
            deployments: matches!(spec.target, Target::Deployment(_))
                .then(|| self.feeds.namespaced(ctx, ns)),
        };
        let mut pods = watches.pods.subscribe();
        let mut services = watches.services.as_ref().map(|f| f.subscribe());
        let mut deployments = watches.deployments.as_ref().map(|f| f.subscribe());
        let mut last_session = (0, 0);
        // Recoveries the feeds had made before this tunnel subscribed are not its reconnects.
        let mut last_recoveries = pods.borrow().recoveries
            + services.as_ref().map_or(0, |s| s.borrow().recoveries)
            + deployments.as_ref().map_or(0, |d| d.borrow().recoveries);
        let mut last_error: Option<String> = None;
        loop {
            match self.observe(
                &pods,
                services.as_ref(),
                deployments.as_ref(),
                &mut last_error,
            ) {
                Observed::Fatal(message) => return message,
                Observed::Waiting => {}
                Observed::Ready(view, session, recoveries) => {
                    let fresh = session != last_session;
                    if recoveries > last_recoveries {
                        Counters::add(&self.cell.counters.reconnects, recoveries - last_recoveries);
                    }
                    last_session = session;
                    last_recoveries = recoveries;
                    if let Err(message) = self.publish(kube, &view, routes_tx, ports, fresh).await {
                        return message;
                    }
                }
            }
            tokio::select! {
                r = pods.changed() => if r.is_err() { return "the pod watch stopped".into() },
                r = changed(&mut services) => if r.is_err() { return "the service watch stopped".into() },
                r = changed(&mut deployments) => if r.is_err() { return "the deployment watch stopped".into() },
                _ = self.clock.changed() => {
                    let seconds = self.clock.borrow_and_update().seconds;
                    self.cell.event(EventKind::ClockJumped { seconds });
                }
                () = api_trouble.notified() => {
                    if let Some(attempt) = self.cell.unreachable_since() {
                        watches.pods.poke(attempt);
                    }
                }
            }
        }
    }

    /// Read the feeds: broken (say so), not yet listed, or a view of the target's objects.
    fn observe(
        &self,
        pods: &watch::Receiver<FeedState<Pod>>,
        services: Option<&watch::Receiver<FeedState<Service>>>,
        deployments: Option<&watch::Receiver<FeedState<Deployment>>>,
        last_error: &mut Option<String>,
    ) -> Observed {
        let pods = pods.borrow().clone();
        let services = services.map(|r| r.borrow().clone());
        let deployments = deployments.map(|r| r.borrow().clone());
        let errors = [
            pods.error.clone(),
            services.as_ref().and_then(|s| s.error.clone()),
            deployments.as_ref().and_then(|s| s.error.clone()),
        ];
        if let Some(error) = errors.into_iter().flatten().next() {
            if !error.transient {
                return Observed::Fatal(error.message);
            }
            if last_error.as_deref() != Some(error.message.as_str()) || error.attempt <= 1 {
                self.cell.record_error(error.message.clone());
                self.cell.event(EventKind::Reconnecting {
                    attempt: error.attempt,
                    delay_ms: error.retry_in.as_millis() as u64,
                    message: error.message.clone(),
                });
            }
            *last_error = Some(error.message);
            if error.unreachable {
                self.cell.api_unreachable(error.since);
            }
            return Observed::Waiting;
        }
        *last_error = None;
        let synced = pods.synced
            && services.as_ref().is_none_or(|s| s.synced)
            && deployments.as_ref().is_none_or(|s| s.synced);
        if !synced {
            return Observed::Waiting;
        }
        let target = &self.cell.spec.target;
        let mut view = View::default();
        if let (Target::Service(name), Some(s)) = (target, &services) {
            view.service = s.objects.get(name).map(|s| Service::clone(s));
            view.siblings = s.objects.keys().cloned().collect();
        }
        if let (Target::Deployment(name), Some(d)) = (target, &deployments) {
            view.deployment = d.objects.get(name).map(|d| Deployment::clone(d));
            view.siblings = d.objects.keys().cloned().collect();
        }
        if let Target::Pod(_) = target {
            view.siblings = pods.objects.keys().cloned().collect();
        }
        view.empty_namespace = pods.objects.is_empty() && view.siblings.is_empty();
        match self.pod_query(target, &view) {
            Err(message) => return Observed::Fatal(message),
            Ok(None) => {}
            Ok(Some(query)) => {
                view.pods = pods
                    .objects
                    .iter()
                    .filter(|(_, p)| query.matches(p))
                    .map(|(n, p)| (n.clone(), Pod::clone(p)))
                    .collect();
            }
        }
        let owner = services
            .as_ref()
            .map(|s| (s.session, s.recoveries))
            .or(deployments.as_ref().map(|d| (d.session, d.recoveries)));
        let (owner_session, owner_recoveries) = owner.unwrap_or((0, 0));
        let session = (pods.session, owner_session);
        view.heard = [
            pods.heard,
            services.as_ref().and_then(|s| s.heard),
            deployments.as_ref().and_then(|d| d.heard),
        ]
        .into_iter()
        .flatten()
        .max();
        Observed::Ready(Box::new(view), session, pods.recoveries + owner_recoveries)
    }

    /// The pod query for the target given what the owner watch has seen. `Ok(None)` while the
    /// owner is unknown or missing.
    fn pod_query(&self, target: &Target, view: &View) -> Result<Option<PodQuery>, String> {
        let object = match target {
            Target::Service(_) => match &view.service {
                Some(svc) => Some(TargetObject::Service(svc)),
                None => return Ok(None),
            },
            Target::Deployment(_) => match &view.deployment {
                Some(dep) => Some(TargetObject::Deployment(dep)),
                None => return Ok(None),
            },
            _ => None,
        };
        resolve::target_selector(target, object)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Turn the view into routes and facts, bind ports whose number just became known.
    async fn publish(
        &self,
        kube: &ContextClient,
        view: &View,
        routes_tx: &watch::Sender<Arc<Routes>>,
        ports: &mut Ports,
        fresh: bool,
    ) -> Result<(), String> {
        let spec = &self.cell.spec;
        let missing = self.missing_owner(view);
        let resolution = routes::resolve(spec, view.service.as_ref(), &view.pods);
        if let Some(fatal) = &resolution.fatal {
            return Err(fatal.clone());
        }
        ports.bind_known(&resolution.same_as_remote).await?;
        let Resolution {
            routes,
            problem,
            same_as_remote: _,
            fatal: _,
        } = resolution;
        let serving = if problem.is_some() {
            0
        } else {
            routes.pods.len()
        };
        let problem = problem.map(|p| match p {
            resolve::ResolveError::PodPortNameNotFound { .. } => {
                Unresolved::new(Reason::NotFound, format!("not found: {p}"))
            }
            other => Unresolved::new(Reason::NoReadyPod, other.to_string()),
        });
        let names: Vec<String> = match spec.spread {
            crate::spec::Spread::Single => {
                routes.pods.iter().take(1).map(|p| p.name.clone()).collect()
            }
            _ => routes.pods.iter().map(|p| p.name.clone()).collect(),
        };
        let remotes: Vec<Option<u16>> = (0..spec.ports.len())
            .map(|i| {
                routes
                    .pods
                    .iter()
                    .find_map(|p| p.ports.get(i).copied().flatten())
            })
            .collect();
        routes_tx.send_replace(Arc::new(routes));
        self.cell.edit_ports(|list| {
            for (port, remote) in list.iter_mut().zip(&remotes) {
                if remote.is_some() {
                    port.remote = *remote;
                }
            }
        });
        // New pods (or a new watch session) are a fresh chance: earlier connection errors no
        // longer describe the tunnel, so it is not kept "degraded" by them.
        let switched = self.cell.set_pods(names);
        let mut reason = missing.or(problem).or_else(|| self.no_pod_reason(view));
        if view.empty_namespace
            && reason
                .as_ref()
                .is_some_and(|r| r.reason == Reason::NotFound)
            && let Some(missing) = missing_namespace(kube, &spec.namespace).await
        {
            reason = Some(missing);
        }
        let listening = ports.all_bound();
        // A watch event is the API server answering, unless a connection found it unreachable
        // after the watches last heard from it.
        let reachable = self.cell.api_heard(view.heard);
        self.cell.update_facts(|f| {
            if switched || fresh {
                f.last_attempt_error = None;
            }
            f.resolved = true;
            f.api_reachable = reachable;
            f.listening = listening;
            f.ready_pods = serving;
            f.unresolved = reason;
        });
        Ok(())
    }

    fn missing_owner(&self, view: &View) -> Option<Unresolved> {
        let spec = &self.cell.spec;
        let (kind, plural, name) = match &spec.target {
            Target::Service(name) if view.service.is_none() => ("service", "services", name),
            Target::Deployment(name) if view.deployment.is_none() => {
                ("deployment", "deployments", name)
            }
            _ => return None,
        };
        Some(Unresolved::new(
            Reason::NotFound,
            format!(
                "not found: {kind} \"{name}\" in namespace {}; {}",
                spec.namespace,
                names_there(plural, &view.siblings)
            ),
        ))
    }

    /// Why a pod target has no Ready pod, or "waiting for a ready pod" for other targets.
    fn no_pod_reason(&self, view: &View) -> Option<Unresolved> {
        if let Target::Pod(name) = &self.cell.spec.target {
            return match view.pods.get(name) {
                None => Some(Unresolved::new(
                    Reason::NotFound,
                    format!(
                        "not found: pod \"{name}\" in namespace {}; {}",
                        self.cell.spec.namespace,
                        names_there("pods", &view.siblings)
                    ),
                )),
                Some(pod) if resolve::is_pod_ready(pod) && !resolve::is_terminating(pod) => None,
                Some(pod) => Some(Unresolved::new(Reason::NotReady, not_ready(pod))),
            };
        }
        if view.pods.is_empty() {
            return Some(Unresolved::new(
                Reason::NoReadyPod,
                "waiting for a ready pod (no pod matches the target)",
            ));
        }
        None
    }
}

/// "services there: a, b, c" (the first few), or "there are no services".
fn names_there(plural: &str, names: &[String]) -> String {
    const SHOWN: usize = 12;
    match names.len() {
        0 => format!("there are no {plural} in it"),
        n if n <= SHOWN => format!("{plural} there: {}", names.join(", ")),
        n => format!(
            "{plural} there: {} and {} more",
            names[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}

/// "pod not ready (CrashLoopBackOff, 2 restarts)": what the containers are doing, from the
/// pod's status as `kubectl get pods` shows it.
fn not_ready(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let doing = containers
        .iter()
        .find_map(|c| {
            let state = c.state.as_ref()?;
            state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
        })
        .unwrap_or_else(|| {
            if resolve::is_terminating(pod) {
                "Terminating".to_string()
            } else if phase != "Running" {
                phase.to_string()
            } else {
                "readiness check failing".to_string()
            }
        });
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    match restarts {
        0 => format!("pod not ready ({doing})"),
        1 => format!("pod not ready ({doing}, 1 restart)"),
        n => format!("pod not ready ({doing}, {n} restarts)"),
    }
}

/// When the namespace does not exist: "not found: namespace …" with the ones that do. `None`
/// when it exists or cannot be checked (no permission to read namespaces).
async fn missing_namespace(kube: &ContextClient, namespace: &str) -> Option<Unresolved> {
    let api: Api<Namespace> = Api::all(kube.client.clone());
    match api.get_opt(namespace).await {
        Ok(None) => {}
        _ => return None,
    }
    let known = match api.list(&Default::default()).await {
        Ok(list) => names_there(
            "namespaces",
            &list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect::<Vec<_>>(),
        ),
        Err(_) => "namespaces could not be listed".to_string(),
    };
    Some(Unresolved::new(
        Reason::NotFound,
        format!("not found: namespace \"{namespace}\"; {known}"),
    ))
}

/// What the feeds say about the target right now.
enum Observed {
    Fatal(String),
    Waiting,
    /// The view, the feeds' sessions (a change means a new watch) and their recoveries.
    Ready(Box<View>, (u64, u64), u64),
}

/// Wait for the next change of an optional feed; pending forever without one.
async fn changed<K>(
    rx: &mut Option<watch::Receiver<FeedState<K>>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

/// The tunnel's local ports: bound as soon as their number is known, each with its accept loop.
struct Ports {
    cell: Arc<TunnelCell>,
    paths: Vec<Arc<PortPath>>,
    bound: Vec<bool>,
    cancel: CancellationToken,
}

impl Ports {
    fn new(
        sup: &Supervisor,
        kube: &ContextClient,
        routes: watch::Receiver<Arc<Routes>>,
        picker: Arc<Picker>,
        api_trouble: Arc<Notify>,
    ) -> Self {
        let spec = &sup.cell.spec;
        let links = Arc::new(PodLinks::new(kube.client.clone(), &spec.namespace));
        let paths = (0..spec.ports.len())
            .map(|index| {
                Arc::new(PortPath {
                    cell: sup.cell.clone(),
                    context: spec.context.clone(),
                    url: kube.url.clone(),
                    namespace: spec.namespace.clone(),
                    routes: routes.clone(),
                    picker: picker.clone(),
                    index,
                    ready_wait: sup.options.ready_wait,
                    connect_timeout: sup.options.connect_timeout,
                    api_trouble: api_trouble.clone(),
                    links: links.clone(),
                })
            })
            .collect();
        Self {
            cell: sup.cell.clone(),
            paths,
            bound: vec![false; spec.ports.len()],
            cancel: sup.cancel.clone(),
        }
    }

    fn all_bound(&self) -> bool {
        self.bound.iter().all(|b| *b)
    }

    /// Bind every port whose local number is known (`same_as_remote` fills in `REMOTE`-only
    /// specs with a named remote). A bind error is fatal, in words naming the port.
    async fn bind_known(&mut self, same_as_remote: &[Option<u16>]) -> Result<(), String> {
        let spec = self.cell.spec.clone();
        for (i, port) in spec.ports.iter().enumerate() {
            if self.bound[i] {
                continue;
            }
            let number = match (port.local, &port.remote) {
                (LocalPort::Fixed(n), _) => n,
                (LocalPort::Any, _) => 0,
                (LocalPort::SameAsRemote, crate::spec::RemotePort::Number(n)) => *n,
                (LocalPort::SameAsRemote, _) => match same_as_remote.get(i).copied().flatten() {
                    Some(n) => n,
                    None => continue,
                },
            };
            let holder = listener::holder_label(&spec, &self.cell.origin);
            let bound = listener::bind(&spec.bind, number, &holder)
                .await
                .map_err(|e| e.to_string())?;
            self.start_accepting(i, bound);
        }
        let listening = self.all_bound();
        self.cell.update_facts(|f| f.listening = listening);
        Ok(())
    }

    fn start_accepting(&mut self, index: usize, bound: BoundPort) {
        let addresses = bound.addresses();
        let spec_text = self.cell.spec.ports[index].to_string();
        for address in &addresses {
            if let Some(message) = listener::exposure_warning(address.ip(), address.port()) {
                self.cell.event(EventKind::Warning { message });
            }
            self.cell.event(EventKind::Listening {
                address: *address,
                spec: spec_text.clone(),
            });
        }
        self.cell.edit_ports(|list| {
            if let Some(p) = list.get_mut(index) {
                p.local = addresses.clone();
            }
        });
        for l in bound.listeners {
            tokio::spawn(accept_loop(
                l,
                self.paths[index].clone(),
                self.cancel.clone(),
            ));
        }
        self.bound[index] = true;
    }
}

/// Accept connections until the tunnel stops; each gets its own task.
async fn accept_loop(listener: listener::Listener, path: Arc<PortPath>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(forward::serve(path.clone(), stream, peer, cancel.clone()));
            }
            Err(err) => {
                // Out of file descriptors and similar: report, pause briefly, keep serving.
                tracing::warn!(%err, "accept failed");
                path.cell
                    .record_error(format!("accepting a local connection failed: {err}"));
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}
