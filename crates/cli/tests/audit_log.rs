//! Issue 9, the audit log of administrative actions (docs/operations.md "Audit log"):
//! every administrative command records who did what to which thing, `audit list`
//! shows it, `audit verify` checks the hash chain and names the first entry that was
//! tampered with, and a failed audit write fails the command.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod ops_common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const ACTOR: &str = "auditor@test-host";
const CARDS: [&str; 2] = ["6225768888888888", "6217000000000000012"];
const NAMES: [&str; 3] = ["Wei Xiaobao", "wei xiaobao", "张三"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `cardcheck ARGS --data-dir DATA` as [`ACTOR`].
fn cardcheck(data: &Path, args: &[&str]) -> Run {
    let mut cmd: Command = ops_common::cardcheck(args);
    cmd.arg("--data-dir")
        .arg(data)
        .env("CARDCHECK_ACTOR", ACTOR)
        .env("CARDCHECK_LOG", "warn");
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(data: &Path, args: &[&str]) -> String {
    let r = cardcheck(data, args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stderr, r.stdout);
    r.stdout
}

fn json(data: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(data, args)).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every column of every audit row, as stored.
fn audit_table_bytes(data: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(data.join("cardcheck.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        for i in 0..8 {
            match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    out.extend_from_slice(t)
                }
                rusqlite::types::ValueRef::Integer(n) => {
                    out.extend_from_slice(n.to_string().as_bytes())
                }
                other => panic!("unexpected column {other:?}"),
            }
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn administrative_actions_are_recorded_and_the_chain_detects_tampering() {
    let (tmp, data) = ops_common::data_dir();

    let created = json(&data, &["account", "create", "acme", "--json"]);
    let first_id = created["secret_id"].as_str().unwrap().to_string();
    let mut secrets = vec![created["secret_key"].as_str().unwrap().to_string()];
    ok(
        &data,
        &[
            "account", "set", "acme", "--status", "arrears", "--qps", "5",
        ],
    );
    let key = json(&data, &["key", "create", "acme", "--json"]);
    let second_id = key["secret_id"].as_str().unwrap().to_string();
    secrets.push(key["secret_key"].as_str().unwrap().to_string());
    ok(&data, &["key", "revoke", &second_id]);
    let token = json(&data, &["key", "token", "acme", "--ttl", "10m", "--json"]);
    let token_id = token["secret_id"].as_str().unwrap().to_string();
    secrets.push(token["secret_key"].as_str().unwrap().to_string());
    secrets.push(token["token"].as_str().unwrap().to_string());

    let csv_dir = tmp.path().join("uploads");
    std::fs::create_dir_all(&csv_dir).unwrap();
    let csv = csv_dir.join("cards.csv");
    std::fs::write(
        &csv,
        format!(
            "name,card,status\n{},{},active\n{},{},lost\nbad,123,active\n",
            NAMES[0], CARDS[0], NAMES[2], CARDS[1]
        ),
    )
    .unwrap();
    ok(&data, &["registry", "import", csv.to_str().unwrap()]);
    // A command that changes nothing records nothing.
    ok(&data, &["account", "list"]);
    ok(&data, &["registry", "stats"]);

    let listed = json(&data, &["audit", "list", "--json"]);
    let entries = listed.as_array().unwrap();
    let summary: Vec<(u64, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "account.create", "acme"),
            (2, "key.create", first_id.as_str()),
            (3, "account.set", "acme"),
            (4, "key.create", second_id.as_str()),
            (5, "key.revoke", second_id.as_str()),
            (6, "key.token", token_id.as_str()),
            (7, "registry.import", "cards.csv"),
        ]
    );
    for e in entries {
        assert_eq!(e["actor"], ACTOR);
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }
    let detail = |i: usize| entries[i]["detail"].as_str().unwrap();
    assert_eq!(detail(0), "status active, qps 20, daily attempts 10");
    assert_eq!(detail(1), "account acme");
    assert_eq!(detail(2), "status active → arrears, qps 20 → 5");
    assert_eq!(detail(4), "account acme");
    assert!(
        detail(5).starts_with("account acme, temporary, ttl 600 s, expires "),
        "{}",
        detail(5)
    );
    assert!(
        detail(6)
            .starts_with("rows 3, inserted 2, updated 0, unchanged 0, duplicates 0, rejected 1, ")
            && detail(6).ends_with(" s"),
        "{}",
        detail(6)
    );

    // Filters and the table.
    let keys = json(&data, &["audit", "list", "--action", "key", "--json"]);
    let key_ids: Vec<u64> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(key_ids, [2, 4, 5, 6]);
    let last_two = json(&data, &["audit", "list", "--limit", "2", "--json"]);
    assert_eq!(last_two[0]["id"], 6);
    assert_eq!(last_two[1]["id"], 7);
    let future = json(&data, &["audit", "list", "--since", "2999-01-01", "--json"]);
    assert_eq!(future, Value::Array(Vec::new()));
    let past = json(
        &data,
        &["audit", "list", "--until", "2000-01-01T00:00:00Z", "--json"],
    );
    assert_eq!(past, Value::Array(Vec::new()));
    let table = ok(&data, &["audit", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 8, "{table}");
    assert!(lines[0].contains("TIME (UTC)") && lines[0].contains("DETAIL"));
    assert!(lines[3].contains("account.set") && lines[3].contains("status active → arrears"));
    assert!(lines[7].contains(ACTOR) && lines[7].contains("cards.csv"));
    let bad = cardcheck(&data, &["audit", "list", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // Nothing secret and nothing personal: not in the table, not in any output.
    let stored = audit_table_bytes(&data);
    let outputs = [listed.to_string(), table.clone()].concat();
    for needle in secrets.iter().map(String::as_str).chain(CARDS).chain(NAMES) {
        assert!(
            !contains(&stored, needle.as_bytes()),
            "{needle} in the audit table"
        );
        assert!(!outputs.contains(needle), "{needle} in audit list");
    }

    // The chain is intact; the head it prints can be checked later.
    let verified = ok(&data, &["audit", "verify"]);
    let head = verified
        .trim()
        .strip_prefix("audit log intact: 7 entries, head ")
        .unwrap_or_else(|| panic!("{verified}"));
    assert_eq!(head.len(), 16);
    assert_eq!(
        head,
        &entries[6]["hash"].as_str().unwrap()[..16],
        "the head is the last entry's hash"
    );
    ok(&data, &["audit", "verify", "--expect", head]);
    let verdict = json(&data, &["audit", "verify", "--json"]);
    assert_eq!(verdict["intact"], true);
    assert_eq!(verdict["entries"], 7);

    // The table refuses changes.
    let conn = rusqlite::Connection::open(data.join("cardcheck.db")).unwrap();
    let refused = conn
        .execute("UPDATE audit SET detail = 'qps 20 → 500' WHERE id = 3", [])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    assert!(conn.execute("DELETE FROM audit WHERE id = 7", []).is_err());

    // Someone with the file and a SQLite shell drops the trigger and edits entry 3.
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; \
         UPDATE audit SET detail = 'qps 20 → 500' WHERE id = 3;",
    )
    .unwrap();
    let broken = cardcheck(&data, &["audit", "verify"]);
    assert_eq!(broken.code, 1, "{}{}", broken.stdout, broken.stderr);
    assert_eq!(broken.stderr.lines().count(), 1, "{}", broken.stderr);
    assert!(
        broken
            .stderr
            .starts_with("error: audit log broken at entry 3: "),
        "{}",
        broken.stderr
    );
    let verdict = cardcheck(&data, &["audit", "verify", "--json"]);
    assert_eq!(verdict.code, 1);
    let verdict: Value = serde_json::from_str(&verdict.stdout).unwrap();
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["broken_id"], 3);

    // Or cuts the tail (after restoring entry 3): only a recorded head shows it.
    conn.execute(
        "UPDATE audit SET detail = 'status active → arrears, qps 20 → 5' WHERE id = 3",
        [],
    )
    .unwrap();
    conn.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 7;")
        .unwrap();
    ok(&data, &["audit", "verify"]);
    let cut = cardcheck(&data, &["audit", "verify", "--expect", head]);
    assert_eq!(cut.code, 1);
    assert!(
        cut.stderr
            .contains(&format!("the recorded head {head} is not in the audit log")),
        "{}",
        cut.stderr
    );
}

#[test]
fn a_failed_audit_write_fails_the_command_but_reports_what_was_done() {
    let (_tmp, data) = ops_common::data_dir();
    ok(&data, &["account", "create", "acme"]);
    // The audit table is gone (a damaged database): the next action cannot be audited.
    let conn = rusqlite::Connection::open(data.join("cardcheck.db")).unwrap();
    conn.execute_batch("DROP TABLE audit").unwrap();
    drop(conn);

    let r = cardcheck(&data, &["key", "create", "acme", "--json"]);
    assert_eq!(r.code, 1);
    // The key exists, so it is shown; the error says it was created but not audited.
    let issued: Value = serde_json::from_str(&r.stdout).unwrap();
    let secret_id = issued["secret_id"].as_str().unwrap();
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "error: key {secret_id} was created, but it could not be recorded in the audit log: "
        )),
        "{}",
        r.stderr
    );

    let r = cardcheck(&data, &["account", "set", "acme", "--status", "arrears"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("account acme was changed, but it could not be recorded in the audit log"),
        "{}",
        r.stderr
    );
    let accounts = json(&data, &["account", "list", "--json"]);
    assert_eq!(
        accounts[0]["status"], "arrears",
        "the change itself was made"
    );
}

