//! Every failure maps to its variant (protocol.md §7 "Server side"); params are left
//! untouched on error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{Decryptor, EncryptionError, KeyRing, encrypt_params};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use serde_json::{Map, Value, json};

use crate::common::*;

/// Runs decrypt_params and checks that an error leaves the params unchanged.
fn run(decryptor: &Decryptor, params: &Map<String, Value>) -> Result<bool, EncryptionError> {
    let mut p = params.clone();
    let result = decryptor.decrypt_params(&mut p, FIELDS);
    if result.is_err() {
        assert_eq!(&p, params, "params must be unchanged after {result:?}");
    }
    result
}

fn with_enc(section: &str, key: &str, value: Value) -> Map<String, Value> {
    let mut params = example_request(section);
    enc(&mut params).insert(key.into(), value);
    params
}

fn malformed(r: Result<bool, EncryptionError>) -> bool {
    matches!(r, Err(EncryptionError::MalformedEnvelope(_)))
}

/// Flips one bit of a Base64 value.
fn flip(b64: &str, byte: usize) -> String {
    let mut bytes = STANDARD.decode(b64).unwrap();
    bytes[byte] ^= 0x01;
    STANDARD.encode(bytes)
}

fn aes_key() -> &'static [u8] {
    v_str(&["aes", "sym_key_ascii"]).as_bytes()
}

fn aes_encrypt_raw(block: &[u8]) -> String {
    let iv: Vec<u8> = (0u8..16).collect();
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(aes_key(), &iv).unwrap();
    STANDARD.encode(enc.encrypt_padded_vec::<NoPadding>(block))
}

#[test]
fn tampered_gcm_tag_and_ciphertext_fail_with_decrypt() {
    let d = Decryptor::new(test_ring());
    let mut params = example_request("sm4");
    let tag = params["Encryption"]["TagList"][1]
        .as_str()
        .unwrap()
        .to_owned();
    enc(&mut params)["TagList"][1] = flip(&tag, 15).into();
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));

    let mut params = example_request("sm4");
    let ct = flip(params["BankCard"].as_str().unwrap(), 0);
    params.insert("BankCard".into(), ct.into());
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));
}

#[test]
fn tampered_blobs_fail_with_decrypt() {
    let d = Decryptor::new(test_ring());
    for (section, byte) in [
        ("sm4", 0),
        ("sm4", 40),
        ("sm4", 70),
        ("sm4", 112),
        ("aes", 0),
        ("aes", 127),
    ] {
        let blob = v_str(&[section, "request", "Encryption", "CiphertextBlob"]);
        let params = with_enc(section, "CiphertextBlob", flip(blob, byte).into());
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::Decrypt),
            "{section} byte {byte}"
        );
    }
}

#[test]
fn wrong_server_key_fails_with_decrypt() {
    let d = Decryptor::new(generated_ring());
    for section in ["aes", "sm4"] {
        assert_eq!(
            run(&d, &example_request(section)),
            Err(EncryptionError::Decrypt),
            "{section}"
        );
    }
}

#[test]
fn bad_cbc_padding_fails_with_decrypt() {
    let d = Decryptor::new(test_ring());
    // Right key and IV, but the last byte of the only block is 0x00 (no valid PKCS#7),
    // and then 0x11 (> block size).
    for last in [0x00u8, 0x11] {
        let mut block = [b'A'; 16];
        block[15] = last;
        let mut params = example_request("aes");
        params.insert("Name".into(), aes_encrypt_raw(&block).into());
        assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));
    }
    // Ciphertext not a whole number of blocks.
    let mut params = example_request("aes");
    params.insert("Name".into(), STANDARD.encode([1u8; 15]).into());
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));
}

