//! The Services tab: type, addresses, ports as `80→8080/TCP`, selector and endpoint count.

use std::sync::Arc;

use egui::Ui;
use egui_extras::Column;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::commands::{Command, ForwardTarget, Selection};
use super::model::{Objects, ServiceRow};
use super::table::{self, TableState};
use super::theme::{self, Tone};

const TITLES: [&str; 8] = [
    "Name",
    "Type",
    "Cluster IP",
    "External IP",
    "Ports",
    "Selector",
    "Endpoints",
    "Age",
];

impl ServiceRow {
    /// Precomputes the columns of a service's row and its resolved ports; `endpoints` is the
    /// Endpoints object of the same name, if the catalog has it, and `pods` the namespace's
    /// pods (the first endpoint's pod is the one named targetPorts are resolved against).
    pub fn new<'a>(
        service: Arc<Service>,
        endpoints: Option<&Endpoints>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Self {
        let spec = service.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(port_text)
            .collect::<Vec<_>>()
            .join(", ");
        let selector = spec
            .selector
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        ServiceRow {
            name: service.metadata.name.clone().unwrap_or_default(),
            kind: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
            cluster_ip: spec.cluster_ip.clone().unwrap_or_default(),
            external_ip: external_ips(&service).join(", "),
            ports,
            selector,
            endpoints: endpoints.map(ready_addresses),
            created: service.metadata.creation_timestamp.as_ref().map(|t| t.0),
            resolved_ports: super::details::service::resolve_ports(
                &service,
                endpoints.and_then(|e| backing_pod(e, pods)),
            ),
            service,
        }
    }
}

/// `http 80→8080/TCP`, with `:30080` appended for a node port.
pub fn port_text(p: &ServicePort) -> String {
    let target = match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => p.port.to_string(),
    };
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    let name = p
        .name
        .as_deref()
        .map(|n| format!("{n} "))
        .unwrap_or_default();
    let node = p.node_port.map(|n| format!(" :{n}")).unwrap_or_default();
    format!("{name}{}→{target}/{proto}{node}", p.port)
}

/// External addresses: load-balancer ingress IPs or hostnames, then `spec.externalIPs`.
pub fn external_ips(service: &Service) -> Vec<String> {
    let mut out: Vec<String> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    if let Some(ext) = service.spec.as_ref().and_then(|s| s.external_ips.as_ref()) {
        out.extend(ext.iter().cloned());
    }
    out
}

/// How many ready addresses an Endpoints object lists.
pub fn ready_addresses(endpoints: &Endpoints) -> usize {
    endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum()
}

fn matches(row: &ServiceRow, needle: &str) -> bool {
    table::any_contains(
        &[
            &row.name,
            &row.kind,
            &row.cluster_ip,
            &row.external_ip,
            &row.ports,
            &row.selector,
        ],
        needle,
    )
}

fn compare(a: &ServiceRow, b: &ServiceRow, col: usize) -> std::cmp::Ordering {
    match col {
        1 => a.kind.cmp(&b.kind),
        2 => a.cluster_ip.cmp(&b.cluster_ip),
        3 => a.external_ip.cmp(&b.external_ip),
        4 => a.ports.cmp(&b.ports),
        5 => a.selector.cmp(&b.selector),
        6 => a.endpoints.cmp(&b.endpoints),
        7 => table::cmp_time(b.created, a.created),
        _ => a.name.cmp(&b.name),
    }
}

/// Draws the Services tab.
pub fn show(
    ui: &mut Ui,
    objects: &Objects,
    state: &mut TableState,
    selection: Option<&Selection>,
    focus_filter: bool,
    out: &mut Vec<Command>,
) {
    table::filter_box(ui, state, "Filter services (Ctrl+F)", focus_filter);
    let rows = &objects.services;
    let order = state
        .order(objects.version, rows, matches, compare)
        .to_vec();
    if order.is_empty() {
        table::empty_state(ui, objects.loading, "services", &state.filter);
        return;
    }
    let now = jiff::Timestamp::now();
    let columns = [
        Column::initial(150.0).at_least(80.0).clip(true),
        Column::initial(88.0).clip(true),
        Column::initial(112.0).clip(true),
        Column::initial(92.0).clip(true),
        Column::initial(170.0).clip(true),
        Column::initial(90.0).clip(true),
        Column::initial(70.0),
        Column::remainder().at_least(40.0),
    ];
    table::scroll_sideways(ui, "services-x", |ui| {
        table::builder(ui, "services", &columns)
            .header(theme::HEADER_HEIGHT, |h| {
                table::sortable_header(h, &TITLES, state)
            })
            .body(|body| {
                body.rows(theme::ROW_HEIGHT, order.len(), |mut row| {
                    let Some(s) = order.get(row.index()).and_then(|&i| rows.get(i)) else {
                        return;
                    };
                    row.set_selected(
                        matches!(selection, Some(Selection::Service(n)) if *n == s.name),
                    );
                    row.col(|ui| {
                        ui.label(&s.name);
                    });
                    row.col(|ui| {
                        ui.label(&s.kind);
                    });
                    row.col(|ui| {
                        if s.cluster_ip == "None" {
                            ui.label(theme::weak("None (headless)"));
                        } else {
                            ui.label(theme::mono(&s.cluster_ip));
                        }
                    });
                    row.col(|ui| {
                        ui.label(if s.external_ip.is_empty() {
                            theme::weak("—")
                        } else {
                            theme::mono(&s.external_ip)
                        });
                    });
                    row.col(|ui| {
                        ui.label(&s.ports);
                    });
                    row.col(|ui| {
                        ui.label(if s.selector.is_empty() {
                            theme::weak("none")
                        } else {
                            s.selector.clone().into()
                        });
                    });
                    row.col(|ui| match s.endpoints {
                        Some(0) => {
                            theme::state_label(ui, Tone::Warn, "0");
                        }
                        Some(n) => {
                            ui.label(n.to_string());
                        }
                        None => {
                            ui.label(theme::weak("—"));
                        }
                    });
                    row.col(|ui| {
                        ui.label(theme::weak(table::live_age(ui, s.created, now)));
                    });
                    let response = row.response();
                    let forward = Command::OpenForward {
                        target: ForwardTarget::Service(s.name.clone()),
                        port: None,
                    };
                    if response.clicked() {
                        out.push(Command::Select(Some(Selection::Service(s.name.clone()))));
                    }
                    if response.double_clicked() {
                        out.push(forward.clone());
                    }
                    response.context_menu(|ui| {
                        if ui
                            .button(format!("{} Forward…", theme::icon::FORWARD))
                            .clicked()
                        {
                            out.push(forward.clone());
                        }
                        if ui
                            .button(format!("{} Copy name", theme::icon::COPY))
                            .clicked()
                        {
                            out.push(Command::CopyText(s.name.clone()));
                        }
                    });
                });
            });
    });
}

/// The pod behind the first endpoint address that names one (ready addresses come first).
fn backing_pod<'a>(
    endpoints: &Endpoints,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<&'a Pod> {
    let names: Vec<String> = super::details::service::endpoint_list(endpoints)
        .into_iter()
        .filter_map(|e| e.pod)
        .collect();
    let pods: Vec<&Pod> = pods.into_iter().collect();
    names.iter().find_map(|name| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .copied()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_arrows_with_names_and_node_ports() {
        let p = ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("web".into())),
            node_port: Some(30080),
            ..Default::default()
        };
        assert_eq!(port_text(&p), "http 80→web/TCP :30080");
        let p = ServicePort {
            port: 5432,
            ..Default::default()
        };
        assert_eq!(port_text(&p), "5432→5432/TCP");
    }
}