#[test]
fn the_demo_account_of_serve_is_recorded_with_the_actor() {
    let (_tmp, data) = ops_common::data_dir();
    let server = ops_common::Server::start(&data, &["--demo"], &[("CARDCHECK_ACTOR", "ops-bot")]);
    server.stop();
    let entries = json(&data, &["audit", "list", "--json"]);
    let got: Vec<(&str, &str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{entries}");
    assert_eq!(got[0], ("ops-bot", "account.create", "demo"));
    assert_eq!((got[1].0, got[1].1), ("ops-bot", "key.create"));
    assert!(got[1].2.starts_with("AKID"));

    // A restart on the same data directory creates (and records) nothing.
    let server = ops_common::Server::start(&data, &["--demo"], &[]);
    server.stop();
    let again = json(&data, &["audit", "list", "--json"]);
    assert_eq!(again.as_array().unwrap().len(), 2);
}

#[test]
fn the_default_actor_is_the_os_user_at_the_host() {
    let (_tmp, data) = ops_common::data_dir();
    let out = ops_common::cardcheck(&["account", "create", "acme", "--data-dir"])
        .arg(&data)
        .env_remove("CARDCHECK_ACTOR")
        .env("USER", "carol")
        .output()
        .unwrap();
    assert!(out.status.success());
    // --actor overrides the environment.
    let out = ops_common::cardcheck(&["key", "create", "acme", "--actor", "dave", "--data-dir"])
        .arg(&data)
        .env("CARDCHECK_ACTOR", "eve")
        .output()
        .unwrap();
    assert!(out.status.success());
    let entries = json(&data, &["audit", "list", "--json"]);
    let actor = |i: usize| entries[i]["actor"].as_str().unwrap().to_string();
    assert!(
        actor(0) == "carol" || actor(0).starts_with("carol@"),
        "{}",
        actor(0)
    );
    assert_eq!(actor(2), "dave");
}

/// `key revoke` with a card number where the SecretId belongs echoed the card number
/// back ("no such SecretId: 6225768888888888").
#[test]
fn revoking_an_unknown_secret_id_does_not_echo_a_card_number() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    let r = cardcheck(&data, &["key", "revoke", CARDS[0]]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no such SecretId"), "{}", r.stderr);
    assert!(!r.stderr.contains("8888"), "{}", r.stderr);
    let plain = cardcheck(&data, &["key", "revoke", "AKIDnope"]);
    assert!(
        plain.stderr.contains("no such SecretId: AKIDnope"),
        "{}",
        plain.stderr
    );
}

/// `audit list --limit 0` printed only the header: a limit below 1 is a usage error.
#[test]
fn audit_list_with_limit_zero_is_a_usage_error() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    let r = cardcheck(&data, &["audit", "list", "--limit", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--limit"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// A read-only command given a `--data-dir` that is a regular file said "no
/// cardcheck.db" while `serve` said what was wrong.
#[test]
fn a_data_dir_that_is_a_file_is_named_as_such_by_read_only_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    for args in [&["account", "list"][..], &["audit", "verify"], &["usage"]] {
        let r = cardcheck(&file, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("exists and is not a directory"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// `audit verify` and `audit list` opened the whole store, which writes: on a
/// read-only copy they failed with "attempt to write a readonly database"
/// (docs/operations.md: anyone can verify a copy). They now read the audit log alone,
/// read-only — so a copy of `cardcheck.db` by itself verifies, and nothing is added
/// to the copy's directory.
#[test]
fn the_audit_log_of_a_copied_database_verifies_without_writing() {
    let (_tmp, data) = ops_common::data_dir();
    ops_common::create_account(&data, "acme");
    ok(&data, &["key", "create", "acme"]);
    let head = json(&data, &["audit", "verify", "--json"]);
    let entries = head["entries"].as_u64().unwrap();
    assert!(entries >= 2, "{head}");

    // The database alone, as an operator copies it for verification.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(data.join("cardcheck.db"), copy.join("cardcheck.db")).unwrap();
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with("-shm") && !n.ends_with("-wal"))
            .collect();
        v.sort();
        v
    };
    let before = names(&copy);
    let verdict = json(&copy, &["audit", "verify", "--json"]);
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["entries"].as_u64(), Some(entries), "{verdict}");
    assert_eq!(verdict["head"], head["head"], "{verdict}");
    let listed = json(&copy, &["audit", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len() as u64, entries, "{listed}");
    // No ledger.db, no master.key: nothing was created beside the copy.
    assert_eq!(names(&copy), before);

    // A directory this user cannot write (not testable as root, who writes anyway).
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        use std::os::unix::fs::PermissionsExt;
        let read_only = std::fs::Permissions::from_mode(0o555);
        std::fs::set_permissions(&copy, read_only).unwrap();
        let verdict = json(&copy, &["audit", "verify", "--json"]);
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(verdict["intact"], true, "{verdict}");
    }
}
