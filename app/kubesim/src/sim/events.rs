//! Events (`core/v1`), as the scheduler, the kubelet and the controllers record them, so that
//! `kubectl describe` and `kubectl get events` tell the same story as on a real cluster.
//! Repeats of the same event (a crash loop's `BackOff`) bump `count` and `lastTimestamp` of one
//! object instead of piling up new ones, as the real event recorder aggregates them.

use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use super::objects::{name, str_at, uid};
use crate::cluster::Cluster;
use crate::store::{StoreError, now_rfc3339};

/// Who records an event: `source.component` (and `source.host` for the kubelet).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    pub const SCHEDULER: Source<'static> = Source {
        component: "default-scheduler",
        host: None,
    };
    pub const REPLICASET: Source<'static> = Source {
        component: "replicaset-controller",
        host: None,
    };
    pub const DEPLOYMENT: Source<'static> = Source {
        component: "deployment-controller",
        host: None,
    };
    pub const SERVICE: Source<'static> = Source {
        component: "service-controller",
        host: None,
    };

    /// The kubelet of `node`.
    pub fn kubelet(node: &'a str) -> Self {
        Source {
            component: "kubelet",
            host: Some(node),
        }
    }
}

/// One thing that happened to `object` (of `api_version`/`kind`); `field_path` names a
/// container (`spec.containers{kubia}`) for container events.
pub struct Event<'a> {
    pub object: &'a Value,
    pub api_version: &'a str,
    pub kind: &'a str,
    pub field_path: Option<String>,
    pub warning: bool,
    pub reason: &'a str,
    pub message: String,
}

/// Records an event, or counts one more occurrence of the same event.
pub fn record(cluster: &Cluster, source: Source<'_>, event: Event<'_>) {
    let namespace = str_at(event.object, "/metadata/namespace")
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
        .to_string();
    let event_name = event_name(&event);
    let now = now_rfc3339();
    let result = cluster
        .store
        .update("events", &namespace, &event_name, |e| {
            let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            e["count"] = json!(count + 1);
            e["lastTimestamp"] = json!(now);
            e["message"] = json!(event.message);
        });
    if matches!(result, Err(StoreError::NotFound { .. })) {
        let object = new_event(&event, &event_name, &namespace, source, &now);
        if let Err(e) = cluster.store.create("events", &namespace, object) {
            tracing::debug!(event = %event_name, error = %e, "event not recorded");
        }
    }
}

/// `<object>.<16 hex digits>`, the same for repeats of one event (same object, container,
/// reason and message).
fn event_name(event: &Event<'_>) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        uid(event.object),
        event.reason,
        &event.field_path,
        &event.message,
    )
        .hash(&mut h);
    format!("{}.{:016x}", name(event.object), h.finish())
}

fn new_event(
    event: &Event<'_>,
    event_name: &str,
    namespace: &str,
    source: Source<'_>,
    now: &str,
) -> Value {
    let mut involved = json!({
        "apiVersion": event.api_version,
        "kind": event.kind,
        "name": name(event.object),
        "namespace": namespace,
        "uid": uid(event.object),
        "resourceVersion": str_at(event.object, "/metadata/resourceVersion").unwrap_or_default(),
    });
    if let Some(path) = &event.field_path {
        involved["fieldPath"] = json!(path);
    }
    let mut source_json = json!({"component": source.component});
    if let Some(host) = source.host {
        source_json["host"] = json!(host);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name, "namespace": namespace},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "source": source_json,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": if event.warning { "Warning" } else { "Normal" },
        "eventTime": null,
        "reportingComponent": source.component,
        "reportingInstance": source.host.unwrap_or_default(),
    })
}

/// A Normal event about a pod (or one of its containers).
pub fn pod_event<'a>(
    pod: &'a Value,
    container: Option<&str>,
    reason: &'a str,
    message: String,
) -> Event<'a> {
    Event {
        object: pod,
        api_version: "v1",
        kind: "Pod",
        field_path: container.map(|c| format!("spec.containers{{{c}}}")),
        warning: false,
        reason,
        message,
    }
}
