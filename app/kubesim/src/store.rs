//! The object store of one simulated cluster: every object as JSON, one resourceVersion counter,
//! and a bounded history of changes so that watches can resume (or get `410 Gone` when the
//! version they ask for is older than the history, exactly like etcd compaction on a real
//! apiserver).
//!
//! The store knows nothing of HTTP or of simulated behaviour: the REST layer and the controllers
//! both go through it, and every change is published once on a broadcast channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How many change events are kept for watch resumption. Older versions answer `410 Gone`.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Identifies one object: its resource (plural name, e.g. `pods`, `deployments`), namespace
/// (empty for cluster-scoped resources) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// The kind of change, as a watch stream names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The word a watch stream uses for this change.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object. `object` is the object after the change (for `Deleted`, the last
/// state with the deletion's resourceVersion).
#[derive(Debug, Clone)]
pub struct Change {
    pub resource_version: u64,
    pub event: EventType,
    pub key: ObjectKey,
    pub object: Value,
}

/// Why a store operation was refused; the REST layer turns these into `Status` objects.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("the object has no metadata.name or metadata.generateName")]
    NoName,
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict { resource: String, name: String },
}

/// A watch that has been registered: the changes since the requested version that are already
/// in history, then a live receiver for everything after them.
pub struct WatchStart {
    pub backlog: Vec<Change>,
    pub live: broadcast::Receiver<Change>,
    /// The store's version at the moment the watch was registered (for bookmarks).
    pub resource_version: u64,
}

struct Inner {
    objects: BTreeMap<ObjectKey, Value>,
    resource_version: u64,
    history: VecDeque<Change>,
    history_cap: usize,
    uid_counter: u64,
}

