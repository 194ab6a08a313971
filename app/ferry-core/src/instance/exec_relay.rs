//! Exec sessions that a control connection opened (`ferry exec` while an instance runs): the
//! session runs on the instance's shared client for the context (in-app clusters included),
//! its output goes back as events on that connection, and it ends with the connection.
//!
//! Output is relayed with backpressure, never dropped: each chunk waits for room in the
//! connection's outbox, so a client that stops reading stops the command's output (the exec
//! stream's own flow control takes it from there) instead of filling memory. Input is applied
//! in the order it arrived, waiting for room in the session's input queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Instance;
use super::api::{
    ApiError, EXEC_CHUNK, ErrorKind, Event, ExecEnd, ExecInput, ExecStream, Response, ServerMessage,
};
use super::server::encode;
use crate::ClusterError;
use crate::exec::{self, ExecError, ExecRequest, Input, InputSink, Outcome, Output};

/// The exec sessions of one control connection.
pub struct ExecRelay {
    instance: Instance,
    outbox: mpsc::Sender<Vec<u8>>,
    cancel: CancellationToken,
    /// Sessions by the client's number; `None` while one is still connecting.
    inputs: Arc<Mutex<HashMap<u64, Option<InputSink>>>>,
}

impl ExecRelay {
    /// Sessions answer into `outbox` and end when `cancel` (the connection's) fires.
    pub fn new(
        instance: Instance,
        outbox: mpsc::Sender<Vec<u8>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            instance,
            outbox,
            cancel,
            inputs: Arc::default(),
        }
    }

    /// Opens session `session` for request `id`; answers [`Response::ExecStarted`] or an error,
    /// then relays output until the command ends.
    pub fn start(&self, id: u64, session: u64, request: ExecRequest) {
        let outbox = self.outbox.clone();
        let respond = move |response: Response| {
            let outbox = outbox.clone();
            async move {
                let _ = outbox
                    .send(encode(&ServerMessage::Response { id, response }))
                    .await;
            }
        };
        {
            let mut inputs = lock(&self.inputs);
            if inputs.contains_key(&session) {
                let error = ApiError::new(
                    ErrorKind::BadRequest,
                    format!("exec session {session} is already open on this connection"),
                );
                tokio::spawn(respond(Response::Error(error)));
                return;
            }
            inputs.insert(session, None);
        }
        let instance = self.instance.clone();
        let outbox = self.outbox.clone();
        let cancel = self.cancel.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let opened = tokio::select! {
                _ = cancel.cancelled() => return,
                opened = exec::open(instance.clients(), request) => opened,
            };
            let mut opened = match opened {
                Ok(s) => s,
                Err(e) => {
                    lock(&inputs).remove(&session);
                    respond(Response::Error(api_error(&e))).await;
                    return;
                }
            };
            lock(&inputs).insert(session, Some(opened.input.clone()));
            tracing::info!(
                pod = %opened.info.pod,
                container = %opened.info.container.name,
                "exec session opened over the control socket"
            );
            respond(Response::ExecStarted {
                session,
                container: opened.info.container.name.clone(),
                defaulted_note: opened.info.defaulted_note.clone(),
                tty: opened.info.tty,
            })
            .await;
            let relayed = relay(&mut opened, session, &outbox, &cancel).await;
            lock(&inputs).remove(&session);
            if !relayed {
                return; // the connection went away; dropping the session closes it
            }
            let end = match opened.wait().await {
                Outcome::Exited(code) => ExecEnd::Exited { code },
                Outcome::Failed(e) => ExecEnd::Failed {
                    message: e.to_string(),
                },
            };
            let _ = outbox
                .send(encode(&ServerMessage::Event(Event::ExecEnded {
                    session,
                    end,
                })))
                .await;
        });
    }

    /// Hands `input` to session `session`, waiting for room; input for a session that is not
    /// open (it ended, or never was) is dropped.
    pub async fn input(&self, session: u64, input: ExecInput) {
        let sink = lock(&self.inputs).get(&session).cloned().flatten();
        let Some(sink) = sink else {
            return;
        };
        let input = match input {
            ExecInput::Data { data } => Input::Data(Bytes::from(data)),
            ExecInput::Resize { size } => Input::Resize(size),
            ExecInput::Eof => Input::Eof,
        };
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = sink.send(input) => {}
        }
    }
}

/// Relays the session's output as events until it ends (`true`) or the connection goes away
/// (`false`).
async fn relay(
    session: &mut exec::Session,
    id: u64,
    outbox: &mpsc::Sender<Vec<u8>>,
    cancel: &CancellationToken,
) -> bool {
    loop {
        let output = tokio::select! {
            _ = cancel.cancelled() => return false,
            output = session.output.recv() => output,
        };
        let (stream, bytes) = match output {
            None => return true,
            Some(Output::Stdout(b)) => (ExecStream::Stdout, b),
            Some(Output::Stderr(b)) => (ExecStream::Stderr, b),
        };
        for chunk in bytes.chunks(EXEC_CHUNK) {
            let line = encode(&ServerMessage::Event(Event::ExecOutput {
                session: id,
                stream,
                data: chunk.to_vec(),
            }));
            let sent = tokio::select! {
                _ = cancel.cancelled() => return false,
                sent = outbox.send(line) => sent,
            };
            if sent.is_err() {
                return false;
            }
        }
    }
}

fn api_error(e: &ExecError) -> ApiError {
    let kind = match e {
        ExecError::Cluster(ClusterError::UnknownContext { .. }) => ErrorKind::UnknownContext,
        ExecError::Invalid(_) => ErrorKind::BadRequest,
        _ => ErrorKind::Failed,
    };
    ApiError::new(kind, e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
