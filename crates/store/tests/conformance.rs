#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! One conformance suite for both backends (issue 8): every check in [`conformance!`]
//! runs once against the embedded SQLite store (a temporary data directory) and once
//! against PostgreSQL + Redis (a fresh schema and a fresh Redis key prefix per test,
//! both removed afterwards). PostgreSQL-only checks follow: several nodes sharing one
//! state, concurrent first starts, and dependency failures (a TCP proxy that the test
//! cuts and restores).
//!
//! Services: `CARDCHECK_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `CARDCHECK_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/`). When they are unreachable the PostgreSQL tests fail with
//! a message saying how to start them; they never skip silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cardcheck_domain::{
    AttemptDecision, CardNumber, CardStatus, CardholderName, ResultCode, SourceAnswer,
};
use cardcheck_store::audit::{AuditEntry, AuditEvent, AuditFilter, verify_log};
use cardcheck_store::postgres::PostgresOptions;
use cardcheck_store::{
    AccountStatus, AccountUpdate, Backend, LedgerEntry, MasterKey, RegistryRecord, ReplayBegin,
    StoreError, UsageFilter, UsageRow,
};

const CARD: &str = "6225768888888888";

fn database_url() -> String {
    std::env::var("CARDCHECK_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("CARDCHECK_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}

fn services_missing(what: &str, err: &dyn std::fmt::Display) -> ! {
    panic!(
        "{what} is not reachable ({err}). These tests need PostgreSQL and Redis: start them \
         (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
         `redis-server --daemonize yes --port 6379 --save ''`, or `scripts/test.sh`, which \
         starts both) or point CARDCHECK_TEST_DATABASE_URL / CARDCHECK_TEST_REDIS_URL at \
         running servers."
    )
}

/// A backend under test and what is needed to reopen it or look at its storage.
struct Harness {
    backend: Backend,
    kind: Kind,
}

enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres {
        schema: String,
        prefix: String,
        key: MasterKey,
    },
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let backend = cardcheck_store::open_sqlite(dir.path()).unwrap();
        Harness {
            backend,
            kind: Kind::Sqlite(dir),
        }
    }

    async fn postgres() -> Harness {
        let schema = format!("cc_test_{}", random_hex(6));
        let prefix = format!("cardcheck-test:{schema}:");
        let (key, _) = MasterKey::generate();
        let harness = Harness {
            backend: open_pg(&schema, &prefix, key.clone())
                .await
                .unwrap_or_else(|e| services_missing("PostgreSQL", &e)),
            kind: Kind::Postgres {
                schema,
                prefix,
                key,
            },
        };
        // Fail now, with the hint, when Redis is not there.
        if let Err(e) = harness.backend.limiter.acquire("probe", 1, 1).await {
            services_missing("Redis", &e);
        }
        harness
    }

    fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    /// Another handle on the same state: a restarted node (SQLite), or a second node
    /// (PostgreSQL + Redis).
    async fn reopen(&self) -> Result<Backend, StoreError> {
        match &self.kind {
            Kind::Sqlite(dir) => cardcheck_store::open_sqlite(dir.path()),
            Kind::Postgres {
                schema,
                prefix,
                key,
            } => open_pg(schema, prefix, key.clone()).await,
        }
    }

    /// Reopens with another master key.
    async fn reopen_with_wrong_key(&self) -> Result<Backend, StoreError> {
        let (other, hex_digits) = MasterKey::generate();
        match &self.kind {
            Kind::Sqlite(dir) => {
                self.backend.close();
                std::fs::write(dir.path().join("master.key"), hex_digits.as_bytes()).unwrap();
                cardcheck_store::open_sqlite(dir.path())
            }
            Kind::Postgres { schema, prefix, .. } => open_pg(schema, prefix, other).await,
        }
    }

    /// Everything the backend stored, as bytes, for "no plain text" checks.
    async fn stored_bytes(&self) -> Vec<u8> {
        match &self.kind {
            Kind::Sqlite(dir) => {
                self.backend.close();
                let mut out = Vec::new();
                for f in std::fs::read_dir(dir.path()).unwrap() {
                    out.extend(std::fs::read(f.unwrap().path()).unwrap());
                }
                out
            }
            Kind::Postgres { schema, .. } => {
                let client = pg_client().await;
                let mut out = Vec::new();
                let tables = client
                    .query(
                        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                        &[schema],
                    )
                    .await
                    .unwrap();
                for t in tables {
                    let table: String = t.get(0);
                    let row = client
                        .query_one(
                            &format!(
                                "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{schema}\".\"{table}\" t"
                            ),
                            &[],
                        )
                        .await
                        .unwrap();
                    out.extend(row.get::<_, String>(0).into_bytes());
                }
                out
            }
        }
    }
}

impl Harness {
    /// Runs SQL on the backend's storage directly, beside the store (as an operator
    /// with a database shell would): the SQLite file through its own connection, the
    /// PostgreSQL schema through a client of its own. The error is the database's
    /// message.
    async fn raw_sql(&self, sql: &str) -> Result<(), String> {
        match &self.kind {
            Kind::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(
                    dir.path().join(cardcheck_store::sqlite::DATABASE_FILE),
                )
                .unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Kind::Postgres { schema, .. } => {
                let client = pg_client().await;
                client
                    .batch_execute(&format!("SET search_path TO \"{schema}\""))
                    .await
                    .unwrap();
                client.batch_execute(sql).await.map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string())
                })
            }
        }
    }

    /// Removes the audit table's append-only triggers (a tampering test's first step).
    async fn drop_audit_triggers(&self) {
        let sql = if self.is_postgres() {
            "DROP TRIGGER audit_no_update_or_delete ON audit; \
             DROP TRIGGER audit_append_in_sequence ON audit;"
        } else {
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; \
             DROP TRIGGER audit_append_in_sequence;"
        };
        self.raw_sql(sql).await.unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.backend.close();
        if let Kind::Postgres { schema, prefix, .. } = &self.kind {
            let (schema, prefix) = (schema.clone(), prefix.clone());
            // Drop runs inside the test's runtime: clean up from a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let _ = cardcheck_store::postgres::drop_schema(&database_url(), &schema).await;
                    let _ =
                        cardcheck_store::redis_state::delete_prefix(&redis_url(), &prefix).await;
                });
            })
            .join();
        }
    }
}

