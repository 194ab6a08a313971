//! Shared watches: one `kube::runtime::watcher` per (kind, context, namespace), however many
//! tunnels and windows look at that namespace.
//!
//! Each watch is a long-lived HTTPS connection with its own buffers; thirty tunnels with one or
//! two watches each, plus the window's lists, cost far more memory and API-server load than the
//! two or three namespaces they actually look at. So a [`Feed`] watches every object of one kind
//! in one namespace (or, for cluster-scoped kinds such as nodes, the whole cluster) and
//! publishes the whole set; tunnel supervisors and the [catalog](crate::catalog) subscribe and
//! pick out what they need (client-side, with the same label matching the API server uses).
//!
//! The feed owns reconnection, so every consumer gets the same behaviour from one
//! implementation: a broken watch is retried with capped exponential backoff and jitter; a
//! wall-clock jump (sleep/wake), a poke from a connection that found the API server
//! unreachable, a re-read kubeconfig, another feed of the same context recovering, or an
//! explicit [`Feed::rewatch`] re-establishes it at once; a re-list that does not finish in time
//! counts as "unreachable" (a paused or half-dead server accepts connections but never answers);
//! and a watch that stays quiet too long is re-listed to prove the server still answers.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::clock::ClockJump;
use crate::engine::ClientSource;
use crate::errors::{Access, ClusterError};

/// What a feed knows right now. Cheap to clone (the objects are shared).
#[derive(Debug)]
pub struct FeedState<K> {
    /// Every object of the kind in the namespace, by name, as of the last event. Each object is
    /// its own `Arc`, so an event replaces one entry and consumers can tell unchanged objects
    /// apart by pointer (the window re-renders only the rows that changed).
    pub objects: Arc<BTreeMap<String, Arc<K>>>,
    /// The objects are a complete listing (at least one list finished).
    pub synced: bool,
    /// Counts successful (re)lists; a supervisor seeing it change knows the watch is new.
    pub session: u64,
    /// Why the watch is broken right now; `None` while it is healthy.
    pub error: Option<FeedError>,
    /// Re-lists that followed a failure or a clock jump (not the routine quiet refresh, and not
    /// a [`Feed::rewatch`] someone asked for).
    pub recoveries: u64,
    /// When the watch last delivered something: evidence that the server answered then.
    pub heard: Option<std::time::Instant>,
}

impl<K> Clone for FeedState<K> {
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
            synced: self.synced,
            session: self.session,
            error: self.error.clone(),
            recoveries: self.recoveries,
            heard: self.heard,
        }
    }
}

impl<K> Default for FeedState<K> {
    fn default() -> Self {
        Self {
            objects: Arc::default(),
            synced: false,
            session: 0,
            error: None,
            recoveries: 0,
            heard: None,
        }
    }
}

/// A broken watch, in words, with what the feed will do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedError {
    /// `cause` in words (what tunnels record and show).
    pub message: String,
    /// The classified failure, for consumers that act on its kind: the catalog falls back to
    /// typed namespaces when listing them is [forbidden](ClusterError::is_forbidden), and tells
    /// "this list is not allowed" from "the cluster is down".
    pub cause: ClusterError,
    /// Retrying may help without anyone acting (server down, timeouts).
    pub transient: bool,
    /// The API server could not be reached at all.
    pub unreachable: bool,
    /// Failures in a row, and the delay before the next try.
    pub attempt: u32,
    pub retry_in: Duration,
    /// The last moment the watch had news from the server (its last event, or when its
    /// request was sent): anything the server said after it outdates this error.
    pub since: std::time::Instant,
}

impl FeedError {
    fn new(cause: ClusterError, since: std::time::Instant) -> Self {
        FeedError {
            message: cause.to_string(),
            transient: cause.is_transient(),
            unreachable: matches!(cause, ClusterError::Unreachable { .. }),
            cause,
            attempt: 0,
            retry_in: Duration::ZERO,
            since,
        }
    }
}

/// A handle to one shared watch. The watch stops when the last handle is dropped.
pub struct Feed<K> {
    state: watch::Receiver<FeedState<K>>,
    poke: Arc<Poke>,
    _stop: tokio_util::sync::DropGuard,
}

impl<K> Feed<K> {
    /// A receiver of every new state. It does not keep the watch alive: once the last
    /// [`Feed`] handle is gone the watch stops and `changed()` returns an error.
    pub fn subscribe(&self) -> watch::Receiver<FeedState<K>> {
        self.state.clone()
    }

    /// Ask the feed to re-establish its watch now: a connection attempt that started at
    /// `attempt` found the server unreachable. Ignored when the watch has heard from the server
    /// since then (the attempt was stuck in a pause that has ended), so a late failure never
    /// breaks a watch that works.
    pub fn poke(&self, attempt: std::time::Instant) {
        self.poke.raise(attempt);
    }

