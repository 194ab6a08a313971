//! WATCH: a chunked stream of `{"type":…,"object":…}` lines, as kube-apiserver's watch cache
//! serves it.
//!
//! - Without `resourceVersion` (or with `0`) the stream starts with a synthetic `ADDED` per
//!   existing object, then live changes.
//! - With a `resourceVersion` it replays every retained change after it; one older than the
//!   history gets a single `ERROR` event with a 410 `Expired` `Status` (HTTP 200), which is
//!   what makes reflectors and kube-rs watchers re-list.
//! - Selectors filter events; an object that stops matching is sent as `DELETED`.
//! - `allowWatchBookmarks=true` adds periodic `BOOKMARK`s; `sendInitialEvents=true` ends the
//!   initial events with the `k8s.io/initial-events-end` bookmark.
//! - `timeoutSeconds` ends the stream cleanly.
//! - With `Accept: …as=Table…` each object is a one-row `Table` (column definitions only in
//!   the first event), which is what `kubectl get -w` reads.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval};

use super::negotiate::Representation;
use super::read::{Selectors, partial_metadata, table_options, with_type_meta};
use super::status::ApiError;
use super::{Ctx, table};
use crate::resources::Resource;
use crate::store::{Change, EventType, ObjectKey};

/// How often a bookmark is sent when the client allows them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// The apiserver's default request timeout for watches without `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// A watched resource (plural) and namespace (`None`: cluster-wide).
type WatchKey = (String, Option<String>);

/// The watch streams open right now, per resource and namespace (`None`: cluster-wide). Tests
/// read it to prove how many watches a client really holds (Ferry shares one watch per
/// namespace and kind between its tunnels and its window), which no API request can tell.
#[derive(Debug, Default, Clone)]
pub struct OpenWatches {
    open: Arc<Mutex<BTreeMap<WatchKey, usize>>>,
}

impl OpenWatches {
    /// How many watch streams on `resource` (plural, e.g. `pods`) in `namespace` are open.
    pub fn count(&self, resource: &str, namespace: Option<&str>) -> usize {
        let key = (resource.to_string(), namespace.map(str::to_string));
        self.lock().get(&key).copied().unwrap_or(0)
    }

