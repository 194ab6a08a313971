//! The kubelet's port-forward over SPDY: per local connection the client opens an `error`
//! stream and a `data` stream carrying `streamType`, `port` and `requestID`; the pair is
//! forwarded to the port inside the pod. The error stream is always FIN'd when the pair ends,
//! with the kubelet's sentence on it if forwarding failed (`error forwarding port 80 to pod
//! <sandbox>, uid : <reason>`), which makes kubectl print "lost connection to pod" and exit.
//!
//! Data is half-closed both ways: the client's FIN shuts the container connection's write
//! side; the container's EOF becomes DATA+FIN. One connection carries any number of pairs; it
//! stays open while the pod lives (a kubelet keeps it until the client leaves), and pairs that
//! arrive once the pod is gone fail with containerd's "failed to find sandbox".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spdy::HeaderBlock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::session::{self, Incoming, Outgoing, Stream, StreamWriter};
use crate::containers::RunningPod;
use crate::portforward::sandbox_id;

/// How long the kubelet waits for the second stream of a pair (its `StreamCreationTimeout`).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the container per DATA frame.
const CHUNK: usize = 64 * 1024;

/// client-go's header names (lowercase on the wire) and stream types.
pub const STREAM_TYPE: &str = "streamType";
pub const PORT: &str = "port";
pub const REQUEST_ID: &str = "requestID";

/// One port-forward SPDY connection to a pod.
pub struct PortForward {
    pub pod: Arc<RunningPod>,
    /// Cancelled by the "drop every stream" fault: the connection closes at once.
    pub dropped: CancellationToken,
    /// The "port-forward fails for this pod" fault, looked up for every new stream (so a
    /// fault set or cleared while a connection is open applies to its next stream).
    pub injected_error: InjectedError,
}

