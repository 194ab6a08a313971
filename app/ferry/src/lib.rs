//! The `ferry` desktop app as a library, so that UI tests (egui_kittest) and the frame-time
//! benchmark can drive the real app. The binary (`main.rs`) adds the command line.

pub mod demo;
pub mod ui;
