//! The ledger file (`ledger.db`) and its writer: the request path's only writes.
//!
//! One writer thread owns the write connection. It blocks for one job, drains whatever
//! else is queued and commits it all in one transaction (group commit), so a reply that
//! waits for its ledger row costs a share of one fsync, not one each (design.md "Hot
//! path rules"; `synchronous = FULL`, so a committed row survives power loss).
//!
//! Why a file of its own: a commit to a WAL database resets the page cache of every
//! other connection to that file, so with the ledger beside the registry each lookup
//! re-read its B-tree pages from the OS (issue 10 profile). Why daily attempt counts
//! live in ledger rows (`card_hash` on the rows of counted requests) instead of a table
//! of counters: an upsert per request dirtied a random page per request in every
//! commit. Why checkpoints run on their own thread: SQLite's automatic checkpoint runs
//! inside the commit that crosses 1000 WAL pages and stalled the replies waiting on it
//! (p99 3.3 ms at 4 connections; [`WAL_AUTOCHECKPOINT_PAGES`] has the figures).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{ReaderPool, db_err, lock, open_connection, schema};
use crate::secrets::{KEYED_HASH_LEN, KeyedHash};
use crate::stats::LedgerWriterStats;
use crate::{LedgerEntry, StoreError, UsageFilter, UsageRow};

/// The ledger file inside the data directory.
pub const LEDGER_FILE: &str = "ledger.db";
/// Most rows committed in one writer transaction.
const GROUP_COMMIT_MAX: usize = 512;
/// How often the checkpointer copies committed WAL pages into the ledger file (each page
/// once per checkpoint, however often it changed in between).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB) after which a commit checkpoints inline, so that the WAL restarts
/// from its beginning: under continuous writes a PASSIVE checkpoint never catches up
/// with the writer, and a WAL that only grows makes every fsync also journal the file's
/// new size. The checkpointer has copied nearly everything by then, so the inline one
/// is short. Measured on this layout (`cardcheck bench`, registry-10k, p99): at 4
/// connections, 1000 pages (SQLite's default) without the checkpointer 4.0 ms, 1000
/// with it 5.9 ms, 8192 with it 0.58 ms, 16384 with it 0.60 ms; no inline checkpoint
/// at all let the WAL grow to 280 MB in 5 s, at 7.0–7.8k req/s against 12.5–13.7k
/// with 8192 or 16384; at 64 connections, 8192 gave 25.3k req/s at 6.3 ms, 16384 32.9k at
/// 5.9 ms. The WAL file stays at most about 64 MiB.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16384;
/// Idle reader connections kept open (usage reports, attempt-count loads).
const READER_POOL_MAX: usize = 4;

