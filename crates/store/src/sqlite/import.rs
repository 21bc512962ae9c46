//! The SQLite bulk import (issue 6): ten million rows at hundreds of thousands a second.
//!
//! Two phases, so that nothing is written before the whole input has been read:
//!
//! 1. **Stage.** [`SqliteImport::push`] hands records in batches to a hashing thread
//!    (the caller's thread parses, this one hashes: two cores busy). Each record becomes
//!    a fixed 40-byte [`Staged`] row — keyed card hash, keyed name hash, BIN, last four,
//!    length, status — so neither the card number nor the name is ever written to disk.
//!    Up to [`IN_MEMORY_MAX`] rows stay in memory; beyond that every row goes to one of
//!    256 bucket files by the first byte of its card hash (an external radix sort), in a
//!    private temporary directory inside the data directory, removed when the import
//!    ends (also on error, when abandoned or stopped by a signal). A directory left by a
//!    killed process (`kill -9`) is removed by the next import.
//! 2. **Write.** A loader thread reads one bucket at a time, sorts it by card hash
//!    (stable, so the last row for a card wins) and drops superseded duplicates; the
//!    writer inserts in key order. Key order makes the B-tree grow at its right edge
//!    (or walk an existing tree once, front to back), so the page cache needs only the
//!    current path and each page is written about once — random-order inserts into a
//!    10M-row tree that does not fit the cache are many times slower. Rows are written
//!    by `registry::RowWriter` (slots sort as card hashes do): a new card takes one
//!    `INSERT OR IGNORE`, an existing one an `UPDATE` that skips identical rows.
//!
//! **Resumable, not atomic.** The writer commits every [`COMMIT_EVERY`] rows and only
//! then reports progress, so a crash loses nothing reported as written; running the
//! same import again finishes the job (upserts are idempotent; rows already written
//! count as `unchanged`). A stop request ([`RegistryImport::stop_when`]) commits the
//! rows written so far and ends the import there, to be resumed the same way. Chunked commits also let a running server's ledger writer
//! take the write lock between chunks, where one 10M-row transaction would hold it for
//! the whole import.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use async_trait::async_trait;
use cardcheck_domain::CardStatus;
use rusqlite::Connection;

use super::registry::{PutOutcome, RegistryRow, RowWriter};
use super::{db_err, now_unix, open_connection};
use crate::secrets::{KEYED_HASH_LEN, KeyedHash, MasterKey};
use crate::{ImportCounts, ImportProgress, ProgressFn, RegistryImport, RegistryRecord, StoreError};

/// Bytes of one staged row on disk.
const RECORD_BYTES: usize = 2 * KEYED_HASH_LEN + 8;
/// Bucket files (the first byte of the card hash picks one).
const BUCKETS: usize = 256;
/// Staged rows kept in memory before spilling to bucket files (40 MB); the
/// environment variable [`IN_MEMORY_ENV`] overrides it.
pub const IN_MEMORY_MAX: usize = 1 << 20;
/// Overrides [`IN_MEMORY_MAX`] (rows), e.g. to force the bucket files in tests.
pub const IN_MEMORY_ENV: &str = "CARDCHECK_IMPORT_MEMORY_ROWS";
/// Records per batch handed to the hashing thread.
const BATCH: usize = 4096;
/// Rows per transaction of the writing phase.
pub const COMMIT_EVERY: u64 = 250_000;
/// Page cache of the import connection (KiB, as `PRAGMA cache_size` takes it).
const IMPORT_CACHE_KIB: i64 = 64 * 1024;

/// One staged row: what the registry stores, in 40 fixed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Staged {
    card_hash: KeyedHash,
    name_hash: KeyedHash,
    /// First six digits.
    bin6: u32,
    /// Last four digits.
    last4: u16,
    /// Number of digits (12..=19).
    len: u8,
    /// Index into [`CardStatus::ALL`].
    status: u8,
}

fn digits_value(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, d| {
        acc * 10 + u32::from(d.wrapping_sub(b'0') % 10)
    })
}

impl Staged {
    fn new(key: &MasterKey, record: &RegistryRecord) -> Staged {
        let digits = record.card.digits();
        let bytes = digits.as_bytes();
        let n = bytes.len();
        let status = CardStatus::ALL
            .iter()
            .position(|s| *s == record.status)
            .unwrap_or(0) as u8;
        Staged {
            card_hash: key.card_hash(digits),
            name_hash: key.name_hash(record.name.comparison_key()),
            bin6: digits_value(&bytes[..6]),
            last4: digits_value(&bytes[n - 4..]) as u16,
            len: n as u8,
            status,
        }
    }

