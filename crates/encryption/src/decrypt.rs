//! Server side: [`Decryptor::decrypt_params`] (protocol.md §7 "Server side").

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DataKeyCache, blob_id};
use crate::envelope::{self, Envelope};
use crate::symmetric::{decrypt_field, parse_iv};
use crate::wrap::{DataKeys, PseudoKeySource, unwrap_data_key};
use crate::{Algorithm, EncryptionError, KeyRing};

/// The name of the envelope parameter.
pub const ENCRYPTION_PARAM: &str = "Encryption";

/// Decrypts `Encryption` envelopes with the server's [`KeyRing`], caching unwrapped data
/// keys. Shareable across threads (`Send + Sync`); put it in an `Arc`.
pub struct Decryptor {
    /// The ring and its generation, swapped as one by [`Decryptor::replace_keys`].
    ring: RwLock<(Arc<KeyRing>, u64)>,
    cache: DataKeyCache,
    pseudo: PseudoKeySource,
}

impl Decryptor {
    /// A decryptor with the default cache (10 000 data keys, 10 minutes).
    pub fn new(keys: KeyRing) -> Self {
        Self::with_cache_limits(keys, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL)
    }

    /// A decryptor caching at most `capacity` data keys (0 disables the cache) for at
    /// most `ttl` each.
    pub fn with_cache_limits(keys: KeyRing, capacity: usize, ttl: Duration) -> Self {
        Self {
            ring: RwLock::new((Arc::new(keys), 0)),
            cache: DataKeyCache::new(capacity, ttl),
            pseudo: PseudoKeySource::new(),
        }
    }

    /// The current key ring (e.g. to print its public keys).
    pub fn keys(&self) -> Arc<KeyRing> {
        Arc::clone(&self.read_ring().0)
    }

    /// Installs a new ring (after [`KeyRing::rotate`] or a reload from the store) without
    /// stopping requests. Cached data keys unwrapped with the previous ring are no longer
    /// served: a key dropped from the ring must stop working at once.
    pub fn replace_keys(&self, keys: KeyRing) {
        {
            let mut ring = self.ring.write().unwrap_or_else(PoisonError::into_inner);
            let generation = ring.1.wrapping_add(1);
            *ring = (Arc::new(keys), generation);
        }
        self.cache.clear();
    }

    /// If `params` contain `Encryption`: validates it, decrypts every listed field in
    /// place (replacing the ciphertext string by the plaintext string) and removes
    /// `Encryption`. Returns whether anything was decrypted.
    ///
    /// * Listed fields must be in `allowed_fields` (BankCard2EVerification: `["Name",
    ///   "BankCard"]`), else [`EncryptionError::UnsupportedField`]; listed but absent →
    ///   [`EncryptionError::MissingField`].
    /// * An empty or absent `EncryptList` (or `Encryption: null`) means plaintext fields:
    ///   `Encryption` is removed and `Ok(false)` returned.
    /// * Every cryptographic failure is the one [`EncryptionError::Decrypt`], reached
    ///   after the same steps whatever went wrong (no padding oracle; see the README).
    ///
    /// On any error `params` are left exactly as they were.
    pub fn decrypt_params(
        &self,
        params: &mut Map<String, Value>,
        allowed_fields: &[&str],
    ) -> Result<bool, EncryptionError> {
        let envelope = match params.get(ENCRYPTION_PARAM) {
            None => return Ok(false),
            Some(Value::Null) => None,
            Some(encryption) => envelope::parse(encryption, allowed_fields)?,
        };
        let Some(envelope) = envelope else {
            params.shift_remove(ENCRYPTION_PARAM);
            return Ok(false);
        };
        let plaintexts = {
            let ciphertexts = envelope::ciphertexts(params, &envelope)?;
            self.decrypt_fields(&envelope, &ciphertexts)?
        };
        for (field, plaintext) in envelope.fields.iter().zip(plaintexts) {
            params.insert(field.clone(), Value::String(plaintext));
        }
        params.shift_remove(ENCRYPTION_PARAM);
        Ok(true)
    }

    /// `(hits, misses)` of the data-key cache since creation.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    /// Number of data keys currently cached.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    fn read_ring(&self) -> std::sync::RwLockReadGuard<'_, (Arc<KeyRing>, u64)> {
        // The ring is replaced by a single assignment, so a poisoned lock still holds a
        // consistent value.
        self.ring.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The data keys of a blob: from the cache, or unwrapped (outside any lock) and cached.
    fn data_keys(&self, alg: Algorithm, blob: &str) -> Arc<DataKeys> {
        let (ring, generation) = {
            let guard = self.read_ring();
            (Arc::clone(&guard.0), guard.1)
        };
        let id = blob_id(alg, blob);
        if let Some(keys) = self.cache.get(&id, generation) {
            return keys;
        }
        let keys = Arc::new(unwrap_data_key(&ring, alg, blob, &self.pseudo));
        self.cache.insert(id, generation, Arc::clone(&keys));
        keys
    }

    /// The crypto step. Whatever fails — blob, IV, a field's Base64, padding, tag, UTF-8 —
    /// every field is still decrypted (with the pseudo key / a zero IV if need be) and
    /// the verdict taken only at the end, so every bad input costs the same work and ends
    /// in the same error.
    fn decrypt_fields(
        &self,
        envelope: &Envelope,
        ciphertexts: &[&str],
    ) -> Result<Vec<String>, EncryptionError> {
        let alg = envelope.algorithm;
        let keys = self.data_keys(alg, &envelope.blob);
        let iv = parse_iv(alg, &envelope.iv);
        let iv_ok = iv.is_some();
        let iv = iv.unwrap_or_else(|| vec![0; alg.iv_len()]);

        let mut decrypted = None;
        for key in &keys.candidates {
            let attempt: Vec<Option<Zeroizing<String>>> = ciphertexts
                .iter()
                .enumerate()
                .map(|(i, ciphertext)| {
                    let tag = envelope.tags.get(i).map(String::as_str);
                    decrypt_field(alg, key, &iv, ciphertext, tag).map(Zeroizing::new)
                })
                .collect();
            if attempt.iter().all(Option::is_some) {
                decrypted = Some(attempt);
                break;
            }
        }
        match decrypted {
            Some(plaintexts) if keys.genuine && iv_ok => Ok(plaintexts
                .into_iter()
                .flatten()
                .map(|mut p| std::mem::take(&mut *p))
                .collect()),
            _ => Err(EncryptionError::Decrypt),
        }
    }
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("keys", &*self.read_ring().0)
            .field("cached_data_keys", &self.cache.len())
            .finish_non_exhaustive()
    }
}
