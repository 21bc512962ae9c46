//! `cardcheck verify --input --output` (issue 11) against mock endpoints that check
//! signatures for real: pacing, retries, resume after `kill -9`, malformed rows.
#![allow(clippy::unwrap_used)]

mod verify_mock;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cardcheck_encryption::{Decryptor, KeyAlgorithm, KeyRing};
use verify_mock::{
    Behaviour, Mock, SECRET_KEY, Transient, card_of, expected_result, read_output, run, verify_cmd,
    write_input,
};

fn batch_args<'a>(input: &'a Path, output: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    v.extend_from_slice(extra);
    v
}

/// Every input row exactly once, each with the mock's Result and no error.
fn assert_all_answered(output: &Path, n: usize) {
    let (_, rows) = read_output(output);
    assert_eq!(rows.len(), n, "rows in the output");
    let mut lines = HashSet::new();
    for row in &rows {
        let line: usize = row["Line"].parse().unwrap();
        assert!(lines.insert(line), "line {line} twice");
        let i: usize = row["id"].parse().unwrap();
        assert_eq!(line, i + 2, "line number of row {i}");
        assert_eq!(row["card"], card_of(i));
        assert_eq!(row["note"], format!("note, {i}"));
        assert_eq!(row["Result"], expected_result(&card_of(i)), "row {row:?}");
        assert_eq!(row["ErrorCode"], "", "row {row:?}");
        assert_eq!(row["RequestId"].len(), 36);
    }
}

fn assert_no_secrets(text: &str, n: usize) {
    for i in 0..n {
        assert!(!text.contains(&card_of(i)), "card number leaked: {text}");
    }
    assert!(!text.contains(SECRET_KEY), "secret key leaked");
    assert!(!text.contains("panicked"), "panic: {text}");
}

#[test]
fn rows_400_at_qps_20_take_20_seconds_against_a_20_per_second_limit() {
    let mock = Mock::start(Behaviour {
        rate_limit: Some(20.0),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 400);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--qps", "20", "--json"]),
    ));
    let secs = r.elapsed.as_secs_f64();
    eprintln!(
        "400 rows at --qps 20: {secs:.2} s, {} RequestLimitExceeded seen by the server",
        mock.state.count_outcome("RequestLimitExceeded")
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!((19.0..=21.0).contains(&secs), "took {secs:.2} s");
    assert_all_answered(&output, 400);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["answered"], 400);
    assert_eq!(summary["errors"], 0);
    // 0, -1 and -4 are all billed (verification.md §2 step 8).
    assert_eq!(summary["billed"], 400);
    assert!(r.stderr.contains("summary: 400 rows"), "{}", r.stderr);
    assert_no_secrets(&r.stderr, 400);
    assert!(!dir.path().join("out.csv.journal").exists());
}

#[test]
fn qps_50_against_a_20_per_second_limit_is_absorbed_by_retries() {
    let mock = Mock::start(Behaviour {
        rate_limit: Some(20.0),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 200);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--qps", "50", "--json"]),
    ));
    let limited = mock.state.count_outcome("RequestLimitExceeded");
    eprintln!(
        "200 rows at --qps 50: {:.2} s, {limited} RequestLimitExceeded absorbed",
        r.elapsed.as_secs_f64()
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(limited > 0, "the limit was never hit");
    assert_all_answered(&output, 200);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(summary["retries"].as_u64().unwrap() >= limited as u64);
    // Each row was verified once.
    assert_eq!(mock.state.ledger().len(), 200);
}

fn kill_and_resume(extra: &[&str], behaviour: Behaviour) {
    const ROWS: usize = 120;
    let mock = Mock::start(Behaviour {
        // The ledger is written before this pause: a kill during it loses the answer
        // on the client side only.
        delay: Duration::from_millis(300),
        ..behaviour
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), ROWS);
    let output = dir.path().join("out.csv");
    let mut args = batch_args(&input, &output, &["--qps", "40", "--concurrency", "8"]);
    args.extend_from_slice(extra);
    let mut child = verify_cmd(&mock.url, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (_, before) = read_output(&output);
    assert!(
        !before.is_empty() && before.len() < ROWS,
        "{} rows before the kill",
        before.len()
    );
    // A torn last line, as a crash in the middle of a write would leave.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    std::io::Write::write_all(&mut f, "77,75,张三75,62257600000".as_bytes()).unwrap();
    drop(f);

    let mut args = batch_args(&input, &output, &["--resume", "--qps", "40"]);
    args.extend_from_slice(extra);
    let r = run(verify_cmd(&mock.url, &args));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_all_answered(&output, ROWS);
    assert!(
        r.stderr
            .contains(&format!("skipped (already answered): {}", before.len())),
        "{}",
        r.stderr
    );
    // The ledger: no card verified twice; requests lost in the kill were replayed.
    let mut per_card: HashMap<String, usize> = HashMap::new();
    for s in mock.state.ledger() {
        *per_card.entry(s.card).or_default() += 1;
    }
    assert_eq!(per_card.len(), ROWS);
    let twice: Vec<_> = per_card.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "verified twice: {twice:?}");
    let replays = mock.state.count_outcome("replay");
    eprintln!(
        "kill -9 after {} rows; resume replayed {replays} unanswered requests",
        before.len()
    );
    assert!(replays >= 1, "no in-flight request was replayed");
}

