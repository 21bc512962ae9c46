//! `cardcheck serve` (docs/cli.md "Server").

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cardcheck_domain::{BinTable, SystemClock};
use cardcheck_server::{AppState, ServerConfig};
use cardcheck_store::Backend;

use crate::store_args::StoreArgs;

/// `cardcheck serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// API listen address; port 0 picks a free port.
    #[arg(long, env = "CARDCHECK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Health, readiness and metrics listen address.
    #[arg(long, env = "CARDCHECK_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Demo profile: sandbox cards on, and on a fresh data directory a `demo` account
    /// whose credentials are printed once. The default.
    #[arg(long, overrides_with = "no_demo")]
    demo: bool,
    /// Production profile: no sandbox cards, no demo account.
    #[arg(long, overrides_with = "demo")]
    no_demo: bool,
    /// Extra BIN table (CSV in the built-in table's format) merged at start-up.
    #[arg(long, value_name = "FILE")]
    extra_bins: Option<std::path::PathBuf>,
    /// Treat Luhn failures as `-7` for UnionPay and domestic BINs too.
    #[arg(long)]
    strict_luhn: bool,
    /// Accept business parameters the action does not define (else `UnknownParameter`).
    #[arg(long)]
    allow_unknown_params: bool,
    /// Public host name(s) clients sign when a reverse proxy rewrites `Host`.
    #[arg(long = "public-host", value_name = "HOST")]
    public_hosts: Vec<String>,
}

pub async fn run(args: ServeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let demo = !args.no_demo;
    let backend = args.store.open()?;
    let bins = match &args.extra_bins {
        None => BinTable::builtin_shared(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Arc::new(
                BinTable::with_extra_csv(&text).with_context(|| format!("{}", path.display()))?,
            )
        }
    };
    let config = ServerConfig {
        sandbox: demo,
        strict_luhn: args.strict_luhn,
        allow_unknown_params: args.allow_unknown_params,
        extra_hosts: args.public_hosts.clone(),
        credential_ttl: Duration::from_secs(2),
        bins,
    };
    let demo_credentials = if demo {
        create_demo_account(&backend).await?
    } else {
        None
    };
    let state = AppState::new(backend.clone(), config, Arc::new(SystemClock))
        .await
        .context("cannot start")?;

    let api = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    let api_addr = api.local_addr()?;
    let admin_addr = admin.local_addr()?;
    // The first stdout line is the contract scripts read the port from.
    println!("listening on http://{api_addr}");
    println!("admin on http://{admin_addr} (/healthz, /readyz, /metrics)");
    println!("store: {}", backend.description);
    if demo {
        println!("demo profile: sandbox cards enabled (cardcheck sandbox list)");
    }
    if let Some(issued) = demo_credentials {
        println!("demo account created; its SecretKey is shown only now:");
        println!("  SecretId:  {}", issued.secret_id);
        println!("  SecretKey: {}", issued.secret_key);
        println!("try:");
        println!(
            "  cardcheck verify --endpoint http://{api_addr} --secret-id {} --secret-key {} --name 'Wei Xiaobao' --card 6225768888888888",
            issued.secret_id, issued.secret_key
        );
    }
    tracing::info!(%api_addr, %admin_addr, store = %backend.description, "cardcheck serving");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api_task = tokio::spawn(cardcheck_server::serve(
        api,
        cardcheck_server::app(state.clone()),
        stopped(stop_rx.clone()),
    ));
    let admin_task = tokio::spawn(cardcheck_server::serve(
        admin,
        cardcheck_server::admin_app(state.clone()),
        stopped(stop_rx),
    ));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let api_result = api_task.await;
    let _ = admin_task.await;
    drop(state);
    // Every answered request's ledger row was committed before its reply; this
    // commits the attempt counters still queued and stops the writer.
    backend.close();
    api_result.context("server task failed")??;
    Ok(())
}

/// On a data directory without accounts: the `demo` account and a key pair.
async fn create_demo_account(
    backend: &Backend,
) -> anyhow::Result<Option<cardcheck_store::IssuedCredential>> {
    if !backend.accounts.list_accounts().await?.is_empty() {
        return Ok(None);
    }
    backend.accounts.create_account("demo").await?;
    Ok(Some(
        backend.accounts.create_credential("demo", None).await?,
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
