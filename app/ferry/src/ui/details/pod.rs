//! Pod details: containers with their state, ports, conditions and the last log lines.

use egui::Ui;
use k8s_openapi::api::core::v1::Pod;

use super::LogState;
use crate::ui::commands::{Command, ForwardTarget};
use crate::ui::pods::{pod_status, status_tone};
use crate::ui::theme::{self, Tone, icon};

/// Draws the details of a pod; `logs` are the recent lines if they were fetched for it.
///
/// `demo_kubeconfig` is set in the demo, where a shell runs as a local process: the shell
/// section says so.
pub fn show(
    ui: &mut Ui,
    pod: &Pod,
    logs: Option<&LogState>,
    demo_kubeconfig: Option<&str>,
    out: &mut Vec<Command>,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    ui.heading(&name);
    ui.horizontal(|ui| {
        let word = pod_status(pod);
        let statuses = status.container_statuses.as_deref().unwrap_or_default();
        let ready = (
            statuses.iter().filter(|c| c.ready).count(),
            spec.containers.len(),
        );
        theme::state_label(ui, status_tone(&word, ready), &word);
        ui.label(theme::weak(format!(
            "on {}",
            spec.node_name
                .clone()
                .unwrap_or_else(|| "no node yet".into())
        )));
        if let Some(ip) = &status.pod_ip {
            ui.label(theme::mono(ip));
        }
    });
    if ui.button(format!("{} Forward…", icon::FORWARD)).clicked() {
        out.push(Command::OpenForward {
            target: ForwardTarget::Pod(name.clone()),
            port: None,
        });
    }

    theme::section(ui, "Containers");
    for c in &spec.containers {
        let cs = status
            .container_statuses
            .iter()
            .flatten()
            .find(|s| s.name == c.name);
        ui.horizontal(|ui| {
            let (word, tone) = match cs {
                Some(s) if s.ready => ("ready", Tone::Good),
                Some(s) if s.state.as_ref().is_some_and(|st| st.running.is_some()) => {
                    ("running", Tone::Busy)
                }
                Some(_) => ("not ready", Tone::Warn),
                None => ("waiting", Tone::Busy),
            };
            theme::state_label(ui, tone, word);
            ui.label(egui::RichText::new(&c.name).strong());
            ui.label(theme::weak(c.image.clone().unwrap_or_default()));
            if let Some(s) = cs.filter(|s| s.restart_count > 0) {
                ui.label(theme::weak(format!("{} restarts", s.restart_count)));
            }
        });
        for p in c.ports.iter().flatten() {
            let name = p
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let response = ui.add(
                egui::Label::new(theme::mono(format!(
                    "    {}/{proto}{name}",
                    p.container_port
                )))
                .sense(egui::Sense::click()),
            );
            if response
                .on_hover_text("Double-click to forward this port")
                .double_clicked()
            {
                out.push(Command::OpenForward {
                    target: ForwardTarget::Pod(name.clone()),
                    port: u16::try_from(p.container_port).ok(),
                });
            }
        }
    }

    theme::section(ui, "Conditions");
    egui::Grid::new("pod-conditions")
        .num_columns(3)
        .show(ui, |ui| {
            for c in status.conditions.iter().flatten() {
                let tone = if c.status == "True" {
                    Tone::Good
                } else {
                    Tone::Warn
                };
                ui.label(&c.type_);
                theme::state_label(ui, tone, &c.status);
                ui.label(theme::weak(c.reason.clone().unwrap_or_default()));
                ui.end_row();
            }
        });

    shell(ui, pod, demo_kubeconfig, out);

    theme::section(ui, "Recent log lines");
    match logs {
        None | Some(LogState::Loading) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(theme::weak("Fetching logs…"));
            });
        }
        Some(LogState::Failed(reason)) => {
            ui.label(theme::weak(format!("{} {reason}", icon::WARNING)));
        }
        Some(LogState::Lines(lines)) if lines.is_empty() => {
            ui.label(theme::weak("No log output yet."));
        }
        Some(LogState::Lines(lines)) => {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .max_height(180.0)
                    .stick_to_bottom(true)
                    .show(ui, |ui| {
                        for line in lines {
                            ui.label(theme::mono(line).small());
                        }
                    });
            });
        }
    }
    if ui
        .small_button(format!("{} Refresh logs", icon::RESTART))
        .clicked()
    {
        out.push(Command::FetchLogs { pod: name });
    }
}

/// The command that opens a shell in the pod, to copy into a terminal; in the demo, with the
/// note that it runs locally.
fn shell(ui: &mut Ui, pod: &Pod, demo_kubeconfig: Option<&str>, out: &mut Vec<Command>) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let prefix = demo_kubeconfig
        .map(|k| format!("KUBECONFIG={k} "))
        .unwrap_or_default();
    let command = format!("{prefix}kubectl exec -it -n {namespace} {name} -- sh");
    theme::section(ui, "Shell");
    ui.horizontal(|ui| {
        ui.label(theme::mono(&command).small());
        if ui
            .small_button(icon::COPY)
            .on_hover_text("Copy the command")
            .clicked()
        {
            out.push(Command::CopyText(command.clone()));
        }
    });
    if demo_kubeconfig.is_some() {
        let warn = theme::tone_color(ui, Tone::Warn);
        ui.label(
            egui::RichText::new(format!("{} {}", icon::WARNING, crate::demo::EXEC_NOTE))
                .color(warn)
                .small(),
        );
    }
}
