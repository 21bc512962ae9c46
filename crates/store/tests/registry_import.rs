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

/// Broke: an import could not be stopped cleanly (SIGINT/SIGTERM killed the process,
/// leaving its staging directory and unaudited committed rows): a stop request now
/// makes `finish` commit what it wrote, return those counts and say it stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_request_ends_the_import_at_a_commit_and_a_rerun_finishes_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    // More rows than one SQLite commit (250,000), so the stop comes mid-import.
    let rows = || -> Vec<RegistryRecord> {
        (0..260_000)
            .map(|i| record("张三", i, CardStatus::Active))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut importer = store.begin_import().unwrap();
    importer.stop_when(Arc::clone(&stop));
    tokio::task::block_in_place(|| {
        for r in rows() {
            importer.push(r).unwrap();
        }
    });
    // Stop at the first commit report, as a signal arriving then would.
    let on_commit = Arc::clone(&stop);
    let counts = importer
        .finish(Box::new(move |_| on_commit.store(true, Ordering::Relaxed)))
        .await
        .unwrap();
    assert!(importer.stopped());
    drop(importer);
    assert_eq!(counts.inserted, 250_000);
    assert_eq!(counts.total(), 250_000);
    assert_eq!(store.stats().await.unwrap().total, 250_000);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("registry-import"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let counts = import(store.begin_import().unwrap().as_mut(), rows()).await;
    assert_eq!((counts.inserted, counts.unchanged), (10_000, 250_000));

    // The default importer stops between its chunks of 10,000.
    let other = tempfile::tempdir().unwrap();
    let default = SqliteStore::open(other.path()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut buffered = BufferedImport::new(&default);
    buffered.stop_when(Arc::clone(&stop));
    for r in rows().into_iter().take(25_000) {
        buffered.push(r).unwrap();
    }
    assert!(!buffered.stopped());
    let counts = buffered
        .finish(Box::new(move |_| stop.store(true, Ordering::Relaxed)))
        .await
        .unwrap();
    assert!(buffered.stopped());
    assert_eq!(
        counts.inserted,
        cardcheck_store::import::DEFAULT_CHUNK as u64
    );
    assert_eq!(default.stats().await.unwrap().total, 10_000);
}
