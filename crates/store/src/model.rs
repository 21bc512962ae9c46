//! The stored things, independent of any backend.

use cardcheck_domain::{CardNumber, CardStatus, CardholderName, ResultCode};
use serde::Serialize;
use zeroize::Zeroizing;

/// Default per-account rate: faceid bank-card APIs allow 20 requests/s (protocol.md §5).
pub const DEFAULT_QPS: u32 = 20;
/// Default daily attempts per (account, card) (verification.md §2 step 4).
pub const DEFAULT_DAILY_ATTEMPTS: u32 = 10;

/// An account's standing (issue 5); each non-active status has its own
/// `UnauthorizedOperation.*` code, mapped in the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountStatus {
    /// May call the API.
    Active,
    /// Owes money: `UnauthorizedOperation.Arrears`.
    Arrears,
    /// Service not activated: `UnauthorizedOperation.Nonactivated`.
    Nonactivated,
    /// Identity not verified: `UnauthorizedOperation.NonAuthorize`.
    Unverified,
    /// Billing state abnormal: `UnauthorizedOperation.ChargeStatusException`.
    ChargeException,
}

impl AccountStatus {
    /// Every status, in documentation order.
    pub const ALL: [AccountStatus; 5] = [
        Self::Active,
        Self::Arrears,
        Self::Nonactivated,
        Self::Unverified,
        Self::ChargeException,
    ];

    /// The word used in the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Arrears => "arrears",
            Self::Nonactivated => "nonactivated",
            Self::Unverified => "unverified",
            Self::ChargeException => "charge-exception",
        }
    }

    /// Parses [`Self::as_str`]'s words.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Unique name.
    pub name: String,
    /// Standing.
    pub status: AccountStatus,
    /// Requests per second allowed (burst equal to the rate).
    pub qps: u32,
    /// Attempts per card per Beijing day; 0 = unlimited.
    pub daily_attempts: u32,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A change to an account; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    /// New status.
    pub status: Option<AccountStatus>,
    /// New rate.
    pub qps: Option<u32>,
    /// New daily attempt limit.
    pub daily_attempts: Option<u32>,
}

/// Permanent key pair or temporary (STS-like) credentials with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// A SecretId/SecretKey pair without expiry.
    Permanent,
    /// TmpSecretId/TmpSecretKey/Token with an expiry.
    Temporary,
}

impl CredentialKind {
    /// The database word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
        }
    }

    /// Reads [`Self::as_str`]'s word back; anything else is permanent.
    pub fn from_word(word: &str) -> Self {
        if word == Self::Temporary.as_str() {
            Self::Temporary
        } else {
            Self::Permanent
        }
    }
}

/// A stored credential with its SecretKey decrypted (wiped on drop).
#[derive(Clone)]
pub struct Credential {
    /// The SecretId.
    pub secret_id: String,
    /// The SecretKey (empty when listed without secrets).
    pub secret_key: Zeroizing<String>,
    /// Owning account.
    pub account: String,
    /// Permanent or temporary.
    pub kind: CredentialKind,
    /// SHA-256 of the session token, for temporary credentials.
    pub token_sha256: Option<[u8; 32]>,
    /// Expiry (Unix seconds) for temporary credentials.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for Credential {
    /// Never prints the SecretKey.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("secret_id", &self.secret_id)
            .field("account", &self.account)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A freshly issued credential: the only time its SecretKey (and token) are shown.
#[derive(Clone, Serialize)]
pub struct IssuedCredential {
    /// Owning account.
    pub account: String,
    /// The SecretId.
    pub secret_id: String,
    /// The SecretKey.
    pub secret_key: String,
    /// Session token (temporary credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Expiry (Unix seconds, temporary credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("account", &self.account)
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

/// One registry record to write (the store hashes card and name).
#[derive(Debug, Clone)]
pub struct RegistryRecord {
    /// The card.
    pub card: CardNumber,
    /// The holder.
    pub name: CardholderName,
    /// The card's status.
    pub status: CardStatus,
}

/// Registry counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryStats {
    /// All records.
    pub total: u64,
    /// Records per status word, sorted by word.
    pub by_status: Vec<(String, u64)>,
    /// Records per BIN (first six digits of the masked card), sorted by BIN.
    pub by_bin6: Vec<(String, u64)>,
    /// Bytes the backend uses for the registry (the database file for SQLite), if known.
    pub bytes: Option<u64>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertCounts {
    /// Cards not seen before.
    pub inserted: u64,
    /// Cards whose record was replaced.
    pub updated: u64,
}

/// One answered verification (issue 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The response's RequestId.
    pub request_id: String,
    /// Calling account.
    pub account: String,
    /// SecretId used.
    pub secret_id: String,
    /// API action.
    pub action: String,
    /// The Result.
    pub result: ResultCode,
    /// Masked card (first 6, last 4), when it parsed.
    pub masked_card: Option<String>,
    /// Time from request to decision, microseconds.
    pub latency_us: u64,
    /// When, Unix milliseconds.
    pub ts_ms: i64,
    /// Beijing calendar day ([`cardcheck_domain::beijing_day`]).
    pub day: i32,
    /// The card, when this request counted as an attempt (verification.md §2 step 4).
    /// Never stored as such: the embedded store keeps its keyed hash, from which it
    /// rebuilds daily attempt counts; PostgreSQL deployments count in Redis.
    pub attempted_card: Option<CardNumber>,
}

/// Which ledger rows to count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Only this account.
    pub account: Option<String>,
    /// First Beijing day (inclusive).
    pub from_day: Option<i32>,
    /// Last Beijing day (inclusive).
    pub to_day: Option<i32>,
}

/// Ledger counts for one (account, day, Result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Account.
    pub account: String,
    /// Beijing day number.
    pub day: i32,
    /// Result code (`0`, `-4`, …).
    pub result: i32,
    /// Whether that Result is billed.
    pub billed: bool,
    /// Number of rows.
    pub count: u64,
}

/// What a bulk registry import ([`crate::RegistryImport`]) did.
///
/// Every staged row lands in exactly one of the four counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    /// Cards not in the registry before.
    pub inserted: u64,
    /// Cards whose stored record changed (name, status or masked form).
    pub updated: u64,
    /// Cards already stored exactly so (e.g. a re-run of the same import); backends
    /// that cannot tell count these as `updated`.
    pub unchanged: u64,
    /// Rows superseded by a later row for the same card in the same import (the last
    /// row for a card wins).
    pub duplicates: u64,
}

impl ImportCounts {
    /// All rows accounted for.
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.unchanged + self.duplicates
    }
}

/// Progress of the writing phase of a bulk import: `written` rows of `total` are
/// committed (durable), so a crash after this report loses none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Staged rows whose outcome is committed.
    pub written: u64,
    /// Staged rows in all.
    pub total: u64,
}
