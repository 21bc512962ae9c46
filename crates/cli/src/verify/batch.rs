//! `cardcheck verify --input FILE.csv --output FILE.csv` (issue 11, spec/cli.md).
//!
//! One blocking reader thread parses the input and feeds `--concurrency` workers; each
//! worker paces its attempts through the shared [`RateLimiter`], journals a request
//! before sending it, and retries transient failures with backoff. The writer (this
//! task) appends each finished row to the output, keeps the tally, draws progress and
//! stops the run early on credential errors, a dead endpoint or SIGINT/SIGTERM.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csv::ByteRecord;
use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};

use super::client::{Client, ENCRYPTION_ERROR, HTTP_STATUS_ERROR, NETWORK_ERROR, Reply, unix_now};
use super::csvio::{
    InputRow, Journal, JournalEntry, OutputFile, RowResult, answered_rows, check_row, open_input,
    record_line, row_check, scan_input, sibling,
};
use super::limiter::{RateLimiter, backoff};
use super::progress::{Progress, Summary, Tally};
use super::{fail, redact, server_text};

/// Error code of rows rejected before sending (issue 11: malformed rows).
pub(crate) const MALFORMED: &str = "ClientError.MalformedRow";
/// A signed request is reused for retries (and after `--resume`) while it is younger
/// than this; the server accepts ±300 s (protocol.md §1.6 step 3).
const REUSE_SECS: i64 = 240;
/// First backoff step and its cap.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// Malformed rows reported one by one on stderr before going quiet.
const MALFORMED_REPORTED: u64 = 20;

/// Batch options (see `VerifyArgs`).
#[derive(Debug)]
pub(crate) struct BatchOptions {
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
    pub(crate) qps: f64,
    pub(crate) concurrency: usize,
    pub(crate) resume: bool,
    pub(crate) overwrite: bool,
    pub(crate) max_attempts: u32,
    pub(crate) name_column: Option<String>,
    pub(crate) card_column: Option<String>,
    pub(crate) mask_card: bool,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) progress_interval: Duration,
}

struct Job {
    line: u64,
    fields: ByteRecord,
    name: String,
    card: String,
}

struct Done {
    line: u64,
    fields: ByteRecord,
    result: RowResult,
}

/// Why the run stops early; the first reason wins.
#[derive(Debug)]
struct Stop {
    tx: watch::Sender<bool>,
    reason: std::sync::Mutex<Option<String>>,
}

impl Stop {
    fn trigger(&self, reason: String) {
        let mut r = self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if r.is_none() {
            *r = Some(reason);
        }
        self.tx.send_replace(true);
    }

    fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Shared state of the workers.
struct Worker {
    client: Arc<Client>,
    limiter: Arc<RateLimiter>,
    journal: Arc<Journal>,
    reuse: Arc<HashMap<u64, JournalEntry>>,
    stop: Arc<Stop>,
    max_attempts: u32,
}

impl Worker {
    /// Sends one row until it has a final answer, a non-retryable failure or no
    /// attempts left. `None`: the run is stopping and the row stays unanswered.
    async fn process(&self, job: &Job) -> Option<RowResult> {
        let mut stop_rx = self.stop.tx.subscribe();
        let started = Instant::now();
        let check = row_check(&job.name, &job.card);
        let mut reuse = self
            .reuse
            .get(&job.line)
            .filter(|e| e.matches(&job.name, &job.card))
            .map(|e| e.stamp.clone());
        let mut prepared = None;
        let mut attempts = 0u32;
        loop {
            let stale = prepared.as_ref().is_none_or(|p: &super::client::Prepared| {
                unix_now().saturating_sub(p.stamp.timestamp) > REUSE_SECS
            });
            if stale {
                let earlier = reuse
                    .take()
                    .filter(|s| (0..=REUSE_SECS).contains(&unix_now().saturating_sub(s.timestamp)));
                match self.client.prepare(&job.name, &job.card, earlier) {
                    Ok(p) => {
                        // Journaled before it is sent (see `Journal`).
                        if !p.reused
                            && let Err(e) = self.journal.record(job.line, check, &p.stamp)
                        {
                            self.stop.trigger(e);
                            return None;
                        }
                        prepared = Some(p);
                    }
                    Err(message) => {
                        return Some(RowResult {
                            error_code: ENCRYPTION_ERROR.to_owned(),
                            error_message: message,
                            attempts,
                            elapsed_ms: millis(started.elapsed()),
                            ..RowResult::default()
                        });
                    }
                }
            }
            let p = prepared.as_ref()?;
            let at = self.limiter.reserve();
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                _ = stop_rx.wait_for(|s| *s) => return None,
            }
            attempts += 1;
            let reply = self.client.send(p).await;
            if reply.rate_limited() {
                self.limiter.throttled();
            }
            if reply.retryable() && attempts < self.max_attempts {
                let wait = backoff(attempts, BACKOFF_BASE, BACKOFF_CAP);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop_rx.wait_for(|s| *s) => return None,
                }
                continue;
            }
            let secrets = [job.card.as_str(), self.client.secret_key()];
            let mut r = RowResult {
                attempts,
                elapsed_ms: millis(started.elapsed()),
                ..RowResult::default()
            };
            // Every server text is sanitised here, once: the output, the warnings and
            // the stop reason are all built from `r`.
            let shown = |t: &str| server_text(t, &secrets);
            match reply {
                Reply::Answer {
                    result,
                    description,
                    request_id,
                    ..
                } => {
                    r.result = Some(shown(&result));
                    r.description = shown(&description);
                    r.request_id = shown(&request_id);
                }
                other => {
                    r.error_code = shown(other.error_code().unwrap_or_default());
                    r.error_message = shown(&other.error_message());
                    if let Reply::ApiError { request_id, .. } = other {
                        r.request_id = shown(&request_id);
                    }
                }
            }
            return Some(r);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Errors that no other row can escape: wrong credentials, a disabled account, an
/// endpoint that is not faceid 2018-03-01. Going on would only repeat them.
fn is_fatal(code: &str) -> bool {
    code.starts_with("AuthFailure")
        || code.starts_with("UnauthorizedOperation")
        || matches!(
            code,
            "InvalidAction" | "NoSuchVersion" | "ActionOffline" | "UnsupportedProtocol"
        )
}

/// The transport failures that count towards "the endpoint is down".
fn is_transport_failure(code: &str) -> bool {
    code == NETWORK_ERROR || code == HTTP_STATUS_ERROR
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the batch; the exit status is 0 when every row has a Result, 1 otherwise,
/// 130 after SIGINT/SIGTERM.
pub(crate) async fn run(client: Client, opts: BatchOptions) -> ExitCode {
    let started = Instant::now();
    let output_name = opts.output.display().to_string();
    if same_file(&opts.input, &opts.output) {
        return fail("--input and --output must be different files");
    }
    let (layout, mut reader) = match open_input(
        &opts.input,
        opts.name_column.as_deref(),
        opts.card_column.as_deref(),
    ) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    if opts.output.is_dir() {
        return fail(&format!(
            "{output_name} is a directory: --output names the CSV file to write"
        ));
    }
    if !opts.resume && !opts.overwrite && std::fs::metadata(&opts.output).is_ok_and(|m| m.len() > 0)
    {
        return fail(&format!(
            "{output_name} already exists: pass --resume to continue it or --overwrite to \
             start over"
        ));
    }
    if let Err(e) = client.check_encryption() {
        return fail(&e);
    }
    // Checked before the output is touched: a refused resume leaves it as it was.
    let answered = if opts.resume {
        match answered_rows(&opts.output, &layout) {
            Ok(a) => a,
            Err(e) => return fail(&e),
        }
    } else {
        HashMap::new()
    };
    let total_rows = match scan_input(&opts.input, &layout, &answered, &opts.output) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    drop(answered);
    // An output written in place (a FIFO or device) cannot be resumed: no journal
    // (`/dev/stdout.journal` would land in /dev). Otherwise the journal is created
    // before the output is touched, so that failing to create it (a read-only
    // directory) leaves an existing output as it was, even with --overwrite.
    let in_place = matches!(
        crate::files::output_target(&opts.output),
        Ok(crate::files::OutputTarget::InPlace(_))
    );
    let journal_path = sibling(&opts.output, ".journal");
    let (journal, reuse) = if in_place {
        (Journal::none(), HashMap::new())
    } else {
        match Journal::open(&journal_path, opts.resume, unix_now(), REUSE_SECS) {
            Ok(x) => x,
            Err(e) => return fail(&e),
        }
    };
    let (mut output, done_lines) = if opts.resume {
        match OutputFile::resume(&opts.output, &layout, opts.mask_card) {
            Ok(x) => x,
            Err(e) => return fail(&e),
        }
    } else {
        match OutputFile::create(&opts.output, &layout, opts.mask_card) {
            Ok(o) => (o, HashSet::new()),
            Err(e) => return fail(&e),
        }
    };

    let (stop_tx, _) = watch::channel(false);
    let stop = Arc::new(Stop {
        tx: stop_tx,
        reason: std::sync::Mutex::new(None),
    });
    let concurrency = opts.concurrency.max(1);
    let (job_tx, job_rx) = mpsc::channel::<Job>(concurrency * 2);
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(concurrency * 4);

    let already_done = done_lines.len() as u64;
    // Reader: blocking CSV parsing on its own thread.
    let reader_done_tx = done_tx.clone();
    let reader_stop = stop.tx.subscribe();
    let reader_layout = layout.clone();
    let input_path = opts.input.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let mut rec = ByteRecord::new();
        let mut skipped = 0u64;
        loop {
            if *reader_stop.borrow() {
                return Ok(skipped);
            }
            match reader.read_byte_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => return Ok(skipped),
                Err(e) => return Err(super::csvio::read_error(&input_path, &e)),
            }
            let line = record_line(&mut reader, &rec);
            let row = check_row(&reader_layout, &rec, line);
            if done_lines.contains(&row.line()) {
                skipped += 1;
                continue;
            }
            let sent = match row {
                InputRow::Valid {
                    line,
                    fields,
                    name,
                    card,
                } => job_tx
                    .blocking_send(Job {
                        line,
                        fields,
                        name,
                        card,
                    })
                    .is_ok(),
                InputRow::Malformed {
                    line,
                    fields,
                    reason,
                } => reader_done_tx
                    .blocking_send(Done {
                        line,
                        fields,
                        result: RowResult {
                            error_code: MALFORMED.to_owned(),
                            error_message: reason,
                            ..RowResult::default()
                        },
                    })
                    .is_ok(),
            };
            if !sent {
                return Ok(skipped);
            }
        }
    });

