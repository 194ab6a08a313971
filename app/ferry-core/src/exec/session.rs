//! One exec session: a command running in a pod's container over kube's exec WebSocket.
//!
//! kube 5's `Api::exec` offers `v5.channel.k8s.io, v4.channel.k8s.io` in one header and the
//! server picks (the apiserver takes v5; older kubelets v4), so the v5 → v4 fallback is the
//! protocol negotiation itself. On v5 closing stdin sends the CLOSE signal; on v4 it can only
//! close the whole stream (kube's behaviour).
//!
//! [`open`] checks the pod and container first (so "pod not running" is said in words, not as
//! an upgrade failure), then starts a task that owns the WebSocket. The caller gets an owned
//! [`Session`]: a bounded output channel (a reader that stops reading slows the pod down, it
//! never makes memory grow), an [`InputSink`] for stdin and resizes, and the final
//! [`Outcome`]. Dropping the session closes the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{FutureExt, SinkExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::{AttachParams, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::container::{self, ContainerEntry};
use super::error::ExecError;
use crate::engine::{ClientSource, ContextClient};
use crate::errors::{Access, ClusterError};

/// The shells tried, in order, when a session asks for [`Command::Shell`].
pub const SHELLS: [&str; 3] = ["bash", "sh", "/bin/sh"];
/// Output chunks in flight between the WebSocket task and the reader (each ≤ [`CHUNK`]).
const OUTPUT_QUEUE: usize = 32;
/// Input messages queued before [`InputSink::send`] waits.
const INPUT_QUEUE: usize = 64;
/// Largest output chunk, and the size of kube's internal pipes.
const CHUNK: usize = 64 * 1024;
/// Input kept for replay to the next shell while the current one has printed nothing yet.
const REPLAY_LIMIT: usize = 64 * 1024;

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Exactly this argv (never a shell string).
    Argv(Vec<String>),
    /// An interactive shell: `bash`, else `sh`, else `/bin/sh`, each tried only when the
    /// previous one failed with "executable not found".
    Shell,
}

/// Where and how to run a command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecRequest {
    pub context: String,
    pub namespace: String,
    pub pod: String,
    /// `None`: the container kubectl would pick ([`container::choose`]).
    pub container: Option<String>,
    pub command: Command,
    /// Attach stdin (kubectl `-i`).
    pub stdin: bool,
    /// Allocate a TTY (kubectl `-t`). With a TTY there is no separate stderr.
    pub tty: bool,
    /// Initial terminal size, sent right after connecting (TTY only).
    pub size: Option<TermSize>,
}

/// Output of the remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What the caller sends to the remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Data(Bytes),
    Resize(TermSize),
    /// End of stdin.
    Eof,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and exited with this code (from the final `Status`).
    Exited(i32),
    /// It could not run, or the session broke before it finished.
    Failed(ExecError),
}

impl Outcome {
    /// The exit code a CLI should return: the remote code, or 1 for a failure (kubectl's).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Failed(_) => 1,
        }
    }
}

/// What is known about a session once it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub context: String,
    pub namespace: String,
    pub pod: String,
    pub container: ContainerEntry,
    /// kubectl's "Defaulted container …" note, when the container was picked by default.
    pub defaulted_note: Option<String>,
    pub tty: bool,
}

/// Sends stdin, resizes and end-of-input to a session. Cheap to clone; bounded: `send` waits
/// when the queue is full, `try_send` fails instead (for a UI thread that must not wait).
#[derive(Clone, Debug)]
pub struct InputSink {
    tx: mpsc::Sender<Input>,
}

impl InputSink {
    /// Queues `input`, waiting for room. `false` when the session has ended.
    pub async fn send(&self, input: Input) -> bool {
        self.tx.send(input).await.is_ok()
    }

    /// Queues `input` without waiting. `Err` gives the input back when the queue is full or
    /// the session has ended.
    pub fn try_send(&self, input: Input) -> Result<(), Input> {
        self.tx.try_send(input).map_err(|e| match e {
            mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i,
        })
    }
}

