//! `cardcheck migrate`: copy an embedded data directory into PostgreSQL + Redis
//! (docs/scale-out.md "Moving from one node to many").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cardcheck_store::MasterKey;
use cardcheck_store::migrate::{Copied, MigrationReport, sqlite_to_postgres};
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

pub async fn run(args: MigrateArgs, actor: &str) -> ExitCode {
    match migrate(args, actor).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn migrate(args: MigrateArgs, actor: &str) -> anyhow::Result<()> {
    let options = PostgresOptions::from_env(&args.database_url, &args.redis_url)?;
    let report = sqlite_to_postgres(&args.data_dir, options.clone())
        .await
        .with_context(|| {
            format!(
                "cannot migrate {} into {}",
                args.data_dir.display(),
                redact_url(&args.database_url)
            )
        })?;
    let audited = audit_migration(&args, options, &report, actor).await;
    if args.json {
        crate::admin::print_json(&report)?;
    } else {
        print_report(&args, &report);
    }
    audited
}

/// Records the migration in the target deployment's audit log (after the copied one).
async fn audit_migration(
    args: &MigrateArgs,
    mut options: PostgresOptions,
    r: &MigrationReport,
    actor: &str,
) -> anyhow::Result<()> {
    let done = format!(
        "{} was migrated into {}",
        args.data_dir.display(),
        redact_url(&args.database_url)
    );
    // The deployment has the data directory's master key now (the migration used it).
    let opened = async {
        options.master_key = Some(MasterKey::load_or_create(&args.data_dir, false)?);
        options.open().await
    };
    let backend = match opened.await {
        Ok(backend) => backend,
        Err(e) => bail!("{done}, but it could not be recorded in the audit log: {e}"),
    };
    let c = |what: &str, c: Copied| format!("{what} {}/{}", c.copied, c.read);
    let detail = format!(
        "copied/read: {}, {}, {}, {}, {}, {}; server keys {}",
        c("accounts", r.accounts),
        c("credentials", r.credentials),
        c("registry", r.registry),
        c("ledger", r.ledger),
        c("attempts", r.attempts),
        c("audit", r.audit),
        r.server_keys
    );
    let recorded = crate::audit::Auditor::new(&backend, actor)
        .record(
            cardcheck_store::audit::action::STORE_MIGRATE,
            &args.data_dir.display().to_string(),
            &detail,
            &done,
        )
        .await;
    backend.close();
    recorded
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
    if let Some(broken) = &r.audit_broken {
        println!(
            "  audit        {:>10} copied of {:>10} (not copied: the data directory's {broken})",
            0, r.audit.read
        );
    } else if r.audit.read > 0 && r.audit.copied == 0 {
        println!(
            "  audit        {:>10} copied of {:>10} (the deployment's audit log is not empty: left as it is)",
            0, r.audit.read
        );
    } else {
        line("audit", r.audit);
    }
    println!("  server keys  {}", r.server_keys);
    if !r.master_key_from_env {
        println!(
            "every node must run with CARDCHECK_MASTER_KEY set to the 64 hex digits in {}",
            args.data_dir.join("master.key").display()
        );
    }
}
