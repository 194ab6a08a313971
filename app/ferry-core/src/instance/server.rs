//! The control socket: the instance's door for the CLI and the tray.
//!
//! - **Single instance.** [`bind`] takes an exclusive `flock` on a lock file beside the socket
//!   before touching the socket. The kernel drops the lock when the process dies, so a socket
//!   left by a crashed (SIGKILLed) instance is simply replaced, and of two instances started at
//!   the same moment exactly one gets the lock; the other is told [`BindError::AlreadyRunning`].
//! - **Same user only.** The folder is 0700, the socket 0600, and every connection's peer uid
//!   (`SO_PEERCRED`) must equal ours; others are closed unanswered.
//! - **Robust framing.** JSON lines of at most [`MAX_LINE`]; a line that does not parse gets an
//!   error reply, a longer line closes the connection, a client that says no hello within
//!   [`HELLO_TIMEOUT`] is closed. Every connection is its own task, so none of this stalls the
//!   instance or its tunnels.
//! - **Exec sessions** ([`super::exec_relay`]) belong to the connection that opened them; their
//!   output waits for room in the outbox (backpressure) rather than disconnecting.
//! - **Bounded subscribers.** Each connection has an outbox of [`OUTBOX`] messages; a
//!   subscriber whose outbox is full (it stopped reading) is disconnected.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;

use super::Instance;
use super::api::{
    ApiError, ClientMessage, ErrorKind, Event, MAX_LINE, PROTOCOL_VERSION, Request, ServerMessage,
};
use super::exec_relay::ExecRelay;
use super::paths::{self, Flavor, PathError};

/// How long a new connection may stay silent before its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages queued per connection before a subscriber counts as too slow.
pub const OUTBOX: usize = 256;

/// Connections served at once; more are closed at once (a runaway script must not exhaust
/// the instance's file descriptors).
pub const MAX_CONNECTIONS: usize = 1024;

