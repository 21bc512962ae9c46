//! `cardcheck verify --name --card` against a mock endpoint that checks signatures for
//! real (spec/cli.md "Client", issue 4's `cardcheck verify` bullets).
#![allow(clippy::unwrap_used)]

mod verify_mock;

use std::sync::Arc;

use cardcheck_encryption::{Decryptor, KeyAlgorithm, KeyRing};
use cardcheck_tc3::SignMethod;
use verify_mock::{Behaviour, Mock, SECRET_KEY, run, verify_cmd};

const NAME: &str = "Wei Xiaobao";
const CARD: &str = "6225768888888888";
const CARD_MISMATCH: &str = "6226090210146748";

fn assert_no_secrets(text: &str) {
    assert!(!text.contains(CARD), "card number leaked: {text}");
    assert!(!text.contains(CARD_MISMATCH), "card number leaked: {text}");
    assert!(!text.contains(SECRET_KEY), "secret key leaked: {text}");
    assert!(!text.contains("panicked"), "panic: {text}");
    assert!(!text.contains("backtrace"), "backtrace: {text}");
}

#[test]
fn every_sign_method_and_http_method_is_accepted() {
    let mock = Mock::start(Behaviour::default());
    let cases = [
        ("TC3-HMAC-SHA256", "POST", SignMethod::Tc3HmacSha256),
        ("TC3-HMAC-SHA256", "GET", SignMethod::Tc3HmacSha256),
        ("HmacSHA1", "GET", SignMethod::HmacSha1),
        ("HmacSHA1", "POST", SignMethod::HmacSha1),
        ("HmacSHA256", "POST", SignMethod::HmacSha256),
        ("HmacSHA256", "GET", SignMethod::HmacSha256),
    ];
    for (sign, http, expected) in cases {
        for (card, result) in [(CARD, "0"), (CARD_MISMATCH, "-4")] {
            let r = run(verify_cmd(
                &mock.url,
                &[
                    "--name",
                    NAME,
                    "--card",
                    card,
                    "--sign-method",
                    sign,
                    "--http-method",
                    http,
                ],
            ));
            assert_eq!(r.code, 0, "{sign} {http}: {}", r.stderr);
            let lines: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(lines.len(), 3, "{}", r.stdout);
            assert_eq!(lines[0], format!("Result: {result}"));
            assert!(lines[1].starts_with("Description: "), "{}", r.stdout);
            assert!(lines[2].starts_with("RequestId: ") && lines[2].len() == 47);
            assert_eq!(r.stderr, "");
            let seen = mock.state.seen();
            let last = seen.last().unwrap();
            assert_eq!(last.sign_method, expected);
            assert_eq!(last.http_method, http);
            assert_eq!((last.name.as_str(), last.card.as_str()), (NAME, card));
        }
    }
}

#[test]
fn json_prints_the_whole_response_object() {
    let mock = Mock::start(Behaviour::default());
    let r = run(verify_cmd(
        &mock.url,
        &["--name", NAME, "--card", CARD, "--json"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["Result"], "0");
    assert!(v["Description"].is_string());
    assert_eq!(v["RequestId"].as_str().unwrap().len(), 36);
    assert!(
        v.get("Response").is_none(),
        "prints the inner Response object"
    );
}

#[test]
fn language_token_and_region_reach_the_server() {
    let mock = Mock::start(Behaviour {
        token: Some("session-token-1".into()),
        ..Behaviour::default()
    });
    for (sign, http) in [("TC3-HMAC-SHA256", "POST"), ("HmacSHA256", "GET")] {
        let mut cmd = verify_cmd(
            &mock.url,
            &[
                "--name",
                NAME,
                "--card",
                CARD,
                "--language",
                "zh-CN",
                "--region",
                "ap-guangzhou",
                "--sign-method",
                sign,
                "--http-method",
                http,
            ],
        );
        cmd.env("TENCENTCLOUD_SESSION_TOKEN", "session-token-1");
        let r = run(cmd);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("Description: 认证通过"), "{}", r.stdout);
        let seen = mock.state.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.language.as_deref(), Some("zh-CN"));
        assert_eq!(last.token.as_deref(), Some("session-token-1"));
        assert_eq!(last.region.as_deref(), Some("ap-guangzhou"));
    }
    // English when asked, and the --token flag works as the env does. (Another card:
    // Language is not signed in TC3, so the same body in the same second would be a
    // replay of the zh-CN request above, verification.md §4.)
    let r = run(verify_cmd(
        &mock.url,
        &[
            "--name",
            NAME,
            "--card",
            CARD_MISMATCH,
            "--language",
            "en-US",
            "--token",
            "session-token-1",
        ],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("Result: -4\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("持卡人信息有误"), "{}", r.stdout);
}

#[test]
fn api_errors_print_code_message_request_id_and_exit_1() {
    let mock = Mock::start(Behaviour::default());
    let mut cmd = verify_cmd(
        &mock.url,
        &["--name", NAME, "--card", CARD, "--http-method", "GET"],
    );
    cmd.env(
        "TENCENTCLOUD_SECRET_KEY",
        "wrong-secret-key-0000000000000000",
    );
    let r = run(cmd);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    let line = r.stderr.trim_end();
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        line.starts_with("AuthFailure.SignatureFailure: The provided credentials"),
        "{line}"
    );
    assert!(line.ends_with(')') && line.contains(" ("), "{line}");
    assert_no_secrets(&r.stderr);
    assert!(!r.stderr.contains("wrong-secret-key"));

    // Unknown SecretId; --json still prints the Response object.
    let mut cmd = verify_cmd(&mock.url, &["--name", NAME, "--card", CARD, "--json"]);
    cmd.env("TENCENTCLOUD_SECRET_ID", "AKIDunknown");
    let r = run(cmd);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("AuthFailure.SecretIdNotFound: "));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["Error"]["Code"], "AuthFailure.SecretIdNotFound");
}

