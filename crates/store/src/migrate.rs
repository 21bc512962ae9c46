//! `cardcheck migrate`: copies an embedded data directory into PostgreSQL + Redis (an
//! operator's way from one machine to many; docs/scale-out.md).
//!
//! Rows are copied as stored: sealed SecretKeys, registry keyed hashes and the sealed
//! server key ring stay valid because the PostgreSQL deployment uses the same master
//! key (the data directory's `CARDCHECK_MASTER_KEY` or `master.key`; a database that
//! was initialised with another key is refused). Nothing is decrypted or re-hashed, so
//! no card number or name is ever needed.
//!
//! Re-running is safe: accounts, credentials, registry cards and ledger rows already in
//! PostgreSQL are kept (not overwritten); the server key ring of the data directory
//! replaces the database's, because it is the public key the clients already have.
//! Attempt counters of today and yesterday (Beijing) are raised in Redis to at least
//! the embedded counts. The audit log is copied as it is (ids, times and hashes, so
//! its chain still verifies) when the deployment's audit log is empty and the data
//! directory's chain verifies; otherwise it is left alone (two chains cannot be merged,
//! a broken one stays where it broke) and the report says so.

use std::path::Path;

use cardcheck_domain::ResultCode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::postgres::{
    PostgresOptions, RawRegistryRow, copy_registry_rows, insert_ledger, pg_err, within,
};
use crate::secrets::{KEYED_HASH_LEN, KeyedHash, MasterKey};
use crate::sqlite::{DATABASE_FILE, SqliteStore};
use crate::{LedgerEntry, StoreError};

/// A ledger row as SQLite returns it.
type RawLedgerRow = (
    i64,
    String,
    String,
    String,
    String,
    i32,
    Option<String>,
    i64,
    i64,
    i32,
);

/// Rows read from SQLite per round.
const CHUNK: usize = 5_000;

/// What a migration copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Accounts copied (new in PostgreSQL) / present in the data directory.
    pub accounts: Copied,
    /// Credentials.
    pub credentials: Copied,
    /// Registry records.
    pub registry: Copied,
    /// Ledger rows.
    pub ledger: Copied,
    /// Attempt counters of today and yesterday raised in Redis / read.
    pub attempts: Copied,
    /// Audit log entries: all or none (copied only into an empty audit log, and only
    /// when the data directory's chain verifies).
    pub audit: Copied,
    /// Why the data directory's audit log was not copied although the deployment's
    /// was empty: its chain is broken (`audit log broken at entry N: …`).
    pub audit_broken: Option<String>,
    /// `none` (the data directory had none), `copied`, `identical` or `replaced`.
    pub server_keys: &'static str,
    /// Whether the master key came from `CARDCHECK_MASTER_KEY` (else `master.key`).
    pub master_key_from_env: bool,
}

/// Counts for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// Rows written to the target.
    pub copied: u64,
    /// Rows read from the data directory.
    pub read: u64,
}

fn sq(e: rusqlite::Error) -> StoreError {
    StoreError::Database(format!("SQLite: {e}"))
}

fn keyed_hash(bytes: &[u8]) -> Result<KeyedHash, StoreError> {
    <[u8; KEYED_HASH_LEN]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt("attempt counter card hash".into()))
}