#[test]
fn kill_9_mid_run_then_resume_answers_every_row_once_and_verifies_none_twice() {
    kill_and_resume(&[], Behaviour::default());
}

#[test]
fn kill_9_and_resume_with_encryption_and_v1_get() {
    let ring = KeyRing::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sm2.pem");
    std::fs::write(&key, ring.public_pem(KeyAlgorithm::Sm2)).unwrap();
    kill_and_resume(
        &[
            "--encrypt",
            "SM4-GCM",
            "--public-key",
            key.to_str().unwrap(),
            "--sign-method",
            "HmacSHA1",
            "--http-method",
            "GET",
        ],
        Behaviour {
            keys: Some(Arc::new(Decryptor::new(ring))),
            ..Behaviour::default()
        },
    );
}

#[test]
fn resume_sends_only_rows_without_a_final_answer() {
    const ROWS: usize = 40;
    let mock = Mock::start(Behaviour::default());
    // Row 5, 6: a client error (never retried); row 7: -16 on every attempt.
    mock.set(|b| {
        b.client_error.insert(card_of(5));
        b.client_error.insert(card_of(6));
        b.transient.insert(card_of(7), vec![Transient::Busy; 10]);
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), ROWS);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--max-attempts", "2", "--qps", "200"]),
    ));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let (_, rows) = read_output(&output);
    assert_eq!(rows.len(), ROWS);
    let by_id: HashMap<String, HashMap<String, String>> =
        rows.into_iter().map(|r| (r["id"].clone(), r)).collect();
    for i in ["5", "6"] {
        assert_eq!(by_id[i]["ErrorCode"], "InvalidParameterValue");
        assert_eq!(by_id[i]["Attempts"], "1", "a client error is not retried");
        assert_eq!(by_id[i]["Result"], "");
    }
    assert_eq!(by_id["7"]["Result"], "-16");
    assert_eq!(by_id["7"]["Attempts"], "2");
    assert!(
        r.stderr.contains("InvalidParameterValue: 2"),
        "{}",
        r.stderr
    );

    // Without --resume an existing output is not overwritten.
    let r = run(verify_cmd(&mock.url, &batch_args(&input, &output, &[])));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--resume"), "{}", r.stderr);

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    std::io::Write::write_all(&mut f, b"12,10,x,622576").unwrap();
    drop(f);
    mock.set(|b| *b = Behaviour::default());
    let sent_before = mock.state.seen().len();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--resume"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let resent: HashSet<String> = mock.state.seen()[sent_before..]
        .iter()
        .map(|s| s.card.clone())
        .collect();
    assert_eq!(
        resent,
        [card_of(5), card_of(6), card_of(7)].into_iter().collect()
    );
    assert_all_answered(&output, ROWS);
    let final_bytes = std::fs::read(&output).unwrap();

    // A second resume has nothing to do and changes nothing.
    let sent_before = mock.state.seen().len();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--resume"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        mock.state.seen().len(),
        sent_before,
        "answered rows re-sent"
    );
    assert_eq!(std::fs::read(&output).unwrap(), final_bytes);
    assert!(r.stderr.contains("skipped (already answered): 40"));
}

