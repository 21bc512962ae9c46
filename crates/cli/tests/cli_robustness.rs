//! Defects found by a hostile trial of the command line, one test each: a listing into a
//! closed pipe, two servers on one embedded data directory, a busy port on a fresh data
//! directory, `account set` without a change or with `--qps 0`, and endless input files.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod ops_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits up to `limit` for `child` to exit; kills it and fails when it does not.
fn wait_exit(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}; stdout {:?} stderr {:?}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn account_names(data: &Path) -> Vec<String> {
    let mut cmd = ops_common::cardcheck(&["account", "list", "--json", "--data-dir"]);
    cmd.arg(data);
    let doc: Value = serde_json::from_str(&ops_common::run_ok(cmd)).unwrap();
    doc.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_listing_into_a_closed_pipe_ends_quietly_instead_of_panicking() {
    let (_tmp, data) = ops_common::data_dir();
    for i in 0..30 {
        ops_common::create_account(&data, &format!("acct{i}"));
    }
    let data_arg = data.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["audit", "list", "--data-dir", data_arg],
        &["audit", "list", "--json", "--data-dir", data_arg],
        &["account", "list", "--data-dir", data_arg],
        &["usage", "--format", "csv", "--data-dir", data_arg],
        &["sandbox", "list", "--json"],
    ];
    for args in commands {
        // A pipe whose reader is gone before the command writes: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = ops_common::cardcheck(args);
        cmd.env("RUST_BACKTRACE", "1")
            .stdout(writer)
            .stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn a_second_serve_on_the_same_data_dir_is_refused() {
    let (_tmp, data) = ops_common::data_dir();
    let first = ops_common::Server::start(&data, &["--demo"], &[]);
    let second = ops_common::cardcheck(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(&data)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = wait_exit(second, Duration::from_secs(15), "the second serve");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already served by another cardcheck serve")
            && stderr.contains(&format!("(pid {})", first.child.id())),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "{}",
        text(&out.stdout)
    );
    // The first one stops; then the directory can be served again (the lock is the
    // process's, so a `kill -9` releases it as well).
    first.kill9();
    let again = ops_common::Server::start(&data, &["--demo"], &[]);
    again.stop();
}

#[test]
fn a_busy_port_on_a_fresh_data_dir_does_not_swallow_the_demo_secret_key() {
    let (_tmp, data) = ops_common::data_dir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut cmd = ops_common::cardcheck(&[
        "serve",
        "--listen",
        &addr,
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
    ]);
    cmd.arg(&data);
    let out = run(cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    drop(busy);
    if data.exists() {
        assert!(
            account_names(&data).is_empty(),
            "no demo account whose SecretKey was never shown"
        );
    }

    // Started again on a free port, it creates the demo account and shows its key.
    let server = ops_common::Server::start(&data, &["--demo"], &[]);
    let started = Instant::now();
    while !text(&server.stdout.lock().unwrap()).contains("SecretKey:") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no SecretKey printed: {}",
            text(&server.stdout.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    assert_eq!(account_names(&data), ["demo"]);
}

#[test]
fn account_set_without_a_change_is_a_usage_error() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    let mut cmd = ops_common::cardcheck(&["account", "set", "acme", "--data-dir"]);
    cmd.arg(&data);
    let out = run(cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--status") && stderr.contains("--qps"),
        "{stderr}"
    );
}

#[test]
fn account_set_qps_zero_is_refused_instead_of_blocking_every_request() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    let mut cmd = ops_common::cardcheck(&["account", "set", "acme", "--qps", "0", "--data-dir"]);
    cmd.arg(&data);
    let out = run(cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--status"), "{stderr}");
    let mut list = ops_common::cardcheck(&["account", "list", "--json", "--data-dir"]);
    list.arg(&data);
    let doc: Value = serde_json::from_str(&ops_common::run_ok(list)).unwrap();
    assert_eq!(doc[0]["qps"], 100_000, "unchanged: {doc}");

    let mut one = ops_common::cardcheck(&["account", "set", "acme", "--qps", "1", "--data-dir"]);
    one.arg(&data);
    ops_common::run_ok(one);
}

#[test]
fn endless_input_files_are_refused_without_exhausting_memory() {
    let (_tmp, data) = ops_common::data_dir();
    let data = data.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &[
            "verify",
            "--name",
            "Wei Xiaobao",
            "--card",
            "6225768888888888",
            "--secret-id",
            "AKIDx",
            "--secret-key",
            "k",
            "--endpoint",
            "http://127.0.0.1:1",
            "--encrypt",
            "AES-256-CBC",
            "--public-key",
            "/dev/zero",
        ],
        &[
            "verify",
            "--name",
            "Wei Xiaobao",
            "--card",
            "6225768888888888",
            "--secret-id",
            "AKIDx",
            "--secret-key",
            "k",
            "--endpoint",
            "http://127.0.0.1:1",
            "--ca-cert",
            "/dev/zero",
        ],
        &["serve", "--data-dir", data, "--config", "/dev/zero"],
        &[
            "serve",
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--extra-bins",
            "/dev/zero",
        ],
        // Read in the server crate (listener::load_tls).
        &[
            "serve",
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/dev/zero",
            "--tls-key",
            "/dev/zero",
        ],
    ];
    for args in cases {
        let child = ops_common::cardcheck(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_exit(child, Duration::from_secs(20), &format!("{args:?}"));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("larger than"), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

/// Regression (new-user trial): `account list --data-dir typo` created `typo/` with a
/// new master key and showed an empty store.
#[test]
fn read_only_commands_refuse_a_missing_data_dir_instead_of_creating_one() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("typo");
    let typo_arg = typo.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["account", "list", "--data-dir", typo_arg],
        &["usage", "--data-dir", typo_arg],
        &["registry", "stats", "--data-dir", typo_arg],
        &["audit", "list", "--data-dir", typo_arg],
        &["audit", "verify", "--data-dir", typo_arg],
    ];
    for args in commands {
        let out = run(ops_common::cardcheck(args));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains("no cardcheck store in"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(!typo.exists(), "{args:?} created the data directory");
    }
}

/// Regression (new-user trial): `usage --from` after `--to` printed an empty table.
#[test]
fn usage_with_from_after_to_is_an_error() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    let mut cmd = ops_common::cardcheck(&[
        "usage",
        "--from",
        "2026-12-04",
        "--to",
        "2026-12-01",
        "--data-dir",
    ]);
    cmd.arg(&data);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2), "a usage error (spec/cli.md)");
    assert!(text(&out.stderr).contains("--from is after --to"));
}

/// Regression (new-user trial): `verify --input /dev/zero` buffered an endless header
/// line until the allocation failed (exit 134); a file without line breaks now gets
/// one line naming the problem.
#[test]
fn verify_input_without_line_breaks_is_refused_instead_of_exhausting_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("binary.csv");
    std::fs::write(&binary, vec![b'x'; 300 * 1024]).unwrap();
    let output = tmp.path().join("out.csv");
    for input in [binary.to_str().unwrap(), "/dev/zero"] {
        let mut cmd = ops_common::cardcheck(&[
            "verify",
            "--secret-id",
            "AKIDx",
            "--secret-key",
            "k",
            "--endpoint",
            "http://127.0.0.1:1",
            "--input",
            input,
            "--output",
        ]);
        cmd.arg(&output);
        let started = Instant::now();
        let out = run(cmd);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{input}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("has a line longer than 64 KiB"),
            "{input}: {err}"
        );
        let _ = std::fs::remove_file(&output);
    }
}

