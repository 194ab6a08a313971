//! First launch without a kubeconfig: the welcome screen explains where Ferry looked and opens
//! the built-in demo cluster, whose pods then show up.

mod support;

use std::sync::Arc;
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use ferry::ui::{FerryApp, Runtime, Source, Startup};
use support::{click, wait_for, wait_for_label};

#[test]
fn without_a_kubeconfig_the_welcome_screen_opens_the_demo_cluster() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let startup = Startup {
        source: Source::Paths(vec![dir.path().join("no-such-kubeconfig")]),
        profiles_dir: Some(dir.path().to_path_buf()),
    };
    let mut app = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let runtime = Runtime::start(startup, Arc::new(move || ctx.request_repaint()))
                .expect("runtime starts");
            FerryApp::new(&cc.egui_ctx, None, runtime)
        });
    wait_for_label(&mut app, "Welcome to Ferry", Duration::from_secs(10));
    assert!(
        app.query_all_by_label_contains("no-such-kubeconfig")
            .next()
            .is_some(),
        "says where it looked"
    );
    click(&mut app, "Open the demo cluster");
    wait_for(
        &mut app,
        "the demo cluster's kubia pods",
        Duration::from_secs(30),
        |h| h.state().model().is_demo() && h.query_all_by_label_contains("kubia-").count() >= 3,
    );
    assert!(
        app.query_by_label("demo").is_some(),
        "the demo context is listed"
    );
}
