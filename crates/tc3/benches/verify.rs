//! Cost of verifying one TC3 request with a ~300-byte body (the Python SDK's
//! Encryption capture, 294 bytes): parse + verify with the SecretKey (includes the
//! kSigning derivation), verify with a cached kSigning, and a v1 HmacSHA256 POST.
//! Run: `cargo bench -p cardcheck-tc3 --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use cardcheck_tc3::{Limits, RawRequest, parse, tc3_signing_key};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};

const KEY: &str = "examplesecretkey000000000000000000";

struct Owned {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn load(name: &str) -> Owned {
    let path = format!(
        "{}/tests/fixtures/captures/http/{name}.http",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read(path).expect("fixture");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("utf8");
    let mut lines = head.split("\r\n");
    let mut rl = lines.next().expect("request line").split(' ');
    let method = rl.next().expect("method").to_owned();
    let target = rl.next().expect("target");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for l in lines {
        let (k, v) = l.split_once(':').expect("header");
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v.trim()).expect("value"),
        );
    }
    Owned {
        method,
        path: path.into(),
        query: query.into(),
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn raw(o: &Owned) -> RawRequest<'_> {
    RawRequest {
        method: &o.method,
        path: &o.path,
        query: &o.query,
        headers: &o.headers,
        body: &o.body,
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let tc3 = load("py_tc3_post_encryption");
    assert_eq!(tc3.body.len(), 294);
    let k = tc3_signing_key(KEY, "2023-11-14", "faceid");

    c.bench_function("tc3_parse_verify_secret_key_294B", |b| {
        b.iter(|| {
            let r = raw(&tc3);
            let p = parse(black_box(&r), &limits).expect("parse");
            p.check_timestamp(1_700_000_000).expect("ts");
            p.verify(&r, black_box(KEY)).expect("verify");
        })
    });
    c.bench_function("tc3_parse_verify_cached_k_signing_294B", |b| {
        b.iter(|| {
            let r = raw(&tc3);
            let p = parse(black_box(&r), &limits).expect("parse");
            p.verify_with_tc3_signing_key(&r, black_box(&k))
                .expect("verify");
        })
    });
    let node = load("node_tc3_post_json");
    c.bench_function("tc3_node_host_without_port_fallback", |b| {
        b.iter(|| {
            let r = raw(&node);
            let p = parse(black_box(&r), &limits).expect("parse");
            p.verify(&r, black_box(KEY)).expect("verify");
        })
    });
    let v1 = load("py_v1_hmacsha256_post_encryption");
    c.bench_function("v1_hmacsha256_post_parse_verify", |b| {
        b.iter(|| {
            let r = raw(&v1);
            let p = parse(black_box(&r), &limits).expect("parse");
            p.verify(&r, black_box(KEY)).expect("verify");
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