#[test]
fn malformed_rows_are_reported_with_their_line_number_and_written() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut bytes = Vec::new();
    bytes.extend_from_slice("\u{feff}Name,BankCard,extra\n".as_bytes()); // BOM
    bytes.extend_from_slice(b"Wei Xiaobao,6225768888888888,\"two\nlines\"\n"); // lines 2-3
    bytes.extend_from_slice("张三\n".as_bytes()); // 4: missing column
    bytes.extend_from_slice(b"\xff\xfe bad,6225760000000011,x\n"); // 5: bad UTF-8
    bytes.extend_from_slice(b"a,b,6225760000000012,x\n"); // 6: too many fields
    bytes.extend_from_slice(b"Li Si,\xff6225760000000013,x\n"); // 7: bad UTF-8 card
    bytes.extend_from_slice(b"Wei Xiaobao,6226090210146748,\n"); // 8: fine
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(&mock.url, &batch_args(&input, &output, &[])));
    assert_eq!(r.code, 1, "malformed rows are errors: {}", r.stderr);
    for expected in [
        "line 4: missing card column",
        "line 5: the name is not valid UTF-8",
        "line 6: 4 fields where the header has 3",
        "line 7: the card number is not valid UTF-8",
    ] {
        assert!(r.stderr.contains(expected), "{expected}: {}", r.stderr);
    }
    assert!(
        r.stderr.contains("ClientError.MalformedRow: 4"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("6225768888888888") && !r.stderr.contains("62257600000000"));
    let raw = std::fs::read(&output).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(raw.as_slice());
    assert_eq!(
        reader.byte_headers().unwrap(),
        &csv::ByteRecord::from(vec![
            "Line",
            "Name",
            "BankCard",
            "extra",
            "Result",
            "Description",
            "RequestId",
            "ErrorCode",
            "ErrorMessage",
            "Attempts",
            "ElapsedMs",
            "Time"
        ])
    );
    let mut by_line: HashMap<String, csv::ByteRecord> = HashMap::new();
    for rec in reader.byte_records() {
        let rec = rec.unwrap();
        by_line.insert(String::from_utf8_lossy(&rec[0]).into_owned(), rec);
    }
    assert_eq!(by_line.len(), 6);
    assert_eq!(&by_line["2"][4], b"0");
    assert_eq!(&by_line["2"][3], b"two\nlines");
    assert_eq!(&by_line["8"][4], b"-4");
    for line in ["4", "5", "6", "7"] {
        assert_eq!(
            &by_line[line][7], b"ClientError.MalformedRow",
            "line {line}"
        );
        assert!(String::from_utf8_lossy(&by_line[line][8]).starts_with(&format!("line {line}: ")));
    }
    // The bad bytes are passed through untouched.
    assert_eq!(&by_line["5"][1], b"\xff\xfe bad");
    assert_eq!(mock.state.seen().len(), 2);
}

#[test]
fn retries_transient_failures_but_never_results_or_client_errors() {
    let mock = Mock::start(Behaviour::default());
    mock.set(|b| {
        b.transient.insert(
            card_of(0),
            vec![Transient::BadGateway, Transient::BadGateway],
        );
        b.transient.insert(card_of(1), vec![Transient::Busy]);
        b.transient.insert(card_of(2), vec![Transient::Internal]);
        b.client_error.insert(card_of(4));
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 6);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(&mock.url, &batch_args(&input, &output, &[])));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let (_, rows) = read_output(&output);
    let by_id: HashMap<String, HashMap<String, String>> =
        rows.into_iter().map(|r| (r["id"].clone(), r)).collect();
    let expect = [
        ("0", "3", "0", ""),
        ("1", "2", "0", ""),
        ("2", "2", "0", ""),
        ("3", "1", "-4", ""),
        ("4", "1", "", "InvalidParameterValue"),
        ("5", "1", "0", ""),
    ];
    for (id, attempts, result, code) in expect {
        let row = &by_id[id];
        assert_eq!(
            (
                row["Attempts"].as_str(),
                row["Result"].as_str(),
                row["ErrorCode"].as_str()
            ),
            (attempts, result, code),
            "row {id}"
        );
    }
}

