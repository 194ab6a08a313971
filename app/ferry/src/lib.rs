//! The `ferry` desktop app as a library, so that UI tests (egui_kittest) and the frame-time
//! benchmark can drive the real app. The binary (`main.rs`) adds the command line.

#[cfg(target_os = "linux")]
pub mod autostart;
#[cfg(target_os = "linux")]
mod clipboard;
pub mod demo;
pub mod host;
#[cfg(target_os = "linux")]
pub mod notices;
#[cfg(target_os = "linux")]
pub mod tray;
pub mod tray_icon;
pub mod ui;

/// Ferry's version and the git commit it was built from, as `ferry --version` prints it:
/// `0.1.0 (commit 1a2b3c4)`; `commit unknown` when built outside a git checkout without
/// `FERRY_GIT_COMMIT` set (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERRY_GIT_COMMIT"),
    ")"
);
