//! The async side of the app: a tokio runtime on its own thread (egui keeps the main thread),
//! where the engine, the catalog and, in demo mode, kubesim live. The UI talks to it only
//! through [`Request`]s and reads back an immutable [`Model`] plus one-shot [`Notice`]s; it
//! never waits on it. Every change ends with `ctx.request_repaint()`, so the window repaints on
//! events only and sleeps while idle.
//!
//! Shutdown: dropping [`Runtime`] (or [`Runtime::shutdown`]) closes the request channel; the
//! backend stops its tunnels and the thread is joined.

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
        lines: Result<Vec<String>, String>,
    },
    /// The runtime chose the initial context and namespace (kubeconfig current-context).
    Scope {
        context: String,
        namespace: String,
    },
}

/// The UI's handle to the runtime thread.
pub struct Runtime {
    requests: mpsc::UnboundedSender<Request>,
    model: watch::Receiver<Arc<Model>>,
    notices: std_mpsc::Receiver<Notice>,
    thread: Option<JoinHandle<()>>,
}

/// The runtime thread's way back to the UI: publish a model, send a notice, wake the window.
#[derive(Clone)]
pub struct Publisher {
    model: Arc<watch::Sender<Arc<Model>>>,
    notices: std_mpsc::Sender<Notice>,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Publisher {
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
    /// Starts the runtime thread for `source`; `repaint` wakes the window (egui:
    /// `ctx.request_repaint()`).
    pub fn start(startup: Startup, repaint: Arc<dyn Fn() + Send + Sync>) -> anyhow::Result<Self> {
        let (requests, rx) = mpsc::unbounded_channel();
        let (model_tx, model) = watch::channel(Arc::new(Model::default()));
        let (notice_tx, notices) = std_mpsc::channel();
        let publisher = Publisher {
            model: Arc::new(model_tx),
            notices: notice_tx,
            repaint,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-async")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("ferry-runtime".into())
            .spawn(move || {
                runtime.block_on(super::backend::run(startup, rx, publisher));
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;
        Ok(Runtime {
            requests,
            model,
            notices,
            thread: Some(thread),
        })
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
                thread: None,
            },
            rx,
        )
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

    /// Stops the backend (tunnels close) and joins the thread.
    pub fn shutdown(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.requests, closed));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the runtime thread panicked while shutting down");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