    let client = Arc::new(client);
    let shared = Arc::new(Worker {
        client: Arc::clone(&client),
        limiter: Arc::new(RateLimiter::new(opts.qps)),
        journal: Arc::new(journal),
        reuse: Arc::new(reuse),
        stop: Arc::clone(&stop),
        max_attempts: opts.max_attempts.max(1),
    });
    let job_rx = Arc::new(AsyncMutex::new(job_rx));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let shared = Arc::clone(&shared);
        let job_rx = Arc::clone(&job_rx);
        let done_tx = done_tx.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let job = { job_rx.lock().await.recv().await };
                let Some(job) = job else { break };
                if *shared.stop.tx.borrow() {
                    break;
                }
                let Some(result) = shared.process(&job).await else {
                    break;
                };
                let done = Done {
                    line: job.line,
                    fields: job.fields,
                    result,
                };
                if done_tx.send(done).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(done_tx);
    drop(job_rx);

    // Writer: this task.
    let tty = std::io::stderr().is_terminal();
    let mut tally = Tally::default();
    let to_do = total_rows.saturating_sub(already_done);
    let mut progress = Progress::new(to_do, tty, !opts.quiet, opts.progress_interval);
    let mut tick = tokio::time::interval(progress.period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    let mut interrupted_flag = false;
    let mut consecutive_transport = 0usize;
    let transport_limit = concurrency.max(3);
    let mut write_error: Option<String> = None;
    loop {
        tokio::select! {
            msg = done_rx.recv() => {
                let Some(done) = msg else { break };
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                if write_error.is_none()
                    && let Err(e) = output.append(done.line, &done.fields, &done.result, &now)
                {
                    stop.trigger(e.clone());
                    write_error = Some(e);
                }
                if write_error.is_some() {
                    continue;
                }
                tally.done += 1;
                tally.attempts += u64::from(done.result.attempts);
                tally.retries += u64::from(done.result.attempts.saturating_sub(1));
                match &done.result.result {
                    Some(r) => {
                        tally.add_result(r);
                        if !done.result.is_final() {
                            tally.unfinished += 1;
                        }
                        consecutive_transport = 0;
                    }
                    None => {
                        let code = done.result.error_code.as_str();
                        tally.add_error(code);
                        if code == MALFORMED {
                            let n = tally.errors.get(MALFORMED).copied().unwrap_or(0);
                            if n <= MALFORMED_REPORTED {
                                progress.finish();
                                eprintln!("warning: {}", done.result.error_message);
                            }
                            if n == MALFORMED_REPORTED {
                                eprintln!("warning: further malformed rows are reported only in the output");
                            }
                        } else if is_fatal(code) {
                            stop.trigger(format!(
                                "{code}: {} — fix the credentials or the endpoint, then rerun with --resume",
                                done.result.error_message
                            ));
                        } else if is_transport_failure(code) {
                            consecutive_transport += 1;
                            if consecutive_transport >= transport_limit {
                                stop.trigger(format!(
                                    "{consecutive_transport} consecutive rows failed: {}",
                                    done.result.error_message
                                ));
                            }
                        } else {
                            consecutive_transport = 0;
                        }
                    }
                }
                progress.tick(&tally);
            }
            _ = tick.tick() => progress.tick(&tally),
            () = &mut interrupt, if !interrupted_flag => {
                interrupted_flag = true;
                progress.finish();
                eprintln!("interrupted: finishing the requests in flight (the output stays consistent)");
                stop.trigger("interrupted".to_owned());
            }
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let skipped = match reader.await {
        Ok(Ok(n)) if stop.reason().is_none() => n,
        // Stopped before the end of the input: the unread answered rows count too.
        Ok(Ok(n)) => n.max(already_done.min(total_rows)),
        Ok(Err(e)) => {
            stop.trigger(e);
            0
        }
        Err(_) => {
            stop.trigger("the input reader failed".to_owned());
            0
        }
    };
    tally.skipped = skipped;
    progress.finish();
    if let Err(e) = output.sync()
        && write_error.is_none()
    {
        write_error = Some(e);
    }

    let stopped = stop.reason();
    let not_processed = total_rows.saturating_sub(tally.done + tally.skipped);
    let complete = is_complete(
        stopped.is_some(),
        tally.failed() + tally.unfinished + not_processed,
        write_error.is_some(),
    );
    if complete && !in_place {
        // Nothing left to resume: the journal has served its purpose.
        let _ = std::fs::remove_file(&journal_path);
    }
    let summary = Summary {
        tally: &tally,
        total_rows,
        duration: started.elapsed(),
        not_processed,
        stopped: stopped.as_deref(),
        output: &output_name,
    };
    let secrets = [client.secret_key()];
    eprint!("{}", redact(&summary.text(), &secrets));
    if opts.json {
        println!("{}", summary.json());
    }
    if let Some(e) = write_error {
        eprintln!("error: {e}");
    }
    if interrupted_flag {
        ExitCode::from(130)
    } else if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Whether the run did all it had to: not stopped, every row with a final answer
/// (`left`: rows failed, unfinished or not processed) and the output written and
/// synced (`write_error`: a failed write or sync makes the run fail, exit status 1).
fn is_complete(stopped: bool, left: u64, write_error: bool) -> bool {
    !stopped && left == 0 && !write_error
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broke: a failed sync (or write) of a regular output was printed as
    /// `error: cannot write the output: …` but the run still exited 0.
    #[test]
    fn a_sync_error_on_a_regular_output_makes_the_run_fail() {
        assert!(is_complete(false, 0, false));
        assert!(!is_complete(false, 0, true));
        assert!(!is_complete(true, 0, false));
        assert!(!is_complete(false, 1, false));
    }
}
