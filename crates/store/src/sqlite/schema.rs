//! The embedded schema and its migrations (`PRAGMA user_version` is the version).
//!
//! Append a migration to [`MIGRATIONS`]; never edit one that has shipped.

use rusqlite::{Connection, Transaction};

/// One schema step: SQL, or code where SQL cannot say it.
enum Migration {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> Result<(), String>),
}
use Migration::{Code, Sql};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1: accounts, credentials, registry, attempts, ledger, server keys.
    Sql("
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE accounts (
        name           TEXT PRIMARY KEY,
        status         TEXT NOT NULL,
        qps            INTEGER NOT NULL,
        daily_attempts INTEGER NOT NULL,
        created_at     INTEGER NOT NULL
    );
    CREATE TABLE credentials (
        secret_id      TEXT PRIMARY KEY,
        account        TEXT NOT NULL REFERENCES accounts(name),
        secret_key_enc BLOB NOT NULL,
        kind           TEXT NOT NULL,
        token_sha256   BLOB,
        expires_at     INTEGER,
        revoked_at     INTEGER,
        created_at     INTEGER NOT NULL
    );
    CREATE INDEX credentials_account ON credentials(account);
    -- verification.md §3: keyed hashes only, never the card number or the name.
    CREATE TABLE registry (
        card_hash  BLOB PRIMARY KEY,
        name_hash  BLOB NOT NULL,
        masked     TEXT NOT NULL,
        status     TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE attempts (
        account   TEXT NOT NULL,
        card_hash BLOB NOT NULL,
        day       INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (account, card_hash, day)
    ) WITHOUT ROWID;
    CREATE TABLE ledger (
        id          INTEGER PRIMARY KEY,
        request_id  TEXT NOT NULL UNIQUE,
        account     TEXT NOT NULL,
        secret_id   TEXT NOT NULL,
        action      TEXT NOT NULL,
        result      INTEGER NOT NULL,
        billed      INTEGER NOT NULL,
        masked_card TEXT,
        latency_us  INTEGER NOT NULL,
        ts_ms       INTEGER NOT NULL,
        day         INTEGER NOT NULL
    );
    CREATE INDEX ledger_account_day ON ledger(account, day);
    CREATE TABLE server_keys (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        blob BLOB NOT NULL
    );
    "),
    // 2: the append-only audit log of administrative actions (issue 9; crate::audit).
    // Ids are assigned by the writer (last + 1); the triggers refuse any change to a
    // stored row and any insert that is not the next id (which also stops `INSERT OR
    // REPLACE`, whose implicit delete does not fire delete triggers).
    Sql("
    CREATE TABLE audit (
        id        INTEGER PRIMARY KEY,
        ts_ms     INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        target    TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash      BLOB NOT NULL
    );
    CREATE INDEX audit_ts ON audit(ts_ms);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN
        SELECT RAISE(ABORT, 'audit log is append-only');
    END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN
        SELECT RAISE(ABORT, 'audit log is append-only');
    END;
    CREATE TRIGGER audit_append_in_sequence BEFORE INSERT ON audit
    WHEN NEW.id IS NOT (SELECT coalesce(max(id), 0) + 1 FROM audit)
    BEGIN
        SELECT RAISE(ABORT, 'audit log is append-only');
    END;
    "),
    // 3: the registry keyed by an integer slot derived from the card hash, so that its
    // interior B-tree pages stay cached and a lookup reads one leaf (super::registry).
    Code(super::registry::migrate_to_slots),
];

/// The ledger file's migrations (`ledger.db`, [`super::ledger`]): the request path's
/// writes live in their own file, so that its commits do not invalidate the page caches
/// of the connections that read the registry and the credentials (a commit to a WAL
/// database resets every other connection's cache of that file: issue 10 profile).
/// Migration 1's `ledger` and `attempts` tables in the main file are moved here when a
/// store opens (`ledger::move_legacy_tables`).
const LEDGER_MIGRATIONS: &[Migration] = &[
    // 1: the usage ledger. `card_hash` (a keyed hash, never the card) is set on the rows
    // of requests that counted as an attempt (verification.md §2 step 4): daily attempt
    // counts are the number of such rows, so a count is durable exactly when the answer
    // is. `attempt_base` holds counts carried over from the former `attempts` table.
    Sql("
    CREATE TABLE ledger (
        id          INTEGER PRIMARY KEY,
        request_id  TEXT NOT NULL UNIQUE,
        account     TEXT NOT NULL,
        secret_id   TEXT NOT NULL,
        action      TEXT NOT NULL,
        result      INTEGER NOT NULL,
        billed      INTEGER NOT NULL,
        masked_card TEXT,
        latency_us  INTEGER NOT NULL,
        ts_ms       INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        card_hash   BLOB
    );
    CREATE INDEX ledger_account_day ON ledger(account, day);
    CREATE TABLE attempt_base (
        account   TEXT NOT NULL,
        card_hash BLOB NOT NULL,
        day       INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (account, card_hash, day)
    ) WITHOUT ROWID;
    "),
];

/// Brings the main database up to this build's schema, each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    apply(conn, MIGRATIONS, "database")
}

/// Brings the ledger file up to date, as [`migrate`] does the main database.
pub fn migrate_ledger(conn: &mut Connection) -> Result<(), String> {
    apply(conn, LEDGER_MIGRATIONS, "ledger file")
}

/// The database's schema version (0: nothing created yet).
pub fn version(conn: &Connection) -> Result<usize, String> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "negative schema version".to_string())
}

