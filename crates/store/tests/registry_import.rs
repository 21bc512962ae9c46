#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! Bulk registry imports (issue 6): the SQLite bulk path and the trait's default
//! (chunked upserts) give the same registry; the last row for a card wins; an
//! abandoned import writes nothing.

use cardcheck_domain::card::luhn_check_digit;
use cardcheck_domain::{CardNumber, CardStatus, CardholderName, Source, SourceAnswer};
use cardcheck_store::import::BufferedImport;
use cardcheck_store::sqlite::SqliteStore;
use cardcheck_store::{ImportCounts, RegistryImport, RegistryRecord, RegistryStore};

fn card(i: u32) -> String {
    let payload = format!("622202{i:012}");
    format!("{payload}{}", luhn_check_digit(&payload).unwrap())
}

fn record(name: &str, i: u32, status: CardStatus) -> RegistryRecord {
    RegistryRecord {
        card: CardNumber::parse(&card(i)).unwrap(),
        name: CardholderName::parse(name).unwrap(),
        status,
    }
}

fn records() -> Vec<RegistryRecord> {
    let mut out: Vec<RegistryRecord> = (0..3_000)
        .map(|i| record("张三", i, CardStatus::ALL[i as usize % 12]))
        .collect();
    // Card 7 again, later: this row wins.
    out.push(record("李四", 7, CardStatus::Lost));
    out
}

async fn import(importer: &mut dyn RegistryImport, rows: Vec<RegistryRecord>) -> ImportCounts {
    tokio::task::block_in_place(|| {
        for r in rows {
            importer.push(r).unwrap();
        }
    });
    importer.finish(Box::new(|_| {})).await.unwrap()
}

async fn answer(store: &SqliteStore, name: &str, i: u32) -> SourceAnswer {
    store
        .lookup(
            &CardNumber::parse(&card(i)).unwrap(),
            &CardholderName::parse(name).unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_and_default_imports_agree_and_the_last_row_wins() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bulk = SqliteStore::open(a.path()).unwrap();
    let default = SqliteStore::open(b.path()).unwrap();

    let counts = import(bulk.begin_import().unwrap().as_mut(), records()).await;
    assert_eq!(
        counts,
        ImportCounts {
            inserted: 3_000,
            updated: 0,
            unchanged: 0,
            duplicates: 1
        }
    );
    let counts = import(&mut BufferedImport::new(&default), records()).await;
    assert_eq!((counts.inserted, counts.updated), (3_000, 1));

    for store in [&bulk, &default] {
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.total, 3_000);
        assert_eq!(
            answer(store, "李四", 7).await,
            SourceAnswer::Match(CardStatus::Lost)
        );
        assert_eq!(answer(store, "张三", 7).await, SourceAnswer::NameMismatch);
        assert_eq!(
            answer(store, "张三", 13).await,
            SourceAnswer::Match(CardStatus::ALL[1])
        );
        assert_eq!(
            answer(store, "张三", 5_000).await,
            SourceAnswer::UnknownCard
        );
    }
    assert_eq!(
        bulk.stats().await.unwrap().by_status,
        default.stats().await.unwrap().by_status
    );

    // Re-import: nothing changes; a changed status is an update.
    let mut again = records();
    again[13] = record("张三", 13, CardStatus::Fraud);
    let counts = import(bulk.begin_import().unwrap().as_mut(), again).await;
    assert_eq!(
        counts,
        ImportCounts {
            inserted: 0,
            updated: 1,
            unchanged: 2_999,
            duplicates: 1
        }
    );
    assert_eq!(
        answer(&bulk, "张三", 13).await,
        SourceAnswer::Match(CardStatus::Fraud)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_import_writes_nothing_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    {
        let mut importer = store.begin_import().unwrap();
        tokio::task::block_in_place(|| {
            for r in records() {
                importer.push(r).unwrap();
            }
        });
    }
    assert_eq!(store.stats().await.unwrap().total, 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("registry-import"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
