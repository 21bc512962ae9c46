//! A one-line progress display on stderr, redrawn with `\r` — only on a terminal.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::thousands;

/// Redraw at most this often.
const INTERVAL: Duration = Duration::from_millis(200);

/// Progress of one phase (`label`): rows done, rate and, when the fraction done is
/// known, percentage and ETA.
#[derive(Debug)]
pub(super) struct Progress {
    enabled: bool,
    label: &'static str,
    started: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// Shown when `wanted` and stderr is a terminal.
    pub(super) fn new(label: &'static str, wanted: bool) -> Progress {
        Progress {
            enabled: wanted && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            label,
            started: Instant::now(),
            last_draw: None,
            drawn: false,
        }
    }

    /// Reports `done` rows and the fraction of the work done (0..=1), if known.
    pub(super) fn update(&mut self, done: u64, fraction: Option<f64>) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|at| now.duration_since(at) < INTERVAL)
        {
            return;
        }
        self.last_draw = Some(now);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let mut line = format!(
            "{}: {} rows  {} rows/s",
            self.label,
            thousands(done),
            thousands(rate as u64)
        );
        if let Some(f) = fraction.filter(|f| *f > 0.0) {
            let f = f.min(1.0);
            let eta = elapsed * (1.0 - f) / f;
            line.push_str(&format!("  {:>3.0}%  ETA {}", f * 100.0, clock(eta)));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the line.
    pub(super) fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Seconds as `1:05` / `1:02:03`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_clock() {
        assert_eq!(clock(0.2), "0:00");
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(clock(3723.0), "1:02:03");
    }
}
