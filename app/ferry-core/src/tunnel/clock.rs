//! Sleep/wake detection: when a laptop sleeps, TCP connections to the API server (the watches)
//! die silently and nobody notices until a timeout minutes later. The monotonic clock stops
//! during suspend while the wall clock keeps going, so comparing the two on a coarse timer
//! reveals a sleep; supervisors then re-establish their watches at once.
//!
//! One timer serves the whole engine (not one per tunnel), so thirty idle tunnels still cost
//! one wake-up every couple of seconds.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

/// A jump larger than this (in either direction) counts as sleep/wake or a clock change.
const JUMP_THRESHOLD: Duration = Duration::from_secs(3);

/// The latest clock jump seen: how many so far, and the size of the last one in seconds
/// (positive: the wall clock moved further than the monotonic clock, as after a sleep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockJump {
    pub count: u64,
    pub seconds: i64,
}

/// Owns the sender side; supervisors [`subscribe`](ClockWatch::subscribe).
pub struct ClockWatch {
    sender: watch::Sender<ClockJump>,
}

impl Default for ClockWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockWatch {
    pub fn new() -> Self {
        Self {
            sender: watch::Sender::new(ClockJump::default()),
        }
    }

    /// A receiver that changes on every detected jump.
    pub fn subscribe(&self) -> watch::Receiver<ClockJump> {
        self.sender.subscribe()
    }

    /// Report a jump by hand (tests, or an OS resume notification).
    pub fn report(&self, seconds: i64) {
        self.sender.send_modify(|j| {
            j.count += 1;
            j.seconds = seconds;
        });
    }

    /// Start the checking task: every `every`, compare how far each clock moved.
    pub fn spawn(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let mut mono = Instant::now();
            let mut wall = SystemTime::now();
            loop {
                tokio::time::sleep(every).await;
                let (now_mono, now_wall) = (Instant::now(), SystemTime::now());
                if let Some(seconds) = jump(mono, now_mono, wall, now_wall) {
                    tracing::info!(
                        seconds,
                        "wall clock jumped (sleep/wake?); re-establishing watches"
                    );
                    sender.send_modify(|j| {
                        j.count += 1;
                        j.seconds = seconds;
                    });
                }
                (mono, wall) = (now_mono, now_wall);
            }
        })
    }
}

/// How far the wall clock moved beyond the monotonic clock between two readings, in whole
/// seconds, if more than the threshold.
pub fn jump(
    mono_before: Instant,
    mono_after: Instant,
    wall_before: SystemTime,
    wall_after: SystemTime,
) -> Option<i64> {
    let mono = mono_after
        .saturating_duration_since(mono_before)
        .as_secs_f64();
    let wall = match wall_after.duration_since(wall_before) {
        Ok(d) => d.as_secs_f64(),
        Err(back) => -back.duration().as_secs_f64(),
    };
    let diff = wall - mono;
    (diff.abs() > JUMP_THRESHOLD.as_secs_f64()).then(|| diff.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_shows_as_a_forward_jump() {
        let m = Instant::now();
        let w = SystemTime::now();
        // 2 s of monotonic time, 602 s of wall time: the machine slept ten minutes.
        let got = jump(
            m,
            m + Duration::from_secs(2),
            w,
            w + Duration::from_secs(602),
        );
        assert_eq!(got, Some(600));
    }

    #[test]
    fn a_clock_set_backwards_is_a_jump_too() {
        let m = Instant::now();
        let w = SystemTime::now();
        let got = jump(
            m,
            m + Duration::from_secs(2),
            w,
            w - Duration::from_secs(60),
        );
        assert_eq!(got, Some(-62));
    }

    #[test]
    fn ordinary_drift_is_not_a_jump() {
        let m = Instant::now();
        let w = SystemTime::now();
        let got = jump(
            m,
            m + Duration::from_secs(2),
            w,
            w + Duration::from_millis(2300),
        );
        assert_eq!(got, None);
    }

    #[test]
    fn reporting_wakes_subscribers() {
        let watch = ClockWatch::new();
        let mut rx = watch.subscribe();
        watch.report(30);
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            *rx.borrow_and_update(),
            ClockJump {
                count: 1,
                seconds: 30
            }
        );
    }
}
