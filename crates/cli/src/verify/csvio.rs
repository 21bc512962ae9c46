//! Batch files (issue 11): the input CSV, the crash-safe output CSV and the request
//! journal that lets `--resume` repeat an unanswered request byte for byte.
//!
//! Crash safety: every output row is serialised first and written with one
//! `write` on a file opened for appending, so a `kill -9` can at worst cut the last
//! line; `--resume` drops such a torn line (and every row without a final answer) by
//! rewriting the file through a temporary file and an atomic rename, then appends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use csv::ByteRecord;

use super::client::Stamp;
use super::mask_card;
use crate::files::{LineLimit, MAX_LINE_BYTES};

/// Accepted names of the name column (ASCII case-insensitive).
pub(crate) const NAME_COLUMNS: &[&str] = &["name"];
/// Accepted names of the card column (ASCII case-insensitive; `BankCard` matches
/// `bankcard`).
pub(crate) const CARD_COLUMNS: &[&str] = &["card", "bank_card", "bankcard", "card_number"];

/// First output column: the input line number, the key of a row across runs.
pub(crate) const LINE_COLUMN: &str = "Line";
/// Columns appended after the input columns.
pub(crate) const RESULT_COLUMNS: &[&str] = &[
    "Result",
    "Description",
    "RequestId",
    "ErrorCode",
    "ErrorMessage",
    "Attempts",
    "ElapsedMs",
    "Time",
];

/// The input's header and where the two columns are.
#[derive(Debug, Clone)]
pub(crate) struct InputLayout {
    pub(crate) header: ByteRecord,
    pub(crate) name_idx: usize,
    pub(crate) card_idx: usize,
}

impl InputLayout {
    /// `Line`, the input columns, then [`RESULT_COLUMNS`].
    pub(crate) fn output_header(&self) -> ByteRecord {
        let mut h = ByteRecord::new();
        h.push_field(LINE_COLUMN.as_bytes());
        for f in &self.header {
            h.push_field(f);
        }
        for c in RESULT_COLUMNS {
            h.push_field(c.as_bytes());
        }
        h
    }

    pub(crate) fn width(&self) -> usize {
        self.header.len()
    }
}

/// One input row after the shape checks.
#[derive(Debug)]
pub(crate) enum InputRow {
    Valid {
        line: u64,
        fields: ByteRecord,
        name: String,
        card: String,
    },
    /// Reported with its line number and written with an error (issue 11).
    Malformed {
        line: u64,
        fields: ByteRecord,
        reason: String,
    },
}

impl InputRow {
    pub(crate) fn line(&self) -> u64 {
        match self {
            InputRow::Valid { line, .. } | InputRow::Malformed { line, .. } => *line,
        }
    }
}

/// The input file, read through a line-length limit and a line counter.
pub(crate) type InputFile = LineTracker<LineLimit<File>>;

fn input_reader(path: &Path) -> Result<csv::Reader<InputFile>, String> {
    let file =
        File::open(path).map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
    Ok(reader_builder().from_reader(LineTracker::new(LineLimit::new(file))))
}

/// Physical line numbers of the records read through it (docs/verify.md promises
/// them). The csv crate's `Position::line` is wrong for CRLF files and after blank
/// lines, and its `Position::byte` points just past the first terminator byte of the
/// previous record, before any blank lines. So this reader notes every run of
/// `\r`/`\n` bytes it passes on: a record starts right after the run that holds (or
/// starts at) its `byte` position, and its line is one plus the line ends before it.
/// A line end is `\n`, `\r\n` or a lone `\r` (the csv crate accepts all three).
#[derive(Debug)]
pub(crate) struct LineTracker<R> {
    inner: R,
    /// Offset of the next byte read.
    offset: u64,
    /// Finished runs of CR/LF bytes not yet passed by a record: (start, line ends).
    runs: VecDeque<(u64, u64)>,
    /// The run still going on at the end of the bytes read so far.
    open: Option<(u64, u64)>,
    /// Whether the last byte read was a `\r` (a `\n` right after it ends no new line).
    after_cr: bool,
    /// Line number of the byte after the runs already passed.
    line: u64,
}

