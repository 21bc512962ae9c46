//! The embedded backend: SQLite files (WAL) in a data directory.
//!
//! Two files: `cardcheck.db` (accounts, credentials, the registry, server keys, the
//! audit log), written only by operator actions, and `ledger.db` ([`ledger`]), the
//! request path's only writes, committed by one writer thread in group commits.
//!
//! Connections: a small pool of readers (WAL readers never wait for a writer) and one
//! admin connection for operator writes on `cardcheck.db`; the ledger file has its own
//! writer, checkpointer and readers.

pub(crate) mod audit;
mod import;
pub mod ledger;
mod registry;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cardcheck_domain::{
    AttemptCounter, AttemptDecision, CardNumber, CardStatus, CardholderName, CounterUnavailable,
    Source, SourceAnswer, SourceUnavailable,
};
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use crate::credentials::token_sha256;
use crate::credentials::{NewCredential, now_unix, validate_account_name};
use crate::model::{DEFAULT_DAILY_ATTEMPTS, DEFAULT_QPS};
use crate::secrets::{KeyedHash, MasterKey};
use crate::stats::LedgerStats;
use crate::{
    Account, AccountStatus, AccountStore, AccountUpdate, Backend, Credential, CredentialKind,
    IssuedCredential, Ledger, LedgerEntry, RegistryRecord, RegistryStats, RegistryStore,
    ServerKeyStore, StoreError, UpsertCounts, UsageFilter, UsageRow,
};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "cardcheck.db";
pub use audit::ReadOnlyAudit;
pub use ledger::LEDGER_FILE;
/// Idle reader connections kept open for `cardcheck.db`.
const READER_POOL_MAX: usize = 8;

/// Reader connections to one database file, opened on demand and kept (up to `max`
/// idle) for the next read.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max: usize,
    open: fn(&Path) -> Result<Connection, StoreError>,
}

