//! issue 9, done-when: `/metrics` parses with a Prometheus text-format parser
//! (`prometheus-parse`) and its counters match the requests this test sent — Results
//! by code and billing class, errors by code and action, replays, rate-limit
//! rejections, latency histograms, the Encryption data-key cache and the ledger's
//! group commits.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use std::collections::BTreeMap;

use cardcheck_domain::{CATALOGUE, ResultCode};
use cardcheck_encryption::KeyRing;
use cardcheck_server::ServerConfig;
use cardcheck_store::AccountUpdate;
use cardcheck_tc3::SignMethod;
use common::*;
use prometheus_parse::{LineInfo, Scrape, Value};
use serde_json::{Map, Value as Json};

const VECTORS: &str = include_str!("../../encryption/tests/fixtures/vectors.json");

/// What the test saw come back, tallied per series.
#[derive(Default, Debug)]
struct Tally {
    /// (action, outcome, error_code) → answers.
    requests: BTreeMap<(String, String, String), u64>,
    /// (result, billing) → answers.
    results: BTreeMap<(String, String), u64>,
    rate_limited: u64,
}

impl Tally {
    /// Counts one answer to a request for `action` (`None`: it did not parse).
    fn saw(&mut self, action: Option<&str>, body: &Json, replay: bool) {
        let action = match action {
            Some(ACTION) => ACTION,
            Some(_) => "other",
            None => "unknown",
        };
        let r = &body["Response"];
        let (outcome, code) = if let Some(code) = r["Error"]["Code"].as_str() {
            if code == "RequestLimitExceeded" {
                self.rate_limited += 1;
            }
            ("error", code.to_owned())
        } else if replay {
            ("replay", "none".to_owned())
        } else {
            let result = r["Result"].as_str().unwrap();
            let billed = ResultCode::from_wire(result).unwrap().billed();
            let billing = if billed { "billed" } else { "free" };
            *self
                .results
                .entry((result.to_owned(), billing.to_owned()))
                .or_default() += 1;
            ("result", "none".to_owned())
        };
        *self
            .requests
            .entry((action.to_owned(), outcome.to_owned(), code))
            .or_default() += 1;
    }

    fn outcomes(&self, outcome: &str) -> u64 {
        self.requests
            .iter()
            .filter(|((_, o, _), _)| o == outcome)
            .map(|(_, n)| n)
            .sum()
    }
}

async fn scrape(s: &TestServer) -> (String, Scrape) {
    let response = tower::ServiceExt::oneshot(
        cardcheck_server::admin_app(s.state.clone()),
        http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let content_type = response.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    // The parser skips what it cannot read: make sure it read every line.
    for line in text.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "a line the parser does not understand: {line:?}"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    (text, scrape)
}

/// The value of the counter or gauge `name` with exactly `labels`; 0 when absent.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name} is not a single value: {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().copied().unwrap_or(0.0)
}

/// The `+Inf` count of the histogram `name` with `labels`, checking the buckets rise.
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram: {:?}", sample.value);
    };
    assert!(buckets.len() > 1, "{name}: {buckets:?}");
    for pair in buckets.windows(2) {
        assert!(pair[0].less_than < pair[1].less_than, "{name}: {buckets:?}");
        assert!(pair[0].count <= pair[1].count, "{name}: {buckets:?}");
    }
    let last = buckets.last().unwrap();
    assert!(last.less_than.is_infinite(), "{name} ends with +Inf");
    let count = value(scrape, &format!("{name}_count"), labels);
    assert_eq!(last.count, count, "{name}: +Inf bucket = _count");
    count
}

fn timestamped(mut call: Call, age: i64) -> Call {
    call.timestamp = Some(NOW - age);
    call
}

