//! The garbage collector: when an object is deleted, its dependents (objects whose
//! `ownerReferences` name it and no other owner that still exists) are deleted too — a
//! Deployment's ReplicaSets, a ReplicaSet's pods, a Service's EndpointSlices — as background
//! cascading deletion (kubectl's default) does.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::objects::{array_at, str_at, uid};
use crate::cluster::Cluster;
use crate::store::{Change, EventType};

/// Deletes the dependents of a deleted object.
pub fn on_change(cluster: &Arc<Cluster>, change: &Change) {
    if change.event == EventType::Deleted && !change.key.namespace.is_empty() {
        collect(cluster, &change.key.namespace, Some(uid(&change.object)));
    }
}

/// Deletes every object whose owners are all gone (after a restart or a missed event).
pub fn resync(cluster: &Arc<Cluster>) {
    let (namespaces, _) = cluster.store.list("namespaces", None);
    for ns in &namespaces {
        collect(cluster, super::objects::name(ns), None);
    }
}

/// Deletes, in `namespace`, the objects that have owners none of which exists any more
/// (limited to the dependents of `deleted_uid` when given).
fn collect(cluster: &Arc<Cluster>, namespace: &str, deleted_uid: Option<&str>) {
    let objects: Vec<(String, Value)> = cluster
        .store
        .keys_in_namespace(namespace)
        .into_iter()
        .filter_map(|k| {
            cluster
                .store
                .get(&k.resource, namespace, &k.name)
                .map(|o| (k.resource, o))
        })
        .collect();
    let live: HashSet<&str> = objects.iter().map(|(_, o)| uid(o)).collect();
    for (resource, object) in &objects {
        let owners: Vec<&str> = array_at(object, "/metadata/ownerReferences")
            .iter()
            .filter_map(|r| str_at(r, "/uid"))
            .collect();
        let concerned = deleted_uid.is_none_or(|d| owners.contains(&d));
        if owners.is_empty() || !concerned || owners.iter().any(|o| live.contains(o)) {
            continue;
        }
        let name = super::objects::name(object);
        tracing::debug!(
            resource,
            namespace,
            name,
            "garbage-collecting an orphaned dependent"
        );
        if let Err(e) = super::delete(cluster, resource, namespace, name, None) {
            tracing::debug!(resource, name, error = %e, "dependent already gone");
        }
    }
}
