//! Desktop notifications about tunnels, decided here and shown by the host (`notify-rust`).
//!
//! A tunnel that fails notifies once (again only after it served in between); one that serves
//! again after being down for more than [`DOWN_LONG_ENOUGH`] notifies that it recovered. Changes
//! that come together (a rollout, a lost VPN) are merged into one notification per profile —
//! "4 tunnels of profile staging failed" — and notifications are at least [`MIN_GAP`] apart, so
//! a flapping tunnel never floods the desktop. Nothing here is per connection.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferry_core::tunnel::{TunnelId, TunnelSnapshot, TunnelState};

/// A tunnel that was down for less than this does not announce its recovery.
pub const DOWN_LONG_ENOUGH: Duration = Duration::from_secs(5);
/// Changes within this window are merged into one notification.
pub const MERGE_WINDOW: Duration = Duration::from_secs(2);
/// No two notifications closer than this.
pub const MIN_GAP: Duration = Duration::from_secs(10);

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
    /// A failure (shown as critical) rather than a recovery.
    pub failure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Failed { reason: String },
    Recovered,
}

#[derive(Debug, Clone)]
struct Pending {
    tunnel: TunnelId,
    name: String,
    profile: Option<String>,
    change: Change,
}

/// What is remembered of one tunnel between snapshots.
#[derive(Debug, Clone)]
struct Seen {
    state: TunnelState,
    /// When it stopped serving (None while it serves).
    down_since: Option<Instant>,
    /// Its failure was announced and it has not served since.
    failure_told: bool,
}

/// Turns snapshots into notices.
#[derive(Debug, Default)]
pub struct Notices {
    seen: HashMap<TunnelId, Seen>,
    pending: Vec<Pending>,
    first_pending: Option<Instant>,
    last_shown: Option<Instant>,
}

impl Notices {
    /// Takes in the tunnels as they are at `now`.
    pub fn observe(&mut self, tunnels: &[TunnelSnapshot], now: Instant) {
        self.seen
            .retain(|id, _| tunnels.iter().any(|t| t.id == *id));
        for t in tunnels {
            let serving = t.state == TunnelState::Active;
            let down = matches!(
                t.state,
                TunnelState::Failed | TunnelState::Waiting | TunnelState::Degraded
            );
            let Some(seen) = self.seen.get_mut(&t.id) else {
                self.seen.insert(
                    t.id,
                    Seen {
                        state: t.state,
                        down_since: down.then_some(now),
                        failure_told: false,
                    },
                );
                if t.state == TunnelState::Failed {
                    self.push(t, Change::Failed { reason: reason(t) }, now);
                    if let Some(s) = self.seen.get_mut(&t.id) {
                        s.failure_told = true;
                    }
                }
                continue;
            };
            if seen.state == t.state {
                continue;
            }
            let was = std::mem::replace(&mut seen.state, t.state);
            if down && seen.down_since.is_none() {
                seen.down_since = Some(now);
            }
            let mut change = None;
            if t.state == TunnelState::Failed && !seen.failure_told {
                seen.failure_told = true;
                change = Some(Change::Failed { reason: reason(t) });
            } else if serving {
                // A failure that is over before it was shown is no news.
                self.pending.retain(|p| p.tunnel != t.id);
                let long = seen
                    .down_since
                    .is_some_and(|since| now.duration_since(since) > DOWN_LONG_ENOUGH);
                if long && was != TunnelState::Starting {
                    change = Some(Change::Recovered);
                }
                seen.down_since = None;
                seen.failure_told = false;
            } else if t.state == TunnelState::Stopped {
                seen.down_since = None;
                seen.failure_told = false;
            }
            if let Some(change) = change {
                self.push(t, change, now);
            }
        }
    }

    fn push(&mut self, t: &TunnelSnapshot, change: Change, now: Instant) {
        let name = t
            .spec
            .alias
            .clone()
            .unwrap_or_else(|| t.spec.target.to_kubectl());
        self.pending.retain(|p| p.tunnel != t.id);
        self.pending.push(Pending {
            tunnel: t.id,
            name,
            profile: t.origin.profile().map(str::to_string),
            change,
        });
        self.first_pending.get_or_insert(now);
    }

