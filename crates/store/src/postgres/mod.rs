//! The scale-out backend: PostgreSQL for durable state (accounts, credentials, the
//! registry, the ledger, server keys) and Redis for shared counters (rate limits,
//! daily attempts, replays; [`crate::redis_state`]). Several stateless `cardcheck serve`
//! nodes share one database and one Redis (docs/scale-out.md).
//!
//! - Migrations run on start ([`schema`]); a `meta` row holds the master key's check
//!   value, so a node with another `CARDCHECK_MASTER_KEY` is refused.
//! - Every request-path call has a deadline ([`PostgresOptions::request_timeout`]):
//!   pool wait, connect and query together. PostgreSQL being down is an error within
//!   the deadline, never a hang; the pool drops broken connections and makes new ones,
//!   so service resumes by itself when the database is back.
//! - Ledger rows go through one writer task that inserts everything queued in one
//!   statement (group commit); `append` returns once its row is committed.
//! - Registry imports stream the batch with `COPY … FROM STDIN (FORMAT binary)` into a
//!   temporary table, then upsert from it in one statement.

pub(crate) mod audit;
mod schema;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cardcheck_domain::{
    CardNumber, CardStatus, CardholderName, Source, SourceAnswer, SourceUnavailable,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use zeroize::Zeroizing;

use crate::credentials::{NewCredential, now_unix, random_alphanumeric, validate_account_name};
use crate::model::{DEFAULT_DAILY_ATTEMPTS, DEFAULT_QPS};
use crate::redis_state::RedisState;
use crate::secrets::{MASTER_KEY_ENV, MasterKey};
use crate::stats::{LedgerStats, LedgerWriterStats};
use crate::{
    Account, AccountStatus, AccountStore, AccountUpdate, Backend, Credential, CredentialKind,
    IssuedCredential, Ledger, LedgerEntry, RegistryRecord, RegistryStats, RegistryStore,
    ServerKeyStore, StoreError, UpsertCounts, UsageFilter, UsageRow,
};

pub use schema::{CURRENT_VERSION, validate_schema_name};

/// Environment: the PostgreSQL schema to use (created on start); default `public`.
pub const SCHEMA_ENV: &str = "CARDCHECK_DATABASE_SCHEMA";
/// Environment: the Redis key prefix; default `cardcheck:<deployment id>:`.
pub const REDIS_PREFIX_ENV: &str = "CARDCHECK_REDIS_PREFIX";
/// Environment: the request-path deadline per store call, milliseconds.
pub const TIMEOUT_ENV: &str = "CARDCHECK_STORE_TIMEOUT_MS";
/// Environment: PostgreSQL connections per node.
pub const POOL_SIZE_ENV: &str = "CARDCHECK_DATABASE_POOL_SIZE";

/// Default deadline of one request-path store call (PostgreSQL or Redis).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Default deadline of one administrative call (imports, usage reports, migration).
pub const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Default PostgreSQL connections per node.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Most ledger rows inserted by one statement.
const LEDGER_BATCH_MAX: usize = 512;
/// Ledger rows waiting for the writer before `append` refuses (overload).
const LEDGER_QUEUE: usize = 16_384;

/// Formats a PostgreSQL error without the server's DETAIL (which can quote row
/// values): SQLSTATE and message, or the client-side error.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(pg_message(&e))
}

/// A PostgreSQL error in one line: the server's code and message, or the client's
/// error with its cause (`error connecting to server: Connection refused (os error
/// 111)`: the client's own text leaves the cause out).
fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("PostgreSQL {}: {}", db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("PostgreSQL: {e}: {cause}"),
        None => format!("PostgreSQL: {e}"),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Database(format!("PostgreSQL unavailable: {other}")),
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

fn is_fk_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}

/// Runs `fut` with a deadline; a late answer is a [`StoreError::Database`].
pub(crate) async fn within<T>(
    deadline: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(out) => out,
        Err(_) => Err(StoreError::Database(format!(
            "{what}: no answer within {} ms",
            deadline.as_millis()
        ))),
    }
}

