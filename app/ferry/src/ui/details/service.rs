//! Service details: everything needed to answer "how do I reach this?" at a glance — ports with
//! named targetPorts resolved, endpoints, affinity and traffic policy, and every route to it.
//!
//! The facts are pure functions over k8s-openapi types (unit-tested below); the drawing is thin.

use egui::{RichText, Ui};
use ferry_core::resolve::resolve_service_port;
use ferry_core::spec::RemotePort;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::ui::commands::{Command, ForwardTarget};
use crate::ui::model::{Objects, ResolvedPort, ServiceRow};
use crate::ui::theme::{self, Tone, icon};

/// Resolves each service port's targetPort the way `kubectl port-forward` does, with
/// ferry-core's [`resolve_service_port`] against a backing pod (a named targetPort is looked up
/// in its containers, then init containers; without a pod it stays unresolved). Run when the
/// catalog changes (in [`ServiceRow::new`](crate::ui::model::ServiceRow)), never per frame.
pub fn resolve_ports(service: &Service, pod: Option<&Pod>) -> Vec<ResolvedPort> {
    let no_pod = Pod::default();
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    ports
        .iter()
        .map(|p| {
            let target = match &p.target_port {
                Some(IntOrString::Int(0)) | None => p.port.to_string(),
                Some(IntOrString::Int(n)) => n.to_string(),
                Some(IntOrString::String(name)) => name.clone(),
            };
            let remote = RemotePort::Number(u16::try_from(p.port).unwrap_or_default());
            let container_port = resolve_service_port(service, pod.unwrap_or(&no_pod), &remote)
                .ok()
                .map(i32::from);
            ResolvedPort {
                name: p.name.clone(),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                target,
                container_port,
                node_port: p.node_port,
            }
        })
        .collect()
}

/// One endpoint address, ready or not, with the pod behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInfo {
    pub ip: String,
    pub pod: Option<String>,
    pub node: Option<String>,
    pub ready: bool,
}

/// The addresses of an Endpoints object, ready ones first.
pub fn endpoint_list(endpoints: &Endpoints) -> Vec<EndpointInfo> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        for (list, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, false),
        ] {
            for a in list.iter().flatten() {
                out.push(EndpointInfo {
                    ip: a.ip.clone(),
                    pod: a.target_ref.as_ref().and_then(|r| r.name.clone()),
                    node: a.node_name.clone(),
                    ready,
                });
            }
        }
    }
    out.sort_by_key(|e| !e.ready);
    out
}

/// A way to reach the service and from where.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `ClusterIP`, `DNS`, `NodePort`, `LoadBalancer`, `Ingress`, `ExternalName`.
    pub kind: &'static str,
    pub address: String,
    /// From where it works ("inside the cluster", "node worker-1 (InternalIP)").
    pub from: String,
}

/// Every route to the service: ClusterIP and DNS name in the cluster, NodePort on each node
/// address, load-balancer ingress, and the Ingress hosts and paths whose backend is this service.
pub fn routes(
    service: &Service,
    nodes: &[impl AsRef<Node>],
    ingresses: &[impl AsRef<Ingress>],
) -> Vec<Route> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let namespace = service
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec.ports.clone().unwrap_or_default();
    let mut out = Vec::new();
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.unwrap_or_default();
        out.push(Route {
            kind: "ExternalName",
            address: target,
            from: "a DNS alias (CNAME)".into(),
        });
        return out;
    }
    let in_cluster = "inside the cluster".to_string();
    match spec.cluster_ip.as_deref() {
        Some("None") => out.push(Route {
            kind: "Headless",
            address: "no cluster IP: DNS returns the pod IPs".into(),
            from: in_cluster.clone(),
        }),
        Some(ip) if !ip.is_empty() => {
            for p in &ports {
                out.push(Route {
                    kind: "ClusterIP",
                    address: format!("{ip}:{}", p.port),
                    from: in_cluster.clone(),
                });
            }
        }
        _ => {}
    }
    if let Some(p) = ports.first() {
        out.push(Route {
            kind: "DNS",
            address: format!("{name}.{namespace}.svc.cluster.local:{}", p.port),
            from: in_cluster,
        });
    }
    for p in ports.iter().filter(|p| p.node_port.is_some()) {
        let node_port = p.node_port.unwrap_or_default();
        for node in nodes {
            let node = node.as_ref();
            let node_name = node.metadata.name.clone().unwrap_or_default();
            let addresses = node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_deref())
                .unwrap_or_default();
            for a in addresses
                .iter()
                .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            {
                out.push(Route {
                    kind: "NodePort",
                    address: format!("{}:{node_port}", a.address),
                    from: format!("node {node_name} ({})", a.type_),
                });
            }
        }
    }
    for ip in crate::ui::services::external_ips(service) {
        for p in &ports {
            out.push(Route {
                kind: "LoadBalancer",
                address: format!("{ip}:{}", p.port),
                from: "outside the cluster".into(),
            });
        }
    }
    out.extend(ingress_routes(&name, ingresses));
    out
}