/// The in-memory object store of one cluster. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl Store {
    /// A store that keeps `history_cap` changes for watch resumption.
    pub fn new(history_cap: usize) -> Self {
        let (changes, _) = broadcast::channel(65_536);
        Self {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                resource_version: 1,
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                uid_counter: 0,
            }),
            changes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current resourceVersion of the whole store (what a LIST reports).
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// The oldest resourceVersion a watch may resume from without `410 Gone`.
    pub fn oldest_resumable(&self) -> u64 {
        let inner = self.lock();
        inner
            .history
            .front()
            .map(|c| c.resource_version - 1)
            .unwrap_or(inner.resource_version)
    }

    /// Drops all history, as etcd compaction would; any watch resuming from before now gets 410.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.resource_version += 1;
    }

    /// Every change to every object, from now on. Controllers use this.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// One object, if it exists.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&ObjectKey::new(resource, namespace, name))
            .cloned()
    }

    /// All objects of a resource, in one namespace or (with `None`) in all, sorted by namespace
    /// then name, and the store's version at that instant.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.resource_version)
    }

    /// Visits the objects of a resource (in one namespace, or all) under the store's lock,
    /// without copying them: for controllers that need a count or a few matching objects out of
    /// many. `visit` must not call back into the store.
    pub fn for_each(&self, resource: &str, namespace: Option<&str>, mut visit: impl FnMut(&Value)) {
        let inner = self.lock();
        // Keys sort by resource, then namespace: the wanted objects are one contiguous range.
        let start = ObjectKey::new(resource, namespace.unwrap_or(""), "");
        inner
            .objects
            .range(start..)
            .take_while(|(k, _)| {
                k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .for_each(|(_, v)| visit(v));
    }

    /// The objects of a resource (in one namespace, or all) for which `keep` is true, copied.
    pub fn list_where(
        &self,
        resource: &str,
        namespace: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        self.for_each(resource, namespace, |v| {
            if keep(v) {
                out.push(v.clone());
            }
        });
        out
    }

    /// The keys of every object in one namespace, of any resource (for namespace deletion and
    /// garbage collection, which must not miss resources they do not know by name).
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjectKey> {
        self.lock()
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }

    /// Stores a new object. Fills `metadata.name` from `generateName`, `uid`,
    /// `creationTimestamp`, `resourceVersion` and `namespace`.
    pub fn create(
        &self,
        resource: &str,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let name = match object_name(&object) {
            Some(name) => name,
            None => {
                let prefix = object
                    .pointer("/metadata/generateName")
                    .and_then(Value::as_str)
                    .ok_or(StoreError::NoName)?
                    .to_string();
                loop {
                    let candidate = format!("{prefix}{}", random_suffix(5));
                    if !inner
                        .objects
                        .contains_key(&ObjectKey::new(resource, namespace, &candidate))
                    {
                        break candidate;
                    }
                }
            }
        };
        let key = ObjectKey::new(resource, namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: resource.to_string(),
                name,
            });
        }
        inner.uid_counter += 1;
        let uid = uid_from(inner.uid_counter, &key);
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), json!(name));
        if !namespace.is_empty() {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now_rfc3339()));
        inner.objects.insert(key.clone(), object.clone());
        self.record(&mut inner, EventType::Added, key, object.clone());
        Ok(object)
    }

    /// Changes an object in place. If `change` leaves the object as it was, nothing is recorded;
    /// otherwise the resourceVersion is bumped and a `MODIFIED` event published.
    /// `change` must not rename the object.
    pub fn update(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = ObjectKey::new(resource, namespace, name);
        let Some(current) = inner.objects.get(&key) else {
            return Err(StoreError::NotFound {
                resource: resource.to_string(),
                name: name.to_string(),
            });
        };
        let mut next = current.clone();
        change(&mut next);
        // Identity fields are the store's, whatever the change did.
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
        ] {
            match current.pointer(&format!("/metadata/{field}")) {
                Some(v) => {
                    metadata_mut(&mut next).insert(field.into(), v.clone());
                }
                None => {
                    metadata_mut(&mut next).remove(field);
                }
            }
        }
        if &next == current {
            return Ok(next);
        }
        inner.resource_version += 1;
        let rv = inner.resource_version;
        metadata_mut(&mut next).insert("resourceVersion".into(), json!(rv.to_string()));
        inner.objects.insert(key.clone(), next.clone());
        self.record(&mut inner, EventType::Modified, key, next.clone());
        Ok(next)
    }

    /// Like [`Store::update`], but refuses with `Conflict` when `expected_rv` is given and is not
    /// the object's current resourceVersion (optimistic concurrency, as for PUT).
    pub fn update_if(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        expected_rv: Option<&str>,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        if let Some(expected) = expected_rv {
            let current =
                self.get(resource, namespace, name)
                    .ok_or_else(|| StoreError::NotFound {
                        resource: resource.to_string(),
                        name: name.to_string(),
                    })?;
            let actual = current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if actual != expected {
                return Err(StoreError::Conflict {
                    resource: resource.to_string(),
                    name: name.to_string(),
                });
            }
        }
        self.update(resource, namespace, name, change)
    }

    /// Removes an object now (graceful deletion is the simulation's job, which marks the object
    /// with `deletionTimestamp` first and calls this when the grace period ends).
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = ObjectKey::new(resource, namespace, name);
        let Some(mut object) = inner.objects.remove(&key) else {
            return Err(StoreError::NotFound {
                resource: resource.to_string(),
                name: name.to_string(),
            });
        };
        inner.resource_version += 1;
        let rv = inner.resource_version;
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(&mut inner, EventType::Deleted, key, object.clone());
        Ok(object)
    }

    /// Registers a watch on one resource (optionally one namespace). With `from` set, every
    /// retained change after that version is replayed first; a version older than the retained
    /// history gives [`StoreError::Gone`]. Without `from`, the caller is expected to have sent the
    /// current state itself (as a real apiserver sends synthetic ADDED events).
    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, StoreError> {
        let inner = self.lock();
        let live = self.changes.subscribe();
        let mut backlog = Vec::new();
        if let Some(from) = from {
            let oldest = inner
                .history
                .front()
                .map(|c| c.resource_version - 1)
                .unwrap_or(inner.resource_version);
            if from < oldest {
                return Err(StoreError::Gone {
                    requested: from,
                    oldest,
                });
            }
            backlog = inner
                .history
                .iter()
                .filter(|c| c.resource_version > from)
                .filter(|c| c.key.resource == resource)
                .filter(|c| namespace.is_none_or(|ns| c.key.namespace == ns))
                .cloned()
                .collect();
        }
        Ok(WatchStart {
            backlog,
            live,
            resource_version: inner.resource_version,
        })
    }

    fn record(&self, inner: &mut Inner, event: EventType, key: ObjectKey, object: Value) {
        let change = Change {
            resource_version: inner.resource_version,
            event,
            key,
            object,
        };
        inner.history.push_back(change.clone());
        while inner.history.len() > inner.history_cap {
            inner.history.pop_front();
        }
        // Sent under the lock so that every receiver sees changes in resourceVersion order.
        let _ = self.changes.send(change);
    }
}

