//! `cardcheck-store`: persistence behind traits (design.md "store/").
//!
//! The server and the CLI talk to a [`Backend`]: a bundle of trait objects for accounts
//! and credentials ([`AccountStore`]), the cardholder registry ([`RegistryStore`], also a
//! verification [`cardcheck_domain::Source`]), daily attempt counters
//! ([`cardcheck_domain::AttemptCounter`]), the usage ledger ([`Ledger`]), the server's
//! Encryption key ring ([`ServerKeyStore`]) and the append-only audit log of
//! administrative actions ([`AuditLog`], [`audit`]). The embedded implementation is
//! [`sqlite::SqliteStore`] (one file under a data directory); the scale-out one is
//! [`postgres::PgStore`] + [`redis_state::RedisState`] (PostgreSQL for durable state,
//! Redis for shared counters: [`open_postgres`]). Both implement the same traits and
//! pass the same conformance suite (`tests/conformance.rs`), so the server does not
//! change with the backend.
//!
//! Nothing secret is stored in plain text (verification.md §3, issue 4): SecretKeys are
//! encrypted with AES-256-GCM under a subkey of the data directory's master key, and
//! registry card numbers and names are stored only as keyed hashes ([`secrets`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod credentials;
pub mod import;
pub mod memory;
pub mod migrate;
pub mod model;
pub mod postgres;
pub mod redis_state;
pub mod secrets;
pub mod sqlite;
pub mod stats;

use std::sync::Arc;

use async_trait::async_trait;
use cardcheck_domain::{AttemptCounter, Source};

pub use audit::{AuditEntry, AuditEvent, AuditFilter, AuditLog, ChainBreak, ChainHead};
pub use import::{ProgressFn, RegistryImport};
pub use model::{
    Account, AccountStatus, AccountUpdate, Credential, CredentialKind, ImportCounts,
    ImportProgress, IssuedCredential, LedgerEntry, RegistryRecord, RegistryStats, UpsertCounts,
    UsageFilter, UsageRow,
};
pub use secrets::MasterKey;
pub use stats::{HistogramSnapshot, LedgerStats};

/// A storage failure. Messages never contain card numbers, names or secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (account, credential).
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// Bad input from an operator (account name, status word, …).
    #[error("{0}")]
    Invalid(String),
    /// The master key is not the one this store (data directory or database) was
    /// created with.
    #[error(
        "the master key does not match the one this store was created with (check CARDCHECK_MASTER_KEY or master.key)"
    )]
    MasterKeyMismatch,
    /// Stored ciphertext failed authentication (tampering or a wrong key).
    #[error("stored secret could not be decrypted: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// A file-system operation failed.
    #[error("{0}")]
    Io(String),
}

/// Accounts and their credentials (issue 5).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account with the default limits.
    async fn create_account(&self, name: &str) -> Result<Account, StoreError>;
    /// One account.
    async fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// All accounts, by name.
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Changes an account's status or limits.
    async fn update_account(
        &self,
        name: &str,
        update: &AccountUpdate,
    ) -> Result<Account, StoreError>;
    /// Issues a credential pair for `account`. With `ttl_seconds` it is temporary and
    /// carries a session token.
    async fn create_credential(
        &self,
        account: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<IssuedCredential, StoreError>;
    /// Looks a SecretId up, with its SecretKey decrypted.
    async fn credential(&self, secret_id: &str) -> Result<Option<Credential>, StoreError>;
    /// Revokes a credential; `false` when it did not exist.
    async fn revoke_credential(&self, secret_id: &str) -> Result<bool, StoreError>;
    /// The credentials of one account (secret keys are not loaded: empty).
    async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>, StoreError>;
}

/// The operator's cardholder registry (verification.md §3), also a verification source.
#[async_trait]
pub trait RegistryStore: Source {
    /// Inserts or replaces records by card, all or nothing; returns how many were new
    /// and how many replaced an existing card's record.
    async fn upsert(&self, records: &[RegistryRecord]) -> Result<UpsertCounts, StoreError>;
    /// Counts by status and by BIN (first six digits), and storage size.
    async fn stats(&self) -> Result<RegistryStats, StoreError>;
    /// Starts a bulk import (issue 6): [`RegistryImport::push`] stages records, nothing
    /// is written until [`RegistryImport::finish`]; dropping the importer unfinished
    /// abandons it without touching the registry.
    ///
    /// The default keeps the records in memory and calls [`RegistryStore::upsert`] in
    /// chunks of [`import::DEFAULT_CHUNK`]; backends override it with a bulk path (the
    /// SQLite one stages keyed hashes on disk and writes them in key order).
    fn begin_import(&self) -> Result<Box<dyn RegistryImport + '_>, StoreError> {
        Ok(Box::new(import::BufferedImport::new(self)))
    }
}