/// `scheme://user:password@host/…` → `scheme://host/…` (for descriptions and logs).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "(unparsed URL)".into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = &rest[authority_end..];
    // Query strings can carry passwords too (`?password=`): drop them.
    let path = path.split('?').next().unwrap_or("");
    format!("{}://{host}{path}", &url[..scheme_end])
}

/// How to open the PostgreSQL + Redis backend.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/database` (also `host=… dbname=…` key-value form).
    pub database_url: String,
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Schema for the tables (created on start); `None`: the connection's default
    /// (`public`).
    pub schema: Option<String>,
    /// Prefix of every Redis key; `None`: `cardcheck:<deployment id>:`, where the
    /// deployment id is random and stored in the database, so deployments sharing one
    /// Redis never mix their counters.
    pub redis_prefix: Option<String>,
    /// The deployment's master key; `None`: from `CARDCHECK_MASTER_KEY`.
    pub master_key: Option<MasterKey>,
    /// Deadline of one request-path call (credential, registry lookup, ledger append,
    /// limiter, attempts, replays).
    pub request_timeout: Duration,
    /// Deadline of one administrative call.
    pub admin_timeout: Duration,
    /// PostgreSQL connections per node.
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("schema", &self.schema)
            .field("redis_prefix", &self.redis_prefix)
            .field("request_timeout", &self.request_timeout)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Defaults: schema `public`, prefix from the deployment id, key from the
    /// environment, 500 ms request deadline, 16 connections.
    pub fn new(database_url: &str, redis_url: &str) -> Self {
        PostgresOptions {
            database_url: database_url.to_string(),
            redis_url: redis_url.to_string(),
            schema: None,
            redis_prefix: None,
            master_key: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            admin_timeout: DEFAULT_ADMIN_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// [`Self::new`] plus the environment: `CARDCHECK_DATABASE_SCHEMA`,
    /// `CARDCHECK_REDIS_PREFIX`, `CARDCHECK_STORE_TIMEOUT_MS`,
    /// `CARDCHECK_DATABASE_POOL_SIZE` (the master key is read at open).
    pub fn from_env(database_url: &str, redis_url: &str) -> Result<Self, StoreError> {
        let mut options = Self::new(database_url, redis_url);
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        options.schema = var(SCHEMA_ENV);
        options.redis_prefix = var(REDIS_PREFIX_ENV);
        if let Some(ms) = var(TIMEOUT_ENV) {
            let ms: u64 = ms
                .parse()
                .ok()
                .filter(|ms| (1..=600_000).contains(ms))
                .ok_or_else(|| {
                    StoreError::Invalid(format!("{TIMEOUT_ENV} must be 1 to 600000 (ms)"))
                })?;
            options.request_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = var(POOL_SIZE_ENV) {
            options.pool_size = n
                .parse()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| StoreError::Invalid(format!("{POOL_SIZE_ENV} must be 1 to 1024")))?;
        }
        Ok(options)
    }

    /// Opens the backend: connects, migrates, checks the master key.
    pub async fn open(self) -> Result<Backend, StoreError> {
        let (pg, redis) = self.open_parts().await?;
        Ok(pg.into_backend(redis))
    }

    /// The two halves, for the migration tool.
    pub(crate) async fn open_parts(self) -> Result<(Arc<PgStore>, Arc<RedisState>), StoreError> {
        let key = match &self.master_key {
            Some(key) => key.clone(),
            None => master_key_from_env()?,
        };
        let pg = PgStore::open(&self, key.clone()).await?;
        let prefix = match &self.redis_prefix {
            Some(prefix) => prefix.clone(),
            None => format!("cardcheck:{}:", pg.deployment_id),
        };
        let redis = RedisState::connect(&self.redis_url, &prefix, key, self.request_timeout)?;
        Ok((Arc::new(pg), Arc::new(redis)))
    }
}

/// The master key of a PostgreSQL deployment: `CARDCHECK_MASTER_KEY`, required.
pub fn master_key_from_env() -> Result<MasterKey, StoreError> {
    match std::env::var(MASTER_KEY_ENV) {
        Ok(value) if !value.trim().is_empty() => MasterKey::from_hex(&value).map_err(|_| {
            StoreError::Invalid(format!("{MASTER_KEY_ENV} must be 64 hex digits (32 bytes)"))
        }),
        _ => Err(StoreError::Invalid(format!(
            "{MASTER_KEY_ENV} is not set: the PostgreSQL backend needs the deployment's master key \
             (64 hex digits, the same on every node; e.g. `openssl rand -hex 32`, or the content \
             of master.key of the data directory you migrated from)"
        ))),
    }
}

/// Opens the backend with options from the environment (see [`PostgresOptions::from_env`]).
pub async fn open(database_url: &str, redis_url: &str) -> Result<Backend, StoreError> {
    PostgresOptions::from_env(database_url, redis_url)?
        .open()
        .await
}

fn pg_config(options: &PostgresOptions) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = options.database_url.parse().map_err(|e| {
        StoreError::Invalid(format!(
            "invalid PostgreSQL URL {}: {e}",
            redact_url(&options.database_url)
        ))
    })?;
    if let Some(schema) = &options.schema {
        validate_schema_name(schema)?;
        let mut opts = config.get_options().unwrap_or("").to_string();
        if !opts.is_empty() {
            opts.push(' ');
        }
        opts.push_str(&format!("-c search_path={schema}"));
        config.options(opts);
    }
    if config.get_application_name().is_none() {
        config.application_name("cardcheck");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.request_timeout.max(Duration::from_secs(1)));
    }
    // A peer that vanished without a FIN is noticed by the keep-alive.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    Ok(config)
}

