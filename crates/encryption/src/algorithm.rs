//! `Encryption.Algorithm` and the asymmetric key type that wraps its data key
//! (protocol.md §6.5, §7 steps 1–4).

use crate::EncryptionError;

/// The symmetric algorithm of an `Encryption` envelope. Each one fixes the asymmetric
/// algorithm used for `CiphertextBlob`, the data-key length and the IV length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `AES-256-CBC` with PKCS#7 padding; the data key is wrapped with RSA PKCS#1 v1.5.
    /// The default when `Algorithm` is absent (protocol.md §6.5).
    Aes256Cbc,
    /// `SM4-GCM` (96-bit IV, 128-bit tag, no AAD); the data key is wrapped with SM2
    /// (C1C3C2).
    Sm4Gcm,
}

impl Algorithm {
    /// Parses `Encryption.Algorithm`: absent means `AES-256-CBC` (protocol.md §6.5); the
    /// names are matched exactly, as Tencent documents them.
    pub fn parse(value: Option<&str>) -> Result<Self, EncryptionError> {
        match value {
            None | Some("AES-256-CBC") => Ok(Self::Aes256Cbc),
            Some("SM4-GCM") => Ok(Self::Sm4Gcm),
            Some(_) => Err(EncryptionError::UnknownAlgorithm),
        }
    }

    /// The wire name (`AES-256-CBC` / `SM4-GCM`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes256Cbc => "AES-256-CBC",
            Self::Sm4Gcm => "SM4-GCM",
        }
    }

    /// The asymmetric algorithm that wraps this algorithm's data key.
    pub fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::Aes256Cbc => KeyAlgorithm::Rsa,
            Self::Sm4Gcm => KeyAlgorithm::Sm2,
        }
    }

    /// Data-key length in bytes (protocol.md §7 step 1: AES-256 → 32, SM4 → 16). The
    /// unwrapped key is opaque bytes (ASCII from the Java/Go helpers, raw from Node); only
    /// its length is checked.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes256Cbc => 32,
            Self::Sm4Gcm => 16,
        }
    }

    /// IV length in bytes when `Iv` is Base64 (protocol.md §7 step 2: AES → 16, SM4 → 12).
    pub fn iv_len(self) -> usize {
        match self {
            Self::Aes256Cbc => 16,
            Self::Sm4Gcm => 12,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's asymmetric key types (protocol.md §7 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA, PKCS#1 v1.5 encryption; wraps AES-256-CBC data keys.
    Rsa,
    /// SM2 public-key encryption (C1C3C2); wraps SM4-GCM data keys.
    Sm2,
}

impl KeyAlgorithm {
    /// Parses `RSA` / `SM2` (ASCII case-insensitive, as typed on the command line).
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("RSA") {
            Some(Self::Rsa)
        } else if value.eq_ignore_ascii_case("SM2") {
            Some(Self::Sm2)
        } else {
            None
        }
    }

    /// `RSA` / `SM2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Sm2 => "SM2",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;

    #[test]
    fn parse_follows_the_model() {
        assert_eq!(Algorithm::parse(None), Ok(Algorithm::Aes256Cbc));
        assert_eq!(
            Algorithm::parse(Some("AES-256-CBC")),
            Ok(Algorithm::Aes256Cbc)
        );
        assert_eq!(Algorithm::parse(Some("SM4-GCM")), Ok(Algorithm::Sm4Gcm));
        for bad in ["", "aes-256-cbc", "AES-128-CBC", "SM4-CBC", " SM4-GCM"] {
            assert_eq!(
                Algorithm::parse(Some(bad)),
                Err(EncryptionError::UnknownAlgorithm),
                "{bad:?}"
            );
        }
        for alg in [Algorithm::Aes256Cbc, Algorithm::Sm4Gcm] {
            assert_eq!(Algorithm::parse(Some(alg.as_str())), Ok(alg));
        }
    }

    #[test]
    fn key_algorithm_names() {
        assert_eq!(KeyAlgorithm::parse("rsa"), Some(KeyAlgorithm::Rsa));
        assert_eq!(KeyAlgorithm::parse("SM2"), Some(KeyAlgorithm::Sm2));
        assert_eq!(KeyAlgorithm::parse("EC"), None);
        assert_eq!(Algorithm::Sm4Gcm.key_algorithm().as_str(), "SM2");
    }
}
