//! Pod details: containers with their state, ports, conditions and the last log lines.

use egui::Ui;
use ferry_core::exec::ContainerEntry;
use k8s_openapi::api::core::v1::Pod;

use super::LogState;
use crate::ui::commands::{Command, ForwardTarget};
use crate::ui::pods::{pod_status, status_tone};
use crate::ui::theme::{self, Tone, icon};

/// Draws the details of a pod; `logs` are the recent lines of the container asked for
/// (`None`: kubectl's default) if they were fetched for it.
///
/// `demo_kubeconfig` is set in the demo, where a shell runs as a local process: the shell
/// section says so.
pub fn show(
    ui: &mut Ui,
    pod: &Pod,
    logs: Option<(Option<&str>, &LogState)>,
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

    // One container choice for the shell, the command panel and the logs, made as kubectl
    // makes it when none is chosen.
    let entries = ferry_core::exec::container::containers(pod);
    let asked = logs.and_then(|(c, _)| c).map(str::to_string);
    let chosen = asked
        .clone()
        .or_else(|| entries.iter().find(|e| e.default).map(|e| e.name.clone()))
        .or_else(|| entries.first().map(|e| e.name.clone()))
        .unwrap_or_default();
    shell(
        ui,
        pod,
        &entries,
        &chosen,
        asked.as_deref(),
        demo_kubeconfig,
        out,
    );

    theme::section(ui, &format!("Recent log lines of {chosen}"));
    match logs.map(|(_, l)| l) {
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
        out.push(Command::FetchLogs {
            pod: name,
            container: asked,
        });
    }
}

/// The container picker (every container, init and ephemeral ones marked, those not running
/// greyed), "Open shell", "Run command…" and the kubectl line for a terminal of one's own; in
/// the demo, with the note that shells run locally.
fn shell(
    ui: &mut Ui,
    pod: &Pod,
    entries: &[ContainerEntry],
    chosen: &str,
    asked: Option<&str>,
    demo_kubeconfig: Option<&str>,
    out: &mut Vec<Command>,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    theme::section(ui, "Shell and commands");
    if entries.len() > 1 {
        ui.horizontal(|ui| {
            ui.label(theme::weak("Container"));
            egui::ComboBox::from_id_salt(("pod-container", &name))
                .selected_text(chosen)
                .show_ui(ui, |ui| {
                    for e in entries {
                        let mut label = e.label();
                        if !e.running {
                            label.push_str(&format!(" — {}", e.state));
                        }
                        if ui
                            .add(egui::Button::selectable(e.name == chosen, label))
                            .clicked()
                            && e.name != chosen
                        {
                            out.push(Command::FetchLogs {
                                pod: name.clone(),
                                container: Some(e.name.clone()),
                            });
                        }
                    }
                });
        });
    }
    let running = entries.iter().any(|e| e.name == chosen && e.running);
    ui.horizontal(|ui| {
        let shell = ui.add_enabled(
            running,
            egui::Button::new(format!("{} Open shell", icon::SHELL)),
        );
        let shell = if running {
            shell.on_hover_text(format!("A terminal in {chosen} (bash, else sh)"))
        } else {
            shell.on_disabled_hover_text(format!("Container {chosen} is not running"))
        };
        if shell.clicked() {
            out.push(Command::OpenShell {
                pod: name.clone(),
                container: asked.map(str::to_string),
            });
        }
        if ui
            .add_enabled(running, egui::Button::new("Run command…"))
            .clicked()
        {
            out.push(Command::OpenRunner {
                pod: name.clone(),
                container: asked.map(str::to_string),
            });
        }
    });
    let prefix = demo_kubeconfig
        .map(|k| format!("KUBECONFIG={k} "))
        .unwrap_or_default();
    let container = if entries.len() > 1 {
        format!(" -c {chosen}")
    } else {
        String::new()
    };
    let command = format!("{prefix}kubectl exec -it -n {namespace} {name}{container} -- sh");
    ui.horizontal(|ui| {
        ui.label(theme::mono(&command).small());
        if ui
            .small_button(icon::COPY)
            .on_hover_text("Copy the command, for a terminal of your own")
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
