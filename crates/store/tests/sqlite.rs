#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! The embedded backend against its contract: persistence across reopen, nothing
//! secret in plain text, registry answers, attempt counters, ledger and usage.

use cardcheck_domain::{
    AttemptDecision, CardNumber, CardStatus, CardholderName, ResultCode, SourceAnswer,
};
use cardcheck_store::sqlite::{DATABASE_FILE, SqliteStore};
use cardcheck_store::{
    AccountStatus, AccountUpdate, LedgerEntry, RegistryRecord, StoreError, UsageFilter,
};

const CARD: &str = "6225768888888888";

fn record(name: &str, card: &str, status: CardStatus) -> RegistryRecord {
    RegistryRecord {
        card: CardNumber::parse(card).unwrap(),
        name: CardholderName::parse(name).unwrap(),
        status,
    }
}

fn entry(request_id: &str, result: ResultCode, day: i32) -> LedgerEntry {
    LedgerEntry {
        request_id: request_id.into(),
        account: "acme".into(),
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

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[tokio::test]
async fn state_survives_reopen_and_nothing_secret_is_stored_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let issued = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let backend = std::sync::Arc::new(store).into_backend();
        backend.accounts.create_account("acme").await.unwrap();
        let issued = backend
            .accounts
            .create_credential("acme", None)
            .await
            .unwrap();
        backend
            .registry
            .upsert(&[record("Wei Xiaobao", CARD, CardStatus::Active)])
            .await
            .unwrap();
        backend
            .ledger
            .append(entry("r1", ResultCode::Passed, 20000))
            .await
            .unwrap();
        backend
            .keys
            .save_server_keys(b"key-ring-bytes-secret")
            .await
            .unwrap();
        backend.close();
        issued
    };
    assert!(issued.secret_id.starts_with("AKID") && issued.secret_id.len() == 36);
    for needle in [
        CARD.as_bytes(),
        issued.secret_key.as_bytes(),
        b"Wei Xiaobao",
        b"key-ring-bytes-secret",
    ] {
        assert!(
            !files_contain(dir.path(), needle),
            "plain text found in the data dir"
        );
    }

    let backend = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap()).into_backend();
    let cred = backend
        .accounts
        .credential(&issued.secret_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cred.secret_key.as_str(), issued.secret_key);
    assert_eq!(cred.account, "acme");
    let card = CardNumber::parse(CARD).unwrap();
    let name = CardholderName::parse("wei  xiaobao").unwrap();
    assert_eq!(
        backend.registry.lookup(&card, &name).await.unwrap(),
        SourceAnswer::Match(CardStatus::Active)
    );
    assert_eq!(backend.ledger.count_request("r1").await.unwrap(), 1);
    assert_eq!(
        backend
            .keys
            .load_server_keys()
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        b"key-ring-bytes-secret"
    );
}

#[tokio::test]
async fn registry_checks_the_name_before_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store
        .upsert(&[record("张三", CARD, CardStatus::Lost)])
        .await
        .unwrap();
    let card = CardNumber::parse(CARD).unwrap();
    use cardcheck_domain::Source;
    use cardcheck_store::RegistryStore;
    let name = |n| CardholderName::parse(n).unwrap();
    assert_eq!(
        store.lookup(&card, &name("李四")).await.unwrap(),
        SourceAnswer::NameMismatch
    );
    assert_eq!(
        store.lookup(&card, &name("张 三")).await.unwrap(),
        SourceAnswer::Match(CardStatus::Lost)
    );
    let other = CardNumber::parse("6225760000000001").unwrap();
    assert_eq!(
        store.lookup(&other, &name("张三")).await.unwrap(),
        SourceAnswer::UnknownCard
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total, 1);
}

