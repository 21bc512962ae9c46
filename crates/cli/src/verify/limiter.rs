//! Client-side pacing for batch mode (issue 11): a rate limiter that spaces request
//! starts evenly (a token bucket of depth one, so 400 requests at 20/s take 20 s and
//! never burst past the service's 20 req/s, protocol.md §5), slowed down when the
//! server answers `RequestLimitExceeded` and recovering afterwards (AIMD), plus the
//! exponential backoff with jitter used between attempts of one row.

use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt as _;
use tokio::time::Instant;

/// Factor applied to the rate on `RequestLimitExceeded`.
const DECREASE: f64 = 0.75;
/// At most one decrease per this interval: a burst of rejections is one event.
const DECREASE_COOLDOWN: Duration = Duration::from_secs(1);
/// Rate regained per second of time while below the configured rate.
const RECOVER_PER_SEC: f64 = 2.0;
/// Lowest adaptive rate.
const MIN_RATE: f64 = 0.5;

#[derive(Debug)]
struct State {
    rate: f64,
    next: Instant,
    last_update: Instant,
    last_decrease: Option<Instant>,
}

/// Spaces request starts `1/rate` apart.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    max_rate: f64,
    state: Mutex<State>,
}

impl RateLimiter {
    /// `qps` must be positive (clap checks it).
    pub(crate) fn new(qps: f64) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            max_rate: qps,
            state: Mutex::new(State {
                rate: qps,
                next: now,
                last_update: now,
                last_decrease: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state invalid.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves the next start slot and returns when it is due.
    pub(crate) fn reserve(&self) -> Instant {
        let mut s = self.lock();
        let now = Instant::now();
        if s.rate < self.max_rate {
            let dt = now.saturating_duration_since(s.last_update).as_secs_f64();
            s.rate = (s.rate + RECOVER_PER_SEC * dt).min(self.max_rate);
        }
        s.last_update = now;
        let at = s.next.max(now);
        s.next = at + Duration::from_secs_f64(1.0 / s.rate);
        at
    }

    /// The server said we are too fast: lower the rate (once per cooldown).
    pub(crate) fn throttled(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_COOLDOWN)
        {
            s.rate = (s.rate * DECREASE).max(MIN_RATE.min(self.max_rate));
            s.last_decrease = Some(now);
            s.last_update = now;
        }
    }

    /// The current rate (requests per second).
    #[cfg(test)]
    pub(crate) fn rate(&self) -> f64 {
        self.lock().rate
    }
}

/// Delay before attempt `failed + 1` after `failed` failed attempts: exponential
/// (`base`·2^(failed−1), capped at `cap`) with "equal jitter" — half fixed, half random
/// — so that rows rejected together do not come back together.
pub(crate) fn backoff(failed: u32, base: Duration, cap: Duration) -> Duration {
    let exp = failed.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    let jitter = rand::rng().random_range(0.0..=1.0);
    half + half.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced() {
        let l = RateLimiter::new(20.0);
        let first = l.reserve();
        let mut last = first;
        for _ in 0..39 {
            last = l.reserve();
        }
        let span = last.duration_since(first).as_secs_f64();
        assert!((span - 39.0 / 20.0).abs() < 0.01, "{span}");
    }

    #[test]
    fn throttling_lowers_the_rate_once_per_cooldown() {
        let l = RateLimiter::new(50.0);
        l.throttled();
        l.throttled();
        assert!((l.rate() - 37.5).abs() < 0.01, "{}", l.rate());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(200);
        let cap = Duration::from_secs(4);
        for failed in 1..12 {
            let d = backoff(failed, base, cap);
            let full = base.saturating_mul(1 << (failed - 1).min(30)).min(cap);
            assert!(d >= full / 2 && d <= full, "{failed}: {d:?}");
        }
    }
}
