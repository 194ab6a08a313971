//! `pods/portforward` over WebSocket, as the kubelet serves it (SPDY requests, kubectl's, go
//! to [`crate::spdy_server`]) (`v4.channel.k8s.io`, or the
//! base64 text variant): for port *i* of the `ports=` query, channel `2i` carries data both ways
//! and `2i+1` errors; both start with the port number (u16 little-endian). Each WebSocket
//! carries one TCP connection per port to the pod's simulated container; the WebSocket closes
//! when every port's connection has ended, the client leaves, or the pod stops.
//!
//! Bytes are copied in 64 KiB chunks read straight into the outgoing message buffer, through a
//! bounded queue: a slow reader on either side slows the other side down instead of growing
//! memory.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channel::{self, Framing};
use crate::cluster::Cluster;
use crate::containers::{self, RunningPod};
use crate::spdy_server;
use crate::streams::{self, status_response};

/// Bytes read from a container connection per WebSocket message.
const CHUNK: usize = 64 * 1024;
/// Messages queued towards the client before readers wait (bounds memory per session).
const QUEUE: usize = 8;

/// `GET /api/v1/namespaces/{ns}/pods/{name}/portforward`, called by the router after
/// authorization. Answers 404/400 `Status` errors before upgrading, like the apiserver.
pub async fn serve(
    cluster: Arc<Cluster>,
    namespace: String,
    pod: String,
    req: Request,
) -> Response {
    containers::start(&cluster);
    let running = match containers::running_or_status(&cluster, &namespace, &pod) {
        Ok(r) => r,
        Err(unavailable) => return unavailable.into_response(),
    };
    let transport = spdy_server::transport(req.headers()).filter(|t| {
        *t == spdy_server::Transport::Upgrade
            || cluster
                .port_forward_websockets
                .load(std::sync::atomic::Ordering::Relaxed)
    });
    if let Some(transport) = transport {
        cluster.faults.delay_new_stream().await;
        let faults = cluster.clone();
        let counted = cluster.clone();
        let (ns, name) = (namespace.clone(), pod.clone());
        let forward = spdy_server::portforward::PortForward {
            pod: running,
            dropped: cluster.streams.session(),
            injected_error: Arc::new(move || faults.faults.port_forward_error(&ns, &name)),
        };
        return spdy_server::upgrade(
            req,
            transport,
            spdy_server::PORT_FORWARD_V1,
            move |incoming, outgoing| {
                counted.streams.port_forward_opened();
                forward.run(incoming, outgoing)
            },
        )
        .await;
    }
    let ports = match channel::parse_ports(req.uri().query().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
    };
    let offered = streams::offered_protocols(req.headers());
    let supported = [channel::V4_BINARY, channel::V4_BASE64];
    let Some(protocol) = streams::choose_protocol(&offered, &supported) else {
        return streams::unsupported_protocols(&offered, &supported);
    };
    let framing = if protocol == channel::V4_BASE64 {
        Framing::Base64
    } else {
        Framing::Binary
    };
    let injected_error = cluster.faults.port_forward_error(&namespace, &pod);
    cluster.faults.delay_new_stream().await;
    let mut upgrade = match WebSocketUpgrade::from_request(req, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&protocol)
        && !protocol.is_empty()
    {
        upgrade.set_selected_protocol(value);
    }
    let session = Session {
        framing,
        ports,
        pod: running,
        dropped: cluster.streams.session(),
        injected_error,
    };
    upgrade
        .max_message_size(CHUNK * 16)
        .on_upgrade(move |socket| {
            cluster.streams.port_forward_opened();
            session.run(socket)
        })
}

/// One port-forward WebSocket.
struct Session {
    framing: Framing,
    ports: Vec<u16>,
    pod: Arc<RunningPod>,
    /// Cancelled by the "drop every stream" fault.
    dropped: CancellationToken,
    /// Set by the "port-forward fails for this pod" fault.
    injected_error: Option<String>,
}