/// An open exec session. Dropping it (or its [`SessionGuard`]) closes the WebSocket.
pub struct Session {
    pub info: SessionInfo,
    /// Output in order; ends (`None`) when the command's output has ended, after which
    /// [`Session::outcome`] is set.
    pub output: mpsc::Receiver<Output>,
    pub input: InputSink,
    /// The argv that runs now: for [`Command::Shell`] it changes from `bash` to `sh` when
    /// bash is missing.
    pub command: watch::Receiver<Vec<String>>,
    /// `None` while running, then the outcome.
    pub outcome: watch::Receiver<Option<Outcome>>,
    /// Keeps the session's task alive; dropped, it closes the stream.
    pub guard: SessionGuard,
}

impl Session {
    /// Waits for the outcome (reading no output: use [`Session::output`] first, or the
    /// bounded output queue fills and the command waits).
    pub async fn wait(&mut self) -> Outcome {
        let pod = self.info.pod.clone();
        let done = match self.outcome.wait_for(Option::is_some).await {
            Ok(o) => o.clone(),
            Err(_) => None,
        };
        done.or_else(|| self.outcome.borrow().clone())
            .unwrap_or_else(|| lost(&pod, "the session task ended"))
    }
}

/// Aborts the session's task when dropped.
pub struct SessionGuard(tokio::task::JoinHandle<()>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lost(pod: &str, reason: &str) -> Outcome {
    Outcome::Failed(ExecError::Lost {
        pod: pod.to_string(),
        reason: reason.to_string(),
    })
}

/// Opens a session: gets the client for the context from `clients` (so in-app clusters work),
/// checks that the pod and the container run, then connects. Must be called inside a tokio
/// runtime; the session's task runs on it.
pub async fn open(clients: &dyn ClientSource, req: ExecRequest) -> Result<Session, ExecError> {
    if let Command::Argv(argv) = &req.command
        && argv.is_empty()
    {
        return Err(ExecError::Invalid("no command given".to_string()));
    }
    let cc = clients.client(&req.context).await?;
    let api: Api<Pod> = Api::namespaced(cc.client.clone(), &req.namespace);
    let pod = get_pod(&api, &cc, &req).await?;
    check_pod_runs(&pod, &req.pod)?;
    let choice = container::choose(&pod, req.container.as_deref())?;
    let chosen = choice.container;
    if !chosen.running && chosen.state != "unknown" {
        let running = container::running_containers(&pod)
            .iter()
            .map(ContainerEntry::label)
            .collect::<Vec<_>>();
        return Err(ExecError::ContainerNotRunning {
            pod: req.pod.clone(),
            container: chosen.label(),
            state: chosen.state.clone(),
            running: if running.is_empty() {
                "none".to_string()
            } else {
                running.join(", ")
            },
        });
    }
    let info = SessionInfo {
        context: req.context.clone(),
        namespace: req.namespace.clone(),
        pod: req.pod.clone(),
        container: chosen.clone(),
        defaulted_note: choice.defaulted_note,
        tty: req.tty,
    };
    let candidates: Vec<Vec<String>> = match &req.command {
        Command::Argv(argv) => vec![argv.clone()],
        Command::Shell => SHELLS.iter().map(|s| vec![s.to_string()]).collect(),
    };
    let ap = AttachParams {
        container: Some(chosen.name.clone()),
        stdin: req.stdin,
        stdout: true,
        stderr: !req.tty,
        tty: req.tty,
        max_stdin_buf_size: Some(CHUNK),
        max_stdout_buf_size: Some(CHUNK),
        max_stderr_buf_size: Some(CHUNK),
    };
    // The first attempt is made here so that a refusal (403, unreachable, 400) is returned
    // by `open` rather than as an outcome.
    let mut first = api
        .exec(&req.pod, candidates[0].clone(), &ap)
        .await
        .map_err(|e| connect_error(&cc, &req, &e))?;
    let first_resize = size_first(&mut first, req.size);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
    let (cmd_tx, cmd_rx) = watch::channel(candidates[0].clone());
    let (outcome_tx, outcome_rx) = watch::channel(None);
    let pump = Pump {
        api,
        cc,
        req,
        ap,
        container: chosen.name.clone(),
        uid: pod.metadata.uid.clone(),
        out: out_tx,
        input: in_rx,
        size: None,
    };
    let task = tokio::spawn(async move {
        let outcome = pump.run((first, first_resize), candidates, cmd_tx).await;
        let _ = outcome_tx.send(Some(outcome));
    });
    Ok(Session {
        info,
        output: out_rx,
        input: InputSink { tx: in_tx },
        command: cmd_rx,
        outcome: outcome_rx,
        guard: SessionGuard(task),
    })
}

async fn get_pod(api: &Api<Pod>, cc: &ContextClient, req: &ExecRequest) -> Result<Pod, ExecError> {
    match api.get(&req.pod).await {
        Ok(p) => Ok(p),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(ExecError::PodNotFound {
            namespace: req.namespace.clone(),
            pod: req.pod.clone(),
        }),
        Err(e) => {
            let access = Access::new("get", "pods", Some(&req.namespace)).named(&req.pod);
            Err(ClusterError::from_kube(&req.context, &cc.url, &access, &e).into())
        }
    }
}

/// kubectl refuses completed pods; Ferry also says so for pending and terminating ones instead
/// of passing on the upgrade failure.
fn check_pod_runs(pod: &Pod, name: &str) -> Result<(), ExecError> {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_string());
    let state = if pod.metadata.deletion_timestamp.is_some() {
        Some("terminating".to_string())
    } else if phase == "Succeeded" || phase == "Failed" {
        Some(format!("it has completed: phase {phase}"))
    } else if phase == "Pending" {
        Some("phase Pending: its containers have not started".to_string())
    } else {
        None
    };
    match state {
        Some(state) => Err(ExecError::PodNotRunning {
            pod: name.to_string(),
            state,
        }),
        None => Ok(()),
    }
}

