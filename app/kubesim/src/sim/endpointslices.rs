//! The EndpointSlice controller: for every Service with a selector, `discovery.k8s.io/v1`
//! EndpointSlices (`<service>-<5 chars>`, labelled `kubernetes.io/service-name` and managed by
//! `endpointslice-controller.k8s.io`, owned by the Service) listing its pods with
//! `ready`/`serving`/`terminating` conditions — one slice per distinct set of resolved ports,
//! as the real controller groups them. Also the mirroring controller: hand-made Endpoints of a
//! selector-less Service are mirrored into a slice managed by
//! `endpointslicemirroring-controller.k8s.io`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::endpoints::{Target, pod_affects, selector, targets};
use super::objects::{
    array_at, canonical_json, controller_ref, is_terminating, labels, name, str_at,
};
use crate::cluster::Cluster;
use crate::store::{Change, EventType, now_rfc3339};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";

/// Reacts to Service, pod, Endpoints and EndpointSlice changes (each Service once per batch).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut dirty = BTreeSet::new();
    let mut services: HashMap<String, Vec<Value>> = HashMap::new();
    for change in changes {
        let ns = &change.key.namespace;
        match (change.key.resource.as_str(), change.event) {
            ("services", EventType::Deleted) => {
                dirty.remove(&(ns.clone(), change.key.name.clone()));
            }
            ("services", _) | ("endpoints", _) => {
                dirty.insert((ns.clone(), change.key.name.clone()));
            }
            ("endpointslices", EventType::Deleted) => {
                let service = str_at(&change.object, &label_pointer(SERVICE_NAME_LABEL));
                dirty.insert((ns.clone(), service.unwrap_or_default().to_string()));
            }
            ("pods", _) => {
                let in_ns = services
                    .entry(ns.clone())
                    .or_insert_with(|| cluster.store.list("services", Some(ns)).0);
                for s in in_ns
                    .iter()
                    .filter(|s| pod_affects(cluster, ns, s, &change.object))
                {
                    dirty.insert((ns.clone(), name(s).to_string()));
                }
            }
            _ => {}
        }
    }
    for (ns, service) in dirty {
        if let Some(s) = cluster.store.get("services", &ns, &service) {
            reconcile(cluster, &ns, &s);
        }
    }
}

/// Reconciles every Service.
pub fn resync(cluster: &Arc<Cluster>) {
    let (services, _) = cluster.store.list("services", None);
    for s in &services {
        reconcile(
            cluster,
            str_at(s, "/metadata/namespace").unwrap_or_default(),
            s,
        );
    }
}

fn label_pointer(label: &str) -> String {
    format!(
        "/metadata/labels/{}",
        label.replace('~', "~0").replace('/', "~1")
    )
}

fn reconcile(cluster: &Cluster, namespace: &str, service: &Value) {
    if is_terminating(service) {
        return;
    }
    if selector(service).is_some() {
        let groups = group(&targets(cluster, namespace, service));
        sync_slices(cluster, namespace, service, CONTROLLER, groups);
    } else if name(service) != "kubernetes" {
        let groups = match cluster.store.get("endpoints", namespace, name(service)) {
            Some(endpoints) => mirror(&endpoints),
            None => BTreeMap::new(),
        };
        sync_slices(cluster, namespace, service, MIRRORING, groups);
    }
}

/// Slice contents by port list: (ports, endpoints).
type Groups = BTreeMap<String, (Value, Vec<Value>)>;

fn group(targets: &[Target]) -> Groups {
    let mut groups = Groups::new();
    for t in targets {
        let ports = json!(t.ports);
        let entry = groups
            .entry(canonical_json(&ports))
            .or_insert_with(|| (ports, Vec::new()));
        let mut endpoint = json!({
            "addresses": [t.ip],
            "conditions": {"ready": t.ready && !t.terminating, "serving": t.ready, "terminating": t.terminating},
            "targetRef": {"kind": "Pod", "namespace": t.namespace, "name": t.name, "uid": t.uid},
        });
        if let Some(node) = &t.node {
            endpoint["nodeName"] = json!(node);
        }
        if let Some(host) = &t.hostname {
            endpoint["hostname"] = json!(host);
        }
        entry.1.push(endpoint);
    }
    for (_, endpoints) in groups.values_mut() {
        endpoints.sort_by(|a, b| str_at(a, "/addresses/0").cmp(&str_at(b, "/addresses/0")));
    }
    groups
}

