//! The Pods tab: one row per pod, as `kubectl get pods -o wide` shows them, plus their ports.

use std::sync::Arc;

use egui::Ui;
use egui_extras::Column;
use k8s_openapi::api::core::v1::Pod;

use super::commands::{Command, ForwardTarget, Selection};
use super::model::{Objects, PodRow};
use super::table::{self, TableState};
use super::theme::{self, Tone};

const TITLES: [&str; 8] = [
    "Name", "Ready", "Status", "Restarts", "Age", "Node", "IP", "Ports",
];

impl PodRow {
    /// Precomputes the columns of a pod's row (done on the runtime thread, not per frame).
    pub fn new(pod: Arc<Pod>) -> Self {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
        let ready = statuses.iter().filter(|c| c.ready).count();
        let restarts = statuses.iter().map(|c| c.restart_count).sum();
        let ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| match &p.name {
                Some(n) => format!("{n}:{}", p.container_port),
                None => p.container_port.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        PodRow {
            name,
            ready: (ready, total),
            status: pod_status(&pod),
            restarts,
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
            ports,
            pod,
        }
    }
}

/// The STATUS column as kubectl computes it: Terminating, a container's waiting/terminated
/// reason, or the phase.
pub fn pod_status(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let status = pod.status.as_ref();
    for c in status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
    {
        if let Some(state) = &c.state {
            if let Some(reason) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
                return reason;
            }
            if let Some(reason) = state.terminated.as_ref().and_then(|t| t.reason.clone()) {
                return reason;
            }
        }
    }
    status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
}

/// The colour a pod status is drawn in.
pub fn status_tone(status: &str, ready: (usize, usize)) -> Tone {
    match status {
        "Running" if ready.0 == ready.1 => Tone::Good,
        "Running" | "Pending" | "ContainerCreating" | "PodInitializing" => Tone::Busy,
        "Terminating" | "Succeeded" | "Completed" => Tone::Quiet,
        _ => Tone::Bad,
    }
}

fn matches(row: &PodRow, needle: &str) -> bool {
    table::any_contains(
        &[&row.name, &row.status, &row.node, &row.ip, &row.ports],
        needle,
    )
}

fn compare(a: &PodRow, b: &PodRow, col: usize) -> std::cmp::Ordering {
    match col {
        1 => a.ready.cmp(&b.ready),
        2 => a.status.cmp(&b.status),
        3 => a.restarts.cmp(&b.restarts),
        4 => table::cmp_time(b.created, a.created),
        5 => a.node.cmp(&b.node),
        6 => a.ip.cmp(&b.ip),
        7 => a.ports.cmp(&b.ports),
        _ => a.name.cmp(&b.name),
    }
}

/// Draws the Pods tab.
pub fn show(
    ui: &mut Ui,
    objects: &Objects,
    state: &mut TableState,
    selection: Option<&Selection>,
    focus_filter: bool,
    out: &mut Vec<Command>,
) {
    table::filter_box(ui, state, "Filter pods (Ctrl+F)", focus_filter);
    let rows = &objects.pods;
    let order = state
        .order(objects.version, rows, matches, compare)
        .to_vec();
    if order.is_empty() {
        table::empty_state(ui, objects.loading, "pods", &state.filter);
        return;
    }
    let now = jiff::Timestamp::now();
    let columns = [
        Column::initial(240.0).at_least(120.0).clip(true),
        Column::initial(52.0),
        Column::initial(110.0),
        Column::initial(64.0),
        Column::initial(48.0),
        Column::initial(90.0).clip(true),
        Column::initial(96.0),
        Column::remainder().at_least(80.0).clip(true),
    ];
    table::scroll_sideways(ui, "pods-x", |ui| {
        table::builder(ui, "pods", &columns)
            .header(theme::HEADER_HEIGHT, |h| {
                table::sortable_header(h, &TITLES, state)
            })
            .body(|body| {
                body.rows(theme::ROW_HEIGHT, order.len(), |mut row| {
                    let Some(p) = order.get(row.index()).and_then(|&i| rows.get(i)) else {
                        return;
                    };
                    let selected = matches!(selection, Some(Selection::Pod(n)) if *n == p.name);
                    row.set_selected(selected);
                    row.col(|ui| {
                        ui.label(&p.name);
                    });
                    row.col(|ui| {
                        ui.label(format!("{}/{}", p.ready.0, p.ready.1));
                    });
                    row.col(|ui| {
                        theme::state_label(ui, status_tone(&p.status, p.ready), &p.status);
                    });
                    row.col(|ui| {
                        ui.label(p.restarts.to_string());
                    });
                    row.col(|ui| {
                        ui.label(theme::weak(table::live_age(ui, p.created, now)));
                    });
                    row.col(|ui| {
                        ui.label(&p.node);
                    });
                    row.col(|ui| {
                        ui.label(theme::mono(&p.ip));
                    });
                    row.col(|ui| {
                        ui.label(&p.ports);
                    });
                    let response = row.response();
                    if response.clicked() {
                        out.push(Command::Select(Some(Selection::Pod(p.name.clone()))));
                    }
                    if response.double_clicked() {
                        out.push(Command::OpenForward {
                            target: ForwardTarget::Pod(p.name.clone()),
                            port: None,
                        });
                    }
                    response.context_menu(|ui| {
                        if ui
                            .button(format!("{} Forward…", theme::icon::FORWARD))
                            .clicked()
                        {
                            out.push(Command::OpenForward {
                                target: ForwardTarget::Pod(p.name.clone()),
                                port: None,
                            });
                        }
                        if ui
                            .button(format!("{} Open shell", theme::icon::SHELL))
                            .clicked()
                        {
                            out.push(Command::OpenShell {
                                pod: p.name.clone(),
                                container: None,
                            });
                        }
                        if ui.button("Run command…").clicked() {
                            out.push(Command::OpenRunner {
                                pod: p.name.clone(),
                                container: None,
                            });
                        }
                        if ui
                            .button(format!("{} Copy name", theme::icon::COPY))
                            .clicked()
                        {
                            out.push(Command::CopyText(p.name.clone()));
                        }
                    });
                });
            });
    });
}
