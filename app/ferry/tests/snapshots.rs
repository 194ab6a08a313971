//! Thresholded snapshot images of the main views, rendered with wgpu (Mesa's CPU Vulkan driver
//! on CI: `apt-get install mesa-vulkan-drivers`). They catch layout regressions a label query
//! cannot: overlapping panels, clipped columns, unreadable colours.
//!
//! Run: `cargo test -p ferry --features snapshots --test snapshots`; after an intended change,
//! `UPDATE_SNAPSHOTS=true` rewrites the stored images in `tests/snapshots/`.

#![cfg(feature = "snapshots")]

use egui_kittest::{Harness, SnapshotOptions};
use ferry::ui::commands::{Command, ForwardTarget, Selection, Tab};
use ferry::ui::{FerryApp, Runtime, fixture};

/// The app on the fixed demo-like model, after `commands`, two frames later.
fn app_after(commands: Vec<Command>) -> Harness<'static, FerryApp> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 780.0))
        .with_theme(egui::Theme::Dark)
        .wgpu()
        .build_eframe(|cc| {
            let (runtime, requests) = Runtime::fixed(fixture::model(0));
            std::mem::forget(requests);
            FerryApp::new(&cc.egui_ctx, None, runtime)
        });
    let ctx = harness.ctx.clone();
    let setup = [
        Command::SelectContext("demo".into()),
        Command::SelectNamespace("default".into()),
    ];
    for c in setup.into_iter().chain(commands) {
        harness.state_mut().apply(&ctx, c);
    }
    harness.run_steps(3);
    harness
}

/// Text rendering differs slightly between drivers; a few hundred pixels may differ.
fn options() -> SnapshotOptions {
    SnapshotOptions::new().threshold(1.0).max_failed_pixels(600)
}

#[test]
fn pods_tab_looks_right() {
    let mut h = app_after(vec![Command::SelectTab(Tab::Pods)]);
    h.snapshot_options("pods", &options());
}

#[test]
fn service_details_list_every_way_to_reach_it() {
    let mut h = app_after(vec![
        Command::SelectTab(Tab::Services),
        Command::Select(Some(Selection::Service("kubia".into()))),
    ]);
    h.snapshot_options("service_details", &options());
}

#[test]
fn forward_dialog_looks_right() {
    let mut h = app_after(vec![
        Command::SelectTab(Tab::Services),
        Command::OpenForward {
            target: ForwardTarget::Service("kubia".into()),
            port: None,
        },
    ]);
    h.snapshot_options("forward_dialog", &options());
}

#[test]
fn tunnels_tab_shows_states_in_colour_and_words() {
    let mut h = app_after(vec![Command::SelectTab(Tab::Tunnels)]);
    h.snapshot_options("tunnels", &options());
}
