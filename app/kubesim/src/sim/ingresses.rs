//! Ingresses: admission (generation, empty status) and the ingress controller's part — an
//! ingress gets its load-balancer address in `status.loadBalancer.ingress` shortly after it is
//! created, as ingress-nginx reports it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::objects::{array_at, name, str_at};
use crate::cluster::Cluster;
use crate::store::{Change, EventType};

/// Defaults a new Ingress.
pub fn admit(ingress: &mut Value) -> Result<(), super::AdmissionError> {
    ingress["metadata"]["generation"] = json!(1);
    ingress["status"] = json!({"loadBalancer": {}});
    Ok(())
}

/// Handles a batch of changes one by one (each is cheap).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    for change in changes {
        on_change(cluster, change);
    }
}

/// Gives new ingresses their address after a moment.
fn on_change(cluster: &Arc<Cluster>, change: &Change) {
    if change.key.resource == "ingresses" && change.event != EventType::Deleted {
        reconcile(cluster, &change.key.namespace, &change.object);
    }
}

/// Gives every ingress without an address one.
pub fn resync(cluster: &Arc<Cluster>) {
    let (all, _) = cluster.store.list("ingresses", None);
    for ingress in &all {
        reconcile(
            cluster,
            str_at(ingress, "/metadata/namespace").unwrap_or_default(),
            ingress,
        );
    }
}

fn reconcile(cluster: &Arc<Cluster>, namespace: &str, ingress: &Value) {
    if !array_at(ingress, "/status/loadBalancer/ingress").is_empty() {
        return;
    }
    let (namespace, ingress_name) = (namespace.to_string(), name(ingress).to_string());
    super::runner::after(cluster, cluster.timing.pod_start, move |c| {
        super::services::assign_lb_ip(c, "ingresses", &namespace, &ingress_name);
    });
}
