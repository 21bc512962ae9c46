//! The HTTP side of `cardcheck verify`: builds the business parameters (optionally
//! encrypted, protocol.md §7), signs them with `cardcheck_tc3::sign` (§1, §2), sends
//! them and classifies the answer (§4): a Result, an API error, an HTTP failure or a
//! network failure. Nothing here prints; messages never hold a card number or a key.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cardcheck_encryption::{Algorithm, BANK_CARD_2E_FIELDS, encrypt_params};
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, SignedRequest, sign_request};
use rand::RngExt as _;
use serde_json::{Map, Value};

/// TC3 service label: Python, Go and tccli always sign `faceid` (protocol.md §1.6 step 5).
const SERVICE: &str = "faceid";
const ACTION: &str = "BankCard2EVerification";
const VERSION: &str = "2018-03-01";
/// Largest response body read; a real one is a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Where requests go: `scheme://host[:port]`, path always `/` (protocol.md intro).
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// `http` or `https`.
    scheme: String,
    /// The `Host` header value, port included when it is not the scheme's default;
    /// the SDKs sign exactly what they send (protocol.md §1.6 step 7, §2.2 step 4).
    host: String,
}

impl Endpoint {
    /// Parses `http://host:port`, `https://host` or a bare host name (tccli's
    /// `--endpoint` form, meaning https).
    pub(crate) fn parse(raw: &str) -> Result<Endpoint, String> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("https://{raw}")
        };
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|e| format!("invalid --endpoint {raw:?}: {e}"))?;
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "invalid --endpoint {raw:?}: the scheme must be http or https"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(format!(
                "invalid --endpoint {raw:?}: give only scheme, host and port (the path is always /)"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("invalid --endpoint {raw:?}: no host"))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Endpoint { scheme, host })
    }

    /// The `Host` header value.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)
    }
}

/// Everything that shapes a request, fixed for a whole run.
#[derive(Debug)]
pub(crate) struct ClientConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) credential: Credential,
    pub(crate) sign_method: SignMethod,
    /// `true` for GET, `false` for POST.
    pub(crate) get: bool,
    pub(crate) language: Option<&'static str>,
    pub(crate) region: Option<String>,
    /// `--encrypt` algorithm and the public key (PEM or Base64 of PEM).
    pub(crate) encryption: Option<(Algorithm, String)>,
    pub(crate) timeout: Duration,
    /// Extra trusted roots (`--ca-cert`), PEM.
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) pool_size: usize,
}

/// The values that make a signed request reproducible: signing the same parameters
/// with the same timestamp and nonce gives the same bytes, so the server recognises a
/// retry and answers it from its replay cache (verification.md §4).
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub(crate) timestamp: i64,
    pub(crate) nonce: u64,
    /// The encrypted business parameters (ciphertext only) when `--encrypt` is on:
    /// fresh encryption would change the body.
    pub(crate) encrypted: Option<Map<String, Value>>,
}

/// A signed request plus the stamp it was signed with.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) stamp: Stamp,
    /// Signed with an earlier stamp (so already journaled).
    pub(crate) reused: bool,
    signed: SignedRequest,
}

/// How one attempt ended.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A successful response with a `Result` (any Result, protocol.md §6.1).
    Answer {
        result: String,
        description: String,
        request_id: String,
        response: Value,
    },
    /// An error envelope (protocol.md §4).
    ApiError {
        code: String,
        message: String,
        request_id: String,
        response: Value,
        status: u16,
    },
    /// A non-200 status without an error envelope.
    Http { status: u16, reason: String },
    /// The request did not get an HTTP answer; `message` is one sentence.
    Network { message: String },
    /// HTTP 200 but not a Tencent envelope.
    Invalid { message: String },
}

/// Client-side error codes written to the batch output, in the Go SDK's
/// `ClientError.*` style.
pub(crate) const NETWORK_ERROR: &str = "ClientError.NetworkError";
pub(crate) const HTTP_STATUS_ERROR: &str = "ClientError.HttpStatusCodeError";
pub(crate) const INVALID_RESPONSE: &str = "ClientError.InvalidResponse";
pub(crate) const ENCRYPTION_ERROR: &str = "ClientError.EncryptionError";

