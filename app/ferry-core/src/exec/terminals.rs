//! The instance's interactive shells: each one an exec session with a TTY whose output is
//! parsed by an [`Emulator`] on the instance's runtime, so it goes on while the window is
//! hidden and a frame only paints the latest [`TerminalView`].
//!
//! Data flows one way: a view sends [`Control`]s (keys, paste, resize, scroll, selection,
//! reconnect) through a [`TerminalHandle`] without waiting, the terminal's task applies them
//! and publishes a new [`TerminalView`]; [`Terminals::changes`] ticks so a window knows to
//! repaint. A flood of output (`yes`, `seq 1 2000000`) is parsed in batches, with one view
//! published per batch, and the session's bounded output queue slows the pod when parsing
//! falls behind, so memory stays bounded by the scrollback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::session::{self, Command, ExecRequest, Input, Outcome, Output, Session, TermSize};
use super::terminal::{Emulator, Snapshot};
use crate::clients::ClientPool;

/// Output parsed before a new view is published, at most (bytes, then time).
const BATCH_BYTES: usize = 1024 * 1024;
const BATCH_TIME: Duration = Duration::from_millis(8);

/// Identifies one terminal of the instance.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TerminalId(pub u64);

impl std::fmt::Display for TerminalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Where a shell runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellTarget {
    pub context: String,
    pub namespace: String,
    pub pod: String,
    /// `None`: the container kubectl would pick.
    pub container: Option<String>,
}

/// How a terminal's session is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalStatus {
    Connecting,
    Running,
    /// The shell exited with this code; [`Control::Reconnect`] starts a new one.
    Exited(i32),
    /// It could not start, or broke (in words); [`Control::Reconnect`] tries again.
    Failed(String),
}

impl TerminalStatus {
    pub fn has_ended(&self) -> bool {
        matches!(self, TerminalStatus::Exited(_) | TerminalStatus::Failed(_))
    }
}

/// What a view paints for one terminal.
#[derive(Debug, Clone)]
pub struct TerminalView {
    pub id: TerminalId,
    /// `pod/container (shell)`, the shell being the one that runs (bash, else sh…).
    pub title: String,
    pub status: TerminalStatus,
    pub screen: Snapshot,
    /// The selected text, if something is selected (for copy).
    pub selection: Option<String>,
    /// Counts published views (a view that saw the same number has nothing new to paint).
    pub seq: u64,
}

/// What a view asks of a terminal. Sent without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Bytes typed (already encoded as a terminal would send them). Also scrolls the view
    /// back to the bottom, as terminals do.
    Input(Bytes),
    /// The panel's size in cells changed: the grid is resized and the program told.
    Resize(TermSize),
    /// Scroll the view by lines (positive: back into history).
    Scroll(i32),
    ScrollToBottom,
    /// Start a selection at a viewport cell (row, column).
    SelectStart(usize, usize),
    /// Extend it to this cell (inclusive).
    SelectTo(usize, usize),
    ClearSelection,
    /// After the shell ended: start a new one in the same pod and container.
    Reconnect,
}

/// A view's handle to one terminal: the latest view and a way to send [`Control`]s.
#[derive(Clone)]
pub struct TerminalHandle {
    pub id: TerminalId,
    view: watch::Receiver<Arc<TerminalView>>,
    control: mpsc::UnboundedSender<Control>,
}

impl std::fmt::Debug for TerminalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl PartialEq for TerminalHandle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl TerminalHandle {
    /// The latest view (cheap: an `Arc` clone; never waits for parsing).
    pub fn view(&self) -> Arc<TerminalView> {
        self.view.borrow().clone()
    }

    /// Queues a control; `false` when the terminal was closed.
    pub fn send(&self, control: Control) -> bool {
        self.control.send(control).is_ok()
    }
}

/// The instance's terminals, in the order they were opened. Cheap to clone.
#[derive(Clone)]
pub struct Terminals {
    inner: Arc<Inner>,
}

struct Inner {
    clients: ClientPool,
    runtime: tokio::runtime::Handle,
    open: Mutex<Vec<Open>>,
    next: Mutex<u64>,
    changes: watch::Sender<u64>,
}

