//! One simulated cluster: its object store, its timing, and the shared state that the REST
//! layer, the simulation controllers, the streaming endpoints and fault injection all reach.
//!
//! A kubesim process serves several clusters (the demo world has `demo` and `staging`), each on
//! its own listener, each with its own objects.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// How fast simulated things happen. Tests shorten these; the demo uses lifelike values.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Pending → Running (containers started, listeners bound).
    pub pod_start: Duration,
    /// Running → Ready (readiness probe passes).
    pub pod_ready: Duration,
    /// Upper bound on the grace period a deleted pod spends Terminating; the pod's own
    /// `terminationGracePeriodSeconds` (or the request's `gracePeriodSeconds`) is capped by this.
    pub max_termination_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            pod_start: Duration::from_millis(800),
            pod_ready: Duration::from_millis(700),
            max_termination_grace: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// Near-instant transitions for tests that do not care about the lifecycle.
    pub fn fast() -> Self {
        Self {
            pod_start: Duration::from_millis(50),
            pod_ready: Duration::from_millis(50),
            max_termination_grace: Duration::from_millis(200),
        }
    }
}

/// Everything one simulated cluster owns. Shared as `Arc<Cluster>`.
pub struct Cluster {
    /// The cluster's name, as the kubeconfig names it (`demo`, `staging`).
    pub name: String,
    pub store: Arc<Store>,
    pub timing: Timing,
    /// The simulated containers of running pods (listeners, working directories, logs).
    pub containers: crate::containers::Containers,
    /// The open port-forward and exec streams (so that a fault can drop them).
    pub streams: crate::streams::Streams,
    /// Injected stream faults (port-forward errors, added latency).
    pub faults: crate::faults::Faults,
    /// The simulation's own bookkeeping (address allocations, pod lifecycles, fault overrides).
    pub sim: crate::sim::SimState,
    /// The listener serving this cluster, once started: fault injection pauses, stops and
    /// restarts it through this handle.
    pub server: std::sync::OnceLock<crate::server::ServerControl>,
    /// The watch streams open now (for tests that count a client's watches).
    pub watches: crate::api::watch::OpenWatches,
    /// The `PortForwardWebsockets` feature gate (see `KubesimConfig`).
    pub port_forward_websockets: std::sync::atomic::AtomicBool,
}

impl Cluster {
    pub fn new(name: impl Into<String>, timing: Timing) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            store: Arc::new(Store::default()),
            timing,
            containers: Default::default(),
            streams: Default::default(),
            faults: Default::default(),
            sim: crate::sim::SimState::default(),
            server: std::sync::OnceLock::new(),
            watches: Default::default(),
            port_forward_websockets: std::sync::atomic::AtomicBool::new(true),
        })
    }
}
