//! The process that runs an instance: `ferry` (window open at start), `ferry --demo` (its own
//! instance on the built-in cluster) and `ferry daemon` (no window until a client asks for one).
//!
//! The instance lives on a tokio runtime whose worker threads are its own; the main thread
//! belongs to the window, because winit wants it. The window is a view that comes and goes:
//! eframe's `run_and_return` hands the main thread back when the window closes (its GL
//! resources freed), and a later [`Request::ShowWindow`] from a client (a second `ferry`
//! launch, the tray) runs it again in the same process. Closing the window keeps the instance
//! running while it has tunnels that serve, or when it was started as a daemon; otherwise it
//! ends with the window. SIGTERM, Ctrl-C or a `quit` request stop everything within 2 s.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use ferry_core::engine::EngineOptions;
use ferry_core::instance::api::{ErrorKind, Request, Response};
use ferry_core::instance::assemble::{self, KubeconfigChoice, Setup};
use ferry_core::instance::log_file::{self, LogFile};
use ferry_core::instance::server::{self, BindError, Server};
use ferry_core::instance::{Flavor, Instance, paths};

use crate::ui::{self, model::SourceState};

/// How long stopping may take before the process exits anyway.
pub const STOP_LIMIT: Duration = Duration::from_millis(1500);

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct HostOptions {
    pub flavor: Flavor,
    /// Open the window at start (`ferry`), or not (`ferry daemon`).
    pub window: bool,
    pub verbose: u8,
}

/// What the main thread is asked to do.
enum Call {
    Show,
    Quit,
}

/// The instance as the window (and whatever opens it) sees it.
pub struct Host {
    pub instance: Instance,
    pub runtime: tokio::runtime::Handle,
    /// What the kubeconfig turned out to be, or the demo's kubeconfig.
    pub source: SourceState,
    /// Set while a window is open, to raise it instead of opening a second one.
    open_window: Mutex<Option<egui::Context>>,
    /// Set by [`Request::HideWindow`]: the window is closing, and the instance stays.
    hiding: AtomicBool,
    /// Set from just before the window is made until it has closed: a Show meanwhile needs no
    /// new window.
    window_live: AtomicBool,
    /// Whether a tray host shows Ferry's tray item (set once the tray runs).
    tray_host: std::sync::OnceLock<Arc<AtomicBool>>,
    /// The settings file (closing, notifications, launch at login).
    pub settings: Option<std::path::PathBuf>,
}

impl Host {
    /// Records the open window's context (or that it closed).
    pub fn window_opened(&self, ctx: Option<egui::Context>) {
        *self.open_window.lock().unwrap_or_else(|p| p.into_inner()) = ctx;
    }

