#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! Issue 8, done-when: several `cardcheck serve` processes sharing one PostgreSQL
//! database and one Redis act as one service; a dependency outage gives errors within
//! a second and service resumes by itself; `cardcheck migrate` moves an embedded store
//! and the same verifications give the same Results afterwards.
//!
//! Each test gets a fresh PostgreSQL schema (`CARDCHECK_DATABASE_SCHEMA`) and Redis key
//! prefix (`CARDCHECK_REDIS_PREFIX`), removed at the end. Services:
//! `CARDCHECK_TEST_DATABASE_URL` / `CARDCHECK_TEST_REDIS_URL` (defaults: the local
//! PostgreSQL `test` database and Redis on 6379); unreachable services fail the tests
//! with a message saying how to start them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cardcheck_domain::ResultCode;
use cardcheck_store::MasterKey;
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, sign_request};
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cardcheck");
const SANDBOX_CARD: &str = "6225768888888888";
const SANDBOX_MISMATCH_CARD: &str = "6226090210146748";
const SANDBOX_NAME: &str = "Wei Xiaobao";

fn database_url() -> String {
    std::env::var("CARDCHECK_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("CARDCHECK_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Environment variables the children must not inherit from the test's environment.
const SCRUBBED: &[&str] = &[
    "CARDCHECK_DATA_DIR",
    "CARDCHECK_DATABASE_URL",
    "CARDCHECK_REDIS_URL",
    "CARDCHECK_DATABASE_SCHEMA",
    "CARDCHECK_REDIS_PREFIX",
    "CARDCHECK_LISTEN",
    "CARDCHECK_ADMIN_LISTEN",
    "CARDCHECK_STORE_TIMEOUT_MS",
    "CARDCHECK_DATABASE_POOL_SIZE",
];

/// One shared deployment: a schema, a Redis prefix and a master key.
struct Deployment {
    schema: String,
    prefix: String,
    master_key_hex: String,
    database_url: String,
    redis_url: String,
}

impl Deployment {
    async fn new() -> Deployment {
        let (_, hex) = MasterKey::generate();
        let schema = format!("cc_scale_{}", &hex[..12]);
        let (_, key_hex) = MasterKey::generate();
        let d = Deployment {
            prefix: format!("cardcheck-test:{schema}:"),
            schema,
            master_key_hex: key_hex.to_string(),
            database_url: database_url(),
            redis_url: redis_url(),
        };
        d.check_services().await;
        d
    }

    async fn check_services(&self) {
        let pg = tokio::net::TcpStream::connect(authority(&self.database_url, 5432)).await;
        let redis = tokio::net::TcpStream::connect(authority(&self.redis_url, 6379)).await;
        if let (Err(e), _) | (_, Err(e)) = (&pg, &redis) {
            panic!(
                "PostgreSQL ({}) or Redis ({}) is not reachable: {e}. Start them \
                 (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                 `redis-server --daemonize yes --port 6379 --save ''`, or scripts/test.sh) or \
                 set CARDCHECK_TEST_DATABASE_URL / CARDCHECK_TEST_REDIS_URL.",
                self.database_url, self.redis_url
            );
        }
    }

    /// A `cardcheck` command against this deployment (URLs in the environment).
    fn command(&self, args: &[&str]) -> Command {
        self.command_via(args, &self.database_url, &self.redis_url)
    }

    fn command_via(&self, args: &[&str], database_url: &str, redis_url: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        cmd.env("CARDCHECK_DATABASE_URL", database_url)
            .env("CARDCHECK_REDIS_URL", redis_url)
            .env("CARDCHECK_DATABASE_SCHEMA", &self.schema)
            .env("CARDCHECK_REDIS_PREFIX", &self.prefix)
            .env("CARDCHECK_MASTER_KEY", &self.master_key_hex)
            // Several servers and parallel tests share one PostgreSQL.
            .env("CARDCHECK_DATABASE_POOL_SIZE", "8")
            .env("CARDCHECK_LOG", "warn");
        cmd
    }

    fn cli(&self, args: &[&str]) -> String {
        run_ok(self.command(args))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let (db, redis, schema, prefix) = (
            self.database_url.clone(),
            self.redis_url.clone(),
            self.schema.clone(),
            self.prefix.clone(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = cardcheck_store::postgres::drop_schema(&db, &schema).await;
                let _ = cardcheck_store::redis_state::delete_prefix(&redis, &prefix).await;
            });
        })
        .join();
    }
}

