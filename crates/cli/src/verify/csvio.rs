//! Batch files (issue 11): the input CSV, the crash-safe output CSV and the request
//! journal that lets `--resume` repeat an unanswered request byte for byte.
//!
//! Crash safety: every output row is serialised first and written with one
//! `write` on a file opened for appending, so a `kill -9` can at worst cut the last
//! line; `--resume` drops such a torn line (and every row without a final answer) by
//! rewriting the file through a temporary file and an atomic rename, then appends.

use std::collections::{HashMap, HashSet};
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

/// The input file, read through a line-length limit.
pub(crate) type InputFile = LineLimit<File>;

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
    let file =
        File::open(path).map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
    let mut reader = reader_builder().from_reader(LineLimit::new(file));
    let mut header = reader
        .byte_headers()
        .map_err(|e| read_error(path, &e))?
        .clone();
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

/// Number of data rows (for progress and ETA).
pub(crate) fn count_rows(path: &Path) -> Result<u64, String> {
    let file =
        File::open(path).map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
    let mut reader = reader_builder().from_reader(LineLimit::new(file));
    let mut rec = ByteRecord::new();
    let mut n = 0u64;
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => n += 1,
            Ok(false) => return Ok(n),
            Err(e) => return Err(read_error(path, &e)),
        }
    }
}

/// Shape checks of one record: the width must be the header's (a shifted row cannot
/// be trusted), the name and card must be UTF-8.
pub(crate) fn check_row(layout: &InputLayout, rec: &ByteRecord) -> InputRow {
    let line = rec.position().map_or(0, csv::Position::line);
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
        let tmp = sibling(path, ".tmp");
        let mut out = File::create(&tmp)
            .map_err(|e| format!("cannot create {}: {}", tmp.display(), io_text(&e)))?;
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
                        .map_err(|e| format!("cannot write {}: {}", tmp.display(), io_text(&e)))?;
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
            .and_then(|()| out.sync_all())
            .map_err(|e| format!("cannot write {}: {}", tmp.display(), io_text(&e)))?;
        drop(out);
        std::fs::rename(&tmp, path)
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

    /// Flushes the file to disk.
    pub(crate) fn sync(&self) -> Result<(), String> {
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
#[derive(Debug)]
pub(crate) struct Journal {
    file: Mutex<File>,
}

impl Journal {
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
        std::fs::write(&tmp, &buf)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {}", path.display(), io_text(&e)))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), io_text(&e)))?;
        Ok((
            Journal {
                file: Mutex::new(file),
            },
            entries,
        ))
    }

    /// Appends an entry (one `write`) before the request goes out.
    pub(crate) fn record(&self, line: u64, check: u16, stamp: &Stamp) -> Result<(), String> {
        let text = journal_line(line, check, stamp);
        let mut f = self
            .file
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

    #[test]
    fn row_checks_differ_by_value() {
        assert_eq!(row_check("a", "1"), row_check("a", "1"));
        assert_ne!(row_check("a", "1"), row_check("a", "2"));
    }
}
