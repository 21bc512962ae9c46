//! The audit log in the embedded store (schema migration 2, [`crate::audit`]).
//!
//! Appends go through the admin connection in an `IMMEDIATE` transaction: it takes
//! SQLite's write lock before reading the last entry, so a `cardcheck` command and a
//! running server (or two commands) appending at the same time are serialised and
//! the chain cannot fork. Triggers refuse `UPDATE` and `DELETE` on the table and any
//! insert that is not the next id.

use async_trait::async_trait;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, db_err, lock};
use crate::StoreError;
use crate::audit::{
    AuditEntry, AuditEvent, AuditFilter, AuditLog, GENESIS_HASH, hash_column, now_ms,
};

/// A stored id; a negative one (tampering) becomes 0, which never verifies.
fn id_column(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

fn sql_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Corrupt("audit id out of range".into()))
}

/// An entry from `SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash`.
pub(crate) fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: id_column(r.get(0)?),
        ts_ms: r.get(1)?,
        event: AuditEvent {
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            detail: r.get(5)?,
        },
        prev_hash: hash_column(&r.get::<_, Vec<u8>>(6)?),
        hash: hash_column(&r.get::<_, Vec<u8>>(7)?),
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let event = event.sanitized()?;
        let mut conn = lock(&self.admin);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        let (id, prev_hash) = match last {
            Some((id, hash)) => (id_column(id) + 1, hash_column(&hash)),
            None => (1, GENESIS_HASH),
        };
        let entry = AuditEntry::chained(id, now_ms(), event, prev_hash);
        tx.execute(
            "INSERT INTO audit (id, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                sql_id(entry.id)?,
                entry.ts_ms,
                entry.event.actor,
                entry.event.action,
                entry.event.target,
                entry.event.detail,
                entry.prev_hash.as_slice(),
                entry.hash.as_slice(),
            ],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(entry)
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let after = sql_id(filter.after_id.unwrap_or(0))?;
        self.with_reader(|c| list_entries(c, filter, after))
    }
}

/// Entries matching `filter` (with `after`, its `after_id` as stored), oldest first.
fn list_entries(
    c: &Connection,
    filter: &AuditFilter,
    after: i64,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let order = if filter.latest { "DESC" } else { "ASC" };
    let mut stmt = c.prepare(&format!(
        "SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit \
         WHERE (?1 IS NULL OR ts_ms >= ?1) AND (?2 IS NULL OR ts_ms < ?2) \
         AND (?3 IS NULL OR substr(action, 1, length(?3)) = ?3) AND id > ?4 \
         ORDER BY id {order} LIMIT ?5"
    ))?;
    let rows = stmt.query_map(
        params![
            filter.since_ms,
            filter.until_ms,
            filter.action_prefix,
            after,
            filter.sql_limit()
        ],
        entry_from_row,
    )?;
    let mut entries = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if filter.latest {
        entries.reverse();
    }
    Ok(entries)
}

/// Whether `conn` reads a database with the audit table (a probe before trusting it).
fn reads_audit_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))
        .map(|_| ())
}

/// The audit log of an embedded data directory, opened read-only: `audit list` and
/// `audit verify` read it without writing anything, so they work on a read-only copy
/// (docs/operations.md: anyone can verify a copy). They used to open the whole store,
/// which writes (migrations, the ledger's threads) and failed with "attempt to write a
/// readonly database" on a read-only directory.
pub struct ReadOnlyAudit {
    conn: Mutex<Connection>,
}

impl ReadOnlyAudit {
    /// Opens `cardcheck.db` in `data_dir` read-only. A WAL database needs its `-shm`
    /// file; in a directory that cannot hold one, the file is read as it is on disk
    /// (`immutable=1`), which is refused when a non-empty `-wal` file beside it holds
    /// entries that reading would leave out.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(super::DATABASE_FILE);
        let uri = |extra: &str| format!("file:{}?mode=ro{extra}", uri_path(&path));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match Connection::open_with_flags(uri(""), flags) {
            Ok(conn) if reads_audit_table(&conn).is_ok() => conn,
            _ => open_immutable(&path, &uri("&immutable=1"), flags)?,
        };
        Ok(ReadOnlyAudit {
            conn: Mutex::new(conn),
        })
    }
}

/// `path` read as it is on disk (`uri` with `immutable=1`), for a directory that cannot
/// hold the `-shm` file. Refused when a non-empty `-wal` file lies beside it: the
/// entries in it would be left out, and the verdict would say "intact" about a
/// shorter chain.
fn open_immutable(path: &Path, uri: &str, flags: OpenFlags) -> Result<Connection, StoreError> {
    let wal = path.with_file_name(format!("{}-wal", super::DATABASE_FILE));
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::Io(format!(
            "cannot read {} read-only: its {} holds recent writes, and the directory \
             cannot hold the -shm file SQLite needs to read them; verify a writable copy \
             of both files, or the data directory itself",
            path.display(),
            wal.display()
        )));
    }
    let conn = Connection::open_with_flags(uri, flags).map_err(super::file_err(path))?;
    reads_audit_table(&conn).map_err(super::file_err(path))?;
    Ok(conn)
}

/// A file path as the path of a `file:` URI: `%`, `?` and `#` percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait]
impl AuditLog for ReadOnlyAudit {
    async fn record(&self, _event: AuditEvent) -> Result<AuditEntry, StoreError> {
        Err(StoreError::Invalid(
            "the audit log was opened read-only".into(),
        ))
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let after = sql_id(filter.after_id.unwrap_or(0))?;
        list_entries(&lock(&self.conn), filter, after).map_err(db_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;

    /// `audit verify` on a read-only copy with a `-wal` file read the database file
    /// alone (`immutable=1`) and called a shorter chain intact.
    #[test]
    fn reading_as_on_disk_is_refused_while_a_wal_holds_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DATABASE_FILE);
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE audit (id INTEGER PRIMARY KEY); INSERT INTO audit VALUES (1);",
            )
            .unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}?mode=ro&immutable=1", uri_path(&path));
        let err = open_immutable(&path, &uri, flags).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("holds recent writes"), "{err}");
        // Checkpointed into the file: nothing is left out, so it is read.
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        open_immutable(&path, &uri, flags).unwrap();
    }
}
