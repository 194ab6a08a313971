//! Tunnels: local listeners that forward each connection to a Ready pod of a target, and keep
//! doing so as pods come and go.
//!
//! One module per noun, from the bytes up:
//! - [`listener`]: binding local ports (loopback by default, clear "port in use" errors);
//! - [`forward`]: one local connection ↔ one port-forward stream to a pod;
//! - [`spdy`]: kubectl's SPDY tunnel, many local connections on one WebSocket per pod;
//! - [`websocket`]: the v4 WebSocket fallback, one WebSocket per local connection;
//! - [`transport`]: which of the two a tunnel uses, and its pool of SPDY connections;
//! - [`upgrade`]: the WebSocket upgrade both go through;
//! - [`picker`] and [`routes`]: which Ready pod and container port the next connection gets;
//! - [`feed`]: one shared watch per (kind, context, namespace), whatever the number of tunnels
//!   (the window's lists, [`crate::catalog`], watch through the same feeds);
//! - [`access`]: asking up front whether the user may port-forward at all;
//! - [`supervisor`]: one task per tunnel following its target through those watches;
//! - [`backoff`] and [`clock`]: retry delays and sleep/wake detection;
//! - [`state`] and [`stats`]: the state derived from facts, counters, events, snapshots.
//!
//! The engine ([`crate::engine`]) owns the supervisors; everything here is driven through it.

pub(crate) mod access;
pub mod backoff;
pub mod clock;
pub mod feed;
pub(crate) mod forward;
pub mod listener;
pub mod picker;
pub mod routes;
pub mod spdy;
pub mod state;
pub mod stats;
pub(crate) mod supervisor;
pub mod transport;
pub(crate) mod upgrade;
pub mod websocket;

pub use state::TunnelState;
pub use stats::{ErrorRecord, EventKind, ForwardedPort, TunnelEvent, TunnelId, TunnelSnapshot};
pub use transport::Transport;
