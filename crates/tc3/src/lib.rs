//! Tencent Cloud API 3.0 wire protocol for cardcheck: parse, verify and sign faceid
//! requests, error codes and response envelopes. Pure and synchronous: secrets and
//! the clock come from the caller. The contract is `shared/spec/protocol.md` (§ refs).
//!
//! Layout:
//! - [`error`]: every error code (§5, §6.5) with its en/zh message; [`ApiError`].
//! - [`language`]: `X-TC-Language` → [`Language`].
//! - [`request`]: [`RawRequest`], [`Limits`], [`parse`] (secret-free first pass),
//!   [`ParsedRequest`] (timestamp check, business parameters).
//! - [`params`]: [`Params`], the common parameters.
//! - [`flatten`]: §2.3 flattening of nested parameters, both directions.
//! - [`verify`]: TC3 and v1 signature verification, [`tc3_signing_key`].
//! - [`sign`]: the client side, byte-identical to the Python SDK.
//! - [`envelope`]: success and error response bodies, RequestId.
//! - [`json`], [`form`], [`date`]: wire helpers (strict JSON, form codec, UTC date).
//!
//! Server flow: [`parse`] → look up the SecretId → [`ParsedRequest::check_timestamp`]
//! → [`ParsedRequest::verify`] (or with a cached kSigning) → token → Action/Version →
//! [`ParsedRequest::business_params`] → [`envelope`].
#![forbid(unsafe_code)]

pub mod date;
pub mod envelope;
pub mod error;
pub mod flatten;
pub mod form;
pub mod json;
pub mod language;
pub mod params;
pub mod request;
pub mod sign;
pub mod verify;

pub use error::{ApiError, ErrorCode};
pub use language::Language;
pub use params::Params;
pub use request::{Limits, ParsedRequest, RawRequest, SignMethod, parse};
pub use verify::{VerifyKey, tc3_signing_key};