impl Reply {
    /// Whether another attempt may help (issue 11): `RequestLimitExceeded` and its
    /// sub-codes, `InternalError`/`ServiceUnavailable` (transient per verification.md
    /// §4), Result `-16`, network failures, HTTP 5xx and 429. Never a final Result or a
    /// client error.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Reply::Answer { result, .. } => result == "-16",
            Reply::ApiError { code, status, .. } => {
                is_rate_limited(code)
                    || code == "InternalError"
                    || code.starts_with("InternalError.")
                    || code == "ServiceUnavailable"
                    || *status >= 500
            }
            Reply::Http { status, .. } => *status >= 500 || *status == 429,
            Reply::Network { .. } => true,
            Reply::Invalid { .. } => false,
        }
    }

    /// Whether the server said we are over its rate limit.
    pub(crate) fn rate_limited(&self) -> bool {
        match self {
            Reply::ApiError { code, .. } => is_rate_limited(code),
            Reply::Http { status, .. } => *status == 429,
            _ => false,
        }
    }

    /// The error code (an API code or a `ClientError.*` one), `None` for an answer.
    pub(crate) fn error_code(&self) -> Option<&str> {
        match self {
            Reply::Answer { .. } => None,
            Reply::ApiError { code, .. } => Some(code),
            Reply::Http { .. } => Some(HTTP_STATUS_ERROR),
            Reply::Network { .. } => Some(NETWORK_ERROR),
            Reply::Invalid { .. } => Some(INVALID_RESPONSE),
        }
    }

    /// A one-line description of a failure (empty for an answer).
    pub(crate) fn error_message(&self) -> String {
        match self {
            Reply::Answer { .. } => String::new(),
            Reply::ApiError { message, .. } => message.clone(),
            Reply::Http { status, reason } => format!("HTTP {status} {reason}"),
            Reply::Network { message } | Reply::Invalid { message } => message.clone(),
        }
    }
}

/// `RequestLimitExceeded` and `RequestLimitExceeded.*` (protocol.md §5).
pub(crate) fn is_rate_limited(code: &str) -> bool {
    code == "RequestLimitExceeded" || code.starts_with("RequestLimitExceeded.")
}

/// A signing-and-sending client; cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Client {
    cfg: ClientConfig,
    http: reqwest::Client,
    request_client: String,
}

