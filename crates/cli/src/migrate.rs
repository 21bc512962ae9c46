//! `cardcheck migrate`: copy an embedded data directory into PostgreSQL + Redis
//! (docs/scale-out.md "Moving from one node to many").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cardcheck_store::migrate::{MigrationReport, sqlite_to_postgres};
use cardcheck_store::postgres::{PostgresOptions, redact_url};

/// `cardcheck migrate` options.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The embedded data directory to copy (stop the server using it first).
    #[arg(
        long,
        env = "CARDCHECK_DATA_DIR",
        default_value = "./cardcheck-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL of the target deployment.
    #[arg(long, env = "CARDCHECK_DATABASE_URL", value_name = "URL")]
    database_url: String,
    /// Redis URL of the target deployment (receives today's attempt counters).
    #[arg(long, env = "CARDCHECK_REDIS_URL", value_name = "URL")]
    redis_url: String,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: MigrateArgs) -> ExitCode {
    match migrate(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let options = PostgresOptions::from_env(&args.database_url, &args.redis_url)?;
    let report = sqlite_to_postgres(&args.data_dir, options)
        .await
        .with_context(|| {
            format!(
                "cannot migrate {} into {}",
                args.data_dir.display(),
                redact_url(&args.database_url)
            )
        })?;
    if args.json {
        return crate::admin::print_json(&report);
    }
    print_report(&args, &report);
    Ok(())
}

fn print_report(args: &MigrateArgs, r: &MigrationReport) {
    println!(
        "migrated {} into {}",
        args.data_dir.display(),
        redact_url(&args.database_url)
    );
    let line = |what: &str, c: cardcheck_store::migrate::Copied| {
        println!(
            "  {what:<12} {:>10} copied of {:>10} (rows already there are kept)",
            c.copied, c.read
        );
    };
    line("accounts", r.accounts);
    line("credentials", r.credentials);
    line("registry", r.registry);
    line("ledger", r.ledger);
    line("attempts", r.attempts);
    println!("  server keys  {}", r.server_keys);
    if !r.master_key_from_env {
        println!(
            "every node must run with CARDCHECK_MASTER_KEY set to the 64 hex digits in {}",
            args.data_dir.join("master.key").display()
        );
    }
}
