//! `kubesim`: run the simulated Kubernetes API server from a shell.
//!
//! ```text
//! kubesim serve [--world demo|PATH...] [--kubeconfig OUT] [--port N] [--plain-http]
//! ```
//! prints where the kubeconfig is and how to point kubectl at it, then serves until Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kubesim::{Kubesim, KubesimConfig, Timing, World};

#[derive(Parser)]
#[command(
    name = "kubesim",
    version,
    about = "A simulated Kubernetes API server for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the simulated clusters until Ctrl-C.
    Serve(ServeArgs),
    /// Inject a fault into a running `kubesim serve` (delete a pod, pause the server…).
    Fault(kubesim::faults::cli::FaultArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// `demo` for the built-in world, or YAML manifest files/directories.
    #[arg(long, num_args = 1.., default_value = "demo")]
    world: Vec<String>,
    /// Where to write the kubeconfig (default: ./kubesim.kubeconfig).
    #[arg(long, default_value = "kubesim.kubeconfig")]
    kubeconfig: PathBuf,
    /// Port of the primary cluster (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve plain HTTP instead of TLS.
    #[arg(long)]
    plain_http: bool,
    /// Make simulated pods start and stop almost instantly.
    #[arg(long)]
    fast: bool,
    /// Refuse kubectl's SPDY-over-WebSocket port-forward tunnel, as an API server before 1.30
    /// (or with the PortForwardWebsockets feature gate off) does.
    #[arg(long)]
    no_port_forward_websockets: bool,
}

fn load_world(args: &[String]) -> anyhow::Result<World> {
    if args.len() == 1 && args[0] == "demo" {
        return Ok(World::demo());
    }
    let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    World::load(&paths).context("could not load the world")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = KubesimConfig {
        world: load_world(&args.world)?,
        port: Some(args.port),
        plain_http: args.plain_http,
        timing: if args.fast {
            Timing::fast()
        } else {
            Timing::default()
        },
        kubeconfig_path: Some(args.kubeconfig.clone()),
        port_forward_websockets: !args.no_port_forward_websockets,
        ..KubesimConfig::default()
    };
    let sim = Kubesim::start(config)
        .await
        .context("kubesim could not start")?;
    let path = std::fs::canonicalize(sim.kubeconfig_path())
        .unwrap_or_else(|_| sim.kubeconfig_path().to_path_buf());
    let admin = kubesim::faults::admin::start(sim.clusters(), 0)
        .await
        .context("could not start the fault-injection admin endpoint")?;
    let admin_file = kubesim::faults::admin::admin_file_for(&args.kubeconfig);
    admin
        .write_file(&admin_file)
        .with_context(|| format!("could not write {}", admin_file.display()))?;
    println!("kubesim is serving:");
    for cluster in sim.clusters() {
        println!(
            "  {:<10} {}",
            cluster.name,
            sim.server_url(&cluster.name).unwrap_or_default()
        );
    }
    println!();
    println!("kubeconfig written to {}", path.display());
    println!("use it with:");
    println!("  export KUBECONFIG={}", path.display());
    println!("  kubectl get pods -A");
    println!("contexts: demo (admin), demo-restricted, demo-viewer, staging");
    println!();
    println!(
        "fault injection: kubesim fault --admin-file {} --help",
        admin_file.display()
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("could not wait for Ctrl-C")?;
    println!("stopping");
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBESIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kubesim=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Fault(args) => kubesim::faults::cli::run(args).await,
    }
}
