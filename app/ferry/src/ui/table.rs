//! What every table shares: the filter box, sortable headers, and a cached row order so that
//! sorting and filtering 5,000 rows happens once per change, not once per frame.

use std::cmp::Ordering;

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder, TableRow};

use super::theme;

/// Sort column and direction of one table, and the cached order of its rows.
#[derive(Debug, Default)]
pub struct TableState {
    pub filter: String,
    /// (column index, ascending)
    pub sort: Option<(usize, bool)>,
    order: Vec<usize>,
    key: Option<OrderKey>,
}

/// What the cached order was computed from: data version, filter, sort, row count.
type OrderKey = (u64, String, Option<(usize, bool)>, usize);

impl TableState {
    /// The indices of the rows to show, filtered and sorted. Recomputed only when the data
    /// version, the filter, the sort or the row count changed.
    pub fn order<R>(
        &mut self,
        version: u64,
        rows: &[R],
        matches: impl Fn(&R, &str) -> bool,
        compare: impl Fn(&R, &R, usize) -> Ordering,
    ) -> &[usize] {
        let key = (version, self.filter.clone(), self.sort, rows.len());
        if self.key.as_ref() != Some(&key) {
            let needle = self.filter.trim().to_lowercase();
            let mut order: Vec<usize> = (0..rows.len())
                .filter(|&i| needle.is_empty() || matches(&rows[i], &needle))
                .collect();
            if let Some((col, ascending)) = self.sort {
                order.sort_by(|&a, &b| {
                    let o = compare(&rows[a], &rows[b], col);
                    if ascending { o } else { o.reverse() }
                });
            }
            self.order = order;
            self.key = Some(key);
        }
        &self.order
    }
}

/// True when any of the fields contains the (already lower-cased) needle.
pub fn any_contains(fields: &[&str], needle: &str) -> bool {
    fields.iter().any(|f| f.to_lowercase().contains(needle))
}

/// The filter box above a table. Ctrl+F (Cmd+F) focuses it; Escape clears it.
pub fn filter_box(ui: &mut Ui, state: &mut TableState, hint: &str, focus: bool) {
    ui.horizontal(|ui| {
        ui.label(theme::weak(theme::icon::FILTER));
        let edit = egui::TextEdit::singleline(&mut state.filter)
            .hint_text(hint)
            .desired_width(260.0);
        let response = ui.add(edit);
        if focus {
            response.request_focus();
        }
        // Escape also takes the focus away, so the field may already have lost it.
        let escaped = ui.input(|i| i.key_pressed(egui::Key::Escape));
        if escaped && (response.has_focus() || response.lost_focus()) {
            state.filter.clear();
        }
        if !state.filter.is_empty()
            && ui
                .small_button("✖")
                .on_hover_text("Clear the filter")
                .clicked()
        {
            state.filter.clear();
        }
    });
}

/// Runs `add` inside a horizontal scroll area, so a narrow window scrolls a wide table
/// sideways instead of cutting its last columns off.
pub fn scroll_sideways(ui: &mut Ui, id: &str, add: impl FnOnce(&mut Ui)) {
    egui::ScrollArea::horizontal()
        .id_salt(id)
        .auto_shrink([false, false])
        .show(ui, add);
}

/// A table with the house style: striped, clickable rows, resizable columns, virtualised body.
pub fn builder<'a>(ui: &'a mut Ui, id: &str, columns: &[Column]) -> TableBuilder<'a> {
    let mut table = TableBuilder::new(ui)
        .id_salt(id)
        .striped(true)
        .resizable(true)
        .sense(egui::Sense::click())
        .auto_shrink([false, false])
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center));
    for c in columns {
        table = table.column(*c);
    }
    table
}