/// Copies the embedded store in `data_dir` into the deployment described by
/// `options` (its `master_key` is ignored: the data directory's key is used).
pub async fn sqlite_to_postgres(
    data_dir: &Path,
    mut options: PostgresOptions,
) -> Result<MigrationReport, StoreError> {
    let db_path = data_dir.join(DATABASE_FILE);
    if !db_path.is_file() {
        return Err(StoreError::Invalid(format!(
            "no embedded store at {} (expected {DATABASE_FILE})",
            data_dir.display()
        )));
    }
    let master_key_from_env =
        std::env::var(crate::secrets::MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    let key = MasterKey::load_or_create(data_dir, false)?;
    // Opening checks the key against the data directory and brings its schema up to
    // date; closing commits anything queued.
    SqliteStore::open(data_dir)?.close();
    options.master_key = Some(key.clone());
    let (pg, redis) = options.open_parts().await?;
    redis.ping().await?;
    let deadline = pg.admin_timeout;
    let src =
        Connection::open_with_flags(&db_path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sq)?;
    let ledger_src = Connection::open_with_flags(
        data_dir.join(crate::sqlite::LEDGER_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(sq)?;
    let mut report = MigrationReport {
        master_key_from_env,
        ..MigrationReport::default()
    };

    // Accounts, then credentials (they reference accounts).
    let accounts: Vec<(String, String, i64, i64, i64)> = {
        let mut stmt = src
            .prepare(
                "SELECT name, status, qps, daily_attempts, created_at FROM accounts ORDER BY name",
            )
            .map_err(sq)?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sq)?
        .collect::<Result<_, _>>()
        .map_err(sq)?
    };
    report.accounts.read = accounts.len() as u64;
    report.accounts.copied = within(deadline, "migrate accounts", async {
        let mut client = pg.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut copied = 0;
        for (name, status, qps, daily, created) in &accounts {
            copied += tx
                .execute(
                    "INSERT INTO accounts (name, status, qps, daily_attempts, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    &[name, status, qps, daily, created],
                )
                .await
                .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(copied)
    })
    .await?;

    type CredRow = (
        String,
        String,
        Vec<u8>,
        String,
        Option<Vec<u8>>,
        Option<i64>,
        Option<i64>,
        i64,
    );
    let credentials: Vec<CredRow> = {
        let mut stmt = src
            .prepare(
                "SELECT secret_id, account, secret_key_enc, kind, token_sha256, expires_at, \
                 revoked_at, created_at FROM credentials ORDER BY secret_id",
            )
            .map_err(sq)?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .map_err(sq)?
        .collect::<Result<_, _>>()
        .map_err(sq)?
    };
    report.credentials.read = credentials.len() as u64;
    report.credentials.copied = within(deadline, "migrate credentials", async {
        let mut client = pg.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut copied = 0;
        for (id, account, sealed, kind, token, expires, revoked, created) in &credentials {
            copied += tx
                .execute(
                    "INSERT INTO credentials (secret_id, account, secret_key_enc, kind, token_sha256, \
                     expires_at, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (secret_id) DO NOTHING",
                    &[id, account, sealed, kind, token, expires, revoked, created],
                )
                .await
                .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(copied)
    })
    .await?;

    // The registry, in slot (= card hash) order, one COPY per chunk.
    let mut after_slot: i64 = -1;
    loop {
        let rows: Vec<(i64, RawRegistryRow)> = {
            let mut stmt = src
                .prepare_cached(
                    "SELECT slot, card_hash, name_hash, masked, status, updated_at FROM registry \
                     WHERE slot > ?1 ORDER BY slot LIMIT ?2",
                )
                .map_err(sq)?;
            stmt.query_map(params![after_slot, CHUNK as i64], |r| {
                Ok((
                    r.get(0)?,
                    RawRegistryRow {
                        card_hash: r.get(1)?,
                        name_hash: r.get(2)?,
                        masked: r.get(3)?,
                        status: r.get(4)?,
                        updated_at: r.get(5)?,
                    },
                ))
            })
            .map_err(sq)?
            .collect::<Result<_, _>>()
            .map_err(sq)?
        };
        let Some((last, _)) = rows.last() else { break };
        after_slot = *last;
        let rows: Vec<RawRegistryRow> = rows.into_iter().map(|(_, row)| row).collect();
        report.registry.read += rows.len() as u64;
        let (inserted, _) = within(deadline, "migrate registry", async {
            let mut client = pg.client().await?;
            copy_registry_rows(&mut client, &rows, false).await
        })
        .await?;
        report.registry.copied += inserted;
    }

    // The ledger, in id order.
    let mut after_id: i64 = 0;
    loop {
        let rows: Vec<(i64, LedgerEntry)> = {
            let mut stmt = ledger_src
                .prepare_cached(
                    "SELECT id, request_id, account, secret_id, action, result, masked_card, \
                     latency_us, ts_ms, day FROM ledger WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(sq)?;
            let raw: Vec<RawLedgerRow> = stmt
                .query_map(params![after_id, CHUNK as i64], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                })
                .map_err(sq)?
                .collect::<Result<_, _>>()
                .map_err(sq)?;
            raw.into_iter()
                .map(
                    |(
                        id,
                        request_id,
                        account,
                        secret_id,
                        action,
                        result,
                        masked,
                        latency,
                        ts,
                        day,
                    )| {
                        let result = ResultCode::from_code(result).ok_or_else(|| {
                            StoreError::Corrupt(format!("ledger row {id}: Result {result}"))
                        })?;
                        Ok((
                            id,
                            LedgerEntry {
                                request_id,
                                account,
                                secret_id,
                                action,
                                result,
                                masked_card: masked,
                                latency_us: u64::try_from(latency).unwrap_or(0),
                                ts_ms: ts,
                                day,
                                attempted_card: None,
                            },
                        ))
                    },
                )
                .collect::<Result<_, StoreError>>()?
        };
        let Some((last, _)) = rows.last() else { break };
        after_id = *last;
        report.ledger.read += rows.len() as u64;
        let entries: Vec<&LedgerEntry> = rows.iter().map(|(_, e)| e).collect();
        report.ledger.copied += within(
            deadline,
            "migrate ledger",
            insert_ledger(&pg.pool, &entries),
        )
        .await?;
    }

    // Attempt counters that still matter: today's and yesterday's (Beijing).
    let today = cardcheck_domain::beijing_day(crate::credentials::now_unix());
    let attempts =
        crate::sqlite::ledger::attempt_counts_since(&ledger_src, today - 1).map_err(sq)?;
    report.attempts.read = attempts.len() as u64;
    for (account, card_hash, day, count) in &attempts {
        let count = u32::try_from(*count).unwrap_or(u32::MAX);
        redis
            .raise_attempts(account, &keyed_hash(card_hash)?, *day, count)
            .await?;
        report.attempts.copied += 1;
    }

    // The audit log, verbatim, into an empty one only.
    let audit: Vec<crate::AuditEntry> = {
        let mut stmt = src
            .prepare(
                "SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit \
                 ORDER BY id",
            )
            .map_err(sq)?;
        stmt.query_map([], crate::sqlite::audit::entry_from_row)
            .map_err(sq)?
            .collect::<Result<_, _>>()
            .map_err(sq)?
    };
    report.audit.read = audit.len() as u64;
    // A broken chain (tampering in the data directory) cannot be appended in sequence,
    // and copying it would hide where it broke: it stays in the data directory.
    if let Err(broken) = crate::audit::verify_chain(&audit) {
        report.audit_broken = Some(broken.to_string());
    } else if !audit.is_empty() {
        let copied = within(deadline, "migrate audit log", async {
            let mut client = pg.client().await?;
            crate::postgres::audit::copy_entries(&mut client, &audit).await
        })
        .await?;
        if copied {
            report.audit.copied = report.audit.read;
        }
    }

    // The server key ring: the one the clients know wins.
    let source_ring: Option<Vec<u8>> = src
        .query_row("SELECT blob FROM server_keys WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sq)?;
    report.server_keys = match source_ring {
        None => "none",
        Some(sealed) => {
            let wanted: Zeroizing<Vec<u8>> = key.open_secret("server-keys", &sealed)?;
            let current = crate::ServerKeyStore::load_server_keys(pg.as_ref()).await?;
            let verdict = match current {
                None => "copied",
                Some(current) if current.as_slice() == wanted.as_slice() => "identical",
                Some(_) => "replaced",
            };
            if verdict != "identical" {
                within(deadline, "migrate server keys", async {
                    let client = pg.client().await?;
                    client
                        .execute(
                            "INSERT INTO server_keys (id, blob) VALUES (1, $1) \
                             ON CONFLICT (id) DO UPDATE SET blob = excluded.blob",
                            &[&sealed],
                        )
                        .await
                        .map_err(pg_err)
                })
                .await?;
            }
            verdict
        }
    };
    pg.close();
    Ok(report)
}
