//! The welcome screen, shown when there is no kubeconfig (or it cannot be read): explains where
//! Ferry looked and offers the built-in demo cluster.

use egui::{RichText, Ui};

use super::commands::Command;
use super::model::SourceState;
use super::theme::{self, Tone};

/// Draws the welcome screen for a missing or broken kubeconfig.
pub fn show(ui: &mut Ui, source: &SourceState, starting_demo: bool, out: &mut Vec<Command>) {
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() * 0.2);
        ui.label(RichText::new("Welcome to Ferry").size(26.0).strong());
        ui.add_space(theme::GAP);
        ui.label("Port-forwards that stay up while pods come and go.");
        ui.add_space(theme::GAP * 2.0);
        match source {
            SourceState::Missing { looked_at } => {
                ui.label(theme::weak(format!(
                    "No kubeconfig was found (looked at {looked_at})."
                )));
                ui.label(theme::weak(
                    "Set KUBECONFIG or create ~/.kube/config, then restart Ferry.",
                ));
            }
            SourceState::Broken { path, reason } => {
                ui.label(
                    RichText::new(format!("The kubeconfig at {path} could not be used:"))
                        .color(theme::tone_color(ui, Tone::Bad)),
                );
                ui.label(theme::weak(reason));
            }
            _ => {}
        }
        ui.add_space(theme::GAP * 2.0);
        ui.label("Or try Ferry on a simulated cluster that runs inside the app:");
        ui.add_space(theme::GAP);
        if starting_demo {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Starting the demo cluster…");
            });
        } else if ui
            .add(
                egui::Button::new(
                    RichText::new("Open the demo cluster")
                        .size(16.0)
                        .color(egui::Color32::WHITE),
                )
                .fill(ui.visuals().selection.bg_fill),
            )
            .clicked()
        {
            out.push(Command::StartDemo);
        }
    });
}
