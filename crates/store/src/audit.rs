//! The append-only audit log of administrative actions (issue 9): who did what to
//! which thing, and when.
//!
//! An [`AuditEvent`] is what a command records (actor, action, target, detail); the
//! store turns it into an [`AuditEntry`] with a sequence id (1, 2, 3, … without gaps),
//! a time (Unix milliseconds) and a **hash chain**: every entry stores
//! `hash = SHA-256(prev_hash ‖ canonical(entry))`, where `prev_hash` is the previous
//! entry's hash (32 zero bytes for entry 1) and [`canonical`] is a length-prefixed
//! encoding of the id, the time and the four texts. Editing or deleting an entry
//! breaks the chain at that entry (or at the one after it); [`verify_chain`] /
//! [`verify_log`] report the first broken id.
//!
//! The hash is unkeyed on purpose: anyone can verify a copy of the log without a
//! secret. Someone who can write the database *and* drop its append-only triggers
//! could rewrite the chain from the edited entry to the head, or cut its tail; a head
//! hash recorded elsewhere (the line `cardcheck audit verify` prints) detects both
//! ([`ChainVerifier::contains_hash`]).
//!
//! Nothing secret goes in: events carry names of accounts, SecretIds, file names and
//! counts, never SecretKeys, tokens, card numbers or cardholder names. As a last line
//! of defence [`AuditEvent::sanitized`] (applied by every backend) replaces control
//! characters and redacts any run of 12 or more digits (a card number's length) in the
//! actor, target and detail.

use async_trait::async_trait;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The stable action words (`<thing>.<verb>`). Stored as text, so a newer build may
/// add words that an older one lists as they are.
pub mod action {
    /// `cardcheck account create`.
    pub const ACCOUNT_CREATE: &str = "account.create";
    /// `cardcheck account set` (status or limits; old → new).
    pub const ACCOUNT_SET: &str = "account.set";
    /// A permanent SecretId/SecretKey pair issued (`key create`, `account create`,
    /// the demo account of `serve`).
    pub const KEY_CREATE: &str = "key.create";
    /// `cardcheck key revoke`.
    pub const KEY_REVOKE: &str = "key.revoke";
    /// Temporary credentials issued (`cardcheck key token`).
    pub const KEY_TOKEN: &str = "key.token";
    /// `cardcheck key rotate`: new Encryption key pairs made current.
    pub const SERVER_KEY_ROTATE: &str = "server-key.rotate";
    /// `cardcheck registry import`.
    pub const REGISTRY_IMPORT: &str = "registry.import";
    /// `cardcheck migrate` (recorded in the target deployment's log).
    pub const STORE_MIGRATE: &str = "store.migrate";
}

/// Longest actor kept (characters).
pub const MAX_ACTOR_CHARS: usize = 128;
/// Longest target kept (characters).
pub const MAX_TARGET_CHARS: usize = 256;
/// Longest detail kept (characters).
pub const MAX_DETAIL_CHARS: usize = 2048;
/// Longest action word.
pub const MAX_ACTION_CHARS: usize = 64;
/// Digit runs at least this long are redacted (the shortest card number).
const REDACT_DIGITS: usize = 12;
/// What a redacted digit run becomes.
const REDACTED: &str = "(redacted)";
/// Domain tag at the start of every canonical encoding (versioned with the format).
const CANONICAL_TAG: &[u8] = b"cardcheck.audit.v1\0";

/// A SHA-256 chain hash.
pub type AuditHash = [u8; 32];

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: AuditHash = [0; 32];

/// One administrative action to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Who: `--actor`, `CARDCHECK_ACTOR`, or the OS user and host (`alice@ops-1`).
    pub actor: String,
    /// What: a stable dotted word, see [`action`].
    pub action: String,
    /// Which thing: an account name, a SecretId, a file name; may be empty.
    pub target: String,
    /// A short human-readable detail (`status active → arrears`); may be empty.
    pub detail: String,
}

impl AuditEvent {
    /// An event.
    pub fn new(
        actor: impl Into<String>,
        action: &str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        AuditEvent {
            actor: actor.into(),
            action: action.to_string(),
            target: target.into(),
            detail: detail.into(),
        }
    }