#[test]
fn closed_port_prints_one_clear_line_and_exits_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    for http in ["POST", "GET"] {
        let r = run(verify_cmd(
            &endpoint,
            &["--name", NAME, "--card", CARD, "--http-method", http],
        ));
        assert_eq!(r.code, 1);
        assert_eq!(r.stdout, "");
        assert_eq!(
            r.stderr,
            format!("error: cannot connect to {endpoint}: connection refused\n")
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let mock = Mock::start(Behaviour::default());
    for args in [
        &["--name", NAME][..],
        &["--card", CARD][..],
        &[][..],
        &["--name", NAME, "--card", CARD, "--sign-method", "MD5"][..],
        &["--name", NAME, "--card", CARD, "--encrypt", "AES-256-CBC"][..],
        &["--name", NAME, "--card", CARD, "--language", "fr-FR"][..],
    ] {
        let r = run(verify_cmd(&mock.url, args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_no_secrets(&r.stderr);
    }
    let mut cmd = verify_cmd(&mock.url, &["--name", NAME, "--card", CARD]);
    cmd.env_remove("TENCENTCLOUD_SECRET_KEY");
    let r = run(cmd);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("TENCENTCLOUD_SECRET_KEY"), "{}", r.stderr);
    assert!(mock.state.seen().is_empty());
}

#[test]
fn encrypted_requests_are_decrypted_by_the_server() {
    let ring = KeyRing::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rsa = dir.path().join("rsa.pem");
    let sm2 = dir.path().join("sm2.pem");
    std::fs::write(&rsa, ring.public_pem(KeyAlgorithm::Rsa)).unwrap();
    // Base64 of the PEM is the helpers' form.
    std::fs::write(&sm2, ring.public_pem_base64(KeyAlgorithm::Sm2)).unwrap();
    let mock = Mock::start(Behaviour {
        keys: Some(Arc::new(Decryptor::new(ring))),
        ..Behaviour::default()
    });
    for (alg, key, sign, http) in [
        ("AES-256-CBC", &rsa, "TC3-HMAC-SHA256", "POST"),
        ("SM4-GCM", &sm2, "HmacSHA1", "GET"),
    ] {
        let r = run(verify_cmd(
            &mock.url,
            &[
                "--name",
                NAME,
                "--card",
                CARD_MISMATCH,
                "--encrypt",
                alg,
                "--public-key",
                key.to_str().unwrap(),
                "--sign-method",
                sign,
                "--http-method",
                http,
            ],
        ));
        assert_eq!(r.code, 0, "{alg}: {}", r.stderr);
        assert!(r.stdout.starts_with("Result: -4\n"), "{}", r.stdout);
        let seen = mock.state.seen();
        let last = seen.last().unwrap();
        assert!(last.encrypted && !last.card_on_wire);
        assert_eq!(last.card, CARD_MISMATCH);
    }
    // The wrong kind of key is refused before anything is sent.
    let before = mock.state.seen().len();
    let r = run(verify_cmd(
        &mock.url,
        &[
            "--name",
            NAME,
            "--card",
            CARD,
            "--encrypt",
            "SM4-GCM",
            "--public-key",
            rsa.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    assert_no_secrets(&r.stderr);
    assert_eq!(mock.state.seen().len(), before);
}

/// Regression: server-provided text was printed raw — an `Error.Message` with a newline
/// and an ANSI escape made a two-line error that recoloured the terminal, and a
/// `Description` holding another card number and `\x1b[2J` reached stdout unmasked with
/// the escape intact. Every server text must be one line, escaped and masked.
#[test]
fn server_text_is_printed_on_one_line_with_controls_escaped_and_cards_masked() {
    let other_card = "6217000000000000012";
    let mut behaviour = Behaviour::default();
    behaviour.canned.insert(
        CARD.to_owned(),
        serde_json::json!({"Error": {
            "Code": "InvalidParameterValue\u{1b}[0m",
            "Message": format!("bad card {CARD}\nsecond line \u{1b}[31mred {other_card}"),
        }}),
    );
    behaviour.canned.insert(
        CARD_MISMATCH.to_owned(),
        serde_json::json!({
            "Result": "-4",
            "Description": format!("card {other_card} mismatch\u{1b}[2J\r\nend\u{202e}"),
        }),
    );
    let mock = Mock::start(behaviour);

    let r = run(verify_cmd(&mock.url, &["--name", NAME, "--card", CARD]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let line = r.stderr.trim_end();
    assert!(!line.contains('\u{1b}'), "raw escape: {line:?}");
    assert!(
        line.starts_with(r"InvalidParameterValue\u{1b}[0m: bad card 622576******8888\nsecond line \u{1b}[31mred 621700*********0012 ("),
        "{line}"
    );
    assert!(!line.contains(other_card), "{line}");
    assert_no_secrets(&r.stderr);

    let r = run(verify_cmd(
        &mock.url,
        &["--name", NAME, "--card", CARD_MISMATCH],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(
        r.stdout
            .contains(r"Description: card 621700*********0012 mismatch\u{1b}[2J\r\nend\u{202e}"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains(other_card));
    assert_no_secrets(&r.stdout);

    // --json: still JSON (which escapes controls itself), cards masked.
    let r = run(verify_cmd(
        &mock.url,
        &["--name", NAME, "--card", CARD_MISMATCH, "--json"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // C0 controls are JSON's to escape; a bidi override is written visibly.
    assert_eq!(
        v["Description"],
        "card 621700*********0012 mismatch\u{1b}[2J\r\nend\\u{202e}"
    );
    assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains(other_card));
    assert!(!r.stdout.contains('\u{202e}'), "{}", r.stdout);
}

/// Broke: `--json` printed C1 controls (U+009B CSI), bidi overrides and zero-width
/// characters of server text raw (serde_json escapes C0 only), and text mode printed
/// zero-width characters raw. Both must write them visibly (`\u{202e}` as text).
#[test]
fn json_and_text_output_escape_c1_bidi_and_zero_width_characters() {
    let mut behaviour = Behaviour::default();
    behaviour.canned.insert(
        CARD_MISMATCH.to_owned(),
        serde_json::json!({
            "Result": "-4",
            "Description": "a\u{9b}2Jb\u{202e}c\u{2067}d\u{200b}e\u{2060}f\u{feff}g",
        }),
    );
    let mock = Mock::start(behaviour);
    let visible = r"a\u{9b}2Jb\u{202e}c\u{2067}d\u{200b}e\u{2060}f\u{feff}g";
    let unsafe_chars = [
        '\u{9b}', '\u{202e}', '\u{2067}', '\u{200b}', '\u{2060}', '\u{feff}',
    ];
    for json in [false, true] {
        let mut args = vec!["--name", NAME, "--card", CARD_MISMATCH];
        if json {
            args.push("--json");
        }
        let r = run(verify_cmd(&mock.url, &args));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            !r.stdout.contains(unsafe_chars.as_slice()),
            "json {json}: {:?}",
            r.stdout
        );
        if json {
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(v["Description"], visible);
        } else {
            assert!(
                r.stdout.contains(&format!("Description: {visible}\n")),
                "{}",
                r.stdout
            );
        }
    }
}
