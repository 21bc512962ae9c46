//! The floor: the cheapest answer the server's own stack (axum 0.8 on hyper and a
//! multi-threaded tokio runtime, as `cardcheck serve`) can give — read the request,
//! return a fixed 150-byte JSON shaped like a BankCard2EVerification answer.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::header;

/// The answer: exactly 150 bytes.
pub const FLOOR_BODY: &str = concat!(
    r#"{"Response":{"Result":"0","Description":"#,
    r#""Passed: the name matches the holder of this bank card..","#,
    r#""RequestId":"00000000-0000-4000-8000-000000000000"}}"#
);

async fn answer(_body: Bytes) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], FLOOR_BODY)
}

pub async fn run(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().fallback(answer);
    axum::serve(listener, app).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_floor_answer_is_150_bytes_of_json() {
        assert_eq!(super::FLOOR_BODY.len(), 150);
        assert!(serde_json::from_str::<serde_json::Value>(super::FLOOR_BODY).is_ok());
    }
}