    /// What the backends store: the action checked (lower-case dotted word), the
    /// other fields cleaned (control characters replaced, runs of 12 or more digits
    /// redacted, length capped) and the actor non-empty.
    pub fn sanitized(&self) -> Result<AuditEvent, StoreError> {
        validate_action(&self.action)?;
        if self.actor.trim().is_empty() {
            return Err(StoreError::Invalid(
                "an audit event needs an actor (--actor or CARDCHECK_ACTOR)".into(),
            ));
        }
        Ok(AuditEvent {
            actor: clean(self.actor.trim(), MAX_ACTOR_CHARS),
            action: self.action.clone(),
            target: clean(&self.target, MAX_TARGET_CHARS),
            detail: clean(&self.detail, MAX_DETAIL_CHARS),
        })
    }
}

/// An action word: 1 to 64 characters of `a-z`, `0-9`, `-` and `.`, dot-separated
/// words that start with a letter (`account.create`, `server-key.rotate`).
pub fn validate_action(word: &str) -> Result<(), StoreError> {
    let ok = (1..=MAX_ACTION_CHARS).contains(&word.len())
        && word.split('.').all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid audit action {:?}: dot-separated lower-case words such as account.create",
            clean(word, MAX_ACTION_CHARS)
        )))
    }
}

/// Digit runs of [`REDACT_DIGITS`] or more (ASCII or Unicode digits; single spaces,
/// dashes, dots or underscores between digits count as part of the run:
/// [`cardcheck_redact::redact_digit_runs`]) → `(redacted)`, control characters → `?`,
/// at most `max` characters (`…` marks a cut).
fn clean(text: &str, max: usize) -> String {
    // The shared rule (also the request log's), redacting before control characters
    // become `?` so that a tab between digit groups still joins them.
    let out: String = cardcheck_redact::redact_digit_runs(text, REDACT_DIGITS, REDACTED)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.chars().count() > max {
        let mut cut: String = out.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        return cut;
    }
    out
}

/// One stored entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number: 1 for the first entry, then +1 without gaps.
    pub id: u64,
    /// When it was recorded, Unix milliseconds (UTC).
    pub ts_ms: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous entry's [`AuditEntry::hash`] ([`GENESIS_HASH`] for entry 1).
    #[serde(serialize_with = "hex_hash")]
    pub prev_hash: AuditHash,
    /// `SHA-256(prev_hash ‖ canonical(entry))`.
    #[serde(serialize_with = "hex_hash")]
    pub hash: AuditHash,
}

fn hex_hash<S: Serializer>(hash: &AuditHash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(hash))
}

impl AuditEntry {
    /// Builds entry `id` after `prev_hash`, computing its hash.
    pub fn chained(id: u64, ts_ms: i64, event: AuditEvent, prev_hash: AuditHash) -> AuditEntry {
        let hash = chain_hash(&prev_hash, id, ts_ms, &event);
        AuditEntry {
            id,
            ts_ms,
            event,
            prev_hash,
            hash,
        }
    }

    /// The hash this entry should have, recomputed from its content and `prev_hash`.
    pub fn expected_hash(&self) -> AuditHash {
        chain_hash(&self.prev_hash, self.id, self.ts_ms, &self.event)
    }
}

/// The canonical encoding of an entry's content: the tag `cardcheck.audit.v1\0`, the
/// id (u64) and time (i64) big-endian, then actor, action, target and detail, each as
/// a u32 big-endian byte length followed by its UTF-8 bytes.
pub fn canonical(id: u64, ts_ms: i64, event: &AuditEvent) -> Vec<u8> {
    let texts = [&event.actor, &event.action, &event.target, &event.detail];
    let mut out = Vec::with_capacity(
        CANONICAL_TAG.len() + 16 + texts.iter().map(|t| 4 + t.len()).sum::<usize>(),
    );
    out.extend_from_slice(CANONICAL_TAG);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&ts_ms.to_be_bytes());
    for text in texts {
        // Sanitised fields are far below 4 GiB; saturate rather than wrap regardless.
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// `SHA-256(prev_hash ‖ canonical(id, ts_ms, event))`.
pub fn chain_hash(prev_hash: &AuditHash, id: u64, ts_ms: i64, event: &AuditEvent) -> AuditHash {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical(id, ts_ms, event));
    h.finalize().into()
}

