//! The embedded backend: one SQLite file (`cardcheck.db`, WAL) in a data directory.
//!
//! Connections: a small pool of readers (WAL readers never wait for the writer), one
//! admin connection for operator writes (accounts, credentials, registry imports), and
//! one writer thread for the request path. The writer drains its queue and commits
//! everything queued in one transaction (group commit), so a reply that waits for its
//! ledger row costs a share of one fsync, not one each (design.md "Hot path rules").

mod import;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use cardcheck_domain::{
    AttemptCounter, AttemptDecision, CardNumber, CardStatus, CardholderName, CounterUnavailable,
    Source, SourceAnswer, SourceUnavailable,
};
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

pub use crate::credentials::token_sha256;
use crate::credentials::{NewCredential, now_unix, validate_account_name};
use crate::model::{DEFAULT_DAILY_ATTEMPTS, DEFAULT_QPS};
use crate::secrets::{KeyedHash, MasterKey};
use crate::stats::{AtomicHistogram, BATCH_SIZE_BUCKETS, COMMIT_SECONDS_BUCKETS, LedgerStats};
use crate::{
    Account, AccountStatus, AccountStore, AccountUpdate, Backend, Credential, CredentialKind,
    IssuedCredential, Ledger, LedgerEntry, RegistryRecord, RegistryStats, RegistryStore,
    ServerKeyStore, StoreError, UpsertCounts, UsageFilter, UsageRow,
};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "cardcheck.db";
/// Most jobs committed in one writer transaction.
const GROUP_COMMIT_MAX: usize = 512;
/// Idle reader connections kept open.
const READER_POOL_MAX: usize = 8;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A job for the writer thread.
enum WriteJob {
    Ledger(LedgerEntry, oneshot::Sender<Result<(), StoreError>>),
    Attempt {
        account: String,
        card_hash: KeyedHash,
        day: i32,
        count: u32,
    },
    Flush(oneshot::Sender<()>),
}

/// In-memory attempt counts for the Beijing days in use.
#[derive(Default)]
struct AttemptCounts {
    /// The newest day seen; older days are swept once when it advances.
    newest_day: i32,
    counts: HashMap<(String, KeyedHash, i32), u32>,
}

/// The embedded store.
pub struct SqliteStore {
    path: PathBuf,
    key: MasterKey,
    readers: Mutex<Vec<Connection>>,
    admin: Mutex<Connection>,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Attempt counts for the days in use, loaded lazily from the table; the writer
    /// persists every change before the ledger row that follows it.
    attempts: Mutex<AttemptCounts>,
    /// The writer thread's counters (`/metrics`).
    writer_stats: Arc<WriterStats>,
}

/// What the writer thread counts: commits, rows, batch sizes, commit latency.
#[derive(Debug)]
struct WriterStats {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    ledger_rows: AtomicU64,
    batch_sizes: AtomicHistogram,
    commit_seconds: AtomicHistogram,
}

impl WriterStats {
    fn new() -> Self {
        WriterStats {
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            ledger_rows: AtomicU64::new(0),
            batch_sizes: AtomicHistogram::new(BATCH_SIZE_BUCKETS),
            commit_seconds: AtomicHistogram::new(COMMIT_SECONDS_BUCKETS),
        }
    }

    fn snapshot(&self) -> LedgerStats {
        LedgerStats {
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            rows: self.ledger_rows.load(Ordering::Relaxed),
            batch_sizes: self.batch_sizes.snapshot(),
            commit_seconds: self.commit_seconds.snapshot(),
        }
    }
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

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(db_err)?;
    Ok(conn)
}

/// Page cache of each reader connection, KiB. A 10M-row registry has about 8 MB of
/// interior B-tree pages; with them cached a point lookup reads one leaf page, so
/// lookups stay flat as the registry grows (issue 6). SQLite's default is 2 MB.
const READER_CACHE_KIB: i64 = 16 * 1024;

