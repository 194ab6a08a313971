//! The terminal widget: paints a [`TerminalView`]'s grid in a monospace font and turns keys,
//! paste, wheel and drags into [`Control`]s. It parses nothing: the instance's terminal task
//! did that, so a frame costs the same whether the program is idle or flooding output.
//!
//! Copy and paste: egui turns Ctrl+C, Ctrl+X and Ctrl+V into clipboard events before a widget
//! sees them; in a terminal Ctrl+C must interrupt, so those become ^C and ^X, while Ctrl+V
//! (whose text egui already read) pastes. Ctrl+Shift+C copies the selection and
//! Ctrl+Shift+V / Shift+Insert paste, as in GNOME Terminal and Konsole.

use std::time::Duration;

use bytes::Bytes;
use egui::text::LayoutJob;
use egui::{
    Align2, Color32, CornerRadius, Event, FontId, Key, Modifiers, MouseWheelUnit, Pos2, Rect,
    Sense, Stroke, StrokeKind, TextFormat, Ui, Vec2, pos2, vec2,
};
use ferry_core::exec::terminal::{CellView, CursorView, DEFAULT_BG, Rgb8, Snapshot};
use ferry_core::exec::{Control, TermSize, TerminalHandle, TerminalStatus, TerminalView};

use super::keys;

/// Font size of the grid (points).
pub const FONT_SIZE: f32 = 13.0;
/// A resize is sent once the panel kept its new size this long (dragging a splitter sends one
/// resize, not fifty).
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(100);
/// Cursor blink half-period while focused.
const BLINK: f64 = 0.53;
/// Lines scrolled per wheel notch.
const WHEEL_LINES: i32 = 3;

/// What one terminal widget remembers between frames.
#[derive(Debug, Default)]
pub struct WidgetState {
    /// The size last sent to the program.
    sent: Option<TermSize>,
    /// A new size and when it was first seen (debounce).
    pending: Option<(TermSize, f64)>,
    /// Fractional wheel movement not yet sent as whole lines.
    wheel: f32,
    /// When the cursor last moved or a key was pressed (blink restarts, as terminals do).
    blink_epoch: f64,
}

/// Cell size in points for the grid font.
pub fn cell_size(ui: &Ui) -> Vec2 {
    let font = FontId::monospace(FONT_SIZE);
    ui.ctx()
        .fonts_mut(|f| vec2(f.glyph_width(&font, 'M'), f.row_height(&font)))
}

/// How many cells fit in `size` points.
pub fn grid_size(size: Vec2, cell: Vec2) -> TermSize {
    let cols = (size.x / cell.x).floor().clamp(2.0, 1000.0) as u16;
    let rows = (size.y / cell.y).floor().clamp(1.0, 500.0) as u16;
    TermSize { cols, rows }
}

/// Draws the terminal in all the space `ui` has and handles its input. `focus` asks for
/// keyboard focus now (a tab just opened or chosen). Returns whether it has focus.
pub fn show(ui: &mut Ui, handle: &TerminalHandle, state: &mut WidgetState, focus: bool) -> bool {
    let view = handle.view();
    let cell = cell_size(ui);
    let status_height = if view.status == TerminalStatus::Running {
        0.0
    } else {
        ui.spacing().interact_size.y + 4.0
    };
    let avail = ui.available_size();
    let grid_area = vec2(avail.x, (avail.y - status_height).max(cell.y));
    let id = egui::Id::unique(("ferry-terminal", handle.id));
    let (rect, _) = ui.allocate_exact_size(grid_area, Sense::hover());
    let response = ui.interact(rect, id, Sense::click_and_drag());
    if focus || response.clicked() || response.drag_started() {
        response.request_focus();
    }
    let focused = response.has_focus();
    if focused {
        ui.memory_mut(|m| {
            m.set_focus_lock_filter(
                id,
                egui::EventFilter {
                    tab: true,
                    horizontal_arrows: true,
                    vertical_arrows: true,
                    escape: true,
                },
            )
        });
    }
    resize(ui, handle, state, grid_size(rect.size(), cell), &view);
    let now = ui.input(|i| i.time);
    if focused {
        input(ui, handle, state, &view, now);
    }
    mouse(ui, handle, state, &view, &response, rect, cell);
    paint(
        ui,
        rect,
        cell,
        &view.screen,
        focused,
        now - state.blink_epoch,
    );
    if focused && view.screen.cursor.is_some() {
        let phase = (now - state.blink_epoch) / BLINK;
        let next = (phase.floor() + 1.0) * BLINK - (now - state.blink_epoch);
        ui.ctx()
            .request_repaint_after(Duration::from_secs_f64(next.max(0.01)));
    }
    if status_height > 0.0 {
        status_line(ui, &view);
    }
    focused
}

