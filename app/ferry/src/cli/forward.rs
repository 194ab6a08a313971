//! `ferry forward TARGET PORT...`: kubectl port-forward that survives pod restarts.
//!
//! Runs one tunnel on the engine, prints where it listens and one line per state change or pod
//! switch (waiting, recovered), and stops cleanly on Ctrl-C. Bad input and tunnels that cannot
//! start (port in use, forbidden, unknown context, a target, namespace or port name that does
//! not exist) end with a message and a non-zero exit code.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferry_core::clients::ClientPool;
use ferry_core::engine::{
    Engine, EngineOptions, EventKind, TunnelEvent, TunnelSnapshot, TunnelState,
};
use ferry_core::spec::{ListenAddress, PortSpec, Spread, Target, TunnelSpec};
use ferry_core::tunnel::state::Reason;
use tokio::sync::broadcast::error::RecvError;

/// Forward local ports to a pod, service, deployment or label selector, following its Ready
/// pods as they come and go.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// pod/NAME, svc/NAME, deploy/NAME, or a label selector like app=web.
    pub target: String,

    /// Ports as kubectl takes them: LOCAL:REMOTE, :REMOTE (any free local port), or REMOTE.
    /// REMOTE may be a port name.
    #[arg(required = true)]
    pub ports: Vec<String>,

    /// The kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,

    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Local address to listen on (repeatable): an IP address, or localhost for 127.0.0.1 and
    /// ::1. Default: localhost.
    #[arg(long = "address", value_name = "ADDRESS")]
    pub addresses: Vec<ListenAddress>,

    /// Spread connections over all Ready pods (round-robin), with client-IP affinity when the
    /// service asks for it.
    #[arg(long)]
    pub spread: bool,

    /// With --spread: keep each local client on one pod regardless of the service's setting.
    #[arg(long, requires = "spread")]
    pub affinity: bool,

    /// Hand the tunnel to the running Ferry instance (starting `ferry daemon` if none runs)
    /// and return once it is Active (exit 0) or has failed (exit 1).
    #[arg(long)]
    pub detach: bool,
}