    fn encode(&self, out: &mut [u8; RECORD_BYTES]) {
        out[..16].copy_from_slice(&self.card_hash);
        out[16..32].copy_from_slice(&self.name_hash);
        out[32..36].copy_from_slice(&self.bin6.to_le_bytes());
        out[36..38].copy_from_slice(&self.last4.to_le_bytes());
        out[38] = self.len;
        out[39] = self.status;
    }

    fn decode(b: &[u8]) -> Staged {
        let mut card_hash = [0u8; KEYED_HASH_LEN];
        let mut name_hash = [0u8; KEYED_HASH_LEN];
        card_hash.copy_from_slice(&b[..16]);
        name_hash.copy_from_slice(&b[16..32]);
        Staged {
            card_hash,
            name_hash,
            bin6: u32::from_le_bytes([b[32], b[33], b[34], b[35]]),
            last4: u16::from_le_bytes([b[36], b[37]]),
            len: b[38],
            status: b[39],
        }
    }

    /// The masked card (`622576******8888`), as [`cardcheck_domain::CardNumber::masked`].
    fn masked_into(&self, out: &mut String) {
        out.clear();
        let push_digits = |out: &mut String, mut v: u32, width: usize| {
            let mut buf = [b'0'; 6];
            for slot in buf[..width].iter_mut().rev() {
                *slot = b'0' + (v % 10) as u8;
                v /= 10;
            }
            for &b in &buf[..width] {
                out.push(char::from(b));
            }
        };
        push_digits(out, self.bin6, 6);
        for _ in 0..usize::from(self.len).saturating_sub(10) {
            out.push('*');
        }
        push_digits(out, u32::from(self.last4), 4);
    }

    fn status_word(&self) -> &'static str {
        CardStatus::ALL
            .get(usize::from(self.status))
            .copied()
            .unwrap_or(CardStatus::Declined)
            .as_word()
    }
}

fn io_err(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("registry import: {what}: {e}"))
}

/// Prefix of the staging directories' names: `registry-import-<pid>-<n>.tmp`.
const STAGING_PREFIX: &str = "registry-import-";

/// A private directory removed (with its files) on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn create(parent: &Path) -> Result<TempDir, StoreError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{STAGING_PREFIX}{}-{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .map_err(|e| io_err(&format!("cannot create {}", path.display()), e))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pid in a staging directory's name (`registry-import-<pid>-<n>.tmp`).
fn staging_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(STAGING_PREFIX)?.strip_suffix(".tmp")?;
    let (pid, seq) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(seq) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the staging directories in `parent` whose import process is gone (killed
/// with SIGKILL, or the machine lost power): Drop never ran for them. Whether a pid
/// runs is read from `/proc`; without it (not Linux) nothing is removed, as it cannot
/// be told without `unsafe`. A pid reused since only keeps a stale directory longer.
/// Returns how many were removed.
fn remove_stale_staging(parent: &Path) -> usize {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(staging_pid) else {
            continue;
        };
        // `file_type` does not follow symlinks: only real directories are removed.
        if pid == own
            || proc.join(pid.to_string()).exists()
            || !entry.file_type().is_ok_and(|t| t.is_dir())
            || recently_written(&entry.path())
        {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                removed += 1;
                tracing::info!(
                    dir = %entry.path().display(),
                    "removed the staging directory of an interrupted registry import"
                );
            }
            Err(e) => tracing::warn!(
                dir = %entry.path().display(),
                error = %e,
                "cannot remove the staging directory of an interrupted registry import"
            ),
        }
    }
    removed
}

