//! In-process implementations of the shared-state traits, for the embedded backend
//! (one node owns its data directory, so its memory is the whole deployment's state).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{RateLimiter, ReplayBegin, ReplayCache, StoreError};

/// How long a final answer is replayed: the ±300 s signature window on both sides.
pub const REPLAY_TTL: Duration = Duration::from_secs(600);
/// A claim whose owner vanished (crash, dropped connection) expires after this.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);
/// Rate-limiter keys kept before idle ones are swept.
const SWEEP_AT: usize = 100_000;
/// Most requests remembered at once. Without a bound the cache grew by about 350 bytes
/// per answer for 600 s: 7 GB at 30,000 requests/s. With it, memory stays under about
/// 40 MB, and an exact duplicate is recognised while it is among the last 100,000
/// requests: for the whole window up to about 160 requests/s (eight accounts at
/// Tencent's 20/s), for 100,000 / rate seconds above that (3 s at 30,000/s), which
/// still covers retransmissions and client retries. Evicting the oldest first keeps
/// the newest, the ones a retry is most likely to repeat (docs/operations.md).
pub const REPLAY_CACHE_MAX_ENTRIES: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// GCRA ("virtual scheduling"): each key has a theoretical arrival time `tat`; a
/// request is allowed when `max(tat, now) + T - now <= burst × T`, where `T = 1/rate`.
/// With burst equal to the rate, an idle account may send one second's worth at once,
/// then one request every `T` (issue 5).
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    tats: Mutex<HashMap<String, Instant>>,
}

impl MemoryRateLimiter {
    /// The decision at `now` (separate for tests with a fake time).
    pub fn acquire_at(&self, key: &str, rate_per_second: u32, burst: u32, now: Instant) -> bool {
        if rate_per_second == 0 {
            return false;
        }
        let interval = Duration::from_secs(1) / rate_per_second;
        let tolerance = interval * burst.max(1);
        let mut tats = lock(&self.tats);
        if tats.len() >= SWEEP_AT {
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat.duration_since(now) > tolerance {
            return false;
        }
        tats.insert(key.to_owned(), new_tat);
        true
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        rate_per_second: u32,
        burst: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.acquire_at(key, rate_per_second, burst, Instant::now()))
    }
}

#[derive(Debug)]
enum ReplayEntry {
    InFlight(Instant),
    Done(Instant, Vec<u8>),
}

/// Replay cache in memory, entries expiring after [`REPLAY_TTL`], at most
/// [`REPLAY_CACHE_MAX_ENTRIES`] of them.
#[derive(Debug)]
pub struct MemoryReplayCache {
    state: Mutex<ReplayState>,
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::with_max_entries(REPLAY_CACHE_MAX_ENTRIES)
    }
}

impl MemoryReplayCache {
    /// A cache that remembers at most `max_entries` requests (the oldest go first).
    pub fn with_max_entries(max_entries: usize) -> Self {
        MemoryReplayCache {
            state: Mutex::new(ReplayState {
                max_entries: max_entries.max(1),
                ..ReplayState::default()
            }),
        }
    }
}

/// The entries and the order they were written in, so that expiry pops the oldest
/// few instead of walking the whole map (a full sweep per request collapsed
/// throughput once 100k answers were live: bench/README.md, profile).
#[derive(Debug, Default)]
struct ReplayState {
    entries: HashMap<[u8; 32], ReplayEntry>,
    written: std::collections::VecDeque<(Instant, [u8; 32])>,
    max_entries: usize,
}

