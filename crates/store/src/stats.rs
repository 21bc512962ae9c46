//! Counters a backend keeps about its own work, for the server's `/metrics` (issue 9):
//! how the usage ledger's writes are batched and how long their commits take.
//!
//! [`AtomicHistogram`] is lock-free (one relaxed atomic add per observation), so a
//! writer thread can record every commit without slowing the request path; a scrape
//! reads a [`HistogramSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the ledger batch-size histogram: rows written per transaction.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Upper bounds of the ledger commit-latency histogram, seconds.
pub const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram's state at one moment, in Prometheus terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, ascending bounds, cumulative counts.
    /// Empty for a backend that does not measure (then `count` is 0 too).
    pub buckets: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observed values.
    pub sum: f64,
}

/// What a [`crate::Ledger`] reports about its writes since it was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerStats {
    /// Transactions committed.
    pub commits: u64,
    /// Transactions that failed (their waiting requests got an error).
    pub failed_commits: u64,
    /// Ledger rows committed.
    pub rows: u64,
    /// Ledger rows per committed transaction.
    pub batch_sizes: HistogramSnapshot,
    /// Seconds per transaction, from its first statement to the end of its commit.
    pub commit_seconds: HistogramSnapshot,
}

/// Sums are kept in millionths so that they fit an atomic integer.
const SUM_SCALE: f64 = 1e6;

/// A fixed-bucket histogram updated with relaxed atomics.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last slot is above every bound.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_scaled: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram with these ascending upper bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_scaled: AtomicU64::new(0),
        }
    }

    /// Records one value (negative and NaN values count as 0).
    pub fn observe(&self, value: f64) {
        let value = if value.is_nan() { 0.0 } else { value.max(0.0) };
        let slot = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // `as` saturates: a huge value cannot wrap the sum.
        self.sum_scaled
            .fetch_add((value * SUM_SCALE) as u64, Ordering::Relaxed);
    }

    /// The current state, cumulative as Prometheus wants it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, c)| {
                running += c.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        let overflow = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            // Derived from the buckets so that `+Inf` is never below the last bound's
            // count, even while a concurrent observation is half done.
            count: running + overflow,
            sum: self.sum_scaled.load(Ordering::Relaxed) as f64 / SUM_SCALE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_counts_everything() {
        let h = AtomicHistogram::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 3.0, 100.0, -1.0, f64::NAN] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 4), (2.0, 4), (4.0, 5)]);
        assert_eq!(s.count, 6);
        assert!((s.sum - 104.5).abs() < 1e-9, "{}", s.sum);
    }
}

/// What a ledger writer counts as it commits (both backends' writers): commits, rows,
/// batch sizes, commit latency. Shared between the writer and [`crate::Ledger::ledger_stats`].
#[derive(Debug)]
pub struct LedgerWriterStats {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    rows: AtomicU64,
    batch_sizes: AtomicHistogram,
    commit_seconds: AtomicHistogram,
}

impl Default for LedgerWriterStats {
    fn default() -> Self {
        LedgerWriterStats {
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            batch_sizes: AtomicHistogram::new(BATCH_SIZE_BUCKETS),
            commit_seconds: AtomicHistogram::new(COMMIT_SECONDS_BUCKETS),
        }
    }
}

impl LedgerWriterStats {
    /// One transaction of `rows` ledger rows committed in `seconds`.
    pub fn committed(&self, rows: usize, seconds: f64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.batch_sizes.observe(rows as f64);
        self.commit_seconds.observe(seconds);
    }

    /// One transaction failed (its waiting requests got an error).
    pub fn failed(&self) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> LedgerStats {
        LedgerStats {
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            batch_sizes: self.batch_sizes.snapshot(),
            commit_seconds: self.commit_seconds.snapshot(),
        }
    }
}
