#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! The embedded backend against its contract: persistence across reopen, nothing
//! secret in plain text, registry answers, attempt counters, ledger and usage.

use cardcheck_domain::{
    AttemptDecision, CardNumber, CardStatus, CardholderName, ResultCode, SourceAnswer,
};
use cardcheck_store::sqlite::SqliteStore;
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

#[tokio::test]
async fn attempt_counts_persist_across_reopen_and_reset_per_day() {
    use cardcheck_domain::AttemptCounter;
    let dir = tempfile::tempdir().unwrap();
    let card = CardNumber::parse(CARD).unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                store.register_attempt("acme", &card, 100, 4).await.unwrap(),
                AttemptDecision::Allowed
            );
        }
        store.flush().await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.register_attempt("acme", &card, 100, 4).await.unwrap(),
        AttemptDecision::Allowed
    );
    assert_eq!(
        store.register_attempt("acme", &card, 100, 4).await.unwrap(),
        AttemptDecision::Exceeded
    );
    assert_eq!(
        store
            .register_attempt("other", &card, 100, 4)
            .await
            .unwrap(),
        AttemptDecision::Allowed
    );
    assert_eq!(
        store.register_attempt("acme", &card, 101, 4).await.unwrap(),
        AttemptDecision::Allowed
    );
    assert_eq!(
        store.register_attempt("acme", &card, 100, 0).await.unwrap(),
        AttemptDecision::Allowed
    );
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
