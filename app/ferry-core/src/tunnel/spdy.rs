//! kubectl's port-forward protocol: SPDY/3.1 inside one WebSocket per pod (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+ speaks and API servers 1.30+ accept).
//!
//! One [`SpdyConnection`] carries any number of local connections to one pod: each gets an
//! `error` and a `data` stream (headers `streamType`, `port`, `requestID`, as client-go sends
//! them), opened on a WebSocket that is already up, so a new connection costs one round trip
//! (the data stream's SYN_REPLY) rather than a TCP+TLS handshake and an upgrade. Half-close is
//! a DATA frame with FIN, so a client that stops sending still gets the whole answer.
//!
//! Flow control: spdystream (the kubelet's side) neither sends nor honours WINDOW_UPDATE, so
//! backpressure is the transport's: the connection stops reading the WebSocket while a local
//! reader is behind (all of a pod's streams then wait, as with kubectl), and a slow pod side
//! stops the local reads through a bounded queue. Nothing buffers without bound: a stream
//! queues at most `STREAM_QUEUE` frames, and all of a connection's streams together at most
//! `CONNECTION_BUDGET` bytes, however many local connections it carries.
//!
//! The tunnel engine keeps one per (tunnel, pod) (see [`super::transport`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use spdy::{Decoder, Encoder, Frame, HeaderBlock};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::PollSender;

/// The WebSocket subprotocol of kubectl's SPDY tunnel.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How often the connection pings the server (kubectl: every 10 s), which also keeps idle
/// load balancers from closing it.
const PING_EVERY: Duration = Duration::from_secs(10);

/// How long a new stream may wait for its SYN_REPLY.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stream that was reset or cut off waits for the pod side's reason.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// Bytes read from a local connection per DATA frame.
const UP_CHUNK: usize = 64 * 1024;

/// Bytes of frames written to the WebSocket before it is flushed, at most.
const MESSAGE_LIMIT: usize = 256 * 1024;

/// A DATA frame at least this big is sent as its own WebSocket message rather than copied
/// into one with the frames around it.
const OWN_MESSAGE: usize = 16 * 1024;

/// DATA frames queued per stream towards the local side before the connection stops reading:
/// with the kubelet's 32 KiB frames (kubesim's are 64 KiB) a stream whose local reader stalls
/// holds at most 128 KiB (256 KiB) of the connection's budget, so one stalled reader leaves the
/// rest of the budget to the pod's other streams.
const STREAM_QUEUE: usize = 4;

/// Bytes from the pod a connection holds for its local readers at most, over all its streams:
/// 1,000 busy connections to one pod cost 16 MiB of buffers, not 1,000 full stream queues.
/// The connection stops reading the WebSocket (as for a full stream queue) until readers catch
/// up; only if many local readers stall at once does that hold up the pod's other streams.
const CONNECTION_BUDGET: usize = 16 << 20;

/// Why the SPDY tunnel could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The API server answered the upgrade with something else than 101 (an older server
    /// without SPDY tunnelling answers 400; the caller may fall back to the v4 WebSocket).
    #[error("the API server refused the SPDY port-forward tunnel (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// The request did not get an answer (unreachable, TLS, credentials): the caller maps it
    /// to words with the context's details.
    #[error("the port-forward request failed: {0}")]
    Api(#[source] kube::Error),
    #[error("the port-forward tunnel could not be opened: {0}")]
    Connect(String),
    /// The connection is gone or going away: open a new one.
    #[error("the port-forward connection to the pod is closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("the pod did not accept a port-forward stream within {0:?}")]
    NoReply(Duration),
    /// The pod side said why the stream failed (the kubelet's words, e.g. connection refused).
    #[error("{0}")]
    Pod(String),
}

/// What a stream's reader gets.
enum Chunk {
    /// Data, with its share of the connection's budget, given back once it is consumed.
    Data(Bytes, OwnedSemaphorePermit),
    Fin,
    Reset(u32),
}

