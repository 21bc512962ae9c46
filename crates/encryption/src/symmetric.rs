//! The field layer (protocol.md §7 steps 2–3): AES-256-CBC/PKCS#7 and SM4-GCM (no AAD,
//! 128-bit tag, one IV shared by every field), the IV tolerance, and Base64.
//!
//! Decryption returns `None` for every failure: the caller folds them all into the one
//! opaque [`crate::EncryptionError::Decrypt`].

use aes_gcm::aead::array::{Array, ArraySize};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use zeroize::Zeroizing;

use crate::{Algorithm, EncryptionError};

/// Standard-alphabet Base64 that accepts input with or without `=` padding: helpers
/// always pad, but a missing pad carries no ambiguity and costs nothing to accept.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Length of the "16-character custom string" IV of the legacy KMS mode (protocol.md §7
/// "Iv tolerance").
const RAW_IV_LEN: usize = 16;

pub(crate) fn decode_b64(s: &str) -> Option<Vec<u8>> {
    LENIENT_B64.decode(s).ok()
}

pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The IV bytes of an `Iv` string (protocol.md §7, Iv tolerance): Base64 that decodes to
/// the algorithm's IV length (16 AES, 12 SM4), otherwise a 16-byte string used as-is (the
/// model still documents a "16-character custom string"). For SM4-GCM such a 16-byte IV
/// is a standard non-96-bit GCM nonce (GHASH-derived counter), which is what Java's
/// `GCMParameterSpec` or Go's `NewGCMWithNonceSize(16)` would have used.
pub(crate) fn parse_iv(alg: Algorithm, iv: &str) -> Option<Vec<u8>> {
    match decode_b64(iv) {
        Some(bytes) if bytes.len() == alg.iv_len() => Some(bytes),
        _ if iv.len() == RAW_IV_LEN => Some(iv.as_bytes().to_vec()),
        _ => None,
    }
}

/// Decrypts one field value (Base64 ciphertext) to its UTF-8 plaintext. `tag` is the
/// field's `TagList` entry (SM4-GCM only).
pub(crate) fn decrypt_field(
    alg: Algorithm,
    key: &[u8],
    iv: &[u8],
    ciphertext_b64: &str,
    tag_b64: Option<&str>,
) -> Option<String> {
    let ciphertext = decode_b64(ciphertext_b64)?;
    let plaintext = match alg {
        Algorithm::Aes256Cbc => aes_cbc_decrypt(key, iv, &ciphertext)?,
        Algorithm::Sm4Gcm => {
            let tag = decode_b64(tag_b64?)?;
            sm4_gcm_decrypt(key, iv, ciphertext, &tag)?
        }
    };
    // Validate in place and copy once into the returned String; the decrypted buffer
    // itself is wiped on drop.
    std::str::from_utf8(&plaintext).ok().map(str::to_owned)
}

fn aes_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).ok()?;
    let mut out = Zeroizing::new(vec![0u8; ciphertext.len()]);
    let len = decryptor
        .decrypt_padded_b2b::<Pkcs7>(ciphertext, &mut out)
        .ok()?
        .len();
    out.truncate(len);
    Some(out)
}

fn sm4_gcm_decrypt(
    key: &[u8],
    iv: &[u8],
    ciphertext: Vec<u8>,
    tag: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(ciphertext);
    let tag = Array::<u8, U16>::try_from(tag).ok()?;
    match iv.len() {
        12 => gcm_decrypt::<U12>(key, iv, &mut buf, &tag)?,
        16 => gcm_decrypt::<U16>(key, iv, &mut buf, &tag)?,
        _ => return None,
    }
    Some(buf)
}

fn gcm_decrypt<N: ArraySize>(
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
    tag: &Array<u8, U16>,
) -> Option<()> {
    let cipher = AesGcm::<sm4::Sm4, N>::new_from_slice(key).ok()?;
    let nonce = Array::<u8, N>::try_from(iv).ok()?;
    cipher
        .decrypt_inout_detached(&nonce, b"", buf.into(), tag)
        .ok()
}

