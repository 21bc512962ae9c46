//! Shared counters in Redis for the scale-out backend: the per-account rate limiter
//! (GCRA), daily attempt counters and the replay cache. Each operation is one atomic
//! server-side script or command, so several nodes act as one.
//!
//! Keys (all under the deployment's prefix, `cardcheck:<deployment id>:` by default):
//! - `rl:<key>`: the GCRA theoretical arrival time, microseconds (Redis clock);
//! - `att:<day>:<account>:<hex card hash>`: attempts, expiring after that Beijing day;
//! - `rp:<hex request key>`: `i` while in flight (30 s), `d` + body once final (600 s).
//!
//! Every call has a deadline; the connection manager reconnects by itself, so a Redis
//! restart is a few failed calls, not a failed node. When Redis is unreachable these
//! calls fail (the server answers `InternalError`): the limiter fails closed, because a
//! per-node fallback would multiply an account's rate by the number of nodes.

use std::time::Duration;

use async_trait::async_trait;
use cardcheck_domain::{AttemptCounter, AttemptDecision, CardNumber, CounterUnavailable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::memory::{IN_FLIGHT_TTL, REPLAY_TTL};
use crate::postgres::{redact_url, within};
use crate::secrets::{KeyedHash, MasterKey};
use crate::{RateLimiter, ReplayBegin, ReplayCache, StoreError};

/// Seconds in a day; Beijing is UTC+8 all year.
const DAY: i64 = 86_400;
const BEIJING_OFFSET: i64 = 8 * 3600;
/// Attempt counters outlive their Beijing day by this much (clock skew between nodes).
const ATTEMPT_MARGIN: i64 = 3600;

/// GCRA, the same rule as [`crate::memory::MemoryRateLimiter`] on the Redis clock:
/// allowed when `max(tat, now) + T - now <= burst × T`, `T = 1 s / rate` (integer µs).
const GCRA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
if rate <= 0 then return 0 end
if burst < 1 then burst = 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = math.floor(1000000 / rate)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > interval * burst then return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 1
";

/// Counts one attempt unless `limit` (> 0) were already counted; 1 = allowed.
const ATTEMPT: &str = r"
local limit = tonumber(ARGV[1])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if limit > 0 and n >= limit then return 0 end
if n == 0 then
  redis.call('SET', KEYS[1], 1, 'EX', ARGV[2])
else
  redis.call('INCR', KEYS[1])
end
return 1
";

/// Raises a counter to at least ARGV[1] (migration of embedded counts).
const RAISE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
";

/// Claims a request key or returns what is stored for it (`i…` or `d…`).
const REPLAY_BEGIN: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], 'i', 'PX', ARGV[1])
return false
";

fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::Database(format!("Redis: {e}"))
}

/// The Redis half of the scale-out backend.
pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    key: MasterKey,
    deadline: Duration,
    gcra: Script,
    attempt: Script,
    raise: Script,
    replay_begin: Script,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn manager_config(deadline: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(deadline))
        .set_response_timeout(Some(deadline))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(200))
}

fn client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url)
        .map_err(|e| StoreError::Invalid(format!("invalid Redis URL {}: {e}", redact_url(url))))
}

/// The Unix time after which attempt counters of `day` are useless: the end of that
/// Beijing day plus a margin, at least an hour from `now`.
fn attempt_ttl(day: i32, now: i64) -> i64 {
    let end = (i64::from(day) + 1) * DAY - BEIJING_OFFSET + ATTEMPT_MARGIN;
    (end - now).clamp(ATTEMPT_MARGIN, 3 * DAY)
}

