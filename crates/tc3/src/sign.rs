//! The client side: signs a request exactly as the Python SDK
//! (tencentcloud-sdk-python-common 3.1.195) does, so that the same inputs give the
//! same bytes as the captures (protocol.md §1, §2; `abstract_client.py`).
//!
//! * TC3 POST: body = Python `json.dumps(params)` (`", "`/`": "`, `\uXXXX`).
//! * TC3 GET: query = `urlencode(flattened params)` in field order, space → `+`.
//! * v1: flattened params + `Action, RequestClient, Nonce, Timestamp, Version,
//!   Region?, Token?, SecretId, SignatureMethod, Language?` in that order, then
//!   `Signature`; the string to sign sorts them (keys with `_` signed as `.`).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::date::utc_date;
use crate::flatten::flatten;
use crate::form::urlencode;
use crate::request::SignMethod;
use crate::verify::tc3_signing_key;

/// API credentials.
#[derive(Clone)]
pub struct Credential {
    /// SecretId (`AKID…`).
    pub secret_id: String,
    /// SecretKey; never logged (see the `Debug` impl).
    pub secret_key: String,
    /// STS session token for temporary credentials.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything that determines a signed request. `Debug` omits the parameter values
/// (they hold names and card numbers).
#[derive(Clone)]
pub struct SignInput<'a> {
    /// The credentials.
    pub credential: &'a Credential,
    /// The `Host` value as sent, possibly with `:port` (Python signs it as sent).
    pub host: &'a str,
    /// TC3 service label, normally `faceid`.
    pub service: &'a str,
    /// Action (first letter upper-cased as the SDK does).
    pub action: &'a str,
    /// API version, `2018-03-01`.
    pub version: &'a str,
    /// Region; `None` or empty ⇒ not sent.
    pub region: Option<&'a str>,
    /// Language (`zh-CN` / `en-US`); `None` ⇒ not sent.
    pub language: Option<&'a str>,
    /// RequestClient (Python: `SDK_PYTHON_<version>`); `None` ⇒ not sent.
    pub request_client: Option<&'a str>,
    /// Signature method.
    pub sign_method: SignMethod,
    /// `GET`, or anything else for POST.
    pub http_method: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// v1 Nonce (ignored by TC3).
    pub nonce: u64,
    /// Business parameters, in field order.
    pub params: &'a Map<String, Value>,
}

impl std::fmt::Debug for SignInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInput")
            .field("credential", self.credential)
            .field("host", &self.host)
            .field("service", &self.service)
            .field("action", &self.action)
            .field("sign_method", &self.sign_method)
            .field("http_method", &self.http_method)
            .field("timestamp", &self.timestamp)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Rarely used signer switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignOptions {
    /// TC3: send `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` and sign that literal
    /// instead of the body (Python `profile.unsignedPayload`, §1.2).
    pub unsigned_payload: bool,
}

/// A signed request ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// `/` or `/?query`.
    pub path_and_query: String,
    /// The headers that matter, in the Python SDK's order.
    pub headers: Vec<(String, String)>,
    /// The body (empty for GET).
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Signs `input` with default options.
pub fn sign_request(input: &SignInput<'_>) -> SignedRequest {
    sign_request_with(input, &SignOptions::default())
}

/// Signs `input`.
pub fn sign_request_with(input: &SignInput<'_>, opts: &SignOptions) -> SignedRequest {
    match input.sign_method {
        SignMethod::Tc3HmacSha256 => sign_tc3(input, opts),
        SignMethod::HmacSha1 | SignMethod::HmacSha256 => sign_v1(input),
    }
}

/// `action[0].upper() + action[1:]`.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn is_get(input: &SignInput<'_>) -> bool {
    input.http_method.eq_ignore_ascii_case("GET")
}

fn sign_tc3(input: &SignInput<'_>, opts: &SignOptions) -> SignedRequest {
    let get = is_get(input);
    let content_type = if get {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let method = if get { "GET" } else { "POST" };
    let (query, body) = if get {
        (urlencode(&flatten(input.params)), Vec::new())
    } else {
        (
            String::new(),
            crate::json::python_dumps(&Value::Object(input.params.clone())).into_bytes(),
        )
    };
    let payload: &[u8] = if opts.unsigned_payload {
        b"UNSIGNED-PAYLOAD"
    } else {
        &body
    };
    let authorization = tc3_authorization(&Tc3RawInput {
        secret_id: &input.credential.secret_id,
        secret_key: &input.credential.secret_key,
        service: input.service,
        http_method: method,
        query: &query,
        content_type,
        host: input.host,
        payload,
        timestamp: input.timestamp,
    });

    let mut headers = vec![
        ("Content-Type".to_owned(), content_type.to_owned()),
        ("Host".to_owned(), input.host.to_owned()),
        ("X-TC-Action".to_owned(), upper_first(input.action)),
    ];
    if let Some(rc) = input.request_client {
        headers.push(("X-TC-RequestClient".to_owned(), rc.to_owned()));
    }
    headers.push(("X-TC-Timestamp".to_owned(), input.timestamp.to_string()));
    headers.push(("X-TC-Version".to_owned(), input.version.to_owned()));
    if opts.unsigned_payload {
        headers.push((
            "X-TC-Content-SHA256".to_owned(),
            "UNSIGNED-PAYLOAD".to_owned(),
        ));
    }
    if let Some(r) = input.region.filter(|r| !r.is_empty()) {
        headers.push(("X-TC-Region".to_owned(), r.to_owned()));
    }
    if let Some(t) = input.credential.token.as_deref().filter(|t| !t.is_empty()) {
        headers.push(("X-TC-Token".to_owned(), t.to_owned()));
    }
    if let Some(l) = input.language.filter(|l| !l.is_empty()) {
        headers.push(("X-TC-Language".to_owned(), l.to_owned()));
    }
    headers.push(("Authorization".to_owned(), authorization));
    SignedRequest {
        method: method.to_owned(),
        path_and_query: if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{query}")
        },
        headers,
        body,
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length.
        Err(_) => Vec::new(),
    }
}

