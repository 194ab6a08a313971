//! What a tunnel has done and is doing: counters, current pods, last error, a bounded event
//! log, and the plain serde snapshot the GUI, the CLI and the control socket read.
//!
//! The hot path (every byte copied) only touches atomics in [`Counters`]; everything else sits
//! behind one short-lived mutex in [`TunnelCell`], touched on events (a pod switch, a failed
//! attempt), never per byte.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::state::{Derived, Facts, Reason, TunnelState, derive};
use super::transport::Transport;
use crate::spec::TunnelSpec;

/// Identifies one tunnel inside one engine. Stable for the engine's life; not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TunnelId(pub u64);

impl std::fmt::Display for TunnelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// One forwarded port of a tunnel, as the user sees it: where to connect locally and where the
/// bytes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedPort {
    /// The port spec as given (`8888:http`).
    pub spec: String,
    /// Local addresses bound for it (empty until bound).
    pub local: Vec<SocketAddr>,
    /// The container port new connections go to, once resolved (differs per pod for a named
    /// `targetPort`; this is the one of the best pod).
    pub remote: Option<u16>,
}

/// A time-stamped error, kept so a person can see what went wrong and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at: jiff::Timestamp,
    pub message: String,
}

/// Something that happened to a tunnel, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEvent {
    pub tunnel: TunnelId,
    pub at: jiff::Timestamp,
    pub kind: EventKind,
}

/// What happened. Each variant is one line in the CLI and one row in the GUI's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    /// The state changed (the detail says why, e.g. "waiting for a ready pod").
    StateChanged {
        from: TunnelState,
        to: TunnelState,
        detail: Option<String>,
    },
    /// A local listener is bound.
    Listening { address: SocketAddr, spec: String },
    /// New connections now go to these pods (first choice, or a switch after a pod went away).
    PodsChanged {
        previous: Vec<String>,
        current: Vec<String>,
    },
    /// A connection could not be forwarded.
    ConnectionFailed { client: SocketAddr, message: String },
    /// The watch on the target broke or the API server was unreachable; retrying after a delay.
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        message: String,
    },
    /// The wall clock jumped (sleep/wake); watches were re-established at once.
    ClockJumped { seconds: i64 },
    /// Something the user should know that is not an error (e.g. listening on 0.0.0.0).
    Warning { message: String },
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventKind::StateChanged { from, to, detail } => match detail {
                Some(d) => write!(f, "{from} → {to}: {d}"),
                None => write!(f, "{from} → {to}"),
            },
            EventKind::Listening { address, spec } => write!(f, "listening on {address} ({spec})"),
            EventKind::PodsChanged { previous, current } if previous.is_empty() => {
                write!(f, "forwarding to pod {}", current.join(", "))
            }
            EventKind::PodsChanged { current, .. } if current.is_empty() => {
                write!(f, "no ready pod left")
            }
            EventKind::PodsChanged { previous, current } => write!(
                f,
                "pod switched: {} → {}",
                previous.join(", "),
                current.join(", ")
            ),
            EventKind::ConnectionFailed { client, message } => {
                write!(f, "connection from {client} failed: {message}")
            }
            EventKind::Reconnecting {
                attempt,
                delay_ms,
                message,
            } => write!(
                f,
                "{message}; reconnecting in {:.1} s (attempt {attempt})",
                *delay_ms as f64 / 1000.0
            ),
            EventKind::ClockJumped { seconds } => {
                write!(f, "clock jumped by {seconds} s (sleep/wake?); re-watching")
            }
            EventKind::Warning { message } => write!(f, "warning: {message}"),
        }
    }
}

