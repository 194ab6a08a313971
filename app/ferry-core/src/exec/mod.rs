//! Exec sessions: commands and shells in a pod's container, over kube's exec WebSocket.
//!
//! - [`container`]: which container, as kubectl chooses it, and the list a picker shows.
//! - [`session`]: opening a session ([`open`]) and the owned [`Session`] handle (bounded
//!   output, an input sink, resize, the final [`Outcome`]), with the bash → sh → /bin/sh
//!   fallback decided from each attempt's failure `Status`.
//! - [`error`]: why a session failed, in sentences.
//! - [`terminal`]: the terminal emulator (alacritty_terminal) behind a plain snapshot.
//! - [`terminals`]: the instance's interactive shells, each a TTY session feeding an
//!   emulator on the runtime, read by views as [`TerminalView`]s.

pub mod container;
pub mod error;
pub mod session;
pub mod terminal;
pub mod terminals;

pub use container::{ContainerEntry, ContainerKind};
pub use error::ExecError;
pub use session::{
    Command, ExecRequest, Input, InputSink, Outcome, Output, SHELLS, Session, SessionInfo,
    TermSize, open,
};
pub use terminals::{
    Control, ShellTarget, TerminalHandle, TerminalId, TerminalStatus, TerminalView, Terminals,
};
