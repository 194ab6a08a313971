//! The left sidebar: contexts with their connection state, the namespaces of the selected
//! context (filterable, or typed by hand when listing them is forbidden), and saved profiles
//! with start/stop toggles.

use egui::{RichText, Ui};

use super::commands::Command;
use super::model::{Connection, Model};
use super::theme::{self, Tone, icon};

/// What the sidebar remembers between frames.
#[derive(Debug, Default)]
pub struct SidebarState {
    pub namespace_filter: String,
    pub typed_namespace: String,
}

/// Draws the sidebar.
pub fn show(
    ui: &mut Ui,
    model: &Model,
    context: Option<&str>,
    namespace: Option<&str>,
    state: &mut SidebarState,
    out: &mut Vec<Command>,
) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            contexts(ui, model, context, out);
            ui.add_space(theme::GAP);
            namespaces(ui, model, namespace, state, out);
            ui.add_space(theme::GAP);
            profiles(ui, model, out);
        });
}

/// The word and tone of a context's connection state.
pub fn connection_tone(c: &Connection) -> (Tone, &str) {
    match c {
        Connection::Idle => (Tone::Quiet, ""),
        Connection::Connecting => (Tone::Busy, "connecting"),
        Connection::Ok => (Tone::Good, "connected"),
        Connection::Error(_) => (Tone::Bad, "error"),
    }
}

fn contexts(ui: &mut Ui, model: &Model, selected: Option<&str>, out: &mut Vec<Command>) {
    theme::section(ui, "Contexts");
    if model.contexts.is_empty() {
        ui.label(theme::weak("No contexts in the kubeconfig."));
    }
    for c in &model.contexts {
        let is_selected = selected == Some(c.name.as_str());
        let response = ui
            .horizontal(|ui| {
                let (tone, word) = connection_tone(&c.connection);
                let color = theme::tone_color(ui, tone);
                if tone == Tone::Busy {
                    ui.add(egui::Spinner::new().size(10.0).color(color));
                } else {
                    ui.label(RichText::new(icon::DOT).size(10.0).color(color));
                }
                let r = ui.selectable_label(is_selected, &c.name);
                let hover = match &c.connection {
                    Connection::Error(reason) => format!("{}: {reason}", c.cluster),
                    _ => format!(
                        "cluster {}{}",
                        c.cluster,
                        if word.is_empty() {
                            String::new()
                        } else {
                            format!(" — {word}")
                        }
                    ),
                };
                r.on_hover_text(hover)
            })
            .inner;
        if response.clicked() && !is_selected {
            out.push(Command::SelectContext(c.name.clone()));
        }
        if let (true, Connection::Error(reason)) = (is_selected, &c.connection) {
            ui.label(
                RichText::new(reason)
                    .small()
                    .color(theme::tone_color(ui, Tone::Bad)),
            );
        }
    }
}

fn namespaces(
    ui: &mut Ui,
    model: &Model,
    selected: Option<&str>,
    state: &mut SidebarState,
    out: &mut Vec<Command>,
) {
    theme::section(ui, "Namespaces");
    let ns = &model.namespaces;
    if let Some(reason) = &ns.forbidden {
        ui.label(theme::weak(format!(
            "Listing namespaces is not allowed ({reason}). Type one:"
        )));
        let response = ui.add(
            egui::TextEdit::singleline(&mut state.typed_namespace)
                .hint_text("namespace")
                .desired_width(f32::INFINITY),
        );
        if response.lost_focus()
            && ui.input(|i| i.key_pressed(egui::Key::Enter))
            && !state.typed_namespace.trim().is_empty()
        {
            out.push(Command::SelectNamespace(
                state.typed_namespace.trim().to_string(),
            ));
        }
        if let Some(current) = selected {
            ui.label(theme::weak(format!("Showing {current}")));
        }
        return;
    }
    if ns.loading && ns.names.is_empty() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(theme::weak("Loading…"));
        });
        return;
    }
    if ns.names.len() > 6 {
        ui.add(
            egui::TextEdit::singleline(&mut state.namespace_filter)
                .hint_text("filter")
                .desired_width(f32::INFINITY),
        );
    }
    let needle = state.namespace_filter.trim().to_lowercase();
    for name in ns
        .names
        .iter()
        .filter(|n| needle.is_empty() || n.to_lowercase().contains(&needle))
    {
        let is_selected = selected == Some(name.as_str());
        if ui.selectable_label(is_selected, name).clicked() && !is_selected {
            out.push(Command::SelectNamespace(name.clone()));
        }
    }
}

fn profiles(ui: &mut Ui, model: &Model, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        theme::section(ui, "Profiles");
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.small_button("Manage…").clicked() {
                out.push(Command::ShowProfiles(true));
            }
        });
    });
    let profiles = &model.profiles;
    if profiles.corrupt.is_some() {
        let text = RichText::new(format!("{} The profile file is damaged", icon::WARNING))
            .color(theme::tone_color(ui, Tone::Bad));
        if ui.link(text).clicked() {
            out.push(Command::ShowProfiles(true));
        }
    }
    if profiles.items.is_empty() {
        ui.label(theme::weak("No saved profiles."));
    }
    for p in &profiles.items {
        ui.horizontal(|ui| {
            let mut on = p.running > 0;
            let toggle = ui.checkbox(&mut on, &p.name).on_hover_text(format!(
                "{} tunnels, {} running{}",
                p.tunnels.len(),
                p.running,
                if p.autostart {
                    ", starts with Ferry"
                } else {
                    ""
                }
            ));
            if toggle.changed() {
                out.push(if on {
                    Command::StartProfile(p.name.clone())
                } else {
                    Command::StopProfile(p.name.clone())
                });
            }
            ui.label(theme::weak(format!("{}/{}", p.running, p.tunnels.len())));
        });
    }
}
