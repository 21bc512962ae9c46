//! The server's log writer: a formatted line is appended to a shared buffer, and a
//! flusher thread writes the buffer to stderr every [`FLUSH_EVERY`] (or as soon as it
//! holds [`FLUSH_AT`] bytes). A request's log line then costs a copy instead of a
//! `write` system call, which was about 4% of the server's CPU under load (issue 10
//! profile; a writer thread woken per line, `tracing-appender`, measured no better).
//!
//! A crash loses at most the last [`FLUSH_EVERY`] of log lines (never a ledger row);
//! dropping the [`FlushGuard`] at the end of `main` writes out whatever is buffered.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once, by the thread that filled it.
const FLUSH_AT: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Set when there is no flusher (stopped or never started): write each line at once.
    direct: AtomicBool,
    stopping: Mutex<bool>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Writes out what is buffered. Errors are ignored: there is nowhere left to log them.
    fn flush(&self) {
        let pending = std::mem::take(&mut *lock(&self.buffer));
        if !pending.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&pending);
            let _ = err.flush();
        }
    }
}

/// A `MakeWriter` for `tracing_subscriber::fmt` (clone it freely).
#[derive(Clone)]
pub struct BufferedStderr {
    shared: Arc<Shared>,
}

/// Stops the flusher thread and writes out the buffer when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.direct.store(true, Ordering::SeqCst);
        *lock(&self.shared.stopping) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.flush();
    }
}

/// The writer and the guard that keeps its flusher thread; without a thread (it could
/// not be started) lines are written at once.
pub fn buffered_stderr() -> (BufferedStderr, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let flusher = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("cardcheck-log-flush".into())
        .spawn(move || {
            loop {
                // The lock is not held while writing, so loggers never wait for stderr.
                let stop = {
                    let stopping = lock(&flusher.stopping);
                    if *stopping {
                        true
                    } else {
                        let (stopping, _) = flusher
                            .wake
                            .wait_timeout(stopping, FLUSH_EVERY)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        *stopping
                    }
                };
                flusher.flush();
                if stop {
                    return;
                }
            }
        })
        .ok();
    let writer = BufferedStderr {
        shared: Arc::clone(&shared),
    };
    if thread.is_none() {
        shared.direct.store(true, Ordering::SeqCst);
    }
    (writer, FlushGuard { shared, thread })
}

/// One formatted event.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buffer = lock(&self.shared.buffer);
            buffer.extend_from_slice(bytes);
            buffer.len() >= FLUSH_AT
        };
        if full || self.shared.direct.load(Ordering::Relaxed) {
            self.shared.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_and_the_guard_writes_them_out() {
        let (writer, guard) = buffered_stderr();
        writer.make_writer().write_all(b"one line\n").unwrap();
        assert_eq!(lock(&writer.shared.buffer).as_slice(), b"one line\n");
        drop(guard);
        assert!(lock(&writer.shared.buffer).is_empty());
        // After the guard is gone, lines are written at once.
        writer.make_writer().write_all(b"late line\n").unwrap();
        assert!(lock(&writer.shared.buffer).is_empty());
    }

    #[test]
    fn the_flusher_empties_the_buffer_within_its_period() {
        let (writer, _guard) = buffered_stderr();
        writer.make_writer().write_all(b"queued\n").unwrap();
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 20;
        while !lock(&writer.shared.buffer).is_empty() {
            assert!(std::time::Instant::now() < deadline, "not flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