async fn open_pg(schema: &str, prefix: &str, key: MasterKey) -> Result<Backend, StoreError> {
    let mut options = PostgresOptions::new(&database_url(), &redis_url());
    options.schema = Some(schema.to_string());
    options.redis_prefix = Some(prefix.to_string());
    options.master_key = Some(key);
    options.pool_size = 4;
    options.open().await
}

async fn pg_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| services_missing("PostgreSQL", &e));
    tokio::spawn(connection);
    client
}

fn record(name: &str, card: &str, status: CardStatus) -> RegistryRecord {
    RegistryRecord {
        card: CardNumber::parse(card).unwrap(),
        name: CardholderName::parse(name).unwrap(),
        status,
    }
}

fn entry(request_id: &str, account: &str, result: ResultCode, day: i32) -> LedgerEntry {
    LedgerEntry {
        request_id: request_id.into(),
        account: account.into(),
        secret_id: "AKIDx".into(),
        action: "BankCard2EVerification".into(),
        result,
        masked_card: Some("622576******8888".into()),
        latency_us: 10,
        ts_ms: 1_700_000_000_000,
        day,
        attempted_card: None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- the checks

async fn accounts_credentials_and_tokens(h: &Harness) {
    let accounts = &h.backend.accounts;
    assert!(accounts.list_accounts().await.unwrap().is_empty());
    let created = accounts.create_account("acme").await.unwrap();
    assert_eq!(
        (created.status, created.qps, created.daily_attempts),
        (AccountStatus::Active, 20, 10)
    );
    assert!(matches!(
        accounts.create_account("acme").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        accounts.create_account("bad name").await,
        Err(StoreError::Invalid(_))
    ));
    accounts.create_account("Beta").await.unwrap();
    accounts.create_account("alpha").await.unwrap();
    let names: Vec<String> = accounts
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names,
        ["Beta", "acme", "alpha"],
        "byte order, as SQLite sorts"
    );
    assert!(matches!(
        accounts.create_credential("nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        accounts.create_credential("acme", Some(0)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        accounts
            .update_account("nobody", &AccountUpdate::default())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let updated = accounts
        .update_account(
            "acme",
            &AccountUpdate {
                status: Some(AccountStatus::Arrears),
                qps: Some(5),
                daily_attempts: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.status, updated.qps, updated.daily_attempts),
        (AccountStatus::Arrears, 5, 10)
    );
    let big = accounts
        .update_account(
            "acme",
            &AccountUpdate {
                status: Some(AccountStatus::ChargeException),
                qps: Some(u32::MAX),
                daily_attempts: Some(0),
            },
        )
        .await
        .unwrap();
    assert_eq!(accounts.account("acme").await.unwrap(), Some(big));
    assert_eq!(accounts.account("nobody").await.unwrap(), None);
    assert_eq!(accounts.account("").await.unwrap(), None);

    let permanent = accounts.create_credential("acme", None).await.unwrap();
    assert!(permanent.secret_id.starts_with("AKID") && permanent.secret_id.len() == 36);
    assert_eq!(permanent.secret_key.len(), 32);
    assert!(permanent.token.is_none() && permanent.expires_at.is_none());
    let stored = accounts
        .credential(&permanent.secret_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret_key.as_str(), permanent.secret_key);
    assert_eq!(stored.account, "acme");
    assert_eq!(stored.kind, cardcheck_store::CredentialKind::Permanent);
    assert!(stored.revoked_at.is_none() && stored.token_sha256.is_none());

    let temp = accounts
        .create_credential("acme", Some(3600))
        .await
        .unwrap();
    let token = temp.token.clone().unwrap();
    assert_eq!(token.len(), 96);
    let stored = accounts.credential(&temp.secret_id).await.unwrap().unwrap();
    assert_eq!(stored.kind, cardcheck_store::CredentialKind::Temporary);
    assert_eq!(
        stored.token_sha256,
        Some(cardcheck_store::sqlite::token_sha256(&token))
    );
    assert_eq!(stored.expires_at, temp.expires_at);
    assert!(accounts.revoke_credential(&temp.secret_id).await.unwrap());
    let revoked_at = accounts
        .credential(&temp.secret_id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at;
    assert!(revoked_at.is_some());
    // Revoking again keeps the first time.
    assert!(accounts.revoke_credential(&temp.secret_id).await.unwrap());
    assert_eq!(
        accounts
            .credential(&temp.secret_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        revoked_at
    );
    assert!(!accounts.revoke_credential("AKIDnope").await.unwrap());
    assert!(accounts.credential("AKIDnope").await.unwrap().is_none());
    let listed = accounts.list_credentials("acme").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.secret_key.is_empty()));
    assert!(accounts.list_credentials("Beta").await.unwrap().is_empty());
}

async fn registry_checks_the_name_before_the_status(h: &Harness) {
    let registry = &h.backend.registry;
    let counts = registry
        .upsert(&[
            record("张三", CARD, CardStatus::Lost),
            record("Wei Xiaobao", "6226090210146748", CardStatus::Active),
            record("李四", "4111111111111111", CardStatus::Expired),
        ])
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (3, 0));
    let card = CardNumber::parse(CARD).unwrap();
    let name = |n| CardholderName::parse(n).unwrap();
    assert_eq!(
        registry.lookup(&card, &name("李四")).await.unwrap(),
        SourceAnswer::NameMismatch
    );
    assert_eq!(
        registry.lookup(&card, &name("张 三")).await.unwrap(),
        SourceAnswer::Match(CardStatus::Lost)
    );
    let other = CardNumber::parse("6225760000000001").unwrap();
    assert_eq!(
        registry.lookup(&other, &name("张三")).await.unwrap(),
        SourceAnswer::UnknownCard
    );
    // Replace one card (twice in one batch: the last wins) and add another.
    let counts = registry
        .upsert(&[
            record("张三", CARD, CardStatus::Dormant),
            record("王五", CARD, CardStatus::Active),
            record("赵六", "6225760000000001", CardStatus::Restricted),
        ])
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (1, 2));
    assert_eq!(
        registry.lookup(&card, &name("王五")).await.unwrap(),
        SourceAnswer::Match(CardStatus::Active)
    );
    assert_eq!(
        registry.lookup(&card, &name("张三")).await.unwrap(),
        SourceAnswer::NameMismatch
    );
    assert_eq!(
        registry
            .lookup(
                &CardNumber::parse("6226090210146748").unwrap(),
                &name("WEI  XIAOBAO")
            )
            .await
            .unwrap(),
        SourceAnswer::Match(CardStatus::Active)
    );
    let empty = registry.upsert(&[]).await.unwrap();
    assert_eq!((empty.inserted, empty.updated), (0, 0));
    let stats = registry.stats().await.unwrap();
    assert_eq!(stats.total, 4);
    assert_eq!(
        stats.by_status,
        vec![
            ("active".to_string(), 2),
            ("expired".to_string(), 1),
            ("restricted".to_string(), 1)
        ]
    );
    assert_eq!(
        stats.by_bin6,
        vec![
            ("411111".to_string(), 1),
            ("622576".to_string(), 2),
            ("622609".to_string(), 1)
        ]
    );
    assert!(stats.bytes.unwrap_or(0) > 0);
}

async fn registry_bulk_import(h: &Harness) {
    let mut import = h.backend.registry.begin_import().unwrap();
    let cards: Vec<String> = (0..2500).map(|i| format!("62257600{i:08}")).collect();
    for (i, card) in cards.iter().enumerate() {
        let status = if i % 2 == 0 {
            CardStatus::Active
        } else {
            CardStatus::Lost
        };
        import.push(record("Li Lei", card, status)).unwrap();
    }
    import
        .push(record("Han Meimei", &cards[0], CardStatus::Active))
        .unwrap();
    let counts = import.finish(Box::new(|_| {})).await.unwrap();
    drop(import);
    assert_eq!(counts.inserted, 2500);
    let name = |n| CardholderName::parse(n).unwrap();
    assert_eq!(
        h.backend
            .registry
            .lookup(&CardNumber::parse(&cards[0]).unwrap(), &name("Han Meimei"))
            .await
            .unwrap(),
        SourceAnswer::Match(CardStatus::Active)
    );
    assert_eq!(
        h.backend
            .registry
            .lookup(&CardNumber::parse(&cards[1]).unwrap(), &name("li lei"))
            .await
            .unwrap(),
        SourceAnswer::Match(CardStatus::Lost)
    );
    assert_eq!(h.backend.registry.stats().await.unwrap().total, 2500);
}

/// Registers an attempt as the server does: the request's ledger row carries the card
/// when the attempt counted (the embedded store rebuilds its counts from those rows).
async fn attempt(
    backend: &Backend,
    account: &str,
    card: &CardNumber,
    day: i32,
    limit: u32,
) -> AttemptDecision {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let decision = backend
        .attempts
        .register_attempt(account, card, day, limit)
        .await
        .unwrap();
    let counted = decision == AttemptDecision::Allowed;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let result = if counted {
        ResultCode::Passed
    } else {
        ResultCode::DailyLimitExceeded
    };
    let mut row = entry(
        &format!("attempt-{}-{n}", std::process::id()),
        account,
        result,
        day,
    );
    row.attempted_card = counted.then(|| card.clone());
    backend.ledger.append(row).await.unwrap();
    decision
}

async fn attempts_count_per_account_card_and_day(h: &Harness) {
    let card = CardNumber::parse(CARD).unwrap();
    let attempts = &h.backend;
    for _ in 0..3 {
        assert_eq!(
            attempt(attempts, "acme", &card, 100, 4).await,
            AttemptDecision::Allowed
        );
    }
    // A restarted node (SQLite: from the ledger rows) or another node (PostgreSQL +
    // Redis) sees the counts.
    h.backend.close();
    let again = h.reopen().await.unwrap();
    let attempts = &again;
    assert_eq!(
        attempt(attempts, "acme", &card, 100, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(attempts, "acme", &card, 100, 4).await,
        AttemptDecision::Exceeded
    );
    // Exceeded attempts are not counted: a higher limit allows exactly one more.
    assert_eq!(
        attempt(attempts, "acme", &card, 100, 5).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(attempts, "acme", &card, 100, 5).await,
        AttemptDecision::Exceeded
    );
    assert_eq!(
        attempt(attempts, "other", &card, 100, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(attempts, "acme", &card, 101, 4).await,
        AttemptDecision::Allowed
    );
    let other_card = CardNumber::parse("6225760000000001").unwrap();
    assert_eq!(
        attempt(attempts, "acme", &other_card, 100, 4).await,
        AttemptDecision::Allowed
    );
    // 0 = unlimited.
    assert_eq!(
        attempt(attempts, "acme", &card, 100, 0).await,
        AttemptDecision::Allowed
    );
    // Attempts made while the account was unlimited count once a limit is set.
    for _ in 0..3 {
        assert_eq!(
            attempt(attempts, "later", &card, 300, 0).await,
            AttemptDecision::Allowed
        );
    }
    assert_eq!(
        attempt(attempts, "later", &card, 300, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(attempts, "later", &card, 300, 4).await,
        AttemptDecision::Exceeded
    );
    again.close();
}

async fn attempts_are_atomic_under_concurrency(h: &Harness) {
    let card = CardNumber::parse(CARD).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let attempts = h.backend.attempts.clone();
        let card = card.clone();
        tasks.spawn(async move { attempts.register_attempt("acme", &card, 200, 10).await });
    }
    let mut allowed = 0;
    while let Some(r) = tasks.join_next().await {
        if r.unwrap().unwrap() == AttemptDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}

async fn ledger_usage_counts_per_day_and_result(h: &Harness) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let ledger = h.backend.ledger.clone();
        let result = if i % 5 == 0 {
            ResultCode::InvalidCardFormat
        } else {
            ResultCode::Passed
        };
        let account = if i % 10 == 3 { "beta" } else { "acme" };
        tasks.spawn(async move {
            ledger
                .append(entry(&format!("r{i}"), account, result, 20000 + i % 2))
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let ledger = &h.backend.ledger;
    // A retried append of the same RequestId is not a second row.
    ledger
        .append(entry("r1", "acme", ResultCode::Passed, 20001))
        .await
        .unwrap();
    assert_eq!(ledger.count_request("r1").await.unwrap(), 1);
    assert_eq!(ledger.count_request("nope").await.unwrap(), 0);
    let rows = ledger.usage(&UsageFilter::default()).await.unwrap();
    let row = |account: &str, day, result: ResultCode, count| UsageRow {
        account: account.into(),
        day,
        result: result.code(),
        billed: result.billed(),
        count,
    };
    assert_eq!(
        rows,
        vec![
            row("acme", 20000, ResultCode::Passed, 20),
            row("acme", 20000, ResultCode::InvalidCardFormat, 5),
            row("acme", 20001, ResultCode::Passed, 15),
            row("acme", 20001, ResultCode::InvalidCardFormat, 5),
            row("beta", 20001, ResultCode::Passed, 5),
        ]
    );
    let billed: u64 = rows.iter().filter(|r| r.billed).map(|r| r.count).sum();
    assert_eq!(billed, 40);
    let day_one = ledger
        .usage(&UsageFilter {
            from_day: Some(20001),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(day_one.iter().map(|r| r.count).sum::<u64>(), 25);
    let acme_day_zero = ledger
        .usage(&UsageFilter {
            account: Some("acme".into()),
            from_day: Some(20000),
            to_day: Some(20000),
        })
        .await
        .unwrap();
    assert_eq!(acme_day_zero.iter().map(|r| r.count).sum::<u64>(), 25);
}

/// `/metrics` showed zero ledger commits on PostgreSQL: only the embedded writer
/// counted. Every backend's writer now reports its commits, rows and batch sizes.
async fn ledger_writer_statistics_are_reported_by_every_backend(h: &Harness) {
    let ledger = &h.backend.ledger;
    let before = ledger.ledger_stats();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            ledger
                .append(entry(&format!("s{i}"), "acme", ResultCode::Passed, 20000))
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let after = ledger.ledger_stats();
    let commits = after.commits - before.commits;
    assert_eq!(after.rows - before.rows, 20);
    assert!((1..=20).contains(&commits), "{commits} commits for 20 rows");
    assert_eq!(after.failed_commits, before.failed_commits);
    assert_eq!(after.batch_sizes.count - before.batch_sizes.count, commits);
    assert_eq!(
        after.commit_seconds.count - before.commit_seconds.count,
        commits
    );
    assert!(after.commit_seconds.sum > before.commit_seconds.sum);
}

async fn server_keys_round_trip(h: &Harness) {
    let keys = &h.backend.keys;
    assert!(keys.load_server_keys().await.unwrap().is_none());
    keys.save_server_keys(b"ring one").await.unwrap();
    assert_eq!(
        keys.load_server_keys().await.unwrap().unwrap().as_slice(),
        b"ring one"
    );
    keys.save_server_keys(b"ring two").await.unwrap();
    assert_eq!(
        keys.load_server_keys().await.unwrap().unwrap().as_slice(),
        b"ring two"
    );
}

async fn rate_limiter_allows_the_burst_then_the_rate(h: &Harness) {
    let limiter = &h.backend.limiter;
    let started = Instant::now();
    let mut allowed = 0;
    for _ in 0..60 {
        if limiter.acquire("acme", 20, 20).await.unwrap() {
            allowed += 1;
        }
    }
    let earned = (started.elapsed().as_secs_f64() * 20.0).floor() as usize;
    assert!(
        (20..=20 + earned).contains(&allowed),
        "{allowed} allowed, burst 20 + {earned} earned"
    );
    // Half a second later about ten more have been earned, not more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut refill = 0;
    for _ in 0..60 {
        if limiter.acquire("acme", 20, 20).await.unwrap() {
            refill += 1;
        }
    }
    let earned = (started.elapsed().as_secs_f64() * 20.0).ceil() as usize;
    assert!(
        (9..=11 + earned).contains(&refill),
        "{refill} allowed after 500 ms"
    );
    // Another key is independent; rate 0 allows nothing.
    assert!(limiter.acquire("beta", 20, 20).await.unwrap());
    assert!(!limiter.acquire("gamma", 0, 20).await.unwrap());
    // A burst of 1 at 2/s: one now, none right after.
    assert!(limiter.acquire("delta", 2, 1).await.unwrap());
    assert!(!limiter.acquire("delta", 2, 1).await.unwrap());
}

async fn replay_cache_claims_replays_and_forgets_transient_answers(h: &Harness) {
    let cache = &h.backend.replays;
    let key = [1u8; 32];
    assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::First);
    assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::InFlight);
    cache.finish(&key, None).await.unwrap();
    assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::First);
    // Bodies are bytes: whatever they start with, they come back unchanged.
    let body = b"i\x00d{\"Response\":{}}\xff".to_vec();
    cache.finish(&key, Some(&body)).await.unwrap();
    assert_eq!(cache.begin(&key).await.unwrap(), ReplayBegin::Replay(body));
    let other = [2u8; 32];
    assert_eq!(cache.begin(&other).await.unwrap(), ReplayBegin::First);
    cache.finish(&other, Some(b"")).await.unwrap();
    assert_eq!(
        cache.begin(&other).await.unwrap(),
        ReplayBegin::Replay(Vec::new())
    );
}

async fn state_survives_reopen_and_nothing_secret_is_stored_in_plain_text(h: &Harness) {
    let b = &h.backend;
    b.accounts.create_account("acme").await.unwrap();
    let issued = b.accounts.create_credential("acme", None).await.unwrap();
    b.registry
        .upsert(&[record("Wei Xiaobao", CARD, CardStatus::Active)])
        .await
        .unwrap();
    b.ledger
        .append(entry("r1", "acme", ResultCode::Passed, 20000))
        .await
        .unwrap();
    b.keys
        .save_server_keys(b"key-ring-bytes-secret")
        .await
        .unwrap();
    let stored = h.stored_bytes().await;
    assert!(!stored.is_empty());
    for needle in [
        CARD.as_bytes(),
        issued.secret_key.as_bytes(),
        b"Wei Xiaobao",
        b"wei xiaobao",
        b"key-ring-bytes-secret",
    ] {
        assert!(!contains(&stored, needle), "plain text found in the store");
        assert!(
            !contains(&stored, hex::encode(needle).as_bytes()),
            "hex-encoded plain text found in the store"
        );
    }
    assert!(contains(&stored, b"622576******8888"), "masked card kept");

    b.close();
    let again = h.reopen().await.unwrap();
    let cred = again
        .accounts
        .credential(&issued.secret_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cred.secret_key.as_str(), issued.secret_key);
    let card = CardNumber::parse(CARD).unwrap();
    let name = CardholderName::parse("wei  xiaobao").unwrap();
    assert_eq!(
        again.registry.lookup(&card, &name).await.unwrap(),
        SourceAnswer::Match(CardStatus::Active)
    );
    assert_eq!(again.ledger.count_request("r1").await.unwrap(), 1);
    assert_eq!(
        again
            .keys
            .load_server_keys()
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        b"key-ring-bytes-secret"
    );
    again.close();
}

async fn a_wrong_master_key_is_refused(h: &Harness) {
    h.backend.accounts.create_account("acme").await.unwrap();
    assert!(matches!(
        h.reopen_with_wrong_key().await,
        Err(StoreError::MasterKeyMismatch)
    ));
}

fn audit_event(action: &str, target: &str, detail: &str) -> AuditEvent {
    AuditEvent::new("alice@ops-1", action, target, detail)
}

fn ids(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.id).collect()
}

async fn audit_list(h: &Harness, filter: AuditFilter) -> Vec<u64> {
    ids(&h.backend.audit.list(&filter).await.unwrap())
}

async fn audit_records_lists_and_filters(h: &Harness) {
    let log = &h.backend.audit;
    assert!(log.list(&AuditFilter::default()).await.unwrap().is_empty());
    let empty = verify_log(log.as_ref()).await.unwrap().unwrap();
    assert_eq!((empty.entries, empty.last_id), (0, 0));

    let mut recorded = Vec::new();
    for (action, target, detail) in [
        (
            "account.create",
            "acme",
            "status active, qps 20, daily attempts 10",
        ),
        ("key.create", "AKIDaudit", "account acme, permanent"),
    ] {
        recorded.push(
            log.record(audit_event(action, target, detail))
                .await
                .unwrap(),
        );
        // Each entry its own millisecond: the window checks below tell entries apart
        // by time (two entries in one millisecond made this test fail).
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Later entries get a later millisecond, for the time filters.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for (action, target, detail) in [
        ("account.set", "acme", "status active → arrears"),
        (
            "registry.import",
            "cards.csv",
            "inserted 2, updated 0, rejected 1, 0.1 s",
        ),
    ] {
        recorded.push(
            log.record(audit_event(action, target, detail))
                .await
                .unwrap(),
        );
    }
    assert_eq!(ids(&recorded), [1, 2, 3, 4]);
    assert_eq!(recorded[0].prev_hash, [0u8; 32]);
    for pair in recorded.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[1].ts_ms >= pair[0].ts_ms);
    }
    assert_eq!(recorded[2].event.detail, "status active → arrears");
    assert_eq!(recorded[2].event.actor, "alice@ops-1");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now_ms - recorded[0].ts_ms).abs() < 60_000,
        "times are Unix ms"
    );

    // Everything comes back exactly as recorded, oldest first.
    assert_eq!(log.list(&AuditFilter::default()).await.unwrap(), recorded);

    let prefix = |p: &str| AuditFilter {
        action_prefix: Some(p.into()),
        ..AuditFilter::default()
    };
    assert_eq!(audit_list(h, prefix("account")).await, [1, 3]);
    assert_eq!(audit_list(h, prefix("key.")).await, [2]);
    assert_eq!(audit_list(h, prefix("registry.import")).await, [4]);
    assert!(audit_list(h, prefix("nosuch")).await.is_empty());
    // A prefix is text, not a pattern.
    assert!(audit_list(h, prefix("%")).await.is_empty());
    assert!(audit_list(h, prefix("_ey")).await.is_empty());

    let (t2, t3) = (recorded[1].ts_ms, recorded[2].ts_ms);
    assert!(t3 > t2);
    let window = |since: Option<i64>, until: Option<i64>| AuditFilter {
        since_ms: since,
        until_ms: until,
        ..AuditFilter::default()
    };
    assert_eq!(audit_list(h, window(Some(t3), None)).await, [3, 4]);
    assert_eq!(audit_list(h, window(None, Some(t3))).await, [1, 2]);
    assert_eq!(audit_list(h, window(Some(t2), Some(t3))).await, [2]);
    assert!(
        audit_list(h, window(Some(recorded[3].ts_ms + 1), None))
            .await
            .is_empty()
    );

    let page = |after: Option<u64>, limit: Option<u64>, latest: bool| AuditFilter {
        after_id: after,
        limit,
        latest,
        ..AuditFilter::default()
    };
    assert_eq!(audit_list(h, page(None, Some(2), false)).await, [1, 2]);
    assert_eq!(audit_list(h, page(None, Some(2), true)).await, [3, 4]);
    assert_eq!(audit_list(h, page(Some(2), None, false)).await, [3, 4]);
    assert_eq!(audit_list(h, page(Some(1), Some(1), false)).await, [2]);
    assert!(audit_list(h, page(None, Some(0), false)).await.is_empty());
    let mut newest_account = prefix("account");
    newest_account.limit = Some(1);
    newest_account.latest = true;
    assert_eq!(audit_list(h, newest_account).await, [3]);

    let head = verify_log(log.as_ref()).await.unwrap().unwrap();
    assert_eq!(
        (head.entries, head.last_id, head.head),
        (4, 4, recorded[3].hash)
    );

    // No card number gets in, whatever a caller passes; a bad action word is refused.
    let redacted = log
        .record(audit_event(
            "registry.import",
            "6225768888888888.csv",
            "card 6225 7688 8888 8888",
        ))
        .await
        .unwrap();
    assert_eq!(redacted.event.target, "(redacted).csv");
    assert_eq!(redacted.event.detail, "card (redacted)");
    assert!(matches!(
        log.record(audit_event("Account Create", "x", "")).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        log.record(AuditEvent::new(" ", "key.create", "x", ""))
            .await,
        Err(StoreError::Invalid(_))
    ));
    let stored = h.stored_bytes().await;
    assert!(
        !contains(&stored, CARD.as_bytes()),
        "card number in the store"
    );

    // Another handle (a restarted node, a second node) continues the same chain.
    let again = h.reopen().await.unwrap();
    assert_eq!(
        ids(&again.audit.list(&AuditFilter::default()).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    let sixth = again
        .audit
        .record(audit_event("key.revoke", "AKIDaudit", "account acme"))
        .await
        .unwrap();
    assert_eq!((sixth.id, sixth.prev_hash), (6, redacted.hash));
    let head = verify_log(again.audit.as_ref()).await.unwrap().unwrap();
    assert_eq!((head.entries, head.head), (6, sixth.hash));
    again.close();
}

async fn audit_appends_are_serialised(h: &Harness) {
    // Two handles on one store (two processes, or two nodes) appending at once.
    let other = h.reopen().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let log = if i % 2 == 0 {
            h.backend.audit.clone()
        } else {
            other.audit.clone()
        };
        tasks.spawn(async move {
            log.record(audit_event("key.create", &format!("AKID{i}"), ""))
                .await
                .map(|e| e.id)
        });
    }
    let mut got = Vec::new();
    while let Some(r) = tasks.join_next().await {
        got.push(r.unwrap().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (1..=24).collect::<Vec<u64>>(), "one id each, no fork");
    let head = verify_log(h.backend.audit.as_ref()).await.unwrap().unwrap();
    assert_eq!(head.entries, 24);
    other.close();
}

async fn audit_log_is_append_only(h: &Harness) {
    let log = &h.backend.audit;
    let first = log
        .record(audit_event("account.create", "acme", "status active"))
        .await
        .unwrap();
    log.record(audit_event("key.create", "AKIDaudit", "account acme"))
        .await
        .unwrap();
    let hash_hex = hex::encode(first.hash);
    let mut attempts = vec![
        "UPDATE audit SET detail = 'forged' WHERE id = 1".to_string(),
        "UPDATE audit SET actor = 'mallory'".to_string(),
        "DELETE FROM audit WHERE id = 2".to_string(),
        "DELETE FROM audit".to_string(),
        // Not the next id: a gap, or an existing one.
        format!(
            "INSERT INTO audit (id, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES (9, 0, 'mallory', 'key.revoke', 'x', '', {0}, {0})",
            if h.is_postgres() {
                format!("'\\x{hash_hex}'::bytea")
            } else {
                format!("X'{hash_hex}'")
            }
        ),
    ];
    if h.is_postgres() {
        attempts.push("TRUNCATE audit".into());
        attempts.push(format!(
            "INSERT INTO audit (id, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES (1, 0, 'mallory', 'key.revoke', 'x', '', '\\x{hash_hex}'::bytea, \
             '\\x{hash_hex}'::bytea) ON CONFLICT (id) DO UPDATE SET actor = 'mallory'"
        ));
    } else {
        // REPLACE deletes without firing delete triggers: the insert trigger stops it.
        attempts.push(format!(
            "INSERT OR REPLACE INTO audit (id, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES (1, 0, 'mallory', 'key.revoke', 'x', '', X'{hash_hex}', X'{hash_hex}')"
        ));
    }
    for sql in &attempts {
        let err = h.raw_sql(sql).await.expect_err(sql);
        assert!(err.contains("audit log is append-only"), "{sql}: {err}");
    }
    let entries = log.list(&AuditFilter::default()).await.unwrap();
    assert_eq!(ids(&entries), [1, 2]);
    assert_eq!(entries[0], first);
    assert_eq!(verify_log(log.as_ref()).await.unwrap().unwrap().entries, 2);
}

async fn audit_tampering_is_detected(h: &Harness) {
    let log = &h.backend.audit;
    for i in 1..=4 {
        log.record(audit_event("account.set", "acme", &format!("qps {i}")))
            .await
            .unwrap();
    }
    assert!(verify_log(log.as_ref()).await.unwrap().is_ok());
    h.drop_audit_triggers().await;

    // An edited entry.
    h.raw_sql("UPDATE audit SET detail = 'qps 1000' WHERE id = 2")
        .await
        .unwrap();
    let broken = verify_log(log.as_ref()).await.unwrap().unwrap_err();
    assert_eq!(broken.id, 2, "{broken}");
    h.raw_sql("UPDATE audit SET detail = 'qps 2' WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(verify_log(log.as_ref()).await.unwrap().unwrap().entries, 4);

    // An edited entry whose hash was recomputed: the next one no longer follows.
    h.raw_sql("UPDATE audit SET hash = prev_hash WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(verify_log(log.as_ref()).await.unwrap().unwrap_err().id, 3);
    let original: AuditEntry = log
        .list(&AuditFilter {
            after_id: Some(3),
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .remove(0);
    let restore = if h.is_postgres() {
        format!(
            "UPDATE audit SET hash = '\\x{}'::bytea WHERE id = 3",
            hex::encode(original.prev_hash)
        )
    } else {
        format!(
            "UPDATE audit SET hash = X'{}' WHERE id = 3",
            hex::encode(original.prev_hash)
        )
    };
    h.raw_sql(&restore).await.unwrap();
    assert!(verify_log(log.as_ref()).await.unwrap().is_ok());

    // A deleted entry.
    h.raw_sql("DELETE FROM audit WHERE id = 3").await.unwrap();
    let broken = verify_log(log.as_ref()).await.unwrap().unwrap_err();
    assert_eq!(broken.id, 4, "{broken}");
    assert!(broken.reason.contains("missing"), "{broken}");

    // The log still takes new entries (after the last one stored).
    let next = log
        .record(audit_event("key.revoke", "AKIDx", ""))
        .await
        .unwrap();
    assert_eq!(next.id, 5);
    assert_eq!(verify_log(log.as_ref()).await.unwrap().unwrap_err().id, 4);
}

/// Runs each check against both backends.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let h = super::Harness::sqlite().await;
                    super::$check(&h).await;
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $check() {
                    let h = super::Harness::postgres().await;
                    assert!(h.is_postgres());
                    super::$check(&h).await;
                }
            )*
        }
    };
}

conformance!(
    accounts_credentials_and_tokens,
    registry_checks_the_name_before_the_status,
    registry_bulk_import,
    attempts_count_per_account_card_and_day,
    attempts_are_atomic_under_concurrency,
    ledger_usage_counts_per_day_and_result,
    ledger_writer_statistics_are_reported_by_every_backend,
    server_keys_round_trip,
    rate_limiter_allows_the_burst_then_the_rate,
    replay_cache_claims_replays_and_forgets_transient_answers,
    state_survives_reopen_and_nothing_secret_is_stored_in_plain_text,
    a_wrong_master_key_is_refused,
    audit_records_lists_and_filters,
    audit_appends_are_serialised,
    audit_log_is_append_only,
    audit_tampering_is_detected,
);

// ---------------------------------------------------------------- PostgreSQL + Redis only

#[tokio::test]
async fn nodes_share_one_rate_limit_one_attempt_count_and_one_replay_cache() {
    let h = Harness::postgres().await;
    let a = &h.backend;
    let b = h.reopen().await.unwrap();
    let mut allowed = 0;
    for i in 0..40 {
        let node = if i % 2 == 0 { a } else { &b };
        if node.limiter.acquire("acme", 20, 20).await.unwrap() {
            allowed += 1;
        }
    }
    assert!(
        (20..=21).contains(&allowed),
        "{allowed}: one limit for both nodes"
    );

    let card = CardNumber::parse(CARD).unwrap();
    let mut answers = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { a } else { &b };
        answers.push(
            node.attempts
                .register_attempt("acme", &card, 20000, 5)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        answers
            .iter()
            .filter(|d| **d == AttemptDecision::Allowed)
            .count(),
        5
    );
    assert_eq!(answers[5], AttemptDecision::Exceeded);

    let key = [9u8; 32];
    assert_eq!(a.replays.begin(&key).await.unwrap(), ReplayBegin::First);
    assert_eq!(b.replays.begin(&key).await.unwrap(), ReplayBegin::InFlight);
    a.replays.finish(&key, Some(b"final")).await.unwrap();
    assert_eq!(
        b.replays.begin(&key).await.unwrap(),
        ReplayBegin::Replay(b"final".to_vec())
    );

    // A credential revoked through one node is seen revoked by the other at once
    // (the server's 2 s credential cache is the only delay).
    a.accounts.create_account("acme").await.unwrap();
    let issued = a.accounts.create_credential("acme", None).await.unwrap();
    assert!(
        b.accounts
            .revoke_credential(&issued.secret_id)
            .await
            .unwrap()
    );
    assert!(
        a.accounts
            .credential(&issued.secret_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    b.close();
}

#[tokio::test]
async fn nodes_starting_together_on_a_fresh_schema_migrate_once() {
    let h = Harness::postgres().await;
    let Kind::Postgres {
        schema,
        prefix,
        key,
    } = &h.kind
    else {
        unreachable!()
    };
    // A second fresh schema, opened by three nodes at once.
    let fresh = format!("{schema}_b");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (fresh, prefix, key) = (fresh.clone(), prefix.clone(), key.clone());
        tasks.spawn(async move { open_pg(&fresh, &prefix, key).await });
    }
    let mut backends = Vec::new();
    while let Some(r) = tasks.join_next().await {
        backends.push(r.unwrap().unwrap());
    }
    backends[0].accounts.create_account("acme").await.unwrap();
    assert!(
        backends[2]
            .accounts
            .account("acme")
            .await
            .unwrap()
            .is_some()
    );
    let client = pg_client().await;
    let versions: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{fresh}\".schema_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        versions,
        i64::from(cardcheck_store::postgres::CURRENT_VERSION)
    );
    for b in &backends {
        b.close();
    }
    drop(backends);
    cardcheck_store::postgres::drop_schema(&database_url(), &fresh)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_master_key_must_come_from_the_environment_when_not_given() {
    // The test process does not set CARDCHECK_MASTER_KEY (and cannot: no unsafe).
    if std::env::var(cardcheck_store::secrets::MASTER_KEY_ENV).is_ok() {
        return;
    }
    let err = cardcheck_store::open_postgres(&database_url(), &redis_url())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("CARDCHECK_MASTER_KEY is not set"), "{text}");
}

/// A TCP proxy the test can cut (closing every connection and refusing new ones, as a
/// stopped server would) and restore.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, conns2) = (cut.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            cut,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

fn upstream_of(url: &str, default_port: u16) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split("://").nth(1).unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    let with_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    with_port.to_socket_addrs().unwrap().next().unwrap()
}

/// `url` with its host and port replaced by 127.0.0.1:`port`.
fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{scheme}://{}127.0.0.1:{port}{path}",
        user.unwrap_or_default()
    )
}