/// The slices the mirroring controller makes from hand-made Endpoints: one per subset.
fn mirror(endpoints: &Value) -> Groups {
    let mut groups = Groups::new();
    for subset in array_at(endpoints, "/subsets") {
        let ports: Vec<Value> = array_at(subset, "/ports")
            .iter()
            .map(|p| {
                json!({"name": str_at(p, "/name").unwrap_or_default(), "port": p.get("port").cloned().unwrap_or(Value::Null),
                       "protocol": str_at(p, "/protocol").unwrap_or("TCP")})
            })
            .collect();
        let ports = json!(ports);
        let entry = groups
            .entry(canonical_json(&ports))
            .or_insert_with(|| (ports, Vec::new()));
        for (list, ready) in [("/addresses", true), ("/notReadyAddresses", false)] {
            for a in array_at(subset, list) {
                let mut endpoint = json!({"addresses": [str_at(a, "/ip").unwrap_or_default()],
                    "conditions": {"ready": ready}});
                if let Some(node) = a.get("nodeName") {
                    endpoint["nodeName"] = node.clone();
                }
                if let Some(target) = a.get("targetRef") {
                    endpoint["targetRef"] = target.clone();
                }
                entry.1.push(endpoint);
            }
        }
    }
    groups
}

fn sync_slices(cluster: &Cluster, namespace: &str, service: &Value, manager: &str, groups: Groups) {
    let service_name = name(service);
    let (all, _) = cluster.store.list("endpointslices", Some(namespace));
    let mut existing: Vec<Value> = all
        .into_iter()
        .filter(|s| str_at(s, &label_pointer(SERVICE_NAME_LABEL)) == Some(service_name))
        .filter(|s| str_at(s, &label_pointer(MANAGED_BY_LABEL)) == Some(manager))
        .collect();
    let mut groups: Vec<(Value, Vec<Value>)> = groups.into_values().collect();
    if groups.is_empty() && manager == CONTROLLER {
        // The real controller keeps one empty placeholder slice per Service.
        groups.push((Value::Null, Vec::new()));
    }
    let labels = slice_labels(cluster, namespace, service, manager);
    let now = now_rfc3339();
    for (ports, endpoints) in groups {
        let endpoints = if endpoints.is_empty() {
            Value::Null
        } else {
            json!(endpoints)
        };
        let reuse = existing
            .iter()
            .position(|s| s.get("ports").cloned().unwrap_or(Value::Null) == ports)
            .or(if existing.is_empty() { None } else { Some(0) });
        match reuse.map(|i| existing.remove(i)) {
            Some(slice) => {
                let same = slice.get("endpoints").cloned().unwrap_or(Value::Null) == endpoints
                    && slice.get("ports").cloned().unwrap_or(Value::Null) == ports
                    && super::objects::labels(&slice) == labels;
                if !same {
                    let _ = cluster.store.update("endpointslices", namespace, name(&slice), |s| {
                        s["endpoints"] = endpoints.clone();
                        s["ports"] = ports.clone();
                        s["metadata"]["labels"] = Value::Object(labels.clone());
                        s["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = json!(now);
                    });
                }
            }
            None => create(cluster, namespace, service, &labels, ports, endpoints, &now),
        }
    }
    for stale in existing {
        let _ = cluster
            .store
            .remove("endpointslices", namespace, name(&stale));
    }
}

/// The Service's labels (the mirroring controller copies the Endpoints' instead), plus the
/// service-name and managed-by labels.
fn slice_labels(
    cluster: &Cluster,
    namespace: &str,
    service: &Value,
    manager: &str,
) -> Map<String, Value> {
    let mut l = if manager == MIRRORING {
        cluster
            .store
            .get("endpoints", namespace, name(service))
            .map(|e| labels(&e))
            .unwrap_or_default()
    } else {
        labels(service)
    };
    l.insert(SERVICE_NAME_LABEL.into(), json!(name(service)));
    l.insert(MANAGED_BY_LABEL.into(), json!(manager));
    if str_at(service, "/spec/clusterIP") == Some("None") {
        l.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    l
}

fn create(
    cluster: &Cluster,
    namespace: &str,
    service: &Value,
    labels: &Map<String, Value>,
    ports: Value,
    endpoints: Value,
    now: &str,
) {
    let mut metadata = json!({
        "generateName": format!("{}-", name(service)),
        "namespace": namespace,
        "labels": labels,
        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now},
    });
    if labels.get(MANAGED_BY_LABEL) == Some(&json!(CONTROLLER)) {
        metadata["ownerReferences"] = json!([controller_ref("v1", "Service", service)]);
        metadata["generation"] = json!(1);
    } else if let Some(ep) = cluster.store.get("endpoints", namespace, name(service)) {
        metadata["ownerReferences"] = json!([controller_ref("v1", "Endpoints", &ep)]);
    }
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    });
    if let Err(e) = cluster.store.create("endpointslices", namespace, slice) {
        tracing::warn!(service = %name(service), error = %e, "could not create an EndpointSlice");
    }
}
