//! One SPDY/3.1 connection, server side, as moby/spdystream runs it for the kubelet: client
//! streams (odd ids, increasing) are validated, answered with SYN_REPLY (or refused with
//! RST_STREAM) and handed to the application; DATA goes to the stream's reader; client pings
//! are echoed; SETTINGS and WINDOW_UPDATE are accepted and ignored, and none are sent (spdystream
//! implements no flow control, so neither does kubectl expect any).
//!
//! The transport is a stream of byte chunks in and a sink of byte chunks out, so that the same
//! session runs over an upgraded HTTP connection and inside WebSocket binary messages (where
//! message boundaries need not match frame boundaries).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, SplitSink};
use futures::{SinkExt, StreamExt};
use spdy::{Decoder, Encoder, Frame, HeaderBlock};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Stream data queued per stream before the connection's reader waits (bounds memory).
const STREAM_QUEUE: usize = 16;
/// Frames queued towards the client before writers wait.
const OUT_QUEUE: usize = 64;
/// Bytes coalesced into one transport write (one WebSocket message in the tunnel).
const WRITE_BATCH: usize = 256 * 1024;
/// Largest frame accepted from a client (spdystream writes one frame per `Write` call; client-go
/// copies in 32 KiB buffers).
const MAX_FRAME: usize = 16 * 1024 * 1024 - 1;

/// Bytes from the client, in whatever chunks the transport delivers.
pub type Incoming = BoxStream<'static, io::Result<Bytes>>;
/// Where bytes to the client go.
pub enum Outgoing {
    /// An upgraded HTTP connection.
    Io(Box<dyn AsyncWrite + Send + Unpin>),
    /// The WebSocket tunnel: each write one binary message; closing sends close code 1000.
    WebSocket(SplitSink<WebSocket, Message>),
}

impl Outgoing {
    async fn send(&mut self, bytes: Bytes) -> io::Result<()> {
        match self {
            Self::Io(w) => w.write_all(&bytes).await,
            Self::WebSocket(sink) => sink
                .send(Message::Binary(bytes))
                .await
                .map_err(io::Error::other),
        }
    }

    async fn close(&mut self) {
        match self {
            Self::Io(w) => {
                let _ = w.shutdown().await;
            }
            Self::WebSocket(sink) => {
                let close = CloseFrame {
                    code: 1000,
                    reason: "".into(),
                };
                let _ = sink.send(Message::Close(Some(close))).await;
                let _ = sink.close().await;
            }
        }
    }
}

/// A stream the client opened and the application accepted.
pub struct Stream {
    pub id: u32,
    pub headers: HeaderBlock,
    /// The client's data; ends (`None`) on the client's FIN, a reset or the end of the
    /// connection.
    pub data: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

/// Sends on one stream. Cheap to clone.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    /// Cancelled when the client resets the stream or the connection ends.
    pub reset: CancellationToken,
}

impl StreamWriter {
    /// Sends `data` (empty data is not sent). `false` once the connection is gone.
    pub async fn write(&self, data: Bytes) -> bool {
        if data.is_empty() {
            return !self.reset.is_cancelled();
        }
        self.send(data, false).await
    }

    /// Half-closes the server's side of the stream (DATA with FIN).
    pub async fn finish(&self) -> bool {
        self.send(Bytes::new(), true).await
    }

    /// Writes `data` and half-closes in one frame.
    pub async fn finish_with(&self, data: Bytes) -> bool {
        self.send(data, true).await
    }

    async fn send(&self, data: Bytes, fin: bool) -> bool {
        if self.reset.is_cancelled() {
            return false;
        }
        let frame = Frame::Data {
            stream_id: self.id,
            fin,
            data,
        };
        self.out.send(frame).await.is_ok()
    }
}

/// Ends a session from the application side: GOAWAY, then the transport closes once the
/// frames queued before it are written.
#[derive(Clone)]
pub struct SessionHandle {
    out: mpsc::Sender<Frame>,
    last_stream: Arc<std::sync::atomic::AtomicU32>,
}

impl SessionHandle {
    /// Sends GOAWAY (status OK) and closes the connection after the frames queued so far.
    pub async fn close(&self) {
        let last = self.last_stream.load(std::sync::atomic::Ordering::Relaxed);
        let _ = self
            .out
            .send(Frame::GoAway {
                last_good_stream_id: last,
                status: spdy::goaway::OK,
            })
            .await;
    }
}

/// Decides whether a new client stream is accepted: `Err(reason)` refuses it with
/// RST_STREAM REFUSED_STREAM, as spdystream does when the kubelet's handler returns an error.
pub type Validate = Box<dyn Fn(&HeaderBlock) -> Result<(), String> + Send>;

/// Starts the session's tasks. Accepted streams arrive on the returned receiver, which ends
/// when the connection does; `stop` ends the connection at once.
pub fn start(
    incoming: Incoming,
    outgoing: Outgoing,
    validate: Validate,
    stop: CancellationToken,
) -> (SessionHandle, mpsc::Receiver<Stream>) {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let last_stream = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let closed = CancellationToken::new();
    tokio::spawn(write_frames(out_rx, outgoing, closed.clone(), stop.clone()));
    let reader = Reader {
        out: out_tx.clone(),
        streams_tx,
        validate,
        open: HashMap::new(),
        last_stream: last_stream.clone(),
    };
    tokio::spawn(reader.run(incoming, stop, closed));
    (
        SessionHandle {
            out: out_tx,
            last_stream,
        },
        streams_rx,
    )
}

