//! Live lists of what is in a cluster (namespaces, pods, services, endpoints, deployments,
//! nodes, ingresses) for one context and namespace, kept current by watches — no polling — so
//! the UI can show them and offer them as tunnel targets.
//!
//! A [`Catalog`] does not watch anything itself: each list is one of the engine's shared
//! watches ([`crate::tunnel::feed`]), so the window showing namespace X and the tunnels into X
//! share one pod watch, one service watch…, and the catalog gets the engine's reconnection for
//! free: capped, jittered exponential backoff (0.2 s … 30 s), a re-list at once when another
//! list of the context recovers, after a wall-clock jump (sleep/wake) detected by the engine's
//! one clock check, and after a re-read kubeconfig; a list that does not answer in time counts
//! as unreachable. The catalog only turns feed states into one immutable [`CatalogView`].
//!
//! The UI reads that view (cheap to clone: `Arc`s inside) with [`Catalog::view`], or waits for
//! changes with [`Catalog::subscribe`] (a `tokio::sync::watch` receiver; `view.version` grows on
//! every change), so it repaints only when something changed.
//!
//! Failures are per list and never fatal. If listing namespaces is forbidden, the namespace
//! list falls back to the context's default namespace plus whatever the user typed
//! ([`Catalog::set_namespace`]), and `namespaces_forbidden` tells the UI to offer a text field.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::ClientPool;
use crate::engine::Engine;
use crate::errors::ClusterError;
use crate::tunnel::feed::{Feed, FeedState, Feeds, Watched};

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
    /// The error is the shared watch's ([`crate::tunnel::feed::FeedError::cause`]).
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

/// Live lists for one context and namespace. Cheap to clone; the catalog's handles to the
/// engine's shared watches are released when the last clone is dropped (a watch then stops
/// unless a tunnel still follows it). Must be created inside a tokio runtime (it spawns the
/// small tasks that copy watch states into the view).
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

struct Shared {
    feeds: Arc<Feeds>,
    publisher: Arc<Publisher>,
    lists: Mutex<Lists>,
}

/// The lists the catalog follows now. Dropping one releases its feed and stops its task.
#[derive(Default)]
struct Lists {
    cluster: Vec<Followed>,
    namespaced: Vec<Followed>,
}

/// One list: the handle that keeps the shared watch alive, and the task copying its states
/// into the view.
struct Followed {
    feed: Arc<dyn Rewatch>,
    task: JoinHandle<()>,
}

impl Drop for Followed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// [`Feed::rewatch`] for a feed of any kind, so the catalog can hold its lists in one vector.
trait Rewatch: Send + Sync {
    fn rewatch(&self);
}

impl<K: Send + Sync> Rewatch for Feed<K> {
    fn rewatch(&self) {
        Feed::rewatch(self);
    }
}

/// The single place that changes the view: the list tasks call [`Publisher::update`].
struct Publisher {
    context: String,
    default_namespace: String,
    tx: watch::Sender<CatalogView>,
    /// Namespace names from the watch, before the fallback is applied.
    watched_namespaces: Mutex<Arc<Vec<String>>>,
    /// Namespaces the user typed (kept in the fallback list).
    typed: Mutex<Vec<String>>,
}

