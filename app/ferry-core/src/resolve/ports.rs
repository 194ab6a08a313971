//! Which container port a port spec reaches, exactly as `kubectl port-forward` translates it
//! (`translateServicePortToTargetPort`, `convertPodNamedPortToNumber`, `checkUDPPorts`):
//!
//! - service target: find the service port by number (or, for a named remote, by port name);
//!   headless services (`clusterIP: None`) pass the number through; an integer `targetPort` is
//!   used as is (0 or missing → the service port); a string `targetPort` is looked up by name in
//!   the chosen pod's containers, then init containers — so it may differ from pod to pod;
//! - pod target: a numeric remote is used as is; a named one is looked up in the containers;
//! - UDP-only ports are refused (port-forwarding carries TCP only).
//!
//! The local port of `REMOTE` alone (no `LOCAL:`) is the service port for services and the
//! container port for pods, as in kubectl.

use k8s_openapi::api::core::v1::{ContainerPort, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ResolveError;
use crate::spec::{LocalPort, PortSpec, RemotePort};

/// The container port on `pod` that `remote` (a service port number or name) reaches through
/// `svc`. Call again for each pod: a named `targetPort` may map to different numbers.
pub fn resolve_service_port(
    svc: &Service,
    pod: &Pod,
    remote: &RemotePort,
) -> Result<u16, ResolveError> {
    let port = find_service_port(svc, remote)?;
    let number = port_u16(port.port);
    if is_headless(svc) {
        return Ok(number);
    }
    match &port.target_port {
        None | Some(IntOrString::Int(0)) => Ok(number),
        Some(IntOrString::Int(n)) => Ok(port_u16(*n)),
        Some(IntOrString::String(name)) => container_port_by_name(pod, name),
    }
}

/// The service port number a remote refers to: the local port of a `REMOTE`-only spec, and
/// what [`resolve_service_port`] translates. Refuses unknown and UDP-only ports.
pub fn service_port_number(svc: &Service, remote: &RemotePort) -> Result<u16, ResolveError> {
    find_service_port(svc, remote).map(|p| port_u16(p.port))
}

/// The container port a remote refers to on a pod target: a number as is (refused if the pod
/// declares it UDP only), a name looked up in the containers, then init containers.
pub fn resolve_pod_port(pod: &Pod, remote: &RemotePort) -> Result<u16, ResolveError> {
    let number = match remote {
        RemotePort::Number(n) => *n,
        RemotePort::Name(name) => container_port_by_name(pod, name)?,
    };
    if udp_only(
        container_ports(pod).map(|p| (p.container_port, p.protocol.as_deref())),
        number,
    ) {
        return Err(ResolveError::UdpOnly {
            what: format!("pod \"{}\"", pod_name(pod)),
            port: remote.to_string(),
        });
    }
    Ok(number)
}

/// The local port to listen on: `None` means "any free port". For `REMOTE` alone it is
/// `remote_number` (the service port for services, the container port for pods).
pub fn local_port(spec: &PortSpec, remote_number: u16) -> Option<u16> {
    match spec.local {
        LocalPort::Fixed(n) => Some(n),
        LocalPort::Any => None,
        LocalPort::SameAsRemote => Some(remote_number),
    }
}

/// "All ports of this service": one spec per TCP service port. Ports from 1024 up listen on
/// the same number; lower ones on a free port, since binding them needs root.
pub fn all_service_ports(svc: &Service) -> Vec<PortSpec> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    let mut out: Vec<PortSpec> = Vec::new();
    for p in ports.into_iter().flatten() {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue;
        }
        let number = port_u16(p.port);
        if number == 0 || out.iter().any(|s| s.remote == RemotePort::Number(number)) {
            continue;
        }
        let local = if number >= 1024 {
            LocalPort::SameAsRemote
        } else {
            LocalPort::Any
        };
        out.push(PortSpec {
            local,
            remote: RemotePort::Number(number),
        });
    }
    out
}