fn describe(config: &tokio_postgres::Config, options: &PostgresOptions) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{host}:{port}/{}{} + {}",
        config.get_dbname().unwrap_or(""),
        options
            .schema
            .as_ref()
            .map(|s| format!(" (schema {s})"))
            .unwrap_or_default(),
        redact_url(&options.redis_url)
    )
}

struct LedgerJob {
    entry: LedgerEntry,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The PostgreSQL half of the backend.
pub struct PgStore {
    pub(crate) pool: Pool,
    pub(crate) key: MasterKey,
    pub(crate) request_timeout: Duration,
    pub(crate) admin_timeout: Duration,
    deployment_id: String,
    description: String,
    ledger_tx: Mutex<Option<mpsc::Sender<LedgerJob>>>,
    ledger_stats: Arc<LedgerWriterStats>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PgStore {
    async fn open(options: &PostgresOptions, key: MasterKey) -> Result<Self, StoreError> {
        let config = pg_config(options)?;
        let description = describe(&config, options);
        let deadline = options.admin_timeout;

        // Migrations on a connection of their own, outside the pool.
        within(deadline, "PostgreSQL migration", async {
            let (mut client, connection) = config.connect(NoTls).await.map_err(|e| {
                StoreError::Database(format!(
                    "cannot connect to {}: {}",
                    redact_url(&options.database_url),
                    pg_message(&e)
                ))
            })?;
            let conn_task = tokio::spawn(connection);
            let out = schema::migrate(&mut client, options.schema.as_deref()).await;
            drop(client);
            let _ = conn_task.await;
            out
        })
        .await?;

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.request_timeout))
            .create_timeout(Some(options.request_timeout.max(Duration::from_secs(1))))
            .recycle_timeout(Some(options.request_timeout))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))?;

        let store_meta = |name: &'static str, value: Vec<u8>| {
            let pool = pool.clone();
            async move {
                let client = pool.get().await.map_err(pool_err)?;
                client
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[&name, &value],
                    )
                    .await
                    .map_err(pg_err)?;
                let row = client
                    .query_one("SELECT value FROM meta WHERE key = $1", &[&name])
                    .await
                    .map_err(pg_err)?;
                Ok::<Vec<u8>, StoreError>(row.get(0))
            }
        };
        // Whoever comes first stores the check value; everyone compares with it.
        let stored_check = within(
            deadline,
            "PostgreSQL meta",
            store_meta("master_key_check", key.check_value().to_vec()),
        )
        .await?;
        if !bool::from(stored_check.as_slice().ct_eq(&key.check_value())) {
            return Err(StoreError::MasterKeyMismatch);
        }
        let deployment_id = within(
            deadline,
            "PostgreSQL meta",
            store_meta(
                "deployment_id",
                random_alphanumeric(16).to_ascii_lowercase().into_bytes(),
            ),
        )
        .await?;
        let deployment_id = String::from_utf8(deployment_id)
            .ok()
            .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| StoreError::Corrupt("meta deployment_id".into()))?;

        let (ledger_tx, ledger_rx) = mpsc::channel(LEDGER_QUEUE);
        let ledger_stats = Arc::new(LedgerWriterStats::default());
        tokio::spawn(run_ledger_writer(
            pool.clone(),
            ledger_rx,
            options.request_timeout,
            Arc::clone(&ledger_stats),
        ));
        Ok(PgStore {
            pool,
            key,
            request_timeout: options.request_timeout,
            admin_timeout: options.admin_timeout,
            deployment_id,
            description,
            ledger_tx: Mutex::new(Some(ledger_tx)),
            ledger_stats,
        })
    }

    /// The random id of this database's deployment (the default Redis prefix).
    pub fn deployment_id(&self) -> &str {
        &self.deployment_id
    }

    /// Bundles this store with its Redis half as a [`Backend`].
    pub(crate) fn into_backend(self: Arc<Self>, redis: Arc<RedisState>) -> Backend {
        let closer = Arc::clone(&self);
        Backend {
            accounts: self.clone(),
            registry: self.clone(),
            attempts: redis.clone(),
            ledger: self.clone(),
            keys: self.clone(),
            limiter: redis.clone(),
            replays: redis,
            audit: self.clone(),
            description: self.description.clone(),
            closer: Arc::new(move || closer.close()),
        }
    }

    /// Stops the ledger writer (rows already queued are still written) and closes
    /// the pool once idle. Idempotent.
    pub fn close(&self) {
        drop(lock(&self.ledger_tx).take());
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn read_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        within(self.request_timeout, "PostgreSQL account", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT name, status, qps, daily_attempts, created_at FROM accounts WHERE name = $1",
                )
                .await
                .map_err(pg_err)?;
            let row = client.query_opt(&stmt, &[&name]).await.map_err(pg_err)?;
            row.map(|r| account_from_row(&r)).transpose()
        })
        .await
    }
}

