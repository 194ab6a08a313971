//! `ferry up [NAME...]`: start saved profiles on the running instance (`ferry daemon` or the
//! window) and return; when no instance runs, run them in the foreground until Ctrl-C, one line
//! per state change, and say so.
//!
//! Without names it starts every profile marked `autostart`, like the app does at launch.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ferry_core::clients::ClientPool;
use ferry_core::engine::{
    Engine, EngineOptions, EventKind, Origin, TunnelEvent, TunnelId, TunnelState,
};
use ferry_core::profiles::{InAppClusters, Profile, ProfileStore};
use tokio::sync::broadcast::error::RecvError;

/// Start saved profiles and keep them running until Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Profiles to start (default: every profile marked autostart).
    pub names: Vec<String>,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    if let Some(code) = super::remote::runtime()?.block_on(on_instance(&args))? {
        return Ok(code);
    }
    eprintln!(
        "no Ferry instance is running: running in the foreground until Ctrl-C (`ferry daemon` keeps tunnels running in the background)"
    );
    let store = ProfileStore::open_default()?;
    super::profile::warn_problems(&store);
    let profiles = ferry_core::instance::choose(&store, &args.names)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let pool = kubeconfig(&store)?;
    let in_app = InAppClusters::read(&store);
    runtime.block_on(async {
        for problem in in_app.install(&pool).await {
            eprintln!("warning: {problem}");
        }
        up(pool, profiles).await
    })
}

/// `ferry up` on the running instance; `None` when no instance runs.
async fn on_instance(args: &UpArgs) -> anyhow::Result<Option<ExitCode>> {
    use ferry_core::instance::api::{Request, Response};
    let Some(mut client) = super::remote::connect(ferry_core::instance::Flavor::Real).await? else {
        return Ok(None);
    };
    let request = Request::Up {
        profiles: args.names.clone(),
    };
    match super::remote::ask(&mut client, request).await? {
        Ok(Response::Started {
            started,
            already_running,
        }) => {
            let what = if args.names.is_empty() {
                "the autostart profiles".to_string()
            } else {
                args.names.join(", ")
            };
            println!(
                "started {} tunnel(s) of {what} on the Ferry instance (pid {}){}; see `ferry status`",
                started.len(),
                client.instance().pid,
                if already_running.is_empty() {
                    String::new()
                } else {
                    format!(", {} already running", already_running.len())
                }
            );
            Ok(Some(ExitCode::SUCCESS))
        }
        Ok(other) => bail!("unexpected answer to up: {other:?}"),
        Err(code) => Ok(Some(code)),
    }
}

/// The kubeconfig's contexts (the clusters added in Ferry are added to them). Without a usable
/// kubeconfig, only in-app clusters work.
fn kubeconfig(store: &ProfileStore) -> anyhow::Result<ClientPool> {
    match ClientPool::from_env() {
        Ok(pool) => Ok(pool),
        Err(e) if !store.clusters().is_empty() => {
            eprintln!(
                "note: the kubeconfig is not usable ({e}); only clusters added in Ferry are available"
            );
            Ok(ClientPool::empty())
        }
        Err(e) => Err(e.into()),
    }
}

async fn up(pool: ClientPool, profiles: Vec<Profile>) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool),
        EngineOptions::default(),
    );
    let mut events = engine.events();
    let mut labels: HashMap<TunnelId, String> = HashMap::new();
    for profile in &profiles {
        if profile.tunnels.is_empty() {
            eprintln!("[{}] has no tunnels", profile.name);
        }
        for spec in profile.specs() {
            let name = spec
                .alias
                .clone()
                .unwrap_or_else(|| spec.target.to_kubectl());
            let label = format!("[{}] {name}", profile.name);
            println!("{label}: starting {}", super::profile::describe(spec));
            labels.insert(
                engine.start_from(spec.clone(), Origin::Profile(profile.name.clone())),
                label,
            );
        }
    }
    if labels.is_empty() {
        engine.shutdown().await;
        bail!("the chosen profiles have no tunnels");
    }
    let mut failed = std::collections::HashSet::new();
    let code = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
            event = events.recv() => match event {
                Ok(event) => {
                    let Some(label) = labels.get(&event.tunnel) else { continue };
                    print_event(label, &event);
                    track_failures(&event, &mut failed);
                    if failed.len() == labels.len() {
                        eprintln!("every tunnel has failed; stopping");
                        break ExitCode::FAILURE;
                    }
                }
                Err(RecvError::Lagged(n)) => eprintln!("({n} events not shown: too many at once)"),
                Err(RecvError::Closed) => break ExitCode::FAILURE,
            },
        }
    };
    engine.shutdown().await;
    Ok(code)
}

fn track_failures(event: &TunnelEvent, failed: &mut std::collections::HashSet<TunnelId>) {
    if let EventKind::StateChanged { to, .. } = &event.kind {
        if *to == TunnelState::Failed {
            failed.insert(event.tunnel);
        } else {
            failed.remove(&event.tunnel);
        }
    }
}

/// `Forwarding from ADDR -> SPEC` for listeners (as kubectl prints), one line per other event.
fn print_event(label: &str, event: &TunnelEvent) {
    match &event.kind {
        EventKind::Listening { address, spec } => {
            println!("{label}: Forwarding from {address} -> {spec}")
        }
        EventKind::StateChanged {
            to: TunnelState::Failed,
            ..
        }
        | EventKind::ConnectionFailed { .. }
        | EventKind::Warning { .. } => eprintln!("{label}: {}", event.kind),
        other => println!("{label}: {other}"),
    }
}
