//! Admission dispatch: the checks every new or changed object goes through (namespace
//! lifecycle, name syntax), then the per-resource validation and defaulting of each noun's
//! module.

use serde_json::{Value, json};

use super::objects::{canonical_json, i64_at, str_at};
use super::{AdmissionError, FieldError, namespaces, pods, services, workloads};
use crate::cluster::Cluster;

/// Resources that are not namespaced.
const CLUSTER_SCOPED: &[&str] = &["namespaces", "nodes"];
/// Resources whose `metadata.generation` counts spec changes.
const GENERATIONAL: &[&str] = &["deployments", "replicasets", "ingresses", "endpointslices"];

pub fn admit_create(
    cluster: &Cluster,
    resource: &str,
    namespace: &str,
    object: &mut Value,
) -> Result<(), AdmissionError> {
    if !CLUSTER_SCOPED.contains(&resource) {
        namespaces::check_exists(cluster, namespace)?;
    }
    check_name(resource, object)?;
    match resource {
        "pods" => pods::admit(object),
        "services" => services::admit(cluster, object),
        "deployments" => workloads::admit_deployment(object),
        "replicasets" => workloads::admit_replicaset(object),
        "namespaces" => namespaces::admit(object),
        "ingresses" => super::ingresses::admit(object),
        "endpointslices" => {
            object["metadata"]["generation"] = json!(1);
            Ok(())
        }
        _ => Ok(()),
    }
}

pub fn admit_update(
    cluster: &Cluster,
    resource: &str,
    _namespace: &str,
    old: &Value,
    new: &mut Value,
) -> Result<(), AdmissionError> {
    match resource {
        "services" => services::admit_update(cluster, old, new)?,
        "pods" => check_pod_update(old, new)?,
        "deployments" | "replicasets" => check_selector_unchanged(resource, old, new)?,
        _ => {}
    }
    if GENERATIONAL.contains(&resource) {
        let generation = i64_at(old, "/metadata/generation").unwrap_or(1);
        let changed = canonical_json(&old["spec"]) != canonical_json(&new["spec"]);
        new["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
    }
    Ok(())
}

/// A pod's spec may only change in its container images (and a few fields kubesim ignores).
fn check_pod_update(old: &Value, new: &Value) -> Result<(), AdmissionError> {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
        if let Some(map) = spec.as_object_mut() {
            map.remove("activeDeadlineSeconds");
            map.remove("tolerations");
        }
        canonical_json(&spec)
    };
    if strip(old) == strip(new) {
        return Ok(());
    }
    let name = str_at(old, "/metadata/name").unwrap_or_default();
    let err = FieldError {
        field: "spec".into(),
        reason: "FieldValueForbidden",
        message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
    };
    Err(AdmissionError::invalid("Pod", "", name, vec![err]))
}

fn check_selector_unchanged(
    resource: &str,
    old: &Value,
    new: &Value,
) -> Result<(), AdmissionError> {
    let (o, n) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
    if o.map(canonical_json) == n.map(canonical_json) {
        return Ok(());
    }
    let kind = if resource == "deployments" {
        "Deployment"
    } else {
        "ReplicaSet"
    };
    let name = str_at(old, "/metadata/name").unwrap_or_default();
    let err = FieldError::invalid(
        "spec.selector",
        n.unwrap_or(&Value::Null),
        "field is immutable",
    );
    Err(AdmissionError::invalid(kind, "apps", name, vec![err]))
}

/// Names must be DNS subdomains (services: DNS-1035 labels), as the apiserver checks them.
fn check_name(resource: &str, object: &Value) -> Result<(), AdmissionError> {
    let Some(name) = str_at(object, "/metadata/name").filter(|n| !n.is_empty()) else {
        return Ok(()); // generateName, or no name at all (the store refuses that)
    };
    let (ok, message) = if resource == "services" {
        (
            is_dns1035_label(name),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    if ok || resource == "namespaces" {
        return Ok(());
    }
    let kind = str_at(object, "/kind").unwrap_or(resource);
    let err = FieldError::invalid("metadata.name", &json!(name), message);
    Err(AdmissionError::invalid(kind, "", name, vec![err]))
}

fn is_dns1035_label(name: &str) -> bool {
    namespaces::is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(namespaces::is_dns_label)
}
