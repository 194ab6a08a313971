//! Live lists of what is in a cluster (namespaces, pods, services, endpoints, deployments,
//! nodes, ingresses) for one context and namespace, kept current by watches — no polling — so
//! the UI can show them and offer them as tunnel targets.
//!
//! A [`Catalog`] runs one watcher task per list. The UI reads an immutable [`CatalogView`]
//! (cheap to clone: `Arc`s inside) with [`Catalog::view`], or waits for changes with
//! [`Catalog::subscribe`] (a `tokio::sync::watch` receiver; `view.version` grows on every change),
//! so it repaints only when something changed.
//!
//! Failures are per list and never fatal: a broken watch is restarted with capped, jittered
//! exponential backoff (0.2 s … 30 s) and re-lists when the server is back; when one list
//! recovers the others retry at once. After a wall-clock jump (sleep/wake), when watch
//! connections may be dead without an error, every list re-lists at once
//! ([`Catalog::reconnect`]). If listing namespaces
//! is forbidden, the namespace list falls back to the context's default namespace plus whatever
//! the user typed ([`Catalog::set_namespace`]), and `namespaces_forbidden` tells the UI to offer
//! a text field.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::ClientPool;
use crate::errors::{Access, ClusterError};
use crate::tunnel::clock::{ClockJump, ClockWatch};

/// How often the catalog compares the wall clock with the monotonic clock (sleep/wake).
const CLOCK_CHECK: Duration = Duration::from_secs(2);

/// A sorted (namespace, name) snapshot of one list. Cloning is one `Arc` increment.
pub type Snapshot<K> = Arc<Vec<Arc<K>>>;

/// Whether Ferry can talk to a context's API server, as the catalog last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    /// The first lists have not arrived yet.
    Connecting,
    /// Lists are live (some may still be forbidden; see [`CatalogView::lists`]).
    Connected,
    /// No usable connection; the reason says why (with URL, file or permission). Retrying.
    Error { reason: String },
}

/// The lists a catalog keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListKind {
    Namespaces,
    Nodes,
    Pods,
    Services,
    Endpoints,
    Deployments,
    Ingresses,
}

impl ListKind {
    /// The RBAC resource name (for "forbidden" messages).
    pub fn resource(self) -> &'static str {
        match self {
            ListKind::Namespaces => "namespaces",
            ListKind::Nodes => "nodes",
            ListKind::Pods => "pods",
            ListKind::Services => "services",
            ListKind::Endpoints => "endpoints",
            ListKind::Deployments => "deployments",
            ListKind::Ingresses => "ingresses",
        }
    }

    fn is_namespaced(self) -> bool {
        !matches!(self, ListKind::Namespaces | ListKind::Nodes)
    }
}

/// The state of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListState {
    /// Waiting for the first complete list.
    Loading,
    /// Live: the snapshot is complete and followed by a watch.
    Ready,
    /// The last attempt failed; the previous snapshot (if any) is kept and a retry is scheduled.
    Failed(ClusterError),
}

/// What the UI shows for one context and namespace: an immutable snapshot.
#[derive(Debug, Clone)]
pub struct CatalogView {
    pub context: String,
    /// The namespace the namespaced lists are about.
    pub namespace: String,
    /// Grows by one on every change, so a UI can tell whether to repaint.
    pub version: u64,
    pub connection: ConnectionState,
    /// Namespace names to offer. When listing is forbidden: the context's default namespace and
    /// the ones the user typed.
    pub namespaces: Arc<Vec<String>>,
    /// True when the user may not list namespaces: offer a text field to type one.
    pub namespaces_forbidden: bool,
    pub pods: Snapshot<Pod>,
    pub services: Snapshot<Service>,
    pub endpoints: Snapshot<Endpoints>,
    pub deployments: Snapshot<Deployment>,
    pub nodes: Snapshot<Node>,
    pub ingresses: Snapshot<Ingress>,
    /// Per-list state, for "loading…" and "no permission to list nodes" hints.
    pub lists: BTreeMap<ListKind, ListState>,
}

impl CatalogView {
    fn new(context: &str, namespace: &str) -> Self {
        let lists = [
            ListKind::Namespaces,
            ListKind::Nodes,
            ListKind::Pods,
            ListKind::Services,
            ListKind::Endpoints,
            ListKind::Deployments,
            ListKind::Ingresses,
        ]
        .into_iter()
        .map(|k| (k, ListState::Loading))
        .collect();
        CatalogView {
            context: context.to_string(),
            namespace: namespace.to_string(),
            version: 0,
            connection: ConnectionState::Connecting,
            namespaces: Arc::new(vec![namespace.to_string()]),
            namespaces_forbidden: false,
            pods: Arc::default(),
            services: Arc::default(),
            endpoints: Arc::default(),
            deployments: Arc::default(),
            nodes: Arc::default(),
            ingresses: Arc::default(),
            lists,
        }
    }

