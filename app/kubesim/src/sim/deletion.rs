//! Deletion as the apiserver does it: graceful for pods (a `deletionTimestamp` in the future,
//! `deletionGracePeriodSeconds`, containers stopped, then the object removed), immediate for
//! unscheduled or finished pods and for most other objects, namespaces via
//! [`super::namespaces::delete`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::objects::{array_at, i64_at, is_terminating, rfc3339_in, str_at, uid};
use crate::cluster::Cluster;
use crate::store::{StoreError, now_rfc3339};

pub fn delete(
    cluster: &Arc<Cluster>,
    resource: &str,
    namespace: &str,
    name: &str,
    grace_period_seconds: Option<i64>,
) -> Result<Value, StoreError> {
    match resource {
        "pods" => delete_pod(cluster, namespace, name, grace_period_seconds),
        "namespaces" => super::namespaces::delete(cluster, name),
        "services" => {
            let removed = cluster.store.remove(resource, namespace, name)?;
            super::services::release(cluster, &removed);
            Ok(removed)
        }
        _ => cluster.store.remove(resource, namespace, name),
    }
}

fn delete_pod(
    cluster: &Arc<Cluster>,
    namespace: &str,
    name: &str,
    grace: Option<i64>,
) -> Result<Value, StoreError> {
    let pod = cluster
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| StoreError::NotFound {
            resource: "pods".into(),
            name: name.to_string(),
        })?;
    if is_terminating(&pod) && grace != Some(0) {
        return Ok(pod);
    }
    let default_grace = i64_at(&pod, "/spec/terminationGracePeriodSeconds").unwrap_or(30);
    let mut grace = grace.filter(|g| *g >= 0).unwrap_or(default_grace).max(0);
    let unscheduled = str_at(&pod, "/spec/nodeName").is_none_or(str::is_empty);
    let finished = matches!(str_at(&pod, "/status/phase"), Some("Succeeded" | "Failed"));
    if unscheduled || finished {
        // The apiserver deletes pods no kubelet is running at once.
        grace = 0;
    }
    if grace == 0 {
        return cluster.store.remove("pods", namespace, name);
    }
    let grace_duration = Duration::from_secs(grace.unsigned_abs());
    let pod_uid = uid(&pod).to_string();
    let marked = cluster.store.update("pods", namespace, name, |p| {
        p["metadata"]["deletionTimestamp"] = json!(rfc3339_in(grace_duration));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    })?;
    let first_timer = cluster.sim.lock().terminating_pods.insert(pod_uid.clone());
    if first_timer {
        if let Some(node) = str_at(&marked, "/spec/nodeName") {
            for c in array_at(&marked, "/spec/containers") {
                let container = str_at(c, "/name").unwrap_or_default();
                let message = format!("Stopping container {container}");
                let event = super::events::pod_event(&marked, Some(container), "Killing", message);
                super::events::record(cluster, super::events::Source::kubelet(node), event);
            }
        }
        let wait = grace_duration.min(cluster.timing.max_termination_grace);
        let (ns, name) = (namespace.to_string(), name.to_string());
        super::runner::after(cluster, wait, move |c| finish(c, &ns, &name, &pod_uid));
    }
    Ok(marked)
}

/// The kubelet has stopped the containers: report them terminated, then remove the pod.
fn finish(cluster: &Arc<Cluster>, namespace: &str, name: &str, pod_uid: &str) {
    let now = now_rfc3339();
    let updated = cluster.store.update("pods", namespace, name, |p| {
        if uid(p) != pod_uid {
            return;
        }
        let statuses: Vec<Value> = array_at(p, "/status/containerStatuses")
            .iter()
            .map(|s| {
                let mut s = s.clone();
                let started = s.pointer("/state/running/startedAt").cloned().unwrap_or(json!(now));
                s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                    "finishedAt": now, "containerID": s.get("containerID").cloned().unwrap_or(Value::Null)}});
                s["ready"] = json!(false);
                s["started"] = json!(false);
                s
            })
            .collect();
        if !statuses.is_empty() {
            p["status"]["containerStatuses"] = json!(statuses);
        }
        if let Some(conditions) = p.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
            for c in conditions.iter_mut() {
                let kind = str_at(c, "/type").unwrap_or_default();
                if (kind == "Ready" || kind == "ContainersReady") && str_at(c, "/status") == Some("True") {
                    c["status"] = json!("False");
                    c["lastTransitionTime"] = json!(now);
                    c["reason"] = json!("PodCompleted");
                }
            }
        }
    });
    if updated.as_ref().is_ok_and(|p| uid(p) == pod_uid) {
        let _ = cluster.store.remove("pods", namespace, name);
    }
}