/// Whether a service asks for `sessionAffinity: ClientIP` (used by `Spread::FollowService`).
pub fn wants_client_affinity(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.session_affinity.as_deref())
        == Some("ClientIP")
}

/// The service port a remote names, preferring the TCP entry when a number is declared for
/// both TCP and UDP; refuses UDP-only ports.
fn find_service_port<'a>(
    svc: &'a Service,
    remote: &RemotePort,
) -> Result<&'a ServicePort, ResolveError> {
    let ports: Vec<&ServicePort> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let matching: Vec<&ServicePort> = match remote {
        RemotePort::Number(n) => ports
            .iter()
            .copied()
            .filter(|p| p.port == i32::from(*n))
            .collect(),
        RemotePort::Name(name) => ports
            .iter()
            .copied()
            .filter(|p| p.name.as_deref() == Some(name.as_str()))
            .collect(),
    };
    if let Some(tcp) = matching.iter().find(|p| is_tcp(p.protocol.as_deref())) {
        return Ok(tcp);
    }
    if let Some(first) = matching.first() {
        // kubectl: a port is refused when it is UDP and no TCP port has the same number.
        let numbers = ports.iter().map(|p| (p.port, p.protocol.as_deref()));
        if first.protocol.as_deref() == Some("UDP") && udp_only(numbers, port_u16(first.port)) {
            return Err(ResolveError::UdpOnly {
                what: format!("service \"{}\"", svc_name(svc)),
                port: remote.to_string(),
            });
        }
        return Ok(first);
    }
    Err(match remote {
        RemotePort::Number(n) => ResolveError::ServicePortNotFound {
            service: svc_name(svc).to_string(),
            port: *n,
            available: ports.iter().map(|p| describe_service_port(p)).collect(),
        },
        RemotePort::Name(name) => ResolveError::ServicePortNameNotFound {
            service: svc_name(svc).to_string(),
            name: name.clone(),
            available: ports.iter().filter_map(|p| p.name.clone()).collect(),
        },
    })
}

/// kubectl's `LookupContainerPortNumberByName`: containers first, then init containers.
fn container_port_by_name(pod: &Pod, name: &str) -> Result<u16, ResolveError> {
    if let Some(port) = container_ports(pod).find(|p| p.name.as_deref() == Some(name)) {
        return Ok(port_u16(port.container_port));
    }
    Err(ResolveError::PodPortNameNotFound {
        pod: pod_name(pod).to_string(),
        name: name.to_string(),
        available: container_ports(pod)
            .filter_map(|p| p.name.clone())
            .collect(),
    })
}

/// Ports of the containers, then of the init containers (sidecars declare ports there).
fn container_ports(pod: &Pod) -> impl Iterator<Item = &ContainerPort> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let init = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten();
    main.chain(init).flat_map(|c| c.ports.iter().flatten())
}

/// True when `number` is declared only with UDP (kubectl's udpPorts minus tcpPorts).
fn udp_only<'a>(ports: impl Iterator<Item = (i32, Option<&'a str>)>, number: u16) -> bool {
    let (mut udp, mut tcp) = (false, false);
    for (port, proto) in ports {
        if port == i32::from(number) {
            if is_tcp(proto) {
                tcp = true;
            } else if proto == Some("UDP") {
                udp = true;
            }
        }
    }
    udp && !tcp
}

/// A missing protocol means TCP (the API server's default).
fn is_tcp(proto: Option<&str>) -> bool {
    matches!(proto, None | Some("TCP"))
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn describe_service_port(p: &ServicePort) -> String {
    match &p.name {
        Some(name) if !name.is_empty() => format!("{} ({name})", p.port),
        _ => p.port.to_string(),
    }
}

/// Port numbers from the API are i32 but always 0..=65535 when valid; clamp garbage to 0.
fn port_u16(n: i32) -> u16 {
    u16::try_from(n).unwrap_or(0)
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn svc_name(svc: &Service) -> &str {
    svc.metadata.name.as_deref().unwrap_or("")
}
