//! Known-answer vectors of protocol.md §1.7 (T1–T8, TC3) and §2.4 (S1–S6, v1).
//! Sources: Tencent's Signature v3 / v1 documentation examples and the captures,
//! all recomputed by `tests/fixtures/kat/{doc_vectors,doc_vectors_v3_new,capture_vectors}.py`.
//! Each vector goes through the real code path: a request is built, parsed and
//! verified, so a pass means our canonical request / string to sign match byte for byte.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_tc3::{Limits, parse, tc3_signing_key};
use common::{OwnedRequest, SECRET_KEY, capture};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

fn request(method: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> OwnedRequest {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    OwnedRequest {
        method: method.into(),
        path: "/".into(),
        query: query.into(),
        headers: map,
        body: body.to_vec(),
    }
}

fn verifies(req: &OwnedRequest, key: &str) -> bool {
    let raw = req.raw();
    let p = parse(&raw, &Limits::default()).unwrap();
    p.verify(&raw, key).is_ok()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

// ---- T1–T3: Tencent Signature v3 doc example (CVM DescribeInstances) ----

const DOC_BODY: &str =
    r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
const DOC_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";

fn doc_request(signed_headers: &str, signature: &str) -> OwnedRequest {
    let auth = format!(
        "TC3-HMAC-SHA256 Credential={DOC_ID}/2019-02-25/cvm/tc3_request, SignedHeaders={signed_headers}, Signature={signature}"
    );
    request(
        "POST",
        "",
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
            ("X-TC-Action", "DescribeInstances"),
            ("X-TC-Timestamp", "1551113065"),
            ("X-TC-Version", "2017-03-12"),
            ("X-TC-Region", "ap-guangzhou"),
            ("Authorization", &auth),
        ],
        DOC_BODY.as_bytes(),
    )
}

#[test]
fn t1_doc_example() {
    // Source: Signature v3 doc (older revision), key "…EXAMPLE"; doc_vectors.py.
    assert_eq!(
        sha256_hex(DOC_BODY.as_bytes()),
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    );
    let sig = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168";
    assert!(verifies(
        &doc_request("content-type;host", sig),
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
    ));
    assert!(!verifies(
        &doc_request("content-type;host", sig),
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLF"
    ));
}

#[test]
fn t2_doc_example_masked_key() {
    // Source: the doc prints the key masked; the signature is for the masked text.
    let sig = "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c";
    assert!(verifies(
        &doc_request("content-type;host", sig),
        "Gu5t9xGARNpq86cd98joQYCN3*******"
    ));
}

#[test]
fn t3_doc_current_signs_x_tc_action_lower_cased() {
    // Source: current Signature v3 doc (signs x-tc-action, value lower-cased, published
    // kSigning; real key masked); doc_vectors_v3_new.py.
    let k: [u8; 32] =
        hex::decode("b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af")
            .unwrap()
            .try_into()
            .unwrap();
    let req = doc_request(
        "content-type;host;x-tc-action",
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f",
    );
    let raw = req.raw();
    let p = parse(&raw, &Limits::default()).unwrap();
    assert_eq!(p.tc3_scope(), Some(("2019-02-25", "cvm")));
    p.verify_with_tc3_signing_key(&raw, &k).unwrap();
    // kSigning derived from the masked key is a different value.
    assert_ne!(
        tc3_signing_key("Gu5t9xGARNpq86cd98joQYCN3*******", "2019-02-25", "cvm"),
        k
    );
}

// ---- T4–T8: captures ----

fn capture_signature(name: &str) -> String {
    let a = capture(name).header("authorization").unwrap();
    a.rsplit("Signature=").next().unwrap().to_owned()
}

#[test]
fn t4_pyhost_tc3_post_json() {
    // Source: capture pyhost_tc3_post_json (= tccli_tc3_post_default); capture_vectors.py.
    let req = capture("pyhost_tc3_post_json");
    assert_eq!(
        sha256_hex(&req.body),
        "c1a94c555957a440acf5e42bf81bb220ebd79f855139c83e7103e5ecd91d941a"
    );
    assert_eq!(
        hex::encode(tc3_signing_key(SECRET_KEY, "2023-11-14", "faceid")),
        "02b0d87b5fb510a5663ea287185226da0575743a3e979f222b7633638084d881"
    );
    assert_eq!(
        capture_signature("pyhost_tc3_post_json"),
        "9c08fb0ff618c8e2d2118cf31fbb56040cc186da7a1dc43a55e3a7d75ff64752"
    );
    assert!(verifies(&req, SECRET_KEY));
}

#[test]
fn t5_pyhost_tc3_get() {
    // Source: capture pyhost_tc3_get; capture_vectors.py.
    let req = capture("pyhost_tc3_get");
    assert_eq!(
        req.query,
        "Name=%E5%BC%A0%E4%B8%89&BankCard=6225768888888888"
    );
    assert_eq!(
        capture_signature("pyhost_tc3_get"),
        "66d5af445cd024dfc059fc641bed381ce0ec1078d2c79795d3ea54b4bd44cdcc"
    );
    assert!(verifies(&req, SECRET_KEY));
}

#[test]
fn t6_nodehost_tc3_post_json_raw_utf8() {
    // Source: capture nodehost_tc3_post_json (not copied; rebuilt from §1.7 inputs).
    let sig = "3c4d1efcee0793917687f3cc313ff56d8bccd4e5b34dc6c1697b10b69aed5957";
    let auth = format!(
        "TC3-HMAC-SHA256 Credential={}/2023-11-14/faceid/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
        common::SECRET_ID
    );
    let req = request(
        "POST",
        "",
        &[
            ("Host", "faceid.tencentcloudapi.com"),
            ("Content-Type", "application/json"),
            ("X-TC-Action", "BankCard2EVerification"),
            ("X-TC-Version", "2018-03-01"),
            ("X-TC-Timestamp", "1700000000"),
            ("Authorization", &auth),
        ],
        r#"{"Name":"张三","BankCard":"6225768888888888"}"#.as_bytes(),
    );
    assert!(verifies(&req, SECRET_KEY));
}

#[test]
fn t7_node_signs_host_without_port_service_127() {
    // Source: capture node_tc3_post_json.
    assert_eq!(
        capture_signature("node_tc3_post_json"),
        "8e5377b9f247a563b09d12b27d972a320a3722c806c09fbc892f25856d409941"
    );
    let req = capture("node_tc3_post_json");
    assert_eq!(req.header("host").as_deref(), Some("127.0.0.1:18080"));
    assert!(verifies(&req, SECRET_KEY));
}

#[test]
fn t8_unsigned_payload() {
    // Source: capture py_tc3_post_unsigned_payload.
    assert_eq!(
        capture_signature("py_tc3_post_unsigned_payload"),
        "105db549b8d35b257e442761facb7d5b579885c4629476aa41acefd286011bb7"
    );
    let mut req = capture("py_tc3_post_unsigned_payload");
    assert!(verifies(&req, SECRET_KEY));
    // Without the header the body is hashed and the signature no longer matches.
    req.headers.remove("x-tc-content-sha256");
    assert!(!verifies(&req, SECRET_KEY));
}

// ---- S1–S6: Signature v1 ----

fn v1_get(host: &str, params: &[(&str, &str)], signature: &str) -> OwnedRequest {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("Signature", signature));
    let query = cardcheck_tc3::form::urlencode(&all);
    request("GET", &query, &[("Host", host)], b"")
}