/// What the writer task sends.
enum Out {
    Frame(Frame),
    /// A DATA frame its stream encoded itself (header and payload in one buffer), so the
    /// local bytes are copied once on their way into the WebSocket message.
    Encoded(Bytes),
    Open {
        port: u16,
        opened: oneshot::Sender<Result<Streams, SpdyError>>,
    },
}

/// The two streams of one local connection, as the writer registered them.
struct Streams {
    data_id: u32,
    data_rx: mpsc::Receiver<Chunk>,
    error_rx: mpsc::Receiver<Chunk>,
    reply: oneshot::Receiver<()>,
}

/// A stream's receiving end as the reader sees it.
struct Slot {
    tx: mpsc::Sender<Chunk>,
    reply: Option<oneshot::Sender<()>>,
}

struct Shared {
    slots: Mutex<HashMap<u32, Slot>>,
    /// Bytes of `CONNECTION_BUDGET` not queued for a local reader.
    budget: Arc<Semaphore>,
    closed: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            slots: Mutex::default(),
            budget: Arc::new(Semaphore::new(CONNECTION_BUDGET)),
            closed: AtomicBool::new(false),
            why: Mutex::default(),
        })
    }

    fn close(&self, why: impl Into<String>) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            *lock(&self.why) = Some(why.into());
        }
        // Every stream's reader sees its queue end.
        lock(&self.slots).clear();
    }

    fn closed_error(&self) -> SpdyError {
        SpdyError::Closed(lock(&self.why).clone())
    }
}

