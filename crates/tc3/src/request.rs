//! The request model and the secret-free first pass ([`parse`]): method rules, size
//! limits, signature-mode selection, Authorization / v1 auth parameters, timestamp
//! and common parameters (protocol.md §1.6, §2.1, §3, §5).

use http::HeaderMap;

use crate::error::{ApiError, ErrorCode};
use crate::form::{self, Pair};
use crate::params::Params;

/// One HTTP request as received, borrowed from the server's own types.
#[derive(Clone, Copy, Debug)]
pub struct RawRequest<'a> {
    /// Request method as sent (`GET`, `POST`, …).
    pub method: &'a str,
    /// Path part of the request target (`/`).
    pub path: &'a str,
    /// Raw bytes after `?` (not decoded), `""` when there is no query.
    pub query: &'a str,
    /// Headers; lookups are case-insensitive. For HTTP/2 the server must insert a
    /// `Host` header from the `:authority` pseudo-header, as `Host` is signed.
    pub headers: &'a HeaderMap,
    /// Raw body bytes.
    pub body: &'a [u8],
}

/// Request size limits (§5: GET 32 KB, v1 POST 1 MB, TC3 POST 10 MB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum query + body length of a GET request.
    pub get_max: usize,
    /// Maximum body length of a v1 (form) POST request.
    pub v1_post_max: usize,
    /// Maximum body length of a TC3 POST request.
    pub tc3_post_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            get_max: 32 * 1024,
            v1_post_max: 1 << 20,
            tc3_post_max: 10 << 20,
        }
    }
}

/// The signature method of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignMethod {
    /// Signature v3, `Authorization: TC3-HMAC-SHA256 …` (§1).
    Tc3HmacSha256,
    /// Signature v1, `SignatureMethod=HmacSHA1` or absent (§2).
    HmacSha1,
    /// Signature v1, `SignatureMethod=HmacSHA256` (§2).
    HmacSha256,
}

impl SignMethod {
    /// The wire name: `TC3-HMAC-SHA256`, `HmacSHA1`, `HmacSHA256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::Tc3HmacSha256 => "TC3-HMAC-SHA256",
            SignMethod::HmacSha1 => "HmacSHA1",
            SignMethod::HmacSha256 => "HmacSHA256",
        }
    }
}

/// GET or POST (every other method is refused by [`parse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// TC3 authorization data (§1.5).
#[derive(Clone, Debug)]
pub(crate) struct Tc3Auth {
    pub(crate) date: String,
    pub(crate) service: String,
    /// SignedHeaders exactly as sent (it is part of the canonical request).
    pub(crate) signed_headers: String,
    /// The same names, lower-cased, in order.
    pub(crate) signed_header_names: Vec<String>,
    pub(crate) signature_bytes: [u8; 32],
    /// `X-TC-Timestamp` as sent (trimmed): the string to sign uses these bytes.
    pub(crate) timestamp_raw: String,
    /// `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` (§1.2).
    pub(crate) unsigned_payload: bool,
}

/// v1 authorization data (§2).
#[derive(Clone)]
pub(crate) struct V1Auth {
    /// Every decoded pair of the query (GET) or form body (POST), in order,
    /// including `Signature` (skipped when signing).
    pub(crate) pairs: Vec<Pair>,
}

/// Redacted: the pairs hold business parameters (names, card numbers).
impl std::fmt::Debug for V1Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V1Auth")
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Auth {
    Tc3(Tc3Auth),
    V1(V1Auth),
}

/// The result of [`parse`]: everything needed to look up the account and verify.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    pub(crate) method: Method,
    pub(crate) sign_method: SignMethod,
    pub(crate) secret_id: String,
    pub(crate) signature: String,
    pub(crate) params: Params,
    pub(crate) auth: Auth,
}

impl ParsedRequest {
    /// The SecretId (TC3 credential scope or v1 `SecretId`).
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The signature method.
    pub fn sign_method(&self) -> SignMethod {
        self.sign_method
    }

    /// The request timestamp (seconds).
    pub fn timestamp(&self) -> i64 {
        self.params.timestamp
    }

    /// The signature as sent (decoded from the form for v1), for a replay-cache key.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Common parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// TC3 only: `(date, service)` of the credential scope, for caching kSigning.
    pub fn tc3_scope(&self) -> Option<(&str, &str)> {
        match &self.auth {
            Auth::Tc3(a) => Some((&a.date, &a.service)),
            Auth::V1(_) => None,
        }
    }

