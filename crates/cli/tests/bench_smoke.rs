//! `cardcheck bench` against a spawned server for about two seconds: a nonzero
//! throughput, only Results (no errors), and no answer from the replay cache — the
//! requests are distinct and validly signed (issue 10).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cardcheck");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cardcheck(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CARDCHECK_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `cmd`, returns it and the address of its first stdout line.
fn spawn(cmd: &mut Command) -> (Server, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (server, url)
}

fn bench(url: &str, id: &str, key: &str, secs: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["bench", "--json", "--endpoint", url, "--secret-id", id])
        .args([
            "--secret-key",
            key,
            "-c",
            "4",
            "-d",
            secs,
            "--warmup",
            "0.2",
        ])
        // A fixed pool: sizing it by a probe is for real runs, and signing the
        // runner's minimum pool takes a while in a debug build.
        .args(["--requests", "8000"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_reports_throughput_and_no_errors_against_a_spawned_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created: serde_json::Value =
        serde_json::from_str(&cardcheck(&data, &["account", "create", "bench", "--json"])).unwrap();
    let id = created["secret_id"].as_str().unwrap().to_owned();
    let key = created["secret_key"].as_str().unwrap().to_owned();
    cardcheck(
        &data,
        &[
            "account",
            "set",
            "bench",
            "--qps",
            "1000000",
            "--daily-attempts",
            "0",
        ],
    );
    let (server, url) = spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen"])
            .args(["127.0.0.1:0", "--demo", "--data-dir"])
            .arg(&data)
            .env_remove("CARDCHECK_DATA_DIR"),
    );

    let pid = server.0.id().to_string();
    let report = bench(&url, &id, &key, "2", &["--server-pid", &pid]);
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");
    // Sandbox card 6225768888888888 passes for any valid name.
    assert_eq!(
        report["results"]["0"].as_u64(),
        report["requests"].as_u64(),
        "{report}"
    );
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(report["server"]["rss_max_mib"].as_f64().unwrap() > 0.0);

    // v1 HmacSHA1 GET is accepted too.
    let report = bench(
        &url,
        &id,
        &key,
        "0.5",
        &["--sign-method", "HmacSHA1", "--http-method", "GET"],
    );
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");

    // A wrong key is counted as errors, by code.
    let report = bench(&url, &id, "not-the-key", "0.5", &[]);
    assert_eq!(
        report["errors"]["Error AuthFailure.SignatureFailure"].as_u64(),
        report["requests"].as_u64(),
        "{report}"
    );
    drop(server);
}

#[test]
fn floor_server_answers_150_bytes() {
    let (_server, url) = spawn(Command::new(BIN).args(["bench", "floor-server"]));
    let out = Command::new(BIN)
        .args(["bench", "--json", "--fixed", "--endpoint", &url])
        .args(["-c", "2", "-d", "0.5", "--warmup", "0.1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");
}