/// One SPDY-over-WebSocket port-forward connection to a pod, shared by all of a tunnel's
/// connections to that pod. Cheap to clone; the connection ends when the last clone is dropped.
#[derive(Clone)]
pub struct SpdyConnection {
    out: mpsc::Sender<Out>,
    shared: Arc<Shared>,
    tasks: Arc<AbortOnDrop>,
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl SpdyConnection {
    /// Opens the tunnel to `pod` in `namespace` through `client` (its auth, TLS and proxy).
    pub async fn connect(
        client: &kube::Client,
        namespace: &str,
        pod: &str,
    ) -> Result<Self, SpdyError> {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/portforward");
        // One WebSocket carries every connection to the pod: tungstenite's default buffers.
        let config = WebSocketConfig::default();
        match super::upgrade::websocket(client, &path, TUNNEL_PROTOCOL, config).await {
            Ok(ws) => Ok(Self::start(ws)),
            Err(kube::Error::Api(status)) => Err(SpdyError::Refused {
                status: status.code,
                message: status.message,
            }),
            Err(kube::Error::UpgradeConnection(
                kube::client::UpgradeConnectionError::SecWebSocketProtocolMismatch,
            )) => Err(SpdyError::Refused {
                status: 101,
                message: format!("the server did not switch to {TUNNEL_PROTOCOL}"),
            }),
            Err(e @ (kube::Error::UpgradeConnection(_) | kube::Error::HttpError(_))) => {
                Err(SpdyError::Connect(e.to_string()))
            }
            Err(e) => Err(SpdyError::Api(e)),
        }
    }

    fn start<S>(ws: WebSocketStream<S>) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, stream) = ws.split();
        let shared = Shared::new();
        let (out, queued) = mpsc::channel(64);
        let writer = tokio::spawn(write_loop(sink, queued, shared.clone()));
        let reader = tokio::spawn(read_loop(stream, out.clone(), shared.clone()));
        Self {
            out,
            shared,
            tasks: Arc::new(AbortOnDrop(vec![writer, reader])),
        }
    }

    /// Whether `other` is a clone of this connection.
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether new streams can still be opened (false after GOAWAY or a broken connection).
    pub fn is_open(&self) -> bool {
        !self.shared.closed.load(Ordering::SeqCst)
    }

    /// Forwards `local` to `port` of the pod until both directions have ended. A half-close
    /// of either side is passed on while the other direction keeps flowing.
    pub async fn forward(&self, port: u16, local: TcpStream) -> Result<ForwardStats, SpdyError> {
        let SpdyStream {
            mut reader,
            mut writer,
            errors,
        } = self.open_stream(port).await?;
        let (mut read, mut write) = local.into_split();
        let up = async move {
            let _ = tokio::io::copy(&mut read, &mut writer).await;
            let _ = writer.shutdown().await;
        };
        let down = async move {
            let copied = tokio::io::copy_buf(&mut reader, &mut write).await;
            let _ = write.shutdown().await;
            (copied, reader.cut_off(), reader.received, reader)
        };
        let reason = errors.message();
        let grace = tokio::time::sleep(REPLY_TIMEOUT);
        tokio::pin!(up, down, reason, grace);
        // The local side's end of input only half-closes; the answer keeps coming until the
        // pod side ends, and then its error stream says whether it failed. The upload goes on
        // meanwhile (the pod may still be reading after it finished sending).
        let mut up_done = false;
        let mut ended: Option<(std::io::Result<u64>, bool, u64, StreamReader)> = None;
        let mut failed = false;
        let reason = loop {
            tokio::select! {
                d = &mut down, if ended.is_none() => {
                    failed = d.0.is_err();
                    if failed {
                        // Reset or cut off: the error stream may never end; take what comes soon.
                        grace.as_mut().reset(tokio::time::Instant::now() + ERROR_GRACE);
                    }
                    ended = Some(d);
                }
                () = &mut up, if !up_done => up_done = true,
                r = &mut reason, if ended.is_some() => break r,
                () = &mut grace, if failed => break None,
            }
        };
        // The loop ends only once the download has.
        let Some((copied, cut_off, received, _reader)) = ended else {
            return Err(self.shared.closed_error());
        };
        if let Some(reason) = reason {
            return Err(SpdyError::Pod(reason));
        }
        match copied {
            Ok(received) => Ok(ForwardStats { received }),
            Err(e) if cut_off => Err(SpdyError::Closed(Some(e.to_string()))),
            Err(_) => Ok(ForwardStats { received }),
        }
    }

    /// Opens one local connection's stream pair to `port` and waits for the pod side to accept
    /// it (one round trip). Nothing has been sent towards the application yet when this
    /// fails, so the caller may retry on another connection.
    pub async fn open_stream(&self, port: u16) -> Result<SpdyStream, SpdyError> {
        if !self.is_open() {
            return Err(self.shared.closed_error());
        }
        let (opened, answer) = oneshot::channel();
        self.out
            .send(Out::Open { port, opened })
            .await
            .map_err(|_| self.shared.closed_error())?;
        let streams = answer.await.map_err(|_| self.shared.closed_error())??;
        let Streams {
            data_id,
            data_rx,
            error_rx,
            mut reply,
        } = streams;
        let state = Arc::new(StreamState {
            data_id,
            shared: self.shared.clone(),
            out: self.out.clone(),
            local_fin: AtomicBool::new(false),
            remote_fin: AtomicBool::new(false),
            cut_off: AtomicBool::new(false),
            _connection: self.tasks.clone(),
        });
        match tokio::time::timeout(REPLY_TIMEOUT, &mut reply).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.shared.closed_error()),
            Err(_) => return Err(SpdyError::NoReply(REPLY_TIMEOUT)),
        }
        Ok(SpdyStream {
            reader: StreamReader {
                rx: data_rx,
                pending: Bytes::new(),
                held: None,
                ended: None,
                received: 0,
                state: state.clone(),
            },
            writer: StreamWriter {
                out: PollSender::new(self.out.clone()),
                state,
            },
            errors: PodErrors { rx: error_rx },
        })
    }
}

/// One local connection's way to the pod on a [`SpdyConnection`]: the pod's bytes come out of
/// `reader`, bytes written to `writer` go to the pod (shutting it down half-closes), and
/// `errors` says why the pod side failed, if it did. Dropping the parts before both sides
/// have finished resets the stream, so the pod side stops too.
pub struct SpdyStream {
    pub reader: StreamReader,
    pub writer: StreamWriter,
    pub errors: PodErrors,
}