/// Sends the grid size to the program once it has been stable for [`RESIZE_DEBOUNCE`] (the
/// first size at once).
fn resize(
    ui: &Ui,
    handle: &TerminalHandle,
    state: &mut WidgetState,
    size: TermSize,
    view: &TerminalView,
) {
    let now = ui.input(|i| i.time);
    let shown = TermSize {
        cols: view.screen.cols as u16,
        rows: view.screen.rows as u16,
    };
    if state.sent.is_none() {
        state.sent = Some(size);
        if size != shown {
            handle.send(Control::Resize(size));
        }
        return;
    }
    if state.sent == Some(size) {
        state.pending = None;
        return;
    }
    match state.pending {
        Some((p, since)) if p == size => {
            let waited = now - since;
            if waited >= RESIZE_DEBOUNCE.as_secs_f64() {
                handle.send(Control::Resize(size));
                state.sent = Some(size);
                state.pending = None;
            } else {
                ui.ctx().request_repaint_after(Duration::from_secs_f64(
                    RESIZE_DEBOUNCE.as_secs_f64() - waited,
                ));
            }
        }
        _ => {
            state.pending = Some((size, now));
            ui.ctx().request_repaint_after(RESIZE_DEBOUNCE);
        }
    }
}

/// Keys, text and clipboard events while focused.
fn input(ui: &Ui, handle: &TerminalHandle, state: &mut WidgetState, view: &TerminalView, now: f64) {
    let screen = &view.screen;
    let ended = view.status.has_ended();
    let mut bytes = Vec::new();
    let mut reconnect = false;
    let mut copy: Option<String> = None;
    let mut paste_from_clipboard = false;
    let events = ui.input(|i| i.events.clone());
    let mods = ui.input(|i| i.modifiers);
    for event in events {
        match event {
            Event::Text(t) => bytes.extend(keys::text(&t, mods.alt && !mods.ctrl)),
            Event::Paste(t) => bytes.extend(keys::paste(&t, screen.bracketed_paste)),
            // Ctrl+C / Ctrl+X without Shift (egui made them clipboard events).
            Event::Copy => bytes.push(0x03),
            Event::Cut => bytes.push(0x18),
            Event::Key {
                key,
                pressed: true,
                modifiers,
                ..
            } => {
                if ended && key == Key::Enter {
                    reconnect = true;
                    continue;
                }
                let ctrl_shift = modifiers.ctrl && modifiers.shift;
                match key {
                    Key::C if ctrl_shift => copy = view.selection.clone(),
                    Key::V if ctrl_shift => paste_from_clipboard = true,
                    Key::Insert if modifiers.shift => paste_from_clipboard = true,
                    Key::PageUp if modifiers.shift_only() && !screen.alt_screen => {
                        handle.send(Control::Scroll(screen.rows as i32 - 1));
                    }
                    Key::PageDown if modifiers.shift_only() && !screen.alt_screen => {
                        handle.send(Control::Scroll(-(screen.rows as i32 - 1)));
                    }
                    _ => {
                        if let Some(b) = keys::encode(key, modifiers, screen.app_cursor) {
                            bytes.extend(b);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(text) = copy {
        ui.ctx().copy_text(text);
    }
    if paste_from_clipboard {
        paste_in_background(handle.clone(), screen.bracketed_paste);
    }
    if reconnect {
        handle.send(Control::Reconnect);
    } else if !bytes.is_empty() && !ended {
        state.blink_epoch = now;
        handle.send(Control::Input(Bytes::from(bytes)));
    }
}

/// Reads the clipboard off the UI thread (on X11 that is a round trip to the program that
/// owns it) and types it into the terminal.
fn paste_in_background(handle: TerminalHandle, bracketed: bool) {
    let spawned = std::thread::Builder::new()
        .name("ferry-paste".into())
        .spawn(
            move || match arboard::Clipboard::new().and_then(|mut c| c.get_text()) {
                Ok(text) if !text.is_empty() => {
                    handle.send(Control::Input(Bytes::from(keys::paste(&text, bracketed))));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("could not read the clipboard: {e}"),
            },
        );
    if let Err(e) = spawned {
        tracing::warn!("could not read the clipboard: {e}");
    }
}

/// Wheel scrolling (history on the normal screen; arrow keys on the alternate screen, where
/// `less` and `vi` scroll themselves) and drag selection.
fn mouse(
    ui: &Ui,
    handle: &TerminalHandle,
    state: &mut WidgetState,
    view: &TerminalView,
    response: &egui::Response,
    rect: Rect,
    cell: Vec2,
) {
    if response.hovered() {
        let lines: f32 = ui.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    Event::MouseWheel { unit, delta, .. } => Some(match unit {
                        MouseWheelUnit::Line => delta.y,
                        MouseWheelUnit::Page => delta.y * view.screen.rows as f32,
                        MouseWheelUnit::Point => delta.y / cell.y,
                    }),
                    _ => None,
                })
                .sum()
        });
        state.wheel += lines * WHEEL_LINES as f32;
        let whole = state.wheel.trunc() as i32;
        if whole != 0 {
            state.wheel -= whole as f32;
            if view.screen.alt_screen {
                let key = if whole > 0 {
                    Key::ArrowUp
                } else {
                    Key::ArrowDown
                };
                let one =
                    keys::encode(key, Modifiers::NONE, view.screen.app_cursor).unwrap_or_default();
                let all: Vec<u8> = one.repeat(whole.unsigned_abs() as usize);
                handle.send(Control::Input(Bytes::from(all)));
            } else {
                handle.send(Control::Scroll(whole));
            }
        }
    }
    let cell_at = |p: Pos2| {
        let col = ((p.x - rect.min.x) / cell.x).floor().max(0.0) as usize;
        let row = ((p.y - rect.min.y) / cell.y).floor().max(0.0) as usize;
        (row, col)
    };
    if response.drag_started()
        && let Some(p) = response.interact_pointer_pos()
    {
        let (row, col) = cell_at(p);
        handle.send(Control::SelectStart(row, col));
    } else if response.dragged()
        && let Some(p) = response.interact_pointer_pos()
    {
        let (row, col) = cell_at(p);
        handle.send(Control::SelectTo(row, col));
    } else if response.clicked() && view.selection.is_some() {
        handle.send(Control::ClearSelection);
    }
}

fn color(c: Rgb8) -> Color32 {
    Color32::from_rgb(c.0, c.1, c.2)
}

/// Paints the grid: background runs, then text runs (one galley per run of cells that look
/// the same; a wide character is a run of its own so columns stay aligned), then the cursor.
pub fn paint(ui: &Ui, rect: Rect, cell: Vec2, screen: &Snapshot, focused: bool, since_input: f64) {
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, CornerRadius::ZERO, color(DEFAULT_BG));
    let font = FontId::monospace(FONT_SIZE);
    for row in 0..screen.rows {
        let cells = screen.row(row);
        let y = rect.min.y + row as f32 * cell.y;
        // Backgrounds.
        let mut col = 0;
        while col < cells.len() {
            let bg = cells[col].bg;
            let start = col;
            while col < cells.len() && cells[col].bg == bg {
                col += 1;
            }
            if bg != DEFAULT_BG {
                let r = Rect::from_min_size(
                    pos2(rect.min.x + start as f32 * cell.x, y),
                    vec2((col - start) as f32 * cell.x, cell.y),
                );
                painter.rect_filled(r, CornerRadius::ZERO, color(bg));
            }
        }
        // Text.
        let mut col = 0;
        while col < cells.len() {
            let first = &cells[col];
            if first.spacer || (first.ch == ' ' && !first.style.underline && !first.style.strikeout)
            {
                col += 1;
                continue;
            }
            let start = col;
            let mut text = String::new();
            if first.wide {
                text.push(first.ch);
                col += 1;
            } else {
                while col < cells.len() && same_look(&cells[col], first) {
                    text.push(cells[col].ch);
                    col += 1;
                }
            }
            let mut job = LayoutJob::single_section(
                text,
                TextFormat {
                    font_id: font.clone(),
                    color: color(first.fg),
                    italics: first.style.italic,
                    underline: if first.style.underline {
                        Stroke::new(1.0, color(first.fg))
                    } else {
                        Stroke::NONE
                    },
                    strikethrough: if first.style.strikeout {
                        Stroke::new(1.0, color(first.fg))
                    } else {
                        Stroke::NONE
                    },
                    ..Default::default()
                },
            );
            job.wrap.max_width = f32::INFINITY;
            let galley = painter.layout_job(job);
            let at = pos2(rect.min.x + start as f32 * cell.x, y);
            painter.galley(at, galley.clone(), color(first.fg));
            if first.style.bold {
                // The grid font has no bold face: a second pass half a point over thickens it.
                painter.galley(at + vec2(0.5, 0.0), galley, color(first.fg));
            }
        }
    }
    if let Some((row, col, shape)) = screen.cursor {
        let blink_on = (since_input / BLINK).floor() as i64 % 2 == 0;
        let at = pos2(
            rect.min.x + col as f32 * cell.x,
            rect.min.y + row as f32 * cell.y,
        );
        let width = if screen.cell(row, col).wide { 2.0 } else { 1.0 };
        let r = Rect::from_min_size(at, vec2(cell.x * width, cell.y));
        let fg = color(screen.cell(row, col).fg);
        match (focused, shape) {
            (false, _) | (true, CursorView::HollowBlock) => {
                painter.rect_stroke(
                    r.shrink(0.5),
                    CornerRadius::ZERO,
                    Stroke::new(1.0, fg),
                    StrokeKind::Inside,
                );
            }
            (true, _) if !blink_on => {}
            (true, CursorView::Block) => {
                painter.rect_filled(r, CornerRadius::ZERO, fg);
                let c = screen.cell(row, col);
                if c.ch != ' ' {
                    painter.text(at, Align2::LEFT_TOP, c.ch, font.clone(), color(c.bg));
                }
            }
            (true, CursorView::Underline) => {
                painter.rect_filled(
                    Rect::from_min_max(pos2(r.min.x, r.max.y - 2.0), r.max),
                    CornerRadius::ZERO,
                    fg,
                );
            }
            (true, CursorView::Beam) => {
                painter.rect_filled(
                    Rect::from_min_max(r.min, pos2(r.min.x + 2.0, r.max.y)),
                    CornerRadius::ZERO,
                    fg,
                );
            }
        }
    }
}

/// Cells that can share one galley: same colours and style, and neither wide nor a spacer.
fn same_look(a: &CellView, b: &CellView) -> bool {
    a.fg == b.fg && a.style == b.style && !a.wide && !a.spacer
}

/// Below an ended session: how it ended and that Enter starts a new one.
fn status_line(ui: &mut Ui, view: &TerminalView) {
    let (text, tone) = match &view.status {
        TerminalStatus::Connecting => ("Connecting…".to_string(), crate::ui::theme::Tone::Busy),
        TerminalStatus::Running => return,
        TerminalStatus::Exited(0) => (
            "The shell exited (code 0). Press Enter to reconnect.".to_string(),
            crate::ui::theme::Tone::Quiet,
        ),
        TerminalStatus::Exited(code) => (
            format!("The shell exited with code {code}. Press Enter to reconnect."),
            crate::ui::theme::Tone::Warn,
        ),
        TerminalStatus::Failed(why) => (
            format!("{why}. Press Enter to try again."),
            crate::ui::theme::Tone::Bad,
        ),
    };
    ui.horizontal(|ui| {
        if view.status == TerminalStatus::Connecting {
            ui.spinner();
        }
        ui.label(egui::RichText::new(text).color(crate::ui::theme::tone_color(ui, tone)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_size_is_whole_cells_with_sane_bounds() {
        let cell = vec2(8.0, 16.0);
        assert_eq!(
            grid_size(vec2(805.0, 487.0), cell),
            TermSize {
                cols: 100,
                rows: 30
            }
        );
        assert_eq!(
            grid_size(vec2(1.0, 1.0), cell),
            TermSize { cols: 2, rows: 1 }
        );
    }
}
