//! The `ferry` binary: the desktop app (default), the headless instance (`ferry daemon`), and
//! the command line (`ferry forward`, `ferry contexts`, `ferry profile`, `ferry up`, `ferry
//! down`, `ferry status`).

mod cli;

/// mimalloc rather than glibc's malloc: forwarding moves every byte through short-lived
/// buffers of 4–256 KiB (TLS records, WebSocket messages, SPDY frames), which glibc hands back
/// to the kernel and faults in again on the next one. In a profile of 1 GiB forwarded that was
/// a sixth of the forwarder's CPU (page faults and `madvise`); with mimalloc the forwarder's
/// CPU per GiB drops by about a fifth. See docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Parsed with the examples attached to every `--help` (see `cli/examples.rs`).
    let args = cli::examples::parse();
    // The instance (`ferry`, `ferry daemon`) also logs to its log file: it sets tracing up itself.
    if !matches!(args.command, None | Some(cli::Command::Daemon(_))) {
        cli::init_tracing(args.verbose);
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
