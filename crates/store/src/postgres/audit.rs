//! The audit log in PostgreSQL (schema migration 2, [`crate::audit`]).
//!
//! Every node appends to one chain: the append transaction takes
//! `LOCK TABLE audit IN EXCLUSIVE MODE` (readers go on; other appenders wait) before
//! it reads the last entry, so two nodes can never both extend the same entry. The
//! time is the database's (`clock_timestamp()` once the lock is held), so entries of
//! different nodes are ordered by one clock. Triggers refuse `UPDATE`, `DELETE`,
//! `TRUNCATE` and out-of-sequence inserts.

use async_trait::async_trait;

use super::{PgStore, pg_err, within};
use crate::StoreError;
use crate::audit::{AuditEntry, AuditEvent, AuditFilter, AuditLog, GENESIS_HASH, hash_column};

fn sql_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Corrupt("audit id out of range".into()))
}

fn entry_from_row(r: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        // A negative id (tampering) becomes 0, which never verifies.
        id: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
        ts_ms: r.get(1),
        event: AuditEvent {
            actor: r.get(2),
            action: r.get(3),
            target: r.get(4),
            detail: r.get(5),
        },
        prev_hash: hash_column(r.get(6)),
        hash: hash_column(r.get(7)),
    }
}

const INSERT: &str = "INSERT INTO audit (id, ts_ms, actor, action, target, detail, prev_hash, hash) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    tx.execute(
        INSERT,
        &[
            &sql_id(entry.id)?,
            &entry.ts_ms,
            &entry.event.actor,
            &entry.event.action,
            &entry.event.target,
            &entry.event.detail,
            &entry.prev_hash.as_slice(),
            &entry.hash.as_slice(),
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Copies entries as they are (ids, times and hashes kept, so the chain still
/// verifies) into an **empty** audit table; `false`, with nothing written, when the
/// table already has entries. For `cardcheck migrate`.
pub(crate) async fn copy_entries(
    client: &mut deadpool_postgres::Object,
    entries: &[AuditEntry],
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE")
        .await
        .map_err(pg_err)?;
    let present: i64 = tx
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .map_err(pg_err)?
        .get(0);
    if present > 0 {
        return Ok(false);
    }
    for entry in entries {
        insert(&tx, entry).await?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(true)
}

#[async_trait]
impl AuditLog for PgStore {
    async fn record(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let event = event.sanitized()?;
        within(self.admin_timeout, "PostgreSQL audit", async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            tx.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE")
                .await
                .map_err(pg_err)?;
            let row = tx
                .query_one(
                    "SELECT (SELECT id FROM audit ORDER BY id DESC LIMIT 1), \
                            (SELECT hash FROM audit ORDER BY id DESC LIMIT 1), \
                            (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            let last_id: Option<i64> = row.get(0);
            let last_hash: Option<Vec<u8>> = row.get(1);
            let ts_ms: i64 = row.get(2);
            let (id, prev_hash) = match (last_id, last_hash) {
                (Some(id), Some(hash)) => (u64::try_from(id).unwrap_or(0) + 1, hash_column(&hash)),
                _ => (1, GENESIS_HASH),
            };
            let entry = AuditEntry::chained(id, ts_ms, event, prev_hash);
            insert(&tx, &entry).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(entry)
        })
        .await
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let after = sql_id(filter.after_id.unwrap_or(0))?;
        let order = if filter.latest { "DESC" } else { "ASC" };
        let rows = within(self.admin_timeout, "PostgreSQL audit", async {
            let client = self.client().await?;
            client
                .query(
                    &format!(
                        "SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit \
                         WHERE ($1::int8 IS NULL OR ts_ms >= $1::int8) \
                         AND ($2::int8 IS NULL OR ts_ms < $2::int8) \
                         AND ($3::text IS NULL OR left(action, length($3::text)) = $3::text) \
                         AND id > $4::int8 ORDER BY id {order} LIMIT $5::int8"
                    ),
                    &[
                        &filter.since_ms,
                        &filter.until_ms,
                        &filter.action_prefix,
                        &after,
                        &filter.sql_limit(),
                    ],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        let mut entries: Vec<AuditEntry> = rows.iter().map(entry_from_row).collect();
        if filter.latest {
            entries.reverse();
        }
        Ok(entries)
    }
}