fn u32_column(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range")))
}

fn account_from_row(row: &tokio_postgres::Row) -> Result<Account, StoreError> {
    let status: String = row.get(1);
    Ok(Account {
        name: row.get(0),
        status: AccountStatus::parse(&status).unwrap_or(AccountStatus::ChargeException),
        qps: u32_column(row.get(2), "qps")?,
        daily_attempts: u32_column(row.get(3), "daily_attempts")?,
        created_at: row.get(4),
    })
}

/// The ledger writer: waits for one row, takes whatever else is queued, inserts all of
/// it in one statement (one commit), then answers every waiting `append`.
async fn run_ledger_writer(
    pool: Pool,
    mut rx: mpsc::Receiver<LedgerJob>,
    deadline: Duration,
    stats: Arc<LedgerWriterStats>,
) {
    let mut batch = Vec::with_capacity(LEDGER_BATCH_MAX);
    while rx.recv_many(&mut batch, LEDGER_BATCH_MAX).await > 0 {
        let started = std::time::Instant::now();
        let entries: Vec<&LedgerEntry> = batch.iter().map(|j| &j.entry).collect();
        let outcome = within(
            deadline,
            "PostgreSQL ledger",
            insert_ledger(&pool, &entries),
        )
        .await
        .map(|_| ());
        match &outcome {
            Ok(()) => stats.committed(batch.len(), started.elapsed().as_secs_f64()),
            Err(e) => {
                stats.failed();
                tracing::error!(error = %e, rows = batch.len(), "ledger rows were not committed");
            }
        }
        for job in batch.drain(..) {
            let _ = job.reply.send(match &outcome {
                Ok(()) => Ok(()),
                Err(StoreError::Database(message)) => Err(StoreError::Database(message.clone())),
                Err(other) => Err(StoreError::Database(other.to_string())),
            });
        }
    }
}