/// Everything a person or a program may want to know about one tunnel, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSnapshot {
    pub id: TunnelId,
    /// Where the tunnel came from (a profile, or ad hoc).
    #[serde(default)]
    pub origin: crate::engine::Origin,
    pub spec: TunnelSpec,
    pub state: TunnelState,
    /// Why the tunnel is in this state, in words ("waiting for a ready pod").
    pub detail: Option<String>,
    /// Why it does not serve, for programs (`not-found` makes the foreground CLI exit).
    #[serde(default)]
    pub reason: Option<Reason>,
    pub ports: Vec<ForwardedPort>,
    /// Pods new connections go to now (best first; all Ready pods when spreading).
    pub pods: Vec<String>,
    /// The protocol the latest connection went over; `None` before the first connection.
    #[serde(default)]
    pub transport: Option<Transport>,
    pub active_connections: u64,
    pub total_connections: u64,
    /// Bytes from local clients to the pods.
    pub bytes_sent: u64,
    /// Bytes from the pods to local clients.
    pub bytes_received: u64,
    /// Connection attempts that failed.
    pub errors: u64,
    pub last_error: Option<ErrorRecord>,
    /// How often the watch was re-established after a failure or a clock jump.
    pub reconnects: u64,
    /// Seconds since the tunnel was (re)started; 0 when stopped.
    pub uptime_secs: u64,
    /// The most recent events, oldest first (bounded).
    pub recent_events: Vec<TunnelEvent>,
}

/// Counters updated on the data path with relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    pub active: AtomicU64,
    pub total: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The slow-changing part of a tunnel's status, behind [`TunnelCell`]'s mutex.
#[derive(Debug)]
pub(crate) struct Status {
    pub facts: Facts,
    pub state: TunnelState,
    pub detail: Option<String>,
    pub reason: Option<Reason>,
    pub ports: Vec<ForwardedPort>,
    pub pods: Vec<String>,
    pub transport: Option<Transport>,
    pub last_error: Option<ErrorRecord>,
    pub started: Option<Instant>,
    /// When the API server last answered (a watch event, a port-forward upgrade). A failure
    /// of an attempt that started before this is old news and changes nothing.
    pub api_answered: Option<Instant>,
    /// When a pod last replied through the tunnel. A connection failure of an attempt that
    /// started before this does not degrade the tunnel.
    pub pod_replied: Option<Instant>,
    /// When the latest attempt that found the API server unreachable started: watch news
    /// older than this does not make it reachable again.
    pub unreachable_at: Option<Instant>,
    pub events: VecDeque<TunnelEvent>,
}

/// The shared record of one tunnel: written by its supervisor and connection tasks, read by
/// the engine's snapshot publisher.
pub(crate) struct TunnelCell {
    pub id: TunnelId,
    pub origin: crate::engine::Origin,
    pub spec: TunnelSpec,
    pub counters: Counters,
    status: Mutex<Status>,
    sink: Arc<dyn EventSink>,
    event_log_len: usize,
}

/// Where a tunnel reports changes: the engine broadcasts events and republishes snapshots.
pub(crate) trait EventSink: Send + Sync {
    /// Something changed; a new snapshot should be published soon.
    fn changed(&self);
    /// An event happened (also recorded in the tunnel's own log).
    fn event(&self, event: TunnelEvent);
}

impl TunnelCell {
    pub(crate) fn new(
        id: TunnelId,
        spec: TunnelSpec,
        sink: Arc<dyn EventSink>,
        log: usize,
    ) -> Self {
        let ports = spec
            .ports
            .iter()
            .map(|p| ForwardedPort {
                spec: p.to_string(),
                local: Vec::new(),
                remote: None,
            })
            .collect();
        let facts = Facts {
            api_reachable: true,
            ..Facts::default()
        };
        let Derived {
            state,
            detail,
            reason,
        } = derive(&facts);
        Self {
            id,
            origin: crate::engine::Origin::AdHoc,
            spec,
            counters: Counters::default(),
            status: Mutex::new(Status {
                facts,
                state,
                detail,
                reason,
                ports,
                pods: Vec::new(),
                transport: None,
                last_error: None,
                started: Some(Instant::now()),
                api_answered: None,
                pod_replied: None,
                unreachable_at: None,
                events: VecDeque::new(),
            }),
            sink,
            event_log_len: log.max(1),
        }
    }

