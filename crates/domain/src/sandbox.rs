//! The sandbox: a stable, documented catalogue of reserved test cards that force each
//! Result (verification.md §3), and the [`SandboxSource`] that answers for them.
//!
//! Like payment test cards, a sandbox card forces its Result for **any** validly
//! formatted name: `Wei Xiaobao` and `张三` + `6225768888888888` are both `0`. The
//! catalogue is also published in `docs/sandbox.md`; a test keeps the two in step.
//!
//! How each Result is reached:
//!
//! - Results the source decides (`0`, `-1`, `-4`, `-5`, `-6`, `-9`…`-15`, `-18`, `-16`
//!   and `-7` "unknown card") come from [`SandboxSource`]. Except Tencent's two doc
//!   examples, these cards are CCB debit numbers `621700 0000000000 NN C`: BIN 621700
//!   (中国建设银行, 19 digits), `NN` = the Result without its sign, `C` = a valid Luhn
//!   digit.
//! - `-2`, `-3`, `-8` and the two other `-7` rows are decided by the pipeline itself
//!   (bad name, bad card format, no issuer, wrong length, Luhn failure on a Visa BIN).
//! - `-17` is the real attempt limit: the 11th attempt with one card on one Beijing day
//!   (default limit 10). The reserved card `6217000000000000178` passes (`0`) until then,
//!   so it can be used to exhaust the limit without touching the other cards.
//!
//! Any other card is unknown to the sandbox (`-7`).

use std::collections::HashMap;
use std::sync::OnceLock;

use async_trait::async_trait;
use serde::ser::SerializeStruct;

use crate::card::CardNumber;
use crate::name::CardholderName;
use crate::result::ResultCode;
use crate::source::{Source, SourceAnswer, SourceUnavailable};
use crate::status::CardStatus;

/// One reserved sandbox card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxCard {
    /// The card number to send (digits only).
    pub card: &'static str,
    /// The Result it forces.
    pub result: ResultCode,
    /// The name to send when the row needs a particular one (only the `-2` row);
    /// `None` means any validly formatted name.
    pub name: Option<&'static str>,
    /// What the row demonstrates, in English.
    pub note_en: &'static str,
}

impl serde::Serialize for SandboxCard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SandboxCard", 5)?;
        s.serialize_field("card", self.card)?;
        s.serialize_field("result", self.result.wire())?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("description", self.result.description(crate::Lang::En))?;
        s.serialize_field("note", self.note_en)?;
        s.end()
    }
}

const fn row(
    card: &'static str,
    result: ResultCode,
    name: Option<&'static str>,
    note_en: &'static str,
) -> SandboxCard {
    SandboxCard {
        card,
        result,
        name,
        note_en,
    }
}