/// Polls `f` until it succeeds; panics after `limit`.
async fn recovers_within<F, Fut>(limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "no recovery within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dependency_going_down_fails_calls_within_the_deadline_and_service_resumes() {
    let h = Harness::postgres().await;
    let Kind::Postgres {
        schema,
        prefix,
        key,
    } = &h.kind
    else {
        unreachable!()
    };
    let pg_proxy = Proxy::start(upstream_of(&database_url(), 5432)).await;
    let redis_proxy = Proxy::start(upstream_of(&redis_url(), 6379)).await;
    let mut options = PostgresOptions::new(
        &via_port(&database_url(), pg_proxy.port),
        &via_port(&redis_url(), redis_proxy.port),
    );
    options.schema = Some(schema.clone());
    options.redis_prefix = Some(prefix.clone());
    options.master_key = Some(key.clone());
    options.pool_size = 4;
    let node = options.open().await.unwrap();
    node.accounts.create_account("acme").await.unwrap();
    let card = CardNumber::parse(CARD).unwrap();
    let name = CardholderName::parse("Wei Xiaobao").unwrap();
    assert!(node.limiter.acquire("acme", 100, 100).await.unwrap());
    assert_eq!(
        node.registry.lookup(&card, &name).await.unwrap(),
        SourceAnswer::UnknownCard
    );
    let deadline = cardcheck_store::postgres::DEFAULT_REQUEST_TIMEOUT + Duration::from_millis(300);

    // Redis stops: limiter, attempts and replays fail fast; PostgreSQL still answers.
    redis_proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        assert!(node.limiter.acquire("acme", 100, 100).await.is_err());
        assert!(
            node.attempts
                .register_attempt("acme", &card, 20000, 10)
                .await
                .is_err()
        );
        assert!(node.replays.begin(&[3u8; 32]).await.is_err());
        assert!(started.elapsed() < deadline * 3, "{:?}", started.elapsed());
    }
    assert!(node.accounts.account("acme").await.unwrap().is_some());
    redis_proxy.restore();
    let took = recovers_within(Duration::from_secs(10), || async {
        node.limiter.acquire("acme", 100, 100).await.is_ok()
    })
    .await;
    eprintln!("Redis: recovered {took:?} after the restore");

    // PostgreSQL stops: reads, the registry (SourceUnavailable = -16) and the ledger
    // fail fast; Redis still answers.
    pg_proxy.cut();
    for i in 0..3 {
        let started = Instant::now();
        assert!(node.accounts.account("acme").await.is_err());
        assert!(node.registry.lookup(&card, &name).await.is_err());
        assert!(
            node.ledger
                .append(entry(
                    &format!("down{i}"),
                    "acme",
                    ResultCode::Passed,
                    20000
                ))
                .await
                .is_err()
        );
        assert!(started.elapsed() < deadline * 3, "{:?}", started.elapsed());
    }
    assert!(node.limiter.acquire("acme", 100, 100).await.is_ok());
    pg_proxy.restore();
    let took = recovers_within(Duration::from_secs(10), || async {
        node.accounts.account("acme").await.is_ok()
    })
    .await;
    eprintln!("PostgreSQL: recovered {took:?} after the restore");
    node.ledger
        .append(entry("after", "acme", ResultCode::Passed, 20000))
        .await
        .unwrap();
    assert_eq!(node.ledger.count_request("after").await.unwrap(), 1);
    assert_eq!(node.ledger.count_request("down0").await.unwrap(), 0);
    node.close();
}