fn connect_error(cc: &ContextClient, req: &ExecRequest, err: &kube::Error) -> ExecError {
    if let kube::Error::Api(s) = err
        && s.code == 404
    {
        return ExecError::PodNotFound {
            namespace: req.namespace.clone(),
            pod: req.pod.clone(),
        };
    }
    let access = Access::exec(&req.namespace, &req.pod);
    ClusterError::from_kube(&req.context, &cc.url, &access, err).into()
}

/// The task that owns the WebSocket(s) of one session.
struct Pump {
    api: Api<Pod>,
    cc: ContextClient,
    req: ExecRequest,
    ap: AttachParams,
    container: String,
    uid: Option<String>,
    out: mpsc::Sender<Output>,
    input: mpsc::Receiver<Input>,
    /// The last size asked for, re-sent to the next shell.
    size: Option<TermSize>,
}

/// How one attempt ended.
struct AttemptEnd {
    status: Option<Status>,
    /// Some output was passed on (so no other shell may be tried).
    forwarded: bool,
    /// The WebSocket task's error, if it failed.
    error: Option<String>,
    /// Input sent to this attempt, kept for the next shell while nothing was forwarded.
    replay: Vec<Input>,
}

impl Pump {
    async fn run(
        mut self,
        first: (kube::api::AttachedProcess, Option<ResizeSender>),
        candidates: Vec<Vec<String>>,
        command: watch::Sender<Vec<String>>,
    ) -> Outcome {
        self.size = self.req.size;
        let mut process = Some(first);
        let mut replay = Vec::new();
        for (i, argv) in candidates.iter().enumerate() {
            let (attached, resize) = match process.take() {
                Some(p) => p,
                None => match self.api.exec(&self.req.pod, argv.clone(), &self.ap).await {
                    Ok(mut p) => {
                        let resize = size_first(&mut p, self.size);
                        (p, resize)
                    }
                    Err(e) => return Outcome::Failed(connect_error(&self.cc, &self.req, &e)),
                },
            };
            let _ = command.send(argv.clone());
            let end = self
                .attempt(attached, resize, std::mem::take(&mut replay))
                .await;
            let last = i + 1 == candidates.len();
            let shell_mode = self.req.command == Command::Shell;
            if let Some(message) = not_found_message(end.status.as_ref())
                && !end.forwarded
            {
                if shell_mode && !last {
                    tracing::debug!(shell = %argv[0], "shell not found, trying the next one");
                    replay = end.replay;
                    continue;
                }
                return Outcome::Failed(if shell_mode {
                    ExecError::NoShell {
                        pod: self.req.pod.clone(),
                        container: self.container.clone(),
                        tried: SHELLS.join(", "),
                    }
                } else {
                    ExecError::ExecutableNotFound {
                        pod: self.req.pod.clone(),
                        container: self.container.clone(),
                        program: argv[0].clone(),
                        message,
                    }
                });
            }
            return self.outcome(end).await;
        }
        lost(&self.req.pod, "no command was run")
    }

