//! Shared watches: one `kube::runtime::watcher` per (context, namespace, kind), however many
//! tunnels look at that namespace.
//!
//! Each watch is a long-lived HTTPS connection with its own buffers; thirty tunnels with one or
//! two watches each cost far more memory and API-server load than the two or three namespaces
//! they actually look at. So a [`Feed`] watches every object of one kind in one namespace and
//! publishes the whole set; tunnel supervisors subscribe and pick out their own objects
//! (client-side, with the same label matching the API server uses).
//!
//! The feed owns reconnection: a broken watch is retried with capped exponential backoff and
//! jitter, a wall-clock jump (sleep/wake) or a poke from a connection that found the API server
//! unreachable re-establishes it at once, and a re-list that does not finish in time counts as
//! "unreachable" (a paused or half-dead server accepts connections but never answers).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::clock::ClockJump;
use crate::engine::ContextClient;
use crate::errors::{Access, ClusterError};

/// What a feed knows right now. Cheap to clone (the objects are shared).
#[derive(Debug)]
pub struct FeedState<K> {
    /// Every object of the kind in the namespace, by name, as of the last event.
    pub objects: Arc<BTreeMap<String, K>>,
    /// The objects are a complete listing (at least one list finished).
    pub synced: bool,
    /// Counts successful (re)lists; a supervisor seeing it change knows the watch is new.
    pub session: u64,
    /// Why the watch is broken right now; `None` while it is healthy.
    pub error: Option<FeedError>,
    /// Re-lists that followed a failure or a clock jump (not the routine quiet refresh).
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
    pub message: String,
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

/// A handle to one shared watch. The watch stops when the last handle is dropped.
pub struct Feed<K> {
    state: watch::Receiver<FeedState<K>>,
    poke: Arc<Poke>,
    _stop: tokio_util::sync::DropGuard,
}

impl<K> Feed<K> {
    /// A receiver of every new state.
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
}

/// Pokes from connections, with the start of the latest attempt that found the server
/// unreachable, so the feed can tell news from old news.
#[derive(Default)]
struct Poke {
    latest: Mutex<Option<std::time::Instant>>,
    wake: Notify,
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

type Key = (String, String);

/// The engine's shared watches, by (context, namespace) and kind.
pub struct Feeds {
    settings: FeedSettings,
    pods: Mutex<HashMap<Key, Weak<Feed<Pod>>>>,
    services: Mutex<HashMap<Key, Weak<Feed<Service>>>>,
    deployments: Mutex<HashMap<Key, Weak<Feed<Deployment>>>>,
}

impl Feeds {
    pub fn new(settings: FeedSettings) -> Self {
        Self {
            settings,
            pods: Mutex::default(),
            services: Mutex::default(),
            deployments: Mutex::default(),
        }
    }

    /// The shared pod watch of a namespace, started if nobody watches it yet.
    pub fn pods(&self, kube: &ContextClient, context: &str, namespace: &str) -> Arc<Feed<Pod>> {
        shared(&self.pods, &self.settings, kube, context, namespace, "pods")
    }

    pub fn services(
        &self,
        kube: &ContextClient,
        context: &str,
        namespace: &str,
    ) -> Arc<Feed<Service>> {
        shared(
            &self.services,
            &self.settings,
            kube,
            context,
            namespace,
            "services",
        )
    }

    pub fn deployments(
        &self,
        kube: &ContextClient,
        context: &str,
        namespace: &str,
    ) -> Arc<Feed<Deployment>> {
        shared(
            &self.deployments,
            &self.settings,
            kube,
            context,
            namespace,
            "deployments",
        )
    }
}

fn shared<K>(
    map: &Mutex<HashMap<Key, Weak<Feed<K>>>>,
    settings: &FeedSettings,
    kube: &ContextClient,
    context: &str,
    namespace: &str,
    resource: &'static str,
) -> Arc<Feed<K>>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, weak| weak.strong_count() > 0);
    let key = (context.to_string(), namespace.to_string());
    if let Some(feed) = map.get(&key).and_then(Weak::upgrade) {
        return feed;
    }
    let (tx, rx) = watch::channel(FeedState::default());
    let poke = Arc::new(Poke::default());
    let stop = CancellationToken::new();
    let task = FeedTask {
        api: Api::namespaced(kube.client.clone(), namespace),
        access: Access::watch(resource, Some(namespace)),
        context: context.to_string(),
        url: kube.url.clone(),
        settings: settings.clone(),
        poke: poke.clone(),
        tx,
    };
    tokio::spawn(task.run(stop.clone()));
    let feed = Arc::new(Feed {
        state: rx,
        poke,
        _stop: stop.drop_guard(),
    });
    map.insert(key, Arc::downgrade(&feed));
    feed
}

/// Why one watch session ended.
enum Ended {
    Failed(FeedError),
    /// The clock jumped: re-list at once.
    Rewatch,
    /// Nothing arrived for [`FeedSettings::quiet_relist`]: re-list to prove the server still
    /// answers.
    Quiet,
}

struct FeedTask<K: Clone> {
    api: Api<K>,
    access: Access,
    context: String,
    url: String,
    settings: FeedSettings,
    poke: Arc<Poke>,
    tx: watch::Sender<FeedState<K>>,
}

impl<K> FeedTask<K>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
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
                Ended::Rewatch => {
                    backoff.reset();
                    recovering = true;
                }
                Ended::Failed(mut error) => {
                    recovering = true;
                    let delay = backoff.next_delay();
                    error.attempt = backoff.attempt();
                    error.retry_in = delay;
                    tracing::debug!(resource = %self.access.resource, message = %error.message, ?delay, "watch broken");
                    self.tx.send_modify(|s| s.error = Some(error));
                    let kubeconfig = async {
                        match self.settings.kubeconfig.as_mut() {
                            Some(changes) => {
                                if changes.changed().await.is_err() {
                                    std::future::pending::<()>().await;
                                }
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = self.settings.clock.changed() => {}
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
        let mut stream = watcher::watcher(self.api.clone(), watcher::Config::default()).boxed();
        let deadline = tokio::time::Instant::now() + self.settings.list_timeout;
        let mut quiet_until = deadline + self.settings.quiet_relist;
        let mut listed = false;
        let mut relist: Option<BTreeMap<String, K>> = None;
        let mut since = std::time::Instant::now();
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                () = tokio::time::sleep_until(quiet_until), if listed => return Ended::Quiet,
                _ = self.settings.clock.changed() => return Ended::Rewatch,
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
                        *recovering = false;
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
        relist: &mut Option<BTreeMap<String, K>>,
        recovering: bool,
    ) -> bool {
        let name = |o: &K| o.meta().name.clone().unwrap_or_default();
        match event {
            Event::Init => *relist = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&obj), obj);
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
                Arc::make_mut(&mut s.objects).insert(name(&obj), obj);
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
        FeedError {
            message: err.to_string(),
            transient: true,
            unreachable: true,
            attempt: 0,
            retry_in: Duration::ZERO,
            since,
        }
    }

    fn classify(&self, err: &watcher::Error, since: std::time::Instant) -> FeedError {
        let err = ClusterError::from_watcher(&self.context, &self.url, &self.access, err);
        FeedError {
            message: err.to_string(),
            transient: err.is_transient(),
            unreachable: matches!(err, ClusterError::Unreachable { .. }),
            attempt: 0,
            retry_in: Duration::ZERO,
            since,
        }
    }
}