    /// Drop the current watch and list afresh now, skipping any backoff delay: for a
    /// "refresh" button, when someone knows better than the feed that its connection may be
    /// stale. Not counted as a recovery (nothing had failed).
    pub fn rewatch(&self) {
        self.poke.rewatch.notify_one();
    }
}

/// Pokes from connections, with the start of the latest attempt that found the server
/// unreachable, so the feed can tell news from old news; and explicit re-watch requests.
#[derive(Default)]
struct Poke {
    latest: Mutex<Option<std::time::Instant>>,
    wake: Notify,
    rewatch: Notify,
}

impl Poke {
    fn raise(&self, attempt: std::time::Instant) {
        {
            let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
            *latest = (*latest).max(Some(attempt));
        }
        self.wake.notify_one();
    }

    /// Whether an attempt that started after `heard` found the server unreachable.
    fn since(&self, heard: std::time::Instant) -> bool {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.is_some_and(|at| at > heard)
    }
}

/// Retry policy and clock shared by every feed of an engine.
#[derive(Clone)]
pub struct FeedSettings {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A (re)list that takes longer than this counts as "API server unreachable".
    pub list_timeout: Duration,
    /// A watch that delivers nothing for this long is re-listed. A paused or half-dead API
    /// server keeps the connection open but sends nothing, and kube's watcher renews its watch
    /// request silently (every ~290 s), so without this an idle tunnel would never notice. The
    /// re-list either succeeds (a cheap LIST per namespace every few minutes) or times out and
    /// the tunnels say "API server unreachable".
    pub quiet_relist: Duration,
    pub clock: watch::Receiver<ClockJump>,
    /// Ticks when the kubeconfig was re-read: a watch waiting out its backoff retries at once
    /// (the new credentials or CA may be what it was missing).
    pub kubeconfig: Option<watch::Receiver<u64>>,
}

/// A kind a feed can watch: any typed Kubernetes resource.
pub trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// Which feed: the kind, the context, and the namespace (`None` for cluster-scoped kinds).
type Key = (TypeId, String, Option<String>);

/// The engine's shared watches, by kind, context and namespace.
///
/// One registry for every kind (instead of one map per kind) so that any consumer — a tunnel
/// following its pods, the window listing ingresses or nodes — asks for a feed the same way and
/// gets the one that already runs if anybody else watches the same thing.
pub struct Feeds {
    settings: FeedSettings,
    clients: Arc<dyn ClientSource>,
    /// Where feed tasks run, so a feed can be asked for from any thread.
    runtime: tokio::runtime::Handle,
    /// `Weak<Feed<K>>` for the `K` in the key (type-erased so one map holds every kind).
    feeds: Mutex<HashMap<Key, Weak<dyn Any + Send + Sync>>>,
    /// Per context: bumped when one of its feeds recovers from a failure, so the context's
    /// other feeds that wait out a backoff retry now — the server is evidently back.
    recovered: Mutex<HashMap<String, Arc<watch::Sender<u64>>>>,
}

impl Feeds {
    /// Feeds whose tasks run on `runtime`, with clients from `clients`.
    pub fn new(
        settings: FeedSettings,
        clients: Arc<dyn ClientSource>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            settings,
            clients,
            runtime,
            feeds: Mutex::default(),
            recovered: Mutex::default(),
        }
    }

    /// The shared watch of every `K` in one namespace, started if nobody watches it yet.
    pub fn namespaced<K>(&self, context: &str, namespace: &str) -> Arc<Feed<K>>
    where
        K: Watched + kube::Resource<Scope = NamespaceResourceScope>,
    {
        self.shared(context, Some(namespace), |client, namespace| {
            Api::namespaced(client, namespace.unwrap_or("default"))
        })
    }

    /// The shared watch of every `K` of a cluster-scoped kind (namespaces, nodes), started if
    /// nobody watches it yet.
    pub fn cluster<K>(&self, context: &str) -> Arc<Feed<K>>
    where
        K: Watched + kube::Resource<Scope = ClusterResourceScope>,
    {
        self.shared(context, None, |client, _| Api::all(client))
    }

    /// How many feeds run now (for tests and diagnostics).
    pub fn running(&self) -> usize {
        let map = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter(|w| w.strong_count() > 0).count()
    }

    fn shared<K: Watched>(
        &self,
        context: &str,
        namespace: Option<&str>,
        api: ApiFn<K>,
    ) -> Arc<Feed<K>> {
        let mut map = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        let key = (
            TypeId::of::<K>(),
            context.to_string(),
            namespace.map(str::to_string),
        );
        if let Some(feed) = map
            .get(&key)
            .and_then(Weak::upgrade)
            .and_then(|any| any.downcast::<Feed<K>>().ok())
        {
            return feed;
        }
        let (tx, rx) = watch::channel(FeedState::default());
        let poke = Arc::new(Poke::default());
        let stop = CancellationToken::new();
        let recovered = self.recovered(context);
        let task = FeedTask {
            api,
            access: Access::watch(&K::plural(&()), namespace),
            clients: self.clients.clone(),
            context: context.to_string(),
            namespace: namespace.map(str::to_string),
            url: String::new(),
            settings: self.settings.clone(),
            poke: poke.clone(),
            others_recovered: recovered.subscribe(),
            recovered,
            tx,
        };
        self.runtime.spawn(task.run(stop.clone()));
        let feed = Arc::new(Feed {
            state: rx,
            poke,
            _stop: stop.drop_guard(),
        });
        let erased: Arc<dyn Any + Send + Sync> = feed.clone();
        map.insert(key, Arc::downgrade(&erased));
        feed
    }

    fn recovered(&self, context: &str) -> Arc<watch::Sender<u64>> {
        let mut map = self.recovered.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(context.to_string())
            .or_insert_with(|| Arc::new(watch::Sender::new(0)))
            .clone()
    }
}