impl RedisState {
    /// A lazily connecting client: nothing is sent until the first call, so admin
    /// commands that never touch Redis work while it is down.
    pub fn connect(
        url: &str,
        prefix: &str,
        key: MasterKey,
        deadline: Duration,
    ) -> Result<Self, StoreError> {
        let conn = ConnectionManager::new_lazy_with_config(client(url)?, manager_config(deadline))
            .map_err(redis_err)?;
        Ok(RedisState {
            conn,
            prefix: prefix.to_string(),
            key,
            deadline,
            gcra: Script::new(GCRA),
            attempt: Script::new(ATTEMPT),
            raise: Script::new(RAISE),
            replay_begin: Script::new(REPLAY_BEGIN),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn attempt_key(&self, account: &str, card_hash: &KeyedHash, day: i32) -> String {
        format!(
            "{}att:{day}:{account}:{}",
            self.prefix,
            hex::encode(card_hash)
        )
    }

    fn replay_key(&self, key: &[u8; 32]) -> String {
        format!("{}rp:{}", self.prefix, hex::encode(key))
    }

    /// Raises a stored attempt count to at least `count` (migration).
    pub(crate) async fn raise_attempts(
        &self,
        account: &str,
        card_hash: &KeyedHash,
        day: i32,
        count: u32,
    ) -> Result<(), StoreError> {
        let key = self.attempt_key(account, card_hash, day);
        let ttl = attempt_ttl(day, crate::credentials::now_unix());
        let mut conn = self.conn.clone();
        within(self.deadline * 4, "Redis attempts", async {
            self.raise
                .key(&key)
                .arg(count)
                .arg(ttl)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(redis_err)
        })
        .await?;
        Ok(())
    }

    /// Answers PING (readiness and start-up checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        within(self.deadline, "Redis", async {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(redis_err)
        })
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl RateLimiter for RedisState {
    async fn acquire(
        &self,
        key: &str,
        rate_per_second: u32,
        burst: u32,
    ) -> Result<bool, StoreError> {
        if rate_per_second == 0 {
            return Ok(false);
        }
        let redis_key = format!("{}rl:{key}", self.prefix);
        let mut conn = self.conn.clone();
        let allowed: i64 = within(self.deadline, "Redis rate limiter", async {
            self.gcra
                .key(&redis_key)
                .arg(rate_per_second)
                .arg(burst)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)
        })
        .await?;
        Ok(allowed == 1)
    }
}

#[async_trait]
impl AttemptCounter for RedisState {
    async fn register_attempt(
        &self,
        account: &str,
        card: &CardNumber,
        beijing_day: i32,
        limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable> {
        let card_hash = self.key.card_hash(card.digits());
        let key = self.attempt_key(account, &card_hash, beijing_day);
        let ttl = attempt_ttl(beijing_day, crate::credentials::now_unix());
        let mut conn = self.conn.clone();
        let allowed: i64 = within(self.deadline, "Redis attempts", async {
            self.attempt
                .key(&key)
                .arg(limit)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)
        })
        .await
        .map_err(|e| CounterUnavailable::new(e.to_string()))?;
        Ok(if allowed == 1 {
            AttemptDecision::Allowed
        } else {
            AttemptDecision::Exceeded
        })
    }
}

#[async_trait]
impl ReplayCache for RedisState {
    async fn begin(&self, key: &[u8; 32]) -> Result<ReplayBegin, StoreError> {
        let redis_key = self.replay_key(key);
        let mut conn = self.conn.clone();
        let stored: Option<Vec<u8>> = within(self.deadline, "Redis replay cache", async {
            self.replay_begin
                .key(&redis_key)
                .arg(IN_FLIGHT_TTL.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)
        })
        .await?;
        Ok(match stored.as_deref() {
            None => ReplayBegin::First,
            Some([b'd', body @ ..]) => ReplayBegin::Replay(body.to_vec()),
            Some(_) => ReplayBegin::InFlight,
        })
    }

    async fn finish(&self, key: &[u8; 32], final_body: Option<&[u8]>) -> Result<(), StoreError> {
        let redis_key = self.replay_key(key);
        let mut conn = self.conn.clone();
        within(self.deadline, "Redis replay cache", async {
            match final_body {
                Some(body) => {
                    let mut value = Vec::with_capacity(body.len() + 1);
                    value.push(b'd');
                    value.extend_from_slice(body);
                    conn.set_ex::<_, _, ()>(&redis_key, value, REPLAY_TTL.as_secs())
                        .await
                        .map_err(redis_err)
                }
                None => conn.del::<_, ()>(&redis_key).await.map_err(redis_err),
            }
        })
        .await
    }
}

/// `*`, `?`, `[`, `]` and `\` escaped for a SCAN MATCH pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Deletes every key under `prefix` (tests, or removing a deployment); returns how
/// many. Uses SCAN, so it does not block the server.
pub async fn delete_prefix(url: &str, prefix: &str) -> Result<u64, StoreError> {
    if prefix.is_empty() {
        return Err(StoreError::Invalid(
            "refusing to delete every Redis key".into(),
        ));
    }
    let mut conn = client(url)?
        .get_multiplexed_async_connection()
        .await
        .map_err(redis_err)?;
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut deleted = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if !keys.is_empty() {
            deleted += conn.del::<_, u64>(keys).await.map_err(redis_err)?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_counters_expire_after_their_beijing_day() {
        // Beijing day of 2026-12-04 starts at 2026-12-03T16:00:00Z = 1_796_313_600.
        let day = cardcheck_domain::beijing_day(1_796_313_600);
        // At the start of the day: a whole day plus the margin.
        assert_eq!(attempt_ttl(day, 1_796_313_600), DAY + ATTEMPT_MARGIN);
        // One second before Beijing midnight: the margin and a second.
        assert_eq!(
            attempt_ttl(day, 1_796_313_600 + DAY - 1),
            ATTEMPT_MARGIN + 1
        );
        // A day long past (an injected clock): still kept for the margin.
        assert_eq!(attempt_ttl(100, 1_796_313_600), ATTEMPT_MARGIN);
    }

    #[test]
    fn glob_patterns_are_escaped() {
        assert_eq!(glob_escape("cc:t*[1]?\\"), "cc:t\\*\\[1\\]\\?\\\\");
    }
}
