//! The HTTP edge on a real socket (the production listener, `serve_with`): bodies that
//! are announced too large or framed wrongly; and what the request log line says about
//! the caller's SecretId.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cardcheck_server::{ListenerConfig, serve_with};
use cardcheck_store::{
    Account, AccountStore, AccountUpdate, Credential, IssuedCredential, StoreError,
};
use cardcheck_tc3::RawRequest;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `s` on a loopback port with the production listener; returns the address.
async fn listen(s: &TestServer) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(
        listener,
        cardcheck_server::app(s.state.clone()),
        ListenerConfig::default(),
        std::future::pending(),
    ));
    addr
}

/// Sends `head` (and nothing more) and reads one response; returns (status line,
/// parsed body). Panics if the whole response takes longer than `within`.
async fn exchange(addr: std::net::SocketAddr, head: &[u8], within: Duration) -> (String, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("a Content-Length in the response");
                if got.len() >= end + 4 + len {
                    return (end, len);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before a full response: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (end, len) = tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"));
    assert!(started.elapsed() < within);
    let status = String::from_utf8_lossy(&got[..end])
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let body = serde_json::from_slice(&got[end + 4..end + 4 + len]).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_at_once_without_waiting_for_the_body() {
    let s = server().await;
    let addr = listen(&s).await;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
         Content-Length: 20000000\r\n\r\n"
    );
    let (status, body) = exchange(addr, head.as_bytes(), Duration::from_secs(1)).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(error_of(&body), "RequestSizeLimitExceeded", "{body}");
    assert!(!request_id_of(&body).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_chunk_size_is_invalid_request_not_a_size_error() {
    let s = server().await;
    let addr = listen(&s).await;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    let (status, body) = exchange(addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(error_of(&body), "InvalidRequest", "{body}");
    assert_eq!(
        body["Response"]["Error"]["Message"],
        "The request body is malformed and could not be read."
    );
}

#[tokio::test]
async fn a_body_over_the_limit_without_content_length_is_still_request_size_limit_exceeded() {
    let s = server().await;
    let request = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", HOST)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(vec![
            b' ';
            cardcheck_server::http::MAX_BODY_BYTES
                + 1
        ]))
        .unwrap();
    assert!(request.headers().get("content-length").is_none());
    let (_, bytes) = s.send_request(request).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_of(&body), "RequestSizeLimitExceeded", "{body}");
}

/// Accounts as stored, plus one made-up SecretId that resolves to a real credential
/// (stored SecretIds are random, so a digit run cannot be asked for).
struct AliasedAccounts {
    inner: Arc<dyn AccountStore>,
    alias: String,
    target: String,
}

#[async_trait]
impl AccountStore for AliasedAccounts {
    async fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        self.inner.create_account(name).await
    }
    async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.inner.account(name).await
    }
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.inner.list_accounts().await
    }
    async fn update_account(
        &self,
        name: &str,
        update: &AccountUpdate,
    ) -> Result<Account, StoreError> {
        self.inner.update_account(name, update).await
    }
    async fn create_credential(
        &self,
        account: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<IssuedCredential, StoreError> {
        self.inner.create_credential(account, ttl_seconds).await
    }
    async fn credential(&self, secret_id: &str) -> Result<Option<Credential>, StoreError> {
        if secret_id == self.alias {
            let mut c = self.inner.credential(&self.target).await?;
            if let Some(c) = c.as_mut() {
                c.secret_id = self.alias.clone();
            }
            return Ok(c);
        }
        self.inner.credential(secret_id).await
    }
    async fn revoke_credential(&self, secret_id: &str) -> Result<bool, StoreError> {
        self.inner.revoke_credential(secret_id).await
    }
    async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>, StoreError> {
        self.inner.list_credentials(account).await
    }
}

/// The request log line's SecretId (`Who::secret_id`) for `call`, answered by `state`.
async fn logged_secret_id(
    state: &cardcheck_server::AppState,
    s: &TestServer,
    call: &Call,
) -> String {
    let (parts, body) = s.sign(call).into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let raw = RawRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let answer = state.answer(&raw, "test-request", Instant::now()).await;
    answer
        .who
        .expect("a parsed request has a log identity")
        .secret_id
}

#[tokio::test]
async fn a_stored_secret_id_with_six_digits_is_logged_verbatim_and_an_unknown_one_redacted() {
    let s = server().await;
    let issued = s.account("digits").await;
    // 36 characters like a generated SecretId, with a 6-digit run.
    let alias = "AKIDq7W2123456mP9vZbL0kWc4Rt8YhN3sJd".to_owned();
    let mut backend = s.backend.clone();
    backend.accounts = Arc::new(AliasedAccounts {
        inner: s.backend.accounts.clone(),
        alias: alias.clone(),
        target: issued.secret_id.clone(),
    });
    let state = cardcheck_server::AppState::new(
        backend,
        cardcheck_server::ServerConfig {
            credential_ttl: Duration::ZERO,
            ..Default::default()
        },
        s.clock.clone(),
    )
    .await
    .unwrap();

    let mut call = Call::new(&issued, "张三", DOC_CARD_PASS);
    call.credential.secret_id = alias.clone();
    assert_eq!(logged_secret_id(&state, &s, &call).await, alias);
    // Matched, but the signature is wrong: still our SecretId, still verbatim.
    let mut wrong_key = call.clone();
    wrong_key.credential.secret_key = "not-the-key".into();
    assert_eq!(logged_secret_id(&state, &s, &wrong_key).await, alias);

    // Unknown: a card number (or anything with a digit run) in the SecretId is redacted.
    let mut unknown = call.clone();
    unknown.credential.secret_id = "AKID6225 7688 8888 8888".into();
    assert_eq!(
        logged_secret_id(&state, &s, &unknown).await,
        "AKID(redacted)"
    );
    unknown.credential.secret_id = "AKIDq7W2123457mP9vZbL0kWc4Rt8YhN3sJd".into();
    assert_eq!(
        logged_secret_id(&state, &s, &unknown).await,
        "AKIDq7W(redacted)mP9vZbL0kWc4Rt8YhN3sJd"
    );
}