    /// Checks the timestamp against the server clock: more than 300 s either way is
    /// `AuthFailure.SignatureExpire` (§1.6 step 3). For TC3 it then checks that the
    /// scope date is the UTC date of the timestamp, else `AuthFailure.SignatureFailure`
    /// (step 4). [`ParsedRequest::verify`] repeats the date check, so it holds even if
    /// a caller skips this method — but the window is checked only here.
    pub fn check_timestamp(&self, now_unix: i64) -> Result<(), ApiError> {
        let skew = (i128::from(now_unix) - i128::from(self.params.timestamp)).abs();
        if skew > 300 {
            return Err(ApiError::new(ErrorCode::AuthFailureSignatureExpire));
        }
        crate::verify::check_scope_date(self)
    }
}

const X_TC_TIMESTAMP: &str = "x-tc-timestamp";
const X_TC_ACTION: &str = "x-tc-action";
const X_TC_VERSION: &str = "x-tc-version";
const X_TC_REGION: &str = "x-tc-region";
const X_TC_LANGUAGE: &str = "x-tc-language";
const X_TC_TOKEN: &str = "x-tc-token";
const X_TC_REQUEST_CLIENT: &str = "x-tc-requestclient";
const X_TC_CONTENT_SHA256: &str = "x-tc-content-sha256";

/// Cheap, secret-free first pass over a request (§1.6 "mode selection", steps 1, 3, 6
/// and the common parameters). It never reads the JSON body: a bad body is reported by
/// [`ParsedRequest::business_params`] only after the signature was verified.
///
/// Order: method (`UnsupportedProtocol`) → size (`RequestSizeLimitExceeded`) → mode →
/// authorization shape (`AuthFailure.InvalidAuthorization`) → Timestamp
/// (`MissingParameter` / `InvalidParameter`) → Action, Version (`MissingParameter`).
///
/// Mode: an `Authorization` header starting with `TC3-HMAC-SHA256` ⇒ TC3; else a
/// `Signature` in the query (GET) or form body (form POST) ⇒ v1; else
/// `AuthFailure.InvalidAuthorization` when the request looks like TC3 (an
/// `Authorization` or `X-TC-Timestamp` header, or a non-form POST), otherwise
/// `MissingParameter` (`Signature`).
pub fn parse(req: &RawRequest<'_>, limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let method = match req.method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        _ => return Err(ApiError::new(ErrorCode::UnsupportedProtocol)),
    };
    let too_big = || ApiError::new(ErrorCode::RequestSizeLimitExceeded);
    let form_post =
        method == Method::Post && media_type_is(req.headers, "application/x-www-form-urlencoded");
    match method {
        Method::Get if req.query.len().saturating_add(req.body.len()) > limits.get_max => {
            return Err(too_big());
        }
        Method::Post if req.body.len() > limits.tc3_post_max.max(limits.v1_post_max) => {
            return Err(too_big());
        }
        Method::Post if form_post && req.body.len() > limits.v1_post_max => return Err(too_big()),
        _ => {}
    }

    // Two Authorization headers: the first one used to win silently, whichever the
    // client meant; an ambiguous request is refused.
    if req
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(ApiError::new(ErrorCode::AuthFailureInvalidAuthorization));
    }
    let authorization = req.headers.get(http::header::AUTHORIZATION);
    if let Some(h) = authorization
        && h.as_bytes().starts_with(b"TC3-HMAC-SHA256")
    {
        if method == Method::Post && req.body.len() > limits.tc3_post_max {
            return Err(too_big());
        }
        return parse_tc3(req, method, h.as_bytes());
    }

    let v1_source: Option<&[u8]> = match method {
        Method::Get => Some(req.query.as_bytes()),
        Method::Post if form_post => Some(req.body),
        Method::Post => None,
    };
    if let Some(src) = v1_source
        && form::has_key(src, b"Signature")
    {
        return parse_v1(method, src);
    }

    let looks_tc3 = authorization.is_some()
        || req.headers.contains_key(X_TC_TIMESTAMP)
        || (method == Method::Post && !form_post);
    if looks_tc3 {
        Err(ApiError::new(ErrorCode::AuthFailureInvalidAuthorization))
    } else {
        Err(ApiError::missing_parameter("Signature"))
    }
}

