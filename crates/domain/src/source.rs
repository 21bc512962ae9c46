//! Verification sources (verification.md §3): who knows whether a card and a name
//! belong together. The registry and upstream sources live in other crates; the sandbox
//! source is in [`crate::sandbox`]; [`ChainSource`] asks several in order.

use std::sync::Arc;

use async_trait::async_trait;

use crate::card::CardNumber;
use crate::name::CardholderName;
use crate::status::CardStatus;

/// What a source knows about a (card, name) pair (verification.md §2 step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceAnswer {
    /// The source does not know the card: Result `-7`.
    UnknownCard,
    /// The card is known but the name differs: Result `-4`. A source must answer this
    /// *before* looking at the status, so a caller who does not know the holder learns
    /// nothing about the card's status.
    NameMismatch,
    /// The card is known and the name matches; the status decides the Result.
    Match(CardStatus),
}

/// The source could not answer (unavailable, timed out, circuit breaker open):
/// Result `-16`, not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("verification source unavailable: {reason}")]
pub struct SourceUnavailable {
    /// Why, for logs. Must not contain card numbers or names.
    pub reason: String,
}

impl SourceUnavailable {
    /// A new unavailability with a reason for logs (no card numbers or names in it).
    pub fn new(reason: impl Into<String>) -> Self {
        SourceUnavailable {
            reason: reason.into(),
        }
    }
}

/// A verification source.
#[async_trait]
pub trait Source: Send + Sync {
    /// Looks the pair up. Implementations compare names with
    /// [`CardholderName::comparison_key`] and check the name before the status.
    async fn lookup(
        &self,
        card: &CardNumber,
        name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable>;
}

#[async_trait]
impl<S: Source + ?Sized> Source for Arc<S> {
    async fn lookup(
        &self,
        card: &CardNumber,
        name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        (**self).lookup(card, name).await
    }
}

/// Asks its sources in order: the first answer other than
/// [`SourceAnswer::UnknownCard`] wins; an unavailable source makes the whole chain
/// unavailable (`-16`), since the card might have been known there. With no source, or
/// when every source says so, the card is unknown.
#[derive(Clone, Default)]
pub struct ChainSource {
    sources: Vec<Arc<dyn Source>>,
}

impl ChainSource {
    /// A chain over `sources`, asked in this order.
    pub fn new(sources: Vec<Arc<dyn Source>>) -> Self {
        ChainSource { sources }
    }

    /// Number of sources in the chain.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether the chain has no sources.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

impl std::fmt::Debug for ChainSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSource")
            .field("sources", &self.sources.len())
            .finish()
    }
}

#[async_trait]
impl Source for ChainSource {
    async fn lookup(
        &self,
        card: &CardNumber,
        name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        for source in &self.sources {
            match source.lookup(card, name).await? {
                SourceAnswer::UnknownCard => continue,
                answer => return Ok(answer),
            }
        }
        Ok(SourceAnswer::UnknownCard)
    }
}
