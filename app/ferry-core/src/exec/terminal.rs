//! The terminal emulator of an exec session: `alacritty_terminal`'s `Term` grid, fed through its
//! VTE `Processor`, and a plain [`Snapshot`] of what to paint.
//!
//! Why alacritty_terminal rather than vt100: it is the emulator of a terminal many people use
//! every day (and of Zed's), kept up to date with it; it answers terminal queries (device
//! attributes, cursor position reports) that programs such as vim and fish send and wait for
//! (vt100 ignores them), tracks the cursor shape (DECSCUSR), reflows lines on resize, and has
//! scrollback with a fixed bound and text selection built in.
//!
//! It lives here, not in the UI crate, because the instance owns sessions: output is parsed on
//! the instance's runtime as it arrives, whether a window is open or not, and a frame only
//! paints the latest [`Snapshot`].

use std::sync::{Arc, Mutex};

use alacritty_terminal::event::{Event, EventListener};
use alacritty_terminal::grid::{Dimensions, Scroll};
use alacritty_terminal::index::{Column, Line, Point, Side};
use alacritty_terminal::selection::{Selection, SelectionType};
use alacritty_terminal::term::cell::Flags;
use alacritty_terminal::term::{Config, Term, TermMode};
use alacritty_terminal::vte::ansi::{Color, CursorShape, NamedColor, Processor, Rgb};

/// Lines of history kept above the screen.
pub const SCROLLBACK: usize = 10_000;

/// A colour as the painter needs it: red, green, blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb8(pub u8, pub u8, pub u8);

impl Rgb8 {
    /// The colour at two thirds of its brightness (SGR 2, "dim").
    pub fn dim(self) -> Rgb8 {
        let d = |v: u8| (u16::from(v) * 2 / 3) as u8;
        Rgb8(d(self.0), d(self.1), d(self.2))
    }
}

/// Default foreground and background (also used for "default" colours).
pub const DEFAULT_FG: Rgb8 = Rgb8(0xd8, 0xd8, 0xd8);
pub const DEFAULT_BG: Rgb8 = Rgb8(0x1b, 0x1d, 0x23);

/// The 16 ANSI colours (xterm's values, slightly softened).
pub const ANSI: [Rgb8; 16] = [
    Rgb8(0x00, 0x00, 0x00),
    Rgb8(0xcd, 0x31, 0x31),
    Rgb8(0x0d, 0xbc, 0x79),
    Rgb8(0xe5, 0xe5, 0x10),
    Rgb8(0x24, 0x72, 0xc8),
    Rgb8(0xbc, 0x3f, 0xbc),
    Rgb8(0x11, 0xa8, 0xcd),
    Rgb8(0xe5, 0xe5, 0xe5),
    Rgb8(0x66, 0x66, 0x66),
    Rgb8(0xf1, 0x4c, 0x4c),
    Rgb8(0x23, 0xd1, 0x8b),
    Rgb8(0xf5, 0xf5, 0x43),
    Rgb8(0x3b, 0x8e, 0xea),
    Rgb8(0xd6, 0x70, 0xd6),
    Rgb8(0x29, 0xb8, 0xdb),
    Rgb8(0xff, 0xff, 0xff),
];

/// The xterm 256-colour palette entry `i`: 16 ANSI colours, a 6×6×6 cube, 24 greys.
pub fn palette(i: u8) -> Rgb8 {
    match i {
        0..=15 => ANSI[i as usize],
        16..=231 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            Rgb8(level(i / 36), level((i / 6) % 6), level(i % 6))
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            Rgb8(v, v, v)
        }
    }
}

/// Text attributes of a cell, as the painter needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    pub strikeout: bool,
}

/// One cell to paint. Inverse, dim, hidden and selection are already applied to the colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellView {
    pub ch: char,
    pub fg: Rgb8,
    pub bg: Rgb8,
    pub style: Style,
    /// The first half of a double-width character (its glyph spans two cells).
    pub wide: bool,
    /// The second half of a double-width character (nothing to draw).
    pub spacer: bool,
}

/// Cursor shapes the painter draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorView {
    Block,
    Underline,
    Beam,
    HollowBlock,
}

/// Everything a frame needs to paint the terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub cols: usize,
    pub rows: usize,
    /// `rows * cols` cells of the visible viewport, row by row.
    pub cells: Vec<CellView>,
    /// Cursor position (row, column) in the viewport and shape; `None` when hidden or
    /// scrolled out of view.
    pub cursor: Option<(usize, usize, CursorView)>,
    pub app_cursor: bool,
    pub bracketed_paste: bool,
    pub alt_screen: bool,
    /// Lines scrolled back from the bottom (0: following the output).
    pub display_offset: usize,
    /// Lines of history above the screen.
    pub history: usize,
    /// Window title set by the program (OSC 0/2), if any.
    pub title: Option<String>,
}

