//! `cardcheck registry …` (docs/cli.md "Administration", issue 6; the guide is
//! docs/registry.md): import a cardholder CSV, generate a synthetic one, show counts.
//!
//! - [`import`]: `registry import FILE.csv` — validate every row with the request
//!   path's own normalisation, stage, then bulk-write (resumable, see the store's
//!   `sqlite::import`).
//! - [`generate`]: `registry generate` — deterministic synthetic registries from the
//!   built-in BIN table and the surname / given-name lists.
//! - [`stats`]: `registry stats` — rows by status and issuing bank, storage size.

mod generate;
pub(crate) mod import;
mod progress;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::store_args::StoreArgs;

/// Exit status of an import or generate stopped by SIGINT or SIGTERM (128 + 2, as a
/// shell reports a process killed by SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// Sets a flag on the first SIGINT or SIGTERM while alive. Installed synchronously, so
/// a signal that arrives right after [`StopOnSignal::install`] is not the default
/// action (death) any more.
pub(super) struct StopOnSignal(tokio::task::JoinHandle<()>);

impl StopOnSignal {
    pub(super) fn install(stop: Arc<AtomicBool>) -> StopOnSignal {
        #[cfg(unix)]
        let wait = {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt());
            let terminate = signal(SignalKind::terminate());
            async move {
                match (interrupt, terminate) {
                    (Ok(mut i), Ok(mut t)) => {
                        tokio::select! {
                            _ = i.recv() => {}
                            _ = t.recv() => {}
                        }
                    }
                    // Not installed: the default action applies, as before.
                    _ => std::future::pending::<()>().await,
                }
            }
        };
        #[cfg(not(unix))]
        let wait = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        StopOnSignal(tokio::spawn(async move {
            wait.await;
            stop.store(true, Ordering::Relaxed);
        }))
    }
}

impl Drop for StopOnSignal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `cardcheck registry …`
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Import (upsert by card) a CSV with the header `name,card,status`.
    Import {
        /// The CSV file: UTF-8 (BOM optional), LF or CRLF, quoted fields allowed.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document (the summary) on stdout.
        #[arg(long)]
        json: bool,
        /// Write nothing if any row is rejected (default: skip rejected rows).
        #[arg(long)]
        strict: bool,
        /// Write every rejected row as `line,reason` to this CSV file.
        #[arg(long, value_name = "FILE")]
        rejects: Option<PathBuf>,
        /// No progress display (it is shown only when stderr is a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Write a synthetic registry CSV: real BINs, valid check digits, weighted names.
    Generate {
        /// Number of rows (distinct cards).
        #[arg(long)]
        count: u64,
        /// Output CSV file (replaced atomically; through a symlink, the file it points
        /// to; a FIFO or device such as /dev/stdout is written in place).
        #[arg(long, value_name = "FILE.csv")]
        output: PathBuf,
        /// Seed: the same seed and count give the same file (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON document (what was written) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show registry counts: rows, by status, by issuing bank, file size.
    Stats {
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
        /// Issuing banks listed (the JSON lists all).
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

/// Runs a `registry` subcommand. Exit status: 0 success, 1 failure (2 is clap's).
pub async fn run(cmd: RegistryCommand, actor: &str) -> ExitCode {
    let outcome = match cmd {
        RegistryCommand::Import {
            file,
            store,
            json,
            strict,
            rejects,
            no_progress,
        } => {
            import::run(import::Options {
                file,
                store,
                json,
                strict,
                rejects,
                progress: !no_progress,
                actor: actor.to_string(),
            })
            .await
        }
        RegistryCommand::Generate {
            count,
            output,
            seed,
            json,
        } => generate::run(count, &output, seed, json).await,
        RegistryCommand::Stats { store, json, top } => stats::run(&store, json, top).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Opens the configured store.
async fn open_store(store: &StoreArgs) -> anyhow::Result<cardcheck_store::Backend> {
    store.open().await
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes for people: `812.3 MB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(812_345_678), "812.3 MB");
    }
}
