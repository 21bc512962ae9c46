//! Batch progress and the final summary, both on stderr (issue 11): a bar redrawn
//! with `\r` on a terminal, plain periodic lines otherwise.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use cardcheck_domain::result::ResultCode;
use serde_json::json;

/// Counters of one run.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Rows finished in this run (answered or failed).
    pub(crate) done: u64,
    /// Rows skipped because the output already answers them (`--resume`).
    pub(crate) skipped: u64,
    /// Answered rows by Result.
    pub(crate) by_result: BTreeMap<String, u64>,
    /// Billed answers (verification.md §2 step 8: 0, -1, -4…-15, -18).
    pub(crate) billed: u64,
    /// Failed rows by error code.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Requests sent, retries included.
    pub(crate) attempts: u64,
    /// Requests beyond the first of each row.
    pub(crate) retries: u64,
    /// Answered rows whose Result is not final (`-16` after the last attempt).
    pub(crate) unfinished: u64,
}

impl Tally {
    pub(crate) fn answered(&self) -> u64 {
        self.by_result.values().sum()
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn add_result(&mut self, result: &str) {
        *self.by_result.entry(result.to_owned()).or_default() += 1;
        if ResultCode::from_wire(result).is_some_and(ResultCode::billed) {
            self.billed += 1;
        }
    }

    pub(crate) fn add_error(&mut self, code: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
    }
}

/// Redraws or prints progress.
#[derive(Debug)]
pub(crate) struct Progress {
    tty: bool,
    enabled: bool,
    total: u64,
    started: Instant,
    interval: Duration,
    last_print: Instant,
    drawn: bool,
}

impl Progress {
    /// `total` = rows this run has to do (skipped rows excluded).
    pub(crate) fn new(total: u64, tty: bool, enabled: bool, interval: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            tty,
            enabled,
            total,
            started: now,
            interval: if tty {
                Duration::from_millis(200)
            } else {
                interval
            },
            last_print: now,
            drawn: false,
        }
    }

    /// How often [`Progress::tick`] should be called.
    pub(crate) fn period(&self) -> Duration {
        self.interval
    }

    /// Called periodically.
    pub(crate) fn tick(&mut self, t: &Tally) {
        if !self.enabled || self.last_print.elapsed() < self.interval.mul_f64(0.9) {
            return;
        }
        self.last_print = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            t.done as f64 / elapsed
        } else {
            0.0
        };
        let remaining = self.total.saturating_sub(t.done);
        let eta = if rate > 0.0 {
            fmt_duration(remaining as f64 / rate)
        } else {
            "?".to_owned()
        };
        let pct = if self.total > 0 {
            t.done as f64 * 100.0 / self.total as f64
        } else {
            100.0
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            const WIDTH: usize = 24;
            let filled = ((pct / 100.0) * WIDTH as f64).round() as usize;
            let bar: String =
                "#".repeat(filled.min(WIDTH)) + &"-".repeat(WIDTH - filled.min(WIDTH));
            let _ = write!(
                err,
                "\r[{bar}] {}/{} rows {pct:.0}%  {rate:.1}/s  ETA {eta}  errors {}\x1b[K",
                t.done,
                self.total,
                t.failed()
            );
            let _ = err.flush();
            self.drawn = true;
        } else {
            let _ = writeln!(
                err,
                "progress: {}/{} rows ({pct:.0}%), {rate:.1} rows/s, ETA {eta}, {} errors",
                t.done,
                self.total,
                t.failed()
            );
        }
    }

    /// Clears the bar before the summary.
    pub(crate) fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

