//! Target resolution as pure functions over k8s-openapi objects, with no I/O: which pods a target
//! stands for, which of them is best, and which container port a port spec reaches. The tunnel
//! supervisors call these again on every watch event, so a tunnel follows pods as they come and
//! go; the rules are kubectl's (`kubectl port-forward`), so Ferry forwards where kubectl would.
//!
//! - [`rank`]: kubectl's `ActivePods` order, and the Ready pods a tunnel may use.
//! - [`ports`]: service port → `targetPort` → container port, named pod ports, UDP refusal.
//! - [`selector`]: label selectors (parsing kubectl's syntax, service/deployment selectors).

mod error;
pub mod ports;
pub mod rank;
pub mod selector;

pub use error::ResolveError;
pub use ports::{
    all_service_ports, local_port, resolve_pod_port, resolve_service_port, service_port_number,
    wants_client_affinity,
};
pub use rank::{
    compare_pods, is_pod_ready, is_terminating, rank_pods, rank_ready_pods, require_running,
};
pub use selector::{PodQuery, TargetObject, parse_selector, target_selector};

#[cfg(test)]
mod tests;
