//! One supervisor task per tunnel: it binds the local ports, watches the target (the service or
//! deployment, and its pods) with `kube::runtime::watcher`, keeps the tunnel's [`Routes`]
//! current on every watch event, and records facts from which the state is derived.
//!
//! Everything is event-driven: a pod deleted or turning NotReady changes the routes the moment
//! the watch event arrives, so the next connection goes to another Ready pod with no sleep. A
//! broken watch is re-established with capped exponential backoff with jitter; a wall-clock jump
//! (sleep/wake) or a connection that found the API server unreachable re-establishes it at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::clock::ClockJump;
use super::forward::{self, PortPath};
use super::listener::{self, BoundPort};
use super::picker::{Picker, Routes};
use super::routes::{self, Resolution};
use super::stats::{Counters, EventKind, TunnelCell};
use crate::engine::{ClientSource, ContextClient, EngineOptions};
use crate::errors::{Access, ClusterError};
use crate::resolve::{self, PodQuery, TargetObject};
use crate::spec::{LocalPort, Target};

/// Everything one tunnel's supervisor needs; built by the engine.
pub(crate) struct Supervisor {
    pub cell: Arc<TunnelCell>,
    pub clients: Arc<dyn ClientSource>,
    pub options: Arc<EngineOptions>,
    pub cancel: CancellationToken,
    pub clock: watch::Receiver<ClockJump>,
}

/// Why one watch session ended.
enum Ended {
    /// Retrying cannot help (bad spec, forbidden, port in use): the tunnel fails.
    Fatal(String),
    /// The watch broke or the API server is unreachable: retry after a backoff.
    Broken(String),
    /// The clock jumped or a connection found the server gone: re-watch at once.
    Rewatch,
}

/// The target's objects as last seen by the watches.
#[derive(Default)]
struct View {
    service: Option<Service>,
    deployment: Option<Deployment>,
    /// The owner (service/deployment) watch has listed at least once.
    owner_synced: bool,
    pods: BTreeMap<String, Pod>,
    /// Pods being re-listed after an `Init` event; swapped in on `InitDone`.
    relist: Option<BTreeMap<String, Pod>>,
    pods_synced: bool,
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
        let (routes_tx, routes_rx) = watch::channel(Arc::new(Routes::default()));
        let api_trouble = Arc::new(Notify::new());
        let picker = Arc::new(Picker::new(spec.spread));
        let mut ports = Ports::new(self, &kube, routes_rx, picker, api_trouble.clone());
        if let Err(message) = ports.bind_known(&[]).await {
            self.cell.update_facts(|f| f.fatal = Some(message));
            return;
        }
        let mut backoff = Backoff::new(self.options.backoff_initial, self.options.backoff_max);
        loop {
            let ended = self
                .watch_once(&kube, &routes_tx, &mut ports, &api_trouble, &mut backoff)
                .await;
            match ended {
                Ended::Fatal(message) => {
                    self.cell.update_facts(|f| f.fatal = Some(message));
                    return;
                }
                Ended::Rewatch => backoff.reset(),
                Ended::Broken(message) => {
                    self.cell.record_error(message.clone());
                    let delay = backoff.next_delay();
                    self.cell.event(EventKind::Reconnecting {
                        attempt: backoff.attempt(),
                        delay_ms: delay.as_millis() as u64,
                        message,
                    });
                    self.sleep_or_jump(delay).await;
                }
            }
            Counters::add(&self.cell.counters.reconnects, 1);
        }
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
                        f.unresolved_reason = Some(message.clone());
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