/// A job for the writer thread.
enum WriteJob {
    Row {
        entry: LedgerEntry,
        /// The keyed hash of the card, when the request counted as an attempt.
        card_hash: Option<KeyedHash>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Flush(oneshot::Sender<()>),
}

/// The open ledger file: its writer and checkpointer threads and a few readers.
pub(super) struct LedgerFile {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropping the sender stops the checkpointer.
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    readers: ReaderPool,
    pub(super) stats: Arc<LedgerWriterStats>,
}

impl LedgerFile {
    /// Opens (creating on first use) `ledger.db` in `data_dir` and starts its threads.
    pub(super) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LEDGER_FILE);
        let mut conn = open_connection(&path)?;
        schema::migrate_ledger(&mut conn)
            .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
        // Every answer writes here: refuse at start, not with an error per request.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(db_err)? {
            return Err(StoreError::Io(format!(
                "{} is read-only: the server records every answer there",
                path.display()
            )));
        }
        // Checkpoints are the checkpointer thread's job, never a commit's.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(db_err)?;

        let stats = Arc::new(LedgerWriterStats::default());
        let (tx, rx) = mpsc::channel();
        let writer_stats = Arc::clone(&stats);
        let writer_thread = std::thread::Builder::new()
            .name("cardcheck-ledger-writer".into())
            .spawn(move || run_writer(conn, rx, &writer_stats))
            .map_err(|e| StoreError::Io(format!("cannot start the ledger writer: {e}")))?;

        let checkpoint_conn = open_connection(&path)?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("cardcheck-ledger-checkpoint".into())
            .spawn(move || run_checkpointer(&checkpoint_conn, &stop_rx))
            .map_err(|e| StoreError::Io(format!("cannot start the ledger checkpointer: {e}")))?;

        let readers = ReaderPool::new(path.clone(), READER_POOL_MAX, open_connection);
        Ok(LedgerFile {
            path,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(writer_thread)),
            checkpointer: Mutex::new(Some((stop_tx, checkpointer))),
            readers,
            stats,
        })
    }

    /// The ledger file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Commits everything queued, stops both threads and checkpoints. Idempotent.
    pub(super) fn close(&self) {
        drop(lock(&self.writer).take());
        if let Some(handle) = lock(&self.writer_thread).take() {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = lock(&self.checkpointer).take() {
            drop(stop);
            let _ = handle.join();
        }
    }

    fn send(&self, job: WriteJob) -> Result<(), StoreError> {
        match lock(&self.writer).as_ref() {
            Some(tx) => tx
                .send(job)
                .map_err(|_| StoreError::Database("the ledger writer has stopped".into())),
            None => Err(StoreError::Database("the store is closed".into())),
        }
    }

    /// Appends one row; returns once it is committed.
    pub(super) async fn append(
        &self,
        entry: LedgerEntry,
        card_hash: Option<KeyedHash>,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteJob::Row {
            entry,
            card_hash,
            reply,
        })?;
        rx.await
            .map_err(|_| StoreError::Database("the ledger writer has stopped".into()))?
    }

    /// Waits until everything queued before this call is committed.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteJob::Flush(tx))?;
        rx.await
            .map_err(|_| StoreError::Database("the ledger writer has stopped".into()))
    }

    pub(super) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.readers.with(f)
    }

    /// Attempts per card for one account and Beijing day: the committed ledger rows
    /// that counted, plus any count carried over from the former `attempts` table.
    pub(super) fn attempt_counts(
        &self,
        account: &str,
        day: i32,
    ) -> Result<HashMap<KeyedHash, u32>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT card_hash, sum(n) FROM ( \
                   SELECT card_hash, count(*) AS n FROM ledger \
                   WHERE account = ?1 AND day = ?2 AND card_hash IS NOT NULL GROUP BY card_hash \
                   UNION ALL \
                   SELECT card_hash, count AS n FROM attempt_base WHERE account = ?1 AND day = ?2 \
                 ) GROUP BY card_hash",
            )?;
            let mut rows = stmt.query(params![account, day])?;
            let mut counts = HashMap::new();
            while let Some(row) = rows.next()? {
                let hash = row.get_ref(0)?.as_blob()?;
                let n: i64 = row.get(1)?;
                // A hash of another length is not one this store wrote: skip it.
                if let Ok(hash) = <[u8; KEYED_HASH_LEN]>::try_from(hash) {
                    counts.insert(hash, u32::try_from(n).unwrap_or(u32::MAX));
                }
            }
            Ok(counts)
        })
    }

    pub(super) fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT account, day, result, billed, count(*) FROM ledger \
                 WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR day >= ?2) \
                 AND (?3 IS NULL OR day <= ?3) \
                 GROUP BY account, day, result, billed ORDER BY account, day, result DESC",
            )?;
            let rows = stmt.query_map(
                params![filter.account, filter.from_day, filter.to_day],
                |r| {
                    Ok(UsageRow {
                        account: r.get(0)?,
                        day: r.get(1)?,
                        result: r.get(2)?,
                        billed: r.get(3)?,
                        count: r.get::<_, i64>(4)? as u64,
                    })
                },
            )?;
            rows.collect()
        })
    }

    pub(super) fn count_request(&self, request_id: &str) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            c.query_row(
                "SELECT count(*) FROM ledger WHERE request_id = ?1",
                [request_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }
}

impl Drop for LedgerFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// (account, card hash, Beijing day, attempts).
pub type AttemptCountRow = (String, Vec<u8>, i32, i64);

