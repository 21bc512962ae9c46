//! `cardcheck registry generate --count N --output FILE.csv [--seed S]` (issue 6):
//! synthetic registries for benchmarks and demos (docs/registry.md "Generating").
//!
//! - **Cards** come from the built-in Chinese issuer BINs (`cn_bin_merged.csv`) with
//!   each BIN's own length and a valid Luhn check digit, so every generated card passes
//!   the engine's issuer and length checks (verification.md §2 steps 5–6) and is decided
//!   by the registry. A BIN is drawn with weight 3 for debit, 2 for credit, 1 for other
//!   or unknown card types, times 4 for the seven largest issuers (ICBC, CCB, ABC, BOC,
//!   BOCOM, PSBC, CMB). Within a BIN the account digits are an affine permutation
//!   `(a·i + b) mod 10^k` of a per-BIN counter, so cards never repeat and no set of
//!   generated cards has to be remembered; a number that a longer BIN of the same length
//!   would claim is skipped (it belongs to that BIN), as are the sandbox's reserved
//!   cards. Cards are therefore distinct within a file.
//! - **Names**: a surname drawn by the frequency weights of `cn_surnames_faker.csv`
//!   (1 % of names instead take one of the 62 compound surnames of `baijiaxing.csv`,
//!   uniformly), then a given name drawn uniformly from `cn_given_names_faker.csv`.
//!   Names repeat, as real names do; cards do not.
//! - **Statuses** follow [`STATUS_MIX`] (90 % active).
//!
//! The same seed and count always give the same file (a seeded ChaCha PRNG,
//! `rand::rngs::StdRng`, and only integer arithmetic on its output).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use cardcheck_domain::card::luhn_check_digit;
use cardcheck_domain::{
    BinEntry, BinLookup, BinOrigin, BinTable, CATALOGUE, CardNumber, CardStatus, CardType,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::progress::Progress;
use super::{EXIT_INTERRUPTED, StopOnSignal, human_bytes, thousands};
use crate::files::OutputWriter;

const SURNAMES_CSV: &str = include_str!("../../../domain/data/cn_surnames_faker.csv");
const GIVEN_NAMES_CSV: &str = include_str!("../../../domain/data/cn_given_names_faker.csv");
const BAIJIAXING_CSV: &str = include_str!("../../../domain/data/baijiaxing.csv");

/// The status mix of generated registries, in parts per 10,000 (sums to 10,000).
pub(crate) const STATUS_MIX: [(CardStatus, u64); 12] = [
    (CardStatus::Active, 9000),
    (CardStatus::Dormant, 300),
    (CardStatus::Expired, 200),
    (CardStatus::Lost, 100),
    (CardStatus::Restricted, 100),
    (CardStatus::CardlessNotEnabled, 80),
    (CardStatus::PinLocked, 50),
    (CardStatus::Declined, 50),
    (CardStatus::Fraud, 30),
    (CardStatus::Confiscated, 30),
    (CardStatus::StatusException, 30),
    (CardStatus::IssuerUnsupported, 30),
];

/// Parts per 10,000 of names with a compound surname from the Baijiaxing.
const COMPOUND_SURNAME_PER_10K: u64 = 100;
/// The largest issuers (Alipay codes), drawn four times as often.
const BIG_ISSUERS: [&str; 7] = ["ICBC", "CCB", "ABC", "BOC", "COMM", "PSBC", "CMB"];
/// Consecutive draws that may fail (skipped or exhausted BIN) before giving up.
const MAX_FAILED_DRAWS: u32 = 100_000;

/// Draws an index with probability proportional to its integer weight.
#[derive(Debug)]
struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u64>) -> Weighted {
        let mut total = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Weighted { cumulative }
    }

    fn pick(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let r = rng.next_u64() % total;
        self.cumulative.partition_point(|&c| c <= r)
    }
}

/// One BIN's permutation state.
#[derive(Debug)]
struct BinState<'t> {
    entry: &'t BinEntry,
    length: usize,
    /// Account digits between the prefix and the check digit.
    digits: usize,
    modulus: u64,
    multiplier: u64,
    offset: u64,
    next: u64,
}

/// The generator, deterministic for a seed.
pub(crate) struct Generator<'t> {
    rng: StdRng,
    table: &'t BinTable,
    bins: Vec<BinState<'t>>,
    bin_weights: Weighted,
    surnames: Vec<String>,
    surname_weights: Weighted,
    compound_surnames: Vec<String>,
    given_names: Vec<String>,
    status_weights: Weighted,
    reserved: HashSet<&'static str>,
}

impl std::fmt::Debug for Generator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("bins", &self.bins.len())
            .finish_non_exhaustive()
    }
}

/// The first column of a data file, after its header, with the second column.
fn csv_rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
}