/// Inserts ledger rows in one statement (arrays unnested server-side); a RequestId
/// already present is not a second row.
pub(crate) async fn insert_ledger(
    pool: &Pool,
    entries: &[&LedgerEntry],
) -> Result<u64, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO ledger (request_id, account, secret_id, action, result, billed, \
             masked_card, latency_us, ts_ms, day) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], \
             $6::bool[], $7::text[], $8::int8[], $9::int8[], $10::int4[]) \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .await
        .map_err(pg_err)?;
    let request_ids: Vec<&str> = entries.iter().map(|e| e.request_id.as_str()).collect();
    let accounts: Vec<&str> = entries.iter().map(|e| e.account.as_str()).collect();
    let secret_ids: Vec<&str> = entries.iter().map(|e| e.secret_id.as_str()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    let results: Vec<i32> = entries.iter().map(|e| e.result.code()).collect();
    let billed: Vec<bool> = entries.iter().map(|e| e.result.billed()).collect();
    let masked: Vec<Option<&str>> = entries.iter().map(|e| e.masked_card.as_deref()).collect();
    let latency: Vec<i64> = entries
        .iter()
        .map(|e| i64::try_from(e.latency_us).unwrap_or(i64::MAX))
        .collect();
    let ts: Vec<i64> = entries.iter().map(|e| e.ts_ms).collect();
    let days: Vec<i32> = entries.iter().map(|e| e.day).collect();
    client
        .execute(
            &stmt,
            &[
                &request_ids,
                &accounts,
                &secret_ids,
                &actions,
                &results,
                &billed,
                &masked,
                &latency,
                &ts,
                &days,
            ],
        )
        .await
        .map_err(pg_err)
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        validate_account_name(name)?;
        let account = Account {
            name: name.to_string(),
            status: AccountStatus::Active,
            qps: DEFAULT_QPS,
            daily_attempts: DEFAULT_DAILY_ATTEMPTS,
            created_at: now_unix(),
        };
        let inserted = within(self.admin_timeout, "PostgreSQL create account", async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO accounts (name, status, qps, daily_attempts, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    &[
                        &account.name,
                        &account.status.as_str(),
                        &i64::from(account.qps),
                        &i64::from(account.daily_attempts),
                        &account.created_at,
                    ],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("account {name}")));
        }
        Ok(account)
    }

    async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read_account(name).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        within(self.admin_timeout, "PostgreSQL list accounts", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT name, status, qps, daily_attempts, created_at FROM accounts \
                     ORDER BY name COLLATE \"C\"",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(account_from_row).collect()
        })
        .await
    }

    async fn update_account(
        &self,
        name: &str,
        update: &AccountUpdate,
    ) -> Result<Account, StoreError> {
        let row = within(self.admin_timeout, "PostgreSQL update account", async {
            let client = self.client().await?;
            client
                .query_opt(
                    "UPDATE accounts SET status = coalesce($2, status), qps = coalesce($3, qps), \
                     daily_attempts = coalesce($4, daily_attempts) WHERE name = $1 \
                     RETURNING name, status, qps, daily_attempts, created_at",
                    &[
                        &name,
                        &update.status.map(|s| s.as_str()),
                        &update.qps.map(i64::from),
                        &update.daily_attempts.map(i64::from),
                    ],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        match row {
            Some(row) => account_from_row(&row),
            None => Err(StoreError::NotFound(format!("account {name}"))),
        }
    }

    async fn create_credential(
        &self,
        account: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<IssuedCredential, StoreError> {
        let new = NewCredential::generate(&self.key, ttl_seconds)?;
        let token_hash = new.token_sha256.map(|h| h.to_vec());
        within(self.admin_timeout, "PostgreSQL create credential", async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO credentials (secret_id, account, secret_key_enc, kind, \
                     token_sha256, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &new.secret_id,
                        &account,
                        &new.sealed,
                        &new.kind.as_str(),
                        &token_hash,
                        &new.expires_at,
                        &now_unix(),
                    ],
                )
                .await
                .map_err(|e| {
                    if is_fk_violation(&e) {
                        StoreError::NotFound(format!("account {account}"))
                    } else if is_unique_violation(&e) {
                        StoreError::Conflict("credential".into())
                    } else {
                        pg_err(e)
                    }
                })
        })
        .await?;
        Ok(new.issued(account))
    }

    async fn credential(&self, secret_id: &str) -> Result<Option<Credential>, StoreError> {
        let row = within(self.request_timeout, "PostgreSQL credential", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT account, secret_key_enc, kind, token_sha256, expires_at, revoked_at, \
                     created_at FROM credentials WHERE secret_id = $1",
                )
                .await
                .map_err(pg_err)?;
            client.query_opt(&stmt, &[&secret_id]).await.map_err(pg_err)
        })
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.get(1);
        let plain = self.key.open_secret(secret_id, &sealed)?;
        let secret_key = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("credential {secret_id}")))?;
        let kind: String = row.get(2);
        let token: Option<Vec<u8>> = row.get(3);
        Ok(Some(Credential {
            secret_id: secret_id.to_string(),
            secret_key: Zeroizing::new(secret_key),
            account: row.get(0),
            kind: CredentialKind::from_word(&kind),
            token_sha256: token.and_then(|t| <[u8; 32]>::try_from(t.as_slice()).ok()),
            expires_at: row.get(4),
            revoked_at: row.get(5),
            created_at: row.get(6),
        }))
    }

    async fn revoke_credential(&self, secret_id: &str) -> Result<bool, StoreError> {
        let changed = within(self.admin_timeout, "PostgreSQL revoke", async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE credentials SET revoked_at = coalesce(revoked_at, $2) WHERE secret_id = $1",
                    &[&secret_id, &now_unix()],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        Ok(changed > 0)
    }

    async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>, StoreError> {
        let rows = within(self.admin_timeout, "PostgreSQL list credentials", async {
            let client = self.client().await?;
            client
                .query(
                    "SELECT secret_id, account, kind, expires_at, revoked_at, created_at \
                     FROM credentials WHERE account = $1 ORDER BY created_at, secret_id COLLATE \"C\"",
                    &[&account],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind: String = r.get(2);
                Credential {
                    secret_id: r.get(0),
                    secret_key: Zeroizing::new(String::new()),
                    account: r.get(1),
                    kind: CredentialKind::from_word(&kind),
                    token_sha256: None,
                    expires_at: r.get(3),
                    revoked_at: r.get(4),
                    created_at: r.get(5),
                }
            })
            .collect())
    }
}

