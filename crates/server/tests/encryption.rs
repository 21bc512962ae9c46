//! issue 7: the worked example of `crates/encryption/tests/fixtures` (both algorithms), sent as the
//! business parameters of signed requests to a server holding the example's test keys,
//! answers the Result for `张三` + `6225768888888888` (a sandbox card: `0`); in TC3 JSON,
//! TC3 GET (flattened) and v1 form encodings.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_encryption::KeyRing;
use cardcheck_server::ServerConfig;
use cardcheck_tc3::SignMethod;
use common::*;
use serde_json::{Map, Value, json};

/// The worked example's output (provenance: crates/encryption/tests/fixtures/PROVENANCE.md).
const VECTORS: &str = include_str!("../../encryption/tests/fixtures/vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

async fn example_server() -> TestServer {
    let v = vectors();
    let keys = KeyRing::from_test_keys(
        v["rsa_private_key_pkcs1_pem"].as_str().unwrap(),
        v["sm2_private_key_hex"].as_str().unwrap(),
    )
    .unwrap();
    server_with_keys(
        ServerConfig {
            credential_ttl: std::time::Duration::ZERO,
            ..ServerConfig::default()
        },
        Some(keys),
    )
    .await
}

#[tokio::test]
async fn the_worked_example_answers_as_its_plaintext_in_every_encoding() {
    let s = example_server().await;
    let issued = s.account("acme").await;
    let v = vectors();
    for alg in ["aes", "sm4"] {
        let request: Map<String, Value> = v[alg]["request"].as_object().unwrap().clone();
        assert_ne!(
            request["BankCard"],
            json!("6225768888888888"),
            "the fields are ciphertext"
        );
        for (sign_method, http_method, language) in [
            (SignMethod::Tc3HmacSha256, "POST", Some("zh-CN")),
            (SignMethod::Tc3HmacSha256, "GET", Some("en-US")),
            (SignMethod::HmacSha256, "POST", Some("zh-CN")),
            (SignMethod::HmacSha1, "GET", None),
        ] {
            let mut call = Call::new(&issued, "", "");
            call.params = request.clone();
            call.sign_method = sign_method;
            call.http_method = http_method;
            call.language = language;
            let (_, body) = s.send(&call).await;
            assert_eq!(
                result_of(&body),
                "0",
                "{alg} {sign_method:?} {http_method}: {body}"
            );
        }
    }
    // The data key of each example was unwrapped once, then served from the cache.
    let metrics = cardcheck_server::admin_app(s.state.clone());
    let response = tower::ServiceExt::oneshot(
        metrics,
        http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let text = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(
        text.contains("cardcheck_datakey_cache_misses_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn every_kind_of_bad_envelope_has_its_code() {
    let s = example_server().await;
    let issued = s.account("acme").await;
    let v = vectors();
    let aes: Map<String, Value> = v["aes"]["request"].as_object().unwrap().clone();
    let sm4: Map<String, Value> = v["sm4"]["request"].as_object().unwrap().clone();
    let edit = |base: &Map<String, Value>, f: &dyn Fn(&mut Map<String, Value>)| {
        let mut m = base.clone();
        f(&mut m);
        m
    };
    let cases: Vec<(Map<String, Value>, &str)> = vec![
        // Tampered GCM tag.
        (
            edit(&sm4, &|m| {
                m["Encryption"]["TagList"][0] = json!("AAAAAAAAAAAAAAAAAAAAAA==")
            }),
            "FailedOperation.DecryptSystemError",
        ),
        // A blob for another key.
        (
            edit(&aes, &|m| {
                m["Encryption"]["CiphertextBlob"] = sm4["Encryption"]["CiphertextBlob"].clone()
            }),
            "FailedOperation.DecryptSystemError",
        ),
        // Bad padding: the ciphertext of another field under the right key still decrypts;
        // a truncated one does not.
        (
            edit(&aes, &|m| m["BankCard"] = json!("AAAAAAAAAAAAAAAAAAAAAA==")),
            "FailedOperation.DecryptSystemError",
        ),
        (
            edit(&aes, &|m| m["Name"] = json!("not base64!")),
            "FailedOperation.DecryptSystemError",
        ),
        (
            edit(&aes, &|m| {
                m.remove("Name");
            }),
            "MissingParameter",
        ),
        (
            edit(&aes, &|m| {
                m["Encryption"]["EncryptList"] = json!(["Name", "Other"])
            }),
            "InvalidParameter.UnsupportEncryptField",
        ),
        (
            edit(&aes, &|m| m["Encryption"]["Algorithm"] = json!("RSA-OAEP")),
            "InvalidParameterValue",
        ),
        (
            edit(&aes, &|m| m["Encryption"] = json!("a string")),
            "InvalidParameter",
        ),
    ];
    for (params, code) in cases {
        let mut call = Call::new(&issued, "", "");
        call.params = params;
        let (_, body) = s.send(&call).await;
        assert_eq!(error_of(&body), code, "{body}");
    }

    // A card number listed as a field was echoed back in the error message.
    let mut call = Call::new(&issued, "", "");
    call.params = edit(&aes, &|m| {
        m["Encryption"]["EncryptList"] = json!(["6225768888888888"])
    });
    let (_, body) = s.send(&call).await;
    assert_eq!(
        error_of(&body),
        "InvalidParameter.UnsupportEncryptField",
        "{body}"
    );
    let text = body.to_string();
    assert!(!text.contains("6225768888888888"), "{text}");
    assert!(text.contains("(redacted)"), "{text}");
}

#[tokio::test]
async fn rotated_keys_overlap_then_the_old_key_stops_working() {
    use cardcheck_encryption::{Algorithm, BANK_CARD_2E_FIELDS, KeyAlgorithm, encrypt_params};
    let s = server().await;
    let issued = s.account("acme").await;
    let encrypted = |pem: &str| {
        let mut call = Call::new(&issued, "Wei Xiaobao", "6225768888888888");
        encrypt_params(
            &mut call.params,
            BANK_CARD_2E_FIELDS,
            Algorithm::Aes256Cbc,
            pem,
        )
        .unwrap();
        call
    };
    let old_pem = s.state.public_key_pem(KeyAlgorithm::Rsa);
    assert!(!s.state.reload_keys().await.unwrap(), "nothing changed yet");

    // `cardcheck key rotate --keep 1`: a new current key, the old one still accepted.
    let stored = s.backend.keys.load_server_keys().await.unwrap().unwrap();
    let mut ring = KeyRing::from_bytes(&stored).unwrap();
    ring.rotate(1).unwrap();
    s.backend
        .keys
        .save_server_keys(&ring.to_bytes())
        .await
        .unwrap();
    assert!(s.state.reload_keys().await.unwrap());
    let new_pem = s.state.public_key_pem(KeyAlgorithm::Rsa);
    assert_ne!(old_pem, new_pem);
    assert_eq!(result_of(&s.send(&encrypted(&old_pem)).await.1), "0");
    assert_eq!(result_of(&s.send(&encrypted(&new_pem)).await.1), "0");

    // The overlap ends: the old key is dropped and its requests fail.
    ring.rotate(0).unwrap();
    s.backend
        .keys
        .save_server_keys(&ring.to_bytes())
        .await
        .unwrap();
    assert!(s.state.reload_keys().await.unwrap());
    assert_eq!(
        error_of(&s.send(&encrypted(&old_pem)).await.1),
        "FailedOperation.DecryptSystemError"
    );
}