#[test]
fn plaintext_that_is_not_utf8_fails_with_decrypt() {
    let d = Decryptor::new(test_ring());
    let iv: Vec<u8> = (0u8..16).collect();
    let enc_ = cbc::Encryptor::<aes::Aes256>::new_from_slices(aes_key(), &iv).unwrap();
    let ct = STANDARD.encode(enc_.encrypt_padded_vec::<Pkcs7>(&[0xff, 0xfe, 0x80]));
    let mut params = example_request("aes");
    params.insert("Name".into(), ct.into());
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));
}

#[test]
fn data_key_of_the_wrong_length_fails_with_decrypt() {
    use rsa::pkcs1::DecodeRsaPublicKey;
    let d = Decryptor::new(test_ring());
    let rsa_pub = rsa::PublicKey::from_pkcs1_pem(v_str(&["rsa_public_key_pkcs1_pem"])).unwrap();
    let blob = rsa_pub
        .encrypt(
            &mut rand::rngs::SysRng,
            rsa::Pkcs1v15Encrypt,
            &aes_key()[..16],
        )
        .unwrap();
    let params = with_enc("aes", "CiphertextBlob", STANDARD.encode(blob).into());
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));

    let sm2_pub = sm2::PublicKey::from_sec1_bytes(
        &hex::decode(format!("04{}", v_str(&["sm2_public_key_xy_hex"]))).unwrap(),
    )
    .unwrap();
    let blob = sm2::pke::EncryptingKey::new(sm2_pub)
        .encrypt(&mut rand::rngs::SysRng, &[7u8; 32])
        .unwrap();
    let params = with_enc("sm4", "CiphertextBlob", STANDARD.encode(blob).into());
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt));
}

#[test]
fn bad_base64_anywhere_fails_with_decrypt() {
    let d = Decryptor::new(test_ring());
    for section in ["aes", "sm4"] {
        for (key, value) in [("CiphertextBlob", "not*base64"), ("Iv", "%%%%")] {
            let params = with_enc(section, key, value.into());
            assert_eq!(
                run(&d, &params),
                Err(EncryptionError::Decrypt),
                "{section} {key}"
            );
        }
        let mut params = example_request(section);
        params.insert("Name".into(), "***".into());
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::Decrypt),
            "{section} field"
        );
    }
    let mut params = example_request("sm4");
    enc(&mut params)["TagList"][0] = "@@@".into();
    assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt), "tag");
}

#[test]
fn iv_of_the_wrong_length_fails_with_decrypt() {
    let d = Decryptor::new(test_ring());
    for section in ["aes", "sm4"] {
        let params = with_enc(section, "Iv", STANDARD.encode([0u8; 8]).into());
        assert_eq!(run(&d, &params), Err(EncryptionError::Decrypt), "{section}");
    }
}

#[test]
fn raw_sixteen_character_iv_is_used_as_bytes() {
    // protocol.md §7 Iv tolerance: the legacy "16-character custom string".
    let iv = "0123456789abcdef";
    let d = Decryptor::new(test_ring());
    let enc_ = cbc::Encryptor::<aes::Aes256>::new_from_slices(aes_key(), iv.as_bytes()).unwrap();
    let mut params = example_request("aes");
    params.insert(
        "Name".into(),
        STANDARD
            .encode(enc_.encrypt_padded_vec::<Pkcs7>("张三".as_bytes()))
            .into(),
    );
    let enc_ = cbc::Encryptor::<aes::Aes256>::new_from_slices(aes_key(), iv.as_bytes()).unwrap();
    params.insert(
        "BankCard".into(),
        STANDARD
            .encode(enc_.encrypt_padded_vec::<Pkcs7>(b"6225768888888888"))
            .into(),
    );
    enc(&mut params).insert("Iv".into(), iv.into());
    let mut p = params.clone();
    assert_eq!(d.decrypt_params(&mut p, FIELDS), Ok(true));
    assert_eq!(p, plaintext());
}