/// How long one write to a client may take before the client counts as gone. Not applied once
/// a connection runs exec sessions: their client may stop reading for as long as it likes (a
/// pager waiting for a key), and the command then waits, as with kubectl.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("another Ferry instance is already running{} (socket {})", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), socket.display())]
    AlreadyRunning { socket: PathBuf, pid: Option<u32> },
    #[error("{} is not a private folder of this user ({reason}); remove it or fix its owner", dir.display())]
    UnsafeDir { dir: PathBuf, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The bound control socket, holding the single-instance lock until dropped.
pub struct Bound {
    listener: std::os::unix::net::UnixListener,
    socket: PathBuf,
    _lock: File,
}

impl Bound {
    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// The current user's uid.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes sure `dir` exists, belongs to us and is 0700.
fn private_dir(dir: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    crate::config_dir::create_private_dir(dir).map_err(io("create", dir))?;
    let meta = std::fs::symlink_metadata(dir).map_err(io("inspect", dir))?;
    if !meta.is_dir() {
        return Err(BindError::UnsafeDir {
            dir: dir.to_path_buf(),
            reason: "it is not a folder".into(),
        });
    }
    if meta.uid() != current_uid() {
        return Err(BindError::UnsafeDir {
            dir: dir.to_path_buf(),
            reason: format!("it belongs to uid {}", meta.uid()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("make private", dir))?;
    }
    Ok(())
}

/// Reads the pid a running instance wrote into its lock file (for messages only).
fn read_pid(lock: &Path) -> Option<u32> {
    std::fs::read_to_string(lock).ok()?.trim().parse().ok()
}

/// Takes the single-instance lock of `flavor` and binds its socket (replacing a stale one).
pub fn bind(flavor: Flavor) -> Result<Bound, BindError> {
    bind_at(&paths::socket_path(flavor)?, &paths::lock_path(flavor)?)
}

/// [`bind`] with explicit paths (both in the same private folder).
pub fn bind_at(socket: &Path, lock_path: &Path) -> Result<Bound, BindError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = socket.parent() {
        private_dir(dir)?;
    }
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(io("open", lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(BindError::AlreadyRunning {
                socket: socket.to_path_buf(),
                pid: read_pid(lock_path),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", lock_path)(e)),
    }
    // We hold the lock, so whatever socket is there was left by an instance that died.
    match std::fs::remove_file(socket) {
        Ok(()) => tracing::info!("replaced the stale socket {}", socket.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove the stale socket", socket)(e)),
    }
    let listener =
        std::os::unix::net::UnixListener::bind(socket).map_err(io("listen on", socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io("make private", socket))?;
    listener
        .set_nonblocking(true)
        .map_err(io("configure", socket))?;
    let _ = lock.set_len(0);
    let _ = writeln!(lock, "{}", std::process::id());
    Ok(Bound {
        listener,
        socket: socket.to_path_buf(),
        _lock: lock,
    })
}

/// The running control socket. Dropping it (or [`Server::close`]) stops accepting, closes every
/// connection and removes the socket file.
pub struct Server {
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Serves `instance` on `bound` from the current tokio runtime.
    pub fn start(instance: Instance, bound: Bound) -> std::io::Result<Self> {
        let listener = UnixListener::from_std(bound.listener.try_clone()?)?;
        instance.set_socket(bound.socket.clone());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(instance, listener, bound, cancel.clone()));
        Ok(Self {
            cancel,
            task: Some(task),
        })
    }

    /// Stops accepting, closes every connection and removes the socket file; waits until done.
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How long closing the socket waits for open connections to send their last answers (a
/// small part of the instance's whole stop budget).
const CLOSE_GRACE: Duration = Duration::from_millis(300);

async fn accept_loop(
    instance: Instance,
    listener: UnixListener,
    bound: Bound,
    cancel: CancellationToken,
) {
    let uid = current_uid();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("control socket: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == uid => {}
            Ok(cred) => {
                tracing::warn!(
                    "control socket: refused a connection from uid {} (only uid {uid} may connect)",
                    cred.uid()
                );
                continue;
            }
            Err(e) => {
                tracing::warn!("control socket: cannot check who connected ({e}); closed");
                continue;
            }
        }
        let instance = instance.clone();
        let cancel = cancel.child_token();
        connections.spawn(async move {
            connection(instance, stream, cancel).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = std::fs::remove_file(&bound.socket);
    // Each connection sees the cancel and sends what it has answered (a Quit's Ok among them)
    // before it closes; aborting them at once could end the process before that was written.
    let finished = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(CLOSE_GRACE, finished).await;
    connections.shutdown().await;
    drop(bound);
}

/// One JSON line.
pub(super) fn encode(message: &ServerMessage) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_else(|e| {
        // Our own types always serialise; say so rather than panic if one ever does not.
        serde_json::to_vec(&ServerMessage::Error {
            id: None,
            error: ApiError::new(ErrorKind::Failed, format!("cannot encode the answer: {e}")),
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}

fn error(id: Option<u64>, kind: ErrorKind, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        id,
        error: ApiError::new(kind, message),
    }
}

/// What a line asked, read leniently enough to answer errors with the request's id.
/// The error is boxed: a `ServerMessage` is large and errors are the rare path.
fn parse(line: &[u8]) -> Result<ClientMessage, Box<ServerMessage>> {
    serde_json::from_slice(line).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("request")?.get("id")?.as_u64());
        Box::new(error(
            id,
            ErrorKind::BadRequest,
            format!("not a request this instance understands (protocol {PROTOCOL_VERSION}): {e}"),
        ))
    })
}

async fn connection(instance: Instance, stream: UnixStream, cancel: CancellationToken) {
    let (read, mut write) = stream.into_split();
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE);
    let mut lines = FramedRead::new(read, codec);
    let (outbox, mut queued) = mpsc::channel::<Vec<u8>>(OUTBOX);
    let writer_cancel = cancel.clone();
    let patient = Arc::new(AtomicBool::new(false));
    let writer_patient = patient.clone();
    let writer = tokio::spawn(async move {
        while let Some(line) = queued.recv().await {
            let written = if writer_patient.load(Ordering::Relaxed) {
                tokio::select! {
                    w = write.write_all(&line) => w.is_ok(),
                    _ = writer_cancel.cancelled() => false,
                }
            } else {
                matches!(
                    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&line)).await,
                    Ok(Ok(()))
                )
            };
            if !written {
                break;
            }
        }
        let _ = write.shutdown().await;
        writer_cancel.cancel();
    });

    // Exec sessions of this connection end as soon as it does.
    let exec_cancel = cancel.child_token();
    let relay = ExecRelay::new(instance.clone(), outbox.clone(), exec_cancel.clone());
    let served = async {
        let hello = tokio::select! {
            _ = cancel.cancelled() => return,
            hello = tokio::time::timeout(HELLO_TIMEOUT, lines.next()) => hello,
        };
        let first = match hello {
            Err(_) => {
                let _ = outbox.try_send(encode(&error(
                    None,
                    ErrorKind::BadRequest,
                    "no hello within 10 s; closing",
                )));
                return;
            }
            Ok(None) => return,
            Ok(Some(line)) => line,
        };
        match first.map_err(read_error).and_then(|line| parse(&line)) {
            Ok(ClientMessage::Hello { version, client }) if version == PROTOCOL_VERSION => {
                tracing::debug!("control socket: {client} connected");
                let hello = ServerMessage::Hello {
                    version: PROTOCOL_VERSION,
                    instance: instance.info(),
                };
                if outbox.send(encode(&hello)).await.is_err() {
                    return;
                }
            }
            Ok(ClientMessage::Hello { version, .. }) => {
                let _ = outbox
                    .send(encode(&error(
                        None,
                        ErrorKind::Version,
                        format!(
                            "this Ferry instance speaks protocol {PROTOCOL_VERSION}, the client {version}; use the same Ferry version for both (restart the instance after an update)"
                        ),
                    )))
                    .await;
                return;
            }
            Ok(ClientMessage::Request { id, .. }) => {
                let _ = outbox
                    .send(encode(&error(
                        Some(id),
                        ErrorKind::BadRequest,
                        "say hello first (with the protocol version)",
                    )))
                    .await;
                return;
            }
            Err(message) => {
                let _ = outbox.send(encode(&message)).await;
                return;
            }
        }
        let mut subscribed = false;
        loop {
            let line = tokio::select! {
                _ = cancel.cancelled() => return,
                line = lines.next() => line,
            };
            let line = match line {
                None => return,
                Some(Ok(line)) => line,
                Some(Err(e)) => {
                    let _ = outbox.send(encode(&read_error(e))).await;
                    return;
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (id, request) = match parse(&line) {
                Ok(ClientMessage::Request { id, request }) => (id, request),
                Ok(ClientMessage::Hello { .. }) => {
                    let _ = outbox.try_send(encode(&error(
                        None,
                        ErrorKind::BadRequest,
                        "hello was already said",
                    )));
                    continue;
                }
                Err(message) => {
                    if outbox.try_send(encode(&message)).is_err() {
                        return;
                    }
                    continue;
                }
            };
            // Exec is a property of the connection, and its input must stay in order: both
            // are handled here rather than in a task of their own.
            let request = match request {
                Request::ExecStart { session, request } => {
                    patient.store(true, Ordering::Relaxed);
                    relay.start(id, session, request);
                    continue;
                }
                Request::ExecInput { session, input } => {
                    relay.input(session, input).await;
                    continue;
                }
                other => other,
            };
            if request == Request::Subscribe && !subscribed {
                subscribed = true;
                tokio::spawn(subscriber(instance.clone(), outbox.clone(), cancel.clone()));
            }
            // Each request runs on its own, so a slow one never holds up the next.
            let instance = instance.clone();
            let outbox = outbox.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                // The answer first: `Quit` cancels `cancel` as it answers, and its Ok must
                // still be queued for the client.
                let response = tokio::select! {
                    biased;
                    response = instance.handle(request) => response,
                    _ = cancel.cancelled() => return,
                };
                let _ = outbox
                    .send(encode(&ServerMessage::Response { id, response }))
                    .await;
            });
        }
    };
    served.await;
    exec_cancel.cancel();
    drop(relay);
    drop(outbox);
    // Let queued answers (an error for a too-long line) go out, but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    // Closing with unread input makes the kernel reset the connection, and the client might
    // lose our last answer: read and discard what it still sends, for a moment.
    let mut rest = lines.into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 64 * 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut rest, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    cancel.cancel();
}

fn read_error(e: AnyDelimiterCodecError) -> Box<ServerMessage> {
    Box::new(match e {
        AnyDelimiterCodecError::MaxChunkLengthExceeded => error(
            None,
            ErrorKind::TooLong,
            format!("a line was longer than {MAX_LINE} bytes; closing"),
        ),
        AnyDelimiterCodecError::Io(e) => {
            error(None, ErrorKind::BadRequest, format!("read failed: {e}"))
        }
    })
}

/// Sends snapshots and tunnel events to a subscriber until it goes away or falls behind.
async fn subscriber(instance: Instance, outbox: mpsc::Sender<Vec<u8>>, cancel: CancellationToken) {
    let mut snapshots = instance.engine().snapshots();
    let mut events = instance.engine().events();
    let push = |event: Event| -> bool {
        match outbox.try_send(encode(&ServerMessage::Event(event))) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!("control socket: a subscriber fell behind; disconnected");
                cancel.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    };
    let tunnels = snapshots.borrow_and_update().as_ref().clone();
    if !push(Event::Snapshot { tunnels }) {
        return;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = snapshots.changed() => {
                if changed.is_err() { return }
                let tunnels = snapshots.borrow_and_update().as_ref().clone();
                if !push(Event::Snapshot { tunnels }) { return }
            }
            event = events.recv() => match event {
                Ok(event) => if !push(Event::Tunnel(event)) { return },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    tracing::info!("control socket: a subscriber lagged behind the event bus; disconnected");
                    cancel.cancel();
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
