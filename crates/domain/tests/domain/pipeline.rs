//! The pipeline order of verification.md §2, as a table: one row per step, plus the
//! ties where two steps would fire (the earlier one must win).

use std::sync::Arc;

use cardcheck_domain::{
    AttemptDecision, BinTable, CardStatus, CounterUnavailable, Engine, EngineConfig, EngineError,
    FixedClock, MemoryAttemptCounter, Network, ResultCode, SourceAnswer, SourceUnavailable,
    VerificationInput, beijing_day,
};

use crate::common::{FixedCounter, NOW, Scripted, card, engine, input};

const UNIONPAY: &str = "6217001210024455220"; // CCB debit, 19 digits
const UNIONPAY_BAD_LUHN: &str = "6221558812340000"; // UnionPay's own test card
const VISA_BAD_LUHN: &str = "4242424242424241";
const NO_ISSUER: &str = "7000000000000000086";
const WRONG_LENGTH: &str = "6222020200112"; // ICBC 622202 with 13 digits

fn unavailable() -> Result<SourceAnswer, SourceUnavailable> {
    Err(SourceUnavailable::new("test: down"))
}

struct Row {
    why: &'static str,
    name: &'static str,
    card: &'static str,
    limit_reached: bool,
    strict: bool,
    source: Result<SourceAnswer, SourceUnavailable>,
    expect: ResultCode,
    counted: bool,
    source_asked: bool,
}

fn rows() -> Vec<Row> {
    use ResultCode::*;
    let active = || Ok(SourceAnswer::Match(CardStatus::Active));
    let row = |why, name, card, limit_reached, strict, source, expect, counted, asked| Row {
        why,
        name,
        card,
        limit_reached,
        strict,
        source,
        expect,
        counted,
        source_asked: asked,
    };
    vec![
        // step 2
        row(
            "2: bad name",
            "王伟1",
            UNIONPAY,
            false,
            false,
            active(),
            InvalidName,
            false,
            false,
        ),
        row(
            "2 beats 3: bad name AND bad card",
            "王伟1",
            "abc",
            false,
            false,
            active(),
            InvalidName,
            false,
            false,
        ),
        row(
            "2 beats 3: empty name AND empty card",
            "",
            "",
            false,
            false,
            active(),
            InvalidName,
            false,
            false,
        ),
        row(
            "2 beats 4: bad name, limit reached",
            "·",
            UNIONPAY,
            true,
            false,
            active(),
            InvalidName,
            false,
            false,
        ),
        // step 3
        row(
            "3: bad card",
            "张三",
            "12345",
            false,
            false,
            active(),
            InvalidCardFormat,
            false,
            false,
        ),
        row(
            "3 beats 4: bad card, limit reached",
            "张三",
            "6225X",
            true,
            false,
            active(),
            InvalidCardFormat,
            false,
            false,
        ),
        row(
            "3: Luhn is never -3 (but 6 may be -7)",
            "张三",
            "4242-4242-4242-4241",
            false,
            false,
            active(),
            InvalidCardNumber,
            true,
            false,
        ),
        // step 4
        row(
            "4: limit reached",
            "张三",
            UNIONPAY,
            true,
            false,
            active(),
            DailyLimitExceeded,
            false,
            false,
        ),
        row(
            "4 beats 5: limit reached, no issuer",
            "张三",
            NO_ISSUER,
            true,
            false,
            active(),
            DailyLimitExceeded,
            false,
            false,
        ),
        row(
            "4 beats 6: limit reached, wrong length",
            "张三",
            WRONG_LENGTH,
            true,
            false,
            active(),
            DailyLimitExceeded,
            false,
            false,
        ),
        row(
            "4 beats 7: limit reached, source down",
            "张三",
            UNIONPAY,
            true,
            false,
            unavailable(),
            DailyLimitExceeded,
            false,
            false,
        ),
        // step 5
        row(
            "5: no issuer",
            "张三",
            NO_ISSUER,
            false,
            false,
            active(),
            NoIssuer,
            true,
            false,
        ),
        row(
            "5 beats 7: no issuer, source down",
            "张三",
            NO_ISSUER,
            false,
            true,
            unavailable(),
            NoIssuer,
            true,
            false,
        ),
        // step 6
        row(
            "6: wrong length",
            "张三",
            WRONG_LENGTH,
            false,
            false,
            active(),
            InvalidCardNumber,
            true,
            false,
        ),
        row(
            "6: Luhn mandated by Visa",
            "Wei Xiaobao",
            VISA_BAD_LUHN,
            false,
            false,
            active(),
            InvalidCardNumber,
            true,
            false,
        ),
        row(
            "6 beats 7: Visa Luhn, source down",
            "张三",
            VISA_BAD_LUHN,
            false,
            false,
            unavailable(),
            InvalidCardNumber,
            true,
            false,
        ),
        row(
            "6: UnionPay Luhn allowed by default",
            "张三",
            UNIONPAY_BAD_LUHN,
            false,
            false,
            active(),
            Passed,
            true,
            true,
        ),
        row(
            "6: UnionPay Luhn with strict_luhn",
            "张三",
            UNIONPAY_BAD_LUHN,
            false,
            true,
            active(),
            InvalidCardNumber,
            true,
            false,
        ),
        // step 7
        row(
            "7: source unavailable",
            "张三",
            UNIONPAY,
            false,
            false,
            unavailable(),
            SourceBusy,
            true,
            true,
        ),
        row(
            "7: card unknown to the source",
            "张三",
            UNIONPAY,
            false,
            false,
            Ok(SourceAnswer::UnknownCard),
            InvalidCardNumber,
            true,
            true,
        ),
        row(
            "7: name differs",
            "张三",
            UNIONPAY,
            false,
            false,
            Ok(SourceAnswer::NameMismatch),
            HolderMismatch,
            true,
            true,
        ),
        row(
            "7: match, active",
            "张三",
            UNIONPAY,
            false,
            false,
            active(),
            Passed,
            true,
            true,
        ),
        row(
            "7: match, lost",
            "张三",
            UNIONPAY,
            false,
            false,
            Ok(SourceAnswer::Match(CardStatus::Lost)),
            Lost,
            true,
            true,
        ),
    ]
}

