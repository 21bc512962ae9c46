//! Signing the inputs of every Python capture reproduces the capture: the same
//! signature, the same body / query bytes and the same protocol headers in the same
//! order (Python SDK 3.1.195, see tests/fixtures/PROVENANCE.md). Node captures are
//! not reproduced (Node's encodings differ, §1.1) but our signatures must verify.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_tc3::sign::{Credential, SignInput, SignOptions, sign_request, sign_request_with};
use cardcheck_tc3::{Limits, SignMethod, parse};
use common::{NOW, SECRET_ID, SECRET_KEY, captures, fixtures};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

/// The protocol headers of a raw capture, in received order.
fn protocol_headers(name: &str) -> Vec<(String, String)> {
    let raw = std::fs::read(fixtures().join(format!("{name}.http"))).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            (k.starts_with("x-tc-") && k != "x-tc-traceid")
                || k == "content-type"
                || k == "host"
                || k == "authorization"
        })
        .collect()
}

#[test]
fn python_captures_are_reproduced_byte_for_byte() {
    let mut count = 0;
    for (name, req) in captures().into_iter().filter(|(n, _)| n.starts_with("py")) {
        let raw = req.raw();
        let p = parse(&raw, &Limits::default()).unwrap();
        let business = p.business_params(&raw).unwrap();
        let cp = p.params();
        let cred = Credential {
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
            token: cp.token.clone(),
        };
        let (date_service, host) = (p.tc3_scope(), req.header("host").unwrap());
        let input = SignInput {
            credential: &cred,
            host: &host,
            service: date_service.map_or("faceid", |(_, s)| s),
            action: &cp.action,
            version: &cp.version,
            region: cp.region.as_deref(),
            language: cp.language.as_deref(),
            request_client: cp.request_client.as_deref(),
            sign_method: p.sign_method(),
            http_method: &req.method,
            timestamp: NOW,
            nonce: cp.nonce.unwrap_or(0),
            params: &business,
        };
        let opts = SignOptions {
            unsigned_payload: req.headers.contains_key("x-tc-content-sha256"),
        };
        let signed = sign_request_with(&input, &opts);
        assert_eq!(signed.method, req.method, "{name}");
        let expected_target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        assert_eq!(signed.path_and_query, expected_target, "{name}");
        assert_eq!(
            String::from_utf8_lossy(&signed.body),
            String::from_utf8_lossy(&req.body),
            "{name}"
        );
        if p.sign_method() == SignMethod::Tc3HmacSha256 {
            let got: Vec<(String, String)> = signed.headers.clone();
            assert_eq!(got, protocol_headers(&name), "{name}");
        } else {
            assert_eq!(
                signed.header("content-type"),
                Some("application/x-www-form-urlencoded")
            );
            assert_eq!(signed.header("host"), Some(host.as_str()));
        }
        count += 1;
    }
    assert_eq!(count, 30, "every py_/pyhost_ capture");
}

/// Builds a RawRequest-able owned request from a SignedRequest.
fn to_owned(s: &cardcheck_tc3::sign::SignedRequest) -> common::OwnedRequest {
    let mut headers = HeaderMap::new();
    for (k, v) in &s.headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (path, query) = s
        .path_and_query
        .split_once('?')
        .unwrap_or((&s.path_and_query, ""));
    common::OwnedRequest {
        method: s.method.clone(),
        path: path.into(),
        query: query.into(),
        headers,
        body: s.body.clone(),
    }
}

#[test]
fn signed_requests_verify_and_round_trip_params() {
    let cred = Credential {
        secret_id: SECRET_ID.into(),
        secret_key: SECRET_KEY.into(),
        token: Some("tok".into()),
    };
    let params = json!({
        "Name": "Wei Xiaobao &=+/% 张三 😀",
        "BankCard": "6225768888888888",
        "Encryption": {"EncryptList": ["Name", "BankCard"], "Iv": "a+b/c==", "TagList": []}
    });
    let serde_json::Value::Object(params) = params else {
        unreachable!()
    };
    for sign_method in [
        SignMethod::Tc3HmacSha256,
        SignMethod::HmacSha1,
        SignMethod::HmacSha256,
    ] {
        for http_method in ["GET", "POST"] {
            for host in ["faceid.tencentcloudapi.com", "127.0.0.1:18080"] {
                let input = SignInput {
                    credential: &cred,
                    host,
                    service: "faceid",
                    action: "bankCard2EVerification",
                    version: "2018-03-01",
                    region: None,
                    language: Some("en-US"),
                    request_client: Some("SDK_RUST"),
                    sign_method,
                    http_method,
                    timestamp: NOW,
                    nonce: 0,
                    params: &params,
                };
                let signed = sign_request(&input);
                let req = to_owned(&signed);
                let raw = req.raw();
                let p = parse(&raw, &Limits::default()).unwrap();
                assert_eq!(p.sign_method(), sign_method);
                assert_eq!(p.params().action, "BankCard2EVerification");
                assert_eq!(p.params().token.as_deref(), Some("tok"));
                p.check_timestamp(NOW).unwrap();
                p.verify(&raw, SECRET_KEY).unwrap();
                let back = p.business_params(&raw).unwrap();
                assert_eq!(back["Name"], params["Name"]);
                assert_eq!(
                    back["Encryption"]["EncryptList"],
                    json!(["Name", "BankCard"])
                );
                assert_eq!(back["Encryption"]["Iv"], "a+b/c==");
            }
        }
    }
}
