//! Data-key wrapping and unwrapping (protocol.md §7 step 4): RSA PKCS#1 v1.5 for
//! AES-256-CBC keys, SM2 C1C3C2 for SM4-GCM keys.
//!
//! Unwrapping never reports *why* it failed. A failure yields a pseudo-random data key
//! derived from the blob (see [`PseudoKeySource`]) and `genuine = false`; the caller goes
//! on decrypting the fields with it and reports the one [`crate::EncryptionError::Decrypt`]
//! at the end, so a bad RSA padding, a failed SM2 check, a wrong data-key length and a bad
//! field all end in the same error at the same point (no padding oracle).

use hmac::{Hmac, KeyInit, Mac};
use rsa::Pkcs1v15Encrypt;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use sm2::pke::{DecryptingKey, EncryptingKey, Mode};
use zeroize::Zeroizing;

use crate::keys::{RsaKey, Sm2Key};
use crate::symmetric::decode_b64;
use crate::{Algorithm, EncryptionError, KeyRing};

/// Most RSA blocks accepted in one blob. A 32-byte data key fits in one block of any
/// usable modulus; the Go helper splits into `k − 11`-byte chunks (protocol.md §7 step 4),
/// so a few blocks are tolerated, but no more: each costs a private-key operation.
pub(crate) const MAX_RSA_BLOCKS: usize = 4;

/// PKCS#1 v1.5 encryption overhead: `00 02 ‖ PS (≥ 8) ‖ 00`.
const PKCS1_OVERHEAD: usize = 11;

/// SM2 ciphertext size minus the message: C1.x ‖ C1.y ‖ C3 (32 bytes each), without the
/// SEC1 `04` tag that Python `gmssl` omits (protocol.md §7 step 4).
const SM2_OVERHEAD_WITHOUT_TAG: usize = 96;

/// SEC1 tag of an uncompressed point.
const SEC1_UNCOMPRESSED: u8 = 0x04;

/// First byte of a DER SEQUENCE (the ASN.1 SM2 ciphertext form of GM/T 0009).
const DER_SEQUENCE: u8 = 0x30;

/// The data key(s) one `CiphertextBlob` unwrapped to.
pub(crate) struct DataKeys {
    /// Keys of exactly [`Algorithm::key_len`] bytes. Usually one; RSA may give more than
    /// one when the ring holds several RSA keys (see [`unwrap_rsa`]). When `genuine` is
    /// false it is a single pseudo-random key.
    pub(crate) candidates: Vec<Zeroizing<Vec<u8>>>,
    /// Whether the candidates come from a successful unwrap.
    pub(crate) genuine: bool,
}

/// Derives the stand-in data key used after an unwrap failure.
///
/// HMAC-SHA256 under a random per-[`crate::Decryptor`] secret of the algorithm name and
/// the blob *string*: deterministic for the same blob (a repeated bad blob behaves exactly
/// like the first time), unpredictable to clients, and computable even when the blob is
/// not Base64.
pub(crate) struct PseudoKeySource {
    /// HMAC key; 64 bytes = the SHA-256 block size, so `KeyInit::new` is infallible.
    secret: Zeroizing<[u8; 64]>,
}

impl PseudoKeySource {
    pub(crate) fn new() -> Self {
        let mut secret = Zeroizing::new([0u8; 64]);
        rand::fill(&mut secret[..]);
        Self { secret }
    }

    pub(crate) fn derive(&self, alg: Algorithm, blob: &str) -> Zeroizing<Vec<u8>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*self.secret).into());
        mac.update(b"cardcheck pseudo data key v1\0");
        mac.update(alg.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(blob.as_bytes());
        let tag = Zeroizing::new(mac.finalize().into_bytes());
        Zeroizing::new(tag[..alg.key_len()].to_vec())
    }
}

/// Unwraps `blob` (the `CiphertextBlob` string) with every key of the ring that matches
/// `alg`; on failure returns the pseudo key with `genuine = false`.
pub(crate) fn unwrap_data_key(
    ring: &KeyRing,
    alg: Algorithm,
    blob: &str,
    pseudo: &PseudoKeySource,
) -> DataKeys {
    let candidates = match decode_b64(blob) {
        Some(bytes) => match alg {
            Algorithm::Aes256Cbc => unwrap_rsa(&ring.rsa, &bytes, alg.key_len()),
            Algorithm::Sm4Gcm => unwrap_sm2(&ring.sm2, &bytes, alg.key_len()),
        },
        None => Vec::new(),
    };
    if candidates.is_empty() {
        DataKeys {
            candidates: vec![pseudo.derive(alg, blob)],
            genuine: false,
        }
    } else {
        DataKeys {
            candidates,
            genuine: true,
        }
    }
}

