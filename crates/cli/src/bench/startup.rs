//! Start-up to ready: spawn `cardcheck serve` on a data directory, read the admin
//! address from its stdout, and poll `GET /readyz` until it answers 200. The figure is
//! spawn → first 200, i.e. process start, store open, key ring load, both binds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;

/// `cardcheck bench startup` options.
#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// The data directory to start on.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// How many starts to time.
    #[arg(long, default_value_t = 5)]
    trials: u32,
    /// Start with the demo profile (default: --no-demo).
    #[arg(long)]
    demo: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct StartupReport {
    data_dir: String,
    trials_ms: Vec<f64>,
    median_ms: f64,
    max_ms: f64,
}

fn ready(admin: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&admin, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

fn one_start(args: &StartupArgs) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("cannot find the cardcheck binary")?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--data-dir")
        .arg(&args.data_dir)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg(if args.demo { "--demo" } else { "--no-demo" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start cardcheck serve")?;
    let outcome = (|| -> anyhow::Result<f64> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from cardcheck serve"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        for line in lines.by_ref().take(4) {
            let line = line?;
            if let Some(rest) = line.strip_prefix("admin on http://") {
                let addr = rest.split_whitespace().next().unwrap_or("");
                admin = Some(addr.parse::<SocketAddr>()?);
                break;
            }
        }
        let admin = admin.ok_or_else(|| anyhow!("cardcheck serve printed no admin address"))?;
        let deadline = started + Duration::from_secs(60);
        while !ready(admin) {
            if Instant::now() > deadline {
                bail!("not ready within 60 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    })();
    // SIGTERM for a clean stop (flushes the ledger), SIGKILL as the fallback.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < stop_deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    outcome
}

pub async fn run(args: StartupArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<StartupReport> {
        let mut trials = Vec::new();
        for _ in 0..args.trials.max(1) {
            trials.push(one_start(&args)?);
        }
        let mut sorted = trials.clone();
        sorted.sort_by(f64::total_cmp);
        Ok(StartupReport {
            data_dir: args.data_dir.display().to_string(),
            median_ms: sorted[sorted.len() / 2],
            max_ms: sorted[sorted.len() - 1],
            trials_ms: trials,
        })
    })
    .await??;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let trials: Vec<String> = report.trials_ms.iter().map(|t| format!("{t:.1}")).collect();
        println!(
            "start-up to ready on {}: median {:.1} ms, max {:.1} ms (trials: {} ms)",
            report.data_dir,
            report.median_ms,
            report.max_ms,
            trials.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