/// `Api::namespaced` or `Api::all`: their scope bounds differ, so the registry picks.
type ApiFn<K> = fn(kube::Client, Option<&str>) -> Api<K>;

/// Why one watch session ended.
enum Ended {
    Failed(FeedError),
    /// The clock jumped: re-list at once.
    Rewatch,
    /// Someone asked for a fresh list ([`Feed::rewatch`]): re-list at once, not a recovery.
    Refresh,
    /// Nothing arrived for [`FeedSettings::quiet_relist`]: re-list to prove the server still
    /// answers.
    Quiet,
}

struct FeedTask<K: Clone> {
    api: ApiFn<K>,
    access: Access,
    clients: Arc<dyn ClientSource>,
    context: String,
    namespace: Option<String>,
    /// The API server's URL as the last client named it (for "cannot reach …" messages).
    url: String,
    settings: FeedSettings,
    poke: Arc<Poke>,
    /// This context's recovery signal: bumped after this feed recovers…
    recovered: Arc<watch::Sender<u64>>,
    /// …and watched while waiting out a backoff.
    others_recovered: watch::Receiver<u64>,
    tx: watch::Sender<FeedState<K>>,
}

/// Resolves when `rx` changes; never when its sender is gone (so a dropped clock or
/// kubeconfig watcher cannot turn a `select!` into a busy loop).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl<K: Watched> FeedTask<K> {
    async fn run(mut self, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.follow() => {}
        }
    }

    async fn follow(&mut self) {
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let mut recovering = false;
        loop {
            match self.session(&mut backoff, &mut recovering).await {
                Ended::Quiet => {}
                Ended::Refresh => backoff.reset(),
                Ended::Rewatch => {
                    backoff.reset();
                    recovering = true;
                }
                Ended::Failed(mut error) => {
                    recovering = true;
                    let delay = backoff.next_delay();
                    error.attempt = backoff.attempt();
                    error.retry_in = delay;
                    tracing::debug!(resource = %self.access.resource, namespace = ?self.namespace, message = %error.message, ?delay, "watch broken");
                    self.tx.send_modify(|s| s.error = Some(error));
                    // Only recoveries from now on say the server is back.
                    self.others_recovered.mark_unchanged();
                    let kubeconfig = async {
                        match self.settings.kubeconfig.as_mut() {
                            Some(changes) => changed(changes).await,
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = changed(&mut self.settings.clock) => {}
                        () = changed(&mut self.others_recovered) => {
                            tracing::debug!(resource = %self.access.resource, "another watch of this context recovered; retrying now");
                            backoff.reset();
                        }
                        () = self.poke.rewatch.notified() => backoff.reset(),
                        () = kubeconfig => {
                            tracing::debug!(resource = %self.access.resource, "kubeconfig changed; retrying the watch now");
                            backoff.reset();
                        }
                    }
                }
            }
        }
    }

    /// List, then follow changes, until the watch breaks or must be renewed.
    async fn session(&mut self, backoff: &mut Backoff, recovering: &mut bool) -> Ended {
        let mut since = std::time::Instant::now();
        let kube = match self.clients.client(&self.context).await {
            Ok(kube) => kube,
            Err(err) => return Ended::Failed(FeedError::new(err, since)),
        };
        self.url = kube.url;
        let api = (self.api)(kube.client, self.namespace.as_deref());
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        let deadline = tokio::time::Instant::now() + self.settings.list_timeout;
        let mut quiet_until = deadline + self.settings.quiet_relist;
        let mut listed = false;
        let mut relist: Option<BTreeMap<String, Arc<K>>> = None;
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                () = tokio::time::sleep_until(quiet_until), if listed => return Ended::Quiet,
                () = changed(&mut self.settings.clock) => return Ended::Rewatch,
                () = self.poke.rewatch.notified() => return Ended::Refresh,
                () = self.poke.wake.notified() => {
                    if self.poke.since(since) {
                        return Ended::Failed(self.unreachable("a connection could not reach the API server", since));
                    }
                    continue;
                }
                () = tokio::time::sleep_until(deadline), if !listed => {
                    let text = format!("no answer to a list within {} s", self.settings.list_timeout.as_secs());
                    return Ended::Failed(self.unreachable(&text, since));
                }
            };
            match event {
                None => return Ended::Failed(self.unreachable("the watch ended", since)),
                Some(Err(err)) => return Ended::Failed(self.classify(&err, since)),
                Some(Ok(event)) => {
                    since = std::time::Instant::now();
                    // Recorded without waking subscribers: the event itself wakes them if it
                    // changes anything.
                    self.tx.send_if_modified(|s| {
                        s.heard = Some(since);
                        false
                    });
                    quiet_until = tokio::time::Instant::now() + self.settings.quiet_relist;
                    if self.apply(event, &mut relist, *recovering) {
                        listed = true;
                        if std::mem::take(recovering) {
                            self.recovered.send_modify(|n| *n += 1);
                            // Our own recovery is no news to us.
                            self.others_recovered.mark_unchanged();
                        }
                        backoff.reset();
                    }
                }
            }
        }
    }

    /// Apply one event; true when it completed a (re)list.
    fn apply(
        &self,
        event: Event<K>,
        relist: &mut Option<BTreeMap<String, Arc<K>>>,
        recovering: bool,
    ) -> bool {
        let name = |o: &K| o.meta().name.clone().unwrap_or_default();
        match event {
            Event::Init => *relist = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&obj), Arc::new(obj));
            }
            Event::InitDone => {
                let objects = Arc::new(relist.take().unwrap_or_default());
                self.tx.send_modify(|s| {
                    s.objects = objects;
                    s.synced = true;
                    s.session += 1;
                    s.error = None;
                    s.recoveries += u64::from(recovering);
                });
                return true;
            }
            Event::Apply(obj) => self.tx.send_modify(|s| {
                Arc::make_mut(&mut s.objects).insert(name(&obj), Arc::new(obj));
            }),
            Event::Delete(obj) => self.tx.send_modify(|s| {
                Arc::make_mut(&mut s.objects).remove(&name(&obj));
            }),
        }
        false
    }

    fn unreachable(&self, reason: &str, since: std::time::Instant) -> FeedError {
        let err = ClusterError::Unreachable {
            context: self.context.clone(),
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        FeedError::new(err, since)
    }

    fn classify(&self, err: &watcher::Error, since: std::time::Instant) -> FeedError {
        let err = ClusterError::from_watcher(&self.context, &self.url, &self.access, err);
        FeedError::new(err, since)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod, Service};

    use super::*;
    use crate::engine::FixedClients;

    /// Feeds over a client whose server never answers: the registry is what is tested here.
    fn feeds() -> Feeds {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("literal URL"));
        let client = kube::Client::try_from(config).expect("a client for a literal URL");
        let clients = FixedClients::new().with("demo", client, "http://127.0.0.1:9");
        let settings = FeedSettings {
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            list_timeout: Duration::from_secs(10),
            quiet_relist: Duration::from_secs(330),
            clock: watch::channel(ClockJump::default()).1,
            kubeconfig: None,
        };
        Feeds::new(
            settings,
            Arc::new(clients),
            tokio::runtime::Handle::current(),
        )
    }

    #[tokio::test]
    async fn one_feed_per_kind_context_and_namespace_until_its_last_handle_goes() {
        let feeds = feeds();
        let pods = feeds.namespaced::<Pod>("demo", "default");
        let again = feeds.namespaced::<Pod>("demo", "default");
        assert!(Arc::ptr_eq(&pods, &again), "the same watch is shared");
        let services = feeds.namespaced::<Service>("demo", "default");
        let other_namespace = feeds.namespaced::<Pod>("demo", "shop");
        let nodes = feeds.cluster::<Node>("demo");
        assert!(!Arc::ptr_eq(&pods, &other_namespace));
        assert_eq!(feeds.running(), 4, "pods×2 namespaces, services, nodes");

        drop(pods);
        assert_eq!(feeds.running(), 4, "one handle to default's pods is left");
        drop(again);
        assert_eq!(feeds.running(), 3, "the last handle stops the watch");
        let fresh = feeds.namespaced::<Pod>("demo", "default");
        assert_eq!(
            fresh.subscribe().borrow().session,
            0,
            "a new watch starts from scratch"
        );
        drop((services, other_namespace, nodes));
        assert_eq!(feeds.running(), 1);
    }
}