impl Snapshot {
    /// The visible text, one line per row, trailing blanks trimmed (for tests and copying).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for row in 0..self.rows {
            let line: String = self
                .row(row)
                .iter()
                .filter(|c| !c.spacer)
                .map(|c| c.ch)
                .collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The cells of one row.
    pub fn row(&self, row: usize) -> &[CellView] {
        &self.cells[row * self.cols..(row + 1) * self.cols]
    }

    /// One cell.
    pub fn cell(&self, row: usize, col: usize) -> &CellView {
        &self.cells[row * self.cols + col]
    }
}

/// What the terminal asks of its host, collected while parsing.
#[derive(Clone, Default)]
struct Listener {
    inner: Arc<Mutex<Requests>>,
}

#[derive(Default)]
struct Requests {
    /// Bytes to send back to the program (answers to DA/DSR queries).
    replies: Vec<u8>,
    title: Option<String>,
    bell: bool,
}

impl EventListener for Listener {
    fn send_event(&self, event: Event) {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::PtyWrite(text) => r.replies.extend_from_slice(text.as_bytes()),
            Event::Title(t) => r.title = Some(t),
            Event::ResetTitle => r.title = None,
            Event::Bell => r.bell = true,
            _ => {}
        }
    }
}

struct Size {
    cols: usize,
    rows: usize,
}

impl Dimensions for Size {
    fn total_lines(&self) -> usize {
        self.rows
    }
    fn screen_lines(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.cols
    }
}

/// A terminal: feed it bytes, read snapshots.
pub struct Emulator {
    term: Term<Listener>,
    parser: Processor,
    listener: Listener,
}

impl Emulator {
    /// A `cols`×`rows` terminal with [`SCROLLBACK`] lines of history.
    pub fn new(cols: usize, rows: usize) -> Self {
        Self::with_scrollback(cols, rows, SCROLLBACK)
    }

    /// A terminal with a chosen history bound.
    pub fn with_scrollback(cols: usize, rows: usize, scrollback: usize) -> Self {
        let listener = Listener::default();
        let config = Config {
            scrolling_history: scrollback,
            ..Config::default()
        };
        let size = Size {
            cols: cols.max(2),
            rows: rows.max(1),
        };
        Emulator {
            term: Term::new(config, &size, listener.clone()),
            parser: Processor::new(),
            listener,
        }
    }