/// Which entries [`AuditLog::list`] returns; always in ascending id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Recorded at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Recorded before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// Actions starting with this text (`key` matches `key.create` and `key.revoke`).
    pub action_prefix: Option<String>,
    /// Entries with an id above this one (paging).
    pub after_id: Option<u64>,
    /// At most this many entries: the oldest matching ones, or with `latest` the
    /// newest ones (still returned oldest first).
    pub limit: Option<u64>,
    /// `limit` counts from the newest end.
    pub latest: bool,
}

impl AuditFilter {
    /// Whether `entry` passes every condition but the limit (for in-memory logs).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.since_ms.is_none_or(|t| entry.ts_ms >= t)
            && self.until_ms.is_none_or(|t| entry.ts_ms < t)
            && self
                .action_prefix
                .as_deref()
                .is_none_or(|p| entry.event.action.starts_with(p))
            && self.after_id.is_none_or(|id| entry.id > id)
    }

    /// The limit as an SQL `LIMIT` value (no limit: `i64::MAX`).
    pub fn sql_limit(&self) -> i64 {
        self.limit
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// The append-only audit log (issue 9).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `event` (after [`AuditEvent::sanitized`]) as the next entry of the
    /// chain; returns the stored entry once it is durable. Appends from several
    /// processes or nodes are serialised: the chain never forks.
    async fn record(&self, event: AuditEvent) -> Result<AuditEntry, StoreError>;
    /// Entries matching `filter`, oldest first.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
}

/// An intact chain, as far as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Entries checked.
    pub entries: u64,
    /// The last entry's id (0 for an empty log).
    pub last_id: u64,
    /// The last entry's hash ([`GENESIS_HASH`] for an empty log).
    pub head: AuditHash,
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at entry {id}: {reason}")]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub id: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks a log entry by entry, in id order, from entry 1.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_id: u64,
    prev_hash: AuditHash,
    entries: u64,
    known: Vec<Vec<u8>>,
    seen_known: Vec<bool>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting entry 1.
    pub fn new() -> Self {
        ChainVerifier {
            expected_id: 1,
            prev_hash: GENESIS_HASH,
            entries: 0,
            known: Vec::new(),
            seen_known: Vec::new(),
        }
    }

    /// Also checks that an entry whose hash starts with `prefix` (a head recorded
    /// earlier) is part of the chain; see [`ChainVerifier::missing_known`].
    pub fn contains_hash(&mut self, prefix: &[u8]) {
        self.known.push(prefix.to_vec());
        self.seen_known.push(false);
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let broken = |reason: String| ChainBreak {
            id: entry.id,
            reason,
        };
        if entry.id != self.expected_id {
            return Err(broken(if entry.id > self.expected_id {
                format!(
                    "entries {} to {} are missing",
                    self.expected_id,
                    entry.id - 1
                )
            } else {
                format!("out of sequence (expected entry {})", self.expected_id)
            }));
        }
        if entry.prev_hash != self.prev_hash {
            return Err(broken(if entry.id == 1 {
                "the first entry does not start the chain".to_string()
            } else {
                format!(
                    "it does not follow entry {} (that entry was changed, or this one was)",
                    entry.id - 1
                )
            }));
        }
        if entry.expected_hash() != entry.hash {
            return Err(broken(
                "its content does not match its hash (the entry was changed)".into(),
            ));
        }
        for (known, seen) in self.known.iter().zip(self.seen_known.iter_mut()) {
            if entry.hash.starts_with(known) {
                *seen = true;
            }
        }
        self.expected_id += 1;
        self.prev_hash = entry.hash;
        self.entries += 1;
        Ok(())
    }

    /// The chain so far.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            entries: self.entries,
            last_id: self.expected_id - 1,
            head: self.prev_hash,
        }
    }

    /// The [`ChainVerifier::contains_hash`] prefixes no entry had.
    pub fn missing_known(&self) -> Vec<&[u8]> {
        self.known
            .iter()
            .zip(&self.seen_known)
            .filter(|(_, seen)| !**seen)
            .map(|(k, _)| k.as_slice())
            .collect()
    }
}