/// Whether Content-Type's media type (before any `;` parameter) is `expected`,
/// ASCII case-insensitively.
fn media_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().split(|&b| b == b';').next())
        .is_some_and(|mt| mt.trim_ascii().eq_ignore_ascii_case(expected.as_bytes()))
}

fn invalid_auth(why: &str) -> ApiError {
    ApiError::localized(
        ErrorCode::AuthFailureInvalidAuthorization,
        format!("The Authorization in the request header is invalid: {why}."),
        format!("请求头部的 Authorization 不符合腾讯云标准：{why}。"),
    )
}

fn parse_tc3(req: &RawRequest<'_>, method: Method, auth: &[u8]) -> Result<ParsedRequest, ApiError> {
    // §1.6: POST must carry a JSON body (multipart is not used by faceid). GET may carry
    // any Content-Type: the value is signed, so leniency costs nothing.
    if method == Method::Post && !media_type_is(req.headers, "application/json") {
        return Err(ApiError::invalid_parameter(
            "TC3-HMAC-SHA256 POST requests must use Content-Type application/json.",
        ));
    }
    let auth = std::str::from_utf8(auth).map_err(|_| invalid_auth("not UTF-8"))?;
    // §1.5: algorithm, one space, then `k=v` items separated by `,` (parse tolerantly).
    let rest = auth
        .strip_prefix("TC3-HMAC-SHA256")
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| invalid_auth("unsupported algorithm"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for item in rest.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| invalid_auth("malformed item"))?;
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(invalid_auth("unknown item")),
        };
        if slot.replace(v.trim()).is_some() {
            return Err(invalid_auth("repeated item"));
        }
    }
    let credential = credential.ok_or_else(|| invalid_auth("missing Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| invalid_auth("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| invalid_auth("missing Signature"))?;

    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some(term), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(invalid_auth("malformed Credential"));
    };
    if secret_id.is_empty() || service.is_empty() || !is_scope_date(date) {
        return Err(invalid_auth("malformed Credential"));
    }
    if term != "tc3_request" {
        return Err(invalid_auth("credential scope must end with tc3_request"));
    }

    let signed_header_names: Vec<String> = signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if signed_header_names.iter().any(String::is_empty)
        || !signed_header_names.iter().any(|h| h == "content-type")
        || !signed_header_names.iter().any(|h| h == "host")
    {
        return Err(invalid_auth(
            "SignedHeaders must include content-type and host",
        ));
    }

    let mut signature_bytes = [0u8; 32];
    hex::decode_to_slice(signature, &mut signature_bytes)
        .map_err(|_| invalid_auth("Signature must be 64 hex digits"))?;

    let timestamp_raw = header_str(req.headers, X_TC_TIMESTAMP)?
        .ok_or_else(|| ApiError::missing_parameter("Timestamp"))?;
    let timestamp = parse_timestamp(timestamp_raw)?;
    let action = header_str(req.headers, X_TC_ACTION)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing_parameter("Action"))?;
    let version = header_str(req.headers, X_TC_VERSION)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing_parameter("Version"))?;
    let params = Params {
        action: action.to_owned(),
        version: version.to_owned(),
        region: optional(header_str(req.headers, X_TC_REGION)?),
        language: optional(header_str(req.headers, X_TC_LANGUAGE)?),
        token: optional(header_str(req.headers, X_TC_TOKEN)?),
        timestamp,
        nonce: None,
        request_client: optional(header_str(req.headers, X_TC_REQUEST_CLIENT)?),
    };
    let unsigned_payload = req
        .headers
        .get(X_TC_CONTENT_SHA256)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"UNSIGNED-PAYLOAD");

    Ok(ParsedRequest {
        method,
        sign_method: SignMethod::Tc3HmacSha256,
        secret_id: secret_id.to_owned(),
        signature: signature.to_owned(),
        params,
        auth: Auth::Tc3(Tc3Auth {
            date: date.to_owned(),
            service: service.to_owned(),
            signed_headers: signed_headers.to_owned(),
            signed_header_names,
            signature_bytes,
            timestamp_raw: timestamp_raw.to_owned(),
            unsigned_payload,
        }),
    })
}

/// `YYYY-MM-DD` shape (the value itself is checked against the timestamp later).
fn is_scope_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// First value of a header, trimmed, as UTF-8 (`InvalidParameter` otherwise).
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v.as_bytes())
            .map(|s| Some(s.trim()))
            .map_err(|_| {
                ApiError::invalid_parameter(format!("The header `{name}` is not valid UTF-8."))
            }),
    }
}