/// Client side: encrypts one field value; returns `(Base64 ciphertext, Base64 tag)`, the
/// tag only for SM4-GCM.
pub(crate) fn encrypt_field(
    alg: Algorithm,
    key: &[u8],
    iv: &[u8],
    plaintext: &str,
) -> Result<(String, Option<String>), EncryptionError> {
    let internal = || EncryptionError::key("symmetric encryption failed");
    match alg {
        Algorithm::Aes256Cbc => {
            let encryptor =
                cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).map_err(|_| internal())?;
            let ciphertext = encryptor.encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes());
            Ok((encode_b64(&ciphertext), None))
        }
        Algorithm::Sm4Gcm => {
            let cipher = AesGcm::<sm4::Sm4, U12>::new_from_slice(key).map_err(|_| internal())?;
            let nonce = Array::<u8, U12>::try_from(iv).map_err(|_| internal())?;
            let mut buf = plaintext.as_bytes().to_vec();
            let tag = cipher
                .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
                .map_err(|_| internal())?;
            Ok((encode_b64(&buf), Some(encode_b64(&tag))))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;

    #[test]
    fn iv_tolerance() {
        // Base64 of 16 bytes (AES) / 12 bytes (SM4).
        assert_eq!(
            parse_iv(Algorithm::Aes256Cbc, "AAECAwQFBgcICQoLDA0ODw=="),
            Some((0u8..16).collect())
        );
        assert_eq!(
            parse_iv(Algorithm::Sm4Gcm, "oKGio6Slpqeoqaqr"),
            Some((0xa0u8..0xac).collect())
        );
        // 16 chars that are valid Base64 of 12 bytes: for AES the raw bytes are the IV.
        assert_eq!(
            parse_iv(Algorithm::Aes256Cbc, "abcdefghijklmnop"),
            Some(b"abcdefghijklmnop".to_vec())
        );
        // 16 chars that are not Base64: raw bytes for both algorithms.
        assert_eq!(
            parse_iv(Algorithm::Sm4Gcm, "abc-efgh_jklmnop"),
            Some(b"abc-efgh_jklmnop".to_vec())
        );
        assert_eq!(
            parse_iv(Algorithm::Aes256Cbc, "AAECAwQFBgcICQoL"),
            Some(b"AAECAwQFBgcICQoL".to_vec())
        );
        for bad in ["", "AAEC", "not base64 at all!", "ééééééééé"] {
            assert_eq!(parse_iv(Algorithm::Aes256Cbc, bad), None, "{bad:?}");
            assert_eq!(parse_iv(Algorithm::Sm4Gcm, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn field_round_trip_both_algorithms_and_gcm_nonce_sizes() {
        let key32 = [7u8; 32];
        let (ct, tag) = encrypt_field(Algorithm::Aes256Cbc, &key32, &[1; 16], "张三").unwrap();
        assert!(tag.is_none());
        assert_eq!(
            decrypt_field(Algorithm::Aes256Cbc, &key32, &[1; 16], &ct, None).as_deref(),
            Some("张三")
        );
        let key16 = [9u8; 16];
        let (ct, tag) =
            encrypt_field(Algorithm::Sm4Gcm, &key16, &[2; 12], "6225768888888888").unwrap();
        assert_eq!(
            decrypt_field(Algorithm::Sm4Gcm, &key16, &[2; 12], &ct, tag.as_deref()).as_deref(),
            Some("6225768888888888")
        );
        // A 16-byte GCM nonce (raw-string IV) round-trips through the generic GCM.
        let mut buf = b"x".to_vec();
        let cipher = AesGcm::<sm4::Sm4, U16>::new_from_slice(&key16).unwrap();
        let nonce = Array::<u8, U16>::try_from(&[3u8; 16][..]).unwrap();
        let tag16 = cipher
            .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
            .unwrap();
        assert_eq!(
            decrypt_field(
                Algorithm::Sm4Gcm,
                &key16,
                &[3; 16],
                &encode_b64(&buf),
                Some(&encode_b64(&tag16))
            )
            .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn field_failures_are_none() {
        let key32 = [7u8; 32];
        assert_eq!(
            decrypt_field(Algorithm::Aes256Cbc, &key32, &[1; 16], "%%%", None),
            None
        );
        assert_eq!(
            decrypt_field(Algorithm::Aes256Cbc, &key32, &[1; 16], "", None),
            None
        );
        assert_eq!(
            decrypt_field(
                Algorithm::Aes256Cbc,
                &[0; 16],
                &[1; 16],
                "AAAAAAAAAAAAAAAAAAAAAA==",
                None
            ),
            None
        );
        assert_eq!(
            decrypt_field(Algorithm::Sm4Gcm, &[0; 16], &[1; 12], "AAAA", None),
            None
        );
        assert_eq!(
            decrypt_field(Algorithm::Sm4Gcm, &[0; 16], &[1; 12], "AAAA", Some("AAAA")),
            None
        );
        assert_eq!(
            decrypt_field(
                Algorithm::Sm4Gcm,
                &[0; 16],
                &[1; 13],
                "AAAA",
                Some("AAAAAAAAAAAAAAAAAAAAAA==")
            ),
            None
        );
    }
}
