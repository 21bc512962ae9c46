#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! Issue 9, done-when: the logs of a run with the sandbox cards hold no full card
//! number, no cardholder name and no SecretKey — in both `--log-format json` and
//! `text`, at `debug` level, for TC3 POST/GET and v1 requests, Results and errors.
//! The JSON run also checks the request line's fields (one line per request).

mod ops_common;

use cardcheck_domain::CATALOGUE;
use cardcheck_tc3::SignMethod;
use ops_common::*;
use serde_json::Value;
use std::time::Duration;

const NAMES: [&str; 3] = ["Wei Xiaobao", "张三", "Ouyang Nana-Li"];

/// What must never appear in the logs, in every encoding a request carries it in.
fn needles(secret_key: &str) -> Vec<String> {
    let mut out: Vec<String> = CATALOGUE.iter().map(|r| r.card.to_owned()).collect();
    let mut names: Vec<&str> = NAMES.to_vec();
    names.extend(CATALOGUE.iter().filter_map(|r| r.name));
    for name in names {
        out.push(name.to_owned());
        // Comparison key, URL-encoded (GET / v1 form) and JSON-escaped forms.
        out.push(name.to_lowercase().replace(' ', ""));
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        out.push(encoded.replace("%20", "+"));
        out.push(encoded);
        out.push(name.replace(' ', "+"));
        let escaped = serde_json::to_string(name).unwrap();
        out.push(escaped.trim_matches('"').to_owned());
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect();
        out.push(ascii);
    }
    out.push(secret_key.to_owned());
    out.sort();
    out.dedup();
    out
}

/// Sends every sandbox card with every name in three encodings, plus error cases;
/// returns the RequestIds answered.
fn drive(server: &Server, credential: &cardcheck_tc3::sign::Credential) -> Vec<String> {
    let host = server.host();
    let mut ids = Vec::new();
    let mut ts = now();
    let mut send_one = |credential: &cardcheck_tc3::sign::Credential,
                        name: &str,
                        card: &str,
                        method: SignMethod,
                        http: &str| {
        ts -= 1; // distinct requests, never replays
        let req = sign(credential, &host, &params(name, card), method, http, ts);
        let (status, body) = send(server.addr, &req, Duration::from_secs(10)).unwrap();
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).unwrap();
        ids.push(body["Response"]["RequestId"].as_str().unwrap().to_owned());
        body
    };
    let encodings = [
        (SignMethod::Tc3HmacSha256, "POST"),
        (SignMethod::Tc3HmacSha256, "GET"),
        (SignMethod::HmacSha256, "POST"),
    ];
    for (i, row) in CATALOGUE.iter().enumerate() {
        let (method, http) = encodings[i % encodings.len()];
        for name in row.name.map_or(NAMES.to_vec(), |n| vec![n]) {
            let body = send_one(credential, name, row.card, method, http);
            assert!(body["Response"]["Result"].is_string(), "{body}");
        }
    }
    // Errors: a wrong SecretKey (signature failure) over each encoding.
    let mut wrong = credential.clone();
    wrong.secret_key = format!("{}x", credential.secret_key);
    for (method, http) in encodings {
        let body = send_one(&wrong, NAMES[1], CATALOGUE[0].card, method, http);
        assert_eq!(
            body["Response"]["Error"]["Code"], "AuthFailure.SignatureFailure",
            "{body}"
        );
    }
    ids
}

fn assert_clean(what: &str, text: &str, needles: &[String]) {
    let found: Vec<&String> = needles
        .iter()
        .filter(|n| text.contains(n.as_str()))
        .collect();
    assert!(found.is_empty(), "{what} contains {found:?}:\n{text}");
}

#[test]
fn logs_hold_no_card_number_name_or_secret_key() {
    let (_tmp, dir) = data_dir();
    let credential = create_account(&dir, "logs");
    let needles = needles(&credential.secret_key);

    for format in ["json", "text"] {
        let server = Server::start(
            &dir,
            &["--demo", "--log-format", format],
            &[("CARDCHECK_LOG", "debug")],
        );
        let ids = drive(&server, &credential);
        let stdout = server.stdout.clone();
        let stderr = server.stderr.clone();
        server.stop();
        let logs = String::from_utf8(stderr.lock().unwrap().clone()).unwrap();
        let stdout = String::from_utf8(stdout.lock().unwrap().clone()).unwrap();
        assert_clean(&format!("the {format} logs"), &logs, &needles);
        assert_clean(&format!("stdout ({format} run)"), &stdout, &needles);

        // One request line per answer, with its RequestId.
        for id in &ids {
            assert_eq!(
                logs.lines()
                    .filter(|l| l.contains(id.as_str()) && l.contains("request"))
                    .count(),
                1,
                "{id} in:\n{logs}"
            );
        }
        if format == "json" {
            let mut request_lines = 0;
            for line in logs.lines() {
                let doc: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(
                    doc["timestamp"].is_string() && doc["level"].is_string(),
                    "{line}"
                );
                if doc["message"] == "request" {
                    request_lines += 1;
                    for field in [
                        "request_id",
                        "secret_id",
                        "action",
                        "client",
                        "kind",
                        "outcome",
                    ] {
                        assert!(doc[field].is_string(), "{field} in {line}");
                    }
                    assert!(doc["micros"].is_u64(), "{line}");
                    assert_eq!(doc["secret_id"], credential.secret_id.as_str());
                    assert_eq!(doc["action"], ACTION);
                    assert_eq!(doc["client"], "OPS_TEST");
                }
            }
            assert_eq!(request_lines, ids.len());
        } else {
            assert!(logs.contains(" INFO "), "{logs}");
            assert!(serde_json::from_str::<Value>(logs.lines().next().unwrap()).is_err());
        }
    }
}

/// The request line of an answer given before the body was read (an oversized
/// `Content-Length`: `RequestSizeLimitExceeded`) lacked the `secret_id`, `action` and
/// `client` fields and quoted its `outcome`, unlike every other request line.
#[test]
fn a_request_refused_before_its_body_logs_the_same_fields() {
    use std::io::Write;
    let (_tmp, dir) = data_dir();
    create_account(&dir, "logs");
    let server = Server::start(&dir, &["--log-format", "json"], &[]);
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 999999999\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let (_, body) = read_response(&mut stream).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    let code = body["Response"]["Error"]["Code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code, "RequestSizeLimitExceeded", "{body}");
    let stderr = server.stderr.clone();
    server.stop();
    let logs = String::from_utf8(stderr.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|doc| doc["message"] == "request")
        .unwrap_or_else(|| panic!("no request line in:\n{logs}"));
    for field in [
        "request_id",
        "secret_id",
        "action",
        "client",
        "kind",
        "outcome",
    ] {
        assert!(line[field].is_string(), "{field} in {line}");
    }
    assert_eq!(line["outcome"], code.as_str(), "{line}");
    assert_eq!(line["kind"], "error", "{line}");
    assert_eq!(line["request_id"], body["Response"]["RequestId"], "{line}");
}
