//! Shared by the `ops_*` tests (issue 9): a real `cardcheck serve` process on an
//! embedded data directory, accounts made with the CLI, and a minimal blocking
//! HTTP/1.1 client (one connection per request) for signed requests, so that a test
//! sees exactly which responses arrived complete.
#![allow(clippy::unwrap_used, dead_code)] // tests may unwrap (project standard)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, SignedRequest, sign_request};
use serde_json::{Map, Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_cardcheck");
pub const ACTION: &str = "BankCard2EVerification";

/// Environment the children must not inherit from the test's environment.
const SCRUBBED: &[&str] = &[
    "CARDCHECK_DATA_DIR",
    "CARDCHECK_DATABASE_URL",
    "CARDCHECK_REDIS_URL",
    "CARDCHECK_MASTER_KEY",
    "CARDCHECK_LISTEN",
    "CARDCHECK_ADMIN_LISTEN",
    "CARDCHECK_CONFIG",
    "CARDCHECK_TLS_CERT",
    "CARDCHECK_TLS_KEY",
    "CARDCHECK_LOG",
    "CARDCHECK_LOG_FORMAT",
    "RUST_LOG",
];

/// A `cardcheck` command with a clean environment.
pub fn cardcheck(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a `cardcheck` command that must succeed; its stdout.
pub fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `cardcheck account create NAME` plus lifted limits (`--daily-attempts 0 --qps
/// 100000`); returns the credentials.
pub fn create_account(data_dir: &Path, name: &str) -> Credential {
    let dir = data_dir.to_str().unwrap();
    let out = run_ok(cardcheck(&[
        "account",
        "create",
        name,
        "--json",
        "--data-dir",
        dir,
    ]));
    let doc: Value = serde_json::from_str(&out).unwrap();
    run_ok(cardcheck(&[
        "account",
        "set",
        name,
        "--daily-attempts",
        "0",
        "--qps",
        "100000",
        "--data-dir",
        dir,
    ]));
    Credential {
        secret_id: doc["secret_id"].as_str().unwrap().to_owned(),
        secret_key: doc["secret_key"].as_str().unwrap().to_owned(),
        token: None,
    }
}

/// A running `cardcheck serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    /// API address.
    pub addr: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// Everything the server wrote to stderr (its logs) so far.
    pub stderr: Arc<Mutex<Vec<u8>>>,
    /// Everything the server wrote to stdout so far.
    pub stdout: Arc<Mutex<Vec<u8>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn drain(
    mut stream: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Server {
    /// `cardcheck serve --data-dir DIR --listen 127.0.0.1:0 --admin-listen
    /// 127.0.0.1:0 ARGS` with `env`; waits for the `listening on` line.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = cardcheck(&[
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        cmd.args(args).envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let err_thread = drain(child.stderr.take().unwrap(), stderr.clone());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        let mut second = String::new();
        out.read_line(&mut first).unwrap();
        out.read_line(&mut second).unwrap();
        stdout
            .lock()
            .unwrap()
            .extend_from_slice(format!("{first}{second}").as_bytes());
        let out_thread = drain(out, stdout.clone());
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|u| u.split("://").nth(1))
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "the server did not start: {first:?} {}",
                    String::from_utf8_lossy(&stderr.lock().unwrap())
                )
            })
            .parse()
            .unwrap();
        let admin = second
            .trim()
            .strip_prefix("admin on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            admin,
            stderr,
            stdout,
            threads: vec![err_thread, out_thread],
        }
    }

    /// `Host` to sign.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.join();
    }

    /// SIGTERM; asserts a clean exit (status 0) within 10 s.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.join();
                assert!(
                    status.success(),
                    "exit status after SIGTERM: {status}\n{}",
                    self.logs()
                );
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.join();
    }

    fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The logs so far, as text.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// `GET /metrics` on the admin listener.
    pub fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(self.admin).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        )
        .unwrap();
        let (status, body) = read_response(&mut stream).unwrap();
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Business parameters Name + BankCard.
pub fn params(name: &str, card: &str) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("Name".into(), json!(name));
    p.insert("BankCard".into(), json!(card));
    p
}

/// A signed BankCard2EVerification for `host`.
pub fn sign(
    credential: &Credential,
    host: &str,
    params: &Map<String, Value>,
    sign_method: SignMethod,
    http_method: &str,
    timestamp: i64,
) -> SignedRequest {
    sign_request(&SignInput {
        credential,
        host,
        service: "faceid",
        action: ACTION,
        version: "2018-03-01",
        region: Some("ap-guangzhou"),
        language: None,
        request_client: Some("OPS_TEST"),
        sign_method,
        http_method,
        timestamp,
        nonce: 4242,
        params,
    })
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends `req` on a new connection (`Connection: close`) and reads the whole
/// response: `(status, body)`. An error when the response did not arrive complete.
pub fn send(
    addr: SocketAddr,
    req: &SignedRequest,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path_and_query);
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&req.body);
    stream.write_all(&bytes)?;
    read_response(&mut stream)
}

/// Reads one `Content-Length` response to EOF; `(status, body)`.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let incomplete =
        || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(incomplete)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(incomplete)?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(incomplete)?;
    if body.len() != length {
        return Err(incomplete());
    }
    Ok((status, body))
}

/// A fresh temporary directory and its `data` subdirectory path.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    (tmp, data)
}
