//! The faceid `Encryption` envelope (protocol.md §6.5, §7): sensitive request fields
//! encrypted with a per-request data key (AES-256-CBC or SM4-GCM), the data key wrapped
//! with the server's public key (RSA PKCS#1 v1.5 or SM2 C1C3C2).
//!
//! # Layout
//!
//! * `algorithm` — [`Algorithm`] / [`KeyAlgorithm`]: `Encryption.Algorithm` and the key type it implies (§6.5, §7 steps 1–2).
//! * `keys` — [`KeyRing`]: the server's RSA and SM2 key pairs, current + previous
//!   (rotation overlap), serialisable for encrypted storage, public keys as PEM (§7
//!   "Public key source").
//! * `envelope` — shape checks of `Encryption` in its JSON and unflattened forms (§6.5, §2.3).
//! * `wrap` — data-key unwrap (RSA block-wise with implicit rejection, SM2 with and
//!   without the `04` tag) and the pseudo key that makes every failure look alike (§7 step 4).
//! * `symmetric` — the field ciphers, the IV tolerance, Base64 (§7 steps 2–3, "Iv tolerance").
//! * `cache` — unwrapped data keys by SHA-256 of the blob, bounded and expiring.
//! * `decrypt` — [`Decryptor::decrypt_params`], the server entry point (§7 "Server side").
//! * `encrypt` — [`encrypt_params`], the client side (§7 "Client side").
//! * `error` — [`EncryptionError`], one variant per Tencent error code.
//!
//! See the crate README for the security notes (padding oracle, RUSTSEC-2023-0071).
#![forbid(unsafe_code)]

mod algorithm;
mod cache;
mod decrypt;
mod encrypt;
mod envelope;
mod error;
mod keys;
mod symmetric;
mod wrap;

pub use algorithm::{Algorithm, KeyAlgorithm};
pub use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
pub use decrypt::{Decryptor, ENCRYPTION_PARAM};
pub use encrypt::encrypt_params;
pub use error::EncryptionError;
pub use keys::{KeyRing, MAX_KEYS_PER_ALGORITHM, RSA_BITS};

/// Fields of BankCard2EVerification that may be encrypted (protocol.md §6.1, §7): the
/// `allowed_fields` argument of [`Decryptor::decrypt_params`] for that action.
pub const BANK_CARD_2E_FIELDS: &[&str] = &["Name", "BankCard"];
