//! `cardcheck bench`: a load generator for a cardcheck (or any faceid-compatible)
//! endpoint, and the helpers of the benchmark runner `bench/run.sh` (issue 10).
//!
//! The generator is a raw HTTP/1.1 keep-alive client on tokio `TcpStream`s: one request
//! in flight per connection (no pipelining), request bytes built and signed *before* the
//! clock starts, responses parsed just enough to find the status, the length and the
//! `Result` or error `Code`. Compared with a hyper or reqwest client it skips header
//! maps, URL parsing, connection-pool bookkeeping and per-request allocation, so the
//! generator's share of the two cores it shares with the server stays small (it reports
//! its own CPU per request so the reader can check).
//!
//! Every request is distinct and validly signed, so neither the replay cache nor the
//! attempt limit short-cuts the work: the pool varies the name's spacing (names are
//! normalised, so every variant still matches) and the card over the given card list,
//! all signed at one timestamp. The pool is sized from a short probe run, so it lasts
//! the warm-up and the measured window; when it runs out the run ends early and says so.
//!
//! Hidden helpers for `bench/run.sh`: `floor-server` (the same stack, axum on tokio,
//! returning a fixed 150-byte JSON), `startup` (spawn → `/readyz` 200), `report` (the
//! table and the JSON file under `bench/results/`) and `populate` (a synthetic registry
//! through the store API, used when `cardcheck registry import` is not available).

mod client;
mod encrypt;
mod floor;
mod populate;
mod procstat;
mod report;
mod requests;
mod startup;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `cardcheck bench` options.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    helper: Option<Helper>,
    #[command(flatten)]
    load: LoadArgs,
}

/// Options of a load run.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Endpoint (http only; the generator targets a server on this machine or a TLS
    /// terminator's backend).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub endpoint: String,
    /// SecretId to sign with.
    #[arg(long, env = "TENCENTCLOUD_SECRET_ID", hide_env_values = true)]
    pub secret_id: Option<String>,
    /// SecretKey to sign with.
    #[arg(long, env = "TENCENTCLOUD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Connections, each with one request in flight (fixed-concurrency mode).
    #[arg(long, short = 'c', default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Fixed rate in requests/s over all connections (open loop: latency counts from
    /// each request's scheduled time). Without it, every connection sends as fast as
    /// answers come back.
    #[arg(long, value_name = "REQ_PER_SEC")]
    pub rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 5.0, value_parser = secs)]
    pub duration: f64,
    /// Seconds of warm-up before measuring (not counted).
    #[arg(long, default_value_t = 1.0, value_parser = secs_or_zero)]
    pub warmup: f64,
    /// Signature method.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SignMethodArg::Tc3HmacSha256)]
    pub sign_method: SignMethodArg,
    /// HTTP method.
    #[arg(long, value_enum, ignore_case = true, default_value_t = HttpMethodArg::Post)]
    pub http_method: HttpMethodArg,
    /// CSV of `name,card` rows to verify (a header row is skipped; more columns are
    /// ignored), e.g. a sample of the imported registry. Default: sandbox card
    /// 6225768888888888 with generated names (Result 0 on a demo-profile server).
    #[arg(long, value_name = "FILE")]
    pub cards: Option<PathBuf>,
    /// Encrypt Name and BankCard (the Encryption parameter) with this algorithm.
    #[arg(long, value_enum, value_name = "ALGORITHM", requires = "public_key")]
    pub encrypt: Option<EncryptArg>,
    /// The server's Encryption public key (`cardcheck key public --algorithm RSA|SM2`).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// With --encrypt: a fresh data key (and so a private-key unwrap on the server) for
    /// every request, instead of one data key reused by all requests.
    #[arg(long, requires = "encrypt")]
    pub fresh_key: bool,
    /// Send one constant request over and over, unsigned work or not: for endpoints
    /// that check nothing (the floor server, a WireMock stub).
    #[arg(long)]
    pub fixed: bool,
    /// Pre-signed requests to build; default: sized from a short probe run.
    #[arg(long, value_name = "N")]
    pub requests: Option<usize>,
    /// Generator threads (each a single-threaded runtime driving its share of the
    /// connections). One keeps the generator's CPU lowest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Sample this process's CPU time and RSS during the measured window (the server).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Scenario label carried into the output.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Print one JSON document instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum Helper {
    /// The floor: a minimal axum server answering every request with a fixed 150-byte
    /// JSON. Prints `listening on http://ADDR` first.
    #[command(hide = true)]
    FloorServer {
        /// Listen address; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Start-up time: spawn `cardcheck serve` on a data directory and time it until
    /// `/readyz` answers 200, several times.
    #[command(hide = true)]
    Startup(startup::StartupArgs),
    /// Combine `cardcheck bench --json` outputs (one per line) into the table with
    /// ratios to the floor, and write the JSON results file.
    #[command(hide = true)]
    Report(report::ReportArgs),
    /// Fill a data directory's registry with synthetic rows through the store API and
    /// write a `name,card` sample for `--cards`.
    #[command(hide = true)]
    Populate(populate::PopulateArgs),
}

pub(crate) use crate::verify::{EncryptArg, HttpMethodArg, SignMethodArg};

fn secs(s: &str) -> Result<f64, String> {
    match secs_or_zero(s) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err("expected a number of seconds above 0 (e.g. 5 or 5s)".to_owned()),
    }
}

fn secs_or_zero(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(sec) = t.strip_suffix('s') {
        (sec, 1.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&(v * scale)) => Ok(v * scale),
        _ => Err("expected a number of seconds (e.g. 5, 5s or 500ms)".to_owned()),
    }
}

pub async fn run(args: BenchArgs) -> ExitCode {
    let outcome = match args.helper {
        Some(Helper::FloorServer { listen }) => floor::run(listen).await,
        Some(Helper::Startup(a)) => startup::run(a).await,
        Some(Helper::Report(a)) => report::run(&a),
        Some(Helper::Populate(a)) => populate::run(a).await,
        None => load(args.load).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    // The generator runs on its own threads with single-threaded runtimes; this async
    // context only waits for it.
    let json = args.json;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench".into())
        .spawn(move || {
            let _ = tx.send(client::run_load(&args));
        })?;
    let report = rx
        .await
        .map_err(|_| anyhow::anyhow!("the load generator stopped unexpectedly"))??;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", stats::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}