/// Regression (new-user trial): `--output /tmp` said the file "already exists: pass
/// --resume … or --overwrite".
#[test]
fn verify_output_that_is_a_directory_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, "name,card\nWei Xiaobao,6225768888888888\n").unwrap();
    let mut cmd = ops_common::cardcheck(&[
        "verify",
        "--secret-id",
        "AKIDx",
        "--secret-key",
        "k",
        "--endpoint",
        "http://127.0.0.1:1",
        "--input",
    ]);
    cmd.arg(&input).arg("--output").arg(tmp.path());
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is a directory"), "{err}");
}

/// `sandbox list` printed descriptions in a fixed 34-character column: the longest one
/// ("Cardholder information is incorrect") pushed its note out of line.
#[test]
fn sandbox_list_columns_stay_aligned_with_the_longest_description() {
    let out = ops_common::run_ok(ops_common::cardcheck(&["sandbox", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() > 10, "{out}");
    let header = lines[0];
    assert!(
        header.starts_with("CARD") && header.ends_with("NOTE"),
        "{header}"
    );
    let note_at = header.find("NOTE").unwrap();
    let description_at = header.find("DESCRIPTION").unwrap();
    for line in &lines[1..] {
        let chars: Vec<char> = line.chars().collect();
        // Two spaces before each column start, and a non-space at it.
        for at in [description_at, note_at] {
            assert_eq!(&chars[at - 2..at], &[' ', ' '], "{line}");
            assert_ne!(chars[at], ' ', "{line}");
        }
    }
    assert!(out.contains("Cardholder information is incorrect"), "{out}");
}

/// `migrate` to an unreachable PostgreSQL said "database error: cannot connect to …:
/// database error: PostgreSQL: error connecting to server", without the cause.
#[test]
fn an_unreachable_postgresql_is_named_once_with_its_cause() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    // Port 1 on the loopback: nothing listens there, the connection is refused at once.
    let mut cmd = ops_common::cardcheck(&[
        "migrate",
        "--database-url",
        "postgres://127.0.0.1:1/test",
        "--redis-url",
        "redis://127.0.0.1:1/",
        "--data-dir",
    ]);
    cmd.arg(&data);
    let out = run(cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("database error").count(), 1, "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
}

/// A FIFO at `path` (`mkfifo`: `unsafe` libc calls are forbidden here).
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Reads `fifo` to its end in a thread; the result comes back over the channel, so a
/// writer that never opens it fails the test (`recv_timeout`) instead of hanging it.
fn read_fifo_in_thread(fifo: &Path) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(fifo).unwrap());
    });
    rx
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

