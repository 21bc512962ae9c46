//! `cardcheck usage` (docs/cli.md "Administration").
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

use std::process::Command;

/// Regression (new-user trial): `usage --account nosuch` printed an empty table and
/// exited 0, unlike every other command naming an unknown account.
#[test]
fn usage_for_an_unknown_account_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cardcheck");
    let data = dir.path().join("data");
    let created = Command::new(bin)
        .args(["account", "create", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(created.status.success());
    let known = Command::new(bin)
        .args([
            "usage",
            "--account",
            "acme",
            "--format",
            "csv",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(known.status.success());
    let unknown = Command::new(bin)
        .args(["usage", "--account", "nosuch", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert_eq!(stderr.trim(), "error: account nosuch not found");
}
