//! The one typed API every client of the instance speaks: the CLI over the control socket, the
//! window in process. Plain serde data, so the same values travel as Rust values in
//! process and as JSON lines on the socket.
//!
//! # Wire protocol (version [`PROTOCOL_VERSION`])
//! One JSON object per line (UTF-8, `\n`-terminated, at most [`MAX_LINE`] bytes).
//! 1. The client sends [`ClientMessage::Hello`] naming the protocol version it speaks.
//! 2. The instance answers [`ServerMessage::Hello`] (same version, facts about itself) or
//!    [`ServerMessage::Error`] with [`ErrorKind::Version`] and closes the connection.
//! 3. The client sends [`ClientMessage::Request`]s, each with an id of its choosing; the
//!    instance answers each with a [`ServerMessage::Response`] carrying the same id. Requests
//!    are applied concurrently, so answers may come in another order than the requests.
//! 4. After [`Request::Subscribe`], the instance also sends [`ServerMessage::Event`]s on that
//!    connection. A subscriber that does not read fast enough is disconnected rather than
//!    buffered without bound.
//!
//! 5. [`Request::ExecStart`] opens an exec session bound to the connection: its answer,
//!    [`Response::ExecStarted`], comes once the command runs; then [`Event::ExecOutput`]s
//!    carry its output (chunks of at most [`EXEC_CHUNK`] bytes, base64) and one
//!    [`Event::ExecEnded`] its end. [`Request::ExecInput`]s feed it in order and are *not*
//!    answered (input is a stream; input for a session that has ended is dropped). Output is
//!    never dropped: while the client does not read, the instance stops reading the command's
//!    output. Closing the connection ends its sessions.
//!
//! A line that is not valid JSON or names an unknown request gets a [`ServerMessage::Error`]
//! (with [`ErrorKind::BadRequest`]) and the connection stays open; a line over [`MAX_LINE`]
//! gets [`ErrorKind::TooLong`] and the connection is closed.
//!
//! Compatibility: adding a request, a response or an optional field keeps the version;
//! renaming or removing anything, or changing a meaning, bumps it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::engine::Origin;
use crate::exec::{ExecRequest, TermSize};
use crate::spec::TunnelSpec;
use crate::tunnel::{TunnelEvent, TunnelId, TunnelSnapshot};

/// The protocol version this build speaks. A client with another version is refused with a
/// message naming both, so an old CLI talking to a new instance says what to do.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts (1 MiB). Longer lines close the connection.
pub const MAX_LINE: usize = 1024 * 1024;

/// The most bytes of exec input or output one line carries (base64 makes it a third more).
pub const EXEC_CHUNK: usize = 64 * 1024;

/// A line sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientMessage {
    /// The first line of every connection.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u32,
        /// Who is asking, for the instance's log ("ferry-cli 0.1.0").
        #[serde(default)]
        client: String,
    },
    /// One request; the answer carries the same `id`.
    Request { id: u64, request: Request },
}

/// A line sent by the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerMessage {
    /// The answer to the client's hello.
    Hello {
        version: u32,
        instance: InstanceInfo,
    },
    /// The answer to request `id`.
    Response { id: u64, response: Response },
    /// Something happened (only after [`Request::Subscribe`]).
    Event(Event),
    /// A problem with the connection itself (bad hello, unparsable line, line too long) rather
    /// than with one request. `id` is the request's id when it could be read.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        error: ApiError,
    },
}

