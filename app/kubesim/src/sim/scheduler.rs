//! The scheduler: binds each unscheduled pod to the node with the fewest pods among those it
//! fits (node selector, taints and tolerations, node readiness), or marks it `Unschedulable`
//! with the message a real scheduler writes ("0/3 nodes are available: ...").

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::behaviour::{PodBehaviour, pod_behaviour};
use super::events;
use super::objects::{
    array_at, condition_true, is_terminating, labels, name, set_condition, str_at,
};
use crate::cluster::Cluster;
use crate::store::now_rfc3339;

/// Schedules the pod if it is unscheduled, or refreshes its `Unschedulable` condition.
pub fn schedule(cluster: &Arc<Cluster>, namespace: &str, pod: &Value) {
    if is_terminating(pod) || str_at(pod, "/spec/nodeName").is_some_and(|n| !n.is_empty()) {
        return;
    }
    let (nodes, _) = cluster.store.list("nodes", None);
    let decision = if pod_behaviour(pod) == PodBehaviour::StuckPending {
        Err(insufficient_memory_message(&nodes))
    } else {
        pick_node(cluster, pod, &nodes)
    };
    let uid = super::objects::uid(pod).to_string();
    let now = now_rfc3339();
    let result = cluster.store.update("pods", namespace, name(pod), |p| {
        if super::objects::uid(p) != uid
            || str_at(p, "/spec/nodeName").is_some_and(|n| !n.is_empty())
        {
            return;
        }
        let mut conditions = array_at(p, "/status/conditions").to_vec();
        let extra: Map<String, Value> = [("lastProbeTime".to_string(), Value::Null)]
            .into_iter()
            .collect();
        match &decision {
            Ok(node) => {
                p["spec"]["nodeName"] = json!(node);
                set_condition(
                    &mut conditions,
                    "PodScheduled",
                    true,
                    None,
                    None,
                    &now,
                    &extra,
                );
            }
            Err(message) => {
                set_condition(
                    &mut conditions,
                    "PodScheduled",
                    false,
                    Some("Unschedulable"),
                    Some(message),
                    &now,
                    &extra,
                );
            }
        }
        p["status"]["conditions"] = json!(conditions);
    });
    let updated = match result {
        Ok(p) if super::objects::uid(&p) == uid => p,
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(pod = %name(pod), error = %e, "pod vanished before it was scheduled");
            return;
        }
    };
    let (warning, reason, message) = match decision {
        Ok(node) => (
            false,
            "Scheduled",
            format!("Successfully assigned {namespace}/{} to {node}", name(pod)),
        ),
        Err(message) => (true, "FailedScheduling", message),
    };
    let mut event = events::pod_event(&updated, None, reason, message);
    event.warning = warning;
    events::record(cluster, events::Source::SCHEDULER, event);
}

/// Whether the pod was already found unschedulable (so a node change may help it now).
pub fn is_unschedulable(pod: &Value) -> bool {
    !condition_true(pod, "/status/conditions", "PodScheduled")
        && array_at(pod, "/status/conditions")
            .iter()
            .any(|c| str_at(c, "/reason") == Some("Unschedulable"))
}

fn pick_node(cluster: &Cluster, pod: &Value, nodes: &[Value]) -> Result<String, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut fitting = Vec::new();
    for node in nodes {
        match fits(pod, node) {
            Ok(()) => fitting.push(name(node).to_string()),
            Err(reason) => *reasons.entry(reason).or_default() += 1,
        }
    }
    if fitting.is_empty() {
        return Err(unschedulable_message(nodes.len(), &reasons));
    }
    let mut load: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    cluster.store.for_each("pods", None, |p| {
        if let Some(node) = str_at(p, "/spec/nodeName") {
            *load.entry(node.to_string()).or_default() += 1;
        }
    });
    fitting.sort_by_key(|n| (load.get(n).copied().unwrap_or(0), n.clone()));
    Ok(fitting.swap_remove(0))
}

/// `Ok` if the pod fits the node, otherwise the scheduler's reason for this node.
fn fits(pod: &Value, node: &Value) -> Result<(), String> {
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        return Err("node(s) were unschedulable".into());
    }
    if !condition_true(node, "/status/conditions", "Ready") {
        return Err("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into());
    }
    let node_labels = labels(node);
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| sel.iter().all(|(k, v)| node_labels.get(k) == Some(v)));
    if !selector_ok {
        return Err("node(s) didn't match Pod's node affinity/selector".into());
    }
    for taint in array_at(node, "/spec/taints") {
        let effect = str_at(taint, "/effect").unwrap_or_default();
        if (effect == "NoSchedule" || effect == "NoExecute") && !tolerated(pod, taint) {
            let key = str_at(taint, "/key").unwrap_or_default();
            let value = str_at(taint, "/value").unwrap_or_default();
            return Err(format!("node(s) had untolerated taint {{{key}: {value}}}"));
        }
    }
    Ok(())
}

fn tolerated(pod: &Value, taint: &Value) -> bool {
    let key = str_at(taint, "/key").unwrap_or_default();
    let value = str_at(taint, "/value").unwrap_or_default();
    let effect = str_at(taint, "/effect").unwrap_or_default();
    array_at(pod, "/spec/tolerations").iter().any(|t| {
        let t_effect = str_at(t, "/effect").unwrap_or_default();
        let t_key = str_at(t, "/key").unwrap_or_default();
        let effect_ok = t_effect.is_empty() || t_effect == effect;
        let key_ok = match str_at(t, "/operator").unwrap_or("Equal") {
            "Exists" => t_key.is_empty() || t_key == key,
            _ => t_key == key && str_at(t, "/value").unwrap_or_default() == value,
        };
        effect_ok && key_ok
    })
}

fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

/// What a real scheduler says when a pod asks for more memory than any node has free (the
/// story told for a pod marked `stuck-pending`).
fn insufficient_memory_message(nodes: &[Value]) -> String {
    let total = nodes.len();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        let tainted = array_at(node, "/spec/taints")
            .iter()
            .any(|t| str_at(t, "/effect") == Some("NoSchedule"));
        let reason = if tainted {
            let t = &array_at(node, "/spec/taints")[0];
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                str_at(t, "/key").unwrap_or_default(),
                str_at(t, "/value").unwrap_or_default()
            )
        } else {
            "Insufficient memory".into()
        };
        *reasons.entry(reason).or_default() += 1;
    }
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod.",
        parts.join(", ")
    )
}
