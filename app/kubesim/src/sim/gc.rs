//! The garbage collector: when an object is deleted, its dependents (objects whose
//! `ownerReferences` name it and no other owner that still exists) are deleted too — a
//! Deployment's ReplicaSets, a ReplicaSet's pods, a Service's EndpointSlices — as background
//! cascading deletion (kubectl's default) does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::objects::{array_at, name, str_at, uid};
use crate::cluster::Cluster;
use crate::store::{Change, EventType};

/// Deletes the dependents of deleted objects (one pass per namespace per batch).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut deleted: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for change in changes {
        if change.event == EventType::Deleted && !change.key.namespace.is_empty() {
            deleted
                .entry(change.key.namespace.as_str())
                .or_default()
                .insert(uid(&change.object));
        }
    }
    for (ns, uids) in deleted {
        collect(cluster, ns, Some(&uids));
    }
}

/// Deletes every object whose owners are all gone (after a restart or a missed event).
pub fn resync(cluster: &Arc<Cluster>) {
    let (namespaces, _) = cluster.store.list("namespaces", None);
    for ns in &namespaces {
        collect(cluster, name(ns), None);
    }
}

/// A dependent that may have lost its owners.
struct Candidate {
    resource: String,
    name: String,
    owners: Vec<Value>,
}

/// Deletes, in `namespace`, the objects none of whose owners exists any more (only those owned
/// by one of `deleted` when given).
fn collect(cluster: &Arc<Cluster>, namespace: &str, deleted: Option<&HashSet<&str>>) {
    let resources: BTreeSet<String> = cluster
        .store
        .keys_in_namespace(namespace)
        .into_iter()
        .map(|k| k.resource)
        .collect();
    let mut candidates = Vec::new();
    for resource in &resources {
        cluster.store.for_each(resource, Some(namespace), |o| {
            let owners = array_at(o, "/metadata/ownerReferences");
            let concerned = deleted.is_none_or(|d| {
                owners
                    .iter()
                    .any(|r| str_at(r, "/uid").is_some_and(|u| d.contains(u)))
            });
            if !owners.is_empty() && concerned {
                candidates.push(Candidate {
                    resource: resource.clone(),
                    name: name(o).to_string(),
                    owners: owners.to_vec(),
                });
            }
        });
    }
    for c in candidates {
        if c.owners.iter().any(|r| owner_exists(cluster, namespace, r)) {
            continue;
        }
        tracing::debug!(resource = %c.resource, namespace, name = %c.name, "garbage-collecting a dependent");
        if let Err(e) = super::delete(cluster, &c.resource, namespace, &c.name, None) {
            tracing::debug!(name = %c.name, error = %e, "dependent already gone");
        }
    }
}

/// Whether the object an owner reference names still exists (same UID).
fn owner_exists(cluster: &Cluster, namespace: &str, reference: &Value) -> bool {
    let api_version = str_at(reference, "/apiVersion").unwrap_or_default();
    let kind = str_at(reference, "/kind").unwrap_or_default();
    let Some(resource) = super::kind_resource(api_version, kind) else {
        // An owner of a kind kubesim does not simulate: leave the dependent alone.
        return true;
    };
    let ns = if super::seed::is_namespaced(resource) {
        namespace
    } else {
        ""
    };
    let owner_name = str_at(reference, "/name").unwrap_or_default();
    cluster
        .store
        .get(resource, ns, owner_name)
        .is_some_and(|o| Some(uid(&o)) == str_at(reference, "/uid"))
}