const S1_PARAMS: &[(&str, &str)] = &[
    ("Action", "DescribeInstances"),
    ("InstanceIds.0", "ins-09dx96dg"),
    ("Limit", "20"),
    ("Nonce", "11886"),
    ("Offset", "0"),
    ("Region", "ap-guangzhou"),
    ("SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
    ("Timestamp", "1465185768"),
    ("Version", "2017-03-12"),
];

#[test]
fn s1_doc_example() {
    // Source: Signature v1 doc (CVM DescribeInstances, HmacSHA1); doc_vectors.py.
    let req = v1_get(
        "cvm.tencentcloudapi.com",
        S1_PARAMS,
        "EliP9YW3pW28FpsEdkXt/+WcGeI=",
    );
    assert!(verifies(&req, "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"));
    assert!(!verifies(&req, "Gu5t9xGARNpq86cd98joQYCN3EXAMPLF"));
}

#[test]
fn s2_doc_example_masked() {
    // Source: the same doc with key and SecretId masked as printed; doc_vectors.py.
    let params: Vec<(&str, &str)> = S1_PARAMS
        .iter()
        .map(|&(k, v)| {
            if k == "SecretId" {
                (k, "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******")
            } else {
                (k, v)
            }
        })
        .collect();
    let req = v1_get(
        "cvm.tencentcloudapi.com",
        &params,
        "zmmjn35mikh6pM3V7sUEuX4wyYM=",
    );
    assert!(verifies(&req, "Gu5t9xGARNpq86cd98joQYCN3*******"));
}

#[test]
fn s3_to_s6_captures() {
    // Sources: captures pyhost_v1_hmacsha256_post (S3), pyhost_v1_hmacsha1_get (S4),
    // py_v1_hmacsha1_get_encryption (S5), node_v1_hmacsha1_get (S6); capture_vectors.py.
    for (name, sig) in [
        (
            "pyhost_v1_hmacsha256_post",
            "m6vacYo7WGo/XBx0y8x44fsIcIF20ClzpVnDkrLCLAo=",
        ),
        ("pyhost_v1_hmacsha1_get", "09mkCbzWXp2XTB0R8ADJ7Q97bj0="),
        (
            "py_v1_hmacsha1_get_encryption",
            "ir0hOlujRmdDfeIRsSpypVnLXcI=",
        ),
        ("node_v1_hmacsha1_get", "FESXEjHpLfGI2VBTgITT7Zd51w8="),
    ] {
        let req = capture(name);
        let raw = req.raw();
        let p = parse(&raw, &Limits::default()).unwrap();
        assert_eq!(p.signature(), sig, "{name}");
        p.verify(&raw, SECRET_KEY)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn v1_go_empty_value_quirk_and_nonce_zero() {
    // §2.2: Go signs without empty-valued params but sends them (`Language=`).
    // Node's Nonce can be 0 (§2.1).
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let s = "GETfaceid.tencentcloudapi.com/?Action=BankCard2EVerification&BankCard=6225768888888888&Nonce=0&SecretId=AKIDEXAMPLE0000000000000000000000000&Timestamp=1700000000&Version=2018-03-01";
    let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
    m.update(s.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    let params = [
        ("Action", "BankCard2EVerification"),
        ("BankCard", "6225768888888888"),
        ("Language", ""),
        ("Nonce", "0"),
        ("SecretId", common::SECRET_ID),
        ("Timestamp", "1700000000"),
        ("Version", "2018-03-01"),
    ];
    let req = v1_get("faceid.tencentcloudapi.com", &params, &sig);
    let raw = req.raw();
    let p = parse(&raw, &Limits::default()).unwrap();
    assert_eq!(p.params().nonce, Some(0));
    assert_eq!(p.params().language, None);
    p.verify(&raw, SECRET_KEY).unwrap();
}
