//! Command-line parsing and dispatch. With no subcommand Ferry opens its window.

pub mod contexts;
pub mod daemon;
pub mod down;
pub mod examples;
pub mod exec;
pub mod forward;
pub mod man;
pub mod profile;
pub mod quit;
pub mod remote;
pub mod status;
pub mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry keeps Kubernetes port-forwards alive across pod restarts and rollouts.
#[derive(Debug, Parser)]
#[command(name = "ferry", version = ferry::VERSION, about, long_about = None)]
pub struct Cli {
    /// Open the app on a built-in simulated cluster (no real cluster needed).
    #[arg(long, global = false)]
    pub demo: bool,

    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Forward local ports to a pod, service, deployment or selector; survives pod restarts.
    Forward(forward::ForwardArgs),
    /// List the kubeconfig contexts (like `kubectl config get-contexts`, with server URLs).
    Contexts(contexts::ContextsArgs),
    /// Manage saved profiles: list, show, add, rm, export, import.
    Profile(profile::ProfileArgs),
    /// Start saved profiles (default: the autostart ones) on the running instance, or in the
    /// foreground until Ctrl-C when none runs.
    Up(up::UpArgs),
    /// Write the man pages into a folder (used by the packaging scripts).
    #[command(hide = true)]
    Man(man::ManArgs),
    /// Stop saved profiles' tunnels (or all) on the running instance.
    Down(down::DownArgs),
    /// Show the running instance's tunnels (exit 3 when none runs).
    Status(status::StatusArgs),
    /// Run the Ferry instance without a window; tunnels keep running until SIGTERM, Ctrl-C or
    /// `ferry quit`. `ferry` opens its window.
    Daemon(daemon::DaemonArgs),
    /// Stop the running instance: every tunnel, its window, its control socket.
    Quit(quit::QuitArgs),
    /// Run a command in a container of a pod, like `kubectl exec` (`-i`, `-t`, exit codes);
    /// on the running instance when there is one.
    Exec(exec::ExecArgs),
}

/// Logs go to stderr; `RUST_LOG` overrides the level chosen with `-v`. Without `-v` only
/// Ferry's own warnings are logged: libraries (kube, hyper, rustls) retry and complain on
/// every failed request, and what they say is already in Ferry's own sentences. Colours only
/// when stderr is a terminal, so redirected output has no escape codes.
pub fn init_tracing(verbose: u8) {
    use std::io::IsTerminal as _;
    let default = match verbose {
        0 => "off,ferry=warn,ferry_core=warn",
        1 => "info,ferry=debug,ferry_core=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let verbose = cli.verbose;
    match cli.command {
        None => ferry::host::run(ferry::host::HostOptions {
            flavor: if cli.demo {
                ferry_core::instance::Flavor::Demo
            } else {
                ferry_core::instance::Flavor::Real
            },
            window: true,
            verbose,
        }),
        Some(Command::Forward(args)) => forward::run(args),
        Some(Command::Contexts(args)) => contexts::run(args),
        Some(Command::Profile(args)) => profile::run(args),
        Some(Command::Up(args)) => up::run(args),
        Some(Command::Man(args)) => man::run(args),
        Some(Command::Down(args)) => down::run(args),
        Some(Command::Status(args)) => status::run(args),
        Some(Command::Daemon(args)) => daemon::run(args, verbose),
        Some(Command::Quit(args)) => quit::run(args),
        Some(Command::Exec(args)) => exec::run(args),
    }
}