impl ReaderPool {
    fn new(path: PathBuf, max: usize, open: fn(&Path) -> Result<Connection, StoreError>) -> Self {
        ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            max,
            open,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = lock(&self.idle).pop();
        let conn = match conn {
            Some(c) => c,
            None => (self.open)(&self.path)?,
        };
        let out = f(&conn).map_err(db_err);
        let mut idle = lock(&self.idle);
        if idle.len() < self.max {
            idle.push(conn);
        }
        out
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// In-memory attempt counts for the Beijing days in use. The durable count is the
/// ledger's (rows carrying the card's hash, [`ledger`]); a day's counts are loaded from
/// it on the first limited request of that account and day on this node.
#[derive(Default)]
struct AttemptCounts {
    /// The newest day seen; older days are swept once when it advances.
    newest_day: i32,
    /// account → Beijing day → card hash → attempts. A day present here is loaded.
    by_account: HashMap<String, HashMap<i32, HashMap<KeyedHash, u32>>>,
}

impl AttemptCounts {
    /// Forgets days before yesterday once the day advances: once per day, not per
    /// request (a per-request sweep made every new card cost a walk over all counts).
    fn advance_to(&mut self, day: i32) {
        if day > self.newest_day {
            self.newest_day = day;
            for days in self.by_account.values_mut() {
                days.retain(|d, _| *d >= day - 1);
            }
            self.by_account.retain(|_, days| !days.is_empty());
        }
    }

    fn day_mut(&mut self, account: &str, day: i32) -> Option<&mut HashMap<KeyedHash, u32>> {
        self.by_account.get_mut(account)?.get_mut(&day)
    }
}

/// Counts one attempt against `limit` (`0`: unlimited).
fn take_attempt(
    counts: &mut HashMap<KeyedHash, u32>,
    card: KeyedHash,
    limit: u32,
) -> AttemptDecision {
    let count = counts.entry(card).or_insert(0);
    if limit != 0 && *count >= limit {
        return AttemptDecision::Exceeded;
    }
    *count += 1;
    AttemptDecision::Allowed
}

/// The embedded store.
pub struct SqliteStore {
    path: PathBuf,
    key: MasterKey,
    readers: ReaderPool,
    registry_lookup: ReaderPool,
    admin: Mutex<Connection>,
    /// `ledger.db`: the ledger rows, written by its own thread.
    ledger: ledger::LedgerFile,
    /// Attempt counts for the days in use, loaded lazily from the ledger.
    attempts: Mutex<AttemptCounts>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error about one database file, naming it (`…/ledger.db: file is not a database`).
fn file_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database(format!("{}: {e}", path.display()))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(file_err(path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(file_err(path))?;
    Ok(conn)
}

/// `meta` key set once this data directory's ledger lives in [`LEDGER_FILE`]: from then
/// on a missing ledger file is a lost ledger, not a directory to upgrade.
const LEDGER_FILE_MARKER: &str = "ledger_file";

/// The two database files belong together; one without the other is refused rather
/// than silently replaced by an empty one (a lost ledger loses billing records and
/// attempt counts; a lost main file, every account and key).
fn check_pair(main: &Path, ledger: &Path, ledger_expected: bool) -> Result<(), StoreError> {
    let missing = |gone: &Path, what: &str| {
        StoreError::Io(format!(
            "{} is missing ({what}): restore it from a backup, or create an empty file \
             with that name to start anew without it",
            gone.display()
        ))
    };
    if ledger_expected && !ledger.exists() {
        return Err(missing(
            ledger,
            "the usage ledger and the daily attempt counts",
        ));
    }
    if !main.exists() && ledger.exists() {
        return Err(missing(
            main,
            "accounts, keys, the registry and the audit log; its ledger.db is still there",
        ));
    }
    Ok(())
}

/// Page cache of each registry-lookup connection, KiB. It must hold the registry's
/// interior B-tree pages, so that a lookup reads only its leaf (not cached, at 10M
/// rows): 814 pages (3.3 MB) for 10M rows keyed by slot (`registry.rs`), room for
/// about 25M rows. The rest holds leaves, i.e. all of a small registry.
const REGISTRY_LOOKUP_CACHE_KIB: i64 = 8 * 1024;
/// Idle registry-lookup connections kept: one per thread that answers requests at
/// once (the server's workers, one per core), each with its own page cache. A lookup
/// that finds none idle opens one, which costs far more than the lookup.
fn registry_lookup_pool_max() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 32))
}

/// A connection for registry lookups: the store's settings and a page cache that
/// keeps the registry's interior pages.
fn open_registry_lookup(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", -REGISTRY_LOOKUP_CACHE_KIB)
        .map_err(db_err)?;
    Ok(conn)
}

fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::Io(format!(
            "the data directory {} exists and is not a directory",
            dir.display()
        )));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        StoreError::Io(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })
}

impl SqliteStore {
    /// Opens (creating on first use) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_data_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let ledger_path = data_dir.join(LEDGER_FILE);
        check_pair(&path, &ledger_path, false)?;
        // A new key only for a new store (no cardcheck.db yet).
        let key = MasterKey::load_or_create(data_dir, !path.exists())?;
        let mut admin = open_connection(&path)?;
        // A key that does not match is refused before any migration rewrites the file
        // (a failed command must not leave a database an older build cannot open).
        let schema_error = |e: String| StoreError::Database(format!("{}: {e}", path.display()));
        if schema::version(&admin).map_err(schema_error)? > 0 {
            check_master_key(&admin, &key)?;
        }
        schema::migrate(&mut admin).map_err(schema_error)?;
        registry::reclaim_after_conversion(&admin, &path);
        check_master_key(&admin, &key)?;
        let ledger_expected = admin
            .query_row(
                "SELECT 1 FROM meta WHERE key = ?1",
                [LEDGER_FILE_MARKER],
                |_| Ok(()),
            )
            .optional()
            .map_err(file_err(&path))?
            .is_some();
        check_pair(&path, &ledger_path, ledger_expected)?;