/// Registry lookups share one connection (its page cache keeps a large registry's
/// interior pages warm): lookups from many threads at once, interleaved with updates
/// made through another connection, each see a committed state, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registry_lookups_share_one_connection_and_see_updates() {
    use cardcheck_domain::Source;
    use cardcheck_store::RegistryStore;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let cards: Vec<String> = (0..50).map(|i| format!("62257600000{i:05}")).collect();
    let rows: Vec<RegistryRecord> = cards
        .iter()
        .map(|c| record("张三", c, CardStatus::Active))
        .collect();
    store.upsert(&rows).await.unwrap();

    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = std::sync::Arc::clone(&store);
        let cards = cards.clone();
        tasks.push(tokio::spawn(async move {
            let name = CardholderName::parse("张三").unwrap();
            for i in 0..400 {
                let card = CardNumber::parse(&cards[(i * 7 + t) % cards.len()]).unwrap();
                let answer = store.lookup(&card, &name).await.unwrap();
                // Active before the update below commits, Lost after: never anything else.
                assert!(
                    matches!(
                        answer,
                        SourceAnswer::Match(CardStatus::Active | CardStatus::Lost)
                    ),
                    "{answer:?}"
                );
            }
        }));
    }
    let lost: Vec<RegistryRecord> = cards
        .iter()
        .map(|c| record("张三", c, CardStatus::Lost))
        .collect();
    store.upsert(&lost).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    // Committed updates are visible to the shared connection's next lookup.
    let card = CardNumber::parse(&cards[0]).unwrap();
    let name = CardholderName::parse("张三").unwrap();
    assert_eq!(
        store.lookup(&card, &name).await.unwrap(),
        SourceAnswer::Match(CardStatus::Lost)
    );
}

/// Registers an attempt as the server does: the ledger row of a counted request
/// carries the card, and the store rebuilds its counts from those rows.
async fn attempt(store: &SqliteStore, account: &str, day: i32, limit: u32) -> AttemptDecision {
    use cardcheck_domain::AttemptCounter;
    use cardcheck_store::Ledger;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let card = CardNumber::parse(CARD).unwrap();
    let decision = store
        .register_attempt(account, &card, day, limit)
        .await
        .unwrap();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut row = entry(&format!("a{n}"), ResultCode::Passed, day);
    row.account = account.into();
    row.attempted_card = (decision == AttemptDecision::Allowed).then_some(card);
    store.append(row).await.unwrap();
    decision
}

