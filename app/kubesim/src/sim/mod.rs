//! The simulation: what the controllers, the scheduler and the kubelet would do in a real
//! cluster (pod lifecycle, deployments → replicasets → pods, endpoints, service addresses).
//!
//! The REST layer calls [`admit_create`] before storing a new object, [`admit_update`] before
//! storing a changed one, and [`delete`] to delete one; [`start`] seeds a cluster from manifests
//! and starts the controllers. Controllers are tokio tasks driven by the store's change events
//! (plus timers for things that take time, like a container starting); none of them polls.
//!
//! Two annotations let a world say how a simulated pod behaves (see the kubesim README):
//! [`BEHAVIOUR_ANNOTATION`] for the pod as a whole and [`PORT_ANNOTATION_PREFIX`] per container
//! port.

mod admission;
mod behaviour;
mod bootstrap;
mod deletion;
mod deployments;
mod endpoints;
mod endpointslices;
mod events;
mod gc;
mod ingresses;
mod kubelet;
mod namespaces;
mod nodes;
mod objects;
mod pods;
mod replicasets;
mod runner;
mod scheduler;
mod seed;
mod services;
mod state;
mod workloads;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::store::StoreError;

pub use behaviour::{
    BEHAVIOUR_ANNOTATION, PORT_ANNOTATION_PREFIX, PodBehaviour, PortBehaviour, pod_behaviour,
    port_behaviour,
};
pub use kubelet::{restart_containers, set_pod_ready};
pub use state::SimState;

/// Why a new or changed object was refused before it reached the store (a real apiserver's
/// validation or admission errors). `reason` is the `Status.reason` (`Invalid`, `NotFound`,
/// `Forbidden`…); [`AdmissionError::code`] gives the HTTP status that goes with it and
/// [`AdmissionError::details`] the `Status.details` a real apiserver sends.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdmissionError {
    pub reason: String,
    pub message: String,
    /// `Status.details` (`name`, `group`, `kind`, `causes`), when a real apiserver sends them.
    pub details: Option<Value>,
}

/// One invalid field, as `Status.details.causes[]` lists it.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// The field path (`spec.ports[0].nodePort`).
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueNotSupported`.
    pub reason: &'static str,
    /// The message after the field path (`Invalid value: 30123: provided port is already allocated`).
    pub message: String,
}

impl FieldError {
    /// A required field is missing (`spec.containers: Required value`).
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }
    }

    /// A field has a value that is not allowed; `value` is shown as JSON, like Go's `%#v`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {detail}"),
        }
    }

    /// A value that must be unique appears twice.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
        }
    }

    /// A value outside a fixed set (`Unsupported value: "TCPX": supported values: ...`).
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        }
    }
}

impl AdmissionError {
    /// `422 Invalid` in the real apiserver's words:
    /// `Service "x" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let joined = if parts.len() == 1 {
            parts.join("")
        } else {
            format!("[{}]", parts.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self {
            reason: "Invalid".into(),
            message: format!("{qualified} \"{name}\" is invalid: {joined}"),
            details: Some(details),
        }
    }

    /// `404 NotFound` (an object in a namespace that does not exist).
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self {
            reason: "NotFound".into(),
            message: format!("{resource} \"{name}\" not found"),
            details: Some(json!({"name": name, "kind": resource})),
        }
    }

    /// `403 Forbidden` from an admission plugin (e.g. creating in a terminating namespace).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            reason: "Forbidden".into(),
            message: message.into(),
            details: None,
        }
    }

    /// The HTTP status code a real apiserver answers with for this `reason`.
    pub fn code(&self) -> u16 {
        match self.reason.as_str() {
            "Invalid" => 422,
            "NotFound" => 404,
            "Forbidden" => 403,
            "AlreadyExists" | "Conflict" => 409,
            _ => 400,
        }
    }
}

/// Defaults and validates an object about to be created, as the apiserver's defaulting,
/// validation and admission plugins would: a Service gets its ClusterIP and node ports, a Pod
/// starts `Pending` with the spec defaults filled in, a Deployment gets its strategy, and objects
/// that a real cluster would refuse are refused with the same kind of message.
pub fn admit_create(
    cluster: &Cluster,
    resource: &str,
    namespace: &str,
    object: &mut Value,
) -> Result<(), AdmissionError> {
    admission::admit_create(cluster, resource, namespace, object)
}

/// Checks and completes a changed object (PUT or PATCH, main resource or `status`) before it is
/// stored: `metadata.generation` goes up when the spec changed (what `kubectl rollout status`
/// compares with `status.observedGeneration`), immutable fields are refused (a pod's spec beyond
/// its images, a workload's selector, a Service's ClusterIP), a Service that becomes a NodePort
/// gets its node ports. Which of `spec`/`status` an update may change is the caller's business.
pub fn admit_update(
    cluster: &Cluster,
    resource: &str,
    namespace: &str,
    old: &Value,
    new: &mut Value,
) -> Result<(), AdmissionError> {
    admission::admit_update(cluster, resource, namespace, old, new)
}

/// Deletes an object the way the apiserver does: pods are marked with `deletionTimestamp` (and
/// `deletionGracePeriodSeconds`) and go away after their grace period, capped by
/// [`crate::cluster::Timing::max_termination_grace`]; a namespace turns `Terminating`, loses its
/// contents, then goes; other objects go at once (their dependents follow through garbage
/// collection). Returns the object as the DELETE response shows it.
pub fn delete(
    cluster: &Arc<Cluster>,
    resource: &str,
    namespace: &str,
    name: &str,
    grace_period_seconds: Option<i64>,
) -> Result<Value, StoreError> {
    deletion::delete(cluster, resource, namespace, name, grace_period_seconds)
}

/// Seeds the cluster with its system objects (nodes, the four system namespaces, the
/// `kubernetes` and `kube-dns` services, CoreDNS) and the given manifests, then starts its
/// controllers. Must be called inside a tokio runtime. Fails, naming the object, when a manifest
/// is of a kind kubesim does not simulate or would be refused by a real apiserver.
pub fn start(
    cluster: &Arc<Cluster>,
    manifests: Vec<Value>,
) -> Result<(), crate::world::WorldError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        crate::world::WorldError::Invalid(
            "kubesim's simulation must be started inside a tokio runtime".into(),
        )
    })?;
    let receivers = runner::subscribe_all(cluster);
    seed::seed(cluster, manifests)?;
    runner::spawn_all(&handle, cluster, receivers);
    Ok(())
}

/// Stops the cluster's controllers and timers (the objects stay). Used when a kubesim instance
/// shuts down so its tasks do not outlive it.
pub fn stop(cluster: &Cluster) {
    cluster.sim.cancel.cancel();
}

/// Seeds a cluster like [`start`] without starting controllers (the world loader's dry run).
pub(crate) fn seed_only(
    cluster: &Cluster,
    manifests: Vec<Value>,
) -> Result<(), crate::world::WorldError> {
    seed::seed(cluster, manifests)
}

/// The store resource (plural name) for a manifest's `apiVersion` and `kind`, if kubesim
/// simulates that kind.
pub fn kind_resource(api_version: &str, kind: &str) -> Option<&'static str> {
    seed::resource_for(api_version, kind)
}

/// Whether `name` is a lowercase RFC 1123 label (namespace and cluster names).
pub fn is_dns_label(name: &str) -> bool {
    namespaces::is_dns_label(name)
}
