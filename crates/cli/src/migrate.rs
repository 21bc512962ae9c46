//! `cardcheck migrate` (placeholder: being written, issue 8).
use std::process::ExitCode;

/// `cardcheck migrate` options.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {}

pub async fn run(_args: MigrateArgs) -> ExitCode {
    eprintln!("error: migrate is not built yet");
    ExitCode::from(1)
}