/// The usage ledger: one row per answered verification (issue 5).
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Appends one row; returns once the row is durable (the reply waits for this).
    async fn append(&self, entry: LedgerEntry) -> Result<(), StoreError>;
    /// Counts per (account, Beijing day, Result).
    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError>;
    /// Ledger rows with this RequestId (0 or 1).
    async fn count_request(&self, request_id: &str) -> Result<u64, StoreError>;
    /// Batching and commit-latency counters since the ledger was opened, for
    /// `/metrics` (issue 9).
    fn ledger_stats(&self) -> LedgerStats;
}

/// The server's Encryption key ring, stored encrypted under the master key.
#[async_trait]
pub trait ServerKeyStore: Send + Sync {
    /// The stored key-ring bytes, if any.
    async fn load_server_keys(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError>;
    /// Stores (replaces) the key-ring bytes.
    async fn save_server_keys(&self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Stores the key-ring bytes only if none are stored; `false` when another writer
    /// (a node starting at the same time) got there first. Backends with an atomic
    /// insert override this check-then-write default.
    async fn save_server_keys_if_absent(&self, bytes: &[u8]) -> Result<bool, StoreError> {
        if self.load_server_keys().await?.is_some() {
            return Ok(false);
        }
        self.save_server_keys(bytes).await?;
        Ok(true)
    }
}

/// Per-key request-rate limiting (GCRA), shared by every node of a deployment.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one request for `key` at `rate_per_second` with a burst of `burst`;
    /// `false` when over the limit (nothing is taken then).
    async fn acquire(
        &self,
        key: &str,
        rate_per_second: u32,
        burst: u32,
    ) -> Result<bool, StoreError>;
}

/// What [`ReplayCache::begin`] found for a request key (verification.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayBegin {
    /// First sighting: the caller processes it and must call [`ReplayCache::finish`].
    First,
    /// A final answer exists: send these exact bytes again.
    Replay(Vec<u8>),
    /// Another copy is being processed: wait and ask again.
    InFlight,
}

/// Remembers final answers to signed requests inside the signature window.
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Claims `key` or reports what is known of it.
    async fn begin(&self, key: &[u8; 32]) -> Result<ReplayBegin, StoreError>;
    /// Records the final answer (`Some`), or forgets the key after a transient answer
    /// (`None`) so that a retry is processed afresh.
    async fn finish(&self, key: &[u8; 32], final_body: Option<&[u8]>) -> Result<(), StoreError>;
}

/// Everything the server and the admin commands need, whatever the backend.
#[derive(Clone)]
pub struct Backend {
    /// Accounts and credentials.
    pub accounts: Arc<dyn AccountStore>,
    /// The cardholder registry.
    pub registry: Arc<dyn RegistryStore>,
    /// Daily attempt counters.
    pub attempts: Arc<dyn AttemptCounter>,
    /// The usage ledger.
    pub ledger: Arc<dyn Ledger>,
    /// The Encryption key ring.
    pub keys: Arc<dyn ServerKeyStore>,
    /// Request-rate limiter.
    pub limiter: Arc<dyn RateLimiter>,
    /// Final answers for identical retries.
    pub replays: Arc<dyn ReplayCache>,
    /// The append-only audit log of administrative actions.
    pub audit: Arc<dyn AuditLog>,
    /// Human-readable description ("sqlite:/path/cardcheck.db").
    pub description: String,
    closer: Arc<dyn Fn() + Send + Sync>,
}

impl Backend {
    /// Flushes pending writes and stops background writers. Idempotent.
    pub fn close(&self) {
        (self.closer)();
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Opens the embedded backend in `data_dir` (created on first use).
pub fn open_sqlite(data_dir: &std::path::Path) -> Result<Backend, StoreError> {
    let store = Arc::new(sqlite::SqliteStore::open(data_dir)?);
    Ok(store.into_backend())
}

/// Opens the scale-out backend: PostgreSQL at `database_url` (migrated on open) and
/// Redis at `redis_url`. The master key comes from `CARDCHECK_MASTER_KEY` (required,
/// the same on every node; a key other than the database's is refused); options from
/// the environment as in [`postgres::PostgresOptions::from_env`].
pub async fn open_postgres(database_url: &str, redis_url: &str) -> Result<Backend, StoreError> {
    postgres::open(database_url, redis_url).await
}