    /// A pod of the current namespace by name.
    pub fn pod(&self, name: &str) -> Option<&Arc<Pod>> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    /// A service of the current namespace by name.
    pub fn service(&self, name: &str) -> Option<&Arc<Service>> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// A deployment of the current namespace by name.
    pub fn deployment(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
    }
}

/// Live lists for one context and namespace. Cheap to clone; the watchers stop when the last
/// clone is dropped. Must be created inside a tokio runtime (it spawns tasks).
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

struct Shared {
    pool: ClientPool,
    publisher: Arc<Publisher>,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    cluster: Vec<JoinHandle<()>>,
    namespaced: Vec<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let tasks = lock(&self.tasks);
        for t in tasks.cluster.iter().chain(&tasks.namespaced) {
            t.abort();
        }
    }
}

/// The single place that changes the view: tasks call [`Publisher::update`].
struct Publisher {
    context: String,
    server: String,
    default_namespace: String,
    tx: watch::Sender<CatalogView>,
    /// Namespace names from the watch, before the fallback is applied.
    watched_namespaces: Mutex<Arc<Vec<String>>>,
    /// Namespaces the user typed (kept in the fallback list).
    typed: Mutex<Vec<String>>,
    /// Woken when a list recovers, so the other lists retry at once instead of waiting out
    /// their backoff: the server is evidently back.
    recovered: tokio::sync::Notify,
    /// Bumped by [`Catalog::reconnect`]: every list drops its watch and lists afresh at once.
    epoch: watch::Sender<u64>,
}

impl Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("context", &self.shared.publisher.context)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Starts watching `context`, in `namespace` (or the context's default namespace).
    pub fn start(pool: &ClientPool, context: &str, namespace: Option<&str>) -> Catalog {
        let default_namespace = pool.default_namespace(context);
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| default_namespace.clone());
        let (tx, _) = watch::channel(CatalogView::new(context, &namespace));
        let publisher = Arc::new(Publisher {
            context: context.to_string(),
            server: pool.server_url(context),
            default_namespace,
            tx,
            watched_namespaces: Mutex::new(Arc::default()),
            typed: Mutex::new(Vec::new()),
            recovered: tokio::sync::Notify::new(),
            epoch: watch::Sender::new(0),
        });
        let catalog = Catalog {
            shared: Arc::new(Shared {
                pool: pool.clone(),
                publisher,
                tasks: Mutex::new(Tasks::default()),
            }),
        };
        let cluster = vec![
            // Namespace names are kept by the publisher (see `derive`), not as objects.
            catalog.spawn_list::<Namespace>(ListKind::Namespaces, None, all, |_, _| {}),
            catalog.spawn_list::<Node>(ListKind::Nodes, None, all, |v, s| v.nodes = s),
        ];
        lock(&catalog.shared.tasks).cluster = cluster;
        catalog.spawn_namespaced(&namespace);
        let clock = ClockWatch::new();
        let jumps = clock.subscribe();
        let checker = clock.spawn(CLOCK_CHECK);
        catalog.follow_clock(jumps);
        lock(&catalog.shared.tasks).cluster.push(checker);
        catalog
    }

    /// Drops every watch and lists afresh now, skipping any backoff: for a "refresh" button,
    /// and after sleep/wake, when watch connections may be dead without anyone noticing.
    pub fn reconnect(&self) {
        self.shared.publisher.epoch.send_modify(|e| *e += 1);
    }

    /// Reconnects on every wall-clock jump reported by `jumps` (the catalog already watches
    /// the clock itself; an app can also feed it the engine's clock or an OS resume signal).
    pub fn follow_clock(&self, mut jumps: watch::Receiver<ClockJump>) {
        let publisher = Arc::downgrade(&self.shared.publisher);
        let task = tokio::spawn(async move {
            while jumps.changed().await.is_ok() {
                let Some(publisher) = publisher.upgrade() else {
                    return;
                };
                tracing::info!(context = %publisher.context, "clock jumped; catalog re-lists");
                publisher.epoch.send_modify(|e| *e += 1);
            }
        });
        lock(&self.shared.tasks).cluster.push(task);
    }

    /// The context this catalog watches.
    pub fn context(&self) -> &str {
        &self.shared.publisher.context
    }

    /// The current snapshot (cheap: `Arc` clones).
    pub fn view(&self) -> CatalogView {
        self.shared.publisher.tx.borrow().clone()
    }

    /// A receiver that wakes on every change (`changed().await`), for UIs and tests.
    pub fn subscribe(&self) -> watch::Receiver<CatalogView> {
        self.shared.publisher.tx.subscribe()
    }

    /// Switches the namespaced lists to another namespace (chosen from the list, or typed when
    /// listing namespaces is forbidden — a typed one is remembered in the fallback list).
    pub fn set_namespace(&self, namespace: &str) {
        let publisher = &self.shared.publisher;
        if publisher.tx.borrow().namespace == namespace {
            return;
        }
        {
            let mut typed = lock(&publisher.typed);
            if !typed.iter().any(|t| t == namespace) {
                typed.push(namespace.to_string());
            }
        }
        for t in lock(&self.shared.tasks).namespaced.drain(..) {
            t.abort();
        }
        publisher.update(|v| {
            v.namespace = namespace.to_string();
            v.pods = Arc::default();
            v.services = Arc::default();
            v.endpoints = Arc::default();
            v.deployments = Arc::default();
            v.ingresses = Arc::default();
            for (kind, state) in v.lists.iter_mut() {
                if kind.is_namespaced() {
                    *state = ListState::Loading;
                }
            }
        });
        self.spawn_namespaced(namespace);
    }

    fn spawn_namespaced(&self, namespace: &str) {
        let ns = Some(namespace);
        let tasks = vec![
            self.spawn_list::<Pod>(ListKind::Pods, ns, Api::namespaced, |v, s| v.pods = s),
            self.spawn_list::<Service>(ListKind::Services, ns, Api::namespaced, |v, s| {
                v.services = s
            }),
            self.spawn_list::<Endpoints>(ListKind::Endpoints, ns, Api::namespaced, |v, s| {
                v.endpoints = s
            }),
            self.spawn_list::<Deployment>(ListKind::Deployments, ns, Api::namespaced, |v, s| {
                v.deployments = s
            }),
            self.spawn_list::<Ingress>(ListKind::Ingresses, ns, Api::namespaced, |v, s| {
                v.ingresses = s
            }),
        ];
        lock(&self.shared.tasks).namespaced = tasks;
    }

    fn spawn_list<K>(
        &self,
        kind: ListKind,
        namespace: Option<&str>,
        api: ApiFn<K>,
        set: fn(&mut CatalogView, Snapshot<K>),
    ) -> JoinHandle<()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let list = ListWatch {
            pool: self.shared.pool.clone(),
            publisher: self.shared.publisher.clone(),
            kind,
            namespace: namespace.map(str::to_string),
            api,
            set,
        };
        tokio::spawn(list.run())
    }
}

