//! Ferry's small design system: the colours that mean a state, the spacing, the icons and the
//! text styles every panel uses, so that "Active" looks the same in the tunnels table, the
//! sidebar and the event log. Colours are chosen for the current light or dark visuals, which
//! follow the system theme.

use egui::{Color32, RichText, Ui};

/// Space between groups of controls.
pub const GAP: f32 = 8.0;
/// Height of one table row.
pub const ROW_HEIGHT: f32 = 22.0;
/// Height of a table header.
pub const HEADER_HEIGHT: f32 = 24.0;
/// Inner margin of panels.
pub const PANEL_MARGIN: i8 = 8;

/// Icons, drawn from egui's bundled symbol font so they look the same everywhere.
pub mod icon {
    pub const START: &str = "▶";
    pub const STOP: &str = "⏹";
    pub const RESTART: &str = "🔄";
    pub const REMOVE: &str = "🗑";
    pub const COPY: &str = "📋";
    pub const FILTER: &str = "🔍";
    pub const WARNING: &str = "⚠";
    pub const DOT: &str = "●";
    pub const ARROW: &str = "→";
    pub const FORWARD: &str = "⇄";
    pub const PROFILE: &str = "🗀";
    pub const LINK: &str = "🔗";
    /// A shell prompt (plain text: every font has it).
    pub const SHELL: &str = ">_";
}

/// What a coloured word or dot is saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Working as asked (Active tunnel, connected context, Ready pod).
    Good,
    /// On its way (connecting, starting, reconnecting).
    Busy,
    /// Cannot serve right now but will recover by itself (no Ready pod yet).
    Warn,
    /// Broken until someone acts (error, failed).
    Bad,
    /// Deliberately off (stopped, idle).
    Quiet,
}

/// The colour of a tone for the current visuals (light or dark).
pub fn tone_color(ui: &Ui, tone: Tone) -> Color32 {
    let dark = ui.visuals().dark_mode;
    match (tone, dark) {
        (Tone::Good, true) => Color32::from_rgb(0x4c, 0xc3, 0x6b),
        (Tone::Good, false) => Color32::from_rgb(0x1e, 0x8a, 0x3c),
        (Tone::Busy, true) => Color32::from_rgb(0x5a, 0xa9, 0xf0),
        (Tone::Busy, false) => Color32::from_rgb(0x1f, 0x6f, 0xc8),
        (Tone::Warn, true) => Color32::from_rgb(0xe8, 0xb3, 0x3c),
        (Tone::Warn, false) => Color32::from_rgb(0xa8, 0x6a, 0x00),
        (Tone::Bad, true) => Color32::from_rgb(0xf0, 0x6a, 0x5f),
        (Tone::Bad, false) => Color32::from_rgb(0xc0, 0x30, 0x25),
        (Tone::Quiet, _) => ui.visuals().weak_text_color(),
    }
}

/// A state shown as a coloured dot plus the word, never colour alone.
pub fn state_label(ui: &mut Ui, tone: Tone, word: &str) -> egui::Response {
    let color = tone_color(ui, tone);
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        ui.label(RichText::new(icon::DOT).color(color).size(10.0));
        ui.label(RichText::new(word).color(color));
    })
    .response
}

/// A state that Ferry itself is waiting on (a tunnel starting, a context connecting): a
/// spinner instead of the dot. Spinners animate, so use them only for short waits.
pub fn waiting_label(ui: &mut Ui, word: &str) -> egui::Response {
    let color = tone_color(ui, Tone::Busy);
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        ui.add(egui::Spinner::new().size(10.0).color(color));
        ui.label(RichText::new(word).color(color));
    })
    .response
}

/// Secondary text (ages, hints, counts).
pub fn weak(text: impl Into<String>) -> RichText {
    RichText::new(text.into()).weak()
}

/// A small all-caps section title, as in native sidebars.
pub fn section(ui: &mut Ui, title: &str) {
    ui.add_space(GAP / 2.0);
    ui.label(RichText::new(title.to_uppercase()).small().strong().weak());
}

/// Monospace text for addresses, ports and names a person may copy.
pub fn mono(text: impl Into<String>) -> RichText {
    RichText::new(text.into()).monospace()
}

/// Applies Ferry's spacing on top of egui's defaults; the light/dark choice stays with the
/// system (`ThemePreference::System`).
pub fn install(ctx: &egui::Context) {
    ctx.set_theme(egui::ThemePreference::System);
    // The proportional font lacks ●, → and arrows; the bundled monospace font has them.
    let mut fonts = egui::FontDefinitions::default();
    if let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
        family.push("Hack".to_owned());
    }
    ctx.set_fonts(fonts);
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 5.0);
        style.spacing.button_padding = egui::vec2(8.0, 3.0);
        style.spacing.interact_size.y = 22.0;
        style.interaction.selectable_labels = false;
    });
}
