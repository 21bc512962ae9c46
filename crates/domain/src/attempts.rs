//! The daily attempt limit (verification.md §2 step 4): a counter per (account, card)
//! per Beijing calendar day. The durable implementation lives in the store crate;
//! [`MemoryAttemptCounter`] serves tests and single-node use.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::card::CardNumber;

/// What the counter decided for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptDecision {
    /// Under the limit: the attempt **was counted**.
    Allowed,
    /// The limit was already reached: the attempt was **not** counted (Result `-17`).
    Exceeded,
}

/// The counter could not be read or written. The engine turns this into
/// [`crate::EngineError::CounterUnavailable`] (an `InternalError`, not a Result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attempt counter unavailable: {reason}")]
pub struct CounterUnavailable {
    /// Why, for logs (no card numbers in it).
    pub reason: String,
}

impl CounterUnavailable {
    /// A new error with a reason for logs.
    pub fn new(reason: impl Into<String>) -> Self {
        CounterUnavailable {
            reason: reason.into(),
        }
    }
}

/// Counts attempts per (account, card, Beijing day).
#[async_trait]
pub trait AttemptCounter: Send + Sync {
    /// Atomically: if fewer than `limit` attempts were counted for this account and
    /// card on `beijing_day`, count this one and answer [`AttemptDecision::Allowed`];
    /// otherwise count nothing and answer [`AttemptDecision::Exceeded`].
    /// `limit == 0` means unlimited: always count and allow.
    async fn register_attempt(
        &self,
        account: &str,
        card: &CardNumber,
        beijing_day: i32,
        limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable>;
}

/// An in-memory [`AttemptCounter`]. Days older than the newest day seen minus one are
/// dropped as new days arrive, so memory stays bounded by two days of traffic.
#[derive(Debug, Default)]
pub struct MemoryAttemptCounter {
    inner: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    newest_day: Option<i32>,
    counts: HashMap<(String, CardNumber, i32), u32>,
}

impl MemoryAttemptCounter {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many attempts were counted for this account, card and day (for tests and
    /// diagnostics).
    pub fn count(&self, account: &str, card: &CardNumber, beijing_day: i32) -> u32 {
        match self.inner.lock() {
            Ok(state) => state
                .counts
                .get(&(account.to_owned(), card.clone(), beijing_day))
                .copied()
                .unwrap_or(0),
            Err(_) => 0,
        }
    }
}

#[async_trait]
impl AttemptCounter for MemoryAttemptCounter {
    async fn register_attempt(
        &self,
        account: &str,
        card: &CardNumber,
        beijing_day: i32,
        limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable> {
        let mut state = self
            .inner
            .lock()
            .map_err(|_| CounterUnavailable::new("memory counter lock poisoned"))?;
        if state.newest_day.is_none_or(|d| beijing_day > d) {
            state.newest_day = Some(beijing_day);
            let keep_from = beijing_day.saturating_sub(1);
            state.counts.retain(|(_, _, day), _| *day >= keep_from);
        }
        let count = state
            .counts
            .entry((account.to_owned(), card.clone(), beijing_day))
            .or_insert(0);
        if limit != 0 && *count >= limit {
            return Ok(AttemptDecision::Exceeded);
        }
        *count = count.saturating_add(1);
        Ok(AttemptDecision::Allowed)
    }
}
