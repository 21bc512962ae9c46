//! Fuzz the request parser and verifier: bytes → (method, query, headers, body) →
//! parse → check_timestamp → verify (secret key and kSigning) → business_params.
//! Only panics matter. The same decoder runs on stable as a proptest in
//! crates/tc3/tests/props.rs (`raw_bytes_never_panic`).
#![no_main]

use cardcheck_tc3::{Limits, RawRequest, parse};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: method \0 query \0 headers ("name:value" lines) \0 body.
    let mut parts = data.splitn(4, |&b| b == 0);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let mut kv = line.splitn(2, |&b| b == b':');
        if let (Some(k), Some(v)) = (kv.next(), kv.next())
            && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v))
        {
            headers.append(k, v);
        }
    }
    let raw = RawRequest {
        method: &method,
        path: "/",
        query: &query,
        headers: &headers,
        body,
    };
    let limits = Limits {
        get_max: 4096,
        v1_post_max: 4096,
        tc3_post_max: 8192,
    };
    if let Ok(p) = parse(&raw, &limits) {
        let _ = p.check_timestamp(1_700_000_000);
        let _ = p.verify(&raw, "examplesecretkey000000000000000000");
        let _ = p.verify_with_tc3_signing_key(&raw, &[7; 32]);
        let _ = p.business_params(&raw);
    }
});
