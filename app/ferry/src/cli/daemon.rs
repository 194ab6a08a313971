//! `ferry daemon`: the instance with no window. It serves the control socket, starts the
//! autostart profiles, keeps a log file (named by `ferry status`), and stops cleanly — every
//! listener and WebSocket closed — on SIGTERM, Ctrl-C or a `quit` request, within 2 s.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_core::engine::{ClientSource, EngineOptions, FixedClients};
use ferry_core::instance::api::{Request, Response};
use ferry_core::instance::log_file::{self, LogFile};
use ferry_core::instance::server::{self, BindError, Server};
use ferry_core::instance::{Flavor, Instance, InstanceParts, paths};
use ferry_core::profiles::{ProfileStore, WithInAppClusters};

/// Run the Ferry instance without a window (tunnels keep running until it is stopped).
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {}

/// How long stopping may take before the process exits anyway.
pub const STOP_LIMIT: Duration = Duration::from_millis(1500);

pub fn run(_args: DaemonArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let log = open_log(Flavor::Real);
    init_tracing(verbose, log.as_ref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-daemon")
        .build()
        .context("could not start the async runtime")?;
    let code = runtime.block_on(daemon(log));
    runtime.shutdown_timeout(Duration::from_millis(300));
    code
}

/// The instance's log file, or `None` (said on stderr) when it cannot be opened.
pub fn open_log(flavor: Flavor) -> Option<LogFile> {
    let path = match paths::log_path(flavor) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("warning: no log file: {e}");
            return None;
        }
    };
    match LogFile::open(&path, log_file::DEFAULT_LIMIT) {
        Ok(log) => Some(log),
        Err(e) => {
            eprintln!("warning: cannot open the log file {}: {e}", path.display());
            None
        }
    }
}

/// Logs to stderr (as every command does) and, at info level or more, to the log file.
pub fn init_tracing(verbose: u8, log: Option<&LogFile>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, fmt};
    let stderr_level = match verbose {
        0 => "warn",
        1 => "info,ferry=debug,ferry_core=debug",
        _ => "debug",
    };
    let stderr_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(stderr_level));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(stderr_filter);
    let file = log.map(|log| {
        let level = if verbose > 0 { stderr_level } else { "info" };
        fmt::layer()
            .with_ansi(false)
            .with_writer(log.writer())
            .with_filter(EnvFilter::new(level))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// The one client source: the kubeconfig's contexts plus the clusters added in Ferry (their
/// tokens read from the OS keyring now). Without a usable kubeconfig, only in-app clusters.
pub fn clients(store: Option<&ProfileStore>) -> Arc<dyn ClientSource> {
    let kubeconfig: Arc<dyn ClientSource> = match ferry_core::clients::ClientPool::from_env() {
        Ok(pool) => Arc::new(pool),
        Err(e) => {
            tracing::warn!(
                "the kubeconfig is not usable ({e}); only clusters added in Ferry are available"
            );
            Arc::new(FixedClients::new())
        }
    };
    match store {
        Some(store) if !store.clusters().is_empty() => {
            Arc::new(WithInAppClusters::new(kubeconfig, store))
        }
        _ => kubeconfig,
    }
}

/// Opens the profile store as the instance does for each request.
pub fn open_store() -> Result<ProfileStore, String> {
    ProfileStore::open_default().map_err(|e| e.to_string())
}

async fn daemon(log: Option<LogFile>) -> anyhow::Result<ExitCode> {
    let bound = match server::bind(Flavor::Real) {
        Ok(bound) => bound,
        Err(e @ BindError::AlreadyRunning { .. }) => {
            eprintln!("error: {e}; see it with `ferry status`");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let store = tokio::task::spawn_blocking(open_store).await?;
    if let Err(e) = &store {
        tracing::warn!("profiles: {e}");
    }
    let instance = Instance::new(
        &tokio::runtime::Handle::current(),
        InstanceParts {
            clients: clients(store.as_ref().ok()),
            engine: EngineOptions::default(),
            open_store: Arc::new(open_store),
            flavor: Flavor::Real,
            log_file: log.as_ref().map(LogFile::path),
        },
    );
    let socket = bound.socket().to_path_buf();
    let server =
        Server::start(instance.clone(), bound).context("could not serve the control socket")?;
    tracing::info!(
        "ferry daemon (pid {}) listening on {}",
        std::process::id(),
        socket.display()
    );
    eprintln!(
        "Ferry daemon running (pid {}); control socket {}{}",
        std::process::id(),
        socket.display(),
        log.as_ref()
            .map(|l| format!("; log {}", l.path().display()))
            .unwrap_or_default()
    );
    if store
        .as_ref()
        .is_ok_and(|s| s.profiles().iter().any(|p| p.autostart))
        && let Response::Error(e) = instance.handle(Request::Up { profiles: vec![] }).await
    {
        tracing::warn!("autostart: {e}");
    }
    let reason = wait_for_stop(&instance).await;
    tracing::info!("stopping ({reason})");
    let stopping = async {
        server.close().await;
        instance.shutdown(STOP_LIMIT).await;
    };
    if tokio::time::timeout(STOP_LIMIT, stopping).await.is_err() {
        tracing::warn!("stopping took longer than {STOP_LIMIT:?}; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop(instance: &Instance) -> &'static str {
    let quit = instance.quitting();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = quit.cancelled() => "quit request",
            };
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = quit.cancelled() => "quit request",
    }
}
