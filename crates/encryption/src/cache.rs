//! The unwrapped-data-key cache (design.md "Hot path rules"; stack-measurements.md §3:
//! an RSA-2048 unwrap costs milliseconds, 20–100× the rest of a request, and clients
//! reuse one data key across requests).
//!
//! Keyed by SHA-256 of the algorithm name and the `CiphertextBlob` string, bounded in
//! entries and in age. Failed unwraps are cached too (as their pseudo key, see
//! [`crate::wrap`]): a repeated bad blob must not be slower than a repeated good one, or
//! the timing would tell them apart. Values are `Arc<DataKeys>` whose keys are wiped when
//! the last reference goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::Algorithm;
use crate::wrap::DataKeys;

/// Default bound on cached data keys.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default lifetime of a cached data key.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10 * 60);

/// Cache key: SHA-256 over the algorithm and the blob string. The algorithm is included
/// because the same blob string means a different unwrap (RSA vs SM2) under the other one.
pub(crate) type BlobId = [u8; 32];

pub(crate) fn blob_id(alg: Algorithm, blob: &str) -> BlobId {
    let mut hash = Sha256::new();
    hash.update(alg.as_str().as_bytes());
    hash.update([0u8]);
    hash.update(blob.as_bytes());
    hash.finalize().into()
}

struct Entry {
    keys: Arc<DataKeys>,
    inserted: Instant,
    /// Key-ring generation the entry was unwrapped with; entries of an older ring are
    /// never served (see `Decryptor::replace_keys`).
    generation: u64,
}

/// A `Mutex<HashMap>` with expiry and oldest-first eviction. The lock is never held
/// during an unwrap, only for map operations.
pub(crate) struct DataKeyCache {
    map: Mutex<HashMap<BlobId, Entry>>,
    capacity: usize,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DataKeyCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A fresh entry for `id` unwrapped under `generation`, counting a hit or a miss.
    pub(crate) fn get(&self, id: &BlobId, generation: u64) -> Option<Arc<DataKeys>> {
        let found = {
            // A panic elsewhere while holding the lock cannot leave the map inconsistent
            // (every operation is a single HashMap call), so a poisoned lock is used as is.
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(id) {
                Some(e) if e.generation == generation && e.inserted.elapsed() < self.ttl => {
                    Some(Arc::clone(&e.keys))
                }
                Some(_) => {
                    map.remove(id);
                    None
                }
                None => None,
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, id: BlobId, generation: u64, keys: Arc<DataKeys>) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(&id) {
            self.evict(&mut map, generation);
        }
        map.insert(
            id,
            Entry {
                keys,
                inserted: Instant::now(),
                generation,
            },
        );
    }

    /// Makes room: drops expired and stale-generation entries, then, if still full, the
    /// oldest tenth. Runs only on a miss into a full cache, where it is cheap next to the
    /// private-key operation that caused the miss, and amortised over a tenth of the
    /// capacity.
    fn evict(&self, map: &mut HashMap<BlobId, Entry>, generation: u64) {
        map.retain(|_, e| e.generation == generation && e.inserted.elapsed() < self.ttl);
        if map.len() < self.capacity {
            return;
        }
        let drop_count = (self.capacity / 10).max(1);
        let mut ages: Vec<(Instant, BlobId)> =
            map.iter().map(|(id, e)| (e.inserted, *id)).collect();
        let cut = drop_count.min(ages.len()) - 1;
        ages.select_nth_unstable_by_key(cut, |(inserted, _)| *inserted);
        for (_, id) in &ages[..=cut] {
            map.remove(id);
        }
    }

    pub(crate) fn clear(&self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn keys(byte: u8) -> Arc<DataKeys> {
        Arc::new(DataKeys {
            candidates: vec![Zeroizing::new(vec![byte; 16])],
            genuine: true,
        })
    }

    #[test]
    fn bounded_and_evicts_oldest() {
        let cache = DataKeyCache::new(20, DEFAULT_CACHE_TTL);
        for i in 0..50u8 {
            cache.insert([i; 32], 0, keys(i));
            assert!(cache.len() <= 20);
        }
        // The newest entry survives; the first ones were evicted.
        assert!(cache.get(&[49; 32], 0).is_some());
        assert!(cache.get(&[0; 32], 0).is_none());
        assert_eq!(cache.stats(), (1, 1));
    }

    #[test]
    fn expiry_generation_and_zero_capacity() {
        let cache = DataKeyCache::new(10, Duration::ZERO);
        cache.insert([1; 32], 0, keys(1));
        assert!(cache.get(&[1; 32], 0).is_none(), "expired at once");
        let cache = DataKeyCache::new(10, DEFAULT_CACHE_TTL);
        cache.insert([1; 32], 0, keys(1));
        assert!(cache.get(&[1; 32], 1).is_none(), "older ring generation");
        let cache = DataKeyCache::new(0, DEFAULT_CACHE_TTL);
        cache.insert([1; 32], 0, keys(1));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn blob_id_separates_algorithms() {
        assert_ne!(
            blob_id(Algorithm::Aes256Cbc, "x"),
            blob_id(Algorithm::Sm4Gcm, "x")
        );
        assert_eq!(
            blob_id(Algorithm::Sm4Gcm, "x"),
            blob_id(Algorithm::Sm4Gcm, "x")
        );
    }
}
