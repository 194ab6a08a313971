//! The data path: one accepted local connection ↔ one port-forward stream to a pod.
//!
//! The stream is a SPDY stream pair on the tunnel's connection to that pod when the API server
//! offers SPDY tunnelling (see [`super::transport`]), or else a v4 WebSocket of its own. Bytes
//! are copied through bounded buffers, so a slow reader slows the writer instead of growing
//! memory. When the pod side ends (pod deleted, error on the error stream) the local connection
//! is closed; nothing else is touched, so one pod dying never disturbs connections to other
//! pods. A client's half-close never cuts off the pod's answer (see [`HalfClose`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::picker::{Pick, Picker, Routes};
use super::spdy::{SpdyError, SpdyStream};
use super::stats::{Counters, TunnelCell};
use super::transport::{PodLinks, Transport};
use super::websocket::WebSocketTunnel;
use crate::errors::{Access, ClusterError};

/// Read buffer from the local client to the pod, at most: a client that keeps filling it gets
/// a bigger one, doubling from `UP_BUFFER_FIRST`.
const UP_BUFFER: usize = 64 * 1024;

/// The read buffer a client's first bytes after a pause go into: big enough for a request,
/// small enough that 1,000 connections sending at once (each holding its buffer while the
/// pod side takes the bytes) hold 4 MiB, not 64.
const UP_BUFFER_FIRST: usize = 4 * 1024;

/// A port-forward request unanswered this long makes the tunnel say "API server unreachable"
/// (the attempt itself may go on until `connect_timeout`): a paused or cut-off server shows
/// within 2 s, while an answer that comes later still counts.
const STALL_NOTICE: Duration = Duration::from_millis(1500);

/// At most this many pods are tried for one connection before it is given up.
const MAX_PODS_PER_CONNECTION: usize = 3;

/// What every connection of one tunnel port shares.
pub(crate) struct PortPath {
    pub cell: Arc<TunnelCell>,
    pub context: String,
    pub url: String,
    pub namespace: String,
    pub routes: watch::Receiver<Arc<Routes>>,
    pub picker: Arc<Picker>,
    /// Which of the tunnel's port specs this is.
    pub index: usize,
    pub ready_wait: Duration,
    pub connect_timeout: Duration,
    /// Poked when a connection finds the API server unreachable, so the supervisor re-checks
    /// its watch at once instead of waiting for it to time out.
    pub api_trouble: Arc<Notify>,
    /// The tunnel's SPDY connections to its pods (shared by all its ports).
    pub links: Arc<PodLinks>,
}

/// Serve one accepted connection until either side ends or the tunnel stops.
pub(crate) async fn serve(
    path: Arc<PortPath>,
    client: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    let counters = &path.cell.counters;
    Counters::add(&counters.total, 1);
    Counters::add(&counters.active, 1);
    let _active = ActiveGuard(&path.cell);
    path.cell.connections_changed();
    tokio::select! {
        () = cancel.cancelled() => {}
        () = connect_and_copy(&path, client, peer) => {}
    }
}

/// Counts the connection as active until dropped, then republishes.
struct ActiveGuard<'a>(&'a TunnelCell);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0
            .counters
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.connections_changed();
    }
}

/// A stream to the pod, over whichever transport opened it.
enum PodStream {
    Spdy(SpdyStream),
    WebSocket(WebSocketTunnel),
}

async fn connect_and_copy(path: &PortPath, mut client: TcpStream, peer: SocketAddr) {
    let mut retried = false;
    loop {
        let Some((pick, stream)) = open(path, peer).await else {
            return;
        };
        path.cell.api_answered();
        tracing::debug!(%peer, pod = %pick.pod, port = pick.port, "connection forwarded");
        let opened = std::time::Instant::now();
        let failed = |message: String| {
            path.cell.attempt_failed(
                opened,
                peer,
                format!("pod {}: {}", pick.pod, message.trim()),
            );
        };
        match stream {
            PodStream::Spdy(SpdyStream {
                mut reader,
                mut writer,
                errors,
            }) => {
                let pod_error = pod_error(errors.message());
                tokio::pin!(pod_error);
                let copied = tokio::select! {
                    c = copy(path, &mut client, &mut reader, &mut writer, HalfClose::Forward) => c,
                    message = &mut pod_error => return failed(message),
                };
                if copied.end == CopyEnd::ClientGone {
                    return;
                }
                if copied.untouched() && reader.cut_off() && !retried {
                    // The connection died before a byte went either way: the client cannot
                    // tell, so it gets a fresh stream instead of a closed socket.
                    tracing::debug!(%peer, pod = %pick.pod, "stream cut off before use; retrying");
                    retried = true;
                    continue;
                }
                // Done with the pod: end our side, so the pod side ends its error stream and
                // says whether it failed (the kubelet writes its reason before closing).
                let _ = writer.shutdown().await;
                if let Ok(message) = tokio::time::timeout(ERROR_GRACE, pod_error).await {
                    failed(message);
                }
                return;
            }
            PodStream::WebSocket(WebSocketTunnel {
                mut reader,
                mut writer,
                errors,
            }) => {
                let copied = copy(
                    path,
                    &mut client,
                    &mut reader,
                    &mut writer,
                    HalfClose::Unsupported,
                )
                .await;
                // The reader stops at the pod side's error, so it is known by now.
                if copied.end == CopyEnd::Pod
                    && let Some(message) = errors.message()
                {
                    failed(message);
                }
                return;
            }
        }
    }
}

