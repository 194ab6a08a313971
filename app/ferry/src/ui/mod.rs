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
pub mod sidebar;
pub mod table;
pub mod theme;
pub mod toasts;
pub mod tunnels;
pub mod welcome;

use std::process::ExitCode;
use std::sync::Arc;

pub use app::FerryApp;
pub use runtime::{Runtime, Source, Startup};

/// How the window was asked to start.
pub struct Options {
    /// `ferry --demo`: run the built-in simulated cluster instead of the user's kubeconfig.
    pub demo: bool,
}

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

/// Opens the window and runs until it is closed.
pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let _ = STARTED.set(std::time::Instant::now());
    let source = if options.demo {
        Source::Demo
    } else {
        Source::Env
    };
    let title = if options.demo {
        "Ferry — demo cluster"
    } else {
        "Ferry"
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_app_id("ferry")
            .with_inner_size([1280.0, 780.0])
            .with_min_inner_size([760.0, 420.0]),
        persist_window: true,
        ..Default::default()
    };
    eframe::run_native(
        "Ferry",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let startup = Startup {
                source,
                profiles_dir: None,
            };
            let runtime = Runtime::start(startup, Arc::new(move || ctx.request_repaint()))?;
            Ok(Box::new(FerryApp::new(&cc.egui_ctx, cc.storage, runtime)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