impl<R> LineTracker<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineTracker {
            inner,
            offset: 0,
            runs: VecDeque::new(),
            open: None,
            after_cr: false,
            line: 1,
        }
    }

    /// The line of the record whose `Position::byte` is `byte`. Records must be
    /// asked for in file order (the runs behind are forgotten).
    pub(crate) fn line_at(&mut self, byte: u64) -> u64 {
        while let Some(&(start, newlines)) = self.runs.front()
            && start <= byte
        {
            self.line += newlines;
            self.runs.pop_front();
        }
        self.line
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' || b == b'\r' {
                let run = self.open.get_or_insert((self.offset, 0));
                // `\r\n` is one line end: counted at its `\r`.
                run.1 += u64::from(b == b'\r' || !self.after_cr);
            } else if let Some(run) = self.open.take() {
                self.runs.push_back(run);
            }
            self.after_cr = b == b'\r';
            self.offset += 1;
        }
        Ok(n)
    }
}

/// The line of the record just read from `reader`.
pub(crate) fn record_line(reader: &mut csv::Reader<InputFile>, rec: &ByteRecord) -> u64 {
    let byte = rec.position().map_or(0, csv::Position::byte);
    reader.get_mut().line_at(byte)
}

/// The one-line refusal of an input that is not UTF-8, with the `registry import`
/// hint when the bytes look like GBK (its detection, reused).
fn not_utf8(path: &Path, line: u64, bytes: &[u8]) -> String {
    let hint = if crate::registry::import::looks_like_gbk(bytes) {
        " (it looks like GBK/GB18030; convert it, e.g. `iconv -f GB18030 -t UTF-8`)"
    } else {
        ""
    };
    format!(
        "{} is not valid UTF-8 (line {line}){hint}: the input must be UTF-8",
        path.display()
    )
}

/// A read error, naming a line that is too long for what it is (`/dev/zero`, binary).
pub(crate) fn read_error(path: &Path, e: &csv::Error) -> String {
    if let csv::ErrorKind::Io(io) = e.kind()
        && io.kind() == std::io::ErrorKind::InvalidData
    {
        return format!(
            "{} has a line longer than {} KiB: not a CSV of names and cards (binary data?)",
            path.display(),
            MAX_LINE_BYTES / 1024
        );
    }
    format!("cannot read {}: {e}", path.display())
}

fn reader_builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    // Rows of the wrong width are reported per row, not as a fatal error.
    b.flexible(true).has_headers(true);
    b
}

/// Opens the input and finds the name and card columns. Error messages never echo
/// header cells: a file without a header has a card number there.
pub(crate) fn open_input(
    path: &Path,
    name_column: Option<&str>,
    card_column: Option<&str>,
) -> Result<(InputLayout, csv::Reader<InputFile>), String> {
    let mut reader = input_reader(path)?;
    let mut header = reader
        .byte_headers()
        .map_err(|e| read_error(path, &e))?
        .clone();
    // Before looking for the columns: a GBK header would only say "no name column".
    if std::str::from_utf8(header.as_slice()).is_err() {
        let line = record_line(&mut reader, &header);
        return Err(not_utf8(path, line, header.as_slice()));
    }
    if header.is_empty() || header.iter().all(<[u8]>::is_empty) {
        return Err(format!(
            "{} is empty: it needs a header line",
            path.display()
        ));
    }
    // Spreadsheet exports start with a UTF-8 byte order mark.
    if let Some(first) = header.get(0)
        && let Some(rest) = first.strip_prefix(b"\xEF\xBB\xBF")
    {
        let mut clean = ByteRecord::new();
        clean.push_field(rest);
        for f in header.iter().skip(1) {
            clean.push_field(f);
        }
        header = clean;
    }
    let find = |wanted: Option<&str>, defaults: &[&str]| -> Option<usize> {
        header.iter().position(|cell| {
            let cell = String::from_utf8_lossy(cell);
            let cell = cell.trim();
            match wanted {
                Some(w) => cell == w,
                None => defaults.iter().any(|d| cell.eq_ignore_ascii_case(d)),
            }
        })
    };
    let name_idx = find(name_column, NAME_COLUMNS).ok_or_else(|| match name_column {
        Some(c) => format!("the header of {} has no column {c:?}", path.display()),
        None => format!(
            "the first line of {} must be a header with a name column (`name`) and a card \
             column (`card`, `bank_card`, `BankCard` or `card_number`); see --name-column",
            path.display()
        ),
    })?;
    let card_idx = find(card_column, CARD_COLUMNS).ok_or_else(|| match card_column {
        Some(c) => format!("the header of {} has no column {c:?}", path.display()),
        None => format!(
            "the header of {} has no card column (`card`, `bank_card`, `BankCard` or \
             `card_number`); see \
             --card-column",
            path.display()
        ),
    })?;
    if name_idx == card_idx {
        return Err("the name and card columns must differ".to_owned());
    }
    Ok((
        InputLayout {
            header,
            name_idx,
            card_idx,
        },
        reader,
    ))
}

