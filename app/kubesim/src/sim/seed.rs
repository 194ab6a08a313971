//! Seeding: the system objects, then a world's manifests — namespaces first, as
//! `kubectl apply -f` of a directory needs them — each through admission and into the store.

use serde_json::Value;

use super::objects::str_at;
use crate::cluster::Cluster;
use crate::store::StoreError;
use crate::world::WorldError;

/// The store resource (plural) for an `apiVersion` + `kind` kubesim simulates.
pub fn resource_for(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => "namespaces",
        ("v1", "Node") => "nodes",
        ("v1", "Pod") => "pods",
        ("v1", "Service") => "services",
        ("v1", "Endpoints") => "endpoints",
        ("discovery.k8s.io/v1", "EndpointSlice") => "endpointslices",
        ("apps/v1", "Deployment") => "deployments",
        ("apps/v1", "ReplicaSet") => "replicasets",
        ("networking.k8s.io/v1", "Ingress") => "ingresses",
        _ => return None,
    })
}

/// Whether objects of `resource` live in a namespace.
pub fn is_namespaced(resource: &str) -> bool {
    resource != "namespaces" && resource != "nodes"
}

/// Creates the system objects and then `manifests` (their index in the list is reported with
/// any error).
pub fn seed(cluster: &Cluster, manifests: Vec<Value>) -> Result<(), WorldError> {
    let brings_nodes = manifests.iter().any(|m| str_at(m, "/kind") == Some("Node"));
    for system in super::bootstrap::manifests(cluster, !brings_nodes) {
        apply(cluster, system)
            .map_err(|reason| WorldError::Invalid(format!("built-in object: {reason}")))?;
    }
    for (resource, object) in super::bootstrap::apiserver_endpoints(cluster) {
        let _ = cluster.store.create(&resource, "default", object);
    }
    let mut order: Vec<(usize, Value)> = manifests.into_iter().enumerate().collect();
    order.sort_by_key(|(_, m)| match str_at(m, "/kind") {
        Some("Namespace") => 0,
        Some("Node") => 1,
        _ => 2,
    });
    for (index, manifest) in order {
        apply(cluster, manifest).map_err(|reason| WorldError::Rejected { index, reason })?;
    }
    Ok(())
}

/// Admits and stores one manifest. A namespace that already exists (say, `default`) is fine.
fn apply(cluster: &Cluster, mut object: Value) -> Result<(), String> {
    let api_version = str_at(&object, "/apiVersion")
        .unwrap_or_default()
        .to_string();
    let kind = str_at(&object, "/kind").unwrap_or_default().to_string();
    let name = str_at(&object, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let Some(resource) = resource_for(&api_version, &kind) else {
        return Err(format!(
            "{kind} \"{name}\" ({api_version}): kubesim does not simulate this kind; it knows Namespace, Node, Pod, Service, Endpoints, EndpointSlice (discovery.k8s.io/v1), Deployment, ReplicaSet (apps/v1) and Ingress (networking.k8s.io/v1)"
        ));
    };
    let namespace = if is_namespaced(resource) {
        str_at(&object, "/metadata/namespace")
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    super::admit_create(cluster, resource, &namespace, &mut object).map_err(|e| e.message)?;
    match cluster.store.create(resource, &namespace, object) {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) if resource == "namespaces" => Ok(()),
        Err(e) => Err(format!("{kind} \"{name}\": {e}")),
    }
}