fn authority(url: &str, default_port: u16) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`.
fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{scheme}://{}127.0.0.1:{port}{path}",
        user.unwrap_or_default()
    )
}

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Where to send requests: the base URL and the `Host` to sign.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    host: String,
}

/// A running `cardcheck serve`.
struct Server {
    child: Child,
    target: Target,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// `cmd` is a `cardcheck` command with its environment; `serve` and the listen
    /// addresses are added, then `flags`.
    fn start(mut cmd: Command, flags: &[&str]) -> Server {
        let mut child = cmd
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let Some(url) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!("the server did not start: {first:?}");
        };
        let target = Target {
            url: url.to_string(),
            host: url.trim_start_matches("http://").to_string(),
        };
        Server {
            child,
            target,
            _stdout: stdout,
        }
    }

    fn target(&self) -> &Target {
        &self.target
    }

    /// SIGTERM, then wait: the server finishes in-flight requests and closes its store.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Result(String),
    Error(String),
}

impl Answer {
    fn result(&self) -> Option<&str> {
        match self {
            Answer::Result(r) => Some(r),
            Answer::Error(_) => None,
        }
    }

    fn r(code: &str) -> Answer {
        Answer::Result(code.to_string())
    }

    fn e(code: &str) -> Answer {
        Answer::Error(code.to_string())
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    credential: Credential,
}

impl Client {
    fn new(secret_id: &str, secret_key: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            credential: Credential {
                secret_id: secret_id.to_string(),
                secret_key: secret_key.to_string(),
                token: None,
            },
        }
    }

    /// One signed BankCard2EVerification; `timestamp` makes otherwise identical
    /// requests distinct (an identical signed request is a replay, verification.md §4).
    async fn verify(&self, target: &Target, name: &str, card: &str, timestamp: i64) -> Answer {
        let mut params = Map::new();
        params.insert("Name".into(), json!(name));
        params.insert("BankCard".into(), json!(card));
        let signed = sign_request(&SignInput {
            credential: &self.credential,
            host: &target.host,
            service: "faceid",
            action: "BankCard2EVerification",
            version: "2018-03-01",
            region: None,
            language: None,
            request_client: None,
            sign_method: SignMethod::Tc3HmacSha256,
            http_method: "POST",
            timestamp,
            nonce: 0,
            params: &params,
        });
        let mut req = self.http.post(format!("{}/", target.url));
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let body = req
            .body(signed.body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let response = &v["Response"];
        match (
            response["Result"].as_str(),
            response["Error"]["Code"].as_str(),
        ) {
            (Some(r), _) => Answer::r(r),
            (None, Some(code)) => Answer::e(code),
            _ => panic!("unexpected response: {v}"),
        }
    }
}

fn issued(json_text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(json_text).unwrap();
    (
        v["secret_id"].as_str().unwrap().to_string(),
        v["secret_key"].as_str().unwrap().to_string(),
    )
}

/// Results the clients received, to compare with the ledger.
#[derive(Debug, Default)]
struct Tally {
    total: u64,
    billed: u64,
}

impl Tally {
    fn add(&mut self, answer: &Answer) {
        if let Some(r) = answer.result() {
            self.total += 1;
            let code: i32 = r.parse().unwrap();
            if ResultCode::from_code(code).unwrap().billed() {
                self.billed += 1;
            }
        }
    }
}

fn usage_totals(cmd: Command) -> (u64, u64) {
    let mut cmd = cmd;
    cmd.args(["usage", "--format", "json"]);
    let v: Value = serde_json::from_str(&run_ok(cmd)).unwrap();
    (
        v["totals"]["total"].as_u64().unwrap(),
        v["totals"]["billed"].as_u64().unwrap(),
    )
}

/// A card of a known BIN that no source knows (Result -7, billed): card `i`.
fn unknown_card(i: u32) -> String {
    format!("62257600{:08}", 10_000_000 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_act_as_one_service() {
    let d = Deployment::new().await;
    let (secret_id, secret_key) = issued(&d.cli(&["account", "create", "acme", "--json"]));
    // The Encryption key ring is created once, before the nodes start (three first
    // starts on a fresh database would each generate one).
    d.cli(&["key", "public"]);
    let nodes: Vec<Server> = (0..3)
        .map(|_| Server::start(d.command(&[]), &["--demo"]))
        .collect();
    let targets: Vec<Target> = nodes.iter().map(|n| n.target().clone()).collect();
    let client = Client::new(&secret_id, &secret_key);
    let mut tally = Tally::default();

    // 1. The account's 20 requests/s hold for the three nodes together: 90 distinct
    // requests at once (30 per node) get the burst of 20 plus what the time refills.
    let ts = now();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..90u32 {
        let (client, target) = (client.clone(), targets[i as usize % 3].clone());
        tasks.spawn(async move { client.verify(&target, "Li Lei", &unknown_card(i), ts).await });
    }
    let (mut answered, mut limited) = (0u64, 0u64);
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        tally.add(&answer);
        match answer {
            Answer::Result(_) => answered += 1,
            Answer::Error(code) if code == "RequestLimitExceeded" => limited += 1,
            Answer::Error(code) => panic!("unexpected error {code}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let refill = (elapsed * 20.0).ceil() as u64;
    eprintln!("rate: {answered} answered, {limited} limited in {elapsed:.3} s across 3 nodes");
    assert!(
        (20..=20 + refill + 1).contains(&answered),
        "{answered} answered in {elapsed:.3} s; one 20/s limit for all nodes allows 20 + {refill}"
    );
    assert!(
        elapsed >= 1.0 || answered <= 40,
        "{answered} in the first second"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // 2. A card's daily limit (10) counts across nodes: the 11th gets -17.
    let ts = now();
    let mut results = Vec::new();
    for i in 0..11 {
        let answer = client
            .verify(&targets[i % 3], SANDBOX_NAME, SANDBOX_CARD, ts - i as i64)
            .await;
        tally.add(&answer);
        results.push(answer);
    }
    for (i, answer) in results.iter().enumerate().take(10) {
        assert_eq!(answer, &Answer::r("0"), "attempt {}", i + 1);
    }
    assert_eq!(results[10], Answer::r("-17"));

    // 3. A key revoked through the admin command is refused by every node within 5 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (second_id, second_key) = issued(&d.cli(&["key", "create", "acme", "--json"]));
    let second = Client::new(&second_id, &second_key);
    let ts = now();
    for (i, target) in targets.iter().enumerate() {
        let answer = second
            .verify(target, SANDBOX_NAME, SANDBOX_MISMATCH_CARD, ts - i as i64)
            .await;
        assert_eq!(answer, Answer::r("-4"));
        tally.add(&answer);
    }
    d.cli(&["key", "revoke", &second_id]);
    let revoked_at = Instant::now();
    let mut refused = [None::<Duration>; 3];
    let mut k = 0u32;
    while refused.iter().any(Option::is_none) {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "not every node refused the revoked key within 5 s: {refused:?}"
        );
        for (i, target) in targets.iter().enumerate() {
            if refused[i].is_some() {
                continue;
            }
            k += 1;
            let answer = second
                .verify(target, "Li Lei", &unknown_card(1000 + k), now())
                .await;
            tally.add(&answer);
            if answer == Answer::e("AuthFailure.SecretIdNotFound") {
                refused[i] = Some(revoked_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("revocation seen by the nodes after {refused:?}");
    // The first key still works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = client
        .verify(&targets[0], "Li Lei", &unknown_card(5000), now())
        .await;
    assert_eq!(answer, Answer::r("-7"));
    tally.add(&answer);

    // 4. The ledger holds exactly what the clients received.
    assert_eq!(
        usage_totals(d.command(&[])),
        (tally.total, tally.billed),
        "ledger (total, billed) vs what the clients received"
    );
    for node in nodes {
        node.stop();
    }
}

/// A TCP proxy the test cuts (closing every connection and refusing new ones, as a
/// stopped server would) and restores.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, conns2) = (cut.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            cut,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Sends requests through `node` until `done` says so; asserts every answer took
/// under a second; returns the answers and how long it took.
async fn until(
    client: &Client,
    node: &Target,
    first_card: &mut u32,
    limit: Duration,
    done: impl Fn(&Answer) -> bool,
) -> (Vec<Answer>, Duration) {
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        *first_card += 1;
        let sent = Instant::now();
        let answer = client
            .verify(node, "Li Lei", &unknown_card(*first_card), now())
            .await;
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{answer:?} took {took:?}: every request must be answered within 1 s"
        );
        let finished = done(&answer);
        answers.push(answer);
        if finished {
            return (answers, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "no change within {limit:?}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_internal_error_within_a_second_while_redis_or_postgres_is_down() {
    let d = Deployment::new().await;
    let (secret_id, secret_key) = issued(&d.cli(&["account", "create", "acme", "--json"]));
    let pg = Proxy::start(authority(&d.database_url, 5432)).await;
    let redis = Proxy::start(authority(&d.redis_url, 6379)).await;
    let node = Server::start(
        d.command_via(
            &[],
            &via_port(&d.database_url, pg.port),
            &via_port(&d.redis_url, redis.port),
        ),
        &["--no-demo"],
    );
    let target = node.target().clone();
    let client = Client::new(&secret_id, &secret_key);
    let mut card = 0u32;
    let mut tally = Tally::default();
    let is_result = |a: &Answer| a.result().is_some();
    let is_internal = |a: &Answer| *a == Answer::e("InternalError");

    let (answers, _) = until(
        &client,
        &target,
        &mut card,
        Duration::from_secs(5),
        is_result,
    )
    .await;
    answers.iter().for_each(|a| tally.add(a));

    // Redis stops: the limiter fails closed, InternalError within a second.
    redis.cut();
    let (answers, _) = until(
        &client,
        &target,
        &mut card,
        Duration::from_secs(3),
        is_internal,
    )
    .await;
    assert_eq!(
        answers,
        [Answer::e("InternalError")],
        "the first request after the cut"
    );
    for _ in 0..3 {
        let (answers, _) = until(
            &client,
            &target,
            &mut card,
            Duration::from_secs(1),
            is_internal,
        )
        .await;
        assert_eq!(answers.len(), 1);
    }
    redis.restore();
    let (answers, took) = until(
        &client,
        &target,
        &mut card,
        Duration::from_secs(10),
        is_result,
    )
    .await;
    eprintln!("Redis back: answered again after {took:?}");
    answers.iter().for_each(|a| tally.add(a));

    // PostgreSQL stops: InternalError within a second (the ledger cannot be written).
    pg.cut();
    let (answers, _) = until(
        &client,
        &target,
        &mut card,
        Duration::from_secs(3),
        is_internal,
    )
    .await;
    assert!(answers.iter().all(|a| !is_result(a)), "{answers:?}");
    for _ in 0..3 {
        let (answers, _) = until(
            &client,
            &target,
            &mut card,
            Duration::from_secs(1),
            is_internal,
        )
        .await;
        assert_eq!(answers.len(), 1);
    }
    pg.restore();
    let (answers, took) = until(
        &client,
        &target,
        &mut card,
        Duration::from_secs(10),
        is_result,
    )
    .await;
    eprintln!("PostgreSQL back: answered again after {took:?}");
    answers.iter().for_each(|a| tally.add(a));

    // Nothing answered InternalError reached the ledger; every Result did.
    assert_eq!(usage_totals(d.command(&[])), (tally.total, tally.billed));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_an_embedded_store_and_the_results_stay_the_same() {
    let mut d = Deployment::new().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir_arg = data_dir.to_str().unwrap().to_string();
    // Embedded commands: no PostgreSQL settings, the data directory's own master key
    // (unless the environment sets one, which then serves both sides).
    let embedded_env = || {
        let mut cmd = Command::new(BIN);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        cmd.env("CARDCHECK_LOG", "warn");
        cmd
    };
    let embedded = |args: &[&str]| {
        let mut cmd = embedded_env();
        cmd.args(args).args(["--data-dir", &data_dir_arg]);
        cmd
    };
    let (secret_id, secret_key) =
        issued(&run_ok(embedded(&["account", "create", "acme", "--json"])));
    run_ok(embedded(&[
        "account",
        "set",
        "acme",
        "--daily-attempts",
        "4",
    ]));
    let public_before = run_ok(embedded(&["key", "public"]));
    import_registry(&data_dir).await;

    let client = Client::new(&secret_id, &secret_key);
    let checks = [
        ("张三", "6225760000000001", "0"),
        ("王五", "6225760000000002", "-4"),
        ("李四", "6225760000000002", "-11"),
        ("李四", "6225760000000003", "-7"),
    ];
    let mut tally = Tally::default();
    {
        let node = Server::start(embedded_env(), &["--no-demo", "--data-dir", &data_dir_arg]);
        let ts = now();
        for (i, (name, card, expected)) in checks.iter().enumerate() {
            let answer = client
                .verify(node.target(), name, card, ts - i as i64)
                .await;
            assert_eq!(answer, Answer::r(expected), "embedded: {name} {card}");
            tally.add(&answer);
        }
        node.stop();
    }

    // Migrate: the data directory's master key is the deployment's from now on.
    let key_from_env = std::env::var("CARDCHECK_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    let master_key_hex = match &key_from_env {
        Some(v) => v.clone(),
        None => std::fs::read_to_string(data_dir.join("master.key")).unwrap(),
    };
    d.master_key_hex = master_key_hex.trim().to_string();
    let mut cmd = d.command(&["migrate", "--data-dir", &data_dir_arg, "--json"]);
    if key_from_env.is_none() {
        // migrate reads the data directory's master.key, as an operator would.
        cmd.env_remove("CARDCHECK_MASTER_KEY");
    }
    let report: Value = serde_json::from_str(&run_ok(cmd)).unwrap();
    eprintln!("migrate: {report}");
    assert_eq!(report["accounts"], json!({"copied": 1, "read": 1}));
    assert_eq!(report["credentials"], json!({"copied": 1, "read": 1}));
    assert_eq!(report["registry"], json!({"copied": 3, "read": 3}));
    assert_eq!(report["ledger"], json!({"copied": 4, "read": 4}));
    assert_eq!(report["attempts"], json!({"copied": 3, "read": 3}));
    assert_eq!(report["server_keys"], "copied");
    // The audit log (account create: 2 entries, account set: 1) came along verbatim.
    assert_eq!(report["audit"], json!({"copied": 3, "read": 3}));
    // Running it again copies nothing new.
    let mut cmd = d.command(&["migrate", "--data-dir", &data_dir_arg, "--json"]);
    if key_from_env.is_none() {
        // migrate reads the data directory's master.key, as an operator would.
        cmd.env_remove("CARDCHECK_MASTER_KEY");
    }
    let again: Value = serde_json::from_str(&run_ok(cmd)).unwrap();
    assert_eq!(again["ledger"], json!({"copied": 0, "read": 4}));
    assert_eq!(again["server_keys"], "identical");
    assert_eq!(again["audit"], json!({"copied": 0, "read": 3}));
    // The copied chain goes on in PostgreSQL: each migration is recorded after it.
    let audit: Value = serde_json::from_str(&d.cli(&["audit", "list", "--json"])).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "key.create",
            "account.set",
            "store.migrate",
            "store.migrate"
        ]
    );
    assert!(
        d.cli(&["audit", "verify"])
            .starts_with("audit log intact: 5 entries, head ")
    );

    // The same public key, the same credentials, the same Results.
    assert_eq!(d.cli(&["key", "public"]), public_before);
    let nodes: Vec<Server> = (0..2)
        .map(|_| Server::start(d.command(&[]), &["--no-demo"]))
        .collect();
    let ts = now();
    for (i, (name, card, expected)) in checks.iter().enumerate() {
        let answer = client
            .verify(nodes[i % 2].target(), name, card, ts - i as i64)
            .await;
        assert_eq!(answer, Answer::r(expected), "PostgreSQL: {name} {card}");
        tally.add(&answer);
    }
    // Today's attempt counts came along: card 1 had 2 of its 4, so two more pass.
    for (i, expected) in ["0", "0", "-17"].iter().enumerate() {
        let answer = client
            .verify(
                nodes[0].target(),
                "张三",
                "6225760000000001",
                ts - 10 - i as i64,
            )
            .await;
        assert_eq!(answer, Answer::r(expected), "attempt {} of card 1", i + 3);
        tally.add(&answer);
    }
    assert_eq!(usage_totals(d.command(&[])), (tally.total, tally.billed));
    for node in nodes {
        node.stop();
    }
}

/// Three cardholders in the embedded registry, through the store API.
async fn import_registry(data_dir: &Path) {
    use cardcheck_domain::{CardNumber, CardStatus, CardholderName};
    let backend = cardcheck_store::open_sqlite(data_dir).unwrap();
    let record = |name: &str, card: &str, status| cardcheck_store::RegistryRecord {
        card: CardNumber::parse(card).unwrap(),
        name: CardholderName::parse(name).unwrap(),
        status,
    };
    backend
        .registry
        .upsert(&[
            record("张三", "6225760000000001", CardStatus::Active),
            record("李四", "6225760000000002", CardStatus::Lost),
            record("赵六", "6225769999999999", CardStatus::Active),
        ])
        .await
        .unwrap();
    backend.close();
}