/// What identifies an answered row across runs: its name and its masked card (the
/// output may hold the card masked, `--mask-card`; nothing new is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowKey {
    name: Vec<u8>,
    masked_card: String,
}

impl RowKey {
    /// The key of a record with the input's columns at `offset` (0 in the input, 1 in
    /// the output after `Line`); `None` when it is too short.
    fn of(rec: &ByteRecord, layout: &InputLayout, offset: usize) -> Option<RowKey> {
        let name = rec.get(offset + layout.name_idx)?;
        let card = rec.get(offset + layout.card_idx)?;
        Some(RowKey {
            name: name.to_vec(),
            // `mask_card` of a masked card is itself, so both forms compare.
            masked_card: mask_card(&String::from_utf8_lossy(card)),
        })
    }
}

/// The rows that `output` already answers (final Result), by line, as `--resume`
/// will skip them; read only, so that a refusal leaves the output untouched. Empty
/// when there is no output or its header is not this input's (`OutputFile::resume`
/// then decides).
pub(crate) fn answered_rows(
    output: &Path,
    layout: &InputLayout,
) -> Result<HashMap<u64, RowKey>, String> {
    // Before any open: reading a FIFO back would wait for a writer for ever.
    crate::files::check_resumable(output)?;
    let mut rows = HashMap::new();
    let file = match File::open(output) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rows),
        Err(e) => return Err(format!("cannot open {}: {}", output.display(), io_text(&e))),
    };
    let expected = layout.output_header();
    let result_idx = expected.len() - RESULT_COLUMNS.len();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(file);
    let mut records = reader.byte_records();
    match records.next() {
        Some(Ok(h)) if h.iter().eq(expected.iter()) => {}
        _ => return Ok(rows),
    }
    // A broken record can only be a torn tail: stop there.
    for rec in records.map_while(Result::ok) {
        if rec.len() != expected.len()
            || !is_final_result(std::str::from_utf8(&rec[result_idx]).unwrap_or_default())
        {
            continue;
        }
        let Some(line) = std::str::from_utf8(&rec[0])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(key) = RowKey::of(&rec, layout, 1) {
            rows.entry(line).or_insert(key);
        }
    }
    Ok(rows)
}

/// Bytes of the non-UTF-8 rows kept to judge the file's encoding.
const ENCODING_SAMPLE: usize = 8192;

/// Reads the whole input before anything is sent: counts the data rows (for progress
/// and ETA), refuses a file in another encoding (its non-UTF-8 rows look like GBK, as
/// a spreadsheet export does; a few stray bad bytes stay malformed rows), and with
/// `--resume` checks that every row the output answers is the same row of this input
/// (a resume with another input would otherwise skip its rows as "already answered").
pub(crate) fn scan_input(
    path: &Path,
    layout: &InputLayout,
    answered: &HashMap<u64, RowKey>,
    output: &Path,
) -> Result<u64, String> {
    let mut reader = input_reader(path)?;
    let mut rec = ByteRecord::new();
    let mut n = 0u64;
    let mut matched = HashSet::new();
    // The first non-UTF-8 line and a sample of such rows.
    let mut first_bad: Option<u64> = None;
    let mut bad_sample = Vec::new();
    // Names the line only: the row's values stay out of the message.
    let other_input = |line: u64, what: &str| {
        format!(
            "{} was written for another input: line {line} of {} {what}; --resume needs \
             the same input — choose another --output, or --overwrite to start over",
            output.display(),
            path.display()
        )
    };
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => n += 1,
            Ok(false) => break,
            Err(e) => return Err(read_error(path, &e)),
        }
        let line = record_line(&mut reader, &rec);
        if std::str::from_utf8(rec.as_slice()).is_err() {
            first_bad.get_or_insert(line);
            if bad_sample.len() < ENCODING_SAMPLE {
                bad_sample.extend_from_slice(rec.as_slice());
                bad_sample.push(b'\n');
            }
        }
        if let Some(key) = answered.get(&line) {
            if rec.len() != layout.width() || RowKey::of(&rec, layout, 0).as_ref() != Some(key) {
                return Err(other_input(
                    line,
                    "has another name or card than the answered row",
                ));
            }
            matched.insert(line);
        }
    }
    if let Some(line) = first_bad
        && crate::registry::import::looks_like_gbk(&bad_sample)
    {
        return Err(not_utf8(path, line, &bad_sample));
    }
    // An answered line on which no row of this input starts (a shorter input).
    if let Some(line) = answered.keys().filter(|l| !matched.contains(*l)).min() {
        return Err(other_input(
            *line,
            "starts no row, yet the output answers it",
        ));
    }
    Ok(n)
}

