//! `cardcheck-domain`: the verification itself — whether a cardholder name and a bank
//! card number belong together, answered with Tencent's BankCard2EVerification Result
//! codes. The contract is `spec/verification.md`; section numbers below cite it.
//!
//! # Layout
//!
//! - [`card`]: [`CardNumber`] — parse (§2 step 3), mask (first 6, last 4), Luhn.
//! - [`name`]: [`CardholderName`] — normalise and parse (§2 step 2).
//! - [`bin`]: [`BinTable`] — built-in issuer BINs and network ranges, operator extras,
//!   longest-prefix lookup with per-prefix lengths (§2 steps 5–6).
//! - [`result`]: [`ResultCode`] — `0` … `-18`, billing class, zh/en descriptions.
//! - [`status`]: [`CardStatus`] — a source's card status and its Result (§2 step 7).
//! - [`source`]: the [`Source`] trait, [`SourceAnswer`], [`ChainSource`] (§3).
//! - [`attempts`]: the [`AttemptCounter`] trait and [`MemoryAttemptCounter`] (§2 step 4).
//! - [`clock`]: the injected [`Clock`] and [`beijing_day`].
//! - [`engine`]: [`Engine::decide`] — the pipeline, §2 steps 2–7.
//! - [`sandbox`]: reserved test cards forcing each Result, and [`SandboxSource`].
//!
//! Card numbers and names never appear in `Debug`, `Display` or error messages: cards
//! print masked, names print as their length.
//!
//! Data provenance: `data/SOURCES.md` and `data/LICENSES.md` in this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attempts;
pub mod bin;
pub mod card;
pub mod clock;
pub mod engine;
pub mod name;
pub mod result;
pub mod sandbox;
pub mod source;
pub mod status;

pub use attempts::{AttemptCounter, AttemptDecision, CounterUnavailable, MemoryAttemptCounter};
pub use bin::{BinEntry, BinError, BinLookup, BinOrigin, BinTable, CardType, Network};
pub use card::{CardFormatError, CardNumber};
pub use clock::{Clock, FixedClock, SystemClock, beijing_day};
pub use engine::{Decision, Engine, EngineConfig, EngineError, IssuerFacts, VerificationInput};
pub use name::{CardholderName, NameFormatError, NameScript};
pub use result::{Lang, ResultCode};
pub use sandbox::{CATALOGUE, SandboxCard, SandboxSource};
pub use source::{ChainSource, Source, SourceAnswer, SourceUnavailable};
pub use status::CardStatus;