#[test]
fn header_aliases_passthrough_column_options_and_masking() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "city,holder,card_no\nShenzhen,Wei Xiaobao,6225768888888888\nBeijing,Wei Xiaobao,6226090210146748\n",
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    // `holder` is not a known alias.
    let r = run(verify_cmd(&mock.url, &batch_args(&input, &output, &[])));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--name-column"), "{}", r.stderr);
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(
            &input,
            &output,
            &[
                "--name-column",
                "holder",
                "--card-column",
                "card_no",
                "--mask-card",
                "--json",
                "--quiet",
            ],
        ),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(!text.contains("6225768888888888"), "{text}");
    let (header, rows) = read_output(&output);
    assert_eq!(&header[..4], ["Line", "city", "holder", "card_no"]);
    let shenzhen = rows.iter().find(|r| r["city"] == "Shenzhen").unwrap();
    assert_eq!(shenzhen["card_no"], "622576******8888");
    assert_eq!(shenzhen["Result"], "0");
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["by_result"]["0"], 1);
    assert_eq!(summary["by_result"]["-4"], 1);
    assert!(!r.stderr.contains("progress"), "{}", r.stderr);

    // `bank_card` and `NAME` are recognised without options.
    std::fs::write(&input, "NAME,bank_card\nWei Xiaobao,6225768888888888\n").unwrap();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--overwrite"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn an_authentication_failure_stops_the_batch() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 100);
    let output = dir.path().join("out.csv");
    let mut cmd = verify_cmd(&mock.url, &batch_args(&input, &output, &[]));
    cmd.env(
        "TENCENTCLOUD_SECRET_KEY",
        "wrong-secret-key-0000000000000000",
    );
    let r = run(cmd);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("stopped early: AuthFailure.SignatureFailure"),
        "{}",
        r.stderr
    );
    let rejected = mock.state.rejected.lock().unwrap().len();
    assert!(rejected < 30, "{rejected} requests after the first failure");
    assert_no_secrets(&r.stderr, 100);
    assert!(!r.stderr.contains("wrong-secret-key"));
}

#[test]
fn a_closed_port_stops_the_batch_with_one_reason() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 50);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &endpoint,
        &batch_args(
            &input,
            &output,
            &["--max-attempts", "2", "--http-method", "GET"],
        ),
    ));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "consecutive rows failed: cannot connect to {endpoint}: connection refused"
        )),
        "{}",
        r.stderr
    );
    assert_no_secrets(&r.stderr, 50);
    let (_, rows) = read_output(&output);
    assert!(
        rows.iter()
            .all(|r| r["ErrorCode"] == "ClientError.NetworkError")
    );
}

#[test]
fn sigint_finishes_in_flight_rows_and_resume_completes() {
    const ROWS: usize = 60;
    let mock = Mock::start(Behaviour {
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), ROWS);
    let output = dir.path().join("out.csv");
    let child = verify_cmd(&mock.url, &batch_args(&input, &output, &["--qps", "20"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped early: interrupted"), "{stderr}");
    // Every request the server answered made it into the output.
    let (_, rows) = read_output(&output);
    assert_eq!(rows.len(), mock.state.ledger().len());
    assert!(rows.len() < ROWS);
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--resume", "--qps", "100"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_all_answered(&output, ROWS);
    assert_eq!(mock.state.ledger().len(), ROWS);
}

/// Regression: `--resume` with another input file (the same number of rows, other
/// people) reported every row as "already answered", sent nothing and exited 0. The
/// output's answered rows must be the input's rows on the same lines, else refuse.
#[test]
fn resume_with_a_different_input_file_is_refused() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 10);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--qps", "200", "--mask-card"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let answered = std::fs::read(&output).unwrap();
    let sent = mock.state.seen().len();

    // Same header and row count, other cards (the `id` and `name` columns too).
    let other = dir.path().join("other.csv");
    let mut s = String::from("id,name,card,note\n");
    for i in 0..10 {
        s += &format!("{i},李四{i},{},\"note, {i}\"\n", card_of(100 + i));
    }
    std::fs::write(&other, s).unwrap();
    // Same names, one card changed (line 5); a shorter input (lines 2-6 only).
    let one_card = dir.path().join("one_card.csv");
    let text = std::fs::read_to_string(&input).unwrap();
    std::fs::write(&one_card, text.replace(&card_of(3), &card_of(42))).unwrap();
    let shorter = dir.path().join("shorter.csv");
    let short_text: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(&shorter, short_text).unwrap();

    for (file, line) in [(&other, 2), (&one_card, 5), (&shorter, 7)] {
        let r = run(verify_cmd(
            &mock.url,
            &batch_args(file, &output, &["--resume", "--mask-card"]),
        ));
        assert_eq!(r.code, 1, "{}: {}", file.display(), r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.starts_with("error: ")
                && r.stderr.contains("was written for another input")
                && r.stderr.contains(&format!("line {line} of ")),
            "{}",
            r.stderr
        );
        assert_no_secrets(&r.stderr, 200);
        assert_eq!(mock.state.seen().len(), sent, "rows sent after a refusal");
        assert_eq!(std::fs::read(&output).unwrap(), answered, "output touched");
    }

    // The right input still resumes, with or without --mask-card on either run.
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--resume"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("skipped (already answered): 10"),
        "{}",
        r.stderr
    );
    assert_eq!(mock.state.seen().len(), sent);
}

