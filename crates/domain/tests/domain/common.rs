//! Shared test helpers: CSV fixtures, scripted sources and counters.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use cardcheck_domain::{
    AttemptCounter, AttemptDecision, BinTable, CardNumber, CardholderName, CounterUnavailable,
    Decision, Engine, EngineConfig, FixedClock, Source, SourceAnswer, SourceUnavailable,
    VerificationInput,
};

/// 2023-11-14T22:13:20Z (2023-11-15 06:13:20 in Beijing).
pub const NOW: i64 = 1_700_000_000;

/// Path of a file under the crate directory.
pub fn crate_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Rows of a CSV data file as header → value maps.
pub fn csv_rows(rel: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(crate_path(rel)).expect("fixture exists");
    let headers = reader.headers().expect("header row").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("well-formed row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

pub fn card(s: &str) -> CardNumber {
    CardNumber::parse(s).expect("test card parses")
}

pub fn engine(strict_luhn: bool) -> Engine {
    Engine::new(
        BinTable::builtin_shared(),
        EngineConfig { strict_luhn },
        Arc::new(FixedClock::new(NOW)),
    )
}

/// A source that gives one scripted answer and counts how often it was asked.
pub struct Scripted {
    pub answer: Result<SourceAnswer, SourceUnavailable>,
    pub calls: AtomicUsize,
}

impl Scripted {
    pub fn new(answer: Result<SourceAnswer, SourceUnavailable>) -> Self {
        Scripted {
            answer,
            calls: AtomicUsize::new(0),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Source for Scripted {
    async fn lookup(
        &self,
        _card: &CardNumber,
        _name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

/// A counter with a fixed decision (or failure).
pub struct FixedCounter(pub Result<AttemptDecision, CounterUnavailable>);

#[async_trait]
impl AttemptCounter for FixedCounter {
    async fn register_attempt(
        &self,
        _account: &str,
        _card: &CardNumber,
        _day: i32,
        _limit: u32,
    ) -> Result<AttemptDecision, CounterUnavailable> {
        self.0.clone()
    }
}

pub fn input<'a>(name: &'a str, card: &'a str) -> VerificationInput<'a> {
    VerificationInput {
        account: "acct",
        name,
        card,
        daily_limit: 10,
    }
}

/// Runs the engine once with an always-allowing counter.
pub async fn decide(engine: &Engine, name: &str, card: &str, source: &dyn Source) -> Decision {
    engine
        .decide(
            &input(name, card),
            source,
            &FixedCounter(Ok(AttemptDecision::Allowed)),
        )
        .await
        .expect("counter works")
}