/// Attempt counts of every account and card from Beijing day `from_day` on (for
/// `cardcheck migrate`, which carries them into Redis).
pub fn attempt_counts_since(
    conn: &Connection,
    from_day: i32,
) -> rusqlite::Result<Vec<AttemptCountRow>> {
    let mut stmt = conn.prepare(
        "SELECT account, card_hash, day, sum(n) FROM ( \
           SELECT account, card_hash, day, count(*) AS n FROM ledger \
           WHERE day >= ?1 AND card_hash IS NOT NULL GROUP BY account, card_hash, day \
           UNION ALL \
           SELECT account, card_hash, day, count AS n FROM attempt_base WHERE day >= ?1 \
         ) GROUP BY account, card_hash, day",
    )?;
    let rows = stmt.query_map([from_day], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

/// Moves migration 1's `ledger` and `attempts` tables from the main database into the
/// ledger file (data directories created before the ledger had a file of its own).
/// Repeating a move that was cut short is harmless: rows are keyed by RequestId and
/// counts by (account, card, day).
pub(super) fn move_legacy_tables(main: &Connection, ledger_path: &Path) -> Result<(), StoreError> {
    let legacy: Option<String> = main
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'ledger'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    if legacy.is_none() {
        return Ok(());
    }
    let path = ledger_path
        .to_str()
        .ok_or_else(|| StoreError::Io("the data directory path is not UTF-8".into()))?;
    main.execute("ATTACH DATABASE ?1 AS ledger_file", [path])
        .map_err(db_err)?;
    let moved = main.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT OR IGNORE INTO ledger_file.ledger (request_id, account, secret_id, action, \
           result, billed, masked_card, latency_us, ts_ms, day) \
           SELECT request_id, account, secret_id, action, result, billed, masked_card, \
           latency_us, ts_ms, day FROM main.ledger ORDER BY id;
         INSERT OR IGNORE INTO ledger_file.attempt_base (account, card_hash, day, count) \
           SELECT account, card_hash, day, count FROM main.attempts;
         DROP TABLE main.ledger;
         DROP TABLE main.attempts;
         COMMIT;",
    );
    if moved.is_err() {
        let _ = main.execute_batch("ROLLBACK");
    }
    let detached = main.execute("DETACH DATABASE ledger_file", []);
    moved.map_err(db_err)?;
    detached.map(|_| ()).map_err(db_err)
}

/// The checkpointer: every [`CHECKPOINT_INTERVAL`] copies what the WAL holds into the
/// database file (PASSIVE: never waits for readers or the writer), until stopped. A
/// failure is logged once, then once every 600 attempts (a minute), not ten times a
/// second.
fn run_checkpointer(conn: &Connection, stop: &mpsc::Receiver<()>) {
    let mut failures: u64 = 0;
    loop {
        match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped: the last connection to close checkpoints what is left.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => failures = 0,
            Err(e) => {
                if failures.is_multiple_of(600) {
                    tracing::warn!(error = %e, failures = failures + 1, "ledger checkpoint failed; retrying");
                }
                failures += 1;
            }
        }
    }
}

/// The writer thread: blocks for one job, then takes whatever else is queued and
/// commits it all in one transaction before answering.
fn run_writer(mut conn: Connection, rx: mpsc::Receiver<WriteJob>, stats: &LedgerWriterStats) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let rows = batch
            .iter()
            .filter(|j| matches!(j, WriteJob::Row { .. }))
            .count();
        // A batch of flush markers only writes nothing.
        let outcome = if rows > 0 {
            write_batch(&mut conn, &batch)
        } else {
            Ok(())
        };
        if rows > 0 {
            if outcome.is_ok() {
                stats.committed(rows, started.elapsed().as_secs_f64());
            } else {
                stats.failed();
            }
        }
        for job in batch {
            match job {
                WriteJob::Row { reply, .. } => {
                    let _ = reply.send(outcome.clone().map_err(StoreError::Database));
                }
                WriteJob::Flush(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        if let Err(e) = outcome {
            tracing::error!(error = %e, "ledger batch was not committed");
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[WriteJob]) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO ledger (request_id, account, secret_id, action, result, billed, \
                 masked_card, latency_us, ts_ms, day, card_hash) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) ON CONFLICT (request_id) DO NOTHING",
            )
            .map_err(|e| e.to_string())?;
        for job in batch {
            if let WriteJob::Row {
                entry: e,
                card_hash,
                ..
            } = job
            {
                insert
                    .execute(params![
                        e.request_id,
                        e.account,
                        e.secret_id,
                        e.action,
                        e.result.code(),
                        e.result.billed(),
                        e.masked_card,
                        e.latency_us as i64,
                        e.ts_ms,
                        e.day,
                        card_hash.as_ref().map(|h| h.as_slice()),
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())
}