/// Verifies a complete log (entry 1 first): the first broken entry, or the head.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<ChainHead, ChainBreak> {
    let mut verifier = ChainVerifier::new();
    for entry in entries {
        verifier.push(entry)?;
    }
    Ok(verifier.head())
}

/// Entries read per round by [`verify_log`].
const VERIFY_PAGE: u64 = 10_000;

/// Reads the whole log page by page through `verifier`. The outer error is a storage
/// failure; the inner one the first broken entry.
pub async fn verify_log_with(
    log: &dyn AuditLog,
    verifier: &mut ChainVerifier,
) -> Result<Result<ChainHead, ChainBreak>, StoreError> {
    let mut after = 0;
    loop {
        let page = log
            .list(&AuditFilter {
                after_id: Some(after),
                limit: Some(VERIFY_PAGE),
                ..AuditFilter::default()
            })
            .await?;
        for entry in &page {
            if let Err(broken) = verifier.push(entry) {
                return Ok(Err(broken));
            }
        }
        match page.last() {
            Some(last) if page.len() as u64 == VERIFY_PAGE => after = last.id,
            _ => return Ok(Ok(verifier.head())),
        }
    }
}

/// [`verify_log_with`] a fresh [`ChainVerifier`].
pub async fn verify_log(log: &dyn AuditLog) -> Result<Result<ChainHead, ChainBreak>, StoreError> {
    verify_log_with(log, &mut ChainVerifier::new()).await
}

/// A stored hash as 32 bytes. A value of another length (tampering) is kept
/// recognisably wrong rather than refused, so that listing still works and
/// verification reports the entry.
pub(crate) fn hash_column(bytes: &[u8]) -> AuditHash {
    <AuditHash>::try_from(bytes).unwrap_or_else(|_| {
        let mut out = [0xff; 32];
        let n = bytes.len().min(32);
        out[..n].copy_from_slice(&bytes[..n]);
        out
    })
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An audit log in memory (tests, tools): the same chain, nothing durable.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    entries: std::sync::Mutex<Vec<AuditEntry>>,
}