/// One list's watcher loop.
struct ListWatch<K> {
    pool: ClientPool,
    publisher: Arc<Publisher>,
    kind: ListKind,
    namespace: Option<String>,
    /// `Api::namespaced` or `Api::all` (their scope bounds differ, so the caller picks).
    api: ApiFn<K>,
    set: fn(&mut CatalogView, Snapshot<K>),
}

type ApiFn<K> = fn(kube::Client, &str) -> Api<K>;

impl<K> ListWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    async fn run(self) {
        let mut backoff = Backoff::new();
        let mut epoch = self.publisher.epoch.subscribe();
        loop {
            epoch.mark_unchanged();
            let restart_now = match self.pool.client(&self.publisher.context).await {
                Ok(client) => tokio::select! {
                    now = self.watch(client, &mut backoff) => now,
                    _ = epoch.changed() => true,
                },
                Err(err) => {
                    self.failed(err);
                    false
                }
            };
            if !restart_now {
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = self.publisher.recovered.notified() => {}
                    _ = epoch.changed() => {}
                }
            }
        }
    }

    /// Lists and watches until the stream fails. Returns true when the failure only asks for a
    /// fresh list (410 Gone), which should happen at once.
    async fn watch(&self, client: kube::Client, backoff: &mut Backoff) -> bool {
        let api: Api<K> = (self.api)(client, self.namespace.as_deref().unwrap_or("default"));
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        let mut items: BTreeMap<(String, String), Arc<K>> = BTreeMap::new();
        let mut initial: Option<BTreeMap<(String, String), Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => initial = Some(BTreeMap::new()),
                Ok(Event::InitApply(obj)) => {
                    initial
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key(&obj), Arc::new(obj));
                }
                Ok(Event::InitDone) => {
                    items = initial.take().unwrap_or_default();
                    if backoff.reset() {
                        self.publisher.recovered.notify_waiters();
                    }
                    self.publish(&items);
                }
                Ok(Event::Apply(obj)) => {
                    items.insert(key(&obj), Arc::new(obj));
                    self.publish(&items);
                }
                Ok(Event::Delete(obj)) => {
                    items.remove(&key(&obj));
                    self.publish(&items);
                }
                Err(err) => {
                    let access = Access::watch(self.kind.resource(), self.namespace.as_deref());
                    let err = ClusterError::from_watcher(
                        &self.publisher.context,
                        &self.publisher.server,
                        &access,
                        &err,
                    );
                    let gone = matches!(&err, ClusterError::Api { code: 410, .. });
                    if !gone {
                        self.failed(err);
                    }
                    return gone;
                }
            }
        }
        false
    }

    fn publish(&self, items: &BTreeMap<(String, String), Arc<K>>) {
        let snapshot: Snapshot<K> = Arc::new(items.values().cloned().collect());
        let names: Option<Vec<String>> = (self.kind == ListKind::Namespaces)
            .then(|| items.keys().map(|(_, n)| n.clone()).collect());
        let (kind, set, namespace) = (self.kind, self.set, self.namespace.clone());
        if let Some(names) = names {
            *lock(&self.publisher.watched_namespaces) = Arc::new(names);
        }
        self.publisher.update(|v| {
            if namespace.is_some() && namespace.as_deref() != Some(v.namespace.as_str()) {
                return; // a late event from before a namespace switch
            }
            set(v, snapshot);
            v.lists.insert(kind, ListState::Ready);
        });
    }

    fn failed(&self, err: ClusterError) {
        tracing::debug!(context = %self.publisher.context, list = ?self.kind, %err, "catalog list failed; will retry");
        let (kind, namespace) = (self.kind, self.namespace.clone());
        self.publisher.update(|v| {
            if namespace.is_some() && namespace.as_deref() != Some(v.namespace.as_str()) {
                return;
            }
            v.lists.insert(kind, ListState::Failed(err));
        });
    }
}