/// Looks up the injected port-forward failure of the connection's pod, if any.
pub type InjectedError = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The kubelet's checks on a new stream (its `httpStreamReceived`).
fn validate(headers: &HeaderBlock) -> Result<(), String> {
    let port = headers.get(PORT).unwrap_or_default();
    if port.is_empty() {
        return Err(format!("{PORT:?} header is required"));
    }
    port.parse::<u16>()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    match headers.get(STREAM_TYPE).unwrap_or_default() {
        "error" | "data" => Ok(()),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// The pair a stream belongs to: its `requestID`, or for clients that send none, the id of
/// the error stream (the data stream comes two ids later), as the kubelet guesses.
fn request_id(stream: &Stream) -> String {
    if let Some(id) = stream.headers.get(REQUEST_ID).filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    let base = if stream.headers.get(STREAM_TYPE) == Some("data") {
        stream.id.saturating_sub(2)
    } else {
        stream.id
    };
    format!("stream-{base}")
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

impl PortForward {
    /// Serves the connection until the client leaves or the streams are dropped.
    pub async fn run(self, incoming: Incoming, outgoing: Outgoing) {
        let stop = CancellationToken::new();
        let (handle, mut streams) =
            session::start(incoming, outgoing, Box::new(validate), stop.clone());
        let mut pending: HashMap<String, Pair> = HashMap::new();
        let (expired_tx, mut expired) = mpsc::channel::<String>(16);
        let mut forwards = JoinSet::new();
        let gone = self.pod.stopped.clone();
        loop {
            tokio::select! {
                _ = self.dropped.cancelled() => {
                    stop.cancel();
                    break;
                }
                s = streams.recv() => {
                    let Some(s) = s else { break };
                    let id = request_id(&s);
                    let pair = pending.entry(id.clone()).or_default();
                    if pair.error.is_none() && pair.data.is_none() {
                        let tx = expired_tx.clone();
                        let id = id.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(PAIR_TIMEOUT).await;
                            let _ = tx.send(id).await;
                        });
                    }
                    let slot = if s.headers.get(STREAM_TYPE) == Some("error") {
                        &mut pair.error
                    } else {
                        &mut pair.data
                    };
                    if slot.is_some() {
                        tracing::debug!("port-forward request {id}: a second stream of one type");
                        continue;
                    }
                    *slot = Some(s);
                    if pair.error.is_some() && pair.data.is_some() {
                        let Some(Pair { error: Some(e), data: Some(d) }) = pending.remove(&id) else {
                            continue;
                        };
                        forwards.spawn(forward(
                            self.pod.clone(),
                            e,
                            d,
                            (self.injected_error)(),
                            gone.clone(),
                        ));
                    }
                }
                id = expired.recv() => {
                    let Some(id) = id else { continue };
                    if let Some(pair) = pending.remove(&id) {
                        let text = format!("(conn=kubesim, request={id}) timed out waiting for streams");
                        tracing::debug!("{text}");
                        if let Some(e) = pair.error {
                            e.writer.finish_with(Bytes::from(text)).await;
                        }
                        if let Some(d) = pair.data {
                            d.writer.finish().await;
                        }
                    }
                }
                Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            }
        }
        forwards.abort_all();
        drop(handle);
        tracing::debug!(pod = %self.pod.name, "SPDY port-forward connection ends");
    }
}

/// Forwards one error+data pair to its port, then FINs both streams.
async fn forward(
    pod: Arc<RunningPod>,
    error: Stream,
    data: Stream,
    injected_error: Option<String>,
    gone: CancellationToken,
) {
    let port: u16 = data
        .headers
        .get(PORT)
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let outcome = match injected_error {
        Some(reason) => Err(reason),
        None if gone.is_cancelled() => Err(no_sandbox(&pod)),
        None => match pod.connect(port).await {
            Ok(tcp) => copy(tcp, data.data, &data.writer, &gone, &pod, port).await,
            Err(e) => Err(refused_reason(&pod, port, &e)),
        },
    };
    data.writer.finish().await;
    match outcome {
        Ok(()) => {
            error.writer.finish().await;
        }
        Err(reason) => {
            let text = format!(
                "error forwarding port {port} to pod {}, uid : {reason}",
                sandbox_id(&pod)
            );
            tracing::debug!("{text}");
            error.writer.finish_with(Bytes::from(text)).await;
        }
    }
}

/// Copies both ways with half-close until both directions have ended. `Err` carries the
/// reason when the pod went away under the connection (as a reset inside the pod's network
/// namespace would).
async fn copy(
    tcp: tokio::net::TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: &StreamWriter,
    gone: &CancellationToken,
    pod: &RunningPod,
    port: u16,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let (mut r, mut w) = tcp.into_split();
    let upstream = async {
        while let Some(chunk) = from_client.recv().await {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    let downstream = async {
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if !to_client.write(buf.freeze()).await {
                return;
            }
        }
    };
    let both = async {
        tokio::join!(upstream, async {
            downstream.await;
            to_client.finish().await;
        })
    };
    tokio::select! {
        _ = both => Ok(()),
        _ = to_client.reset.cancelled() => Ok(()),
        _ = gone.cancelled() => Err(reset_reason(pod, port)),
    }
}

fn netns(pod: &RunningPod) -> String {
    format!("/var/run/netns/cni-{}", pod.uid)
}

/// containerd's words when nothing listens on the port inside the pod.
fn refused_reason(pod: &RunningPod, port: u16, err: &std::io::Error) -> String {
    tracing::trace!("connecting to simulated port {port}: {err}");
    format!(
        "failed to execute portforward in network namespace \"{}\": failed to connect to \
         localhost:{port} inside namespace \"{}\", IPv4: dial tcp4 127.0.0.1:{port}: \
         connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused ",
        netns(pod),
        sandbox_id(pod)
    )
}

/// What a connection sees when the pod's network namespace is torn down under it.
fn reset_reason(pod: &RunningPod, port: u16) -> String {
    format!(
        "failed to execute portforward in network namespace \"{}\": read tcp4 127.0.0.1:{port}: \
         read: connection reset by peer",
        netns(pod)
    )
}

/// containerd's words for a pod sandbox that no longer exists.
fn no_sandbox(pod: &RunningPod) -> String {
    format!(
        "failed to find sandbox \"{}\" in store: not found",
        sandbox_id(pod)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_validated_in_the_kubelets_words() {
        let ok = HeaderBlock::new()
            .with(STREAM_TYPE, "data")
            .with(PORT, "80");
        assert_eq!(validate(&ok), Ok(()));
        let no_port = HeaderBlock::new().with(STREAM_TYPE, "data");
        assert_eq!(
            validate(&no_port),
            Err("\"port\" header is required".into())
        );
        let bad = HeaderBlock::new()
            .with(STREAM_TYPE, "stdin")
            .with(PORT, "80");
        assert_eq!(validate(&bad), Err("invalid stream type \"stdin\"".into()));
        let nan = HeaderBlock::new()
            .with(STREAM_TYPE, "data")
            .with(PORT, "http");
        assert!(
            validate(&nan)
                .unwrap_err()
                .starts_with("unable to parse \"http\" as a port")
        );
    }
}
