//! Which protocol carries a tunnel's connections, and the SPDY connections a tunnel keeps open
//! to its pods.
//!
//! SPDY over WebSocket (kubectl's protocol) is preferred: one WebSocket per (tunnel, pod)
//! carries every local connection to that pod as a stream pair, so a new local connection
//! costs one round trip on a connection that is already up, and half-close works. API servers
//! that do not offer it (before 1.30, or with the `PortForwardWebsockets` gate off) refuse the
//! upgrade; the tunnel then uses the v4 WebSocket protocol, one WebSocket per local connection.
//!
//! A connection opens nothing towards the application until a local connection creates a
//! stream, so keeping one open per pod is safe for server-first protocols (MySQL, SSH).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::spdy::{SpdyConnection, SpdyError, SpdyStream};

/// The port-forward protocol a tunnel's connections travel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// SPDY/3.1 inside one WebSocket per pod (`SPDY/3.1+portforward.k8s.io`), as kubectl 1.31+.
    Spdy,
    /// One v4 channel WebSocket per local connection (`v4.channel.k8s.io`), for API servers
    /// without SPDY tunnelling; it cannot pass on a client's half-close.
    WebSocket,
}

impl Transport {
    /// Words for the tunnel details and `ferry status`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Spdy => "SPDY over WebSocket (one connection per pod)",
            Self::WebSocket => "WebSocket v4 (one connection per local connection)",
        }
    }

    /// A short name for tables.
    pub fn short(self) -> &'static str {
        match self {
            Self::Spdy => "spdy",
            Self::WebSocket => "websocket",
        }
    }
}

/// One pod's SPDY connection, behind an async lock so that concurrent local connections wait
/// for one connect instead of each opening their own.
type Link = Arc<tokio::sync::Mutex<Option<SpdyConnection>>>;

/// The SPDY connections of one tunnel, by pod, shared by all of its ports.
pub(crate) struct PodLinks {
    client: kube::Client,
    namespace: String,
    links: Mutex<HashMap<String, Link>>,
    /// The API server refused SPDY tunnelling while the v4 WebSocket worked: stop asking.
    no_spdy: AtomicBool,
    /// The latest refusal of a SPDY connect: local connections that queued behind that
    /// attempt take its answer instead of each asking again (a burst of connections to a
    /// server without SPDY tunnelling would otherwise wait in line for one refusal each).
    refused: Mutex<Option<(std::time::Instant, u16, String)>>,
}

/// How long one refusal answers the connections that queued behind it.
const REFUSAL_SHARED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

impl PodLinks {
    pub(crate) fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            links: Mutex::default(),
            no_spdy: AtomicBool::new(false),
            refused: Mutex::default(),
        }
    }

    /// The client the tunnel's port-forward requests go through (its auth, TLS and proxy).
    pub(crate) fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Whether new connections should go straight to the v4 WebSocket.
    pub(crate) fn spdy_unavailable(&self) -> bool {
        self.no_spdy.load(Ordering::Relaxed)
    }

    /// The server refused SPDY tunnelling, and the v4 WebSocket worked right after.
    pub(crate) fn remember_spdy_unavailable(&self) {
        if !self.no_spdy.swap(true, Ordering::Relaxed) {
            tracing::info!(
                namespace = %self.namespace,
                "the API server does not offer SPDY port-forward tunnelling; using the v4 WebSocket"
            );
        }
    }

    /// Opens a stream pair to `port` of `pod` on the pod's connection, connecting first when
    /// there is none or it has closed. A connection found closed (GOAWAY, broken) while
    /// opening is replaced once: nothing was sent on the failed stream, so that is safe.
    pub(crate) async fn open(&self, pod: &str, port: u16) -> Result<SpdyStream, SpdyError> {
        let mut replaced = false;
        loop {
            let connection = self.connection(pod).await?;
            match connection.open_stream(port).await {
                Ok(stream) => return Ok(stream),
                Err(SpdyError::Closed(why)) if !replaced => {
                    tracing::debug!(pod, ?why, "SPDY connection closed; opening a new one");
                    replaced = true;
                    self.forget(pod, &connection);
                }
                Err(err) => {
                    if matches!(err, SpdyError::NoReply(_)) {
                        self.forget(pod, &connection);
                    }
                    return Err(err);
                }
            }
        }
    }

    /// The open connection to `pod`, connecting when there is none.
    async fn connection(&self, pod: &str) -> Result<SpdyConnection, SpdyError> {
        let link = lock(&self.links)
            .entry(pod.to_string())
            .or_default()
            .clone();
        let mut slot = link.lock().await;
        if let Some(open) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(open.clone());
        }
        if let Some((at, status, message)) = lock(&self.refused).clone()
            && at.elapsed() < REFUSAL_SHARED_FOR
        {
            return Err(SpdyError::Refused { status, message });
        }
        match SpdyConnection::connect(&self.client, &self.namespace, pod).await {
            Ok(connection) => {
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Err(SpdyError::Refused { status, message }) => {
                *lock(&self.refused) = Some((std::time::Instant::now(), status, message.clone()));
                Err(SpdyError::Refused { status, message })
            }
            Err(err) => Err(err),
        }
    }

    /// Drops `connection` from the pool (when it is still the pod's), so the next stream to
    /// that pod connects anew. Streams open on it finish undisturbed.
    pub(crate) fn forget(&self, pod: &str, connection: &SpdyConnection) {
        let link = lock(&self.links).get(pod).cloned();
        if let Some(link) = link
            && let Ok(mut slot) = link.try_lock()
            && slot.as_ref().is_some_and(|c| c.same_as(connection))
        {
            *slot = None;
        }
    }

    /// Keeps only the connections to pods for which `keep` is true (those that can still
    /// take connections); the others close once their open streams have ended.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.links).retain(|pod, _| keep(pod));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
