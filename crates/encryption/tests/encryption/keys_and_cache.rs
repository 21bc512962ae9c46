//! Key ring (generation, serialisation, rotation overlap) and the data-key cache.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{
    Algorithm, Decryptor, EncryptionError, KeyAlgorithm, KeyRing, encrypt_params,
};
use serde_json::{Map, Value};

use crate::common::*;

fn encrypted_with(ring: &KeyRing, alg: Algorithm) -> Map<String, Value> {
    let mut params = plaintext();
    encrypt_params(
        &mut params,
        FIELDS,
        alg,
        &ring.public_pem(alg.key_algorithm()),
    )
    .unwrap();
    params
}

fn decrypts(d: &Decryptor, params: &Map<String, Value>) -> Result<bool, EncryptionError> {
    let mut p = params.clone();
    let r = d.decrypt_params(&mut p, FIELDS);
    if r.is_ok() {
        assert_eq!(p, plaintext());
    }
    r
}

#[test]
fn cache_hits_on_a_reused_blob() {
    let d = Decryptor::new(test_ring());
    assert_eq!(d.cache_stats(), (0, 0));
    assert_eq!(decrypts(&d, &example_request("aes")), Ok(true));
    assert_eq!(d.cache_stats(), (0, 1));
    // Same blob, e.g. the next request of a client that reuses its data key.
    assert_eq!(decrypts(&d, &example_request("aes")), Ok(true));
    assert_eq!(d.cache_stats(), (1, 1));
    assert_eq!(decrypts(&d, &example_request("sm4")), Ok(true));
    assert_eq!(decrypts(&d, &example_request("sm4")), Ok(true));
    assert_eq!(d.cache_stats(), (2, 2));
    assert_eq!(d.cache_len(), 2);
}

#[test]
fn cache_limits_are_honoured() {
    let d = Decryptor::with_cache_limits(test_ring(), 0, std::time::Duration::from_secs(60));
    assert_eq!(decrypts(&d, &example_request("aes")), Ok(true));
    assert_eq!(decrypts(&d, &example_request("aes")), Ok(true));
    assert_eq!(
        (d.cache_stats(), d.cache_len()),
        ((0, 2), 0),
        "capacity 0 disables the cache"
    );

    let d = Decryptor::with_cache_limits(test_ring(), 1, std::time::Duration::from_secs(60));
    assert_eq!(decrypts(&d, &example_request("aes")), Ok(true));
    assert_eq!(decrypts(&d, &example_request("sm4")), Ok(true));
    assert_eq!(d.cache_len(), 1);
}

#[test]
fn generated_ring_serialises_and_keeps_decrypting() {
    let ring = generated_ring();
    assert_eq!(ring.rsa_bits(), cardcheck_encryption::RSA_BITS);
    let aes = encrypted_with(&ring, Algorithm::Aes256Cbc);
    let sm4 = encrypted_with(&ring, Algorithm::Sm4Gcm);
    let bytes = ring.to_bytes();
    let copy = KeyRing::from_bytes(&bytes).unwrap();
    for alg in [KeyAlgorithm::Rsa, KeyAlgorithm::Sm2] {
        assert_eq!(copy.public_pem(alg), ring.public_pem(alg));
        assert_eq!(copy.fingerprints(alg), ring.fingerprints(alg));
    }
    let d = Decryptor::new(copy);
    assert_eq!(decrypts(&d, &aes), Ok(true));
    assert_eq!(decrypts(&d, &sm4), Ok(true));
    // Any truncation or trailing byte is rejected.
    assert!(matches!(
        KeyRing::from_bytes(&bytes[..bytes.len() - 1]),
        Err(EncryptionError::Key(_))
    ));
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        KeyRing::from_bytes(&longer),
        Err(EncryptionError::Key(_))
    ));
    // Debug shows fingerprints, never key material.
    let debug = format!("{:?} {:?}", ring, d);
    assert!(debug.contains(&ring.fingerprints(KeyAlgorithm::Sm2)[0]));
    assert!(!debug.contains("PRIVATE"));
}

#[test]
fn public_keys_have_the_documented_forms() {
    let ring = test_ring();
    let sm2_pem = ring.public_pem(KeyAlgorithm::Sm2);
    let body: String = sm2_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).unwrap();
    let id_ec_public_key = hex::decode("06072a8648ce3d0201").unwrap();
    let sm2_curve = hex::decode("06082a811ccf5501822d").unwrap(); // 1.2.156.10197.1.301
    assert!(
        der.windows(id_ec_public_key.len())
            .any(|w| w == id_ec_public_key)
    );
    assert!(der.windows(sm2_curve.len()).any(|w| w == sm2_curve));
    assert!(
        ring.public_pem(KeyAlgorithm::Rsa)
            .starts_with("-----BEGIN RSA PUBLIC KEY-----")
    );
    let b64 = ring.public_pem_base64(KeyAlgorithm::Sm2);
    assert_eq!(STANDARD.decode(b64).unwrap(), sm2_pem.as_bytes());
}

#[test]
fn rotation_keeps_decrypting_blobs_of_the_previous_key() {
    let mut ring = generated_ring();
    let old_aes = encrypted_with(&ring, Algorithm::Aes256Cbc);
    let old_sm4 = encrypted_with(&ring, Algorithm::Sm4Gcm);
    let old_fingerprints = (
        ring.fingerprints(KeyAlgorithm::Rsa),
        ring.fingerprints(KeyAlgorithm::Sm2),
    );

    ring.rotate(1).unwrap();
    assert_eq!(ring.fingerprints(KeyAlgorithm::Rsa).len(), 2);
    assert_eq!(
        ring.fingerprints(KeyAlgorithm::Rsa)[1],
        old_fingerprints.0[0]
    );
    assert_eq!(
        ring.fingerprints(KeyAlgorithm::Sm2)[1],
        old_fingerprints.1[0]
    );
    assert_ne!(
        ring.fingerprints(KeyAlgorithm::Rsa)[0],
        old_fingerprints.0[0]
    );
    let new_aes = encrypted_with(&ring, Algorithm::Aes256Cbc);
    let new_sm4 = encrypted_with(&ring, Algorithm::Sm4Gcm);

    // The rotated ring, through serialisation, decrypts blobs for both generations.
    let rotated = KeyRing::from_bytes(&ring.to_bytes()).unwrap();
    let d = Decryptor::new(generated_ring());
    assert_eq!(decrypts(&d, &old_aes), Ok(true));
    d.replace_keys(rotated);
    for params in [&old_aes, &old_sm4, &new_aes, &new_sm4] {
        assert_eq!(decrypts(&d, params), Ok(true));
    }

    // Without overlap the old key is gone, and so are its cached data keys.
    ring.rotate(0).unwrap();
    ring.rotate(0).unwrap();
    assert_eq!(ring.fingerprints(KeyAlgorithm::Sm2).len(), 1);
    d.replace_keys(ring);
    assert_eq!(d.cache_len(), 0);
    for params in [&old_aes, &old_sm4, &new_aes, &new_sm4] {
        assert_eq!(decrypts(&d, params), Err(EncryptionError::Decrypt));
    }
}

#[test]
fn decryptor_and_ring_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Decryptor>();
    assert_send_sync::<KeyRing>();
    let d = std::sync::Arc::new(Decryptor::new(test_ring()));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let d = std::sync::Arc::clone(&d);
            std::thread::spawn(move || {
                let section = if i % 2 == 0 { "aes" } else { "sm4" };
                decrypts(&d, &example_request(section))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(true));
    }
}