/// What the reader and writer of one stream share; resets the stream when both are gone
/// before it ended both ways.
struct StreamState {
    data_id: u32,
    shared: Arc<Shared>,
    out: mpsc::Sender<Out>,
    local_fin: AtomicBool,
    remote_fin: AtomicBool,
    cut_off: AtomicBool,
    /// Keeps the connection's tasks running while the stream is in use, even after the
    /// connection itself was dropped from its pool.
    _connection: Arc<AbortOnDrop>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        {
            let mut slots = lock(&self.shared.slots);
            slots.remove(&self.data_id);
            slots.remove(&(self.data_id - 2));
        }
        let finished =
            self.local_fin.load(Ordering::Relaxed) && self.remote_fin.load(Ordering::Relaxed);
        if finished || self.cut_off.load(Ordering::Relaxed) {
            return;
        }
        let reset = Out::Frame(Frame::RstStream {
            stream_id: self.data_id,
            status: spdy::rst::CANCEL,
        });
        if let Err(mpsc::error::TrySendError::Full(reset)) = self.out.try_send(reset) {
            let out = self.out.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = out.send(reset).await;
                });
            }
        }
    }
}

/// How the pod-to-local direction of a stream ended.
#[derive(Debug, Clone, Copy)]
enum ReadEnd {
    Fin,
    Reset(u32),
    CutOff,
}

/// The pod's bytes of one stream, read straight out of the frames that carried them.
pub struct StreamReader {
    rx: mpsc::Receiver<Chunk>,
    pending: Bytes,
    /// `pending`'s share of the connection's budget.
    held: Option<OwnedSemaphorePermit>,
    ended: Option<ReadEnd>,
    received: u64,
    state: Arc<StreamState>,
}

impl StreamReader {
    /// Whether the stream ended because its connection did (not because the pod side ended
    /// or reset it): a connection over which nothing was exchanged can then be retried.
    pub fn cut_off(&self) -> bool {
        matches!(self.ended, Some(ReadEnd::CutOff))
    }
}

impl tokio::io::AsyncBufRead for StreamReader {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                return std::task::Poll::Ready(Ok(&this.pending));
            }
            match this.ended {
                Some(ReadEnd::Fin) => return std::task::Poll::Ready(Ok(&[])),
                Some(ReadEnd::Reset(status)) => {
                    return std::task::Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        format!("the pod side reset the stream (status {status})"),
                    )));
                }
                Some(ReadEnd::CutOff) => {
                    return std::task::Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        this.state.shared.closed_error().to_string(),
                    )));
                }
                None => {}
            }
            match std::task::ready!(this.rx.poll_recv(cx)) {
                Some(Chunk::Data(data, held)) => {
                    this.received += data.len() as u64;
                    this.pending = data;
                    this.held = Some(held);
                }
                Some(Chunk::Fin) => {
                    this.state.remote_fin.store(true, Ordering::Relaxed);
                    this.ended = Some(ReadEnd::Fin);
                }
                Some(Chunk::Reset(status)) => {
                    this.state.remote_fin.store(true, Ordering::Relaxed);
                    this.ended = Some(ReadEnd::Reset(status));
                }
                None => {
                    this.state.cut_off.store(true, Ordering::Relaxed);
                    this.ended = Some(ReadEnd::CutOff);
                }
            }
        }
    }

    fn consume(self: std::pin::Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        let amount = amount.min(this.pending.len());
        bytes::Buf::advance(&mut this.pending, amount);
        if this.pending.is_empty() {
            // An empty slice still owns its frame's buffer: let both go, or each of 1,000 idle
            // connections would keep its last 64 KiB frame resident outside the budget.
            this.pending = Bytes::new();
            this.held = None;
        }
    }
}

impl tokio::io::AsyncRead for StreamReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use tokio::io::AsyncBufRead;
        let available = std::task::ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        std::task::Poll::Ready(Ok(()))
    }
}