/// How long a staging directory must have been left untouched before another import
/// removes it: an import running on the same data directory from another PID namespace
/// (another container sharing the volume) has a pid this process cannot see, but it
/// writes its bucket files all the time.
const STALE_STAGING_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether `dir` or a file in it was modified within [`STALE_STAGING_AGE`] (or when
/// that cannot be told: then the directory is kept).
fn recently_written(dir: &Path) -> bool {
    let recent = |m: std::io::Result<std::fs::Metadata>| {
        m.and_then(|m| m.modified()).map_or(true, |t| {
            t.elapsed().map_or(true, |age| age < STALE_STAGING_AGE)
        })
    };
    if recent(std::fs::metadata(dir)) {
        return true;
    }
    match std::fs::read_dir(dir) {
        Ok(files) => files.flatten().any(|f| recent(f.metadata())),
        Err(_) => true,
    }
}

/// Phase 1's output store: memory first, bucket files beyond [`IN_MEMORY_MAX`].
#[derive(Debug)]
struct Staging {
    parent: PathBuf,
    memory_max: usize,
    memory: Vec<Staged>,
    dir: Option<TempDir>,
    files: Vec<BufWriter<File>>,
    count: u64,
}

impl Staging {
    fn new(parent: PathBuf) -> Staging {
        let memory_max = std::env::var(IN_MEMORY_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(IN_MEMORY_MAX);
        Staging {
            parent,
            memory_max,
            memory: Vec::new(),
            dir: None,
            files: Vec::new(),
            count: 0,
        }
    }

    fn bucket_path(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{i:03}.bin"))
    }

    fn push(&mut self, row: Staged) -> Result<(), StoreError> {
        self.count += 1;
        if self.files.is_empty() {
            self.memory.push(row);
            if self.memory.len() >= self.memory_max {
                self.spill()?;
            }
            Ok(())
        } else {
            self.write(row)
        }
    }

    fn write(&mut self, row: Staged) -> Result<(), StoreError> {
        let mut buf = [0u8; RECORD_BYTES];
        row.encode(&mut buf);
        self.files[usize::from(row.card_hash[0])]
            .write_all(&buf)
            .map_err(|e| io_err("cannot write a staging file", e))
    }

    fn spill(&mut self) -> Result<(), StoreError> {
        let dir = TempDir::create(&self.parent)?;
        for i in 0..BUCKETS {
            let path = Self::bucket_path(&dir.0, i);
            let file = File::create(&path)
                .map_err(|e| io_err(&format!("cannot create {}", path.display()), e))?;
            self.files.push(BufWriter::with_capacity(64 * 1024, file));
        }
        self.dir = Some(dir);
        for row in std::mem::take(&mut self.memory) {
            self.write(row)?;
        }
        Ok(())
    }

    /// Flushes the bucket files; what phase 2 reads.
    fn seal(mut self) -> Result<Sealed, StoreError> {
        for f in &mut self.files {
            f.flush()
                .map_err(|e| io_err("cannot write a staging file", e))?;
        }
        self.files.clear();
        Ok(match self.dir.take() {
            Some(dir) => Sealed::Buckets(dir),
            None => Sealed::Memory(self.memory),
        })
    }
}

/// Staged rows ready for writing.
#[derive(Debug)]
enum Sealed {
    Memory(Vec<Staged>),
    Buckets(TempDir),
}

/// Sorts by card hash (stably: input order among equal cards) and keeps the last row
/// of each card; returns how many were dropped.
fn sort_and_dedup(rows: &mut Vec<Staged>) -> u64 {
    rows.sort_by_key(|r| r.card_hash);
    let before = rows.len();
    let mut out = 0usize;
    for i in 0..rows.len() {
        if out > 0 && rows[out - 1].card_hash == rows[i].card_hash {
            rows[out - 1] = rows[i];
        } else {
            rows[out] = rows[i];
            out += 1;
        }
    }
    rows.truncate(out);
    (before - out) as u64
}

fn read_bucket(path: &Path) -> Result<Vec<Staged>, StoreError> {
    let file =
        File::open(path).map_err(|e| io_err(&format!("cannot open {}", path.display()), e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut bytes = Vec::with_capacity(len);
    BufReader::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err(&format!("cannot read {}", path.display()), e))?;
    let rows = bytes
        .chunks_exact(RECORD_BYTES)
        .map(Staged::decode)
        .collect();
    // The bucket is consumed: free its disk space early.
    let _ = std::fs::remove_file(path);
    Ok(rows)
}

/// The SQLite importer (module documentation).
pub(super) struct SqliteImport {
    db_path: PathBuf,
    batch: Vec<RegistryRecord>,
    tx: Option<SyncSender<Vec<RegistryRecord>>>,
    hasher: Option<JoinHandle<Result<Staging, StoreError>>>,
    /// Set by the caller (a signal) to stop the writing phase at a commit.
    stop: Arc<AtomicBool>,
    /// Set by the writer when it stopped because of `stop`.
    stopped: Arc<AtomicBool>,
}

impl std::fmt::Debug for SqliteImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteImport")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

fn hash_rows(
    key: &MasterKey,
    rx: &Receiver<Vec<RegistryRecord>>,
    staging: &mut Staging,
) -> Result<(), StoreError> {
    while let Ok(batch) = rx.recv() {
        for record in &batch {
            staging.push(Staged::new(key, record))?;
        }
    }
    Ok(())
}

impl SqliteImport {
    pub(super) fn start(key: MasterKey, db_path: PathBuf) -> Result<SqliteImport, StoreError> {
        let parent = db_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        remove_stale_staging(&parent);
        let (tx, rx) = sync_channel::<Vec<RegistryRecord>>(8);
        let hasher = std::thread::Builder::new()
            .name("cardcheck-import-hash".into())
            .spawn(move || {
                let mut staging = Staging::new(parent);
                hash_rows(&key, &rx, &mut staging)?;
                Ok(staging)
            })
            .map_err(|e| io_err("cannot start the hashing thread", e))?;
        Ok(SqliteImport {
            db_path,
            batch: Vec::with_capacity(BATCH),
            tx: Some(tx),
            hasher: Some(hasher),
            stop: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    fn send_batch(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = match &self.tx {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The hashing thread stopped: its error says why.
            Err(self.join_hasher().err().unwrap_or_else(|| {
                StoreError::Io("registry import: the hashing thread stopped".into())
            }))
        }
    }

    fn join_hasher(&mut self) -> Result<Staging, StoreError> {
        self.tx = None;
        match self.hasher.take() {
            Some(handle) => handle.join().unwrap_or_else(|_| {
                Err(StoreError::Io(
                    "registry import: the hashing thread panicked".into(),
                ))
            }),
            None => Err(StoreError::Io(
                "registry import: already finished or failed".into(),
            )),
        }
    }
}

impl Drop for SqliteImport {
    fn drop(&mut self) {
        // Abandoned: stop the hashing thread; its staging files go with it.
        self.tx = None;
        if let Some(handle) = self.hasher.take() {
            let _ = handle.join();
        }
    }
}

#[async_trait]
impl RegistryImport for SqliteImport {
    fn push(&mut self, record: RegistryRecord) -> Result<(), StoreError> {
        self.batch.push(record);
        if self.batch.len() >= BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    async fn finish(&mut self, progress: ProgressFn) -> Result<ImportCounts, StoreError> {
        self.send_batch()?;
        self.tx = None;
        let hasher = self
            .hasher
            .take()
            .ok_or_else(|| StoreError::Io("registry import: already finished or failed".into()))?;
        let db_path = self.db_path.clone();
        let stop = Arc::clone(&self.stop);
        let stopped = Arc::clone(&self.stopped);
        tokio::task::spawn_blocking(move || {
            let staging = hasher.join().unwrap_or_else(|_| {
                Err(StoreError::Io(
                    "registry import: the hashing thread panicked".into(),
                ))
            })?;
            let total = staging.count;
            let halt = Halt {
                stop: &stop,
                stopped: &stopped,
            };
            write_staged(&db_path, staging.seal()?, total, progress, halt)
        })
        .await
        .map_err(|e| StoreError::Io(format!("registry import: the writer stopped: {e}")))?
    }

    fn stop_when(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// The writer's stop request (read) and its answer (set when it stopped early).
#[derive(Debug, Clone, Copy)]
struct Halt<'a> {
    stop: &'a AtomicBool,
    stopped: &'a AtomicBool,
}

/// Sorted, de-duplicated groups of staged rows, in card-hash order.
type Group = (Vec<Staged>, u64);

fn load_groups(sealed: Sealed, tx: &SyncSender<Result<Group, StoreError>>) {
    match sealed {
        Sealed::Memory(mut rows) => {
            let dups = sort_and_dedup(&mut rows);
            let _ = tx.send(Ok((rows, dups)));
        }
        Sealed::Buckets(dir) => {
            for i in 0..BUCKETS {
                let group = read_bucket(&Staging::bucket_path(&dir.0, i)).map(|mut rows| {
                    let dups = sort_and_dedup(&mut rows);
                    (rows, dups)
                });
                let failed = group.is_err();
                if tx.send(group).is_err() || failed {
                    return;
                }
            }
        }
    }
}

/// The import connection: the store's settings plus a bigger page cache.
fn import_connection(db_path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(db_path)?;
    conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)
        .map_err(db_err)?;
    Ok(conn)
}

fn write_staged(
    db_path: &Path,
    sealed: Sealed,
    total: u64,
    mut progress: ProgressFn,
    halt: Halt<'_>,
) -> Result<ImportCounts, StoreError> {
    let conn = import_connection(db_path)?;
    let (tx, rx) = sync_channel::<Result<Group, StoreError>>(2);
    let loader = std::thread::Builder::new()
        .name("cardcheck-import-load".into())
        .spawn(move || load_groups(sealed, &tx))
        .map_err(|e| io_err("cannot start the loader thread", e))?;
    let outcome = write_groups(&conn, &rx, total, &mut progress, halt);
    // Also ends a loader that is still reading buckets (a stop): its directory goes.
    drop(rx);
    let _ = loader.join();
    if outcome.is_ok() {
        // Best effort: fold the WAL back into the database file and shrink it.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    outcome
}

fn write_groups(
    conn: &Connection,
    rx: &Receiver<Result<Group, StoreError>>,
    total: u64,
    progress: &mut ProgressFn,
    halt: Halt<'_>,
) -> Result<ImportCounts, StoreError> {
    let now = now_unix();
    let mut writer = RowWriter::new(conn).map_err(db_err)?;
    let mut counts = ImportCounts::default();
    // Counts and progress as of the last commit.
    let mut committed = (ImportCounts::default(), 0u64);
    let mut written = 0u64;
    let mut in_tx = 0u64;
    let mut masked = String::with_capacity(19);
    let result = (|| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        'groups: for group in rx {
            let (rows, dups) = group?;
            for row in &rows {
                // Any row boundary is a clean point: the COMMIT below makes it one.
                if halt.stop.load(Ordering::Relaxed) {
                    halt.stopped.store(true, Ordering::Relaxed);
                    break 'groups;
                }
                row.masked_into(&mut masked);
                let outcome = writer.put(&RegistryRow {
                    card_hash: &row.card_hash,
                    name_hash: &row.name_hash,
                    masked: &masked,
                    status: row.status_word(),
                    updated_at: now,
                })?;
                match outcome {
                    PutOutcome::Inserted => counts.inserted += 1,
                    PutOutcome::Updated => counts.updated += 1,
                    PutOutcome::Unchanged => counts.unchanged += 1,
                }
                written += 1;
                in_tx += 1;
                if in_tx >= COMMIT_EVERY {
                    conn.execute_batch("COMMIT; BEGIN IMMEDIATE")
                        .map_err(db_err)?;
                    in_tx = 0;
                    committed = (counts, written);
                    progress(ImportProgress { written, total });
                }
            }
            // Counted once the group's surviving rows are written, so that a stop
            // inside a group does not count its duplicates as done.
            counts.duplicates += dups;
            written += dups;
        }
        conn.execute_batch("COMMIT").map_err(db_err)?;
        committed = (counts, written);
        progress(ImportProgress { written, total });
        Ok(())
    })();
    match result {
        Ok(()) => Ok(counts),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let (done, rows) = committed;
            tracing::warn!(
                committed_rows = rows,
                inserted = done.inserted,
                updated = done.updated,
                "registry import stopped; the committed rows stay, run the import again to finish"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(first: u8, n: u8, status: u8) -> Staged {
        let mut card_hash = [first; 16];
        card_hash[15] = n;
        Staged {
            card_hash,
            name_hash: [n; 16],
            bin6: 622_576,
            last4: 88,
            len: 16,
            status,
        }
    }

    #[test]
    fn staged_rows_round_trip_and_mask_like_card_numbers() {
        let r = Staged {
            card_hash: [1; 16],
            name_hash: [2; 16],
            bin6: 4_055,
            last4: 7,
            len: 19,
            status: 11,
        };
        let mut buf = [0u8; RECORD_BYTES];
        r.encode(&mut buf);
        assert_eq!(Staged::decode(&buf), r);
        let mut m = String::new();
        r.masked_into(&mut m);
        assert_eq!(m, "004055*********0007");
        assert_eq!(r.status_word(), "declined");
        let card = cardcheck_domain::CardNumber::parse("6225768888888888").unwrap();
        let record = RegistryRecord {
            card: card.clone(),
            name: cardcheck_domain::CardholderName::parse("张三").unwrap(),
            status: CardStatus::Lost,
        };
        let s = Staged::new(&MasterKey::from_bytes(&[3; 32]), &record);
        s.masked_into(&mut m);
        assert_eq!(m, card.masked());
        assert_eq!(s.status_word(), "lost");
    }

    #[test]
    fn staging_directory_names_give_their_pid() {
        assert_eq!(staging_pid("registry-import-123-0.tmp"), Some(123));
        assert_eq!(staging_pid("registry-import-123-17.tmp"), Some(123));
        for name in [
            "registry-import-123.tmp",
            "registry-import--0.tmp",
            "registry-import-+1-0.tmp",
            "registry-import-1-0.tmpx",
            "registry.db",
        ] {
            assert_eq!(staging_pid(name), None, "{name}");
        }
    }

    #[test]
    fn the_last_row_for_a_card_wins() {
        let mut rows = vec![row(9, 1, 0), row(1, 1, 0), row(9, 1, 5), row(1, 2, 0)];
        rows.push(row(9, 1, 7));
        assert_eq!(sort_and_dedup(&mut rows), 2);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].status, 7);
        assert!(rows.windows(2).all(|w| w[0].card_hash < w[1].card_hash));
    }
}
