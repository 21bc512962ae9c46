//! The server's asymmetric key pairs (protocol.md §7 "Public key source"): RSA for
//! AES-256-CBC data keys, SM2 for SM4-GCM data keys, held in a [`KeyRing`] of the current
//! key plus previous ones, so that blobs made with a just-rotated-out public key still
//! decrypt during the overlap.

use base64::Engine as _;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use sm2::elliptic_curve::Generate;
use zeroize::Zeroizing;

use crate::{EncryptionError, KeyAlgorithm};

/// Modulus size of generated RSA keys. Tencent's own key is RSA-1024 (protocol.md §7
/// step 4); 2048 bits is today's floor for new keys and every helper handles it (the
/// Go helper chunks by the modulus size).
pub const RSA_BITS: usize = 2048;

/// Upper bound of keys per algorithm in a ring (current + previous), so a corrupt or
/// hostile serialised ring cannot make [`KeyRing::from_bytes`] allocate without bound and
/// every uncached unwrap tries at most this many RSA keys.
pub const MAX_KEYS_PER_ALGORITHM: usize = 8;

/// Serialised ring: `MAGIC ‖ VERSION ‖ n_rsa ‖ n_sm2 ‖ n_rsa × (u32 BE length ‖ PKCS#8
/// DER) ‖ n_sm2 × 32-byte SM2 secret scalar`, newest key first within each algorithm.
const MAGIC: &[u8; 4] = b"CCKR";
const VERSION: u8 = 1;
/// Bytes of an SM2 secret scalar.
const SM2_SCALAR_LEN: usize = 32;
/// Largest PKCS#8 DER accepted for one RSA key (an RSA-8192 key is ~4.8 KB).
const MAX_RSA_DER_LEN: usize = 16 * 1024;

/// One RSA private key with its public half pre-rendered.
pub(crate) struct RsaKey {
    /// Zeroised on drop by the `rsa` crate.
    pub(crate) key: rsa::PrivateKey,
    /// The same key as PKCS#8 DER for [`KeyRing::to_bytes`], rendered once here so that
    /// serialising cannot fail (a `SecretDocument` wipes itself on drop).
    pkcs8: rsa::pkcs8::SecretDocument,
    /// PKCS#1 `RSA PUBLIC KEY` PEM, the form the official helpers take.
    public_pem: String,
    fingerprint: String,
}

/// One SM2 private key with its public half pre-rendered.
pub(crate) struct Sm2Key {
    /// Zeroised on drop by `elliptic-curve`. A `sm2::pke::DecryptingKey` is built from it
    /// per unwrap rather than stored, because `DecryptingKey` does not wipe itself.
    pub(crate) secret: sm2::SecretKey,
    /// SubjectPublicKeyInfo PEM (id-ecPublicKey + curve OID 1.2.156.10197.1.301).
    public_pem: String,
    fingerprint: String,
}

impl RsaKey {
    fn generate() -> Result<Self, EncryptionError> {
        let key = rsa::PrivateKey::new(&mut rand::rngs::SysRng, RSA_BITS)
            .map_err(|e| EncryptionError::key(format!("RSA key generation failed: {e}")))?;
        Self::new(key)
    }

    fn new(key: rsa::PrivateKey) -> Result<Self, EncryptionError> {
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|e| EncryptionError::key(format!("RSA private key encoding failed: {e}")))?;
        let public = key.to_public_key();
        let public_pem = public
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| EncryptionError::key(format!("RSA public key encoding failed: {e}")))?;
        let spki = public
            .to_public_key_der()
            .map_err(|e| EncryptionError::key(format!("RSA public key encoding failed: {e}")))?;
        Ok(Self {
            key,
            pkcs8,
            public_pem,
            fingerprint: fingerprint(spki.as_bytes()),
        })
    }

    /// Modulus length in bytes: the RSA block size `k` of protocol.md §7 step 4.
    pub(crate) fn block_len(&self) -> usize {
        self.key.size()
    }
}

impl Sm2Key {
    fn generate() -> Result<Self, EncryptionError> {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut rand::rngs::SysRng)
            .map_err(|e| EncryptionError::key(format!("SM2 key generation failed: {e}")))?;
        Self::new(secret)
    }

    fn from_scalar(bytes: &[u8]) -> Result<Self, EncryptionError> {
        let secret = sm2::SecretKey::from_slice(bytes)
            .map_err(|_| EncryptionError::key("invalid SM2 private key"))?;
        Self::new(secret)
    }

    fn new(secret: sm2::SecretKey) -> Result<Self, EncryptionError> {
        let public = secret.public_key();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| EncryptionError::key(format!("SM2 public key encoding failed: {e}")))?;
        let spki = public
            .to_public_key_der()
            .map_err(|e| EncryptionError::key(format!("SM2 public key encoding failed: {e}")))?;
        Ok(Self {
            secret,
            public_pem,
            fingerprint: fingerprint(spki.as_bytes()),
        })
    }
}