    /// Runs one connected process until its output ends (its initial size is already sent:
    /// [`size_first`]).
    async fn attempt(
        &mut self,
        mut process: kube::api::AttachedProcess,
        mut resize: Option<ResizeSender>,
        replay: Vec<Input>,
    ) -> AttemptEnd {
        let forwarded = Arc::new(AtomicBool::new(false));
        // Set once kube's task for this stream has ended (its status future resolved).
        let (ended_tx, ended) = watch::channel(false);
        let mut readers = tokio::task::JoinSet::new();
        if let Some(r) = process.stdout() {
            readers.spawn(forward(
                r,
                self.out.clone(),
                forwarded.clone(),
                Output::Stdout,
                ended.clone(),
            ));
        }
        if let Some(r) = process.stderr() {
            readers.spawn(forward(
                r,
                self.out.clone(),
                forwarded.clone(),
                Output::Stderr,
                ended.clone(),
            ));
        }
        let mut stdin = process.stdin();
        // Resolves with the status, or `None` when kube's task ended without one (the server
        // closed, or the connection broke).
        let status_future = process.take_status();
        let mut status_future = Box::pin(async move {
            match status_future {
                Some(f) => f.await,
                None => None,
            }
        });
        let mut status = None;
        let mut status_known = false;
        let mut kept: Vec<Input> = Vec::new();
        let mut kept_bytes = 0usize;
        let mut pending: std::collections::VecDeque<Input> = replay.into();
        let mut input_open = true;
        loop {
            let next = if let Some(i) = pending.pop_front() {
                Some(i)
            } else {
                tokio::select! {
                    done = readers.join_next() => {
                        if done.is_none() { break; }
                        continue;
                    }
                    s = &mut status_future, if !status_known => {
                        status = s;
                        status_known = true;
                        let _ = ended_tx.send(true);
                        continue;
                    }
                    i = self.input.recv(), if input_open => {
                        if i.is_none() { input_open = false; }
                        i
                    }
                }
            };
            let Some(input) = next else { continue };
            if !forwarded.load(Ordering::Relaxed) && kept_bytes < REPLAY_LIMIT {
                if let Input::Data(b) = &input {
                    kept_bytes += b.len();
                }
                kept.push(input.clone());
            }
            match input {
                Input::Data(bytes) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Input::Resize(size) => {
                    self.size = Some(size);
                    if let Some(r) = resize.as_mut() {
                        let _ = r.send(terminal_size(size)).await;
                    }
                }
                Input::Eof => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
            }
        }
        if !status_known {
            status = status_future.await;
        }
        let error = process.join().await.err().map(|e| e.to_string());
        AttemptEnd {
            status,
            forwarded: forwarded.load(Ordering::Relaxed),
            error,
            replay: kept,
        }
    }

    async fn outcome(&self, end: AttemptEnd) -> Outcome {
        let pod = &self.req.pod;
        match end.status {
            Some(s) if s.status.as_deref() == Some("Success") => Outcome::Exited(0),
            Some(s) if s.reason.as_deref() == Some("NonZeroExitCode") => match exit_code(&s) {
                // Killed by a signal (137 is SIGKILL: the runtime tears the container down
                // with everything exec'd into it) while the pod is being deleted: say so.
                Some(code) if code > 128 && self.pod_is_gone().await => {
                    Outcome::Failed(ExecError::PodDeleted { pod: pod.clone() })
                }
                Some(code) => Outcome::Exited(code),
                None => Outcome::Failed(ExecError::Refused {
                    pod: pod.clone(),
                    container: self.container.clone(),
                    message: s.message.unwrap_or_default(),
                }),
            },
            Some(s) => Outcome::Failed(ExecError::Refused {
                pod: pod.clone(),
                container: self.container.clone(),
                message: s
                    .message
                    .unwrap_or_else(|| s.reason.unwrap_or_else(|| "unknown failure".into())),
            }),
            None => {
                if self.pod_is_gone().await {
                    Outcome::Failed(ExecError::PodDeleted { pod: pod.clone() })
                } else {
                    let reason = end
                        .error
                        .unwrap_or_else(|| "the stream closed without an exit status".to_string());
                    lost(pod, &reason)
                }
            }
        }
    }

