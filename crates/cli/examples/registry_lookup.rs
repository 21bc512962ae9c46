//! Point-lookup throughput of the registry (issue 6 "lookups stay flat with size"):
//! `cargo run --release --example registry_lookup -- DATA_DIR FILE.csv [LOOKUPS]`.
//!
//! Takes up to 100,000 rows of FILE.csv (the file the registry was imported from),
//! looks them up in random order through the store's verification-source path — one
//! keyed hash and one indexed point read each, as a request does — on two tasks, checks
//! that every answer is a match, and prints lookups per second. Run it against a small
//! and a large registry to compare.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use cardcheck_domain::{CardNumber, CardholderName, Source, SourceAnswer};
use cardcheck_store::sqlite::SqliteStore;
use rand::seq::SliceRandom;

const SAMPLE: usize = 100_000;
const TASKS: usize = 2;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() >= 3,
        "usage: registry_lookup DATA_DIR FILE.csv [LOOKUPS]"
    );
    let lookups: usize = args.get(3).map_or(400_000, |n| n.parse().expect("LOOKUPS"));
    let store = Arc::new(SqliteStore::open(std::path::Path::new(&args[1])).expect("open"));
    let total_rows = store.stats_total().await;

    // Spread the sample over the file: every k-th row.
    let file = std::fs::File::open(&args[2]).expect("open CSV");
    let line_count = std::io::BufReader::new(file)
        .lines()
        .count()
        .saturating_sub(1);
    let step = (line_count / SAMPLE).max(1);
    let file = std::fs::File::open(&args[2]).expect("open CSV");
    let mut sample: Vec<(CardNumber, CardholderName)> = std::io::BufReader::new(file)
        .lines()
        .skip(1)
        .step_by(step)
        .take(SAMPLE)
        .map(|l| {
            let l = l.unwrap();
            let f: Vec<&str> = l.split(',').collect();
            (
                CardNumber::parse(f[1]).unwrap(),
                CardholderName::parse(f[0]).unwrap(),
            )
        })
        .collect();
    sample.shuffle(&mut rand::rng());
    let sample = Arc::new(sample);

    // Warm-up pass over the sample (as a running server would be).
    for (card, name) in sample.iter() {
        store.lookup(card, name).await.unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, sample) = (store.clone(), sample.clone());
        tasks.push(tokio::spawn(async move {
            let mut misses = 0u64;
            for i in (t..lookups).step_by(TASKS) {
                let (card, name) = &sample[i % sample.len()];
                if !matches!(
                    store.lookup(card, name).await.unwrap(),
                    SourceAnswer::Match(_)
                ) {
                    misses += 1;
                }
            }
            misses
        }));
    }
    let mut misses = 0;
    for t in tasks {
        misses += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "registry_rows={total_rows} sample={} lookups={lookups} seconds={secs:.3} lookups_per_second={:.0} misses={misses}",
        sample.len(),
        lookups as f64 / secs
    );
}

trait StatsTotal {
    async fn stats_total(&self) -> u64;
}

impl StatsTotal for SqliteStore {
    async fn stats_total(&self) -> u64 {
        cardcheck_store::RegistryStore::stats(self)
            .await
            .unwrap()
            .total
    }
}
