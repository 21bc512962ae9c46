//! Tallies, percentiles and the report of one load run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// What each answer was, counted without allocating per response.
#[derive(Debug, Default)]
pub struct Tally {
    /// `(kind, value) → count`; kind is `Result`, `Error` (API error code), `HTTP`
    /// (non-200 status), `IO` (transport) or `Unparsed`.
    entries: Vec<(&'static str, Vec<u8>, u64)>,
}

impl Tally {
    pub fn add(&mut self, kind: &'static str, value: &[u8]) {
        for e in &mut self.entries {
            if e.0 == kind && e.1 == value {
                e.2 += 1;
                return;
            }
        }
        self.entries.push((kind, value.to_vec(), 1));
    }

    pub fn merge(&mut self, other: Tally) {
        for (kind, value, n) in other.entries {
            match self
                .entries
                .iter_mut()
                .find(|e| e.0 == kind && e.1 == value)
            {
                Some(e) => e.2 += n,
                None => self.entries.push((kind, value, n)),
            }
        }
    }

    /// `(results by Result, errors by "Kind value")`.
    pub fn split(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let mut results = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for (kind, value, n) in &self.entries {
            let value = String::from_utf8_lossy(value).into_owned();
            if *kind == "Result" {
                *results.entry(value).or_insert(0) += n;
            } else {
                *errors.entry(format!("{kind} {value}")).or_insert(0) += n;
            }
        }
        (results, errors)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From latencies in nanoseconds (sorted in place).
    pub fn of(samples: &mut [u32]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let idx = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            f64::from(samples[idx]) / 1e6
        };
        let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
            mean: sum as f64 / samples.len() as f64 / 1e6,
        }
    }
}

/// The measured server process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// Server CPU (user + system) per answered request, microseconds.
    pub cpu_us_per_req: Option<f64>,
    /// Server CPU as a share of one core over the window.
    pub cpu_cores: Option<f64>,
    /// Largest VmRSS sampled during the window, MiB.
    pub rss_max_mib: Option<f64>,
    /// VmHWM (peak RSS since start) at the end, MiB.
    pub hwm_mib: Option<f64>,
}

/// One run's result (`cardcheck bench --json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub endpoint: String,
    /// `closed` (fixed concurrency) or `open` (fixed rate).
    pub mode: &'static str,
    pub concurrency: u32,
    pub target_rate: Option<f64>,
    pub sign_method: String,
    pub http_method: String,
    pub encrypt: Option<String>,
    pub fresh_key: bool,
    pub fixed: bool,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Answers completed in the window.
    pub requests: u64,
    pub throughput_rps: f64,
    /// Latency (fixed rate: from each request's scheduled send time).
    pub latency_ms: Percentiles,
    /// Fixed rate only: from the actual send.
    pub service_ms: Option<Percentiles>,
    /// Answers by Result.
    pub results: BTreeMap<String, u64>,
    /// Everything that was not a Result: API error codes, HTTP statuses, I/O failures.
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    /// Pre-signed requests built, and whether they ran out before the window ended.
    pub pool_size: usize,
    pub pool_exhausted: bool,
    pub pool_build_s: f64,
    /// Generator CPU per answered request, microseconds.
    pub generator_cpu_us_per_req: Option<f64>,
    pub server: Option<ServerUsage>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The human report of one run.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}{} {} {} conns{}, {:.1} s measured",
        if r.label.is_empty() { "" } else { &r.label },
        if r.label.is_empty() { "" } else { ":" },
        r.endpoint,
        r.concurrency,
        r.target_rate
            .map_or_else(String::new, |rate| format!(", fixed rate {rate:.0}/s")),
        r.duration_s
    );
    let _ = writeln!(
        s,
        "  throughput  {:.0} req/s ({} answers)",
        r.throughput_rps, r.requests
    );
    let l = &r.latency_ms;
    let _ = writeln!(
        s,
        "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
    if let Some(l) = &r.service_ms {
        let _ = writeln!(
            s,
            "  service ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    let results: Vec<String> = r.results.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let _ = writeln!(s, "  results     {}", results.join(", "));
    let errors: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let _ = writeln!(
        s,
        "  errors      {}{}",
        r.error_count,
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join(", "))
        }
    );
    let _ = writeln!(
        s,
        "  generator   {} µs CPU/req, {} pre-signed requests{}",
        opt(r.generator_cpu_us_per_req, 1),
        r.pool_size,
        if r.pool_exhausted {
            " (ran out: the window was cut short)"
        } else {
            ""
        }
    );
    if let Some(sv) = &r.server {
        let _ = writeln!(
            s,
            "  server      pid {}: {} µs CPU/req, {} cores, RSS max {} MiB, HWM {} MiB",
            sv.pid,
            opt(sv.cpu_us_per_req, 1),
            opt(sv.cpu_cores, 2),
            opt(sv.rss_max_mib, 1),
            opt(sv.hwm_mib, 1)
        );
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut v: Vec<u32> = (1..=1000).map(|ms| ms * 1_000_000).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p90, 900.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
        assert_eq!(Percentiles::of(&mut []).p50, 0.0);
    }

    #[test]
    fn tally_counts_and_splits() {
        let mut a = Tally::default();
        a.add("Result", b"0");
        a.add("Result", b"0");
        a.add("Error", b"AuthFailure.SignatureFailure");
        let mut b = Tally::default();
        b.add("Result", b"0");
        b.add("IO", b"reset");
        a.merge(b);
        let (results, errors) = a.split();
        assert_eq!(results["0"], 3);
        assert_eq!(errors["Error AuthFailure.SignatureFailure"], 1);
        assert_eq!(errors["IO reset"], 1);
    }
}