impl<'t> Generator<'t> {
    pub(crate) fn new(seed: u64, table: &'t BinTable) -> anyhow::Result<Generator<'t>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bins = Vec::new();
        let mut weights = Vec::new();
        for entry in table.entries() {
            if entry.origin != BinOrigin::Issuer || entry.lengths.len() != 1 {
                continue;
            }
            let length = usize::from(entry.lengths[0]);
            if !(12..=19).contains(&length) || entry.prefix.len() + 2 > length {
                continue;
            }
            let digits = length - entry.prefix.len() - 1;
            let modulus = 10u64.pow(digits as u32);
            let mut multiplier = 1 + rng.next_u64() % (modulus - 1).max(1);
            while multiplier.is_multiple_of(2) || multiplier.is_multiple_of(5) {
                multiplier = 1 + rng.next_u64() % (modulus - 1).max(1);
            }
            let offset = rng.next_u64() % modulus;
            let type_weight = match entry.card_type {
                CardType::Debit => 3,
                CardType::Credit => 2,
                _ => 1,
            };
            let big = entry
                .bank_code
                .as_deref()
                .is_some_and(|c| BIG_ISSUERS.contains(&c));
            weights.push(type_weight * if big { 4 } else { 1 });
            bins.push(BinState {
                entry,
                length,
                digits,
                modulus,
                multiplier,
                offset,
                next: 0,
            });
        }
        if bins.is_empty() {
            bail!("the built-in BIN table has no usable issuer BINs");
        }

        let mut surnames = Vec::new();
        let mut surname_weights = Vec::new();
        for row in csv_rows(SURNAMES_CSV) {
            let (Some(name), Some(weight)) = (row.first(), row.get(1)) else {
                continue;
            };
            let weight: f64 = weight.parse().context("cn_surnames_faker.csv: weight")?;
            surnames.push((*name).to_owned());
            // Hundredths of a percent, as integers: the draw stays exact and portable.
            surname_weights.push((weight * 100.0).round().max(1.0) as u64);
        }
        let compound_surnames: Vec<String> = csv_rows(BAIJIAXING_CSV)
            .filter(|row| row.get(2) == Some(&"2"))
            .filter_map(|row| row.get(1).map(|s| (*s).to_owned()))
            .collect();
        let given_names: Vec<String> = csv_rows(GIVEN_NAMES_CSV)
            .filter_map(|row| row.first().map(|s| (*s).to_owned()))
            .collect();
        if surnames.is_empty() || given_names.is_empty() || compound_surnames.is_empty() {
            bail!("the built-in name lists are empty");
        }
        Ok(Generator {
            rng,
            table,
            bin_weights: Weighted::new(weights),
            bins,
            surnames,
            surname_weights: Weighted::new(surname_weights),
            compound_surnames,
            given_names,
            status_weights: Weighted::new(STATUS_MIX.iter().map(|(_, w)| *w)),
            reserved: CATALOGUE.iter().map(|c| c.card).collect(),
        })
    }

    /// Writes the next card number into `out` (cleared first).
    fn next_card(&mut self, out: &mut String) -> anyhow::Result<()> {
        for _ in 0..MAX_FAILED_DRAWS {
            let i = self.bin_weights.pick(&mut self.rng);
            let state = &mut self.bins[i];
            if state.next >= state.modulus {
                continue; // exhausted
            }
            let account = ((u128::from(state.multiplier) * u128::from(state.next)
                + u128::from(state.offset))
                % u128::from(state.modulus)) as u64;
            state.next += 1;
            out.clear();
            out.push_str(&state.entry.prefix);
            let digits = state.digits;
            out.push_str(&format!("{account:0digits$}"));
            let check = luhn_check_digit(out).unwrap_or('0');
            out.push(check);
            debug_assert_eq!(out.len(), state.length);
            if self.reserved.contains(out.as_str()) {
                continue;
            }
            let Ok(card) = CardNumber::parse(out) else {
                continue;
            };
            // Only the BIN that the engine's lookup picks may issue this number, so
            // two BINs never produce the same card.
            match self.table.lookup(&card) {
                BinLookup::Found(e) if std::ptr::eq(e, state.entry) => return Ok(()),
                _ => continue,
            }
        }
        bail!("cannot find more distinct cards in the BIN table")
    }

    /// Writes the next name into `out` (cleared first).
    fn next_name(&mut self, out: &mut String) {
        out.clear();
        if self.rng.next_u64() % 10_000 < COMPOUND_SURNAME_PER_10K {
            let i = (self.rng.next_u64() % self.compound_surnames.len() as u64) as usize;
            out.push_str(&self.compound_surnames[i]);
        } else {
            out.push_str(&self.surnames[self.surname_weights.pick(&mut self.rng)]);
        }
        let i = (self.rng.next_u64() % self.given_names.len() as u64) as usize;
        out.push_str(&self.given_names[i]);
    }

