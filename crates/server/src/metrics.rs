//! The server's counters and their `/metrics` exposition (Prometheus text format 0.0.4,
//! issue 9). The list of series, with their labels, is in docs/operations.md.
//!
//! Label values come from closed sets only (the implemented action or `other`, Tencent
//! error codes, Result codes), so a client cannot grow the number of series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cardcheck_domain::ResultCode;
use cardcheck_store::stats::AtomicHistogram;
use cardcheck_store::{HistogramSnapshot, LedgerStats};

use crate::state::AppState;

/// Request latency histogram bucket upper bounds, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// The `outcome` label values, in exposition order.
const OUTCOMES: [&str; 3] = ["result", "replay", "error"];

/// The `action` label of a request whose Action could not be read.
pub const ACTION_UNKNOWN: &str = "unknown";
/// The `action` label of a request for an Action this service does not implement.
pub const ACTION_OTHER: &str = "other";
/// The `error_code` label of an answer that is not an error.
pub const NO_ERROR: &str = "none";

/// Error code of a rate-limit rejection.
const RATE_LIMITED: &str = "RequestLimitExceeded";

/// Process-wide counters.
#[derive(Debug)]
pub struct Metrics {
    /// (action, outcome, error code) → answered requests.
    requests: Mutex<BTreeMap<(&'static str, &'static str, String), u64>>,
    /// Result code → fresh Results (each one a ledger row).
    results: Mutex<BTreeMap<i32, u64>>,
    /// Latency per outcome, in [`OUTCOMES`] order.
    durations: [AtomicHistogram; 3],
    replays: AtomicU64,
    rate_limited: AtomicU64,
    timeouts: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            results: Mutex::default(),
            durations: OUTCOMES.map(|_| AtomicHistogram::new(LATENCY_BUCKETS)),
            replays: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `action` label for a request's Action: the implemented one, `other`, or
/// `unknown` when the request did not parse far enough to have one.
pub fn action_label(action: Option<&str>) -> &'static str {
    match action {
        Some(crate::pipeline::ACTION) => crate::pipeline::ACTION,
        Some(_) => ACTION_OTHER,
        None => ACTION_UNKNOWN,
    }
}

