//! The Deployment controller: one ReplicaSet per pod template (named
//! `<deployment>-<pod-template-hash>`, the hash computed like Kubernetes' from the template),
//! rolling updates that replace old pods progressively within `maxSurge`/`maxUnavailable`,
//! `Recreate`, scaling, revision annotations, history cleanup, and the Deployment's status and
//! conditions as `kubectl rollout status` reads them.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::events;
use super::objects::{
    array_at, canonical_json, controller_ref, controller_uid, i64_at, is_terminating, name,
    name_of_uid, set_condition, str_at, uid,
};
use crate::cluster::Cluster;
use crate::store::{Change, EventType, now_rfc3339};

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Reacts to Deployment changes and to changes of the ReplicaSets they own (each Deployment
/// once per batch).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut dirty = BTreeSet::new();
    for change in changes {
        let ns = &change.key.namespace;
        match (change.key.resource.as_str(), change.event) {
            ("deployments", EventType::Deleted) => {
                cluster
                    .sim
                    .lock()
                    .observed_specs
                    .remove(uid(&change.object));
            }
            ("deployments", _) => {
                dirty.insert((ns.clone(), change.key.name.clone()));
            }
            ("replicasets", _) => {
                if let Some(owner) = controller_uid(&change.object)
                    && let Some(d) = name_of_uid(cluster, "deployments", ns, owner)
                {
                    dirty.insert((ns.clone(), d));
                }
            }
            _ => {}
        }
    }
    for (ns, d) in dirty {
        reconcile(cluster, &ns, &d);
    }
}

/// Reconciles every Deployment.
pub fn resync(cluster: &Arc<Cluster>) {
    let (all, _) = cluster.store.list("deployments", None);
    for d in &all {
        reconcile(
            cluster,
            str_at(d, "/metadata/namespace").unwrap_or_default(),
            name(d),
        );
    }
}

/// The `pod-template-hash` of a template: FNV-1a (32 bit) of the template, its decimal digits
/// mapped onto Kubernetes' safe alphabet, as `controller.ComputeHash` + `rand.SafeEncodeString`
/// do (9–10 characters, no vowels).
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let text = canonical_json(template);
    let bytes = text.bytes().chain(if collision_count > 0 {
        collision_count.to_string().into_bytes()
    } else {
        vec![]
    });
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// A template with the `pod-template-hash` label removed, for comparing templates.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("labels");
        }
    }
    t
}

struct Sets {
    new: Option<Value>,
    old: Vec<Value>,
}

fn reconcile(cluster: &Arc<Cluster>, namespace: &str, deployment_name: &str) {
    let Some(mut d) = cluster.store.get("deployments", namespace, deployment_name) else {
        return;
    };
    if is_terminating(&d) {
        return;
    }
    if let Some(bumped) = bump_generation_if_spec_changed(cluster, namespace, &d) {
        d = bumped;
    }
    let sets = promote_revision(cluster, namespace, &d, replica_sets(cluster, namespace, &d));
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let sets = if paused {
        sets
    } else {
        roll(cluster, namespace, &d, sets)
    };
    cleanup_history(cluster, namespace, &d, &sets);
    update_status(cluster, namespace, &d, &sets);
}

/// Falls back to bumping `metadata.generation` here if a spec change reached the store without
/// going through [`super::admit_update`].
fn bump_generation_if_spec_changed(cluster: &Cluster, namespace: &str, d: &Value) -> Option<Value> {
    let spec = canonical_json(&d["spec"]);
    let generation = i64_at(d, "/metadata/generation").unwrap_or(1);
    let previous = cluster
        .sim
        .lock()
        .observed_specs
        .insert(uid(d).to_string(), (generation, spec.clone()));
    match previous {
        Some((g, s)) if g == generation && s != spec => {
            let updated = cluster
                .store
                .update("deployments", namespace, name(d), |x| {
                    x["metadata"]["generation"] = json!(generation + 1)
                })
                .ok()?;
            cluster
                .sim
                .lock()
                .observed_specs
                .insert(uid(d).to_string(), (generation + 1, spec));
            Some(updated)
        }
        _ => None,
    }
}

fn replica_sets(cluster: &Cluster, namespace: &str, d: &Value) -> Sets {
    let (all, _) = cluster.store.list("replicasets", Some(namespace));
    let template = without_hash(&d["spec"]["template"]);
    let mut sets = Sets {
        new: None,
        old: Vec::new(),
    };
    for rs in all
        .into_iter()
        .filter(|rs| controller_uid(rs) == Some(uid(d)))
    {
        if sets.new.is_none() && without_hash(&rs["spec"]["template"]) == template {
            sets.new = Some(rs);
        } else {
            sets.old.push(rs);
        }
    }
    sets.old.sort_by_key(revision);
    sets
}

