//! The Settings window (what closing the window does, notifications, launch at login) and the
//! question asked when the window closes while tunnels run and no tray host shows Ferry.

use egui::{RichText, Ui};
use ferry_core::settings::Settings;

use super::commands::Command;
use super::model::Model;
use super::theme;

/// Whether the Settings window is open.
#[derive(Debug, Default)]
pub struct SettingsWindow {
    pub open: bool,
}

pub fn show(ctx: &egui::Context, model: &Model, win: &mut SettingsWindow, out: &mut Vec<Command>) {
    if !win.open {
        return;
    }
    let mut open = true;
    egui::Window::new("Settings")
        .open(&mut open)
        .default_width(420.0)
        .collapsible(false)
        .show(ctx, |ui| contents(ui, model, out));
    if !open {
        out.push(Command::ShowSettings(false));
    }
}

fn contents(ui: &mut Ui, model: &Model, out: &mut Vec<Command>) {
    if let Some(problem) = &model.settings_problem {
        ui.label(RichText::new(problem).color(theme::tone_color(ui, theme::Tone::Bad)));
        ui.add_space(theme::GAP);
    }
    let current = model.settings.clone();
    let mut edited = current.clone();
    ui.checkbox(
        &mut edited.keep_running_when_closed,
        "Keep tunnels forwarding when the window is closed",
    )
    .on_hover_text(
        "Ferry stays in the tray; open the window again from there, or run `ferry` again. Off: closing the window quits Ferry.",
    );
    ui.checkbox(
        &mut edited.notifications,
        "Notify when a tunnel fails or recovers",
    );
    ui.checkbox(
        &mut edited.launch_at_login,
        "Start Ferry in the tray when I log in",
    )
    .on_hover_text("Starts `ferry daemon` at login; profiles marked autostart start with it.");
    if edited != current {
        out.push(Command::SaveSettings(edited));
    }
}

/// The question when closing would leave running tunnels with no tray to find Ferry in.
/// `serving`: how many tunnels forward now.
pub fn close_question(ctx: &egui::Context, serving: usize, out: &mut Vec<Command>) {
    egui::Modal::new(egui::Id::unique("close-question")).show(ctx, |ui| {
        ui.set_max_width(440.0);
        ui.heading("Keep forwarding?");
        ui.label(format!(
            "{serving} tunnel(s) are forwarding. No tray is shown on this desktop, so with the window closed Ferry would run out of sight."
        ));
        ui.label(theme::weak(
            "To come back: run `ferry` again (or open Ferry from the menu). `ferry status` lists the tunnels, `ferry quit` stops them.",
        ));
        ui.add_space(theme::GAP);
        ui.horizontal(|ui| {
            if ui.button("Keep forwarding in the background").clicked() {
                out.push(Command::CloseWindow { keep_running: true });
            }
            if ui.button("Quit Ferry").clicked() {
                out.push(Command::CloseWindow {
                    keep_running: false,
                });
            }
            if ui.button("Cancel").clicked() {
                out.push(Command::CancelClose);
            }
        });
    });
}

/// What closing the window should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClose {
    /// Let it close (nothing runs, a tray shows Ferry, or a client asked).
    Close,
    /// Ask first.
    Ask,
    /// Quit Ferry (the setting says closing quits).
    Quit,
}

/// Pure decision, unit-tested below.
pub fn on_close(
    settings: &Settings,
    serving: usize,
    tray_shown: bool,
    asked_by_client: bool,
) -> OnClose {
    if asked_by_client || serving == 0 {
        OnClose::Close
    } else if !settings.keep_running_when_closed {
        OnClose::Quit
    } else if tray_shown {
        OnClose::Close
    } else {
        OnClose::Ask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_asks_only_when_tunnels_would_run_out_of_sight() {
        let keep = Settings::default();
        let quit = Settings {
            keep_running_when_closed: false,
            ..Settings::default()
        };
        assert_eq!(on_close(&keep, 0, false, false), OnClose::Close);
        assert_eq!(on_close(&keep, 2, true, false), OnClose::Close);
        assert_eq!(on_close(&keep, 2, false, false), OnClose::Ask);
        assert_eq!(on_close(&keep, 2, false, true), OnClose::Close);
        assert_eq!(on_close(&quit, 2, true, false), OnClose::Quit);
        assert_eq!(on_close(&quit, 0, true, false), OnClose::Close);
    }
}