/// Broke: `registry generate --output` renamed its temporary file over the output, so
/// a symlink became a regular file (its target untouched) and a FIFO or device node
/// (`/dev/stdout`, as root) was replaced by a regular file.
#[test]
fn registry_generate_writes_through_a_symlink_and_into_a_fifo() {
    use std::os::unix::fs::FileTypeExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target.csv");
    std::fs::write(&target, "old\n").unwrap();
    let link = tmp.path().join("link.csv");
    std::os::unix::fs::symlink("target.csv", &link).unwrap();
    let mut cmd = ops_common::cardcheck(&["registry", "generate", "--count", "3", "--output"]);
    cmd.arg(&link).args(["--seed", "1"]);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(is_symlink(&link));
    let written = std::fs::read_to_string(&target).unwrap();
    assert_eq!(written.lines().count(), 4, "{written}");
    assert!(written.starts_with("name,card,status\n"), "{written}");
    // No temporary file left beside the link or the target.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);

    let fifo = tmp.path().join("out.fifo");
    mkfifo(&fifo);
    let received = read_fifo_in_thread(&fifo);
    let mut cmd = ops_common::cardcheck(&["registry", "generate", "--count", "3", "--output"]);
    cmd.arg(&fifo).args(["--seed", "1"]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_exit(child, Duration::from_secs(30), "generate into a FIFO");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the FIFO was never written");
    assert_eq!(text(&bytes), written, "the same rows, through the FIFO");
    // Written in place: the summary goes to stderr, in case the FIFO is stdout.
    assert!(
        text(&out.stderr).contains("wrote 3 rows"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

/// `verify --input in.csv --output <output> --resume` against a closed port (every
/// row of the fixtures below is already answered, so nothing is sent).
fn verify_resume(input: &Path, output: &Path) -> Command {
    let mut cmd = ops_common::cardcheck(&[
        "verify",
        "--secret-id",
        "AKIDx",
        "--secret-key",
        "k",
        "--endpoint",
        "http://127.0.0.1:1",
        "--max-attempts",
        "1",
        "--quiet",
        "--resume",
        "--input",
    ]);
    cmd.arg(input).arg("--output").arg(output);
    cmd
}

/// Broke: `verify --resume` rewrote the output through a temporary file renamed over
/// it, so an output that was a symlink became a regular file and the file it pointed to
/// kept the old rows.
#[test]
fn verify_resume_writes_through_an_output_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, "name,card\nWei Xiaobao,6225768888888888\n").unwrap();
    let target = tmp.path().join("results.csv");
    let answered = "Line,name,card,Result,Description,RequestId,ErrorCode,ErrorMessage,\
                    Attempts,ElapsedMs,Time\n\
                    2,Wei Xiaobao,6225768888888888,0,ok,r-1,,,1,5,2026-01-01T00:00:00Z\n";
    // A torn last line, which the resume drops by rewriting the file.
    std::fs::write(&target, format!("{answered}3,Wei")).unwrap();
    let link = tmp.path().join("link.csv");
    std::os::unix::fs::symlink("results.csv", &link).unwrap();
    let out = run(verify_resume(&input, &link));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(is_symlink(&link), "the output link was replaced by a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), answered);
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// Broke: `verify --resume` with a FIFO as the output replaced the FIFO with a regular
/// file; resuming needs to read the output back, which a FIFO cannot give, so it is
/// refused in one line and the FIFO is left alone.
#[test]
fn verify_resume_into_a_fifo_is_refused_in_one_line() {
    use std::os::unix::fs::FileTypeExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, "name,card\nWei Xiaobao,6225768888888888\n").unwrap();
    let fifo = tmp.path().join("out.fifo");
    mkfifo(&fifo);
    let mut cmd = verify_resume(&input, &fifo);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_exit(
        child,
        Duration::from_secs(15),
        "verify --resume into a FIFO",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}