#[async_trait]
impl Source for PgStore {
    async fn lookup(
        &self,
        card: &CardNumber,
        name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        let card_hash = self.key.card_hash(card.digits());
        let row = within(self.request_timeout, "registry", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT name_hash, status FROM registry WHERE card_hash = $1")
                .await
                .map_err(pg_err)?;
            client
                .query_opt(&stmt, &[&card_hash.as_slice()])
                .await
                .map_err(pg_err)
        })
        .await
        .map_err(|e| SourceUnavailable::new(format!("registry: {e}")))?;
        let Some(row) = row else {
            return Ok(SourceAnswer::UnknownCard);
        };
        let stored_name: Vec<u8> = row.get(0);
        let status: String = row.get(1);
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

/// One registry row as stored (keyed hashes, masked card, status word).
pub(crate) struct RawRegistryRow {
    pub card_hash: Vec<u8>,
    pub name_hash: Vec<u8>,
    pub masked: String,
    pub status: String,
    pub updated_at: i64,
}

/// Streams rows into a temporary table with binary COPY and merges them into
/// `registry` in one statement. With `replace`, existing cards are updated; without,
/// they are kept. Returns (inserted, updated).
pub(crate) async fn copy_registry_rows(
    client: &mut deadpool_postgres::Object,
    rows: &[RawRegistryRow],
    replace: bool,
) -> Result<(u64, u64), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TEMPORARY TABLE registry_import (card_hash bytea NOT NULL, name_hash bytea NOT NULL, \
         masked text NOT NULL, status text NOT NULL, updated_at bigint NOT NULL) ON COMMIT DROP",
    )
    .await
    .map_err(pg_err)?;
    let sink = tx
        .copy_in("COPY registry_import FROM STDIN (FORMAT binary)")
        .await
        .map_err(pg_err)?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::BYTEA, Type::BYTEA, Type::TEXT, Type::TEXT, Type::INT8],
    );
    tokio::pin!(writer);
    for r in rows {
        let values: [&(dyn ToSql + Sync); 5] = [
            &r.card_hash,
            &r.name_hash,
            &r.masked,
            &r.status,
            &r.updated_at,
        ];
        writer.as_mut().write(&values).await.map_err(pg_err)?;
    }
    writer.finish().await.map_err(pg_err)?;
    let conflict = if replace {
        "DO UPDATE SET name_hash = excluded.name_hash, masked = excluded.masked, \
         status = excluded.status, updated_at = excluded.updated_at"
    } else {
        "DO NOTHING"
    };
    let row = tx
        .query_one(
            &format!(
                "WITH merged AS (INSERT INTO registry (card_hash, name_hash, masked, status, updated_at) \
                 SELECT card_hash, name_hash, masked, status, updated_at FROM registry_import \
                 ON CONFLICT (card_hash) {conflict} RETURNING (xmax = 0) AS inserted) \
                 SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
            ),
            &[],
        )
        .await
        .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    let inserted: i64 = row.get(0);
    let updated: i64 = row.get(1);
    Ok((inserted as u64, updated as u64))
}