/// What a client may ask of the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Request {
    /// Every tunnel's snapshot plus facts about the instance: [`Response::Status`].
    Status,
    /// Start saved profiles by name (none: the ones marked autostart). Tunnels of a profile that
    /// already run are left alone; stopped or failed ones are restarted. [`Response::Started`].
    Up {
        #[serde(default)]
        profiles: Vec<String>,
    },
    /// Stop the tunnels of these profiles, or every tunnel when `all`. [`Response::Stopped`].
    Down {
        #[serde(default)]
        profiles: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    /// Start one tunnel: ad hoc, or as one of `profile`'s (the window's "save to profile").
    /// [`Response::TunnelAdded`]; follow it with [`Request::WaitTunnel`] to learn whether it
    /// became Active.
    AddTunnel {
        spec: TunnelSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
    },
    /// Wait (up to `timeout_ms`) until the tunnel is Active or Failed, or waits for an object
    /// that does not exist (reason `not-found`: a typo does not fix itself), then answer
    /// [`Response::Tunnel`] with its snapshot (also on timeout: the state says which).
    WaitTunnel { id: TunnelId, timeout_ms: u64 },
    /// Stop tunnels (they stay listed as Stopped). [`Response::Ok`].
    StopTunnels { ids: Vec<TunnelId> },
    /// Restart tunnels (also how a Failed or Stopped one is started again). [`Response::Ok`].
    RestartTunnels { ids: Vec<TunnelId> },
    /// Stop and forget tunnels. [`Response::Ok`].
    RemoveTunnels { ids: Vec<TunnelId> },
    /// The saved profiles and how many of their tunnels run. [`Response::Profiles`].
    ListProfiles,
    /// Open the instance's window (or raise it). An instance that cannot show one answers
    /// [`ErrorKind::Unsupported`].
    ShowWindow,
    /// Close the instance's window; the instance and its tunnels keep running.
    HideWindow,
    /// From now on, send [`ServerMessage::Event`]s on this connection: a
    /// [`Event::Snapshot`] at once and after every change, and every [`Event::Tunnel`].
    /// [`Response::Ok`].
    Subscribe,
    /// Stop every tunnel and end the instance. [`Response::Ok`] is sent first.
    Quit,
    /// Run a command in a container (`ferry exec`) on the instance's client for the context,
    /// as session `session` of this connection (a number the client chooses).
    /// [`Response::ExecStarted`] once it runs, or an error ([`ErrorKind::UnknownContext`]
    /// when the instance's kubeconfig has no such context).
    ExecStart { session: u64, request: ExecRequest },
    /// Stdin, a terminal resize or end of input for session `session`. Not answered.
    ExecInput { session: u64, input: ExecInput },
}

/// Input for a remote exec session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExecInput {
    /// Bytes for the command's stdin (at most [`EXEC_CHUNK`]).
    Data {
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// The local terminal changed size.
    Resize { size: TermSize },
    /// End of stdin.
    Eof,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecStream {
    Stdout,
    Stderr,
}

/// How a remote exec session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExecEnd {
    /// The command exited with this code.
    Exited { code: i32 },
    /// It could not run or the session broke; a sentence saying why.
    Failed { message: String },
}

/// Bytes as base64 text in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Response {
    /// Done; nothing to report.
    Ok,
    /// The answer to [`Request::Status`].
    Status(Status),
    /// The tunnels [`Request::Up`] started or restarted, and those already running.
    Started {
        started: Vec<TunnelId>,
        already_running: Vec<TunnelId>,
    },
    /// The tunnels [`Request::Down`] stopped.
    Stopped { stopped: Vec<TunnelId> },
    /// The id of the tunnel [`Request::AddTunnel`] started.
    TunnelAdded { id: TunnelId },
    /// One tunnel's snapshot ([`Request::WaitTunnel`]).
    Tunnel(Box<TunnelSnapshot>),
    /// The answer to [`Request::ListProfiles`].
    Profiles { profiles: Vec<ProfileSummary> },
    /// Exec session `session` runs, in `container`; `defaulted_note` is kubectl's
    /// "Defaulted container …" line when the container was picked by default.
    ExecStarted {
        session: u64,
        container: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        defaulted_note: Option<String>,
        tty: bool,
    },
    /// The request could not be done.
    Error(ApiError),
}

/// Pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// Every tunnel's snapshot, after a change (coalesced).
    Snapshot { tunnels: Vec<TunnelSnapshot> },
    /// Something happened to one tunnel.
    Tunnel(TunnelEvent),
    /// Output of exec session `session` of this connection (sent without a subscription).
    ExecOutput {
        session: u64,
        stream: ExecStream,
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// Exec session `session` ended; no more output follows.
    ExecEnded { session: u64, end: ExecEnd },
}

