//! How long to wait before retrying a broken watch or an unreachable API server: capped
//! exponential backoff with jitter, 0.2 s doubling up to 30 s.
//!
//! Jitter keeps thirty tunnels on one context from hammering a returning API server in the same
//! millisecond; the cap keeps recovery within half a minute of the server coming back.

use std::time::Duration;

use rand::Rng;

/// Retry delays for one supervisor. Reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Failures since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next retry: `initial * 2^n` capped at `max`, then scaled by a
    /// random factor in [0.5, 1.0] so that retries spread out, never below `initial`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let factor = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(factor).max(self.initial)
    }

    /// The un-jittered delay for the current attempt.
    fn ceiling(&self) -> Duration {
        let shift = self.attempt.min(20);
        self.initial.saturating_mul(1u32 << shift).min(self.max)
    }

    /// Call after a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_200ms_and_never_exceed_30s() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(200) && first <= Duration::from_millis(200),
            "{first:?}"
        );
        let mut last_ceiling = Duration::ZERO;
        for _ in 0..50 {
            let ceiling = b.ceiling();
            assert!(ceiling >= last_ceiling, "ceilings never shrink");
            last_ceiling = ceiling;
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_secs(30),
                "{d:?}"
            );
        }
        assert_eq!(last_ceiling, Duration::from_secs(30), "reaches the cap");
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::default();
            for _ in 0..6 {
                b.next_delay();
            }
            delays.insert(b.next_delay());
        }
        assert!(
            delays.len() > 1,
            "twenty supervisors should not all wait exactly the same time"
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }
}
