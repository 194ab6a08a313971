//! The desktop app.

use std::process::ExitCode;

/// How the window was asked to start.
pub struct Options {
    pub demo: bool,
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(if options.demo { "Ferry — demo cluster" } else { "Ferry" })
            .with_inner_size([1200.0, 760.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Ferry",
        native,
        Box::new(|_cc| Ok(Box::new(FerryApp))),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

struct FerryApp;

impl eframe::App for FerryApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ui.heading("Ferry");
    }
}