#[tokio::test]
async fn metrics_parse_and_match_the_requests_sent() {
    let v: Json = serde_json::from_str(VECTORS).unwrap();
    let keys = KeyRing::from_test_keys(
        v["rsa_private_key_pkcs1_pem"].as_str().unwrap(),
        v["sm2_private_key_hex"].as_str().unwrap(),
    )
    .unwrap();
    let s = server_with_keys(
        ServerConfig {
            credential_ttl: std::time::Duration::ZERO,
            ..ServerConfig::default()
        },
        Some(keys),
    )
    .await;
    let acme = s.account("acme").await;
    let mut tally = Tally::default();
    let mut age = 0;
    let mut next_age = || {
        age += 1;
        age
    };

    // Every sandbox card once (distinct timestamps: no replays), some twice.
    for row in CATALOGUE.iter().chain(&CATALOGUE[..4]) {
        let call = timestamped(
            Call::new(&acme, row.name.unwrap_or("Wei Xiaobao"), row.card),
            next_age(),
        );
        let (_, body) = s.send(&call).await;
        tally.saw(Some(ACTION), &body, false);
    }

    // An identical retry is a replay: same answer, no second ledger row.
    let call = timestamped(
        Call::new(&acme, "Wei Xiaobao", "6225768888888888"),
        next_age(),
    );
    let (_, first) = s.send(&call).await;
    tally.saw(Some(ACTION), &first, false);
    let (_, again) = s.send(&call).await;
    assert_eq!(first, again);
    tally.saw(Some(ACTION), &again, true);

    // Errors: a wrong SecretKey, an unknown SecretId, another Action, no signature.
    let mut wrong_key = Call::new(&acme, "Wei Xiaobao", "6225768888888888");
    wrong_key.credential.secret_key = "not-the-key".into();
    for _ in 0..2 {
        let (_, body) = s.send(&timestamped(wrong_key.clone(), next_age())).await;
        assert_eq!(error_of(&body), "AuthFailure.SignatureFailure");
        tally.saw(Some(ACTION), &body, false);
    }
    let mut unknown = Call::new(&acme, "Wei Xiaobao", "6225768888888888");
    unknown.credential.secret_id = "AKIDdoesnotexist".into();
    let (_, body) = s.send(&unknown).await;
    assert_eq!(error_of(&body), "AuthFailure.SecretIdNotFound");
    tally.saw(Some(ACTION), &body, false);
    let mut other_action = Call::new(&acme, "Wei Xiaobao", "6225768888888888");
    other_action.action = "DescribeInstances".into();
    let (_, body) = s.send(&other_action).await;
    assert_eq!(error_of(&body), "InvalidAction");
    tally.saw(Some("DescribeInstances"), &body, false);
    let unsigned = http::Request::post("/")
        .header("content-type", "application/json")
        .header("host", HOST)
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (_, bytes) = s.send_request(unsigned).await;
    let body: Json = serde_json::from_slice(&bytes).unwrap();
    error_of(&body);
    tally.saw(None, &body, false);

    // Rate limiting: an account allowed 1 request per second sends 4 at once.
    let slow = s.account("slow").await;
    s.backend
        .accounts
        .update_account(
            "slow",
            &AccountUpdate {
                qps: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for _ in 0..4 {
        let call = timestamped(
            Call::new(&slow, "Wei Xiaobao", "6225768888888888"),
            next_age(),
        );
        let (_, body) = s.send(&call).await;
        tally.saw(Some(ACTION), &body, false);
    }
    assert!(tally.rate_limited >= 3, "{tally:?}");

    // Encryption: one data key twice (two encodings) = one unwrap, then the cache.
    let aes: Map<String, Json> = v["aes"]["request"].as_object().unwrap().clone();
    for sign_method in [SignMethod::Tc3HmacSha256, SignMethod::HmacSha256] {
        let mut call = Call::new(&acme, "", "");
        call.params = aes.clone();
        call.sign_method = sign_method;
        let (_, body) = s.send(&timestamped(call, next_age())).await;
        assert_eq!(result_of(&body), "0", "{body}");
        tally.saw(Some(ACTION), &body, false);
    }

    let (text, scrape) = scrape(&s).await;

    // Every family is documented and typed; counters end in _total.
    for sample in &scrape.samples {
        // (The parser files a histogram's _sum and _count as families of their own.)
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.metric.strip_suffix(suffix))
            .filter(|base| scrape.docs.contains_key(*base))
            .unwrap_or(&sample.metric);
        assert!(
            scrape.docs.contains_key(family),
            "{} has no HELP",
            sample.metric
        );
        if matches!(sample.value, Value::Counter(_)) {
            assert!(sample.metric.ends_with("_total"), "{}", sample.metric);
        }
    }

    // Requests by action, outcome and error code: exactly what was sent.
    let mut seen: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for sample in scrape
        .samples
        .iter()
        .filter(|s| s.metric == "cardcheck_requests_total")
    {
        let Value::Counter(n) = sample.value else {
            panic!("cardcheck_requests_total is a counter")
        };
        let label = |k: &str| sample.labels.get(k).unwrap().to_owned();
        seen.insert(
            (label("action"), label("outcome"), label("error_code")),
            n as u64,
        );
    }
    assert_eq!(seen, tally.requests, "{text}");

    // Results by code and billing class.
    let mut results: BTreeMap<(String, String), u64> = BTreeMap::new();
    for sample in scrape
        .samples
        .iter()
        .filter(|s| s.metric == "cardcheck_results_total")
    {
        let Value::Counter(n) = sample.value else {
            panic!("cardcheck_results_total is a counter")
        };
        results.insert(
            (
                sample.labels.get("result").unwrap().to_owned(),
                sample.labels.get("billing").unwrap().to_owned(),
            ),
            n as u64,
        );
    }
    assert_eq!(results, tally.results, "{text}");
    assert!(results.keys().any(|(_, b)| b == "billed"));
    assert!(results.keys().any(|(_, b)| b == "free"));

    // ... and the ledger holds the same billed / free totals.
    let usage = s.usage_rows().await;
    let ledger_billed: u64 = usage.iter().filter(|r| r.billed).map(|r| r.count).sum();
    let ledger_free: u64 = usage.iter().filter(|r| !r.billed).map(|r| r.count).sum();
    let sum_of = |billing: &str| -> u64 {
        tally
            .results
            .iter()
            .filter(|((_, b), _)| b == billing)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(
        (ledger_billed, ledger_free),
        (sum_of("billed"), sum_of("free"))
    );

    assert_eq!(
        value(&scrape, "cardcheck_rate_limited_total", &[]),
        tally.rate_limited as f64
    );
    assert_eq!(value(&scrape, "cardcheck_replays_total", &[]), 1.0);
    assert_eq!(value(&scrape, "cardcheck_request_timeouts_total", &[]), 0.0);

    // Latency histograms: one observation per answer, by outcome.
    for outcome in ["result", "replay", "error"] {
        assert_eq!(
            histogram_count(
                &scrape,
                "cardcheck_request_duration_seconds",
                &[("outcome", outcome)]
            ),
            tally.outcomes(outcome) as f64,
            "{outcome}"
        );
    }

    // The data-key cache: one unwrap, one hit.
    assert_eq!(
        value(&scrape, "cardcheck_datakey_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(
        value(&scrape, "cardcheck_datakey_cache_hits_total", &[]),
        1.0
    );
    assert_eq!(value(&scrape, "cardcheck_datakey_cache_entries", &[]), 1.0);

    // The ledger writer: a row per fresh Result, in counted group commits.
    let results_total: u64 = tally.results.values().sum();
    assert_eq!(
        value(&scrape, "cardcheck_ledger_rows_total", &[]),
        results_total as f64
    );
    let commits = value(&scrape, "cardcheck_ledger_commits_total", &[]);
    assert!(commits >= 1.0);
    assert_eq!(
        value(&scrape, "cardcheck_ledger_commit_failures_total", &[]),
        0.0
    );
    assert_eq!(
        histogram_count(&scrape, "cardcheck_ledger_batch_size", &[]),
        commits
    );
    assert_eq!(
        histogram_count(&scrape, "cardcheck_ledger_commit_duration_seconds", &[]),
        commits
    );
    // Batch sizes add up to the rows written (ledger rows + attempt counters).
    let batch_rows = value(&scrape, "cardcheck_ledger_batch_size_sum", &[]);
    assert!(batch_rows >= results_total as f64, "{text}");
    assert_eq!(
        value(
            &scrape,
            "cardcheck_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}