/// Shape checks of one record (its physical `line` from [`record_line`]): the width
/// must be the header's (a shifted row cannot be trusted), the name and card must be
/// UTF-8.
pub(crate) fn check_row(layout: &InputLayout, rec: &ByteRecord, line: u64) -> InputRow {
    let width = layout.width();
    let malformed = |reason: String| InputRow::Malformed {
        line,
        fields: fit(rec, width),
        reason: format!("line {line}: {reason}"),
    };
    if rec.len() < width {
        let missing: Vec<&str> = [(layout.name_idx, "name"), (layout.card_idx, "card")]
            .iter()
            .filter(|(i, _)| *i >= rec.len())
            .map(|(_, n)| *n)
            .collect();
        return malformed(if missing.is_empty() {
            format!("{} fields where the header has {width}", rec.len())
        } else {
            format!(
                "missing {} column ({} fields where the header has {width})",
                missing.join(" and "),
                rec.len()
            )
        });
    }
    if rec.len() > width {
        return malformed(format!(
            "{} fields where the header has {width} (an unquoted comma?)",
            rec.len()
        ));
    }
    let name = match std::str::from_utf8(&rec[layout.name_idx]) {
        Ok(s) => s.to_owned(),
        Err(_) => return malformed("the name is not valid UTF-8".to_owned()),
    };
    let card = match std::str::from_utf8(&rec[layout.card_idx]) {
        Ok(s) => s.to_owned(),
        Err(_) => return malformed("the card number is not valid UTF-8".to_owned()),
    };
    InputRow::Valid {
        line,
        fields: rec.clone(),
        name,
        card,
    }
}

/// `rec` cut or padded with empty fields to `width`.
fn fit(rec: &ByteRecord, width: usize) -> ByteRecord {
    let mut out = ByteRecord::new();
    for i in 0..width {
        out.push_field(rec.get(i).unwrap_or_default());
    }
    out
}

/// What the output says about one row.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowResult {
    pub(crate) result: Option<String>,
    pub(crate) description: String,
    pub(crate) request_id: String,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
    pub(crate) attempts: u32,
    pub(crate) elapsed_ms: u64,
}

impl RowResult {
    /// A final answer: any Result except the transient `-16` (verification.md §4).
    pub(crate) fn is_final(&self) -> bool {
        self.result.as_deref().is_some_and(is_final_result)
    }
}

fn is_final_result(r: &str) -> bool {
    !r.is_empty() && r != "-16"
}

/// `path` + `suffix` (`out.csv` → `out.csv.journal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The output CSV, appended one whole row per `write`.
#[derive(Debug)]
pub(crate) struct OutputFile {
    file: File,
    width: usize,
    /// Index (in the input columns) of the card column when `--mask-card` is on.
    mask_idx: Option<usize>,
    /// A FIFO or device written in place: nothing to sync (`fsync` fails with EINVAL).
    in_place: bool,
}

fn csv_line(rec: &ByteRecord) -> Result<Vec<u8>, String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(256));
    w.write_byte_record(rec)
        .map_err(|e| format!("cannot format a CSV row: {e}"))?;
    w.into_inner()
        .map_err(|e| format!("cannot format a CSV row: {}", e.error()))
}