struct Open {
    handle: TerminalHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Terminals {
    /// Terminals whose sessions use `clients` and run on `runtime`.
    pub fn new(runtime: &tokio::runtime::Handle, clients: ClientPool) -> Self {
        Terminals {
            inner: Arc::new(Inner {
                clients,
                runtime: runtime.clone(),
                open: Mutex::new(Vec::new()),
                next: Mutex::new(1),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Opens a shell (`bash`, else `sh`, else `/bin/sh`) in `target`, `size` cells large.
    /// Returns at once; the view says how connecting went.
    pub fn open(&self, target: ShellTarget, size: TermSize) -> TerminalHandle {
        let id = {
            let mut next = self.inner.next.lock().unwrap_or_else(|p| p.into_inner());
            let id = TerminalId(*next);
            *next += 1;
            id
        };
        let emulator = Emulator::new(size.cols.into(), size.rows.into());
        let first = TerminalView {
            id,
            title: title(&target, None, None),
            status: TerminalStatus::Connecting,
            screen: emulator.snapshot(),
            selection: None,
            seq: 0,
        };
        let (view_tx, view_rx) = watch::channel(Arc::new(first));
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let handle = TerminalHandle {
            id,
            view: view_rx,
            control: control_tx,
        };
        let worker = Worker {
            clients: self.inner.clients.clone(),
            target,
            emulator,
            controls: control_rx,
            view: view_tx,
            changes: self.inner.changes.clone(),
            status: TerminalStatus::Connecting,
            shell: None,
            container: None,
            seq: 0,
        };
        let task = self.inner.runtime.spawn(worker.run());
        self.lock().push(Open {
            handle: handle.clone(),
            task,
        });
        self.inner.changes.send_modify(|n| *n += 1);
        handle
    }

    /// Every open terminal, oldest first.
    pub fn list(&self) -> Vec<TerminalHandle> {
        self.lock().iter().map(|o| o.handle.clone()).collect()
    }

    /// Closes a terminal: its session ends (the shell gets a hangup) and it leaves the list.
    pub fn close(&self, id: TerminalId) {
        let removed: Vec<Open> = {
            let mut open = self.lock();
            let (gone, kept) = std::mem::take(&mut *open)
                .into_iter()
                .partition(|o| o.handle.id == id);
            *open = kept;
            gone
        };
        if !removed.is_empty() {
            for o in removed {
                o.task.abort();
            }
            self.inner.changes.send_modify(|n| *n += 1);
        }
    }

    /// Closes every terminal (the instance is ending).
    pub fn close_all(&self) {
        for o in std::mem::take(&mut *self.lock()) {
            o.task.abort();
        }
        self.inner.changes.send_modify(|n| *n += 1);
    }

    /// Ticks when a terminal opens, closes or has a new view.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Open>> {
        self.inner.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `pod/container (shell)`, with what is known so far.
fn title(target: &ShellTarget, container: Option<&str>, shell: Option<&str>) -> String {
    let container = container.or(target.container.as_deref());
    let mut t = match container {
        Some(c) => format!("{}/{c}", target.pod),
        None => target.pod.clone(),
    };
    if let Some(shell) = shell {
        t.push_str(&format!(" ({shell})"));
    }
    t
}

/// The task behind one terminal.
struct Worker {
    clients: ClientPool,
    target: ShellTarget,
    emulator: Emulator,
    controls: mpsc::UnboundedReceiver<Control>,
    view: watch::Sender<Arc<TerminalView>>,
    changes: watch::Sender<u64>,
    status: TerminalStatus,
    /// The shell that runs (or ran), and the container it runs in.
    shell: Option<String>,
    container: Option<String>,
    seq: u64,
}

/// What ended a session, from the worker's side.
enum Ended {
    Outcome(Outcome),
    /// The handle (and so the view) is gone.
    Closed,
}

impl Worker {
    async fn run(mut self) {
        loop {
            self.status = TerminalStatus::Connecting;
            self.publish();
            let (cols, rows) = self.emulator.size();
            let request = ExecRequest {
                context: self.target.context.clone(),
                namespace: self.target.namespace.clone(),
                pod: self.target.pod.clone(),
                container: self.target.container.clone(),
                command: Command::Shell,
                stdin: true,
                tty: true,
                size: Some(TermSize {
                    cols: cols as u16,
                    rows: rows as u16,
                }),
            };
            let ended = match session::open(&self.clients, request).await {
                Ok(session) => self.attached(session).await,
                Err(e) => Ended::Outcome(Outcome::Failed(e)),
            };
            match ended {
                Ended::Closed => return,
                Ended::Outcome(Outcome::Exited(code)) => self.status = TerminalStatus::Exited(code),
                Ended::Outcome(Outcome::Failed(e)) => {
                    self.status = TerminalStatus::Failed(e.to_string())
                }
            }
            self.publish();
            if !self.wait_for_reconnect().await {
                return;
            }
        }
    }

    /// Runs one session until it ends.
    async fn attached(&mut self, mut session: Session) -> Ended {
        self.container = Some(session.info.container.name.clone());
        self.status = TerminalStatus::Running;
        // Controls sent while connecting waited in the queue; they are applied now.
        let input = session.input.clone();
        self.shell = session.command.borrow().first().cloned();
        self.publish();
        loop {
            tokio::select! {
                chunk = session.output.recv() => {
                    let Some(chunk) = chunk else { break };
                    self.feed(chunk);
                    // Parse what else is already there before painting once.
                    let started = Instant::now();
                    let mut parsed = 0;
                    let mut open = true;
                    while parsed < BATCH_BYTES && started.elapsed() < BATCH_TIME {
                        match session.output.try_recv() {
                            Ok(chunk) => parsed += self.feed(chunk),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                open = false;
                                break;
                            }
                        }
                    }
                    let replies = self.emulator.take_replies();
                    if !replies.is_empty() {
                        input.send(Input::Data(Bytes::from(replies))).await;
                    }
                    let shell = session.command.borrow().first().cloned();
                    if shell != self.shell {
                        self.shell = shell;
                    }
                    self.publish();
                    if !open {
                        break;
                    }
                }
                control = self.controls.recv() => {
                    let Some(control) = control else { return Ended::Closed };
                    if let Some(sent) = self.apply(control) {
                        input.send(sent).await;
                    }
                    self.publish();
                }
            }
        }
        Ended::Outcome(session.wait().await)
    }

    /// Parses one chunk; returns its length.
    fn feed(&mut self, chunk: Output) -> usize {
        let bytes = match chunk {
            Output::Stdout(b) | Output::Stderr(b) => b,
        };
        self.emulator.feed(&bytes);
        bytes.len()
    }

    /// Applies a control to the grid; returns what to send to the program, if anything.
    fn apply(&mut self, control: Control) -> Option<Input> {
        match control {
            Control::Input(bytes) => {
                self.emulator.scroll_to_bottom();
                self.emulator.clear_selection();
                Some(Input::Data(bytes))
            }
            Control::Resize(size) => {
                if self.emulator.size() == (size.cols.into(), size.rows.into()) {
                    return None;
                }
                self.emulator.resize(size.cols.into(), size.rows.into());
                Some(Input::Resize(size))
            }
            Control::Scroll(lines) => {
                self.emulator.scroll(lines);
                None
            }
            Control::ScrollToBottom => {
                self.emulator.scroll_to_bottom();
                None
            }
            Control::SelectStart(row, col) => {
                self.emulator.select_start(row, col);
                None
            }
            Control::SelectTo(row, col) => {
                self.emulator.select_to(row, col);
                None
            }
            Control::ClearSelection => {
                self.emulator.clear_selection();
                None
            }
            Control::Reconnect => None,
        }
    }

    /// After the session ended: applies controls to the grid until one asks to reconnect.
    /// `false` when the terminal was closed.
    async fn wait_for_reconnect(&mut self) -> bool {
        while let Some(control) = self.controls.recv().await {
            match control {
                Control::Reconnect => {
                    self.emulator.feed(b"\r\n");
                    return true;
                }
                // Typing into an ended session goes nowhere; resizes still reflow the grid.
                Control::Input(_) => {}
                other => {
                    let _ = self.apply(other);
                    self.publish();
                }
            }
        }
        false
    }

    fn publish(&mut self) {
        self.seq += 1;
        let view = TerminalView {
            id: self.view.borrow().id,
            title: title(
                &self.target,
                self.container.as_deref(),
                self.shell.as_deref(),
            ),
            status: self.status.clone(),
            screen: self.emulator.snapshot(),
            selection: self.emulator.selection_text(),
            seq: self.seq,
        };
        self.view.send_replace(Arc::new(view));
        self.changes.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(container: Option<&str>) -> ShellTarget {
        ShellTarget {
            context: "c".into(),
            namespace: "ns".into(),
            pod: "web-1".into(),
            container: container.map(str::to_string),
        }
    }

    #[test]
    fn titles_name_pod_container_and_shell() {
        assert_eq!(title(&target(None), None, None), "web-1");
        assert_eq!(
            title(&target(None), Some("app"), Some("sh")),
            "web-1/app (sh)"
        );
        assert_eq!(title(&target(Some("side")), None, None), "web-1/side");
    }
}
