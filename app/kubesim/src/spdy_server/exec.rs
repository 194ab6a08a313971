//! Remote command v4 over SPDY (`kubectl exec` with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`),
//! as the kubelet serves it: the client opens an `error` stream and, as asked, `stdin`,
//! `stdout`, `stderr` (not with a TTY) and `resize` (with a TTY) streams; once all are there
//! the command runs; output goes to its streams, which are FIN'd when the process exits; then
//! the JSON `Status` goes on the error stream, which is FIN'd, and the connection closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spdy::HeaderBlock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::portforward::STREAM_TYPE;
use super::session::{self, Incoming, Outgoing, Stream};
use crate::channel::{ExecOptions, parse_resize};
use crate::containers::RunningPod;
use crate::process::{Input, Output, Process};

/// How long the kubelet waits for the client's streams (`StreamCreationTimeout`).
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);

/// One exec SPDY connection.
pub struct Exec {
    pub opts: ExecOptions,
    pub container: String,
    pub pod: Arc<RunningPod>,
    pub dropped: CancellationToken,
}

#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Streams {
    fn complete(&self, opts: &ExecOptions) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || opts.tty || self.stderr.is_some())
            && (!opts.tty || self.resize.is_some())
    }
}

fn accept_any(_: &HeaderBlock) -> Result<(), String> {
    Ok(())
}

impl Exec {
    pub async fn run(self, incoming: Incoming, outgoing: Outgoing) {
        let stop = CancellationToken::new();
        let (handle, mut new_streams) =
            session::start(incoming, outgoing, Box::new(accept_any), stop.clone());
        let mut streams = Streams::default();
        let deadline = tokio::time::sleep(STREAMS_TIMEOUT);
        tokio::pin!(deadline);
        while !streams.complete(&self.opts) {
            let s = tokio::select! {
                s = new_streams.recv() => s,
                _ = &mut deadline => {
                    tracing::debug!("timed out waiting for client to create streams");
                    None
                }
                _ = self.dropped.cancelled() => None,
            };
            let Some(s) = s else {
                stop.cancel();
                return;
            };
            let slot = match s.headers.get(STREAM_TYPE).unwrap_or_default() {
                "error" => &mut streams.error,
                "stdin" => &mut streams.stdin,
                "stdout" => &mut streams.stdout,
                "stderr" => &mut streams.stderr,
                "resize" => &mut streams.resize,
                other => {
                    tracing::debug!("unexpected stream type: {other:?}");
                    continue;
                }
            };
            *slot = Some(s);
        }
        let Some(error) = streams.error.take() else {
            return;
        };
        let status = match crate::exec::spawn(&self.pod, &self.container, &self.opts) {
            Ok(process) => self.attach(process, &mut streams, &stop).await,
            Err(status) => Some(status),
        };
        match status {
            Some(status) => {
                error
                    .writer
                    .finish_with(Bytes::from(status.to_string()))
                    .await;
                handle.close().await;
            }
            None => stop.cancel(),
        }
    }

    /// Runs the process to its end (also when its container stops and kills it); the `Status`
    /// to send, or `None` when the connection was cut (client gone, fault) and the process
    /// killed.
    async fn attach(
        &self,
        mut process: Process,
        streams: &mut Streams,
        stop: &CancellationToken,
    ) -> Option<serde_json::Value> {
        let input = process.input();
        let feeders = CancellationToken::new();
        let _feeders_guard = feeders.clone().drop_guard();
        if let Some(stdin) = streams.stdin.take() {
            tokio::spawn(feed_stdin(stdin.data, input.clone(), feeders.clone()));
        }
        if let Some(resize) = streams.resize.take() {
            tokio::spawn(feed_resizes(resize.data, input.clone(), feeders.clone()));
        }
        drop(input);
        let stdout = streams.stdout.take().map(|s| s.writer);
        let stderr = streams.stderr.take().map(|s| s.writer);
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
                _ = stop.cancelled() => { process.kill(); return None; }
                out = output.recv(), if outputs_open => {
                    let (writer, bytes) = match out {
                        Some(Output::Stdout(b)) => (stdout.as_ref(), b),
                        Some(Output::Stderr(b)) => (stderr.as_ref(), b),
                        None => { outputs_open = false; continue; }
                    };
                    // A stream the client did not ask for or has reset: keep draining.
                    if let Some(w) = writer {
                        w.write(bytes).await;
                    }
                }
                exit = process.wait(), if !outputs_open => {
                    for w in [&stdout, &stderr].into_iter().flatten() {
                        w.finish().await;
                    }
                    return Some(crate::exec::exit_status(&self.opts, exit));
                }
            }
        }
    }
}

/// Client stdin into the process; its FIN ends stdin.
async fn feed_stdin(
    mut data: mpsc::Receiver<Bytes>,
    input: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    loop {
        let chunk = tokio::select! {
            c = data.recv() => c,
            _ = stop.cancelled() => return,
        };
        match chunk {
            Some(b) => {
                if input.send(Input::Data(b)).await.is_err() {
                    return;
                }
            }
            None => {
                let _ = input.send(Input::Eof).await;
                return;
            }
        }
    }
}

/// Terminal sizes, one JSON object per line (`{"Width":80,"Height":24}`), split anywhere.
async fn feed_resizes(
    mut data: mpsc::Receiver<Bytes>,
    input: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let mut buf = BytesMut::new();
    loop {
        let chunk = tokio::select! {
            c = data.recv() => c,
            _ = stop.cancelled() => return,
        };
        let Some(chunk) = chunk else { return };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            if let Some((cols, rows)) = parse_resize(&line)
                && input.send(Input::Resize { cols, rows }).await.is_err()
            {
                return;
            }
        }
    }
}