#[tokio::test]
async fn the_first_rule_that_fires_decides() {
    for row in rows() {
        let source = Scripted::new(row.source.clone());
        let counter = FixedCounter(Ok(if row.limit_reached {
            AttemptDecision::Exceeded
        } else {
            AttemptDecision::Allowed
        }));
        let d = engine(row.strict)
            .decide(&input(row.name, row.card), &source, &counter)
            .await
            .unwrap();
        assert_eq!(d.result, row.expect, "{}", row.why);
        assert_eq!(d.counted, row.counted, "{}: counted", row.why);
        assert_eq!(
            source.calls() == 1,
            row.source_asked,
            "{}: source asked",
            row.why
        );
        let card_parsed = !matches!(
            row.expect,
            ResultCode::InvalidName | ResultCode::InvalidCardFormat
        );
        assert_eq!(d.card.is_some(), card_parsed, "{}: card", row.why);
    }
}

#[tokio::test]
async fn every_status_decides_its_result_when_the_name_matches() {
    for status in CardStatus::ALL {
        let source = Scripted::new(Ok(SourceAnswer::Match(status)));
        let d = crate::common::decide(&engine(false), "张三", UNIONPAY, &source).await;
        assert_eq!(d.result, status.result(), "{status}");
    }
}

#[tokio::test]
async fn a_failing_counter_is_an_error_not_a_result() {
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    let counter = FixedCounter(Err(CounterUnavailable::new("test: db down")));
    let err = engine(false)
        .decide(&input("张三", UNIONPAY), &source, &counter)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::CounterUnavailable(_)));
    assert_eq!(source.calls(), 0);
    // Format failures never reach the counter.
    let d = engine(false)
        .decide(&input("张三", "abc"), &source, &counter)
        .await
        .unwrap();
    assert_eq!(d.result, ResultCode::InvalidCardFormat);
}

#[tokio::test]
async fn the_decision_carries_the_masked_card_and_issuer_facts() {
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    let d = crate::common::decide(&engine(false), "张三", "6217 0012 1002 4455 220", &source).await;
    let c = d.card.unwrap();
    assert_eq!(c.masked(), "621700*********5220");
    let issuer = d.issuer.unwrap();
    assert_eq!(issuer.bank_code.as_deref(), Some("CCB"));
    assert_eq!(issuer.network, Network::UnionPay);
    let d = crate::common::decide(&engine(false), "张三", NO_ISSUER, &source).await;
    assert_eq!(d.issuer, None);
}