    /// The same cell, recording where its tunnel came from.
    pub(crate) fn with_origin(mut self, origin: crate::engine::Origin) -> Self {
        self.origin = origin;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        // A panic while holding this lock cannot leave it inconsistent in a way that matters
        // more than losing the whole tunnel view, so recover the data.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Change the facts with `edit`, re-derive the state, and emit a StateChanged event when it
    /// moved.
    pub(crate) fn update_facts(&self, edit: impl FnOnce(&mut Facts)) {
        let mut status = self.lock();
        edit(&mut status.facts);
        let Derived {
            state,
            detail,
            reason,
        } = derive(&status.facts);
        let moved = state != status.state;
        let detail_changed = detail != status.detail || reason != status.reason;
        let from = status.state;
        status.state = state;
        status.detail = detail.clone();
        status.reason = reason;
        if moved {
            if state == TunnelState::Stopped {
                status.started = None;
            } else if from == TunnelState::Stopped {
                status.started = Some(Instant::now());
            }
            let event = self.push_event(
                &mut status,
                EventKind::StateChanged {
                    from,
                    to: state,
                    detail,
                },
            );
            drop(status);
            self.sink.event(event);
        } else {
            drop(status);
        }
        if moved || detail_changed {
            self.sink.changed();
        }
    }

    /// Record an event in the log and broadcast it.
    pub(crate) fn event(&self, kind: EventKind) {
        let mut status = self.lock();
        let event = self.push_event(&mut status, kind);
        drop(status);
        self.sink.event(event);
        self.sink.changed();
    }

    fn push_event(&self, status: &mut Status, kind: EventKind) -> TunnelEvent {
        let event = TunnelEvent {
            tunnel: self.id,
            at: jiff::Timestamp::now(),
            kind,
        };
        if status.events.len() >= self.event_log_len {
            status.events.pop_front();
        }
        status.events.push_back(event.clone());
        event
    }

    /// A connection attempt that started at `started` failed: count it, keep it as the last
    /// error, and mark the tunnel degraded (the pods are there, but reaching them failed) —
    /// unless a pod has replied since the attempt started: then the failure is old news and
    /// the state stays (no flapping on late failures).
    pub(crate) fn attempt_failed(&self, started: Instant, client: SocketAddr, message: String) {
        self.connection_failed(client, message.clone());
        let stale = self.lock().pod_replied.is_some_and(|t| t > started);
        if !stale {
            self.update_facts(|f| f.last_attempt_error = Some(message));
        }
    }

    /// A connection was given up without reaching a pod (no Ready pod in time): counted and
    /// logged, but the state already says "waiting", so it does not degrade the tunnel.
    pub(crate) fn connection_failed(&self, client: SocketAddr, message: String) {
        Counters::add(&self.counters.errors, 1);
        {
            let mut status = self.lock();
            status.last_error = Some(ErrorRecord {
                at: jiff::Timestamp::now(),
                message: message.clone(),
            });
        }
        self.event(EventKind::ConnectionFailed { client, message });
    }

    /// A local connection was accepted (or ended): the counters moved, publish soon.
    pub(crate) fn connections_changed(&self) {
        self.sink.changed();
    }

    /// The API server answered (a port-forward upgrade, a watch event): it is reachable.
    /// A connection went over `transport`; republished when that changed.
    pub(crate) fn set_transport(&self, transport: Transport) {
        let changed = {
            let mut status = self.lock();
            let changed = status.transport != Some(transport);
            status.transport = Some(transport);
            changed
        };
        if changed {
            self.sink.changed();
        }
    }

    pub(crate) fn api_answered(&self) {
        let needs = {
            let mut status = self.lock();
            status.api_answered = Some(Instant::now());
            !status.facts.api_reachable
        };
        if needs {
            self.update_facts(|f| f.api_reachable = true);
        }
    }

    /// The watches last heard from the API server at `heard`: whether the server counts as
    /// reachable now. News newer than the latest attempt that found it unreachable makes it
    /// reachable; older news changes nothing (the state stays what the latest evidence said).
    /// Records the answer; the caller sets `api_reachable` in its own update.
    pub(crate) fn api_heard(&self, heard: Option<Instant>) -> bool {
        let mut status = self.lock();
        match heard {
            Some(heard) if status.unreachable_at.is_none_or(|u| u < heard) => {
                status.api_answered = status.api_answered.max(Some(heard));
                true
            }
            _ => status.facts.api_reachable,
        }
    }

    /// When the latest attempt that found the API server unreachable started.
    pub(crate) fn unreachable_since(&self) -> Option<Instant> {
        self.lock().unreachable_at
    }

    /// An attempt that started at `started` found the API server unreachable. Returns whether
    /// that is news: false when the server answered after the attempt started (a request
    /// stuck in a pause that ended meanwhile), and then nothing changes.
    pub(crate) fn api_unreachable(&self, started: Instant) -> bool {
        {
            let mut status = self.lock();
            if status.api_answered.is_some_and(|t| t > started) {
                return false;
            }
            status.unreachable_at = status.unreachable_at.max(Some(started));
        }
        self.update_facts(|f| f.api_reachable = false);
        true
    }

    /// A pod replied through the tunnel: the data path works, which clears "degraded".
    pub(crate) fn pod_replied(&self) {
        let needs = {
            let mut status = self.lock();
            status.pod_replied = Some(Instant::now());
            status.api_answered = status.pod_replied;
            status.facts.last_attempt_error.is_some() || !status.facts.api_reachable
        };
        if needs {
            self.update_facts(|f| {
                f.last_attempt_error = None;
                f.api_reachable = true;
            });
        }
    }

    /// Record an error that is not tied to one connection (a broken watch).
    pub(crate) fn record_error(&self, message: String) {
        let mut status = self.lock();
        status.last_error = Some(ErrorRecord {
            at: jiff::Timestamp::now(),
            message,
        });
        drop(status);
        self.sink.changed();
    }

    /// The pods new connections go to changed.
    /// Returns whether they changed.
    pub(crate) fn set_pods(&self, pods: Vec<String>) -> bool {
        let mut status = self.lock();
        if status.pods == pods {
            return false;
        }
        let previous = std::mem::replace(&mut status.pods, pods.clone());
        drop(status);
        self.event(EventKind::PodsChanged {
            previous,
            current: pods,
        });
        true
    }

    /// Update the per-port view (local addresses bound, remote port resolved).
    pub(crate) fn edit_ports(&self, edit: impl FnOnce(&mut Vec<ForwardedPort>)) {
        let mut status = self.lock();
        edit(&mut status.ports);
        drop(status);
        self.sink.changed();
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> TunnelState {
        self.lock().state
    }

    /// The plain snapshot of this tunnel now.
    pub(crate) fn snapshot(&self) -> TunnelSnapshot {
        let status = self.lock();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TunnelSnapshot {
            id: self.id,
            origin: self.origin.clone(),
            spec: self.spec.clone(),
            state: status.state,
            detail: status.detail.clone(),
            reason: status.reason,
            ports: status.ports.clone(),
            pods: status.pods.clone(),
            transport: status.transport,
            active_connections: load(&self.counters.active),
            total_connections: load(&self.counters.total),
            bytes_sent: load(&self.counters.bytes_sent),
            bytes_received: load(&self.counters.bytes_received),
            errors: load(&self.counters.errors),
            last_error: status.last_error.clone(),
            reconnects: load(&self.counters.reconnects),
            uptime_secs: status.started.map_or(0, |s| s.elapsed().as_secs()),
            recent_events: status.events.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Spread, Target};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<TunnelEvent>>);
    impl EventSink for Recorder {
        fn changed(&self) {}
        fn event(&self, event: TunnelEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    fn cell(log: usize) -> (TunnelCell, Arc<Recorder>) {
        let spec = TunnelSpec {
            context: "demo".into(),
            namespace: "default".into(),
            target: Target::Service("kubia".into()),
            ports: vec!["8080:80".parse().unwrap()],
            bind: vec![],
            spread: Spread::Single,
            alias: None,
            note: None,
        };
        let rec = Arc::new(Recorder::default());
        (TunnelCell::new(TunnelId(1), spec, rec.clone(), log), rec)
    }

    #[test]
    fn the_event_log_keeps_only_the_newest_entries() {
        let (cell, rec) = cell(3);
        for i in 0..10 {
            cell.event(EventKind::Warning {
                message: format!("w{i}"),
            });
        }
        let snap = cell.snapshot();
        assert_eq!(snap.recent_events.len(), 3);
        assert_eq!(
            snap.recent_events[0].kind,
            EventKind::Warning {
                message: "w7".into()
            }
        );
        assert_eq!(
            rec.0.lock().unwrap().len(),
            10,
            "every event is still broadcast"
        );
    }

    #[test]
    fn state_changes_are_emitted_once_per_change() {
        let (cell, rec) = cell(16);
        cell.update_facts(|f| {
            f.listening = true;
            f.resolved = true;
            f.ready_pods = 1;
        });
        cell.update_facts(|f| f.ready_pods = 2);
        let events = rec.0.lock().unwrap().clone();
        let changes: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(changes, vec![TunnelState::Active]);
        assert_eq!(cell.state(), TunnelState::Active);
    }

    #[test]
    fn a_failed_attempt_degrades_and_a_good_one_restores() {
        let (cell, _) = cell(16);
        cell.update_facts(|f| {
            f.listening = true;
            f.resolved = true;
            f.ready_pods = 1;
        });
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let before = Instant::now();
        cell.attempt_failed(before, client, "pod went away".into());
        assert_eq!(cell.state(), TunnelState::Degraded);
        let snap = cell.snapshot();
        assert_eq!(snap.errors, 1);
        assert_eq!(snap.last_error.unwrap().message, "pod went away");
        // Opening a stream proves the API server answers, not that the pod does.
        cell.api_answered();
        assert_eq!(cell.state(), TunnelState::Degraded);
        cell.pod_replied();
        assert_eq!(cell.state(), TunnelState::Active);
        // A failure of an attempt that began before the reply is old news.
        cell.attempt_failed(before, client, "late failure".into());
        assert_eq!(cell.state(), TunnelState::Active);
        assert_eq!(cell.snapshot().errors, 2, "still counted");
        assert!(!cell.api_unreachable(before), "the server answered since");
        assert_eq!(cell.state(), TunnelState::Active);
        assert!(cell.api_unreachable(Instant::now()));
        assert_eq!(cell.state(), TunnelState::Waiting);
    }

    #[test]
    fn watch_news_older_than_an_unreachable_attempt_changes_nothing() {
        let (cell, _) = cell(16);
        cell.update_facts(|f| {
            f.listening = true;
            f.resolved = true;
            f.ready_pods = 1;
        });
        let heard = Instant::now();
        let attempt = heard + std::time::Duration::from_millis(1);
        assert!(cell.api_unreachable(attempt));
        assert_eq!(cell.unreachable_since(), Some(attempt));
        assert!(
            !cell.api_heard(Some(heard)),
            "old news keeps it unreachable"
        );
        // A connection got through since: old watch news does not make it unreachable again.
        cell.api_answered();
        assert_eq!(cell.state(), TunnelState::Active);
        assert!(cell.api_heard(Some(heard)), "old news keeps it reachable");
        assert!(cell.api_heard(Some(attempt + std::time::Duration::from_millis(1))));
    }
}