impl OutputFile {
    /// A new output holding only the header (an existing file is replaced).
    pub(crate) fn create(
        path: &Path,
        layout: &InputLayout,
        mask_card: bool,
    ) -> Result<OutputFile, String> {
        let mut file = File::create(path)
            .map_err(|e| format!("cannot create {}: {}", path.display(), io_text(&e)))?;
        file.write_all(&csv_line(&layout.output_header())?)
            .map_err(|e| format!("cannot write {}: {}", path.display(), io_text(&e)))?;
        // A FIFO or device is kept open: reopening would end the reader's stream.
        if matches!(
            crate::files::output_target(path),
            Ok(crate::files::OutputTarget::InPlace(_))
        ) {
            return Ok(OutputFile {
                file,
                width: layout.width(),
                mask_idx: mask_card.then_some(layout.card_idx),
                in_place: true,
            });
        }
        drop(file);
        Self::open_append(path, layout, mask_card)
    }

    fn open_append(
        path: &Path,
        layout: &InputLayout,
        mask_card: bool,
    ) -> Result<OutputFile, String> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
        Ok(OutputFile {
            file,
            width: layout.width(),
            mask_idx: mask_card.then_some(layout.card_idx),
            in_place: false,
        })
    }

    /// Continues an earlier output (`--resume`): keeps the rows with a final answer,
    /// drops the others and a torn last line, and returns the answered line numbers.
    /// A missing or empty file starts afresh.
    pub(crate) fn resume(
        path: &Path,
        layout: &InputLayout,
        mask_card: bool,
    ) -> Result<(OutputFile, HashSet<u64>), String> {
        // A FIFO or device cannot be read back: nothing to resume from.
        crate::files::check_resumable(path)?;
        let empty = match std::fs::metadata(path) {
            Ok(m) => m.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(format!("cannot read {}: {}", path.display(), io_text(&e))),
        };
        if empty {
            return Ok((Self::create(path, layout, mask_card)?, HashSet::new()));
        }
        let expected = layout.output_header();
        let ends_with_newline = last_byte(path)? == Some(b'\n');
        let file = File::open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(file);
        let mut records = reader.byte_records();
        let header = match records.next() {
            Some(Ok(h)) => h,
            Some(Err(e)) => return Err(format!("cannot read {}: {e}", path.display())),
            None => ByteRecord::new(),
        };
        if header.len() != expected.len() || !header.iter().eq(expected.iter()) {
            // A header cut by a crash before any row was written: start afresh.
            if records.next().is_none() && !ends_with_newline {
                return Ok((Self::create(path, layout, mask_card)?, HashSet::new()));
            }
            return Err(format!(
                "{} does not look like an output of this input (its header differs); \
                 choose another --output or drop --resume",
                path.display()
            ));
        }
        // Dropped on an error: its temporary file goes, the output stays as it was.
        let mut out = crate::files::OutputWriter::create(path).map_err(|e| {
            // What fails to be created is the temporary file beside the output (a
            // read-only directory), not the output itself.
            let tmp = match crate::files::output_target(path) {
                Ok(crate::files::OutputTarget::Replace(real)) => {
                    crate::files::temp_path(&real).ok()
                }
                _ => None,
            };
            match tmp {
                Some(tmp) => format!(
                    "cannot create the temporary file {} to rewrite {}: {}",
                    tmp.display(),
                    path.display(),
                    io_text(&e)
                ),
                None => format!("cannot rewrite {}: {}", path.display(), io_text(&e)),
            }
        })?;
        let mut buf = csv_line(&expected)?;
        let result_idx = expected.len() - RESULT_COLUMNS.len();
        let mut done = HashSet::new();
        // The last record is kept back until we know it is followed by a newline.
        let mut pending: Option<ByteRecord> = None;
        let keep = |rec: &ByteRecord, done: &mut HashSet<u64>, buf: &mut Vec<u8>| {
            if rec.len() != expected.len() {
                return Ok(());
            }
            let Some(line) = std::str::from_utf8(&rec[0])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return Ok(());
            };
            let result = std::str::from_utf8(&rec[result_idx]).unwrap_or_default();
            if is_final_result(result) && done.insert(line) {
                buf.extend_from_slice(&csv_line(rec)?);
            }
            Ok::<(), String>(())
        };
        for rec in records {
            // A broken record can only be the torn tail: stop there.
            let Ok(rec) = rec else { break };
            if let Some(prev) = pending.replace(rec) {
                keep(&prev, &mut done, &mut buf)?;
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)
                        .map_err(|e| format!("cannot write {}: {}", path.display(), io_text(&e)))?;
                    buf.clear();
                }
            }
        }
        if let Some(last) = pending
            && ends_with_newline
        {
            keep(&last, &mut done, &mut buf)?;
        }
        out.write_all(&buf)
            .map_err(|e| format!("cannot write {}: {}", path.display(), io_text(&e)))?;
        out.commit()
            .map_err(|e| format!("cannot replace {}: {}", path.display(), io_text(&e)))?;
        Ok((Self::open_append(path, layout, mask_card)?, done))
    }

    /// Appends one row in a single `write` (see the module docs).
    pub(crate) fn append(
        &mut self,
        line: u64,
        fields: &ByteRecord,
        r: &RowResult,
        time: &str,
    ) -> Result<(), String> {
        let mut rec = ByteRecord::new();
        rec.push_field(line.to_string().as_bytes());
        for i in 0..self.width {
            let f = fields.get(i).unwrap_or_default();
            if Some(i) == self.mask_idx {
                rec.push_field(mask_card(&String::from_utf8_lossy(f)).as_bytes());
            } else {
                rec.push_field(f);
            }
        }
        rec.push_field(r.result.as_deref().unwrap_or_default().as_bytes());
        rec.push_field(r.description.as_bytes());
        rec.push_field(r.request_id.as_bytes());
        rec.push_field(r.error_code.as_bytes());
        rec.push_field(r.error_message.as_bytes());
        rec.push_field(r.attempts.to_string().as_bytes());
        rec.push_field(r.elapsed_ms.to_string().as_bytes());
        rec.push_field(time.as_bytes());
        let bytes = csv_line(&rec)?;
        self.file
            .write_all(&bytes)
            .map_err(|e| format!("cannot write the output: {}", io_text(&e)))
    }

    /// Flushes the file to disk; a FIFO or device has nothing to sync.
    pub(crate) fn sync(&self) -> Result<(), String> {
        if self.in_place {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| format!("cannot write the output: {}", io_text(&e)))
    }
}

