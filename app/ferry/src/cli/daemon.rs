//! `ferry daemon`: the instance with no window (until a client asks for one, e.g. a second
//! `ferry` launch). It serves the control socket, starts the autostart profiles, keeps a log
//! file (named by `ferry status`), and stops cleanly — every listener and WebSocket closed —
//! on SIGTERM, Ctrl-C or a `quit` request, within 2 s. See [`ferry::host`].

use std::process::ExitCode;

use ferry::host::{self, HostOptions};
use ferry_core::instance::Flavor;

/// Run the Ferry instance without a window (tunnels keep running until it is stopped).
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {}

pub fn run(_args: DaemonArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    host::run(HostOptions {
        flavor: Flavor::Real,
        window: false,
        verbose,
    })
}
