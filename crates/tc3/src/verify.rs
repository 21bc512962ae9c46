//! Signature verification (protocol.md §1.6 for TC3, §2.2 for v1). The caller
//! supplies the secret (or a cached kSigning); every comparison is constant-time
//! (`Mac::verify_slice`). Raw bytes are hashed as received, never re-serialised.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::request::{Auth, Method, ParsedRequest, RawRequest, Tc3Auth, V1Auth};

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

/// SHA-256 of the empty string: the TC3 payload hash of every GET (§1.2 part 6).
const EMPTY_SHA256_HEX: &[u8; 64] =
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The key a request is verified with.
#[derive(Clone, Copy, Debug)]
pub enum VerifyKey<'a> {
    /// The account's SecretKey (works for TC3 and v1).
    SecretKey(&'a str),
    /// A precomputed TC3 kSigning from [`tc3_signing_key`] (TC3 only).
    Tc3SigningKey(&'a [u8; 32]),
}

fn signature_failure() -> ApiError {
    ApiError::new(ErrorCode::AuthFailureSignatureFailure)
}

/// kSigning = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request") (§1.4).
/// Depends only on (SecretKey, date, service): cache it per SecretId and scope.
pub fn tc3_signing_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let mut key = Vec::with_capacity(3 + secret_key.len());
    key.extend_from_slice(b"TC3");
    key.extend_from_slice(secret_key.as_bytes());
    let k_date = hmac256(&key, date.as_bytes());
    let k_service = hmac256(&k_date, service.as_bytes());
    hmac256(&k_service, b"tc3_request")
}

fn hmac256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// §1.6 step 4: the credential-scope date must be the UTC date of the timestamp.
pub(crate) fn check_scope_date(p: &ParsedRequest) -> Result<(), ApiError> {
    match &p.auth {
        Auth::Tc3(a) if a.date != crate::date::utc_date(p.params.timestamp) => {
            Err(ApiError::localized(
                ErrorCode::AuthFailureSignatureFailure,
                "The provided credentials could not be validated: the credential date does not match X-TC-Timestamp.",
                "请求签名验证失败：凭证日期与 X-TC-Timestamp 不一致。",
            ))
        }
        _ => Ok(()),
    }
}

impl ParsedRequest {
    /// Full signature verification with the account's SecretKey. Checks the TC3
    /// scope date (see [`ParsedRequest::check_timestamp`] for the time window).
    /// Mismatch ⇒ `AuthFailure.SignatureFailure`.
    pub fn verify(&self, req: &RawRequest<'_>, secret_key: &str) -> Result<(), ApiError> {
        self.verify_with(req, VerifyKey::SecretKey(secret_key), &[])
    }

    /// TC3 verification with a cached kSigning ([`tc3_signing_key`] of
    /// [`ParsedRequest::tc3_scope`]). A v1 request cannot be verified this way (v1
    /// signs with the SecretKey itself): it returns `InternalError`, so callers must
    /// branch on [`ParsedRequest::sign_method`] and use [`ParsedRequest::verify`] for v1.
    pub fn verify_with_tc3_signing_key(
        &self,
        req: &RawRequest<'_>,
        k_signing: &[u8; 32],
    ) -> Result<(), ApiError> {
        self.verify_with(req, VerifyKey::Tc3SigningKey(k_signing), &[])
    }

