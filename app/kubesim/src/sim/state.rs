//! The simulation's bookkeeping for one cluster: what a real cluster keeps outside the objects
//! themselves (the IP and port allocators' reservations, which pods the kubelet is already
//! running, readiness overrides set by fault injection).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long an address handed out by admission stays reserved for the object being created.
pub const RESERVATION: Duration = Duration::from_secs(10);

/// Per-cluster simulation state, kept in [`crate::cluster::Cluster::sim`].
#[derive(Default)]
pub struct SimState {
    /// Cancels every controller and timer of the cluster ([`super::stop`]).
    pub(crate) cancel: CancellationToken,
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Node ports handed out by admission whose Service may not be stored yet, and when. A
    /// reservation lapses after [`RESERVATION`] (the create it was for failed).
    pub reserved_node_ports: HashMap<i64, Instant>,
    /// Cluster IPs handed out by admission whose Service may not be stored yet, and when.
    pub reserved_cluster_ips: HashMap<String, Instant>,
    /// Pod UIDs whose simulated kubelet lifecycle task is running.
    pub kubelet_pods: HashSet<String>,
    /// Pod UIDs whose graceful-deletion timer is running.
    pub terminating_pods: HashSet<String>,
    /// Readiness forced by [`super::set_pod_ready`], by pod UID.
    pub ready_override: HashMap<String, bool>,
    /// Next host number to try per node when handing out pod IPs.
    pub next_pod_host: HashMap<String, u32>,
    /// Last seen (generation, spec) per Deployment UID, to notice unversioned spec changes.
    pub observed_specs: HashMap<String, (i64, String)>,
}

impl SimState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent even if a holder panicked; keep simulating.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
