//! The Endpoints controller: for every Service with a selector, an `Endpoints` object of the same
//! name listing the matching pods that have an IP — ready ones in `addresses`, others in
//! `notReadyAddresses`, pods being deleted left out — grouped into subsets by the ports they
//! resolve to (a named `targetPort` is looked up in each pod's own containers, and a pod without
//! that port is left out for that port). Services without a selector are left alone: their
//! Endpoints are whatever someone created by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::objects::{
    array_at, canonical_json, is_pod_ready, is_terminating, labels, map_selector_matches, name,
    str_at, uid,
};
use crate::cluster::Cluster;
use crate::store::{Change, EventType, now_rfc3339};

/// One pod behind a Service, with the ports it serves for that Service.
pub struct Target {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub ip: String,
    pub node: Option<String>,
    pub hostname: Option<String>,
    pub ready: bool,
    pub terminating: bool,
    /// `{name, port, protocol[, appProtocol]}` for each service port this pod resolves.
    pub ports: Vec<Value>,
}

/// The Service's selector, if it has a non-empty one.
pub fn selector(service: &Value) -> Option<&Map<String, Value>> {
    service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
}

/// The pods behind a Service: matching its selector, with an IP, not finished.
pub fn targets(cluster: &Cluster, namespace: &str, service: &Value) -> Vec<Target> {
    let Some(selector) = selector(service) else {
        return Vec::new();
    };
    let headless = str_at(service, "/spec/clusterIP") == Some("None");
    let mut targets = Vec::new();
    // Visited in place: only the few fields a Target needs are copied out of each pod.
    cluster.store.for_each("pods", Some(namespace), |p| {
        let matches = map_selector_matches(selector, &labels(p))
            && str_at(p, "/status/podIP").is_some_and(|ip| !ip.is_empty())
            && !finished(p);
        if matches {
            targets.push(Target {
                name: name(p).to_string(),
                namespace: namespace.to_string(),
                uid: uid(p).to_string(),
                ip: str_at(p, "/status/podIP").unwrap_or_default().to_string(),
                node: str_at(p, "/spec/nodeName").map(str::to_string),
                hostname: hostname(p, service, headless),
                ready: is_pod_ready(p),
                terminating: is_terminating(p),
                ports: resolve_ports(service, p),
            });
        }
    });
    targets
}

fn finished(pod: &Value) -> bool {
    matches!(
        (
            str_at(pod, "/spec/restartPolicy"),
            str_at(pod, "/status/phase")
        ),
        (Some("Never"), Some("Failed" | "Succeeded")) | (Some("OnFailure"), Some("Succeeded"))
    )
}

/// A headless service's pods with `hostname` and a matching `subdomain` get DNS names.
fn hostname(pod: &Value, service: &Value, headless: bool) -> Option<String> {
    let host = str_at(pod, "/spec/hostname")?;
    (headless && str_at(pod, "/spec/subdomain") == Some(name(service))).then(|| host.to_string())
}

/// Each service port this pod serves: integer targetPorts as they are (0 meaning the service
/// port), named ones looked up among the pod's container ports with the same protocol.
pub fn resolve_ports(service: &Value, pod: &Value) -> Vec<Value> {
    array_at(service, "/spec/ports")
        .iter()
        .filter_map(|sp| {
            let protocol = str_at(sp, "/protocol").unwrap_or("TCP");
            let port = match sp.get("targetPort") {
                Some(Value::String(port_name)) => find_named_port(pod, port_name, protocol)?,
                Some(Value::Number(n)) if n.as_i64() != Some(0) => n.as_i64()?,
                _ => sp.get("port")?.as_i64()?,
            };
            let mut ep = json!({"name": str_at(sp, "/name").unwrap_or_default(), "port": port, "protocol": protocol});
            if let Some(app) = sp.get("appProtocol") {
                ep["appProtocol"] = app.clone();
            }
            Some(ep)
        })
        .collect()
}

fn find_named_port(pod: &Value, port_name: &str, protocol: &str) -> Option<i64> {
    ["/spec/containers", "/spec/initContainers"]
        .iter()
        .flat_map(|list| array_at(pod, list))
        .flat_map(|c| array_at(c, "/ports"))
        .find(|p| {
            str_at(p, "/name") == Some(port_name)
                && str_at(p, "/protocol").unwrap_or("TCP") == protocol
        })
        .and_then(|p| p.get("containerPort")?.as_i64())
}