    /// Parses program output.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.advance(&mut self.term, bytes);
    }

    /// Answers the program asked for (device attributes, cursor reports), to be sent to its
    /// stdin. Empty most of the time.
    pub fn take_replies(&mut self) -> Vec<u8> {
        let mut r = self
            .listener
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut r.replies)
    }

    pub fn size(&self) -> (usize, usize) {
        (self.term.columns(), self.term.screen_lines())
    }

    /// Resizes the grid (the program is told separately, through the session).
    pub fn resize(&mut self, cols: usize, rows: usize) {
        self.term.resize(Size {
            cols: cols.max(2),
            rows: rows.max(1),
        });
    }

    /// Scrolls the view by `lines` (positive: back into history).
    pub fn scroll(&mut self, lines: i32) {
        self.term.scroll_display(Scroll::Delta(lines));
    }

    /// Back to the bottom (new input or output follows the program again).
    pub fn scroll_to_bottom(&mut self) {
        self.term.scroll_display(Scroll::Bottom);
    }

    /// Starts a selection at viewport cell (row, col).
    pub fn select_start(&mut self, row: usize, col: usize) {
        let point = self.viewport_point(row, col);
        self.term.selection = Some(Selection::new(SelectionType::Simple, point, Side::Left));
    }

    /// Extends the selection to viewport cell (row, col), inclusive.
    pub fn select_to(&mut self, row: usize, col: usize) {
        let point = self.viewport_point(row, col);
        if let Some(sel) = self.term.selection.as_mut() {
            sel.update(point, Side::Right);
        }
    }

    pub fn clear_selection(&mut self) {
        self.term.selection = None;
    }

    /// The selected text, if any.
    pub fn selection_text(&self) -> Option<String> {
        self.term.selection_to_string().filter(|s| !s.is_empty())
    }

    fn viewport_point(&self, row: usize, col: usize) -> Point {
        let offset = self.term.grid().display_offset() as i32;
        let row = row.min(self.term.screen_lines().saturating_sub(1)) as i32;
        let col = col.min(self.term.columns().saturating_sub(1));
        Point::new(Line(row - offset), Column(col))
    }

    /// Lines of history now kept.
    pub fn history(&self) -> usize {
        self.term.grid().history_size()
    }

    /// What to paint now.
    pub fn snapshot(&self) -> Snapshot {
        let content = self.term.renderable_content();
        let cols = self.term.columns();
        let rows = self.term.screen_lines();
        let offset = content.display_offset as i32;
        let blank = CellView {
            ch: ' ',
            fg: DEFAULT_FG,
            bg: DEFAULT_BG,
            style: Style::default(),
            wide: false,
            spacer: false,
        };
        let mut cells = vec![blank; cols * rows];
        let selection = content.selection;
        for indexed in content.display_iter {
            let row = indexed.point.line.0 + offset;
            if row < 0 || row as usize >= rows || indexed.point.column.0 >= cols {
                continue;
            }
            let cell = indexed.cell;
            let flags = cell.flags;
            let mut fg = resolve(cell.fg, content.colors, true);
            let mut bg = resolve(cell.bg, content.colors, false);
            if flags.contains(Flags::BOLD)
                && let Color::Named(n) = cell.fg
                && (n as usize) < 8
            {
                // Bold text in one of the 8 basic colours is shown bright, as xterm does.
                fg = ANSI[n as usize + 8];
            }
            if flags.contains(Flags::DIM) {
                fg = fg.dim();
            }
            let selected = selection.is_some_and(|s| s.contains(indexed.point));
            if flags.contains(Flags::INVERSE) != selected {
                std::mem::swap(&mut fg, &mut bg);
            }
            if flags.contains(Flags::HIDDEN) {
                fg = bg;
            }
            cells[row as usize * cols + indexed.point.column.0] = CellView {
                ch: if cell.c == '\t' { ' ' } else { cell.c },
                fg,
                bg,
                style: Style {
                    bold: flags.contains(Flags::BOLD),
                    italic: flags.contains(Flags::ITALIC),
                    underline: flags.intersects(Flags::ALL_UNDERLINES),
                    strikeout: flags.contains(Flags::STRIKEOUT),
                },
                wide: flags.contains(Flags::WIDE_CHAR),
                spacer: flags.intersects(Flags::WIDE_CHAR_SPACER | Flags::LEADING_WIDE_CHAR_SPACER),
            };
        }
        let mode = content.mode;
        let cursor_row = content.cursor.point.line.0 + offset;
        let cursor = match content.cursor.shape {
            CursorShape::Hidden => None,
            _ if !mode.contains(TermMode::SHOW_CURSOR) => None,
            _ if cursor_row < 0 || cursor_row as usize >= rows => None,
            shape => Some((
                cursor_row as usize,
                content.cursor.point.column.0.min(cols.saturating_sub(1)),
                match shape {
                    CursorShape::Underline => CursorView::Underline,
                    CursorShape::Beam => CursorView::Beam,
                    CursorShape::HollowBlock => CursorView::HollowBlock,
                    _ => CursorView::Block,
                },
            )),
        };
        let title = self
            .listener
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .title
            .clone();
        Snapshot {
            cols,
            rows,
            cells,
            cursor,
            app_cursor: mode.contains(TermMode::APP_CURSOR),
            bracketed_paste: mode.contains(TermMode::BRACKETED_PASTE),
            alt_screen: mode.contains(TermMode::ALT_SCREEN),
            display_offset: content.display_offset,
            history: self.term.grid().history_size(),
            title,
        }
    }
}

