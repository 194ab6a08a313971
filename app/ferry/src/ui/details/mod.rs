//! The right-hand details panel: what the selected pod, service, deployment or tunnel is, and
//! what can be done with it.

pub mod pod;
pub mod service;

use egui::Ui;

use super::commands::{Command, ForwardTarget, Selection};
use super::model::Model;
use super::theme::{self, icon};

/// The recent log lines of a pod, as far as they have arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum LogState {
    Loading,
    Lines(Vec<String>),
    Failed(String),
}

/// Draws the details of the selection, or a hint when nothing is selected.
pub fn show(
    ui: &mut Ui,
    model: &Model,
    selection: Option<&Selection>,
    logs: Option<&(String, Option<String>, LogState)>,
    out: &mut Vec<Command>,
) {
    let objects = &model.objects;
    ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
        if ui
            .small_button("✖")
            .on_hover_text("Close the details")
            .clicked()
        {
            out.push(Command::Select(None));
        }
    });
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| match selection {
            Some(Selection::Service(name)) => {
                match objects.services.iter().find(|s| &s.name == name) {
                    Some(row) => service::show(ui, objects, row, out),
                    None => gone(ui, "service", name),
                }
            }
            Some(Selection::Pod(name)) => match objects.pods.iter().find(|p| &p.name == name) {
                Some(row) => {
                    let logs = logs
                        .filter(|(pod, _, _)| pod == name)
                        .map(|(_, container, l)| (container.as_deref(), l));
                    let demo_kubeconfig = match &model.source {
                        super::model::SourceState::Demo { kubeconfig } => Some(kubeconfig.as_str()),
                        _ => None,
                    };
                    pod::show(ui, &row.pod, logs, demo_kubeconfig, out);
                }
                None => gone(ui, "pod", name),
            },
            Some(Selection::Deployment(name)) => {
                match objects.deployments.iter().find(|d| &d.name == name) {
                    Some(row) => deployment(ui, row, out),
                    None => gone(ui, "deployment", name),
                }
            }
            Some(Selection::Tunnel(id)) => match model.tunnels.iter().find(|t| &t.id == id) {
                Some(t) => tunnel(ui, t),
                None => gone(ui, "tunnel", id),
            },
            None => {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    ui.label(theme::weak(
                        "Select a pod, service or tunnel to see its details.",
                    ));
                });
            }
        });
}

fn gone(ui: &mut Ui, what: &str, name: &str) {
    ui.label(theme::weak(format!("The {what} {name} no longer exists.")));
}

fn deployment(ui: &mut Ui, row: &super::model::DeploymentRow, out: &mut Vec<Command>) {
    ui.heading(&row.name);
    ui.label(format!(
        "{} of {} replicas ready, {} available",
        row.ready.0, row.ready.1, row.available
    ));
    if ui.button(format!("{} Forward…", icon::FORWARD)).clicked() {
        out.push(Command::OpenForward {
            target: ForwardTarget::Deployment(row.name.clone()),
            port: None,
        });
    }
    let selector = row.deployment.spec.selector.match_labels.as_ref().map(|l| {
        l.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    theme::section(ui, "Selector");
    ui.label(selector.unwrap_or_else(|| "—".into()));
}

fn tunnel(ui: &mut Ui, t: &super::model::TunnelRow) {
    let (word, tone) = t.status.word_and_tone();
    ui.heading(
        t.spec
            .alias
            .clone()
            .unwrap_or_else(|| t.spec.target.to_kubectl()),
    );
    theme::state_label(ui, tone, word);
    if let Some(reason) = t.status.reason() {
        ui.label(theme::weak(reason));
    }
    egui::Grid::new("tunnel-details")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label(theme::weak("Target"));
            ui.label(format!(
                "{} in {}/{}",
                t.spec.target, t.spec.context, t.spec.namespace
            ));
            ui.end_row();
            ui.label(theme::weak("Pod now"));
            ui.label(t.pod.clone().unwrap_or_else(|| "none".into()));
            ui.end_row();
            ui.label(theme::weak("Ports"));
            ui.label(
                t.spec
                    .ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            ui.end_row();
            ui.label(theme::weak("Spread"));
            ui.label(format!("{:?}", t.spec.spread));
            ui.end_row();
            ui.label(theme::weak("Protocol"));
            ui.label(
                t.transport
                    .map_or("known after the first connection", |p| p.describe()),
            );
            ui.end_row();
        });
}
