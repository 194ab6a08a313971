//! Container logs: a bounded buffer of lines per simulated container (what the "process" wrote),
//! and the `pods/log` endpoint that serves them plain or with `follow=true`, as the kubelet does.
//!
//! Lines come from the container's start-up, from requests its `http-hello` ports serve, and from
//! a heartbeat, so that a UI showing logs has something that moves.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{StatusCode, header};
use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::channel::form_pairs;
use crate::cluster::Cluster;
use crate::containers::{self, ContainerChoiceError};
use crate::streams::status_response;

/// How many lines a container keeps; older lines are dropped (like log rotation).
const MAX_LINES: usize = 1_000;

/// One line a container wrote, with the time the runtime saw it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: Timestamp,
    pub text: String,
}

/// The log of one running container: the retained lines, and a channel announcing new ones to
/// `follow=true` readers.
pub struct ContainerLog {
    lines: Mutex<VecDeque<LogLine>>,
    live: broadcast::Sender<LogLine>,
}

impl Default for ContainerLog {
    fn default() -> Self {
        Self {
            lines: Mutex::new(VecDeque::new()),
            live: broadcast::channel(256).0,
        }
    }
}

impl ContainerLog {
    /// Appends one line (without its newline) and wakes followers.
    pub fn write(&self, text: impl Into<String>) {
        let line = LogLine {
            time: Timestamp::now(),
            text: text.into(),
        };
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.push_back(line.clone());
        while lines.len() > MAX_LINES {
            lines.pop_front();
        }
        // Sent under the lock so a follower that snapshots then subscribes misses nothing.
        let _ = self.live.send(line);
    }

    /// The retained lines (the last `tail` of them) and a receiver for lines written after.
    fn snapshot(&self, tail: Option<usize>) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        (
            lines.iter().skip(skip).cloned().collect(),
            self.live.subscribe(),
        )
    }
}

/// What a `pods/log` request asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
}

/// Parses the `pods/log` query (`container`, `follow`, `timestamps`, `tailLines`); other
/// options (`sinceSeconds`, `limitBytes`…) are accepted and ignored.
pub fn parse_log_options(query: &str) -> Result<LogOptions, String> {
    let mut opts = LogOptions::default();
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "container" if !value.is_empty() => opts.container = Some(value),
            "follow" => opts.follow = value == "true" || value == "1",
            "timestamps" => opts.timestamps = value == "true" || value == "1",
            "tailLines" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for tailLines: not an integer")
                })?;
                if n < 0 {
                    return Err(
                        "tailLines: Invalid value: must be greater than or equal to 0".into(),
                    );
                }
                opts.tail_lines = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            _ => {}
        }
    }
    Ok(opts)
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`, called by the router after authorization.
/// Answers `text/plain`; with `follow=true` the body stays open and grows until the pod stops
/// running or the client goes away.
pub async fn serve(
    cluster: Arc<Cluster>,
    namespace: String,
    pod: String,
    req: Request,
) -> Response {
    containers::start(&cluster);
    let query = req.uri().query().unwrap_or_default().to_string();
    let opts = match parse_log_options(&query) {
        Ok(o) => o,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let Some(object) = cluster.store.get("pods", &namespace, &pod) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{pod}\" not found"),
        );
    };
    let container = match containers::choose_container(&object, opts.container.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let running = cluster.containers.running(&namespace, &pod);
    let Some(log) = running.as_ref().and_then(|r| r.log(&container)) else {
        let msg = format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        );
        return status_response(StatusCode::BAD_REQUEST, "BadRequest", &msg);
    };
    let (lines, live) = log.snapshot(opts.tail_lines);
    let timestamps = opts.timestamps;
    let head = futures::stream::iter(lines.into_iter().map(move |l| render(&l, timestamps)));
    let body = if opts.follow {
        let stopped = running.map(|r| r.stopped.clone()).unwrap_or_default();
        let tail = follow(live, timestamps).take_until(stopped.cancelled_owned());
        Body::from_stream(head.chain(tail).map(Ok::<_, Infallible>))
    } else {
        Body::from_stream(head.map(Ok::<_, Infallible>))
    };
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// New lines as they are written; a reader that falls behind skips what it missed.
fn follow(
    live: broadcast::Receiver<LogLine>,
    timestamps: bool,
) -> impl futures::Stream<Item = Bytes> + Send {
    futures::stream::unfold(live, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((render(&line, timestamps), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// One line as the kubelet serves it; with `timestamps=true` prefixed by RFC 3339 nano time.
fn render(line: &LogLine, timestamps: bool) -> Bytes {
    if timestamps {
        let ts = line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ");
        Bytes::from(format!("{ts} {}\n", line.text))
    } else {
        Bytes::from(format!("{}\n", line.text))
    }
}

impl IntoResponse for ContainerChoiceError {
    fn into_response(self) -> Response {
        status_response(StatusCode::BAD_REQUEST, "BadRequest", &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query_parses() {
        let o = parse_log_options("container=a&follow=true&tailLines=3&timestamps=true").unwrap();
        assert_eq!(
            o,
            LogOptions {
                container: Some("a".into()),
                follow: true,
                timestamps: true,
                tail_lines: Some(3)
            }
        );
        assert!(parse_log_options("tailLines=x").is_err());
        assert!(parse_log_options("tailLines=-1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn log_query_parser_never_panics(query in ".*", tail in "tailLines=-?[0-9]{0,25}") {
            let _ = parse_log_options(&query);
            let _ = parse_log_options(&tail);
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = ContainerLog::default();
        for i in 0..5 {
            log.write(format!("line {i}"));
        }
        let (lines, _) = log.snapshot(Some(2));
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["line 3", "line 4"]);
    }
}