/// A template that returns to an older ReplicaSet (`kubectl rollout undo`) makes that
/// ReplicaSet the newest revision again, as the real controller does.
fn promote_revision(cluster: &Cluster, namespace: &str, d: &Value, mut sets: Sets) -> Sets {
    let Some(new) = &sets.new else { return sets };
    let newest_old = sets.old.iter().map(revision).max().unwrap_or(0);
    if revision(new) > newest_old {
        return sets;
    }
    let next = (newest_old + 1).to_string();
    if let Ok(updated) = cluster
        .store
        .update("replicasets", namespace, name(new), |rs| {
            annotations_mut(rs).insert(REVISION.into(), json!(next));
        })
    {
        sets.new = Some(updated);
    }
    let _ = cluster
        .store
        .update("deployments", namespace, name(d), |x| {
            annotations_mut(x).insert(REVISION.into(), json!(next));
        });
    sets
}

fn revision(rs: &Value) -> i64 {
    str_at(
        rs,
        &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")),
    )
    .and_then(|r| r.parse().ok())
    .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    i64_at(rs, "/spec/replicas").unwrap_or(0)
}

fn status_count(rs: &Value, field: &str) -> i64 {
    i64_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

/// `maxSurge` and `maxUnavailable` as pod counts (percentages of the desired replicas, surge
/// rounded up and unavailability down; both zero would deadlock, so unavailability becomes 1).
fn surge_and_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    let resolve = |field: &str, round_up: bool| {
        let value = d.pointer(&format!("/spec/strategy/rollingUpdate/{field}"));
        match value {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => {
                let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
                let scaled = replicas * pct;
                if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                }
            }
            _ => {
                if round_up {
                    (replicas * 25 + 99) / 100
                } else {
                    replicas * 25 / 100
                }
            }
        }
    };
    let surge = resolve("maxSurge", true);
    let unavailable = resolve("maxUnavailable", false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn roll(cluster: &Arc<Cluster>, namespace: &str, d: &Value, mut sets: Sets) -> Sets {
    let replicas = i64_at(d, "/spec/replicas").unwrap_or(1).max(0);
    let recreate = str_at(d, "/spec/strategy/type") == Some("Recreate");
    let (surge, max_unavailable) = surge_and_unavailable(d, replicas);
    if sets.new.is_none() {
        let old_total: i64 = sets.old.iter().map(spec_replicas).sum();
        let initial = if sets.old.is_empty() {
            replicas
        } else if recreate {
            0
        } else {
            (replicas + surge - old_total).clamp(0, replicas)
        };
        sets.new = create_replica_set(cluster, namespace, d, &sets.old, initial, surge);
    }
    let Some(new) = sets.new.clone() else {
        return sets;
    };
    if recreate {
        for old in &sets.old {
            scale(cluster, namespace, old, 0, d, surge);
        }
        let old_pods: i64 = sets.old.iter().map(|rs| status_count(rs, "replicas")).sum();
        if old_pods == 0 {
            scale(cluster, namespace, &new, replicas, d, surge);
        }
        return refreshed(cluster, namespace, sets);
    }
    // Scale the new ReplicaSet up within the surge allowance (or straight down to the target);
    // like the real controller, one kind of step per pass.
    let total: i64 = sets
        .old
        .iter()
        .chain(std::iter::once(&new))
        .map(spec_replicas)
        .sum();
    let new_spec = spec_replicas(&new);
    let target = if new_spec > replicas {
        replicas
    } else {
        (new_spec + (replicas + surge - total).max(0)).min(replicas)
    };
    if target != new_spec {
        scale(cluster, namespace, &new, target, d, surge);
        return refreshed(cluster, namespace, sets);
    }
    let targets = scale_down_old(&sets.old, &new, replicas, max_unavailable);
    for (old, target) in sets.old.iter().zip(targets) {
        if target != spec_replicas(old) {
            scale(cluster, namespace, old, target, d, surge);
        }
    }
    refreshed(cluster, namespace, sets)
}

/// How far each old ReplicaSet (oldest first) may shrink now: first its unhealthy pods, then
/// healthy ones while the available pods stay at least `replicas - maxUnavailable`.
fn scale_down_old(old: &[Value], new: &Value, replicas: i64, max_unavailable: i64) -> Vec<i64> {
    let mut targets: Vec<i64> = old.iter().map(spec_replicas).collect();
    let old_total: i64 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let min_available = replicas - max_unavailable;
    let new_spec = spec_replicas(new);
    let new_unavailable = (new_spec - status_count(new, "availableReplicas")).max(0);
    let mut budget = old_total + new_spec - min_available - new_unavailable;
    if budget <= 0 {
        return targets;
    }
    for (rs, target) in old.iter().zip(targets.iter_mut()) {
        let unhealthy = (*target - status_count(rs, "availableReplicas")).max(0);
        let down = unhealthy.min(budget);
        *target -= down;
        budget -= down;
    }
    let available: i64 = old
        .iter()
        .chain(std::iter::once(new))
        .map(|rs| status_count(rs, "availableReplicas"))
        .sum();
    let mut healthy_budget = (available - min_available).max(0);
    for target in targets.iter_mut() {
        let down = (*target).min(healthy_budget);
        *target -= down;
        healthy_budget -= down;
    }
    targets
}

fn refreshed(cluster: &Cluster, namespace: &str, sets: Sets) -> Sets {
    let get = |rs: &Value| cluster.store.get("replicasets", namespace, name(rs));
    Sets {
        new: sets.new.as_ref().and_then(get),
        old: sets.old.iter().filter_map(get).collect(),
    }
}

fn scale(cluster: &Cluster, namespace: &str, rs: &Value, replicas: i64, d: &Value, surge: i64) {
    let desired = i64_at(d, "/spec/replicas").unwrap_or(1);
    let from = spec_replicas(rs);
    if from != replicas {
        let direction = if replicas > from { "up" } else { "down" };
        let message = format!(
            "Scaled {direction} replica set {} from {from} to {replicas}",
            name(rs)
        );
        deployment_event(cluster, d, message);
    }
    let _ = cluster
        .store
        .update("replicasets", namespace, name(rs), |r| {
            if r.pointer("/spec/replicas") != Some(&json!(replicas)) {
                r["spec"]["replicas"] = json!(replicas);
                bump(r);
            }
            let annotations = annotations_mut(r);
            annotations.insert(
                "deployment.kubernetes.io/desired-replicas".into(),
                json!(desired.to_string()),
            );
            annotations.insert(
                "deployment.kubernetes.io/max-replicas".into(),
                json!((desired + surge).to_string()),
            );
        });
}

fn deployment_event(cluster: &Cluster, d: &Value, message: String) {
    let event = events::Event {
        object: d,
        api_version: "apps/v1",
        kind: "Deployment",
        field_path: None,
        warning: false,
        reason: "ScalingReplicaSet",
        message,
    };
    events::record(cluster, events::Source::DEPLOYMENT, event);
}

fn bump(object: &mut Value) {
    let g = i64_at(object, "/metadata/generation").unwrap_or(1);
    object["metadata"]["generation"] = json!(g + 1);
}

fn annotations_mut(object: &mut Value) -> &mut Map<String, Value> {
    let meta = crate::store::metadata_mut(object);
    let a = meta.entry("annotations").or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    a.as_object_mut().expect("made an object above")
}

fn create_replica_set(
    cluster: &Arc<Cluster>,
    namespace: &str,
    d: &Value,
    old: &[Value],
    replicas: i64,
    surge: i64,
) -> Option<Value> {
    let collisions = i64_at(d, "/status/collisionCount").unwrap_or(0);
    let hash = template_hash(&d["spec"]["template"], collisions);
    let rs_name = format!("{}-{hash}", name(d));
    let next_revision = old.iter().map(revision).max().unwrap_or(0) + 1;
    let desired = i64_at(d, "/spec/replicas").unwrap_or(1);
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name,
            "labels": labels,
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
                REVISION: next_revision.to_string(),
            },
            "ownerReferences": [controller_ref("apps/v1", "Deployment", d)],
        },
        "spec": {"replicas": replicas, "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                 "selector": selector, "template": template},
    });
    if let Err(e) = super::admit_create(cluster, "replicasets", namespace, &mut rs) {
        tracing::warn!(deployment = %name(d), error = %e, "could not admit its new ReplicaSet");
        return None;
    }
    match cluster.store.create("replicasets", namespace, rs) {
        Ok(rs) => {
            if replicas > 0 {
                let message = format!("Scaled up replica set {} from 0 to {replicas}", name(&rs));
                deployment_event(cluster, d, message);
            }
            let _ = cluster
                .store
                .update("deployments", namespace, name(d), |x| {
                    annotations_mut(x).insert(REVISION.into(), json!(next_revision.to_string()));
                });
            Some(rs)
        }
        Err(crate::store::StoreError::AlreadyExists { .. }) => {
            // A ReplicaSet of that name with another template: a hash collision.
            let _ = cluster
                .store
                .update("deployments", namespace, name(d), |x| {
                    x["status"]["collisionCount"] = json!(collisions + 1);
                });
            None
        }
        Err(e) => {
            tracing::warn!(deployment = %name(d), error = %e, "could not create its new ReplicaSet");
            None
        }
    }
}

/// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
fn cleanup_history(cluster: &Arc<Cluster>, namespace: &str, d: &Value, sets: &Sets) {
    let limit = i64_at(d, "/spec/revisionHistoryLimit").unwrap_or(10).max(0) as usize;
    let idle: Vec<&Value> = sets
        .old
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_count(rs, "replicas") == 0)
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            let _ = super::delete(cluster, "replicasets", namespace, name(rs), None);
        }
    }
}

fn update_status(cluster: &Cluster, namespace: &str, d: &Value, sets: &Sets) {
    let all: Vec<&Value> = sets.old.iter().chain(sets.new.iter()).collect();
    let sum = |field: &str| all.iter().map(|rs| status_count(rs, field)).sum::<i64>();
    let replicas = i64_at(d, "/spec/replicas").unwrap_or(1);
    let (_, max_unavailable) = surge_and_unavailable(d, replicas);
    let (total, ready, available) = (
        sum("replicas"),
        sum("readyReplicas"),
        sum("availableReplicas"),
    );
    let updated = sets
        .new
        .as_ref()
        .map(|rs| status_count(rs, "replicas"))
        .unwrap_or(0);
    let new_name = sets
        .new
        .as_ref()
        .map(|rs| name(rs).to_string())
        .unwrap_or_default();
    let old_pods: i64 = sets.old.iter().map(|rs| status_count(rs, "replicas")).sum();
    let complete =
        updated == replicas && available >= replicas && old_pods == 0 && total == replicas;
    let generation = d
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let now = now_rfc3339();
    let d_uid = uid(d).to_string();
    let _ = cluster
        .store
        .update("deployments", namespace, name(d), |x| {
            if uid(x) != d_uid {
                return;
            }
            let mut conditions = array_at(x, "/status/conditions").to_vec();
            let available_ok = available >= replicas - max_unavailable;
            let (a_reason, a_msg) = if available_ok {
                (
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                (
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            };
            let (p_reason, p_msg) = progress(&conditions, complete, &new_name);
            set_deployment_condition(
                &mut conditions,
                "Available",
                available_ok,
                a_reason,
                a_msg,
                &now,
            );
            set_deployment_condition(&mut conditions, "Progressing", true, p_reason, &p_msg, &now);
            let mut status = json!({
                "observedGeneration": generation,
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
                "unavailableReplicas": (replicas - available).max(0),
                "conditions": conditions,
            });
            if let Some(c) = x.pointer("/status/collisionCount") {
                status["collisionCount"] = c.clone();
            }
            if let Some(map) = status.as_object_mut() {
                map.retain(|k, v| k == "observedGeneration" || v != &json!(0));
            }
            x["status"] = status;
        });
}

fn progress(conditions: &[Value], complete: bool, new_name: &str) -> (&'static str, String) {
    let current = conditions
        .iter()
        .find(|c| str_at(c, "/type") == Some("Progressing"))
        .and_then(|c| str_at(c, "/reason"));
    if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else if current.is_none() {
        (
            "NewReplicaSetCreated",
            format!("Created new replica set \"{new_name}\""),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    }
}

/// Deployment conditions carry `lastUpdateTime`, which changes with the message, besides
/// `lastTransitionTime`, which changes with the status.
fn set_deployment_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
) {
    let previous = conditions
        .iter()
        .find(|c| str_at(c, "/type") == Some(kind))
        .cloned();
    let unchanged = previous.as_ref().is_some_and(|c| {
        str_at(c, "/reason") == Some(reason) && str_at(c, "/message") == Some(message)
    });
    let update_time = previous
        .as_ref()
        .filter(|_| unchanged)
        .and_then(|c| c.get("lastUpdateTime").cloned())
        .unwrap_or(json!(now));
    let extra: Map<String, Value> = [("lastUpdateTime".to_string(), update_time)]
        .into_iter()
        .collect();
    set_condition(
        conditions,
        kind,
        status,
        Some(reason),
        Some(message),
        now,
        &extra,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_looks_like_kubernetes_and_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"metadata":{"labels":{"app":"kubia"}},"spec":{"containers":[{"name":"k","image":"i"}]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"spec":{"containers":[{"image":"i","name":"k"}]},"metadata":{"labels":{"app":"kubia"}}}"#).unwrap();
        let h = template_hash(&a, 0);
        assert!((8..=10).contains(&h.len()), "{h}");
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        assert_eq!(h, template_hash(&b, 0));
        assert_ne!(h, template_hash(&a, 1));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        assert_eq!(surge_and_unavailable(&d, 3), (1, 0));
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        let d =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}});
        assert_eq!(surge_and_unavailable(&d, 3), (0, 1));
    }
}