    /// General form: `extra_hosts` are further Host values to try after the received
    /// one and its port-less form, e.g. the public host name when a reverse proxy
    /// rewrites `Host` (§1.6 step 7c).
    pub fn verify_with(
        &self,
        req: &RawRequest<'_>,
        key: VerifyKey<'_>,
        extra_hosts: &[&str],
    ) -> Result<(), ApiError> {
        let received = req
            .headers
            .get(http::header::HOST)
            .map(|h| h.as_bytes().trim_ascii())
            .unwrap_or_default();
        let hosts = host_variants(received, extra_hosts);
        match (&self.auth, key) {
            (Auth::Tc3(a), VerifyKey::SecretKey(sk)) => {
                check_scope_date(self)?;
                let k = tc3_signing_key(sk, &a.date, &a.service);
                verify_tc3(self.method, a, req, &k, &hosts)
            }
            (Auth::Tc3(a), VerifyKey::Tc3SigningKey(k)) => {
                check_scope_date(self)?;
                verify_tc3(self.method, a, req, k, &hosts)
            }
            (Auth::V1(a), VerifyKey::SecretKey(sk)) => verify_v1(
                self.method,
                self.sign_method,
                &self.signature,
                a,
                req.path,
                sk,
                &hosts,
            ),
            (Auth::V1(_), VerifyKey::Tc3SigningKey(_)) => Err(ApiError::with_detail(
                ErrorCode::InternalError,
                "A TC3 signing key cannot verify a v1 request.",
            )),
        }
    }
}