fn last_byte(path: &Path) -> Result<Option<u8>, String> {
    let mut f =
        File::open(path).map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {}", path.display(), io_text(&e)))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read {}: {}", path.display(), io_text(&e)))?;
    Ok(Some(b[0]))
}

/// A journal entry: the stamp a row was last sent with.
#[derive(Debug, Clone)]
pub(crate) struct JournalEntry {
    /// 16-bit check of (name, card): an entry is reused only for the same values.
    /// Deliberately short, so the journal reveals nothing about the card.
    check: u16,
    pub(crate) stamp: Stamp,
}

impl JournalEntry {
    pub(crate) fn matches(&self, name: &str, card: &str) -> bool {
        self.check == row_check(name, card)
    }
}

/// 16 bits of SipHash (fixed keys) over the row's values.
pub(crate) fn row_check(name: &str, card: &str) -> u16 {
    let mut h = std::hash::DefaultHasher::new();
    (name, card).hash(&mut h);
    (h.finish() & 0xffff) as u16
}

/// The request journal, `<output>.journal`: before a row's request is sent, a line
/// `line<TAB>check<TAB>timestamp<TAB>nonce<TAB>encrypted-params-json` is appended.
/// After a crash, `--resume` signs an unanswered row again with the same stamp, so a
/// request that the server had already answered is recognised as a retry (same
/// signature, inside the ±300 s window) and not verified twice (verification.md §4).
/// No card number or name is ever written to it.
///
/// An output written in place (a FIFO or device, `/dev/stdout`) cannot be resumed, so
/// its run keeps no journal at all ([`Journal::none`]): `/dev/stdout.journal` would be
/// a stray file in `/dev`, or a "permission denied" that stops the run.
#[derive(Debug)]
pub(crate) struct Journal {
    /// `None`: nothing is journaled (see [`Journal::none`]).
    file: Option<Mutex<File>>,
}

