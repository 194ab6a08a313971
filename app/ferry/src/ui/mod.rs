//! The desktop app (eframe/egui). `app` lays out the panels and applies commands; one module per
//! view (`pods`, `services`, `deployments`, `tunnels`, `sidebar`, `details`, `forward_dialog`,
//! `profiles`, `event_log`, `toasts`, `welcome`); `theme` gives them one look; `runtime` and
//! `backend` keep everything asynchronous on their own thread; `model` is what views read.

pub mod app;
mod backend;
mod bridge;
pub mod commands;
pub mod deployments;
pub mod details;
pub mod event_log;
pub mod fixture;
pub mod forward_dialog;
pub mod model;
pub mod pods;
mod profile_ops;
pub mod profiles;
pub mod runtime;
pub mod services;
pub mod settings;
pub mod sidebar;
pub mod table;
pub mod terminal;
pub mod theme;
pub mod toasts;
pub mod tunnels;
pub mod welcome;

use std::sync::Arc;

pub use app::FerryApp;
pub use backend::source_state;
pub use runtime::{Runtime, Source, Startup};

/// When `run` was called, so the first frame can report how long startup took.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Logs (target `ferry::startup`, level info) the time from `run` to the first frame, once.
pub(crate) fn report_first_frame() {
    static DONE: std::sync::Once = std::sync::Once::new();
    if let Some(started) = STARTED.get() {
        DONE.call_once(|| {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(target: "ferry::startup", "first frame after {ms:.0} ms");
        });
    }
}

/// The app icon for the window (X11's `_NET_WM_ICON`, the Windows title bar and task bar). On
/// Wayland the compositor takes the icon from the desktop file that matches the app id instead.
fn window_icon() -> egui::IconData {
    const PNG: &[u8] =
        include_bytes!("../../../../assets/icons/hicolor/256x256/apps/dev.ferry.Ferry.png");
    // The PNG is ours and checked by a test; should it ever fail to decode, no icon beats no window.
    eframe::icon_data::from_png_bytes(PNG).unwrap_or_default()
}

/// Opens the window on the host's instance and runs it on this (the main) thread until it is
/// closed. Called again to show it again: eframe reuses its event loop (`run_and_return`).
pub fn open_window(host: Arc<crate::host::Host>) -> anyhow::Result<()> {
    let _ = STARTED.set(std::time::Instant::now());
    let demo = matches!(host.source, model::SourceState::Demo { .. });
    let title = if demo {
        "Ferry — demo cluster"
    } else {
        "Ferry"
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            // The desktop file's name: Wayland compositors take the window's icon and name
            // from the desktop file whose basename is the app id, X11 docks match WM_CLASS
            // against StartupWMClass.
            .with_app_id("dev.ferry.Ferry")
            .with_inner_size([1280.0, 780.0])
            .with_min_inner_size([760.0, 420.0])
            .with_icon(window_icon()),
        persist_window: true,
        run_and_return: true,
        ..Default::default()
    };
    let opened = host.clone();
    let result = eframe::run_native(
        "Ferry",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            opened.window_opened(Some(ctx.clone()));
            let runtime = Runtime::attach(&opened, Arc::new(move || ctx.request_repaint()));
            Ok(Box::new(FerryApp::new(&cc.egui_ctx, cc.storage, runtime)))
        }),
    );
    host.window_opened(None);
    result.map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}

#[cfg(test)]
mod icon_tests {
    /// The embedded window icon decodes: a broken PNG would silently leave the window iconless.
    #[test]
    fn window_icon_is_the_256_px_app_icon() {
        let icon = super::window_icon();
        assert_eq!((icon.width, icon.height), (256, 256));
        assert_eq!(icon.rgba.len(), 256 * 256 * 4);
        // Not blank: the tile's blue is there.
        assert!(icon.rgba.chunks(4).any(|p| p[2] > 150 && p[3] == 255));
    }
}