/// Reacts to Service, pod and Endpoints changes (each Service once per batch).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut dirty = BTreeSet::new();
    let mut services: HashMap<String, Vec<Value>> = HashMap::new();
    for change in changes {
        let ns = &change.key.namespace;
        let key = (ns.clone(), change.key.name.clone());
        match (change.key.resource.as_str(), change.event) {
            ("services", EventType::Deleted) => {
                dirty.remove(&key);
                let _ = cluster.store.remove("endpoints", ns, &change.key.name);
            }
            ("services", _) | ("endpoints", EventType::Deleted) => {
                dirty.insert(key);
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

/// Whether a change of `pod` can change the Service's endpoints: the pod matches the selector,
/// or it is listed in the Service's Endpoints or EndpointSlices (and may have left).
pub fn pod_affects(cluster: &Cluster, namespace: &str, service: &Value, pod: &Value) -> bool {
    let Some(selector) = selector(service) else {
        return false;
    };
    if map_selector_matches(selector, &labels(pod)) {
        return true;
    }
    let pod_uid = uid(pod);
    let lists_pod = |addresses: &[Value]| {
        addresses
            .iter()
            .any(|a| str_at(a, "/targetRef/uid") == Some(pod_uid))
    };
    let in_endpoints = cluster
        .store
        .get("endpoints", namespace, name(service))
        .is_some_and(|ep| {
            array_at(&ep, "/subsets").iter().any(|s| {
                lists_pod(array_at(s, "/addresses")) || lists_pod(array_at(s, "/notReadyAddresses"))
            })
        });
    let mut in_slices = false;
    let service_name = name(service);
    cluster
        .store
        .for_each("endpointslices", Some(namespace), |slice| {
            let owned =
                str_at(slice, "/metadata/labels/kubernetes.io~1service-name") == Some(service_name);
            in_slices = in_slices || (owned && lists_pod(array_at(slice, "/endpoints")));
        });
    in_endpoints || in_slices
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

fn reconcile(cluster: &Cluster, namespace: &str, service: &Value) {
    if selector(service).is_none() || is_terminating(service) {
        return;
    }
    let publish_not_ready = service.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let targets = targets(cluster, namespace, service);
    let subsets = subsets(
        &targets,
        publish_not_ready,
        array_at(service, "/spec/ports").is_empty(),
    );
    let mut labels = labels(service);
    if str_at(service, "/spec/clusterIP") == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    let service_name = name(service);
    let now = now_rfc3339();
    match cluster.store.get("endpoints", namespace, service_name) {
        Some(existing) => {
            let same = existing.get("subsets").cloned().unwrap_or(Value::Null) == subsets
                && super::objects::labels(&existing) == labels;
            if !same {
                let _ = cluster.store.update("endpoints", namespace, service_name, |e| {
                    set_subsets(e, &subsets);
                    e["metadata"]["labels"] = Value::Object(labels.clone());
                    e["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = json!(now);
                });
            }
        }
        None => {
            let mut endpoints = json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": service_name, "namespace": namespace, "labels": labels,
                    "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now}},
            });
            set_subsets(&mut endpoints, &subsets);
            if let Err(e) = cluster.store.create("endpoints", namespace, endpoints) {
                tracing::debug!(service = service_name, error = %e, "endpoints appeared meanwhile");
            }
        }
    }
}

fn set_subsets(endpoints: &mut Value, subsets: &Value) {
    if let Some(map) = endpoints.as_object_mut() {
        if subsets.is_null() {
            map.remove("subsets");
        } else {
            map.insert("subsets".into(), subsets.clone());
        }
    }
}

/// Subsets as the real controller packs them: addresses grouped by identical port lists,
/// sorted by IP; `null` when there are none.
fn subsets(targets: &[Target], publish_not_ready: bool, portless: bool) -> Value {
    // port list → (ready addresses, not-ready addresses, ports)
    type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for t in targets {
        if t.terminating && !publish_not_ready {
            continue;
        }
        if t.ports.is_empty() && !portless {
            continue;
        }
        let ports: Vec<Value> = t.ports.iter().map(endpoints_port).collect();
        let entry = groups
            .entry(canonical_json(&json!(ports)))
            .or_insert_with(|| (Vec::new(), Vec::new(), ports));
        let address = address(t);
        if t.ready || publish_not_ready {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    if groups.is_empty() {
        return Value::Null;
    }
    let subsets: Vec<Value> = groups
        .into_values()
        .map(|(mut ready, mut not_ready, ports)| {
            ready.sort_by(|a, b| str_at(a, "/ip").cmp(&str_at(b, "/ip")));
            not_ready.sort_by(|a, b| str_at(a, "/ip").cmp(&str_at(b, "/ip")));
            let mut subset = json!({});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                subset["ports"] = json!(ports);
            }
            subset
        })
        .collect();
    json!(subsets)
}

/// An Endpoints port omits an empty name.
fn endpoints_port(port: &Value) -> Value {
    let mut p = port.clone();
    if let Some(map) = p.as_object_mut()
        && map.get("name").and_then(Value::as_str) == Some("")
    {
        map.remove("name");
    }
    p
}

fn address(t: &Target) -> Value {
    let mut a = json!({
        "ip": t.ip,
        "targetRef": {"kind": "Pod", "namespace": t.namespace, "name": t.name, "uid": t.uid},
    });
    if let Some(node) = &t.node {
        a["nodeName"] = json!(node);
    }
    if let Some(host) = &t.hostname {
        a["hostname"] = json!(host);
    }
    a
}