/// The pod-bound side of one stream: each write becomes a DATA frame (at most 64 KiB),
/// queued for the connection's writer; shutting down sends DATA+FIN (half-close).
pub struct StreamWriter {
    out: PollSender<Out>,
    state: Arc<StreamState>,
}

impl StreamWriter {
    fn gone(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            self.state.shared.closed_error().to_string(),
        )
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if data.is_empty() {
            return std::task::Poll::Ready(Ok(0));
        }
        if self.state.local_fin.load(Ordering::Relaxed) {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        if std::task::ready!(self.out.poll_reserve(cx)).is_err() {
            return std::task::Poll::Ready(Err(self.gone()));
        }
        let n = data.len().min(UP_CHUNK);
        let mut frame = BytesMut::new();
        if let Err(e) = spdy::encode_data_header(self.state.data_id, false, n, &mut frame) {
            return std::task::Poll::Ready(Err(std::io::Error::other(e)));
        }
        frame.extend_from_slice(&data[..n]);
        if self.out.send_item(Out::Encoded(frame.freeze())).is_err() {
            return std::task::Poll::Ready(Err(self.gone()));
        }
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // The connection's writer sends queued frames as soon as it can.
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.state.local_fin.load(Ordering::Relaxed) {
            return std::task::Poll::Ready(Ok(()));
        }
        if std::task::ready!(self.out.poll_reserve(cx)).is_err() {
            return std::task::Poll::Ready(Err(self.gone()));
        }
        let frame = Frame::Data {
            stream_id: self.state.data_id,
            fin: true,
            data: Bytes::new(),
        };
        if self.out.send_item(Out::Frame(frame)).is_err() {
            return std::task::Poll::Ready(Err(self.gone()));
        }
        self.state.local_fin.store(true, Ordering::Relaxed);
        std::task::Poll::Ready(Ok(()))
    }
}

/// The stream on which the pod side reports why a connection failed (the kubelet's words,
/// "connection refused" and the like).
pub struct PodErrors {
    rx: mpsc::Receiver<Chunk>,
}

