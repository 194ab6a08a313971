//! The profiles window: create a profile from the current tunnels, edit profiles (add/remove
//! tunnels, rename, autostart), start/stop all of a profile, import/export, and restore the
//! backup when the profile file is damaged.

use egui::{RichText, Ui};
use ferry_core::spec::TunnelSpec;

use super::commands::Command;
use super::model::{Model, ProfileInfo};
use super::theme::{self, Tone, icon};

/// What the window remembers between frames.
#[derive(Debug, Default)]
pub struct ProfilesWindow {
    pub open: bool,
    pub new_name: String,
    /// (profile being renamed, new name as typed)
    pub renaming: Option<(String, String)>,
}

/// Draws the window when it is open.
pub fn show(ctx: &egui::Context, model: &Model, win: &mut ProfilesWindow, out: &mut Vec<Command>) {
    if !win.open {
        return;
    }
    let mut open = true;
    egui::Window::new("Profiles")
        .open(&mut open)
        .default_width(460.0)
        .collapsible(false)
        .show(ctx, |ui| contents(ui, model, win, out));
    if !open {
        out.push(Command::ShowProfiles(false));
    }
}

fn contents(ui: &mut Ui, model: &Model, win: &mut ProfilesWindow, out: &mut Vec<Command>) {
    let profiles = &model.profiles;
    if let Some(reason) = &profiles.corrupt {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(
                RichText::new(format!(
                    "{} The profile file could not be read",
                    icon::WARNING
                ))
                .color(theme::tone_color(ui, Tone::Bad)),
            );
            ui.label(theme::weak(reason));
            if profiles.has_backup && ui.button("Restore the last good backup").clicked() {
                out.push(Command::RestoreProfilesBackup);
            }
        });
        ui.add_space(theme::GAP);
    }
    ui.horizontal(|ui| {
        if ui
            .button("Import…")
            .on_hover_text("Add profiles from a file")
            .clicked()
        {
            out.push(Command::ImportProfiles);
        }
        if ui
            .button("Export…")
            .on_hover_text("Save all profiles to a file")
            .clicked()
        {
            out.push(Command::ExportProfiles);
        }
        if let Some(path) = &profiles.path {
            ui.label(theme::weak(format!("stored in {path}")));
        }
    });
    ui.separator();
    let current: Vec<TunnelSpec> = model.tunnels.iter().map(|t| t.spec.clone()).collect();
    ui.horizontal(|ui| {
        ui.label("New profile");
        ui.add(
            egui::TextEdit::singleline(&mut win.new_name)
                .hint_text("name")
                .desired_width(140.0),
        );
        let can = !win.new_name.trim().is_empty() && !current.is_empty();
        let button = ui.add_enabled(
            can,
            egui::Button::new(format!("Save the {} current tunnels", current.len())),
        );
        if button.clicked() {
            out.push(Command::SaveProfile {
                name: win.new_name.trim().to_string(),
                tunnels: current.clone(),
                autostart: false,
            });
            win.new_name.clear();
        }
    });
    ui.separator();
    if profiles.items.is_empty() {
        ui.label(theme::weak(
            "No profiles yet. Start some tunnels, then save them here.",
        ));
    }
    egui::ScrollArea::vertical()
        .max_height(420.0)
        .show(ui, |ui| {
            for p in &profiles.items {
                profile(ui, p, &current, win, out);
            }
        });
}

fn profile(
    ui: &mut Ui,
    p: &ProfileInfo,
    current: &[TunnelSpec],
    win: &mut ProfilesWindow,
    out: &mut Vec<Command>,
) {
    let header = format!("{}  ·  {}/{} running", p.name, p.running, p.tunnels.len());
    egui::CollapsingHeader::new(header)
        .id_salt(("profile", &p.name))
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button(format!("{} Start all", icon::START)).clicked() {
                    out.push(Command::StartProfile(p.name.clone()));
                }
                if ui.button(format!("{} Stop all", icon::STOP)).clicked() {
                    out.push(Command::StopProfile(p.name.clone()));
                }
                let mut autostart = p.autostart;
                if ui.checkbox(&mut autostart, "Start with Ferry").changed() {
                    out.push(Command::SaveProfile {
                        name: p.name.clone(),
                        tunnels: p.tunnels.clone(),
                        autostart,
                    });
                }
            });
            rename_row(ui, p, win, out);
            for (i, t) in p.tunnels.iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui
                        .small_button("✖")
                        .on_hover_text("Remove this tunnel from the profile")
                        .clicked()
                    {
                        let mut tunnels = p.tunnels.clone();
                        tunnels.remove(i);
                        out.push(Command::SaveProfile {
                            name: p.name.clone(),
                            tunnels,
                            autostart: p.autostart,
                        });
                    }
                    let ports = t
                        .ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(" ");
                    ui.label(theme::mono(format!("{} {ports}", t.target)));
                    ui.label(theme::weak(format!("{}/{}", t.context, t.namespace)));
                });
            }
            let missing: Vec<TunnelSpec> = current
                .iter()
                .filter(|t| !p.tunnels.contains(t))
                .cloned()
                .collect();
            if !missing.is_empty()
                && ui
                    .button(format!(
                        "Add the {} current tunnels not in it",
                        missing.len()
                    ))
                    .clicked()
            {
                let mut tunnels = p.tunnels.clone();
                tunnels.extend(missing);
                out.push(Command::SaveProfile {
                    name: p.name.clone(),
                    tunnels,
                    autostart: p.autostart,
                });
            }
        });
}

fn rename_row(ui: &mut Ui, p: &ProfileInfo, win: &mut ProfilesWindow, out: &mut Vec<Command>) {
    ui.horizontal(|ui| match &mut win.renaming {
        Some((from, to)) if *from == p.name => {
            ui.add(egui::TextEdit::singleline(to).desired_width(140.0));
            if ui.button("Rename").clicked() && !to.trim().is_empty() {
                out.push(Command::RenameProfile {
                    from: from.clone(),
                    to: to.trim().to_string(),
                });
                win.renaming = None;
            } else if ui.button("Cancel").clicked() {
                win.renaming = None;
            }
        }
        _ => {
            if ui.small_button("Rename…").clicked() {
                win.renaming = Some((p.name.clone(), p.name.clone()));
            }
            if ui
                .small_button(format!("{} Delete", icon::REMOVE))
                .clicked()
            {
                out.push(Command::DeleteProfile(p.name.clone()));
            }
        }
    });
}
