//! The data path: one accepted local connection ↔ one port-forward WebSocket to a pod.
//!
//! Each local connection gets its own WebSocket (`Api::<Pod>::portforward`), because the v4
//! port-forward protocol carries exactly one TCP stream per port per WebSocket. Bytes are copied
//! through fixed 64 KiB buffers (kube's side adds a bounded 1 MiB pipe), so a slow reader slows
//! the writer instead of growing memory. When the pod side ends (pod deleted, error on the
//! error channel) the local connection is closed; nothing else is touched, so one pod dying
//! never disturbs connections to other pods. A client's half-close never cuts off the pod's
//! answer (see [`HalfClose`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Interest, ReadBuf,
};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::picker::{Pick, Picker, Routes};
use super::stats::{Counters, TunnelCell};
use crate::errors::{Access, ClusterError};

/// Copy buffer from the pod to the local client. Large, because downloads are where throughput
/// matters (256 KiB measured ~1.5x faster than 64 KiB through kubesim); the buffer is
/// zero-allocated, so untouched pages of idle connections cost no resident memory.
const DOWN_BUFFER: usize = 256 * 1024;

/// Copy buffer from the local client to the pod.
const UP_BUFFER: usize = 64 * 1024;

/// A port-forward request unanswered this long makes the tunnel say "API server unreachable"
/// (the attempt itself may go on until `connect_timeout`): a paused or cut-off server shows
/// within 2 s, while an answer that comes later still counts.
const STALL_NOTICE: Duration = Duration::from_millis(1500);

/// At most this many pods are tried for one connection before it is given up.
const MAX_PODS_PER_CONNECTION: usize = 3;

/// What every connection of one tunnel port shares.
pub(crate) struct PortPath {
    pub cell: Arc<TunnelCell>,
    pub pods: Api<Pod>,
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

async fn connect_and_copy(path: &PortPath, client: TcpStream, peer: SocketAddr) {
    let Some((pick, mut forwarder)) = open(path, peer).await else {
        return;
    };
    let opened = std::time::Instant::now();
    let (Some(stream), Some(error)) = (
        forwarder.take_stream(pick.port),
        forwarder.take_error(pick.port),
    ) else {
        path.cell.attempt_failed(
            opened,
            peer,
            format!("pod {}: port-forward stream missing", pick.pod),
        );
        return;
    };
    path.cell.api_answered();
    tracing::debug!(%peer, pod = %pick.pod, port = pick.port, "connection forwarded");
    let pod_error = async {
        match error.await {
            Some(message) => message,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = copy(path, client, stream, HalfClose::Unsupported) => {}
        message = pod_error => {
            path.cell.attempt_failed(opened, peer, format!("pod {}: {}", pick.pod, message.trim()));
        }
    }
    forwarder.abort();
}

/// Whether the stream to the pod can carry a half-close ("no more data from me") while data
/// keeps flowing the other way.
///
/// The v4 WebSocket port-forward protocol (kube-rs's `Portforwarder`) cannot: ending the
/// pod-bound side makes kube-rs stop delivering the pod's data and close the WebSocket, which
/// cut off the tail of answers to clients that half-close (`nc -N`, HTTP/1.0, backup tools).
/// SPDY streams can.
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

/// Copy both ways until the pod side ends (after delivering everything it sent) or the client
/// goes away. A client's half-close is passed on only when the pod stream can carry it
/// (`half_close`); otherwise the pod-bound side simply stays open, so the pod's answer is
/// never cut off.
async fn copy<S>(path: &PortPath, client: TcpStream, pod: S, half_close: HalfClose)
where
    S: AsyncRead + AsyncWrite,
{
    let counters = &path.cell.counters;
    let (client_read, client_write) = client.into_split();
    let (pod_read, mut pod_write) = tokio::io::split(pod);
    let mut up_reader = BufReader::with_capacity(
        UP_BUFFER,
        Counted {
            inner: client_read,
            count: &counters.bytes_sent,
        },
    );
    let mut down_reader = BufReader::with_capacity(DOWN_BUFFER, pod_read);
    let mut down_writer = Counted {
        inner: client_write,
        count: &counters.bytes_received,
    };
    // The client-to-pod half owns its ends and hands them back when it finishes, so the
    // client socket can then be watched for a reset while the answer is still flowing.
    let up = async move {
        let end = loop {
            let chunk = match up_reader.fill_buf().await {
                Ok([]) => break Upstream::Eof,
                Ok(chunk) => chunk,
                Err(_) => break Upstream::ClientGone,
            };
            let n = chunk.len();
            if pod_write.write_all(chunk).await.is_err() {
                break Upstream::PodGone;
            }
            up_reader.consume(n);
        };
        if matches!(end, Upstream::Eof) {
            if half_close == HalfClose::Forward {
                let _ = pod_write.shutdown().await;
            } else {
                let _ = pod_write.flush().await;
            }
        }
        (end, up_reader.into_inner().inner, pod_write)
    };
    let down = async {
        // The pod's first bytes (not a stream merely opening) are the evidence that the path
        // works, which clears "degraded". Checked once per connection, as the data arrives.
        if matches!(down_reader.fill_buf().await, Ok(chunk) if !chunk.is_empty()) {
            path.cell.pod_replied();
        }
        let _ = tokio::io::copy_buf(&mut down_reader, &mut down_writer).await;
        let _ = down_writer.inner.shutdown().await;
    };
    tokio::pin!(up, down);
    let mut up_open = true;
    // After the client's half-close: its read half (to watch for a reset) and the pod-bound
    // half, kept open on purpose.
    let mut half_closed: Option<(tokio::net::tcp::OwnedReadHalf, tokio::io::WriteHalf<S>)> = None;
    loop {
        tokio::select! {
            () = &mut down => return,
            (end, client_read, pod_write) = &mut up, if up_open => {
                up_open = false;
                match end {
                    Upstream::ClientGone => return,
                    Upstream::PodGone => {}
                    Upstream::Eof => {
                        keep_alive(client_read.as_ref());
                        half_closed = Some((client_read, pod_write));
                    }
                }
            }
            () = client_failed(half_closed.as_ref().map(|(c, _)| c.as_ref())), if half_closed.is_some() => return,
        }
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
async fn open(path: &PortPath, peer: SocketAddr) -> Option<(Pick, kube::api::Portforwarder)> {
    let deadline = Instant::now() + path.ready_wait;
    let mut tried: Vec<String> = Vec::new();
    let mut last_error = None;
    while tried.len() < MAX_PODS_PER_CONNECTION {
        let Some(pick) = wait_for_pick(path, peer, &tried, deadline).await else {
            break;
        };
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
) -> Result<kube::api::Portforwarder, ClusterError> {
    let access = Access::port_forward(&path.namespace, &pick.pod);
    let ports = [pick.port];
    let request = tokio::time::timeout(
        path.connect_timeout,
        path.pods.portforward(&pick.pod, &ports),
    );
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
    match answer {
        Ok(Ok(forwarder)) => Ok(forwarder),
        Ok(Err(err)) => Err(ClusterError::from_kube(
            &path.context,
            &path.url,
            &access,
            &err,
        )),
        Err(_) => Err(ClusterError::Unreachable {
            context: path.context.clone(),
            url: path.url.clone(),
            reason: format!(
                "no answer to a port-forward request within {} s",
                path.connect_timeout.as_secs_f32()
            ),
        }),
    }
}

/// Counts bytes passing through a reader or writer into a tunnel counter.
struct Counted<'a, S> {
    inner: S,
    count: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            Counters::add(self.count, read as u64);
        }
        result
    }
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