impl Journal {
    /// A journal that records nothing, for an output that cannot be resumed.
    pub(crate) fn none() -> Journal {
        Journal { file: None }
    }

    /// Opens the journal. With `keep`, the entries younger than `max_age_secs` are
    /// returned and kept; otherwise the journal starts empty.
    pub(crate) fn open(
        path: &Path,
        keep: bool,
        now: i64,
        max_age_secs: i64,
    ) -> Result<(Journal, HashMap<u64, JournalEntry>), String> {
        let mut entries = HashMap::new();
        if keep {
            match std::fs::read(path) {
                Ok(bytes) => {
                    for raw in bytes.split(|b| *b == b'\n') {
                        if let Some((line, e)) = parse_journal_line(raw)
                            && (0..max_age_secs).contains(&now.saturating_sub(e.stamp.timestamp))
                        {
                            entries.insert(line, e);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read {}: {}", path.display(), io_text(&e))),
            }
        }
        // Rewrite with the useful entries only, through a rename (crash-safe).
        let tmp = sibling(path, ".tmp");
        let mut buf = Vec::new();
        let mut sorted: Vec<_> = entries.iter().collect();
        sorted.sort_by_key(|(line, _)| **line);
        for (line, e) in sorted {
            buf.extend_from_slice(journal_line(*line, e.check, &e.stamp).as_bytes());
        }
        std::fs::write(&tmp, &buf).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!(
                "cannot create the request journal's temporary file {}: {}",
                tmp.display(),
                io_text(&e)
            )
        })?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!(
                "cannot create the request journal {}: {}",
                path.display(),
                io_text(&e)
            )
        })?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
        Ok((
            Journal {
                file: Some(Mutex::new(file)),
            },
            entries,
        ))
    }

    /// Appends an entry (one `write`) before the request goes out.
    pub(crate) fn record(&self, line: u64, check: u16, stamp: &Stamp) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let text = journal_line(line, check, stamp);
        let mut f = file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the request journal: {}", io_text(&e)))
    }
}

fn journal_line(line: u64, check: u16, stamp: &Stamp) -> String {
    let params = stamp
        .encrypted
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
        .unwrap_or_default();
    format!(
        "{line}\t{check}\t{}\t{}\t{params}\n",
        stamp.timestamp, stamp.nonce
    )
}

fn parse_journal_line(raw: &[u8]) -> Option<(u64, JournalEntry)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.splitn(5, '\t');
    let line = parts.next()?.parse().ok()?;
    let check = parts.next()?.parse().ok()?;
    let timestamp = parts.next()?.parse().ok()?;
    let nonce = parts.next()?.parse().ok()?;
    // A torn last line lacks the fifth field (or has cut JSON): ignored.
    let params = parts.next()?;
    let encrypted = if params.is_empty() {
        None
    } else {
        match serde_json::from_str(params).ok()? {
            serde_json::Value::Object(m) => Some(m),
            _ => return None,
        }
    };
    Some((
        line,
        JournalEntry {
            check,
            stamp: Stamp {
                timestamp,
                nonce,
                encrypted,
            },
        },
    ))
}

