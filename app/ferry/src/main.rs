//! The `ferry` binary: the desktop app (default), the headless instance (`ferry daemon`), and
//! the command line (`ferry forward`, `ferry contexts`, `ferry profile`, `ferry up`, `ferry
//! down`, `ferry status`).

mod cli;

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
