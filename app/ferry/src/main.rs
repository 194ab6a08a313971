//! The `ferry` binary: the desktop app (default), and the command line (`ferry forward`,
//! `ferry contexts`, `ferry profile`, `ferry up`).

mod cli;

// The app lives in the library (so UI tests can drive it); `crate::ui` keeps working for the CLI.
use ferry::ui;

fn main() -> std::process::ExitCode {
    // Parsed with the examples attached to every `--help` (see `cli/examples.rs`).
    let args = cli::examples::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