/// Block-wise RSAES-PKCS1-v1_5 decryption with every RSA key of the ring.
///
/// `rsa` 0.10 decrypts PKCS#1 v1.5 with *implicit rejection*
/// (draft-irtf-cfrg-rsa-guidance): a bad padding yields a deterministic synthetic message
/// instead of an error, in constant time, so this function cannot even tell a bad padding
/// from a good one, let alone leak it. The consequence is that a wrong key of the ring
/// does not fail either: its synthetic message is a random length, which is 32 bytes about
/// once in `k − 10` tries. So every key is tried (no early exit) and every 32-byte result
/// becomes a candidate; the field decryption then picks the candidate that decrypts. With
/// a single RSA key (no rotation overlap) there is at most one candidate.
///
/// Errors that *are* reported (blob not a whole number of `k`-byte blocks, a block ≥ the
/// modulus) depend only on public data.
fn unwrap_rsa(keys: &[RsaKey], blob: &[u8], key_len: usize) -> Vec<Zeroizing<Vec<u8>>> {
    let mut candidates = Vec::new();
    for key in keys {
        let k = key.block_len();
        if k == 0
            || blob.is_empty()
            || !blob.len().is_multiple_of(k)
            || blob.len() / k > MAX_RSA_BLOCKS
        {
            continue;
        }
        // Sized for the largest possible output so it never reallocates (a reallocation
        // would leave an unwiped copy behind).
        let mut data_key = Zeroizing::new(Vec::with_capacity(blob.len()));
        let mut complete = true;
        for block in blob.chunks(k) {
            // `decrypt` blinds with the OS RNG (rsa's default `getrandom` feature).
            match key.key.decrypt(Pkcs1v15Encrypt, block) {
                Ok(message) => data_key.extend_from_slice(&Zeroizing::new(message)),
                Err(_) => complete = false,
            }
        }
        if complete && data_key.len() == key_len {
            candidates.push(data_key);
        }
    }
    candidates
}

/// SM2 decryption (C1C3C2, SM3) with the ring's SM2 keys, newest first.
///
/// Accepted layouts (protocol.md §7 step 4): `04 ‖ C1 ‖ C3 ‖ C2` (tjfoc/gmsm,
/// BouncyCastle, gm-crypto), the same without `04` (Python `gmssl`; recognised by its
/// length `96 + key_len`, since its first byte is just a coordinate byte), and, as a
/// tolerance, the GM/T 0009 ASN.1 DER form. SM2's C3 hash check makes a success
/// definitive, so the first key that decrypts is the right one; a bad blob tries them all.
fn unwrap_sm2(keys: &[Sm2Key], blob: &[u8], key_len: usize) -> Vec<Zeroizing<Vec<u8>>> {
    let prefixed;
    let blob = if blob.len() == SM2_OVERHEAD_WITHOUT_TAG + key_len {
        prefixed = [&[SEC1_UNCOMPRESSED][..], blob].concat();
        &prefixed[..]
    } else {
        blob
    };
    for key in keys {
        let decrypting = DecryptingKey::new_with_mode(key.secret.to_nonzero_scalar(), Mode::C1C3C2);
        let result = if blob.first() == Some(&DER_SEQUENCE) {
            decrypting.decrypt_der(blob)
        } else {
            decrypting.decrypt(blob)
        };
        if let Ok(message) = result {
            let message = Zeroizing::new(message);
            // The right key, but a data key of the wrong length: a failure like any other.
            return if message.len() == key_len {
                vec![message]
            } else {
                Vec::new()
            };
        }
    }
    Vec::new()
}

/// Client side: RSAES-PKCS1-v1_5 with random padding, chunked into `k − 11`-byte pieces
/// like the Go helper (one block for a 32-byte key).
pub(crate) fn wrap_rsa(
    public: &rsa::PublicKey,
    data_key: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    let k = public.size();
    let chunk = k
        .checked_sub(PKCS1_OVERHEAD)
        .filter(|&c| c > 0)
        .ok_or_else(|| EncryptionError::key("RSA public key too small"))?;
    let mut out = Vec::with_capacity(data_key.len().div_ceil(chunk) * k);
    for piece in data_key.chunks(chunk) {
        let block = public
            .encrypt(&mut rand::rngs::SysRng, Pkcs1v15Encrypt, piece)
            .map_err(|e| EncryptionError::key(format!("RSA encryption failed: {e}")))?;
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Client side: SM2 encryption, C1C3C2 with the `04` tag (what tjfoc/gmsm and
/// BouncyCastle emit).
pub(crate) fn wrap_sm2(
    public: &sm2::PublicKey,
    data_key: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    EncryptingKey::new_with_mode(*public, Mode::C1C3C2)
        .encrypt(&mut rand::rngs::SysRng, data_key)
        .map_err(|e| EncryptionError::key(format!("SM2 encryption failed: {e}")))
}