/// `metadata.name` of an object, if it has one.
pub fn object_name(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The `metadata` map of an object, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("made an object above");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("made an object above")
}

/// The current time as the apiserver writes it (`2024-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random lowercase alphanumeric suffix like the ones Kubernetes appends to generated names
/// (it avoids vowels and look-alike characters, as `k8s.io/apimachinery/pkg/util/rand` does).
pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn uid_from(counter: u64, key: &ObjectKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    counter.hash(&mut h);
    let a = h.finish();
    counter.wrapping_mul(0x9e37_79b9_7f4a_7c15).hash(&mut h);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (b >> 52) as u16 & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}})
    }

    #[test]
    fn create_fills_identity_and_bumps_version() {
        let store = Store::default();
        let before = store.resource_version();
        let obj = store.create("pods", "default", pod("a")).unwrap();
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert!(obj["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert_eq!(obj["metadata"]["resourceVersion"], (before + 1).to_string());
        assert_eq!(
            store.create("pods", "default", pod("a")),
            Err(StoreError::AlreadyExists {
                resource: "pods".into(),
                name: "a".into()
            })
        );
    }

    #[test]
    fn generate_name_gets_a_suffix() {
        let store = Store::default();
        let obj = store
            .create(
                "pods",
                "default",
                json!({"metadata": {"generateName": "web-"}}),
            )
            .unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    }

    #[test]
    fn unchanged_update_records_nothing() {
        let store = Store::default();
        store.create("pods", "default", pod("a")).unwrap();
        let rv = store.resource_version();
        store.update("pods", "default", "a", |_| {}).unwrap();
        assert_eq!(store.resource_version(), rv);
        store
            .update("pods", "default", "a", |o| o["spec"] = json!({"x": 1}))
            .unwrap();
        assert_eq!(store.resource_version(), rv + 1);
    }

    #[test]
    fn watch_replays_history_and_answers_gone_when_compacted() {
        let store = Store::new(2);
        store.create("pods", "default", pod("a")).unwrap();
        let start_rv = store.resource_version();
        store.create("pods", "default", pod("b")).unwrap();
        store.create("services", "default", pod("s")).unwrap();
        let w = store
            .watch("pods", Some("default"), Some(start_rv))
            .unwrap();
        assert_eq!(w.backlog.len(), 1);
        assert_eq!(w.backlog[0].key.name, "b");
        store.create("pods", "default", pod("c")).unwrap();
        assert!(matches!(
            store.watch("pods", None, Some(start_rv)),
            Err(StoreError::Gone { .. })
        ));
    }

    #[test]
    fn remove_publishes_deleted() {
        let store = Store::default();
        store.create("pods", "default", pod("a")).unwrap();
        let mut rx = store.subscribe();
        store.remove("pods", "default", "a").unwrap();
        let change = rx.try_recv().unwrap();
        assert_eq!(change.event, EventType::Deleted);
        assert!(store.get("pods", "default", "a").is_none());
    }
}