    /// One watch session: (re)list and follow the target until something breaks.
    async fn watch_once(
        &mut self,
        kube: &ContextClient,
        routes_tx: &watch::Sender<Arc<Routes>>,
        ports: &mut Ports,
        api_trouble: &Notify,
        backoff: &mut Backoff,
    ) -> Ended {
        let spec = self.cell.spec.clone();
        let ns = spec.namespace.as_str();
        let mut owner_svc = match &spec.target {
            Target::Service(name) => Some(named_watch::<Service>(kube, ns, name)),
            _ => None,
        };
        let mut owner_dep = match &spec.target {
            Target::Deployment(name) => Some(named_watch::<Deployment>(kube, ns, name)),
            _ => None,
        };
        let mut view = View {
            owner_synced: owner_svc.is_none() && owner_dep.is_none(),
            ..View::default()
        };
        let mut query: Option<PodQuery> = None;
        let mut pod_stream: Option<BoxStream<'static, watcher::Result<Event<Pod>>>> = None;
        let sync_deadline = tokio::time::Instant::now() + self.options.connect_timeout * 2;
        if let Err(message) =
            self.follow_query(kube, &spec.target, &mut view, &mut query, &mut pod_stream)
        {
            return Ended::Fatal(message);
        }
        // The first publish of a session clears old connection errors: the watch is new.
        let mut fresh = true;
        loop {
            let synced = view.owner_synced && view.pods_synced;
            let step = tokio::select! {
                ev = next(&mut owner_svc) => ev.map(|e| apply_owner(&mut view.service, &mut view.owner_synced, e)),
                ev = next(&mut owner_dep) => ev.map(|e| apply_owner(&mut view.deployment, &mut view.owner_synced, e)),
                ev = next(&mut pod_stream) => ev.map(|e| apply_pod(&mut view, e)),
                _ = self.clock.changed() => {
                    let seconds = self.clock.borrow_and_update().seconds;
                    self.cell.event(EventKind::ClockJumped { seconds });
                    return Ended::Rewatch;
                }
                () = api_trouble.notified() => {
                    return Ended::Broken("a connection could not reach the API server".into());
                }
                () = tokio::time::sleep_until(sync_deadline), if !synced => {
                    let message = format!("the API server at {} did not answer within {} s", kube.url, (self.options.connect_timeout * 2).as_secs());
                    self.cell.update_facts(|f| f.api_reachable = false);
                    return Ended::Broken(message);
                }
            };
            match step {
                Some(Ok(())) => {}
                Some(Err(err)) => return self.watch_failed(kube, &spec.target, err),
                None => return Ended::Broken("the watch ended".into()),
            }
            if let Err(message) =
                self.follow_query(kube, &spec.target, &mut view, &mut query, &mut pod_stream)
            {
                return Ended::Fatal(message);
            }
            if view.owner_synced && view.pods_synced {
                backoff.reset();
                if let Err(message) = self.publish(&view, routes_tx, ports, fresh).await {
                    return Ended::Fatal(message);
                }
                fresh = false;
            }
        }
    }