/// The catalogue, in Result order. Stable: rows are only ever added.
pub const CATALOGUE: [SandboxCard; 21] = [
    row(
        "6225768888888888",
        ResultCode::Passed,
        None,
        "Tencent's doc example (Wei Xiaobao); CMB credit card; passes for any valid name",
    ),
    row(
        "6217000000000000012",
        ResultCode::Failed,
        None,
        "card known, name matches, declined for another reason",
    ),
    row(
        "6225768888888888",
        ResultCode::InvalidName,
        Some("王伟1"),
        "any card with a name that fails the format check (digits, emoji, a lone ·, mixed scripts)",
    ),
    row(
        "62170000003",
        ResultCode::InvalidCardFormat,
        None,
        "11 digits: fails the card format check (12 to 19 digits); letters do too",
    ),
    row(
        "6226090210146748",
        ResultCode::HolderMismatch,
        None,
        "Tencent's doc example (Wei Xiaobao); CMB debit card; name never matches",
    ),
    row(
        "6217000000000000053",
        ResultCode::CardlessPaymentNotEnabled,
        None,
        "card status: cardless payment not enabled",
    ),
    row(
        "6217000000000000061",
        ResultCode::Confiscated,
        None,
        "card status: confiscated",
    ),
    row(
        "6217000000000000079",
        ResultCode::InvalidCardNumber,
        None,
        "format, issuer and length fine, but unknown to the verification source",
    ),
    row(
        "6217000000004",
        ResultCode::InvalidCardNumber,
        None,
        "CCB BIN 621700 with 13 digits: a length no issuer or network uses",
    ),
    row(
        "4026580000000079",
        ResultCode::InvalidCardNumber,
        None,
        "CMB Visa BIN 402658 with a wrong Luhn check digit (Visa mandates Luhn)",
    ),
    row(
        "7000000000000000086",
        ResultCode::NoIssuer,
        None,
        "prefix 7: no issuer BIN and no card network",
    ),
    row(
        "6217000000000000095",
        ResultCode::Dormant,
        None,
        "card status: dormant or not initialised",
    ),
    row(
        "6217000000000000103",
        ResultCode::Fraud,
        None,
        "card status: fraud or swallowed card",
    ),
    row(
        "6217000000000000111",
        ResultCode::Lost,
        None,
        "card status: reported lost",
    ),
    row(
        "6217000000000000129",
        ResultCode::Expired,
        None,
        "card status: expired",
    ),
    row(
        "6217000000000000137",
        ResultCode::Restricted,
        None,
        "card status: restricted",
    ),
    row(
        "6217000000000000145",
        ResultCode::PinTriesExceeded,
        None,
        "card status: PIN tries exceeded",
    ),
    row(
        "6217000000000000152",
        ResultCode::IssuerUnsupported,
        None,
        "card status: issuer does not support the transaction",
    ),
    row(
        "6217000000000000160",
        ResultCode::SourceBusy,
        None,
        "the sandbox source reports itself unavailable for this card",
    ),
    row(
        "6217000000000000178",
        ResultCode::DailyLimitExceeded,
        None,
        "passes (0) ten times a Beijing day; the 11th attempt that day is -17 (default limit 10)",
    ),
    row(
        "6217000000000000186",
        ResultCode::StatusException,
        None,
        "card status: status exception",
    ),
];

/// What the sandbox source says for a catalogue row, if it answers for it at all.
fn source_behaviour(card: &SandboxCard) -> Option<Result<SourceAnswer, SourceUnavailable>> {
    match card.result {
        ResultCode::HolderMismatch => Some(Ok(SourceAnswer::NameMismatch)),
        ResultCode::SourceBusy => Some(Err(SourceUnavailable::new(
            "sandbox: reserved card forces the source to be unavailable",
        ))),
        // The -17 card passes until the real attempt limit stops it.
        ResultCode::DailyLimitExceeded => Some(Ok(SourceAnswer::Match(CardStatus::Active))),
        other => CardStatus::for_result(other).map(|s| Ok(SourceAnswer::Match(s))),
    }
}

type Answers = HashMap<&'static str, Result<SourceAnswer, SourceUnavailable>>;

fn answers() -> &'static Answers {
    static ANSWERS: OnceLock<Answers> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let mut map = HashMap::new();
        for card in &CATALOGUE {
            if card.name.is_some() {
                // Rows forced by the name (-2) say nothing about the card.
                continue;
            }
            if let Some(answer) = source_behaviour(card) {
                map.entry(card.card).or_insert(answer);
            }
        }
        map
    })
}

/// The sandbox verification source: answers for the catalogue's cards, whatever the
/// (valid) name; every other card is unknown (`-7`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxSource;

impl SandboxSource {
    /// The sandbox source.
    pub fn new() -> Self {
        SandboxSource
    }

    /// The catalogue it answers from.
    pub fn catalogue() -> &'static [SandboxCard] {
        &CATALOGUE
    }
}

#[async_trait]
impl Source for SandboxSource {
    async fn lookup(
        &self,
        card: &CardNumber,
        _name: &CardholderName,
    ) -> Result<SourceAnswer, SourceUnavailable> {
        match answers().get(card.digits()) {
            Some(answer) => answer.clone(),
            None => Ok(SourceAnswer::UnknownCard),
        }
    }
}
