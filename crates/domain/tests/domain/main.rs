//! Integration tests of `cardcheck-domain`, built as one test binary (less linking).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bins;
mod cards;
mod common;
mod names;
mod pipeline;
mod props;
mod sandbox;
