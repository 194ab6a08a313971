//! The window's handle to the async side: a backend task on the instance's tokio runtime (egui
//! keeps the main thread) that owns the window's catalog, its profile edits and its log
//! fetches, and reads the instance's tunnels. The UI talks to it only through [`Request`]s and
//! reads back an immutable [`Model`] plus one-shot [`Notice`]s; it never waits on it. Every
//! change ends with `ctx.request_repaint()`, so the window repaints on events only and sleeps
//! while idle.
//!
//! Shutdown: dropping [`Runtime`] (or [`Runtime::shutdown`]) closes the request channel and
//! ends the backend. The instance's tunnels keep running ([`Runtime::attach`]) unless the
//! runtime owns a private instance ([`Runtime::start`], for tests), which then stops too.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use ferry_core::spec::TunnelSpec;
use tokio::sync::{mpsc, watch};

use super::model::Model;
use super::theme::Tone;

/// Where the contexts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// What kubectl would read: `$KUBECONFIG`, else `~/.kube/config`.
    Env,
    /// These kubeconfig files (tests).
    Paths(Vec<PathBuf>),
    /// The built-in demo cluster, started in this process.
    Demo,
}

/// How the runtime starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Startup {
    pub source: Source,
    /// Where the profile file lives; `None` is the user's config directory (or
    /// `$FERRY_CONFIG_DIR`). Tests pass a temporary directory.
    pub profiles_dir: Option<PathBuf>,
}

/// What the UI asks of the runtime. Never answered synchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Show this context and namespace (None: the context's default namespace).
    Scope {
        context: String,
        namespace: Option<String>,
    },
    StartTunnel {
        spec: TunnelSpec,
        save_to_profile: Option<String>,
    },
    StartTunnels(Vec<String>),
    StopTunnels(Vec<String>),
    RestartTunnels(Vec<String>),
    RemoveTunnels(Vec<String>),
    CheckPort {
        bind: IpAddr,
        port: u16,
    },
    NextFreePort {
        index: usize,
        bind: IpAddr,
        from: u16,
    },
    Logs {
        context: String,
        namespace: String,
        pod: String,
        container: Option<String>,
    },
    /// Open a shell in the instance (it shows up in the model's terminals).
    OpenShell {
        target: ferry_core::exec::ShellTarget,
        size: ferry_core::exec::TermSize,
    },
    CloseTerminal(ferry_core::exec::TerminalId),
    /// Run one command (no stdin, no TTY); its output and end come as notices.
    RunCommand {
        run: u64,
        request: ferry_core::exec::ExecRequest,
    },
    CancelRun(u64),
    /// Ask where to save a command's output, then write it there.
    SaveOutput {
        file_name: String,
        bytes: Arc<Vec<u8>>,
    },
    StartProfile(String),
    StopProfile(String),
    SaveProfile {
        name: String,
        tunnels: Vec<TunnelSpec>,
        autostart: bool,
    },
    RenameProfile {
        from: String,
        to: String,
    },
    DeleteProfile(String),
    ImportProfiles,
    ExportProfiles,
    RestoreProfilesBackup,
    StartDemo,
    /// End the instance: every tunnel stops and the window closes.
    Quit,
    SaveSettings(ferry_core::settings::Settings),
}

/// One-shot news from the runtime, drained by the UI once per frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A line for the event log; `toast` also shows it as a toast.
    Event {
        tone: Tone,
        text: String,
        toast: bool,
    },
    PortChecked {
        bind: IpAddr,
        port: u16,
        free: bool,
    },
    NextFreePort {
        index: usize,
        port: Option<u16>,
    },
    Logs {
        pod: String,
        container: Option<String>,
        lines: Result<Vec<String>, String>,
    },
    /// Output of a one-shot command.
    RunOutput {
        run: u64,
        stderr: bool,
        data: bytes::Bytes,
    },
    /// A one-shot command ended: its exit code, or why it did not run; and how long it took.
    RunEnded {
        run: u64,
        result: Result<i32, String>,
        took: std::time::Duration,
    },
    /// The runtime chose the initial context and namespace (kubeconfig current-context).
    Scope {
        context: String,
        namespace: String,
    },
}

/// The UI's handle to the backend.
pub struct Runtime {
    requests: mpsc::UnboundedSender<Request>,
    model: watch::Receiver<Arc<Model>>,
    notices: std_mpsc::Receiver<Notice>,
    ends: Ends,
    /// The attached instance's quit signal.
    quitting: Option<tokio_util::sync::CancellationToken>,
    /// The host, for what closing the window should do (tray shown, asked by a client).
    host: Option<Arc<crate::host::Host>>,
}

/// What [`Runtime::shutdown`] waits for.
enum Ends {
    /// Nothing to wait for ([`Runtime::fixed`]).
    Nothing,
    /// A private instance on its own thread ([`Runtime::start`]).
    Thread(JoinHandle<()>),
    /// A backend task on the host's runtime ([`Runtime::attach`]).
    Task(tokio::runtime::Handle, tokio::task::JoinHandle<()>),
}

