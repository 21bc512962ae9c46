//! Client side (`cardcheck verify --encrypt`): what the official helpers do before the
//! request is signed (protocol.md §7 "Client side", steps 1–5).

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::decrypt::ENCRYPTION_PARAM;
use crate::error::echo;
use crate::symmetric::{decode_b64, encode_b64, encrypt_field};
use crate::wrap::{wrap_rsa, wrap_sm2};
use crate::{Algorithm, EncryptionError};

/// Replaces each listed field of `params` by its ciphertext and inserts the `Encryption`
/// object (SM4-GCM adds `TagList`), with a fresh random data key and IV.
///
/// `public_key_pem`: for AES-256-CBC an RSA public key as PKCS#1 (`RSA PUBLIC KEY`) or
/// SubjectPublicKeyInfo (`PUBLIC KEY`) PEM; for SM4-GCM an SM2 SubjectPublicKeyInfo PEM.
/// Base64 of the PEM (the helpers' form) is accepted too.
///
/// The data key is raw random bytes (as the Node helper does; the Java/Go helpers' ASCII
/// keys carry fewer bits). Listed fields must be present strings; an empty `fields` is a
/// no-op. On error `params` are unchanged.
pub fn encrypt_params(
    params: &mut Map<String, Value>,
    fields: &[&str],
    alg: Algorithm,
    public_key_pem: &str,
) -> Result<(), EncryptionError> {
    if fields.is_empty() {
        return Ok(());
    }
    if params.contains_key(ENCRYPTION_PARAM) {
        return Err(EncryptionError::malformed(
            "the request already has Encryption",
        ));
    }
    let mut plaintexts = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].contains(field) {
            return Err(EncryptionError::malformed(format!(
                "{} is listed twice",
                echo(field)
            )));
        }
        match params.get(*field) {
            None | Some(Value::Null) => return Err(EncryptionError::missing_field(field)),
            Some(Value::String(s)) => plaintexts.push(s.as_str()),
            Some(_) => {
                return Err(EncryptionError::malformed(format!(
                    "the field {} to encrypt must be a string",
                    echo(field)
                )));
            }
        }
    }

    let pem = normalise_pem(public_key_pem)?;
    let mut data_key = Zeroizing::new(vec![0u8; alg.key_len()]);
    let mut iv = vec![0u8; alg.iv_len()];
    fill_random(&mut data_key)?;
    fill_random(&mut iv)?;
    let blob = match alg {
        Algorithm::Aes256Cbc => wrap_rsa(&rsa_public_key(&pem)?, &data_key)?,
        Algorithm::Sm4Gcm => wrap_sm2(&sm2_public_key(&pem)?, &data_key)?,
    };

    let mut ciphertexts = Vec::with_capacity(fields.len());
    let mut tags = Vec::new();
    for plaintext in plaintexts {
        let (ciphertext, tag) = encrypt_field(alg, &data_key, &iv, plaintext)?;
        ciphertexts.push(ciphertext);
        tags.extend(tag);
    }

    let mut envelope = Map::new();
    envelope.insert(
        "EncryptList".into(),
        Value::Array(
            fields
                .iter()
                .map(|f| Value::String((*f).to_owned()))
                .collect(),
        ),
    );
    envelope.insert("CiphertextBlob".into(), Value::String(encode_b64(&blob)));
    envelope.insert("Iv".into(), Value::String(encode_b64(&iv)));
    envelope.insert("Algorithm".into(), Value::String(alg.as_str().to_owned()));
    if alg == Algorithm::Sm4Gcm {
        envelope.insert(
            "TagList".into(),
            Value::Array(tags.into_iter().map(Value::String).collect()),
        );
    }
    for (field, ciphertext) in fields.iter().zip(ciphertexts) {
        params.insert((*field).to_owned(), Value::String(ciphertext));
    }
    params.insert(ENCRYPTION_PARAM.to_owned(), Value::Object(envelope));
    Ok(())
}

fn fill_random(buf: &mut [u8]) -> Result<(), EncryptionError> {
    use rand::TryRng as _;
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| EncryptionError::key(format!("random number generator failed: {e}")))
}

/// PEM text from PEM or Base64-of-PEM input (the helpers store Base64 of the PEM,
/// protocol.md §7 step 4).
fn normalise_pem(input: &str) -> Result<String, EncryptionError> {
    let trimmed = input.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.to_owned());
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    decode_b64(&compact)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|pem| pem.trim().to_owned())
        .filter(|pem| pem.starts_with("-----BEGIN"))
        .ok_or_else(|| EncryptionError::key("the public key is neither PEM nor Base64 of a PEM"))
}

fn rsa_public_key(pem: &str) -> Result<rsa::PublicKey, EncryptionError> {
    rsa::PublicKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::PublicKey::from_public_key_pem(pem))
        .map_err(|_| {
            EncryptionError::key("AES-256-CBC needs an RSA public key (PKCS#1 or SPKI PEM)")
        })
}

fn sm2_public_key(pem: &str) -> Result<sm2::PublicKey, EncryptionError> {
    sm2::PublicKey::from_public_key_pem(pem)
        .map_err(|_| EncryptionError::key("SM4-GCM needs an SM2 public key (SPKI PEM)"))
}
