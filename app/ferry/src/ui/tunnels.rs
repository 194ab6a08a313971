//! The Tunnels tab: one row per tunnel with its state as colour and word, where it goes now,
//! where to connect locally, traffic and errors; per-row and bulk start/stop/restart/remove.

use std::collections::BTreeSet;

use egui::{RichText, Ui};
use egui_extras::Column;

use super::commands::{Command, Selection};
use super::model::{Listener, TunnelRow, TunnelStatus};
use super::table::{self, TableState};
use super::theme::{self, Tone, icon};

const TITLES: [&str; 9] = [
    "",
    "State",
    "Target → pod",
    "Local address",
    "Conns",
    "Traffic",
    "Errors",
    "Last error",
    "",
];

/// The Tunnels tab's own state: the table and the multi-selection.
#[derive(Debug, Default)]
pub struct TunnelsState {
    pub table: TableState,
    pub checked: BTreeSet<String>,
}

impl TunnelStatus {
    /// The word and colour shown for this state.
    pub fn word_and_tone(&self) -> (&'static str, Tone) {
        match self {
            TunnelStatus::Starting => ("Starting", Tone::Busy),
            TunnelStatus::Active => ("Active", Tone::Good),
            TunnelStatus::Waiting(_) => ("Waiting", Tone::Warn),
            TunnelStatus::Degraded(_) => ("Degraded", Tone::Warn),
            TunnelStatus::Stopped => ("Stopped", Tone::Quiet),
            TunnelStatus::Failed(_) => ("Failed", Tone::Bad),
        }
    }

    /// Why it is in this state, when there is more to say than the word.
    pub fn reason(&self) -> Option<&str> {
        match self {
            TunnelStatus::Waiting(r) | TunnelStatus::Failed(r) | TunnelStatus::Degraded(r) => {
                Some(r.as_str()).filter(|r| !r.is_empty())
            }
            _ => None,
        }
    }

    /// Whether the tunnel is meant to be up (not stopped by a person, not given up).
    pub fn is_running(&self) -> bool {
        !matches!(self, TunnelStatus::Stopped | TunnelStatus::Failed(_))
    }
}

/// `1.2 KiB`, `3.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn matches(row: &TunnelRow, needle: &str) -> bool {
    let target = row.spec.target.to_kubectl();
    let pod = row.pod.as_deref().unwrap_or_default();
    let alias = row.spec.alias.as_deref().unwrap_or_default();
    table::any_contains(
        &[&target, pod, alias, &row.spec.context, &row.spec.namespace],
        needle,
    )
}

fn compare(a: &TunnelRow, b: &TunnelRow, col: usize) -> std::cmp::Ordering {
    match col {
        1 => a.status.word_and_tone().0.cmp(b.status.word_and_tone().0),
        3 => a
            .listeners
            .first()
            .map(|l| l.local)
            .cmp(&b.listeners.first().map(|l| l.local)),
        4 => a.connections.cmp(&b.connections),
        5 => (a.bytes_in + a.bytes_out).cmp(&(b.bytes_in + b.bytes_out)),
        6 => a.errors.cmp(&b.errors),
        7 => a.last_error.cmp(&b.last_error),
        _ => a.spec.target.to_kubectl().cmp(&b.spec.target.to_kubectl()),
    }
}