/// How long a finished SPDY stream waits for the pod side's reason once both sides are done.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// The pod side's error message; never resolves when there is none.
async fn pod_error(message: impl std::future::Future<Output = Option<String>>) -> String {
    match message.await {
        Some(message) => message,
        None => std::future::pending().await,
    }
}

/// Whether the stream to the pod can carry a half-close ("no more data from me") while data
/// keeps flowing the other way.
///
/// The v4 WebSocket port-forward protocol cannot: it has no way to end one direction, and
/// closing the WebSocket would cut off the tail of answers to clients that half-close
/// (`nc -N`, HTTP/1.0, backup tools). SPDY streams can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HalfClose {
    /// Pass the client's half-close on to the pod.
    Forward,
    /// Keep the pod-bound side open after the client's half-close; the connection ends when
    /// the pod side ends or the client goes away completely.
    Unsupported,
}

/// How the client-to-pod direction ended.
enum Upstream {
    /// The client half-closed (or closed) its sending side.
    Eof,
    /// Reading from the client failed: it is gone (reset), nothing more can be delivered.
    ClientGone,
    /// Writing to the pod failed: the pod side is ending; its last data may still be queued.
    PodGone,
}

/// After a client half-closes, TCP keepalive probes are what eventually notice a client that
/// went away without a reset (its kernel answers probes until its socket times out).
const HALF_CLOSED_KEEPALIVE: Duration = Duration::from_secs(15);

/// How a connection's copying ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyEnd {
    /// The pod side ended (after everything it sent was delivered) or failed.
    Pod,
    /// The client went away (reset, or gone while half-closed).
    ClientGone,
}

/// What one connection's copying did.
#[derive(Debug, Clone, Copy)]
struct Copied {
    end: CopyEnd,
    /// Whether the client sent anything (data or its half-close).
    client_spoke: bool,
    /// Bytes delivered from the pod to the client.
    delivered: u64,
}

impl Copied {
    /// Nothing went either way: the connection could be retried without the client noticing.
    fn untouched(&self) -> bool {
        !self.client_spoke && self.delivered == 0
    }
}

