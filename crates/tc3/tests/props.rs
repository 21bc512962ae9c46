//! Property tests: the request path never panics on arbitrary input (the same body
//! as the cargo-fuzz target `fuzz/fuzz_targets/parse_verify.rs`, runnable on stable),
//! and flatten → unflatten round-trips (§2.3).
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_tc3::flatten::{flatten, unflatten};
use cardcheck_tc3::{Limits, RawRequest, parse};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Runs bytes through parse, timestamp check, verify (both key kinds) and
/// business_params; only panics matter. Mirrors the fuzz target.
fn exercise(method: &str, query: &str, headers: &HeaderMap, body: &[u8]) {
    let raw = RawRequest {
        method,
        path: "/",
        query,
        headers,
        body,
    };
    let limits = Limits {
        get_max: 4096,
        v1_post_max: 4096,
        tc3_post_max: 8192,
    };
    if let Ok(p) = parse(&raw, &limits) {
        let _ = p.check_timestamp(common::NOW);
        let _ = p.verify(&raw, common::SECRET_KEY);
        let _ = p.verify_with_tc3_signing_key(&raw, &[7; 32]);
        let _ = p.business_params(&raw);
        let _ = (p.secret_id(), p.signature(), p.tc3_scope(), p.params());
    }
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        Just("TC3-HMAC-SHA256 Credential=AKID/2023-11-14/faceid/tc3_request, SignedHeaders=content-type;host, Signature=0000000000000000000000000000000000000000000000000000000000000000".to_owned()),
        "TC3-HMAC-SHA256 [ -~]{0,80}",
        "-?[0-9]{0,20}",
        Just("application/json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,200}",
        "(([A-Za-z.0-9%+]{0,12})=([A-Za-z0-9%+=/]{0,12})&){0,12}Signature=[A-Za-z0-9%]{0,12}",
        Just("Action=A&Version=V&Nonce=0&Timestamp=1700000000&SecretId=x&Signature=abc%3D&A.0=x&A.1=y".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn request_path_never_panics(
        method in prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), Just("PUT".to_owned()), "[A-Z]{0,6}"],
        query in query(),
        auth in proptest::option::of(header_value()),
        ts in proptest::option::of(header_value()),
        ct in proptest::option::of(header_value()),
        host in proptest::option::of("[ -~]{0,30}"),
        extra in proptest::collection::vec(("x-tc-[a-z]{1,10}", "[ -~]{0,20}"), 0..4),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "[ -~]{0,200}".prop_map(String::into_bytes),
            Just(br#"{"Name":"a","Encryption":{"EncryptList":["Name"]}}"#.to_vec()),
        ],
    ) {
        let mut h = HeaderMap::new();
        let mut put = |k: &str, v: &str| {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                h.append(k, v);
            }
        };
        if let Some(a) = &auth { put("authorization", a); }
        if let Some(t) = &ts { put("x-tc-timestamp", t); }
        if let Some(c) = &ct { put("content-type", c); }
        if let Some(x) = &host { put("host", x); }
        put("x-tc-action", "BankCard2EVerification");
        put("x-tc-version", "2018-03-01");
        for (k, v) in &extra { put(k, v); }
        exercise(&method, &query, &h, &body);
    }

    #[test]
    fn raw_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_like(&data);
    }

    #[test]
    fn flatten_unflatten_round_trips(m in params()) {
        let back = unflatten(flatten(&m)).unwrap();
        prop_assert_eq!(Value::Object(back), stringify(&Value::Object(m)));
    }
}

/// The fuzz target's decoder: split bytes into method / query / headers / body.
fn fuzz_like(data: &[u8]) {
    let mut parts = data.splitn(4, |&b| b == 0);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut h = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let mut kv = line.splitn(2, |&b| b == b':');
        if let (Some(k), Some(v)) = (kv.next(), kv.next())
            && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v))
        {
            h.append(k, v);
        }
    }
    exercise(&method, &query, &h, body);
}

/// Business-parameter-like trees: object keys are names (never pure digits, no `.`),
/// arrays and objects are non-empty (an element that flattens to nothing would leave
/// an index gap, in the Python SDK too), leaves are strings or numbers. Null members
/// and empty arrays are covered by the unit tests in `src/flatten.rs`.
fn params() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        "[ -~]{0,10}".prop_map(Value::String),
        "\\PC{0,6}".prop_map(Value::String),
        any::<i32>().prop_map(|i| Value::Number(i.into())),
        any::<bool>().prop_map(Value::Bool),
    ];
    let tree = leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
            proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,6}", inner, 1..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,6}", tree, 0..5)
        .prop_map(|kv| kv.into_iter().collect())
}

/// What unflatten(flatten(v)) must give: every scalar as its string form.
fn stringify(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s.clone()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(if *b { "True" } else { "False" }.into()),
        Value::Array(items) => Value::Array(items.iter().map(stringify).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), stringify(v))).collect())
        }
    }
}