/// Header cells that sort the table when clicked (click again to reverse).
pub fn sortable_header(mut header: TableRow<'_, '_>, titles: &[&str], state: &mut TableState) {
    for (i, title) in titles.iter().enumerate() {
        header.col(|ui| {
            let arrow = match state.sort {
                Some((c, true)) if c == i => " ⏶",
                Some((c, false)) if c == i => " ⏷",
                _ => "",
            };
            let text = RichText::new(format!("{title}{arrow}")).strong();
            let response = ui.add(
                egui::Label::new(text)
                    .sense(egui::Sense::click())
                    .selectable(false),
            );
            if response.on_hover_text("Sort by this column").clicked() {
                state.sort = match state.sort {
                    Some((c, true)) if c == i => Some((i, false)),
                    Some((c, false)) if c == i => None,
                    _ => Some((i, true)),
                };
            }
        });
    }
}

/// Age of an object the way kubectl prints it (`45s`, `12m`, `3h`, `5d`).
pub fn age(created: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    let Some(created) = created else {
        return "—".to_string();
    };
    let secs = now.as_second().saturating_sub(created.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// [`age`] for a cell on screen. It also asks egui for a repaint when the text next changes
/// (within a second while the age is counted in seconds, at the next whole minute, hour or
/// day after that), so ages keep moving in an idle window; while no age is visible nothing is
/// scheduled and an idle window stays idle.
pub fn live_age(ui: &Ui, created: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    if let Some(created) = created {
        ui.ctx()
            .request_repaint_after(until_age_changes(created, now));
    }
    age(created, now)
}

/// How long until [`age`] of `created` shows another value.
fn until_age_changes(created: jiff::Timestamp, now: jiff::Timestamp) -> std::time::Duration {
    let elapsed = now
        .as_millisecond()
        .saturating_sub(created.as_millisecond())
        .max(0);
    let unit: i64 = match elapsed / 1000 {
        s if s < 120 => 1_000,
        s if s < 3600 * 2 => 60_000,
        s if s < 86400 * 2 => 3_600_000,
        _ => 86_400_000,
    };
    let wait = unit - elapsed % unit;
    std::time::Duration::from_millis(wait as u64)
}

/// Orders two optional timestamps so that older comes first; unknown last.
pub fn cmp_time(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Shown in place of a table while its first list is on its way, or when it is empty.
pub fn empty_state(ui: &mut Ui, loading: bool, what: &str, filter: &str) {
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        if loading {
            ui.add(egui::Spinner::new());
            ui.label(theme::weak(format!("Loading {what}…")));
        } else if filter.trim().is_empty() {
            ui.label(theme::weak(format!("No {what} in this namespace.")));
        } else {
            ui.label(theme::weak(format!(
                "No {what} match \u{201c}{}\u{201d}.",
                filter.trim()
            )));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
        assert_eq!(age(at("2026-01-01T23:59:15Z"), now), "45s");
        assert_eq!(age(at("2026-01-01T23:00:00Z"), now), "60m");
        assert_eq!(age(at("2026-01-01T12:00:00Z"), now), "12h");
        assert_eq!(age(at("2025-12-20T00:00:00Z"), now), "13d");
        assert_eq!(age(None, now), "—");
    }

    #[test]
    fn an_age_is_redrawn_when_its_text_changes() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00.250Z".parse().unwrap();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let ms = |d: std::time::Duration| d.as_millis();
        assert_eq!(ms(until_age_changes(at("2026-01-01T23:59:15Z"), now)), 750);
        assert_eq!(
            ms(until_age_changes(at("2026-01-01T23:30:00Z"), now)),
            59_750
        );
        assert_eq!(
            ms(until_age_changes(at("2026-01-01T12:00:00Z"), now)),
            3_599_750
        );
    }

    #[test]
    fn filter_and_sort_are_cached_until_something_changes() {
        let rows = vec!["b-web", "a-db", "c-web"];
        let mut state = TableState {
            filter: "web".into(),
            sort: Some((0, true)),
            ..Default::default()
        };
        let m = |r: &&str, n: &str| r.contains(n);
        let c = |a: &&str, b: &&str, _| a.cmp(b);
        assert_eq!(state.order(1, &rows, m, c), &[0, 2]);
        state.sort = Some((0, false));
        assert_eq!(state.order(1, &rows, m, c), &[2, 0]);
        state.filter.clear();
        assert_eq!(state.order(1, &rows, m, c), &[2, 0, 1]);
    }
}
