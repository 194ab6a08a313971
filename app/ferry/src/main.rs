//! The `ferry` binary: the desktop app (default), the headless instance (`ferry daemon`), and
//! the command line (`ferry forward`, `ferry contexts`, `ferry profile`, `ferry up`, `ferry
//! down`, `ferry status`).

mod cli;

// The app lives in the library (so UI tests can drive it); `crate::ui` keeps working for the CLI.
use ferry::ui;

fn main() -> std::process::ExitCode {
    // Parsed with the examples attached to every `--help` (see `cli/examples.rs`).
    let args = cli::examples::parse();
    // `ferry daemon` also logs to its log file, so it sets tracing up itself.
    if !matches!(args.command, Some(cli::Command::Daemon(_))) {
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
