//! Every kind of malformed request gets its code (protocol.md §1.6, §2, §5). Each row
//! runs the full server pipeline: parse → check_timestamp → verify → business_params.
//! Rows that are only malformed after the signature (body problems) are correctly
//! signed, so the code proves the check happens and happens late.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_tc3::sign::{Tc3RawInput, tc3_authorization, v1_signature};
use cardcheck_tc3::{ErrorCode, Limits, SignMethod, parse};
use common::{NOW, OwnedRequest, SECRET_ID, SECRET_KEY};
use http::{HeaderMap, HeaderName, HeaderValue};

const HOST: &str = "faceid.tencentcloudapi.com";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn pipeline(req: &OwnedRequest) -> Result<(), ErrorCode> {
    let raw = req.raw();
    let p = parse(&raw, &Limits::default()).map_err(|e| e.code())?;
    p.check_timestamp(NOW).map_err(|e| e.code())?;
    p.verify(&raw, SECRET_KEY).map_err(|e| e.code())?;
    p.business_params(&raw).map(|_| ()).map_err(|e| e.code())
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in list {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

/// A correctly signed TC3 request over raw bytes.
fn tc3(method: &str, query: &str, ct: &str, body: &[u8]) -> OwnedRequest {
    let auth = tc3_authorization(&Tc3RawInput {
        secret_id: SECRET_ID,
        secret_key: SECRET_KEY,
        service: "faceid",
        http_method: method,
        query,
        content_type: ct,
        host: HOST,
        payload: if method == "GET" { b"" } else { body },
        timestamp: NOW,
    });
    OwnedRequest {
        method: method.into(),
        path: "/".into(),
        query: query.into(),
        headers: headers(&[
            ("Host", HOST),
            ("Content-Type", ct),
            ("X-TC-Action", "BankCard2EVerification"),
            ("X-TC-Version", "2018-03-01"),
            ("X-TC-Timestamp", "1700000000"),
            ("Authorization", &auth),
        ]),
        body: body.to_vec(),
    }
}

fn good_json() -> OwnedRequest {
    tc3(
        "POST",
        "",
        JSON,
        br#"{"Name":"x","BankCard":"6225768888888888"}"#,
    )
}

fn with_header(mut r: OwnedRequest, k: &str, v: &str) -> OwnedRequest {
    r.set_header(k, v);
    r
}

fn without_header(mut r: OwnedRequest, k: &str) -> OwnedRequest {
    r.headers.remove(k);
    r
}

fn with_auth(r: OwnedRequest, f: impl Fn(&str) -> String) -> OwnedRequest {
    let a = r.header("authorization").unwrap();
    with_header(r, "authorization", &f(&a))
}

/// A correctly signed v1 request; `params` are sent in order, then `Signature`.
fn v1(method: &str, params: &[(&str, &str)]) -> OwnedRequest {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = v1_signature(SECRET_KEY, SignMethod::HmacSha1, method, HOST, "/", &owned);
    let mut all = owned;
    all.push(("Signature".into(), sig));
    let data = cardcheck_tc3::form::urlencode(&all);
    let (query, body) = if method == "GET" {
        (data, Vec::new())
    } else {
        (String::new(), data.into_bytes())
    };
    OwnedRequest {
        method: method.into(),
        path: "/".into(),
        query,
        headers: headers(&[("Host", HOST), ("Content-Type", FORM)]),
        body,
    }
}

fn v1_base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Name", "x"),
        ("BankCard", "6225768888888888"),
        ("Action", "BankCard2EVerification"),
        ("Nonce", "1"),
        ("Timestamp", "1700000000"),
        ("Version", "2018-03-01"),
        ("SecretId", SECRET_ID),
    ]
}

fn v1_without(key: &str) -> Vec<(&'static str, &'static str)> {
    v1_base().into_iter().filter(|(k, _)| *k != key).collect()
}

fn v1_with(key: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut p = v1_without(key);
    p.push((key, value));
    p
}