fn sign_v1(input: &SignInput<'_>) -> SignedRequest {
    let get = is_get(input);
    let method = if get { "GET" } else { "POST" };
    let mut params = flatten(input.params);
    let mut push = |k: &str, v: String| params.push((k.to_owned(), v));
    push("Action", upper_first(input.action));
    if let Some(rc) = input.request_client {
        push("RequestClient", rc.to_owned());
    }
    push("Nonce", input.nonce.to_string());
    push("Timestamp", input.timestamp.to_string());
    push("Version", input.version.to_owned());
    if let Some(r) = input.region.filter(|r| !r.is_empty()) {
        push("Region", r.to_owned());
    }
    if let Some(t) = input.credential.token.as_deref().filter(|t| !t.is_empty()) {
        push("Token", t.to_owned());
    }
    if !input.credential.secret_id.is_empty() {
        push("SecretId", input.credential.secret_id.clone());
    }
    push("SignatureMethod", input.sign_method.as_str().to_owned());
    if let Some(l) = input.language.filter(|l| !l.is_empty()) {
        push("Language", l.to_owned());
    }

    let signature = v1_signature(
        &input.credential.secret_key,
        input.sign_method,
        method,
        input.host,
        "/",
        &params,
    );
    params.push(("Signature".to_owned(), signature));
    let data = urlencode(&params);
    let headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("Host".to_owned(), input.host.to_owned()),
    ];
    if get {
        SignedRequest {
            method: method.to_owned(),
            path_and_query: format!("/?{data}"),
            headers,
            body: Vec::new(),
        }
    } else {
        SignedRequest {
            method: method.to_owned(),
            path_and_query: "/".to_owned(),
            headers,
            body: data.into_bytes(),
        }
    }
}

/// Inputs of [`tc3_authorization`]: a TC3 signature over arbitrary bytes, signing
/// exactly `content-type;host` as every SDK does (§1.2).
#[derive(Clone, Copy, Debug)]
pub struct Tc3RawInput<'a> {
    /// SecretId.
    pub secret_id: &'a str,
    /// SecretKey.
    pub secret_key: &'a str,
    /// Service label of the credential scope.
    pub service: &'a str,
    /// `GET` or `POST`.
    pub http_method: &'a str,
    /// Raw query (GET), `""` for POST.
    pub query: &'a str,
    /// Content-Type value as sent.
    pub content_type: &'a str,
    /// Host value as signed.
    pub host: &'a str,
    /// Hashed payload: the body, `b""` for GET, or `b"UNSIGNED-PAYLOAD"`.
    pub payload: &'a [u8],
    /// Unix seconds (`X-TC-Timestamp`).
    pub timestamp: i64,
}

/// The `Authorization` header value for a TC3 request over raw bytes (§1.2–§1.5);
/// useful to sign deliberately odd requests in tests.
pub fn tc3_authorization(i: &Tc3RawInput<'_>) -> String {
    let date = utc_date(i.timestamp);
    let canonical = format!(
        "{}\n/\n{}\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        i.http_method,
        i.query,
        i.content_type,
        i.host,
        hex::encode(Sha256::digest(i.payload))
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{date}/{}/tc3_request\n{}",
        i.timestamp,
        i.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = tc3_signing_key(i.secret_key, &date, i.service);
    let signature = hex::encode(mac::<Hmac<Sha256>>(&k, string_to_sign.as_bytes()));
    format!(
        "TC3-HMAC-SHA256 Credential={}/{date}/{}/tc3_request, SignedHeaders=content-type;host, Signature={signature}",
        i.secret_id, i.service
    )
}

/// The v1 `Signature` (Base64, not URL-encoded) of `params` (§2.2), as the Python
/// SDK's `_format_sign_string` builds it: keys with `_` signed as `.`, sorted,
/// `k=v` joined raw with `&`, prefixed by METHOD + host + path + `?`. A later key
/// that collides after the replacement wins, as in the Python dict.
pub fn v1_signature(
    secret_key: &str,
    sign_method: SignMethod,
    http_method: &str,
    host: &str,
    path: &str,
    params: &[(String, String)],
) -> String {
    let mut signed: Vec<(String, &str)> = Vec::with_capacity(params.len());
    for (k, v) in params {
        let k = k.replace('_', ".");
        match signed.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => signed.push((k, v)),
        }
    }
    signed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = format!("{http_method}{host}{path}?");
    for (i, (k, v)) in signed.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    let key = secret_key.as_bytes();
    let raw = match sign_method {
        SignMethod::HmacSha256 => mac::<Hmac<Sha256>>(key, s.as_bytes()),
        _ => mac::<Hmac<Sha1>>(key, s.as_bytes()),
    };
    base64::engine::general_purpose::STANDARD.encode(raw)
}
