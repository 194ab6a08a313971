//! The bottom event log: tunnel state changes and errors, newest last. Collapsed it shows the
//! latest entry; expanded, the whole history of this session.

use std::collections::VecDeque;

use egui::{RichText, Ui};

use super::commands::Command;
use super::theme::{self, Tone};

/// How many entries are kept.
const CAPACITY: usize = 1000;

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub at: jiff::Timestamp,
    pub tone: Tone,
    pub text: String,
}

/// The log and whether it is expanded.
#[derive(Debug, Default)]
pub struct EventLog {
    pub entries: VecDeque<LogEntry>,
    pub expanded: bool,
}

impl EventLog {
    pub fn push(&mut self, tone: Tone, text: impl Into<String>) {
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(LogEntry {
            at: jiff::Timestamp::now(),
            tone,
            text: text.into(),
        });
    }
}

fn clock(at: jiff::Timestamp) -> String {
    let zoned = at.to_zoned(jiff::tz::TimeZone::system());
    zoned.strftime("%H:%M:%S").to_string()
}

fn entry(ui: &mut Ui, e: &LogEntry) {
    ui.horizontal(|ui| {
        ui.label(theme::mono(clock(e.at)).weak());
        ui.label(
            RichText::new(theme::icon::DOT)
                .size(9.0)
                .color(theme::tone_color(ui, e.tone)),
        );
        ui.label(&e.text);
    });
}

/// Draws the log (inside the bottom panel).
pub fn show(ui: &mut Ui, log: &EventLog, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let arrow = if log.expanded { "⏷" } else { "⏶" };
        if ui
            .small_button(format!("{arrow} Events ({})", log.entries.len()))
            .on_hover_text("Show or hide the event log")
            .clicked()
        {
            out.push(Command::ToggleEventLog);
        }
        if !log.expanded {
            match log.entries.back() {
                Some(e) => entry(ui, e),
                None => {
                    ui.label(theme::weak("No events yet."));
                }
            }
        }
    });
    if log.expanded {
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show_rows(
                ui,
                theme::ROW_HEIGHT - 4.0,
                log.entries.len(),
                |ui, range| {
                    for e in log.entries.range(range) {
                        entry(ui, e);
                    }
                },
            );
    }
}