#[async_trait]
impl RegistryStore for PgStore {
    async fn upsert(&self, records: &[RegistryRecord]) -> Result<UpsertCounts, StoreError> {
        let now = now_unix();
        // One row per card (the last record wins, as a sequential upsert would);
        // earlier duplicates count as updates of the card's record.
        let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(records.len());
        let mut rows: Vec<RawRegistryRow> = Vec::with_capacity(records.len());
        let mut duplicates = 0u64;
        for r in records {
            let row = RawRegistryRow {
                card_hash: self.key.card_hash(r.card.digits()).to_vec(),
                name_hash: self.key.name_hash(r.name.comparison_key()).to_vec(),
                masked: r.card.masked(),
                status: r.status.as_word().to_string(),
                updated_at: now,
            };
            match index.get(&row.card_hash) {
                Some(&i) => {
                    duplicates += 1;
                    rows[i] = row;
                }
                None => {
                    index.insert(row.card_hash.clone(), rows.len());
                    rows.push(row);
                }
            }
        }
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let (inserted, updated) = within(self.admin_timeout, "PostgreSQL registry import", async {
            let mut client = self.client().await?;
            copy_registry_rows(&mut client, &rows, true).await
        })
        .await?;
        Ok(UpsertCounts {
            inserted,
            updated: updated + duplicates,
        })
    }

    async fn stats(&self) -> Result<RegistryStats, StoreError> {
        within(self.admin_timeout, "PostgreSQL registry stats", async {
            let client = self.client().await?;
            let by_status: Vec<(String, u64)> = client
                .query(
                    "SELECT status COLLATE \"C\" AS s, count(*) FROM registry GROUP BY s ORDER BY s",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect();
            let by_bin6: Vec<(String, u64)> = client
                .query(
                    "SELECT substr(masked, 1, 6) COLLATE \"C\" AS bin, count(*) FROM registry \
                     GROUP BY bin ORDER BY bin",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect();
            let bytes: i64 = client
                .query_one("SELECT pg_total_relation_size('registry')", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            Ok(RegistryStats {
                total: by_status.iter().map(|(_, n)| n).sum(),
                by_status,
                by_bin6,
                bytes: u64::try_from(bytes).ok(),
            })
        })
        .await
    }
}

#[async_trait]
impl Ledger for PgStore {
    async fn append(&self, entry: LedgerEntry) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let sender = lock(&self.ledger_tx).clone();
        let Some(sender) = sender else {
            return Err(StoreError::Database("the store is closed".into()));
        };
        sender
            .try_send(LedgerJob { entry, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Database("the ledger queue is full (PostgreSQL too slow)".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Database("the ledger writer has stopped".into())
                }
            })?;
        // The writer bounds its own insert by the deadline; the margin covers the wait
        // for the batch ahead of ours.
        match tokio::time::timeout(self.request_timeout * 2, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Database("the ledger writer has stopped".into())),
            Err(_) => Err(StoreError::Database(format!(
                "PostgreSQL ledger: no commit within {} ms",
                (self.request_timeout * 2).as_millis()
            ))),
        }
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        within(self.admin_timeout, "PostgreSQL usage", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT account, day, result, billed, count(*) FROM ledger \
                     WHERE ($1::text IS NULL OR account = $1) AND ($2::int4 IS NULL OR day >= $2) \
                     AND ($3::int4 IS NULL OR day <= $3) \
                     GROUP BY account, day, result, billed \
                     ORDER BY account COLLATE \"C\", day, result DESC",
                    &[&filter.account, &filter.from_day, &filter.to_day],
                )
                .await
                .map_err(pg_err)?;
            Ok(rows
                .iter()
                .map(|r| UsageRow {
                    account: r.get(0),
                    day: r.get(1),
                    result: r.get(2),
                    billed: r.get(3),
                    count: r.get::<_, i64>(4) as u64,
                })
                .collect())
        })
        .await
    }

    async fn count_request(&self, request_id: &str) -> Result<u64, StoreError> {
        within(self.request_timeout, "PostgreSQL ledger count", async {
            let client = self.client().await?;
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM ledger WHERE request_id = $1",
                    &[&request_id],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            Ok(n as u64)
        })
        .await
    }

    fn ledger_stats(&self) -> LedgerStats {
        self.ledger_stats.snapshot()
    }
}