impl ReplayState {
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.written.front() {
            if now.duration_since(at) < REPLAY_TTL {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Forgets the oldest write, and its entry unless the key was written again since.
    fn pop_oldest(&mut self) {
        let Some((at, key)) = self.written.pop_front() else {
            return;
        };
        let stale = match self.entries.get(&key) {
            Some(ReplayEntry::InFlight(t)) | Some(ReplayEntry::Done(t, _)) => *t <= at,
            None => false,
        };
        if stale {
            self.entries.remove(&key);
        }
    }

    fn insert(&mut self, key: [u8; 32], entry: ReplayEntry, now: Instant) {
        self.entries.insert(key, entry);
        self.written.push_back((now, key));
        while self.entries.len() > self.max_entries && !self.written.is_empty() {
            self.pop_oldest();
        }
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn begin(&self, key: &[u8; 32]) -> Result<ReplayBegin, StoreError> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.expire(now);
        match state.entries.get(key) {
            Some(ReplayEntry::Done(at, body)) if now.duration_since(*at) < REPLAY_TTL => {
                return Ok(ReplayBegin::Replay(body.clone()));
            }
            Some(ReplayEntry::InFlight(at)) if now.duration_since(*at) < IN_FLIGHT_TTL => {
                return Ok(ReplayBegin::InFlight);
            }
            _ => {}
        }
        state.insert(*key, ReplayEntry::InFlight(now), now);
        Ok(ReplayBegin::First)
    }

    async fn finish(&self, key: &[u8; 32], final_body: Option<&[u8]>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        match final_body {
            Some(body) => state.insert(*key, ReplayEntry::Done(now, body.to_vec()), now),
            None => {
                state.entries.remove(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let limiter = MemoryRateLimiter::default();
        let t0 = Instant::now();
        let burst = (0..100)
            .filter(|_| limiter.acquire_at("a", 20, 20, t0))
            .count();
        assert_eq!(burst, 20);
        // Half a second later ten more have been earned, not more.
        let t1 = t0 + Duration::from_millis(500);
        let refill = (0..100)
            .filter(|_| limiter.acquire_at("a", 20, 20, t1))
            .count();
        assert_eq!(refill, 10);
        // Another key is independent.
        assert!(limiter.acquire_at("b", 20, 20, t1));
        assert!(!limiter.acquire_at("c", 0, 20, t1));
    }

    #[tokio::test]
    async fn replay_cache_claims_replays_and_forgets_transient_answers() {
        let cache = MemoryReplayCache::default();
        let key = [1u8; 32];
        assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::First);
        assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::InFlight);
        cache.finish(&key, None).await.unwrap();
        assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::First);
        cache.finish(&key, Some(b"body")).await.unwrap();
        assert_eq!(
            cache.begin(&key).await.unwrap(),
            ReplayBegin::Replay(b"body".to_vec())
        );
    }

    /// Regression (bench profile): expiry used to walk the whole map on every request
    /// once 100k answers were live; now it pops the oldest writes only, and a key
    /// rewritten later survives the expiry of its earlier write.
    /// Regression (bench, issue 10): the cache grew by ~350 bytes per answer for 600 s.
    #[tokio::test]
    async fn replay_cache_memory_is_bounded_by_evicting_the_oldest() {
        let cache = MemoryReplayCache::with_max_entries(1000);
        for i in 0..5000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::First);
            cache.finish(&key, Some(b"answer")).await.unwrap();
        }
        {
            let state = lock(&cache.state);
            assert_eq!(state.entries.len(), 1000);
            assert!(state.written.len() <= 2000, "{}", state.written.len());
        }
        let key_of = |i: u32| {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            key
        };
        // The newest are still answered from the cache; the oldest are forgotten.
        assert_eq!(
            cache.begin(&key_of(4999)).await.unwrap(),
            ReplayBegin::Replay(b"answer".to_vec())
        );
        assert_eq!(cache.begin(&key_of(0)).await.unwrap(), ReplayBegin::First);
    }

    #[test]
    fn replay_entries_expire_oldest_first_without_a_full_sweep() {
        let mut state = ReplayState {
            max_entries: 10,
            ..ReplayState::default()
        };
        let t0 = Instant::now();
        state.insert([1; 32], ReplayEntry::InFlight(t0), t0);
        state.insert([2; 32], ReplayEntry::Done(t0, b"a".to_vec()), t0);
        let t1 = t0 + Duration::from_secs(100);
        state.insert([1; 32], ReplayEntry::Done(t1, b"b".to_vec()), t1);
        state.expire(t0 + REPLAY_TTL);
        assert!(!state.entries.contains_key(&[2; 32]));
        assert!(
            state.entries.contains_key(&[1; 32]),
            "rewritten at t1: still live"
        );
        assert_eq!(state.written.len(), 1);
        state.expire(t1 + REPLAY_TTL);
        assert!(state.entries.is_empty() && state.written.is_empty());
    }
}
