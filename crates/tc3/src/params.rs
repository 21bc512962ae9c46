//! The common parameters of one request (protocol.md §3), the same view whether
//! they came from `X-TC-*` headers (TC3) or from the query / form (v1).

/// Common parameters. Business parameters are decoded separately, after the
/// signature is verified ([`crate::ParsedRequest::business_params`]).
///
/// Optional values that arrive as empty strings are stored as `None`: Go's v1 signer
/// sends `Language=` / `Region=` when they are unset (§2.2), which means "absent".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Params {
    /// `X-TC-Action` / `Action`, as sent (the server decides `InvalidAction`).
    pub action: String,
    /// `X-TC-Version` / `Version`, as sent (the server decides `NoSuchVersion`).
    pub version: String,
    /// `X-TC-Region` / `Region`; optional for faceid, any value accepted (§3).
    pub region: Option<String>,
    /// `X-TC-Language` / `Language`, raw; validate with [`crate::Language::parse`].
    pub language: Option<String>,
    /// `X-TC-Token` / `Token`: STS session token (unsigned in TC3, signed in v1).
    pub token: Option<String>,
    /// `X-TC-Timestamp` / `Timestamp`, seconds since the Unix epoch.
    pub timestamp: i64,
    /// v1 `Nonce` (any non-negative integer, Node sends 0); `None` for TC3.
    pub nonce: Option<u64>,
    /// `X-TC-RequestClient` / `RequestClient`; informational.
    pub request_client: Option<String>,
}

/// The v1 parameters that are protocol, not business, parameters (§5 "never count v1
/// common params as unknown").
pub const V1_COMMON_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Timestamp",
    "Nonce",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Region",
    "Token",
    "Language",
    "RequestClient",
];

/// Whether `key` is one of [`V1_COMMON_PARAMS`].
pub fn is_v1_common_param(key: &[u8]) -> bool {
    V1_COMMON_PARAMS.iter().any(|p| p.as_bytes() == key)
}
