//! Integration tests of cardcheck-encryption, one binary (protocol.md §7).
//! Fixtures: `tests/fixtures/` (see PROVENANCE.md there).
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;
mod errors;
mod keys_and_cache;
mod properties;
mod round_trip;
mod worked_example;
