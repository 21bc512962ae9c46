//! `cardcheck bench` (placeholder: being written, issue 10).
use std::process::ExitCode;

/// `cardcheck bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("error: bench is not built yet");
    ExitCode::from(1)
}
