//! What every cluster has before any world is applied: the four system namespaces, the nodes,
//! the `kubernetes` Service (10.96.0.1, endpoints pointing at the control plane) and CoreDNS
//! behind `kube-dns` (10.96.0.10) in `kube-system`.

use serde_json::{Value, json};

use crate::cluster::Cluster;

/// CoreDNS and the kube-dns Service, as kubeadm installs them.
const KUBE_SYSTEM: &str = include_str!("../../worlds/system/kube-system.yaml");

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-node-lease", "kube-public", "kube-system"];

/// The system manifests, in the order they must be created (namespaces first). Nodes are
/// left out when the world brings its own.
pub fn manifests(cluster: &Cluster, with_default_nodes: bool) -> Vec<Value> {
    let mut out: Vec<Value> = SYSTEM_NAMESPACES
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    if with_default_nodes {
        out.extend(super::nodes::default_nodes(&cluster.name));
    }
    out.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    }));
    match serde_saphyr::from_multiple::<Value>(KUBE_SYSTEM) {
        Ok(docs) => out.extend(docs.into_iter().filter(|d| !d.is_null())),
        Err(e) => tracing::error!(error = %e, "the built-in kube-system manifests do not parse"),
    }
    out
}

/// The `kubernetes` Endpoints and EndpointSlice, which the apiserver itself maintains: they
/// point at the control-plane node's address on port 6443.
pub fn apiserver_endpoints(cluster: &Cluster) -> Vec<(String, Value)> {
    let (nodes, _) = cluster.store.list("nodes", None);
    let ip = nodes
        .iter()
        .find(|n| {
            n.pointer("/metadata/labels/node-role.kubernetes.io~1control-plane")
                .is_some()
        })
        .or(nodes.first())
        .and_then(|n| {
            super::objects::array_at(n, "/status/addresses")
                .iter()
                .find(|a| a.get("type") == Some(&json!("InternalIP")))
                .and_then(|a| a.get("address").cloned())
        })
        .unwrap_or(json!("172.18.0.2"));
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "generation": 1,
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
    });
    vec![
        ("endpoints".into(), endpoints),
        ("endpointslices".into(), slice),
    ]
}
