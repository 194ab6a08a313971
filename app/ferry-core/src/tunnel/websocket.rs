//! The v4 WebSocket port-forward protocol (`v4.channel.k8s.io`): Ferry's fallback where the API
//! server does not offer SPDY tunnelling (before 1.30, or with the `PortForwardWebsockets` gate
//! off). One WebSocket per local connection, opened through [`kube::Client::send`] (auth, TLS
//! and proxy are kube's; the upgrade is [`super::upgrade`]); the framing is Ferry's own.
//!
//! Every binary message starts with a channel byte: for the one port requested (`?ports=N`),
//! channel 0 carries data both ways and channel 1 the pod side's errors, and the server starts
//! each with the port number (two bytes, little-endian), which is skipped.
//!
//! Compared with kube-rs's `Portforwarder`, which this replaces: local bytes go out in messages
//! as large as the local read (up to 64 KiB rather than 4 KiB), the pod's bytes are handed to
//! the local socket straight out of the message that carried them (no intermediate pipe or
//! channel), and nothing is buffered beyond the WebSocket's own buffers, so a slow side slows
//! the other through TCP. The protocol cannot carry a half-close: the caller keeps the
//! pod-bound side open after a client's half-close (see `forward::HalfClose`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, Stream, StreamExt};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::upgrade::Socket;

/// The subprotocol: the v4 channel protocol (channel byte first, port prefix per channel).
const PROTOCOL: &str = "v4.channel.k8s.io";
/// Each local connection has a WebSocket of its own, so its read buffer is what 1,000
/// connections multiply: 16 KiB (one TLS record) rather than tungstenite's 128 KiB.
const READ_BUFFER: usize = 16 * 1024;

/// Channel of the requested port's bytes, both ways.
const DATA_CHANNEL: u8 = 0;
/// Channel of the pod side's error text.
const ERROR_CHANNEL: u8 = 1;
/// The port number the server sends first on each channel.
const PORT_PREFIX: usize = 2;
/// Largest message sent towards the pod (the local read is at most this large anyway).
const MESSAGE_LIMIT: usize = 256 * 1024;

/// One local connection's v4 WebSocket to a pod: the pod's bytes come out of `reader`, bytes
/// written to `writer` go to the pod, and `errors` holds what the pod side said went wrong.
/// Dropping the parts closes the WebSocket, which ends the pod side's connection.
pub struct WebSocketTunnel {
    pub reader: TunnelReader,
    pub writer: TunnelWriter,
    pub errors: TunnelErrors,
}

impl WebSocketTunnel {
    /// Opens a port-forward WebSocket to `port` of `pod` in `namespace`. Errors are kube's,
    /// with the API server's `Status` for 4xx/5xx answers.
    pub async fn connect(
        client: &kube::Client,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<Self, kube::Error> {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports={port}");
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let socket = super::upgrade::websocket(client, &path, PROTOCOL, config).await?;
        Ok(Self::over(socket))
    }

    fn over(socket: Socket) -> Self {
        let (sink, stream) = socket.split();
        let errors = Arc::new(Mutex::new(Vec::new()));
        Self {
            reader: TunnelReader {
                stream,
                channels: Channels::new(errors.clone()),
                ended: false,
            },
            writer: TunnelWriter { sink },
            errors: TunnelErrors { text: errors },
        }
    }
}

/// The pod's bytes, read straight out of the messages that carried them. Ends when the
/// server closes the WebSocket or reports an error for the port.
pub struct TunnelReader {
    stream: SplitStream<Socket>,
    channels: Channels,
    ended: bool,
}

/// Sorts incoming messages into the data and error channels.
struct Channels {
    /// Data not yet handed to the local side.
    pending: Bytes,
    /// Bytes of the port prefix still to skip, per channel.
    prefix_left: [usize; 2],
    errors: Arc<Mutex<Vec<u8>>>,
}

impl Channels {
    fn new(errors: Arc<Mutex<Vec<u8>>>) -> Self {
        Self {
            pending: Bytes::new(),
            prefix_left: [PORT_PREFIX; 2],
            errors,
        }
    }

    /// Marks `amount` of the pending data as delivered.
    fn consume(&mut self, amount: usize) {
        self.pending.advance(amount.min(self.pending.len()));
        if self.pending.is_empty() {
            // An empty slice still owns the message's buffer: let it go while the connection
            // waits for more.
            self.pending = Bytes::new();
        }
    }

