//! `cardcheck registry …` (placeholder: being written, issue 6).
use std::process::ExitCode;

/// `cardcheck registry …`
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Show registry counts.
    Stats {
        #[command(flatten)]
        store: crate::store_args::StoreArgs,
    },
}

pub async fn run(_cmd: RegistryCommand) -> ExitCode {
    eprintln!("error: registry commands are not built yet");
    ExitCode::from(1)
}