    /// When [`Notices::due`] should be asked next (`None`: nothing pending).
    pub fn next_due(&self) -> Option<Instant> {
        let first = self.first_pending?;
        let merged = first + MERGE_WINDOW;
        Some(match self.last_shown {
            Some(last) => merged.max(last + MIN_GAP),
            None => merged,
        })
    }

    /// The notices to show at `now` (empty until the merge window and the gap have passed).
    pub fn due(&mut self, now: Instant) -> Vec<Notice> {
        match self.next_due() {
            Some(at) if at <= now => {}
            _ => return Vec::new(),
        }
        self.first_pending = None;
        if self.pending.is_empty() {
            return Vec::new();
        }
        self.last_shown = Some(now);
        merge(std::mem::take(&mut self.pending))
    }
}

fn reason(t: &TunnelSnapshot) -> String {
    t.detail.clone().unwrap_or_else(|| "no reason given".into())
}

/// One notice per (failed or recovered, profile); a single tunnel gets its own words.
fn merge(pending: Vec<Pending>) -> Vec<Notice> {
    let mut groups: BTreeMap<(bool, Option<String>), Vec<Pending>> = BTreeMap::new();
    for p in pending {
        let failed = matches!(p.change, Change::Failed { .. });
        groups
            .entry((!failed, p.profile.clone()))
            .or_default()
            .push(p);
    }
    groups
        .into_iter()
        .map(|((recovered, profile), items)| {
            let failure = !recovered;
            let of = profile
                .as_deref()
                .map(|p| format!(" of profile {p}"))
                .unwrap_or_default();
            match items.as_slice() {
                [one] => Notice {
                    summary: if failure {
                        format!("Tunnel {} failed", one.name)
                    } else {
                        format!("Tunnel {} works again", one.name)
                    },
                    body: match &one.change {
                        Change::Failed { reason } => format!("{reason}{of}"),
                        Change::Recovered => format!("It serves again{of}."),
                    },
                    failure,
                },
                many => Notice {
                    summary: format!(
                        "{} tunnels{of} {}",
                        many.len(),
                        if failure { "failed" } else { "work again" }
                    ),
                    body: many
                        .iter()
                        .map(|p| match &p.change {
                            Change::Failed { reason } => format!("{}: {reason}", p.name),
                            Change::Recovered => p.name.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    failure,
                },
            }
        })
        .collect()
}

/// Follows the instance's tunnels and shows the notices, while the settings allow it (read
/// each time, so turning them off in the window takes effect at once).
pub async fn run(instance: ferry_core::instance::Instance, settings: Option<std::path::PathBuf>) {
    let mut snapshots = instance.engine().snapshots();
    let mut notices = Notices::default();
    loop {
        let tunnels = snapshots.borrow_and_update().as_ref().clone();
        notices.observe(&tunnels, Instant::now());
        let due = notices.next_due();
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = sleep_until(due) => {}
        }
        for notice in notices.due(Instant::now()) {
            if enabled(settings.clone()).await {
                show(&notice).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn enabled(path: Option<std::path::PathBuf>) -> bool {
    let Some(path) = path else { return true };
    tokio::task::spawn_blocking(move || ferry_core::settings::load(&path))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
        .notifications
}

/// Shows one notification (org.freedesktop.Notifications); a desktop without a notification
/// server only gets a line in the log.
pub async fn show(notice: &Notice) {
    let mut n = notify_rust::Notification::new();
    n.appname("Ferry")
        .summary(&notice.summary)
        .body(&notice.body)
        .icon("dev.ferry.Ferry")
        .urgency(if notice.failure {
            notify_rust::Urgency::Critical
        } else {
            notify_rust::Urgency::Normal
        });
    tracing::info!("notification: {}: {}", notice.summary, notice.body);
    // notify-rust's async API needs another executor (async-io); its blocking one runs on a
    // blocking thread of the instance's runtime instead.
    match tokio::task::spawn_blocking(move || n.show().map(drop)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("could not show a notification: {e}"),
        Err(e) => tracing::warn!("could not show a notification: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::engine::Origin;

    fn tunnel(id: u64, profile: Option<&str>, state: TunnelState) -> TunnelSnapshot {
        let spec = serde_json::from_value(serde_json::json!({
            "context": "demo", "namespace": "default",
            "target": format!("svc/app{id}"), "ports": ["0:80"],
        }))
        .unwrap();
        TunnelSnapshot {
            id: TunnelId(id),
            origin: profile.map_or(Origin::AdHoc, |p| Origin::Profile(p.into())),
            spec,
            state,
            detail: (state == TunnelState::Failed).then(|| "pod not ready".into()),
            reason: None,
            ports: Vec::new(),
            pods: Vec::new(),
            transport: None,
            active_connections: 0,
            total_connections: 0,
            bytes_sent: 0,
            bytes_received: 0,
            errors: 0,
            last_error: None,
            reconnects: 0,
            uptime_secs: 0,
            recent_events: Vec::new(),
        }
    }

    fn states(profile: Option<&str>, states: &[TunnelState]) -> Vec<TunnelSnapshot> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| tunnel(i as u64 + 1, profile, *s))
            .collect()
    }

    #[test]
    fn a_burst_of_failures_becomes_one_notice_per_profile() {
        let t0 = Instant::now();
        let mut n = Notices::default();
        n.observe(&states(Some("staging"), &[TunnelState::Active; 4]), t0);
        n.observe(&states(Some("staging"), &[TunnelState::Failed; 4]), t0);
        assert!(n.due(t0).is_empty(), "merged for a moment first");
        let shown = n.due(t0 + MERGE_WINDOW);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].summary, "4 tunnels of profile staging failed");
        assert!(shown[0].failure);
        assert!(shown[0].body.contains("svc/app1: pod not ready"));
        // Still failed: nothing more.
        n.observe(
            &states(Some("staging"), &[TunnelState::Failed; 4]),
            t0 + MIN_GAP * 3,
        );
        assert!(n.due(t0 + MIN_GAP * 4).is_empty());
    }

    #[test]
    fn a_recovery_is_told_only_after_a_long_enough_outage() {
        let t0 = Instant::now();
        let mut n = Notices::default();
        n.observe(&states(None, &[TunnelState::Active]), t0);
        n.observe(&states(None, &[TunnelState::Waiting]), t0);
        n.observe(
            &states(None, &[TunnelState::Active]),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(n.next_due(), None, "a blip of 1 s is not news");
        n.observe(
            &states(None, &[TunnelState::Waiting]),
            t0 + Duration::from_secs(2),
        );
        let back = t0 + Duration::from_secs(2) + DOWN_LONG_ENOUGH + Duration::from_secs(1);
        n.observe(&states(None, &[TunnelState::Active]), back);
        let shown = n.due(back + MERGE_WINDOW);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].summary, "Tunnel svc/app1 works again");
        assert!(!shown[0].failure);
    }

    #[test]
    fn notices_are_rate_limited_and_a_flapping_tunnel_is_told_once_per_failure() {
        let t0 = Instant::now();
        let mut n = Notices::default();
        let mut now = t0;
        let mut shown = Vec::new();
        // Fails and comes back every second for a minute.
        for i in 0..60 {
            let state = if i % 2 == 0 {
                TunnelState::Failed
            } else {
                TunnelState::Active
            };
            n.observe(&states(None, &[state]), now);
            shown.extend(n.due(now));
            now += Duration::from_secs(1);
        }
        assert!(
            shown.len() <= 60 / MIN_GAP.as_secs() as usize + 1,
            "{} notices in 60 s",
            shown.len()
        );
        assert!(!shown.is_empty());
    }

    #[test]
    fn a_failure_cancelled_by_a_quick_recovery_is_not_shown() {
        let t0 = Instant::now();
        let mut n = Notices::default();
        n.observe(&states(None, &[TunnelState::Active]), t0);
        n.observe(&states(None, &[TunnelState::Failed]), t0);
        n.observe(
            &states(None, &[TunnelState::Active]),
            t0 + Duration::from_millis(500),
        );
        let shown = n.due(t0 + MERGE_WINDOW);
        assert!(
            shown.iter().all(|s| !s.failure),
            "the failure was over before anyone could act: {shown:?}"
        );
    }
}