/// The runtime thread's way back to the UI: publish a model, send a notice, wake the window.
#[derive(Clone)]
pub struct Publisher {
    model: Arc<watch::Sender<Arc<Model>>>,
    notices: std_mpsc::Sender<Notice>,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Publisher {
    /// A publisher and the receiving ends the [`Runtime`] keeps.
    fn new(
        repaint: Arc<dyn Fn() + Send + Sync>,
    ) -> (
        Self,
        watch::Receiver<Arc<Model>>,
        std_mpsc::Receiver<Notice>,
    ) {
        let (model_tx, model) = watch::channel(Arc::new(Model::default()));
        let (notices_tx, notices) = std_mpsc::channel();
        let publisher = Publisher {
            model: Arc::new(model_tx),
            notices: notices_tx,
            repaint,
        };
        (publisher, model, notices)
    }

    /// Replaces the model (edited from the current one) and wakes the window.
    pub fn update(&self, edit: impl FnOnce(&mut Model)) {
        self.model.send_modify(|m| edit(Arc::make_mut(m)));
        (self.repaint)();
    }

    /// Sends a one-shot notice and wakes the window.
    pub fn notice(&self, notice: Notice) {
        let _ = self.notices.send(notice);
        (self.repaint)();
    }

    /// A line in the event log (and a toast for errors).
    pub fn event(&self, tone: Tone, text: impl Into<String>) {
        self.notice(Notice::Event {
            tone,
            toast: tone == Tone::Bad,
            text: text.into(),
        });
    }

    /// Wakes the window without changing anything (e.g. after a tunnel snapshot).
    pub fn repaint(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.repaint.clone()
    }
}

impl Runtime {
    /// A window on a private instance of its own (no control socket) built from `startup`,
    /// on a tokio runtime thread of its own: the UI tests' way to run the real app. `repaint`
    /// wakes the window (egui: `ctx.request_repaint()`).
    pub fn start(startup: Startup, repaint: Arc<dyn Fn() + Send + Sync>) -> anyhow::Result<Self> {
        let (requests, rx) = mpsc::unbounded_channel();
        let (publisher, model, notices) = Publisher::new(repaint);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-async")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("ferry-runtime".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (instance, source) = super::backend::private_instance(&startup).await;
                    super::backend::run(
                        instance.clone(),
                        source,
                        startup.profiles_dir,
                        rx,
                        publisher,
                    )
                    .await;
                    instance.shutdown(std::time::Duration::from_secs(2)).await;
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;
        Ok(Runtime {
            requests,
            model,
            notices,
            ends: Ends::Thread(thread),
            quitting: None,
            host: None,
        })
    }

    /// A window on the host's instance: its tunnels outlive the window.
    pub fn attach(host: &Arc<crate::host::Host>, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let (publisher, model, notices) = Publisher::new(repaint);
        let task = host.runtime.spawn(super::backend::run(
            host.instance.clone(),
            host.source.clone(),
            None,
            rx,
            publisher,
        ));
        Runtime {
            requests,
            model,
            notices,
            ends: Ends::Task(host.runtime.clone(), task),
            quitting: Some(host.instance.quitting()),
            host: Some(host.clone()),
        }
    }

    /// A runtime with no thread that always shows `model`; requests are handed to the caller
    /// (UI tests and the frame-time benchmark).
    pub fn fixed(model: Model) -> (Self, mpsc::UnboundedReceiver<Request>) {
        let (requests, rx) = mpsc::unbounded_channel();
        let (_, model) = watch::channel(Arc::new(model));
        let (_notice_tx, notices) = std_mpsc::channel();
        (
            Runtime {
                requests,
                model,
                notices,
                ends: Ends::Nothing,
                quitting: None,
                host: None,
            },
            rx,
        )
    }

    /// Whether the host's instance is ending, so the window must close.
    pub fn instance_quitting(&self) -> bool {
        self.quitting.as_ref().is_some_and(|q| q.is_cancelled())
    }

    /// Whether a tray host shows Ferry (so closing the window leaves it findable).
    pub fn tray_shown(&self) -> bool {
        self.host.as_ref().is_some_and(|h| h.tray_shown())
    }

    /// Whether the window is closing because a client (the tray, the CLI) asked.
    pub fn closing_by_request(&self) -> bool {
        self.host.as_ref().is_some_and(|h| h.hiding())
    }

    /// The current model (cheap: an `Arc` clone).
    pub fn model(&self) -> Arc<Model> {
        self.model.borrow().clone()
    }

    /// Asks the runtime for something; the answer arrives as a model change or a notice.
    pub fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::warn!("the runtime thread has stopped; request dropped");
        }
    }

    /// Notices that arrived since the last call.
    pub fn drain(&self) -> Vec<Notice> {
        self.notices.try_iter().collect()
    }

    /// Ends the backend (and a private instance with its tunnels) and waits for it.
    pub fn shutdown(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.requests, closed));
        match std::mem::replace(&mut self.ends, Ends::Nothing) {
            Ends::Nothing => {}
            Ends::Thread(thread) => {
                if thread.join().is_err() {
                    tracing::error!("the runtime thread panicked while shutting down");
                }
            }
            Ends::Task(runtime, task) => {
                let waited = runtime.block_on(async move {
                    tokio::time::timeout(std::time::Duration::from_secs(2), task).await
                });
                if !matches!(waited, Ok(Ok(()))) {
                    tracing::warn!("the window's backend did not end cleanly");
                }
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
