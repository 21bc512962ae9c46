//! Bulk registry imports (issue 6): stage every record first, write afterwards.
//!
//! An importer is obtained from [`crate::RegistryStore::begin_import`]. The caller
//! [`RegistryImport::push`]es validated records — this may block for back-pressure, so
//! call it from a blocking context — and, once the whole input has been read without a
//! file-level error, calls [`RegistryImport::finish`]. Nothing reaches the registry
//! before `finish`, so an input that turns out to be unusable half-way leaves the
//! registry unchanged: drop the importer instead.
//!
//! How `finish` writes is the backend's choice; it reports progress only for rows whose
//! outcome is committed, and the last row pushed for a card wins.
//!
//! **Stopping.** A flag given to [`RegistryImport::stop_when`] (set on SIGINT/SIGTERM)
//! makes `finish` commit what it has written, stop and return the counts of the
//! committed rows; [`RegistryImport::stopped`] then says so. Running the same import
//! again finishes it, as after a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::{ImportCounts, ImportProgress, RegistryRecord, RegistryStore, StoreError};

/// Receives progress reports of [`RegistryImport::finish`] (from any thread).
pub type ProgressFn = Box<dyn FnMut(ImportProgress) + Send>;

/// Rows per [`RegistryStore::upsert`] call in the default implementation.
pub const DEFAULT_CHUNK: usize = 10_000;

/// A bulk import in progress (see the module documentation).
#[async_trait]
pub trait RegistryImport: Send {
    /// Stages one record. May block while earlier records are processed.
    fn push(&mut self, record: RegistryRecord) -> Result<(), StoreError>;
    /// Writes everything staged and reports what happened. Call at most once.
    async fn finish(&mut self, progress: ProgressFn) -> Result<ImportCounts, StoreError>;
    /// Once `stop` is set, [`RegistryImport::finish`] stops at its next clean point
    /// (everything written so far committed) and returns the committed rows' counts.
    /// The default ignores it: such an importer runs to the end.
    fn stop_when(&mut self, stop: Arc<AtomicBool>) {
        let _ = stop;
    }
    /// Whether `finish` stopped early (see [`RegistryImport::stop_when`]), so that its
    /// counts cover only part of the staged rows.
    fn stopped(&self) -> bool {
        false
    }
}

/// The default importer: keeps the records in memory, then upserts them in chunks of
/// [`DEFAULT_CHUNK`], each chunk in its own transaction (a crash keeps the chunks
/// reported as written). Duplicates of a card within the import count as `updated`.
pub struct BufferedImport<'a, S: ?Sized> {
    store: &'a S,
    records: Vec<RegistryRecord>,
    stop: Arc<AtomicBool>,
    stopped: bool,
}

impl<'a, S: RegistryStore + ?Sized> BufferedImport<'a, S> {
    /// An empty import into `store`.
    pub fn new(store: &'a S) -> Self {
        BufferedImport {
            store,
            records: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            stopped: false,
        }
    }
}

impl<S: ?Sized> std::fmt::Debug for BufferedImport<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedImport")
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: RegistryStore + ?Sized> RegistryImport for BufferedImport<'_, S> {
    fn push(&mut self, record: RegistryRecord) -> Result<(), StoreError> {
        self.records.push(record);
        Ok(())
    }

    async fn finish(&mut self, mut progress: ProgressFn) -> Result<ImportCounts, StoreError> {
        let records = std::mem::take(&mut self.records);
        let total = records.len() as u64;
        let mut counts = ImportCounts::default();
        let mut written = 0u64;
        for chunk in records.chunks(DEFAULT_CHUNK) {
            // Between chunks every written row is committed: a clean point to stop.
            if self.stop.load(Ordering::Relaxed) {
                self.stopped = true;
                break;
            }
            let c = self.store.upsert(chunk).await?;
            counts.inserted += c.inserted;
            counts.updated += c.updated;
            written += chunk.len() as u64;
            progress(ImportProgress { written, total });
        }
        Ok(counts)
    }

    fn stop_when(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}
