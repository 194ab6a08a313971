//! The terminal dock at the bottom of the window: one tab per shell the instance keeps open
//! (`pod/container (shell)`), and the one-shot command panel.
//!
//! - [`view`]: the terminal widget (paints a grid, sends keys).
//! - [`keys`]: what each key sends, as xterm does.
//! - [`runner`]: run one command and see its output, exit code and duration.
//!
//! Shells belong to the instance, not to the window: closing the window leaves them running,
//! and opening it again shows their tabs as they are.

pub mod keys;
pub mod runner;
pub mod view;

use std::collections::{HashMap, HashSet};

use egui::Ui;
use ferry_core::exec::{TerminalHandle, TerminalId, TerminalStatus};

use super::commands::Command;
use super::theme::{self, Tone, icon};

/// Which tab of the dock is in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockTab {
    Shell(TerminalId),
    Runner,
}

/// The dock's state.
#[derive(Debug, Default)]
pub struct Dock {
    /// Whether the dock is shown (it opens by itself when a shell or the runner opens).
    pub shown: bool,
    pub active: Option<DockTab>,
    widgets: HashMap<TerminalId, view::WidgetState>,
    known: HashSet<TerminalId>,
    focus_next: bool,
    pub runner: runner::Runner,
    /// A terminal had keyboard focus in the last frame (the window's own shortcuts then stay
    /// out of its way: Ctrl+F, Ctrl+Q and Ctrl+1… belong to the program in it).
    pub terminal_focused: bool,
}

impl Dock {
    /// Whether there is anything to show.
    pub fn has_tabs(&self, terminals: &[TerminalHandle]) -> bool {
        !terminals.is_empty() || self.runner.target.is_some()
    }

    /// Brings the runner to the front.
    pub fn show_runner(&mut self) {
        self.shown = true;
        self.active = Some(DockTab::Runner);
    }

    /// Follows the instance's list: a new shell comes to the front with focus, a closed one
    /// leaves.
    pub fn sync(&mut self, terminals: &[TerminalHandle]) {
        for t in terminals {
            if self.known.insert(t.id) {
                self.active = Some(DockTab::Shell(t.id));
                self.shown = true;
                self.focus_next = true;
            }
        }
        let live: HashSet<TerminalId> = terminals.iter().map(|t| t.id).collect();
        self.known.retain(|id| live.contains(id));
        self.widgets.retain(|id, _| live.contains(id));
        if let Some(DockTab::Shell(id)) = self.active
            && !live.contains(&id)
        {
            self.active = terminals.last().map(|t| DockTab::Shell(t.id)).or(self
                .runner
                .target
                .is_some()
                .then_some(DockTab::Runner));
        }
        if self.active.is_none() && self.runner.target.is_some() {
            self.active = Some(DockTab::Runner);
        }
    }
}

/// Draws the dock's tab strip and the tab in front.
pub fn show(
    ui: &mut Ui,
    dock: &mut Dock,
    terminals: &[TerminalHandle],
    out: &mut Vec<Command>,
) -> Vec<runner::RunnerAction> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        for t in terminals {
            let v = t.view();
            let (mark, tone) = match &v.status {
                TerminalStatus::Connecting => (icon::DOT, Tone::Busy),
                TerminalStatus::Running => (icon::DOT, Tone::Good),
                TerminalStatus::Exited(0) => (icon::STOP, Tone::Quiet),
                TerminalStatus::Exited(_) => (icon::STOP, Tone::Warn),
                TerminalStatus::Failed(_) => (icon::WARNING, Tone::Bad),
            };
            let selected = dock.active == Some(DockTab::Shell(t.id));
            let label = egui::RichText::new(format!("{mark} {}", v.title));
            let label = if selected {
                label
            } else {
                label.color(theme::tone_color(ui, tone))
            };
            let tab = ui.selectable_label(selected, label);
            let tab = match &v.status {
                TerminalStatus::Exited(code) => {
                    tab.on_hover_text(format!("Exited with code {code}; Enter reconnects"))
                }
                TerminalStatus::Failed(why) => tab.on_hover_text(why),
                _ => tab,
            };
            if tab.clicked() {
                dock.active = Some(DockTab::Shell(t.id));
                dock.focus_next = true;
            }
            if ui
                .small_button("✖")
                .on_hover_text(format!("Close {} (ends its shell)", v.title))
                .clicked()
            {
                out.push(Command::CloseTerminal(t.id));
            }
            ui.separator();
        }
        if dock.runner.target.is_some()
            && ui
                .selectable_label(dock.active == Some(DockTab::Runner), "Run command")
                .clicked()
        {
            dock.active = Some(DockTab::Runner);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .small_button("▾")
                .on_hover_text("Hide the terminals (shells keep running)")
                .clicked()
            {
                dock.shown = false;
            }
        });
    });
    ui.separator();
    dock.terminal_focused = false;
    match dock.active {
        Some(DockTab::Shell(id)) => {
            if let Some(handle) = terminals.iter().find(|t| t.id == id) {
                let state = dock.widgets.entry(id).or_default();
                let focus = std::mem::take(&mut dock.focus_next);
                dock.terminal_focused = view::show(ui, handle, state, focus);
            }
        }
        Some(DockTab::Runner) => actions = runner::show(ui, &mut dock.runner, out),
        None => {}
    }
    actions
}
