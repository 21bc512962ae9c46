//! A server in-process (the axum router driven with `oneshot`), a fixed clock and a
//! signer built on `cardcheck_tc3::sign` — the same code `cardcheck verify` uses.
#![allow(clippy::unwrap_used, dead_code)] // tests may unwrap (project standard)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use cardcheck_domain::FixedClock;
use cardcheck_server::{AppState, ServerConfig};
use cardcheck_store::{Backend, IssuedCredential};
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, sign_request};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// 2026-12-04T04:00:00Z: noon in Beijing.
pub const NOW: i64 = 1_796_356_800;
pub const HOST: &str = "127.0.0.1:8080";
pub const ACTION: &str = "BankCard2EVerification";
pub const VERSION: &str = "2018-03-01";
pub const DOC_CARD_PASS: &str = "6225768888888888";
pub const DOC_CARD_MISMATCH: &str = "6226090210146748";

pub struct TestServer {
    pub state: Arc<AppState>,
    pub backend: Backend,
    pub clock: Arc<FixedClock>,
    pub _dir: tempfile::TempDir,
}

/// How to sign and send one request.
#[derive(Clone)]
pub struct Call {
    pub credential: Credential,
    pub sign_method: SignMethod,
    pub http_method: &'static str,
    pub action: String,
    pub version: String,
    pub language: Option<&'static str>,
    pub timestamp: Option<i64>,
    pub params: Map<String, Value>,
}

impl Call {
    pub fn new(issued: &IssuedCredential, name: &str, card: &str) -> Call {
        let mut params = Map::new();
        params.insert("Name".into(), json!(name));
        params.insert("BankCard".into(), json!(card));
        Call {
            credential: Credential {
                secret_id: issued.secret_id.clone(),
                secret_key: issued.secret_key.clone(),
                token: issued.token.clone(),
            },
            sign_method: SignMethod::Tc3HmacSha256,
            http_method: "POST",
            action: ACTION.into(),
            version: VERSION.into(),
            language: None,
            timestamp: None,
            params,
        }
    }
}

pub async fn server_with(config: ServerConfig) -> TestServer {
    server_with_keys(config, None).await
}

/// As [`server_with`], with a given Encryption key ring stored before start-up.
pub async fn server_with_keys(
    config: ServerConfig,
    keys: Option<cardcheck_encryption::KeyRing>,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let backend = cardcheck_store::open_sqlite(dir.path()).unwrap();
    if let Some(keys) = keys {
        backend
            .keys
            .save_server_keys(&keys.to_bytes())
            .await
            .unwrap();
    }
    let clock = Arc::new(FixedClock::new(NOW));
    let state = AppState::new(backend.clone(), config, clock.clone())
        .await
        .unwrap();
    TestServer {
        state,
        backend,
        clock,
        _dir: dir,
    }
}

/// The demo profile, with credentials re-read on every request (TTL 0) so that
/// status changes and revocations show at once.
pub async fn server() -> TestServer {
    server_with(ServerConfig {
        credential_ttl: Duration::ZERO,
        ..ServerConfig::default()
    })
    .await
}

impl TestServer {
    /// The usage ledger, all accounts and days.
    pub async fn usage_rows(&self) -> Vec<cardcheck_store::UsageRow> {
        self.backend
            .ledger
            .usage(&cardcheck_store::UsageFilter::default())
            .await
            .unwrap()
    }

    /// A new account with unlimited daily attempts, no practical rate limit and a fresh
    /// key pair (tests of the limits set them).
    pub async fn account(&self, name: &str) -> IssuedCredential {
        self.backend.accounts.create_account(name).await.unwrap();
        self.backend
            .accounts
            .update_account(
                name,
                &cardcheck_store::AccountUpdate {
                    daily_attempts: Some(0),
                    qps: Some(100_000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.backend
            .accounts
            .create_credential(name, None)
            .await
            .unwrap()
    }

    /// Signs `call` and sends it; returns (headers, parsed body).
    pub async fn send(&self, call: &Call) -> (http::HeaderMap, Value) {
        let (headers, bytes) = self.send_raw(call).await;
        (headers, serde_json::from_slice(&bytes).unwrap())
    }

    pub fn sign(&self, call: &Call) -> http::Request<Body> {
        let signed = sign_request(&SignInput {
            credential: &call.credential,
            host: HOST,
            service: "faceid",
            action: &call.action,
            version: &call.version,
            region: Some("ap-guangzhou"),
            language: call.language,
            request_client: Some("SDK_RUST_TEST"),
            sign_method: call.sign_method,
            http_method: call.http_method,
            timestamp: call.timestamp.unwrap_or(NOW),
            nonce: 12345,
            params: &call.params,
        });
        let mut builder = http::Request::builder()
            .method(signed.method.as_str())
            .uri(signed.path_and_query.as_str());
        for (k, v) in &signed.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder.body(Body::from(signed.body)).unwrap()
    }

    pub async fn send_raw(&self, call: &Call) -> (http::HeaderMap, Vec<u8>) {
        self.send_request(self.sign(call)).await
    }

    pub async fn send_request(&self, request: http::Request<Body>) -> (http::HeaderMap, Vec<u8>) {
        let response = cardcheck_server::app(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            http::StatusCode::OK,
            "always HTTP 200 (protocol.md §4)"
        );
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (headers, bytes.to_vec())
    }
}

/// `Response.Result`, panicking with the body when it is an error.
pub fn result_of(body: &Value) -> &str {
    body["Response"]["Result"]
        .as_str()
        .unwrap_or_else(|| panic!("not a Result: {body}"))
}

/// `Response.Error.Code`, panicking with the body when it is a Result.
pub fn error_of(body: &Value) -> &str {
    body["Response"]["Error"]["Code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {body}"))
}

pub fn request_id_of(body: &Value) -> &str {
    body["Response"]["RequestId"].as_str().unwrap()
}