impl PodErrors {
    /// The pod side's message once its error stream has ended; `None` when it ended empty
    /// (the connection went fine) or was cut off without a word.
    pub async fn message(mut self) -> Option<String> {
        let mut text = Vec::new();
        while let Some(chunk) = self.rx.recv().await {
            match chunk {
                Chunk::Data(b, _) => text.extend_from_slice(&b),
                Chunk::Fin | Chunk::Reset(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&text).trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

/// What one forwarded connection carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardStats {
    /// Bytes from the pod to the local client.
    pub received: u64,
}

async fn write_loop<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
    mut queued: mpsc::Receiver<Out>,
    shared: Arc<Shared>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(mut encoder) = Encoder::new() else {
        shared.close("could not set up header compression");
        return;
    };
    let mut next_id = 1u32;
    let mut request_id = 0u64;
    let mut ping_id = 1u32;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut buf = BytesMut::new();
    loop {
        let first = tokio::select! {
            out = queued.recv() => match out {
                Some(out) => out,
                None => break,
            },
            _ = ping.tick() => {
                ping_id = ping_id.wrapping_add(2) & 0x7fff_ffff;
                Out::Frame(Frame::Ping { id: ping_id })
            }
        };
        let mut next = Some(first);
        // Bytes handed to the sink in this batch: small frames are coalesced into `buf`, a
        // big DATA frame goes as a message of its own (not copied into `buf`).
        let mut batched = 0;
        while let Some(out) = next.take() {
            let encoded = match out {
                Out::Frame(frame) => encoder.encode(&frame, &mut buf).map_err(|e| e.to_string()),
                Out::Encoded(frame) if frame.len() < OWN_MESSAGE => {
                    buf.extend_from_slice(&frame);
                    Ok(())
                }
                Out::Encoded(frame) => {
                    batched += frame.len();
                    let coalesced = (!buf.is_empty()).then(|| buf.split().freeze());
                    for message in coalesced.into_iter().chain([frame]) {
                        if let Err(e) = sink.feed(Message::Binary(message)).await {
                            shared.close(format!("writing to the API server failed: {e}"));
                            return;
                        }
                    }
                    Ok(())
                }
                Out::Open { port, opened } => {
                    if shared.closed.load(Ordering::SeqCst) {
                        let _ = opened.send(Err(shared.closed_error()));
                        Ok(())
                    } else {
                        request_id += 1;
                        let error_id = next_id;
                        let data_id = error_id + 2;
                        next_id += 4;
                        let (new, frames) = open_frames(port, request_id, error_id, data_id);
                        {
                            let mut slots = lock(&shared.slots);
                            slots.insert(error_id, new.error_slot);
                            slots.insert(data_id, new.data_slot);
                        }
                        let _ = opened.send(Ok(new.streams));
                        frames
                            .iter()
                            .try_for_each(|f| encoder.encode(f, &mut buf))
                            .map_err(|e| e.to_string())
                    }
                }
            };
            if let Err(e) = encoded {
                shared.close(format!("could not encode a frame: {e}"));
                return;
            }
            if batched + buf.len() < MESSAGE_LIMIT {
                next = queued.try_recv().ok();
            }
        }
        if !buf.is_empty()
            && let Err(e) = sink.feed(Message::Binary(buf.split().freeze())).await
        {
            shared.close(format!("writing to the API server failed: {e}"));
            return;
        }
        if let Err(e) = sink.flush().await {
            shared.close(format!("writing to the API server failed: {e}"));
            return;
        }
    }
    let _ = sink.close().await;
}

struct Opened {
    streams: Streams,
    error_slot: Slot,
    data_slot: Slot,
}

/// The frames that open one local connection's streams, as kubectl sends them: the error
/// stream (closed for writing at once), then the data stream.
fn open_frames(port: u16, request_id: u64, error_id: u32, data_id: u32) -> (Opened, Vec<Frame>) {
    let headers = |stream_type: &str| {
        HeaderBlock::new()
            .with("streamtype", stream_type)
            .with("port", &port.to_string())
            .with("requestid", &request_id.to_string())
    };
    let (error_tx, error_rx) = mpsc::channel(4);
    let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
    let (reply_tx, reply) = oneshot::channel();
    let frames = vec![
        Frame::SynStream {
            stream_id: error_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers("error"),
        },
        Frame::Data {
            stream_id: error_id,
            fin: true,
            data: Bytes::new(),
        },
        Frame::SynStream {
            stream_id: data_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers("data"),
        },
    ];
    (
        Opened {
            streams: Streams {
                data_id,
                data_rx,
                error_rx,
                reply,
            },
            error_slot: Slot {
                tx: error_tx,
                reply: None,
            },
            data_slot: Slot {
                tx: data_tx,
                reply: Some(reply_tx),
            },
        },
        frames,
    )
}

async fn read_loop<S>(
    mut stream: futures::stream::SplitStream<WebSocketStream<S>>,
    out: mpsc::Sender<Out>,
    shared: Arc<Shared>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut deframer = Deframer::default();
    let why = loop {
        let message = match stream.next().await {
            None => break "the API server closed the connection".to_string(),
            Some(Err(e)) => break format!("reading from the API server failed: {e}"),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(f) if !f.reason.is_empty() => format!("closed: {}", f.reason),
                    _ => "the API server closed the connection".to_string(),
                };
            }
            Some(Ok(_)) => continue,
        };
        let frames = match deframer.push(message) {
            Ok(frames) => frames,
            Err(e) => {
                shared.close(format!("the API server sent bad SPDY: {e}"));
                return;
            }
        };
        for frame in frames {
            if !dispatch(frame, &out, &shared).await {
                return;
            }
        }
    };
    shared.close(why);
}