    /// Whether the pod was deleted (or replaced by a new one of the same name).
    async fn pod_is_gone(&self) -> bool {
        match self.api.get(&self.req.pod).await {
            Ok(p) => p.metadata.deletion_timestamp.is_some() || p.metadata.uid != self.uid,
            Err(kube::Error::Api(s)) => s.code == 404,
            Err(_) => false,
        }
    }
}

/// Passes one output pipe of kube's on. Ends at the pipe's EOF, or once kube's task has
/// `ended` and what it wrote has been read: when the connection breaks, kube-rs drops its
/// ends of the pipes without closing them, so no EOF would ever come.
async fn forward(
    mut reader: impl AsyncRead + Unpin,
    out: mpsc::Sender<Output>,
    forwarded: Arc<AtomicBool>,
    wrap: fn(Bytes) -> Output,
    mut ended: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut consumer_gone = false;
    loop {
        let read = tokio::select! {
            biased;
            r = reader.read(&mut buf) => r,
            _ = ended.wait_for(|e| *e) => match reader.read(&mut buf).now_or_never() {
                Some(r) => r,
                // Nothing left in the pipe, and nobody will write to it again.
                None => return,
            },
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        forwarded.store(true, Ordering::Relaxed);
        // A reader that went away does not stop the command: its output is dropped.
        if !consumer_gone
            && out
                .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                .await
                .is_err()
        {
            consumer_gone = true;
        }
    }
}

/// kube's sender for the resize channel of one stream.
type ResizeSender = futures::channel::mpsc::Sender<TerminalSize>;

/// Takes the stream's resize sender and queues the initial size on it at once, right after
/// the upgrade and before any stdin can be written, as kubectl does (client-go's terminal
/// size queue hands out the current size first): the kubelet starts the process without
/// waiting for a size and applies resizes as they come, so the earlier the size goes, the
/// sooner the process sees its real terminal.
fn size_first(
    process: &mut kube::api::AttachedProcess,
    size: Option<TermSize>,
) -> Option<ResizeSender> {
    let mut resize = process.terminal_size()?;
    if let Some(size) = size {
        // A fresh channel has room; a closed one means the stream already ended.
        let _ = resize.try_send(terminal_size(size));
    }
    Some(resize)
}

fn terminal_size(size: TermSize) -> TerminalSize {
    TerminalSize {
        width: size.cols,
        height: size.rows,
    }
}

/// The exit code in a `NonZeroExitCode` status (`details.causes[reason=ExitCode].message`).
pub fn exit_code(status: &Status) -> Option<i32> {
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .trim()
        .parse()
        .ok()
}

/// The message of a failure `Status` saying the program does not exist in the container, as
/// container runtimes word it (runc: `exec: "bash": executable file not found in $PATH`, or
/// `no such file or directory` for a path).
pub fn not_found_message(status: Option<&Status>) -> Option<String> {
    let status = status?;
    if status.status.as_deref() == Some("Success")
        || status.reason.as_deref() == Some("NonZeroExitCode")
    {
        return None;
    }
    let message = status.message.clone().unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    (lower.contains("executable file not found") || lower.contains("no such file or directory"))
        .then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn exit_code_comes_from_the_causes() {
        let s = status(serde_json::json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: exit code 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(&s), Some(3));
        assert_eq!(not_found_message(Some(&s)), None);
    }

    #[test]
    fn executable_not_found_is_recognised_from_the_status() {
        let s = status(serde_json::json!({
            "status": "Failure", "reason": "InternalError", "code": 500,
            "message": "Internal error occurred: error executing command in container: OCI runtime exec failed: exec failed: unable to start container process: exec: \"bash\": executable file not found in $PATH: unknown"
        }));
        assert!(not_found_message(Some(&s)).is_some());
        let other = status(serde_json::json!({
            "status": "Failure", "reason": "InternalError", "message": "container not running"
        }));
        assert_eq!(not_found_message(Some(&other)), None);
    }
}