impl Client {
    pub(crate) fn new(cfg: ClientConfig) -> Result<Client, String> {
        // reqwest is built with `rustls-no-provider`: install ring once per process
        // (an error only means a provider is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(cfg.pool_size.max(1))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| "the --ca-cert file holds no usable PEM certificate".to_owned())?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", root_cause(&e)))?;
        Ok(Client {
            cfg,
            http,
            request_client: format!("CARDCHECK_CLI_{}", env!("CARGO_PKG_VERSION")),
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.cfg.endpoint
    }

    /// The SecretKey, for redacting messages.
    pub(crate) fn secret_key(&self) -> &str {
        &self.cfg.credential.secret_key
    }

    /// Checks up front that `--public-key` can encrypt, so a bad key fails the run
    /// once instead of every row.
    pub(crate) fn check_encryption(&self) -> Result<(), String> {
        if let Some((alg, pem)) = &self.cfg.encryption {
            let mut probe = Map::new();
            probe.insert("Name".into(), Value::String("probe".into()));
            probe.insert("BankCard".into(), Value::String("0".into()));
            encrypt_params(&mut probe, BANK_CARD_2E_FIELDS, *alg, pem)
                .map_err(|e| format!("cannot encrypt with --public-key: {e}"))?;
        }
        Ok(())
    }

    /// Builds and signs a request for (`name`, `card`). With `reuse`, the stamp of an
    /// earlier attempt is used again so the bytes are identical (a retry, §4).
    pub(crate) fn prepare(
        &self,
        name: &str,
        card: &str,
        reuse: Option<Stamp>,
    ) -> Result<Prepared, String> {
        // A stamp from a run with another --encrypt setting cannot be reused.
        let reuse = reuse.filter(|s| s.encrypted.is_some() == self.cfg.encryption.is_some());
        let reused = reuse.is_some();
        let stamp = match reuse {
            Some(stamp) => stamp,
            None => {
                let encrypted = match &self.cfg.encryption {
                    Some((alg, pem)) => {
                        let mut params = plain_params(name, card);
                        encrypt_params(&mut params, BANK_CARD_2E_FIELDS, *alg, pem)
                            .map_err(|e| format!("encryption failed: {e}"))?;
                        Some(params)
                    }
                    None => None,
                };
                Stamp {
                    timestamp: unix_now(),
                    // Python: random.randint(1, sys.maxsize) (protocol.md §2.1).
                    nonce: rand::rng().random_range(1..=i64::MAX as u64),
                    encrypted,
                }
            }
        };
        let plain;
        let params = match &stamp.encrypted {
            Some(p) => p,
            None => {
                plain = plain_params(name, card);
                &plain
            }
        };
        let input = SignInput {
            credential: &self.cfg.credential,
            host: self.cfg.endpoint.host(),
            service: SERVICE,
            action: ACTION,
            version: VERSION,
            region: self.cfg.region.as_deref(),
            language: self.cfg.language,
            request_client: Some(&self.request_client),
            sign_method: self.cfg.sign_method,
            http_method: if self.cfg.get { "GET" } else { "POST" },
            timestamp: stamp.timestamp,
            nonce: stamp.nonce,
            params,
        };
        let signed = sign_request(&input);
        Ok(Prepared {
            stamp,
            reused,
            signed,
        })
    }

    /// Sends a prepared request once.
    pub(crate) async fn send(&self, prepared: &Prepared) -> Reply {
        let signed = &prepared.signed;
        let url = format!("{}{}", self.cfg.endpoint, signed.path_and_query);
        let method = if signed.method == "GET" {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let mut req = self.http.request(method, url.as_str());
        for (name, value) in &signed.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        // Not signed; lets the server's logs be matched with ours (protocol.md §3).
        req = req.header("X-TC-TraceId", uuid::Uuid::new_v4().to_string());
        if !signed.body.is_empty() {
            req = req.body(signed.body.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Reply::Network {
                    message: network_message(&self.cfg.endpoint, self.cfg.timeout, &e),
                };
            }
        };
        let status = resp.status();
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) => {
                return Reply::Network {
                    message: network_message(&self.cfg.endpoint, self.cfg.timeout, &e),
                };
            }
        };
        classify(status, &body)
    }
}

fn plain_params(name: &str, card: &str) -> Map<String, Value> {
    // Model field order: Name, BankCard (protocol.md §6.1).
    let mut params = Map::new();
    params.insert("Name".into(), Value::String(name.to_owned()));
    params.insert("BankCard".into(), Value::String(card.to_owned()));
    params
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns an HTTP answer into a [`Reply`]. Like the Go SDK, an error envelope is read
/// whatever the status, so the code survives a non-200 (protocol.md §4).
fn classify(status: reqwest::StatusCode, body: &[u8]) -> Reply {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("").to_owned();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let response = parsed.and_then(|mut v| match v.get_mut("Response") {
        Some(r) if r.is_object() => Some(r.take()),
        _ => None,
    });
    let Some(response) = response else {
        return if status.is_success() {
            Reply::Invalid {
                message: format!("HTTP {code} without a Tencent Cloud API response envelope"),
            }
        } else {
            Reply::Http {
                status: code,
                reason,
            }
        };
    };
    let request_id = text(response.get("RequestId"));
    if let Some(err) = response.get("Error") {
        let code_str = text(err.get("Code"));
        if !code_str.is_empty() {
            return Reply::ApiError {
                code: code_str,
                message: text(err.get("Message")),
                request_id,
                status: code,
                response,
            };
        }
    }
    if !status.is_success() {
        return Reply::Http {
            status: code,
            reason,
        };
    }
    match response.get("Result") {
        Some(r) if !r.is_null() => Reply::Answer {
            result: text(Some(r)),
            description: text(response.get("Description")),
            request_id,
            response,
        },
        _ => Reply::Invalid {
            message: "the response has neither Result nor Error".to_owned(),
        },
    }
}

/// A JSON string as is, a number or boolean as text, anything else empty.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// One sentence for a failed exchange. reqwest's own `Display` holds the URL, and a
/// GET URL holds the name and card (protocol.md §1.1), so only the endpoint and the
/// innermost cause are used.
fn network_message(endpoint: &Endpoint, timeout: Duration, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!(
            "no answer from {endpoint} within {} s (timed out)",
            timeout.as_secs_f64()
        );
    }
    let cause = root_cause(e);
    if e.is_connect() {
        format!("cannot connect to {endpoint}: {cause}")
    } else {
        format!("request to {endpoint} failed: {cause}")
    }
}

/// The innermost cause of `e`, worded for people; never the top-level reqwest text.
fn root_cause(e: &reqwest::Error) -> String {
    let mut deepest: Option<&(dyn std::error::Error + 'static)> = None;
    let mut io: Option<&std::io::Error> = None;
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(i) = err.downcast_ref::<std::io::Error>() {
            io = Some(i);
        }
        deepest = Some(err);
        cur = err.source();
    }
    if let Some(i) = io {
        use std::io::ErrorKind as K;
        let known = match i.kind() {
            K::ConnectionRefused => Some("connection refused"),
            K::ConnectionReset => Some("connection reset by the server"),
            K::ConnectionAborted => Some("connection aborted"),
            K::TimedOut => Some("timed out"),
            K::UnexpectedEof => Some("the server closed the connection"),
            K::BrokenPipe => Some("the server closed the connection"),
            K::AddrNotAvailable => Some("address not available"),
            K::HostUnreachable => Some("host unreachable"),
            K::NetworkUnreachable => Some("network unreachable"),
            _ => None,
        };
        if let Some(k) = known {
            return k.to_owned();
        }
    }
    match deepest {
        Some(d) => one_line(&d.to_string()),
        None if e.is_body() || e.is_decode() => "could not read the response".to_owned(),
        None => "unknown error".to_owned(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.host(), "127.0.0.1:8080");
        assert_eq!(e.to_string(), "http://127.0.0.1:8080");
        let e = Endpoint::parse("https://faceid.tencentcloudapi.com/").unwrap();
        assert_eq!(e.host(), "faceid.tencentcloudapi.com");
        let e = Endpoint::parse("faceid.tencentcloudapi.com").unwrap();
        assert_eq!(e.to_string(), "https://faceid.tencentcloudapi.com");
        let e = Endpoint::parse("https://x.example:443").unwrap();
        assert_eq!(e.host(), "x.example");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
    }

    #[test]
    fn classification() {
        let ok = reqwest::StatusCode::OK;
        let r = classify(
            ok,
            br#"{"Response":{"Result":"0","Description":"pass","RequestId":"r"}}"#,
        );
        assert!(matches!(&r, Reply::Answer { result, .. } if result == "0"));
        assert!(!r.retryable());
        let r = classify(ok, br#"{"Response":{"Result":"-16","RequestId":"r"}}"#);
        assert!(r.retryable());
        let r = classify(
            ok,
            br#"{"Response":{"Error":{"Code":"RequestLimitExceeded.UinLimitExceeded","Message":"m"},"RequestId":"r"}}"#,
        );
        assert!(r.retryable() && r.rate_limited());
        let r = classify(
            ok,
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"m"},"RequestId":"r"}}"#,
        );
        assert!(!r.retryable());
        assert_eq!(r.error_code(), Some("AuthFailure.SignatureFailure"));
        let r = classify(reqwest::StatusCode::BAD_GATEWAY, b"<html>");
        assert!(r.retryable());
        let r = classify(reqwest::StatusCode::NOT_FOUND, b"nope");
        assert!(!r.retryable());
        let r = classify(ok, b"nope");
        assert!(matches!(r, Reply::Invalid { .. }));
    }
}
