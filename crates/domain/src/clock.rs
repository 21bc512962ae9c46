//! The injected clock, and the Beijing calendar day the attempt limit counts in
//! (verification.md §2 step 4).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day.
const DAY: i64 = 86_400;
/// Asia/Shanghai is UTC+8 all year (no daylight saving since 1991).
const BEIJING_OFFSET: i64 = 8 * 3600;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that says what it is told (tests, replays). Can be moved.
#[derive(Debug, Default)]
pub struct FixedClock {
    now: AtomicI64,
}

impl FixedClock {
    /// A clock stopped at `unix` seconds.
    pub fn new(unix: i64) -> Self {
        FixedClock {
            now: AtomicI64::new(unix),
        }
    }

    /// Sets the time.
    pub fn set(&self, unix: i64) {
        self.now.store(unix, Ordering::SeqCst);
    }

    /// Moves the time by `seconds` (may be negative).
    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The calendar day in Asia/Shanghai containing `unix`, as days since 1970-01-01
/// (Beijing). The attempt counter resets at Beijing midnight (§2 step 4).
pub fn beijing_day(unix: i64) -> i32 {
    let day = (unix.saturating_add(BEIJING_OFFSET)).div_euclid(DAY);
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_midnight_is_16_00_utc() {
        // 2023-11-14T15:59:59Z is 23:59:59 in Beijing; one second later is the next day.
        let before = 1_699_977_599;
        assert_eq!(beijing_day(before) + 1, beijing_day(before + 1));
        assert_eq!(beijing_day(0), 0);
        assert_eq!(beijing_day(-8 * 3600), 0);
        assert_eq!(beijing_day(-8 * 3600 - 1), -1);
    }

    #[test]
    fn fixed_clock_moves_when_told() {
        let c = FixedClock::new(10);
        c.advance(5);
        assert_eq!(c.now_unix(), 15);
        c.set(1);
        assert_eq!(c.now_unix(), 1);
    }
}
