//! `cardcheck registry import FILE.csv` (issue 6; docs/registry.md).
//!
//! Two kinds of problem, handled differently:
//!
//! - **File-level** — empty file, binary data, not UTF-8 (GBK), wrong header, a line or
//!   field far beyond any real registry row, a quoted field across lines (an unbalanced
//!   quote swallowing the rows after it):
//!   the file is not what the operator meant to import. One clear sentence, exit 1,
//!   and the registry is unchanged: the whole file is read and validated before the
//!   first write.
//! - **Row-level** — a name or card that fails the request path's format check, an
//!   unknown status word, a wrong number of fields: the row is reported (line number
//!   and reason, never its content) and skipped; the rest is imported (`--strict`:
//!   nothing is).
//!
//! SIGINT / SIGTERM stop the import at a clean point: while reading, before anything
//! is written; while writing, after committing the rows written so far (which stay: the
//! import is resumable). The staging files are removed, a partial write is audited as
//! `interrupted`, one line says what was committed and how to resume, and the exit
//! status is 130.
//!
//! Names and cards go through [`CardholderName::parse`] and [`CardNumber::parse`], the
//! very normalisation requests get, so an imported row matches exactly the requests
//! that carry the same name and card in any accepted spelling.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use cardcheck_domain::{BinLookup, BinTable, CardNumber, CardStatus, CardholderName};
use cardcheck_store::{ImportCounts, RegistryImport, RegistryRecord};
use serde::Serialize;

use super::progress::Progress;
use super::{EXIT_INTERRUPTED, StopOnSignal, human_bytes, thousands};
use crate::files::{LineLimit, MAX_LINE_BYTES};
use crate::store_args::StoreArgs;

/// Longest field accepted (bytes). A valid name has at most 100 code points and a
/// card 19 digits plus separators; anything near this limit is a broken file.
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// Rejections kept for the summary / JSON (all go to `--rejects`).
const REJECTIONS_KEPT: usize = 1000;
/// Rejections printed in the human summary.
const REJECTIONS_SHOWN: usize = 20;
/// Line numbers kept per warning kind.
const WARNING_LINES_KEPT: usize = 10;
/// Bytes inspected up front for binary data and the encoding.
const SNIFF_BYTES: usize = 8192;

/// What `registry import` was asked to do.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) file: PathBuf,
    pub(super) store: StoreArgs,
    pub(super) json: bool,
    pub(super) strict: bool,
    pub(super) rejects: Option<PathBuf>,
    pub(super) progress: bool,
    /// Who imports, for the audit log.
    pub(super) actor: String,
}

/// A rejected row.
#[derive(Debug, Clone, Serialize)]
struct Rejection {
    line: u64,
    reason: String,
}

/// Cards imported although verification will not reach the registry for them.
#[derive(Debug, Default, Serialize)]
struct Warning {
    count: u64,
    lines: Vec<u64>,
}

