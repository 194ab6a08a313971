//! Toasts: short-lived notes in the bottom-right corner for errors a person should notice now
//! (the event log keeps them too).

use egui::RichText;

use super::commands::Command;
use super::theme::{self, Tone};

/// How long a toast stays, in seconds.
const LIFETIME: f64 = 8.0;

#[derive(Debug, Clone)]
pub struct Toast {
    pub id: u64,
    pub tone: Tone,
    pub text: String,
    /// `ctx.input(|i| i.time)` when it appeared.
    pub shown_at: Option<f64>,
}

/// The visible toasts.
#[derive(Debug, Default)]
pub struct Toasts {
    pub items: Vec<Toast>,
    next_id: u64,
}

impl Toasts {
    pub fn push(&mut self, tone: Tone, text: impl Into<String>) {
        self.next_id += 1;
        self.items.push(Toast {
            id: self.next_id,
            tone,
            text: text.into(),
            shown_at: None,
        });
        if self.items.len() > 4 {
            self.items.remove(0);
        }
    }

    pub fn dismiss(&mut self, id: u64) {
        self.items.retain(|t| t.id != id);
    }
}

/// Draws the toasts and expires old ones; asks for one repaint when the next one expires.
pub fn show(ctx: &egui::Context, toasts: &mut Toasts, out: &mut Vec<Command>) {
    let now = ctx.input(|i| i.time);
    toasts
        .items
        .retain(|t| t.shown_at.is_none_or(|at| now - at < LIFETIME));
    if toasts.items.is_empty() {
        return;
    }
    let mut next_expiry = LIFETIME;
    egui::Area::new(egui::Id::unique("toasts"))
        .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -40.0))
        .order(egui::Order::Foreground)
        .show(ctx, |ui| {
            for t in &mut toasts.items {
                let at = *t.shown_at.get_or_insert(now);
                next_expiry = next_expiry.min(LIFETIME - (now - at));
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    ui.set_max_width(360.0);
                    ui.horizontal(|ui| {
                        let color = theme::tone_color(ui, t.tone);
                        ui.label(RichText::new(theme::icon::WARNING).color(color));
                        ui.label(&t.text);
                        if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                            out.push(Command::DismissToast(t.id));
                        }
                    });
                });
            }
        });
    ctx.request_repaint_after(std::time::Duration::from_secs_f64(next_expiry.max(0.05)));
}