impl Publisher {
    /// Applies a change, re-derives the connection state and namespace list, bumps the version
    /// and wakes subscribers.
    fn update(&self, change: impl FnOnce(&mut CatalogView)) {
        let watched = lock(&self.watched_namespaces).clone();
        let typed = lock(&self.typed).clone();
        self.tx.send_modify(|v| {
            change(v);
            derive(v, &watched, &typed, &self.default_namespace);
            v.version += 1;
        });
    }
}

/// Connection state and namespace choices, from the list states.
fn derive(
    v: &mut CatalogView,
    watched: &Arc<Vec<String>>,
    typed: &[String],
    default_namespace: &str,
) {
    let ns_state = v.lists.get(&ListKind::Namespaces);
    v.namespaces_forbidden = matches!(ns_state, Some(ListState::Failed(e)) if e.is_forbidden());
    v.namespaces = if matches!(ns_state, Some(ListState::Ready)) {
        watched.clone()
    } else {
        let mut names: Vec<String> = vec![default_namespace.to_string(), v.namespace.clone()];
        names.extend(typed.iter().cloned());
        names.extend(watched.iter().cloned());
        names.sort();
        names.dedup();
        Arc::new(names)
    };
    v.connection = connection_state(&v.lists);
}

/// Connected when any list is live (others may be forbidden or still recovering); an error when
/// nothing is live and a list failed for a reason that is not about that list alone
/// (unreachable, credentials, kubeconfig), or when every list failed; connecting otherwise.
fn connection_state(lists: &BTreeMap<ListKind, ListState>) -> ConnectionState {
    if lists.values().any(|s| matches!(s, ListState::Ready)) {
        return ConnectionState::Connected;
    }
    let failures: Vec<&ClusterError> = lists
        .values()
        .filter_map(|s| match s {
            ListState::Failed(e) => Some(e),
            _ => None,
        })
        .collect();
    let blocking = failures.iter().find(|e| {
        !matches!(
            e,
            ClusterError::Forbidden { .. } | ClusterError::NotFound { .. }
        )
    });
    match (blocking, failures.first()) {
        (Some(err), _) => ConnectionState::Error {
            reason: err.to_string(),
        },
        (None, Some(first)) if failures.len() == lists.len() => ConnectionState::Error {
            reason: first.to_string(),
        },
        _ => ConnectionState::Connecting,
    }
}

/// `Api::all` with the namespace argument ignored, for cluster-scoped lists.
fn all<K>(client: kube::Client, _namespace: &str) -> Api<K>
where
    K: Resource<DynamicType = ()>,
{
    Api::all(client)
}

fn key<K: Resource>(obj: &K) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Capped exponential backoff with full jitter: 0.2 s, 0.4 s … 30 s.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff { attempt: 0 }
    }

    /// Starts over; true if there had been failures (i.e. this is a recovery).
    fn reset(&mut self) -> bool {
        std::mem::take(&mut self.attempt) > 0
    }

    fn next_delay(&mut self) -> Duration {
        let cap = Self::MIN
            .saturating_mul(1u32 << self.attempt.min(8))
            .min(Self::MAX);
        self.attempt = self.attempt.saturating_add(1);
        let jitter: f64 = rand::random_range(0.5..=1.0);
        cap.mul_f64(jitter).max(Self::MIN)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