    fn next_status(&mut self) -> CardStatus {
        STATUS_MIX[self.status_weights.pick(&mut self.rng)].0
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    rows: u64,
    seed: u64,
    bytes: u64,
    seconds: f64,
    by_status: BTreeMap<&'static str, u64>,
}

pub(super) async fn run(
    count: u64,
    output: &Path,
    seed: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let seed = seed.unwrap_or_else(|| rand::rng().next_u64());
    let started = Instant::now();
    // A signal stops the writing and drops the temporary file (the default action
    // would leave `FILE.tmp-<pid>` behind).
    let stop = Arc::new(AtomicBool::new(false));
    let _signals = StopOnSignal::install(Arc::clone(&stop));
    let written = tokio::task::block_in_place(|| write_file(count, output, seed, &stop));
    if stop.load(Ordering::Relaxed) {
        eprintln!(
            "interrupted: {} not written (a file that was there is unchanged)",
            output.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let Written {
        by_status,
        bytes,
        in_place,
    } = written?;
    let seconds = started.elapsed().as_secs_f64();
    let display = output.display().to_string();
    if json {
        crate::admin::print_json(&Report {
            file: display,
            rows: count,
            seed,
            bytes,
            seconds,
            by_status,
        })?;
    } else {
        let line = format!(
            "wrote {} rows to {display} ({}) in {seconds:.1} s; seed {seed}",
            thousands(count),
            human_bytes(bytes)
        );
        // `--output /dev/stdout`: the summary must not end up inside the CSV.
        if in_place {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What [`write_file`] wrote.
struct Written {
    by_status: BTreeMap<&'static str, u64>,
    bytes: u64,
    /// Written in place (a FIFO, a terminal, `/dev/stdout`), not renamed.
    in_place: bool,
}

/// Generates into `output` as [`crate::files::output_target`] decides: a regular
/// file (through its symlinks) via a temporary file beside it and a rename; a FIFO or
/// device in place.
fn write_file(count: u64, output: &Path, seed: u64, stop: &AtomicBool) -> anyhow::Result<Written> {
    if output.file_name().is_none() {
        bail!("--output must name a file");
    }
    let file = OutputWriter::create(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let in_place = file.in_place();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let by_status = generate(count, seed, &mut out, stop)?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow::Error::new(e.into_error()))
        .with_context(|| format!("cannot write {}", output.display()))?;
    let bytes = file.written();
    // Dropped on error above: the temporary file goes, the output stays as it was.
    file.commit()
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(Written {
        by_status,
        bytes,
        in_place,
    })
}

/// Writes `count` rows (and the header) to `out`; returns the rows per status word.
/// Fails when `stop` is set (checked every 65,536 rows).
pub(crate) fn generate(
    count: u64,
    seed: u64,
    out: &mut impl Write,
    stop: &AtomicBool,
) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let mut generator = Generator::new(seed, BinTable::builtin())?;
    let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut progress = Progress::new("generating", true);
    let (mut card, mut name) = (String::with_capacity(19), String::with_capacity(12));
    out.write_all(b"name,card,status\n")
        .context("cannot write the output")?;
    for i in 0..count {
        generator.next_card(&mut card)?;
        generator.next_name(&mut name);
        let status = generator.next_status();
        *by_status.entry(status.as_word()).or_default() += 1;
        writeln!(out, "{name},{card},{}", status.as_word()).context("cannot write the output")?;
        if i % 65_536 == 0 {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            progress.update(i, Some(i as f64 / count.max(1) as f64));
        }
    }
    progress.finish();
    Ok(by_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_mix_sums_to_ten_thousand_and_covers_every_status() {
        assert_eq!(STATUS_MIX.iter().map(|(_, w)| w).sum::<u64>(), 10_000);
        for s in CardStatus::ALL {
            assert!(STATUS_MIX.iter().any(|(t, _)| *t == s));
        }
    }

    #[test]
    fn generated_rows_are_valid_distinct_and_reproducible() {
        let mut a = Vec::new();
        generate(5_000, 7, &mut a, &AtomicBool::new(false)).unwrap();
        let mut b = Vec::new();
        generate(5_000, 7, &mut b, &AtomicBool::new(false)).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        generate(5_000, 8, &mut c, &AtomicBool::new(false)).unwrap();
        assert_ne!(a, c);
        let text = String::from_utf8(a).unwrap();
        let mut cards = HashSet::new();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3);
            cardcheck_domain::CardholderName::parse(fields[0]).unwrap();
            let card = CardNumber::parse(fields[1]).unwrap();
            assert!(card.luhn_valid());
            assert!(matches!(
                BinTable::builtin().lookup(&card),
                BinLookup::Found(_)
            ));
            assert!(cards.insert(fields[1].to_owned()), "duplicate card");
            assert!(CardStatus::from_word(fields[2]).is_some());
        }
        assert_eq!(cards.len(), 5_000);
    }
}