#[async_trait]
impl ServerKeyStore for PgStore {
    async fn load_server_keys(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let sealed: Option<Vec<u8>> = within(self.admin_timeout, "PostgreSQL server keys", async {
            let client = self.client().await?;
            Ok(client
                .query_opt("SELECT blob FROM server_keys WHERE id = 1", &[])
                .await
                .map_err(pg_err)?
                .map(|r| r.get(0)))
        })
        .await?;
        sealed
            .map(|s| self.key.open_secret("server-keys", &s))
            .transpose()
    }

    async fn save_server_keys(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let sealed = self.key.seal_secret("server-keys", bytes);
        within(self.admin_timeout, "PostgreSQL server keys", async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO server_keys (id, blob) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET blob = excluded.blob",
                    &[&sealed],
                )
                .await
                .map_err(pg_err)?;
            Ok(())
        })
        .await
    }

    async fn save_server_keys_if_absent(&self, bytes: &[u8]) -> Result<bool, StoreError> {
        let sealed = self.key.seal_secret("server-keys", bytes);
        within(self.admin_timeout, "PostgreSQL server keys", async {
            let client = self.client().await?;
            let inserted = client
                .execute(
                    "INSERT INTO server_keys (id, blob) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                    &[&sealed],
                )
                .await
                .map_err(pg_err)?;
            Ok(inserted == 1)
        })
        .await
    }
}

/// Drops `schema` and everything in it (tests, or removing a deployment that was
/// given its own schema). The name is validated, never quoted from input.
pub async fn drop_schema(database_url: &str, schema: &str) -> Result<(), StoreError> {
    validate_schema_name(schema)?;
    let config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| StoreError::Invalid(format!("invalid PostgreSQL URL: {e}")))?;
    within(Duration::from_secs(30), "PostgreSQL drop schema", async {
        let (client, connection) = config.connect(NoTls).await.map_err(pg_err)?;
        let task = tokio::spawn(connection);
        let out = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .map_err(pg_err);
        drop(client);
        let _ = task.await;
        out
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://user:secret@db.example:5432/cc?password=x"),
            "postgres://db.example:5432/cc"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/2"),
            "redis://127.0.0.1:6379/2"
        );
        assert_eq!(redact_url("redis://127.0.0.1"), "redis://127.0.0.1");
        assert_eq!(redact_url("host=x"), "(unparsed URL)");
    }

    #[test]
    fn schema_goes_into_the_connection_options() {
        let mut options = PostgresOptions::new(
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20work_mem%3D4MB",
            "redis://127.0.0.1/",
        );
        options.schema = Some("cc_x".into());
        let config = pg_config(&options).unwrap();
        assert_eq!(
            config.get_options(),
            Some("-c work_mem=4MB -c search_path=cc_x")
        );
        options.schema = Some("bad-name".into());
        assert!(pg_config(&options).is_err());
    }
}