/// Copy both ways until the pod side ends (after delivering everything it sent) or the client
/// goes away. A client's half-close is passed on only when the pod stream can carry it
/// (`half_close`); otherwise the pod-bound side simply stays open, so the pod's answer is
/// never cut off.
async fn copy<R, W>(
    path: &PortPath,
    client: &mut TcpStream,
    pod_read: &mut R,
    pod_write: &mut W,
    half_close: HalfClose,
) -> Copied
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let counters = &path.cell.counters;
    let (client_read, client_write) = client.split();
    let mut down_writer = Counted {
        inner: client_write,
        count: &counters.bytes_received,
    };
    let client_spoke = std::sync::atomic::AtomicBool::new(false);
    // The client-to-pod half hands back the client's read half when it finishes, so the
    // client socket can then be watched for a reset while the answer is still flowing.
    let up = async {
        // The read buffer exists only while the client is sending: an idle connection holds
        // none (1,000 open connections would otherwise keep 64 MB of buffers resident). It
        // starts small, doubles while the client fills it (a bulk upload) and halves when
        // a read uses less than a quarter of it (requests between answers).
        let mut buffer: Vec<u8> = Vec::new();
        let mut size = UP_BUFFER_FIRST;
        let end = loop {
            if buffer.is_empty() {
                if client_read.as_ref().readable().await.is_err() {
                    break Upstream::ClientGone;
                }
                buffer = vec![0; size];
            }
            let n = match client_read.as_ref().try_read(&mut buffer) {
                Ok(0) => break Upstream::Eof,
                Ok(n) => {
                    let wanted = match n {
                        n if n == size => (size * 2).min(UP_BUFFER),
                        n if n < size / 4 => (size / 2).max(UP_BUFFER_FIRST),
                        _ => size,
                    };
                    if wanted != size {
                        size = wanted;
                        buffer.resize(size, 0);
                    }
                    n
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    buffer = Vec::new();
                    continue;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break Upstream::ClientGone,
            };
            Counters::add(&counters.bytes_sent, n as u64);
            client_spoke.store(true, std::sync::atomic::Ordering::Relaxed);
            // Flushed at once: the client may be waiting for the answer to these bytes (the v4
            // WebSocket buffers writes; a SPDY stream's flush is free).
            let chunk = &buffer[..n];
            if pod_write.write_all(chunk).await.is_err() || pod_write.flush().await.is_err() {
                break Upstream::PodGone;
            }
        };
        if matches!(end, Upstream::Eof) {
            client_spoke.store(true, std::sync::atomic::Ordering::Relaxed);
            if half_close == HalfClose::Forward {
                let _ = pod_write.shutdown().await;
            } else {
                let _ = pod_write.flush().await;
            }
        }
        (end, client_read)
    };
    let down = async {
        // The pod's first bytes (not a stream merely opening) are the evidence that the path
        // works, which clears "degraded". Checked once per connection, as the data arrives.
        if matches!(pod_read.fill_buf().await, Ok(chunk) if !chunk.is_empty()) {
            path.cell.pod_replied();
        }
        let delivered = tokio::io::copy_buf(pod_read, &mut down_writer)
            .await
            .unwrap_or_default();
        let _ = down_writer.inner.shutdown().await;
        delivered
    };
    tokio::pin!(up, down);
    let mut up_open = true;
    // After the client's half-close: its read half, to watch for a reset.
    let mut half_closed: Option<tokio::net::tcp::ReadHalf<'_>> = None;
    let end = loop {
        tokio::select! {
            delivered = &mut down => break (CopyEnd::Pod, delivered),
            (end, client_read) = &mut up, if up_open => {
                up_open = false;
                match end {
                    Upstream::ClientGone => break (CopyEnd::ClientGone, 0),
                    Upstream::PodGone => {}
                    Upstream::Eof => {
                        keep_alive(client_read.as_ref());
                        half_closed = Some(client_read);
                    }
                }
            }
            () = client_failed(half_closed.as_ref().map(AsRef::as_ref)), if half_closed.is_some() => {
                break (CopyEnd::ClientGone, 0);
            }
        }
    };
    Copied {
        end: end.0,
        client_spoke: client_spoke.load(std::sync::atomic::Ordering::Relaxed),
        delivered: end.1,
    }
}

/// Turns on TCP keepalive for a half-closed client, so one that vanishes is noticed.
fn keep_alive(client: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new().with_time(HALF_CLOSED_KEEPALIVE);
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    let keepalive = keepalive.with_interval(HALF_CLOSED_KEEPALIVE);
    if let Err(err) = socket2::SockRef::from(client).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%err, "could not turn on keepalive for a half-closed connection");
    }
}