/// Regression: `Line` and the warnings used the csv crate's line count, which gave the
/// first data row of a CRLF file the header's line 1 and ignored blank lines (`line 3`
/// for a row on line 6). Each row must carry the 1-based physical line of its first
/// line, for LF, CRLF, blank lines and quoted multi-line fields.
#[test]
fn line_numbers_are_physical_lines_for_crlf_blank_lines_and_multi_line_fields() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let lf = "name,card,note\n\
              a,6217000000000000012,x\n\
              \n\
              b,6217000000000000053,\"two\nlines\"\n\
              \n\
              \n\
              bad\n\
              c,6217000000000000061,y\n";
    // Lines: header 1, a 2, b 4-5, bad 8, c 9.
    let expected = [("a", "2"), ("b", "4"), ("bad", "8"), ("c", "9")];
    for (label, text) in [("LF", lf.to_owned()), ("CRLF", lf.replace('\n', "\r\n"))] {
        let input = dir.path().join(format!("{label}.csv"));
        std::fs::write(&input, &text).unwrap();
        let output = dir.path().join(format!("{label}.out.csv"));
        let r = run(verify_cmd(
            &mock.url,
            &batch_args(&input, &output, &["--qps", "200"]),
        ));
        assert_eq!(r.code, 1, "{label}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("warning: line 8: missing card column (1 fields where the header has 3)"),
            "{label}: {}",
            r.stderr
        );
        let (_, rows) = read_output(&output);
        let got: HashMap<String, String> = rows
            .iter()
            .map(|r| (r["name"].clone(), r["Line"].clone()))
            .collect();
        for (name, line) in expected {
            assert_eq!(got[name], line, "{label}: line of row {name}");
        }
        assert_eq!(got.len(), 4, "{label}");
    }
}

/// Regression: server text went into the output and the stop reason raw: a
/// `Description` with a card number and `\x1b[2J`, an `Error.Message` with a newline
/// and an ANSI escape. It must be one line, escaped and masked everywhere.
#[test]
fn server_text_in_the_output_and_on_stderr_is_escaped_and_masked() {
    let leaked = "6225769999999999";
    let mut behaviour = Behaviour::default();
    behaviour.canned.insert(
        card_of(0),
        serde_json::json!({"Result": "-4", "Description": format!("card {leaked}\u{1b}[2J\nbye")}),
    );
    behaviour.canned.insert(
        card_of(1),
        serde_json::json!({"Error": {"Code": "AuthFailure.Weird", "Message": format!("bad {leaked}\n\u{1b}[31mred")}}),
    );
    let mock = Mock::start(behaviour);
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 2);
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--concurrency", "1", "--qps", "200"]),
    ));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let raw = std::fs::read_to_string(&output).unwrap();
    assert!(!raw.contains('\u{1b}') && !raw.contains(leaked), "{raw}");
    let (_, rows) = read_output(&output);
    let row0 = rows.iter().find(|r| r["id"] == "0").unwrap();
    assert_eq!(row0["Description"], r"card 622576******9999\u{1b}[2J\nbye");
    let row1 = rows.iter().find(|r| r["id"] == "1").unwrap();
    assert_eq!(row1["ErrorMessage"], r"bad 622576******9999\n\u{1b}[31mred");
    // The stop reason (a fatal AuthFailure) quotes the message: still one line.
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains(leaked),
        "{}",
        r.stderr
    );
    let stop = r
        .stderr
        .lines()
        .find(|l| l.contains("stopped early"))
        .unwrap();
    assert!(
        stop.contains(r"bad 622576******9999\n\u{1b}[31mred"),
        "{stop}"
    );
    assert_no_secrets(&r.stderr, 2);
}