/// Host candidates (§1.6 step 7, §2.2 step 4): as received, then without `:port`
/// (Node signs `URL.hostname`), then configured names.
fn host_variants<'a>(received: &'a [u8], extra: &[&'a str]) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = Vec::with_capacity(2 + extra.len());
    out.push(received);
    if let Some(stripped) = strip_port(received)
        && stripped != received
    {
        out.push(stripped);
    }
    for e in extra {
        if !out.contains(&e.as_bytes()) {
            out.push(e.as_bytes());
        }
    }
    out
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`; a bare IPv6 address is left alone.
fn strip_port(host: &[u8]) -> Option<&[u8]> {
    let colon = host.iter().rposition(|&b| b == b':')?;
    let (name, port) = host.split_at(colon);
    let port = port.get(1..)?;
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if name.starts_with(b"[") {
        return name.ends_with(b"]").then_some(name);
    }
    (!name.contains(&b':')).then_some(name)
}

fn verify_tc3(
    method: Method,
    a: &Tc3Auth,
    req: &RawRequest<'_>,
    k_signing: &[u8; 32],
    hosts: &[&[u8]],
) -> Result<(), ApiError> {
    // Payload hash (§1.2 part 6): computed once, shared by every variant.
    let mut payload_hex = [0u8; 64];
    if a.unsigned_payload {
        hex_into(
            &Sha256::digest(b"UNSIGNED-PAYLOAD").into(),
            &mut payload_hex,
        );
    } else if method == Method::Get {
        payload_hex = *EMPTY_SHA256_HEX;
    } else {
        hex_into(&Sha256::digest(req.body).into(), &mut payload_hex);
    }
    let query: &[u8] = if method == Method::Get {
        req.query.as_bytes()
    } else {
        b""
    };
    let path: &[u8] = if req.path.is_empty() {
        b"/"
    } else {
        req.path.as_bytes()
    };

    // Signed header values other than host (first value, trimmed; missing = empty).
    let values: Vec<&[u8]> = a
        .signed_header_names
        .iter()
        .map(|n| {
            if n == "host" {
                &b""[..]
            } else {
                req.headers
                    .get(n.as_str())
                    .map(|v| v.as_bytes().trim_ascii())
                    .unwrap_or_default()
            }
        })
        .collect();

    let Ok(keyed) = <HmacSha256 as KeyInit>::new_from_slice(k_signing) else {
        return Err(signature_failure());
    };
    for host in hosts {
        // §1.6 step 7: the doc rule (lower-cased values) first, raw values as fallback;
        // skip the fallback when lower-casing changes nothing.
        let has_upper = host.iter().any(u8::is_ascii_uppercase)
            || values.iter().any(|v| v.iter().any(u8::is_ascii_uppercase));
        for lower in [true, false] {
            if !lower && !has_upper {
                break;
            }
            let mut h = Sha256::new();
            h.update(method.as_str());
            h.update(b"\n");
            h.update(path);
            h.update(b"\n");
            h.update(query);
            h.update(b"\n");
            for (name, value) in a.signed_header_names.iter().zip(&values) {
                let value = if name == "host" { host } else { value };
                h.update(name.as_bytes());
                h.update(b":");
                if lower {
                    update_lower(&mut h, value);
                } else {
                    h.update(value);
                }
                h.update(b"\n");
            }
            h.update(b"\n");
            h.update(a.signed_headers.as_bytes());
            h.update(b"\n");
            h.update(payload_hex);
            let mut creq_hex = [0u8; 64];
            hex_into(&h.finalize().into(), &mut creq_hex);

            let mut mac = keyed.clone();
            mac.update(b"TC3-HMAC-SHA256\n");
            mac.update(a.timestamp_raw.as_bytes());
            mac.update(b"\n");
            mac.update(a.date.as_bytes());
            mac.update(b"/");
            mac.update(a.service.as_bytes());
            mac.update(b"/tc3_request\n");
            mac.update(&creq_hex);
            if mac.verify_slice(&a.signature_bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(signature_failure())
}

fn update_lower(h: &mut Sha256, value: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in value.chunks(buf.len()) {
        let out = buf.get_mut(..chunk.len()).unwrap_or_default();
        for (o, c) in out.iter_mut().zip(chunk) {
            *o = c.to_ascii_lowercase();
        }
        h.update(&*out);
    }
}

fn hex_into(bytes: &[u8; 32], out: &mut [u8; 64]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = HEX[usize::from(b >> 4)];
            *lo = HEX[usize::from(b & 15)];
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn verify_v1(
    method: Method,
    sign_method: crate::SignMethod,
    signature: &str,
    a: &V1Auth,
    path: &str,
    secret_key: &str,
    hosts: &[&[u8]],
) -> Result<(), ApiError> {
    // §2.2 step 5: the signature is standard Base64 (already form-decoded).
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| signature_failure())?;
    // Step 2: sort by key, byte-wise (keys are unique: duplicates were refused).
    let mut order: Vec<&(Vec<u8>, Vec<u8>)> =
        a.pairs.iter().filter(|(k, _)| k != b"Signature").collect();
    order.sort_by(|x, y| x.0.cmp(&y.0));
    let has_empty = order.iter().any(|(_, v)| v.is_empty());
    let path: &[u8] = if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    };

    for host in hosts {
        // Go's v1 signer skips empty values but still sends them (§2.2 quirks).
        for skip_empty in [false, true] {
            if skip_empty && !has_empty {
                break;
            }
            let ok = match sign_method {
                crate::SignMethod::HmacSha256 => {
                    v1_mac::<HmacSha256>(secret_key, method, host, path, &order, skip_empty, &sig)
                }
                _ => v1_mac::<HmacSha1>(secret_key, method, host, path, &order, skip_empty, &sig),
            };
            if ok {
                return Ok(());
            }
        }
    }
    Err(signature_failure())
}

fn v1_mac<M: Mac + KeyInit>(
    secret_key: &str,
    method: Method,
    host: &[u8],
    path: &[u8],
    pairs: &[&(Vec<u8>, Vec<u8>)],
    skip_empty: bool,
    sig: &[u8],
) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(secret_key.as_bytes()) else {
        return false;
    };
    // Step 4: METHOD + host + path + "?" + k=v&… (values raw, not re-encoded).
    mac.update(method.as_str().as_bytes());
    mac.update(host);
    mac.update(path);
    mac.update(b"?");
    let mut first = true;
    for (k, v) in pairs {
        if skip_empty && v.is_empty() {
            continue;
        }
        if !first {
            mac.update(b"&");
        }
        first = false;
        mac.update(k);
        mac.update(b"=");
        mac.update(v);
    }
    mac.verify_slice(sig).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(strip_port(b"127.0.0.1:18080"), Some(&b"127.0.0.1"[..]));
        assert_eq!(strip_port(b"[::1]:80"), Some(&b"[::1]"[..]));
        assert_eq!(strip_port(b"::1"), None);
        assert_eq!(strip_port(b"host"), None);
        assert_eq!(strip_port(b"host:"), None);
    }

    #[test]
    fn empty_hash_constant() {
        let mut out = [0u8; 64];
        hex_into(&Sha256::digest(b"").into(), &mut out);
        assert_eq!(&out, EMPTY_SHA256_HEX);
    }
}