/// First 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER, in hex: a short,
/// non-secret name for a key in logs and CLI output.
fn fingerprint(spki_der: &[u8]) -> String {
    Sha256::digest(spki_der)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The server's Encryption key pairs: RSA and SM2, each newest (current) first.
///
/// Both lists are never empty. Decryption tries every key of the matching algorithm, so
/// after [`KeyRing::rotate`] clients still holding the previous public key keep working
/// until that key is dropped from the ring. `Debug` shows fingerprints only.
pub struct KeyRing {
    pub(crate) rsa: Vec<RsaKey>,
    pub(crate) sm2: Vec<Sm2Key>,
}

impl KeyRing {
    /// A new ring with one fresh RSA-2048 and one fresh SM2 key (OS randomness).
    /// RSA generation takes tens to hundreds of milliseconds.
    pub fn generate() -> Result<KeyRing, EncryptionError> {
        Ok(KeyRing {
            rsa: vec![RsaKey::generate()?],
            sm2: vec![Sm2Key::generate()?],
        })
    }

    /// A ring made of given private keys, for fixtures and tests (protocol.md §7.1): an
    /// RSA private key as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) PEM — the
    /// 1024-bit test key is accepted — and an SM2 private scalar `d` as 64 hex digits.
    pub fn from_test_keys(
        rsa_pkcs1_pem: &str,
        sm2_private_hex: &str,
    ) -> Result<KeyRing, EncryptionError> {
        let rsa_key = rsa::PrivateKey::from_pkcs1_pem(rsa_pkcs1_pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs8_pem(rsa_pkcs1_pem))
            .map_err(|_| EncryptionError::key("invalid RSA private key PEM"))?;
        let scalar = decode_hex(sm2_private_hex.trim())
            .ok_or_else(|| EncryptionError::key("SM2 private key must be hex"))?;
        Ok(KeyRing {
            rsa: vec![RsaKey::new(rsa_key)?],
            sm2: vec![Sm2Key::from_scalar(&scalar)?],
        })
    }

    /// Serialises every private key (current and previous) for storage encrypted under
    /// the store's master key. The buffer is wiped when dropped. The format is private to
    /// this crate; read it back with [`KeyRing::from_bytes`].
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // Allocated once at its final size: a growing Vec would leave unwiped copies of
        // key material behind in freed memory.
        let len = MAGIC.len()
            + 3
            + self
                .rsa
                .iter()
                .map(|k| 4 + k.pkcs8.as_bytes().len())
                .sum::<usize>()
            + self.sm2.len() * SM2_SCALAR_LEN;
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Both counts are at most MAX_KEYS_PER_ALGORITHM (enforced by every constructor).
        out.push(u8::try_from(self.rsa.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(self.sm2.len()).unwrap_or(u8::MAX));
        for key in &self.rsa {
            let bytes = key.pkcs8.as_bytes();
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        for key in &self.sm2 {
            out.extend_from_slice(&Zeroizing::new(key.secret.to_bytes()));
        }
        out
    }

    /// Reads a ring written by [`KeyRing::to_bytes`]. Any truncation, trailing data,
    /// unknown version, empty algorithm list or invalid key is a [`EncryptionError::Key`].
    pub fn from_bytes(b: &[u8]) -> Result<KeyRing, EncryptionError> {
        let corrupt = |what: &str| EncryptionError::key(format!("corrupt key ring: {what}"));
        let mut reader = Reader(b);
        if reader.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(corrupt("bad magic"));
        }
        if reader.byte() != Some(VERSION) {
            return Err(corrupt("unsupported version"));
        }
        let (Some(n_rsa), Some(n_sm2)) = (reader.byte(), reader.byte()) else {
            return Err(corrupt("truncated header"));
        };
        let (n_rsa, n_sm2) = (usize::from(n_rsa), usize::from(n_sm2));
        if !(1..=MAX_KEYS_PER_ALGORITHM).contains(&n_rsa)
            || !(1..=MAX_KEYS_PER_ALGORITHM).contains(&n_sm2)
        {
            return Err(corrupt("bad key count"));
        }
        let mut rsa_keys = Vec::with_capacity(n_rsa);
        for _ in 0..n_rsa {
            let len = reader
                .take(4)
                .and_then(|l| <[u8; 4]>::try_from(l).ok())
                .map(|l| u32::from_be_bytes(l) as usize)
                .filter(|&l| l <= MAX_RSA_DER_LEN)
                .ok_or_else(|| corrupt("bad RSA key length"))?;
            let der = reader
                .take(len)
                .ok_or_else(|| corrupt("truncated RSA key"))?;
            let key = rsa::PrivateKey::from_pkcs8_der(der).map_err(|_| corrupt("bad RSA key"))?;
            rsa_keys.push(RsaKey::new(key)?);
        }
        let mut sm2_keys = Vec::with_capacity(n_sm2);
        for _ in 0..n_sm2 {
            let scalar = reader
                .take(SM2_SCALAR_LEN)
                .ok_or_else(|| corrupt("truncated SM2 key"))?;
            sm2_keys.push(Sm2Key::from_scalar(scalar).map_err(|_| corrupt("bad SM2 key"))?);
        }
        if !reader.0.is_empty() {
            return Err(corrupt("trailing data"));
        }
        Ok(KeyRing {
            rsa: rsa_keys,
            sm2: sm2_keys,
        })
    }

    /// Generates a new RSA and a new SM2 key, makes them current and keeps at most
    /// `keep_previous` of the older keys of each algorithm (the rotation overlap; `0`
    /// drops every old key at once). On error the ring is unchanged.
    pub fn rotate(&mut self, keep_previous: usize) -> Result<(), EncryptionError> {
        let keep = keep_previous.min(MAX_KEYS_PER_ALGORITHM - 1);
        let (rsa_key, sm2_key) = (RsaKey::generate()?, Sm2Key::generate()?);
        self.rsa.insert(0, rsa_key);
        self.rsa.truncate(keep + 1);
        self.sm2.insert(0, sm2_key);
        self.sm2.truncate(keep + 1);
        Ok(())
    }

    /// The current public key in the form the official helpers take (protocol.md §7):
    /// RSA as PKCS#1 `RSA PUBLIC KEY` PEM, SM2 as SubjectPublicKeyInfo `PUBLIC KEY` PEM.
    pub fn public_pem(&self, alg: KeyAlgorithm) -> String {
        match alg {
            KeyAlgorithm::Rsa => self.rsa.first().map(|k| k.public_pem.clone()),
            KeyAlgorithm::Sm2 => self.sm2.first().map(|k| k.public_pem.clone()),
        }
        .unwrap_or_default()
    }

    /// Base64 of [`KeyRing::public_pem`]: the Node helper's `init(publicKeyBase64Pem, …)`
    /// argument and the form the Java/Go helpers hard-code (protocol.md §7).
    pub fn public_pem_base64(&self, alg: KeyAlgorithm) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.public_pem(alg))
    }

    /// Fingerprints (first 8 bytes of SHA-256 of the SPKI DER, hex) of every key of
    /// `alg`, current first. Not secret.
    pub fn fingerprints(&self, alg: KeyAlgorithm) -> Vec<String> {
        match alg {
            KeyAlgorithm::Rsa => self.rsa.iter().map(|k| k.fingerprint.clone()).collect(),
            KeyAlgorithm::Sm2 => self.sm2.iter().map(|k| k.fingerprint.clone()).collect(),
        }
    }

    /// Modulus size in bits of the current RSA key.
    pub fn rsa_bits(&self) -> usize {
        self.rsa.first().map_or(0, |k| k.block_len() * 8)
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("rsa", &self.fingerprints(KeyAlgorithm::Rsa))
            .field("sm2", &self.fingerprints(KeyAlgorithm::Sm2))
            .finish()
    }
}

/// Bounds-checked cursor over a serialised ring (no indexing that could panic).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
}

/// Hex to bytes (the test-key input only), wiped on drop.
fn decode_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).ok()?;
        out.push(u8::from_str_radix(text, 16).ok()?);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;

    #[test]
    fn hex_decoding() {
        assert_eq!(
            decode_hex("00ff7A").as_deref().map(Vec::as_slice),
            Some(&[0u8, 0xff, 0x7a][..])
        );
        assert!(decode_hex("0").is_none());
        assert!(decode_hex("zz").is_none());
        assert!(decode_hex("é0").is_none());
    }

    #[test]
    fn from_bytes_rejects_garbage_without_panicking() {
        for input in [
            &b""[..],
            b"CCKR",
            b"CCKR\x01",
            b"CCKR\x01\x00\x01",
            b"CCKR\x01\x01\x01",
            b"CCKR\x01\x01\x01\xff\xff\xff\xff",
            b"CCKR\x02\x01\x01",
            b"XXXX\x01\x01\x01",
        ] {
            assert!(
                matches!(KeyRing::from_bytes(input), Err(EncryptionError::Key(_))),
                "{input:?}"
            );
        }
    }
}
