//! protocol.md §7.1: the deterministic worked example decrypts with the test keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{Decryptor, KeyAlgorithm, KeyRing};
use serde_json::Value;

use crate::common::*;

fn assert_decrypts(mut params: serde_json::Map<String, Value>) {
    let decryptor = Decryptor::new(test_ring());
    assert_eq!(decryptor.decrypt_params(&mut params, FIELDS), Ok(true));
    assert_eq!(params, plaintext(), "fields replaced, Encryption removed");
    assert_eq!(params["Name"], "张三");
    assert_eq!(params["BankCard"], "6225768888888888");
}

#[test]
fn aes_256_cbc_json_form_decrypts_to_the_documented_plaintext() {
    assert_decrypts(example_request("aes"));
}

#[test]
fn sm4_gcm_json_form_decrypts_to_the_documented_plaintext() {
    assert_decrypts(example_request("sm4"));
}

#[test]
fn flattened_then_unflattened_forms_decrypt() {
    for section in ["aes", "sm4"] {
        let unflattened = flatten_unflatten(&example_request(section));
        // The AES example's `TagList: []` disappears when flattened (protocol.md §2.3).
        if section == "aes" {
            assert!(
                !unflattened["Encryption"]
                    .as_object()
                    .unwrap()
                    .contains_key("TagList")
            );
        }
        assert!(unflattened["Encryption"]["EncryptList"].is_array());
        assert_decrypts(unflattened);
    }
}

#[test]
fn algorithm_absent_defaults_to_aes_256_cbc() {
    let mut params = example_request("aes");
    enc(&mut params).remove("Algorithm");
    assert_decrypts(params.clone());
    enc(&mut params).insert("Algorithm".into(), Value::Null);
    assert_decrypts(params.clone());
    enc(&mut params).insert("Algorithm".into(), "".into());
    assert_decrypts(params);
}

#[test]
fn gmssl_style_sm2_blob_without_the_04_tag_decrypts() {
    let blob = STANDARD
        .decode(v_str(&["sm4", "request", "Encryption", "CiphertextBlob"]))
        .unwrap();
    assert_eq!((blob.len(), blob[0]), (113, 0x04));
    let mut params = example_request("sm4");
    enc(&mut params).insert("CiphertextBlob".into(), STANDARD.encode(&blob[1..]).into());
    assert_decrypts(params);
}

#[test]
fn asn1_der_sm2_blob_is_tolerated() {
    let ring = test_ring();
    let public = sm2::PublicKey::from_sec1_bytes(
        &hex::decode(format!("04{}", v_str(&["sm2_public_key_xy_hex"]))).unwrap(),
    )
    .unwrap();
    let der = sm2::pke::EncryptingKey::new(public)
        .encrypt_der(
            &mut rand::rngs::SysRng,
            v_str(&["sm4", "sym_key_ascii"]).as_bytes(),
        )
        .unwrap();
    assert_eq!(der[0], 0x30);
    let mut params = example_request("sm4");
    enc(&mut params).insert("CiphertextBlob".into(), STANDARD.encode(&der).into());
    let decryptor = Decryptor::new(ring);
    assert_eq!(decryptor.decrypt_params(&mut params, FIELDS), Ok(true));
    assert_eq!(params, plaintext());
}

#[test]
fn unpadded_base64_is_accepted() {
    let mut params = example_request("aes");
    let iv = v_str(&["aes", "request", "Encryption", "Iv"]).trim_end_matches('=');
    enc(&mut params).insert("Iv".into(), iv.into());
    assert_decrypts(params);
}

#[test]
fn public_keys_match_the_fixture() {
    let ring = test_ring();
    assert_eq!(
        ring.public_pem(KeyAlgorithm::Rsa),
        v_str(&["rsa_public_key_pkcs1_pem"])
    );
    assert_eq!(
        ring.public_pem(KeyAlgorithm::Sm2),
        v_str(&["sm2_public_key_spki_pem"])
    );
    assert_eq!(
        ring.public_pem_base64(KeyAlgorithm::Rsa),
        v_str(&["rsa_public_key_pkcs1_pem_base64"])
    );
    assert_eq!(
        ring.public_pem_base64(KeyAlgorithm::Sm2),
        v_str(&["sm2_public_key_spki_pem_base64"])
    );
    assert_eq!(ring.rsa_bits(), 1024);
}

#[test]
fn test_ring_survives_serialisation() {
    let ring = KeyRing::from_bytes(&test_ring().to_bytes()).unwrap();
    let decryptor = Decryptor::new(ring);
    for section in ["aes", "sm4"] {
        let mut params = example_request(section);
        assert_eq!(decryptor.decrypt_params(&mut params, FIELDS), Ok(true));
        assert_eq!(params, plaintext());
    }
}

#[test]
fn rsa_blob_split_into_blocks_like_the_go_helper_decrypts() {
    // Two 128-byte blocks holding 16 + 16 bytes of the data key (protocol.md §7 step 4:
    // the server decrypts block-wise and concatenates).
    use rsa::pkcs1::DecodeRsaPublicKey;
    let public = rsa::PublicKey::from_pkcs1_pem(v_str(&["rsa_public_key_pkcs1_pem"])).unwrap();
    let key = v_str(&["aes", "sym_key_ascii"]).as_bytes();
    let mut blob = Vec::new();
    for half in key.chunks(16) {
        blob.extend(
            public
                .encrypt(&mut rand::rngs::SysRng, rsa::Pkcs1v15Encrypt, half)
                .unwrap(),
        );
    }
    assert_eq!(blob.len(), 256);
    let mut params = example_request("aes");
    enc(&mut params).insert("CiphertextBlob".into(), STANDARD.encode(&blob).into());
    assert_decrypts(params);
}