fn fmt_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A run's duration: milliseconds under a second (a resume can take a few), else
/// seconds with one decimal.
fn fmt_elapsed(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        "<1 ms".to_owned()
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `rows` per second over `d`. Below a millisecond the clock says too little: the
/// rate is given as a lower bound (`>N rows/s`) rather than a division by ~0.
fn fmt_rate(rows: u64, d: Duration) -> String {
    let min = Duration::from_millis(1);
    if d < min {
        return format!(">{} rows/s", fmt_number(rows as f64 / min.as_secs_f64()));
    }
    format!("{} rows/s", fmt_number(rows as f64 / d.as_secs_f64()))
}

/// One decimal below 100, none above.
fn fmt_number(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The end-of-run report.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    pub(crate) tally: &'a Tally,
    pub(crate) total_rows: u64,
    pub(crate) duration: Duration,
    /// Rows neither answered nor failed because the run stopped early.
    pub(crate) not_processed: u64,
    pub(crate) stopped: Option<&'a str>,
    pub(crate) output: &'a str,
}

impl Summary<'_> {
    /// Human form, for stderr.
    pub(crate) fn text(&self) -> String {
        let t = self.tally;
        let mut s = format!(
            "summary: {} rows in {} ({}); output {}\n",
            self.total_rows,
            fmt_elapsed(self.duration),
            self.pace(),
            self.output
        );
        s += &format!(
            "  answered: {} ({} billed), errors: {}, skipped (already answered): {}, \
             not processed: {}\n",
            t.answered(),
            t.billed,
            t.failed(),
            t.skipped,
            self.not_processed
        );
        if !t.by_result.is_empty() {
            let mut results: Vec<_> = t.by_result.iter().collect();
            results.sort_by_key(|(r, _)| (r.parse::<i64>().map(i64::abs).unwrap_or(i64::MAX), *r));
            let list: Vec<String> = results.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            s += &format!("  by Result: {}\n", list.join(", "));
        }
        if !t.errors.is_empty() {
            let list: Vec<String> = t.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            s += &format!("  errors by code: {}\n", list.join(", "));
        }
        s += &format!("  requests sent: {} ({} retries)\n", t.attempts, t.retries);
        if let Some(reason) = self.stopped {
            s += &format!("  stopped early: {reason}\n");
        }
        // Malformed rows fail the same way on every run: only other failures are worth
        // a resume (a summary that advised it for malformed rows alone sent users round).
        let malformed = t.errors.get(super::batch::MALFORMED).copied().unwrap_or(0);
        if t.failed() > malformed || t.unfinished > 0 || self.not_processed > 0 {
            s += "  rerun with --resume to retry the rows without a final answer\n";
        }
        if malformed > 0 {
            s += "  malformed rows: fix them in the input (a resume sends them unchanged)\n";
        }
        s
    }

    /// The rate of the rows done in this run, over the precise duration; the rows
    /// skipped by `--resume` or left unprocessed are named, not counted in the rate.
    fn pace(&self) -> String {
        let done = self.tally.done;
        if done == 0 {
            return if self.tally.skipped > 0 && self.tally.skipped >= self.total_rows {
                "all already answered".to_owned()
            } else {
                "none done in this run".to_owned()
            };
        }
        let rate = fmt_rate(done, self.duration);
        if done == self.total_rows {
            rate
        } else {
            format!("{done} done in this run, {rate}")
        }
    }

    /// `--json` form, for stdout.
    pub(crate) fn json(&self) -> serde_json::Value {
        let t = self.tally;
        json!({
            "rows": self.total_rows,
            "answered": t.answered(),
            "billed": t.billed,
            "errors": t.failed(),
            "skipped": t.skipped,
            "not_processed": self.not_processed,
            "by_result": t.by_result,
            "errors_by_code": t.errors,
            "requests": t.attempts,
            "retries": t.retries,
            "duration_secs": (self.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            "stopped": self.stopped,
            "output": self.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_follows_the_result_classes() {
        let mut t = Tally::default();
        for r in ["0", "-1", "-2", "-3", "-4", "-16", "-17", "-18", "-99"] {
            t.add_result(r);
        }
        assert_eq!(t.billed, 4);
        assert_eq!(t.answered(), 9);
    }

    /// Regression (new-user trial): the summary advised `--resume` when the only
    /// errors were malformed rows, which a resume sends unchanged.
    #[test]
    fn resume_is_advised_only_for_failures_a_resume_can_fix() {
        let summary = |t: &Tally| {
            Summary {
                tally: t,
                total_rows: 3,
                duration: Duration::from_secs(1),
                not_processed: 0,
                stopped: None,
                output: "out.csv",
            }
            .text()
        };
        let mut t = Tally::default();
        t.add_result("0");
        t.add_error(crate::verify::batch::MALFORMED);
        let text = summary(&t);
        assert!(!text.contains("--resume"), "{text}");
        assert!(text.contains("malformed rows: fix them"), "{text}");
        t.add_error("InternalError");
        assert!(summary(&t).contains("rerun with --resume"));
    }

    /// Regression: the summary divided the rows of this run by the duration but
    /// printed it next to all the rows (`43 rows in 0.2 s (10.7 rows/s)` after a
    /// resume), and a run of a few milliseconds showed `0.0 s (0.0 rows/s)`. The rate
    /// is the rows done over the precise duration, and says which rows it counts.
    #[test]
    fn summary_rate_divides_the_rows_done_by_the_elapsed_time() {
        let text = |total: u64, done: u64, skipped: u64, duration: Duration| {
            let t = Tally {
                done,
                skipped,
                ..Tally::default()
            };
            let s = Summary {
                tally: &t,
                total_rows: total,
                duration,
                not_processed: total - done - skipped,
                stopped: None,
                output: "out.csv",
            }
            .text();
            s.lines().next().unwrap_or_default().to_owned()
        };
        assert_eq!(
            text(43, 43, 0, Duration::from_millis(200)),
            "summary: 43 rows in 200 ms (215 rows/s); output out.csv"
        );
        assert_eq!(
            text(400, 400, 0, Duration::from_secs(20)),
            "summary: 400 rows in 20.0 s (20.0 rows/s); output out.csv"
        );
        assert_eq!(
            text(43, 2, 41, Duration::from_millis(187)),
            "summary: 43 rows in 187 ms (2 done in this run, 10.7 rows/s); output out.csv"
        );
        // Too short to divide by: a lower bound, never 0.0.
        assert_eq!(
            text(100, 100, 0, Duration::from_micros(300)),
            "summary: 100 rows in <1 ms (>100000 rows/s); output out.csv"
        );
        assert_eq!(
            text(100, 0, 100, Duration::from_millis(3)),
            "summary: 100 rows in 3 ms (all already answered); output out.csv"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(5.2), "5s");
        assert_eq!(fmt_duration(75.0), "1m15s");
        assert_eq!(fmt_duration(3700.0), "1h01m");
    }
}