        let ledger = ledger::LedgerFile::open(data_dir)?;
        ledger::move_legacy_tables(&admin, ledger.path())?;
        if !ledger_expected {
            admin
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, x'01') ON CONFLICT (key) DO NOTHING",
                    [LEDGER_FILE_MARKER],
                )
                .map_err(file_err(&path))?;
        }
        let readers = ReaderPool::new(path.clone(), READER_POOL_MAX, open_connection);
        let registry_lookup = ReaderPool::new(
            path.clone(),
            registry_lookup_pool_max(),
            open_registry_lookup,
        );
        Ok(SqliteStore {
            path,
            key,
            readers,
            registry_lookup,
            admin: Mutex::new(admin),
            ledger,
            attempts: Mutex::new(AttemptCounts::default()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bundles this store as a [`Backend`].
    pub fn into_backend(self: Arc<Self>) -> Backend {
        let closer = Arc::clone(&self);
        Backend {
            accounts: self.clone(),
            registry: self.clone(),
            attempts: self.clone(),
            ledger: self.clone(),
            keys: self.clone(),
            // One node owns an embedded data directory: in-memory state is shared state.
            limiter: Arc::new(crate::memory::MemoryRateLimiter::default()),
            replays: Arc::new(crate::memory::MemoryReplayCache::default()),
            audit: self.clone(),
            description: format!(
                "sqlite:{} (ledger: {})",
                self.path.display(),
                self.ledger.path().display()
            ),
            closer: Arc::new(move || closer.close()),
        }
    }

    /// Commits everything queued and stops the ledger's threads. Idempotent.
    pub fn close(&self) {
        self.ledger.close();
    }

    /// Waits until every ledger row queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.ledger.flush().await
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.readers.with(f)
    }

    fn read_account(conn: &Connection, name: &str) -> rusqlite::Result<Option<Account>> {
        conn.query_row(
            "SELECT name, status, qps, daily_attempts, created_at FROM accounts WHERE name = ?1",
            [name],
            account_from_row,
        )
        .optional()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn check_master_key(conn: &Connection, key: &MasterKey) -> Result<(), StoreError> {
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'master_key_check'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    match stored {
        Some(value) if value.as_slice().ct_eq(&key.check_value()).into() => Ok(()),
        Some(_) => Err(StoreError::MasterKeyMismatch),
        None => conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('master_key_check', ?1)",
                [key.check_value().as_slice()],
            )
            .map(|_| ())
            .map_err(db_err),
    }
}

fn account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let status: String = row.get(1)?;
    Ok(Account {
        name: row.get(0)?,
        status: AccountStatus::parse(&status).unwrap_or(AccountStatus::ChargeException),
        qps: row.get(2)?,
        daily_attempts: row.get(3)?,
        created_at: row.get(4)?,
    })
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        validate_account_name(name)?;
        let account = Account {
            name: name.to_string(),
            status: AccountStatus::Active,
            qps: DEFAULT_QPS,
            daily_attempts: DEFAULT_DAILY_ATTEMPTS,
            created_at: now_unix(),
        };
        let conn = lock(&self.admin);
        let inserted = conn
            .execute(
                "INSERT INTO accounts (name, status, qps, daily_attempts, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                params![
                    account.name,
                    account.status.as_str(),
                    account.qps,
                    account.daily_attempts,
                    account.created_at
                ],
            )
            .map_err(db_err)?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("account {name}")));
        }
        Ok(account)
    }

    async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.with_reader(|c| Self::read_account(c, name))
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT name, status, qps, daily_attempts, created_at FROM accounts ORDER BY name",
            )?;
            let rows = stmt.query_map([], account_from_row)?;
            rows.collect()
        })
    }

    async fn update_account(
        &self,
        name: &str,
        update: &AccountUpdate,
    ) -> Result<Account, StoreError> {
        let conn = lock(&self.admin);
        let mut account = Self::read_account(&conn, name)
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("account {name}")))?;
        if let Some(status) = update.status {
            account.status = status;
        }
        if let Some(qps) = update.qps {
            account.qps = qps;
        }
        if let Some(daily) = update.daily_attempts {
            account.daily_attempts = daily;
        }
        conn.execute(
            "UPDATE accounts SET status = ?2, qps = ?3, daily_attempts = ?4 WHERE name = ?1",
            params![
                name,
                account.status.as_str(),
                account.qps,
                account.daily_attempts
            ],
        )
        .map_err(db_err)?;
        Ok(account)
    }

    async fn create_credential(
        &self,
        account: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<IssuedCredential, StoreError> {
        let new = NewCredential::generate(&self.key, ttl_seconds)?;
        let conn = lock(&self.admin);
        if Self::read_account(&conn, account)
            .map_err(db_err)?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("account {account}")));
        }
        conn.execute(
            "INSERT INTO credentials (secret_id, account, secret_key_enc, kind, token_sha256, \
             expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                new.secret_id,
                account,
                new.sealed,
                new.kind.as_str(),
                new.token_sha256.as_ref().map(|h| h.as_slice()),
                new.expires_at,
                now_unix()
            ],
        )
        .map_err(db_err)?;
        Ok(new.issued(account))
    }

    async fn credential(&self, secret_id: &str) -> Result<Option<Credential>, StoreError> {
        let row = self.with_reader(|c| {
            c.query_row(
                "SELECT account, secret_key_enc, kind, token_sha256, expires_at, revoked_at, \
                 created_at FROM credentials WHERE secret_id = ?1",
                [secret_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<Vec<u8>>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((account, sealed, kind, token, expires_at, revoked_at, created_at)) = row else {
            return Ok(None);
        };
        let plain = self.key.open_secret(secret_id, &sealed)?;
        let secret_key = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("credential {secret_id}")))?;
        Ok(Some(Credential {
            secret_id: secret_id.to_string(),
            secret_key: Zeroizing::new(secret_key),
            account,
            kind: CredentialKind::from_word(&kind),
            token_sha256: token.and_then(|t| <[u8; 32]>::try_from(t.as_slice()).ok()),
            expires_at,
            revoked_at,
            created_at,
        }))
    }

    async fn revoke_credential(&self, secret_id: &str) -> Result<bool, StoreError> {
        let conn = lock(&self.admin);
        let changed = conn
            .execute(
                "UPDATE credentials SET revoked_at = coalesce(revoked_at, ?2) WHERE secret_id = ?1",
                params![secret_id, now_unix()],
            )
            .map_err(db_err)?;
        Ok(changed > 0)
    }

    async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT secret_id, account, kind, expires_at, revoked_at, created_at \
                 FROM credentials WHERE account = ?1 ORDER BY created_at, secret_id",
            )?;
            let rows = stmt.query_map([account], |r| {
                let kind: String = r.get(2)?;
                Ok(Credential {
                    secret_id: r.get(0)?,
                    secret_key: Zeroizing::new(String::new()),
                    account: r.get(1)?,
                    kind: CredentialKind::from_word(&kind),
                    token_sha256: None,
                    expires_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[async_trait]
impl Source for SqliteStore {
    async fn lookup(
        &self,
        card: &CardNumber,
        name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        let card_hash = self.key.card_hash(card.digits());
        let (first_slot, last_slot) = registry::lookup_range(&card_hash);
        let row = self
            .registry_lookup
            .with(|c| {
                c.prepare_cached(registry::LOOKUP_SQL)?
                    .query_row(params![first_slot, last_slot, card_hash.as_slice()], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
                    })
                    .optional()
            })
            .map_err(|e| SourceUnavailable::new(format!("registry: {e}")))?;
        let Some((stored_name, status)) = row else {
            return Ok(SourceAnswer::UnknownCard);
        };
        // The name is checked before the status (verification.md §2 step 7).
        let name_hash = self.key.name_hash(name.comparison_key());
        if !bool::from(stored_name.as_slice().ct_eq(name_hash.as_slice())) {
            return Ok(SourceAnswer::NameMismatch);
        }
        let status = CardStatus::from_word(&status)
            .ok_or_else(|| SourceUnavailable::new("registry: unknown status word"))?;
        Ok(SourceAnswer::Match(status))
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn upsert(&self, records: &[RegistryRecord]) -> Result<UpsertCounts, StoreError> {
        let now = now_unix();
        let mut conn = lock(&self.admin);
        let tx = conn.transaction().map_err(db_err)?;
        let mut counts = UpsertCounts::default();
        {
            let mut writer = registry::RowWriter::new(&tx).map_err(db_err)?;
            for r in records {
                let card_hash = self.key.card_hash(r.card.digits());
                let name_hash = self.key.name_hash(r.name.comparison_key());
                let masked = r.card.masked();
                let outcome = writer.put(&registry::RegistryRow {
                    card_hash: &card_hash,
                    name_hash: &name_hash,
                    masked: &masked,
                    status: r.status.as_word(),
                    updated_at: now,
                })?;
                match outcome {
                    registry::PutOutcome::Inserted => counts.inserted += 1,
                    registry::PutOutcome::Updated | registry::PutOutcome::Unchanged => {
                        counts.updated += 1
                    }
                }
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(counts)
    }

    /// One scan of the table, counted in memory (no sort of 10M rows in SQLite).
    async fn stats(&self) -> Result<RegistryStats, StoreError> {
        self.with_reader(|c| {
            let mut by_status: HashMap<String, u64> = HashMap::new();
            let mut by_bin6: HashMap<[u8; 6], u64> = HashMap::new();
            let mut stmt = c.prepare("SELECT status, masked FROM registry")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let status = row.get_ref(0)?.as_str()?;
                match by_status.get_mut(status) {
                    Some(n) => *n += 1,
                    None => {
                        by_status.insert(status.to_owned(), 1);
                    }
                }
                let masked = row.get_ref(1)?.as_str()?.as_bytes();
                let mut bin = [b'?'; 6];
                let n = masked.len().min(6);
                bin[..n].copy_from_slice(&masked[..n]);
                *by_bin6.entry(bin).or_insert(0) += 1;
            }
            let mut by_status: Vec<(String, u64)> = by_status.into_iter().collect();
            by_status.sort();
            let mut by_bin6: Vec<(String, u64)> = by_bin6
                .into_iter()
                .map(|(bin, n)| (String::from_utf8_lossy(&bin).into_owned(), n))
                .collect();
            by_bin6.sort();
            Ok(RegistryStats {
                total: by_status.iter().map(|(_, n)| n).sum(),
                by_status,
                by_bin6,
                bytes: Some(database_bytes(&self.path)),
            })
        })
    }

    fn begin_import(&self) -> Result<Box<dyn crate::RegistryImport + '_>, StoreError> {
        Ok(Box::new(import::SqliteImport::start(
            self.key.clone(),
            self.path.clone(),
        )?))
    }
}

/// The database file plus its WAL, bytes.
fn database_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

#[async_trait]
impl AttemptCounter for SqliteStore {
    /// verification.md §2 step 4. The count is not written here: the ledger row of a
    /// counted request carries the card's keyed hash, and is committed before the
    /// reply, so counts survive a crash exactly as answers do.
    async fn register_attempt(
        &self,
        account: &str,
        card: &CardNumber,
        beijing_day: i32,
        limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable> {
        {
            let mut state = lock(&self.attempts);
            state.advance_to(beijing_day);
            if let Some(counts) = state.day_mut(account, beijing_day) {
                let card_hash = self.key.card_hash(card.digits());
                return Ok(take_attempt(counts, card_hash, limit));
            }
            // Unlimited and not yet tracked: nothing to decide. The ledger still
            // records the attempt, so a limit set later counts it.
            if limit == 0 {
                return Ok(AttemptDecision::Allowed);
            }
        }
        // The first limited request of this account and day on this node: load the
        // day's counts from the ledger, after the rows already answered are committed.
        let unavailable = |e: StoreError| CounterUnavailable::new(e.to_string());
        self.ledger.flush().await.map_err(unavailable)?;
        let loaded = self
            .ledger
            .attempt_counts(account, beijing_day)
            .map_err(unavailable)?;
        let card_hash = self.key.card_hash(card.digits());
        let mut state = lock(&self.attempts);
        // Another request may have loaded the day meanwhile: its counts win.
        let counts = state
            .by_account
            .entry(account.to_owned())
            .or_default()
            .entry(beijing_day)
            .or_insert(loaded);
        Ok(take_attempt(counts, card_hash, limit))
    }
}

#[async_trait]
impl Ledger for SqliteStore {
    async fn append(&self, entry: LedgerEntry) -> Result<(), StoreError> {
        let card_hash = entry
            .attempted_card
            .as_ref()
            .map(|card| self.key.card_hash(card.digits()));
        self.ledger.append(entry, card_hash).await
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        self.ledger.usage(filter)
    }

    async fn count_request(&self, request_id: &str) -> Result<u64, StoreError> {
        self.ledger.count_request(request_id)
    }

    fn ledger_stats(&self) -> LedgerStats {
        self.ledger.stats.snapshot()
    }
}

#[async_trait]
impl ServerKeyStore for SqliteStore {
    async fn load_server_keys(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let sealed: Option<Vec<u8>> = self.with_reader(|c| {
            c.query_row("SELECT blob FROM server_keys WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
        })?;
        sealed
            .map(|s| self.key.open_secret("server-keys", &s))
            .transpose()
    }

    async fn save_server_keys(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let sealed = self.key.seal_secret("server-keys", bytes);
        lock(&self.admin)
            .execute(
                "INSERT INTO server_keys (id, blob) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET blob = excluded.blob",
                [sealed],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    async fn save_server_keys_if_absent(&self, bytes: &[u8]) -> Result<bool, StoreError> {
        let sealed = self.key.seal_secret("server-keys", bytes);
        lock(&self.admin)
            .execute(
                "INSERT INTO server_keys (id, blob) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                [sealed],
            )
            .map(|n| n == 1)
            .map_err(db_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Broke: opening an older data directory with the wrong master key converted its
    /// registry first and refused the key after, leaving a file the older build (with
    /// the right key) could no longer open.
    #[test]
    fn a_wrong_master_key_leaves_an_older_data_dir_unconverted() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        // Back to schema version 2: the registry keyed by card hash, with one row.
        Connection::open(dir.path().join(DATABASE_FILE))
            .unwrap()
            .execute_batch(
                "DROP TABLE registry;
                 CREATE TABLE registry (card_hash BLOB PRIMARY KEY, name_hash BLOB NOT NULL,
                     masked TEXT NOT NULL, status TEXT NOT NULL, updated_at INTEGER NOT NULL)
                     WITHOUT ROWID;
                 INSERT INTO registry VALUES (x'00112233445566778899aabbccddeeff', x'01',
                     '622576******8888', 'active', 1);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        std::fs::write(dir.path().join("master.key"), "ab".repeat(32)).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::MasterKeyMismatch), "{err}");
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        assert_eq!(schema::version(&conn).unwrap(), 2);
        let old_table: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('registry') WHERE name = 'card_hash' AND pk = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_table, 1);
    }

    /// Broke: opening a store whose key is kept outside (`CARDCHECK_MASTER_KEY`, here
    /// unset) wrote a new, wrong `master.key` into its directory before refusing it.
    #[test]
    fn a_store_without_its_master_key_is_refused_and_gets_no_new_key_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let key_file = dir.path().join("master.key");
        std::fs::remove_file(&key_file).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no master key"), "{err}");
        assert!(!key_file.exists());
    }
}
