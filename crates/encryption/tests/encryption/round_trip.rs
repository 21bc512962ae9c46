//! encrypt_params → decrypt_params, both algorithms, every accepted public-key form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{Algorithm, Decryptor, KeyAlgorithm, encrypt_params};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::Value;

use crate::common::*;

fn round_trip(decryptor: &Decryptor, alg: Algorithm, public_key: &str) {
    let mut params = plaintext();
    params.insert("Language".into(), "zh-CN".into());
    encrypt_params(&mut params, FIELDS, alg, public_key).unwrap();

    let enc = params["Encryption"].as_object().unwrap();
    assert_eq!(enc["Algorithm"], alg.as_str());
    assert_eq!(enc["EncryptList"], serde_json::json!(["Name", "BankCard"]));
    assert_eq!(
        STANDARD.decode(enc["Iv"].as_str().unwrap()).unwrap().len(),
        alg.iv_len()
    );
    match alg {
        Algorithm::Aes256Cbc => assert!(!enc.contains_key("TagList")),
        Algorithm::Sm4Gcm => {
            assert_eq!(enc["TagList"].as_array().unwrap().len(), 2);
            let blob = STANDARD
                .decode(enc["CiphertextBlob"].as_str().unwrap())
                .unwrap();
            assert_eq!((blob.len(), blob[0]), (113, 0x04), "04 ‖ C1 ‖ C3 ‖ C2");
        }
    }
    assert_ne!(params["Name"], "张三");

    // JSON form and the flattened-then-unflattened form.
    let mut unflattened = flatten_unflatten(&params);
    assert_eq!(decryptor.decrypt_params(&mut params, FIELDS), Ok(true));
    assert_eq!(params["Name"], "张三");
    assert_eq!(params["BankCard"], "6225768888888888");
    assert_eq!(params["Language"], "zh-CN");
    assert!(!params.contains_key("Encryption"));
    assert_eq!(decryptor.decrypt_params(&mut unflattened, FIELDS), Ok(true));
    assert_eq!(unflattened, params);
}

#[test]
fn round_trip_with_generated_keys() {
    let ring = generated_ring();
    let rsa_pem = ring.public_pem(KeyAlgorithm::Rsa);
    let sm2_pem = ring.public_pem(KeyAlgorithm::Sm2);
    let rsa_b64 = ring.public_pem_base64(KeyAlgorithm::Rsa);
    let sm2_b64 = ring.public_pem_base64(KeyAlgorithm::Sm2);
    assert!(rsa_pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
    assert!(sm2_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let rsa_spki = rsa::PublicKey::from_pkcs1_pem(&rsa_pem)
        .unwrap()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();

    let d = Decryptor::new(ring);
    for key in [&rsa_pem, &rsa_b64, &rsa_spki] {
        round_trip(&d, Algorithm::Aes256Cbc, key);
    }
    for key in [&sm2_pem, &sm2_b64] {
        round_trip(&d, Algorithm::Sm4Gcm, key);
    }
}

#[test]
fn round_trip_with_the_1024_bit_test_keys_and_fixture_pems() {
    let d = Decryptor::new(test_ring());
    round_trip(
        &d,
        Algorithm::Aes256Cbc,
        v_str(&["rsa_public_key_pkcs1_pem_base64"]),
    );
    round_trip(&d, Algorithm::Sm4Gcm, v_str(&["sm2_public_key_spki_pem"]));
}

#[test]
fn each_encryption_uses_a_fresh_data_key_and_iv() {
    let pem = v_str(&["sm2_public_key_spki_pem"]);
    let mut a = plaintext();
    let mut b = plaintext();
    encrypt_params(&mut a, FIELDS, Algorithm::Sm4Gcm, pem).unwrap();
    encrypt_params(&mut b, FIELDS, Algorithm::Sm4Gcm, pem).unwrap();
    for key in ["CiphertextBlob", "Iv"] {
        assert_ne!(a["Encryption"][key], b["Encryption"][key]);
    }
    assert_ne!(a["Name"], b["Name"]);
}

#[test]
fn only_listed_fields_are_encrypted() {
    let d = Decryptor::new(test_ring());
    let mut params = plaintext();
    encrypt_params(
        &mut params,
        &["BankCard"],
        Algorithm::Aes256Cbc,
        v_str(&["rsa_public_key_pkcs1_pem"]),
    )
    .unwrap();
    assert_eq!(params["Name"], "张三");
    assert_eq!(
        params["Encryption"]["EncryptList"],
        serde_json::json!(["BankCard"])
    );
    assert_eq!(d.decrypt_params(&mut params, FIELDS), Ok(true));
    assert_eq!(params, plaintext());
    // Empty strings and long values round-trip too.
    for value in ["", &"长".repeat(500)] {
        let mut params = plaintext();
        params.insert("Name".into(), Value::String(value.to_owned()));
        encrypt_params(
            &mut params,
            FIELDS,
            Algorithm::Sm4Gcm,
            v_str(&["sm2_public_key_spki_pem"]),
        )
        .unwrap();
        assert_eq!(d.decrypt_params(&mut params, FIELDS), Ok(true));
        assert_eq!(params["Name"], value);
    }
}
