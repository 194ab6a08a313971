//! Namespaces: admission (phase `Active`, the `kubernetes` finalizer, the
//! `kubernetes.io/metadata.name` label) and deletion (`Terminating`, contents deleted, then the
//! namespace itself once they are gone), plus the NamespaceLifecycle check that refuses new
//! objects in a namespace that does not exist or is being deleted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::AdmissionError;
use super::objects::{is_terminating, str_at};
use crate::cluster::Cluster;
use crate::store::{EventType, StoreError, now_rfc3339};

/// Defaults a new Namespace.
pub fn admit(namespace: &mut Value) -> Result<(), AdmissionError> {
    let name = str_at(namespace, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    if !is_dns_label(&name) {
        let err = super::FieldError::invalid(
            "metadata.name",
            &json!(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        );
        return Err(AdmissionError::invalid("Namespace", "", &name, vec![err]));
    }
    namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    namespace["spec"] = json!({"finalizers": ["kubernetes"]});
    namespace["status"] = json!({"phase": "Active"});
    Ok(())
}

/// Whether `name` is a lowercase RFC 1123 label.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// NamespaceLifecycle: new objects need an existing namespace that is not terminating.
pub fn check_exists(cluster: &Cluster, namespace: &str) -> Result<(), AdmissionError> {
    match cluster.store.get("namespaces", "", namespace) {
        None => Err(AdmissionError::not_found("namespaces", namespace)),
        Some(ns) if is_terminating(&ns) => Err(AdmissionError::forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ))),
        Some(_) => Ok(()),
    }
}

/// Marks the namespace `Terminating`, deletes its contents and removes it when they are gone.
pub fn delete(cluster: &Arc<Cluster>, name: &str) -> Result<Value, StoreError> {
    let existing =
        cluster
            .store
            .get("namespaces", "", name)
            .ok_or_else(|| StoreError::NotFound {
                resource: "namespaces".into(),
                name: name.to_string(),
            })?;
    if is_terminating(&existing) {
        return Ok(existing);
    }
    let mut events = cluster.store.subscribe();
    let now = now_rfc3339();
    let marked = cluster.store.update("namespaces", "", name, |ns| {
        ns["metadata"]["deletionTimestamp"] = json!(now);
        ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        ns["status"]["phase"] = json!("Terminating");
    })?;
    for key in cluster.store.keys_in_namespace(name) {
        let _ = super::delete(cluster, &key.resource, name, &key.name, None);
    }
    let deadline = cluster.timing.max_termination_grace * 2 + Duration::from_secs(2);
    let weak = Arc::downgrade(cluster);
    let ns = name.to_string();
    super::runner::spawn(cluster, async move {
        let emptied = async {
            loop {
                let empty = weak
                    .upgrade()
                    .is_none_or(|c| c.store.keys_in_namespace(&ns).is_empty());
                if empty {
                    return;
                }
                match events.recv().await {
                    Ok(change)
                        if change.event != EventType::Deleted || change.key.namespace != ns => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(deadline, emptied).await;
        if let Some(cluster) = weak.upgrade() {
            for key in cluster.store.keys_in_namespace(&ns) {
                let _ = cluster.store.remove(&key.resource, &ns, &key.name);
            }
            let _ = cluster.store.remove("namespaces", "", &ns);
        }
    });
    Ok(marked)
}