/// Draws the Tunnels tab.
pub fn show(
    ui: &mut Ui,
    tunnels: &[TunnelRow],
    version: u64,
    state: &mut TunnelsState,
    selection: Option<&Selection>,
    focus_filter: bool,
    out: &mut Vec<Command>,
) {
    state
        .checked
        .retain(|id| tunnels.iter().any(|t| &t.id == id));
    ui.horizontal(|ui| {
        table::filter_box(
            ui,
            &mut state.table,
            "Filter tunnels (Ctrl+F)",
            focus_filter,
        );
        ui.separator();
        bulk_buttons(ui, tunnels, &state.checked, out);
    });
    let order = state
        .table
        .order(version, tunnels, matches, compare)
        .to_vec();
    if order.is_empty() {
        empty(ui, &state.table.filter);
        return;
    }
    let now = jiff::Timestamp::now();
    let columns = [
        Column::exact(22.0),
        Column::initial(92.0),
        Column::initial(205.0).at_least(120.0).clip(true),
        Column::initial(210.0).clip(true),
        Column::initial(48.0),
        Column::initial(118.0),
        Column::initial(48.0),
        Column::remainder().at_least(80.0).clip(true),
        Column::exact(104.0),
    ];
    let checked = &mut state.checked;
    table::scroll_sideways(ui, "tunnels-x", |ui| {
        table::builder(ui, "tunnels", &columns)
            .header(theme::HEADER_HEIGHT, |h| {
                table::sortable_header(h, &TITLES, &mut state.table)
            })
            .body(|body| {
                body.rows(theme::ROW_HEIGHT + 2.0, order.len(), |mut row| {
                    let Some(t) = order.get(row.index()).and_then(|&i| tunnels.get(i)) else {
                        return;
                    };
                    row.set_selected(
                        matches!(selection, Some(Selection::Tunnel(id)) if *id == t.id),
                    );
                    row.col(|ui| {
                        let mut on = checked.contains(&t.id);
                        if ui
                            .checkbox(&mut on, "")
                            .on_hover_text("Select for bulk actions")
                            .changed()
                        {
                            if on {
                                checked.insert(t.id.clone())
                            } else {
                                checked.remove(&t.id)
                            };
                        }
                    });
                    row.col(|ui| status_cell(ui, t));
                    row.col(|ui| target_cell(ui, t));
                    row.col(|ui| local_cell(ui, t, out));
                    row.col(|ui| {
                        ui.label(t.connections.to_string()).on_hover_text(format!(
                            "{} open now, {} in total",
                            t.connections, t.total_connections
                        ));
                    });
                    row.col(|ui| {
                        ui.label(theme::weak(format!(
                            "↓{} ↑{}",
                            bytes(t.bytes_in),
                            bytes(t.bytes_out)
                        )));
                    });
                    row.col(|ui| {
                        let text = t.errors.to_string();
                        ui.label(if t.errors > 0 {
                            RichText::new(text).color(theme::tone_color(ui, Tone::Bad))
                        } else {
                            text.into()
                        });
                    });
                    row.col(|ui| match &t.last_error {
                        Some((at, message)) => {
                            ui.label(theme::weak(format!(
                                "{} ago",
                                table::live_age(ui, Some(*at), now)
                            )));
                            ui.label(message).on_hover_text(message);
                        }
                        None => {
                            ui.label(theme::weak("—"));
                        }
                    });
                    row.col(|ui| row_actions(ui, t, out));
                    if row.response().clicked() {
                        out.push(Command::Select(Some(Selection::Tunnel(t.id.clone()))));
                    }
                });
            });
    });
}

fn status_cell(ui: &mut Ui, t: &TunnelRow) {
    let (word, tone) = t.status.word_and_tone();
    let response = if t.status == TunnelStatus::Starting {
        theme::waiting_label(ui, word)
    } else {
        theme::state_label(ui, tone, word)
    };
    if let Some(reason) = t.status.reason() {
        response.on_hover_text(reason);
    }
}

fn target_cell(ui: &mut Ui, t: &TunnelRow) {
    let target = t
        .spec
        .alias
        .clone()
        .unwrap_or_else(|| t.spec.target.to_kubectl());
    let pod = t.pod.clone().unwrap_or_else(|| "no pod".into());
    // The column clips long pod names, so the whole text is on hover of either part.
    let hover = format!(
        "{} in {}/{}\n{}",
        t.spec.target,
        t.spec.context,
        t.spec.namespace,
        match &t.pod {
            Some(pod) => format!("Serving pod: {pod}"),
            None => "No pod is serving it now".to_string(),
        }
    );
    ui.label(&target).on_hover_text(&hover);
    ui.label(theme::weak(icon::ARROW));
    ui.label(if t.pod.is_some() {
        RichText::new(pod)
    } else {
        theme::weak(pod)
    })
    .on_hover_text(&hover);
}

/// One listener per forwarded port: the IPv4 one when the port is bound on both families.
pub fn primary_listeners(listeners: &[Listener]) -> Vec<&Listener> {
    let mut out: Vec<&Listener> = Vec::new();
    for l in listeners {
        match out.iter_mut().find(|o| o.remote == l.remote) {
            Some(o) if o.local.is_ipv6() && l.local.is_ipv4() => *o = l,
            Some(_) => {}
            None => out.push(l),
        }
    }
    out
}

