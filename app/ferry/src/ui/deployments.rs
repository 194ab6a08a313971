//! The Deployments tab: ready, up-to-date and available replicas, as `kubectl get deploy`.

use std::sync::Arc;

use egui::Ui;
use egui_extras::Column;
use k8s_openapi::api::apps::v1::Deployment;

use super::commands::{Command, ForwardTarget, Selection};
use super::model::{DeploymentRow, Objects};
use super::table::{self, TableState};
use super::theme::{self, Tone};

const TITLES: [&str; 5] = ["Name", "Ready", "Up-to-date", "Available", "Age"];

impl DeploymentRow {
    /// Precomputes the columns of a deployment's row.
    pub fn new(deployment: Arc<Deployment>) -> Self {
        let status = deployment.status.clone().unwrap_or_default();
        let wanted = deployment.spec.replicas.unwrap_or(1);
        DeploymentRow {
            name: deployment.metadata.name.clone().unwrap_or_default(),
            ready: (status.ready_replicas.unwrap_or(0), wanted),
            up_to_date: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            created: deployment.metadata.creation_timestamp.as_ref().map(|t| t.0),
            deployment,
        }
    }
}

fn compare(a: &DeploymentRow, b: &DeploymentRow, col: usize) -> std::cmp::Ordering {
    match col {
        1 => a.ready.cmp(&b.ready),
        2 => a.up_to_date.cmp(&b.up_to_date),
        3 => a.available.cmp(&b.available),
        4 => table::cmp_time(b.created, a.created),
        _ => a.name.cmp(&b.name),
    }
}

/// Draws the Deployments tab.
pub fn show(
    ui: &mut Ui,
    objects: &Objects,
    state: &mut TableState,
    selection: Option<&Selection>,
    focus_filter: bool,
    out: &mut Vec<Command>,
) {
    table::filter_box(ui, state, "Filter deployments (Ctrl+F)", focus_filter);
    let rows = &objects.deployments;
    let order = state
        .order(
            objects.version,
            rows,
            |r, n| r.name.to_lowercase().contains(n),
            compare,
        )
        .to_vec();
    if order.is_empty() {
        table::empty_state(ui, objects.loading, "deployments", &state.filter);
        return;
    }
    let now = jiff::Timestamp::now();
    let columns = [
        Column::initial(240.0).at_least(100.0).clip(true),
        Column::initial(80.0),
        Column::initial(90.0),
        Column::initial(90.0),
        Column::remainder().at_least(40.0),
    ];
    table::scroll_sideways(ui, "deployments-x", |ui| {
        table::builder(ui, "deployments", &columns)
            .header(theme::HEADER_HEIGHT, |h| {
                table::sortable_header(h, &TITLES, state)
            })
            .body(|body| {
                body.rows(theme::ROW_HEIGHT, order.len(), |mut row| {
                    let Some(d) = order.get(row.index()).and_then(|&i| rows.get(i)) else {
                        return;
                    };
                    row.set_selected(
                        matches!(selection, Some(Selection::Deployment(n)) if *n == d.name),
                    );
                    row.col(|ui| {
                        ui.label(&d.name);
                    });
                    row.col(|ui| {
                        let tone = if d.ready.0 >= d.ready.1 {
                            Tone::Good
                        } else {
                            Tone::Warn
                        };
                        theme::state_label(ui, tone, &format!("{}/{}", d.ready.0, d.ready.1));
                    });
                    row.col(|ui| {
                        ui.label(d.up_to_date.to_string());
                    });
                    row.col(|ui| {
                        ui.label(d.available.to_string());
                    });
                    row.col(|ui| {
                        ui.label(theme::weak(table::live_age(ui, d.created, now)));
                    });
                    let response = row.response();
                    let forward = Command::OpenForward {
                        target: ForwardTarget::Deployment(d.name.clone()),
                        port: None,
                    };
                    if response.clicked() {
                        out.push(Command::Select(Some(Selection::Deployment(d.name.clone()))));
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
                    });
                });
            });
    });
}