/// The Ingress hosts and paths whose backend is the named service.
fn ingress_routes(service: &str, ingresses: &[impl AsRef<Ingress>]) -> Vec<Route> {
    let mut out = Vec::new();
    for ing in ingresses {
        let ing = ing.as_ref();
        let ing_name = ing.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &ing.spec else { continue };
        let tls_hosts: Vec<&String> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .collect();
        let backs_us = |b: &k8s_openapi::api::networking::v1::IngressBackend| {
            b.service.as_ref().is_some_and(|s| s.name == service)
        };
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_else(|| "*".into());
            let scheme = if rule.host.as_ref().is_some_and(|h| tls_hosts.contains(&h)) {
                "https"
            } else {
                "http"
            };
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                if backs_us(&path.backend) {
                    let p = path.path.clone().unwrap_or_else(|| "/".into());
                    out.push(Route {
                        kind: "Ingress",
                        address: format!("{scheme}://{host}{p}"),
                        from: format!("ingress {ing_name} ({})", path.path_type),
                    });
                }
            }
        }
        if spec.default_backend.as_ref().is_some_and(backs_us) {
            out.push(Route {
                kind: "Ingress",
                address: "any host, any path".into(),
                from: format!("ingress {ing_name} (default backend)"),
            });
        }
    }
    out
}

/// Why this service cannot be forwarded, if it cannot (kubectl's own reasons).
pub fn unforwardable(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Some(
            "An ExternalName service is only a DNS alias; there is no pod to forward to.".into(),
        );
    }
    if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        return Some(
            "This service has no selector: its endpoints are managed by hand and need not be pods, \
             and port-forwarding only reaches pods. Forward to a pod directly instead."
                .into(),
        );
    }
    None
}

