//! Helpers for the `registry_*` tests: run the binary, read its JSON.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn cardcheck() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardcheck"));
    cmd.env_remove("CARDCHECK_DATA_DIR")
        .env_remove("CARDCHECK_DATABASE_URL")
        .env_remove("CARDCHECK_REDIS_URL")
        .env_remove("CARDCHECK_MASTER_KEY")
        .env("CARDCHECK_LOG", "warn");
    cmd
}

pub fn run(args: &[&str]) -> Run {
    let out: Output = cardcheck().args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `registry generate` into `file`.
pub fn generate(file: &Path, count: u64, seed: u64) {
    let r = run(&[
        "registry",
        "generate",
        "--count",
        &count.to_string(),
        "--output",
        path(file),
        "--seed",
        &seed.to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `registry import FILE --data-dir DATA` with `extra` arguments.
pub fn import(file: &Path, data: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["registry", "import", path(file), "--data-dir", path(data)];
    args.extend_from_slice(extra);
    run(&args)
}

/// `registry import --json`; returns the report.
pub fn import_json(file: &Path, data: &Path) -> serde_json::Value {
    let r = import(file, data, &["--json"]);
    assert_eq!(r.code, 0, "stderr: {}\nstdout: {}", r.stderr, r.stdout);
    serde_json::from_str(&r.stdout).unwrap()
}

/// `registry stats --json`.
pub fn stats(data: &Path) -> serde_json::Value {
    let r = run(&["registry", "stats", "--data-dir", path(data), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// The generated rows: (name, card, status).
pub fn rows(file: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// Every file under `dir` (recursively), as bytes.
pub fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// The plain text that could betray a card or a name in binary files: maximal runs of
/// 12+ ASCII digits, and maximal runs of 2+ UTF-8 encoded Han characters (U+3400..U+9FFF).
/// One pass per file, so a large sample can be checked quickly even in debug builds.
pub fn plain_runs(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut digits = Vec::new();
    let mut han = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start >= 12 {
                digits.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
            }
            continue;
        }
        let han_at = |j: usize| {
            j + 3 <= bytes.len()
                && (0xE3..=0xE9).contains(&bytes[j])
                && std::str::from_utf8(&bytes[j..j + 3])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .is_some_and(|c| ('\u{3400}'..='\u{9FFF}').contains(&c))
        };
        if han_at(i) {
            let start = i;
            while han_at(i) {
                i += 3;
            }
            if i - start >= 6 {
                han.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
            }
            continue;
        }
        i += 1;
    }
    (digits, han)
}
