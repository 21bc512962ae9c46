//! The PostgreSQL schema and its migrations, applied on start by every node.
//!
//! `schema_migrations` records the versions applied; a transaction-scoped advisory
//! lock serialises nodes that start together on a fresh database. Append a migration
//! to [`MIGRATIONS`]; never edit one that has shipped.

use tokio_postgres::Client;

use super::pg_err;
use crate::StoreError;

/// Advisory-lock key serialising migrations ("cardcheck" in ASCII, as an i64).
const MIGRATION_LOCK: i64 = 0x6361_7264_6368_6563;

/// Migration `i` takes the schema from version `i` to `i + 1`.
///
/// The tables mirror the embedded schema (`sqlite/schema.rs`) except `attempts`: daily
/// attempt counters live in Redis (they are shared counters with a one-day life).
const MIGRATIONS: &[&str] = &[
    // 1: meta, accounts, credentials, registry, ledger, server keys.
    "
    CREATE TABLE meta (
        key   text PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE accounts (
        name           text PRIMARY KEY,
        status         text NOT NULL,
        qps            bigint NOT NULL,
        daily_attempts bigint NOT NULL,
        created_at     bigint NOT NULL
    );
    CREATE TABLE credentials (
        secret_id      text PRIMARY KEY,
        account        text NOT NULL REFERENCES accounts(name),
        secret_key_enc bytea NOT NULL,
        kind           text NOT NULL,
        token_sha256   bytea,
        expires_at     bigint,
        revoked_at     bigint,
        created_at     bigint NOT NULL
    );
    CREATE INDEX credentials_account ON credentials(account);
    -- verification.md §3: keyed hashes only, never the card number or the name.
    CREATE TABLE registry (
        card_hash  bytea PRIMARY KEY,
        name_hash  bytea NOT NULL,
        masked     text NOT NULL,
        status     text NOT NULL,
        updated_at bigint NOT NULL
    );
    CREATE TABLE ledger (
        id          bigserial PRIMARY KEY,
        request_id  text NOT NULL UNIQUE,
        account     text NOT NULL,
        secret_id   text NOT NULL,
        action      text NOT NULL,
        result      integer NOT NULL,
        billed      boolean NOT NULL,
        masked_card text,
        latency_us  bigint NOT NULL,
        ts_ms       bigint NOT NULL,
        day         integer NOT NULL
    );
    CREATE INDEX ledger_account_day ON ledger(account, day);
    CREATE TABLE server_keys (
        id   integer PRIMARY KEY CHECK (id = 1),
        blob bytea NOT NULL
    );
    ",
    // 2: the append-only audit log of administrative actions (issue 9; crate::audit).
    // Ids are assigned by the appender under `LOCK TABLE audit IN EXCLUSIVE MODE`
    // (last + 1); the triggers refuse UPDATE, DELETE and TRUNCATE, and any insert
    // that is not the next id. The functions name the table through TG_TABLE_SCHEMA,
    // so they work whatever the session's search_path.
    "
    CREATE TABLE audit (
        id        bigint PRIMARY KEY,
        ts_ms     bigint NOT NULL,
        actor     text NOT NULL,
        action    text NOT NULL,
        target    text NOT NULL,
        detail    text NOT NULL,
        prev_hash bytea NOT NULL,
        hash      bytea NOT NULL
    );
    CREATE INDEX audit_ts ON audit(ts_ms);
    CREATE FUNCTION cardcheck_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit log is append-only';
    END
    $$;
    CREATE FUNCTION cardcheck_audit_in_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        expected bigint;
    BEGIN
        EXECUTE format('SELECT coalesce(max(id), 0) + 1 FROM %I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME)
            INTO expected;
        IF NEW.id IS DISTINCT FROM expected THEN
            RAISE EXCEPTION 'audit log is append-only';
        END IF;
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION cardcheck_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION cardcheck_audit_append_only();
    CREATE TRIGGER audit_append_in_sequence BEFORE INSERT ON audit
        FOR EACH ROW EXECUTE FUNCTION cardcheck_audit_in_sequence();
    ",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i32 = MIGRATIONS.len() as i32;

/// A schema name we create ourselves: lower-case letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (so it never needs quoting rules).
pub fn validate_schema_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a PostgreSQL schema name is 1 to 63 characters of a-z, 0-9 and '_', not starting with a digit"
                .into(),
        ))
    }
}

/// Creates `schema` when given, then brings the tables up to [`CURRENT_VERSION`] in
/// one transaction.
pub async fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    // `IF NOT EXISTS` on every start would log NOTICEs on every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    if let Some(schema) = schema {
        validate_schema_name(schema)?;
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(pg_err)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_err)?;
    let version: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    if version > CURRENT_VERSION {
        return Err(StoreError::Database(format!(
            "the database has schema version {version}, newer than this build's {CURRENT_VERSION}; upgrade cardcheck"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        let applied = index as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&applied],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_restricted() {
        assert!(validate_schema_name("cardcheck").is_ok());
        assert!(validate_schema_name("cc_test_0a1b").is_ok());
        assert!(validate_schema_name("").is_err());
        assert!(validate_schema_name("1abc").is_err());
        assert!(validate_schema_name("a\"; DROP").is_err());
        assert!(validate_schema_name("Upper").is_err());
        assert!(validate_schema_name(&"a".repeat(64)).is_err());
    }
}