/// Resolves when the client's socket reports an error: a reset (the client closed with unread
/// data, or its process died) or failed keepalive probes. Reading cannot tell this once the
/// client has half-closed, since every read then returns end-of-stream.
async fn client_failed(client: Option<&TcpStream>) {
    let Some(client) = client else {
        return std::future::pending().await;
    };
    loop {
        match client.ready(Interest::ERROR).await {
            Ok(ready) if ready.is_error() => return,
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}

/// Pick a pod and open a port-forward stream to it, trying other Ready pods when one fails,
/// waiting up to `ready_wait` for a Ready pod to appear.
async fn open(path: &PortPath, peer: SocketAddr) -> Option<(Pick, PodStream)> {
    let deadline = Instant::now() + path.ready_wait;
    let mut tried: Vec<String> = Vec::new();
    let mut last_error = None;
    while tried.len() < MAX_PODS_PER_CONNECTION {
        let Some(pick) = wait_for_pick(path, peer, &tried, deadline).await else {
            break;
        };
        {
            // Pods that left the routes get no new streams: let their connections close.
            let routes = path.routes.borrow();
            path.links
                .retain(|pod| routes.pods.iter().any(|p| p.name == pod));
        }
        let started = std::time::Instant::now();
        match attempt(path, &pick, started).await {
            Ok(forwarder) => return Some((pick, forwarder)),
            Err(err) => {
                let fatal = err.is_forbidden() || matches!(err, ClusterError::Unauthorized { .. });
                let unreachable = matches!(err, ClusterError::Unreachable { .. });
                let message = err.to_string();
                tracing::debug!(%peer, pod = %pick.pod, %message, "port-forward attempt failed");
                if fatal {
                    path.cell.attempt_failed(started, peer, message.clone());
                    path.cell.update_facts(|f| f.fatal = Some(message));
                    return None;
                }
                if unreachable {
                    if path.cell.api_unreachable(started) {
                        path.api_trouble.notify_one();
                    }
                    path.cell.connection_failed(peer, message);
                    return None;
                }
                last_error = Some((started, message));
                tried.push(pick.pod);
            }
        }
    }
    match last_error {
        Some((started, message)) => path.cell.attempt_failed(started, peer, message),
        None => path.cell.connection_failed(
            peer,
            format!(
                "no ready pod within {} s; connection closed",
                path.ready_wait.as_secs_f32().round()
            ),
        ),
    }
    None
}

/// The next pod for this connection, waiting (up to `deadline`) while there is none.
async fn wait_for_pick(
    path: &PortPath,
    peer: SocketAddr,
    tried: &[String],
    deadline: Instant,
) -> Option<Pick> {
    let mut routes = path.routes.clone();
    loop {
        let current = routes.borrow_and_update().clone();
        if let Some(pick) = path.picker.pick(&current, path.index, peer.ip(), tried) {
            return Some(pick);
        }
        match tokio::time::timeout_at(deadline, routes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return None,
        }
    }
}

async fn attempt(
    path: &PortPath,
    pick: &Pick,
    started: std::time::Instant,
) -> Result<PodStream, ClusterError> {
    let request = tokio::time::timeout(path.connect_timeout, open_stream(path, pick));
    tokio::pin!(request);
    let answer = match tokio::time::timeout(STALL_NOTICE, &mut request).await {
        Ok(answer) => answer,
        Err(_) => {
            if path.cell.api_unreachable(started) {
                path.api_trouble.notify_one();
            }
            request.await
        }
    };
    answer.unwrap_or_else(|_| {
        Err(ClusterError::Unreachable {
            context: path.context.clone(),
            url: path.url.clone(),
            reason: format!(
                "no answer to a port-forward request within {} s",
                path.connect_timeout.as_secs_f32()
            ),
        })
    })
}

/// Opens a stream to the pod: a SPDY stream pair on the tunnel's connection to it, or a v4
/// WebSocket of its own when the server refuses SPDY tunnelling. A refusal is only remembered
/// when the v4 WebSocket then works (so a 403 or 404 is reported in the v4 request's words,
/// and an overloaded server's 5xx does not switch the tunnel for good).
async fn open_stream(path: &PortPath, pick: &Pick) -> Result<PodStream, ClusterError> {
    let access = Access::port_forward(&path.namespace, &pick.pod);
    let from_kube =
        |err: &kube::Error| ClusterError::from_kube(&path.context, &path.url, &access, err);
    let mut refused = None;
    if !path.links.spdy_unavailable() {
        match path.links.open(&pick.pod, pick.port).await {
            Ok(stream) => {
                path.cell.set_transport(Transport::Spdy);
                return Ok(PodStream::Spdy(stream));
            }
            Err(SpdyError::Refused { status, message }) => {
                tracing::debug!(pod = %pick.pod, status, %message, "SPDY tunnel refused; trying the v4 WebSocket");
                refused = Some(status);
            }
            Err(SpdyError::Connect(reason)) => {
                tracing::debug!(pod = %pick.pod, %reason, "SPDY tunnel failed; trying the v4 WebSocket");
            }
            Err(SpdyError::Api(err)) => return Err(from_kube(&err)),
            Err(err @ (SpdyError::Closed(_) | SpdyError::NoReply(_) | SpdyError::Pod(_))) => {
                return Err(ClusterError::Other {
                    context: path.context.clone(),
                    reason: format!("pod {}: {err}", pick.pod),
                });
            }
        }
    }
    let tunnel =
        WebSocketTunnel::connect(path.links.client(), &path.namespace, &pick.pod, pick.port)
            .await
            .map_err(|e| from_kube(&e))?;
    if refused.is_some_and(|status| status != 429 && status < 500) {
        path.links.remember_spdy_unavailable();
    }
    path.cell.set_transport(Transport::WebSocket);
    Ok(PodStream::WebSocket(tunnel))
}

/// Counts the bytes written to the local client into a tunnel counter.
struct Counted<'a, S> {
    inner: S,
    count: &'a AtomicU64,
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &result {
            Counters::add(self.count, *n as u64);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