    /// Counts one stream until the returned guard is dropped (with the response body).
    fn open(&self, resource: &str, namespace: Option<&str>) -> OpenWatch {
        let key = (resource.to_string(), namespace.map(str::to_string));
        *self.lock().entry(key.clone()).or_insert(0) += 1;
        OpenWatch {
            watches: self.clone(),
            key,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WatchKey, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One open stream in [`OpenWatches`].
struct OpenWatch {
    watches: OpenWatches,
    key: WatchKey,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        let mut open = self.watches.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Starts a watch and answers with its stream.
pub fn watch(ctx: &Ctx) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let selectors = Selectors::from_ctx(ctx)?;
    let store = &ctx.cluster().store;
    let namespace = ctx.path.namespace.clone();
    let timeout = ctx
        .query
        .int("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s as u64));
    let requested_rv = match ctx.query.non_empty("resourceVersion") {
        None | Some("0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let send_initial = ctx.query.flag("sendInitialEvents") || requested_rv.is_none();
    let mut stream = WatchStream {
        resource: r,
        namespace: namespace.clone(),
        selectors,
        representation: ctx.representation(),
        table_options: table_options(ctx),
        headers_sent: false,
        matched: HashSet::new(),
        pending: VecDeque::new(),
        live: None,
        last_rv: 0,
        deadline: Instant::now() + timeout,
        bookmarks: ctx.query.flag("allowWatchBookmarks").then(|| {
            tokio::time::interval_at(Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL)
        }),
        done: false,
        _open: ctx.cluster().watches.open(r.plural, namespace.as_deref()),
    };

    if send_initial {
        let (items, list_rv) = store.list(r.plural, namespace.as_deref());
        for object in items {
            if !stream.selectors.matches(&object) {
                continue;
            }
            stream.matched.insert(key_of(r, &object));
            stream.push_event("ADDED", with_type_meta(r, object));
        }
        stream.last_rv = list_rv;
        if ctx.query.flag("sendInitialEvents") && stream.bookmarks.is_some() {
            stream.push_bookmark(true);
        }
        let start = store
            .watch(r.plural, namespace.as_deref(), Some(list_rv))
            .map_err(|e| ApiError::from_store(r, e))?;
        stream.live = Some(start.live);
        for change in start.backlog {
            stream.apply(change);
        }
    } else if let Some(from) = requested_rv {
        match store.watch(r.plural, namespace.as_deref(), Some(from)) {
            Ok(start) => {
                // Which objects the client already knows at `from`: those whose first replayed
                // change is not their creation, and those untouched since that still match.
                let mut first_event: std::collections::HashMap<ObjectKey, EventType> =
                    std::collections::HashMap::new();
                for c in &start.backlog {
                    first_event.entry(c.key.clone()).or_insert(c.event);
                }
                let (items, _) = store.list(r.plural, namespace.as_deref());
                for object in items.iter().filter(|o| stream.selectors.matches(o)) {
                    let key = key_of(r, object);
                    if !first_event.contains_key(&key) {
                        stream.matched.insert(key);
                    }
                }
                for (key, event) in first_event {
                    if event != EventType::Added {
                        stream.matched.insert(key);
                    }
                }
                stream.last_rv = from;
                stream.live = Some(start.live);
                for change in start.backlog {
                    stream.apply(change);
                }
            }
            Err(e) => {
                stream.push_raw("ERROR", ApiError::from_store(r, e).to_status());
                stream.done = true;
            }
        }
    }

    let body = Body::from_stream(futures::stream::unfold(stream, |mut s| async move {
        s.next_chunk()
            .await
            .map(|b| (Ok::<Bytes, Infallible>(b), s))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn key_of(r: &Resource, object: &Value) -> ObjectKey {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ObjectKey::new(r.plural, &s("/metadata/namespace"), &s("/metadata/name"))
}

struct WatchStream {
    resource: &'static Resource,
    namespace: Option<String>,
    selectors: Selectors,
    representation: Representation,
    table_options: table::Options,
    headers_sent: bool,
    /// Keys of objects the client currently believes match (for selector transitions).
    matched: HashSet<ObjectKey>,
    pending: VecDeque<Bytes>,
    live: Option<broadcast::Receiver<Change>>,
    last_rv: u64,
    deadline: Instant,
    bookmarks: Option<Interval>,
    done: bool,
    /// Counted in [`OpenWatches`] while the stream lives.
    _open: OpenWatch,
}

impl WatchStream {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            let live = self.live.as_mut()?;
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = async {
                    match self.bookmarks.as_mut() {
                        Some(i) => { i.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => self.push_bookmark(false),
                received = live.recv() => match received {
                    Ok(change) => self.apply(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // The client fell too far behind; make it re-list, as the watch cache
                        // does for a slow consumer.
                        self.push_raw("ERROR", ApiError::expired("too old resource version: watch consumer fell behind").to_status());
                        self.done = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => self.done = true,
                },
            }
        }
    }

    /// Turns one store change into the event this client should see, if any.
    fn apply(&mut self, change: Change) {
        if change.resource_version <= self.last_rv && self.last_rv != 0 {
            return;
        }
        // Every change seen moves the stream's version on (bookmarks report it), even those
        // of other resources or namespaces.
        self.last_rv = change.resource_version;
        if change.key.resource != self.resource.plural
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != change.key.namespace)
        {
            return;
        }
        let was = self.matched.contains(&change.key);
        let is = change.event != EventType::Deleted && self.selectors.matches(&change.object);
        let event = match (change.event, was, is) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return,
        };
        if is {
            self.matched.insert(change.key);
        } else {
            self.matched.remove(&change.key);
        }
        self.push_event(event, with_type_meta(self.resource, change.object));
    }

    fn push_event(&mut self, event: &str, object: Value) {
        let object = match self.representation {
            Representation::Object => object,
            Representation::Metadata => partial_metadata(&object),
            Representation::Table => {
                let rv = super::read::resource_version_of(&object);
                let mut t = table::render(self.resource, &[object], &self.table_options, &rv, None);
                if self.headers_sent {
                    t["columnDefinitions"] = Value::Null;
                }
                self.headers_sent = true;
                t
            }
        };
        self.push_raw(event, object);
    }

    fn push_bookmark(&mut self, initial_events_end: bool) {
        let mut metadata = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        self.push_raw("BOOKMARK", object);
    }

    fn push_raw(&mut self, event: &str, object: Value) {
        let mut line =
            serde_json::to_vec(&json!({"type": event, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.pending.push_back(Bytes::from(line));
    }
}