/// The first port's address with its copy button; further ports as "+N" whose hover lists every
/// address, so a tunnel of several ports fits the column (all of them are in the details panel).
fn local_cell(ui: &mut Ui, t: &TunnelRow, out: &mut Vec<Command>) {
    let all: Vec<String> = t.listeners.iter().map(|l| l.local.to_string()).collect();
    let primary = primary_listeners(&t.listeners);
    let more = primary.len().saturating_sub(1);
    for l in primary.into_iter().take(1) {
        let address = l.local.to_string();
        let link = ui.link(theme::mono(&address)).on_hover_text(format!(
            "→ remote port {}{}\nListening on {}",
            l.remote,
            if l.http {
                "\nClick to open in the browser"
            } else {
                "\nClick to copy"
            },
            all.join(", ")
        ));
        if link.clicked() {
            out.push(if l.http {
                Command::OpenUrl(format!("http://{address}/"))
            } else {
                Command::CopyText(address.clone())
            });
        }
        if ui
            .small_button(icon::COPY)
            .on_hover_text("Copy the address")
            .clicked()
        {
            out.push(Command::CopyText(address));
        }
    }
    if more > 0 {
        let every: Vec<String> = t
            .listeners
            .iter()
            .map(|l| format!("{} → remote port {}", l.local, l.remote))
            .collect();
        ui.label(theme::weak(format!("+{more}")))
            .on_hover_text(every.join("\n"));
    }
    if t.listeners.is_empty() {
        ui.label(theme::weak("not listening"));
    }
}

fn row_actions(ui: &mut Ui, t: &TunnelRow, out: &mut Vec<Command>) {
    let ids = vec![t.id.clone()];
    if t.status.is_running() {
        if ui.small_button(icon::STOP).on_hover_text("Stop").clicked() {
            out.push(Command::StopTunnels(ids.clone()));
        }
    } else if ui
        .small_button(icon::START)
        .on_hover_text("Start")
        .clicked()
    {
        out.push(Command::StartTunnels(ids.clone()));
    }
    if ui
        .small_button(icon::RESTART)
        .on_hover_text("Restart")
        .clicked()
    {
        out.push(Command::RestartTunnels(ids.clone()));
    }
    if ui
        .small_button(icon::REMOVE)
        .on_hover_text("Remove")
        .clicked()
    {
        out.push(Command::RemoveTunnels(ids));
    }
    if let Some(pod) = &t.pod
        && ui
            .small_button(icon::SHELL)
            .on_hover_text(format!("Open a shell in {pod}, the pod it forwards to now"))
            .clicked()
    {
        out.push(Command::OpenShellIn(ferry_core::exec::ShellTarget {
            context: t.spec.context.clone(),
            namespace: t.spec.namespace.clone(),
            pod: pod.clone(),
            container: None,
        }));
    }
}

fn bulk_buttons(
    ui: &mut Ui,
    tunnels: &[TunnelRow],
    checked: &BTreeSet<String>,
    out: &mut Vec<Command>,
) {
    let ids: Vec<String> = checked.iter().cloned().collect();
    let any = !ids.is_empty();
    let label = if any {
        format!("{} selected", ids.len())
    } else {
        "Select rows for bulk actions".into()
    };
    ui.label(theme::weak(label));
    if ui
        .add_enabled(any, egui::Button::new(format!("{} Start", icon::START)))
        .clicked()
    {
        out.push(Command::StartTunnels(ids.clone()));
    }
    if ui
        .add_enabled(any, egui::Button::new(format!("{} Stop", icon::STOP)))
        .clicked()
    {
        out.push(Command::StopTunnels(ids.clone()));
    }
    if ui
        .add_enabled(any, egui::Button::new(format!("{} Restart", icon::RESTART)))
        .clicked()
    {
        out.push(Command::RestartTunnels(ids.clone()));
    }
    if ui
        .add_enabled(any, egui::Button::new(format!("{} Remove", icon::REMOVE)))
        .clicked()
    {
        out.push(Command::RemoveTunnels(ids));
    }
    if !tunnels.is_empty() && ui.button("Save as profile…").clicked() {
        out.push(Command::ShowProfiles(true));
    }
}

fn empty(ui: &mut Ui, filter: &str) {
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        if filter.trim().is_empty() {
            ui.label(theme::weak("No tunnels yet."));
            ui.label(theme::weak(
                "Select a service or pod and press \u{201c}Forward…\u{201d}.",
            ));
        } else {
            ui.label(theme::weak(format!(
                "No tunnels match \u{201c}{}\u{201d}.",
                filter.trim()
            )));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_reads_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