#[test]
fn listed_field_absent_or_null_is_missing_field() {
    let d = Decryptor::new(test_ring());
    for section in ["aes", "sm4"] {
        let mut params = example_request(section);
        params.remove("BankCard");
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::MissingField("BankCard".into()))
        );
        params.insert("BankCard".into(), Value::Null);
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::MissingField("BankCard".into()))
        );
    }
}

#[test]
fn listed_field_not_allowed_is_unsupported_field() {
    let d = Decryptor::new(test_ring());
    for field in ["IdCard", "EncryptionBody", "Phone"] {
        let mut params = example_request("aes");
        params.insert(field.into(), "x".into());
        enc(&mut params)["EncryptList"] = json!(["Name", field]);
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::UnsupportedField(field.into()))
        );
    }
    // The allowed list is the caller's: with BankCard only, Name is unsupported.
    let mut params = example_request("aes");
    assert_eq!(
        d.decrypt_params(&mut params, &["BankCard"]),
        Err(EncryptionError::UnsupportedField("Name".into()))
    );
}

#[test]
fn unknown_algorithm() {
    let d = Decryptor::new(test_ring());
    for alg in ["AES-128-CBC", "sm4-gcm", "RSA", "SM4-CBC"] {
        let params = with_enc("aes", "Algorithm", alg.into());
        assert_eq!(
            run(&d, &params),
            Err(EncryptionError::UnknownAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn tag_list_that_does_not_pair_with_encrypt_list_is_malformed() {
    let d = Decryptor::new(test_ring());
    let mut params = example_request("sm4");
    enc(&mut params)["TagList"].as_array_mut().unwrap().pop();
    assert!(malformed(run(&d, &params)));
    enc(&mut params).remove("TagList");
    assert!(malformed(run(&d, &params)), "absent TagList with SM4-GCM");
    let params = with_enc("sm4", "TagList", json!(["a", "b", "c"]));
    assert!(malformed(run(&d, &params)));
}

#[test]
fn malformed_envelopes() {
    let d = Decryptor::new(test_ring());
    let cases: Vec<(&str, Map<String, Value>)> = vec![
        ("Encryption a string", {
            let mut p = example_request("aes");
            p.insert("Encryption".into(), "{}".into());
            p
        }),
        (
            "EncryptList a string",
            with_enc("aes", "EncryptList", "Name".into()),
        ),
        (
            "EncryptList of numbers",
            with_enc("aes", "EncryptList", json!([1, 2])),
        ),
        (
            "TagList not a list",
            with_enc("sm4", "TagList", json!({"0": "x"})),
        ),
        ("Algorithm a number", with_enc("aes", "Algorithm", json!(1))),
        ("CiphertextBlob missing", {
            let mut p = example_request("aes");
            enc(&mut p).remove("CiphertextBlob");
            p
        }),
        (
            "CiphertextBlob empty",
            with_enc("aes", "CiphertextBlob", "".into()),
        ),
        (
            "CiphertextBlob a number",
            with_enc("aes", "CiphertextBlob", json!(5)),
        ),
        ("Iv missing", {
            let mut p = example_request("sm4");
            enc(&mut p).remove("Iv");
            p
        }),
        ("Iv null", with_enc("sm4", "Iv", Value::Null)),
        (
            "duplicate field",
            with_enc("aes", "EncryptList", json!(["Name", "Name"])),
        ),
        ("field not a string", {
            let mut p = example_request("aes");
            p.insert("BankCard".into(), json!(6225768888888888u64));
            p
        }),
    ];
    for (what, params) in cases {
        let r = run(&d, &params);
        assert!(malformed(r.clone()), "{what}: {r:?}");
        if let Err(e) = r {
            let message = e.to_string();
            assert!(
                !message.contains("QAUgyZ") && !message.contains("dQCMPOyb"),
                "{message}"
            );
        }
    }
}

#[test]
fn no_or_empty_encryption_means_plaintext_fields() {
    let d = Decryptor::new(test_ring());
    let mut params = plaintext();
    assert_eq!(d.decrypt_params(&mut params, FIELDS), Ok(false));
    assert_eq!(params, plaintext());

    for encryption in [
        json!(null),
        json!({}),
        json!({"EncryptList": []}),
        json!({"EncryptList": [], "CiphertextBlob": "x", "Iv": "y", "TagList": []}),
    ] {
        let mut params = plaintext();
        params.insert("Encryption".into(), encryption.clone());
        assert_eq!(
            d.decrypt_params(&mut params, FIELDS),
            Ok(false),
            "{encryption}"
        );
        assert_eq!(params, plaintext(), "Encryption removed for {encryption}");
    }
    // Even with nothing to decrypt, an unknown algorithm is still an error.
    let mut params = plaintext();
    params.insert(
        "Encryption".into(),
        json!({"EncryptList": [], "Algorithm": "DES"}),
    );
    assert_eq!(
        d.decrypt_params(&mut params, FIELDS),
        Err(EncryptionError::UnknownAlgorithm)
    );
}

#[test]
fn every_bad_ciphertext_gives_the_same_error_and_is_cached_alike() {
    // Bad blob syntax, bad RSA padding, bad SM2 check, bad field: one error, and a
    // repeat of each is served from the cache exactly like a good blob.
    let d = Decryptor::new(test_ring());
    let bad: Vec<Map<String, Value>> = vec![
        with_enc("aes", "CiphertextBlob", "!!".into()),
        with_enc(
            "aes",
            "CiphertextBlob",
            STANDARD.encode([0x42u8; 128]).into(),
        ),
        with_enc(
            "sm4",
            "CiphertextBlob",
            STANDARD.encode([0x04u8; 113]).into(),
        ),
        with_enc("sm4", "Iv", "bad".into()),
    ];
    for params in &bad {
        assert_eq!(run(&d, params), Err(EncryptionError::Decrypt));
    }
    let (hits, misses) = d.cache_stats();
    for params in &bad {
        assert_eq!(run(&d, params), Err(EncryptionError::Decrypt));
    }
    let (hits2, misses2) = d.cache_stats();
    assert_eq!(misses2, misses, "no new unwrap for repeated bad blobs");
    assert_eq!(hits2 - hits, bad.len() as u64);
}

#[test]
fn client_side_errors() {
    let ring = KeyRing::from_test_keys(TEST_RSA_PEM, v_str(&["sm2_private_key_hex"])).unwrap();
    let rsa_pem = ring.public_pem(cardcheck_encryption::KeyAlgorithm::Rsa);
    let sm2_pem = ring.public_pem(cardcheck_encryption::KeyAlgorithm::Sm2);
    use cardcheck_encryption::Algorithm::*;

    let mut p = plaintext();
    assert!(matches!(
        encrypt_params(&mut p, FIELDS, Sm4Gcm, &rsa_pem),
        Err(EncryptionError::Key(_))
    ));
    assert!(matches!(
        encrypt_params(&mut p, FIELDS, Aes256Cbc, &sm2_pem),
        Err(EncryptionError::Key(_))
    ));
    assert!(matches!(
        encrypt_params(&mut p, FIELDS, Aes256Cbc, "garbage"),
        Err(EncryptionError::Key(_))
    ));
    assert_eq!(p, plaintext(), "unchanged after errors");

    let mut p = plaintext();
    p.remove("Name");
    assert_eq!(
        encrypt_params(&mut p, FIELDS, Aes256Cbc, &rsa_pem),
        Err(EncryptionError::MissingField("Name".into()))
    );
    let mut p = example_request("aes");
    assert!(matches!(
        encrypt_params(&mut p, FIELDS, Aes256Cbc, &rsa_pem),
        Err(EncryptionError::MalformedEnvelope(_))
    ));
    let mut p = plaintext();
    assert_eq!(encrypt_params(&mut p, &[], Aes256Cbc, &rsa_pem), Ok(()));
    assert_eq!(p, plaintext(), "no fields: no-op");
}