/// Draws the details of a service.
pub fn show(ui: &mut Ui, objects: &Objects, row: &ServiceRow, out: &mut Vec<Command>) {
    let service = row.service.as_ref();
    let name = service.metadata.name.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let endpoints = objects
        .endpoints
        .iter()
        .find(|e| e.metadata.name.as_deref() == Some(name.as_str()));
    let endpoint_infos = endpoints.map(|e| endpoint_list(e)).unwrap_or_default();

    ui.horizontal(|ui| {
        ui.heading(&name);
        ui.label(theme::weak(
            spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
        ));
    });
    match unforwardable(service) {
        None => {
            let button =
                egui::Button::new(RichText::new(format!("{} Forward…", icon::FORWARD)).strong());
            if ui
                .add(button)
                .on_hover_text("Forward this service's ports to this computer")
                .clicked()
            {
                out.push(Command::OpenForward {
                    target: ForwardTarget::Service(name.clone()),
                    port: None,
                });
            }
        }
        Some(reason) => {
            ui.label(
                RichText::new(format!("{} Cannot be forwarded", icon::WARNING))
                    .color(theme::tone_color(ui, Tone::Warn)),
            );
            ui.label(theme::weak(reason));
        }
    }
    ui.add_space(theme::GAP);

    theme::section(ui, "Ports");
    egui::Grid::new("svc-ports")
        .num_columns(3)
        .striped(false)
        .show(ui, |ui| {
            for p in &row.resolved_ports {
                let label = format!(
                    "{}{}/{}",
                    p.name
                        .as_deref()
                        .map(|n| format!("{n} "))
                        .unwrap_or_default(),
                    p.port,
                    p.protocol
                );
                let response =
                    ui.add(egui::Label::new(theme::mono(label)).sense(egui::Sense::click()));
                let target = match (p.container_port, p.target.parse::<i32>().is_ok()) {
                    (Some(n), false) => format!("→ {} = {n}", p.target),
                    (None, false) => format!("→ {} (unresolved)", p.target),
                    _ => format!("→ {}", p.target),
                };
                ui.label(target);
                ui.label(theme::weak(
                    p.node_port
                        .map(|n| format!("node port {n}"))
                        .unwrap_or_default(),
                ));
                ui.end_row();
                if response
                    .on_hover_text("Double-click to forward this port")
                    .double_clicked()
                    && unforwardable(service).is_none()
                {
                    out.push(Command::OpenForward {
                        target: ForwardTarget::Service(name.clone()),
                        port: u16::try_from(p.port).ok(),
                    });
                }
            }
        });

    theme::section(ui, "Endpoints");
    let ready = endpoint_infos.iter().filter(|e| e.ready).count();
    ui.label(format!(
        "{ready} ready, {} not ready",
        endpoint_infos.len() - ready
    ));
    for e in &endpoint_infos {
        ui.horizontal(|ui| {
            let (word, tone) = if e.ready {
                ("ready", Tone::Good)
            } else {
                ("not ready", Tone::Warn)
            };
            theme::state_label(ui, tone, word);
            ui.label(theme::mono(&e.ip));
            ui.label(theme::weak(
                e.pod.clone().unwrap_or_else(|| "(not a pod)".into()),
            ));
        });
    }
    if endpoints.is_none() {
        ui.label(theme::weak("No Endpoints object."));
    }

    theme::section(ui, "Behaviour");
    egui::Grid::new("svc-behaviour")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label(theme::weak("Session affinity"));
            ui.label(
                spec.session_affinity
                    .clone()
                    .unwrap_or_else(|| "None".into()),
            );
            ui.end_row();
            ui.label(theme::weak("External traffic policy"));
            ui.label(
                spec.external_traffic_policy
                    .clone()
                    .unwrap_or_else(|| "—".into()),
            );
            ui.end_row();
            ui.label(theme::weak("Selector"));
            let selector = spec.selector.as_ref().map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            ui.label(selector.unwrap_or_else(|| "none".into()));
            ui.end_row();
        });

    theme::section(ui, "How to reach it");
    egui::Grid::new("svc-routes").num_columns(3).show(ui, |ui| {
        for r in routes(service, &objects.nodes, &objects.ingresses) {
            ui.label(theme::weak(r.kind));
            ui.label(theme::mono(&r.address));
            if ui
                .small_button(icon::COPY)
                .on_hover_text(format!("Copy — works from {}", r.from))
                .clicked()
            {
                out.push(Command::CopyText(r.address.clone()));
            }
            ui.end_row();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, NodeAddress, NodeStatus, PodSpec, ServicePort, ServiceSpec,
    };
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, IngressBackend, IngressRule, IngressServiceBackend,
        IngressSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    fn service(kind: &str) -> Service {
        Service {
            metadata: meta("kubia"),
            spec: Some(ServiceSpec {
                type_: Some(kind.into()),
                cluster_ip: Some("10.96.0.10".into()),
                selector: Some([("app".to_string(), "kubia".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("web".into())),
                    node_port: (kind == "NodePort").then_some(30080),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn named_target_ports_resolve_against_the_backing_pod() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let ports = resolve_ports(&service("ClusterIP"), Some(&pod));
        assert_eq!(ports[0].target, "web");
        assert_eq!(ports[0].container_port, Some(8080));
        assert_eq!(
            resolve_ports(&service("ClusterIP"), None)[0].container_port,
            None
        );
        // As kubectl port-forward does (and the tunnel engine): a headless service passes the
        // port number through, whatever its targetPort says.
        let mut headless = service("ClusterIP");
        if let Some(spec) = headless.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
        }
        assert_eq!(
            resolve_ports(&headless, Some(&pod))[0].container_port,
            Some(80)
        );
    }

    #[test]
    fn node_ports_are_listed_on_every_node_address() {
        let node = Node {
            metadata: meta("worker-1"),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "172.18.0.2".into(),
                    },
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: "worker-1".into(),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let routes = routes(
            &service("NodePort"),
            &[std::sync::Arc::new(node)],
            &[] as &[std::sync::Arc<Ingress>],
        );
        let kinds: Vec<_> = routes
            .iter()
            .map(|r| (r.kind, r.address.as_str()))
            .collect();
        assert!(kinds.contains(&("ClusterIP", "10.96.0.10:80")), "{kinds:?}");
        assert!(
            kinds.contains(&("DNS", "kubia.default.svc.cluster.local:80")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("NodePort", "172.18.0.2:30080")),
            "{kinds:?}"
        );
        assert!(
            !kinds.iter().any(|(_, a)| a.starts_with("worker-1")),
            "hostnames are not addresses"
        );
    }

    #[test]
    fn ingress_paths_that_route_to_the_service_are_listed() {
        let backend = |svc: &str| IngressBackend {
            service: Some(IngressServiceBackend {
                name: svc.into(),
                port: None,
            }),
            ..Default::default()
        };
        let ing = Ingress {
            metadata: meta("web"),
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: Some("kubia.example.com".into()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![
                            HTTPIngressPath {
                                path: Some("/".into()),
                                path_type: "Prefix".into(),
                                backend: backend("kubia"),
                            },
                            HTTPIngressPath {
                                path: Some("/other".into()),
                                path_type: "Prefix".into(),
                                backend: backend("other"),
                            },
                        ],
                    }),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = ingress_routes("kubia", &[std::sync::Arc::new(ing)]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].address, "http://kubia.example.com/");
    }

    #[test]
    fn selectorless_services_explain_why_they_cannot_be_forwarded() {
        let mut svc = service("ClusterIP");
        assert_eq!(unforwardable(&svc), None);
        if let Some(spec) = svc.spec.as_mut() {
            spec.selector = None;
        }
        assert!(unforwardable(&svc).is_some_and(|r| r.contains("no selector")));
    }
}
