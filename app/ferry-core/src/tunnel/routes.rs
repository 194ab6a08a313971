//! From watched objects to [`Routes`]: which Ready pods new connections may use and which
//! container port each forwarded port reaches on each of them. Pure: the supervisor calls it
//! after every watch event with what it currently knows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::picker::{PodRoute, Routes};
use crate::resolve::{self, ResolveError};
use crate::spec::{PortSpec, Target, TunnelSpec};

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub routes: Routes,
    /// Why no pod can serve some port although Ready pods exist (e.g. a named port missing);
    /// `None` when every port has at least one pod.
    pub problem: Option<ResolveError>,
    /// A problem no retry fixes (service has no such port, UDP only): the tunnel fails.
    pub fatal: Option<String>,
    /// The local port of each `REMOTE`-only spec, once known (service port or container port).
    pub same_as_remote: Vec<Option<u16>>,
}

/// Resolve `spec` against the current service (for service targets) and pods.
///
/// Only Ready, non-terminating pods are used, also for a `pod/NAME` target: kubectl would
/// forward to a Running pod that is not Ready (a CrashLoopBackOff pod between two crashes), and
/// the connection would then fail in a way nobody can read; Ferry waits and says why instead.
pub fn resolve(
    spec: &TunnelSpec,
    service: Option<&Service>,
    pods: &BTreeMap<String, Pod>,
) -> Resolution {
    let list: Vec<&Pod> = pods.values().collect();
    let candidates: Vec<&Pod> = resolve::rank_ready_pods(&list);
    if let (Target::Service(_), Some(svc)) = (&spec.target, service)
        && let Some(fatal) = service_level_problem(svc, &spec.ports)
    {
        return Resolution {
            routes: Routes::default(),
            problem: None,
            fatal: Some(fatal),
            same_as_remote: vec![None; spec.ports.len()],
        };
    }
    let mut first_error: Vec<Option<ResolveError>> = vec![None; spec.ports.len()];
    let pods: Vec<PodRoute> = candidates
        .iter()
        .map(|pod| {
            let ports = spec
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| match port_on(spec, service, pod, p) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        first_error[i].get_or_insert(e);
                        None
                    }
                })
                .collect();
            PodRoute {
                name: pod.metadata.name.clone().unwrap_or_default(),
                ports,
            }
        })
        .collect();
    let routes = Routes {
        pods,
        service_affinity: service.is_some_and(resolve::wants_client_affinity),
    };
    let problem = (0..spec.ports.len())
        .find(|i| !routes.pods.is_empty() && !routes.can_serve(*i))
        .and_then(|i| first_error[i].clone());
    let same_as_remote = spec
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| local_for_same(spec, service, &routes, i, p))
        .collect();
    Resolution {
        routes,
        problem,
        fatal: None,
        same_as_remote,
    }
}

fn port_on(
    spec: &TunnelSpec,
    service: Option<&Service>,
    pod: &Pod,
    port: &PortSpec,
) -> Result<u16, ResolveError> {
    match (&spec.target, service) {
        (Target::Service(_), Some(svc)) => resolve::resolve_service_port(svc, pod, &port.remote),
        _ => resolve::resolve_pod_port(pod, &port.remote),
    }
}

/// Service ports that do not exist or are UDP only make the whole spec wrong.
fn service_level_problem(svc: &Service, ports: &[PortSpec]) -> Option<String> {
    ports
        .iter()
        .find_map(|p| resolve::service_port_number(svc, &p.remote).err())
        .map(|e| e.to_string())
}

/// The local port number of a `REMOTE`-only spec: the remote number itself, the service port
/// for a named service port, or the best pod's container port for a named pod port.
fn local_for_same(
    spec: &TunnelSpec,
    service: Option<&Service>,
    routes: &Routes,
    i: usize,
    port: &PortSpec,
) -> Option<u16> {
    if let crate::spec::RemotePort::Number(n) = port.remote {
        return Some(n);
    }
    if let (Target::Service(_), Some(svc)) = (&spec.target, service) {
        return resolve::service_port_number(svc, &port.remote).ok();
    }
    routes
        .pods
        .iter()
        .find_map(|p| p.ports.get(i).copied().flatten())
}
