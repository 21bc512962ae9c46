//! Request counters for `/metrics` (Prometheus text format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (outcome label, value) → count; outcome is `result` or `error`.
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    replays: AtomicU64,
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, kind: &'static str, value: &str, micros: u64) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((kind, value.to_owned()))
            .or_default() += 1;
        let seconds = micros as f64 / 1e6;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records a replayed answer.
    pub fn record_replay(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP cardcheck_requests_total Answered API requests by outcome."
        );
        let _ = writeln!(out, "# TYPE cardcheck_requests_total counter");
        for ((kind, value), n) in self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "cardcheck_requests_total{{{kind}=\"{value}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP cardcheck_replays_total Identical retries answered from the replay cache."
        );
        let _ = writeln!(out, "# TYPE cardcheck_replays_total counter");
        let _ = writeln!(
            out,
            "cardcheck_replays_total {}",
            self.replays.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cardcheck_request_duration_seconds Time from request to answer."
        );
        let _ = writeln!(out, "# TYPE cardcheck_request_duration_seconds histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "cardcheck_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cardcheck_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "cardcheck_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "cardcheck_request_duration_seconds_count {count}");
        for (name, help, value) in extra {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}
