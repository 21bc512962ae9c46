//! The store options every stateful command takes (docs/cli.md, docs/scale-out.md).

use std::path::PathBuf;

use anyhow::Context;
use cardcheck_store::Backend;

/// `--data-dir` (embedded SQLite) or `--database-url` + `--redis-url` (PostgreSQL +
/// Redis, shared by several nodes).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Data directory of the embedded store (created on first use).
    #[arg(
        long,
        env = "CARDCHECK_DATA_DIR",
        default_value = "./cardcheck-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL URL for a shared, multi-node deployment (with --redis-url; the
    /// master key comes from CARDCHECK_MASTER_KEY).
    #[arg(
        long,
        env = "CARDCHECK_DATABASE_URL",
        value_name = "URL",
        requires = "redis_url"
    )]
    pub database_url: Option<String>,
    /// Redis URL for shared counters, limits and replays (with --database-url).
    #[arg(
        long,
        env = "CARDCHECK_REDIS_URL",
        value_name = "URL",
        requires = "database_url"
    )]
    pub redis_url: Option<String>,
}

impl StoreArgs {
    /// Opens the configured backend: PostgreSQL + Redis when both URLs are given,
    /// else the embedded store in the data directory.
    pub async fn open(&self) -> anyhow::Result<Backend> {
        if let (Some(database_url), Some(redis_url)) = (&self.database_url, &self.redis_url) {
            return cardcheck_store::open_postgres(database_url, redis_url)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the PostgreSQL + Redis store at {}",
                        cardcheck_store::postgres::redact_url(database_url)
                    )
                });
        }
        cardcheck_store::open_sqlite(&self.data_dir)
            .with_context(|| format!("cannot open the data directory {}", self.data_dir.display()))
    }

    /// [`Self::open`] for commands that only use a store that already exists: a
    /// mistyped `--data-dir` is an error, not a new empty store with a new master key.
    pub async fn open_existing(&self) -> anyhow::Result<Backend> {
        self.check_embedded_exists()?;
        self.open().await
    }

    /// The audit log alone, for `audit list` and `audit verify`: an embedded data
    /// directory's is opened read-only (they work on a read-only copy), a shared
    /// deployment's through its backend.
    pub async fn open_audit_log(
        &self,
    ) -> anyhow::Result<(
        std::sync::Arc<dyn cardcheck_store::audit::AuditLog>,
        Option<Backend>,
    )> {
        if self.database_url.is_some() {
            let backend = self.open_existing().await?;
            return Ok((backend.audit.clone(), Some(backend)));
        }
        self.check_embedded_exists()?;
        let log = cardcheck_store::sqlite::ReadOnlyAudit::open(&self.data_dir)?;
        Ok((std::sync::Arc::new(log), None))
    }

    /// Whether the embedded data directory holds no store yet (false for PostgreSQL):
    /// opening it would create one, with a new master key.
    pub fn embedded_store_missing(&self) -> bool {
        self.database_url.is_none()
            && !self
                .data_dir
                .join(cardcheck_store::sqlite::DATABASE_FILE)
                .exists()
    }

    /// For a command that reads an embedded store: one clear line when there is none.
    fn check_embedded_exists(&self) -> anyhow::Result<()> {
        if self.database_url.is_none() {
            // The same words as `serve` for a data directory that is a file.
            if self.data_dir.exists() && !self.data_dir.is_dir() {
                anyhow::bail!(
                    "the data directory {} exists and is not a directory",
                    self.data_dir.display()
                );
            }
            if self.embedded_store_missing() {
                anyhow::bail!(
                    "no cardcheck store in {} (no {}): check --data-dir; `cardcheck serve` or \
                     `cardcheck account create` creates one",
                    self.data_dir.display(),
                    cardcheck_store::sqlite::DATABASE_FILE
                );
            }
        }
        Ok(())
    }
}