/// Request-path latency figures (run by hand: `cargo test -p cardcheck-store --test
/// conformance -- --ignored --nocapture request_path_latency`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn request_path_latency() {
    let h = Harness::postgres().await;
    let b = &h.backend;
    b.accounts.create_account("acme").await.unwrap();
    let issued = b.accounts.create_credential("acme", None).await.unwrap();
    let records: Vec<RegistryRecord> = (0..10_000)
        .map(|i| record("Li Lei", &format!("62257600{i:08}"), CardStatus::Active))
        .collect();
    let started = Instant::now();
    b.registry.upsert(&records).await.unwrap();
    eprintln!("upsert 10000 records (COPY): {:?}", started.elapsed());
    let card = CardNumber::parse("6225760000001234").unwrap();
    let name = CardholderName::parse("Li Lei").unwrap();
    let n = 2000u32;
    let time = |label: &str, started: Instant| {
        eprintln!(
            "{label}: {:.1} µs/call",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    };
    for _ in 0..100 {
        b.registry.lookup(&card, &name).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..n {
        b.registry.lookup(&card, &name).await.unwrap();
    }
    time("registry point lookup (PostgreSQL)", started);
    let started = Instant::now();
    for _ in 0..n {
        b.accounts.credential(&issued.secret_id).await.unwrap();
    }
    time("credential lookup (PostgreSQL)", started);
    let started = Instant::now();
    for _ in 0..n {
        b.limiter
            .acquire("bench", 1_000_000, 1_000_000)
            .await
            .unwrap();
    }
    time("rate limiter (Redis GCRA script)", started);
    let started = Instant::now();
    for _ in 0..n {
        b.attempts
            .register_attempt("acme", &card, 20000, 0)
            .await
            .unwrap();
    }
    time("attempt counter (Redis script)", started);
    let started = Instant::now();
    for i in 0..n {
        let key = {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        };
        b.replays.begin(&key).await.unwrap();
        b.replays.finish(&key, Some(b"body")).await.unwrap();
    }
    time("replay begin + finish (Redis)", started);
    let started = Instant::now();
    for i in 0..n {
        b.ledger
            .append(entry(&format!("seq{i}"), "acme", ResultCode::Passed, 20000))
            .await
            .unwrap();
    }
    time("ledger append, sequential (one commit each)", started);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let ledger = b.ledger.clone();
        tasks.spawn(async move {
            ledger
                .append(entry(&format!("par{i}"), "acme", ResultCode::Passed, 20000))
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    time(
        "ledger append, 2000 concurrent (group commit), per row",
        started,
    );
}