#[tokio::test]
async fn attempt_counts_persist_across_reopen_and_reset_per_day() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                attempt(&store, "acme", 100, 4).await,
                AttemptDecision::Allowed
            );
        }
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        attempt(&store, "acme", 100, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(&store, "acme", 100, 4).await,
        AttemptDecision::Exceeded
    );
    assert_eq!(
        attempt(&store, "other", 100, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(&store, "acme", 101, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(&store, "acme", 100, 0).await,
        AttemptDecision::Allowed
    );
}

/// Data directories from before the ledger had a file of its own keep their ledger
/// rows and the day's attempt counts (migration 1's tables move into `ledger.db`).
#[tokio::test]
async fn legacy_ledger_and_attempts_tables_move_into_the_ledger_file() {
    use cardcheck_store::Ledger;
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    // The keyed hash the store wrote to the former attempts table.
    let key = cardcheck_store::MasterKey::load_or_create(dir.path(), false)
        .unwrap()
        .card_hash(CARD);
    std::fs::remove_file(dir.path().join(cardcheck_store::sqlite::LEDGER_FILE)).unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        // Earlier versions had no ledger file and no marker saying there is one.
        conn.execute("DELETE FROM meta WHERE key = 'ledger_file'", [])
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE attempts (account TEXT NOT NULL, card_hash BLOB NOT NULL,              day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (account, card_hash, day))              WITHOUT ROWID;
             CREATE TABLE ledger (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE,              account TEXT NOT NULL, secret_id TEXT NOT NULL, action TEXT NOT NULL,              result INTEGER NOT NULL, billed INTEGER NOT NULL, masked_card TEXT,              latency_us INTEGER NOT NULL, ts_ms INTEGER NOT NULL, day INTEGER NOT NULL);
             INSERT INTO ledger (request_id, account, secret_id, action, result, billed,              masked_card, latency_us, ts_ms, day) VALUES              ('old-1', 'acme', 'AKIDx', 'BankCard2EVerification', 0, 1, NULL, 5, 1, 100),              ('old-2', 'acme', 'AKIDx', 'BankCard2EVerification', -4, 1, NULL, 5, 1, 100);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO attempts (account, card_hash, day, count) VALUES ('acme', ?1, 100, 3)",
            [key.as_slice()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.count_request("old-1").await.unwrap(), 1);
    assert_eq!(store.count_request("old-2").await.unwrap(), 1);
    // Three carried over: one more of four, then the limit.
    assert_eq!(
        attempt(&store, "acme", 100, 4).await,
        AttemptDecision::Allowed
    );
    assert_eq!(
        attempt(&store, "acme", 100, 4).await,
        AttemptDecision::Exceeded
    );
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('ledger', 'attempts')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the main file no longer has the moved tables");
}

#[tokio::test]
async fn ledger_usage_counts_per_day_and_result_with_billing_class() {
    use cardcheck_store::Ledger;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let appends = (0..50).map(|i| {
        let result = if i % 5 == 0 {
            ResultCode::InvalidCardFormat
        } else {
            ResultCode::Passed
        };
        store.append(entry(&format!("r{i}"), result, 20000 + i % 2))
    });
    for r in futures_join(appends).await {
        r.unwrap();
    }
    // A retried append of the same RequestId is not a second row.
    store
        .append(entry("r1", ResultCode::Passed, 20001))
        .await
        .unwrap();
    let rows = store.usage(&UsageFilter::default()).await.unwrap();
    let billed: u64 = rows.iter().filter(|r| r.billed).map(|r| r.count).sum();
    let free: u64 = rows.iter().filter(|r| !r.billed).map(|r| r.count).sum();
    assert_eq!((billed, free), (40, 10));
    let day_one = store
        .usage(&UsageFilter {
            from_day: Some(20001),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(day_one.iter().map(|r| r.count).sum::<u64>(), 25);
}

async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futs {
        out.push(f.await);
    }
    out
}

#[tokio::test]
async fn accounts_update_revoke_and_tokens() {
    use cardcheck_store::AccountStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.create_account("acme").await.unwrap();
    assert!(matches!(
        store.create_account("acme").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_account("bad name").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_credential("nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
    let updated = store
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
    let temp = store.create_credential("acme", Some(3600)).await.unwrap();
    let token = temp.token.clone().unwrap();
    let stored = store.credential(&temp.secret_id).await.unwrap().unwrap();
    assert_eq!(
        stored.token_sha256,
        Some(cardcheck_store::sqlite::token_sha256(&token))
    );
    assert!(store.revoke_credential(&temp.secret_id).await.unwrap());
    assert!(
        store
            .credential(&temp.secret_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(!store.revoke_credential("AKIDnope").await.unwrap());
    assert_eq!(store.list_credentials("acme").await.unwrap().len(), 1);
}

#[test]
fn a_wrong_master_key_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    std::fs::write(dir.path().join("master.key"), "11".repeat(32)).unwrap();
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::MasterKeyMismatch)
    ));
}

/// Regression (new-user trial): a regular file given as the data directory was
/// reported as "File exists".
#[test]
fn a_data_dir_that_is_a_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.csv");
    std::fs::write(&file, "name,card,status\n").unwrap();
    let e = SqliteStore::open(&file).unwrap_err().to_string();
    assert!(e.contains("is not a directory"), "{e}");
}

/// Regression (new-user trial): deleting `ledger.db` silently started an empty ledger,
/// losing every usage record and the day's attempt counts.
#[test]
fn a_missing_ledger_file_is_refused_not_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let ledger = dir.path().join(cardcheck_store::sqlite::LEDGER_FILE);
    std::fs::remove_file(&ledger).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("ledger.db is missing"), "{err}");
    assert!(!ledger.exists(), "the refused open created no empty ledger");
    // An empty file is the deliberate way to start a new ledger.
    std::fs::write(&ledger, b"").unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
}

/// Regression (new-user trial): deleting `cardcheck.db` silently started an empty store
/// (no accounts, an empty audit log) beside the old ledger.
#[test]
fn a_missing_main_database_beside_its_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("{DATABASE_FILE}{suffix}")));
    }
    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("cardcheck.db is missing"), "{err}");
    assert!(!dir.path().join(DATABASE_FILE).exists());
}

/// Regression (new-user trial): a corrupt file gave "file is not a database" without
/// saying which of the two files it was.
#[test]
fn a_corrupt_database_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let ledger = dir.path().join(cardcheck_store::sqlite::LEDGER_FILE);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("ledger.db{suffix}")));
    }
    std::fs::write(&ledger, vec![0xA5u8; 8192]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("ledger.db"), "{err}");
}