impl Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("context", &self.shared.publisher.context)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Shows `context`, in `namespace` (or the context's default namespace, from `pool`),
    /// through `engine`'s shared watches.
    pub fn start(
        engine: &Engine,
        pool: &ClientPool,
        context: &str,
        namespace: Option<&str>,
    ) -> Catalog {
        let default_namespace = pool.default_namespace(context);
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| default_namespace.clone());
        let (tx, _) = watch::channel(CatalogView::new(context, &namespace));
        let publisher = Arc::new(Publisher {
            context: context.to_string(),
            default_namespace,
            tx,
            watched_namespaces: Mutex::new(Arc::default()),
            typed: Mutex::new(Vec::new()),
        });
        let catalog = Catalog {
            shared: Arc::new(Shared {
                feeds: engine.feeds().clone(),
                publisher,
                lists: Mutex::new(Lists::default()),
            }),
        };
        let feeds = &catalog.shared.feeds;
        let cluster = vec![
            // Namespace names are kept by the publisher (see `derive`), not as objects.
            catalog.follow(
                ListKind::Namespaces,
                None,
                feeds.cluster::<Namespace>(context),
                |_, _| {},
            ),
            catalog.follow(
                ListKind::Nodes,
                None,
                feeds.cluster::<Node>(context),
                |v, s| v.nodes = s,
            ),
        ];
        lock(&catalog.shared.lists).cluster = cluster;
        catalog.follow_namespace(&namespace);
        catalog
    }

    /// Drops every watch behind these lists and lists afresh now, skipping any backoff: for a
    /// "refresh" button. (Sleep/wake needs no call: the engine's clock check re-lists every
    /// watch by itself, and [`Engine::clock_jumped`] reports an OS resume signal.) Tunnels
    /// sharing a watch see one fresh list too, which costs them nothing.
    pub fn reconnect(&self) {
        let lists = lock(&self.shared.lists);
        for list in lists.cluster.iter().chain(&lists.namespaced) {
            list.feed.rewatch();
        }
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
    /// listing namespaces is forbidden — a typed one is remembered in the fallback list). The
    /// old namespace's watches are released at once.
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
        // Dropped outside the lock: a feed's last handle going away stops its task.
        let old = std::mem::take(&mut lock(&self.shared.lists).namespaced);
        drop(old);
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
        self.follow_namespace(namespace);
    }

    fn follow_namespace(&self, namespace: &str) {
        let (feeds, context) = (&self.shared.feeds, self.context());
        let ns = Some(namespace);
        let lists = vec![
            self.follow(
                ListKind::Pods,
                ns,
                feeds.namespaced::<Pod>(context, namespace),
                |v, s| v.pods = s,
            ),
            self.follow(
                ListKind::Services,
                ns,
                feeds.namespaced::<Service>(context, namespace),
                |v, s| v.services = s,
            ),
            self.follow(
                ListKind::Endpoints,
                ns,
                feeds.namespaced::<Endpoints>(context, namespace),
                |v, s| v.endpoints = s,
            ),
            self.follow(
                ListKind::Deployments,
                ns,
                feeds.namespaced::<Deployment>(context, namespace),
                |v, s| v.deployments = s,
            ),
            self.follow(
                ListKind::Ingresses,
                ns,
                feeds.namespaced::<Ingress>(context, namespace),
                |v, s| v.ingresses = s,
            ),
        ];
        lock(&self.shared.lists).namespaced = lists;
    }

    /// Follows one feed: every state it publishes becomes the list's snapshot and state.
    fn follow<K: Watched>(
        &self,
        kind: ListKind,
        namespace: Option<&str>,
        feed: Arc<Feed<K>>,
        set: fn(&mut CatalogView, Snapshot<K>),
    ) -> Followed {
        let list = ListFollower {
            publisher: self.shared.publisher.clone(),
            kind,
            namespace: namespace.map(str::to_string),
            set,
        };
        Followed {
            task: tokio::spawn(list.run(feed.subscribe())),
            feed,
        }
    }
}

/// Copies one feed's states into the view.
struct ListFollower<K> {
    publisher: Arc<Publisher>,
    kind: ListKind,
    /// `None` for cluster-scoped lists.
    namespace: Option<String>,
    set: fn(&mut CatalogView, Snapshot<K>),
}

impl<K: Watched> ListFollower<K> {
    /// Until the feed stops (its last handle dropped, or the list switched away).
    async fn run(self, mut states: watch::Receiver<FeedState<K>>) {
        let mut published: Option<Arc<BTreeMap<String, Arc<K>>>> = None;
        loop {
            let state = states.borrow_and_update().clone();
            self.publish(&state, &mut published);
            if states.changed().await.is_err() {
                return;
            }
        }
    }

    fn publish(&self, state: &FeedState<K>, published: &mut Option<Arc<BTreeMap<String, Arc<K>>>>) {
        let list_state = match (&state.error, state.synced) {
            (Some(error), _) => {
                tracing::debug!(context = %self.publisher.context, list = ?self.kind, message = %error.message, "catalog list failed; the feed retries");
                ListState::Failed(error.cause.clone())
            }
            (None, true) => ListState::Ready,
            (None, false) => ListState::Loading,
        };
        // Objects are rebuilt only when they changed (an error alone keeps the last snapshot).
        let fresh = published
            .as_ref()
            .is_none_or(|p| !Arc::ptr_eq(p, &state.objects));
        let snapshot: Option<Snapshot<K>> =
            fresh.then(|| Arc::new(state.objects.values().cloned().collect()));
        if fresh {
            *published = Some(state.objects.clone());
            if self.kind == ListKind::Namespaces {
                *lock(&self.publisher.watched_namespaces) =
                    Arc::new(state.objects.keys().cloned().collect());
            }
        }
        let (kind, set, namespace) = (self.kind, self.set, self.namespace.as_deref());
        self.publisher.update(|v| {
            if namespace.is_some() && namespace != Some(v.namespace.as_str()) {
                return; // a late state from before a namespace switch
            }
            if let Some(snapshot) = snapshot {
                set(v, snapshot);
            }
            v.lists.insert(kind, list_state);
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
