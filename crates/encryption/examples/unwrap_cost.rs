//! Measures the cost of `decrypt_params` with a fresh data key (cache disabled, so every
//! call does the RSA / SM2 private-key operation) against a cached one, and the cost of
//! bad blobs. Run in release:
//!
//! ```text
//! cargo run --release -p cardcheck-encryption --example unwrap_cost
//! ```
#![allow(clippy::unwrap_used)] // a measurement tool, not an input path

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{Algorithm, BANK_CARD_2E_FIELDS, Decryptor, KeyRing, encrypt_params};
use serde_json::{Map, Value};

const TEST_RSA_PEM: &str = include_str!("../tests/fixtures/test_rsa_private_pkcs1.pem");
const TEST_SM2_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";

fn request(ring: &KeyRing, alg: Algorithm) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("Name".into(), "张三".into());
    params.insert("BankCard".into(), "6225768888888888".into());
    encrypt_params(
        &mut params,
        BANK_CARD_2E_FIELDS,
        alg,
        &ring.public_pem(alg.key_algorithm()),
    )
    .unwrap();
    params
}

/// Mean time per call of `decrypt_params` on clones of `params`.
fn time(d: &Decryptor, params: &Map<String, Value>, iterations: u32, expect_ok: bool) -> Duration {
    // Warm-up (and a correctness check).
    let mut p = params.clone();
    assert_eq!(
        d.decrypt_params(&mut p, BANK_CARD_2E_FIELDS).is_ok(),
        expect_ok
    );
    let start = Instant::now();
    for _ in 0..iterations {
        let mut p = params.clone();
        let _ = black_box(d.decrypt_params(&mut p, BANK_CARD_2E_FIELDS));
    }
    start.elapsed() / iterations
}

fn with_blob(params: &Map<String, Value>, blob: &[u8]) -> Map<String, Value> {
    let mut p = params.clone();
    p["Encryption"]["CiphertextBlob"] = STANDARD.encode(blob).into();
    p
}

fn flip_last(params: &Map<String, Value>) -> Map<String, Value> {
    let mut blob = STANDARD
        .decode(params["Encryption"]["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    *blob.last_mut().unwrap() ^= 1;
    with_blob(params, &blob)
}

fn report(label: &str, d: Duration) {
    println!("{label:<58} {:>10.1} µs", d.as_secs_f64() * 1e6);
}

fn main() {
    let start = Instant::now();
    let generated = KeyRing::generate().unwrap();
    report(
        "KeyRing::generate (RSA-2048 + SM2), one run",
        start.elapsed(),
    );
    let bytes = generated.to_bytes();
    let fresh =
        || Decryptor::with_cache_limits(KeyRing::from_bytes(&bytes).unwrap(), 0, Duration::ZERO);
    let cached = || Decryptor::new(KeyRing::from_bytes(&bytes).unwrap());

    let aes = request(&generated, Algorithm::Aes256Cbc);
    let sm4 = request(&generated, Algorithm::Sm4Gcm);
    report(
        "RSA-2048 unwrap + 2 fields, fresh key",
        time(&fresh(), &aes, 300, true),
    );
    report(
        "RSA-2048, bad blob (tampered, implicit rejection)",
        time(&fresh(), &flip_last(&aes), 300, false),
    );
    report(
        "SM2 unwrap + 2 fields, fresh key",
        time(&fresh(), &sm4, 500, true),
    );
    report(
        "SM2, bad blob (tampered C2: full decrypt, C3 mismatch)",
        time(&fresh(), &flip_last(&sm4), 500, false),
    );
    let mut no_tag = STANDARD
        .decode(sm4["Encryption"]["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    no_tag.remove(0);
    report(
        "SM2, gmssl blob without 04, fresh key",
        time(&fresh(), &with_blob(&sm4, &no_tag), 500, true),
    );
    report(
        "SM2, bad blob (C1 not on the curve: public check)",
        time(&fresh(), &with_blob(&sm4, &[4u8; 113]), 500, false),
    );
    report(
        "AES-256-CBC request, cached data key",
        time(&cached(), &aes, 100_000, true),
    );
    report(
        "SM4-GCM request, cached data key",
        time(&cached(), &sm4, 100_000, true),
    );

    let test_ring = || KeyRing::from_test_keys(TEST_RSA_PEM, TEST_SM2_D).unwrap();
    let test_aes = request(&test_ring(), Algorithm::Aes256Cbc);
    let d = Decryptor::with_cache_limits(test_ring(), 0, Duration::ZERO);
    report(
        "RSA-1024 (test key) unwrap + 2 fields, fresh key",
        time(&d, &test_aes, 1000, true),
    );

    // Rotation overlap: every RSA key of the ring is tried (implicit rejection).
    let mut rotated = KeyRing::from_bytes(&bytes).unwrap();
    rotated.rotate(1).unwrap();
    let d = Decryptor::with_cache_limits(rotated, 0, Duration::ZERO);
    report(
        "RSA-2048 ×2 keys (rotation overlap), old-key blob, fresh",
        time(&d, &aes, 300, true),
    );
    report(
        "SM2 ×2 keys (rotation overlap), old-key blob, fresh",
        time(&d, &sm4, 500, true),
    );
}