fn optional(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Integer seconds (§3; a stringified JS number is still an integer string).
fn parse_timestamp(raw: &str) -> Result<i64, ApiError> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_parameter(
            "The parameter `Timestamp` must be an integer.",
        ));
    }
    raw.parse::<i64>()
        .map_err(|_| ApiError::invalid_parameter("The parameter `Timestamp` must be an integer."))
}

fn parse_v1(method: Method, src: &[u8]) -> Result<ParsedRequest, ApiError> {
    // Duplicates are refused before verification: with two values for one key the
    // signed string would be ambiguous (issue: duplicate keys → InvalidParameter).
    let pairs = form::decode_pairs(src, true)?;
    let get = |name: &str| -> Result<Option<&str>, ApiError> {
        match pairs.iter().find(|(k, _)| k == name.as_bytes()) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v).map(Some).map_err(|_| {
                ApiError::invalid_parameter(format!("The parameter `{name}` is not valid UTF-8."))
            }),
        }
    };
    let required = |name: &str| -> Result<&str, ApiError> {
        get(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing_parameter(name))
    };

    let secret_id = required("SecretId")?;
    let signature = required("Signature")?;
    let sign_method = match get("SignatureMethod")? {
        None | Some("") | Some("HmacSHA1") => SignMethod::HmacSha1,
        Some("HmacSHA256") => SignMethod::HmacSha256,
        Some(_) => {
            return Err(ApiError::with_detail(
                ErrorCode::InvalidParameterValue,
                "The parameter `SignatureMethod` must be HmacSHA1 or HmacSHA256.",
            ));
        }
    };
    let timestamp = parse_timestamp(required("Timestamp")?.trim())?;
    let nonce_raw = required("Nonce")?;
    let nonce = if nonce_raw.bytes().all(|b| b.is_ascii_digit()) {
        nonce_raw.parse::<u64>().ok()
    } else {
        None
    }
    .ok_or_else(|| {
        ApiError::invalid_parameter("The parameter `Nonce` must be a non-negative integer.")
    })?;
    let params = Params {
        action: required("Action")?.to_owned(),
        version: required("Version")?.to_owned(),
        region: optional(get("Region")?),
        language: optional(get("Language")?),
        token: optional(get("Token")?),
        timestamp,
        nonce: Some(nonce),
        request_client: optional(get("RequestClient")?),
    };
    Ok(ParsedRequest {
        method,
        sign_method,
        secret_id: secret_id.to_owned(),
        signature: signature.to_owned(),
        params,
        auth: Auth::V1(V1Auth { pairs }),
    })
}

impl ParsedRequest {
    /// Decodes the business parameters — call only AFTER [`ParsedRequest::verify`]:
    /// the JSON object body (TC3 POST, values keep their JSON types), the query (TC3
    /// GET) or the form/query minus the v1 common parameters (v1), unflattened per
    /// §2.3 (flattened values are strings).
    ///
    /// Errors are `InvalidParameter`: invalid UTF-8, a non-object JSON body, duplicate
    /// keys, gaps in flattened indices, a malformed form. An empty TC3 POST body is `{}`.
    pub fn business_params(
        &self,
        req: &RawRequest<'_>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        match (&self.auth, self.method) {
            (Auth::Tc3(_), Method::Post) => crate::json::parse_object(req.body),
            (Auth::Tc3(_), Method::Get) => {
                let pairs = form::decode_pairs(req.query.as_bytes(), true)?;
                crate::flatten::unflatten(utf8_pairs(pairs.into_iter())?)
            }
            (Auth::V1(a), _) => {
                let business = a
                    .pairs
                    .iter()
                    .filter(|(k, _)| !crate::params::is_v1_common_param(k))
                    .cloned();
                crate::flatten::unflatten(utf8_pairs(business)?)
            }
        }
    }
}

fn utf8_pairs(pairs: impl Iterator<Item = Pair>) -> Result<Vec<(String, String)>, ApiError> {
    pairs
        .map(
            |(k, v)| match (String::from_utf8(k), String::from_utf8(v)) {
                (Ok(k), Ok(v)) => Ok((k, v)),
                _ => Err(ApiError::invalid_parameter(
                    "A request parameter is not valid UTF-8.",
                )),
            },
        )
        .collect()
}
