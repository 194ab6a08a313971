//! The ReplicaSet controller: keeps as many active pods (not being deleted, not finished) as
//! `spec.replicas` asks for — creating `<rs>-<5 chars>` pods from the template, or deleting
//! the least valuable ones first (unscheduled, pending, not ready, newest) — and reports the
//! counts in the ReplicaSet's status.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::events;
use super::objects::{
    array_at, controller_ref, controller_uid, i64_at, is_pod_ready, is_terminating,
    label_selector_matches, labels, name, name_of_uid, str_at, uid,
};
use crate::cluster::Cluster;
use crate::store::{Change, EventType};

/// Reacts to ReplicaSet changes and to changes of the pods they own (each ReplicaSet once
/// per batch).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut dirty = BTreeSet::new();
    for change in changes {
        let ns = &change.key.namespace;
        match change.key.resource.as_str() {
            "replicasets" if change.event != EventType::Deleted => {
                dirty.insert((ns.clone(), change.key.name.clone()));
            }
            "pods" => {
                if let Some(owner) = controller_uid(&change.object)
                    && let Some(rs) = name_of_uid(cluster, "replicasets", ns, owner)
                {
                    dirty.insert((ns.clone(), rs));
                }
            }
            _ => {}
        }
    }
    for (ns, rs) in dirty {
        reconcile(cluster, &ns, &rs);
    }
}

/// Reconciles every ReplicaSet.
pub fn resync(cluster: &Arc<Cluster>) {
    let (all, _) = cluster.store.list("replicasets", None);
    for rs in &all {
        reconcile(
            cluster,
            str_at(rs, "/metadata/namespace").unwrap_or_default(),
            name(rs),
        );
    }
}

/// Pods counted by the controller: owned, not being deleted, not finished.
pub fn active_pods(cluster: &Cluster, namespace: &str, owner_uid: &str) -> Vec<Value> {
    cluster.store.list_where("pods", Some(namespace), |p| {
        controller_uid(p) == Some(owner_uid)
            && !is_terminating(p)
            && !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
    })
}

fn reconcile(cluster: &Arc<Cluster>, namespace: &str, rs_name: &str) {
    let Some(rs) = cluster.store.get("replicasets", namespace, rs_name) else {
        return;
    };
    if is_terminating(&rs) {
        return;
    }
    let wanted = i64_at(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
    let mut pods = active_pods(cluster, namespace, uid(&rs));
    if pods.len() < wanted {
        for _ in pods.len()..wanted {
            create_pod(cluster, namespace, &rs);
        }
    } else if pods.len() > wanted {
        pods.sort_by_key(deletion_rank);
        let excess = pods.len() - wanted;
        // The status counts what remains, so the Deployment never sees deleted pods as available.
        for pod in pods.drain(..excess) {
            match super::delete(cluster, "pods", namespace, name(&pod), None) {
                Ok(_) => rs_event(
                    cluster,
                    &rs,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", name(&pod)),
                ),
                Err(e) => {
                    tracing::debug!(pod = %name(&pod), error = %e, "scale-down: pod already gone")
                }
            }
        }
    }
    update_status(cluster, namespace, &rs, &pods);
}

fn create_pod(cluster: &Arc<Cluster>, namespace: &str, rs: &Value) {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
    metadata["generateName"] = json!(format!("{}-", name(rs)));
    metadata["ownerReferences"] = json!([controller_ref("apps/v1", "ReplicaSet", rs)]);
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    let created = super::admit_create(cluster, "pods", namespace, &mut pod)
        .map_err(|e| e.message)
        .and_then(|()| {
            cluster
                .store
                .create("pods", namespace, pod)
                .map_err(|e| e.to_string())
        });
    match created {
        Ok(pod) => rs_event(
            cluster,
            rs,
            "SuccessfulCreate",
            format!("Created pod: {}", name(&pod)),
        ),
        Err(e) => {
            tracing::warn!(replicaset = %name(rs), namespace, error = %e, "could not create a pod");
        }
    }
}

fn rs_event(cluster: &Cluster, rs: &Value, reason: &str, message: String) {
    let event = events::Event {
        object: rs,
        api_version: "apps/v1",
        kind: "ReplicaSet",
        field_path: None,
        warning: false,
        reason,
        message,
    };
    events::record(cluster, events::Source::REPLICASET, event);
}

/// Sort key: the pods to delete first come first, as the real controller ranks them
/// (unscheduled, then Pending before Running, not ready before ready, more restarts, newer).
fn deletion_rank(
    pod: &Value,
) -> (
    u8,
    u8,
    u8,
    std::cmp::Reverse<i64>,
    std::cmp::Reverse<String>,
) {
    let scheduled = u8::from(str_at(pod, "/spec/nodeName").is_some_and(|n| !n.is_empty()));
    let phase = match str_at(pod, "/status/phase") {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let ready = u8::from(is_pod_ready(pod));
    let restarts: i64 = array_at(pod, "/status/containerStatuses")
        .iter()
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum();
    let created = str_at(pod, "/metadata/creationTimestamp")
        .unwrap_or_default()
        .to_string();
    (
        scheduled,
        phase,
        ready,
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
    )
}

fn update_status(cluster: &Cluster, namespace: &str, rs: &Value, pods: &[Value]) {
    let template_labels = labels(&rs["spec"]["template"]);
    let selector = json!({"matchLabels": template_labels});
    let fully_labeled = pods
        .iter()
        .filter(|p| label_selector_matches(&selector, &labels(p)))
        .count();
    let ready = pods.iter().filter(|p| is_pod_ready(p)).count();
    let generation = rs
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": generation,
    });
    if let Some(map) = status.as_object_mut() {
        map.retain(|k, v| k == "replicas" || k == "observedGeneration" || v != &json!(0));
    }
    let rs_uid = uid(rs).to_string();
    let _ = cluster
        .store
        .update("replicasets", namespace, name(rs), |r| {
            if uid(r) == rs_uid {
                r["status"] = status;
            }
        });
}