impl Warning {
    fn add(&mut self, line: u64) {
        self.count += 1;
        if self.lines.len() < WARNING_LINES_KEPT {
            self.lines.push(line);
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct Warnings {
    /// No issuer BIN or network range: verification answers `-8`.
    no_issuer: Warning,
    /// The BIN is known with other lengths: `-7`.
    wrong_length: Warning,
    /// A network that mandates Luhn, and the check digit is wrong: `-7`.
    luhn_failure: Warning,
}

/// The outcome of reading the file (phase 1).
#[derive(Debug, Default)]
struct ReadTally {
    rows: u64,
    accepted: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    rejections: Vec<Rejection>,
    warnings: Warnings,
    /// Reading stopped at a signal: the tally covers only part of the file.
    interrupted: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    file: String,
    store: &'a str,
    /// How a crash is survived (docs/registry.md): committed chunks stay; re-run.
    mode: &'static str,
    rows: u64,
    accepted: u64,
    inserted: u64,
    updated: u64,
    unchanged: u64,
    duplicates: u64,
    rejected: u64,
    rejected_by_reason: &'a BTreeMap<String, u64>,
    rejections: &'a [Rejection],
    rejections_truncated: bool,
    warnings: &'a Warnings,
    seconds: f64,
    rows_per_second: f64,
}

/// A file-level problem: one sentence, exit 1, registry unchanged.
#[derive(Debug)]
struct FileError(String);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FileError {}

pub(super) async fn run(opts: Options) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let display = opts.file.display().to_string();
    let size = sniff(&opts.file, &display)?;
    let header = read_header(&opts.file, &display)?;

    // Importing is also how a registry is first loaded, so a missing store is created;
    // said in one line, so that a mistyped --data-dir does not look like success.
    let new_store = opts.store.embedded_store_missing();
    let backend = super::open_store(&opts.store).await?;
    if new_store {
        eprintln!(
            "note: {} held no cardcheck store; created a new one (check --data-dir if you \
             meant an existing one)",
            opts.store.data_dir.display()
        );
    }
    let mut rejects_out = match &opts.rejects {
        Some(path) => {
            let mut w = csv::Writer::from_path(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            w.write_record(["line", "reason"])
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(w)
        }
        None => None,
    };

    // From here on a signal stops the import at a clean point instead of killing it
    // (which would leave the staging directory and an unaudited partial import).
    let stop = Arc::new(AtomicBool::new(false));
    let _signals = StopOnSignal::install(Arc::clone(&stop));
    let mut importer = backend.registry.begin_import()?;
    importer.stop_when(Arc::clone(&stop));
    let read = tokio::task::block_in_place(|| {
        read_rows(
            &opts.file,
            size,
            &header,
            importer.as_mut(),
            rejects_out.as_mut(),
            opts.progress,
            &stop,
        )
    });
    if let Some(w) = rejects_out.as_mut() {
        w.flush().context("cannot write the --rejects file")?;
    }
    let tally = match read {
        Ok(t) => t,
        Err(e) => {
            drop(importer);
            backend.close();
            bail!("{e}; nothing was imported");
        }
    };
    if tally.interrupted {
        // Dropping the importer removes its staging files; nothing was written.
        drop(importer);
        backend.close();
        eprintln!(
            "interrupted while reading {display}: nothing was imported; run the same import again"
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if opts.strict && tally.rejected > 0 {
        drop(importer);
        backend.close();
        print_rejections(&tally, true);
        bail!(
            "{} of {} rows rejected and --strict is set; nothing was imported",
            thousands(tally.rejected),
            thousands(tally.rows)
        );
    }
    if tally.accepted == 0 && tally.rejected > 0 {
        drop(importer);
        backend.close();
        print_rejections(&tally, true);
        bail!(
            "none of the {} rows of {display} is valid; nothing was imported",
            thousands(tally.rows)
        );
    }

    let counts = if tally.accepted == 0 {
        drop(importer);
        ImportCounts::default()
    } else {
        let mut progress = Progress::new("writing", opts.progress);
        let counts = importer
            .finish(Box::new(move |p| {
                let fraction = (p.total > 0).then(|| p.written as f64 / p.total as f64);
                progress.update(p.written, fraction);
            }))
            .await;
        let stopped = importer.stopped();
        drop(importer);
        match counts {
            Ok(c) if stopped => {
                return interrupted(&backend, &opts, &display, &tally, &c, started).await;
            }
            Ok(c) => c,
            Err(e) => {
                backend.close();
                bail!(
                    "the import stopped: {e}. Rows written before this are kept; run the same import again to finish it"
                );
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let audited = audit(&backend, &opts, &tally, &counts, seconds, None).await;
    backend.close();

    let rate = if seconds > 0.0 {
        tally.rows as f64 / seconds
    } else {
        0.0
    };
    if opts.json {
        let report = Report {
            file: display,
            store: &backend.description,
            mode: "resumable",
            rows: tally.rows,
            accepted: tally.accepted,
            inserted: counts.inserted,
            updated: counts.updated,
            unchanged: counts.unchanged,
            duplicates: counts.duplicates,
            rejected: tally.rejected,
            rejected_by_reason: &tally.rejected_by_reason,
            rejections: &tally.rejections,
            rejections_truncated: tally.rejected > tally.rejections.len() as u64,
            warnings: &tally.warnings,
            seconds,
            rows_per_second: rate,
        };
        crate::admin::print_json(&report)?;
    } else {
        print_summary(&display, &tally, &counts, seconds, rate, size);
    }
    audited?;
    Ok(ExitCode::SUCCESS)
}

/// Records the import in the audit log. `interrupted` is the outcome of a stopped
/// import: its counts are the committed rows only.
async fn audit(
    backend: &cardcheck_store::Backend,
    opts: &Options,
    tally: &ReadTally,
    counts: &ImportCounts,
    seconds: f64,
    interrupted: Option<&str>,
) -> anyhow::Result<()> {
    let display = opts.file.display();
    let (outcome, done) = match interrupted {
        Some(what) => (
            format!("{what}, "),
            format!("{display} was partly imported"),
        ),
        None => (String::new(), format!("{display} was imported")),
    };
    crate::audit::Auditor::new(backend, &opts.actor)
        .record(
            cardcheck_store::audit::action::REGISTRY_IMPORT,
            &audit_file_name(&opts.file),
            &format!(
                "{outcome}rows {}, inserted {}, updated {}, unchanged {}, duplicates {}, rejected {}, {seconds:.2} s",
                tally.rows,
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.duplicates,
                tally.rejected
            ),
            &done,
        )
        .await
}

/// The end of an import stopped by a signal while writing: audit what was committed,
/// say it in one line, exit 130.
async fn interrupted(
    backend: &cardcheck_store::Backend,
    opts: &Options,
    display: &str,
    tally: &ReadTally,
    counts: &ImportCounts,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let seconds = started.elapsed().as_secs_f64();
    let committed = counts.total();
    let what = format!(
        "interrupted: {committed} of {} accepted rows committed",
        tally.accepted
    );
    let audited = audit(backend, opts, tally, counts, seconds, Some(&what)).await;
    backend.close();
    audited?;
    eprintln!(
        "interrupted: {} of {} rows of {display} were committed and stay; run the same import again to finish it",
        thousands(committed),
        thousands(tally.accepted)
    );
    Ok(ExitCode::from(EXIT_INTERRUPTED))
}

/// The file's name without its directories (the audit log's target).
fn audit_file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn print_summary(
    file: &str,
    tally: &ReadTally,
    counts: &ImportCounts,
    seconds: f64,
    rate: f64,
    size: u64,
) {
    if tally.rows == 0 {
        println!("{file} has a header but no rows; the registry is unchanged");
        return;
    }
    println!(
        "imported {file} ({}) in {seconds:.1} s ({} rows/s)",
        human_bytes(size),
        thousands(rate as u64)
    );
    let lines = [
        ("rows", tally.rows),
        ("inserted", counts.inserted),
        ("updated", counts.updated),
        ("unchanged", counts.unchanged),
        ("duplicates", counts.duplicates),
        ("rejected", tally.rejected),
    ];
    for (label, n) in lines {
        println!("  {label:<11} {:>13}", thousands(n));
    }
    if counts.duplicates > 0 {
        println!("  (duplicates: earlier rows for a card that appears again; the last row wins)");
    }
    print_rejections(tally, false);
    let w = &tally.warnings;
    let warn = |what: &str, w: &Warning| {
        if w.count > 0 {
            let lines: Vec<String> = w.lines.iter().map(u64::to_string).collect();
            let more = if w.count > w.lines.len() as u64 {
                ", …"
            } else {
                ""
            };
            println!(
                "warning: {} imported cards {what} (lines {}{more})",
                thousands(w.count),
                lines.join(", ")
            );
        }
    };
    warn(
        "have no issuer in the built-in BIN table: verification answers -8 for them unless `serve --extra-bins` adds their BIN",
        &w.no_issuer,
    );
    warn(
        "have a length their BIN does not issue: verification answers -7 for them",
        &w.wrong_length,
    );
    warn(
        "fail the Luhn check on a network that requires it: verification answers -7 for them",
        &w.luhn_failure,
    );
}

fn print_rejections(tally: &ReadTally, to_stderr: bool) {
    if tally.rejected == 0 {
        return;
    }
    let out = |s: String| {
        if to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    out("rejected rows (skipped):".to_owned());
    for (reason, n) in &tally.rejected_by_reason {
        out(format!("  {:>11}  {reason}", thousands(*n)));
    }
    for r in tally.rejections.iter().take(REJECTIONS_SHOWN) {
        out(format!("  line {}: {}", r.line, r.reason));
    }
    if tally.rejected > REJECTIONS_SHOWN as u64 {
        out(format!(
            "  … and {} more (--rejects FILE lists every one)",
            thousands(tally.rejected - REJECTIONS_SHOWN as u64)
        ));
    }
}

/// Checks the start of the file: not empty, not binary, UTF-8. Returns the size.
fn sniff(path: &Path, display: &str) -> Result<u64, FileError> {
    let mut file =
        File::open(path).map_err(|e| FileError(format!("cannot open {display}: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| FileError(format!("cannot read {display}: {e}")))?
        .len();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.by_ref()
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| FileError(format!("cannot read {display}: {e}")))?;
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    if text.iter().all(u8::is_ascii_whitespace) && size <= SNIFF_BYTES as u64 {
        return Err(FileError(format!(
            "{display} is empty: a registry file starts with the header line `name,card,status`"
        )));
    }
    let controls = text
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C)) || b == 0x7F)
        .count();
    if text.contains(&0) || controls * 20 > text.len() {
        return Err(FileError(format!(
            "{display} is a binary file, not a CSV text file"
        )));
    }
    // The sniffed block may end inside a character: judge only complete ones.
    if let Err(e) = std::str::from_utf8(text)
        && e.error_len().is_some()
    {
        let line = 1 + text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        return Err(encoding_error(display, line as u64, looks_like_gbk(text)));
    }
    Ok(size)
}

/// Whether `bytes` look like GBK / GB18030 text (lead byte 0x81..=0xFE, trail byte
/// 0x40..=0xFE except 0x7F, and a fair number of such pairs).
pub(crate) fn looks_like_gbk(bytes: &[u8]) -> bool {
    let (mut pairs, mut bad) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            i += 1;
        } else if (0x81..=0xFE).contains(&b)
            && i + 1 < bytes.len()
            && matches!(bytes[i + 1], 0x40..=0x7E | 0x80..=0xFE)
        {
            pairs += 1;
            i += 2;
        } else {
            bad += 1;
            i += 1;
        }
    }
    pairs >= 2 && bad * 10 <= pairs
}

fn encoding_error(display: &str, line: u64, gbk: bool) -> FileError {
    let hint = if gbk {
        " (it looks like GBK/GB18030; convert it, e.g. `iconv -f GB18030 -t UTF-8`)"
    } else {
        ""
    };
    FileError(format!(
        "{display} is not valid UTF-8 (line {line}){hint}: registry files must be UTF-8"
    ))
}

/// The column positions of `name`, `card` and `status`.
#[derive(Debug, Clone, Copy)]
struct Header {
    name: usize,
    card: usize,
    status: usize,
}

/// Reads and checks the header line. The line is never echoed: a file without a
/// header starts with a cardholder's name and card.
fn read_header(path: &Path, display: &str) -> Result<Header, FileError> {
    let file = File::open(path).map_err(|e| FileError(format!("cannot open {display}: {e}")))?;
    let mut reader = csv_reader(LineLimit::new(file));
    let mut record = csv::ByteRecord::new();
    let wrong = |what: &str| {
        FileError(format!(
            "{display}: the first line must be the header `name,card,status` ({what})"
        ))
    };
    match reader.read_byte_record(&mut record) {
        Ok(true) => {}
        Ok(false) => {
            return Err(FileError(format!(
                "{display} is empty: a registry file starts with the header line `name,card,status`"
            )));
        }
        Err(e) => return Err(csv_error(display, &e)),
    }
    if record.iter().any(looks_like_data) {
        return Err(wrong(
            "it looks like a data row; add the header line at the top",
        ));
    }
    let mut found: [Option<usize>; 3] = [None; 3];
    for (i, field) in record.iter().enumerate() {
        let field = if i == 0 {
            field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
        } else {
            field
        };
        let word = std::str::from_utf8(field)
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let slot = match word.as_str() {
            "name" => 0,
            "card" => 1,
            "status" => 2,
            _ => {
                return Err(wrong(&format!(
                    "column {} is not one of name, card, status",
                    i + 1
                )));
            }
        };
        if found[slot].replace(i).is_some() {
            return Err(wrong(&format!("column `{word}` appears twice")));
        }
    }
    match found {
        [Some(name), Some(card), Some(status)] => Ok(Header { name, card, status }),
        _ => Err(wrong("a column is missing")),
    }
}

/// A field with five or more digits: probably a card number, so the line is data.
fn looks_like_data(field: &[u8]) -> bool {
    field.iter().filter(|b| b.is_ascii_digit()).count() >= 5
}

/// The CSV reader. Records end at `\n` only: with the default CRLF terminator the csv
/// crate reports CRLF files' line numbers one short, and a stray `\r` is trimmed
/// from every field anyway (names, cards and status words are trimmed).
fn csv_reader<R: Read>(inner: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(inner)
}

fn csv_error(display: &str, e: &csv::Error) -> FileError {
    let line = e.position().map(csv::Position::line);
    let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
    if let csv::ErrorKind::Io(io) = e.kind()
        && io.kind() == std::io::ErrorKind::InvalidData
    {
        return FileError(format!(
            "{display} has a line longer than {} bytes{at}: not a registry CSV (an unbalanced quote, or binary data?)",
            thousands(MAX_LINE_BYTES)
        ));
    }
    FileError(format!("cannot read {display}{at}: {e}"))
}

/// Parses a status word: trimmed, ASCII case-insensitive, `_` or a space for `-`.
pub(crate) fn parse_status(raw: &str) -> Option<CardStatus> {
    let word = raw.trim();
    if let Some(s) = CardStatus::from_word(word) {
        return Some(s);
    }
    let normalised: String = word
        .chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    CardStatus::from_word(&normalised)
}

fn status_words() -> String {
    CardStatus::ALL
        .iter()
        .map(|s| s.as_word())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Phase 1: reads every row, validates it, stages the good ones.
fn read_rows(
    path: &Path,
    size: u64,
    header: &Header,
    importer: &mut dyn RegistryImport,
    mut rejects_out: Option<&mut csv::Writer<File>>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<ReadTally, FileError> {
    let display = &path.display().to_string();
    let file = File::open(path).map_err(|e| FileError(format!("cannot open {display}: {e}")))?;
    let mut reader = csv_reader(LineLimit::new(file));
    let mut record = csv::ByteRecord::new();
    let mut tally = ReadTally::default();
    let mut progress = Progress::new("reading", show_progress);
    let bins = BinTable::builtin();
    let expected_fields = 1 + header.name.max(header.card).max(header.status);
    let mut first = true;
    let status_list = status_words();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(display, &e)),
        }
        if first {
            // The header, checked by `read_header`.
            first = false;
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            tally.interrupted = true;
            break;
        }
        let line = record.position().map_or(0, csv::Position::line);
        tally.rows += 1;
        if tally.rows.is_multiple_of(16_384) {
            let byte = record.position().map_or(0, csv::Position::byte);
            progress.update(tally.rows, (size > 0).then(|| byte as f64 / size as f64));
        }
        // File-level checks come before any row-level judgement.
        for field in &record {
            if field.len() > MAX_FIELD_BYTES {
                return Err(FileError(format!(
                    "{display} line {line}: a field of {} bytes (the limit is {}): not a registry CSV (an unbalanced quote?)",
                    thousands(field.len() as u64),
                    thousands(MAX_FIELD_BYTES as u64)
                )));
            }
            if field.contains(&0) {
                return Err(FileError(format!(
                    "{display} line {line} contains binary data (a NUL byte): not a CSV text file"
                )));
            }
            // No name, card or status holds a line break: a quoted field that runs
            // across lines is an unbalanced quote, which swallows the rows after it
            // (they were counted as one rejected row).
            // (A CR alone is the end of a CRLF line, trimmed later.)
            if field.contains(&b'\n') {
                let lines = 1 + field.iter().filter(|&&b| b == b'\n').count();
                return Err(FileError(format!(
                    "{display} line {line}: a quoted field runs across {lines} lines (an unbalanced quote?): not a registry CSV"
                )));
            }
            if std::str::from_utf8(field).is_err() {
                return Err(encoding_error(display, line, looks_like_gbk(field)));
            }
        }
        let verdict = if record.len() != expected_fields.max(3) {
            Err(format!(
                "expected 3 fields (name,card,status), found {}",
                record.len()
            ))
        } else {
            validate(&record, header, &status_list)
        };
        match verdict {
            Ok(row) => {
                match bins.lookup(&row.card) {
                    BinLookup::NoIssuer => tally.warnings.no_issuer.add(line),
                    BinLookup::WrongLength(_) => tally.warnings.wrong_length.add(line),
                    BinLookup::Found(e) => {
                        if e.luhn_required && !row.card.luhn_valid() {
                            tally.warnings.luhn_failure.add(line);
                        }
                    }
                }
                tally.accepted += 1;
                importer
                    .push(row)
                    .map_err(|e| FileError(format!("cannot stage the rows: {e}")))?;
            }
            Err(reason) => {
                tally.rejected += 1;
                if let Some(w) = rejects_out.as_deref_mut() {
                    w.write_record([line.to_string().as_str(), reason.as_str()])
                        .map_err(|e| FileError(format!("cannot write the --rejects file: {e}")))?;
                }
                *tally.rejected_by_reason.entry(reason.clone()).or_default() += 1;
                if tally.rejections.len() < REJECTIONS_KEPT {
                    tally.rejections.push(Rejection { line, reason });
                }
            }
        }
    }
    progress.finish();
    Ok(tally)
}

/// Row-level validation; the reason never contains the row's content.
fn validate(
    record: &csv::ByteRecord,
    header: &Header,
    status_list: &str,
) -> Result<RegistryRecord, String> {
    // UTF-8 was checked for every field by the caller.
    let field = |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).unwrap_or("");
    let name = CardholderName::parse(field(header.name)).map_err(|e| format!("name: {e}"))?;
    let card = CardNumber::parse(field(header.card)).map_err(|e| format!("card: {e}"))?;
    let status = parse_status(field(header.status))
        .ok_or_else(|| format!("status: not a status word (expected one of {status_list})"))?;
    Ok(RegistryRecord { card, name, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_forgiving_about_case_and_separators() {
        for s in CardStatus::ALL {
            assert_eq!(parse_status(s.as_word()), Some(s));
            assert_eq!(parse_status(&s.as_word().to_uppercase()), Some(s));
            assert_eq!(parse_status(&s.as_word().replace('-', "_")), Some(s));
        }
        assert_eq!(parse_status(" PIN locked "), Some(CardStatus::PinLocked));
        assert_eq!(parse_status("ok"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn gbk_is_recognised() {
        // "张三" in GBK.
        assert!(looks_like_gbk(
            b"name,card,status\n\xD5\xC5\xC8\xFD,1,active\n"
        ));
        assert!(!looks_like_gbk(b"plain ascii"));
    }

    #[test]
    fn long_lines_fail_the_read() {
        let data = vec![b'x'; (MAX_LINE_BYTES + 10) as usize];
        let mut out = Vec::new();
        let err = LineLimit::new(&data[..]).read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let ok = "a\n".repeat(100_000);
        let mut out = Vec::new();
        assert!(LineLimit::new(ok.as_bytes()).read_to_end(&mut out).is_ok());
    }
}