    /// Takes in one message; returns whether the pod side reported an error.
    fn take(&mut self, mut payload: Bytes) -> bool {
        let Some(&channel) = payload.first() else {
            return false;
        };
        payload.advance(1);
        let Some(prefix_left) = self.prefix_left.get_mut(usize::from(channel)) else {
            return false;
        };
        let skip = (*prefix_left).min(payload.len());
        *prefix_left -= skip;
        payload.advance(skip);
        match channel {
            DATA_CHANNEL => {
                self.pending = if payload.is_empty() {
                    Bytes::new()
                } else {
                    payload
                };
                false
            }
            ERROR_CHANNEL if !payload.is_empty() => {
                lock(&self.errors).extend_from_slice(&payload);
                true
            }
            _ => false,
        }
    }
}

impl AsyncBufRead for TunnelReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        loop {
            if !this.channels.pending.is_empty() {
                return Poll::Ready(Ok(&this.channels.pending));
            }
            if this.ended {
                return Poll::Ready(Ok(&[]));
            }
            match ready!(Pin::new(&mut this.stream).poll_next(cx)) {
                Some(Ok(Message::Binary(payload))) => {
                    if this.channels.take(payload) {
                        // The pod side could not connect or failed: nothing more will come.
                        this.ended = true;
                    }
                }
                Some(Ok(Message::Close(_))) | None => this.ended = true,
                // Pings are answered by tungstenite; text is not part of the binary protocol.
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    this.ended = true;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("the port-forward WebSocket broke: {err}"),
                    )));
                }
            }
        }
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        self.get_mut().channels.consume(amount);
    }
}

impl AsyncRead for TunnelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

/// The pod-bound side: each write becomes one data message. Writes are buffered by the
/// WebSocket until flushed, so callers flush when they have nothing more to send right away.
/// Shutting down only flushes: the protocol has no half-close, and closing the WebSocket would
/// cut off the pod's answer.
pub struct TunnelWriter {
    sink: SplitSink<Socket, Message>,
}

fn broken(err: tokio_tungstenite::tungstenite::Error) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        format!("the port-forward WebSocket broke: {err}"),
    )
}

impl AsyncWrite for TunnelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(broken)?;
        let n = data.len().min(MESSAGE_LIMIT);
        let mut message = Vec::with_capacity(n + 1);
        message.push(DATA_CHANNEL);
        message.extend_from_slice(&data[..n]);
        Pin::new(&mut self.sink)
            .start_send(Message::Binary(message.into()))
            .map_err(broken)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.sink).poll_flush(cx).map_err(broken)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// What the pod side reported on the error channel (the kubelet's words, "connection refused"
/// and the like), as far as the reader has read.
pub struct TunnelErrors {
    text: Arc<Mutex<Vec<u8>>>,
}

impl TunnelErrors {
    /// The pod side's message, if it sent one.
    pub fn message(&self) -> Option<String> {
        let text = lock(&self.text);
        let text = String::from_utf8_lossy(&text).trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(channels: &mut Channels, message: &[u8]) -> bool {
        channels.take(Bytes::copy_from_slice(message))
    }

    #[test]
    fn port_prefixes_are_skipped_once_per_channel_even_when_split() {
        let errors = Arc::default();
        let mut c = Channels::new(Arc::clone(&errors));
        assert!(!take(&mut c, &[0, 0x90]));
        assert_eq!(&c.pending[..], b"");
        assert!(!take(&mut c, &[0, 0x1f, b'h', b'i']));
        assert_eq!(&c.pending[..], b"hi");
        assert!(
            !take(&mut c, &[0, 0x90, 0x1f]),
            "after the prefix, bytes are data"
        );
        assert_eq!(&c.pending[..], [0x90, 0x1f]);
        assert!(
            !take(&mut c, &[1, 0x90, 0x1f]),
            "the prefix alone is no error"
        );
        assert!(take(&mut c, &[1, b'n', b'o']));
        assert_eq!(&lock(&errors)[..], b"no");
        assert!(!take(&mut c, &[7, 1, 2, 3]), "unknown channels are ignored");
        assert_eq!(&c.pending[..], [0x90, 0x1f]);
        assert!(!take(&mut c, &[]));
    }

    /// A message buffer that says when it is freed.
    struct Watched(Vec<u8>, Arc<std::sync::atomic::AtomicBool>);

    impl AsRef<[u8]> for Watched {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_delivered_message_is_freed_while_the_connection_waits_for_the_next() {
        let mut c = Channels::new(Arc::default());
        let freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let message = Bytes::from_owner(Watched(vec![0, 0x90, 0x1f, 1, 2, 3], freed.clone()));
        assert!(!c.take(message));
        assert_eq!(&c.pending[..], [1, 2, 3]);
        c.consume(2);
        assert!(!freed.load(std::sync::atomic::Ordering::SeqCst));
        c.consume(1);
        assert!(
            freed.load(std::sync::atomic::Ordering::SeqCst),
            "the consumed message's buffer is still held"
        );
    }
}