struct OpenStream {
    data: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
}

struct Reader {
    out: mpsc::Sender<Frame>,
    streams_tx: mpsc::Sender<Stream>,
    validate: Validate,
    open: HashMap<u32, OpenStream>,
    last_stream: Arc<std::sync::atomic::AtomicU32>,
}

impl Reader {
    async fn run(
        mut self,
        mut incoming: Incoming,
        stop: CancellationToken,
        closed: CancellationToken,
    ) {
        let mut decoder = Decoder::with_max_length(MAX_FRAME);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        'read: loop {
            let chunk = tokio::select! {
                _ = stop.cancelled() => break,
                _ = closed.cancelled() => break,
                c = incoming.next() => c,
            };
            match chunk {
                Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    tracing::debug!("SPDY connection read failed: {e}");
                    break;
                }
                None => break,
            }
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if !self.handle(frame, &stop).await {
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("SPDY protocol error from client: {e}");
                        let last = self.last_stream.load(std::sync::atomic::Ordering::Relaxed);
                        let _ = self
                            .out
                            .send(Frame::GoAway {
                                last_good_stream_id: last,
                                status: spdy::goaway::PROTOCOL_ERROR,
                            })
                            .await;
                        break 'read;
                    }
                }
            }
        }
        for (_, s) in self.open.drain() {
            s.reset.cancel();
        }
    }

    /// Handles one frame; `false` ends the connection.
    async fn handle(&mut self, frame: Frame, stop: &CancellationToken) -> bool {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
                ..
            } => self.open_stream(stream_id, fin, headers).await,
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let Some(open) = self.open.get_mut(&stream_id) else {
                    return true;
                };
                if let Some(tx) = &open.data
                    && !data.is_empty()
                {
                    let sent = tokio::select! {
                        r = tx.send(data) => r.is_ok(),
                        _ = stop.cancelled() => return false,
                        _ = open.reset.cancelled() => false,
                    };
                    if !sent {
                        open.data = None;
                    }
                }
                if fin {
                    open.data = None;
                }
                true
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(open) = self.open.remove(&stream_id) {
                    open.reset.cancel();
                }
                true
            }
            Frame::Ping { id } => {
                // Echo the client's pings (odd ids); an even id would answer a ping of ours,
                // and kubesim sends none.
                if !id.is_multiple_of(2) {
                    let _ = self.out.send(Frame::Ping { id }).await;
                }
                true
            }
            Frame::GoAway { .. } => false,
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => true,
        }
    }

    async fn open_stream(&mut self, id: u32, fin: bool, headers: HeaderBlock) -> bool {
        let last = self.last_stream.load(std::sync::atomic::Ordering::Relaxed);
        // spdystream refuses ids of the wrong parity or not above the last one with a
        // protocol error on that stream.
        if id.is_multiple_of(2) || id <= last {
            let _ = self
                .out
                .send(Frame::RstStream {
                    stream_id: id,
                    status: spdy::rst::PROTOCOL_ERROR,
                })
                .await;
            return true;
        }
        self.last_stream
            .store(id, std::sync::atomic::Ordering::Relaxed);
        if let Err(reason) = (self.validate)(&headers) {
            tracing::debug!("refusing SPDY stream {id}: {reason}");
            let _ = self
                .out
                .send(Frame::RstStream {
                    stream_id: id,
                    status: spdy::rst::REFUSED_STREAM,
                })
                .await;
            return true;
        }
        let reply = Frame::SynReply {
            stream_id: id,
            fin: false,
            headers: HeaderBlock::new(),
        };
        if self.out.send(reply).await.is_err() {
            return false;
        }
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let reset = CancellationToken::new();
        self.open.insert(
            id,
            OpenStream {
                data: (!fin).then_some(tx),
                reset: reset.clone(),
            },
        );
        let stream = Stream {
            id,
            headers,
            data: rx,
            writer: StreamWriter {
                id,
                out: self.out.clone(),
                reset,
            },
        };
        self.streams_tx.send(stream).await.is_ok()
    }
}

/// Encodes queued frames and writes them, several per transport write when they queue up.
/// Ends after a GOAWAY, on a write error, or when every sender is gone; then closes the
/// transport and cancels `closed`.
async fn write_frames(
    mut rx: mpsc::Receiver<Frame>,
    mut outgoing: Outgoing,
    closed: CancellationToken,
    stop: CancellationToken,
) {
    let mut encoder = match Encoder::new() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("SPDY encoder: {e}");
            closed.cancel();
            return;
        }
    };
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    'write: loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            _ = stop.cancelled() => None,
        };
        let Some(mut frame) = first else { break };
        loop {
            let last = matches!(frame, Frame::GoAway { .. });
            if let Err(e) = encoder.encode(&frame, &mut buf) {
                tracing::debug!("SPDY encode failed: {e}");
                break 'write;
            }
            if last {
                let _ = outgoing.send(buf.split().freeze()).await;
                break 'write;
            }
            if buf.len() >= WRITE_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => frame = next,
                Err(_) => break,
            }
        }
        if outgoing.send(buf.split().freeze()).await.is_err() {
            break;
        }
    }
    let _ = outgoing.close().await;
    closed.cancel();
}
