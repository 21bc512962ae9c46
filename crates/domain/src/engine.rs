//! The decision pipeline of verification.md §2, steps 2–7 (step 1, decryption, is the
//! caller's; step 8, the ledger, records the returned [`Decision`]).
//!
//! | step | check | Result |
//! | --- | --- | --- |
//! | 2 | name format | `-2` |
//! | 3 | card format | `-3` |
//! | 4 | daily attempt limit (counts every request that passed 2–3) | `-17` |
//! | 5 | issuer BIN | `-8` |
//! | 6 | length for the issuer; Luhn where mandated or `strict_luhn` | `-7` |
//! | 7 | source: unavailable / unknown card / name differs / status | `-16` / `-7` / `-4` / status |
//!
//! The first rule that fires decides.

use std::fmt;
use std::sync::Arc;

use crate::attempts::{AttemptCounter, AttemptDecision, CounterUnavailable};
use crate::bin::{BinEntry, BinLookup, BinTable, CardType, Network};
use crate::card::CardNumber;
use crate::clock::{Clock, beijing_day};
use crate::name::CardholderName;
use crate::result::ResultCode;
use crate::source::{Source, SourceAnswer};

/// Per-deployment engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// Treat a Luhn failure as `-7` for UnionPay and domestic Chinese BINs too
    /// (verification.md §2 step 6). Off by default: real UnionPay cards fail Luhn.
    pub strict_luhn: bool,
}

/// One request's inputs, after decryption.
#[derive(Clone, Copy)]
pub struct VerificationInput<'a> {
    /// The calling account (the attempt limit is per account and card).
    pub account: &'a str,
    /// The raw `Name`.
    pub name: &'a str,
    /// The raw `BankCard`.
    pub card: &'a str,
    /// Attempts allowed per card per Beijing day for this account; `0` = unlimited.
    pub daily_limit: u32,
}

impl fmt::Debug for VerificationInput<'_> {
    /// Never prints the name or the card.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationInput")
            .field("account", &self.account)
            .field("name", &format_args!("<{} bytes>", self.name.len()))
            .field("card", &format_args!("<{} bytes>", self.card.len()))
            .field("daily_limit", &self.daily_limit)
            .finish()
    }
}

/// What the BIN table says about the card's issuer (owned, for the ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerFacts {
    /// Issuing bank's name, if known (Chinese issuer BINs).
    pub bank_name: Option<String>,
    /// Issuing bank's Alipay code, if known.
    pub bank_code: Option<String>,
    /// Card type.
    pub card_type: CardType,
    /// Card network.
    pub network: Network,
}

impl From<&BinEntry> for IssuerFacts {
    fn from(e: &BinEntry) -> Self {
        IssuerFacts {
            bank_name: e.bank_name.clone(),
            bank_code: e.bank_code.clone(),
            card_type: e.card_type,
            network: e.network,
        }
    }
}

/// The outcome of one verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The Result.
    pub result: ResultCode,
    /// The parsed card, when step 3 passed (for the masked ledger column).
    pub card: Option<CardNumber>,
    /// The BIN entry's facts, when step 5 found a prefix (also for a wrong length).
    pub issuer: Option<IssuerFacts>,
    /// Whether an attempt was registered with the counter (step 4).
    pub counted: bool,
}

/// The pipeline could not decide (not a Result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The attempt counter failed; the server answers `InternalError`.
    #[error(transparent)]
    CounterUnavailable(#[from] CounterUnavailable),
}

/// The verification engine: BIN table, settings and clock.
#[derive(Clone)]
pub struct Engine {
    bins: Arc<BinTable>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("bins", &self.bins)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine.
    pub fn new(bins: Arc<BinTable>, config: EngineConfig, clock: Arc<dyn Clock>) -> Self {
        Engine {
            bins,
            config,
            clock,
        }
    }

    /// The engine's BIN table.
    pub fn bins(&self) -> &BinTable {
        &self.bins
    }

    /// The engine's settings.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Runs verification.md §2 steps 2–7 over `input`, asking `source` and counting
    /// with `attempts`. Source unavailability is Result `-16`; only a failing counter
    /// is an error.
    pub async fn decide(
        &self,
        input: &VerificationInput<'_>,
        source: &dyn Source,
        attempts: &dyn AttemptCounter,
    ) -> Result<Decision, EngineError> {
        let decided = |result, card, issuer, counted| {
            Ok(Decision {
                result,
                card,
                issuer,
                counted,
            })
        };

        // §2 step 2: name format → -2.
        let Ok(name) = CardholderName::parse(input.name) else {
            return decided(ResultCode::InvalidName, None, None, false);
        };
        // §2 step 3: card format → -3.
        let Ok(card) = CardNumber::parse(input.card) else {
            return decided(ResultCode::InvalidCardFormat, None, None, false);
        };

        // §2 step 4: daily attempt limit → -17 (before any source is consulted).
        let day = beijing_day(self.clock.now_unix());
        match attempts
            .register_attempt(input.account, &card, day, input.daily_limit)
            .await?
        {
            AttemptDecision::Allowed => {}
            AttemptDecision::Exceeded => {
                return decided(ResultCode::DailyLimitExceeded, Some(card), None, false);
            }
        }

        // §2 step 5: issuer → -8; §2 step 6: length → -7.
        let entry = match self.bins.lookup(&card) {
            BinLookup::NoIssuer => return decided(ResultCode::NoIssuer, Some(card), None, true),
            BinLookup::WrongLength(e) => {
                return decided(
                    ResultCode::InvalidCardNumber,
                    Some(card),
                    Some(e.into()),
                    true,
                );
            }
            BinLookup::Found(e) => e,
        };
        let issuer = Some(IssuerFacts::from(entry));

        // §2 step 6: Luhn → -7 where the network mandates it, or everywhere if strict.
        if (entry.luhn_required || self.config.strict_luhn) && !card.luhn_valid() {
            return decided(ResultCode::InvalidCardNumber, Some(card), issuer, true);
        }

        // §2 step 7: the source.
        let result = match source.lookup(&card, &name).await {
            Err(_) => ResultCode::SourceBusy,
            Ok(SourceAnswer::UnknownCard) => ResultCode::InvalidCardNumber,
            Ok(SourceAnswer::NameMismatch) => ResultCode::HolderMismatch,
            Ok(SourceAnswer::Match(status)) => status.result(),
        };
        decided(result, Some(card), issuer, true)
    }
}
