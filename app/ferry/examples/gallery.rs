//! Opens the real window on the fixed demo-like model (no cluster, no runtime thread), to look
//! at the views while designing them: `cargo run -p ferry --example gallery [TAB] [SELECTION]`.
//! TAB is pods|services|deployments|tunnels; SELECTION is e.g. `svc/kubia` or `pod/postgres-0`.

use ferry::ui::commands::{Command, Selection, Tab};
use ferry::ui::{FerryApp, Runtime, fixture};

fn main() -> eframe::Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tab = match args.first().map(String::as_str) {
        Some("services") => Tab::Services,
        Some("deployments") => Tab::Deployments,
        Some("tunnels") => Tab::Tunnels,
        _ => Tab::Pods,
    };
    let selection = args.get(1).and_then(|s| match s.split_once('/') {
        Some(("svc", n)) => Some(Selection::Service(n.into())),
        Some(("pod", n)) => Some(Selection::Pod(n.into())),
        Some(("deploy", n)) => Some(Selection::Deployment(n.into())),
        Some(("tunnel", n)) => Some(Selection::Tunnel(n.into())),
        _ => None,
    });
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 780.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Ferry gallery",
        options,
        Box::new(move |cc| {
            let (runtime, requests) = Runtime::fixed(fixture::model(0));
            std::mem::forget(requests);
            let mut app = FerryApp::new(&cc.egui_ctx, None, runtime);
            app.apply(&cc.egui_ctx, Command::SelectContext("demo".into()));
            app.apply(&cc.egui_ctx, Command::SelectNamespace("default".into()));
            app.apply(&cc.egui_ctx, Command::SelectTab(tab));
            app.apply(&cc.egui_ctx, Command::Select(selection));
            Ok(Box::new(app))
        }),
    )
}
