//! The other end of the control socket: what `ferry status`, `ferry up`, `ferry down`,
//! `ferry forward --detach` and a second `ferry` launch use to talk to the running instance.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{AnyDelimiterCodec, FramedRead};

use super::api::{
    ApiError, ClientMessage, Event, ExecEnd, ExecInput, ExecStream, InstanceInfo, MAX_LINE,
    PROTOCOL_VERSION, Request, Response, ServerMessage,
};
use super::paths::{self, Flavor, PathError};
use crate::exec::ExecRequest;

/// Why talking to the instance failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Path(#[from] PathError),
    /// Nothing listens on the socket: no instance runs.
    #[error("no Ferry instance is running (no socket at {})", socket.display())]
    NoInstance { socket: PathBuf },
    #[error(
        "cannot connect to {}: {source} (does the instance belong to another user?)",
        socket.display()
    )]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The instance refused the connection or a request at the protocol level.
    #[error("the Ferry instance refused: {0}")]
    Refused(ApiError),
    #[error("the Ferry instance closed the connection")]
    Closed,
    #[error("the Ferry instance did not answer within {0:?}")]
    Timeout(Duration),
    #[error("talking to the Ferry instance failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the Ferry instance sent something this client cannot read: {0}")]
    Protocol(String),
}

/// A connection to a running instance, past the hello.
pub struct Client {
    lines: FramedRead<OwnedReadHalf, AnyDelimiterCodec>,
    write: OwnedWriteHalf,
    next_id: u64,
    instance: InstanceInfo,
    events: VecDeque<Event>,
}

/// How long the hello may take.
const HELLO_WAIT: Duration = Duration::from_secs(5);

impl Client {
    /// Connects to `flavor`'s instance.
    pub async fn connect(flavor: Flavor) -> Result<Self, ClientError> {
        Self::connect_at(&paths::socket_path(flavor)?).await
    }

    /// Connects to the instance listening on `socket` and says hello.
    pub async fn connect_at(socket: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(socket).await.map_err(|source| {
            use std::io::ErrorKind::*;
            match source.kind() {
                NotFound | ConnectionRefused => ClientError::NoInstance {
                    socket: socket.to_path_buf(),
                },
                _ => ClientError::Connect {
                    socket: socket.to_path_buf(),
                    source,
                },
            }
        })?;
        let (read, write) = stream.into_split();
        let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE);
        let mut client = Client {
            lines: FramedRead::new(read, codec),
            write,
            next_id: 1,
            instance: placeholder_info(),
            events: VecDeque::new(),
        };
        client
            .send(&ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                client: format!("ferry {}", env!("CARGO_PKG_VERSION")),
            })
            .await?;
        let answer = tokio::time::timeout(HELLO_WAIT, client.read())
            .await
            .map_err(|_| ClientError::Timeout(HELLO_WAIT))??;
        match answer {
            ServerMessage::Hello { instance, .. } => client.instance = instance,
            ServerMessage::Error { error, .. } => return Err(ClientError::Refused(error)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a hello, got {other:?}"
                )));
            }
        }
        Ok(client)
    }

    /// What the instance said about itself in its hello.
    pub fn instance(&self) -> &InstanceInfo {
        &self.instance
    }

    async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let mut line =
            serde_json::to_vec(message).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        // The instance closing first (e.g. refusing another user before reading the hello)
        // shows up here as a broken pipe: that is a closed connection, as on the read side.
        self.write
            .write_all(&line)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    ClientError::Closed
                }
                _ => ClientError::Io(e),
            })
    }

    async fn read(&mut self) -> Result<ServerMessage, ClientError> {
        read_line(&mut self.lines).await
    }

    /// Sends `request` and waits for its answer (events arriving meanwhile are kept for
    /// [`Client::next_event`]).
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientMessage::Request { id, request }).await?;
        loop {
            match self.read().await? {
                ServerMessage::Response { id: got, response } if got == id => return Ok(response),
                ServerMessage::Event(event) => self.events.push_back(event),
                ServerMessage::Error {
                    id: Some(got),
                    error,
                } if got == id => {
                    return Err(ClientError::Refused(error));
                }
                ServerMessage::Error { id: None, error } => {
                    return Err(ClientError::Refused(error));
                }
                _ => {}
            }
        }
    }

    /// The next event after [`Request::Subscribe`].
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            match self.read().await? {
                ServerMessage::Event(event) => return Ok(event),
                ServerMessage::Error { error, .. } => return Err(ClientError::Refused(error)),
                _ => {}
            }
        }
    }
}