/// Turns the WebSocket's messages back into frames, which the server cuts into messages
/// wherever it likes (kubesim: up to 256 KiB of frames each; a frame may straddle two).
///
/// Each DATA payload handed on owns an allocation of its own size: a slice of the message
/// would keep the whole message's buffer alive for as long as that one frame waits for its
/// local reader, so the connection budget would bound the bytes counted, not the memory held.
/// Whole frames are read in place and their payload copied once; a frame split across
/// messages is gathered in `partial`, which becomes its payload with no further copy.
#[derive(Default)]
struct Deframer {
    decoder: Decoder,
    partial: BytesMut,
}

impl Deframer {
    fn push(&mut self, mut message: Bytes) -> Result<Vec<Frame>, spdy::DecodeError> {
        let mut frames = Vec::new();
        while !self.partial.is_empty() {
            // Complete the frame begun in an earlier message, taking no more of this one than
            // it needs: first its 8-byte header, then the rest of its length.
            let end = frame_len(&self.partial).unwrap_or(8);
            let take = (end - self.partial.len()).min(message.len());
            self.partial.extend_from_slice(&message.split_to(take));
            if let Some(frame) = self.decoder.decode(&mut self.partial)? {
                frames.push(frame);
            } else if message.is_empty() {
                return Ok(frames);
            }
        }
        while let Some(frame) = self.decoder.decode_bytes(&mut message)? {
            frames.push(match frame {
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => Frame::Data {
                    stream_id,
                    fin,
                    data: Bytes::copy_from_slice(&data),
                },
                other => other,
            });
        }
        // Room for the whole frame at once, so gathering it never moves it again.
        self.partial.reserve(frame_len(&message).unwrap_or(8));
        self.partial.extend_from_slice(&message);
        Ok(frames)
    }
}

/// The length, header included, of the frame `bytes` begin with, once its header is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..8)?;
    Some(8 + (usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7])))
}

/// Handles one frame from the server; `false` when the connection must end.
async fn dispatch(frame: Frame, out: &mpsc::Sender<Out>, shared: &Shared) -> bool {
    match frame {
        Frame::SynReply { stream_id, fin, .. } => {
            let reply = lock(&shared.slots)
                .get_mut(&stream_id)
                .and_then(|s| s.reply.take());
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            if fin {
                deliver(shared, stream_id, Chunk::Fin).await;
            }
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            if !data.is_empty() {
                // The pod's bytes wait for room in the budget first (backpressure).
                let share = u32::try_from(data.len().min(CONNECTION_BUDGET)).unwrap_or(u32::MAX);
                let Ok(held) = shared.budget.clone().acquire_many_owned(share).await else {
                    return false;
                };
                deliver(shared, stream_id, Chunk::Data(data, held)).await;
            }
            if fin {
                deliver(shared, stream_id, Chunk::Fin).await;
                lock(&shared.slots).remove(&stream_id);
            }
        }
        Frame::RstStream { stream_id, status } => {
            deliver(shared, stream_id, Chunk::Reset(status)).await;
            lock(&shared.slots).remove(&stream_id);
        }
        Frame::Ping { id } => {
            // Even ids are the server's pings: echo them. Odd ones answer ours.
            if id % 2 == 0 && out.send(Out::Frame(Frame::Ping { id })).await.is_err() {
                return false;
            }
        }
        Frame::GoAway { .. } => {
            // No new streams; those open finish.
            shared.closed.store(true, Ordering::SeqCst);
            *lock(&shared.why) = Some("the API server is going away".into());
        }
        Frame::SynStream { stream_id, .. } => {
            let _ = out
                .send(Out::Frame(Frame::RstStream {
                    stream_id,
                    status: spdy::rst::REFUSED_STREAM,
                }))
                .await;
        }
        Frame::Settings { .. }
        | Frame::WindowUpdate { .. }
        | Frame::Headers { .. }
        | Frame::Unknown { .. } => {}
    }
    true
}

