//! `cardcheck registry generate | import | stats` end to end (issue 6): counts,
//! re-import, nothing readable at rest, bad files, rejected rows, status words,
//! determinism. Sizes are kept small for CI; `bench/registry_import.sh` does 10M.
#![allow(clippy::unwrap_used)]

mod registry_common;

use std::collections::BTreeMap;
use std::path::Path;

use cardcheck_domain::CardStatus;
use registry_common::{
    all_bytes, generate, import, import_json, path, plain_runs, rows, run, stats,
};

/// Import with the staging forced onto bucket files after `memory_rows` rows.
fn import_with_memory(
    file: &Path,
    data: &Path,
    memory_rows: u64,
    extra: &[&str],
) -> registry_common::Run {
    let out = registry_common::cardcheck()
        .args(["registry", "import", path(file), "--data-dir", path(data)])
        .args(extra)
        .env("CARDCHECK_IMPORT_MEMORY_ROWS", memory_rows.to_string())
        .output()
        .unwrap();
    registry_common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn generated_registry_imports_reimports_and_stores_no_plain_card_or_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reg.csv");
    let data = dir.path().join("data");
    generate(&csv, 20_000, 11);
    let rows = rows(&csv);
    assert_eq!(rows.len(), 20_000);

    // Bucket files (external sort) path: spill after 1,000 staged rows.
    let r = import_with_memory(&csv, &data, 1_000, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["rows"], 20_000);
    assert_eq!(report["accepted"], 20_000);
    assert_eq!(report["inserted"], 20_000);
    assert_eq!(report["updated"], 0);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["rejected"], 0);
    assert_eq!(report["mode"], "resumable");
    assert_eq!(report["warnings"]["no_issuer"]["count"], 0);

    let s = stats(&data);
    assert_eq!(s["total"], 20_000);
    let mut expected: BTreeMap<String, u64> = CardStatus::ALL
        .iter()
        .map(|s| (s.as_word().to_owned(), 0))
        .collect();
    for (_, _, status) in &rows {
        *expected.get_mut(status).unwrap() += 1;
    }
    let by_status: BTreeMap<String, u64> = serde_json::from_value(s["by_status"].clone()).unwrap();
    assert_eq!(by_status, expected);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    let banks = s["by_bank"].as_array().unwrap();
    assert!(banks.len() > 10);
    assert_eq!(
        banks
            .iter()
            .map(|b| b["cards"].as_u64().unwrap())
            .sum::<u64>(),
        20_000
    );

    // Re-running the same import (how a crashed import is resumed) changes nothing.
    let again = import_json(&csv, &data);
    assert_eq!(again["unchanged"], 20_000);
    assert_eq!(again["inserted"], 0);
    assert_eq!(stats(&data)["total"], 20_000);

    // Nothing readable at rest: no card number, no name, no staging leftovers.
    let files = all_bytes(&data);
    assert!(
        files.iter().all(|(p, _)| !p.contains("registry-import")),
        "staging files left behind: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    // One pass per file finds every digit run of card length and every run of Han
    // text; no sample card or name may be among them (every 10th row: 2,000 of each).
    let mut checked = 0;
    for (p, bytes) in &files {
        let (digit_runs, han_runs) = plain_runs(bytes);
        for (name, card, _) in rows.iter().step_by(10) {
            assert!(
                !digit_runs.iter().any(|r| r.contains(card.as_str())),
                "a card number is stored in plain text in {p}"
            );
            assert!(
                !han_runs.iter().any(|r| r.contains(name.as_str())),
                "a name is stored in plain text in {p}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2_000);
    // The check itself works: it finds what the CSV holds.
    let (digit_runs, han_runs) = plain_runs(&std::fs::read(&csv).unwrap());
    assert!(digit_runs.iter().any(|r| r == &rows[0].1));
    assert!(han_runs.iter().any(|r| r == &rows[0].0));
    // The masked form is stored (first 6, last 4), as specified.
    let masked = format!(
        "{}{}{}",
        &rows[0].1[..6],
        "*".repeat(rows[0].1.len() - 10),
        &rows[0].1[rows[0].1.len() - 4..]
    );
    assert!(
        files
            .iter()
            .any(|(_, b)| b.windows(masked.len()).any(|w| w == masked.as_bytes()))
    );
}

#[test]
fn bad_files_give_one_clear_line_and_leave_the_registry_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let good = dir.path().join("good.csv");
    generate(&good, 300, 3);
    import_json(&good, &data);
    let before = stats(&data);
    let card = "6222021234567890128";
    let valid_rows: String = rows(&good)
        .iter()
        .take(200)
        .map(|(n, c, s)| format!("{n},{c},{s}\n"))
        .collect();

    let long_field = format!(
        "name,card,status\n{valid_rows}{},{card},active\n",
        "王".repeat(10_000)
    );
    let mut gbk = b"name,card,status\n".to_vec();
    gbk.extend_from_slice(b"\xD5\xC5\xC8\xFD,6222021234567890128,active\n");
    gbk.extend_from_slice(b"\xC0\xEE\xCB\xC4,6222021234567890136,active\n");
    let mut gbk_late = format!("name,card,status\n{}", valid_rows.repeat(60)).into_bytes();
    gbk_late.extend_from_slice(b"\xD5\xC5\xC8\xFD,6222021234567890128,active\n");
    let mut binary = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    binary.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong_header.csv",
            b"holder,pan,state\nx,y,z\n".to_vec(),
            "header",
        ),
        (
            "no_header.csv",
            format!("张三,{card},active\n").into_bytes(),
            "header",
        ),
        ("semicolons.csv", b"name;card;status\n".to_vec(), "header"),
        ("gbk.csv", gbk, "UTF-8"),
        ("gbk_late.csv", gbk_late, "UTF-8"),
        ("long_field.csv", long_field.into_bytes(), "limit"),
        ("empty.csv", Vec::new(), "empty"),
        ("blank.csv", b"\xEF\xBB\xBF\r\n\n".to_vec(), "empty"),
        ("binary.bin", binary, "binary"),
        // Broke: a stray quote on line 3 swallowed the 10 rows after it, reported as
        // one rejected row while the rest imported.
        (
            "stray_quote.csv",
            format!(
                "name,card,status\n张三,{card},active\n\"李四,{card},lost\n{}",
                // Under the field-size limit, which caught only longer swallows.
                valid_rows.lines().take(10).collect::<Vec<_>>().join("\n")
            )
            .into_bytes(),
            "runs across",
        ),
        (
            "no_newline.csv",
            format!("name,card,status\n\"{}", "a,".repeat(40_000)).into_bytes(),
            "longer than",
        ),
    ];
    for (file, bytes, needle) in cases {
        let p = dir.path().join(file);
        std::fs::write(&p, &bytes).unwrap();
        // A small in-memory limit so that staging files exist when the error comes.
        let r = import_with_memory(&p, &data, 50, &[]);
        assert_eq!(r.code, 1, "{file}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{file}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{file}: one line expected: {}", r.stderr);
        assert!(lines[0].starts_with("error: "), "{file}: {}", r.stderr);
        assert!(lines[0].contains(needle), "{file}: {}", r.stderr);
        assert!(!r.stderr.contains(card), "{file}: card number leaked");
        assert!(!r.stderr.contains("张三"), "{file}: name leaked");
        assert!(!r.stderr.contains("panicked"), "{file}");
        assert_eq!(stats(&data), before, "{file} changed the registry");
        assert!(
            all_bytes(&data)
                .iter()
                .all(|(p, _)| !p.contains("registry-import")),
            "{file}: staging files left behind"
        );
    }

    // A missing file is an operational failure too.
    let r = import(&dir.path().join("missing.csv"), &data, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error: cannot open"), "{}", r.stderr);
}

#[test]
fn rejected_rows_are_reported_by_line_and_skipped_and_the_last_row_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("mixed.csv");
    // BOM, CRLF, columns in another order, quoted fields, spellings requests accept.
    let text = "\u{feff}Card,Name,Status\r\n\
        \"6222 0212 3456 7890 128\",\"张三\",active\r\n\
        6222021234567890136,李 四,LOST\r\n\
        6222021234567890144,王5,active\r\n\
        12345,赵六,active\r\n\
        6222021234567890151,钱七,sleeping\r\n\
        6222021234567890169,孙八,active,extra\r\n\
        \"6222021234567890177\",\"Wei Xiaobao\",pin_locked\r\n\
        6222021234567890128,张三,expired\r\n";
    std::fs::write(&csv, text).unwrap();

    // --strict writes nothing when a row is rejected.
    let r = import(&csv, &data, &["--strict"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--strict"), "{}", r.stderr);
    assert_eq!(stats(&data)["total"], 0);

    let rejects = dir.path().join("rejects.csv");
    let r = import(&csv, &data, &["--json", "--rejects", path(&rejects)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["rows"], 8);
    assert_eq!(report["accepted"], 4);
    assert_eq!(report["rejected"], 4);
    assert_eq!(report["inserted"], 3);
    assert_eq!(report["duplicates"], 1);
    let lines: Vec<u64> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5, 6, 7]);
    let reasons = report["rejections"].to_string();
    assert!(reasons.contains("name:"), "{reasons}");
    assert!(reasons.contains("card:"), "{reasons}");
    assert!(reasons.contains("status:"), "{reasons}");
    assert!(reasons.contains("found 4"), "{reasons}");
    for secret in ["12345", "赵六", "王5", "sleeping", "6222021234567890"] {
        assert!(!r.stdout.contains(secret), "{secret} leaked: {}", r.stdout);
        assert!(!r.stderr.contains(secret), "{secret} leaked: {}", r.stderr);
    }
    let written = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(written.lines().count(), 5, "{written}");
    assert!(written.starts_with("line,reason\n4,"), "{written}");

    // The later row for 6222021234567890128 (expired) replaced the earlier (active).
    let s = stats(&data);
    assert_eq!(s["total"], 3);
    assert_eq!(s["by_status"]["expired"], 1);
    assert_eq!(s["by_status"]["lost"], 1);
    assert_eq!(s["by_status"]["pin-locked"], 1);
    assert_eq!(s["by_status"]["active"], 0);

    // Human summary: counts and line numbers, no row content.
    let r = import(&csv, &data, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("line 4: name:"), "{}", r.stdout);
    assert!(r.stdout.contains("unchanged"), "{}", r.stdout);
    assert!(!r.stdout.contains("6222021234567890"), "{}", r.stdout);
}

#[test]
fn every_status_word_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("statuses.csv");
    let mut text = String::from("name,card,status\n");
    for (i, s) in CardStatus::ALL.iter().enumerate() {
        let payload = format!("62220212345678{i:02}");
        let check = cardcheck_domain::card::luhn_check_digit(&payload).unwrap();
        // Alternate exact words with upper-case / underscore spellings.
        let word = if i % 2 == 0 {
            s.as_word().to_owned()
        } else {
            s.as_word().to_uppercase().replace('-', "_")
        };
        text.push_str(&format!("持卡人,{payload}{check},{word}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let report = import_json(&csv, &data);
    assert_eq!(report["inserted"], 12);
    let s = stats(&data);
    for status in CardStatus::ALL {
        assert_eq!(s["by_status"][status.as_word()], 1, "{status}");
    }
    let human = run(&["registry", "stats", "--data-dir", path(&data)]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("registry: 12 cards"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("pin-locked"), "{}", human.stdout);
    assert!(
        human.stdout.contains("中国工商银行 (ICBC)"),
        "{}",
        human.stdout
    );
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.csv"),
        dir.path().join("b.csv"),
        dir.path().join("c.csv"),
    );
    generate(&a, 3_000, 99);
    generate(&b, 3_000, 99);
    generate(&c, 3_000, 100);
    let (a, b, c) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with(b"name,card,status\n"));

    let out = dir.path().join("j.csv");
    let r = run(&[
        "registry",
        "generate",
        "--count",
        "10",
        "--output",
        path(&out),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["rows"], 10);
    assert!(v["seed"].is_u64(), "a random seed is reported");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["registry", "import"][..],
        &["registry", "generate", "--output", "x.csv"],
        &[
            "registry", "generate", "--count", "ten", "--output", "x.csv",
        ],
        &["registry", "stats", "--bogus"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
}

/// The staging directories (`registry-import-<pid>-<n>.tmp`) in `data`.
fn staging_dirs(data: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(data) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("registry-import-")
        })
        .collect()
}

/// Files in `dir` (0 when it is gone).
fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// `registry import` in the background, staging on bucket files after `memory_rows`.
/// Creates the store in `data` (as `cardcheck account create` does), so that an import
/// into it prints no "created a new one" note.
fn create_store(data: &Path) {
    let r = run(&["account", "create", "ops", "--data-dir", path(data)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn spawn_import(file: &Path, data: &Path, memory_rows: u64) -> std::process::Child {
    registry_common::cardcheck()
        .args(["registry", "import", path(file), "--data-dir", path(data)])
        .arg("--no-progress")
        .env("CARDCHECK_IMPORT_MEMORY_ROWS", memory_rows.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `ready` every 5 ms (60 s at most); fails if `child` ends first.
fn wait_for(child: &mut std::process::Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import ended ({status}) before {what}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Sends `signal` (`TERM`, `INT`) to `child` with kill(1) (`unsafe` libc is forbidden).
fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The `registry.import` entries of the audit log.
fn import_audits(data: &Path) -> Vec<serde_json::Value> {
    let r = run(&["audit", "list", "--data-dir", path(data), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    entries
        .into_iter()
        .filter(|e| e["action"] == "registry.import")
        .collect()
}

/// Broke: SIGTERM (or SIGINT) during the writing phase killed `registry import` with
/// exit 143 and no message; its staging directory stayed in the data directory and the
/// rows already committed were not in the audit log.
#[test]
fn an_import_interrupted_while_writing_removes_its_staging_and_audits_what_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let data = dir.path().join("data");
    generate(&csv, 300_000, 21);
    create_store(&data);
    let mut child = spawn_import(&csv, &data, 100_000);
    // The writing phase consumes the 256 bucket files one by one: signal once it has
    // begun (all 256 seen, then fewer).
    let mut seen_all = false;
    wait_for(&mut child, "the writing phase", || {
        let n = staging_dirs(&data).first().map_or(0, |d| file_count(d));
        seen_all |= n == 256;
        seen_all && n < 256
    });
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("run the same import again"), "{stderr}");
    // "interrupted: 31,506 of 300,000 rows of … were committed and stay; …"
    let committed: u64 = stderr
        .strip_prefix("interrupted: ")
        .and_then(|s| s.split_once(" of "))
        .map(|(n, _)| n.replace(',', ""))
        .unwrap_or_else(|| panic!("{stderr}"))
        .parse()
        .unwrap();
    assert!(stderr.contains("of 300,000 rows"), "{stderr}");
    assert!(staging_dirs(&data).is_empty(), "{:?}", staging_dirs(&data));
    assert_eq!(stats(&data)["total"], committed);
    let audits = import_audits(&data);
    assert_eq!(audits.len(), 1, "{audits:?}");
    let detail = audits[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "interrupted: {committed} of 300000 accepted rows committed"
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("inserted {committed},")),
        "{detail}"
    );

    // Resuming is running the same import again.
    let again = import_json(&csv, &data);
    assert_eq!(again["unchanged"], committed);
    assert_eq!(again["inserted"], 300_000 - committed);
    assert_eq!(stats(&data)["total"], 300_000);
}

/// Broke: SIGINT while the file was still being read killed the import and left its
/// staging directory behind.
#[test]
fn an_import_interrupted_while_reading_writes_nothing_and_leaves_no_staging() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let data = dir.path().join("data");
    generate(&csv, 300_000, 22);
    create_store(&data);
    // Bucket files after 1,000 rows: they exist long before the reading ends.
    let mut child = spawn_import(&csv, &data, 1_000);
    wait_for(&mut child, "the staging directory", || {
        staging_dirs(&data)
            .first()
            .is_some_and(|d| file_count(d) == 256)
    });
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(staging_dirs(&data).is_empty(), "{:?}", staging_dirs(&data));
    assert_eq!(stats(&data)["total"], 0);
    assert!(import_audits(&data).is_empty());
}

/// Broke: the staging directory of an import killed with SIGKILL stayed in the data
/// directory for good: later imports did not remove it.
#[test]
fn a_later_import_removes_the_staging_left_by_a_killed_import() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let data = dir.path().join("data");
    generate(&csv, 300_000, 23);
    let mut child = spawn_import(&csv, &data, 1_000);
    wait_for(&mut child, "the staging directory", || {
        staging_dirs(&data)
            .first()
            .is_some_and(|d| file_count(d) == 256)
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let left = staging_dirs(&data);
    assert_eq!(left.len(), 1, "{left:?}");
    // Written to within the last ten minutes: kept (it may belong to an import running
    // in another PID namespace, whose pid this process cannot see).
    let small = dir.path().join("small.csv");
    generate(&small, 100, 24);
    let report = import_json(&small, &data);
    assert_eq!(report["inserted"], 100);
    assert!(
        left[0].exists(),
        "a recently written staging directory was removed"
    );
    // Untouched for an hour: removed by the next import.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(&left[0]).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(an_hour_ago).unwrap();
    }
    std::fs::File::open(&left[0])
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    // A directory of a process that still runs (this test) is not touched.
    let live = data.join(format!("registry-import-{}-0.tmp", std::process::id()));
    std::fs::create_dir(&live).unwrap();

    let report = import_json(&small, &data);
    assert_eq!(report["unchanged"], 100);
    assert!(!left[0].exists(), "{} was not removed", left[0].display());
    assert!(live.exists());
}

/// Broke: SIGINT during `registry generate` killed it with the default action and left
/// its temporary file (`out.csv.tmp-<pid>`) beside the output.
#[test]
fn a_generate_interrupted_leaves_no_temporary_file_and_the_old_output_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "name,card,status\n").unwrap();
    let temporaries = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    };
    let mut child = registry_common::cardcheck()
        .args([
            "registry",
            "generate",
            "--count",
            "200000000",
            "--seed",
            "3",
        ])
        .args(["--output", path(&out)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once rows are being written to the temporary file.
    wait_for(&mut child, "the temporary file", || {
        temporaries()
            .iter()
            .any(|n| std::fs::metadata(dir.path().join(n)).is_ok_and(|m| m.len() > 1_000_000))
    });
    signal(&child, "INT");
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(130), "{stderr}");
    assert!(stderr.starts_with("interrupted: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(temporaries().is_empty(), "{:?}", temporaries());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "name,card,status\n");
}

/// Broke: an import into a mistyped --data-dir created a new, empty store and reported
/// success like any other import, while the real store stayed as it was.
#[test]
fn an_import_into_a_directory_without_a_store_says_it_created_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("small.csv");
    let data = dir.path().join("typo");
    generate(&csv, 10, 23);
    let import_stderr = || {
        let r = import(&csv, &data, &["--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stderr
    };
    let first = import_stderr();
    assert!(
        first.contains("held no cardcheck store; created a new one"),
        "{first}"
    );
    let again = import_stderr();
    assert!(!again.contains("created a new one"), "{again}");
}

/// Issue 6: "the database file of a 1M-row registry contains none of the imported card
/// numbers or names". Every file of the data directory is scanned once for runs of 12+
/// digits and of Han text, and every such run is checked against all 1,000,000 cards
/// and all names of three or more characters (not a sample).
///
/// Two-character names are left out: the keyed hashes in the file (random bytes) hold
/// dozens of chance runs of two Han characters (a Han character is 3 bytes in
/// E3..E9 80..BF 80..BF: about 1 in 600 at random), and one of them matched a
/// two-character name in a CI run. Chance three-character runs are ~600 times rarer
/// and ~27,000 times less likely to match: no false alarm, and a store that kept names
/// in plain text would still show its 20,000-odd distinct longer names.
#[test]
fn a_million_row_registry_stores_none_of_its_card_numbers_or_names() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reg1m.csv");
    let data = dir.path().join("data");
    generate(&csv, 1_000_000, 12);
    let report = import_json(&csv, &data);
    assert_eq!(report["inserted"], 1_000_000, "{report}");
    let rows = rows(&csv);
    let cards: std::collections::HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let names: std::collections::HashSet<&str> = rows
        .iter()
        .map(|r| r.0.as_str())
        .filter(|n| n.chars().count() >= 3)
        .collect();
    assert_eq!(cards.len(), 1_000_000);
    assert!(names.len() > 10_000, "{} names checked", names.len());
    let mut scanned = 0usize;
    for (p, bytes) in all_bytes(&data) {
        scanned += bytes.len();
        let (digit_runs, han_runs) = plain_runs(&bytes);
        for run in &digit_runs {
            // Any window of a card's length (12-19 digits) inside a longer run too.
            for len in 12..=run.len().min(19) {
                for start in 0..=run.len() - len {
                    let window = &run[start..start + len];
                    assert!(!cards.contains(window), "a card number is stored in {p}");
                }
            }
        }
        for run in &han_runs {
            let chars: Vec<(usize, char)> = run.char_indices().collect();
            for (i, &(from, _)) in chars.iter().enumerate() {
                for j in i + 3..=chars.len() {
                    let to = chars.get(j).map_or(run.len(), |&(b, _)| b);
                    assert!(!names.contains(&run[from..to]), "a name is stored in {p}");
                }
            }
        }
    }
    // The registry really is on disk: 1M rows take tens of MB.
    assert!(scanned > 50_000_000, "{scanned} bytes");
    // And the scan finds what plain text holds: the CSV's first rows.
    let head = &std::fs::read(&csv).unwrap()[..4096];
    let (digit_runs, han_runs) = plain_runs(head);
    assert!(digit_runs.iter().any(|r| cards.contains(r.as_str())));
    assert!(han_runs.iter().any(|r| names.contains(r.as_str())));
    // The false alarm CI hit: a chance two-character run in a hash is not a name here.
    assert!(!names.iter().any(|n| n.chars().count() < 3));
}