impl MemoryAuditLog {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<AuditEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let event = event.sanitized()?;
        let mut entries = self.entries();
        let (id, prev) = entries
            .last()
            .map_or((1, GENESIS_HASH), |e| (e.id + 1, e.hash));
        let entry = AuditEntry::chained(id, now_ms(), event, prev);
        entries.push(entry.clone());
        Ok(entry)
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let entries = self.entries();
        let matching: Vec<AuditEntry> = entries
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect();
        let limit = filter
            .limit
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let skip = if filter.latest {
            matching.len().saturating_sub(limit)
        } else {
            0
        };
        Ok(matching.into_iter().skip(skip).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(action: &str, target: &str) -> AuditEvent {
        AuditEvent::new("alice@ops", action, target, "")
    }

    #[test]
    fn actions_are_dotted_lower_case_words() {
        for ok in ["account.create", "server-key.rotate", "a", "x1.y-2.z"] {
            assert!(validate_action(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Account.create",
            "account..create",
            ".create",
            "account.",
            "1x.create",
            "account create",
            "account.-x",
        ] {
            assert!(validate_action(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn card_numbers_and_control_characters_never_get_in() {
        assert_eq!(clean("6225768888888888.csv", 100), "(redacted).csv");
        assert_eq!(clean("card 6225 7688 8888 8888!", 100), "card (redacted)!");
        assert_eq!(clean("6225-7688-8888-8888", 100), "(redacted)");
        // Short numbers (counts, ids, dates) stay.
        assert_eq!(
            clean("inserted 1000000, updated 2 on 2026-12-04", 100),
            "inserted 1000000, updated 2 on 2026-12-04"
        );
        assert_eq!(clean("a\nb\tc\u{7f}", 100), "a?b?c?");
        assert_eq!(clean("abcdef", 4), "abc…");
        let e = AuditEvent::new("\n", "key.create", "x", "y").sanitized();
        assert!(
            e.is_err(),
            "an actor of control characters only is no actor"
        );
        let e = AuditEvent::new("bob", "key.create", "622576888888888812", "")
            .sanitized()
            .unwrap();
        assert_eq!(e.target, "(redacted)");
    }

    #[test]
    fn the_canonical_encoding_is_unambiguous() {
        let a = AuditEvent::new("ab", "x.y", "c", "");
        let b = AuditEvent::new("a", "x.y", "bc", "");
        assert_ne!(canonical(1, 0, &a), canonical(1, 0, &b));
        assert_ne!(
            chain_hash(&GENESIS_HASH, 1, 0, &a),
            chain_hash(&GENESIS_HASH, 2, 0, &a)
        );
        assert_ne!(
            chain_hash(&GENESIS_HASH, 1, 0, &a),
            chain_hash(&[1; 32], 1, 0, &a)
        );
        // Pinned: the format is a contract with every stored log.
        assert_eq!(
            hex::encode(chain_hash(&GENESIS_HASH, 1, 1_700_000_000_000, &a)),
            hex::encode({
                let mut h = Sha256::new();
                h.update([0u8; 32]);
                h.update(b"cardcheck.audit.v1\0");
                h.update(1u64.to_be_bytes());
                h.update(1_700_000_000_000i64.to_be_bytes());
                for t in ["ab", "x.y", "c", ""] {
                    h.update((t.len() as u32).to_be_bytes());
                    h.update(t.as_bytes());
                }
                <[u8; 32]>::from(h.finalize())
            })
        );
    }

    #[tokio::test]
    async fn memory_log_chains_filters_and_verifies() {
        let log = MemoryAuditLog::default();
        assert_eq!(verify_log(&log).await.unwrap().unwrap().entries, 0);
        for (action, target) in [
            ("account.create", "acme"),
            ("key.create", "AKID1"),
            ("key.revoke", "AKID1"),
        ] {
            log.record(event(action, target)).await.unwrap();
        }
        let all = log.list(&AuditFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        let head = verify_chain(&all).unwrap();
        assert_eq!((head.entries, head.last_id, head.head), (3, 3, all[2].hash));
        let keys = log
            .list(&AuditFilter {
                action_prefix: Some("key".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(keys.len(), 2);
        let last = log
            .list(&AuditFilter {
                limit: Some(2),
                latest: true,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(last.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3]);
        assert!(log.record(event("Bad Action", "x")).await.is_err());
    }

    #[test]
    fn the_verifier_names_the_first_broken_entry() {
        let mut entries = Vec::new();
        let mut prev = GENESIS_HASH;
        for id in 1..=5 {
            let e = AuditEntry::chained(id, 1000 + id as i64, event("key.create", "k"), prev);
            prev = e.hash;
            entries.push(e);
        }
        assert_eq!(verify_chain(&entries).unwrap().entries, 5);

        let mut edited = entries.clone();
        edited[2].event.detail = "changed".into();
        assert_eq!(verify_chain(&edited).unwrap_err().id, 3);

        // Edited and re-hashed: the next entry no longer follows it.
        let mut rehashed = entries.clone();
        rehashed[2].event.target = "other".into();
        rehashed[2].hash = rehashed[2].expected_hash();
        assert_eq!(verify_chain(&rehashed).unwrap_err().id, 4);

        let mut deleted = entries.clone();
        deleted.remove(1);
        let err = verify_chain(&deleted).unwrap_err();
        assert_eq!(err.id, 3);
        assert!(err.reason.contains("entries 2 to 2 are missing"), "{err}");

        let mut first = entries.clone();
        first.remove(0);
        assert_eq!(verify_chain(&first).unwrap_err().id, 2);

        // A recorded head that is no longer in the chain (the tail was cut).
        let mut verifier = ChainVerifier::new();
        verifier.contains_hash(&entries[4].hash[..8]);
        verifier.contains_hash(&entries[1].hash[..8]);
        for e in &entries[..4] {
            verifier.push(e).unwrap();
        }
        assert_eq!(verifier.missing_known(), vec![&entries[4].hash[..8]]);
    }
}