/// Parse the arguments into a tunnel spec, with messages that say what is wrong.
fn spec_from(args: &ForwardArgs, pool: &ClientPool) -> anyhow::Result<TunnelSpec> {
    let target: Target = args.target.parse()?;
    let ports = args
        .ports
        .iter()
        .map(|p| p.parse::<PortSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let context = match &args.context {
        Some(c) => c.clone(),
        None => pool
            .current_context()
            .context("no --context given and the kubeconfig has no current-context")?,
    };
    if pool.context(&context).is_none() {
        let known: Vec<String> = pool.contexts().into_iter().map(|c| c.name).collect();
        bail!(
            "there is no context named \"{context}\"; known contexts: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| pool.default_namespace(&context));
    let spread = match (args.spread, args.affinity) {
        (false, _) => Spread::Single,
        (true, true) => Spread::ClientAffinity,
        (true, false) => Spread::FollowService,
    };
    Ok(TunnelSpec {
        context,
        namespace,
        target,
        ports,
        bind: ListenAddress::to_bind(&args.addresses),
        spread,
        alias: None,
        note: None,
    })
}

pub fn run(args: ForwardArgs) -> anyhow::Result<ExitCode> {
    let pool = ClientPool::from_env()?;
    let spec = spec_from(&args, &pool)?;
    if args.detach {
        return super::remote::runtime()?.block_on(detach(spec));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(forward(pool, spec))
}

async fn forward(pool: ClientPool, spec: TunnelSpec) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool),
        EngineOptions::default(),
    );
    let mut events = engine.events();
    let label = spec.target.to_kubectl();
    let id = engine.start(spec);
    let first = engine
        .wait_for(id, Duration::from_secs(60), |s| {
            s.state != TunnelState::Starting
        })
        .await;
    let snapshot = match first {
        Ok(s) => s,
        Err(last) => {
            engine.shutdown().await;
            let why = last
                .and_then(|s| s.detail)
                .unwrap_or_else(|| "no answer".into());
            bail!("the tunnel to {label} did not start within 60 s: {why}");
        }
    };
    // A typo (no such service, pod, deployment, namespace or port name) is an error here, as
    // in kubectl; a saved profile in a running instance keeps waiting for it instead.
    if snapshot.state == TunnelState::Failed || snapshot.reason == Some(Reason::NotFound) {
        engine.shutdown().await;
        bail!(
            "{}",
            snapshot
                .detail
                .unwrap_or_else(|| "the tunnel failed".into())
        );
    }
    print_forwarding(&snapshot);
    let mut printer = Printer::new(label);
    let code = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
            event = events.recv() => match event {
                Ok(event) if event.tunnel == id => {
                    if let Some(code) = printer.event(&event) {
                        break code;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break ExitCode::FAILURE,
            },
        }
    };
    engine.shutdown().await;
    Ok(code)
}

/// How long `--detach` waits for the tunnel to become Active or fail.
const DETACH_WAIT: Duration = Duration::from_secs(60);

/// `--detach`: add the tunnel to the instance, wait until it is Active or Failed.
async fn detach(spec: TunnelSpec) -> anyhow::Result<ExitCode> {
    use ferry_core::instance::api::{Request, Response};
    let mut client = super::remote::connect_or_start_daemon().await?;
    let label = spec.target.to_kubectl();
    let id = match super::remote::ask(
        &mut client,
        Request::AddTunnel {
            spec,
            profile: None,
        },
    )
    .await?
    {
        Ok(Response::TunnelAdded { id }) => id,
        Ok(other) => bail!("unexpected answer to add-tunnel: {other:?}"),
        Err(code) => return Ok(code),
    };
    let wait = Request::WaitTunnel {
        id,
        timeout_ms: DETACH_WAIT.as_millis() as u64,
    };
    let snapshot = match super::remote::ask(&mut client, wait).await? {
        Ok(Response::Tunnel(snapshot)) => *snapshot,
        Ok(other) => bail!("unexpected answer to wait-tunnel: {other:?}"),
        Err(code) => return Ok(code),
    };
    match snapshot.state {
        TunnelState::Active => {
            print_forwarding(&snapshot);
            println!(
                "tunnel {id} runs in the Ferry instance (pid {}); see `ferry status`",
                client.instance().pid
            );
            Ok(ExitCode::SUCCESS)
        }
        _ if snapshot.state == TunnelState::Failed || snapshot.reason == Some(Reason::NotFound) => {
            // A typo is an error here, as in kubectl and the foreground `ferry forward`; a
            // failed ad hoc tunnel would only clutter the instance: take it away again.
            let _ = client
                .request(Request::RemoveTunnels { ids: vec![id] })
                .await;
            eprintln!(
                "error: {label}: {}",
                snapshot.detail.as_deref().unwrap_or("the tunnel failed")
            );
            Ok(ExitCode::FAILURE)
        }
        state => {
            eprintln!(
                "error: {label} is still {state} after {} s ({}); it keeps trying in the Ferry instance, see `ferry status`",
                DETACH_WAIT.as_secs(),
                snapshot.detail.as_deref().unwrap_or("no detail")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// kubectl's "Forwarding from 127.0.0.1:8888 -> 8080" lines, with where the bytes go.
fn print_forwarding(snapshot: &TunnelSnapshot) {
    let target = snapshot.spec.target.to_kubectl();
    let towards = match snapshot.pods.as_slice() {
        [] => snapshot
            .detail
            .clone()
            .unwrap_or_else(|| "waiting for a ready pod".into()),
        [one] => format!("pod {one}"),
        many => format!("pods {}", many.join(", ")),
    };
    for port in &snapshot.ports {
        let remote = port
            .remote
            .map(|r| r.to_string())
            .unwrap_or_else(|| port.spec.clone());
        for local in &port.local {
            println!("Forwarding from {local} -> {remote} ({target} → {towards})");
        }
    }
}

/// Ferry's own sentences for the events of the one tunnel: one line per state change, pod
/// switch or warning. Retries are not printed (the state says "waiting" until they succeed),
/// and a connection failure is printed only when its message differs from the last one, so a
/// fault does not flood the terminal.
struct Printer {
    label: String,
    last_failure: Option<String>,
}

impl Printer {
    fn new(label: String) -> Self {
        Self {
            label,
            last_failure: None,
        }
    }

    /// Print the event if it is worth a line; `Some(code)` when the tunnel has ended for good.
    fn event(&mut self, event: &TunnelEvent) -> Option<ExitCode> {
        let label = &self.label;
        match &event.kind {
            EventKind::StateChanged {
                to: TunnelState::Failed,
                detail,
                ..
            } => {
                eprintln!(
                    "error: {label}: {}",
                    detail.as_deref().unwrap_or("the tunnel failed")
                );
                return Some(ExitCode::FAILURE);
            }
            EventKind::StateChanged {
                from,
                to: TunnelState::Active,
                ..
            } => {
                self.last_failure = None;
                if *from != TunnelState::Starting {
                    println!("{label}: recovered, forwarding again");
                }
            }
            EventKind::StateChanged { to, detail, .. } => match detail {
                Some(detail) => println!("{label}: {to}: {detail}"),
                None => println!("{label}: {to}"),
            },
            EventKind::ConnectionFailed { message, .. } => {
                if self.last_failure.as_deref() != Some(message.as_str()) {
                    eprintln!("{label}: {}", event.kind);
                    self.last_failure = Some(message.clone());
                }
            }
            EventKind::Warning { .. } => eprintln!("{label}: {}", event.kind),
            EventKind::Listening { .. } | EventKind::Reconnecting { .. } => {}
            other => println!("{label}: {other}"),
        }
        None
    }
}
