//! The simulation: what the controllers, the scheduler and the kubelet would do in a real
//! cluster (pod lifecycle, deployments → replicasets → pods, endpoints, service addresses).
//!
//! The REST layer calls [`admit_create`] before storing a new object and [`delete`] to delete
//! one; [`start`] seeds a cluster from manifests and starts the controllers.

use std::sync::Arc;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::store::StoreError;

/// Why a new object was refused before it reached the store (a real apiserver's validation or
/// admission errors). `reason` is the `Status.reason` (`Invalid`, `Forbidden`…).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdmissionError {
    pub reason: String,
    pub message: String,
}

/// Defaults and validates an object about to be created (e.g. a Service gets its ClusterIP and
/// node ports, a Pod starts `Pending`).
pub fn admit_create(
    _cluster: &Cluster,
    _resource: &str,
    _namespace: &str,
    _object: &mut Value,
) -> Result<(), AdmissionError> {
    Ok(())
}

/// Deletes an object the way the apiserver does: pods are marked with `deletionTimestamp` and go
/// away after their grace period; other objects go at once. Returns the object as the DELETE
/// response shows it.
pub fn delete(
    cluster: &Arc<Cluster>,
    resource: &str,
    namespace: &str,
    name: &str,
    _grace_period_seconds: Option<i64>,
) -> Result<Value, StoreError> {
    cluster.store.remove(resource, namespace, name)
}

/// Seeds the cluster with the given manifests and starts its controllers.
pub fn start(cluster: &Arc<Cluster>, manifests: Vec<Value>) -> Result<(), crate::world::WorldError> {
    let _ = (cluster, manifests);
    Ok(())
}