/// An I/O error as a short phrase (no paths, no debug forms).
pub(crate) fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file or directory".to_owned(),
        K::PermissionDenied => "permission denied".to_owned(),
        _ => {
            let s = e.to_string();
            // "Is a directory (os error 21)" → "Is a directory".
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_round_trip_and_torn_lines_are_ignored() {
        let stamp = Stamp {
            timestamp: 1_700_000_000,
            nonce: 42,
            encrypted: None,
        };
        let text = journal_line(7, 99, &stamp);
        let (line, e) = parse_journal_line(text.strip_suffix('\n').unwrap().as_bytes()).unwrap();
        assert_eq!(
            (line, e.check, e.stamp.timestamp, e.stamp.nonce),
            (7, 99, 1_700_000_000, 42)
        );
        assert!(parse_journal_line(b"7\t99\t17000").is_none());
        let mut m = serde_json::Map::new();
        m.insert("Name".into(), "x".into());
        let stamp = Stamp {
            encrypted: Some(m),
            ..stamp
        };
        let text = journal_line(8, 1, &stamp);
        let (_, e) = parse_journal_line(text.strip_suffix('\n').unwrap().as_bytes()).unwrap();
        assert!(e.stamp.encrypted.is_some());
        let cut = &text.as_bytes()[..text.len() - 4];
        assert!(parse_journal_line(cut).is_none());
    }

    /// Regression: the csv crate's line numbers were off for CRLF files and after
    /// blank lines; `LineTracker` gives each record its physical first line, even when
    /// the bytes arrive one at a time.
    #[test]
    fn records_get_their_physical_line_for_lf_crlf_blank_lines_and_quoted_newlines() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let lf = "\nname,card\na,1\n\nb,2\n\"c\nx\",3\n\n\nbad\n,4\n";
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf, crlf.as_str()] {
            for one_byte in [false, true] {
                let src: Box<dyn Read> = if one_byte {
                    Box::new(OneByte(text.as_bytes()))
                } else {
                    Box::new(text.as_bytes())
                };
                let mut reader = reader_builder().from_reader(LineTracker::new(src));
                let mut rec = ByteRecord::new();
                let mut lines = Vec::new();
                while reader.read_byte_record(&mut rec).unwrap() {
                    let byte = rec.position().map_or(0, csv::Position::byte);
                    lines.push(reader.get_mut().line_at(byte));
                }
                // Blank line 1, header 2, a 3, b 5, "c…x" 6-7, bad 10, ",4" 11.
                let expected = [3, 5, 6, 10, 11];
                assert_eq!(lines, expected, "{text:?} one byte at a time: {one_byte}");
            }
        }
    }

    /// Broke: a lone `\r` (accepted by the csv crate as a line end) was not counted,
    /// so every row of a CR-only input got line 1 and `--resume` refused the output.
    #[test]
    fn a_cr_only_input_counts_each_lone_cr_as_a_line_end() {
        let lf = "\nname,card\na,1\n\nb,2\n\"c\nx\",3\n\n\nbad\n,4\n";
        // Lone CRs, and CR then CRLF (two line ends).
        let cr = lf.replace('\n', "\r");
        let mixed = lf.replace("\n\n", "\r\r\n");
        for text in [cr.as_str(), mixed.as_str()] {
            let mut reader = reader_builder().from_reader(LineTracker::new(text.as_bytes()));
            let mut rec = ByteRecord::new();
            let mut lines = Vec::new();
            while reader.read_byte_record(&mut rec).unwrap() {
                let byte = rec.position().map_or(0, csv::Position::byte);
                lines.push(reader.get_mut().line_at(byte));
            }
            assert_eq!(lines, [3, 5, 6, 10, 11], "{text:?}");
        }
    }

    /// Broke: every run to a FIFO or device ended with `error: cannot write the
    /// output: Invalid argument` (`fsync` of a device fails with EINVAL).
    #[cfg(unix)]
    #[test]
    fn syncing_an_output_written_in_place_is_skipped() {
        let layout = InputLayout {
            header: ByteRecord::from(vec!["name", "card"]),
            name_idx: 0,
            card_idx: 1,
        };
        let out = OutputFile::create(Path::new("/dev/null"), &layout, false).unwrap();
        assert!(out.in_place);
        assert_eq!(out.sync(), Ok(()));
    }

    /// Broke: when the temporary file beside the output could not be created
    /// (a read-only directory), `--resume` said `cannot create <output>`, naming
    /// the file it had not tried to create.
    #[test]
    fn a_resume_that_cannot_create_its_temporary_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let layout = InputLayout {
            header: ByteRecord::from(vec!["name", "card"]),
            name_idx: 0,
            card_idx: 1,
        };
        let header = csv_line(&layout.output_header()).unwrap();
        std::fs::write(&path, &header).unwrap();
        // A directory where the temporary file goes: created even as root.
        let tmp = crate::files::temp_path(&path).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let err = OutputFile::resume(&path, &layout, false).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "cannot create the temporary file {}",
                tmp.display()
            )),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), header);
    }

    #[test]
    fn row_checks_differ_by_value() {
        assert_eq!(row_check("a", "1"), row_check("a", "1"));
        assert_ne!(row_check("a", "1"), row_check("a", "2"));
    }
}
