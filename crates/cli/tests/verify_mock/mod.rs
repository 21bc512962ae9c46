//! A mock faceid endpoint for the `verify_*` tests: it checks every request for real
//! with `cardcheck_tc3` (parse → SecretId → timestamp → signature → token), decrypts
//! `Encryption` when given keys, and answers canned envelopes. Behaviours: a token
//! bucket answering `RequestLimitExceeded`, transient failures per card, client
//! errors per card, a replay cache keyed by signature (verification.md §4) and a
//! ledger of every fresh verification.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use cardcheck_domain::{Lang, ResultCode};
use cardcheck_encryption::{BANK_CARD_2E_FIELDS, Decryptor};
use cardcheck_tc3::envelope::{error_body, new_request_id, success_body};
use cardcheck_tc3::{ApiError, ErrorCode, Language, Limits, RawRequest, SignMethod, parse};
use serde_json::{Value, json};

pub const SECRET_ID: &str = "AKIDverifytest00000000000000000000000";
pub const SECRET_KEY: &str = "verifytestsecretkey0000000000000000";

/// A transient answer given to a card's first attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transient {
    /// Result `-16`.
    Busy,
    /// HTTP 502 with an HTML body.
    BadGateway,
    /// `InternalError` envelope.
    Internal,
}

/// What the mock does.
#[derive(Default, Clone)]
pub struct Behaviour {
    /// Token bucket: this many requests per second, burst of the same size.
    pub rate_limit: Option<f64>,
    /// Pause between recording a verification and answering it (the ledger is
    /// written before the reply, as in the real server).
    pub delay: Duration,
    /// Card → answers for its first attempts.
    pub transient: HashMap<String, Vec<Transient>>,
    /// Cards answered `InvalidParameterValue`.
    pub client_error: HashSet<String>,
    /// Required session token.
    pub token: Option<String>,
    /// Server keys for `Encryption`.
    pub keys: Option<Arc<Decryptor>>,
    /// Card → the `Response` object answered as is (the mock adds `RequestId`): a
    /// server that puts odd text in `Description` or `Error.Message`.
    pub canned: HashMap<String, Value>,
}

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub name: String,
    pub card: String,
    pub signature: String,
    pub sign_method: SignMethod,
    pub http_method: String,
    /// A Result, an error code, or `replay`.
    pub outcome: String,
    pub language: Option<String>,
    pub token: Option<String>,
    pub region: Option<String>,
    /// The plain card number appeared in the raw request.
    pub card_on_wire: bool,
    pub encrypted: bool,
}

#[derive(Default)]
pub struct Shared {
    pub behaviour: Mutex<Behaviour>,
    /// Every request that passed authentication.
    pub seen: Mutex<Vec<Seen>>,
    /// Requests rejected before a card was known (auth failures).
    pub rejected: Mutex<Vec<String>>,
    bucket: Mutex<Option<(f64, Instant)>>,
    replay: Mutex<HashMap<String, Vec<u8>>>,
    attempts: Mutex<HashMap<String, usize>>,
}

impl Shared {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Fresh verifications (the ledger): answers that are Results, not replays.
    pub fn ledger(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.outcome.starts_with('0') || s.outcome.starts_with('-'))
            .collect()
    }

    pub fn count_outcome(&self, outcome: &str) -> usize {
        self.seen().iter().filter(|s| s.outcome == outcome).count()
    }
}