impl Session {
    async fn run(self, socket: WebSocket) {
        let (sink, incoming) = socket.split();
        let (tx, rx) = mpsc::channel::<Message>(QUEUE);
        let writer = tokio::spawn(write_messages(rx, sink));
        let stop = CancellationToken::new();
        let framing = self.framing;
        for (i, port) in self.ports.iter().enumerate() {
            let (data, error) = channels(i);
            for ch in [data, error] {
                let _ = tx.send(message(framing, ch, &port.to_le_bytes())).await;
            }
        }
        let mut pumps = JoinSet::new();
        let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(self.ports.len());
        for (i, port) in self.ports.iter().copied().enumerate() {
            let (data, error) = channels(i);
            let connected = match &self.injected_error {
                Some(reason) => Err(reason.clone()),
                None => self
                    .pod
                    .connect(port)
                    .await
                    .map_err(|e| refused_reason(&self.pod, port, &e)),
            };
            match connected {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    let (r, w) = tcp.into_split();
                    pumps.spawn(pump_to_client(r, data, framing, tx.clone()));
                    writers.push(Some(w));
                }
                Err(reason) => {
                    let text = forward_error(&self.pod, port, &reason);
                    tracing::debug!("{text}");
                    let _ = tx.send(message(framing, error, text.as_bytes())).await;
                    writers.push(None);
                }
            }
        }
        let why = self
            .pump_from_client(incoming, &mut writers, &mut pumps, &stop)
            .await;
        tracing::debug!(pod = %self.pod.name, "port-forward stream ends: {why}");
        stop.cancel();
        pumps.abort_all();
        drop(writers);
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        drop(tx);
        let _ = writer.await;
    }

    /// Copies client data to the container connections until the stream should end; returns
    /// why it ended.
    async fn pump_from_client(
        &self,
        mut incoming: SplitStream<WebSocket>,
        writers: &mut [Option<OwnedWriteHalf>],
        pumps: &mut JoinSet<()>,
        stop: &CancellationToken,
    ) -> &'static str {
        if pumps.is_empty() {
            return "no port could be forwarded";
        }
        loop {
            let msg = tokio::select! {
                _ = self.pod.stopped.cancelled() => return "the pod stopped running",
                _ = self.dropped.cancelled() => return "streams dropped by fault injection",
                done = pumps.join_next() => {
                    if done.is_none() || pumps.is_empty() {
                        return "every container connection closed";
                    }
                    continue;
                }
                msg = incoming.next() => msg,
            };
            let frame = match msg {
                Some(Ok(Message::Binary(b))) if self.framing == Framing::Binary => {
                    channel::decode(b)
                }
                Some(Ok(Message::Text(t))) if self.framing == Framing::Base64 => {
                    channel::decode_base64(t.as_str())
                }
                Some(Ok(Message::Close(_))) | None => return "the client closed the WebSocket",
                Some(Err(_)) => return "the WebSocket failed",
                Some(Ok(_)) => None,
            };
            let Some(frame) = frame.filter(|f| f.channel % 2 == 0 && !f.payload.is_empty()) else {
                continue;
            };
            let Some(Some(w)) = writers.get_mut(usize::from(frame.channel / 2)) else {
                continue;
            };
            let written = tokio::select! {
                r = w.write_all(&frame.payload) => r,
                _ = stop.cancelled() => return "stopped",
                _ = self.pod.stopped.cancelled() => return "the pod stopped running",
                _ = self.dropped.cancelled() => return "streams dropped by fault injection",
            };
            if written.is_err() {
                // The container closed its side; its read pump ends the stream for this port.
                writers[usize::from(frame.channel / 2)] = None;
            }
        }
    }
}

/// Data and error channel of port index `i`.
fn channels(i: usize) -> (u8, u8) {
    let data = u8::try_from(i * 2).unwrap_or(u8::MAX - 1);
    (data, data.saturating_add(1))
}

fn message(framing: Framing, ch: u8, payload: &[u8]) -> Message {
    match framing {
        Framing::Binary => Message::Binary(channel::encode(ch, payload)),
        Framing::Base64 => Message::Text(channel::encode_base64(ch, payload).into()),
    }
}

/// Reads the container connection into messages for the client. The read goes straight into
/// the message buffer after the channel byte, so the only copy is the kernel's.
async fn pump_to_client(mut r: OwnedReadHalf, ch: u8, framing: Framing, tx: mpsc::Sender<Message>) {
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK + 1);
        buf.put_u8(ch);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let msg = match framing {
            Framing::Binary => Message::Binary(buf.freeze()),
            Framing::Base64 => message(framing, ch, &buf[1..]),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

async fn write_messages(mut rx: mpsc::Receiver<Message>, mut sink: SplitSink<WebSocket, Message>) {
    while let Some(msg) = rx.recv().await {
        let closing = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

/// The kubelet's error-channel text for a port that could not be forwarded.
fn forward_error(pod: &RunningPod, port: u16, reason: &str) -> String {
    format!(
        "error forwarding port {port} to pod {}, uid : {reason}",
        sandbox_id(pod)
    )
}

/// What containerd says when nothing listens on the port inside the pod.
fn refused_reason(pod: &RunningPod, port: u16, err: &std::io::Error) -> String {
    tracing::trace!("connecting to simulated port {port}: {err}");
    let sandbox = sandbox_id(pod);
    let netns = format!("/var/run/netns/cni-{}", pod.uid);
    format!(
        "failed to execute portforward in network namespace \"{netns}\": failed to connect to \
         localhost:{port} inside namespace \"{sandbox}\", IPv4: dial tcp4 127.0.0.1:{port}: \
         connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
    )
}

/// A stable 64-hex "sandbox id" for the pod, as containerd names pod sandboxes.
pub fn sandbox_id(pod: &RunningPod) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("sandbox/{}/{}", pod.namespace, pod.uid).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
