//! Issue 6 "Done when": after importing a generated registry, verifying a sample of
//! 1,000 rows through the API gives exactly the Result each row's status implies, and a
//! wrong name gives `-4`. A real `cardcheck serve` (production profile: no sandbox),
//! real TC3 signatures, plain HTTP.
#![allow(clippy::unwrap_used)]

mod registry_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;

use cardcheck_domain::CardStatus;
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, sign_request};
use registry_common::{cardcheck, generate, import_json, path, rows, run};
use serde_json::{Map, Value};

const SAMPLE: usize = 1_000;
const WRONG_NAMES: usize = 200;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &std::path::Path) -> (Server, String) {
    let mut child = cardcheck()
        .args([
            "serve",
            "--data-dir",
            path(data),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--no-demo",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    // Keep draining: the server prints more lines, and a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_owned();
    (Server(child), addr)
}

async fn verify(
    http: &reqwest::Client,
    addr: &str,
    credential: &Credential,
    name: &str,
    card: &str,
) -> String {
    let mut params = Map::new();
    params.insert("Name".into(), Value::String(name.into()));
    params.insert("BankCard".into(), Value::String(card.into()));
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = sign_request(&SignInput {
        credential,
        host: addr,
        service: "faceid",
        action: "BankCard2EVerification",
        version: "2018-03-01",
        region: Some("ap-guangzhou"),
        language: None,
        request_client: None,
        sign_method: SignMethod::Tc3HmacSha256,
        http_method: "POST",
        timestamp,
        nonce: 0,
        params: &params,
    });
    let mut req = http.post(format!("http://{addr}{}", signed.path_and_query));
    for (k, v) in &signed.headers {
        if !k.eq_ignore_ascii_case("host") {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let body: Value = req
        .body(signed.body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match body["Response"]["Result"].as_str() {
        Some(result) => result.to_owned(),
        None => panic!("API error: {}", body["Response"]["Error"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_rows_verify_to_their_status_result_and_wrong_names_give_minus_4() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reg.csv");
    let data = dir.path().join("data");
    generate(&csv, 2 * SAMPLE as u64, 5);
    let report = import_json(&csv, &data);
    assert_eq!(report["inserted"], 2 * SAMPLE as u64);

    let created = run(&[
        "account",
        "create",
        "bench",
        "--json",
        "--data-dir",
        path(&data),
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    let set = run(&[
        "account",
        "set",
        "bench",
        "--qps",
        "100000",
        "--daily-attempts",
        "0",
        "--data-dir",
        path(&data),
    ]);
    assert_eq!(set.code, 0, "{}", set.stderr);
    let credential = Arc::new(Credential {
        secret_id: created["secret_id"].as_str().unwrap().to_owned(),
        secret_key: created["secret_key"].as_str().unwrap().to_owned(),
        token: None,
    });

    let (_server, addr) = start_server(&data);
    // reqwest is built with `rustls-no-provider`: give it one (plain HTTP here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    // Every other row: 1,000 rows spread over the file; every status occurs.
    let sample: Vec<(String, String, String)> = rows(&csv).into_iter().step_by(2).collect();
    assert_eq!(sample.len(), SAMPLE);
    for status in CardStatus::ALL {
        assert!(
            sample.iter().any(|(_, _, s)| s == status.as_word()),
            "the sample lacks {status}"
        );
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (chunk_index, chunk) in sample.chunks(SAMPLE / 8).enumerate() {
        let (http, addr, credential) = (http.clone(), addr.clone(), credential.clone());
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            let mut mismatches = Vec::new();
            for (i, (name, card, status)) in chunk.iter().enumerate() {
                let expected = CardStatus::from_word(status)
                    .unwrap()
                    .result()
                    .code()
                    .to_string();
                let got = verify(&http, &addr, &credential, name, card).await;
                if got != expected {
                    mismatches.push(format!("{status}: expected {expected}, got {got}"));
                }
                // Wrong names for the first rows of each chunk: -4 whatever the status.
                if i < WRONG_NAMES / 8 {
                    let wrong = format!("{name}{}", if name.ends_with('明') { "亮" } else { "明" });
                    let got = verify(&http, &addr, &credential, &wrong, card).await;
                    if got != "-4" {
                        mismatches.push(format!("wrong name ({status}): expected -4, got {got}"));
                    }
                }
            }
            (chunk_index, chunk.len(), mismatches)
        });
    }
    let mut verified = 0;
    let mut mismatches = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (_, n, m) = done.unwrap();
        verified += n;
        mismatches.extend(m);
    }
    assert_eq!(verified, SAMPLE);
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );

    // A card that is not in the registry (valid BIN, valid Luhn) is -7.
    let payload = "622202000000000000";
    let check = cardcheck_domain::card::luhn_check_digit(payload).unwrap();
    let unknown = format!("{payload}{check}");
    assert!(!rows(&csv).iter().any(|(_, c, _)| *c == unknown));
    assert_eq!(
        verify(&http, &addr, &credential, "张三", &unknown).await,
        "-7"
    );
}