fn resolve(color: Color, colors: &alacritty_terminal::term::color::Colors, fg: bool) -> Rgb8 {
    let rgb = |c: Rgb| Rgb8(c.r, c.g, c.b);
    match color {
        Color::Spec(c) => rgb(c),
        Color::Indexed(i) => colors[i as usize].map(rgb).unwrap_or_else(|| palette(i)),
        Color::Named(n) => {
            if let Some(c) = colors[n] {
                return rgb(c);
            }
            match n {
                NamedColor::Foreground | NamedColor::BrightForeground => DEFAULT_FG,
                NamedColor::Background => DEFAULT_BG,
                NamedColor::DimForeground => DEFAULT_FG.dim(),
                NamedColor::Cursor => DEFAULT_FG,
                n if (n as usize) < 16 => ANSI[n as usize],
                n if (n as usize) >= NamedColor::DimBlack as usize
                    && (n as usize) <= NamedColor::DimWhite as usize =>
                {
                    ANSI[n as usize - NamedColor::DimBlack as usize].dim()
                }
                _ if fg => DEFAULT_FG,
                _ => DEFAULT_BG,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(bytes: &[u8]) -> Snapshot {
        let mut e = Emulator::new(20, 5);
        e.feed(bytes);
        e.snapshot()
    }

    #[test]
    fn colours_256_true_colour_and_attributes() {
        let s = term(b"\x1b[31mR\x1b[38;5;196mX\x1b[38;2;1;2;3mT\x1b[0;1;3;4mB\x1b[0;7mI");
        assert_eq!(s.cell(0, 0).fg, ANSI[1]);
        assert_eq!(s.cell(0, 1).fg, palette(196));
        assert_eq!(palette(196), Rgb8(255, 0, 0));
        assert_eq!(palette(232), Rgb8(8, 8, 8));
        assert_eq!(s.cell(0, 2).fg, Rgb8(1, 2, 3));
        let b = s.cell(0, 3).style;
        assert!(b.bold && b.italic && b.underline, "{b:?}");
        // Inverse swaps the default colours.
        assert_eq!((s.cell(0, 4).fg, s.cell(0, 4).bg), (DEFAULT_BG, DEFAULT_FG));
        // Background colours.
        let s = term(b"\x1b[48;5;21m \x1b[44m ");
        assert_eq!(s.cell(0, 0).bg, palette(21));
        assert_eq!(s.cell(0, 1).bg, ANSI[4]);
    }

    #[test]
    fn cursor_movement_and_shape() {
        let s = term(b"abc\x1b[3;5HX\x1b[1;1H");
        assert_eq!(s.cell(2, 4).ch, 'X');
        assert_eq!(s.cursor, Some((0, 0, CursorView::Block)));
        let s = term(b"hello\r\n\x1b[2Cok\x1b[6 q");
        assert_eq!(s.text().lines().nth(1), Some("  ok"));
        assert_eq!(s.cursor, Some((1, 4, CursorView::Beam)));
        assert_eq!(term(b"\x1b[?25l").cursor, None);
    }

    #[test]
    fn alternate_screen_keeps_the_main_screen() {
        let mut e = Emulator::new(20, 5);
        e.feed(b"main text");
        e.feed(b"\x1b[?1049h\x1b[2J\x1b[Hin vi");
        let alt = e.snapshot();
        assert!(alt.alt_screen);
        assert_eq!(alt.text().lines().next(), Some("in vi"));
        e.feed(b"\x1b[?1049l");
        let back = e.snapshot();
        assert!(!back.alt_screen);
        assert_eq!(back.text().lines().next(), Some("main text"));
    }

    #[test]
    fn wide_characters_take_two_cells() {
        let s = term("日本x".as_bytes());
        assert!(s.cell(0, 0).wide && s.cell(0, 1).spacer);
        assert_eq!(s.cell(0, 2).ch, '本');
        assert_eq!(s.cell(0, 4).ch, 'x');
        assert_eq!(s.text().lines().next(), Some("日本x"));
    }

    #[test]
    fn scrollback_is_bounded_and_scrollable() {
        let mut e = Emulator::with_scrollback(20, 5, 100);
        for i in 0..1000 {
            e.feed(format!("line {i}\r\n").as_bytes());
        }
        assert_eq!(e.history(), 100);
        e.scroll(3);
        let s = e.snapshot();
        assert_eq!(s.display_offset, 3);
        assert_eq!(s.text().lines().next(), Some("line 993"));
        e.scroll(1_000_000);
        assert_eq!(e.snapshot().display_offset, 100);
        e.scroll_to_bottom();
        assert_eq!(e.snapshot().display_offset, 0);
        // The default bound.
        let mut e = Emulator::new(10, 3);
        e.feed("x\r\n".repeat(20_000).as_bytes());
        assert_eq!(e.history(), SCROLLBACK);
    }

    #[test]
    fn modes_for_keys_and_paste_are_reported() {
        let s = term(b"\x1b[?1h\x1b[?2004h");
        assert!(s.app_cursor && s.bracketed_paste);
        let s = term(b"\x1b[?1h\x1b[?1l");
        assert!(!s.app_cursor);
    }

    #[test]
    fn device_queries_are_answered() {
        let mut e = Emulator::new(20, 5);
        e.feed(b"ab\x1b[6n");
        assert_eq!(e.take_replies(), b"\x1b[1;3R");
        assert!(e.take_replies().is_empty());
    }

    #[test]
    fn selection_copies_text() {
        let mut e = Emulator::new(20, 5);
        e.feed(b"hello world\r\nsecond");
        e.select_start(0, 6);
        e.select_to(1, 2);
        assert_eq!(e.selection_text().as_deref(), Some("world\nsec"));
        let s = e.snapshot();
        // Selected cells are shown inverted.
        assert_eq!(s.cell(0, 6).bg, DEFAULT_FG);
        e.clear_selection();
        assert_eq!(e.selection_text(), None);
    }
}