/// Facts about the running instance, for `ferry status` and for a client deciding whether it
/// talks to the instance it meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Ferry's version (`CARGO_PKG_VERSION`).
    pub ferry_version: String,
    pub pid: u32,
    /// True for `ferry --demo`'s instance (its own socket, the built-in cluster).
    pub demo: bool,
    /// Whether this instance can show a window (false when it runs without a graphical
    /// session).
    pub has_window: bool,
    /// Whether its window is open now.
    #[serde(default)]
    pub window_open: bool,
    pub started_at: jiff::Timestamp,
    /// The control socket this instance listens on.
    pub socket: PathBuf,
    /// The instance's log file, if it keeps one.
    pub log_file: Option<PathBuf>,
}

/// The answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub instance: InstanceInfo,
    /// Every tunnel, ordered by id; each names its [`Origin`].
    pub tunnels: Vec<TunnelSnapshot>,
}

/// One saved profile as [`Request::ListProfiles`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub name: String,
    pub autostart: bool,
    /// Tunnels saved in the profile.
    pub tunnels: usize,
    /// Of this profile's tunnels in the engine, how many can serve now.
    pub running: usize,
}

/// Why a request failed, in words, with a kind a program can branch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// A sentence a person understands: what, where, what to do.
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Error kinds. The CLI maps [`ErrorKind::BadRequest`], [`ErrorKind::UnknownProfile`] and
/// [`ErrorKind::UnknownTunnel`] to exit code 2 (bad usage) and the rest to 1 (failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The line was not a request this version understands.
    BadRequest,
    /// The hello named another protocol version.
    Version,
    /// The line was longer than [`MAX_LINE`].
    TooLong,
    UnknownProfile,
    UnknownTunnel,
    /// The instance's kubeconfig (and its in-app clusters) have no such context.
    UnknownContext,
    /// This instance cannot do that (e.g. show a window when it has none).
    Unsupported,
    /// The request was understood but could not be done (profile file unreadable, …).
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_readable_wire_form() {
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: "test".into(),
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"hello":{"version":1,"client":"test"}}"#
        );
        let req = ClientMessage::Request {
            id: 7,
            request: Request::Down {
                profiles: vec!["web".into()],
                all: false,
            },
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"request":{"id":7,"request":{"type":"down","profiles":["web"],"all":false}}}"#
        );
        let parsed: ClientMessage =
            serde_json::from_str(r#"{"request":{"id":1,"request":{"type":"status"}}}"#).unwrap();
        assert_eq!(
            parsed,
            ClientMessage::Request {
                id: 1,
                request: Request::Status
            }
        );
        let err = ServerMessage::Error {
            id: None,
            error: ApiError::new(ErrorKind::TooLong, "too long"),
        };
        let back: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&err).unwrap()).unwrap();
        assert_eq!(back, err);
    }

    #[test]
    fn exec_messages_carry_bytes_as_base64() {
        let input = Request::ExecInput {
            session: 2,
            input: ExecInput::Data {
                data: b"hi\n".to_vec(),
            },
        };
        let line = serde_json::to_string(&input).unwrap();
        assert_eq!(
            line,
            r#"{"type":"exec-input","session":2,"input":{"kind":"data","data":"aGkK"}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), input);
        let output = Event::ExecOutput {
            session: 2,
            stream: ExecStream::Stderr,
            data: vec![0, 255, 10],
        };
        let back: Event = serde_json::from_str(&serde_json::to_string(&output).unwrap()).unwrap();
        assert_eq!(back, output);
        // A full chunk stays well under the line limit.
        let full = Event::ExecOutput {
            session: u64::MAX,
            stream: ExecStream::Stdout,
            data: vec![0xff; EXEC_CHUNK],
        };
        let line = serde_json::to_vec(&ServerMessage::Event(full)).unwrap();
        assert!(line.len() < MAX_LINE, "{}", line.len());
        assert!(
            serde_json::from_str::<Request>(
                r#"{"type":"exec-input","session":1,"input":{"kind":"data","data":"not base64!"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_requests_do_not_parse() {
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"request":{"id":1,"request":{"type":"format-disk"}}}"#
            )
            .is_err()
        );
    }
}