    /// (Re)start the pod watch when the pod query changes (owner appeared or vanished, selector
    /// edited).
    fn follow_query(
        &self,
        kube: &ContextClient,
        target: &Target,
        view: &mut View,
        query: &mut Option<PodQuery>,
        pod_stream: &mut Option<BoxStream<'static, watcher::Result<Event<Pod>>>>,
    ) -> Result<(), String> {
        match self.pod_query(target, view)? {
            Some(q) if query.as_ref() != Some(&q) => {
                *pod_stream = Some(pod_watch(kube, &self.cell.spec.namespace, &q));
                view.pods.clear();
                view.pods_synced = false;
                *query = Some(q);
            }
            Some(_) => {}
            None => {
                *pod_stream = None;
                *query = None;
                view.pods.clear();
                view.pods_synced = view.owner_synced;
            }
        }
        Ok(())
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

    fn watch_failed(&self, kube: &ContextClient, target: &Target, err: watcher::Error) -> Ended {
        let resource = match target {
            Target::Service(_) => "services",
            Target::Deployment(_) => "deployments",
            _ => "pods",
        };
        let access = Access::watch(resource, Some(&self.cell.spec.namespace));
        let err = ClusterError::from_watcher(&self.cell.spec.context, &kube.url, &access, &err);
        let message = err.to_string();
        if err.is_transient() {
            if matches!(err, ClusterError::Unreachable { .. }) {
                self.cell.update_facts(|f| f.api_reachable = false);
            }
            Ended::Broken(message)
        } else {
            Ended::Fatal(message)
        }
    }

    /// Turn the view into routes and facts, bind ports whose number just became known.
    async fn publish(
        &self,
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
        let reason = missing.or(problem).or_else(|| self.no_pod_reason(view));
        let listening = ports.all_bound();
        self.cell.update_facts(|f| {
            if switched || fresh {
                f.last_attempt_error = None;
            }
            f.resolved = true;
            f.api_reachable = true;
            f.listening = listening;
            f.ready_pods = serving;
            f.unresolved_reason = reason;
        });
        Ok(())
    }

    fn missing_owner(&self, view: &View) -> Option<String> {
        let spec = &self.cell.spec;
        match &spec.target {
            Target::Service(name) if view.service.is_none() => Some(format!(
                "service \"{name}\" not found in namespace {}; waiting for it",
                spec.namespace
            )),
            Target::Deployment(name) if view.deployment.is_none() => Some(format!(
                "deployment \"{name}\" not found in namespace {}; waiting for it",
                spec.namespace
            )),
            _ => None,
        }
    }

    /// "waiting for a ready pod", with the best non-ready pod's situation when there is one.
    fn no_pod_reason(&self, view: &View) -> Option<String> {
        if let Target::Pod(name) = &self.cell.spec.target {
            return match view.pods.get(name) {
                None => Some(format!(
                    "pod \"{name}\" not found in namespace {}",
                    self.cell.spec.namespace
                )),
                Some(pod) => resolve::require_running(pod).err().map(|e| e.to_string()),
            };
        }
        if view.pods.is_empty() {
            return Some("waiting for a ready pod (no pod matches the target)".into());
        }
        None
    }
}

fn named_watch<K>(
    kube: &ContextClient,
    ns: &str,
    name: &str,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(kube.client.clone(), ns);
    watcher::watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .boxed()
}

fn pod_watch(
    kube: &ContextClient,
    ns: &str,
    query: &PodQuery,
) -> BoxStream<'static, watcher::Result<Event<Pod>>> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), ns);
    watcher::watcher(api, query.watcher_config()).boxed()
}

/// The next item of an optional stream; pending forever when there is no stream.
async fn next<S: Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn apply_owner<K>(
    slot: &mut Option<K>,
    synced: &mut bool,
    event: watcher::Result<Event<K>>,
) -> Result<(), watcher::Error> {
    match event? {
        Event::Apply(obj) | Event::InitApply(obj) => *slot = Some(obj),
        Event::Delete(_) => *slot = None,
        Event::Init => {}
        Event::InitDone => *synced = true,
    }
    Ok(())
}

fn apply_pod(view: &mut View, event: watcher::Result<Event<Pod>>) -> Result<(), watcher::Error> {
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    match event? {
        Event::Apply(pod) => {
            view.pods.insert(name(&pod), pod);
        }
        Event::Delete(pod) => {
            view.pods.remove(&name(&pod));
        }
        Event::Init => view.relist = Some(BTreeMap::new()),
        Event::InitApply(pod) => {
            view.relist
                .get_or_insert_with(BTreeMap::new)
                .insert(name(&pod), pod);
        }
        Event::InitDone => {
            view.pods = view.relist.take().unwrap_or_default();
            view.pods_synced = true;
        }
    }
    Ok(())
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
        let paths = (0..spec.ports.len())
            .map(|index| {
                Arc::new(PortPath {
                    cell: sup.cell.clone(),
                    pods: Api::namespaced(kube.client.clone(), &spec.namespace),
                    context: spec.context.clone(),
                    url: kube.url.clone(),
                    namespace: spec.namespace.clone(),
                    routes: routes.clone(),
                    picker: picker.clone(),
                    index,
                    ready_wait: sup.options.ready_wait,
                    connect_timeout: sup.options.connect_timeout,
                    api_trouble: api_trouble.clone(),
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
            let bound = listener::bind(&spec.bind, number)
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
async fn accept_loop(
    listener: tokio::net::TcpListener,
    path: Arc<PortPath>,
    cancel: CancellationToken,
) {
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