/// Hands a chunk to its stream, waiting for room (backpressure).
async fn deliver(shared: &Shared, stream_id: u32, chunk: Chunk) {
    let tx = lock(&shared.slots).get(&stream_id).map(|s| s.tx.clone());
    if let Some(tx) = tx {
        let _ = tx.send(chunk).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_bytes(frames: &[Frame]) -> BytesMut {
        let mut encoder = Encoder::new().expect("zlib");
        let mut out = BytesMut::new();
        for f in frames {
            encoder.encode(f, &mut out).expect("encodes");
        }
        out
    }

    fn data(stream_id: u32, len: usize, fill: u8) -> Frame {
        Frame::Data {
            stream_id,
            fin: false,
            data: Bytes::from(vec![fill; len]),
        }
    }

    #[test]
    fn frames_come_back_whole_wherever_the_messages_are_cut() {
        let frames = vec![
            data(1, 70_000, 1),
            Frame::Ping { id: 2 },
            data(3, 10, 2),
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::new(),
            },
            data(5, 65_536, 3),
        ];
        let wire = frames_bytes(&frames).freeze();
        for cut in [1, 7, 8, 9, 4_096, 65_544, 70_007, 70_008, 70_009, 100_000] {
            for second_cut in [cut + 1, cut + 9, cut + 70_000] {
                let (a, rest) = wire.split_at(cut.min(wire.len()));
                let (b, c) = rest.split_at((second_cut - cut).min(rest.len()));
                let mut deframer = Deframer::default();
                let mut got = Vec::new();
                for part in [a, b, c] {
                    got.extend(deframer.push(Bytes::copy_from_slice(part)).expect("valid"));
                }
                assert_eq!(got, frames, "cut at {cut} and {second_cut}");
                assert!(deframer.partial.is_empty(), "cut at {cut}: bytes left over");
            }
        }
    }

    /// A frame buffer that says when it is freed.
    struct Watched(Vec<u8>, Arc<AtomicBool>);

    impl AsRef<[u8]> for Watched {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_consumed_frame_is_freed_while_the_stream_waits_for_the_next() {
        use tokio::io::AsyncBufReadExt;
        let shared = Shared::new();
        let (out, _queued) = mpsc::channel(4);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut reader = StreamReader {
            rx,
            pending: Bytes::new(),
            held: None,
            ended: None,
            received: 0,
            state: Arc::new(StreamState {
                data_id: 3,
                shared: shared.clone(),
                out,
                local_fin: AtomicBool::new(true),
                remote_fin: AtomicBool::new(true),
                cut_off: AtomicBool::new(false),
                _connection: Arc::new(AbortOnDrop(Vec::new())),
            }),
        };
        let freed = Arc::new(AtomicBool::new(false));
        let frame = Bytes::from_owner(Watched(vec![7; 1000], freed.clone()));
        let held = shared
            .budget
            .clone()
            .acquire_many_owned(1000)
            .await
            .unwrap();
        tx.send(Chunk::Data(frame, held)).await.unwrap();
        assert_eq!(reader.fill_buf().await.unwrap().len(), 1000);
        reader.consume(999);
        assert!(!freed.load(Ordering::SeqCst));
        reader.consume(1);
        assert!(
            freed.load(Ordering::SeqCst),
            "the consumed frame's buffer is still held"
        );
        assert_eq!(shared.budget.available_permits(), CONNECTION_BUDGET);
    }

    #[test]
    fn a_payload_never_holds_on_to_the_message_it_came_in() {
        let frames = vec![data(1, 1_000, 7), data(3, 2_000, 8), data(5, 3_000, 9)];
        let message = frames_bytes(&frames).freeze();
        let span = message.as_ptr_range();
        let got = Deframer::default().push(message.clone()).expect("valid");
        assert_eq!(got, frames);
        for frame in got {
            let Frame::Data { data, .. } = frame else {
                panic!("not data: {frame:?}");
            };
            assert!(
                !span.contains(&data.as_ptr()),
                "a {}-byte payload is a slice of its message",
                data.len()
            );
        }
    }
}
