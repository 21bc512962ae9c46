//! The store options every stateful command takes (docs/cli.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use cardcheck_store::Backend;

/// `--data-dir` (embedded SQLite) or `--database-url` + `--redis-url`.
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
    /// PostgreSQL URL for a shared, multi-node deployment (with --redis-url).
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
    /// Opens the configured backend.
    pub fn open(&self) -> anyhow::Result<Backend> {
        if self.database_url.is_some() {
            bail!("the PostgreSQL + Redis backend is not available in this build; use --data-dir");
        }
        cardcheck_store::open_sqlite(&self.data_dir)
            .with_context(|| format!("cannot open the data directory {}", self.data_dir.display()))
    }
}