impl Metrics {
    /// Records one answered request: `kind` is `result` (value: the Result code),
    /// `replay` or `error` (value: the Tencent error code); `micros` its latency.
    pub fn record(&self, action: Option<&str>, kind: &str, value: &str, micros: u64) {
        let (outcome, slot) = match kind {
            "result" => ("result", 0),
            "replay" => ("replay", 1),
            _ => ("error", 2),
        };
        let error_code = if outcome == "error" { value } else { NO_ERROR };
        *lock(&self.requests)
            .entry((action_label(action), outcome, error_code.to_owned()))
            .or_default() += 1;
        if outcome == "result"
            && let Some(code) = ResultCode::from_wire(value)
        {
            *lock(&self.results).entry(code.code()).or_default() += 1;
        }
        if outcome == "error" && value == RATE_LIMITED {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.durations.get(slot) {
            h.observe(micros as f64 / 1e6);
        }
    }

    /// Records a replayed answer (also counted by [`Metrics::record`] as `replay`).
    pub fn record_replay(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request that ran past its deadline.
    pub fn record_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text of these counters plus the backend's and the decryptor's.
    pub fn render(&self, external: &External) -> String {
        let mut out = Exposition::default();
        out.family(
            "cardcheck_build_info",
            "gauge",
            "The running version (value is always 1).",
        );
        out.sample(
            "cardcheck_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );

        out.family(
            "cardcheck_requests_total",
            "counter",
            "Answered API requests by action, outcome (result, replay, error) and error code.",
        );
        for ((action, outcome, code), n) in lock(&self.requests).iter() {
            out.sample(
                "cardcheck_requests_total",
                &[
                    ("action", action),
                    ("outcome", outcome),
                    ("error_code", code),
                ],
                *n as f64,
            );
        }

        out.family(
            "cardcheck_results_total",
            "counter",
            "Verification Results answered (one ledger row each) by Result code and billing class.",
        );
        for (code, n) in lock(&self.results).iter() {
            let Some(result) = ResultCode::from_code(*code) else {
                continue;
            };
            let billing = if result.billed() { "billed" } else { "free" };
            out.sample(
                "cardcheck_results_total",
                &[("result", result.wire()), ("billing", billing)],
                *n as f64,
            );
        }

        out.counter(
            "cardcheck_rate_limited_total",
            "Requests rejected with RequestLimitExceeded (account over its QPS).",
            self.rate_limited.load(Ordering::Relaxed),
        );
        out.counter(
            "cardcheck_replays_total",
            "Identical retries answered from the replay cache.",
            self.replays.load(Ordering::Relaxed),
        );
        out.counter(
            "cardcheck_request_timeouts_total",
            "Requests that ran past the per-request deadline (answered InternalError).",
            self.timeouts.load(Ordering::Relaxed),
        );

        out.family(
            "cardcheck_request_duration_seconds",
            "histogram",
            "Time from the request's arrival to its answer, by outcome.",
        );
        for (outcome, h) in OUTCOMES.iter().zip(&self.durations) {
            out.histogram(
                "cardcheck_request_duration_seconds",
                &[("outcome", outcome)],
                &h.snapshot(),
            );
        }

        out.counter(
            "cardcheck_datakey_cache_hits_total",
            "Encryption data keys served from the cache.",
            external.datakey_hits,
        );
        out.counter(
            "cardcheck_datakey_cache_misses_total",
            "Encryption data keys unwrapped with the private key (cache misses).",
            external.datakey_misses,
        );
        out.family(
            "cardcheck_datakey_cache_entries",
            "gauge",
            "Encryption data keys currently cached.",
        );
        out.sample(
            "cardcheck_datakey_cache_entries",
            &[],
            external.datakey_entries as f64,
        );

        let ledger = &external.ledger;
        out.counter(
            "cardcheck_ledger_commits_total",
            "Ledger write transactions committed (group commits).",
            ledger.commits,
        );
        out.counter(
            "cardcheck_ledger_commit_failures_total",
            "Ledger write transactions that failed (their requests got InternalError).",
            ledger.failed_commits,
        );
        out.counter(
            "cardcheck_ledger_rows_total",
            "Ledger rows committed.",
            ledger.rows,
        );
        out.family(
            "cardcheck_ledger_batch_size",
            "histogram",
            "Ledger rows written per ledger transaction (group commit).",
        );
        out.histogram("cardcheck_ledger_batch_size", &[], &ledger.batch_sizes);
        out.family(
            "cardcheck_ledger_commit_duration_seconds",
            "histogram",
            "Time to write and commit one ledger transaction.",
        );
        out.histogram(
            "cardcheck_ledger_commit_duration_seconds",
            &[],
            &ledger.commit_seconds,
        );
        out.text
    }
}

/// Counters kept outside [`Metrics`]: the decryptor's and the backend's.
#[derive(Debug, Clone, Default)]
pub struct External {
    /// Encryption data-key cache hits.
    pub datakey_hits: u64,
    /// Encryption data-key cache misses.
    pub datakey_misses: u64,
    /// Data keys cached now.
    pub datakey_entries: usize,
    /// The ledger's write statistics.
    pub ledger: LedgerStats,
}

/// The whole `/metrics` page of a running server.
pub fn exposition(state: &AppState) -> String {
    let (datakey_hits, datakey_misses) = state.decryptor.cache_stats();
    state.metrics.render(&External {
        datakey_hits,
        datakey_misses,
        datakey_entries: state.decryptor.cache_len(),
        ledger: state.backend.ledger.ledger_stats(),
    })
}

/// A text-format writer.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value as f64);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, n) in &h.buckets {
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&format_value(*bound)));
            let _ = writeln!(self.text, " {n}");
        }
        let _ = write!(self.text, "{name}_bucket");
        write_labels(&mut self.text, labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", h.count);
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(h.sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", h.count);
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Go-style float text: integers without a fraction, others in shortest form.
fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_labels_are_a_closed_set() {
        assert_eq!(
            action_label(Some("BankCard2EVerification")),
            "BankCard2EVerification"
        );
        assert_eq!(action_label(Some("DescribeInstances\"x")), ACTION_OTHER);
        assert_eq!(action_label(None), ACTION_UNKNOWN);
    }

    #[test]
    fn labels_are_escaped_and_values_formatted() {
        let mut s = String::new();
        write_labels(&mut s, &[("a", "x\"y\\z\nw")], Some("0.5"));
        assert_eq!(s, "{a=\"x\\\"y\\\\z\\nw\",le=\"0.5\"}");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.0005), "0.0005");
    }

    #[test]
    fn results_carry_their_billing_class() {
        let m = Metrics::default();
        m.record(Some("BankCard2EVerification"), "result", "0", 100);
        m.record(Some("BankCard2EVerification"), "result", "-3", 100);
        m.record(None, "error", RATE_LIMITED, 100);
        let text = m.render(&External::default());
        assert!(text.contains("cardcheck_results_total{result=\"0\",billing=\"billed\"} 1"));
        assert!(text.contains("cardcheck_results_total{result=\"-3\",billing=\"free\"} 1"));
        assert!(text.contains("cardcheck_rate_limited_total 1"));
        assert!(text.contains(
            "cardcheck_requests_total{action=\"unknown\",outcome=\"error\",error_code=\"RequestLimitExceeded\"} 1"
        ));
    }
}
