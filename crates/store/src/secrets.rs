//! The data directory's master key and what is derived from it (verification.md §3).
//!
//! One 32-byte master key per deployment, from `CARDCHECK_MASTER_KEY` (64 hex digits) or
//! a `master.key` file (mode 0600) created on first start. Purpose-bound subkeys are
//! HMAC-SHA256(master, label), so one key never serves two purposes:
//! - SecretKeys at rest: AES-256-GCM, `nonce(12) ‖ ciphertext ‖ tag(16)`, with the
//!   SecretId as associated data (a row's ciphertext cannot be moved to another row);
//! - registry card numbers and names: HMAC-SHA256 keyed hashes, truncated to 16 bytes
//!   (128 bits: collisions are negligible at 10⁸ rows, and rows stay small).

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::StoreError;

/// Environment variable holding the master key as 64 hex digits.
pub const MASTER_KEY_ENV: &str = "CARDCHECK_MASTER_KEY";
/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Length of registry keyed hashes, bytes.
pub const KEYED_HASH_LEN: usize = 16;

/// A registry keyed hash.
pub type KeyedHash = [u8; KEYED_HASH_LEN];

/// The deployment's master key and its subkeys. Wiped on drop.
#[derive(Clone)]
pub struct MasterKey {
    secret_key_encryption: Zeroizing<[u8; 32]>,
    registry_hashing: Zeroizing<[u8; 32]>,
    check_value: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl MasterKey {
    /// Derives the subkeys from 32 master-key bytes.
    pub fn from_bytes(master: &[u8; 32]) -> Self {
        MasterKey {
            secret_key_encryption: Zeroizing::new(hmac_sha256(
                master,
                &[b"cardcheck/v1/secret-key-encryption"],
            )),
            registry_hashing: Zeroizing::new(hmac_sha256(master, &[b"cardcheck/v1/registry-hash"])),
            check_value: hmac_sha256(master, &[b"cardcheck/v1/check-value"]),
        }
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_digits: &str) -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_digits.trim(), bytes.as_mut_slice()).map_err(|_| {
            StoreError::Invalid("the master key must be 64 hex digits (32 bytes)".into())
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random key and its hex form.
    pub fn generate() -> (Self, Zeroizing<String>) {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::fill(bytes.as_mut_slice());
        let hex_digits = Zeroizing::new(hex::encode(bytes.as_slice()));
        (Self::from_bytes(&bytes), hex_digits)
    }

    /// The key for `data_dir`: `CARDCHECK_MASTER_KEY` if set, else `master.key` in the
    /// directory, created (0600) when `create` and absent.
    pub fn load_or_create(data_dir: &Path, create: bool) -> Result<Self, StoreError> {
        if let Ok(value) = std::env::var(MASTER_KEY_ENV) {
            return Self::from_hex(&value).map_err(|_| {
                StoreError::Invalid(format!("{MASTER_KEY_ENV} must be 64 hex digits (32 bytes)"))
            });
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text).map_err(|_| {
                StoreError::Invalid(format!("{} must hold 64 hex digits", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let (key, hex_digits) = Self::generate();
                write_private_file(&path, hex_digits.as_bytes())?;
                Ok(key)
            }
            // An existing store without its key: writing a new one would only put a
            // wrong key where the operator backs up the right one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::Invalid(format!(
                    "no master key: {} is missing and {MASTER_KEY_ENV} is not set (set it, or \
                 restore master.key from the backup of this data directory)",
                    path.display()
                )))
            }
            Err(e) => Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// A value stored with the data so that a wrong master key is detected at open.
    pub fn check_value(&self) -> [u8; 32] {
        self.check_value
    }

    /// Encrypts a SecretKey for storage, bound to its SecretId.
    pub fn seal_secret(&self, secret_id: &str, secret: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&Array::from(*self.secret_key_encryption));
        let mut nonce = Array::<u8, U12>::default();
        rand::fill(nonce.as_mut_slice());
        let mut out = Vec::with_capacity(12 + secret.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(secret);
        let tag = cipher
            .encrypt_inout_detached(&nonce, secret_id.as_bytes(), out[12..].as_mut().into())
            .unwrap_or_else(|_| unreachable!("AES-GCM encrypts any message under 64 GiB"));
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts [`Self::seal_secret`]'s output.
    pub fn open_secret(
        &self,
        secret_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("credential {secret_id}"));
        if sealed.len() < 28 {
            return Err(corrupt());
        }
        let (nonce, rest) = sealed.split_at(12);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let cipher = Aes256Gcm::new(&Array::from(*self.secret_key_encryption));
        let nonce = Array::<u8, U12>::try_from(nonce).map_err(|_| corrupt())?;
        let tag = Array::<u8, U16>::try_from(tag).map_err(|_| corrupt())?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(
                &nonce,
                secret_id.as_bytes(),
                plain.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| corrupt())?;
        Ok(plain)
    }

    /// The registry key of a normalised card number.
    pub fn card_hash(&self, digits: &str) -> KeyedHash {
        truncate(hmac_sha256(
            self.registry_hashing.as_slice(),
            &[b"card\0", digits.as_bytes()],
        ))
    }

    /// The registry hash of a name's comparison key.
    pub fn name_hash(&self, comparison_key: &str) -> KeyedHash {
        truncate(hmac_sha256(
            self.registry_hashing.as_slice(),
            &[b"name\0", comparison_key.as_bytes()],
        ))
    }
}

fn truncate(full: [u8; 32]) -> KeyedHash {
    let mut out = [0u8; KEYED_HASH_LEN];
    out.copy_from_slice(&full[..KEYED_HASH_LEN]);
    out
}

/// Writes a new file readable only by its owner.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_round_trips_and_is_bound_to_its_secret_id() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal_secret("AKIDa", b"top-secret-key");
        assert!(!sealed.windows(14).any(|w| w == b"top-secret-key"));
        assert_eq!(
            key.open_secret("AKIDa", &sealed).unwrap().as_slice(),
            b"top-secret-key"
        );
        assert!(matches!(
            key.open_secret("AKIDb", &sealed),
            Err(StoreError::Corrupt(_))
        ));
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(other.open_secret("AKIDa", &sealed).is_err());
        assert!(key.open_secret("AKIDa", &sealed[..20]).is_err());
    }

    #[test]
    fn keyed_hashes_depend_on_the_key_and_the_purpose() {
        let a = MasterKey::from_bytes(&[1; 32]);
        let b = MasterKey::from_bytes(&[2; 32]);
        assert_ne!(
            a.card_hash("6225768888888888"),
            b.card_hash("6225768888888888")
        );
        assert_ne!(a.card_hash("123456789012"), a.name_hash("123456789012"));
        assert_eq!(
            a.card_hash("6225768888888888"),
            a.card_hash("6225768888888888")
        );
    }

    #[test]
    fn master_key_hex_is_validated() {
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