/// Regression: a non-UTF-8 (GBK) input ran as per-row `MalformedRow` results with no
/// hint. It must be refused up front with one line naming the line and `iconv`.
#[test]
fn a_gbk_input_is_refused_up_front_with_an_iconv_hint() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    // "张三" and "李四" in GBK; the second file has a GBK header too.
    let rows: &[u8] =
        b"\xd5\xc5\xc8\xfd,6217000000000000012\n\xc0\xee\xcb\xc4,6217000000000000053\n";
    for (label, header) in [
        ("data", &b"name,card\n"[..]),
        ("header", &b"name,card,\xb1\xb8\xd7\xa2\n"[..]),
    ] {
        let input = dir.path().join(format!("{label}.csv"));
        let mut bytes = header.to_vec();
        if label == "header" {
            bytes.extend_from_slice(b"\xd5\xc5\xc8\xfd,6217000000000000012,x\n");
        } else {
            bytes.extend_from_slice(rows);
        }
        std::fs::write(&input, bytes).unwrap();
        let r = run(verify_cmd(&mock.url, &batch_args(&input, &output, &[])));
        assert_eq!(r.code, 1, "{label}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{label}: {}", r.stderr);
        let line = if label == "header" { 1 } else { 2 };
        assert!(
            r.stderr
                .contains(&format!("is not valid UTF-8 (line {line})"))
                && r.stderr.contains("iconv -f GB18030 -t UTF-8"),
            "{label}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("6217000000000000012"), "{}", r.stderr);
        assert!(!output.exists(), "{label}: output created");
    }
    assert!(mock.state.seen().is_empty());
}

/// A FIFO at `path` (`mkfifo`: `unsafe` libc calls are forbidden here).
#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Broke: an output written in place (`/dev/stdout`, `/dev/null`, a FIFO) got its
/// request journal as `<output>.journal` (a stray `/dev/stdout.journal`, or
/// "permission denied" and nothing sent), and every such run ended with `error:
/// cannot write the output: Invalid argument` (fsync of a FIFO or device). Such an
/// output cannot be resumed: no journal file, no sync, a clean exit 0.
#[cfg(unix)]
#[test]
fn an_output_written_in_place_keeps_no_journal_and_is_not_synced() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 5);
    let fifo = dir.path().join("out.fifo");
    mkfifo(&fifo);
    // The reader first: opening a FIFO for writing waits for one.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &fifo, &["--qps", "200"]),
    ));
    let text = reader.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("error:"), "{}", r.stderr);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.starts_with("Line,id,name,card,note,Result"), "{text}");
    assert!(!dir.path().join("out.fifo.journal").exists());
    assert!(!dir.path().join("out.fifo.journal.tmp").exists());
    assert_no_secrets(&r.stderr, 5);

    let null_journal_before = Path::new("/dev/null.journal").exists();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, Path::new("/dev/null"), &["--qps", "200"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("error:"), "{}", r.stderr);
    if !null_journal_before {
        assert!(!Path::new("/dev/null.journal").exists());
        assert!(!Path::new("/dev/null.journal.tmp").exists());
    }
}

/// Broke: `--overwrite` truncated the existing output to its header and only then
/// failed to create the request journal, losing the earlier results. What can fail
/// (the journal) is now created before the output is touched.
#[test]
fn overwrite_leaves_the_output_as_it_was_when_the_journal_cannot_be_created() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), 3);
    let output = dir.path().join("out.csv");
    let earlier = "earlier results\n1,2,3\n";
    std::fs::write(&output, earlier).unwrap();
    // The journal cannot be created: a directory is in its place (works as root too,
    // where a read-only directory would not).
    std::fs::create_dir(dir.path().join("out.csv.journal")).unwrap();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--overwrite", "--qps", "200"]),
    ));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: cannot create the request journal"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), earlier);
    assert!(mock.state.seen().is_empty());
    assert!(!dir.path().join("out.csv.journal.tmp").exists());
}

/// Broke: a CR-only input (lines ended by a lone `\r`) gave every row `Line` 1, so
/// `--resume` refused its own output as "written for another input".
#[test]
fn a_cr_only_input_gets_its_line_numbers_and_can_be_resumed() {
    let mock = Mock::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cr.csv");
    std::fs::write(
        &input,
        "name,card\ra,6217000000000000012\r\rb,6217000000000000053\rc,6217000000000000061\r",
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--qps", "200"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (_, rows) = read_output(&output);
    let got: HashMap<String, String> = rows
        .iter()
        .map(|r| (r["name"].clone(), r["Line"].clone()))
        .collect();
    assert_eq!(got["a"], "2");
    assert_eq!(got["b"], "4");
    assert_eq!(got["c"], "5");
    let sent = mock.state.seen().len();
    let r = run(verify_cmd(
        &mock.url,
        &batch_args(&input, &output, &["--resume"]),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("skipped (already answered): 3"),
        "{}",
        r.stderr
    );
    assert_eq!(mock.state.seen().len(), sent);
}