impl Client {
    /// Runs a command on the instance ([`Request::ExecStart`]); the connection then belongs to
    /// the session. `Ok(Err(e))` when the instance could not start it (e.g.
    /// [`ErrorKind::UnknownContext`](super::api::ErrorKind::UnknownContext)).
    pub async fn exec(
        mut self,
        request: ExecRequest,
    ) -> Result<Result<RemoteExec, ApiError>, ClientError> {
        const SESSION: u64 = 1;
        let started = match self
            .request(Request::ExecStart {
                session: SESSION,
                request,
            })
            .await
        {
            Ok(r) => r,
            Err(ClientError::Refused(e)) => return Ok(Err(e)),
            Err(e) => return Err(e),
        };
        let (container, defaulted_note, tty) = match started {
            Response::ExecStarted {
                container,
                defaulted_note,
                tty,
                ..
            } => (container, defaulted_note, tty),
            Response::Error(e) => return Ok(Err(e)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected exec-started, got {other:?}"
                )));
            }
        };
        let (input, mut queued) = tokio::sync::mpsc::channel::<ExecInput>(16);
        let mut write = self.write;
        let mut next_id = self.next_id;
        let writer = tokio::spawn(async move {
            while let Some(input) = queued.recv().await {
                let message = ClientMessage::Request {
                    id: next_id,
                    request: Request::ExecInput {
                        session: SESSION,
                        input,
                    },
                };
                next_id += 1;
                let Ok(mut line) = serde_json::to_vec(&message) else {
                    return;
                };
                line.push(b'\n');
                if write.write_all(&line).await.is_err() {
                    return;
                }
            }
        });
        Ok(Ok(RemoteExec {
            container,
            defaulted_note,
            tty,
            session: SESSION,
            lines: self.lines,
            early: self.events,
            input: RemoteInput(input),
            _writer: AbortOnDrop(writer),
        }))
    }
}

/// An exec session running on the instance, from [`Client::exec`].
pub struct RemoteExec {
    /// The container it runs in.
    pub container: String,
    /// kubectl's "Defaulted container …" note, when the container was picked by default.
    pub defaulted_note: Option<String>,
    pub tty: bool,
    session: u64,
    lines: FramedRead<OwnedReadHalf, AnyDelimiterCodec>,
    early: VecDeque<Event>,
    input: RemoteInput,
    _writer: AbortOnDrop,
}

/// What a remote exec session produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The end; nothing follows.
    Ended(ExecEnd),
}

/// Sends input to a [`RemoteExec`]; cheap to clone, bounded (`send` waits for room).
#[derive(Clone, Debug)]
pub struct RemoteInput(tokio::sync::mpsc::Sender<ExecInput>);

impl RemoteInput {
    /// Queues `input`; `false` once the connection is gone.
    pub async fn send(&self, input: ExecInput) -> bool {
        self.0.send(input).await.is_ok()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RemoteExec {
    /// Where to send stdin, resizes and end of input.
    pub fn input(&self) -> RemoteInput {
        self.input.clone()
    }

    /// The next output, or the end. Dropping the session (or the instance closing the
    /// connection) ends the remote command.
    pub async fn next(&mut self) -> Result<RemoteOutput, ClientError> {
        loop {
            let event = match self.early.pop_front() {
                Some(event) => event,
                None => match read_line(&mut self.lines).await? {
                    ServerMessage::Event(event) => event,
                    ServerMessage::Error { error, .. } => return Err(ClientError::Refused(error)),
                    _ => continue,
                },
            };
            match event {
                Event::ExecOutput {
                    session,
                    stream,
                    data,
                } if session == self.session => {
                    return Ok(match stream {
                        ExecStream::Stdout => RemoteOutput::Stdout(data),
                        ExecStream::Stderr => RemoteOutput::Stderr(data),
                    });
                }
                Event::ExecEnded { session, end } if session == self.session => {
                    return Ok(RemoteOutput::Ended(end));
                }
                _ => {}
            }
        }
    }
}

/// Reads one message.
async fn read_line(
    lines: &mut FramedRead<OwnedReadHalf, AnyDelimiterCodec>,
) -> Result<ServerMessage, ClientError> {
    match lines.next().await {
        None => Err(ClientError::Closed),
        Some(Err(tokio_util::codec::AnyDelimiterCodecError::Io(e)))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Err(ClientError::Closed)
        }
        Some(Err(e)) => Err(ClientError::Protocol(e.to_string())),
        Some(Ok(line)) => {
            serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(e.to_string()))
        }
    }
}

fn placeholder_info() -> InstanceInfo {
    InstanceInfo {
        ferry_version: String::new(),
        pid: 0,
        demo: false,
        has_window: false,
        window_open: false,
        started_at: jiff::Timestamp::UNIX_EPOCH,
        socket: PathBuf::new(),
        log_file: None,
    }
}
