//! The embedded schema and its migrations (`PRAGMA user_version` is the version).
//!
//! Append a migration to [`MIGRATIONS`]; never edit one that has shipped.

use rusqlite::Connection;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, credentials, registry, attempts, ledger, server keys.
    "
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
    ",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: usize = MIGRATIONS.len();

/// Brings the database up to [`CURRENT_VERSION`], each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "negative schema version".to_string())?;
    if version > CURRENT_VERSION {
        return Err(format!(
            "the database has schema version {version}, newer than this build's {CURRENT_VERSION}; upgrade cardcheck"
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql).map_err(|e| e.to_string())?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}
