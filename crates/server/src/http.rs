//! The HTTP edge (axum): one route `/` for GET and POST (protocol.md §1–§4), the admin
//! listener, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cardcheck_tc3::envelope::{CONTENT_TYPE, error_body, new_request_id};
use cardcheck_tc3::{ApiError, ErrorCode, Language, RawRequest};

use crate::errors::Failure;
use crate::pipeline::Who;
use crate::state::AppState;

/// Largest body read: TC3 POST allows 10 MB (protocol.md §5 "Limits"); a larger body
/// is answered `RequestSizeLimitExceeded` without reading it all — at once when its
/// `Content-Length` says so, else as soon as more than this has arrived.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Most buffer reserved up front from a `Content-Length` (the rest grows as data comes:
/// an announcement alone must not cost memory).
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Reads the body, at most [`MAX_BODY_BYTES`]: [`Failure::BodyTooLarge`] before
/// reading anything when `Content-Length` announces more, or as soon as more arrives;
/// [`Failure::MalformedBody`] when `Content-Length` is not a number or the body's
/// framing is broken (a bad chunk size, the connection cut mid-body).
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Bytes, Failure> {
    use axum::body::HttpBody;

    let mut capacity = 0;
    if let Some(announced) = headers.get(header::CONTENT_LENGTH) {
        let len = announced
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(Failure::MalformedBody)?;
        if len > MAX_BODY_BYTES as u64 {
            return Err(Failure::BodyTooLarge);
        }
        capacity =
            usize::try_from(len).map_or(INITIAL_BODY_CAPACITY, |n| n.min(INITIAL_BODY_CAPACITY));
    }
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "request body unreadable");
            Failure::MalformedBody
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > MAX_BODY_BYTES - out.len() {
                return Err(Failure::BodyTooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

/// The API router: `/` (and any path, answered as the API is) for every method, so
/// that PUT is `UnsupportedProtocol` in an envelope rather than an HTTP 405.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(api)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn envelope_response(body: Vec<u8>, request_id: &str, trace_id: Option<HeaderValue>) -> Response {
    let mut response = Response::new(Body::from(body));
    // HTTP 200 and exactly `application/json` (protocol.md §4).
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-tc-requestid", v);
    }
    if let Some(trace) = trace_id {
        headers.insert("x-tc-traceid", trace);
    }
    response
}

async fn api(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let trace_id = request.headers().get("x-tc-traceid").cloned();
    // A per-request deadline (issue 9), covering a slowly sent body too.
    match tokio::time::timeout(
        state.config.request_timeout,
        api_within_deadline(&state, request, &request_id, started),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => {
            state.metrics.record_timeout();
            state.metrics.record(
                None,
                "error",
                "InternalError",
                state.config.request_timeout.as_micros() as u64,
            );
            tracing::warn!(request_id = %request_id, outcome = %"InternalError", "request deadline exceeded");
            let error =
                ApiError::with_detail(ErrorCode::InternalError, "The request took too long.");
            envelope_response(
                error_body(&error, Language::EnUs, &request_id),
                &request_id,
                trace_id,
            )
        }
    }
}

async fn api_within_deadline(
    state: &Arc<AppState>,
    request: Request<Body>,
    request_id: &str,
    started: Instant,
) -> Response {
    let request_id = request_id.to_owned();
    let (parts, body) = request.into_parts();
    // RFC 9112 §3.2: a request with more than one Host line is answered 400. The TC3
    // signature covers `host`, and two values leave it unclear which one was signed.
    // (A request without one is answered with an envelope, as other malformed requests
    // are: its signature cannot verify.)
    if parts.headers.get_all(header::HOST).iter().nth(1).is_some() {
        let micros = started.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        state.metrics.record(None, "error", "HTTP400", micros);
        log_request(&request_id, None, "error", "HTTP400", micros);
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-tc-requestid", v);
        }
        return response;
    }
    let trace_id = parts.headers.get("x-tc-traceid").cloned();
    let body: Bytes = match read_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(failure) => {
            let error = failure.into_api_error();
            let micros = started.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
            state
                .metrics
                .record(None, "error", error.code().as_str(), micros);
            log_request(&request_id, None, "error", error.code().as_str(), micros);
            let body = error_body(&error, Language::EnUs, &request_id);
            return envelope_response(body, &request_id, trace_id);
        }
    };
    let mut headers: HeaderMap = parts.headers;
    // HTTP/2 carries the host in :authority; the signature covers it as `host`.
    if !headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, v);
    }
    // The answer runs as a task of its own, so that a client that disconnects (or the
    // deadline above) cannot cancel it between its ledger row and its replay entry: a
    // cancelled answer was billed, left its replay entry "in flight" for 30 s (the
    // client's identical retry waited, then timed out) and was billed again when the
    // retry ran anew. Run to the end, it leaves the answer for the retry to replay.
    let task_state = Arc::clone(state);
    let method = parts.method;
    let uri = parts.uri;
    let answered = tokio::spawn(async move {
        let raw = RawRequest {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        let mut answer = task_state.answer(&raw, &request_id, started).await;
        let request_id = answer.replayed_request_id.take().unwrap_or(request_id);
        let micros = started.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        // One line per request (issue 9): identities and outcome, never a card or a name.
        let who = answer.who.as_ref();
        let action = who.map(|w| w.action.as_str());
        task_state
            .metrics
            .record(action, answer.outcome.0, &answer.outcome.1, micros);
        log_request(
            &request_id,
            who,
            answer.outcome.0,
            &answer.outcome.1,
            micros,
        );
        (answer.body, request_id)
    })
    .await;
    match answered {
        Ok((body, request_id)) => envelope_response(body, &request_id, trace_id),
        Err(e) => {
            // A panic inside the answer: the task is gone, the client gets an error.
            tracing::error!(error = %e, "the request's task failed");
            let error = ApiError::new(ErrorCode::InternalError);
            let request_id = new_request_id();
            envelope_response(
                error_body(&error, Language::EnUs, &request_id),
                &request_id,
                trace_id,
            )
        }
    }
}

/// The one request log line (issue 9, docs/operations.md): the same fields for every
/// request — those not known yet (a body that could not be read) are empty — and never
/// a card or a name.
fn log_request(request_id: &str, who: Option<&Who>, kind: &str, outcome: &str, micros: u64) {
    tracing::info!(
        request_id = %request_id,
        secret_id = who.map_or("", |w| w.secret_id.as_str()),
        action = who.map_or("", |w| w.action.as_str()),
        client = who.and_then(|w| w.client.as_deref()).unwrap_or(""),
        kind = kind,
        outcome = %outcome,
        micros,
        "request"
    );
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`.
pub fn admin_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // Ready when the store answers a read.
    match state.backend.accounts.account("").await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = crate::metrics::exposition(&state);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and
/// finishes in-flight requests (SIGINT/SIGTERM handling is the caller's).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
