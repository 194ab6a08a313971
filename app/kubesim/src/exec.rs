//! `pods/exec` over WebSocket (the SPDY upgrade, kubectl's fallback, goes to
//! [`crate::spdy_server::exec`]) (`v5.channel.k8s.io` or `v4.channel.k8s.io`, chosen in the
//! client's order), as the kubelet serves it: the command runs as a real local process in the
//! pod's working directory with `HOSTNAME=<pod>` and the container's `env` (like KWOK's exec),
//! under a pseudo-terminal when `tty=true`.
//!
//! Channels: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close (v5: `[255, 0]` ends
//! stdin). The server first sends an empty message on the lowest output channel, then output,
//! then the `Status` (all output strictly before it: kube-rs stops reading at the status), then
//! closes with code 1000.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channel::{self, ExecOptions};
use crate::cluster::Cluster;
use crate::containers::{self, RunningPod};
use crate::process::{Exit, Input, Output, Process, SpawnError};
use crate::spdy_server;
use crate::streams::{self, status_response};

/// `GET /api/v1/namespaces/{ns}/pods/{name}/exec`, called by the router after authorization.
pub async fn serve(
    cluster: Arc<Cluster>,
    namespace: String,
    pod: String,
    req: Request,
) -> Response {
    containers::start(&cluster);
    let opts = match channel::parse_exec_options(req.uri().query().unwrap_or_default()) {
        Ok(o) => o,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
    };
    let Some(object) = cluster.store.get("pods", &namespace, &pod) else {
        let msg = format!("pods \"{pod}\" not found");
        return status_response(StatusCode::NOT_FOUND, "NotFound", &msg);
    };
    let container = match containers::choose_container(&object, opts.container.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let running = match containers::running_or_status(&cluster, &namespace, &pod) {
        Ok(r) => r,
        Err(unavailable) => return unavailable.into_response(),
    };
    if spdy_server::transport(req.headers()) == Some(spdy_server::Transport::Upgrade) {
        cluster.faults.delay_new_stream().await;
        let exec = spdy_server::exec::Exec {
            opts,
            container,
            pod: running,
            dropped: cluster.streams.session(),
        };
        return spdy_server::upgrade(
            req,
            spdy_server::Transport::Upgrade,
            spdy_server::REMOTE_COMMAND_V4,
            move |incoming, outgoing| exec.run(incoming, outgoing),
        )
        .await;
    }
    let offered = streams::offered_protocols(req.headers());
    let supported = [channel::V5_BINARY, channel::V4_BINARY];
    let protocol = match streams::choose_protocol(&offered, &supported) {
        Some(p) if !p.is_empty() => p,
        _ => return streams::unsupported_protocols(&offered, &supported),
    };
    cluster.faults.delay_new_stream().await;
    let mut upgrade = match WebSocketUpgrade::from_request(req, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&protocol) {
        upgrade.set_selected_protocol(value);
    }
    let session = Session {
        v5: protocol == channel::V5_BINARY,
        opts,
        container,
        pod: running,
        dropped: cluster.streams.session(),
    };
    upgrade.on_upgrade(move |socket| session.run(socket))
}

/// One exec WebSocket.
struct Session {
    v5: bool,
    opts: ExecOptions,
    container: String,
    pod: Arc<RunningPod>,
    dropped: CancellationToken,
}

impl Session {
    async fn run(self, socket: WebSocket) {
        let (sink, incoming) = socket.split();
        let (tx, rx) = mpsc::channel::<Message>(16);
        let writer = tokio::spawn(write_messages(rx, sink));
        let first = if self.opts.stdout {
            channel::STDOUT
        } else {
            channel::STDERR
        };
        let _ = tx.send(Message::Binary(channel::encode(first, &[]))).await;

        let client_gone = CancellationToken::new();
        let spawned = spawn(&self.pod, &self.container, &self.opts);
        let (status, reader) = match spawned {
            Ok(process) => {
                let reader = tokio::spawn(read_client(
                    incoming,
                    process.input(),
                    self.v5,
                    self.opts.clone(),
                    client_gone.clone(),
                ));
                (self.attach(process, &tx, &client_gone).await, reader)
            }
            Err(status) => {
                let (input, _) = mpsc::channel(1);
                let reader = tokio::spawn(read_client(
                    incoming,
                    input,
                    self.v5,
                    self.opts.clone(),
                    client_gone.clone(),
                ));
                (Some(status), reader)
            }
        };
        if let Some(status) = status {
            let bytes = channel::encode(channel::STATUS, status.to_string().as_bytes());
            let _ = tx.send(Message::Binary(bytes)).await;
        }
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = tx.send(Message::Close(Some(close))).await;
        drop(tx);
        let _ = writer.await;
        // Let the client answer the close; give up after a moment.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), client_gone.cancelled()).await;
        reader.abort();
    }

    /// Forwards the process output until it exits (also when its container stops and kills
    /// it); returns the `Status` to send, or `None` when the stream was cut (client gone,
    /// fault) and the process killed.
    async fn attach(
        &self,
        mut process: Process,
        tx: &mpsc::Sender<Message>,
        client_gone: &CancellationToken,
    ) -> Option<Value> {
        let mut output = process.take_output();
        let mut outputs_open = true;
        let mut container_stopped = false;
        loop {
            tokio::select! {
                // The container stopped (pod deleted, evicted…): the runtime kills the exec'd
                // process with its PID namespace, and the kubelet still reports its exit
                // (137, SIGKILL) on the status channel after the last output, as for any exit.
                _ = self.pod.stopped.cancelled(), if !container_stopped => {
                    container_stopped = true;
                    process.kill();
                }
                _ = self.dropped.cancelled() => { process.kill(); return None; }
                _ = client_gone.cancelled() => { process.kill(); return None; }
                out = output.recv(), if outputs_open => {
                    let frame = match out {
                        Some(Output::Stdout(b)) if self.opts.stdout || self.opts.tty => {
                            channel::encode(channel::STDOUT, &b)
                        }
                        Some(Output::Stderr(b)) if self.opts.stderr => channel::encode(channel::STDERR, &b),
                        Some(_) => continue,
                        None => { outputs_open = false; continue; }
                    };
                    if tx.send(Message::Binary(frame)).await.is_err() {
                        process.kill();
                        return None;
                    }
                }
                exit = process.wait(), if !outputs_open => return Some(exit_status(&self.opts, exit)),
            }
        }
    }
}

/// Reads the client's messages: stdin, resizes, v5 close of stdin. Cancels `gone` when the
/// client closes or the connection fails.
async fn read_client(
    mut incoming: futures::stream::SplitStream<WebSocket>,
    input: mpsc::Sender<Input>,
    v5: bool,
    opts: ExecOptions,
    gone: CancellationToken,
) {
    while let Some(Ok(msg)) = incoming.next().await {
        let Message::Binary(b) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Some(frame) = channel::decode(b) else {
            continue;
        };
        let sent = match frame.channel {
            channel::STDIN if opts.stdin && !frame.payload.is_empty() => {
                input.send(Input::Data(frame.payload)).await
            }
            channel::RESIZE if opts.tty => match channel::parse_resize(&frame.payload) {
                Some((cols, rows)) => input.send(Input::Resize { cols, rows }).await,
                None => Ok(()),
            },
            channel::CLOSE if v5 && frame.payload.first() == Some(&channel::STDIN) => {
                input.send(Input::Eof).await
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            // The process no longer takes input; keep reading for the close.
            continue;
        }
    }
    gone.cancel();
}

async fn write_messages(mut rx: mpsc::Receiver<Message>, mut sink: SplitSink<WebSocket, Message>) {
    while let Some(msg) = rx.recv().await {
        let closing = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.flush().await;
}

/// Starts the exec'd command in the pod's container, or returns the `Status` a real cluster
/// answers when it cannot start (shared by the WebSocket and SPDY transports).
pub(crate) fn spawn(
    pod: &RunningPod,
    container: &str,
    opts: &ExecOptions,
) -> Result<Process, Value> {
    let info = pod.container(container);
    let env = info.map(|c| c.env.clone()).unwrap_or_default();
    let program = opts.command.first().cloned().unwrap_or_default();
    let missing_in_image = info.is_some_and(|c| c.lacks(&program));
    let spec = crate::process::Spec {
        argv: opts.command.clone(),
        workdir: pod.workdir().to_path_buf(),
        hostname: pod.name.clone(),
        env,
        stdin: opts.stdin,
        tty: opts.tty,
    };
    let spawned = if missing_in_image && program.contains('/') {
        Err(SpawnError::NoSuchFile(program))
    } else if missing_in_image {
        Err(SpawnError::NotInPath(program))
    } else {
        Process::spawn(&spec)
    };
    spawned.map_err(|e| spawn_failure_status(pod, container, &e))
}

/// The status the kubelet sends when the process has exited.
pub(crate) fn exit_status(opts: &ExecOptions, exit: Exit) -> Value {
    match exit.code() {
        0 => json!({"metadata": {}, "status": "Success"}),
        code => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                opts.command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
    }
}

/// The status a real cluster (kubelet + containerd + runc) sends when the process cannot start,
/// e.g. `exec: "bash": executable file not found in $PATH`, wrapped by the kubelet into an
/// InternalError. Clients look for "executable file not found" to fall back to `sh`.
fn spawn_failure_status(pod: &RunningPod, container: &str, err: &SpawnError) -> Value {
    use sha2::{Digest, Sha256};
    let exec_id: String = Sha256::digest(format!("exec/{}/{container}/{err}", pod.uid).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cause = format!(
        "error executing command in container: failed to exec in container: failed to start exec \
         \"{exec_id}\": OCI runtime exec failed: exec failed: unable to start container process: {err}: unknown"
    );
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {cause}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_zero_exit_status_names_the_code() {
        let opts = ExecOptions {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            ..Default::default()
        };
        let s = exit_status(&opts, Exit::Code(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(exit_status(&opts, Exit::Code(0))["status"], "Success");
    }
}