/// A reader connection: [`open_connection`] plus a bigger page cache.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
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
        let key = MasterKey::load_or_create(data_dir, true)?;
        let path = data_dir.join(DATABASE_FILE);
        let mut admin = open_connection(&path)?;
        schema::migrate(&mut admin).map_err(StoreError::Database)?;
        check_master_key(&admin, &key)?;

        let writer_conn = open_connection(&path)?;
        let (tx, rx) = mpsc::channel();
        let writer_stats = Arc::new(WriterStats::new());
        let stats = Arc::clone(&writer_stats);
        let writer_thread = std::thread::Builder::new()
            .name("cardcheck-sqlite-writer".into())
            .spawn(move || run_writer(writer_conn, rx, &stats))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path,
            key,
            readers: Mutex::new(Vec::new()),
            admin: Mutex::new(admin),
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(writer_thread)),
            attempts: Mutex::new(AttemptCounts::default()),
            writer_stats,
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
            description: format!("sqlite:{}", self.path.display()),
            closer: Arc::new(move || closer.close()),
        }
    }

    /// Commits everything queued and stops the writer thread. Idempotent.
    pub fn close(&self) {
        drop(lock(&self.writer).take());
        if let Some(handle) = lock(&self.writer_thread).take() {
            let _ = handle.join();
        }
    }

    fn send(&self, job: WriteJob) -> Result<(), StoreError> {
        match lock(&self.writer).as_ref() {
            Some(tx) => tx
                .send(job)
                .map_err(|_| StoreError::Database("the writer thread has stopped".into())),
            None => Err(StoreError::Database("the store is closed".into())),
        }
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteJob::Flush(tx))?;
        rx.await
            .map_err(|_| StoreError::Database("the writer thread has stopped".into()))
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = lock(&self.readers).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn).map_err(db_err);
        let mut pool = lock(&self.readers);
        if pool.len() < READER_POOL_MAX {
            pool.push(conn);
        }
        out
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