    /// Whether closing the window leaves Ferry visible in a tray.
    pub fn tray_shown(&self) -> bool {
        self.tray_host
            .get()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Whether the window is closing because a client asked ([`Request::HideWindow`]).
    pub fn hiding(&self) -> bool {
        self.hiding.load(Ordering::SeqCst)
    }

    /// The current settings (defaults when there is no settings file or it is broken).
    pub fn settings(&self) -> ferry_core::settings::Settings {
        self.settings
            .as_deref()
            .and_then(|p| ferry_core::settings::load(p).ok())
            .unwrap_or_default()
    }

    fn open_window(&self) -> Option<egui::Context> {
        self.open_window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Runs an instance until it is told to stop.
pub fn run(options: HostOptions) -> anyhow::Result<ExitCode> {
    let log = open_log(options.flavor);
    init_tracing(options.verbose, log.as_ref());
    #[cfg(unix)]
    match ferry_core::instance::raise_open_files_limit() {
        Ok(limit) => tracing::debug!("open files limit: {limit}"),
        Err(e) => tracing::warn!("could not raise the open files limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferry-async")
        .build()
        .context("could not start the async runtime")?;
    let bound = match server::bind(options.flavor) {
        Ok(bound) => bound,
        Err(BindError::AlreadyRunning { socket, pid }) => {
            return runtime.block_on(already_running(options, socket, pid));
        }
        Err(e) => return Err(e.into()),
    };
    let (calls, called) = std_mpsc::channel();
    let host = runtime.block_on(start(options, log.as_ref()))?;
    let host = Arc::new(host);
    let socket = bound.socket().to_path_buf();
    let server = {
        let _entered = runtime.enter();
        Server::start(host.instance.clone(), bound).context("could not serve the control socket")?
    };
    tracing::info!(
        "Ferry instance (pid {}) listening on {}",
        std::process::id(),
        socket.display()
    );
    if !options.window {
        eprintln!(
            "Ferry daemon running (pid {}); control socket {}{}",
            std::process::id(),
            socket.display(),
            log.as_ref()
                .map(|l| format!("; log {}", l.path().display()))
                .unwrap_or_default()
        );
    }
    if has_display() {
        host.instance.set_window(Some(Arc::new(HostWindow {
            host: host.clone(),
            calls: Mutex::new(calls.clone()),
        })));
    }
    runtime.spawn(stop_on_signal(host.clone(), calls));
    #[cfg(target_os = "linux")]
    let tray = start_desktop_parts(&runtime, &host);

    run_windows(&host, options, &called);

    tracing::info!("stopping");
    host.instance.set_window(None);
    let instance = host.instance.clone();
    let stopped = runtime.block_on(async move {
        let stopping = async {
            #[cfg(target_os = "linux")]
            if let Some(tray) = tray {
                tray.stop().await;
            }
            server.close().await;
            instance.shutdown(STOP_LIMIT).await;
        };
        tokio::time::timeout(STOP_LIMIT, stopping).await.is_ok()
    });
    if !stopped {
        tracing::warn!("stopping took longer than {STOP_LIMIT:?}; exiting anyway");
    }
    tracing::info!("stopped");
    runtime.shutdown_timeout(Duration::from_millis(300));
    Ok(ExitCode::SUCCESS)
}

/// The tray item, notifications and the launch-at-login entry (Linux desktops).
#[cfg(target_os = "linux")]
fn start_desktop_parts(
    runtime: &tokio::runtime::Runtime,
    host: &Arc<Host>,
) -> Option<crate::tray::Tray> {
    let settings = host.settings();
    if let (Some(dir), Ok(exe)) = (crate::autostart::default_dir(), std::env::current_exe())
        && !host.instance.info().demo
        && let Err(e) = crate::autostart::apply(&dir, settings.launch_at_login, &exe)
    {
        tracing::warn!("launch at login: {e}");
    }
    runtime.spawn(crate::notices::run(
        host.instance.clone(),
        host.settings.clone(),
    ));
    match runtime.block_on(crate::tray::Tray::start(host.instance.clone())) {
        Ok(tray) => {
            let _ = host.tray_host.set(tray.host_flag());
            Some(tray)
        }
        Err(e) => {
            tracing::warn!("no tray icon: {e}");
            None
        }
    }
}

/// Builds the instance: the demo cluster for [`Flavor::Demo`], else the user's kubeconfig.
async fn start(options: HostOptions, log: Option<&LogFile>) -> anyhow::Result<Host> {
    let demo = options.flavor == Flavor::Demo;
    let assembled = assemble::assemble(Setup {
        kubeconfig: if demo {
            KubeconfigChoice::Nothing
        } else {
            KubeconfigChoice::Env
        },
        profiles_dir: None,
        flavor: options.flavor,
        log_file: log.map(LogFile::path),
        engine: EngineOptions::default(),
        // The demo has none of the user's contexts: their autostart profiles would only fail.
        autostart: !demo,
    })
    .await;
    let source = if demo {
        match crate::demo::start_into(&assembled.instance).await {
            Ok(kubeconfig) => SourceState::Demo {
                kubeconfig: kubeconfig.display().to_string(),
            },
            Err(e) => SourceState::Broken {
                path: "the demo cluster".into(),
                reason: format!("{e:#}"),
            },
        }
    } else {
        ui::source_state(assembled.kubeconfig)
    };
    Ok(Host {
        instance: assembled.instance,
        runtime: tokio::runtime::Handle::current(),
        source,
        open_window: Mutex::new(None),
        hiding: AtomicBool::new(false),
        window_live: AtomicBool::new(false),
        tray_host: std::sync::OnceLock::new(),
        settings: ferry_core::settings::default_path()
            .map_err(|e| tracing::warn!("settings: {e}"))
            .ok(),
    })
}

/// Another instance of this flavour runs: a window launch asks it to show its window.
async fn already_running(
    options: HostOptions,
    socket: std::path::PathBuf,
    pid: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    if !options.window {
        eprintln!(
            "error: another Ferry instance is already running{pid} (socket {}); see it with `ferry status`",
            socket.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut client = ferry_core::instance::client::Client::connect_at(&socket)
        .await
        .with_context(|| format!("Ferry is already running{pid} but does not answer"))?;
    match client.request(Request::ShowWindow).await? {
        Response::Ok => {
            eprintln!("Ferry is already running{pid}: showing its window");
            Ok(ExitCode::SUCCESS)
        }
        Response::Error(e) if e.kind == ErrorKind::Unsupported || e.kind == ErrorKind::Failed => {
            eprintln!("error: Ferry is already running{pid} but cannot show a window: {e}");
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("unexpected answer to show-window: {other:?}"),
    }
}

/// What [`Request::ShowWindow`] and [`Request::HideWindow`] reach.
struct HostWindow {
    host: Arc<Host>,
    calls: Mutex<std_mpsc::Sender<Call>>,
}

impl ferry_core::instance::WindowControl for HostWindow {
    fn show(&self) -> Result<(), String> {
        if let Some(ctx) = self.host.open_window() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
            ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
            ctx.request_repaint();
            return Ok(());
        }
        if self.host.window_live.load(Ordering::SeqCst) {
            return Ok(()); // being made right now
        }
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Call::Show)
            .map_err(|_| "Ferry is shutting down".to_string())
    }

    fn hide(&self) -> Result<(), String> {
        if let Some(ctx) = self.host.open_window() {
            self.host.hiding.store(true, Ordering::SeqCst);
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            ctx.request_repaint();
        }
        Ok(())
    }

    fn is_open(&self) -> bool {
        self.host.open_window().is_some()
    }
}

fn has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Ends the main thread's loop (closing an open window) on SIGTERM, Ctrl-C or `quit`.
async fn stop_on_signal(host: Arc<Host>, calls: std_mpsc::Sender<Call>) {
    let reason = wait_for_stop(&host.instance).await;
    tracing::info!("stop requested ({reason})");
    host.instance.quit();
    let _ = calls.send(Call::Quit);
    if let Some(ctx) = host.open_window() {
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        ctx.request_repaint();
    }
}

/// The main thread: open the window when asked, until the instance is to stop.
fn run_windows(host: &Arc<Host>, options: HostOptions, called: &std_mpsc::Receiver<Call>) {
    let quitting = host.instance.quitting();
    let mut show = options.window;
    loop {
        if show && !quitting.is_cancelled() {
            host.window_live.store(true, Ordering::SeqCst);
            let opened = ui::open_window(host.clone());
            host.window_live.store(false, Ordering::SeqCst);
            if let Err(e) = opened {
                tracing::error!("{e:#}");
                eprintln!("error: {e:#}");
                if options.window && host.instance.engine().list().is_empty() {
                    return;
                }
            }
            ferry_core::instance::release_free_memory();
            // While the window was live, Show raised it without queueing anything; a Show
            // queued now came after it closed (a second launch racing the close): open again.
            let mut show_again = false;
            while let Ok(call) = called.try_recv() {
                match call {
                    Call::Quit => return,
                    Call::Show => show_again = true,
                }
            }
            if quitting.is_cancelled() {
                return;
            }
            if show_again {
                host.hiding.store(false, Ordering::SeqCst);
                continue;
            }
            let serving = host
                .instance
                .engine()
                .list()
                .iter()
                .filter(|t| t.state.can_serve())
                .count();
            let hidden = host.hiding.swap(false, Ordering::SeqCst);
            if !hidden && (options.flavor == Flavor::Demo || (options.window && serving == 0)) {
                return;
            }
            let message = format!(
                "The window is closed; Ferry keeps {serving} tunnel(s) running in the background. `ferry` shows the window again, `ferry status` lists the tunnels, `ferry quit` stops everything."
            );
            tracing::info!("{message}");
            if !hidden {
                eprintln!("{message}");
                #[cfg(target_os = "linux")]
                tell_once_about_tray(host, serving);
            }
        }
        match called.recv() {
            Ok(Call::Show) => show = true,
            Ok(Call::Quit) | Err(_) => return,
        }
    }
}

/// The first time the window closes with tunnels running and a tray to go to, a
/// notification says where Ferry went.
#[cfg(target_os = "linux")]
fn tell_once_about_tray(host: &Arc<Host>, serving: usize) {
    let Some(path) = host.settings.clone() else {
        return;
    };
    if !host.tray_shown() {
        return;
    }
    let mut settings = host.settings();
    if settings.told_about_tray {
        return;
    }
    settings.told_about_tray = true;
    if let Err(e) = ferry_core::settings::save(&path, &settings) {
        tracing::warn!("settings: {e}");
        return;
    }
    host.runtime.spawn(async move {
        crate::notices::show(&crate::notices::Notice {
            summary: "Ferry keeps forwarding".into(),
            body: format!(
                "{serving} tunnel(s) keep running with the window closed. Ferry is in the tray: open the window or quit from there."
            ),
            failure: false,
        })
        .await;
    });
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

/// Logs to stderr (warnings, more with `-v`) and, at info level or more, to the log file.
pub fn init_tracing(verbose: u8, log: Option<&LogFile>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, fmt};
    let stderr_level = match verbose {
        0 => "off,ferry=warn,ferry_core=warn",
        1 => "info,ferry=debug,ferry_core=debug",
        _ => "debug",
    };
    let stderr_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(stderr_level));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(stderr_filter);
    let file = log.map(|log| {
        let level = if verbose > 0 {
            stderr_level
        } else {
            "warn,ferry=info,ferry_core=info,ferry::startup=info"
        };
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