/// The running mock; stops when dropped.
pub struct Mock {
    pub addr: SocketAddr,
    pub url: String,
    pub state: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Mock {
    pub fn start(behaviour: Behaviour) -> Mock {
        let state = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            ..Shared::default()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        std::thread::spawn(move || {
            rt.block_on(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Mock {
            addr,
            url: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }
}

/// The Result the mock gives: the doc's `-4` card, cards ending in 3 → `-4`, in 7 →
/// `-1`, everything else `0`.
pub fn expected_result(card: &str) -> &'static str {
    if card == "6226090210146748" || card.ends_with('3') {
        "-4"
    } else if card.ends_with('7') {
        "-1"
    } else {
        "0"
    }
}

fn json_reply(body: Vec<u8>) -> Response {
    ([("content-type", "application/json")], body).into_response()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn handle(
    State(st): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = RawRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let rid = new_request_id();
    let err = |e: ApiError, lang: Language| json_reply(error_body(&e, lang, &rid));
    let parsed = match parse(&raw, &Limits::default()) {
        Ok(p) => p,
        Err(e) => {
            st.rejected
                .lock()
                .unwrap()
                .push(e.code().as_str().to_owned());
            return err(e, Language::EnUs);
        }
    };
    let lang = Language::parse(parsed.params().language.as_deref()).unwrap_or_default();
    let auth = if parsed.secret_id() != SECRET_ID {
        Err(ApiError::new(ErrorCode::AuthFailureSecretIdNotFound))
    } else {
        parsed
            .check_timestamp(unix_now())
            .and_then(|()| parsed.verify(&raw, SECRET_KEY))
    };
    if let Err(e) = auth {
        st.rejected
            .lock()
            .unwrap()
            .push(e.code().as_str().to_owned());
        return err(e, lang);
    }
    let behaviour = st.behaviour.lock().unwrap().clone();
    if let Some(token) = &behaviour.token
        && parsed.params().token.as_ref() != Some(token)
    {
        return err(ApiError::new(ErrorCode::AuthFailureTokenFailure), lang);
    }
    if parsed.params().action != "BankCard2EVerification" || parsed.params().version != "2018-03-01"
    {
        return err(ApiError::new(ErrorCode::InvalidAction), lang);
    }
    let mut params = match parsed.business_params(&raw) {
        Ok(p) => p,
        Err(e) => return err(e, lang),
    };
    let encrypted = params.contains_key("Encryption");
    if encrypted {
        let Some(keys) = &behaviour.keys else {
            return err(ApiError::new(ErrorCode::InvalidParameter), lang);
        };
        if keys
            .decrypt_params(&mut params, BANK_CARD_2E_FIELDS)
            .is_err()
        {
            return err(
                ApiError::new(ErrorCode::FailedOperationDecryptSystemError),
                lang,
            );
        }
    }
    let (Some(Value::String(name)), Some(Value::String(card))) =
        (params.get("Name").cloned(), params.get("BankCard").cloned())
    else {
        return err(ApiError::missing_parameter("Name"), lang);
    };
    let raw_text = format!("{}{}", uri, String::from_utf8_lossy(&body));
    let mut seen = Seen {
        name: name.clone(),
        card: card.clone(),
        signature: parsed.signature().to_owned(),
        sign_method: parsed.sign_method(),
        http_method: method.as_str().to_owned(),
        outcome: String::new(),
        language: parsed.params().language.clone(),
        token: parsed.params().token.clone(),
        region: parsed.params().region.clone(),
        card_on_wire: raw_text.contains(&card),
        encrypted,
    };
    let record = |seen: &Seen| st.seen.lock().unwrap().push(seen.clone());

    if let Some(Value::Object(canned)) = behaviour.canned.get(&card) {
        let mut response = canned.clone();
        response.insert("RequestId".into(), Value::String(rid.clone()));
        seen.outcome = "canned".to_owned();
        record(&seen);
        return json_reply(serde_json::to_vec(&json!({ "Response": response })).unwrap());
    }
    // verification.md §4: an identical signed request gets the first final answer.
    if let Some(cached) = st.replay.lock().unwrap().get(&seen.signature).cloned() {
        seen.outcome = "replay".to_owned();
        record(&seen);
        return json_reply(cached);
    }
    if let Some(rate) = behaviour.rate_limit {
        let mut bucket = st.bucket.lock().unwrap();
        let now = Instant::now();
        let (tokens, last) = bucket.unwrap_or((rate, now));
        let tokens = (tokens + rate * now.duration_since(last).as_secs_f64()).min(rate);
        if tokens < 1.0 {
            *bucket = Some((tokens, now));
            drop(bucket);
            seen.outcome = "RequestLimitExceeded".to_owned();
            record(&seen);
            return err(ApiError::new(ErrorCode::RequestLimitExceeded), lang);
        }
        *bucket = Some((tokens - 1.0, now));
    }
    let attempt = {
        let mut a = st.attempts.lock().unwrap();
        let n = a.entry(card.clone()).or_default();
        *n += 1;
        *n
    };
    if let Some(t) = behaviour
        .transient
        .get(&card)
        .and_then(|list| list.get(attempt - 1))
    {
        match t {
            Transient::Busy => {
                seen.outcome = "-16".to_owned();
                record(&seen);
                return json_reply(success_body(
                    &json!({"Result": "-16", "Description": "busy"}),
                    &rid,
                ));
            }
            Transient::BadGateway => {
                seen.outcome = "HTTP 502".to_owned();
                record(&seen);
                return (
                    axum::http::StatusCode::BAD_GATEWAY,
                    "<html>bad gateway</html>",
                )
                    .into_response();
            }
            Transient::Internal => {
                seen.outcome = "InternalError".to_owned();
                record(&seen);
                return err(ApiError::new(ErrorCode::InternalError), lang);
            }
        }
    }
    if behaviour.client_error.contains(&card) {
        seen.outcome = "InvalidParameterValue".to_owned();
        record(&seen);
        return err(ApiError::new(ErrorCode::InvalidParameterValue), lang);
    }
    let result = expected_result(&card);
    let code = ResultCode::from_wire(result).unwrap();
    let description = code.description(if lang == Language::ZhCn {
        Lang::Zh
    } else {
        Lang::En
    });
    let reply = success_body(&json!({"Result": result, "Description": description}), &rid);
    // The ledger entry and the replay cache are written before the reply.
    seen.outcome = result.to_owned();
    record(&seen);
    st.replay
        .lock()
        .unwrap()
        .insert(seen.signature.clone(), reply.clone());
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    json_reply(reply)
}

/// `cardcheck verify ARGS` with the test credentials in the environment.
pub fn verify_cmd(endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardcheck"));
    c.arg("verify")
        .args(["--endpoint", endpoint])
        .args(args)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env_remove("TENCENTCLOUD_SESSION_TOKEN")
        .env_remove("TENCENTCLOUD_REGION")
        .env_remove("CARDCHECK_ENDPOINT")
        .env_remove("RUST_BACKTRACE");
    c
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

pub fn run(mut cmd: Command) -> Ran {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Card number of row `i` (unique, 16 digits).
pub fn card_of(i: usize) -> String {
    format!("62257600{i:08}")
}

/// An input CSV `id,name,card,note` with `n` rows.
pub fn write_input(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("input.csv");
    let mut s = String::from("id,name,card,note\n");
    for i in 0..n {
        s += &format!("{i},张三{i},{},\"note, {i}\"\n", card_of(i));
    }
    std::fs::write(&path, s).unwrap();
    path
}

/// The output CSV as maps from column name to value, plus the header.
pub fn read_output(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}