#[tokio::test]
async fn ten_attempts_a_beijing_day_then_minus_17_until_beijing_midnight() {
    let clock = Arc::new(FixedClock::new(NOW));
    let engine = Engine::new(
        BinTable::builtin_shared(),
        EngineConfig::default(),
        clock.clone(),
    );
    let counter = MemoryAttemptCounter::new();
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    let run = |name: &'static str, card: &'static str, account: &'static str| {
        let input = VerificationInput {
            account,
            name,
            card,
            daily_limit: 10,
        };
        let (engine, source, counter) = (&engine, &source, &counter);
        async move { engine.decide(&input, source, counter).await.unwrap() }
    };

    // Format failures are not counted.
    assert_eq!(
        run("王伟1", UNIONPAY, "a").await.result,
        ResultCode::InvalidName
    );
    assert_eq!(
        run("张三", "12", "a").await.result,
        ResultCode::InvalidCardFormat
    );
    assert_eq!(counter.count("a", &card(UNIONPAY), beijing_day(NOW)), 0);

    // Every request that passed steps 2–3 counts, whatever its Result.
    assert_eq!(run("张三", UNIONPAY, "a").await.result, ResultCode::Passed);
    for _ in 0..9 {
        let d = run("李四", "6217-0012-1002-4455-220", "a").await;
        assert_eq!((d.result, d.counted), (ResultCode::Passed, true));
    }
    let d = run("张三", UNIONPAY, "a").await;
    assert_eq!(
        (d.result, d.counted),
        (ResultCode::DailyLimitExceeded, false)
    );
    assert_eq!(counter.count("a", &card(UNIONPAY), beijing_day(NOW)), 10);
    assert_eq!(source.calls(), 10);

    // Another account, or another card, has its own count.
    assert_eq!(run("张三", UNIONPAY, "b").await.result, ResultCode::Passed);
    assert_eq!(
        run("张三", "6228480402564890018", "a").await.result,
        ResultCode::Passed
    );

    // Still the same Beijing day one second before 16:00 UTC; the next second is not.
    let next_midnight = (i64::from(beijing_day(NOW)) + 1) * 86_400 - 8 * 3600;
    clock.set(next_midnight - 1);
    assert_eq!(
        run("张三", UNIONPAY, "a").await.result,
        ResultCode::DailyLimitExceeded
    );
    clock.set(next_midnight);
    assert_eq!(run("张三", UNIONPAY, "a").await.result, ResultCode::Passed);
}

#[tokio::test]
async fn a_limit_of_zero_is_unlimited() {
    let counter = MemoryAttemptCounter::new();
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    let e = engine(false);
    for _ in 0..25 {
        let input = VerificationInput {
            account: "a",
            name: "张三",
            card: UNIONPAY,
            daily_limit: 0,
        };
        let d = e.decide(&input, &source, &counter).await.unwrap();
        assert_eq!((d.result, d.counted), (ResultCode::Passed, true));
    }
}

#[test]
fn verification_input_debug_hides_name_and_card() {
    let shown = format!("{:?}", input("张三", UNIONPAY));
    assert!(
        !shown.contains("张三") && !shown.contains("621700"),
        "{shown}"
    );
}

#[tokio::test]
async fn chain_source_asks_in_order_until_an_answer_other_than_unknown() {
    use cardcheck_domain::{ChainSource, SandboxSource, Source};
    let name = cardcheck_domain::CardholderName::parse("张三").unwrap();
    let unknown = Arc::new(Scripted::new(Ok(SourceAnswer::UnknownCard)));
    let lost = Arc::new(Scripted::new(Ok(SourceAnswer::Match(CardStatus::Lost))));
    let down = Arc::new(Scripted::new(unavailable()));

    let chain = ChainSource::new(vec![unknown.clone(), lost.clone(), down.clone()]);
    let answer = chain.lookup(&card(UNIONPAY), &name).await;
    assert_eq!(answer, Ok(SourceAnswer::Match(CardStatus::Lost)));
    assert_eq!((unknown.calls(), lost.calls(), down.calls()), (1, 1, 0));

    // An unavailable source before the answer makes the chain unavailable (-16).
    let chain = ChainSource::new(vec![down.clone(), lost.clone()]);
    assert!(chain.lookup(&card(UNIONPAY), &name).await.is_err());

    // Nobody knows the card → unknown; an empty chain knows nothing.
    let chain = ChainSource::new(vec![unknown.clone(), Arc::new(SandboxSource)]);
    let answer = chain.lookup(&card(UNIONPAY), &name).await;
    assert_eq!(answer, Ok(SourceAnswer::UnknownCard));
    let answer = ChainSource::default().lookup(&card(UNIONPAY), &name).await;
    assert_eq!(answer, Ok(SourceAnswer::UnknownCard));

    // Registry first, sandbox second: sandbox cards still answer.
    let chain = ChainSource::new(vec![unknown, Arc::new(SandboxSource)]);
    let answer = chain.lookup(&card("6226090210146748"), &name).await;
    assert_eq!(answer, Ok(SourceAnswer::NameMismatch));
}