fn apply(conn: &mut Connection, migrations: &[Migration], what: &str) -> Result<(), String> {
    let current = migrations.len();
    let version = version(conn)?;
    if version > current {
        return Err(format!(
            "the {what} has schema version {version}, newer than this build's {current}; upgrade cardcheck"
        ));
    }
    for (index, step) in migrations.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        match step {
            Sql(sql) => tx.execute_batch(sql).map_err(|e| e.to_string())?,
            Code(run) => run(&tx)?,
        }
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    /// An in-memory database at schema version 2: the registry keyed by card hash.
    fn version_2_database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn, &MIGRATIONS[..2], "database").unwrap();
        conn
    }

    /// The single integer `sql` returns.
    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    const RECLAIM_PENDING_ROWS: &str =
        "SELECT count(*) FROM meta WHERE key = 'registry_reclaim_pending'";

    /// A registry written by a build before migration 3 (keyed by card hash) is there,
    /// row for row, after it, each row at its card's home slot.
    #[test]
    fn a_registry_keyed_by_card_hash_moves_to_slots_row_for_row() {
        let mut conn = version_2_database();
        let rows: Vec<([u8; 16], [u8; 16], &str)> = vec![
            ([0x10; 16], [1; 16], "active"),
            ([0xf0; 16], [2; 16], "lost"),
            ([0x80; 16], [3; 16], "fraud"),
        ];
        for (card, name, status) in &rows {
            conn.execute(
                "INSERT INTO registry (card_hash, name_hash, masked, status, updated_at) \
                 VALUES (?1, ?2, '622576******8888', ?3, 7)",
                rusqlite::params![card.as_slice(), name.as_slice(), status],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        assert_eq!(count(&conn, "PRAGMA user_version"), MIGRATIONS.len() as i64);
        for (card, name, status) in &rows {
            let (first, last) = super::super::registry::lookup_range(card);
            let (slot, stored_name, stored_status, updated_at): (i64, Vec<u8>, String, i64) = conn
                .query_row(
                    "SELECT slot, name_hash, status, updated_at FROM registry \
                     WHERE slot BETWEEN ?1 AND ?2 AND card_hash = ?3",
                    rusqlite::params![first, last, card.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            assert_eq!(slot, first);
            assert_eq!(stored_name, name.to_vec());
            assert_eq!(stored_status, *status);
            assert_eq!(updated_at, 7);
        }
        assert_eq!(count(&conn, "SELECT count(*) FROM registry"), 3);
        let leftovers = count(
            &conn,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'registry_by_hash'",
        );
        assert_eq!(leftovers, 0);
    }

    /// Migration 3 leaves the old copy's pages free inside the file (half of a large
    /// registry); opening the store gives them back.
    #[test]
    fn a_migrated_registry_gives_back_the_old_copys_space() {
        let mut conn = version_2_database();
        {
            let tx = conn.transaction().unwrap();
            let mut insert = tx
                .prepare(
                    "INSERT INTO registry (card_hash, name_hash, masked, status, updated_at) \
                     VALUES (?1, ?2, '622576******8888', 'active', 7)",
                )
                .unwrap();
            for i in 0u32..60_000 {
                let mut card = [0u8; 16];
                card[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                card[4..8].copy_from_slice(&i.to_be_bytes());
                insert
                    .execute(rusqlite::params![card.as_slice(), [1u8; 16].as_slice()])
                    .unwrap();
            }
            drop(insert);
            tx.commit().unwrap();
        }
        migrate(&mut conn).unwrap();
        let (free, pages) = (
            count(&conn, "PRAGMA freelist_count"),
            count(&conn, "PRAGMA page_count"),
        );
        assert!(free * 4 >= pages, "{free} of {pages} pages free");
        super::super::registry::reclaim_after_conversion(&conn, Path::new("test.db"));
        assert_eq!(count(&conn, "PRAGMA freelist_count"), 0);
        // Done once: the marker is gone.
        assert_eq!(count(&conn, RECLAIM_PENDING_ROWS), 0);
        assert!(count(&conn, "PRAGMA page_count") <= pages - free);
        assert_eq!(count(&conn, "SELECT count(*) FROM registry"), 60_000);
    }

    /// A reclaim that fails (on a full disk; here: a statement still in progress on the
    /// connection) must not stop the store from opening, and is not retried at every
    /// open. Broke: the VACUUM's error made every later open fail.
    #[test]
    fn a_failed_reclaim_after_conversion_leaves_the_store_usable_and_is_not_retried() {
        let mut conn = version_2_database();
        conn.execute(
            "INSERT INTO registry (card_hash, name_hash, masked, status, updated_at) \
             VALUES (x'00112233445566778899aabbccddeeff', x'01', '622576******8888', 'lost', 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        {
            let mut busy = conn.prepare("SELECT slot FROM registry").unwrap();
            let mut rows = busy.query([]).unwrap();
            assert!(rows.next().unwrap().is_some());
            conn.execute_batch("VACUUM")
                .expect_err("VACUUM must fail for this test");
            super::super::registry::reclaim_after_conversion(&conn, Path::new("test.db"));
        }
        assert_eq!(count(&conn, RECLAIM_PENDING_ROWS), 0);
        let status: String = conn
            .query_row("SELECT status FROM registry", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "lost");
    }
}
