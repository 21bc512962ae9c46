//! `cardcheck-server`: the only crate that knows HTTP (design.md). It authenticates a
//! Tencent Cloud API 3.0 request, limits, decrypts, asks the engine, records the answer
//! in the ledger and renders the envelope.
//!
//! - [`pipeline`]: the request's way through, in protocol order.
//! - [`errors`]: the one failure → Tencent error code map.
//! - [`auth`]: SecretId → credential and account, cached; signature and token checks.
//! - [`http`]: the axum routers (API and admin) and graceful serving.
//! - [`state`], [`config`], [`metrics`].

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod errors;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod pipeline;
pub mod state;

pub use config::ServerConfig;
pub use http::{admin_app, app, serve};
pub use listener::{ListenerConfig, load_tls, serve_with};
pub use state::{AppState, StartError, load_or_create_key_ring};