/// The writer thread: blocks for one job, then takes whatever else is queued and
/// commits it all in one transaction before answering.
fn run_writer(mut conn: Connection, rx: mpsc::Receiver<WriteJob>, stats: &WriterStats) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let outcome = write_batch(&mut conn, &batch);
        let ledger_rows = batch
            .iter()
            .filter(|j| matches!(j, WriteJob::Ledger(..)))
            .count() as u64;
        let rows = batch
            .iter()
            .filter(|j| !matches!(j, WriteJob::Flush(_)))
            .count();
        // A batch of flush markers only writes nothing: not a commit worth counting.
        if rows > 0 {
            if outcome.is_ok() {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.ledger_rows.fetch_add(ledger_rows, Ordering::Relaxed);
                stats.batch_sizes.observe(rows as f64);
                stats
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
            } else {
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        for job in batch {
            match job {
                WriteJob::Ledger(_, reply) => {
                    let _ = reply.send(outcome.clone().map_err(StoreError::Database));
                }
                WriteJob::Flush(reply) => {
                    let _ = reply.send(());
                }
                WriteJob::Attempt { .. } => {}
            }
        }
        if let Err(e) = outcome {
            tracing::error!(error = %e, "ledger/attempt batch was not committed");
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[WriteJob]) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let mut ledger = tx
            .prepare_cached(
                "INSERT INTO ledger (request_id, account, secret_id, action, result, billed, \
                 masked_card, latency_us, ts_ms, day) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) \
                 ON CONFLICT (request_id) DO NOTHING",
            )
            .map_err(|e| e.to_string())?;
        let mut attempt = tx
            .prepare_cached(
                "INSERT INTO attempts (account, card_hash, day, count) VALUES (?1,?2,?3,?4) \
                 ON CONFLICT (account, card_hash, day) DO UPDATE SET count = max(count, excluded.count)",
            )
            .map_err(|e| e.to_string())?;
        for job in batch {
            match job {
                WriteJob::Ledger(e, _) => {
                    ledger
                        .execute(params![
                            e.request_id,
                            e.account,
                            e.secret_id,
                            e.action,
                            e.result.code(),
                            e.result.billed(),
                            e.masked_card,
                            e.latency_us as i64,
                            e.ts_ms,
                            e.day,
                        ])
                        .map_err(|e| e.to_string())?;
                }
                WriteJob::Attempt {
                    account,
                    card_hash,
                    day,
                    count,
                } => {
                    attempt
                        .execute(params![account, card_hash.as_slice(), day, count])
                        .map_err(|e| e.to_string())?;
                }
                WriteJob::Flush(_) => {}
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())
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
        let row = self
            .with_reader(|c| {
                c.prepare_cached("SELECT name_hash, status FROM registry WHERE card_hash = ?1")?
                    .query_row([card_hash.as_slice()], |r| {
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
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM registry WHERE card_hash = ?1")
                .map_err(db_err)?;
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO registry (card_hash, name_hash, masked, status, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (card_hash) DO UPDATE SET \
                     name_hash = excluded.name_hash, masked = excluded.masked, \
                     status = excluded.status, updated_at = excluded.updated_at",
                )
                .map_err(db_err)?;
            for r in records {
                let card_hash = self.key.card_hash(r.card.digits());
                if exists.exists([card_hash.as_slice()]).map_err(db_err)? {
                    counts.updated += 1;
                } else {
                    counts.inserted += 1;
                }
                stmt.execute(params![
                    card_hash.as_slice(),
                    self.key.name_hash(r.name.comparison_key()).as_slice(),
                    r.card.masked(),
                    r.status.as_word(),
                    now
                ])
                .map_err(db_err)?;
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
    async fn register_attempt(
        &self,
        account: &str,
        card: &CardNumber,
        beijing_day: i32,
        limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable> {
        let card_hash = self.key.card_hash(card.digits());
        let key = (account.to_string(), card_hash, beijing_day);
        let count = {
            let mut state = lock(&self.attempts);
            // Keep memory bounded: when the day advances, forget days before yesterday.
            // Once per day, not per request (a per-request sweep made every new card
            // cost a walk over all counts: bench/README.md, profile).
            if beijing_day > state.newest_day {
                state.newest_day = beijing_day;
                state
                    .counts
                    .retain(|(_, _, day), _| *day >= beijing_day - 1);
            }
            let counts = &mut state.counts;
            let count = match counts.get(&key) {
                Some(&n) => n,
                None => {
                    // First touch on this node: the table holds earlier runs' counts.
                    let stored = self
                        .with_reader(|c| {
                            c.prepare_cached(
                                "SELECT count FROM attempts WHERE account = ?1 AND card_hash = ?2 AND day = ?3",
                            )?
                            .query_row(params![account, card_hash.as_slice(), beijing_day], |r| {
                                r.get::<_, u32>(0)
                            })
                            .optional()
                        })
                        .map_err(|e| CounterUnavailable::new(e.to_string()))?;
                    stored.unwrap_or(0)
                }
            };
            if limit != 0 && count >= limit {
                counts.insert(key, count);
                return Ok(AttemptDecision::Exceeded);
            }
            counts.insert(key.clone(), count + 1);
            count + 1
        };
        // Queued before this request's ledger row, so committed no later than it.
        self.send(WriteJob::Attempt {
            account: key.0,
            card_hash,
            day: beijing_day,
            count,
        })
        .map_err(|e| CounterUnavailable::new(e.to_string()))?;
        Ok(AttemptDecision::Allowed)
    }
}

#[async_trait]
impl Ledger for SqliteStore {
    async fn append(&self, entry: LedgerEntry) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteJob::Ledger(entry, tx))?;
        rx.await
            .map_err(|_| StoreError::Database("the writer thread has stopped".into()))?
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT account, day, result, billed, count(*) FROM ledger \
                 WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR day >= ?2) \
                 AND (?3 IS NULL OR day <= ?3) \
                 GROUP BY account, day, result, billed ORDER BY account, day, result DESC",
            )?;
            let rows = stmt.query_map(
                params![filter.account, filter.from_day, filter.to_day],
                |r| {
                    Ok(UsageRow {
                        account: r.get(0)?,
                        day: r.get(1)?,
                        result: r.get(2)?,
                        billed: r.get(3)?,
                        count: r.get::<_, i64>(4)? as u64,
                    })
                },
            )?;
            rows.collect()
        })
    }

    async fn count_request(&self, request_id: &str) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            c.query_row(
                "SELECT count(*) FROM ledger WHERE request_id = ?1",
                [request_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    fn ledger_stats(&self) -> LedgerStats {
        self.writer_stats.snapshot()
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
