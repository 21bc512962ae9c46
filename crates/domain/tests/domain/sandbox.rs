//! The sandbox catalogue: every Result is forced, for any valid name, and the catalogue
//! in code matches `docs/sandbox.md`.

use std::collections::BTreeSet;

use cardcheck_domain::card::luhn_valid;
use cardcheck_domain::{
    BinLookup, BinTable, CATALOGUE, MemoryAttemptCounter, ResultCode, SandboxSource,
    VerificationInput,
};

use crate::common::{card, engine};

/// Rows the pipeline rejects before the source (their cards need not be valid cards).
fn rejected_by_pipeline(result: ResultCode, card: &str) -> bool {
    matches!(
        result,
        ResultCode::InvalidName | ResultCode::InvalidCardFormat | ResultCode::NoIssuer
    ) || (result == ResultCode::InvalidCardNumber && card != "6217000000000000079")
}

#[tokio::test]
async fn every_catalogue_card_forces_its_result_for_any_valid_name() {
    let e = engine(false);
    for name in ["Wei Xiaobao", "张三", "阿沛·阿旺晋美", "José García"] {
        for row in CATALOGUE {
            let counter = MemoryAttemptCounter::new();
            let input = VerificationInput {
                account: "sandbox",
                name: row.name.unwrap_or(name),
                card: row.card,
                daily_limit: 10,
            };
            let mut d = e.decide(&input, &SandboxSource, &counter).await.unwrap();
            if row.result == ResultCode::DailyLimitExceeded {
                // Passes ten times a Beijing day, then -17.
                for _ in 0..9 {
                    assert_eq!(d.result, ResultCode::Passed);
                    d = e.decide(&input, &SandboxSource, &counter).await.unwrap();
                }
                assert_eq!(d.result, ResultCode::Passed);
                d = e.decide(&input, &SandboxSource, &counter).await.unwrap();
            }
            assert_eq!(d.result, row.result, "{} with {name}", row.card);
            // Strict Luhn changes nothing: the cards that reach the source pass Luhn.
            let strict = engine(true)
                .decide(&input, &SandboxSource, &MemoryAttemptCounter::new())
                .await
                .unwrap();
            if row.result != ResultCode::DailyLimitExceeded {
                assert_eq!(strict.result, row.result, "{} strict", row.card);
            }
        }
    }
}

#[tokio::test]
async fn tencents_doc_examples() {
    let e = engine(false);
    let run = |name, card| {
        let e = &e;
        async move {
            let input = VerificationInput {
                account: "a",
                name,
                card,
                daily_limit: 10,
            };
            e.decide(&input, &SandboxSource, &MemoryAttemptCounter::new())
                .await
                .unwrap()
                .result
        }
    };
    assert_eq!(
        run("Wei Xiaobao", "6225768888888888").await,
        ResultCode::Passed
    );
    assert_eq!(
        run("Wei Xiaobao", "6226090210146748").await,
        ResultCode::HolderMismatch
    );
    assert_eq!(run("张三", "6225768888888888").await, ResultCode::Passed);
    // Any other card is unknown to the sandbox.
    assert_eq!(
        run("张三", "6217001210024455220").await,
        ResultCode::InvalidCardNumber
    );
}

#[test]
fn every_result_has_a_row() {
    let covered: BTreeSet<i32> = CATALOGUE.iter().map(|r| r.result.code()).collect();
    let all: BTreeSet<i32> = ResultCode::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(covered, all);
}

#[test]
fn source_decided_cards_are_real_well_formed_cards() {
    let t = BinTable::builtin();
    let mut seen = BTreeSet::new();
    for row in CATALOGUE {
        if row.name.is_none() {
            assert!(seen.insert(row.card), "duplicate card {}", row.card);
        }
        if rejected_by_pipeline(row.result, row.card) {
            continue;
        }
        let c = card(row.card);
        assert_eq!(
            c.digits(),
            row.card,
            "catalogue cards are written as plain digits"
        );
        let BinLookup::Found(entry) = t.lookup(&c) else {
            panic!("{} has no BIN of its length", row.card);
        };
        assert!(
            entry.bank_code.is_some(),
            "{} has a Chinese issuer",
            row.card
        );
        assert!(luhn_valid(row.card), "{} passes Luhn", row.card);
    }
}

#[test]
fn docs_sandbox_md_lists_the_catalogue() {
    let path = crate::common::crate_path("../../docs/sandbox.md");
    let text = std::fs::read_to_string(&path).expect("docs/sandbox.md exists");
    // Table rows look like: | `card` | `result` | name | description | note |
    let rows: Vec<(String, String)> = text
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_owned(),
                cells[2].trim_matches('`').to_owned(),
            )
        })
        .collect();
    let code: Vec<(String, String)> = CATALOGUE
        .iter()
        .map(|r| (r.card.to_owned(), r.result.wire().to_owned()))
        .collect();
    assert_eq!(rows, code);
}