#[test]
fn malformed_requests_get_their_codes() {
    use ErrorCode::*;
    let rows: Vec<(&str, OwnedRequest, Result<(), ErrorCode>)> = vec![
        // Sanity: the templates themselves are fine.
        ("good TC3 POST", good_json(), Ok(())),
        (
            "good TC3 GET",
            tc3("GET", "Name=x&BankCard=1", FORM, b""),
            Ok(()),
        ),
        ("good v1 GET", v1("GET", &v1_base()), Ok(())),
        ("good v1 POST", v1("POST", &v1_base()), Ok(())),
        // Method and size.
        (
            "PUT",
            OwnedRequest {
                method: "PUT".into(),
                ..good_json()
            },
            Err(UnsupportedProtocol),
        ),
        (
            "DELETE",
            OwnedRequest {
                method: "DELETE".into(),
                ..good_json()
            },
            Err(UnsupportedProtocol),
        ),
        (
            "lower-case post",
            OwnedRequest {
                method: "post".into(),
                ..good_json()
            },
            Err(UnsupportedProtocol),
        ),
        (
            "GET over 32 KB",
            tc3("GET", &format!("Name={}", "a".repeat(32 * 1024)), FORM, b""),
            Err(RequestSizeLimitExceeded),
        ),
        (
            "v1 POST over 1 MB",
            {
                let mut r = v1("POST", &v1_base());
                r.body.extend(std::iter::repeat_n(b'a', 1 << 20));
                r
            },
            Err(RequestSizeLimitExceeded),
        ),
        (
            "TC3 POST over 10 MB",
            OwnedRequest {
                body: vec![b' '; (10 << 20) + 1],
                ..good_json()
            },
            Err(RequestSizeLimitExceeded),
        ),
        // Authorization.
        (
            "no Authorization (JSON POST)",
            without_header(good_json(), "authorization"),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "no Authorization, no Signature (bare GET)",
            OwnedRequest {
                method: "GET".into(),
                path: "/".into(),
                query: "Name=x".into(),
                headers: headers(&[("Host", HOST)]),
                body: vec![],
            },
            Err(MissingParameter),
        ),
        (
            "bad algorithm",
            with_auth(good_json(), |a| {
                a.replace("TC3-HMAC-SHA256", "TC3-HMAC-SHA1")
            }),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "algorithm suffix",
            with_auth(good_json(), |a| {
                a.replace("TC3-HMAC-SHA256 ", "TC3-HMAC-SHA256X ")
            }),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Authorization: SKIP",
            with_header(good_json(), "authorization", "SKIP"),
            Err(AuthFailureInvalidAuthorization),
        ),
        // Two Authorization headers: the first one used to win silently.
        (
            "a second Authorization header",
            {
                let mut r = good_json();
                let a = r.header("authorization").unwrap();
                r.headers.append(
                    HeaderName::from_static("authorization"),
                    HeaderValue::from_str(&a).unwrap(),
                );
                r
            },
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Credential with 3 parts",
            with_auth(good_json(), |a| a.replace("/faceid/", "/")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Credential with 5 parts",
            with_auth(good_json(), |a| a.replace("/faceid/", "/faceid/x/")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "empty SecretId",
            with_auth(good_json(), |a| a.replace(SECRET_ID, "")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "malformed scope date",
            with_auth(good_json(), |a| a.replace("2023-11-14", "20231114")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "unknown scope suffix",
            with_auth(good_json(), |a| a.replace("tc3_request", "tc2_request")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "missing Credential",
            with_auth(good_json(), |a| a.replace("Credential=", "Cred=")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "missing SignedHeaders",
            with_auth(good_json(), |a| {
                a.replace("SignedHeaders=content-type;host, ", "")
            }),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "SignedHeaders without host",
            with_auth(good_json(), |a| {
                a.replace("content-type;host", "content-type")
            }),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "SignedHeaders without content-type",
            with_auth(good_json(), |a| a.replace("content-type;host", "host")),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Signature not hex",
            with_auth(good_json(), |a| format!("{}zz", &a[..a.len() - 2])),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Signature short",
            with_auth(good_json(), |a| a[..a.len() - 2].to_owned()),
            Err(AuthFailureInvalidAuthorization),
        ),
        (
            "Signature wrong",
            with_auth(good_json(), |a| {
                format!(
                    "{}{}",
                    &a[..a.len() - 1],
                    if a.ends_with('0') { '1' } else { '0' }
                )
            }),
            Err(AuthFailureSignatureFailure),
        ),
        // Timestamp.
        (
            "missing Timestamp",
            without_header(good_json(), "x-tc-timestamp"),
            Err(MissingParameter),
        ),
        (
            "non-integer Timestamp",
            with_header(good_json(), "x-tc-timestamp", "1.7e9"),
            Err(InvalidParameter),
        ),
        (
            "empty Timestamp",
            with_header(good_json(), "x-tc-timestamp", ""),
            Err(InvalidParameter),
        ),
        (
            "expired",
            with_header(good_json(), "x-tc-timestamp", "1699999000"),
            Err(AuthFailureSignatureExpire),
        ),
        (
            "from the future",
            with_header(good_json(), "x-tc-timestamp", "1700000301"),
            Err(AuthFailureSignatureExpire),
        ),
        (
            "date/timestamp mismatch",
            with_auth(good_json(), |a| a.replace("2023-11-14", "2023-11-15")),
            Err(AuthFailureSignatureFailure),
        ),
        (
            "v1 missing Timestamp",
            v1("GET", &v1_without("Timestamp")),
            Err(MissingParameter),
        ),
        (
            "v1 non-integer Timestamp",
            v1("GET", &v1_with("Timestamp", "abc")),
            Err(InvalidParameter),
        ),
        (
            "v1 expired",
            v1("GET", &v1_with("Timestamp", "1600000000")),
            Err(AuthFailureSignatureExpire),
        ),
        // Common parameters.
        (
            "missing Action",
            without_header(good_json(), "x-tc-action"),
            Err(MissingParameter),
        ),
        (
            "missing Version",
            without_header(good_json(), "x-tc-version"),
            Err(MissingParameter),
        ),
        (
            "v1 missing Action",
            v1("GET", &v1_without("Action")),
            Err(MissingParameter),
        ),
        (
            "v1 missing Version",
            v1("POST", &v1_without("Version")),
            Err(MissingParameter),
        ),
        (
            "v1 missing SecretId",
            v1("GET", &v1_without("SecretId")),
            Err(MissingParameter),
        ),
        (
            "v1 missing Nonce",
            v1("GET", &v1_without("Nonce")),
            Err(MissingParameter),
        ),
        (
            "v1 negative Nonce",
            v1("GET", &v1_with("Nonce", "-1")),
            Err(InvalidParameter),
        ),
        (
            "v1 bad SignatureMethod",
            v1("GET", &v1_with("SignatureMethod", "HmacMD5")),
            Err(InvalidParameterValue),
        ),
        // Content types.
        (
            "TC3 POST with form body",
            tc3("POST", "", FORM, b"Name=x"),
            Err(InvalidParameter),
        ),
        (
            "TC3 POST JSON with charset",
            tc3("POST", "", "application/json; charset=utf-8", b"{}"),
            Ok(()),
        ),
        (
            "v1 POST form with charset",
            with_header(
                v1("POST", &v1_base()),
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            ),
            Ok(()),
        ),
        // Body problems: reported after the signature is verified.
        (
            "invalid UTF-8 body",
            tc3("POST", "", JSON, b"{\"Name\":\"\xff\"}"),
            Err(InvalidParameter),
        ),
        (
            "non-object JSON (array)",
            tc3("POST", "", JSON, b"[1,2]"),
            Err(InvalidParameter),
        ),
        (
            "non-object JSON (string)",
            tc3("POST", "", JSON, b"\"x\""),
            Err(InvalidParameter),
        ),
        (
            "not JSON",
            tc3("POST", "", JSON, b"{Name:"),
            Err(InvalidParameter),
        ),
        (
            "duplicate JSON key",
            tc3("POST", "", JSON, br#"{"Name":"a","Name":"b"}"#),
            Err(InvalidParameter),
        ),
        (
            "duplicate nested JSON key",
            tc3("POST", "", JSON, br#"{"E":{"Iv":"a","Iv":"b"}}"#),
            Err(InvalidParameter),
        ),
        (
            "bad JSON, bad signature",
            with_auth(tc3("POST", "", JSON, b"[1]"), |a| {
                format!(
                    "{}{}",
                    &a[..a.len() - 1],
                    if a.ends_with('0') { '1' } else { '0' }
                )
            }),
            Err(AuthFailureSignatureFailure),
        ),
        (
            "duplicate query key (TC3 GET)",
            tc3("GET", "Name=a&Name=b", FORM, b""),
            Err(InvalidParameter),
        ),
        (
            "duplicate query key (v1)",
            v1("GET", &[v1_base(), vec![("Name", "y")]].concat()),
            Err(InvalidParameter),
        ),
        (
            "index gap (TC3 GET)",
            tc3(
                "GET",
                "Encryption.EncryptList.0=Name&Encryption.EncryptList.2=BankCard",
                FORM,
                b"",
            ),
            Err(InvalidParameter),
        ),
        (
            "index not from 0 (v1)",
            v1(
                "GET",
                &[v1_base(), vec![("Encryption.TagList.1", "t")]].concat(),
            ),
            Err(InvalidParameter),
        ),
        (
            "leading-zero index",
            tc3("GET", "A.00=x", FORM, b""),
            Err(InvalidParameter),
        ),
        (
            "value and parent (TC3 GET)",
            tc3("GET", "A=x&A.B=y", FORM, b""),
            Err(InvalidParameter),
        ),
        (
            "query segment without =",
            tc3("GET", "Name=x&BankCard", FORM, b""),
            Err(InvalidParameter),
        ),
        (
            "v1 segment without =",
            {
                let mut r = v1("GET", &v1_base());
                r.query.push_str("&junk");
                r
            },
            Err(InvalidParameter),
        ),
        (
            "invalid UTF-8 in query value",
            tc3("GET", "Name=%FF", FORM, b""),
            Err(InvalidParameter),
        ),
    ];
    let mut failures = Vec::new();
    for (what, req, want) in &rows {
        let got = pipeline(req);
        if got != *want {
            failures.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_parameter_messages_name_the_parameter() {
    use cardcheck_tc3::Language;
    let r = without_header(good_json(), "x-tc-version");
    let e = parse(&r.raw(), &Limits::default()).unwrap_err();
    assert_eq!(
        e.message(Language::EnUs),
        "The request is missing a required parameter `Version`."
    );
    let r = without_header(good_json(), "x-tc-timestamp");
    let e = parse(&r.raw(), &Limits::default()).unwrap_err();
    assert_eq!(
        e.message(Language::EnUs),
        "The request is missing a required parameter `Timestamp`."
    );
}

#[test]
fn parse_does_not_read_the_json_body() {
    // §1.6 order: a broken body with a broken signature is a signature failure.
    let mut r = tc3("POST", "", JSON, b"[not json");
    r.body = b"[still not json".to_vec();
    let raw = r.raw();
    let p = parse(&raw, &Limits::default()).unwrap();
    assert_eq!(
        p.verify(&raw, SECRET_KEY).map_err(|e| e.code()),
        Err(ErrorCode::AuthFailureSignatureFailure)
    );
}

#[test]
fn messages_never_leak_card_numbers_or_secrets() {
    use cardcheck_tc3::Language;
    let reqs = [
        tc3(
            "POST",
            "",
            JSON,
            br#"{"6225768888888888":1,"6225768888888888":2}"#,
        ),
        tc3("GET", "6225768888888888=a&6225768888888888=b", FORM, b""),
        tc3("POST", "", JSON, b"{\"Name\":\"6225768888888888"),
    ];
    for r in &reqs {
        let raw = r.raw();
        let p = parse(&raw, &Limits::default()).unwrap();
        p.verify(&raw, SECRET_KEY).unwrap();
        let e = p.business_params(&raw).unwrap_err();
        for lang in [Language::EnUs, Language::ZhCn] {
            let m = e.message(lang);
            assert!(!m.contains("6225768888888888"), "{m}");
            assert!(!m.contains(SECRET_KEY), "{m}");
        }
    }
}
